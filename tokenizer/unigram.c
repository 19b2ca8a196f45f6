/* unigram.c - the Unigram model: Viterbi over all vocabulary pieces that
 * start at each character (scores from the file, unknown characters scored
 * min_score - 10 and fused into one unknown token), then byte fallback to
 * <0xNN> pieces for unknowns when enabled; the reference's encode_optimized.
 * Ties keep the shorter piece, as the reference's prefix search finds it
 * first. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Byte trie for the prefix search: edges (node, byte) -> child in one
 * open-addressing table, so each step is one probe and the search stops at
 * the first byte no piece continues with. */
typedef struct { uint64_t key; int32_t child; } edge;

struct tok_unigram {
    edge *edges; size_t edge_mask;
    int32_t *node_token; size_t n_nodes, cap_nodes;
    double *score;
    int32_t unk_id;
    bool byte_fallback;
    double unk_score;
    size_t max_len;       /* longest piece in bytes */
    int32_t byte_id[256];
};

typedef struct { double score; int32_t start; int32_t id; } vnode;

#define FAIL(...) do { tok_set_error(err, __VA_ARGS__); return -1; } while (0)

static size_t edge_slot(const struct tok_unigram *u, uint64_t key)
{
    uint64_t h = key * 0x9E3779B97F4A7C15ULL;
    return (size_t)(h ^ (h >> 29)) & u->edge_mask;
}

static int32_t child_of(const struct tok_unigram *u, int32_t node, unsigned char b)
{
    uint64_t key = ((uint64_t)(uint32_t)node << 8 | b) + 1;
    for (size_t i = edge_slot(u, key);; i = (i + 1) & u->edge_mask) {
        if (u->edges[i].key == key)
            return u->edges[i].child;
        if (u->edges[i].key == 0)
            return -1;
    }
}

static int trie_build(struct tok_unigram *u, const tok_vocab *v)
{
    size_t total = 1;
    for (size_t i = 0; i < v->n; i++)
        total += v->lens[i];
    size_t cap = 16;
    while (cap < total * 2)
        cap *= 2;
    u->edges = calloc(cap, sizeof *u->edges);
    u->node_token = malloc(total * sizeof *u->node_token);
    if (!u->edges || !u->node_token)
        return -1;
    u->edge_mask = cap - 1;
    u->n_nodes = 1;
    u->node_token[0] = -1;
    for (size_t id = 0; id < v->n; id++) {
        int32_t node = 0;
        for (size_t k = 0; k < v->lens[id]; k++) {
            unsigned char b = (unsigned char)v->tokens[id][k];
            int32_t c = child_of(u, node, b);
            if (c < 0) {
                uint64_t key = ((uint64_t)(uint32_t)node << 8 | b) + 1;
                size_t i = edge_slot(u, key);
                while (u->edges[i].key)
                    i = (i + 1) & u->edge_mask;
                c = (int32_t)u->n_nodes;
                u->node_token[u->n_nodes++] = -1;
                u->edges[i] = (edge){key, c};
            }
            node = c;
        }
        u->node_token[node] = (int32_t)id;
    }
    return 0;
}

int tok_unigram_load(tok_model *m, const cJSON *j, const char *origin, tok_error *err)
{
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(j, "vocab"), *it;
    struct tok_unigram *u = calloc(1, sizeof *u);
    if (!u)
        FAIL("%s: out of memory", origin);
    m->uni = u;
    if (!cJSON_IsArray(vocab) || cJSON_GetArraySize(vocab) == 0)
        FAIL("%s: field 'model.vocab' must be a non-empty array of [piece, score]", origin);
    size_t n = (size_t)cJSON_GetArraySize(vocab), i = 0;
    m->vocab.n = n;
    m->vocab.tokens = calloc(n, sizeof *m->vocab.tokens);
    m->vocab.lens = calloc(n, sizeof *m->vocab.lens);
    u->score = calloc(n, sizeof *u->score);
    if (!m->vocab.tokens || !m->vocab.lens || !u->score || tok_map_init(&m->vocab.map, n))
        FAIL("%s: out of memory", origin);
    double min_score = INFINITY;
    cJSON_ArrayForEach(it, vocab) {
        const cJSON *p = cJSON_GetArrayItem(it, 0), *sc = cJSON_GetArrayItem(it, 1);
        if (!cJSON_IsArray(it) || cJSON_GetArraySize(it) != 2 || !cJSON_IsString(p) || !cJSON_IsNumber(sc) ||
            !isfinite(sc->valuedouble))
            FAIL("%s: field 'model.vocab[%zu]' must be [piece, finite score]", origin, i);
        size_t len = strlen(p->valuestring);
        m->vocab.tokens[i] = strdup(p->valuestring);
        if (!m->vocab.tokens[i])
            FAIL("%s: out of memory", origin);
        m->vocab.lens[i] = (uint32_t)len;
        u->score[i] = sc->valuedouble;
        if (sc->valuedouble < min_score)
            min_score = sc->valuedouble;
        if (len > u->max_len)
            u->max_len = len;
        int r = tok_map_put(&m->vocab.map, m->vocab.tokens[i], len, (int32_t)i);
        if (r < 0)
            FAIL("%s: out of memory", origin);
        if (r == 1)
            FAIL("%s: field 'model.vocab[%zu]': piece \"%.64s\" appears twice", origin, i, p->valuestring);
        i++;
    }
    u->unk_score = min_score - 10.0;
    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(j, "unk_id");
    u->unk_id = -1;
    if (unk && !cJSON_IsNull(unk)) {
        if (!cJSON_IsNumber(unk) || unk->valuedouble < 0 || unk->valuedouble >= (double)n ||
            unk->valuedouble != (double)(int64_t)unk->valuedouble)
            FAIL("%s: field 'model.unk_id' must be an id below the vocabulary size %zu", origin, n);
        u->unk_id = (int32_t)unk->valuedouble;
    }
    if (trie_build(u, &m->vocab))
        FAIL("%s: out of memory", origin);
    u->byte_fallback = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "byte_fallback"));
    for (unsigned k = 0; k < 256; k++) {
        static const char hex[] = "0123456789ABCDEF";
        char name[7] = {'<', '0', 'x', hex[k >> 4], hex[k & 15], '>', 0};
        u->byte_id[k] = tok_map_get(&m->vocab.map, name, 6);
    }
    return 0;
}

void tok_unigram_free(struct tok_unigram *u)
{
    if (!u)
        return;
    free(u->score);
    free(u->edges);
    free(u->node_token);
    free(u);
}

static int emit_piece(const tok_model *m, const char *p, size_t len, int32_t id, struct tok_scratch *s)
{
    const struct tok_unigram *u = m->uni;
    if (id < 0 || id == u->unk_id) {
        /* a fused run of unknowns: look the whole string up first */
        int32_t known = tok_map_get(&m->vocab.map, p, len);
        if (known >= 0)
            return tok_scratch_push_id(s, known, 0);
        if (u->byte_fallback) {
            bool all = true;
            for (size_t k = 0; k < len; k++)
                all = all && u->byte_id[(unsigned char)p[k]] >= 0;
            if (all) {
                for (size_t k = 0; k < len; k++)
                    if (tok_scratch_push_id(s, u->byte_id[(unsigned char)p[k]], 0))
                        return -1;
                return 0;
            }
        }
        return u->unk_id >= 0 ? tok_scratch_push_id(s, u->unk_id, 0) : -1;
    }
    return tok_scratch_push_id(s, id, 0);
}

int tok_unigram_encode(const tok_model *m, const char *w, size_t len, struct tok_scratch *s)
{
    const struct tok_unigram *u = m->uni;
    if (len > (size_t)INT32_MAX / 2)
        return -1;
    size_t need = (len + 1) * sizeof(vnode);
    if (need > s->model_scratch_cap) {
        void *p = realloc(s->model_scratch, need);
        if (!p)
            return -1;
        s->model_scratch = p;
        s->model_scratch_cap = need;
    }
    vnode *best = s->model_scratch;
    for (size_t i = 0; i <= len; i++)
        best[i] = (vnode){0.0, -1, -1};
    for (size_t st = 0; st < len;) {
        size_t j = st;
        tok_utf8_next((const unsigned char *)w, &j);
        size_t mblen = j - st;
        double here = best[st].score;
        bool single = false;
        /* every piece starting here, shortest first */
        int32_t nd = 0;
        for (size_t e = st; e < len;) {
            nd = child_of(u, nd, (unsigned char)w[e++]);
            if (nd < 0)
                break;
            int32_t id = u->node_token[nd];
            if (id >= 0) {
                double cand = u->score[id] + here;
                if (best[e].start < 0 || cand > best[e].score)
                    best[e] = (vnode){cand, (int32_t)st, id};
                if (e - st == mblen)
                    single = true;
            }
        }
        if (!single) {
            if (u->unk_id < 0)
                return -1;
            double cand = u->unk_score + here;
            if (best[j].start < 0 || cand > best[j].score)
                best[j] = (vnode){cand, (int32_t)st, u->unk_id};
        }
        st = j;
    }
    /* Walk back; consecutive unknowns fuse into one piece. Pieces are
     * collected in reverse as (start, end, id) triples, then emitted. */
    size_t mark = s->n_ids, cnt = 0;
    for (size_t e = len; e > 0;) {
        const vnode *nd = &best[e];
        if (nd->start < 0)
            return -1;   /* unreachable end: only a malformed vocabulary gets here */
        size_t st = (size_t)nd->start;
        bool is_unk = u->unk_id >= 0 && nd->id == u->unk_id;
        if (is_unk) {
            while (st > 0 && best[st].id == u->unk_id)
                st = (size_t)best[st].start;
        }
        if (tok_scratch_push_id(s, (int32_t)st, 0) || tok_scratch_push_id(s, (int32_t)e, 0) ||
            tok_scratch_push_id(s, is_unk ? -1 : nd->id, 0))
            return -1;
        cnt++;
        e = st;
    }
    /* the triples were pushed last-piece-first; move them aside and emit in order */
    size_t bytes = cnt * 3 * sizeof(int32_t);
    int32_t *tri = malloc(bytes ? bytes : 1);
    if (!tri)
        return -1;
    if (bytes)
        memcpy(tri, s->ids + mark, bytes);
    s->n_ids = mark;
    int rc = 0;
    for (size_t k = cnt; rc == 0 && k-- > 0;) {
        size_t a = (size_t)tri[3 * k], b = (size_t)tri[3 * k + 1];
        rc = emit_piece(m, w + a, b - a, tri[3 * k + 2], s);
    }
    free(tri);
    return rc;
}
