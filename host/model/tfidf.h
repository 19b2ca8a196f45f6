/*
 * Bag-of-words / TF-IDF models with scikit-learn's TfidfVectorizer semantics:
 * text lowercased as Python's str.lower() does, terms are the matches of
 * token_pattern (?u)\b\w\w+\b, vocabulary sorted, idf = ln((1+n)/(1+df)) + 1
 * (smooth_idf), raw or binary term counts, l2 / l1 / no row normalization.
 * A fitted model is a directory holding tfidf.json.
 */
#ifndef EMBEDC_HOST_TFIDF_H
#define EMBEDC_HOST_TFIDF_H

#include <stddef.h>
#include <stdint.h>
#include "embedc.h"

typedef enum { TFIDF_NORM_NONE = 0, TFIDF_NORM_L1 = 1, TFIDF_NORM_L2 = 2 } tfidf_norm;

typedef struct {
    double min_df, max_df;     /* document counts when *_is_count, else proportions of documents */
    int min_df_is_count, max_df_is_count;   /* sklearn: an int is a count, a float a proportion */
    size_t max_features;       /* 0 = all */
    int binary, use_idf, lowercase;
    tfidf_norm norm;
} emb_tfidf_options;

emb_tfidf_options emb_tfidf_default_options(void);

typedef struct emb_tfidf emb_tfidf;

/* Document source: 1 with a document, 0 at the end, -1 on error (io_reader_next fits). */
typedef int (*emb_tfidf_read_fn)(void *ud, const char **text, size_t *len, emb_error *err);

emb_status emb_tfidf_fit(emb_tfidf_read_fn read, void *ud, const emb_tfidf_options *opts, emb_tfidf **out,
                         emb_error *err);
emb_status emb_tfidf_save(const emb_tfidf *t, const char *dir, emb_error *err);
emb_status emb_tfidf_load(const char *dir, emb_tfidf **out, emb_error *err);
void emb_tfidf_free(emb_tfidf *t);
int emb_tfidf_detect(const char *dir);   /* dir/tfidf.json exists */
size_t emb_tfidf_features(const emb_tfidf *t);
const emb_tfidf_options *emb_tfidf_get_options(const emb_tfidf *t);
const char *emb_tfidf_term(const emb_tfidf *t, size_t i);

/* One document's sparse row: *n entries, indices ascending. idx/val grow as
 * needed (realloc'd, caller frees); *cap is their capacity. */
emb_status emb_tfidf_transform(const emb_tfidf *t, const char *text, size_t len, int32_t **idx,
                               double **val, size_t *cap, size_t *n, emb_error *err);

/* The analyzer alone: calls fn for each term (lowercased UTF-8, as sklearn's build_analyzer). */
void emb_tfidf_analyze(const char *text, size_t len, int lowercase,
                       void (*fn)(void *ud, const char *term, size_t n), void *ud);

#endif
