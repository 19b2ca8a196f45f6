/*
 * The table of function pointers every compute backend fills (cpu, cuda).
 * The engine hands a backend packed batches and gets finished vectors back:
 * encoder forward, pooling, Dense modules, truncation and normalization all
 * happen inside the backend so a GPU backend never round-trips hidden states.
 */
#ifndef EMBEDC_HOST_BACKEND_H
#define EMBEDC_HOST_BACKEND_H

#include <stddef.h>
#include <stdint.h>
#include "embedc.h"
#include "model.h"

/* A packed batch: nseq sequences, tokens concatenated (no padding). */
typedef struct {
    const int32_t *ids;          /* [total] */
    const int32_t *type_ids;     /* [total] */
    const int32_t *cu_seqlens;   /* [nseq + 1], cu_seqlens[0] == 0 */
    const int32_t *skip;         /* [nseq] leading tokens excluded from pooling, or NULL */
    int nseq;
    int total;                   /* cu_seqlens[nseq] */
    int max_seqlen;
} emb_batch;

/* What to compute for each sequence of a batch. */
typedef struct {
    int pooling_modes;   /* EMB_POOL_* bits */
    int layer;           /* number of encoder layers to run (1..cfg.layers) */
    int apply_dense;     /* run the model's Dense modules */
    int normalize;       /* L2-normalize the final vector (after truncation) */
    int truncate_dim;    /* 0 = keep all */
    int out_dim;         /* resulting width of each output row */
} emb_job;

typedef struct emb_backend emb_backend;
struct emb_backend {
    const char *name;
    void *ctx;
    /* encode() takes batches of any size and cuts them into device-sized,
     * pipelined chunks itself (the next chunk's upload overlapping this
     * chunk's compute): the engine then hands it a whole sorted window. */
    int chunks_internally;
    /* Dense fp16/bf16 tensor-core peak of the device in FLOP/s (0 unknown),
     * for MFU figures. */
    double peak_flops;
    /* What the backend computes in (F32 on the CPU; F16 or BF16 on a GPU),
     * and one line the engine shows once after creating it (empty: none),
     * e.g. why f16 was switched to bf16. Backends never print. */
    emb_dtype compute_dtype;
    char notice[256];
    /* out: [nseq, job->out_dim] floats on the host. */
    emb_status (*encode)(emb_backend *be, const emb_batch *b, const emb_job *job,
                         float *out, emb_error *err);
    /* hidden states of the last computed layer, [total, hidden] (CPU backend
     * and tests); may be NULL for backends that keep them on the device. */
    emb_status (*token_embeddings)(emb_backend *be, const emb_batch *b, int layer,
                                   float *out, emb_error *err);
    /* One line on how the backend has run its work so far, for `embedc
     * bench` and `embedc encode`'s summary (e.g. the CUDA backend's graph
     * counts); empty when it has nothing to say. May be NULL. */
    void (*run_note)(emb_backend *be, char *buf, size_t cap);
    void (*destroy)(emb_backend *be);
};

struct emb_model_files;
emb_status emb_cpu_backend_create(const struct emb_model_files *mf, int threads,
                                  emb_backend **out, emb_error *err);
#ifdef EMBEDC_HAVE_CUDA_BACKEND
emb_status emb_cuda_backend_create(const struct emb_model_files *mf, emb_dtype dtype,
                                   int device, size_t max_batch_tokens,
                                   emb_backend **out, emb_error *err);
#endif

#endif
