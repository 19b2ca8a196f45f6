/*
 * `embedc encode ... --job DIR`: a bulk job that survives being killed. The
 * job directory (host/engine/job.c) keeps the manifest, the vectors in
 * durable chunks and a journal per rank; this file decides what the manifest
 * holds (what must not change between runs), which documents this process
 * embeds (all of them, or its MPI rank's contiguous share), and assembles the
 * final output on rank 0 once every share is done. SIGINT, SIGTERM and
 * SIGHUP stop the run after the batch in progress, leaving a job that the same
 * command continues.
 */
#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "cli_extra.h"
#include "engine.h"
#include "error.h"
#include "job.h"
#include "ranks.h"

static volatile sig_atomic_t job_stop;

static void on_stop_signal(int sig) {
    if (job_stop) {            /* a second signal: stop now */
        io_remove_temp_files();
        signal(sig, SIG_DFL);
        raise(sig);
    }
    job_stop = sig;
}

static void catch_stop_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

/* ---- the manifest: identities and options -------------------------------- */

static uint64_t fnv1a(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* Hash of a file's first and last MiB (the whole file when smaller): with its
 * size and modification time, the identity of an input or weight file that
 * costs no pass over a large file. */
static int file_identity(const char *path, int sample, char *out, size_t cap) {
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0) close(fd);
        return -1;
    }
    uint64_t h = 0xcbf29ce484222325ull;
    if (sample) {
        static char buf[1 << 20];
        off_t offs[2] = {0, st.st_size > (off_t)sizeof buf ? st.st_size - (off_t)sizeof buf : 0};
        for (int k = 0; k < (st.st_size > (off_t)sizeof buf ? 2 : 1); k++) {
            ssize_t got = pread(fd, buf, sizeof buf, offs[k]);
            if (got < 0) { close(fd); return -1; }
            h = fnv1a(h, buf, (size_t)got);
        }
    }
    close(fd);
    snprintf(out, cap, "size %lld, mtime %lld.%09ld%s%016" PRIx64, (long long)st.st_size,
             (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec, sample ? ", sample " : "", sample ? h : 0);
    if (!sample) out[strlen(out) - 16] = 0;
    return 0;
}

static void add(cJSON *o, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void add(cJSON *o, const char *key, const char *fmt, ...) {
    char v[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v, sizeof v, fmt, ap);
    va_end(ap);
    cJSON_AddStringToObject(o, key, v);
}

/* Every key that, changed, would change the vectors, their order or which
 * documents they belong to. The output format and path are not among them:
 * the chunks are float32 and the output is assembled from them. */
static char *make_manifest(const cli_opts *o, emb_model *m, const emb_job *job, const eng_prompt *pr,
                           int nranks, size_t window_docs, emb_error *err) {
    char id[256];
    if (file_identity(o->input, 1, id, sizeof id)) {
        emb_fail(err, EMB_ERR_IO, "--job: cannot read the input %s: %s", o->input, strerror(errno));
        return NULL;
    }
    cJSON *j = cJSON_CreateObject();
    if (!j) { emb_fail(err, EMB_ERR_NOMEM, "out of memory"); return NULL; }
    add(j, "input", "%s", id);
    add(j, "input format", "%s, field %s", o->input_format ? o->input_format : "(from the name)", o->field);
    char *real = realpath(m->mf.dir, NULL);
    add(j, "model", "%s", real ? real : m->mf.dir);
    free(real);
    static const char *files[] = {"config.json", "model.safetensors", "model.safetensors.index.json",
                                  "tokenizer.json", "modules.json"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        size_t n = strlen(m->mf.dir) + strlen(files[i]) + 2;
        char *p = malloc(n);
        if (!p) continue;
        snprintf(p, n, "%s/%s", m->mf.dir, files[i]);
        char key[64];
        snprintf(key, sizeof key, "model %s", files[i]);
        if (file_identity(p, !strstr(files[i], "safetensors") || strstr(files[i], "index"), id, sizeof id) == 0)
            add(j, key, "%s", id);
        free(p);
    }
    add(j, "backend", "%s", m->be->name);
    add(j, "dtype", "%d", (int)m->opts.dtype);
    /* Its sums run in another order (only named when used: older jobs' manifests stay valid). */
    if (m->opts.tensor_parallel > 1) add(j, "tensor parallel", "%d", m->opts.tensor_parallel);
    add(j, "prompt", "%s", pr->prompt ? pr->prompt : "(none)");
    add(j, "pooling", "%d, skip %d", job->pooling_modes, pr->skip);
    add(j, "layer", "%d", job->layer);
    add(j, "normalize", "%d", job->normalize);
    add(j, "truncate dim", "%d", job->truncate_dim);
    add(j, "dense", "%d", job->apply_dense);
    add(j, "dim", "%d", job->out_dim);
    add(j, "max length", "%d", m->max_length);
    add(j, "max doc bytes", "%zu, %d", eng_max_doc_bytes(&o->eo), (int)o->eo.long_docs);
    add(j, "batch tokens", "%zu", o->batch_tokens);
    add(j, "window docs", "%zu", window_docs);
    add(j, "lowercase", "%d", o->lowercase);
    add(j, "ranks", "%d", nranks);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!s) emb_fail(err, EMB_ERR_NOMEM, "out of memory");
    return s;
}

/* ---- the command --------------------------------------------------------- */

static emb_status count_documents(const cli_opts *o, uint64_t *n, emb_error *err) {
    io_reader *r = NULL;
    if (cli_open_input(o, &r, err)) return err->code ? err->code : EMB_ERR_IO;
    const char *t;
    size_t l;
    int got;
    *n = 0;
    while ((got = io_reader_next(r, &t, &l, err)) == 1) (*n)++;
    io_reader_close(r);
    return got < 0 ? (err->code ? err->code : EMB_ERR_IO) : EMB_OK;
}

typedef struct {
    emb_status st;
    emb_error err;
} outcome;

static void fail_once(outcome *oc, emb_status st, const emb_error *err) {
    if (oc->st == EMB_OK && st != EMB_OK) {
        oc->st = st;
        oc->err = *err;
    }
}

int cli_encode_job(const cli_opts *o) {
    int rank = 0, nranks = 1;
    if (eng_ranks_init(NULL, NULL, &rank, &nranks)) return 1;
    cli_opts co = *o;
    if (rank > 0) co.quiet = 1;
    outcome oc = {EMB_OK, {0}};
    emb_error err = {0};
    emb_model *m = NULL;
    eng_jobdir *jd = NULL;
    io_reader *r = NULL;
    io_writer *w = NULL;
    char *manifest = NULL;
    int rc = 1, ended = 0;
    uint64_t done = 0, total = 0, first = 0, count = UINT64_MAX;
    emb_encode_stats stats = {0};
    size_t window_docs = co.window_docs ? co.window_docs : 4096;
    io_out_format fmt;
    emb_job job;
    eng_prompt pr;
    double t0 = cli_now_s();

    if (!strcmp(co.input, "-") || !strcmp(co.output, "-")) {
        fail_once(&oc, emb_fail(&err, EMB_ERR_INVALID_ARG, "--job needs an input file (-i FILE) and an "
                                "output file (-o FILE): standard input cannot be read again to resume"), &err);
    } else if (co.x.index_out && co.x.id_field) {
        fail_once(&oc, emb_fail(&err, EMB_ERR_UNSUPPORTED, "--job with --index takes ids from the document "
                                "index; --id-field is not supported with --job yet"), &err);
    } else if (io_check_not_input(co.input, co.output, &err) != EMB_OK) {
        fail_once(&oc, err.code, &err);
    } else if (io_parse_out_format(co.format, co.output, &fmt)) {
        fail_once(&oc, emb_fail(&err, EMB_ERR_INVALID_ARG, "--format %s: expected npy, npy16, fvecs or jsonl",
                                co.format), &err);
    }
    if (oc.st == EMB_OK && !(m = cli_load_model(&co, &err))) fail_once(&oc, err.code ? err.code : EMB_ERR_IO, &err);
    if (oc.st == EMB_OK) fail_once(&oc, eng_make_job(m, &co.eo, &job, &err), &err);
    if (oc.st == EMB_OK) fail_once(&oc, eng_resolve_prompt(m, &co.eo, &pr, &err), &err);
    if (oc.st == EMB_OK && !(manifest = make_manifest(&co, m, &job, &pr, nranks, window_docs, &err)))
        fail_once(&oc, err.code, &err);

    /* This rank's share: contiguous, by document count (rank 0 counts). */
    if (nranks > 1) {
        uint64_t n = 0;
        if (rank == 0 && oc.st == EMB_OK) fail_once(&oc, count_documents(&co, &n, &err), &err);
        n = eng_ranks_bcast_u64(n);
        first = n * (uint64_t)rank / (uint64_t)nranks;
        count = n * (uint64_t)(rank + 1) / (uint64_t)nranks - first;
    }

    /* Rank 0 creates the directory and the manifest before the others look. */
    eng_jobdir_options jo = {co.job, manifest, rank, nranks, first, count, m ? job.out_dim : 0};
    if (rank == 0 && oc.st == EMB_OK) fail_once(&oc, eng_jobdir_open(&jo, &jd, &done, &ended, &err), &err);
    if (eng_ranks_max_int(oc.st != EMB_OK) && oc.st == EMB_OK)
        fail_once(&oc, emb_fail(&err, EMB_ERR_IO, "another rank failed to start"), &err);
    if (rank > 0 && oc.st == EMB_OK) fail_once(&oc, eng_jobdir_open(&jo, &jd, &done, &ended, &err), &err);

    if (oc.st == EMB_OK && !ended) {
        if (done && !co.quiet)
            fprintf(stderr, "embedc: job %s: resuming after %" PRIu64 " documents\n", co.job, first + done);
        if (cli_open_input(&co, &r, &err)) fail_once(&oc, err.code ? err.code : EMB_ERR_IO, &err);
    }
    if (oc.st == EMB_OK && !ended) {
        eng_range_reader rr = {io_reader_next, r, first + done, count == UINT64_MAX ? UINT64_MAX : count - done, 0};
        cli_progress ps = {cli_now_s(), 0, r, !co.quiet && isatty(2)};
        eng_run_options ro = {co.batch_tokens, window_docs, cli_on_progress, &ps, &job_stop, 0, NULL, NULL};
        catch_stop_signals();
        emb_status st = eng_run(m, &co.eo, &ro, eng_range_read, &rr, eng_jobdir_write, jd, &stats, &err);
        if (ps.enabled) fprintf(stderr, "\r%*s\r", 90, "");
        if (st == EMB_OK && count != UINT64_MAX && stats.documents != count - done)
            st = emb_fail(&err, EMB_ERR_FORMAT, "%s ended after %" PRIu64 " documents of this rank's %" PRIu64
                          " (the input changed while the job ran?)", co.input, done + stats.documents, count);
        if (st == EMB_OK) st = eng_jobdir_end(jd, first + done + stats.documents, &err);
        fail_once(&oc, st, &err);
    }

    /* Every rank's share must be done before rank 0 assembles the output. */
    int any_failed = eng_ranks_max_int(oc.st != EMB_OK);
    /* The output, and the index when asked for, are made from the chunks in
     * input order, so a resumed job builds the same index as an
     * uninterrupted one (the training sample is drawn while assembling). */
    if (rank == 0 && !any_failed) {
        cli_index_job *ij = NULL;
        emb_status st = io_writer_open(co.output, fmt, job.out_dim, &w, &err);
        if (st == EMB_OK && co.x.index_out) {
            st = cli_index_job_open(&co.x, m, &co.eo, job.out_dim, co.quiet, &ij, &err);
            if (st == EMB_OK) cli_index_job_set(ij, NULL, w);
        }
        if (st == EMB_OK)
            st = eng_jobdir_assemble(jd, ij ? cli_index_write : io_writer_write, ij ? (void *)ij : w, &total, &err);
        if (st == EMB_OK && ij) st = cli_index_job_finish(ij, &err);
        if (st == EMB_OK) st = io_writer_commit(w, &err);
        cli_index_job_close(ij);
        fail_once(&oc, st, &err);
    }

    if (oc.st == EMB_ERR_INTERRUPTED) {
        fprintf(stderr, "\nembedc: stopped by signal %d; job %s keeps what was written: run the same "
                        "command to continue\n", (int)job_stop, co.job);
        rc = 128 + (int)job_stop;
    } else if (oc.st != EMB_OK) {
        fprintf(stderr, "\nembedc: error: %s\n", oc.err.message);
        if (jd) fprintf(stderr, "embedc: job %s keeps what was written: run the same command to continue\n", co.job);
    } else if (any_failed) {
        rc = 1;                /* another rank said why */
    } else {
        rc = 0;
        double secs = cli_now_s() - t0;
        if (!co.quiet)
            fprintf(stderr, "embedc: job %s: %" PRIu64 " documents in %s (%llu embedded now, %llu tokens in "
                            "%.2f s; %llu truncated, %llu with invalid UTF-8 replaced) [%s, dim %d, %d rank%s]\n",
                    co.job, total, co.output, (unsigned long long)stats.documents,
                    (unsigned long long)stats.tokens, secs, (unsigned long long)stats.truncated,
                    (unsigned long long)stats.invalid_utf8, m->be->name, job.out_dim, nranks,
                    nranks == 1 ? "" : "s");
    }
    io_writer_close(w);
    io_reader_close(r);
    eng_jobdir_close(jd);
    free(manifest);
    emb_model_free(m);
    eng_ranks_finalize();
    return rc;
}
