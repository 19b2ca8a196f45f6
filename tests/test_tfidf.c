/*
 * TF-IDF / bag-of-words against scikit-learn (tests/golden/static/tfidf.json
 * from tools/make-static-golden): vocabulary, idf and every sparse row for
 * TfidfVectorizer's defaults, min_df / max_df / max_features, binary, plain
 * counts (CountVectorizer), one-hot, l1 without lowercasing; and the .npz
 * writer's zip and .npy structure (what scipy.sparse.load_npz reads).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cjson/cJSON.h>

#include "io.h"
#include "sparse.h"
#include "test_support.h"
#include "tfidf.h"

typedef struct {
    char **texts;
    size_t *lens;
    size_t n, next;
} docs;

static int docs_read(void *ud, const char **text, size_t *len, emb_error *err) {
    (void)err;
    docs *d = ud;
    if (d->next == d->n) return 0;
    *text = d->texts[d->next];
    *len = d->lens[d->next++];
    return 1;
}

static docs first_docs(size_t n) {
    docs d = {calloc(n, sizeof(char *)), calloc(n, sizeof(size_t)), 0, 0};
    io_reader *r;
    emb_error err;
    cr_assert_eq(io_reader_open(ts_src("tests/data/corpus/texts.jsonl"), IO_IN_JSONL, "text", &r, &err), EMB_OK);
    const char *t;
    size_t len;
    while (d.n < n && io_reader_next(r, &t, &len, &err) == 1) {
        d.texts[d.n] = malloc(len + 1);
        memcpy(d.texts[d.n], t, len);
        d.texts[d.n][len] = 0;
        d.lens[d.n++] = len;
    }
    io_reader_close(r);
    return d;
}

static const char *opt(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItem(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

Test(tfidf, matches_scikit_learn) {
    size_t len;
    char *txt = ts_read_file(ts_src("tests/golden/static/tfidf.json"), &len);
    cr_assert(txt, "tests/golden/static/tfidf.json missing (tools/make-static-golden)");
    cJSON *g = cJSON_ParseWithLength(txt, len);
    free(txt);
    docs d = first_docs((size_t)cJSON_GetObjectItem(g, "n_docs")->valueint);
    const cJSON *cfg, *base_vocab = NULL;
    int tested = 0;
    cJSON_ArrayForEach(cfg, cJSON_GetObjectItem(g, "configs")) {
        const char *name = cJSON_GetObjectItem(cfg, "name")->valuestring;
        const cJSON *o = cJSON_GetObjectItem(cfg, "options");
        emb_tfidf_options to = emb_tfidf_default_options();
        if (opt(o, "min_df")) { to.min_df = atof(opt(o, "min_df")); to.min_df_is_count = !strchr(opt(o, "min_df"), '.'); }
        if (opt(o, "max_df")) { to.max_df = atof(opt(o, "max_df")); to.max_df_is_count = !strchr(opt(o, "max_df"), '.'); }
        if (opt(o, "max_features")) to.max_features = (size_t)atol(opt(o, "max_features"));
        if (cJSON_IsTrue(cJSON_GetObjectItem(o, "binary"))) to.binary = 1;
        if (cJSON_IsTrue(cJSON_GetObjectItem(o, "no_idf"))) to.use_idf = 0;
        if (cJSON_IsTrue(cJSON_GetObjectItem(o, "no_lowercase"))) to.lowercase = 0;
        if (opt(o, "norm")) to.norm = !strcmp(opt(o, "norm"), "none") ? TFIDF_NORM_NONE
                                      : !strcmp(opt(o, "norm"), "l1") ? TFIDF_NORM_L1 : TFIDF_NORM_L2;
        d.next = 0;
        emb_tfidf *t = NULL;
        emb_error err;
        cr_assert_eq(emb_tfidf_fit(docs_read, &d, &to, &t, &err), EMB_OK, "%s: %s", name, err.message);
        /* Round trip through the model directory, as encode --model DIR does. */
        char *dir = ts_tmpdir();
        cr_assert_eq(emb_tfidf_save(t, dir, &err), EMB_OK, "%s", err.message);
        emb_tfidf_free(t);
        cr_assert(emb_tfidf_detect(dir));
        cr_assert_eq(emb_tfidf_load(dir, &t, &err), EMB_OK, "%s", err.message);
        const cJSON *voc = cJSON_GetObjectItem(cfg, "vocabulary"), *vidx = cJSON_GetObjectItem(cfg, "vocabulary_index");
        if (!base_vocab) base_vocab = voc;
        size_t nf = (size_t)cJSON_GetArraySize(voc ? voc : vidx);
        cr_assert_eq(emb_tfidf_features(t), nf, "%s: %zu features, scikit-learn %zu", name, emb_tfidf_features(t), nf);
        for (size_t k = 0; k < nf; k++) {
            const char *want = voc ? cJSON_GetArrayItem(voc, (int)k)->valuestring
                                   : cJSON_GetArrayItem(base_vocab, cJSON_GetArrayItem(vidx, (int)k)->valueint)->valuestring;
            cr_assert_str_eq(emb_tfidf_term(t, k), want, "%s: feature %zu", name, k);
        }
        const cJSON *indptr = cJSON_GetObjectItem(cfg, "indptr"), *indices = cJSON_GetObjectItem(cfg, "indices"),
                    *data = cJSON_GetObjectItem(cfg, "data");
        int32_t *idx = NULL;
        double *val = NULL;
        size_t cap = 0, n;
        for (size_t i = 0; i < d.n; i++) {
            cr_assert_eq(emb_tfidf_transform(t, d.texts[i], d.lens[i], &idx, &val, &cap, &n, &err), EMB_OK);
            int from = cJSON_GetArrayItem(indptr, (int)i)->valueint, to_ = cJSON_GetArrayItem(indptr, (int)i + 1)->valueint;
            cr_assert_eq((int)n, to_ - from, "%s doc %zu: %zu non-zeros, scikit-learn %d", name, i, n, to_ - from);
            for (size_t k = 0; k < n; k++) {
                cr_assert_eq(idx[k], cJSON_GetArrayItem(indices, from + (int)k)->valueint, "%s doc %zu entry %zu", name, i, k);
                double want = cJSON_GetArrayItem(data, from + (int)k)->valuedouble;
                cr_assert(fabs(val[k] - want) <= 1e-6 * fmax(1, fabs(want)), "%s doc %zu feature %d: %.12g vs %.12g",
                          name, i, idx[k], val[k], want);
            }
        }
        free(idx);
        free(val);
        emb_tfidf_free(t);
        char path[4200];
        snprintf(path, sizeof path, "%s/tfidf.json", dir);
        unlink(path);
        rmdir(dir);
        free(dir);
        tested++;
    }
    cr_assert_geq(tested, 8);
    for (size_t i = 0; i < d.n; i++) free(d.texts[i]);
    free(d.texts);
    free(d.lens);
    cJSON_Delete(g);
}

typedef struct {
    char words[16][32];
    int n;
} terms;

static void collect(void *ud, const char *s, size_t len) {
    terms *t = ud;
    if (t->n < 16) snprintf(t->words[t->n++], 32, "%.*s", (int)len, s);
}

Test(tfidf, analyzer_is_sklearns_token_pattern) {
    /* (?u)\b\w\w+\b after str.lower(): one-letter words dropped, '_' is a word
     * character, final sigma, U+0130 -> "i" + U+0307, combining marks split. */
    terms t = {.n = 0};
    const char *text = "A b2 __ x, \xce\x9f\xce\x94\xce\xa5\xce\xa3\xce\xa3\xce\x95\xce\xa5\xce\xa3 \xc4\xb0zmir nai\xcc\x88ve";
    emb_tfidf_analyze(text, strlen(text), 1, collect, &t);
    const char *want[] = {"b2", "__", "\xce\xbf\xce\xb4\xcf\x85\xcf\x83\xcf\x83\xce\xb5\xcf\x85\xcf\x82", "zmir", "nai", "ve"};
    cr_assert_eq(t.n, 6, "%d terms", t.n);
    for (int i = 0; i < 6; i++) cr_assert_str_eq(t.words[i], want[i], "term %d", i);
}

/* ---- the .npz writer --------------------------------------------------------- */

static uint32_t crc32_ref(const unsigned char *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    }
    return ~c;
}

static uint32_t rd32(const unsigned char *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }
static unsigned rd16(const unsigned char *p) { return p[0] | p[1] << 8; }

/* Finds member `name` in a stored zip, checks its CRC, returns its .npy payload after the header. */
static const unsigned char *member(const unsigned char *z, size_t zlen, const char *name, const char *descr,
                                   const char *shape, size_t *plen) {
    size_t pos = 0;
    while (pos + 30 <= zlen && rd32(z + pos) == 0x04034b50) {
        unsigned nl = rd16(z + pos + 26), el = rd16(z + pos + 28);
        uint32_t size = rd32(z + pos + 18), crc = rd32(z + pos + 14);
        cr_assert_eq(rd16(z + pos + 8), 0, "stored members only");
        const unsigned char *body = z + pos + 30 + nl + el;
        if (nl == strlen(name) && !memcmp(z + pos + 30, name, nl)) {
            cr_assert_eq(crc32_ref(body, size), crc, "%s: CRC", name);
            cr_assert(!memcmp(body, "\x93NUMPY\x01\x00", 8));
            unsigned hl = rd16(body + 8);
            cr_assert_eq((10 + hl) % 64, 0, "%s: npy header not 64-aligned", name);
            char hdr[256];
            snprintf(hdr, sizeof hdr, "%.*s", (int)hl, (const char *)body + 10);
            char want[128];
            snprintf(want, sizeof want, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, shape);
            cr_assert(!strncmp(hdr, want, strlen(want)), "%s header: %s", name, hdr);
            *plen = size - 10 - hl;
            return body + 10 + hl;
        }
        pos += 30 + nl + el + size;
    }
    cr_assert_fail("%s not in the zip", name);
    return NULL;
}

Test(tfidf, npz_is_scipy_csr) {
    char *dir = ts_tmpdir(), path[4200];
    snprintf(path, sizeof path, "%s/x.npz", dir);
    io_sparse_format f;
    cr_assert_eq(io_sparse_parse_format(NULL, path, &f), 0);
    cr_assert_eq(f, IO_SPARSE_NPZ);
    io_sparse_writer *w;
    emb_error err;
    cr_assert_eq(io_sparse_open(path, f, 7, &w, &err), EMB_OK);
    int32_t i0[] = {1, 5}, i2[] = {0, 3, 6};
    double v0[] = {0.5, -2}, v2[] = {1, 2, 3};
    cr_assert_eq(io_sparse_write(w, i0, v0, 2, &err), EMB_OK);
    cr_assert_eq(io_sparse_write(w, NULL, NULL, 0, &err), EMB_OK);   /* an empty document */
    cr_assert_eq(io_sparse_write(w, i2, v2, 3, &err), EMB_OK);
    cr_assert_eq(io_sparse_commit(w, &err), EMB_OK, "%s", err.message);
    io_sparse_close(w);
    size_t zlen, n;
    unsigned char *z = (unsigned char *)ts_read_file(path, &zlen);
    cr_assert(z);
    const unsigned char *ix = member(z, zlen, "indices.npy", "<i4", "(5,)", &n);
    cr_assert_eq(n, 20);
    int32_t want_ix[] = {1, 5, 0, 3, 6};
    cr_assert(!memcmp(ix, want_ix, sizeof want_ix));
    const unsigned char *ip = member(z, zlen, "indptr.npy", "<i4", "(4,)", &n);
    int32_t want_ip[] = {0, 2, 2, 5};
    cr_assert(n == 16 && !memcmp(ip, want_ip, sizeof want_ip));
    const unsigned char *dv = member(z, zlen, "data.npy", "<f8", "(5,)", &n);
    double want_d[] = {0.5, -2, 1, 2, 3};
    cr_assert(n == 40 && !memcmp(dv, want_d, sizeof want_d));
    const unsigned char *fm = member(z, zlen, "format.npy", "|S3", "()", &n);
    cr_assert(n == 3 && !memcmp(fm, "csr", 3));
    int64_t sh[2];
    memcpy(sh, member(z, zlen, "shape.npy", "<i8", "(2,)", &n), sizeof sh);   /* members are not aligned */
    cr_assert(n == 16 && sh[0] == 3 && sh[1] == 7);
    /* The end-of-central-directory record lists the five members. */
    cr_assert_eq(rd32(z + zlen - 22), 0x06054b50);
    cr_assert_eq(rd16(z + zlen - 22 + 10), 5);
    free(z);
    unlink(path);
    rmdir(dir);
    free(dir);
}
