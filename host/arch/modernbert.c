/*
 * ModernBERT: pre-norm layers (layer 0 has no attn_norm: nn.Identity), no
 * positions in the embeddings, rotary attention whose theta depends on the
 * layer type, fused Wqkv, GeGLU MLP with Wi = [input; gate] (the first half
 * activated), LayerNorms usually without bias, and a final norm.
 * Layer types: config.json's layer_types when present, else transformers'
 * rule "sliding_attention" if i % global_attn_every_n_layers else
 * "full_attention". Sliding layers see keys with |i - j| <= local_attention
 * // 2 (transformers' sliding_window, both sides). Thetas:
 * rope_parameters[type].rope_theta, else global_rope_theta /
 * local_rope_theta, else 160000 / 10000.
 */
#include <stdio.h>
#include <string.h>

#include "arch.h"
#include "error.h"
#include "json_util.h"

emb_status emb_arch_modernbert(const cJSON *j, emb_weights *w, emb_recipe *r, emb_error *err) {
    emb_status s;
    r->family = "modernbert";
    int norm_bias = 0, attn_bias = 0, mlp_bias = 0, local = 128, every = 3;
    r->max_position = 8192;
    if ((s = arch_hf_sizes(j, r, err)) ||
        (s = arch_opt_int(j, "max_position_embeddings", 1, ARCH_MAX_POSITION, &r->max_position, err)) ||
        (s = arch_opt_int(j, "local_attention", 0, ARCH_MAX_POSITION, &local, err)) ||
        (s = arch_opt_int(j, "global_attn_every_n_layers", 1, ARCH_MAX_LAYERS, &every, err)) ||
        (s = ju_get_bool(j, "norm_bias", "config.json", &norm_bias, NULL, err)) ||
        (s = ju_get_bool(j, "attention_bias", "config.json", &attn_bias, NULL, err)) ||
        (s = ju_get_bool(j, "mlp_bias", "config.json", &mlp_bias, NULL, err)) ||
        (s = arch_pad_id(j, 50283, &r->pad_token_id, err)))
        return s;
    if ((s = arch_split_heads(r, "hidden_size", "num_attention_heads", err))) return s;
    float eps = 1e-5f, theta_full = 160000.0f, theta_local = 10000.0f;
    static const arch_rotary_keys keys = {"norm_eps", "hidden_activation", "global_rope_theta", "local_rope_theta"};
    if ((s = arch_pre_rotary(j, &keys, "gelu", r, &eps, &theta_full, &theta_local, err))) return s;

    if ((s = arch_alloc_layers(r, err))) return s;
    for (int l = 0; l < r->layers; l++) {
        int sliding = l % every != 0;
        if ((s = arch_layer_type(j, r->layers, l, &sliding, err))) return s;
        emb_recipe_layer *L = &r->layer[l];
        L->window_left = L->window_right = sliding ? local / 2 : EMB_WINDOW_NONE;
        L->rope_theta = sliding ? theta_local : theta_full;
    }

    emb_weights_set_prefix(w, emb_weights_has(w, "model.embeddings.tok_embeddings.weight") ? "model." : "");
    const int64_t H = r->hidden, I = r->intermediate;
    if ((s = emb_weights_bind(w, "embeddings.tok_embeddings.weight", 2, r->vocab_size, H, &r->emb.word, err)) ||
        (s = arch_bind_norm(w, "embeddings.norm", EMB_NORM_LAYER, norm_bias, eps, H, &r->emb.norm, err)) ||
        (s = arch_bind_norm(w, "final_norm", EMB_NORM_LAYER, norm_bias, eps, H, &r->final_norm, err)))
        return s;
    for (int l = 0; l < r->layers; l++) {
        emb_recipe_layer *L = &r->layer[l];
        char n[160];
#define LIN(suffix, d0, d1, bias, wt, bt) \
    (snprintf(n, sizeof n, "layers.%d.%s", l, suffix), arch_bind_linear(w, n, d0, d1, bias, wt, bt, err))
#define NORM(suffix, dst) \
    (snprintf(n, sizeof n, "layers.%d.%s", l, suffix), arch_bind_norm(w, n, EMB_NORM_LAYER, norm_bias, eps, H, dst, err))
        if ((l > 0 && (s = NORM("attn_norm", &L->attn_norm))) ||
            (s = LIN("attn.Wqkv", 3 * H, H, attn_bias, &L->wqkv, &L->bqkv)) ||
            (s = LIN("attn.Wo", H, H, attn_bias, &L->wo, &L->bo)) || (s = NORM("mlp_norm", &L->mlp_norm)) ||
            (s = LIN("mlp.Wi", 2 * I, H, mlp_bias, &L->w_gate_up, &L->b_gate_up)) ||
            (s = LIN("mlp.Wo", H, I, mlp_bias, &L->w_down, &L->b_down)))
            return s;
#undef LIN
#undef NORM
    }
    return emb_weights_check_layers(w, "layers.", r->layers, "num_hidden_layers", err);
}
