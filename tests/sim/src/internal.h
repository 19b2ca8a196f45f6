/* internal.h: what the simulator's parts (scheduler, runtime, cuBLAS, NCCL)
 * share. Not seen by kernels or by host code under test. */
#ifndef EMBSIM_INTERNAL_H
#define EMBSIM_INTERNAL_H

#include "embsim_device.h"

#include <cstdarg>
#include <string>

namespace embsim {

/* ---- configuration (env vars read once, then changed by embsim_set_*) ---- */
constexpr size_t kDefaultDeviceMemory = 80ull << 30; /* an H100's 80 GiB */
struct Config {
    embsim_order order = EMBSIM_FORWARD;
    uint64_t seed = 1;
    uint8_t poison = 0xff;
    int devices = 1;
    bool ucontext_fibers = false;
    bool record_errors = false;
    size_t device_memory = kDefaultDeviceMemory; /* per virtual device */
    long oom_after = -1;                         /* < 0: no injected out-of-memory */
    long oom_count = 0;                          /* < 0: every operation after oom_after */
    int fail_device = -1;                        /* EMBSIM_FAIL_DEVICE=D:N: device D's N-th */
    long fail_launch = 0;                        /* kernel launch (1-based) fails, and all after */
};
Config &config();

/* True when this operation (a cudaMalloc, a kernel launch, a cuBLAS GEMM)
 * must fail as out of memory (embsim_inject_oom / EMBSIM_OOM_AFTER). */
bool inject_oom_now();

/* ---- reports --------------------------------------------------------------- */
/* Prints the message; aborts unless errors are being recorded. */
void report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void vreport(const char *fmt, va_list ap);
std::string format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
std::string site_str(const Site &s);

/* ---- kernels ------------------------------------------------------------------ */
struct KernelLaunch {
    const char *name;
    const void *func;
    dim3 grid, block;
    size_t smem;
    std::function<void()> body;
    LaunchArgsInfo info;
};

/* Runs every block of the grid; false when a fatal report abandoned it. */
bool run_kernel(const KernelLaunch &k);

/* Shared-memory limits of the simulated device (H100). */
constexpr size_t kStaticSharedLimit = 48 * 1024;
constexpr size_t kMaxSharedPerBlock = 227 * 1024;

/* Dynamic shared memory limit set by cudaFuncSetAttribute (default 48 KB). */
size_t dynamic_shared_limit(const void *func);

/* Queues work on a stream (0 and the special handles mean the current
 * device's legacy stream), as a kernel launch would. */
void enqueue_op(cudaStream_t stream, const char *what, std::function<cudaError_t()> fn);
int stream_device(cudaStream_t stream);
/* Runs everything queued on the stream (0: current device's legacy stream). */
cudaError_t drain_stream(cudaStream_t stream);
/* Same, unless another thread is running it right now: then false. */
bool try_drain_stream(cudaStream_t stream);
/* The stream a handle means on the current device (0 -> its legacy stream). */
cudaStream_t resolve_stream(cudaStream_t stream);

/* 64-bit poison pattern for values that are undefined (a shuffle reading a
 * lane outside the mask): NaN as float, half, bfloat16 and double. */
constexpr uint64_t kUndefined = 0xffbadbadffbadbadull;

/* Set on the thread running a stream op when its kernel failed. */
extern thread_local bool tls_launch_failed;

} // namespace embsim

#endif
