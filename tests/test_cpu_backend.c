/*
 * End-to-end sanity of the CPU backend on the real default model
 * (models/all-MiniLM-L6-v2; skipped when it has not been fetched): packing
 * does not change a sequence's vector, `layer` picks the hidden states of
 * that layer, normalization and Matryoshka truncation give unit vectors, and
 * bad batches are refused. Parity with sentence-transformers itself is the
 * golden suite's job (test_golden.c); one anchor value guards the basics.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "model_files.h"
#include "test_support.h"

static emb_model_files mf;
static emb_backend *be;

static void setup(void) {
    const char *dir = ts_default_model();
    if (!dir) return;
    emb_error err = {0};
    cr_assert(emb_mf_load(dir, &mf, &err) == EMB_OK, "loading %s: %s", dir, err.message);
    cr_assert(emb_cpu_backend_create(&mf, 0, &be, &err) == EMB_OK, "%s", err.message);
}

static void teardown(void) {
    if (be) be->destroy(be);
    be = NULL;
    if (mf.dir) emb_mf_free(&mf);
    memset(&mf, 0, sizeof mf);
}

#define NEED_MODEL()                                                                   \
    do {                                                                               \
        if (!be) cr_skip_test("default model not fetched (tools/fetch-model)");       \
    } while (0)

/* Four sequences as the tokenizer would give them: [CLS] ... [SEP]. The
 * first is "hello world"; the others are arbitrary in-vocabulary ids of
 * awkward lengths (1 is a lone [CLS]). */
enum { NSEQ = 4 };
static const int LENS[NSEQ] = {4, 33, 1, 130};
static int32_t ids[4 + 33 + 1 + 130], types[4 + 33 + 1 + 130], cu[NSEQ + 1];

static int make_batch(emb_batch *b) {
    static const int32_t hello[] = {101, 7592, 2088, 102};
    uint32_t r = 12345;
    cu[0] = 0;
    for (int s = 0; s < NSEQ; s++) {
        cu[s + 1] = cu[s] + LENS[s];
        for (int p = 0; p < LENS[s]; p++) {
            int t = cu[s] + p;
            r = r * 1664525u + 1013904223u;
            ids[t] = s == 0 ? hello[p] : p == 0 ? 101 : p == LENS[s] - 1 ? 102 : 1000 + (int32_t)(r >> 8) % 20000;
            types[t] = 0;
        }
    }
    memset(b, 0, sizeof *b);
    b->ids = ids, b->type_ids = types, b->cu_seqlens = cu, b->nseq = NSEQ, b->total = cu[NSEQ];
    for (int s = 0; s < NSEQ; s++) b->max_seqlen = LENS[s] > b->max_seqlen ? LENS[s] : b->max_seqlen;
    return cu[NSEQ];
}

static emb_job default_job(void) {
    emb_job j = {0};
    j.pooling_modes = mf.st.pooling_modes;
    j.layer = mf.r.layers;
    j.apply_dense = mf.st.n_dense > 0;
    j.normalize = 1;
    j.out_dim = mf.st.n_dense ? mf.st.dense[mf.st.n_dense - 1].out_features
                              : mf.r.hidden * __builtin_popcount((unsigned)j.pooling_modes);
    return j;
}

/* The b-th sequence of the batch as a batch of its own. */
static emb_batch single(int s, int32_t cu1[2]) {
    emb_batch b = {0};
    cu1[0] = 0, cu1[1] = LENS[s];
    b.ids = ids + cu[s], b.type_ids = types + cu[s], b.cu_seqlens = cu1;
    b.nseq = 1, b.total = b.max_seqlen = LENS[s];
    return b;
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

static double norm(const float *x, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += (double)x[i] * x[i];
    return sqrt(s);
}

TestSuite(cpu_backend, .init = setup, .fini = teardown, .timeout = 300);

Test(cpu_backend, anchor_hello_world) {
    NEED_MODEL();
    emb_batch b;
    make_batch(&b);
    emb_job j = default_job();
    float *out = malloc((size_t)NSEQ * j.out_dim * sizeof *out);
    emb_error err = {0};
    cr_assert(be->encode(be, &b, &j, out, &err) == EMB_OK, "%s", err.message);
    /* sentence-transformers 6.2, SentenceTransformer(...).encode("hello world")[:6] */
    const float want[6] = {-0.03447726f, 0.03102326f, 0.00673502f,
                           0.02610894f,  -0.03936203f, -0.16030248f};
    for (int i = 0; i < 6; i++)
        cr_expect(fabsf(out[i] - want[i]) < 1e-6f, "[%d] got %.8f want %.8f", i, out[i], want[i]);
    free(out);
}

Test(cpu_backend, packing_does_not_matter) {
    NEED_MODEL();
    emb_batch b;
    make_batch(&b);
    emb_job j = default_job();
    j.normalize = 0; /* compare raw magnitudes, not only directions */
    float *packed = malloc((size_t)NSEQ * j.out_dim * sizeof(float));
    float *alone = malloc((size_t)j.out_dim * sizeof(float));
    emb_error err = {0};
    cr_assert(be->encode(be, &b, &j, packed, &err) == EMB_OK, "%s", err.message);
    for (int s = 0; s < NSEQ; s++) {
        int32_t cu1[2];
        emb_batch one = single(s, cu1);
        cr_assert(be->encode(be, &one, &j, alone, &err) == EMB_OK, "%s", err.message);
        double d = max_abs_diff(alone, packed + (size_t)s * j.out_dim, (size_t)j.out_dim);
        cr_expect(d <= 1e-6, "sequence %d: packed vs alone differ by %.3g", s, d);
    }
    /* Reversed order inside the batch: each vector follows its sequence. */
    static int32_t rids[sizeof ids / sizeof *ids], rtypes[sizeof ids / sizeof *ids];
    int32_t rcu[NSEQ + 1] = {0};
    for (int k = 0; k < NSEQ; k++) {
        int s = NSEQ - 1 - k;
        memcpy(rids + rcu[k], ids + cu[s], (size_t)LENS[s] * sizeof *ids);
        memcpy(rtypes + rcu[k], types + cu[s], (size_t)LENS[s] * sizeof *ids);
        rcu[k + 1] = rcu[k] + LENS[s];
    }
    emb_batch rb = b;
    rb.ids = rids, rb.type_ids = rtypes, rb.cu_seqlens = rcu;
    float *rev = malloc((size_t)NSEQ * j.out_dim * sizeof(float));
    cr_assert(be->encode(be, &rb, &j, rev, &err) == EMB_OK, "%s", err.message);
    for (int k = 0; k < NSEQ; k++) {
        int s = NSEQ - 1 - k;
        double d = max_abs_diff(rev + (size_t)k * j.out_dim, packed + (size_t)s * j.out_dim,
                                (size_t)j.out_dim);
        cr_expect(d <= 1e-6, "sequence %d: reordered batch differs by %.3g", s, d);
    }
    free(packed), free(alone), free(rev);
}

Test(cpu_backend, layer_selects_hidden_states) {
    NEED_MODEL();
    emb_batch b;
    const int total = make_batch(&b), H = mf.r.hidden;
    const int K = mf.r.layers > 1 ? mf.r.layers / 2 : 1;
    float *tok = malloc((size_t)total * H * sizeof(float));
    float *last = malloc((size_t)total * H * sizeof(float));
    float *pooled = malloc((size_t)NSEQ * H * sizeof(float));
    emb_error err = {0};
    cr_assert(be->token_embeddings(be, &b, K, tok, &err) == EMB_OK, "%s", err.message);
    cr_assert(be->token_embeddings(be, &b, mf.r.layers, last, &err) == EMB_OK, "%s",
              err.message);
    cr_expect(max_abs_diff(tok, last, (size_t)total * H) > 1e-2,
              "layer %d and the last layer give the same hidden states", K);

    /* encode with layer K and mean pooling == mean of layer K's states. */
    emb_job j = {.pooling_modes = EMB_POOL_MEAN, .layer = K, .out_dim = H};
    cr_assert(be->encode(be, &b, &j, pooled, &err) == EMB_OK, "%s", err.message);
    for (int s = 0; s < NSEQ; s++)
        for (int c = 0; c < H; c++) {
            double m = 0;
            for (int t = cu[s]; t < cu[s + 1]; t++) m += tok[(size_t)t * H + c];
            m /= LENS[s];
            cr_expect(fabs(pooled[(size_t)s * H + c] - m) <= 1e-5, "seq %d [%d]: %.7g vs %.7g", s,
                      c, pooled[(size_t)s * H + c], m);
        }
    /* Layer 0: the embeddings' LayerNorm output, finite and not all zero. */
    cr_assert(be->token_embeddings(be, &b, 0, tok, &err) == EMB_OK, "%s", err.message);
    cr_expect(norm(tok, H) > 0 && isfinite(norm(tok, total * H)));
    free(tok), free(last), free(pooled);
}

Test(cpu_backend, normalize_and_truncate) {
    NEED_MODEL();
    emb_batch b;
    make_batch(&b);
    emb_job j = default_job();
    const int full = j.out_dim, D = full / 3;
    float *raw = malloc((size_t)NSEQ * full * sizeof(float));
    float *unit = malloc((size_t)NSEQ * full * sizeof(float));
    float *trunc = malloc((size_t)NSEQ * D * sizeof(float));
    emb_error err = {0};
    j.normalize = 0;
    cr_assert(be->encode(be, &b, &j, raw, &err) == EMB_OK, "%s", err.message);
    j.normalize = 1;
    cr_assert(be->encode(be, &b, &j, unit, &err) == EMB_OK, "%s", err.message);
    j.truncate_dim = D, j.out_dim = D;
    cr_assert(be->encode(be, &b, &j, trunc, &err) == EMB_OK, "%s", err.message);
    for (int s = 0; s < NSEQ; s++) {
        const float *r = raw + (size_t)s * full, *u = unit + (size_t)s * full,
                    *t = trunc + (size_t)s * D;
        cr_expect(fabs(norm(u, full) - 1.0) < 1e-6, "seq %d: |v| = %.9f", s, norm(u, full));
        cr_expect(fabs(norm(t, D) - 1.0) < 1e-6, "seq %d truncated: |v| = %.9f", s, norm(t, D));
        cr_expect(fabs(norm(r, full) - 1.0) > 1e-3, "seq %d: unnormalized vector is unit", s);
        /* truncate-then-normalize == the raw prefix, normalized */
        double n = norm(r, D);
        for (int c = 0; c < D; c++)
            cr_expect(fabs(t[c] - r[c] / n) < 1e-6, "seq %d [%d]: %.8f vs %.8f", s, c, t[c],
                      r[c] / n);
    }
    free(raw), free(unit), free(trunc);
}

Test(cpu_backend, refuses_bad_batches) {
    NEED_MODEL();
    emb_batch b;
    make_batch(&b);
    emb_job j = default_job();
    float *out = malloc((size_t)NSEQ * j.out_dim * sizeof(float));
    emb_error err = {0};

    int32_t saved = ids[5];
    ids[5] = mf.r.vocab_size;
    cr_expect(be->encode(be, &b, &j, out, &err) == EMB_ERR_INVALID_ARG);
    ids[5] = -1;
    cr_expect(be->encode(be, &b, &j, out, &err) == EMB_ERR_INVALID_ARG);
    ids[5] = saved;

    emb_batch bad = b;
    bad.total = b.total - 1;
    cr_expect(be->encode(be, &bad, &j, out, &err) == EMB_ERR_INVALID_ARG);

    emb_job jl = j;
    jl.layer = mf.r.layers + 1;
    cr_expect(be->encode(be, &b, &jl, out, &err) == EMB_ERR_INVALID_ARG);
    jl.layer = 0;
    cr_expect(be->encode(be, &b, &jl, out, &err) == EMB_ERR_INVALID_ARG);

    emb_job jd = j;
    jd.out_dim = j.out_dim + 1;
    cr_expect(be->encode(be, &b, &jd, out, &err) == EMB_ERR_INVALID_ARG);

    /* And the backend still works afterwards. */
    cr_expect(be->encode(be, &b, &j, out, &err) == EMB_OK, "%s", err.message);
    free(out);
}
