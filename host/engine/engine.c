/*
 * The engine (see engine.h): model loading, prompt resolution, tokenization
 * of one document, and the streaming pipeline that keeps a backend fed.
 *
 * Pipeline: a producer thread reads a window of documents and tokenizes it
 * with a pool of OpenMP threads, while the calling thread runs the previous
 * window through the backend. Within a window, documents are sorted by token
 * count (longest first, so a device running out of memory finds out on the
 * first batch) and cut into packed batches by a token budget; vectors are
 * scattered back to input positions and the window is written in order.
 */
#include "engine.h"

#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <utf8proc.h>

#include "error.h"
#include "static_backend.h"
#ifdef EMBEDC_HAVE_CUDA_BACKEND
#include "cuda_backend.h"
#endif
#include "json_util.h"

#define ENG_DEFAULT_BATCH_TOKENS 16384
#define ENG_DEFAULT_WINDOW_DOCS 4096
#define ENG_WINDOW_TOKEN_CAP ((size_t)1 << 21)
#define ENG_WINDOW_BYTE_CAP ((size_t)64 << 20)   /* document bytes held per window */
/* Static models without a truncation of their own: words (tokens) kept per document. */
#define ENG_STATIC_MAX_LENGTH 4096
#define ENG_TOKENIZE_PARALLEL_MIN 64   /* documents */

emb_model_options emb_model_default_options(void) {
    emb_model_options o = {0};
    o.device = EMB_DEVICE_AUTO;
    o.dtype = EMB_DTYPE_AUTO;
    return o;
}

emb_encode_options emb_encode_default_options(void) {
    emb_encode_options o = {0};
    o.normalize = -1;
    return o;
}

/* ---- model loading ---------------------------------------------------- */

static int resolve_max_length(const emb_model *m, int requested) {
    int limit = m->mf.r.max_position;
    int len = m->mf.st.max_seq_length;
    if (len <= 0) len = (int)tok_truncation_max_length(m->tok);
    if (len <= 0 || len > limit) len = limit;
    if (requested > 0 && requested < len) len = requested;
    return len;
}

#ifdef EMBEDC_HAVE_CUDA_BACKEND
/* --devices: NULL/"all" every visible device, "N" the first N, or a list of
 * ids "0,2,3" (each visible, none twice). */
static emb_status parse_devices(const char *spec, int visible, int *ids, int *n, emb_error *err) {
    *n = 0;
    if (!spec || !strcmp(spec, "all")) {
        for (int i = 0; i < visible && i < EMB_MAX_DEVICES; i++) ids[(*n)++] = i;
        return EMB_OK;
    }
    char *end;
    long v = strtol(spec, &end, 10);
    if (end != spec && !*end && !strchr(spec, ',')) {
        if (v < 1 || v > visible || v > EMB_MAX_DEVICES)
            return emb_fail(err, EMB_ERR_INVALID_ARG, "--devices %s: %d device%s visible", spec, visible,
                            visible == 1 ? " is" : "s are");
        for (int i = 0; i < v; i++) ids[(*n)++] = i;
        return EMB_OK;
    }
    for (const char *q = spec;;) {
        v = strtol(q, &end, 10);
        if (end == q || v < 0 || (*end && *end != ','))
            return emb_fail(err, EMB_ERR_INVALID_ARG, "--devices %s: expected all, a count, or a list "
                            "of device ids like 0,2,3", spec);
        if (v >= visible)
            return emb_fail(err, EMB_ERR_INVALID_ARG, "--devices %s: device %ld is not visible (%d "
                            "visible)", spec, v, visible);
        for (int i = 0; i < *n; i++)
            if (ids[i] == v)
                return emb_fail(err, EMB_ERR_INVALID_ARG, "--devices %s: device %ld twice", spec, v);
        if (*n == EMB_MAX_DEVICES)
            return emb_fail(err, EMB_ERR_INVALID_ARG, "--devices %s: more than %d devices", spec,
                            EMB_MAX_DEVICES);
        ids[(*n)++] = (int)v;
        if (!*end) return EMB_OK;
        q = end + 1;
    }
}
#endif
emb_status eng_load_tokenizer(const char *path, const char *shown, tok_tokenizer **out, emb_error *err) {
    char *buf = NULL;
    size_t len = 0;
    emb_status st = ju_read_bytes(path, shown, EMB_MAX_TOKENIZER_JSON_BYTES, &buf, &len, err);
    if (st != EMB_OK) return st;
    tok_error terr;
    if (tok_load_json(buf, len, shown, out, &terr) != 0)
        st = emb_fail(err, EMB_ERR_FORMAT, "%s", terr.message);
    free(buf);
    return st;
}

static emb_status create_backend(emb_model *m, emb_error *err) {
    emb_device dev = m->opts.device;
#ifdef EMBEDC_HAVE_CUDA_BACKEND
    if (dev == EMB_DEVICE_CUDA || dev == EMB_DEVICE_AUTO) {
        int ids[EMB_MAX_DEVICES], n = 0, visible = emb_cuda_device_count();
        emb_status st = EMB_OK;
        if (visible > 0 || m->opts.devices) st = parse_devices(m->opts.devices, visible, ids, &n, err);
        if (st != EMB_OK) return st;
        if (n == 0) ids[n++] = 0;   /* let the backend say why device 0 is unusable */
        const int tp = m->opts.tensor_parallel > 1 ? m->opts.tensor_parallel : 1;
        st = emb_cuda_workers_create(&m->mf, m->opts.dtype, ids, n, tp, m->opts.batch_tokens, m->workers,
                                     &m->nworkers, err);
        if (st == EMB_OK) {
            for (int i = 0; i < m->nworkers; i++) m->worker_device[i] = ids[i * tp];
            m->worker_devices = tp;
            m->be = m->workers[0];
            /* Every worker made the same choice: one line, not one per GPU. */
            if (m->be->notice[0] && m->opts.verbose) fprintf(stderr, "embedc: %s\n", m->be->notice);
            return EMB_OK;
        }
        if (dev == EMB_DEVICE_CUDA || m->opts.devices || tp > 1) return st;
        if (m->opts.verbose)
            fprintf(stderr, "embedc: no usable GPU (%s); running on the CPU\n", err->message);
    }
#else
    if (m->opts.devices)
        return emb_fail(err, EMB_ERR_UNSUPPORTED, "--devices %s: this build of embedc has no CUDA backend",
                        m->opts.devices);
    if (m->opts.tensor_parallel > 1)
        return emb_fail(err, EMB_ERR_UNSUPPORTED, "--tensor-parallel: this build of embedc has no CUDA backend");
    if (dev == EMB_DEVICE_CUDA)
        return emb_fail(err, EMB_ERR_UNSUPPORTED,
                        "--device cuda: this build of embedc has no CUDA backend "
                        "(configure with nvcc on PATH or -DEMBEDC_CUDA=ON)");
    if (dev == EMB_DEVICE_AUTO && m->opts.verbose)
        fprintf(stderr, "embedc: built without CUDA; running on the CPU\n");
#endif
    emb_status st = emb_cpu_backend_create(&m->mf, m->opts.threads, &m->be, err);
    if (st == EMB_OK) {
        m->workers[0] = m->be;
        m->nworkers = 1;
    }
    return st;
}

/* Static tables take the engine's path with a gather-and-pool backend; mf
 * carries only what the engine reads (dir, width, pooling, normalize). */
static emb_status load_static(emb_model *m, const char *path, emb_error *err) {
    emb_status st = emb_sv_load(path, &m->sv, err);
    if (st != EMB_OK) return st;
    emb_static_vectors *sv = m->sv;
    m->mf.dir = strdup(sv->path);
    if (!m->mf.dir) return emb_fail(err, EMB_ERR_NOMEM, "out of memory");
    m->mf.r.hidden = sv->dim;
    m->mf.r.layers = 1;
    m->mf.r.vocab_size = (int)sv->n_ids;
    m->mf.st.pooling_modes = EMB_POOL_MEAN;
    m->mf.st.normalize = sv->normalize;
    m->mf.st.include_prompt = 1;
    if (emb_sv_is_word_format(sv)) {
        m->sv_lowercase = m->opts.lowercase > 0 || (m->opts.lowercase == 0 && !sv->has_upper);
        m->max_length = m->opts.max_length > 0 ? m->opts.max_length : ENG_STATIC_MAX_LENGTH;
    } else {
        char tokpath[4200];
        snprintf(tokpath, sizeof tokpath, "%s/tokenizer.json", sv->path);
        tok_error terr;
        if (tok_load_file(tokpath, &m->tok, &terr) != 0)
            return emb_fail(err, EMB_ERR_FORMAT, "%s", terr.message);
        if (tok_vocab_size(m->tok) > sv->n_ids)
            return emb_fail(err, EMB_ERR_FORMAT, "%s: the tokenizer has %zu ids but the embedding table "
                            "answers %zu", tokpath, tok_vocab_size(m->tok), sv->n_ids);
        if (sv->format == SV_MODEL2VEC) {
            m->sv_truncate = m->opts.max_length > 0 ? m->opts.max_length : sv->max_length;
            m->sv_median_token_len = eng_median_token_length(m->tok);
        }
        m->max_length = m->sv_truncate > 0 ? m->sv_truncate
                        : m->opts.max_length > 0 ? m->opts.max_length : ENG_STATIC_MAX_LENGTH;
    }
    m->mf.r.max_position = m->max_length;
    m->cls_id = -1;
    /* The gather is memory-bound and cheap next to tokenizing: the GPU only
     * when asked for (--device cuda), the CPU for auto. */
#ifdef EMBEDC_HAVE_CUDA_BACKEND
    if (m->opts.device == EMB_DEVICE_CUDA) st = emb_cuda_static_backend_create(sv, 0, &m->be, err);
    else
#else
    if (m->opts.device == EMB_DEVICE_CUDA)
        return emb_fail(err, EMB_ERR_UNSUPPORTED, "--device cuda: this build of embedc has no CUDA backend");
#endif
    st = emb_static_backend_create(sv, m->opts.threads, &m->be, err);
    if (st == EMB_OK) {
        m->workers[0] = m->be;
        m->nworkers = 1;
    }
    return st;
}

emb_status emb_model_load(const char *path, const emb_model_options *opts, emb_model **out,
                          emb_error *err) {
    if (!path || !out) return emb_fail(err, EMB_ERR_INVALID_ARG, "emb_model_load: NULL argument");
    *out = NULL;
    emb_model *m = calloc(1, sizeof *m);
    if (!m) return emb_fail(err, EMB_ERR_NOMEM, "emb_model_load: out of memory");
    m->opts = opts ? *opts : emb_model_default_options();
    if (pthread_mutex_init(&m->mu, NULL) != 0) {
        free(m);
        return emb_fail(err, EMB_ERR_INTERNAL, "emb_model_load: could not create the model's mutex");
    }
    m->mu_ready = 1;

    char *dir = NULL;
    emb_status st;
    if (emb_sv_detect(path)) {
        st = load_static(m, path, err);
        if (st != EMB_OK) goto fail;
        *out = m;
        return EMB_OK;
    }
    st = emb_mf_resolve(path, &dir, err);
    if (st != EMB_OK) goto fail;
    if (emb_sv_detect(dir)) {
        st = load_static(m, dir, err);
        free(dir);
        if (st != EMB_OK) goto fail;
        *out = m;
        return EMB_OK;
    }
    st = emb_mf_load(dir, &m->mf, err);
    free(dir);
    if (st != EMB_OK) goto fail;

    char tokpath[4096];
    snprintf(tokpath, sizeof tokpath, "%s/tokenizer.json", m->mf.dir);
    st = eng_load_tokenizer(tokpath, "tokenizer.json", &m->tok, err);
    if (st != EMB_OK) {
        emb_fail_prefix(err, "model %s", m->mf.dir);
        goto fail;
    }
    /* Added tokens past the table are refused per document (eng_check_ids);
     * a model vocabulary larger than the table is another model's tokenizer. */
    if (tok_model_vocab_size(m->tok) > (size_t)m->mf.r.vocab_size) {
        st = emb_fail(err, EMB_ERR_FORMAT,
                      "%s: the tokenizer's vocabulary has %zu ids but config.json vocab_size is %d", tokpath,
                      tok_model_vocab_size(m->tok), m->mf.r.vocab_size);
        goto fail;
    }
    m->max_length = resolve_max_length(m, m->opts.max_length);
    m->cls_id = tok_token_to_id(m->tok, "[CLS]");
    st = create_backend(m, err);
    if (st != EMB_OK) goto fail;
    *out = m;
    return EMB_OK;
fail:
    emb_model_free(m);
    return st;
}

emb_status eng_load_tokenizer_model(const char *tokenizer_json, const char *model_path, int max_length,
                                    emb_model **out, emb_error *err) {
    *out = NULL;
    char *dir = NULL, *path = NULL;
    emb_status st = EMB_OK;
    if (!tokenizer_json) {
        /* Not a directory (a word-vector file, a missing path): the caller's
         * full load handles it, or says what is wrong. */
        emb_error ignored = {0};
        if (emb_mf_resolve(model_path, &dir, &ignored) != EMB_OK) return EMB_OK;
        size_t n = strlen(dir) + 32;
        path = malloc(n);
        if (!path) { free(dir); return emb_fail(err, EMB_ERR_NOMEM, "out of memory"); }
        snprintf(path, n, "%s/config.json", dir);
        struct stat sb;
        int has_config = lstat(path, &sb) == 0;
        snprintf(path, n, "%s/modules.json", dir);   /* a sentence-transformers model (StaticEmbedding) */
        has_config = has_config || lstat(path, &sb) == 0;
        snprintf(path, n, "%s/tokenizer.json", dir);
        if (has_config || lstat(path, &sb) != 0) {   /* a model directory: the caller loads it whole */
            free(dir);
            free(path);
            return EMB_OK;
        }
        tokenizer_json = path;
    }
    emb_model *m = calloc(1, sizeof *m);
    if (!m) { st = emb_fail(err, EMB_ERR_NOMEM, "out of memory"); goto done; }
    m->mf.dir = strdup(dir ? dir : tokenizer_json);
    if (!m->mf.dir) st = emb_fail(err, EMB_ERR_NOMEM, "out of memory");
    if (st == EMB_OK) st = eng_load_tokenizer(tokenizer_json, tokenizer_json, &m->tok, err);
    if (st != EMB_OK) { emb_model_free(m); goto done; }
    /* 0 = as tokenizer.json says (its truncation section, or none). */
    m->max_length = max_length > 0 ? max_length : 0;
    m->cls_id = tok_token_to_id(m->tok, "[CLS]");
    *out = m;
done:
    free(dir);
    free(path);
    return st;
}

void emb_model_free(emb_model *m) {
    if (!m) return;
    for (int i = 0; i < m->nworkers; i++) m->workers[i]->destroy(m->workers[i]);
    if (m->tok) tok_free(m->tok);
    emb_mf_free(&m->mf);
    emb_sv_free(m->sv);
    if (m->mu_ready) pthread_mutex_destroy(&m->mu);
    free(m);
}

/* ---- options ---------------------------------------------------------- */

static int popcount(int x) { return __builtin_popcount((unsigned)x); }

static int encoder_layers(const emb_model *m, int layer) {
    int n = m->mf.r.layers;
    if (layer == 0) return n;
    if (layer < 0) return n + 1 + layer;
    return layer;
}

emb_status eng_make_job(const emb_model *m, const emb_encode_options *opts, emb_job *job,
                        emb_error *err) {
    const emb_st_config *st = &m->mf.st;
    memset(job, 0, sizeof *job);
    job->pooling_modes = opts->pooling ? opts->pooling : st->pooling_modes;
    if (job->pooling_modes & ~0x7f)
        return emb_fail(err, EMB_ERR_INVALID_ARG, "unknown pooling mode bits 0x%x", opts->pooling);
    if (m->sv && (job->pooling_modes & ~(EMB_POOL_MEAN | EMB_POOL_MAX | EMB_POOL_SUM)))
        return emb_fail(err, EMB_ERR_INVALID_ARG, "--pooling: static models pool by mean, max or sum");
    if (!m->sv && (job->pooling_modes & EMB_POOL_SUM))
        return emb_fail(err, EMB_ERR_INVALID_ARG, "--pooling sum is for static models only");
    job->layer = encoder_layers(m, opts->layer);
    if (job->layer < 1 || job->layer > m->mf.r.layers)
        return emb_fail(err, EMB_ERR_INVALID_ARG,
                        "--layer %d: the model has %d encoder layers (use 1..%d, or -1 for the last)",
                        opts->layer, m->mf.r.layers, m->mf.r.layers);
    int pooled = m->mf.r.hidden * popcount(job->pooling_modes);
    /* Dense modules were trained on the model's own pooling output: only run
     * them when the pooled width is what they expect. */
    job->apply_dense = st->n_dense > 0 && st->dense[0].in_features == pooled;
    if (st->n_dense > 0 && !job->apply_dense && opts->pooling)
        return emb_fail(err, EMB_ERR_INVALID_ARG,
                        "--pooling gives %d values per document but the model's Dense module "
                        "expects %d", pooled, st->dense[0].in_features);
    int dim = job->apply_dense ? st->dense[st->n_dense - 1].out_features : pooled;
    if (opts->truncate_dim < 0 || opts->truncate_dim > dim)
        return emb_fail(err, EMB_ERR_INVALID_ARG, "--truncate-dim %d: must be 1..%d",
                        opts->truncate_dim, dim);
    job->truncate_dim = opts->truncate_dim;
    job->out_dim = opts->truncate_dim ? opts->truncate_dim : dim;
    job->normalize = opts->normalize < 0 ? st->normalize : opts->normalize != 0;
    return EMB_OK;
}

int emb_model_dim(const emb_model *m, const emb_encode_options *opts) {
    emb_encode_options d = emb_encode_default_options();
    emb_job job;
    if (eng_make_job(m, opts ? opts : &d, &job, NULL) != EMB_OK) return -1;
    return job.out_dim;
}

size_t eng_max_doc_bytes(const emb_encode_options *opts) {
    return opts->max_doc_bytes ? opts->max_doc_bytes : EMB_DEFAULT_MAX_DOC_BYTES;
}

int eng_doc_limit(const emb_model *m, size_t max_doc, int long_error, const char *t, size_t *len,
                  uint64_t index, emb_error *err) {
    if (*len <= max_doc) return 0;
    if (long_error || tok_truncation_left(m->tok)) {
        emb_fail(err, EMB_ERR_INVALID_ARG, "document %llu: longer than the limit of %zu bytes (--max-doc-bytes)%s",
                 (unsigned long long)index, max_doc,
                 long_error ? "" : "; tokenizer.json truncates on the left, so it cannot be cut: raise the limit");
        return -1;
    }
    /* Cut at a character boundary: the kept tokens come from the start, and
     * max_doc bytes hold far more than max_length tokens. */
    size_t k = max_doc;
    for (int back = 0; back < 3 && k > 0 && ((unsigned char)t[k] & 0xC0) == 0x80; back++) k--;
    *len = k;
    return 1;
}

/* ---- tokenization of one document ------------------------------------- */

void eng_prompt_free(eng_prompt *p) {
    free(p->owned);
    p->owned = NULL;
    p->prompt = NULL;
}

emb_status eng_resolve_prompt(emb_model *m, const emb_encode_options *opts, eng_prompt *p,
                              emb_error *err) {
    const emb_st_config *st = &m->mf.st;
    p->prompt = NULL;
    p->owned = NULL;
    p->skip = 0;
    if (m->sv) {
        if (opts->prompt || opts->prompt_name)
            return emb_fail(err, EMB_ERR_INVALID_ARG, "static models (%s) take no prompt",
                            emb_sv_format_name(m->sv->format));
        return EMB_OK;
    }
    const char *name = opts->prompt_name;
    if (opts->prompt) {
        p->prompt = opts->prompt;
    } else {
        if (!name) name = st->default_prompt_name;
        if (name) {
            for (int i = 0; i < st->n_prompts; i++)
                if (strcmp(st->prompts[i].name, name) == 0) p->prompt = st->prompts[i].text;
            if (!p->prompt) {
                char known[512] = "";
                for (int i = 0; i < st->n_prompts; i++) {
                    size_t k = strlen(known);
                    snprintf(known + k, sizeof known - k, "%s\"%s\"", i ? ", " : "",
                             st->prompts[i].name);
                }
                return emb_fail(err, EMB_ERR_INVALID_ARG,
                                "prompt name \"%s\" is not in %s/config_sentence_transformers.json "
                                "(known: %s)", name, m->mf.dir, st->n_prompts ? known : "none");
            }
        }
    }
    if (p->prompt && !*p->prompt) p->prompt = NULL;
    if (p->prompt) {
        /* Invalid UTF-8 in a prompt is repaired like document text. */
        char *fixed = NULL;
        size_t fixed_len = 0;
        size_t bad = tok_utf8_repair(p->prompt, strlen(p->prompt), &fixed, &fixed_len);
        if (!fixed) return emb_fail(err, EMB_ERR_NOMEM, "out of memory repairing the prompt");
        if (bad) {
            p->owned = fixed;
            p->prompt = fixed;
        } else {
            free(fixed);
        }
    }
    if (p->prompt && !st->include_prompt) {
        /* sentence-transformers masks len(tokenize(prompt)) - 1 leading
         * tokens: the prompt with [CLS], without the trailing [SEP]. */
        tok_encoding enc;
        tok_encoding_init(&enc);
        tok_error terr;
        if (tok_encode(m->tok, p->prompt, strlen(p->prompt), 1, (size_t)m->max_length, &enc,
                       &terr) != 0) {
            tok_encoding_free(&enc);
            eng_prompt_free(p);
            return emb_fail(err, EMB_ERR_INVALID_ARG, "prompt: %s", terr.message);
        }
        p->skip = enc.len > 0 ? (int)enc.len - 1 : 0;
        tok_encoding_free(&enc);
    }
    return EMB_OK;
}

/* Python str.lower() per code point, for models with do_lower_case. */
char *eng_lowercase_utf8(const char *s, size_t len, size_t *out_len) {
    char *out = malloc(len * 2 + 4);   /* lowercase never more than doubles UTF-8 length */
    if (!out) return NULL;
    size_t o = 0, i = 0;
    while (i < len) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t n = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(len - i), &cp);
        if (n <= 0) { out[o++] = s[i++]; continue; }
        o += (size_t)utf8proc_encode_char(utf8proc_tolower(cp), (utf8proc_uint8_t *)out + o);
        i += (size_t)n;
    }
    out[o] = 0;
    *out_len = o;
    return out;
}

emb_status eng_tokenize(emb_model *m, const eng_prompt *p, const char *text, size_t len,
                        tok_encoding *enc, int *invalid_utf8, int *truncated, emb_error *err) {
    if (m->sv)
        return emb_fail(err, EMB_ERR_UNSUPPORTED, "static models (%s) are tokenized inside the pipeline only",
                        emb_sv_format_name(m->sv->format));
    char *fixed = NULL, *lower = NULL, *joined = NULL;
    size_t fixed_len = 0;
    emb_status st = EMB_OK;
    size_t bad = tok_utf8_repair(text, len, &fixed, &fixed_len);
    if (!fixed) return emb_fail(err, EMB_ERR_NOMEM, "out of memory repairing UTF-8");
    *invalid_utf8 = bad > 0;
    const char *s = fixed;
    size_t slen = fixed_len;
    if (p->prompt) {
        size_t pl = strlen(p->prompt);
        joined = malloc(pl + slen + 1);
        if (!joined) { st = emb_fail(err, EMB_ERR_NOMEM, "out of memory"); goto done; }
        memcpy(joined, p->prompt, pl);
        memcpy(joined + pl, s, slen);
        joined[pl + slen] = 0;
        s = joined;
        slen += pl;
    }
    if (m->mf.st.do_lower_case) {
        lower = eng_lowercase_utf8(s, slen, &slen);
        if (!lower) { st = emb_fail(err, EMB_ERR_NOMEM, "out of memory"); goto done; }
        s = lower;
    }
    tok_error terr;
    if (tok_encode(m->tok, s, slen, 1, (size_t)m->max_length, enc, &terr) != 0) {
        st = emb_fail(err, EMB_ERR_FORMAT, "tokenizer: %s", terr.message);
        goto done;
    }
    *truncated = enc->untruncated_len > enc->len;
done:
    free(fixed);
    free(joined);
    free(lower);
    return st;
}

emb_status eng_check_ids(const emb_model *m, const tok_encoding *enc, emb_error *err) {
    const int32_t rows = m->mf.r.vocab_size;
    for (size_t k = 0; k < enc->len; k++)
        if (enc->ids[k] < 0 || enc->ids[k] >= rows) {
            const char *tok = tok_id_to_token(m->tok, enc->ids[k]);
            return emb_fail(err, EMB_ERR_INVALID_ARG,
                            "token %zu \"%.64s\" (id %d) has no row in the embedding table (config.json "
                            "vocab_size %d)", k, tok ? tok : "?", enc->ids[k], rows);
        }
    return EMB_OK;
}

/* ---- the pipeline ----------------------------------------------------- */

double eng_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct {
    size_t n;                  /* documents in the window */
    uint64_t first;            /* index of its first document */
    int32_t *ids, *types;      /* slot of max_length tokens per document */
    int32_t *len;              /* tokens per document */
    char **text;               /* copies of the documents' bytes */
    size_t *text_len;
    uint64_t tokens, truncated, invalid_utf8, cut, empty, oov;
    double read_s, tokenize_s; /* producer time on this window */
    int eof;                   /* the reader is exhausted after this window */
    emb_status st;
    emb_error err;
} eng_window;

typedef struct {
    emb_model *m;
    eng_prompt prompt;
    size_t window_docs;
    eng_read_fn read;
    void *read_ud;
    size_t max_doc;            /* bytes per document (SIZE_MAX: no limit) */
    int long_error;            /* a longer document stops the job */
    eng_window win[2];
    int ready[2];              /* produced, not yet consumed */
    int stop;                  /* consumer failed: producer must stop */
    pthread_mutex_t mu;
    pthread_cond_t cv;
} eng_pipe;

static void window_free(eng_window *w, size_t cap) {
    for (size_t i = 0; i < cap && w->text; i++) free(w->text[i]);
    free(w->text);
    free(w->text_len);
    free(w->ids);
    free(w->types);
    free(w->len);
}

static int window_alloc(eng_window *w, size_t docs, int max_length) {
    size_t slots;
    if (!emb_mul_ok(docs, (size_t)max_length, &slots)) return -1;
    w->ids = malloc(slots * sizeof *w->ids);
    w->types = malloc(slots * sizeof *w->types);
    w->len = calloc(docs, sizeof *w->len);
    w->text = calloc(docs, sizeof *w->text);
    w->text_len = calloc(docs, sizeof *w->text_len);
    return (w->ids && w->types && w->len && w->text && w->text_len) ? 0 : -1;
}

/* Reads up to window_docs documents, ENG_WINDOW_BYTE_CAP bytes in all
 * (copying them: the reader reuses its buffer), each cut to max_doc bytes. */
static void fill_window(eng_pipe *p, eng_window *w) {
    w->n = 0;
    w->cut = 0;
    size_t bytes = 0;
    while (w->n < p->window_docs && bytes < ENG_WINDOW_BYTE_CAP) {
        const char *t;
        size_t tl;
        int r = p->read(p->read_ud, &t, &tl, &w->err);
        if (r < 0) { w->st = w->err.code ? w->err.code : EMB_ERR_IO; return; }
        if (r == 0) { w->eof = 1; return; }
        int c = eng_doc_limit(p->m, p->max_doc, p->long_error, t, &tl, w->first + w->n, &w->err);
        if (c < 0) { w->st = w->err.code; return; }
        w->cut += (uint64_t)c;
        bytes += tl;
        char *copy = realloc(w->text[w->n], tl + 1);
        if (!copy) { w->st = emb_fail(&w->err, EMB_ERR_NOMEM, "out of memory reading document %llu",
                                      (unsigned long long)(w->first + w->n)); return; }
        memcpy(copy, t, tl);
        copy[tl] = 0;
        w->text[w->n] = copy;
        w->text_len[w->n] = tl;
        w->n++;
    }
}

static void tokenize_window(eng_pipe *p, eng_window *w) {
    emb_model *m = p->m;
    size_t maxlen = (size_t)m->max_length;
    uint64_t tokens = 0, truncated = 0, bad = 0, empty = 0, oov = 0;
    int failed = 0;
    long n = (long)w->n;
    /* A small window is tokenized on this thread alone: a second OpenMP team
     * would only spin against the backend's team (10x slower small calls). */
#pragma omp parallel reduction(+ : tokens, truncated, bad, empty, oov) if (n > ENG_TOKENIZE_PARALLEL_MIN)
    {
        tok_encoding enc;
        tok_encoding_init(&enc);
        emb_error lerr = {0};
#pragma omp for schedule(dynamic, 32)
        for (long i = 0; i < n; i++) {
            int inv = 0, tr = 0;
            if (failed) continue;
            emb_status tst;
            if (m->sv) {
                size_t got = 0;
                uint64_t doc_oov = 0;
                tst = eng_static_tokenize(m, w->text[i], w->text_len[i], &enc, w->ids + (size_t)i * maxlen,
                                          w->types + (size_t)i * maxlen, maxlen, &got, &doc_oov, &inv, &tr,
                                          &lerr);
                if (tst == EMB_OK) {
                    w->len[i] = (int32_t)got;
                    tokens += got;
                    truncated += (uint64_t)tr;
                    bad += (uint64_t)inv;
                    oov += doc_oov;
                    continue;
                }
            } else {
                tst = eng_tokenize(m, &p->prompt, w->text[i], w->text_len[i], &enc, &inv, &tr, &lerr);
                if (tst == EMB_OK) tst = eng_check_ids(m, &enc, &lerr);
            }
            if (tst != EMB_OK) {
#pragma omp critical(eng_tok_fail)
                {
                    if (!failed) {
                        failed = 1;
                        w->st = lerr.code;
                        snprintf(w->err.message, sizeof w->err.message, "document %llu: %.980s",
                                 (unsigned long long)(w->first + (uint64_t)i), lerr.message);
                        w->err.code = lerr.code;
                    }
                }
                continue;
            }
            size_t len = enc.len < maxlen ? enc.len : maxlen;
            if (len) {   /* enc.ids is still NULL when nothing was ever encoded */
                memcpy(w->ids + (size_t)i * maxlen, enc.ids, len * sizeof *enc.ids);
                memcpy(w->types + (size_t)i * maxlen, enc.type_ids, len * sizeof *enc.type_ids);
            }
            w->len[i] = (int32_t)len;
            tokens += len;
            empty += len == 0;
            truncated += (uint64_t)tr;
            bad += (uint64_t)inv;
        }
        tok_encoding_free(&enc);
    }
    w->tokens = tokens;
    w->truncated = truncated;
    w->invalid_utf8 = bad;
    w->empty = empty;
    w->oov = oov;
}

static void *producer(void *arg) {
    eng_pipe *p = arg;
    uint64_t next = 0;
    for (int k = 0;; k ^= 1) {
        pthread_mutex_lock(&p->mu);
        while (p->ready[k] && !p->stop) pthread_cond_wait(&p->cv, &p->mu);
        int stop = p->stop;
        pthread_mutex_unlock(&p->mu);
        if (stop) return NULL;
        eng_window *w = &p->win[k];
        w->first = next;
        w->st = EMB_OK;
        w->eof = 0;
        const double t0 = eng_now_s();
        fill_window(p, w);
        const double t1 = eng_now_s();
        if (w->st == EMB_OK && w->n) tokenize_window(p, w);
        w->read_s = t1 - t0;
        w->tokenize_s = eng_now_s() - t1;
        next += w->n;
        pthread_mutex_lock(&p->mu);
        p->ready[k] = 1;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
        if (w->eof || w->st != EMB_OK) return NULL;
    }
}

typedef struct {
    int32_t *ids, *types, *cu, *skip;
    int32_t *order;
    float *vec;                /* [window_docs, dim] in input order */
    float *bout;               /* [batch docs, dim] backend output */
    int32_t *worker_of;        /* [window_docs] device worker of each sorted document */
} eng_scratch;

static int cmp_len_desc(const void *a, const void *b, void *lens) {
    const int32_t *len = lens;
    int32_t x = len[*(const int32_t *)a], y = len[*(const int32_t *)b];
    if (x != y) return x < y ? 1 : -1;
    return *(const int32_t *)a - *(const int32_t *)b;   /* stable: input order */
}

/* *encode_s accumulates the time spent inside the backend's encode. */
static emb_status encode_window(eng_pipe *p, eng_window *w, const emb_job *job,
                                size_t batch_tokens, eng_scratch *s, const eng_run_options *ro,
                                uint64_t *docs_done, uint64_t *tokens_done, double *flops,
                                double *encode_s, emb_error *err) {
    emb_model *m = p->m;
    size_t maxlen = (size_t)m->max_length;
    for (size_t i = 0; i < w->n; i++) s->order[i] = (int32_t)i;
    qsort_r(s->order, w->n, sizeof *s->order, cmp_len_desc, w->len);
    size_t i = 0;
    while (i < w->n) {
        if (w->len[s->order[i]] == 0) {
            /* No tokens at all (an empty document and a tokenizer that adds
             * no specials): a zero vector, as sentence-transformers' mean
             * pooling gives (0 / max(0, 1e-9)). Sorted last, so all the rest. */
            for (; i < w->n; i++) {
                memset(s->vec + (size_t)s->order[i] * (size_t)job->out_dim, 0, (size_t)job->out_dim * sizeof(float));
                (*docs_done)++;
            }
            if (ro->progress) ro->progress(ro->progress_ud, *docs_done, *tokens_done);
            break;
        }
        size_t nseq = 0, total = 0;
        int max_seqlen = 0;
        s->cu[0] = 0;
        /* A document longer than the budget still gets a batch of its own. */
        while (i + nseq < w->n) {
            int32_t d = s->order[i + nseq];
            size_t l = (size_t)w->len[d];
            if (l == 0 || (nseq > 0 && total + l > batch_tokens)) break;
            memcpy(s->ids + total, w->ids + (size_t)d * maxlen, l * sizeof *s->ids);
            memcpy(s->types + total, w->types + (size_t)d * maxlen, l * sizeof *s->types);
            s->skip[nseq] = p->prompt.skip;
            if (!m->sv) *flops += emb_recipe_seq_flops(&m->mf.r, job->layer, (double)l);
            total += l;
            if ((int)l > max_seqlen) max_seqlen = (int)l;
            nseq++;
            s->cu[nseq] = (int32_t)total;
        }
        emb_batch b = {s->ids, s->types, s->cu, p->prompt.skip ? s->skip : NULL,
                       (int)nseq, (int)total, max_seqlen};
        const double t0 = eng_now_s();
        emb_status st = m->be->encode(m->be, &b, job, s->bout, err);
        *encode_s += eng_now_s() - t0;
        if (st != EMB_OK)
            return emb_fail_prefix(err, "documents %llu..%llu",
                                   (unsigned long long)(w->first), (unsigned long long)(w->first + w->n - 1));
        for (size_t k = 0; k < nseq; k++)
            memcpy(s->vec + (size_t)s->order[i + k] * (size_t)job->out_dim,
                   s->bout + k * (size_t)job->out_dim, (size_t)job->out_dim * sizeof(float));
        i += nseq;
        *docs_done += nseq;
        *tokens_done += total;
        if (ro->progress) ro->progress(ro->progress_ud, *docs_done, *tokens_done);
        if (ro->stop && *ro->stop)
            return emb_fail(err, EMB_ERR_INTERRUPTED, "interrupted after document %llu of this run",
                            (unsigned long long)*docs_done);
    }
    return EMB_OK;
}

/* One device worker's share of a window, run on its own thread. */
typedef struct {
    emb_backend *be;
    emb_batch b;
    const emb_job *job;
    float *out;
    emb_status st;
    emb_error err;
} eng_worker_task;

static void *worker_main(void *arg) {
    eng_worker_task *t = arg;
    t->st = t->b.nseq ? t->be->encode(t->be, &t->b, t->job, t->out, &t->err) : EMB_OK;
    return NULL;
}

/* Data-parallel over device workers: the window's documents, longest first,
 * are dealt each to the worker with the fewest tokens so far, so every device
 * gets about the same tokens and the same mix of lengths and all finish
 * together; each worker gets its share as one packed batch (the backends
 * chunk and pipeline internally) and the workers run at once, one thread
 * each. A document's vector does not depend on its batch-mates, so the
 * output is the one-device output. */
static emb_status encode_window_multi(eng_pipe *p, eng_window *w, const emb_job *job,
                                      eng_scratch *s, int nworkers, const eng_run_options *ro,
                                      uint64_t *docs_done, uint64_t *tokens_done, double *flops,
                                      uint64_t *worker_tokens, double *encode_s, emb_error *err) {
    emb_model *m = p->m;
    size_t maxlen = (size_t)m->max_length, dim = (size_t)job->out_dim;
    uint64_t load[EMB_MAX_DEVICES] = {0};
    size_t ndocs[EMB_MAX_DEVICES] = {0};
    for (size_t i = 0; i < w->n; i++) s->order[i] = (int32_t)i;
    qsort_r(s->order, w->n, sizeof *s->order, cmp_len_desc, w->len);
    for (size_t i = 0; i < w->n; i++) {
        int best = 0;
        for (int k = 1; k < nworkers; k++)
            if (load[k] < load[best]) best = k;
        s->worker_of[i] = best;
        load[best] += (uint64_t)w->len[s->order[i]];
        ndocs[best]++;
    }
    eng_worker_task task[EMB_MAX_DEVICES];
    size_t doc_off = 0, tok_off = 0;
    for (int k = 0; k < nworkers; k++) {
        eng_worker_task *t = &task[k];
        memset(t, 0, sizeof *t);
        t->be = m->workers[k];
        t->job = job;
        t->out = s->bout + doc_off * dim;
        int32_t *cu = s->cu + doc_off + (size_t)k, *skip = s->skip + doc_off;
        size_t n = 0, total = 0;
        int max_seqlen = 0;
        cu[0] = 0;
        for (size_t i = 0; i < w->n; i++) {
            if (s->worker_of[i] != k) continue;
            int32_t d = s->order[i];
            size_t l = (size_t)w->len[d];
            memcpy(s->ids + tok_off + total, w->ids + (size_t)d * maxlen, l * sizeof *s->ids);
            memcpy(s->types + tok_off + total, w->types + (size_t)d * maxlen, l * sizeof *s->types);
            skip[n] = p->prompt.skip;
            if (!m->sv) *flops += emb_recipe_seq_flops(&m->mf.r, job->layer, (double)l);
            total += l;
            if ((int)l > max_seqlen) max_seqlen = (int)l;
            cu[++n] = (int32_t)total;
        }
        emb_batch b = {s->ids + tok_off, s->types + tok_off, cu, p->prompt.skip ? skip : NULL,
                       (int)n, (int)total, max_seqlen};
        t->b = b;
        doc_off += n;
        tok_off += total;
        worker_tokens[k] += total;
    }
    pthread_t th[EMB_MAX_DEVICES];
    int started[EMB_MAX_DEVICES] = {0};
    const double t0 = eng_now_s();
    for (int k = 1; k < nworkers; k++)
        started[k] = pthread_create(&th[k], NULL, worker_main, &task[k]) == 0;
    worker_main(&task[0]);
    for (int k = 1; k < nworkers; k++) {
        if (started[k]) pthread_join(th[k], NULL);
        else worker_main(&task[k]);     /* no thread to be had: run it here */
    }
    *encode_s += eng_now_s() - t0;
    for (int k = 0; k < nworkers; k++)
        if (task[k].st != EMB_OK) {
            if (err) *err = task[k].err;
            if (m->worker_devices > 1)   /* the group's message names the device */
                return emb_fail_prefix(err, "tensor-parallel group %d (%s), documents %llu..%llu", k,
                                       m->workers[k]->name, (unsigned long long)w->first,
                                       (unsigned long long)(w->first + w->n - 1));
            return emb_fail_prefix(err, "device %d (%s), documents %llu..%llu", m->worker_device[k],
                                   m->workers[k]->name, (unsigned long long)w->first,
                                   (unsigned long long)(w->first + w->n - 1));
        }
    /* Scatter back to input positions: worker k's outputs are in its order. */
    size_t seen[EMB_MAX_DEVICES] = {0}, base[EMB_MAX_DEVICES];
    for (int k = 0, off = 0; k < nworkers; off += (int)ndocs[k], k++) base[k] = (size_t)off;
    for (size_t i = 0; i < w->n; i++) {
        int k = s->worker_of[i];
        memcpy(s->vec + (size_t)s->order[i] * dim, s->bout + (base[k] + seen[k]++) * dim,
               dim * sizeof(float));
    }
    *docs_done += w->n;
    *tokens_done += tok_off;
    if (ro->progress) ro->progress(ro->progress_ud, *docs_done, *tokens_done);
    if (ro->stop && *ro->stop)
        return emb_fail(err, EMB_ERR_INTERRUPTED, "interrupted after document %llu of this run",
                        (unsigned long long)*docs_done);
    return EMB_OK;
}

/* A NaN or Inf in a vector is an error naming its document, and the window
 * holding it is never handed to the writer: a non-finite vector would
 * silently poison an index or every similarity computed with it, far from
 * its cause (usually activations that overflowed fp16). The whole run stops,
 * as it does for a document refused by --long-docs error. */
static emb_status check_finite(const emb_model *m, const eng_run_options *ro, const float *vec, uint64_t first,
                               size_t n, int dim, emb_error *err) {
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < dim; k++) {
            const float v = vec[i * (size_t)dim + (size_t)k];
            if (isfinite(v)) continue;
            char id[64], label[80] = "";
            if (ro->doc_label && ro->doc_label(ro->doc_label_ud, first + i, id, sizeof id) == 0)
                snprintf(label, sizeof label, " (id %s)", id);
            const emb_backend *be = m->be;
            return emb_fail(err, EMB_ERR_UNSUPPORTED,
                            "document %llu%s: its vector holds %s (element %d) from the %s backend%s; "
                            "nothing from documents %llu..%llu was written",
                            (unsigned long long)(first + i), label, isnan(v) ? "NaN" : "Inf", k, be->name,
                            be->compute_dtype == EMB_DTYPE_F16
                                ? " in f16: the model's activations may overflow fp16, try --dtype bf16"
                                : "",
                            (unsigned long long)first, (unsigned long long)(first + n - 1));
        }
    return EMB_OK;
}

int eng_range_read(void *ud, const char **text, size_t *len, emb_error *err) {
    eng_range_reader *r = ud;
    while (r->pos < r->skip) {
        int got = r->read(r->ud, text, len, err);
        if (got <= 0) return got;
        r->pos++;
    }
    if (r->limit != UINT64_MAX && r->pos - r->skip >= r->limit) return 0;
    int got = r->read(r->ud, text, len, err);
    if (got == 1) r->pos++;
    return got;
}

emb_status eng_run(emb_model *m, const emb_encode_options *opts, const eng_run_options *ropts,
                   eng_read_fn read, void *read_ud, eng_write_fn write, void *write_ud,
                   emb_encode_stats *stats, emb_error *err) {
    emb_encode_options dopts = emb_encode_default_options();
    eng_run_options dro = {0};
    if (!opts) opts = &dopts;
    if (!ropts) ropts = &dro;
    emb_job job;
    emb_status st = eng_make_job(m, opts, &job, err);
    if (st != EMB_OK) return st;

    eng_pipe p;
    memset(&p, 0, sizeof p);
    p.m = m;
    p.read = read;
    p.read_ud = read_ud;
    p.max_doc = eng_max_doc_bytes(opts);
    p.long_error = opts->long_docs == EMB_LONG_DOCS_ERROR;
    st = eng_resolve_prompt(m, opts, &p.prompt, err);
    if (st != EMB_OK) return st;
    size_t maxlen = (size_t)m->max_length;
    size_t batch_tokens = ropts->batch_tokens ? ropts->batch_tokens
                          : m->opts.batch_tokens ? m->opts.batch_tokens : ENG_DEFAULT_BATCH_TOKENS;
    if (batch_tokens < maxlen) batch_tokens = maxlen;
    p.window_docs = ropts->window_docs ? ropts->window_docs : ENG_DEFAULT_WINDOW_DOCS;
    if (p.window_docs * maxlen > ENG_WINDOW_TOKEN_CAP) p.window_docs = ENG_WINDOW_TOKEN_CAP / maxlen;
    if (p.window_docs < 1) p.window_docs = 1;
    /* A backend that chunks and pipelines by itself gets the whole sorted
     * window at once, so its uploads overlap its compute. */
    int nworkers = m->nworkers;
    if (ropts->max_workers > 0 && ropts->max_workers < nworkers) nworkers = ropts->max_workers;
    if (m->be->chunks_internally || nworkers > 1) batch_tokens = p.window_docs * maxlen;

    eng_scratch s = {0};
    size_t wd = p.window_docs, dim = (size_t)job.out_dim;
    int ok = window_alloc(&p.win[0], wd, m->max_length) == 0 &&
             window_alloc(&p.win[1], wd, m->max_length) == 0;
    size_t btok = batch_tokens;
    s.ids = malloc(btok * sizeof *s.ids);
    s.types = malloc(btok * sizeof *s.types);
    s.cu = malloc((wd + 1 + (size_t)nworkers) * sizeof *s.cu);
    s.worker_of = malloc(wd * sizeof *s.worker_of);
    s.skip = malloc(wd * sizeof *s.skip);
    s.order = malloc(wd * sizeof *s.order);
    s.vec = malloc(wd * dim * sizeof *s.vec);
    s.bout = malloc(wd * dim * sizeof *s.bout);
    pthread_t th;
    int started = 0;
    emb_encode_stats tot = {0};
    if (!ok || !s.ids || !s.types || !s.cu || !s.skip || !s.order || !s.vec || !s.bout || !s.worker_of) {
        st = emb_fail(err, EMB_ERR_NOMEM, "out of memory allocating the pipeline (%zu documents per window)", wd);
        goto done;
    }
    pthread_mutex_init(&p.mu, NULL);
    pthread_cond_init(&p.cv, NULL);
    if (pthread_create(&th, NULL, producer, &p) != 0) {
        st = emb_fail(err, EMB_ERR_INTERNAL, "could not start the tokenizer thread");
        goto done;
    }
    started = 1;

    uint64_t docs_done = 0, tokens_done = 0;
    for (int k = 0;; k ^= 1) {
        double t0 = eng_now_s();
        pthread_mutex_lock(&p.mu);
        while (!p.ready[k]) pthread_cond_wait(&p.cv, &p.mu);
        pthread_mutex_unlock(&p.mu);
        tot.wait_seconds += eng_now_s() - t0;
        eng_window *w = &p.win[k];
        int last = w->eof || w->st != EMB_OK;
        if (w->st != EMB_OK) {
            st = w->st;
            if (err) *err = w->err;
        }
        if (st == EMB_OK && w->n) {
            /* Batcher time is the window's consumer time outside encode,
             * check and write: sorting, packing, scattering back. */
            double enc = 0.0;
            t0 = eng_now_s();
            if (nworkers > 1) {
                st = encode_window_multi(&p, w, &job, &s, nworkers, ropts, &docs_done, &tokens_done,
                                         &tot.flops, tot.device_tokens, &enc, err);
            } else {
                uint64_t before = tokens_done;
                st = encode_window(&p, w, &job, batch_tokens, &s, ropts, &docs_done, &tokens_done,
                                   &tot.flops, &enc, err);
                tot.device_tokens[0] += tokens_done - before;
            }
            const double t1 = eng_now_s();
            if (st == EMB_OK) st = check_finite(m, ropts, s.vec, w->first, w->n, job.out_dim, err);
            if (st == EMB_OK) st = write(write_ud, w->first, w->n, s.vec, job.out_dim, err);
            tot.windows++;
            tot.encode_seconds += enc;
            tot.batch_seconds += t1 - t0 - enc;
            tot.write_seconds += eng_now_s() - t1;
            tot.read_seconds += w->read_s;
            tot.tokenize_seconds += w->tokenize_s;
            tot.documents += w->n;
            tot.tokens += w->tokens;
            tot.truncated += w->truncated;
            tot.invalid_utf8 += w->invalid_utf8;
            tot.cut += w->cut;
            tot.empty += w->empty;
            tot.oov += w->oov;
        }
        pthread_mutex_lock(&p.mu);
        p.ready[k] = 0;
        if (st != EMB_OK) p.stop = 1;
        pthread_cond_broadcast(&p.cv);
        pthread_mutex_unlock(&p.mu);
        if (st != EMB_OK || last) break;
    }
    /* Per device: every device of a tensor-parallel group computes its
     * group's tokens. */
    const int per = m->worker_devices > 1 ? m->worker_devices : 1;
    for (int k = nworkers - 1; k >= 0 && per > 1; k--)
        for (int r = per - 1; r >= 0; r--) tot.device_tokens[k * per + r] = tot.device_tokens[k];
    tot.devices = nworkers * per;
    if (stats) *stats = tot;
done:
    if (started) {
        pthread_join(th, NULL);
        pthread_mutex_destroy(&p.mu);
        pthread_cond_destroy(&p.cv);
    }
    window_free(&p.win[0], wd);
    window_free(&p.win[1], wd);
    free(s.ids); free(s.types); free(s.cu); free(s.skip); free(s.order); free(s.vec); free(s.bout);
    free(s.worker_of);
    eng_prompt_free(&p.prompt);
    return st;
}

/* ---- emb_encode over an in-memory array -------------------------------- */

typedef struct {
    const char *const *texts;
    const size_t *lens;
    size_t n, next;
} array_reader;

static int array_read(void *ud, const char **text, size_t *len, emb_error *err) {
    array_reader *r = ud;
    if (r->next >= r->n) return 0;
    const char *t = r->texts[r->next];
    if (!t) {
        emb_fail(err, EMB_ERR_INVALID_ARG, "emb_encode: texts[%zu] is NULL", r->next);
        return -1;
    }
    *text = t;
    *len = r->lens ? r->lens[r->next] : strlen(t);
    r->next++;
    return 1;
}

static emb_status array_write(void *ud, uint64_t first, size_t n, const float *vecs, int dim,
                              emb_error *err) {
    memcpy((float *)ud + first * (size_t)dim, vecs, n * (size_t)dim * sizeof(float));
    return EMB_OK;
}

emb_status eng_encode_array(emb_model *m, const char *const *texts, const size_t *lens, size_t n,
                            const emb_encode_options *opts, const eng_run_options *ropts, float *out,
                            emb_encode_stats *stats, emb_error *err) {
    if (!m || (n && (!texts || !out)))
        return emb_fail(err, EMB_ERR_INVALID_ARG, "emb_encode: NULL argument");
    if (stats) memset(stats, 0, sizeof *stats);
    if (n == 0) return EMB_OK;
    array_reader r = {texts, lens, n, 0};
    /* One call at a time per model: the backend's workspace is shared. */
    pthread_mutex_lock(&m->mu);
    emb_status st = eng_run(m, opts, ropts, array_read, &r, array_write, out, stats, err);
    pthread_mutex_unlock(&m->mu);
    return st;
}

emb_status emb_encode_with(emb_model *m, const char *const *texts, const size_t *lens, size_t n,
                           const emb_encode_options *opts, const emb_run_options *run, float *out,
                           emb_encode_stats *stats, emb_error *err) {
    eng_run_options ro = {0};
    if (run) {
        ro.batch_tokens = run->batch_tokens;
        ro.progress = run->progress;
        ro.progress_ud = run->progress_ud;
    }
    return eng_encode_array(m, texts, lens, n, opts, &ro, out, stats, err);
}

emb_status emb_encode(emb_model *m, const char *const *texts, const size_t *lens, size_t n,
                      const emb_encode_options *opts, float *out, emb_encode_stats *stats,
                      emb_error *err) {
    return emb_encode_with(m, texts, lens, n, opts, NULL, out, stats, err);
}

/* ---- describe ---------------------------------------------------------- */

static const char *pool_names(int modes, char *buf, size_t cap) {
    static const char *names[] = {"cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken"};
    buf[0] = 0;
    for (int i = 0; i < 6; i++)
        if (modes & (1 << i)) {
            size_t k = strlen(buf);
            snprintf(buf + k, cap - k, "%s%s", k ? "+" : "", names[i]);
        }
    return buf;
}

static const char *dtype_name(emb_dtype d) {
    switch (d) {
    case EMB_DTYPE_F32: return "float32";
    case EMB_DTYPE_F16: return "float16";
    case EMB_DTYPE_BF16: return "bfloat16";
    default: return "auto";
    }
}

char *emb_model_describe(const emb_model *m) {
    size_t cap = 8192, k = 0;
    char *s = malloc(cap);
    if (!s) return NULL;
    const emb_recipe *c = &m->mf.r;
    const emb_st_config *st = &m->mf.st;
    char pools[128];
#define ADD(...) k += (size_t)snprintf(s + k, k < cap ? cap - k : 0, __VA_ARGS__)
    ADD("model:           %s\n", m->mf.dir);
    if (m->sv) {
        const emb_static_vectors *sv = m->sv;
        ADD("format:          %s (static)\n", emb_sv_format_name(sv->format));
        ADD("table:           %zu rows x %d%s%s\n", sv->rows, sv->dim, sv->mapping ? ", token mapping" : "",
            sv->weights ? ", token weights" : "");
        if (emb_sv_is_word_format(sv))
            ADD("vocabulary:      %zu words%s%s\n", sv->n_words, m->sv_lowercase ? " (lookups lowercased)" : "",
                sv->format == SV_FASTTEXT_BIN && sv->maxn > 0 ? ", unknown words from character n-grams" : "");
        else
            ADD("vocabulary:      %zu token ids (tokenizer %zu)\n", sv->n_ids, tok_vocab_size(m->tok));
        ADD("max length:      %d %s\n", m->max_length, emb_sv_is_word_format(sv) ? "words" : "tokens");
        ADD("pooling:         mean\n");
        ADD("normalize:       %s\n", st->normalize ? "yes" : "no");
        ADD("output dim:      %d\n", sv->dim);
        ADD("backend:         %s\n", m->be ? m->be->name : "none");
        if (k >= cap) s[cap - 1] = 0;
        return s;
    }
    ADD("architecture:    %s encoder, %d layers, hidden %d, %d heads x %d, FFN %d\n", c->model_type,
        c->layers, c->hidden, c->heads, c->head_dim, c->intermediate);
    if (k < cap) k += emb_recipe_describe(c, s + k, cap - k);
    ADD("vocabulary:      %d (tokenizer %zu)\n", c->vocab_size, tok_vocab_size(m->tok));
    ADD("weights dtype:   %s\n", dtype_name(c->dtype));
    ADD("max length:      %d tokens (positions %d)\n", m->max_length, c->max_position);
    ADD("pooling:         %s%s\n", pool_names(st->pooling_modes, pools, sizeof pools),
        st->include_prompt ? "" : " (prompt excluded)");
    for (int i = 0; i < st->n_dense; i++)
        ADD("dense %d:         %d -> %d%s\n", i, st->dense[i].in_features, st->dense[i].out_features,
            st->dense[i].has_bias ? " + bias" : "");
    ADD("normalize:       %s\n", st->normalize ? "yes" : "no");
    ADD("output dim:      %d\n", emb_model_dim(m, NULL));
    ADD("similarity:      %s\n", st->similarity_fn ? st->similarity_fn : "cosine");
    ADD("prompts:         %d%s%s\n", st->n_prompts, st->default_prompt_name ? ", default " : "",
        st->default_prompt_name ? st->default_prompt_name : "");
    for (int i = 0; i < st->n_prompts && k < cap; i++)
        ADD("  %-14s \"%s\"\n", st->prompts[i].name, st->prompts[i].text);
    ADD("backend:         %s\n", m->be ? m->be->name : "none");
#undef ADD
    if (k >= cap) s[cap - 1] = 0;
    return s;
}
