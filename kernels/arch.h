/* kernels/arch.h: the only project header a kernel includes.
 *
 * Every kernel is compiled twice: by nvcc for the GPU, and by the host C++
 * compiler against the CUDA simulator in tests/sim (when EMBEDC_SIM is
 * defined). This header is the seam between the two. It gives kernels
 *   - EMB_LAUNCH(kernel, grid, block, smem_bytes, stream)(args...): the only
 *     way to launch; nvcc's <<<...>>> or a simulator launch;
 *   - EMB_SHARED(type, name, count) / EMB_DYNAMIC_SHARED(type, name): the only
 *     way to declare shared memory (the simulator puts it in a checked arena);
 *   - small wrappers around the PTX instructions kernels may need (mma.sync,
 *     ldmatrix, cp.async, and on sm_90a wgmma), so that no kernel body
 *     contains inline PTX: each has an nvcc body and a simulator body that
 *     follows the PTX ISA's per-lane fragment layouts.
 * Everything else (threadIdx, __syncthreads, shuffles, atomics, __half, ...)
 * is plain CUDA; under the simulator it comes from tests/sim/embsim_device.h.
 *
 * Launching a templated kernel whose template arguments contain a comma: take
 * a pointer first (auto k = my_kernel<float, 4>; EMB_LAUNCH(k, ...)(...)),
 * since a preprocessor argument cannot contain a bare comma.
 */
#ifndef EMBEDC_KERNELS_ARCH_H
#define EMBEDC_KERNELS_ARCH_H

#include <stdint.h>

/* EMB_SIM_ASSERT(cond): a check the simulator makes and the GPU build
 * compiles out, for conditions the simulator cannot otherwise see (a global
 * read outside its table: it only checks writes against red zones). A false
 * condition traps, which fails the launch with the kernel and thread. */
#if defined(EMBEDC_SIM)
#define EMB_SIM_ASSERT(cond) \
    do {                     \
        if (!(cond)) __trap(); \
    } while (0)
#else
#define EMB_SIM_ASSERT(cond) ((void)0)
#endif

#if defined(EMBEDC_SIM)

#include <embsim_device.h>

#else /* nvcc */

#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>

#define EMB_LAUNCH(kernel, grid, block, smem_bytes, stream) \
    kernel<<<(grid), (block), (smem_bytes), (stream)>>>

/* `count` may carry further dimensions: EMB_SHARED(float, tile, 32][33). */
#define EMB_SHARED(type, name, count) __shared__ type name[count]

/* One extern array name of one type for the whole program: nvcc rejects the
 * same extern __shared__ name declared with different types in two kernels. */
#define EMB_DYNAMIC_SHARED(type, name)                                  \
    extern __shared__ __align__(16) unsigned char emb_dynamic_smem_[]; \
    type *const name = reinterpret_cast<type *>(emb_dynamic_smem_)

/* mma.sync.m16n8k16, row.col, fp32 accumulate. Fragment layout (PTX ISA,
 * "Matrix Fragments for mma.m16n8k16"): with g = lane / 4, t = lane % 4,
 *   a[0] = A[g][2t..2t+1]      a[1] = A[g+8][2t..2t+1]
 *   a[2] = A[g][2t+8..2t+9]    a[3] = A[g+8][2t+8..2t+9]
 *   b[0] = B[2t..2t+1][g]      b[1] = B[2t+8..2t+9][g]
 *   c/d[0,1] = C[g][2t..2t+1]  c/d[2,3] = C[g+8][2t..2t+1]
 * (each uint32_t holds two 16-bit elements, lower column/row in the low half). */
__device__ __forceinline__ void emb_mma_m16n8k16_f16f32(float d[4], const uint32_t a[4],
                                                        const uint32_t b[2], const float c[4])
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%11,%12,%13};\n"
                 : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]),
                   "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
#else
    __trap();
#endif
}

__device__ __forceinline__ void emb_mma_m16n8k16_bf16f32(float d[4], const uint32_t a[4],
                                                         const uint32_t b[2], const float c[4])
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%11,%12,%13};\n"
                 : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]),
                   "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
#else
    __trap();
#endif
}

/* ldmatrix.sync.m8n8.b16: lanes 8i..8i+7 give the row addresses (16 bytes
 * each, shared memory) of matrix i; lane l receives r[i] = row l/4, elements
 * 2(l%4), 2(l%4)+1 of matrix i (.trans: of its transpose). x2 uses the
 * addresses of lanes 0..15; lanes 16..31 must still pass a valid pointer. */
__device__ __forceinline__ void emb_ldmatrix_x4(uint32_t r[4], const void *smem_ptr)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(smem_ptr));
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
#else
    __trap();
#endif
}

__device__ __forceinline__ void emb_ldmatrix_x2(uint32_t r[2], const void *smem_ptr)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(smem_ptr));
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n"
                 : "=r"(r[0]), "=r"(r[1])
                 : "r"(addr));
#else
    __trap();
#endif
}

__device__ __forceinline__ void emb_ldmatrix_x4_trans(uint32_t r[4], const void *smem_ptr)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(smem_ptr));
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
#else
    __trap();
#endif
}

__device__ __forceinline__ void emb_ldmatrix_x2_trans(uint32_t r[2], const void *smem_ptr)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(smem_ptr));
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n"
                 : "=r"(r[0]), "=r"(r[1])
                 : "r"(addr));
#else
    __trap();
#endif
}

/* 2^x by the special-function unit alone (ex2.approx.ftz.f32, about 2 ulp):
 * exp2f adds a compare and two predicated multiplies around the same MUFU
 * instruction to keep results below 2^-126 (denormals), which the callers
 * (softmax probabilities, rounded to 16 bits or summed next to a 1) do not
 * need: those flush to 0. */
__device__ __forceinline__ float emb_ex2_ftz(float x)
{
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

/* cp.async.cg: 16 bytes global -> shared, bypassing L1. Both addresses must
 * be 16-byte aligned. The data is visible to the issuing thread only after a
 * wait covering its group; other threads also need a __syncthreads. When
 * !valid nothing is read and the 16 bytes are written as zeros (the PTX
 * src-size operand, 16 or 0): one instruction either way, so a tile's rows
 * past the end of a sequence need no branch and no separate store.
 * emb_cp_async_16 is the always-valid form. */
__device__ __forceinline__ void emb_cp_async_16_zfill(void *smem_dst, const void *gmem_src, bool valid)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(smem_dst));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(addr), "l"(gmem_src),
                 "r"(valid ? 16 : 0));
#else
    __trap();
#endif
}

__device__ __forceinline__ void emb_cp_async_16(void *smem_dst, const void *gmem_src)
{
    emb_cp_async_16_zfill(smem_dst, gmem_src, true);
}

__device__ __forceinline__ void emb_cp_async_commit(void)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.commit_group;\n" ::);
#else
    __trap();
#endif
}

__device__ __forceinline__ void emb_cp_async_wait_all(void)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.wait_all;\n" ::);
#else
    __trap();
#endif
}

/* Wait until at most N of this thread's committed groups are still pending. */
template <int N>
__device__ __forceinline__ void emb_cp_async_wait_group(void)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
#else
    __trap();
#endif
}

/* ---- sm_90a: warpgroup MMA (wgmma.mma_async m64nNk16, fp32 accumulate) ----
 * A warpgroup (4 consecutive warps, 128 threads, all of them) computes
 * D[64][N] += A[64][16] B[16][N]. Warp w of the group owns rows 16w..16w+15;
 * its accumulator fragment d[N/2] has the mma.m16n8 C layout per 8 columns:
 *   d[4j + e] = D[16w + g + 8 (e >= 2)][8j + 2t + (e & 1)], g = lane/4, t = lane%4
 * and an A fragment in registers (emb_wgmma_rs_mn) is the mma.m16n8k16 A
 * fragment of the warp's 16 rows. Shared-memory operands are given by
 * descriptors (emb_wgmma_desc) of the no-swizzle canonical layout: 8-row x
 * 16-byte core matrices, each 128 contiguous bytes (row r at 16 r), `lbo`
 * the byte distance between core matrices adjacent along K and `sbo` along
 * M/N. K-major (A and B of emb_wgmma_ss): element (mn, k) at
 *   (mn/8) sbo + (k/8) lbo + (mn%8) 16 + (k%8) 2;
 * MN-major (B of emb_wgmma_rs_mn, imm-trans-b): element (k, n) at
 *   (n/8) sbo + (k/8) lbo + (k%8) 16 + (n%8) 2.
 * Protocol: emb_wgmma_fence() before issuing (after the accumulators or A
 * registers were last written), emb_fence_proxy_async() by every thread that
 * wrote a shared operand, before the __syncthreads that publishes it; then
 * the wgmma calls, emb_wgmma_commit(), emb_wgmma_wait<N>() (at most N groups
 * left in flight), and emb_wgmma_fence_acc<R>(d) on the accumulators before
 * reading them. Nothing may read the accumulators, or write the shared
 * operands, between the issue and the wait that covers it. EMB_HAVE_WGMMA is
 * 1 where these exist (sm_90a code, and the simulator); elsewhere they trap. */
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define EMB_HAVE_WGMMA 1
#else
#define EMB_HAVE_WGMMA 0
#endif

__device__ __forceinline__ uint64_t emb_wgmma_desc(const void *smem, uint32_t lbo, uint32_t sbo)
{
    const uint32_t a = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
    return static_cast<uint64_t>((a & 0x3FFFFu) >> 4) | (static_cast<uint64_t>((lbo & 0x3FFFFu) >> 4) << 16) |
           (static_cast<uint64_t>((sbo & 0x3FFFFu) >> 4) << 32);
}

__device__ __forceinline__ void emb_wgmma_fence(void)
{
#if EMB_HAVE_WGMMA
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#else
    __trap();
#endif
}

__device__ __forceinline__ void emb_fence_proxy_async(void)
{
#if EMB_HAVE_WGMMA
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#else
    __trap();
#endif
}

__device__ __forceinline__ void emb_wgmma_commit(void)
{
#if EMB_HAVE_WGMMA
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#else
    __trap();
#endif
}

template <int N>
__device__ __forceinline__ void emb_wgmma_wait(void)
{
#if EMB_HAVE_WGMMA
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
#else
    __trap();
#endif
}

/* Keeps the compiler from moving reads or writes of the R accumulator
 * registers across the asynchronous wgmma (it cannot see that they change
 * at the wait). */
template <int R>
__device__ __forceinline__ void emb_wgmma_fence_acc(float *d)
{
#pragma unroll
    for (int i = 0; i < R; i++) asm volatile("" : "+f"(d[i])::"memory");
}

/* D += A B, A and B K-major in shared memory. */
template <typename T, int N>
__device__ void emb_wgmma_ss(float *d, uint64_t da, uint64_t db);
/* D += A B, A in registers, B MN-major in shared memory. */
template <typename T, int N>
__device__ void emb_wgmma_rs_mn(float *d, const uint32_t a[4], uint64_t db);

#include "wgmma_ops.cuh"

#endif /* EMBEDC_SIM */

#endif /* EMBEDC_KERNELS_ARCH_H */
