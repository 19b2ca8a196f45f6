/*
 * The planted race of tsan_planted.cu, run by the ThreadSanitizer build of the
 * kernel suite (cr_shim.h runner). `planted/with_barrier` runs with the suite
 * and must be clean; `planted/missing_barrier` is disabled and run only by its
 * own ctest entry (--filter planted/missing_barrier), which passes when TSan
 * reports the data race: proof that this build's TSan sees a missing
 * __syncthreads in a kernel.
 */
#include "kt_util.h"

cudaError_t kt_planted_block_sum(const float *in, float *out, int blocks, int with_barrier,
                                 cudaStream_t stream);

static void planted_case(int with_barrier) {
    enum { BLOCKS = 2, N = BLOCKS * 256 };
    float *x = kt_rand(N, 1.0f, EMB_KDT_F32);
    float *in = kt_upload(x, N, EMB_KDT_F32), *out = kt_poisoned(BLOCKS * sizeof(float));
    KT_CHECK(kt_planted_block_sum(in, out, BLOCKS, with_barrier, 0));
    float got[BLOCKS];
    KT_CHECK(cudaMemcpy(got, out, sizeof got, cudaMemcpyDeviceToHost));
    for (int b = 0; b < BLOCKS; b++) {
        double want = 0;
        for (int i = 0; i < 256; i++) want += x[b * 256 + i];
        cr_assert_float_eq(got[b], want, 1e-3, "block %d: got %g want %g", b, got[b], want);
    }
    cudaFree(in);
    cudaFree(out);
    free(x);
}

Test(planted, with_barrier) { planted_case(1); }

Test(planted, missing_barrier, .disabled = true) { planted_case(0); }
