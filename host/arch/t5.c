/*
 * The T5 encoder (what sentence-transformers loads as T5EncoderModel):
 * token embeddings only (shared.weight, or encoder.embed_tokens.weight),
 * pre-norm blocks with T5's mean-free RMS norm, attention without biases,
 * without logit scaling (scale 1) and whose width n_heads * d_kv may differ
 * from d_model, a relative-position bias computed by block 0
 * (relative_attention_bias) and reused by every later block, a ReLU FFN or
 * a gated one (feed_forward_proj "gated-ACT": act(wi_0 x) * wi_1 x; gated-
 * gelu means gelu_new), and a final RMS norm.
 */
#include <stdio.h>
#include <string.h>

#include "arch.h"
#include "error.h"
#include "json_util.h"

emb_status emb_arch_t5(const cJSON *j, emb_weights *w, emb_recipe *r, emb_error *err) {
    emb_status s;
    r->family = "t5";
    int dkv = 64, max_distance = 128;
    r->rel.num_buckets = 32;
    r->max_position = 512;
    if ((s = arch_need_int(j, "vocab_size", 1, ARCH_MAX_VOCAB, &r->vocab_size, err)) ||
        (s = arch_need_int(j, "d_model", 1, ARCH_MAX_HIDDEN, &r->hidden, err)) ||
        (s = arch_need_int(j, "num_layers", 1, ARCH_MAX_LAYERS, &r->layers, err)) ||
        (s = arch_need_int(j, "num_heads", 1, ARCH_MAX_HIDDEN, &r->heads, err)) ||
        (s = arch_need_int(j, "d_ff", 1, ARCH_MAX_INTERMEDIATE, &r->intermediate, err)) ||
        (s = arch_opt_int(j, "d_kv", 1, ARCH_MAX_HIDDEN, &dkv, err)) ||
        (s = arch_opt_int(j, "relative_attention_num_buckets", 2, 1 << 16, &r->rel.num_buckets, err)) ||
        (s = arch_opt_int(j, "relative_attention_max_distance", 1, ARCH_MAX_POSITION, &max_distance, err)) ||
        (s = arch_opt_int(j, "n_positions", 1, ARCH_MAX_POSITION, &r->max_position, err)) ||
        (s = arch_pad_id(j, 0, &r->pad_token_id, err)))
        return s;
    r->head_dim = dkv;
    r->kv_heads = r->heads;
    r->scale = 1.0f;
    r->rel.max_distance = max_distance;
    r->rel.bidirectional = 1;
    r->attn_pos = EMB_APOS_RELATIVE;
    r->place = EMB_PLACE_PRE;
    if ((size_t)r->heads * (size_t)dkv > ARCH_MAX_HIDDEN)
        return emb_fail(err, EMB_ERR_FORMAT, "config.json: num_heads %d x d_kv %d is too wide", r->heads, dkv);
    float eps = 1e-6f;
    if ((s = arch_opt_float(j, "layer_norm_epsilon", 0, 1, &eps, err))) return s;
    const char *ff = "relu";
    if ((s = ju_get_string(j, "feed_forward_proj", "config.json", &ff, NULL, err))) return s;
    const char *act = ff;
    if (strncmp(ff, "gated-", 6) == 0) {
        r->gated = 1;
        act = strcmp(ff, "gated-gelu") == 0 ? "gelu_new" : ff + 6;
    }
    if ((s = arch_act(act, "feed_forward_proj", &r->act, err))) return s;

    emb_weights_set_prefix(w, "");
    const int64_t H = r->hidden, I = r->intermediate, QD = (int64_t)r->heads * dkv;
    const char *word = emb_weights_has(w, "shared.weight") ? "shared.weight" : "encoder.embed_tokens.weight";
    if ((s = emb_weights_bind(w, word, 2, r->vocab_size, H, &r->emb.word, err)) ||
        (s = emb_weights_bind(w, "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", 2,
                              r->rel.num_buckets, r->heads, &r->rel.table, err)) ||
        (s = arch_bind_norm(w, "encoder.final_layer_norm", EMB_NORM_RMS, 0, eps, H, &r->final_norm, err)))
        return s;
    if ((s = arch_alloc_layers(r, err))) return s;
    for (int l = 0; l < r->layers; l++) {
        emb_recipe_layer *L = &r->layer[l];
        char n[160];
        L->window_left = L->window_right = EMB_WINDOW_NONE;
#define LIN(suffix, d0, d1, wt) \
    (snprintf(n, sizeof n, "encoder.block.%d.layer.%s", l, suffix), arch_bind_linear(w, n, d0, d1, 0, wt, NULL, err))
#define NORM(suffix, dst) \
    (snprintf(n, sizeof n, "encoder.block.%d.layer.%s", l, suffix), \
     arch_bind_norm(w, n, EMB_NORM_RMS, 0, eps, H, dst, err))
        if ((s = NORM("0.layer_norm", &L->attn_norm)) || (s = LIN("0.SelfAttention.q", QD, H, &L->wq)) ||
            (s = LIN("0.SelfAttention.k", QD, H, &L->wk)) || (s = LIN("0.SelfAttention.v", QD, H, &L->wv)) ||
            (s = LIN("0.SelfAttention.o", H, QD, &L->wo)) || (s = NORM("1.layer_norm", &L->mlp_norm)) ||
            (s = LIN("1.DenseReluDense.wo", H, I, &L->w_down)))
            return s;
        if (r->gated) {
            if ((s = LIN("1.DenseReluDense.wi_0", I, H, &L->w_gate)) || (s = LIN("1.DenseReluDense.wi_1", I, H, &L->w_up)))
                return s;
        } else if ((s = LIN("1.DenseReluDense.wi", I, H, &L->w_up))) {
            return s;
        }
#undef LIN
#undef NORM
    }
    return emb_weights_check_layers(w, "encoder.block.", r->layers, "num_layers", err);
}
