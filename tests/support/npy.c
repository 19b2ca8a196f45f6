/* Minimal .npy reader for the tests (see npy.h). */
#include "npy.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static float half_to_float(uint16_t h) {
    int e = (h >> 10) & 0x1f, m = h & 0x3ff;
    float v = e == 0 ? ldexpf((float)m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexpf((float)(m | 0x400), e - 25);
    return (h & 0x8000) ? -v : v;
}

float *npy_load(const char *path, size_t *rows, size_t *cols) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    unsigned char pre[10];
    float *out = NULL;
    char *hdr = NULL;
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0 || pre[6] != 1) goto done;
    size_t hl = (size_t)pre[8] | ((size_t)pre[9] << 8);
    hdr = calloc(1, hl + 1);
    if (!hdr || fread(hdr, 1, hl, f) != hl) goto done;
    int f16 = strstr(hdr, "'<f2'") != NULL;
    if (!f16 && !strstr(hdr, "'<f4'")) goto done;
    if (strstr(hdr, "'fortran_order': True")) goto done;
    const char *sh = strstr(hdr, "'shape': (");
    unsigned long long r = 0, c = 0;
    if (!sh || sscanf(sh, "'shape': (%llu, %llu)", &r, &c) != 2) goto done;
    size_t n = (size_t)(r * c);
    out = malloc((n ? n : 1) * sizeof *out);
    if (!out) goto done;
    if (f16) {
        uint16_t *tmp = malloc((n ? n : 1) * 2);
        if (!tmp || fread(tmp, 2, n, f) != n) { free(tmp); free(out); out = NULL; goto done; }
        for (size_t i = 0; i < n; i++) out[i] = half_to_float(tmp[i]);
        free(tmp);
    } else if (fread(out, 4, n, f) != n) {
        free(out);
        out = NULL;
        goto done;
    }
    *rows = (size_t)r;
    *cols = (size_t)c;
done:
    free(hdr);
    fclose(f);
    return out;
}
