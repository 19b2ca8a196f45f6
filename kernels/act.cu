/*
 * Elementwise activations: bias + activation fused (the FFN's first GEMM
 * epilogue: GELU erf/tanh, ReLU, SiLU, ...; identity = bias only, used after
 * the fused QKV GEMM) and the gated forms (GeGLU, SwiGLU) of later models,
 * which halve a [rows, 2*cols] GEMM output into [rows, cols]. Grid-stride
 * loops over element pairs; memory-bound, so one read and one write each.
 * Also a plain x += y (a residual add after a sublayer's own output norm).
 * CPU twins: cpu_bias_act, cpu_gated_act.
 */
#include "common.cuh"

template <typename T>
__global__ void bias_act_kernel(T *x, const T *__restrict__ bias, size_t npairs, int cols,
                                int act) {
    const int half_cols = cols / 2;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < npairs;
         i += (size_t)gridDim.x * blockDim.x) {
        const int c = 2 * (int)(i % half_cols);
        float a, b;
        emb_ld2(x + 2 * i, a, b);
        if (bias) {
            float ba, bb;
            emb_ld2(bias + c, ba, bb);
            a += ba;
            b += bb;
        }
        emb_st2(x + 2 * i, emb_act_f(a, act), emb_act_f(b, act));
    }
}

template <typename T>
__global__ void gated_act_kernel(T *__restrict__ out, const T *__restrict__ x, size_t npairs,
                                 int cols, int act) {
    const int half_cols = cols / 2;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < npairs;
         i += (size_t)gridDim.x * blockDim.x) {
        const size_t r = i / half_cols;
        const int c = 2 * (int)(i % half_cols);
        const T *row = x + r * 2 * (size_t)cols;
        float a, b, ga, gb;
        emb_ld2(row + c, a, b);
        emb_ld2(row + cols + c, ga, gb);
        emb_st2(out + r * cols + c, emb_act_f(a, act) * ga, emb_act_f(b, act) * gb);
    }
}

template <typename T>
__global__ void add_kernel(T *x, const T *__restrict__ y, size_t npairs) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < npairs;
         i += (size_t)gridDim.x * blockDim.x) {
        float a, b, c, d;
        emb_ld2(x + 2 * i, a, b);
        emb_ld2(y + 2 * i, c, d);
        emb_st2(x + 2 * i, a + c, b + d);
    }
}

/* Enough CTAs to fill any current GPU several times over; the grid-stride
 * loop covers the rest, so huge batches never overflow gridDim. */
static dim3 elementwise_grid(size_t npairs, int threads) {
    size_t blocks = (npairs + threads - 1) / threads;
    if (blocks > 65535) blocks = 65535;
    if (blocks < 1) blocks = 1;
    return dim3((unsigned)blocks);
}

extern "C" cudaError_t emb_launch_bias_act(void *x, emb_kdtype dt, const void *bias, int rows,
                                           int cols, int act, cudaStream_t stream) {
    if (rows < 0 || cols < 2 || cols % 2 || act < EMB_KACT_IDENTITY || act > EMB_KACT_SIGMOID)
        return cudaErrorInvalidValue;
    const size_t npairs = (size_t)rows * cols / 2;
    if (npairs == 0) return cudaSuccess;
    EMB_DISPATCH_DT(dt, T,
        EMB_LAUNCH(bias_act_kernel<T>, elementwise_grid(npairs, 256), dim3(256), 0, stream)(
            (T *)x, (const T *)bias, npairs, cols, act));
    return emb_launch_status();
}

extern "C" cudaError_t emb_launch_gated_act(void *out, emb_kdtype dt, const void *x, int rows,
                                            int cols, int act, cudaStream_t stream) {
    if (rows < 0 || cols < 2 || cols % 2 || act < EMB_KACT_IDENTITY || act > EMB_KACT_SIGMOID)
        return cudaErrorInvalidValue;
    const size_t npairs = (size_t)rows * cols / 2;
    if (npairs == 0) return cudaSuccess;
    EMB_DISPATCH_DT(dt, T,
        EMB_LAUNCH(gated_act_kernel<T>, elementwise_grid(npairs, 256), dim3(256), 0, stream)(
            (T *)out, (const T *)x, npairs, cols, act));
    return emb_launch_status();
}

extern "C" cudaError_t emb_launch_add(void *x, emb_kdtype dt, const void *y, size_t n,
                                      cudaStream_t stream) {
    if (n % 2) return cudaErrorInvalidValue;
    const size_t npairs = n / 2;
    if (npairs == 0) return cudaSuccess;
    EMB_DISPATCH_DT(dt, T,
        EMB_LAUNCH(add_kernel<T>, elementwise_grid(npairs, 256), dim3(256), 0, stream)(
            (T *)x, (const T *)y, npairs));
    return emb_launch_status();
}
