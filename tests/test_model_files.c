/*
 * The model-directory loader: the real default model, then a tiny BERT
 * written by the tests into a temporary directory and broken one field at a
 * time (config.json, tensor shapes and dtypes, pooling, Dense, prompts,
 * sharded indexes), and Hugging Face cache resolution.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model_files.h"
#include "safetensors.h"
#include "test_support.h"

/* The tiny model's sizes. */
enum { TH = 8, THEADS = 2, TL = 2, TI = 16, TV = 10, TP = 16, TT = 2 };

typedef struct {
    char name[160];
    char dtype[8];
    int ndim;
    uint64_t shape[2];
    int shard;        /* which file of a sharded model holds it */
    int skip;         /* 1: leave out of the file */
} tt;

typedef struct {
    tt t[80];
    int n;
} tlist;

static tt *tl_add(tlist *l, const char *prefix, const char *name, const char *dtype, int ndim, uint64_t d0,
                  uint64_t d1) {
    cr_assert_lt(l->n, 80);
    tt *t = &l->t[l->n++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s%s", prefix, name);
    snprintf(t->dtype, sizeof t->dtype, "%s", dtype);
    t->ndim = ndim;
    t->shape[0] = d0;
    t->shape[1] = d1;
    return t;
}

/* Every tensor of a BertModel checkpoint, plus the pooler and position_ids
 * buffer that the loader must ignore. */
static tlist tiny_tensors(const char *prefix, const char *dt) {
    tlist l = {.n = 0};
    tl_add(&l, prefix, "embeddings.position_ids", "I64", 2, 1, TP);
    tl_add(&l, prefix, "embeddings.word_embeddings.weight", dt, 2, TV, TH);
    tl_add(&l, prefix, "embeddings.position_embeddings.weight", dt, 2, TP, TH);
    tl_add(&l, prefix, "embeddings.token_type_embeddings.weight", dt, 2, TT, TH);
    tl_add(&l, prefix, "embeddings.LayerNorm.weight", dt, 1, TH, 0);
    tl_add(&l, prefix, "embeddings.LayerNorm.bias", dt, 1, TH, 0);
    for (int i = 0; i < TL; i++) {
        static const struct {
            const char *s;
            int nd;
            int d0, d1;
        } spec[] = {
            {"attention.self.query.weight", 2, TH, TH}, {"attention.self.query.bias", 1, TH, 0},
            {"attention.self.key.weight", 2, TH, TH},   {"attention.self.key.bias", 1, TH, 0},
            {"attention.self.value.weight", 2, TH, TH}, {"attention.self.value.bias", 1, TH, 0},
            {"attention.output.dense.weight", 2, TH, TH}, {"attention.output.dense.bias", 1, TH, 0},
            {"attention.output.LayerNorm.weight", 1, TH, 0}, {"attention.output.LayerNorm.bias", 1, TH, 0},
            {"intermediate.dense.weight", 2, TI, TH},   {"intermediate.dense.bias", 1, TI, 0},
            {"output.dense.weight", 2, TH, TI},         {"output.dense.bias", 1, TH, 0},
            {"output.LayerNorm.weight", 1, TH, 0},      {"output.LayerNorm.bias", 1, TH, 0},
        };
        for (size_t k = 0; k < sizeof spec / sizeof spec[0]; k++) {
            char nm[128];
            snprintf(nm, sizeof nm, "encoder.layer.%d.%s", i, spec[k].s);
            tt *t = tl_add(&l, prefix, nm, dt, spec[k].nd, (uint64_t)spec[k].d0, (uint64_t)spec[k].d1);
            t->shard = i;   /* layer i in shard i when sharded */
        }
    }
    tl_add(&l, prefix, "pooler.dense.weight", dt, 2, TH, TH);
    tl_add(&l, prefix, "pooler.dense.bias", dt, 1, TH, 0);
    return l;
}

static tt *tl_find(tlist *l, const char *name) {
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->t[i].name, name) == 0) return &l->t[i];
    cr_assert_fail("no tensor %s in the test list", name);
    return NULL;
}

static size_t dsize(const char *dt) {
    if (!strcmp(dt, "F32") || !strcmp(dt, "I32")) return 4;
    if (!strcmp(dt, "F16") || !strcmp(dt, "BF16")) return 2;
    if (!strcmp(dt, "I64") || !strcmp(dt, "F64")) return 8;
    return 1;
}

/* Element k of every float tensor: exactly representable in F32, F16, BF16. */
static float tiny_value(size_t k) { return 0.5f * (float)((int)(k % 7) - 3); }

static void put_value(uint8_t *p, const char *dt, float v) {
    uint32_t bits;
    memcpy(&bits, &v, 4);
    if (!strcmp(dt, "F32")) {
        memcpy(p, &v, 4);
    } else if (!strcmp(dt, "BF16")) {
        uint16_t h = (uint16_t)(bits >> 16);
        memcpy(p, &h, 2);
    } else if (!strcmp(dt, "F16")) {
        /* The values used are small multiples of 0.5: normal halves. */
        uint16_t h = 0;
        if (v != 0) {
            int e;
            float m = frexpf(fabsf(v), &e);   /* v = m * 2^e, m in [0.5, 1) */
            h = (uint16_t)((v < 0 ? 0x8000 : 0) | ((e - 1 + 15) << 10) | (int)((m * 2 - 1) * 1024));
        }
        memcpy(p, &h, 2);
    } else {
        memset(p, 0, dsize(dt));
    }
}

/* Writes the tensors of shard `shard` (-1: all) to path as safetensors. */
static void write_st(const char *path, const tlist *l, int shard) {
    size_t cap = 65536, hn = 0, off = 0;
    char *h = malloc(cap);
    hn += (size_t)snprintf(h + hn, cap - hn, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int i = 0; i < l->n; i++) {
        const tt *t = &l->t[i];
        if (t->skip || (shard >= 0 && t->shard != shard)) continue;
        size_t n = t->shape[0] * (t->ndim > 1 ? t->shape[1] : 1) * dsize(t->dtype);
        if (t->ndim == 1)
            hn += (size_t)snprintf(h + hn, cap - hn, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[%llu],\"data_offsets\":[%zu,%zu]}",
                                   t->name, t->dtype, (unsigned long long)t->shape[0], off, off + n);
        else
            hn += (size_t)snprintf(h + hn, cap - hn,
                                   ",\"%s\":{\"dtype\":\"%s\",\"shape\":[%llu,%llu],\"data_offsets\":[%zu,%zu]}",
                                   t->name, t->dtype, (unsigned long long)t->shape[0],
                                   (unsigned long long)t->shape[1], off, off + n);
        off += n;
    }
    hn += (size_t)snprintf(h + hn, cap - hn, "}");
    while (hn % 8) h[hn++] = ' ';
    cr_assert_lt(hn, cap);
    size_t len = 8 + hn + off;
    uint8_t *buf = calloc(1, len);
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)((uint64_t)hn >> (8 * i));
    memcpy(buf + 8, h, hn);
    uint8_t *p = buf + 8 + hn;
    for (int i = 0; i < l->n; i++) {
        const tt *t = &l->t[i];
        if (t->skip || (shard >= 0 && t->shard != shard)) continue;
        size_t numel = t->shape[0] * (t->ndim > 1 ? t->shape[1] : 1);
        for (size_t k = 0; k < numel; k++, p += dsize(t->dtype)) put_value(p, t->dtype, tiny_value(k));
    }
    cr_assert_eq(ts_write_file(path, buf, len), 0, "cannot write %s", path);
    free(buf);
    free(h);
}

static void write_text(const char *dir, const char *rel, const char *text) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    char *slash = strrchr(path, '/');
    /* One level of sub-folder (1_Pooling/, 2_Dense/) is all the tests need. */
    if (slash && slash > path + strlen(dir)) {
        *slash = 0;
        mkdir(path, 0755);
        *slash = '/';
    }
    cr_assert_eq(ts_write_file(path, text, strlen(text)), 0, "cannot write %s", path);
}

static const char *TINY_CONFIG =
    "{\n"
    "  \"architectures\": [\"BertModel\"],\n"
    "  \"model_type\": \"bert\",\n"
    "  \"vocab_size\": 10,\n"
    "  \"hidden_size\": 8,\n"
    "  \"num_hidden_layers\": 2,\n"
    "  \"num_attention_heads\": 2,\n"
    "  \"intermediate_size\": 16,\n"
    "  \"max_position_embeddings\": 16,\n"
    "  \"type_vocab_size\": 2,\n"
    "  \"pad_token_id\": 0,\n"
    "  \"hidden_act\": \"gelu\",\n"
    "  \"layer_norm_eps\": 1e-05,\n"
    "  \"position_embedding_type\": \"absolute\",\n"
    "  \"torch_dtype\": \"float32\"\n"
    "}\n";

/* s with the first `from` replaced by `to` (asserts it occurs). Caller frees. */
static char *repl(const char *s, const char *from, const char *to) {
    const char *at = strstr(s, from);
    cr_assert_not_null(at, "\"%s\" not in template", from);
    size_t n = strlen(s) - strlen(from) + strlen(to);
    char *r = malloc(n + 1);
    size_t pre = (size_t)(at - s);
    memcpy(r, s, pre);
    strcpy(r + pre, to);
    strcat(r, at + strlen(from));
    return r;
}

static void write_config_repl(const char *dir, const char *from, const char *to) {
    char *c = repl(TINY_CONFIG, from, to);
    write_text(dir, "config.json", c);
    free(c);
}

/* A tiny model directory: config.json + model.safetensors. */
static char *tiny_model_with(const tlist *l) {
    char *dir = ts_tmpdir();
    cr_assert_not_null(dir);
    write_text(dir, "config.json", TINY_CONFIG);
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    write_st(path, l, -1);
    return dir;
}

static char *tiny_model(void) {
    tlist l = tiny_tensors("", "F32");
    return tiny_model_with(&l);
}

static void load_ok(const char *dir, emb_model_files *mf) {
    emb_error err = {0};
    emb_status s = emb_mf_load(dir, mf, &err);
    cr_assert_eq(s, EMB_OK, "load failed: %s", err.message);
}

static void expect_fail(const char *dir, emb_status code, const char *phrase) {
    emb_model_files mf;
    emb_error err = {0};
    emb_status s = emb_mf_load(dir, &mf, &err);
    cr_assert_eq(s, code, "expected status %d, got %d (%s)", code, s, err.message);
    cr_assert_eq(err.code, code);
    cr_assert(strstr(err.message, phrase) != NULL, "message \"%s\" lacks \"%s\"", err.message, phrase);
    /* The message starts with the model directory. */
    cr_assert(strstr(err.message, dir) != NULL, "message \"%s\" does not name %s", err.message, dir);
    cr_assert_null(mf.dir);
    cr_assert_null(mf.priv);
}

/* ------------------------------------------------------------ real model */

Test(mf_real, default_model) {
    const char *m = ts_default_model();
    if (!m) cr_skip_test("default model not fetched");
    emb_model_files mf;
    load_ok(m, &mf);
    const emb_recipe *c = &mf.r;
    cr_assert_str_eq(c->model_type, "bert");
    cr_assert_str_eq(c->family, "bert");
    cr_assert_eq(c->vocab_size, 30522);
    cr_assert_eq(c->hidden, 384);
    cr_assert_eq(c->layers, 6);
    cr_assert_eq(c->heads, 12);
    cr_assert_eq(c->head_dim, 32);
    cr_assert_eq(c->intermediate, 1536);
    cr_assert_eq(c->max_position, 512);
    cr_assert_eq(c->emb.type_vocab, 2);
    cr_assert_eq(c->pad_token_id, 0);
    cr_assert_float_eq(c->layer[0].attn_norm.eps, 1e-12f, 1e-18);
    cr_assert_eq(c->act, EMB_ACT_GELU);
    cr_assert_eq(c->dtype, EMB_DTYPE_F32);
    cr_assert_eq(c->place, EMB_PLACE_POST);
    cr_assert_eq(c->emb.pos, EMB_EPOS_LEARNED);
    cr_assert_eq(c->emb.pos_pad_id, -1);
    cr_assert_eq(c->attn_pos, EMB_APOS_NONE);
    cr_assert_eq(c->gated, 0);
    cr_assert_float_eq(c->scale, 1.0f / sqrtf(32.0f), 1e-9);

    const emb_st_config *st = &mf.st;
    cr_assert_eq(st->pooling_modes, EMB_POOL_MEAN);
    cr_assert_eq(st->include_prompt, 1);
    cr_assert_eq(st->pooling_dim, 384);
    cr_assert_eq(st->n_dense, 0);
    cr_assert_eq(st->normalize, 1);
    cr_assert_eq(st->max_seq_length, 256);
    cr_assert_eq(st->do_lower_case, 0);
    cr_assert_eq(st->n_prompts, 0);
    cr_assert_null(st->default_prompt_name);
    cr_assert_str_eq(st->similarity_fn, "cosine");

    const emb_recipe *w = &mf.r;
    cr_assert_eq(w->emb.word.ndim, 2);
    cr_assert_eq(w->emb.word.shape[0], 30522);
    cr_assert_eq(w->emb.word.shape[1], 384);
    cr_assert_eq(w->emb.position.shape[0], 512);
    cr_assert_eq(w->emb.token_type.shape[0], 2);
    cr_assert_str_eq(w->layer[5].w_up.name, "encoder.layer.5.intermediate.dense.weight");
    cr_assert_eq(w->layer[5].w_up.shape[0], 1536);
    cr_assert_eq(w->layer[5].w_up.shape[1], 384);
    cr_assert_eq(w->layer[5].w_down.shape[0], 384);
    cr_assert_eq(w->layer[5].w_down.shape[1], 1536);
    for (int l = 0; l < 6; l++) {
        const emb_recipe_layer *L = &w->layer[l];
        const emb_tensor *t[] = {&L->wq, &L->bq, &L->wk, &L->bk, &L->wv, &L->bv, &L->wo, &L->bo,
                                 &L->attn_norm.w, &L->attn_norm.b, &L->w_up, &L->b_up, &L->w_down,
                                 &L->b_down, &L->mlp_norm.w, &L->mlp_norm.b};
        for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
            cr_assert_not_null(t[i]->data, "layer %d tensor %zu unbound", l, i);
            cr_assert_eq(t[i]->dtype, EMB_DTYPE_F32);
        }
        cr_assert_eq(L->window_left, -1);
        cr_assert_eq(L->window_right, -1);
    }
    /* Values straight from the file (checked against safetensors in Python). */
    float v[2];
    emb_tensor_to_f32(&w->layer[5].mlp_norm.w, v, 2);
    cr_assert_float_eq(v[0], 0.64597034f, 1e-7);
    cr_assert_float_eq(v[1], 0.6747911f, 1e-7);
    cr_assert_eq(emb_tensor_numel(&w->emb.word), (size_t)30522 * 384);
    cr_assert_str_eq(mf.dir, m);
    emb_mf_free(&mf);
    cr_assert_null(mf.dir);
}

/* ------------------------------------------------------------ tiny model */

static void check_tiny(const emb_model_files *mf, emb_dtype dt) {
    cr_assert_eq(mf->r.hidden, TH);
    cr_assert_eq(mf->r.layers, TL);
    cr_assert_eq(mf->r.head_dim, TH / THEADS);
    cr_assert_float_eq(mf->r.layer[1].mlp_norm.eps, 1e-5f, 1e-12);
    cr_assert_eq(mf->r.dtype, dt);
    cr_assert_eq(mf->r.emb.word.dtype, dt);
    cr_assert_eq(mf->r.layer[1].w_down.dtype, dt);
    float v[TH * TI];
    emb_tensor_to_f32(&mf->r.layer[1].w_down, v, TH * TI);
    for (size_t k = 0; k < TH * TI; k++) cr_assert_eq(v[k], tiny_value(k), "element %zu: %g", k, v[k]);
}

Test(mf_tiny, f32_defaults_without_sentence_transformers_files) {
    char *dir = tiny_model();
    emb_model_files mf;
    load_ok(dir, &mf);
    check_tiny(&mf, EMB_DTYPE_F32);
    /* No modules.json: what sentence-transformers would build. */
    cr_assert_eq(mf.st.pooling_modes, EMB_POOL_MEAN);
    cr_assert_eq(mf.st.include_prompt, 1);
    cr_assert_eq(mf.st.pooling_dim, TH);
    cr_assert_eq(mf.st.normalize, 0);
    cr_assert_eq(mf.st.n_dense, 0);
    cr_assert_eq(mf.st.max_seq_length, 0);
    cr_assert_str_eq(mf.st.similarity_fn, "cosine");
    emb_mf_free(&mf);
    free(dir);
}

Test(mf_tiny, f16_weights) {
    tlist l = tiny_tensors("", "F16");
    char *dir = tiny_model_with(&l);
    write_config_repl(dir, "\"float32\"", "\"float16\"");
    emb_model_files mf;
    load_ok(dir, &mf);
    check_tiny(&mf, EMB_DTYPE_F16);
    emb_mf_free(&mf);
    free(dir);
}

Test(mf_tiny, bf16_weights_and_dtype_key) {
    tlist l = tiny_tensors("", "BF16");
    char *dir = tiny_model_with(&l);
    /* transformers >= 4.56 spells it "dtype". */
    write_config_repl(dir, "\"torch_dtype\": \"float32\"", "\"dtype\": \"bfloat16\"");
    emb_model_files mf;
    load_ok(dir, &mf);
    check_tiny(&mf, EMB_DTYPE_BF16);
    emb_mf_free(&mf);
    free(dir);
}

Test(mf_tiny, bert_prefix_names) {
    tlist l = tiny_tensors("bert.", "F32");
    char *dir = tiny_model_with(&l);
    emb_model_files mf;
    load_ok(dir, &mf);
    check_tiny(&mf, EMB_DTYPE_F32);
    cr_assert_str_eq(mf.r.layer[0].wq.name, "bert.encoder.layer.0.attention.self.query.weight");
    emb_mf_free(&mf);
    free(dir);
}

Test(mf_tiny, layernorm_gamma_beta_names) {
    tlist l = tiny_tensors("", "F32");
    snprintf(tl_find(&l, "embeddings.LayerNorm.weight")->name, 160, "embeddings.LayerNorm.gamma");
    snprintf(tl_find(&l, "encoder.layer.1.output.LayerNorm.bias")->name, 160, "encoder.layer.1.output.LayerNorm.beta");
    char *dir = tiny_model_with(&l);
    emb_model_files mf;
    load_ok(dir, &mf);
    cr_assert_str_eq(mf.r.emb.norm.w.name, "embeddings.LayerNorm.gamma");
    cr_assert_str_eq(mf.r.layer[1].mlp_norm.b.name, "encoder.layer.1.output.LayerNorm.beta");
    emb_mf_free(&mf);
    free(dir);
}

Test(mf_tiny, config_defaults) {
    char *dir = tiny_model();
    char *c1 = repl(TINY_CONFIG, "  \"layer_norm_eps\": 1e-05,\n", "");
    char *c2 = repl(c1, "  \"type_vocab_size\": 2,\n", "");
    char *c3 = repl(c2, "  \"hidden_act\": \"gelu\",\n", "");
    char *c4 = repl(c3, "\"pad_token_id\": 0", "\"pad_token_id\": null");
    write_text(dir, "config.json", c4);
    emb_model_files mf;
    load_ok(dir, &mf);
    cr_assert_float_eq(mf.r.emb.norm.eps, 1e-12f, 1e-18);
    cr_assert_eq(mf.r.emb.type_vocab, 2);
    cr_assert_eq(mf.r.act, EMB_ACT_GELU);
    cr_assert_eq(mf.r.pad_token_id, -1);
    emb_mf_free(&mf);
    free(c1), free(c2), free(c3), free(c4), free(dir);
}

Test(mf_tiny, hidden_act_names) {
    static const struct {
        const char *name;
        emb_act act;
    } acts[] = {{"gelu_new", EMB_ACT_GELU_TANH}, {"gelu_pytorch_tanh", EMB_ACT_GELU_TANH},
                {"gelu_fast", EMB_ACT_GELU_TANH}, {"relu", EMB_ACT_RELU}, {"silu", EMB_ACT_SILU},
                {"swish", EMB_ACT_SILU}, {"tanh", EMB_ACT_TANH}, {"gelu", EMB_ACT_GELU}};
    char *dir = tiny_model();
    for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++) {
        char to[64];
        snprintf(to, sizeof to, "\"%s\"", acts[i].name);
        write_config_repl(dir, "\"gelu\"", to);
        emb_model_files mf;
        load_ok(dir, &mf);
        cr_assert_eq(mf.r.act, acts[i].act, "%s", acts[i].name);
        emb_mf_free(&mf);
    }
    free(dir);
}

/* ------------------------------------------------------- bad config.json */

Test(mf_config, wrong_fields) {
    char *dir = tiny_model();
    static const struct {
        const char *from, *to;
        emb_status code;
        const char *phrase;
    } cases[] = {
        {"\"hidden_size\": 8", "\"hidden_size\": 9", EMB_ERR_FORMAT,
         "config.json: hidden_size 9 is not divisible by num_attention_heads 2"},
        {"\"hidden_size\": 8", "\"hidden_size\": \"8\"", EMB_ERR_FORMAT,
         "config.json: field \"hidden_size\" must be an integer"},
        {"\"hidden_size\": 8", "\"hidden_size\": 0", EMB_ERR_FORMAT,
         "config.json: field \"hidden_size\" is 0, expected an integer in [1,"},
        {"\"num_hidden_layers\": 2", "\"num_hidden_layers\": 2.5", EMB_ERR_FORMAT,
         "field \"num_hidden_layers\" is 2.5"},
        {"\"vocab_size\": 10,", "", EMB_ERR_FORMAT, "config.json: missing field \"vocab_size\""},
        {"\"model_type\": \"bert\",", "", EMB_ERR_FORMAT, "config.json: missing field \"model_type\""},
        {"\"model_type\": \"bert\"", "\"model_type\": \"xlnet\"", EMB_ERR_UNSUPPORTED,
         "config.json: model_type \"xlnet\" is not supported (supported: bert, roberta"},
        {"\"absolute\"", "\"relative_key\"", EMB_ERR_UNSUPPORTED,
         "config.json: position_embedding_type \"relative_key\" is not supported"},
        {"\"gelu\"", "\"quick_gelu\"", EMB_ERR_UNSUPPORTED, "config.json: hidden_act \"quick_gelu\" is not supported"},
        {"\"float32\"", "\"float64\"", EMB_ERR_UNSUPPORTED, "config.json: torch_dtype \"float64\" is not supported"},
        {"1e-05", "-1", EMB_ERR_FORMAT, "config.json: layer_norm_eps -1 must be in (0, 1)"},
        {"1e-05", "\"small\"", EMB_ERR_FORMAT, "config.json: field \"layer_norm_eps\" must be a number"},
        {"\"pad_token_id\": 0", "\"pad_token_id\": -3", EMB_ERR_FORMAT, "field \"pad_token_id\" is -3"},
        {"\"torch_dtype\": \"float32\"\n}", "\"torch_dtype\": \"float32\",\n}", EMB_ERR_FORMAT,
         "config.json: invalid JSON"},
        {"\"hidden_size\": 8,", "\"hidden_size\": 8, \"hidden_size\": 16,", EMB_ERR_FORMAT,
         "config.json: duplicate key \"hidden_size\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_config_repl(dir, cases[i].from, cases[i].to);
        expect_fail(dir, cases[i].code, cases[i].phrase);
    }
    free(dir);
}

Test(mf_config, missing_config) {
    char *dir = ts_tmpdir();
    expect_fail(dir, EMB_ERR_IO, "config.json: cannot open");
    free(dir);
}

/* --------------------------------------------------- bad weight tensors */

Test(mf_weights, wrong_shape) {
    tlist l = tiny_tensors("", "F32");
    tl_find(&l, "encoder.layer.1.intermediate.dense.weight")->shape[0] = 7;
    char *dir = tiny_model_with(&l);
    expect_fail(dir, EMB_ERR_FORMAT,
                "model.safetensors: tensor \"encoder.layer.1.intermediate.dense.weight\": shape [7, 8], "
                "config.json implies [16, 8]");
    free(dir);
}

Test(mf_weights, wrong_rank) {
    tlist l = tiny_tensors("", "F32");
    tt *t = tl_find(&l, "embeddings.LayerNorm.bias");
    t->ndim = 2;
    t->shape[0] = 1;
    t->shape[1] = TH;
    char *dir = tiny_model_with(&l);
    expect_fail(dir, EMB_ERR_FORMAT, "tensor \"embeddings.LayerNorm.bias\": shape [1, 8], config.json implies [8]");
    free(dir);
}

Test(mf_weights, vocab_disagrees_with_config) {
    char *dir = tiny_model();
    write_config_repl(dir, "\"vocab_size\": 10", "\"vocab_size\": 11");
    expect_fail(dir, EMB_ERR_FORMAT,
                "tensor \"embeddings.word_embeddings.weight\": shape [10, 8], config.json implies [11, 8]");
    free(dir);
}

Test(mf_weights, wrong_dtype) {
    tlist l = tiny_tensors("", "F32");
    snprintf(tl_find(&l, "encoder.layer.0.attention.self.key.bias")->dtype, 8, "I32");
    char *dir = tiny_model_with(&l);
    expect_fail(dir, EMB_ERR_FORMAT,
                "model.safetensors: tensor \"encoder.layer.0.attention.self.key.bias\": dtype I32, expected "
                "F32, F16 or BF16");
    free(dir);
}

Test(mf_weights, mixed_dtypes) {
    tlist l = tiny_tensors("", "F32");
    snprintf(tl_find(&l, "encoder.layer.1.output.dense.bias")->dtype, 8, "F16");
    char *dir = tiny_model_with(&l);
    expect_fail(dir, EMB_ERR_FORMAT, "tensor \"encoder.layer.1.output.dense.bias\" is F16 but "
                                     "\"embeddings.word_embeddings.weight\" is F32: mixed dtypes");
    free(dir);
}

Test(mf_weights, missing_tensor) {
    tlist l = tiny_tensors("", "F32");
    tl_find(&l, "encoder.layer.1.output.dense.bias")->skip = 1;
    char *dir = tiny_model_with(&l);
    expect_fail(dir, EMB_ERR_FORMAT, "model.safetensors: missing tensor \"encoder.layer.1.output.dense.bias\"");
    free(dir);
    l = tiny_tensors("", "F32");
    tl_find(&l, "embeddings.word_embeddings.weight")->skip = 1;
    dir = tiny_model_with(&l);
    expect_fail(dir, EMB_ERR_FORMAT,
                "also tried the \"bert.\", \"roberta.\" and \"model.\" prefixes: model.safetensors: missing "
                "tensor \"embeddings.word_embeddings.weight\"");
    free(dir);
}

Test(mf_weights, more_layers_than_config) {
    char *dir = tiny_model();
    write_config_repl(dir, "\"num_hidden_layers\": 2", "\"num_hidden_layers\": 1");
    expect_fail(dir, EMB_ERR_FORMAT, "belongs to layer 1, but config.json num_hidden_layers is 1");
    free(dir);
}

Test(mf_weights, fewer_layers_than_config) {
    char *dir = tiny_model();
    write_config_repl(dir, "\"num_hidden_layers\": 2", "\"num_hidden_layers\": 3");
    expect_fail(dir, EMB_ERR_FORMAT, "missing tensor \"encoder.layer.2.attention.self.query.weight\"");
    free(dir);
}

Test(mf_weights, corrupt_safetensors_named) {
    char *dir = tiny_model();
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    size_t len;
    char *b = ts_read_file(path, &len);
    cr_assert_eq(ts_write_file(path, b, len - 1), 0);   /* truncate by one byte */
    free(b);
    expect_fail(dir, EMB_ERR_FORMAT, "model.safetensors: tensor data ends at byte");
    free(dir);
}

Test(mf_weights, pytorch_bin_only) {
    char *dir = ts_tmpdir();
    write_text(dir, "config.json", TINY_CONFIG);
    write_text(dir, "pytorch_model.bin", "PK");
    expect_fail(dir, EMB_ERR_UNSUPPORTED, "pytorch_model.bin: PyTorch pickles are not supported; convert");
    free(dir);
    dir = ts_tmpdir();
    write_text(dir, "config.json", TINY_CONFIG);
    expect_fail(dir, EMB_ERR_IO, "no model.safetensors or model.safetensors.index.json");
    free(dir);
}

/* ---------------------------------------------------------- sharded */


/* Writes shards model-0000{1,2}-of-00002.safetensors (layer 1 in shard 1,
 * the rest in shard 0) and an index; `override` replaces one tensor's shard
 * name in the index when non-NULL. */
static char *sharded_model(const char *override_tensor, const char *override_shard) {
    tlist l = tiny_tensors("", "F32");
    char *dir = ts_tmpdir();
    write_text(dir, "config.json", TINY_CONFIG);
    char path[512];
    static const char *shard[2] = {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"};
    for (int s = 0; s < 2; s++) {
        snprintf(path, sizeof path, "%s/%s", dir, shard[s]);
        write_st(path, &l, s);
    }
    size_t cap = 32768, n = 0;
    char *map = malloc(cap);
    map[0] = 0;
    for (int i = 0; i < l.n; i++) {
        const char *sh = shard[l.t[i].shard];
        if (override_tensor && strcmp(l.t[i].name, override_tensor) == 0) sh = override_shard;
        n += (size_t)snprintf(map + n, cap - n, "%s\"%s\": \"%s\"", i ? ", " : "", l.t[i].name, sh);
    }
    char *idx = malloc(cap + 100);
    snprintf(idx, cap + 100, "{\"metadata\": {\"total_size\": 1}, \"weight_map\": {%s}}", map);
    write_text(dir, "model.safetensors.index.json", idx);
    free(map);
    free(idx);
    return dir;
}

Test(mf_sharded, loads_from_two_shards) {
    char *dir = sharded_model(NULL, NULL);
    emb_model_files mf;
    load_ok(dir, &mf);
    check_tiny(&mf, EMB_DTYPE_F32);
    cr_assert_not_null(mf.r.layer[1].wq.data);
    cr_assert_neq(mf.r.layer[0].wq.data, mf.r.layer[1].wq.data);
    emb_mf_free(&mf);
    free(dir);
}

Test(mf_sharded, rejects_paths_in_shard_names) {
    static const char *bad[] = {"../model-00002-of-00002.safetensors", "sub/model.safetensors",
                                "/tmp/model.safetensors", "..", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *dir = sharded_model("encoder.layer.1.output.dense.bias", bad[i]);
        expect_fail(dir, EMB_ERR_FORMAT,
                    "model.safetensors.index.json: weight_map: tensor \"encoder.layer.1.output.dense.bias\": "
                    "shard");
        expect_fail(dir, EMB_ERR_FORMAT, "must be a bare file name in the model directory");
        free(dir);
    }
}

Test(mf_sharded, tensor_not_in_its_shard) {
    char *dir = sharded_model("encoder.layer.1.output.dense.bias", "model-00001-of-00002.safetensors");
    expect_fail(dir, EMB_ERR_FORMAT,
                "model.safetensors.index.json: tensor \"encoder.layer.1.output.dense.bias\" is mapped to shard "
                "\"model-00001-of-00002.safetensors\", which does not contain it");
    free(dir);
}

Test(mf_sharded, missing_shard_and_bad_index) {
    char *dir = sharded_model("encoder.layer.1.output.dense.bias", "model-00003-of-00002.safetensors");
    expect_fail(dir, EMB_ERR_IO, "model-00003-of-00002.safetensors: cannot open");
    write_text(dir, "model.safetensors.index.json", "{\"metadata\": {}}");
    expect_fail(dir, EMB_ERR_FORMAT, "model.safetensors.index.json: missing object \"weight_map\"");
    write_text(dir, "model.safetensors.index.json",
               "{\"weight_map\": {\"a\": \"model-00001-of-00002.safetensors\", \"a\": \"x.safetensors\"}}");
    expect_fail(dir, EMB_ERR_FORMAT, "model.safetensors.index.json: duplicate key \"a\" in \"weight_map\"");
    write_text(dir, "model.safetensors.index.json", "{\"weight_map\": {\"a\": 3}}");
    expect_fail(dir, EMB_ERR_FORMAT, "weight_map: shard of tensor \"a\" must be a string");
    free(dir);
}

/* ---------------------------------------------- sentence-transformers */

static const char *MODULES_POOL_NORM =
    "[{\"idx\": 0, \"name\": \"0\", \"path\": \"\", \"type\": \"sentence_transformers.models.Transformer\"},"
    " {\"idx\": 1, \"name\": \"1\", \"path\": \"1_Pooling\", \"type\": \"sentence_transformers.models.Pooling\"},"
    " {\"idx\": 2, \"name\": \"2\", \"path\": \"2_Normalize\", \"type\": \"sentence_transformers.models.Normalize\"}]";

static void pooling_case(const char *pooling_json, int want_modes, int want_include_prompt) {
    char *dir = tiny_model();
    write_text(dir, "modules.json", MODULES_POOL_NORM);
    write_text(dir, "1_Pooling/config.json", pooling_json);
    emb_model_files mf;
    load_ok(dir, &mf);
    cr_assert_eq(mf.st.pooling_modes, want_modes, "%s: modes %d", pooling_json, mf.st.pooling_modes);
    cr_assert_eq(mf.st.include_prompt, want_include_prompt);
    cr_assert_eq(mf.st.pooling_dim, TH);
    cr_assert_eq(mf.st.normalize, 1);
    emb_mf_free(&mf);
    free(dir);
}

Test(mf_st, pooling_legacy_booleans) {
    pooling_case("{\"word_embedding_dimension\": 8, \"pooling_mode_cls_token\": true, "
                 "\"pooling_mode_mean_tokens\": false, \"pooling_mode_max_tokens\": false, "
                 "\"pooling_mode_mean_sqrt_len_tokens\": false}",
                 EMB_POOL_CLS, 1);
    pooling_case("{\"word_embedding_dimension\": 8, \"pooling_mode_mean_tokens\": true, "
                 "\"pooling_mode_max_tokens\": true, \"pooling_mode_weightedmean_tokens\": true, "
                 "\"pooling_mode_lasttoken\": true, \"include_prompt\": false}",
                 EMB_POOL_MEAN | EMB_POOL_MAX | EMB_POOL_WEIGHTED_MEAN | EMB_POOL_LAST_TOKEN, 0);
    pooling_case("{\"word_embedding_dimension\": 8, \"pooling_mode_mean_sqrt_len_tokens\": true}",
                 EMB_POOL_MEAN_SQRT_LEN, 1);
    /* All false: sentence-transformers falls back to mean. */
    pooling_case("{\"word_embedding_dimension\": 8, \"pooling_mode_cls_token\": false}", EMB_POOL_MEAN, 1);
}

Test(mf_st, pooling_mode_string_and_list) {
    pooling_case("{\"embedding_dimension\": 8, \"pooling_mode\": \"lasttoken\", \"include_prompt\": false}",
                 EMB_POOL_LAST_TOKEN, 0);
    pooling_case("{\"embedding_dimension\": 8, \"pooling_mode\": \"weightedmean\"}", EMB_POOL_WEIGHTED_MEAN, 1);
    pooling_case("{\"word_embedding_dimension\": 8, \"pooling_mode\": [\"cls\", \"mean\"]}",
                 EMB_POOL_CLS | EMB_POOL_MEAN, 1);
    /* The string wins over legacy booleans. */
    pooling_case("{\"word_embedding_dimension\": 8, \"pooling_mode\": \"max\", \"pooling_mode_cls_token\": true}",
                 EMB_POOL_MAX, 1);
}

static void pooling_fail(const char *pooling_json, emb_status code, const char *phrase) {
    char *dir = tiny_model();
    write_text(dir, "modules.json", MODULES_POOL_NORM);
    write_text(dir, "1_Pooling/config.json", pooling_json);
    expect_fail(dir, code, phrase);
    free(dir);
}

Test(mf_st, bad_pooling_configs) {
    pooling_fail("{\"word_embedding_dimension\": 8, \"pooling_mode\": \"median\"}", EMB_ERR_FORMAT,
                 "1_Pooling/config.json: field \"pooling_mode\": unknown mode \"median\"");
    pooling_fail("{\"word_embedding_dimension\": 8, \"pooling_mode\": []}", EMB_ERR_FORMAT,
                 "1_Pooling/config.json: field \"pooling_mode\" must be a string or a non-empty list");
    pooling_fail("{\"word_embedding_dimension\": 8, \"pooling_mode\": 3}", EMB_ERR_FORMAT,
                 "must be a string or a non-empty list");
    pooling_fail("{\"word_embedding_dimension\": 8, \"pooling_mode\": [\"mean\", \"cls\"]}", EMB_ERR_UNSUPPORTED,
                 "field \"pooling_mode\": \"cls\" repeated or out of the order");
    pooling_fail("{\"word_embedding_dimension\": 8, \"pooling_mode\": [\"mean\", \"mean\"]}", EMB_ERR_UNSUPPORTED,
                 "\"mean\" repeated");
    pooling_fail("{\"word_embedding_dimension\": 8, \"pooling_mode_mean_tokens\": 1}", EMB_ERR_FORMAT,
                 "1_Pooling/config.json: field \"pooling_mode_mean_tokens\" must be true or false");
    pooling_fail("{\"word_embedding_dimension\": 16, \"pooling_mode\": \"mean\"}", EMB_ERR_FORMAT,
                 "1_Pooling/config.json: word_embedding_dimension 16 differs from config.json hidden_size 8");
    pooling_fail("{\"pooling_mode\": \"mean\"}", EMB_ERR_FORMAT,
                 "1_Pooling/config.json: missing field \"word_embedding_dimension\"");
    pooling_fail("{\"word_embedding_dimension\": 8, \"include_prompt\": \"yes\"}", EMB_ERR_FORMAT,
                 "field \"include_prompt\" must be true or false");
    pooling_fail("{\"word_embedding_dimension\": 8,", EMB_ERR_FORMAT, "1_Pooling/config.json: invalid JSON");
}

Test(mf_st, missing_pooling_config) {
    char *dir = tiny_model();
    write_text(dir, "modules.json", MODULES_POOL_NORM);
    expect_fail(dir, EMB_ERR_IO, "1_Pooling/config.json: cannot open");
    free(dir);
}

Test(mf_st, bad_modules) {
    char *dir = tiny_model();
    write_text(dir, "1_Pooling/config.json", "{\"word_embedding_dimension\": 8}");
    write_text(dir, "modules.json",
               "[{\"path\": \"\", \"type\": \"sentence_transformers.models.Transformer\"},"
               " {\"path\": \"1_LSTM\", \"type\": \"sentence_transformers.models.LSTM\"}]");
    expect_fail(dir, EMB_ERR_UNSUPPORTED, "modules.json: module 1: module type \"sentence_transformers.models.LSTM\" "
                                          "is not supported");
    write_text(dir, "modules.json",
               "[{\"path\": \"\", \"type\": \"sentence_transformers.models.Transformer\"},"
               " {\"path\": \"../1_Pooling\", \"type\": \"sentence_transformers.models.Pooling\"}]");
    expect_fail(dir, EMB_ERR_FORMAT, "modules.json: module 1: path \"../1_Pooling\" must stay inside");
    write_text(dir, "modules.json", "[{\"path\": \"\", \"type\": \"sentence_transformers.models.Transformer\"}]");
    expect_fail(dir, EMB_ERR_UNSUPPORTED, "modules.json: no Transformer + Pooling modules");
    write_text(dir, "modules.json", "{\"path\": \"\"}");
    expect_fail(dir, EMB_ERR_FORMAT, "modules.json: expected a JSON list of modules");
    write_text(dir, "modules.json", "[{\"path\": \"\"}]");
    expect_fail(dir, EMB_ERR_FORMAT, "modules.json: module 0: missing field \"type\"");
    free(dir);
}

static const char *MODULES_DENSE =
    "[{\"idx\": 0, \"name\": \"0\", \"path\": \"\", \"type\": \"sentence_transformers.models.Transformer\"},"
    " {\"idx\": 1, \"name\": \"1\", \"path\": \"1_Pooling\", \"type\": \"sentence_transformers.models.Pooling\"},"
    " {\"idx\": 2, \"name\": \"2\", \"path\": \"2_Dense\", \"type\": \"sentence_transformers.models.Dense\"},"
    " {\"idx\": 3, \"name\": \"3\", \"path\": \"3_Normalize\", \"type\": \"sentence_transformers.models.Normalize\"}]";

/* A model with CLS+mean pooling (dim 16) and a Dense 16 -> 4 with bias. */
static char *dense_model(const char *dense_cfg, const char *wdtype, uint64_t w_rows) {
    char *dir = tiny_model();
    write_text(dir, "modules.json", MODULES_DENSE);
    write_text(dir, "1_Pooling/config.json",
               "{\"word_embedding_dimension\": 8, \"pooling_mode_cls_token\": true, \"pooling_mode_mean_tokens\": true}");
    write_text(dir, "2_Dense/config.json", dense_cfg);
    tlist l = {.n = 0};
    tl_add(&l, "", "linear.weight", wdtype, 2, w_rows, 2 * TH);
    tl_add(&l, "", "linear.bias", wdtype, 1, 4, 0);
    char path[512];
    snprintf(path, sizeof path, "%s/2_Dense/model.safetensors", dir);
    write_st(path, &l, -1);
    return dir;
}

static const char *DENSE_CFG = "{\"in_features\": 16, \"out_features\": 4, \"bias\": true, "
                               "\"activation_function\": \"torch.nn.modules.activation.Tanh\"}";

Test(mf_st, dense_module) {
    char *dir = dense_model(DENSE_CFG, "F16", 4);
    emb_model_files mf;
    load_ok(dir, &mf);
    cr_assert_eq(mf.st.pooling_modes, EMB_POOL_CLS | EMB_POOL_MEAN);
    cr_assert_eq(mf.st.n_dense, 1);
    const emb_dense *d = &mf.st.dense[0];
    cr_assert_eq(d->in_features, 16);
    cr_assert_eq(d->out_features, 4);
    cr_assert_eq(d->has_bias, 1);
    cr_assert_eq(d->act, EMB_ACT_TANH);
    cr_assert_eq(d->w.dtype, EMB_DTYPE_F16);
    cr_assert_eq(d->w.shape[0], 4);
    cr_assert_eq(d->w.shape[1], 16);
    cr_assert_eq(d->b.shape[0], 4);
    cr_assert_str_eq(d->w.name, "linear.weight");
    float v[64];
    emb_tensor_to_f32(&d->w, v, 64);
    for (size_t k = 0; k < 64; k++) cr_assert_eq(v[k], tiny_value(k));
    cr_assert_eq(mf.st.normalize, 1);
    emb_mf_free(&mf);
    free(dir);
}

Test(mf_st, dense_activations_and_no_bias) {
    static const struct {
        const char *cfg;
        emb_act act;
        int bias;
    } cases[] = {
        {"{\"in_features\": 16, \"out_features\": 4, \"bias\": false, "
         "\"activation_function\": \"torch.nn.modules.linear.Identity\"}", EMB_ACT_IDENTITY, 0},
        {"{\"in_features\": 16, \"out_features\": 4, \"activation_function\": \"torch.nn.modules.activation.ReLU\"}",
         EMB_ACT_RELU, 1},
        {"{\"in_features\": 16, \"out_features\": 4}", EMB_ACT_TANH, 1},
        {"{\"in_features\": 16, \"out_features\": 4, \"activation_function\": null}", EMB_ACT_IDENTITY, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *dir = dense_model(cases[i].cfg, "F32", 4);
        emb_model_files mf;
        load_ok(dir, &mf);
        cr_assert_eq(mf.st.dense[0].act, cases[i].act, "case %zu", i);
        cr_assert_eq(mf.st.dense[0].has_bias, cases[i].bias, "case %zu", i);
        cr_assert_eq(mf.st.dense[0].b.data != NULL, cases[i].bias, "case %zu", i);
        emb_mf_free(&mf);
        free(dir);
    }
}

Test(mf_st, bad_dense) {
    char *dir = dense_model("{\"in_features\": 8, \"out_features\": 4}", "F32", 4);
    expect_fail(dir, EMB_ERR_FORMAT, "2_Dense/config.json: in_features 8, but the module before it outputs 16");
    free(dir);
    dir = dense_model(DENSE_CFG, "F32", 5);
    expect_fail(dir, EMB_ERR_FORMAT,
                "2_Dense/model.safetensors: tensor \"linear.weight\": shape [5, 16], config.json implies [4, 16]");
    free(dir);
    dir = dense_model(DENSE_CFG, "I32", 4);
    expect_fail(dir, EMB_ERR_FORMAT, "2_Dense/model.safetensors: tensor \"linear.weight\": dtype I32");
    free(dir);
    dir = dense_model("{\"in_features\": 16, \"out_features\": 4, \"activation_function\": \"my.Act\"}", "F32", 4);
    expect_fail(dir, EMB_ERR_UNSUPPORTED, "2_Dense/config.json: activation_function \"my.Act\" is not supported");
    free(dir);
    dir = dense_model("{\"out_features\": 4}", "F32", 4);
    expect_fail(dir, EMB_ERR_FORMAT, "2_Dense/config.json: missing field \"in_features\"");
    free(dir);
}

Test(mf_st, dense_pytorch_bin) {
    char *dir = dense_model(DENSE_CFG, "F32", 4);
    char path[512];
    snprintf(path, sizeof path, "%s/2_Dense/model.safetensors", dir);
    cr_assert_eq(remove(path), 0);
    expect_fail(dir, EMB_ERR_IO, "2_Dense/model.safetensors: missing");
    write_text(dir, "2_Dense/pytorch_model.bin", "PK");
    expect_fail(dir, EMB_ERR_UNSUPPORTED,
                "2_Dense/pytorch_model.bin: PyTorch pickles are not supported; convert the Dense weights to "
                "2_Dense/model.safetensors");
    free(dir);
}

Test(mf_st, sentence_bert_config) {
    char *dir = tiny_model();
    write_text(dir, "sentence_bert_config.json", "{\"max_seq_length\": 12, \"do_lower_case\": true}");
    emb_model_files mf;
    load_ok(dir, &mf);
    cr_assert_eq(mf.st.max_seq_length, 12);
    cr_assert_eq(mf.st.do_lower_case, 1);
    emb_mf_free(&mf);
    write_text(dir, "sentence_bert_config.json", "{\"max_seq_length\": 17}");
    expect_fail(dir, EMB_ERR_FORMAT,
                "sentence_bert_config.json: max_seq_length 17 exceeds the 16 positions config.json gives the model");
    write_text(dir, "sentence_bert_config.json", "{\"max_seq_length\": \"long\"}");
    expect_fail(dir, EMB_ERR_FORMAT, "sentence_bert_config.json: field \"max_seq_length\" must be an integer");
    free(dir);
}

Test(mf_st, prompts_and_similarity) {
    char *dir = tiny_model();
    write_text(dir, "config_sentence_transformers.json",
               "{\"prompts\": {\"query\": \"query: \", \"passage\": \"passage: \"}, "
               "\"default_prompt_name\": \"query\", \"similarity_fn_name\": \"dot\"}");
    emb_model_files mf;
    load_ok(dir, &mf);
    cr_assert_eq(mf.st.n_prompts, 2);
    cr_assert_str_eq(mf.st.prompts[0].name, "query");
    cr_assert_str_eq(mf.st.prompts[0].text, "query: ");
    cr_assert_str_eq(mf.st.prompts[1].name, "passage");
    cr_assert_str_eq(mf.st.prompts[1].text, "passage: ");
    cr_assert_str_eq(mf.st.default_prompt_name, "query");
    cr_assert_str_eq(mf.st.similarity_fn, "dot");
    emb_mf_free(&mf);

    write_text(dir, "config_sentence_transformers.json",
               "{\"prompts\": {}, \"default_prompt_name\": null, \"similarity_fn_name\": null}");
    load_ok(dir, &mf);
    cr_assert_eq(mf.st.n_prompts, 0);
    cr_assert_null(mf.st.default_prompt_name);
    cr_assert_str_eq(mf.st.similarity_fn, "cosine");
    emb_mf_free(&mf);

    write_text(dir, "config_sentence_transformers.json",
               "{\"prompts\": {\"query\": \"q: \"}, \"default_prompt_name\": \"doc\"}");
    expect_fail(dir, EMB_ERR_FORMAT,
                "config_sentence_transformers.json: default_prompt_name \"doc\" is not one of the prompts");
    write_text(dir, "config_sentence_transformers.json", "{\"prompts\": {\"query\": 1}}");
    expect_fail(dir, EMB_ERR_FORMAT, "config_sentence_transformers.json: prompt \"query\" must be a string");
    write_text(dir, "config_sentence_transformers.json", "{\"prompts\": [\"q\"]}");
    expect_fail(dir, EMB_ERR_FORMAT, "field \"prompts\" must be an object of strings");
    write_text(dir, "config_sentence_transformers.json", "{\"similarity_fn_name\": \"jaccard\"}");
    expect_fail(dir, EMB_ERR_UNSUPPORTED,
                "config_sentence_transformers.json: similarity_fn_name \"jaccard\" is not supported");
    free(dir);
}

/* ------------------------------------------------------ HF cache lookup */

/* HF_HOME/hub/models--org--tiny/snapshots/<rev>/ holding a tiny model. */
static char *make_cache(char **snap_out, const char *rev, int with_ref) {
    char *home = ts_tmpdir();
    char p[1024];
    static const char *parts[] = {"hub", "hub/models--org--tiny", "hub/models--org--tiny/snapshots",
                                  "hub/models--org--tiny/refs"};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", home, parts[i]);
        cr_assert_eq(mkdir(p, 0755), 0);
    }
    snprintf(p, sizeof p, "%s/hub/models--org--tiny/snapshots/%s", home, rev);
    cr_assert_eq(mkdir(p, 0755), 0);
    write_text(p, "config.json", TINY_CONFIG);
    tlist l = tiny_tensors("", "F32");
    char w[1100];
    snprintf(w, sizeof w, "%s/model.safetensors", p);
    write_st(w, &l, -1);
    if (with_ref) {
        char ref[1100];
        snprintf(ref, sizeof ref, "%s/hub/models--org--tiny/refs/main", home);
        char txt[64];
        snprintf(txt, sizeof txt, "%s\n", rev);
        cr_assert_eq(ts_write_file(ref, txt, strlen(txt)), 0);
    }
    *snap_out = strdup(p);
    unsetenv("HF_HUB_CACHE");
    setenv("HF_HOME", home, 1);
    return home;
}

Test(mf_resolve, repo_id_in_hf_cache) {
    char *snap;
    char *home = make_cache(&snap, "abc", 1);
    char *dir = NULL;
    emb_error err = {0};
    cr_assert_eq(emb_mf_resolve("org/tiny", &dir, &err), EMB_OK, "%s", err.message);
    cr_assert_str_eq(dir, snap);
    emb_model_files mf;
    load_ok(dir, &mf);
    cr_assert_eq(mf.r.hidden, TH);
    emb_mf_free(&mf);
    free(dir);

    cr_assert_eq(emb_mf_resolve("org/missing", &dir, &err), EMB_ERR_IO);
    cr_assert_null(dir);
    cr_assert(strstr(err.message, "model \"org/missing\": no such directory, and no snapshot in the Hugging Face "
                                  "cache at ") != NULL, "%s", err.message);
    cr_assert(strstr(err.message, "models--org--missing") != NULL, "%s", err.message);
    free(snap);
    free(home);
}

Test(mf_resolve, snapshot_without_ref) {
    char *snap;
    char *home = make_cache(&snap, "def456", 0);
    char *dir = NULL;
    emb_error err = {0};
    cr_assert_eq(emb_mf_resolve("org/tiny", &dir, &err), EMB_OK, "%s", err.message);
    cr_assert_str_eq(dir, snap);
    free(dir);
    free(snap);
    free(home);
}

Test(mf_resolve, hub_cache_env_wins) {
    char *snap;
    char *home = make_cache(&snap, "abc", 1);
    char hub[1024];
    snprintf(hub, sizeof hub, "%s/hub", home);
    setenv("HF_HOME", "/nonexistent", 1);
    setenv("HF_HUB_CACHE", hub, 1);
    char *dir = NULL;
    emb_error err = {0};
    cr_assert_eq(emb_mf_resolve("org/tiny", &dir, &err), EMB_OK, "%s", err.message);
    cr_assert_str_eq(dir, snap);
    free(dir);
    free(snap);
    free(home);
}

Test(mf_resolve, directories_and_bad_names) {
    char *tmp = ts_tmpdir();
    char *dir = NULL;
    emb_error err = {0};
    cr_assert_eq(emb_mf_resolve(tmp, &dir, &err), EMB_OK);
    cr_assert_str_eq(dir, tmp);
    free(dir);
    setenv("HF_HOME", tmp, 1);
    unsetenv("HF_HUB_CACHE");
    cr_assert_eq(emb_mf_resolve("no-such-model", &dir, &err), EMB_ERR_IO);
    cr_assert(strstr(err.message, "model \"no-such-model\": no such directory") != NULL, "%s", err.message);
    cr_assert_eq(emb_mf_resolve("../etc", &dir, &err), EMB_ERR_IO);
    cr_assert_eq(emb_mf_resolve("a/b/c", &dir, &err), EMB_ERR_IO);
    cr_assert_eq(emb_mf_resolve("", &dir, &err), EMB_ERR_INVALID_ARG);
    cr_assert_null(dir);
    free(tmp);
}

Test(mf_tiny, stored_dtype_wins_over_config) {
    /* config.json says float16, the file holds F32: backends must read what
     * is stored, so the recipe's dtype reports the storage dtype. */
    char *dir = tiny_model();
    write_config_repl(dir, "\"float32\"", "\"float16\"");
    emb_model_files mf;
    load_ok(dir, &mf);
    cr_assert_eq(mf.r.dtype, EMB_DTYPE_F32);
    emb_mf_free(&mf);
    free(dir);
}

Test(mf_st, module_order) {
    char *dir = dense_model(DENSE_CFG, "F32", 4);
    write_text(dir, "modules.json",
               "[{\"path\": \"\", \"type\": \"sentence_transformers.models.Transformer\"},"
               " {\"path\": \"1_Pooling\", \"type\": \"sentence_transformers.models.Pooling\"},"
               " {\"path\": \"3_Normalize\", \"type\": \"sentence_transformers.models.Normalize\"},"
               " {\"path\": \"2_Dense\", \"type\": \"sentence_transformers.models.Dense\"}]");
    expect_fail(dir, EMB_ERR_UNSUPPORTED, "modules.json: module 3: Dense must come after Pooling and before Normalize");
    write_text(dir, "modules.json",
               "[{\"path\": \"1_Pooling\", \"type\": \"sentence_transformers.models.Pooling\"},"
               " {\"path\": \"\", \"type\": \"sentence_transformers.models.Transformer\"}]");
    expect_fail(dir, EMB_ERR_UNSUPPORTED, "modules.json: module 0: Pooling must follow the Transformer");
    free(dir);
}
