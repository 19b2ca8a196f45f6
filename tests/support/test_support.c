/* Helpers shared by the Criterion suites (see test_support.h). */
#include "test_support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

char *ts_src_path(const char *rel) {
    size_t n = strlen(EMBEDC_SOURCE_DIR) + strlen(rel) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", EMBEDC_SOURCE_DIR, rel);
    return p;
}

const char *ts_src(const char *rel) {
    static char ring[8][4096];
    static int k;
    char *p = ts_src_path(rel);
    k = (k + 1) % 8;
    snprintf(ring[k], sizeof ring[k], "%s", p ? p : "");
    free(p);
    return ring[k];
}

const char *ts_default_model(void) {
    static char path[4096];
    const char *env = getenv("EMBEDC_TEST_MODEL");
    if (env && *env) snprintf(path, sizeof path, "%s", env);
    else snprintf(path, sizeof path, "%s/models/all-MiniLM-L6-v2", EMBEDC_SOURCE_DIR);
    char cfg[4200];
    snprintf(cfg, sizeof cfg, "%s/config.json", path);
    struct stat st;
    return stat(cfg, &st) == 0 ? path : NULL;
}

char *ts_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = 0;
        if (len) *len = (size_t)n;
    }
    return buf;
}

int ts_write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, len, f);
    return (fclose(f) == 0 && w == len) ? 0 : -1;
}

char *ts_tmpdir(void) {
    char tmpl[] = "/tmp/embedc-test-XXXXXX";
    char *d = mkdtemp(tmpl);
    return d ? strdup(d) : NULL;
}

char *ts_join(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", a, b);
    return p;
}
