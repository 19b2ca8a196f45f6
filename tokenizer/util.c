/* util.c - the small containers the tokenizer is built on: a growable byte
 * buffer, a string->id hash map whose keys live elsewhere (vocabularies are
 * large and already stored once), UTF-8 helpers including the Python-compatible
 * repair of invalid input, and error formatting. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

void tok_set_error(tok_error *err, const char *fmt, ...)
{
    if (!err)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
}

void tok_prefix_error(tok_error *err, const char *fmt, ...)
{
    if (!err)
        return;
    char prefix[256], old[sizeof err->message];
    memcpy(old, err->message, sizeof old);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    snprintf(err->message, sizeof err->message, "%s: %s", prefix, old);
}

/* ---- buffer --------------------------------------------------------------- */
int tok_buf_reserve(tok_buf *b, size_t extra)
{
    if (extra > SIZE_MAX / 2 - b->len)
        return -1;
    size_t need = b->len + extra;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p)
        return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

int tok_buf_append(tok_buf *b, const void *p, size_t n)
{
    if (tok_buf_reserve(b, n))
        return -1;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int tok_buf_put_cp(tok_buf *b, uint32_t cp)
{
    char tmp[4];
    return tok_buf_append(b, tmp, tok_utf8_encode(cp, tmp));
}

void tok_buf_free(tok_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* ---- UTF-8 ---------------------------------------------------------------- */
size_t tok_utf8_encode(uint32_t cp, char out[4])
{
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) { out[0] = (char)(0xC0 | (cp >> 6)); out[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12)); out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F)); return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18)); out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Length of the valid sequence starting at s[i], or 0.  When invalid, *sub
 * receives the length of the maximal invalid subpart (Unicode 3.9 / Python's
 * "replace" error handler: one U+FFFD per maximal subpart). */
static size_t utf8_seq(const unsigned char *s, size_t len, size_t i, size_t *sub)
{
    unsigned c = s[i];
    *sub = 1;
    if (c < 0x80)
        return 1;
    size_t need;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) need = 1;
    else if (c == 0xE0) { need = 2; lo = 0xA0; }
    else if (c >= 0xE1 && c <= 0xEC) need = 2;
    else if (c == 0xED) { need = 2; hi = 0x9F; }
    else if (c >= 0xEE && c <= 0xEF) need = 2;
    else if (c == 0xF0) { need = 3; lo = 0x90; }
    else if (c >= 0xF1 && c <= 0xF3) need = 3;
    else if (c == 0xF4) { need = 3; hi = 0x8F; }
    else return 0;
    for (size_t k = 1; k <= need; k++) {
        if (i + k >= len)
            return 0;
        unsigned b = s[i + k];
        unsigned l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
        if (b < l || b > h)
            return 0;
        *sub = k + 1;
    }
    return need + 1;
}

bool tok_utf8_valid(const char *str, size_t len, size_t *bad_offset)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0, sub;
    while (i < len) {
        if (s[i] < 0x80) { i++; continue; }
        size_t n = utf8_seq(s, len, i, &sub);
        if (!n) {
            if (bad_offset)
                *bad_offset = i;
            return false;
        }
        i += n;
    }
    return true;
}

size_t tok_utf8_count(const char *str, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)str[i] & 0xC0) != 0x80;
    return n;
}

size_t tok_utf8_repair(const char *in, size_t len, char **out, size_t *out_len)
{
    const unsigned char *s = (const unsigned char *)in;
    tok_buf b = {0};
    size_t replaced = 0, i = 0, sub;
    *out = NULL;
    if (out_len)
        *out_len = 0;
    if (tok_buf_reserve(&b, len + 1))
        return 0;
    while (i < len) {
        size_t n = s[i] < 0x80 ? 1 : utf8_seq(s, len, i, &sub);
        if (n) {
            if (tok_buf_append(&b, s + i, n))
                goto oom;
            i += n;
        } else {
            if (tok_buf_append(&b, "\xEF\xBF\xBD", 3))
                goto oom;
            replaced++;
            i += sub;
        }
    }
    if (tok_buf_append(&b, "", 1))
        goto oom;
    *out = b.data;
    if (out_len)
        *out_len = b.len - 1;
    return replaced;
oom:
    tok_buf_free(&b);
    return 0;
}

/* ---- hash map ------------------------------------------------------------- */
uint64_t tok_hash(const char *s, size_t len)
{
    /* FNV-1a over 8-byte words then a final mix: keys are short tokens. */
    uint64_t h = 0xcbf29ce484222325ULL ^ (uint64_t)len;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        h = (h ^ w) * 0x100000001b3ULL;
        h ^= h >> 29;
    }
    for (; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ULL;
    h ^= h >> 32;
    return h;
}

int tok_map_init(tok_map *m, size_t expected)
{
    size_t cap = 16;
    while (cap < expected * 2 + 2) {
        if (cap > SIZE_MAX / 4 / sizeof(tok_map_slot))
            return -1;
        cap *= 2;
    }
    m->slots = calloc(cap, sizeof *m->slots);
    if (!m->slots)
        return -1;
    for (size_t i = 0; i < cap; i++)
        m->slots[i].id = -1;
    m->mask = cap - 1;
    m->count = 0;
    return 0;
}

static int map_grow(tok_map *m)
{
    tok_map bigger;
    if (tok_map_init(&bigger, (m->mask + 1)))
        return -1;
    for (size_t i = 0; i <= m->mask; i++)
        if (m->slots[i].id >= 0)
            tok_map_put(&bigger, m->slots[i].s, m->slots[i].len, m->slots[i].id);
    free(m->slots);
    *m = bigger;
    return 0;
}

int tok_map_put(tok_map *m, const char *s, size_t len, int32_t id)
{
    if (len > UINT32_MAX)
        return -1;
    if ((m->count + 1) * 2 > m->mask + 1 && map_grow(m))
        return -1;
    size_t i = tok_hash(s, len) & m->mask;
    for (;; i = (i + 1) & m->mask) {
        tok_map_slot *sl = &m->slots[i];
        if (sl->id < 0) {
            sl->s = s;
            sl->len = (uint32_t)len;
            sl->id = id;
            m->count++;
            return 0;
        }
        if (sl->len == len && memcmp(sl->s, s, len) == 0)
            return 1;
    }
}

int32_t tok_map_get(const tok_map *m, const char *s, size_t len)
{
    if (!m->slots)
        return -1;
    size_t i = tok_hash(s, len) & m->mask;
    for (;; i = (i + 1) & m->mask) {
        const tok_map_slot *sl = &m->slots[i];
        if (sl->id < 0)
            return -1;
        if (sl->len == len && memcmp(sl->s, s, len) == 0)
            return sl->id;
    }
}

void tok_map_free(tok_map *m)
{
    free(m->slots);
    m->slots = NULL;
    m->mask = m->count = 0;
}

int tok_pieces_push(tok_pieces *p, tok_piece x)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        tok_piece *v = realloc(p->v, cap * sizeof *v);
        if (!v)
            return -1;
        p->v = v;
        p->cap = cap;
    }
    p->v[p->n++] = x;
    return 0;
}

int tok_scratch_push_id(struct tok_scratch *s, int32_t id, uint8_t special)
{
    if (s->n_ids == s->cap_ids) {
        size_t cap = s->cap_ids ? s->cap_ids * 2 : 256;
        int32_t *ids = realloc(s->ids, cap * sizeof *ids);
        if (!ids)
            return -1;
        s->ids = ids;
        uint8_t *sp = realloc(s->special, cap);
        if (!sp)
            return -1;
        s->special = sp;
        s->cap_ids = cap;
    }
    s->special[s->n_ids] = special;
    s->ids[s->n_ids++] = id;
    return 0;
}
