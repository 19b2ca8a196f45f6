/*
 * Pictures of embeddings through pango + cairo (host/io/plot.c): a 2-D
 * scatter with labels (embedc plot) and a similarity heatmap (embedc
 * similarity --heatmap). PNG or SVG by the file name; written to a temporary
 * file and renamed into place. Built without cairo, both fail with a clear
 * message (pl_available() == 0).
 */
#ifndef EMBEDC_HOST_PLOT_H
#define EMBEDC_HOST_PLOT_H

#include <stddef.h>
#include "embedc.h"

typedef struct {
    int width, height;         /* pixels (SVG: points); 0 = default */
    const char *title;         /* NULL: none */
    const char *x_label, *y_label;
} pl_options;

int pl_available(void);

/* n points xy[2i], xy[2i+1]; labels[i] (NULL or "" = none) drawn beside each
 * point; groups[i] (NULL = one colour) picks the colour and the legend.
 * boxes (optional, 6n doubles): per point the pixel centre x, y and the
 * label's box x0, y0, x1, y1 (all -1 without a label). */
emb_status pl_scatter(const char *path, const double *xy, size_t n, const char *const *labels,
                      const char *const *groups, const pl_options *o, double *boxes, emb_error *err);

/* n x n matrix (row-major) of values in [-1, 1]; labels[i] names row i. */
emb_status pl_heatmap(const char *path, const float *m, int n, const char *const *labels,
                      const pl_options *o, emb_error *err);

#endif
