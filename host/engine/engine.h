/*
 * The engine: streams documents from a reader through the tokenizer pool,
 * the length-sorting batcher and a backend, and hands finished vectors to a
 * writer in input order. emb_encode() is this pipeline over an in-memory
 * array; the CLI runs it over files of any size.
 */
#ifndef EMBEDC_HOST_ENGINE_H
#define EMBEDC_HOST_ENGINE_H

#include <pthread.h>
#include <stdint.h>
#include <stddef.h>
#include "embedc.h"
#include "backend.h"
#include "model_files.h"
#include "tokenizer.h"

struct emb_model {
    emb_model_files mf;
    tok_tokenizer *tok;
    emb_backend *be;
    emb_model_options opts;
    int max_length;            /* tokens, specials included */
    int cls_id;                /* for describe() */
    pthread_mutex_t mu;        /* serializes calls that use the backend (embedc.h) */
    int mu_ready;
};

/* Reader: fills one document. Returns 1 with a document, 0 at the end, -1 on
 * error (err filled). *text stays valid until the next call. */
typedef int (*eng_read_fn)(void *ud, const char **text, size_t *len, emb_error *err);

/* Writer: n vectors of dim floats for documents first..first+n-1, always
 * called in increasing, gap-free order. */
typedef emb_status (*eng_write_fn)(void *ud, uint64_t first, size_t n, const float *vecs,
                                   int dim, emb_error *err);

/* Progress: called after each batch with running totals. */
typedef void (*eng_progress_fn)(void *ud, uint64_t docs, uint64_t tokens);

typedef struct {
    size_t batch_tokens;       /* token budget of one packed batch (0 = default) */
    size_t window_docs;        /* documents sorted together (0 = default) */
    eng_progress_fn progress;
    void *progress_ud;
} eng_run_options;

emb_status eng_run(emb_model *m, const emb_encode_options *opts, const eng_run_options *ropts,
                   eng_read_fn read, void *read_ud, eng_write_fn write, void *write_ud,
                   emb_encode_stats *stats, emb_error *err);

/* Tokenizes one document exactly as encoding does (repair, lowercase, prompt,
 * truncation). Returns the prompt's token count to skip in pooling via *skip. */
typedef struct {
    const char *prompt;        /* resolved prompt text or NULL */
    int skip;                  /* prompt tokens excluded from pooling (include_prompt = false) */
} eng_prompt;

emb_status eng_resolve_prompt(emb_model *m, const emb_encode_options *opts, eng_prompt *p,
                              emb_error *err);
emb_status eng_tokenize(emb_model *m, const eng_prompt *p, const char *text, size_t len,
                        tok_encoding *enc, int *invalid_utf8, int *truncated, emb_error *err);

/* Fills the backend job for these options. */
emb_status eng_make_job(const emb_model *m, const emb_encode_options *opts, emb_job *job,
                        emb_error *err);

#endif
