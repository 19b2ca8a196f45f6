/*
 * Loader hardening (issue 9, points 5 and 13): every model file must be a
 * regular file within a size limit, checked before reading (a FIFO never
 * blocks, /dev/zero is never read); model.safetensors that is a directory,
 * FIFO or symlink loop is named precisely; module folders resolving outside
 * the model directory are refused; a safetensors key with an embedded NUL is
 * rejected; tokenizer errors (missing unknown token, bad regex) name what is
 * wrong. The model cases mirror the default model into a temporary directory
 * with symlinks and replace one entry.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine.h"
#include "json_util.h"
#include "model_files.h"
#include "safetensors.h"
#include "test_support.h"
#include "tokenizer.h"

static const char *need_model(void) {
    const char *m = ts_default_model();
    if (!m) cr_skip_test("default model not fetched");
    return m;
}

/* A directory whose entries link to the default model's files, except skip. */
static char *mirror(const char *skip) {
    const char *m = need_model();
    static const char *files[] = {"config.json", "config_sentence_transformers.json", "model.safetensors",
                                  "modules.json", "sentence_bert_config.json", "tokenizer.json"};
    char *d = ts_tmpdir();
    cr_assert_not_null(d);
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        if (skip && !strcmp(files[i], skip)) continue;
        char *src = ts_join(m, files[i]), *dst = ts_join(d, files[i]);
        cr_assert_eq(symlink(src, dst), 0);
        free(src);
        free(dst);
    }
    char *pool = ts_join(d, "1_Pooling");
    if (!skip || strcmp(skip, "1_Pooling")) {
        cr_assert_eq(mkdir(pool, 0755), 0);
        char *src = ts_join(m, "1_Pooling/config.json"), *dst = ts_join(pool, "config.json");
        cr_assert_eq(symlink(src, dst), 0);
        free(src);
        free(dst);
    }
    free(pool);
    return d;
}

static void expect_mf_fail(const char *dir, const char *phrase) {
    emb_model_files mf;
    emb_error err = {0};
    emb_status s = emb_mf_load(dir, &mf, &err);
    cr_assert_neq(s, EMB_OK, "loaded although it should fail with \"%s\"", phrase);
    cr_assert(strstr(err.message, phrase) != NULL, "message \"%s\" lacks \"%s\"", err.message, phrase);
}

static void expect_model_fail(const char *dir, const char *phrase) {
    emb_model_options o = emb_model_default_options();
    o.device = EMB_DEVICE_CPU;
    o.threads = 1;
    emb_model *m = NULL;
    emb_error err = {0};
    emb_status s = emb_model_load(dir, &o, &m, &err);
    cr_assert_neq(s, EMB_OK, "loaded although it should fail with \"%s\"", phrase);
    cr_assert(strstr(err.message, phrase) != NULL, "message \"%s\" lacks \"%s\"", err.message, phrase);
}

/* ---- point 5: regular files within a limit, checked before reading ------ */

Test(hard_files, fifo_config_json_does_not_block, .timeout = 20) {
    char *d = mirror("config.json");
    char *p = ts_join(d, "config.json");
    cr_assert_eq(mkfifo(p, 0600), 0);
    expect_mf_fail(d, "config.json: is a FIFO, expected a regular file");
    free(p);
    free(d);
}

Test(hard_files, fifo_tokenizer_json_does_not_block, .timeout = 20) {
    char *d = mirror("tokenizer.json");
    char *p = ts_join(d, "tokenizer.json");
    cr_assert_eq(mkfifo(p, 0600), 0);
    expect_model_fail(d, "tokenizer.json: is a FIFO, expected a regular file");
    free(p);
    free(d);
}

Test(hard_files, dev_zero_symlink_is_not_read, .timeout = 20) {
    char *d = mirror("tokenizer.json");
    char *p = ts_join(d, "tokenizer.json");
    cr_assert_eq(symlink("/dev/zero", p), 0);
    expect_model_fail(d, "tokenizer.json: is a character device, expected a regular file");
    free(p);
    free(d);
}

static void sparse_file(const char *path, off_t size) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_eq(ftruncate(fd, size), 0);
    close(fd);
}

Test(hard_files, huge_json_files_refused_before_reading, .timeout = 20) {
    char *d = mirror("tokenizer.json");
    char *p = ts_join(d, "tokenizer.json");
    sparse_file(p, (off_t)EMB_MAX_TOKENIZER_JSON_BYTES + 1);
    expect_model_fail(d, "tokenizer.json: 134217729 bytes, over the limit of 134217728 bytes");
    free(p);
    free(d);
    d = mirror("config.json");
    p = ts_join(d, "config.json");
    sparse_file(p, (off_t)EMB_MAX_CONFIG_JSON_BYTES + 1);
    expect_mf_fail(d, "config.json: 16777217 bytes, over the limit of 16777216 bytes");
    free(p);
    free(d);
}

Test(hard_files, tokenizer_library_file_checks, .timeout = 20) {
    tok_tokenizer *t = NULL;
    tok_error e;
    cr_assert_eq(tok_load_file("/dev/zero", &t, &e), -1);
    cr_assert(strstr(e.message, "not a regular file"), "%s", e.message);
    char *d = ts_tmpdir(), *p = ts_join(d, "fifo.json");
    cr_assert_eq(mkfifo(p, 0600), 0);
    cr_assert_eq(tok_load_file(p, &t, &e), -1);
    cr_assert(strstr(e.message, "not a regular file"), "%s", e.message);
    free(p);
    free(d);
}

/* ---- point 13: model.safetensors that is not a file --------------------- */

Test(hard_weights, safetensors_directory_fifo_loop, .timeout = 20) {
    char *d = mirror("model.safetensors");
    char *p = ts_join(d, "model.safetensors");
    cr_assert_eq(mkdir(p, 0755), 0);
    expect_mf_fail(d, "model.safetensors: is a directory, expected a regular file");
    cr_assert_eq(rmdir(p), 0);
    cr_assert_eq(mkfifo(p, 0600), 0);
    expect_mf_fail(d, "model.safetensors: is a FIFO, expected a regular file");
    cr_assert_eq(unlink(p), 0);
    cr_assert_eq(symlink("model.safetensors", p), 0);   /* points at itself */
    expect_mf_fail(d, "model.safetensors: cannot open: Too many levels of symbolic links");
    free(p);
    free(d);
}

Test(hard_weights, safetensors_key_with_nul_rejected) {
    /* Before the check, cJSON cut the name at the NUL and st_find(f, "a") found it. */
    const char *hdr = "{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
    size_t hl = strlen(hdr), n = 8 + hl + 4;
    uint8_t *b = calloc(1, n);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(b + 8, hdr, hl);
    st_file *f = NULL;
    emb_error err = {0};
    emb_status s = st_parse(b, n, "x.safetensors", &f, &err);
    cr_assert_eq(s, EMB_ERR_FORMAT, "accepted a key with an embedded NUL (%s)", err.message);
    cr_assert(strstr(err.message, "x.safetensors: header byte 9: string with an embedded NUL"), "%s",
              err.message);
    /* An escaped backslash followed by u0000 is an ordinary name. */
    const char *ok = "{\"a\\\\u0000\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
    hl = strlen(ok);
    n = 8 + hl + 4;
    memset(b, 0, 8);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(b + 8, ok, hl);
    memset(b + 8 + hl, 0, 4);
    s = st_parse(b, n, "x.safetensors", &f, &err);
    cr_assert_eq(s, EMB_OK, "%s", err.message);
    cr_assert_not_null(st_find(f, "a\\u0000"));
    st_close(f);
    free(b);
}

/* ---- point 13: module folders stay inside the model directory ----------- */

Test(hard_modules, pooling_symlink_outside_refused) {
    const char *m = need_model();
    char *d = mirror("1_Pooling");
    char *outside = ts_tmpdir();
    char *src = ts_join(m, "1_Pooling/config.json"), *dst = ts_join(outside, "config.json");
    cr_assert_eq(symlink(src, dst), 0);
    char *pool = ts_join(d, "1_Pooling");
    cr_assert_eq(symlink(outside, pool), 0);
    expect_mf_fail(d, "modules.json: module 1: folder \"1_Pooling\" resolves to");
    expect_mf_fail(d, "outside the model directory");
    /* The same folder as a symlink inside the directory is fine. */
    cr_assert_eq(unlink(pool), 0);
    char *real = ts_join(d, "pool_real");
    cr_assert_eq(mkdir(real, 0755), 0);
    char *dst2 = ts_join(real, "config.json");
    cr_assert_eq(symlink(src, dst2), 0);
    cr_assert_eq(symlink("pool_real", pool), 0);
    emb_model_files mf;
    emb_error err = {0};
    cr_assert_eq(emb_mf_load(d, &mf, &err), EMB_OK, "%s", err.message);
    emb_mf_free(&mf);
    free(src); free(dst); free(dst2); free(real); free(pool); free(outside); free(d);
}

/* ---- point 13: tokenizer messages --------------------------------------- */

static const char *WP_NO_UNK =
    "{\"model\": {\"type\": \"WordPiece\", \"unk_token\": \"[UNK]\", \"continuing_subword_prefix\": \"##\","
    " \"max_input_chars_per_word\": 100, \"vocab\": {\"a\": 0, \"b\": 1}},"
    " \"pre_tokenizer\": {\"type\": \"Whitespace\"}}";

Test(hard_tok, missing_unknown_token_says_so) {
    tok_tokenizer *t = NULL;
    tok_error e;
    cr_assert_eq(tok_load_json(WP_NO_UNK, strlen(WP_NO_UNK), "tokenizer.json", &t, &e), 0, "%s", e.message);
    tok_encoding enc;
    tok_encoding_init(&enc);
    cr_assert_eq(tok_encode(t, "a b", 3, 0, 0, &enc, &e), 0, "%s", e.message);
    cr_assert_eq(tok_encode(t, "a zz", 4, 0, 0, &enc, &e), -1);
    cr_assert(strstr(e.message, "word 'zz' is not in the vocabulary and the WordPiece model has no unknown token"),
              "%s", e.message);
    cr_assert_null(strstr(e.message, "out of memory"), "%s", e.message);
    tok_encoding_free(&enc);
    tok_free(t);
}

Test(hard_tok, bad_split_regex_names_file_and_field) {
    const char *j = "{\"model\": {\"type\": \"WordPiece\", \"unk_token\": \"a\", \"vocab\": {\"a\": 0}},"
                    " \"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\","
                    " \"pattern\": {\"Regex\": \"(unclosed\"}, \"behavior\": \"Isolated\"}]}}";
    tok_tokenizer *t = NULL;
    tok_error e;
    cr_assert_eq(tok_load_json(j, strlen(j), "tokenizer.json", &t, &e), -1);
    cr_assert(strstr(e.message, "tokenizer.json: field '"), "%s", e.message);
    cr_assert(strstr(e.message, ".pattern': regex /(unclosed/"), "%s", e.message);
}

/* ---- the Hugging Face cache: refs/main read through the same helper ------ */

Test(hard_files, hf_cache_ref_fifo_does_not_block, .timeout = 20) {
    char *home = ts_tmpdir();
    char path[4096];
    snprintf(path, sizeof path, "%s/hub", home);
    cr_assert_eq(mkdir(path, 0755), 0);
    snprintf(path, sizeof path, "%s/hub/models--org--name", home);
    cr_assert_eq(mkdir(path, 0755), 0);
    snprintf(path, sizeof path, "%s/hub/models--org--name/refs", home);
    cr_assert_eq(mkdir(path, 0755), 0);
    snprintf(path, sizeof path, "%s/hub/models--org--name/refs/main", home);
    cr_assert_eq(mkfifo(path, 0600), 0);
    snprintf(path, sizeof path, "%s/hub/models--org--name/snapshots", home);
    cr_assert_eq(mkdir(path, 0755), 0);
    snprintf(path, sizeof path, "%s/hub/models--org--name/snapshots/rev1", home);
    cr_assert_eq(mkdir(path, 0755), 0);
    snprintf(path, sizeof path, "%s/hub/models--org--name/snapshots/rev1/config.json", home);
    cr_assert_eq(ts_write_file(path, "{}", 2), 0);
    setenv("HF_HOME", home, 1);
    char *dir = NULL;
    emb_error err = {0};
    cr_assert_eq(emb_mf_resolve("org/name", &dir, &err), EMB_OK, "%s", err.message);
    cr_assert(strstr(dir, "snapshots/rev1"), "%s", dir);
    free(dir);
    free(home);
}
