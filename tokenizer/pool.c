/* pool.c - a fixed set of encoder threads sharing one immutable tokenizer.
 * A batch is split dynamically: every worker (and the caller) takes the next
 * text index from an atomic counter, so long and short texts balance out.
 * Workers sleep on a condition variable between batches. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tokenizer.h"

struct tok_pool {
    const tok_tokenizer *t;
    int n_threads;            /* workers besides the caller */
    pthread_t *threads;
    pthread_mutex_t lock, call_lock;
    pthread_cond_t work, done;
    unsigned long generation;
    int busy, stop;
    /* the current batch */
    const char *const *texts; const size_t *lens; size_t n; int add_special; size_t max_length;
    tok_encoding *encs;
    atomic_size_t next;
    atomic_size_t first_error;   /* index + 1 of the lowest failing text, 0 if none */
    tok_error error;
};

static void run_batch(tok_pool *p)
{
    tok_error err;
    for (;;) {
        size_t i = atomic_fetch_add(&p->next, 1);
        if (i >= p->n)
            break;
        if (tok_encode(p->t, p->texts[i], p->lens[i], p->add_special, p->max_length, &p->encs[i], &err) == 0)
            continue;
        p->encs[i].len = 0;
        pthread_mutex_lock(&p->lock);
        size_t cur = atomic_load(&p->first_error);
        if (cur == 0 || i + 1 < cur) {
            atomic_store(&p->first_error, i + 1);
            snprintf(p->error.message, sizeof p->error.message, "text %zu: %.480s", i, err.message);
        }
        pthread_mutex_unlock(&p->lock);
    }
}

static void *worker(void *arg)
{
    tok_pool *p = arg;
    unsigned long seen = 0;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->stop && p->generation == seen)
            pthread_cond_wait(&p->work, &p->lock);
        if (p->stop)
            break;
        seen = p->generation;
        pthread_mutex_unlock(&p->lock);
        run_batch(p);
        pthread_mutex_lock(&p->lock);
        if (--p->busy == 0)
            pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

int tok_pool_create(const tok_tokenizer *t, int n_threads, tok_pool **out, tok_error *err)
{
    if (!t || !out) {
        if (err)
            snprintf(err->message, sizeof err->message, "tok_pool_create: null argument");
        return -1;
    }
    if (n_threads <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = c > 0 && c < 1024 ? (int)c : 1;
    }
    tok_pool *p = calloc(1, sizeof *p);
    if (!p || !(p->threads = calloc((size_t)n_threads, sizeof *p->threads))) {
        free(p);
        if (err)
            snprintf(err->message, sizeof err->message, "tok_pool_create: out of memory");
        return -1;
    }
    p->t = t;
    pthread_mutex_init(&p->lock, NULL);
    pthread_mutex_init(&p->call_lock, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->done, NULL);
    /* the caller is one of the n threads */
    for (int k = 0; k < n_threads - 1; k++) {
        if (pthread_create(&p->threads[k], NULL, worker, p))
            break;
        p->n_threads++;
    }
    *out = p;
    return 0;
}

int tok_pool_threads(const tok_pool *p) { return p ? p->n_threads + 1 : 0; }

int tok_pool_encode(tok_pool *p, const char *const *texts, const size_t *lens, size_t n, int add_special,
                    size_t max_length, tok_encoding *encs, tok_error *err)
{
    if (!p || (n && (!texts || !lens || !encs))) {
        if (err)
            snprintf(err->message, sizeof err->message, "tok_pool_encode: null argument");
        return -1;
    }
    pthread_mutex_lock(&p->call_lock);
    pthread_mutex_lock(&p->lock);
    p->texts = texts;
    p->lens = lens;
    p->n = n;
    p->add_special = add_special;
    p->max_length = max_length;
    p->encs = encs;
    atomic_store(&p->next, 0);
    atomic_store(&p->first_error, 0);
    p->busy = p->n_threads;
    p->generation++;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->lock);
    run_batch(p);
    pthread_mutex_lock(&p->lock);
    while (p->busy)
        pthread_cond_wait(&p->done, &p->lock);
    int rc = atomic_load(&p->first_error) ? -1 : 0;
    if (rc && err)
        *err = p->error;
    pthread_mutex_unlock(&p->lock);
    pthread_mutex_unlock(&p->call_lock);
    return rc;
}

void tok_pool_free(tok_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->stop = 1;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->lock);
    for (int k = 0; k < p->n_threads; k++)
        pthread_join(p->threads[k], NULL);
    pthread_mutex_destroy(&p->lock);
    pthread_mutex_destroy(&p->call_lock);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->done);
    free(p->threads);
    free(p);
}
