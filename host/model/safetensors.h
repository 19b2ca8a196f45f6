/*
 * Reader for the safetensors format (8-byte little-endian header length N,
 * N bytes of JSON header, then the tensor bytes), enforcing every rule of the
 * reference implementation so that a crafted file can never make us read
 * outside the buffer or misinterpret it. Files are mmapped read-only;
 * st_parse also works on any in-memory buffer (tests feed crafted ones).
 */
#ifndef EMBEDC_HOST_SAFETENSORS_H
#define EMBEDC_HOST_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>
#include "embedc.h"

/* The reference's cap on the JSON header (bytes). */
#define ST_MAX_HEADER_SIZE 100000000u

typedef enum {
    ST_BOOL, ST_U8, ST_I8, ST_F8_E5M2, ST_F8_E4M3, ST_I16, ST_U16, ST_F16, ST_BF16,
    ST_I32, ST_U32, ST_F32, ST_F64, ST_I64, ST_U64,
    ST_NUM_DTYPES
} st_dtype;

typedef struct {
    char *name;             /* owned */
    st_dtype dtype;
    int ndim;
    uint64_t *shape;        /* ndim entries, owned (NULL when ndim == 0) */
    uint64_t begin, end;    /* data_offsets, relative to the byte buffer */
    const void *data;       /* start of the tensor's bytes */
    size_t nbytes;          /* end - begin */
} st_tensor;

typedef struct {
    char *key, *value;      /* owned */
} st_meta;

typedef struct st_file {
    char *origin;           /* name used in messages (usually the path) */
    const uint8_t *buf;     /* whole file */
    size_t size;
    void *map;              /* mmap base when st_open mapped it, else NULL */
    size_t map_size;
    st_tensor *tensors;     /* in header order */
    size_t n_tensors;
    st_meta *meta;          /* __metadata__ entries */
    size_t n_meta;
} st_file;

/* Parses and validates buf[0..size) (not copied: it must outlive the result).
 * origin names the buffer in error messages. */
emb_status st_parse(const void *buf, size_t size, const char *origin, st_file **out,
                    emb_error *err);

/* mmaps path read-only and parses it; origin (NULL = path) names it in messages. */
emb_status st_open(const char *path, const char *origin, st_file **out, emb_error *err);

/* Unmaps (if mapped) and frees; NULL is a no-op. */
void st_close(st_file *f);

/* Tensor by exact name, or NULL. */
const st_tensor *st_find(const st_file *f, const char *name);

/* __metadata__ value, or NULL. */
const char *st_metadata(const st_file *f, const char *key);

const char *st_dtype_name(st_dtype d);
/* Bytes per element. */
size_t st_dtype_size(st_dtype d);
/* Parses a dtype name ("F32"); returns 0 and sets *out, -1 if unknown. */
int st_dtype_parse(const char *name, st_dtype *out);

/* Checks a shard name from model.safetensors.index.json: a bare file name
 * (no directory part, not "." or "..", no NUL, non-empty). 1 if acceptable. */
int st_shard_name_ok(const char *name);

#endif
