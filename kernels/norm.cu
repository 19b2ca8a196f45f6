/*
 * Row norms with their neighbouring elementwise work fused in: bias + residual
 * + LayerNorm (BERT's post-attention and post-FFN step, so the GEMM output is
 * read once and the residual stream written once), and RMSNorm with an
 * optional residual for the pre-norm architectures, and Gemma's sandwich step
 * (post-norm of the sublayer output, residual add, the next pre-norm) in one
 * pass. Values in registers, fp32 statistics; 16-byte loads and stores (8
 * halves) when the width is a multiple of 16 bytes and the rows aligned, with
 * a warp per row (4 rows per CTA, sums by shuffles, no barrier) for rows up
 * to 1024 halves and a CTA per row above; element pairs and a CTA per row
 * otherwise (odd widths such as 34, offset buffers).
 * CPU twins: cpu_bias_residual_layernorm, cpu_rmsnorm (+ an add for the sandwich).
 */
#include "common.cuh"

/* Reads this thread's vectors of a row of x (+ bias + residual) into v; the
 * caller owns v. Shared by the norms so they load the same way. */
template <typename T, int V, int NV, int W>
__device__ __forceinline__ void load_row_sum(const emb_row<W> &r, float (&v)[NV][V], const T *x, const T *bias,
                                             const T *residual, int dim) {
#pragma unroll
    for (int i = 0; i < NV; i++) {
        int c = V * (r.idx + i * r.stride);
#pragma unroll
        for (int j = 0; j < V; j++) v[i][j] = 0.0f;
        if (c < dim) {
            float a[V];
            emb_ldv<T, V>(x + c, v[i]);
            if (bias) {
                emb_ldv<T, V>(bias + c, a);
#pragma unroll
                for (int j = 0; j < V; j++) v[i][j] += a[j];
            }
            if (residual) {
                emb_ldv<T, V>(residual + c, a);
#pragma unroll
                for (int j = 0; j < V; j++) v[i][j] += a[j];
            }
        }
    }
}

template <typename T, int V, int W>
__global__ void bias_residual_layernorm_kernel(T *out, const T *x, const T *__restrict__ bias,
                                               const T *residual, const T *__restrict__ g,
                                               const T *__restrict__ b, int rows, int dim, float eps) {
    enum { NV = norm_slots<V, W>::NV };
    EMB_SHARED(float, red, 33);
    const emb_row<W> r(rows);
    if (!r.live) return;   /* a whole warp, in the warp-per-row form (no barriers there) */
    const size_t row = r.row;
    float v[NV][V];
    load_row_sum<T, V, NV, W>(r, v, x + row * dim, bias, residual ? residual + row * dim : nullptr, dim);
    float mean, rstd;
    emb_row_layernorm_stats(r, v, dim / V, dim, eps, red, mean, rstd);
    T *o = out + row * dim;
#pragma unroll
    for (int i = 0; i < NV; i++) {
        int c = V * (r.idx + i * r.stride);
        if (c < dim) {
            float gv[V], bv[V] = {}, y[V];
            emb_ldv<T, V>(g + c, gv);
            if (b) emb_ldv<T, V>(b + c, bv);   /* LayerNorm without bias (ModernBERT-style) */
#pragma unroll
            for (int j = 0; j < V; j++) y[j] = (v[i][j] - mean) * rstd * gv[j] + bv[j];
            emb_stv<T, V>(o + c, y);
        }
    }
}

/* This thread's vectors of a row of out = v * rrms * g (rounded to T by the store). */
template <typename T, int V, int NV, int W>
__device__ __forceinline__ void store_rms_row(const emb_row<W> &r, T *o, const float (&v)[NV][V], float rrms,
                                              const T *g, int dim) {
#pragma unroll
    for (int i = 0; i < NV; i++) {
        int c = V * (r.idx + i * r.stride);
        if (c < dim) {
            float gv[V], y[V];
            emb_ldv<T, V>(g + c, gv);
#pragma unroll
            for (int j = 0; j < V; j++) y[j] = v[i][j] * rrms * gv[j];
            emb_stv<T, V>(o + c, y);
        }
    }
}

template <typename T, int V, int W>
__global__ void rmsnorm_kernel(T *out, const T *x, const T *residual, const T *__restrict__ g, int rows,
                               int dim, float eps) {
    enum { NV = norm_slots<V, W>::NV };
    EMB_SHARED(float, red, 33);
    const emb_row<W> r(rows);
    if (!r.live) return;
    const size_t row = r.row;
    float v[NV][V];
    load_row_sum<T, V, NV, W>(r, v, x + row * dim, (const T *)nullptr,
                              residual ? residual + row * dim : nullptr, dim);
    store_rms_row<T, V, NV, W>(r, out + row * dim, v, row_rrms(r, v, dim, eps, red), g, dim);
}

/* The sandwich step: h += RMSNorm(y) * g_post, then next = RMSNorm(h) *
 * g_next, rounding to T where the separate launches store (so the result is
 * theirs bit for bit: same row split, same sums). h_out NULL: the new h is
 * not stored (next overwrites it). */
template <typename T, int V, int W>
__global__ void sandwich_norm_kernel(T *h_out, T *next, const T *y, const T *h, const T *__restrict__ g_post,
                                     float eps_post, const T *__restrict__ g_next, float eps_next, int rows,
                                     int dim) {
    enum { NV = norm_slots<V, W>::NV };
    EMB_SHARED(float, red, 33);
    const emb_row<W> r(rows);
    if (!r.live) return;
    const size_t row = r.row;
    float v[NV][V];
    load_row_sum<T, V, NV, W>(r, v, y + row * dim, (const T *)nullptr, (const T *)nullptr, dim);
    const float rrms = row_rrms(r, v, dim, eps_post, red);
#pragma unroll
    for (int i = 0; i < NV; i++) {
        int c = V * (r.idx + i * r.stride);
        if (c < dim) {
            float gv[V], hv[V];
            emb_ldv<T, V>(g_post + c, gv);
            emb_ldv<T, V>(h + row * dim + c, hv);
#pragma unroll
            for (int j = 0; j < V; j++)
                v[i][j] = emb_round<T>(hv[j] + emb_round<T>(v[i][j] * rrms * gv[j]));
            if (h_out) emb_stv<T, V>(h_out + row * dim + c, v[i]);
        }
    }
    if (g_next)
        store_rms_row<T, V, NV, W>(r, next + row * dim, v, row_rrms(r, v, dim, eps_next, red), g_next, dim);
}

static bool norm_dim_ok(int rows, int dim) {
    return rows >= 0 && dim >= 2 && dim % 2 == 0 && dim <= EMB_KERNEL_MAX_NORM_DIM &&
           dim <= 2 * EMB_ROW_PAIRS * 1024;
}

extern "C" cudaError_t emb_launch_bias_residual_layernorm(void *out, emb_kdtype dt, const void *x,
                                                          const void *bias, const void *residual,
                                                          const void *g, const void *b, int rows,
                                                          int dim, float eps,
                                                          cudaStream_t stream) {
    if (!norm_dim_ok(rows, dim)) return cudaErrorInvalidValue;
    if (rows == 0) return cudaSuccess;
    EMB_DISPATCH_DT(dt, T,
        const bool vec16 = emb_vec_ok(dim, EMB_VEC16(T), sizeof(T), out, x, bias, residual, g, b);
        EMB_ROW_LAUNCH(bias_residual_layernorm_kernel, T, vec16, rows, dim, stream, (T *)out,
                    (const T *)x, (const T *)bias, (const T *)residual, (const T *)g,
                    (const T *)b, rows, dim, eps));
    return emb_launch_status();
}

extern "C" cudaError_t emb_launch_rmsnorm(void *out, emb_kdtype dt, const void *x,
                                          const void *residual, const void *g, int rows, int dim,
                                          float eps, cudaStream_t stream) {
    if (!norm_dim_ok(rows, dim)) return cudaErrorInvalidValue;
    if (rows == 0) return cudaSuccess;
    EMB_DISPATCH_DT(dt, T,
        const bool vec16 = emb_vec_ok(dim, EMB_VEC16(T), sizeof(T), out, x, residual, g);
        EMB_ROW_LAUNCH(rmsnorm_kernel, T, vec16, rows, dim, stream, (T *)out, (const T *)x,
                    (const T *)residual, (const T *)g, rows, dim, eps));
    return emb_launch_status();
}

extern "C" cudaError_t emb_launch_sandwich_norm(void *h_out, void *next, emb_kdtype dt, const void *y,
                                                const void *h, const void *g_post, float eps_post,
                                                const void *g_next, float eps_next, int rows, int dim,
                                                cudaStream_t stream) {
    if (!norm_dim_ok(rows, dim) || !y || !h || !g_post || (!g_next) != (!next) || (!h_out && !next))
        return cudaErrorInvalidValue;
    if (rows == 0) return cudaSuccess;
    EMB_DISPATCH_DT(dt, T,
        const bool vec16 = emb_vec_ok(dim, EMB_VEC16(T), sizeof(T), h_out, next, y, h, g_post, g_next);
        EMB_ROW_LAUNCH(sandwich_norm_kernel, T, vec16, rows, dim, stream, (T *)h_out, (T *)next, (const T *)y,
                    (const T *)h, (const T *)g_post, eps_post, (const T *)g_next, eps_next, rows, dim));
    return emb_launch_status();
}
