/*
 * Loading a model directory laid out like the Hugging Face hub: config.json,
 * model.safetensors (or a sharded index), tokenizer.json and the
 * sentence-transformers files. config.json's model_type picks a family
 * file in host/arch, which binds the tensors (through emb_weights below) and
 * checks each dtype and shape against config.json, so backends can trust the
 * recipe.
 */
#ifndef EMBEDC_HOST_MODEL_FILES_H
#define EMBEDC_HOST_MODEL_FILES_H

#include "embedc.h"
#include "model.h"
#include "recipe.h"

/* The encoder's open safetensors files, as the family files see them. */
typedef struct emb_weights emb_weights;

typedef struct emb_model_files {
    char *dir;                 /* resolved model directory (owned) */
    emb_recipe r;              /* the encoder, filled by its family file */
    emb_st_config st;
    void *priv;                /* open safetensors files (owned) */
} emb_model_files;

/* A directory path, or an "org/name" repo id found in the Hugging Face cache
 * ($HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else
 * ~/.cache/huggingface/hub: models--org--name/snapshots/<rev>/). */
emb_status emb_mf_resolve(const char *path_or_repo, char **dir_out, emb_error *err);

/* Loads config.json, weights and the sentence-transformers files of dir. */
emb_status emb_mf_load(const char *dir, emb_model_files *mf, emb_error *err);
void emb_mf_free(emb_model_files *mf);

/* Tensor lookup for the family files. Names are given without the prefix
 * (emb_weights_set_prefix); messages name the file and the tensor. */
void emb_weights_set_prefix(emb_weights *w, const char *prefix);
const char *emb_weights_prefix(const emb_weights *w);
/* Whether a tensor exists under prefix + name (exactly). */
int emb_weights_has(const emb_weights *w, const char *name);
/* Binds prefix + name, checking dtype and shape ([d0] when ndim 1, [d0, d1]
 * when 2). LayerNorm .weight/.bias fall back to TF-era .gamma/.beta. */
emb_status emb_weights_bind(const emb_weights *w, const char *name, int ndim, int64_t d0, int64_t d1,
                            emb_tensor *dst, emb_error *err);
/* As emb_weights_bind, but an absent tensor leaves dst zeroed (data NULL). */
emb_status emb_weights_bind_opt(const emb_weights *w, const char *name, int ndim, int64_t d0,
                                int64_t d1, emb_tensor *dst, emb_error *err);
/* Refuses tensors named prefix + layer_prefix + K + "." with K >= layers:
 * config.json (field count_field) and the weights disagree. */
emb_status emb_weights_check_layers(const emb_weights *w, const char *layer_prefix, int layers,
                                    const char *count_field, emb_error *err);

/* Converts n elements of a tensor view (F32/F16/BF16) to fp32. */
void emb_tensor_to_f32(const emb_tensor *t, float *dst, size_t n);
size_t emb_tensor_numel(const emb_tensor *t);

#endif
