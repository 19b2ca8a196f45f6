/* test_planted.cu: kernels and host code with planted bugs, each of which
 * the simulator must catch. Reports are recorded instead of aborting, and
 * each test asserts on the report's text. Under ASan (sim_tests_asan) the
 * out-of-bounds tests expect ASan itself to stop the process. */
#include "helpers.h"

#include <cmath>

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

/* 1. A tree reduction with the barrier inside the loop removed. */
__global__ void racy_reduction_kernel(const int *in, int *out)
{
    EMB_SHARED(int, part, 128);
    part[threadIdx.x] = in[threadIdx.x];
    __syncthreads();
    for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s)
            part[threadIdx.x] += part[threadIdx.x + s];
        /* planted: missing __syncthreads() */
    }
    if (threadIdx.x == 0)
        out[0] = part[0];
}

Test(planted, race_from_a_removed_barrier_changes_with_the_order)
{
    std::vector<int> in(128);
    int expect = 0;
    for (int i = 0; i < 128; i++) {
        in[static_cast<size_t>(i)] = i * i % 97 + 1;
        expect += in[static_cast<size_t>(i)];
    }
    DevBuf<int> din(in), dout(1);
    std::vector<int> results;
    for (embsim_order o : {EMBSIM_FORWARD, EMBSIM_REVERSE, EMBSIM_SHUFFLE}) {
        embsim_set_order(o, 4242);
        EMB_LAUNCH(racy_reduction_kernel, 1, 128, 0, 0)(din.d, dout.d);
        results.push_back(dout.get()[0]);
    }
    bool all_right = results[0] == expect && results[1] == expect && results[2] == expect;
    bool all_same = results[0] == results[1] && results[1] == results[2];
    cr_assert(!all_right && !all_same, "the race must show as order-dependent or wrong results (%d %d %d, expected %d)",
              results[0], results[1], results[2], expect);
}

/* 2. Threads of one block waiting at different __syncthreads. */
__global__ void divergent_barrier_kernel(int *out)
{
    if (threadIdx.x < 16)
        __syncthreads();
    else
        __syncthreads();
    out[threadIdx.x] = 1;
}

Test(planted, divergent_syncthreads)
{
    embsim_set_record_errors(1);
    DevBuf<int> out(64);
    EMB_LAUNCH(divergent_barrier_kernel, 1, 64, 0, 0)(out.d);
    cr_assert_eq(cudaDeviceSynchronize(), cudaErrorLaunchFailure);
    cr_assert_eq(embsim_errors_matching("threads wait at different __syncthreads"), 1, "%s", embsim_first_error());
    cr_assert_eq(embsim_errors_matching("divergent_barrier_kernel"), 1);
    cr_assert_eq(embsim_errors_matching("test_planted.cu:"), 1, "names the call sites: %s", embsim_first_error());
}

/* 2b. A thread returning early, skipping a barrier the others wait at. */
__global__ void early_exit_kernel(int *out, int n)
{
    EMB_SHARED(int, s, 64);
    if (static_cast<int>(threadIdx.x) >= n)
        return;
    s[threadIdx.x] = 1;
    __syncthreads();
    out[threadIdx.x] = s[(threadIdx.x + 1) % n];
}

Test(planted, exit_before_a_barrier_others_wait_at)
{
    embsim_set_record_errors(1);
    DevBuf<int> out(64);
    EMB_LAUNCH(early_exit_kernel, 1, 64, 0, 0)(out.d, 40);
    CUDA_OK(cudaDeviceSynchronize()); /* exited threads count as arrived */
    cr_assert_eq(embsim_errors_matching("exited without reaching the __syncthreads"), 1, "%s", embsim_first_error());
    embsim_clear_errors();
    EMB_LAUNCH(early_exit_kernel, 1, 64, 0, 0)(out.d, 64);
    CUDA_OK(cudaDeviceSynchronize());
    cr_assert_eq(embsim_error_count(), 0, "no thread exits early: %s", embsim_first_error());
}

/* 3. An out-of-bounds global write. */
__global__ void oob_write_kernel(float *out, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i <= n) /* planted: should be i < n */
        out[i] = 1.0f;
}

#if UNDER_ASAN
Test(planted, out_of_bounds_global_write, .exit_code = 1)
#else
Test(planted, out_of_bounds_global_write)
#endif
{
    embsim_set_record_errors(1);
    DevBuf<float> out(100);
    EMB_LAUNCH(oob_write_kernel, 1, 128, 0, 0)(out.d, 100);
    CUDA_OK(cudaDeviceSynchronize());
    cr_assert_eq(embsim_errors_matching("wrote out of bounds of a 400-byte cudaMalloc buffer"), 1, "%s", embsim_first_error());
}

/* 3b. An out-of-bounds shared-memory write lands in a red zone. */
__global__ void oob_shared_kernel(int *out)
{
    EMB_SHARED(int, s, 32);
    s[threadIdx.x] = static_cast<int>(threadIdx.x); /* planted: 33 threads */
    __syncthreads();
    out[0] = s[0];
}

#if UNDER_ASAN
Test(planted, out_of_bounds_shared_write, .exit_code = 1)
#else
Test(planted, out_of_bounds_shared_write)
#endif
{
    embsim_set_record_errors(1);
    DevBuf<int> out(1);
    EMB_LAUNCH(oob_shared_kernel, 1, 33, 0, 0)(out.d);
    CUDA_OK(cudaDeviceSynchronize());
    cr_assert_eq(embsim_errors_matching("shared memory written out of bounds, 128 bytes past the start of EMB_SHARED"), 1,
                 "%s", embsim_first_error());
}

#if UNDER_ASAN
/* 3c. Reads out of bounds: only ASan sees those. */
__global__ void oob_read_kernel(const float *in, float *out, int n)
{
    out[0] = in[n + 3];
}

Test(planted, out_of_bounds_global_read_under_asan, .exit_code = 1)
{
    DevBuf<float> in(16), out(1);
    EMB_LAUNCH(oob_read_kernel, 1, 1, 0, 0)(in.d, out.d, 16);
    cudaDeviceSynchronize();
}
#endif

/* 4. A shuffle in divergent code: half the warp never arrives. */
__global__ void divergent_shuffle_kernel(float *out)
{
    float v = static_cast<float>(threadIdx.x);
    if (threadIdx.x < 16)
        v += __shfl_down_sync(0xffffffffu, v, 1);
    out[threadIdx.x] = v;
}

Test(planted, shuffle_in_divergent_code)
{
    embsim_set_record_errors(1);
    DevBuf<float> out(32);
    EMB_LAUNCH(divergent_shuffle_kernel, 1, 32, 0, 0)(out.d);
    cr_assert_eq(cudaDeviceSynchronize(), cudaErrorLaunchFailure);
    cr_assert_eq(embsim_errors_matching("__shfl_down_sync"), 1, "%s", embsim_first_error());
    cr_assert_eq(embsim_errors_matching("which has exited"), 1, "%s", embsim_first_error());
}

/* 5. A shuffle with a width that is not a power of two. */
__global__ void bad_width_kernel(float *out)
{
    float v = static_cast<float>(threadIdx.x);
    for (int o = 8; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o, 24); /* planted: width 24 */
    out[threadIdx.x] = v;
}

Test(planted, shuffle_with_a_wrong_width)
{
    embsim_set_record_errors(1);
    DevBuf<float> out(32);
    EMB_LAUNCH(bad_width_kernel, 1, 32, 0, 0)(out.d);
    cr_assert_eq(cudaDeviceSynchronize(), cudaErrorLaunchFailure);
    cr_assert_eq(embsim_errors_matching("width 24: width must be a power of two"), 1, "%s", embsim_first_error());
}

/* 5b. Masks that break the rules. */
__global__ void bad_mask_kernel(unsigned *out)
{
    unsigned lane = threadIdx.x;
    if (lane >= 30)
        return;
    out[lane] = __ballot_sync(0x0000ffffu, 1); /* lanes 16..29 are not in their own mask */
}

Test(planted, lane_missing_from_its_own_mask)
{
    embsim_set_record_errors(1);
    DevBuf<unsigned> out(32);
    EMB_LAUNCH(bad_mask_kernel, 1, 32, 0, 0)(out.d);
    cudaDeviceSynchronize();
    cr_assert_eq(embsim_errors_matching("does not name the calling lane"), 14, "%s", embsim_first_error());
}

/* 6. A read of shared memory nobody wrote: the output follows the poison. */
__global__ void uninit_shared_kernel(const float *in, float *out, int n)
{
    EMB_SHARED(float, s, 64);
    if (static_cast<int>(threadIdx.x) < n - 1) /* planted: the last element is never written */
        s[threadIdx.x] = in[threadIdx.x];
    __syncthreads();
    out[threadIdx.x] = s[(threadIdx.x + 1) % 64];
}

__global__ void init_shared_kernel(const float *in, float *out, int n)
{
    EMB_SHARED(float, s, 64);
    if (static_cast<int>(threadIdx.x) < n)
        s[threadIdx.x] = in[threadIdx.x];
    __syncthreads();
    out[threadIdx.x] = s[(threadIdx.x + 1) % 64];
}

/* Runs `k` with two poison bytes; a difference is a read of unwritten memory. */
template <typename K>
static bool depends_on_poison(K k)
{
    DevBuf<float> in(std::vector<float>(64, 0.5f)), out(64);
    embsim_set_poison(0x00);
    EMB_LAUNCH(k, 1, 64, 0, 0)(in.d, out.d, 64);
    std::vector<float> a = out.get();
    embsim_set_poison(0x7f);
    EMB_LAUNCH(k, 1, 64, 0, 0)(in.d, out.d, 64);
    std::vector<float> b = out.get();
    return memcmp(a.data(), b.data(), a.size() * sizeof(float)) != 0;
}

Test(planted, read_of_uninitialised_shared_memory)
{
    cr_assert(depends_on_poison(uninit_shared_kernel), "the planted bug must make the output follow the poison");
    cr_assert(!depends_on_poison(init_shared_kernel), "the correct kernel must not");
}

/* 7. A kernel reading a buffer before the copy stream that fills it was
 * synchronised with the compute stream. */
__global__ void consume_kernel(const float *in, float *out, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        out[i] = in[i] + 1.0f;
}

Test(planted, kernel_reads_before_the_copy_stream_was_synchronised)
{
    embsim_set_record_errors(1);
    const int n = 64;
    float *pinned;
    CUDA_OK(cudaMallocHost(reinterpret_cast<void **>(&pinned), n * sizeof(float)));
    for (int i = 0; i < n; i++)
        pinned[i] = static_cast<float>(i);
    DevBuf<float> din(n), dout(n);
    cudaStream_t copy, compute;
    CUDA_OK(cudaStreamCreateWithFlags(&copy, cudaStreamNonBlocking));
    CUDA_OK(cudaStreamCreateWithFlags(&compute, cudaStreamNonBlocking));
    CUDA_OK(cudaMemcpyAsync(din.d, pinned, n * sizeof(float), cudaMemcpyHostToDevice, copy));
    /* planted: no cudaEventRecord(copy) + cudaStreamWaitEvent(compute) */
    EMB_LAUNCH(consume_kernel, 1, 64, 0, compute)(din.d, dout.d, n);
    CUDA_OK(cudaStreamSynchronize(compute));
    cr_assert_eq(embsim_errors_matching("consume_kernel' runs while its pointer argument #1"), 1, "%s", embsim_first_error());
    std::vector<float> o = dout.get();
    cr_assert(std::isnan(o[5]), "the kernel read the poison, not the data");
    CUDA_OK(cudaStreamSynchronize(copy));
    CUDA_OK(cudaStreamDestroy(copy));
    CUDA_OK(cudaStreamDestroy(compute));
    CUDA_OK(cudaFreeHost(pinned));
}

/* 8. Host code reading results without synchronising the stream. */
Test(planted, host_reads_before_stream_synchronisation)
{
    const int n = 8;
    float *pinned;
    CUDA_OK(cudaMallocHost(reinterpret_cast<void **>(&pinned), n * sizeof(float)));
    DevBuf<float> din(std::vector<float>(n, 2.0f)), dout(n);
    cudaStream_t s;
    CUDA_OK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    EMB_LAUNCH(consume_kernel, 1, 8, 0, s)(din.d, dout.d, n);
    CUDA_OK(cudaMemcpyAsync(pinned, dout.d, n * sizeof(float), cudaMemcpyDeviceToHost, s));
    uint32_t raw;
    memcpy(&raw, pinned, 4);
    cr_assert_eq(raw, 0x01010101u * embsim_get_poison(), "without the synchronisation the host sees stale memory");
    CUDA_OK(cudaStreamSynchronize(s));
    cr_assert_eq(pinned[0], 3.0f);
    CUDA_OK(cudaStreamDestroy(s));
    CUDA_OK(cudaFreeHost(pinned));
}
