/*
 * The part of the public API that bindings need beyond emb_encode(): model
 * facts (dimensions, prompts, similarity function), the truncation length as
 * a settable property, tokenization of one text, and token embeddings. The
 * Python package (python/embedc) is its first user; everything here goes
 * through the same prompt resolution and tokenization as emb_encode(), so a
 * binding cannot drift from what the engine embeds.
 */
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "error.h"

/* Token budget of one token_embeddings batch: the engine's batch budget,
 * never less than one full-length document. */
#define BIND_TOKEN_BATCH 16384

emb_status emb_model_get_info(const emb_model *m, emb_model_info *info, emb_error *err) {
    if (!m || !info) return emb_fail(err, EMB_ERR_INVALID_ARG, "emb_model_get_info: NULL argument");
    const emb_st_config *st = &m->mf.st;
    memset(info, 0, sizeof *info);
    info->dim = emb_model_dim(m, NULL);
    info->hidden = m->mf.r.hidden;
    info->max_seq_length = m->max_length;
    info->max_positions = m->mf.r.max_position;
    info->layers = m->mf.r.layers;
    info->normalize = st->normalize;
    info->n_prompts = st->n_prompts;
    info->similarity_fn = st->similarity_fn ? st->similarity_fn : "cosine";
    info->default_prompt_name = st->default_prompt_name;
    info->backend = m->be ? m->be->name : "none";
    info->dir = m->mf.dir;
    return EMB_OK;
}

emb_status emb_model_prompt(const emb_model *m, int i, const char **name, const char **text,
                            emb_error *err) {
    if (!m || !name || !text) return emb_fail(err, EMB_ERR_INVALID_ARG, "emb_model_prompt: NULL argument");
    if (i < 0 || i >= m->mf.st.n_prompts)
        return emb_fail(err, EMB_ERR_INVALID_ARG, "emb_model_prompt: index %d, the model has %d prompts",
                        i, m->mf.st.n_prompts);
    *name = m->mf.st.prompts[i].name;
    *text = m->mf.st.prompts[i].text;
    return EMB_OK;
}

emb_status emb_model_set_max_length(emb_model *m, int max_length, emb_error *err) {
    if (!m) return emb_fail(err, EMB_ERR_INVALID_ARG, "emb_model_set_max_length: NULL model");
    if (max_length < 1 || max_length > m->mf.r.max_position)
        return emb_fail(err, EMB_ERR_INVALID_ARG,
                        "max_seq_length %d: must be 1..%d (max_position_embeddings of %s/config.json)",
                        max_length, m->mf.r.max_position, m->mf.dir);
    pthread_mutex_lock(&m->mu);
    m->max_length = max_length;
    pthread_mutex_unlock(&m->mu);
    return EMB_OK;
}

emb_status emb_tokenize(emb_model *m, const char *text, size_t len, const emb_encode_options *opts,
                        int32_t *ids, int32_t *type_ids, size_t cap, size_t *n, emb_error *err) {
    if (!m || !text || !n || (cap && !ids))
        return emb_fail(err, EMB_ERR_INVALID_ARG, "emb_tokenize: NULL argument");
    emb_encode_options d = emb_encode_default_options();
    eng_prompt p;
    emb_status st = eng_resolve_prompt(m, opts ? opts : &d, &p, err);
    if (st != EMB_OK) return st;
    tok_encoding enc;
    tok_encoding_init(&enc);
    int invalid = 0, truncated = 0;
    st = eng_tokenize(m, &p, text, len, &enc, &invalid, &truncated, err);
    if (st == EMB_OK) {
        size_t k = enc.len < cap ? enc.len : cap;
        memcpy(ids, enc.ids, k * sizeof *ids);
        if (type_ids) memcpy(type_ids, enc.type_ids, k * sizeof *type_ids);
        *n = enc.len;
    }
    tok_encoding_free(&enc);
    return st;
}

/* Tokenizes every text into one packed buffer (ids, type ids, cu offsets). */
static emb_status tokenize_all(emb_model *m, const eng_prompt *p, const char *const *texts,
                               const size_t *lens, size_t n, int32_t **ids, int32_t **types,
                               size_t **cu, emb_error *err) {
    size_t cap = 0, total = 0;
    *ids = *types = NULL;
    *cu = malloc((n + 1) * sizeof **cu);
    if (!*cu) return emb_fail(err, EMB_ERR_NOMEM, "out of memory tokenizing %zu texts", n);
    (*cu)[0] = 0;
    tok_encoding enc;
    tok_encoding_init(&enc);
    emb_status st = EMB_OK;
    for (size_t i = 0; i < n && st == EMB_OK; i++) {
        if (!texts[i]) {
            st = emb_fail(err, EMB_ERR_INVALID_ARG, "emb_token_embeddings: texts[%zu] is NULL", i);
            break;
        }
        int invalid = 0, truncated = 0;
        st = eng_tokenize(m, p, texts[i], lens ? lens[i] : strlen(texts[i]), &enc, &invalid,
                          &truncated, err);
        if (st == EMB_OK) st = eng_check_ids(m, &enc, err);
        if (st != EMB_OK) {
            emb_fail_prefix(err, "document %zu", i);
            break;
        }
        if (total + enc.len > cap) {
            size_t ncap = (total + enc.len) * 2 + 256;
            int32_t *a = realloc(*ids, ncap * sizeof *a);
            if (a) *ids = a;
            int32_t *b = a ? realloc(*types, ncap * sizeof *b) : NULL;
            if (b) *types = b;
            if (!a || !b) {
                st = emb_fail(err, EMB_ERR_NOMEM, "out of memory tokenizing %zu texts", n);
                break;
            }
            cap = ncap;
        }
        memcpy(*ids + total, enc.ids, enc.len * sizeof **ids);
        memcpy(*types + total, enc.type_ids, enc.len * sizeof **types);
        total += enc.len;
        (*cu)[i + 1] = total;
    }
    tok_encoding_free(&enc);
    return st;
}

emb_status emb_token_embeddings(emb_model *m, const char *const *texts, const size_t *lens,
                                size_t n, const emb_encode_options *opts, float *out,
                                size_t out_tokens, int32_t *counts, emb_error *err) {
    if (!m || (n && (!texts || !counts)))
        return emb_fail(err, EMB_ERR_INVALID_ARG, "emb_token_embeddings: NULL argument");
    if (n == 0) return EMB_OK;
    if (out && !m->be->token_embeddings)
        return emb_fail(err, EMB_ERR_UNSUPPORTED, "the %s backend does not give token embeddings",
                        m->be->name);
    emb_encode_options d = emb_encode_default_options();
    if (!opts) opts = &d;
    int32_t *ids = NULL, *types = NULL, *cu32 = NULL;
    size_t *cu = NULL;
    emb_job job;
    eng_prompt p;
    pthread_mutex_lock(&m->mu);   /* max_length and the backend's workspace */
    emb_status st = eng_make_job(m, opts, &job, err);
    if (st == EMB_OK) st = eng_resolve_prompt(m, opts, &p, err);
    if (st == EMB_OK) st = tokenize_all(m, &p, texts, lens, n, &ids, &types, &cu, err);
    if (st != EMB_OK) goto done;
    for (size_t i = 0; i < n; i++) counts[i] = (int32_t)(cu[i + 1] - cu[i]);
    if (!out) goto done;
    if (cu[n] > out_tokens) {
        st = emb_fail(err, EMB_ERR_INVALID_ARG,
                      "emb_token_embeddings: the texts have %zu tokens but out holds %zu", cu[n],
                      out_tokens);
        goto done;
    }
    size_t budget = m->opts.batch_tokens ? m->opts.batch_tokens : BIND_TOKEN_BATCH;
    if (budget < (size_t)m->max_length) budget = (size_t)m->max_length;
    cu32 = malloc((n + 1) * sizeof *cu32);
    if (!cu32) {
        st = emb_fail(err, EMB_ERR_NOMEM, "out of memory");
        goto done;
    }
    /* Texts in input order, cut into packed batches by the token budget. */
    size_t hidden = (size_t)m->mf.r.hidden;
    for (size_t i = 0; i < n;) {
        size_t k = 0, base = cu[i];
        int max_seqlen = 0;
        cu32[0] = 0;
        while (i + k < n && (k == 0 || cu[i + k + 1] - base <= budget)) {
            int l = (int)(cu[i + k + 1] - cu[i + k]);
            if (l > max_seqlen) max_seqlen = l;
            cu32[k + 1] = (int32_t)(cu[i + k + 1] - base);
            k++;
        }
        emb_batch b = {ids + base, types + base, cu32, NULL, (int)k, cu32[k], max_seqlen};
        st = m->be->token_embeddings(m->be, &b, job.layer, out + base * hidden, err);
        if (st != EMB_OK) {
            emb_fail_prefix(err, "documents %zu..%zu", i, i + k - 1);
            goto done;
        }
        i += k;
    }
done:
    pthread_mutex_unlock(&m->mu);
    free(ids);
    free(types);
    free(cu);
    free(cu32);
    return st;
}

size_t emb_struct_size(const char *name) {
    static const struct { const char *name; size_t size; } structs[] = {
        {"emb_model_options", sizeof(emb_model_options)}, {"emb_encode_options", sizeof(emb_encode_options)},
        {"emb_encode_stats", sizeof(emb_encode_stats)}, {"emb_model_info", sizeof(emb_model_info)},
        {"emb_error", sizeof(emb_error)}, {"emb_run_options", sizeof(emb_run_options)}};
    for (size_t i = 0; name && i < sizeof structs / sizeof structs[0]; i++)
        if (!strcmp(name, structs[i].name)) return structs[i].size;
    return 0;
}
