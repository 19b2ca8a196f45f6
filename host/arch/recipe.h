/*
 * The recipe: a transformer encoder (or decoder used as an encoder) described
 * as data, so that each backend has ONE forward that runs every family
 * (DESIGN.md §8). A family file host/arch/FAMILY.c reads config.json, binds
 * the tensors by their names, checks every shape and fills one emb_recipe;
 * the backends never know a family by name.
 *
 * The forward every backend runs, per token x (hidden wide):
 *
 *   x = word[id] * emb.scale + positions (learned/sinusoidal) + token_type
 *   x = emb.norm(x)                                   (when emb.norm.kind)
 *   per layer l:
 *     POST (BERT):  x = attn_norm(x + Attn(x));  x = mlp_norm(x + MLP(x))
 *     PRE  (ModernBERT, T5, Llama):
 *                   x = x + Attn(attn_norm(x));  x = x + MLP(mlp_norm(x))
 *     SANDWICH (Gemma): PRE, and attn_post_norm / mlp_post_norm applied to
 *                   the sublayer's output before the residual add.
 *     A norm whose kind is EMB_NORM_NONE is the identity (ModernBERT's
 *     layer 0 has no attn_norm).
 *   x = final_norm(x)                                 (when final_norm.kind)
 *
 *   Attn(h): q, k, v = h Wq^T + bq, h Wk^T + bk, h Wv^T + bv (or one fused
 *     wqkv [(heads + 2 kv_heads) head_dim, hidden] in that row order);
 *     q_norm / k_norm per head when present; rotary on q and k when
 *     layer.rope_theta > 0 (first rotary_dim dims of each head, HF
 *     rotate_half pairing); logits = q.k * scale (+ relative bias) (softcap);
 *     key j visible to query i iff (window_left < 0 || j >= i - window_left)
 *     && (window_right < 0 || j <= i + window_right); out = softmax . v,
 *     then (.) Wo^T + bo.
 *   MLP(h): plain: down(act(h W_up^T + b_up)) ;
 *           gated: down(act(h W_gate^T + b_gate) * (h W_up^T + b_up)), the
 *           gate/up pair either separate or fused as w_gate_up [2I, hidden]
 *           (rows 0..I-1 the activated gate, rows I..2I-1 the linear up).
 *
 * Tensors are emb_tensor views into the mmapped files; an absent optional
 * tensor has data == NULL. Linear weights are [out, in] like torch.
 *
 * Changes after the first version are additive (new fields default to 0 /
 * NULL meaning "not used"), announced in commit messages.
 */
#ifndef EMBEDC_HOST_RECIPE_H
#define EMBEDC_HOST_RECIPE_H

#include "model.h"

typedef enum {
    EMB_NORM_NONE = 0,   /* identity */
    EMB_NORM_LAYER,      /* LayerNorm: (x - mean) / sqrt(var + eps) * w (+ b when b.data) */
    EMB_NORM_RMS,        /* RMSNorm, T5's mean-free norm: x / sqrt(mean(x^2) + eps) * w */
    EMB_NORM_RMS_1P      /* Gemma: x / sqrt(mean(x^2) + eps) * (1 + w) */
} emb_norm_kind;

typedef struct {
    emb_norm_kind kind;
    float eps;
    emb_tensor w;        /* [dim] */
    emb_tensor b;        /* [dim], or data == NULL (no bias) */
} emb_norm;

typedef enum {
    EMB_PLACE_POST = 0,  /* BERT: norm after the residual add */
    EMB_PLACE_PRE,       /* norm on the sublayer's input */
    EMB_PLACE_SANDWICH   /* Gemma: pre, plus a norm on the sublayer's output */
} emb_norm_place;

/* Positions added to the embeddings. */
typedef enum {
    EMB_EPOS_NONE = 0,
    EMB_EPOS_LEARNED,    /* emb.position[pos + offset] */
    EMB_EPOS_SINUSOIDAL  /* computed table (DistilBERT sinusoidal_pos_embds when no table is stored) */
} emb_embed_pos;

/* Positions inside attention. */
typedef enum {
    EMB_APOS_NONE = 0,
    EMB_APOS_ROTARY,     /* per-layer theta (layer.rope_theta), rotary_dim */
    EMB_APOS_RELATIVE    /* bucketed relative-position bias, one table shared by all layers */
} emb_attn_pos;

typedef struct {
    emb_tensor word;             /* [vocab, hidden] */
    float scale;                 /* word embeddings are multiplied by it (1: none; Gemma sqrt(hidden)) */
    emb_embed_pos pos;
    emb_tensor position;         /* [max_position (+ offset), hidden] when EMB_EPOS_LEARNED */
    /* Position of the t-th token of a sequence (t from 0):
     *   pad_id < 0:  t + offset                         (BERT: offset 0)
     *   pad_id >= 0: transformers' create_position_ids_from_input_ids
     *                (RoBERTa family, MPNet): pad tokens get pad_id, others
     *                pad_id + (number of non-pad tokens up to and including t). */
    int pos_offset;
    int pos_pad_id;
    emb_tensor token_type;       /* [type_vocab, hidden], or data == NULL */
    int type_vocab;              /* rows of token_type (0 when absent) */
    emb_norm norm;               /* embedding norm, or kind NONE */
} emb_recipe_embed;

typedef struct {
    int num_buckets;             /* T5 / MPNet relative_attention_num_buckets */
    int max_distance;            /* relative_attention_max_distance */
    int bidirectional;           /* 1 for encoders */
    emb_tensor table;            /* [num_buckets, heads] */
} emb_recipe_relative;

typedef struct {
    /* norms (placement: emb_recipe.place) */
    emb_norm attn_norm, mlp_norm;
    emb_norm attn_post_norm, mlp_post_norm;   /* SANDWICH only */

    /* attention: separate q/k/v, or fused wqkv (then wq/wk/wv unused) */
    emb_tensor wq, wk, wv, wqkv;              /* [heads*hd, hidden], [kv*hd, hidden] x2, fused */
    emb_tensor bq, bk, bv, bqkv;              /* biases or data == NULL */
    emb_tensor wo, bo;                        /* [hidden, heads*hd], [hidden] */
    emb_norm q_norm, k_norm;                  /* per head over head_dim, or kind NONE */
    int window_left, window_right;            /* -1: unbounded on that side (see top) */
    float rope_theta;                         /* EMB_APOS_ROTARY: this layer's theta */
    /* EMB_APOS_ROTARY with a scaled rope type (Llama 3's "llama3", "linear"):
     * the rotary_dim / 2 inverse frequencies, computed on the host in fp32 as
     * transformers' ROPE_INIT_FUNCTIONS do (in emb_recipe.rope_tables).
     * NULL: 1 / rope_theta^((float)(2d) / rotary_dim), the default rope. */
    const float *rope_inv_freq;

    /* MLP: plain uses w_up; gated uses w_gate + w_up, or the fused w_gate_up */
    emb_tensor w_up, b_up;                    /* [I, hidden] */
    emb_tensor w_gate, b_gate;                /* [I, hidden] */
    emb_tensor w_gate_up, b_gate_up;          /* [2I, hidden] */
    emb_tensor w_down, b_down;                /* [hidden, I] */
} emb_recipe_layer;

typedef struct {
    char model_type[32];         /* config.json model_type */
    const char *family;          /* the arch file that filled it: "bert", "mpnet", ... */
    const char *weights_prefix;  /* the prefix the tensors were found under ("", "bert.", ...) */
    emb_dtype dtype;             /* storage dtype of the encoder tensors */

    int vocab_size;
    int hidden;
    int layers;
    int intermediate;            /* I */
    int max_position;            /* longest sequence the model accepts */
    int pad_token_id;            /* -1 when none */

    emb_recipe_embed emb;
    emb_norm_place place;

    /* attention, common to every layer */
    int heads, kv_heads, head_dim;
    float scale;                 /* logit scale: 1/sqrt(head_dim) for most, 1 for T5 */
    float softcap;               /* > 0: softcap * tanh(logit / softcap) */
    emb_attn_pos attn_pos;
    int rotary_dim;              /* EMB_APOS_ROTARY: rotated dims per head (<= head_dim, even) */
    emb_recipe_relative rel;     /* EMB_APOS_RELATIVE */

    /* MLP, common to every layer */
    int gated;
    emb_act act;

    emb_recipe_layer *layer;     /* layers entries (owned by the model files) */
    emb_norm final_norm;         /* or kind NONE */

    /* Activations leave fp16's range (|x| > 65504) inside the network
     * (EmbeddingGemma reaches ~8e5; TEI refuses fp16 for it, TEI #748): a
     * GPU backend asked for f16 computes in bf16 instead (same range as
     * fp32) and says so once, with this reason (a static string, e.g. "Gemma
     * 3 activations reach ~8e5"). Set by the family file; 0 = f16 is fine. */
    int f16_unsafe;
    const char *f16_unsafe_reason;

    /* Storage of the layers' rope_inv_freq tables (freed with the recipe),
     * and the scaling in words for `embedc info` ("" when none). */
    float *rope_tables;
    char rope_scaling[96];
} emb_recipe;

/* Window helpers shared by the family files. */
#define EMB_WINDOW_NONE (-1)

/* The relative-position bucket of T5 and MPNet (they agree), for key j and
 * query i: rel = j - i. Computed in float32 as torch does. */
int emb_relative_bucket(int rel, int num_buckets, int max_distance, int bidirectional);

/* Text for `embedc info`: the recipe in words, one line per item, written
 * into buf (always NUL-terminated). Returns the length it wanted. */
size_t emb_recipe_describe(const emb_recipe *r, char *buf, size_t cap);

/* FLOPs of a forward over one sequence of len tokens through `layers`
 * layers: 2 x matmul weights touched per token + attention (windows
 * honoured). */
double emb_recipe_seq_flops(const emb_recipe *r, int layers, double len);

#endif
