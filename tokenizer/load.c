/* load.c - interprets a tokenizer.json document into the component tree of
 * internal.h.  Everything read from the file is checked before it is used:
 * types, ranges, uniqueness of ids; an error names the origin and the JSON
 * field.  Component types this build does not implement are refused at load
 * time rather than silently producing different ids. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

int  tok_vocab_load_object(tok_vocab *v, const cJSON *vocab, const char *origin, tok_error *err);
int  tok_bpe_load(tok_model *m, const cJSON *j, const char *origin, tok_error *err);
int  tok_unigram_load(tok_model *m, const cJSON *j, const char *origin, tok_error *err);
int  tok_regex_compile(const char *pattern, size_t len, bool literal, struct tok_regex **out, tok_error *err);
void tok_regex_free(struct tok_regex *re);
int  tok_charsmap_load(const char *b64, size_t len, struct tok_charsmap **out, const char *origin, tok_error *err);
void tok_charsmap_free(struct tok_charsmap *m);

#define FAIL(...) do { tok_set_error(err, __VA_ARGS__); return -1; } while (0)

static char *dup_n(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = 0;
    }
    return p;
}

/* Strings that end up inside the text must be valid UTF-8: the pipeline
 * decodes without re-validating. */
static int check_utf8(const char *s, size_t len, const char *origin, const char *ctx, const char *name,
                      tok_error *err)
{
    if (!tok_utf8_valid(s, len, NULL))
        FAIL("%s: field '%s.%s' is not valid UTF-8", origin, ctx, name);
    return 0;
}

static const cJSON *field(const cJSON *o, const char *name)
{
    return cJSON_GetObjectItemCaseSensitive(o, name);
}

static bool get_bool(const cJSON *o, const char *name, bool dflt)
{
    const cJSON *v = field(o, name);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

static const char *get_str(const cJSON *o, const char *name)
{
    const cJSON *v = field(o, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A JSON number that is an integer in [lo, hi] (which int64_t holds): the
 * range is checked before any conversion, since converting a double outside
 * int64_t's range (1e300, say) is undefined behaviour. */
static bool is_int_in(const cJSON *v, double lo, double hi)
{
    if (!cJSON_IsNumber(v))
        return false;
    const double d = v->valuedouble;
    return d >= lo && d <= hi && d == (double)(int64_t)d;
}

/* Integer field in [lo, hi]; absent or null gives dflt. */
static int get_int(const cJSON *o, const char *name, double lo, double hi, int64_t dflt, int64_t *out,
                   const char *origin, const char *ctx, tok_error *err)
{
    const cJSON *v = field(o, name);
    if (!v || cJSON_IsNull(v)) {
        *out = dflt;
        return 0;
    }
    if (!is_int_in(v, lo, hi))
        FAIL("%s: field '%s.%s' must be an integer in [%.0f, %.0f]", origin, ctx, name, lo, hi);
    *out = (int64_t)v->valuedouble;
    return 0;
}

static const char *type_of(const cJSON *o)
{
    return get_str(o, "type");
}

/* ---- normalizer ----------------------------------------------------------- */
static int load_normalizer(tok_normalizer *n, const cJSON *j, const char *origin, const char *ctx, tok_error *err);

static int load_pattern(const cJSON *pat, char **out, size_t *len, bool *is_regex, const char *origin,
                        const char *ctx, tok_error *err)
{
    const char *s = get_str(pat, "String");
    *is_regex = false;
    if (!s) {
        s = get_str(pat, "Regex");
        *is_regex = true;
    }
    if (!s)
        FAIL("%s: field '%s.pattern' must be {\"String\": ...} or {\"Regex\": ...}", origin, ctx);
    *len = strlen(s);
    if (check_utf8(s, *len, origin, ctx, "pattern", err))
        return -1;
    *out = dup_n(s, *len);
    if (!*out)
        FAIL("%s: out of memory", origin);
    return 0;
}

static int load_normalizer(tok_normalizer *n, const cJSON *j, const char *origin, const char *ctx, tok_error *err)
{
    memset(n, 0, sizeof *n);
    const char *type = type_of(j);
    if (!cJSON_IsObject(j) || !type)
        FAIL("%s: field '%s' must be an object with a \"type\"", origin, ctx);
    if (!strcmp(type, "BertNormalizer")) {
        n->type = TOK_NORM_BERT;
        n->bert.clean_text = get_bool(j, "clean_text", true);
        n->bert.chinese = get_bool(j, "handle_chinese_chars", true);
        n->bert.lowercase = get_bool(j, "lowercase", true);
        /* strip_accents: null means "same as lowercase", like the reference */
        n->bert.strip_accents = get_bool(j, "strip_accents", n->bert.lowercase);
    } else if (!strcmp(type, "NFC")) n->type = TOK_NORM_NFC;
    else if (!strcmp(type, "NFD")) n->type = TOK_NORM_NFD;
    else if (!strcmp(type, "NFKC")) n->type = TOK_NORM_NFKC;
    else if (!strcmp(type, "NFKD")) n->type = TOK_NORM_NFKD;
    else if (!strcmp(type, "Lowercase")) n->type = TOK_NORM_LOWERCASE;
    else if (!strcmp(type, "StripAccents")) n->type = TOK_NORM_STRIP_ACCENTS;
    else if (!strcmp(type, "Strip")) {
        n->type = TOK_NORM_STRIP;
        n->strip.left = get_bool(j, "strip_left", true);
        n->strip.right = get_bool(j, "strip_right", true);
    } else if (!strcmp(type, "Prepend")) {
        const char *p = get_str(j, "prepend");
        if (!p)
            FAIL("%s: field '%s.prepend' must be a string", origin, ctx);
        n->type = TOK_NORM_PREPEND;
        n->prepend.len = strlen(p);
        if (check_utf8(p, n->prepend.len, origin, ctx, "prepend", err))
            return -1;
        n->prepend.prepend = dup_n(p, n->prepend.len);
        if (!n->prepend.prepend)
            FAIL("%s: out of memory", origin);
    } else if (!strcmp(type, "Replace")) {
        bool is_regex;
        const char *content = get_str(j, "content");
        n->type = TOK_NORM_REPLACE;
        if (!content)
            FAIL("%s: field '%s.content' must be a string", origin, ctx);
        if (load_pattern(field(j, "pattern"), &n->replace.pattern, &n->replace.pattern_len, &is_regex, origin, ctx,
                         err))
            return -1;
        n->replace.content_len = strlen(content);
        if (check_utf8(content, n->replace.content_len, origin, ctx, "content", err))
            return -1;
        n->replace.content = dup_n(content, n->replace.content_len);
        if (!n->replace.content)
            FAIL("%s: out of memory", origin);
        if (tok_regex_compile(n->replace.pattern, n->replace.pattern_len, !is_regex, &n->replace.re, err)) {
            tok_prefix_error(err, "%s: field '%s.pattern'", origin, ctx);
            return -1;
        }
    } else if (!strcmp(type, "Precompiled")) {
        const char *b64 = get_str(j, "precompiled_charsmap");
        n->type = TOK_NORM_PRECOMPILED;
        if (!b64)
            FAIL("%s: field '%s.precompiled_charsmap' must be a base64 string", origin, ctx);
        if (tok_charsmap_load(b64, strlen(b64), &n->charsmap, origin, err))
            return -1;
    } else if (!strcmp(type, "Sequence")) {
        const cJSON *items = field(j, "normalizers");
        n->type = TOK_NORM_SEQUENCE;
        if (!cJSON_IsArray(items))
            FAIL("%s: field '%s.normalizers' must be an array", origin, ctx);
        size_t cnt = (size_t)cJSON_GetArraySize(items);
        n->items = calloc(cnt ? cnt : 1, sizeof *n->items);
        if (!n->items)
            FAIL("%s: out of memory", origin);
        const cJSON *it;
        cJSON_ArrayForEach(it, items) {
            char sub[96];
            snprintf(sub, sizeof sub, "%s.normalizers[%zu]", ctx, n->n_items);
            if (load_normalizer(&n->items[n->n_items++], it, origin, sub, err))
                return -1;
        }
    } else {
        FAIL("%s: field '%s.type': unsupported normalizer \"%s\"", origin, ctx, type);
    }
    return 0;
}

void tok_normalizer_free(tok_normalizer *n)
{
    for (size_t i = 0; i < n->n_items; i++)
        tok_normalizer_free(&n->items[i]);
    free(n->items);
    free(n->prepend.prepend);
    free(n->replace.pattern);
    free(n->replace.content);
    tok_regex_free(n->replace.re);
    tok_charsmap_free(n->charsmap);
    memset(n, 0, sizeof *n);
}

/* ---- pre-tokenizer -------------------------------------------------------- */
static int parse_behavior(const cJSON *j, tok_split_behavior dflt, tok_split_behavior *out, const char *origin,
                          const char *ctx, tok_error *err)
{
    const char *b = get_str(j, "behavior");
    *out = dflt;
    if (!b) return 0;
    if (!strcmp(b, "Removed")) *out = TOK_SPLIT_REMOVED;
    else if (!strcmp(b, "Isolated")) *out = TOK_SPLIT_ISOLATED;
    else if (!strcmp(b, "MergedWithPrevious")) *out = TOK_SPLIT_MERGED_PREV;
    else if (!strcmp(b, "MergedWithNext")) *out = TOK_SPLIT_MERGED_NEXT;
    else if (!strcmp(b, "Contiguous")) *out = TOK_SPLIT_CONTIGUOUS;
    else FAIL("%s: field '%s.behavior': unknown value \"%s\"", origin, ctx, b);
    return 0;
}

static int load_pretok(tok_pretokenizer *p, const cJSON *j, const char *origin, const char *ctx, tok_error *err)
{
    memset(p, 0, sizeof *p);
    const char *type = type_of(j);
    if (!cJSON_IsObject(j) || !type)
        FAIL("%s: field '%s' must be an object with a \"type\"", origin, ctx);
    if (!strcmp(type, "BertPreTokenizer")) p->type = TOK_PT_BERT;
    else if (!strcmp(type, "WhitespaceSplit")) p->type = TOK_PT_WHITESPACE_SPLIT;
    else if (!strcmp(type, "Whitespace")) {
        p->type = TOK_PT_WHITESPACE;   /* hand-written: Rust regex classes, see pretokenizer.c */
    } else if (!strcmp(type, "Punctuation")) {
        p->type = TOK_PT_PUNCTUATION;
        if (parse_behavior(j, TOK_SPLIT_ISOLATED, &p->behavior, origin, ctx, err))
            return -1;
    } else if (!strcmp(type, "Digits")) {
        p->type = TOK_PT_DIGITS;
        p->individual_digits = get_bool(j, "individual_digits", false);
    } else if (!strcmp(type, "Metaspace")) {
        const char *r = get_str(j, "replacement");
        const char *scheme = get_str(j, "prepend_scheme");
        p->type = TOK_PT_METASPACE;
        if (!r || !*r || strlen(r) > 4 || !tok_utf8_valid(r, strlen(r), NULL) || tok_utf8_count(r, strlen(r)) != 1)
            FAIL("%s: field '%s.replacement' must be a single character", origin, ctx);
        p->replacement_len = strlen(r);
        memcpy(p->replacement, r, p->replacement_len);
        p->split = get_bool(j, "split", true);
        if (scheme) {
            if (!strcmp(scheme, "always")) p->prepend_scheme = TOK_PREPEND_ALWAYS;
            else if (!strcmp(scheme, "never")) p->prepend_scheme = TOK_PREPEND_NEVER;
            else if (!strcmp(scheme, "first")) p->prepend_scheme = TOK_PREPEND_FIRST;
            else FAIL("%s: field '%s.prepend_scheme': unknown value \"%s\"", origin, ctx, scheme);
        } else {
            /* legacy files: add_prefix_space true means "always" */
            p->prepend_scheme = get_bool(j, "add_prefix_space", true) ? TOK_PREPEND_ALWAYS : TOK_PREPEND_NEVER;
        }
    } else if (!strcmp(type, "ByteLevel")) {
        p->type = TOK_PT_BYTELEVEL;
        p->add_prefix_space = get_bool(j, "add_prefix_space", true);
        p->use_regex = get_bool(j, "use_regex", true);
        if (p->use_regex) {
            static const char gpt2[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
            if (tok_regex_compile(gpt2, sizeof gpt2 - 1, false, &p->re, err))
                return -1;
        }
    } else if (!strcmp(type, "Split")) {
        bool is_regex;
        p->type = TOK_PT_SPLIT;
        if (load_pattern(field(j, "pattern"), &p->pattern, &p->pattern_len, &is_regex, origin, ctx, err))
            return -1;
        if (parse_behavior(j, TOK_SPLIT_REMOVED, &p->behavior, origin, ctx, err))
            return -1;
        if (!get_str(j, "behavior"))
            FAIL("%s: field '%s.behavior' is required", origin, ctx);
        p->invert = get_bool(j, "invert", false);
        if (tok_regex_compile(p->pattern, p->pattern_len, !is_regex, &p->re, err)) {
            tok_prefix_error(err, "%s: field '%s.pattern'", origin, ctx);
            return -1;
        }
    } else if (!strcmp(type, "Sequence")) {
        const cJSON *items = field(j, "pretokenizers");
        p->type = TOK_PT_SEQUENCE;
        if (!cJSON_IsArray(items))
            FAIL("%s: field '%s.pretokenizers' must be an array", origin, ctx);
        size_t cnt = (size_t)cJSON_GetArraySize(items);
        p->items = calloc(cnt ? cnt : 1, sizeof *p->items);
        if (!p->items)
            FAIL("%s: out of memory", origin);
        const cJSON *it;
        cJSON_ArrayForEach(it, items) {
            char sub[96];
            snprintf(sub, sizeof sub, "%s.pretokenizers[%zu]", ctx, p->n_items);
            if (load_pretok(&p->items[p->n_items++], it, origin, sub, err))
                return -1;
        }
    } else {
        FAIL("%s: field '%s.type': unsupported pre-tokenizer \"%s\"", origin, ctx, type);
    }
    return 0;
}

void tok_pretokenizer_free(tok_pretokenizer *p)
{
    for (size_t i = 0; i < p->n_items; i++)
        tok_pretokenizer_free(&p->items[i]);
    free(p->items);
    free(p->pattern);
    tok_regex_free(p->re);
    memset(p, 0, sizeof *p);
}

/* ---- model ---------------------------------------------------------------- */
/* vocab as {"token": id, ...}: ids must be unique and dense (0..n-1). */
int tok_vocab_load_object(tok_vocab *v, const cJSON *vocab, const char *origin, tok_error *err)
{
    if (!cJSON_IsObject(vocab))
        FAIL("%s: field 'model.vocab' must be an object of token -> id", origin);
    size_t n = (size_t)cJSON_GetArraySize(vocab);
    if (n == 0)
        FAIL("%s: field 'model.vocab' is empty", origin);
    if (n > (size_t)INT32_MAX)
        FAIL("%s: field 'model.vocab' is too large", origin);
    v->tokens = calloc(n, sizeof *v->tokens);
    v->lens = calloc(n, sizeof *v->lens);
    v->n = n;
    if (!v->tokens || !v->lens || tok_map_init(&v->map, n))
        FAIL("%s: out of memory", origin);
    const cJSON *it;
    cJSON_ArrayForEach(it, vocab) {
        if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble >= (double)n ||
            it->valuedouble != (double)(int64_t)it->valuedouble)
            FAIL("%s: field 'model.vocab[\"%.64s\"]': id must be an integer in [0, %zu)", origin, it->string, n);
        size_t id = (size_t)it->valuedouble;
        if (v->tokens[id])
            FAIL("%s: field 'model.vocab[\"%.64s\"]': id %zu is used twice", origin, it->string, id);
        size_t len = strlen(it->string);
        v->tokens[id] = dup_n(it->string, len);
        if (!v->tokens[id])
            FAIL("%s: out of memory", origin);
        v->lens[id] = (uint32_t)len;
        int r = tok_map_put(&v->map, v->tokens[id], len, (int32_t)id);
        if (r < 0)
            FAIL("%s: out of memory", origin);
    }
    return 0;
}

static int load_wordpiece(tok_model *m, const cJSON *j, const char *origin, tok_error *err)
{
    m->type = TOK_MODEL_WORDPIECE;
    if (tok_vocab_load_object(&m->vocab, field(j, "vocab"), origin, err))
        return -1;
    const char *unk = get_str(j, "unk_token");
    const char *prefix = get_str(j, "continuing_subword_prefix");
    int64_t maxc;
    if (!unk)
        unk = "[UNK]";
    if (!prefix)
        prefix = "##";
    if (strlen(prefix) >= sizeof m->wp.prefix)
        FAIL("%s: field 'model.continuing_subword_prefix' is too long", origin);
    m->wp.prefix_len = strlen(prefix);
    memcpy(m->wp.prefix, prefix, m->wp.prefix_len);
    if (get_int(j, "max_input_chars_per_word", 0, 1e9, 100, &maxc, origin, "model", err))
        return -1;
    m->wp.max_chars = (size_t)maxc;
    /* A missing unknown token is only an error when a word needs it, as in the reference. */
    m->wp.unk_id = tok_map_get(&m->vocab.map, unk, strlen(unk));
    if (tok_map_init(&m->wp.cont, m->vocab.n / 2 + 16))
        FAIL("%s: out of memory", origin);
    for (size_t id = 0; id < m->vocab.n; id++) {
        const char *tk = m->vocab.tokens[id];
        if (m->vocab.lens[id] >= m->wp.prefix_len && !memcmp(tk, m->wp.prefix, m->wp.prefix_len) &&
            tok_map_put(&m->wp.cont, tk + m->wp.prefix_len, m->vocab.lens[id] - m->wp.prefix_len, (int32_t)id) < 0)
            FAIL("%s: out of memory", origin);
    }
    return 0;
}

static int load_model(tok_model *m, const cJSON *j, const char *origin, tok_error *err)
{
    if (!cJSON_IsObject(j))
        FAIL("%s: field 'model' must be an object", origin);
    const char *type = type_of(j);
    if (!type) {
        /* Old files omit the type: infer it from the fields, as the reference does. */
        const cJSON *v = field(j, "vocab");
        type = cJSON_IsArray(v) ? "Unigram" : field(j, "merges") ? "BPE" : "WordPiece";
    }
    if (!strcmp(type, "WordPiece"))
        return load_wordpiece(m, j, origin, err);
    if (!strcmp(type, "BPE")) {
        m->type = TOK_MODEL_BPE;
        return tok_bpe_load(m, j, origin, err);
    }
    if (!strcmp(type, "Unigram")) {
        m->type = TOK_MODEL_UNIGRAM;
        return tok_unigram_load(m, j, origin, err);
    }
    FAIL("%s: field 'model.type': unsupported model \"%s\"", origin, type);
}

/* ---- added tokens --------------------------------------------------------- */
static int load_added(tok_tokenizer *t, const cJSON *arr, tok_error *err)
{
    const char *origin = t->origin;
    if (!arr || cJSON_IsNull(arr))
        return 0;
    if (!cJSON_IsArray(arr))
        FAIL("%s: field 'added_tokens' must be an array", origin);
    size_t n = (size_t)cJSON_GetArraySize(arr);
    t->added = calloc(n ? n : 1, sizeof *t->added);
    if (!t->added || tok_map_init(&t->added_map, n + 1))
        FAIL("%s: out of memory", origin);
    const cJSON *it;
    size_t k = 0;
    double limit = (double)t->model.vocab.n + (double)n + 65536.0;
    cJSON_ArrayForEach(it, arr) {
        tok_added *a = &t->added[k];
        const char *content = get_str(it, "content");
        int64_t id;
        char ctx[48];
        snprintf(ctx, sizeof ctx, "added_tokens[%zu]", k);
        if (!cJSON_IsObject(it) || !content)
            FAIL("%s: field '%s.content' must be a string", origin, ctx);
        if (!field(it, "id"))
            FAIL("%s: field '%s.id' is required", origin, ctx);
        if (get_int(it, "id", 0, limit, 0, &id, origin, ctx, err))
            return -1;
        a->len = strlen(content);
        if (!tok_utf8_valid(content, a->len, NULL))
            FAIL("%s: field '%s.content' is not valid UTF-8", origin, ctx);
        a->content = dup_n(content, a->len);
        if (!a->content)
            FAIL("%s: out of memory", origin);
        t->n_added = k + 1;   /* owned from here on, freed by tok_free on any later error */
        a->id = (int32_t)id;
        /* A token the model knows keeps the model's id (a mismatch is an error). */
        int32_t mid = tok_map_get(&t->model.vocab.map, a->content, a->len);
        if (mid >= 0 && mid != a->id)
            FAIL("%s: field '%s.id' is %d but the model vocabulary gives \"%.64s\" id %d", origin, ctx, a->id,
                 a->content, mid);
        if (mid < 0 && (size_t)a->id < t->model.vocab.n)
            FAIL("%s: field '%s.id' %d is already the model token \"%.64s\"", origin, ctx, a->id,
                 t->model.vocab.tokens[a->id] ? t->model.vocab.tokens[a->id] : "");
        a->special = get_bool(it, "special", false);
        a->normalized = get_bool(it, "normalized", !a->special);
        a->lstrip = get_bool(it, "lstrip", false);
        a->rstrip = get_bool(it, "rstrip", false);
        a->single_word = get_bool(it, "single_word", false);
        if (tok_map_put(&t->added_map, a->content, a->len, a->id) < 0)
            FAIL("%s: out of memory", origin);
        k++;
    }
    return 0;
}

/* Normalized added tokens are matched against normalized text, so their
 * patterns are the normalized contents. */
static int build_tries(tok_tokenizer *t, tok_error *err)
{
    struct tok_scratch s;
    memset(&s, 0, sizeof s);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < t->n_added; i++) {
        tok_added *a = &t->added[i];
        if (!a->normalized || !t->has_normalizer) {
            rc = tok_trie_add(a->normalized ? &t->trie_norm : &t->trie_raw, a->content, a->len, (int32_t)i);
            continue;
        }
        tok_buf out = {0};
        rc = tok_normalize(&t->normalizer, a->content, a->len, &out, &s, err);
        if (rc == 0)
            rc = tok_trie_add(&t->trie_norm, out.data ? out.data : "", out.len, (int32_t)i);
        /* The trie keeps pointers to nothing: the bytes are copied into nodes. */
        tok_buf_free(&out);
    }
    tok_buf_free(&s.t1);
    tok_buf_free(&s.t2);
    tok_buf_free(&s.t3);
    if (rc && !err->message[0])
        tok_set_error(err, "%s: out of memory building the added-token matcher", t->origin);
    return rc;
}

/* ---- post-processor ------------------------------------------------------- */
static int tmpl_push(tok_postproc *pp, bool special, const int32_t *ids, size_t n_ids, int32_t type_id)
{
    tok_tmpl_item *v = realloc(pp->single, (pp->n_single + 1) * sizeof *v);
    if (!v)
        return -1;
    pp->single = v;
    tok_tmpl_item *it = &v[pp->n_single++];
    memset(it, 0, sizeof *it);
    it->is_special = special;
    it->type_id = type_id;
    if (n_ids) {
        it->ids = malloc(n_ids * sizeof *ids);
        if (!it->ids)
            return -1;
        memcpy(it->ids, ids, n_ids * sizeof *ids);
        it->n_ids = n_ids;
        pp->added_single += n_ids;
    }
    if (!special)
        pp->seq_single++;
    return 0;
}

static int check_special_id(const tok_tokenizer *t, int64_t id, const char *ctx, tok_error *err)
{
    if (id < 0 || (size_t)id >= t->id_space)
        FAIL("%s: field '%s': special token id %lld is not below the vocabulary size %zu", t->origin, ctx,
             (long long)id, t->id_space);
    return 0;
}

/* BertProcessing / RobertaProcessing: {"cls": ["[CLS]", 101], "sep": [...]} */
static int load_pair_token(const tok_tokenizer *t, const cJSON *j, const char *name, int32_t *id, tok_error *err)
{
    const cJSON *v = field(j, name);
    char ctx[64];
    snprintf(ctx, sizeof ctx, "post_processor.%s", name);
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 2 || !is_int_in(cJSON_GetArrayItem(v, 1), INT32_MIN, INT32_MAX))
        FAIL("%s: field '%s' must be [token, id] with an integer id", t->origin, ctx);
    double d = cJSON_GetArrayItem(v, 1)->valuedouble;
    if (check_special_id(t, (int64_t)d, ctx, err))
        return -1;
    *id = (int32_t)d;
    return 0;
}

static int load_template(tok_tokenizer *t, const cJSON *j, tok_error *err)
{
    const char *origin = t->origin;
    tok_postproc *pp = &t->post;
    const cJSON *single = field(j, "single"), *specials = field(j, "special_tokens"), *it;
    if (!cJSON_IsArray(single))
        FAIL("%s: field 'post_processor.single' must be an array", origin);
    size_t k = 0;
    cJSON_ArrayForEach(it, single) {
        const cJSON *sp = field(it, "SpecialToken"), *sq = field(it, "Sequence");
        int64_t type_id;
        char ctx[64];
        snprintf(ctx, sizeof ctx, "post_processor.single[%zu]", k++);
        if (sq) {
            const char *sid = get_str(sq, "id");
            if (!sid || (strcmp(sid, "A") && strcmp(sid, "B")))
                FAIL("%s: field '%s.Sequence.id' must be \"A\" or \"B\"", origin, ctx);
            if (get_int(sq, "type_id", 0, INT32_MAX, 0, &type_id, origin, ctx, err) ||
                tmpl_push(pp, false, NULL, 0, (int32_t)type_id))
                return -1;
            continue;
        }
        const char *name = sp ? get_str(sp, "id") : NULL;
        if (!name)
            FAIL("%s: field '%s' must be a SpecialToken or a Sequence", origin, ctx);
        if (get_int(sp, "type_id", 0, INT32_MAX, 0, &type_id, origin, ctx, err))
            return -1;
        const cJSON *def = field(specials, name), *ids = field(def, "ids"), *x;
        if (!cJSON_IsArray(ids))
            FAIL("%s: field 'post_processor.special_tokens[\"%.64s\"].ids' must be an array", origin, name);
        size_t n = (size_t)cJSON_GetArraySize(ids), m = 0;
        int32_t *v = malloc((n ? n : 1) * sizeof *v);
        if (!v)
            FAIL("%s: out of memory", origin);
        cJSON_ArrayForEach(x, ids) {
            if (!is_int_in(x, INT32_MIN, INT32_MAX) ||
                check_special_id(t, (int64_t)x->valuedouble, "post_processor.special_tokens", err)) {
                free(v);
                if (!err->message[0])
                    tok_set_error(err, "%s: field 'post_processor.special_tokens[\"%.64s\"].ids' must hold integers",
                                  origin, name);
                return -1;
            }
            v[m++] = (int32_t)x->valuedouble;
        }
        int rc = tmpl_push(pp, true, v, m, (int32_t)type_id);
        free(v);
        if (rc)
            FAIL("%s: out of memory", origin);
    }
    return 0;
}

static int load_post(tok_tokenizer *t, const cJSON *j, tok_error *err)
{
    const char *type = type_of(j);
    if (!cJSON_IsObject(j) || !type)
        FAIL("%s: field 'post_processor' must be an object with a \"type\"", t->origin);
    if (!strcmp(type, "ByteLevel"))
        return 0;   /* only touches offsets */
    if (!strcmp(type, "Sequence")) {
        const cJSON *items = field(j, "processors"), *it;
        if (!cJSON_IsArray(items))
            FAIL("%s: field 'post_processor.processors' must be an array", t->origin);
        cJSON_ArrayForEach(it, items) {
            if (load_post(t, it, err))
                return -1;
        }
        return 0;
    }
    if (t->post.present)
        FAIL("%s: field 'post_processor': more than one processor adds special tokens", t->origin);
    t->post.present = true;
    if (!strcmp(type, "TemplateProcessing"))
        return load_template(t, j, err);
    if (!strcmp(type, "BertProcessing") || !strcmp(type, "RobertaProcessing")) {
        int32_t cls, sep;
        if (load_pair_token(t, j, "cls", &cls, err) || load_pair_token(t, j, "sep", &sep, err))
            return -1;
        if (tmpl_push(&t->post, true, &cls, 1, 0) || tmpl_push(&t->post, false, NULL, 0, 0) ||
            tmpl_push(&t->post, true, &sep, 1, 0))
            FAIL("%s: out of memory", t->origin);
        return 0;
    }
    FAIL("%s: field 'post_processor.type': unsupported post-processor \"%s\"", t->origin, type);
}

/* ---- top level ------------------------------------------------------------ */
static int load_truncation(tok_tokenizer *t, const cJSON *j, tok_error *err)
{
    if (!j || cJSON_IsNull(j))
        return 0;
    int64_t maxl;
    if (!cJSON_IsObject(j))
        FAIL("%s: field 'truncation' must be an object or null", t->origin);
    if (get_int(j, "max_length", 1, 1e9, 512, &maxl, t->origin, "truncation", err))
        return -1;
    t->trunc_max = (size_t)maxl;
    const char *dir = get_str(j, "direction");
    t->trunc_left = dir && !strcmp(dir, "Left");
    return 0;
}

static int load_padding(tok_tokenizer *t, const cJSON *j, tok_error *err)
{
    int64_t id;
    t->pad_id = -1;
    if (cJSON_IsObject(j)) {
        if (get_int(j, "pad_id", 0, INT32_MAX, -1, &id, t->origin, "padding", err))
            return -1;
        t->pad_id = (int32_t)id;
        return 0;
    }
    t->pad_id = tok_token_to_id(t, "[PAD]");
    if (t->pad_id < 0)
        t->pad_id = tok_token_to_id(t, "<pad>");
    return 0;
}

static int load_root(tok_tokenizer *t, const cJSON *root, tok_error *err)
{
    if (!cJSON_IsObject(root))
        FAIL("%s: the document must be a JSON object", t->origin);
    if (load_model(&t->model, field(root, "model"), t->origin, err))
        return -1;
    if (load_added(t, field(root, "added_tokens"), err))
        return -1;
    t->id_space = t->model.vocab.n;
    for (size_t i = 0; i < t->n_added; i++)
        if ((size_t)t->added[i].id + 1 > t->id_space)
            t->id_space = (size_t)t->added[i].id + 1;
    const cJSON *n = field(root, "normalizer"), *p = field(root, "pre_tokenizer"), *pp = field(root, "post_processor");
    if (n && !cJSON_IsNull(n)) {
        t->has_normalizer = true;
        if (load_normalizer(&t->normalizer, n, t->origin, "normalizer", err))
            return -1;
    }
    if (p && !cJSON_IsNull(p)) {
        t->has_pretok = true;
        if (load_pretok(&t->pretok, p, t->origin, "pre_tokenizer", err))
            return -1;
    }
    if (pp && !cJSON_IsNull(pp) && load_post(t, pp, err))
        return -1;
    if (build_tries(t, err))
        return -1;
    if (load_truncation(t, field(root, "truncation"), err) || load_padding(t, field(root, "padding"), err))
        return -1;
    return 0;
}

int tok_load_json(const char *json, size_t len, const char *origin_name, tok_tokenizer **out, tok_error *err)
{
    tok_error dummy;
    if (!err)
        err = &dummy;
    err->message[0] = 0;
    if (!json || !out)
        FAIL("tok_load_json: null argument");
    tok_tokenizer *t = calloc(1, sizeof *t);
    if (!t)
        FAIL("%s: out of memory", origin_name ? origin_name : "tokenizer.json");
    snprintf(t->origin, sizeof t->origin, "%s", origin_name ? origin_name : "tokenizer.json");
    t->pad_id = -1;
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        size_t off = at && at >= json && at <= json + len ? (size_t)(at - json) : 0;
        tok_set_error(err, "%s: invalid JSON near byte offset %zu", t->origin, off);
        tok_free(t);
        return -1;
    }
    int rc = load_root(t, root, err);
    cJSON_Delete(root);
    if (rc) {
        tok_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

#define TOK_MAX_FILE_BYTES ((uint64_t)128 << 20)

int tok_load_file(const char *path, tok_tokenizer **out, tok_error *err)
{
    /* A FIFO must not block and /dev/zero must not fill memory: check the
     * opened file before reading it. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        FAIL("%s: cannot open: %s", path, strerror(errno));
    struct stat sb = {0};
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || (uint64_t)sb.st_size > TOK_MAX_FILE_BYTES) {
        int regular = S_ISREG(sb.st_mode);
        close(fd);
        FAIL("%s: %s", path, regular ? "larger than the 128 MiB limit for a tokenizer.json" : "not a regular file");
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        FAIL("%s: cannot open: %s", path, strerror(errno));
    }
    tok_buf b = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (b.len + n > TOK_MAX_FILE_BYTES || tok_buf_append(&b, chunk, n)) {
            fclose(f);
            tok_buf_free(&b);
            FAIL("%s: out of memory", path);
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        tok_buf_free(&b);
        FAIL("%s: read error", path);
    }
    int rc = tok_load_json(b.data ? b.data : "", b.len, path, out, err);
    tok_buf_free(&b);
    return rc;
}

void tok_free(tok_tokenizer *t)
{
    if (!t)
        return;
    tok_normalizer_free(&t->normalizer);
    tok_pretokenizer_free(&t->pretok);
    tok_model_free(&t->model);
    for (size_t i = 0; i < t->post.n_single; i++)
        free(t->post.single[i].ids);
    free(t->post.single);
    for (size_t i = 0; i < t->n_added; i++)
        free(t->added[i].content);
    free(t->added);
    tok_map_free(&t->added_map);
    tok_trie_free(&t->trie_raw);
    tok_trie_free(&t->trie_norm);
    free(t);
}
