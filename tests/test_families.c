/*
 * Parity with sentence-transformers for every encoder family, on the tiny
 * seeded random-weight models of tests/golden/families/<name>/ (made by
 * tools/make-golden-families with transformers' own classes; weights large
 * enough that positions, windows and relative buckets move the vectors).
 * Per family: the tokenizer's ids equal sentence-transformers' ids, and the
 * CPU backend's vectors have cosine >= 0.99999 with the reference for every
 * text (texts up to 128 tokens: longer than every window and T5 distance).
 * Also: what `embedc info` says about each recipe, and DistilBERT's computed
 * sinusoidal table when a checkpoint does not store one.
 */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "embedc.h"
#include "npy.h"
#include "test_support.h"
#include "tokenizer.h"

typedef struct {
    char **texts;
    size_t n;
    cJSON *ids;
    int max_len;
} family_data;

static char **read_corpus(size_t *n_out) {
    char *path = ts_src_path("tests/data/corpus/texts.jsonl");
    size_t len;
    char *data = ts_read_file(path, &len);
    free(path);
    cr_assert_not_null(data, "corpus missing");
    size_t cap = 1024, n = 0;
    char **out = malloc(cap * sizeof *out);
    for (char *line = data, *nl; line < data + len; line = nl + 1) {
        nl = memchr(line, '\n', (size_t)(data + len - line));
        if (!nl) nl = data + len;
        cJSON *o = cJSON_ParseWithLength(line, (size_t)(nl - line));
        if (n == cap) out = realloc(out, (cap *= 2) * sizeof *out);
        out[n++] = strdup(cJSON_GetObjectItem(o, "text")->valuestring);
        cJSON_Delete(o);
    }
    free(data);
    *n_out = n;
    return out;
}

static cJSON *read_json(const char *rel) {
    char *path = ts_src_path(rel);
    char *s = ts_read_file(path, NULL);
    free(path);
    cr_assert_not_null(s, "missing %s: run tools/make-golden-families", rel);
    cJSON *j = cJSON_Parse(s);
    free(s);
    cr_assert_not_null(j, "%s: invalid JSON", rel);
    return j;
}

static void load_family(const char *name, family_data *d) {
    char rel[256];
    size_t corpus_n;
    char **corpus = read_corpus(&corpus_n);
    snprintf(rel, sizeof rel, "tests/golden/families/%s/texts.json", name);
    cJSON *t = read_json(rel);
    const cJSON *idx = cJSON_GetObjectItem(t, "texts");
    d->n = (size_t)cJSON_GetArraySize(idx);
    d->max_len = cJSON_GetObjectItem(t, "max_seq_length")->valueint;
    d->texts = malloc(d->n * sizeof *d->texts);
    for (size_t i = 0; i < d->n; i++) {
        size_t k = (size_t)cJSON_GetArrayItem(idx, (int)i)->valueint;
        cr_assert_lt(k, corpus_n);
        d->texts[i] = strdup(corpus[k]);
    }
    cJSON_Delete(t);
    for (size_t i = 0; i < corpus_n; i++) free(corpus[i]);
    free(corpus);
    snprintf(rel, sizeof rel, "tests/golden/families/%s/ids.json", name);
    d->ids = read_json(rel);
}

static void free_family(family_data *d) {
    for (size_t i = 0; i < d->n; i++) free(d->texts[i]);
    free(d->texts);
    cJSON_Delete(d->ids);
}

static char *model_dir(const char *name) {
    char rel[256];
    snprintf(rel, sizeof rel, "tests/golden/families/%s/model", name);
    return ts_src_path(rel);
}

/* Token ids of our tokenizer (truncated at max_seq_length) == sentence-transformers'. */
static void check_ids(const char *name, const family_data *d) {
    char *dir = model_dir(name);
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    free(dir);
    tok_tokenizer *tok = NULL;
    tok_error terr;
    cr_assert_eq(tok_load_file(path, &tok, &terr), 0, "%s", terr.message);
    tok_encoding e;
    tok_encoding_init(&e);
    for (size_t i = 0; i < d->n; i++) {
        cr_assert_eq(tok_encode(tok, d->texts[i], strlen(d->texts[i]), 1, (size_t)d->max_len, &e, &terr), 0,
                     "%s", terr.message);
        const cJSON *want = cJSON_GetArrayItem(d->ids, (int)i);
        cr_assert_eq(e.len, (size_t)cJSON_GetArraySize(want), "%s text %zu: %zu tokens, reference %d", name, i,
                     e.len, cJSON_GetArraySize(want));
        for (size_t k = 0; k < e.len; k++)
            cr_assert_eq(e.ids[k], cJSON_GetArrayItem(want, (int)k)->valueint, "%s text %zu token %zu", name, i, k);
    }
    tok_encoding_free(&e);
    tok_free(tok);
}

/* Worst cosine of the CPU backend's vectors against ref.npy. */
static double worst_cos_for(const char *name, const char *model, const family_data *d) {
    emb_model_options mo = emb_model_default_options();
    mo.device = EMB_DEVICE_CPU;
    mo.threads = 2;
    emb_model *m = NULL;
    emb_error err = {0};
    cr_assert_eq(emb_model_load(model, &mo, &m, &err), EMB_OK, "%s: %s", name, err.message);
    char rel[256];
    snprintf(rel, sizeof rel, "tests/golden/families/%s/ref.npy", name);
    char *path = ts_src_path(rel);
    size_t rows, cols;
    float *want = npy_load(path, &rows, &cols);
    free(path);
    cr_assert_not_null(want);
    cr_assert_eq(rows, d->n);
    emb_encode_options eo = emb_encode_default_options();
    cr_assert_eq((size_t)emb_model_dim(m, &eo), cols);
    float *got = malloc(rows * cols * sizeof *got);
    cr_assert_eq(emb_encode(m, (const char *const *)d->texts, NULL, d->n, &eo, got, NULL, &err), EMB_OK, "%s: %s",
                 name, err.message);
    double worst = 1;
    size_t worst_i = 0;
    for (size_t i = 0; i < rows; i++) {
        double dot = 0, na = 0, nb = 0;
        for (size_t j = 0; j < cols; j++) {
            double a = got[i * cols + j], b = want[i * cols + j];
            dot += a * b, na += a * a, nb += b * b;
        }
        double c = dot / sqrt(na * nb);
        if (!(c >= worst)) worst = c, worst_i = i;
    }
    cr_log_info("%s: %zu vectors, worst cos %.8f (text %zu)", name, rows, worst, worst_i);
    free(got);
    free(want);
    emb_model_free(m);
    return worst;
}

static void check_family(const char *name) {
    family_data d;
    load_family(name, &d);
    check_ids(name, &d);
    char *dir = model_dir(name);
    double w = worst_cos_for(name, dir, &d);
    cr_expect_geq(w, 0.99999, "%s: worst cos %.8f", name, w);
    free(dir);
    free_family(&d);
}

TestSuite(families, .timeout = 300);

Test(families, distilbert) { check_family("distilbert"); }
Test(families, roberta) { check_family("roberta"); }
Test(families, xlm_roberta) { check_family("xlm-roberta"); }
Test(families, mpnet) { check_family("mpnet"); }
Test(families, modernbert) { check_family("modernbert"); }
Test(families, t5_gated_gelu) { check_family("t5"); }
Test(families, t5_relu) { check_family("t5-relu"); }

/* `embedc info`'s recipe words for each family. */
static char *describe(const char *name) {
    char *dir = model_dir(name);
    emb_model_options mo = emb_model_default_options();
    mo.device = EMB_DEVICE_CPU;
    emb_model *m = NULL;
    emb_error err = {0};
    cr_assert_eq(emb_model_load(dir, &mo, &m, &err), EMB_OK, "%s", err.message);
    char *s = emb_model_describe(m);
    emb_model_free(m);
    free(dir);
    return s;
}

static void expect_in(const char *text, const char *phrase) {
    cr_expect(strstr(text, phrase) != NULL, "\"%s\" missing from:\n%s", phrase, text);
}

Test(families, info_describes_the_recipe) {
    char *s = describe("modernbert");
    expect_in(s, "family:          modernbert");
    expect_in(s, "positions:       rotary (32 of 32 dims per head)");
    expect_in(s, "pre-norm, LayerNorm (no bias)");
    expect_in(s, ", final norm");
    expect_in(s, "  layer 0:       bidirectional, rope theta 160000");
    expect_in(s, "  layers 1-2:    window -4..+4, rope theta 10000");
    expect_in(s, "  layer 3:       bidirectional, rope theta 160000");
    expect_in(s, "mlp:             gated GELU (erf), 64 -> 96, no biases");
    free(s);
    s = describe("mpnet");
    expect_in(s, "relative buckets (32 buckets, max distance 128, one table shared by all layers)");
    expect_in(s, "learned positions from padding_idx 1 + 1");
    expect_in(s, "post-norm, LayerNorm");
    free(s);
    s = describe("t5");
    expect_in(s, "family:          t5");
    expect_in(s, "pre-norm, RMSNorm");
    expect_in(s, "3 heads x 32, scale 1, no biases");
    expect_in(s, "mlp:             gated GELU (tanh), 64 -> 128, no biases");
    free(s);
    s = describe("distilbert");
    expect_in(s, "family:          distilbert");
    expect_in(s, "learned positions, norm LayerNorm");
    free(s);
}

/* A DistilBERT checkpoint with sinusoidal_pos_embds and no stored position
 * table gets transformers' sinusoids computed: the golden model's table is
 * those sinusoids rounded to bf16, so the vectors stay close (not equal). */
Test(families, distilbert_computed_sinusoids) {
    char *src = model_dir("distilbert");
    char *dir = ts_tmpdir();
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "cp -rL '%s'/. '%s'/ && python3 - '%s/model.safetensors' <<'EOF'\n"
             "import json, struct, sys\n"
             "p = sys.argv[1]\n"
             "raw = open(p, 'rb').read()\n"
             "n = struct.unpack('<Q', raw[:8])[0]\n"
             "h = json.loads(raw[8:8 + n])\n"
             "name = 'embeddings.position_embeddings.weight'\n"
             "b, e = h.pop(name)['data_offsets']\n"
             "body = raw[8 + n:]\n"
             "body = body[:b] + body[e:]\n"
             "for k, v in h.items():\n"
             "    if k != '__metadata__' and v['data_offsets'][0] >= e:\n"
             "        v['data_offsets'] = [v['data_offsets'][0] - (e - b), v['data_offsets'][1] - (e - b)]\n"
             "hb = json.dumps(h).encode(); hb += b' ' * (-len(hb) %% 8)\n"
             "open(p, 'wb').write(struct.pack('<Q', len(hb)) + hb + body)\n"
             "EOF",
             src, dir, dir);
    if (system("python3 -c 1 2>/dev/null") != 0) cr_skip_test("python3 not available");
    cr_assert_eq(system(cmd), 0);
    family_data d;
    load_family("distilbert", &d);
    double w = worst_cos_for("distilbert", dir, &d);
    cr_expect_geq(w, 0.999, "computed sinusoids: worst cos %.6f", w);
    free_family(&d);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
    free(dir);
    free(src);
}
