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

#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <utf8proc.h>

#include "error.h"

#define ENG_DEFAULT_BATCH_TOKENS 16384
#define ENG_DEFAULT_WINDOW_DOCS 4096
#define ENG_WINDOW_TOKEN_CAP ((size_t)1 << 21)
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
    int limit = m->mf.cfg.max_position;
    int len = m->mf.st.max_seq_length;
    if (len <= 0) len = (int)tok_truncation_max_length(m->tok);
    if (len <= 0 || len > limit) len = limit;
    if (requested > 0 && requested < len) len = requested;
    return len;
}

static emb_status create_backend(emb_model *m, emb_error *err) {
    emb_device dev = m->opts.device;
#ifdef EMBEDC_HAVE_CUDA_BACKEND
    if (dev == EMB_DEVICE_CUDA || dev == EMB_DEVICE_AUTO) {
        emb_status st = emb_cuda_backend_create(&m->mf, m->opts.dtype, 0,
                                                m->opts.batch_tokens, &m->be, err);
        if (st == EMB_OK) return EMB_OK;
        if (dev == EMB_DEVICE_CUDA) return st;
        if (m->opts.verbose)
            fprintf(stderr, "embedc: no usable GPU (%s); running on the CPU\n", err->message);
    }
#else
    if (dev == EMB_DEVICE_CUDA)
        return emb_fail(err, EMB_ERR_UNSUPPORTED,
                        "--device cuda: this build of embedc has no CUDA backend "
                        "(configure with nvcc on PATH or -DEMBEDC_CUDA=ON)");
    if (dev == EMB_DEVICE_AUTO && m->opts.verbose)
        fprintf(stderr, "embedc: built without CUDA; running on the CPU\n");
#endif
    return emb_cpu_backend_create(&m->mf, m->opts.threads, &m->be, err);
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
    emb_status st = emb_mf_resolve(path, &dir, err);
    if (st != EMB_OK) goto fail;
    st = emb_mf_load(dir, &m->mf, err);
    free(dir);
    if (st != EMB_OK) goto fail;

    char tokpath[4096];
    snprintf(tokpath, sizeof tokpath, "%s/tokenizer.json", m->mf.dir);
    tok_error terr;
    if (tok_load_file(tokpath, &m->tok, &terr) != 0) {
        st = emb_fail(err, EMB_ERR_FORMAT, "%s", terr.message);
        goto fail;
    }
    if (tok_vocab_size(m->tok) > (size_t)m->mf.cfg.vocab_size) {
        st = emb_fail(err, EMB_ERR_FORMAT,
                      "%s: the tokenizer has %zu ids but config.json vocab_size is %d", tokpath,
                      tok_vocab_size(m->tok), m->mf.cfg.vocab_size);
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

void emb_model_free(emb_model *m) {
    if (!m) return;
    if (m->be) m->be->destroy(m->be);
    if (m->tok) tok_free(m->tok);
    emb_mf_free(&m->mf);
    if (m->mu_ready) pthread_mutex_destroy(&m->mu);
    free(m);
}

/* ---- options ---------------------------------------------------------- */

static int popcount(int x) { return __builtin_popcount((unsigned)x); }

static int encoder_layers(const emb_model *m, int layer) {
    int n = m->mf.cfg.layers;
    if (layer == 0) return n;
    if (layer < 0) return n + 1 + layer;
    return layer;
}

emb_status eng_make_job(const emb_model *m, const emb_encode_options *opts, emb_job *job,
                        emb_error *err) {
    const emb_st_config *st = &m->mf.st;
    memset(job, 0, sizeof *job);
    job->pooling_modes = opts->pooling ? opts->pooling : st->pooling_modes;
    if (job->pooling_modes & ~0x3f)
        return emb_fail(err, EMB_ERR_INVALID_ARG, "unknown pooling mode bits 0x%x", opts->pooling);
    job->layer = encoder_layers(m, opts->layer);
    if (job->layer < 1 || job->layer > m->mf.cfg.layers)
        return emb_fail(err, EMB_ERR_INVALID_ARG,
                        "--layer %d: the model has %d encoder layers (use 1..%d, or -1 for the last)",
                        opts->layer, m->mf.cfg.layers, m->mf.cfg.layers);
    int pooled = m->mf.cfg.hidden * popcount(job->pooling_modes);
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

/* ---- tokenization of one document ------------------------------------- */

emb_status eng_resolve_prompt(emb_model *m, const emb_encode_options *opts, eng_prompt *p,
                              emb_error *err) {
    const emb_st_config *st = &m->mf.st;
    p->prompt = NULL;
    p->skip = 0;
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
    if (p->prompt && !st->include_prompt) {
        /* sentence-transformers masks len(tokenize(prompt)) - 1 leading
         * tokens: the prompt with [CLS], without the trailing [SEP]. */
        tok_encoding enc;
        tok_encoding_init(&enc);
        tok_error terr;
        if (tok_encode(m->tok, p->prompt, strlen(p->prompt), 1, (size_t)m->max_length, &enc,
                       &terr) != 0) {
            tok_encoding_free(&enc);
            return emb_fail(err, EMB_ERR_INVALID_ARG, "prompt: %s", terr.message);
        }
        p->skip = enc.len > 0 ? (int)enc.len - 1 : 0;
        tok_encoding_free(&enc);
    }
    return EMB_OK;
}

/* Python str.lower() per code point, for models with do_lower_case. */
static char *lowercase_utf8(const char *s, size_t len, size_t *out_len) {
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
        lower = lowercase_utf8(s, slen, &slen);
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

/* ---- the pipeline ----------------------------------------------------- */

typedef struct {
    size_t n;                  /* documents in the window */
    uint64_t first;            /* index of its first document */
    int32_t *ids, *types;      /* slot of max_length tokens per document */
    int32_t *len;              /* tokens per document */
    char **text;               /* copies of the documents' bytes */
    size_t *text_len;
    uint64_t tokens, truncated, invalid_utf8;
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

/* Reads up to window_docs documents (copying them: the reader reuses its buffer). */
static void fill_window(eng_pipe *p, eng_window *w) {
    w->n = 0;
    while (w->n < p->window_docs) {
        const char *t;
        size_t tl;
        int r = p->read(p->read_ud, &t, &tl, &w->err);
        if (r < 0) { w->st = w->err.code ? w->err.code : EMB_ERR_IO; return; }
        if (r == 0) { w->eof = 1; return; }
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
    uint64_t tokens = 0, truncated = 0, bad = 0;
    int failed = 0;
    long n = (long)w->n;
    /* A small window is tokenized on this thread alone: a second OpenMP team
     * would only spin against the backend's team (10x slower small calls). */
#pragma omp parallel reduction(+ : tokens, truncated, bad) if (n > ENG_TOKENIZE_PARALLEL_MIN)
    {
        tok_encoding enc;
        tok_encoding_init(&enc);
        emb_error lerr = {0};
#pragma omp for schedule(dynamic, 32)
        for (long i = 0; i < n; i++) {
            int inv = 0, tr = 0;
            if (failed) continue;
            if (eng_tokenize(m, &p->prompt, w->text[i], w->text_len[i], &enc, &inv, &tr, &lerr) != EMB_OK) {
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
            memcpy(w->ids + (size_t)i * maxlen, enc.ids, len * sizeof *enc.ids);
            memcpy(w->types + (size_t)i * maxlen, enc.type_ids, len * sizeof *enc.type_ids);
            w->len[i] = (int32_t)len;
            tokens += len;
            truncated += (uint64_t)tr;
            bad += (uint64_t)inv;
        }
        tok_encoding_free(&enc);
    }
    w->tokens = tokens;
    w->truncated = truncated;
    w->invalid_utf8 = bad;
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
        fill_window(p, w);
        if (w->st == EMB_OK && w->n) tokenize_window(p, w);
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
} eng_scratch;

static int cmp_len_desc(const void *a, const void *b, void *lens) {
    const int32_t *len = lens;
    int32_t x = len[*(const int32_t *)a], y = len[*(const int32_t *)b];
    if (x != y) return x < y ? 1 : -1;
    return *(const int32_t *)a - *(const int32_t *)b;   /* stable: input order */
}

/* Model FLOPs of one sequence of len tokens through `layers` encoder layers:
 * 2 per multiply-add of the weight matmuls, plus QK^T and PV (4 L^2 H). */
static double seq_flops(const emb_bert_config *c, int layers, double len) {
    double h = c->hidden, weights = 4.0 * h * h + 2.0 * h * c->intermediate;
    return layers * (2.0 * weights * len + 4.0 * len * len * h);
}

static emb_status encode_window(eng_pipe *p, eng_window *w, const emb_job *job,
                                size_t batch_tokens, eng_scratch *s, const eng_run_options *ro,
                                uint64_t *docs_done, uint64_t *tokens_done, double *flops,
                                emb_error *err) {
    emb_model *m = p->m;
    size_t maxlen = (size_t)m->max_length;
    for (size_t i = 0; i < w->n; i++) s->order[i] = (int32_t)i;
    qsort_r(s->order, w->n, sizeof *s->order, cmp_len_desc, w->len);
    size_t i = 0;
    while (i < w->n) {
        size_t nseq = 0, total = 0;
        int max_seqlen = 0;
        s->cu[0] = 0;
        /* A document longer than the budget still gets a batch of its own. */
        while (i + nseq < w->n) {
            int32_t d = s->order[i + nseq];
            size_t l = (size_t)w->len[d];
            if (nseq > 0 && total + l > batch_tokens) break;
            memcpy(s->ids + total, w->ids + (size_t)d * maxlen, l * sizeof *s->ids);
            memcpy(s->types + total, w->types + (size_t)d * maxlen, l * sizeof *s->types);
            s->skip[nseq] = p->prompt.skip;
            *flops += seq_flops(&m->mf.cfg, job->layer, (double)l);
            total += l;
            if ((int)l > max_seqlen) max_seqlen = (int)l;
            nseq++;
            s->cu[nseq] = (int32_t)total;
        }
        emb_batch b = {s->ids, s->types, s->cu, p->prompt.skip ? s->skip : NULL,
                       (int)nseq, (int)total, max_seqlen};
        emb_status st = m->be->encode(m->be, &b, job, s->bout, err);
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
    }
    return EMB_OK;
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
    if (m->be->chunks_internally) batch_tokens = p.window_docs * maxlen;

    eng_scratch s = {0};
    size_t wd = p.window_docs, dim = (size_t)job.out_dim;
    int ok = window_alloc(&p.win[0], wd, m->max_length) == 0 &&
             window_alloc(&p.win[1], wd, m->max_length) == 0;
    size_t btok = batch_tokens;
    s.ids = malloc(btok * sizeof *s.ids);
    s.types = malloc(btok * sizeof *s.types);
    s.cu = malloc((wd + 1) * sizeof *s.cu);
    s.skip = malloc(wd * sizeof *s.skip);
    s.order = malloc(wd * sizeof *s.order);
    s.vec = malloc(wd * dim * sizeof *s.vec);
    s.bout = malloc(wd * dim * sizeof *s.bout);
    pthread_t th;
    int started = 0;
    emb_encode_stats tot = {0};
    if (!ok || !s.ids || !s.types || !s.cu || !s.skip || !s.order || !s.vec || !s.bout) {
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
        pthread_mutex_lock(&p.mu);
        while (!p.ready[k]) pthread_cond_wait(&p.cv, &p.mu);
        pthread_mutex_unlock(&p.mu);
        eng_window *w = &p.win[k];
        int last = w->eof || w->st != EMB_OK;
        if (w->st != EMB_OK) {
            st = w->st;
            if (err) *err = w->err;
        }
        if (st == EMB_OK && w->n) {
            st = encode_window(&p, w, &job, batch_tokens, &s, ropts, &docs_done, &tokens_done,
                               &tot.flops, err);
            if (st == EMB_OK) st = write(write_ud, w->first, w->n, s.vec, job.out_dim, err);
            tot.documents += w->n;
            tot.tokens += w->tokens;
            tot.truncated += w->truncated;
            tot.invalid_utf8 += w->invalid_utf8;
        }
        pthread_mutex_lock(&p.mu);
        p.ready[k] = 0;
        if (st != EMB_OK) p.stop = 1;
        pthread_cond_broadcast(&p.cv);
        pthread_mutex_unlock(&p.mu);
        if (st != EMB_OK || last) break;
    }
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

emb_status emb_encode_with(emb_model *m, const char *const *texts, const size_t *lens, size_t n,
                           const emb_encode_options *opts, const emb_run_options *run, float *out,
                           emb_encode_stats *stats, emb_error *err) {
    if (!m || (n && (!texts || !out)))
        return emb_fail(err, EMB_ERR_INVALID_ARG, "emb_encode: NULL argument");
    if (stats) memset(stats, 0, sizeof *stats);
    if (n == 0) return EMB_OK;
    array_reader r = {texts, lens, n, 0};
    eng_run_options ro = {0};
    if (run) {
        ro.batch_tokens = run->batch_tokens;
        ro.progress = run->progress;
        ro.progress_ud = run->progress_ud;
    }
    /* One call at a time per model: the backend's workspace is shared. */
    pthread_mutex_lock(&m->mu);
    emb_status st = eng_run(m, opts, &ro, array_read, &r, array_write, out, stats, err);
    pthread_mutex_unlock(&m->mu);
    return st;
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
    const emb_bert_config *c = &m->mf.cfg;
    const emb_st_config *st = &m->mf.st;
    char pools[128];
#define ADD(...) k += (size_t)snprintf(s + k, k < cap ? cap - k : 0, __VA_ARGS__)
    ADD("model:           %s\n", m->mf.dir);
    ADD("architecture:    %s encoder, %d layers, hidden %d, %d heads x %d, FFN %d\n", c->model_type,
        c->layers, c->hidden, c->heads, c->head_dim, c->intermediate);
    ADD("vocabulary:      %d (tokenizer %zu)\n", c->vocab_size, tok_vocab_size(m->tok));
    ADD("weights dtype:   %s\n", dtype_name(c->torch_dtype));
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
