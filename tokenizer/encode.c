/* encode.c - one text through the pipeline, in the reference's order:
 * cut out non-normalized added tokens, normalize each remaining piece, cut
 * out normalized added tokens, pre-tokenize, run the model on each word,
 * truncate (leaving room for the specials), apply the post-processor.
 * Lookups between ids and token strings live here too. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

void tok_encoding_init(tok_encoding *e)
{
    memset(e, 0, sizeof *e);
}

static void scratch_free(struct tok_scratch *s)
{
    if (!s)
        return;
    tok_buf_free(&s->arena);
    tok_buf_free(&s->t1);
    tok_buf_free(&s->t2);
    tok_buf_free(&s->t3);
    free(s->p1.v);
    free(s->p2.v);
    free(s->ids);
    free(s->special);
    free(s->model_scratch);
    free(s->model_scratch2);
    free(s->word_cache);
    free(s);
}

void tok_encoding_free(tok_encoding *e)
{
    if (!e)
        return;
    free(e->ids);
    free(e->type_ids);
    free(e->special_mask);
    scratch_free(e->scratch);
    memset(e, 0, sizeof *e);
}

static int encoding_reserve(tok_encoding *e, size_t n)
{
    if (n <= e->cap)
        return 0;
    size_t cap = e->cap ? e->cap : 64;
    while (cap < n)
        cap *= 2;
    int32_t *ids = realloc(e->ids, cap * sizeof *ids);
    if (ids)
        e->ids = ids;
    int32_t *ty = realloc(e->type_ids, cap * sizeof *ty);
    if (ty)
        e->type_ids = ty;
    uint8_t *sm = realloc(e->special_mask, cap);
    if (sm)
        e->special_mask = sm;
    if (!ids || !ty || !sm)
        return -1;
    e->cap = cap;
    return 0;
}

/* Replaces every text piece of s->p1 by its normalized form (appended to the arena). */
static int normalize_pieces(const tok_tokenizer *t, struct tok_scratch *s, tok_error *err)
{
    size_t k = 0;
    for (size_t i = 0; i < s->p1.n; i++) {
        tok_piece *p = &s->p1.v[i];
        if (p->id >= 0) {
            s->p1.v[k++] = *p;
            continue;
        }
        s->t1.len = 0;
        if (tok_normalize(&t->normalizer, s->arena.data + p->off, p->len, &s->t1, s, err))
            return -1;
        if (s->arena.len + s->t1.len > UINT32_MAX) {
            tok_set_error(err, "text too long (over 4 GiB after normalization)");
            return -1;
        }
        p->off = (uint32_t)s->arena.len;
        p->len = (uint32_t)s->t1.len;
        if (tok_buf_append(&s->arena, s->t1.data, s->t1.len))
            return -1;
        /* a piece normalized to nothing disappears, as in the reference */
        if (p->len)
            s->p1.v[k++] = *p;
    }
    s->p1.n = k;
    return 0;
}

static int run_pipeline(const tok_tokenizer *t, const char *text, size_t len, struct tok_scratch *s, tok_error *err)
{
    s->arena.len = 0;
    s->n_ids = 0;
    s->p1.n = 0;
    if (tok_buf_append(&s->arena, text, len))
        return -1;
    if (len && tok_pieces_push(&s->p1, (tok_piece){0, (uint32_t)len, -1, 0, 1}))
        return -1;
    if (t->trie_raw.n) {
        if (tok_split_added(t, &t->trie_raw, s, &s->p1, &s->p2))
            return -1;
        tok_pieces x = s->p1; s->p1 = s->p2; s->p2 = x;
    }
    if (t->has_normalizer && normalize_pieces(t, s, err))
        return -1;
    if (t->trie_norm.n) {
        if (tok_split_added(t, &t->trie_norm, s, &s->p1, &s->p2))
            return -1;
        tok_pieces x = s->p1; s->p1 = s->p2; s->p2 = x;
    }
    if (t->has_pretok && tok_pretokenize(&t->pretok, s, err))
        return -1;
    for (size_t i = 0; i < s->p1.n; i++) {
        const tok_piece *p = &s->p1.v[i];
        if (p->id >= 0) {
            if (tok_scratch_push_id(s, p->id, p->special))
                return -1;
        } else if (p->len && tok_model_encode(&t->model, s->arena.data + p->off, p->len, s, err)) {
            return -1;
        }
    }
    return 0;
}

static int finish(const tok_tokenizer *t, struct tok_scratch *s, int add_special, size_t max_length, tok_encoding *e)
{
    bool post = add_special && t->post.present;
    size_t n_added = post ? t->post.added_single : 0;
    size_t limit = max_length ? max_length : t->trunc_max;
    size_t first = 0, n = s->n_ids;
    e->untruncated_len = n + n_added;
    /* The reference skips truncation when the specials alone exceed the limit. */
    if (limit && limit != TOK_NO_TRUNCATION && limit >= n_added) {
        size_t room = limit - n_added;
        if (n > room) {
            if (t->trunc_left)
                first = n - room;
            n = room;
        }
    }
    size_t copies = post ? t->post.seq_single : 1;
    if (n > (SIZE_MAX - n_added) / (copies ? copies : 1) || encoding_reserve(e, n * copies + n_added))
        return -1;
    e->len = 0;
    if (!post) {
        if (n) {
            memcpy(e->ids, s->ids + first, n * sizeof *e->ids);
            memset(e->type_ids, 0, n * sizeof *e->type_ids);
            memcpy(e->special_mask, s->special + first, n);
        }
        e->len = n;
        return 0;
    }
    for (size_t k = 0; k < t->post.n_single; k++) {
        const tok_tmpl_item *it = &t->post.single[k];
        size_t cnt = it->is_special ? it->n_ids : n;
        if (cnt == 0)
            continue;   /* s->ids may still be NULL */
        const int32_t *src = it->is_special ? it->ids : s->ids + first;
        for (size_t i = 0; i < cnt; i++) {
            e->ids[e->len] = src[i];
            e->type_ids[e->len] = it->type_id;
            e->special_mask[e->len] = it->is_special ? 1 : s->special[first + i];
            e->len++;
        }
    }
    return 0;
}

int tok_encode(const tok_tokenizer *t, const char *text, size_t len, int add_special, size_t max_length,
               tok_encoding *e, tok_error *err)
{
    tok_error dummy;
    size_t bad;
    if (!err)
        err = &dummy;
    err->message[0] = 0;
    if (!t || !e || (!text && len)) {
        tok_set_error(err, "tok_encode: null argument");
        return -1;
    }
    if (len > UINT32_MAX / 2) {
        tok_set_error(err, "tok_encode: text of %zu bytes is too long", len);
        return -1;
    }
    if (!tok_utf8_valid(text, len, &bad)) {
        tok_set_error(err, "tok_encode: invalid UTF-8 at byte offset %zu (repair with tok_utf8_repair)", bad);
        return -1;
    }
    if (!e->scratch && !(e->scratch = calloc(1, sizeof *e->scratch))) {
        tok_set_error(err, "tok_encode: out of memory");
        return -1;
    }
    if (run_pipeline(t, text ? text : "", len, e->scratch, err) ||
        finish(t, e->scratch, add_special, max_length, e)) {
        if (!err->message[0])
            tok_set_error(err, "tok_encode: out of memory");
        e->len = 0;
        return -1;
    }
    return 0;
}

const char *tok_id_to_token(const tok_tokenizer *t, int32_t id)
{
    if (!t || id < 0)
        return NULL;
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].id == id)
            return t->added[i].content;
    if ((size_t)id < t->model.vocab.n)
        return t->model.vocab.tokens[id];
    return NULL;
}

int32_t tok_token_to_id(const tok_tokenizer *t, const char *token)
{
    if (!t || !token)
        return -1;
    size_t len = strlen(token);
    int32_t id = tok_map_get(&t->added_map, token, len);
    return id >= 0 ? id : tok_map_get(&t->model.vocab.map, token, len);
}

size_t tok_vocab_size(const tok_tokenizer *t) { return t ? t->id_space : 0; }
size_t tok_model_vocab_size(const tok_tokenizer *t) { return t ? t->model.vocab.n : 0; }
size_t tok_truncation_max_length(const tok_tokenizer *t) { return t ? t->trunc_max : 0; }
int tok_truncation_left(const tok_tokenizer *t) { return t && t->trunc_left; }
int32_t tok_pad_id(const tok_tokenizer *t) { return t ? t->pad_id : -1; }
