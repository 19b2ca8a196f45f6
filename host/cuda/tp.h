/*
 * What the CUDA backend (cuda_backend.c) and its multi-device side (tp.c:
 * NCCL weight broadcast, tensor parallelism) tell each other. Private to
 * host/cuda; the engine only sees emb_cuda_workers_create (cuda_backend.h).
 */
#ifndef EMBEDC_HOST_CUDA_TP_H
#define EMBEDC_HOST_CUDA_TP_H

#include <stddef.h>
#include "embedc.h"
#include "kernels.h"

struct emb_backend;
struct emb_model_files;

/* The part of the model one device holds: query heads [q0, q0 + nq), KV
 * heads [kv0, kv0 + nkv), intermediate columns [i0, i0 + ni) of the
 * column-parallel matrices (QKV, the MLP's input) and the same columns of
 * the row-parallel ones (output projection, the MLP's output). Everything
 * else is whole on every device. */
typedef struct {
    int q0, nq, kv0, nkv, i0, ni;
} emb_cuda_shard;

/* A tensor-parallel group: its all-reduce over NCCL (tp.c). */
typedef struct emb_cuda_tp emb_cuda_tp;

typedef struct {
    emb_dtype dtype;
    int device;
    size_t max_batch_tokens;      /* 0 = default */
    emb_cuda_shard shard;         /* nq == 0: the whole model */
    emb_cuda_tp *tp;              /* the group's all-reduce, NULL without tensor parallelism */
    int tp_rank, tp_size;
    int weights_later;            /* leave the weight block empty: it is broadcast into */
} emb_cuda_options;

emb_status emb_cuda_backend_create_opts(const struct emb_model_files *mf, const emb_cuda_options *o,
                                        struct emb_backend **out, emb_error *err);

/* The device weight block of a CUDA backend, its device and copy stream
 * (a cudaStream_t). */
void *emb_cuda_weight_block(struct emb_backend *be, size_t *size, int *device, void **stream);

/* The chunking budget of a backend, and lowering it (tensor-parallel ranks
 * must cut batches alike). */
void emb_cuda_budget(struct emb_backend *be, size_t *tokens, int *seqs, size_t *pool_floats);
void emb_cuda_clamp_budget(struct emb_backend *be, size_t tokens, int seqs, size_t pool_floats);

/* Sums buf (n elements of dt, this rank's partial result of a row-parallel
 * matrix) over the group, on `stream`; every rank calls it in the same
 * order. Fails without entering NCCL when another rank has failed. */
emb_status emb_cuda_tp_allreduce(emb_cuda_tp *g, int rank, void *buf, size_t n, emb_kdtype dt, void *stream,
                                 emb_error *err);

#endif
