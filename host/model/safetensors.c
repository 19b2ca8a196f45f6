/*
 * safetensors reader (see safetensors.h). The checks follow the reference
 * implementation's read_metadata/validate in order, so a file it rejects we
 * reject too, each with a message naming the file and the tensor or field:
 *   1. at least 8 bytes; header length N <= 100 MB; 8 + N within the file;
 *   2. header is valid UTF-8, starts with '{', parses as one JSON object
 *      (trailing spaces allowed: writers pad the header to 8 bytes);
 *   3. no duplicate keys; known dtypes; shapes and offsets non-negative
 *      integers; optional "__metadata__" maps strings to strings;
 *   4. sorted by offsets, tensors tile the byte buffer from 0 with no gap or
 *      overlap, each span equals its shape's byte size (checked arithmetic),
 *      and the last end + 8 + N equals the file size.
 */
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "json_util.h"

/* Offsets and dims arrive as JSON numbers (doubles in cJSON): beyond 2^53 a
 * double no longer names one integer, and no real file is that large. */
#define ST_MAX_EXACT 9007199254740992.0

static const struct {
    const char *name;
    size_t size;
} st_dtypes[ST_NUM_DTYPES] = {
    [ST_BOOL] = {"BOOL", 1},       [ST_U8] = {"U8", 1},     [ST_I8] = {"I8", 1},
    [ST_F8_E5M2] = {"F8_E5M2", 1}, [ST_F8_E4M3] = {"F8_E4M3", 1},
    [ST_I16] = {"I16", 2},         [ST_U16] = {"U16", 2},   [ST_F16] = {"F16", 2},
    [ST_BF16] = {"BF16", 2},       [ST_I32] = {"I32", 4},   [ST_U32] = {"U32", 4},
    [ST_F32] = {"F32", 4},         [ST_F64] = {"F64", 8},   [ST_I64] = {"I64", 8},
    [ST_U64] = {"U64", 8},
};

const char *st_dtype_name(st_dtype d) {
    return (unsigned)d < ST_NUM_DTYPES ? st_dtypes[d].name : "?";
}

size_t st_dtype_size(st_dtype d) {
    return (unsigned)d < ST_NUM_DTYPES ? st_dtypes[d].size : 0;
}

int st_dtype_parse(const char *name, st_dtype *out) {
    for (int i = 0; i < ST_NUM_DTYPES; i++) {
        if (strcmp(name, st_dtypes[i].name) == 0) {
            *out = (st_dtype)i;
            return 0;
        }
    }
    return -1;
}

int st_shard_name_ok(const char *name) {
    if (!name || !*name) return 0;
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) return 0;
    /* Both separators: a backslash name could be a path on another OS, and
     * there is no legitimate reason for one in a shard name. */
    return strchr(name, '/') == NULL && strchr(name, '\\') == NULL;
}

/* Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF.
 * Returns the offset of the first bad byte, or len when all is valid. */
static size_t utf8_bad_offset(const uint8_t *s, size_t len) {
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        size_t n;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            n = 1, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            n = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return i;
        }
        if (len - i <= n) return i;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return i;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
        i += n + 1;
    }
    return len;
}

/* The safetensors header holds only non-negative integers as numbers, but
 * cJSON turns "1.0" or "1e3" into the same double as "1". A lexical pass
 * over the header finds any number spelled otherwise, and any string with an
 * escaped NUL (cJSON would cut the name there). */
static emb_status check_number_spelling(const char *h, size_t n, const char *origin,
                                        emb_error *err) {
    size_t i = 0;
    while (i < n) {
        char c = h[i];
        if (c == '"') {
            size_t start = i;
            for (i++; i < n && h[i] != '"'; i++) {
                if (h[i] != '\\') continue;
                /* A NUL in a name would end the C string: "a\u0000b" would
                 * then match tensor "a". No real file has one. */
                if (i + 5 < n && h[i + 1] == 'u' && h[i + 2] == '0' && h[i + 3] == '0' && h[i + 4] == '0' &&
                    h[i + 5] == '0')
                    return emb_fail(err, EMB_ERR_FORMAT,
                                    "%s: header byte %zu: string with an embedded NUL (\\u0000) is not supported",
                                    origin, start + 8);
                i++;
            }
            i++;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            size_t start = i;
            int plain = c != '-';
            while (i < n && strchr("0123456789+-.eE", h[i]) && h[i]) {
                if (h[i] < '0' || h[i] > '9') plain = 0;
                i++;
            }
            if (!plain) {
                int len = (int)(i - start > 40 ? 40 : i - start);
                return emb_fail(err, EMB_ERR_FORMAT,
                                "%s: header byte %zu: number \"%.*s\" is not a non-negative integer "
                                "(shapes and data_offsets must be integers)",
                                origin, start + 8, len, h + start);
            }
        } else {
            i++;
        }
    }
    return EMB_OK;
}

static void free_tensors(st_file *f) {
    for (size_t i = 0; i < f->n_tensors; i++) {
        free(f->tensors[i].name);
        free(f->tensors[i].shape);
    }
    free(f->tensors);
    f->tensors = NULL;
    f->n_tensors = 0;
    for (size_t i = 0; i < f->n_meta; i++) {
        free(f->meta[i].key);
        free(f->meta[i].value);
    }
    free(f->meta);
    f->meta = NULL;
    f->n_meta = 0;
}

void st_close(st_file *f) {
    if (!f) return;
    free_tensors(f);
    if (f->map) munmap(f->map, f->map_size);
    free(f->origin);
    free(f);
}

const st_tensor *st_find(const st_file *f, const char *name) {
    for (size_t i = 0; f && i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

const char *st_metadata(const st_file *f, const char *key) {
    for (size_t i = 0; f && i < f->n_meta; i++)
        if (strcmp(f->meta[i].key, key) == 0) return f->meta[i].value;
    return NULL;
}

/* Formats "[384, 384]" into buf for messages. */
static const char *shape_str(const st_tensor *t, char *buf, size_t cap) {
    size_t o = 0;
    o += (size_t)snprintf(buf + o, cap - o, "[");
    for (int i = 0; i < t->ndim && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%llu", i ? ", " : "",
                              (unsigned long long)t->shape[i]);
    if (o < cap) snprintf(buf + o, cap - o, "]");
    return buf;
}

static emb_status parse_metadata(st_file *f, const cJSON *m, emb_error *err) {
    if (cJSON_IsNull(m)) return EMB_OK;
    if (!cJSON_IsObject(m))
        return emb_fail(err, EMB_ERR_FORMAT, "%s: \"__metadata__\" must be an object of strings",
                        f->origin);
    int oom;
    const char *dup = ju_duplicate_key(m, &oom);
    if (oom) return emb_fail(err, EMB_ERR_NOMEM, "%s: out of memory", f->origin);
    if (dup)
        return emb_fail(err, EMB_ERR_FORMAT, "%s: \"__metadata__\": duplicate key \"%s\"",
                        f->origin, dup);
    size_t n = (size_t)cJSON_GetArraySize(m);
    if (n == 0) return EMB_OK;
    f->meta = calloc(n, sizeof *f->meta);
    if (!f->meta) return emb_fail(err, EMB_ERR_NOMEM, "%s: out of memory", f->origin);
    for (const cJSON *c = m->child; c; c = c->next) {
        if (!cJSON_IsString(c))
            return emb_fail(err, EMB_ERR_FORMAT, "%s: \"__metadata__\": value of \"%s\" must be a string",
                            f->origin, c->string);
        st_meta *e = &f->meta[f->n_meta++];
        e->key = strdup(c->string);
        e->value = strdup(c->valuestring);
        if (!e->key || !e->value) return emb_fail(err, EMB_ERR_NOMEM, "%s: out of memory", f->origin);
    }
    return EMB_OK;
}

static emb_status parse_offset(const st_file *f, const char *tname, const cJSON *v,
                               uint64_t *out, emb_error *err) {
    if (!ju_is_int_in(v, 0, ST_MAX_EXACT)) {
        char *txt = cJSON_PrintUnformatted(v);
        emb_status s = emb_fail(err, EMB_ERR_FORMAT,
                                "%s: tensor \"%s\": data_offsets entry %s is not a non-negative integer",
                                f->origin, tname, txt ? txt : "?");
        free(txt);
        return s;
    }
    *out = (uint64_t)v->valuedouble;
    return EMB_OK;
}

/* One "name": {"dtype", "shape", "data_offsets"} entry. */
static emb_status parse_tensor(st_file *f, const cJSON *e, st_tensor *t, emb_error *err) {
    const char *tn = e->string;
    t->name = strdup(tn);
    if (!t->name) return emb_fail(err, EMB_ERR_NOMEM, "%s: out of memory", f->origin);
    if (!cJSON_IsObject(e))
        return emb_fail(err, EMB_ERR_FORMAT, "%s: tensor \"%s\": entry must be an object", f->origin, tn);
    int oom;
    const char *dup = ju_duplicate_key(e, &oom);
    if (oom) return emb_fail(err, EMB_ERR_NOMEM, "%s: out of memory", f->origin);
    if (dup)
        return emb_fail(err, EMB_ERR_FORMAT, "%s: tensor \"%s\": duplicate key \"%s\"", f->origin, tn, dup);

    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    if (!cJSON_IsString(dt))
        return emb_fail(err, EMB_ERR_FORMAT, "%s: tensor \"%s\": missing or non-string \"dtype\"",
                        f->origin, tn);
    if (st_dtype_parse(dt->valuestring, &t->dtype) != 0)
        return emb_fail(err, EMB_ERR_FORMAT, "%s: tensor \"%s\": unknown dtype \"%s\"", f->origin, tn,
                        dt->valuestring);

    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    if (!cJSON_IsArray(sh))
        return emb_fail(err, EMB_ERR_FORMAT, "%s: tensor \"%s\": missing or non-array \"shape\"",
                        f->origin, tn);
    int nd = cJSON_GetArraySize(sh);
    if (nd > 0) {
        t->shape = calloc((size_t)nd, sizeof *t->shape);
        if (!t->shape) return emb_fail(err, EMB_ERR_NOMEM, "%s: out of memory", f->origin);
    }
    for (const cJSON *d = sh->child; d; d = d->next) {
        if (!ju_is_int_in(d, 0, ST_MAX_EXACT))
            return emb_fail(err, EMB_ERR_FORMAT,
                            "%s: tensor \"%s\": shape entry %d is not a non-negative integer",
                            f->origin, tn, t->ndim);
        t->shape[t->ndim++] = (uint64_t)d->valuedouble;
    }

    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2)
        return emb_fail(err, EMB_ERR_FORMAT,
                        "%s: tensor \"%s\": \"data_offsets\" must be an array [begin, end]",
                        f->origin, tn);
    emb_status s = parse_offset(f, tn, off->child, &t->begin, err);
    if (s == EMB_OK) s = parse_offset(f, tn, off->child->next, &t->end, err);
    return s;
}

static int cmp_by_offsets(const void *a, const void *b) {
    const st_tensor *x = *(const st_tensor *const *)a, *y = *(const st_tensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

/* Byte size of a tensor from its shape, with every multiplication checked. */
static emb_status tensor_bytes(const st_file *f, const st_tensor *t, size_t *out, emb_error *err) {
    size_t n = st_dtype_size(t->dtype);
    for (int i = 0; i < t->ndim; i++) {
        if (t->shape[i] > SIZE_MAX || !emb_mul_ok(n, (size_t)t->shape[i], &n)) {
            char sb[256];
            return emb_fail(err, EMB_ERR_FORMAT, "%s: tensor \"%s\": byte size of %s %s overflows",
                            f->origin, t->name, st_dtype_name(t->dtype), shape_str(t, sb, sizeof sb));
        }
    }
    *out = n;
    return EMB_OK;
}

/* Step 4: the tensors must tile [0, end) exactly, in offset order. */
static emb_status check_layout(st_file *f, size_t data_start, emb_error *err) {
    size_t n = f->n_tensors;
    const st_tensor **order = malloc((n ? n : 1) * sizeof *order);
    if (!order) return emb_fail(err, EMB_ERR_NOMEM, "%s: out of memory", f->origin);
    for (size_t i = 0; i < n; i++) order[i] = &f->tensors[i];
    qsort(order, n, sizeof *order, cmp_by_offsets);

    emb_status s = EMB_OK;
    uint64_t expect = 0;
    const char *prev = NULL;
    char sb[256];
    for (size_t i = 0; i < n && s == EMB_OK; i++) {
        const st_tensor *t = order[i];
        size_t need = 0;
        if (t->end < t->begin) {
            s = emb_fail(err, EMB_ERR_FORMAT, "%s: tensor \"%s\": data_offsets [%llu, %llu] end before begin",
                         f->origin, t->name, (unsigned long long)t->begin, (unsigned long long)t->end);
        } else if (t->begin > expect) {
            s = emb_fail(err, EMB_ERR_FORMAT,
                         "%s: tensor \"%s\": data_offsets [%llu, %llu] leave a gap after byte %llu%s%s%s",
                         f->origin, t->name, (unsigned long long)t->begin, (unsigned long long)t->end,
                         (unsigned long long)expect, prev ? " (end of tensor \"" : " (tensors must start at 0",
                         prev ? prev : "", prev ? "\")" : ")");
        } else if (t->begin < expect) {
            s = emb_fail(err, EMB_ERR_FORMAT,
                         "%s: tensor \"%s\": data_offsets [%llu, %llu] overlap tensor \"%s\" ending at byte %llu",
                         f->origin, t->name, (unsigned long long)t->begin, (unsigned long long)t->end,
                         prev ? prev : "?", (unsigned long long)expect);
        } else if ((s = tensor_bytes(f, t, &need, err)) != EMB_OK) {
            /* message already set */
        } else if (t->end - t->begin != need) {
            s = emb_fail(err, EMB_ERR_FORMAT,
                         "%s: tensor \"%s\": data_offsets [%llu, %llu] span %llu bytes but %s %s needs %zu",
                         f->origin, t->name, (unsigned long long)t->begin, (unsigned long long)t->end,
                         (unsigned long long)(t->end - t->begin), st_dtype_name(t->dtype),
                         shape_str(t, sb, sizeof sb), need);
        } else {
            expect = t->end;
            prev = t->name;
        }
    }
    free(order);
    if (s != EMB_OK) return s;

    size_t total;
    if (expect > SIZE_MAX || !emb_add_ok(data_start, (size_t)expect, &total) || total != f->size)
        return emb_fail(err, EMB_ERR_FORMAT,
                        "%s: tensor data ends at byte %llu of the buffer, but the file size %zu "
                        "leaves %zu bytes after the %zu-byte header",
                        f->origin, (unsigned long long)expect, f->size, f->size - data_start, data_start);
    for (size_t i = 0; i < n; i++) {
        st_tensor *t = &f->tensors[i];
        t->data = f->buf + data_start + t->begin;
        t->nbytes = (size_t)(t->end - t->begin);
    }
    return EMB_OK;
}

/* Steps 2-4 on the header bytes h[0..hn). */
static emb_status parse_header(st_file *f, const char *h, size_t hn, emb_error *err) {
    size_t bad = utf8_bad_offset((const uint8_t *)h, hn);
    if (bad != hn)
        return emb_fail(err, EMB_ERR_FORMAT, "%s: header is not valid UTF-8 (byte %zu)", f->origin,
                        bad + 8);
    if (hn == 0 || h[0] != '{')
        return emb_fail(err, EMB_ERR_FORMAT, "%s: header does not start with '{'", f->origin);

    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(h, hn, &end, 0);
    if (!root) {
        size_t off = (end && end >= h && end <= h + hn) ? (size_t)(end - h) : 0;
        return emb_fail(err, EMB_ERR_FORMAT, "%s: header is not valid JSON (near byte %zu)", f->origin,
                        off + 8);
    }
    emb_status s = EMB_OK;
    for (const char *p = end; p < h + hn; p++) {
        /* Writers pad the header with spaces to align the data; anything else
         * after the object is garbage. */
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            s = emb_fail(err, EMB_ERR_FORMAT, "%s: header has trailing data after the JSON object (byte %zu)",
                         f->origin, (size_t)(p - h) + 8);
            break;
        }
    }
    if (s == EMB_OK && !cJSON_IsObject(root))
        s = emb_fail(err, EMB_ERR_FORMAT, "%s: header is not a JSON object", f->origin);
    if (s == EMB_OK) {
        int oom;
        const char *dup = ju_duplicate_key(root, &oom);
        if (oom) s = emb_fail(err, EMB_ERR_NOMEM, "%s: out of memory", f->origin);
        else if (dup) s = emb_fail(err, EMB_ERR_FORMAT, "%s: header has duplicate key \"%s\"", f->origin, dup);
    }
    size_t n = 0;
    for (const cJSON *c = root->child; s == EMB_OK && c; c = c->next)
        if (strcmp(c->string, "__metadata__") != 0) n++;
    if (s == EMB_OK && n > 0) {
        f->tensors = calloc(n, sizeof *f->tensors);
        if (!f->tensors) s = emb_fail(err, EMB_ERR_NOMEM, "%s: out of memory", f->origin);
    }
    for (const cJSON *c = root->child; s == EMB_OK && c; c = c->next) {
        if (strcmp(c->string, "__metadata__") == 0) {
            s = parse_metadata(f, c, err);
        } else {
            /* Count the entry before parsing so free_tensors releases it on error. */
            st_tensor *t = &f->tensors[f->n_tensors++];
            s = parse_tensor(f, c, t, err);
        }
    }
    cJSON_Delete(root);
    if (s == EMB_OK) s = check_number_spelling(h, hn, f->origin, err);
    if (s == EMB_OK) s = check_layout(f, 8 + hn, err);
    return s;
}

emb_status st_parse(const void *buf, size_t size, const char *origin, st_file **out,
                    emb_error *err) {
    *out = NULL;
    if (!origin) origin = "safetensors buffer";
    if (!buf && size) return emb_fail(err, EMB_ERR_INVALID_ARG, "%s: NULL buffer", origin);
    if (size < 8)
        return emb_fail(err, EMB_ERR_FORMAT,
                        "%s: file is %zu bytes, too small for the 8-byte header length", origin, size);
    const uint8_t *b = buf;
    uint64_t hn = 0;
    for (int i = 7; i >= 0; i--) hn = (hn << 8) | b[i];
    if (hn > ST_MAX_HEADER_SIZE)
        return emb_fail(err, EMB_ERR_FORMAT, "%s: header length %llu exceeds the %u-byte limit",
                        origin, (unsigned long long)hn, ST_MAX_HEADER_SIZE);
    size_t hend;
    if (!emb_add_ok(8, (size_t)hn, &hend) || hend > size)
        return emb_fail(err, EMB_ERR_FORMAT,
                        "%s: header length %llu runs past the end of the file (%zu bytes)", origin,
                        (unsigned long long)hn, size);

    st_file *f = calloc(1, sizeof *f);
    if (!f || !(f->origin = strdup(origin))) {
        free(f);
        return emb_fail(err, EMB_ERR_NOMEM, "%s: out of memory", origin);
    }
    f->buf = b;
    f->size = size;
    emb_status s = parse_header(f, (const char *)b + 8, (size_t)hn, err);
    if (s != EMB_OK) {
        st_close(f);
        return s;
    }
    *out = f;
    return EMB_OK;
}

emb_status st_open(const char *path, const char *origin, st_file **out, emb_error *err) {
    *out = NULL;
    if (!origin) origin = path;
    int fd;
    uint64_t fsize;
    emb_status os = ju_open_regular(path, origin, 0, &fd, &fsize, err);
    if (os) return os;
    if (fsize > SIZE_MAX) {
        close(fd);
        return emb_fail(err, EMB_ERR_FORMAT, "%s: %llu bytes do not fit in memory", origin,
                        (unsigned long long)fsize);
    }
    size_t size = (size_t)fsize;
    void *map = NULL;
    if (size >= 8) {
        /* mmap of an empty file fails, so tiny files go to st_parse's
         * too-small message through a stack buffer instead. */
        map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            int e = errno;
            close(fd);
            if (e == ENOMEM) {
                /* Mapping commits no memory, only address space: say which limit. */
                struct rlimit rl;
                char lim[48] = "unlimited";
                if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
                    snprintf(lim, sizeof lim, "%.1f MiB", (double)rl.rlim_cur / (1 << 20));
                return emb_fail(err, EMB_ERR_NOMEM,
                                "%s: cannot map its %.1f MiB: the model's files must fit in this process's "
                                "address space (ulimit -v: %s) and the machine's virtual memory", origin,
                                (double)size / (1 << 20), lim);
            }
            return emb_fail(err, EMB_ERR_IO, "%s: cannot mmap %zu bytes: %s", origin, size, strerror(e));
        }
    }
    close(fd);
    if (!map) {
        char tiny[8] = {0};
        return st_parse(tiny, size, origin, out, err);
    }
    emb_status s = st_parse(map, size, origin, out, err);
    if (s != EMB_OK) {
        munmap(map, size);
        return s;
    }
    (*out)->map = map;
    (*out)->map_size = size;
    return EMB_OK;
}
