/*
 * The family table and what the family files share: config.json's
 * model_type picks a builder, the builder fills the recipe, and this file
 * then checks what holds for every family (one storage dtype for all encoder
 * tensors). Also the recipe's derived facts used elsewhere: the T5/MPNet
 * relative-position bucket, FLOPs per sequence (engine), and the recipe in
 * words (`embedc info`).
 */
#include "arch.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "json_util.h"

static const struct {
    const char *model_type;
    emb_arch_build_fn build;
} families[] = {
    {"bert", emb_arch_bert},
    {"roberta", emb_arch_bert},
    {"xlm-roberta", emb_arch_bert},
    {"camembert", emb_arch_bert},
    {"distilbert", emb_arch_distilbert},
    {"mpnet", emb_arch_mpnet},
    {"modernbert", emb_arch_modernbert},
    {"t5", emb_arch_t5},
    {"llama", emb_arch_decoder},
    {"mistral", emb_arch_decoder},
    {"qwen2", emb_arch_decoder},
    {"qwen3", emb_arch_decoder},
    {"gemma2", emb_arch_gemma2},
    {"gemma3_text", emb_arch_gemma3},
    {"gemma3", emb_arch_gemma3},
};
#define N_FAMILIES (sizeof families / sizeof families[0])

/* ---- config helpers ----------------------------------------------------- */

emb_status arch_need_int(const cJSON *j, const char *key, int lo, int hi, int *out, emb_error *err) {
    int present = 0;
    emb_status s = ju_get_int(j, key, "config.json", lo, hi, out, &present, err);
    if (s == EMB_OK && !present)
        s = emb_fail(err, EMB_ERR_FORMAT, "config.json: missing field \"%s\"", key);
    return s;
}

emb_status arch_opt_int(const cJSON *j, const char *key, int lo, int hi, int *out, emb_error *err) {
    return ju_get_int(j, key, "config.json", lo, hi, out, NULL, err);
}

emb_status arch_opt_float(const cJSON *j, const char *key, double lo, double hi, float *out,
                          emb_error *err) {
    double v = *out;
    int present = 0;
    emb_status s = ju_get_double(j, key, "config.json", &v, &present, err);
    if (s || !present) return s;
    if (!(v > lo && v < hi))
        return emb_fail(err, EMB_ERR_FORMAT, "config.json: %s %g must be in (%g, %g)", key, v, lo, hi);
    *out = (float)v;
    return EMB_OK;
}

static const struct {
    const char *name;
    emb_act act;
} act_names[] = {
    {"gelu", EMB_ACT_GELU},          {"gelu_new", EMB_ACT_GELU_TANH},
    {"gelu_pytorch_tanh", EMB_ACT_GELU_TANH}, {"gelu_fast", EMB_ACT_GELU_TANH},
    {"relu", EMB_ACT_RELU},          {"silu", EMB_ACT_SILU},
    {"swish", EMB_ACT_SILU},         {"tanh", EMB_ACT_TANH},
    {"sigmoid", EMB_ACT_SIGMOID},    {"linear", EMB_ACT_IDENTITY},
};

emb_status arch_act(const char *name, const char *key, emb_act *out, emb_error *err) {
    for (size_t i = 0; i < sizeof act_names / sizeof act_names[0]; i++)
        if (strcmp(name, act_names[i].name) == 0) {
            *out = act_names[i].act;
            return EMB_OK;
        }
    return emb_fail(err, EMB_ERR_UNSUPPORTED, "config.json: %s \"%.64s\" is not supported", key, name);
}

const char *arch_act_name(emb_act a) {
    switch (a) {
    case EMB_ACT_IDENTITY: return "identity";
    case EMB_ACT_GELU: return "GELU (erf)";
    case EMB_ACT_GELU_TANH: return "GELU (tanh)";
    case EMB_ACT_RELU: return "ReLU";
    case EMB_ACT_SILU: return "SiLU";
    case EMB_ACT_TANH: return "tanh";
    case EMB_ACT_SIGMOID: return "sigmoid";
    }
    return "?";
}

emb_status arch_hf_sizes(const cJSON *j, emb_recipe *r, emb_error *err) {
    emb_status s;
    if ((s = arch_need_int(j, "vocab_size", 1, ARCH_MAX_VOCAB, &r->vocab_size, err)) ||
        (s = arch_need_int(j, "hidden_size", 1, ARCH_MAX_HIDDEN, &r->hidden, err)) ||
        (s = arch_need_int(j, "num_hidden_layers", 1, ARCH_MAX_LAYERS, &r->layers, err)) ||
        (s = arch_need_int(j, "num_attention_heads", 1, ARCH_MAX_HIDDEN, &r->heads, err)))
        return s;
    return arch_need_int(j, "intermediate_size", 1, ARCH_MAX_INTERMEDIATE, &r->intermediate, err);
}

static emb_status rope_params(const cJSON *j, const char *type, const char *legacy, float dflt, int scaled,
                              arch_rope *out, emb_error *err);

static emb_status pre_rotary(const cJSON *j, const arch_rotary_keys *k, const char *act_dflt, emb_recipe *r,
                             float *eps, int scaled, arch_rope *full, arch_rope *sliding, emb_error *err) {
    r->place = EMB_PLACE_PRE;
    r->gated = 1;
    r->attn_pos = EMB_APOS_ROTARY;
    r->rotary_dim = r->head_dim;
    const char *act = act_dflt;
    emb_status s;
    if ((s = arch_opt_float(j, k->eps, 0, 1, eps, err)) ||
        (s = ju_get_string(j, k->act, "config.json", &act, NULL, err)) || (s = arch_act(act, k->act, &r->act, err)) ||
        (s = rope_params(j, "full_attention", k->theta_full, full->theta, scaled, full, err)))
        return s;
    return rope_params(j, "sliding_attention", k->theta_sliding, sliding->theta, scaled, sliding, err);
}

emb_status arch_pre_rotary(const cJSON *j, const arch_rotary_keys *k, const char *act_dflt, emb_recipe *r,
                           float *eps, float *theta_full, float *theta_sliding, emb_error *err) {
    arch_rope full = {.theta = *theta_full}, sliding = {.theta = *theta_sliding};
    emb_status s = pre_rotary(j, k, act_dflt, r, eps, 0, &full, &sliding, err);
    *theta_full = full.theta;
    *theta_sliding = sliding.theta;
    return s;
}

emb_status arch_pre_rotary_scaled(const cJSON *j, const arch_rotary_keys *k, const char *act_dflt, emb_recipe *r,
                                  float *eps, arch_rope *full, arch_rope *sliding, emb_error *err) {
    return pre_rotary(j, k, act_dflt, r, eps, 1, full, sliding, err);
}

emb_status arch_layer_type(const cJSON *j, int layers, int l, int *sliding, emb_error *err) {
    const cJSON *types = cJSON_GetObjectItemCaseSensitive(j, "layer_types");
    if (!types || cJSON_IsNull(types)) return EMB_OK;
    if (!cJSON_IsArray(types) || cJSON_GetArraySize(types) != layers)
        return emb_fail(err, EMB_ERR_FORMAT, "config.json: layer_types must be a list of num_hidden_layers (%d) "
                        "strings", layers);
    const cJSON *t = cJSON_GetArrayItem(types, l);
    if (cJSON_IsString(t) && strcmp(t->valuestring, "sliding_attention") == 0) *sliding = 1;
    else if (cJSON_IsString(t) && strcmp(t->valuestring, "full_attention") == 0) *sliding = 0;
    else
        return emb_fail(err, EMB_ERR_UNSUPPORTED,
                        "config.json: layer_types[%d] must be \"full_attention\" or \"sliding_attention\"", l);
    return EMB_OK;
}

/* Binds layers.<l>.<suffix> (weight [d0, d1], bias [d0] when bias). */
static emb_status bind_hf_linear(const emb_weights *w, int l, const char *suffix, int64_t d0, int64_t d1, int bias,
                                 emb_tensor *wt, emb_tensor *bt, emb_error *err) {
    char n[160];
    snprintf(n, sizeof n, "layers.%d.%s", l, suffix);
    return arch_bind_linear(w, n, d0, d1, bias, wt, bt, err);
}

emb_status arch_bind_hf_attention(const emb_weights *w, const emb_recipe *r, int l, int qkv_bias, int o_bias,
                                  emb_norm_kind qk_norm, float eps, emb_error *err) {
    emb_recipe_layer *L = &r->layer[l];
    const int64_t H = r->hidden, HD = r->head_dim, QD = (int64_t)r->heads * HD, KVD = (int64_t)r->kv_heads * HD;
    emb_status s;
    if ((s = bind_hf_linear(w, l, "self_attn.q_proj", QD, H, qkv_bias, &L->wq, &L->bq, err)) ||
        (s = bind_hf_linear(w, l, "self_attn.k_proj", KVD, H, qkv_bias, &L->wk, &L->bk, err)) ||
        (s = bind_hf_linear(w, l, "self_attn.v_proj", KVD, H, qkv_bias, &L->wv, &L->bv, err)) ||
        (s = bind_hf_linear(w, l, "self_attn.o_proj", H, QD, o_bias, &L->wo, &L->bo, err)) || !qk_norm)
        return s;
    char n[160];
    snprintf(n, sizeof n, "layers.%d.self_attn.q_norm", l);
    if ((s = arch_bind_norm(w, n, qk_norm, 0, eps, HD, &L->q_norm, err))) return s;
    snprintf(n, sizeof n, "layers.%d.self_attn.k_norm", l);
    return arch_bind_norm(w, n, qk_norm, 0, eps, HD, &L->k_norm, err);
}

emb_status arch_bind_hf_mlp(const emb_weights *w, const emb_recipe *r, int l, int bias, emb_error *err) {
    emb_recipe_layer *L = &r->layer[l];
    const int64_t H = r->hidden, I = r->intermediate;
    emb_status s;
    if ((s = bind_hf_linear(w, l, "mlp.gate_proj", I, H, bias, &L->w_gate, &L->b_gate, err)) ||
        (s = bind_hf_linear(w, l, "mlp.up_proj", I, H, bias, &L->w_up, &L->b_up, err)))
        return s;
    return bind_hf_linear(w, l, "mlp.down_proj", H, I, bias, &L->w_down, &L->b_down, err);
}

emb_status arch_pad_id(const cJSON *j, int dflt, int *out, emb_error *err) {
    *out = dflt;
    const cJSON *pad = cJSON_GetObjectItemCaseSensitive(j, "pad_token_id");
    if (cJSON_IsNull(pad)) {
        *out = -1;   /* explicitly none */
        return EMB_OK;
    }
    return ju_get_int(j, "pad_token_id", "config.json", 0, ARCH_MAX_VOCAB, out, NULL, err);
}

emb_status arch_alloc_layers(emb_recipe *r, emb_error *err) {
    r->layer = calloc((size_t)r->layers, sizeof *r->layer);
    return r->layer ? EMB_OK : emb_fail(err, EMB_ERR_NOMEM, "out of memory");
}

emb_status arch_bind_norm(const emb_weights *w, const char *name, emb_norm_kind kind, int with_bias,
                          float eps, int64_t dim, emb_norm *dst, emb_error *err) {
    char n[256];
    emb_status s;
    dst->kind = kind;
    dst->eps = eps;
    snprintf(n, sizeof n, "%s.weight", name);
    if ((s = emb_weights_bind(w, n, 1, dim, 0, &dst->w, err))) return s;
    memset(&dst->b, 0, sizeof dst->b);
    if (!with_bias) return EMB_OK;
    snprintf(n, sizeof n, "%s.bias", name);
    return emb_weights_bind(w, n, 1, dim, 0, &dst->b, err);
}

emb_status arch_bind_linear(const emb_weights *w, const char *name, int64_t d0, int64_t d1, int bias,
                            emb_tensor *wt, emb_tensor *bt, emb_error *err) {
    char n[256];
    emb_status s;
    snprintf(n, sizeof n, "%s.weight", name);
    if ((s = emb_weights_bind(w, n, 2, d0, d1, wt, err))) return s;
    if (!bias) return EMB_OK;
    snprintf(n, sizeof n, "%s.bias", name);
    return emb_weights_bind(w, n, 1, d0, 0, bt, err);
}

emb_status arch_split_heads(emb_recipe *r, const char *hidden_key, const char *heads_key, emb_error *err) {
    if (r->hidden % r->heads != 0)
        return emb_fail(err, EMB_ERR_FORMAT, "config.json: %s %d is not divisible by %s %d", hidden_key, r->hidden,
                        heads_key, r->heads);
    r->head_dim = r->hidden / r->heads;
    r->kv_heads = r->heads;
    r->scale = 1.0f / sqrtf((float)r->head_dim);
    return EMB_OK;
}

emb_status arch_bind_post_layers(const emb_weights *w, const char *layer_prefix, const arch_post_names *nm,
                                 float eps, const char *count_field, emb_recipe *r, emb_error *err) {
    emb_status s = arch_alloc_layers(r, err);
    if (s) return s;
    const int64_t H = r->hidden, I = r->intermediate;
    for (int l = 0; l < r->layers; l++) {
        emb_recipe_layer *L = &r->layer[l];
        char n[256];
        L->window_left = L->window_right = EMB_WINDOW_NONE;
#define LIN(name, d0, d1, wt, bt) \
    (snprintf(n, sizeof n, "%s%d.%s", layer_prefix, l, name), arch_bind_linear(w, n, d0, d1, 1, wt, bt, err))
#define NORM(name, dst) \
    (snprintf(n, sizeof n, "%s%d.%s", layer_prefix, l, name), arch_bind_norm(w, n, EMB_NORM_LAYER, 1, eps, H, dst, err))
        if ((s = LIN(nm->q, H, H, &L->wq, &L->bq)) || (s = LIN(nm->k, H, H, &L->wk, &L->bk)) ||
            (s = LIN(nm->v, H, H, &L->wv, &L->bv)) || (s = LIN(nm->o, H, H, &L->wo, &L->bo)) ||
            (s = NORM(nm->attn_norm, &L->attn_norm)) || (s = LIN(nm->up, I, H, &L->w_up, &L->b_up)) ||
            (s = LIN(nm->down, H, I, &L->w_down, &L->b_down)) || (s = NORM(nm->mlp_norm, &L->mlp_norm)))
            return s;
#undef LIN
#undef NORM
    }
    return emb_weights_check_layers(w, layer_prefix, r->layers, count_field, err);
}

/* ---- build -------------------------------------------------------------- */

/* Every tensor the recipe points at, for the one-dtype rule. */
static size_t recipe_tensors(const emb_recipe *r, const emb_tensor **out, size_t cap) {
    size_t n = 0;
#define T(x) ((x).data && n < cap ? (void)(out[n++] = &(x)) : (void)0)
#define N(x) (T((x).w), T((x).b))
    T(r->emb.word), T(r->emb.position), T(r->emb.token_type), N(r->emb.norm);
    T(r->rel.table), N(r->final_norm);
    for (int l = 0; l < r->layers && r->layer; l++) {
        const emb_recipe_layer *L = &r->layer[l];
        N(L->attn_norm), N(L->mlp_norm), N(L->attn_post_norm), N(L->mlp_post_norm);
        T(L->wq), T(L->wk), T(L->wv), T(L->wqkv), T(L->bq), T(L->bk), T(L->bv), T(L->bqkv);
        T(L->wo), T(L->bo), N(L->q_norm), N(L->k_norm);
        T(L->w_up), T(L->b_up), T(L->w_gate), T(L->b_gate), T(L->w_gate_up), T(L->b_gate_up);
        T(L->w_down), T(L->b_down);
    }
#undef N
#undef T
    return n;
}

static emb_status check_one_dtype(emb_recipe *r, emb_error *err) {
    /* One storage dtype for the whole encoder: backends upload it as one
     * block, and a mixture means the file is not what config.json says. */
    size_t cap = 40 + 40 * (size_t)r->layers;
    const emb_tensor **all = malloc(cap * sizeof *all);
    if (!all) return emb_fail(err, EMB_ERR_NOMEM, "out of memory");
    size_t n = recipe_tensors(r, all, cap);
    static const char *names[] = {"?", "F32", "F16", "BF16"};
    emb_status s = EMB_OK;
    for (size_t i = 1; i < n && !s; i++)
        if (all[i]->dtype != all[0]->dtype)
            s = emb_fail(err, EMB_ERR_FORMAT,
                         "tensor \"%s\" is %s but \"%s\" is %s: mixed dtypes in the encoder weights",
                         all[i]->name, names[all[i]->dtype], all[0]->name, names[all[0]->dtype]);
    /* The stored dtype is what backends must read, whatever config says. */
    if (!s && n) r->dtype = all[0]->dtype;
    free(all);
    return s;
}

emb_status emb_arch_build(const cJSON *cfg, emb_weights *w, emb_recipe *r, emb_error *err) {
    memset(r, 0, sizeof *r);
    if (!cJSON_IsObject(cfg)) return emb_fail(err, EMB_ERR_FORMAT, "config.json: not a JSON object");
    const char *mt = NULL;
    int present = 0;
    emb_status s = ju_get_string(cfg, "model_type", "config.json", &mt, &present, err);
    if (s) return s;
    if (!present) return emb_fail(err, EMB_ERR_FORMAT, "config.json: missing field \"model_type\"");
    emb_arch_build_fn build = NULL;
    for (size_t i = 0; i < N_FAMILIES; i++)
        if (strcmp(mt, families[i].model_type) == 0) build = families[i].build;
    if (!build) {
        char list[256];
        size_t o = 0;
        for (size_t i = 0; i < N_FAMILIES; i++)
            o += (size_t)snprintf(list + o, sizeof list - o, "%s%s", i ? ", " : "", families[i].model_type);
        return emb_fail(err, EMB_ERR_UNSUPPORTED,
                        "config.json: model_type \"%.64s\" is not supported (supported: %s)", mt, list);
    }
    snprintf(r->model_type, sizeof r->model_type, "%s", mt);
    r->emb.scale = 1.0f;
    r->emb.pos_pad_id = -1;
    r->pad_token_id = -1;

    /* transformers >= 4.56 writes "dtype"; older ones "torch_dtype". */
    const char *dt = NULL, *dt_key = "torch_dtype";
    if ((s = ju_get_string(cfg, "torch_dtype", "config.json", &dt, &present, err))) return s;
    if (!present) {
        dt_key = "dtype";
        if ((s = ju_get_string(cfg, "dtype", "config.json", &dt, NULL, err))) return s;
    }
    r->dtype = EMB_DTYPE_F32;
    if (dt) {
        if (strcmp(dt, "float32") == 0) r->dtype = EMB_DTYPE_F32;
        else if (strcmp(dt, "float16") == 0) r->dtype = EMB_DTYPE_F16;
        else if (strcmp(dt, "bfloat16") == 0) r->dtype = EMB_DTYPE_BF16;
        else
            return emb_fail(err, EMB_ERR_UNSUPPORTED,
                            "config.json: %s \"%.64s\" is not supported (float32, float16, bfloat16)", dt_key,
                            dt);
    }
    if ((s = build(cfg, w, r, err))) return s;
    r->weights_prefix = emb_weights_prefix(w);
    if (r->kv_heads == 0) r->kv_heads = r->heads;
    return check_one_dtype(r, err);
}

void emb_recipe_free(emb_recipe *r) {
    if (!r) return;
    free(r->layer);
    r->layer = NULL;
    free(r->rope_tables);
    r->rope_tables = NULL;
}

/* ---- derived facts ------------------------------------------------------ */

int emb_relative_bucket(int rel, int num_buckets, int max_distance, int bidirectional) {
    int bucket = 0, n = num_buckets;
    if (bidirectional) {
        n /= 2;
        if (rel > 0) bucket += n;
        rel = rel < 0 ? -rel : rel;
    } else {
        rel = rel < 0 ? -rel : 0;   /* -min(rel, 0) */
    }
    const int max_exact = n / 2;
    if (rel < max_exact) return bucket + rel;
    /* torch: float32 log of a float32 ratio, divided by a Python float
     * (math.log, rounded to float32 by the op), times an int, truncated. */
    float ratio = (float)rel / (float)max_exact;
    float v = logf(ratio) / (float)log((double)max_distance / max_exact) * (float)(n - max_exact);
    int large = max_exact + (int)v;
    if (large > n - 1) large = n - 1;
    return bucket + large;
}

double emb_recipe_seq_flops(const emb_recipe *r, int layers, double len) {
    const double h = r->hidden, qd = (double)r->heads * r->head_dim, kvd = (double)r->kv_heads * r->head_dim;
    const double mlp = (r->gated ? 3.0 : 2.0) * h * r->intermediate;
    const double weights = h * (qd + 2.0 * kvd) + qd * h + mlp;
    double total = 0;
    for (int l = 0; l < layers && l < r->layers; l++) {
        const emb_recipe_layer *L = &r->layer[l];
        /* Keys each query sees, on average, under the layer's window. */
        double keys = len;
        if (L->window_left >= 0 || L->window_right >= 0) {
            double k = 0;
            for (int i = 0; i < (int)len; i++) {
                int lo = L->window_left >= 0 && i - L->window_left > 0 ? i - L->window_left : 0;
                int hi = L->window_right >= 0 && i + L->window_right < (int)len - 1 ? i + L->window_right
                                                                                  : (int)len - 1;
                k += hi - lo + 1;
            }
            keys = len > 0 ? k / len : 0;
        }
        total += 2.0 * weights * len + 4.0 * len * keys * qd;
    }
    return total;
}

static const char *norm_name(const emb_norm *n) {
    switch (n->kind) {
    case EMB_NORM_NONE: return "none";
    case EMB_NORM_LAYER: return n->b.data ? "LayerNorm" : "LayerNorm (no bias)";
    case EMB_NORM_RMS: return "RMSNorm";
    case EMB_NORM_RMS_1P: return "RMSNorm (1 + w)";
    }
    return "?";
}

static void window_words(const emb_recipe_layer *L, char *buf, size_t cap) {
    if (L->window_left < 0 && L->window_right < 0) snprintf(buf, cap, "bidirectional");
    else if (L->window_right == 0 && L->window_left < 0) snprintf(buf, cap, "causal");
    else if (L->window_right == 0) snprintf(buf, cap, "causal, window %d", L->window_left);
    else snprintf(buf, cap, "window -%d..+%d", L->window_left, L->window_right);
}

size_t emb_recipe_describe(const emb_recipe *r, char *buf, size_t cap) {
    size_t k = 0;
#define ADD(...) k += (size_t)snprintf(buf + (k < cap ? k : cap), k < cap ? cap - k : 0, __VA_ARGS__)
    if (cap) buf[0] = 0;
    ADD("family:          %s (model_type %s)\n", r->family ? r->family : "?", r->model_type);
    ADD("embeddings:      word %d x %d", r->vocab_size, r->hidden);
    if (r->emb.scale != 1.0f) ADD(" x %g", r->emb.scale);
    if (r->emb.pos == EMB_EPOS_LEARNED) {
        ADD(", learned positions");
        if (r->emb.pos_pad_id >= 0) ADD(" from padding_idx %d + 1", r->emb.pos_pad_id);
        else if (r->emb.pos_offset) ADD(" + %d", r->emb.pos_offset);
    } else if (r->emb.pos == EMB_EPOS_SINUSOIDAL) {
        ADD(", sinusoidal positions");
    }
    if (r->emb.token_type.data) ADD(", %d token types", r->emb.type_vocab);
    ADD(", norm %s\n", norm_name(&r->emb.norm));
    ADD("positions:       ");
    if (r->attn_pos == EMB_APOS_ROTARY) ADD("rotary (%d of %d dims per head)\n", r->rotary_dim, r->head_dim);
    else if (r->attn_pos == EMB_APOS_RELATIVE)
        ADD("relative buckets (%d buckets, max distance %d, one table shared by all layers)\n",
            r->rel.num_buckets, r->rel.max_distance);
    else ADD("absolute only\n");
    const emb_norm *ln = r->layers > 1 ? &r->layer[r->layers - 1].mlp_norm : &r->layer[0].mlp_norm;
    ADD("norms:           %s, %s (eps %g)%s\n",
        r->place == EMB_PLACE_POST ? "post-norm" : r->place == EMB_PLACE_PRE ? "pre-norm" : "sandwich",
        norm_name(ln), ln->eps, r->final_norm.kind ? ", final norm" : "");
    ADD("attention:       %d heads", r->heads);
    if (r->kv_heads != r->heads) ADD(" (%d KV heads)", r->kv_heads);
    ADD(" x %d, scale %g%s", r->head_dim, r->scale,
        r->layer[0].bqkv.data || r->layer[0].bq.data ? ", biases" : ", no biases");
    if (r->softcap > 0) ADD(", softcap %g", r->softcap);
    ADD("\n");
    /* Layers grouped into runs of identical attention. */
    for (int l = 0; l < r->layers;) {
        const emb_recipe_layer *L = &r->layer[l];
        int e = l + 1;
        while (e < r->layers && r->layer[e].window_left == L->window_left &&
               r->layer[e].window_right == L->window_right && r->layer[e].rope_theta == L->rope_theta &&
               r->layer[e].rope_inv_freq == L->rope_inv_freq)
            e++;
        char wb[64], label[32];
        window_words(L, wb, sizeof wb);
        if (e - l == 1) snprintf(label, sizeof label, "  layer %d:", l);
        else snprintf(label, sizeof label, "  layers %d-%d:", l, e - 1);
        ADD("%-16s %s", label, wb);
        if (r->attn_pos == EMB_APOS_ROTARY) ADD(", rope theta %g", L->rope_theta);
        if (r->attn_pos == EMB_APOS_ROTARY && L->rope_inv_freq) ADD(", %s scaling", r->rope_scaling);
        ADD("\n");
        l = e;
    }
    ADD("mlp:             %s %s, %d -> %d%s\n", r->gated ? "gated" : "plain", arch_act_name(r->act), r->hidden,
        r->intermediate, r->layer[0].b_up.data || r->layer[0].b_gate_up.data || r->layer[0].b_gate.data
                             ? ", biases" : ", no biases");
    if (r->f16_unsafe)
        ADD("fp16:            unsafe (%s): the GPU computes in bf16\n",
            r->f16_unsafe_reason ? r->f16_unsafe_reason : "activations leave fp16's range");
#undef ADD
    if (cap && k >= cap) buf[cap - 1] = 0;
    return k;
}

/* A positive number rope parameter `key` of object t (shown in messages). */
static emb_status rope_number(const cJSON *t, const char *shown, const char *key, double *out, emb_error *err) {
    int present = 0;
    emb_status s = ju_get_double(t, key, shown, out, &present, err);
    if (s) return s;
    if (!present) return emb_fail(err, EMB_ERR_FORMAT, "%s: missing \"%s\"", shown, key);
    if (!(*out > 0 && *out < 1e30)) return emb_fail(err, EMB_ERR_FORMAT, "%s: %s %g must be positive", shown, key, *out);
    return EMB_OK;
}

/* The scaling of a rope_type other than "default" (transformers'
 * _compute_linear_scaling_rope_parameters, _compute_llama3_parameters). */
static emb_status rope_scaling(const cJSON *t, const char *shown, const char *rt, arch_rope *out, emb_error *err) {
    emb_status s;
    if (strcmp(rt, "linear") == 0) {
        out->type = ARCH_ROPE_LINEAR;
        return rope_number(t, shown, "factor", &out->factor, err);
    }
    if (strcmp(rt, "llama3") != 0)
        return emb_fail(err, EMB_ERR_UNSUPPORTED,
                        "%s: rope_type \"%.64s\" is not supported (only \"default\", \"linear\", \"llama3\")", shown,
                        rt);
    out->type = ARCH_ROPE_LLAMA3;
    if ((s = rope_number(t, shown, "factor", &out->factor, err)) ||
        (s = rope_number(t, shown, "low_freq_factor", &out->low_freq_factor, err)) ||
        (s = rope_number(t, shown, "high_freq_factor", &out->high_freq_factor, err)) ||
        (s = rope_number(t, shown, "original_max_position_embeddings", &out->original_max_position, err)))
        return s;
    if (!(out->high_freq_factor > out->low_freq_factor))
        return emb_fail(err, EMB_ERR_FORMAT, "%s: high_freq_factor %g must be greater than low_freq_factor %g",
                        shown, out->high_freq_factor, out->low_freq_factor);
    return EMB_OK;
}

/* The rotary parameters of one layer type. transformers' rope parameters
 * come nested by layer type (ModernBERT, Gemma: rope_parameters[type]), flat
 * (Llama, Qwen: rope_parameters = {rope_type, rope_theta, ...}), or in the
 * legacy form (rope_theta + rope_scaling, which transformers reads as the
 * flat parameters); a missing rope_theta falls back to the legacy key, then
 * dflt. Scaled rope types only when `scaled` (the caller builds their tables). */
static emb_status rope_params(const cJSON *j, const char *type, const char *legacy, float dflt, int scaled,
                              arch_rope *out, emb_error *err) {
    memset(out, 0, sizeof *out);
    out->theta = dflt;
    emb_status s;
    char shown[96];
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(j, "rope_parameters");
    const cJSON *t = cJSON_IsObject(rp) ? cJSON_GetObjectItemCaseSensitive(rp, type) : NULL;
    if (cJSON_IsObject(t)) {
        snprintf(shown, sizeof shown, "config.json: rope_parameters.%s", type);
    } else if (cJSON_IsObject(rp) && (cJSON_GetObjectItemCaseSensitive(rp, "rope_type") ||
                                      cJSON_GetObjectItemCaseSensitive(rp, "type") ||
                                      cJSON_GetObjectItemCaseSensitive(rp, "rope_theta"))) {
        t = rp;
        snprintf(shown, sizeof shown, "config.json: rope_parameters");
    } else {
        t = cJSON_GetObjectItemCaseSensitive(j, "rope_scaling");
        if (t && !cJSON_IsNull(t) && !cJSON_IsObject(t))
            return emb_fail(err, EMB_ERR_FORMAT, "config.json: rope_scaling must be an object or null");
        snprintf(shown, sizeof shown, "config.json: rope_scaling");
    }
    if (cJSON_IsObject(t)) {
        const char *rt = NULL;
        if ((s = ju_get_string(t, "rope_type", shown, &rt, NULL, err))) return s;
        if (!rt && (s = ju_get_string(t, "type", shown, &rt, NULL, err))) return s;
        if (rt && strcmp(rt, "default") != 0) {
            if (!scaled)
                return emb_fail(err, EMB_ERR_UNSUPPORTED,
                                "%s: rope_type \"%.64s\" is not supported (only \"default\")", shown, rt);
            if ((s = rope_scaling(t, shown, rt, out, err))) return s;
        }
        double v = dflt;
        int present = 0;
        if ((s = ju_get_double(t, "rope_theta", shown, &v, &present, err))) return s;
        if (present) {
            if (!(v > 0)) return emb_fail(err, EMB_ERR_FORMAT, "%s: rope_theta %g must be positive", shown, v);
            out->theta = (float)v;
            return EMB_OK;
        }
    }
    return arch_opt_float(j, legacy, 0, 1e30, &out->theta, err);
}

emb_status arch_rope_theta(const cJSON *j, const char *type, const char *legacy, float dflt, float *out,
                           emb_error *err) {
    arch_rope p;
    emb_status s = rope_params(j, type, legacy, dflt, 0, &p, err);
    if (!s) *out = p.theta;
    return s;
}

/* transformers' inverse frequencies, in fp32 as torch computes them:
 * default 1 / theta ** (arange(0, dim, 2).float() / dim); linear divides
 * them by factor; llama3 (_compute_llama3_parameters) keeps the high ones,
 * divides the low ones by factor and blends the band between. The Python
 * scalars (2 pi, the wavelength bounds, factor) are rounded to fp32 where
 * torch meets them with a float32 tensor; `x / t` of a scalar x by a tensor
 * t is torch's reciprocal(t) * x. */
void arch_rope_inv_freq(const arch_rope *p, int rotary_dim, float *inv_freq) {
    const float factor = (float)p->factor;
    const float low_wavelen = (float)(p->original_max_position / p->low_freq_factor);
    const float high_wavelen = (float)(p->original_max_position / p->high_freq_factor);
    for (int d = 0; d < rotary_dim / 2; d++) {
        const float inv = 1.0f / powf(p->theta, (float)(2 * d) / (float)rotary_dim);
        inv_freq[d] = inv;
        if (p->type == ARCH_ROPE_LINEAR) inv_freq[d] = inv / factor;
        if (p->type != ARCH_ROPE_LLAMA3) continue;
        const float wavelen = (1.0f / inv) * (float)(2.0 * M_PI);
        const float scaled = wavelen > low_wavelen ? inv / factor : inv;
        const float smooth = ((1.0f / wavelen) * (float)p->original_max_position - (float)p->low_freq_factor) /
                             (float)(p->high_freq_factor - p->low_freq_factor);
        const float smoothed = (1.0f - smooth) * scaled / factor + smooth * scaled;
        inv_freq[d] = !(wavelen < high_wavelen) && !(wavelen > low_wavelen) ? smoothed : scaled;
    }
}

emb_status arch_rope_tables(emb_recipe *r, const arch_rope *p, int n, const float **tables, emb_error *err) {
    const int half = r->rotary_dim / 2;
    int scaled = 0;
    for (int i = 0; i < n; i++) scaled += p[i].type != ARCH_ROPE_DEFAULT;
    if (scaled && !r->rope_tables) {
        r->rope_tables = malloc((size_t)n * (size_t)(half ? half : 1) * sizeof *r->rope_tables);
        if (!r->rope_tables) return emb_fail(err, EMB_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < n; i++) {
        tables[i] = NULL;
        if (p[i].type == ARCH_ROPE_DEFAULT) continue;
        float *t = r->rope_tables + (size_t)i * (size_t)half;
        arch_rope_inv_freq(&p[i], r->rotary_dim, t);
        tables[i] = t;
        if (p[i].type == ARCH_ROPE_LINEAR)
            snprintf(r->rope_scaling, sizeof r->rope_scaling, "linear (factor %g)", p[i].factor);
        else
            snprintf(r->rope_scaling, sizeof r->rope_scaling, "llama3 (factor %g, low %g, high %g, original %g)",
                     p[i].factor, p[i].low_freq_factor, p[i].high_freq_factor, p[i].original_max_position);
    }
    return EMB_OK;
}
