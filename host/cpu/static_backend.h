/*
 * The gather-and-pool backend for static embedding tables (word vectors,
 * model2vec, StaticEmbedding): it fills the same emb_backend table as the
 * transformer backends, so static models run through the engine's reader,
 * tokenizer pool, batcher and ordered writer unchanged.
 */
#ifndef EMBEDC_HOST_STATIC_BACKEND_H
#define EMBEDC_HOST_STATIC_BACKEND_H

#include "backend.h"
#include "static_vectors.h"

/* sv must outlive the backend. threads <= 0: all cores. */
emb_status emb_static_backend_create(const emb_static_vectors *sv, int threads, emb_backend **out,
                                     emb_error *err);

/* Pools one sequence of n ids (rows of sv, or token ids through mapping and
 * weights) into out[dim * popcount(modes)]: mean, max and sum over words,
 * concatenated in EMB_POOL_* bit order. groups (NULL = all 1): a word is
 * groups[t] consecutive ids starting at t, its vector their mean (fastText
 * subwords). An empty sequence gives zeros. This is the CPU twin of the GPU
 * gather-and-pool kernel. */
void emb_static_pool(const emb_static_vectors *sv, const int32_t *ids, const int32_t *groups, int n, int modes,
                     float *out);

#endif
