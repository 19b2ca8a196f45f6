/* test_tokenizer_unit.c - API behaviour around the pipeline: UTF-8 repair,
 * loader errors naming the field, lookups, truncation edge cases.  Expected
 * ids come from HF tokenizers (values printed by the reference, noted
 * beside each case). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer.h"

#define MINILM TOK_REPO_ROOT "/tests/data/tokenizer/minilm/tokenizer.json"

static tok_tokenizer *tk;
static void setup(void)
{
    tok_error err;
    cr_assert_eq(tok_load_file(MINILM, &tk, &err), 0, "%s", err.message);
}
static void teardown(void) { tok_free(tk); }

static void expect_ids(const char *text, size_t len, int special, size_t max, const int32_t *want, size_t n)
{
    tok_encoding e;
    tok_error err;
    tok_encoding_init(&e);
    cr_assert_eq(tok_encode(tk, text, len, special, max, &e, &err), 0, "%s", err.message);
    cr_assert_eq(e.len, n, "'%s': %zu ids, want %zu", text, e.len, n);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(e.ids[i], want[i], "'%s' id %zu: %d want %d", text, i, e.ids[i], want[i]);
    tok_encoding_free(&e);
}
#define IDS(...) (const int32_t[]){__VA_ARGS__}, sizeof((const int32_t[]){__VA_ARGS__}) / sizeof(int32_t)

TestSuite(minilm, .init = setup, .fini = teardown);

Test(minilm, lookups)
{
    cr_assert_eq(tok_vocab_size(tk), 30522);
    cr_assert_eq(tok_truncation_max_length(tk), 128);
    cr_assert_eq(tok_pad_id(tk), 0);
    cr_assert_eq(tok_token_to_id(tk, "[CLS]"), 101);
    cr_assert_eq(tok_token_to_id(tk, "##ing"), 2075);
    cr_assert_eq(tok_token_to_id(tk, "no-such-token"), -1);
    cr_assert_str_eq(tok_id_to_token(tk, 7592), "hello");
    cr_assert_null(tok_id_to_token(tk, 30522));
    cr_assert_null(tok_id_to_token(tk, -1));
}

/* HF: 'a\x00b c' -> [101, 11113, 1039, 102]: NUL removed by clean_text. */
Test(minilm, nul_is_removed) { expect_ids("a\0b c", 5, 1, TOK_NO_TRUNCATION, IDS(101, 11113, 1039, 102)); }
/* HF: 'x[CLS]y' -> [101, 1060, 101, 1061, 102]; special tokens match inside words. */
Test(minilm, special_inside_word) { expect_ids("x[CLS]y", 7, 1, TOK_NO_TRUNCATION, IDS(101, 1060, 101, 1061, 102)); }
/* HF: 'héllo [SEP]wörld' -> [101, 7592, 102, 2088, 102] */
Test(minilm, accents_and_special)
{
    const char *s = "h\xc3\xa9llo [SEP]w\xc3\xb6rld";
    expect_ids(s, strlen(s), 1, TOK_NO_TRUNCATION, IDS(101, 7592, 102, 2088, 102));
}
/* HF with enable_truncation(max_length=m): m=1 -> no truncation (the
 * specials do not fit), m=2 -> [101, 102], m=3 -> [101, 7592, 102];
 * without specials m=1 -> [7592]. */
Test(minilm, truncation_edges)
{
    expect_ids("hello world", 11, 1, 1, IDS(101, 7592, 2088, 102));
    expect_ids("hello world", 11, 1, 2, IDS(101, 102));
    expect_ids("hello world", 11, 1, 3, IDS(101, 7592, 102));
    expect_ids("hello world", 11, 0, 1, IDS(7592));
}

Test(minilm, untruncated_len_and_masks)
{
    tok_encoding e;
    tok_error err;
    tok_encoding_init(&e);
    cr_assert_eq(tok_encode(tk, "hello world", 11, 1, 3, &e, &err), 0);
    cr_assert_eq(e.untruncated_len, 4);
    cr_assert_eq(e.special_mask[0], 1);
    cr_assert_eq(e.special_mask[1], 0);
    cr_assert_eq(e.special_mask[2], 1);
    cr_assert_eq(e.type_ids[1], 0);
    /* reuse: a shorter text after a longer one */
    cr_assert_eq(tok_encode(tk, "", 0, 1, 0, &e, &err), 0);
    cr_assert_eq(e.len, 2);
    tok_encoding_free(&e);
}

Test(minilm, invalid_utf8_is_an_error)
{
    tok_encoding e;
    tok_error err;
    tok_encoding_init(&e);
    cr_assert_eq(tok_encode(tk, "ab\xff", 3, 1, 0, &e, &err), -1);
    cr_assert(strstr(err.message, "offset 2"), "%s", err.message);
    tok_encoding_free(&e);
}

/* Expected bytes from Python: b.decode('utf-8', errors='replace'). */
Test(utf8, repair_matches_python)
{
    static const struct { const char *in; size_t len; const char *out; size_t n; } cases[] = {
        {"a\xff" "b", 3, "a\xef\xbf\xbd" "b", 1},
        {"\xe2\x82", 2, "\xef\xbf\xbd", 1},
        {"\xe2\x82" "a", 3, "\xef\xbf\xbd" "a", 1},
        {"\xf0\x9f\x98", 3, "\xef\xbf\xbd", 1},
        {"\xed\xa0\x80", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", 3},
        {"\xc0\xaf", 2, "\xef\xbf\xbd\xef\xbf\xbd", 2},
        {"\xf4\x90\x80\x80", 4, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", 4},
        {"ok\xe2\x82\xac", 5, "ok\xe2\x82\xac", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out;
        size_t len;
        size_t n = tok_utf8_repair(cases[i].in, cases[i].len, &out, &len);
        cr_assert_eq(n, cases[i].n, "case %zu", i);
        cr_assert_eq(len, strlen(cases[i].out), "case %zu", i);
        cr_assert(memcmp(out, cases[i].out, len) == 0, "case %zu", i);
        free(out);
    }
}

static void expect_load_error(const char *json, const char *needle)
{
    tok_tokenizer *t = NULL;
    tok_error err;
    cr_assert_eq(tok_load_json(json, strlen(json), "x.json", &t, &err), -1, "accepted: %s", json);
    cr_assert_null(t);
    cr_assert(strstr(err.message, needle), "message '%s' lacks '%s'", err.message, needle);
}

Test(loader, errors_name_the_field)
{
    expect_load_error("{", "invalid JSON");
    expect_load_error("[]", "JSON object");
    expect_load_error("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0, \"b\": 0}}}", "used twice");
    expect_load_error("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0, \"b\": 7}}}", "model.vocab");
    expect_load_error("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}}, \"normalizer\": {\"type\": \"Nope\"}}",
                      "normalizer.type");
    expect_load_error("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}},"
                      "\"post_processor\": {\"type\": \"BertProcessing\", \"cls\": [\"a\", 0], \"sep\": [\"b\", 5]}}",
                      "post_processor.sep");
    expect_load_error("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}},"
                      "\"added_tokens\": [{\"id\": 0, \"content\": \"zz\"}]}", "added_tokens[0]");
    expect_load_error("{\"model\": {\"type\": \"Magic\", \"vocab\": {\"a\": 0}}}", "model.type");
}

#define WP "\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0, \"[UNK]\": 1}}"

Test(loader, hardening)
{
    expect_load_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a c\"]}}",
                      "model.merges[0]");
    expect_load_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [[\"a\", \"b\"]]}}",
                      "merged token");
    expect_load_error("{\"model\": {\"type\": \"Unigram\", \"vocab\": [[\"a\", -1.0]], \"unk_id\": 5}}",
                      "model.unk_id");
    expect_load_error("{\"model\": {\"type\": \"Unigram\", \"vocab\": [[\"a\", -1.0], [\"a\", -2.0]]}}",
                      "appears twice");
    expect_load_error("{" WP ", \"normalizer\": {\"type\": \"Precompiled\", \"precompiled_charsmap\": \"AAAA\"}}",
                      "precompiled_charsmap");
    expect_load_error("{" WP ", \"normalizer\": {\"type\": \"Precompiled\", \"precompiled_charsmap\": \"!!\"}}",
                      "base64");
    expect_load_error("{" WP ", \"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": "
                      "[{\"SpecialToken\": {\"id\": \"X\", \"type_id\": 0}}], \"special_tokens\": "
                      "{\"X\": {\"id\": \"X\", \"ids\": [99], \"tokens\": [\"X\"]}}}}", "not below the vocabulary size");
    expect_load_error("{" WP ", \"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"(\"}, "
                      "\"behavior\": \"Isolated\"}}", "regex");
    expect_load_error("{" WP ", \"normalizer\": {\"type\": \"Replace\", \"pattern\": {\"String\": \"a\"}, "
                      "\"content\": \"\xff\"}}", "not valid UTF-8");
}

/* Integers far outside int64_t's range (found by fuzz_load: a type_id of
 * 3.3e107) are refused before any conversion, which would be undefined
 * behaviour; the ASan/UBSan build of this suite (.ci/run) halts on one. */
Test(loader, huge_integers_are_field_errors)
{
    expect_load_error("{" WP ", \"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": "
                      "[{\"Sequence\": {\"id\": \"A\", \"type_id\": 3.3e107}}], \"special_tokens\": {}}}",
                      "type_id");
    expect_load_error("{" WP ", \"added_tokens\": [{\"id\": -1e300, \"content\": \"zz\"}]}", "added_tokens[0]");
    expect_load_error("{" WP ", \"truncation\": {\"max_length\": 1e30}}", "max_length");
    expect_load_error("{" WP ", \"post_processor\": {\"type\": \"BertProcessing\", \"cls\": [\"a\", 1e300], "
                      "\"sep\": [\"a\", 0]}}", "post_processor.cls");
    expect_load_error("{" WP ", \"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": "
                      "[{\"SpecialToken\": {\"id\": \"X\", \"type_id\": 0}}], \"special_tokens\": "
                      "{\"X\": {\"id\": \"X\", \"ids\": [9e99], \"tokens\": [\"X\"]}}}}", "special_tokens");
}

Test(loader, missing_file)
{
    tok_tokenizer *t;
    tok_error err;
    cr_assert_eq(tok_load_file("/nonexistent/tokenizer.json", &t, &err), -1);
    cr_assert(strstr(err.message, "/nonexistent/tokenizer.json"));
}
