/*
 * Parity with sentence-transformers: every configuration in
 * tests/golden/minilm/manifest.json (made by tools/make-golden with the real
 * sentence-transformers) is re-run through embedc's CPU backend and compared
 * vector by vector: cosine >= 0.99999 and max |delta| <= 1e-4.
 */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "embedc.h"
#include "npy.h"
#include "test_support.h"

static char **corpus;
static size_t corpus_n;
static cJSON *manifest;

static void load_corpus(void) {
    char *path = ts_src_path("tests/data/corpus/texts.jsonl");
    size_t len;
    char *data = ts_read_file(path, &len);
    free(path);
    cr_assert_not_null(data, "corpus missing");
    size_t cap = 1024;
    corpus = malloc(cap * sizeof *corpus);
    for (char *line = data, *nl; line < data + len; line = nl + 1) {
        nl = memchr(line, '\n', (size_t)(data + len - line));
        if (!nl) nl = data + len;
        cJSON *o = cJSON_ParseWithLength(line, (size_t)(nl - line));
        cr_assert(cJSON_IsString(cJSON_GetObjectItem(o, "text")), "bad corpus line %zu", corpus_n + 1);
        if (corpus_n == cap) corpus = realloc(corpus, (cap *= 2) * sizeof *corpus);
        corpus[corpus_n++] = strdup(cJSON_GetObjectItem(o, "text")->valuestring);
        cJSON_Delete(o);
    }
    free(data);
    char *mpath = ts_src_path("tests/golden/minilm/manifest.json");
    char *m = ts_read_file(mpath, NULL);
    free(mpath);
    cr_assert_not_null(m, "golden manifest missing: run tools/make-golden");
    manifest = cJSON_Parse(m);
    free(m);
    cr_assert_not_null(manifest);
}

static void setup(void) {
    if (!ts_default_model()) cr_skip_test("default model not fetched (tools/fetch-model)");
    load_corpus();
}

static void teardown(void) {
    for (size_t i = 0; i < corpus_n; i++) free(corpus[i]);
    free(corpus);
    corpus = NULL;
    corpus_n = 0;
    cJSON_Delete(manifest);
    manifest = NULL;
}

static const cJSON *find_config(const char *name) {
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(manifest, "configs"))
        if (!strcmp(cJSON_GetObjectItem(c, "name")->valuestring, name)) return c;
    cr_assert_fail("golden config %s missing from the manifest", name);
    return NULL;
}

static int parse_pooling(const char *s) {
    int bits = 0;
    if (strstr(s, "cls")) bits |= EMB_POOL_CLS;
    if (strstr(s, "max")) bits |= EMB_POOL_MAX;
    if (strstr(s, "mean_sqrt_len")) bits |= EMB_POOL_MEAN_SQRT_LEN;
    else if (strstr(s, "weightedmean")) bits |= EMB_POOL_WEIGHTED_MEAN;
    else if (strstr(s, "mean")) bits |= EMB_POOL_MEAN;
    if (strstr(s, "lasttoken")) bits |= EMB_POOL_LAST_TOKEN;
    return bits;
}

/* A copy of the default model whose pooling excludes the prompt: every file
 * symlinked except 1_Pooling/config.json. */
static char *model_without_prompt_pooling(void) {
    char *dir = ts_tmpdir();
    const char *src = ts_default_model();
    const char *files[] = {"config.json", "model.safetensors", "tokenizer.json", "modules.json",
                           "sentence_bert_config.json", "config_sentence_transformers.json"};
    char a[4096], b[4096];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(a, sizeof a, "%s/%s", src, files[i]);
        snprintf(b, sizeof b, "%s/%s", dir, files[i]);
        cr_assert_eq(symlink(a, b), 0);
    }
    snprintf(b, sizeof b, "%s/1_Pooling", dir);
    mkdir(b, 0755);
    snprintf(b, sizeof b, "%s/1_Pooling/config.json", dir);
    const char *cfg = "{\"word_embedding_dimension\": 384, \"pooling_mode_mean_tokens\": true, "
                      "\"include_prompt\": false}";
    cr_assert_eq(ts_write_file(b, cfg, strlen(cfg)), 0);
    return dir;
}

static void check_config(const char *name) {
    const cJSON *c = find_config(name);
    emb_encode_options eo = emb_encode_default_options();
    const cJSON *v;
    if ((v = cJSON_GetObjectItem(c, "pooling"))) eo.pooling = parse_pooling(v->valuestring);
    if ((v = cJSON_GetObjectItem(c, "truncate_dim"))) eo.truncate_dim = v->valueint;
    if ((v = cJSON_GetObjectItem(c, "prompt"))) eo.prompt = v->valuestring;
    if ((v = cJSON_GetObjectItem(c, "layer"))) eo.layer = v->valueint;
    if ((v = cJSON_GetObjectItem(c, "normalize"))) eo.normalize = v->valueint;
    int excluded = (v = cJSON_GetObjectItem(c, "include_prompt")) && v->valueint == 0;

    char *tmpmodel = excluded ? model_without_prompt_pooling() : NULL;
    emb_model_options mo = emb_model_default_options();
    mo.device = EMB_DEVICE_CPU;
    emb_model *m = NULL;
    emb_error err = {0};
    cr_assert_eq(emb_model_load(tmpmodel ? tmpmodel : ts_default_model(), &mo, &m, &err), EMB_OK, "%s",
                 err.message);

    const cJSON *idx = cJSON_GetObjectItem(c, "texts");
    size_t n = (size_t)cJSON_GetArraySize(idx);
    const char **texts = malloc(n * sizeof *texts);
    for (size_t i = 0; i < n; i++) {
        size_t k = (size_t)cJSON_GetArrayItem(idx, (int)i)->valueint;
        cr_assert_lt(k, corpus_n);
        texts[i] = corpus[k];
    }
    char rel[256];
    snprintf(rel, sizeof rel, "tests/golden/minilm/%s", cJSON_GetObjectItem(c, "file")->valuestring);
    char *path = ts_src_path(rel);
    size_t rows, cols;
    float *want = npy_load(path, &rows, &cols);
    free(path);
    cr_assert_not_null(want, "cannot read %s", rel);
    cr_assert_eq(rows, n);
    int dim = emb_model_dim(m, &eo);
    cr_assert_eq((size_t)dim, cols, "%s: embedc dim %d, sentence-transformers %zu", name, dim, cols);

    float *got = malloc(n * cols * sizeof *got);
    emb_encode_stats st;
    cr_assert_eq(emb_encode(m, texts, NULL, n, &eo, got, &st, &err), EMB_OK, "%s", err.message);
    cr_assert_eq(st.documents, n);

    double worst_cos = 1, worst_diff = 0;
    size_t worst_i = 0;
    for (size_t i = 0; i < n; i++) {
        double dot = 0, na = 0, nb = 0, md = 0;
        for (size_t j = 0; j < cols; j++) {
            double a = got[i * cols + j], b = want[i * cols + j];
            dot += a * b; na += a * a; nb += b * b;
            if (fabs(a - b) > md) md = fabs(a - b);
        }
        double cosv = (na == 0 && nb == 0) ? 1 : dot / sqrt(na * nb);
        if (cosv < worst_cos) { worst_cos = cosv; worst_i = i; }
        if (md > worst_diff) worst_diff = md;
    }
    cr_log_info("%s: %zu vectors, worst cos %.8f (text %zu), max |delta| %.2e", name, n, worst_cos, worst_i,
                worst_diff);
    cr_expect_geq(worst_cos, 0.99999, "%s: cos %.8f for text #%zu", name, worst_cos, worst_i);
    cr_expect_leq(worst_diff, 1e-4, "%s: max |delta| %.3e", name, worst_diff);
    free(got);
    free(want);
    free(texts);
    emb_model_free(m);
    if (tmpmodel) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpmodel);
        cr_assert_eq(system(cmd), 0);
        free(tmpmodel);
    }
}

TestSuite(golden, .init = setup, .fini = teardown, .timeout = 300);

Test(golden, default_settings) { check_config("default"); }
Test(golden, pooling_cls) { check_config("pool_cls"); }
Test(golden, pooling_max) { check_config("pool_max"); }
Test(golden, pooling_mean_sqrt_len) { check_config("pool_mean_sqrt_len_tokens"); }
Test(golden, pooling_weightedmean) { check_config("pool_weightedmean"); }
Test(golden, pooling_lasttoken) { check_config("pool_lasttoken"); }
Test(golden, pooling_cls_and_mean) { check_config("pool_cls_mean"); }
Test(golden, no_normalize) { check_config("no_normalize"); }
Test(golden, truncate_dim) { check_config("truncate_128"); }
Test(golden, prompt) { check_config("prompt"); }
Test(golden, prompt_excluded_from_pooling) { check_config("prompt_excluded"); }
Test(golden, hidden_layer) { check_config("layer_3"); }
