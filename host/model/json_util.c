/* cJSON helpers for the model-file loaders (see json_util.h). */
#include "json_util.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"

static const char *find_duplicate(const cJSON *v, const char **parent, int *oom);

static const char *file_kind(mode_t m) {
    if (S_ISDIR(m)) return "a directory";
    if (S_ISFIFO(m)) return "a FIFO";
    if (S_ISCHR(m)) return "a character device";
    if (S_ISBLK(m)) return "a block device";
    if (S_ISSOCK(m)) return "a socket";
    return "not a regular file";
}

emb_status ju_open_regular(const char *path, const char *shown, uint64_t limit, int *fd_out,
                           uint64_t *size_out, emb_error *err) {
    *fd_out = -1;
    /* O_NONBLOCK: opening a FIFO for reading must not wait for a writer. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return emb_fail(err, EMB_ERR_IO, "%s: cannot open: %s", shown, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return emb_fail(err, EMB_ERR_IO, "%s: cannot stat: %s", shown, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return emb_fail(err, EMB_ERR_IO, "%s: is %s, expected a regular file", shown, file_kind(sb.st_mode));
    }
    if (limit && (uint64_t)sb.st_size > limit) {
        close(fd);
        return emb_fail(err, EMB_ERR_FORMAT, "%s: %llu bytes, over the limit of %llu bytes for this file",
                        shown, (unsigned long long)sb.st_size, (unsigned long long)limit);
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    *fd_out = fd;
    *size_out = (uint64_t)sb.st_size;
    return EMB_OK;
}

emb_status ju_read_bytes(const char *path, const char *shown, uint64_t limit, char **out,
                         size_t *len_out, emb_error *err) {
    *out = NULL;
    *len_out = 0;
    int fd;
    uint64_t size;
    emb_status s = ju_open_regular(path, shown, limit, &fd, &size, err);
    if (s) return s;
    /* Read at most limit bytes even if the file grows after fstat. */
    size_t cap = (size_t)size + 1, len = 0;
    char *buf = malloc(cap + 1);
    if (!buf) {
        close(fd);
        return emb_fail(err, EMB_ERR_NOMEM, "%s: out of memory reading %llu bytes", shown,
                        (unsigned long long)size);
    }
    for (;;) {
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            s = emb_fail(err, EMB_ERR_IO, "%s: read error: %s", shown, strerror(errno));
            break;
        }
        if (r == 0) break;
        len += (size_t)r;
        if (len == cap) {
            s = emb_fail(err, EMB_ERR_IO, "%s: the file grew while it was read", shown);
            break;
        }
    }
    close(fd);
    if (s) {
        free(buf);
        return s;
    }
    buf[len] = 0;
    *out = buf;
    *len_out = len;
    return EMB_OK;
}

emb_status ju_read_file(const char *path, const char *shown, cJSON **out, emb_error *err) {
    *out = NULL;
    char *buf = NULL;
    size_t len = 0;
    emb_status s = ju_read_bytes(path, shown, EMB_MAX_CONFIG_JSON_BYTES, &buf, &len, err);
    if (s) return s;
    if (len == 0) {
        free(buf);
        return emb_fail(err, EMB_ERR_FORMAT, "%s: empty file, expected JSON", shown);
    }
    buf[len] = 0;
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    if (!j) {
        size_t off = (end && end >= buf && end <= buf + len) ? (size_t)(end - buf) : 0;
        s = emb_fail(err, EMB_ERR_FORMAT, "%s: invalid JSON near byte %zu", shown, off);
    } else {
        /* cJSON stops after the first value; anything but whitespace after it
         * means the file is not one JSON document. */
        for (const char *p = end; p && p < buf + len; p++) {
            if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
                s = emb_fail(err, EMB_ERR_FORMAT, "%s: trailing data after the JSON value at byte %zu",
                             shown, (size_t)(p - buf));
                cJSON_Delete(j);
                j = NULL;
                break;
            }
        }
    }
    free(buf);
    if (j) {
        int oom = 0;
        const char *parent = NULL;
        const char *dup = find_duplicate(j, &parent, &oom);
        if (oom) s = emb_fail(err, EMB_ERR_NOMEM, "%s: out of memory", shown);
        else if (dup && parent)
            s = emb_fail(err, EMB_ERR_FORMAT, "%s: duplicate key \"%s\" in \"%s\"", shown, dup, parent);
        else if (dup)
            s = emb_fail(err, EMB_ERR_FORMAT, "%s: duplicate key \"%s\"", shown, dup);
        if (s) {
            cJSON_Delete(j);
            j = NULL;
        }
    }
    *out = j;
    return s;
}

/* Python's json keeps the last of duplicate keys and cJSON's lookup the
 * first, so a config file with a repeated key would mean one thing to
 * transformers and another to us: refuse it. Returns the first duplicate
 * found (depth-first) and the key of the object holding it. */
static const char *find_duplicate(const cJSON *v, const char **parent, int *oom) {
    if (cJSON_IsObject(v)) {
        const char *dup = ju_duplicate_key(v, oom);
        if (dup || *oom) {
            *parent = v->string;
            return dup;
        }
    }
    if (cJSON_IsObject(v) || cJSON_IsArray(v)) {
        for (const cJSON *c = v->child; c; c = c->next) {
            const char *dup = find_duplicate(c, parent, oom);
            if (dup || *oom) return dup;
        }
    }
    return NULL;
}

static int cmp_str_ptr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

const char *ju_duplicate_key(const cJSON *obj, int *oom) {
    *oom = 0;
    size_t n = 0;
    for (const cJSON *c = obj ? obj->child : NULL; c; c = c->next) n++;
    if (n < 2) return NULL;
    const char **names = malloc(n * sizeof *names);
    if (!names) {
        *oom = 1;
        return NULL;
    }
    size_t i = 0;
    for (const cJSON *c = obj->child; c; c = c->next) names[i++] = c->string ? c->string : "";
    qsort(names, n, sizeof *names, cmp_str_ptr);
    const char *dup = NULL;
    for (i = 1; i < n && !dup; i++)
        if (strcmp(names[i - 1], names[i]) == 0) dup = names[i];
    free(names);
    return dup;
}

int ju_is_int_in(const cJSON *v, double lo, double hi) {
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    return isfinite(d) && d == floor(d) && d >= lo && d <= hi;
}

emb_status ju_get_int(const cJSON *obj, const char *key, const char *shown, int lo, int hi,
                      int *out, int *present, emb_error *err) {
    if (present) *present = 0;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) return EMB_OK;
    if (!cJSON_IsNumber(v))
        return emb_fail(err, EMB_ERR_FORMAT, "%s: field \"%s\" must be an integer", shown, key);
    if (!ju_is_int_in(v, lo, hi))
        return emb_fail(err, EMB_ERR_FORMAT, "%s: field \"%s\" is %g, expected an integer in [%d, %d]",
                        shown, key, v->valuedouble, lo, hi);
    *out = (int)v->valuedouble;
    if (present) *present = 1;
    return EMB_OK;
}

emb_status ju_get_bool(const cJSON *obj, const char *key, const char *shown, int *out,
                       int *present, emb_error *err) {
    if (present) *present = 0;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) return EMB_OK;
    if (!cJSON_IsBool(v))
        return emb_fail(err, EMB_ERR_FORMAT, "%s: field \"%s\" must be true or false", shown, key);
    *out = cJSON_IsTrue(v) ? 1 : 0;
    if (present) *present = 1;
    return EMB_OK;
}

emb_status ju_get_double(const cJSON *obj, const char *key, const char *shown, double *out,
                         int *present, emb_error *err) {
    if (present) *present = 0;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) return EMB_OK;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return emb_fail(err, EMB_ERR_FORMAT, "%s: field \"%s\" must be a number", shown, key);
    *out = v->valuedouble;
    if (present) *present = 1;
    return EMB_OK;
}

emb_status ju_get_string(const cJSON *obj, const char *key, const char *shown, const char **out,
                         int *present, emb_error *err) {
    if (present) *present = 0;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) return EMB_OK;
    if (!cJSON_IsString(v) || !v->valuestring)
        return emb_fail(err, EMB_ERR_FORMAT, "%s: field \"%s\" must be a string", shown, key);
    *out = v->valuestring;
    if (present) *present = 1;
    return EMB_OK;
}
