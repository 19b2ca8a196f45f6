/* nccl.cpp: the NCCL subset over the simulator's virtual devices.
 *
 * Ranks are communicators over virtual devices, driven either by one thread
 * inside ncclGroupStart/End (ncclCommInitAll) or by one thread per rank
 * (ncclCommInitRank). A collective is queued on each rank's stream like any
 * other work; when one rank's part runs, it runs the other ranks' streams up
 * to their parts (or waits for their threads to queue them), and the last
 * part to arrive moves the data. Calling a second rank's collective from the
 * same thread outside a group is reported: real NCCL would hang there.
 */
#include "internal.h"

#include <nccl.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <thread>

namespace {

enum class Kind { AllReduce, Broadcast, AllGather, P2P };

struct Coll {
    Kind kind;
    size_t count = 0;
    ncclDataType_t dtype = ncclFloat32;
    ncclRedOp_t op = ncclSum;
    int root = 0;
    int nparts = 0;
    std::vector<bool> queued, arrived;
    std::vector<const void *> send;
    std::vector<void *> recv;
    std::vector<cudaStream_t> streams;
    std::vector<std::thread::id> callers;
    std::vector<bool> grouped;
    bool done = false;
};

struct Clique {
    int nranks = 0;
    int joined = 0;
    std::mutex mu;
    std::condition_variable cv;
    std::map<uint64_t, Coll> colls;                              /* by collective sequence number */
    std::map<std::tuple<int, int, uint64_t>, Coll> p2p;          /* by (sender, receiver, n-th) */
    std::map<std::pair<int, int>, uint64_t> sends_queued, recvs_queued;
};

std::mutex g_registry_mu;
std::map<std::string, std::shared_ptr<Clique>> g_cliques;
uint64_t g_next_id = 1;
thread_local int tls_group_depth = 0;

size_t dtype_size(ncclDataType_t t)
{
    switch (t) {
    case ncclInt8: case ncclUint8: case ncclFloat8e4m3: case ncclFloat8e5m2: return 1;
    case ncclFloat16: case ncclBfloat16: return 2;
    case ncclInt32: case ncclUint32: case ncclFloat32: return 4;
    default: return 8;
    }
}

double load(const void *p, size_t i, ncclDataType_t t)
{
    switch (t) {
    case ncclInt8: return static_cast<const int8_t *>(p)[i];
    case ncclUint8: return static_cast<const uint8_t *>(p)[i];
    case ncclInt32: return static_cast<const int32_t *>(p)[i];
    case ncclUint32: return static_cast<const uint32_t *>(p)[i];
    case ncclInt64: return static_cast<double>(static_cast<const int64_t *>(p)[i]);
    case ncclUint64: return static_cast<double>(static_cast<const uint64_t *>(p)[i]);
    case ncclFloat16: return __half2float(static_cast<const __half *>(p)[i]);
    case ncclBfloat16: return __bfloat162float(static_cast<const __nv_bfloat16 *>(p)[i]);
    case ncclFloat32: return static_cast<const float *>(p)[i];
    default: return static_cast<const double *>(p)[i];
    }
}

void store(void *p, size_t i, ncclDataType_t t, double v)
{
    switch (t) {
    case ncclInt8: static_cast<int8_t *>(p)[i] = static_cast<int8_t>(v); break;
    case ncclUint8: static_cast<uint8_t *>(p)[i] = static_cast<uint8_t>(v); break;
    case ncclInt32: static_cast<int32_t *>(p)[i] = static_cast<int32_t>(v); break;
    case ncclUint32: static_cast<uint32_t *>(p)[i] = static_cast<uint32_t>(v); break;
    case ncclInt64: static_cast<int64_t *>(p)[i] = static_cast<int64_t>(v); break;
    case ncclUint64: static_cast<uint64_t *>(p)[i] = static_cast<uint64_t>(v); break;
    case ncclFloat16: static_cast<__half *>(p)[i] = __double2half(v); break;
    case ncclBfloat16: static_cast<__nv_bfloat16 *>(p)[i] = __double2bfloat16(v); break;
    case ncclFloat32: static_cast<float *>(p)[i] = static_cast<float>(v); break;
    default: static_cast<double *>(p)[i] = v; break;
    }
}

/* Moves the data once every part has arrived. */
void compute(Coll &c)
{
    size_t es = dtype_size(c.dtype), bytes = c.count * es;
    int n = c.nparts;
    switch (c.kind) {
    case Kind::AllReduce: {
        std::vector<double> acc(c.count);
        for (size_t i = 0; i < c.count; i++) {
            double a = load(c.send[0], i, c.dtype);
            for (int r = 1; r < n; r++) {
                double v = load(c.send[static_cast<size_t>(r)], i, c.dtype);
                switch (c.op) {
                case ncclProd: a *= v; break;
                case ncclMax: a = std::max(a, v); break;
                case ncclMin: a = std::min(a, v); break;
                default: a += v; break;
                }
            }
            acc[i] = c.op == ncclAvg ? a / n : a;
        }
        for (int r = 0; r < n; r++)
            for (size_t i = 0; i < c.count; i++)
                store(c.recv[static_cast<size_t>(r)], i, c.dtype, acc[i]);
        break;
    }
    case Kind::Broadcast: {
        std::vector<char> tmp(static_cast<const char *>(c.send[static_cast<size_t>(c.root)]),
                              static_cast<const char *>(c.send[static_cast<size_t>(c.root)]) + bytes);
        for (int r = 0; r < n; r++)
            memcpy(c.recv[static_cast<size_t>(r)], tmp.data(), bytes);
        break;
    }
    case Kind::AllGather: {
        std::vector<char> tmp(bytes * static_cast<size_t>(n));
        for (int r = 0; r < n; r++)
            memcpy(tmp.data() + bytes * static_cast<size_t>(r), c.send[static_cast<size_t>(r)], bytes);
        for (int r = 0; r < n; r++)
            memcpy(c.recv[static_cast<size_t>(r)], tmp.data(), tmp.size());
        break;
    }
    case Kind::P2P: /* part 0 sends, part 1 receives */
        memcpy(c.recv[1], c.send[0], bytes);
        break;
    }
}

} // namespace

struct ncclComm {
    std::shared_ptr<Clique> clique;
    int rank = 0;
    int device = 0;
    uint64_t next_seq = 0;
};

namespace {

/* Rank `part` of `c` arrives; the last one to arrive moves the data. */
void arrive(Clique &q, Coll *c, int part)
{
    std::lock_guard<std::mutex> g(q.mu);
    c->arrived[static_cast<size_t>(part)] = true;
    for (bool a : c->arrived)
        if (!a)
            return;
    compute(*c);
    c->done = true;
    q.cv.notify_all();
}

/* Waits until `c` is done, running the streams of the parts that were
 * queued but have not arrived. */
cudaError_t wait_done(Clique &q, Coll *c)
{
    std::unique_lock<std::mutex> lk(q.mu);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!c->done) {
        /* Skip a stream another thread is running: waiting for it avoids a
         * cycle of threads each holding a stream the other wants. */
        std::vector<cudaStream_t> help;
        for (int p = 0; p < c->nparts; p++)
            if (c->queued[static_cast<size_t>(p)] && !c->arrived[static_cast<size_t>(p)])
                help.push_back(c->streams[static_cast<size_t>(p)]);
        bool helped = false;
        if (!help.empty()) {
            lk.unlock();
            for (cudaStream_t s : help)
                helped = embsim::try_drain_stream(s) || helped;
            lk.lock();
        }
        if (c->done || helped)
            continue;
        q.cv.wait_for(lk, std::chrono::milliseconds(20));
        if (!c->done && std::chrono::steady_clock::now() > deadline) {
            embsim::report("NCCL collective never completed: a rank never called it (real NCCL would hang)");
            return cudaErrorLaunchFailure;
        }
    }
    return cudaSuccess;
}

/* The parts one stream contributes at once: a single call, or everything a
 * thread queued on that stream inside one ncclGroupStart/End. Within a
 * group they all arrive before any waits, as NCCL fuses them. */
struct Part {
    std::shared_ptr<Clique> q;
    Coll *c;
    int part;
};

cudaError_t run_parts(const std::vector<Part> &parts)
{
    for (const Part &p : parts)
        arrive(*p.q, p.c, p.part);
    cudaError_t r = cudaSuccess;
    for (const Part &p : parts) {
        cudaError_t e = wait_done(*p.q, p.c);
        if (r == cudaSuccess)
            r = e;
    }
    return r;
}

struct GroupedPart {
    Part part;
    cudaStream_t stream; /* resolved */
};
thread_local std::vector<GroupedPart> tls_group_parts;

void enqueue_parts(cudaStream_t resolved, std::vector<Part> parts, const char *what)
{
    embsim::enqueue_op(resolved, what, [parts = std::move(parts)] { return run_parts(parts); });
}

/* Registers rank `part` of a collective and queues its execution. */
ncclResult_t enqueue_part(ncclComm_t comm, Coll *c, int part, const void *send, void *recv, cudaStream_t stream,
                          const char *what)
{
    auto q = comm->clique;
    {
        std::lock_guard<std::mutex> g(q->mu);
        std::thread::id me = std::this_thread::get_id();
        for (int p = 0; p < c->nparts; p++)
            if (p != part && c->queued[static_cast<size_t>(p)] && c->callers[static_cast<size_t>(p)] == me &&
                (!c->grouped[static_cast<size_t>(p)] || tls_group_depth == 0)) {
                embsim::report("%s: one thread drives several ranks of one collective outside "
                               "ncclGroupStart/ncclGroupEnd (real NCCL would hang)", what);
                return ncclInvalidUsage;
            }
        c->send[static_cast<size_t>(part)] = send;
        c->recv[static_cast<size_t>(part)] = recv;
        c->callers[static_cast<size_t>(part)] = me;
        c->grouped[static_cast<size_t>(part)] = tls_group_depth > 0;
        c->queued[static_cast<size_t>(part)] = true;
        int saved;
        cudaGetDevice(&saved);
        cudaSetDevice(comm->device);
        c->streams[static_cast<size_t>(part)] = embsim::resolve_stream(stream);
        cudaSetDevice(saved);
    }
    cudaStream_t resolved = c->streams[static_cast<size_t>(part)];
    if (tls_group_depth > 0)
        tls_group_parts.push_back(GroupedPart{Part{q, c, part}, resolved});
    else
        enqueue_parts(resolved, {Part{q, c, part}}, what);
    return ncclSuccess;
}

Coll *collective(ncclComm_t comm, Kind kind, size_t count, ncclDataType_t dtype, ncclRedOp_t op, int root,
                 const char *what, ncclResult_t *err)
{
    auto q = comm->clique;
    std::lock_guard<std::mutex> g(q->mu);
    uint64_t seq = comm->next_seq++;
    auto it = q->colls.find(seq);
    if (it == q->colls.end()) {
        Coll c;
        c.kind = kind;
        c.count = count;
        c.dtype = dtype;
        c.op = op;
        c.root = root;
        c.nparts = q->nranks;
        c.queued.assign(static_cast<size_t>(q->nranks), false);
        c.arrived = c.queued;
        c.grouped = c.queued;
        c.send.assign(static_cast<size_t>(q->nranks), nullptr);
        c.recv.assign(static_cast<size_t>(q->nranks), nullptr);
        c.streams.assign(static_cast<size_t>(q->nranks), nullptr);
        c.callers.assign(static_cast<size_t>(q->nranks), std::thread::id());
        it = q->colls.emplace(seq, std::move(c)).first;
    } else if (it->second.kind != kind || it->second.count != count || it->second.dtype != dtype ||
               it->second.root != root) {
        embsim::report("%s on rank %d does not match collective #%llu of the other ranks", what, comm->rank,
                       static_cast<unsigned long long>(seq));
        *err = ncclInvalidUsage;
        return nullptr;
    }
    return &it->second;
}

ncclResult_t check_comm(ncclComm_t comm, const void *send, const void *recv)
{
    if (!comm)
        return ncclInvalidArgument;
    if (!send || !recv)
        return ncclInvalidArgument;
    return ncclSuccess;
}

} // namespace

extern "C" {

ncclResult_t ncclGetVersion(int *version)
{
    *version = NCCL_VERSION_CODE;
    return ncclSuccess;
}

ncclResult_t ncclGetUniqueId(ncclUniqueId *id)
{
    std::lock_guard<std::mutex> g(g_registry_mu);
    memset(id, 0, sizeof *id);
    snprintf(id->internal, sizeof id->internal, "embsim-nccl-%llu", static_cast<unsigned long long>(g_next_id++));
    return ncclSuccess;
}

ncclResult_t ncclCommInitRank(ncclComm_t *comm, int nranks, ncclUniqueId id, int rank)
{
    if (nranks < 1 || rank < 0 || rank >= nranks)
        return ncclInvalidArgument;
    std::shared_ptr<Clique> q;
    {
        std::lock_guard<std::mutex> g(g_registry_mu);
        auto &slot = g_cliques[std::string(id.internal, strnlen(id.internal, sizeof id.internal))];
        if (!slot) {
            slot = std::make_shared<Clique>();
            slot->nranks = nranks;
        }
        q = slot;
    }
    if (q->nranks != nranks)
        return ncclInvalidArgument;
    auto *c = new ncclComm();
    c->clique = q;
    c->rank = rank;
    cudaGetDevice(&c->device);
    std::unique_lock<std::mutex> lk(q->mu);
    q->joined++;
    q->cv.notify_all();
    /* Outside a group, initialisation waits for every rank, as NCCL's does. */
    if (tls_group_depth == 0 &&
        !q->cv.wait_for(lk, std::chrono::seconds(20), [&] { return q->joined >= q->nranks; })) {
        embsim::report("ncclCommInitRank: rank %d of %d waited for ranks that never joined (real NCCL would hang)", rank,
                       nranks);
        return ncclInvalidUsage;
    }
    *comm = c;
    return ncclSuccess;
}

ncclResult_t ncclCommInitAll(ncclComm_t *comms, int ndev, const int *devlist)
{
    ncclUniqueId id;
    ncclGetUniqueId(&id);
    int saved;
    cudaGetDevice(&saved);
    int count;
    cudaGetDeviceCount(&count);
    ncclGroupStart();
    for (int r = 0; r < ndev; r++) {
        int dev = devlist ? devlist[r] : r;
        if (dev < 0 || dev >= count) {
            ncclGroupEnd();
            return ncclInvalidArgument;
        }
        cudaSetDevice(dev);
        ncclCommInitRank(&comms[r], ndev, id, r);
    }
    ncclGroupEnd();
    cudaSetDevice(saved);
    return ncclSuccess;
}

ncclResult_t ncclCommDestroy(ncclComm_t comm)
{
    delete comm;
    return ncclSuccess;
}

ncclResult_t ncclCommCount(const ncclComm_t comm, int *count)
{
    *count = comm->clique->nranks;
    return ncclSuccess;
}

ncclResult_t ncclCommCuDevice(const ncclComm_t comm, int *device)
{
    *device = comm->device;
    return ncclSuccess;
}

ncclResult_t ncclCommUserRank(const ncclComm_t comm, int *rank)
{
    *rank = comm->rank;
    return ncclSuccess;
}

const char *ncclGetErrorString(ncclResult_t r)
{
    switch (r) {
    case ncclSuccess: return "no error";
    case ncclInvalidArgument: return "invalid argument";
    case ncclInvalidUsage: return "invalid usage";
    default: return "unhandled error";
    }
}

ncclResult_t ncclGroupStart(void)
{
    tls_group_depth++;
    return ncclSuccess;
}

ncclResult_t ncclGroupEnd(void)
{
    if (tls_group_depth == 0)
        return ncclInvalidUsage;
    if (--tls_group_depth > 0)
        return ncclSuccess;
    /* One fused operation per stream, in the order of first use. */
    std::vector<GroupedPart> parts;
    parts.swap(tls_group_parts);
    std::vector<cudaStream_t> order;
    for (const GroupedPart &g : parts)
        if (std::find(order.begin(), order.end(), g.stream) == order.end())
            order.push_back(g.stream);
    for (cudaStream_t s : order) {
        std::vector<Part> mine;
        for (const GroupedPart &g : parts)
            if (g.stream == s)
                mine.push_back(g.part);
        enqueue_parts(s, std::move(mine), "NCCL group");
    }
    return ncclSuccess;
}

ncclResult_t ncclAllReduce(const void *send, void *recv, size_t count, ncclDataType_t dtype, ncclRedOp_t op,
                           ncclComm_t comm, cudaStream_t stream)
{
    ncclResult_t e = check_comm(comm, send, recv);
    if (e != ncclSuccess)
        return e;
    Coll *c = collective(comm, Kind::AllReduce, count, dtype, op, 0, "ncclAllReduce", &e);
    return c ? enqueue_part(comm, c, comm->rank, send, recv, stream, "ncclAllReduce") : e;
}

ncclResult_t ncclBroadcast(const void *send, void *recv, size_t count, ncclDataType_t dtype, int root, ncclComm_t comm,
                           cudaStream_t stream)
{
    if (!comm || !recv || root < 0 || root >= comm->clique->nranks || (comm->rank == root && !send))
        return ncclInvalidArgument;
    ncclResult_t e = ncclSuccess;
    Coll *c = collective(comm, Kind::Broadcast, count, dtype, ncclSum, root, "ncclBroadcast", &e);
    return c ? enqueue_part(comm, c, comm->rank, send, recv, stream, "ncclBroadcast") : e;
}

ncclResult_t ncclAllGather(const void *send, void *recv, size_t sendcount, ncclDataType_t dtype, ncclComm_t comm,
                           cudaStream_t stream)
{
    ncclResult_t e = check_comm(comm, send, recv);
    if (e != ncclSuccess)
        return e;
    Coll *c = collective(comm, Kind::AllGather, sendcount, dtype, ncclSum, 0, "ncclAllGather", &e);
    return c ? enqueue_part(comm, c, comm->rank, send, recv, stream, "ncclAllGather") : e;
}

static ncclResult_t p2p(ncclComm_t comm, int peer, bool is_send, const void *send, void *recv, size_t count,
                        ncclDataType_t dtype, cudaStream_t stream)
{
    if (!comm || peer < 0 || peer >= comm->clique->nranks)
        return ncclInvalidArgument;
    auto q = comm->clique;
    Coll *c;
    {
        std::lock_guard<std::mutex> g(q->mu);
        int src = is_send ? comm->rank : peer, dst = is_send ? peer : comm->rank;
        auto &counter = is_send ? q->sends_queued[{src, dst}] : q->recvs_queued[{src, dst}];
        auto key = std::make_tuple(src, dst, counter++);
        auto it = q->p2p.find(key);
        if (it == q->p2p.end()) {
            Coll nc;
            nc.kind = Kind::P2P;
            nc.count = count;
            nc.dtype = dtype;
            nc.nparts = 2;
            nc.queued.assign(2, false);
            nc.arrived = nc.queued;
            nc.grouped = nc.queued;
            nc.send.assign(2, nullptr);
            nc.recv.assign(2, nullptr);
            nc.streams.assign(2, nullptr);
            nc.callers.assign(2, std::thread::id());
            it = q->p2p.emplace(key, std::move(nc)).first;
        } else if (it->second.count != count || it->second.dtype != dtype) {
            embsim::report("ncclSend/ncclRecv between ranks %d and %d disagree on count or type", src, dst);
            return ncclInvalidUsage;
        }
        c = &it->second;
    }
    return enqueue_part(comm, c, is_send ? 0 : 1, send, recv, stream, is_send ? "ncclSend" : "ncclRecv");
}

ncclResult_t ncclSend(const void *send, size_t count, ncclDataType_t dtype, int peer, ncclComm_t comm, cudaStream_t stream)
{
    return p2p(comm, peer, true, send, nullptr, count, dtype, stream);
}

ncclResult_t ncclRecv(void *recv, size_t count, ncclDataType_t dtype, int peer, ncclComm_t comm, cudaStream_t stream)
{
    return p2p(comm, peer, false, nullptr, recv, count, dtype, stream);
}

} // extern "C"
