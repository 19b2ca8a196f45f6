/* tsan_main.cu: the ThreadSanitizer mode. Fiber switches carry no
 * happens-before here; only __syncthreads and warp collectives do. So a
 * shared-memory race, such as a reduction missing a barrier, is reported by
 * TSan, and a correct kernel runs clean. `sim_tsan race|warp-race|clean`. */
#include "arch.h"

#include <cstdio>
#include <cstring>
#include <vector>

__global__ void reduction_kernel(const int *in, int *out, int with_barrier)
{
    EMB_SHARED(int, part, 128);
    part[threadIdx.x] = in[threadIdx.x];
    __syncthreads();
    for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s)
            part[threadIdx.x] += part[threadIdx.x + s];
        if (with_barrier)
            __syncthreads();
    }
    if (threadIdx.x == 0)
        out[blockIdx.x] = part[0];
}

/* Warp-synchronous code without __syncwarp: a race since Volta. */
__global__ void warp_kernel(const int *in, int *out, int with_sync)
{
    EMB_SHARED(int, s, 64);
    s[threadIdx.x] = in[threadIdx.x];
    if (with_sync)
        __syncwarp();
    int v = s[threadIdx.x ^ 1];
    v += __shfl_xor_sync(0xffffffffu, v, 16);
    out[threadIdx.x] = v;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "clean";
    std::vector<int> h(128);
    for (int i = 0; i < 128; i++)
        h[static_cast<size_t>(i)] = i;
    int *in, *out;
    cudaMalloc(reinterpret_cast<void **>(&in), 128 * sizeof(int));
    cudaMalloc(reinterpret_cast<void **>(&out), 128 * sizeof(int));
    cudaMemcpy(in, h.data(), 128 * sizeof(int), cudaMemcpyHostToDevice);
    bool clean = !strcmp(mode, "clean");
    if (clean || !strcmp(mode, "race"))
        EMB_LAUNCH(reduction_kernel, 2, 128, 0, 0)(in, out, clean ? 1 : 0);
    if (clean || !strcmp(mode, "warp-race"))
        EMB_LAUNCH(warp_kernel, 1, 32, 0, 0)(in, out, clean ? 1 : 0);
    int r[2];
    cudaMemcpy(r, out, sizeof r, cudaMemcpyDeviceToHost);
    printf("%s: %d %d\n", mode, r[0], r[1]);
    cudaFree(in);
    cudaFree(out);
    return 0;
}
