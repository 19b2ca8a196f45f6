/*
 * Sparse vector writers (bag-of-words / TF-IDF rows): .npz in scipy's CSR
 * layout (data, indices, indptr, format, shape: scipy.sparse.load_npz reads
 * it) or JSONL with one {"index": i, "vector": {"feature": value, ...}} line
 * per document. Never a dense vocabulary-wide row. Like the dense writers,
 * output goes to a temporary file renamed into place on commit.
 */
#ifndef EMBEDC_HOST_SPARSE_H
#define EMBEDC_HOST_SPARSE_H

#include <stddef.h>
#include <stdint.h>
#include "embedc.h"

typedef enum { IO_SPARSE_NPZ, IO_SPARSE_JSONL } io_sparse_format;
typedef struct io_sparse_writer io_sparse_writer;

/* From the name: .npz -> NPZ, anything else (or "-") -> JSONL; fmt_name overrides. */
int io_sparse_parse_format(const char *fmt_name, const char *path, io_sparse_format *out);
emb_status io_sparse_open(const char *path, io_sparse_format fmt, size_t n_features, io_sparse_writer **out,
                          emb_error *err);
/* The next document's row: n entries, indices ascending. */
emb_status io_sparse_write(io_sparse_writer *w, const int32_t *idx, const double *val, size_t n, emb_error *err);
emb_status io_sparse_commit(io_sparse_writer *w, emb_error *err);
void io_sparse_close(io_sparse_writer *w);   /* removes the temporary file unless committed; frees */

#endif
