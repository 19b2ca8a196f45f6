/*
 * The CUDA kernels' C interface: one extern "C" launcher per kernel, callable
 * from the C11 host code (host/cuda/). Launchers check their arguments, queue
 * the kernel on `stream` and return the launch status; they never allocate,
 * synchronize or touch host memory. Under the simulator (tests/sim/) the very
 * same .cu files are compiled by the host C++ compiler with -DEMBEDC_SIM.
 *
 * Layouts (all row-major, tokens of all sequences packed back to back):
 *   hidden states   [total, hidden]            element type `dt`
 *   fused QKV       [total, heads + 2*kv_heads, head_dim] (one GEMM with
 *                   W = [Wq; Wk; Wv], so token t's Q, K, V heads sit at row
 *                   t one after the other; kv_heads == heads is [total, 3,
 *                   heads, head_dim]; identical to cpu_attention)
 *   attention out   [total, heads, head_dim]
 *   cu_seqlens      int32 [nseq + 1], prefix offsets, cu_seqlens[0] == 0
 *   pooled output   float [nseq, out_dim]
 * Each kernel's CPU twin is the function of host/cpu/cpu_ops.h named in its comment.
 */
#ifndef EMBEDC_KERNELS_H
#define EMBEDC_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Element type of device activations and weights. */
typedef enum { EMB_KDT_F32 = 0, EMB_KDT_F16 = 1, EMB_KDT_BF16 = 2 } emb_kdtype;

/* Activation codes: the same values as emb_act in host/model/model.h (kept in sync
 * by a static assert in host/cuda/), repeated here so kernels see no host header. */
enum {
    EMB_KACT_IDENTITY = 0,
    EMB_KACT_GELU = 1,       /* exact erf form */
    EMB_KACT_GELU_TANH = 2,
    EMB_KACT_RELU = 3,
    EMB_KACT_SILU = 4,
    EMB_KACT_TANH = 5,
    EMB_KACT_SIGMOID = 6
};

/* Output quantization of the pooling kernel. */
enum {
    EMB_KQUANT_NONE = 0,
    EMB_KQUANT_INT8 = 1,     /* int8 per row: q = round(x / scale), scale = max|x| / 127 */
    EMB_KQUANT_BINARY = 2    /* packed sign bits, numpy.packbits order (MSB first), x > 0 -> 1 */
};

/* Largest row width the norm kernels accept (rows are staged in shared memory). */
#define EMB_KERNEL_MAX_NORM_DIM 8192

/* --- embed.cu -------------------------------------------------------------
 * out[t] = LayerNorm(word[ids[t]] + position[t - start(seq(t))] + token_type[type_ids[t]])
 * Twin: cpu_embed_layernorm. type_ids or token_type may be NULL (type 0 / none). */
cudaError_t emb_launch_embed_layernorm(void *out, emb_kdtype dt, const int32_t *ids,
                                       const int32_t *type_ids, const int32_t *cu_seqlens,
                                       int nseq, int total, const void *word,
                                       const void *position, const void *token_type,
                                       const void *g, const void *b, int hidden, float eps,
                                       cudaStream_t stream);

/* Norm kinds of emb_launch_embed (an RMSNorm with weight (1 + w) is RMS with
 * the weight pre-added on the host). */
enum { EMB_KNORM_NONE = 0, EMB_KNORM_LAYER = 1, EMB_KNORM_RMS = 2 };

/* out[t] = norm(word[ids[t]] * scale + position[pos_ids[t]] + token_type[type_ids[t]])
 * with pos_ids computed by the host (any position rule); position, token_type
 * may be NULL (none), type_ids NULL (type 0). norm: EMB_KNORM_*; g is needed
 * unless NONE, b (LayerNorm bias) may be NULL. Twin: the CPU backend's embed
 * (word * scale + position + type, then cpu_bias_residual_layernorm / cpu_rmsnorm). */
cudaError_t emb_launch_embed(void *out, emb_kdtype dt, const int32_t *ids, const int32_t *type_ids,
                             const int32_t *pos_ids, int total, const void *word, float scale,
                             const void *position, const void *token_type, int norm,
                             const void *g, const void *b, int hidden, float eps,
                             cudaStream_t stream);

/* --- norm.cu --------------------------------------------------------------
 * out[i] = LayerNorm(x[i] + bias + residual[i]) * g + b, statistics in fp32.
 * Twin: cpu_bias_residual_layernorm. bias/residual/b may be NULL; out may alias x. */
cudaError_t emb_launch_bias_residual_layernorm(void *out, emb_kdtype dt, const void *x,
                                               const void *bias, const void *residual,
                                               const void *g, const void *b, int rows, int dim,
                                               float eps, cudaStream_t stream);

/* out[i] = RMSNorm(x[i] + residual[i]) * g. Twin: cpu_rmsnorm. residual may be NULL;
 * out may alias x. */
cudaError_t emb_launch_rmsnorm(void *out, emb_kdtype dt, const void *x, const void *residual,
                               const void *g, int rows, int dim, float eps,
                               cudaStream_t stream);

/* Gemma's sandwich step in one pass over rows of y and h: y' = RMSNorm(y) *
 * g_post, h' = h + y', and when g_next, next = RMSNorm(h') * g_next; every
 * step rounded to dt where emb_launch_rmsnorm, emb_launch_add and
 * emb_launch_rmsnorm would store it (the same result, bit for bit, on
 * aligned rows). h' goes to h_out (may alias h; NULL: not stored, for a next
 * that overwrites h). next may alias h; next and g_next are both NULL or
 * both not. Twin: cpu_rmsnorm, an add, cpu_rmsnorm. */
cudaError_t emb_launch_sandwich_norm(void *h_out, void *next, emb_kdtype dt, const void *y,
                                     const void *h, const void *g_post, float eps_post,
                                     const void *g_next, float eps_next, int rows, int dim,
                                     cudaStream_t stream);

/* --- act.cu ---------------------------------------------------------------
 * x[r][c] = act(x[r][c] + bias[c]) in place (bias may be NULL). Twin: cpu_bias_act. */
cudaError_t emb_launch_bias_act(void *x, emb_kdtype dt, const void *bias, int rows, int cols,
                                int act, cudaStream_t stream);

/* out[r][c] = act(x[r][c]) * x[r][cols + c], x is [rows, 2*cols]. Twin: cpu_gated_act. */
cudaError_t emb_launch_gated_act(void *out, emb_kdtype dt, const void *x, int rows, int cols,
                                 int act, cudaStream_t stream);

/* x[i] += y[i] for n elements (n even). */
cudaError_t emb_launch_add(void *x, emb_kdtype dt, const void *y, size_t n, cudaStream_t stream);

/* --- attention.cu ---------------------------------------------------------
 * Varlen fused attention (FlashAttention-2 style, online softmax in fp32,
 * tensor cores: mma.sync, or wgmma on sm_90a, see impl) with grouped-query heads. qkv: [total, (heads +
 * 2*kv_heads) * head_dim], per token the Q heads, then the K heads, then the V
 * heads (kv_heads == heads: [total, 3, heads, head_dim]); out: [total, heads *
 * head_dim]. Query head h uses KV head h / (heads / kv_heads), read in place.
 * Key j (position in its sequence) is visible to query i iff
 *   (window_left < 0 || j >= i - window_left) && (window_right < 0 || j <= i + window_right)
 * (causal: right = 0; full: both -1; symmetric local: both = w; Mistral-style
 * sliding: left = w - 1, right = 0); key tiles outside every window of a
 * query tile are skipped, not only masked. logit = (q . k) * scale (scale > 0 and finite), then
 * + rel_bias[h * (2*rel_span - 1) + (j - i + rel_span - 1)] when rel_bias (a
 * device fp32 table; rel_span >= max_seqlen), then softcap * tanh(logit /
 * softcap) when softcap > 0. q_bias (NULL: none; [heads * head_dim] in dt) is
 * added to every query before Q K^T (fp32 sum rounded to dt, as a separate
 * bias pass over qkv would store it): a QKV bias whose K part cancels in the
 * softmax and whose V part the caller folds into the output projection's
 * bias needs no pass of its own. dt is F16 or BF16; head_dim 16, 32, 64, 80,
 * 96, 128 or 256; heads a multiple of kv_heads. Twin: cpu_attention (with the
 * bias added to the Q heads first). */
typedef enum {
    EMB_KATTN_MMA = 0,    /* mma.sync tiles, sm_80 and later (the default) */
    EMB_KATTN_WGMMA = 1,  /* warpgroup MMA, double-buffered K/V: sm_90a code only */
} emb_kattn_impl;
typedef struct {
    int heads, kv_heads, head_dim;
    float scale;
    int window_left, window_right;
    float softcap;
    const float *rel_bias;
    int rel_span;
    emb_kattn_impl impl; /* EMB_KATTN_WGMMA only where emb_launch_wgmma_probe says 1 */
    const void *q_bias;  /* [heads * head_dim] in dt, or NULL */
} emb_kattn_params;

cudaError_t emb_launch_attention(void *out, emb_kdtype dt, const void *qkv,
                                 const int32_t *cu_seqlens, int nseq, int max_seqlen,
                                 const emb_kattn_params *p, cudaStream_t stream);
/* Queries per CTA of emb_launch_attention: its grid depends on max_seqlen
 * only through the count of these tiles (so any max_seqlen up to the next
 * multiple launches the same work). */
#define EMB_KATTN_QUERY_TILE 64

/* Writes to the device int *d_flag 1 when the current device runs this
 * build's sm_90a code (a Hopper GPU, and kernels built for sm_90a: what
 * EMB_KATTN_WGMMA needs), else 0. One single-thread launch. */
cudaError_t emb_launch_wgmma_probe(int *d_flag, cudaStream_t stream);

/* emb_launch_attention with kv_heads == heads, no bias or softcap, full
 * (causal == 0) or causal. Twin: cpu_attention_varlen. */
cudaError_t emb_launch_attention_varlen(void *out, emb_kdtype dt, const void *qkv,
                                        const int32_t *cu_seqlens, int nseq, int max_seqlen,
                                        int heads, int head_dim, float scale, int causal,
                                        cudaStream_t stream);

/* --- rotary.cu ------------------------------------------------------------
 * The QKV epilogue, in place on qkv (layout of emb_launch_attention), one
 * pass after the QKV GEMM: first + bias ([(heads + 2 kv_heads) head_dim] in
 * `dt`, over Q, K and V heads) when given, then on the Q and K heads the
 * per-head RMS norms when given (q_g for the Q heads, k_g for the K heads,
 * each [head_dim] in `dt` with Gemma's 1 + w pre-added: x / sqrt(mean(x^2)
 * + eps) * g over head_dim, in fp32; NULL: no norm on that block), then
 * rotary when rotary_dim > 0: the position of token t is t - start(seq(t));
 * the first rotary_dim dims of each head are rotated with the rotate_half
 * pairing (d, d + rotary_dim/2), inv_freq[d] = the device fp32 table
 * inv_freq when given (a scaled rope, computed on the host), else 1 /
 * theta^((float)(2d) / rotary_dim); angle = (float)pos * inv_freq[d], in
 * fp32. rotary_dim even, <= head_dim <= EMB_KERNEL_MAX_HEAD_DIM (head_dim
 * even). The biased, normalized head is rotated in fp32 and rounded once.
 * Twin: cpu_qk_norm_rotary. */
#define EMB_KERNEL_MAX_HEAD_DIM 256
typedef struct {
    int heads, kv_heads, head_dim;
    const void *bias;          /* [(heads + 2 kv_heads) head_dim] in dt, or NULL */
    const void *q_g, *k_g;     /* [head_dim] in dt, or NULL */
    float q_eps, k_eps;
    int rotary_dim;
    float theta;
    const float *inv_freq;     /* device fp32 [rotary_dim / 2], or NULL */
} emb_kqk_params;
cudaError_t emb_launch_qk_norm_rotary(void *qkv, emb_kdtype dt, const int32_t *cu_seqlens, int nseq,
                                      int total, const emb_kqk_params *p, cudaStream_t stream);

/* --- pool.cu --------------------------------------------------------------
 * Segmented pooling, one CTA per sequence: hidden [total, dim] -> the
 * concatenation of the `modes` (cls, max, mean, mean_sqrt_len, weightedmean,
 * lasttoken; width dim * popcount(modes)), cut to out_dim columns (Matryoshka;
 * out_dim <= dim * popcount(modes)), L2-normalized over those columns when
 * `normalize`, written as fp32 to out [nseq, out_dim]. skip[s] (may be NULL)
 * leading tokens are excluded from every mode except cls. When quant is not
 * NONE the quantized row also goes to qout (int8: [nseq, out_dim] int8 and
 * qscale[nseq]; binary: [nseq, ceil(out_dim / 8)] bytes).
 * Twin: cpu_pool (+ cpu_l2_normalize). */
cudaError_t emb_launch_pool(float *out, const void *hidden, emb_kdtype dt,
                            const int32_t *cu_seqlens, const int32_t *skip, int nseq, int dim,
                            int modes, int out_dim, int normalize, int quant, void *qout,
                            float *qscale, cudaStream_t stream);

/* The same tail for rows already pooled (after Dense modules): out[r] = the
 * first out_dim columns of x[r] (x is [rows, in_dim] fp32), L2-normalized when
 * `normalize`, quantized to qout as above. out may alias x only when
 * out_dim == in_dim. Twin: cpu_l2_normalize. */
cudaError_t emb_launch_finalize(float *out, const float *x, int rows, int in_dim, int out_dim,
                                int normalize, int quant, void *qout, float *qscale,
                                cudaStream_t stream);

/* --- convert.cu -----------------------------------------------------------
 * dst[i] = (float) src[i] for n elements (device hidden states back to fp32). */
cudaError_t emb_launch_to_f32(float *dst, const void *src, emb_kdtype dt, size_t n,
                              cudaStream_t stream);

/* --- static_pool.cu -------------------------------------------------------
 * Static tables: for each packed sequence s, the rows table[mapping ? mapping[id] : id]
 * ([rows, dim] fp32) of its ids, scaled by weights[id] when given, pooled by
 * max / mean / sum (modes: EMB_POOL_MAX 2, EMB_POOL_MEAN 4, EMB_POOL_SUM 64,
 * concatenated in that order; an empty sequence gives zeros; groups, may be
 * NULL: groups[t] = k > 1 makes ids t..t+k-1 one word, their rows averaged), the first out_dim
 * columns kept and L2-normalized when asked. out: float [nseq, out_dim].
 * Twin: emb_static_pool in host/cpu/static_backend.c. */
cudaError_t emb_launch_static_pool(float *out, const float *table, int dim, const int32_t *ids,
                                   const int32_t *groups, const int32_t *cu_seqlens, int nseq,
                                   const int32_t *mapping,
                                   const float *weights, int modes, int out_dim, int normalize,
                                   cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
