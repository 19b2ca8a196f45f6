/* test_tokenizer_parity.c - every corpus text, encoded four ways (with and
 * without specials, with the tokenizer.json truncation and truncated to 20),
 * must give exactly the ids Hugging Face tokenizers gives, for each
 * tokenizer family under tests/data/tokenizer/. */
#include <criterion/criterion.h>
#include <dirent.h>
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
