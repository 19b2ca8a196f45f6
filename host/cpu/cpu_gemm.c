/*
 * The CPU backend's fp32 GEMM (see cpu_gemm.h).
 *
 * Blocking (the GotoBLAS/BLIS scheme, sized for one core's 48 KiB L1 and
 * 1-2 MiB L2): B is stored in panels of NR = 32 columns, each panel k-major
 * ([k][32]), so a micro-kernel reads 32 consecutive floats per k. C is cut
 * into blocks of up to MC rows x (a share of) N columns, the unit of OpenMP
 * work. For each block, K is walked in slices of at most KC; for every
 * NR-wide panel of the block and every MR-row group, the micro-kernel adds
 * A(MR x KC) B(KC x NR) into an MR x NR tile of C held in registers. The
 * KC x NR B micro-panel (32 KiB at KC = 256) stays in L1 while the kernel
 * sweeps the MR groups, and the MC x KC slice of A (96 KiB) stays in L2.
 * Micro-tiles: AVX-512 8 x 32 (16 zmm accumulators), AVX2 4 x 32 as two
 * 4 x 16 halves (8 ymm), portable 4 x 32. K is accumulated in order, one k
 * at a time, in fp32.
 *
 * A is not packed: the kernel broadcasts A[i][k] straight from MR row
 * streams, which the hardware prefetchers follow as well as one packed
 * stream, and packing (a transpose, one scalar move per element) cost as
 * much as the products themselves in attention's short, K = 32 GEMMs. B is
 * read in place too when it already has the panel shape (not transposed, N
 * a multiple of 32: attention's V).
 *
 * Bias and activation run on each C block right after its last K slice,
 * while the block is still in L2 (cpu_vm_bias_act), instead of in another
 * pass over the whole output.
 */
#include "cpu_gemm.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_vmath.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__x86_64__)
#include <immintrin.h>
#define TARGET_AVX512 __attribute__((target("avx512f")))
#define TARGET_AVX2 __attribute__((target("avx2,fma")))
#endif

#define NR 32
#define MC 96 /* multiple of every MR */
#define KC 256
#define ALIGN 64

/* Micro-kernel: C[0:m, 0:n] = alpha A B (+ C when accumulate), for m <= MR
 * and n <= NR; A row i at a + i lda, B row k at b + k ldb (NR floats, all
 * readable even past n). Rows of A past m are never read. */
typedef void (*ukernel_fn)(int kc, const float *a, int lda, const float *b, int ldb, float *c,
                           int ldc, int m, int n, float alpha, int accumulate);

typedef struct {
    int mr;
    ukernel_fn fn;
} ukernel;

/* ---- micro-kernels ------------------------------------------------------ */

static void kernel_portable(int kc, const float *a, int lda, const float *b, int ldb, float *c,
                            int ldc, int m, int n, float alpha, int accumulate) {
    enum { MR = 4 };
    float acc[MR][NR] = {{0}};
    for (int i = 0; i < m; i++) {
        const float *ai = a + (size_t)i * lda;
        for (int k = 0; k < kc; k++)
            for (int j = 0; j < NR; j++) acc[i][j] += ai[k] * b[(size_t)k * ldb + j];
    }
    for (int i = 0; i < m; i++) {
        float *ci = c + (size_t)i * ldc;
        for (int j = 0; j < n; j++) ci[j] = alpha * acc[i][j] + (accumulate ? ci[j] : 0.0f);
    }
}

#if defined(__x86_64__)

/* First n of 16 lanes (n may be <= 0 or > 16). */
static inline __mmask16 lanes16(int n) {
    return n >= 16 ? (__mmask16)0xffff : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1u);
}

/* Row pointers of an MR-row group; rows past m repeat the last real row
 * (computed, never stored) so no tail row is read out of bounds. */
#define ROW_POINTERS(ar, MR, a, lda, m)                                                    \
    const float *ar[MR];                                                                 \
    for (int i_ = 0; i_ < MR; i_++) ar[i_] = (a) + (size_t)(i_ < (m) ? i_ : (m) - 1) * (lda)

static void TARGET_AVX512 kernel_avx512(int kc, const float *a, int lda, const float *b, int ldb,
                                        float *c, int ldc, int m, int n, float alpha,
                                        int accumulate) {
    enum { MR = 8 };
    ROW_POINTERS(ar, MR, a, lda, m);
    __m512 acc[MR][2];
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (int k = 0; k < kc; k++, b += ldb) {
        const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
#pragma GCC unroll 8
        for (int i = 0; i < MR; i++) {
            const __m512 ai = _mm512_set1_ps(ar[i][k]);
            acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
        }
    }
    const __m512 va = _mm512_set1_ps(alpha);
    const __mmask16 m0 = lanes16(n), m1 = lanes16(n - 16);
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++) {
        if (i >= m) break;
        float *ci = c + (size_t)i * ldc;
        __m512 v0 = _mm512_mul_ps(va, acc[i][0]), v1 = _mm512_mul_ps(va, acc[i][1]);
        if (accumulate) {
            v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, ci));
            v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, ci + 16));
        }
        _mm512_mask_storeu_ps(ci, m0, v0);
        _mm512_mask_storeu_ps(ci + 16, m1, v1);
    }
}

/* Sign-bit lane mask for the first n of 8 lanes (maskload/maskstore). */
static inline __m256i TARGET_AVX2 lanes8(int n) {
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), idx);
}

/* One 4 x 16 half of the AVX2 tile: 8 accumulators, so no spills in 16 ymm. */
static inline void TARGET_AVX2 half_avx2(int kc, const float *a, int lda, const float *b,
                                         int ldb, float *c, int ldc, int m, int n, float alpha,
                                         int accumulate) {
    enum { MR = 4 };
    ROW_POINTERS(ar, MR, a, lda, m);
    __m256 acc[MR][2];
#pragma GCC unroll 4
    for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    for (int k = 0; k < kc; k++, b += ldb) {
        const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
#pragma GCC unroll 4
        for (int i = 0; i < MR; i++) {
            const __m256 ai = _mm256_broadcast_ss(ar[i] + k);
            acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
        }
    }
    const __m256 va = _mm256_set1_ps(alpha);
    const __m256i m0 = lanes8(n), m1 = lanes8(n - 8);
#pragma GCC unroll 4
    for (int i = 0; i < MR; i++) {
        if (i >= m) break;
        float *ci = c + (size_t)i * ldc;
        __m256 v0 = _mm256_mul_ps(va, acc[i][0]), v1 = _mm256_mul_ps(va, acc[i][1]);
        if (accumulate) {
            v0 = _mm256_add_ps(v0, _mm256_maskload_ps(ci, m0));
            v1 = _mm256_add_ps(v1, _mm256_maskload_ps(ci + 8, m1));
        }
        _mm256_maskstore_ps(ci, m0, v0);
        _mm256_maskstore_ps(ci + 8, m1, v1);
    }
}

static void TARGET_AVX2 kernel_avx2(int kc, const float *a, int lda, const float *b, int ldb,
                                    float *c, int ldc, int m, int n, float alpha, int accumulate) {
    half_avx2(kc, a, lda, b, ldb, c, ldc, m, n, alpha, accumulate);
    if (n > 16) half_avx2(kc, a, lda, b + 16, ldb, c + 16, ldc, m, n - 16, alpha, accumulate);
}

#endif /* __x86_64__ */

static ukernel select_kernel(void) {
#if defined(__x86_64__)
    switch (cpu_isa_active()) {
    case CPU_ISA_AVX512: return (ukernel){8, kernel_avx512};
    case CPU_ISA_AVX2: return (ukernel){4, kernel_avx2};
    default: break;
    }
#endif
    return (ukernel){4, kernel_portable};
}

/* ---- packing ------------------------------------------------------------ */

static float *alloc_floats(size_t n) {
    size_t bytes = (n * sizeof(float) + ALIGN - 1) / ALIGN * ALIGN;
    return aligned_alloc(ALIGN, bytes ? bytes : ALIGN);
}

/* op(B) [K, N] into NR-column panels [K][NR]; transb: B is [N, K]. */
static void pack_b(float *dst, const float *B, int ldb, int transb, int N, int K) {
    for (int j0 = 0; j0 < N; j0 += NR, dst += (size_t)K * NR) {
        const int cols = N - j0 < NR ? N - j0 : NR;
        for (int k = 0; k < K; k++) {
            float *d = dst + (size_t)k * NR;
            if (transb)
                for (int j = 0; j < cols; j++) d[j] = B[(size_t)(j0 + j) * ldb + k];
            else
                memcpy(d, B + (size_t)k * ldb + j0, (size_t)cols * sizeof *d);
            for (int j = cols; j < NR; j++) d[j] = 0.0f;
        }
    }
}

int cpu_gemm_weight_pack(cpu_gemm_weight *p, const float *w, int n, int k) {
    const size_t panels = (size_t)(n + NR - 1) / NR;
    p->n = n, p->k = k;
    p->panels = alloc_floats(panels * NR * (size_t)(k > 0 ? k : 1));
    if (!p->panels) return -1;
    pack_b(p->panels, w, k, 1, n, k);
    return 0;
}

void cpu_gemm_weight_free(cpu_gemm_weight *p) {
    free(p->panels);
    p->panels = NULL;
}

/* ---- drivers ------------------------------------------------------------ */

/* Grow-only per-thread buffer for packing B in cpu_gemm: OpenMP's threads
 * persist, so after warm-up nothing is allocated per call. */
static _Thread_local float *tl_bpack;
static _Thread_local size_t tl_bpack_cap;

static pthread_key_t tl_keys[CPU_TL_SLOTS];
static int tl_keys_ok;
static pthread_once_t tl_keys_once = PTHREAD_ONCE_INIT;

static void tl_keys_create(void) {
    tl_keys_ok = 1;
    for (int i = 0; i < CPU_TL_SLOTS; i++)
        if (pthread_key_create(&tl_keys[i], free) != 0) tl_keys_ok = 0;
}

void cpu_tl_track(int slot, void *p) {
    pthread_once(&tl_keys_once, tl_keys_create);
    if (tl_keys_ok) pthread_setspecific(tl_keys[slot], p);
}

static float *bpack_buffer(size_t n) {
    if (n > tl_bpack_cap) {
        free(tl_bpack);
        tl_bpack_cap = 0;
        tl_bpack = alloc_floats(n);
        cpu_tl_track(CPU_TL_BPACK, tl_bpack);
        if (!tl_bpack) return NULL;
        tl_bpack_cap = n;
    }
    return tl_bpack;
}

/* K split into equal slices of at most KC (K = 384: 2 x 192, not 256 + 128). */
static int slice_k(int K) {
    const int nk = (K + KC - 1) / KC;
    return (K + nk - 1) / nk;
}

/* B in panel form: row k of panel p (columns 32p .. 32p + 31) at
 * base + p pstride + k ldb. Packed panels: pstride = K NR, ldb = NR. */
typedef struct {
    const float *base;
    size_t pstride;
    int ldb;
} bview;

/* One block of C: rows [0, mc), columns [0, nc) (B's panels from the block's
 * first column). */
static void gemm_block(const ukernel *uk, int mc, int nc, int K, float alpha, const float *A,
                       int lda, bview B, float *C, int ldc, int accumulate) {
    const int kc_max = slice_k(K);
    for (int k0 = 0; k0 < K; k0 += kc_max) {
        const int kc = K - k0 < kc_max ? K - k0 : kc_max;
        const int acc = accumulate || k0 > 0;
        for (int j = 0; j < nc; j += NR) {
            const float *bp = B.base + (size_t)(j / NR) * B.pstride + (size_t)k0 * B.ldb;
            const int n = nc - j < NR ? nc - j : NR;
            for (int i = 0; i < mc; i += uk->mr) {
                const int m = mc - i < uk->mr ? mc - i : uk->mr;
                uk->fn(kc, A + (size_t)i * lda + k0, lda, bp, B.ldb, C + (size_t)i * ldc + j, ldc,
                       m, n, alpha, acc);
            }
        }
    }
}

/* C = 0 * A B + beta C without reading A or B (K == 0). */
static void scale_c(float *C, int ldc, int M, int N, float beta) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[(size_t)i * ldc + j];
}

static void fill_nan(float *C, int ldc, int M, int N) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] = NAN;
}

/* Columns per block so that there are enough blocks to balance the threads
 * (rows alone give few blocks for small batches); a multiple of NR. */
static int column_block(int mblocks, int N) {
    int nth = 1;
#ifdef _OPENMP
    nth = omp_in_parallel() ? 1 : omp_get_max_threads();
#endif
    int nblocks = 1;
    while (mblocks * nblocks < 4 * nth && (N + NR - 1) / NR >= 2 * nblocks) nblocks *= 2;
    const int panels = (N + NR - 1) / NR;
    return (panels + nblocks - 1) / nblocks * NR;
}

void cpu_gemm_linear(float *y, int ldy, const float *x, int ldx, int rows,
                     const cpu_gemm_weight *w, const float *bias, emb_act act, int accumulate) {
    const int N = w->n, K = w->k;
    if (rows <= 0 || N <= 0) return;
    if (K <= 0) {
        scale_c(y, ldy, rows, N, accumulate ? 1.0f : 0.0f);
        if (bias || act != EMB_ACT_IDENTITY)
            for (int r = 0; r < rows; r++) cpu_vm_bias_act(y + (size_t)r * ldy, bias, N, act);
        return;
    }
    const ukernel uk = select_kernel();
    const int mblocks = (rows + MC - 1) / MC, nc_max = column_block(mblocks, N);
    const int nblocks = (N + nc_max - 1) / nc_max;
    const long items = (long)mblocks * nblocks;
    const size_t pstride = (size_t)K * NR;
    /* Small products (a Dense head on a few pooled vectors) stay serial. */
    const double flops = 2.0 * rows * N * K;
#pragma omp parallel for schedule(dynamic, 1) if (items > 1 && flops > 4e6)
    for (long it = 0; it < items; it++) {
        const int i0 = (int)(it / nblocks) * MC, j0 = (int)(it % nblocks) * nc_max;
        const int mc = rows - i0 < MC ? rows - i0 : MC, nc = N - j0 < nc_max ? N - j0 : nc_max;
        float *cb = y + (size_t)i0 * ldy + j0;
        const bview B = {w->panels + (size_t)(j0 / NR) * pstride, pstride, NR};
        gemm_block(&uk, mc, nc, K, 1.0f, x + (size_t)i0 * ldx, ldx, B, cb, ldy, accumulate);
        if (bias || act != EMB_ACT_IDENTITY)
            for (int r = 0; r < mc; r++)
                cpu_vm_bias_act(cb + (size_t)r * ldy, bias ? bias + j0 : NULL, nc, act);
    }
}

void cpu_gemm(int transb, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        scale_c(C, ldc, M, N, beta);
        return;
    }
    /* The kernels overwrite or add; any other beta pre-scales C. */
    if (beta != 0.0f && beta != 1.0f) scale_c(C, ldc, M, N, beta);
    const ukernel uk = select_kernel();
    bview bv = {B, NR, ldb};
    if (transb || N % NR) {
        const size_t pstride = (size_t)K * NR;
        float *bp = bpack_buffer((size_t)((N + NR - 1) / NR) * pstride);
        if (!bp) {
            fill_nan(C, ldc, M, N);
            return;
        }
        pack_b(bp, B, ldb, transb, N, K);
        bv = (bview){bp, pstride, NR};
    }
    for (int i0 = 0; i0 < M; i0 += MC) {
        const int mc = M - i0 < MC ? M - i0 : MC;
        gemm_block(&uk, mc, N, K, alpha, A + (size_t)i0 * lda, lda, bv, C + (size_t)i0 * ldc,
                   ldc, beta != 0.0f);
    }
}
