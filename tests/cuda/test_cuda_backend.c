/*
 * The whole CUDA backend against the CPU backend (the fp32 reference) and
 * the golden sentence-transformers vectors: a small random BERT built in
 * memory (odd sequence lengths, type ids, prompt skips, Dense, truncation,
 * every pooling mode, the chunked/OOM-split path) and, when fetched, the real
 * all-MiniLM-L6-v2. Every vector must reach cos >= 0.9995 in fp16 and bf16.
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

#include <cuda_runtime_api.h>

#include "backend.h"
#include "cuda_backend.h"
#include "embedc.h"
#include "model_files.h"
#include "npy.h"
#include "test_support.h"

#ifdef EMBEDC_SIM
#include "embsim.h"
#endif

#define MIN_COS 0.9995

/* Real-GPU builds skip when no device is usable (the simulator has one). */
static void need_device(void) {
#ifndef EMBEDC_SIM
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
        cudaGetLastError();
        cr_skip_test("no CUDA device");
    }
#endif
}
TestSuite(cuda_backend, .init = need_device);

static uint64_t rng = 0x2545f4914f6cdd1dull;
static float urand(float amp) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return amp * (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* ---- a random BERT in memory ---------------------------------------------- */

typedef struct {
    emb_model_files mf;
    float **bufs;
    int nbufs;
} toy_model;

static emb_tensor toy_tensor(toy_model *t, int64_t d0, int64_t d1, float amp, float center) {
    size_t n = (size_t)d0 * (size_t)(d1 ? d1 : 1);
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = center + urand(amp);
    t->bufs = realloc(t->bufs, (size_t)(t->nbufs + 1) * sizeof *t->bufs);
    t->bufs[t->nbufs++] = x;
    emb_tensor e = {.data = x, .dtype = EMB_DTYPE_F32, .ndim = d1 ? 2 : 1, .name = "toy"};
    e.shape[0] = d0;
    e.shape[1] = d1;
    return e;
}

/* A post-norm encoder with learned positions, token types and biased
 * LayerNorms, as a recipe (host/arch/recipe.h). */
static void toy_build(toy_model *t, int hidden, int heads, int layers, int inter, int dense_out) {
    memset(t, 0, sizeof *t);
    emb_recipe *r = &t->mf.r;
    snprintf(r->model_type, sizeof r->model_type, "toy");
    r->family = "toy";
    r->dtype = EMB_DTYPE_F32;
    r->vocab_size = 97;
    r->hidden = hidden;
    r->layers = layers;
    r->heads = r->kv_heads = heads;
    r->head_dim = hidden / heads;
    r->scale = 1.0f / sqrtf((float)r->head_dim);
    r->intermediate = inter;
    r->max_position = 160;
    r->pad_token_id = -1;
    r->act = EMB_ACT_GELU;
    r->place = EMB_PLACE_POST;
    const float wa = 1.5f / sqrtf((float)hidden), eps = 1e-12f;
    r->emb.word = toy_tensor(t, r->vocab_size, hidden, 1.0f, 0);
    r->emb.scale = 1.0f;
    r->emb.pos = EMB_EPOS_LEARNED;
    r->emb.pos_pad_id = -1;
    r->emb.position = toy_tensor(t, r->max_position, hidden, 0.3f, 0);
    r->emb.token_type = toy_tensor(t, 2, hidden, 0.3f, 0);
    r->emb.type_vocab = 2;
    r->emb.norm = (emb_norm){EMB_NORM_LAYER, eps, toy_tensor(t, hidden, 0, 0.2f, 1.0f),
                             toy_tensor(t, hidden, 0, 0.1f, 0)};
    r->layer = calloc((size_t)layers, sizeof *r->layer);
    for (int l = 0; l < layers; l++) {
        emb_recipe_layer *L = &r->layer[l];
        L->wq = toy_tensor(t, hidden, hidden, wa * 2, 0);
        L->wk = toy_tensor(t, hidden, hidden, wa * 2, 0);
        L->wv = toy_tensor(t, hidden, hidden, wa, 0);
        L->bq = toy_tensor(t, hidden, 0, 0.1f, 0);
        L->bk = toy_tensor(t, hidden, 0, 0.1f, 0);
        L->bv = toy_tensor(t, hidden, 0, 0.1f, 0);
        L->wo = toy_tensor(t, hidden, hidden, wa, 0);
        L->bo = toy_tensor(t, hidden, 0, 0.1f, 0);
        L->attn_norm = (emb_norm){EMB_NORM_LAYER, eps, toy_tensor(t, hidden, 0, 0.2f, 1.0f),
                                  toy_tensor(t, hidden, 0, 0.1f, 0)};
        L->w_up = toy_tensor(t, inter, hidden, wa, 0);
        L->b_up = toy_tensor(t, inter, 0, 0.1f, 0);
        L->w_down = toy_tensor(t, hidden, inter, 1.5f / sqrtf((float)inter), 0);
        L->b_down = toy_tensor(t, hidden, 0, 0.1f, 0);
        L->mlp_norm = (emb_norm){EMB_NORM_LAYER, eps, toy_tensor(t, hidden, 0, 0.2f, 1.0f),
                                 toy_tensor(t, hidden, 0, 0.1f, 0)};
        L->window_left = L->window_right = -1;
    }
    emb_st_config *st = &t->mf.st;
    st->pooling_modes = EMB_POOL_MEAN;
    st->include_prompt = 1;
    st->pooling_dim = hidden;
    st->normalize = 1;
    if (dense_out) {
        st->dense = calloc(1, sizeof *st->dense);
        st->n_dense = 1;
        st->dense->in_features = hidden;
        st->dense->out_features = dense_out;
        st->dense->has_bias = 1;
        st->dense->act = EMB_ACT_TANH;
        st->dense->w = toy_tensor(t, dense_out, hidden, wa, 0);
        st->dense->b = toy_tensor(t, dense_out, 0, 0.1f, 0);
    }
}

static void toy_free(toy_model *t) {
    for (int i = 0; i < t->nbufs; i++) free(t->bufs[i]);
    free(t->bufs);
    free(t->mf.r.layer);
    free(t->mf.st.dense);
}

/* ---- batches and comparison ------------------------------------------------- */

typedef struct {
    emb_batch b;
    int32_t *ids, *types, *cu, *skip;
} test_batch;

static void make_batch(test_batch *tb, const int *lens, int nseq, int vocab, int with_skip) {
    int total = 0, maxlen = 0;
    for (int i = 0; i < nseq; i++) {
        total += lens[i];
        if (lens[i] > maxlen) maxlen = lens[i];
    }
    tb->ids = malloc((size_t)total * 4);
    tb->types = malloc((size_t)total * 4);
    tb->cu = malloc(((size_t)nseq + 1) * 4);
    tb->skip = with_skip ? malloc((size_t)nseq * 4) : NULL;
    tb->cu[0] = 0;
    for (int i = 0; i < nseq; i++) {
        tb->cu[i + 1] = tb->cu[i] + lens[i];
        if (with_skip) tb->skip[i] = lens[i] > 3 ? 2 : 0;
    }
    for (int t = 0; t < total; t++) {
        tb->ids[t] = (int32_t)((urand(1.0f) * 0.5f + 0.5f) * (vocab - 1));
        tb->types[t] = (t % 5) == 1;
    }
    tb->b = (emb_batch){tb->ids, tb->types, tb->cu, tb->skip, nseq, total, maxlen};
}

static void free_batch(test_batch *tb) {
    free(tb->ids);
    free(tb->types);
    free(tb->cu);
    free(tb->skip);
}

/* Worst per-vector cosine between two [n, dim] arrays. */
static double worst_cos(const float *a, const float *b, int n, int dim, int *worst_i) {
    double worst = 1.0;
    for (int i = 0; i < n; i++) {
        double dot = 0, na = 0, nb = 0;
        for (int j = 0; j < dim; j++) {
            double x = a[(size_t)i * dim + j], y = b[(size_t)i * dim + j];
            cr_assert(!isnan(x), "vector %d element %d is NaN", i, j);
            dot += x * y;
            na += x * x;
            nb += y * y;
        }
        double c = (na == 0 && nb == 0) ? 1.0 : dot / sqrt(na * nb);
        if (c < worst) {
            worst = c;
            if (worst_i) *worst_i = i;
        }
    }
    return worst;
}

static emb_job make_job(const emb_model_files *mf, int modes, int layer, int dense, int normalize,
                        int trunc) {
    int width = 0;
    for (int m = modes; m; m &= m - 1) width++;
    width *= mf->r.hidden;
    if (dense && mf->st.n_dense) width = mf->st.dense[mf->st.n_dense - 1].out_features;
    emb_job j = {modes, layer, dense, normalize, trunc, trunc ? trunc : width};
    return j;
}

/* CUDA (dtype) vs CPU on one batch and job. */
static void compare_backends(const emb_model_files *mf, emb_dtype dt, const emb_batch *b,
                             const emb_job *job, size_t budget, const char *what) {
    emb_backend *cpu = NULL, *gpu = NULL;
    emb_error err = {0};
    cr_assert_eq(emb_cpu_backend_create(mf, 1, &cpu, &err), EMB_OK, "%s", err.message);
    cr_assert_eq(emb_cuda_backend_create(mf, dt, 0, budget, &gpu, &err), EMB_OK, "%s", err.message);
    const size_t n = (size_t)b->nseq * job->out_dim;
    float *want = malloc(n * sizeof *want), *got = malloc(n * sizeof *got);
    for (size_t i = 0; i < n; i++) got[i] = NAN;
    cr_assert_eq(cpu->encode(cpu, b, job, want, &err), EMB_OK, "%s", err.message);
    cr_assert_eq(gpu->encode(gpu, b, job, got, &err), EMB_OK, "%s", err.message);
    int wi = 0;
    double c = worst_cos(got, want, b->nseq, job->out_dim, &wi);
    cr_log_info("%s %s: %d vectors, worst cos %.7f (#%d)", what, dt == EMB_DTYPE_BF16 ? "bf16" : "f16",
                b->nseq, c, wi);
    cr_expect_geq(c, MIN_COS, "%s %s: cos %.7f for vector %d", what,
                  dt == EMB_DTYPE_BF16 ? "bf16" : "f16", c, wi);
    free(want);
    free(got);
    gpu->destroy(gpu);
    cpu->destroy(cpu);
}

static const emb_dtype DTYPES[] = {EMB_DTYPE_F16, EMB_DTYPE_BF16};

Test(cuda_backend, toy_bert_all_modes, .timeout = 1200) {
    toy_model t;
    toy_build(&t, 64, 2, 2, 128, 0);
    const int lens[] = {1, 31, 33, 127, 3, 64};
    test_batch tb;
    make_batch(&tb, lens, 6, t.mf.r.vocab_size, 1);
    for (int d = 0; d < 2; d++) {
        emb_job j = make_job(&t.mf, EMB_POOL_MEAN, 2, 0, 1, 0);
        compare_backends(&t.mf, DTYPES[d], &tb.b, &j, 0, "toy mean");
        j = make_job(&t.mf, EMB_POOL_CLS | EMB_POOL_MEAN_SQRT_LEN | EMB_POOL_WEIGHTED_MEAN | EMB_POOL_LAST_TOKEN,
                     2, 0, 0, 100);
        compare_backends(&t.mf, DTYPES[d], &tb.b, &j, 0, "toy cls+sqrt+weighted+last, truncated");
        j = make_job(&t.mf, EMB_POOL_MAX, 1, 0, 1, 0);
        compare_backends(&t.mf, DTYPES[d], &tb.b, &j, 0, "toy max, layer 1");
    }
    free_batch(&tb);
    toy_free(&t);
}

Test(cuda_backend, toy_bert_dense_head_dim_64) {
    toy_model t;
    toy_build(&t, 128, 2, 1, 256, 48);
    const int lens[] = {5, 33, 17};
    test_batch tb;
    make_batch(&tb, lens, 3, t.mf.r.vocab_size, 0);
    for (int d = 0; d < 2; d++) {
        emb_job j = make_job(&t.mf, EMB_POOL_MEAN, 1, 1, 1, 32);
        compare_backends(&t.mf, DTYPES[d], &tb.b, &j, 0, "toy dense+truncate");
    }
    free_batch(&tb);
    toy_free(&t);
}

/* ---- EMBEDC_GRAPHS helpers -------------------------------------------------- */

/* A CUDA backend (f16 or bf16, token budget) with EMBEDC_GRAPHS at `graphs`. */
static emb_backend *graph_backend(const emb_model_files *mf, emb_dtype dt, size_t budget, const char *graphs) {
    emb_backend *be = NULL;
    emb_error err = {0};
    setenv("EMBEDC_GRAPHS", graphs, 1);
    const emb_status st = emb_cuda_backend_create(mf, dt, 0, budget, &be, &err);
    unsetenv("EMBEDC_GRAPHS");
    cr_assert_eq(st, EMB_OK, "EMBEDC_GRAPHS=%s: %s", graphs, err.message);
    return be;
}

/* b's vectors under job j from backend be (NaN where nothing was written). */
static float *encode_on(emb_backend *be, const emb_batch *b, const emb_job *j) {
    const size_t n = (size_t)b->nseq * j->out_dim;
    float *out = malloc(n * sizeof *out);
    for (size_t i = 0; i < n; i++) out[i] = NAN;
    emb_error err = {0};
    cr_assert_eq(be->encode(be, b, j, out, &err), EMB_OK, "%s", err.message);
    return out;
}

/* The run note's counts: captured, launched, chunks run directly, evicted. */
typedef struct {
    unsigned long long captured, launched, direct, evicted;
} graph_counts;
static graph_counts counts_of(emb_backend *be) {
    char note[256] = "";
    graph_counts g = {0};
    be->run_note(be, note, sizeof note);
    cr_assert_eq(sscanf(note, "CUDA graphs: %llu captured, %llu launched, %llu chunks run directly, %llu evicted",
                        &g.captured, &g.launched, &g.direct, &g.evicted),
                 4, "run note: \"%s\"", note);
    return g;
}

/* A batch bigger than the token budget runs as several pipelined chunks. */
Test(cuda_backend, chunked_over_budget) {
    toy_model t;
    toy_build(&t, 64, 2, 1, 128, 0);
    int lens[40];
    for (int i = 0; i < 40; i++) lens[i] = 1 + (i * 37) % 150;
    test_batch tb;
    make_batch(&tb, lens, 40, t.mf.r.vocab_size, 1);
    emb_job j = make_job(&t.mf, EMB_POOL_MEAN, 1, 0, 1, 0);
    compare_backends(&t.mf, EMB_DTYPE_F16, &tb.b, &j, 512, "toy chunked");
    free_batch(&tb);
    toy_free(&t);
}

/* A recipe no issue-10 family has, so the generic forward's other branches
 * run too: grouped-query heads with rotary (partial), per-layer sliding
 * windows, softcap, sandwich norms with RMSNorm (1 + w), scaled word
 * embeddings without positions or token types, a bias-free gated MLP, a
 * final norm; and a pre-norm variant with LayerNorm without bias, a layer
 * without attn_norm and a fused gate/up weight. */
static emb_norm toy_norm(toy_model *t, emb_norm_kind kind, int dim) {
    return (emb_norm){kind, 1e-6f, toy_tensor(t, dim, 0, 0.2f, kind == EMB_NORM_RMS_1P ? 0.0f : 1.0f),
                      {0}};
}

static void toy_generic(toy_model *t, emb_norm_place place, int kv, int hd) {
    const int hidden = 64, heads = 4, inter = 96, layers = 3;
    toy_build(t, hidden, 2, layers, inter, 0);
    emb_recipe *r = &t->mf.r;
    r->heads = heads, r->kv_heads = kv, r->head_dim = hd;
    r->scale = 1.0f / sqrtf((float)hd);
    r->place = place;
    r->gated = 1;
    r->act = EMB_ACT_GELU_TANH;
    r->attn_pos = EMB_APOS_ROTARY;
    r->rotary_dim = 16;
    r->emb.pos = EMB_EPOS_NONE;
    r->emb.token_type = (emb_tensor){0};
    r->emb.type_vocab = 0;
    const emb_norm_kind nk = place == EMB_PLACE_SANDWICH ? EMB_NORM_RMS_1P : EMB_NORM_LAYER;
    if (place == EMB_PLACE_SANDWICH) {
        r->emb.scale = 8.0f;
        r->emb.norm = (emb_norm){0};
        r->softcap = 1.5f;   /* small enough to bend most logits */
    } else {
        r->emb.norm = toy_norm(t, EMB_NORM_LAYER, hidden);   /* LayerNorm without bias */
    }
    r->final_norm = toy_norm(t, nk, hidden);
    const float wa = 1.5f / sqrtf((float)hidden);
    for (int l = 0; l < layers; l++) {
        emb_recipe_layer *L = &r->layer[l];
        memset(L, 0, sizeof *L);
        L->wq = toy_tensor(t, heads * hd, hidden, wa * 2, 0);
        L->wk = toy_tensor(t, kv * hd, hidden, wa * 2, 0);
        L->wv = toy_tensor(t, kv * hd, hidden, wa, 0);
        L->wo = toy_tensor(t, hidden, heads * hd, wa, 0);
        if (place == EMB_PLACE_SANDWICH) {
            L->w_gate = toy_tensor(t, inter, hidden, wa, 0);
            L->w_up = toy_tensor(t, inter, hidden, wa, 0);
            L->attn_post_norm = toy_norm(t, nk, hidden);
            L->mlp_post_norm = toy_norm(t, nk, hidden);
        } else {
            L->w_gate_up = toy_tensor(t, 2 * inter, hidden, wa, 0);
        }
        L->w_down = toy_tensor(t, hidden, inter, 1.5f / sqrtf((float)inter), 0);
        if (place == EMB_PLACE_SANDWICH || l > 0) L->attn_norm = toy_norm(t, nk, hidden);
        L->mlp_norm = toy_norm(t, nk, hidden);
        /* Alternate a sliding causal window, a symmetric local one and none. */
        L->window_left = l == 0 ? 6 : l == 1 ? 4 : -1;
        L->window_right = l == 0 ? 0 : l == 1 ? 4 : -1;
        L->rope_theta = l == 1 ? 10000.0f : 160000.0f;
    }
}

static const emb_norm_place GENERIC_PLACES[] = {EMB_PLACE_SANDWICH, EMB_PLACE_PRE};

/* toy_generic with place p of GENERIC_PLACES and a batch of awkward lengths. */
static void toy_generic_batch(toy_model *t, test_batch *tb, int p) {
    toy_generic(t, GENERIC_PLACES[p], 2, 32);
    const int lens[] = {1, 31, 33, 80, 3};
    make_batch(tb, lens, 5, t->mf.r.vocab_size, 0);
}

Test(cuda_backend, toy_generic_recipes, .timeout = 1200) {
    for (int p = 0; p < 2; p++) {
        toy_model t;
        test_batch tb;
        toy_generic_batch(&t, &tb, p);
        for (int d = 0; d < 2; d++) {
            emb_job j = make_job(&t.mf, EMB_POOL_MEAN | EMB_POOL_LAST_TOKEN, 3, 0, 1, 0);
            compare_backends(&t.mf, DTYPES[d], &tb.b, &j, 0, p ? "toy pre-norm" : "toy sandwich");
            /* An earlier layer: no final norm after it (the fused sandwich step must not apply one). */
            emb_job j2 = make_job(&t.mf, EMB_POOL_MEAN, 2, 0, 1, 0);
            compare_backends(&t.mf, DTYPES[d], &tb.b, &j2, 0, p ? "toy pre-norm layer 2" : "toy sandwich layer 2");
        }
        free_batch(&tb);
        toy_free(&t);
    }
}

/* The decoder families' attention: per-head q/k RMS norms (Gemma 3's 1 + w
 * with sandwich RMS_1P norms; Qwen3's plain w with pre-norm), MQA (4 query
 * heads on 1 KV head) and GQA, head_dim 256 and 128, full and partial
 * rotary, a sliding causal window (Mistral), a symmetric bidirectional one
 * (Gemma 3 bidirectional) and full attention, softcap: the fused q/k norm +
 * rotary kernel inside the whole forward against the CPU backend. */
Test(cuda_backend, toy_qk_norm_gqa_windows, .timeout = 1200) {
    for (int v = 0; v < 2; v++) {
        toy_model t;
        const int hd = v ? 128 : 256;
        toy_generic(&t, v ? EMB_PLACE_PRE : EMB_PLACE_SANDWICH, v ? 2 : 1, hd);
        emb_recipe *r = &t.mf.r;
        const emb_norm_kind qk = v ? EMB_NORM_RMS : EMB_NORM_RMS_1P;
        r->rotary_dim = v ? hd / 2 : hd;
        r->softcap = v ? 0.0f : 20.0f;
        for (int l = 0; l < r->layers; l++) {
            emb_recipe_layer *L = &r->layer[l];
            L->q_norm = toy_norm(&t, qk, hd);
            L->k_norm = toy_norm(&t, qk, hd);
            L->window_left = l == 2 ? -1 : l == 0 ? 7 : 5;
            L->window_right = l == 2 ? -1 : l == 0 ? 0 : 5;
        }
        const int lens[] = {1, 31, 33, 80, 3};
        test_batch tb;
        make_batch(&tb, lens, 5, r->vocab_size, 0);
        for (int d = 0; d < 2; d++) {
            emb_job j = make_job(&t.mf, EMB_POOL_MEAN | EMB_POOL_LAST_TOKEN, 3, 0, 1, 0);
            compare_backends(&t.mf, DTYPES[d], &tb.b, &j, 0, v ? "toy qwen3-like" : "toy gemma3-like");
        }
        free_batch(&tb);
        toy_free(&t);
    }
}

/* fp16 safety: word embeddings scaled to ~2e5 (past fp16's 65504, as
 * EmbeddingGemma's activations reach ~8e5) overflow an f16 forward into
 * non-finite vectors (which the engine then refuses, naming the document);
 * a recipe marked f16_unsafe makes the backend compute in bf16 when asked
 * for f16, say so once in its notice, and match the CPU backend. */
Test(cuda_backend, f16_unsafe_recipe_computes_in_bf16, .timeout = 1200) {
    toy_model t;
    toy_generic(&t, EMB_PLACE_SANDWICH, 2, 32);
    t.mf.r.emb.scale = 2e5f;
    const int lens[] = {1, 31, 33};
    test_batch tb;
    make_batch(&tb, lens, 3, t.mf.r.vocab_size, 0);
    emb_job j = make_job(&t.mf, EMB_POOL_MEAN, 3, 0, 1, 0);
    emb_backend *gpu = NULL;
    emb_error err = {0};
    float out[3 * 64];

    cr_assert_eq(emb_cuda_backend_create(&t.mf, EMB_DTYPE_F16, 0, 0, &gpu, &err), EMB_OK, "%s", err.message);
    cr_assert_eq(gpu->compute_dtype, EMB_DTYPE_F16);
    cr_assert_eq(gpu->notice[0], 0);
    cr_assert_eq(gpu->encode(gpu, &tb.b, &j, out, &err), EMB_OK, "%s", err.message);
    int bad = 0;
    for (int i = 0; i < 3 * 64; i++) bad += !isfinite(out[i]);
    cr_assert_gt(bad, 0, "an f16 forward of 2e5-sized activations should overflow");
    gpu->destroy(gpu);

    t.mf.r.f16_unsafe = 1;
    t.mf.r.f16_unsafe_reason = "toy activations reach 2e5";
    cr_assert_eq(emb_cuda_backend_create(&t.mf, EMB_DTYPE_F16, 0, 0, &gpu, &err), EMB_OK, "%s", err.message);
    cr_assert_eq(gpu->compute_dtype, EMB_DTYPE_BF16);
    cr_assert(strstr(gpu->notice, "bf16 instead of f16") && strstr(gpu->notice, "toy activations reach 2e5"),
              "notice: %s", gpu->notice);
    gpu->destroy(gpu);
    cr_assert_eq(emb_cuda_backend_create(&t.mf, EMB_DTYPE_AUTO, 0, 0, &gpu, &err), EMB_OK, "%s", err.message);
    cr_assert_eq(gpu->compute_dtype, EMB_DTYPE_BF16);
    cr_assert_eq(gpu->notice[0], 0, "auto picks bf16 without a notice: %s", gpu->notice);
    gpu->destroy(gpu);
    compare_backends(&t.mf, EMB_DTYPE_F16, &tb.b, &j, 0, "toy f16_unsafe asked f16");
    free_batch(&tb);
    toy_free(&t);
}

Test(cuda_backend, rejects_bad_input) {
    toy_model t;
    toy_build(&t, 64, 2, 1, 128, 0);
    emb_backend *gpu = NULL;
    emb_error err = {0};
    cr_assert_eq(emb_cuda_backend_create(&t.mf, EMB_DTYPE_F16, 0, 0, &gpu, &err), EMB_OK, "%s", err.message);
    const int lens[] = {4};
    test_batch tb;
    make_batch(&tb, lens, 1, t.mf.r.vocab_size, 0);
    tb.ids[2] = 5000;
    emb_job j = make_job(&t.mf, EMB_POOL_MEAN, 1, 0, 1, 0);
    float out[64];
    cr_assert_eq(gpu->encode(gpu, &tb.b, &j, out, &err), EMB_ERR_INVALID_ARG);
    cr_assert(strstr(err.message, "id 5000"), "%s", err.message);
    gpu->destroy(gpu);
    t.mf.r.head_dim = 48;
    cr_assert_eq(emb_cuda_backend_create(&t.mf, EMB_DTYPE_F16, 0, 0, &gpu, &err), EMB_ERR_UNSUPPORTED);
    free_batch(&tb);
    toy_free(&t);
}

/* EMBEDC_ATTENTION: an unknown value is an error naming it; wgmma where this
 * device has no sm_90a code is an error saying what it needs (the simulator
 * runs it: that case is checked by the kernel suite's probe). */
Test(cuda_backend, attention_choice_is_checked) {
    toy_model t;
    toy_build(&t, 64, 2, 1, 128, 0);
    emb_backend *gpu = NULL;
    emb_error err = {0};
    setenv("EMBEDC_ATTENTION", "fast", 1);
    cr_assert_eq(emb_cuda_backend_create(&t.mf, EMB_DTYPE_F16, 0, 0, &gpu, &err), EMB_ERR_INVALID_ARG);
    cr_assert(strstr(err.message, "EMBEDC_ATTENTION=fast: expected mma, wgmma or auto"), "%s", err.message);
    setenv("EMBEDC_ATTENTION", "wgmma", 1);
    int wg = 0;
    cr_assert_eq(emb_cuda_wgmma_available(&wg, &err), EMB_OK, "%s", err.message);
    if (wg) {
        cr_assert_eq(emb_cuda_backend_create(&t.mf, EMB_DTYPE_F16, 0, 0, &gpu, &err), EMB_OK, "%s", err.message);
        gpu->destroy(gpu);
    } else {
        cr_assert_eq(emb_cuda_backend_create(&t.mf, EMB_DTYPE_F16, 0, 0, &gpu, &err), EMB_ERR_UNSUPPORTED);
        cr_assert(strstr(err.message, "does not run sm_90a code of this build"), "%s", err.message);
    }
    setenv("EMBEDC_ATTENTION", "auto", 1);   /* wgmma where it runs, mma elsewhere: never an error */
    cr_assert_eq(emb_cuda_backend_create(&t.mf, EMB_DTYPE_F16, 0, 0, &gpu, &err), EMB_OK, "%s", err.message);
    gpu->destroy(gpu);
    unsetenv("EMBEDC_ATTENTION");
    toy_free(&t);
}

/* ---- out of device memory ------------------------------------------------------ */

#ifdef EMBEDC_SIM
/* The simulator bounds device memory (embsim_set_device_memory) and injects
 * out-of-memory failures into launches and GEMMs (embsim_inject_oom), the
 * two ways a GPU runs out: too small for the workspace at start-up, or
 * shared with another process mid-run. The backend's policy: halve the token
 * budget at create time (down to its floor), and split a chunk that fails
 * mid-encode in two and retry; either way every vector must come out as
 * without the shortage. */

/* 40 documents of 1..150 tokens (about 3000 tokens), all different. */
static void oom_batch(test_batch *tb, int vocab) {
    int lens[40];
    for (int i = 0; i < 40; i++) lens[i] = 1 + (i * 37) % 150;
    make_batch(tb, lens, 40, vocab, 1);
}

static double cos_rows(const float *a, const float *b, int dim) {
    double dot = 0, na = 0, nb = 0;
    for (int j = 0; j < dim; j++) {
        dot += (double)a[j] * b[j];
        na += (double)a[j] * a[j];
        nb += (double)b[j] * b[j];
    }
    return na == 0 && nb == 0 ? 1.0 : dot / sqrt(na * nb);
}

/* Row i of `got` is reference row i and no other: no document lost (NaN
 * left from the poison), duplicated or moved. */
static void expect_same_docs(const float *got, const float *ref, int n, int dim, const char *what) {
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < dim; k++)
            cr_assert(!isnan(got[(size_t)i * dim + k]), "%s: document %d lost (not written)", what, i);
        double own = cos_rows(got + (size_t)i * dim, ref + (size_t)i * dim, dim);
        cr_assert_geq(own, MIN_COS, "%s: document %d: cos %.7f to its reference", what, i, own);
        for (int j = 0; j < n; j++) {
            double other = cos_rows(got + (size_t)i * dim, ref + (size_t)j * dim, dim);
            cr_assert(j == i || other < own, "%s: row %d is document %d's vector (cos %.7f)", what, i, j,
                      other);
        }
    }
}

/* Vectors of `b` from a fresh backend with the given budget; NULL and the
 * status in *st when create or encode fails. */
static float *encode_fresh(const emb_model_files *mf, size_t budget, const emb_batch *b,
                           const emb_job *j, emb_status *st, emb_error *err) {
    emb_backend *gpu = NULL;
    if ((*st = emb_cuda_backend_create(mf, EMB_DTYPE_F16, 0, budget, &gpu, err))) return NULL;
    float *out = malloc((size_t)b->nseq * j->out_dim * sizeof *out);
    for (size_t i = 0; i < (size_t)b->nseq * j->out_dim; i++) out[i] = NAN;
    *st = gpu->encode(gpu, b, j, out, err);
    gpu->destroy(gpu);
    if (*st) {
        free(out);
        return NULL;
    }
    return out;
}

/* Device memory a backend with this budget holds (weights + workspace). */
static size_t footprint(const emb_model_files *mf, size_t budget) {
    const size_t base = embsim_device_memory_used(0);
    emb_backend *gpu = NULL;
    emb_error err = {0};
    cr_assert_eq(emb_cuda_backend_create(mf, EMB_DTYPE_F16, 0, budget, &gpu, &err), EMB_OK, "%s",
                 err.message);
    size_t used = embsim_device_memory_used(0) - base;
    gpu->destroy(gpu);
    cr_assert_eq(embsim_device_memory_used(0), base, "destroy frees all device memory");
    return used;
}

Test(cuda_backend, oom_at_create_lowers_token_budget) {
    toy_model t;
    toy_build(&t, 64, 2, 1, 128, 0);
    test_batch tb;
    oom_batch(&tb, t.mf.r.vocab_size);
    emb_job j = make_job(&t.mf, EMB_POOL_MEAN, 1, 0, 1, 0);
    emb_status st;
    emb_error err = {0};
    float *ref = encode_fresh(&t.mf, 0, &tb.b, &j, &st, &err);
    cr_assert_eq(st, EMB_OK, "%s", err.message);
    for (int a = 0; a < 40; a++)
        for (int b = 0; b < a; b++)
            cr_assert_lt(cos_rows(ref + (size_t)a * 64, ref + (size_t)b * 64, 64), MIN_COS,
                         "documents %d and %d must be told apart", a, b);

    const size_t base = embsim_device_memory_used(0);
    const size_t at512 = footprint(&t.mf, 512), at1000 = footprint(&t.mf, 1000);
    const size_t at4096 = footprint(&t.mf, 4096), at8192 = footprint(&t.mf, 8192);
    cr_assert(at512 < at1000 && at1000 < at4096 && at4096 < at8192);

    /* The default budget (65536 tokens) halves until it fits: 8192 does not, 4096 does. */
    embsim_set_device_memory(base + (at4096 + at8192) / 2);
    emb_backend *gpu = NULL;
    cr_assert_eq(emb_cuda_backend_create(&t.mf, EMB_DTYPE_F16, 0, 0, &gpu, &err), EMB_OK,
                 "budget halved on OOM: %s", err.message);
    cr_assert_eq(embsim_device_memory_used(0) - base, at4096, "default -> ... -> 8192 -> 4096 tokens");
    cr_assert_float_eq(gpu->peak_flops, 132 * 1980000e3 * 4096, 1e6, "H100 peak from the clock rate");
    gpu->destroy(gpu);
    float *got = encode_fresh(&t.mf, 0, &tb.b, &j, &st, &err);
    cr_assert_eq(st, EMB_OK, "%s", err.message);
    expect_same_docs(got, ref, 40, 64, "default budget on a 4096-token device");
    free(got);

    /* A budget that halves past the floor (512 tokens here) lands on the floor. */
    embsim_set_device_memory(base + (at512 + at1000) / 2);
    got = encode_fresh(&t.mf, 1000, &tb.b, &j, &st, &err);
    cr_assert_eq(st, EMB_OK, "1000 tokens do not fit, the 512-token floor does: %s", err.message);
    expect_same_docs(got, ref, 40, 64, "budget 1000 on a 512-token device");
    free(got);

    /* Not even the floor: refused before allocating, saying what the model
     * needs and what the device has; nothing left allocated. */
    embsim_set_device_memory(base + at512 - 256);
    cr_assert_eq(emb_cuda_backend_create(&t.mf, EMB_DTYPE_F16, 0, 0, &gpu, &err), EMB_ERR_DEVICE_OOM);
    char want[160];
    snprintf(want, sizeof want, "the model needs %.1f MiB on device 0", (double)at512 / (1 << 20));
    cr_assert(strstr(err.message, want), "%s (wanted: %s)", err.message, want);
    snprintf(want, sizeof want, "the device has %.1f MiB free", (double)(at512 - 256) / (1 << 20));
    cr_assert(strstr(err.message, want), "%s (wanted: %s)", err.message, want);
    cr_assert_eq(embsim_device_memory_used(0), base, "a failed create frees what it allocated");
    embsim_set_device_memory(0);
    free(ref);
    free_batch(&tb);
    toy_free(&t);
}

/* A chunk that runs out of device memory is halved and retried, every
 * document once in its place; with EMBEDC_GRAPHS=on too, where the failures
 * also hit captures and graph launches (the cases repeat the same batch, so
 * its buckets are captured from the second one on). */
static void oom_in_encode(const char *graphs) {
    toy_model t;
    toy_build(&t, 64, 2, 1, 128, 0);
    test_batch tb;
    oom_batch(&tb, t.mf.r.vocab_size);
    emb_job j = make_job(&t.mf, EMB_POOL_MEAN, 1, 0, 1, 0);
    emb_status st;
    emb_error err = {0};
    /* 512 tokens: about 7 chunks of 11 launches and GEMMs each. */
    float *ref = encode_fresh(&t.mf, 512, &tb.b, &j, &st, &err);
    cr_assert_eq(st, EMB_OK, "%s", err.message);

    const int on = !strcmp(graphs, "on");
    /* With graphs, 600 tokens: 6 chunks, so that each encode puts the same
     * chunks on the same slots and the second one captures (the first OOM
     * lands inside a capture). */
    emb_backend *gpu = graph_backend(&t.mf, EMB_DTYPE_F16, on ? 600 : 512, graphs);
    float *got = malloc((size_t)40 * 64 * sizeof *got);
    /* Where the failures start (operations into the encode) and how many in a
     * row: the first kernel, mid-layer launches and GEMMs of later chunks, and
     * a chunk whose first half fails again. With graphs an encode has fewer
     * operations (a replayed chunk is one): none (the buckets are seen),
     * the second launch of a capture, none (the rest are captured), then
     * graph launches, two in a row. */
    static const long direct[][2] = {{0, 1}, {3, 1}, {11, 1}, {26, 1}, {40, 2}, {64, 1}};
    static const long graphed[][2] = {{0, 0}, {1, 1}, {0, 0}, {0, 0}, {0, 1}, {2, 1}, {4, 2}, {1, 1}};
    const long (*cases)[2] = on ? graphed : direct;
    const size_t ncases = on ? sizeof graphed / sizeof graphed[0] : sizeof direct / sizeof direct[0];
    for (size_t c = 0; c < ncases; c++) {
        for (size_t i = 0; i < (size_t)40 * 64; i++) got[i] = NAN;
        const long before = embsim_oom_injected();
        embsim_inject_oom(cases[c][0], cases[c][1]);
        st = gpu->encode(gpu, &tb.b, &j, got, &err);
        embsim_inject_oom(0, 0);
        cr_assert_eq(st, EMB_OK, "OOM after %ld operations: %s", cases[c][0], err.message);
        cr_assert_eq(embsim_oom_injected() - before, cases[c][1], "the failures hit this encode");
        char what[64];
        snprintf(what, sizeof what, "%ld OOM after %ld operations", cases[c][1], cases[c][0]);
        expect_same_docs(got, ref, 40, 64, what);
    }

    /* Out of memory for good: an error naming it, and the backend still works. */
    embsim_inject_oom(0, -1);
    st = gpu->encode(gpu, &tb.b, &j, got, &err);
    embsim_inject_oom(0, 0);
    cr_assert_eq(st, EMB_ERR_DEVICE_OOM, "%s", err.message);
    cr_assert(strstr(err.message, "out of memory"), "%s", err.message);
    for (size_t i = 0; i < (size_t)40 * 64; i++) got[i] = NAN;
    cr_assert_eq(gpu->encode(gpu, &tb.b, &j, got, &err), EMB_OK, "after the shortage: %s", err.message);
    expect_same_docs(got, ref, 40, 64, "after a failed encode");
    if (on) {
        /* Running out of memory in a capture is not a reason to give graphs up. */
        char note[256] = "";
        gpu->run_note(gpu, note, sizeof note);
        cr_expect(!strstr(note, "turned off"), "%s", note);
        const graph_counts g = counts_of(gpu);
        cr_expect_geq(g.captured, 6, "the batch's buckets were captured: %s", note);
        cr_expect_geq(g.launched, 12, "and replayed: %s", note);
    }
    gpu->destroy(gpu);
    free(got);
    free(ref);
    free_batch(&tb);
    toy_free(&t);
}

Test(cuda_backend, oom_in_encode_splits_and_retries) { oom_in_encode("off"); }
Test(cuda_backend, oom_in_encode_splits_and_retries_graphs) { oom_in_encode("on"); }
#endif

/* ---- the real model ---------------------------------------------------------- */

#ifdef EMBEDC_SIM   /* four virtual devices and encode_fresh: simulator only */
/* --tensor-parallel on the toy GQA recipes (4 query heads, 2 KV heads,
 * sandwich and pre-norm, separate and fused gate/up): TP 2 splits the KV
 * heads, TP 4 replicates each rank's one; 4 virtual devices, so TP 2 is two
 * replicas whose second got its weights by NCCL broadcast. Every vector
 * within MIN_COS of one device, replicas bit-identical. */
Test(cuda_backend, tensor_parallel_gqa, .timeout = 1800) {
    setenv("EMBSIM_DEVICES", "4", 1);   /* before the simulator's first call */
    const int ids[] = {0, 1, 2, 3};
    for (int p = 0; p < 2; p++) {
        toy_model t;
        test_batch tb;
        toy_generic_batch(&t, &tb, p);
        emb_job j = make_job(&t.mf, EMB_POOL_MEAN | EMB_POOL_LAST_TOKEN, 3, 0, 1, 0);
        const size_t n = (size_t)tb.b.nseq * j.out_dim;
        emb_status st;
        emb_error err = {0};
        float *ref = encode_fresh(&t.mf, 0, &tb.b, &j, &st, &err);
        cr_assert_eq(st, EMB_OK, "%s", err.message);
        for (int tp = 2; tp <= 4; tp += 2) {
            emb_backend *w[4] = {0};
            int nw = 0;
            cr_assert_eq(emb_cuda_workers_create(&t.mf, EMB_DTYPE_F16, ids, 4, tp, 0, w, &nw, &err), EMB_OK,
                         "TP %d: %s", tp, err.message);
            cr_assert_eq(nw, 4 / tp);
            float *got[2] = {malloc(n * sizeof(float)), malloc(n * sizeof(float))};
            for (int k = 0; k < nw; k++) {
                for (size_t i = 0; i < n; i++) got[k][i] = NAN;
                cr_assert_eq(w[k]->encode(w[k], &tb.b, &j, got[k], &err), EMB_OK, "TP %d worker %d: %s", tp, k,
                             err.message);
            }
            int wi = 0;
            double c = worst_cos(got[0], ref, tb.b.nseq, j.out_dim, &wi);
            cr_expect_geq(c, MIN_COS, "%s TP %d: cos %.7f for vector %d", p ? "pre" : "sandwich", tp, c, wi);
            if (nw == 2)
                cr_expect_eq(memcmp(got[0], got[1], n * sizeof(float)), 0, "replicas disagree");
            for (int k = 0; k < nw; k++) w[k]->destroy(w[k]);
            free(got[0]);
            free(got[1]);
        }
        free(ref);
        free_batch(&tb);
        toy_free(&t);
    }
}

/* What tensor parallelism refuses, in words. */
Test(cuda_backend, tensor_parallel_refusals) {
    setenv("EMBSIM_DEVICES", "4", 1);
    toy_model t;
    toy_generic(&t, EMB_PLACE_PRE, 2, 32);   /* 4 heads, 2 KV heads, intermediate 96 */
    const int ids[] = {0, 1, 2, 3};
    emb_backend *w[4] = {0};
    int nw = 0;
    emb_error err = {0};
    cr_assert_eq(emb_cuda_workers_create(&t.mf, EMB_DTYPE_F16, ids, 3, 3, 0, w, &nw, &err), EMB_ERR_INVALID_ARG);
    cr_assert(strstr(err.message, "toy has 4 attention heads, not a multiple of 3"), "%s", err.message);
    cr_assert_eq(emb_cuda_workers_create(&t.mf, EMB_DTYPE_F16, ids, 3, 2, 0, w, &nw, &err), EMB_ERR_INVALID_ARG);
    cr_assert(strstr(err.message, "3 devices cannot be split into groups of 2"), "%s", err.message);
    t.mf.r.intermediate = 90;   /* checked before any tensor is read */
    cr_assert_eq(emb_cuda_workers_create(&t.mf, EMB_DTYPE_F16, ids, 4, 4, 0, w, &nw, &err), EMB_ERR_INVALID_ARG);
    cr_assert(strstr(err.message, "90 intermediate columns, not a multiple of 4"), "%s", err.message);
    cr_assert_eq(nw, 0);
    t.mf.r.intermediate = 96;
    toy_free(&t);
}
#endif

Test(cuda_backend, minilm_vs_cpu, .timeout = 1200) {
    const char *dir = ts_default_model();
    if (!dir) cr_skip_test("default model not fetched (tools/fetch-model)");
    emb_model_files mf;
    emb_error err = {0};
    cr_assert_eq(emb_mf_load(dir, &mf, &err), EMB_OK, "%s", err.message);
    const int lens[] = {7, 31, 33, 128};
    test_batch tb;
    make_batch(&tb, lens, 4, mf.r.vocab_size, 0);
    for (int i = 0; i < 4; i++) tb.ids[tb.cu[i]] = 101, tb.ids[tb.cu[i + 1] - 1] = 102; /* [CLS] .. [SEP] */
    for (int t = 0; t < tb.b.total; t++) tb.types[t] = 0;
    for (int d = 0; d < 2; d++) {
        emb_job j = make_job(&mf, EMB_POOL_MEAN, mf.r.layers, 1, 1, 0);
        compare_backends(&mf, DTYPES[d], &tb.b, &j, 0, "all-MiniLM-L6-v2");
    }
    free_batch(&tb);
    emb_mf_free(&mf);
}

/* Per-token hidden states (token_embeddings: the f16/bf16 -> f32 conversion
 * on the device) against the CPU backend's, every token, the last layer and
 * an earlier one (no final norm there). */
Test(cuda_backend, minilm_token_embeddings_vs_cpu, .timeout = 1200) {
    const char *dir = ts_default_model();
    if (!dir) cr_skip_test("default model not fetched (tools/fetch-model)");
    emb_model_files mf;
    emb_error err = {0};
    cr_assert_eq(emb_mf_load(dir, &mf, &err), EMB_OK, "%s", err.message);
    const int lens[] = {7, 33, 1};
    test_batch tb;
    make_batch(&tb, lens, 3, mf.r.vocab_size, 0);
    for (int t = 0; t < tb.b.total; t++) tb.types[t] = 0;
    const int H = mf.r.hidden;
    emb_backend *cpu = NULL, *gpu = NULL;
    cr_assert_eq(emb_cpu_backend_create(&mf, 1, &cpu, &err), EMB_OK, "%s", err.message);
    cr_assert_eq(emb_cuda_backend_create(&mf, EMB_DTYPE_F16, 0, 0, &gpu, &err), EMB_OK, "%s", err.message);
    float *want = malloc((size_t)tb.b.total * H * sizeof *want), *got = malloc((size_t)tb.b.total * H * sizeof *got);
    for (int layer = mf.r.layers; layer >= 2; layer -= mf.r.layers - 2) {
        for (size_t i = 0; i < (size_t)tb.b.total * H; i++) got[i] = NAN;
        cr_assert_eq(cpu->token_embeddings(cpu, &tb.b, layer, want, &err), EMB_OK, "%s", err.message);
        cr_assert_eq(gpu->token_embeddings(gpu, &tb.b, layer, got, &err), EMB_OK, "%s", err.message);
        int wi = 0;
        const double c = worst_cos(got, want, tb.b.total, H, &wi);
        cr_log_info("all-MiniLM-L6-v2 token embeddings, layer %d: %d tokens, worst cos %.7f (#%d)", layer,
                    tb.b.total, c, wi);
        cr_expect_geq(c, MIN_COS, "layer %d: token %d cos %.7f", layer, wi, c);
    }
    free(want);
    free(got);
    gpu->destroy(gpu);
    cpu->destroy(cpu);
    free_batch(&tb);
    emb_mf_free(&mf);
}

/* Through the public API with --device cuda, against sentence-transformers. */
static void minilm_golden_check(const char *dir) {
    char *cpath = ts_src_path("tests/data/corpus/texts.jsonl");
    char *data = ts_read_file(cpath, NULL);
    free(cpath);
    cr_assert_not_null(data);
    char *gpath = ts_src_path("tests/golden/minilm/default.npy");
    size_t rows, cols;
    float *want = npy_load(gpath, &rows, &cols);
    free(gpath);
    cr_assert_not_null(want);
    /* The first texts of the corpus (golden "default" covers texts 0..). */
    enum { N = 12 };
    char *texts[N];
    int n = 0;
    for (char *line = data; n < N && line && *line; n++) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        cJSON *o = cJSON_Parse(line);
        cJSON *tx = cJSON_GetObjectItem(o, "text");
        cr_assert(cJSON_IsString(tx), "bad corpus line %d", n + 1);
        texts[n] = strdup(tx->valuestring);
        cJSON_Delete(o);
        line = nl ? nl + 1 : NULL;
    }
    for (int d = 0; d < 2; d++) {
        emb_model_options mo = emb_model_default_options();
        mo.device = EMB_DEVICE_CUDA;
        mo.dtype = DTYPES[d];
        emb_model *m = NULL;
        emb_error err = {0};
        cr_assert_eq(emb_model_load(dir, &mo, &m, &err), EMB_OK, "%s", err.message);
        emb_encode_options eo = emb_encode_default_options();
        cr_assert_eq((size_t)emb_model_dim(m, &eo), cols);
        double worst = 1;
        int checked = 0;
        for (int i = 0; i < n; i++) {
            float got[1024];
            const char *one[1] = {texts[i]};
            cr_assert_eq(emb_encode(m, one, NULL, 1, &eo, got, NULL, &err), EMB_OK, "%s", err.message);
            double c = worst_cos(got, want + (size_t)i * cols, 1, (int)cols, NULL);
            if (c < worst) worst = c;
            checked++;
        }
        cr_log_info("golden %s: %d texts, worst cos %.7f", d ? "bf16" : "f16", checked, worst);
        cr_expect_geq(worst, MIN_COS, "golden %s: worst cos %.7f", d ? "bf16" : "f16", worst);
        emb_model_free(m);
    }
    for (int i = 0; i < n; i++) free(texts[i]);
    free(want);
    free(data);
}

Test(cuda_backend, minilm_golden, .timeout = 1200) {
    const char *dir = ts_default_model();
    if (!dir) cr_skip_test("default model not fetched (tools/fetch-model)");
    minilm_golden_check(dir);
}

/* ---- every family's golden model ------------------------------------------------ */

/* tests/golden/families/<name>: tiny seeded random-weight models of each
 * family made by tools/make-golden-families with transformers' own classes,
 * the corpus texts they were run on (texts.json: indices into the corpus,
 * up to 128 tokens: longer than every window and relative distance) and
 * sentence-transformers' vectors (ref.npy). Through the public API on the
 * CUDA backend: every f16 vector within cos 0.9995 of the reference and of
 * the CPU backend; every bf16 vector within 0.9995, or, where transformers'
 * own bf16 forward on the same model is itself further off (its worst
 * cosine from tools/make-bf16-bounds), within twice transformers' bf16 error
 * (1 - 2 (1 - its worst cos)). These deliberately large random weights make
 * some families (T5 with logit scale 1, ModernBERT) amplify every bf16
 * rounding: each single rounding site (GEMM inputs, GEMM outputs, norms,
 * q/k/v) costs t5-relu about 3e-4 of cosine in an fp32 torch run, and the
 * backend and transformers round at different, equally legitimate sites. */
static double bf16_bound(const char *name) {
    char *path = ts_src_path("tests/golden/cuda_bf16_bounds.json");
    char *js = ts_read_file(path, NULL);
    free(path);
    cr_assert_not_null(js, "missing tests/golden/cuda_bf16_bounds.json (tools/make-bf16-bounds)");
    cJSON *j = cJSON_Parse(js);
    free(js);
    const cJSON *v = cJSON_GetObjectItem(j, name);
    cr_assert(cJSON_IsNumber(v), "cuda_bf16_bounds.json has no %s", name);
    const double twice = 1.0 - 2.0 * (1.0 - v->valuedouble);
    const double b = twice < MIN_COS ? twice : MIN_COS;
    cJSON_Delete(j);
    return b;
}

static char **family_texts(const char *name, size_t *n_out) {
    char rel[256];
    snprintf(rel, sizeof rel, "tests/golden/families/%s/texts.json", name);
    char *path = ts_src_path(rel);
    char *js = ts_read_file(path, NULL);
    free(path);
    cr_assert_not_null(js, "missing %s", rel);
    cJSON *t = cJSON_Parse(js);
    free(js);
    const cJSON *idx = cJSON_GetObjectItem(t, "texts");
    const size_t n = (size_t)cJSON_GetArraySize(idx);
    char **texts = calloc(n, sizeof *texts);
    char *cpath = ts_src_path("tests/data/corpus/texts.jsonl");
    char *data = ts_read_file(cpath, NULL);
    free(cpath);
    cr_assert_not_null(data);
    int line_no = 0;
    for (char *line = data; line && *line; line_no++) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        for (size_t i = 0; i < n; i++)
            if (cJSON_GetArrayItem(idx, (int)i)->valueint == line_no) {
                cJSON *o = cJSON_Parse(line);
                texts[i] = strdup(cJSON_GetObjectItem(o, "text")->valuestring);
                cJSON_Delete(o);
            }
        line = nl ? nl + 1 : NULL;
    }
    for (size_t i = 0; i < n; i++) cr_assert_not_null(texts[i], "%s: text %zu not in the corpus", name, i);
    free(data);
    cJSON_Delete(t);
    *n_out = n;
    return texts;
}

static float *encode_with(const char *dir, emb_device dev, emb_dtype dt, char **texts, size_t n, size_t dim,
                          const emb_encode_options *opts) {
    emb_model_options mo = emb_model_default_options();
    mo.device = dev;
    mo.dtype = dt;
    mo.threads = 1;
    emb_model *m = NULL;
    emb_error err = {0};
    cr_assert_eq(emb_model_load(dir, &mo, &m, &err), EMB_OK, "%s: %s", dir, err.message);
    emb_encode_options eo = opts ? *opts : emb_encode_default_options();
    cr_assert_eq((size_t)emb_model_dim(m, &eo), dim);
    float *out = malloc(n * dim * sizeof *out);
    for (size_t i = 0; i < n * dim; i++) out[i] = NAN;
    cr_assert_eq(emb_encode(m, (const char *const *)texts, NULL, n, &eo, out, NULL, &err), EMB_OK, "%s",
                 err.message);
    emb_model_free(m);
    return out;
}

static float *encode_all(const char *dir, emb_device dev, emb_dtype dt, char **texts, size_t n, size_t dim) {
    return encode_with(dir, dev, dt, texts, n, dim, NULL);
}

/* The family's reference `ref` (ref.npy or an extra ref_*.npy) encoded with
 * eo (NULL: defaults) on the CUDA backend in f16 and bf16. */
/* f16_unsafe: the family's recipe asks for bf16 whenever f16 is requested
 * (Gemma: activations beyond fp16's range), so the f16 run must give the
 * bf16 run's vectors bit for bit and is held to the bf16 bound. */
static void family_ref_on_gpu_ex(const char *name, const char *ref, const emb_encode_options *eo, int f16_unsafe) {
    char rel[256];
    snprintf(rel, sizeof rel, "tests/golden/families/%s/model", name);
    char *dir = ts_src_path(rel);
    snprintf(rel, sizeof rel, "tests/golden/families/%s/%s", name, ref);
    char *rpath = ts_src_path(rel);
    size_t rows, cols, n;
    float *want = npy_load(rpath, &rows, &cols);
    free(rpath);
    cr_assert_not_null(want, "missing %s", rel);
    char **texts = family_texts(name, &n);
    cr_assert_eq(rows, n);
    float *cpu = encode_with(dir, EMB_DEVICE_CPU, EMB_DTYPE_AUTO, texts, n, cols, eo);
    float *got_d[2];
    for (int d = 0; d < 2; d++) {
        float *got = got_d[d] = encode_with(dir, EMB_DEVICE_CUDA, DTYPES[d], texts, n, cols, eo);
        int wi = 0, wc = 0;
        const double vs_ref = worst_cos(got, want, (int)n, (int)cols, &wi);
        const double vs_cpu = worst_cos(got, cpu, (int)n, (int)cols, &wc);
        const char *dn = DTYPES[d] == EMB_DTYPE_BF16 ? "bf16" : "f16";
        const double min_cos = DTYPES[d] == EMB_DTYPE_BF16 || f16_unsafe ? bf16_bound(name) : MIN_COS;
        cr_log_info("%s %s %s: %zu vectors, worst cos %.7f vs sentence-transformers (#%d), %.7f vs cpu (#%d)",
                    name, ref, dn, n, vs_ref, wi, vs_cpu, wc);
        cr_expect_geq(vs_ref, min_cos, "%s %s %s: cos %.7f < %.7f vs sentence-transformers, text %d", name, ref,
                      dn, vs_ref, min_cos, wi);
        cr_expect_geq(vs_cpu, min_cos, "%s %s %s: cos %.7f < %.7f vs the cpu backend, text %d", name, ref, dn,
                      vs_cpu, min_cos, wc);
    }
    if (f16_unsafe)
        cr_expect_eq(memcmp(got_d[0], got_d[1], n * cols * sizeof(float)), 0,
                     "%s: the f16 request did not compute in bf16", name);
    free(got_d[0]);
    free(got_d[1]);
    for (size_t i = 0; i < n; i++) free(texts[i]);
    free(texts);
    free(cpu);
    free(want);
    free(dir);
}

static void family_ref_on_gpu(const char *name, const char *ref, const emb_encode_options *eo) {
    family_ref_on_gpu_ex(name, ref, eo, 0);
}

static void family_on_gpu(const char *name) { family_ref_on_gpu(name, "ref.npy", NULL); }

Test(cuda_backend, family_distilbert, .timeout = 1800) { family_on_gpu("distilbert"); }
Test(cuda_backend, family_roberta, .timeout = 1800) { family_on_gpu("roberta"); }
Test(cuda_backend, family_xlm_roberta, .timeout = 1800) { family_on_gpu("xlm-roberta"); }
Test(cuda_backend, family_mpnet, .timeout = 1800) { family_on_gpu("mpnet"); }
Test(cuda_backend, family_modernbert, .timeout = 1800) { family_on_gpu("modernbert"); }
Test(cuda_backend, family_t5_gated_gelu, .timeout = 1800) { family_on_gpu("t5"); }
Test(cuda_backend, family_t5_relu, .timeout = 1800) { family_on_gpu("t5-relu"); }

/* The decoders (decoder.c): causal attention, GQA, rotary through the QKV
 * epilogue (Qwen2's and Llama's q/k/v biases, Qwen3's q/k norms, Llama 3's
 * scaled frequencies), sliding windows, last-token pooling on the GPU. */
Test(cuda_backend, family_qwen3, .timeout = 1800) {
    family_on_gpu("qwen3");
    emb_encode_options eo = emb_encode_default_options();
    eo.prompt_name = "query";
    family_ref_on_gpu("qwen3", "ref_prompt.npy", &eo);
}
Test(cuda_backend, family_mistral, .timeout = 1800) { family_on_gpu("mistral"); }
Test(cuda_backend, family_qwen2, .timeout = 1800) { family_on_gpu("qwen2"); }
Test(cuda_backend, family_llama, .timeout = 1800) {
    family_on_gpu("llama");
    emb_encode_options eo = emb_encode_default_options();
    eo.pooling = EMB_POOL_MEAN;
    eo.layer = 2;
    family_ref_on_gpu("llama", "ref_layer2.npy", &eo);
}
Test(cuda_backend, family_llama3_rope_scaling, .timeout = 1800) { family_on_gpu("llama3"); }

/* Gemma (gemma2.c, gemma3.c): sandwich RMSNorm with 1 + w, q/k norms, head_dim
 * 256 with one KV head, bidirectional (Gemma 3) and causal (Gemma 2) sliding
 * windows, the attention soft-cap (Gemma 2), the Dense modules and prompts of
 * EmbeddingGemma; both compute in bf16 when f16 is asked for. */
Test(cuda_backend, family_gemma3, .timeout = 1800) {
    family_ref_on_gpu_ex("gemma3", "ref.npy", NULL, 1);
    emb_encode_options eo = emb_encode_default_options();
    eo.prompt_name = "query";
    family_ref_on_gpu_ex("gemma3", "ref_prompt_query.npy", &eo, 1);
}
Test(cuda_backend, family_gemma2, .timeout = 1800) { family_ref_on_gpu_ex("gemma2", "ref.npy", NULL, 1); }

/* The sm_90a attention kernel (EMBEDC_ATTENTION=wgmma) in whole models:
 * relative bias (MPNet), head_dim 256 with one KV head and bidirectional
 * windows (Gemma 3), causal GQA with q/k norms (Qwen3), soft-capping
 * (Gemma 2), against sentence-transformers and the CPU backend. */
Test(cuda_backend, wgmma_attention_families, .timeout = 1800) {
    int wg = 0;
    emb_error err = {0};
    cr_assert_eq(emb_cuda_wgmma_available(&wg, &err), EMB_OK, "%s", err.message);
    if (!wg) cr_skip_test("no sm_90a code for this device (wgmma)");
    setenv("EMBEDC_ATTENTION", "wgmma", 1);
    family_on_gpu("mpnet");
    family_ref_on_gpu_ex("gemma3", "ref.npy", NULL, 1);
    family_on_gpu("qwen3");
    family_ref_on_gpu_ex("gemma2", "ref.npy", NULL, 1);
    unsetenv("EMBEDC_ATTENTION");
}

/* A backend switch set to an unknown value: creating the backend fails with
 * a message naming VAR=value. */
static void refuses_switch_value(const char *dir, const char *var, const char *value) {
    emb_model_files mf;
    emb_error err = {0};
    cr_assert_eq(emb_mf_load(dir, &mf, &err), EMB_OK, "%s", err.message);
    emb_backend *be = NULL;
    char want[96];
    snprintf(want, sizeof want, "%s=%s", var, value);
    setenv(var, value, 1);
    cr_expect_eq(emb_cuda_backend_create(&mf, EMB_DTYPE_F16, 0, 0, &be, &err), EMB_ERR_INVALID_ARG);
    cr_expect(strstr(err.message, want) != NULL, "%s", err.message);
    cr_expect_null(be);
    unsetenv(var);
    emb_mf_free(&mf);
}

/* ---- CUDA graphs (EMBEDC_GRAPHS=on) ------------------------------------------ */

/* b under j on the graphs backend `on`, three times (a bucket's first chunk
 * runs directly, its second is captured, later ones replay), against the
 * direct backend `off`: under the simulator bit for bit (its GEMM computes
 * each row on its own, so neither padding tokens nor empty padding
 * sequences may change a vector); on a GPU, cuBLAS may pick another kernel
 * for the padded row count, so within MIN_COS. */
static void expect_graphs_match(emb_backend *on, emb_backend *off, const emb_batch *b, const emb_job *j,
                                const char *what) {
    float *want = encode_on(off, b, j);
    const size_t n = (size_t)b->nseq * j->out_dim;
    for (int pass = 0; pass < 3; pass++) {
        float *got = encode_on(on, b, j);
        int wi = 0;
        const double c = worst_cos(got, want, b->nseq, j->out_dim, &wi);
        cr_expect_geq(c, MIN_COS, "%s, pass %d: cos %.7f for vector %d", what, pass, c, wi);
#ifdef EMBEDC_SIM
        size_t k = 0;
        while (k < n && memcmp(&got[k], &want[k], sizeof *got) == 0) k++;
        cr_expect_eq(k, n, "%s, pass %d: element %zu (vector %zu) is %.9g by graph, %.9g by direct launches",
                     what, pass, k, k / j->out_dim, k < n ? got[k] : 0.0, k < n ? want[k] : 0.0);
#else
        (void)n;
#endif
        free(got);
    }
    free(want);
}

/* EMBEDC_GRAPHS=on on a batch cut into 512-token chunks: each chunk-shape
 * bucket (padded tokens, sequences and query tiles, per slot and job) is
 * captured the second time it comes up and replayed after that; a batch of
 * other lengths in the same buckets replays the same graphs with its own
 * shapes; another job (layer 1, Dense, truncation, prompt skips) gets its
 * own graphs. Every vector as the direct launches give it, and the CPU
 * backend's within MIN_COS. Off by default (no run note); an unknown value
 * is an error naming it. */
#ifdef EMBEDC_SIM
/* The host keeps the device fed: in the steady state an encode allocates
 * nothing (no cudaMalloc or cudaFree, no pinned memory), instantiates no
 * graph and blocks the host once per chunk, on the event of that chunk's copy
 * back, never on a whole stream, the device or a synchronous copy: with
 * graphs off and on (the simulator counts the calls). */
Test(cuda_backend, steady_state_allocates_nothing_and_waits_once_per_chunk, .timeout = 1200) {
    toy_model t;
    toy_build(&t, 64, 2, 2, 128, 0);
    int lens[48];
    for (int i = 0; i < 48; i++) lens[i] = 24 + (i * 7) % 11;
    test_batch tb;
    make_batch(&tb, lens, 48, t.mf.r.vocab_size, 1);
    const emb_job mean = make_job(&t.mf, EMB_POOL_MEAN, 2, 0, 1, 0);
    unsigned long long chunks = 0;
    const char *modes[] = {"on", "off"};  /* on first: its counts give the chunks per pass */
    for (int m = 0; m < 2; m++) {
        emb_backend *be = graph_backend(&t.mf, EMB_DTYPE_F16, 512, modes[m]);
        /* Warm up until a pass captures nothing new (every bucket on every slot). */
        graph_counts before = {0}, after = {0};
        for (int pass = 0; pass < 6; pass++) {
            free(encode_on(be, &tb.b, &mean));
            if (m == 1) break;
            after = counts_of(be);
            if (pass > 0 && after.captured == before.captured) break;
            before = after;
        }
        if (m == 0) before = counts_of(be);
        embsim_reset_api_calls();
        free(encode_on(be, &tb.b, &mean));
        if (m == 0) {
            after = counts_of(be);
            cr_assert_eq(after.captured, before.captured, "graphs: the warm-up captured every bucket");
            chunks = (after.launched + after.direct) - (before.launched + before.direct);
            cr_assert_eq(after.launched - before.launched, chunks, "graphs: every chunk replayed");
            cr_assert_geq(chunks, 3, "the batch runs as several chunks (%llu)", chunks);
        }
        const char *what[] = {"cudaMalloc", "cudaFree", "pinned allocations", "pinned frees",
                              "device synchronisations", "stream synchronisations", NULL,
                              "synchronous copies", "graph instantiations"};
        for (int k = 0; k < EMBSIM_API_COUNT; k++) {
            const unsigned long long n = embsim_api_calls((embsim_api)k);
            if (k == EMBSIM_API_EVENT_SYNC)
                cr_expect_eq(n, chunks, "graphs %s: %llu event waits for %llu chunks (one each, its copy back)",
                             modes[m], n, chunks);
            else
                cr_expect_eq(n, 0, "graphs %s, steady state: %llu %s", modes[m], n, what[k]);
        }
        be->destroy(be);
    }
    free_batch(&tb);
    toy_free(&t);
}
#endif

Test(cuda_backend, graphs_per_chunk_bucket, .timeout = 1200) {
    toy_model t;
    toy_build(&t, 64, 2, 2, 128, 48);
    int lens[48], lens_b[48];
    for (int i = 0; i < 48; i++) {
        lens[i] = 24 + (i * 7) % 11;
        lens_b[i] = lens[i] - (i % 4 == 1);
    }
    test_batch ta, tb;
    make_batch(&ta, lens, 48, t.mf.r.vocab_size, 1);
    make_batch(&tb, lens_b, 48, t.mf.r.vocab_size, 1);
    const emb_job mean = make_job(&t.mf, EMB_POOL_MEAN, 2, 0, 1, 0);
    const emb_job layer1 = make_job(&t.mf, EMB_POOL_MEAN, 1, 0, 1, 0);
    const emb_job dense = make_job(&t.mf, EMB_POOL_MEAN, 1, 1, 1, 32);
    for (int d = 0; d < 2; d++) {
        emb_backend *on = graph_backend(&t.mf, DTYPES[d], 512, "on");
        emb_backend *off = graph_backend(&t.mf, DTYPES[d], 512, "off");
        char note[256] = "x";
        off->run_note(off, note, sizeof note);
        cr_expect_str_empty(note, "graphs off: no run note");

        expect_graphs_match(on, off, &ta.b, &mean, "graphs, batch A");
        const graph_counts a = counts_of(on);
        cr_expect_geq(a.captured, 1, "a bucket seen twice is captured");
        cr_expect_geq(a.launched, a.captured + 1, "and replayed");
        cr_expect_geq(a.direct, 1, "its first chunk ran directly");
        cr_expect_eq(a.evicted, 0);

        expect_graphs_match(on, off, &tb.b, &mean, "graphs, batch B (other lengths, same buckets)");
        const graph_counts b = counts_of(on);
        /* Batch A's chunks: 17, 17 and 14 documents, 491, 490 and 411
         * tokens, run as 18 / 512, 18 / 512 and 14 / 448; batch B's (487,
         * 485 and 408 tokens) fall in the same buckets: none runs directly,
         * all 3 x 3 by graph (slots alternate, so a bucket A saw on the
         * other slot is captured now). */
        cr_expect_eq(b.direct, a.direct, "batch B in batch A's buckets: no chunk runs directly");
        cr_expect_eq(b.launched, a.launched + 9, "batch B: its 9 chunks by graph");

        expect_graphs_match(on, off, &ta.b, &layer1, "graphs, layer 1");
        const graph_counts l1 = counts_of(on);
        cr_expect_gt(l1.captured, b.captured, "another layer, other graphs");
        expect_graphs_match(on, off, &ta.b, &dense, "graphs, layer 1 + Dense + truncation");
        cr_expect_gt(counts_of(on).captured, l1.captured, "another job, other graphs");

        float *got = encode_on(on, &ta.b, &mean);
        emb_backend *cpu = NULL;
        emb_error err = {0};
        cr_assert_eq(emb_cpu_backend_create(&t.mf, 1, &cpu, &err), EMB_OK, "%s", err.message);
        float *want = encode_on(cpu, &ta.b, &mean);
        int wi = 0;
        const double c = worst_cos(got, want, 48, mean.out_dim, &wi);
        cr_expect_geq(c, MIN_COS, "graphs vs the CPU backend: cos %.7f for vector %d", c, wi);
        free(got);
        free(want);
        cpu->destroy(cpu);
        on->destroy(on);
        off->destroy(off);
    }
    const char *dir = ts_default_model();
    if (dir) refuses_switch_value(dir, "EMBEDC_GRAPHS", "yes");
    free_batch(&ta);
    free_batch(&tb);
    toy_free(&t);
}

/* More buckets than the cache holds (128 graphs): 80 one-chunk batches of
 * 16..1 documents of 8..87 tokens, each encoded three times (the slots
 * alternate, so the third is the capture), 74 buckets on each slot; the
 * least recently used graphs are evicted, and the first batch (its bucket
 * its own), captured again, still gives the direct launches' vectors. */
Test(cuda_backend, graphs_evict_least_recent, .timeout = 1200) {
    toy_model t;
    toy_build(&t, 64, 2, 1, 128, 0);
    const emb_job j = make_job(&t.mf, EMB_POOL_MEAN, 1, 0, 1, 0);
    emb_backend *on = graph_backend(&t.mf, EMB_DTYPE_F16, 4096, "on");
    emb_backend *off = graph_backend(&t.mf, EMB_DTYPE_F16, 4096, "off");
    test_batch first;
    for (int k = 0; k < 80; k++) {
        int lens[16];
        const int n = 16 - k % 16;
        for (int i = 0; i < n; i++) lens[i] = 8 + k;
        test_batch tb;
        make_batch(&tb, lens, n, t.mf.r.vocab_size, 0);
        for (int pass = 0; pass < 3; pass++) free(encode_on(on, &tb.b, &j));
        if (k) free_batch(&tb);
        else first = tb;
    }
    const graph_counts g = counts_of(on);
    cr_expect_geq(g.captured, 70, "a capture per batch but where buckets repeat");
    cr_expect_geq(g.evicted, 1, "148 keys in 128 entries");
    expect_graphs_match(on, off, &first.b, &j, "graphs, a bucket evicted and captured again");
    cr_expect_gt(counts_of(on).captured, g.captured, "captured again");
    on->destroy(on);
    off->destroy(off);
    free_batch(&first);
    toy_free(&t);
}

/* Graphs on the generic recipes (rotary, windows, softcap, GQA, gated MLP,
 * sandwich norms) and with a relative-position bias whose table is narrower
 * than the query tiles' padding (max_position 100: max_seqlen pads to 100,
 * not 128). */
Test(cuda_backend, graphs_generic_and_relative, .timeout = 1200) {
    for (int p = 0; p < 3; p++) {
        toy_model t;
        int lens[24];
        if (p < 2) {
            toy_generic(&t, GENERIC_PLACES[p], 2, 32);
            for (int i = 0; i < 24; i++) lens[i] = 30 + (i * 5) % 11;
        } else {
            toy_build(&t, 64, 2, 2, 128, 0);
            emb_recipe *r = &t.mf.r;
            r->max_position = 100;
            r->attn_pos = EMB_APOS_RELATIVE;
            r->rel = (emb_recipe_relative){32, 64, 1, toy_tensor(&t, 32, 2, 2.0f, 0)};
            for (int i = 0; i < 24; i++) lens[i] = 70 + (i * 5) % 31;
        }
        test_batch tb;
        make_batch(&tb, lens, 24, t.mf.r.vocab_size, 0);
        const emb_job j = make_job(&t.mf, EMB_POOL_MEAN | EMB_POOL_LAST_TOKEN, t.mf.r.layers, 0, 1, 0);
        /* Sandwich: a 600-token budget, so that the 596-token chunk's bucket
         * (640) is cut back to the workspace. */
        const size_t budget = p == 0 ? 600 : 512;
        emb_backend *on = graph_backend(&t.mf, EMB_DTYPE_BF16, budget, "on");
        emb_backend *off = graph_backend(&t.mf, EMB_DTYPE_BF16, budget, "off");
        const char *what = p == 0 ? "graphs, sandwich" : p == 1 ? "graphs, pre-norm" : "graphs, relative bias";
        expect_graphs_match(on, off, &tb.b, &j, what);
        cr_expect_geq(counts_of(on).captured, 1, "%s: captured", what);
        on->destroy(on);
        off->destroy(off);
        free_batch(&tb);
        toy_free(&t);
    }
}

/* The QKV bias of BERT-like families is folded by default (the K part
 * dropped, the V part in the output bias, the Q part added by the attention
 * kernel); every family test above runs that way. EMBEDC_QKV_BIAS=pass keeps
 * the separate bias pass: the same references must hold, for the relative
 * bias (MPNet) and absolute positions (XLM-RoBERTa); an unknown value is an
 * error naming it. */
Test(cuda_backend, qkv_bias_pass_and_choice, .timeout = 1800) {
    const char *dir = ts_default_model();
    if (!dir) cr_skip_test("default model not fetched (tools/fetch-model)");
    refuses_switch_value(dir, "EMBEDC_QKV_BIAS", "fused");
    setenv("EMBEDC_QKV_BIAS", "pass", 1);
    family_on_gpu("mpnet");
    family_on_gpu("xlm-roberta");
    unsetenv("EMBEDC_QKV_BIAS");
}

/* EMBEDC_MLP_EPILOGUE=lt: the up-projection, its bias and the activation in
 * one cuBLASLt call (tanh GELU where the models use erf: the same bounds must
 * hold; ReLU exact), on the real all-MiniLM-L6-v2 against
 * sentence-transformers and on golden families with a plain erf-GELU or ReLU
 * MLP; a gated model is left as it was; unknown switch values are errors
 * naming them. */
Test(cuda_backend, mlp_epilogue_lt, .timeout = 1800) {
    const char *dir = ts_default_model();
    if (!dir) cr_skip_test("default model not fetched (tools/fetch-model)");
    refuses_switch_value(dir, "EMBEDC_MLP_EPILOGUE", "cublas");
    refuses_switch_value(dir, "EMBEDC_SANDWICH_NORM", "fast");
    setenv("EMBEDC_MLP_EPILOGUE", "lt", 1);
    minilm_golden_check(dir);
    family_on_gpu("distilbert");
    family_on_gpu("mpnet");
    family_on_gpu("t5-relu");   /* ReLU, no bias */
    family_on_gpu("t5");        /* gated: no epilogue */
    unsetenv("EMBEDC_MLP_EPILOGUE");
}

/* The real all-mpnet-base-v2 (relative buckets, RoBERTa-style positions) on
 * the CUDA backend against the CPU backend, when tools/fetch-model
 * all-mpnet-base-v2 has put it in models/. A few corpus texts: the simulator
 * runs a 110M-parameter model slowly. */
Test(cuda_backend, mpnet_real_vs_cpu, .timeout = 1800) {
    char *dir = ts_src_path("models/all-mpnet-base-v2/config.json");
    FILE *f = fopen(dir, "r");
    free(dir);
    if (!f) cr_skip_test("all-mpnet-base-v2 not fetched (tools/fetch-model all-mpnet-base-v2)");
    fclose(f);
    dir = ts_src_path("models/all-mpnet-base-v2");
    size_t total;
    char **texts = family_texts("mpnet", &total);   /* corpus texts of every length */
    /* The first two: 2 tokens, and 402 cut at the model's 384 (past relative
     * attention's max_distance of 128); a third at 384 doubled the
     * simulator's time and checked nothing new. */
    const size_t n = total < 2 ? total : 2;
    const size_t dim = 768;
    float *cpu = encode_all(dir, EMB_DEVICE_CPU, EMB_DTYPE_AUTO, texts, n, dim);
    for (int d = 0; d < 2; d++) {
        float *got = encode_all(dir, EMB_DEVICE_CUDA, DTYPES[d], texts, n, dim);
        int wi = 0;
        const double c = worst_cos(got, cpu, (int)n, (int)dim, &wi);
        const char *dn = DTYPES[d] == EMB_DTYPE_BF16 ? "bf16" : "f16";
        cr_log_info("all-mpnet-base-v2 %s: %zu vectors, worst cos %.7f vs cpu (#%d)", dn, n, c, wi);
        cr_expect_geq(c, MIN_COS, "all-mpnet-base-v2 %s: cos %.7f vs the cpu backend, text %d", dn, c, wi);
        free(got);
    }
    for (size_t i = 0; i < total; i++) free(texts[i]);
    free(texts);
    free(cpu);
    free(dir);
}
