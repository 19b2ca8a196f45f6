/* runtime.cpp: the subset of the CUDA runtime API the project uses, over
 * virtual devices, with the real cuda_runtime_api.h signatures.
 *
 * Device memory is host memory with red zones (checked after every kernel,
 * poisoned for ASan) and a poison fill on allocation. Streams are queues
 * whose work runs only at synchronisation points (stream/device/event
 * synchronisation, blocking copies, the legacy default stream's implicit
 * ordering), so host code that forgets to synchronise reads stale data here,
 * deterministically, where a GPU would read it only sometimes. A kernel whose
 * pointer argument lies in a buffer that a copy queued on another, unordered
 * stream has yet to fill is reported by name.
 */
#include "internal.h"

#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <mutex>

#if defined(EMBSIM_ASAN)
#include <sanitizer/asan_interface.h>
#endif

namespace embsim {

/* ---- configuration and reports ------------------------------------------------------ */

static Config load_config()
{
    Config c;
    if (const char *o = getenv("EMBSIM_ORDER")) {
        if (!strcmp(o, "reverse"))
            c.order = EMBSIM_REVERSE;
        else if (!strncmp(o, "shuffle", 7)) {
            c.order = EMBSIM_SHUFFLE;
            if (o[7] == ':')
                c.seed = strtoull(o + 8, nullptr, 0);
        }
    }
    if (const char *d = getenv("EMBSIM_DEVICES"))
        c.devices = std::max(1, atoi(d));
    if (const char *p = getenv("EMBSIM_POISON"))
        c.poison = static_cast<uint8_t>(strtoul(p, nullptr, 0));
    if (const char *f = getenv("EMBSIM_FIBER"))
        c.ucontext_fibers = !strcmp(f, "ucontext");
    if (const char *m = getenv("EMBSIM_DEVICE_MEMORY")) {
        /* bytes, or with a binary suffix: 512M, 2G */
        char *end = nullptr;
        unsigned long long v = strtoull(m, &end, 0);
        switch (end && *end ? *end : 0) {
        case 'k': case 'K': v <<= 10; break;
        case 'm': case 'M': v <<= 20; break;
        case 'g': case 'G': v <<= 30; break;
        default: break;
        }
        c.device_memory = v ? static_cast<size_t>(v) : kDefaultDeviceMemory;
    }
    if (const char *f = getenv("EMBSIM_FAIL_DEVICE")) {
        /* D:N: a device that dies: its N-th kernel launch and every later one
         * fail with cudaErrorLaunchFailure (multi-device failure paths). */
        char *end = nullptr;
        c.fail_device = static_cast<int>(strtol(f, &end, 0));
        c.fail_launch = end && *end == ':' ? strtol(end + 1, nullptr, 0) : 1;
    }
    if (const char *o = getenv("EMBSIM_OOM_AFTER")) {
        /* N[:COUNT]: after N operations, COUNT (default 1; -1 all) fail */
        char *end = nullptr;
        c.oom_after = strtol(o, &end, 0);
        c.oom_count = end && *end == ':' ? strtol(end + 1, nullptr, 0) : 1;
    }
    return c;
}

Config &config()
{
    static Config c = load_config();
    return c;
}

static std::mutex g_report_mu;
static std::vector<std::string> g_reports;

std::string format(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char buf[2048];
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return buf;
}

std::string site_str(const Site &s)
{
    const char *f = s.file ? s.file : "?";
    const char *slash = strrchr(f, '/');
    if (s.col)
        return format("%s:%u:%u", slash ? slash + 1 : f, s.line, s.col);
    return format("%s:%u", slash ? slash + 1 : f, s.line);
}

void vreport(const char *fmt, va_list ap)
{
    char buf[4096];
    vsnprintf(buf, sizeof buf, fmt, ap);
    std::lock_guard<std::mutex> g(g_report_mu);
    fprintf(stderr, "embsim: error: %s\n", buf);
    if (!config().record_errors)
        abort();
    g_reports.emplace_back(buf);
}

void report(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(fmt, ap);
    va_end(ap);
}

/* ---- memory registry --------------------------------------------------------------- */

constexpr size_t kGlobalRedZone = 256; /* also cudaMalloc's alignment */
constexpr uint8_t kGlobalCanary = 0xd5;

enum class MemKind { Device, PinnedHost, Registered };

struct Alloc {
    char *base;   /* what malloc returned */
    size_t size;  /* what the caller asked for */
    size_t total; /* with red zones */
    MemKind kind;
    int device;
};

/* A copy or memset queued on a stream and not yet run. */
struct PendingWrite {
    const char *dst;
    size_t bytes;
    cudaStream_t stream;
    uint64_t seq;
    const char *what;
};

static std::recursive_mutex g_mu; /* guards everything below */
static std::map<uintptr_t, Alloc> g_allocs; /* keyed by user pointer */
static std::vector<PendingWrite> g_pending;
static std::map<int, size_t> g_device_used; /* bytes of cudaMalloc memory held, by device */

/* ---- out-of-memory injection ------------------------------------------------------------ */

static std::mutex g_oom_mu;
static long g_oom_seen = 0;     /* operations counted since the injection was set */
static long g_oom_injected = 0; /* failures injected since start */

bool inject_oom_now()
{
    std::lock_guard<std::mutex> g(g_oom_mu);
    Config &c = config();
    if (c.oom_after < 0)
        return false;
    long n = g_oom_seen++;
    if (n < c.oom_after || (c.oom_count >= 0 && n >= c.oom_after + c.oom_count))
        return false;
    g_oom_injected++;
    return true;
}

static const Alloc *find_alloc(const void *p, size_t n = 1)
{
    uintptr_t u = reinterpret_cast<uintptr_t>(p);
    auto it = g_allocs.upper_bound(u);
    if (it == g_allocs.begin())
        return nullptr;
    --it;
    if (u >= it->first && u + n <= it->first + it->second.size)
        return &it->second;
    return nullptr;
}

static bool is_device_ptr(const void *p)
{
    const Alloc *a = find_alloc(p);
    return a && a->kind == MemKind::Device;
}

static bool is_pinned(const void *p)
{
    const Alloc *a = find_alloc(p);
    return a && a->kind != MemKind::Device;
}

static void check_global_red_zones(const char *kernel)
{
    std::lock_guard<std::recursive_mutex> g(g_mu);
    for (auto &kv : g_allocs) {
        const Alloc &a = kv.second;
        if (a.kind != MemKind::Device)
            continue;
        char *user = reinterpret_cast<char *>(kv.first);
#if defined(EMBSIM_ASAN)
        __asan_unpoison_memory_region(a.base, a.total);
#endif
        for (char *p = a.base; p < a.base + a.total; p++) {
            if (p == user) {
                p += a.size - 1;
                continue;
            }
            if (static_cast<uint8_t>(*p) != kGlobalCanary) {
                report("kernel '%s' wrote out of bounds of a %zu-byte cudaMalloc buffer at %p: %td bytes %s it", kernel,
                       a.size, static_cast<void *>(user), p < user ? user - p : p - (user + a.size),
                       p < user ? "before" : "past the end of");
                memset(a.base, kGlobalCanary, static_cast<size_t>(user - a.base));
                memset(user + a.size, kGlobalCanary, a.total - a.size - static_cast<size_t>(user - a.base));
                break;
            }
        }
#if defined(EMBSIM_ASAN)
        __asan_poison_memory_region(a.base, static_cast<size_t>(user - a.base));
        __asan_poison_memory_region(user + a.size, a.total - a.size - static_cast<size_t>(user - a.base));
#endif
    }
}

/* ---- devices, streams, events ---------------------------------------------------------- */

struct StreamOp {
    std::function<cudaError_t()> fn;
    const char *what;
};

} // namespace embsim

struct CUgraph_st {
    std::vector<embsim::StreamOp> ops;
    bool invalidated = false; /* a call its (global or thread-local) mode prohibits was made meanwhile */
};
struct CUgraphExec_st {
    std::vector<embsim::StreamOp> ops;
};

struct CUstream_st {
    int device = 0;
    unsigned flags = 0;
    bool legacy = false;
    std::deque<embsim::StreamOp> q;
    uint64_t enqueued = 0, executed = 0;
    std::recursive_mutex mu; /* held while running the stream's work */
    std::mutex qmu;          /* guards q and enqueued: queueing never waits for running work */
    CUgraph_st *capture = nullptr; /* non-null while capturing */
    cudaStream_t capture_origin = nullptr;
};

struct CUevent_st {
    cudaStream_t stream = nullptr;
    uint64_t seq = 0;
    bool recorded = false;
    bool done = false;
    double ms = 0;
    unsigned flags = 0;
    CUgraph_st *captured_in = nullptr;
};

namespace embsim {

struct Device {
    CUstream_st legacy;
    std::vector<cudaStream_t> streams; /* created ones */
    std::map<const void *, int> func_attr_dyn_smem;
};

static std::vector<std::unique_ptr<Device>> &devices()
{
    static std::vector<std::unique_ptr<Device>> d = [] {
        std::vector<std::unique_ptr<Device>> v;
        for (int i = 0; i < config().devices; i++) {
            v.push_back(std::make_unique<Device>());
            v.back()->legacy.device = i;
            v.back()->legacy.legacy = true;
        }
        return v;
    }();
    return d;
}

static thread_local int tls_device = 0;
static thread_local cudaError_t tls_last_error = cudaSuccess;
/* Captures this thread began in global or thread-local mode: while one is
 * open the thread may not allocate, free or synchronise the device (CUDA
 * refuses such calls and invalidates the capture). */
static thread_local std::vector<CUgraph_st *> tls_strict_captures;

/* embsim_api_calls: a public function counts its call when no other public
 * function of the simulator is below it on this thread (ApiCall), and one
 * that calls others holds ApiCall too (with no kind: it counts nothing). */
static std::atomic<uint64_t> g_api_calls[EMBSIM_API_COUNT];
static thread_local int tls_api_depth = 0;
struct ApiCall {
    explicit ApiCall(int kind = -1)
    {
        if (tls_api_depth++ == 0 && kind >= 0)
            g_api_calls[kind].fetch_add(1, std::memory_order_relaxed);
    }
    ~ApiCall() { tls_api_depth--; }
    ApiCall(const ApiCall &) = delete;
    ApiCall &operator=(const ApiCall &) = delete;
};

extern "C" uint64_t embsim_api_calls(embsim_api which)
{
    return which >= 0 && which < EMBSIM_API_COUNT ? g_api_calls[which].load() : 0;
}

extern "C" void embsim_reset_api_calls(void)
{
    for (auto &c : g_api_calls)
        c.store(0);
}

static cudaError_t set_error(cudaError_t e)
{
    if (e != cudaSuccess)
        tls_last_error = e;
    return e;
}

/* cudaErrorStreamCaptureUnsupported when this thread has a strict capture
 * open (which the call, one that mode prohibits, invalidates). */
static cudaError_t capture_forbids()
{
    if (tls_strict_captures.empty())
        return cudaSuccess;
    for (CUgraph_st *g : tls_strict_captures)
        g->invalidated = true;
    return cudaErrorStreamCaptureUnsupported;
}

static cudaStream_t resolve(cudaStream_t s)
{
    if (s == nullptr || s == cudaStreamLegacy || s == cudaStreamPerThread)
        return &devices()[static_cast<size_t>(tls_device)]->legacy;
    return s;
}

static double now_ms()
{
    using namespace std::chrono;
    return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

/* Runs `s` until `seq` ops have executed. */
static cudaError_t run_until(cudaStream_t s, uint64_t seq)
{
    cudaError_t result = cudaSuccess;
    std::lock_guard<std::recursive_mutex> g(s->mu);
    int saved = tls_device;
    tls_device = s->device;
    for (;;) {
        StreamOp op;
        {
            std::lock_guard<std::mutex> qg(s->qmu);
            if (s->executed >= seq || s->q.empty())
                break;
            op = std::move(s->q.front());
            s->q.pop_front();
        }
        cudaError_t e = op.fn();
        s->executed++;
        if (e != cudaSuccess && result == cudaSuccess)
            result = e;
    }
    tls_device = saved;
    return result;
}

static cudaError_t drain(cudaStream_t s)
{
    uint64_t target;
    {
        std::lock_guard<std::mutex> qg(s->qmu);
        target = s->enqueued;
    }
    return run_until(s, target);
}

/* The legacy default stream waits for all blocking streams of its device and
 * they wait for it: running that work now is one valid execution. */
static cudaError_t implicit_legacy_sync(cudaStream_t s)
{
    Device &d = *devices()[static_cast<size_t>(s->device)];
    cudaError_t r = cudaSuccess;
    if (s->legacy) {
        for (cudaStream_t o : d.streams)
            if (!(o->flags & cudaStreamNonBlocking) && !o->capture) {
                cudaError_t e = drain(o);
                if (r == cudaSuccess)
                    r = e;
            }
    } else if (!(s->flags & cudaStreamNonBlocking)) {
        r = drain(&d.legacy);
    }
    return r;
}

static uint64_t enqueue(cudaStream_t s, const char *what, std::function<cudaError_t()> fn)
{
    if (s->capture) {
        s->capture->ops.push_back(StreamOp{std::move(fn), what});
        return 0;
    }
    implicit_legacy_sync(s);
    std::lock_guard<std::mutex> g(s->qmu);
    s->q.push_back(StreamOp{std::move(fn), what});
    return ++s->enqueued;
}

void enqueue_op(cudaStream_t stream, const char *what, std::function<cudaError_t()> fn)
{
    enqueue(resolve(stream), what, std::move(fn));
}

int stream_device(cudaStream_t stream) { return resolve(stream)->device; }

cudaError_t drain_stream(cudaStream_t stream) { return drain(resolve(stream)); }

cudaStream_t resolve_stream(cudaStream_t stream) { return resolve(stream); }

bool try_drain_stream(cudaStream_t stream)
{
    cudaStream_t s = resolve(stream);
    std::unique_lock<std::recursive_mutex> lk(s->mu, std::try_to_lock);
    if (!lk.owns_lock())
        return false;
    drain(s);
    return true;
}

/* ---- kernels --------------------------------------------------------------------------- */

size_t dynamic_shared_limit(const void *func)
{
    std::lock_guard<std::recursive_mutex> g(g_mu);
    auto &m = devices()[static_cast<size_t>(tls_device)]->func_attr_dyn_smem;
    auto it = m.find(func);
    return it == m.end() ? kStaticSharedLimit : static_cast<size_t>(it->second);
}

/* Is a pending write on stream `ws` at `wseq` ordered after op `kseq` of
 * stream `ks` (a wait on an event recorded after it precedes the write)? */
static bool ordered_after(cudaStream_t ws, uint64_t wseq, cudaStream_t ks, uint64_t kseq);

struct WaitMarker {
    cudaStream_t on;
    uint64_t seq;
};
static std::map<std::pair<cudaStream_t, uint64_t>, WaitMarker> g_waits; /* (stream, op seq) -> waited position */

static bool ordered_after(cudaStream_t ws, uint64_t wseq, cudaStream_t ks, uint64_t kseq)
{
    for (auto it = g_waits.lower_bound({ws, 0}); it != g_waits.end() && it->first.first == ws; ++it)
        if (it->first.second < wseq && it->second.on == ks && it->second.seq >= kseq)
            return true;
    return false;
}

static void check_hazards(const KernelLaunch &k, cudaStream_t s, uint64_t seq)
{
    std::lock_guard<std::recursive_mutex> g(g_mu);
    for (size_t i = 0; i < k.info.pointers.size(); i++) {
        const char *p = static_cast<const char *>(k.info.pointers[i]);
        for (const PendingWrite &w : g_pending) {
            if (w.stream == s || p < w.dst || p >= w.dst + w.bytes)
                continue;
            if (ordered_after(w.stream, w.seq, s, seq))
                continue;
            report("kernel '%s' runs while its pointer argument #%zu (%p) lies in a buffer that a %s queued on another "
                   "stream has not written yet: synchronise that stream (or wait on an event) before the launch",
                   k.name, i + 1, static_cast<const void *>(p), w.what);
            return;
        }
    }
}

void enqueue_launch(const char *name, const void *func, dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                    std::function<void()> body, LaunchArgsInfo info)
{
    uint64_t threads = static_cast<uint64_t>(block.x) * block.y * block.z;
    if (block.x == 0 || block.y == 0 || block.z == 0 || grid.x == 0 || grid.y == 0 || grid.z == 0 ||
        block.x > 1024 || block.y > 1024 || block.z > 64 || threads > 1024 || grid.y > 65535 || grid.z > 65535 ||
        grid.x > 2147483647u) {
        set_error(cudaErrorInvalidConfiguration);
        return;
    }
    if (smem > dynamic_shared_limit(func)) {
        set_error(cudaErrorInvalidValue);
        return;
    }
    /* A real launch can run out of memory too: lazy module loading (the
     * default since CUDA 12.2) puts a kernel's code on the device at its
     * first launch, and a launch may have to grow the local-memory pool. */
    if (inject_oom_now()) {
        set_error(cudaErrorMemoryAllocation);
        return;
    }
    if (config().fail_device == tls_device) {
        static std::atomic<long> launches{0};
        if (++launches >= config().fail_launch) {
            set_error(cudaErrorLaunchFailure);
            return;
        }
    }
    cudaStream_t s = resolve(stream);
    auto k = std::make_shared<KernelLaunch>(KernelLaunch{name, func, grid, block, smem, std::move(body), std::move(info)});
    uint64_t seq = 0;
    /* The op needs its own sequence number for the ordering check. */
    auto seq_cell = std::make_shared<uint64_t>(0);
    seq = enqueue(s, "kernel launch", [k, s, seq_cell]() -> cudaError_t {
        check_hazards(*k, s, *seq_cell);
        bool ok = run_kernel(*k);
        check_global_red_zones(k->name);
        return ok ? cudaSuccess : cudaErrorLaunchFailure;
    });
    *seq_cell = seq;
}

} // namespace embsim

using namespace embsim;

/* ---- the C control API ------------------------------------------------------------------- */

extern "C" {

void embsim_set_order(embsim_order order, uint64_t seed)
{
    config().order = order;
    config().seed = seed;
}
embsim_order embsim_get_order(void) { return config().order; }
const char *embsim_order_name(void)
{
    switch (config().order) {
    case EMBSIM_REVERSE: return "reverse";
    case EMBSIM_SHUFFLE: return "shuffle";
    default: return "forward";
    }
}
void embsim_set_record_errors(int record) { config().record_errors = record != 0; }
int embsim_error_count(void)
{
    std::lock_guard<std::mutex> g(g_report_mu);
    return static_cast<int>(g_reports.size());
}
const char *embsim_first_error(void)
{
    std::lock_guard<std::mutex> g(g_report_mu);
    return g_reports.empty() ? "" : g_reports.front().c_str();
}
int embsim_errors_matching(const char *needle)
{
    std::lock_guard<std::mutex> g(g_report_mu);
    int n = 0;
    for (auto &r : g_reports)
        n += strstr(r.c_str(), needle) != nullptr;
    return n;
}
void embsim_clear_errors(void)
{
    std::lock_guard<std::mutex> g(g_report_mu);
    g_reports.clear();
}
void embsim_set_device_memory(size_t bytes) { config().device_memory = bytes ? bytes : kDefaultDeviceMemory; }
size_t embsim_get_device_memory(void) { return config().device_memory; }
size_t embsim_device_memory_used(int device)
{
    std::lock_guard<std::recursive_mutex> g(g_mu);
    auto it = g_device_used.find(device);
    return it == g_device_used.end() ? 0 : it->second;
}
void embsim_inject_oom(long after, long count)
{
    std::lock_guard<std::mutex> g(g_oom_mu);
    config().oom_after = count == 0 ? -1 : after;
    config().oom_count = count;
    g_oom_seen = 0;
}
long embsim_oom_injected(void)
{
    std::lock_guard<std::mutex> g(g_oom_mu);
    return g_oom_injected;
}
void embsim_set_poison(uint8_t byte) { config().poison = byte; }
uint8_t embsim_get_poison(void) { return config().poison; }

/* ---- errors ----------------------------------------------------------------------------- */

cudaError_t cudaGetLastError(void)
{
    cudaError_t e = tls_last_error;
    tls_last_error = cudaSuccess;
    return e;
}

cudaError_t cudaPeekAtLastError(void) { return tls_last_error; }

const char *cudaGetErrorName(cudaError_t e)
{
    switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorInvalidDevicePointer: return "cudaErrorInvalidDevicePointer";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
    case cudaErrorIllegalState: return "cudaErrorIllegalState";
    default: return "cudaErrorUnknown";
    }
}

const char *cudaGetErrorString(cudaError_t e)
{
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorNotReady: return "device not ready";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    case cudaErrorInvalidDevicePointer: return "invalid device pointer";
    case cudaErrorIllegalState: return "operation not permitted when stream is capturing";
    default: return "unknown error";
    }
}

/* ---- devices ------------------------------------------------------------------------------ */

cudaError_t cudaGetDeviceCount(int *count)
{
    *count = static_cast<int>(devices().size());
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int device)
{
    if (device < 0 || device >= static_cast<int>(devices().size()))
        return set_error(cudaErrorInvalidDevice);
    tls_device = device;
    return cudaSuccess;
}

cudaError_t cudaGetDevice(int *device)
{
    *device = tls_device;
    return cudaSuccess;
}

cudaError_t cudaSetDeviceFlags(unsigned int) { return cudaSuccess; }
cudaError_t cudaDeviceReset(void)
{
    ApiCall c(EMBSIM_API_DEVICE_SYNC);
    return cudaDeviceSynchronize();
}
cudaError_t cudaDriverGetVersion(int *v) { *v = CUDART_VERSION; return cudaSuccess; }
cudaError_t cudaRuntimeGetVersion(int *v) { *v = CUDART_VERSION; return cudaSuccess; }

cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *p, int device)
{
    if (device < 0 || device >= static_cast<int>(devices().size()))
        return set_error(cudaErrorInvalidDevice);
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "embsim virtual H100 #%d", device);
    p->totalGlobalMem = config().device_memory;
    p->sharedMemPerBlock = kStaticSharedLimit;
    p->sharedMemPerBlockOptin = kMaxSharedPerBlock;
    p->sharedMemPerMultiprocessor = 228 * 1024;
    p->reservedSharedMemPerBlock = 1024;
    p->regsPerBlock = 65536;
    p->regsPerMultiprocessor = 65536;
    p->warpSize = 32;
    p->maxThreadsPerBlock = 1024;
    p->maxThreadsDim[0] = 1024;
    p->maxThreadsDim[1] = 1024;
    p->maxThreadsDim[2] = 64;
    p->maxGridSize[0] = 2147483647;
    p->maxGridSize[1] = 65535;
    p->maxGridSize[2] = 65535;
    p->totalConstMem = 65536;
    p->major = 9;
    p->minor = 0;
    p->multiProcessorCount = 132;
    p->maxThreadsPerMultiProcessor = 2048;
    p->maxBlocksPerMultiProcessor = 32;
    p->l2CacheSize = 50 * 1024 * 1024;
    p->memoryBusWidth = 5120;
    p->concurrentKernels = 1;
    p->asyncEngineCount = 3;
    p->unifiedAddressing = 1;
    p->managedMemory = 1;
    p->canMapHostMemory = 1;
    p->streamPrioritiesSupported = 1;
    p->cooperativeLaunch = 1;
    p->pciBusID = device;
    return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int *value, enum cudaDeviceAttr attr, int device)
{
    cudaDeviceProp p;
    cudaError_t e = cudaGetDeviceProperties(&p, device);
    if (e != cudaSuccess)
        return e;
    switch (attr) {
    case cudaDevAttrMaxThreadsPerBlock: *value = p.maxThreadsPerBlock; break;
    case cudaDevAttrMaxSharedMemoryPerBlock: *value = static_cast<int>(p.sharedMemPerBlock); break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = static_cast<int>(p.sharedMemPerBlockOptin); break;
    case cudaDevAttrMultiProcessorCount: *value = p.multiProcessorCount; break;
    case cudaDevAttrComputeCapabilityMajor: *value = p.major; break;
    case cudaDevAttrComputeCapabilityMinor: *value = p.minor; break;
    case cudaDevAttrWarpSize: *value = 32; break;
    case cudaDevAttrL2CacheSize: *value = p.l2CacheSize; break;
    case cudaDevAttrMaxThreadsPerMultiProcessor: *value = p.maxThreadsPerMultiProcessor; break;
    case cudaDevAttrMaxBlocksPerMultiprocessor: *value = p.maxBlocksPerMultiProcessor; break;
    case cudaDevAttrMaxSharedMemoryPerMultiprocessor: *value = static_cast<int>(p.sharedMemPerMultiprocessor); break;
    case cudaDevAttrMaxRegistersPerBlock: *value = p.regsPerBlock; break;
    case cudaDevAttrMaxRegistersPerMultiprocessor: *value = p.regsPerMultiprocessor; break;
    case cudaDevAttrTotalConstantMemory: *value = static_cast<int>(p.totalConstMem); break;
    case cudaDevAttrMaxBlockDimX: *value = p.maxThreadsDim[0]; break;
    case cudaDevAttrMaxBlockDimY: *value = p.maxThreadsDim[1]; break;
    case cudaDevAttrMaxBlockDimZ: *value = p.maxThreadsDim[2]; break;
    case cudaDevAttrMaxGridDimX: *value = p.maxGridSize[0]; break;
    case cudaDevAttrMaxGridDimY: *value = p.maxGridSize[1]; break;
    case cudaDevAttrMaxGridDimZ: *value = p.maxGridSize[2]; break;
    /* cudaDeviceProp lost its clock fields in CUDA 13; the attributes remain.
     * An H100 SXM: 1980 MHz boost, HBM3 at 2619 MHz on a 5120-bit bus. */
    case cudaDevAttrClockRate: *value = 1980000; break;
    case cudaDevAttrMemoryClockRate: *value = 2619000; break;
    case cudaDevAttrGlobalMemoryBusWidth: *value = p.memoryBusWidth; break;
    case cudaDevAttrAsyncEngineCount: *value = p.asyncEngineCount; break;
    case cudaDevAttrConcurrentKernels: *value = p.concurrentKernels; break;
    case cudaDevAttrUnifiedAddressing: *value = p.unifiedAddressing; break;
    case cudaDevAttrPciBusId: *value = p.pciBusID; break;
    default: return set_error(cudaErrorInvalidValue);
    }
    return cudaSuccess;
}

cudaError_t cudaDeviceCanAccessPeer(int *can, int device, int peer)
{
    *can = device != peer;
    return cudaSuccess;
}
cudaError_t cudaDeviceEnablePeerAccess(int, unsigned int) { return cudaSuccess; }

cudaError_t cudaFuncSetAttribute(const void *func, enum cudaFuncAttribute attr, int value)
{
    if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
        if (value < 0 || static_cast<size_t>(value) > kMaxSharedPerBlock)
            return set_error(cudaErrorInvalidValue);
        std::lock_guard<std::recursive_mutex> g(g_mu);
        devices()[static_cast<size_t>(tls_device)]->func_attr_dyn_smem[func] = value;
    }
    return cudaSuccess;
}

/* ---- memory ---------------------------------------------------------------------------------- */

static cudaError_t alloc(void **ptr, size_t size, MemKind kind)
{
    if (!ptr)
        return set_error(cudaErrorInvalidValue);
    if (cudaError_t e = capture_forbids()) {
        *ptr = nullptr;
        return set_error(e);
    }
    size_t rounded = (size + kGlobalRedZone - 1) / kGlobalRedZone * kGlobalRedZone;
    size_t total = rounded + 2 * kGlobalRedZone;
    if (kind == MemKind::Device) {
        /* Device memory is bounded by the device's size (EMBSIM_DEVICE_MEMORY);
         * the reservation is made before the allocation, under the lock. */
        std::lock_guard<std::recursive_mutex> g(g_mu);
        size_t &used = g_device_used[tls_device];
        if (inject_oom_now() || rounded > config().device_memory - std::min(used, config().device_memory)) {
            *ptr = nullptr;
            return set_error(cudaErrorMemoryAllocation);
        }
        used += rounded;
    }
    char *base = static_cast<char *>(aligned_alloc(kGlobalRedZone, total));
    if (!base) {
        if (kind == MemKind::Device) {
            std::lock_guard<std::recursive_mutex> g(g_mu);
            g_device_used[tls_device] -= rounded;
        }
        return set_error(cudaErrorMemoryAllocation);
    }
    char *user = base + kGlobalRedZone;
    memset(base, kGlobalCanary, total);
    memset(user, config().poison, size);
#if defined(EMBSIM_ASAN)
    if (kind == MemKind::Device) {
        __asan_poison_memory_region(base, kGlobalRedZone);
        __asan_poison_memory_region(user + size, total - size - kGlobalRedZone);
    }
#endif
    std::lock_guard<std::recursive_mutex> g(g_mu);
    g_allocs[reinterpret_cast<uintptr_t>(user)] = Alloc{base, size, total, kind, tls_device};
    *ptr = user;
    return cudaSuccess;
}

static cudaError_t release(void *ptr, MemKind kind)
{
    if (!ptr)
        return cudaSuccess;
    if (cudaError_t e = capture_forbids())
        return set_error(e);
    Alloc a;
    {
        std::lock_guard<std::recursive_mutex> g(g_mu);
        auto it = g_allocs.find(reinterpret_cast<uintptr_t>(ptr));
        if (it == g_allocs.end() || (it->second.kind == MemKind::Device) != (kind == MemKind::Device))
            return set_error(kind == MemKind::Device ? cudaErrorInvalidDevicePointer : cudaErrorInvalidValue);
        a = it->second;
    }
    /* cudaFree synchronises the device: queued work may still use the buffer. */
    int saved = tls_device;
    tls_device = a.device;
    cudaDeviceSynchronize();
    tls_device = saved;
    std::lock_guard<std::recursive_mutex> g(g_mu);
    g_allocs.erase(reinterpret_cast<uintptr_t>(ptr));
    if (a.kind == MemKind::Device)
        g_device_used[a.device] -= a.total - 2 * kGlobalRedZone;
#if defined(EMBSIM_ASAN)
    __asan_unpoison_memory_region(a.base, a.total);
#endif
    free(a.base);
    return cudaSuccess;
}

cudaError_t cudaMalloc(void **ptr, size_t size)
{
    ApiCall c(EMBSIM_API_MALLOC);
    return alloc(ptr, size, MemKind::Device);
}
cudaError_t cudaFree(void *ptr)
{
    ApiCall c(EMBSIM_API_FREE);
    return release(ptr, MemKind::Device);
}
cudaError_t cudaMallocHost(void **ptr, size_t size)
{
    ApiCall c(EMBSIM_API_HOST_ALLOC);
    return alloc(ptr, size, MemKind::PinnedHost);
}
cudaError_t cudaHostAlloc(void **ptr, size_t size, unsigned int)
{
    ApiCall c(EMBSIM_API_HOST_ALLOC);
    return alloc(ptr, size, MemKind::PinnedHost);
}
cudaError_t cudaFreeHost(void *ptr)
{
    ApiCall c(EMBSIM_API_HOST_FREE);
    return release(ptr, MemKind::PinnedHost);
}

static std::map<uintptr_t, size_t> g_registered;

cudaError_t cudaHostRegister(void *ptr, size_t size, unsigned int)
{
    ApiCall c(EMBSIM_API_HOST_ALLOC);
    std::lock_guard<std::recursive_mutex> g(g_mu);
    g_allocs[reinterpret_cast<uintptr_t>(ptr)] = Alloc{static_cast<char *>(ptr), size, size, MemKind::Registered, tls_device};
    return cudaSuccess;
}

cudaError_t cudaHostUnregister(void *ptr)
{
    ApiCall c(EMBSIM_API_HOST_FREE);
    std::lock_guard<std::recursive_mutex> g(g_mu);
    return g_allocs.erase(reinterpret_cast<uintptr_t>(ptr)) ? cudaSuccess : set_error(cudaErrorInvalidValue);
}

cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total)
{
    if (!free_bytes || !total)
        return set_error(cudaErrorInvalidValue);
    std::lock_guard<std::recursive_mutex> g(g_mu);
    size_t used = g_device_used[tls_device], cap = config().device_memory;
    *free_bytes = cap - std::min(used, cap);
    *total = cap;
    return cudaSuccess;
}

cudaError_t cudaPointerGetAttributes(struct cudaPointerAttributes *attr, const void *ptr)
{
    std::lock_guard<std::recursive_mutex> g(g_mu);
    memset(attr, 0, sizeof *attr);
    const Alloc *a = find_alloc(ptr);
    if (!a) {
        attr->type = cudaMemoryTypeUnregistered;
        attr->device = -2;
        attr->hostPointer = const_cast<void *>(ptr);
        return cudaSuccess;
    }
    attr->device = a->device;
    attr->type = a->kind == MemKind::Device ? cudaMemoryTypeDevice : cudaMemoryTypeHost;
    if (a->kind == MemKind::Device)
        attr->devicePointer = const_cast<void *>(ptr);
    else
        attr->hostPointer = attr->devicePointer = const_cast<void *>(ptr);
    return cudaSuccess;
}

/* Checks that the copy's pointers are what `kind` says and within their
 * allocations; returns the effective direction. */
static cudaError_t check_copy(void *dst, const void *src, size_t n, cudaMemcpyKind kind, cudaMemcpyKind *eff)
{
    std::lock_guard<std::recursive_mutex> g(g_mu);
    const Alloc *da = find_alloc(dst), *sa = find_alloc(src);
    bool dd = da && da->kind == MemKind::Device, sd = sa && sa->kind == MemKind::Device;
    if (kind == cudaMemcpyDefault)
        kind = dd ? (sd ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice) : (sd ? cudaMemcpyDeviceToHost : cudaMemcpyHostToHost);
    bool want_dd = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    bool want_sd = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    if (n > 0 && ((want_dd && !dd) || (want_sd && !sd))) {
        report("cudaMemcpy of %zu bytes (%s): %s pointer %p is not device memory from cudaMalloc", n,
               kind == cudaMemcpyHostToDevice ? "HostToDevice" : kind == cudaMemcpyDeviceToHost ? "DeviceToHost" : "DeviceToDevice",
               want_dd && !dd ? "destination" : "source", want_dd && !dd ? dst : src);
        return set_error(cudaErrorInvalidValue);
    }
    if (n > 0 && ((dd && !find_alloc(dst, n)) || (sd && !find_alloc(src, n)))) {
        report("cudaMemcpy of %zu bytes runs past the end of its %s device buffer", n, dd && !find_alloc(dst, n) ? "destination" : "source");
        return set_error(cudaErrorInvalidValue);
    }
    *eff = kind;
    return cudaSuccess;
}

static const char *copy_name(cudaMemcpyKind k)
{
    switch (k) {
    case cudaMemcpyHostToDevice: return "cudaMemcpyAsync(HostToDevice)";
    case cudaMemcpyDeviceToHost: return "cudaMemcpyAsync(DeviceToHost)";
    case cudaMemcpyDeviceToDevice: return "cudaMemcpyAsync(DeviceToDevice)";
    default: return "cudaMemcpyAsync(HostToHost)";
    }
}

/* Queues a write of `n` bytes at dst; records it as pending when it targets
 * device memory, for the kernel hazard check. */
static cudaError_t enqueue_write(cudaStream_t s, void *dst, size_t n, const char *what, std::function<void()> fn)
{
    bool track = is_device_ptr(dst) && !s->capture;
    auto seq_cell = std::make_shared<uint64_t>(0);
    uint64_t seq = enqueue(s, what, [fn = std::move(fn), track, dst, seq_cell, s]() -> cudaError_t {
        fn();
        if (track) {
            std::lock_guard<std::recursive_mutex> g(g_mu);
            for (size_t i = 0; i < g_pending.size(); i++)
                if (g_pending[i].stream == s && g_pending[i].seq == *seq_cell && g_pending[i].dst == dst) {
                    g_pending.erase(g_pending.begin() + static_cast<std::ptrdiff_t>(i));
                    break;
                }
        }
        return cudaSuccess;
    });
    *seq_cell = seq;
    if (track) {
        std::lock_guard<std::recursive_mutex> g(g_mu);
        g_pending.push_back(PendingWrite{static_cast<const char *>(dst), n, s, seq, what});
    }
    return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t count, enum cudaMemcpyKind kind, cudaStream_t stream)
{
    cudaMemcpyKind eff;
    cudaError_t e = check_copy(dst, src, count, kind, &eff);
    if (e != cudaSuccess)
        return e;
    cudaStream_t s = resolve(stream);
    bool host_src = eff == cudaMemcpyHostToDevice || eff == cudaMemcpyHostToHost;
    bool host_dst = eff == cudaMemcpyDeviceToHost || eff == cudaMemcpyHostToHost;
    if (host_src && !is_pinned(src) && !s->capture) {
        /* From pageable memory CUDA stages the source before returning. */
        auto copy = std::make_shared<std::vector<char>>(static_cast<const char *>(src), static_cast<const char *>(src) + count);
        return enqueue_write(s, dst, count, copy_name(eff), [dst, copy] { memcpy(dst, copy->data(), copy->size()); });
    }
    enqueue_write(s, dst, count, copy_name(eff), [dst, src, count] { memmove(dst, src, count); });
    if (host_dst && !is_pinned(dst) && !s->capture)
        return set_error(drain(s)); /* to pageable memory the copy is synchronous */
    return cudaSuccess;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t count, enum cudaMemcpyKind kind)
{
    ApiCall c(EMBSIM_API_SYNC_COPY);
    cudaStream_t s = resolve(nullptr);
    if (s->capture)
        return set_error(cudaErrorStreamCaptureUnsupported);
    cudaError_t e = cudaMemcpyAsync(dst, src, count, kind, nullptr);
    if (e != cudaSuccess)
        return e;
    return set_error(drain(s));
}

cudaError_t cudaMemcpyPeerAsync(void *dst, int, const void *src, int, size_t count, cudaStream_t stream)
{
    return cudaMemcpyAsync(dst, src, count, cudaMemcpyDeviceToDevice, stream);
}

cudaError_t cudaMemsetAsync(void *dst, int value, size_t count, cudaStream_t stream)
{
    {
        std::lock_guard<std::recursive_mutex> g(g_mu);
        const Alloc *a = find_alloc(dst, count);
        if (count > 0 && (!a || a->kind != MemKind::Device)) {
            report("cudaMemset of %zu bytes at %p: not within one cudaMalloc buffer", count, dst);
            return set_error(cudaErrorInvalidValue);
        }
    }
    return enqueue_write(resolve(stream), dst, count, "cudaMemsetAsync", [dst, value, count] { memset(dst, value, count); });
}

cudaError_t cudaMemset(void *dst, int value, size_t count)
{
    ApiCall c(EMBSIM_API_SYNC_COPY);
    cudaError_t e = cudaMemsetAsync(dst, value, count, nullptr);
    if (e != cudaSuccess)
        return e;
    return set_error(drain(resolve(nullptr)));
}

/* ---- streams ----------------------------------------------------------------------------------- */

cudaError_t cudaStreamCreateWithPriority(cudaStream_t *s, unsigned int flags, int)
{
    auto *st = new CUstream_st();
    st->device = tls_device;
    st->flags = flags;
    std::lock_guard<std::recursive_mutex> g(g_mu);
    devices()[static_cast<size_t>(tls_device)]->streams.push_back(st);
    *s = st;
    return cudaSuccess;
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned int flags) { return cudaStreamCreateWithPriority(s, flags, 0); }
cudaError_t cudaStreamCreate(cudaStream_t *s) { return cudaStreamCreateWithPriority(s, cudaStreamDefault, 0); }

cudaError_t cudaStreamDestroy(cudaStream_t s)
{
    if (!s || s->legacy)
        return set_error(cudaErrorInvalidResourceHandle);
    drain(s); /* destroying a stream lets its work finish */
    std::lock_guard<std::recursive_mutex> g(g_mu);
    auto &v = devices()[static_cast<size_t>(s->device)]->streams;
    v.erase(std::remove(v.begin(), v.end(), s), v.end());
    for (auto it = g_waits.begin(); it != g_waits.end();)
        it = (it->first.first == s || it->second.on == s) ? g_waits.erase(it) : std::next(it);
    /* Kept, not freed: another rank's thread may still be about to look at
     * it while helping a collective along (see nccl.cpp). */
    static std::vector<std::unique_ptr<CUstream_st>> retired;
    retired.emplace_back(s);
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream)
{
    ApiCall c(EMBSIM_API_STREAM_SYNC);
    cudaStream_t s = resolve(stream);
    if (s->capture)
        return set_error(cudaErrorStreamCaptureUnsupported);
    cudaError_t e = implicit_legacy_sync(s);
    cudaError_t e2 = drain(s);
    return set_error(e != cudaSuccess ? e : e2);
}

/* Work is only done when someone waits for it; a query is such a wait, so
 * that polling loops terminate. */
cudaError_t cudaStreamQuery(cudaStream_t stream)
{
    ApiCall c;
    return cudaStreamSynchronize(stream);
}

cudaError_t cudaDeviceSynchronize(void)
{
    ApiCall c(EMBSIM_API_DEVICE_SYNC);
    if (cudaError_t e = capture_forbids())
        return set_error(e);
    Device &d = *devices()[static_cast<size_t>(tls_device)];
    cudaError_t r = drain(&d.legacy);
    std::vector<cudaStream_t> streams;
    {
        std::lock_guard<std::recursive_mutex> g(g_mu);
        streams = d.streams;
    }
    for (cudaStream_t s : streams) {
        cudaError_t e = drain(s);
        if (r == cudaSuccess)
            r = e;
    }
    return set_error(r);
}

/* ---- events --------------------------------------------------------------------------------------- */

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned int flags)
{
    *e = new CUevent_st();
    (*e)->flags = flags;
    return cudaSuccess;
}
cudaError_t cudaEventCreate(cudaEvent_t *e) { return cudaEventCreateWithFlags(e, 0); }
cudaError_t cudaEventDestroy(cudaEvent_t e)
{
    delete e;
    return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t stream)
{
    if (!e)
        return set_error(cudaErrorInvalidResourceHandle);
    cudaStream_t s = resolve(stream);
    e->recorded = true;
    e->done = false;
    e->stream = s;
    if (s->capture) {
        e->captured_in = s->capture;
        return cudaSuccess;
    }
    e->captured_in = nullptr;
    e->seq = enqueue(s, "cudaEventRecord", [e] {
        e->ms = now_ms();
        e->done = true;
        return cudaSuccess;
    });
    return cudaSuccess;
}

cudaError_t cudaEventRecordWithFlags(cudaEvent_t e, cudaStream_t stream, unsigned int) { return cudaEventRecord(e, stream); }

cudaError_t cudaEventSynchronize(cudaEvent_t e)
{
    ApiCall c(EMBSIM_API_EVENT_SYNC);
    if (!e)
        return set_error(cudaErrorInvalidResourceHandle);
    if (!e->recorded)
        return cudaSuccess;
    return set_error(run_until(e->stream, e->seq));
}

cudaError_t cudaEventQuery(cudaEvent_t e)
{
    ApiCall c;
    return cudaEventSynchronize(e);
}

cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end)
{
    if (!start || !end || !start->recorded || !end->recorded)
        return set_error(cudaErrorInvalidResourceHandle);
    if (!start->done || !end->done)
        return set_error(cudaErrorNotReady);
    if ((start->flags | end->flags) & cudaEventDisableTiming)
        return set_error(cudaErrorInvalidResourceHandle);
    *ms = static_cast<float>(end->ms - start->ms);
    return cudaSuccess;
}

cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t e, unsigned int)
{
    if (!e)
        return set_error(cudaErrorInvalidResourceHandle);
    cudaStream_t s = resolve(stream);
    if (!e->recorded)
        return cudaSuccess;
    if (e->captured_in) {
        /* Joining a capture: this stream's work goes into the same graph. */
        if (!s->capture) {
            s->capture = e->captured_in;
            s->capture_origin = e->stream->capture_origin ? e->stream->capture_origin : e->stream;
        }
        return cudaSuccess;
    }
    if (s->capture) {
        /* An event from outside the capture: run its work now. */
        return set_error(run_until(e->stream, e->seq));
    }
    cudaStream_t on = e->stream;
    uint64_t seq = e->seq;
    uint64_t my = enqueue(s, "cudaStreamWaitEvent", [on, seq] { return run_until(on, seq); });
    std::lock_guard<std::recursive_mutex> g(g_mu);
    g_waits[{s, my}] = WaitMarker{on, seq};
    return cudaSuccess;
}

cudaError_t cudaLaunchHostFunc(cudaStream_t stream, cudaHostFn_t fn, void *user)
{
    enqueue(resolve(stream), "cudaLaunchHostFunc", [fn, user] {
        fn(user);
        return cudaSuccess;
    });
    return cudaSuccess;
}

/* ---- graphs ------------------------------------------------------------------------------------------- */

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, enum cudaStreamCaptureMode mode)
{
    cudaStream_t s = resolve(stream);
    if (s->legacy)
        return set_error(cudaErrorStreamCaptureUnsupported);
    if (s->capture)
        return set_error(cudaErrorIllegalState);
    /* Work queued before the capture is not part of it; run it now. */
    drain(s);
    s->capture = new CUgraph_st();
    s->capture_origin = s;
    if (mode != cudaStreamCaptureModeRelaxed)
        tls_strict_captures.push_back(s->capture);
    return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t *graph)
{
    cudaStream_t s = resolve(stream);
    if (!s->capture || s->capture_origin != s)
        return set_error(cudaErrorIllegalState);
    CUgraph_st *g = s->capture;
    std::lock_guard<std::recursive_mutex> lk(g_mu);
    for (auto &d : devices())
        for (cudaStream_t o : d->streams)
            if (o->capture == g) {
                o->capture = nullptr;
                o->capture_origin = nullptr;
            }
    auto &open = tls_strict_captures;
    open.erase(std::remove(open.begin(), open.end(), g), open.end());
    if (g->invalidated) {
        delete g;
        *graph = nullptr;
        return set_error(cudaErrorStreamCaptureInvalidated);
    }
    *graph = g;
    return cudaSuccess;
}

cudaError_t cudaStreamIsCapturing(cudaStream_t stream, enum cudaStreamCaptureStatus *status)
{
    *status = resolve(stream)->capture ? cudaStreamCaptureStatusActive : cudaStreamCaptureStatusNone;
    return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph, unsigned long long)
{
    ApiCall c(EMBSIM_API_GRAPH_INSTANTIATE);
    *exec = new CUgraphExec_st{graph->ops};
    return cudaSuccess;
}

cudaError_t cudaGraphInstantiateWithFlags(cudaGraphExec_t *exec, cudaGraph_t graph, unsigned long long flags)
{
    ApiCall c(EMBSIM_API_GRAPH_INSTANTIATE);
    return cudaGraphInstantiate(exec, graph, flags);
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream)
{
    /* A launch can find the device short of memory, as a kernel launch can. */
    if (inject_oom_now())
        return set_error(cudaErrorMemoryAllocation);
    cudaStream_t s = resolve(stream);
    for (const StreamOp &op : exec->ops)
        enqueue(s, op.what, op.fn);
    return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec)
{
    delete exec;
    return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph)
{
    delete graph;
    return cudaSuccess;
}

} // extern "C"
