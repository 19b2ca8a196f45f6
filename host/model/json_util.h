/*
 * Small cJSON helpers shared by the model-file loaders: reading a JSON file
 * with a message that names it, typed field access that reports the file and
 * field on a wrong type, and duplicate-key detection (cJSON keeps duplicates
 * silently, and the lookup would then pick whichever comes first).
 */
#ifndef EMBEDC_HOST_JSON_UTIL_H
#define EMBEDC_HOST_JSON_UTIL_H

#include <cjson/cJSON.h>
#include <stdint.h>
#include "embedc.h"

/* Size limits on model files read whole into memory (README, "Any model").
 * tokenizer.json: the largest real ones (Gemma 3, XLM-R) are 17-33 MB. */
#define EMB_MAX_CONFIG_JSON_BYTES ((uint64_t)16 << 20)
#define EMB_MAX_TOKENIZER_JSON_BYTES ((uint64_t)128 << 20)

/* Opens path for reading and checks, on the open descriptor and before any
 * read, that it is a regular file (after following symlinks) of at most
 * limit bytes (0 = no limit). Opened with O_NONBLOCK so that a FIFO never
 * blocks. On success *fd_out is a blocking descriptor the caller closes. */
emb_status ju_open_regular(const char *path, const char *shown, uint64_t limit, int *fd_out,
                           uint64_t *size_out, emb_error *err);

/* ju_open_regular, then reads the whole file into *out (malloc'ed,
 * NUL-terminated, *len_out bytes). The one way model files are read. */
emb_status ju_read_bytes(const char *path, const char *shown, uint64_t limit, char **out,
                         size_t *len_out, emb_error *err);

/* Reads and parses a whole JSON file (ju_read_bytes, EMB_MAX_CONFIG_JSON_BYTES). Missing file: EMB_ERR_IO. shown names
 * the file in messages (e.g. "1_Pooling/config.json"). */
emb_status ju_read_file(const char *path, const char *shown, cJSON **out, emb_error *err);

/* Name of a key that occurs twice among obj's direct children, or NULL.
 * Sorts a temporary index, so it is O(n log n) for headers with many tensors;
 * *oom is set when that index cannot be allocated. */
const char *ju_duplicate_key(const cJSON *obj, int *oom);

/* Exact double -> integer check: finite, integral, within [lo, hi]. */
int ju_is_int_in(const cJSON *v, double lo, double hi);

/* Optional typed fields. Return EMB_OK and leave *out unchanged when the key
 * is absent (or JSON null when allow_null); EMB_ERR_FORMAT naming shown/key
 * on a wrong type or out-of-range value. *present (may be NULL) says whether
 * a value was read. */
emb_status ju_get_int(const cJSON *obj, const char *key, const char *shown, int lo, int hi,
                      int *out, int *present, emb_error *err);
emb_status ju_get_bool(const cJSON *obj, const char *key, const char *shown, int *out,
                       int *present, emb_error *err);
emb_status ju_get_double(const cJSON *obj, const char *key, const char *shown, double *out,
                         int *present, emb_error *err);
/* *out points into obj (not copied); NULL string values count as absent. */
emb_status ju_get_string(const cJSON *obj, const char *key, const char *shown, const char **out,
                         int *present, emb_error *err);

#endif
