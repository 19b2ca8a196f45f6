/* corpus.c - loads the test corpus and reference hashes and runs the parity
 * comparison shared by the Criterion suite and the tokenizer-parity tool. */
#include "corpus.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
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
        *len = (size_t)n;
    }
    return buf;
}

int tc_corpus_load(const char *path, tc_corpus *c)
{
    size_t len;
    char *buf = slurp(path, &len);
    memset(c, 0, sizeof *c);
    if (!buf)
        return -1;
    size_t cap = 0;
    for (char *line = buf; line < buf + len;) {
        char *nl = memchr(line, '\n', (size_t)(buf + len - line));
        size_t ll = nl ? (size_t)(nl - line) : (size_t)(buf + len - line);
        cJSON *o = cJSON_ParseWithLength(line, ll);
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "text");
        if (!cJSON_IsString(t)) {
            cJSON_Delete(o);
            free(buf);
            return -1;
        }
        if (c->n == cap) {
            cap = cap ? cap * 2 : 1024;
            c->text = realloc(c->text, cap * sizeof *c->text);
            c->len = realloc(c->len, cap * sizeof *c->len);
        }
        c->len[c->n] = strlen(t->valuestring);
        c->text[c->n++] = strdup(t->valuestring);
        cJSON_Delete(o);
        line += ll + 1;
    }
    free(buf);
    return 0;
}

void tc_corpus_free(tc_corpus *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->text[i]);
    free(c->text);
    free(c->len);
    memset(c, 0, sizeof *c);
}

tc_ref *tc_ref_load(const char *path, size_t expect)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    tc_ref *r = calloc(expect ? expect : 1, sizeof *r);
    size_t i = 0;
    while (r && i < expect &&
           fscanf(f, "%zu %x", &r[i].n_full, &r[i].h) == 2)
        i++;
    fclose(f);
    if (i != expect) {
        free(r);
        return NULL;
    }
    return r;
}

uint32_t tc_fnv32(uint32_t h, const int32_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t v = (uint32_t)ids[i];
        for (int b = 0; b < 4; b++) {
            h ^= (v >> (8 * b)) & 0xFF;
            h *= 0x01000193u;
        }
    }
    return h;
}

long tc_check_family(const char *dir, const tc_corpus *c, FILE *log, int max_report)
{
    char path[1024];
    tok_tokenizer *t;
    tok_error err;
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    if (tok_load_file(path, &t, &err)) {
        fprintf(log, "%s\n", err.message);
        return -1;
    }
    snprintf(path, sizeof path, "%s/reference.txt", dir);
    tc_ref *ref = tc_ref_load(path, c->n);
    if (!ref) {
        fprintf(log, "%s: missing or short reference\n", path);
        tok_free(t);
        return -1;
    }
    size_t tmax = tok_truncation_max_length(t) ? tok_truncation_max_length(t) : 128;
    const struct { int special; size_t max; } mode[4] = {
        {1, TOK_NO_TRUNCATION}, {0, TOK_NO_TRUNCATION}, {1, tmax}, {1, 20}};
    tok_encoding e;
    tok_encoding_init(&e);
    long bad = 0;
    for (size_t i = 0; i < c->n; i++) {
        uint32_t h = 0x811c9dc5u;
        size_t n_full = 0;
        static const int32_t end_mark = -1;
        for (int m = 0; m < 4; m++) {
            if (tok_encode(t, c->text[i], c->len[i], mode[m].special, mode[m].max, &e, &err)) {
                if (bad < max_report)
                    fprintf(log, "%s text %zu mode %d: error %s\n", dir, i, m, err.message);
                h = ~ref[i].h;
                break;
            }
            if (m == 0)
                n_full = e.len;
            h = tc_fnv32(tc_fnv32(h, e.ids, e.len), &end_mark, 1);
        }
        if (h != ref[i].h || n_full != ref[i].n_full) {
            if (bad < max_report)
                fprintf(log, "%s text %zu: %zu tokens (reference %zu); ids differ "
                        "(tools/make-tokenizer-golden show FAMILY %zu)\n", dir, i, n_full, ref[i].n_full, i);
            bad++;
        }
    }
    tok_encoding_free(&e);
    free(ref);
    tok_free(t);
    return bad;
}
