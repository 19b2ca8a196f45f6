/*
 * Helpers shared by the kernel families: element-type traits (fp32, fp16,
 * bf16 loads and stores through fp32), warp and block reductions, and the
 * dtype dispatch used by every launcher. Only CUDA features that the
 * simulator provides are used here (see kernels/arch.h and DESIGN.md §4):
 * explicit-mask shuffles, shared memory passed in from the __global__
 * function, no inline PTX.
 */
#ifndef EMBEDC_KERNELS_COMMON_CUH
#define EMBEDC_KERNELS_COMMON_CUH

#include <stdint.h>
#include <math.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include "arch.h"
#include "kernels.h"

#define EMB_FULL_MASK 0xffffffffu

/* Element traits: every kernel computes in fp32 and converts at the edges. */
template <typename T> struct emb_elem;
template <> struct emb_elem<float> {
    static __device__ __forceinline__ float to_f(float x) { return x; }
    static __device__ __forceinline__ float from_f(float x) { return x; }
};
template <> struct emb_elem<__half> {
    static __device__ __forceinline__ float to_f(__half x) { return __half2float(x); }
    static __device__ __forceinline__ __half from_f(float x) { return __float2half_rn(x); }
};
template <> struct emb_elem<__nv_bfloat16> {
    static __device__ __forceinline__ float to_f(__nv_bfloat16 x) { return __bfloat162float(x); }
    static __device__ __forceinline__ __nv_bfloat16 from_f(float x) { return __float2bfloat16_rn(x); }
};

/* x rounded to T and back: the value a store to T and a load would give. */
template <typename T> __device__ __forceinline__ float emb_round(float x) {
    return emb_elem<T>::to_f(emb_elem<T>::from_f(x));
}

template <typename T> __device__ __forceinline__ float emb_ld(const T *p) {
    return emb_elem<T>::to_f(*p);
}
template <typename T> __device__ __forceinline__ void emb_st(T *p, float v) {
    *p = emb_elem<T>::from_f(v);
}

/* Two adjacent elements (dims are even in every model we run): one 4- or
 * 8-byte access instead of two, which halves the load instructions of the
 * memory-bound kernels. */
template <typename T> struct alignas(2 * sizeof(T)) emb_pair { T x, y; };

template <typename T> __device__ __forceinline__ void emb_ld2(const T *p, float &a, float &b) {
    emb_pair<T> v = *reinterpret_cast<const emb_pair<T> *>(p);
    a = emb_elem<T>::to_f(v.x);
    b = emb_elem<T>::to_f(v.y);
}
template <typename T> __device__ __forceinline__ void emb_st2(T *p, float a, float b) {
    emb_pair<T> v;
    v.x = emb_elem<T>::from_f(a);
    v.y = emb_elem<T>::from_f(b);
    *reinterpret_cast<emb_pair<T> *>(p) = v;
}

/* V adjacent elements in one access: 16 bytes (8 halves, 4 floats) where the
 * row width and the pointers allow (EMB_VEC16 and emb_vec_ok), else pairs.
 * The memory-bound kernels are templated on V so that one body serves both. */
template <typename T, int V> struct alignas(V * sizeof(T)) emb_vec { T x[V]; };

template <typename T, int V>
__device__ __forceinline__ void emb_ldv(const T *p, float (&f)[V]) {
    emb_vec<T, V> v = *reinterpret_cast<const emb_vec<T, V> *>(p);
#pragma unroll
    for (int j = 0; j < V; j++) f[j] = emb_elem<T>::to_f(v.x[j]);
}
template <typename T, int V>
__device__ __forceinline__ void emb_stv(T *p, const float (&f)[V]) {
    emb_vec<T, V> v;
#pragma unroll
    for (int j = 0; j < V; j++) v.x[j] = emb_elem<T>::from_f(f[j]);
    *reinterpret_cast<emb_vec<T, V> *>(p) = v;
}

/* Elements of T in a 16-byte access. */
#define EMB_VEC16(T) ((int)(16 / sizeof(T)))

/* True when width is a multiple of V elements of esz bytes and every pointer
 * given (NULL ones are skipped) is aligned to V * esz bytes: rows of such a
 * width then all start aligned too. */
static inline bool emb_vec_ok(size_t width, int V, size_t esz, const void *p0,
                              const void *p1 = nullptr, const void *p2 = nullptr,
                              const void *p3 = nullptr, const void *p4 = nullptr,
                              const void *p5 = nullptr) {
    const void *ps[] = {p0, p1, p2, p3, p4, p5};
    if (width % (size_t)V) return false;
    for (const void *p : ps)
        if ((uintptr_t)p % ((size_t)V * esz)) return false;
    return true;
}

__device__ __forceinline__ float emb_warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(EMB_FULL_MASK, v, o);
    return v;
}
__device__ __forceinline__ float emb_warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(EMB_FULL_MASK, v, o));
    return v;
}

/* Sum over the block; `red` is a shared array of at least 33 floats owned by
 * the caller (shared memory is declared only in __global__ bodies). Every
 * thread of the block must call it; all get the result. The reduction order
 * is fixed, so results do not depend on thread scheduling. */
__device__ __forceinline__ float emb_block_sum(float v, float *red) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int nwarps = (blockDim.x + 31) >> 5;
    v = emb_warp_sum(v);
    if (lane == 0) red[warp] = v;
    __syncthreads();
    if (warp == 0) {
        float w = lane < nwarps ? red[lane] : 0.0f;
        w = emb_warp_sum(w);
        if (lane == 0) red[32] = w;
    }
    __syncthreads();
    float r = red[32];
    __syncthreads();  /* red may be reused right after */
    return r;
}

/* Activation functions in fp32, matching the CPU backend's definitions. */
__device__ __forceinline__ float emb_act_f(float x, int act) {
    switch (act) {
    case EMB_KACT_GELU: return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
    case EMB_KACT_GELU_TANH: {
        const float k = 0.79788456080286536f; /* sqrt(2/pi) */
        return 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x)));
    }
    case EMB_KACT_RELU: return x > 0.0f ? x : 0.0f;
    case EMB_KACT_SILU: return x / (1.0f + expf(-x));
    case EMB_KACT_TANH: return tanhf(x);
    case EMB_KACT_SIGMOID: return 1.0f / (1.0f + expf(-x));
    default: return x;
    }
}

/* Index of the sequence holding packed token t: cu_seqlens is sorted, so a
 * binary search (log2(nseq) steps, cached loads) beats passing a per-token
 * sequence map from the host. */
__device__ __forceinline__ int emb_seq_of(const int32_t *cu_seqlens, int nseq, int t) {
    int lo = 0, hi = nseq - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) >> 1;
        if (cu_seqlens[mid] <= t) lo = mid; else hi = mid - 1;
    }
    return lo;
}

/* Row kernels (norms, embedding) run one CTA per row; each thread keeps up to
 * EMB_ROW_PAIRS element pairs of the row in registers, so a row is read once
 * and the statistics are exact two-pass fp32 (mean, then squared deviations). */
#define EMB_ROW_PAIRS 4

__host__ __device__ static inline int emb_row_threads(int dim) {
    int pairs = dim / 2;
    int t = (pairs + 1) / 2;             /* two pairs per thread when rows are short */
    t = (t + 31) / 32 * 32;
    if (t < 32) t = 32;
    if (t > 1024) t = 1024;
    return t;
}

/* Threads for a row of nvec vectors, `per` vectors per thread at most
 * (the vector paths: one 16-byte vector of halves or two of floats). */
__host__ __device__ static inline int emb_row_threads_vec(int nvec, int per) {
    int t = (nvec + per - 1) / per;
    t = (t + 31) / 32 * 32;
    if (t < 32) t = 32;
    if (t > 1024) t = 1024;
    return t;
}

/* Where a thread stands in its row. W == 0: one CTA per row (thread index,
 * stride blockDim.x, sums over the block through `red`); W > 0: one warp per
 * row, W rows per CTA (lane, stride 32, sums by shuffles only: no barrier);
 * a warp past the last row is not live and leaves. */
template <int W> struct emb_row {
    size_t row;
    int idx, stride;
    bool live;
    __device__ __forceinline__ explicit emb_row(int rows) {
        if (W) {
            row = (size_t)blockIdx.x * W + (threadIdx.x >> 5);
            idx = threadIdx.x & 31;
            stride = 32;
            live = row < (size_t)rows;
        } else {
            row = blockIdx.x;
            idx = threadIdx.x;
            stride = blockDim.x;
            live = true;
        }
    }
    __device__ __forceinline__ float sum(float v, float *red) const {
        return W ? emb_warp_sum(v) : emb_block_sum(v, red);
    }
};

/* v[i] holds vector r.idx + i * r.stride of the row (nvec vectors of V
 * elements; V = 2 is the pair layout). */
template <int W, int P, int V>
__device__ __forceinline__ void emb_row_layernorm_stats(const emb_row<W> &r, const float (&v)[P][V], int nvec,
                                                        int dim, float eps, float *red, float &mean,
                                                        float &rstd) {
    float s = 0.0f;
#pragma unroll
    for (int i = 0; i < P; i++) {
        int p = r.idx + i * r.stride;
        if (p < nvec) {
            float t = 0.0f;
#pragma unroll
            for (int j = 0; j < V; j++) t += v[i][j];
            s += t;
        }
    }
    mean = r.sum(s, red) / (float)dim;
    float q = 0.0f;
#pragma unroll
    for (int i = 0; i < P; i++) {
        int p = r.idx + i * r.stride;
        if (p < nvec) {
            float t = 0.0f;
#pragma unroll
            for (int j = 0; j < V; j++) {
                float a = v[i][j] - mean;
                t += a * a;
            }
            q += t;
        }
    }
    float var = r.sum(q, red) / (float)dim;
    rstd = 1.0f / sqrtf(var + eps);
}

/* The same over a CTA per row (v[i]: vector threadIdx.x + i * blockDim.x). */
template <int P, int V>
__device__ __forceinline__ void emb_row_layernorm_stats(const float (&v)[P][V], int nvec, int dim,
                                                        float eps, float *red, float &mean,
                                                        float &rstd) {
    emb_row_layernorm_stats(emb_row<0>(0), v, nvec, dim, eps, red, mean, rstd);
}

/* Vectors of V elements each thread keeps of its row in registers: with a
 * CTA per row, 8 floats either way (V = 16 / sizeof(T) when the width and the
 * pointers allow 16-byte accesses, V = 2 (pairs) otherwise); with a warp per
 * row, 4 vectors per lane, rows up to 128 V wide (1024 halves). */
template <int V, int W = 0> struct norm_slots { enum { NV = W ? 4 : 2 * EMB_ROW_PAIRS / V }; };
#define EMB_WARP_ROWS 4   /* rows per CTA with a warp per row */

/* 1 / RMS of a row held in norm_slots registers (unused slots hold 0). */
template <int W, int V, int NV>
__device__ __forceinline__ float row_rrms(const emb_row<W> &r, const float (&v)[NV][V], int dim, float eps,
                                          float *red) {
    float q = 0.0f;
#pragma unroll
    for (int i = 0; i < NV; i++) {
        float t = 0.0f;
#pragma unroll
        for (int j = 0; j < V; j++) t += v[i][j] * v[i][j];
        q += t;
    }
    return 1.0f / sqrtf(r.sum(q, red) / (float)dim + eps);
}

static inline cudaError_t emb_launch_status(void) { return cudaGetLastError(); }

/* Launches KERNEL<T, V, W> over `rows` rows of `dim`: with 16-byte vectors
 * (vec16) a warp per row, EMB_WARP_ROWS rows per CTA, when the row fits a
 * warp's slots (no barrier, several rows per CTA), else a CTA per row; pairs
 * otherwise (a CTA per row with emb_row_threads: two pairs per thread on
 * short rows). */
#define EMB_ROW_LAUNCH(KERNEL, T, vec16, rows, dim, stream, ...)                                \
    do {                                                                                        \
        enum { V_ = EMB_VEC16(T) };                                                             \
        auto KERNEL##_w = KERNEL<T, V_, EMB_WARP_ROWS>;                                         \
        auto KERNEL##_v = KERNEL<T, V_, 0>;                                                     \
        auto KERNEL##_pairs = KERNEL<T, 2, 0>;                                                  \
        if (vec16 && (dim) <= 32 * V_ * norm_slots<V_, EMB_WARP_ROWS>::NV)                      \
            EMB_LAUNCH(KERNEL##_w, dim3(((rows) + EMB_WARP_ROWS - 1) / EMB_WARP_ROWS),          \
                       dim3(32 * EMB_WARP_ROWS), 0, stream)(__VA_ARGS__);                       \
        else if (vec16)                                                                         \
            EMB_LAUNCH(KERNEL##_v, dim3(rows),                                                  \
                       dim3(emb_row_threads_vec((dim) / V_, norm_slots<V_>::NV)), 0, stream)(   \
                __VA_ARGS__);                                                                   \
        else                                                                                    \
            EMB_LAUNCH(KERNEL##_pairs, dim3(rows), dim3(emb_row_threads(dim)), 0, stream)(      \
                __VA_ARGS__);                                                                   \
    } while (0)

/* Calls F<T>() for the element type `dt`; unknown types are a caller bug. */
#define EMB_DISPATCH_DT(dt, T, ...)                                             \
    do {                                                                        \
        switch (dt) {                                                           \
        case EMB_KDT_F32: { typedef float T; __VA_ARGS__; } break;              \
        case EMB_KDT_F16: { typedef __half T; __VA_ARGS__; } break;             \
        case EMB_KDT_BF16: { typedef __nv_bfloat16 T; __VA_ARGS__; } break;     \
        default: return cudaErrorInvalidValue;                                  \
        }                                                                       \
    } while (0)

#endif
