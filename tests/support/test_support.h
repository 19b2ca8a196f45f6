/* Helpers shared by the Criterion suites: paths to the source tree and the
 * default model, and small file utilities. */
#ifndef EMBEDC_TEST_SUPPORT_H
#define EMBEDC_TEST_SUPPORT_H

#include <stddef.h>

/* Absolute path of a file in the source tree (static buffer per call site is
 * not needed: result is malloc'ed, caller frees). */
char *ts_src_path(const char *rel);
/* The same without a free: the result lives in one of 8 static buffers used in turn. */
const char *ts_src(const char *rel);
/* Directory of the default model (models/all-MiniLM-L6-v2), or NULL if it
 * has not been fetched (tools/fetch-model). */
const char *ts_default_model(void);
/* The directory of a model that is not committed: $env when set, else
 * rel under the source tree (malloc'ed); NULL when it holds no
 * model.safetensors (not fetched). */
char *ts_model_dir(const char *env, const char *rel);
/* A JSON file of the source tree, parsed (cJSON_Delete it); NULL when it is
 * missing or invalid. Returned as void * so this header needs no cJSON. */
void *ts_src_json(const char *rel);
/* Reads a whole file; NULL on failure. */
char *ts_read_file(const char *path, size_t *len);
/* Writes a whole file; 0 on success. */
int ts_write_file(const char *path, const void *data, size_t len);
/* A fresh temporary directory (malloc'ed path). */
char *ts_tmpdir(void);
/* "a/b", malloc'ed (caller frees). */
char *ts_join(const char *a, const char *b);
/* The "text" of lines idx[0..n) (ascending, from 0) of
 * tests/data/corpus/texts.jsonl: n malloc'ed strings (ts_free_texts); NULL
 * when the corpus is missing or an index is past its end. */
char **ts_corpus_texts(const size_t *idx, size_t n);
void ts_free_texts(char **texts, size_t n);
/* Lowest cosine between rows of a and b ([rows, cols] each), in double;
 * *at (may be NULL) gets its row. */
double ts_worst_cos(const float *a, const float *b, size_t rows, size_t cols, size_t *at);

#endif
