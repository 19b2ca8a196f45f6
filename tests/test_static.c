/*
 * Static models against their references (goldens from tools/make-static-golden):
 * word2vec text and binary, GloVe, fastText .vec and .bin (unknown words from
 * their character n-grams) document vectors (mean,
 * max, sum) and out-of-vocabulary counts, gensim most_similar neighbours and
 * analogies, king - man + woman on GloVe 6B 50d and model2vec's int8 model on
 * the corpus (when tools/fetch-model fetched them), and a clear error naming
 * file and line for each kind of malformed word-vector file.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cjson/cJSON.h>

#include "embedc.h"
#include "engine.h"
#include "io.h"
#include "npy.h"
#include "static_vectors.h"
#include "test_support.h"

static const char *WORD_FILES[] = {"w2v.txt", "w2v.bin", "glove.txt", "fasttext.vec", "fasttext.bin"};

static cJSON *manifest(void) {
    size_t len;
    char *txt = ts_read_file(ts_src("tests/golden/static/manifest.json"), &len);
    cr_assert(txt, "tests/golden/static/manifest.json missing (tools/make-static-golden)");
    cJSON *j = cJSON_ParseWithLength(txt, len);
    free(txt);
    cr_assert(j);
    return j;
}

typedef struct {
    char **texts;
    size_t n;
} corpus;

/* Documents first, first+stride, ... of the committed corpus, at most max. */
static corpus read_corpus(size_t stride, size_t max) {
    corpus c = {calloc(max, sizeof(char *)), 0};
    io_reader *r;
    emb_error err;
    cr_assert_eq(io_reader_open(ts_src("tests/data/corpus/texts.jsonl"), IO_IN_JSONL, "text", &r, &err), EMB_OK);
    const char *t;
    size_t len, i = 0;
    while (c.n < max && io_reader_next(r, &t, &len, &err) == 1) {
        if (i++ % stride) continue;
        c.texts[c.n] = malloc(len + 1);
        memcpy(c.texts[c.n], t, len);
        c.texts[c.n++][len] = 0;
    }
    io_reader_close(r);
    return c;
}

static void corpus_free(corpus *c) {
    for (size_t i = 0; i < c->n; i++) free(c->texts[i]);
    free(c->texts);
}

static emb_model *load(const char *path) {
    emb_model_options mo = emb_model_default_options();
    mo.device = EMB_DEVICE_CPU;
    emb_model *m = NULL;
    emb_error err = {0};
    cr_assert_eq(emb_model_load(path, &mo, &m, &err), EMB_OK, "%s: %s", path, err.message);
    return m;
}

static const char *golden(const char *name) {
    static char buf[4096];
    snprintf(buf, sizeof buf, "tests/golden/static/%s", name);
    return ts_src(buf);
}

/* ---- word vectors ------------------------------------------------------- */

Test(static_words, document_vectors_match_gensim) {
    cJSON *man = manifest();
    int n_docs = cJSON_GetObjectItem(man, "n_docs")->valueint;
    corpus c = read_corpus(1, (size_t)n_docs);
    static const struct { const char *name; int bit; } pools[] = {
        {"mean", EMB_POOL_MEAN}, {"max", EMB_POOL_MAX}, {"sum", EMB_POOL_SUM}};
    for (size_t f = 0; f < sizeof WORD_FILES / sizeof *WORD_FILES; f++) {
        emb_model *m = load(golden(WORD_FILES[f]));
        for (size_t p = 0; p < 3; p++) {
            emb_encode_options eo = emb_encode_default_options();
            eo.pooling = pools[p].bit;
            int dim = emb_model_dim(m, &eo);
            float *out = malloc(c.n * (size_t)dim * sizeof *out);
            emb_encode_stats st;
            emb_error err;
            cr_assert_eq(emb_encode(m, (const char *const *)c.texts, NULL, c.n, &eo, out, &st, &err), EMB_OK,
                         "%s", err.message);
            char stem[256], npy[300];
            snprintf(stem, sizeof stem, "%s", WORD_FILES[f]);
            *strchr(stem, '.') = '_';
            snprintf(npy, sizeof npy, "%s_%s.npy", stem, pools[p].name);
            size_t rows, cols;
            float *ref = npy_load(golden(npy), &rows, &cols);
            cr_assert(ref && rows == c.n && (int)cols == dim, "%s", npy);
            for (size_t i = 0; i < rows; i++) {
                float scale = 1;
                for (size_t d = 0; d < cols; d++) scale = fmaxf(scale, fabsf(ref[i * cols + d]));
                for (size_t d = 0; d < cols; d++)
                    cr_assert(fabsf(out[i * cols + d] - ref[i * cols + d]) <= 1e-5f * scale,
                              "%s %s doc %zu dim %zu: %g vs gensim %g", WORD_FILES[f], pools[p].name, i, d,
                              out[i * cols + d], ref[i * cols + d]);
            }
            int want_oov = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(man, "models"),
                                                                   WORD_FILES[f]), "oov")->valueint;
            cr_assert_eq(st.oov, (uint64_t)want_oov, "%s: %llu out-of-vocabulary words, gensim side %d",
                         WORD_FILES[f], (unsigned long long)st.oov, want_oov);
            free(ref);
            free(out);
        }
        emb_model_free(m);
    }
    corpus_free(&c);
    cJSON_Delete(man);
}

typedef struct {
    const cJSON *want;   /* [[word, score], ...] */
    int i;
    const char *what;
} hit_check;

static void check_hit(void *ud, const char *word, double score) {
    hit_check *h = ud;
    const cJSON *e = cJSON_GetArrayItem(h->want, h->i);
    cr_assert(e, "%s: more neighbours than gensim gives", h->what);
    cr_assert_str_eq(word, cJSON_GetArrayItem(e, 0)->valuestring, "%s: neighbour %d", h->what, h->i);
    cr_assert(fabs(score - cJSON_GetArrayItem(e, 1)->valuedouble) < 1e-5, "%s: score of %s %g vs gensim %g",
              h->what, word, score, cJSON_GetArrayItem(e, 1)->valuedouble);
    h->i++;
}

static void check_neighbours(const emb_static_vectors *sv, const cJSON *similar, const cJSON *analogies,
                             const char *file) {
    const cJSON *q;
    int checked = 0;
    cJSON_ArrayForEach(q, similar) {
        int64_t row = emb_sv_lookup(sv, q->string, strlen(q->string));
        cr_assert(row >= 0, "%s: %s missing", file, q->string);
        char what[256];
        snprintf(what, sizeof what, "%s most_similar(%s)", file, q->string);
        hit_check h = {q, 0, what};
        int n = emb_sv_most_similar(sv, &row, 1, NULL, 0, 10, check_hit, &h);
        cr_assert_eq(n, cJSON_GetArraySize(q), "%s: %d hits", what, n);
        checked++;
    }
    const cJSON *a;
    cJSON_ArrayForEach(a, analogies) {
        const cJSON *w = cJSON_GetObjectItem(a, "words");
        int64_t r[3];
        for (int i = 0; i < 3; i++) {
            const char *s = cJSON_GetArrayItem(w, i)->valuestring;
            r[i] = emb_sv_lookup(sv, s, strlen(s));
            cr_assert(r[i] >= 0);
        }
        int64_t pos[2] = {r[0], r[2]};
        hit_check h = {cJSON_GetObjectItem(a, "result"), 0, file};
        emb_sv_most_similar(sv, pos, 2, &r[1], 1, 10, check_hit, &h);
        cr_assert_eq(h.i, 10);
        checked++;
    }
    cr_assert(checked > 0, "%s: nothing to check", file);
}

Test(static_words, neighbours_and_analogies_match_gensim) {
    cJSON *man = manifest();
    for (size_t f = 0; f < sizeof WORD_FILES / sizeof *WORD_FILES; f++) {
        const cJSON *g = cJSON_GetObjectItem(cJSON_GetObjectItem(man, "models"), WORD_FILES[f]);
        emb_static_vectors *sv;
        emb_error err;
        cr_assert_eq(emb_sv_load(golden(WORD_FILES[f]), &sv, &err), EMB_OK, "%s", err.message);
        cr_assert_eq((int)sv->n_words, cJSON_GetObjectItem(g, "words")->valueint);
        check_neighbours(sv, cJSON_GetObjectItem(g, "similar"), cJSON_GetObjectItem(g, "analogy"), WORD_FILES[f]);
        emb_sv_free(sv);
    }
    cJSON_Delete(man);
}

Test(static_words, fasttext_unknown_word_neighbours_match_gensim) {
    cJSON *man = manifest();
    const cJSON *g = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(man, "models"), "fasttext.bin"),
                                         "similar_oov"), *q;
    emb_static_vectors *sv;
    emb_error err;
    cr_assert_eq(emb_sv_load(golden("fasttext.bin"), &sv, &err), EMB_OK, "%s", err.message);
    float *v = malloc((size_t)sv->dim * sizeof *v);
    int n = 0;
    cJSON_ArrayForEach(q, g) {
        int64_t row;
        cr_assert_eq(emb_sv_word_vector(sv, q->string, strlen(q->string), v, &row), 2, "%s: not built from n-grams", q->string);
        const float *vecs[1] = {v};
        static const double one[1] = {1};
        hit_check h = {q, 0, q->string};
        cr_assert_eq(emb_sv_most_similar_vecs(sv, vecs, one, 1, NULL, 0, 10, check_hit, &h), 10);
        n++;
    }
    cr_assert_geq(n, 2);
    free(v);
    emb_sv_free(sv);
    cJSON_Delete(man);
}

Test(static_words, formats_detected) {
    static const sv_format want[] = {SV_WORD2VEC_TEXT, SV_WORD2VEC_BIN, SV_GLOVE_TEXT, SV_WORD2VEC_TEXT,
                                     SV_FASTTEXT_BIN};
    for (size_t f = 0; f < 5; f++) {
        emb_static_vectors *sv;
        emb_error err;
        cr_assert(emb_sv_detect(golden(WORD_FILES[f])));
        cr_assert_eq(emb_sv_load(golden(WORD_FILES[f]), &sv, &err), EMB_OK, "%s", err.message);
        cr_assert_eq(sv->format, want[f], "%s detected as %s", WORD_FILES[f], emb_sv_format_name(sv->format));
        emb_sv_free(sv);
    }
}

typedef struct {
    char words[16][16];
    int n;
} split_out;

static void collect(void *ud, const char *w, size_t len) {
    split_out *o = ud;
    if (o->n < 16) snprintf(o->words[o->n++], 16, "%.*s", (int)len, w);
}

Test(static_words, splitter_cuts_whitespace_and_punctuation) {
    split_out o = {.n = 0};
    const char *s = "Hello, world!\tit's 3.5\xc2\xa0km\xe2\x80\x94ok";
    cr_assert_eq(eng_split_words(s, strlen(s), collect, &o), 13);
    const char *want[] = {"Hello", ",", "world", "!", "it", "'", "s", "3", ".", "5", "km", "\xe2\x80\x94", "ok"};
    for (int i = 0; i < 13; i++) cr_assert_str_eq(o.words[i], want[i], "word %d", i);
}

/* ---- GloVe 6B 50d (tools/fetch-model glove-6b-50d) ---------------------- */

Test(static_glove, king_minus_man_plus_woman_is_queen) {
    const char *files[] = {"models/glove-6b-50d/glove.6B.50d.txt", "models/glove-6b-50d/glove.6B.50d.w2v.bin"};
    if (access(ts_src(files[0]), R_OK) != 0) cr_skip_test("models/glove-6b-50d absent (tools/fetch-model glove-6b-50d)");
    cJSON *man = manifest();
    const cJSON *g = cJSON_GetObjectItem(man, "glove_6b_50d");
    cr_assert(g, "manifest has no glove_6b_50d entry (re-run tools/make-static-golden with the model)");
    for (int f = 0; f < 2; f++) {
        emb_static_vectors *sv;
        emb_error err;
        cr_assert_eq(emb_sv_load(ts_src(files[f]), &sv, &err), EMB_OK, "%s", err.message);
        cr_assert_eq(sv->n_words, 400000);
        int64_t k = emb_sv_lookup(sv, "king", 4), man_ = emb_sv_lookup(sv, "man", 3), w = emb_sv_lookup(sv, "woman", 5);
        int64_t pos[2] = {k, w};
        const cJSON *an = cJSON_GetObjectItem(g, "analogy");
        cr_assert_str_eq(cJSON_GetArrayItem(cJSON_GetArrayItem(cJSON_GetObjectItem(an, "result"), 0), 0)->valuestring, "queen");
        hit_check h = {cJSON_GetObjectItem(an, "result"), 0, files[f]};
        emb_sv_most_similar(sv, pos, 2, &man_, 1, 10, check_hit, &h);
        cr_assert_eq(h.i, 10);
        check_neighbours(sv, cJSON_GetObjectItem(g, "similar"), NULL, files[f]);
        emb_sv_free(sv);
    }
    cJSON_Delete(man);
}

/* ---- model2vec (tools/fetch-model tokenlearn-static) --------------------- */

Test(static_model2vec, int8_quantized_vocabulary_matches_model2vec) {
    const char *dir = ts_src("models/tokenlearn-static");
    if (access(dir, R_OK) != 0) cr_skip_test("models/tokenlearn-static absent (tools/fetch-model tokenlearn-static)");
    size_t rows, cols;
    float *ref = npy_load(golden("tokenlearn_every20.npy"), &rows, &cols);
    cr_assert(ref, "tests/golden/static/tokenlearn_every20.npy missing");
    corpus c = read_corpus(20, rows);
    cr_assert_eq(c.n, rows);
    emb_model *m = load(dir);
    cr_assert_eq(emb_model_dim(m, NULL), (int)cols);
    float *out = malloc(rows * cols * sizeof *out);
    emb_error err;
    emb_encode_stats st;
    cr_assert_eq(emb_encode(m, (const char *const *)c.texts, NULL, c.n, NULL, out, &st, &err), EMB_OK, "%s", err.message);
    for (size_t i = 0; i < rows; i++) {
        double dot = 0, na = 0, nb = 0;
        for (size_t d = 0; d < cols; d++) {
            double a = out[i * cols + d], b = ref[i * cols + d];
            dot += a * b; na += a * a; nb += b * b;
        }
        if (na == 0 && nb == 0) continue;   /* no known token: zeros on both sides */
        cr_assert(dot / sqrt(na * nb) >= 0.99999, "document %zu: cosine %.7f with model2vec", i * 20,
                  dot / sqrt(na * nb));
    }
    free(out);
    free(ref);
    emb_model_free(m);
    corpus_free(&c);
}

/* ---- malformed files ----------------------------------------------------- */

static void expect_error(const char *name, const void *data, size_t len, const char *where, const char *what) {
    char *dir = ts_tmpdir(), path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    cr_assert_eq(ts_write_file(path, data, len), 0);
    emb_static_vectors *sv = NULL;
    emb_error err = {0};
    cr_assert_eq(emb_sv_load(path, &sv, &err), EMB_ERR_FORMAT, "%s: loaded (or wrong code): %s", name, err.message);
    char want[4200];
    snprintf(want, sizeof want, "%s%s", path, where);
    cr_assert(strstr(err.message, want), "%s: message does not name \"%s\": %s", name, want, err.message);
    cr_assert(strstr(err.message, what), "%s: message does not say \"%s\": %s", name, what, err.message);
    /* The library refuses it the same way. */
    emb_model *m = NULL;
    cr_assert_neq(emb_model_load(path, NULL, &m, &err), EMB_OK);
    unlink(path);
    rmdir(dir);
    free(dir);
}

Test(static_errors, truncated_binary) {
    char buf[64];
    float v[4] = {1, 2, 3, 4};
    size_t n = (size_t)snprintf(buf, sizeof buf, "3 4\na ");
    memcpy(buf + n, v, 16);
    n += 16;
    memcpy(buf + n, "b ", 2);
    n += 2;
    memcpy(buf + n, v, 7);   /* 7 of 16 bytes */
    n += 7;
    expect_error("trunc.bin", buf, n, ":3:", "truncated");
}

Test(static_errors, wrong_width_row) {
    const char *t = "2 3\nalpha 1 2 3\nbeta 1 2\n";
    expect_error("width.txt", t, strlen(t), ":3:", "row of 2 values, expected 3");
    const char *g = "alpha 1 2 3\nbeta 1 2 3 4\n";
    expect_error("width.glove.txt", g, strlen(g), ":2:", "row of 4 values, expected 3");
}

Test(static_errors, header_lying_about_counts) {
    const char *more = "3 2\na 1 2\nb 1 2\n";
    expect_error("few.txt", more, strlen(more), ": the header (line 1) says 3 words", "has 2");
    const char *fewer = "1 2\na 1 2\nb 1 2\n";
    expect_error("many.txt", fewer, strlen(fewer), ":3:", "more rows than the header");
    char buf[64];
    float v[2] = {1, 2};
    size_t n = (size_t)snprintf(buf, sizeof buf, "1 2\na ");
    memcpy(buf + n, v, 8);
    n += 8;
    n += (size_t)snprintf(buf + n, sizeof buf - n, "\nb ");
    memcpy(buf + n, v, 8);
    n += 8;
    expect_error("many.bin", buf, n, ": ", "header (line 1)");
}

Test(static_errors, non_utf8_word) {
    const char *t = "good 1 2\nbad\xff 1 2\n";
    expect_error("utf8.glove.txt", t, strlen(t), ":2:", "not valid UTF-8");
    char buf[64];
    float v[2] = {1, 2};
    size_t n = (size_t)snprintf(buf, sizeof buf, "1 2\n\xc3(x ");
    memcpy(buf + n, v, 8);
    n += 8;
    expect_error("utf8.bin", buf, n, ":2:", "not valid UTF-8");
}

Test(static_errors, not_a_number) {
    const char *t = "2 2\na 1 2\nb 1 x2\n";
    expect_error("nan.txt", t, strlen(t), ":3:", "\"x2\" is not a number");
}

/* ---- sentence-transformers StaticEmbedding ------------------------------- */

Test(static_st, static_embedding_matches_sentence_transformers) {
    size_t rows, cols;
    float *ref = npy_load(golden("st_static.npy"), &rows, &cols);
    cr_assert(ref, "tests/golden/static/st_static.npy missing");
    corpus c = read_corpus(1, rows);
    emb_model *m = load(golden("st-static"));
    cr_assert_eq(m->sv->format, SV_ST_STATIC);
    cr_assert(m->sv->normalize, "the Normalize module was not seen");
    float *out = malloc(rows * cols * sizeof *out);
    emb_error err;
    cr_assert_eq(emb_encode(m, (const char *const *)c.texts, NULL, c.n, NULL, out, NULL, &err), EMB_OK, "%s", err.message);
    for (size_t i = 0; i < rows * cols; i++)
        cr_assert(fabsf(out[i] - ref[i]) <= 1e-5f, "document %zu dim %zu: %g vs %g", i / cols, i % cols, out[i], ref[i]);
    free(out);
    free(ref);
    emb_model_free(m);
    corpus_free(&c);
}

Test(static_errors, truncated_fasttext_bin) {
    size_t len;
    char *bin = ts_read_file(golden("fasttext.bin"), &len);
    cr_assert(bin && len > 1000);
    expect_error("cut.bin", bin, len / 2, ": truncated in the input matrix", "bytes needed");
    expect_error("cut2.bin", bin, 3000, ": truncated in dictionary entry", "");
    expect_error("cut3.bin", bin, 200, ": the header says 292 dictionary entries", "bytes hold");
    free(bin);
}
