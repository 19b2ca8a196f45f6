/*
 * Static embedding tables: word vectors (word2vec binary and text, GloVe
 * text, fastText .vec) looked up by word, and token tables looked up by
 * tokenizer id (model2vec directories, sentence-transformers StaticEmbedding
 * modules). A table is read once into one fp32 array; documents only ever
 * index it. The format is detected from the file or directory itself.
 */
#ifndef EMBEDC_HOST_STATIC_VECTORS_H
#define EMBEDC_HOST_STATIC_VECTORS_H

#include <stddef.h>
#include <stdint.h>
#include "embedc.h"

typedef enum {
    SV_WORD2VEC_BIN,     /* "count dim\n", then "word " + dim float32 (+ optional '\n') */
    SV_WORD2VEC_TEXT,    /* "count dim\n", then "word v1 .. vdim" lines (fastText .vec too) */
    SV_FASTTEXT_BIN,     /* fastText .bin: words + hashed character n-grams (subwords) */
    SV_GLOVE_TEXT,       /* "word v1 .. vdim" lines, no header */
    SV_MODEL2VEC,        /* directory: model.safetensors "embeddings", config.json, tokenizer.json */
    SV_ST_STATIC         /* sentence-transformers StaticEmbedding module */
} sv_format;

typedef struct emb_static_vectors {
    sv_format format;
    char *path;          /* file, or the directory holding tokenizer.json (owned) */
    int dim;
    size_t rows;         /* rows of vecs */
    float *vecs;         /* [rows, dim] (owned) */

    /* Word formats: vocabulary in file order, word i is row i (i < n_words). */
    size_t n_words;
    char *words;         /* NUL-terminated words back to back (owned) */
    size_t *word_off;    /* [rows] offsets into words */
    uint32_t *slots;     /* open-addressing hash: row + 1, 0 = empty */
    size_t slot_mask;
    size_t skipped_duplicates;
    int has_upper;       /* some word has an uppercase letter */
    /* fastText .bin: rows [0, n_words) hold the words' full vectors (word row
     * and its n-grams averaged, as fastText's getWordVector), rows
     * n_words + h the n-gram buckets; an unknown word is the mean of its
     * n-gram rows. minn = maxn = 0 without subwords. */
    int minn, maxn;
    uint32_t bucket;

    /* Token formats. */
    size_t n_ids;        /* token ids the table answers (mapping/weights length, else rows) */
    int32_t *mapping;    /* [n_ids] token id -> row, or NULL (owned) */
    float *weights;      /* [n_ids] per-token scale, or NULL (owned) */
    int normalize;       /* model2vec config.json "normalize" / a Normalize module */
    int unk_id;          /* model2vec drops this id (-1 none) */
    int max_length;      /* model2vec default truncation in tokens (0 = none) */
} emb_static_vectors;

/* 1 when path is a file or directory in one of the static formats. */
int emb_sv_detect(const char *path);

emb_status emb_sv_load(const char *path, emb_static_vectors **out, emb_error *err);
void emb_sv_free(emb_static_vectors *sv);

/* Row of a word (len bytes), or -1. Word formats only. */
int64_t emb_sv_lookup(const emb_static_vectors *sv, const char *word, size_t len);
static inline const char *emb_sv_word(const emb_static_vectors *sv, size_t row) {
    return sv->words + sv->word_off[row];
}
/* gensim KeyedVectors.most_similar(positive, negative, topn=k): rows are
 * unit-normalized, the query is the unit mean of +unit(pos) and -unit(neg),
 * the query rows are excluded. Calls fn best first; returns the number of
 * hits, -1 out of memory. Word formats only. */
typedef void (*emb_sv_hit_fn)(void *ud, const char *word, double score);
int emb_sv_most_similar(const emb_static_vectors *sv, const int64_t *pos, int npos, const int64_t *neg,
                        int nneg, int k, emb_sv_hit_fn fn, void *ud);
/* The same over query vectors (signs[q] = +1 positive, -1 negative), the
 * rows in exclude left out (gensim excludes only the queries in vocabulary). */
int emb_sv_most_similar_vecs(const emb_static_vectors *sv, const float *const *vecs, const double *signs, int nq,
                             const int64_t *exclude, int nex, int k, emb_sv_hit_fn fn, void *ud);
/* A word's vector into out[dim]: 1 from its row (*row set), 2 built from its
 * fastText n-grams (*row = -1), 0 when it has none. */
int emb_sv_word_vector(const emb_static_vectors *sv, const char *word, size_t len, float *out, int64_t *row);
int emb_sv_is_word_format(const emb_static_vectors *sv);
/* fastText .bin: the rows of an unknown word's n-grams (at most cap; returns
 * how many there are, 0 without subwords). */
size_t emb_sv_subword_rows(const emb_static_vectors *sv, const char *word, size_t len, int32_t *rows, size_t cap);
const char *emb_sv_format_name(sv_format f);

#endif
