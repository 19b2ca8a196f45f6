/*
 * Turning one document into ids for a static model (see engine.h).
 *
 * Word vectors use embedc's word splitter: the text (invalid UTF-8 replaced,
 * lowercased when asked or when the vocabulary has no uppercase letter) is cut
 * at whitespace and control characters; every punctuation or symbol code point
 * (Unicode categories P* and S*) is a word of its own; the runs of anything
 * else (letters, marks, digits) are words. Words missing from the vocabulary
 * are dropped and counted as out-of-vocabulary.
 *
 * model2vec follows StaticModel.encode: the text is cut to max_length x the
 * median token length (in code points), encoded without special tokens and
 * truncated to max_length tokens, and the unknown token is dropped.
 * StaticEmbedding encodes without special tokens, keeping every id.
 */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "engine.h"
#include "error.h"

enum { CH_WORD, CH_SPACE, CH_PUNCT };

static int char_class(utf8proc_int32_t cp) {
    switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_ZS: case UTF8PROC_CATEGORY_ZL: case UTF8PROC_CATEGORY_ZP:
    case UTF8PROC_CATEGORY_CC: case UTF8PROC_CATEGORY_CF:
        return CH_SPACE;
    case UTF8PROC_CATEGORY_PC: case UTF8PROC_CATEGORY_PD: case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE: case UTF8PROC_CATEGORY_PI: case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO: case UTF8PROC_CATEGORY_SM: case UTF8PROC_CATEGORY_SC:
    case UTF8PROC_CATEGORY_SK: case UTF8PROC_CATEGORY_SO:
        return CH_PUNCT;
    default:
        return CH_WORD;
    }
}

typedef struct {
    const emb_static_vectors *sv;
    int32_t *ids, *groups;
    size_t cap, n;
    uint64_t oov;
    int truncated;
} word_sink;

/* A known word is one row; an unknown one, in a fastText .bin, the k rows of
 * its n-grams, each marked with k in groups (the backend averages them into
 * the word's vector before pooling words). */
static void emit(word_sink *w, const char *s, size_t len) {
    if (!len || w->truncated) return;   /* the document is cut at the first word that does not fit */
    int64_t row = emb_sv_lookup(w->sv, s, len);
    if (row >= 0) {
        if (w->n < w->cap) {
            if (w->groups) w->groups[w->n] = 1;
            w->ids[w->n++] = (int32_t)row;
        } else {
            w->truncated = 1;
        }
        return;
    }
    int32_t rows[2048];
    size_t k = strncmp(s, "</s>", len) || len != 4 ? emb_sv_subword_rows(w->sv, s, len, rows, 2048) : 0;
    if (k == 0 || k > 2048) { w->oov++; return; }
    if (w->n + k > w->cap) { w->truncated = 1; return; }
    for (size_t i = 0; i < k; i++) {
        if (w->groups) w->groups[w->n] = (int32_t)k;
        w->ids[w->n++] = rows[i];
    }
}

size_t eng_split_words(const char *s, size_t len, eng_word_fn fn, void *ud) {
    size_t i = 0, start = 0, words = 0;
    int in_word = 0;
    while (i < len) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(len - i), &cp);
        if (k <= 0) { k = 1; cp = 0xFFFD; }
        int c = char_class(cp);
        if (c != CH_WORD && in_word) { fn(ud, s + start, i - start); words++; in_word = 0; }
        if (c == CH_PUNCT) { fn(ud, s + i, (size_t)k); words++; }
        if (c == CH_WORD && !in_word) { start = i; in_word = 1; }
        i += (size_t)k;
    }
    if (in_word) { fn(ud, s + start, len - start); words++; }
    return words;
}

static void emit_cb(void *ud, const char *s, size_t len) { emit(ud, s, len); }

/* Byte length of the first `chars` code points of s (Python's s[:chars]). */
static size_t cut_code_points(const char *s, size_t len, size_t chars) {
    size_t i = 0;
    while (i < len && chars > 0) {
        i++;
        while (i < len && ((unsigned char)s[i] & 0xC0) == 0x80) i++;
        chars--;
    }
    return i;
}

emb_status eng_static_tokenize(const emb_model *m, const char *text, size_t len, tok_encoding *scratch,
                               int32_t *ids, int32_t *groups, size_t cap, size_t *n_out, uint64_t *oov,
                               int *invalid_utf8, int *truncated, emb_error *err) {
    const emb_static_vectors *sv = m->sv;
    char *fixed = NULL, *lower = NULL;
    size_t flen = 0;
    emb_status st = EMB_OK;
    *n_out = 0;
    *oov = 0;
    *truncated = 0;
    size_t bad = tok_utf8_repair(text, len, &fixed, &flen);
    if (!fixed) return emb_fail(err, EMB_ERR_NOMEM, "out of memory repairing UTF-8");
    *invalid_utf8 = bad > 0;
    const char *s = fixed;
    if (emb_sv_is_word_format(sv)) {
        if (m->sv_lowercase) {
            lower = eng_lowercase_utf8(s, flen, &flen);
            if (!lower) { st = emb_fail(err, EMB_ERR_NOMEM, "out of memory"); goto done; }
            s = lower;
        }
        word_sink w = {sv, ids, groups, cap, 0, 0, 0};
        eng_split_words(s, flen, emit_cb, &w);
        *n_out = w.n;
        *oov = w.oov;
        *truncated = w.truncated;
        goto done;
    }
    size_t max_tokens = TOK_NO_TRUNCATION;
    if (sv->format == SV_MODEL2VEC && m->sv_truncate > 0) {
        max_tokens = (size_t)m->sv_truncate;
        flen = cut_code_points(s, flen, max_tokens * (size_t)m->sv_median_token_len);
    } else if (sv->format == SV_ST_STATIC) {
        max_tokens = 0;   /* tokenizer.json's own truncation, as tokenizers does */
    }
    tok_error terr;
    if (tok_encode(m->tok, s, flen, 0, max_tokens, scratch, &terr) != 0) {
        st = emb_fail(err, EMB_ERR_FORMAT, "tokenizer: %s", terr.message);
        goto done;
    }
    size_t n = 0;
    for (size_t i = 0; i < scratch->len; i++) {
        int32_t id = scratch->ids[i];
        if (id == sv->unk_id && sv->format == SV_MODEL2VEC) { (*oov)++; continue; }
        if (id < 0 || (size_t)id >= sv->n_ids) {
            st = emb_fail(err, EMB_ERR_FORMAT, "token id %d is outside the embedding table's %zu ids", id, sv->n_ids);
            goto done;
        }
        if (n < cap) {
            if (groups) groups[n] = 1;
            ids[n++] = id;
        } else {
            *truncated = 1;
        }
    }
    *n_out = n;
done:
    free(fixed);
    free(lower);
    return st;
}

int eng_median_token_length(const tok_tokenizer *tok) {
    /* int(np.median(lengths)) over the vocabulary's tokens, in code points:
     * the mean of the two middle values when the count is even, floored. */
    enum { CAP = 4096 };
    size_t *hist = calloc(CAP + 1, sizeof *hist), v = tok_vocab_size(tok), n = 0;
    if (!hist) return 1;
    for (size_t id = 0; id < v; id++) {
        const char *t = tok_id_to_token(tok, (int32_t)id);
        if (!t) continue;
        size_t cps = 0;
        for (const unsigned char *p = (const unsigned char *)t; *p; p++) cps += (*p & 0xC0) != 0x80;
        hist[cps < CAP ? cps : CAP]++;
        n++;
    }
    int lo = -1, hi = -1;
    size_t seen = 0;
    for (int len = 0; len <= CAP && hi < 0; len++) {
        seen += hist[len];
        if (lo < 0 && n && seen >= (n + 1) / 2) lo = len;        /* element (n-1)/2 */
        if (n && seen >= n / 2 + 1) hi = len;                     /* element n/2 */
    }
    free(hist);
    if (!n) return 1;
    return n % 2 ? hi : (lo + hi) / 2;
}
