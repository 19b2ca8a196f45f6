/* JSONL line scanner with Python json.loads semantics (see jsonl.h). */
#include "jsonl.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WIN 65536   /* the scanner's window on the line; lookahead is at most 12 bytes */

typedef struct {
    jsonl_read_fn read;
    void *ud;
    char *s;            /* window: bytes base .. base + n of the line */
    size_t n, i;
    uint64_t base;
    int eol, io_error;
    int depth;
    char *msg;
    size_t msg_cap;
    uint64_t at;
    int nomem;
} scanner;

/* Makes k bytes from i available unless the line ends first; returns how
 * many are (at most k is not guaranteed: at least min(k, rest of line)). */
static size_t ensure(scanner *sc, size_t k) {
    if (sc->n - sc->i >= k || sc->eol) return sc->n - sc->i;
    if (sc->i) {
        memmove(sc->s, sc->s + sc->i, sc->n - sc->i);
        sc->base += sc->i;
        sc->n -= sc->i;
        sc->i = 0;
    }
    while (sc->n < k && !sc->eol) {
        size_t got = sc->read(sc->ud, sc->s + sc->n, WIN - sc->n, &sc->io_error);
        if (got == 0) sc->eol = 1;
        sc->n += got;
    }
    return sc->n - sc->i;
}

/* The byte at i + k, or -1 past the end of the line. */
static int peek(scanner *sc, size_t k) {
    if (ensure(sc, k + 1) <= k) return -1;
    return (unsigned char)sc->s[sc->i + k];
}

static int fail(scanner *sc, const char *fmt, ...) {
    if (sc->nomem) return -1;
    va_list ap;
    va_start(ap, fmt);
    if (sc->msg && sc->msg_cap) vsnprintf(sc->msg, sc->msg_cap, fmt, ap);
    va_end(ap);
    sc->at = sc->base + sc->i;
    return -1;
}

static void skip_ws(scanner *sc) {
    for (int c; (c = peek(sc, 0)) == ' ' || c == '\t' || c == '\n' || c == '\r';) sc->i++;
}

/* Appends bytes to v, keeping at most v->keep of them (0 = all). */
static int put(scanner *sc, jsonl_value *v, const char *p, size_t k) {
    if (!v) return 0;
    v->full_len += k;
    size_t room = v->keep ? (v->len < v->keep ? v->keep - v->len : 0) : k;
    if (k > room) k = room;
    if (!k) return 0;
    if (v->len + k + 1 > v->cap) {
        size_t nc = v->cap ? v->cap : 64;
        while (nc < v->len + k + 1) nc *= 2;
        char *nb = realloc(v->buf, nc);
        if (!nb) {
            sc->nomem = 1;
            return -1;
        }
        v->buf = nb;
        v->cap = nc;
    }
    memcpy(v->buf + v->len, p, k);
    v->len += k;
    v->buf[v->len] = 0;
    return 0;
}

static int put_cp(scanner *sc, jsonl_value *v, uint32_t cp) {
    char b[4];
    size_t k;
    if (cp < 0x80) {
        b[0] = (char)cp, k = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xC0 | (cp >> 6)), b[1] = (char)(0x80 | (cp & 0x3F)), k = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xE0 | (cp >> 12)), b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (char)(0x80 | (cp & 0x3F)), k = 3;
    } else {
        b[0] = (char)(0xF0 | (cp >> 18)), b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3F)), b[3] = (char)(0x80 | (cp & 0x3F)), k = 4;
    }
    return put(sc, v, b, k);
}

/* Four hex digits at i + off. */
static int hex4(scanner *sc, size_t off, uint32_t *out) {
    uint32_t x = 0;
    for (size_t k = 0; k < 4; k++) {
        int c = peek(sc, off + k);
        x <<= 4;
        if (c >= '0' && c <= '9') x |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f') x |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') x |= (uint32_t)(c - 'A' + 10);
        else return -1;
    }
    *out = x;
    return 0;
}

/* At the opening quote. Decodes into v (NULL: validate only). */
static int scan_string(scanner *sc, jsonl_value *v) {
    sc->i++;
    for (;;) {
        /* A run of plain bytes inside the window, copied in one go. */
        ensure(sc, 1);
        size_t start = sc->i;
        while (sc->i < sc->n) {
            unsigned char c = (unsigned char)sc->s[sc->i];
            if (c == '"' || c == '\\' || c < 0x20) break;
            sc->i++;
        }
        if (put(sc, v, sc->s + start, sc->i - start)) return -1;
        int c = peek(sc, 0);
        if (c < 0) return fail(sc, "unterminated string");
        if (c != '"' && c != '\\' && c >= 0x20) continue;   /* the window ended mid-run */
        if (c == '"') {
            sc->i++;
            return 0;
        }
        if (c < 0x20) return fail(sc, "invalid control character 0x%02x in a string", c);
        int e = peek(sc, 1);
        if (e < 0) return fail(sc, "unterminated string");
        const char *simple = NULL;
        switch (e) {
        case '"': simple = "\""; break;
        case '\\': simple = "\\"; break;
        case '/': simple = "/"; break;
        case 'b': simple = "\b"; break;
        case 'f': simple = "\f"; break;
        case 'n': simple = "\n"; break;
        case 'r': simple = "\r"; break;
        case 't': simple = "\t"; break;
        case 'u': break;
        default: return fail(sc, "invalid escape \\%c", e);
        }
        if (simple) {
            if (put(sc, v, simple, 1)) return -1;
            sc->i += 2;
            continue;
        }
        uint32_t cp;
        if (hex4(sc, 2, &cp)) return fail(sc, "invalid \\u escape");
        sc->i += 6;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            uint32_t lo;
            if (peek(sc, 0) == '\\' && peek(sc, 1) == 'u' && hex4(sc, 2, &lo) == 0 && lo >= 0xDC00 && lo <= 0xDFFF) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                sc->i += 6;
            } else {
                cp = 0xFFFD;
                if (v) v->lone_surrogates++;
            }
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            cp = 0xFFFD;
            if (v) v->lone_surrogates++;
        }
        if (put_cp(sc, v, cp)) return -1;
    }
}

static int match_word(scanner *sc, const char *w) {
    size_t k = strlen(w);
    if (ensure(sc, k) < k || memcmp(sc->s + sc->i, w, k) != 0) return 0;
    sc->i += k;
    return 1;
}

static int is_digit(int c) { return c >= '0' && c <= '9'; }

/* Python's NUMBER_RE: -?(0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?, plus -Infinity. */
static int scan_number(scanner *sc) {
    if (peek(sc, 0) == '-') {
        sc->i++;
        if (match_word(sc, "Infinity")) return 0;
    }
    int c = peek(sc, 0);
    if (!is_digit(c)) return fail(sc, "expecting a value");
    sc->i++;
    if (c != '0')
        while (is_digit(peek(sc, 0))) sc->i++;
    if (peek(sc, 0) == '.' && is_digit(peek(sc, 1))) {
        sc->i++;
        while (is_digit(peek(sc, 0))) sc->i++;
    }
    c = peek(sc, 0);
    if (c == 'e' || c == 'E') {
        size_t j = 1;
        int sgn = peek(sc, 1);
        if (sgn == '+' || sgn == '-') j = 2;
        if (is_digit(peek(sc, j))) {
            sc->i += j;
            while (is_digit(peek(sc, 0))) sc->i++;
        }
    }
    return 0;
}

static int scan_value(scanner *sc, jsonl_value *v);

/* At '{'. When key is set (the top-level object), the last member named key
 * is decoded into v; *kind says what that member was. */
static int scan_object(scanner *sc, const char *key, jsonl_value *v, jsonl_value *kbuf, jsonl_result *kind) {
    if (++sc->depth > JSONL_MAX_DEPTH) return fail(sc, "nested deeper than %d levels", JSONL_MAX_DEPTH);
    sc->i++;
    skip_ws(sc);
    if (peek(sc, 0) == '}') {
        sc->i++;
        sc->depth--;
        return 0;
    }
    size_t klen = key ? strlen(key) : 0;
    for (;;) {
        skip_ws(sc);
        if (peek(sc, 0) != '"') return fail(sc, "expecting a property name in double quotes");
        int match = 0;
        if (key) {
            kbuf->len = 0;
            kbuf->full_len = 0;
            kbuf->keep = klen + 1;
            if (scan_string(sc, kbuf)) return -1;
            match = kbuf->full_len == klen && memcmp(kbuf->buf ? kbuf->buf : "", key, klen) == 0;
        } else if (scan_string(sc, NULL)) {
            return -1;
        }
        skip_ws(sc);
        if (peek(sc, 0) != ':') return fail(sc, "expecting ':' delimiter");
        sc->i++;
        skip_ws(sc);
        int aux = key && v->aux_key && kbuf->full_len == strlen(v->aux_key) &&
                  memcmp(kbuf->buf ? kbuf->buf : "", v->aux_key, kbuf->full_len) == 0;
        if (aux) {
            /* The number's text, before scan_value checks its grammar. */
            size_t k = 0;
            int c;
            while (k < sizeof v->aux_num - 1 && (c = peek(sc, k)) >= 0 &&
                   (is_digit(c) || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E'))
                v->aux_num[k] = (char)c, k++;
            v->aux_num[k] = 0;
            c = peek(sc, k);
            v->aux_found = k > 0 && k < sizeof v->aux_num - 1 && !(c >= 'A' && c <= 'z') ? 1 : 2;
        }
        if (match && peek(sc, 0) == '"') {
            /* Last duplicate wins: start the value afresh. */
            v->len = 0;
            v->full_len = 0;
            v->lone_surrogates = 0;
            if (scan_string(sc, v)) return -1;
            *kind = JSONL_OK;
        } else {
            if (scan_value(sc, NULL)) return -1;
            if (match) *kind = JSONL_NOT_STRING;
        }
        skip_ws(sc);
        if (peek(sc, 0) == ',') {
            sc->i++;
            continue;
        }
        if (peek(sc, 0) == '}') {
            sc->i++;
            sc->depth--;
            return 0;
        }
        return fail(sc, "expecting ',' delimiter");
    }
}

static int scan_array(scanner *sc) {
    if (++sc->depth > JSONL_MAX_DEPTH) return fail(sc, "nested deeper than %d levels", JSONL_MAX_DEPTH);
    sc->i++;
    skip_ws(sc);
    if (peek(sc, 0) == ']') {
        sc->i++;
        sc->depth--;
        return 0;
    }
    for (;;) {
        skip_ws(sc);
        if (scan_value(sc, NULL)) return -1;
        skip_ws(sc);
        if (peek(sc, 0) == ',') {
            sc->i++;
            continue;
        }
        if (peek(sc, 0) == ']') {
            sc->i++;
            sc->depth--;
            return 0;
        }
        return fail(sc, "expecting ',' delimiter");
    }
}

static int scan_value(scanner *sc, jsonl_value *v) {
    switch (peek(sc, 0)) {
    case -1: return fail(sc, "expecting a value");
    case '"': return scan_string(sc, v);
    case '{': return scan_object(sc, NULL, NULL, NULL, NULL);
    case '[': return scan_array(sc);
    default: break;
    }
    if (match_word(sc, "true") || match_word(sc, "false") || match_word(sc, "null") ||
        match_word(sc, "NaN") || match_word(sc, "Infinity"))
        return 0;
    return scan_number(sc);
}

jsonl_result jsonl_scan(jsonl_read_fn read, void *ud, const char *key, jsonl_value *v, char *msg,
                        size_t msg_cap, uint64_t *at) {
    scanner sc;
    memset(&sc, 0, sizeof sc);
    sc.read = read;
    sc.ud = ud;
    sc.msg = msg;
    sc.msg_cap = msg_cap;
    jsonl_value kbuf = {0};
    jsonl_result kind = JSONL_MISSING;
    v->len = 0;
    v->full_len = 0;
    v->lone_surrogates = 0;
    v->aux_found = 0;
    if (msg && msg_cap) msg[0] = 0;
    if (!(sc.s = malloc(WIN))) return JSONL_NOMEM;
    skip_ws(&sc);
    int rc = 0, c = peek(&sc, 0);
    if (c < 0) {
        kind = JSONL_BLANK;
    } else if (c != '{') {
        rc = fail(&sc, "not a JSON object");
    } else {
        rc = scan_object(&sc, key, v, &kbuf, &kind);
        if (rc == 0) {
            skip_ws(&sc);
            if (peek(&sc, 0) >= 0) rc = fail(&sc, "trailing data after the JSON object");
        }
    }
    free(kbuf.buf);
    free(sc.s);
    if (at) *at = sc.at;
    if (sc.io_error) return JSONL_IO;
    if (sc.nomem) return JSONL_NOMEM;
    if (rc) return JSONL_SYNTAX;
    return kind;
}

typedef struct {
    const char *p;
    size_t left;
} mem_source;

static size_t mem_read(void *ud, char *dst, size_t max, int *error) {
    mem_source *m = ud;
    size_t k = m->left < max ? m->left : max;
    memcpy(dst, m->p, k);
    m->p += k;
    m->left -= k;
    return k;
}

jsonl_result jsonl_get_field(const char *line, size_t n, const char *key, jsonl_value *v, char *msg,
                             size_t msg_cap, size_t *at) {
    mem_source m = {line, n};
    uint64_t where = 0;
    jsonl_result r = jsonl_scan(mem_read, &m, key, v, msg, msg_cap, &where);
    if (r == JSONL_BLANK) {
        if (msg && msg_cap) snprintf(msg, msg_cap, "not a JSON object");
        where = n;
        r = JSONL_SYNTAX;
    }
    if (at) *at = (size_t)where;
    return r;
}
