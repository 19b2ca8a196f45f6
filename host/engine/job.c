/*
 * Durable bulk jobs: the job directory, its manifest, chunks and journals
 * (job.h says what each guarantees). The order of every write matters:
 *   chunk:   write chunk-F.f32.tmp, fsync it, rename to chunk-F.f32, fsync
 *            the directory, append "chunk F N DIM HASH" to the journal and
 *            fsync the journal;
 *   journal: only whole lines count; a torn last line is cut off on open.
 * A chunk that is on disk but not journaled is simply written again; a
 * journal line whose chunk is missing or of the wrong size ends the journal
 * there (with a notice) and the work after it is redone.
 */
#include "job.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"

typedef struct {
    uint64_t first, count;
    uint64_t hash;
} job_chunk;

struct eng_jobdir {
    char *dir;
    int rank, dim;
    uint64_t base;             /* global index of the engine's document 0 in this run */
    uint64_t next;             /* global index the next chunk must start at */
    int journal_fd;
    char *journal_path;
};

/* ---- crash points (tests) ------------------------------------------------ */

void eng_job_crash_point(const char *point) {
    static int parsed, target = -1, seen;
    static char name[32];
    if (!parsed) {
        parsed = 1;
        const char *e = getenv("EMBEDC_JOB_CRASH");
        const char *colon = e ? strchr(e, ':') : NULL;
        if (colon && (size_t)(colon - e) < sizeof name) {
            memcpy(name, e, (size_t)(colon - e));
            name[colon - e] = 0;
            target = atoi(colon + 1);
        }
    }
    if (target >= 0 && !strcmp(point, name) && ++seen == target) raise(SIGKILL);
}

/* ---- small file helpers -------------------------------------------------- */

static char *join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static uint64_t fnv1a(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}
#define FNV_SEED 0xcbf29ce484222325ull

static emb_status sync_dir(const char *dir, emb_error *err) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0 || fsync(fd) != 0) {
        int e = errno;
        if (fd >= 0) close(fd);
        return emb_fail(err, EMB_ERR_IO, "job %s: syncing the directory: %s", dir, strerror(e));
    }
    close(fd);
    return EMB_OK;
}

static emb_status write_fd_all(int fd, const void *p, size_t n, const char *what, emb_error *err) {
    const char *c = p;
    while (n) {
        ssize_t k = write(fd, c, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return emb_fail(err, EMB_ERR_IO, "writing %s: %s", what, strerror(k < 0 ? errno : EIO));
        c += k;
        n -= (size_t)k;
    }
    return EMB_OK;
}

/* Writes `n` bytes to dir/name durably: temporary file, fsync, rename, fsync
 * of the directory. `point_prefix` names the crash points passed. */
static emb_status write_durable(const char *dir, const char *name, const void *data, size_t n,
                                int crash_points, emb_error *err) {
    char *path = join(dir, name), *tmp = NULL;
    emb_status st = EMB_OK;
    if (path) {
        size_t tn = strlen(path) + 8;
        tmp = malloc(tn);
        if (tmp) snprintf(tmp, tn, "%s.tmp", path);
    }
    if (!path || !tmp) { st = emb_fail(err, EMB_ERR_NOMEM, "out of memory"); goto done; }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) { st = emb_fail(err, EMB_ERR_IO, "cannot create %s: %s", tmp, strerror(errno)); goto done; }
    st = write_fd_all(fd, data, n, tmp, err);
    if (st == EMB_OK && crash_points) eng_job_crash_point("chunk-written");
    if (st == EMB_OK && fsync(fd) != 0) st = emb_fail(err, EMB_ERR_IO, "syncing %s: %s", tmp, strerror(errno));
    if (close(fd) != 0 && st == EMB_OK) st = emb_fail(err, EMB_ERR_IO, "writing %s: %s", tmp, strerror(errno));
    if (st != EMB_OK) { unlink(tmp); goto done; }
    if (crash_points) eng_job_crash_point("chunk-synced");
    if (rename(tmp, path) != 0) {
        st = emb_fail(err, EMB_ERR_IO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
        unlink(tmp);
        goto done;
    }
    st = sync_dir(dir, err);
    if (st == EMB_OK && crash_points) eng_job_crash_point("chunk-renamed");
done:
    free(path);
    free(tmp);
    return st;
}

static char *chunk_name(uint64_t first) {
    char *s = malloc(40);
    if (s) snprintf(s, 40, "chunk-%012" PRIu64 ".f32", first);
    return s;
}

/* ---- manifest ------------------------------------------------------------ */

static char *slurp(const char *path, size_t limit, emb_error *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > limit) {
        if (fd >= 0) close(fd);
        emb_fail(err, EMB_ERR_IO, "cannot read %s: %s", path,
                 fd < 0 ? strerror(errno) : "not a regular file of a sane size");
        return NULL;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (buf && got < (size_t)st.st_size) {
        ssize_t k = read(fd, buf + got, (size_t)st.st_size - got);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        got += (size_t)k;
    }
    close(fd);
    if (!buf || got != (size_t)st.st_size) {
        free(buf);
        emb_fail(err, EMB_ERR_IO, "cannot read %s", path);
        return NULL;
    }
    buf[got] = 0;
    return buf;
}

static const char *str_or(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The first key whose value differs between the two manifests, both ways. */
static emb_status compare_manifests(const char *dir, const cJSON *old, const cJSON *now,
                                    emb_error *err) {
    const cJSON *sides[2] = {now, old};
    for (int s = 0; s < 2; s++) {
        const cJSON *it;
        cJSON_ArrayForEach(it, sides[s]) {
            const char *a = str_or(old, it->string), *b = str_or(now, it->string);
            if (a && b && !strcmp(a, b)) continue;
            return emb_fail(err, EMB_ERR_INVALID_ARG,
                            "job %s was started with %s = %s, and this run has %s = %s: run it with "
                            "the same input, model and options, or use a new job directory",
                            dir, it->string, a ? a : "(absent)", it->string, b ? b : "(absent)");
        }
    }
    return EMB_OK;
}

static emb_status check_manifest(const char *dir, const char *manifest, int rank, emb_error *err) {
    cJSON *now = cJSON_Parse(manifest);
    if (!now || !cJSON_IsObject(now)) {
        cJSON_Delete(now);
        return emb_fail(err, EMB_ERR_INTERNAL, "job manifest is not a JSON object");
    }
    char *path = join(dir, "manifest.json");
    emb_status st = EMB_OK;
    struct stat sb;
    if (!path) { st = emb_fail(err, EMB_ERR_NOMEM, "out of memory"); goto done; }
    if (stat(path, &sb) != 0 && errno == ENOENT) {
        if (rank != 0) {
            st = emb_fail(err, EMB_ERR_IO, "job %s has no manifest.json (rank 0 writes it first)", dir);
            goto done;
        }
        st = write_durable(dir, "manifest.json", manifest, strlen(manifest), 0, err);
        goto done;
    }
    char *text = slurp(path, 1 << 20, err);
    if (!text) { st = err ? err->code : EMB_ERR_IO; goto done; }
    cJSON *old = cJSON_Parse(text);
    free(text);
    if (!old || !cJSON_IsObject(old))
        st = emb_fail(err, EMB_ERR_FORMAT, "%s: not a job manifest (remove the directory to start over)", path);
    else
        st = compare_manifests(dir, old, now, err);
    cJSON_Delete(old);
done:
    free(path);
    cJSON_Delete(now);
    return st;
}

/* ---- journals ------------------------------------------------------------ */

static char *journal_name(int rank) {
    char *s = malloc(32);
    if (s) snprintf(s, 32, "journal-%d.log", rank);
    return s;
}

/* Parses a journal: its chunks (contiguous from `first`) and its end line.
 * *good_bytes: length of the prefix of whole, valid lines (the rest is cut). */
typedef struct {
    job_chunk *c;
    size_t n, cap;
    int ended;
    uint64_t end;
    size_t good_bytes;
} journal;

static int journal_push(journal *jn, job_chunk c) {
    if (jn->n == jn->cap) {
        size_t cap = jn->cap ? jn->cap * 2 : 64;
        job_chunk *p = realloc(jn->c, cap * sizeof *p);
        if (!p) return -1;
        jn->c = p;
        jn->cap = cap;
    }
    jn->c[jn->n++] = c;
    return 0;
}

static off_t file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) ? st.st_size : -1;
}

/* Reads dir/journal-RANK.log. A line that is torn, malformed, out of order,
 * or whose chunk file is missing or of the wrong size ends the journal. */
static emb_status journal_read(const char *dir, int rank, uint64_t first, int dim, int quiet_missing,
                               journal *jn, emb_error *err) {
    memset(jn, 0, sizeof *jn);
    char *name = journal_name(rank), *path = name ? join(dir, name) : NULL;
    free(name);
    if (!path) return emb_fail(err, EMB_ERR_NOMEM, "out of memory");
    if (file_size(path) < 0) {
        free(path);
        return quiet_missing ? EMB_OK : emb_fail(err, EMB_ERR_IO, "job %s: no journal for rank %d", dir, rank);
    }
    char *text = slurp(path, (size_t)1 << 34, err);
    if (!text) { free(path); return err ? err->code : EMB_ERR_IO; }
    uint64_t expect = first;
    char *line = text;
    for (char *nl; (nl = strchr(line, '\n')); line = nl + 1) {
        *nl = 0;
        job_chunk c;
        int cdim;
        uint64_t end;
        char *chunk = NULL;
        if (jn->ended) break;
        if (sscanf(line, "chunk %" SCNu64 " %" SCNu64 " %d %" SCNx64, &c.first, &c.count, &cdim, &c.hash) == 4) {
            if (c.first != expect || cdim != dim || c.count == 0) break;
            char *cn = chunk_name(c.first);
            chunk = cn ? join(dir, cn) : NULL;
            free(cn);
            off_t want = (off_t)(c.count * (uint64_t)dim * sizeof(float));
            off_t have = chunk ? file_size(chunk) : -1;
            if (have != want) {
                fprintf(stderr, "embedc: job %s: %s is %s; redoing from document %" PRIu64 "\n", dir,
                        chunk ? chunk : "a chunk", have < 0 ? "missing" : "of the wrong size", c.first);
                free(chunk);
                break;
            }
            free(chunk);
            if (journal_push(jn, c)) { free(text); free(path); return emb_fail(err, EMB_ERR_NOMEM, "out of memory"); }
            expect = c.first + c.count;
        } else if (sscanf(line, "end %" SCNu64, &end) == 1 && end == expect) {
            jn->ended = 1;
            jn->end = end;
        } else {
            break;
        }
        jn->good_bytes = (size_t)(nl + 1 - text);
    }
    free(text);
    free(path);
    return EMB_OK;
}

static emb_status journal_append(eng_jobdir *j, const char *line, emb_error *err) {
    emb_status st = write_fd_all(j->journal_fd, line, strlen(line), j->journal_path, err);
    if (st == EMB_OK && fsync(j->journal_fd) != 0)
        st = emb_fail(err, EMB_ERR_IO, "syncing %s: %s", j->journal_path, strerror(errno));
    return st;
}

/* ---- the job ------------------------------------------------------------- */

emb_status eng_jobdir_open(const eng_jobdir_options *o, eng_jobdir **out, uint64_t *done,
                           int *ended, emb_error *err) {
    *out = NULL;
    *done = 0;
    *ended = 0;
    if (mkdir(o->dir, 0755) != 0 && errno != EEXIST)
        return emb_fail(err, EMB_ERR_IO, "cannot create job directory %s: %s", o->dir, strerror(errno));
    struct stat sb;
    if (stat(o->dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return emb_fail(err, EMB_ERR_IO, "--job %s: not a directory", o->dir);
    emb_status st = check_manifest(o->dir, o->manifest, o->rank, err);
    if (st != EMB_OK) return st;

    journal jn;
    st = journal_read(o->dir, o->rank, o->share_first, o->dim, 1, &jn, err);
    if (st != EMB_OK) return st;
    eng_jobdir *j = calloc(1, sizeof *j);
    char *jname = journal_name(o->rank);
    if (j) {
        j->dir = strdup(o->dir);
        j->journal_path = jname ? join(o->dir, jname) : NULL;
    }
    free(jname);
    if (j) j->journal_fd = -1;
    if (!j || !j->dir || !j->journal_path) {
        free(jn.c);
        eng_jobdir_close(j);
        return emb_fail(err, EMB_ERR_NOMEM, "out of memory");
    }
    j->rank = o->rank;
    j->dim = o->dim;
    j->journal_fd = -1;
    j->journal_fd = open(j->journal_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    /* Cut a torn or invalid tail so that new lines follow whole ones. */
    if (j->journal_fd < 0 || ftruncate(j->journal_fd, (off_t)jn.good_bytes) != 0 ||
        lseek(j->journal_fd, 0, SEEK_END) < 0) {
        st = emb_fail(err, EMB_ERR_IO, "cannot open %s: %s", j->journal_path, strerror(errno));
        free(jn.c);
        eng_jobdir_close(j);
        return st;
    }
    uint64_t d = jn.n ? jn.c[jn.n - 1].first + jn.c[jn.n - 1].count - o->share_first : 0;
    free(jn.c);
    j->base = o->share_first + d;
    j->next = j->base;
    *done = d;
    *ended = jn.ended;
    *out = j;
    return EMB_OK;
}

emb_status eng_jobdir_write(void *jobdir, uint64_t first, size_t n, const float *vecs, int dim,
                            emb_error *err) {
    eng_jobdir *j = jobdir;
    if (dim != j->dim || j->base + first != j->next)
        return emb_fail(err, EMB_ERR_INTERNAL, "job writer got documents %" PRIu64 ".. of width %d, "
                        "expected %" PRIu64 ".. of %d", j->base + first, dim, j->next, j->dim);
    if (n == 0) return EMB_OK;
    size_t bytes = n * (size_t)dim * sizeof(float);
    char *name = chunk_name(j->next);
    if (!name) return emb_fail(err, EMB_ERR_NOMEM, "out of memory");
    emb_status st = write_durable(j->dir, name, vecs, bytes, 1, err);
    free(name);
    if (st != EMB_OK) return emb_fail_prefix(err, "job %s", j->dir);
    char line[128];
    snprintf(line, sizeof line, "chunk %" PRIu64 " %zu %d %016" PRIx64 "\n", j->next, n, dim,
             fnv1a(FNV_SEED, vecs, bytes));
    st = journal_append(j, line, err);
    if (st != EMB_OK) return st;
    eng_job_crash_point("journaled");
    j->next += n;
    return EMB_OK;
}

emb_status eng_jobdir_end(eng_jobdir *j, uint64_t end, emb_error *err) {
    if (end != j->next)
        return emb_fail(err, EMB_ERR_INTERNAL, "job %s: rank %d ends at %" PRIu64 " but wrote up to %" PRIu64,
                        j->dir, j->rank, end, j->next);
    char line[64];
    snprintf(line, sizeof line, "end %" PRIu64 "\n", end);
    return journal_append(j, line, err);
}

/* Reads every journal-R.log of the directory, in rank order, until rank R has
 * no journal; the chunks must then cover [0, total) in order. */
emb_status eng_jobdir_assemble(eng_jobdir *j, eng_write_fn write, void *write_ud, uint64_t *total,
                               emb_error *err) {
    uint64_t next = 0;
    float *buf = NULL;
    size_t buf_cap = 0;
    emb_status st = EMB_OK;
    for (int rank = 0;; rank++) {
        char *jn_name = journal_name(rank), *jp = jn_name ? join(j->dir, jn_name) : NULL;
        free(jn_name);
        int present = jp && file_size(jp) >= 0;
        free(jp);
        if (!present) break;
        journal jn;
        st = journal_read(j->dir, rank, next, j->dim, 0, &jn, err);
        if (st != EMB_OK) break;
        if (!jn.ended) {
            free(jn.c);
            st = emb_fail(err, EMB_ERR_IO, "job %s: rank %d has not finished its documents (run the job "
                          "again to complete it)", j->dir, rank);
            break;
        }
        for (size_t i = 0; i < jn.n && st == EMB_OK; i++) {
            const job_chunk *c = &jn.c[i];
            size_t bytes = (size_t)c->count * (size_t)j->dim * sizeof(float);
            if (bytes > buf_cap) {
                float *p = realloc(buf, bytes);
                if (!p) { st = emb_fail(err, EMB_ERR_NOMEM, "out of memory assembling job %s", j->dir); break; }
                buf = p;
                buf_cap = bytes;
            }
            char *cn = chunk_name(c->first), *cp = cn ? join(j->dir, cn) : NULL;
            free(cn);
            FILE *f = cp ? fopen(cp, "rb") : NULL;
            size_t got = f ? fread(buf, 1, bytes, f) : 0;
            if (f) fclose(f);
            if (got != bytes || fnv1a(FNV_SEED, buf, bytes) != c->hash)
                st = emb_fail(err, EMB_ERR_FORMAT, "job %s: %s does not match its journal line (damaged; "
                              "remove it and its journal lines from that point, or the job directory, and "
                              "run again)", j->dir, cp ? cp : "a chunk");
            free(cp);
            if (st == EMB_OK) {
                eng_job_crash_point("assembling");
                st = write(write_ud, c->first, (size_t)c->count, buf, j->dim, err);
            }
        }
        if (st == EMB_OK) next = jn.ended ? jn.end : next;
        free(jn.c);
        if (st != EMB_OK) break;
    }
    free(buf);
    if (total) *total = next;
    return st;
}

void eng_jobdir_close(eng_jobdir *j) {
    if (!j) return;
    if (j->journal_fd >= 0) close(j->journal_fd);
    free(j->dir);
    free(j->journal_path);
    free(j);
}
