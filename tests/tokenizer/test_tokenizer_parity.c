/* test_tokenizer_parity.c - every corpus text, encoded four ways (with and
 * without specials, with the tokenizer.json truncation and truncated to 20),
 * must give exactly the ids Hugging Face tokenizers gives, for each
 * tokenizer family under tests/data/tokenizer/. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "corpus.h"

static tc_corpus corpus;

static void setup(void)
{
    cr_assert_eq(tc_corpus_load(TOK_REPO_ROOT "/tests/data/corpus/texts.jsonl", &corpus), 0, "corpus missing");
    cr_assert_geq(corpus.n, 10000);
}

static void teardown(void) { tc_corpus_free(&corpus); }

static void check(const char *family)
{
    char dir[1024];
    snprintf(dir, sizeof dir, TOK_REPO_ROOT "/tests/data/tokenizer/%s", family);
    long bad = tc_check_family(dir, &corpus, stderr, 10);
    cr_assert_eq(bad, 0, "%s: %ld of %zu texts differ from the reference (see stderr)", family, bad, corpus.n);
}

TestSuite(parity, .init = setup, .fini = teardown, .timeout = 120);

Test(parity, minilm) { check("minilm"); }

/* Any family directory added later is checked too, without touching this file. */
Test(parity, every_family)
{
    DIR *d = opendir(TOK_REPO_ROOT "/tests/data/tokenizer");
    cr_assert_not_null(d);
    struct dirent *ent;
    int n = 0;
    while ((ent = readdir(d))) {
        char p[1024];
        struct stat st;
        snprintf(p, sizeof p, TOK_REPO_ROOT "/tests/data/tokenizer/%s/reference.txt", ent->d_name);
        if (ent->d_name[0] == '.' || stat(p, &st) || !strcmp(ent->d_name, "minilm"))
            continue;
        check(ent->d_name);
        n++;
    }
    closedir(d);
    cr_log_info("%d further families checked", n);
}

/* The pool (4 threads sharing one tokenizer) gives what serial encoding
 * gives for every text; serial encoding is checked against HF above. */
static void pool_matches_serial(const char *family)
{
    char path[1024];
    tok_tokenizer *t;
    tok_error err;
    tok_pool *pool;
    snprintf(path, sizeof path, TOK_REPO_ROOT "/tests/data/tokenizer/%s/tokenizer.json", family);
    cr_assert_eq(tok_load_file(path, &t, &err), 0, "%s", err.message);
    cr_assert_eq(tok_pool_create(t, 4, &pool, &err), 0);
    cr_assert_eq(tok_pool_threads(pool), 4);
    tok_encoding *encs = calloc(corpus.n, sizeof *encs), one;
    tok_encoding_init(&one);
    for (int round = 0; round < 2; round++) {   /* the second round reuses the encodings */
        cr_assert_eq(tok_pool_encode(pool, (const char *const *)corpus.text, corpus.len, corpus.n, 1, 0, encs, &err),
                     0, "%s", err.message);
        for (size_t i = 0; i < corpus.n; i++) {
            cr_assert_eq(tok_encode(t, corpus.text[i], corpus.len[i], 1, 0, &one, &err), 0);
            cr_assert_eq(encs[i].len, one.len, "text %zu", i);
            cr_assert(memcmp(encs[i].ids, one.ids, one.len * sizeof *one.ids) == 0, "text %zu", i);
        }
    }
    for (size_t i = 0; i < corpus.n; i++)
        tok_encoding_free(&encs[i]);
    free(encs);
    tok_encoding_free(&one);
    tok_pool_free(pool);
    tok_free(t);
}

Test(parity, pool_minilm) { pool_matches_serial("minilm"); }
Test(parity, pool_xlmr) { pool_matches_serial("xlmr"); }
Test(parity, pool_qwen3) { pool_matches_serial("qwen3"); }
