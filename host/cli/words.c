/*
 * Word-vector tools of the embedc command: similar-words (nearest words by
 * cosine) and analogy (A - B + C), with the semantics of gensim's
 * KeyedVectors.most_similar: every vector unit-normalized, the query the unit
 * mean of +unit(positive) and -unit(negative), input words excluded.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_words.h"
#include "engine.h"
#include "error.h"
#include "static_vectors.h"

static void usage_words(const char *cmd) {
    fprintf(stderr, "usage: embedc %s --model FILE [-k N] [--lowercase] %s\n", cmd,
            strcmp(cmd, "analogy") ? "WORD" : "A B C   (words nearest to A - B + C)");
}

static void print_hit(void *ud, const char *word, double score) {
    (void)ud;
    printf("%s %.6f\n", word, score);
}

static int find_word(const emb_static_vectors *sv, const char *w, int lower, int64_t *row) {
    size_t len = strlen(w);
    char *l = lower ? eng_lowercase_utf8(w, len, &len) : NULL;
    *row = emb_sv_lookup(sv, l ? l : w, len);
    free(l);
    if (*row < 0) {
        fprintf(stderr, "embedc: error: \"%s\" is not in the vocabulary of %s\n", w, sv->path);
        return -1;
    }
    return 0;
}

static int run_words(int argc, char **argv, int analogy) {
    const char *cmd = analogy ? "analogy" : "similar-words";
    static const struct option longopts[] = {
        {"model", required_argument, 0, 'm'}, {"topn", required_argument, 0, 'k'},
        {"lowercase", no_argument, 0, 'l'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *model = getenv("EMBEDC_MODEL");
    int k = 10, lower = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:k:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'k': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end || v < 1 || v > 100000) { fprintf(stderr, "embedc: -k expects 1..100000\n"); return 2; }
            k = (int)v;
            break;
        }
        case 'l': lower = 1; break;
        case 'h': usage_words(cmd); return 0;
        default: usage_words(cmd); return 2;
        }
    }
    int nwords = argc - optind;
    if (!model || nwords != (analogy ? 3 : 1)) { usage_words(cmd); return 2; }
    emb_error err = {0};
    emb_static_vectors *sv = NULL;
    if (emb_sv_load(model, &sv, &err) != EMB_OK) { fprintf(stderr, "embedc: error: %s\n", err.message); return 1; }
    int rc = 1;
    if (!emb_sv_is_word_format(sv)) {
        fprintf(stderr, "embedc: error: %s is a %s model; %s needs word vectors\n", model,
                emb_sv_format_name(sv->format), cmd);
        goto done;
    }
    int64_t rows[3];
    for (int i = 0; i < nwords; i++)
        if (find_word(sv, argv[optind + i], lower, &rows[i])) goto done;
    if (analogy) {
        int64_t pos[2] = {rows[0], rows[2]}, neg[1] = {rows[1]};
        rc = emb_sv_most_similar(sv, pos, 2, neg, 1, k, print_hit, NULL) < 0;
    } else {
        rc = emb_sv_most_similar(sv, rows, 1, NULL, 0, k, print_hit, NULL) < 0;
    }
done:
    emb_sv_free(sv);
    return rc;
}

int cli_similar_words(int argc, char **argv) { return run_words(argc, argv, 0); }
int cli_analogy(int argc, char **argv) { return run_words(argc, argv, 1); }
