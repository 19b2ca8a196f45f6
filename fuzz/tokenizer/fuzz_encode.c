/* fuzz_encode.c - libFuzzer target: arbitrary bytes encoded by every
 * tokenizer family of tests/data/tokenizer (loaded once).  The first byte
 * picks the family and the truncation length; the rest is encoded raw (must
 * be rejected cleanly when not UTF-8) and after tok_utf8_repair (must
 * encode, with ids in range and within the length asked for). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer.h"

#ifndef TOK_DATA_DIR
#define TOK_DATA_DIR "tests/data/tokenizer"
#endif

static tok_tokenizer *fams[32];
static int n_fams;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc; (void)argv;
    const char *dir = getenv("TOK_FUZZ_DATA") ? getenv("TOK_FUZZ_DATA") : TOK_DATA_DIR;
    DIR *d = opendir(dir);
    struct dirent *ent;
    while (d && (ent = readdir(d)) && n_fams < 32) {
        char path[2048];
        tok_error err;
        if (ent->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s/tokenizer.json", dir, ent->d_name);
        if (tok_load_file(path, &fams[n_fams], &err) == 0)
            n_fams++;
    }
    if (d)
        closedir(d);
    if (!n_fams) {
        fprintf(stderr, "fuzz_encode: no tokenizer under %s (set TOK_FUZZ_DATA)\n", dir);
        abort();   /* harness setup, not input handling */
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const tok_tokenizer *t = fams[data[0] % n_fams];
    size_t max_len = (data[0] >> 4) == 0 ? TOK_NO_TRUNCATION : (size_t)(data[0] >> 4) * 3;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    tok_encoding e;
    tok_error err;
    char *fixed;
    size_t fixed_len;
    tok_encoding_init(&e);
    tok_encode(t, text, len, 1, max_len, &e, &err);   /* may fail: invalid UTF-8 */
    tok_utf8_repair(text, len, &fixed, &fixed_len);
    if (fixed) {
        if (tok_encode(t, fixed, fixed_len, data[0] & 1, max_len, &e, &err) != 0)
            __builtin_trap();
        for (size_t k = 0; k < e.len; k++)
            if (e.ids[k] < 0 || (size_t)e.ids[k] >= tok_vocab_size(t))
                __builtin_trap();
        /* longer than asked only when the specials alone do not fit (no truncation then) */
        if (max_len != TOK_NO_TRUNCATION && e.len > max_len && e.len != e.untruncated_len)
            __builtin_trap();
        free(fixed);
    }
    tok_encoding_free(&e);
    return 0;
}
