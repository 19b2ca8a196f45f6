/*
 * The commands of host/cli/words.c (word-vector tools), called
 * by main.c with argv starting at the command name.
 */
#ifndef EMBEDC_CLI_WORDS_H
#define EMBEDC_CLI_WORDS_H

#include <stdint.h>
#include "static_vectors.h"

int cli_similar_words(int argc, char **argv);
int cli_analogy(int argc, char **argv);

/* host/cli/tfidf.c */
int cli_fit_tfidf(int argc, char **argv);
int cli_info_tfidf(const char *dir);
int cli_encode_tfidf(const char *model, const char *input, const char *infmt, const char *field,
                     const char *output, const char *format, int quiet);

#endif
