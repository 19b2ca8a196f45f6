/*
 * The CUDA backend: runs any recipe (host/arch/recipe.h) on one GPU with one
 * generic forward and returns finished vectors (pooled, Dense, truncated,
 * normalized), so hidden states never leave the device. The forward:
 * embeddings (word x scale + learned or sinusoidal positions, whose row per
 * token the host computes by the recipe's rule, + optional token types, then
 * LayerNorm with or without bias, RMSNorm or none), then per layer attention
 * and MLP with the recipe's norm placement (post, pre, sandwich), rotary with
 * the layer's theta, a relative-position bias table, the layer's window, GQA,
 * softcap; plain or gated MLP; a final norm. Weights are converted to
 * fp16/bf16 piece by piece from the mmapped files through a small pinned
 * staging buffer and uploaded once, after checking that they and the
 * workspace fit the device (Q, K, V stacked into one
 * [(heads + 2 kv_heads) head_dim, hidden] matrix so the projection is a
 * single GEMM whose output is the layout the attention kernel reads in place;
 * a gated MLP's gate and up likewise). All GEMMs go through cublasGemmEx with
 * fp32 accumulation (pre-norm residual adds as beta = 1); everything else is
 * a kernel from kernels/. A workspace arena sized from the token budget is allocated
 * once; a batch larger than the budget is cut into chunks that run through a
 * two-slot pipeline (pinned staging, a copy stream and a compute stream with
 * events, so chunk i+1's upload overlaps chunk i's compute and chunk i's
 * vectors come back while i+1 runs). A chunk that runs out of device memory
 * is split in two and retried. Every CUDA and cuBLAS call is checked and a
 * failure names the call, file and line. A device may hold a
 * tensor-parallel shard (host/cuda/tp.c): its heads and MLP columns, and
 * an all-reduce after the row-parallel projections (project_out).
 */
#include "cuda_backend.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "backend.h"
#include "error.h"
#include "half.h"
#include "kernels.h"
#include "model_files.h"
#include "tp.h"

_Static_assert(EMB_KACT_GELU == (int)EMB_ACT_GELU && EMB_KACT_GELU_TANH == (int)EMB_ACT_GELU_TANH &&
                   EMB_KACT_RELU == (int)EMB_ACT_RELU && EMB_KACT_SILU == (int)EMB_ACT_SILU &&
                   EMB_KACT_TANH == (int)EMB_ACT_TANH && EMB_KACT_SIGMOID == (int)EMB_ACT_SIGMOID &&
                   EMB_KACT_IDENTITY == (int)EMB_ACT_IDENTITY,
               "kernels.h activation codes must match emb_act");

#define NSLOTS 2
/* Default chunk budget: on an H200, 64K-token chunks ran the default model
 * 9-13 % faster than 16K ones and no slower than 256K (bench/RESULTS.md);
 * the workspace stays well under 1 GB for 1024-wide, 24-layer shapes. */
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

/* A norm on the device: kind EMB_KNORM_*, g (with 1 pre-added for RMSNorm
 * (1 + w)), b (LayerNorm bias or NULL). */
typedef struct {
    int kind;
    float eps;
    void *g, *b;
} cu_norm;

typedef struct {
    cu_norm attn_norm, mlp_norm, attn_post, mlp_post;
    cu_norm q_norm, k_norm; /* per head over head_dim (RMS kinds), or kind NONE */
    void *wqkv, *bqkv;      /* [(heads + 2 kv) hd, hidden]: Q, K, V rows stacked */
    void *wo, *bo;          /* [hidden, heads hd] */
    void *win, *bin;        /* plain [I, hidden]; gated [2I, hidden], gate rows first */
    void *wdown, *bdown;    /* [hidden, I] */
    int window_left, window_right;
    float rope_theta;
    float *inv_freq;        /* fp32 [rotary_dim / 2]: a scaled rope's frequencies, or NULL */
} cu_layer;

typedef struct {
    float *w, *b;   /* fp32: Dense runs on pooled vectors, a few rows per batch */
    int in, out, act, has_bias;
} cu_dense;

typedef struct {
    int32_t *ids, *types, *pos, *cu, *skip;   /* pinned host staging */
    float *out;                               /* pinned host result rows */
    int32_t *d_ids, *d_types, *d_pos, *d_cu, *d_skip;
    cudaEvent_t uploaded;               /* copy stream: inputs are on the device */
    cudaEvent_t done;                   /* compute stream: slot free, results on the host */
    /* What the slot holds while in flight (to copy out when it completes). */
    int busy, rows, out_dim;
    float *dst;
} cu_slot;

/* A chunk's shape as the device runs it (see graph_shape). */
typedef struct {
    int tokens, seqs, max_seqlen;
} chunk_shape;

/* One cached CUDA graph: everything its captured launches depend on (the
 * slot's buffers, the padded shape, the job), and its executable. */
typedef struct {
    int slot, layer, modes, out_dim, normalize, dense, skip;
    chunk_shape shape;
} graph_key;

typedef struct {
    graph_key key;
    int used;               /* the entry holds a key */
    int seen;               /* the bucket ran directly once */
    cudaGraphExec_t exec;   /* its graph, once captured */
    uint64_t stamp;         /* last use, for LRU eviction */
} cu_graph;

/* Graphs kept per backend: a sorted corpus mix of 64K-token chunks uses a
 * few dozen buckets per slot. */
#define GRAPH_CACHE 128

typedef struct {
    const emb_model_files *mf;
    emb_recipe r;           /* sizes and flags of this device's shard (heads, kv_heads and
                               intermediate are the shard's; its tensor views are unused) */
    emb_cuda_shard sh;
    emb_cuda_tp *tp;        /* tensor-parallel group (NULL: none) and this device's rank in it */
    int tp_rank;
    emb_kattn_impl attn_impl; /* mma.sync, or wgmma (EMBEDC_ATTENTION, see pick_attention) */
    int fold_qkv_bias;      /* QKV bias folded (see pick_qkv_bias): bqkv holds the Q part only,
                               added by the attention kernel; bo includes Wo bv */
    int fuse_sandwich;      /* Gemma's post-norm, residual add and next norm in one pass */
    /* EMBEDC_MLP_EPILOGUE=lt (pick_mlp_epilogue): the MLP's up-projection through
     * cuBLASLt with its bias + GELU (tanh form) or ReLU epilogue, no separate pass. */
    cublasLtHandle_t lt;
    cublasLtMatmulDesc_t lt_desc;
    /* The GEMMs' workspace (set_gemm_workspace), shared by cuBLAS and cuBLASLt:
     * both run on the compute stream, one GEMM at a time. */
    void *gemm_ws;
    size_t gemm_ws_bytes;
    int tmp_is_input;       /* c->tmp already holds the next sublayer's normalized input */
    int n_position;         /* rows of the position table (0: none) */
    int device;
    emb_dtype dtype;
    emb_kdtype kdt;
    cudaDataType_t cdt;
    size_t esz;

    cublasHandle_t blas;
    cudaStream_t compute, copy;

    void *weights;    /* one allocation for all weights */
    size_t weights_size;
    void *word, *pos, *tt;
    cu_norm emb_norm, final_norm;
    float *rel_bias;  /* [heads, 2 max_position - 1] fp32, or NULL */
    cu_layer *layer;
    cu_dense *dense;
    int n_dense;

    /* Workspace, sized from the token budget at create time. */
    size_t cap_tokens;
    int cap_seqs;
    size_t pool_floats;     /* capacity of each fp32 row buffer below */
    void *arena;
    void *h, *tmp;          /* [cap, hidden] */
    void *ctx;              /* [cap, max(heads hd, gated ? I : 0)] */
    void *big;              /* [cap, max(qkv width, I or 2I)], >= [cap, hidden] fp32 */
    float *pool_a, *pool_b, *vec_out;
    cu_slot slot[NSLOTS];
    int next_slot;

    /* EMBEDC_GRAPHS=on (pick_graphs): each chunk shape bucket's forward and
     * pooling as one CUDA graph, captured the second time the bucket comes
     * up and replayed after that (see graph_shape). */
    int graphs, graphs_asked;
    cu_graph graph[GRAPH_CACHE];
    uint64_t graph_clock;
    uint64_t graph_captured, graph_launched, graph_direct, graph_evicted;
    char graph_off[160];    /* why graphs were turned off mid-run (empty: they were not) */
} cuda_ctx;

static int popcount6(int m) {
    int n = 0;
    for (m &= 63; m; m &= m - 1) n++;
    return n;
}

static size_t align256(size_t n) { return (n + 255) & ~(size_t)255; }

static size_t qkv_width(const emb_recipe *r) {
    return (size_t)(r->heads + 2 * r->kv_heads) * (size_t)r->head_dim;
}

/* ---- weights ------------------------------------------------------------- */

/* The weight block is planned twice: a sizing pass (convert == 0) that only
 * moves the cursor, then a pass that converts every tensor, piece by piece,
 * straight from the mmapped files into a small staging buffer (two pinned
 * halves: one is converted into while the other is copied to the device) at
 * the same offsets. No host copy of the whole block is ever made. Absent
 * tensors of a stack are zero-filled; an absent tensor on its own gets no
 * space (offset NONE, pointer NULL). A device that holds a tensor-parallel
 * shard plans only its rows/columns of the split matrices. */
#define NONE ((size_t)-1)
/* Staging: two halves of at most this many bytes each. */
#define STAGE_HALF_BYTES ((size_t)32 << 20)
/* fp32 scratch for converting one piece of a tensor. */
#define SCRATCH_FLOATS ((size_t)1 << 20)

typedef struct {
    int convert;           /* 0: sizing pass */
    size_t size, used;     /* sizing: bytes planned; converting: bytes written */
    emb_dtype dt;
    emb_status st;         /* first failure */
    /* Converting pass only. */
    unsigned char *dev;    /* the device block */
    unsigned char *half[2];
    cudaEvent_t copied[2];
    int pending[2], cur;
    size_t half_cap, fill; /* bytes in half[cur] not yet copied */
    size_t flushed;        /* device offset of half[cur][0] */
    cudaStream_t stream;
    float *scratch;
    cudaError_t cerr;
    const char *ccall;
} upload_plan;

static void plan_cuda_fail(upload_plan *p, cudaError_t e, const char *call) {
    if (p->cerr == cudaSuccess) {
        p->cerr = e;
        p->ccall = call;
    }
}

/* Copies the current half to the device and switches to the other one
 * (waiting for its previous copy). */
static void plan_flush(upload_plan *p) {
    if (!p->fill || p->cerr != cudaSuccess) return;
    const int h = p->cur;
    cudaError_t e = cudaMemcpyAsync(p->dev + p->flushed, p->half[h], p->fill, cudaMemcpyHostToDevice,
                                    p->stream);
    if (e == cudaSuccess) e = cudaEventRecord(p->copied[h], p->stream);
    if (e != cudaSuccess) {
        plan_cuda_fail(p, e, "cudaMemcpyAsync(weights)");
        return;
    }
    p->pending[h] = 1;
    p->flushed += p->fill;
    p->fill = 0;
    p->cur ^= 1;
    if (p->pending[p->cur]) {
        e = cudaEventSynchronize(p->copied[p->cur]);
        if (e != cudaSuccess) plan_cuda_fail(p, e, "cudaEventSynchronize(weights)");
        p->pending[p->cur] = 0;
    }
}

/* Room for at least `bytes` in the current half. */
static unsigned char *plan_room(upload_plan *p, size_t bytes, size_t *room) {
    if (p->half_cap - p->fill < bytes) plan_flush(p);
    *room = p->half_cap - p->fill;
    return p->half[p->cur] + p->fill;
}

/* Appends n fp32 values (from src, or zeros when src is NULL), +add each,
 * in the device dtype (or fp32 when f32). */
static size_t plan_floats(upload_plan *p, const float *src, size_t n, float add, int f32) {
    const size_t es = f32 ? 4 : 2, off = p->convert ? p->used : p->size;
    if (!p->convert) {
        p->size += n * es;
        return off;
    }
    for (size_t i = 0; i < n && p->cerr == cudaSuccess;) {
        size_t room;
        unsigned char *dst = plan_room(p, es, &room);
        size_t k = room / es;
        if (k > n - i) k = n - i;
        for (size_t j = 0; j < k; j++) {
            float v = (src ? src[i + j] : 0.0f) + add;
            if (f32) memcpy(dst + 4 * j, &v, 4);
            else {
                uint16_t u = p->dt == EMB_DTYPE_BF16 ? emb_f32_to_bf16(v) : emb_f32_to_f16(v);
                memcpy(dst + 2 * j, &u, 2);
            }
        }
        p->fill += k * es;
        i += k;
    }
    p->used += n * es;
    return off;
}

/* Elements [from, from + n) of tensor t (present) as fp32 into dst. */
static void tensor_range_f32(const emb_tensor *t, size_t from, size_t n, float *dst) {
    const size_t es = t->dtype == EMB_DTYPE_F32 ? 4 : 2;
    emb_tensor piece = *t;
    piece.data = (const unsigned char *)t->data + from * es;
    emb_tensor_to_f32(&piece, dst, n);
}

/* Appends elements [from, from + n) of tensor t (zeros when absent). */
static size_t plan_range(upload_plan *p, const emb_tensor *t, size_t from, size_t n, float add, int f32) {
    if (!p->convert || !t->data) return plan_floats(p, NULL, n, add, f32);
    const size_t off = p->used;
    for (size_t i = 0; i < n; i += SCRATCH_FLOATS) {
        const size_t k = n - i < SCRATCH_FLOATS ? n - i : SCRATCH_FLOATS;
        tensor_range_f32(t, from + i, k, p->scratch);
        plan_floats(p, p->scratch, k, add, f32);
    }
    return off;
}

/* Appends tensor t whole as n elements (zeros when absent). */
static size_t plan_tensor(upload_plan *p, const emb_tensor *t, size_t n, float add, int f32) {
    if (t->data && emb_tensor_numel(t) != n)
        p->st = EMB_ERR_FORMAT;   /* reported by plan_model; the recipe's checks make it unreachable */
    return plan_range(p, t, 0, n, add, f32);
}

/* Every tensor starts 256-byte aligned (vectorized kernel loads, cuBLAS). */
static void plan_align(upload_plan *p) {
    size_t *cursor = p->convert ? &p->used : &p->size;
    const size_t pad = align256(*cursor) - *cursor;
    if (pad && p->convert) plan_floats(p, NULL, pad / 2, 0.0f, 0);
    else *cursor += pad;
}

/* One optional tensor of n elements: NONE when absent. */
static size_t plan_opt(upload_plan *p, const emb_tensor *t, size_t n, int f32) {
    if (!t->data) return NONE;
    size_t off = plan_tensor(p, t, n, 0.0f, f32);
    plan_align(p);
    return off;
}

/* Rows [row0, row0 + nrows) of a [rows, cols] tensor: a shard of a
 * column-parallel matrix (all of it without tensor parallelism). */
typedef struct {
    const emb_tensor *t;
    size_t rows, row0, nrows;
} row_part;

/* Up to four row ranges stacked into one (zeros for absent tensors); NONE
 * when all are absent. */
static size_t plan_rows(upload_plan *p, const row_part *part, int parts, size_t cols) {
    int any = 0;
    for (int i = 0; i < parts; i++) any |= part[i].t->data != NULL;
    if (!any) return NONE;
    size_t off = NONE;
    for (int i = 0; i < parts; i++) {
        const row_part *q = &part[i];
        if (q->t->data && emb_tensor_numel(q->t) != q->rows * cols) p->st = EMB_ERR_FORMAT;
        size_t o = plan_range(p, q->t, q->row0 * cols, q->nrows * cols, 0.0f, 0);
        if (!i) off = o;
    }
    plan_align(p);
    return off;
}

/* Columns [col0, col0 + ncols) of every row of a [rows, cols] tensor: the
 * shard of a row-parallel matrix. NONE when absent. */
static size_t plan_cols(upload_plan *p, const emb_tensor *t, size_t rows, size_t cols, size_t col0,
                        size_t ncols) {
    if (!t->data) return NONE;
    if (emb_tensor_numel(t) != rows * cols) p->st = EMB_ERR_FORMAT;
    size_t off = NONE;
    if (col0 == 0 && ncols == cols) {
        off = plan_range(p, t, 0, rows * cols, 0.0f, 0);
    } else {
        for (size_t r = 0; r < rows; r++) {
            size_t o = plan_range(p, t, r * cols + col0, ncols, 0.0f, 0);
            if (!r) off = o;
        }
    }
    plan_align(p);
    return off;
}

typedef struct {
    size_t g, b;
} norm_offsets;

static norm_offsets plan_norm(upload_plan *p, const emb_norm *nm, size_t dim) {
    norm_offsets o = {NONE, NONE};
    if (nm->kind == EMB_NORM_NONE) return o;
    o.g = plan_tensor(p, &nm->w, dim, nm->kind == EMB_NORM_RMS_1P ? 1.0f : 0.0f, 0);
    plan_align(p);
    if (nm->kind == EMB_NORM_LAYER) o.b = plan_opt(p, &nm->b, dim, 0);
    return o;
}

/* Fixed sinusoidal positions (transformers' create_sinusoidal_embeddings:
 * float64 math, stored as float32). */
static void sinusoids(float *t, int n_pos, int dim) {
    for (int p = 0; p < n_pos; p++)
        for (int j = 0; j < dim; j++) {
            const double angle = p / pow(10000.0, 2.0 * (j / 2) / dim);
            t[(size_t)p * dim + j] = (float)(j % 2 ? cos(angle) : sin(angle));
        }
}

/* Per-head relative bias over every distance a sequence can have, from the
 * shared bucket table [num_buckets, heads]: [heads, 2 span - 1]. */
static void relative_bias_table(float *out, const float *buckets, const emb_recipe *r, int span) {
    const size_t w = 2 * (size_t)span - 1;
    for (int d = -(span - 1); d <= span - 1; d++) {
        const int k = emb_relative_bucket(d, r->rel.num_buckets, r->rel.max_distance, r->rel.bidirectional);
        for (int h = 0; h < r->heads; h++)
            out[(size_t)h * w + (size_t)(d + span - 1)] = buckets[(size_t)k * r->heads + h];
    }
}

typedef struct {
    size_t word, pos, tt, rel;
    norm_offsets emb_norm, final_norm;
    size_t *lay;   /* LAY_OFFSETS per layer */
    size_t *dense; /* 2 per dense */
    float *computed;   /* host table: sinusoids or relative bias (measured in the sizing pass) */
} weight_offsets;

/* O_NORMS: g and b of attn_norm, mlp_norm, attn_post, mlp_post, q_norm, k_norm. */
enum { O_WQKV, O_BQKV, O_WO, O_BO, O_WIN, O_BIN, O_WDOWN, O_BDOWN, O_INV_FREQ, O_NORMS, LAY_OFFSETS = O_NORMS + 12 };

/* The output projection's bias with the V bias folded in (pick_qkv_bias):
 * bo + Wo bv', bv' the V bias of each query head's KV head, in fp64 sums from
 * the whole (unsharded) tensors: the bias is added once, after the ranks'
 * partial products are summed. NONE when the layer has neither bias. */
static size_t plan_folded_bo(upload_plan *p, const emb_recipe *g, const emb_recipe_layer *L) {
    const size_t H = (size_t)g->hidden, hd = (size_t)g->head_dim;
    const size_t qr = (size_t)g->heads * hd, kvr = (size_t)g->kv_heads * hd;
    const emb_tensor *bv = L->bqkv.data ? &L->bqkv : &L->bv;
    const size_t bv0 = L->bqkv.data ? qr + kvr : 0;
    if (!bv->data) return plan_opt(p, &L->bo, H, 0);
    if (!p->convert) {
        size_t off = plan_floats(p, NULL, H, 0.0f, 0);
        plan_align(p);
        return off;
    }
    float *v = malloc(qr * sizeof *v), *row = malloc(qr * sizeof *row), *out = malloc(H * sizeof *out);
    size_t off = NONE;
    if (!v || !row || !out) {
        p->st = EMB_ERR_NOMEM;
        goto done;
    }
    const size_t group = (size_t)(g->heads / g->kv_heads);
    for (size_t h = 0; h < (size_t)g->heads; h++)
        tensor_range_f32(bv, bv0 + (h / group) * hd, hd, v + h * hd);
    if (L->bo.data) tensor_range_f32(&L->bo, 0, H, out);
    for (size_t i = 0; i < H; i++) {
        tensor_range_f32(&L->wo, i * qr, qr, row);
        double acc = L->bo.data ? out[i] : 0.0;
        for (size_t j = 0; j < qr; j++) acc += (double)row[j] * v[j];
        out[i] = (float)acc;
    }
    off = plan_floats(p, out, H, 0.0f, 0);
    plan_align(p);
done:
    free(v);
    free(row);
    free(out);
    return off;
}

/* One layer's weights, of this device's shard (c->sh): its query heads, KV
 * heads and intermediate columns of QKV and the MLP's input (row ranges),
 * the same columns of the output projection and the MLP's output. */
static void plan_layer(upload_plan *p, const cuda_ctx *c, const emb_recipe_layer *L, size_t *o) {
    const emb_recipe *g = &c->mf->r;   /* the whole model's shapes */
    const emb_cuda_shard *s = &c->sh;
    const size_t H = (size_t)g->hidden, I = (size_t)g->intermediate, hd = (size_t)g->head_dim;
    const size_t qr = (size_t)g->heads * hd, kvr = (size_t)g->kv_heads * hd;
    const size_t q0 = (size_t)s->q0 * hd, nq = (size_t)s->nq * hd;
    const size_t k0 = (size_t)s->kv0 * hd, nk = (size_t)s->nkv * hd;
    const size_t i0 = (size_t)s->i0, ni = (size_t)s->ni;
    if (L->wqkv.data) {
        const size_t all = qr + 2 * kvr;
        const row_part w[] = {{&L->wqkv, all, q0, nq}, {&L->wqkv, all, qr + k0, nk},
                              {&L->wqkv, all, qr + kvr + k0, nk}};
        const row_part b[] = {{&L->bqkv, all, q0, nq}, {&L->bqkv, all, qr + k0, nk},
                              {&L->bqkv, all, qr + kvr + k0, nk}};
        o[O_WQKV] = plan_rows(p, w, 3, H);
        o[O_BQKV] = plan_rows(p, b, c->fold_qkv_bias ? 1 : 3, 1);
    } else {
        const row_part w[] = {{&L->wq, qr, q0, nq}, {&L->wk, kvr, k0, nk}, {&L->wv, kvr, k0, nk}};
        const row_part b[] = {{&L->bq, qr, q0, nq}, {&L->bk, kvr, k0, nk}, {&L->bv, kvr, k0, nk}};
        o[O_WQKV] = plan_rows(p, w, 3, H);
        o[O_BQKV] = plan_rows(p, b, c->fold_qkv_bias ? 1 : 3, 1);
    }
    o[O_WO] = plan_cols(p, &L->wo, H, qr, q0, nq);
    o[O_BO] = c->fold_qkv_bias ? plan_folded_bo(p, g, L) : plan_opt(p, &L->bo, H, 0);
    if (!c->r.gated) {
        const row_part w[] = {{&L->w_up, I, i0, ni}}, b[] = {{&L->b_up, I, i0, ni}};
        o[O_WIN] = plan_rows(p, w, 1, H);
        o[O_BIN] = plan_rows(p, b, 1, 1);
    } else if (L->w_gate_up.data) {
        const row_part w[] = {{&L->w_gate_up, 2 * I, i0, ni}, {&L->w_gate_up, 2 * I, I + i0, ni}};
        const row_part b[] = {{&L->b_gate_up, 2 * I, i0, ni}, {&L->b_gate_up, 2 * I, I + i0, ni}};
        o[O_WIN] = plan_rows(p, w, 2, H);
        o[O_BIN] = plan_rows(p, b, 2, 1);
    } else {
        const row_part w[] = {{&L->w_gate, I, i0, ni}, {&L->w_up, I, i0, ni}};
        const row_part b[] = {{&L->b_gate, I, i0, ni}, {&L->b_up, I, i0, ni}};
        o[O_WIN] = plan_rows(p, w, 2, H);
        o[O_BIN] = plan_rows(p, b, 2, 1);
    }
    o[O_WDOWN] = plan_cols(p, &L->w_down, H, I, i0, ni);
    o[O_BDOWN] = plan_opt(p, &L->b_down, H, 0);
    o[O_INV_FREQ] = NONE;
    if (L->rope_inv_freq) {   /* fp32, as the host computed it */
        o[O_INV_FREQ] = plan_floats(p, L->rope_inv_freq, (size_t)g->rotary_dim / 2, 0.0f, 1);
        plan_align(p);
    }
    const emb_norm *norms[] = {&L->attn_norm, &L->mlp_norm, &L->attn_post_norm, &L->mlp_post_norm,
                               &L->q_norm, &L->k_norm};
    for (int i = 0; i < 6; i++) {
        norm_offsets no = plan_norm(p, norms[i], i < 4 ? H : hd);
        o[O_NORMS + 2 * i] = no.g;
        o[O_NORMS + 2 * i + 1] = no.b;
    }
}

static emb_status plan_model(upload_plan *p, cuda_ctx *c, weight_offsets *wo, emb_error *err) {
    const emb_recipe *r = &c->mf->r;
    const size_t H = (size_t)r->hidden;
    wo->word = plan_opt(p, &r->emb.word, (size_t)r->vocab_size * H, 0);
    wo->pos = wo->tt = wo->rel = NONE;
    if (r->emb.pos == EMB_EPOS_LEARNED) {
        wo->pos = plan_opt(p, &r->emb.position, (size_t)c->n_position * H, 0);
    } else if (r->emb.pos == EMB_EPOS_SINUSOIDAL) {
        if (p->convert) sinusoids(wo->computed, c->n_position, (int)H);
        wo->pos = plan_floats(p, wo->computed, (size_t)c->n_position * H, 0.0f, 0);
        plan_align(p);
    }
    if (r->emb.token_type.data) wo->tt = plan_opt(p, &r->emb.token_type, (size_t)r->emb.type_vocab * H, 0);
    if (r->attn_pos == EMB_APOS_RELATIVE) {
        /* [heads, 2 max_position - 1], this shard's heads only. */
        const size_t nb = (size_t)r->rel.num_buckets * r->heads, w = 2 * (size_t)r->max_position - 1;
        if (p->convert) {
            /* The bucket table in fp32 after the relative table itself. */
            float *buckets = wo->computed + (size_t)r->heads * w;
            emb_tensor_to_f32(&r->rel.table, buckets, nb);
            relative_bias_table(wo->computed, buckets, r, r->max_position);
        }
        wo->rel = plan_floats(p, wo->computed + (size_t)c->sh.q0 * w, (size_t)c->sh.nq * w, 0.0f, 1);
        plan_align(p);
    }
    wo->emb_norm = plan_norm(p, &r->emb.norm, H);
    wo->final_norm = plan_norm(p, &r->final_norm, H);
    for (int l = 0; l < r->layers; l++) plan_layer(p, c, &r->layer[l], wo->lay + LAY_OFFSETS * l);
    for (int d = 0; d < c->mf->st.n_dense; d++) {
        const emb_dense *D = &c->mf->st.dense[d];
        wo->dense[2 * d] = plan_opt(p, &D->w, (size_t)D->in_features * D->out_features, 1);
        wo->dense[2 * d + 1] = D->has_bias ? plan_opt(p, &D->b, (size_t)D->out_features, 1) : NONE;
    }
    plan_flush(p);
    if (p->st == EMB_ERR_NOMEM) return emb_fail(err, EMB_ERR_NOMEM, "CUDA backend: out of host memory");
    if (p->st)
        return emb_fail(err, EMB_ERR_FORMAT, "CUDA backend: a tensor's size disagrees with the recipe");
    if (p->cerr != cudaSuccess) return cu_fail(err, p->cerr, p->ccall, __FILE__, __LINE__);
    return EMB_OK;
}

static void *at(unsigned char *base, size_t off) { return off == NONE ? NULL : base + off; }

static cu_norm bind_norm(unsigned char *base, const emb_norm *src, norm_offsets o) {
    cu_norm n = {EMB_KNORM_NONE, src->eps, at(base, o.g), at(base, o.b)};
    if (src->kind == EMB_NORM_LAYER) n.kind = EMB_KNORM_LAYER;
    else if (src->kind != EMB_NORM_NONE) n.kind = EMB_KNORM_RMS;
    return n;
}

/* The converting pass: every tensor through the staging halves into the
 * device block c->weights (already allocated, c->weights_size bytes). */
static emb_status convert_weights(cuda_ctx *c, weight_offsets *wo, emb_error *err) {
    upload_plan p = {0};
    p.convert = 1;
    p.dt = c->dtype;
    p.dev = c->weights;
    p.stream = c->copy;
    p.half_cap = c->weights_size / 2 + 256 < STAGE_HALF_BYTES ? c->weights_size / 2 + 256 : STAGE_HALF_BYTES;
    emb_status st = EMB_OK;
    void *stage = NULL;
    int pinned = cudaMallocHost(&stage, 2 * p.half_cap) == cudaSuccess;
    if (!pinned) {   /* pinned memory is a nicety here: pageable copies are synchronous */
        cudaGetLastError();
        stage = malloc(2 * p.half_cap);
    }
    p.scratch = malloc(SCRATCH_FLOATS * sizeof(float));
    if (!stage || !p.scratch) {
        st = emb_fail(err, EMB_ERR_NOMEM, "CUDA backend: no host memory for %zu bytes of weight staging",
                      2 * p.half_cap);
        goto done;
    }
    p.half[0] = stage;
    p.half[1] = (unsigned char *)stage + p.half_cap;
    for (int h = 0; h < 2; h++) CU_TRY(st, cudaEventCreateWithFlags(&p.copied[h], cudaEventDisableTiming));
    if (st == EMB_OK) st = plan_model(&p, c, wo, err);
    CU_TRY(st, cudaStreamSynchronize(c->copy));
    if (st == EMB_OK && p.used != c->weights_size)
        st = emb_fail(err, EMB_ERR_INTERNAL, "CUDA backend: weights planned %zu bytes, wrote %zu",
                      c->weights_size, p.used);
    if (st == EMB_OK && getenv("EMBEDC_DEBUG_WEIGHTS"))
        fprintf(stderr, "embedc: device %d: converted %zu bytes of weights from the model files\n", c->device,
                c->weights_size);
done:
    for (int h = 0; h < 2; h++)
        if (p.copied[h]) cudaEventDestroy(p.copied[h]);
    if (pinned) cudaFreeHost(stage);
    else free(stage);
    free(p.scratch);
    return st;
}

/* Sizes the weight block (c->weights_size) and, when c->weights is set,
 * converts the model files into it (unless `convert` is 0: a block another
 * device's copy is broadcast into) and points the layers into it. */
static emb_status plan_weights(cuda_ctx *c, int convert, emb_error *err) {
    const emb_recipe *r = &c->mf->r;
    const int L = r->layers, ND = c->mf->st.n_dense;
    weight_offsets wo = {0};
    upload_plan p = {0};
    emb_status st = EMB_OK;
    size_t computed_n = 0;
    if (r->emb.pos == EMB_EPOS_SINUSOIDAL) computed_n = (size_t)c->n_position * r->hidden;
    if (r->attn_pos == EMB_APOS_RELATIVE)
        computed_n = (size_t)r->heads * (2 * (size_t)r->max_position - 1) + (size_t)r->rel.num_buckets * r->heads;
    wo.lay = calloc((size_t)L * LAY_OFFSETS + 1, sizeof *wo.lay);
    wo.dense = calloc((size_t)ND * 2 + 1, sizeof *wo.dense);
    wo.computed = malloc((computed_n ? computed_n : 1) * sizeof(float));
    if (!c->layer) c->layer = calloc((size_t)L, sizeof *c->layer);
    if (!c->dense) c->dense = calloc((size_t)ND + 1, sizeof *c->dense);
    if (!wo.lay || !wo.dense || !wo.computed || !c->layer || !c->dense) {
        st = emb_fail(err, EMB_ERR_NOMEM, "CUDA backend: out of host memory");
        goto done;
    }
    if ((st = plan_model(&p, c, &wo, err))) goto done;          /* sizing pass */
    c->weights_size = p.size;
    for (int d = 0; d < ND; d++) {
        const emb_dense *D = &c->mf->st.dense[d];
        c->dense[d].in = D->in_features;
        c->dense[d].out = D->out_features;
        c->dense[d].act = D->act;
        c->dense[d].has_bias = D->has_bias;
    }
    c->n_dense = ND;
    if (!c->weights) goto done;
    if (convert && (st = convert_weights(c, &wo, err))) goto done;

    unsigned char *base = c->weights;
    c->word = at(base, wo.word);
    c->pos = at(base, wo.pos);
    c->tt = at(base, wo.tt);
    c->rel_bias = at(base, wo.rel);
    c->emb_norm = bind_norm(base, &r->emb.norm, wo.emb_norm);
    c->final_norm = bind_norm(base, &r->final_norm, wo.final_norm);
    for (int l = 0; l < L; l++) {
        const size_t *o = wo.lay + LAY_OFFSETS * l;
        const emb_recipe_layer *src = &r->layer[l];
        cu_layer *y = &c->layer[l];
        y->wqkv = at(base, o[O_WQKV]);
        y->bqkv = at(base, o[O_BQKV]);
        y->wo = at(base, o[O_WO]);
        y->bo = at(base, o[O_BO]);
        y->win = at(base, o[O_WIN]);
        y->bin = at(base, o[O_BIN]);
        y->wdown = at(base, o[O_WDOWN]);
        y->bdown = at(base, o[O_BDOWN]);
        const emb_norm *norms[] = {&src->attn_norm, &src->mlp_norm, &src->attn_post_norm, &src->mlp_post_norm,
                                   &src->q_norm, &src->k_norm};
        cu_norm *dst[] = {&y->attn_norm, &y->mlp_norm, &y->attn_post, &y->mlp_post, &y->q_norm, &y->k_norm};
        for (int i = 0; i < 6; i++)
            *dst[i] = bind_norm(base, norms[i], (norm_offsets){o[O_NORMS + 2 * i], o[O_NORMS + 2 * i + 1]});
        y->window_left = src->window_left;
        y->window_right = src->window_right;
        y->rope_theta = src->rope_theta;
        y->inv_freq = at(base, o[O_INV_FREQ]);
    }
    for (int d = 0; d < ND; d++) {
        c->dense[d].w = at(base, wo.dense[2 * d]);
        c->dense[d].b = at(base, wo.dense[2 * d + 1]);
    }
done:
    free(wo.lay);
    free(wo.dense);
    free(wo.computed);
    return st;
}

/* ---- workspace ----------------------------------------------------------- */

/* Widest fp32 row any job can need: every pooling mode, any Dense width. */
static size_t max_row_floats(const cuda_ctx *c) {
    size_t w = (size_t)c->r.hidden * 6;
    for (int d = 0; d < c->n_dense; d++) {
        if ((size_t)c->dense[d].out > w) w = (size_t)c->dense[d].out;
        if ((size_t)c->dense[d].in > w) w = (size_t)c->dense[d].in;
    }
    return w;
}

/* Destroys every cached graph (they hold the workspace's addresses). */
static void graph_flush(cuda_ctx *c) {
    for (int i = 0; i < GRAPH_CACHE; i++) {
        if (c->graph[i].exec) cudaGraphExecDestroy(c->graph[i].exec);
        memset(&c->graph[i], 0, sizeof c->graph[i]);
    }
}

static void free_workspace(cuda_ctx *c) {
    graph_flush(c);
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

/* The workspace's layout for `tokens` tokens: the device arena's parts
 * and its total bytes. */
typedef struct {
    size_t tokens, pool_floats, act, ctx, big, pool, ints, cu_ints, total;
    int seqs;
} ws_layout;

static ws_layout workspace_layout(const cuda_ctx *c, size_t tokens) {
    const emb_recipe *r = &c->r;
    const size_t H = (size_t)r->hidden, I = (size_t)r->intermediate;
    const size_t QD = (size_t)r->heads * r->head_dim, W = qkv_width(r);
    const size_t mlp_w = r->gated ? 2 * I : I;
    const size_t big_w = W > mlp_w ? W : mlp_w;
    const size_t ctx_w = r->gated && I > QD ? I : QD;
    ws_layout w;
    w.tokens = tokens;
    /* big also holds fp32 hidden states for token_embeddings(). */
    size_t big_bytes = tokens * big_w * c->esz;
    if (big_bytes < tokens * H * sizeof(float)) big_bytes = tokens * H * sizeof(float);
    /* Sequences per chunk: rarely more than one per 8 tokens; chunks with
     * more (very short documents) are cut by the pooled-row capacity. */
    w.seqs = (int)(tokens / 8 > 64 ? tokens / 8 : (tokens < 64 ? tokens : 64));
    w.pool_floats = (size_t)w.seqs * max_row_floats(c);
    w.act = align256(tokens * H * c->esz);
    w.ctx = align256(tokens * ctx_w * c->esz);
    w.big = align256(big_bytes);
    w.pool = align256(w.pool_floats * sizeof(float));
    w.ints = align256(tokens * sizeof(int32_t));
    w.cu_ints = align256(((size_t)w.seqs + 1) * 4);
    w.total = 2 * w.act + w.ctx + w.big + 3 * w.pool + NSLOTS * (3 * w.ints + 2 * w.cu_ints);
    return w;
}

/* One device arena and one pinned block per slot, for `tokens` tokens. */
static emb_status alloc_workspace(cuda_ctx *c, size_t tokens, emb_error *err) {
    const ws_layout w = workspace_layout(c, tokens);
    const size_t act = w.act, ctx_bytes = w.ctx, ints = w.ints, cu_ints = w.cu_ints;
    const size_t pool_floats = w.pool_floats, total = w.total;
    const int seqs = w.seqs;
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
    c->ctx = p, p += ctx_bytes;
    c->big = p, p += w.big;
    c->pool_a = (float *)p, p += align256(pool_floats * sizeof(float));
    c->pool_b = (float *)p, p += align256(pool_floats * sizeof(float));
    c->vec_out = (float *)p, p += align256(pool_floats * sizeof(float));
    for (int s = 0; s < NSLOTS; s++) {
        cu_slot *sl = &c->slot[s];
        sl->d_ids = (int32_t *)p, p += ints;
        sl->d_types = (int32_t *)p, p += ints;
        sl->d_pos = (int32_t *)p, p += ints;
        sl->d_cu = (int32_t *)p, p += cu_ints;
        sl->d_skip = (int32_t *)p, p += cu_ints;
        /* Pinned staging: ids, types, positions, cu, skip in one block; results in another. */
        size_t in_bytes = 3 * ints + 2 * cu_ints;
        void *hp = NULL, *ho = NULL;
        CU_CHECK(cudaMallocHost(&hp, in_bytes));
        sl->ids = hp;
        sl->types = (int32_t *)((unsigned char *)hp + ints);
        sl->pos = (int32_t *)((unsigned char *)hp + 2 * ints);
        sl->cu = (int32_t *)((unsigned char *)hp + 3 * ints);
        sl->skip = (int32_t *)((unsigned char *)hp + 3 * ints + cu_ints);
        CU_CHECK(cudaMallocHost(&ho, pool_floats * sizeof(float)));
        sl->out = ho;
    }
    return EMB_OK;
}

/* ---- the forward pass ---------------------------------------------------- */

/* y[rows, out] = x[rows, in] W^T (+ y when accumulate) with W [out, in]
 * row-major: in cuBLAS's column-major terms y^T = W^T^T x^T, i.e. op(A) = T
 * on the [in, out] view. */
static emb_status gemm_acc(cuda_ctx *c, void *y, const void *x, const void *w, int rows, int in,
                           int out, cudaDataType_t t, int accumulate, emb_error *err) {
    const float one = 1.0f, beta = accumulate ? 1.0f : 0.0f;
    BLAS_CHECK(cublasGemmEx(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, out, rows, in, &one, w, t, in, x, t,
                            in, &beta, y, t, out, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return EMB_OK;
}

static emb_status gemm(cuda_ctx *c, void *y, const void *x, const void *w, int rows, int in,
                       int out, cudaDataType_t t, emb_error *err) {
    return gemm_acc(c, y, x, w, rows, in, out, t, 0, err);
}

/* y = act(x W^T + bias) (bias may be NULL) in one cuBLASLt call, the same
 * shapes as gemm(); act is the MLP's GELU (cuBLASLt's tanh form) or ReLU, on
 * the fp32 result (pick_mlp_epilogue). */
static emb_status gemm_act_lt(cuda_ctx *c, void *y, const void *x, const void *w, const void *bias, int rows,
                              int in, int out, emb_error *err) {
    const float one = 1.0f, zero = 0.0f;
    const int relu = (int)c->r.act == EMB_KACT_RELU;
    const uint32_t epi = relu ? (bias ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_RELU)
                              : (bias ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_GELU);
    cublasLtMatrixLayout_t a = NULL, b = NULL, d = NULL;
    cublasStatus_t s = cublasLtMatmulDescSetAttribute(c->lt_desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi);
    if (s == CUBLAS_STATUS_SUCCESS && bias)
        s = cublasLtMatmulDescSetAttribute(c->lt_desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias);
    if (s == CUBLAS_STATUS_SUCCESS) s = cublasLtMatrixLayoutCreate(&a, c->cdt, (uint64_t)in, (uint64_t)out, in);
    if (s == CUBLAS_STATUS_SUCCESS) s = cublasLtMatrixLayoutCreate(&b, c->cdt, (uint64_t)in, (uint64_t)rows, in);
    if (s == CUBLAS_STATUS_SUCCESS) s = cublasLtMatrixLayoutCreate(&d, c->cdt, (uint64_t)out, (uint64_t)rows, out);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmul(c->lt, c->lt_desc, &one, w, a, x, b, &zero, y, d, y, d, NULL, c->gemm_ws, c->gemm_ws_bytes,
                           c->compute);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (d) cublasLtMatrixLayoutDestroy(d);
    if (s != CUBLAS_STATUS_SUCCESS) return blas_fail(err, s, "cublasLtMatmul(MLP epilogue)", __FILE__, __LINE__);
    return EMB_OK;
}

/* out = norm(x + residual) over rows of the hidden width (residual may be
 * NULL; kind NONE copies nothing and is never called). */
static cudaError_t norm_rows(const cuda_ctx *c, void *out, const void *x, const void *residual,
                             const cu_norm *n, int rows) {
    if (n->kind == EMB_KNORM_LAYER)
        return emb_launch_bias_residual_layernorm(out, c->kdt, x, NULL, residual, n->g, n->b, rows,
                                                  c->r.hidden, n->eps, c->compute);
    return emb_launch_rmsnorm(out, c->kdt, x, residual, n->g, rows, c->r.hidden, n->eps, c->compute);
}

/* The sublayer output y (already through W, no bias yet) meets the residual
 * stream h by the recipe's placement:
 *   post:     h = norm(y + bias + h)
 *   pre:      h = h + y + bias          (y was accumulated into h by the GEMM)
 *   sandwich: h = h + post_norm(y + bias)
 * `next` is the norm that comes after (the next sublayer's input norm, the
 * final norm (is_final), or NULL): the sandwich step without a bias applies
 * it in the same pass (c->fuse_sandwich), into c->tmp for a sublayer
 * (c->tmp_is_input) or over h for the final norm (*final_done). */
static emb_status residual_out(cuda_ctx *c, void *y, const void *bias, const cu_norm *norm,
                               const cu_norm *post_norm, const cu_norm *next, int is_final,
                               int *final_done, int total, emb_error *err) {
    const int H = c->r.hidden;
    const emb_kdtype k = c->kdt;
    cudaStream_t s = c->compute;
    switch (c->r.place) {
    case EMB_PLACE_POST:
        if (norm->kind == EMB_KNORM_LAYER) {
            CU_CHECK(emb_launch_bias_residual_layernorm(c->h, k, y, bias, c->h, norm->g, norm->b, total,
                                                        H, norm->eps, s));
        } else {
            if (bias) CU_CHECK(emb_launch_bias_act(y, k, bias, total, H, EMB_KACT_IDENTITY, s));
            if (norm->kind == EMB_KNORM_NONE)
                CU_CHECK(emb_launch_add(c->h, k, y, (size_t)total * H, s));
            else
                CU_CHECK(norm_rows(c, c->h, y, c->h, norm, total));
        }
        break;
    case EMB_PLACE_PRE:
        if (bias) CU_CHECK(emb_launch_bias_act(c->h, k, bias, total, H, EMB_KACT_IDENTITY, s));
        break;
    case EMB_PLACE_SANDWICH:
        if (c->fuse_sandwich && !bias && post_norm->kind == EMB_KNORM_RMS &&
            (!next || next->kind == EMB_KNORM_RMS || next->kind == EMB_KNORM_NONE)) {
            const int nx = next && next->kind == EMB_KNORM_RMS;
            void *next_out = nx ? (is_final ? c->h : c->tmp) : NULL;
            CU_CHECK(emb_launch_sandwich_norm(nx && is_final ? NULL : c->h, next_out, k, y, c->h, post_norm->g,
                                              post_norm->eps, nx ? next->g : NULL, nx ? next->eps : 0.0f,
                                              total, H, s));
            if (nx && is_final) *final_done = 1;
            else if (nx) c->tmp_is_input = 1;
            break;
        }
        if (bias) CU_CHECK(emb_launch_bias_act(y, k, bias, total, H, EMB_KACT_IDENTITY, s));
        if (post_norm->kind != EMB_KNORM_NONE) CU_CHECK(norm_rows(c, y, y, NULL, post_norm, total));
        CU_CHECK(emb_launch_add(c->h, k, y, (size_t)total * H, s));
        break;
    }
    return EMB_OK;
}

/* A sublayer's output projection y = x W^T (W [hidden, in]) and its meeting
 * with the residual. Under tensor parallelism W holds this rank's columns
 * (row-parallel): the partial products are summed over the group first, and
 * the bias is added once, to the sum. */
static emb_status project_out(cuda_ctx *c, const void *x, const void *w, int in, const void *bias,
                              const cu_norm *norm, const cu_norm *post_norm, const cu_norm *next,
                              int is_final, int *final_done, int total, emb_error *err) {
    const int pre = c->r.place == EMB_PLACE_PRE, H = c->r.hidden;
    void *y = pre && !c->tp ? c->h : c->tmp;
    emb_status st = gemm_acc(c, y, x, w, total, in, H, c->cdt, pre && !c->tp, err);
    if (st) return st;
    if (c->tp) {
        st = emb_cuda_tp_allreduce(c->tp, c->tp_rank, c->tmp, (size_t)total * H, c->kdt, c->compute, err);
        if (st) return st;
        if (pre) {
            CU_CHECK(emb_launch_add(c->h, c->kdt, c->tmp, (size_t)total * H, c->compute));
            y = c->h;
        }
    }
    return residual_out(c, y, bias, norm, post_norm, next, is_final, final_done, total, err);
}

/* The input of a sublayer: the residual stream itself (post-norm, or a
 * pre-norm without a norm here), else norm(h) in c->tmp. */
static emb_status sublayer_input(cuda_ctx *c, const cu_norm *norm, int total, const void **in,
                                 emb_error *err) {
    *in = c->h;
    if (c->tmp_is_input) {   /* the sandwich step before already wrote it */
        c->tmp_is_input = 0;
        *in = c->tmp;
        return EMB_OK;
    }
    if (c->r.place == EMB_PLACE_POST || norm->kind == EMB_KNORM_NONE) return EMB_OK;
    CU_CHECK(norm_rows(c, c->tmp, c->h, NULL, norm, total));
    *in = c->tmp;
    return EMB_OK;
}

/* Embeddings and the first `layers` layers of one chunk (the final norm
 * after the model's last layer only); the hidden states end in c->h. */
static emb_status forward(cuda_ctx *c, const cu_slot *sl, int nseq, int total, int max_seqlen,
                          int layers, emb_error *err) {
    const emb_recipe *r = &c->r;
    const int H = r->hidden, I = r->intermediate, hd = r->head_dim;
    const int QD = r->heads * hd, W = (int)qkv_width(r);
    const emb_kdtype k = c->kdt;
    cudaStream_t s = c->compute;
    emb_status st;
    int final_done = 0;
    c->tmp_is_input = 0;
    CU_CHECK(emb_launch_embed(c->h, k, sl->d_ids, c->tt ? sl->d_types : NULL, sl->d_pos, total, c->word,
                              r->emb.scale, c->pos, c->tt, c->emb_norm.kind, c->emb_norm.g, c->emb_norm.b,
                              H, c->emb_norm.eps, s));
    for (int l = 0; l < layers; l++) {
        const cu_layer *L = &c->layer[l];
        const void *in;
        /* attention */
        if ((st = sublayer_input(c, &L->attn_norm, total, &in, err))) return st;
        if ((st = gemm(c, c->big, in, L->wqkv, total, H, W, c->cdt, err))) return st;
        /* The QKV epilogue: bias, q/k norms and rotary in one pass over the
         * QKV activations (nothing is launched when none applies). */
        emb_kqk_params qk = {
            .heads = r->heads, .kv_heads = r->kv_heads, .head_dim = hd, .bias = L->bqkv,
            .q_g = L->q_norm.g, .q_eps = L->q_norm.eps, .k_g = L->k_norm.g, .k_eps = L->k_norm.eps,
            .rotary_dim = r->attn_pos == EMB_APOS_ROTARY ? r->rotary_dim : 0, .theta = L->rope_theta,
            .inv_freq = L->inv_freq,
        };
        if (c->fold_qkv_bias) qk.bias = NULL;   /* Q's part goes to the attention kernel */
        CU_CHECK(emb_launch_qk_norm_rotary(c->big, k, sl->d_cu, nseq, total, &qk, s));
        const emb_kattn_params ap = {
            .heads = r->heads, .kv_heads = r->kv_heads, .head_dim = hd, .scale = r->scale,
            .window_left = L->window_left, .window_right = L->window_right, .softcap = r->softcap,
            .rel_bias = c->rel_bias, .rel_span = c->rel_bias ? r->max_position : 0,
            .impl = c->attn_impl, .q_bias = c->fold_qkv_bias ? L->bqkv : NULL,
        };
        CU_CHECK(emb_launch_attention(c->ctx, k, c->big, sl->d_cu, nseq, max_seqlen, &ap, s));
        if ((st = project_out(c, c->ctx, L->wo, QD, L->bo, &L->attn_norm, &L->attn_post, &L->mlp_norm, 0,
                              &final_done, total, err)))
            return st;

        /* MLP */
        if ((st = sublayer_input(c, &L->mlp_norm, total, &in, err))) return st;
        const void *act_out = c->big;
        if (r->gated) {
            if ((st = gemm(c, c->big, in, L->win, total, H, 2 * I, c->cdt, err))) return st;
            if (L->bin) CU_CHECK(emb_launch_bias_act(c->big, k, L->bin, total, 2 * I, EMB_KACT_IDENTITY, s));
            CU_CHECK(emb_launch_gated_act(c->ctx, k, c->big, total, I, (int)r->act, s));
            act_out = c->ctx;
        } else if (c->lt) {
            if ((st = gemm_act_lt(c, c->big, in, L->win, L->bin, total, H, I, err))) return st;
        } else {
            if ((st = gemm(c, c->big, in, L->win, total, H, I, c->cdt, err))) return st;
            CU_CHECK(emb_launch_bias_act(c->big, k, L->bin, total, I, (int)r->act, s));
        }
        /* What follows: the next layer's input norm, or the final norm after the model's last layer. */
        const int last = l + 1 == layers, is_final = last && layers == r->layers;
        const cu_norm *next = !last ? &c->layer[l + 1].attn_norm : is_final ? &c->final_norm : NULL;
        if ((st = project_out(c, act_out, L->wdown, I, L->bdown, &L->mlp_norm, &L->mlp_post, next, is_final,
                              &final_done, total, err)))
            return st;
    }
    if (layers == r->layers && c->final_norm.kind != EMB_KNORM_NONE && !final_done)
        CU_CHECK(norm_rows(c, c->h, c->h, NULL, &c->final_norm, total));
    return EMB_OK;
}

/* Pooling, Dense modules, truncation, normalization: rows into c->vec_out. */
static emb_status pool_and_finish(cuda_ctx *c, const cu_slot *sl, int nseq, int has_skip,
                                  const emb_job *job, emb_error *err) {
    const int H = c->r.hidden;
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

/* The position row of every token of sequences [s0, s1) of b into pos
 * (from 0), by the recipe's rule: t + offset within the sequence, or with a
 * padding id (pad_id >= 0) transformers' create_position_ids_from_input_ids
 * (pad tokens get pad_id, the others pad_id + their count of non-pad tokens
 * so far). Nothing to do without a position table. */
static emb_status position_ids(const cuda_ctx *c, const emb_batch *b, int s0, int s1, int32_t *pos,
                               emb_error *err) {
    if (!c->pos) return EMB_OK;
    const int pad = c->r.emb.pos_pad_id, t0 = b->cu_seqlens[s0];
    for (int s = s0; s < s1; s++) {
        int counted = 0;
        for (int t = b->cu_seqlens[s]; t < b->cu_seqlens[s + 1]; t++) {
            int p = t - b->cu_seqlens[s] + c->r.emb.pos_offset;
            if (pad >= 0) p = b->ids[t] == pad ? pad : pad + ++counted;
            if (p < 0 || p >= c->n_position)
                return emb_fail(err, EMB_ERR_INVALID_ARG,
                                "CUDA backend: sequence %d token %d has position %d (table of %d)", s,
                                t - b->cu_seqlens[s], p, c->n_position);
            pos[t - t0] = p;
        }
    }
    return EMB_OK;
}

/* ---- CUDA graphs (EMBEDC_GRAPHS=on) -------------------------------------- */

/* x rounded up to a multiple of (its power-of-two floor) / steps, the step at
 * least min_step: `steps` values per octave, less than 1 / steps padding. */
static size_t round_bucket(size_t x, size_t steps, size_t min_step) {
    size_t p = 1;
    while (p <= x / 2) p *= 2;
    const size_t g = p / steps > min_step ? p / steps : min_step;
    return (x + g - 1) / g * g;
}

/* The shape a chunk runs at with graphs on, so that chunks of nearby shapes
 * share one graph: tokens rounded up to 1/128 of their octave (steps of 256
 * at 64K: under 0.8 % padding), sequences to 1/8 of theirs, max_seqlen to
 * whole query tiles (the attention grid is the same), each within the
 * workspace and the relative-bias table. Padding tokens follow the last
 * sequence and belong to none: the row-wise passes compute them (id 0,
 * position 0; their rows are never read back), attention and pooling never
 * see them. Padding sequences are empty (pooled to zeros, not copied back). */
static chunk_shape graph_shape(const cuda_ctx *c, int total, int nseq, int max_seqlen, size_t widest) {
    chunk_shape sh = {total, nseq, max_seqlen};
    const size_t t = round_bucket((size_t)total, 128, 64);
    size_t seq_cap = c->pool_floats / widest;
    if (seq_cap > (size_t)c->cap_seqs) seq_cap = (size_t)c->cap_seqs;
    const size_t n = round_bucket((size_t)nseq, 8, 1);
    const int q = EMB_KATTN_QUERY_TILE;
    int len = (max_seqlen + q - 1) / q * q;
    if (c->rel_bias && len > c->r.max_position) len = c->r.max_position;
    if (t > (size_t)total) sh.tokens = (int)(t < c->cap_tokens ? t : c->cap_tokens);
    if (n > (size_t)nseq) sh.seqs = (int)(n < seq_cap ? n : seq_cap);
    if (len > max_seqlen) sh.max_seqlen = len;
    if (sh.tokens < total) sh.tokens = total;   /* a budget clamped below this chunk */
    if (sh.seqs < nseq) sh.seqs = nseq;
    return sh;
}

/* The cache entry for key k: the one holding it, else a free or the least
 * recently used one, emptied (its graph destroyed: a launch still in flight
 * completes first). */
static cu_graph *graph_entry(cuda_ctx *c, const graph_key *k) {
    cu_graph *victim = NULL;
    for (int i = 0; i < GRAPH_CACHE; i++) {
        cu_graph *g = &c->graph[i];
        if (g->used && !memcmp(&g->key, k, sizeof *k)) {
            g->stamp = ++c->graph_clock;
            return g;
        }
        if (!victim || (victim->used && (!g->used || g->stamp < victim->stamp))) victim = g;
    }
    if (victim->exec) {
        cudaGraphExecDestroy(victim->exec);
        c->graph_evicted++;
    }
    memset(victim, 0, sizeof *victim);
    victim->used = 1;
    victim->key = *k;
    victim->stamp = ++c->graph_clock;
    return victim;
}

/* The chunk's forward and pooling at shape sh, queued on the compute stream. */
static emb_status run_direct(cuda_ctx *c, const cu_slot *sl, chunk_shape sh, int has_skip,
                             const emb_job *job, emb_error *err) {
    emb_status st = forward(c, sl, sh.seqs, sh.tokens, sh.max_seqlen, job->layer, err);
    return st ? st : pool_and_finish(c, sl, sh.seqs, has_skip, job, err);
}

/* Captures run_direct's work into g (graph mode ThreadLocal: other threads,
 * e.g. other devices' workers, may allocate meanwhile). */
static emb_status graph_capture(cuda_ctx *c, const cu_slot *sl, chunk_shape sh, int has_skip,
                                const emb_job *job, cu_graph *g, emb_error *err) {
    cudaGraph_t graph = NULL;
    CU_CHECK(cudaStreamBeginCapture(c->compute, cudaStreamCaptureModeThreadLocal));
    emb_status st = run_direct(c, sl, sh, has_skip, job, err);
    cudaError_t e = cudaStreamEndCapture(c->compute, &graph);   /* ended whatever happened */
    if (!st && e == cudaSuccess) e = cudaGraphInstantiate(&g->exec, graph, 0);
    if (graph) cudaGraphDestroy(graph);
    if (st) return st;
    if (e != cudaSuccess) {
        g->exec = NULL;
        return cu_fail(err, e, graph ? "cudaGraphInstantiate" : "cudaStreamEndCapture", __FILE__, __LINE__);
    }
    c->graph_captured++;
    return EMB_OK;
}

/* Runs the chunk on the compute stream: by its bucket's graph when there is
 * one; capturing it when the bucket comes up a second time (a shape seen once,
 * such as a batch's last chunk, costs no capture); directly otherwise. A
 * capture that fails for want of device memory returns that (the chunk is
 * split and retried); any other failure turns graphs off for this backend
 * (the run note says why) and the chunk runs directly. */
static emb_status run_device(cuda_ctx *c, const cu_slot *sl, chunk_shape sh, int has_skip,
                             const emb_job *job, cu_graph *g, emb_error *err) {
    if (g && !g->exec && g->seen) {
        emb_status st = graph_capture(c, sl, sh, has_skip, job, g, err);
        if (st == EMB_ERR_DEVICE_OOM) {
            cudaGetLastError();
            return st;
        }
        if (st) {
            snprintf(c->graph_off, sizeof c->graph_off, "turned off after a failed capture: %.120s", err->message);
            cudaGetLastError();
            c->graphs = 0;
            graph_flush(c);
            g = NULL;
        }
    }
    if (g && g->exec) {
        CU_CHECK(cudaGraphLaunch(g->exec, c->compute));
        c->graph_launched++;
        return EMB_OK;
    }
    emb_status st = run_direct(c, sl, sh, has_skip, job, err);
    if (!st && g) g->seen = 1;
    if (!st) c->graph_direct++;
    return st;
}

/* The backend's run note (emb_backend.run_note): what the graphs did. */
static void cuda_run_note(emb_backend *be, char *buf, size_t cap) {
    const cuda_ctx *c = be->ctx;
    if (!cap) return;
    buf[0] = 0;
    if (!c->graphs_asked) return;
    int n = snprintf(buf, cap, "CUDA graphs: %llu captured, %llu launched, %llu chunks run directly, %llu evicted",
                     (unsigned long long)c->graph_captured, (unsigned long long)c->graph_launched,
                     (unsigned long long)c->graph_direct, (unsigned long long)c->graph_evicted);
    if (c->graph_off[0] && n > 0 && (size_t)n < cap) snprintf(buf + n, cap - (size_t)n, "; %s", c->graph_off);
}

/* Queues one chunk (sequences [s0, s1) of b) on the next slot. */
static emb_status run_chunk(cuda_ctx *c, const emb_batch *b, int s0, int s1, const emb_job *job,
                            size_t widest, float *out, emb_error *err) {
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
    if ((st = position_ids(c, b, s0, s1, sl->pos, err))) return st;
    memcpy(sl->ids, b->ids + t0, (size_t)total * sizeof(int32_t));
    if (b->type_ids) memcpy(sl->types, b->type_ids + t0, (size_t)total * sizeof(int32_t));
    else memset(sl->types, 0, (size_t)total * sizeof(int32_t));

    /* With graphs, the padded shape of the chunk's bucket (graph_shape). */
    chunk_shape sh = {total, nseq, max_seqlen};
    cu_graph *g = NULL;
    if (c->graphs) {
        sh = graph_shape(c, total, nseq, max_seqlen, widest);
        const graph_key k = {.slot = (int)(sl - c->slot), .layer = job->layer, .modes = job->pooling_modes,
                             .out_dim = job->out_dim, .normalize = job->normalize, .dense = job->apply_dense,
                             .skip = b->skip != NULL, .shape = sh};
        g = graph_entry(c, &k);
        const size_t pad = (size_t)(sh.tokens - total) * sizeof(int32_t);
        memset(sl->ids + total, 0, pad);
        memset(sl->types + total, 0, pad);
        if (c->pos) memset(sl->pos + total, 0, pad);
        for (int i = nseq; i < sh.seqs; i++) {
            sl->cu[i + 1] = total;
            sl->skip[i] = 0;
        }
    }

    /* Upload on the copy stream, after the compute stream is done with the
     * slot's device buffers (its previous chunk). */
    const size_t ib = (size_t)sh.tokens * sizeof(int32_t), cb = ((size_t)sh.seqs + 1) * sizeof(int32_t);
    CU_CHECK(cudaStreamWaitEvent(c->copy, sl->done, 0));
    CU_CHECK(cudaMemcpyAsync(sl->d_ids, sl->ids, ib, cudaMemcpyHostToDevice, c->copy));
    CU_CHECK(cudaMemcpyAsync(sl->d_types, sl->types, ib, cudaMemcpyHostToDevice, c->copy));
    CU_CHECK(cudaMemcpyAsync(sl->d_cu, sl->cu, cb, cudaMemcpyHostToDevice, c->copy));
    if (c->pos) CU_CHECK(cudaMemcpyAsync(sl->d_pos, sl->pos, ib, cudaMemcpyHostToDevice, c->copy));
    if (b->skip)
        CU_CHECK(cudaMemcpyAsync(sl->d_skip, sl->skip, (size_t)sh.seqs * sizeof(int32_t),
                                 cudaMemcpyHostToDevice, c->copy));
    CU_CHECK(cudaEventRecord(sl->uploaded, c->copy));
    CU_CHECK(cudaStreamWaitEvent(c->compute, sl->uploaded, 0));

    if ((st = run_device(c, sl, sh, b->skip != NULL, job, g, err))) return st;

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
        emb_status st = run_chunk(c, b, i, j, job, widest, out, err);
        /* (Not under tensor parallelism: every rank must cut alike.) */
        if (st == EMB_ERR_DEVICE_OOM && j - i > 1 && !c->tp) {
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
        if (len < 0 || len > c->r.max_position)
            return emb_fail(err, EMB_ERR_INVALID_ARG,
                            "CUDA backend: sequence %d has %d tokens (model limit %d)", s, len,
                            c->r.max_position);
        if ((size_t)len > c->cap_tokens)
            return emb_fail(err, EMB_ERR_INVALID_ARG,
                            "CUDA backend: sequence %d has %d tokens, more than the device "
                            "token budget %zu",
                            s, len, c->cap_tokens);
    }
    /* Out-of-range ids would make the gather read outside the table. */
    for (int t = 0; t < b->total; t++) {
        if (b->ids[t] < 0 || b->ids[t] >= c->r.vocab_size)
            return emb_fail(err, EMB_ERR_INVALID_ARG, "CUDA backend: token %d has id %d (vocab %d)",
                            t, b->ids[t], c->r.vocab_size);
        if (c->tt && b->type_ids && (b->type_ids[t] < 0 || b->type_ids[t] >= c->r.emb.type_vocab))
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
    if (job->layer < 1 || job->layer > c->r.layers || popcount6(job->pooling_modes) == 0 ||
        job->out_dim < 1)
        return emb_fail(err, EMB_ERR_INVALID_ARG, "CUDA backend: bad job (layer %d, modes %#x, dim %d)",
                        job->layer, job->pooling_modes, job->out_dim);
    if (b->nseq == 0) return EMB_OK;
    CU_CHECK(cudaSetDevice(c->device));
    size_t widest = (size_t)c->r.hidden * popcount6(job->pooling_modes);
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
    if (layer < 1 || layer > c->r.layers)
        return emb_fail(err, EMB_ERR_INVALID_ARG, "CUDA backend: layer %d of %d", layer, c->r.layers);
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
    if ((st = position_ids(c, b, 0, b->nseq, sl->pos, err))) return st;
    if (c->pos) CU_CHECK(cudaMemcpyAsync(sl->d_pos, sl->pos, ib, cudaMemcpyHostToDevice, c->compute));
    CU_CHECK(cudaMemcpyAsync(sl->d_ids, sl->ids, ib, cudaMemcpyHostToDevice, c->compute));
    CU_CHECK(cudaMemcpyAsync(sl->d_types, sl->types, ib, cudaMemcpyHostToDevice, c->compute));
    CU_CHECK(cudaMemcpyAsync(sl->d_cu, sl->cu, ((size_t)b->nseq + 1) * sizeof(int32_t),
                             cudaMemcpyHostToDevice, c->compute));
    if ((st = forward(c, sl, b->nseq, b->total, max_seqlen, layer, err))) return st;
    const size_t n = (size_t)b->total * c->r.hidden;
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
        if (c->lt_desc) cublasLtMatmulDescDestroy(c->lt_desc);
        if (c->lt) cublasLtDestroy(c->lt);
        if (c->gemm_ws) cudaFree(c->gemm_ws);
        if (c->compute) cudaStreamDestroy(c->compute);
        if (c->copy) cudaStreamDestroy(c->copy);
        free(c->layer);
        free(c->dense);
        free(c);
    }
    free(be);
}

/* ---- creation ------------------------------------------------------------ */

int emb_cuda_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return n;
}

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

/* What the kernels can run: head_dim of the attention kernel, even widths
 * of at most EMB_KERNEL_MAX_NORM_DIM for the row kernels; per-head q/k norms
 * of the RMS kinds. */
static emb_status check_model(const emb_model_files *mf, emb_error *err) {
    const emb_recipe *r = &mf->r;
    const char *what = r->family ? r->family : r->model_type;
    if (!r->layer || r->layers < 1 || r->heads < 1 || r->kv_heads < 1 || r->heads % r->kv_heads)
        return emb_fail(err, EMB_ERR_UNSUPPORTED, "CUDA backend: %s: %d layers, %d heads, %d KV heads", what,
                        r->layers, r->heads, r->kv_heads);
    const int hd = r->head_dim;
    if (hd != 16 && hd != 32 && hd != 64 && hd != 80 && hd != 96 && hd != 128 && hd != 256)
        return emb_fail(err, EMB_ERR_UNSUPPORTED,
                        "CUDA backend: %s: head_dim %d (the attention kernel supports 16, 32, 64, 80, "
                        "96, 128, 256)", what, hd);
    if (r->hidden % 2 || r->hidden > EMB_KERNEL_MAX_NORM_DIM || r->intermediate % 2 || r->intermediate < 2)
        return emb_fail(err, EMB_ERR_UNSUPPORTED, "CUDA backend: %s: hidden size %d, intermediate %d", what,
                        r->hidden, r->intermediate);
    if (r->act < EMB_ACT_IDENTITY || r->act > EMB_ACT_SIGMOID)
        return emb_fail(err, EMB_ERR_UNSUPPORTED, "CUDA backend: %s: activation %d", what, r->act);
    if (r->attn_pos == EMB_APOS_ROTARY &&
        (r->rotary_dim < 2 || r->rotary_dim % 2 || r->rotary_dim > hd))
        return emb_fail(err, EMB_ERR_UNSUPPORTED, "CUDA backend: %s: rotary_dim %d", what, r->rotary_dim);
    if (r->attn_pos == EMB_APOS_RELATIVE && (!r->rel.table.data || r->rel.num_buckets < 1))
        return emb_fail(err, EMB_ERR_UNSUPPORTED, "CUDA backend: %s: relative positions without a table", what);
    if (r->emb.pos == EMB_EPOS_LEARNED && !r->emb.position.data)
        return emb_fail(err, EMB_ERR_UNSUPPORTED, "CUDA backend: %s: learned positions without a table", what);
    for (int l = 0; l < r->layers; l++)
        if (r->layer[l].q_norm.kind == EMB_NORM_LAYER || r->layer[l].k_norm.kind == EMB_NORM_LAYER)
            return emb_fail(err, EMB_ERR_UNSUPPORTED,
                            "CUDA backend: %s: layer %d: per-head q/k norms are RMS norms (w or 1 + w), "
                            "not LayerNorm", what, l);
    for (int d = 0; d < mf->st.n_dense; d++)
        if (mf->st.dense[d].out_features % 2)
            return emb_fail(err, EMB_ERR_UNSUPPORTED, "CUDA backend: Dense width %d is odd",
                            mf->st.dense[d].out_features);
    return EMB_OK;
}

static double mib(size_t b) { return (double)b / (1 << 20); }

emb_status emb_cuda_wgmma_available(int *yes, emb_error *err) {
    *yes = 0;
    int *d = NULL;
    CU_CHECK(cudaMalloc((void **)&d, sizeof *d));
    cudaError_t e = emb_launch_wgmma_probe(d, 0);
    if (e == cudaSuccess) e = cudaMemcpy(yes, d, sizeof *yes, cudaMemcpyDeviceToHost);
    cudaFree(d);
    if (e != cudaSuccess) return cu_fail(err, e, "emb_launch_wgmma_probe", __FILE__, __LINE__);
    return EMB_OK;
}

/* EMBEDC_ATTENTION picks the attention kernel: mma (the default: mma.sync
 * tiles, every sm_80+ GPU), wgmma (the sm_90a warpgroup-MMA kernel: a Hopper
 * GPU and a build whose EMBEDC_CUDA_ARCHS has 90a, else an error), or auto
 * (wgmma where it runs, mma elsewhere). The default stays mma until the
 * wgmma kernel has been measured on a Hopper GPU (bench/RESULTS.md). */
static emb_status pick_attention(cuda_ctx *c, emb_error *err) {
    const char *v = getenv("EMBEDC_ATTENTION");
    c->attn_impl = EMB_KATTN_MMA;
    if (!v || !*v || !strcmp(v, "mma")) return EMB_OK;
    if (strcmp(v, "wgmma") != 0 && strcmp(v, "auto") != 0)
        return emb_fail(err, EMB_ERR_INVALID_ARG, "EMBEDC_ATTENTION=%s: expected mma, wgmma or auto", v);
    int yes = 0;
    emb_status st = emb_cuda_wgmma_available(&yes, err);
    if (st) return st;
    if (yes) c->attn_impl = EMB_KATTN_WGMMA;
    else if (!strcmp(v, "wgmma"))
        return emb_fail(err, EMB_ERR_UNSUPPORTED,
                        "EMBEDC_ATTENTION=wgmma: device %d does not run sm_90a code of this build (it needs "
                        "a Hopper GPU, and EMBEDC_CUDA_ARCHS with 90a at build time)", c->device);
    return EMB_OK;
}

/* A two-way backend switch read from the environment at start-up: *on is 1
 * for `on_value`, 0 for `off_value`, `dflt` when unset or empty; any other
 * value is an error naming the variable and the value. */
static emb_status env_switch(const char *name, const char *on_value, const char *off_value, int dflt, int *on,
                             emb_error *err) {
    const char *v = getenv(name);
    *on = dflt;
    if (!v || !*v) return EMB_OK;
    if (!strcmp(v, on_value)) *on = 1;
    else if (!strcmp(v, off_value)) *on = 0;
    else return emb_fail(err, EMB_ERR_INVALID_ARG, "%s=%s: expected %s or %s", name, v, on_value, off_value);
    return EMB_OK;
}

/* A QKV bias needs no pass of its own where the softmax allows it (no
 * rotary, no q/k norm, no softcap: BERT, MPNet, XLM-RoBERTa, DistilBERT...):
 * the K bias adds q . bk to every logit of a query, a constant the softmax
 * cancels (windows and relative bias included); the V bias comes out of the
 * attention unchanged (each query's weights sum to 1), so Wo bv joins the
 * output projection's bias; the Q bias is added by the attention kernel as
 * it loads Q. EMBEDC_QKV_BIAS=pass keeps the separate pass (for comparing;
 * the default is fold). */
static emb_status pick_qkv_bias(cuda_ctx *c, emb_error *err) {
    const emb_recipe *r = &c->mf->r;
    int fold;
    emb_status st = env_switch("EMBEDC_QKV_BIAS", "fold", "pass", 1, &fold, err);
    if (st) return st;
    fold = fold && r->attn_pos != EMB_APOS_ROTARY && !(r->softcap > 0.0f);
    for (int l = 0; l < r->layers && fold; l++)
        fold = r->layer[l].q_norm.kind == EMB_NORM_NONE && r->layer[l].k_norm.kind == EMB_NORM_NONE;
    c->fold_qkv_bias = fold;
    return EMB_OK;
}

/* EMBEDC_SANDWICH_NORM=split keeps Gemma's sandwich step as three launches
 * (post-norm, residual add, next norm) for comparing; the default, fused,
 * is one pass with the same result bit for bit. */
static emb_status pick_sandwich(cuda_ctx *c, emb_error *err) {
    return env_switch("EMBEDC_SANDWICH_NORM", "fused", "split", 1, &c->fuse_sandwich, err);
}

/* EMBEDC_MLP_EPILOGUE=lt fuses the MLP's bias and activation into its
 * up-projection GEMM (cuBLASLt's GELU_BIAS / RELU_BIAS epilogues) for models
 * with a plain (not gated) GELU or ReLU MLP, saving a read and a write of the
 * [tokens, intermediate] activations per layer. ReLU is exact. cuBLASLt's
 * GELU is the tanh form: exact for gelu_new / gelu_pytorch_tanh models, an
 * approximation for the erf GELU of BERT and MPNet (tools/gelu-tanh-fidelity:
 * worst cos 0.99999 on all-MiniLM-L6-v2, 0.99968 on all-mpnet-base-v2, 320
 * texts). Off by default (kernel: the fused bias + activation kernel) until
 * measured. */
static emb_status pick_mlp_epilogue(cuda_ctx *c, emb_error *err) {
    int lt;
    emb_status st = env_switch("EMBEDC_MLP_EPILOGUE", "lt", "kernel", 0, &lt, err);
    if (st) return st;
    const int act = (int)c->r.act;
    if (!lt || c->r.gated ||
        (act != EMB_KACT_GELU && act != EMB_KACT_GELU_TANH && act != EMB_KACT_RELU))
        return EMB_OK;
    const int32_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    cublasStatus_t s = cublasLtCreate(&c->lt);
    if (s != CUBLAS_STATUS_SUCCESS) {
        c->lt = NULL;
        return blas_fail(err, s, "cublasLtCreate", __FILE__, __LINE__);
    }
    s = cublasLtMatmulDescCreate(&c->lt_desc, CUBLAS_COMPUTE_32F, CUDA_R_32F);
    if (s != CUBLAS_STATUS_SUCCESS) {
        c->lt_desc = NULL;
        return blas_fail(err, s, "cublasLtMatmulDescCreate", __FILE__, __LINE__);
    }
    s = cublasLtMatmulDescSetAttribute(c->lt_desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulDescSetAttribute(c->lt_desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb);
    if (s != CUBLAS_STATUS_SUCCESS) return blas_fail(err, s, "cublasLtMatmulDescSetAttribute", __FILE__, __LINE__);
    return EMB_OK;
}

/* EMBEDC_GRAPHS=on runs each chunk's forward and pooling as a CUDA graph
 * per chunk-shape bucket (graph_shape, run_device): one launch instead of
 * about ten per layer, at the price of a little padding. Off by default
 * until measured; not under tensor parallelism (its all-reduces stay
 * directly launched). */
static emb_status pick_graphs(cuda_ctx *c, emb_error *err) {
    emb_status st = env_switch("EMBEDC_GRAPHS", "on", "off", 0, &c->graphs, err);
    if (st) return st;
    if (c->tp) c->graphs = 0;
    c->graphs_asked = c->graphs;
    return EMB_OK;
}

/* cuBLAS's workspace, owned here rather than left to the handle's default
 * pool: the size NVIDIA's cuBLAS guide recommends (32 MiB on Hopper and
 * later, 4 MiB before; sized first, so that check_fits counts it), and
 * handed to cuBLASLt too. Set after cublasSetStream, which resets a
 * handle's workspace to the default pool. */
static emb_status size_gemm_workspace(cuda_ctx *c, emb_error *err) {
    int major = 0;
    CU_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, c->device));
    c->gemm_ws_bytes = (size_t)(major >= 9 ? 32 : 4) << 20;
    return EMB_OK;
}
static emb_status set_gemm_workspace(cuda_ctx *c, emb_error *err) {
    cudaError_t e = cudaMalloc(&c->gemm_ws, c->gemm_ws_bytes);
    if (e != cudaSuccess) {
        c->gemm_ws = NULL;
        return cu_fail(err, e, "cudaMalloc(cuBLAS workspace)", __FILE__, __LINE__);
    }
    cublasStatus_t s = cublasSetWorkspace(c->blas, c->gemm_ws, c->gemm_ws_bytes);
    if (s != CUBLAS_STATUS_SUCCESS) return blas_fail(err, s, "cublasSetWorkspace", __FILE__, __LINE__);
    return EMB_OK;
}

/* Before anything is allocated: the weights and the workspace for the
 * smallest budget must fit the device's free memory (a clear message
 * otherwise, not an out-of-memory failure half-way); a budget that does not
 * fit whole is lowered now. What cuBLAS and the modules take later is left
 * to the out-of-memory halving below. */
static emb_status check_fits(cuda_ctx *c, size_t *tokens, size_t floor_tokens, int tp_size, emb_error *err) {
    size_t free_b = 0, total_b = 0;
    CU_CHECK(cudaMemGetInfo(&free_b, &total_b));
    const size_t fixed = c->weights_size + c->gemm_ws_bytes;
    const ws_layout least = workspace_layout(c, floor_tokens);
    if (fixed + least.total > free_b) {
        char shard[64] = "";
        if (tp_size > 1) snprintf(shard, sizeof shard, " (its shard of --tensor-parallel %d)", tp_size);
        return emb_fail(err, EMB_ERR_DEVICE_OOM,
                        "CUDA backend: the model needs %.1f MiB on device %d%s: weights %.1f MiB + "
                        "workspace for %zu tokens %.1f MiB + cuBLAS workspace %.1f MiB; the device has "
                        "%.1f MiB free of %.1f MiB",
                        mib(fixed + least.total), c->device, shard, mib(c->weights_size), floor_tokens,
                        mib(least.total), mib(c->gemm_ws_bytes), mib(free_b), mib(total_b));
    }
    size_t t = *tokens;
    while (t > floor_tokens && fixed + workspace_layout(c, t).total > free_b)
        t = t / 2 > floor_tokens ? t / 2 : floor_tokens;
    if (t != *tokens)
        fprintf(stderr, "embedc: device %d has %.0f MiB free; token budget lowered to %zu\n", c->device,
                mib(free_b), t);
    *tokens = t;
    return EMB_OK;
}

emb_status emb_cuda_backend_create(const struct emb_model_files *mf, emb_dtype dtype, int device,
                                   size_t max_batch_tokens, emb_backend **out, emb_error *err) {
    emb_cuda_options o = {.dtype = dtype, .device = device, .max_batch_tokens = max_batch_tokens};
    return emb_cuda_backend_create_opts(mf, &o, out, err);
}

emb_status emb_cuda_backend_create_opts(const struct emb_model_files *mf, const emb_cuda_options *o,
                                        emb_backend **out, emb_error *err) {
    if (!mf || !o || !out)
        return emb_fail(err, EMB_ERR_INVALID_ARG, "emb_cuda_backend_create: NULL argument");
    *out = NULL;
    const int device = o->device;
    emb_dtype dtype = o->dtype;
    emb_status st = check_model(mf, err);
    if (st) return st;
    char why[256];
    if ((st = emb_cuda_device_usable(device, why, sizeof why)))
        return emb_fail(err, st, "CUDA backend: %s", why);

    const int asked_f16 = dtype == EMB_DTYPE_F16;
    if (dtype == EMB_DTYPE_AUTO)
        dtype = mf->r.dtype == EMB_DTYPE_BF16 || mf->r.f16_unsafe ? EMB_DTYPE_BF16 : EMB_DTYPE_F16;
    if (dtype != EMB_DTYPE_F16 && dtype != EMB_DTYPE_BF16)
        return emb_fail(err, EMB_ERR_UNSUPPORTED,
                        "CUDA backend: --dtype f32 is not supported on the GPU (use f16 or bf16)");
    /* A model whose activations overflow fp16 would give NaN vectors: bf16
     * has fp32's range (TEI refuses fp16 for such models; we switch). */
    if (dtype == EMB_DTYPE_F16 && mf->r.f16_unsafe) dtype = EMB_DTYPE_BF16;

    emb_backend *be = calloc(1, sizeof *be);
    cuda_ctx *c = calloc(1, sizeof *c);
    if (!be || !c) {
        free(be);
        free(c);
        return emb_fail(err, EMB_ERR_NOMEM, "CUDA backend: out of host memory");
    }
    be->name = "cuda";
    be->compute_dtype = dtype;
    if (asked_f16 && dtype == EMB_DTYPE_BF16)
        snprintf(be->notice, sizeof be->notice, "%s: computing in bf16 instead of f16 (%s)",
                 mf->r.family ? mf->r.family : mf->r.model_type,
                 mf->r.f16_unsafe_reason ? mf->r.f16_unsafe_reason : "activations leave fp16's range");
    be->ctx = c;
    be->chunks_internally = 1;
    be->peak_flops = device_peak_flops(device);
    be->encode = cuda_encode;
    be->token_embeddings = cuda_token_embeddings;
    be->run_note = cuda_run_note;
    be->destroy = cuda_destroy;
    c->mf = mf;
    c->r = mf->r;
    c->r.layer = NULL;   /* the views stay with the model files */
    c->sh = o->shard;
    if (c->sh.nq == 0)
        c->sh = (emb_cuda_shard){0, mf->r.heads, 0, mf->r.kv_heads, 0, mf->r.intermediate};
    c->r.heads = c->sh.nq;   /* the forward runs on this device's shard */
    c->r.kv_heads = c->sh.nkv;
    c->r.intermediate = c->sh.ni;
    c->tp = o->tp;
    c->tp_rank = o->tp_rank;
    if (mf->r.emb.pos == EMB_EPOS_LEARNED) c->n_position = (int)mf->r.emb.position.shape[0];
    else if (mf->r.emb.pos == EMB_EPOS_SINUSOIDAL) c->n_position = mf->r.max_position;
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
    if ((st = size_gemm_workspace(c, err))) goto fail;
    if ((st = pick_attention(c, err))) goto fail;
    if ((st = pick_qkv_bias(c, err))) goto fail;
    if ((st = pick_sandwich(c, err))) goto fail;
    if ((st = pick_mlp_epilogue(c, err))) goto fail;
    if ((st = pick_graphs(c, err))) goto fail;
    /* The budget must hold the longest sequence the model accepts; on OOM
     * halve it (down to that floor) rather than refuse to run. */
    size_t tokens = o->max_batch_tokens ? o->max_batch_tokens : CUDA_DEFAULT_BATCH_TOKENS;
    size_t floor_tokens = (size_t)mf->r.max_position;
    if (floor_tokens < MIN_BUDGET_TOKENS) floor_tokens = MIN_BUDGET_TOKENS;
    if (tokens < floor_tokens) tokens = floor_tokens;
    if ((st = plan_weights(c, 0, err))) goto fail;               /* sizes only */
    if ((st = check_fits(c, &tokens, floor_tokens, o->tp_size, err))) goto fail;
    {
        cudaError_t e = cudaMalloc(&c->weights, c->weights_size ? c->weights_size : 1);
        if (e != cudaSuccess) {
            c->weights = NULL;
            st = cu_fail(err, e, "cudaMalloc(weights)", __FILE__, __LINE__);
            goto fail;
        }
    }
    if ((st = set_gemm_workspace(c, err))) goto fail;
    if ((st = plan_weights(c, !o->weights_later, err))) goto fail;

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

void *emb_cuda_weight_block(emb_backend *be, size_t *size, int *device, void **stream) {
    cuda_ctx *c = be->ctx;
    *size = c->weights_size;
    *device = c->device;
    *stream = c->copy;
    return c->weights;
}

void emb_cuda_budget(emb_backend *be, size_t *tokens, int *seqs, size_t *pool_floats) {
    const cuda_ctx *c = be->ctx;
    *tokens = c->cap_tokens;
    *seqs = c->cap_seqs;
    *pool_floats = c->pool_floats;
}

void emb_cuda_clamp_budget(emb_backend *be, size_t tokens, int seqs, size_t pool_floats) {
    cuda_ctx *c = be->ctx;
    if (tokens < c->cap_tokens) c->cap_tokens = tokens;
    if (seqs < c->cap_seqs) c->cap_seqs = seqs;
    if (pool_floats < c->pool_floats) c->pool_floats = pool_floats;
}
