/*
 * Reading static embedding tables (see static_vectors.h). Word-vector files
 * are mapped once and parsed straight into one fp32 array and a hash of the
 * words; every malformed input (truncated binary, a row of the wrong width, a
 * header whose counts the file contradicts, a word that is not UTF-8) is an
 * error naming the file and line. model2vec and StaticEmbedding directories
 * go through the safetensors reader, their config and tokenizer.json.
 */
#include "static_vectors.h"

#include <errno.h>
#include <math.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utf8proc.h>

#include "error.h"
#include "json_util.h"
#include "model_files.h"
#include "safetensors.h"

#define SV_MAX_DIM 65536
#define SV_MODEL2VEC_DEFAULT_MAX_LENGTH 512   /* model2vec's DEFAULT_MAX_LENGTH */

const char *emb_sv_format_name(sv_format f) {
    switch (f) {
    case SV_WORD2VEC_BIN: return "word2vec binary";
    case SV_WORD2VEC_TEXT: return "word2vec text";
    case SV_FASTTEXT_BIN: return "fastText binary";
    case SV_GLOVE_TEXT: return "GloVe text";
    case SV_MODEL2VEC: return "model2vec";
    case SV_ST_STATIC: return "sentence-transformers StaticEmbedding";
    }
    return "?";
}

int emb_sv_is_word_format(const emb_static_vectors *sv) {
    return sv->format == SV_WORD2VEC_BIN || sv->format == SV_WORD2VEC_TEXT ||
           sv->format == SV_GLOVE_TEXT || sv->format == SV_FASTTEXT_BIN;
}

void emb_sv_free(emb_static_vectors *sv) {
    if (!sv) return;
    free(sv->path);
    free(sv->vecs);
    free(sv->words);
    free(sv->word_off);
    free(sv->slots);
    free(sv->mapping);
    free(sv->weights);
    free(sv);
}

/* ---- the word hash ------------------------------------------------------ */

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;   /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

int64_t emb_sv_lookup(const emb_static_vectors *sv, const char *word, size_t len) {
    if (!sv->slots) return -1;
    for (size_t i = hash_bytes(word, len) & sv->slot_mask;; i = (i + 1) & sv->slot_mask) {
        uint32_t s = sv->slots[i];
        if (!s) return -1;
        const char *w = emb_sv_word(sv, s - 1);
        if (strncmp(w, word, len) == 0 && w[len] == 0) return (int64_t)s - 1;
    }
}

/* ---- parsing word-vector files ------------------------------------------ */

typedef struct {
    const char *path;
    const char *buf;
    size_t size;
    emb_static_vectors *sv;
    size_t cap_rows;           /* rows allocated in vecs/word_off */
    size_t words_len, words_cap;
} sv_parse;

static emb_status grow_rows(sv_parse *p, size_t need, emb_error *err) {
    emb_static_vectors *sv = p->sv;
    if (need <= p->cap_rows) return EMB_OK;
    size_t cap = p->cap_rows ? p->cap_rows : 1024, bytes;
    while (cap < need) cap *= 2;
    if (!emb_mul_ok(cap, (size_t)sv->dim * sizeof(float), &bytes))
        return emb_fail(err, EMB_ERR_NOMEM, "%s: too many rows", p->path);
    float *v = realloc(sv->vecs, bytes);
    if (v) sv->vecs = v;
    size_t *o = realloc(sv->word_off, cap * sizeof *o);
    if (o) sv->word_off = o;
    if (!v || !o) return emb_fail(err, EMB_ERR_NOMEM, "%s: out of memory at %zu rows", p->path, cap);
    p->cap_rows = cap;
    return EMB_OK;
}

static emb_status build_hash(sv_parse *p, emb_error *err);

/* Checks the word bytes (UTF-8, no NUL) and appends it; line is for messages. */
static emb_status add_word(sv_parse *p, const char *w, size_t n, size_t line, emb_error *err) {
    if (n == 0) return emb_fail(err, EMB_ERR_FORMAT, "%s:%zu: empty word", p->path, line);
    size_t i = 0;
    while (i < n) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)w + i, (utf8proc_ssize_t)(n - i), &cp);
        if (k <= 0 || cp == 0)
            return emb_fail(err, EMB_ERR_FORMAT, "%s:%zu: the word is not valid UTF-8 (byte %zu of \"%.*s\")",
                            p->path, line, i + 1, (int)(n < 40 ? n : 40), w);
        utf8proc_category_t c = utf8proc_category(cp);
        if (c == UTF8PROC_CATEGORY_LU || c == UTF8PROC_CATEGORY_LT) p->sv->has_upper = 1;
        i += (size_t)k;
    }
    if (p->words_len + n + 1 > p->words_cap) {
        size_t cap = p->words_cap ? p->words_cap : 65536;
        while (cap < p->words_len + n + 1) cap *= 2;
        char *nw = realloc(p->sv->words, cap);
        if (!nw) return emb_fail(err, EMB_ERR_NOMEM, "%s: out of memory for the vocabulary", p->path);
        p->sv->words = nw;
        p->words_cap = cap;
    }
    p->sv->word_off[p->sv->rows] = p->words_len;
    memcpy(p->sv->words + p->words_len, w, n);
    p->sv->words[p->words_len + n] = 0;
    p->words_len += n + 1;
    return EMB_OK;
}

/* Parses one text line's numbers into out (at most max); returns the count,
 * or -1 with *bad pointing at a token that is not a number. */
static long parse_floats(const char *s, const char *end, float *out, long max, const char **bad) {
    long n = 0;
    char tmp[64];
    while (s < end) {
        while (s < end && (*s == ' ' || *s == '\t')) s++;
        if (s >= end) break;
        const char *t = s;
        while (t < end && *t != ' ' && *t != '\t') t++;
        size_t len = (size_t)(t - s);
        if (len >= sizeof tmp) { *bad = s; return -1; }
        memcpy(tmp, s, len);
        tmp[len] = 0;
        char *e;
        float v = strtof(tmp, &e);
        if (e != tmp + len) { *bad = s; return -1; }
        if (n < max) out[n] = v;
        n++;
        s = t;
    }
    return n;
}

static int parse_header(const char *s, const char *end, unsigned long long *count, long *dim) {
    char tmp[64];
    size_t len = (size_t)(end - s);
    if (len == 0 || len >= sizeof tmp) return 0;
    memcpy(tmp, s, len);
    tmp[len] = 0;
    char extra;
    return sscanf(tmp, "%llu %ld %c", count, dim, &extra) == 2;
}

static const char *line_end(const char *s, const char *end) {
    const char *e = memchr(s, '\n', (size_t)(end - s));
    return e ? e : end;
}

/* Text rows: "word v1 ... vdim". count_hint > 0 when a header gave one. */
static emb_status parse_text(sv_parse *p, const char *s, size_t first_line, int has_header,
                             unsigned long long count, emb_error *err) {
    const char *end = p->buf + p->size;
    emb_static_vectors *sv = p->sv;
    size_t line = first_line, parsed = 0;
    float *row_tmp = malloc((size_t)SV_MAX_DIM * sizeof *row_tmp);
    if (!row_tmp) return emb_fail(err, EMB_ERR_NOMEM, "out of memory");
    emb_status st = EMB_OK;
    while (s < end) {
        const char *e = line_end(s, end), *le = e;
        while (le > s && (le[-1] == '\r' || le[-1] == ' ' || le[-1] == '\t')) le--;
        if (le == s) {   /* blank line: only allowed at the very end */
            const char *q = e;
            while (q < end && (*q == '\n' || *q == '\r' || *q == ' ' || *q == '\t')) q++;
            if (q < end) { st = emb_fail(err, EMB_ERR_FORMAT, "%s:%zu: empty line", p->path, line); goto done; }
            break;
        }
        if (has_header && parsed == count) {
            st = emb_fail(err, EMB_ERR_FORMAT, "%s:%zu: more rows than the header (line 1) announces (%llu)",
                          p->path, line, count);
            goto done;
        }
        const char *sp = s;
        while (sp < le && *sp != ' ' && *sp != '\t') sp++;
        const char *bad = NULL;
        long n = parse_floats(sp, le, row_tmp, SV_MAX_DIM, &bad);
        if (n < 0) {
            const char *be = bad;
            while (be < le && *be != ' ') be++;
            st = emb_fail(err, EMB_ERR_FORMAT, "%s:%zu: \"%.*s\" is not a number", p->path, line,
                          (int)(be - bad < 40 ? be - bad : 40), bad);
            goto done;
        }
        if (sv->dim == 0) {
            if (n < 1 || n > SV_MAX_DIM) {
                st = emb_fail(err, EMB_ERR_FORMAT, "%s:%zu: a row needs a word and 1..%d numbers, found %ld",
                              p->path, line, SV_MAX_DIM, n);
                goto done;
            }
            sv->dim = (int)n;
        }
        if (n != sv->dim) {
            st = emb_fail(err, EMB_ERR_FORMAT, "%s:%zu: row of %ld values, expected %d (word \"%.*s\")",
                          p->path, line, n, sv->dim, (int)(sp - s < 40 ? sp - s : 40), s);
            goto done;
        }
        if ((st = grow_rows(p, sv->rows + 1, err)) != EMB_OK) goto done;
        if ((st = add_word(p, s, (size_t)(sp - s), line, err)) != EMB_OK) goto done;
        memcpy(sv->vecs + sv->rows * (size_t)sv->dim, row_tmp, (size_t)sv->dim * sizeof(float));
        sv->rows++;
        parsed++;
        line++;
        s = e < end ? e + 1 : end;
    }
    if (has_header && parsed != count)
        st = emb_fail(err, EMB_ERR_FORMAT, "%s: the header (line 1) says %llu words but the file has %zu "
                      "(it ends at line %zu)", p->path, count, parsed, line - 1);
done:
    free(row_tmp);
    return st;
}

/* word2vec binary records: "word " + dim little-endian float32, records
 * separated by an optional '\n' (word2vec.c writes it, gensim does not). */
static emb_status parse_binary(sv_parse *p, const char *s, unsigned long long count, emb_error *err) {
    const char *end = p->buf + p->size;
    emb_static_vectors *sv = p->sv;
    size_t vbytes = (size_t)sv->dim * sizeof(float);
    emb_status st = grow_rows(p, count ? (size_t)count : 1, err);
    if (st != EMB_OK) return st;
    for (unsigned long long k = 0; k < count; k++) {
        size_t line = (size_t)k + 2;
        while (s < end && *s == '\n') s++;
        const char *sp = s;
        while (sp < end && *sp != ' ') {
            if (*sp == '\n' || sp - s > 4096) break;
            sp++;
        }
        if (sp >= end || *sp != ' ')
            return emb_fail(err, EMB_ERR_FORMAT, "%s:%zu: truncated or malformed binary record %llu of %llu "
                            "(no space after the word at byte %zu)", p->path, line, k + 1, count,
                            (size_t)(s - p->buf));
        if ((size_t)(end - (sp + 1)) < vbytes)
            return emb_fail(err, EMB_ERR_FORMAT, "%s:%zu: truncated: word %llu of %llu (\"%.*s\") needs %zu bytes "
                            "of vector, %zu remain", p->path, line, k + 1, count,
                            (int)(sp - s < 40 ? sp - s : 40), s, vbytes, (size_t)(end - (sp + 1)));
        if ((st = add_word(p, s, (size_t)(sp - s), line, err)) != EMB_OK) return st;
        memcpy(sv->vecs + sv->rows * (size_t)sv->dim, sp + 1, vbytes);
        sv->rows++;
        s = sp + 1 + vbytes;
    }
    while (s < end && (*s == '\n' || *s == ' ' || *s == '\r')) s++;
    if (s < end)
        return emb_fail(err, EMB_ERR_FORMAT, "%s: %zu bytes follow the %llu records the header (line 1) "
                        "announces: the header lies about the count or the dimension", p->path,
                        (size_t)(end - s), count);
    return EMB_OK;
}

/* Duplicated words keep their first row (as gensim does): rows are compacted. */
static emb_status build_hash(sv_parse *p, emb_error *err) {
    emb_static_vectors *sv = p->sv;
    size_t cap = 16;
    while (cap < (sv->format == SV_FASTTEXT_BIN ? sv->n_words : sv->rows) * 2) cap *= 2;
    if (sv->rows >= UINT32_MAX - 1) return emb_fail(err, EMB_ERR_UNSUPPORTED, "%s: too many words", p->path);
    sv->slots = calloc(cap, sizeof *sv->slots);
    if (!sv->slots) return emb_fail(err, EMB_ERR_NOMEM, "%s: out of memory for the word hash", p->path);
    sv->slot_mask = cap - 1;
    size_t out = 0;
    size_t words = sv->format == SV_FASTTEXT_BIN ? sv->n_words : sv->rows;
    for (size_t r = 0; r < words; r++) {
        const char *w = sv->words + sv->word_off[r];
        size_t len = strlen(w);
        if (emb_sv_lookup(sv, w, len) >= 0) {
            if (sv->format == SV_FASTTEXT_BIN) return emb_fail(err, EMB_ERR_FORMAT, "%s: word \"%s\" repeats", p->path, w);
            sv->skipped_duplicates++;
            continue;
        }
        if (out != r) {
            sv->word_off[out] = sv->word_off[r];
            memmove(sv->vecs + out * (size_t)sv->dim, sv->vecs + r * (size_t)sv->dim,
                    (size_t)sv->dim * sizeof(float));
        }
        size_t i = hash_bytes(w, len) & sv->slot_mask;
        while (sv->slots[i]) i = (i + 1) & sv->slot_mask;
        sv->slots[i] = (uint32_t)out + 1;
        out++;
    }
    if (sv->format != SV_FASTTEXT_BIN) sv->rows = sv->n_ids = out;
    sv->n_words = out;
    return EMB_OK;
}

static int looks_binary_name(const char *path) {
    size_t n = strlen(path);
    return n > 4 && strcmp(path + n - 4, ".bin") == 0;
}

static emb_status load_word_file(const char *path, emb_static_vectors *sv, emb_error *err) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return emb_fail(err, EMB_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat stt;
    if (fstat(fd, &stt) != 0 || stt.st_size == 0) {
        close(fd);
        return emb_fail(err, EMB_ERR_FORMAT, "%s: empty file", path);
    }
    size_t size = (size_t)stt.st_size;
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return emb_fail(err, EMB_ERR_IO, "cannot map %s: %s", path, strerror(errno));
    madvise(map, size, MADV_SEQUENTIAL);
    sv_parse p = {path, map, size, sv, 0, 0, 0};
    const char *buf = map, *end = buf + size;
    const char *e1 = line_end(buf, end);
    unsigned long long count = 0;
    long dim = 0;
    emb_status st;
    if (parse_header(buf, e1 > buf && e1[-1] == '\r' ? e1 - 1 : e1, &count, &dim)) {
        if (dim < 1 || dim > SV_MAX_DIM) {
            st = emb_fail(err, EMB_ERR_FORMAT, "%s:1: dimension %ld out of range 1..%d", path, dim, SV_MAX_DIM);
            goto done;
        }
        if (count > size) {   /* every record takes at least a byte */
            st = emb_fail(err, EMB_ERR_FORMAT, "%s:1: the header says %llu words, more than the file's %zu bytes "
                          "could hold", path, count, size);
            goto done;
        }
        sv->dim = (int)dim;
        const char *body = e1 < end ? e1 + 1 : end;
        /* Text or binary: the first record decides (it parses as dim numbers or not). */
        int binary = looks_binary_name(path);
        if (!binary && body < end) {
            const char *e2 = line_end(body, end), *sp = body, *bad;
            while (sp < e2 && *sp != ' ') sp++;
            float probe[1];
            const char *le = e2;
            while (le > sp && (le[-1] == '\r' || le[-1] == ' ')) le--;
            binary = parse_floats(sp, le, probe, 1, &bad) != dim;
        }
        sv->format = binary ? SV_WORD2VEC_BIN : SV_WORD2VEC_TEXT;
        st = binary ? parse_binary(&p, body, count, err) : parse_text(&p, body, 2, 1, count, err);
    } else {
        sv->format = SV_GLOVE_TEXT;
        st = parse_text(&p, buf, 1, 0, 0, err);
        if (st == EMB_OK && sv->rows == 0) st = emb_fail(err, EMB_ERR_FORMAT, "%s: no vectors", path);
    }
    if (st == EMB_OK) st = build_hash(&p, err);
done:
    munmap(map, size);
    return st;
}

/* ---- fastText .bin --------------------------------------------------------- */

#define FT_MAGIC 793712314
#define FT_VERSION 12

typedef struct {
    const unsigned char *p, *end;
    const char *path;
} ft_reader;

static int ft_take(ft_reader *r, void *dst, size_t n) {
    if ((size_t)(r->end - r->p) < n) return -1;
    memcpy(dst, r->p, n);
    r->p += n;
    return 0;
}

/* fastText's hash: FNV-1a over the bytes taken as signed chars. */
static uint32_t ft_hash(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint32_t)(int32_t)(int8_t)s[i];
        h *= 16777619u;
    }
    return h;
}

size_t emb_sv_subword_rows(const emb_static_vectors *sv, const char *word, size_t len, int32_t *rows, size_t cap) {
    if (sv->format != SV_FASTTEXT_BIN || sv->maxn <= 0 || sv->bucket == 0 || len > 1024) return 0;
    char w[1030];
    w[0] = '<';
    memcpy(w + 1, word, len);
    w[len + 1] = '>';
    size_t wl = len + 2, k = 0;
    /* Character n-grams of "<word>" (UTF-8 characters, minn..maxn long), as
     * fastText's computeSubwords: single characters at either end skipped. */
    for (size_t i = 0; i < wl; i++) {
        if (((unsigned char)w[i] & 0xC0) == 0x80) continue;
        size_t j = i;
        for (int n = 1; j < wl && n <= sv->maxn; n++) {
            j++;
            while (j < wl && ((unsigned char)w[j] & 0xC0) == 0x80) j++;
            if (n >= sv->minn && !(n == 1 && (i == 0 || j == wl))) {
                if (k < cap) rows[k] = (int32_t)(sv->n_words + ft_hash(w + i, j - i) % sv->bucket);
                k++;
            }
        }
    }
    return k;
}

static emb_status load_fasttext_bin(const char *path, emb_static_vectors *sv, emb_error *err) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return emb_fail(err, EMB_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat stt;
    if (fstat(fd, &stt) != 0) { close(fd); return emb_fail(err, EMB_ERR_IO, "cannot stat %s", path); }
    size_t size = (size_t)stt.st_size;
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return emb_fail(err, EMB_ERR_IO, "cannot map %s: %s", path, strerror(errno));
    ft_reader r = {map, (const unsigned char *)map + size, path};
    sv_parse p = {path, map, size, sv, 0, 0, 0};
    emb_status st = EMB_OK;
    int32_t hdr[2], args[12], dsize, nwords, nlabels;
    double t;
    int64_t ntokens, prune, m, n;
    uint8_t quant;
    sv->format = SV_FASTTEXT_BIN;
    if (ft_take(&r, hdr, 8) || hdr[0] != FT_MAGIC) { st = emb_fail(err, EMB_ERR_FORMAT, "%s: not a fastText .bin", path); goto done; }
    if (hdr[1] > FT_VERSION) { st = emb_fail(err, EMB_ERR_UNSUPPORTED, "%s: fastText format version %d (up to %d known)", path, hdr[1], FT_VERSION); goto done; }
    /* dim ws epoch minCount neg wordNgrams loss model bucket minn maxn lrUpdateRate, t */
    if (ft_take(&r, args, sizeof args) || ft_take(&r, &t, 8) || ft_take(&r, &dsize, 4) || ft_take(&r, &nwords, 4) ||
        ft_take(&r, &nlabels, 4) || ft_take(&r, &ntokens, 8) || ft_take(&r, &prune, 8)) {
        st = emb_fail(err, EMB_ERR_FORMAT, "%s: truncated in the header", path);
        goto done;
    }
    if (args[0] < 1 || args[0] > SV_MAX_DIM || args[8] < 0 || args[9] < 0 || args[10] < 0 || nwords < 0 ||
        nlabels < 0 || dsize != nwords + nlabels) {
        st = emb_fail(err, EMB_ERR_FORMAT, "%s: header out of range (dim %d, bucket %d, minn %d, maxn %d, %d words, "
                      "%d labels, size %d)", path, args[0], args[8], args[9], args[10], nwords, nlabels, dsize);
        goto done;
    }
    if (prune >= 0) { st = emb_fail(err, EMB_ERR_UNSUPPORTED, "%s: pruned (quantized) fastText models are not supported", path); goto done; }
    if ((size_t)dsize > size / 10) {   /* an entry takes at least 10 bytes (NUL, count, type) */
        st = emb_fail(err, EMB_ERR_FORMAT, "%s: the header says %d dictionary entries, more than the file's %zu bytes hold",
                      path, dsize, size);
        goto done;
    }
    sv->dim = args[0];
    sv->bucket = (uint32_t)args[8];
    sv->minn = args[9];
    sv->maxn = args[10];
    sv->n_words = (size_t)nwords;
    if ((st = grow_rows(&p, (size_t)nwords + 1, err)) != EMB_OK) goto done;
    for (int32_t i = 0; i < dsize; i++) {
        const unsigned char *w = r.p, *z = memchr(r.p, 0, (size_t)(r.end - r.p));
        int64_t count;
        int8_t type;
        if (!z) { st = emb_fail(err, EMB_ERR_FORMAT, "%s: truncated in dictionary entry %d", path, i); goto done; }
        r.p = z + 1;
        if (ft_take(&r, &count, 8) || ft_take(&r, &type, 1)) { st = emb_fail(err, EMB_ERR_FORMAT, "%s: truncated in dictionary entry %d", path, i); goto done; }
        if (i < nwords) {
            if (type != 0) { st = emb_fail(err, EMB_ERR_FORMAT, "%s: dictionary entry %d is a label among the words", path, i); goto done; }
            if ((st = add_word(&p, (const char *)w, (size_t)(z - w), (size_t)i + 1, err)) != EMB_OK) goto done;
            sv->rows++;
        }
    }
    if (ft_take(&r, &quant, 1) || ft_take(&r, &m, 8) || ft_take(&r, &n, 8)) { st = emb_fail(err, EMB_ERR_FORMAT, "%s: truncated before the input matrix", path); goto done; }
    if (quant) { st = emb_fail(err, EMB_ERR_UNSUPPORTED, "%s: quantized fastText models (.ftz) are not supported", path); goto done; }
    if (m != (int64_t)nwords + args[8] || n != args[0]) {
        st = emb_fail(err, EMB_ERR_FORMAT, "%s: input matrix is %lld x %lld, expected %lld x %d (words + buckets, dim)",
                      path, (long long)m, (long long)n, (long long)nwords + args[8], args[0]);
        goto done;
    }
    size_t rows = (size_t)m, bytes;
    if (!emb_mul_ok(rows, (size_t)n * sizeof(float), &bytes) || (size_t)(r.end - r.p) < bytes) {
        st = emb_fail(err, EMB_ERR_FORMAT, "%s: truncated in the input matrix (%zu bytes needed)", path, bytes);
        goto done;
    }
    float *vecs = realloc(sv->vecs, bytes ? bytes : 1);
    if (!vecs) { st = emb_fail(err, EMB_ERR_NOMEM, "%s: out of memory for the %zu x %lld input matrix", path, rows, (long long)n); goto done; }
    sv->vecs = vecs;
    memcpy(sv->vecs, r.p, bytes);
    sv->rows = rows;
    sv->n_ids = rows;
    /* Words' vectors as fastText's getWordVector: the word's row and its
     * n-gram rows averaged (n-gram rows follow the words, so they are intact). */
    int32_t *ng = malloc(4096 * sizeof *ng);
    double *acc = malloc((size_t)sv->dim * sizeof *acc);
    if (!ng || !acc) { free(ng); free(acc); st = emb_fail(err, EMB_ERR_NOMEM, "out of memory"); goto done; }
    for (size_t w = 0; w < sv->n_words; w++) {
        const char *word = sv->words + sv->word_off[w];
        size_t k = strcmp(word, "</s>") ? emb_sv_subword_rows(sv, word, strlen(word), ng, 4096) : 0;
        if (k > 4096) k = 4096;
        float *v = sv->vecs + w * (size_t)sv->dim;
        for (int d = 0; d < sv->dim; d++) acc[d] = v[d];
        for (size_t q = 0; q < k; q++)
            for (int d = 0; d < sv->dim; d++) acc[d] += sv->vecs[(size_t)ng[q] * sv->dim + d];
        for (int d = 0; d < sv->dim; d++) v[d] = (float)(acc[d] / (double)(k + 1));
    }
    free(ng);
    free(acc);
    st = build_hash(&p, err);
done:
    munmap(map, size);
    return st;
}

/* ---- token tables (model2vec, StaticEmbedding) -------------------------- */

static int is_file(const char *path) {
    struct stat s;
    return stat(path, &s) == 0 && S_ISREG(s.st_mode);
}

static emb_status tensor_to_floats(const st_tensor *t, const char *shown, float *dst, size_t n,
                                   emb_error *err) {
    emb_tensor v = {t->data, EMB_DTYPE_F32, 1, {(int64_t)n, 0, 0, 0}, t->name};
    switch (t->dtype) {
    case ST_F32: v.dtype = EMB_DTYPE_F32; break;
    case ST_F16: v.dtype = EMB_DTYPE_F16; break;
    case ST_BF16: v.dtype = EMB_DTYPE_BF16; break;
    case ST_I8:
        /* model2vec casts int8 tables to float32 as they are (no scale). */
        for (size_t i = 0; i < n; i++) dst[i] = (float)((const int8_t *)t->data)[i];
        return EMB_OK;
    default:
        return emb_fail(err, EMB_ERR_UNSUPPORTED, "%s: tensor \"%s\" has dtype %s (expected F32, F16, BF16 or I8)",
                        shown, t->name, st_dtype_name(t->dtype));
    }
    emb_tensor_to_f32(&v, dst, n);
    return EMB_OK;
}

static emb_status load_table(const st_file *f, const char *name, const char *shown,
                             emb_static_vectors *sv, emb_error *err) {
    const st_tensor *t = st_find(f, name);
    if (!t) return emb_fail(err, EMB_ERR_FORMAT, "%s: no tensor \"%s\"", shown, name);
    if (t->ndim != 2 || t->shape[0] < 1 || t->shape[1] < 1 || t->shape[1] > SV_MAX_DIM ||
        t->shape[0] >= INT32_MAX)
        return emb_fail(err, EMB_ERR_FORMAT, "%s: tensor \"%s\" must be [rows, dim] with dim <= %d", shown,
                        name, SV_MAX_DIM);
    sv->rows = (size_t)t->shape[0];
    sv->dim = (int)t->shape[1];
    size_t n = sv->rows * (size_t)sv->dim;
    sv->vecs = malloc(n * sizeof *sv->vecs);
    if (!sv->vecs) return emb_fail(err, EMB_ERR_NOMEM, "%s: out of memory for \"%s\"", shown, name);
    sv->n_ids = sv->rows;
    return tensor_to_floats(t, shown, sv->vecs, n, err);
}

static emb_status load_vector1(const st_file *f, const char *name, const char *shown, size_t *len,
                               const st_tensor **out, emb_error *err) {
    const st_tensor *t = st_find(f, name);
    *out = t;
    if (!t) return EMB_OK;
    if (t->ndim != 1 || t->shape[0] < 1 || t->shape[0] >= INT32_MAX)
        return emb_fail(err, EMB_ERR_FORMAT, "%s: tensor \"%s\" must be one-dimensional", shown, name);
    *len = (size_t)t->shape[0];
    return EMB_OK;
}

static emb_status load_mapping_weights(const st_file *f, const char *shown, emb_static_vectors *sv,
                                       emb_error *err) {
    const st_tensor *mt, *wt;
    size_t mlen = 0, wlen = 0;
    emb_status st = load_vector1(f, "mapping", shown, &mlen, &mt, err);
    if (st == EMB_OK) st = load_vector1(f, "weights", shown, &wlen, &wt, err);
    if (st != EMB_OK) return st;
    if (mt) {
        if (mt->dtype != ST_I64 && mt->dtype != ST_I32)
            return emb_fail(err, EMB_ERR_FORMAT, "%s: \"mapping\" has dtype %s (expected I64 or I32)", shown,
                            st_dtype_name(mt->dtype));
        sv->mapping = malloc(mlen * sizeof *sv->mapping);
        if (!sv->mapping) return emb_fail(err, EMB_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < mlen; i++) {
            int64_t v = mt->dtype == ST_I64 ? ((const int64_t *)mt->data)[i] : ((const int32_t *)mt->data)[i];
            if (v < 0 || (uint64_t)v >= sv->rows)
                return emb_fail(err, EMB_ERR_FORMAT, "%s: mapping[%zu] = %lld is outside the %zu embedding rows",
                                shown, i, (long long)v, sv->rows);
            sv->mapping[i] = (int32_t)v;
        }
        sv->n_ids = mlen;
    }
    if (wt) {
        if (wlen != sv->n_ids)
            return emb_fail(err, EMB_ERR_FORMAT, "%s: \"weights\" has %zu entries but the model has %zu token ids",
                            shown, wlen, sv->n_ids);
        sv->weights = malloc(wlen * sizeof *sv->weights);
        if (!sv->weights) return emb_fail(err, EMB_ERR_NOMEM, "out of memory");
        if (wt->dtype == ST_F64) {
            for (size_t i = 0; i < wlen; i++) sv->weights[i] = (float)((const double *)wt->data)[i];
        } else if ((st = tensor_to_floats(wt, shown, sv->weights, wlen, err)) != EMB_OK) {
            return st;
        }
    }
    return EMB_OK;
}

/* model2vec drops the tokenizer's unknown token (model.unk_id for Unigram,
 * else the id of model.unk_token). */
static emb_status read_unk_id(const char *dir, int *unk, emb_error *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    cJSON *j = NULL;
    emb_status st = ju_read_file(path, path, &j, err);
    if (st != EMB_OK) return st;
    *unk = -1;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(j, "model");
    const cJSON *uid = cJSON_GetObjectItemCaseSensitive(model, "unk_id");
    const cJSON *utok = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
    if (ju_is_int_in(uid, 0, INT32_MAX)) {
        *unk = (int)uid->valuedouble;
    } else if (cJSON_IsString(utok)) {
        const cJSON *added = cJSON_GetObjectItemCaseSensitive(j, "added_tokens"), *a;
        cJSON_ArrayForEach(a, added) {
            const cJSON *c = cJSON_GetObjectItemCaseSensitive(a, "content");
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(a, "id");
            if (cJSON_IsString(c) && !strcmp(c->valuestring, utok->valuestring) && ju_is_int_in(id, 0, INT32_MAX))
                *unk = (int)id->valuedouble;
        }
        const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
        const cJSON *v = cJSON_IsObject(vocab) ? cJSON_GetObjectItemCaseSensitive(vocab, utok->valuestring) : NULL;
        if (*unk < 0 && ju_is_int_in(v, 0, INT32_MAX)) *unk = (int)v->valuedouble;
    }
    cJSON_Delete(j);
    return EMB_OK;
}

static emb_status load_model2vec(const char *dir, emb_static_vectors *sv, emb_error *err) {
    char path[4096], cfgpath[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    st_file *f = NULL;
    emb_status st = st_open(path, NULL, &f, err);
    if (st != EMB_OK) return st;
    sv->format = SV_MODEL2VEC;
    st = load_table(f, "embeddings", path, sv, err);
    if (st == EMB_OK) st = load_mapping_weights(f, path, sv, err);
    st_close(f);
    if (st != EMB_OK) return st;
    sv->max_length = SV_MODEL2VEC_DEFAULT_MAX_LENGTH;
    snprintf(cfgpath, sizeof cfgpath, "%s/config.json", dir);
    if (is_file(cfgpath)) {
        cJSON *c = NULL;
        if ((st = ju_read_file(cfgpath, cfgpath, &c, err)) != EMB_OK) return st;
        const cJSON *ml = cJSON_GetObjectItemCaseSensitive(c, "max_length");
        if (cJSON_IsNull(ml)) sv->max_length = 0;
        st = ju_get_bool(c, "normalize", cfgpath, &sv->normalize, NULL, err);
        if (st == EMB_OK && !cJSON_IsNull(ml))
            st = ju_get_int(c, "max_length", cfgpath, 1, 1 << 20, &sv->max_length, NULL, err);
        cJSON_Delete(c);
        if (st != EMB_OK) return st;
    }
    return read_unk_id(dir, &sv->unk_id, err);
}

/* A sentence-transformers directory whose modules.json starts with a
 * StaticEmbedding module (optionally followed by Normalize), or such a
 * module's own directory. */
static emb_status find_static_module(const char *dir, char *mod, size_t cap, int *normalize, emb_error *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/modules.json", dir);
    *normalize = 0;
    if (!is_file(path)) {
        snprintf(mod, cap, "%s", dir);
        return EMB_OK;
    }
    cJSON *j = NULL;
    emb_status st = ju_read_file(path, path, &j, err);
    if (st != EMB_OK) return st;
    int found = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, j) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(m, "type");
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(m, "path");
        const char *t = cJSON_IsString(type) ? type->valuestring : "";
        size_t tl = strlen(t);
        if (tl >= 15 && !strcmp(t + tl - 15, "StaticEmbedding")) {
            const char *sub = cJSON_IsString(p) ? p->valuestring : "";
            if (strstr(sub, "..")) { st = emb_fail(err, EMB_ERR_FORMAT, "%s: module path \"%s\" leaves the model directory", path, sub); break; }
            snprintf(mod, cap, "%s%s%s", dir, *sub ? "/" : "", sub);
            found = 1;
        } else if (tl >= 9 && !strcmp(t + tl - 9, "Normalize")) {
            *normalize = 1;
        } else {
            st = emb_fail(err, EMB_ERR_UNSUPPORTED, "%s: module \"%s\" after a StaticEmbedding is not supported", path, t);
            break;
        }
    }
    cJSON_Delete(j);
    if (st == EMB_OK && !found) st = emb_fail(err, EMB_ERR_FORMAT, "%s: no StaticEmbedding module", path);
    return st;
}

static emb_status load_st_static(const char *dir, emb_static_vectors *sv, emb_error *err) {
    char mod[4096], path[4200];
    emb_status st = find_static_module(dir, mod, sizeof mod, &sv->normalize, err);
    if (st != EMB_OK) return st;
    snprintf(path, sizeof path, "%s/model.safetensors", mod);
    st_file *f = NULL;
    if ((st = st_open(path, NULL, &f, err)) != EMB_OK) return st;
    sv->format = SV_ST_STATIC;
    sv->unk_id = -1;
    st = load_table(f, "embedding.weight", path, sv, err);
    st_close(f);
    if (st == EMB_OK && !(sv->path = strdup(mod))) st = emb_fail(err, EMB_ERR_NOMEM, "out of memory");
    return st;
}

/* ---- gensim most_similar ---------------------------------------------- */

typedef struct {
    int64_t row;
    double score;
} sv_hit;

/* Keeps the best n hits in descending order (insertion into a short list). */
static void keep(sv_hit *best, int *have, int n, int64_t row, double score) {
    if (*have == n && score <= best[n - 1].score) return;
    int i = *have < n ? (*have)++ : n - 1;
    while (i > 0 && best[i - 1].score < score) { best[i] = best[i - 1]; i--; }
    best[i].row = row;
    best[i].score = score;
}

int emb_sv_most_similar_vecs(const emb_static_vectors *sv, const float *const *vecs, const double *signs, int nq,
                             const int64_t *exclude, int nex, int k, emb_sv_hit_fn fn, void *ud) {
    int dim = sv->dim;
    double *mean = calloc((size_t)dim, sizeof *mean);
    sv_hit *best = calloc((size_t)k, sizeof *best);
    if (!mean || !best) { free(mean); free(best); return -1; }
    for (int q = 0; q < nq; q++) {
        const float *v = vecs[q];
        double nn = 0;
        for (int d = 0; d < dim; d++) nn += (double)v[d] * v[d];
        double w = signs[q] / (nn > 0 ? sqrt(nn) : 1.0);
        for (int d = 0; d < dim; d++) mean[d] += w * v[d];
    }
    double mn = 0;
    for (int d = 0; d < dim; d++) mn += mean[d] * mean[d];
    mn = mn > 0 ? sqrt(mn) : 1.0;
    for (int d = 0; d < dim; d++) mean[d] /= mn;   /* the 1/count of the mean cancels here */
    int have = 0;
    for (size_t r = 0; r < sv->n_words; r++) {
        int excluded = 0;
        for (int q = 0; q < nex; q++) excluded |= exclude[q] == (int64_t)r;
        if (excluded) continue;
        const float *v = sv->vecs + r * (size_t)dim;
        double dot = 0, nn = 0;
        for (int d = 0; d < dim; d++) { dot += v[d] * mean[d]; nn += (double)v[d] * v[d]; }
        if (nn == 0) continue;
        keep(best, &have, k, (int64_t)r, dot / sqrt(nn));
    }
    for (int i = 0; i < have; i++) fn(ud, emb_sv_word(sv, (size_t)best[i].row), best[i].score);
    free(mean);
    free(best);
    return have;
}

int emb_sv_most_similar(const emb_static_vectors *sv, const int64_t *pos, int npos, const int64_t *neg,
                        int nneg, int k, emb_sv_hit_fn fn, void *ud) {
    enum { MAXQ = 64 };
    if (npos + nneg > MAXQ) return -1;
    const float *vecs[MAXQ];
    double signs[MAXQ];
    int64_t ex[MAXQ];
    for (int q = 0; q < npos + nneg; q++) {
        ex[q] = q < npos ? pos[q] : neg[q - npos];
        vecs[q] = sv->vecs + (size_t)ex[q] * sv->dim;
        signs[q] = q < npos ? 1.0 : -1.0;
    }
    return emb_sv_most_similar_vecs(sv, vecs, signs, npos + nneg, ex, npos + nneg, k, fn, ud);
}

int emb_sv_word_vector(const emb_static_vectors *sv, const char *word, size_t len, float *out, int64_t *row) {
    *row = emb_sv_lookup(sv, word, len);
    if (*row >= 0) {
        memcpy(out, sv->vecs + (size_t)*row * sv->dim, (size_t)sv->dim * sizeof *out);
        return 1;
    }
    int32_t rows[2048];
    size_t k = emb_sv_subword_rows(sv, word, len, rows, 2048);
    if (k == 0 || k > 2048) return 0;
    for (int d = 0; d < sv->dim; d++) {
        double acc = 0;
        for (size_t q = 0; q < k; q++) acc += sv->vecs[(size_t)rows[q] * sv->dim + d];
        out[d] = (float)(acc / (double)k);
    }
    return 2;
}

/* ---- detection ------------------------------------------------------------ */

static sv_format dir_kind(const char *dir, int *ok) {
    char path[4096];
    *ok = 0;
    snprintf(path, sizeof path, "%s/modules.json", dir);
    if (is_file(path)) {
        FILE *f = fopen(path, "r");
        char buf[8192];
        size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
        if (f) fclose(f);
        buf[n] = 0;
        *ok = strstr(buf, "StaticEmbedding") != NULL;
        return SV_ST_STATIC;
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (!is_file(path)) return SV_MODEL2VEC;
    st_file *f = NULL;
    emb_error e;
    if (st_open(path, NULL, &f, &e) != EMB_OK) return SV_MODEL2VEC;
    sv_format k = SV_MODEL2VEC;
    if (st_find(f, "embeddings")) *ok = 1;
    else if (st_find(f, "embedding.weight") && f->n_tensors == 1) { *ok = 1; k = SV_ST_STATIC; }
    st_close(f);
    return k;
}

int emb_sv_detect(const char *path) {
    struct stat s;
    if (!path || stat(path, &s) != 0) return 0;
    if (S_ISREG(s.st_mode)) {
        /* A word-vector file starts with a "count dim" header or "word number
         * ...", a fastText .bin with its magic number. */
        char buf[4096];
        FILE *f = fopen(path, "rb");
        size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
        if (f) fclose(f);
        buf[n] = 0;
        int32_t magic;
        if (n >= 4 && (memcpy(&magic, buf, 4), magic == FT_MAGIC)) return 1;
        const char *end = line_end(buf, buf + n);
        unsigned long long count;
        long dim;
        if (parse_header(buf, end > buf && end[-1] == '\r' ? end - 1 : end, &count, &dim)) return 1;
        const char *sp = memchr(buf, ' ', (size_t)(end - buf)), *bad;
        float probe[1];
        return sp && parse_floats(sp, end, probe, 1, &bad) >= 1;
    }
    int ok;
    if (S_ISDIR(s.st_mode)) dir_kind(path, &ok);
    else ok = 0;
    return ok;
}

emb_status emb_sv_load(const char *path, emb_static_vectors **out, emb_error *err) {
    *out = NULL;
    emb_static_vectors *sv = calloc(1, sizeof *sv);
    if (!sv) return emb_fail(err, EMB_ERR_NOMEM, "out of memory");
    sv->unk_id = -1;
    struct stat s;
    emb_status st;
    if (stat(path, &s) != 0) {
        st = emb_fail(err, EMB_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    } else if (S_ISREG(s.st_mode)) {
        int32_t magic = 0;
        FILE *f = fopen(path, "rb");
        if (f) {
            if (fread(&magic, 4, 1, f) != 1) magic = 0;
            fclose(f);
        }
        st = magic == FT_MAGIC ? load_fasttext_bin(path, sv, err) : load_word_file(path, sv, err);
    } else {
        int ok;
        sv_format k = dir_kind(path, &ok);
        if (!ok) st = emb_fail(err, EMB_ERR_FORMAT, "%s: not a model2vec or StaticEmbedding directory", path);
        else st = k == SV_ST_STATIC ? load_st_static(path, sv, err) : load_model2vec(path, sv, err);
    }
    if (st == EMB_OK && !sv->path && !(sv->path = strdup(path))) st = emb_fail(err, EMB_ERR_NOMEM, "out of memory");
    if (st != EMB_OK) {
        emb_sv_free(sv);
        return st;
    }
    *out = sv;
    return EMB_OK;
}
