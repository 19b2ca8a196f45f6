/*
 * host/cpu/cpu_gemm.c against a naive double-precision GEMM written here, on
 * awkward sizes (every M, N, K in {1, 3, 17, 31, 33, 64, 127, 385, 1536} up
 * to a size cap, plus a few large products), both B layouts, beta 0 / 1 /
 * other, strided operands, and every micro-kernel this CPU can run (forced
 * through cpu_isa_force, so the AVX2 and portable paths are exercised on an
 * AVX-512 machine). C is poisoned with NaN where beta = 0 and its padding
 * columns hold a sentinel that must survive.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_gemm.h"
#include "cpu_vmath.h"

static uint64_t rng_state;

static void rng_seed(uint64_t s) { rng_state = s * 0x9E3779B97F4A7C15ull + 1; }

static float rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    float v = (float)((rng_state >> 11) * (2.0 / 9007199254740992.0) - 1.0);
    return v == 0.0f ? 1e-3f : v;
}

static float *rnd_array(size_t n) {
    float *p = malloc((n ? n : 1) * sizeof *p);
    cr_assert(p);
    for (size_t i = 0; i < n; i++) p[i] = rnd();
    return p;
}

static const int SIZES[] = {1, 3, 17, 31, 33, 64, 127, 385, 1536};
#define NSIZES (int)(sizeof SIZES / sizeof *SIZES)
#define PAD 5           /* extra columns in every leading dimension */
#define SENTINEL 12345.0f

/* AB[i][j] = sum_k A[i][k] op(B)[k][j] in double. */
static double *naive(int transb, int M, int N, int K, const float *A, int lda, const float *B,
                     int ldb) {
    double *ab = calloc((size_t)M * N + 1, sizeof *ab);
    cr_assert(ab);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double acc = 0.0;
            for (int k = 0; k < K; k++)
                acc += (double)A[(size_t)i * lda + k] *
                       (transb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j]);
            ab[(size_t)i * N + j] = acc;
        }
    return ab;
}

/* Counts elements of C[M, N] (ldc) off from alpha AB + beta C0, and padding
 * columns that were touched. */
static void expect_gemm(const char *what, const float *C, int ldc, const double *ab,
                        const float *C0, int M, int N, int K, float alpha, float beta) {
    size_t bad = 0, pad = 0;
    double worst = 0.0;
    const double atol = 2e-6 * sqrt((double)K + 1.0);
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < N; j++) {
            const double want = alpha * ab[(size_t)i * N + j] +
                                (beta != 0.0f ? beta * (double)C0[(size_t)i * ldc + j] : 0.0);
            const float got = C[(size_t)i * ldc + j];
            const double d = fabs((double)got - want);
            if (isnan(got) || d > atol + 1e-5 * fabs(want)) bad++;
            if (d > worst) worst = d;
        }
        for (int j = N; j < ldc; j++) pad += C[(size_t)i * ldc + j] != SENTINEL;
    }
    cr_expect(bad == 0 && pad == 0, "%s: %zu of %zu elements off (max |d| %.3g), %zu padding written",
              what, bad, (size_t)M * N, worst, pad);
}

static void check_gemm(int transb, int M, int N, int K, const double *ab, const float *A,
                       int lda, const float *B, int ldb, float alpha, float beta) {
    const int ldc = N + PAD;
    float *C0 = rnd_array((size_t)M * ldc), *C = malloc((size_t)M * ldc * sizeof *C);
    cr_assert(C);
    for (int i = 0; i < M; i++)
        for (int j = N; j < ldc; j++) C0[(size_t)i * ldc + j] = SENTINEL;
    memcpy(C, C0, (size_t)M * ldc * sizeof *C);
    if (beta == 0.0f) /* beta = 0 must not read C: poison it */
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] = NAN;
    cpu_gemm(transb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    char what[128];
    snprintf(what, sizeof what, "%s gemm transb=%d M=%d N=%d K=%d alpha=%g beta=%g",
             cpu_isa_name(cpu_isa_active()), transb, M, N, K, alpha, beta);
    expect_gemm(what, C, ldc, ab, C0, M, N, K, alpha, beta);
    free(C0), free(C);
}

/* Every (M, N, K) up to the cap, both layouts, beta 0 and 1, on each ISA the
 * CPU has; the reference is computed once per shape. */
static void sweep(long cap) {
    const cpu_isa best = cpu_isa_detect();
    rng_seed(11);
    for (int mi = 0; mi < NSIZES; mi++)
        for (int ni = 0; ni < NSIZES; ni++)
            for (int ki = 0; ki < NSIZES; ki++) {
                const int M = SIZES[mi], N = SIZES[ni], K = SIZES[ki];
                if ((long)M * N * K > cap) continue;
                for (int transb = 0; transb <= 1; transb++) {
                    const int lda = K + PAD, ldb = (transb ? K : N) + PAD;
                    float *A = rnd_array((size_t)M * lda);
                    float *B = rnd_array((size_t)(transb ? N : K) * ldb);
                    double *ab = naive(transb, M, N, K, A, lda, B, ldb);
                    for (int isa = CPU_ISA_PORTABLE; isa <= (int)best; isa++) {
                        cr_assert(cpu_isa_force((cpu_isa)isa));
                        check_gemm(transb, M, N, K, ab, A, lda, B, ldb, 1.0f, 0.0f);
                        check_gemm(transb, M, N, K, ab, A, lda, B, ldb, 1.0f, 1.0f);
                    }
                    free(A), free(B), free(ab);
                }
            }
    cpu_isa_force(best);
}

Test(cpu_gemm, awkward_sizes_every_isa) { sweep(1200000); }

Test(cpu_gemm, alpha_and_general_beta) {
    const cpu_isa best = cpu_isa_detect();
    rng_seed(5);
    const int M = 33, N = 127, K = 64, lda = K + PAD, ldb = K + PAD;
    float *A = rnd_array((size_t)M * lda), *B = rnd_array((size_t)N * ldb);
    double *ab = naive(1, M, N, K, A, lda, B, ldb);
    for (int isa = CPU_ISA_PORTABLE; isa <= (int)best; isa++) {
        cr_assert(cpu_isa_force((cpu_isa)isa));
        check_gemm(1, M, N, K, ab, A, lda, B, ldb, 0.17677669f, 0.0f); /* attention's scale */
        check_gemm(1, M, N, K, ab, A, lda, B, ldb, -2.0f, 0.5f);
    }
    cpu_isa_force(best);
    free(A), free(B), free(ab);
}

Test(cpu_gemm, k_zero_scales_c) {
    float C[2 * 3] = {1, 2, 3, 4, 5, 6}, A[1] = {0}, B[1] = {0};
    cpu_gemm(1, 2, 3, 0, 1.0f, A, 1, B, 1, 0.5f, C, 3);
    for (int i = 0; i < 6; i++) cr_expect_eq(C[i], 0.5f * (float)(i + 1));
    cpu_gemm(0, 2, 3, 0, 1.0f, A, 1, B, 1, 0.0f, C, 3);
    for (int i = 0; i < 6; i++) cr_expect_eq(C[i], 0.0f);
}

/* ---- the packed-weight path (the encoder's projections) ---------------- */

static double act_ref(double x, emb_act act) {
    switch (act) {
    case EMB_ACT_GELU: return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
    case EMB_ACT_RELU: return x > 0 ? x : 0;
    default: return x;
    }
}

static void check_linear(int rows, int in, int out, int use_bias, emb_act act, int accumulate) {
    const int ldx = in + PAD, ldy = out + PAD;
    float *x = rnd_array((size_t)rows * ldx), *w = rnd_array((size_t)out * in);
    float *b = rnd_array((size_t)out), *y0 = rnd_array((size_t)rows * ldy);
    float *y = malloc((size_t)rows * ldy * sizeof *y);
    cr_assert(y);
    for (int r = 0; r < rows; r++)
        for (int c = out; c < ldy; c++) y0[(size_t)r * ldy + c] = SENTINEL;
    memcpy(y, y0, (size_t)rows * ldy * sizeof *y);
    if (!accumulate)
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < out; c++) y[(size_t)r * ldy + c] = NAN;
    double *ab = naive(1, rows, out, in, x, ldx, w, in);
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < out; c++) {
            double v = ab[(size_t)r * out + c] + (use_bias ? b[c] : 0.0) +
                       (accumulate ? y0[(size_t)r * ldy + c] : 0.0);
            ab[(size_t)r * out + c] = act_ref(v, act);
        }

    cpu_gemm_weight pw;
    cr_assert(cpu_gemm_weight_pack(&pw, w, out, in) == 0);
    cpu_gemm_linear(y, ldy, x, ldx, rows, &pw, use_bias ? b : NULL, act, accumulate);
    cpu_gemm_weight_free(&pw);

    char what[128];
    snprintf(what, sizeof what, "%s linear %dx%d->%d bias=%d act=%d acc=%d",
             cpu_isa_name(cpu_isa_active()), rows, in, out, use_bias, (int)act, accumulate);
    /* expect_gemm with alpha 1, beta 0: ab already holds the full result */
    expect_gemm(what, y, ldy, ab, y0, rows, out, in, 1.0f, 0.0f);
    free(x), free(w), free(b), free(y0), free(y), free(ab);
}

Test(cpu_gemm, linear_packed_weights_every_isa) {
    const cpu_isa best = cpu_isa_detect();
    rng_seed(3);
    for (int isa = CPU_ISA_PORTABLE; isa <= (int)best; isa++) {
        cr_assert(cpu_isa_force((cpu_isa)isa));
        /* the encoder's shapes, odd token counts, several column blocks */
        check_linear(385, 384, 1152, 1, EMB_ACT_IDENTITY, 0);
        check_linear(127, 384, 1536, 1, EMB_ACT_GELU, 0);
        check_linear(97, 1536, 384, 0, EMB_ACT_IDENTITY, 1);
        check_linear(3, 33, 31, 1, EMB_ACT_RELU, 1);
        check_linear(1, 17, 1, 0, EMB_ACT_IDENTITY, 0);
    }
    cpu_isa_force(best);
}

Test(cpu_gemm, large_products) {
    rng_seed(9);
    const int shapes[][3] = {{385, 1536, 385}, {127, 385, 1536}};
    for (int s = 0; s < 2; s++)
        for (int transb = 0; transb <= 1; transb++) {
            const int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
            const int lda = K + PAD, ldb = (transb ? K : N) + PAD;
            float *A = rnd_array((size_t)M * lda), *B = rnd_array((size_t)(transb ? N : K) * ldb);
            double *ab = naive(transb, M, N, K, A, lda, B, ldb);
            check_gemm(transb, M, N, K, ab, A, lda, B, ldb, 1.0f, 1.0f);
            free(A), free(B), free(ab);
        }
}
