/*
 * Element-type conversion on the device: hidden states (fp16/bf16) back to
 * fp32 for token_embeddings() and the tests, without a host-side loop. 16-byte
 * loads (8 halves, written as 32 bytes of floats) where n and the pointers
 * allow, single elements otherwise.
 */
#include "common.cuh"

template <typename T, int V>
__global__ void to_f32_kernel(float *__restrict__ dst, const T *__restrict__ src, size_t nvec) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < nvec;
         i += (size_t)gridDim.x * blockDim.x) {
        float f[V];
        emb_ldv<T, V>(src + V * i, f);
        emb_stv<float, V>(dst + V * i, f);
    }
}

extern "C" cudaError_t emb_launch_to_f32(float *dst, const void *src, emb_kdtype dt, size_t n,
                                         cudaStream_t stream) {
    if (n == 0) return cudaSuccess;
    EMB_DISPATCH_DT(dt, T,
        constexpr int V = EMB_VEC16(T);
        const bool vec = emb_vec_ok(n, V, sizeof(T), src) && emb_vec_ok(n, V, sizeof(float), dst);
        const size_t nvec = vec ? n / V : n;
        size_t blocks = (nvec + 255) / 256;
        if (blocks > 65535) blocks = 65535;
        auto kv = to_f32_kernel<T, V>;
        auto k1 = to_f32_kernel<T, 1>;
        if (vec) EMB_LAUNCH(kv, dim3((unsigned)blocks), dim3(256), 0, stream)(dst, (const T *)src, nvec);
        else EMB_LAUNCH(k1, dim3((unsigned)blocks), dim3(256), 0, stream)(dst, (const T *)src, nvec));
    return emb_launch_status();
}
