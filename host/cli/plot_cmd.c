/*
 * Pictures: embedc plot (2-D PCA of vectors, labels and colours) and the
 * heatmap of embedc similarity --heatmap.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_extra.h"
#include "error.h"
#include "faiss_shim.h"
#include "npy_read.h"
#include "pca.h"
#include "plot.h"

#define PLOT_MAX_POINTS 20000   /* more are drawn as an evenly spaced sample */

/* One line per entry; *n gets the count. */
static char **read_lines(const char *path, size_t *n, emb_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) { emb_fail(err, EMB_ERR_IO, "cannot open %s: %s", path, strerror(errno)); return NULL; }
    char **out = NULL, *line = NULL;
    size_t cap = 0, lc = 0;
    ssize_t len;
    *n = 0;
    while ((len = getline(&line, &lc, f)) >= 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (*n == cap) {
            cap = cap ? cap * 2 : 256;
            char **p = realloc(out, cap * sizeof *p);
            if (!p) break;
            out = p;
        }
        if (!(out[*n] = strdup(line))) break;
        (*n)++;
    }
    int bad = ferror(f) || len >= 0;
    free(line);
    fclose(f);
    if (bad) {
        for (size_t i = 0; i < *n; i++) free(out[i]);
        free(out);
        emb_fail(err, EMB_ERR_IO, "reading %s failed", path);
        return NULL;
    }
    if (!out) out = calloc(1, sizeof *out);
    return out;
}

static void free_lines(char **l, size_t n) {
    if (!l) return;
    for (size_t i = 0; i < n; i++) free(l[i]);
    free(l);
}

static emb_status write_points(const char *path, const size_t *idx, size_t m, const double *xy,
                               const double *boxes, emb_error *err) {
    size_t len = strlen(path) + 32;
    char *tmp = malloc(len);
    if (!tmp) return emb_fail(err, EMB_ERR_NOMEM, "out of memory");
    snprintf(tmp, len, "%s.partial-%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) {
        emb_status st = emb_fail(err, EMB_ERR_IO, "cannot create %s: %s", path, strerror(errno));
        free(tmp);
        return st;
    }
    fprintf(f, "index\tpc1\tpc2\tpx\tpy\tlabel_x0\tlabel_y0\tlabel_x1\tlabel_y1\n");
    for (size_t i = 0; i < m; i++) {
        const double *b = boxes ? boxes + 6 * i : NULL;
        fprintf(f, "%zu\t%.9g\t%.9g", idx[i], xy[2 * i], xy[2 * i + 1]);
        if (b) fprintf(f, "\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\n", b[0], b[1], b[2], b[3], b[4], b[5]);
        else fprintf(f, "\t-1\t-1\t-1\t-1\t-1\t-1\n");
    }
    emb_status st = EMB_OK;
    if (fclose(f) != 0) st = emb_fail(err, EMB_ERR_IO, "writing %s: %s", path, strerror(errno));
    if (st == EMB_OK && rename(tmp, path) != 0)
        st = emb_fail(err, EMB_ERR_IO, "cannot move %s into place as %s: %s", tmp, path, strerror(errno));
    if (st != EMB_OK) unlink(tmp);
    free(tmp);
    return st;
}

int cmd_plot(const cli_extra *x, const char *output, int quiet, int argc, char **argv) {
    if (optind >= argc || (!x->output_given && !x->points_out)) {
        fprintf(stderr, "embedc plot: usage: embedc plot VECTORS.npy [--labels FILE] [--color-by FILE] -o space.png|.svg\n");
        return 2;
    }
    const char *in = argv[optind];
    emb_error err = {0};
    float *v = NULL;
    uint64_t n = 0;
    int d = 0, rc = 1;
    char **labels = NULL, **groups = NULL;
    size_t nl = 0, ng = 0, m = 0, *idx = NULL;
    double *all = NULL, *xy = NULL, *boxes = NULL;
    const char **lab_s = NULL, **grp_s = NULL;
    if (x->output_given && !pl_available()) {
        pl_scatter(output, NULL, 0, NULL, NULL, NULL, NULL, &err);
        goto fail;
    }
    if (io_npy_read(in, &v, &n, &d, &err) != EMB_OK) goto fail;
    if (x->labels && !(labels = read_lines(x->labels, &nl, &err))) goto fail;
    if (x->color_by && !(groups = read_lines(x->color_by, &ng, &err))) goto fail;
    if (labels && nl != n) {
        emb_fail(&err, EMB_ERR_INVALID_ARG, "--labels %s has %zu lines, %s has %llu vectors", x->labels, nl, in,
                 (unsigned long long)n);
        goto fail;
    }
    if (groups && ng != n) {
        emb_fail(&err, EMB_ERR_INVALID_ARG, "--color-by %s has %zu lines, %s has %llu vectors", x->color_by, ng, in,
                 (unsigned long long)n);
        goto fail;
    }
    all = malloc(2 * (size_t)(n ? n : 1) * sizeof *all);
    if (!all) { emb_fail(&err, EMB_ERR_NOMEM, "out of memory"); goto fail; }
    double ratio[2];
    if (io_pca2(v, n, d, all, NULL, NULL, ratio, &err) != EMB_OK) {
        emb_fail_prefix(&err, "%s", in);
        goto fail;
    }
    /* PCA over every vector; at most PLOT_MAX_POINTS drawn, evenly spaced */
    m = n > PLOT_MAX_POINTS ? PLOT_MAX_POINTS : (size_t)n;
    idx = malloc(m * sizeof *idx);
    xy = malloc(2 * m * sizeof *xy);
    boxes = malloc(6 * m * sizeof *boxes);
    lab_s = calloc(m, sizeof *lab_s);
    grp_s = calloc(m, sizeof *grp_s);
    if (!idx || !xy || !boxes || !lab_s || !grp_s) { emb_fail(&err, EMB_ERR_NOMEM, "out of memory"); goto fail; }
    for (size_t i = 0; i < m; i++) {
        idx[i] = (size_t)((uint64_t)i * n / m);
        xy[2 * i] = all[2 * idx[i]];
        xy[2 * i + 1] = all[2 * idx[i] + 1];
        if (labels) lab_s[i] = labels[idx[i]];
        if (groups) grp_s[i] = groups[idx[i]];
    }
    char title[512], xl[64], yl[64];
    snprintf(title, sizeof title, "PCA of %s: %llu vectors, dim %d%s", in, (unsigned long long)n, d,
             m < n ? " (evenly spaced sample of 20000 drawn)" : "");
    snprintf(xl, sizeof xl, "PC1 (%.1f%% of variance)", 100 * ratio[0]);
    snprintf(yl, sizeof yl, "PC2 (%.1f%% of variance)", 100 * ratio[1]);
    pl_options po = {x->width, x->height, title, xl, yl};
    int drawn = 0;
    if (x->output_given) {
        if (pl_scatter(output, xy, m, labels ? lab_s : NULL, groups ? grp_s : NULL, &po, boxes, &err) != EMB_OK)
            goto fail;
        drawn = 1;
    }
    if (x->points_out && write_points(x->points_out, idx, m, xy, drawn ? boxes : NULL, &err) != EMB_OK) goto fail;
    if (!quiet && drawn)
        fprintf(stderr, "embedc: wrote %s (%zu points; PC1 %.1f%%, PC2 %.1f%% of variance)\n", output, m,
                100 * ratio[0], 100 * ratio[1]);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "embedc: error: %s\n", err.message);
done:
    free(v);
    free(all);
    free(xy);
    free(idx);
    free(boxes);
    free(lab_s);
    free(grp_s);
    free_lines(labels, nl);
    free_lines(groups, ng);
    return rc;
}

void cli_extra_features(FILE *f) {
    fprintf(f, "FAISS indexes: %s%s; pictures: %s\n", fx_available() ? "yes, FAISS " : "no (built without FAISS)",
            fx_available() ? fx_version() : "", pl_available() ? "yes" : "no (built without cairo/pango)");
}

int cli_heatmap(const cli_extra *x, const float *sim, int n, const char *const *texts, const char *model) {
    emb_error err = {0};
    char title[512];
    snprintf(title, sizeof title, "cosine similarity (%s)", model);
    pl_options po = {x->width, x->height, title, NULL, NULL};
    if (pl_heatmap(x->heatmap, sim, n, texts, &po, &err) != EMB_OK) {
        fprintf(stderr, "embedc: error: %s\n", err.message);
        return 1;
    }
    return 0;
}
