/*
 * The real google/embeddinggemma-300m on the CUDA backend (under the
 * simulator in CI, on the device in tools/gpu-check): Google's published
 * similarity table within 2e-3 in bf16 and in f16, and the first texts of
 * tests/golden/embeddinggemma within cos 0.999 of sentence-transformers'
 * fp32 vectors. EmbeddingGemma's activations leave fp16's range, so a
 * request for f16 computes in bf16 (the recipe's f16_unsafe): the f16 run's
 * vectors must equal the bf16 run's bit for bit. Skipped when the model has
 * not been fetched (tools/fetch-model embeddinggemma-300m).
 */
#ifdef KT_CR_SHIM
#include "cr_shim.h"   /* the real-GPU build: Criterion's API without Criterion (cr_shim.h) */
#else
#include <criterion/criterion.h>
#endif
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embedc.h"
#include "npy.h"
#include "test_support.h"

#define N_TEXTS 12   /* golden texts run through the GPU (the simulator is slow on a 300M model) */

static char *model_dir(void) {
    char *dir = ts_model_dir("EMBEDC_EMBEDDINGGEMMA", "models/embeddinggemma-300m");
    if (!dir) cr_skip_test("embeddinggemma-300m not fetched (tools/fetch-model embeddinggemma-300m)");
    return dir;
}

static emb_model *load(const char *dir, emb_dtype dt) {
    emb_model_options mo = emb_model_default_options();
    mo.device = EMB_DEVICE_CUDA;
    mo.dtype = dt;
    mo.threads = 1;
    mo.verbose = 0;
    emb_model *m = NULL;
    emb_error err = {0};
    cr_assert_eq(emb_model_load(dir, &mo, &m, &err), EMB_OK, "%s", err.message);
    return m;
}

static cJSON *golden_json(const char *file) {
    char rel[256];
    snprintf(rel, sizeof rel, "tests/golden/embeddinggemma/%s", file);
    cJSON *j = ts_src_json(rel);
    cr_assert_not_null(j, "missing or invalid %s: run tools/make-golden-embeddinggemma", rel);
    return j;
}

/* Every table pair and the first N_TEXTS golden texts through one model:
 * cosines of the pairs into sims (table order, "none" before "STS"), vectors
 * of the texts into vecs [N_TEXTS, 768]. Returns the number of pairs. */
static int run_model(emb_model *m, const cJSON *table, char **texts, double *sims, float *vecs) {
    emb_error err = {0};
    float v[2 * 768];
    int k = 0;
    const cJSON *row;
    cJSON_ArrayForEach(row, table) {
        const char *pair[2] = {cJSON_GetObjectItem(row, "a")->valuestring, cJSON_GetObjectItem(row, "b")->valuestring};
        static const char *keys[] = {"none", "STS"};
        for (int p = 0; p < 2; p++) {
            if (!cJSON_IsNumber(cJSON_GetObjectItem(row, keys[p]))) continue;
            emb_encode_options eo = emb_encode_default_options();
            eo.prompt_name = p ? keys[p] : NULL;
            cr_assert_eq(emb_encode(m, pair, NULL, 2, &eo, v, NULL, &err), EMB_OK, "%s", err.message);
            sims[k++] = ts_worst_cos(v, v + 768, 1, 768, NULL);
        }
    }
    emb_encode_options eo = emb_encode_default_options();
    cr_assert_eq(emb_encode(m, (const char *const *)texts, NULL, N_TEXTS, &eo, vecs, NULL, &err), EMB_OK, "%s",
                 err.message);
    return k;
}

Test(cuda_embeddinggemma, published_table_bf16_f16, .timeout = 3600) {
    char *dir = model_dir();
    cJSON *table = golden_json("table.json"), *man = golden_json("manifest.json");
    size_t idx[N_TEXTS];
    for (int i = 0; i < N_TEXTS; i++) idx[i] = (size_t)cJSON_GetArrayItem(cJSON_GetObjectItem(man, "texts"), i)->valueint;
    char **texts = ts_corpus_texts(idx, N_TEXTS);
    cr_assert_not_null(texts);
    size_t rows, cols;
    char *rpath = ts_src_path("tests/golden/embeddinggemma/default.npy");
    float *want = npy_load(rpath, &rows, &cols);
    free(rpath);
    cr_assert(want && cols == 768 && rows >= N_TEXTS);

    double published[16], sims[2][16];
    float *vecs[2];
    int n_pub = 0;
    const cJSON *row;
    cJSON_ArrayForEach(row, table) {
        static const char *keys[] = {"none", "STS"};
        for (int p = 0; p < 2; p++)
            if (cJSON_IsNumber(cJSON_GetObjectItem(row, keys[p])))
                published[n_pub++] = cJSON_GetObjectItem(row, keys[p])->valuedouble;
    }
    static const emb_dtype dts[] = {EMB_DTYPE_BF16, EMB_DTYPE_F16};
    static const char *names[] = {"bf16", "f16"};
    for (int d = 0; d < 2; d++) {
        emb_model *m = load(dir, dts[d]);
        vecs[d] = malloc((size_t)N_TEXTS * 768 * sizeof(float));
        cr_assert_eq(run_model(m, table, texts, sims[d], vecs[d]), n_pub);
        emb_model_free(m);
        double worst_diff = 0;
        for (int k = 0; k < n_pub; k++) {
            const double diff = fabs(sims[d][k] - published[k]);
            worst_diff = diff > worst_diff ? diff : worst_diff;
            cr_expect_leq(diff, 2e-3, "%s: pair %d cos %.7f, published %.7f", names[d], k, sims[d][k], published[k]);
        }
        size_t at;
        const double worst = ts_worst_cos(vecs[d], want, N_TEXTS, 768, &at);
        cr_log_info("embeddinggemma-300m on the CUDA backend, %s requested: table worst |diff| %.2e; %d texts "
                    "worst cos %.7f vs sentence-transformers fp32 (text %zu)", names[d], worst_diff, N_TEXTS, worst, at);
        cr_expect_geq(worst, 0.999, "%s: text %zu cos %.7f vs sentence-transformers", names[d], at, worst);
    }
    /* f16 was asked for and bf16 computed: the same vectors, bit for bit. */
    cr_expect_eq(memcmp(vecs[0], vecs[1], (size_t)N_TEXTS * 768 * sizeof(float)), 0,
                 "the f16 request did not compute in bf16 (EmbeddingGemma's recipe is f16_unsafe)");
    free(vecs[0]);
    free(vecs[1]);
    free(want);
    ts_free_texts(texts, N_TEXTS);
    cJSON_Delete(table);
    cJSON_Delete(man);
    free(dir);
}
