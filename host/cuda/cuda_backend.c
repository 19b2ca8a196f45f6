/*
 * The CUDA backend: runs BERT-family encoders on one GPU and returns finished
 * vectors (pooled, Dense, truncated, normalized), so hidden states never
 * leave the device. Weights are converted to fp16/bf16 on the host and
 * uploaded once (Q, K, V concatenated into one [3*hidden, hidden] matrix so
 * the projection is a single GEMM whose output is the [total, 3, heads,
 * head_dim] layout the attention kernel reads in place). All GEMMs go
 * through cublasGemmEx with fp32 accumulation; everything else is a kernel
 * from kernels/. A workspace arena sized from the token budget is allocated
 * once; a batch larger than the budget is cut into chunks that run through a
 * two-slot pipeline (pinned staging, a copy stream and a compute stream with
 * events, so chunk i+1's upload overlaps chunk i's compute and chunk i's
 * vectors come back while i+1 runs). A chunk that runs out of device memory
 * is split in two and retried. Every CUDA and cuBLAS call is checked and a
 * failure names the call, file and line.
 */
#include "cuda_backend.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "backend.h"
#include "error.h"
#include "half.h"
#include "kernels.h"
#include "model_files.h"

_Static_assert(EMB_KACT_GELU == (int)EMB_ACT_GELU && EMB_KACT_GELU_TANH == (int)EMB_ACT_GELU_TANH &&
                   EMB_KACT_RELU == (int)EMB_ACT_RELU && EMB_KACT_SILU == (int)EMB_ACT_SILU &&
                   EMB_KACT_TANH == (int)EMB_ACT_TANH && EMB_KACT_SIGMOID == (int)EMB_ACT_SIGMOID &&
                   EMB_KACT_IDENTITY == (int)EMB_ACT_IDENTITY,
               "kernels.h activation codes must match emb_act");

#define NSLOTS 2
/* Default chunk budget: on an H200, 64K-token chunks ran all-MiniLM-L6-v2
 * 9-13 % faster than 16K ones and no slower than 256K (bench/RESULTS.md);
 * the workspace stays well under 1 GB for BERT-large shapes. */
#define CUDA_DEFAULT_BATCH_TOKENS 65536

/* The smallest token budget worth running with after halving on OOM. */
#define MIN_BUDGET_TOKENS 512

/* ---- error reporting ----------------------------------------------------- */

static emb_status cu_fail(emb_error *err, cudaError_t e, const char *call, const char *file,
                          int line) {
    emb_status code = e == cudaErrorMemoryAllocation ? EMB_ERR_DEVICE_OOM : EMB_ERR_DEVICE;
    return emb_fail(err, code, "CUDA: %s failed at %s:%d: %s (%s)", call, file, line,
                    cudaGetErrorString(e), cudaGetErrorName(e));
}

static const char *blas_name(cublasStatus_t s) {
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    default: return "CUBLAS_STATUS_(unknown)";
    }
}

static emb_status blas_fail(emb_error *err, cublasStatus_t s, const char *call, const char *file,
                            int line) {
    emb_status code = s == CUBLAS_STATUS_ALLOC_FAILED ? EMB_ERR_DEVICE_OOM : EMB_ERR_DEVICE;
    return emb_fail(err, code, "cuBLAS: %s failed at %s:%d: %s", call, file, line, blas_name(s));
}

#define CU_CHECK(call)                                                           \
    do {                                                                         \
        cudaError_t e_ = (call);                                                 \
        if (e_ != cudaSuccess) return cu_fail(err, e_, #call, __FILE__, __LINE__); \
    } while (0)

#define BLAS_CHECK(call)                                                           \
    do {                                                                           \
        cublasStatus_t s_ = (call);                                                \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                           \
            return blas_fail(err, s_, #call, __FILE__, __LINE__);                  \
    } while (0)

/* Same, for cleanup paths that must go on: keeps the first failure. */
#define CU_TRY(st, call)                                                         \
    do {                                                                         \
        cudaError_t e_ = (call);                                                 \
        if (e_ != cudaSuccess && (st) == EMB_OK)                                 \
            (st) = cu_fail(err, e_, #call, __FILE__, __LINE__);                  \
    } while (0)

/* ---- the backend's state ------------------------------------------------- */

typedef struct {
    void *wqkv, *bqkv, *wo, *bo, *ln1_g, *ln1_b, *win, *bin, *wout, *bout, *ln2_g, *ln2_b;
} cu_layer;

typedef struct {
    float *w, *b;   /* fp32: Dense runs on pooled vectors, a few rows per batch */
    int in, out, act, has_bias;
} cu_dense;

typedef struct {
    int32_t *ids, *types, *cu, *skip;   /* pinned host staging */
    float *out;                         /* pinned host result rows */
    int32_t *d_ids, *d_types, *d_cu, *d_skip;
    cudaEvent_t uploaded;               /* copy stream: inputs are on the device */
    cudaEvent_t done;                   /* compute stream: slot free, results on the host */
    /* What the slot holds while in flight (to copy out when it completes). */
    int busy, rows, out_dim;
    float *dst;
} cu_slot;

/* The BERT-shaped sizes this backend runs (from the recipe; check_model
 * refuses recipes of any other shape until the generic CUDA forward). */
typedef struct {
    int vocab_size, hidden, layers, heads, head_dim, intermediate, max_position, type_vocab_size;
    float layer_norm_eps;
    emb_act hidden_act;
} cu_cfg;

typedef struct {
    const emb_model_files *mf;
    cu_cfg cfg;
    int device;
    emb_dtype dtype;
    emb_kdtype kdt;
    cudaDataType_t cdt;
    size_t esz;

    cublasHandle_t blas;
    cudaStream_t compute, copy;

    void *weights;    /* one allocation for all 16-bit weights */
    void *word, *pos, *tt, *emb_g, *emb_b;
    cu_layer *layer;
    cu_dense *dense;
    int n_dense;

    /* Workspace, sized from the token budget at create time. */
    size_t cap_tokens;
    int cap_seqs;
    size_t pool_floats;     /* capacity of each fp32 row buffer below */
    void *arena;
    void *h, *tmp, *big, *ctx;     /* [cap, hidden] x3, big = [cap, max(3H, I)] */
    float *pool_a, *pool_b, *vec_out;
    cu_slot slot[NSLOTS];
    int next_slot;
} cuda_ctx;

static int popcount6(int m) {
    int n = 0;
    for (m &= 63; m; m &= m - 1) n++;
    return n;
}

static size_t align256(size_t n) { return (n + 255) & ~(size_t)255; }

/* ---- weights ------------------------------------------------------------- */

typedef struct {
    unsigned char *host;   /* staging image of the whole weight block */
    size_t size, used;
    float *scratch;
    size_t scratch_n;
} upload_plan;

/* Appends a tensor (any stored dtype) converted to the device dtype (or fp32
 * when f32 != 0) at the cursor; returns its offset in the block. The first
 * pass (host == NULL) only measures. */
static emb_status plan_put(upload_plan *p, const emb_tensor *t, int f32, emb_dtype dt,
                           size_t *off, emb_error *err) {
    const size_t n = emb_tensor_numel(t), bytes = n * (f32 ? 4 : 2);
    size_t *cursor = p->host ? &p->used : &p->size;
    *off = *cursor;
    if (!p->host) {
        if (n > p->scratch_n) p->scratch_n = n;
        p->size += bytes;
        return EMB_OK;
    }
    if (p->used + bytes > p->size) return emb_fail(err, EMB_ERR_INTERNAL, "weight plan overflow");
    if (f32) {
        emb_tensor_to_f32(t, (float *)(p->host + p->used), n);
    } else {
        emb_tensor_to_f32(t, p->scratch, n);
        uint16_t *dst = (uint16_t *)(p->host + p->used);
        for (size_t i = 0; i < n; i++)
            dst[i] = dt == EMB_DTYPE_BF16 ? emb_f32_to_bf16(p->scratch[i]) : emb_f32_to_f16(p->scratch[i]);
    }
    p->used += bytes;
    return EMB_OK;
}

/* Every tensor starts 256-byte aligned (vectorized kernel loads, cuBLAS). */
static void plan_align(upload_plan *p) {
    if (p->host) {
        size_t a = align256(p->used);
        memset(p->host + p->used, 0, a - p->used);
        p->used = a;
    } else {
        p->size = align256(p->size);
    }
}

static emb_status plan_add(upload_plan *p, const emb_tensor *t, int f32, emb_dtype dt,
                           size_t *off, emb_error *err) {
    emb_status st = plan_put(p, t, f32, dt, off, err);
    plan_align(p);
    return st;
}

/* Q, K, V weights (or biases) back to back: [Wq; Wk; Wv] is the [3*hidden,
 * hidden] matrix of the fused projection. */
static emb_status plan_add_qkv(upload_plan *p, const emb_tensor *a, const emb_tensor *b,
                               const emb_tensor *c, emb_dtype dt, size_t *off, emb_error *err) {
    size_t o2, o3;
    emb_status st;
    if ((st = plan_put(p, a, 0, dt, off, err)) || (st = plan_put(p, b, 0, dt, &o2, err)) ||
        (st = plan_put(p, c, 0, dt, &o3, err)))
        return st;
    plan_align(p);
    return EMB_OK;
}

typedef struct {
    size_t word, pos, tt, emb_g, emb_b;
    size_t *lay;   /* 12 per layer */
    size_t *dense; /* 2 per dense */
} weight_offsets;

static emb_status plan_model(upload_plan *p, cuda_ctx *c, weight_offsets *wo, emb_error *err) {
    const emb_recipe *w = &c->mf->r;
    emb_dtype dt = c->dtype;
    emb_status st;
    if ((st = plan_add(p, &w->emb.word, 0, dt, &wo->word, err)) ||
        (st = plan_add(p, &w->emb.position, 0, dt, &wo->pos, err)) ||
        (st = plan_add(p, &w->emb.token_type, 0, dt, &wo->tt, err)) ||
        (st = plan_add(p, &w->emb.norm.w, 0, dt, &wo->emb_g, err)) ||
        (st = plan_add(p, &w->emb.norm.b, 0, dt, &wo->emb_b, err)))
        return st;
    for (int l = 0; l < c->cfg.layers; l++) {
        const emb_recipe_layer *L = &w->layer[l];
        size_t *o = wo->lay + 12 * l;
        if ((st = plan_add_qkv(p, &L->wq, &L->wk, &L->wv, dt, &o[0], err)) ||
            (st = plan_add_qkv(p, &L->bq, &L->bk, &L->bv, dt, &o[1], err)) ||
            (st = plan_add(p, &L->wo, 0, dt, &o[2], err)) ||
            (st = plan_add(p, &L->bo, 0, dt, &o[3], err)) ||
            (st = plan_add(p, &L->attn_norm.w, 0, dt, &o[4], err)) ||
            (st = plan_add(p, &L->attn_norm.b, 0, dt, &o[5], err)) ||
            (st = plan_add(p, &L->w_up, 0, dt, &o[6], err)) ||
            (st = plan_add(p, &L->b_up, 0, dt, &o[7], err)) ||
            (st = plan_add(p, &L->w_down, 0, dt, &o[8], err)) ||
            (st = plan_add(p, &L->b_down, 0, dt, &o[9], err)) ||
            (st = plan_add(p, &L->mlp_norm.w, 0, dt, &o[10], err)) ||
            (st = plan_add(p, &L->mlp_norm.b, 0, dt, &o[11], err)))
            return st;
    }
    for (int d = 0; d < c->mf->st.n_dense; d++) {
        const emb_dense *D = &c->mf->st.dense[d];
        if ((st = plan_add(p, &D->w, 1, dt, &wo->dense[2 * d], err))) return st;
        if (D->has_bias && (st = plan_add(p, &D->b, 1, dt, &wo->dense[2 * d + 1], err))) return st;
    }
    return EMB_OK;
}

static emb_status upload_weights(cuda_ctx *c, emb_error *err) {
    const int L = c->cfg.layers, ND = c->mf->st.n_dense;
    weight_offsets wo = {0};
    upload_plan p = {0};
    emb_status st = EMB_OK;
    wo.lay = calloc((size_t)L * 12 + 1, sizeof *wo.lay);
    wo.dense = calloc((size_t)ND * 2 + 1, sizeof *wo.dense);
    c->layer = calloc((size_t)L, sizeof *c->layer);
    c->dense = calloc((size_t)ND + 1, sizeof *c->dense);
    if (!wo.lay || !wo.dense || !c->layer || !c->dense) {
        st = emb_fail(err, EMB_ERR_NOMEM, "CUDA backend: out of host memory");
        goto done;
    }
    if ((st = plan_model(&p, c, &wo, err))) goto done;          /* sizing pass */
    p.host = malloc(p.size);
    p.scratch = malloc((p.scratch_n ? p.scratch_n : 1) * sizeof(float));
    if (!p.host || !p.scratch) {
        st = emb_fail(err, EMB_ERR_NOMEM, "CUDA backend: no host memory to stage %zu bytes of weights",
                      p.size);
        goto done;
    }
    if ((st = plan_model(&p, c, &wo, err))) goto done;          /* converting pass */

    {
        cudaError_t e = cudaMalloc(&c->weights, p.size);
        if (e != cudaSuccess) {
            c->weights = NULL;
            st = cu_fail(err, e, "cudaMalloc(weights)", __FILE__, __LINE__);
            goto done;
        }
        e = cudaMemcpy(c->weights, p.host, p.size, cudaMemcpyHostToDevice);
        if (e != cudaSuccess) {
            st = cu_fail(err, e, "cudaMemcpy(weights)", __FILE__, __LINE__);
            goto done;
        }
    }
    unsigned char *base = c->weights;
    c->word = base + wo.word;
    c->pos = base + wo.pos;
    c->tt = base + wo.tt;
    c->emb_g = base + wo.emb_g;
    c->emb_b = base + wo.emb_b;
    for (int l = 0; l < L; l++) {
        const size_t *o = wo.lay + 12 * l;
        cu_layer *y = &c->layer[l];
        y->wqkv = base + o[0];
        y->bqkv = base + o[1];
        y->wo = base + o[2];
        y->bo = base + o[3];
        y->ln1_g = base + o[4];
        y->ln1_b = base + o[5];
        y->win = base + o[6];
        y->bin = base + o[7];
        y->wout = base + o[8];
        y->bout = base + o[9];
        y->ln2_g = base + o[10];
        y->ln2_b = base + o[11];
    }
    for (int d = 0; d < ND; d++) {
        const emb_dense *D = &c->mf->st.dense[d];
        c->dense[d].w = (float *)(base + wo.dense[2 * d]);
        c->dense[d].b = D->has_bias ? (float *)(base + wo.dense[2 * d + 1]) : NULL;
        c->dense[d].in = D->in_features;
        c->dense[d].out = D->out_features;
        c->dense[d].act = D->act;
        c->dense[d].has_bias = D->has_bias;
    }
    c->n_dense = ND;
done:
    free(p.host);
    free(p.scratch);
    free(wo.lay);
    free(wo.dense);
    return st;
}

/* ---- workspace ----------------------------------------------------------- */

/* Widest fp32 row any job can need: every pooling mode, any Dense width. */
static size_t max_row_floats(const cuda_ctx *c) {
    size_t w = (size_t)c->cfg.hidden * 6;
    for (int d = 0; d < c->n_dense; d++) {
        if ((size_t)c->dense[d].out > w) w = (size_t)c->dense[d].out;
        if ((size_t)c->dense[d].in > w) w = (size_t)c->dense[d].in;
    }
    return w;
}

static void free_workspace(cuda_ctx *c) {
    if (c->arena) cudaFree(c->arena);
    c->arena = NULL;
    for (int s = 0; s < NSLOTS; s++) {
        cu_slot *sl = &c->slot[s];
        if (sl->ids) cudaFreeHost(sl->ids);
        if (sl->out) cudaFreeHost(sl->out);
        sl->ids = NULL;
        sl->out = NULL;
    }
}

/* One device arena and one pinned block per slot, for `tokens` tokens. */
static emb_status alloc_workspace(cuda_ctx *c, size_t tokens, emb_error *err) {
    const size_t H = (size_t)c->cfg.hidden, I = (size_t)c->cfg.intermediate;
    const size_t big_w = 3 * H > I ? 3 * H : I;
    /* big also holds fp32 hidden states for token_embeddings(). */
    size_t big_bytes = tokens * big_w * c->esz;
    if (big_bytes < tokens * H * sizeof(float)) big_bytes = tokens * H * sizeof(float);
    /* Sequences per chunk: rarely more than one per 8 tokens; chunks with
     * more (very short documents) are cut by the pooled-row capacity. */
    int seqs = (int)(tokens / 8 > 64 ? tokens / 8 : (tokens < 64 ? tokens : 64));
    const size_t rowf = max_row_floats(c);
    const size_t pool_floats = (size_t)seqs * rowf;
    const size_t act = align256(tokens * H * c->esz);
    const size_t ints = align256(tokens * sizeof(int32_t)), cu_ints = align256(((size_t)seqs + 1) * 4);
    size_t total = 3 * act + align256(big_bytes) + 3 * align256(pool_floats * sizeof(float)) +
                   NSLOTS * (2 * ints + 2 * cu_ints);
    c->cap_tokens = tokens;
    c->cap_seqs = seqs;
    c->pool_floats = pool_floats;

    void *arena = NULL;
    cudaError_t e = cudaMalloc(&arena, total);
    if (e != cudaSuccess) return cu_fail(err, e, "cudaMalloc(workspace)", __FILE__, __LINE__);
    c->arena = arena;
    unsigned char *p = arena;
    c->h = p, p += act;
    c->tmp = p, p += act;
    c->ctx = p, p += act;
    c->big = p, p += align256(big_bytes);
    c->pool_a = (float *)p, p += align256(pool_floats * sizeof(float));
    c->pool_b = (float *)p, p += align256(pool_floats * sizeof(float));
    c->vec_out = (float *)p, p += align256(pool_floats * sizeof(float));
    for (int s = 0; s < NSLOTS; s++) {
        cu_slot *sl = &c->slot[s];
        sl->d_ids = (int32_t *)p, p += ints;
        sl->d_types = (int32_t *)p, p += ints;
        sl->d_cu = (int32_t *)p, p += cu_ints;
        sl->d_skip = (int32_t *)p, p += cu_ints;
        /* Pinned staging: ids, types, cu, skip in one block; results in another. */
        size_t in_bytes = 2 * ints + 2 * cu_ints;
        void *hp = NULL, *ho = NULL;
        CU_CHECK(cudaMallocHost(&hp, in_bytes));
        sl->ids = hp;
        sl->types = (int32_t *)((unsigned char *)hp + ints);
        sl->cu = (int32_t *)((unsigned char *)hp + 2 * ints);
        sl->skip = (int32_t *)((unsigned char *)hp + 2 * ints + cu_ints);
        CU_CHECK(cudaMallocHost(&ho, pool_floats * sizeof(float)));
        sl->out = ho;
    }
    return EMB_OK;
}

/* ---- the forward pass ---------------------------------------------------- */

/* y[rows, out] = x[rows, in] W^T with W [out, in] row-major: in cuBLAS's
 * column-major terms y^T = W^T^T x^T, i.e. op(A) = T on the [in, out] view. */
static emb_status gemm(cuda_ctx *c, void *y, const void *x, const void *w, int rows, int in,
                       int out, cudaDataType_t t, emb_error *err) {
    const float one = 1.0f, zero = 0.0f;
    BLAS_CHECK(cublasGemmEx(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, out, rows, in, &one, w, t, in, x, t,
                            in, &zero, y, t, out, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return EMB_OK;
}

/* Embeddings and the first `layers` encoder layers of one chunk; the hidden
 * states end in c->h. */
static emb_status forward(cuda_ctx *c, const cu_slot *sl, int nseq, int total, int max_seqlen,
                          int layers, emb_error *err) {
    const cu_cfg *cfg = &c->cfg;
    const int H = cfg->hidden, I = cfg->intermediate;
    const emb_kdtype k = c->kdt;
    cudaStream_t s = c->compute;
    emb_status st;
    CU_CHECK(emb_launch_embed_layernorm(c->h, k, sl->d_ids, sl->d_types, sl->d_cu, nseq, total,
                                        c->word, c->pos, c->tt, c->emb_g, c->emb_b, H,
                                        cfg->layer_norm_eps, s));
    const float scale = 1.0f / sqrtf((float)cfg->head_dim);
    for (int l = 0; l < layers; l++) {
        const cu_layer *L = &c->layer[l];
        if ((st = gemm(c, c->big, c->h, L->wqkv, total, H, 3 * H, c->cdt, err))) return st;
        CU_CHECK(emb_launch_bias_act(c->big, k, L->bqkv, total, 3 * H, EMB_KACT_IDENTITY, s));
        CU_CHECK(emb_launch_attention_varlen(c->ctx, k, c->big, sl->d_cu, nseq, max_seqlen,
                                             cfg->heads, cfg->head_dim, scale, 0, s));
        if ((st = gemm(c, c->tmp, c->ctx, L->wo, total, H, H, c->cdt, err))) return st;
        CU_CHECK(emb_launch_bias_residual_layernorm(c->h, k, c->tmp, L->bo, c->h, L->ln1_g,
                                                    L->ln1_b, total, H, cfg->layer_norm_eps, s));
        if ((st = gemm(c, c->big, c->h, L->win, total, H, I, c->cdt, err))) return st;
        CU_CHECK(emb_launch_bias_act(c->big, k, L->bin, total, I, (int)cfg->hidden_act, s));
        if ((st = gemm(c, c->tmp, c->big, L->wout, total, I, H, c->cdt, err))) return st;
        CU_CHECK(emb_launch_bias_residual_layernorm(c->h, k, c->tmp, L->bout, c->h, L->ln2_g,
                                                    L->ln2_b, total, H, cfg->layer_norm_eps, s));
    }
    return EMB_OK;
}

/* Pooling, Dense modules, truncation, normalization: rows into c->vec_out. */
static emb_status pool_and_finish(cuda_ctx *c, const cu_slot *sl, int nseq, int has_skip,
                                  const emb_job *job, emb_error *err) {
    const int H = c->cfg.hidden;
    const int width = H * popcount6(job->pooling_modes);
    cudaStream_t s = c->compute;
    const int dense = job->apply_dense && c->n_dense > 0;
    const int32_t *skip = has_skip ? sl->d_skip : NULL;
    if (!dense) {
        CU_CHECK(emb_launch_pool(c->vec_out, c->h, c->kdt, sl->d_cu, skip, nseq, H,
                                 job->pooling_modes, job->out_dim, job->normalize,
                                 EMB_KQUANT_NONE, NULL, NULL, s));
        return EMB_OK;
    }
    CU_CHECK(emb_launch_pool(c->pool_a, c->h, c->kdt, sl->d_cu, skip, nseq, H,
                             job->pooling_modes, width, 0, EMB_KQUANT_NONE, NULL, NULL, s));
    float *x = c->pool_a, *y = c->pool_b;
    int in = width;
    for (int d = 0; d < c->n_dense; d++) {
        const cu_dense *D = &c->dense[d];
        if (D->in != in)
            return emb_fail(err, EMB_ERR_UNSUPPORTED,
                            "Dense module %d expects %d inputs but pooling gives %d", d, D->in, in);
        emb_status st = gemm(c, y, x, D->w, nseq, D->in, D->out, CUDA_R_32F, err);
        if (st) return st;
        CU_CHECK(emb_launch_bias_act(y, EMB_KDT_F32, D->has_bias ? D->b : NULL, nseq, D->out,
                                     D->act, s));
        float *t = x;
        x = y;
        y = t;
        in = D->out;
    }
    CU_CHECK(emb_launch_finalize(c->vec_out, x, nseq, in, job->out_dim, job->normalize,
                                 EMB_KQUANT_NONE, NULL, NULL, s));
    return EMB_OK;
}

/* Waits for a slot's previous chunk and copies its rows to the caller. */
static emb_status drain_slot(cuda_ctx *c, cu_slot *sl, emb_error *err) {
    if (!sl->busy) return EMB_OK;
    sl->busy = 0;
    CU_CHECK(cudaEventSynchronize(sl->done));
    memcpy(sl->dst, sl->out, (size_t)sl->rows * sl->out_dim * sizeof(float));
    return EMB_OK;
}

static emb_status drain_all(cuda_ctx *c, emb_error *err) {
    emb_status first = EMB_OK;
    for (int s = 0; s < NSLOTS; s++) {
        emb_status st = drain_slot(c, &c->slot[s], err);
        if (st && !first) first = st;
    }
    return first;
}

/* Queues one chunk (sequences [s0, s1) of b) on the next slot. */
static emb_status run_chunk(cuda_ctx *c, const emb_batch *b, int s0, int s1, const emb_job *job,
                            float *out, emb_error *err) {
    cu_slot *sl = &c->slot[c->next_slot];
    emb_status st = drain_slot(c, sl, err);   /* staging of this slot is free again */
    if (st) return st;
    c->next_slot = (c->next_slot + 1) % NSLOTS;

    const int nseq = s1 - s0, t0 = b->cu_seqlens[s0], total = b->cu_seqlens[s1] - t0;
    int max_seqlen = 0;
    for (int i = 0; i < nseq; i++) {
        sl->cu[i] = b->cu_seqlens[s0 + i] - t0;
        int len = b->cu_seqlens[s0 + i + 1] - b->cu_seqlens[s0 + i];
        if (len > max_seqlen) max_seqlen = len;
        if (b->skip) sl->skip[i] = b->skip[s0 + i];
    }
    sl->cu[nseq] = total;
    memcpy(sl->ids, b->ids + t0, (size_t)total * sizeof(int32_t));
    if (b->type_ids) memcpy(sl->types, b->type_ids + t0, (size_t)total * sizeof(int32_t));
    else memset(sl->types, 0, (size_t)total * sizeof(int32_t));

    /* Upload on the copy stream, after the compute stream is done with the
     * slot's device buffers (its previous chunk). */
    const size_t ib = (size_t)total * sizeof(int32_t), cb = ((size_t)nseq + 1) * sizeof(int32_t);
    CU_CHECK(cudaStreamWaitEvent(c->copy, sl->done, 0));
    CU_CHECK(cudaMemcpyAsync(sl->d_ids, sl->ids, ib, cudaMemcpyHostToDevice, c->copy));
    CU_CHECK(cudaMemcpyAsync(sl->d_types, sl->types, ib, cudaMemcpyHostToDevice, c->copy));
    CU_CHECK(cudaMemcpyAsync(sl->d_cu, sl->cu, cb, cudaMemcpyHostToDevice, c->copy));
    if (b->skip)
        CU_CHECK(cudaMemcpyAsync(sl->d_skip, sl->skip, (size_t)nseq * sizeof(int32_t),
                                 cudaMemcpyHostToDevice, c->copy));
    CU_CHECK(cudaEventRecord(sl->uploaded, c->copy));
    CU_CHECK(cudaStreamWaitEvent(c->compute, sl->uploaded, 0));

    st = forward(c, sl, nseq, total, max_seqlen, job->layer, err);
    if (!st) st = pool_and_finish(c, sl, nseq, b->skip != NULL, job, err);
    if (st) return st;

    CU_CHECK(cudaMemcpyAsync(sl->out, c->vec_out, (size_t)nseq * job->out_dim * sizeof(float),
                             cudaMemcpyDeviceToHost, c->compute));
    CU_CHECK(cudaEventRecord(sl->done, c->compute));
    sl->busy = 1;
    sl->rows = nseq;
    sl->out_dim = job->out_dim;
    sl->dst = out + (size_t)s0 * job->out_dim;
    return EMB_OK;
}

/* Runs sequences [s0, s1) in chunks that fit the workspace; a chunk that
 * runs out of device memory is halved and retried (a single sequence that
 * does not fit is an error). */
static emb_status run_range(cuda_ctx *c, const emb_batch *b, int s0, int s1, const emb_job *job,
                            size_t widest, float *out, emb_error *err) {
    const size_t seq_cap = c->pool_floats / widest;
    int i = s0;
    while (i < s1) {
        int j = i;
        size_t tokens = 0;
        while (j < s1) {
            size_t len = (size_t)(b->cu_seqlens[j + 1] - b->cu_seqlens[j]);
            if (j > i && (tokens + len > c->cap_tokens || (size_t)(j - i) >= seq_cap ||
                          j - i >= c->cap_seqs))
                break;
            tokens += len;
            j++;
        }
        emb_status st = run_chunk(c, b, i, j, job, out, err);
        if (st == EMB_ERR_DEVICE_OOM && j - i > 1) {
            /* Everything queued so far must finish before memory frees up,
             * the failed chunk's kernels too: they still read its slot's
             * buffers, which the retry's uploads are not ordered after. */
            emb_error scratch;
            drain_all(c, &scratch);
            cudaStreamSynchronize(c->compute);
            cudaStreamSynchronize(c->copy);
            cudaGetLastError();  /* the failed allocation is not sticky; clear it */
            int mid = i + (j - i) / 2;
            if ((st = run_range(c, b, i, mid, job, widest, out, err))) return st;
            if ((st = run_range(c, b, mid, j, job, widest, out, err))) return st;
        } else if (st) {
            return st;
        }
        i = j;
    }
    return EMB_OK;
}

static emb_status check_batch(const cuda_ctx *c, const emb_batch *b, emb_error *err) {
    if (!b || b->nseq < 0 || !b->cu_seqlens || (b->total > 0 && !b->ids) ||
        b->cu_seqlens[0] != 0 || b->cu_seqlens[b->nseq] != b->total)
        return emb_fail(err, EMB_ERR_INVALID_ARG, "CUDA backend: malformed batch");
    for (int s = 0; s < b->nseq; s++) {
        int len = b->cu_seqlens[s + 1] - b->cu_seqlens[s];
        if (len < 0 || len > c->cfg.max_position)
            return emb_fail(err, EMB_ERR_INVALID_ARG,
                            "CUDA backend: sequence %d has %d tokens (model limit %d)", s, len,
                            c->cfg.max_position);
        if ((size_t)len > c->cap_tokens)
            return emb_fail(err, EMB_ERR_INVALID_ARG,
                            "CUDA backend: sequence %d has %d tokens, more than the device "
                            "token budget %zu",
                            s, len, c->cap_tokens);
    }
    /* Out-of-range ids would make the gather read outside the table. */
    for (int t = 0; t < b->total; t++) {
        if (b->ids[t] < 0 || b->ids[t] >= c->cfg.vocab_size)
            return emb_fail(err, EMB_ERR_INVALID_ARG, "CUDA backend: token %d has id %d (vocab %d)",
                            t, b->ids[t], c->cfg.vocab_size);
        if (b->type_ids && (b->type_ids[t] < 0 || b->type_ids[t] >= c->cfg.type_vocab_size))
            return emb_fail(err, EMB_ERR_INVALID_ARG, "CUDA backend: token %d has type id %d",
                            t, b->type_ids[t]);
    }
    return EMB_OK;
}

static emb_status cuda_encode(emb_backend *be, const emb_batch *b, const emb_job *job, float *out,
                              emb_error *err) {
    cuda_ctx *c = be->ctx;
    emb_status st = check_batch(c, b, err);
    if (st) return st;
    if (job->layer < 1 || job->layer > c->cfg.layers || popcount6(job->pooling_modes) == 0 ||
        job->out_dim < 1)
        return emb_fail(err, EMB_ERR_INVALID_ARG, "CUDA backend: bad job (layer %d, modes %#x, dim %d)",
                        job->layer, job->pooling_modes, job->out_dim);
    if (b->nseq == 0) return EMB_OK;
    CU_CHECK(cudaSetDevice(c->device));
    size_t widest = (size_t)c->cfg.hidden * popcount6(job->pooling_modes);
    if (job->apply_dense)
        for (int d = 0; d < c->n_dense; d++)
            if ((size_t)c->dense[d].out > widest) widest = (size_t)c->dense[d].out;
    if (widest > c->pool_floats)
        return emb_fail(err, EMB_ERR_UNSUPPORTED, "CUDA backend: output rows too wide");
    st = run_range(c, b, 0, b->nseq, job, widest, out, err);
    emb_error drain_err;
    emb_status dst = drain_all(c, st ? &drain_err : err);
    return st ? st : dst;
}

static emb_status cuda_token_embeddings(emb_backend *be, const emb_batch *b, int layer, float *out,
                                        emb_error *err) {
    cuda_ctx *c = be->ctx;
    emb_status st = check_batch(c, b, err);
    if (st) return st;
    if (layer < 1 || layer > c->cfg.layers)
        return emb_fail(err, EMB_ERR_INVALID_ARG, "CUDA backend: layer %d of %d", layer, c->cfg.layers);
    if ((size_t)b->total > c->cap_tokens || b->nseq > c->cap_seqs)
        return emb_fail(err, EMB_ERR_INVALID_ARG,
                        "CUDA backend: token_embeddings batch of %d tokens exceeds budget %zu",
                        b->total, c->cap_tokens);
    if (b->nseq == 0) return EMB_OK;
    CU_CHECK(cudaSetDevice(c->device));
    if ((st = drain_all(c, err))) return st;
    cu_slot *sl = &c->slot[0];
    int max_seqlen = 0;
    for (int s = 0; s < b->nseq; s++) {
        int len = b->cu_seqlens[s + 1] - b->cu_seqlens[s];
        if (len > max_seqlen) max_seqlen = len;
    }
    const size_t ib = (size_t)b->total * sizeof(int32_t);
    memcpy(sl->ids, b->ids, ib);
    if (b->type_ids) memcpy(sl->types, b->type_ids, ib);
    else memset(sl->types, 0, ib);
    memcpy(sl->cu, b->cu_seqlens, ((size_t)b->nseq + 1) * sizeof(int32_t));
    CU_CHECK(cudaMemcpyAsync(sl->d_ids, sl->ids, ib, cudaMemcpyHostToDevice, c->compute));
    CU_CHECK(cudaMemcpyAsync(sl->d_types, sl->types, ib, cudaMemcpyHostToDevice, c->compute));
    CU_CHECK(cudaMemcpyAsync(sl->d_cu, sl->cu, ((size_t)b->nseq + 1) * sizeof(int32_t),
                             cudaMemcpyHostToDevice, c->compute));
    if ((st = forward(c, sl, b->nseq, b->total, max_seqlen, layer, err))) return st;
    const size_t n = (size_t)b->total * c->cfg.hidden;
    CU_CHECK(emb_launch_to_f32((float *)c->big, c->h, c->kdt, n, c->compute));
    CU_CHECK(cudaMemcpyAsync(out, c->big, n * sizeof(float), cudaMemcpyDeviceToHost, c->compute));
    CU_CHECK(cudaStreamSynchronize(c->compute));
    return EMB_OK;
}

static void cuda_destroy(emb_backend *be) {
    if (!be) return;
    cuda_ctx *c = be->ctx;
    if (c) {
        cudaSetDevice(c->device);
        if (c->compute) cudaStreamSynchronize(c->compute);
        if (c->copy) cudaStreamSynchronize(c->copy);
        free_workspace(c);
        for (int s = 0; s < NSLOTS; s++) {
            if (c->slot[s].uploaded) cudaEventDestroy(c->slot[s].uploaded);
            if (c->slot[s].done) cudaEventDestroy(c->slot[s].done);
        }
        if (c->weights) cudaFree(c->weights);
        if (c->blas) cublasDestroy(c->blas);
        if (c->compute) cudaStreamDestroy(c->compute);
        if (c->copy) cudaStreamDestroy(c->copy);
        free(c->layer);
        free(c->dense);
        free(c);
    }
    free(be);
}

/* ---- creation ------------------------------------------------------------ */

emb_status emb_cuda_device_usable(int device, char *why, size_t why_len) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        /* No driver at all reads "driver version is insufficient" from the
         * runtime; say what it means. */
        if (why)
            snprintf(why, why_len, "%s",
                     e == cudaErrorInsufficientDriver || e == cudaErrorNoDevice || n == 0
                         ? "no NVIDIA GPU or driver found"
                         : cudaGetErrorString(e));
        cudaGetLastError();
        return EMB_ERR_DEVICE;
    }
    if (device < 0 || device >= n) {
        if (why) snprintf(why, why_len, "device %d of %d", device, n);
        return EMB_ERR_DEVICE;
    }
    struct cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, device) != cudaSuccess) {
        if (why) snprintf(why, why_len, "cannot query device %d", device);
        return EMB_ERR_DEVICE;
    }
    if (p.major < 8) {
        if (why) snprintf(why, why_len, "%s is sm_%d%d; embedc needs sm_80 or newer", p.name,
                          p.major, p.minor);
        return EMB_ERR_UNSUPPORTED;
    }
    return EMB_OK;
}

/* Dense fp16/bf16 tensor-core FLOP/s with fp32 accumulation: SMs x clock x
 * FLOP per clock per SM (A100 2048; A10/L4/L40S and other sm_86/89 parts
 * 1024; H100/H200 4096). The clock is the boost clock the driver reports. */
static double device_peak_flops(int device) {
    int sms = 0, khz = 0, major = 0, minor = 0;
    if (cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess ||
        cudaDeviceGetAttribute(&khz, cudaDevAttrClockRate, device) != cudaSuccess ||
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess ||
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    double per_sm = major >= 9 ? 4096 : (major == 8 && minor == 0) ? 2048 : 1024;
    return (double)sms * khz * 1e3 * per_sm;
}

/* Until the generic CUDA forward: the recipe must have BERT's shape
 * (learned absolute positions numbered from 0, token types, LayerNorms with
 * bias in post-norm, biased Q/K/V/O, plain biased FFN, no window). */
static int bert_shaped(const emb_recipe *r) {
    if (r->emb.pos != EMB_EPOS_LEARNED || r->emb.pos_pad_id >= 0 || r->emb.pos_offset ||
        !r->emb.token_type.data || r->emb.scale != 1.0f || r->emb.norm.kind != EMB_NORM_LAYER ||
        !r->emb.norm.b.data || r->place != EMB_PLACE_POST || r->attn_pos != EMB_APOS_NONE ||
        r->kv_heads != r->heads || r->head_dim * r->heads != r->hidden || r->softcap > 0 || r->gated ||
        r->final_norm.kind != EMB_NORM_NONE || !r->layer)
        return 0;
    for (int l = 0; l < r->layers; l++) {
        const emb_recipe_layer *L = &r->layer[l];
        if (!L->wq.data || !L->bq.data || !L->bk.data || !L->bv.data || !L->bo.data || !L->b_up.data ||
            !L->b_down.data || L->attn_norm.kind != EMB_NORM_LAYER || !L->attn_norm.b.data ||
            L->mlp_norm.kind != EMB_NORM_LAYER || !L->mlp_norm.b.data || L->q_norm.kind || L->k_norm.kind ||
            L->window_left >= 0 || L->window_right >= 0)
            return 0;
    }
    return 1;
}

static emb_status check_model(const emb_model_files *mf, cu_cfg *cfg, emb_error *err) {
    const emb_recipe *r = &mf->r;
    if (!bert_shaped(r))
        return emb_fail(err, EMB_ERR_UNSUPPORTED,
                        "CUDA backend: the %s family is not supported on the GPU yet (use --device cpu)",
                        r->family ? r->family : r->model_type);
    *cfg = (cu_cfg){.vocab_size = r->vocab_size, .hidden = r->hidden, .layers = r->layers, .heads = r->heads,
                    .head_dim = r->head_dim, .intermediate = r->intermediate, .max_position = r->max_position,
                    .type_vocab_size = r->emb.type_vocab, .layer_norm_eps = r->layer[0].attn_norm.eps,
                    .hidden_act = r->act};
    if (cfg->head_dim != 32 && cfg->head_dim != 64 && cfg->head_dim != 128)
        return emb_fail(err, EMB_ERR_UNSUPPORTED,
                        "CUDA backend: head_dim %d (the attention kernel supports 32, 64, 128)",
                        cfg->head_dim);
    if (cfg->hidden % 2 || cfg->hidden > EMB_KERNEL_MAX_NORM_DIM || cfg->intermediate % 2)
        return emb_fail(err, EMB_ERR_UNSUPPORTED, "CUDA backend: hidden size %d", cfg->hidden);
    if (cfg->hidden_act < EMB_ACT_IDENTITY || cfg->hidden_act > EMB_ACT_SIGMOID)
        return emb_fail(err, EMB_ERR_UNSUPPORTED, "CUDA backend: activation %d", cfg->hidden_act);
    for (int d = 0; d < mf->st.n_dense; d++)
        if (mf->st.dense[d].out_features % 2)
            return emb_fail(err, EMB_ERR_UNSUPPORTED, "CUDA backend: Dense width %d is odd",
                            mf->st.dense[d].out_features);
    return EMB_OK;
}

emb_status emb_cuda_backend_create(const struct emb_model_files *mf, emb_dtype dtype, int device,
                                   size_t max_batch_tokens, emb_backend **out, emb_error *err) {
    if (!mf || !out) return emb_fail(err, EMB_ERR_INVALID_ARG, "emb_cuda_backend_create: NULL argument");
    *out = NULL;
    cu_cfg cfg;
    emb_status st = check_model(mf, &cfg, err);
    if (st) return st;
    char why[256];
    if ((st = emb_cuda_device_usable(device, why, sizeof why)))
        return emb_fail(err, st, "CUDA backend: %s", why);

    if (dtype == EMB_DTYPE_AUTO)
        dtype = mf->r.dtype == EMB_DTYPE_BF16 ? EMB_DTYPE_BF16 : EMB_DTYPE_F16;
    if (dtype != EMB_DTYPE_F16 && dtype != EMB_DTYPE_BF16)
        return emb_fail(err, EMB_ERR_UNSUPPORTED,
                        "CUDA backend: --dtype f32 is not supported on the GPU (use f16 or bf16)");

    emb_backend *be = calloc(1, sizeof *be);
    cuda_ctx *c = calloc(1, sizeof *c);
    if (!be || !c) {
        free(be);
        free(c);
        return emb_fail(err, EMB_ERR_NOMEM, "CUDA backend: out of host memory");
    }
    be->name = "cuda";
    be->ctx = c;
    be->chunks_internally = 1;
    be->peak_flops = device_peak_flops(device);
    be->encode = cuda_encode;
    be->token_embeddings = cuda_token_embeddings;
    be->destroy = cuda_destroy;
    c->mf = mf;
    c->cfg = cfg;
    c->device = device;
    c->dtype = dtype;
    c->kdt = dtype == EMB_DTYPE_BF16 ? EMB_KDT_BF16 : EMB_KDT_F16;
    c->cdt = dtype == EMB_DTYPE_BF16 ? CUDA_R_16BF : CUDA_R_16F;
    c->esz = 2;

#define CREATE_CHECK(call)                                                              \
    do {                                                                                \
        cudaError_t e_ = (call);                                                        \
        if (e_ != cudaSuccess) {                                                        \
            st = cu_fail(err, e_, #call, __FILE__, __LINE__);                           \
            goto fail;                                                                  \
        }                                                                               \
    } while (0)

    CREATE_CHECK(cudaSetDevice(device));
    CREATE_CHECK(cudaStreamCreateWithFlags(&c->compute, cudaStreamNonBlocking));
    CREATE_CHECK(cudaStreamCreateWithFlags(&c->copy, cudaStreamNonBlocking));
    for (int s = 0; s < NSLOTS; s++) {
        CREATE_CHECK(cudaEventCreateWithFlags(&c->slot[s].uploaded, cudaEventDisableTiming));
        CREATE_CHECK(cudaEventCreateWithFlags(&c->slot[s].done, cudaEventDisableTiming));
    }
    {
        cublasStatus_t bs = cublasCreate(&c->blas);
        if (bs != CUBLAS_STATUS_SUCCESS) {
            c->blas = NULL;
            st = blas_fail(err, bs, "cublasCreate", __FILE__, __LINE__);
            goto fail;
        }
        if ((bs = cublasSetStream(c->blas, c->compute)) != CUBLAS_STATUS_SUCCESS) {
            st = blas_fail(err, bs, "cublasSetStream", __FILE__, __LINE__);
            goto fail;
        }
    }
    if ((st = upload_weights(c, err))) goto fail;

    /* The budget must hold the longest sequence the model accepts; on OOM
     * halve it (down to that floor) rather than refuse to run. */
    size_t tokens = max_batch_tokens ? max_batch_tokens : CUDA_DEFAULT_BATCH_TOKENS;
    size_t floor_tokens = (size_t)mf->r.max_position;
    if (floor_tokens < MIN_BUDGET_TOKENS) floor_tokens = MIN_BUDGET_TOKENS;
    if (tokens < floor_tokens) tokens = floor_tokens;
    for (;;) {
        st = alloc_workspace(c, tokens, err);
        if (st == EMB_OK) break;
        free_workspace(c);
        if (st != EMB_ERR_DEVICE_OOM || tokens <= floor_tokens) goto fail;
        cudaGetLastError();
        tokens = tokens / 2 > floor_tokens ? tokens / 2 : floor_tokens;
        fprintf(stderr, "embedc: GPU memory is short; token budget lowered to %zu\n", tokens);
    }
    *out = be;
    return EMB_OK;
fail:
    cuda_destroy(be);
    return st;
#undef CREATE_CHECK
}
