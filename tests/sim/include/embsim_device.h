/* embsim_device.h: CUDA's device-side language for the host C++ compiler.
 *
 * kernels/arch.h includes this file when EMBEDC_SIM is defined, so that the
 * same kernels/ *.cu files compile with g++/clang++ as C++17 and run on the
 * simulator in libembedc_sim_runtime: every CUDA thread is a fiber, the
 * threads of one block run on one OS thread, and every point where CUDA
 * threads meet (__syncthreads, warp collectives, mma/ldmatrix) is a
 * rendezvous that checks all participants arrived at the same call site.
 *
 * Call sites are captured with __builtin_FILE/LINE/COLUMN as default
 * arguments, so kernels call the intrinsics with their CUDA signatures.
 * The real cuda_fp16.h / cuda_bf16.h are used for __half and __nv_bfloat16;
 * the few functions they only define for the device are added below.
 */
#ifndef EMBSIM_DEVICE_H
#define EMBSIM_DEVICE_H

#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "embsim.h"

/* ---- CUDA keywords ------------------------------------------------------ */
/* The toolkit's host_defines.h already makes these empty for a host compiler;
 * spell it out so the simulator does not depend on that. */
#undef __global__
#undef __device__
#undef __host__
#undef __forceinline__
#undef __noinline__
#undef __launch_bounds__
#undef __restrict__
#undef __shared__
#undef __constant__
#undef __managed__
#undef __grid_constant__
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __restrict__ __restrict
#define __grid_constant__
#define __managed__
/* A bare __shared__ array would silently become a per-thread local here, so
 * refuse it: shared memory goes through EMB_SHARED / EMB_DYNAMIC_SHARED. */
#define __shared__ static_assert(false, "use EMB_SHARED / EMB_DYNAMIC_SHARED from kernels/arch.h");
/* __constant__ data is read-only and identical for all threads: a plain
 * global is the same thing on the host. */
#define __constant__

namespace embsim {

/* Where a rendezvous was reached from; compared by value. */
struct Site {
    const char *file;
    unsigned line;
    unsigned col;
#if defined(__has_builtin) && __has_builtin(__builtin_COLUMN)
    static constexpr Site here(const char *f = __builtin_FILE(), unsigned l = __builtin_LINE(),
                               unsigned c = __builtin_COLUMN())
    {
        return Site{f, l, c};
    }
#else /* gcc < 13: two rendezvous on one line are told apart by line only */
    static constexpr Site here(const char *f = __builtin_FILE(), unsigned l = __builtin_LINE())
    {
        return Site{f, l, 0};
    }
#endif
};

/* What the current fiber sees as CUDA's built-in variables. */
struct ThreadView {
    uint3 thread_idx;
    uint3 block_idx;
    dim3 block_dim;
    dim3 grid_dim;
};
extern thread_local ThreadView *tls_view;

/* The operations a warp rendezvous can perform. */
enum class Op : uint8_t {
    ShflIdx, ShflUp, ShflDown, ShflXor,
    Ballot, Any, All, SyncWarp, ActiveMask,
    ReduceAddU, ReduceMinU, ReduceMaxU, ReduceMinI, ReduceMaxI, ReduceAnd, ReduceOr, ReduceXor,
    MatchAny, MatchAll,
    MmaF16, MmaBF16, Ldmatrix, WgmmaWait,
};

/* One lane's operands and result at a warp rendezvous. */
struct LaneIO {
    uint64_t in = 0;     /* value contributed (shuffle source, predicate, ...) */
    uint64_t out = 0;    /* value received */
    int arg = 0;         /* srcLane / delta / laneMask; ldmatrix: count */
    int width = 32;      /* shuffle width; ldmatrix: 1 if .trans */
    const void *p[4] = {nullptr, nullptr, nullptr, nullptr}; /* mma/ldmatrix operands */
    void *q = nullptr;                                       /* mma/ldmatrix result */
};

/* Blocks the calling lane until every lane named in `mask` reached the same
 * operation at the same call site, then fills each lane's io->out. */
void warp_rendezvous(Op op, unsigned mask, LaneIO *io, Site site);

/* __syncthreads and its counting variants. kind: 0 plain, 1 count, 2 and, 3 or. */
int block_barrier(int kind, int pred, Site site);

void *shared_static(size_t bytes, size_t align, Site site);
void *shared_dynamic();

void cp_async(void *smem_dst, const void *gmem_src, size_t bytes, size_t src_bytes, Site site);

/* wgmma (sm_90a warpgroup MMA, m64nNk16, fp32 accumulate): each thread queues
 * its part at issue, the warp computes its 16 rows at the wgmma wait that
 * covers the group, reading shared memory then (so a tile overwritten before
 * the wait, or an accumulator read before it, gives a wrong result). */
struct WgmmaReq {
    bool a_regs;      /* A from registers (a), else from the descriptor da */
    bool bf16;
    bool b_mn_major;  /* imm-trans-b = 1 */
    int n;
    uint64_t da, db;
    const uint32_t *a;
    float *d;
};
void wgmma_issue(const WgmmaReq &r, Site site);
void wgmma_commit();
void wgmma_wait(int pending_groups_allowed, Site site);
/* The shared-memory address a descriptor carries (bytes from the start of
 * the block's shared memory); p must be 16-byte aligned shared memory. */
uint32_t smem_address(const void *p, Site site);
void cp_async_commit();
void cp_async_wait(int pending_groups_allowed);

[[noreturn]] void trap(Site site);
unsigned long long clock_tick();

/* ---- launch --------------------------------------------------------------- */
struct LaunchArgsInfo {
    std::vector<const void *> pointers; /* pointer-typed arguments, for checks */
};

/* Validates the configuration (setting cudaGetLastError like a real launch)
 * and queues the kernel on `stream`. `body` runs one CUDA thread. */
void enqueue_launch(const char *name, const void *func, dim3 grid, dim3 block, size_t smem,
                    cudaStream_t stream, std::function<void()> body, LaunchArgsInfo info);

template <typename T>
inline void note_pointer(LaunchArgsInfo &info, const T &v)
{
    if constexpr (std::is_pointer_v<T>)
        info.pointers.push_back(static_cast<const void *>(v));
}

template <typename... P>
struct Launcher {
    void (*kernel)(P...);
    const char *name;
    dim3 grid, block;
    size_t smem;
    cudaStream_t stream;

    template <typename... A>
    void operator()(A &&...a) const
    {
        static_assert(sizeof...(A) == sizeof...(P), "wrong number of kernel arguments");
        /* Arguments are copied at launch time, as CUDA does. */
        auto args = std::make_shared<std::tuple<std::decay_t<P>...>>(std::forward<A>(a)...);
        LaunchArgsInfo info;
        std::apply([&](const auto &...v) { (note_pointer(info, v), ...); }, *args);
        auto k = kernel;
        enqueue_launch(name, reinterpret_cast<const void *>(kernel), grid, block, smem, stream,
                       [k, args] { std::apply(k, *args); }, std::move(info));
    }
};

template <typename... P>
inline Launcher<P...> make_launcher(void (*kernel)(P...), const char *name, dim3 grid, dim3 block,
                                    size_t smem, cudaStream_t stream)
{
    return Launcher<P...>{kernel, name, grid, block, smem, stream};
}

/* ---- bit casts ----------------------------------------------------------- */
template <typename To, typename From>
inline To bits(const From &f)
{
    static_assert(sizeof(To) == sizeof(From), "size mismatch");
    To t;
    std::memcpy(static_cast<void *>(&t), static_cast<const void *>(&f), sizeof t);
    return t;
}

template <typename T>
inline uint64_t to_u64(const T &v)
{
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>, "shuffle of a type over 8 bytes");
    uint64_t u = 0;
    std::memcpy(&u, static_cast<const void *>(&v), sizeof v);
    return u;
}

template <typename T>
inline T from_u64(uint64_t u)
{
    T v;
    std::memcpy(static_cast<void *>(&v), &u, sizeof v);
    return v;
}

} // namespace embsim

/* cuda_runtime.h only declares the kernel-pointer overloads for nvcc. */
template <typename... P>
inline cudaError_t cudaFuncSetAttribute(void (*kernel)(P...), cudaFuncAttribute attr, int value)
{
    return ::cudaFuncSetAttribute(reinterpret_cast<const void *>(kernel), attr, value);
}

#define threadIdx (static_cast<const uint3 &>(::embsim::tls_view->thread_idx))
#define blockIdx (static_cast<const uint3 &>(::embsim::tls_view->block_idx))
#define blockDim (static_cast<const dim3 &>(::embsim::tls_view->block_dim))
#define gridDim (static_cast<const dim3 &>(::embsim::tls_view->grid_dim))
static constexpr int warpSize = 32;

/* ---- project macros (see kernels/arch.h) --------------------------------- */
#define EMB_LAUNCH(kernel, grid, block, smem_bytes, stream) \
    ::embsim::make_launcher(kernel, #kernel, dim3(grid), dim3(block), (smem_bytes), (stream))

/* A reference to an array, so sizeof and multi-dimensional `count` behave as
 * with nvcc's `__shared__ type name[count]`. */
#define EMB_SHARED(type, name, count)                                                 \
    type(&name)[count] = *reinterpret_cast<type(*)[count]>(::embsim::shared_static( \
        sizeof(type[count]), alignof(type), ::embsim::Site::here()))

#define EMB_DYNAMIC_SHARED(type, name) \
    type *const name = reinterpret_cast<type *>(::embsim::shared_dynamic())

/* ---- barriers ------------------------------------------------------------ */
inline void __syncthreads(::embsim::Site s = ::embsim::Site::here()) { ::embsim::block_barrier(0, 0, s); }
inline int __syncthreads_count(int p, ::embsim::Site s = ::embsim::Site::here()) { return ::embsim::block_barrier(1, p, s); }
inline int __syncthreads_and(int p, ::embsim::Site s = ::embsim::Site::here()) { return ::embsim::block_barrier(2, p, s); }
inline int __syncthreads_or(int p, ::embsim::Site s = ::embsim::Site::here()) { return ::embsim::block_barrier(3, p, s); }
/* Fences order one thread's memory operations; with one OS thread running a
 * block there is nothing to reorder. */
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __nanosleep(unsigned) {}
[[noreturn]] inline void __trap(::embsim::Site s = ::embsim::Site::here()) { ::embsim::trap(s); }
inline long long clock64() { return static_cast<long long>(::embsim::clock_tick()); }

/* ---- warp collectives ---------------------------------------------------- */
namespace embsim {
inline uint64_t collective(Op op, unsigned mask, uint64_t in, int arg, int width, Site s)
{
    LaneIO io;
    io.in = in;
    io.arg = arg;
    io.width = width;
    warp_rendezvous(op, mask, &io, s);
    return io.out;
}
} // namespace embsim

template <typename T>
inline T __shfl_sync(unsigned mask, T var, int srcLane, int width = warpSize,
                     ::embsim::Site s = ::embsim::Site::here())
{
    return ::embsim::from_u64<T>(::embsim::collective(::embsim::Op::ShflIdx, mask, ::embsim::to_u64(var), srcLane, width, s));
}
template <typename T>
inline T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize,
                        ::embsim::Site s = ::embsim::Site::here())
{
    return ::embsim::from_u64<T>(::embsim::collective(::embsim::Op::ShflUp, mask, ::embsim::to_u64(var), static_cast<int>(delta), width, s));
}
template <typename T>
inline T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize,
                          ::embsim::Site s = ::embsim::Site::here())
{
    return ::embsim::from_u64<T>(::embsim::collective(::embsim::Op::ShflDown, mask, ::embsim::to_u64(var), static_cast<int>(delta), width, s));
}
template <typename T>
inline T __shfl_xor_sync(unsigned mask, T var, int laneMask, int width = warpSize,
                         ::embsim::Site s = ::embsim::Site::here())
{
    return ::embsim::from_u64<T>(::embsim::collective(::embsim::Op::ShflXor, mask, ::embsim::to_u64(var), laneMask, width, s));
}
inline unsigned __ballot_sync(unsigned mask, int pred, ::embsim::Site s = ::embsim::Site::here())
{
    return static_cast<unsigned>(::embsim::collective(::embsim::Op::Ballot, mask, pred != 0, 0, 32, s));
}
inline int __any_sync(unsigned mask, int pred, ::embsim::Site s = ::embsim::Site::here())
{
    return static_cast<int>(::embsim::collective(::embsim::Op::Any, mask, pred != 0, 0, 32, s));
}
inline int __all_sync(unsigned mask, int pred, ::embsim::Site s = ::embsim::Site::here())
{
    return static_cast<int>(::embsim::collective(::embsim::Op::All, mask, pred != 0, 0, 32, s));
}
inline void __syncwarp(unsigned mask = 0xffffffffu, ::embsim::Site s = ::embsim::Site::here())
{
    ::embsim::collective(::embsim::Op::SyncWarp, mask, 0, 0, 32, s);
}
/* The lanes of the warp that reached this call site together (after every
 * runnable thread ran): the converged set a GPU would report. */
inline unsigned __activemask(::embsim::Site s = ::embsim::Site::here())
{
    return static_cast<unsigned>(::embsim::collective(::embsim::Op::ActiveMask, 0, 0, 0, 32, s));
}
inline unsigned __reduce_add_sync(unsigned mask, unsigned v, ::embsim::Site s = ::embsim::Site::here())
{
    return static_cast<unsigned>(::embsim::collective(::embsim::Op::ReduceAddU, mask, v, 0, 32, s));
}
inline unsigned __reduce_min_sync(unsigned mask, unsigned v, ::embsim::Site s = ::embsim::Site::here())
{
    return static_cast<unsigned>(::embsim::collective(::embsim::Op::ReduceMinU, mask, v, 0, 32, s));
}
inline unsigned __reduce_max_sync(unsigned mask, unsigned v, ::embsim::Site s = ::embsim::Site::here())
{
    return static_cast<unsigned>(::embsim::collective(::embsim::Op::ReduceMaxU, mask, v, 0, 32, s));
}
inline int __reduce_add_sync(unsigned mask, int v, ::embsim::Site s = ::embsim::Site::here())
{
    return static_cast<int>(::embsim::collective(::embsim::Op::ReduceAddU, mask, static_cast<unsigned>(v), 0, 32, s));
}
inline int __reduce_min_sync(unsigned mask, int v, ::embsim::Site s = ::embsim::Site::here())
{
    return static_cast<int>(::embsim::collective(::embsim::Op::ReduceMinI, mask, static_cast<unsigned>(v), 0, 32, s));
}
inline int __reduce_max_sync(unsigned mask, int v, ::embsim::Site s = ::embsim::Site::here())
{
    return static_cast<int>(::embsim::collective(::embsim::Op::ReduceMaxI, mask, static_cast<unsigned>(v), 0, 32, s));
}
inline unsigned __reduce_and_sync(unsigned mask, unsigned v, ::embsim::Site s = ::embsim::Site::here())
{
    return static_cast<unsigned>(::embsim::collective(::embsim::Op::ReduceAnd, mask, v, 0, 32, s));
}
inline unsigned __reduce_or_sync(unsigned mask, unsigned v, ::embsim::Site s = ::embsim::Site::here())
{
    return static_cast<unsigned>(::embsim::collective(::embsim::Op::ReduceOr, mask, v, 0, 32, s));
}
inline unsigned __reduce_xor_sync(unsigned mask, unsigned v, ::embsim::Site s = ::embsim::Site::here())
{
    return static_cast<unsigned>(::embsim::collective(::embsim::Op::ReduceXor, mask, v, 0, 32, s));
}
template <typename T>
inline unsigned __match_any_sync(unsigned mask, T v, ::embsim::Site s = ::embsim::Site::here())
{
    return static_cast<unsigned>(::embsim::collective(::embsim::Op::MatchAny, mask, ::embsim::to_u64(v), 0, 32, s));
}
template <typename T>
inline unsigned __match_all_sync(unsigned mask, T v, int *pred, ::embsim::Site s = ::embsim::Site::here())
{
    unsigned r = static_cast<unsigned>(::embsim::collective(::embsim::Op::MatchAll, mask, ::embsim::to_u64(v), 0, 32, s));
    *pred = r != 0;
    return r;
}

/* ---- math intrinsics ------------------------------------------------------ */
/* Fast-math intrinsics are computed exactly (or as the libm function): the
 * simulator checks logic, not the GPU's approximation error. glibc's math.h
 * declares __expf & co. as internal names without exporting them, so they are
 * defined here with that extern "C" declaration. */
extern "C" {
inline float __expf(float x) noexcept { return expf(x); }
inline float __logf(float x) noexcept { return logf(x); }
inline float __sinf(float x) noexcept { return sinf(x); }
inline float __cosf(float x) noexcept { return cosf(x); }
inline float __tanf(float x) noexcept { return tanf(x); }
inline float __tanhf(float x) noexcept { return tanhf(x); }
inline float __powf(float x, float y) noexcept { return powf(x, y); }
inline float __exp10f(float x) noexcept { return exp10f(x); }
inline float __log2f(float x) noexcept { return log2f(x); }
inline float __log10f(float x) noexcept { return log10f(x); }
}
inline float __fdividef(float x, float y) { return x / y; }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float __frsqrt_rn(float x) { return static_cast<float>(1.0 / sqrt(static_cast<double>(x))); }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline float __fdiv_rn(float x, float y) { return x / y; }
inline float __fadd_rn(float x, float y) { return x + y; }
inline float __fsub_rn(float x, float y) { return x - y; }
inline float __fmul_rn(float x, float y) { return x * y; }
/* fmaf: one rounding, as the GPU's FFMA. The product of two floats is exact in
 * double, so double-then-float would round twice; libm's fmaf does not. */
inline float __fmaf_rn(float x, float y, float z) { return fmaf(x, y, z); }
inline double __fma_rn(double x, double y, double z) { return fma(x, y, z); }
inline float __saturatef(float x) { return x != x ? 0.0f : fminf(fmaxf(x, 0.0f), 1.0f); }
inline float normcdff(float x) { return 0.5f * erfcf(-x * 0.70710678118654752f); }
inline int __float2int_rn(float x) { return static_cast<int>(nearbyintf(x)); }
inline int __float2int_rz(float x) { return static_cast<int>(x); }
inline int __float2int_rd(float x) { return static_cast<int>(floorf(x)); }
inline int __float2int_ru(float x) { return static_cast<int>(ceilf(x)); }
inline unsigned __float2uint_rn(float x) { return static_cast<unsigned>(nearbyintf(x)); }
inline float __int2float_rn(int x) { return static_cast<float>(x); }
inline float __uint2float_rn(unsigned x) { return static_cast<float>(x); }
inline float __int_as_float(int x) { return ::embsim::bits<float>(x); }
inline int __float_as_int(float x) { return ::embsim::bits<int>(x); }
inline float __uint_as_float(unsigned x) { return ::embsim::bits<float>(x); }
inline unsigned __float_as_uint(float x) { return ::embsim::bits<unsigned>(x); }
inline double __longlong_as_double(long long x) { return ::embsim::bits<double>(x); }
inline long long __double_as_longlong(double x) { return ::embsim::bits<long long>(x); }

/* ---- integer intrinsics --------------------------------------------------- */
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(static_cast<unsigned>(x)); }
inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll(static_cast<unsigned long long>(x)); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned __brev(unsigned x)
{
    unsigned r = 0;
    for (int i = 0; i < 32; i++)
        r |= ((x >> i) & 1u) << (31 - i);
    return r;
}
inline unsigned __umulhi(unsigned x, unsigned y) { return static_cast<unsigned>((static_cast<uint64_t>(x) * y) >> 32); }
inline int __mulhi(int x, int y) { return static_cast<int>((static_cast<int64_t>(x) * y) >> 32); }
inline unsigned __byte_perm(unsigned x, unsigned y, unsigned s)
{
    uint64_t v = (static_cast<uint64_t>(y) << 32) | x;
    unsigned r = 0;
    for (int i = 0; i < 4; i++)
        r |= static_cast<unsigned>((v >> (8 * ((s >> (4 * i)) & 7))) & 0xff) << (8 * i);
    return r;
}

/* ---- cache-hinted loads and stores ----------------------------------------- */
template <typename T> inline T __ldg(const T *p) { return *p; }
template <typename T> inline T __ldcg(const T *p) { return *p; }
template <typename T> inline T __ldca(const T *p) { return *p; }
template <typename T> inline T __ldcs(const T *p) { return *p; }
template <typename T> inline T __ldlu(const T *p) { return *p; }
template <typename T> inline T __ldcv(const T *p) { return *p; }
template <typename T> inline void __stcs(T *p, T v) { *p = v; }
template <typename T> inline void __stcg(T *p, T v) { *p = v; }
template <typename T> inline void __stwb(T *p, T v) { *p = v; }
template <typename T> inline void __stwt(T *p, T v) { *p = v; }

/* ---- atomics -------------------------------------------------------------- */
/* The fibers of a block never preempt one another, but several OS threads may
 * run kernels at once (one per NCCL rank), so atomics are real atomics. */
namespace embsim {
template <typename T, typename F>
inline T atomic_update(T *addr, F f)
{
    static_assert(sizeof(T) == 2 || sizeof(T) == 4 || sizeof(T) == 8, "atomic size");
    using U = std::conditional_t<sizeof(T) == 2, uint16_t, std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>>;
    U *ua = reinterpret_cast<U *>(addr);
    U old = __atomic_load_n(ua, __ATOMIC_RELAXED);
    for (;;) {
        T nv = f(bits<T>(old));
        if (__atomic_compare_exchange_n(ua, &old, bits<U>(nv), false, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
            return bits<T>(old);
    }
}
} // namespace embsim

template <typename T>
inline std::enable_if_t<std::is_integral_v<T>, T> atomicAdd(T *a, T v) { return __atomic_fetch_add(a, v, __ATOMIC_RELAXED); }
inline float atomicAdd(float *a, float v) { return ::embsim::atomic_update(a, [v](float o) { return o + v; }); }
inline double atomicAdd(double *a, double v) { return ::embsim::atomic_update(a, [v](double o) { return o + v; }); }
inline __half atomicAdd(__half *a, __half v) { return ::embsim::atomic_update(a, [v](__half o) { return __float2half(__half2float(o) + __half2float(v)); }); }
inline __nv_bfloat16 atomicAdd(__nv_bfloat16 *a, __nv_bfloat16 v) { return ::embsim::atomic_update(a, [v](__nv_bfloat16 o) { return __float2bfloat16(__bfloat162float(o) + __bfloat162float(v)); }); }
inline __half2 atomicAdd(__half2 *a, __half2 v) { return ::embsim::atomic_update(a, [v](__half2 o) { return __hadd2(o, v); }); }
template <typename T>
inline std::enable_if_t<std::is_integral_v<T>, T> atomicSub(T *a, T v) { return __atomic_fetch_sub(a, v, __ATOMIC_RELAXED); }
template <typename T>
inline T atomicExch(T *a, T v) { return ::embsim::atomic_update(a, [v](T) { return v; }); }
template <typename T>
inline std::enable_if_t<std::is_integral_v<T>, T> atomicMin(T *a, T v) { return ::embsim::atomic_update(a, [v](T o) { return o < v ? o : v; }); }
template <typename T>
inline std::enable_if_t<std::is_integral_v<T>, T> atomicMax(T *a, T v) { return ::embsim::atomic_update(a, [v](T o) { return o > v ? o : v; }); }
inline float atomicMax(float *a, float v) { return ::embsim::atomic_update(a, [v](float o) { return fmaxf(o, v); }); }
inline float atomicMin(float *a, float v) { return ::embsim::atomic_update(a, [v](float o) { return fminf(o, v); }); }
inline unsigned atomicInc(unsigned *a, unsigned lim) { return ::embsim::atomic_update(a, [lim](unsigned o) { return o >= lim ? 0u : o + 1; }); }
inline unsigned atomicDec(unsigned *a, unsigned lim) { return ::embsim::atomic_update(a, [lim](unsigned o) { return (o == 0 || o > lim) ? lim : o - 1; }); }
template <typename T>
inline std::enable_if_t<std::is_integral_v<T>, T> atomicAnd(T *a, T v) { return __atomic_fetch_and(a, v, __ATOMIC_RELAXED); }
template <typename T>
inline std::enable_if_t<std::is_integral_v<T>, T> atomicOr(T *a, T v) { return __atomic_fetch_or(a, v, __ATOMIC_RELAXED); }
template <typename T>
inline std::enable_if_t<std::is_integral_v<T>, T> atomicXor(T *a, T v) { return __atomic_fetch_xor(a, v, __ATOMIC_RELAXED); }
template <typename T>
inline T atomicCAS(T *a, T cmp, T v)
{
    __atomic_compare_exchange_n(a, &cmp, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
    return cmp;
}
inline unsigned short atomicCAS(unsigned short *a, unsigned short cmp, unsigned short v)
{
    __atomic_compare_exchange_n(a, &cmp, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
    return cmp;
}

/* ---- fp16 / bf16 functions the toolkit defines only for the device ---------- */
/* fma: the product of two halves (or bfloat16s) is exact in double and, for
 * half, so is the sum; one rounding from double gives the GPU's result. */
inline __half __hfma(__half a, __half b, __half c)
{
    return __double2half(static_cast<double>(__half2float(a)) * __half2float(b) + __half2float(c));
}
inline __half2 __hfma2(__half2 a, __half2 b, __half2 c)
{
    return __halves2half2(__hfma(__low2half(a), __low2half(b), __low2half(c)),
                          __hfma(__high2half(a), __high2half(b), __high2half(c)));
}
inline __half __hfma_relu(__half a, __half b, __half c)
{
    __half r = __hfma(a, b, c);
    return __hlt(r, __float2half(0.0f)) ? __float2half(0.0f) : r;
}
inline __nv_bfloat16 __hfma(__nv_bfloat16 a, __nv_bfloat16 b, __nv_bfloat16 c)
{
    return __double2bfloat16(static_cast<double>(__bfloat162float(a)) * __bfloat162float(b) + __bfloat162float(c));
}
inline __nv_bfloat162 __hfma2(__nv_bfloat162 a, __nv_bfloat162 b, __nv_bfloat162 c)
{
    return __halves2bfloat162(__hfma(__low2bfloat16(a), __low2bfloat16(b), __low2bfloat16(c)),
                              __hfma(__high2bfloat16(a), __high2bfloat16(b), __high2bfloat16(c)));
}

/* One-argument math on half/bfloat16: computed in float, rounded once. */
#define EMBSIM_HALF_MATH(hname, h2name, expr)                                                   \
    inline __half hname(__half h)                                                               \
    {                                                                                           \
        float x = __half2float(h);                                                              \
        return __float2half(expr);                                                              \
    }                                                                                           \
    inline __nv_bfloat16 hname(__nv_bfloat16 h)                                                 \
    {                                                                                           \
        float x = __bfloat162float(h);                                                          \
        return __float2bfloat16(expr);                                                          \
    }                                                                                           \
    inline __half2 h2name(__half2 h) { return __halves2half2(hname(__low2half(h)), hname(__high2half(h))); } \
    inline __nv_bfloat162 h2name(__nv_bfloat162 h)                                              \
    {                                                                                           \
        return __halves2bfloat162(hname(__low2bfloat16(h)), hname(__high2bfloat16(h)));        \
    }
EMBSIM_HALF_MATH(hexp, h2exp, expf(x))
EMBSIM_HALF_MATH(hexp2, h2exp2, exp2f(x))
EMBSIM_HALF_MATH(hexp10, h2exp10, exp10f(x))
EMBSIM_HALF_MATH(hlog, h2log, logf(x))
EMBSIM_HALF_MATH(hlog2, h2log2, log2f(x))
EMBSIM_HALF_MATH(hlog10, h2log10, log10f(x))
EMBSIM_HALF_MATH(hsqrt, h2sqrt, sqrtf(x))
EMBSIM_HALF_MATH(hrsqrt, h2rsqrt, 1.0f / sqrtf(x))
EMBSIM_HALF_MATH(hrcp, h2rcp, 1.0f / x)
EMBSIM_HALF_MATH(hsin, h2sin, sinf(x))
EMBSIM_HALF_MATH(hcos, h2cos, cosf(x))
EMBSIM_HALF_MATH(htanh, h2tanh, tanhf(x))
EMBSIM_HALF_MATH(hceil, h2ceil, ceilf(x))
EMBSIM_HALF_MATH(hfloor, h2floor, floorf(x))
EMBSIM_HALF_MATH(htrunc, h2trunc, truncf(x))
EMBSIM_HALF_MATH(hrint, h2rint, nearbyintf(x))
#undef EMBSIM_HALF_MATH

/* ---- kernels/arch.h helpers ------------------------------------------------ */
/* ex2.approx.ftz.f32: exact 2^x (the approximation error is not modelled),
 * results below FLT_MIN flushed to +0 as the GPU does. */
inline float emb_ex2_ftz(float x)
{
    const float y = exp2f(x);
    return y < FLT_MIN ? 0.0f : y;
}


/* Each is a warp rendezvous: the simulator gathers every lane's registers and
 * computes the PTX instruction's result for the whole warp. */
inline void emb_mma_m16n8k16_f16f32(float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4],
                                    ::embsim::Site s = ::embsim::Site::here())
{
    ::embsim::LaneIO io;
    io.p[0] = a;
    io.p[1] = b;
    io.p[2] = c;
    float r[4];
    io.q = r;
    ::embsim::warp_rendezvous(::embsim::Op::MmaF16, 0xffffffffu, &io, s);
    for (int i = 0; i < 4; i++)
        d[i] = r[i];
}
inline void emb_mma_m16n8k16_bf16f32(float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4],
                                     ::embsim::Site s = ::embsim::Site::here())
{
    ::embsim::LaneIO io;
    io.p[0] = a;
    io.p[1] = b;
    io.p[2] = c;
    float r[4];
    io.q = r;
    ::embsim::warp_rendezvous(::embsim::Op::MmaBF16, 0xffffffffu, &io, s);
    for (int i = 0; i < 4; i++)
        d[i] = r[i];
}
namespace embsim {
inline void ldmatrix(uint32_t *r, int count, bool trans, const void *smem_ptr, Site s)
{
    LaneIO io;
    io.arg = count;
    io.width = trans ? 1 : 0;
    io.p[0] = smem_ptr;
    uint32_t out[4];
    io.q = out;
    warp_rendezvous(Op::Ldmatrix, 0xffffffffu, &io, s);
    for (int i = 0; i < count; i++)
        r[i] = out[i];
}
} // namespace embsim
inline void emb_ldmatrix_x4(uint32_t r[4], const void *p, ::embsim::Site s = ::embsim::Site::here()) { ::embsim::ldmatrix(r, 4, false, p, s); }
inline void emb_ldmatrix_x2(uint32_t r[2], const void *p, ::embsim::Site s = ::embsim::Site::here()) { ::embsim::ldmatrix(r, 2, false, p, s); }
inline void emb_ldmatrix_x4_trans(uint32_t r[4], const void *p, ::embsim::Site s = ::embsim::Site::here()) { ::embsim::ldmatrix(r, 4, true, p, s); }
inline void emb_ldmatrix_x2_trans(uint32_t r[2], const void *p, ::embsim::Site s = ::embsim::Site::here()) { ::embsim::ldmatrix(r, 2, true, p, s); }
/* The copy really happens at the wait, so reading the destination before it
 * (or from another thread without a __syncthreads after it) sees the poison. */
inline void emb_cp_async_16(void *smem_dst, const void *gmem_src, ::embsim::Site s = ::embsim::Site::here())
{
    ::embsim::cp_async(smem_dst, gmem_src, 16, 16, s);
}
/* Zero-fill form: nothing is read from gmem_src when !valid. */
inline void emb_cp_async_16_zfill(void *smem_dst, const void *gmem_src, bool valid,
                                  ::embsim::Site s = ::embsim::Site::here())
{
    ::embsim::cp_async(smem_dst, gmem_src, 16, valid ? 16 : 0, s);
}
inline void emb_cp_async_commit(void) { ::embsim::cp_async_commit(); }
/* PTX: cp.async.wait_all is commit_group followed by wait_group 0. */
inline void emb_cp_async_wait_all(void)
{
    ::embsim::cp_async_commit();
    ::embsim::cp_async_wait(0);
}
template <int N>
inline void emb_cp_async_wait_group(void) { ::embsim::cp_async_wait(N); }

/* wgmma: see kernels/arch.h for the contract. Fences order nothing here (a
 * fiber runs to its next rendezvous in program order). */
#define EMB_HAVE_WGMMA 1
inline uint64_t emb_wgmma_desc(const void *smem, uint32_t lbo, uint32_t sbo,
                               ::embsim::Site s = ::embsim::Site::here())
{
    const uint32_t a = ::embsim::smem_address(smem, s);
    return static_cast<uint64_t>((a & 0x3FFFFu) >> 4) | (static_cast<uint64_t>((lbo & 0x3FFFFu) >> 4) << 16) |
           (static_cast<uint64_t>((sbo & 0x3FFFFu) >> 4) << 32);
}
inline void emb_wgmma_fence(void) {}
inline void emb_fence_proxy_async(void) {}
template <int R>
inline void emb_wgmma_fence_acc(float *) {}
inline void emb_wgmma_commit(void) { ::embsim::wgmma_commit(); }
template <int N>
inline void emb_wgmma_wait(::embsim::Site s = ::embsim::Site::here()) { ::embsim::wgmma_wait(N, s); }
template <typename T, int N>
inline void emb_wgmma_ss(float *d, uint64_t da, uint64_t db, ::embsim::Site s = ::embsim::Site::here())
{
    static_assert(N % 8 == 0 && N >= 8 && N <= 256, "wgmma n: 8..256 in steps of 8");
    ::embsim::wgmma_issue({false, std::is_same<T, __nv_bfloat16>::value, false, N, da, db, nullptr, d}, s);
}
template <typename T, int N>
inline void emb_wgmma_rs_mn(float *d, const uint32_t a[4], uint64_t db, ::embsim::Site s = ::embsim::Site::here())
{
    static_assert(N % 8 == 0 && N >= 8 && N <= 256, "wgmma n: 8..256 in steps of 8");
    ::embsim::wgmma_issue({true, std::is_same<T, __nv_bfloat16>::value, true, N, 0, db, a, d}, s);
}

#endif /* EMBSIM_DEVICE_H */
