/* Helpers shared by the Criterion suites (see test_support.h). */
#include "test_support.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The source tree: the one the suite was built from, or $EMBEDC_SOURCE_DIR
 * (a suite built on one machine and run on another, as tools/gpu-check runs
 * a packed build on a GPU machine). */
static const char *ts_source_dir(void) {
    const char *env = getenv("EMBEDC_SOURCE_DIR");
    return env && *env ? env : EMBEDC_SOURCE_DIR;
}

char *ts_src_path(const char *rel) {
    const char *src = ts_source_dir();
    size_t n = strlen(src) + strlen(rel) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", src, rel);
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
    else snprintf(path, sizeof path, "%s/models/all-MiniLM-L6-v2", ts_source_dir());
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

char **ts_corpus_texts(const size_t *idx, size_t n) {
    char *path = ts_src_path("tests/data/corpus/texts.jsonl");
    size_t len;
    char *data = ts_read_file(path, &len);
    free(path);
    char **texts = data ? calloc(n ? n : 1, sizeof *texts) : NULL;
    size_t line_no = 0, next = 0;
    for (char *line = data, *nl; texts && line < data + len && next < n; line = nl + 1, line_no++) {
        nl = memchr(line, '\n', (size_t)(data + len - line));
        if (!nl) nl = data + len;
        if (idx[next] != line_no) continue;
        cJSON *o = cJSON_ParseWithLength(line, (size_t)(nl - line));
        const cJSON *t = cJSON_GetObjectItem(o, "text");
        texts[next++] = strdup(cJSON_IsString(t) ? t->valuestring : "");
        cJSON_Delete(o);
    }
    free(data);
    if (texts && next < n) {
        ts_free_texts(texts, next);
        texts = NULL;
    }
    return texts;
}

void ts_free_texts(char **texts, size_t n) {
    for (size_t i = 0; texts && i < n; i++) free(texts[i]);
    free(texts);
}

double ts_worst_cos(const float *a, const float *b, size_t rows, size_t cols, size_t *at) {
    double worst = 1;
    size_t worst_i = 0;
    for (size_t i = 0; i < rows; i++) {
        double dot = 0, na = 0, nb = 0;
        for (size_t j = 0; j < cols; j++) {
            double x = a[i * cols + j], y = b[i * cols + j];
            dot += x * y, na += x * x, nb += y * y;
        }
        double c = dot / sqrt(na * nb);
        if (!(c >= worst)) worst = c, worst_i = i;
    }
    if (at) *at = worst_i;
    return worst;
}

char *ts_model_dir(const char *env, const char *rel) {
    const char *e = env ? getenv(env) : NULL;
    char *dir = e && *e ? strdup(e) : ts_src_path(rel);
    char *st = ts_join(dir, "model.safetensors");
    struct stat sb;
    const int present = stat(st, &sb) == 0;
    free(st);
    if (!present) {
        free(dir);
        return NULL;
    }
    return dir;
}

void *ts_src_json(const char *rel) {
    char *path = ts_src_path(rel);
    char *s = ts_read_file(path, NULL);
    free(path);
    cJSON *j = s ? cJSON_Parse(s) : NULL;
    free(s);
    return j;
}
