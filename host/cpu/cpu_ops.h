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

/* Varlen self-attention. qkv: [total, 3, heads, head_dim] (Q, K, V of one token
 * adjacent), out: [total, heads, head_dim]. Softmax(QK^T * scale) V within each
 * sequence; causal masks keys after the query. */
void cpu_attention_varlen(float *out, const float *qkv, const int32_t *cu_seqlens, int nseq,
                          int heads, int head_dim, float scale, int causal);

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
