/*
 * Static models on the GPU: the table (with model2vec's mapping and weights)
 * is uploaded once as fp32; each encode copies the packed ids and cu_seqlens
 * in, runs the one gather-and-pool kernel (kernels/static_pool.cu) and copies
 * the finished vectors back. Synchronous on the default stream: the gather
 * is memory-bound and small next to tokenizing the same documents.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cuda_runtime_api.h>

#include "backend.h"
#include "cuda_backend.h"
#include "error.h"
#include "kernels.h"
#include "static_vectors.h"

typedef struct {
    const emb_static_vectors *sv;
    int device;
    float *table, *weights, *out;
    int32_t *mapping, *ids, *groups, *cu;
    size_t cap_ids, cap_groups, cap_cu, cap_out;   /* elements */
} sc_ctx;

static emb_status sc_fail(emb_error *err, cudaError_t e, const char *what) {
    cudaGetLastError();
    return emb_fail(err, e == cudaErrorMemoryAllocation ? EMB_ERR_DEVICE_OOM : EMB_ERR_DEVICE,
                    "CUDA (static model): %s: %s (%s)", what, cudaGetErrorString(e), cudaGetErrorName(e));
}

/* Grows a device buffer of elem-byte elements to hold n. */
static cudaError_t ensure(void **buf, size_t *cap, size_t n, size_t elem) {
    if (n <= *cap) return cudaSuccess;
    size_t c = *cap ? *cap : 4096;
    while (c < n) c *= 2;
    cudaFree(*buf);
    *buf = NULL;
    *cap = 0;
    cudaError_t e = cudaMalloc(buf, c * elem);
    if (e == cudaSuccess) *cap = c;
    return e;
}

static emb_status sc_encode(emb_backend *be, const emb_batch *b, const emb_job *job, float *out, emb_error *err) {
    sc_ctx *c = be->ctx;
    const emb_static_vectors *sv = c->sv;
    if (b->skip) return emb_fail(err, EMB_ERR_UNSUPPORTED, "static models take no prompt to skip");
    for (int i = 0; i < b->total; i++)
        if (b->ids[i] < 0 || (size_t)b->ids[i] >= sv->n_ids)
            return emb_fail(err, EMB_ERR_INTERNAL, "token id %d outside the table's %zu ids", b->ids[i], sv->n_ids);
    if (b->nseq == 0) return EMB_OK;
    cudaError_t e = cudaSetDevice(c->device);
    if (e == cudaSuccess) e = ensure((void **)&c->ids, &c->cap_ids, b->total ? (size_t)b->total : 1, 4);
    if (e == cudaSuccess) e = ensure((void **)&c->groups, &c->cap_groups, b->total ? (size_t)b->total : 1, 4);
    if (e == cudaSuccess) e = ensure((void **)&c->cu, &c->cap_cu, (size_t)b->nseq + 1, 4);
    if (e == cudaSuccess) e = ensure((void **)&c->out, &c->cap_out, (size_t)b->nseq * job->out_dim, 4);
    if (e != cudaSuccess) return sc_fail(err, e, "allocating batch buffers");
    if (b->total) e = cudaMemcpy(c->ids, b->ids, (size_t)b->total * 4, cudaMemcpyHostToDevice);
    if (e == cudaSuccess && b->total && b->type_ids)
        e = cudaMemcpy(c->groups, b->type_ids, (size_t)b->total * 4, cudaMemcpyHostToDevice);
    if (e == cudaSuccess) e = cudaMemcpy(c->cu, b->cu_seqlens, ((size_t)b->nseq + 1) * 4, cudaMemcpyHostToDevice);
    if (e == cudaSuccess)
        e = emb_launch_static_pool(c->out, c->table, sv->dim, c->ids, b->type_ids ? c->groups : NULL, c->cu,
                                   b->nseq, c->mapping, c->weights,
                                   job->pooling_modes, job->out_dim, job->normalize, 0);
    if (e == cudaSuccess)
        e = cudaMemcpy(out, c->out, (size_t)b->nseq * job->out_dim * sizeof(float), cudaMemcpyDeviceToHost);
    return e == cudaSuccess ? EMB_OK : sc_fail(err, e, "gather-and-pool");
}

static void sc_destroy(emb_backend *be) {
    if (!be) return;
    sc_ctx *c = be->ctx;
    if (c) {
        cudaSetDevice(c->device);
        cudaFree(c->table);
        cudaFree(c->weights);
        cudaFree(c->mapping);
        cudaFree(c->ids);
        cudaFree(c->groups);
        cudaFree(c->cu);
        cudaFree(c->out);
        free(c);
    }
    free(be);
}

static cudaError_t upload(void **dst, const void *src, size_t bytes) {
    cudaError_t e = cudaMalloc(dst, bytes);
    if (e == cudaSuccess) e = cudaMemcpy(*dst, src, bytes, cudaMemcpyHostToDevice);
    return e;
}

emb_status emb_cuda_static_backend_create(const emb_static_vectors *sv, int device, emb_backend **out,
                                          emb_error *err) {
    char why[256];
    emb_status st = emb_cuda_device_usable(device, why, sizeof why);
    if (st != EMB_OK) return emb_fail(err, st, "CUDA device %d: %s", device, why);
    emb_backend *be = calloc(1, sizeof *be);
    sc_ctx *c = calloc(1, sizeof *c);
    if (!be || !c) {
        free(be);
        free(c);
        return emb_fail(err, EMB_ERR_NOMEM, "out of memory");
    }
    c->sv = sv;
    c->device = device;
    be->name = "cuda-static";
    be->compute_dtype = EMB_DTYPE_F32;
    be->ctx = c;
    be->chunks_internally = 1;
    be->encode = sc_encode;
    be->destroy = sc_destroy;
    cudaError_t e = cudaSetDevice(device);
    if (e == cudaSuccess) e = upload((void **)&c->table, sv->vecs, sv->rows * (size_t)sv->dim * sizeof(float));
    if (e == cudaSuccess && sv->mapping) e = upload((void **)&c->mapping, sv->mapping, sv->n_ids * sizeof(int32_t));
    if (e == cudaSuccess && sv->weights) e = upload((void **)&c->weights, sv->weights, sv->n_ids * sizeof(float));
    if (e != cudaSuccess) {
        st = sc_fail(err, e, "uploading the table");
        sc_destroy(be);
        return st;
    }
    *out = be;
    return EMB_OK;
}
