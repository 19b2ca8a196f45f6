/* test_block.cu: blocks, barriers, shared memory, launch configuration,
 * atomics and the math/fp16 functions the simulator adds. */
#include "helpers.h"

#include <cmath>

/* Tree reduction in shared memory: exact on integers, so any lost update
 * or missed barrier would show. */
__global__ void block_sum_kernel(const int *in, long long *out, int n)
{
    EMB_SHARED(long long, part, 256);
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    part[threadIdx.x] = i < n ? in[i] : 0;
    __syncthreads();
    for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s)
            part[threadIdx.x] += part[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0)
        out[blockIdx.x] = part[0];
}

Test(block, shared_memory_reduction_awkward_sizes)
{
    for (int n : {1, 31, 33, 513, 4097}) {
        std::vector<int> in(static_cast<size_t>(n));
        uint64_t seed = static_cast<uint64_t>(n);
        for (int &x : in)
            x = static_cast<int>(test_rand(seed) % 2001) - 1000;
        int blocks = (n + 255) / 256;
        DevBuf<int> din(in);
        DevBuf<long long> dout(static_cast<size_t>(blocks));
        std::vector<long long> r = under_all_orders([&] {
            EMB_LAUNCH(block_sum_kernel, blocks, 256, 0, 0)(din.d, dout.d, n);
            CUDA_OK(cudaGetLastError());
            return dout.get();
        });
        for (int b = 0; b < blocks; b++) {
            long long s = 0;
            for (int i = b * 256; i < n && i < (b + 1) * 256; i++)
                s += in[static_cast<size_t>(i)];
            cr_assert_eq(r[static_cast<size_t>(b)], s, "n=%d block %d", n, b);
        }
    }
}

__global__ void barrier_variants_kernel(int *out)
{
    int t = static_cast<int>(threadIdx.x);
    int c = __syncthreads_count(t % 3 == 0);
    int a = __syncthreads_and(t < 1000);
    int a2 = __syncthreads_and(t != 5);
    int o = __syncthreads_or(t == 77);
    int o2 = __syncthreads_or(0);
    if (t == 0) {
        out[0] = c;
        out[1] = a;
        out[2] = a2;
        out[3] = o;
        out[4] = o2;
    }
}

Test(block, syncthreads_count_and_or)
{
    DevBuf<int> out(5);
    EMB_LAUNCH(barrier_variants_kernel, 1, 100, 0, 0)(out.d);
    std::vector<int> o = out.get();
    cr_assert_eq(o[0], 34);
    cr_assert_eq(o[1], 1);
    cr_assert_eq(o[2], 0);
    cr_assert_eq(o[3], 1);
    cr_assert_eq(o[4], 0);
}

/* Every thread writes where its 3-D indices say: each slot exactly once. */
__global__ void index_kernel(int *out)
{
    unsigned bx = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    unsigned tx = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    unsigned per_block = blockDim.x * blockDim.y * blockDim.z;
    atomicAdd(&out[bx * per_block + tx], static_cast<int>(bx * 1000 + tx + 1));
}

Test(block, three_dimensional_indices)
{
    dim3 grid(3, 2, 2), block(4, 3, 5);
    size_t total = 12 * 60;
    DevBuf<int> out(total);
    CUDA_OK(cudaMemset(out.d, 0, total * sizeof(int)));
    EMB_LAUNCH(index_kernel, grid, block, 0, 0)(out.d);
    std::vector<int> o = out.get();
    for (size_t b = 0; b < 12; b++)
        for (size_t t = 0; t < 60; t++)
            cr_assert_eq(o[b * 60 + t], static_cast<int>(b * 1000 + t + 1));
}

/* Dynamic shared memory above 48 KB needs the attribute, as on a GPU. */
__global__ void dynamic_smem_kernel(float *out, int n)
{
    EMB_DYNAMIC_SHARED(float, buf);
    EMB_SHARED(int, flag, 1);
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        buf[i] = static_cast<float>(i) * 2.0f;
    if (threadIdx.x == 0)
        flag[0] = 7;
    __syncthreads();
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        out[i] = buf[n - 1 - i] + static_cast<float>(flag[0]);
}

Test(block, dynamic_shared_memory_and_its_limit)
{
    int n = 100 * 1024 / 4;
    size_t bytes = static_cast<size_t>(n) * sizeof(float);
    DevBuf<float> out(static_cast<size_t>(n));
    EMB_LAUNCH(dynamic_smem_kernel, 1, 128, bytes, 0)(out.d, n);
    cr_assert_eq(cudaGetLastError(), cudaErrorInvalidValue, "100 KB without the attribute must fail");
    CUDA_OK(cudaFuncSetAttribute(dynamic_smem_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
    EMB_LAUNCH(dynamic_smem_kernel, 1, 128, bytes, 0)(out.d, n);
    CUDA_OK(cudaGetLastError());
    std::vector<float> o = out.get();
    for (int i = 0; i < n; i++)
        cr_assert_eq(o[static_cast<size_t>(i)], static_cast<float>(n - 1 - i) * 2.0f + 7.0f);
    cr_assert_eq(cudaFuncSetAttribute(dynamic_smem_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 300 * 1024),
                 cudaErrorInvalidValue);
}

__global__ void noop_kernel(int *p) { (void)p; }

Test(block, invalid_launch_configurations)
{
    EMB_LAUNCH(noop_kernel, 1, 1025, 0, 0)(nullptr);
    cr_assert_eq(cudaGetLastError(), cudaErrorInvalidConfiguration);
    EMB_LAUNCH(noop_kernel, 1, dim3(1, 1, 65), 0, 0)(nullptr);
    cr_assert_eq(cudaPeekAtLastError(), cudaErrorInvalidConfiguration);
    cr_assert_eq(cudaGetLastError(), cudaErrorInvalidConfiguration);
    cr_assert_eq(cudaGetLastError(), cudaSuccess, "cudaGetLastError resets the error");
    EMB_LAUNCH(noop_kernel, dim3(1, 70000), 32, 0, 0)(nullptr);
    cr_assert_eq(cudaGetLastError(), cudaErrorInvalidConfiguration);
    EMB_LAUNCH(noop_kernel, 0, 32, 0, 0)(nullptr);
    cr_assert_eq(cudaGetLastError(), cudaErrorInvalidConfiguration);
    EMB_LAUNCH(noop_kernel, dim3(2147483647u), 1, 0, 0)(nullptr); /* valid, but never synchronised: not run */
    cr_assert_eq(cudaGetLastError(), cudaSuccess);
}

__global__ void atomics_kernel(int *i, unsigned *u, float *f, unsigned long long *ull, int *mx)
{
    int t = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
    atomicAdd(i, 1);
    atomicSub(i + 1, 2);
    atomicMax(mx, t * 7 % 1000);
    atomicMin(mx + 1, 500 - t);
    atomicOr(u, 1u << (t % 32));
    atomicInc(u + 1, 9);
    atomicAdd(f, 0.5f);
    atomicAdd(ull, 3ull);
    int old = atomicCAS(i + 2, 0, t + 1); /* exactly one thread wins */
    if (old == 0)
        atomicExch(i + 3, t + 1);
}

Test(block, atomics)
{
    DevBuf<int> i(4), mx(2);
    DevBuf<unsigned> u(2);
    DevBuf<float> f(1);
    DevBuf<unsigned long long> ull(1);
    i.put({0, 0, 0, 0});
    mx.put({-1, 1 << 30});
    u.put({0, 0});
    f.put({0});
    ull.put({0});
    EMB_LAUNCH(atomics_kernel, 4, 64, 0, 0)(i.d, u.d, f.d, ull.d, mx.d);
    std::vector<int> iv = i.get(), mv = mx.get();
    std::vector<unsigned> uv = u.get();
    cr_assert_eq(iv[0], 256);
    cr_assert_eq(iv[1], -512);
    cr_assert(iv[2] >= 1 && iv[2] <= 256);
    cr_assert_eq(iv[3], iv[2], "the CAS winner also did the exchange");
    int expect_max = 0;
    for (int t = 0; t < 256; t++)
        expect_max = t * 7 % 1000 > expect_max ? t * 7 % 1000 : expect_max;
    cr_assert_eq(mv[0], expect_max);
    cr_assert_eq(mv[1], 500 - 255);
    cr_assert_eq(uv[0], 0xffffffffu);
    cr_assert_eq(uv[1], 256u % 10u);
    cr_assert_eq(f.get()[0], 128.0f);
    cr_assert_eq(ull.get()[0], 768ull);
}

__global__ void math_kernel(const float *x, float *out, __half *hout, __nv_bfloat16 *bout)
{
    float v = x[threadIdx.x];
    float *o = out + 8 * threadIdx.x;
    o[0] = __expf(v);
    o[1] = rsqrtf(fabsf(v) + 1.0f);
    o[2] = __fdividef(v, 3.0f);
    o[3] = __frcp_rn(v + 4.0f);
    o[4] = __fmaf_rn(v, v, 1.0f);
    o[5] = erff(v);
    o[6] = __saturatef(v);
    o[7] = __int_as_float(__float_as_int(v));
    __half h = __float2half(v);
    hout[3 * threadIdx.x] = __hfma(h, h, __float2half(0.25f));
    hout[3 * threadIdx.x + 1] = hexp(h);
    hout[3 * threadIdx.x + 2] = __half(__nv_bfloat16(h)); /* half -> bf16 -> half */
    __nv_bfloat16 b = __float2bfloat16(v);
    __nv_bfloat162 b2 = __hfma2(__halves2bfloat162(b, b), __halves2bfloat162(b, b), __float2bfloat162_rn(1.0f));
    bout[2 * threadIdx.x] = __low2bfloat16(b2);
    bout[2 * threadIdx.x + 1] = hrsqrt(__float2bfloat16(fabsf(v) + 1.0f));
}

Test(block, math_and_fp16_functions)
{
    std::vector<float> x(32);
    for (int i = 0; i < 32; i++)
        x[static_cast<size_t>(i)] = (static_cast<float>(i) - 15.5f) / 8.0f;
    DevBuf<float> dx(x), out(32 * 8);
    DevBuf<__half> hout(32 * 3);
    DevBuf<__nv_bfloat16> bout(32 * 2);
    EMB_LAUNCH(math_kernel, 1, 32, 0, 0)(dx.d, out.d, hout.d, bout.d);
    std::vector<float> o = out.get();
    std::vector<__half> h = hout.get();
    std::vector<__nv_bfloat16> b = bout.get();
    for (size_t i = 0; i < 32; i++) {
        float v = x[i];
        const float *r = &o[i * 8];
        cr_assert_float_eq(r[0], expf(v), 1e-6f * expf(v));
        cr_assert_float_eq(r[1], 1.0f / sqrtf(fabsf(v) + 1.0f), 1e-6f);
        cr_assert_float_eq(r[2], v / 3.0f, 1e-6f);
        cr_assert_eq(r[3], 1.0f / (v + 4.0f));
        cr_assert_eq(r[4], fmaf(v, v, 1.0f));
        cr_assert_float_eq(r[5], erff(v), 1e-6f);
        cr_assert_eq(r[6], v < 0 ? 0.0f : v > 1 ? 1.0f : v);
        cr_assert_eq(r[7], v);
        /* fma rounds once: compare with the exact value rounded to half */
        double hv = __half2float(__float2half(v));
        cr_assert_eq(__half2float(h[i * 3]), __half2float(__double2half(hv * hv + 0.25)));
        cr_assert_float_eq(__half2float(h[i * 3 + 1]), expf(static_cast<float>(hv)), 2e-3f * expf(static_cast<float>(hv)));
        cr_assert_eq(__half2float(h[i * 3 + 2]), __bfloat162float(__float2bfloat16(static_cast<float>(hv))));
        double bv = __bfloat162float(__float2bfloat16(v));
        cr_assert_eq(__bfloat162float(b[i * 2]), __bfloat162float(__double2bfloat16(bv * bv + 1.0)));
        cr_assert_float_eq(__bfloat162float(b[i * 2 + 1]), 1.0f / sqrtf(fabsf(v) + 1.0f), 1e-2f);
    }
}

/* Same result in the three orders, and the grid runs in every order. */
__global__ void block_order_kernel(int *trace, int *counter)
{
    if (threadIdx.x == 0)
        trace[atomicAdd(counter, 1)] = static_cast<int>(blockIdx.x);
}

Test(block, block_order_follows_the_setting)
{
    DevBuf<int> trace(8), counter(1);
    embsim_set_order(EMBSIM_REVERSE, 0);
    counter.put({0});
    EMB_LAUNCH(block_order_kernel, 8, 4, 0, 0)(trace.d, counter.d);
    std::vector<int> t = trace.get();
    for (int i = 0; i < 8; i++)
        cr_assert_eq(t[static_cast<size_t>(i)], 7 - i);
    embsim_set_order(EMBSIM_FORWARD, 0);
    counter.put({0});
    EMB_LAUNCH(block_order_kernel, 8, 4, 0, 0)(trace.d, counter.d);
    t = trace.get();
    for (int i = 0; i < 8; i++)
        cr_assert_eq(t[static_cast<size_t>(i)], i);
}
