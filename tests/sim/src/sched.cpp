/* sched.cpp: runs a kernel's blocks, one at a time, each CUDA thread a fiber.
 *
 * A block's threads run in the configured order until each one blocks at a
 * rendezvous (a __syncthreads or a warp collective) or exits. When none can
 * run, completed warp collectives are resolved first, then the block barrier;
 * if neither can make progress the threads disagree on where they meet, and
 * that is reported with the call sites involved. Because a thread only ever
 * stops at a rendezvous, a race-free kernel computes the same bits whatever
 * the order, and a racy one usually does not: running every test in the
 * forward, reverse and shuffled orders turns races into different outputs.
 *
 * Fibers switch with a small x86-64 routine (callee-saved registers, MXCSR,
 * x87 control word and the stack pointer); glibc's swapcontext, which makes
 * a sigprocmask syscall per switch, is the fallback. Under ASan and TSan the
 * switches are announced to the sanitizer; under TSan they carry no
 * happens-before, which only barriers and collectives provide, so a missing
 * __syncthreads is reported as a data race.
 */
#include "internal.h"

#include <algorithm>
#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#if defined(EMBSIM_ASAN)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#if defined(EMBSIM_TSAN)
#include <sanitizer/tsan_interface.h>
#endif

namespace embsim {

thread_local ThreadView *tls_view = nullptr;
thread_local bool tls_launch_failed = false;

static std::atomic<uint64_t> g_blocks_run{0};
static std::atomic<uint64_t> g_switches{0};

/* ---- fibers ------------------------------------------------------------------ */

#if defined(__x86_64__)
/* embsim_ctx_switch(save, to): push the callee-saved state on the current
 * stack, store the stack pointer in *save, load `to` and pop its state. */
asm(R"(
    .text
    .globl embsim_ctx_switch
    .hidden embsim_ctx_switch
    .type embsim_ctx_switch, @function
embsim_ctx_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size embsim_ctx_switch, .-embsim_ctx_switch
    .section .note.GNU-stack,"",@progbits
    .text
)");
extern "C" void embsim_ctx_switch(void **save_sp, void *to_sp);
constexpr bool kHaveAsmSwitch = true;
#else
constexpr bool kHaveAsmSwitch = false;
extern "C" void embsim_ctx_switch(void **, void *) { abort(); }
#endif

#if defined(EMBSIM_ASAN) || defined(EMBSIM_TSAN)
constexpr size_t kStackSize = 512 * 1024;
#else
constexpr size_t kStackSize = 256 * 1024;
#endif

struct Fiber {
    void *sp = nullptr;
    char *stack = nullptr; /* usable region, above a guard page */
    ucontext_t uc;
#if defined(EMBSIM_ASAN)
    void *fake_stack = nullptr;
#endif
#if defined(EMBSIM_TSAN)
    void *tsan = nullptr;
#endif
};

enum class TState : uint8_t { Runnable, AtBarrier, AtWarp, Exited };

struct CpAsyncCopy {
    void *dst;
    const void *src;
    size_t bytes, src_bytes; /* the first src_bytes from src, the rest zeros (cp.async src-size) */
    bool landed;             /* copied at the issue already (see land_at_issue) */
};

struct WgmmaPending {
    WgmmaReq r;
    uint32_t a[4];   /* A registers, read at issue (ptxas keeps them live until the wait) */
    Site site;
};

struct SimThread {
    Fiber fiber;
    ThreadView view;
    int linear = 0, warp = 0, lane = 0;
    TState state = TState::Runnable;
    bool started = false;
    Site site{};
    /* block barrier */
    int bar_kind = 0, bar_pred = 0, bar_result = 0;
    unsigned bars_passed = 0;
    /* warp rendezvous */
    Op op{};
    unsigned mask = 0;
    LaneIO *io = nullptr;
    /* cp.async: copies issued, and the end index of each committed group */
    std::vector<CpAsyncCopy> cp_pending;
    std::vector<size_t> cp_groups;
    /* wgmma: operations issued, and the end index of each committed group */
    std::vector<WgmmaPending> wg_pending;
    std::vector<size_t> wg_groups;
};

struct SharedAlloc {
    Site site;
    char *ptr;
    size_t bytes;
};

struct Block {
    const KernelLaunch *k = nullptr;
    uint3 bid{};
    int nthreads = 0;
    bool aborted = false;
    bool skip_reported = false;
    char *dyn = nullptr;
    size_t dyn_bytes = 0;
    std::vector<SharedAlloc> statics;
    size_t static_bytes = 0;
    char *cursor = nullptr; /* next free byte of the arena */
    /* TSan synchronisation objects: barrier generations (by parity), warps,
     * block end. Only their addresses matter. */
    char sync_bar[2];
    char sync_warp[32];
    char sync_end;
};

constexpr size_t kRedZone = 64;
constexpr uint8_t kCanary = 0xe7;
constexpr size_t kArenaSize = 2 * kRedZone + kMaxSharedPerBlock + 64 * 1024;

/* Everything the scheduler keeps per OS thread. */
struct Sched {
    std::vector<std::unique_ptr<SimThread>> pool;
    void *sched_sp = nullptr;
    ucontext_t sched_uc;
    SimThread *current = nullptr;
    Block *block = nullptr;
    char *arena = nullptr;
    const void *sched_stack_bottom = nullptr;
    size_t sched_stack_size = 0;
    void *sched_fake = nullptr;
    void *sched_tsan = nullptr;
    ~Sched()
    {
        for (auto &t : pool)
            if (t->fiber.stack)
                munmap(t->fiber.stack - getpagesize(), kStackSize + getpagesize());
        free(arena);
    }
};
static thread_local Sched tls_sched;

static inline void tsan_release(void *addr)
{
#if defined(EMBSIM_TSAN)
    __tsan_release(addr);
#else
    (void)addr;
#endif
}
static inline void tsan_acquire(void *addr)
{
#if defined(EMBSIM_TSAN)
    __tsan_acquire(addr);
#else
    (void)addr;
#endif
}

[[noreturn]] static void fiber_main();

#if defined(__x86_64__)
extern "C" [[noreturn]] void embsim_fiber_entry() { fiber_main(); }
#endif
static void fiber_entry_uc() { fiber_main(); }

static void fiber_prepare(SimThread *t)
{
    Fiber &f = t->fiber;
    if (!f.stack) {
        size_t page = static_cast<size_t>(getpagesize());
        void *m = mmap(nullptr, kStackSize + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED) {
            perror("embsim: mmap fiber stack");
            abort();
        }
        mprotect(m, page, PROT_NONE); /* guard page: a stack overflow faults */
        f.stack = static_cast<char *>(m) + page;
#if defined(EMBSIM_TSAN)
        f.tsan = __tsan_create_fiber(0);
#endif
    }
#if defined(EMBSIM_ASAN)
    /* A fiber abandoned after a fatal report left poisoned frames behind. */
    __asan_unpoison_memory_region(f.stack, kStackSize);
#endif
    if (kHaveAsmSwitch && !config().ucontext_fibers) {
        uintptr_t top = (reinterpret_cast<uintptr_t>(f.stack) + kStackSize) & ~static_cast<uintptr_t>(15);
        uint64_t *sp = reinterpret_cast<uint64_t *>(top);
        *--sp = 0; /* return address of the entry function: keeps the ABI's alignment */
#if defined(__x86_64__)
        *--sp = reinterpret_cast<uint64_t>(&embsim_fiber_entry);
#endif
        for (int i = 0; i < 6; i++)
            *--sp = 0;                             /* rbp rbx r12..r15 */
        *--sp = 0x1f80ull | (0x037full << 32);     /* default MXCSR, x87 control word */
        f.sp = sp;
    } else {
        getcontext(&f.uc);
        f.uc.uc_stack.ss_sp = f.stack;
        f.uc.uc_stack.ss_size = kStackSize;
        f.uc.uc_link = nullptr;
        makecontext(&f.uc, fiber_entry_uc, 0);
    }
}

static void switch_to(SimThread *t)
{
    Sched &s = tls_sched;
    s.current = t;
    tls_view = &t->view;
    g_switches.fetch_add(1, std::memory_order_relaxed);
#if defined(EMBSIM_ASAN)
    __sanitizer_start_switch_fiber(&s.sched_fake, t->fiber.stack, kStackSize);
#endif
#if defined(EMBSIM_TSAN)
    /* The first entry inherits what the launching code did; later switches
     * order nothing. */
    __tsan_switch_to_fiber(t->fiber.tsan, t->started ? __tsan_switch_to_fiber_no_sync : 0);
#endif
    t->started = true;
    if (kHaveAsmSwitch && !config().ucontext_fibers)
        embsim_ctx_switch(&s.sched_sp, t->fiber.sp);
    else
        swapcontext(&s.sched_uc, &t->fiber.uc);
#if defined(EMBSIM_ASAN)
    __sanitizer_finish_switch_fiber(s.sched_fake, nullptr, nullptr);
#endif
    s.current = nullptr;
    tls_view = nullptr;
}

/* Back to the scheduler; returns when the scheduler resumes this thread. */
static void yield(bool exiting)
{
    Sched &s = tls_sched;
    SimThread *t = s.current;
#if defined(EMBSIM_ASAN)
    __sanitizer_start_switch_fiber(exiting ? nullptr : &t->fiber.fake_stack, s.sched_stack_bottom, s.sched_stack_size);
#else
    (void)exiting;
#endif
#if defined(EMBSIM_TSAN)
    if (!s.sched_tsan)
        abort();
    __tsan_switch_to_fiber(s.sched_tsan, __tsan_switch_to_fiber_no_sync);
#endif
    if (kHaveAsmSwitch && !config().ucontext_fibers)
        embsim_ctx_switch(&t->fiber.sp, s.sched_sp);
    else
        swapcontext(&t->fiber.uc, &s.sched_uc);
#if defined(EMBSIM_ASAN)
    __sanitizer_finish_switch_fiber(t->fiber.fake_stack, &s.sched_stack_bottom, &s.sched_stack_size);
#endif
}

static void fiber_main()
{
    Sched &s = tls_sched;
#if defined(EMBSIM_ASAN)
    __sanitizer_finish_switch_fiber(nullptr, &s.sched_stack_bottom, &s.sched_stack_size);
#endif
    s.block->k->body();
    SimThread *t = s.current;
    t->state = TState::Exited;
    tsan_release(&s.block->sync_end);
    yield(true);
    abort(); /* an exited fiber is never resumed */
}

static const char *short_file(const char *f)
{
    const char *slash = f ? strrchr(f, '/') : nullptr;
    return slash ? slash + 1 : f ? f : "?";
}

/* ---- reports naming the kernel, block and thread ----------------------------- */

static std::string where(const Block &b)
{
    return format("kernel '%s' block (%u,%u,%u)", b.k->name, b.bid.x, b.bid.y, b.bid.z);
}

static std::string tid_str(const SimThread *t)
{
    return format("thread (%u,%u,%u)", t->view.thread_idx.x, t->view.thread_idx.y, t->view.thread_idx.z);
}

/* A report from inside a fiber that the block cannot survive. The fiber is
 * never unwound, so nothing it owns may live on the heap: format into a
 * buffer on its stack. */
[[noreturn]] static void fatal_in_fiber(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fatal_in_fiber(const char *fmt, ...)
{
    Sched &s = tls_sched;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    report("%s, %s: %s", where(*s.block).c_str(), tid_str(s.current).c_str(), msg);
    s.block->aborted = true;
    yield(false);
    abort(); /* the scheduler never resumes a thread of an aborted block */
}

static SimThread *self_or_die(const char *what)
{
    SimThread *t = tls_sched.current;
    if (!t) {
        fprintf(stderr, "embsim: %s called outside a kernel launched with EMB_LAUNCH\n", what);
        abort();
    }
    return t;
}

/* ---- block barrier ------------------------------------------------------------ */

int block_barrier(int kind, int pred, Site site)
{
    SimThread *t = self_or_die("__syncthreads");
    Block *b = tls_sched.block;
    t->state = TState::AtBarrier;
    t->site = site;
    t->bar_kind = kind;
    t->bar_pred = pred != 0;
    char *obj = &b->sync_bar[t->bars_passed & 1];
    tsan_release(obj);
    yield(false);
    tsan_acquire(obj);
    return t->bar_result;
}

static bool same_site(const Site &a, const Site &b)
{
    return a.line == b.line && a.col == b.col && (a.file == b.file || strcmp(a.file, b.file) == 0);
}

/* ---- warp rendezvous ------------------------------------------------------------ */

static const char *op_name(Op op)
{
    switch (op) {
    case Op::ShflIdx: return "__shfl_sync";
    case Op::ShflUp: return "__shfl_up_sync";
    case Op::ShflDown: return "__shfl_down_sync";
    case Op::ShflXor: return "__shfl_xor_sync";
    case Op::Ballot: return "__ballot_sync";
    case Op::Any: return "__any_sync";
    case Op::All: return "__all_sync";
    case Op::SyncWarp: return "__syncwarp";
    case Op::ActiveMask: return "__activemask";
    case Op::ReduceAddU: return "__reduce_add_sync";
    case Op::ReduceMinU: case Op::ReduceMinI: return "__reduce_min_sync";
    case Op::ReduceMaxU: case Op::ReduceMaxI: return "__reduce_max_sync";
    case Op::ReduceAnd: return "__reduce_and_sync";
    case Op::ReduceOr: return "__reduce_or_sync";
    case Op::ReduceXor: return "__reduce_xor_sync";
    case Op::MatchAny: return "__match_any_sync";
    case Op::MatchAll: return "__match_all_sync";
    case Op::MmaF16: return "emb_mma_m16n8k16_f16f32";
    case Op::MmaBF16: return "emb_mma_m16n8k16_bf16f32";
    case Op::Ldmatrix: return "emb_ldmatrix";
    case Op::WgmmaWait: return "emb_wgmma_wait";
    }
    return "?";
}

static bool is_shuffle(Op op) { return op == Op::ShflIdx || op == Op::ShflUp || op == Op::ShflDown || op == Op::ShflXor; }

static bool in_arena(const void *p, size_t n)
{
    const char *a = tls_sched.arena;
    const char *c = static_cast<const char *>(p);
    return c >= a && c + n <= a + kArenaSize;
}

void warp_rendezvous(Op op, unsigned mask, LaneIO *io, Site site)
{
    SimThread *t = self_or_die(op_name(op));
    Block *b = tls_sched.block;
    unsigned me = 1u << t->lane;
    if (op != Op::ActiveMask && !(mask & me)) {
        report("%s, %s (lane %d): %s at %s with mask 0x%08x that does not name the calling lane",
               where(*b).c_str(), tid_str(t).c_str(), t->lane, op_name(op), site_str(site).c_str(), mask);
        mask |= me;
    }
    if (is_shuffle(op) && (io->width < 1 || io->width > 32 || (io->width & (io->width - 1)) != 0))
        fatal_in_fiber("%s at %s:%u with width %d: width must be a power of two in [1, 32]",
                              op_name(op), short_file(site.file), site.line, io->width);
    if (op == Op::Ldmatrix) {
        const void *p = io->p[0];
        bool used = t->lane < 8 * io->arg;
        if (used && (!in_arena(p, 16) || (reinterpret_cast<uintptr_t>(p) & 15) != 0))
            fatal_in_fiber("emb_ldmatrix at %s:%u: row address %p is not a 16-byte aligned shared-memory address",
                                  short_file(site.file), site.line, p);
    }
    t->state = TState::AtWarp;
    t->op = op;
    t->mask = mask;
    t->io = io;
    t->site = site;
    tsan_release(&b->sync_warp[t->warp]);
    yield(false);
    tsan_acquire(&b->sync_warp[t->warp]);
}

static inline uint16_t lo16(uint32_t r) { return static_cast<uint16_t>(r & 0xffff); }
static inline uint16_t hi16(uint32_t r) { return static_cast<uint16_t>(r >> 16); }

static double elem(uint16_t raw, bool bf16)
{
    if (bf16)
        return static_cast<double>(bits<float>(static_cast<uint32_t>(raw) << 16));
    __half_raw h;
    h.x = raw;
    return static_cast<double>(__half2float(__half(h)));
}

/* mma.m16n8k16 row.col, fp32 accumulate, with the PTX ISA's fragment layout
 * (see kernels/arch.h). Products and sums in double, rounded once to float:
 * the GPU's tensor-core rounding is not modelled. */
static void compute_mma(SimThread *const lanes[32], bool bf16)
{
    double A[16][16], B[16][8], C[16][8];
    for (int l = 0; l < 32; l++) {
        const uint32_t *a = static_cast<const uint32_t *>(lanes[l]->io->p[0]);
        const uint32_t *bb = static_cast<const uint32_t *>(lanes[l]->io->p[1]);
        const float *c = static_cast<const float *>(lanes[l]->io->p[2]);
        int g = l >> 2, t = l & 3;
        for (int r = 0; r < 4; r++) {
            int row = g + ((r & 1) ? 8 : 0);
            int col = 2 * t + ((r & 2) ? 8 : 0);
            A[row][col] = elem(lo16(a[r]), bf16);
            A[row][col + 1] = elem(hi16(a[r]), bf16);
        }
        for (int r = 0; r < 2; r++) {
            int k = 2 * t + (r ? 8 : 0);
            B[k][g] = elem(lo16(bb[r]), bf16);
            B[k + 1][g] = elem(hi16(bb[r]), bf16);
        }
        for (int r = 0; r < 4; r++)
            C[g + (r >= 2 ? 8 : 0)][2 * t + (r & 1)] = c[r];
    }
    for (int l = 0; l < 32; l++) {
        float *d = static_cast<float *>(lanes[l]->io->q);
        int g = l >> 2, t = l & 3;
        for (int r = 0; r < 4; r++) {
            int row = g + (r >= 2 ? 8 : 0), col = 2 * t + (r & 1);
            double acc = C[row][col];
            for (int k = 0; k < 16; k++)
                acc += A[row][k] * B[k][col];
            d[r] = static_cast<float>(acc);
        }
    }
}

/* ldmatrix.m8n8.b16: lanes 8i..8i+7 address the rows of matrix i. */
static void compute_ldmatrix(SimThread *const lanes[32], int count, bool trans)
{
    uint16_t M[4][8][8];
    for (int i = 0; i < count; i++)
        for (int r = 0; r < 8; r++)
            memcpy(M[i][r], lanes[8 * i + r]->io->p[0], 16);
    for (int l = 0; l < 32; l++) {
        uint32_t *out = static_cast<uint32_t *>(lanes[l]->io->q);
        int row = l >> 2, col = 2 * (l & 3);
        for (int i = 0; i < count; i++) {
            uint16_t x0 = trans ? M[i][col][row] : M[i][row][col];
            uint16_t x1 = trans ? M[i][col + 1][row] : M[i][row][col + 1];
            out[i] = static_cast<uint32_t>(x0) | (static_cast<uint32_t>(x1) << 16);
        }
    }
}

/* One wgmma.m64nNk16 (fp32 accumulate) for the 16 rows of the warpgroup
 * that this warp owns (warp % 4), from the shared-memory matrix descriptors
 * of the PTX ISA (no swizzle: 8-row x 16-byte core matrices, LBO the byte
 * distance between core matrices along K, SBO along M/N). Products and sums
 * in double, rounded once to float, as compute_mma. */
static bool compute_wgmma(SimThread *const lanes[32], size_t i)
{
    bool ok = true;
    /* Runs in the scheduler, not in a fiber: a fault reports and aborts the block. */
    auto fail = [&](const std::string &msg) {
        if (ok)
            report("%s, warp %d: %s", where(*tls_sched.block).c_str(), lanes[0]->warp, msg.c_str());
        tls_sched.block->aborted = true;
        ok = false;
    };
    const WgmmaPending &p0 = lanes[0]->wg_pending[i];
    const WgmmaReq &r = p0.r;
    for (int l = 1; l < 32; l++) {
        const WgmmaReq &o = lanes[l]->wg_pending[i].r;
        if (o.a_regs != r.a_regs || o.bf16 != r.bf16 || o.b_mn_major != r.b_mn_major || o.n != r.n ||
            o.db != r.db || (!r.a_regs && o.da != r.da))
            fail(format("wgmma issued at %s:%u: lanes 0 and %d disagree on the operation or its descriptors",
                        short_file(p0.site.file), p0.site.line, l));
    }
    if (!ok)
        return false;
    const char *base = tls_sched.arena + kRedZone;
    auto decode = [&](uint64_t desc, const char *which, uint32_t &start, uint32_t &lbo, uint32_t &sbo) {
        start = static_cast<uint32_t>(desc & 0x3FFF) << 4;
        lbo = static_cast<uint32_t>((desc >> 16) & 0x3FFF) << 4;
        sbo = static_cast<uint32_t>((desc >> 32) & 0x3FFF) << 4;
        if ((desc >> 62) != 0 || ((desc >> 49) & 7) != 0)
            fail(format("wgmma issued at %s:%u: descriptor of %s uses a swizzle mode or base offset (0x%016llx); "
                        "the simulator models the no-swizzle canonical layout only",
                        short_file(p0.site.file), p0.site.line, which, static_cast<unsigned long long>(desc)));
    };
    auto load = [&](uint32_t off, const char *which) -> double {
        const char *q = base + off;
        if (!in_arena(q, 2)) {
            fail(format("wgmma issued at %s:%u: %s element at shared offset %u lies outside shared memory",
                        short_file(p0.site.file), p0.site.line, which, off));
            return 0.0;
        }
        uint16_t raw;
        memcpy(&raw, q, 2);
        return elem(raw, r.bf16);
    };
    const int n = r.n, w = lanes[0]->warp % 4;
    double A[16][16];
    std::vector<double> B(static_cast<size_t>(16 * n));
    if (r.a_regs) {
        for (int l = 0; l < 32; l++) {
            const uint32_t *a = lanes[l]->wg_pending[i].a;
            int g = l >> 2, t = l & 3;
            for (int q = 0; q < 4; q++) {
                int row = g + ((q & 1) ? 8 : 0), col = 2 * t + ((q & 2) ? 8 : 0);
                A[row][col] = elem(lo16(a[q]), r.bf16);
                A[row][col + 1] = elem(hi16(a[q]), r.bf16);
            }
        }
    } else {
        uint32_t st, lbo, sbo;
        decode(r.da, "A", st, lbo, sbo);
        for (int row = 0; row < 16; row++) {
            int m = 16 * w + row;
            for (int k = 0; k < 16; k++)
                A[row][k] = load(st + (m / 8) * sbo + (k / 8) * lbo + (m % 8) * 16 + (k % 8) * 2, "A");
        }
    }
    {
        uint32_t st, lbo, sbo;
        decode(r.db, "B", st, lbo, sbo);
        for (int k = 0; k < 16; k++)
            for (int c = 0; c < n; c++) {
                uint32_t off = r.b_mn_major ? st + (c / 8) * sbo + (k / 8) * lbo + (k % 8) * 16 + (c % 8) * 2
                                            : st + (c / 8) * sbo + (k / 8) * lbo + (c % 8) * 16 + (k % 8) * 2;
                B[static_cast<size_t>(k * n + c)] = load(off, "B");
            }
    }
    if (!ok)
        return false;
    for (int l = 0; l < 32; l++) {
        float *d = lanes[l]->wg_pending[i].r.d;
        int g = l >> 2, t = l & 3;
        for (int j = 0; j < n / 8; j++)
            for (int e = 0; e < 4; e++) {
                int row = g + (e >= 2 ? 8 : 0), col = 8 * j + 2 * t + (e & 1);
                double acc = d[4 * j + e];
                for (int k = 0; k < 16; k++)
                    acc += A[row][k] * B[static_cast<size_t>(k * n + col)];
                d[4 * j + e] = static_cast<float>(acc);
            }
    }
    return true;
}

/* The wait: every lane completes the same oldest `count` operations. */
static void complete_wgmma_wait(SimThread *const lanes[32])
{
    const size_t count = static_cast<size_t>(lanes[0]->io->arg);
    for (int l = 1; l < 32; l++)
        if (static_cast<size_t>(lanes[l]->io->arg) != count) {
            report("%s, warp %d: emb_wgmma_wait at %s: its lanes wait for different numbers of wgmma operations",
                   where(*tls_sched.block).c_str(), lanes[0]->warp, site_str(lanes[0]->site).c_str());
            tls_sched.block->aborted = true;
            return;
        }
    for (size_t i = 0; i < count; i++)
        if (!compute_wgmma(lanes, i))
            return;
    for (int l = 0; l < 32; l++) {
        SimThread *t = lanes[l];
        t->wg_pending.erase(t->wg_pending.begin(), t->wg_pending.begin() + static_cast<std::ptrdiff_t>(count));
        size_t drop = 0;
        while (drop < t->wg_groups.size() && t->wg_groups[drop] <= count)
            drop++;
        t->wg_groups.erase(t->wg_groups.begin(), t->wg_groups.begin() + static_cast<std::ptrdiff_t>(drop));
        for (size_t &g : t->wg_groups)
            g -= count;
    }
}

/* Source lane of a shuffle, following the PTX ISA's shfl.sync pseudocode
 * with CUDA's encoding of `width` into the c operand. */
static int shuffle_source(Op op, int lane, int arg, int width)
{
    int segmask = (32 - width) & 31;
    int clamp = op == Op::ShflUp ? 0 : 31;
    int bval = arg & 31;
    int max_lane = (lane & segmask) | (clamp & ~segmask);
    int min_lane = lane & segmask;
    int j = lane;
    bool ok = false;
    switch (op) {
    case Op::ShflUp: j = lane - bval; ok = j >= max_lane; break;
    case Op::ShflDown: j = lane + bval; ok = j <= max_lane; break;
    case Op::ShflXor: j = lane ^ bval; ok = j <= max_lane; break;
    default: j = min_lane | (bval & ~segmask); ok = j <= max_lane; break;
    }
    return ok ? j : lane;
}

/* Completes the rendezvous of the lanes in `mask` of `lanes`. */
static void complete_warp_op(SimThread *const lanes[32], unsigned mask, Op op)
{
    if (op == Op::MmaF16 || op == Op::MmaBF16)
        compute_mma(lanes, op == Op::MmaBF16);
    else if (op == Op::Ldmatrix)
        compute_ldmatrix(lanes, lanes[0]->io->arg, lanes[0]->io->width != 0);
    else if (op == Op::WgmmaWait)
        complete_wgmma_wait(lanes);
    uint64_t reduce = 0;
    bool all = true, any = false;
    uint64_t first = 0;
    bool have_first = false;
    for (int l = 0; l < 32; l++) {
        if (!(mask & (1u << l)))
            continue;
        uint64_t v = lanes[l]->io->in;
        uint32_t u = static_cast<uint32_t>(v);
        int32_t s = static_cast<int32_t>(u);
        if (!have_first) {
            first = v;
            have_first = true;
            reduce = (op == Op::ReduceMinI || op == Op::ReduceMaxI) ? static_cast<uint64_t>(static_cast<uint32_t>(s)) : u;
            if (op == Op::ReduceAddU || op == Op::ReduceXor || op == Op::ReduceOr)
                reduce = 0;
            if (op == Op::ReduceAnd)
                reduce = 0xffffffffu;
        }
        all = all && v != 0;
        any = any || v != 0;
        switch (op) {
        case Op::ReduceAddU: reduce = static_cast<uint32_t>(reduce + u); break;
        case Op::ReduceMinU: reduce = std::min<uint32_t>(static_cast<uint32_t>(reduce), u); break;
        case Op::ReduceMaxU: reduce = std::max<uint32_t>(static_cast<uint32_t>(reduce), u); break;
        case Op::ReduceMinI: reduce = static_cast<uint32_t>(std::min<int32_t>(static_cast<int32_t>(reduce), s)); break;
        case Op::ReduceMaxI: reduce = static_cast<uint32_t>(std::max<int32_t>(static_cast<int32_t>(reduce), s)); break;
        case Op::ReduceAnd: reduce &= u; break;
        case Op::ReduceOr: reduce |= u; break;
        case Op::ReduceXor: reduce ^= u; break;
        default: break;
        }
    }
    bool all_equal = true;
    for (int l = 0; l < 32; l++)
        if ((mask & (1u << l)) && lanes[l]->io->in != first)
            all_equal = false;
    for (int l = 0; l < 32; l++) {
        if (!(mask & (1u << l)))
            continue;
        LaneIO *io = lanes[l]->io;
        switch (op) {
        case Op::ShflIdx: case Op::ShflUp: case Op::ShflDown: case Op::ShflXor: {
            int j = shuffle_source(op, l, io->arg, io->width);
            io->out = (mask & (1u << j)) ? lanes[j]->io->in : kUndefined;
            break;
        }
        case Op::Ballot: {
            unsigned r = 0;
            for (int m = 0; m < 32; m++)
                if ((mask & (1u << m)) && lanes[m]->io->in)
                    r |= 1u << m;
            io->out = r;
            break;
        }
        case Op::Any: io->out = any; break;
        case Op::All: io->out = all; break;
        case Op::ActiveMask: io->out = mask; break;
        case Op::MatchAny: {
            unsigned r = 0;
            for (int m = 0; m < 32; m++)
                if ((mask & (1u << m)) && lanes[m]->io->in == io->in)
                    r |= 1u << m;
            io->out = r;
            break;
        }
        case Op::MatchAll: io->out = all_equal ? mask : 0; break;
        case Op::ReduceAddU: case Op::ReduceMinU: case Op::ReduceMaxU: case Op::ReduceMinI:
        case Op::ReduceMaxI: case Op::ReduceAnd: case Op::ReduceOr: case Op::ReduceXor:
            io->out = reduce;
            break;
        default: break;
        }
        lanes[l]->state = TState::Runnable;
    }
}

struct BlockRunner {
    Block &b;
    std::vector<SimThread *> threads;
    std::vector<int> order;
    std::vector<int> warp_order; /* warps by their first thread in `order` (resolve_warps) */

    SimThread *lane_thread(int warp, int lane) const
    {
        size_t i = static_cast<size_t>(warp) * 32 + static_cast<size_t>(lane);
        return i < threads.size() ? threads[i] : nullptr;
    }

    /* Whether the group led by `t` can complete; if not, why (for reports). */
    bool group_ready(SimThread *t, std::string *why) const
    {
        for (int j = 0; j < 32; j++) {
            if (!(t->mask & (1u << j)))
                continue;
            SimThread *u = lane_thread(t->warp, j);
            if (!u || u->warp != t->warp) {
                if (why)
                    *why = format("the mask 0x%08x names lane %d, which does not exist (block of %d threads)",
                                  t->mask, j, b.nthreads);
                return false;
            }
            if (u->state == TState::Exited) {
                if (why)
                    *why = format("the mask 0x%08x names lane %d, which has exited", t->mask, j);
                return false;
            }
            if (u->state == TState::AtBarrier) {
                if (why)
                    *why = format("lane %d named in the mask waits at __syncthreads at %s", j, site_str(u->site).c_str());
                return false;
            }
            if (u->state != TState::AtWarp)
                return false;
            bool width_differs = is_shuffle(t->op) && u->io->width != t->io->width;
            if (u->op != t->op || !same_site(u->site, t->site) || u->mask != t->mask || width_differs) {
                if (why)
                    *why = format("lane %d named in the mask waits at %s at %s with mask 0x%08x%s", j, op_name(u->op),
                                  site_str(u->site).c_str(), u->mask, width_differs ? " and a different width" : "");
                return false;
            }
        }
        return true;
    }

    /* Forward order completes every warp's ready collective at once, so the
     * warps move in step from one collective to the next. The other orders
     * complete one warp's (the first in the order) and let it run on: each
     * warp runs ahead to the next barrier before the next warp moves, so a
     * warp that overwrites shared memory another warp has yet to read (a
     * missing barrier) changes what that warp reads. */
    bool resolve_warps()
    {
        bool progress = false;
        const bool serial = config().order != EMBSIM_FORWARD;
        if (warp_order.empty())
            for (int i : order)
                if (std::find(warp_order.begin(), warp_order.end(), i / 32) == warp_order.end())
                    warp_order.push_back(i / 32);
        for (int w : warp_order) {
            if (serial && progress)
                break;
            SimThread *lanes[32] = {};
            for (int l = 0; l < 32; l++)
                lanes[l] = lane_thread(w, l);
            for (int l = 0; l < 32; l++) {
                SimThread *t = lanes[l];
                if (!t || t->state != TState::AtWarp)
                    continue;
                if (t->op == Op::ActiveMask) {
                    unsigned m = 0;
                    for (int j = 0; j < 32; j++)
                        if (lanes[j] && lanes[j]->state == TState::AtWarp && lanes[j]->op == Op::ActiveMask &&
                            same_site(lanes[j]->site, t->site))
                            m |= 1u << j;
                    complete_warp_op(lanes, m, Op::ActiveMask);
                    progress = true;
                } else if (group_ready(t, nullptr)) {
                    complete_warp_op(lanes, t->mask, t->op);
                    progress = true;
                }
            }
        }
        return progress;
    }

    /* Every live thread waits at a __syncthreads: check they agree, release. */
    bool complete_barrier()
    {
        SimThread *first = nullptr;
        for (SimThread *t : threads) {
            if (t->state == TState::Exited)
                continue;
            if (t->state != TState::AtBarrier)
                return false;
            if (!first) {
                first = t;
            } else if (!same_site(t->site, first->site) || t->bars_passed != first->bars_passed) {
                report("%s: threads wait at different __syncthreads: %s at %s (its barrier #%u), %s at %s (its barrier #%u)",
                       where(b).c_str(), tid_str(first).c_str(), site_str(first->site).c_str(), first->bars_passed + 1,
                       tid_str(t).c_str(), site_str(t->site).c_str(), t->bars_passed + 1);
                b.aborted = true;
                return false;
            }
        }
        if (!first)
            return false;
        /* Exited threads count as arrived, but one that left before this
         * barrier skipped it: undefined behaviour on a GPU. */
        for (SimThread *t : threads) {
            if (t->state == TState::Exited && t->bars_passed <= first->bars_passed && !b.skip_reported) {
                report("%s: %s exited without reaching the __syncthreads at %s that other threads wait at",
                       where(b).c_str(), tid_str(t).c_str(), site_str(first->site).c_str());
                b.skip_reported = true;
            }
        }
        int count = 0, live = 0;
        for (SimThread *t : threads)
            if (t->state == TState::AtBarrier) {
                count += t->bar_pred;
                live++;
            }
        for (SimThread *t : threads) {
            if (t->state != TState::AtBarrier)
                continue;
            switch (t->bar_kind) {
            case 1: t->bar_result = count; break;
            case 2: t->bar_result = count == live; break;
            case 3: t->bar_result = count != 0; break;
            default: t->bar_result = 0; break;
            }
            t->bars_passed++;
            t->state = TState::Runnable;
        }
        return true;
    }

    void report_deadlock()
    {
        for (SimThread *t : threads) {
            std::string why;
            if (t->state == TState::AtWarp && !group_ready(t, &why)) {
                report("%s: %s (warp %d lane %d) waits at %s at %s, which cannot complete: %s", where(b).c_str(),
                       tid_str(t).c_str(), t->warp, t->lane, op_name(t->op), site_str(t->site).c_str(), why.c_str());
                return;
            }
        }
        report("%s: threads cannot make progress", where(b).c_str());
    }

    void run()
    {
        for (;;) {
            bool ran = false;
            for (int i : order) {
                SimThread *t = threads[static_cast<size_t>(i)];
                if (t->state != TState::Runnable)
                    continue;
                switch_to(t);
                ran = true;
                if (b.aborted)
                    return;
            }
            if (ran)
                continue;
            bool live = false;
            for (SimThread *t : threads)
                live = live || t->state != TState::Exited;
            if (!live)
                return;
            if (resolve_warps())
                continue;
            if (complete_barrier())
                continue;
            if (!b.aborted)
                report_deadlock();
            b.aborted = true;
            return;
        }
    }
};

/* ---- scheduling orders ------------------------------------------------------------ */

static uint64_t splitmix(uint64_t &x)
{
    uint64_t z = (x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static std::vector<int> make_order(int n, uint64_t salt)
{
    std::vector<int> v(static_cast<size_t>(n));
    for (int i = 0; i < n; i++)
        v[static_cast<size_t>(i)] = i;
    const Config &c = config();
    if (c.order == EMBSIM_REVERSE) {
        std::reverse(v.begin(), v.end());
    } else if (c.order == EMBSIM_SHUFFLE) {
        uint64_t state = c.seed ^ (salt * 0xd1342543de82ef95ull);
        for (int i = n - 1; i > 0; i--) {
            int j = static_cast<int>(splitmix(state) % static_cast<uint64_t>(i + 1));
            std::swap(v[static_cast<size_t>(i)], v[static_cast<size_t>(j)]);
        }
    }
    return v;
}

/* ---- shared memory ------------------------------------------------------------------- */

static void poison_range(char *p, size_t n)
{
#if defined(EMBSIM_ASAN)
    __asan_poison_memory_region(p, n);
#else
    (void)p;
    (void)n;
#endif
}
static void unpoison_range(char *p, size_t n)
{
#if defined(EMBSIM_ASAN)
    __asan_unpoison_memory_region(p, n);
#else
    (void)p;
    (void)n;
#endif
}

static char *align_up(char *p, size_t a)
{
    uintptr_t u = reinterpret_cast<uintptr_t>(p);
    return reinterpret_cast<char *>((u + a - 1) & ~(static_cast<uintptr_t>(a) - 1));
}

/* Lays out the arena for a new block: [red zone][dynamic][red zone], static
 * arrays follow as threads reach their declarations, each with a red zone. */
static void arena_reset(Block &b, size_t dyn_bytes)
{
    Sched &s = tls_sched;
    if (!s.arena) {
        s.arena = static_cast<char *>(aligned_alloc(128, kArenaSize));
        if (!s.arena)
            abort();
    }
    unpoison_range(s.arena, kArenaSize);
    memset(s.arena, kCanary, kArenaSize);
    b.dyn = s.arena + kRedZone;
    b.dyn_bytes = dyn_bytes;
    memset(b.dyn, config().poison, dyn_bytes);
    b.cursor = align_up(b.dyn + dyn_bytes + kRedZone, 16);
    poison_range(s.arena, kArenaSize);
    unpoison_range(b.dyn, dyn_bytes);
}

void *shared_dynamic()
{
    self_or_die("EMB_DYNAMIC_SHARED");
    return tls_sched.block->dyn;
}

void *shared_static(size_t bytes, size_t align, Site site)
{
    self_or_die("EMB_SHARED");
    Block &b = *tls_sched.block;
    /* The first thread to arrive allocates and poisons; for the others that
     * counts as done before the kernel, not as a racing write. */
    for (const SharedAlloc &a : b.statics)
        if (same_site(a.site, site) && a.bytes == bytes) {
            tsan_acquire(a.ptr);
            return a.ptr;
        }
    char *p = align_up(b.cursor, std::max<size_t>(align, 16));
    if (b.static_bytes + bytes > kStaticSharedLimit)
        fatal_in_fiber("EMB_SHARED at %s:%u: static shared memory of the kernel exceeds %zu bytes",
                              short_file(site.file), site.line, kStaticSharedLimit);
    if (b.static_bytes + bytes + b.dyn_bytes > kMaxSharedPerBlock || p + bytes + kRedZone > tls_sched.arena + kArenaSize)
        fatal_in_fiber("EMB_SHARED at %s:%u: static plus dynamic shared memory exceeds the %zu bytes of a block",
                              short_file(site.file), site.line, kMaxSharedPerBlock);
    unpoison_range(p, bytes);
    memset(p, config().poison, bytes);
    tsan_release(p);
    b.statics.push_back(SharedAlloc{site, p, bytes});
    b.static_bytes += bytes;
    b.cursor = p + bytes + kRedZone;
    return p;
}

/* Red zones still hold the canary, or a thread wrote out of bounds. */
static void check_red_zones(Block &b)
{
    Sched &s = tls_sched;
    std::vector<std::pair<char *, std::string>> regions; /* start of each allocation, its name */
    regions.emplace_back(b.dyn, format("dynamic shared memory (%zu bytes)", b.dyn_bytes));
    for (const SharedAlloc &a : b.statics)
        regions.emplace_back(a.ptr, format("EMB_SHARED at %s (%zu bytes)", site_str(a.site).c_str(), a.bytes));
    std::vector<std::pair<char *, size_t>> used;
    used.emplace_back(b.dyn, b.dyn_bytes);
    for (const SharedAlloc &a : b.statics)
        used.emplace_back(a.ptr, a.bytes);
    unpoison_range(s.arena, kArenaSize);
    std::sort(used.begin(), used.end());
    char *p = s.arena;
    size_t k = 0;
    char *end = b.cursor;
    while (p < end) {
        if (k < used.size() && p == used[k].first) {
            p += used[k].second;
            k++;
            continue;
        }
        if (static_cast<uint8_t>(*p) != kCanary) {
            /* Name the allocation just below the corrupted byte. */
            std::string what = "the start of the arena";
            char *best = nullptr;
            for (auto &r : regions)
                if (r.first <= p && (!best || r.first > best)) {
                    best = r.first;
                    what = r.second;
                }
            report("%s: shared memory written out of bounds, %td bytes past the start of %s", where(b).c_str(),
                   p - (best ? best : s.arena), what.c_str());
            return;
        }
        p++;
    }
}

/* ---- cp.async ------------------------------------------------------------------------ */

/* When a copy lands. The hardware may complete it at any point between its
 * issue and the wait that covers it; the orders take both ends: forward
 * lands every copy at its wait (the latest: a read of the tile before the
 * wait sees what was there before), reverse at its issue (the earliest: a
 * tile overwritten while other warps still read it, with no barrier between,
 * shows), shuffle draws one or the other per copy from the seed. */
static bool land_at_issue()
{
    const Config &c = config();
    if (c.order != EMBSIM_SHUFFLE)
        return c.order == EMBSIM_REVERSE;
    static thread_local uint64_t state = 0, seeded_with = 0;
    static thread_local bool seeded = false;
    if (!seeded || seeded_with != c.seed) {
        state = c.seed ^ 0x5ca1ab1e0ddba11ull;
        seeded_with = c.seed;
        seeded = true;
    }
    return splitmix(state) & 1;
}

static void cp_async_land(const CpAsyncCopy &c)
{
    memcpy(c.dst, c.src, c.src_bytes);
    memset(static_cast<char *>(c.dst) + c.src_bytes, 0, c.bytes - c.src_bytes);
}

void cp_async(void *dst, const void *src, size_t bytes, size_t src_bytes, Site site)
{
    SimThread *t = self_or_die("emb_cp_async_16");
    if (!in_arena(dst, bytes) || (reinterpret_cast<uintptr_t>(dst) & 15) || (reinterpret_cast<uintptr_t>(src) & 15) ||
        src_bytes > bytes)
        fatal_in_fiber("emb_cp_async_16 at %s:%u: destination %p must be 16-byte aligned shared memory, source %p 16-byte aligned, "
                       "and %zu source bytes at most %zu",
                       short_file(site.file), site.line, dst, src, src_bytes, bytes);
    const CpAsyncCopy c{dst, src, bytes, src_bytes, land_at_issue()};
    if (c.landed)
        cp_async_land(c);
    t->cp_pending.push_back(c);
}

void cp_async_commit()
{
    SimThread *t = self_or_die("emb_cp_async_commit");
    t->cp_groups.push_back(t->cp_pending.size());
}

void cp_async_wait(int allowed)
{
    SimThread *t = self_or_die("emb_cp_async_wait");
    int groups = static_cast<int>(t->cp_groups.size());
    if (groups <= allowed)
        return;
    size_t done = t->cp_groups[static_cast<size_t>(groups - allowed - 1)];
    for (size_t i = 0; i < done; i++)
        if (!t->cp_pending[i].landed)
            cp_async_land(t->cp_pending[i]);
    t->cp_pending.erase(t->cp_pending.begin(), t->cp_pending.begin() + static_cast<std::ptrdiff_t>(done));
    t->cp_groups.erase(t->cp_groups.begin(), t->cp_groups.begin() + (groups - allowed));
    for (size_t &g : t->cp_groups)
        g -= done;
}

/* ---- wgmma ---------------------------------------------------------------------------- */

uint32_t smem_address(const void *p, Site site)
{
    self_or_die("emb_wgmma_desc");
    const char *base = tls_sched.arena + kRedZone;
    const char *c = static_cast<const char *>(p);
    if (!in_arena(p, 16) || c < base || (reinterpret_cast<uintptr_t>(p) & 15) || c - base >= (1 << 18))
        fatal_in_fiber("emb_wgmma_desc at %s:%u: %p is not a 16-byte aligned shared-memory address",
                       short_file(site.file), site.line, p);
    return static_cast<uint32_t>(c - base);
}

void wgmma_issue(const WgmmaReq &r, Site site)
{
    SimThread *t = self_or_die("emb_wgmma");
    const int group_end = (t->warp / 4 + 1) * 128;
    if (tls_sched.block->nthreads < group_end)
        fatal_in_fiber("emb_wgmma at %s:%u: warp %d has no whole warpgroup (the block has %d threads); "
                       "wgmma needs 4 consecutive warps",
                       short_file(site.file), site.line, t->warp, tls_sched.block->nthreads);
    WgmmaPending p{r, {0, 0, 0, 0}, site};
    if (r.a_regs)
        memcpy(p.a, r.a, sizeof p.a);
    t->wg_pending.push_back(p);
}

void wgmma_commit()
{
    SimThread *t = self_or_die("emb_wgmma_commit");
    t->wg_groups.push_back(t->wg_pending.size());
}

void wgmma_wait(int allowed, Site site)
{
    SimThread *t = self_or_die("emb_wgmma_wait");
    int groups = static_cast<int>(t->wg_groups.size());
    if (groups <= allowed)
        return;
    LaneIO io;
    io.arg = static_cast<int>(t->wg_groups[static_cast<size_t>(groups - allowed - 1)]);
    warp_rendezvous(Op::WgmmaWait, 0xffffffffu, &io, site);
}

void trap(Site site)
{
    self_or_die("__trap");
    fatal_in_fiber("__trap() at %s:%u", short_file(site.file), site.line);
}

unsigned long long clock_tick()
{
    return g_switches.load(std::memory_order_relaxed) * 100 + g_blocks_run.load(std::memory_order_relaxed);
}

/* ---- kernels ------------------------------------------------------------------------- */

static bool run_block(const KernelLaunch &k, uint3 bid, Block &b)
{
    Sched &s = tls_sched;
    int n = static_cast<int>(k.block.x * k.block.y * k.block.z);
    while (static_cast<int>(s.pool.size()) < n)
        s.pool.push_back(std::make_unique<SimThread>());
#if defined(EMBSIM_TSAN)
    if (!s.sched_tsan)
        s.sched_tsan = __tsan_get_current_fiber();
#endif
    b.k = &k;
    b.bid = bid;
    b.nthreads = n;
    arena_reset(b, k.smem);
    BlockRunner r{b, {}, {}, {}};
    r.threads.reserve(static_cast<size_t>(n));
    for (int i = 0; i < n; i++) {
        SimThread *t = s.pool[static_cast<size_t>(i)].get();
        unsigned u = static_cast<unsigned>(i);
        t->view.thread_idx = make_uint3(u % k.block.x, (u / k.block.x) % k.block.y, u / (k.block.x * k.block.y));
        t->view.block_idx = bid;
        t->view.block_dim = k.block;
        t->view.grid_dim = k.grid;
        t->linear = i;
        t->warp = i / 32;
        t->lane = i % 32;
        t->state = TState::Runnable;
        t->started = false;
        t->bars_passed = 0;
        t->cp_pending.clear();
        t->cp_groups.clear();
        fiber_prepare(t);
        r.threads.push_back(t);
    }
    uint64_t salt = (static_cast<uint64_t>(bid.z) << 42) ^ (static_cast<uint64_t>(bid.y) << 21) ^ bid.x;
    r.order = make_order(n, salt);
    s.block = &b;
    r.run();
    s.block = nullptr;
    tsan_acquire(&b.sync_end);
    g_blocks_run.fetch_add(1, std::memory_order_relaxed);
    if (b.aborted)
        return false;
    for (SimThread *t : r.threads)
        if (!t->cp_pending.empty()) {
            report("%s: %s exited with %zu cp.async copies it never waited for", where(b).c_str(), tid_str(t).c_str(),
                   t->cp_pending.size());
            break;
        }
    check_red_zones(b);
    return true;
}

bool run_kernel(const KernelLaunch &k)
{
    if (tls_sched.current) {
        fprintf(stderr, "embsim: kernel '%s' launched from inside a kernel (dynamic parallelism is not simulated)\n", k.name);
        abort();
    }
    uint64_t nblocks = static_cast<uint64_t>(k.grid.x) * k.grid.y * k.grid.z;
    std::vector<int> order = make_order(static_cast<int>(nblocks), 0x5eed);
    auto b = std::make_unique<Block>();
    for (int i : order) {
        uint64_t u = static_cast<uint64_t>(i);
        uint3 bid = make_uint3(static_cast<unsigned>(u % k.grid.x), static_cast<unsigned>((u / k.grid.x) % k.grid.y),
                               static_cast<unsigned>(u / (static_cast<uint64_t>(k.grid.x) * k.grid.y)));
        *b = Block();
        if (!run_block(k, bid, *b))
            return false;
    }
    return true;
}

uint64_t blocks_run() { return g_blocks_run.load(); }
uint64_t fiber_switches() { return g_switches.load(); }

} // namespace embsim

extern "C" uint64_t embsim_blocks_run(void) { return embsim::blocks_run(); }
extern "C" uint64_t embsim_fiber_switches(void) { return embsim::fiber_switches(); }
