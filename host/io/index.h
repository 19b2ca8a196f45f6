/*
 * Building a FAISS index from a stream of vectors (embedc encode --index,
 * embedc index). Vectors arrive in input order; an index that needs training
 * (IVF, PQ, OPQ...) is trained on a reservoir sample drawn from the stream
 * (or on a given training matrix) and the vectors are spooled to a temporary
 * file until then; an index that needs none takes them as they come. The
 * finished index is written to a temporary file beside the destination and
 * renamed into place, like every embedc output.
 */
#ifndef EMBEDC_HOST_INDEX_H
#define EMBEDC_HOST_INDEX_H

#include <stdint.h>
#include "embedc.h"
#include "faiss_shim.h"

typedef struct {
    const char *spec;          /* index_factory string */
    fx_metric metric;
    int custom_ids;            /* ids other than 0..n-1 will be given */
    const float *train;        /* training matrix (dim columns) or NULL: reservoir sample */
    uint64_t train_rows;
    uint64_t train_size;       /* reservoir size; 0 = from the spec (fx_train_size) */
    uint64_t seed;             /* reservoir sampling seed */
    int no_spool;              /* the caller re-supplies all vectors to ix_builder_finish */
    int verbose;
} ix_build_options;

typedef struct ix_builder ix_builder;

/* path NULL: build in memory only (ix_builder_finish writes nothing). */
emb_status ix_builder_open(const char *path, int dim, const ix_build_options *o, ix_builder **out,
                           emb_error *err);
/* n vectors (rows first..first+n-1); ids NULL for the document index. */
emb_status ix_builder_add(ix_builder *b, uint64_t first, uint64_t n, const float *vecs,
                          const int64_t *ids, emb_error *err);
/* Trains (if needed), adds spooled vectors (or all/ids when no_spool) and
 * writes the index into place. */
emb_status ix_builder_finish(ix_builder *b, const float *all, const int64_t *all_ids, emb_error *err);
/* The index being built (owned by b), and how many vectors trained it. */
fx_index *ix_builder_index(ix_builder *b);
uint64_t ix_builder_train_rows(const ix_builder *b);
/* Removes temporary files when not finished. Frees b. */
void ix_builder_close(ix_builder *b);

/* Writes ix to path atomically (temporary file, fsync, rename). */
emb_status ix_write_atomic(const fx_index *ix, const char *path, emb_error *err);

#endif
