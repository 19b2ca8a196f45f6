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

/* The word's vector (from its row, or from fastText n-grams); its row goes
 * to the exclusion list only when it is in the vocabulary, as in gensim. */
static int find_word(const emb_static_vectors *sv, const char *w, int lower, float *vec, int64_t *row) {
    size_t len = strlen(w);
    char *l = lower ? eng_lowercase_utf8(w, len, &len) : NULL;
    int got = emb_sv_word_vector(sv, l ? l : w, len, vec, row);
    free(l);
    if (!got) {
        fprintf(stderr, "embedc: error: \"%s\" is not in the vocabulary of %s%s\n", w, sv->path,
                sv->format == SV_FASTTEXT_BIN ? " and has no known character n-grams" : "");
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
    int64_t rows[3], ex[3];
    float *vecs = malloc(3 * (size_t)sv->dim * sizeof *vecs);
    if (!vecs) goto done;
    const float *q[3];
    int nex = 0;
    for (int i = 0; i < nwords; i++) {
        q[i] = vecs + (size_t)i * sv->dim;
        if (find_word(sv, argv[optind + i], lower, vecs + (size_t)i * sv->dim, &rows[i])) { free(vecs); goto done; }
        if (rows[i] >= 0) ex[nex++] = rows[i];
    }
    if (analogy) {   /* most_similar(positive=[A, C], negative=[B]) */
        const float *qa[3] = {q[0], q[2], q[1]};
        static const double signs[3] = {1, 1, -1};
        rc = emb_sv_most_similar_vecs(sv, qa, signs, 3, ex, nex, k, print_hit, NULL) < 0;
    } else {
        static const double one[1] = {1};
        rc = emb_sv_most_similar_vecs(sv, q, one, 1, ex, nex, k, print_hit, NULL) < 0;
    }
    free(vecs);
done:
    emb_sv_free(sv);
    return rc;
}

int cli_similar_words(int argc, char **argv) { return run_words(argc, argv, 0); }
int cli_analogy(int argc, char **argv) { return run_words(argc, argv, 1); }
