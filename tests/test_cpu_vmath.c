/*
 * host/cpu/cpu_vmath.c: accuracy of the vector expf / erff / GELU against double
 * precision over dense sweeps, special values, and bit-for-bit agreement of
 * every ISA path this CPU can run (AVX-512, AVX2, portable) including the
 * masked tails of short rows.
 */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_vmath.h"

#define SWEEP (1 << 22)

/* Spacing of floats at |w| (FLT_MIN's below the normal range). */
static double ulp_at(double w) {
    float f = (float)fabs(w);
    if (f < FLT_MIN) f = FLT_MIN;
    if (isinf(f)) f = FLT_MAX;
    return (double)nextafterf(f, INFINITY) - f;
}

static float *linspace(float lo, float hi, int n) {
    float *x = malloc((size_t)n * sizeof *x);
    cr_assert(x);
    for (int i = 0; i < n; i++) x[i] = lo + (hi - lo) * (float)i / (float)(n - 1);
    return x;
}

static float *buffer(int n) {
    float *y = malloc((size_t)n * sizeof *y);
    cr_assert(y);
    return y;
}

static double gelu_ref(double x) { return 0.5 * x * (1.0 + erf(x / sqrt(2.0))); }

/* 0.5 x (1 + tanh u) written as x / (1 + e^-2u): the same function without
 * the cancellation of 1 + tanh(u) that even double suffers for u < -18. */
static double gelu_tanh_ref(double x) {
    return x / (1.0 + exp(-2.0 * 0.79788456080286536 * (x + 0.044715 * x * x * x)));
}

/* Runs f for every ISA up to the detected one, then restores it. */
#define FOR_EACH_ISA(isa)                                                                  \
    for (int isa = CPU_ISA_PORTABLE, best_ = (int)cpu_isa_detect();                        \
         isa <= best_ && cpu_isa_force((cpu_isa)isa); isa++, cpu_isa_force((cpu_isa)best_))

Test(cpu_vmath, exp_within_2_ulp) {
    float *x = linspace(-87.33f, 88.72f, SWEEP), *y = buffer(SWEEP);
    FOR_EACH_ISA(isa) {
        cpu_vm_exp(y, x, SWEEP);
        double worst = 0;
        float at = 0;
        for (int i = 0; i < SWEEP; i++) {
            const double w = exp((double)x[i]), e = fabs(y[i] - w) / ulp_at(w);
            if (e > worst) worst = e, at = x[i];
        }
        cr_expect(worst <= 2.0, "%s exp: %.3f ulp at %.9g", cpu_isa_name(isa), worst, at);
    }
    free(x), free(y);
}

Test(cpu_vmath, exp_special_values) {
    const float x[] = {0.0f, -0.0f, -INFINITY, INFINITY, NAN, -100.0f, 89.0f, 1.0f, -87.0f};
    const int n = sizeof x / sizeof *x;
    float y[sizeof x / sizeof *x];
    FOR_EACH_ISA(isa) {
        cpu_vm_exp(y, x, n);
        cr_expect(y[0] == 1.0f && y[1] == 1.0f, "%s exp(+-0)", cpu_isa_name(isa));
        cr_expect(y[2] == 0.0f && y[5] == 0.0f, "%s exp(-inf), exp(-100) = 0", cpu_isa_name(isa));
        cr_expect(isinf(y[3]) && isinf(y[6]), "%s exp(inf), exp(89) = inf", cpu_isa_name(isa));
        cr_expect(isnan(y[4]), "%s exp(nan)", cpu_isa_name(isa));
        cr_expect(fabs(y[7] - M_E) <= ulp_at(M_E), "%s exp(1) = %.9g", cpu_isa_name(isa), y[7]);
        cr_expect(y[8] > 0.0f, "%s exp(-87) > 0", cpu_isa_name(isa));
    }
}

Test(cpu_vmath, erf_within_2_ulp) {
    float *x = linspace(-6.0f, 6.0f, SWEEP), *y = buffer(SWEEP);
    /* and a geometric sweep of tiny magnitudes, where erf(x) ~ 1.128 x */
    float tiny[2000];
    for (int i = 0; i < 1000; i++) tiny[2 * i] = powf(10.0f, -37.0f + 37.0f * i / 1000.0f), tiny[2 * i + 1] = -tiny[2 * i];
    float ty[2000];
    FOR_EACH_ISA(isa) {
        cpu_vm_erf(y, x, SWEEP);
        cpu_vm_erf(ty, tiny, 2000);
        double worst = 0;
        float at = 0;
        for (int i = 0; i < SWEEP; i++) {
            const double w = erf((double)x[i]), e = fabs(y[i] - w) / ulp_at(w);
            if (e > worst) worst = e, at = x[i];
        }
        for (int i = 0; i < 2000; i++) {
            const double w = erf((double)tiny[i]), e = fabs(ty[i] - w) / ulp_at(w);
            if (e > worst) worst = e, at = tiny[i];
        }
        cr_expect(worst <= 2.0, "%s erf: %.3f ulp at %.9g", cpu_isa_name(isa), worst, at);
    }
    free(x), free(y);
}

/* GELU: never less accurate than the libm formula 0.5 x (1 + erff(x / sqrt 2))
 * it replaces, and within a few ulp plus the conditioning of the problem in
 * float: erfc(|z|) ~ e^-z^2, so rounding z = x / sqrt(2) (and the float
 * exponent z^2 + ... itself) moves it by ~2 z^2 ulps each, and for
 * -0.9375 < z < 0, 1 + erf(z) is a sum that cancels by |erf| / (1 + erf). */
Test(cpu_vmath, gelu_accuracy) {
    float *x = linspace(-10.0f, 10.0f, SWEEP), *y = buffer(SWEEP);
    double libm_worst = 0;
    for (int i = 0; i < SWEEP; i++) {
        const float g = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
        const double d = fabs(g - gelu_ref(x[i]));
        libm_worst = d > libm_worst ? d : libm_worst;
    }
    FOR_EACH_ISA(isa) {
        memcpy(y, x, SWEEP * sizeof *y);
        cpu_vm_bias_act(y, NULL, SWEEP, EMB_ACT_GELU);
        double worst_abs = 0, worst_rel = 0;
        float at = 0;
        for (int i = 0; i < SWEEP; i++) {
            const double w = gelu_ref(x[i]), d = fabs(y[i] - w);
            const double z = x[i] / sqrt(2.0), ez = erf(z);
            const double cancel = fabs(z) < 0.9375 ? 2.0 * fabs(ez) / (1.0 + ez) : 0.0;
            worst_abs = d > worst_abs ? d : worst_abs;
            if (x[i] > -5.5f) { /* beyond, GELU < 1e-7 and is returned as 0 */
                const double e = d / ulp_at(w) / (4.0 + 4.0 * z * z + cancel);
                if (e > worst_rel) worst_rel = e, at = x[i];
            }
        }
        cr_expect(worst_abs <= libm_worst, "%s gelu: max |d| %.3g, libm formula's %.3g",
                  cpu_isa_name(isa), worst_abs, libm_worst);
        cr_expect(worst_rel <= 1.0, "%s gelu: %.3f x (4 + 4 z^2 + cancellation) ulp at %.9g", cpu_isa_name(isa),
                  worst_rel, at);
    }
    free(x), free(y);
}

/* tanh GELU = x sigmoid(2u): relative error a few ulp plus the conditioning
 * of e^-2u in u, whose float evaluation (x^3, products, sum) carries ~4
 * roundings: 8 |u| ulp. */
Test(cpu_vmath, gelu_tanh_accuracy) {
    float *x = linspace(-10.0f, 10.0f, SWEEP), *y = buffer(SWEEP);
    FOR_EACH_ISA(isa) {
        memcpy(y, x, SWEEP * sizeof *y);
        cpu_vm_bias_act(y, NULL, SWEEP, EMB_ACT_GELU_TANH);
        double worst = 0;
        float at = 0;
        for (int i = 0; i < SWEEP; i++) {
            const double xx = x[i], w = gelu_tanh_ref(xx);
            const double u = 0.79788456080286536 * (xx + 0.044715 * xx * xx * xx);
            if (fabs(w) < 1e-30) continue;
            const double e = fabs(y[i] - w) / ulp_at(w) / (4.0 + 8.0 * fabs(u));
            if (e > worst) worst = e, at = x[i];
        }
        cr_expect(worst <= 1.0, "%s gelu_tanh: %.3f x (4 + 8|u|) ulp at %.9g", cpu_isa_name(isa),
                  worst, at);
    }
    free(x), free(y);
}

/* Every path computes the same operations in the same order: same bits,
 * including rows whose length is no multiple of the vector width. */
Test(cpu_vmath, isa_paths_agree_bitwise) {
    const emb_act acts[] = {EMB_ACT_GELU, EMB_ACT_GELU_TANH, EMB_ACT_SILU, EMB_ACT_SIGMOID,
                            EMB_ACT_RELU, EMB_ACT_IDENTITY};
    const int n = 100003;
    float *x = linspace(-20.0f, 20.0f, n), *bias = linspace(-1.0f, 1.0f, n);
    float *ref = buffer(n), *y = buffer(n);
    for (size_t a = 0; a < sizeof acts / sizeof *acts; a++) {
        memcpy(ref, x, n * sizeof *ref);
        cr_assert(cpu_isa_force(CPU_ISA_PORTABLE));
        cpu_vm_bias_act(ref, bias, n, acts[a]);
        FOR_EACH_ISA(isa) {
            for (int len = 1; len <= 40; len += 13) { /* short rows: masked tails only */
                memcpy(y, x, (size_t)len * sizeof *y);
                y[len] = 777.0f;
                cpu_vm_bias_act(y, bias, len, acts[a]);
                cr_expect(memcmp(y, ref, (size_t)len * sizeof *y) == 0 && y[len] == 777.0f,
                          "%s act %d, row of %d", cpu_isa_name(isa), (int)acts[a], len);
            }
            memcpy(y, x, n * sizeof *y);
            cpu_vm_bias_act(y, bias, n, acts[a]);
            cr_expect(memcmp(y, ref, n * sizeof *y) == 0, "%s act %d differs from portable",
                      cpu_isa_name(isa), (int)acts[a]);
        }
    }
    cr_assert(cpu_isa_force(CPU_ISA_PORTABLE));
    cpu_vm_exp(ref, x, n);
    FOR_EACH_ISA(isa) {
        cpu_vm_exp(y, x, n);
        cr_expect(memcmp(y, ref, n * sizeof *y) == 0, "%s exp differs", cpu_isa_name(isa));
    }
    cr_assert(cpu_isa_force(CPU_ISA_PORTABLE));
    cpu_vm_erf(ref, x, n);
    FOR_EACH_ISA(isa) {
        cpu_vm_erf(y, x, n);
        cr_expect(memcmp(y, ref, n * sizeof *y) == 0, "%s erf differs", cpu_isa_name(isa));
    }
    cpu_isa_force(cpu_isa_detect());
    free(x), free(bias), free(ref), free(y);
}

/* Softmax helpers on every row length around the vector widths. */
Test(cpu_vmath, softmax_helpers) {
    float x[70], y[70];
    FOR_EACH_ISA(isa) {
        for (int n = 1; n <= 66; n++) {
            for (int i = 0; i < n; i++) x[i] = sinf(1.7f * i + n) * 10.0f;
            double want_max = -INFINITY;
            for (int i = 0; i < n; i++) want_max = x[i] > want_max ? x[i] : want_max;
            cr_expect(cpu_vm_max(x, n) == (float)want_max, "%s max n=%d", cpu_isa_name(isa), n);
            memcpy(y, x, sizeof y);
            y[n] = 777.0f;
            const float sum = cpu_vm_exp_sub_sum(y, n, (float)want_max);
            double want_sum = 0;
            for (int i = 0; i < n; i++) {
                const double e = exp((double)(x[i] - (float)want_max)); /* float subtraction, as softmax does */
                want_sum += e;
                cr_expect(fabs(y[i] - e) <= 2 * ulp_at(e) + 1e-37, "%s exp_sub n=%d [%d]",
                          cpu_isa_name(isa), n, i);
            }
            cr_expect(fabs(sum - want_sum) <= 1e-6 * want_sum, "%s sum n=%d", cpu_isa_name(isa), n);
            cr_expect(y[n] == 777.0f, "%s exp_sub_sum wrote past n=%d", cpu_isa_name(isa), n);
        }
        cr_expect(cpu_vm_max(x, 0) == -INFINITY);
    }
}
