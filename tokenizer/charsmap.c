/* charsmap.c - the Precompiled normalizer: SentencePiece's precompiled
 * character map (base64 in tokenizer.json: a little-endian u32 trie size,
 * a double-array trie of u32 units, then NUL-terminated replacement
 * strings).  Applied per extended grapheme cluster as the reference does:
 * a cluster shorter than 6 bytes is looked up whole, otherwise (or when it
 * has no entry) each of its characters is looked up on its own.  Every
 * trie step and string offset is bounds-checked at use. */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "internal.h"

struct tok_charsmap {
    uint32_t *units; size_t n_units;
    char *strings; size_t n_strings;
};

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

static int b64_decode(const char *in, size_t len, unsigned char **out, size_t *out_len)
{
    unsigned char *o = malloc(len / 4 * 3 + 3);
    if (!o)
        return -1;
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        if (in[i] == '=')
            break;
        int v = b64_value((unsigned char)in[i]);
        if (v < 0) {
            free(o);
            return -1;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            o[n++] = (unsigned char)(acc >> bits);
        }
    }
    *out = o;
    *out_len = n;
    return 0;
}

int tok_charsmap_load(const char *b64, size_t len, struct tok_charsmap **out, const char *origin, tok_error *err)
{
    unsigned char *blob;
    size_t n;
    *out = NULL;
    if (b64_decode(b64, len, &blob, &n)) {
        tok_set_error(err, "%s: field 'precompiled_charsmap' is not valid base64", origin);
        return -1;
    }
    uint32_t trie_size = 0;
    if (n >= 4)
        trie_size = (uint32_t)blob[0] | (uint32_t)blob[1] << 8 | (uint32_t)blob[2] << 16 | (uint32_t)blob[3] << 24;
    if (n < 4 || trie_size % 4 || trie_size > n - 4 || trie_size == 0) {
        free(blob);
        tok_set_error(err, "%s: field 'precompiled_charsmap': trie size %u does not fit the %zu-byte blob", origin,
                      trie_size, n);
        return -1;
    }
    struct tok_charsmap *m = calloc(1, sizeof *m);
    if (m) {
        m->n_units = trie_size / 4;
        m->units = malloc(trie_size);
        m->n_strings = n - 4 - trie_size;
        m->strings = malloc(m->n_strings + 1);
    }
    if (!m || !m->units || !m->strings) {
        free(blob);
        tok_charsmap_free(m);
        tok_set_error(err, "%s: out of memory", origin);
        return -1;
    }
    for (size_t i = 0; i < m->n_units; i++) {
        const unsigned char *p = blob + 4 + 4 * i;
        m->units[i] = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    }
    memcpy(m->strings, blob + 4 + trie_size, m->n_strings);
    m->strings[m->n_strings] = 0;   /* a final string without NUL still ends */
    free(blob);
    /* replacements are spliced into the text: they must be UTF-8 (as the
     * reference requires of the whole string table) */
    if (!tok_utf8_valid(m->strings, m->n_strings, NULL)) {
        tok_charsmap_free(m);
        tok_set_error(err, "%s: field 'precompiled_charsmap': replacement strings are not valid UTF-8", origin);
        return -1;
    }
    *out = m;
    return 0;
}

void tok_charsmap_free(struct tok_charsmap *m)
{
    if (!m)
        return;
    free(m->units);
    free(m->strings);
    free(m);
}

/* Darts-clone unit accessors. */
static uint32_t u_offset(uint32_t u) { return (u >> 10) << ((u & (1u << 9)) >> 6); }
static bool u_has_leaf(uint32_t u) { return (u >> 8) & 1; }
static uint32_t u_value(uint32_t u) { return u & ((1u << 31) - 1); }
static uint32_t u_label(uint32_t u) { return u & ((1u << 31) | 0xFF); }

/* The first (shortest) key that is a prefix of s, as the reference takes
 * results[0] of its common prefix search. Returns the replacement or NULL. */
static const char *lookup(const struct tok_charsmap *m, const char *s, size_t len, size_t *out_len)
{
    size_t pos = 0;
    uint32_t unit = m->units[0];
    pos ^= u_offset(unit);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == 0)
            break;
        pos ^= c;
        if (pos >= m->n_units)
            return NULL;
        unit = m->units[pos];
        if (u_label(unit) != c)
            return NULL;
        pos ^= u_offset(unit);
        if (pos >= m->n_units)
            return NULL;
        if (u_has_leaf(unit)) {
            size_t v = u_value(m->units[pos]);
            if (v >= m->n_strings)
                return NULL;
            *out_len = strlen(m->strings + v);
            return m->strings + v;
        }
    }
    return NULL;
}

static int apply_chars(const struct tok_charsmap *m, const char *g, size_t len, tok_buf *out)
{
    size_t i = 0;
    while (i < len) {
        size_t st = i, rl;
        tok_utf8_next((const unsigned char *)g, &i);
        const char *r = lookup(m, g + st, i - st, &rl);
        if (r ? tok_buf_append(out, r, rl) : tok_buf_append(out, g + st, i - st))
            return -1;
    }
    return 0;
}

int tok_charsmap_apply(const struct tok_charsmap *m, const char *in, size_t len, tok_buf *out)
{
    const unsigned char *s = (const unsigned char *)in;
    size_t i = 0;
    while (i < len) {
        /* one extended grapheme cluster [st, i) */
        size_t st = i;
        utf8proc_int32_t state = 0;
        uint32_t prev = tok_utf8_next(s, &i);
        while (i < len) {
            size_t j = i;
            uint32_t c = tok_utf8_next(s, &j);
            if (utf8proc_grapheme_break_stateful((utf8proc_int32_t)prev, (utf8proc_int32_t)c, &state))
                break;
            prev = c;
            i = j;
        }
        size_t rl;
        const char *r = i - st < 6 ? lookup(m, in + st, i - st, &rl) : NULL;
        if (r ? tok_buf_append(out, r, rl) : apply_chars(m, in + st, i - st, out))
            return -1;
    }
    return 0;
}
