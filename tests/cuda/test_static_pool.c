/*
 * The static gather-and-pool kernel (kernels/static_pool.cu) against its CPU
 * twin emb_static_pool (host/cpu/static_backend.c): random tables, model2vec
 * mapping + weights or plain rows, max / mean / sum and their concatenation,
 * truncation, normalization, empty sequences, awkward widths; outputs
 * poisoned before each launch, identical under every simulator order.
 */
#include <math.h>
#include <stdio.h>

#include "embedc.h"
#include "io.h"
#include "kt_util.h"
#include "static_backend.h"
#include "test_support.h"

typedef struct {
    float *out;
    const float *table;
    int dim, nseq, modes, out_dim, normalize;
    const int32_t *ids, *groups, *cu, *mapping;
    const float *weights;
    size_t bytes;
} sp_args;

static void sp_launch(void *ud) {
    sp_args *a = ud;
    kt_poison(a->out, a->bytes);
    KT_CHECK(emb_launch_static_pool(a->out, a->table, a->dim, a->ids, a->groups, a->cu, a->nseq, a->mapping, a->weights,
                                    a->modes, a->out_dim, a->normalize, 0));
}

static void sp_case(int dim, int nseq, int model2vec, int modes, int trunc, int normalize, int subwords) {
    kt_need_device();
    const int rows = 37, n_ids = model2vec ? 101 : rows;
    int width = dim * __builtin_popcount((unsigned)modes), out_dim = trunc ? trunc : width;
    float *table = kt_rand((size_t)rows * dim, 1.0f, EMB_KDT_F32);
    int32_t *mapping = NULL;
    float *weights = NULL;
    if (model2vec) {
        mapping = malloc((size_t)n_ids * sizeof *mapping);
        weights = malloc((size_t)n_ids * sizeof *weights);
        for (int i = 0; i < n_ids; i++) {
            mapping[i] = (int32_t)(kt_uniform(0, 1) * rows) % rows;
            weights[i] = kt_uniform(0.1f, 2.0f);
        }
    }
    int32_t *cu = malloc((size_t)(nseq + 1) * sizeof *cu);
    cu[0] = 0;
    for (int s = 0; s < nseq; s++) cu[s + 1] = cu[s] + (s == 1 ? 0 : (s * 7 + 3) % 41);   /* sequence 1 empty */
    int total = cu[nseq];
    int32_t *ids = malloc((size_t)(total ? total : 1) * sizeof *ids);
    for (int t = 0; t < total; t++) ids[t] = (int32_t)(kt_uniform(0, 1) * n_ids) % n_ids;
    /* fastText-style words of 1..5 rows (the last may be cut by the sequence end). */
    int32_t *groups = NULL;
    if (subwords) {
        groups = malloc((size_t)(total ? total : 1) * sizeof *groups);
        for (int s = 0; s < nseq; s++)
            for (int t = cu[s]; t < cu[s + 1];) {
                int g = 1 + (t * 13 + s) % 5;
                for (int q = t; q < t + g && q < cu[s + 1]; q++) groups[q] = g;
                t += g;
            }
    }

    emb_static_vectors sv = {0};
    sv.dim = dim;
    sv.rows = (size_t)rows;
    sv.vecs = table;
    sv.n_ids = (size_t)n_ids;
    sv.mapping = mapping;
    sv.weights = weights;
    float *ref = malloc((size_t)nseq * out_dim * sizeof *ref), *tmp = malloc((size_t)width * sizeof *tmp);
    for (int s = 0; s < nseq; s++) {
        emb_static_pool(&sv, ids + cu[s], groups ? groups + cu[s] : NULL, cu[s + 1] - cu[s], modes, tmp);
        float *r = ref + (size_t)s * out_dim;
        memcpy(r, tmp, (size_t)out_dim * sizeof *r);
        if (normalize) {
            double ss = 0;
            for (int d = 0; d < out_dim; d++) ss += (double)r[d] * r[d];
            if (ss > 0)
                for (int d = 0; d < out_dim; d++) r[d] = (float)(r[d] / sqrt(ss));
        }
    }
    size_t bytes = (size_t)nseq * out_dim * sizeof(float);
    sp_args a = {kt_poisoned(bytes), kt_upload(table, (size_t)rows * dim, EMB_KDT_F32), dim, nseq, modes, out_dim,
                 normalize, kt_upload_bytes(ids, (size_t)(total ? total : 1) * 4),
                 subwords ? kt_upload_bytes(groups, (size_t)(total ? total : 1) * 4) : NULL,
                 kt_upload_bytes(cu, (size_t)(nseq + 1) * 4),
                 model2vec ? kt_upload_bytes(mapping, (size_t)n_ids * 4) : NULL,
                 model2vec ? kt_upload(weights, (size_t)n_ids, EMB_KDT_F32) : NULL, bytes};
    kt_run_orders(sp_launch, &a, a.out, bytes);
    float *got = kt_download(a.out, (size_t)nseq * out_dim, EMB_KDT_F32);
    char what[128];
    snprintf(what, sizeof what, "static_pool dim=%d nseq=%d model2vec=%d modes=%#x trunc=%d norm=%d subwords=%d", dim,
             nseq, model2vec, modes, trunc, normalize, subwords);
    kt_compare(what, got, ref, (size_t)nseq * out_dim, 1e-5f, 1e-5f);
    /* The empty sequence pools to zeros (and stays zero when normalized). */
    if (nseq > 1)
        for (int d = 0; d < out_dim; d++) cr_assert_eq(got[out_dim + d], 0.0f, "%s: empty sequence", what);
    cudaFree(a.out); cudaFree((void *)a.table); cudaFree((void *)a.ids); cudaFree((void *)a.groups); cudaFree((void *)a.cu);
    cudaFree((void *)a.mapping); cudaFree((void *)a.weights);
    free(got); free(ref); free(tmp); free(ids); free(groups); free(cu); free(mapping); free(weights); free(table);
}

Test(static_pool, each_mode_awkward_sizes) {
    static const int dims[] = {1, 31, 33, 513}, nseqs[] = {1, 31, 33};
    static const int modes[] = {EMB_POOL_MEAN, EMB_POOL_MAX, EMB_POOL_SUM};
    for (int d = 0; d < 4; d++)
        for (int n = 0; n < 3; n++) sp_case(dims[d], nseqs[n], (d + n) % 2, modes[(d + n) % 3], 0, 0, 0);
}

Test(static_pool, model2vec_weights_concatenated_truncated_normalized) {
    sp_case(64, 33, 1, EMB_POOL_MEAN, 0, 1, 0);                                 /* model2vec's own mode */
    sp_case(33, 31, 1, EMB_POOL_MAX | EMB_POOL_MEAN | EMB_POOL_SUM, 70, 1, 0);  /* cut inside the mean block */
    sp_case(300, 5, 0, EMB_POOL_MEAN | EMB_POOL_SUM, 0, 1, 0);
}

Test(static_pool, fasttext_subword_groups) {
    sp_case(31, 33, 0, EMB_POOL_MEAN | EMB_POOL_MAX, 0, 0, 1);
    sp_case(64, 31, 0, EMB_POOL_SUM, 0, 1, 1);
}

Test(static_pool, rejects_bad_arguments) {
    kt_need_device();
    float *d = kt_poisoned(64);
    int32_t cu[2] = {0, 0};
    cr_assert_eq(emb_launch_static_pool(d, d, 4, (const int32_t *)d, NULL, cu, 1, NULL, NULL, EMB_POOL_CLS, 4, 0, 0), cudaErrorInvalidValue);
    cr_assert_eq(emb_launch_static_pool(d, d, 4, (const int32_t *)d, NULL, cu, 1, NULL, NULL, EMB_POOL_MEAN, 5, 0, 0), cudaErrorInvalidValue);
    cudaGetLastError();
    cudaFree(d);
}

/* The whole path: emb_model_load(--device cuda) on static models gives the
 * CUDA static backend, whose vectors equal the CPU backend's. */
static void engine_case(const char *rel, int pooling) {
    kt_need_device();
    enum { N = 200 };
    char *texts[N];
    size_t n = 0;
    io_reader *r;
    emb_error err;
    cr_assert_eq(io_reader_open(ts_src("tests/data/corpus/texts.jsonl"), IO_IN_JSONL, "text", &r, &err), EMB_OK);
    const char *t;
    size_t len;
    while (n < N && io_reader_next(r, &t, &len, &err) == 1) texts[n++] = strndup(t, len);
    io_reader_close(r);
    float *v[2] = {NULL, NULL};
    int dim = 0;
    for (int dev = 0; dev < 2; dev++) {
        emb_model_options mo = emb_model_default_options();
        mo.device = dev ? EMB_DEVICE_CUDA : EMB_DEVICE_CPU;
        emb_model *m = NULL;
        cr_assert_eq(emb_model_load(ts_src(rel), &mo, &m, &err), EMB_OK, "%s: %s", rel, err.message);
        char *d = emb_model_describe(m);
        cr_assert(strstr(d, dev ? "backend:         cuda-static" : "backend:         cpu-static"), "%s", d);
        free(d);
        emb_encode_options eo = emb_encode_default_options();
        eo.pooling = pooling;
        eo.normalize = 1;
        dim = emb_model_dim(m, &eo);
        v[dev] = malloc(n * (size_t)dim * sizeof(float));
        cr_assert_eq(emb_encode(m, (const char *const *)texts, NULL, n, &eo, v[dev], NULL, &err), EMB_OK, "%s", err.message);
        emb_model_free(m);
    }
    kt_compare(rel, v[1], v[0], n * (size_t)dim, 1e-5f, 1e-5f);
    for (size_t i = 0; i < n; i++) free(texts[i]);
    free(v[0]);
    free(v[1]);
}

Test(static_pool, engine_device_cuda_matches_cpu) {
    engine_case("tests/golden/static/w2v.bin", EMB_POOL_MEAN | EMB_POOL_MAX);
    engine_case("tests/golden/static/st-static", 0);
}
