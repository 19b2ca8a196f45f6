/*
 * DistilBERT: BERT's post-norm layer under other names, no token types,
 * LayerNorm eps fixed at 1e-12 by the modelling code. With
 * sinusoidal_pos_embds the position table is still a stored weight (its
 * values are the sinusoids), which is used when present; a checkpoint
 * without it gets the table computed as transformers computes it.
 */
#include <stdio.h>

#include "arch.h"
#include "error.h"
#include "json_util.h"

emb_status emb_arch_distilbert(const cJSON *j, emb_weights *w, emb_recipe *r, emb_error *err) {
    emb_status s;
    r->family = "distilbert";
    int sinusoidal = 0;
    if ((s = arch_need_int(j, "vocab_size", 1, ARCH_MAX_VOCAB, &r->vocab_size, err)) ||
        (s = arch_need_int(j, "dim", 1, ARCH_MAX_HIDDEN, &r->hidden, err)) ||
        (s = arch_need_int(j, "n_layers", 1, ARCH_MAX_LAYERS, &r->layers, err)) ||
        (s = arch_need_int(j, "n_heads", 1, ARCH_MAX_HIDDEN, &r->heads, err)) ||
        (s = arch_need_int(j, "hidden_dim", 1, ARCH_MAX_INTERMEDIATE, &r->intermediate, err)) ||
        (s = arch_need_int(j, "max_position_embeddings", 1, ARCH_MAX_POSITION, &r->max_position, err)) ||
        (s = ju_get_bool(j, "sinusoidal_pos_embds", "config.json", &sinusoidal, NULL, err)) ||
        (s = arch_pad_id(j, 0, &r->pad_token_id, err)))
        return s;
    if ((s = arch_split_heads(r, "dim", "n_heads", err))) return s;
    const char *act = "gelu";
    if ((s = ju_get_string(j, "activation", "config.json", &act, NULL, err)) ||
        (s = arch_act(act, "activation", &r->act, err)))
        return s;
    const float eps = 1e-12f;
    r->place = EMB_PLACE_POST;

    emb_weights_set_prefix(w, emb_weights_has(w, "distilbert.embeddings.word_embeddings.weight") ? "distilbert."
                                                                                               : "");
    const int64_t H = r->hidden;
    if ((s = emb_weights_bind(w, "embeddings.word_embeddings.weight", 2, r->vocab_size, H, &r->emb.word, err)))
        return s;
    r->emb.pos = EMB_EPOS_LEARNED;
    if (sinusoidal && !emb_weights_has(w, "embeddings.position_embeddings.weight")) r->emb.pos = EMB_EPOS_SINUSOIDAL;
    else if ((s = emb_weights_bind(w, "embeddings.position_embeddings.weight", 2, r->max_position, H,
                                   &r->emb.position, err)))
        return s;
    if ((s = arch_bind_norm(w, "embeddings.LayerNorm", EMB_NORM_LAYER, 1, eps, H, &r->emb.norm, err))) return s;

    static const arch_post_names names = {"attention.q_lin", "attention.k_lin", "attention.v_lin",
                                          "attention.out_lin", "sa_layer_norm", "ffn.lin1", "ffn.lin2",
                                          "output_layer_norm"};
    return arch_bind_post_layers(w, "transformer.layer.", &names, eps, "n_layers", r, err);
}
