/* pretok_rewrite.c - the pre-tokenizers that rewrite text as well as split
 * it: ByteLevel (GPT-2 byte -> printable character map, optional prefix
 * space and GPT-2 regex split) and Metaspace (spaces become the replacement
 * character, prefixed per prepend_scheme, split before each replacement).
 * New text is built in a scratch buffer, then appended to the arena (the
 * arena may move while it grows, so nothing reads it during the append). */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int tok_regex_events(const struct tok_regex *re, const char *s, size_t len, bool invert, tok_pieces *ev,
                     tok_error *err);

/* GPT-2's bytes_to_unicode(): printable Latin-1 bytes map to themselves,
 * the others to U+0100 + n in byte order. */
static uint32_t byte_char(unsigned b)
{
    static uint32_t table[256];
    static int ready;   /* benign: every thread computes identical values */
    if (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE)) {
        uint32_t t[256];
        unsigned n = 0;
        for (unsigned c = 0; c < 256; c++) {
            bool keep = (c >= 33 && c <= 126) || (c >= 161 && c <= 172) || (c >= 174);
            t[c] = keep ? c : 256 + n++;
        }
        memcpy(table, t, sizeof t);
        __atomic_store_n(&ready, 1, __ATOMIC_RELEASE);
    }
    return table[b];
}

uint32_t tok_bytelevel_char(unsigned b) { return byte_char(b); }

/* Appends s->t1 to the arena and returns it as a piece like `parent`. */
static int commit_t1(struct tok_scratch *s, const tok_piece *parent, tok_piece *out)
{
    if (s->arena.len + s->t1.len > UINT32_MAX)
        return -1;
    *out = *parent;
    out->off = (uint32_t)s->arena.len;
    out->len = (uint32_t)s->t1.len;
    return tok_buf_append(&s->arena, s->t1.data, s->t1.len);
}

static int byte_map(struct tok_scratch *s, const tok_piece *p, tok_pieces *out)
{
    s->t1.len = 0;
    if (tok_buf_reserve(&s->t1, (size_t)p->len * 2))
        return -1;
    for (size_t i = 0; i < p->len; i++) {
        uint32_t c = byte_char((unsigned char)s->arena.data[p->off + i]);
        if (tok_buf_put_cp(&s->t1, c))
            return -1;
    }
    tok_piece np;
    if (commit_t1(s, p, &np))
        return -1;
    return np.len ? tok_pieces_push(out, np) : 0;
}

int tok_bytelevel_pretok(const tok_pretokenizer *p, struct tok_scratch *s, const tok_piece *in, tok_pieces *out,
                         tok_error *err)
{
    tok_piece cur = *in;
    if (p->add_prefix_space && s->arena.data[in->off] != ' ') {
        s->t1.len = 0;
        if (tok_buf_append(&s->t1, " ", 1) || tok_buf_append(&s->t1, s->arena.data + in->off, in->len) ||
            commit_t1(s, in, &cur))
            return -1;
    }
    if (!p->use_regex)
        return byte_map(s, &cur, out);
    tok_pieces ev = {0};
    int rc = tok_regex_events(p->re, s->arena.data + cur.off, cur.len, false, &ev, err);
    for (size_t i = 0; rc == 0 && i < ev.n; i++) {
        tok_piece sub = cur;
        sub.off = cur.off + ev.v[i].off;
        sub.len = ev.v[i].len;
        sub.first = cur.first && ev.v[i].off == 0;
        if (sub.len)
            rc = byte_map(s, &sub, out);
    }
    free(ev.v);
    return rc;
}

int tok_metaspace(const tok_pretokenizer *p, struct tok_scratch *s, const tok_piece *in, tok_pieces *out)
{
    const char *rep = p->replacement;
    size_t rl = p->replacement_len;
    s->t1.len = 0;
    const char *src = s->arena.data + in->off;
    bool starts = in->len >= rl && !memcmp(src, rep, rl);
    if (in->len && src[0] == ' ')
        starts = true;   /* the leading space becomes the replacement */
    bool prepend = !starts && (p->prepend_scheme == TOK_PREPEND_ALWAYS ||
                               (p->prepend_scheme == TOK_PREPEND_FIRST && in->first));
    if (prepend && tok_buf_append(&s->t1, rep, rl))
        return -1;
    for (size_t i = 0; i < in->len; i++) {
        int rc = src[i] == ' ' ? tok_buf_append(&s->t1, rep, rl) : tok_buf_append(&s->t1, src + i, 1);
        if (rc)
            return -1;
        src = s->arena.data + in->off;   /* t1 is not the arena: src stays valid */
    }
    tok_piece np;
    if (commit_t1(s, in, &np))
        return -1;
    if (!p->split)
        return np.len ? tok_pieces_push(out, np) : 0;
    /* MergedWithNext on each replacement character: a piece starts at every
     * replacement (runs of them each start their own piece). */
    const char *t = s->arena.data + np.off;
    size_t start = 0;
    for (size_t i = 0; i + rl <= np.len;) {
        if (!memcmp(t + i, rep, rl)) {
            if (i > start) {
                tok_piece x = np;
                x.off = np.off + (uint32_t)start;
                x.len = (uint32_t)(i - start);
                x.first = np.first && start == 0;
                if (tok_pieces_push(out, x))
                    return -1;
            }
            start = i;
            i += rl;
        } else {
            i++;
        }
    }
    if (np.len > start) {
        tok_piece x = np;
        x.off = np.off + (uint32_t)start;
        x.len = (uint32_t)(np.len - start);
        x.first = np.first && start == 0;
        if (tok_pieces_push(out, x))
            return -1;
    }
    return 0;
}
