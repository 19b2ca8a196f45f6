/*
 * Shared helpers of the CUDA kernel tests (run on the simulator in CI and on
 * a real GPU by tools/gpu-check): deterministic random inputs rounded to the
 * device dtype (so the CPU twin sees exactly the values the kernel sees),
 * poisoned device buffers, and launches repeated under every simulator
 * scheduling order with a bit-identity check.
 */
#ifndef EMBEDC_TESTS_CUDA_KT_UTIL_H
#define EMBEDC_TESTS_CUDA_KT_UTIL_H

#ifdef KT_CR_SHIM
#include "cr_shim.h"   /* the ThreadSanitizer build: Criterion's API without Criterion */
#else
#include <criterion/criterion.h>
#endif
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cuda_runtime_api.h>

#include "half.h"
#include "kernels.h"

#ifdef EMBEDC_SIM
#include "embsim.h"
#endif

#define KT_CHECK(call)                                                                   \
    do {                                                                                 \
        cudaError_t e_ = (call);                                                         \
        cr_assert_eq(e_, cudaSuccess, "%s failed: %s", #call, cudaGetErrorString(e_));   \
    } while (0)

static uint64_t kt_rng = 0x9e3779b97f4a7c15ull;
static inline float kt_uniform(float lo, float hi) {
    kt_rng ^= kt_rng << 13;
    kt_rng ^= kt_rng >> 7;
    kt_rng ^= kt_rng << 17;
    return lo + (hi - lo) * (float)((kt_rng >> 11) * (1.0 / 9007199254740992.0));
}
/* Non-zero values: a zero input can hide an unwritten or mis-indexed element. */
static inline float kt_nonzero(float amp) {
    float v = kt_uniform(0.05f, 1.0f) * amp;
    return kt_uniform(0.0f, 1.0f) < 0.5f ? -v : v;
}

static inline size_t kt_esz(emb_kdtype dt) { return dt == EMB_KDT_F32 ? 4 : 2; }

static inline float kt_round(float v, emb_kdtype dt) {
    if (dt == EMB_KDT_F16) return emb_f16_to_f32(emb_f32_to_f16(v));
    if (dt == EMB_KDT_BF16) return emb_bf16_to_f32(emb_f32_to_bf16(v));
    return v;
}

/* n random values in [-amp, amp] \ small, rounded to dt, as host fp32. */
static inline float *kt_rand(size_t n, float amp, emb_kdtype dt) {
    float *x = malloc((n ? n : 1) * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = kt_round(kt_nonzero(amp), dt);
    return x;
}

/* Device copy of a host fp32 array in element type dt. */
static inline void *kt_upload(const float *x, size_t n, emb_kdtype dt) {
    void *d = NULL;
    size_t bytes = (n ? n : 1) * kt_esz(dt);
    KT_CHECK(cudaMalloc(&d, bytes));
    void *h = malloc(bytes);
    for (size_t i = 0; i < n; i++) {
        if (dt == EMB_KDT_F32) ((float *)h)[i] = x[i];
        else if (dt == EMB_KDT_F16) ((uint16_t *)h)[i] = emb_f32_to_f16(x[i]);
        else ((uint16_t *)h)[i] = emb_f32_to_bf16(x[i]);
    }
    KT_CHECK(cudaMemcpy(d, h, n * kt_esz(dt), cudaMemcpyHostToDevice));
    free(h);
    return d;
}

/* kt_upload at an offset of `off` elements into a fresh buffer: off = 2 (a
 * 4- or 8-byte shift) takes the kernels off their 16-byte vector paths.
 * Free with kt_free_at. */
static inline void *kt_upload_at(const float *x, size_t n, emb_kdtype dt, int off) {
    float *padded = calloc(n + (size_t)off + 1, sizeof *padded);
    memcpy(padded + off, x, n * sizeof *x);
    char *d = kt_upload(padded, n + (size_t)off, dt);
    free(padded);
    return d + (size_t)off * kt_esz(dt);
}
static inline void kt_free_at(void *d, emb_kdtype dt, int off) {
    if (d) cudaFree((char *)d - (size_t)off * kt_esz(dt));
}

static inline void *kt_upload_bytes(const void *x, size_t bytes) {
    void *d = NULL;
    KT_CHECK(cudaMalloc(&d, bytes ? bytes : 1));
    if (bytes) KT_CHECK(cudaMemcpy(d, x, bytes, cudaMemcpyHostToDevice));
    return d;
}

/* A device buffer filled with 0xff: NaN in fp32, fp16 and bf16. */
static inline void *kt_poisoned(size_t bytes) {
    void *d = NULL;
    KT_CHECK(cudaMalloc(&d, bytes ? bytes : 1));
    KT_CHECK(cudaMemset(d, 0xff, bytes ? bytes : 1));
    return d;
}

static inline void kt_poison(void *d, size_t bytes) { KT_CHECK(cudaMemset(d, 0xff, bytes)); }

/* Device array of dt back to host fp32. */
static inline float *kt_download(const void *d, size_t n, emb_kdtype dt) {
    size_t bytes = n * kt_esz(dt);
    void *h = malloc(bytes ? bytes : 1);
    KT_CHECK(cudaMemcpy(h, d, bytes, cudaMemcpyDeviceToHost));
    float *x = malloc((n ? n : 1) * sizeof *x);
    for (size_t i = 0; i < n; i++) {
        if (dt == EMB_KDT_F32) x[i] = ((float *)h)[i];
        else if (dt == EMB_KDT_F16) x[i] = emb_f16_to_f32(((uint16_t *)h)[i]);
        else x[i] = emb_bf16_to_f32(((uint16_t *)h)[i]);
    }
    free(h);
    return x;
}

/* Tolerance of a result stored in dt and computed with fp32 statistics. */
static inline void kt_tol(emb_kdtype dt, float *atol, float *rtol) {
    if (dt == EMB_KDT_F32) *atol = 1e-4f, *rtol = 1e-4f;
    else if (dt == EMB_KDT_F16) *atol = 4e-3f, *rtol = 4e-3f;
    else *atol = 2e-2f, *rtol = 1.6e-2f;
}

/* Every element written (no poison left) and within tolerance. */
static inline void kt_compare(const char *what, const float *got, const float *ref, size_t n,
                              float atol, float rtol) {
    size_t bad = 0, first = 0;
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        cr_assert(!isnan(got[i]) || isnan(ref[i]), "%s: element %zu not written (NaN poison left)",
                  what, i);
        if (isinf(ref[i]) && got[i] == ref[i]) continue;
        double d = fabs((double)got[i] - ref[i]), lim = atol + rtol * fabs((double)ref[i]);
        if (!(d <= lim)) {
            if (!bad) first = i;
            bad++;
        }
        if (d > worst) worst = d;
    }
    cr_assert_eq(bad, 0, "%s: %zu of %zu elements off (first %zu: got %g want %g; worst |d| %g)",
                 what, bad, n, first, got[first], ref[first], worst);
}

/* On a real GPU build the suites skip themselves when no device is usable,
 * so ctest stays green on build machines; the simulator always has one. */
static inline void kt_need_device(void) {
#ifndef EMBEDC_SIM
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
        cudaGetLastError();
        cr_skip_test("no CUDA device");
    }
#endif
}

/* Runs `launch` (which must poison its outputs first) under each scheduling
 * order of the simulator and checks the `bytes` at `dev_out` are identical. */
typedef void (*kt_launch_fn)(void *ud);
static inline void kt_run_orders(kt_launch_fn launch, void *ud, const void *dev_out, size_t bytes) {
#ifdef EMBEDC_SIM
    static const embsim_order orders[] = {EMBSIM_FORWARD, EMBSIM_REVERSE, EMBSIM_SHUFFLE};
    unsigned char *first = malloc(bytes ? bytes : 1), *again = malloc(bytes ? bytes : 1);
    for (int o = 0; o < 3; o++) {
        embsim_set_order(orders[o], 12345 + o);
        launch(ud);
        KT_CHECK(cudaDeviceSynchronize());
        KT_CHECK(cudaMemcpy(o ? again : first, dev_out, bytes, cudaMemcpyDeviceToHost));
        if (o) cr_assert(!memcmp(first, again, bytes), "result differs under order %s",
                         embsim_order_name());
    }
    embsim_set_order(EMBSIM_FORWARD, 0);
    free(first);
    free(again);
#else
    (void)bytes;
    (void)dev_out;
    launch(ud);
    KT_CHECK(cudaDeviceSynchronize());
#endif
}

#endif
