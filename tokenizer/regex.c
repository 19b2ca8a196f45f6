/* regex.c - patterns for Split, Replace, Whitespace and ByteLevel through
 * Oniguruma, the engine the reference uses (onig crate, Ruby syntax, UTF-8),
 * iterated the way the onig crate's find_iter does (an empty match right
 * after the previous match is skipped by one character).  String patterns
 * are matched literally.  Every search runs under a retry limit so a hostile
 * pattern cannot hang an encoder thread. */
#include <oniguruma.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct tok_regex {
    regex_t *re;          /* NULL for a literal */
    char *lit; size_t lit_len;
};

#define TOK_REGEX_RETRY_LIMIT 10000000UL

static pthread_once_t onig_once = PTHREAD_ONCE_INIT;
static void onig_init_once(void)
{
    OnigEncoding enc = ONIG_ENCODING_UTF8;
    onig_initialize(&enc, 1);
}

int tok_regex_compile(const char *pattern, size_t len, bool literal, struct tok_regex **out, tok_error *err)
{
    struct tok_regex *r = calloc(1, sizeof *r);
    *out = NULL;
    if (!r) {
        tok_set_error(err, "regex: out of memory");
        return -1;
    }
    if (literal) {
        r->lit = malloc(len + 1);
        if (!r->lit) {
            free(r);
            tok_set_error(err, "regex: out of memory");
            return -1;
        }
        memcpy(r->lit, pattern, len);
        r->lit[len] = 0;
        r->lit_len = len;
        *out = r;
        return 0;
    }
    pthread_once(&onig_once, onig_init_once);
    OnigErrorInfo einfo;
    int rc = onig_new(&r->re, (const UChar *)pattern, (const UChar *)pattern + len, ONIG_OPTION_NONE,
                      ONIG_ENCODING_UTF8, ONIG_SYNTAX_RUBY, &einfo);
    if (rc != ONIG_NORMAL) {
        UChar msg[ONIG_MAX_ERROR_MESSAGE_LEN];
        onig_error_code_to_str(msg, rc, &einfo);
        tok_set_error(err, "regex /%.*s/: %s", (int)(len > 200 ? 200 : len), pattern, (const char *)msg);
        free(r);
        return -1;
    }
    *out = r;
    return 0;
}

void tok_regex_free(struct tok_regex *r)
{
    if (!r)
        return;
    if (r->re)
        onig_free(r->re);
    free(r->lit);
    free(r);
}

static int push_event(tok_pieces *ev, size_t a, size_t b, int match)
{
    return tok_pieces_push(ev, (tok_piece){(uint32_t)a, (uint32_t)(b - a), match, 0, 0});
}

/* All matches as (start, end) pairs appended to m (as pieces with id 1). */
static int find_all(const struct tok_regex *r, const char *s, size_t len, tok_pieces *m, tok_error *err)
{
    if (!r->re) {
        if (r->lit_len == 0)
            return 0;
        for (size_t i = 0; i + r->lit_len <= len;) {
            const char *p = memmem(s + i, len - i, r->lit, r->lit_len);
            if (!p)
                break;
            size_t a = (size_t)(p - s);
            if (push_event(m, a, a + r->lit_len, 1))
                return -1;
            i = a + r->lit_len;
        }
        return 0;
    }
    OnigRegion *region = onig_region_new();
    OnigMatchParam *mp = onig_new_match_param();
    if (!region || !mp) {
        if (region) onig_region_free(region, 1);
        if (mp) onig_free_match_param(mp);
        return -1;
    }
    onig_initialize_match_param(mp);
    onig_set_retry_limit_in_match_of_match_param(mp, TOK_REGEX_RETRY_LIMIT);
    const UChar *base = (const UChar *)s, *end = base + len;
    size_t pos = 0;
    long last_match_end = -1;
    int rc = 0;
    while (pos <= len) {
        int r2 = onig_search_with_param(r->re, base, end, base + pos, end, region, ONIG_OPTION_NONE, mp);
        if (r2 == ONIG_MISMATCH)
            break;
        if (r2 < 0) {
            UChar msg[ONIG_MAX_ERROR_MESSAGE_LEN];
            onig_error_code_to_str(msg, r2);
            tok_set_error(err, "regex search failed: %s", (const char *)msg);
            rc = -1;
            break;
        }
        size_t a = (size_t)region->beg[0], b = (size_t)region->end[0];
        if (a == b && last_match_end == (long)b) {
            /* empty match right after the previous one: step one character */
            if (pos >= len)
                break;
            size_t j = pos;
            tok_utf8_next((const unsigned char *)s, &j);
            pos = j;
            continue;
        }
        if (push_event(m, a, b, 1)) {
            rc = -1;
            break;
        }
        pos = b;
        last_match_end = (long)b;
        if (a == b && pos >= len)
            break;
    }
    onig_region_free(region, 1);
    onig_free_match_param(mp);
    return rc;
}

int tok_regex_events(const struct tok_regex *r, const char *s, size_t len, bool invert, tok_pieces *ev,
                     tok_error *err)
{
    tok_pieces m = {0};
    ev->n = 0;
    if (len == 0)
        return 0;
    int rc = find_all(r, s, len, &m, err);
    size_t prev = 0;
    for (size_t i = 0; rc == 0 && i < m.n; i++) {
        size_t a = m.v[i].off, b = a + m.v[i].len;
        if (prev != a)
            rc = push_event(ev, prev, a, invert);
        if (rc == 0)
            rc = push_event(ev, a, b, !invert);
        prev = b;
    }
    if (rc == 0 && prev != len)
        rc = push_event(ev, prev, len, invert);
    free(m.v);
    return rc;
}

int tok_replace_apply(const tok_normalizer *n, const char *in, size_t len, tok_buf *out, tok_error *err)
{
    tok_pieces m = {0};
    int rc = find_all(n->replace.re, in, len, &m, err);
    size_t prev = 0;
    for (size_t i = 0; rc == 0 && i < m.n; i++) {
        size_t a = m.v[i].off;
        rc = tok_buf_append(out, in + prev, a - prev) ||
             tok_buf_append(out, n->replace.content, n->replace.content_len);
        prev = a + m.v[i].len;
    }
    if (rc == 0)
        rc = tok_buf_append(out, in + prev, len - prev);
    free(m.v);
    return rc;
}
