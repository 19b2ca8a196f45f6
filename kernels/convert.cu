/*
 * Element-type conversion on the device: hidden states (fp16/bf16) back to
 * fp32 for token_embeddings() and the tests, without a host-side loop.
 */
#include "common.cuh"

template <typename T>
__global__ void to_f32_kernel(float *__restrict__ dst, const T *__restrict__ src, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        dst[i] = emb_ld(src + i);
}

extern "C" cudaError_t emb_launch_to_f32(float *dst, const void *src, emb_kdtype dt, size_t n,
                                         cudaStream_t stream) {
    if (n == 0) return cudaSuccess;
    size_t blocks = (n + 255) / 256;
    if (blocks > 65535) blocks = 65535;
    EMB_DISPATCH_DT(dt, T,
        EMB_LAUNCH(to_f32_kernel<T>, dim3((unsigned)blocks), dim3(256), 0, stream)(
            dst, (const T *)src, n));
    return emb_launch_status();
}
