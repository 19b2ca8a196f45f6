/*
 * Elementwise activations: bias + activation fused (the FFN's first GEMM
 * epilogue: GELU erf/tanh, ReLU, SiLU, ...; identity = bias only, used after
 * the fused QKV GEMM) and the gated forms (GeGLU, SwiGLU) of later models,
 * which halve a [rows, 2*cols] GEMM output into [rows, cols]. Memory-bound,
 * so one read and one write each, 16 bytes per access (8 halves) when the
 * width is a multiple of 16 bytes and the buffers aligned, element pairs
 * otherwise; rows on the grid's y, so no division per element.
 * Also a plain x += y (a residual add after a sublayer's own output norm).
 * CPU twins: cpu_bias_act, cpu_gated_act.
 */
#include "common.cuh"

/* Rows over blockIdx.y (grid-stride), vectors of a row over x: no 64-bit
 * division per element. V elements per access (16 bytes or a pair). */
template <typename T, int V>
__global__ void bias_act_kernel(T *x, const T *__restrict__ bias, int rows, int cols, int act) {
    const int vcols = cols / V;
    for (int r = blockIdx.y; r < rows; r += gridDim.y) {
        T *row = x + (size_t)r * cols;
        for (int v = blockIdx.x * blockDim.x + threadIdx.x; v < vcols; v += gridDim.x * blockDim.x) {
            float a[V], b[V];
            emb_ldv<T, V>(row + V * v, a);
            if (bias) {
                emb_ldv<T, V>(bias + V * v, b);
#pragma unroll
                for (int j = 0; j < V; j++) a[j] += b[j];
            }
#pragma unroll
            for (int j = 0; j < V; j++) a[j] = emb_act_f(a[j], act);
            emb_stv<T, V>(row + V * v, a);
        }
    }
}

template <typename T, int V>
__global__ void gated_act_kernel(T *__restrict__ out, const T *__restrict__ x, int rows, int cols,
                                 int act) {
    const int vcols = cols / V;
    for (int r = blockIdx.y; r < rows; r += gridDim.y) {
        const T *row = x + (size_t)r * 2 * cols;
        for (int v = blockIdx.x * blockDim.x + threadIdx.x; v < vcols; v += gridDim.x * blockDim.x) {
            float a[V], g[V];
            emb_ldv<T, V>(row + V * v, a);
            emb_ldv<T, V>(row + cols + V * v, g);
#pragma unroll
            for (int j = 0; j < V; j++) a[j] = emb_act_f(a[j], act) * g[j];
            emb_stv<T, V>(out + (size_t)r * cols + V * v, a);
        }
    }
}

template <typename T, int V>
__global__ void add_kernel(T *x, const T *__restrict__ y, size_t nvec) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < nvec;
         i += (size_t)gridDim.x * blockDim.x) {
        float a[V], b[V];
        emb_ldv<T, V>(x + V * i, a);
        emb_ldv<T, V>(y + V * i, b);
#pragma unroll
        for (int j = 0; j < V; j++) a[j] += b[j];
        emb_stv<T, V>(x + V * i, a);
    }
}

#define ACT_THREADS 128

/* Enough CTAs to fill any current GPU several times over; the grid-stride
 * loops cover the rest, so huge batches never overflow gridDim. */
static dim3 elementwise_grid(size_t nvec, int threads) {
    size_t blocks = (nvec + threads - 1) / threads;
    if (blocks > 65535) blocks = 65535;
    if (blocks < 1) blocks = 1;
    return dim3((unsigned)blocks);
}

/* One row per CTA row (y), the vectors of a row across x. */
static dim3 rows_grid(int rows, int vcols) {
    dim3 g = elementwise_grid((size_t)vcols, ACT_THREADS);
    g.y = rows > 65535 ? 65535 : (unsigned)rows;
    return g;
}

/* Launches KERNEL<T, 16 bytes> when vec16 holds, else KERNEL<T, 2>, on grid(V). */
#define ACT_LAUNCH(KERNEL, T, vec16, grid_of_v, stream, ...)                                    \
    do {                                                                                        \
        enum { V_ = EMB_VEC16(T) };                                                             \
        auto KERNEL##_v = KERNEL<T, V_>;                                                        \
        auto KERNEL##_pairs = KERNEL<T, 2>;                                                     \
        if (vec16)                                                                              \
            EMB_LAUNCH(KERNEL##_v, grid_of_v(V_), dim3(ACT_THREADS), 0, stream)(__VA_ARGS__);   \
        else                                                                                    \
            EMB_LAUNCH(KERNEL##_pairs, grid_of_v(2), dim3(ACT_THREADS), 0, stream)(__VA_ARGS__); \
    } while (0)

extern "C" cudaError_t emb_launch_bias_act(void *x, emb_kdtype dt, const void *bias, int rows,
                                           int cols, int act, cudaStream_t stream) {
    if (rows < 0 || cols < 2 || cols % 2 || act < EMB_KACT_IDENTITY || act > EMB_KACT_SIGMOID)
        return cudaErrorInvalidValue;
    if (rows == 0) return cudaSuccess;
    auto grid = [&](int V) { return rows_grid(rows, cols / V); };
    EMB_DISPATCH_DT(dt, T,
        const bool vec16 = emb_vec_ok(cols, EMB_VEC16(T), sizeof(T), x, bias);
        ACT_LAUNCH(bias_act_kernel, T, vec16, grid, stream, (T *)x, (const T *)bias, rows, cols,
                   act));
    return emb_launch_status();
}

extern "C" cudaError_t emb_launch_gated_act(void *out, emb_kdtype dt, const void *x, int rows,
                                            int cols, int act, cudaStream_t stream) {
    if (rows < 0 || cols < 2 || cols % 2 || act < EMB_KACT_IDENTITY || act > EMB_KACT_SIGMOID)
        return cudaErrorInvalidValue;
    if (rows == 0) return cudaSuccess;
    auto grid = [&](int V) { return rows_grid(rows, cols / V); };
    EMB_DISPATCH_DT(dt, T,
        const bool vec16 = emb_vec_ok(cols, EMB_VEC16(T), sizeof(T), out, x);
        ACT_LAUNCH(gated_act_kernel, T, vec16, grid, stream, (T *)out, (const T *)x, rows, cols,
                   act));
    return emb_launch_status();
}

extern "C" cudaError_t emb_launch_add(void *x, emb_kdtype dt, const void *y, size_t n,
                                      cudaStream_t stream) {
    if (n % 2) return cudaErrorInvalidValue;
    if (n == 0) return cudaSuccess;
    auto grid = [&](int V) { return elementwise_grid(n / V, ACT_THREADS); };
    EMB_DISPATCH_DT(dt, T,
        const bool vec16 = emb_vec_ok(n, EMB_VEC16(T), sizeof(T), x, y);
        ACT_LAUNCH(add_kernel, T, vec16, grid, stream, (T *)x, (const T *)y,
                   n / (vec16 ? EMB_VEC16(T) : 2)));
    return emb_launch_status();
}
