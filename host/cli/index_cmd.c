/*
 * FAISS commands: encode --index (the tee of vectors into an index builder),
 * index (an index from a .npy), search (embed queries, print neighbours) and
 * bench-index (recall against exact search, and queries/s).
 */
#include <inttypes.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "cli_extra.h"
#include "error.h"
#include "index.h"
#include "npy_read.h"


int cli_extra_opt(int c, const char *arg, cli_extra *x) {
    long v;
    switch (c) {
    case OX_INDEX: x->index_out = x->index_in = arg; return 1;
    case OX_SPEC: x->index_spec = arg; return 1;
    case OX_METRIC: x->index_metric = arg; return 1;
    case OX_TRAIN: x->index_train = arg; return 1;
    case OX_TRAIN_SIZE:
        if (cli_parse_int("--index-train-size", arg, 1, 1L << 40, &v)) return -1;
        x->index_train_size = (uint64_t)v;
        return 1;
    case OX_ID_FIELD: x->id_field = arg; return 1;
    case 'k': if (cli_parse_int("-k", arg, 1, 100000, &v)) return -1; x->k = (int)v; return 1;
    case OX_NPROBE: if (cli_parse_int("--nprobe", arg, 1, 1L << 24, &v)) return -1; x->nprobe = (int)v; return 1;
    case OX_EF: if (cli_parse_int("--ef", arg, 1, 1L << 24, &v)) return -1; x->ef = (int)v; return 1;
    case OX_TEXTS: x->texts = arg; return 1;
    case OX_QUERIES: x->queries = arg; return 1;
    case OX_HOLDOUT: if (cli_parse_int("--holdout", arg, 1, 1L << 30, &v)) return -1; x->holdout = (int)v; return 1;
    case OX_LABELS: x->labels = arg; return 1;
    case OX_COLOR_BY: x->color_by = arg; return 1;
    case OX_HEATMAP: x->heatmap = arg; return 1;
    case OX_WIDTH: if (cli_parse_int("--width", arg, 100, 20000, &v)) return -1; x->width = (int)v; return 1;
    case OX_HEIGHT: if (cli_parse_int("--height", arg, 100, 20000, &v)) return -1; x->height = (int)v; return 1;
    case OX_POINTS_OUT: x->points_out = arg; return 1;
    default: return 0;
    }
}

static emb_status parse_metric(const char *s, fx_metric *m, emb_error *err) {
    if (!strcmp(s, "ip") || !strcmp(s, "inner_product") || !strcmp(s, "dot")) *m = FX_METRIC_IP;
    else if (!strcmp(s, "l2") || !strcmp(s, "L2")) *m = FX_METRIC_L2;
    else return emb_fail(err, EMB_ERR_INVALID_ARG, "--index-metric %s: expected ip or l2", s);
    return EMB_OK;
}

/* The model's similarity function decides: inner product for cosine on
 * normalized vectors and for dot, L2 otherwise. */
static emb_status model_metric(const cli_extra *x, emb_model *m, const emb_encode_options *eo, fx_metric *out,
                               emb_error *err) {
    if (x->index_metric) return parse_metric(x->index_metric, out, err);
    emb_job job;
    emb_status st = eng_make_job(m, eo, &job, err);
    if (st != EMB_OK) return st;
    const char *fn = m->mf.st.similarity_fn ? m->mf.st.similarity_fn : "cosine";
    *out = (!strcmp(fn, "dot") || (!strcmp(fn, "cosine") && job.normalize)) ? FX_METRIC_IP : FX_METRIC_L2;
    return EMB_OK;
}

/* Without a model: inner product when every vector has unit norm. */
static fx_metric vectors_metric(const cli_extra *x, const float *v, uint64_t n, int d, emb_error *err, int *bad) {
    fx_metric m = FX_METRIC_L2;
    *bad = 0;
    if (x->index_metric) {
        if (parse_metric(x->index_metric, &m, err) != EMB_OK) *bad = 1;
        return m;
    }
    for (uint64_t i = 0; i < n; i++) {
        double s = 0;
        for (int k = 0; k < d; k++) s += (double)v[i * d + k] * v[i * d + k];
        if (fabs(sqrt(s) - 1) > 1e-3) return FX_METRIC_L2;
    }
    return n ? FX_METRIC_IP : FX_METRIC_L2;
}

/* The error of a build without FAISS. */
static emb_status no_faiss(emb_error *err) {
    fx_index *t = NULL;
    emb_status st = fx_create(1, "Flat", FX_METRIC_L2, 0, &t, err);
    fx_free(t);
    return st;
}

static const char *metric_name(fx_metric m) { return m == FX_METRIC_IP ? "inner product" : "L2"; }

static emb_status load_train(const cli_extra *x, int dim, float **train, uint64_t *rows, emb_error *err) {
    *train = NULL;
    *rows = 0;
    if (!x->index_train) return EMB_OK;
    int cols;
    emb_status st = io_npy_read(x->index_train, train, rows, &cols, err);
    if (st != EMB_OK) return st;
    if (cols != dim) {
        free(*train);
        *train = NULL;
        return emb_fail(err, EMB_ERR_INVALID_ARG, "--index-train %s has dimension %d, the vectors have %d",
                        x->index_train, cols, dim);
    }
    return EMB_OK;
}

/* ---- encode --index ------------------------------------------------------ */

struct cli_index_job {
    ix_builder *b;
    io_reader *r;
    io_writer *w;
    const char *id_field;
    int64_t *ids;
    size_t nids, cap;
    int64_t *chunk;
    size_t chunk_cap;
    float *train;
    pthread_mutex_t mu;        /* ids: appended by the engine's reader thread */
};

emb_status cli_index_job_open(const cli_extra *x, emb_model *m, const emb_encode_options *eo, int dim,
                              int quiet, cli_index_job **out, emb_error *err) {
    *out = NULL;
    if (!fx_available()) return no_faiss(err);
    cli_index_job *j = calloc(1, sizeof *j);
    if (!j) return emb_fail(err, EMB_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&j->mu, NULL);
    j->id_field = x->id_field;
    ix_build_options bo = {0};
    bo.spec = x->index_spec ? x->index_spec : "Flat";
    bo.custom_ids = x->id_field != NULL;
    bo.train_size = x->index_train_size;
    bo.verbose = !quiet;
    emb_status st = model_metric(x, m, eo, &bo.metric, err);
    if (st == EMB_OK) st = load_train(x, dim, &j->train, &bo.train_rows, err);
    bo.train = j->train;
    if (st == EMB_OK) st = ix_builder_open(x->index_out, dim, &bo, &j->b, err);
    if (st == EMB_OK && !quiet)
        fprintf(stderr, "embedc: index \"%s\", metric %s\n", bo.spec, metric_name(bo.metric));
    if (st != EMB_OK) {
        emb_fail_prefix(err, "--index %s", x->index_out);
        cli_index_job_close(j);
        return st;
    }
    *out = j;
    return EMB_OK;
}

void cli_index_job_set(cli_index_job *j, io_reader *r, io_writer *w) {
    j->r = r;
    j->w = w;
    if (j->id_field) io_reader_want_int_field(r, j->id_field);
}

int cli_index_read(void *ud, const char **text, size_t *len, emb_error *err) {
    cli_index_job *j = ud;
    int got = io_reader_next(j->r, text, len, err);
    if (got != 1 || !j->id_field) return got;
    int64_t id;
    if (io_reader_int_field(j->r, j->id_field, &id, err) != EMB_OK) return -1;
    pthread_mutex_lock(&j->mu);
    if (j->nids == j->cap) {
        size_t cap = j->cap ? j->cap * 2 : 4096;
        int64_t *p = realloc(j->ids, cap * sizeof *p);
        if (!p) {
            pthread_mutex_unlock(&j->mu);
            emb_fail(err, EMB_ERR_NOMEM, "out of memory");
            return -1;
        }
        j->ids = p;
        j->cap = cap;
    }
    j->ids[j->nids++] = id;
    pthread_mutex_unlock(&j->mu);
    return 1;
}

emb_status cli_index_write(void *ud, uint64_t first, size_t n, const float *vecs, int dim, emb_error *err) {
    cli_index_job *j = ud;
    emb_status st = j->w ? io_writer_write(j->w, first, n, vecs, dim, err) : EMB_OK;
    if (st != EMB_OK) return st;
    const int64_t *ids = NULL;
    if (j->id_field) {
        if (n > j->chunk_cap) {
            int64_t *p = realloc(j->chunk, n * sizeof *p);
            if (!p) return emb_fail(err, EMB_ERR_NOMEM, "out of memory");
            j->chunk = p;
            j->chunk_cap = n;
        }
        pthread_mutex_lock(&j->mu);
        int ok = first + n <= j->nids;
        if (ok) memcpy(j->chunk, j->ids + first, n * sizeof *j->chunk);
        pthread_mutex_unlock(&j->mu);
        if (!ok) return emb_fail(err, EMB_ERR_INTERNAL, "index: no id read for document %llu", (unsigned long long)first);
        ids = j->chunk;
    }
    st = ix_builder_add(j->b, first, n, vecs, ids, err);
    if (st != EMB_OK) emb_fail_prefix(err, "index, documents %llu..", (unsigned long long)first);
    return st;
}

int cli_index_doc_label(void *ud, uint64_t doc, char *buf, size_t cap) {
    cli_index_job *j = ud;
    if (!j->id_field) return -1;
    pthread_mutex_lock(&j->mu);
    int ok = doc < j->nids;
    int64_t id = ok ? j->ids[doc] : 0;
    pthread_mutex_unlock(&j->mu);
    if (!ok) return -1;
    snprintf(buf, cap, "%" PRId64, id);
    return 0;
}

emb_status cli_index_job_finish(cli_index_job *j, emb_error *err) {
    return ix_builder_finish(j->b, NULL, NULL, err);
}

void cli_index_job_close(cli_index_job *j) {
    if (!j) return;
    ix_builder_close(j->b);
    pthread_mutex_destroy(&j->mu);
    free(j->ids);
    free(j->chunk);
    free(j->train);
    free(j);
}

/* ---- embedc index VECTORS.npy ------------------------------------------- */

/* Builds an index over all rows of v (ids 0..n-1); path NULL keeps it in memory. */
static emb_status build_from_matrix(const cli_extra *x, const char *path, const float *v, uint64_t n, int d,
                                    fx_metric metric, int quiet, ix_builder **out, emb_error *err) {
    ix_build_options bo = {0};
    bo.spec = x->index_spec ? x->index_spec : "Flat";
    bo.metric = metric;
    bo.train_size = x->index_train_size;
    bo.no_spool = 1;
    bo.verbose = !quiet;
    float *train = NULL;
    emb_status st = load_train(x, d, &train, &bo.train_rows, err);
    bo.train = train;
    if (st == EMB_OK) st = ix_builder_open(path, d, &bo, out, err);
    const uint64_t chunk = 65536;
    for (uint64_t i = 0; st == EMB_OK && i < n; i += chunk)
        st = ix_builder_add(*out, i, n - i < chunk ? n - i : chunk, v + i * (uint64_t)d, NULL, err);
    if (st == EMB_OK) st = ix_builder_finish(*out, v, NULL, err);
    free(train);
    if (st != EMB_OK) {
        ix_builder_close(*out);
        *out = NULL;
    }
    return st;
}

int cmd_index(const cli_extra *x, const char *output, int quiet, int argc, char **argv) {
    if (optind >= argc) {
        fprintf(stderr, "embedc index: give the vectors: embedc index VECTORS.npy --index-spec SPEC -o OUT.faiss\n");
        return 2;
    }
    if (!x->output_given || !strcmp(output, "-")) {
        fprintf(stderr, "embedc index: give the index file with -o OUT.faiss\n");
        return 2;
    }
    emb_error err = {0};
    float *v = NULL;
    uint64_t n = 0;
    int d = 0, bad;
    ix_builder *b = NULL;
    emb_status st = fx_available() ? io_npy_read(argv[optind], &v, &n, &d, &err)
                                   : no_faiss(&err);
    fx_metric metric = FX_METRIC_L2;
    if (st == EMB_OK) {
        metric = vectors_metric(x, v, n, d, &err, &bad);
        if (bad) st = EMB_ERR_INVALID_ARG;
    }
    double t0 = cli_now_s();
    if (st == EMB_OK) st = build_from_matrix(x, output, v, n, d, metric, quiet, &b, &err);
    if (st == EMB_OK && !quiet)
        fprintf(stderr, "embedc: %s: %llu vectors, dim %d, metric %s, built in %.2f s\n", output,
                (unsigned long long)n, d, metric_name(metric), cli_now_s() - t0);
    ix_builder_close(b);
    free(v);
    if (st != EMB_OK) {
        fprintf(stderr, "embedc: error: %s\n", err.message);
        return 1;
    }
    return 0;
}

/* ---- search ---------------------------------------------------------- */

static emb_status set_search_params(const cli_extra *x, fx_index *ix, emb_error *err) {
    emb_status st = EMB_OK;
    if (x->nprobe) st = fx_set_param(ix, "nprobe", x->nprobe, err);
    if (st == EMB_OK && x->ef) st = fx_set_param(ix, "efSearch", x->ef, err);
    return st;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* The documents of `texts` whose id (document index, or --id-field) is among
 * the sorted `want`; returns texts[i] for want[i] (NULL when absent). */
static emb_status load_texts(const cli_extra *x, const char *field, const int64_t *want, size_t nw,
                             char **out, emb_error *err) {
    io_reader *r = NULL;
    emb_status st = io_reader_open(x->texts, io_guess_in_format(x->texts), field, &r, err);
    if (st != EMB_OK) return st;
    if (x->id_field) io_reader_want_int_field(r, x->id_field);
    const char *t;
    size_t len;
    int got;
    int64_t idx = 0;
    while ((got = io_reader_next(r, &t, &len, err)) == 1) {
        int64_t id = idx++;
        if (x->id_field && io_reader_int_field(r, x->id_field, &id, err) != EMB_OK) { got = -1; break; }
        const int64_t *hit = bsearch(&id, want, nw, sizeof *want, cmp_i64);
        if (hit && !out[hit - want]) out[hit - want] = strndup(t, len);
    }
    io_reader_close(r);
    return got < 0 ? EMB_ERR_FORMAT : EMB_OK;
}

int cmd_search(const cli_extra *x, const emb_encode_options *eo_in, cli_load_fn load, const void *opts,
               int argc, char **argv) {
    int nq = argc - optind;
    if (!x->index_in || nq < 1) {
        fprintf(stderr, "embedc search: usage: embedc search --index F.faiss [-m MODEL] [-k 10] \"query\" ...\n");
        return 2;
    }
    emb_error err = {0};
    fx_index *ix = NULL;
    emb_model *m = NULL;
    float *q = NULL, *dist = NULL;
    int64_t *lab = NULL, *want = NULL;
    char **texts = NULL;
    size_t nw = 0;
    int rc = 1, k = x->k ? x->k : 10;
    emb_encode_options eo = *eo_in;
    if (fx_read(x->index_in, &ix, &err) != EMB_OK || set_search_params(x, ix, &err) != EMB_OK) goto fail;
    if (!(m = load(opts, &err))) goto fail;
    int dim = emb_model_dim(m, &eo);
    if (dim != fx_dim(ix)) {
        emb_fail(&err, EMB_ERR_INVALID_ARG, "index %s holds vectors of dimension %d, model %s makes %d",
                 x->index_in, fx_dim(ix), m->mf.dir, dim);
        goto fail;
    }
    /* the model's query prompt, unless one was chosen */
    if (!eo.prompt && !eo.prompt_name)
        for (int i = 0; i < m->mf.st.n_prompts; i++)
            if (!strcmp(m->mf.st.prompts[i].name, "query")) eo.prompt_name = "query";
    q = malloc((size_t)nq * dim * sizeof *q);
    dist = malloc((size_t)nq * k * sizeof *dist);
    lab = malloc((size_t)nq * k * sizeof *lab);
    if (!q || !dist || !lab) { emb_fail(&err, EMB_ERR_NOMEM, "out of memory"); goto fail; }
    if (emb_encode(m, (const char *const *)argv + optind, NULL, (size_t)nq, &eo, q, NULL, &err) != EMB_OK) goto fail;
    if (fx_search(ix, (uint64_t)nq, q, k, dist, lab, &err) != EMB_OK) goto fail;
    if (x->texts) {
        want = malloc((size_t)nq * k * sizeof *want);
        texts = calloc((size_t)nq * k, sizeof *texts);
        if (!want || !texts) { emb_fail(&err, EMB_ERR_NOMEM, "out of memory"); goto fail; }
        for (size_t i = 0; i < (size_t)nq * k; i++)
            if (lab[i] >= 0) want[nw++] = lab[i];
        qsort(want, nw, sizeof *want, cmp_i64);
        size_t u = 0;
        for (size_t i = 0; i < nw; i++)
            if (!u || want[i] != want[u - 1]) want[u++] = want[i];
        nw = u;
        if (load_texts(x, x->field ? x->field : "text", want, nw, texts, &err) != EMB_OK) goto fail;
    }
    const char *score = fx_get_metric(ix) == FX_METRIC_IP ? "score (inner product)" : "distance (squared L2)";
    for (int i = 0; i < nq; i++) {
        printf("query %d: %s", i + 1, argv[optind + i]);
        if (eo.prompt_name) printf("   (with the model's \"%s\" prompt)", eo.prompt_name);
        printf("\n");
        printf("  rank  id  %s%s\n", score, texts ? "  text" : "");
        for (int r = 0; r < k; r++) {
            int64_t id = lab[(size_t)i * k + r];
            if (id < 0) continue;
            printf("  %4d  %lld  %.6f", r + 1, (long long)id, dist[(size_t)i * k + r]);
            if (texts) {
                const int64_t *hit = bsearch(&id, want, nw, sizeof *want, cmp_i64);
                const char *t = hit ? texts[hit - want] : NULL;
                printf("  %s", t ? t : "(not in --texts)");
            }
            printf("\n");
        }
        if (i + 1 < nq) printf("\n");
    }
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "embedc: error: %s\n", err.message);
done:
    if (texts)
        for (size_t i = 0; i < nw; i++) free(texts[i]);
    free(texts);
    free(want);
    free(q);
    free(dist);
    free(lab);
    fx_free(ix);
    emb_model_free(m);
    return rc;
}

/* ---- bench-index ------------------------------------------------------ */

int cmd_bench_index(const cli_extra *x, const char *summary_json, int argc, char **argv) {
    if (optind >= argc) {
        fprintf(stderr, "embedc bench-index: usage: embedc bench-index VECTORS.npy --index-spec SPEC "
                        "[--queries Q.npy | --holdout N] [--nprobe N] [--ef N]\n");
        return 2;
    }
    emb_error err = {0};
    float *v = NULL, *qv = NULL, *dist = NULL;
    int64_t *lab = NULL, *gt = NULL;
    ix_builder *b = NULL;
    fx_index *exact = NULL;
    uint64_t n = 0, nq = 0;
    int d = 0, bad, rc = 1;
    const float *queries;
    emb_status st = fx_available() ? io_npy_read(argv[optind], &v, &n, &d, &err)
                                   : no_faiss(&err);
    if (st != EMB_OK) goto fail;
    if (x->queries) {
        int qd;
        if (io_npy_read(x->queries, &qv, &nq, &qd, &err) != EMB_OK) goto fail;
        if (qd != d) {
            emb_fail(&err, EMB_ERR_INVALID_ARG, "--queries %s has dimension %d, the vectors have %d", x->queries, qd, d);
            goto fail;
        }
        queries = qv;
    } else {
        nq = x->holdout ? (uint64_t)x->holdout : n / 10 < 1000 ? n / 10 : 1000;
        if (nq < 1 || nq >= n) {
            emb_fail(&err, EMB_ERR_INVALID_ARG, "%s: %llu vectors are too few to hold out %llu queries",
                     argv[optind], (unsigned long long)n, (unsigned long long)nq);
            goto fail;
        }
        n -= nq;
        queries = v + n * (uint64_t)d;   /* the last nq rows */
    }
    fx_metric metric = vectors_metric(x, v, n, d, &err, &bad);
    if (bad) goto fail;
    int k = 100;
    if ((uint64_t)k > n) k = (int)n;
    double t0 = cli_now_s();
    if (build_from_matrix(x, NULL, v, n, d, metric, 1, &b, &err) != EMB_OK) goto fail;
    double build_s = cli_now_s() - t0;
    fx_index *ix = ix_builder_index(b);
    if (set_search_params(x, ix, &err) != EMB_OK) goto fail;
    if (fx_create(d, "Flat", metric, 0, &exact, &err) != EMB_OK || fx_add(exact, n, v, NULL, &err) != EMB_OK) goto fail;
    dist = malloc(nq * (size_t)k * sizeof *dist);
    lab = malloc(nq * (size_t)k * sizeof *lab);
    gt = malloc(nq * (size_t)k * sizeof *gt);
    if (!dist || !lab || !gt) { emb_fail(&err, EMB_ERR_NOMEM, "out of memory"); goto fail; }
    if (fx_search(exact, nq, queries, k, dist, gt, &err) != EMB_OK) goto fail;
    double best = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        double t = cli_now_s();
        if (fx_search(ix, nq, queries, k, dist, lab, &err) != EMB_OK) goto fail;
        t = cli_now_s() - t;
        if (t < best) best = t;
    }
    /* recall@r: the share of the exact top r found in the index's top r */
    const int at[3] = {1, 10, 100};
    double recall[3] = {0, 0, 0};
    for (int a = 0; a < 3; a++) {
        int r = at[a] < k ? at[a] : k;
        uint64_t hits = 0;
        for (uint64_t i = 0; i < nq; i++)
            for (int p = 0; p < r; p++)
                for (int s = 0; s < r; s++)
                    if (lab[i * k + s] == gt[i * k + p] && gt[i * k + p] >= 0) { hits++; break; }
        recall[a] = (double)hits / ((double)nq * r);
    }
    double qps = best > 0 ? nq / best : 0;
    printf("embedc bench-index: %s, %llu vectors of dim %d, %llu queries, metric %s, trained on %llu\n",
           x->index_spec ? x->index_spec : "Flat", (unsigned long long)n, d, (unsigned long long)nq,
           metric_name(metric), (unsigned long long)ix_builder_train_rows(b));
    printf("\n| index | nprobe | ef | recall@1 | recall@10 | recall@100 | queries/s | build s |\n"
           "|---|---|---|---|---|---|---|---|\n");
    printf("| %s | %d | %d | %.4f | %.4f | %.4f | %.0f | %.2f |\n", x->index_spec ? x->index_spec : "Flat",
           x->nprobe, x->ef, recall[0], recall[1], recall[2], qps, build_s);
    if (summary_json) {
        FILE *f = fopen(summary_json, "w");
        if (!f) { emb_fail(&err, EMB_ERR_IO, "cannot write %s: %s", summary_json, strerror(errno)); goto fail; }
        fprintf(f, "{\"spec\": \"%s\", \"vectors\": %llu, \"dim\": %d, \"queries\": %llu, \"metric\": \"%s\", "
                   "\"nprobe\": %d, \"ef\": %d, \"k\": %d, \"recall_at_1\": %.6f, \"recall_at_10\": %.6f, "
                   "\"recall_at_100\": %.6f, \"queries_per_second\": %.1f, \"build_seconds\": %.3f}\n",
                x->index_spec ? x->index_spec : "Flat", (unsigned long long)n, d, (unsigned long long)nq,
                metric == FX_METRIC_IP ? "ip" : "l2", x->nprobe, x->ef, k, recall[0], recall[1], recall[2], qps,
                build_s);
        if (fclose(f)) { emb_fail(&err, EMB_ERR_IO, "writing %s: %s", summary_json, strerror(errno)); goto fail; }
    }
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "embedc: error: %s\n", err.message);
done:
    ix_builder_close(b);
    fx_free(exact);
    free(v);
    free(qv);
    free(dist);
    free(lab);
    free(gt);
    return rc;
}
