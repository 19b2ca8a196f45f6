/*
 * The family table: config.json's model_type -> the arch file that turns
 * config.json and the tensor names into a recipe (recipe.h). Each family
 * file (bert.c, distilbert.c, mpnet.c, modernbert.c, t5.c, decoder.c,
 * gemma2.c, gemma3.c) exports one builder; arch.c holds the table and the
 * helpers they share (required config fields, activation names, the dtype
 * check, describing a recipe).
 */
#ifndef EMBEDC_HOST_ARCH_H
#define EMBEDC_HOST_ARCH_H

#include <cjson/cJSON.h>
#include "model_files.h"
#include "recipe.h"

/* Bounds on config sizes: beyond them a file is not an encoder we run, and
 * bounding them keeps every later int computation in range. */
#define ARCH_MAX_HIDDEN (1 << 16)
#define ARCH_MAX_LAYERS 1024
#define ARCH_MAX_INTERMEDIATE (1 << 20)
#define ARCH_MAX_VOCAB (1 << 24)
#define ARCH_MAX_POSITION (1 << 20)
#define ARCH_MAX_TYPE_VOCAB (1 << 16)

typedef emb_status (*emb_arch_build_fn)(const cJSON *cfg, emb_weights *w, emb_recipe *r,
                                        emb_error *err);

/* Reads model_type from cfg, builds the recipe with the family's builder,
 * then checks that every encoder tensor has one storage dtype. */
emb_status emb_arch_build(const cJSON *cfg, emb_weights *w, emb_recipe *r, emb_error *err);
void emb_recipe_free(emb_recipe *r);

/* The builders (one per family file). */
emb_status emb_arch_bert(const cJSON *cfg, emb_weights *w, emb_recipe *r, emb_error *err);
emb_status emb_arch_distilbert(const cJSON *cfg, emb_weights *w, emb_recipe *r, emb_error *err);
emb_status emb_arch_mpnet(const cJSON *cfg, emb_weights *w, emb_recipe *r, emb_error *err);
emb_status emb_arch_modernbert(const cJSON *cfg, emb_weights *w, emb_recipe *r, emb_error *err);
emb_status emb_arch_t5(const cJSON *cfg, emb_weights *w, emb_recipe *r, emb_error *err);
/* llama, mistral, qwen2, qwen3 (decoder.c: one builder, r->model_type picks the variant) */
emb_status emb_arch_decoder(const cJSON *cfg, emb_weights *w, emb_recipe *r, emb_error *err);
/* gemma2, gemma3_text, gemma3 (gemma2.c holds the layer both share, gemma.h the differences) */
emb_status emb_arch_gemma2(const cJSON *cfg, emb_weights *w, emb_recipe *r, emb_error *err);
emb_status emb_arch_gemma3(const cJSON *cfg, emb_weights *w, emb_recipe *r, emb_error *err);

/* ---- helpers shared by the family files -------------------------------- */

/* A required integer config field in [lo, hi]. */
emb_status arch_need_int(const cJSON *j, const char *key, int lo, int hi, int *out, emb_error *err);
/* Optional: *out keeps its default when absent. */
emb_status arch_opt_int(const cJSON *j, const char *key, int lo, int hi, int *out, emb_error *err);
/* Optional float in (lo, hi). */
emb_status arch_opt_float(const cJSON *j, const char *key, double lo, double hi, float *out,
                          emb_error *err);
/* An activation name of transformers' ACT2FN ("gelu", "gelu_new", ...). */
/* Rotary theta of layer type `type` ("full_attention", "sliding_attention"):
 * rope_parameters[type].rope_theta when rope_parameters is nested by layer
 * type, else the flat rope_parameters.rope_theta (or legacy rope_scaling's),
 * else config key `legacy`, else dflt. Only rope_type (or "type") "default"
 * is accepted: scaled rope types are refused, naming them. */
emb_status arch_rope_theta(const cJSON *j, const char *type, const char *legacy, float dflt, float *out,
                           emb_error *err);
/* Rotary parameters with scaling (arch_pre_rotary_scaled): rope_type
 * "default", "linear" (factor) or "llama3" (factor, low_freq_factor,
 * high_freq_factor, original_max_position_embeddings, as config.json has
 * them: Python floats). */
typedef enum { ARCH_ROPE_DEFAULT = 0, ARCH_ROPE_LINEAR, ARCH_ROPE_LLAMA3 } arch_rope_type;
typedef struct {
    float theta;
    arch_rope_type type;
    double factor, low_freq_factor, high_freq_factor, original_max_position;
} arch_rope;
/* The rotary_dim / 2 inverse frequencies of p, in fp32 as transformers'
 * ROPE_INIT_FUNCTIONS compute them (torch's float32 arithmetic). */
void arch_rope_inv_freq(const arch_rope *p, int rotary_dim, float *inv_freq);
/* For each of the n parameter sets p (a model's full and sliding layers):
 * tables[i] = NULL for the default rope, else its inverse frequencies
 * (r->rotary_dim set before), stored in r->rope_tables; r->rope_scaling
 * says it in words. Assign them to the layers' rope_inv_freq. */
emb_status arch_rope_tables(emb_recipe *r, const arch_rope *p, int n, const float **tables, emb_error *err);
emb_status arch_act(const char *name, const char *key, emb_act *out, emb_error *err);
/* config.json's layer_types[l] for a model of `layers` layers: "sliding_attention"
 * sets *sliding = 1, "full_attention" 0; absent or null leaves *sliding (the
 * family's own rule); anything else is refused. */
emb_status arch_layer_type(const cJSON *j, int layers, int l, int *sliding, emb_error *err);
/* The required sizes under transformers' usual keys: vocab_size, hidden_size,
 * num_hidden_layers, num_attention_heads, intermediate_size. */
emb_status arch_hf_sizes(const cJSON *j, emb_recipe *r, emb_error *err);
/* What the pre-norm gated rotary families (ModernBERT, the decoders) set up
 * alike: place PRE, gated MLP, rotary over the whole head (r->head_dim set
 * before), and from config.json under the family's keys the norm eps, the
 * activation (r->act) and the thetas of full and sliding layers (legacy keys
 * of arch_rope_theta). *eps, *theta_full and *theta_sliding hold the defaults
 * on entry. */
typedef struct {
    const char *eps, *act, *theta_full, *theta_sliding;
} arch_rotary_keys;
emb_status arch_pre_rotary(const cJSON *j, const arch_rotary_keys *k, const char *act_dflt, emb_recipe *r,
                           float *eps, float *theta_full, float *theta_sliding, emb_error *err);
/* The same, accepting the scaled rope types of arch_rope (full->theta and
 * sliding->theta hold the default thetas on entry); the caller gives the
 * layers their tables through arch_rope_tables. */
emb_status arch_pre_rotary_scaled(const cJSON *j, const arch_rotary_keys *k, const char *act_dflt, emb_recipe *r,
                                  float *eps, arch_rope *full, arch_rope *sliding, emb_error *err);
/* transformers' Llama-style layer l (tensors layers.<l>.*, shapes from r):
 * self_attn.{q,k,v}_proj (biases when qkv_bias), o_proj (bias when o_bias)
 * and, when qk_norm is not EMB_NORM_NONE, q_norm / k_norm of that kind over
 * head_dim; mlp.{gate,up,down}_proj (biases when bias). */
emb_status arch_bind_hf_attention(const emb_weights *w, const emb_recipe *r, int l, int qkv_bias, int o_bias,
                                  emb_norm_kind qk_norm, float eps, emb_error *err);
emb_status arch_bind_hf_mlp(const emb_weights *w, const emb_recipe *r, int l, int bias, emb_error *err);
/* pad_token_id: absent -> dflt, null -> -1. */
emb_status arch_pad_id(const cJSON *j, int dflt, int *out, emb_error *err);
/* Allocates r->layer (r->layers entries, zeroed). */
emb_status arch_alloc_layers(emb_recipe *r, emb_error *err);

/* Binds a norm: w = name.weight (b = name.bias when with_bias) of [dim]. */
emb_status arch_bind_norm(const emb_weights *w, const char *name, emb_norm_kind kind, int with_bias,
                          float eps, int64_t dim, emb_norm *dst, emb_error *err);
/* Binds name.weight [d0, d1] and, when bias, name.bias [d0]. */
emb_status arch_bind_linear(const emb_weights *w, const char *name, int64_t d0, int64_t d1, int bias,
                            emb_tensor *wt, emb_tensor *bt, emb_error *err);

const char *arch_act_name(emb_act a);

/* heads must divide hidden (messages name the two config keys); sets
 * head_dim, kv_heads = heads and scale = 1/sqrt(head_dim). */
emb_status arch_split_heads(emb_recipe *r, const char *hidden_key, const char *heads_key, emb_error *err);

/* BERT's post-norm layer under a family's names: biased Q, K, V, O, a
 * LayerNorm after attention, a plain biased FFN and a LayerNorm. Binds
 * layer_prefix + "<l>." + each name for every layer, then refuses tensors
 * of layers beyond count_field. */
typedef struct {
    const char *q, *k, *v, *o, *attn_norm, *up, *down, *mlp_norm;
} arch_post_names;
emb_status arch_bind_post_layers(const emb_weights *w, const char *layer_prefix, const arch_post_names *n,
                                 float eps, const char *count_field, emb_recipe *r, emb_error *err);

#endif
