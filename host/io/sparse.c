/*
 * Sparse writers (see sparse.h). The .npz is a stored (uncompressed) zip of
 * five .npy members exactly as scipy.sparse.save_npz writes them: data
 * (float64), indices (int32), indptr (int32, int64 past 2^31 entries),
 * format (b"csr") and shape (int64 [rows, features]). CSR needs the row count
 * before the arrays can be written, so rows are kept in memory until commit.
 */
#include "sparse.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"

struct io_sparse_writer {
    io_sparse_format fmt;
    char *path, *tmp;
    FILE *f;
    size_t n_features;
    uint64_t rows;
    double *data;
    int32_t *indices;
    int64_t *indptr;
    size_t nnz, cap_nnz, cap_rows;
    int committed;
};

int io_sparse_parse_format(const char *fmt_name, const char *path, io_sparse_format *out) {
    if (fmt_name) {
        if (!strcmp(fmt_name, "npz")) { *out = IO_SPARSE_NPZ; return 0; }
        if (!strcmp(fmt_name, "jsonl")) { *out = IO_SPARSE_JSONL; return 0; }
        return -1;
    }
    size_t n = path ? strlen(path) : 0;
    *out = n > 4 && !strcmp(path + n - 4, ".npz") ? IO_SPARSE_NPZ : IO_SPARSE_JSONL;
    return 0;
}

emb_status io_sparse_open(const char *path, io_sparse_format fmt, size_t n_features, io_sparse_writer **out,
                          emb_error *err) {
    *out = NULL;
    int to_stdout = !strcmp(path, "-");
    if (to_stdout && fmt == IO_SPARSE_NPZ)
        return emb_fail(err, EMB_ERR_INVALID_ARG, "an .npz output needs a file name, not standard output");
    io_sparse_writer *w = calloc(1, sizeof *w);
    if (!w) return emb_fail(err, EMB_ERR_NOMEM, "out of memory");
    w->fmt = fmt;
    w->n_features = n_features;
    w->path = strdup(path);
    w->indptr = malloc(1024 * sizeof *w->indptr);
    w->cap_rows = 1024;
    if (!w->path || !w->indptr) { io_sparse_close(w); return emb_fail(err, EMB_ERR_NOMEM, "out of memory"); }
    w->indptr[0] = 0;
    if (to_stdout) {
        w->f = stdout;
    } else {
        w->tmp = malloc(strlen(path) + 32);
        if (!w->tmp) { io_sparse_close(w); return emb_fail(err, EMB_ERR_NOMEM, "out of memory"); }
        sprintf(w->tmp, "%s.partial-%ld", path, (long)getpid());
        w->f = fopen(w->tmp, "wb");
        if (!w->f) {
            emb_fail(err, EMB_ERR_IO, "cannot create output %s: %s", path, strerror(errno));
            free(w->tmp);
            w->tmp = NULL;
            io_sparse_close(w);
            return EMB_ERR_IO;
        }
    }
    *out = w;
    return EMB_OK;
}

emb_status io_sparse_write(io_sparse_writer *w, const int32_t *idx, const double *val, size_t n, emb_error *err) {
    if (w->fmt == IO_SPARSE_JSONL) {
        fprintf(w->f, "{\"index\": %llu, \"vector\": {", (unsigned long long)w->rows);
        for (size_t i = 0; i < n; i++) fprintf(w->f, "%s\"%d\": %.17g", i ? ", " : "", idx[i], val[i]);
        if (fputs("}}\n", w->f) < 0) return emb_fail(err, EMB_ERR_IO, "writing %s: %s", w->path, strerror(errno));
        w->rows++;
        return EMB_OK;
    }
    if (w->nnz + n > w->cap_nnz) {
        size_t cap = w->cap_nnz ? w->cap_nnz : 65536;
        while (cap < w->nnz + n) cap *= 2;
        double *d = realloc(w->data, cap * sizeof *d);
        if (d) w->data = d;
        int32_t *ix = realloc(w->indices, cap * sizeof *ix);
        if (ix) w->indices = ix;
        if (!d || !ix) return emb_fail(err, EMB_ERR_NOMEM, "out of memory holding %zu sparse entries", cap);
        w->cap_nnz = cap;
    }
    if (w->rows + 2 > w->cap_rows) {
        int64_t *p = realloc(w->indptr, w->cap_rows * 2 * sizeof *p);
        if (!p) return emb_fail(err, EMB_ERR_NOMEM, "out of memory");
        w->indptr = p;
        w->cap_rows *= 2;
    }
    if (n) {
        memcpy(w->data + w->nnz, val, n * sizeof *val);
        memcpy(w->indices + w->nnz, idx, n * sizeof *idx);
    }
    w->nnz += n;
    w->indptr[++w->rows] = (int64_t)w->nnz;
    return EMB_OK;
}

/* ---- .npz ---------------------------------------------------------------- */

static uint32_t crc_table[256];

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

static uint32_t crc_update(uint32_t crc, const void *p, size_t n) {
    const unsigned char *b = p;
    crc = ~crc;
    for (size_t i = 0; i < n; i++) crc = crc_table[(crc ^ b[i]) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

typedef struct {
    char name[32];
    uint32_t crc, size, offset;
} zip_member;

static void put16(unsigned char *p, unsigned v) { p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8); }
static void put32(unsigned char *p, uint32_t v) { put16(p, v & 0xFFFF); put16(p + 2, v >> 16); }

/* One .npy member: header (padded to 64 bytes) + payload, written into the zip. */
static int write_member(FILE *f, zip_member *m, const char *name, const char *descr, const char *shape,
                        const void *payload, size_t bytes, uint64_t *pos) {
    char hdr[256];
    int hl = snprintf(hdr + 10, sizeof hdr - 10, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, shape);
    size_t total = 10 + (size_t)hl + 1;
    size_t pad = (64 - total % 64) % 64;
    memcpy(hdr, "\x93NUMPY\x01\x00", 8);
    memset(hdr + 10 + hl, ' ', pad);
    hdr[10 + hl + pad] = '\n';
    size_t hlen = 10 + (size_t)hl + pad + 1;
    put16((unsigned char *)hdr + 8, (unsigned)(hlen - 10));
    uint64_t size = hlen + bytes;
    if (size > 0xFFFFFFFFu || *pos > 0xFFFFFFFFu) return -1;   /* no zip64 */
    snprintf(m->name, sizeof m->name, "%s", name);
    m->crc = crc_update(crc_update(0, hdr, hlen), payload, bytes);
    m->size = (uint32_t)size;
    m->offset = (uint32_t)*pos;
    unsigned char lh[30] = {0};
    put32(lh, 0x04034b50);
    put16(lh + 4, 20);
    put16(lh + 12, 0x21);   /* 1980-01-01 */
    put32(lh + 14, m->crc);
    put32(lh + 18, m->size);
    put32(lh + 22, m->size);
    put16(lh + 26, (unsigned)strlen(name));
    if (fwrite(lh, 1, 30, f) != 30 || fwrite(name, 1, strlen(name), f) != strlen(name) ||
        fwrite(hdr, 1, hlen, f) != hlen || (bytes && fwrite(payload, 1, bytes, f) != bytes))
        return -1;
    *pos += 30 + strlen(name) + size;
    return 0;
}

static int write_npz(io_sparse_writer *w) {
    crc_init();
    zip_member m[5];
    uint64_t pos = 0;
    char shape[64];
    int wide = w->nnz > INT32_MAX;
    void *indptr = w->indptr;
    int32_t *narrow = NULL;
    if (!wide) {
        narrow = malloc((w->rows + 1) * sizeof *narrow);
        if (!narrow) return -1;
        for (uint64_t i = 0; i <= w->rows; i++) narrow[i] = (int32_t)w->indptr[i];
        indptr = narrow;
    }
    int64_t shp[2] = {(int64_t)w->rows, (int64_t)w->n_features};
    int rc = 0;
    snprintf(shape, sizeof shape, "(%zu,)", w->nnz);
    rc |= write_member(w->f, &m[0], "indices.npy", "<i4", shape, w->indices, w->nnz * 4, &pos);
    snprintf(shape, sizeof shape, "(%llu,)", (unsigned long long)w->rows + 1);
    rc |= write_member(w->f, &m[1], "indptr.npy", wide ? "<i8" : "<i4", shape, indptr,
                       (w->rows + 1) * (wide ? 8 : 4), &pos);
    rc |= write_member(w->f, &m[2], "format.npy", "|S3", "()", "csr", 3, &pos);
    rc |= write_member(w->f, &m[3], "shape.npy", "<i8", "(2,)", shp, 16, &pos);
    snprintf(shape, sizeof shape, "(%zu,)", w->nnz);
    rc |= write_member(w->f, &m[4], "data.npy", "<f8", shape, w->data, w->nnz * 8, &pos);
    free(narrow);
    if (rc) return -1;
    uint64_t cd_start = pos;
    for (int i = 0; i < 5; i++) {
        unsigned char ch[46] = {0};
        put32(ch, 0x02014b50);
        put16(ch + 4, 20);
        put16(ch + 6, 20);
        put16(ch + 14, 0x21);
        put32(ch + 16, m[i].crc);
        put32(ch + 20, m[i].size);
        put32(ch + 24, m[i].size);
        put16(ch + 28, (unsigned)strlen(m[i].name));
        put32(ch + 42, m[i].offset);
        if (fwrite(ch, 1, 46, w->f) != 46 || fwrite(m[i].name, 1, strlen(m[i].name), w->f) != strlen(m[i].name)) return -1;
        pos += 46 + strlen(m[i].name);
    }
    if (pos > 0xFFFFFFFFu) return -1;
    unsigned char end[22] = {0};
    put32(end, 0x06054b50);
    put16(end + 8, 5);
    put16(end + 10, 5);
    put32(end + 12, (uint32_t)(pos - cd_start));
    put32(end + 16, (uint32_t)cd_start);
    return fwrite(end, 1, 22, w->f) == 22 ? 0 : -1;
}

emb_status io_sparse_commit(io_sparse_writer *w, emb_error *err) {
    errno = 0;
    if (w->fmt == IO_SPARSE_NPZ && write_npz(w) != 0)
        return emb_fail(err, EMB_ERR_IO, "writing %s failed (%s)", w->path,
                        errno ? strerror(errno) : "the .npz would exceed 4 GiB, which needs zip64");
    if (w->f == stdout) return fflush(stdout) == 0 ? EMB_OK : emb_fail(err, EMB_ERR_IO, "writing standard output: %s", strerror(errno));
    if (fflush(w->f) != 0 || fsync(fileno(w->f)) != 0 || ferror(w->f))
        return emb_fail(err, EMB_ERR_IO, "writing %s: %s", w->path, strerror(errno));
    fclose(w->f);
    w->f = NULL;
    if (rename(w->tmp, w->path) != 0)
        return emb_fail(err, EMB_ERR_IO, "cannot move output into place as %s: %s", w->path, strerror(errno));
    w->committed = 1;
    return EMB_OK;
}

void io_sparse_close(io_sparse_writer *w) {
    if (!w) return;
    if (w->f && w->f != stdout) fclose(w->f);
    if (w->tmp && !w->committed) unlink(w->tmp);
    free(w->tmp);
    free(w->path);
    free(w->data);
    free(w->indices);
    free(w->indptr);
    free(w);
}
