/*
 * The CPU backend's building blocks, in plain fp32. Each is the reference
 * ("CPU twin") that the matching CUDA kernel is tested against, so the
 * signatures use the same packed layout as the kernels: tokens of all
 * sequences concatenated, described by cu_seqlens (int32 prefix offsets,
 * nseq + 1 entries, cu_seqlens[0] == 0).
 */
#ifndef EMBEDC_HOST_CPU_OPS_H
#define EMBEDC_HOST_CPU_OPS_H

#include <stddef.h>
#include <stdint.h>
#include "model.h"

/* out[t] = LayerNorm(word[ids[t]] + position[t - start(seq)] + token_type[type_ids[t]]) */
void cpu_embed_layernorm(float *out, const int32_t *ids, const int32_t *type_ids,
                         const int32_t *cu_seqlens, int nseq,
                         const float *word, const float *position, const float *token_type,
                         const float *g, const float *b, int hidden, float eps);

/* x[i] = LayerNorm(x[i] + bias + residual[i]) over rows of width dim (bias may be NULL). */
void cpu_bias_residual_layernorm(float *x, const float *bias, const float *residual,
                                 const float *g, const float *b, int rows, int dim, float eps);

/* x[i] = RMSNorm(x[i] (+ residual[i])) * g (residual may be NULL). */
void cpu_rmsnorm(float *x, const float *residual, const float *g, int rows, int dim, float eps);

/* x[r][c] = act(x[r][c] + bias[c]) (bias may be NULL). */
void cpu_bias_act(float *x, const float *bias, int rows, int cols, emb_act act);

/* out[r][c] = act(x[r][c]) * x[r][cols + c]: gated FFN (GeGLU/SwiGLU), x is [rows, 2*cols]. */
void cpu_gated_act(float *out, const float *x, int rows, int cols, emb_act act);

/* Attention parameters (see cpu_attention). */
typedef struct {
    int heads, kv_heads, head_dim;
    float scale;
    int window_left, window_right; /* < 0: unbounded on that side */
    float softcap;                 /* > 0: logit = softcap * tanh(logit / softcap) */
    const float *rel_bias;         /* NULL, or [heads, 2*rel_span - 1] over j - i */
    int rel_span;                  /* >= the longest sequence when rel_bias */
} cpu_attn_params;

/* Attention over packed sequences with grouped-query heads.
 * qkv: [total, (heads + 2*kv_heads) * head_dim]: per token, the Q heads, then
 * the K heads, then the V heads (kv_heads == heads is [total, 3, heads,
 * head_dim]). out: [total, heads * head_dim]. Query head h uses KV head
 * h / (heads / kv_heads). Key j (position within the sequence) is visible to
 * query i iff (window_left < 0 || j >= i - window_left) && (window_right < 0
 * || j <= i + window_right): causal is window_right = 0, bidirectional full
 * both -1, a symmetric local window both = w, Mistral's sliding window
 * left = w - 1, right = 0. logit = (q . k) * scale, then
 * + rel_bias[h * (2*rel_span - 1) + (j - i + rel_span - 1)] when rel_bias,
 * then softcap * tanhf(logit / softcap) when softcap > 0. Softmax in fp32
 * over the visible keys; keys outside the window are never computed. */
void cpu_attention(float *out, const float *qkv, const int32_t *cu_seqlens, int nseq,
                   const cpu_attn_params *p);

/* cpu_attention with kv_heads == heads, no bias or softcap, and either
 * bidirectional (causal == 0) or causal masking. */
void cpu_attention_varlen(float *out, const float *qkv, const int32_t *cu_seqlens, int nseq,
                          int heads, int head_dim, float scale, int causal);

/* Rotary position embedding in place on the Q and K heads of qkv (layout of
 * cpu_attention); the position of token t is t - cu_seqlens[seq(t)]. The
 * first rotary_dim dims of each head are rotated with transformers'
 * rotate_half pairing (d, d + rotary_dim/2): with inv_freq[d] =
 * 1 / theta^((float)(2d) / rotary_dim) and angle = (float)pos * inv_freq[d],
 * all in float32 as transformers computes them,
 *   x'[d]        = x[d] cos - x[d + half] sin
 *   x'[d + half] = x[d + half] cos + x[d] sin.
 * Dims past rotary_dim (partial rotary) are left as they are. rotary_dim is
 * even and <= min(head_dim, 512). A non-NULL inv_freq (rotary_dim / 2
 * values: a scaled rope's table) replaces the frequencies from theta. */
void cpu_rotary(float *qkv, const int32_t *cu_seqlens, int nseq, int heads, int kv_heads,
                int head_dim, int rotary_dim, float theta, const float *inv_freq);

/* The QKV epilogue, the attention's Q/K preparation as every family needs
 * it, on the QKV GEMM's output (layout of cpu_attention): + bias over the
 * whole row (Q, K and V heads) when bias is not NULL, then per-head RMS
 * norms (q_g over each Q head, k_g over each K head, eps each; a NULL
 * weight: no norm on that block; Gemma's 1 + w pre-added), then cpu_rotary
 * when rotary_dim > 0 (inv_freq: a scaled rope's table, or NULL). The CPU
 * backend runs it; it is the twin of emb_launch_qk_norm_rotary. */
typedef struct {
    int heads, kv_heads, head_dim;
    const float *bias;       /* [(heads + 2 kv_heads) head_dim] or NULL */
    const float *q_g, *k_g;  /* [head_dim] or NULL */
    float q_eps, k_eps;
    int rotary_dim;
    float theta;
    const float *inv_freq;   /* [rotary_dim / 2] or NULL */
} cpu_qk_params;
void cpu_qk_norm_rotary(float *qkv, const int32_t *cu_seqlens, int nseq, const cpu_qk_params *p);

/* y[rows, out] = x[rows, in] W^T + b  (W is [out, in] like torch; b may be NULL). */
void cpu_linear(float *y, const float *x, const float *w, const float *b,
                int rows, int in, int out);

/* Segmented pooling: hidden [total, dim] -> out [nseq, dim * popcount(modes)],
 * modes concatenated in sentence-transformers order (cls, max, mean,
 * mean_sqrt_len, weightedmean, lasttoken). skip[s] (may be NULL) leading
 * tokens of sequence s are excluded (include_prompt = false) from every mode;
 * as in sentence-transformers 6.x, cls then takes the first kept token (token
 * 0 if none is kept) and weightedmean keeps the tokens' original 1-based
 * positions as weights. With no kept token: max gives -inf, mean variants
 * and lasttoken give 0. */
void cpu_pool(float *out, const float *hidden, const int32_t *cu_seqlens, int nseq, int dim,
              int modes, const int32_t *skip);

/* Rows of out[rows, dim]: L2-normalize in place (zero rows stay zero). */
void cpu_l2_normalize(float *x, int rows, int dim);

#endif
