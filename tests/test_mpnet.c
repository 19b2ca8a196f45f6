/*
 * The real all-mpnet-base-v2 (tools/fetch-model all-mpnet-base-v2) against
 * sentence-transformers on 320 texts of the corpus (tests/golden/mpnet, made
 * by tools/make-golden-mpnet): every vector's cosine >= 0.99999 on the CPU
 * backend. Its tokenizer.json pads and truncates at 128 while
 * sentence_bert_config.json says 384: the 384 must win, so the corpus
 * includes texts longer than 128 tokens. Skipped when the model is absent.
 */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "embedc.h"
#include "npy.h"
#include "test_support.h"

static const char *mpnet_dir(void) {
    static char path[4096];
    const char *env = getenv("EMBEDC_MPNET");
    if (env && *env) return env;
    char *p = ts_src_path("models/all-mpnet-base-v2/model.safetensors");
    struct stat sb;
    int ok = stat(p, &sb) == 0;
    free(p);
    if (!ok) return NULL;
    p = ts_src_path("models/all-mpnet-base-v2");
    snprintf(path, sizeof path, "%s", p);
    free(p);
    return path;
}

Test(mpnet, real_model_matches_sentence_transformers, .timeout = 900) {
    const char *dir = mpnet_dir();
    if (!dir) cr_skip_test("all-mpnet-base-v2 not fetched (tools/fetch-model all-mpnet-base-v2)");
    char *mpath = ts_src_path("tests/golden/mpnet/manifest.json");
    char *ms = ts_read_file(mpath, NULL);
    free(mpath);
    cr_assert_not_null(ms, "run tools/make-golden-mpnet");
    cJSON *man = cJSON_Parse(ms);
    free(ms);
    const cJSON *idx = cJSON_GetObjectItem(man, "texts");
    const size_t n = (size_t)cJSON_GetArraySize(idx);
    cr_assert_geq(n, 300);
    cr_assert_gt(cJSON_GetObjectItem(man, "max_tokens")->valueint, 128, "the corpus must exceed 128 tokens");

    size_t *want_idx = malloc(n * sizeof *want_idx);
    for (size_t i = 0; i < n; i++) want_idx[i] = (size_t)cJSON_GetArrayItem(idx, (int)i)->valueint;
    char **texts = ts_corpus_texts(want_idx, n);
    free(want_idx);
    cr_assert_not_null(texts, "manifest indices not found in the corpus");

    emb_model_options mo = emb_model_default_options();
    mo.device = EMB_DEVICE_CPU;
    emb_model *m = NULL;
    emb_error err = {0};
    cr_assert_eq(emb_model_load(dir, &mo, &m, &err), EMB_OK, "%s", err.message);
    char *desc = emb_model_describe(m);
    cr_expect(strstr(desc, "max length:      384 tokens") != NULL, "sentence_bert_config's 384 must win:\n%s", desc);
    free(desc);

    char *rpath = ts_src_path("tests/golden/mpnet/ref.npy");
    size_t rows, cols;
    float *want = npy_load(rpath, &rows, &cols);
    free(rpath);
    cr_assert_not_null(want);
    cr_assert_eq(rows, n);
    emb_encode_options eo = emb_encode_default_options();
    cr_assert_eq((size_t)emb_model_dim(m, &eo), cols);
    float *got = malloc(n * cols * sizeof *got);
    cr_assert_eq(emb_encode(m, (const char *const *)texts, NULL, n, &eo, got, NULL, &err), EMB_OK, "%s", err.message);
    size_t worst_i;
    double worst = ts_worst_cos(got, want, n, cols, &worst_i);
    cr_log_info("all-mpnet-base-v2: %zu vectors, worst cos %.8f (text %zu)", n, worst, worst_i);
    cr_expect_geq(worst, 0.99999, "worst cos %.8f for text %zu", worst, worst_i);
    free(got);
    free(want);
    ts_free_texts(texts, n);
    cJSON_Delete(man);
    emb_model_free(m);
}
