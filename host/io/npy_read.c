/*
 * Reads a whole 2-D .npy matrix (float32, float16 or float64, C order,
 * little-endian; format versions 1-3) into float32, for the commands that
 * take vectors already written (index, bench-index, plot).
 */
#include "npy_read.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

static float f16_to_f32(uint16_t h) {
    int e = (h >> 10) & 0x1f, m = h & 0x3ff;
    float v = e == 0 ? ldexpf((float)m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexpf((float)(m | 0x400), e - 25);
    return (h & 0x8000) ? -v : v;
}

emb_status io_npy_read(const char *path, float **data, uint64_t *rows, int *cols, emb_error *err) {
    *data = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return emb_fail(err, EMB_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    emb_status st = EMB_OK;
    char *hdr = NULL;
    void *raw = NULL;
    float *out = NULL;
    int width_owned = 0;
    unsigned char pre[12];
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0 || pre[6] < 1 || pre[6] > 3) {
        st = emb_fail(err, EMB_ERR_FORMAT, "%s: not a .npy file", path);
        goto done;
    }
    size_t hl = (size_t)pre[8] | ((size_t)pre[9] << 8);
    if (pre[6] >= 2) {
        if (fread(pre + 10, 1, 2, f) != 2) { st = emb_fail(err, EMB_ERR_FORMAT, "%s: truncated header", path); goto done; }
        hl |= ((size_t)pre[10] << 16) | ((size_t)pre[11] << 24);
    }
    if (hl > (1u << 20) || !(hdr = calloc(1, hl + 1)) || fread(hdr, 1, hl, f) != hl) {
        st = emb_fail(err, EMB_ERR_FORMAT, "%s: truncated or oversized .npy header", path);
        goto done;
    }
    size_t width;
    if (strstr(hdr, "'<f4'")) width = 4;
    else if (strstr(hdr, "'<f2'")) width = 2;
    else if (strstr(hdr, "'<f8'")) width = 8;
    else { st = emb_fail(err, EMB_ERR_FORMAT, "%s: dtype must be float16/32/64 little-endian", path); goto done; }
    if (strstr(hdr, "'fortran_order': True")) {
        st = emb_fail(err, EMB_ERR_FORMAT, "%s: Fortran-order arrays are not supported", path);
        goto done;
    }
    const char *sh = strstr(hdr, "'shape': (");
    unsigned long long r = 0, c = 0;
    if (!sh || sscanf(sh, "'shape': (%llu, %llu)", &r, &c) != 2 || c == 0 || c > (1u << 20)) {
        st = emb_fail(err, EMB_ERR_FORMAT, "%s: expected a 2-D array (rows, dim)", path);
        goto done;
    }
    size_t n = (size_t)r * (size_t)c;
    if (r && n / r != c) { st = emb_fail(err, EMB_ERR_FORMAT, "%s: shape too large", path); goto done; }
    out = malloc((n ? n : 1) * sizeof *out);
    width_owned = width != 4;
    raw = width_owned ? malloc((n ? n : 1) * width) : (void *)out;
    if (!out || !raw) { st = emb_fail(err, EMB_ERR_NOMEM, "%s: out of memory for %llu x %llu", path, r, c); goto done; }
    if (fread(raw, width, n, f) != n) {
        st = emb_fail(err, EMB_ERR_FORMAT, "%s: file shorter than its shape (%llu x %llu)", path, r, c);
        goto done;
    }
    if (width == 2)
        for (size_t i = 0; i < n; i++) out[i] = f16_to_f32(((const uint16_t *)raw)[i]);
    else if (width == 8)
        for (size_t i = 0; i < n; i++) out[i] = (float)((const double *)raw)[i];
    *data = out;
    *rows = r;
    *cols = (int)c;
    out = NULL;
done:
    if (width_owned) free(raw);
    free(out);
    free(hdr);
    fclose(f);
    return st;
}
