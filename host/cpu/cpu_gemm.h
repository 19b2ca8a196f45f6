/*
 * Single-precision GEMM for the CPU backend: the shapes of an encoder (a
 * token matrix times a torch-Linear weight, and attention's small strided
 * products), with AVX-512, AVX2+FMA and portable micro-kernels picked at run
 * time (cpu_isa_active(), cpu_vmath.h). Accumulation in fp32, k in order, so
 * results differ from any other BLAS by rounding only.
 *
 * Weights are packed once (cpu_gemm_weight_pack) into the panel layout the
 * micro-kernels read; the layout does not depend on the ISA, so a packed
 * weight serves every path.
 */
#ifndef EMBEDC_HOST_CPU_GEMM_H
#define EMBEDC_HOST_CPU_GEMM_H

#include "model.h"

/* A torch-Linear weight W [n, k] in column panels: ceil(n / 32) panels, each
 * [k][32] (64-byte aligned, columns past n zero). */
typedef struct {
    int n, k;
    float *panels;
} cpu_gemm_weight;

/* Packs w [n, k] (row-major, rows of k). Returns 0, or -1 when out of memory
 * (then p->panels is NULL). */
int cpu_gemm_weight_pack(cpu_gemm_weight *p, const float *w, int n, int k);
void cpu_gemm_weight_free(cpu_gemm_weight *p);

/* Per-thread grow-only buffers (slot: CPU_TL_*) are handed here after each
 * (re)allocation so that they are freed when their thread exits: a program
 * that calls the library from short-lived threads gets a new OpenMP team for
 * each, and the team's buffers must not outlive it. */
enum { CPU_TL_BPACK, CPU_TL_SCORES, CPU_TL_SLOTS };
void cpu_tl_track(int slot, void *p);

/* y[r][c] = act(sum_k x[r][k] W[c][k] (+ y[r][c] when accumulate) + bias[c])
 * for r < rows, c < W.n; x rows are ldx apart, y rows ldy apart; bias may be
 * NULL. Threaded with OpenMP over blocks of y (serial inside a parallel
 * region). */
void cpu_gemm_linear(float *y, int ldy, const float *x, int ldx, int rows,
                     const cpu_gemm_weight *w, const float *bias, emb_act act, int accumulate);

/* C[M,N] = alpha A[M,K] op(B) + beta C, A and C row-major with leading
 * dimensions lda, ldc. transb != 0: B is [N,K] (C = A B^T); else B is [K,N].
 * Serial: meant for the many small products inside attention's parallel
 * loop. On allocation failure C is filled with NaN (cannot pass for a
 * result). */
void cpu_gemm(int transb, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc);

#endif
