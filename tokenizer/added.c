/* added.c - added tokens: a byte trie over their contents and the
 * leftmost-longest scan that cuts them out of the text before the model
 * runs, with the reference's single_word / lstrip / rstrip rules
 * (AddedVocabulary::find_matches). */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static int32_t trie_new_node(tok_trie *t, unsigned char byte)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        tok_trie_node *v = realloc(t->nodes, cap * sizeof *v);
        if (!v)
            return -1;
        t->nodes = v;
        t->cap = cap;
    }
    t->nodes[t->n] = (tok_trie_node){-1, -1, -1, byte};
    return (int32_t)t->n++;
}

int tok_trie_add(tok_trie *t, const char *s, size_t len, int32_t token)
{
    if (len == 0)
        return 0;   /* an empty added token never matches */
    if (t->n == 0 && trie_new_node(t, 0) < 0)
        return -1;
    int32_t node = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char b = (unsigned char)s[i];
        int32_t c = t->nodes[node].first_child;
        while (c >= 0 && t->nodes[c].byte != b)
            c = t->nodes[c].next_sibling;
        if (c < 0) {
            c = trie_new_node(t, b);
            if (c < 0)
                return -1;
            t->nodes[c].next_sibling = t->nodes[node].first_child;
            t->nodes[node].first_child = c;
        }
        node = c;
    }
    t->first_byte[(unsigned char)s[0]] = 1;
    /* A duplicate content keeps the first token, as the reference's map does. */
    if (t->nodes[node].token < 0)
        t->nodes[node].token = token;
    return 0;
}

void tok_trie_free(tok_trie *t)
{
    free(t->nodes);
    memset(t, 0, sizeof *t);
}

/* Longest token starting at s[i]; returns its end or 0, token index in *tok. */
static size_t trie_longest(const tok_trie *t, const unsigned char *s, size_t i, size_t end, int32_t *tok)
{
    int32_t node = 0;
    size_t best = 0;
    for (size_t k = i; k < end; k++) {
        int32_t c = t->nodes[node].first_child;
        while (c >= 0 && t->nodes[c].byte != s[k])
            c = t->nodes[c].next_sibling;
        if (c < 0)
            break;
        node = c;
        if (t->nodes[node].token >= 0) {
            best = k + 1;
            *tok = t->nodes[node].token;
        }
    }
    return best;
}

static uint32_t cp_before(const unsigned char *s, size_t lo, size_t pos, size_t *start)
{
    size_t k = pos - 1;
    while (k > lo && (s[k] & 0xC0) == 0x80)
        k--;
    *start = k;
    size_t j = k;
    return tok_utf8_next(s, &j);
}

static bool word_before(const unsigned char *s, size_t lo, size_t pos)
{
    size_t k;
    return pos > lo && tok_is_word_char(cp_before(s, lo, pos, &k));
}

static bool word_after(const unsigned char *s, size_t pos, size_t end)
{
    size_t j = pos;
    return pos < end && tok_is_word_char(tok_utf8_next(s, &j));
}

static int push(tok_pieces *out, const tok_piece *parent, size_t a, size_t b, int32_t id, uint8_t special)
{
    tok_piece x = {(uint32_t)a, (uint32_t)(b - a), id, special, (uint8_t)(parent->first && a == parent->off)};
    if (id < 0 && a == b)
        return 0;
    return tok_pieces_push(out, x);
}

static int split_piece(const tok_tokenizer *t, const tok_trie *trie, const unsigned char *s, const tok_piece *in,
                       tok_pieces *out)
{
    size_t lo = in->off, end = (size_t)in->off + in->len, start_offset = lo, i = lo;
    while (i < end) {
        int32_t k = -1;
        size_t stop = trie->first_byte[s[i]] ? trie_longest(trie, s, i, end, &k) : 0;
        if (!stop) {
            i++;
            continue;
        }
        const tok_added *a = &t->added[k];
        size_t start = i;
        i = stop;   /* the scan resumes after the raw match, whatever happens to it */
        if (a->single_word && (word_before(s, lo, start) || word_after(s, stop, end)))
            continue;
        if (a->lstrip) {
            size_t ns = start;
            while (ns > lo) {
                size_t ps;
                if (!tok_is_whitespace(cp_before(s, lo, ns, &ps)))
                    break;
                ns = ps;
            }
            start = ns > start_offset ? ns : start_offset;
        }
        if (a->rstrip) {
            while (stop < end) {
                size_t j = stop;
                if (!tok_is_whitespace(tok_utf8_next(s, &j)))
                    break;
                stop = j;
            }
        }
        if (start_offset < start && push(out, in, start_offset, start, -1, 0))
            return -1;
        if (push(out, in, start, stop, a->id, a->special))
            return -1;
        start_offset = stop;
    }
    if (start_offset < end && push(out, in, start_offset, end, -1, 0))
        return -1;
    return 0;
}

int tok_split_added(const tok_tokenizer *t, const tok_trie *trie, struct tok_scratch *s, tok_pieces *in,
                    tok_pieces *out)
{
    out->n = 0;
    for (size_t i = 0; i < in->n; i++) {
        tok_piece p = in->v[i];
        if (p.id >= 0 || trie->n == 0) {
            if (tok_pieces_push(out, p))
                return -1;
            continue;
        }
        if (split_piece(t, trie, (const unsigned char *)s->arena.data, &p, out))
            return -1;
    }
    return 0;
}
