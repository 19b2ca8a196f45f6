/*
 * TF-IDF fitting and transformation (see tfidf.h). The analyzer follows
 * scikit-learn's default: Python str.lower() (per code point, plus U+0130 ->
 * "i" U+0307 and the final-sigma rule), then maximal runs of word characters
 * (Unicode letters, numbers and '_', as Python's re \w) of two or more code
 * points. Terms live in one open-addressing hash during fitting; the fitted
 * vocabulary is sorted by code point like Python's sorted().
 */
#include "tfidf.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <utf8proc.h>

#include "error.h"
#include "json_util.h"

#define TFIDF_FILE "tfidf.json"
#define TFIDF_PATTERN "(?u)\\b\\w\\w+\\b"

typedef struct {
    size_t off;                /* into the term blob */
    uint64_t df, tf, last_doc;
} term_entry;

struct emb_tfidf {
    emb_tfidf_options opts;
    uint64_t n_docs;
    char *blob;
    size_t blob_len, blob_cap;
    term_entry *terms;
    size_t n_terms, cap_terms;
    uint32_t *slots;           /* term index + 1, 0 empty */
    size_t mask;
    double *idf;               /* [n_terms] (fitted models) */
};

emb_tfidf_options emb_tfidf_default_options(void) {
    emb_tfidf_options o = {0};
    o.min_df = 1;
    o.min_df_is_count = 1;
    o.max_df = 1.0;
    o.use_idf = 1;
    o.lowercase = 1;
    o.norm = TFIDF_NORM_L2;
    return o;
}

void emb_tfidf_free(emb_tfidf *t) {
    if (!t) return;
    free(t->blob);
    free(t->terms);
    free(t->slots);
    free(t->idf);
    free(t);
}

size_t emb_tfidf_features(const emb_tfidf *t) { return t->n_terms; }
const emb_tfidf_options *emb_tfidf_get_options(const emb_tfidf *t) { return &t->opts; }
const char *emb_tfidf_term(const emb_tfidf *t, size_t i) { return t->blob + t->terms[i].off; }

/* ---- the analyzer ------------------------------------------------------- */

static int is_word_cp(utf8proc_int32_t cp) {
    if (cp == '_') return 1;
    switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
        return 1;
    default:
        return 0;
    }
}

static int is_cased(utf8proc_int32_t cp) {
    utf8proc_category_t c = utf8proc_category(cp);
    return c == UTF8PROC_CATEGORY_LU || c == UTF8PROC_CATEGORY_LL || c == UTF8PROC_CATEGORY_LT;
}

static int is_case_ignorable(utf8proc_int32_t cp) {
    switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_ME: case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_SK:
        return 1;
    default:
        break;
    }
    /* Word_Break MidLetter / MidNumLet / Single_Quote */
    return cp == '\'' || cp == '.' || cp == ':' || cp == 0xB7 || cp == 0x387 || cp == 0x5F4 ||
           cp == 0x2018 || cp == 0x2019 || cp == 0x2024 || cp == 0x2027 || cp == 0xFE13 ||
           cp == 0xFE52 || cp == 0xFE55 || cp == 0xFF07 || cp == 0xFF0E || cp == 0xFF1A;
}

/* Decodes text into code points (invalid bytes become U+FFFD). */
static utf8proc_int32_t *decode(const char *s, size_t len, size_t *n) {
    utf8proc_int32_t *cps = malloc((len + 1) * sizeof *cps);
    size_t k = 0, i = 0;
    if (!cps) return NULL;
    while (i < len) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t r = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(len - i), &cp);
        if (r <= 0) { cp = 0xFFFD; r = 1; }
        cps[k++] = cp;
        i += (size_t)r;
    }
    *n = k;
    return cps;
}

/* Python str.lower() of cps[i] in its context; writes 1 or 2 code points. */
static int py_lower(const utf8proc_int32_t *cps, size_t n, size_t i, utf8proc_int32_t out[2]) {
    utf8proc_int32_t cp = cps[i];
    if (cp == 0x130) { out[0] = 'i'; out[1] = 0x307; return 2; }
    if (cp == 0x3A3) {
        size_t j = i;
        while (j > 0 && is_case_ignorable(cps[j - 1])) j--;
        int final = j > 0 && is_cased(cps[j - 1]);
        if (final) {
            size_t k = i + 1;
            while (k < n && is_case_ignorable(cps[k])) k++;
            final = k == n || !is_cased(cps[k]);
        }
        out[0] = final ? 0x3C2 : 0x3C3;
        return 1;
    }
    out[0] = utf8proc_tolower(cp);
    return 1;
}

void emb_tfidf_analyze(const char *text, size_t len, int lowercase,
                       void (*fn)(void *ud, const char *term, size_t n), void *ud) {
    size_t n = 0;
    utf8proc_int32_t *cps = decode(text, len, &n);
    if (!cps) return;
    size_t m = 0;
    utf8proc_int32_t *low = lowercase ? malloc((2 * n + 1) * sizeof *low) : cps;
    if (!low) { free(cps); return; }
    if (lowercase) {
        for (size_t i = 0; i < n; i++) {
            utf8proc_int32_t o[2];
            int k = py_lower(cps, n, i, o);
            for (int q = 0; q < k; q++) low[m++] = o[q];
        }
    } else {
        m = n;
    }
    char *buf = malloc(4 * m + 1);
    if (buf) {
        size_t i = 0;
        while (i < m) {
            if (!is_word_cp(low[i])) { i++; continue; }
            size_t j = i, b = 0;
            while (j < m && is_word_cp(low[j])) b += (size_t)utf8proc_encode_char(low[j++], (utf8proc_uint8_t *)buf + b);
            if (j - i >= 2) fn(ud, buf, b);
            i = j;
        }
    }
    free(buf);
    if (low != cps) free(low);
    free(cps);
}

/* ---- the term hash -------------------------------------------------------- */

static uint64_t term_hash(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) { h ^= (unsigned char)s[i]; h *= 1099511628211ull; }
    return h ^ (h >> 31);
}

static int64_t find_term(const emb_tfidf *t, const char *s, size_t n, size_t *slot) {
    size_t i = term_hash(s, n) & t->mask;
    for (;; i = (i + 1) & t->mask) {
        uint32_t v = t->slots[i];
        if (!v) { if (slot) *slot = i; return -1; }
        const char *w = t->blob + t->terms[v - 1].off;
        if (!strncmp(w, s, n) && !w[n]) return (int64_t)v - 1;
    }
}

static int rehash(emb_tfidf *t, size_t cap) {
    uint32_t *slots = calloc(cap, sizeof *slots);
    if (!slots) return -1;
    free(t->slots);
    t->slots = slots;
    t->mask = cap - 1;
    for (size_t k = 0; k < t->n_terms; k++) {
        const char *w = t->blob + t->terms[k].off;
        size_t i = term_hash(w, strlen(w)) & t->mask;
        while (t->slots[i]) i = (i + 1) & t->mask;
        t->slots[i] = (uint32_t)k + 1;
    }
    return 0;
}

static int64_t add_term(emb_tfidf *t, const char *s, size_t n) {
    size_t slot;
    int64_t k = find_term(t, s, n, &slot);
    if (k >= 0) return k;
    if ((t->n_terms + 1) * 2 > t->mask + 1) {
        if (rehash(t, (t->mask + 1) * 2)) return -1;
        find_term(t, s, n, &slot);
    }
    if (t->n_terms == t->cap_terms) {
        size_t cap = t->cap_terms ? t->cap_terms * 2 : 4096;
        term_entry *e = realloc(t->terms, cap * sizeof *e);
        if (!e) return -1;
        t->terms = e;
        t->cap_terms = cap;
    }
    if (t->blob_len + n + 1 > t->blob_cap) {
        size_t cap = t->blob_cap ? t->blob_cap : 65536;
        while (cap < t->blob_len + n + 1) cap *= 2;
        char *b = realloc(t->blob, cap);
        if (!b) return -1;
        t->blob = b;
        t->blob_cap = cap;
    }
    memcpy(t->blob + t->blob_len, s, n);
    t->blob[t->blob_len + n] = 0;
    t->terms[t->n_terms] = (term_entry){t->blob_len, 0, 0, UINT64_MAX};
    t->blob_len += n + 1;
    t->slots[slot] = (uint32_t)t->n_terms + 1;
    return (int64_t)t->n_terms++;
}

static emb_tfidf *tfidf_new(void) {
    emb_tfidf *t = calloc(1, sizeof *t);
    if (t && rehash(t, 1024)) { free(t); t = NULL; }
    return t;
}

/* ---- fitting ------------------------------------------------------------- */

typedef struct {
    emb_tfidf *t;
    int oom;
} fit_state;

static void count_term(void *ud, const char *s, size_t n) {
    fit_state *f = ud;
    int64_t k = add_term(f->t, s, n);
    if (k < 0) { f->oom = 1; return; }
    term_entry *e = &f->t->terms[k];
    e->tf++;
    if (e->last_doc != f->t->n_docs) { e->df++; e->last_doc = f->t->n_docs; }
}

static int by_term(const void *a, const void *b, void *blob) {
    return strcmp((const char *)blob + ((const term_entry *)a)->off, (const char *)blob + ((const term_entry *)b)->off);
}
/* max_features keeps the most frequent terms; ties go to the earlier term. */
static int by_tf_desc(const void *a, const void *b, void *blob) {
    const term_entry *x = a, *y = b;
    if (x->tf != y->tf) return x->tf < y->tf ? 1 : -1;
    return by_term(a, b, blob);
}

emb_status emb_tfidf_fit(emb_tfidf_read_fn read, void *ud, const emb_tfidf_options *opts, emb_tfidf **out,
                         emb_error *err) {
    *out = NULL;
    emb_tfidf *t = tfidf_new();
    if (!t) return emb_fail(err, EMB_ERR_NOMEM, "out of memory");
    t->opts = opts ? *opts : emb_tfidf_default_options();
    fit_state f = {t, 0};
    const char *text;
    size_t len;
    int r;
    while ((r = read(ud, &text, &len, err)) == 1) {
        emb_tfidf_analyze(text, len, t->opts.lowercase, count_term, &f);
        if (f.oom) { emb_tfidf_free(t); return emb_fail(err, EMB_ERR_NOMEM, "out of memory counting terms"); }
        t->n_docs++;
    }
    if (r < 0) { emb_tfidf_free(t); return err->code ? err->code : EMB_ERR_IO; }
    double nd = (double)t->n_docs;
    double min_c = t->opts.min_df_is_count ? t->opts.min_df : t->opts.min_df * nd;
    double max_c = t->opts.max_df_is_count ? t->opts.max_df : t->opts.max_df * nd;
    if (max_c < min_c) { emb_tfidf_free(t); return emb_fail(err, EMB_ERR_INVALID_ARG, "max_df corresponds to < documents than min_df"); }
    size_t kept = 0;
    for (size_t k = 0; k < t->n_terms; k++)
        if ((double)t->terms[k].df >= min_c && (double)t->terms[k].df <= max_c) t->terms[kept++] = t->terms[k];
    t->n_terms = kept;
    if (t->opts.max_features && kept > t->opts.max_features) {
        qsort_r(t->terms, kept, sizeof *t->terms, by_tf_desc, t->blob);
        t->n_terms = t->opts.max_features;
    }
    qsort_r(t->terms, t->n_terms, sizeof *t->terms, by_term, t->blob);
    if (t->n_terms == 0) {
        emb_tfidf_free(t);
        return emb_fail(err, EMB_ERR_INVALID_ARG, "no terms remain (%llu documents; try a lower --min-df)",
                        (unsigned long long)nd);
    }
    t->idf = malloc(t->n_terms * sizeof *t->idf);
    if (!t->idf) { emb_tfidf_free(t); return emb_fail(err, EMB_ERR_NOMEM, "out of memory"); }
    size_t cap = 16;
    while (cap < t->n_terms * 2) cap *= 2;
    if (rehash(t, cap)) { emb_tfidf_free(t); return emb_fail(err, EMB_ERR_NOMEM, "out of memory"); }
    for (size_t k = 0; k < t->n_terms; k++)
        t->idf[k] = log((nd + 1.0) / ((double)t->terms[k].df + 1.0)) + 1.0;
    *out = t;
    return EMB_OK;
}

/* ---- saving and loading --------------------------------------------------- */

int emb_tfidf_detect(const char *dir) {
    char path[4096];
    struct stat s;
    snprintf(path, sizeof path, "%s/" TFIDF_FILE, dir);
    return stat(path, &s) == 0 && S_ISREG(s.st_mode);
}

static const char *norm_name(tfidf_norm n) { return n == TFIDF_NORM_L2 ? "l2" : n == TFIDF_NORM_L1 ? "l1" : "none"; }

emb_status emb_tfidf_save(const emb_tfidf *t, const char *dir, emb_error *err) {
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return emb_fail(err, EMB_ERR_IO, "cannot create %s: %s", dir, strerror(errno));
    cJSON *j = cJSON_CreateObject();
    cJSON *voc = cJSON_CreateArray(), *idf = cJSON_CreateArray();
    if (!j || !voc || !idf) { cJSON_Delete(j); cJSON_Delete(voc); cJSON_Delete(idf); return emb_fail(err, EMB_ERR_NOMEM, "out of memory"); }
    cJSON_AddStringToObject(j, "embedc_model", "tfidf");
    cJSON_AddStringToObject(j, "token_pattern", TFIDF_PATTERN);
    cJSON_AddBoolToObject(j, "lowercase", t->opts.lowercase);
    cJSON_AddBoolToObject(j, "binary", t->opts.binary);
    cJSON_AddBoolToObject(j, "use_idf", t->opts.use_idf);
    cJSON_AddBoolToObject(j, "smooth_idf", 1);
    cJSON_AddBoolToObject(j, "sublinear_tf", 0);
    cJSON_AddStringToObject(j, "norm", norm_name(t->opts.norm));
    cJSON_AddNumberToObject(j, "n_docs", (double)t->n_docs);
    for (size_t k = 0; k < t->n_terms; k++) {
        cJSON_AddItemToArray(voc, cJSON_CreateString(emb_tfidf_term(t, k)));
        cJSON_AddItemToArray(idf, cJSON_CreateNumber(t->idf[k]));
    }
    cJSON_AddItemToObject(j, "vocabulary", voc);
    cJSON_AddItemToObject(j, "idf", idf);
    char *txt = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!txt) return emb_fail(err, EMB_ERR_NOMEM, "out of memory");
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/" TFIDF_FILE, dir);
    snprintf(tmp, sizeof tmp, "%s.partial", path);
    FILE *f = fopen(tmp, "w");
    emb_status st = EMB_OK;
    if (!f || fputs(txt, f) < 0 || fputc('\n', f) < 0 || fclose(f) != 0 || rename(tmp, path) != 0)
        st = emb_fail(err, EMB_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    free(txt);
    return st;
}

emb_status emb_tfidf_load(const char *dir, emb_tfidf **out, emb_error *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/" TFIDF_FILE, dir);
    *out = NULL;
    cJSON *j = NULL;
    emb_status st = ju_read_file(path, path, &j, err);
    if (st != EMB_OK) return st;
    emb_tfidf *t = tfidf_new();
    if (!t) { cJSON_Delete(j); return emb_fail(err, EMB_ERR_NOMEM, "out of memory"); }
    t->opts = emb_tfidf_default_options();
    const char *norm = "l2", *pattern = TFIDF_PATTERN;
    int smooth = 1, sublinear = 0;
    if ((st = ju_get_bool(j, "lowercase", path, &t->opts.lowercase, NULL, err)) ||
        (st = ju_get_bool(j, "binary", path, &t->opts.binary, NULL, err)) ||
        (st = ju_get_bool(j, "use_idf", path, &t->opts.use_idf, NULL, err)) ||
        (st = ju_get_bool(j, "smooth_idf", path, &smooth, NULL, err)) ||
        (st = ju_get_bool(j, "sublinear_tf", path, &sublinear, NULL, err)) ||
        (st = ju_get_string(j, "norm", path, &norm, NULL, err)) ||
        (st = ju_get_string(j, "token_pattern", path, &pattern, NULL, err)))
        goto fail;
    if (!smooth || sublinear || strcmp(pattern, TFIDF_PATTERN)) {
        st = emb_fail(err, EMB_ERR_UNSUPPORTED, "%s: only smooth_idf, no sublinear_tf and token_pattern %s are supported",
                      path, TFIDF_PATTERN);
        goto fail;
    }
    if (!strcmp(norm, "l2")) t->opts.norm = TFIDF_NORM_L2;
    else if (!strcmp(norm, "l1")) t->opts.norm = TFIDF_NORM_L1;
    else if (!strcmp(norm, "none")) t->opts.norm = TFIDF_NORM_NONE;
    else { st = emb_fail(err, EMB_ERR_FORMAT, "%s: norm \"%s\" (expected l2, l1 or none)", path, norm); goto fail; }
    const cJSON *voc = cJSON_GetObjectItemCaseSensitive(j, "vocabulary");
    const cJSON *idf = cJSON_GetObjectItemCaseSensitive(j, "idf");
    int n = cJSON_GetArraySize(voc);
    if (!cJSON_IsArray(voc) || !cJSON_IsArray(idf) || cJSON_GetArraySize(idf) != n || n == 0) {
        st = emb_fail(err, EMB_ERR_FORMAT, "%s: \"vocabulary\" and \"idf\" must be arrays of the same, non-zero length", path);
        goto fail;
    }
    t->idf = malloc((size_t)n * sizeof *t->idf);
    if (!t->idf) { st = emb_fail(err, EMB_ERR_NOMEM, "out of memory"); goto fail; }
    const cJSON *v = voc->child, *w = idf->child;
    for (int k = 0; k < n; k++, v = v->next, w = w->next) {
        if (!cJSON_IsString(v) || !cJSON_IsNumber(w)) {
            st = emb_fail(err, EMB_ERR_FORMAT, "%s: vocabulary[%d] / idf[%d] has the wrong type", path, k, k);
            goto fail;
        }
        size_t before = t->n_terms;
        if (add_term(t, v->valuestring, strlen(v->valuestring)) < 0) { st = emb_fail(err, EMB_ERR_NOMEM, "out of memory"); goto fail; }
        if (t->n_terms == before) { st = emb_fail(err, EMB_ERR_FORMAT, "%s: vocabulary[%d] \"%s\" repeats", path, k, v->valuestring); goto fail; }
        t->idf[k] = w->valuedouble;
    }
    cJSON_Delete(j);
    *out = t;
    return EMB_OK;
fail:
    cJSON_Delete(j);
    emb_tfidf_free(t);
    return st;
}

/* ---- transforming ---------------------------------------------------------- */

typedef struct {
    const emb_tfidf *t;
    int32_t *idx;
    size_t n, cap;
    int oom;
} row_state;

static void collect_term(void *ud, const char *s, size_t n) {
    row_state *r = ud;
    int64_t k = find_term(r->t, s, n, NULL);
    if (k < 0) return;
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        int32_t *p = realloc(r->idx, cap * sizeof *p);
        if (!p) { r->oom = 1; return; }
        r->idx = p;
        r->cap = cap;
    }
    r->idx[r->n++] = (int32_t)k;
}

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

emb_status emb_tfidf_transform(const emb_tfidf *t, const char *text, size_t len, int32_t **idx,
                               double **val, size_t *cap, size_t *n, emb_error *err) {
    row_state r = {t, NULL, 0, 0, 0};
    emb_tfidf_analyze(text, len, t->opts.lowercase, collect_term, &r);
    *n = 0;
    if (r.oom) { free(r.idx); return emb_fail(err, EMB_ERR_NOMEM, "out of memory"); }
    if (r.n) qsort(r.idx, r.n, sizeof *r.idx, cmp_i32);
    if (r.n > *cap) {
        int32_t *pi = realloc(*idx, r.n * sizeof *pi);
        if (pi) *idx = pi;
        double *pv = realloc(*val, r.n * sizeof *pv);
        if (pv) *val = pv;
        if (!pi || !pv) { free(r.idx); return emb_fail(err, EMB_ERR_NOMEM, "out of memory"); }
        *cap = r.n;
    }
    size_t m = 0;
    for (size_t i = 0; i < r.n; i++) {
        if (m && (*idx)[m - 1] == r.idx[i]) { (*val)[m - 1] += 1; continue; }
        (*idx)[m] = r.idx[i];
        (*val)[m++] = 1;
    }
    double norm = 0;
    for (size_t i = 0; i < m; i++) {
        double v = t->opts.binary ? 1.0 : (*val)[i];
        if (t->opts.use_idf) v *= t->idf[(*idx)[i]];
        (*val)[i] = v;
        norm += t->opts.norm == TFIDF_NORM_L1 ? fabs(v) : v * v;
    }
    if (t->opts.norm == TFIDF_NORM_L2) norm = sqrt(norm);
    if (t->opts.norm != TFIDF_NORM_NONE && norm > 0)
        for (size_t i = 0; i < m; i++) (*val)[i] /= norm;
    free(r.idx);
    *n = m;
    return EMB_OK;
}
