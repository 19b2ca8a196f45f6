/*
 * MPNet: BERT's post-norm layer (attention.attn.{q,k,v,o}) with learned
 * positions numbered from padding_idx + 1 (MPNetEmbeddings hard-codes
 * padding_idx = 1 whatever config.json says) and no token types, plus a
 * relative-position bias added to every layer's logits from one table
 * (encoder.relative_attention_bias). transformers' compute_position_bias is
 * always called with its defaults, 32 buckets and max distance 128, whatever
 * relative_attention_num_buckets says; the table must have at least 32 rows.
 */
#include <stdio.h>

#include "arch.h"
#include "error.h"
#include "json_util.h"

#define MPNET_PADDING_IDX 1
#define MPNET_BUCKETS 32
#define MPNET_MAX_DISTANCE 128

emb_status emb_arch_mpnet(const cJSON *j, emb_weights *w, emb_recipe *r, emb_error *err) {
    emb_status s;
    r->family = "mpnet";
    int max_pos = 0, table_rows = 32;
    if ((s = arch_need_int(j, "vocab_size", 1, ARCH_MAX_VOCAB, &r->vocab_size, err)) ||
        (s = arch_need_int(j, "hidden_size", 1, ARCH_MAX_HIDDEN, &r->hidden, err)) ||
        (s = arch_need_int(j, "num_hidden_layers", 1, ARCH_MAX_LAYERS, &r->layers, err)) ||
        (s = arch_need_int(j, "num_attention_heads", 1, ARCH_MAX_HIDDEN, &r->heads, err)) ||
        (s = arch_need_int(j, "intermediate_size", 1, ARCH_MAX_INTERMEDIATE, &r->intermediate, err)) ||
        (s = arch_need_int(j, "max_position_embeddings", MPNET_PADDING_IDX + 2, ARCH_MAX_POSITION, &max_pos, err)) ||
        (s = arch_opt_int(j, "relative_attention_num_buckets", 1, 1 << 16, &table_rows, err)) ||
        (s = arch_pad_id(j, 1, &r->pad_token_id, err)))
        return s;
    if (table_rows < MPNET_BUCKETS)
        return emb_fail(err, EMB_ERR_UNSUPPORTED,
                        "config.json: relative_attention_num_buckets %d: MPNet always looks up %d buckets",
                        table_rows, MPNET_BUCKETS);
    if ((s = arch_split_heads(r, "hidden_size", "num_attention_heads", err))) return s;
    float eps = 1e-12f;
    const char *act = "gelu";
    if ((s = arch_opt_float(j, "layer_norm_eps", 0, 1, &eps, err)) ||
        (s = ju_get_string(j, "hidden_act", "config.json", &act, NULL, err)) ||
        (s = arch_act(act, "hidden_act", &r->act, err)))
        return s;
    r->place = EMB_PLACE_POST;
    r->emb.pos = EMB_EPOS_LEARNED;
    r->emb.pos_pad_id = MPNET_PADDING_IDX;
    r->max_position = max_pos - MPNET_PADDING_IDX - 1;
    r->attn_pos = EMB_APOS_RELATIVE;
    r->rel.num_buckets = MPNET_BUCKETS;
    r->rel.max_distance = MPNET_MAX_DISTANCE;
    r->rel.bidirectional = 1;

    emb_weights_set_prefix(w, emb_weights_has(w, "mpnet.embeddings.word_embeddings.weight") ? "mpnet." : "");
    const int64_t H = r->hidden;
    if ((s = emb_weights_bind(w, "embeddings.word_embeddings.weight", 2, r->vocab_size, H, &r->emb.word, err)) ||
        (s = emb_weights_bind(w, "embeddings.position_embeddings.weight", 2, max_pos, H, &r->emb.position, err)) ||
        (s = arch_bind_norm(w, "embeddings.LayerNorm", EMB_NORM_LAYER, 1, eps, H, &r->emb.norm, err)) ||
        (s = emb_weights_bind(w, "encoder.relative_attention_bias.weight", 2, table_rows, r->heads, &r->rel.table,
                              err)))
        return s;

    static const arch_post_names names = {"attention.attn.q", "attention.attn.k", "attention.attn.v",
                                          "attention.attn.o", "attention.LayerNorm", "intermediate.dense",
                                          "output.dense", "output.LayerNorm"};
    return arch_bind_post_layers(w, "encoder.layer.", &names, eps, "num_hidden_layers", r, err);
}
