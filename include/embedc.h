/*
 * embedc public C API: load a Hugging Face embedding model (local directory or
 * hub-cache repo id) and turn text into embedding vectors that match
 * sentence-transformers. Flat functions over opaque handles; every function
 * that can fail returns emb_status and fills an emb_error naming what failed.
 */
#ifndef EMBEDC_H
#define EMBEDC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    EMB_OK = 0,
    EMB_ERR_INVALID_ARG,   /* caller passed something unusable */
    EMB_ERR_IO,            /* a file could not be opened, read or written */
    EMB_ERR_FORMAT,        /* a model or input file is malformed */
    EMB_ERR_UNSUPPORTED,   /* well-formed but not something embedc runs (yet) */
    EMB_ERR_NOMEM,         /* host allocation failed */
    EMB_ERR_DEVICE,        /* CUDA / cuBLAS / NCCL failure */
    EMB_ERR_DEVICE_OOM,    /* device memory exhausted */
    EMB_ERR_INTERNAL,
    EMB_ERR_INTERRUPTED    /* stopped on request (a signal) at a batch boundary */
} emb_status;

typedef struct {
    emb_status code;
    char message[1024];
} emb_error;

const char *emb_status_name(emb_status s);

typedef enum { EMB_DEVICE_AUTO = 0, EMB_DEVICE_CPU, EMB_DEVICE_CUDA } emb_device;
typedef enum { EMB_DTYPE_AUTO = 0, EMB_DTYPE_F32, EMB_DTYPE_F16, EMB_DTYPE_BF16 } emb_dtype;

/* Pooling modes; a model may combine several (concatenated in this order,
 * like sentence-transformers). */
enum {
    EMB_POOL_CLS = 1 << 0,
    EMB_POOL_MAX = 1 << 1,
    EMB_POOL_MEAN = 1 << 2,
    EMB_POOL_MEAN_SQRT_LEN = 1 << 3,
    EMB_POOL_WEIGHTED_MEAN = 1 << 4,
    EMB_POOL_LAST_TOKEN = 1 << 5,
    EMB_POOL_SUM = 1 << 6          /* static models only */
};

typedef struct emb_model emb_model;

typedef struct {
    emb_device device;      /* AUTO: CUDA when a GPU is usable, else CPU */
    emb_dtype dtype;        /* GPU weights/activations; AUTO = model's dtype (f32 models -> f16) */
    int threads;            /* CPU threads (0 = OMP_NUM_THREADS if set, else all cores) */
    int max_length;         /* 0 = model's max_seq_length */
    size_t batch_tokens;    /* tokens per packed batch / device chunk (0 = default) */
    int verbose;            /* notices on stderr */
    const char *devices;    /* GPUs to use: NULL or "all" (every visible one), "N" (the first N),
                               or a list "0,2,3"; one device worker each, data-parallel */
    int lowercase;          /* word-vector models: 1 lowercase words before lookup, -1 never,
                               0 auto (when the vocabulary has no uppercase letter) */
    int tensor_parallel;    /* split the model over groups of this many GPUs (Megatron-style, NCCL
                               all-reduce); the devices are devices / N data-parallel groups.
                               0 or 1: every GPU holds the whole model */
} emb_model_options;

#define EMB_MAX_DEVICES 64

emb_model_options emb_model_default_options(void);

/* path: a model directory, or a repo id ("org/name") looked up in the
 * Hugging Face cache ($HF_HOME/hub or ~/.cache/huggingface/hub). Static
 * models load through the same call: a word-vector file (word2vec binary or
 * text, GloVe, fastText .vec), a model2vec directory or a sentence-transformers
 * StaticEmbedding model. */
emb_status emb_model_load(const char *path, const emb_model_options *opts,
                          emb_model **out, emb_error *err);
void emb_model_free(emb_model *m);

typedef struct {
    const char *prompt;       /* literal prompt prepended to each text, or NULL */
    const char *prompt_name;  /* name from config_sentence_transformers.json, or NULL
                                 (NULL + NULL = the model's default prompt, if any) */
    int normalize;            /* -1 model default (Normalize module), 0 off, 1 on */
    int truncate_dim;         /* 0 = full; Matryoshka truncation (renormalized when normalizing) */
    int pooling;              /* 0 = model's pooling, else EMB_POOL_* bit set */
    int layer;                /* 0 = last; K>0 = output of encoder layer K (1-based); K<0 from the end */
    size_t max_doc_bytes;     /* documents longer than this are cut (or refused, see long_docs);
                                 0 = EMB_DEFAULT_MAX_DOC_BYTES, SIZE_MAX = no limit */
    int long_docs;            /* EMB_LONG_DOCS_CUT (default) or EMB_LONG_DOCS_ERROR */
} emb_encode_options;

/* 1 MiB: hundreds of times what max_length tokens take in any language, so the
 * tokens kept are the reference's unless one pre-token word spans the cut. */
#define EMB_DEFAULT_MAX_DOC_BYTES ((size_t)1 << 20)
enum { EMB_LONG_DOCS_CUT = 0, EMB_LONG_DOCS_ERROR = 1 };

emb_encode_options emb_encode_default_options(void);

/* Output dimension for these options (after pooling, Dense, truncation). */
int emb_model_dim(const emb_model *m, const emb_encode_options *opts);

typedef struct {
    uint64_t documents;
    uint64_t tokens;            /* real tokens (with specials) fed to the encoder */
    uint64_t truncated;         /* documents cut to max_length */
    uint64_t invalid_utf8;      /* documents whose invalid UTF-8 was replaced */
    uint64_t cut;               /* documents cut to max_doc_bytes before tokenizing */
    uint64_t empty;             /* documents with no tokens at all (zero vectors) */
    double flops;               /* model FLOPs computed (matmuls + attention), for MFU */
    int devices;                /* device workers that took part */
    uint64_t device_tokens[EMB_MAX_DEVICES];   /* tokens computed by each worker */
    uint64_t oov;               /* static models: words (model2vec: unknown tokens) dropped */
    /* Host pipeline time in seconds, summed over the call's windows (the
     * engine's chunks: up to 4096 documents, read and tokenized together).
     * Producer thread: */
    uint64_t windows;
    double read_seconds;        /* reading the documents */
    double tokenize_seconds;    /* the tokenizer pool */
    /* Calling thread; these four add up to its time in the pipeline loop: */
    double wait_seconds;        /* waiting for a tokenized window */
    double batch_seconds;       /* the batcher: sorting, packing batches, scattering vectors */
    double encode_seconds;      /* inside the backends' encode (device workers) */
    double write_seconds;       /* finiteness check and the writer */
} emb_encode_stats;

/* Embeds n texts (lens[i] bytes each; lens may be NULL for NUL-terminated
 * strings) into out[n * dim], dim = emb_model_dim(). Invalid UTF-8 is
 * replaced like Python's errors="replace"; over-long texts are truncated. */
emb_status emb_encode(emb_model *m, const char *const *texts, const size_t *lens, size_t n,
                      const emb_encode_options *opts, float *out, emb_encode_stats *stats,
                      emb_error *err);

/* Per-call settings of emb_encode_with(). */
typedef struct {
    size_t batch_tokens;      /* token budget of one packed batch (0 = the model's) */
    /* called on the calling thread after each batch with running totals, or NULL */
    void (*progress)(void *ud, uint64_t documents, uint64_t tokens);
    void *progress_ud;
} emb_run_options;

/* emb_encode() with per-call settings (run may be NULL). */
emb_status emb_encode_with(emb_model *m, const char *const *texts, const size_t *lens, size_t n,
                           const emb_encode_options *opts, const emb_run_options *run, float *out,
                           emb_encode_stats *stats, emb_error *err);

/* sizeof the public struct named `name` ("emb_model_options", ...), 0 for an
 * unknown name: lets bindings that mirror these structs check their layout. */
size_t emb_struct_size(const char *name);

/* Describes the loaded model in a few human-readable lines (caller frees). */
char *emb_model_describe(const emb_model *m);

/* ---- for bindings (the Python package) -------------------------------- */

/* What a binding needs to know about a loaded model. Strings live as long as
 * the model. */
typedef struct {
    int dim;                    /* output width with default options */
    int hidden;                 /* width of one token embedding */
    int max_seq_length;         /* tokens per document, specials included */
    int max_positions;          /* the most max_seq_length may be set to */
    int layers;                 /* encoder layers */
    int normalize;              /* the model ends with a Normalize module */
    int n_prompts;              /* see emb_model_prompt() */
    const char *similarity_fn;  /* "cosine", "dot", "euclidean" or "manhattan" */
    const char *default_prompt_name;   /* or NULL */
    const char *backend;        /* "cpu" or "cuda" */
    const char *dir;            /* resolved model directory */
} emb_model_info;

emb_status emb_model_get_info(const emb_model *m, emb_model_info *info, emb_error *err);

/* Prompt i (0 <= i < n_prompts) of config_sentence_transformers.json. */
emb_status emb_model_prompt(const emb_model *m, int i, const char **name, const char **text,
                            emb_error *err);

/* Sets the truncation length (1..max_positions tokens, specials included)
 * for later calls, like assigning sentence-transformers' max_seq_length. */
emb_status emb_model_set_max_length(emb_model *m, int max_length, emb_error *err);

/* Tokenizes one text exactly as emb_encode() does (invalid UTF-8 repaired,
 * prompt from opts prepended, lowercased when the model says so, truncated
 * to max_seq_length). Writes up to cap ids (and token type ids when type_ids
 * is not NULL); *n receives the token count, which may exceed cap. Pass
 * opts->prompt = "" to tokenize without any prompt. */
emb_status emb_tokenize(emb_model *m, const char *text, size_t len, const emb_encode_options *opts,
                        int32_t *ids, int32_t *type_ids, size_t cap, size_t *n, emb_error *err);

/* Token embeddings: the hidden states of encoder layer opts->layer (default:
 * the last) for every token of each text, as sentence-transformers'
 * output_value="token_embeddings" gives them (specials and prompt tokens
 * included; no pooling, Dense, truncation or normalization). counts[i]
 * receives text i's token count; out receives the texts' rows back to back,
 * [sum(counts), hidden] floats, at most out_tokens rows. With out == NULL
 * only counts are filled. */
emb_status emb_token_embeddings(emb_model *m, const char *const *texts, const size_t *lens,
                                size_t n, const emb_encode_options *opts, float *out,
                                size_t out_tokens, int32_t *counts, emb_error *err);

/* Thread safety: a model may be shared by threads. emb_encode(),
 * emb_token_embeddings() and emb_model_set_max_length() on one model are
 * serialized by a mutex inside the model (each call already uses every core
 * it was given); emb_tokenize() and the getters run concurrently with those
 * (but not with emb_model_set_max_length()). */

#ifdef __cplusplus
}
#endif
#endif
