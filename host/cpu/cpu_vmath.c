/*
 * Vector expf / erff and the activations on them (see cpu_vmath.h).
 *
 * expf: Cody-Waite reduction x = n ln2 + r (|r| <= ln2 / 2, ln2 split in a
 * short high part and a correction so n * LN2_HI is exact), Cephes' degree-7
 * polynomial for e^r, then scaling by 2^n. <= 1 ulp over the normal range.
 *
 * erff: two pieces, both fitted for this file (weighted least squares
 * iterated towards minimax in double, coefficients rounded to float and the
 * result checked by tests/test_cpu_vmath.c):
 *   |z| <  0.9375  erf(z) = z + z P(z^2)          P of degree 5
 *   |z| >= 0.9375  erfc(|z|) = exp(Q(|z|))        Q of degree 8 on [0.9375, 3.9375]
 *                  erf(z) = sign(z) (1 - erfc(|z|)), and erfc < 2^-25 beyond
 *                  3.9375 so erf is +-1 there.
 * GELU uses the second piece directly: for z = x / sqrt(2) < -0.9375,
 * 1 + erf(z) = erfc(|z|), so the negative tail has no cancellation (libm's
 * 1 + erff(z) loses most bits there; ours is more accurate, never less).
 *
 * Every path evaluates the same operations in the same order with FMAs, so
 * AVX-512, AVX2 and the scalar code give the same bits (except where the
 * portable build's fmaf is emulated, still correctly rounded).
 */
#include "cpu_vmath.h"

#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define TARGET_AVX512 __attribute__((target("avx512f")))
#define TARGET_AVX2 __attribute__((target("avx2,fma")))
#endif

/* ---- constants ---------------------------------------------------------- */

#define EXP_LO (-87.33654475f) /* ln(FLT_MIN): below, the result flushes to 0 */
#define EXP_HI 88.72283905f    /* ln(FLT_MAX): above, +inf */
#define LOG2E 1.44269504088896341f
#define LN2_HI 0.693359375f /* 8 significant bits: n * LN2_HI exact for |n| <= 128 */
#define LN2_LO (-2.12194440e-4f)
/* Cephes expf: e^r = 1 + r + r^2 (P0 r^5 + ... + P5) */
#define EXP_P0 1.9875691500e-4f
#define EXP_P1 1.3981999507e-3f
#define EXP_P2 8.3334519073e-3f
#define EXP_P3 4.1665795894e-2f
#define EXP_P4 1.6666665459e-1f
#define EXP_P5 5.0000001201e-1f

#define ERF_SPLIT 0.9375f
#define ERF_CUTOFF 3.9375f
/* erf(z) / z - 1 = P(z^2) on [0, 0.9375^2] */
#define ERF_S0 0.12837915122509003f
#define ERF_S1 (-0.3761248290538788f)
#define ERF_S2 0.11281681805849075f
#define ERF_S3 (-0.02676110528409481f)
#define ERF_S4 0.004984377417713404f
#define ERF_S5 (-0.0005943134892731905f)
/* log(erfc(t)) = Q(t) on [0.9375, 3.9375]. (Centring t gives no gain: near
 * the cutoff the error is the rounding of z = x / sqrt(2) itself, amplified
 * by 2 z^2.) */
#define ERFC_Q0 0.00030504545429721475f
#define ERFC_Q1 (-1.1301766633987427f)
#define ERFC_Q2 (-0.6319155693054199f)
#define ERFC_Q3 (-0.11000284552574158f)
#define ERFC_Q4 0.02638119086623192f
#define ERFC_Q5 (-0.004746903665363789f)
#define ERFC_Q6 0.0005943835712969303f
#define ERFC_Q7 (-4.580416134558618e-05f)
#define ERFC_Q8 1.625965637686022e-06f

#define SQRT1_2 0.70710678118654752f
#define GELU_TANH_C 0.79788456080286536f /* sqrt(2 / pi) */
#define GELU_TANH_A 0.044715f

/* ---- ISA selection ------------------------------------------------------ */

static _Atomic int g_isa = -1;

cpu_isa cpu_isa_detect(void) {
#if defined(__x86_64__)
    /* libgcc's check includes the OS saving the wide registers (XCR0). */
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return CPU_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return CPU_ISA_AVX2;
#endif
    return CPU_ISA_PORTABLE;
}

cpu_isa cpu_isa_active(void) {
    int v = atomic_load_explicit(&g_isa, memory_order_relaxed);
    if (v < 0) {
        v = (int)cpu_isa_detect();
        atomic_store_explicit(&g_isa, v, memory_order_relaxed);
    }
    return (cpu_isa)v;
}

int cpu_isa_force(cpu_isa isa) {
    if (isa < CPU_ISA_PORTABLE || isa > cpu_isa_detect()) return 0;
    atomic_store_explicit(&g_isa, (int)isa, memory_order_relaxed);
    return 1;
}

const char *cpu_isa_name(cpu_isa isa) {
    switch (isa) {
    case CPU_ISA_PORTABLE: return "portable";
    case CPU_ISA_AVX2: return "avx2";
    case CPU_ISA_AVX512: return "avx512";
    }
    return "?";
}

/* ---- scalar ------------------------------------------------------------- */

static float bits_to_float(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* 2^n for n in [-126, 128] as two exact factors (2^128 is not a float). */
static float pow2_scale(float p, int n) {
    const int n1 = n / 2, n2 = n - n1;
    return p * bits_to_float((uint32_t)(n1 + 127) << 23) * bits_to_float((uint32_t)(n2 + 127) << 23);
}

float cpu_expf(float x) {
    if (x != x) return x;
    if (x < EXP_LO) return 0.0f;
    if (x > EXP_HI) return INFINITY;
    const float n = rintf(x * LOG2E);
    float r = fmaf(-n, LN2_HI, x);
    r = fmaf(-n, LN2_LO, r);
    float p = EXP_P0;
    p = fmaf(p, r, EXP_P1);
    p = fmaf(p, r, EXP_P2);
    p = fmaf(p, r, EXP_P3);
    p = fmaf(p, r, EXP_P4);
    p = fmaf(p, r, EXP_P5);
    p = fmaf(p, r * r, r) + 1.0f;
    return pow2_scale(p, (int)n);
}

static float erf_small(float z) {
    const float s = z * z;
    float p = ERF_S5;
    p = fmaf(p, s, ERF_S4);
    p = fmaf(p, s, ERF_S3);
    p = fmaf(p, s, ERF_S2);
    p = fmaf(p, s, ERF_S1);
    p = fmaf(p, s, ERF_S0);
    return fmaf(p, z, z);
}

/* erfc(t) for t >= ERF_SPLIT; 0 past the cutoff (where it is < 2^-25). */
static float erfc_large(float t) {
    if (t >= ERF_CUTOFF) return 0.0f;
    float q = ERFC_Q8;
    q = fmaf(q, t, ERFC_Q7);
    q = fmaf(q, t, ERFC_Q6);
    q = fmaf(q, t, ERFC_Q5);
    q = fmaf(q, t, ERFC_Q4);
    q = fmaf(q, t, ERFC_Q3);
    q = fmaf(q, t, ERFC_Q2);
    q = fmaf(q, t, ERFC_Q1);
    q = fmaf(q, t, ERFC_Q0);
    return cpu_expf(q);
}

float cpu_erff(float x) {
    const float t = fabsf(x);
    if (t < ERF_SPLIT) return erf_small(x);
    if (x != x) return x;
    return copysignf(1.0f - erfc_large(t), x);
}

static float gelu_erf(float x) {
    const float z = x * SQRT1_2, t = fabsf(z);
    float one_plus_erf;
    if (t < ERF_SPLIT) one_plus_erf = 1.0f + erf_small(z);
    else {
        const float e = erfc_large(t);
        one_plus_erf = z > 0.0f ? 2.0f - e : e;
    }
    return 0.5f * x * one_plus_erf;
}

/* 0.5 x (1 + tanh(u)) == x sigmoid(2u) == x / (1 + e^-2u): one exp, no
 * cancellation for negative u. */
static float gelu_tanh(float x) {
    const float x3 = x * x * x;
    const float u = GELU_TANH_C * (x + GELU_TANH_A * x3);
    return x / (1.0f + cpu_expf(-2.0f * u));
}

static float act_scalar(float x, emb_act act) {
    switch (act) {
    case EMB_ACT_IDENTITY: return x;
    case EMB_ACT_GELU: return gelu_erf(x);
    case EMB_ACT_GELU_TANH: return gelu_tanh(x);
    case EMB_ACT_RELU: return x > 0.0f ? x : 0.0f;
    case EMB_ACT_SILU: return x / (1.0f + cpu_expf(-x));
    case EMB_ACT_TANH: return tanhf(x); /* rare (Dense heads): libm's, exact near 0 */
    case EMB_ACT_SIGMOID: return 1.0f / (1.0f + cpu_expf(-x));
    }
    return x;
}

/* ---- AVX-512 ------------------------------------------------------------ */

#if defined(__x86_64__)

#define V512(c) _mm512_set1_ps(c)

static inline __mmask16 TARGET_AVX512 tail16(int n) {
    return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1u);
}

static inline __m512 TARGET_AVX512 exp512(__m512 x) {
    const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    const __mmask16 lo = _mm512_cmp_ps_mask(x, V512(EXP_LO), _CMP_LT_OQ);
    const __mmask16 hi = _mm512_cmp_ps_mask(x, V512(EXP_HI), _CMP_GT_OQ);
    const __m512 xc = _mm512_min_ps(_mm512_max_ps(x, V512(EXP_LO)), V512(EXP_HI));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(xc, V512(LOG2E)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, V512(LN2_HI), xc);
    r = _mm512_fnmadd_ps(n, V512(LN2_LO), r);
    __m512 p = V512(EXP_P0);
    p = _mm512_fmadd_ps(p, r, V512(EXP_P1));
    p = _mm512_fmadd_ps(p, r, V512(EXP_P2));
    p = _mm512_fmadd_ps(p, r, V512(EXP_P3));
    p = _mm512_fmadd_ps(p, r, V512(EXP_P4));
    p = _mm512_fmadd_ps(p, r, V512(EXP_P5));
    p = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), V512(1.0f));
    __m512 y = _mm512_scalef_ps(p, n); /* p * 2^n in one exact step */
    y = _mm512_mask_mov_ps(y, lo, _mm512_setzero_ps());
    y = _mm512_mask_mov_ps(y, hi, V512(INFINITY));
    return _mm512_mask_mov_ps(y, nan, x);
}

static inline __m512 TARGET_AVX512 erf_small512(__m512 z) {
    const __m512 s = _mm512_mul_ps(z, z);
    __m512 p = V512(ERF_S5);
    p = _mm512_fmadd_ps(p, s, V512(ERF_S4));
    p = _mm512_fmadd_ps(p, s, V512(ERF_S3));
    p = _mm512_fmadd_ps(p, s, V512(ERF_S2));
    p = _mm512_fmadd_ps(p, s, V512(ERF_S1));
    p = _mm512_fmadd_ps(p, s, V512(ERF_S0));
    return _mm512_fmadd_ps(p, z, z);
}

static inline __m512 TARGET_AVX512 erfc_large512(__m512 t) {
    const __mmask16 past = _mm512_cmp_ps_mask(t, V512(ERF_CUTOFF), _CMP_GE_OQ);
    t = _mm512_min_ps(t, V512(ERF_CUTOFF));
    __m512 q = V512(ERFC_Q8);
    q = _mm512_fmadd_ps(q, t, V512(ERFC_Q7));
    q = _mm512_fmadd_ps(q, t, V512(ERFC_Q6));
    q = _mm512_fmadd_ps(q, t, V512(ERFC_Q5));
    q = _mm512_fmadd_ps(q, t, V512(ERFC_Q4));
    q = _mm512_fmadd_ps(q, t, V512(ERFC_Q3));
    q = _mm512_fmadd_ps(q, t, V512(ERFC_Q2));
    q = _mm512_fmadd_ps(q, t, V512(ERFC_Q1));
    q = _mm512_fmadd_ps(q, t, V512(ERFC_Q0));
    return _mm512_mask_mov_ps(exp512(q), past, _mm512_setzero_ps());
}

static inline __m512 TARGET_AVX512 erf512(__m512 x) {
    const __m512 t = _mm512_abs_ps(x);
    const __mmask16 small = _mm512_cmp_ps_mask(t, V512(ERF_SPLIT), _CMP_LT_OQ);
    const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    const __m512 big = _mm512_sub_ps(V512(1.0f), erfc_large512(t));
    /* copysign: magnitude of big, sign bit of x */
    const __m512i sign = _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(INT32_MIN));
    const __m512 sbig = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(big), sign));
    const __m512 y = _mm512_mask_mov_ps(sbig, small, erf_small512(x));
    return _mm512_mask_mov_ps(y, nan, x);
}

static inline __m512 TARGET_AVX512 gelu512(__m512 x) {
    const __m512 z = _mm512_mul_ps(x, V512(SQRT1_2)), t = _mm512_abs_ps(z);
    const __mmask16 small = _mm512_cmp_ps_mask(t, V512(ERF_SPLIT), _CMP_LT_OQ);
    const __mmask16 pos = _mm512_cmp_ps_mask(z, _mm512_setzero_ps(), _CMP_GT_OQ);
    const __m512 e = erfc_large512(t);
    __m512 one_plus = _mm512_mask_mov_ps(e, pos, _mm512_sub_ps(V512(2.0f), e));
    one_plus = _mm512_mask_mov_ps(one_plus, small, _mm512_add_ps(V512(1.0f), erf_small512(z)));
    return _mm512_mul_ps(_mm512_mul_ps(V512(0.5f), x), one_plus);
}

static inline __m512 TARGET_AVX512 act512(__m512 x, emb_act act) {
    switch (act) {
    case EMB_ACT_GELU: return gelu512(x);
    case EMB_ACT_GELU_TANH: {
        const __m512 x3 = _mm512_mul_ps(_mm512_mul_ps(x, x), x);
        const __m512 u = _mm512_mul_ps(V512(GELU_TANH_C), _mm512_add_ps(x, _mm512_mul_ps(V512(GELU_TANH_A), x3)));
        const __m512 e = exp512(_mm512_mul_ps(V512(-2.0f), u));
        return _mm512_div_ps(x, _mm512_add_ps(V512(1.0f), e));
    }
    case EMB_ACT_RELU: return _mm512_max_ps(x, _mm512_setzero_ps());
    case EMB_ACT_SILU:
        return _mm512_div_ps(x, _mm512_add_ps(V512(1.0f), exp512(_mm512_sub_ps(_mm512_setzero_ps(), x))));
    case EMB_ACT_SIGMOID:
        return _mm512_div_ps(V512(1.0f), _mm512_add_ps(V512(1.0f), exp512(_mm512_sub_ps(_mm512_setzero_ps(), x))));
    default: return x; /* identity; tanh never gets here */
    }
}

static void TARGET_AVX512 exp_row512(float *y, const float *x, int n) {
    for (int i = 0; i < n; i += 16) {
        const __mmask16 m = tail16(n - i);
        _mm512_mask_storeu_ps(y + i, m, exp512(_mm512_maskz_loadu_ps(m, x + i)));
    }
}

static void TARGET_AVX512 erf_row512(float *y, const float *x, int n) {
    for (int i = 0; i < n; i += 16) {
        const __mmask16 m = tail16(n - i);
        _mm512_mask_storeu_ps(y + i, m, erf512(_mm512_maskz_loadu_ps(m, x + i)));
    }
}

static void TARGET_AVX512 bias_act_row512(float *x, const float *bias, int n, emb_act act) {
    for (int i = 0; i < n; i += 16) {
        const __mmask16 m = tail16(n - i);
        __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, bias + i));
        _mm512_mask_storeu_ps(x + i, m, act512(v, act));
    }
}

static float TARGET_AVX512 max_row512(const float *x, int n) {
    __m512 mx = V512(-INFINITY);
    for (int i = 0; i < n; i += 16) {
        const __mmask16 m = tail16(n - i);
        mx = _mm512_max_ps(mx, _mm512_mask_loadu_ps(V512(-INFINITY), m, x + i));
    }
    return _mm512_reduce_max_ps(mx);
}

static float TARGET_AVX512 exp_sub_sum512(float *x, int n, float sub) {
    __m512 sum = _mm512_setzero_ps();
    const __m512 s = V512(sub);
    for (int i = 0; i < n; i += 16) {
        const __mmask16 m = tail16(n - i);
        const __m512 e = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), s));
        _mm512_mask_storeu_ps(x + i, m, e);
        sum = _mm512_add_ps(sum, _mm512_maskz_mov_ps(m, e));
    }
    return _mm512_reduce_add_ps(sum);
}

/* ---- AVX2 --------------------------------------------------------------- */

#define V256(c) _mm256_set1_ps(c)

/* Lane mask for the first min(n, 8) lanes (maskload/maskstore read the sign bit). */
static inline __m256i TARGET_AVX2 tail8(int n) {
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n > 8 ? 8 : n), idx);
}

static inline __m256 TARGET_AVX2 blendm(__m256 a, __m256 b, __m256 m) {
    return _mm256_blendv_ps(a, b, m); /* m ? b : a */
}

static inline __m256 TARGET_AVX2 exp256(__m256 x) {
    const __m256 nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
    const __m256 lo = _mm256_cmp_ps(x, V256(EXP_LO), _CMP_LT_OQ);
    const __m256 hi = _mm256_cmp_ps(x, V256(EXP_HI), _CMP_GT_OQ);
    const __m256 xc = _mm256_min_ps(_mm256_max_ps(x, V256(EXP_LO)), V256(EXP_HI));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, V256(LOG2E)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, V256(LN2_HI), xc);
    r = _mm256_fnmadd_ps(n, V256(LN2_LO), r);
    __m256 p = V256(EXP_P0);
    p = _mm256_fmadd_ps(p, r, V256(EXP_P1));
    p = _mm256_fmadd_ps(p, r, V256(EXP_P2));
    p = _mm256_fmadd_ps(p, r, V256(EXP_P3));
    p = _mm256_fmadd_ps(p, r, V256(EXP_P4));
    p = _mm256_fmadd_ps(p, r, V256(EXP_P5));
    p = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), V256(1.0f));
    /* 2^n as two exact factors 2^n1 2^n2 (n up to 128 does not fit one). */
    const __m256i ni = _mm256_cvtps_epi32(n);
    const __m256i n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
    const __m256i bias = _mm256_set1_epi32(127);
    const __m256 f1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
    const __m256 f2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
    __m256 y = _mm256_mul_ps(_mm256_mul_ps(p, f1), f2);
    y = _mm256_andnot_ps(lo, y);
    y = blendm(y, V256(INFINITY), hi);
    return blendm(y, x, nan);
}

static inline __m256 TARGET_AVX2 abs256(__m256 x) {
    return _mm256_andnot_ps(V256(-0.0f), x);
}

static inline __m256 TARGET_AVX2 erf_small256(__m256 z) {
    const __m256 s = _mm256_mul_ps(z, z);
    __m256 p = V256(ERF_S5);
    p = _mm256_fmadd_ps(p, s, V256(ERF_S4));
    p = _mm256_fmadd_ps(p, s, V256(ERF_S3));
    p = _mm256_fmadd_ps(p, s, V256(ERF_S2));
    p = _mm256_fmadd_ps(p, s, V256(ERF_S1));
    p = _mm256_fmadd_ps(p, s, V256(ERF_S0));
    return _mm256_fmadd_ps(p, z, z);
}

static inline __m256 TARGET_AVX2 erfc_large256(__m256 t) {
    const __m256 past = _mm256_cmp_ps(t, V256(ERF_CUTOFF), _CMP_GE_OQ);
    t = _mm256_min_ps(t, V256(ERF_CUTOFF));
    __m256 q = V256(ERFC_Q8);
    q = _mm256_fmadd_ps(q, t, V256(ERFC_Q7));
    q = _mm256_fmadd_ps(q, t, V256(ERFC_Q6));
    q = _mm256_fmadd_ps(q, t, V256(ERFC_Q5));
    q = _mm256_fmadd_ps(q, t, V256(ERFC_Q4));
    q = _mm256_fmadd_ps(q, t, V256(ERFC_Q3));
    q = _mm256_fmadd_ps(q, t, V256(ERFC_Q2));
    q = _mm256_fmadd_ps(q, t, V256(ERFC_Q1));
    q = _mm256_fmadd_ps(q, t, V256(ERFC_Q0));
    return _mm256_andnot_ps(past, exp256(q));
}

static inline __m256 TARGET_AVX2 erf256(__m256 x) {
    const __m256 t = abs256(x);
    const __m256 small = _mm256_cmp_ps(t, V256(ERF_SPLIT), _CMP_LT_OQ);
    const __m256 nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
    const __m256 big = _mm256_sub_ps(V256(1.0f), erfc_large256(t));
    const __m256 sbig = _mm256_or_ps(big, _mm256_and_ps(x, V256(-0.0f)));
    return blendm(blendm(sbig, erf_small256(x), small), x, nan);
}

static inline __m256 TARGET_AVX2 gelu256(__m256 x) {
    const __m256 z = _mm256_mul_ps(x, V256(SQRT1_2)), t = abs256(z);
    const __m256 small = _mm256_cmp_ps(t, V256(ERF_SPLIT), _CMP_LT_OQ);
    const __m256 pos = _mm256_cmp_ps(z, _mm256_setzero_ps(), _CMP_GT_OQ);
    const __m256 e = erfc_large256(t);
    __m256 one_plus = blendm(e, _mm256_sub_ps(V256(2.0f), e), pos);
    one_plus = blendm(one_plus, _mm256_add_ps(V256(1.0f), erf_small256(z)), small);
    return _mm256_mul_ps(_mm256_mul_ps(V256(0.5f), x), one_plus);
}

static inline __m256 TARGET_AVX2 act256(__m256 x, emb_act act) {
    switch (act) {
    case EMB_ACT_GELU: return gelu256(x);
    case EMB_ACT_GELU_TANH: {
        const __m256 x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
        const __m256 u = _mm256_mul_ps(V256(GELU_TANH_C), _mm256_add_ps(x, _mm256_mul_ps(V256(GELU_TANH_A), x3)));
        const __m256 e = exp256(_mm256_mul_ps(V256(-2.0f), u));
        return _mm256_div_ps(x, _mm256_add_ps(V256(1.0f), e));
    }
    case EMB_ACT_RELU: return _mm256_max_ps(x, _mm256_setzero_ps());
    case EMB_ACT_SILU:
        return _mm256_div_ps(x, _mm256_add_ps(V256(1.0f), exp256(_mm256_sub_ps(_mm256_setzero_ps(), x))));
    case EMB_ACT_SIGMOID:
        return _mm256_div_ps(V256(1.0f), _mm256_add_ps(V256(1.0f), exp256(_mm256_sub_ps(_mm256_setzero_ps(), x))));
    default: return x;
    }
}

static void TARGET_AVX2 exp_row256(float *y, const float *x, int n) {
    for (int i = 0; i < n; i += 8) {
        const __m256i m = tail8(n - i);
        _mm256_maskstore_ps(y + i, m, exp256(_mm256_maskload_ps(x + i, m)));
    }
}

static void TARGET_AVX2 erf_row256(float *y, const float *x, int n) {
    for (int i = 0; i < n; i += 8) {
        const __m256i m = tail8(n - i);
        _mm256_maskstore_ps(y + i, m, erf256(_mm256_maskload_ps(x + i, m)));
    }
}

static void TARGET_AVX2 bias_act_row256(float *x, const float *bias, int n, emb_act act) {
    for (int i = 0; i < n; i += 8) {
        const __m256i m = tail8(n - i);
        __m256 v = _mm256_maskload_ps(x + i, m);
        if (bias) v = _mm256_add_ps(v, _mm256_maskload_ps(bias + i, m));
        _mm256_maskstore_ps(x + i, m, act256(v, act));
    }
}

static float TARGET_AVX2 hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static float TARGET_AVX2 max_row256(const float *x, int n) {
    __m256 mx = V256(-INFINITY);
    for (int i = 0; i < n; i += 8) {
        const __m256i m = tail8(n - i);
        const __m256 v = blendm(V256(-INFINITY), _mm256_maskload_ps(x + i, m), _mm256_castsi256_ps(m));
        mx = _mm256_max_ps(mx, v);
    }
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static float TARGET_AVX2 exp_sub_sum256(float *x, int n, float sub) {
    __m256 sum = _mm256_setzero_ps();
    const __m256 s = V256(sub);
    for (int i = 0; i < n; i += 8) {
        const __m256i m = tail8(n - i);
        const __m256 e = _mm256_and_ps(exp256(_mm256_sub_ps(_mm256_maskload_ps(x + i, m), s)),
                                       _mm256_castsi256_ps(m));
        _mm256_maskstore_ps(x + i, m, e);
        sum = _mm256_add_ps(sum, e);
    }
    return hsum256(sum);
}

#endif /* __x86_64__ */

/* ---- dispatch ----------------------------------------------------------- */

void cpu_vm_exp(float *y, const float *x, int n) {
#if defined(__x86_64__)
    switch (cpu_isa_active()) {
    case CPU_ISA_AVX512: exp_row512(y, x, n); return;
    case CPU_ISA_AVX2: exp_row256(y, x, n); return;
    default: break;
    }
#endif
    for (int i = 0; i < n; i++) y[i] = cpu_expf(x[i]);
}

void cpu_vm_erf(float *y, const float *x, int n) {
#if defined(__x86_64__)
    switch (cpu_isa_active()) {
    case CPU_ISA_AVX512: erf_row512(y, x, n); return;
    case CPU_ISA_AVX2: erf_row256(y, x, n); return;
    default: break;
    }
#endif
    for (int i = 0; i < n; i++) y[i] = cpu_erff(x[i]);
}

void cpu_vm_bias_act(float *x, const float *bias, int n, emb_act act) {
    if (act == EMB_ACT_IDENTITY && !bias) return;
#if defined(__x86_64__)
    if (act != EMB_ACT_TANH) {
        switch (cpu_isa_active()) {
        case CPU_ISA_AVX512: bias_act_row512(x, bias, n, act); return;
        case CPU_ISA_AVX2: bias_act_row256(x, bias, n, act); return;
        default: break;
        }
    }
#endif
    for (int i = 0; i < n; i++) x[i] = act_scalar(x[i] + (bias ? bias[i] : 0.0f), act);
}

float cpu_vm_max(const float *x, int n) {
#if defined(__x86_64__)
    switch (cpu_isa_active()) {
    case CPU_ISA_AVX512: return max_row512(x, n);
    case CPU_ISA_AVX2: return max_row256(x, n);
    default: break;
    }
#endif
    float mx = -INFINITY;
    for (int i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    return mx;
}

float cpu_vm_exp_sub_sum(float *x, int n, float sub) {
#if defined(__x86_64__)
    switch (cpu_isa_active()) {
    case CPU_ISA_AVX512: return exp_sub_sum512(x, n, sub);
    case CPU_ISA_AVX2: return exp_sub_sum256(x, n, sub);
    default: break;
    }
#endif
    float sum = 0.0f;
    for (int i = 0; i < n; i++) {
        x[i] = cpu_expf(x[i] - sub);
        sum += x[i];
    }
    return sum;
}

void cpu_vm_scale(float *x, int n, float s) {
    /* A plain loop: GCC vectorizes it for the baseline ISA, and it is a
     * single pass over a row already in L1. */
    for (int i = 0; i < n; i++) x[i] *= s;
}
