/*
 * A planted race for the ThreadSanitizer build of the kernel suite
 * (test_cuda_kernels_tsan): emb_block_sum's pattern (kernels/common.cuh),
 * warp partial sums through shared memory, with the barrier between the
 * writes and warp 0's reads made optional. Without it, TSan must report a
 * data race; with it, the kernel must run clean. Test-only: compiled into
 * the TSan kernel library next to kernels/*.cu, never into the engine.
 */
#include "common.cuh"

__global__ void planted_block_sum_kernel(const float *in, float *out, int with_barrier) {
    EMB_SHARED(float, red, 33);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int nwarps = (blockDim.x + 31) >> 5;
    float v = emb_warp_sum(in[blockIdx.x * blockDim.x + threadIdx.x]);
    if (lane == 0) red[warp] = v;
    if (with_barrier) __syncthreads();   /* the planted bug: skipped when 0 */
    if (warp == 0) {
        float w = lane < nwarps ? red[lane] : 0.0f;
        w = emb_warp_sum(w);
        if (lane == 0) out[blockIdx.x] = w;
    }
}

/* `blocks` blocks of 256 threads, one sum per block. */
extern "C" cudaError_t kt_planted_block_sum(const float *in, float *out, int blocks, int with_barrier,
                                            cudaStream_t stream) {
    EMB_LAUNCH(planted_block_sum_kernel, dim3(blocks), dim3(256), 0, stream)(in, out, with_barrier);
    return emb_launch_status();
}
