/* bench_tokenizer.c - tokens/s of the C tokenizer on the test corpus, one
 * thread and N threads sharing one immutable tokenizer (each thread with its
 * own tok_encoding), for each tokenizer family given.  Usage:
 *   bench_tokenizer CORPUS.jsonl THREADS FAMILY_DIR...
 * Prints one line per family: name, tokens, 1-thread tok/s, N-thread tok/s. */
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tokenizer.h"

static char **texts;
static size_t *lens, n_texts;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int load_corpus(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char *line = NULL;
    size_t cap = 0, tcap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        cJSON *o = cJSON_ParseWithLength(line, (size_t)n);
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "text");
        if (cJSON_IsString(t)) {
            if (n_texts == tcap) {
                tcap = tcap ? 2 * tcap : 1024;
                texts = realloc(texts, tcap * sizeof *texts);
                lens = realloc(lens, tcap * sizeof *lens);
            }
            lens[n_texts] = strlen(t->valuestring);
            texts[n_texts++] = strdup(t->valuestring);
        }
        cJSON_Delete(o);
    }
    free(line);
    fclose(f);
    return 0;
}

typedef struct { const tok_tokenizer *t; size_t first, step, rounds, tokens; } job;

static void *work(void *arg)
{
    job *j = arg;
    tok_encoding e;
    tok_error err;
    tok_encoding_init(&e);
    for (size_t r = 0; r < j->rounds; r++)
        for (size_t i = j->first; i < n_texts; i += j->step) {
            if (tok_encode(j->t, texts[i], lens[i], 1, TOK_NO_TRUNCATION, &e, &err) == 0)
                j->tokens += e.len;
        }
    tok_encoding_free(&e);
    return NULL;
}

static double run(const tok_tokenizer *t, int threads, size_t rounds, size_t *tokens)
{
    pthread_t th[256];
    job jobs[256];
    double t0 = now();
    for (int k = 0; k < threads; k++) {
        jobs[k] = (job){t, (size_t)k, (size_t)threads, rounds, 0};
        pthread_create(&th[k], NULL, work, &jobs[k]);
    }
    *tokens = 0;
    for (int k = 0; k < threads; k++) {
        pthread_join(th[k], NULL);
        *tokens += jobs[k].tokens;
    }
    return now() - t0;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s CORPUS.jsonl THREADS FAMILY_DIR...\n", argv[0]);
        return 2;
    }
    if (load_corpus(argv[1])) {
        fprintf(stderr, "cannot read %s\n", argv[1]);
        return 1;
    }
    int threads = atoi(argv[2]);
    if (threads < 1 || threads > 256)
        threads = 1;
    for (int a = 3; a < argc; a++) {
        char path[1024];
        tok_tokenizer *t;
        tok_error err;
        snprintf(path, sizeof path, "%s/tokenizer.json", argv[a]);
        if (tok_load_file(path, &t, &err)) {
            fprintf(stderr, "%s\n", err.message);
            return 1;
        }
        size_t tokens, rounds = 3;
        run(t, 1, 1, &tokens);   /* warm-up */
        double s1 = run(t, 1, rounds, &tokens);
        double r1 = (double)tokens / s1;
        double sn = run(t, threads, rounds, &tokens);
        double rn = (double)tokens / sn;
        char name[256];
        snprintf(name, sizeof name, "%s", argv[a]);
        size_t nl = strlen(name);
        while (nl > 1 && name[nl - 1] == '/')
            name[--nl] = 0;
        const char *base = strrchr(name, '/') ? strrchr(name, '/') + 1 : name;
        printf("%s %zu %.0f %.0f\n", base, tokens / rounds, r1, rn);
        fflush(stdout);
        tok_free(t);
    }
    return 0;
}
