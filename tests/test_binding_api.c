/*
 * The API bindings use (host/engine/binding.c, emb_encode_with): model facts,
 * the max_seq_length setter, emb_tokenize, token embeddings, per-call batch
 * budget and progress, and several threads on one model. Token embeddings are
 * checked against emb_encode itself: all-MiniLM-L6-v2 mean-pools and
 * normalizes them, so pooling them by hand must give the sentence vector.
 * Parity with sentence-transformers is python/tests' job (golden files).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embedc.h"
#include "test_support.h"

static emb_model *m;
static const char *texts[] = {"Hello world!", "", "un chat dort sur le canapé",
                              "word word word word word word word word word word word word"};
#define NT (sizeof texts / sizeof *texts)

static void setup(void) {
    const char *dir = ts_default_model();
    if (!dir) return;
    emb_error err = {0};
    emb_model_options o = emb_model_default_options();
    o.device = EMB_DEVICE_CPU;
    cr_assert(emb_model_load(dir, &o, &m, &err) == EMB_OK, "%s", err.message);
}

static void teardown(void) {
    emb_model_free(m);
    m = NULL;
}

#define NEED_MODEL()                                                              \
    do {                                                                          \
        if (!m) cr_skip_test("default model not fetched (tools/fetch-model)");   \
    } while (0)

TestSuite(binding_api, .init = setup, .fini = teardown);

Test(binding_api, info_matches_describe_and_dim) {
    NEED_MODEL();
    emb_model_info info;
    emb_error err = {0};
    cr_assert(emb_model_get_info(m, &info, &err) == EMB_OK);
    cr_assert_eq(info.dim, emb_model_dim(m, NULL));
    cr_assert_eq(info.hidden, info.dim);   /* mean pooling, no Dense */
    cr_assert_eq(info.n_prompts, 0);
    cr_assert_str_eq(info.similarity_fn, "cosine");
    cr_assert_str_eq(info.backend, "cpu");
    char *d = emb_model_describe(m);
    char line[64];
    snprintf(line, sizeof line, "max length:      %d tokens (positions %d)", info.max_seq_length,
             info.max_positions);
    cr_assert(strstr(d, line), "describe lacks \"%s\"", line);
    cr_assert(strstr(d, info.normalize ? "normalize:       yes" : "normalize:       no"));
    free(d);
    const char *name, *text;
    cr_assert_eq(emb_model_prompt(m, 0, &name, &text, &err), EMB_ERR_INVALID_ARG);
    cr_assert(strstr(err.message, "0 prompts"));
}

Test(binding_api, tokenize_caps_and_max_length) {
    NEED_MODEL();
    emb_error err = {0};
    int32_t ids[600], types[600], few[3];
    size_t n = 0, n2 = 0;
    const char *t = texts[3];
    cr_assert(emb_tokenize(m, t, strlen(t), NULL, ids, types, 600, &n, &err) == EMB_OK, "%s", err.message);
    cr_assert_gt(n, 3);
    cr_assert(emb_tokenize(m, t, strlen(t), NULL, few, NULL, 3, &n2, &err) == EMB_OK);
    cr_assert_eq(n2, n, "the full count comes back even when cap is smaller");
    cr_assert_arr_eq(few, ids, sizeof few);
    /* a prompt adds its tokens (minus the [CLS]/[SEP] the text already has) */
    emb_encode_options o = emb_encode_default_options();
    o.prompt = "query: ";
    size_t np = 0, nq = 0;
    cr_assert(emb_tokenize(m, t, strlen(t), &o, ids, NULL, 600, &np, &err) == EMB_OK);
    cr_assert(emb_tokenize(m, "query: ", 7, NULL, ids, NULL, 600, &nq, &err) == EMB_OK);
    cr_assert_eq(np, n + nq - 2);
    /* the setter truncates later calls; out of range is refused */
    emb_model_info info;
    emb_model_get_info(m, &info, &err);
    cr_assert_eq(emb_model_set_max_length(m, 0, &err), EMB_ERR_INVALID_ARG);
    cr_assert_eq(emb_model_set_max_length(m, info.max_positions + 1, &err), EMB_ERR_INVALID_ARG);
    cr_assert(strstr(err.message, "max_seq_length"));
    cr_assert(emb_model_set_max_length(m, 5, &err) == EMB_OK);
    cr_assert(emb_tokenize(m, t, strlen(t), NULL, ids, NULL, 600, &n2, &err) == EMB_OK);
    cr_assert_eq(n2, 5);
}

Test(binding_api, token_embeddings_mean_pool_to_the_sentence_vector) {
    NEED_MODEL();
    emb_error err = {0};
    emb_model_info info;
    emb_model_get_info(m, &info, &err);
    int32_t counts[NT];
    cr_assert(emb_token_embeddings(m, texts, NULL, NT, NULL, NULL, 0, counts, &err) == EMB_OK, "%s",
              err.message);
    size_t total = 0;
    for (size_t i = 0; i < NT; i++) {
        size_t n = 0;
        int32_t ids[600];
        emb_tokenize(m, texts[i], strlen(texts[i]), NULL, ids, NULL, 600, &n, &err);
        cr_assert_eq((size_t)counts[i], n, "text %zu", i);
        total += n;
    }
    size_t h = (size_t)info.hidden, d = (size_t)info.dim;
    float *tok = malloc(total * h * sizeof *tok), *vec = malloc(NT * d * sizeof *vec);
    cr_assert_eq(emb_token_embeddings(m, texts, NULL, NT, NULL, tok, total - 1, counts, &err),
                 EMB_ERR_INVALID_ARG, "a buffer one token short is refused");
    cr_assert(emb_token_embeddings(m, texts, NULL, NT, NULL, tok, total, counts, &err) == EMB_OK, "%s",
              err.message);
    cr_assert(emb_encode(m, texts, NULL, NT, NULL, vec, NULL, &err) == EMB_OK);
    size_t row = 0;
    for (size_t i = 0; i < NT; i++) {
        double mean[1024] = {0}, norm = 0;
        for (int k = 0; k < counts[i]; k++, row++)
            for (size_t j = 0; j < h; j++) mean[j] += tok[row * h + j];
        for (size_t j = 0; j < h; j++) norm += mean[j] * mean[j];
        for (size_t j = 0; j < h; j++)
            cr_assert_float_eq(mean[j] / sqrt(norm), vec[i * d + j], 2e-5, "text %zu dim %zu", i, j);
    }
    free(tok);
    free(vec);
}

static void count_progress(void *ud, uint64_t docs, uint64_t tokens) {
    uint64_t *last = ud;
    cr_assert_geq(docs, last[0]);
    last[0] = docs;
    last[1] = tokens;
}

Test(binding_api, encode_with_budget_and_progress) {
    NEED_MODEL();
    emb_error err = {0};
    int d = emb_model_dim(m, NULL);
    float *a = malloc(NT * (size_t)d * sizeof *a), *b = malloc(NT * (size_t)d * sizeof *b);
    uint64_t seen[2] = {0, 0};
    emb_run_options run = {1, count_progress, seen};   /* budget below max length: one text per batch */
    emb_encode_stats st;
    cr_assert(emb_encode(m, texts, NULL, NT, NULL, a, NULL, &err) == EMB_OK);
    cr_assert(emb_encode_with(m, texts, NULL, NT, NULL, &run, b, &st, &err) == EMB_OK, "%s", err.message);
    cr_assert_eq(seen[0], NT);
    cr_assert_eq(seen[1], st.tokens);
    for (size_t i = 0; i < NT * (size_t)d; i++) cr_assert_float_eq(a[i], b[i], 1e-6);
    free(a);
    free(b);
}

typedef struct {
    float *out;
    emb_status st;
} worker;

static void *encode_worker(void *arg) {
    worker *w = arg;
    emb_error err = {0};
    for (int r = 0; r < 3 && w->st == EMB_OK; r++)
        w->st = emb_encode(m, texts, NULL, NT, NULL, w->out, NULL, &err);
    return NULL;
}

Test(binding_api, threads_share_one_model) {
    NEED_MODEL();
    emb_error err = {0};
    size_t n = NT * (size_t)emb_model_dim(m, NULL);
    float *ref = malloc(n * sizeof *ref);
    cr_assert(emb_encode(m, texts, NULL, NT, NULL, ref, NULL, &err) == EMB_OK);
    pthread_t th[4];
    worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i].out = malloc(n * sizeof(float));
        w[i].st = EMB_OK;
        cr_assert(pthread_create(&th[i], NULL, encode_worker, &w[i]) == 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(w[i].st, EMB_OK);
        for (size_t j = 0; j < n; j++) cr_assert_float_eq(w[i].out[j], ref[j], 1e-6);
        free(w[i].out);
    }
    free(ref);
}
