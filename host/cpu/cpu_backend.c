/*
 * The CPU backend: the reference every other backend is compared with, and
 * the fallback when no GPU is present. Weights are converted to fp32 once at
 * creation; a packed batch then goes through the BERT encoder (embeddings +
 * LayerNorm, then per layer: fused QKV projection, varlen attention, output
 * projection + residual + LayerNorm, FFN with GELU + residual + LayerNorm),
 * pooling, the Dense modules, truncation and normalization, each step one
 * call into cpu_ops.c or cpu_gemm.c. Every GEMM weight is packed once here
 * into cpu_gemm's panel layout (the fp32 copy is then dropped), and the
 * projections fuse their bias (and the FFN its activation) into the GEMM.
 * Activations live in a workspace that only grows, so steady-state batches
 * allocate nothing.
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
#include "model_files.h"

typedef struct {
    cpu_gemm_weight wqkv; /* [3 hidden, hidden]: Q, K, V rows stacked */
    cpu_gemm_weight wo, w_in, w_out; /* [hidden, hidden], [inter, hidden], [hidden, inter] */
    float *bqkv, *bo, *b_in, *b_out;
    float *ln1_g, *ln1_b, *ln2_g, *ln2_b;
} cpu_layer;

typedef struct {
    int in, out;
    emb_act act;
    cpu_gemm_weight w;
    float *b; /* NULL when the module has no bias */
} cpu_dense;

typedef struct {
    emb_bert_config cfg;
    int threads;
    float *word, *position, *token_type, *ln_g, *ln_b;
    cpu_layer *layers;
    cpu_dense *dense;
    int n_dense;

    /* Workspace, grow-only. Token buffers hold ws_tokens rows; the pooled
     * buffers hold ws_vec floats each (nseq x widest vector). */
    size_t ws_tokens;
    float *x, *qkv, *ctx, *h1, *ffn;
    size_t ws_vec;
    float *vec_a, *vec_b;
} cpu_ctx;

/* ---- weights ------------------------------------------------------------ */

/* Appends tensor t, which must hold exactly n elements, to dst as fp32. */
static emb_status load_into(float *dst, const emb_tensor *t, size_t n, emb_error *err) {
    if (!t->data || emb_tensor_numel(t) != n)
        return emb_fail(err, EMB_ERR_FORMAT, "cpu backend: tensor %s has %zu elements, expected %zu",
                        t->name ? t->name : "(missing)", t->data ? emb_tensor_numel(t) : 0, n);
    emb_tensor_to_f32(t, dst, n);
    return EMB_OK;
}

static emb_status load_new(float **dst, const emb_tensor *t, size_t n, emb_error *err) {
    size_t bytes;
    if (!emb_mul_ok(n, sizeof(float), &bytes) || !(*dst = malloc(bytes ? bytes : 1)))
        return emb_fail(err, EMB_ERR_NOMEM, "cpu backend: allocating %zu floats for %s", n,
                        t->name ? t->name : "(missing)");
    return load_into(*dst, t, n, err);
}

/* Loads an [n, k] weight and packs it for cpu_gemm; the fp32 copy is only
 * a staging buffer. */
static emb_status load_packed(cpu_gemm_weight *dst, const emb_tensor *t, size_t n, size_t k,
                              emb_error *err) {
    float *w = NULL;
    emb_status st = load_new(&w, t, n * k, err);
    if (!st && cpu_gemm_weight_pack(dst, w, (int)n, (int)k) != 0)
        st = emb_fail(err, EMB_ERR_NOMEM, "cpu backend: packing %s",
                      t->name ? t->name : "(missing)");
    free(w);
    return st;
}

static emb_status load_layer(cpu_layer *L, const emb_bert_layer *src, size_t h, size_t inter,
                             emb_error *err) {
    emb_status st;
    /* Q, K and V stacked into one [3h, h] matrix: one GEMM yields the
     * [tokens, 3, heads, head_dim] layout cpu_attention_varlen reads. */
    float *wqkv = malloc(3 * h * h * sizeof(float));
    if (!wqkv || !(L->bqkv = malloc(3 * h * sizeof(float)))) {
        free(wqkv);
        return emb_fail(err, EMB_ERR_NOMEM, "cpu backend: allocating QKV weights");
    }
    if ((st = load_into(wqkv, &src->wq, h * h, err)) ||
        (st = load_into(wqkv + h * h, &src->wk, h * h, err)) ||
        (st = load_into(wqkv + 2 * h * h, &src->wv, h * h, err))) {
        free(wqkv);
        return st;
    }
    const int packed = cpu_gemm_weight_pack(&L->wqkv, wqkv, (int)(3 * h), (int)h);
    free(wqkv);
    if (packed != 0) return emb_fail(err, EMB_ERR_NOMEM, "cpu backend: packing QKV weights");
    if ((st = load_into(L->bqkv, &src->bq, h, err)) ||
        (st = load_into(L->bqkv + h, &src->bk, h, err)) ||
        (st = load_into(L->bqkv + 2 * h, &src->bv, h, err)))
        return st;
    if ((st = load_packed(&L->wo, &src->wo, h, h, err)) || (st = load_new(&L->bo, &src->bo, h, err)) ||
        (st = load_new(&L->ln1_g, &src->ln_attn_g, h, err)) ||
        (st = load_new(&L->ln1_b, &src->ln_attn_b, h, err)) ||
        (st = load_packed(&L->w_in, &src->w_in, inter, h, err)) ||
        (st = load_new(&L->b_in, &src->b_in, inter, err)) ||
        (st = load_packed(&L->w_out, &src->w_out, h, inter, err)) ||
        (st = load_new(&L->b_out, &src->b_out, h, err)) ||
        (st = load_new(&L->ln2_g, &src->ln_ffn_g, h, err)) ||
        (st = load_new(&L->ln2_b, &src->ln_ffn_b, h, err)))
        return st;
    return EMB_OK;
}

static void free_layer(cpu_layer *L) {
    cpu_gemm_weight_free(&L->wqkv), cpu_gemm_weight_free(&L->wo);
    cpu_gemm_weight_free(&L->w_in), cpu_gemm_weight_free(&L->w_out);
    float *all[] = {L->bqkv, L->bo, L->b_in, L->b_out, L->ln1_g, L->ln1_b, L->ln2_g, L->ln2_b};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) free(all[i]);
}

static void cpu_destroy(emb_backend *be) {
    if (!be) return;
    cpu_ctx *c = be->ctx;
    if (c) {
        free(c->word), free(c->position), free(c->token_type), free(c->ln_g), free(c->ln_b);
        if (c->layers)
            for (int i = 0; i < c->cfg.layers; i++) free_layer(&c->layers[i]);
        free(c->layers);
        if (c->dense)
            for (int i = 0; i < c->n_dense; i++) cpu_gemm_weight_free(&c->dense[i].w), free(c->dense[i].b);
        free(c->dense);
        free(c->x), free(c->qkv), free(c->ctx), free(c->h1), free(c->ffn);
        free(c->vec_a), free(c->vec_b);
        free(c);
    }
    free(be);
}

static emb_status load_weights(cpu_ctx *c, const emb_model_files *mf, emb_error *err) {
    const emb_bert_config *cfg = &c->cfg;
    const size_t h = (size_t)cfg->hidden, inter = (size_t)cfg->intermediate;
    emb_status st;
    if ((st = load_new(&c->word, &mf->w.word, (size_t)cfg->vocab_size * h, err)) ||
        (st = load_new(&c->position, &mf->w.position, (size_t)cfg->max_position * h, err)) ||
        (st = load_new(&c->token_type, &mf->w.token_type, (size_t)cfg->type_vocab_size * h, err)) ||
        (st = load_new(&c->ln_g, &mf->w.ln_g, h, err)) || (st = load_new(&c->ln_b, &mf->w.ln_b, h, err)))
        return st;
    if (!(c->layers = calloc((size_t)cfg->layers, sizeof *c->layers)))
        return emb_fail(err, EMB_ERR_NOMEM, "cpu backend: allocating layers");
    for (int i = 0; i < cfg->layers; i++)
        if ((st = load_layer(&c->layers[i], &mf->w.layer[i], h, inter, err)))
            return emb_fail_prefix(err, "layer %d", i);

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

/* ---- workspace ---------------------------------------------------------- */

static emb_status grow(float **p, size_t n, emb_error *err) {
    size_t bytes;
    float *q;
    if (!emb_mul_ok(n, sizeof(float), &bytes) || !(q = realloc(*p, bytes ? bytes : 1)))
        return emb_fail(err, EMB_ERR_NOMEM, "cpu backend: workspace of %zu floats", n);
    *p = q;
    return EMB_OK;
}

static emb_status ensure_tokens(cpu_ctx *c, size_t tokens, emb_error *err) {
    if (tokens <= c->ws_tokens) return EMB_OK;
    const size_t h = (size_t)c->cfg.hidden, inter = (size_t)c->cfg.intermediate;
    size_t n_h, n_3h, n_i;
    if (!emb_mul_ok(tokens, h, &n_h) || !emb_mul_ok(n_h, 3, &n_3h) || !emb_mul_ok(tokens, inter, &n_i))
        return emb_fail(err, EMB_ERR_INVALID_ARG, "cpu backend: batch of %zu tokens too large",
                        tokens);
    emb_status st;
    if ((st = grow(&c->x, n_h, err)) || (st = grow(&c->qkv, n_3h, err)) ||
        (st = grow(&c->ctx, n_h, err)) || (st = grow(&c->h1, n_h, err)) ||
        (st = grow(&c->ffn, n_i, err)))
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
static emb_status check_batch(const cpu_ctx *c, const emb_batch *b, emb_error *err) {
    if (!b || b->nseq < 1 || !b->ids || !b->cu_seqlens)
        return emb_fail(err, EMB_ERR_INVALID_ARG, "cpu backend: empty or incomplete batch");
    if (b->cu_seqlens[0] != 0 || b->cu_seqlens[b->nseq] != b->total)
        return emb_fail(err, EMB_ERR_INVALID_ARG,
                        "cpu backend: cu_seqlens[0] = %d, cu_seqlens[%d] = %d, total = %d",
                        b->cu_seqlens[0], b->nseq, b->cu_seqlens[b->nseq], b->total);
    for (int s = 0; s < b->nseq; s++) {
        int len = b->cu_seqlens[s + 1] - b->cu_seqlens[s];
        if (len < 1 || len > c->cfg.max_position)
            return emb_fail(err, EMB_ERR_INVALID_ARG,
                            "cpu backend: sequence %d has %d tokens (1..%d allowed)", s, len,
                            c->cfg.max_position);
    }
    for (int t = 0; t < b->total; t++) {
        if (b->ids[t] < 0 || b->ids[t] >= c->cfg.vocab_size)
            return emb_fail(err, EMB_ERR_INVALID_ARG, "cpu backend: token %d has id %d (vocab %d)",
                            t, b->ids[t], c->cfg.vocab_size);
        if (b->type_ids && (b->type_ids[t] < 0 || b->type_ids[t] >= c->cfg.type_vocab_size))
            return emb_fail(err, EMB_ERR_INVALID_ARG, "cpu backend: token %d has type id %d",
                            t, b->type_ids[t]);
    }
    return EMB_OK;
}

/* One encoder layer, post-LayerNorm BERT: x <- LN(h1 + FFN(h1)) with
 * h1 = LN(x + Attn(x)). */
static void encoder_layer(cpu_ctx *c, const cpu_layer *L, const emb_batch *b) {
    const int T = b->total, H = c->cfg.hidden, inter = c->cfg.intermediate;
    const float eps = c->cfg.layer_norm_eps;
    const float scale = 1.0f / sqrtf((float)c->cfg.head_dim);

    /* Bias fused into the QKV GEMM, bias + activation into the FFN-in GEMM;
     * the other two biases ride the residual + LayerNorm pass. */
    cpu_gemm_linear(c->qkv, 3 * H, c->x, H, T, &L->wqkv, L->bqkv, EMB_ACT_IDENTITY, 0);
    cpu_attention_varlen(c->ctx, c->qkv, b->cu_seqlens, b->nseq, c->cfg.heads, c->cfg.head_dim,
                         scale, 0);
    cpu_gemm_linear(c->h1, H, c->ctx, H, T, &L->wo, NULL, EMB_ACT_IDENTITY, 0);
    cpu_bias_residual_layernorm(c->h1, L->bo, c->x, L->ln1_g, L->ln1_b, T, H, eps);

    cpu_gemm_linear(c->ffn, inter, c->h1, H, T, &L->w_in, L->b_in, c->cfg.hidden_act, 0);
    cpu_gemm_linear(c->x, H, c->ffn, inter, T, &L->w_out, NULL, EMB_ACT_IDENTITY, 0);
    cpu_bias_residual_layernorm(c->x, L->b_out, c->h1, L->ln2_g, L->ln2_b, T, H, eps);
}

/* Runs embeddings and the first `layers` encoder layers; result in c->x. */
static emb_status forward(cpu_ctx *c, const emb_batch *b, int layers, emb_error *err) {
    emb_status st;
    if ((st = check_batch(c, b, err))) return st;
    if (layers < 0 || layers > c->cfg.layers)
        return emb_fail(err, EMB_ERR_INVALID_ARG, "cpu backend: layer %d (model has %d)", layers,
                        c->cfg.layers);
    if ((st = ensure_tokens(c, (size_t)b->total, err))) return st;
    set_threads(c);

    cpu_embed_layernorm(c->x, b->ids, b->type_ids, b->cu_seqlens, b->nseq, c->word, c->position,
                        c->token_type, c->ln_g, c->ln_b, c->cfg.hidden, c->cfg.layer_norm_eps);
    for (int l = 0; l < layers; l++) encoder_layer(c, &c->layers[l], b);
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
    if (job->layer < 1 || job->layer > c->cfg.layers)
        return emb_fail(err, EMB_ERR_INVALID_ARG, "cpu backend: layer %d (model has %d)",
                        job->layer, c->cfg.layers);

    /* Widths along the way: pooled, then each Dense module's output. */
    int width = c->cfg.hidden * popcount(job->pooling_modes), widest = width;
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
    cpu_pool(v, c->x, b->cu_seqlens, b->nseq, c->cfg.hidden, job->pooling_modes, b->skip);
    width = c->cfg.hidden * popcount(job->pooling_modes);
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
    memcpy(out, c->x, (size_t)b->total * (size_t)c->cfg.hidden * sizeof *out);
    return EMB_OK;
}

emb_status emb_cpu_backend_create(const struct emb_model_files *mf, int threads, emb_backend **out,
                                  emb_error *err) {
    if (!mf || !out) return emb_fail(err, EMB_ERR_INVALID_ARG, "cpu backend: no model");
    *out = NULL;
    const emb_bert_config *cfg = &mf->cfg;
    if (cfg->hidden < 1 || cfg->heads < 1 || cfg->head_dim * cfg->heads != cfg->hidden ||
        cfg->layers < 1 || cfg->intermediate < 1 || !mf->w.layer)
        return emb_fail(err, EMB_ERR_UNSUPPORTED,
                        "cpu backend: hidden %d, heads %d, head_dim %d, layers %d", cfg->hidden,
                        cfg->heads, cfg->head_dim, cfg->layers);

    emb_backend *be = calloc(1, sizeof *be);
    cpu_ctx *c = calloc(1, sizeof *c);
    if (!be || !c) {
        free(be), free(c);
        return emb_fail(err, EMB_ERR_NOMEM, "cpu backend: allocating the backend");
    }
    be->name = "cpu";
    be->ctx = c;
    be->encode = cpu_encode;
    be->token_embeddings = cpu_token_embeddings;
    be->destroy = cpu_destroy;
    c->cfg = *cfg;
#ifdef _OPENMP
    c->threads = threads > 0 ? threads : omp_get_num_procs();
#else
    c->threads = threads > 0 ? threads : 1;
#endif

    emb_status st = load_weights(c, mf, err);
    if (st) {
        cpu_destroy(be);
        return emb_fail_prefix(err, "loading weights for the cpu backend");
    }
    *out = be;
    return EMB_OK;
}
