/* normalizer.c - applies a normalizer tree to a string.  Offsets are never
 * needed by callers of this library, so every normalizer is a plain
 * string -> string function; a Sequence ping-pongs between two scratch
 * buffers. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int tok_replace_apply(const tok_normalizer *n, const char *in, size_t len, tok_buf *out, tok_error *err);
int tok_charsmap_apply(const struct tok_charsmap *m, const char *in, size_t len, tok_buf *out);

/* clean_text and handle_chinese_chars, and lowercase too when no accent
 * stripping has to come in between: one pass over the code points. */
static int bert_pass1(const tok_normalizer *n, const char *in, size_t len, tok_buf *out, bool lower)
{
    const unsigned char *s = (const unsigned char *)in;
    if (tok_buf_reserve(out, len))
        return -1;
    size_t i = 0;
    while (i < len) {
        unsigned char b = s[i];
        if (b < 0x80) {
            /* ASCII fast path: controls other than \t \n \r vanish, those three become spaces. */
            i++;
            if (n->bert.clean_text && (b < 0x20 || b == 0x7F)) {
                if (b != '\t' && b != '\n' && b != '\r')
                    continue;
                b = ' ';
            }
            if (lower && b >= 'A' && b <= 'Z')
                b += 32;
            if (tok_buf_append(out, &b, 1))
                return -1;
            continue;
        }
        uint32_t c = tok_utf8_next(s, &i);
        if (n->bert.clean_text) {
            if (c == 0xFFFD || tok_is_other(c))
                continue;
            if (tok_is_whitespace(c))
                c = ' ';
        }
        int rc;
        if (n->bert.chinese && tok_is_chinese(c)) {
            rc = tok_buf_append(out, " ", 1) || tok_buf_put_cp(out, c) || tok_buf_append(out, " ", 1);
        } else if (lower) {
            rc = tok_lowercase_cp(c, out);
        } else {
            rc = tok_buf_put_cp(out, c);
        }
        if (rc)
            return -1;
    }
    return 0;
}

static int filter_marks(const char *in, size_t len, tok_buf *out, bool lower, bool (*is_mark)(uint32_t))
{
    const unsigned char *s = (const unsigned char *)in;
    size_t i = 0;
    if (tok_buf_reserve(out, len))
        return -1;
    while (i < len) {
        uint32_t c = tok_utf8_next(s, &i);
        if (is_mark(c))
            continue;
        if (lower ? tok_lowercase_cp(c, out) : tok_buf_put_cp(out, c))
            return -1;
    }
    return 0;
}

static int lowercase_all(const char *in, size_t len, tok_buf *out)
{
    const unsigned char *s = (const unsigned char *)in;
    size_t i = 0;
    while (i < len) {
        if (tok_lowercase_cp(tok_utf8_next(s, &i), out))
            return -1;
    }
    return 0;
}

static int bert_normalize(const tok_normalizer *n, const char *in, size_t len, tok_buf *out, struct tok_scratch *s)
{
    if (!n->bert.strip_accents)
        return bert_pass1(n, in, len, out, n->bert.lowercase);
    s->t3.len = 0;
    if (bert_pass1(n, in, len, &s->t3, false))
        return -1;
    s->t2.len = 0;
    if (tok_unicode_normalize(s->t3.data, s->t3.len, TOK_NFD, &s->t2))
        return -1;
    return filter_marks(s->t2.data, s->t2.len, out, n->bert.lowercase, tok_is_mark_nonspacing);
}

static int strip_ws(const tok_normalizer *n, const char *in, size_t len, tok_buf *out)
{
    const unsigned char *s = (const unsigned char *)in;
    size_t a = 0, b = len;
    while (n->strip.left && a < b) {
        size_t j = a;
        if (!tok_is_whitespace(tok_utf8_next(s, &j)))
            break;
        a = j;
    }
    while (n->strip.right && b > a) {
        size_t k = b - 1;
        while (k > a && (s[k] & 0xC0) == 0x80)
            k--;
        size_t j = k;
        if (!tok_is_whitespace(tok_utf8_next(s, &j)))
            break;
        b = k;
    }
    return tok_buf_append(out, in + a, b - a);
}

static int apply_one(const tok_normalizer *n, const char *in, size_t len, tok_buf *out, struct tok_scratch *s,
                     tok_error *err);

static int apply_sequence(const tok_normalizer *n, const char *in, size_t len, tok_buf *out, struct tok_scratch *s,
                          tok_error *err)
{
    /* Each step reads the previous result; copies keep the steps'
     * temporaries (t2/t3, used inside BertNormalizer) free for them. */
    tok_buf cur = {0}, next = {0};
    int rc = tok_buf_append(&cur, in, len);
    for (size_t k = 0; rc == 0 && k < n->n_items; k++) {
        next.len = 0;
        rc = apply_one(&n->items[k], cur.data ? cur.data : "", cur.len, &next, s, err);
        tok_buf t = cur; cur = next; next = t;
    }
    if (rc == 0)
        rc = tok_buf_append(out, cur.data, cur.len);
    tok_buf_free(&cur);
    tok_buf_free(&next);
    return rc;
}

static int apply_one(const tok_normalizer *n, const char *in, size_t len, tok_buf *out, struct tok_scratch *s,
                     tok_error *err)
{
    switch (n->type) {
    case TOK_NORM_BERT: return bert_normalize(n, in, len, out, s);
    case TOK_NORM_NFC: return tok_unicode_normalize(in, len, TOK_NFC, out);
    case TOK_NORM_NFD: return tok_unicode_normalize(in, len, TOK_NFD, out);
    case TOK_NORM_NFKC: return tok_unicode_normalize(in, len, TOK_NFKC, out);
    case TOK_NORM_NFKD: return tok_unicode_normalize(in, len, TOK_NFKD, out);
    case TOK_NORM_LOWERCASE: return lowercase_all(in, len, out);
    case TOK_NORM_STRIP: return strip_ws(n, in, len, out);
    case TOK_NORM_STRIP_ACCENTS: return filter_marks(in, len, out, false, tok_is_combining_mark);
    case TOK_NORM_PREPEND:
        if (len && tok_buf_append(out, n->prepend.prepend, n->prepend.len))
            return -1;
        return tok_buf_append(out, in, len);
    case TOK_NORM_REPLACE: return tok_replace_apply(n, in, len, out, err);
    case TOK_NORM_PRECOMPILED: return tok_charsmap_apply(n->charsmap, in, len, out);
    case TOK_NORM_SEQUENCE: return apply_sequence(n, in, len, out, s, err);
    }
    return -1;
}

int tok_normalize(const tok_normalizer *n, const char *in, size_t len, tok_buf *out, struct tok_scratch *s,
                  tok_error *err)
{
    int rc = apply_one(n, in, len, out, s, err);
    if (rc && err && !err->message[0])
        tok_set_error(err, "normalizer: out of memory");
    return rc;
}
