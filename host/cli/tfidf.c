/*
 * fit-tfidf and the sparse side of encode: learning a bag-of-words / TF-IDF
 * vocabulary from a corpus (scikit-learn TfidfVectorizer defaults) into a
 * model directory, then writing each document's sparse row as .npz (scipy
 * CSR) or JSONL.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli_words.h"
#include "error.h"
#include "io.h"
#include "sparse.h"
#include "tfidf.h"

static void usage_fit(FILE *f) {
    fprintf(f,
        "usage: embedc fit-tfidf --input FILE --output DIR [options]\n"
        "  learns scikit-learn TfidfVectorizer's vocabulary and idf (token pattern (?u)\\b\\w\\w+\\b,\n"
        "  lowercase, smooth idf, l2 norm); then: embedc encode --model DIR -o out.npz|out.jsonl\n"
        "      --input-format text|jsonl, --field NAME   as for encode\n"
        "      --min-df N|F          ignore terms in fewer than N documents (F < 1: a share; default 1)\n"
        "      --max-df N|F          ignore terms in more than N documents (default 1.0 = all)\n"
        "      --max-features N      keep the N most frequent terms\n"
        "      --binary              term presence (1) instead of counts\n"
        "      --no-idf              no idf weighting (with --norm none: plain counts, CountVectorizer)\n"
        "      --norm l2|l1|none     row normalization (default l2)\n"
        "      --no-lowercase        keep case\n");
}

static int open_reader(const char *path, const char *fmt, const char *field, io_reader **r, emb_error *err) {
    io_in_format inf = io_guess_in_format(path);
    if (fmt) {
        if (!strcmp(fmt, "jsonl")) inf = IO_IN_JSONL;
        else if (!strcmp(fmt, "text") || !strcmp(fmt, "txt")) inf = IO_IN_TEXT;
        else { emb_fail(err, EMB_ERR_INVALID_ARG, "--input-format %s: expected text or jsonl", fmt); return -1; }
    }
    return io_reader_open(path, inf, field, r, err) == EMB_OK ? 0 : -1;
}

static int parse_df(const char *flag, const char *s, double *v, int *is_count) {
    char *end;
    errno = 0;
    double d = strtod(s, &end);
    if (errno || *end || end == s || d < 0) { fprintf(stderr, "embedc: %s expects a count or a share, got \"%s\"\n", flag, s); return -1; }
    /* sklearn: an int is a document count, a float a proportion in [0, 1]. */
    *is_count = strchr(s, '.') == NULL && strchr(s, 'e') == NULL;
    if (!*is_count && d > 1) { fprintf(stderr, "embedc: %s %s: a share must be in [0, 1]\n", flag, s); return -1; }
    *v = d;
    return 0;
}

int cli_fit_tfidf(int argc, char **argv) {
    enum { F_INFMT = 300, F_FIELD, F_MIN, F_MAX, F_MAXF, F_BIN, F_NOIDF, F_NORM, F_NOLOWER };
    static const struct option longopts[] = {
        {"input", required_argument, 0, 'i'}, {"output", required_argument, 0, 'o'},
        {"input-format", required_argument, 0, F_INFMT}, {"field", required_argument, 0, F_FIELD},
        {"min-df", required_argument, 0, F_MIN}, {"max-df", required_argument, 0, F_MAX},
        {"max-features", required_argument, 0, F_MAXF}, {"binary", no_argument, 0, F_BIN},
        {"no-idf", no_argument, 0, F_NOIDF}, {"norm", required_argument, 0, F_NORM},
        {"no-lowercase", no_argument, 0, F_NOLOWER}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *input = "-", *output = NULL, *infmt = NULL, *field = "text";
    emb_tfidf_options to = emb_tfidf_default_options();
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "i:o:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'i': input = optarg; break;
        case 'o': output = optarg; break;
        case F_INFMT: infmt = optarg; break;
        case F_FIELD: field = optarg; break;
        case F_MIN: if (parse_df("--min-df", optarg, &to.min_df, &to.min_df_is_count)) return 2; break;
        case F_MAX: if (parse_df("--max-df", optarg, &to.max_df, &to.max_df_is_count)) return 2; break;
        case F_MAXF: {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end || v < 1) { fprintf(stderr, "embedc: --max-features expects a positive integer\n"); return 2; }
            to.max_features = (size_t)v;
            break;
        }
        case F_BIN: to.binary = 1; break;
        case F_NOIDF: to.use_idf = 0; break;
        case F_NORM:
            if (!strcmp(optarg, "l2")) to.norm = TFIDF_NORM_L2;
            else if (!strcmp(optarg, "l1")) to.norm = TFIDF_NORM_L1;
            else if (!strcmp(optarg, "none")) to.norm = TFIDF_NORM_NONE;
            else { fprintf(stderr, "embedc: --norm expects l2, l1 or none\n"); return 2; }
            break;
        case F_NOLOWER: to.lowercase = 0; break;
        case 'h': usage_fit(stdout); return 0;
        default: usage_fit(stderr); return 2;
        }
    }
    if (!output) { usage_fit(stderr); return 2; }
    emb_error err = {0};
    io_reader *r = NULL;
    emb_tfidf *t = NULL;
    int rc = 1;
    if (open_reader(input, infmt, field, &r, &err)) goto fail;
    if (emb_tfidf_fit(io_reader_next, r, &to, &t, &err) != EMB_OK) goto fail;
    if (emb_tfidf_save(t, output, &err) != EMB_OK) goto fail;
    fprintf(stderr, "embedc: %zu features written to %s/tfidf.json\n", emb_tfidf_features(t), output);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "embedc: error: %s\n", err.message);
done:
    emb_tfidf_free(t);
    io_reader_close(r);
    return rc;
}

int cli_encode_tfidf(const char *model, const char *input, const char *infmt, const char *field,
                     const char *output, const char *format, int quiet) {
    emb_error err = {0};
    io_reader *r = NULL;
    io_sparse_writer *w = NULL;
    emb_tfidf *t = NULL;
    int32_t *idx = NULL;
    double *val = NULL;
    size_t cap = 0, n = 0, nnz = 0;
    uint64_t docs = 0;
    int rc = 1;
    io_sparse_format sf;
    if (io_sparse_parse_format(format, output, &sf)) {
        fprintf(stderr, "embedc: --format %s: a TF-IDF model writes npz or jsonl\n", format);
        return 2;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (emb_tfidf_load(model, &t, &err) != EMB_OK) goto fail;
    if (open_reader(input, infmt, field, &r, &err)) goto fail;
    if (io_sparse_open(output, sf, emb_tfidf_features(t), &w, &err) != EMB_OK) goto fail;
    const char *text;
    size_t len;
    int got;
    while ((got = io_reader_next(r, &text, &len, &err)) == 1) {
        if (emb_tfidf_transform(t, text, len, &idx, &val, &cap, &n, &err) != EMB_OK ||
            io_sparse_write(w, idx, val, n, &err) != EMB_OK) {
            emb_fail_prefix(&err, "document %llu", (unsigned long long)docs);
            goto fail;
        }
        nnz += n;
        docs++;
    }
    if (got < 0 || io_sparse_commit(w, &err) != EMB_OK) goto fail;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    if (!quiet)
        fprintf(stderr, "embedc: %llu documents, %zu non-zeros (%zu features) in %.2f s: %.1f docs/s [tfidf, sparse]\n",
                (unsigned long long)docs, nnz, emb_tfidf_features(t), secs, secs > 0 ? docs / secs : 0.0);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "embedc: error: %s\n", err.message);
done:
    free(idx);
    free(val);
    io_sparse_close(w);
    io_reader_close(r);
    emb_tfidf_free(t);
    return rc;
}

int cli_info_tfidf(const char *dir) {
    emb_error err = {0};
    emb_tfidf *t = NULL;
    if (emb_tfidf_load(dir, &t, &err) != EMB_OK) {
        fprintf(stderr, "embedc: error: %s\n", err.message);
        return 1;
    }
    printf("model:           %s\n", dir);
    printf("format:          TF-IDF / bag of words (scikit-learn TfidfVectorizer semantics), sparse output\n");
    printf("features:        %zu\n", emb_tfidf_features(t));
    const emb_tfidf_options *o = emb_tfidf_get_options(t);
    printf("terms:           (?u)\\b\\w\\w+\\b%s\n", o->lowercase ? ", lowercased" : "");
    printf("weights:         %s counts%s, norm %s\n", o->binary ? "binary" : "raw", o->use_idf ? " x smooth idf" : "",
           o->norm == TFIDF_NORM_L2 ? "l2" : o->norm == TFIDF_NORM_L1 ? "l1" : "none");
    emb_tfidf_free(t);
    return 0;
}
