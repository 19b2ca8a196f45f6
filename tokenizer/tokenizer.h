/* tokenizer.h - public API of the embedc tokenizer: a C11 interpreter for
 * Hugging Face `tokenizer.json` files that produces exactly the ids the Rust
 * `tokenizers` library produces.  A loaded tokenizer is immutable and may be
 * shared by any number of threads; all per-call state lives in the caller's
 * tok_encoding.  The tokenizer knows nothing about models. */
#ifndef EMBEDC_TOKENIZER_H
#define EMBEDC_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tok_tokenizer tok_tokenizer;           /* immutable after load, shareable across threads */
typedef struct { char message[512]; } tok_error;       /* names the file/field/offset */

/* 0 on success, -1 on error (err filled, *out untouched). */
int  tok_load_file(const char *path, tok_tokenizer **out, tok_error *err);
int  tok_load_json(const char *json, size_t len, const char *origin_name, tok_tokenizer **out, tok_error *err);
void tok_free(tok_tokenizer *t);

struct tok_scratch;   /* per-encoding working memory, private to the tokenizer */

typedef struct {
    int32_t *ids;
    int32_t *type_ids;
    uint8_t *special_mask;     /* 1 for tokens added by the post-processor / special added tokens */
    size_t len, cap;
    size_t untruncated_len;    /* length before truncation (with specials) */
    struct tok_scratch *scratch; /* reused between calls; freed by tok_encoding_free */
} tok_encoding;

/* An encoding is reused across calls: encode grows its buffers, never shrinks them. */
void tok_encoding_init(tok_encoding *e);
void tok_encoding_free(tok_encoding *e);

/* max_length value that disables truncation, whatever tokenizer.json says. */
#define TOK_NO_TRUNCATION ((size_t)-1)

/* Encodes valid UTF-8 `text` (callers repair invalid UTF-8 first with
 * tok_utf8_repair; invalid input is rejected with an error).
 * add_special: apply the post-processor (e.g. [CLS] ... [SEP]).
 * max_length 0 = use the tokenizer.json truncation setting (if any);
 * >0 = truncate to this many tokens including specials (right side unless
 * tokenizer.json says left), like HF with truncation enabled;
 * TOK_NO_TRUNCATION = never truncate.
 * Returns 0 on success, -1 on error. */
int  tok_encode(const tok_tokenizer *t, const char *text, size_t len, int add_special,
                size_t max_length, tok_encoding *e, tok_error *err);

const char *tok_id_to_token(const tok_tokenizer *t, int32_t id);  /* NULL if out of range */
int32_t tok_token_to_id(const tok_tokenizer *t, const char *token); /* -1 if absent */
size_t  tok_vocab_size(const tok_tokenizer *t);                    /* model vocab + added tokens (max id + 1) */
size_t  tok_model_vocab_size(const tok_tokenizer *t);              /* the model's own vocabulary, without added tokens */
size_t  tok_truncation_max_length(const tok_tokenizer *t);         /* 0 if tokenizer.json has none */
int     tok_truncation_left(const tok_tokenizer *t);               /* 1 if tokenizer.json truncates on the left */
int32_t tok_pad_id(const tok_tokenizer *t);                        /* padding section, else [PAD]/<pad>, else -1 */

/* Python bytes.decode('utf-8', errors='replace') semantics (one U+FFFD per
 * maximal invalid subpart).  Returns the number of replacements; *out is
 * malloc'ed and NUL-terminated (NULL and 0 on allocation failure). */
size_t tok_utf8_repair(const char *in, size_t len, char **out, size_t *out_len);

/* A pool of encoder threads sharing one tokenizer, for the engine's reader
 * stage.  tok_pool_encode encodes texts[0..n) into encs[0..n) (each
 * initialized by the caller with tok_encoding_init and reused across calls;
 * the calling thread works too) and returns when all are done.  It returns 0
 * when every text encoded; otherwise -1, err naming the first failing text's
 * index, and the failed encodings have len 0.  One call at a time per pool
 * (concurrent calls are serialized).  n_threads <= 0 means one per CPU. */
typedef struct tok_pool tok_pool;
int  tok_pool_create(const tok_tokenizer *t, int n_threads, tok_pool **out, tok_error *err);
int  tok_pool_encode(tok_pool *p, const char *const *texts, const size_t *lens, size_t n, int add_special,
                     size_t max_length, tok_encoding *encs, tok_error *err);
int  tok_pool_threads(const tok_pool *p);
void tok_pool_free(tok_pool *p);

#ifdef __cplusplus
}
#endif
#endif
