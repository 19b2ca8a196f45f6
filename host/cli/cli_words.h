/*
 * The commands of host/cli/words.c (word-vector tools) and tfidf.c, called
 * by main.c with argv starting at the command name.
 */
#ifndef EMBEDC_CLI_WORDS_H
#define EMBEDC_CLI_WORDS_H

#include <stdint.h>
#include "static_vectors.h"

int cli_similar_words(int argc, char **argv);
int cli_analogy(int argc, char **argv);

typedef void (*hit_fn)(void *ud, const char *word, double score);
/* gensim most_similar(positive, negative, topn=k); returns hits given to fn, -1 on OOM. */
int cli_most_similar(const emb_static_vectors *sv, const int64_t *pos, int npos, const int64_t *neg,
                     int nneg, int k, hit_fn fn, void *ud);

#endif
