/*
 * The in-memory description of a loaded model, shared by the loaders
 * (model_files.c, safetensors.c), the backends (cpu, cuda) and the engine.
 * Tensors are views into mmapped safetensors files: the loaders check every
 * dtype and shape against config.json before a backend ever sees them, so
 * backends may trust the shapes documented here.
 */
#ifndef EMBEDC_HOST_MODEL_H
#define EMBEDC_HOST_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include "embedc.h"

/* A tensor view: data is not owned (points into an mmapped file). dtype is
 * EMB_DTYPE_F32, EMB_DTYPE_F16 or EMB_DTYPE_BF16; row-major like torch. */
typedef struct {
    const void *data;
    emb_dtype dtype;
    int ndim;
    int64_t shape[4];
    const char *name;     /* tensor name in its file (not owned) */
} emb_tensor;

typedef enum {
    EMB_ACT_IDENTITY = 0,
    EMB_ACT_GELU,         /* exact erf form: "gelu" */
    EMB_ACT_GELU_TANH,    /* "gelu_new", "gelu_pytorch_tanh", "gelu_fast" */
    EMB_ACT_RELU,
    EMB_ACT_SILU,         /* "silu", "swish" */
    EMB_ACT_TANH,
    EMB_ACT_SIGMOID
} emb_act;

/* sentence-transformers Dense module (N_Dense/). */
typedef struct {
    int in_features, out_features;
    int has_bias;
    emb_act act;
    emb_tensor w;             /* [out, in] */
    emb_tensor b;             /* [out] when has_bias */
} emb_dense;

typedef struct {
    char *name;
    char *text;
} emb_prompt;

/* Everything the sentence-transformers files say. Defaults when a file is
 * absent: mean pooling, include_prompt, no Dense, no Normalize. */
typedef struct {
    int pooling_modes;        /* EMB_POOL_* bits */
    int include_prompt;       /* 1: prompt tokens take part in pooling */
    int pooling_dim;          /* word_embedding_dimension (== hidden) */
    emb_dense *dense;
    int n_dense;
    int normalize;            /* a Normalize module follows */
    int max_seq_length;       /* sentence_bert_config.json, 0 if absent */
    int do_lower_case;
    emb_prompt *prompts;
    int n_prompts;
    char *default_prompt_name;   /* NULL if none */
    char *similarity_fn;         /* "cosine" if unspecified */
} emb_st_config;

#endif
