/* pretokenizer.c - splits the normalized pieces into words.  Every
 * pre-tokenizer maps the piece list s->p1 to a new list (built in s->p2, then
 * swapped), mirroring `PreTokenizedString::split` in the reference: pieces
 * that already are tokens (added tokens) pass through, empty pieces vanish.
 * Splitting follows the reference's two steps: find (span, is_match) events,
 * then apply one of the five SplitDelimiterBehaviors. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int tok_regex_events(const struct tok_regex *re, const char *s, size_t len, bool invert, tok_pieces *ev,
                     tok_error *err);
int tok_metaspace(const tok_pretokenizer *p, struct tok_scratch *s, const tok_piece *in, tok_pieces *out);
int tok_bytelevel_pretok(const tok_pretokenizer *p, struct tok_scratch *s, const tok_piece *in, tok_pieces *out,
                         tok_error *err);

static int emit(tok_pieces *out, const tok_piece *parent, uint32_t a, uint32_t b)
{
    if (a == b)
        return 0;
    tok_piece x = *parent;
    x.first = parent->first && a == parent->off;
    x.off = a;
    x.len = b - a;
    return tok_pieces_push(out, x);
}

/* BertPreTokenizer: whitespace removed, punctuation isolated, in one pass. */
static int bert_split(struct tok_scratch *s, const tok_piece *in, tok_pieces *out)
{
    const unsigned char *t = (const unsigned char *)s->arena.data;
    size_t i = in->off, end = (size_t)in->off + in->len, word = i;
    while (i < end) {
        size_t at = i;
        uint32_t c;
        bool ws, punc;
        if (t[i] < 0x80) {
            c = t[i++];
            ws = c == ' ' || (c >= 0x09 && c <= 0x0D);
            punc = !ws && tok_is_bert_punc(c);
        } else {
            c = tok_utf8_next(t, &i);
            ws = tok_is_whitespace(c);
            punc = !ws && tok_is_bert_punc(c);
        }
        if (ws || punc) {
            if (emit(out, in, (uint32_t)word, (uint32_t)at))
                return -1;
            if (punc && emit(out, in, (uint32_t)at, (uint32_t)i))
                return -1;
            word = i;
        }
    }
    return emit(out, in, (uint32_t)word, (uint32_t)end);
}

/* Whitespace: the reference keeps the matches of \w+|[^\w\s]+ (Rust regex
 * classes) and drops the rest, i.e. runs of word characters and runs of
 * other non-space characters, with whitespace removed. */
static int whitespace_split(struct tok_scratch *s, const tok_piece *in, tok_pieces *out)
{
    const unsigned char *t = (const unsigned char *)s->arena.data;
    size_t i = in->off, end = (size_t)in->off + in->len, run = i;
    int kind = 0;   /* 0 none, 1 word run, 2 other run */
    while (i < end) {
        size_t at = i;
        uint32_t c = tok_utf8_next(t, &i);
        int k = tok_is_whitespace(c) ? 0 : tok_is_word_char(c) ? 1 : 2;
        if (k != kind) {
            if (kind && emit(out, in, (uint32_t)run, (uint32_t)at))
                return -1;
            run = at;
            kind = k;
        }
    }
    return kind ? emit(out, in, (uint32_t)run, (uint32_t)end) : 0;
}

/* Events for a character predicate: each matching char is one match. */
static int char_events(const char *arena, const tok_piece *in, bool (*pred)(uint32_t), tok_pieces *ev)
{
    const unsigned char *t = (const unsigned char *)arena;
    size_t i = in->off, end = (size_t)in->off + in->len, last = i;
    ev->n = 0;
    while (i < end) {
        size_t at = i;
        uint32_t c = tok_utf8_next(t, &i);
        if (pred(c)) {
            if (last < at && tok_pieces_push(ev, (tok_piece){(uint32_t)last, (uint32_t)(at - last), 0, 0, 0}))
                return -1;
            if (tok_pieces_push(ev, (tok_piece){(uint32_t)at, (uint32_t)(i - at), 1, 0, 0}))
                return -1;
            last = i;
        }
    }
    if (last < end && tok_pieces_push(ev, (tok_piece){(uint32_t)last, (uint32_t)(end - last), 0, 0, 0}))
        return -1;
    return 0;
}

/* Applies a SplitDelimiterBehavior to events (piece.id = is_match) exactly
 * as the reference's NormalizedString::split folds them. */
static int apply_behavior(tok_split_behavior b, tok_pieces *ev, const tok_piece *parent, tok_pieces *out)
{
    size_t n = ev->n, k = 0;
    tok_piece *e = ev->v;
    switch (b) {
    case TOK_SPLIT_REMOVED:
        for (size_t i = 0; i < n; i++)
            if (!e[i].id && emit(out, parent, e[i].off, e[i].off + e[i].len))
                return -1;
        return 0;
    case TOK_SPLIT_ISOLATED:
        for (size_t i = 0; i < n; i++)
            if (emit(out, parent, e[i].off, e[i].off + e[i].len))
                return -1;
        return 0;
    case TOK_SPLIT_CONTIGUOUS: {
        int prev = 0;
        for (size_t i = 0; i < n; i++) {
            if (e[i].id == prev && k > 0)
                e[k - 1].len = e[i].off + e[i].len - e[k - 1].off;
            else
                e[k++] = e[i];
            prev = e[i].id;
        }
        break;
    }
    case TOK_SPLIT_MERGED_PREV: {
        int prev = 0;
        for (size_t i = 0; i < n; i++) {
            if (e[i].id && !prev && k > 0)
                e[k - 1].len = e[i].off + e[i].len - e[k - 1].off;
            else
                e[k++] = e[i];
            prev = e[i].id;
        }
        break;
    }
    case TOK_SPLIT_MERGED_NEXT: {
        /* Folded from the right: a match joins the span after it. */
        int prev = 0;
        size_t w = n;  /* write from the end; result occupies e[w..n) */
        for (size_t i = n; i-- > 0;) {
            if (e[i].id && !prev && w < n) {
                e[w].len = e[w].off + e[w].len - e[i].off;
                e[w].off = e[i].off;
            } else {
                e[--w] = e[i];
            }
            prev = e[i].id;
        }
        for (size_t i = w; i < n; i++)
            if (emit(out, parent, e[i].off, e[i].off + e[i].len))
                return -1;
        return 0;
    }
    }
    for (size_t i = 0; i < k; i++)
        if (emit(out, parent, e[i].off, e[i].off + e[i].len))
            return -1;
    return 0;
}

static bool is_ws(uint32_t c) { return tok_is_whitespace(c); }
static bool is_digit(uint32_t c) { return tok_is_numeric(c); }

static int split_one(const tok_pretokenizer *p, struct tok_scratch *s, const tok_piece *in, tok_pieces *out,
                     tok_pieces *ev, tok_error *err)
{
    switch (p->type) {
    case TOK_PT_BERT:
        return bert_split(s, in, out);
    case TOK_PT_WHITESPACE_SPLIT:
        if (char_events(s->arena.data, in, is_ws, ev))
            return -1;
        return apply_behavior(TOK_SPLIT_REMOVED, ev, in, out);
    case TOK_PT_PUNCTUATION:
        if (char_events(s->arena.data, in, tok_is_bert_punc, ev))
            return -1;
        return apply_behavior(p->behavior, ev, in, out);
    case TOK_PT_DIGITS:
        if (char_events(s->arena.data, in, is_digit, ev))
            return -1;
        return apply_behavior(p->individual_digits ? TOK_SPLIT_ISOLATED : TOK_SPLIT_CONTIGUOUS, ev, in, out);
    case TOK_PT_WHITESPACE:
        return whitespace_split(s, in, out);
    case TOK_PT_SPLIT:
        ev->n = 0;
        if (tok_regex_events(p->re, s->arena.data + in->off, in->len, p->invert, ev, err))
            return -1;
        for (size_t i = 0; i < ev->n; i++)
            ev->v[i].off += in->off;
        return apply_behavior(p->behavior, ev, in, out);
    case TOK_PT_METASPACE:
        return tok_metaspace(p, s, in, out);
    case TOK_PT_BYTELEVEL:
        return tok_bytelevel_pretok(p, s, in, out, err);
    case TOK_PT_SEQUENCE:
        break;
    }
    return -1;
}

static int run_one(const tok_pretokenizer *p, struct tok_scratch *s, tok_error *err)
{
    if (p->type == TOK_PT_SEQUENCE) {
        for (size_t k = 0; k < p->n_items; k++)
            if (run_one(&p->items[k], s, err))
                return -1;
        return 0;
    }
    tok_pieces ev = {0};
    s->p2.n = 0;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < s->p1.n; i++) {
        tok_piece in = s->p1.v[i];
        if (in.id >= 0)
            rc = tok_pieces_push(&s->p2, in);
        else
            rc = split_one(p, s, &in, &s->p2, &ev, err);
    }
    free(ev.v);
    tok_pieces t = s->p1; s->p1 = s->p2; s->p2 = t;
    return rc;
}

int tok_pretokenize(const tok_pretokenizer *p, struct tok_scratch *s, tok_error *err)
{
    int rc = run_one(p, s, err);
    if (rc && err && !err->message[0])
        tok_set_error(err, "pre-tokenizer: out of memory");
    return rc;
}
