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
#include "model_files.h"
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

/* Worst cosine of the CPU backend's vectors, encoded with eo, against
 * tests/golden/families/<name>/<ref>. */
static double worst_cos_ref(const char *name, const char *model, const family_data *d, const char *ref,
                            const emb_encode_options *eo) {
    emb_model_options mo = emb_model_default_options();
    mo.device = EMB_DEVICE_CPU;
    mo.threads = 2;
    emb_model *m = NULL;
    emb_error err = {0};
    cr_assert_eq(emb_model_load(model, &mo, &m, &err), EMB_OK, "%s: %s", name, err.message);
    char rel[256];
    snprintf(rel, sizeof rel, "tests/golden/families/%s/%s", name, ref);
    char *path = ts_src_path(rel);
    size_t rows, cols;
    float *want = npy_load(path, &rows, &cols);
    free(path);
    cr_assert_not_null(want);
    cr_assert_eq(rows, d->n);
    cr_assert_eq((size_t)emb_model_dim(m, eo), cols);
    float *got = malloc(rows * cols * sizeof *got);
    cr_assert_eq(emb_encode(m, (const char *const *)d->texts, NULL, d->n, eo, got, NULL, &err), EMB_OK, "%s: %s",
                 name, err.message);
    size_t worst_i;
    double worst = ts_worst_cos(got, want, rows, cols, &worst_i);
    cr_log_info("%s (%s): %zu vectors, worst cos %.8f (text %zu)", name, ref, rows, worst, worst_i);
    free(got);
    free(want);
    emb_model_free(m);
    return worst;
}

/* Worst cosine against ref.npy with default options. */
static double worst_cos_for(const char *name, const char *model, const family_data *d) {
    emb_encode_options eo = emb_encode_default_options();
    return worst_cos_ref(name, model, d, "ref.npy", &eo);
}

/* The CPU backend's vectors under encode options eo against the family's
 * reference `ref` (ref.npy, or an extra ref_<what>.npy): cos >= 0.99999. */
static void check_ref(const char *name, const char *ref, const emb_encode_options *eo) {
    family_data d;
    load_family(name, &d);
    char *dir = model_dir(name);
    double w = worst_cos_ref(name, dir, &d, ref, eo);
    cr_expect_geq(w, 0.99999, "%s %s: worst cos %.8f", name, ref, w);
    free(dir);
    free_family(&d);
}

static void check_family(const char *name) {
    family_data d;
    load_family(name, &d);
    check_ids(name, &d);
    free_family(&d);
    emb_encode_options eo = emb_encode_default_options();
    check_ref(name, "ref.npy", &eo);
}

TestSuite(families, .timeout = 300);

Test(families, distilbert) { check_family("distilbert"); }
Test(families, roberta) { check_family("roberta"); }
Test(families, xlm_roberta) { check_family("xlm-roberta"); }
Test(families, mpnet) { check_family("mpnet"); }
Test(families, modernbert) { check_family("modernbert"); }
Test(families, t5_gated_gelu) { check_family("t5"); }
Test(families, t5_relu) { check_family("t5-relu"); }

/* ---- decoders (decoder.c): causal attention, GQA, rotary, windows ---- */

Test(families, qwen3) { check_family("qwen3"); }
Test(families, mistral_sliding_window) { check_family("mistral"); }
Test(families, qwen2_biases_sliding_layers) { check_family("qwen2"); }
/* No sentence-transformers files and a LlamaForCausalLM config: last-token pooling. */
Test(families, llama_no_st_files) { check_family("llama"); }

/* Llama 3.x rope scaling ("llama3": factor 8, original_max_position_embeddings
 * 16, so every band of it moves the vectors of 128-token texts). */
Test(families, llama3_rope_scaling) { check_family("llama3"); }

/* Qwen3-Embedding's instruction prompt from config_sentence_transformers.json. */
Test(families, qwen3_query_prompt) {
    emb_encode_options eo = emb_encode_default_options();
    eo.prompt_name = "query";
    check_ref("qwen3", "ref_prompt.npy", &eo);
}

/* A base Llama with --pooling mean --layer 2 (of 3): transformers'
 * hidden_states[2] (no final norm) mean-pooled. */
Test(families, llama_mean_pooling_layer) {
    emb_encode_options eo = emb_encode_default_options();
    eo.pooling = EMB_POOL_MEAN;
    eo.layer = 2;
    check_ref("llama", "ref_layer2.npy", &eo);
    eo.layer = -2;   /* the same layer counted from the end */
    check_ref("llama", "ref_layer2.npy", &eo);
}

/* `embedc info`'s words for the model in dir. */
static char *describe_dir(const char *dir) {
    emb_model_options mo = emb_model_default_options();
    mo.device = EMB_DEVICE_CPU;
    emb_model *m = NULL;
    emb_error err = {0};
    cr_assert_eq(emb_model_load(dir, &mo, &m, &err), EMB_OK, "%s", err.message);
    char *s = emb_model_describe(m);
    emb_model_free(m);
    return s;
}

/* `embedc info`'s recipe words for each family. */
static char *describe(const char *name) {
    char *dir = model_dir(name);
    char *s = describe_dir(dir);
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

/* `embedc info` for the decoders: causal attention, windows, GQA. */
Test(families, info_describes_decoders) {
    char *s = describe("qwen3");
    expect_in(s, "family:          qwen3 (model_type qwen3)");
    expect_in(s, "pre-norm, RMSNorm (eps 1e-06), final norm");
    expect_in(s, "4 heads (2 KV heads) x 32, scale 0.176777, no biases");
    expect_in(s, "  layers 0-1:    causal, rope theta 1e+06");
    expect_in(s, "mlp:             gated SiLU, 64 -> 96, no biases");
    free(s);
    s = describe("mistral");
    expect_in(s, "4 heads (1 KV heads) x 16");
    expect_in(s, "  layers 0-1:    causal, window 7, rope theta 10000");
    free(s);
    s = describe("qwen2");
    expect_in(s, "x 16, scale 0.25, biases");
    expect_in(s, "  layer 0:       causal, rope theta 10000");
    expect_in(s, "  layers 1-2:    causal, window 7, rope theta 10000");
    free(s);
    s = describe("llama");
    expect_in(s, "  layers 0-2:    causal, rope theta 500");
    expect_in(s, "mlp:             gated SiLU, 64 -> 96, biases");
    free(s);
    s = describe("llama3");
    expect_in(s, "  layers 0-1:    causal, rope theta 500000, llama3 (factor 8, low 1, high 4, original 16) scaling");
    free(s);
}

/* A copy of golden model `name` in a fresh directory (symlinks resolved). */
static char *copy_model(const char *name) {
    char *src = model_dir(name);
    char *dir = ts_tmpdir();
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "cp -rL '%s'/. '%s'/", src, dir);
    cr_assert_eq(system(cmd), 0);
    free(src);
    return dir;
}

static void remove_dir(char *dir) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
    free(dir);
}

/* Rewrites dir/model.safetensors without tensor `name` (Python, stdlib only). */
static void drop_tensor(const char *dir, const char *name) {
    if (system("python3 -c 1 2>/dev/null") != 0) cr_skip_test("python3 not available");
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "python3 - '%s/model.safetensors' '%s' <<'EOF'\n"
             "import json, struct, sys\n"
             "p, name = sys.argv[1], sys.argv[2]\n"
             "raw = open(p, 'rb').read()\n"
             "n = struct.unpack('<Q', raw[:8])[0]\n"
             "h = json.loads(raw[8:8 + n])\n"
             "b, e = h.pop(name)['data_offsets']\n"
             "body = raw[8 + n:]\n"
             "body = body[:b] + body[e:]\n"
             "for k, v in h.items():\n"
             "    if k != '__metadata__' and v['data_offsets'][0] >= e:\n"
             "        v['data_offsets'] = [v['data_offsets'][0] - (e - b), v['data_offsets'][1] - (e - b)]\n"
             "hb = json.dumps(h).encode(); hb += b' ' * (-len(hb) %% 8)\n"
             "open(p, 'wb').write(struct.pack('<Q', len(hb)) + hb + body)\n"
             "EOF",
             dir, name);
    cr_assert_eq(system(cmd), 0);
}

/* Replaces the first `from` in dir/config.json by `to`. */
static void edit_config(const char *dir, const char *from, const char *to) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    size_t len;
    char *s = ts_read_file(path, &len);
    cr_assert_not_null(s);
    char *at = strstr(s, from);
    cr_assert_not_null(at, "config.json lacks %s", from);
    size_t lf = strlen(from), lt = strlen(to);
    char *o = malloc(len - lf + lt + 1);
    memcpy(o, s, (size_t)(at - s));
    memcpy(o + (at - s), to, lt);
    strcpy(o + (at - s) + lt, at + lf);
    cr_assert_eq(ts_write_file(path, o, strlen(o)), 0);
    free(o);
    free(s);
}

static void expect_load_error(const char *dir, emb_status code, const char *phrase) {
    emb_model_options mo = emb_model_default_options();
    mo.device = EMB_DEVICE_CPU;
    emb_model *m = NULL;
    emb_error err = {0};
    emb_status s = emb_model_load(dir, &mo, &m, &err);
    cr_assert_eq(s, code, "expected status %d, got %d: %s", code, s, err.message);
    cr_expect(strstr(err.message, phrase) != NULL, "message \"%s\" lacks \"%s\"", err.message, phrase);
    cr_expect(strstr(err.message, dir) != NULL, "message \"%s\" does not name the model %s", err.message, dir);
}

Test(families, malformed_missing_tensor) {
    char *dir = copy_model("mpnet");
    drop_tensor(dir, "encoder.relative_attention_bias.weight");
    expect_load_error(dir, EMB_ERR_FORMAT, "model.safetensors: missing tensor \"encoder.relative_attention_bias.weight\"");
    remove_dir(dir);
    dir = copy_model("modernbert");
    drop_tensor(dir, "layers.2.attn_norm.weight");
    expect_load_error(dir, EMB_ERR_FORMAT, "model.safetensors: missing tensor \"layers.2.attn_norm.weight\"");
    remove_dir(dir);
    dir = copy_model("t5");   /* relu expects wi, the file holds wi_0 / wi_1 */
    edit_config(dir, "\"feed_forward_proj\": \"gated-gelu\"", "\"feed_forward_proj\": \"relu\"");
    expect_load_error(dir, EMB_ERR_FORMAT,
                      "model.safetensors: missing tensor \"encoder.block.0.layer.1.DenseReluDense.wi.weight\"");
    remove_dir(dir);
    dir = copy_model("distilbert");
    drop_tensor(dir, "transformer.layer.1.ffn.lin2.bias");
    expect_load_error(dir, EMB_ERR_FORMAT, "model.safetensors: missing tensor \"transformer.layer.1.ffn.lin2.bias\"");
    remove_dir(dir);
}

Test(families, malformed_wrong_shape) {
    char *dir = copy_model("modernbert");
    edit_config(dir, "\"intermediate_size\": 96", "\"intermediate_size\": 80");
    expect_load_error(dir, EMB_ERR_FORMAT,
                      "model.safetensors: tensor \"layers.0.mlp.Wi.weight\": shape [192, 64], config.json implies [160, 64]");
    remove_dir(dir);
    dir = copy_model("t5");
    edit_config(dir, "\"d_kv\": 32", "\"d_kv\": 16");
    expect_load_error(dir, EMB_ERR_FORMAT,
                      "model.safetensors: tensor \"encoder.block.0.layer.0.SelfAttention.q.weight\": shape [96, 64], "
                      "config.json implies [48, 64]");
    remove_dir(dir);
    dir = copy_model("mpnet");
    edit_config(dir, "\"num_attention_heads\": 2", "\"num_attention_heads\": 4");
    expect_load_error(dir, EMB_ERR_FORMAT,
                      "model.safetensors: tensor \"encoder.relative_attention_bias.weight\": shape [32, 2], "
                      "config.json implies [32, 4]");
    remove_dir(dir);
    dir = copy_model("t5");
    edit_config(dir, "\"num_layers\": 2", "\"num_layers\": 1");
    expect_load_error(dir, EMB_ERR_FORMAT, "belongs to layer 1, but config.json num_layers is 1");
    remove_dir(dir);
}

/* Each case: golden model `family` with `from` replaced by `to` in its
 * config.json fails to load with `code` and a message holding `phrase`. */
typedef struct {
    const char *family, *from, *to, *phrase;
    emb_status code;
} config_case;

static void expect_config_refusals(const config_case *cases, size_t n) {
    for (size_t i = 0; i < n; i++) {
        char *dir = copy_model(cases[i].family);
        edit_config(dir, cases[i].from, cases[i].to);
        expect_load_error(dir, cases[i].code, cases[i].phrase);
        remove_dir(dir);
    }
}

Test(families, malformed_unknown_variant) {
    static const config_case cases[] = {
        {"t5", "\"feed_forward_proj\": \"gated-gelu\"", "\"feed_forward_proj\": \"gated-swoosh\"",
         "config.json: feed_forward_proj \"swoosh\" is not supported", EMB_ERR_UNSUPPORTED},
        {"modernbert", "\"sliding_attention\"", "\"chunked_attention\"",
         "config.json: layer_types[1] must be \"full_attention\" or \"sliding_attention\"", EMB_ERR_UNSUPPORTED},
        {"modernbert", "\"rope_type\": \"default\"", "\"rope_type\": \"yarn\"",
         "rope_type \"yarn\" is not supported (only \"default\")", EMB_ERR_UNSUPPORTED},
        {"mpnet", "\"relative_attention_num_buckets\": 32", "\"relative_attention_num_buckets\": 16",
         "config.json: relative_attention_num_buckets 16: MPNet always looks up 32 buckets", EMB_ERR_UNSUPPORTED},
        {"roberta", "\"model_type\": \"roberta\"", "\"model_type\": \"deberta-v2\"",
         "config.json: model_type \"deberta-v2\" is not supported (supported: bert, roberta, xlm-roberta, "
         "camembert, distilbert, mpnet, modernbert, t5, llama, mistral, qwen2, qwen3, gemma2, gemma3_text, gemma3)",
         EMB_ERR_UNSUPPORTED},
        {"roberta", "\"pad_token_id\": 1", "\"pad_token_id\": null",
         "config.json: pad_token_id is null, but roberta numbers positions from it", EMB_ERR_FORMAT},
        {"roberta", "\"model_type\": \"roberta\"", "\"position_embedding_type\": \"relative_key_query\", \"model_type\": \"roberta\"",
         "config.json: position_embedding_type \"relative_key_query\" is not supported (only \"absolute\")", EMB_ERR_UNSUPPORTED},
    };
    expect_config_refusals(cases, sizeof cases / sizeof cases[0]);
}

/* Worst cosine against the family's reference `ref` under eo (NULL: the
 * defaults) of golden model `family` with `from` replaced by `to` in its
 * config.json. */
static double edited_worst_cos(const char *family, const char *from, const char *to, const char *ref,
                               const emb_encode_options *eo) {
    char *dir = copy_model(family);
    edit_config(dir, from, to);
    family_data d;
    load_family(family, &d);
    emb_encode_options dflt = emb_encode_default_options();
    double w = worst_cos_ref(family, dir, &d, ref, eo ? eo : &dflt);
    free_family(&d);
    remove_dir(dir);
    return w;
}

/* The same model under model_type camembert runs the RoBERTa recipe. */
Test(families, camembert_is_roberta) {
    double w = edited_worst_cos("roberta", "\"model_type\": \"roberta\"", "\"model_type\": \"camembert\"",
                                "ref.npy", NULL);
    cr_expect_geq(w, 0.99999, "camembert: worst cos %.8f", w);
}

/* A DistilBERT checkpoint with sinusoidal_pos_embds and no stored position
 * table gets transformers' sinusoids computed: the golden model's table is
 * those sinusoids rounded to bf16, so the vectors stay close (not equal). */
Test(families, distilbert_computed_sinusoids) {
    char *dir = copy_model("distilbert");
    drop_tensor(dir, "embeddings.position_embeddings.weight");
    family_data d;
    load_family("distilbert", &d);
    double w = worst_cos_for("distilbert", dir, &d);
    cr_expect_geq(w, 0.999, "computed sinusoids: worst cos %.6f", w);
    free_family(&d);
    remove_dir(dir);
}

/* BERT-large shapes (UAE-Large-V1, bge-large: 24 layers, hidden 1024, 16
 * heads x 64, FFN 4096, vocab 30522): every tensor of a BertModel checkpoint
 * named in a safetensors header whose data is a sparse file of zeros (670 MB
 * apparent, no disk), so the loader's shape checks and the recipe run at the
 * real sizes without storing the weights. */
static void add_tensor(cJSON *hdr, const char *name, int64_t d0, int64_t d1, size_t *off) {
    cJSON *t = cJSON_CreateObject();
    cJSON_AddStringToObject(t, "dtype", "F16");
    cJSON *shape = cJSON_AddArrayToObject(t, "shape");
    cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)d0));
    if (d1) cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)d1));
    size_t bytes = (size_t)d0 * (size_t)(d1 ? d1 : 1) * 2;
    cJSON *offs = cJSON_AddArrayToObject(t, "data_offsets");
    cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)*off));
    cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(*off + bytes)));
    *off += bytes;
    cJSON_AddItemToObject(hdr, name, t);
}

Test(families, bert_large_shapes) {
    const int V = 30522, H = 1024, L = 24, I = 4096, P = 512;
    char *dir = ts_tmpdir();
    cJSON *hdr = cJSON_CreateObject();
    size_t off = 0;
    add_tensor(hdr, "embeddings.word_embeddings.weight", V, H, &off);
    add_tensor(hdr, "embeddings.position_embeddings.weight", P, H, &off);
    add_tensor(hdr, "embeddings.token_type_embeddings.weight", 2, H, &off);
    add_tensor(hdr, "embeddings.LayerNorm.weight", H, 0, &off);
    add_tensor(hdr, "embeddings.LayerNorm.bias", H, 0, &off);
    for (int l = 0; l < L; l++) {
        static const char *sq[] = {"attention.self.query", "attention.self.key", "attention.self.value",
                                   "attention.output.dense"};
        char n[160];
        for (int k = 0; k < 4; k++) {
            snprintf(n, sizeof n, "encoder.layer.%d.%s.weight", l, sq[k]);
            add_tensor(hdr, n, H, H, &off);
            snprintf(n, sizeof n, "encoder.layer.%d.%s.bias", l, sq[k]);
            add_tensor(hdr, n, H, 0, &off);
        }
        static const char *norms[] = {"attention.output.LayerNorm", "output.LayerNorm"};
        for (int k = 0; k < 2; k++) {
            snprintf(n, sizeof n, "encoder.layer.%d.%s.weight", l, norms[k]);
            add_tensor(hdr, n, H, 0, &off);
            snprintf(n, sizeof n, "encoder.layer.%d.%s.bias", l, norms[k]);
            add_tensor(hdr, n, H, 0, &off);
        }
        snprintf(n, sizeof n, "encoder.layer.%d.intermediate.dense.weight", l);
        add_tensor(hdr, n, I, H, &off);
        snprintf(n, sizeof n, "encoder.layer.%d.intermediate.dense.bias", l);
        add_tensor(hdr, n, I, 0, &off);
        snprintf(n, sizeof n, "encoder.layer.%d.output.dense.weight", l);
        add_tensor(hdr, n, H, I, &off);
        snprintf(n, sizeof n, "encoder.layer.%d.output.dense.bias", l);
        add_tensor(hdr, n, H, 0, &off);
    }
    char *hs = cJSON_PrintUnformatted(hdr);
    cJSON_Delete(hdr);
    size_t hl = strlen(hs), pad = (8 - hl % 8) % 8;
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    uint64_t n8 = hl + pad;
    fwrite(&n8, 8, 1, f);
    fwrite(hs, 1, hl, f);
    for (size_t i = 0; i < pad; i++) fputc(' ', f);
    fclose(f);
    free(hs);
    cr_assert_eq(truncate(path, (off_t)(8 + n8 + off)), 0);
    snprintf(path, sizeof path, "%s/config.json", dir);
    char cfg[1024];
    snprintf(cfg, sizeof cfg,
             "{\"model_type\": \"bert\", \"vocab_size\": %d, \"hidden_size\": %d, \"num_hidden_layers\": %d, "
             "\"num_attention_heads\": 16, \"intermediate_size\": %d, \"max_position_embeddings\": %d, "
             "\"type_vocab_size\": 2, \"layer_norm_eps\": 1e-12, \"hidden_act\": \"gelu\", "
             "\"position_embedding_type\": \"absolute\", \"torch_dtype\": \"float16\"}",
             V, H, L, I, P);
    cr_assert_eq(ts_write_file(path, cfg, strlen(cfg)), 0);

    emb_model_files mf;
    emb_error err = {0};
    cr_assert_eq(emb_mf_load(dir, &mf, &err), EMB_OK, "%s", err.message);
    const emb_recipe *r = &mf.r;
    cr_assert_eq(r->layers, 24);
    cr_assert_eq(r->hidden, 1024);
    cr_assert_eq(r->heads, 16);
    cr_assert_eq(r->head_dim, 64);
    cr_assert_eq(r->intermediate, 4096);
    cr_assert_eq(r->dtype, EMB_DTYPE_F16);
    cr_assert_eq(r->layer[23].w_down.shape[1], 4096);
    cr_assert_float_eq(r->scale, 0.125f, 1e-9);
    /* 2 x 302M matmul weights per token + attention at 512 tokens */
    double per_tok = emb_recipe_seq_flops(r, 24, 512) / 512;
    cr_assert_float_eq(per_tok, 24 * (2.0 * (4.0 * H * H + 2.0 * H * I) + 4.0 * 512 * H), 1.0);
    emb_mf_free(&mf);

    /* position_embedding_type other than absolute: refused, naming it */
    char *c2 = strstr(cfg, "\"absolute\"");
    memcpy(c2, "\"relative\"", 10);
    cr_assert_eq(ts_write_file(path, cfg, strlen(cfg)), 0);
    cr_assert_eq(emb_mf_load(dir, &mf, &err), EMB_ERR_UNSUPPORTED);
    cr_assert(strstr(err.message, "config.json: position_embedding_type \"relative\" is not supported"), "%s",
              err.message);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
    free(dir);
}

/* is_causal false in config.json: sentence-transformers' default pooling is
 * mean again (the attention stays causal, as transformers' Llama keeps it). */
Test(families, llama_not_causal_lm_pools_mean) {
    emb_encode_options eo = emb_encode_default_options();
    eo.layer = 2;
    double w = edited_worst_cos("llama", "\"tie_word_embeddings\": true",
                                "\"tie_word_embeddings\": true, \"is_causal\": false", "ref_layer2.npy", &eo);
    cr_expect_geq(w, 0.99999, "is_causal false: worst cos %.8f", w);
}

/* ---- decoders: config forms and refusals ---- */

/* The legacy rotary form (rope_theta + rope_scaling null) reads as
 * rope_parameters does. */
Test(families, llama_legacy_rope_theta) {
    double w = edited_worst_cos(
        "llama", "\"rope_parameters\": {\n    \"rope_theta\": 500.0,\n    \"rope_type\": \"default\"\n  }",
        "\"rope_theta\": 500.0, \"rope_scaling\": null", "ref.npy", NULL);
    cr_expect_geq(w, 0.99999, "legacy rope_theta: worst cos %.8f", w);
}

/* The per-frequency table decoder.c computes for model `dir` equals
 * transformers' (tests/golden/families/llama3/<npy>) bit for bit. */
static void expect_inv_freq(const char *dir, const char *npy) {
    emb_model_files mf;
    emb_error err = {0};
    cr_assert_eq(emb_mf_load(dir, &mf, &err), EMB_OK, "%s", err.message);
    char rel[256];
    snprintf(rel, sizeof rel, "tests/golden/families/llama3/%s", npy);
    char *path = ts_src_path(rel);
    size_t rows, cols;
    float *want = npy_load(path, &rows, &cols);
    free(path);
    cr_assert_not_null(want);
    cr_assert_eq(rows, 1);
    cr_assert_eq(cols * 2, (size_t)mf.r.rotary_dim);
    for (int l = 0; l < mf.r.layers; l++) {
        const float *got = mf.r.layer[l].rope_inv_freq;
        cr_assert_not_null(got, "%s: layer %d has no table", npy, l);
        for (size_t d = 0; d < cols; d++)
            cr_expect(memcmp(&got[d], &want[d], sizeof *got) == 0, "%s: layer %d inv_freq[%zu] %.9g, transformers %.9g",
                      npy, l, d, got[d], want[d]);
    }
    free(want);
    emb_mf_free(&mf);
}

/* transformers' _compute_llama3_parameters and (on the same config read as
 * rope_type "linear", factor 8) linear scaling, in torch's float32. */
Test(families, rope_scaling_tables_exact) {
    char *dir = model_dir("llama3");
    expect_inv_freq(dir, "inv_freq.npy");
    free(dir);
    dir = copy_model("llama3");
    edit_config(dir, "\"rope_type\": \"llama3\"", "\"rope_type\": \"linear\"");
    expect_inv_freq(dir, "inv_freq_linear.npy");
    remove_dir(dir);
}

/* Llama 3.x checkpoints write the legacy form: rope_theta beside a
 * rope_scaling object that holds the llama3 parameters. */
Test(families, llama3_legacy_rope_scaling) {
    double w = edited_worst_cos(
        "llama3",
        "\"rope_parameters\": {\n    \"factor\": 8.0,\n    \"high_freq_factor\": 4.0,\n    \"low_freq_factor\": 1.0,\n"
        "    \"original_max_position_embeddings\": 16,\n    \"rope_theta\": 500000.0,\n    \"rope_type\": \"llama3\"\n  }",
        "\"rope_theta\": 500000.0, \"rope_scaling\": {\"factor\": 8.0, \"high_freq_factor\": 4.0, "
        "\"low_freq_factor\": 1.0, \"original_max_position_embeddings\": 16, \"rope_type\": \"llama3\"}",
        "ref.npy", NULL);
    cr_expect_geq(w, 0.99999, "legacy rope_scaling: worst cos %.8f", w);
}

/* The ablation: the same model read without its scaling is far off. */
Test(families, llama3_scaling_matters) {
    double w = edited_worst_cos("llama3", "\"rope_type\": \"llama3\"", "\"rope_type\": \"default\"", "ref.npy",
                                NULL);
    cr_expect_lt(w, 0.99, "llama3 read as default rope: worst cos %.8f", w);
}

Test(families, decoder_refusals) {
    static const config_case cases[] = {
        {"llama", "\"rope_type\": \"default\"", "\"rope_type\": \"yarn\"",
         "config.json: rope_parameters: rope_type \"yarn\" is not supported (only \"default\", \"linear\", \"llama3\")",
         EMB_ERR_UNSUPPORTED},
        {"llama", "\"rope_type\": \"default\"", "\"rope_type\": \"llama3\"",
         "config.json: rope_parameters: missing \"factor\"", EMB_ERR_FORMAT},
        {"llama3", "\"high_freq_factor\": 4.0", "\"high_freq_factor\": 1.0",
         "config.json: rope_parameters: high_freq_factor 1 must be greater than low_freq_factor 1", EMB_ERR_FORMAT},
        /* families without the tables still refuse scaled rope */
        {"modernbert", "\"rope_theta\": 160000.0,\n      \"rope_type\": \"default\"",
         "\"rope_theta\": 160000.0, \"rope_type\": \"linear\", \"factor\": 2.0",
         "config.json: rope_parameters.full_attention: rope_type \"linear\" is not supported (only \"default\")",
         EMB_ERR_UNSUPPORTED},
        {"qwen2", "\"use_sliding_window\": true", "\"use_sliding_window\": false",
         "config.json: layer 1 is \"sliding_attention\" but sliding_window is null or use_sliding_window is false",
         EMB_ERR_FORMAT},
        {"mistral", "\"num_key_value_heads\": 1", "\"num_key_value_heads\": 3",
         "config.json: num_attention_heads 4 is not a multiple of num_key_value_heads 3", EMB_ERR_FORMAT},
        /* Qwen3's head_dim defaults to 128, not hidden / heads */
        {"qwen3", "\"head_dim\": 32,", "",
         "model.safetensors: tensor \"layers.0.self_attn.q_proj.weight\": shape [128, 64], config.json implies [512, 64]",
         EMB_ERR_FORMAT},
    };
    expect_config_refusals(cases, sizeof cases / sizeof cases[0]);
    char *dir = copy_model("qwen3");
    drop_tensor(dir, "layers.1.self_attn.k_norm.weight");
    expect_load_error(dir, EMB_ERR_FORMAT, "model.safetensors: missing tensor \"layers.1.self_attn.k_norm.weight\"");
    remove_dir(dir);
}

/* ---- Gemma (gemma2, gemma3) -------------------------------------------------
 * gemma3 is EmbeddingGemma-shaped (bidirectional, sliding window 8 = |i - j| <= 4,
 * 2 query heads / 1 KV head of 256, q/k norms, mean pooling + two Dense +
 * Normalize, prompts); gemma2 is causal with a soft-cap of 3 and last-token
 * pooling. tools/make-golden-families checks that the window, one key more on
 * each side of it, bidirectional attention and the soft-cap each move the
 * vectors well below the 0.99999 asked here. */

Test(families, gemma3) { check_family("gemma3"); }
Test(families, gemma2) { check_family("gemma2"); }

/* EmbeddingGemma's prompts (config_sentence_transformers.json, include_prompt true). */
Test(families, gemma3_prompts) {
    emb_encode_options eo = emb_encode_default_options();
    eo.prompt_name = "query";
    check_ref("gemma3", "ref_prompt_query.npy", &eo);
    eo.prompt_name = "document";
    check_ref("gemma3", "ref_prompt_document.npy", &eo);
}

Test(families, info_describes_gemma) {
    char *s = describe("gemma3");
    expect_in(s, "family:          gemma3 (model_type gemma3_text)");
    expect_in(s, "embeddings:      word 2501 x 32 x 5.65685, norm none");
    expect_in(s, "positions:       rotary (256 of 256 dims per head)");
    expect_in(s, "sandwich, RMSNorm (1 + w) (eps 1e-06), final norm");
    expect_in(s, "2 heads (1 KV heads) x 256, scale 0.0707107, no biases\n");
    expect_in(s, "  layer 0:       window -4..+4, rope theta 10000");
    expect_in(s, "  layer 1:       bidirectional, rope theta 1e+06");
    expect_in(s, "  layers 2-3:    window -4..+4, rope theta 10000");
    expect_in(s, "mlp:             gated GELU (tanh), 32 -> 64, no biases");
    expect_in(s, "fp16:            unsafe (Gemma activations leave fp16's range");
    free(s);
    s = describe("gemma2");
    expect_in(s, "family:          gemma2 (model_type gemma2)");
    expect_in(s, "2 heads (1 KV heads) x 128, scale 0.102062, no biases, softcap 3");
    expect_in(s, "  layer 0:       causal, window 7, rope theta 10000");
    expect_in(s, "  layer 1:       causal, rope theta 10000");
    expect_in(s, "pooling:         lasttoken");
    free(s);
}

/* The same thetas under the transformers 4.x keys give the same vectors;
 * swapped, they do not (each layer type reads its own). */
#define GEMMA3_ROPE_PARAMETERS \
    "\"rope_parameters\": {\n    \"full_attention\": {\n      \"rope_theta\": 1000000.0,\n" \
    "      \"rope_type\": \"default\"\n    },\n    \"sliding_attention\": {\n      \"rope_theta\": 10000.0,\n" \
    "      \"rope_type\": \"default\"\n    }\n  },"
Test(families, gemma3_legacy_rope_keys) {
    double w = edited_worst_cos("gemma3", GEMMA3_ROPE_PARAMETERS,
                                "\"rope_scaling\": null, \"rope_theta\": 1000000.0, \"rope_local_base_freq\": 10000.0,",
                                "ref.npy", NULL);
    cr_expect_geq(w, 0.99999, "legacy rope keys: worst cos %.8f", w);
    w = edited_worst_cos("gemma3", GEMMA3_ROPE_PARAMETERS, "\"rope_theta\": 10000.0, \"rope_local_base_freq\": 1000000.0,",
                         "ref.npy", NULL);
    cr_expect_lt(w, 0.999, "swapped thetas: worst cos %.8f", w);
}

/* A Gemma3ForConditionalGeneration checkpoint: model_type gemma3 with the
 * language model's config in text_config and its tensors under
 * model.language_model. (transformers 5). */
Test(families, gemma3_conditional_generation_checkpoint) {
    if (system("python3 -c 1 2>/dev/null") != 0) cr_skip_test("python3 not available");
    char *dir = copy_model("gemma3");
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "cd '%s' && python3 - <<'EOF'\n"
             "import json, struct\n"
             "c = json.load(open('config.json'))\n"
             "json.dump({'model_type': 'gemma3', 'text_config': c}, open('config.json', 'w'))\n"
             "raw = open('model.safetensors', 'rb').read()\n"
             "n = struct.unpack('<Q', raw[:8])[0]\n"
             "h = json.loads(raw[8:8 + n])\n"
             "h = {k if k == '__metadata__' else 'model.language_model.' + k: v for k, v in h.items()}\n"
             "hb = json.dumps(h).encode(); hb += b' ' * (-len(hb) %% 8)\n"
             "open('model.safetensors', 'wb').write(struct.pack('<Q', len(hb)) + hb + raw[8 + n:])\n"
             "EOF",
             dir);
    cr_assert_eq(system(cmd), 0);
    family_data d;
    load_family("gemma3", &d);
    double w = worst_cos_for("gemma3", dir, &d);
    cr_expect_geq(w, 0.99999, "gemma3 wrapped: worst cos %.8f", w);
    char *s = describe_dir(dir);
    expect_in(s, "family:          gemma3 (model_type gemma3)");
    free(s);
    free_family(&d);
    remove_dir(dir);
}

Test(families, gemma_refusals) {
    static const config_case cases[] = {
        {"gemma2", "\"use_bidirectional_attention\": null", "\"use_bidirectional_attention\": true",
         "config.json: use_bidirectional_attention is not supported for gemma2", EMB_ERR_UNSUPPORTED},
        {"gemma2", "\"sliding_window\": 8", "\"sliding_window\": null",
         "config.json: layer 0 is a sliding_attention layer but sliding_window is null", EMB_ERR_FORMAT},
        {"gemma3", "\"num_key_value_heads\": 1", "\"num_key_value_heads\": 3",
         "config.json: num_attention_heads 2 is not a multiple of num_key_value_heads 3", EMB_ERR_FORMAT},
        {"gemma3", "\"full_attention\": {\n      \"rope_theta\": 1000000.0,\n      \"rope_type\": \"default\"",
         "\"full_attention\": {\n      \"rope_theta\": 1000000.0,\n      \"rope_type\": \"linear\"",
         "rope_type \"linear\" is not supported (only \"default\")", EMB_ERR_UNSUPPORTED},
        {"gemma3", "\"model_type\": \"gemma3_text\"", "\"model_type\": \"gemma3\"",
         "config.json: model_type \"gemma3\" without a text_config object", EMB_ERR_FORMAT},
    };
    expect_config_refusals(cases, sizeof cases / sizeof cases[0]);
    char *dir = copy_model("gemma3");
    drop_tensor(dir, "layers.1.self_attn.k_norm.weight");
    expect_load_error(dir, EMB_ERR_FORMAT, "model.safetensors: missing tensor \"layers.1.self_attn.k_norm.weight\"");
    remove_dir(dir);
}

/* Added tokens past the embedding table (the golden tokenizer's <end_of_turn>
 * is id 2501 of 2501 rows, as EmbeddingGemma's <image_soft_token> is 262144 of
 * 262144): the document is refused, naming it and the token; an id inside
 * the table (<start_of_turn>, 2500) embeds. */
Test(families, gemma_ids_past_the_table) {
    char *dir = model_dir("gemma3");
    emb_model_options mo = emb_model_default_options();
    mo.device = EMB_DEVICE_CPU;
    emb_model *m = NULL;
    emb_error err = {0};
    cr_assert_eq(emb_model_load(dir, &mo, &m, &err), EMB_OK, "%s", err.message);
    emb_encode_options eo = emb_encode_default_options();
    const char *ok[] = {"hello", "a <start_of_turn> b"};
    float v[2 * 32];
    cr_assert_eq(emb_encode(m, ok, NULL, 2, &eo, v, NULL, &err), EMB_OK, "%s", err.message);
    const char *bad[] = {"hello", "a <end_of_turn> b", "c"};
    float v3[3 * 32];
    cr_assert_eq(emb_encode(m, bad, NULL, 3, &eo, v3, NULL, &err), EMB_ERR_INVALID_ARG);
    expect_in(err.message, "document 1: token ");
    expect_in(err.message, "\"<end_of_turn>\" (id 2501) has no row in the embedding table (config.json vocab_size 2501)");
    float tv[64 * 32];
    int32_t counts[3];
    memset(&err, 0, sizeof err);
    cr_assert_eq(emb_token_embeddings(m, bad, NULL, 3, &eo, tv, 64, counts, &err), EMB_ERR_INVALID_ARG);
    expect_in(err.message, "document 1: token ");
    expect_in(err.message, "(id 2501)");
    emb_model_free(m);
    free(dir);
}

/* Without sentence-transformers files (bge-multilingual-gemma2 ships its
 * last-token pooling in them), a Gemma2Model directory gets
 * sentence-transformers' default, mean pooling. */
Test(families, gemma2_without_st_files_mean_pools) {
    char *dir = copy_model("gemma2");
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "cd '%s' && rm -rf modules.json 1_Pooling sentence_bert_config.json "
             "config_sentence_transformers.json", dir);
    cr_assert_eq(system(cmd), 0);
    char *s = describe_dir(dir);
    expect_in(s, "pooling:         mean\n");
    free(s);
    remove_dir(dir);
}
