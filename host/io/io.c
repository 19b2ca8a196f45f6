/*
 * Readers and writers for the CLI and bulk jobs (see io.h).
 */
#include "io.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "jsonl.h"

/* ---- readers ---------------------------------------------------------- */

struct io_reader {
    FILE *f;
    int is_stdin;
    char *path;
    io_in_format fmt;
    char *field;
    char *line;             /* the current line (text: at most keep bytes of it) */
    size_t line_cap;
    size_t keep;            /* text: bytes of a line held (0 = all) */
    char *in;               /* text: read buffer */
    size_t in_pos, in_len;
    int in_eof;
    int line_done;          /* JSONL: the current line's '\n' (or the end) was reached */
    jsonl_value doc;        /* JSONL: the decoded field of the current line */
    uint64_t lineno;
    uint64_t consumed, size;
};

static int has_suffix(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcasecmp(s + a - b, suf) == 0;
}

io_in_format io_guess_in_format(const char *path) {
    return (has_suffix(path, ".jsonl") || has_suffix(path, ".ndjson")) ? IO_IN_JSONL : IO_IN_TEXT;
}

emb_status io_reader_open(const char *path, io_in_format fmt, const char *field, io_reader **out,
                          emb_error *err) {
    io_reader *r = calloc(1, sizeof *r);
    if (!r) return emb_fail(err, EMB_ERR_NOMEM, "out of memory");
    r->fmt = fmt;
    r->field = strdup(field ? field : "text");
    r->path = strdup(path);
    if (strcmp(path, "-") == 0) {
        r->f = stdin;
        r->is_stdin = 1;
    } else {
        r->f = fopen(path, "rb");
        if (!r->f) {
            emb_status st = emb_fail(err, EMB_ERR_IO, "cannot open input %s: %s", path, strerror(errno));
            io_reader_close(r);
            return st;
        }
        struct stat sb;
        if (fstat(fileno(r->f), &sb) == 0 && S_ISREG(sb.st_mode)) r->size = (uint64_t)sb.st_size;
        if (fstat(fileno(r->f), &sb) == 0 && S_ISDIR(sb.st_mode)) {
            emb_status st = emb_fail(err, EMB_ERR_IO, "cannot read input %s: it is a directory", path);
            io_reader_close(r);
            return st;
        }
    }
    *out = r;
    return EMB_OK;
}

void io_reader_set_keep(io_reader *r, size_t keep) {
    r->keep = keep;
    r->doc.keep = keep;
}

static int read_error(io_reader *r, emb_error *err) {
    emb_fail(err, EMB_ERR_IO, "reading %s after line %llu: %s", r->path, (unsigned long long)r->lineno,
             strerror(errno ? errno : EIO));
    return -1;
}

/* Refills the read buffer; 0 at the end of the input, -1 on a read error. */
static int refill(io_reader *r) {
    if (r->in_pos < r->in_len) return 1;
    if (r->in_eof) return 0;
    if (!r->in && !(r->in = malloc(1 << 16))) return -1;
    errno = 0;
    r->in_len = fread(r->in, 1, 1 << 16, r->f);
    r->in_pos = 0;
    if (r->in_len == 0) {
        r->in_eof = 1;
        return ferror(r->f) ? -1 : 0;
    }
    return 1;
}

/* jsonl_read_fn over the current line: its bytes up to the '\n' (consumed). */
static size_t jsonl_line_read(void *ud, char *dst, size_t max, int *error) {
    io_reader *r = ud;
    if (r->line_done) return 0;
    int got = refill(r);
    if (got <= 0) {
        if (got < 0) *error = 1;
        r->line_done = 1;
        return 0;
    }
    const char *p = r->in + r->in_pos;
    size_t avail = r->in_len - r->in_pos;
    const char *nl = memchr(p, '\n', avail);
    size_t k = nl ? (size_t)(nl - p) : avail;
    if (k > max) k = max;
    memcpy(dst, p, k);
    r->in_pos += k;
    r->consumed += k;
    if (nl && p + k == nl) {
        r->in_pos++;
        r->consumed++;
        r->line_done = 1;
    }
    return k;
}

/* Text: holds at most keep bytes of a line and skips the rest, so a 200 MB
 * line costs keep bytes, not 200 MB. */
static int next_text_line(io_reader *r, size_t *len, emb_error *err) {
    size_t held = 0;
    uint64_t total = 0;
    int any = 0, cr_last = 0;
    for (;;) {
        int more = refill(r);
        if (more < 0) return r->in ? read_error(r, err) : (emb_fail(err, EMB_ERR_NOMEM, "out of memory"), -1);
        if (more == 0) break;
        any = 1;
        const char *p = r->in + r->in_pos;
        size_t avail = r->in_len - r->in_pos;
        const char *nl = memchr(p, '\n', avail);
        size_t k = nl ? (size_t)(nl - p) : avail;
        size_t take = k;
        if (r->keep && held + take > r->keep) take = held < r->keep ? r->keep - held : 0;
        if (held + take + 1 > r->line_cap) {
            size_t nc = r->line_cap ? r->line_cap : 256;
            while (nc < held + take + 1) nc *= 2;
            char *nb = realloc(r->line, nc);
            if (!nb) {
                emb_fail(err, EMB_ERR_NOMEM, "out of memory reading line %llu of %s",
                         (unsigned long long)r->lineno + 1, r->path);
                return -1;
            }
            r->line = nb;
            r->line_cap = nc;
        }
        memcpy(r->line + held, p, take);
        held += take;
        total += k;
        if (k) cr_last = p[k - 1] == '\r';
        r->in_pos += k + (nl ? 1 : 0);
        r->consumed += k + (nl ? 1 : 0);
        if (nl) break;
    }
    if (!any) return 0;
    if (!r->line && !(r->line = malloc(r->line_cap = 256))) {
        emb_fail(err, EMB_ERR_NOMEM, "out of memory");
        return -1;
    }
    r->lineno++;
    /* One trailing \r goes (when the line was held whole). */
    if (cr_last && total == held && held > 0) held--;
    r->line[held] = 0;
    *len = held;
    return 1;
}

int io_reader_next(void *reader, const char **text, size_t *len, emb_error *err) {
    io_reader *r = reader;
    size_t n;
    if (r->fmt == IO_IN_TEXT) {
        int got = next_text_line(r, &n, err);
        if (got <= 0) return got;
        *text = r->line;
        *len = n;
        return 1;
    }
    for (;;) {
        /* JSONL: streamed through the scanner, so a line of any length
         * costs its window and the field's first keep bytes. */
        int more = refill(r);
        if (more < 0) return read_error(r, err);
        if (more == 0) return 0;
        r->lineno++;
        r->line_done = 0;
        char why[128];
        uint64_t at = 0;
        jsonl_result jr = jsonl_scan(jsonl_line_read, r, r->field, &r->doc, why, sizeof why, &at);
        switch (jr) {
        case JSONL_OK:
            *text = r->doc.buf ? r->doc.buf : "";
            *len = r->doc.len;
            return 1;
        case JSONL_BLANK:   /* whitespace-only lines separate nothing and are not documents */
            continue;
        case JSONL_MISSING:
        case JSONL_NOT_STRING:
            emb_fail(err, EMB_ERR_FORMAT, "%s line %llu: field \"%s\" is %s", r->path,
                     (unsigned long long)r->lineno, r->field, jr == JSONL_MISSING ? "missing" : "not a string");
            return -1;
        case JSONL_NOMEM:
            emb_fail(err, EMB_ERR_NOMEM, "%s line %llu: out of memory", r->path, (unsigned long long)r->lineno);
            return -1;
        case JSONL_IO:
            r->lineno--;
            return read_error(r, err);
        case JSONL_SYNTAX:
            emb_fail(err, EMB_ERR_FORMAT, "%s line %llu: %s (column %llu)", r->path, (unsigned long long)r->lineno,
                     why, (unsigned long long)at + 1);
            return -1;
        }
    }
}

void io_reader_progress(const io_reader *r, uint64_t *consumed, uint64_t *size) {
    *consumed = r->consumed;
    *size = r->size;
}

void io_reader_want_int_field(io_reader *r, const char *name) {
    if (r->fmt == IO_IN_JSONL) r->doc.aux_key = name;
}

emb_status io_reader_int_field(const io_reader *r, const char *name, int64_t *out, emb_error *err) {
    if (r->fmt != IO_IN_JSONL)
        return emb_fail(err, EMB_ERR_INVALID_ARG, "%s: an id field needs JSONL input", r->path);
    if (!r->doc.aux_key || strcmp(r->doc.aux_key, name))
        return emb_fail(err, EMB_ERR_INTERNAL, "%s: io_reader_want_int_field(\"%s\") was not called", r->path, name);
    char *end = NULL;
    double d = r->doc.aux_found == 1 ? strtod(r->doc.aux_num, &end) : 0.5;
    if (r->doc.aux_found != 1 || !end || *end || d != floor(d) || fabs(d) > 9007199254740992.0)
        return emb_fail(err, EMB_ERR_FORMAT, "%s line %llu: field \"%s\" is %s", r->path,
                        (unsigned long long)r->lineno, name, r->doc.aux_found ? "not an integer" : "missing");
    *out = (int64_t)d;
    return EMB_OK;
}

void io_reader_close(io_reader *r) {
    if (!r) return;
    if (r->f && !r->is_stdin) fclose(r->f);
    free(r->line);
    free(r->in);
    free(r->doc.buf);
    free(r->field);
    free(r->path);
    free(r);
}

/* ---- output files ------------------------------------------------------- */

/* Temporary files in flight, by name, so that a signal handler can remove
 * them without allocating (io_remove_temp_files). Slots are taken and freed
 * by the thread that opens and closes outputs. */
#define IO_TEMP_SLOTS 8
#define IO_TEMP_PREFIX ".embedc-"
static char io_temp_names[IO_TEMP_SLOTS][PATH_MAX];
static volatile sig_atomic_t io_temp_used[IO_TEMP_SLOTS];

void io_remove_temp_files(void) {
    for (int i = 0; i < IO_TEMP_SLOTS; i++)
        if (io_temp_used[i]) unlink(io_temp_names[i]);
}

struct io_out {
    FILE *f;            /* what the caller writes: the temp file, the node, or the spool */
    FILE *node;         /* a device or FIFO written in place (NULL otherwise) */
    int slot;           /* io_temp_names slot of the temp file, or -1 */
    int is_stdout;
    char *path;
};

/* Follows a chain of symbolic links to the name they finally designate,
 * which may not exist yet (a dangling link names the file to create). */
static char *resolve_links(const char *path, emb_error *err) {
    char *p = strdup(path);
    for (int hops = 0; p; hops++) {
        struct stat sb;
        if (lstat(p, &sb) != 0 || !S_ISLNK(sb.st_mode)) return p;
        if (hops == 40) {
            emb_fail(err, EMB_ERR_IO, "cannot write output %s: %s", path, strerror(ELOOP));
            free(p);
            return NULL;
        }
        char target[PATH_MAX];
        ssize_t n = readlink(p, target, sizeof target - 1);
        if (n < 0) {
            emb_fail(err, EMB_ERR_IO, "cannot write output %s: %s", path, strerror(errno));
            free(p);
            return NULL;
        }
        target[n] = 0;
        const char *slash = strrchr(p, '/');
        size_t dir = target[0] == '/' || !slash ? 0 : (size_t)(slash - p) + 1;
        char *q = malloc(dir + (size_t)n + 1);
        if (q) {
            memcpy(q, p, dir);
            memcpy(q + dir, target, (size_t)n + 1);
        }
        free(p);
        p = q;
    }
    emb_fail(err, EMB_ERR_NOMEM, "out of memory");
    return NULL;
}

/* A PID means something only on the machine (and PID namespace) that made
 * it: the name also carries a hash of the host name, so that a directory
 * shared over NFS or between containers is cleaned only of our own host's
 * leftovers. */
static unsigned host_tag(void) {
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    unsigned h = 2166136261u;      /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)host; *p; p++) h = (h ^ *p) * 16777619u;
    return h;
}

int io_temp_name_prefix(long pid, char *buf, size_t n) {
    return snprintf(buf, n, IO_TEMP_PREFIX "%ld-%08x-", pid, host_tag());
}

/* Removes temp files of embedc processes that no longer exist (killed by
 * SIGKILL or a crash): ".embedc-PID-HOST-XXXXXX" of this host whose PID
 * answers ESRCH. */
static void remove_stale_temps(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    char tag[16];
    snprintf(tag, sizeof tag, "-%08x-", host_tag());
    size_t pre = strlen(IO_TEMP_PREFIX);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *n = e->d_name;
        if (strncmp(n, IO_TEMP_PREFIX, pre) != 0 || !isdigit((unsigned char)n[pre])) continue;
        char *end;
        errno = 0;
        long pid = strtol(n + pre, &end, 10);
        if (errno || pid <= 0 || pid == (long)getpid() || strncmp(end, tag, 10) != 0 || strlen(end + 10) != 6)
            continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
        struct stat sb;
        if (fstatat(dirfd(d), n, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(sb.st_mode))
            unlinkat(dirfd(d), n, 0);
    }
    closedir(d);
}

/* A temporary file in the directory of `target`, with a short name (the
 * target's own name may already be NAME_MAX long) that carries our PID. */
static emb_status open_temp(io_out *o, const char *target, const struct stat *existing,
                            emb_error *err) {
    const char *slash = strrchr(target, '/');
    char dir[PATH_MAX];
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == target) snprintf(dir, sizeof dir, "/");
    else if ((size_t)(slash - target) >= sizeof dir)
        return emb_fail(err, EMB_ERR_IO, "cannot create output %s: %s", o->path, strerror(ENAMETOOLONG));
    else snprintf(dir, sizeof dir, "%.*s", (int)(slash - target), target);
    int slot = -1;
    for (int i = 0; i < IO_TEMP_SLOTS && slot < 0; i++)
        if (!io_temp_used[i]) slot = i;
    if (slot < 0) return emb_fail(err, EMB_ERR_INTERNAL, "too many outputs open at once");
    remove_stale_temps(dir);
    char *name = io_temp_names[slot], prefix[64];
    io_temp_name_prefix((long)getpid(), prefix, sizeof prefix);
    int n = snprintf(name, PATH_MAX, "%s/%sXXXXXX", dir, prefix);
    if (n < 0 || n >= PATH_MAX)
        return emb_fail(err, EMB_ERR_IO, "cannot create output %s: %s", o->path, strerror(ENAMETOOLONG));
    int fd = mkstemp(name);
    if (fd < 0) return emb_fail(err, EMB_ERR_IO, "cannot create output %s: %s", o->path, strerror(errno));
    io_temp_used[slot] = 1;
    o->slot = slot;
    /* mkstemp makes the file 0600: give it the mode the target has, or the
     * one a plain creation would get. */
    mode_t mode;
    if (existing) {
        mode = existing->st_mode & 07777;
    } else {
        mode_t mask = umask(0);
        umask(mask);
        mode = 0666 & ~mask;
    }
    if (fchmod(fd, mode) != 0 || !(o->f = fdopen(fd, "wb"))) {
        emb_status st = emb_fail(err, EMB_ERR_IO, "cannot create output %s: %s", o->path, strerror(errno));
        if (!o->f) close(fd);
        return st;
    }
    return EMB_OK;
}

/* An anonymous file in $TMPDIR (else /tmp), gone when closed or killed. */
static FILE *spool_file(void) {
    const char *dir = getenv("TMPDIR");
    char name[PATH_MAX];
    int n = snprintf(name, sizeof name, "%s/" IO_TEMP_PREFIX "spool-XXXXXX", dir && *dir ? dir : "/tmp");
    if (n < 0 || (size_t)n >= sizeof name) {
        errno = ENAMETOOLONG;
        return NULL;
    }
    int fd = mkstemp(name);
    if (fd < 0) return NULL;
    unlink(name);
    FILE *f = fdopen(fd, "w+b");
    if (!f) close(fd);
    return f;
}

emb_status io_out_open(const char *path, int seekable, io_out **out, emb_error *err) {
    io_out *o = calloc(1, sizeof *o);
    if (!o || !(o->path = strdup(strcmp(path, "-") == 0 ? "standard output" : path))) {
        free(o);
        return emb_fail(err, EMB_ERR_NOMEM, "out of memory");
    }
    o->slot = -1;
    emb_status st = EMB_OK;
    char *target = NULL;
    if (strcmp(path, "-") == 0) {
        o->f = stdout;
        o->is_stdout = 1;
        *out = o;
        return EMB_OK;
    }
    if (!(target = resolve_links(path, err))) { st = err ? err->code : EMB_ERR_IO; goto fail; }
    struct stat sb;
    int exists = stat(target, &sb) == 0;
    if (exists && S_ISDIR(sb.st_mode)) {
        st = emb_fail(err, EMB_ERR_IO, "cannot write output %s: it is a directory", path);
    } else if (exists && !S_ISREG(sb.st_mode)) {
        /* A device, FIFO or socket: stream into it, never replace it. */
        if (!(o->node = fopen(target, "wb"))) {
            st = emb_fail(err, EMB_ERR_IO, "cannot open output %s: %s", path, strerror(errno));
        } else if (seekable && lseek(fileno(o->node), 0, SEEK_CUR) < 0) {
            /* The .npy header is patched at the end: spool, then copy. */
            if (!(o->f = spool_file()))
                st = emb_fail(err, EMB_ERR_IO, "cannot create a spool file for %s: %s", path, strerror(errno));
        } else {
            o->f = o->node;
        }
    } else {
        st = open_temp(o, target, exists ? &sb : NULL, err);
        if (st == EMB_OK) {
            free(o->path);
            o->path = target;    /* renamed over the link's target, not the link */
            target = NULL;
        }
    }
    free(target);
    if (st != EMB_OK) goto fail;
    *out = o;
    return EMB_OK;
fail:
    io_out_close(o);
    return st;
}

FILE *io_out_stream(io_out *o) { return o->f; }
const char *io_out_path(const io_out *o) { return o->path; }

static emb_status copy_spool(io_out *o, emb_error *err) {
    char buf[1 << 16];
    size_t n;
    if (fseek(o->f, 0, SEEK_SET) != 0)
        return emb_fail(err, EMB_ERR_IO, "reading the spool file of %s: %s", o->path, strerror(errno));
    while ((n = fread(buf, 1, sizeof buf, o->f)) > 0)
        if (fwrite(buf, 1, n, o->node) != n)
            return emb_fail(err, EMB_ERR_IO, "writing %s: %s", o->path, strerror(errno));
    if (ferror(o->f))
        return emb_fail(err, EMB_ERR_IO, "reading the spool file of %s: %s", o->path, strerror(errno));
    return EMB_OK;
}

emb_status io_out_commit(io_out *o, emb_error *err) {
    if (o->is_stdout) {
        if (fflush(stdout) != 0 || ferror(stdout))
            return emb_fail(err, EMB_ERR_IO, "writing standard output: %s", strerror(errno ? errno : EIO));
        return EMB_OK;
    }
    errno = 0;
    if (fflush(o->f) != 0 || ferror(o->f))
        return emb_fail(err, EMB_ERR_IO, "writing %s: %s", o->path, strerror(errno ? errno : EIO));
    if (o->node) {
        if (o->f != o->node) {
            emb_status st = copy_spool(o, err);
            if (st != EMB_OK) return st;
            fclose(o->f);
            o->f = o->node;
        }
        o->node = NULL;
        int rc = fclose(o->f);
        o->f = NULL;
        if (rc != 0) return emb_fail(err, EMB_ERR_IO, "writing %s: %s", o->path, strerror(errno));
        return EMB_OK;
    }
    if (fsync(fileno(o->f)) != 0)
        return emb_fail(err, EMB_ERR_IO, "writing %s: %s", o->path, strerror(errno));
    int rc = fclose(o->f);
    o->f = NULL;
    if (rc != 0) return emb_fail(err, EMB_ERR_IO, "writing %s: %s", o->path, strerror(errno));
    if (rename(io_temp_names[o->slot], o->path) != 0)
        return emb_fail(err, EMB_ERR_IO, "cannot move %s into place as %s: %s", io_temp_names[o->slot],
                        o->path, strerror(errno));
    io_temp_used[o->slot] = 0;
    o->slot = -1;
    return EMB_OK;
}

void io_out_close(io_out *o) {
    if (!o) return;
    if (o->f && !o->is_stdout) fclose(o->f);
    if (o->node && o->node != o->f) fclose(o->node);
    if (o->slot >= 0) {
        io_temp_used[o->slot] = 0;
        unlink(io_temp_names[o->slot]);
    }
    free(o->path);
    free(o);
}

emb_status io_check_not_input(const char *input, const char *output, emb_error *err) {
    struct stat in, out;
    if (strcmp(output, "-") == 0 || stat(output, &out) != 0 || !S_ISREG(out.st_mode)) return EMB_OK;
    int got = strcmp(input, "-") == 0 ? fstat(0, &in) : stat(input, &in);
    if (got == 0 && in.st_dev == out.st_dev && in.st_ino == out.st_ino)
        return emb_fail(err, EMB_ERR_INVALID_ARG,
                        "output %s is the same file as the input (%s): writing it would destroy the input",
                        output, strcmp(input, "-") == 0 ? "standard input" : input);
    return EMB_OK;
}

/* ---- writers ---------------------------------------------------------- */

#define NPY_HEADER_BYTES 128    /* fixed, so the shape can be patched in place */

struct io_writer {
    io_out *out;
    FILE *f;                    /* io_out_stream(out) */
    io_out_format fmt;
    int dim;
    uint64_t rows;
    const char *path;           /* io_out_path(out) */
    char *buf;                  /* formatting buffer */
    size_t buf_cap;
};

int io_parse_out_format(const char *name, const char *path, io_out_format *fmt) {
    if (!name) {
        if (path && has_suffix(path, ".fvecs")) *fmt = IO_OUT_FVECS;
        else if (path && (has_suffix(path, ".jsonl") || strcmp(path, "-") == 0)) *fmt = IO_OUT_JSONL;
        else *fmt = IO_OUT_NPY;
        return 0;
    }
    if (!strcmp(name, "npy") || !strcmp(name, "npy32")) *fmt = IO_OUT_NPY;
    else if (!strcmp(name, "npy16") || !strcmp(name, "npy-f16")) *fmt = IO_OUT_NPY_F16;
    else if (!strcmp(name, "fvecs")) *fmt = IO_OUT_FVECS;
    else if (!strcmp(name, "jsonl")) *fmt = IO_OUT_JSONL;
    else return -1;
    return 0;
}

static emb_status write_all(io_writer *w, const void *p, size_t n, emb_error *err) {
    if (n && fwrite(p, 1, n, w->f) != n)
        return emb_fail(err, EMB_ERR_IO, "writing %s: %s", w->path, strerror(errno ? errno : EIO));
    return EMB_OK;
}

static emb_status npy_header(io_writer *w, emb_error *err) {
    char h[NPY_HEADER_BYTES];
    memset(h, ' ', sizeof h);
    memcpy(h, "\x93NUMPY\x01\x00", 8);
    h[8] = (char)((NPY_HEADER_BYTES - 10) & 0xff);
    h[9] = (char)((NPY_HEADER_BYTES - 10) >> 8);
    char dict[NPY_HEADER_BYTES];
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (%llu, %d), }",
                     w->fmt == IO_OUT_NPY_F16 ? "<f2" : "<f4", (unsigned long long)w->rows, w->dim);
    if (n < 0 || n > NPY_HEADER_BYTES - 11)
        return emb_fail(err, EMB_ERR_INTERNAL, "npy header too long");
    memcpy(h + 10, dict, (size_t)n);
    h[NPY_HEADER_BYTES - 1] = '\n';
    return write_all(w, h, sizeof h, err);
}

emb_status io_writer_open(const char *path, io_out_format fmt, int dim, io_writer **out,
                          emb_error *err) {
    int npy = fmt == IO_OUT_NPY || fmt == IO_OUT_NPY_F16;
    if (strcmp(path, "-") == 0 && fmt != IO_OUT_JSONL)
        return emb_fail(err, EMB_ERR_INVALID_ARG, "only --format jsonl can be written to standard output");
    io_writer *w = calloc(1, sizeof *w);
    if (!w) return emb_fail(err, EMB_ERR_NOMEM, "out of memory");
    w->fmt = fmt;
    w->dim = dim;
    emb_status st = io_out_open(path, npy, &w->out, err);
    if (st == EMB_OK) {
        w->f = io_out_stream(w->out);
        w->path = io_out_path(w->out);
        if (npy) st = npy_header(w, err);
    }
    if (st != EMB_OK) {
        io_writer_close(w);
        return st;
    }
    *out = w;
    return EMB_OK;
}

uint16_t io_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t exp = (x >> 23) & 0xffu, man = x & 0x7fffffu;
    if (exp == 0xff) return (uint16_t)(sign | 0x7c00u | (man ? 0x200u : 0));
    int e = (int)exp - 127 + 15;
    if (e >= 31) return (uint16_t)(sign | 0x7c00u);
    if (e <= 0) {
        if (e < -10) return (uint16_t)sign;
        man |= 0x800000u;
        int shift = 14 - e;
        uint32_t half = man >> shift, rem = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = ((uint32_t)e << 10) | (man >> 13);
    uint32_t rem = man & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (half & 1))) half++;   /* may carry into inf: correct */
    return (uint16_t)(sign | half);
}

static int grow(io_writer *w, size_t need) {
    if (need <= w->buf_cap) return 0;
    char *b = realloc(w->buf, need);
    if (!b) return -1;
    w->buf = b;
    w->buf_cap = need;
    return 0;
}

emb_status io_writer_write(void *writer, uint64_t first, size_t n, const float *vecs, int dim,
                           emb_error *err) {
    io_writer *w = writer;
    if (dim != w->dim || first != w->rows)
        return emb_fail(err, EMB_ERR_INTERNAL, "writer got rows %llu.. of width %d, expected %llu.. of %d",
                        (unsigned long long)first, dim, (unsigned long long)w->rows, w->dim);
    size_t d = (size_t)dim;
    emb_status st = EMB_OK;
    for (size_t i = 0; i < n && st == EMB_OK; i++) {
        const float *v = vecs + i * d;
        switch (w->fmt) {
        case IO_OUT_NPY:
            st = write_all(w, v, d * sizeof *v, err);
            break;
        case IO_OUT_NPY_F16: {
            if (grow(w, d * 2)) return emb_fail(err, EMB_ERR_NOMEM, "out of memory");
            uint16_t *h = (uint16_t *)(void *)w->buf;
            for (size_t k = 0; k < d; k++) h[k] = io_f32_to_f16(v[k]);
            st = write_all(w, h, d * 2, err);
            break;
        }
        case IO_OUT_FVECS: {
            int32_t dd = dim;
            st = write_all(w, &dd, 4, err);
            if (st == EMB_OK) st = write_all(w, v, d * sizeof *v, err);
            break;
        }
        case IO_OUT_JSONL: {
            if (grow(w, 64 + d * 18)) return emb_fail(err, EMB_ERR_NOMEM, "out of memory");
            size_t k = (size_t)sprintf(w->buf, "{\"index\": %llu, \"embedding\": [",
                                       (unsigned long long)(first + i));
            for (size_t j = 0; j < d; j++) {
                /* %.9g round-trips every float32; JSON has no NaN/Inf. */
                if (isfinite(v[j])) k += (size_t)sprintf(w->buf + k, "%s%.9g", j ? ", " : "", (double)v[j]);
                else k += (size_t)sprintf(w->buf + k, "%snull", j ? ", " : "");
            }
            k += (size_t)sprintf(w->buf + k, "]}\n");
            st = write_all(w, w->buf, k, err);
            break;
        }
        }
        if (st == EMB_OK) w->rows++;
    }
    return st;
}

emb_status io_writer_commit(io_writer *w, emb_error *err) {
    if (w->fmt == IO_OUT_NPY || w->fmt == IO_OUT_NPY_F16) {
        if (fseek(w->f, 0, SEEK_SET) != 0)
            return emb_fail(err, EMB_ERR_IO, "writing %s: %s", w->path, strerror(errno));
        emb_status st = npy_header(w, err);
        if (st != EMB_OK) return st;
    }
    return io_out_commit(w->out, err);
}

void io_writer_close(io_writer *w) {
    if (!w) return;
    io_out_close(w->out);
    free(w->buf);
    free(w);
}
