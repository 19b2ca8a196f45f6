/*
 * Loading a model directory laid out like the Hugging Face hub: config.json,
 * model.safetensors (or a sharded index), tokenizer.json and the
 * sentence-transformers files. Every tensor's dtype and shape is checked
 * against config.json here, so backends can trust emb_bert_weights.
 */
#ifndef EMBEDC_HOST_MODEL_FILES_H
#define EMBEDC_HOST_MODEL_FILES_H

#include "embedc.h"
#include "model.h"

typedef struct emb_model_files {
    char *dir;                 /* resolved model directory (owned) */
    emb_bert_config cfg;
    emb_bert_weights w;
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

/* Converts n elements of a tensor view (F32/F16/BF16) to fp32. */
void emb_tensor_to_f32(const emb_tensor *t, float *dst, size_t n);
size_t emb_tensor_numel(const emb_tensor *t);

#endif
