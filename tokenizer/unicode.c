/* unicode.c - character classes and case/normal-form mappings with the
 * semantics the Rust `tokenizers` library uses (Rust's char methods and the
 * unicode_categories crate), computed from utf8proc's tables. */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "internal.h"
#include "unicode_tables.h"

static bool in_table(const uint32_t (*tab)[2], size_t n, uint32_t c)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c < tab[mid][0])
            hi = mid;
        else if (c > tab[mid][1])
            lo = mid + 1;
        else
            return true;
    }
    return false;
}
#define IN_TABLE(tab, c) in_table(tab, sizeof tab / sizeof tab[0], c)

bool tok_is_whitespace(uint32_t c)
{
    /* Unicode White_Space property, which Rust's char::is_whitespace tests. */
    if (c <= 0x20)
        return c == 0x20 || (c >= 0x09 && c <= 0x0D);
    if (c < 0x85)
        return false;
    switch (c) {
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000:
        return true;
    default:
        return c >= 0x2000 && c <= 0x200A;
    }
}

static utf8proc_category_t cat(uint32_t c)
{
    return utf8proc_category((utf8proc_int32_t)c);
}

bool tok_is_other(uint32_t c)
{
    /* unicode_categories' is_other(): Cc, Cf, Co, Cs at the crate's Unicode
     * version; unassigned code points are kept, as the reference keeps them. */
    if (c < 0x80)
        return c < 0x20 || c == 0x7F;
    return IN_TABLE(tok_tab_other, c);
}

bool tok_is_punctuation(uint32_t c)
{
    if (c < 0x80)
        return tok_is_bert_punc(c) && c != '$' && c != '+' && c != '<' && c != '=' && c != '>' && c != '^' &&
               c != '`' && c != '|' && c != '~';
    return IN_TABLE(tok_tab_punctuation, c);
}

bool tok_is_bert_punc(uint32_t c)
{
    if (c < 0x80)
        return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) ||
               (c >= 0x7B && c <= 0x7E);
    return IN_TABLE(tok_tab_punctuation, c);
}

bool tok_is_chinese(uint32_t c)
{
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
           (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

bool tok_is_mark_nonspacing(uint32_t c)
{
    return c >= 0x300 && IN_TABLE(tok_tab_mark_nonspacing, c);
}

bool tok_is_combining_mark(uint32_t c)
{
    return c >= 0x300 && IN_TABLE(tok_tab_combining_mark, c);
}

bool tok_is_numeric(uint32_t c)
{
    if (c < 0x80)
        return c >= '0' && c <= '9';
    utf8proc_category_t k = cat(c);
    return k == UTF8PROC_CATEGORY_ND || k == UTF8PROC_CATEGORY_NL || k == UTF8PROC_CATEGORY_NO;
}

bool tok_is_alphanumeric(uint32_t c)
{
    if (c < 0x80)
        return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
    utf8proc_category_t k = cat(c);
    return (k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO) || k == UTF8PROC_CATEGORY_ND ||
           k == UTF8PROC_CATEGORY_NL || k == UTF8PROC_CATEGORY_NO;
}

bool tok_is_word_char(uint32_t c)
{
    /* Rust regex's \w: Alphabetic, M*, Nd, Pc, Join_Control.  Alphabetic is
     * L*, Nl and Other_Alphabetic; the latter is M* except for the circled
     * and squared letters below (category So). */
    if (c < 0x80)
        return c == '_' || tok_is_alphanumeric(c);
    if (c == 0x200C || c == 0x200D || (c >= 0x24B6 && c <= 0x24E9) || (c >= 0x1F130 && c <= 0x1F149) ||
        (c >= 0x1F150 && c <= 0x1F169) || (c >= 0x1F170 && c <= 0x1F189))
        return true;
    utf8proc_category_t k = cat(c);
    return (k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO) || k == UTF8PROC_CATEGORY_NL ||
           (k >= UTF8PROC_CATEGORY_MN && k <= UTF8PROC_CATEGORY_ME) || k == UTF8PROC_CATEGORY_ND ||
           k == UTF8PROC_CATEGORY_PC;
}

int tok_lowercase_cp(uint32_t c, tok_buf *out)
{
    if (c < 0x80) {
        char ch = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
        return tok_buf_append(out, &ch, 1);
    }
    /* The one unconditional multi-character lowercase mapping in
     * SpecialCasing.txt, which Rust's to_lowercase applies. */
    if (c == 0x130)
        return tok_buf_append(out, "i\xCC\x87", 3);
    return tok_buf_put_cp(out, (uint32_t)utf8proc_tolower((utf8proc_int32_t)c));
}

static bool all_ascii(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] >= 0x80)
            return false;
    return true;
}

int tok_unicode_normalize(const char *in, size_t len, enum tok_nf form, tok_buf *out)
{
    if (all_ascii(in, len))
        return tok_buf_append(out, in, len);
    utf8proc_option_t opt = UTF8PROC_STABLE;
    switch (form) {
    case TOK_NFC: opt |= UTF8PROC_COMPOSE; break;
    case TOK_NFD: opt |= UTF8PROC_DECOMPOSE; break;
    case TOK_NFKC: opt |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT; break;
    case TOK_NFKD: opt |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT; break;
    }
    if (len > (size_t)INT32_MAX / 8)
        return -1;
    /* Decompose into a code point buffer (a decomposition expands a character
     * to at most 18 code points, so retry once with the exact size). */
    size_t cap = len + 16;
    utf8proc_int32_t *buf = NULL;
    utf8proc_ssize_t n;
    for (int attempt = 0; attempt < 2; attempt++) {
        utf8proc_int32_t *nb = realloc(buf, cap * sizeof *buf);
        if (!nb) { free(buf); return -1; }
        buf = nb;
        n = utf8proc_decompose((const utf8proc_uint8_t *)in, (utf8proc_ssize_t)len, buf, (utf8proc_ssize_t)cap,
                               (utf8proc_option_t)(opt & ~(utf8proc_option_t)UTF8PROC_COMPOSE) | UTF8PROC_DECOMPOSE);
        if (n < 0) { free(buf); return -1; }
        if ((size_t)n <= cap)
            break;
        cap = (size_t)n;
    }
    if (opt & UTF8PROC_COMPOSE) {
        n = utf8proc_normalize_utf32(buf, n, opt);
        if (n < 0) { free(buf); return -1; }
    }
    int rc = tok_buf_reserve(out, (size_t)n * 4);
    for (utf8proc_ssize_t i = 0; rc == 0 && i < n; i++)
        out->len += tok_utf8_encode((uint32_t)buf[i], out->data + out->len);
    free(buf);
    return rc;
}
