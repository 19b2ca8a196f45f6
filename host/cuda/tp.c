/*
 * Several GPUs for one model (DESIGN §9): the device workers of --devices,
 * their weights read and converted once and broadcast by NCCL, and
 * --tensor-parallel N, Megatron-style. A tensor-parallel group of N devices
 * holds one copy of the model: each rank has its share of the query heads
 * (and of the KV heads when there are at least N, else the KV head its
 * queries use) and of the MLP's intermediate columns, so QKV and the MLP's
 * input are column-parallel, the output projection and the MLP's output
 * row-parallel, followed by an all-reduce (sum) before the bias and the
 * residual; embeddings, norms, pooling and Dense are whole on every rank.
 * The group is one device worker for the engine: its encode runs every rank
 * on a thread of its own over the same batch (each rank's forward is the
 * CUDA backend's, with the all-reduce hook), and rank 0's vectors are the
 * answer. Data-parallel replicas (devices / N groups) fill the other GPUs.
 * A rank that fails releases the others from the next all-reduce (a host
 * barrier before each one), so a dead device ends the job with its own
 * error instead of a hang.
 */
#include "tp.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>
#ifdef EMBEDC_HAVE_NCCL
#include <nccl.h>
#endif

#include "backend.h"
#include "cuda_backend.h"
#include "error.h"
#include "model_files.h"

struct emb_cuda_tp {
    int n, hidden;
    int device[EMB_MAX_DEVICES];
    emb_backend *rank[EMB_MAX_DEVICES];
#ifdef EMBEDC_HAVE_NCCL
    ncclComm_t comm[EMB_MAX_DEVICES];
#endif
    /* The barrier before each all-reduce; `failed` releases it. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int arrived, failed, first_failed, dead;
    unsigned long gen;
    /* Rows of ranks > 0 (the same vectors as rank 0's). */
    float *scratch;
    size_t scratch_n;
};

/* ---- shards ---------------------------------------------------------------- */

static emb_status deal_shard(const emb_recipe *r, int rank, int n, emb_cuda_shard *s, emb_error *err) {
    const char *what = r->family ? r->family : r->model_type;
    if (r->heads % n)
        return emb_fail(err, EMB_ERR_INVALID_ARG,
                        "--tensor-parallel %d: %s has %d attention heads, not a multiple of %d", n, what,
                        r->heads, n);
    if (r->intermediate % n)
        return emb_fail(err, EMB_ERR_INVALID_ARG,
                        "--tensor-parallel %d: %s's MLP has %d intermediate columns, not a multiple of %d", n,
                        what, r->intermediate, n);
    if (r->kv_heads >= n ? r->kv_heads % n : n % r->kv_heads)
        return emb_fail(err, EMB_ERR_INVALID_ARG,
                        "--tensor-parallel %d: %s's %d KV heads can be neither split nor replicated over %d "
                        "devices", n, what, r->kv_heads, n);
    s->nq = r->heads / n;
    s->q0 = rank * s->nq;
    if (r->kv_heads >= n) {
        s->nkv = r->kv_heads / n;
        s->kv0 = rank * s->nkv;
    } else {   /* fewer KV heads than ranks: each rank keeps the one its queries read */
        s->nkv = 1;
        s->kv0 = s->q0 / (r->heads / r->kv_heads);
    }
    s->ni = r->intermediate / n;
    s->i0 = rank * s->ni;
    return EMB_OK;
}

/* ---- the group's all-reduce -------------------------------------------------- */

static void group_fail(emb_cuda_tp *g, int rank) {
    pthread_mutex_lock(&g->mu);
    if (!g->failed) g->first_failed = rank;
    g->failed = 1;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

/* 0 when every rank arrived, -1 when one failed instead. */
static int group_barrier(emb_cuda_tp *g) {
    pthread_mutex_lock(&g->mu);
    int ok = !g->failed;
    if (ok) {
        const unsigned long gen = g->gen;
        if (++g->arrived == g->n) {
            g->arrived = 0;
            g->gen++;
            pthread_cond_broadcast(&g->cv);
        } else {
            while (gen == g->gen && !g->failed) pthread_cond_wait(&g->cv, &g->mu);
            ok = gen != g->gen;
        }
    }
    pthread_mutex_unlock(&g->mu);
    return ok ? 0 : -1;
}

emb_status emb_cuda_tp_allreduce(emb_cuda_tp *g, int rank, void *buf, size_t n, emb_kdtype dt, void *stream,
                                 emb_error *err) {
    if (group_barrier(g))
        return emb_fail(err, EMB_ERR_DEVICE, "tensor-parallel rank %d: another rank failed", rank);
#ifdef EMBEDC_HAVE_NCCL
    ncclResult_t e = ncclAllReduce(buf, buf, n, dt == EMB_KDT_BF16 ? ncclBfloat16 : ncclFloat16, ncclSum,
                                   g->comm[rank], (cudaStream_t)stream);
    if (e != ncclSuccess)
        return emb_fail(err, EMB_ERR_DEVICE, "NCCL: ncclAllReduce failed on device %d: %s", g->device[rank],
                        ncclGetErrorString(e));
    return EMB_OK;
#else
    (void)buf, (void)n, (void)dt, (void)stream;
    return emb_fail(err, EMB_ERR_UNSUPPORTED, "tensor parallelism needs NCCL");
#endif
}

/* ---- the group as one device worker ------------------------------------------ */

typedef struct {
    emb_cuda_tp *g;
    int r;
    const emb_batch *b;
    const emb_job *job;   /* NULL: token embeddings of `layer` */
    int layer;
    float *out;
    emb_status st;
    emb_error err;
} rank_task;

static void *rank_main(void *arg) {
    rank_task *t = arg;
    emb_backend *be = t->g->rank[t->r];
    t->st = t->job ? be->encode(be, t->b, t->job, t->out, &t->err)
                   : be->token_embeddings(be, t->b, t->layer, t->out, &t->err);
    if (t->st) group_fail(t->g, t->r);
    return NULL;
}

/* Runs every rank over the same batch; rank 0 writes `out` (rows floats per
 * rank), the others scratch rows. */
static emb_status run_group(emb_cuda_tp *g, const emb_batch *b, const emb_job *job, int layer, float *out,
                            size_t rows, emb_error *err) {
    if (g->dead)
        return emb_fail(err, EMB_ERR_DEVICE, "tensor-parallel group of device %d failed earlier", g->device[0]);
    if (rows > g->scratch_n) {
        float *s = realloc(g->scratch, rows * (size_t)(g->n - 1) * sizeof *s);
        if (!s) return emb_fail(err, EMB_ERR_NOMEM, "tensor parallelism: out of host memory");
        g->scratch = s;
        g->scratch_n = rows;
    }
    rank_task task[EMB_MAX_DEVICES];
    pthread_t th[EMB_MAX_DEVICES];
    int started[EMB_MAX_DEVICES] = {0};
    for (int r = 0; r < g->n; r++) {
        task[r] = (rank_task){g, r, b, job, layer, r ? g->scratch + (size_t)(r - 1) * rows : out, EMB_OK, {0}};
        if (r && pthread_create(&th[r], NULL, rank_main, &task[r]) != 0) {
            /* Ranks must run at once (they meet at every all-reduce). */
            group_fail(g, r);
            task[r].st = emb_fail(&task[r].err, EMB_ERR_INTERNAL, "tensor parallelism: no thread for rank %d", r);
        } else if (r) {
            started[r] = 1;
        }
    }
    rank_main(&task[0]);
    for (int r = 1; r < g->n; r++)
        if (started[r]) pthread_join(th[r], NULL);
    if (!g->failed) return EMB_OK;
    g->dead = 1;   /* the ranks' collectives are out of step now */
    const int f = g->first_failed;
    if (err) *err = task[f].err;
    return emb_fail_prefix(err, "device %d (tensor-parallel rank %d of %d)", g->device[f], f, g->n);
}

static emb_status group_encode(emb_backend *be, const emb_batch *b, const emb_job *job, float *out,
                               emb_error *err) {
    return run_group(be->ctx, b, job, 0, out, (size_t)b->nseq * (size_t)job->out_dim, err);
}

static emb_status group_token_embeddings(emb_backend *be, const emb_batch *b, int layer, float *out,
                                         emb_error *err) {
    emb_cuda_tp *g = be->ctx;
    return run_group(g, b, NULL, layer, out, (size_t)b->total * (size_t)g->hidden, err);
}

static void group_free(emb_cuda_tp *g) {
    if (!g) return;
    for (int r = 0; r < g->n; r++) {
        if (g->rank[r]) g->rank[r]->destroy(g->rank[r]);
#ifdef EMBEDC_HAVE_NCCL
        if (g->comm[r]) ncclCommDestroy(g->comm[r]);
#endif
    }
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
    free(g->scratch);
    free(g);
}

static void group_destroy(emb_backend *be) {
    if (!be) return;
    group_free(be->ctx);
    free(be);
}

/* ---- creation -------------------------------------------------------------- */

#ifdef EMBEDC_HAVE_NCCL
static emb_status nccl_fail(emb_error *err, ncclResult_t e, const char *call) {
    return emb_fail(err, EMB_ERR_DEVICE, "NCCL: %s failed: %s", call, ncclGetErrorString(e));
}
#endif

/* The ranks of a tensor-parallel group over devices ids[0..n) and the
 * group's communicator; weights_later as for emb_cuda_backend_create_opts. */
static emb_status group_create(const emb_model_files *mf, emb_dtype dtype, const int *ids, int n, size_t tokens,
                               int weights_later, emb_backend **out, emb_error *err) {
    *out = NULL;
#ifndef EMBEDC_HAVE_NCCL
    (void)mf, (void)dtype, (void)ids, (void)tokens, (void)weights_later;
    return emb_fail(err, EMB_ERR_UNSUPPORTED, "--tensor-parallel %d: this build of embedc has no NCCL", n);
#else
    emb_cuda_tp *g = calloc(1, sizeof *g);
    emb_backend *be = calloc(1, sizeof *be);
    if (!g || !be) {
        free(g);
        free(be);
        return emb_fail(err, EMB_ERR_NOMEM, "tensor parallelism: out of host memory");
    }
    g->n = n;
    g->hidden = mf->r.hidden;
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    memcpy(g->device, ids, (size_t)n * sizeof *ids);
    be->name = "cuda";
    be->ctx = g;
    be->chunks_internally = 1;
    be->encode = group_encode;
    be->token_embeddings = group_token_embeddings;
    be->destroy = group_destroy;
    emb_status st = EMB_OK;
    ncclResult_t ne = ncclCommInitAll(g->comm, n, ids);
    if (ne != ncclSuccess) {
        memset(g->comm, 0, sizeof g->comm);
        st = nccl_fail(err, ne, "ncclCommInitAll (tensor-parallel group)");
    }
    for (int r = 0; r < n && st == EMB_OK; r++) {
        emb_cuda_options o = {.dtype = dtype, .device = ids[r], .max_batch_tokens = tokens, .tp = g,
                              .tp_rank = r, .tp_size = n, .weights_later = weights_later};
        if ((st = deal_shard(&mf->r, r, n, &o.shard, err))) break;
        st = emb_cuda_backend_create_opts(mf, &o, &g->rank[r], err);
        if (st) emb_fail_prefix(err, "device %d (tensor-parallel rank %d of %d)", ids[r], r, n);
        else be->peak_flops += g->rank[r]->peak_flops;
    }
    if (st) {
        group_destroy(be);
        return st;
    }
    /* Every rank cuts batches alike (the smallest budget of the group). */
    size_t tok, pool;
    int seqs;
    emb_cuda_budget(g->rank[0], &tok, &seqs, &pool);
    for (int r = 1; r < n; r++) {
        size_t t2, p2;
        int s2;
        emb_cuda_budget(g->rank[r], &t2, &s2, &p2);
        if (t2 < tok) tok = t2;
        if (s2 < seqs) seqs = s2;
        if (p2 < pool) pool = p2;
    }
    for (int r = 0; r < n; r++) emb_cuda_clamp_budget(g->rank[r], tok, seqs, pool);
    *out = be;
    return EMB_OK;
#endif
}

/* The device backends behind worker w (itself, or its group's ranks). */
static int worker_ranks(emb_backend *w, int tp, emb_backend **ranks) {
    if (tp <= 1) {
        ranks[0] = w;
        return 1;
    }
    emb_cuda_tp *g = w->ctx;
    memcpy(ranks, g->rank, (size_t)g->n * sizeof *ranks);
    return g->n;
}

/* EMBEDC_DEBUG_WEIGHTS: reads each broadcast block back and compares it with
 * its source's, byte for byte (a test hook; costs a copy of every block). */
static emb_status compare_blocks(emb_backend *src, emb_backend *dst, emb_error *err) {
    size_t n, n2;
    int d0, d1;
    void *s0, *s1;
    const unsigned char *a = emb_cuda_weight_block(src, &n, &d0, &s0);
    const unsigned char *b = emb_cuda_weight_block(dst, &n2, &d1, &s1);
    const size_t chunk = (size_t)16 << 20;
    unsigned char *ha = malloc(chunk), *hb = malloc(chunk);
    emb_status st = EMB_OK;
    size_t diff = n == n2 ? (size_t)-1 : 0;
    for (size_t off = 0; off < n && n == n2 && ha && hb && diff == (size_t)-1; off += chunk) {
        const size_t k = n - off < chunk ? n - off : chunk;
        cudaError_t e = cudaSetDevice(d0);
        if (e == cudaSuccess) e = cudaMemcpy(ha, a + off, k, cudaMemcpyDeviceToHost);
        if (e == cudaSuccess) e = cudaSetDevice(d1);
        if (e == cudaSuccess) e = cudaMemcpy(hb, b + off, k, cudaMemcpyDeviceToHost);
        if (e != cudaSuccess) {
            st = emb_fail(err, EMB_ERR_DEVICE, "CUDA: reading weights back: %s", cudaGetErrorString(e));
            break;
        }
        for (size_t i = 0; i < k; i++)
            if (ha[i] != hb[i]) {
                diff = off + i;
                break;
            }
    }
    if (!ha || !hb) st = emb_fail(err, EMB_ERR_NOMEM, "out of host memory");
    if (st == EMB_OK) {
        if (diff == (size_t)-1)
            fprintf(stderr, "embedc: device %d: weights (%zu bytes) by NCCL broadcast, identical to device %d's\n",
                    d1, n2, d0);
        else
            fprintf(stderr, "embedc: device %d: weights differ from device %d's at byte %zu\n", d1, d0, diff);
    }
    free(ha);
    free(hb);
    return st;
}

/* Worker 0's blocks (converted from the files) into every other worker's
 * (left empty), rank by rank: one communicator per tensor-parallel rank over
 * the workers' devices of that rank, one broadcast in a group call. */
static emb_status broadcast_weights(emb_backend **workers, int nw, int tp, emb_error *err) {
#ifdef EMBEDC_HAVE_NCCL
    const int nr = tp > 1 ? tp : 1;
    emb_status st = EMB_OK;
    for (int r = 0; r < nr && st == EMB_OK; r++) {
        emb_backend *be[EMB_MAX_DEVICES];
        int devs[EMB_MAX_DEVICES];
        void *block[EMB_MAX_DEVICES], *stream[EMB_MAX_DEVICES];
        size_t size[EMB_MAX_DEVICES];
        for (int w = 0; w < nw; w++) {
            emb_backend *ranks[EMB_MAX_DEVICES];
            worker_ranks(workers[w], tp, ranks);
            be[w] = ranks[r];
            block[w] = emb_cuda_weight_block(be[w], &size[w], &devs[w], &stream[w]);
        }
        ncclComm_t comm[EMB_MAX_DEVICES] = {0};
        ncclResult_t ne = ncclCommInitAll(comm, nw, devs);
        if (ne != ncclSuccess) return nccl_fail(err, ne, "ncclCommInitAll (weight broadcast)");
        ncclGroupStart();
        for (int w = 0; w < nw && ne == ncclSuccess; w++)
            ne = ncclBroadcast(block[0], block[w], size[0], ncclUint8, 0, comm[w], (cudaStream_t)stream[w]);
        ncclResult_t ge = ncclGroupEnd();
        if (ne == ncclSuccess) ne = ge;
        if (ne != ncclSuccess) st = nccl_fail(err, ne, "ncclBroadcast (weights)");
        for (int w = 0; w < nw; w++) {
            cudaError_t e = cudaSetDevice(devs[w]);
            if (e == cudaSuccess) e = cudaStreamSynchronize((cudaStream_t)stream[w]);
            if (e != cudaSuccess && st == EMB_OK)
                st = emb_fail(err, EMB_ERR_DEVICE, "CUDA: device %d: weight broadcast: %s", devs[w],
                              cudaGetErrorString(e));
        }
        for (int w = 0; w < nw; w++) ncclCommDestroy(comm[w]);
        if (getenv("EMBEDC_DEBUG_WEIGHTS"))
            for (int w = 1; w < nw && st == EMB_OK; w++) st = compare_blocks(be[0], be[w], err);
    }
    return st;
#else
    (void)workers, (void)nw, (void)tp;
    return emb_fail(err, EMB_ERR_INTERNAL, "weight broadcast without NCCL");
#endif
}

emb_status emb_cuda_workers_create(const emb_model_files *mf, emb_dtype dtype, const int *ids, int n, int tp,
                                   size_t tokens, emb_backend **workers, int *nworkers, emb_error *err) {
    *nworkers = 0;
    if (tp < 1) tp = 1;
    if (n % tp)
        return emb_fail(err, EMB_ERR_INVALID_ARG,
                        "--tensor-parallel %d: %d device%s cannot be split into groups of %d", tp, n,
                        n == 1 ? "" : "s", tp);
    const int nw = n / tp;
#ifdef EMBEDC_HAVE_NCCL
    const int bcast = nw > 1;   /* converted once, on the first worker's devices */
#else
    const int bcast = 0;
#endif
    emb_status st = EMB_OK;
    for (int w = 0; w < nw && st == EMB_OK; w++) {
        const int later = bcast && w > 0;
        if (tp > 1) {
            st = group_create(mf, dtype, ids + (size_t)w * tp, tp, tokens, later, &workers[w], err);
        } else {
            emb_cuda_options o = {.dtype = dtype, .device = ids[w], .max_batch_tokens = tokens,
                                  .weights_later = later};
            st = emb_cuda_backend_create_opts(mf, &o, &workers[w], err);
            if (st && w > 0) emb_fail_prefix(err, "device %d", ids[w]);
        }
        if (st == EMB_OK) *nworkers = w + 1;
    }
    if (st == EMB_OK && bcast) st = broadcast_weights(workers, nw, tp, err);
    if (st != EMB_OK) {
        for (int w = 0; w < *nworkers; w++) workers[w]->destroy(workers[w]);
        *nworkers = 0;
    }
    return st;
}
