/*
 * The real google/embeddinggemma-300m (tools/fetch-model embeddinggemma-300m)
 * against sentence-transformers (tests/golden/embeddinggemma, made by
 * tools/make-golden-embeddinggemma): the similarity table Google published
 * for the model reproduced to 1e-4, the token ids of 320 corpus texts without
 * and with the query prompt, and every vector's cosine >= 0.99999 on the CPU
 * backend for the default options, --prompt-name query, --prompt-name
 * document and --truncate-dim 256. Skipped when the model is absent.
 */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embedc.h"
#include "npy.h"
#include "test_support.h"

TestSuite(embeddinggemma, .timeout = 1200);

/* The model directory ($EMBEDC_EMBEDDINGGEMMA, else models/embeddinggemma-300m),
 * or a skip when it has not been fetched. */
static emb_model *load_model(void) {
    char *dir = ts_model_dir("EMBEDC_EMBEDDINGGEMMA", "models/embeddinggemma-300m");
    if (!dir) cr_skip_test("embeddinggemma-300m not fetched (tools/fetch-model embeddinggemma-300m)");
    emb_model_options mo = emb_model_default_options();
    mo.device = EMB_DEVICE_CPU;
    emb_model *m = NULL;
    emb_error err = {0};
    cr_assert_eq(emb_model_load(dir, &mo, &m, &err), EMB_OK, "%s", err.message);
    free(dir);
    return m;
}

static cJSON *golden_json(const char *file) {
    char rel[256];
    snprintf(rel, sizeof rel, "tests/golden/embeddinggemma/%s", file);
    cJSON *j = ts_src_json(rel);
    cr_assert_not_null(j, "missing or invalid %s: run tools/make-golden-embeddinggemma", rel);
    return j;
}

/* The manifest's texts, from the corpus. */
static char **golden_texts(const cJSON *man, size_t *n) {
    const cJSON *idx = cJSON_GetObjectItem(man, "texts");
    *n = (size_t)cJSON_GetArraySize(idx);
    cr_assert_geq(*n, 300);
    size_t *at = malloc(*n * sizeof *at);
    for (size_t i = 0; i < *n; i++) at[i] = (size_t)cJSON_GetArrayItem(idx, (int)i)->valueint;
    char **texts = ts_corpus_texts(at, *n);
    free(at);
    cr_assert_not_null(texts, "manifest indices not found in the corpus");
    return texts;
}

static double cosine(const float *a, const float *b, int dim) {
    return ts_worst_cos(a, b, 1, (size_t)dim, NULL);
}

/* Google's table (model.similarity on model.encode, without a prompt and with
 * prompt_name "STS"). */
Test(embeddinggemma, published_table) {
    emb_model *m = load_model();
    cJSON *table = golden_json("table.json");
    emb_error err = {0};
    const int dim = 768;
    float v[2 * 768];
    int checked = 0;
    const cJSON *row;
    cJSON_ArrayForEach(row, table) {
        const char *pair[2] = {cJSON_GetObjectItem(row, "a")->valuestring, cJSON_GetObjectItem(row, "b")->valuestring};
        static const char *keys[] = {"none", "STS"};
        for (int k = 0; k < 2; k++) {
            const cJSON *want = cJSON_GetObjectItem(row, keys[k]);
            if (!cJSON_IsNumber(want)) continue;
            emb_encode_options eo = emb_encode_default_options();
            eo.prompt_name = k ? keys[k] : NULL;
            cr_assert_eq(emb_model_dim(m, &eo), dim);
            cr_assert_eq(emb_encode(m, pair, NULL, 2, &eo, v, NULL, &err), EMB_OK, "%s", err.message);
            double got = cosine(v, v + dim, dim);
            cr_log_info("\"%s\" / \"%s\" (%s): %.7f, published %.7f", pair[0], pair[1], keys[k], got,
                        want->valuedouble);
            cr_expect(fabs(got - want->valuedouble) <= 1e-4, "\"%s\" / \"%s\" (%s): %.7f, published %.7f", pair[0],
                      pair[1], keys[k], got, want->valuedouble);
            checked++;
        }
    }
    cr_expect_geq(checked, 8);
    cJSON_Delete(table);
    emb_model_free(m);
}

/* Token ids as sentence-transformers tokenizes them, without a prompt and
 * with the query prompt. */
Test(embeddinggemma, token_ids) {
    emb_model *m = load_model();
    cJSON *man = golden_json("manifest.json"), *ids = golden_json("ids.json");
    size_t n;
    char **texts = golden_texts(man, &n);
    static const char *which[] = {"none", "query"};
    int32_t *got = malloc(4096 * sizeof *got);
    for (int w = 0; w < 2; w++) {
        const cJSON *all = cJSON_GetObjectItem(ids, which[w]);
        cr_assert_eq((size_t)cJSON_GetArraySize(all), n);
        emb_encode_options eo = emb_encode_default_options();
        eo.prompt_name = w ? "query" : NULL;
        for (size_t i = 0; i < n; i++) {
            size_t len;
            emb_error err = {0};
            cr_assert_eq(emb_tokenize(m, texts[i], strlen(texts[i]), &eo, got, NULL, 4096, &len, &err), EMB_OK, "%s",
                         err.message);
            const cJSON *want = cJSON_GetArrayItem(all, (int)i);
            cr_assert_eq(len, (size_t)cJSON_GetArraySize(want), "%s text %zu: %zu tokens, reference %d", which[w], i,
                         len, cJSON_GetArraySize(want));
            for (size_t k = 0; k < len; k++)
                cr_assert_eq(got[k], cJSON_GetArrayItem(want, (int)k)->valueint, "%s text %zu token %zu", which[w], i, k);
        }
    }
    free(got);
    ts_free_texts(texts, n);
    cJSON_Delete(ids);
    cJSON_Delete(man);
    emb_model_free(m);
}

/* One configuration of the manifest (default, query, document, dim256):
 * its options, every vector against sentence-transformers'. */
static void check_config(const char *name) {
    emb_model *m = load_model();
    cJSON *man = golden_json("manifest.json");
    size_t n;
    char **texts = golden_texts(man, &n);
    const cJSON *cfg = NULL, *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(man, "configs"))
        if (strcmp(cJSON_GetObjectItem(c, "name")->valuestring, name) == 0) cfg = c;
    cr_assert_not_null(cfg, "manifest.json has no configuration %s", name);
    emb_encode_options eo = emb_encode_default_options();
    const cJSON *pn = cJSON_GetObjectItem(cfg, "prompt_name"), *td = cJSON_GetObjectItem(cfg, "truncate_dim");
    if (cJSON_IsString(pn)) eo.prompt_name = pn->valuestring;
    if (cJSON_IsNumber(td)) eo.truncate_dim = td->valueint;

    char rel[256];
    snprintf(rel, sizeof rel, "tests/golden/embeddinggemma/%s", cJSON_GetObjectItem(cfg, "file")->valuestring);
    char *path = ts_src_path(rel);
    size_t rows, cols;
    float *want = npy_load(path, &rows, &cols);
    free(path);
    cr_assert_not_null(want, "missing %s: run tools/make-golden-embeddinggemma", rel);
    cr_assert_eq(rows, n);
    cr_assert_eq((size_t)emb_model_dim(m, &eo), cols);
    float *got = malloc(n * cols * sizeof *got);
    emb_error err = {0};
    cr_assert_eq(emb_encode(m, (const char *const *)texts, NULL, n, &eo, got, NULL, &err), EMB_OK, "%s", err.message);
    size_t at;
    double worst = ts_worst_cos(got, want, n, cols, &at);
    cr_log_info("embeddinggemma-300m %s: %zu vectors x %zu, worst cos %.8f (text %zu)", name, n, cols, worst, at);
    cr_expect_geq(worst, 0.99999, "%s: worst cos %.8f for text %zu", name, worst, at);
    free(got);
    free(want);
    ts_free_texts(texts, n);
    cJSON_Delete(man);
    emb_model_free(m);
}

Test(embeddinggemma, default_options) { check_config("default"); }
Test(embeddinggemma, prompt_query) { check_config("query"); }
Test(embeddinggemma, prompt_document) { check_config("document"); }
Test(embeddinggemma, truncate_dim_256) { check_config("dim256"); }
