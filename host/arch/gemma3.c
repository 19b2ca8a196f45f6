/*
 * Gemma 3 text (model_type "gemma3_text": EmbeddingGemma, Gemma3ForCausalLM;
 * or "gemma3", a Gemma3ForConditionalGeneration checkpoint, whose
 * text_config describes the language model we run and whose vision tower we
 * ignore). Gemma 2's layer (gemma2.c) plus: RMSNorm (1 + w) q_norm / k_norm
 * over each head, a rotary theta per layer type (rope_parameters, or the
 * legacy rope_theta / rope_local_base_freq; 1e6 / 1e4), layer_types or
 * transformers' rule (layer i slides unless (i + 1) % sliding_window_pattern
 * == 0, pattern 6), and use_bidirectional_attention (EmbeddingGemma): full
 * layers see the whole sequence, sliding layers sliding_window // 2 keys on
 * each side (see gemma2.c). transformers' Gemma 3 attention never applies
 * attn_logit_softcapping (the config keeps it, the attention call does not
 * pass it), so neither do we.
 */
#include "gemma.h"

#include <string.h>

#include "error.h"

emb_status emb_arch_gemma3(const cJSON *j, emb_weights *w, emb_recipe *r, emb_error *err) {
    static const arch_gemma_variant v = {
        .family = "gemma3", .qk_norm = 1, .every = 6, .every_key = "sliding_window_pattern",
        .softcap_default = 0, .softcap_honoured = 0, .theta_full = 1000000.0f,
        .theta_sliding = 10000.0f, .theta_sliding_key = "rope_local_base_freq", .bidirectional_ok = 1, .max_position = 131072,
        .vocab = 262208, .hidden = 2304, .layers = 26, .heads = 8, .kv_heads = 4, .intermediate = 9216,
    };
    if (strcmp(r->model_type, "gemma3") == 0) {
        const cJSON *tc = cJSON_GetObjectItemCaseSensitive(j, "text_config");
        if (!cJSON_IsObject(tc))
            return emb_fail(err, EMB_ERR_FORMAT, "config.json: model_type \"gemma3\" without a text_config object");
        j = tc;
    }
    return arch_gemma_build(j, w, r, &v, err);
}
