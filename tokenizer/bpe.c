/* bpe.c - the BPE model: a word is split into characters (with the
 * continuing-subword prefix / end-of-word suffix, byte fallback to <0xNN>
 * tokens, unknowns fused or not), then merged by rank with a binary heap,
 * stale entries skipped, exactly like the reference's Word::merge_all.
 * That is O(n log n) in the word length, so long unspaced CJK or Thai runs
 * stay fast. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int tok_vocab_load_object(tok_vocab *v, const cJSON *vocab, const char *origin, tok_error *err);

typedef struct { uint64_t key; uint32_t rank; int32_t new_id; } merge_slot;   /* key 0 = empty */

struct tok_bpe {
    merge_slot *merges; size_t mask;
    int32_t unk_id;
    char *prefix, *suffix; size_t prefix_len, suffix_len;
    bool fuse_unk, byte_fallback, ignore_merges;
    int32_t byte_id[256];
};

typedef struct { int32_t id, prev, next; uint32_t len; } symbol;
typedef struct { uint32_t rank, pos; int32_t new_id; } heap_item;

#define FAIL(...) do { tok_set_error(err, __VA_ARGS__); return -1; } while (0)

static uint64_t pair_key(int32_t a, int32_t b) { return ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1; }

static size_t mix(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return (size_t)k;
}

static const merge_slot *merge_get(const struct tok_bpe *b, int32_t x, int32_t y)
{
    uint64_t key = pair_key(x, y);
    for (size_t i = mix(key) & b->mask;; i = (i + 1) & b->mask) {
        if (b->merges[i].key == key)
            return &b->merges[i];
        if (b->merges[i].key == 0)
            return NULL;
    }
}

static void merge_put(struct tok_bpe *b, int32_t x, int32_t y, uint32_t rank, int32_t new_id)
{
    uint64_t key = pair_key(x, y);
    size_t i = mix(key) & b->mask;
    while (b->merges[i].key && b->merges[i].key != key)
        i = (i + 1) & b->mask;
    /* a repeated pair keeps the later rank, as the reference's map collect does */
    b->merges[i] = (merge_slot){key, rank, new_id};
}

static char *dup_opt(const cJSON *j, const char *name, size_t *len)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, name);
    *len = 0;
    if (!cJSON_IsString(v) || !v->valuestring[0])
        return NULL;
    *len = strlen(v->valuestring);
    return strdup(v->valuestring);
}

static bool get_flag(const cJSON *j, const char *name)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, name));
}

static int load_merges(tok_model *m, const cJSON *merges, const char *origin, tok_error *err)
{
    struct tok_bpe *b = m->bpe;
    size_t n = cJSON_IsArray(merges) ? (size_t)cJSON_GetArraySize(merges) : 0;
    if (merges && !cJSON_IsNull(merges) && !cJSON_IsArray(merges))
        FAIL("%s: field 'model.merges' must be an array", origin);
    size_t cap = 16;
    while (cap < n * 2 + 2)
        cap *= 2;
    b->merges = calloc(cap, sizeof *b->merges);
    if (!b->merges)
        FAIL("%s: out of memory", origin);
    b->mask = cap - 1;
    const cJSON *it;
    size_t rank = 0;
    tok_buf joined = {0};
    cJSON_ArrayForEach(it, merges) {
        const char *a, *c;
        size_t al, cl;
        if (cJSON_IsString(it)) {
            /* legacy "a b" form: split at the first space */
            const char *sp = strchr(it->valuestring, ' ');
            if (!sp)
                goto bad;
            a = it->valuestring; al = (size_t)(sp - a);
            c = sp + 1; cl = strlen(c);
        } else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2 && cJSON_IsString(cJSON_GetArrayItem(it, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(it, 1))) {
            a = cJSON_GetArrayItem(it, 0)->valuestring; al = strlen(a);
            c = cJSON_GetArrayItem(it, 1)->valuestring; cl = strlen(c);
        } else {
            goto bad;
        }
        int32_t ida = tok_map_get(&m->vocab.map, a, al), idc = tok_map_get(&m->vocab.map, c, cl);
        if (ida < 0 || idc < 0 || cl < b->prefix_len) {
            tok_buf_free(&joined);
            FAIL("%s: field 'model.merges[%zu]': token \"%.64s\" is not in the vocabulary", origin, rank,
                 ida < 0 ? a : c);
        }
        joined.len = 0;
        if (tok_buf_append(&joined, a, al) || tok_buf_append(&joined, c + b->prefix_len, cl - b->prefix_len)) {
            tok_buf_free(&joined);
            FAIL("%s: out of memory", origin);
        }
        int32_t idn = tok_map_get(&m->vocab.map, joined.data, joined.len);
        if (idn < 0) {
            tok_buf_free(&joined);
            FAIL("%s: field 'model.merges[%zu]': merged token \"%.64s\" is not in the vocabulary", origin, rank,
                 "(a+b)");
        }
        merge_put(b, ida, idc, (uint32_t)rank, idn);
        rank++;
        continue;
    bad:
        tok_buf_free(&joined);
        FAIL("%s: field 'model.merges[%zu]' must be \"a b\" or [\"a\", \"b\"]", origin, rank);
    }
    tok_buf_free(&joined);
    return 0;
}

int tok_bpe_load(tok_model *m, const cJSON *j, const char *origin, tok_error *err)
{
    struct tok_bpe *b = calloc(1, sizeof *b);
    if (!b)
        FAIL("%s: out of memory", origin);
    m->bpe = b;
    if (tok_vocab_load_object(&m->vocab, cJSON_GetObjectItemCaseSensitive(j, "vocab"), origin, err))
        return -1;
    size_t ul;
    char *unk = dup_opt(j, "unk_token", &ul);
    b->unk_id = unk ? tok_map_get(&m->vocab.map, unk, ul) : -1;
    if (unk && b->unk_id < 0) {
        free(unk);
        FAIL("%s: field 'model.unk_token' is not in the vocabulary", origin);
    }
    free(unk);
    b->prefix = dup_opt(j, "continuing_subword_prefix", &b->prefix_len);
    b->suffix = dup_opt(j, "end_of_word_suffix", &b->suffix_len);
    b->fuse_unk = get_flag(j, "fuse_unk");
    b->byte_fallback = get_flag(j, "byte_fallback");
    b->ignore_merges = get_flag(j, "ignore_merges");
    for (unsigned k = 0; k < 256; k++) {
        static const char hex[] = "0123456789ABCDEF";
        char name[7] = {'<', '0', 'x', hex[k >> 4], hex[k & 15], '>', 0};
        b->byte_id[k] = tok_map_get(&m->vocab.map, name, 6);
    }
    return load_merges(m, cJSON_GetObjectItemCaseSensitive(j, "merges"), origin, err);
}

void tok_bpe_free(struct tok_bpe *b)
{
    if (!b)
        return;
    free(b->merges);
    free(b->prefix);
    free(b->suffix);
    free(b);
}

/* ---- encoding ------------------------------------------------------------- */
static void *grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need > *cap) {
        size_t c = *cap ? *cap : 64;
        while (c < need)
            c *= 2;
        void *q = realloc(*p, c * elem);
        if (!q)
            return NULL;
        *p = q;
        *cap = c;
    }
    return *p;
}

static bool heap_less(const heap_item *x, const heap_item *y)
{
    return x->rank != y->rank ? x->rank < y->rank : x->pos < y->pos;
}

static void heap_push(heap_item *h, size_t *n, heap_item x)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_less(&x, &h[p]))
            break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}

static heap_item heap_pop(heap_item *h, size_t *n)
{
    heap_item top = h[0], x = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const heap_item *best = &x;
        if (l < *n && heap_less(&h[l], best)) { m = l; best = &h[l]; }
        if (r < *n && heap_less(&h[r], best)) { m = r; best = &h[r]; }
        if (m == i)
            break;
        h[i] = h[m];
        i = m;
    }
    if (*n)
        h[i] = x;
    return top;
}

/* Builds the initial symbols; returns their count or -1. */
static long initial_symbols(const tok_model *m, const char *w, size_t len, struct tok_scratch *s, tok_buf *tmp)
{
    const struct tok_bpe *b = m->bpe;
    size_t n = 0, i = 0;
    int32_t unk = -1;
    uint32_t unk_len = 0;
    while (i < len) {
        size_t st = i;
        tok_utf8_next((const unsigned char *)w, &i);
        tmp->len = 0;
        if ((st > 0 && tok_buf_append(tmp, b->prefix, b->prefix_len)) || tok_buf_append(tmp, w + st, i - st) ||
            (i == len && tok_buf_append(tmp, b->suffix, b->suffix_len)))
            return -1;
        /* room for the unknown flushed before, plus this char's pieces */
        if (!grow(&s->model_scratch, &s->model_scratch_cap, n + tmp->len + 2, sizeof(symbol)))
            return -1;
        symbol *sym = s->model_scratch;
        int32_t id = tok_map_get(&m->vocab.map, tmp->data, tmp->len);
        if (id >= 0) {
            if (unk >= 0) {
                sym[n++] = (symbol){unk, 0, 0, unk_len};
                unk = -1;
            }
            sym[n++] = (symbol){id, 0, 0, (uint32_t)(i - st)};
            continue;
        }
        if (b->byte_fallback) {
            bool all = true;
            for (size_t k = 0; k < tmp->len; k++)
                all = all && b->byte_id[(unsigned char)tmp->data[k]] >= 0;
            if (all) {
                /* the reference does not flush a pending unknown here */
                for (size_t k = 0; k < tmp->len; k++)
                    sym[n++] = (symbol){b->byte_id[(unsigned char)tmp->data[k]], 0, 0, 1};
                continue;
            }
        }
        if (b->unk_id >= 0) {
            if (unk >= 0 && b->fuse_unk) {
                unk_len += (uint32_t)(i - st);
            } else {
                if (unk >= 0)
                    sym[n++] = (symbol){unk, 0, 0, unk_len};
                unk = b->unk_id;
                unk_len = (uint32_t)(i - st);
            }
        }
    }
    if (unk >= 0) {
        if (!grow(&s->model_scratch, &s->model_scratch_cap, n + 1, sizeof(symbol)))
            return -1;
        ((symbol *)s->model_scratch)[n++] = (symbol){unk, 0, 0, unk_len};
    }
    return (long)n;
}

/* Per-encoding cache of short words, like the reference's word cache: real
 * text repeats words, and a hit skips the merge loop.  Direct-mapped, owned
 * by one tok_encoding (so no locking), reset when the model changes. */
#define CACHE_SLOTS 4096
#define CACHE_WORD 22
#define CACHE_IDS 8
typedef struct { uint64_t hash; uint8_t wlen, nids; char word[CACHE_WORD]; int32_t ids[CACHE_IDS]; } cache_slot;
typedef struct { const tok_model *owner; cache_slot slot[CACHE_SLOTS]; } word_cache;

static cache_slot *cache_find(struct tok_scratch *s, const tok_model *m, const char *w, size_t len, bool *hit)
{
    *hit = false;
    if (len == 0 || len > CACHE_WORD)
        return NULL;
    word_cache *c = s->word_cache;
    if (!c) {
        c = s->word_cache = calloc(1, sizeof *c);
        if (!c)
            return NULL;
    }
    if (c->owner != m) {
        memset(c, 0, sizeof *c);
        c->owner = m;
    }
    uint64_t h = tok_hash(w, len) | 1;
    cache_slot *sl = &c->slot[h & (CACHE_SLOTS - 1)];
    *hit = sl->hash == h && sl->wlen == len && !memcmp(sl->word, w, len);
    return sl;
}

static int bpe_merge(const tok_model *m, const char *w, size_t len, struct tok_scratch *s);

int tok_bpe_encode(const tok_model *m, const char *w, size_t len, struct tok_scratch *s)
{
    bool hit;
    cache_slot *sl = cache_find(s, m, w, len, &hit);
    if (hit) {
        for (size_t i = 0; i < sl->nids; i++)
            if (tok_scratch_push_id(s, sl->ids[i], 0))
                return -1;
        return 0;
    }
    size_t mark = s->n_ids;
    if (bpe_merge(m, w, len, s))
        return -1;
    if (sl && s->n_ids - mark <= CACHE_IDS) {
        sl->hash = tok_hash(w, len) | 1;
        sl->wlen = (uint8_t)len;
        sl->nids = (uint8_t)(s->n_ids - mark);
        memcpy(sl->word, w, len);
        if (sl->nids)   /* s->ids is NULL while nothing was ever pushed */
            memcpy(sl->ids, s->ids + mark, sl->nids * sizeof *sl->ids);
    }
    return 0;
}

static int bpe_merge(const tok_model *m, const char *w, size_t len, struct tok_scratch *s)
{
    const struct tok_bpe *b = m->bpe;
    if (b->ignore_merges) {
        int32_t id = tok_map_get(&m->vocab.map, w, len);
        if (id >= 0)
            return tok_scratch_push_id(s, id, 0);
    }
    /* t3 is free once normalization is over */
    long ln = initial_symbols(m, w, len, s, &s->t3);
    if (ln < 0)
        return -1;
    size_t n = (size_t)ln, hn = 0;
    symbol *sym = s->model_scratch;
    for (size_t i = 0; i < n; i++) {
        sym[i].prev = (int32_t)i - 1;
        sym[i].next = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    if (!grow(&s->model_scratch2, &s->model_scratch2_cap, 2 * n + 2, sizeof(heap_item)))
        return -1;
    heap_item *heap = s->model_scratch2;
    for (size_t i = 0; i + 1 < n; i++) {
        const merge_slot *ms = merge_get(b, sym[i].id, sym[i + 1].id);
        if (ms)
            heap_push(heap, &hn, (heap_item){ms->rank, (uint32_t)i, ms->new_id});
    }
    /* Each merge removes a symbol and pushes at most two entries: the heap
     * never holds more than (initial pairs + 2 * merges) < 3n entries. */
    while (hn) {
        heap_item top = heap_pop(heap, &hn);
        symbol *cur = &sym[top.pos];
        if (cur->len == 0 || cur->next < 0)
            continue;
        symbol right = sym[cur->next];
        const merge_slot *ms = merge_get(b, cur->id, right.id);
        if (!ms || ms->new_id != top.new_id)
            continue;
        cur->id = top.new_id;
        cur->len += right.len;
        sym[cur->next].len = 0;
        cur->next = right.next;
        if (right.next >= 0)
            sym[right.next].prev = (int32_t)top.pos;
        if (!grow(&s->model_scratch2, &s->model_scratch2_cap, hn + 2, sizeof(heap_item)))
            return -1;
        heap = s->model_scratch2;
        if (cur->prev >= 0 && (ms = merge_get(b, sym[cur->prev].id, cur->id)))
            heap_push(heap, &hn, (heap_item){ms->rank, (uint32_t)cur->prev, ms->new_id});
        if (cur->next >= 0 && (ms = merge_get(b, cur->id, sym[cur->next].id)))
            heap_push(heap, &hn, (heap_item){ms->rank, top.pos, ms->new_id});
    }
    for (size_t i = 0; i < n; i++)
        if (sym[i].len && tok_scratch_push_id(s, sym[i].id, 0))
            return -1;
    return 0;
}
