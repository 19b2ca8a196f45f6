/* tokenizer_parity.c - command-line parity check: compares every corpus text
 * with the reference for each tokenizer family and reports mismatches;
 * with -e FAMILY_DIR TEXT it prints the ids of one text instead. */
#include <stdlib.h>
#include <string.h>

#include "corpus.h"

int main(int argc, char **argv)
{
    if (argc >= 4 && !strcmp(argv[1], "-e")) {
        char path[1024];
        tok_tokenizer *t;
        tok_error err;
        tok_encoding e;
        snprintf(path, sizeof path, "%s/tokenizer.json", argv[2]);
        if (tok_load_file(path, &t, &err)) {
            fprintf(stderr, "%s\n", err.message);
            return 1;
        }
        tok_encoding_init(&e);
        if (tok_encode(t, argv[3], strlen(argv[3]), 1, TOK_NO_TRUNCATION, &e, &err)) {
            fprintf(stderr, "%s\n", err.message);
            return 1;
        }
        for (size_t i = 0; i < e.len; i++)
            printf("%d%s", e.ids[i], i + 1 < e.len ? " " : "\n");
        for (size_t i = 0; i < e.len; i++)
            printf("%s%s", tok_id_to_token(t, e.ids[i]), i + 1 < e.len ? " " : "\n");
        tok_encoding_free(&e);
        tok_free(t);
        return 0;
    }
    if (argc < 3) {
        fprintf(stderr, "usage: %s CORPUS.jsonl FAMILY_DIR... | -e FAMILY_DIR TEXT\n", argv[0]);
        return 2;
    }
    tc_corpus c;
    if (tc_corpus_load(argv[1], &c)) {
        fprintf(stderr, "cannot read %s\n", argv[1]);
        return 1;
    }
    int rc = 0;
    for (int i = 2; i < argc; i++) {
        long bad = tc_check_family(argv[i], &c, stderr, 20);
        printf("%s: %ld/%zu texts identical\n", argv[i], bad < 0 ? 0 : (long)c.n - bad, c.n);
        rc |= bad != 0;
    }
    tc_corpus_free(&c);
    return rc;
}
