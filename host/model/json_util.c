/* cJSON helpers for the model-file loaders (see json_util.h). */
#include "json_util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

/* Config files are small; anything past this is not a config file and we
 * refuse it rather than reading gigabytes into memory. */
#define JU_MAX_FILE (64u << 20)

static const char *find_duplicate(const cJSON *v, const char **parent, int *oom);

emb_status ju_read_file(const char *path, const char *shown, cJSON **out, emb_error *err) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return emb_fail(err, EMB_ERR_IO, "%s: cannot open: %s", shown, strerror(errno));
    char *buf = NULL;
    size_t len = 0, cap = 0;
    emb_status s = EMB_OK;
    for (;;) {
        if (len == cap) {
            if (cap >= JU_MAX_FILE) {
                s = emb_fail(err, EMB_ERR_FORMAT, "%s: larger than %u bytes, not a config file",
                             shown, JU_MAX_FILE);
                break;
            }
            size_t ncap = cap ? cap * 2 : 4096;
            char *nb = realloc(buf, ncap + 1);
            if (!nb) {
                s = emb_fail(err, EMB_ERR_NOMEM, "%s: out of memory reading the file", shown);
                break;
            }
            buf = nb;
            cap = ncap;
        }
        size_t r = fread(buf + len, 1, cap - len, f);
        len += r;
        if (r == 0) {
            if (ferror(f)) s = emb_fail(err, EMB_ERR_IO, "%s: read error", shown);
            break;
        }
    }
    fclose(f);
    if (s != EMB_OK) {
        free(buf);
        return s;
    }
    if (!buf) return emb_fail(err, EMB_ERR_FORMAT, "%s: empty file, expected JSON", shown);
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
