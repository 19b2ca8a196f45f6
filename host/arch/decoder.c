/*
 * Decoder-only transformers used as embedders: Llama, Mistral, Qwen2 and
 * Qwen3 (Qwen3-Embedding, e5-mistral, gte-Qwen2, a base Llama with
 * --pooling). They differ only in data, so one builder reads them all, the
 * differences listed in a table below as transformers' modeling_*.py and
 * configuration_*.py have them:
 *   - pre-norm layers with RMSNorm (input_layernorm, post_attention_layernorm,
 *     rms_norm_eps), token embeddings only (embed_tokens) and a final norm;
 *   - causal attention (key j visible to query i iff j <= i), GQA with
 *     num_key_value_heads, head_dim from config.json when given (Qwen3's
 *     default is 128, not hidden / heads), scale head_dim^-0.5, rotary over
 *     the whole head with the theta of rope_parameters / rope_theta, and
 *     Llama 3's "llama3" or "linear" scaling as per-frequency tables;
 *   - SiLU-gated MLP (gate_proj, up_proj, down_proj; hidden_act);
 *   - biases: Llama attention_bias (q, k, v, o) and mlp_bias; Qwen2 always
 *     q, k, v and never o; Qwen3 attention_bias (q, k, v, o); Mistral none;
 *   - Qwen3's q_norm / k_norm: RMSNorm over head_dim per head, before rotary;
 *   - sliding windows, transformers' sliding mask: j > i - sliding_window,
 *     so window_left = sliding_window - 1. Mistral: every layer when
 *     sliding_window is not null. Qwen2/Qwen3: the layers config.json's
 *     layer_types calls "sliding_attention", else (use_sliding_window and
 *     i >= max_window_layers); sliding_window counts only under
 *     use_sliding_window.
 * Tensors are found with or without the "model." prefix (a *ForCausalLM
 * checkpoint or a bare *Model one); lm_head is the LM head and not read.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "arch.h"
#include "error.h"
#include "json_util.h"

typedef enum { BIAS_NONE, BIAS_CONFIG, BIAS_QKV } attn_bias_rule;
typedef enum { SLIDE_NONE, SLIDE_EVERY_LAYER, SLIDE_LAYER_TYPES } slide_rule;

typedef struct {
    const char *model_type;
    int head_dim_default;        /* 0: hidden_size / num_attention_heads */
    int max_position;            /* max_position_embeddings' default */
    int qk_norm;
    attn_bias_rule attn_bias;
    int mlp_bias;                /* honours config.json mlp_bias */
    slide_rule slide;
} decoder_family;

static const decoder_family decoder_families[] = {
    {"llama", 0, 2048, 0, BIAS_CONFIG, 1, SLIDE_NONE},
    {"mistral", 0, 4096 * 32, 0, BIAS_NONE, 0, SLIDE_EVERY_LAYER},
    {"qwen2", 0, 32768, 0, BIAS_QKV, 0, SLIDE_LAYER_TYPES},
    {"qwen3", 128, 32768, 1, BIAS_CONFIG, 0, SLIDE_LAYER_TYPES},
};

/* config.json's sliding_window: -1 when null or absent (no window). */
static emb_status read_window(const cJSON *j, int *out, emb_error *err) {
    *out = -1;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "sliding_window");
    if (!v || cJSON_IsNull(v)) return EMB_OK;
    return arch_opt_int(j, "sliding_window", 1, ARCH_MAX_POSITION, out, err);
}

/* Which layers slide, as transformers decides it (see the top). */
static emb_status sliding_layers(const cJSON *j, const decoder_family *f, emb_recipe *r, int window,
                                 emb_error *err) {
    emb_status s;
    if (f->slide == SLIDE_NONE) return EMB_OK;
    if (f->slide == SLIDE_EVERY_LAYER) {
        for (int l = 0; l < r->layers; l++) r->layer[l].window_left = window >= 1 ? window - 1 : EMB_WINDOW_NONE;
        return EMB_OK;
    }
    int use = 0, max_window_layers = 28;
    if ((s = ju_get_bool(j, "use_sliding_window", "config.json", &use, NULL, err)) ||
        (s = arch_opt_int(j, "max_window_layers", 0, ARCH_MAX_LAYERS, &max_window_layers, err)))
        return s;
    if (!use) window = -1;   /* transformers nulls sliding_window */
    for (int l = 0; l < r->layers; l++) {
        int slides = window >= 1 && l >= max_window_layers;
        if ((s = arch_layer_type(j, r->layers, l, &slides, err))) return s;
        if (slides && window < 1)
            return emb_fail(err, EMB_ERR_FORMAT,
                            "config.json: layer %d is \"sliding_attention\" but sliding_window is null or "
                            "use_sliding_window is false", l);
        if (slides) r->layer[l].window_left = window - 1;
    }
    return EMB_OK;
}

emb_status emb_arch_decoder(const cJSON *j, emb_weights *w, emb_recipe *r, emb_error *err) {
    const decoder_family *f = NULL;
    for (size_t i = 0; i < sizeof decoder_families / sizeof decoder_families[0]; i++)
        if (strcmp(r->model_type, decoder_families[i].model_type) == 0) f = &decoder_families[i];
    if (!f) return emb_fail(err, EMB_ERR_UNSUPPORTED, "config.json: model_type \"%s\" is not a decoder family",
                            r->model_type);
    emb_status s;
    r->family = f->model_type;
    r->max_position = f->max_position;
    int head_dim = 0, kv_heads = 0, attn_bias = 0, mlp_bias = 0, window = -1;
    if ((s = arch_hf_sizes(j, r, err)) ||
        (s = arch_opt_int(j, "num_key_value_heads", 1, ARCH_MAX_HIDDEN, &kv_heads, err)) ||
        (s = arch_opt_int(j, "head_dim", 1, ARCH_MAX_HIDDEN, &head_dim, err)) ||
        (s = arch_opt_int(j, "max_position_embeddings", 1, ARCH_MAX_POSITION, &r->max_position, err)) ||
        (s = ju_get_bool(j, "attention_bias", "config.json", &attn_bias, NULL, err)) ||
        (s = ju_get_bool(j, "mlp_bias", "config.json", &mlp_bias, NULL, err)) ||
        (s = arch_pad_id(j, -1, &r->pad_token_id, err)) || (s = read_window(j, &window, err)))
        return s;
    if (!head_dim) head_dim = f->head_dim_default;
    if (head_dim) {
        r->head_dim = head_dim;
        r->scale = 1.0f / sqrtf((float)head_dim);
    } else if ((s = arch_split_heads(r, "hidden_size", "num_attention_heads", err))) {
        return s;
    }
    r->kv_heads = kv_heads ? kv_heads : r->heads;
    if (r->heads % r->kv_heads)
        return emb_fail(err, EMB_ERR_FORMAT, "config.json: num_attention_heads %d is not a multiple of "
                        "num_key_value_heads %d", r->heads, r->kv_heads);
    if ((size_t)r->heads * (size_t)r->head_dim > ARCH_MAX_HIDDEN)
        return emb_fail(err, EMB_ERR_FORMAT, "config.json: num_attention_heads %d x head_dim %d is too wide",
                        r->heads, r->head_dim);
    /* rotary over the whole head: these families ignore partial_rotary_factor */
    float eps = 1e-6f;
    arch_rope rope[2] = {{.theta = 10000.0f}, {.theta = 10000.0f}};   /* full, sliding */
    const float *inv_freq[2];
    static const arch_rotary_keys keys = {"rms_norm_eps", "hidden_act", "rope_theta", "rope_theta"};
    if ((s = arch_pre_rotary_scaled(j, &keys, "silu", r, &eps, &rope[0], &rope[1], err)) ||
        (s = arch_rope_tables(r, rope, 2, inv_freq, err)))
        return s;

    if ((s = arch_alloc_layers(r, err))) return s;
    for (int l = 0; l < r->layers; l++) r->layer[l].window_left = EMB_WINDOW_NONE;   /* right stays 0: causal */
    if ((s = sliding_layers(j, f, r, window, err))) return s;
    for (int l = 0; l < r->layers; l++) {
        const int sliding = r->layer[l].window_left >= 0;
        r->layer[l].rope_theta = rope[sliding].theta;
        r->layer[l].rope_inv_freq = inv_freq[sliding];
    }

    const int qkv_bias = f->attn_bias == BIAS_QKV || (f->attn_bias == BIAS_CONFIG && attn_bias);
    const int o_bias = f->attn_bias == BIAS_CONFIG && attn_bias, ffn_bias = f->mlp_bias && mlp_bias;
    emb_weights_set_prefix(w, emb_weights_has(w, "model.embed_tokens.weight") ? "model." : "");
    const int64_t H = r->hidden;
    if ((s = emb_weights_bind(w, "embed_tokens.weight", 2, r->vocab_size, H, &r->emb.word, err)) ||
        (s = arch_bind_norm(w, "norm", EMB_NORM_RMS, 0, eps, H, &r->final_norm, err)))
        return s;
    for (int l = 0; l < r->layers; l++) {
        emb_recipe_layer *L = &r->layer[l];
        char n[160];
#define NORM(suffix, dst) \
    (snprintf(n, sizeof n, "layers.%d.%s", l, suffix), arch_bind_norm(w, n, EMB_NORM_RMS, 0, eps, H, dst, err))
        if ((s = NORM("input_layernorm", &L->attn_norm)) ||
            (s = arch_bind_hf_attention(w, r, l, qkv_bias, o_bias, f->qk_norm ? EMB_NORM_RMS : EMB_NORM_NONE, eps,
                                        err)) ||
            (s = NORM("post_attention_layernorm", &L->mlp_norm)) || (s = arch_bind_hf_mlp(w, r, l, ffn_bias, err)))
            return s;
#undef NORM
    }
    return emb_weights_check_layers(w, "layers.", r->layers, "num_hidden_layers", err);
}
