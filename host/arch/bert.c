/*
 * BERT and the RoBERTa family (roberta, xlm-roberta, camembert): learned
 * absolute positions, token types, embedding LayerNorm, post-norm layers
 * with biased Q/K/V/O and a plain FFN. RoBERTa-style models differ only in
 * their positions: transformers numbers them from padding_idx + 1
 * (create_position_ids_from_input_ids), so the position table has
 * padding_idx + 1 more rows than the longest sequence.
 * Tensor names are BertModel's, with or without a "bert."/"roberta." prefix.
 */
#include <stdio.h>
#include <string.h>

#include "arch.h"
#include "error.h"
#include "json_util.h"

static emb_status pick_prefix(emb_weights *w, emb_error *err) {
    static const char *prefixes[] = {"", "bert.", "roberta.", "model."};
    for (size_t i = 0; i < sizeof prefixes / sizeof *prefixes; i++) {
        emb_weights_set_prefix(w, prefixes[i]);
        if (emb_weights_has(w, "embeddings.word_embeddings.weight")) return EMB_OK;
    }
    emb_weights_set_prefix(w, "");
    /* Bind reports the missing tensor with the file it looked in. */
    emb_tensor t;
    emb_status s = emb_weights_bind(w, "embeddings.word_embeddings.weight", 2, 0, 0, &t, err);
    return s ? emb_fail_prefix(err, "also tried the \"bert.\", \"roberta.\" and \"model.\" prefixes")
             : EMB_ERR_INTERNAL;
}

emb_status emb_arch_bert(const cJSON *j, emb_weights *w, emb_recipe *r, emb_error *err) {
    emb_status s;
    const int roberta_like = strcmp(r->model_type, "bert") != 0;
    r->family = roberta_like ? "roberta" : "bert";

    const char *pe = NULL;
    if ((s = ju_get_string(j, "position_embedding_type", "config.json", &pe, NULL, err))) return s;
    if (pe && strcmp(pe, "absolute") != 0)
        return emb_fail(err, EMB_ERR_UNSUPPORTED,
                        "config.json: position_embedding_type \"%.64s\" is not supported (only \"absolute\")",
                        pe);

    int max_pos = 0;
    if ((s = arch_need_int(j, "vocab_size", 1, ARCH_MAX_VOCAB, &r->vocab_size, err)) ||
        (s = arch_need_int(j, "hidden_size", 1, ARCH_MAX_HIDDEN, &r->hidden, err)) ||
        (s = arch_need_int(j, "num_hidden_layers", 1, ARCH_MAX_LAYERS, &r->layers, err)) ||
        (s = arch_need_int(j, "num_attention_heads", 1, ARCH_MAX_HIDDEN, &r->heads, err)) ||
        (s = arch_need_int(j, "intermediate_size", 1, ARCH_MAX_INTERMEDIATE, &r->intermediate, err)) ||
        (s = arch_need_int(j, "max_position_embeddings", 1, ARCH_MAX_POSITION, &max_pos, err)))
        return s;
    /* BertConfig's defaults for the fields older configs omit. */
    int type_vocab = 2;
    if ((s = arch_opt_int(j, "type_vocab_size", 0, ARCH_MAX_TYPE_VOCAB, &type_vocab, err))) return s;
    if ((s = arch_pad_id(j, roberta_like ? 1 : 0, &r->pad_token_id, err))) return s;
    if ((s = arch_split_heads(r, "hidden_size", "num_attention_heads", err))) return s;
    float eps = 1e-12f;
    if ((s = arch_opt_float(j, "layer_norm_eps", 0, 1, &eps, err))) return s;
    const char *act = "gelu";
    if ((s = ju_get_string(j, "hidden_act", "config.json", &act, NULL, err))) return s;
    if ((s = arch_act(act, "hidden_act", &r->act, err))) return s;

    r->max_position = max_pos;
    r->emb.pos = EMB_EPOS_LEARNED;
    if (roberta_like) {
        if (r->pad_token_id < 0)
            return emb_fail(err, EMB_ERR_FORMAT,
                            "config.json: pad_token_id is null, but %s numbers positions from it", r->model_type);
        if (r->pad_token_id + 1 >= max_pos)
            return emb_fail(err, EMB_ERR_FORMAT,
                            "config.json: max_position_embeddings %d leaves no position after padding_idx %d",
                            max_pos, r->pad_token_id);
        r->emb.pos_pad_id = r->pad_token_id;
        r->max_position = max_pos - r->pad_token_id - 1;
    }
    r->place = EMB_PLACE_POST;

    if ((s = pick_prefix(w, err))) return s;
    const int64_t H = r->hidden;
    if ((s = emb_weights_bind(w, "embeddings.word_embeddings.weight", 2, r->vocab_size, H, &r->emb.word, err)) ||
        (s = emb_weights_bind(w, "embeddings.position_embeddings.weight", 2, max_pos, H, &r->emb.position,
                              err)))
        return s;
    if (type_vocab > 0) {
        r->emb.type_vocab = type_vocab;
        if ((s = emb_weights_bind(w, "embeddings.token_type_embeddings.weight", 2, type_vocab, H,
                                  &r->emb.token_type, err)))
            return s;
    }
    if ((s = arch_bind_norm(w, "embeddings.LayerNorm", EMB_NORM_LAYER, 1, eps, H, &r->emb.norm, err))) return s;

    static const arch_post_names names = {
        "attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
        "attention.output.LayerNorm", "intermediate.dense", "output.dense", "output.LayerNorm"};
    return arch_bind_post_layers(w, "encoder.layer.", &names, eps, "num_hidden_layers", r, err);
}
