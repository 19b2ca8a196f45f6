/*
 * Vector math for the CPU backend: expf, erff, the activations built on them
 * (GELU exact and tanh forms, SiLU, sigmoid) and the two reductions softmax
 * needs, each with an AVX-512, an AVX2+FMA and a portable scalar path chosen
 * at run time. libm's erff/expf are correct but scalar and were ~40 % of a
 * layer's time; these are within ~1-2 ulp (tests/test_cpu_vmath.c sweeps them
 * against double precision) and every ISA path computes the same formulas,
 * so the paths agree to rounding.
 *
 * The ISA selection also drives cpu_gemm.c; tests force a path to exercise
 * the AVX2 and portable code on an AVX-512 machine.
 */
#ifndef EMBEDC_HOST_CPU_VMATH_H
#define EMBEDC_HOST_CPU_VMATH_H

#include "model.h"

typedef enum {
    CPU_ISA_PORTABLE = 0, /* plain C: any architecture */
    CPU_ISA_AVX2 = 1,     /* x86-64 with AVX2 + FMA */
    CPU_ISA_AVX512 = 2,   /* x86-64 with AVX-512F */
} cpu_isa;

/* The best path this CPU (and OS) supports. */
cpu_isa cpu_isa_detect(void);
/* The path in use: the detected one unless a test forced another. */
cpu_isa cpu_isa_active(void);
/* Use `isa` from now on (process-wide; for tests and benchmarks). Returns 0
 * and changes nothing when the CPU cannot run it. */
int cpu_isa_force(cpu_isa isa);
const char *cpu_isa_name(cpu_isa isa);

/* Scalar forms of the vector algorithms (the portable path uses these).
 * cpu_expf: flushes results below FLT_MIN (x < -87.3365) to 0, +inf above
 * 88.7228, NaN stays NaN. */
float cpu_expf(float x);
float cpu_erff(float x);

/* y[i] = f(x[i]) over n elements; y == x is allowed. */
void cpu_vm_exp(float *y, const float *x, int n);
void cpu_vm_erf(float *y, const float *x, int n);

/* x[i] = act(x[i] + bias[i]) (bias may be NULL) over one row of n. */
void cpu_vm_bias_act(float *x, const float *bias, int n, emb_act act);

/* max_i x[i] (-inf for n == 0). */
float cpu_vm_max(const float *x, int n);
/* x[i] = exp(x[i] - sub); returns the sum of the new x[i]. */
float cpu_vm_exp_sub_sum(float *x, int n, float sub);
/* x[i] *= s */
void cpu_vm_scale(float *x, int n, float s);

#endif
