/*
 * The engine: streams documents from a reader through the tokenizer pool,
 * the length-sorting batcher and a backend, and hands finished vectors to a
 * writer in input order. emb_encode() is this pipeline over an in-memory
 * array; the CLI runs it over files of any size.
 */
#ifndef EMBEDC_HOST_ENGINE_H
#define EMBEDC_HOST_ENGINE_H

#include <signal.h>
#include <pthread.h>
#include <stdint.h>
#include <stddef.h>
#include "embedc.h"
#include "backend.h"
#include "model_files.h"
#include "tokenizer.h"
#include "static_vectors.h"

struct emb_model {
    emb_model_files mf;
    tok_tokenizer *tok;
    emb_backend *be;           /* == workers[0]: names, token embeddings, describe() */
    emb_backend *workers[EMB_MAX_DEVICES];   /* one per device (data-parallel) */
    int worker_device[EMB_MAX_DEVICES];      /* device id of each worker (a group's first) */
    int nworkers;
    int worker_devices;        /* devices per worker: --tensor-parallel (0, 1: one) */
    emb_model_options opts;
    int max_length;            /* tokens, specials included */
    int cls_id;                /* for describe() */
    /* Static models (word vectors, model2vec, StaticEmbedding); NULL for
     * transformers. mf then only carries dir, hidden = dim and pooling. */
    emb_static_vectors *sv;
    int sv_lowercase;          /* word formats: lowercase before lookup */
    int sv_truncate;           /* model2vec max_length in tokens (0 = none) */
    int sv_median_token_len;   /* model2vec: characters kept = sv_truncate x this */
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

/* Reads a tokenizer.json (regular file, EMB_MAX_TOKENIZER_JSON_BYTES at most)
 * and loads it; shown names it in messages. */
emb_status eng_load_tokenizer(const char *path, const char *shown, tok_tokenizer **out, emb_error *err);

/* For `embedc tokenize`: a model holding only a tokenizer (no weights, no
 * backend), from tokenizer_json when given, else from model_path when that
 * directory has a tokenizer.json and no config.json (a tokenizer repository).
 * *out stays NULL (EMB_OK) when model_path is a model directory: load it
 * whole. max_length 0 = tokenizer.json's truncation. */
emb_status eng_load_tokenizer_model(const char *tokenizer_json, const char *model_path, int max_length,
                                    emb_model **out, emb_error *err);

typedef struct {
    size_t batch_tokens;       /* token budget of one packed batch (0 = default) */
    size_t window_docs;        /* documents sorted together (0 = default) */
    eng_progress_fn progress;
    void *progress_ud;
    /* When set and *stop becomes non-zero (a signal handler), the run ends
     * after the batch in progress with EMB_ERR_INTERRUPTED; windows already
     * handed to the writer stay written. */
    volatile sig_atomic_t *stop;
    int max_workers;           /* use at most this many device workers (0 = all) */
    /* Names document `doc` (numbered as the writer's `first`) in errors
     * beside its number, e.g. the id the index command reads from JSONL:
     * fills buf (cap bytes) and returns 0, or -1 when it has none. NULL:
     * numbers only. Called on the calling thread. */
    int (*doc_label)(void *ud, uint64_t doc, char *buf, size_t cap);
    void *doc_label_ud;
} eng_run_options;

/* A reader over another reader's documents [skip, skip + limit): the first
 * `skip` are read and dropped, and the end comes after `limit` more
 * (UINT64_MAX: the input's end). Resumed jobs and MPI ranks read their share
 * of one input this way. */
typedef struct {
    eng_read_fn read;
    void *ud;
    uint64_t skip, limit;
    uint64_t pos;              /* documents taken from `read` so far */
} eng_range_reader;
int eng_range_read(void *ud, const char **text, size_t *len, emb_error *err);

/* Seconds on the monotonic clock (for the pipeline's timings). */
double eng_now_s(void);

emb_status eng_run(emb_model *m, const emb_encode_options *opts, const eng_run_options *ropts,
                   eng_read_fn read, void *read_ud, eng_write_fn write, void *write_ud,
                   emb_encode_stats *stats, emb_error *err);

/* emb_encode with run options (bench: a limit on device workers). */
emb_status eng_encode_array(emb_model *m, const char *const *texts, const size_t *lens, size_t n,
                            const emb_encode_options *opts, const eng_run_options *ropts, float *out,
                            emb_encode_stats *stats, emb_error *err);

/* Tokenizes one document exactly as encoding does (repair, lowercase, prompt,
 * truncation). Returns the prompt's token count to skip in pooling via *skip. */
typedef struct {
    const char *prompt;        /* resolved prompt text (valid UTF-8) or NULL */
    int skip;                  /* prompt tokens excluded from pooling (include_prompt = false) */
    char *owned;               /* the repaired copy when the prompt had invalid UTF-8 */
} eng_prompt;

/* Frees what eng_resolve_prompt allocated (a repaired prompt). */
void eng_prompt_free(eng_prompt *p);

/* opts->max_doc_bytes with the default applied (SIZE_MAX: no limit). */
size_t eng_max_doc_bytes(const emb_encode_options *opts);

/* The per-document byte limit: 0 when t[0..*len) fits, 1 when *len was cut
 * (at a UTF-8 character boundary), -1 (err names the document by its input
 * index) when it must be refused: long_error, or a tokenizer that truncates
 * on the left (its kept tokens are at the end). */
int eng_doc_limit(const emb_model *m, size_t max_doc, int long_error, const char *t, size_t *len,
                  uint64_t index, emb_error *err);

emb_status eng_resolve_prompt(emb_model *m, const emb_encode_options *opts, eng_prompt *p,
                              emb_error *err);
emb_status eng_tokenize(emb_model *m, const eng_prompt *p, const char *text, size_t len,
                        tok_encoding *enc, int *invalid_utf8, int *truncated, emb_error *err);
/* Refuses an encoding holding an id with no row in the embedding table: an
 * added token of tokenizer.json past config.json's vocab_size (EmbeddingGemma's
 * <image_soft_token> is id 262144 of 262144 rows). The message names the token;
 * callers prefix the document. Every path that embeds runs it, so no backend
 * sees such an id. */
emb_status eng_check_ids(const emb_model *m, const tok_encoding *enc, emb_error *err);

/* Static models: one document's ids (rows of a word table, or token ids)
 * into ids[0..cap), see static_text.c for the word splitter. *oov counts
 * words (or model2vec unknown tokens) dropped. groups (may be NULL) gets,
 * per id, the number of consecutive ids that make up its word (1, or k for
 * the k n-gram rows of a word fastText builds from subwords); the engine
 * hands it to the backend as the batch's type_ids. */
emb_status eng_static_tokenize(const emb_model *m, const char *text, size_t len, tok_encoding *scratch,
                               int32_t *ids, int32_t *groups, size_t cap, size_t *n_out, uint64_t *oov,
                               int *invalid_utf8, int *truncated, emb_error *err);
/* The word splitter alone: calls fn for each word; returns the count. */
typedef void (*eng_word_fn)(void *ud, const char *word, size_t len);
size_t eng_split_words(const char *s, size_t len, eng_word_fn fn, void *ud);
int eng_median_token_length(const tok_tokenizer *tok);
/* Python str.lower() per code point (caller frees). */
char *eng_lowercase_utf8(const char *s, size_t len, size_t *out_len);

/* Fills the backend job for these options. */
emb_status eng_make_job(const emb_model *m, const emb_encode_options *opts, emb_job *job,
                        emb_error *err);

#endif
