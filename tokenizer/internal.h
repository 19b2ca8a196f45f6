/* internal.h - the tokenizer's private data structures.  A tokenizer.json is
 * interpreted into a tree of small tagged structs (normalizer, pre-tokenizer,
 * model, post-processor), each mirroring one JSON "type"; encoding walks that
 * tree.  Nothing here is mutated after load, so a tokenizer can be shared by
 * threads; all per-call memory lives in struct tok_scratch, owned by the
 * caller's tok_encoding. */
#ifndef EMBEDC_TOKENIZER_INTERNAL_H
#define EMBEDC_TOKENIZER_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer.h"

/* ---- growable byte buffer ------------------------------------------------ */
typedef struct { char *data; size_t len, cap; } tok_buf;
int  tok_buf_reserve(tok_buf *b, size_t extra);              /* 0 ok, -1 oom */
int  tok_buf_append(tok_buf *b, const void *p, size_t n);
int  tok_buf_put_cp(tok_buf *b, uint32_t cp);                 /* UTF-8 encode */
void tok_buf_free(tok_buf *b);

/* ---- UTF-8 ----------------------------------------------------------------
 * Text inside the pipeline is known valid (checked once on entry), so the
 * decoder does not re-validate. */
static inline uint32_t tok_utf8_next(const unsigned char *s, size_t *i)
{
    uint32_t c = s[*i];
    if (c < 0x80) { *i += 1; return c; }
    if (c < 0xE0) { c = ((c & 0x1F) << 6) | (s[*i + 1] & 0x3F); *i += 2; return c; }
    if (c < 0xF0) { c = ((c & 0x0F) << 12) | ((uint32_t)(s[*i + 1] & 0x3F) << 6) | (s[*i + 2] & 0x3F); *i += 3; return c; }
    c = ((c & 0x07) << 18) | ((uint32_t)(s[*i + 1] & 0x3F) << 12) | ((uint32_t)(s[*i + 2] & 0x3F) << 6) | (s[*i + 3] & 0x3F);
    *i += 4;
    return c;
}
static inline size_t tok_utf8_len(uint32_t cp) { return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4; }
size_t tok_utf8_encode(uint32_t cp, char out[4]);
bool   tok_utf8_valid(const char *s, size_t len, size_t *bad_offset);
size_t tok_utf8_count(const char *s, size_t len);

/* ---- string -> id hash map (keys are not copied) -------------------------- */
typedef struct { const char *s; uint32_t len; int32_t id; } tok_map_slot;
typedef struct { tok_map_slot *slots; size_t mask, count; } tok_map;
int     tok_map_init(tok_map *m, size_t expected);
/* Returns 0 when inserted, 1 when the key was already present (value kept), -1 oom. */
int     tok_map_put(tok_map *m, const char *s, size_t len, int32_t id);
int32_t tok_map_get(const tok_map *m, const char *s, size_t len);
void    tok_map_free(tok_map *m);
uint64_t tok_hash(const char *s, size_t len);

/* ---- Unicode character classes (utf8proc underneath) ---------------------- */
bool tok_is_whitespace(uint32_t cp);         /* Rust char::is_whitespace */
bool tok_is_other(uint32_t cp);              /* general category Cc|Cf|Co|Cs (unicode_categories is_other) */
bool tok_is_punctuation(uint32_t cp);        /* general category P* */
bool tok_is_bert_punc(uint32_t cp);          /* ASCII punctuation or P* */
bool tok_is_chinese(uint32_t cp);            /* BERT's CJK ranges */
bool tok_is_mark_nonspacing(uint32_t cp);    /* Mn (BertNormalizer) */
bool tok_is_combining_mark(uint32_t cp);     /* M* (StripAccents) */
bool tok_is_alphanumeric(uint32_t cp);       /* Rust char::is_alphanumeric */
bool tok_is_numeric(uint32_t cp);            /* Rust char::is_numeric (Nd|Nl|No) */
bool tok_is_word_char(uint32_t cp);          /* regex \w */
/* Rust char::to_lowercase: appends the full lowercase mapping. */
int  tok_lowercase_cp(uint32_t cp, tok_buf *out);
enum tok_nf { TOK_NFC, TOK_NFD, TOK_NFKC, TOK_NFKD };
int  tok_unicode_normalize(const char *in, size_t len, enum tok_nf form, tok_buf *out);

/* ---- normalizers ---------------------------------------------------------- */
typedef enum {
    TOK_NORM_BERT, TOK_NORM_NFC, TOK_NORM_NFD, TOK_NORM_NFKC, TOK_NORM_NFKD,
    TOK_NORM_LOWERCASE, TOK_NORM_STRIP, TOK_NORM_STRIP_ACCENTS, TOK_NORM_REPLACE,
    TOK_NORM_PREPEND, TOK_NORM_PRECOMPILED, TOK_NORM_SEQUENCE
} tok_norm_type;

struct tok_regex;   /* compiled Oniguruma pattern, see regex.c */

typedef struct tok_normalizer {
    tok_norm_type type;
    struct { bool clean_text, chinese, strip_accents, lowercase; } bert;
    struct { bool left, right; } strip;
    struct { char *pattern; size_t pattern_len; struct tok_regex *re; char *content; size_t content_len; } replace;
    struct { char *prepend; size_t len; } prepend;
    struct tok_charsmap *charsmap;
    struct tok_normalizer *items; size_t n_items;   /* Sequence */
} tok_normalizer;

/* ---- pre-tokenizers ------------------------------------------------------- */
typedef enum {
    TOK_PT_BERT, TOK_PT_WHITESPACE, TOK_PT_WHITESPACE_SPLIT, TOK_PT_PUNCTUATION, TOK_PT_DIGITS,
    TOK_PT_METASPACE, TOK_PT_BYTELEVEL, TOK_PT_SPLIT, TOK_PT_SEQUENCE
} tok_pt_type;

typedef enum { TOK_SPLIT_REMOVED, TOK_SPLIT_ISOLATED, TOK_SPLIT_MERGED_PREV, TOK_SPLIT_MERGED_NEXT, TOK_SPLIT_CONTIGUOUS } tok_split_behavior;
typedef enum { TOK_PREPEND_ALWAYS, TOK_PREPEND_NEVER, TOK_PREPEND_FIRST } tok_prepend_scheme;

typedef struct tok_pretokenizer {
    tok_pt_type type;
    tok_split_behavior behavior;      /* Punctuation, Split */
    bool individual_digits;           /* Digits */
    bool add_prefix_space, use_regex; /* ByteLevel */
    bool split, invert;               /* Metaspace split / Split invert */
    tok_prepend_scheme prepend_scheme;
    char replacement[8]; size_t replacement_len;   /* Metaspace */
    char *pattern; size_t pattern_len; struct tok_regex *re;  /* Split */
    struct tok_pretokenizer *items; size_t n_items;
} tok_pretokenizer;

/* ---- models --------------------------------------------------------------- */
typedef enum { TOK_MODEL_WORDPIECE, TOK_MODEL_BPE, TOK_MODEL_UNIGRAM } tok_model_type;

typedef struct {
    char **tokens;        /* by id; NULL for holes */
    uint32_t *lens;
    size_t n;             /* ids are 0..n-1 */
    tok_map map;
} tok_vocab;

typedef struct {
    int32_t unk_id;
    char prefix[32]; size_t prefix_len;
    size_t max_chars;
    tok_map cont;         /* tokens starting with prefix, keyed without it */
} tok_wordpiece;

struct tok_bpe;
struct tok_unigram;

typedef struct {
    tok_model_type type;
    tok_vocab vocab;
    tok_wordpiece wp;
    struct tok_bpe *bpe;
    struct tok_unigram *uni;
} tok_model;

/* ---- post-processor ------------------------------------------------------- */
typedef struct {
    bool is_special;       /* else the sequence A */
    int32_t *ids; size_t n_ids;
    int32_t type_id;
} tok_tmpl_item;

typedef struct {
    bool present;
    tok_tmpl_item *single; size_t n_single;
    size_t added_single;   /* number of special ids the template adds */
    size_t seq_single;     /* times the sequence appears (1 in every real file) */
} tok_postproc;

/* ---- added tokens --------------------------------------------------------- */
typedef struct {
    char *content; size_t len;
    int32_t id;
    bool special, normalized, lstrip, rstrip, single_word;
} tok_added;

/* A byte trie over added-token contents, for leftmost-longest matching. */
typedef struct { int32_t first_child, next_sibling, token; unsigned char byte; } tok_trie_node;
typedef struct { tok_trie_node *nodes; size_t n, cap; uint8_t first_byte[256]; } tok_trie;

/* ---- the tokenizer -------------------------------------------------------- */
struct tok_tokenizer {
    char origin[128];
    bool has_normalizer, has_pretok;
    tok_normalizer normalizer;
    tok_pretokenizer pretok;
    tok_model model;
    tok_postproc post;
    tok_added *added; size_t n_added;
    tok_trie trie_raw, trie_norm;   /* non-normalized / normalized added tokens */
    tok_map added_map;              /* content -> id */
    size_t id_space;                /* max id + 1 over model and added tokens */
    size_t trunc_max;               /* 0: none */
    bool trunc_left;
    int32_t pad_id;
};

/* ---- per-call scratch ----------------------------------------------------- */
typedef struct { uint32_t off, len; int32_t id; uint8_t special; uint8_t first; } tok_piece;

typedef struct { tok_piece *v; size_t n, cap; } tok_pieces;
int tok_pieces_push(tok_pieces *p, tok_piece x);

struct tok_scratch {
    tok_buf arena;            /* bytes of all pieces */
    tok_buf t1, t2, t3;       /* normalizer temporaries */
    tok_pieces p1, p2;
    int32_t *ids; size_t n_ids, cap_ids;   /* model output, before post-processing */
    uint8_t *special; 
    void *model_scratch; size_t model_scratch_cap;
    void *model_scratch2; size_t model_scratch2_cap;
    void *word_cache;         /* BPE: recent words -> ids, see bpe.c */
};
int tok_scratch_push_id(struct tok_scratch *s, int32_t id, uint8_t special);

/* ---- stages --------------------------------------------------------------- */
void tok_set_error(tok_error *err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Puts "PREFIX: " before the message already in err. */
void tok_prefix_error(tok_error *err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
int  tok_charsmap_load(const char *b64, size_t len, struct tok_charsmap **out, const char *origin, tok_error *err);
int  tok_charsmap_apply(const struct tok_charsmap *m, const char *in, size_t len, tok_buf *out);
void tok_charsmap_free(struct tok_charsmap *m);
int  tok_normalize(const tok_normalizer *n, const char *in, size_t len, tok_buf *out, struct tok_scratch *s, tok_error *err);
void tok_normalizer_free(tok_normalizer *n);
int  tok_pretokenize(const tok_pretokenizer *p, struct tok_scratch *s, tok_error *err);  /* p1 -> p1 */
void tok_pretokenizer_free(tok_pretokenizer *p);
int  tok_model_encode(const tok_model *m, const char *word, size_t len, struct tok_scratch *s, tok_error *err);
void tok_model_free(tok_model *m);
int  tok_wordpiece_encode(const tok_model *m, const char *word, size_t len, struct tok_scratch *s);
int  tok_split_added(const tok_tokenizer *t, const tok_trie *trie, struct tok_scratch *s, tok_pieces *in, tok_pieces *out);
int  tok_trie_add(tok_trie *t, const char *s, size_t len, int32_t token);
void tok_trie_free(tok_trie *t);

#endif
