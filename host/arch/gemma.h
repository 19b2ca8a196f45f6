/*
 * What Gemma 2 and Gemma 3 (text) share: the decoder layer with four RMSNorms
 * (1 + w) around attention and MLP, GQA with head_dim and
 * query_pre_attn_scalar from config.json, rotary, sliding-window layers and a
 * GeGLU MLP (gemma2.c). gemma3.c adds q/k norms, a theta per layer type and
 * bidirectional attention through the variant below.
 */
#ifndef EMBEDC_HOST_GEMMA_H
#define EMBEDC_HOST_GEMMA_H

#include "arch.h"

typedef struct {
    const char *family;          /* "gemma2", "gemma3" */
    int qk_norm;                 /* self_attn.q_norm / k_norm over head_dim */
    int every;                   /* no layer_types: layer i slides unless (i + 1) % every == 0 */
    const char *every_key;       /* config key that may override `every`, or NULL */
    float softcap_default;       /* attn_logit_softcapping when the key is absent (null: none) */
    int softcap_honoured;        /* 0: the family's attention never applies the soft-cap */
    float theta_full, theta_sliding;   /* transformers' defaults */
    const char *theta_sliding_key;     /* legacy key of the sliding layers' theta (full: rope_theta) */
    int bidirectional_ok;        /* use_bidirectional_attention honoured (else refused when true) */
    int max_position;            /* max_position_embeddings default */
    int vocab, hidden, layers, heads, kv_heads, intermediate;   /* transformers' config defaults */
} arch_gemma_variant;

/* Fills r from cfg (a Gemma text config) and the tensors under one of the
 * prefixes "", "model.", "model.language_model.", "language_model.model.". */
emb_status arch_gemma_build(const cJSON *cfg, emb_weights *w, emb_recipe *r, const arch_gemma_variant *v,
                            emb_error *err);

#endif
