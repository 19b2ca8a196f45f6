/*
 * Row norms with their neighbouring elementwise work fused in: bias + residual
 * + LayerNorm (BERT's post-attention and post-FFN step, so the GEMM output is
 * read once and the residual stream written once), and RMSNorm with an
 * optional residual for the pre-norm architectures that come later. One CTA
 * per row, values in registers, fp32 statistics.
 * CPU twins: cpu_bias_residual_layernorm, cpu_rmsnorm.
 */
#include "common.cuh"

/* Reads row r of x (+ bias + residual) into v; returns nothing, the caller
 * owns v. Shared by both norms so they load the same way. */
template <typename T>
__device__ __forceinline__ void load_row_sum(float (&v)[EMB_ROW_PAIRS][2], const T *x,
                                             const T *bias, const T *residual, int dim) {
#pragma unroll
    for (int i = 0; i < EMB_ROW_PAIRS; i++) {
        int c = 2 * (threadIdx.x + i * blockDim.x);
        v[i][0] = v[i][1] = 0.0f;
        if (c < dim) {
            float a, b;
            emb_ld2(x + c, v[i][0], v[i][1]);
            if (bias) {
                emb_ld2(bias + c, a, b);
                v[i][0] += a;
                v[i][1] += b;
            }
            if (residual) {
                emb_ld2(residual + c, a, b);
                v[i][0] += a;
                v[i][1] += b;
            }
        }
    }
}

template <typename T>
__global__ void bias_residual_layernorm_kernel(T *out, const T *x, const T *__restrict__ bias,
                                               const T *residual, const T *__restrict__ g,
                                               const T *__restrict__ b, int dim, float eps) {
    EMB_SHARED(float, red, 33);
    const size_t row = blockIdx.x;
    float v[EMB_ROW_PAIRS][2];
    load_row_sum(v, x + row * dim, bias, residual ? residual + row * dim : nullptr, dim);
    float mean, rstd;
    emb_row_layernorm_stats(v, dim / 2, dim, eps, red, mean, rstd);
    T *o = out + row * dim;
#pragma unroll
    for (int i = 0; i < EMB_ROW_PAIRS; i++) {
        int c = 2 * (threadIdx.x + i * blockDim.x);
        if (c < dim) {
            float g0, g1, b0 = 0.0f, b1 = 0.0f;
            emb_ld2(g + c, g0, g1);
            if (b) emb_ld2(b + c, b0, b1);   /* LayerNorm without bias (ModernBERT-style) */
            emb_st2(o + c, (v[i][0] - mean) * rstd * g0 + b0, (v[i][1] - mean) * rstd * g1 + b1);
        }
    }
}

template <typename T>
__global__ void rmsnorm_kernel(T *out, const T *x, const T *residual, const T *__restrict__ g,
                               int dim, float eps) {
    EMB_SHARED(float, red, 33);
    const size_t row = blockIdx.x;
    float v[EMB_ROW_PAIRS][2];
    load_row_sum(v, x + row * dim, (const T *)nullptr, residual ? residual + row * dim : nullptr,
                 dim);
    float q = 0.0f;
#pragma unroll
    for (int i = 0; i < EMB_ROW_PAIRS; i++)
        q += v[i][0] * v[i][0] + v[i][1] * v[i][1];   /* unused slots hold 0 */
    const float rrms = 1.0f / sqrtf(emb_block_sum(q, red) / (float)dim + eps);
    T *o = out + row * dim;
#pragma unroll
    for (int i = 0; i < EMB_ROW_PAIRS; i++) {
        int c = 2 * (threadIdx.x + i * blockDim.x);
        if (c < dim) {
            float g0, g1;
            emb_ld2(g + c, g0, g1);
            emb_st2(o + c, v[i][0] * rrms * g0, v[i][1] * rrms * g1);
        }
    }
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
        EMB_LAUNCH(bias_residual_layernorm_kernel<T>, dim3(rows), dim3(emb_row_threads(dim)), 0,
                   stream)((T *)out, (const T *)x, (const T *)bias, (const T *)residual,
                           (const T *)g, (const T *)b, dim, eps));
    return emb_launch_status();
}

extern "C" cudaError_t emb_launch_rmsnorm(void *out, emb_kdtype dt, const void *x,
                                          const void *residual, const void *g, int rows, int dim,
                                          float eps, cudaStream_t stream) {
    if (!norm_dim_ok(rows, dim)) return cudaErrorInvalidValue;
    if (rows == 0) return cudaSuccess;
    EMB_DISPATCH_DT(dt, T,
        EMB_LAUNCH(rmsnorm_kernel<T>, dim3(rows), dim3(emb_row_threads(dim)), 0, stream)(
            (T *)out, (const T *)x, (const T *)residual, (const T *)g, dim, eps));
    return emb_launch_status();
}
