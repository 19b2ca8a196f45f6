/*
 * The CPU backend: the reference every other backend is compared with, and
 * the fallback when no GPU is present. It runs any recipe (host/arch/
 * recipe.h) with one generic forward: embeddings (word x scale + learned or
 * sinusoidal positions + token types, optional norm), then per layer the
 * attention and MLP blocks with the recipe's norm placement (post as BERT,
 * pre as ModernBERT/T5, sandwich as Gemma), rotary or relative-bucket
 * positions, per-layer windows, plain or gated MLP; a final norm; then
 * pooling, the Dense modules, truncation and normalization, each step one
 * call into cpu_ops.c or cpu_gemm.c. Weights are converted to fp32 once at
 * creation and every GEMM weight is packed into cpu_gemm's panel layout
 * (Q/K/V stacked into one matrix, a gated MLP's gate and up into one);
 * biases and activations are fused into the GEMMs, residual adds use the
 * GEMM's accumulate mode. Activations live in a workspace that only grows,
 * so steady-state batches allocate nothing.
 */
#include "backend.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "cpu_gemm.h"
#include "cpu_ops.h"
#include "error.h"
#include "hostmem.h"
#include "model_files.h"

/* A norm in fp32: kind NONE is the identity; a LayerNorm without bias gets
 * a zero bias, RMSNorm (1 + w) its weight pre-added. */
typedef struct {
    emb_norm_kind kind;
    float eps;
    float *g, *b;
} cpu_norm;

typedef struct {
    cpu_norm attn_norm, mlp_norm, attn_post, mlp_post, q_norm, k_norm;
    cpu_gemm_weight wqkv;   /* [(heads + 2 kv) hd, hidden]: Q, K, V rows stacked */
    cpu_gemm_weight wo;     /* [hidden, heads hd] */
    cpu_gemm_weight w_in;   /* plain: [I, hidden]; gated: [2I, hidden], gate rows first */
    cpu_gemm_weight w_down; /* [hidden, I] */
    float *bqkv, *bo, *b_in, *b_down;   /* NULL when absent */
    int window_left, window_right;
    float rope_theta;
    float *inv_freq;        /* a scaled rope's rotary_dim / 2 frequencies, or NULL */
} cpu_layer;

typedef struct {
    int in, out;
    emb_act act;
    cpu_gemm_weight w;
    float *b; /* NULL when the module has no bias */
} cpu_dense;

typedef struct {
    emb_recipe r;           /* sizes and flags (tensor views unused after load) */
    int threads;
    float *word, *position, *token_type;
    int n_position;         /* rows of position */
    cpu_norm emb_norm, final_norm;
    float *rel_table;       /* [num_buckets, heads] */
    cpu_layer *layers;
    cpu_dense *dense;
    int n_dense;

    /* Workspace, grow-only. Token buffers hold ws_tokens rows; the pooled
     * buffers hold ws_vec floats each (nseq x widest vector). */
    size_t ws_tokens;
    float *x, *qkv, *ctx, *h1, *ffn, *ffn2;
    size_t ws_vec;
    float *vec_a, *vec_b;
    size_t ws_bias;
    float *rel_bias;        /* [heads, 2 span - 1] */
} cpu_ctx;

/* ---- weights ------------------------------------------------------------ */

/* Copies tensor t, which must hold exactly n elements, to dst as fp32. */
static emb_status load_into(float *dst, const emb_tensor *t, size_t n, emb_error *err) {
    if (!t->data || emb_tensor_numel(t) != n)
        return emb_fail(err, EMB_ERR_FORMAT, "cpu backend: tensor %s has %zu elements, expected %zu",
                        t->name ? t->name : "(missing)", t->data ? emb_tensor_numel(t) : 0, n);
    emb_tensor_to_f32(t, dst, n);
    return EMB_OK;
}

static emb_status alloc_floats(float **dst, size_t n, const char *what, emb_error *err) {
    size_t bytes;
    if (!emb_mul_ok(n, sizeof(float), &bytes) || !(*dst = malloc(bytes ? bytes : 1)))
        return emb_fail(err, EMB_ERR_NOMEM, "cpu backend: allocating %zu floats for %s", n, what);
    return EMB_OK;
}

static emb_status load_new(float **dst, const emb_tensor *t, size_t n, emb_error *err) {
    emb_status st = alloc_floats(dst, n, t->name ? t->name : "(missing)", err);
    return st ? st : load_into(*dst, t, n, err);
}

/* An optional tensor (bias): NULL when absent. */
static emb_status load_opt(float **dst, const emb_tensor *t, size_t n, emb_error *err) {
    *dst = NULL;
    return t->data ? load_new(dst, t, n, err) : EMB_OK;
}

/* Stacks up to three [n_i, k] tensors into one [sum n_i, k] matrix and packs
 * it for cpu_gemm; the fp32 copy is only a staging buffer. */
static emb_status load_packed_stack(cpu_gemm_weight *dst, const emb_tensor *const *t,
                                    const size_t *n, int parts, size_t k, emb_error *err) {
    size_t rows = 0;
    for (int i = 0; i < parts; i++) rows += n[i];
    float *w = NULL;
    emb_status st = alloc_floats(&w, rows * k, t[0]->name ? t[0]->name : "(weights)", err);
    size_t off = 0;
    for (int i = 0; i < parts && !st; i++) {
        st = load_into(w + off, t[i], n[i] * k, err);
        off += n[i] * k;
    }
    if (!st && cpu_gemm_weight_pack(dst, w, (int)rows, (int)k) != 0)
        st = emb_fail(err, EMB_ERR_NOMEM, "cpu backend: packing %s", t[0]->name ? t[0]->name : "(weights)");
    free(w);
    return st;
}

static emb_status load_packed(cpu_gemm_weight *dst, const emb_tensor *t, size_t n, size_t k,
                              emb_error *err) {
    return load_packed_stack(dst, &t, &n, 1, k, err);
}

/* Up to three optional bias vectors stacked; NULL when none is present. */
static emb_status load_bias_stack(float **dst, const emb_tensor *const *t, const size_t *n, int parts,
                                  emb_error *err) {
    *dst = NULL;
    size_t rows = 0;
    int any = 0;
    for (int i = 0; i < parts; i++) rows += n[i], any |= t[i]->data != NULL;
    if (!any) return EMB_OK;
    emb_status st = alloc_floats(dst, rows, "biases", err);
    size_t off = 0;
    for (int i = 0; i < parts && !st; i++) {
        if (t[i]->data) st = load_into(*dst + off, t[i], n[i], err);
        else memset(*dst + off, 0, n[i] * sizeof(float));
        off += n[i];
    }
    return st;
}

static emb_status load_norm(cpu_norm *dst, const emb_norm *src, size_t dim, emb_error *err) {
    dst->kind = src->kind;
    dst->eps = src->eps;
    if (src->kind == EMB_NORM_NONE) return EMB_OK;
    emb_status st = load_new(&dst->g, &src->w, dim, err);
    if (st) return st;
    if (src->kind == EMB_NORM_RMS_1P)
        for (size_t i = 0; i < dim; i++) dst->g[i] += 1.0f;
    if (src->kind != EMB_NORM_LAYER) return EMB_OK;
    if (src->b.data) return load_new(&dst->b, &src->b, dim, err);
    if (!(dst->b = calloc(dim, sizeof(float))))
        return emb_fail(err, EMB_ERR_NOMEM, "cpu backend: allocating a norm");
    return EMB_OK;
}

static void free_norm(cpu_norm *n) { free(n->g), free(n->b); }

static emb_status load_layer(cpu_layer *L, const emb_recipe *r, const emb_recipe_layer *src,
                             emb_error *err) {
    const size_t h = (size_t)r->hidden, inter = (size_t)r->intermediate, hd = (size_t)r->head_dim;
    const size_t qd = (size_t)r->heads * hd, kvd = (size_t)r->kv_heads * hd;
    emb_status st;
    L->window_left = src->window_left, L->window_right = src->window_right;
    L->rope_theta = src->rope_theta;
    if (src->rope_inv_freq) {
        const size_t half = (size_t)r->rotary_dim / 2;
        if (!(L->inv_freq = malloc((half ? half : 1) * sizeof(float))))
            return emb_fail(err, EMB_ERR_NOMEM, "cpu backend: allocating the rope frequencies");
        memcpy(L->inv_freq, src->rope_inv_freq, half * sizeof(float));
    }
    if ((st = load_norm(&L->attn_norm, &src->attn_norm, h, err)) ||
        (st = load_norm(&L->mlp_norm, &src->mlp_norm, h, err)) ||
        (st = load_norm(&L->attn_post, &src->attn_post_norm, h, err)) ||
        (st = load_norm(&L->mlp_post, &src->mlp_post_norm, h, err)) ||
        (st = load_norm(&L->q_norm, &src->q_norm, hd, err)) ||
        (st = load_norm(&L->k_norm, &src->k_norm, hd, err)))
        return st;

    /* Q, K and V stacked into one matrix: one GEMM yields the layout
     * cpu_attention reads. */
    if (src->wqkv.data) {
        if ((st = load_packed(&L->wqkv, &src->wqkv, qd + 2 * kvd, h, err)) ||
            (st = load_opt(&L->bqkv, &src->bqkv, qd + 2 * kvd, err)))
            return st;
    } else {
        const emb_tensor *w3[] = {&src->wq, &src->wk, &src->wv}, *b3[] = {&src->bq, &src->bk, &src->bv};
        const size_t n3[] = {qd, kvd, kvd};
        if ((st = load_packed_stack(&L->wqkv, w3, n3, 3, h, err)) ||
            (st = load_bias_stack(&L->bqkv, b3, n3, 3, err)))
            return st;
    }
    if ((st = load_packed(&L->wo, &src->wo, h, qd, err)) || (st = load_opt(&L->bo, &src->bo, h, err)))
        return st;

    if (!r->gated) {
        if ((st = load_packed(&L->w_in, &src->w_up, inter, h, err)) ||
            (st = load_opt(&L->b_in, &src->b_up, inter, err)))
            return st;
    } else if (src->w_gate_up.data) {
        if ((st = load_packed(&L->w_in, &src->w_gate_up, 2 * inter, h, err)) ||
            (st = load_opt(&L->b_in, &src->b_gate_up, 2 * inter, err)))
            return st;
    } else {
        const emb_tensor *w2[] = {&src->w_gate, &src->w_up}, *b2[] = {&src->b_gate, &src->b_up};
        const size_t n2[] = {inter, inter};
        if ((st = load_packed_stack(&L->w_in, w2, n2, 2, h, err)) ||
            (st = load_bias_stack(&L->b_in, b2, n2, 2, err)))
            return st;
    }
    if ((st = load_packed(&L->w_down, &src->w_down, h, inter, err)) ||
        (st = load_opt(&L->b_down, &src->b_down, h, err)))
        return st;
    return EMB_OK;
}

static void free_layer(cpu_layer *L) {
    cpu_gemm_weight_free(&L->wqkv), cpu_gemm_weight_free(&L->wo);
    cpu_gemm_weight_free(&L->w_in), cpu_gemm_weight_free(&L->w_down);
    float *all[] = {L->bqkv, L->bo, L->b_in, L->b_down, L->inv_freq};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) free(all[i]);
    cpu_norm *norms[] = {&L->attn_norm, &L->mlp_norm, &L->attn_post, &L->mlp_post, &L->q_norm, &L->k_norm};
    for (size_t i = 0; i < sizeof norms / sizeof *norms; i++) free_norm(norms[i]);
}

static void cpu_destroy(emb_backend *be) {
    if (!be) return;
    cpu_ctx *c = be->ctx;
    if (c) {
        free(c->word), free(c->position), free(c->token_type), free(c->rel_table);
        free_norm(&c->emb_norm), free_norm(&c->final_norm);
        if (c->layers)
            for (int i = 0; i < c->r.layers; i++) free_layer(&c->layers[i]);
        free(c->layers);
        if (c->dense)
            for (int i = 0; i < c->n_dense; i++) cpu_gemm_weight_free(&c->dense[i].w), free(c->dense[i].b);
        free(c->dense);
        free(c->x), free(c->qkv), free(c->ctx), free(c->h1), free(c->ffn), free(c->ffn2);
        free(c->vec_a), free(c->vec_b), free(c->rel_bias);
        free(c);
    }
    free(be);
}

/* transformers' create_sinusoidal_embeddings (DistilBERT): computed in
 * float64 by numpy, then stored as float32. */
static void sinusoidal_table(float *t, int n_pos, int dim) {
    for (int p = 0; p < n_pos; p++)
        for (int j = 0; j < dim; j++) {
            double a = p / pow(10000.0, 2.0 * (j / 2) / dim);
            t[(size_t)p * dim + j] = (float)(j % 2 ? cos(a) : sin(a));
        }
}

static emb_status load_weights(cpu_ctx *c, const emb_model_files *mf, emb_error *err) {
    const emb_recipe *r = &mf->r;
    const size_t h = (size_t)r->hidden;
    emb_status st;
    if ((st = load_new(&c->word, &r->emb.word, (size_t)r->vocab_size * h, err))) return st;
    if (r->emb.pos == EMB_EPOS_LEARNED) {
        c->n_position = (int)r->emb.position.shape[0];
        if ((st = load_new(&c->position, &r->emb.position, (size_t)c->n_position * h, err))) return st;
    } else if (r->emb.pos == EMB_EPOS_SINUSOIDAL) {
        c->n_position = r->max_position;
        if ((st = alloc_floats(&c->position, (size_t)c->n_position * h, "sinusoidal positions", err)))
            return st;
        sinusoidal_table(c->position, c->n_position, (int)h);
    }
    if (r->emb.token_type.data &&
        (st = load_new(&c->token_type, &r->emb.token_type, (size_t)r->emb.type_vocab * h, err)))
        return st;
    if ((st = load_norm(&c->emb_norm, &r->emb.norm, h, err)) ||
        (st = load_norm(&c->final_norm, &r->final_norm, h, err)))
        return st;
    if (r->attn_pos == EMB_APOS_RELATIVE &&
        (st = load_new(&c->rel_table, &r->rel.table, (size_t)r->rel.num_buckets * (size_t)r->heads, err)))
        return st;
    if (!(c->layers = calloc((size_t)r->layers, sizeof *c->layers)))
        return emb_fail(err, EMB_ERR_NOMEM, "cpu backend: allocating layers");
    for (int i = 0; i < r->layers; i++)
        if ((st = load_layer(&c->layers[i], r, &r->layer[i], err))) return emb_fail_prefix(err, "layer %d", i);

    c->n_dense = mf->st.n_dense;
    if (c->n_dense > 0 && !(c->dense = calloc((size_t)c->n_dense, sizeof *c->dense)))
        return emb_fail(err, EMB_ERR_NOMEM, "cpu backend: allocating Dense modules");
    for (int i = 0; i < c->n_dense; i++) {
        const emb_dense *d = &mf->st.dense[i];
        cpu_dense *cd = &c->dense[i];
        cd->in = d->in_features, cd->out = d->out_features, cd->act = d->act;
        if ((st = load_packed(&cd->w, &d->w, (size_t)cd->out, (size_t)cd->in, err)) ||
            (d->has_bias && (st = load_new(&cd->b, &d->b, (size_t)cd->out, err))))
            return emb_fail_prefix(err, "Dense module %d", i);
    }
    return EMB_OK;
}

static size_t numel_or0(const emb_tensor *t) { return t->data ? emb_tensor_numel(t) : 0; }
static size_t norm_numel(const emb_norm *n) { return numel_or0(&n->w) + numel_or0(&n->b); }

/* The floats load_weights allocates: every tensor it reads, widened to fp32
 * (a fused and a split form both present would be counted twice: an
 * overestimate, never an under-). */
static size_t weight_floats(const emb_model_files *mf) {
    const emb_recipe *r = &mf->r;
    size_t n = numel_or0(&r->emb.word) + numel_or0(&r->emb.token_type) + norm_numel(&r->emb.norm) +
               norm_numel(&r->final_norm);
    if (r->emb.pos == EMB_EPOS_LEARNED) n += numel_or0(&r->emb.position);
    else if (r->emb.pos == EMB_EPOS_SINUSOIDAL) n += (size_t)r->max_position * (size_t)r->hidden;
    if (r->attn_pos == EMB_APOS_RELATIVE) n += numel_or0(&r->rel.table);
    for (int l = 0; l < r->layers; l++) {
        const emb_recipe_layer *L = &r->layer[l];
        const emb_tensor *t[] = {&L->wq,     &L->wk,     &L->wv,     &L->wqkv,      &L->bq,        &L->bk,
                                 &L->bv,     &L->bqkv,   &L->wo,     &L->bo,        &L->w_up,      &L->b_up,
                                 &L->w_gate, &L->b_gate, &L->w_gate_up, &L->b_gate_up, &L->w_down, &L->b_down};
        for (size_t i = 0; i < sizeof t / sizeof *t; i++) n += numel_or0(t[i]);
        const emb_norm *nm[] = {&L->attn_norm, &L->mlp_norm, &L->attn_post_norm, &L->mlp_post_norm,
                                &L->q_norm, &L->k_norm};
        for (size_t i = 0; i < sizeof nm / sizeof *nm; i++) n += norm_numel(nm[i]);
    }
    for (int d = 0; d < mf->st.n_dense; d++)
        n += numel_or0(&mf->st.dense[d].w) + (mf->st.dense[d].has_bias ? numel_or0(&mf->st.dense[d].b) : 0);
    return n;
}

/* A model whose fp32 weights do not fit the host memory left (MemAvailable,
 * a container's cgroup limit, or EMBEDC_HOST_MEMORY) is refused before any
 * allocation, saying how much it needs: otherwise the kernel's OOM killer
 * would end the process halfway through loading. */
static emb_status check_host_memory(const emb_model_files *mf, emb_error *err) {
    uint64_t avail;
    const char *source = NULL;
    const double need = (double)weight_floats(mf) * sizeof(float);
    if (!emb_host_memory_available(&avail, &source) || need <= (double)avail) return EMB_OK;
    const double gib = 1024.0 * 1024 * 1024;
    return emb_fail(err, EMB_ERR_NOMEM,
                    "cpu backend: the model needs %.2f GiB of host memory for its weights in float32 "
                    "(%.0f million parameters) but %.2f GiB are available (%s); run it on a GPU "
                    "(--device cuda), on a machine with more memory, or set EMBEDC_HOST_MEMORY to override",
                    need / gib, need / sizeof(float) / 1e6, (double)avail / gib, source);
}

/* ---- workspace ---------------------------------------------------------- */

static emb_status grow(float **p, size_t n, emb_error *err) {
    size_t bytes;
    float *q;
    if (!emb_mul_ok(n, sizeof(float), &bytes) || !(q = realloc(*p, bytes ? bytes : 1)))
        return emb_fail(err, EMB_ERR_NOMEM, "cpu backend: workspace of %zu floats", n);
    *p = q;
    return EMB_OK;
}

static size_t qkv_width(const emb_recipe *r) {
    return (size_t)(r->heads + 2 * r->kv_heads) * (size_t)r->head_dim;
}

static emb_status ensure_tokens(cpu_ctx *c, size_t tokens, emb_error *err) {
    if (tokens <= c->ws_tokens) return EMB_OK;
    const emb_recipe *r = &c->r;
    const size_t h = (size_t)r->hidden, inter = (size_t)r->intermediate;
    const size_t qd = (size_t)r->heads * (size_t)r->head_dim;
    size_t n_h, n_qkv, n_q, n_i, n_i2;
    if (!emb_mul_ok(tokens, h, &n_h) || !emb_mul_ok(tokens, qkv_width(r), &n_qkv) ||
        !emb_mul_ok(tokens, qd, &n_q) || !emb_mul_ok(tokens, inter, &n_i) || !emb_mul_ok(n_i, 2, &n_i2))
        return emb_fail(err, EMB_ERR_INVALID_ARG, "cpu backend: batch of %zu tokens too large", tokens);
    emb_status st;
    if ((st = grow(&c->x, n_h, err)) || (st = grow(&c->qkv, n_qkv, err)) || (st = grow(&c->ctx, n_q, err)) ||
        (st = grow(&c->h1, n_h, err)) || (st = grow(&c->ffn, n_i, err)) ||
        (r->gated && (st = grow(&c->ffn2, n_i2, err))))
        return st;
    c->ws_tokens = tokens;
    return EMB_OK;
}

static emb_status ensure_vec(cpu_ctx *c, size_t n, emb_error *err) {
    if (n <= c->ws_vec) return EMB_OK;
    emb_status st;
    if ((st = grow(&c->vec_a, n, err)) || (st = grow(&c->vec_b, n, err))) return st;
    c->ws_vec = n;
    return EMB_OK;
}

/* ---- forward ------------------------------------------------------------ */

/* The OpenMP setting is per calling thread (the engine may call from a
 * worker thread, not the one that created us), so it is set on every call. */
static void set_threads(const cpu_ctx *c) {
#ifdef _OPENMP
    omp_set_num_threads(c->threads);
#else
    (void)c;
#endif
}

/* A batch comes from the engine, but a bad one would index out of the weight
 * tables, so every id and length is checked before anything runs. */
static emb_status check_batch(const cpu_ctx *c, const emb_batch *b, int *max_len, emb_error *err) {
    if (!b || b->nseq < 1 || !b->ids || !b->cu_seqlens)
        return emb_fail(err, EMB_ERR_INVALID_ARG, "cpu backend: empty or incomplete batch");
    if (b->cu_seqlens[0] != 0 || b->cu_seqlens[b->nseq] != b->total)
        return emb_fail(err, EMB_ERR_INVALID_ARG,
                        "cpu backend: cu_seqlens[0] = %d, cu_seqlens[%d] = %d, total = %d",
                        b->cu_seqlens[0], b->nseq, b->cu_seqlens[b->nseq], b->total);
    *max_len = 0;
    for (int s = 0; s < b->nseq; s++) {
        int len = b->cu_seqlens[s + 1] - b->cu_seqlens[s];
        if (len < 1 || len > c->r.max_position)
            return emb_fail(err, EMB_ERR_INVALID_ARG,
                            "cpu backend: sequence %d has %d tokens (1..%d allowed)", s, len,
                            c->r.max_position);
        if (len > *max_len) *max_len = len;
    }
    for (int t = 0; t < b->total; t++) {
        if (b->ids[t] < 0 || b->ids[t] >= c->r.vocab_size)
            return emb_fail(err, EMB_ERR_INVALID_ARG, "cpu backend: token %d has id %d (vocab %d)",
                            t, b->ids[t], c->r.vocab_size);
        if (c->token_type && b->type_ids && (b->type_ids[t] < 0 || b->type_ids[t] >= c->r.emb.type_vocab))
            return emb_fail(err, EMB_ERR_INVALID_ARG, "cpu backend: token %d has type id %d",
                            t, b->type_ids[t]);
    }
    return EMB_OK;
}

/* x[rows, dim] = norm(x) in place (kind NONE: unchanged). */
static void norm_rows(float *x, const cpu_norm *n, int rows, int dim) {
    if (n->kind == EMB_NORM_LAYER) cpu_bias_residual_layernorm(x, NULL, NULL, n->g, n->b, rows, dim, n->eps);
    else if (n->kind != EMB_NORM_NONE) cpu_rmsnorm(x, NULL, n->g, rows, dim, n->eps);
}

/* x = word[id] * scale + position + token type, then the embedding norm.
 * Positions restart in every sequence of a packed batch; the RoBERTa rule
 * (pos_pad_id >= 0) counts non-pad tokens from padding_idx + 1. */
static void embed(cpu_ctx *c, const emb_batch *b) {
    const emb_recipe *r = &c->r;
    const int H = r->hidden, pad = r->emb.pos_pad_id;
#pragma omp parallel for schedule(dynamic, 1) if (b->total * H >= 16384)
    for (int s = 0; s < b->nseq; s++) {
        int counted = 0;
        for (int t = b->cu_seqlens[s]; t < b->cu_seqlens[s + 1]; t++) {
            const float *we = c->word + (size_t)b->ids[t] * H;
            float *o = c->x + (size_t)t * H;
            for (int k = 0; k < H; k++) o[k] = we[k] * r->emb.scale;
            if (c->position) {
                int p = t - b->cu_seqlens[s] + r->emb.pos_offset;
                if (pad >= 0) p = b->ids[t] == pad ? pad : pad + ++counted;
                if (p >= c->n_position) p = c->n_position - 1;   /* unreachable: check_batch bounds lengths */
                const float *pe = c->position + (size_t)p * H;
                for (int k = 0; k < H; k++) o[k] += pe[k];
            }
            if (c->token_type) {
                const float *te = c->token_type + (size_t)(b->type_ids ? b->type_ids[t] : 0) * H;
                for (int k = 0; k < H; k++) o[k] += te[k];
            }
        }
    }
    norm_rows(c->x, &c->emb_norm, b->total, H);
}

/* The per-head relative-position bias over j - i in [-(span-1), span-1],
 * from the shared bucket table. */
static emb_status relative_bias(cpu_ctx *c, int span, emb_error *err) {
    const emb_recipe *r = &c->r;
    const size_t w = 2 * (size_t)span - 1, n = w * (size_t)r->heads;
    if (n > c->ws_bias) {
        emb_status st = grow(&c->rel_bias, n, err);
        if (st) return st;
        c->ws_bias = n;
    }
    for (int d = -(span - 1); d <= span - 1; d++) {
        const int bucket = emb_relative_bucket(d, r->rel.num_buckets, r->rel.max_distance, r->rel.bidirectional);
        for (int h = 0; h < r->heads; h++)
            c->rel_bias[(size_t)h * w + (size_t)(d + span - 1)] = c->rel_table[(size_t)bucket * r->heads + h];
    }
    return EMB_OK;
}

/* One layer. POST: x = N1(x + Attn(x)); x = N2(x + MLP(x)).
 * PRE/SANDWICH: x += P1(Attn(N1(x))); x += P2(MLP(N2(x))). */
static void layer_forward(cpu_ctx *c, const cpu_layer *L, const emb_batch *b, int span) {
    const emb_recipe *r = &c->r;
    const int T = b->total, H = r->hidden, I = r->intermediate, hd = r->head_dim;
    const int QD = r->heads * hd, W = (int)qkv_width(r);
    const int post = r->place == EMB_PLACE_POST, sandwich = r->place == EMB_PLACE_SANDWICH;

    /* attention */
    const float *in = c->x;
    if (!post && L->attn_norm.kind != EMB_NORM_NONE) {
        memcpy(c->h1, c->x, (size_t)T * H * sizeof(float));
        norm_rows(c->h1, &L->attn_norm, T, H);
        in = c->h1;
    }
    cpu_gemm_linear(c->qkv, W, in, H, T, &L->wqkv, NULL, EMB_ACT_IDENTITY, 0);
    /* The QKV epilogue, as the CUDA backend runs it: bias, q_norm / k_norm
     * (RMS kinds only, refused otherwise at create) and rotary. */
    const cpu_qk_params qk = {
        .heads = r->heads, .kv_heads = r->kv_heads, .head_dim = hd, .bias = L->bqkv,
        .q_g = L->q_norm.kind ? L->q_norm.g : NULL, .q_eps = L->q_norm.eps,
        .k_g = L->k_norm.kind ? L->k_norm.g : NULL, .k_eps = L->k_norm.eps,
        .rotary_dim = r->attn_pos == EMB_APOS_ROTARY ? r->rotary_dim : 0, .theta = L->rope_theta,
        .inv_freq = L->inv_freq,
    };
    cpu_qk_norm_rotary(c->qkv, b->cu_seqlens, b->nseq, &qk);
    const cpu_attn_params ap = {
        .heads = r->heads, .kv_heads = r->kv_heads, .head_dim = hd, .scale = r->scale,
        .window_left = L->window_left, .window_right = L->window_right, .softcap = r->softcap,
        .rel_bias = r->attn_pos == EMB_APOS_RELATIVE ? c->rel_bias : NULL, .rel_span = span,
    };
    cpu_attention(c->ctx, c->qkv, b->cu_seqlens, b->nseq, &ap);
    if (post) {
        cpu_gemm_linear(c->h1, H, c->ctx, QD, T, &L->wo, NULL, EMB_ACT_IDENTITY, 0);
        if (L->attn_norm.kind == EMB_NORM_LAYER)
            cpu_bias_residual_layernorm(c->h1, L->bo, c->x, L->attn_norm.g, L->attn_norm.b, T, H,
                                        L->attn_norm.eps);
        else {
            if (L->bo) cpu_bias_act(c->h1, L->bo, T, H, EMB_ACT_IDENTITY);
            cpu_rmsnorm(c->h1, c->x, L->attn_norm.g, T, H, L->attn_norm.eps);
        }
    } else if (sandwich) {
        cpu_gemm_linear(c->h1, H, c->ctx, QD, T, &L->wo, L->bo, EMB_ACT_IDENTITY, 0);
        norm_rows(c->h1, &L->attn_post, T, H);
        for (size_t i = 0; i < (size_t)T * H; i++) c->x[i] += c->h1[i];
    } else {
        cpu_gemm_linear(c->x, H, c->ctx, QD, T, &L->wo, L->bo, EMB_ACT_IDENTITY, 1);
    }

    /* MLP: input h1 for post-norm (the attention block's output), else the
     * normed residual stream */
    in = post ? c->h1 : c->x;
    if (!post && L->mlp_norm.kind != EMB_NORM_NONE) {
        memcpy(c->h1, c->x, (size_t)T * H * sizeof(float));
        norm_rows(c->h1, &L->mlp_norm, T, H);
        in = c->h1;
    }
    if (r->gated) {
        cpu_gemm_linear(c->ffn2, 2 * I, in, H, T, &L->w_in, L->b_in, EMB_ACT_IDENTITY, 0);
        cpu_gated_act(c->ffn, c->ffn2, T, I, r->act);
    } else {
        cpu_gemm_linear(c->ffn, I, in, H, T, &L->w_in, L->b_in, r->act, 0);
    }
    if (post) {
        cpu_gemm_linear(c->x, H, c->ffn, I, T, &L->w_down, NULL, EMB_ACT_IDENTITY, 0);
        if (L->mlp_norm.kind == EMB_NORM_LAYER)
            cpu_bias_residual_layernorm(c->x, L->b_down, c->h1, L->mlp_norm.g, L->mlp_norm.b, T, H,
                                        L->mlp_norm.eps);
        else {
            if (L->b_down) cpu_bias_act(c->x, L->b_down, T, H, EMB_ACT_IDENTITY);
            cpu_rmsnorm(c->x, c->h1, L->mlp_norm.g, T, H, L->mlp_norm.eps);
        }
    } else if (sandwich) {
        cpu_gemm_linear(c->h1, H, c->ffn, I, T, &L->w_down, L->b_down, EMB_ACT_IDENTITY, 0);
        norm_rows(c->h1, &L->mlp_post, T, H);
        for (size_t i = 0; i < (size_t)T * H; i++) c->x[i] += c->h1[i];
    } else {
        cpu_gemm_linear(c->x, H, c->ffn, I, T, &L->w_down, L->b_down, EMB_ACT_IDENTITY, 1);
    }
}

/* Runs embeddings and the first `layers` layers (the final norm after the
 * last layer of the model only); result in c->x. */
static emb_status forward(cpu_ctx *c, const emb_batch *b, int layers, emb_error *err) {
    emb_status st;
    int span = 0;
    if ((st = check_batch(c, b, &span, err))) return st;
    if (layers < 0 || layers > c->r.layers)
        return emb_fail(err, EMB_ERR_INVALID_ARG, "cpu backend: layer %d (model has %d)", layers,
                        c->r.layers);
    if ((st = ensure_tokens(c, (size_t)b->total, err))) return st;
    if (c->r.attn_pos == EMB_APOS_RELATIVE && (st = relative_bias(c, span, err))) return st;
    set_threads(c);

    embed(c, b);
    for (int l = 0; l < layers; l++) layer_forward(c, &c->layers[l], b, span);
    if (layers == c->r.layers) norm_rows(c->x, &c->final_norm, b->total, c->r.hidden);
    return EMB_OK;
}

static int popcount(int m) {
    int n = 0;
    for (; m; m &= m - 1) n++;
    return n;
}

static emb_status cpu_encode(emb_backend *be, const emb_batch *b, const emb_job *job, float *out,
                             emb_error *err) {
    cpu_ctx *c = be->ctx;
    if (!job || !out)
        return emb_fail(err, EMB_ERR_INVALID_ARG, "cpu backend: encode without job or output");
    if (!job->pooling_modes || (job->pooling_modes & ~0x3f))
        return emb_fail(err, EMB_ERR_INVALID_ARG, "cpu backend: pooling modes 0x%x",
                        job->pooling_modes);
    if (job->layer < 1 || job->layer > c->r.layers)
        return emb_fail(err, EMB_ERR_INVALID_ARG, "cpu backend: layer %d (model has %d)",
                        job->layer, c->r.layers);

    /* Widths along the way: pooled, then each Dense module's output. */
    int width = c->r.hidden * popcount(job->pooling_modes), widest = width;
    if (job->apply_dense)
        for (int i = 0; i < c->n_dense; i++) {
            if (c->dense[i].in != width)
                return emb_fail(err, EMB_ERR_INVALID_ARG,
                                "cpu backend: Dense module %d takes %d features, gets %d", i,
                                c->dense[i].in, width);
            width = c->dense[i].out;
            widest = width > widest ? width : widest;
        }
    const int final_dim = job->truncate_dim > 0 && job->truncate_dim < width ? job->truncate_dim
                                                                             : width;
    if (job->truncate_dim < 0 || job->truncate_dim > width || job->out_dim != final_dim)
        return emb_fail(err, EMB_ERR_INVALID_ARG,
                        "cpu backend: out_dim %d, truncate_dim %d, but the vectors are %d wide",
                        job->out_dim, job->truncate_dim, width);

    emb_status st;
    size_t nvec;
    if (!emb_mul_ok((size_t)b->nseq, (size_t)widest, &nvec))
        return emb_fail(err, EMB_ERR_INVALID_ARG, "cpu backend: batch too large");
    if ((st = forward(c, b, job->layer, err)) || (st = ensure_vec(c, nvec, err))) return st;

    /* Pooling, then Dense modules ping-ponging between the two buffers. */
    float *v = c->vec_a, *spare = c->vec_b;
    cpu_pool(v, c->x, b->cu_seqlens, b->nseq, c->r.hidden, job->pooling_modes, b->skip);
    width = c->r.hidden * popcount(job->pooling_modes);
    if (job->apply_dense)
        for (int i = 0; i < c->n_dense; i++) {
            const cpu_dense *d = &c->dense[i];
            cpu_gemm_linear(spare, d->out, v, d->in, b->nseq, &d->w, d->b, d->act, 0);
            float *t = v;
            v = spare, spare = t;
            width = d->out;
        }

    /* Matryoshka: keep the first final_dim features, then normalize the
     * truncated vector (so it is a unit vector again). */
    for (int s = 0; s < b->nseq; s++)
        memcpy(out + (size_t)s * final_dim, v + (size_t)s * width, (size_t)final_dim * sizeof *out);
    if (job->normalize) cpu_l2_normalize(out, b->nseq, final_dim);
    return EMB_OK;
}

static emb_status cpu_token_embeddings(emb_backend *be, const emb_batch *b, int layer, float *out,
                                       emb_error *err) {
    /* layer: hidden states after that many encoder layers (0 = the
     * embeddings' LayerNorm output, like hidden_states[0] in transformers). */
    cpu_ctx *c = be->ctx;
    if (!out) return emb_fail(err, EMB_ERR_INVALID_ARG, "cpu backend: no output buffer");
    emb_status st = forward(c, b, layer, err);
    if (st) return st;
    memcpy(out, c->x, (size_t)b->total * (size_t)c->r.hidden * sizeof *out);
    return EMB_OK;
}

emb_status emb_cpu_backend_create(const struct emb_model_files *mf, int threads, emb_backend **out,
                                  emb_error *err) {
    if (!mf || !out) return emb_fail(err, EMB_ERR_INVALID_ARG, "cpu backend: no model");
    *out = NULL;
    const emb_recipe *r = &mf->r;
    if (r->hidden < 1 || r->heads < 1 || r->head_dim < 1 || r->kv_heads < 1 || r->heads % r->kv_heads ||
        r->layers < 1 || r->intermediate < 1 || !r->layer ||
        (r->attn_pos == EMB_APOS_ROTARY && (r->rotary_dim < 2 || r->rotary_dim % 2 || r->rotary_dim > r->head_dim)))
        return emb_fail(err, EMB_ERR_UNSUPPORTED,
                        "cpu backend: hidden %d, heads %d (%d KV) x %d, layers %d, rotary dims %d", r->hidden,
                        r->heads, r->kv_heads, r->head_dim, r->layers, r->rotary_dim);
    for (int l = 0; l < r->layers; l++)
        if (r->layer[l].q_norm.kind == EMB_NORM_LAYER || r->layer[l].k_norm.kind == EMB_NORM_LAYER)
            return emb_fail(err, EMB_ERR_UNSUPPORTED,
                            "cpu backend: layer %d: per-head q/k norms are RMS norms (w or 1 + w), not LayerNorm", l);

    emb_status st = check_host_memory(mf, err);
    if (st) return st;

    emb_backend *be = calloc(1, sizeof *be);
    cpu_ctx *c = calloc(1, sizeof *c);
    if (!be || !c) {
        free(be), free(c);
        return emb_fail(err, EMB_ERR_NOMEM, "cpu backend: allocating the backend");
    }
    be->name = "cpu";
    be->compute_dtype = EMB_DTYPE_F32;
    be->ctx = c;
    be->encode = cpu_encode;
    be->token_embeddings = cpu_token_embeddings;
    be->destroy = cpu_destroy;
    c->r = *r;
    c->r.layer = NULL;   /* the views stay with the model files */
#ifdef _OPENMP
    /* 0: OMP_NUM_THREADS where it is set (as torch reads it), else all cores. */
    const char *omp_env = getenv("OMP_NUM_THREADS");
    c->threads = threads > 0 ? threads : omp_env && *omp_env ? omp_get_max_threads() : omp_get_num_procs();
#else
    c->threads = threads > 0 ? threads : 1;
#endif

    st = load_weights(c, mf, err);
    if (st) {
        cpu_destroy(be);
        return emb_fail_prefix(err, "loading weights for the cpu backend");
    }
    *out = be;
    return EMB_OK;
}
