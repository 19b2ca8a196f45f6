/*
 * A small C interface over FAISS (C++). Debian's libfaiss-dev ships the
 * headers of FAISS's C API but not libfaiss_c, so host/io/faiss_shim.cpp
 * implements these functions over the C++ API (the only C++ in host/).
 * Without FAISS at build time, host/io/index.c provides them as stubs that
 * fail with EMB_ERR_UNSUPPORTED, so the library and CLI never depend on it.
 * Every function returns an emb_status and fills err (FAISS's exception text
 * included) on failure; nothing here throws or aborts.
 */
#ifndef EMBEDC_HOST_FAISS_SHIM_H
#define EMBEDC_HOST_FAISS_SHIM_H

#include <stdint.h>
#include <stdio.h>
#include "embedc.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fx_index fx_index;

typedef enum { FX_METRIC_IP = 0, FX_METRIC_L2 = 1 } fx_metric;

/* 1 when FAISS was compiled in, else 0; version text ("1.7.3" or "none"). */
int fx_available(void);
const char *fx_version(void);

/* index_factory(dim, spec, metric). custom_ids: ids other than 0..n-1 will be
 * added; an index that cannot store ids itself is wrapped in an IDMap2. */
emb_status fx_create(int dim, const char *spec, fx_metric metric, int custom_ids, fx_index **out,
                     emb_error *err);
/* Training-set size the spec wants (target) and the fewest vectors it can
 * train on at all (minimum); both 0 when the index needs no training. */
void fx_train_size(const fx_index *ix, uint64_t *target, uint64_t *minimum);
int fx_is_trained(const fx_index *ix);
emb_status fx_train(fx_index *ix, uint64_t n, const float *x, emb_error *err);
/* ids NULL: the index's own sequential ids. */
emb_status fx_add(fx_index *ix, uint64_t n, const float *x, const int64_t *ids, emb_error *err);
/* Sets a search parameter by name ("nprobe", "efSearch", ...). */
emb_status fx_set_param(fx_index *ix, const char *name, double value, emb_error *err);
/* labels/distances: n * k each; missing results have label -1. */
emb_status fx_search(const fx_index *ix, uint64_t n, const float *x, int k, float *distances,
                     int64_t *labels, emb_error *err);
emb_status fx_write(const fx_index *ix, FILE *f, const char *name, emb_error *err);
emb_status fx_read(const char *path, fx_index **out, emb_error *err);
int fx_dim(const fx_index *ix);
uint64_t fx_ntotal(const fx_index *ix);
fx_metric fx_get_metric(const fx_index *ix);
void fx_free(fx_index *ix);

#ifdef __cplusplus
}
#endif
#endif
