/* test_tensor.cu: the arch.h tensor-core and async-copy helpers. One warp
 * stages A (16x16) and B (16x8) in shared memory with cp.async, loads the
 * fragments with ldmatrix (B both as k-major rows with .trans and as n-major
 * rows without) and multiplies with mma.sync; the result must equal a plain
 * matmul. A second kernel builds the fragments by hand from the PTX ISA's
 * layout table, so ldmatrix and mma are checked independently. The wgmma
 * tests run one warpgroup on padded no-swizzle shared tiles (A and B K-major,
 * or A in registers and B MN-major, one or two chained k-steps) against a
 * host matmul, check that the result lands only at the wait, and that a
 * swizzled descriptor is refused. */
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

/* A cp.async may land anywhere between its issue and its wait: forward
 * order lands it at the wait (before it, the destination still holds the
 * poison), reverse order at the issue, shuffle draws per copy. */
__global__ void cp_async_visibility_kernel(const float *src, float *out)
{
    EMB_SHARED(float, buf, 4);
    emb_cp_async_16(buf, src);
    emb_cp_async_commit();
    out[0] = buf[0]; /* too early */
    emb_cp_async_wait_all();
    out[1] = buf[0];
}

Test(tensor, cp_async_lands_at_the_wait_or_the_issue)
{
    const embsim_order was = embsim_get_order();
    DevBuf<float> src(std::vector<float>{1, 2, 3, 4}), out(2);
    for (int o = 0; o < 2; o++) {
        embsim_set_order(o ? EMBSIM_REVERSE : EMBSIM_FORWARD, 7);
        EMB_LAUNCH(cp_async_visibility_kernel, 1, 1, 0, 0)(src.d, out.d);
        std::vector<float> r = out.get();
        if (o) cr_expect_eq(r[0], 1.0f, "reverse order: the copy lands at its issue");
        else cr_expect(std::isnan(r[0]), "forward order: a read before the wait sees the poison");
        cr_expect_eq(r[1], 1.0f);
    }
    embsim_set_order(was, 12345);
}

/* The zero-fill form (src-size 0): the 16 bytes become zeros, with the same
 * timing as a copy (poison until the wait in forward order), and nothing is
 * read from the source. */
__global__ void cp_async_zfill_kernel(const float *src, float *out)
{
    EMB_SHARED(float, buf, 8);
    emb_cp_async_16_zfill(buf, src, true);
    emb_cp_async_16_zfill(buf + 4, src + 4, false);
    emb_cp_async_commit();
    out[0] = buf[4]; /* too early */
    emb_cp_async_wait_all();
    for (int i = 0; i < 8; i++)
        out[1 + i] = buf[i];
}

Test(tensor, cp_async_zero_fill)
{
    const embsim_order was = embsim_get_order();
    DevBuf<float> src(std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8}), out(9);
    for (int o = 0; o < 2; o++) {
        embsim_set_order(o ? EMBSIM_REVERSE : EMBSIM_FORWARD, 7);
        EMB_LAUNCH(cp_async_zfill_kernel, 1, 1, 0, 0)(src.d, out.d);
        std::vector<float> r = out.get();
        if (o) cr_expect_eq(r[0], 0.0f, "reverse order: the fill lands at its issue");
        else cr_expect(std::isnan(r[0]), "forward order: a read before the wait sees the poison");
        for (int i = 0; i < 4; i++) {
            cr_expect_eq(r[static_cast<size_t>(1 + i)], static_cast<float>(1 + i), "copied lane %d", i);
            cr_expect_eq(r[static_cast<size_t>(5 + i)], 0.0f, "zero-filled lane %d, not the source's", i);
        }
    }
    embsim_set_order(was, 12345);
}

/* In the orders other than forward a warp runs ahead to the next barrier
 * before the next one moves: a warp that overwrites a shared tile another
 * warp has yet to read, with no barrier between, changes what it reads. */
__global__ void overwrite_without_barrier_kernel(float *out, int barrier)
{
    EMB_SHARED(float, tile, 64);
    tile[threadIdx.x] = (float)threadIdx.x;
    __syncthreads();
    const float one = __shfl_xor_sync(0xffffffffu, 1.0f, 1);
    const float v = tile[(threadIdx.x + 32) & 63] * one;     /* the other warp's half */
    const float w = v + __shfl_xor_sync(0xffffffffu, v, 1);
    if (barrier)
        __syncthreads();
    tile[threadIdx.x] = -1.0f; /* the next tile */
    __syncthreads();
    out[threadIdx.x] = w;
}

Test(tensor, warps_run_ahead_to_the_barrier)
{
    const embsim_order was = embsim_get_order();
    DevBuf<float> out(64);
    std::vector<float> r[2][2];
    for (int barrier = 0; barrier < 2; barrier++)
        for (int o = 0; o < 2; o++) {
            embsim_set_order(o ? EMBSIM_REVERSE : EMBSIM_FORWARD, 99);
            EMB_LAUNCH(overwrite_without_barrier_kernel, 1, 64, 0, 0)(out.d, barrier);
            r[barrier][o] = out.get();
        }
    embsim_set_order(was, 12345);
    cr_expect(r[1][0] == r[1][1], "with the barrier both orders agree");
    cr_expect(r[0][0] == r[1][0], "forward order moves the warps in step: the race stays hidden");
    cr_expect(r[0][1] != r[1][1], "reverse order: warp 1 overwrites the tile before warp 0 reads it");
}

/* ---- wgmma (sm_90a warpgroup MMA) ------------------------------------------
 * One warpgroup (128 threads) computes D[64][N] = C + A[64][K] B[K][N] with
 * K = 16 * KS as KS chained wgmma calls in one commit group, each descriptor
 * advanced by the 2 core matrices (2 lbo) of one k-step. The shared tiles use
 * the no-swizzle canonical layout with padding between core matrices, lbo !=
 * sbo and neither equal to a row pitch, so a misread lbo/sbo/start address
 * lands on poison or on the wrong element. The reference is a plain matmul on
 * the host from the same 16-bit values. */
struct alignas(16) wg_chunk {
    uint32_t w[4];
};

/* Byte offset of element (mn, k) in a K-major tile and of (k, n) in an
 * MN-major tile (kernels/arch.h, "sm_90a: warpgroup MMA"). */
static inline uint32_t wg_kmajor(int mn, int k, uint32_t lbo, uint32_t sbo)
{
    return static_cast<uint32_t>(mn / 8) * sbo + static_cast<uint32_t>(k / 8) * lbo + static_cast<uint32_t>(mn % 8) * 16 +
           static_cast<uint32_t>(k % 8) * 2;
}
static inline uint32_t wg_mnmajor(int k, int n, uint32_t lbo, uint32_t sbo)
{
    return static_cast<uint32_t>(n / 8) * sbo + static_cast<uint32_t>(k / 8) * lbo + static_cast<uint32_t>(k % 8) * 16 +
           static_cast<uint32_t>(n % 8) * 2;
}

/* Where the tiles lie in dynamic shared memory. A starts at a non-zero
 * offset so that a dropped start address is caught too. */
struct WgLayout {
    uint32_t a_off, a_lbo, a_sbo; /* A, K-major (ss only) */
    uint32_t b_off, b_lbo, b_sbo; /* B, K-major (ss) or MN-major (rs) */
    uint32_t bytes;
};

template <int N, int KS>
static WgLayout wg_layout(bool rs)
{
    WgLayout L{};
    L.a_off = 64;
    L.a_lbo = 144;                   /* K neighbours: 128 + 16 padding */
    L.a_sbo = 2 * KS * L.a_lbo + 32; /* the next 8 rows, after all of K */
    uint32_t a_bytes = rs ? 0 : 8 * L.a_sbo;
    L.b_off = L.a_off + a_bytes + 48;
    if (rs) {
        L.b_lbo = 160;                   /* K neighbours: 128 + 32 padding */
        L.b_sbo = 2 * KS * L.b_lbo + 16; /* the next 8 columns, after all of K */
        L.bytes = L.b_off + (N / 8) * L.b_sbo;
    } else {
        L.b_sbo = 176;                    /* N neighbours: 128 + 48 padding */
        L.b_lbo = (N / 8) * L.b_sbo + 64; /* the next 8 k's, after all of N */
        L.bytes = L.b_off + 2 * KS * L.b_lbo;
    }
    return L;
}

/* Loads C into / stores D from the accumulator fragment of this thread. */
template <int N>
static void wg_load_acc(float *d, const float *C)
{
    int w = static_cast<int>(threadIdx.x) / 32 % 4, lane = static_cast<int>(threadIdx.x) % 32, g = lane / 4, t = lane % 4;
    for (int j = 0; j < N / 8; j++)
        for (int e = 0; e < 4; e++)
            d[4 * j + e] = C[(16 * w + g + (e >= 2 ? 8 : 0)) * N + 8 * j + 2 * t + (e & 1)];
}
template <int N>
static void wg_store_acc(float *D, const float *d)
{
    int w = static_cast<int>(threadIdx.x) / 32 % 4, lane = static_cast<int>(threadIdx.x) % 32, g = lane / 4, t = lane % 4;
    for (int j = 0; j < N / 8; j++)
        for (int e = 0; e < 4; e++)
            D[(16 * w + g + (e >= 2 ? 8 : 0)) * N + 8 * j + 2 * t + (e & 1)] = d[4 * j + e];
}

/* A: [64][K] row-major; B: [K][N] row-major; C, D: [64][N]. */
template <typename T, int N, int KS>
__global__ void wgmma_ss_kernel(const T *A, const T *B, const float *C, float *D, WgLayout L)
{
    EMB_DYNAMIC_SHARED(wg_chunk, smem);
    char *sm = reinterpret_cast<char *>(smem);
    const int K = 16 * KS, tid = static_cast<int>(threadIdx.x);
    for (int i = tid; i < 64 * K; i += 128)
        *reinterpret_cast<T *>(sm + L.a_off + wg_kmajor(i / K, i % K, L.a_lbo, L.a_sbo)) = A[i];
    for (int i = tid; i < K * N; i += 128) /* B[k][n] as the K-major B^T row n */
        *reinterpret_cast<T *>(sm + L.b_off + wg_kmajor(i % N, i / N, L.b_lbo, L.b_sbo)) = B[i];
    emb_fence_proxy_async();
    __syncthreads();
    float d[N / 2];
    wg_load_acc<N>(d, C);
    emb_wgmma_fence();
    for (int s = 0; s < KS; s++)
        emb_wgmma_ss<T, N>(d, emb_wgmma_desc(sm + L.a_off + 2 * s * L.a_lbo, L.a_lbo, L.a_sbo),
                           emb_wgmma_desc(sm + L.b_off + 2 * s * L.b_lbo, L.b_lbo, L.b_sbo));
    emb_wgmma_commit();
    emb_wgmma_wait<0>();
    emb_wgmma_fence_acc<N / 2>(d);
    wg_store_acc<N>(D, d);
}

template <typename T, int N, int KS>
__global__ void wgmma_rs_kernel(const T *A, const T *B, const float *C, float *D, WgLayout L)
{
    EMB_DYNAMIC_SHARED(wg_chunk, smem);
    char *sm = reinterpret_cast<char *>(smem);
    const int K = 16 * KS, tid = static_cast<int>(threadIdx.x);
    for (int i = tid; i < K * N; i += 128)
        *reinterpret_cast<T *>(sm + L.b_off + wg_mnmajor(i / N, i % N, L.b_lbo, L.b_sbo)) = B[i];
    emb_fence_proxy_async();
    __syncthreads();
    int w = tid / 32 % 4, lane = tid % 32, g = lane / 4, t = lane % 4;
    const T *r0 = A + (16 * w + g) * K, *r8 = A + (16 * w + g + 8) * K;
    uint32_t a[KS][4];
    for (int s = 0; s < KS; s++) {
        int c = 16 * s + 2 * t;
        a[s][0] = pack(r0[c], r0[c + 1]);
        a[s][1] = pack(r8[c], r8[c + 1]);
        a[s][2] = pack(r0[c + 8], r0[c + 9]);
        a[s][3] = pack(r8[c + 8], r8[c + 9]);
    }
    float d[N / 2];
    wg_load_acc<N>(d, C);
    emb_wgmma_fence();
    for (int s = 0; s < KS; s++)
        emb_wgmma_rs_mn<T, N>(d, a[s], emb_wgmma_desc(sm + L.b_off + 2 * s * L.b_lbo, L.b_lbo, L.b_sbo));
    emb_wgmma_commit();
    emb_wgmma_wait<0>();
    emb_wgmma_fence_acc<N / 2>(d);
    wg_store_acc<N>(D, d);
}

template <typename T, int N, int KS, bool RS>
static void check_wgmma(uint64_t seed)
{
    const int K = 16 * KS;
    std::vector<T> A(static_cast<size_t>(64 * K)), B(static_cast<size_t>(K * N));
    std::vector<float> C(static_cast<size_t>(64 * N));
    for (auto &x : A)
        x = cvt<T>(test_randf(seed));
    for (auto &x : B)
        x = cvt<T>(test_randf(seed));
    for (auto &x : C)
        x = 4.0f * test_randf(seed); /* non-zero: the accumulation is checked */
    DevBuf<T> dA(A), dB(B);
    DevBuf<float> dC(C), dD(C.size());
    const WgLayout L = wg_layout<N, KS>(RS);
    auto k = RS ? wgmma_rs_kernel<T, N, KS> : wgmma_ss_kernel<T, N, KS>;
    EMB_LAUNCH(k, 1, 128, L.bytes, 0)(dA.d, dB.d, dC.d, dD.d, L);
    CUDA_OK(cudaGetLastError());
    CUDA_OK(cudaDeviceSynchronize());
    std::vector<float> D = dD.get();
    for (int i = 0; i < 64; i++)
        for (int j = 0; j < N; j++) {
            double acc = C[static_cast<size_t>(i * N + j)];
            for (int p = 0; p < K; p++)
                acc += static_cast<double>(back(A[static_cast<size_t>(i * K + p)])) * back(B[static_cast<size_t>(p * N + j)]);
            double got = D[static_cast<size_t>(i * N + j)];
            cr_assert(std::fabs(got - acc) <= 1e-4 * (1.0 + std::fabs(acc)), "%s n=%d k=%d: D[%d][%d] = %.7g, expected %.7g",
                      RS ? "rs" : "ss", N, K, i, j, got, acc);
        }
}

Test(tensor, wgmma_ss_k_major_f16)
{
    check_wgmma<__half, 8, 1, false>(31);
    check_wgmma<__half, 24, 1, false>(32);
    check_wgmma<__half, 64, 1, false>(33);
    check_wgmma<__half, 256, 1, false>(34);
}
Test(tensor, wgmma_ss_k_major_bf16)
{
    check_wgmma<__nv_bfloat16, 8, 1, false>(41);
    check_wgmma<__nv_bfloat16, 24, 1, false>(42);
    check_wgmma<__nv_bfloat16, 64, 1, false>(43);
    check_wgmma<__nv_bfloat16, 256, 1, false>(44);
}
Test(tensor, wgmma_rs_mn_major_f16)
{
    check_wgmma<__half, 8, 1, true>(51);
    check_wgmma<__half, 24, 1, true>(52);
    check_wgmma<__half, 64, 1, true>(53);
    check_wgmma<__half, 256, 1, true>(54);
}
Test(tensor, wgmma_rs_mn_major_bf16)
{
    check_wgmma<__nv_bfloat16, 8, 1, true>(61);
    check_wgmma<__nv_bfloat16, 24, 1, true>(62);
    check_wgmma<__nv_bfloat16, 64, 1, true>(63);
    check_wgmma<__nv_bfloat16, 256, 1, true>(64);
}
/* K = 32: two wgmma calls, descriptors advanced by one k-step, one group. */
Test(tensor, wgmma_two_k_steps_accumulate_in_one_group)
{
    check_wgmma<__half, 64, 2, false>(71);
    check_wgmma<__nv_bfloat16, 256, 2, false>(72);
    check_wgmma<__half, 64, 2, true>(73);
    check_wgmma<__nv_bfloat16, 256, 2, true>(74);
}

/* PTX leaves the accumulators undefined from the issue until the wait that
 * covers it; the simulator computes at the wait, so a read before it (which
 * this kernel makes on purpose; real kernels must not) sees the old values. */
__global__ void wgmma_visibility_kernel(const __half *A, const __half *B, const float *C, float *early, float *late, WgLayout L)
{
    EMB_DYNAMIC_SHARED(wg_chunk, smem);
    char *sm = reinterpret_cast<char *>(smem);
    const int tid = static_cast<int>(threadIdx.x);
    for (int i = tid; i < 64 * 16; i += 128)
        *reinterpret_cast<__half *>(sm + L.a_off + wg_kmajor(i / 16, i % 16, L.a_lbo, L.a_sbo)) = A[i];
    for (int i = tid; i < 16 * 8; i += 128)
        *reinterpret_cast<__half *>(sm + L.b_off + wg_kmajor(i % 8, i / 8, L.b_lbo, L.b_sbo)) = B[i];
    emb_fence_proxy_async();
    __syncthreads();
    float d[4];
    wg_load_acc<8>(d, C);
    emb_wgmma_fence();
    emb_wgmma_ss<__half, 8>(d, emb_wgmma_desc(sm + L.a_off, L.a_lbo, L.a_sbo), emb_wgmma_desc(sm + L.b_off, L.b_lbo, L.b_sbo));
    emb_wgmma_commit();
    wg_store_acc<8>(early, d); /* too early */
    emb_wgmma_wait<0>();
    emb_wgmma_fence_acc<4>(d);
    wg_store_acc<8>(late, d);
}

Test(tensor, wgmma_result_lands_at_the_wait)
{
    uint64_t seed = 81;
    std::vector<__half> A(64 * 16), B(16 * 8);
    std::vector<float> C(64 * 8);
    for (auto &x : A)
        x = __float2half(test_randf(seed));
    for (auto &x : B)
        x = __float2half(test_randf(seed));
    for (auto &x : C)
        x = test_randf(seed);
    DevBuf<__half> dA(A), dB(B);
    DevBuf<float> dC(C), early(C.size()), late(C.size());
    const WgLayout L = wg_layout<8, 1>(false);
    EMB_LAUNCH(wgmma_visibility_kernel, 1, 128, L.bytes, 0)(dA.d, dB.d, dC.d, early.d, late.d, L);
    CUDA_OK(cudaDeviceSynchronize());
    std::vector<float> e = early.get(), l = late.get();
    cr_assert(e == C, "a read before the wait sees the accumulators as they were");
    for (int i = 0; i < 64; i++)
        for (int j = 0; j < 8; j++) {
            double acc = C[static_cast<size_t>(i * 8 + j)];
            for (int p = 0; p < 16; p++)
                acc += static_cast<double>(__half2float(A[static_cast<size_t>(i * 16 + p)])) *
                       __half2float(B[static_cast<size_t>(p * 8 + j)]);
            cr_assert_float_eq(l[static_cast<size_t>(i * 8 + j)], acc, 1e-4 * (1.0 + std::fabs(acc)), "after the wait: D[%d][%d]",
                               i, j);
        }
}

/* Bit 62 (128-byte swizzle): a layout the simulator does not model. */
__global__ void wgmma_swizzle_kernel(float *out, WgLayout L)
{
    EMB_DYNAMIC_SHARED(wg_chunk, smem);
    char *sm = reinterpret_cast<char *>(smem);
    for (uint32_t i = threadIdx.x; i < L.bytes / 16; i += 128)
        smem[i] = wg_chunk{{0, 0, 0, 0}};
    emb_fence_proxy_async();
    __syncthreads();
    float d[4] = {0, 0, 0, 0};
    emb_wgmma_fence();
    emb_wgmma_ss<__half, 8>(d, emb_wgmma_desc(sm + L.a_off, L.a_lbo, L.a_sbo),
                            emb_wgmma_desc(sm + L.b_off, L.b_lbo, L.b_sbo) | (1ull << 62));
    emb_wgmma_commit();
    emb_wgmma_wait<0>();
    emb_wgmma_fence_acc<4>(d);
    out[threadIdx.x] = d[0];
}

Test(tensor, wgmma_refuses_swizzled_descriptor)
{
    embsim_set_record_errors(1);
    DevBuf<float> out(128);
    const WgLayout L = wg_layout<8, 1>(false);
    EMB_LAUNCH(wgmma_swizzle_kernel, 1, 128, L.bytes, 0)(out.d, L);
    cr_assert_eq(cudaDeviceSynchronize(), cudaErrorLaunchFailure);
    /* Each warp computes its own rows at its wait: one report per warp at most. */
    int n = embsim_errors_matching("descriptor of B uses a swizzle mode");
    cr_assert(n >= 1 && n <= 4, "%d reports: %s", n, embsim_first_error());
    cr_assert_eq(embsim_errors_matching("the simulator models the no-swizzle canonical layout only"), n);
    cr_assert_eq(embsim_errors_matching("wgmma issued at test_tensor.cu:"), n, "names the call site: %s", embsim_first_error());
    cr_assert_eq(embsim_error_count(), n, "nothing else is reported: %s", embsim_first_error());
}
