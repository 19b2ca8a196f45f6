/* test_runtime.cu: the fake CUDA runtime: memory, streams that run only at
 * synchronisation points, events, the legacy default stream, graphs,
 * devices and error codes. */
#include "helpers.h"

__global__ void scale_kernel(const float *in, float *out, float k, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        out[i] = in[i] * k;
}

Test(runtime, malloc_poisons_and_memset_clears)
{
    DevBuf<uint32_t> b(16);
    std::vector<uint32_t> h = b.get();
    uint32_t poison = 0x01010101u * embsim_get_poison();
    for (uint32_t v : h)
        cr_assert_eq(v, poison);
    CUDA_OK(cudaMemset(b.d, 0, 16 * sizeof(uint32_t)));
    for (uint32_t v : b.get())
        cr_assert_eq(v, 0u);
}

/* Work queued on a stream happens only when the host waits for it. */
Test(runtime, stream_work_runs_at_synchronisation)
{
    const int n = 100;
    float *hin, *hout;
    CUDA_OK(cudaMallocHost(reinterpret_cast<void **>(&hin), n * sizeof(float)));
    CUDA_OK(cudaMallocHost(reinterpret_cast<void **>(&hout), n * sizeof(float)));
    for (int i = 0; i < n; i++) {
        hin[i] = static_cast<float>(i);
        hout[i] = -1.0f;
    }
    DevBuf<float> din(n), dout(n);
    cudaStream_t s;
    CUDA_OK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    CUDA_OK(cudaMemcpyAsync(din.d, hin, n * sizeof(float), cudaMemcpyHostToDevice, s));
    EMB_LAUNCH(scale_kernel, 1, 128, 0, s)(din.d, dout.d, 2.0f, n);
    CUDA_OK(cudaMemcpyAsync(hout, dout.d, n * sizeof(float), cudaMemcpyDeviceToHost, s));
    for (int i = 0; i < n; i++)
        cr_assert_eq(hout[i], -1.0f, "nothing ran before the synchronisation");
    hin[0] = 1000.0f; /* pinned source: the queued copy reads it when it runs */
    CUDA_OK(cudaStreamSynchronize(s));
    cr_assert_eq(hout[0], 2000.0f);
    for (int i = 1; i < n; i++)
        cr_assert_eq(hout[i], 2.0f * static_cast<float>(i));
    CUDA_OK(cudaStreamDestroy(s));
    CUDA_OK(cudaFreeHost(hin));
    CUDA_OK(cudaFreeHost(hout));
}

/* Two streams ordered by an event: the copy runs before the kernel. */
Test(runtime, event_orders_two_streams_and_times_them)
{
    embsim_set_record_errors(1);
    const int n = 64;
    std::vector<float> h(n, 3.0f);
    float *pinned;
    CUDA_OK(cudaMallocHost(reinterpret_cast<void **>(&pinned), n * sizeof(float)));
    memcpy(pinned, h.data(), n * sizeof(float));
    DevBuf<float> din(n), dout(n);
    cudaStream_t copy, compute;
    cudaEvent_t ready, t0, t1;
    CUDA_OK(cudaStreamCreate(&copy));
    CUDA_OK(cudaStreamCreate(&compute));
    CUDA_OK(cudaEventCreate(&ready));
    CUDA_OK(cudaEventCreate(&t0));
    CUDA_OK(cudaEventCreate(&t1));
    CUDA_OK(cudaEventRecord(t0, compute));
    CUDA_OK(cudaMemcpyAsync(din.d, pinned, n * sizeof(float), cudaMemcpyHostToDevice, copy));
    CUDA_OK(cudaEventRecord(ready, copy));
    CUDA_OK(cudaStreamWaitEvent(compute, ready, 0));
    EMB_LAUNCH(scale_kernel, 1, 64, 0, compute)(din.d, dout.d, 0.5f, n);
    CUDA_OK(cudaEventRecord(t1, compute));
    float ms = -1;
    cr_assert_eq(cudaEventElapsedTime(&ms, t0, t1), cudaErrorNotReady);
    CUDA_OK(cudaEventSynchronize(t1));
    CUDA_OK(cudaEventElapsedTime(&ms, t0, t1));
    cr_assert(ms >= 0.0f);
    for (float v : dout.get())
        cr_assert_eq(v, 1.5f);
    cr_assert_eq(embsim_error_count(), 0, "no hazard: %s", embsim_first_error());
    CUDA_OK(cudaEventDestroy(ready));
    CUDA_OK(cudaEventDestroy(t0));
    CUDA_OK(cudaEventDestroy(t1));
    CUDA_OK(cudaStreamDestroy(copy));
    CUDA_OK(cudaStreamDestroy(compute));
    CUDA_OK(cudaFreeHost(pinned));
}

/* The legacy default stream orders against blocking streams. */
Test(runtime, legacy_default_stream_orders_blocking_streams)
{
    const int n = 32;
    DevBuf<float> a(std::vector<float>(n, 1.0f)), b(n), c(n);
    cudaStream_t s;
    CUDA_OK(cudaStreamCreate(&s));
    EMB_LAUNCH(scale_kernel, 1, 32, 0, s)(a.d, b.d, 4.0f, n);
    EMB_LAUNCH(scale_kernel, 1, 32, 0, 0)(b.d, c.d, 0.25f, n); /* waits for s */
    for (float v : c.get())                                    /* blocking copy waits for stream 0 */
        cr_assert_eq(v, 1.0f);
    CUDA_OK(cudaStreamDestroy(s));
}

/* A captured sequence replays with its captured arguments. */
__global__ void add_kernel(float *x, float v, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        x[i] += v;
}

Test(runtime, graph_capture_and_replay)
{
    const int n = 50;
    DevBuf<float> x(std::vector<float>(n, 0.0f));
    cudaStream_t s;
    CUDA_OK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    CUDA_OK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
    cudaStreamCaptureStatus st;
    CUDA_OK(cudaStreamIsCapturing(s, &st));
    cr_assert_eq(st, cudaStreamCaptureStatusActive);
    EMB_LAUNCH(add_kernel, 1, 64, 0, s)(x.d, 1.0f, n);
    EMB_LAUNCH(add_kernel, 1, 64, 0, s)(x.d, 10.0f, n);
    cudaGraph_t g;
    cudaGraphExec_t ge;
    CUDA_OK(cudaStreamEndCapture(s, &g));
    CUDA_OK(cudaGraphInstantiate(&ge, g, 0));
    CUDA_OK(cudaStreamSynchronize(s));
    for (float v : x.get())
        cr_assert_eq(v, 0.0f, "capturing does not run the work");
    CUDA_OK(cudaGraphLaunch(ge, s));
    CUDA_OK(cudaGraphLaunch(ge, s));
    CUDA_OK(cudaStreamSynchronize(s));
    for (float v : x.get())
        cr_assert_eq(v, 22.0f);
    CUDA_OK(cudaGraphExecDestroy(ge));
    CUDA_OK(cudaGraphDestroy(g));
    CUDA_OK(cudaStreamDestroy(s));
}

/* While a global or thread-local capture is open its thread may not
 * allocate, free or synchronise the device: the call fails and the capture
 * ends invalidated, as on a GPU; relaxed mode allows allocating. A graph
 * launch can run out of memory (embsim_inject_oom). */
Test(runtime, capture_modes_and_graph_launch_oom)
{
    cudaStream_t s;
    CUDA_OK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    void *p = nullptr;
    cudaGraph_t g = nullptr;
    const cudaStreamCaptureMode strict[] = {cudaStreamCaptureModeGlobal, cudaStreamCaptureModeThreadLocal};
    for (cudaStreamCaptureMode m : strict) {
        CUDA_OK(cudaStreamBeginCapture(s, m));
        cr_assert_eq(cudaMalloc(&p, 64), cudaErrorStreamCaptureUnsupported);
        cr_assert_null(p);
        cr_assert_eq(cudaStreamEndCapture(s, &g), cudaErrorStreamCaptureInvalidated);
        cr_assert_null(g);
        cudaGetLastError();
    }
    CUDA_OK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    cr_assert_eq(cudaDeviceSynchronize(), cudaErrorStreamCaptureUnsupported);
    cr_assert_eq(cudaStreamEndCapture(s, &g), cudaErrorStreamCaptureInvalidated);
    cudaGetLastError();

    CUDA_OK(cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed));
    CUDA_OK(cudaMalloc(&p, 64));
    const int n = 8;
    DevBuf<float> x(std::vector<float>(n, 0.0f));
    EMB_LAUNCH(add_kernel, 1, 32, 0, s)(x.d, 2.0f, n);
    CUDA_OK(cudaStreamEndCapture(s, &g));
    CUDA_OK(cudaFree(p));
    cudaGraphExec_t ge;
    CUDA_OK(cudaGraphInstantiate(&ge, g, 0));
    embsim_inject_oom(0, 1);
    cr_assert_eq(cudaGraphLaunch(ge, s), cudaErrorMemoryAllocation);
    embsim_inject_oom(0, 0);
    cudaGetLastError();
    CUDA_OK(cudaGraphLaunch(ge, s));
    CUDA_OK(cudaStreamSynchronize(s));
    for (float v : x.get())
        cr_assert_eq(v, 2.0f, "the failed launch ran nothing, the next one ran once");
    CUDA_OK(cudaGraphExecDestroy(ge));
    CUDA_OK(cudaGraphDestroy(g));
    CUDA_OK(cudaStreamDestroy(s));
}

/* embsim_api_calls counts what the code under test calls, once per call:
 * not cudaFree's own device synchronisation, not a query as a wait. */
Test(runtime, api_call_counters)
{
    embsim_reset_api_calls();
    void *d = nullptr, *h = nullptr;
    CUDA_OK(cudaMalloc(&d, 256));
    CUDA_OK(cudaMallocHost(&h, 256));
    cudaStream_t s;
    CUDA_OK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    cudaEvent_t e;
    CUDA_OK(cudaEventCreate(&e));
    CUDA_OK(cudaMemsetAsync(d, 0, 256, s));
    CUDA_OK(cudaEventRecord(e, s));
    CUDA_OK(cudaEventQuery(e));
    CUDA_OK(cudaStreamQuery(s));
    CUDA_OK(cudaEventSynchronize(e));
    CUDA_OK(cudaEventSynchronize(e));
    CUDA_OK(cudaStreamSynchronize(s));
    CUDA_OK(cudaMemcpy(h, d, 256, cudaMemcpyDeviceToHost));
    CUDA_OK(cudaMemset(d, 1, 256));
    CUDA_OK(cudaDeviceSynchronize());
    CUDA_OK(cudaFree(d));
    CUDA_OK(cudaFreeHost(h));
    const uint64_t want[EMBSIM_API_COUNT] = {1, 1, 1, 1, 1, 1, 2, 2, 0};
    for (int k = 0; k < EMBSIM_API_COUNT; k++)
        cr_assert_eq(embsim_api_calls(static_cast<embsim_api>(k)), want[k], "counter %d: %llu, want %llu", k,
                     static_cast<unsigned long long>(embsim_api_calls(static_cast<embsim_api>(k))),
                     static_cast<unsigned long long>(want[k]));
    embsim_reset_api_calls();
    for (int k = 0; k < EMBSIM_API_COUNT; k++)
        cr_assert_eq(embsim_api_calls(static_cast<embsim_api>(k)), 0u);
    CUDA_OK(cudaEventDestroy(e));
    CUDA_OK(cudaStreamDestroy(s));
}

Test(runtime, devices_and_properties)
{
    int count = 0;
    CUDA_OK(cudaGetDeviceCount(&count));
    cr_assert(count >= 1);
    const char *env = getenv("EMBSIM_DEVICES");
    if (env)
        cr_assert_eq(count, atoi(env));
    cr_assert_eq(cudaSetDevice(count), cudaErrorInvalidDevice);
    CUDA_OK(cudaSetDevice(count - 1));
    int d = -1;
    CUDA_OK(cudaGetDevice(&d));
    cr_assert_eq(d, count - 1);
    cudaDeviceProp p;
    CUDA_OK(cudaGetDeviceProperties(&p, 0));
    cr_assert_eq(p.major, 9);
    cr_assert_eq(p.warpSize, 32);
    cr_assert_eq(p.sharedMemPerBlock, 48u * 1024u);
    cr_assert_eq(p.sharedMemPerBlockOptin, 227u * 1024u);
    cr_assert_eq(p.multiProcessorCount, 132);
    int v = 0;
    CUDA_OK(cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, 0));
    cr_assert_eq(v, 227 * 1024);
    CUDA_OK(cudaDeviceGetAttribute(&v, cudaDevAttrClockRate, 0));
    cr_assert_eq(v, 1980000, "kHz");
    CUDA_OK(cudaDeviceGetAttribute(&v, cudaDevAttrMemoryClockRate, 0));
    cr_assert_eq(v, 2619000, "kHz");
    CUDA_OK(cudaDeviceGetAttribute(&v, cudaDevAttrGlobalMemoryBusWidth, 0));
    cr_assert_eq(v, 5120);
    cr_assert_eq(cudaDeviceGetAttribute(&v, cudaDevAttrEccEnabled, 0), cudaErrorInvalidValue, "unknown ones fail");
    cr_assert_eq(cudaGetLastError(), cudaErrorInvalidValue);
    cr_assert_str_eq(cudaGetErrorString(cudaErrorInvalidValue), "invalid argument");
}

Test(runtime, bad_copies_are_reported_with_error_codes)
{
    embsim_set_record_errors(1);
    DevBuf<float> d(8);
    std::vector<float> h(16, 1.0f);
    cr_assert_eq(cudaMemcpy(d.d, h.data(), 16 * sizeof(float), cudaMemcpyHostToDevice), cudaErrorInvalidValue);
    cr_assert_eq(embsim_errors_matching("past the end"), 1);
    cr_assert_eq(cudaMemcpy(h.data(), h.data() + 8, 8 * sizeof(float), cudaMemcpyDeviceToHost), cudaErrorInvalidValue);
    cr_assert_eq(embsim_errors_matching("is not device memory"), 1);
    cr_assert_eq(cudaFree(h.data()), cudaErrorInvalidDevicePointer);
}

/* cudaMalloc past the device's memory fails (and is not sticky); what is
 * left is what cudaMemGetInfo reports. */
Test(runtime, device_memory_limit)
{
    const size_t base = embsim_device_memory_used(0), KiB = 1024;
    embsim_set_device_memory(base + 1024 * KiB);
    size_t free_b = 0, total = 0;
    CUDA_OK(cudaMemGetInfo(&free_b, &total));
    cr_assert_eq(total, base + 1024 * KiB);
    cr_assert_eq(free_b, 1024 * KiB);
    cudaDeviceProp p;
    CUDA_OK(cudaGetDeviceProperties(&p, 0));
    cr_assert_eq(p.totalGlobalMem, base + 1024 * KiB);
    void *a = nullptr, *b = reinterpret_cast<void *>(1);
    CUDA_OK(cudaMalloc(&a, 768 * KiB - 5));
    cr_assert_eq(embsim_device_memory_used(0), base + 768 * KiB, "rounded to 256 bytes");
    cr_assert_eq(cudaMalloc(&b, 512 * KiB), cudaErrorMemoryAllocation);
    cr_assert_null(b);
    cr_assert_eq(cudaGetLastError(), cudaErrorMemoryAllocation);
    cr_assert_eq(cudaGetLastError(), cudaSuccess, "an out-of-memory error is not sticky");
    CUDA_OK(cudaMemGetInfo(&free_b, &total));
    cr_assert_eq(free_b, 256 * KiB);
    void *pinned = nullptr;
    CUDA_OK(cudaMallocHost(&pinned, 4096 * KiB)); /* host memory: not counted */
    CUDA_OK(cudaMalloc(&b, 256 * KiB));
    CUDA_OK(cudaFree(a));
    CUDA_OK(cudaMalloc(&a, 512 * KiB));
    CUDA_OK(cudaFree(a));
    CUDA_OK(cudaFree(b));
    CUDA_OK(cudaFreeHost(pinned));
    cr_assert_eq(embsim_device_memory_used(0), base);
    embsim_set_device_memory(0);
    CUDA_OK(cudaMemGetInfo(&free_b, &total));
    cr_assert_eq(total, 80ull << 30);
}

/* embsim_inject_oom: `after` operations succeed, then `count` fail. */
Test(runtime, injected_out_of_memory)
{
    const int n = 64;
    DevBuf<float> in(std::vector<float>(n, 1.0f)), out(n);
    long before = embsim_oom_injected();
    embsim_inject_oom(1, 2);
    void *a = nullptr, *b = nullptr;
    CUDA_OK(cudaMalloc(&a, 64));
    cr_assert_eq(cudaMalloc(&b, 64), cudaErrorMemoryAllocation);
    cr_assert_eq(cudaGetLastError(), cudaErrorMemoryAllocation);
    EMB_LAUNCH(scale_kernel, 1, 64, 0, 0)(in.d, out.d, 2.0f, n);
    cr_assert_eq(cudaGetLastError(), cudaErrorMemoryAllocation, "a launch fails too");
    EMB_LAUNCH(scale_kernel, 1, 64, 0, 0)(in.d, out.d, 3.0f, n);
    CUDA_OK(cudaGetLastError());
    for (float v : out.get())
        cr_assert_eq(v, 3.0f, "the failed launch did not run");
    cr_assert_eq(embsim_oom_injected(), before + 2);
    embsim_inject_oom(0, -1);
    cr_assert_eq(cudaMalloc(&b, 64), cudaErrorMemoryAllocation);
    cr_assert_eq(cudaMalloc(&b, 64), cudaErrorMemoryAllocation);
    embsim_inject_oom(0, 0);
    CUDA_OK(cudaMalloc(&b, 64));
    cudaGetLastError();
    CUDA_OK(cudaFree(a));
    CUDA_OK(cudaFree(b));
}
