/* test_tensor.cu: the arch.h tensor-core and async-copy helpers. One warp
 * stages A (16x16) and B (16x8) in shared memory with cp.async, loads the
 * fragments with ldmatrix (B both as k-major rows with .trans and as n-major
 * rows without) and multiplies with mma.sync; the result must equal a plain
 * matmul. A second kernel builds the fragments by hand from the PTX ISA's
 * layout table, so ldmatrix and mma are checked independently. */
#include "helpers.h"

#include <cmath>

template <typename T>
__global__ void mma_ldmatrix_kernel(const T *A, const T *B, const T *Bt, const float *C, float *D, float *D2)
{
    EMB_SHARED(T, As, 16 * 16);
    EMB_SHARED(T, Bs, 16 * 8);  /* [k][n] */
    EMB_SHARED(T, Bts, 8 * 16); /* [n][k] */
    int lane = threadIdx.x;
    /* 16x16 halves = 512 bytes = 32 chunks of 16 bytes: one per lane. */
    emb_cp_async_16(As + lane * 8, A + lane * 8);
    if (lane < 16) {
        emb_cp_async_16(Bs + lane * 8, B + lane * 8);
        emb_cp_async_16(Bts + lane * 8, Bt + lane * 8);
    }
    emb_cp_async_commit();
    emb_cp_async_wait_group<0>();
    __syncthreads();
    uint32_t a[4], b[2], bt[2];
    emb_ldmatrix_x4(a, As + (lane % 16) * 16 + (lane / 16) * 8);
    emb_ldmatrix_x2_trans(b, Bs + (lane % 16) * 8);
    emb_ldmatrix_x2(bt, Bts + (lane % 8) * 16 + ((lane / 8) % 2) * 8);
    int g = lane / 4, t = lane % 4;
    float c[4] = {C[g * 8 + 2 * t], C[g * 8 + 2 * t + 1], C[(g + 8) * 8 + 2 * t], C[(g + 8) * 8 + 2 * t + 1]};
    float d[4], d2[4];
    if constexpr (std::is_same_v<T, __half>) {
        emb_mma_m16n8k16_f16f32(d, a, b, c);
        emb_mma_m16n8k16_f16f32(d2, a, bt, c);
    } else {
        emb_mma_m16n8k16_bf16f32(d, a, b, c);
        emb_mma_m16n8k16_bf16f32(d2, a, bt, c);
    }
    D[g * 8 + 2 * t] = d[0];
    D[g * 8 + 2 * t + 1] = d[1];
    D[(g + 8) * 8 + 2 * t] = d[2];
    D[(g + 8) * 8 + 2 * t + 1] = d[3];
    D2[g * 8 + 2 * t] = d2[0];
    D2[g * 8 + 2 * t + 1] = d2[1];
    D2[(g + 8) * 8 + 2 * t] = d2[2];
    D2[(g + 8) * 8 + 2 * t + 1] = d2[3];
}

template <typename T>
static uint32_t pack(T lo, T hi)
{
    uint16_t l, h;
    memcpy(&l, static_cast<const void *>(&lo), 2);
    memcpy(&h, static_cast<const void *>(&hi), 2);
    return static_cast<uint32_t>(l) | (static_cast<uint32_t>(h) << 16);
}

/* Fragments straight from the PTX ISA table ("mma.m16n8k16 fragments"). */
__global__ void mma_manual_kernel(const __half *A, const __half *B, float *D)
{
    int lane = threadIdx.x, g = lane / 4, t = lane % 4;
    uint32_t a[4] = {pack(A[g * 16 + 2 * t], A[g * 16 + 2 * t + 1]), pack(A[(g + 8) * 16 + 2 * t], A[(g + 8) * 16 + 2 * t + 1]),
                     pack(A[g * 16 + 2 * t + 8], A[g * 16 + 2 * t + 9]),
                     pack(A[(g + 8) * 16 + 2 * t + 8], A[(g + 8) * 16 + 2 * t + 9])};
    uint32_t b[2] = {pack(B[(2 * t) * 8 + g], B[(2 * t + 1) * 8 + g]), pack(B[(2 * t + 8) * 8 + g], B[(2 * t + 9) * 8 + g])};
    float c[4] = {0, 0, 0, 0}, d[4];
    emb_mma_m16n8k16_f16f32(d, a, b, c);
    D[g * 8 + 2 * t] = d[0];
    D[g * 8 + 2 * t + 1] = d[1];
    D[(g + 8) * 8 + 2 * t] = d[2];
    D[(g + 8) * 8 + 2 * t + 1] = d[3];
}

template <typename T>
static T cvt(float f)
{
    if constexpr (std::is_same_v<T, __half>)
        return __float2half(f);
    else
        return __float2bfloat16(f);
}
static float back(__half h) { return __half2float(h); }
static float back(__nv_bfloat16 b) { return __bfloat162float(b); }

template <typename T>
static void check_mma()
{
    uint64_t seed = 11;
    std::vector<T> A(256), B(128), Bt(128);
    std::vector<float> C(128);
    for (auto &x : A)
        x = cvt<T>(test_randf(seed));
    for (int k = 0; k < 16; k++)
        for (int n = 0; n < 8; n++) {
            B[static_cast<size_t>(k * 8 + n)] = cvt<T>(test_randf(seed));
            Bt[static_cast<size_t>(n * 16 + k)] = B[static_cast<size_t>(k * 8 + n)];
        }
    for (auto &x : C)
        x = test_randf(seed);
    DevBuf<T> dA(A), dB(B), dBt(Bt);
    DevBuf<float> dC(C), dD(128), dD2(128);
    auto k = mma_ldmatrix_kernel<T>;
    EMB_LAUNCH(k, 1, 32, 0, 0)(dA.d, dB.d, dBt.d, dC.d, dD.d, dD2.d);
    std::vector<float> D = dD.get(), D2 = dD2.get();
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 8; j++) {
            double acc = C[static_cast<size_t>(i * 8 + j)];
            for (int p = 0; p < 16; p++)
                acc += static_cast<double>(back(A[static_cast<size_t>(i * 16 + p)])) * back(B[static_cast<size_t>(p * 8 + j)]);
            cr_assert_float_eq(D[static_cast<size_t>(i * 8 + j)], acc, 1e-5, "D[%d][%d]", i, j);
            cr_assert_eq(D2[static_cast<size_t>(i * 8 + j)], D[static_cast<size_t>(i * 8 + j)], "ldmatrix .trans vs plain");
        }
}

Test(tensor, mma_f16_via_cp_async_and_ldmatrix) { check_mma<__half>(); }
Test(tensor, mma_bf16_via_cp_async_and_ldmatrix) { check_mma<__nv_bfloat16>(); }

Test(tensor, mma_fragments_follow_the_ptx_table)
{
    uint64_t seed = 21;
    std::vector<__half> A(256), B(128);
    for (auto &x : A)
        x = __float2half(test_randf(seed));
    for (auto &x : B)
        x = __float2half(test_randf(seed));
    DevBuf<__half> dA(A), dB(B);
    DevBuf<float> dD(128);
    EMB_LAUNCH(mma_manual_kernel, 1, 32, 0, 0)(dA.d, dB.d, dD.d);
    std::vector<float> D = dD.get();
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 8; j++) {
            double acc = 0;
            for (int p = 0; p < 16; p++)
                acc += static_cast<double>(__half2float(A[static_cast<size_t>(i * 16 + p)])) *
                       __half2float(B[static_cast<size_t>(p * 8 + j)]);
            cr_assert_float_eq(D[static_cast<size_t>(i * 8 + j)], acc, 1e-5);
        }
}

/* Until the wait, a cp.async destination still holds the poison. */
__global__ void cp_async_visibility_kernel(const float *src, float *out)
{
    EMB_SHARED(float, buf, 4);
    emb_cp_async_16(buf, src);
    emb_cp_async_commit();
    out[0] = buf[0]; /* too early */
    emb_cp_async_wait_all();
    out[1] = buf[0];
}

Test(tensor, cp_async_lands_at_the_wait)
{
    DevBuf<float> src(std::vector<float>{1, 2, 3, 4}), out(2);
    EMB_LAUNCH(cp_async_visibility_kernel, 1, 1, 0, 0)(src.d, out.d);
    std::vector<float> o = out.get();
    cr_assert(std::isnan(o[0]), "read before the wait sees the poison");
    cr_assert_eq(o[1], 1.0f);
}
