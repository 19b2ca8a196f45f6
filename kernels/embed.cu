/*
 * Embedding gather fused with LayerNorm over packed tokens: one CTA per token
 * reads word[id] + position[pos] + token_type[type] (pos counted from the start
 * of the token's own sequence, found in cu_seqlens), keeps the sum in
 * registers, and writes LayerNorm(sum) once. Replaces three gathers, an add
 * and a norm pass with one read of each embedding row and one write.
 * CPU twin: cpu_embed_layernorm.
 *
 * The general form (emb_launch_embed) takes the position row of each token
 * from the host (learned tables with an offset or a padding rule, computed
 * sinusoids: the host knows the rule), scales the word row, and ends with a
 * LayerNorm (bias optional), an RMSNorm or no norm; 16-byte loads and stores
 * where the width and the tables allow, with a warp per token up to 1024
 * halves (as in norm.cu), pairs otherwise.
 */
#include "common.cuh"

template <typename T>
__global__ void embed_layernorm_kernel(T *__restrict__ out, const int32_t *__restrict__ ids,
                                       const int32_t *__restrict__ type_ids,
                                       const int32_t *__restrict__ cu_seqlens, int nseq,
                                       const T *__restrict__ word, const T *__restrict__ position,
                                       const T *__restrict__ token_type, const T *__restrict__ g,
                                       const T *__restrict__ b, int hidden, float eps) {
    EMB_SHARED(float, red, 33);
    const int t = blockIdx.x;
    const int seq = emb_seq_of(cu_seqlens, nseq, t);
    const int pos = t - cu_seqlens[seq];
    const int type = type_ids ? type_ids[t] : 0;
    const T *w = word + (size_t)ids[t] * hidden;
    const T *p = position + (size_t)pos * hidden;
    const T *tt = token_type ? token_type + (size_t)type * hidden : nullptr;
    const int pairs = hidden / 2;

    float v[EMB_ROW_PAIRS][2];
#pragma unroll
    for (int i = 0; i < EMB_ROW_PAIRS; i++) {
        int c = 2 * (threadIdx.x + i * blockDim.x);
        v[i][0] = v[i][1] = 0.0f;
        if (c < hidden) {
            float a0, a1, b0, b1;
            emb_ld2(w + c, a0, a1);
            emb_ld2(p + c, b0, b1);
            v[i][0] = a0 + b0;
            v[i][1] = a1 + b1;
            if (tt) {
                emb_ld2(tt + c, a0, a1);
                v[i][0] += a0;
                v[i][1] += a1;
            }
        }
    }
    float mean, rstd;
    emb_row_layernorm_stats(v, pairs, hidden, eps, red, mean, rstd);
    T *o = out + (size_t)t * hidden;
#pragma unroll
    for (int i = 0; i < EMB_ROW_PAIRS; i++) {
        int c = 2 * (threadIdx.x + i * blockDim.x);
        if (c < hidden) {
            float g0, g1, b0, b1;
            emb_ld2(g + c, g0, g1);
            emb_ld2(b + c, b0, b1);
            emb_st2(o + c, (v[i][0] - mean) * rstd * g0 + b0, (v[i][1] - mean) * rstd * g1 + b1);
        }
    }
}

extern "C" cudaError_t emb_launch_embed_layernorm(void *out, emb_kdtype dt, const int32_t *ids,
                                                  const int32_t *type_ids,
                                                  const int32_t *cu_seqlens, int nseq, int total,
                                                  const void *word, const void *position,
                                                  const void *token_type, const void *g,
                                                  const void *b, int hidden, float eps,
                                                  cudaStream_t stream) {
    if (total < 0 || nseq < 1 || hidden < 2 || hidden % 2 ||
        hidden > 2 * EMB_ROW_PAIRS * 1024 || hidden > EMB_KERNEL_MAX_NORM_DIM)
        return cudaErrorInvalidValue;
    if (total == 0) return cudaSuccess;
    const int threads = emb_row_threads(hidden);
    EMB_DISPATCH_DT(dt, T,
        EMB_LAUNCH(embed_layernorm_kernel<T>, dim3(total), dim3(threads), 0, stream)(
            (T *)out, ids, type_ids, cu_seqlens, nseq, (const T *)word, (const T *)position,
            (const T *)token_type, (const T *)g, (const T *)b, hidden, eps));
    return emb_launch_status();
}

template <typename T, int V, int W>
__global__ void embed_kernel(T *__restrict__ out, const int32_t *__restrict__ ids,
                             const int32_t *__restrict__ type_ids,
                             const int32_t *__restrict__ pos_ids, const T *__restrict__ word,
                             float scale, const T *__restrict__ position,
                             const T *__restrict__ token_type, int norm, const T *__restrict__ g,
                             const T *__restrict__ b, int total, int hidden, float eps) {
    enum { NV = norm_slots<V, W>::NV };
    EMB_SHARED(float, red, 33);
    const emb_row<W> r(total);
    if (!r.live) return;   /* a whole warp, in the warp-per-row form (no barriers there) */
    const size_t t = r.row;
    const T *w = word + (size_t)ids[t] * hidden;
    const T *p = position ? position + (size_t)pos_ids[t] * hidden : nullptr;
    const T *tt = token_type ? token_type + (size_t)(type_ids ? type_ids[t] : 0) * hidden : nullptr;

    float v[NV][V];
#pragma unroll
    for (int i = 0; i < NV; i++) {
        int c = V * (r.idx + i * r.stride);
#pragma unroll
        for (int j = 0; j < V; j++) v[i][j] = 0.0f;
        if (c < hidden) {
            float a[V];
            emb_ldv<T, V>(w + c, a);
#pragma unroll
            for (int j = 0; j < V; j++) v[i][j] = a[j] * scale;
            if (p) {
                emb_ldv<T, V>(p + c, a);
#pragma unroll
                for (int j = 0; j < V; j++) v[i][j] += a[j];
            }
            if (tt) {
                emb_ldv<T, V>(tt + c, a);
#pragma unroll
                for (int j = 0; j < V; j++) v[i][j] += a[j];
            }
        }
    }
    float mean = 0.0f, rstd = 1.0f;
    if (norm == EMB_KNORM_LAYER) emb_row_layernorm_stats(r, v, hidden / V, hidden, eps, red, mean, rstd);
    else if (norm == EMB_KNORM_RMS) rstd = row_rrms(r, v, hidden, eps, red);
    T *o = out + t * hidden;
#pragma unroll
    for (int i = 0; i < NV; i++) {
        int c = V * (r.idx + i * r.stride);
        if (c < hidden) {
            float gv[V], bv[V], y[V];
#pragma unroll
            for (int j = 0; j < V; j++) gv[j] = 1.0f, bv[j] = 0.0f;
            if (norm != EMB_KNORM_NONE) emb_ldv<T, V>(g + c, gv);
            if (norm == EMB_KNORM_LAYER && b) emb_ldv<T, V>(b + c, bv);
#pragma unroll
            for (int j = 0; j < V; j++) y[j] = (v[i][j] - mean) * rstd * gv[j] + bv[j];
            emb_stv<T, V>(o + c, y);
        }
    }
}

extern "C" cudaError_t emb_launch_embed(void *out, emb_kdtype dt, const int32_t *ids,
                                        const int32_t *type_ids, const int32_t *pos_ids,
                                        int total, const void *word, float scale,
                                        const void *position, const void *token_type, int norm,
                                        const void *g, const void *b, int hidden, float eps,
                                        cudaStream_t stream) {
    if (total < 0 || hidden < 2 || hidden % 2 || hidden > 2 * EMB_ROW_PAIRS * 1024 ||
        hidden > EMB_KERNEL_MAX_NORM_DIM || norm < EMB_KNORM_NONE || norm > EMB_KNORM_RMS ||
        (norm != EMB_KNORM_NONE && !g) || (position && !pos_ids))
        return cudaErrorInvalidValue;
    if (total == 0) return cudaSuccess;
    EMB_DISPATCH_DT(dt, T,
        const bool vec16 = emb_vec_ok(hidden, EMB_VEC16(T), sizeof(T), out, word, position, token_type, g, b);
        EMB_ROW_LAUNCH(embed_kernel, T, vec16, total, hidden, stream, (T *)out, ids, type_ids, pos_ids,
                       (const T *)word, scale, (const T *)position, (const T *)token_type, norm, (const T *)g,
                       (const T *)b, total, hidden, eps));
    return emb_launch_status();
}
