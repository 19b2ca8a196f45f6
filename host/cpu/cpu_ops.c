/*
 * The CPU backend's building blocks in plain fp32 (see cpu_ops.h). These are
 * the references the CUDA kernels are tested against, so each one is a
 * readable function over the packed layout (tokens of all sequences
 * concatenated, cu_seqlens prefix offsets) rather than a clever one; speed
 * comes from our own GEMM (cpu_gemm.c: packed panels, AVX-512/AVX2
 * micro-kernels), vector exp/erf (cpu_vmath.c) and OpenMP over independent
 * rows/heads.
 *
 * Threading: the big GEMMs (cpu_linear) thread themselves with OpenMP over
 * blocks of the output; attention runs one OpenMP loop over (sequence, query
 * block, head) items whose small GEMMs are serial. Elementwise and
 * normalization loops use OpenMP. The number of threads is set by the caller
 * (the CPU backend sets it from its `threads` argument).
 */
#include "cpu_ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_gemm.h"
#include "cpu_vmath.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* Rows shorter than this are not worth waking the thread pool for. */
#define PAR_MIN_ELEMS 16384

/* ---- normalization ---------------------------------------------------- */

/* LayerNorm of one row in place. Two passes with double accumulators: the
 * reference should be the most accurate thing in the project, and at
 * hidden <= 4096 the cost is noise next to the GEMMs. */
static void layernorm_row(float *x, const float *g, const float *b, int dim, float eps) {
    double sum = 0.0;
    for (int c = 0; c < dim; c++) sum += x[c];
    const double mean = sum / dim;
    double var = 0.0;
    for (int c = 0; c < dim; c++) {
        double d = x[c] - mean;
        var += d * d;
    }
    var /= dim; /* biased variance, like torch.nn.LayerNorm */
    const float m = (float)mean;
    const float rstd = (float)(1.0 / sqrt(var + (double)eps));
    for (int c = 0; c < dim; c++) x[c] = (x[c] - m) * rstd * g[c] + b[c];
}

/* Index of the sequence holding token t (cu_seqlens is sorted). */
static int seq_of(const int32_t *cu_seqlens, int nseq, int t) {
    int lo = 0, hi = nseq - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (cu_seqlens[mid] <= t) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

void cpu_embed_layernorm(float *out, const int32_t *ids, const int32_t *type_ids,
                         const int32_t *cu_seqlens, int nseq,
                         const float *word, const float *position, const float *token_type,
                         const float *g, const float *b, int hidden, float eps) {
    if (nseq <= 0) return;
    const int total = cu_seqlens[nseq];
    /* One flat loop over tokens (balanced whatever the sequence lengths);
     * positions restart at 0 in every sequence of a packed batch. */
#pragma omp parallel for schedule(static) if ((size_t)total * hidden >= PAR_MIN_ELEMS)
    for (int t = 0; t < total; t++) {
        const int p = t - cu_seqlens[seq_of(cu_seqlens, nseq, t)];
        const float *we = word + (size_t)ids[t] * hidden;
        const float *pe = position + (size_t)p * hidden;
        const float *te = token_type + (size_t)(type_ids ? type_ids[t] : 0) * hidden;
        float *o = out + (size_t)t * hidden;
        for (int c = 0; c < hidden; c++) o[c] = we[c] + pe[c] + te[c];
        layernorm_row(o, g, b, hidden, eps);
    }
}

void cpu_bias_residual_layernorm(float *x, const float *bias, const float *residual,
                                 const float *g, const float *b, int rows, int dim, float eps) {
#pragma omp parallel for schedule(static) if ((size_t)rows * dim >= PAR_MIN_ELEMS)
    for (int r = 0; r < rows; r++) {
        float *row = x + (size_t)r * dim;
        if (bias)
            for (int c = 0; c < dim; c++) row[c] += bias[c];
        if (residual) {
            const float *res = residual + (size_t)r * dim;
            for (int c = 0; c < dim; c++) row[c] += res[c];
        }
        layernorm_row(row, g, b, dim, eps);
    }
}

void cpu_rmsnorm(float *x, const float *residual, const float *g, int rows, int dim, float eps) {
#pragma omp parallel for schedule(static) if ((size_t)rows * dim >= PAR_MIN_ELEMS)
    for (int r = 0; r < rows; r++) {
        float *row = x + (size_t)r * dim;
        if (residual) {
            const float *res = residual + (size_t)r * dim;
            for (int c = 0; c < dim; c++) row[c] += res[c];
        }
        double ss = 0.0;
        for (int c = 0; c < dim; c++) ss += (double)row[c] * row[c];
        const float rstd = (float)(1.0 / sqrt(ss / dim + (double)eps));
        for (int c = 0; c < dim; c++) row[c] = row[c] * rstd * g[c];
    }
}

void cpu_l2_normalize(float *x, int rows, int dim) {
    /* F.normalize: x / max(||x||, 1e-12), so an all-zero row stays zero. */
    for (int r = 0; r < rows; r++) {
        float *row = x + (size_t)r * dim;
        double ss = 0.0;
        for (int c = 0; c < dim; c++) ss += (double)row[c] * row[c];
        double n = sqrt(ss);
        const float inv = (float)(1.0 / (n > 1e-12 ? n : 1e-12));
        for (int c = 0; c < dim; c++) row[c] *= inv;
    }
}

/* ---- elementwise ------------------------------------------------------ */

void cpu_bias_act(float *x, const float *bias, int rows, int cols, emb_act act) {
#pragma omp parallel for schedule(static) if ((size_t)rows * cols >= PAR_MIN_ELEMS)
    for (int r = 0; r < rows; r++) cpu_vm_bias_act(x + (size_t)r * cols, bias, cols, act);
}

void cpu_gated_act(float *out, const float *x, int rows, int cols, emb_act act) {
#pragma omp parallel for schedule(static) if ((size_t)rows * cols >= PAR_MIN_ELEMS)
    for (int r = 0; r < rows; r++) {
        const float *gate = x + (size_t)r * 2 * cols, *up = gate + cols;
        float *o = out + (size_t)r * cols;
        memcpy(o, gate, (size_t)cols * sizeof *o);
        cpu_vm_bias_act(o, NULL, cols, act);
        for (int c = 0; c < cols; c++) o[c] *= up[c];
    }
}

/* ---- GEMM ------------------------------------------------------------- */

void cpu_linear(float *y, const float *x, const float *w, const float *b,
                int rows, int in, int out) {
    if (rows <= 0 || out <= 0) return;
    /* The backend packs its weights once (cpu_gemm_weight_pack) and calls
     * cpu_gemm_linear; this unpacked form packs per call. */
    cpu_gemm_weight pw;
    if (cpu_gemm_weight_pack(&pw, w, out, in) == 0) {
        cpu_gemm_linear(y, out, x, in, rows, &pw, b, EMB_ACT_IDENTITY, 0);
        cpu_gemm_weight_free(&pw);
        return;
    }
    /* Out of memory for the panels: the same sums, unblocked. */
    for (int r = 0; r < rows; r++)
        for (int o = 0; o < out; o++) {
            float acc = 0.0f;
            for (int i = 0; i < in; i++) acc += x[(size_t)r * in + i] * w[(size_t)o * in + i];
            y[(size_t)r * out + o] = acc + (b ? b[o] : 0.0f);
        }
}

/* ---- attention -------------------------------------------------------- */

/* Query rows per work item: bounds the score buffer to QBLOCK x seqlen per
 * thread (2 MiB at 4096 tokens) and gives OpenMP (sequence, head, query
 * block) items to balance; large enough that sequences up to BERT's 512
 * positions are cut in few blocks, each of which transposes K again. */
#define QBLOCK 128

/* Grow-only per-thread score buffer: the OpenMP pool's threads persist, so
 * after the first batch of the longest length this never allocates again. */
static _Thread_local float *tl_scores;
static _Thread_local size_t tl_scores_cap;

static float *scores_buffer(size_t n) {
    if (n > tl_scores_cap) {
        float *p = realloc(tl_scores, n * sizeof *p);
        if (!p) return NULL;
        tl_scores = p;
        tl_scores_cap = n;
        cpu_tl_track(CPU_TL_SCORES, p);
    }
    return tl_scores;
}

/* In-place softmax of one score row over its first n entries. */
static void softmax_row(float *s, int n) {
    const float mx = cpu_vm_max(s, n);
    const float sum = cpu_vm_exp_sub_sum(s, n, mx);
    cpu_vm_scale(s, n, 1.0f / sum);
}

/* Keys visible to query i of a sequence of len tokens: [*lo, *hi). Never
 * empty: the query sees itself whatever the window. */
static void visible_keys(int i, int len, int wl, int wr, int *lo, int *hi) {
    *lo = wl < 0 || i - wl < 0 ? 0 : i - wl;
    *hi = wr < 0 || i + wr + 1 > len ? len : i + wr + 1;
}

/* One (sequence, head, query block): S = scale Q K^T over the keys any query
 * of the block sees, bias, softcap, softmax per row over its own window,
 * O = P V. */
static void attention_block(float *out, const float *qkv, int start, int len, int q0, int nq,
                            int h, const cpu_attn_params *p) {
    const int hd = p->head_dim, group = p->heads / p->kv_heads, kvh = h / group;
    const int ld_qkv = (p->heads + 2 * p->kv_heads) * hd, ld_out = p->heads * hd;
    const float *q = qkv + (size_t)(start + q0) * ld_qkv + (size_t)h * hd;
    const float *k = qkv + (size_t)start * ld_qkv + (size_t)(p->heads + kvh) * hd;
    const float *v = qkv + (size_t)start * ld_qkv + (size_t)(p->heads + p->kv_heads + kvh) * hd;
    float *o = out + (size_t)(start + q0) * ld_out + (size_t)h * hd;
    /* Key range of the whole block: from the first query's window start to
     * the last query's window end (the windows slide monotonically). */
    int k_lo, k_hi, unused;
    visible_keys(q0, len, p->window_left, p->window_right, &k_lo, &unused);
    visible_keys(q0 + nq - 1, len, p->window_left, p->window_right, &unused, &k_hi);
    const int nk = k_hi - k_lo;

    float *s = scores_buffer((size_t)nq * nk);
    if (!s) {
        /* No way to report from here: poison the output so it cannot pass
         * for a result (every test and the parity check would catch it). */
        for (int i = 0; i < nq; i++)
            for (int d = 0; d < hd; d++) o[(size_t)i * ld_out + d] = NAN;
        return;
    }
    cpu_gemm(1, nq, nk, hd, p->scale, q, ld_qkv, k + (size_t)k_lo * ld_qkv, ld_qkv, 0.0f, s, nk);
    const float *bias_h = p->rel_bias ? p->rel_bias + (size_t)h * (2 * p->rel_span - 1) : NULL;
    for (int r = 0; r < nq; r++) {
        const int i = q0 + r;
        float *row = s + (size_t)r * nk;
        int lo, hi;
        visible_keys(i, len, p->window_left, p->window_right, &lo, &hi);
        for (int j = k_lo; j < lo; j++) row[j - k_lo] = 0.0f;
        for (int j = hi; j < k_hi; j++) row[j - k_lo] = 0.0f;
        float *vis = row + (lo - k_lo);
        if (bias_h) {
            const float *bb = bias_h + (p->rel_span - 1 - i);
            for (int j = lo; j < hi; j++) vis[j - lo] += bb[j];
        }
        if (p->softcap > 0.0f) {
            const float inv = 1.0f / p->softcap;
            for (int j = 0; j < hi - lo; j++) vis[j] = p->softcap * tanhf(vis[j] * inv);
        }
        softmax_row(vis, hi - lo);
    }
    cpu_gemm(0, nq, hd, nk, 1.0f, s, nk, v + (size_t)k_lo * ld_qkv, ld_qkv, 0.0f, o, ld_out);
}

void cpu_attention(float *out, const float *qkv, const int32_t *cu_seqlens, int nseq,
                   const cpu_attn_params *p) {
    if (p->heads < 1 || p->kv_heads < 1 || p->heads % p->kv_heads) return;
    /* Work items: every (sequence, query block, head). Counted up front so
     * one flat OpenMP loop can balance long and short sequences. */
    long items = 0;
    for (int s = 0; s < nseq; s++) {
        int len = cu_seqlens[s + 1] - cu_seqlens[s];
        items += (long)((len + QBLOCK - 1) / QBLOCK) * p->heads;
    }
    if (items == 0) return;

#pragma omp parallel
    {
        /* Each thread walks the item list with its own cursor: items are
         * numbered in (sequence, block, head) order and taken round-robin. */
        int nth = 1, tid = 0;
#ifdef _OPENMP
        nth = omp_get_num_threads();
        tid = omp_get_thread_num();
#endif
        long item = 0;
        for (int s = 0; s < nseq; s++) {
            const int start = cu_seqlens[s], len = cu_seqlens[s + 1] - start;
            for (int q0 = 0; q0 < len; q0 += QBLOCK) {
                const int nq = len - q0 < QBLOCK ? len - q0 : QBLOCK;
                for (int h = 0; h < p->heads; h++, item++) {
                    if (item % nth != tid) continue;
                    attention_block(out, qkv, start, len, q0, nq, h, p);
                }
            }
        }
    }
}

void cpu_attention_varlen(float *out, const float *qkv, const int32_t *cu_seqlens, int nseq,
                          int heads, int head_dim, float scale, int causal) {
    const cpu_attn_params p = {.heads = heads, .kv_heads = heads, .head_dim = head_dim,
                               .scale = scale, .window_left = -1,
                               .window_right = causal ? 0 : -1};
    cpu_attention(out, qkv, cu_seqlens, nseq, &p);
}

/* ---- rotary ----------------------------------------------------------- */

void cpu_rotary(float *qkv, const int32_t *cu_seqlens, int nseq, int heads, int kv_heads,
                int head_dim, int rotary_dim, float theta, const float *inv_freq_table) {
    if (nseq <= 0 || rotary_dim < 2 || rotary_dim > head_dim || rotary_dim > 512) return;
    const int half = rotary_dim / 2, nrot = heads + kv_heads;
    const int total = cu_seqlens[nseq];
    const size_t ld = (size_t)(heads + 2 * kv_heads) * head_dim;
    /* transformers: inv_freq = 1 / base ** (arange(0, dim, 2).float() / dim),
     * all float32. */
    float inv_freq[256];
    for (int d = 0; d < half; d++) {
        const float e = (float)(2 * d) / (float)rotary_dim;
        inv_freq[d] = inv_freq_table ? inv_freq_table[d] : 1.0f / powf(theta, e);
    }
#pragma omp parallel for schedule(static) if ((size_t)total * nrot * head_dim >= PAR_MIN_ELEMS)
    for (int t = 0; t < total; t++) {
        const float pos = (float)(t - cu_seqlens[seq_of(cu_seqlens, nseq, t)]);
        float cs[256], sn[256];
        for (int d = 0; d < half; d++) {
            const float ang = pos * inv_freq[d];
            cs[d] = cosf(ang);
            sn[d] = sinf(ang);
        }
        /* The Q heads then the K heads are adjacent: nrot heads from column 0. */
        for (int h = 0; h < nrot; h++) {
            float *x = qkv + (size_t)t * ld + (size_t)h * head_dim;
            for (int d = 0; d < half; d++) {
                const float x1 = x[d], x2 = x[d + half];
                /* q * cos + rotate_half(q) * sin, each product rounded. */
                const float a1 = x1 * cs[d], b1 = -x2 * sn[d];
                const float a2 = x2 * cs[d], b2 = x1 * sn[d];
                x[d] = a1 + b1;
                x[d + half] = a2 + b2;
            }
        }
    }
}

void cpu_qk_norm_rotary(float *qkv, const int32_t *cu_seqlens, int nseq, const cpu_qk_params *p) {
    if (nseq <= 0) return;
    const int total = cu_seqlens[nseq], heads = p->heads, kv = p->kv_heads, hd = p->head_dim;
    const size_t ld = (size_t)(heads + 2 * kv) * hd;
    if (p->bias || p->q_g || p->k_g) {
#pragma omp parallel for schedule(static) if ((size_t)total * ld >= PAR_MIN_ELEMS)
        for (int t = 0; t < total; t++) {
            float *row = qkv + (size_t)t * ld;
            if (p->bias)
                for (size_t c = 0; c < ld; c++) row[c] += p->bias[c];
            if (p->q_g) cpu_rmsnorm(row, NULL, p->q_g, heads, hd, p->q_eps);
            if (p->k_g) cpu_rmsnorm(row + (size_t)heads * hd, NULL, p->k_g, kv, hd, p->k_eps);
        }
    }
    if (p->rotary_dim > 0)
        cpu_rotary(qkv, cu_seqlens, nseq, heads, kv, hd, p->rotary_dim, p->theta, p->inv_freq);
}

/* ---- pooling ---------------------------------------------------------- */

/* Pooling follows sentence-transformers 6.x Pooling._forward_padded with the
 * prompt tokens' attention mask zeroed (include_prompt = false), which for a
 * sequence of len tokens of which the first k are excluded means:
 *   cls          the first non-excluded token (token 0 when all are excluded)
 *   max          max over the kept tokens; -inf when none is kept
 *   mean         sum / max(count, 1e-9)      (0 when none is kept)
 *   mean_sqrt    sum / sqrt(max(count, 1e-9))
 *   weightedmean weights are 1-based positions in the sequence (prompt
 *                positions count), sum(w h) / max(sum(w), 1e-9)
 *   lasttoken    the last kept token; zeros when none is kept */

static void pool_cls(float *o, const float *h, int len, int k, int dim) {
    if (len == 0) {
        memset(o, 0, (size_t)dim * sizeof *o);
        return;
    }
    memcpy(o, h + (size_t)(k < len ? k : 0) * dim, (size_t)dim * sizeof *o);
}

static void pool_max(float *o, const float *h, int len, int k, int dim) {
    for (int c = 0; c < dim; c++) o[c] = -INFINITY;
    for (int t = k; t < len; t++) {
        const float *row = h + (size_t)t * dim;
        for (int c = 0; c < dim; c++) o[c] = row[c] > o[c] ? row[c] : o[c];
    }
}

/* Weighted column sums of the kept tokens; returns the total weight. */
static double pool_sum(float *o, const float *h, int len, int k, int dim, int weighted) {
    memset(o, 0, (size_t)dim * sizeof *o);
    double wsum = 0.0;
    for (int t = k; t < len; t++) {
        const float *row = h + (size_t)t * dim;
        const float w = weighted ? (float)(t + 1) : 1.0f;
        for (int c = 0; c < dim; c++) o[c] += w * row[c];
        wsum += w;
    }
    return wsum;
}

static void scale_row(float *o, int dim, double denom) {
    const float inv = (float)(1.0 / denom);
    for (int c = 0; c < dim; c++) o[c] *= inv;
}

static void pool_last(float *o, const float *h, int len, int k, int dim) {
    if (len > k) memcpy(o, h + (size_t)(len - 1) * dim, (size_t)dim * sizeof *o);
    else memset(o, 0, (size_t)dim * sizeof *o);
}

void cpu_pool(float *out, const float *hidden, const int32_t *cu_seqlens, int nseq, int dim,
              int modes, const int32_t *skip) {
    int nmodes = 0;
    for (int m = modes; m; m &= m - 1) nmodes++;
    const size_t width = (size_t)dim * nmodes;

#pragma omp parallel for schedule(dynamic, 1) if (nseq > 1)
    for (int s = 0; s < nseq; s++) {
        const int start = cu_seqlens[s], len = cu_seqlens[s + 1] - start;
        int k = skip ? skip[s] : 0;
        if (k < 0) k = 0;
        if (k > len) k = len;
        const float *h = hidden + (size_t)start * dim;
        float *o = out + (size_t)s * width;
        const double kept = len - k;

        if (modes & EMB_POOL_CLS) {
            pool_cls(o, h, len, k, dim);
            o += dim;
        }
        if (modes & EMB_POOL_MAX) {
            pool_max(o, h, len, k, dim);
            o += dim;
        }
        if (modes & EMB_POOL_MEAN) {
            pool_sum(o, h, len, k, dim, 0);
            scale_row(o, dim, kept > 1e-9 ? kept : 1e-9);
            o += dim;
        }
        if (modes & EMB_POOL_MEAN_SQRT_LEN) {
            pool_sum(o, h, len, k, dim, 0);
            scale_row(o, dim, sqrt(kept > 1e-9 ? kept : 1e-9));
            o += dim;
        }
        if (modes & EMB_POOL_WEIGHTED_MEAN) {
            double w = pool_sum(o, h, len, k, dim, 1);
            scale_row(o, dim, w > 1e-9 ? w : 1e-9);
            o += dim;
        }
        if (modes & EMB_POOL_LAST_TOKEN) {
            pool_last(o, h, len, k, dim);
            o += dim;
        }
    }
}
