/*
 * Readers and writers for the CLI and bulk jobs (see io.h).
 */
#include "io.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"

/* ---- readers ---------------------------------------------------------- */

struct io_reader {
    FILE *f;
    int is_stdin;
    char *path;
    io_in_format fmt;
    char *field;
    char *line;
    size_t line_cap;
    char *doc;              /* JSONL: the decoded text of the current line */
    uint64_t lineno;
    uint64_t consumed, size;
};

static int has_suffix(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcasecmp(s + a - b, suf) == 0;
}

io_in_format io_guess_in_format(const char *path) {
    return (has_suffix(path, ".jsonl") || has_suffix(path, ".ndjson")) ? IO_IN_JSONL : IO_IN_TEXT;
}

emb_status io_reader_open(const char *path, io_in_format fmt, const char *field, io_reader **out,
                          emb_error *err) {
    io_reader *r = calloc(1, sizeof *r);
    if (!r) return emb_fail(err, EMB_ERR_NOMEM, "out of memory");
    r->fmt = fmt;
    r->field = strdup(field ? field : "text");
    r->path = strdup(path);
    if (strcmp(path, "-") == 0) {
        r->f = stdin;
        r->is_stdin = 1;
    } else {
        r->f = fopen(path, "rb");
        if (!r->f) {
            emb_status st = emb_fail(err, EMB_ERR_IO, "cannot open input %s: %s", path, strerror(errno));
            io_reader_close(r);
            return st;
        }
        struct stat sb;
        if (fstat(fileno(r->f), &sb) == 0 && S_ISREG(sb.st_mode)) r->size = (uint64_t)sb.st_size;
        if (fstat(fileno(r->f), &sb) == 0 && S_ISDIR(sb.st_mode)) {
            emb_status st = emb_fail(err, EMB_ERR_IO, "cannot read input %s: it is a directory", path);
            io_reader_close(r);
            return st;
        }
    }
    *out = r;
    return EMB_OK;
}

static int next_line(io_reader *r, size_t *len, emb_error *err) {
    errno = 0;
    ssize_t n = getline(&r->line, &r->line_cap, r->f);
    if (n < 0) {
        if (ferror(r->f)) {
            emb_fail(err, EMB_ERR_IO, "reading %s after line %llu: %s", r->path,
                     (unsigned long long)r->lineno, strerror(errno ? errno : EIO));
            return -1;
        }
        return 0;
    }
    r->lineno++;
    r->consumed += (uint64_t)n;
    if (n > 0 && r->line[n - 1] == '\n') n--;
    if (n > 0 && r->line[n - 1] == '\r') n--;
    r->line[n] = 0;
    *len = (size_t)n;
    return 1;
}

static int blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t') return 0;
    return 1;
}

int io_reader_next(void *reader, const char **text, size_t *len, emb_error *err) {
    io_reader *r = reader;
    size_t n;
    for (;;) {
        int got = next_line(r, &n, err);
        if (got <= 0) return got;
        if (r->fmt == IO_IN_TEXT) {
            *text = r->line;
            *len = n;
            return 1;
        }
        /* JSONL: whitespace-only lines separate nothing and are not documents. */
        if (blank(r->line, n)) continue;
        cJSON *obj = cJSON_ParseWithLength(r->line, n);
        if (!obj || !cJSON_IsObject(obj)) {
            cJSON_Delete(obj);
            emb_fail(err, EMB_ERR_FORMAT, "%s line %llu: not a JSON object", r->path,
                     (unsigned long long)r->lineno);
            return -1;
        }
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, r->field);
        if (!cJSON_IsString(v)) {
            emb_fail(err, EMB_ERR_FORMAT, "%s line %llu: field \"%s\" is %s", r->path,
                     (unsigned long long)r->lineno, r->field, v ? "not a string" : "missing");
            cJSON_Delete(obj);
            return -1;
        }
        free(r->doc);
        r->doc = strdup(v->valuestring);
        cJSON_Delete(obj);
        if (!r->doc) {
            emb_fail(err, EMB_ERR_NOMEM, "out of memory");
            return -1;
        }
        *text = r->doc;
        *len = strlen(r->doc);
        return 1;
    }
}

void io_reader_progress(const io_reader *r, uint64_t *consumed, uint64_t *size) {
    *consumed = r->consumed;
    *size = r->size;
}

emb_status io_reader_int_field(const io_reader *r, const char *name, int64_t *out, emb_error *err) {
    if (r->fmt != IO_IN_JSONL)
        return emb_fail(err, EMB_ERR_INVALID_ARG, "%s: an id field needs JSONL input", r->path);
    cJSON *obj = cJSON_Parse(r->line);
    const cJSON *v = obj ? cJSON_GetObjectItemCaseSensitive(obj, name) : NULL;
    double d = cJSON_IsNumber(v) ? v->valuedouble : 0.5;
    emb_status st = EMB_OK;
    if (!cJSON_IsNumber(v) || d != floor(d) || fabs(d) > 9007199254740992.0)
        st = emb_fail(err, EMB_ERR_FORMAT, "%s line %llu: field \"%s\" is %s", r->path,
                      (unsigned long long)r->lineno, name, v ? "not an integer" : "missing");
    else
        *out = (int64_t)d;
    cJSON_Delete(obj);
    return st;
}

void io_reader_close(io_reader *r) {
    if (!r) return;
    if (r->f && !r->is_stdin) fclose(r->f);
    free(r->line);
    free(r->doc);
    free(r->field);
    free(r->path);
    free(r);
}

/* ---- writers ---------------------------------------------------------- */

#define NPY_HEADER_BYTES 128    /* fixed, so the shape can be patched in place */

struct io_writer {
    FILE *f;
    int is_stdout;
    io_out_format fmt;
    int dim;
    uint64_t rows;
    char *path, *tmp;
    int committed;
    char *buf;                  /* formatting buffer */
    size_t buf_cap;
};

int io_parse_out_format(const char *name, const char *path, io_out_format *fmt) {
    if (!name) {
        if (path && has_suffix(path, ".fvecs")) *fmt = IO_OUT_FVECS;
        else if (path && (has_suffix(path, ".jsonl") || strcmp(path, "-") == 0)) *fmt = IO_OUT_JSONL;
        else *fmt = IO_OUT_NPY;
        return 0;
    }
    if (!strcmp(name, "npy") || !strcmp(name, "npy32")) *fmt = IO_OUT_NPY;
    else if (!strcmp(name, "npy16") || !strcmp(name, "npy-f16")) *fmt = IO_OUT_NPY_F16;
    else if (!strcmp(name, "fvecs")) *fmt = IO_OUT_FVECS;
    else if (!strcmp(name, "jsonl")) *fmt = IO_OUT_JSONL;
    else return -1;
    return 0;
}

static emb_status write_all(io_writer *w, const void *p, size_t n, emb_error *err) {
    if (n && fwrite(p, 1, n, w->f) != n)
        return emb_fail(err, EMB_ERR_IO, "writing %s: %s", w->path, strerror(errno ? errno : EIO));
    return EMB_OK;
}

static emb_status npy_header(io_writer *w, emb_error *err) {
    char h[NPY_HEADER_BYTES];
    memset(h, ' ', sizeof h);
    memcpy(h, "\x93NUMPY\x01\x00", 8);
    h[8] = (char)((NPY_HEADER_BYTES - 10) & 0xff);
    h[9] = (char)((NPY_HEADER_BYTES - 10) >> 8);
    char dict[NPY_HEADER_BYTES];
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (%llu, %d), }",
                     w->fmt == IO_OUT_NPY_F16 ? "<f2" : "<f4", (unsigned long long)w->rows, w->dim);
    if (n < 0 || n > NPY_HEADER_BYTES - 11)
        return emb_fail(err, EMB_ERR_INTERNAL, "npy header too long");
    memcpy(h + 10, dict, (size_t)n);
    h[NPY_HEADER_BYTES - 1] = '\n';
    return write_all(w, h, sizeof h, err);
}

emb_status io_writer_open(const char *path, io_out_format fmt, int dim, io_writer **out,
                          emb_error *err) {
    io_writer *w = calloc(1, sizeof *w);
    if (!w) return emb_fail(err, EMB_ERR_NOMEM, "out of memory");
    w->fmt = fmt;
    w->dim = dim;
    w->path = strdup(path);
    emb_status st = EMB_OK;
    if (strcmp(path, "-") == 0) {
        if (fmt != IO_OUT_JSONL) {
            st = emb_fail(err, EMB_ERR_INVALID_ARG, "only --format jsonl can be written to standard output");
            goto fail;
        }
        w->f = stdout;
        w->is_stdout = 1;
    } else {
        size_t n = strlen(path) + 32;
        w->tmp = malloc(n);
        if (!w->tmp) { st = emb_fail(err, EMB_ERR_NOMEM, "out of memory"); goto fail; }
        snprintf(w->tmp, n, "%s.partial-%ld", path, (long)getpid());
        w->f = fopen(w->tmp, "wb");
        if (!w->f) {
            st = emb_fail(err, EMB_ERR_IO, "cannot create output %s: %s", path, strerror(errno));
            free(w->tmp);
            w->tmp = NULL;
            goto fail;
        }
    }
    if (fmt == IO_OUT_NPY || fmt == IO_OUT_NPY_F16) {
        st = npy_header(w, err);
        if (st != EMB_OK) goto fail;
    }
    *out = w;
    return EMB_OK;
fail:
    io_writer_close(w);
    return st;
}

uint16_t io_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t exp = (x >> 23) & 0xffu, man = x & 0x7fffffu;
    if (exp == 0xff) return (uint16_t)(sign | 0x7c00u | (man ? 0x200u : 0));
    int e = (int)exp - 127 + 15;
    if (e >= 31) return (uint16_t)(sign | 0x7c00u);
    if (e <= 0) {
        if (e < -10) return (uint16_t)sign;
        man |= 0x800000u;
        int shift = 14 - e;
        uint32_t half = man >> shift, rem = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = ((uint32_t)e << 10) | (man >> 13);
    uint32_t rem = man & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (half & 1))) half++;   /* may carry into inf: correct */
    return (uint16_t)(sign | half);
}

static int grow(io_writer *w, size_t need) {
    if (need <= w->buf_cap) return 0;
    char *b = realloc(w->buf, need);
    if (!b) return -1;
    w->buf = b;
    w->buf_cap = need;
    return 0;
}

emb_status io_writer_write(void *writer, uint64_t first, size_t n, const float *vecs, int dim,
                           emb_error *err) {
    io_writer *w = writer;
    if (dim != w->dim || first != w->rows)
        return emb_fail(err, EMB_ERR_INTERNAL, "writer got rows %llu.. of width %d, expected %llu.. of %d",
                        (unsigned long long)first, dim, (unsigned long long)w->rows, w->dim);
    size_t d = (size_t)dim;
    emb_status st = EMB_OK;
    for (size_t i = 0; i < n && st == EMB_OK; i++) {
        const float *v = vecs + i * d;
        switch (w->fmt) {
        case IO_OUT_NPY:
            st = write_all(w, v, d * sizeof *v, err);
            break;
        case IO_OUT_NPY_F16: {
            if (grow(w, d * 2)) return emb_fail(err, EMB_ERR_NOMEM, "out of memory");
            uint16_t *h = (uint16_t *)(void *)w->buf;
            for (size_t k = 0; k < d; k++) h[k] = io_f32_to_f16(v[k]);
            st = write_all(w, h, d * 2, err);
            break;
        }
        case IO_OUT_FVECS: {
            int32_t dd = dim;
            st = write_all(w, &dd, 4, err);
            if (st == EMB_OK) st = write_all(w, v, d * sizeof *v, err);
            break;
        }
        case IO_OUT_JSONL: {
            if (grow(w, 64 + d * 18)) return emb_fail(err, EMB_ERR_NOMEM, "out of memory");
            size_t k = (size_t)sprintf(w->buf, "{\"index\": %llu, \"embedding\": [",
                                       (unsigned long long)(first + i));
            for (size_t j = 0; j < d; j++) {
                /* %.9g round-trips every float32; JSON has no NaN/Inf. */
                if (isfinite(v[j])) k += (size_t)sprintf(w->buf + k, "%s%.9g", j ? ", " : "", (double)v[j]);
                else k += (size_t)sprintf(w->buf + k, "%snull", j ? ", " : "");
            }
            k += (size_t)sprintf(w->buf + k, "]}\n");
            st = write_all(w, w->buf, k, err);
            break;
        }
        }
        if (st == EMB_OK) w->rows++;
    }
    return st;
}

emb_status io_writer_commit(io_writer *w, emb_error *err) {
    if (w->is_stdout) {
        if (fflush(stdout) != 0)
            return emb_fail(err, EMB_ERR_IO, "writing standard output: %s", strerror(errno));
        w->committed = 1;
        return EMB_OK;
    }
    emb_status st = EMB_OK;
    if (w->fmt == IO_OUT_NPY || w->fmt == IO_OUT_NPY_F16) {
        if (fseek(w->f, 0, SEEK_SET) != 0)
            return emb_fail(err, EMB_ERR_IO, "writing %s: %s", w->path, strerror(errno));
        st = npy_header(w, err);
        if (st != EMB_OK) return st;
    }
    if (fflush(w->f) != 0 || fsync(fileno(w->f)) != 0)
        return emb_fail(err, EMB_ERR_IO, "writing %s: %s", w->path, strerror(errno));
    int rc = fclose(w->f);
    w->f = NULL;
    if (rc != 0) return emb_fail(err, EMB_ERR_IO, "writing %s: %s", w->path, strerror(errno));
    if (rename(w->tmp, w->path) != 0)
        return emb_fail(err, EMB_ERR_IO, "cannot move %s into place as %s: %s", w->tmp, w->path,
                        strerror(errno));
    w->committed = 1;
    return EMB_OK;
}

void io_writer_close(io_writer *w) {
    if (!w) return;
    if (w->f && !w->is_stdout) fclose(w->f);
    if (w->tmp && !w->committed) unlink(w->tmp);
    free(w->tmp);
    free(w->path);
    free(w->buf);
    free(w);
}
