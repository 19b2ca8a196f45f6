/* corpus.h - test helpers: the shared text corpus (tests/data/corpus/texts.jsonl)
 * and the reference encodings written by tools/make-tokenizer-golden. */
#ifndef TOK_TEST_CORPUS_H
#define TOK_TEST_CORPUS_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "tokenizer.h"

typedef struct { char **text; size_t *len; size_t n; } tc_corpus;
typedef struct { size_t n_full; uint32_t h; } tc_ref;     /* see make-tokenizer-golden */

int  tc_corpus_load(const char *path, tc_corpus *c);          /* 0 ok */
void tc_corpus_free(tc_corpus *c);
tc_ref *tc_ref_load(const char *path, size_t expect);          /* NULL on error */
uint32_t tc_fnv32(uint32_t h, const int32_t *ids, size_t n);   /* start with 0x811c9dc5 */
/* Encodes every text four ways and compares with the reference; prints up to
 * max_report mismatches to `log`.  Returns the number of texts that differ
 * (in any of the four encodings), or -1 on a setup error. */
long tc_check_family(const char *dir, const tc_corpus *c, FILE *log, int max_report);
#endif
