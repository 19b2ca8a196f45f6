/*
 * Pictures (plot.h) drawn with cairo; text laid out by pango, so labels in
 * any script are shaped and fall back across the installed fonts (Noto CJK,
 * TLWG Thai, DejaVu: tools/install-deps).
 */
#include "plot.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"

#ifndef EMBEDC_HAVE_PICTURES
#define PL_NONE "this embedc was built without pictures (install libcairo2-dev and libpango1.0-dev, e.g. tools/install-deps, and rebuild)"
int pl_available(void) { return 0; }
emb_status pl_scatter(const char *path, const double *xy, size_t n, const char *const *labels,
                      const char *const *groups, const pl_options *o, double *boxes, emb_error *err) {
    (void)path; (void)xy; (void)n; (void)labels; (void)groups; (void)o; (void)boxes;
    return emb_fail(err, EMB_ERR_UNSUPPORTED, PL_NONE);
}
emb_status pl_heatmap(const char *path, const float *m, int n, const char *const *labels,
                      const pl_options *o, emb_error *err) {
    (void)path; (void)m; (void)n; (void)labels; (void)o;
    return emb_fail(err, EMB_ERR_UNSUPPORTED, PL_NONE);
}
#else
#include <cairo-svg.h>
#include <cairo.h>
#include <pango/pangocairo.h>

int pl_available(void) { return 1; }

static int has_suffix(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcasecmp(s + a - b, suf) == 0;
}

/* A drawing: the surface writes to tmp; pl_end renames it to path. */
typedef struct {
    cairo_surface_t *surface;
    cairo_t *cr;
    int svg;
    char *tmp;
    const char *path;
} canvas;

static emb_status pl_begin(canvas *c, const char *path, int w, int h, emb_error *err) {
    memset(c, 0, sizeof *c);
    c->path = path;
    c->svg = has_suffix(path, ".svg");
    if (!c->svg && !has_suffix(path, ".png"))
        return emb_fail(err, EMB_ERR_INVALID_ARG, "picture %s: the name must end in .png or .svg", path);
    size_t n = strlen(path) + 32;
    if (!(c->tmp = malloc(n))) return emb_fail(err, EMB_ERR_NOMEM, "out of memory");
    snprintf(c->tmp, n, "%s.partial-%ld", path, (long)getpid());
    c->surface = c->svg ? cairo_svg_surface_create(c->tmp, w, h)
                        : cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
    if (cairo_surface_status(c->surface) != CAIRO_STATUS_SUCCESS) {
        emb_status st = emb_fail(err, EMB_ERR_IO, "cannot create picture %s: %s", path,
                                 cairo_status_to_string(cairo_surface_status(c->surface)));
        cairo_surface_destroy(c->surface);
        c->surface = NULL;
        unlink(c->tmp);
        free(c->tmp);
        c->tmp = NULL;
        return st;
    }
    c->cr = cairo_create(c->surface);
    cairo_set_source_rgb(c->cr, 1, 1, 1);
    cairo_paint(c->cr);
    return EMB_OK;
}

static emb_status pl_end(canvas *c, int ok, emb_error *err) {
    emb_status st = EMB_OK;
    cairo_status_t cs = cairo_status(c->cr);
    cairo_destroy(c->cr);
    if (ok && cs != CAIRO_STATUS_SUCCESS)
        st = emb_fail(err, EMB_ERR_INTERNAL, "drawing %s: %s", c->path, cairo_status_to_string(cs));
    if (ok && st == EMB_OK && !c->svg) {
        cs = cairo_surface_write_to_png(c->surface, c->tmp);
        if (cs != CAIRO_STATUS_SUCCESS)
            st = emb_fail(err, EMB_ERR_IO, "writing %s: %s", c->path, cairo_status_to_string(cs));
    }
    cairo_surface_finish(c->surface);
    cs = cairo_surface_status(c->surface);
    if (ok && st == EMB_OK && cs != CAIRO_STATUS_SUCCESS)
        st = emb_fail(err, EMB_ERR_IO, "writing %s: %s", c->path, cairo_status_to_string(cs));
    cairo_surface_destroy(c->surface);
    if (ok && st == EMB_OK && rename(c->tmp, c->path) != 0)
        st = emb_fail(err, EMB_ERR_IO, "cannot move %s into place as %s: %s", c->tmp, c->path, strerror(errno));
    if (!ok || st != EMB_OK) unlink(c->tmp);
    free(c->tmp);
    return st;
}

/* Draws text with its top-left corner at x, y (anchor 0) or its right edge
 * at x (anchor 1) or centred on x (anchor 2); returns its size in w/h. */
static void text_at(cairo_t *cr, const char *s, double size, double x, double y, int anchor, double *w,
                    double *h) {
    PangoLayout *l = pango_cairo_create_layout(cr);
    PangoFontDescription *fd = pango_font_description_from_string("Sans");
    pango_font_description_set_absolute_size(fd, size * PANGO_SCALE);
    pango_layout_set_font_description(l, fd);
    gchar *valid = g_utf8_make_valid(s, -1);   /* labels cut mid-character stay drawable */
    pango_layout_set_text(l, valid, -1);
    g_free(valid);
    int pw, ph;
    pango_layout_get_pixel_size(l, &pw, &ph);
    double x0 = anchor == 1 ? x - pw : anchor == 2 ? x - pw / 2.0 : x;
    cairo_move_to(cr, x0, y);
    pango_cairo_show_layout(cr, l);
    if (w) *w = pw;
    if (h) *h = ph;
    pango_font_description_free(fd);
    g_object_unref(l);
}

/* tab10 */
static const double palette[10][3] = {
    {0.122, 0.467, 0.706}, {1.000, 0.498, 0.055}, {0.173, 0.627, 0.173}, {0.839, 0.153, 0.157},
    {0.580, 0.404, 0.741}, {0.549, 0.337, 0.294}, {0.890, 0.467, 0.761}, {0.498, 0.498, 0.498},
    {0.737, 0.741, 0.133}, {0.090, 0.745, 0.812}};

emb_status pl_scatter(const char *path, const double *xy, size_t n, const char *const *labels,
                      const char *const *groups, const pl_options *o, double *boxes, emb_error *err) {
    int W = o && o->width > 0 ? o->width : 1000, H = o && o->height > 0 ? o->height : 800;
    if (W < 100 || H < 100 || W > 20000 || H > 20000)
        return emb_fail(err, EMB_ERR_INVALID_ARG, "picture size %dx%d: expected 100..20000 pixels a side", W, H);
    /* Groups: first-seen order gives each its colour. */
    const char **names = NULL;
    int *gi = NULL, ng = 0;
    if (groups) {
        names = calloc(n ? n : 1, sizeof *names);
        gi = calloc(n ? n : 1, sizeof *gi);
        if (!names || !gi) { free(names); free(gi); return emb_fail(err, EMB_ERR_NOMEM, "out of memory"); }
        for (size_t i = 0; i < n; i++) {
            int g = 0;
            while (g < ng && strcmp(names[g], groups[i])) g++;
            if (g == ng) names[ng++] = groups[i];
            gi[i] = g;
        }
    }
    canvas c;
    emb_status st = pl_begin(&c, path, W, H, err);
    if (st != EMB_OK) { free(names); free(gi); return st; }
    cairo_t *cr = c.cr;
    double font = H / 60.0 < 9 ? 9 : H / 60.0 > 16 ? 16 : H / 60.0;
    double top = o && o->title ? font * 3 : font * 1.5, left = font * 3, right = font * 1.5, bottom = font * 3;
    double pw = W - left - right, ph = H - top - bottom;
    /* Data range with a margin for the labels on the right. */
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(xy[2 * i]) || !isfinite(xy[2 * i + 1])) continue;
        if (xy[2 * i] < xmin) xmin = xy[2 * i];
        if (xy[2 * i] > xmax) xmax = xy[2 * i];
        if (xy[2 * i + 1] < ymin) ymin = xy[2 * i + 1];
        if (xy[2 * i + 1] > ymax) ymax = xy[2 * i + 1];
    }
    if (!(xmax > xmin)) { xmin -= 1; xmax += 1; }
    if (!(ymax > ymin)) { ymin -= 1; ymax += 1; }
    double xpad = (xmax - xmin) * 0.2, ypad = (ymax - ymin) * 0.06;
    xmin -= (xmax - xmin) * 0.05; xmax += xpad; ymin -= ypad; ymax += ypad;
    /* frame, title, axis names */
    cairo_set_source_rgb(cr, 0.6, 0.6, 0.6);
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, left + 0.5, top + 0.5, pw - 1, ph - 1);
    cairo_stroke(cr);
    cairo_set_source_rgb(cr, 0, 0, 0);
    if (o && o->title) text_at(cr, o->title, font * 1.2, W / 2.0, font * 0.6, 2, NULL, NULL);
    if (o && o->x_label) text_at(cr, o->x_label, font, left + pw / 2, top + ph + font * 0.8, 2, NULL, NULL);
    if (o && o->y_label) {
        cairo_save(cr);
        cairo_translate(cr, font * 0.6, top + ph / 2);
        cairo_rotate(cr, -M_PI / 2);
        text_at(cr, o->y_label, font, 0, 0, 2, NULL, NULL);
        cairo_restore(cr);
    }
    double r = n > 2000 ? 1.5 : 3.5;
    for (size_t i = 0; i < n; i++) {
        double px = left + (xy[2 * i] - xmin) / (xmax - xmin) * pw;
        double py = top + (1 - (xy[2 * i + 1] - ymin) / (ymax - ymin)) * ph;
        const double *col = palette[gi ? gi[i] % 10 : 0];
        cairo_set_source_rgb(cr, col[0], col[1], col[2]);
        cairo_arc(cr, px, py, r, 0, 2 * M_PI);
        cairo_fill(cr);
        double *bx = boxes ? boxes + 6 * i : NULL;
        if (bx) { bx[0] = px; bx[1] = py; bx[2] = bx[3] = bx[4] = bx[5] = -1; }
        if (labels && labels[i] && *labels[i]) {
            double tw, th, tx = px + r + 3, ty = py - font * 0.7;
            cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
            text_at(cr, labels[i], font, tx, ty, 0, &tw, &th);
            if (bx) { bx[2] = tx; bx[3] = ty; bx[4] = tx + tw; bx[5] = ty + th; }
        }
    }
    /* legend */
    for (int g = 0; g < ng && g < 20; g++) {
        double ly = top + font * (0.6 + 1.4 * g), lx = left + pw - font * 12;
        cairo_set_source_rgb(cr, palette[g % 10][0], palette[g % 10][1], palette[g % 10][2]);
        cairo_rectangle(cr, lx, ly + font * 0.2, font * 0.8, font * 0.8);
        cairo_fill(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        text_at(cr, names[g], font, lx + font * 1.2, ly, 0, NULL, NULL);
    }
    free(names);
    free(gi);
    return pl_end(&c, 1, err);
}

/* blue (-1) - white (0) - red (+1) */
static void diverging(double v, double *rgb) {
    v = v < -1 ? -1 : v > 1 ? 1 : v;
    const double lo[3] = {0.23, 0.30, 0.75}, hi[3] = {0.71, 0.02, 0.15};
    const double *e = v < 0 ? lo : hi;
    double t = fabs(v);
    for (int k = 0; k < 3; k++) rgb[k] = 1 + (e[k] - 1) * t;
}

emb_status pl_heatmap(const char *path, const float *m, int n, const char *const *labels,
                      const pl_options *o, emb_error *err) {
    if (n < 1) return emb_fail(err, EMB_ERR_INVALID_ARG, "heatmap: no texts");
    double cell = n <= 20 ? 44 : n <= 100 ? 12 : 4, font = 12, lab = labels ? 320 : 40;
    int W = o && o->width > 0 ? o->width : (int)(lab + cell * n + 30);
    int H = o && o->height > 0 ? o->height : (int)(font * 4 + cell * n + 30);
    if (W < 100) W = 100;
    if (H < 100) H = 100;
    if (W > 20000 || H > 20000)
        return emb_fail(err, EMB_ERR_INVALID_ARG, "heatmap %dx%d: at most 20000 pixels a side", W, H);
    cell = fmin((W - lab - 30) / n, (H - font * 4 - 30) / n);
    canvas c;
    emb_status st = pl_begin(&c, path, W, H, err);
    if (st != EMB_OK) return st;
    cairo_t *cr = c.cr;
    double x0 = lab, y0 = font * 4;
    cairo_set_source_rgb(cr, 0, 0, 0);
    if (o && o->title) text_at(cr, o->title, font * 1.2, W / 2.0, font * 0.6, 2, NULL, NULL);
    for (int i = 0; i < n; i++) {
        char num[16];
        snprintf(num, sizeof num, "%d", i + 1);
        cairo_set_source_rgb(cr, 0, 0, 0);
        if (cell >= 10) text_at(cr, num, font * 0.9, x0 + cell * (i + 0.5), y0 - font * 1.4, 2, NULL, NULL);
        if (labels) {
            char buf[160];
            snprintf(buf, sizeof buf, "%d  %s", i + 1, labels[i]);
            /* cut at 40 characters on a UTF-8 boundary */
            int chars = 0;
            size_t k = 0;
            while (buf[k] && chars < 40) { k++; while (((unsigned char)buf[k] & 0xC0) == 0x80) k++; chars++; }
            if (buf[k]) { buf[k] = 0; if (k + 4 < sizeof buf) strcat(buf, "…"); }
            if (cell >= 8) text_at(cr, buf, font * 0.9, x0 - 8, y0 + cell * (i + 0.5) - font * 0.6, 1, NULL, NULL);
        }
        for (int j = 0; j < n; j++) {
            double v = m[(size_t)i * n + j], rgb[3];
            diverging(v, rgb);
            cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
            cairo_rectangle(cr, x0 + cell * j, y0 + cell * i, cell, cell);
            cairo_fill(cr);
            if (cell >= 36) {
                char val[16];
                snprintf(val, sizeof val, "%.2f", v);
                double g = fabs(v) > 0.6 ? 1 : 0;
                cairo_set_source_rgb(cr, g, g, g);
                text_at(cr, val, font * 0.85, x0 + cell * (j + 0.5), y0 + cell * (i + 0.5) - font * 0.55, 2, NULL, NULL);
            }
        }
    }
    return pl_end(&c, 1, err);
}
#endif
