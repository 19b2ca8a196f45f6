/*
 * Gemma 2, and the decoder layer Gemma 3 shares with it (arch_gemma_build,
 * gemma.h), as transformers' Gemma2Model / Gemma3TextModel run them:
 * word embeddings times sqrt(hidden_size) (a float32 constant: what
 * transformers uses when the model runs in float32, as the CPU backend does),
 * no positions in the embeddings; per layer
 *   x += post_attention_layernorm(Attn(input_layernorm(x)))
 *   x += post_feedforward_layernorm(MLP(pre_feedforward_layernorm(x)))
 * with RMSNorm (1 + w) in float32 everywhere (eps rms_norm_eps); attention
 * with num_key_value_heads shared K/V heads of head_dim (from config, not
 * hidden / heads), logit scale query_pre_attn_scalar ** -0.5, rotary over the
 * whole head, and on Gemma 2 a tanh soft-cap attn_logit_softcapping (default
 * 50 when the key is absent, none when null); MLP down(act(gate x) * up x)
 * with hidden_activation (gelu_pytorch_tanh); a final RMSNorm.
 * Layers: layer_types when config.json lists them, else transformers' rule
 * (Gemma 2: even layers slide). Causal attention; a sliding layer sees keys
 * i - sliding_window < j <= i (masking_utils' sliding_window_overlay).
 * final_logit_softcapping belongs to the LM head: not used here.
 */
#include "gemma.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "json_util.h"

/* The checkpoint's prefix: Gemma3TextModel / Gemma2Model save bare names,
 * *ForCausalLM "model.", Gemma3ForConditionalGeneration one of two
 * language-model prefixes (transformers 4.5x / 5). */
static const char *gemma_prefix(const emb_weights *w) {
    static const char *prefixes[] = {"model.", "model.language_model.", "language_model.model."};
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
        char n[96];
        snprintf(n, sizeof n, "%sembed_tokens.weight", prefixes[i]);
        if (emb_weights_has(w, n)) return prefixes[i];
    }
    return "";
}

/* Windows of a sliding layer under config.json's sliding_window (file
 * value). Causal: keys i - W < j <= i. Gemma 3 with
 * use_bidirectional_attention: transformers first sets W' = W // 2 + 1
 * (Gemma3TextConfig.__post_init__), then allows |i - j| < W'
 * (_bidirectional_window_overlay, OR-ed with the causal sliding mask, which
 * it contains): W // 2 keys on each side. */
static void sliding_windows(int sliding_window, int bidirectional, emb_recipe_layer *L) {
    if (bidirectional) {
        L->window_left = L->window_right = sliding_window / 2;
    } else {
        L->window_left = sliding_window - 1;
        L->window_right = 0;
    }
}

emb_status arch_gemma_build(const cJSON *j, emb_weights *w, emb_recipe *r, const arch_gemma_variant *v,
                            emb_error *err) {
    emb_status s;
    r->family = v->family;
    r->vocab_size = v->vocab, r->hidden = v->hidden, r->layers = v->layers, r->heads = v->heads;
    r->kv_heads = v->kv_heads, r->intermediate = v->intermediate, r->head_dim = 256;
    r->max_position = v->max_position;
    int attn_bias = 0, bidir = 0, window = 4096, every = v->every;
    double qpas = 256;
    if ((s = arch_opt_int(j, "vocab_size", 1, ARCH_MAX_VOCAB, &r->vocab_size, err)) ||
        (s = arch_opt_int(j, "hidden_size", 1, ARCH_MAX_HIDDEN, &r->hidden, err)) ||
        (s = arch_opt_int(j, "num_hidden_layers", 1, ARCH_MAX_LAYERS, &r->layers, err)) ||
        (s = arch_opt_int(j, "num_attention_heads", 1, ARCH_MAX_HIDDEN, &r->heads, err)) ||
        (s = arch_opt_int(j, "num_key_value_heads", 1, ARCH_MAX_HIDDEN, &r->kv_heads, err)) ||
        (s = arch_opt_int(j, "head_dim", 1, ARCH_MAX_HIDDEN, &r->head_dim, err)) ||
        (s = arch_opt_int(j, "intermediate_size", 1, ARCH_MAX_INTERMEDIATE, &r->intermediate, err)) ||
        (s = arch_opt_int(j, "max_position_embeddings", 1, ARCH_MAX_POSITION, &r->max_position, err)) ||
        (s = ju_get_int(j, "sliding_window", "config.json", 1, ARCH_MAX_POSITION, &window, NULL, err)) ||
        (s = ju_get_bool(j, "attention_bias", "config.json", &attn_bias, NULL, err)) ||
        (s = ju_get_bool(j, "use_bidirectional_attention", "config.json", &bidir, NULL, err)) ||
        (s = ju_get_double(j, "query_pre_attn_scalar", "config.json", &qpas, NULL, err)) ||
        (s = arch_pad_id(j, 0, &r->pad_token_id, err)))
        return s;
    if (v->every_key && (s = arch_opt_int(j, v->every_key, 1, ARCH_MAX_LAYERS, &every, err))) return s;
    if (r->heads % r->kv_heads != 0)
        return emb_fail(err, EMB_ERR_FORMAT, "config.json: num_attention_heads %d is not a multiple of "
                        "num_key_value_heads %d", r->heads, r->kv_heads);
    if ((size_t)r->heads * (size_t)r->head_dim > ARCH_MAX_HIDDEN || r->head_dim % 2)
        return emb_fail(err, EMB_ERR_FORMAT, "config.json: num_attention_heads %d x head_dim %d: too wide or an "
                        "odd head_dim", r->heads, r->head_dim);
    if (!(qpas > 0)) return emb_fail(err, EMB_ERR_FORMAT, "config.json: query_pre_attn_scalar %g must be positive", qpas);
    if (bidir && !v->bidirectional_ok)
        return emb_fail(err, EMB_ERR_UNSUPPORTED, "config.json: use_bidirectional_attention is not supported for %s "
                        "(transformers' %s masks stay causal)", v->family, v->family);
    /* sliding_window null: transformers has no window to apply, and refuses sliding layers. */
    const cJSON *sw = cJSON_GetObjectItemCaseSensitive(j, "sliding_window");
    int no_window = cJSON_IsNull(sw);
    r->scale = (float)pow(qpas, -0.5);
    r->emb.scale = (float)sqrt((double)r->hidden);
    /* transformers' EmbeddingGemma in float32: the residual stream reaches 6e4
     * on a one-sentence text (hidden_states[23]); Gemma 2 is known to overflow
     * fp16 too. The GPU computes them in bf16. */
    r->f16_unsafe = 1;
    r->f16_unsafe_reason = "Gemma activations leave fp16's range (EmbeddingGemma's residual stream reaches 6e4)";

    /* Soft-cap: absent -> the family's default, null -> none. */
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(j, "attn_logit_softcapping");
    float softcap = v->softcap_default;
    if (cJSON_IsNull(sc)) softcap = 0;
    else if ((s = arch_opt_float(j, "attn_logit_softcapping", 0, 1e30, &softcap, err))) return s;
    r->softcap = v->softcap_honoured ? softcap : 0;

    /* Thetas: rope_parameters by layer type, or flat (Gemma 2's one theta for
     * both kinds), else the legacy keys. */
    float eps = 1e-6f, theta_full = v->theta_full, theta_sliding = v->theta_sliding;
    const arch_rotary_keys keys = {"rms_norm_eps", "hidden_activation", "rope_theta", v->theta_sliding_key};
    if ((s = arch_pre_rotary(j, &keys, "gelu_pytorch_tanh", r, &eps, &theta_full, &theta_sliding, err))) return s;
    r->place = EMB_PLACE_SANDWICH;

    if ((s = arch_alloc_layers(r, err))) return s;
    for (int l = 0; l < r->layers; l++) {
        int sliding = (l + 1) % every != 0;
        if ((s = arch_layer_type(j, r->layers, l, &sliding, err))) return s;
        if (sliding && no_window)
            return emb_fail(err, EMB_ERR_FORMAT, "config.json: layer %d is a sliding_attention layer but "
                            "sliding_window is null", l);
        emb_recipe_layer *L = &r->layer[l];
        L->window_left = EMB_WINDOW_NONE;
        L->window_right = bidir ? EMB_WINDOW_NONE : 0;
        if (sliding) sliding_windows(window, bidir, L);
        L->rope_theta = sliding ? theta_sliding : theta_full;
    }

    emb_weights_set_prefix(w, gemma_prefix(w));
    const int64_t H = r->hidden;
    if ((s = emb_weights_bind(w, "embed_tokens.weight", 2, r->vocab_size, H, &r->emb.word, err)) ||
        (s = arch_bind_norm(w, "norm", EMB_NORM_RMS_1P, 0, eps, H, &r->final_norm, err)))
        return s;
    for (int l = 0; l < r->layers; l++) {
        emb_recipe_layer *L = &r->layer[l];
        char n[160];
#define NORM(suffix, dst) \
    (snprintf(n, sizeof n, "layers.%d.%s", l, suffix), arch_bind_norm(w, n, EMB_NORM_RMS_1P, 0, eps, H, dst, err))
        if ((s = NORM("input_layernorm", &L->attn_norm)) || (s = NORM("post_attention_layernorm", &L->attn_post_norm)) ||
            (s = NORM("pre_feedforward_layernorm", &L->mlp_norm)) ||
            (s = NORM("post_feedforward_layernorm", &L->mlp_post_norm)) ||
            (s = arch_bind_hf_attention(w, r, l, attn_bias, attn_bias, v->qk_norm ? EMB_NORM_RMS_1P : EMB_NORM_NONE,
                                        eps, err)) ||
            (s = arch_bind_hf_mlp(w, r, l, 0, err)))
            return s;
#undef NORM
    }
    return emb_weights_check_layers(w, "layers.", r->layers, "num_hidden_layers", err);
}

emb_status emb_arch_gemma2(const cJSON *j, emb_weights *w, emb_recipe *r, emb_error *err) {
    static const arch_gemma_variant v = {
        .family = "gemma2", .qk_norm = 0, .every = 2, .every_key = NULL, .softcap_default = 50.0f,
        .softcap_honoured = 1, .theta_full = 10000.0f, .theta_sliding = 10000.0f, .theta_sliding_key = "rope_theta",
        .bidirectional_ok = 0, .max_position = 8192,
        .vocab = 256000, .hidden = 2304, .layers = 26, .heads = 8, .kv_heads = 4, .intermediate = 9216,
    };
    return arch_gemma_build(j, w, r, &v, err);
}
