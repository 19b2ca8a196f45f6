/*
 * Gather-and-pool over static tables (see static_backend.h). A batch is a
 * packed list of ids per document; each document's rows are gathered,
 * scaled by model2vec's per-token weights when the model has them, the rows
 * of one word averaged (type_ids: fastText subword groups), and pooled
 * (mean / max / sum) in double precision, then truncated and normalized. The
 * backend takes whole windows (chunks_internally) and splits the documents
 * over OpenMP threads.
 */
#include "static_backend.h"

#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

typedef struct {
    const emb_static_vectors *sv;
    int threads;
} sb_ctx;

void emb_static_pool(const emb_static_vectors *sv, const int32_t *ids, const int32_t *groups, int n, int modes,
                     float *out) {
    int dim = sv->dim, k = 0, words = 0;
    double sum_buf[512], *sum = dim <= 512 ? sum_buf : malloc((size_t)dim * sizeof *sum);
    float max_buf[512], *mx = dim <= 512 ? max_buf : malloc((size_t)dim * sizeof *mx);
    float word_buf[512], *word = dim <= 512 ? word_buf : malloc((size_t)dim * sizeof *word);
    if (!sum || !mx || !word) {   /* only for dim > 512 under memory exhaustion */
        memset(out, 0, (size_t)dim * (size_t)__builtin_popcount((unsigned)modes) * sizeof *out);
        goto done;
    }
    for (int d = 0; d < dim; d++) { sum[d] = 0; mx[d] = n ? -FLT_MAX : 0.0f; }
    for (int t = 0; t < n;) {
        /* One word: g consecutive rows averaged (g = 1 but for fastText subwords). */
        int g = groups && groups[t] > 1 ? groups[t] : 1;
        if (g > n - t) g = n - t;
        for (int d = 0; d < dim; d++) word[d] = 0.0f;
        for (int q = t; q < t + g; q++) {
            int32_t id = ids[q];
            int32_t row = sv->mapping ? sv->mapping[id] : id;
            const float *v = sv->vecs + (size_t)row * (size_t)dim;
            float w = sv->weights ? sv->weights[id] : 1.0f;
            for (int d = 0; d < dim; d++) word[d] += v[d] * w;
        }
        float inv = 1.0f / (float)g;
        for (int d = 0; d < dim; d++) {
            float x = g > 1 ? word[d] * inv : word[d];
            sum[d] += x;
            if (x > mx[d]) mx[d] = x;
        }
        words++;
        t += g;
    }
    if (modes & EMB_POOL_MAX) {
        memcpy(out, mx, (size_t)dim * sizeof *out);
        k++;
    }
    if (modes & EMB_POOL_MEAN) {
        for (int d = 0; d < dim; d++) out[(size_t)k * dim + d] = words ? (float)(sum[d] / words) : 0.0f;
        k++;
    }
    if (modes & EMB_POOL_SUM) {
        for (int d = 0; d < dim; d++) out[(size_t)k * dim + d] = (float)sum[d];
        k++;
    }
done:
    if (sum != sum_buf) free(sum);
    if (mx != max_buf) free(mx);
    if (word != word_buf) free(word);
}

static emb_status sb_encode(emb_backend *be, const emb_batch *b, const emb_job *job, float *out,
                            emb_error *err) {
    sb_ctx *c = be->ctx;
    const emb_static_vectors *sv = c->sv;
    int pooled = sv->dim * __builtin_popcount((unsigned)job->pooling_modes);
    if (job->pooling_modes & ~(EMB_POOL_MEAN | EMB_POOL_MAX | EMB_POOL_SUM))
        return emb_fail(err, EMB_ERR_INVALID_ARG, "static models pool by mean, max or sum only");
    for (int i = 0; i < b->total; i++)
        if (b->ids[i] < 0 || (size_t)b->ids[i] >= sv->n_ids)
            return emb_fail(err, EMB_ERR_INTERNAL, "token id %d outside the table's %zu ids", b->ids[i], sv->n_ids);
    int nthreads = c->threads > 0 ? c->threads : omp_get_max_threads();
#pragma omp parallel for schedule(dynamic, 64) num_threads(nthreads)
    for (int s = 0; s < b->nseq; s++) {
        float tmp[4096], *v = pooled <= 4096 ? tmp : malloc((size_t)pooled * sizeof *v);
        float *dst = out + (size_t)s * (size_t)job->out_dim;
        if (!v) { memset(dst, 0, (size_t)job->out_dim * sizeof *dst); continue; }
        int skip = b->skip ? b->skip[s] : 0;
        int from = b->cu_seqlens[s] + skip, n = b->cu_seqlens[s + 1] - from;
        emb_static_pool(sv, b->ids + from, b->type_ids ? b->type_ids + from : NULL, n > 0 ? n : 0,
                        job->pooling_modes, v);
        memcpy(dst, v, (size_t)job->out_dim * sizeof *dst);
        if (job->normalize) {
            double ss = 0;
            for (int d = 0; d < job->out_dim; d++) ss += (double)dst[d] * dst[d];
            if (ss > 0) {
                float inv = (float)(1.0 / sqrt(ss));
                for (int d = 0; d < job->out_dim; d++) dst[d] *= inv;
            }
        }
        if (v != tmp) free(v);
    }
    return EMB_OK;
}

static void sb_destroy(emb_backend *be) {
    if (!be) return;
    free(be->ctx);
    free(be);
}

emb_status emb_static_backend_create(const emb_static_vectors *sv, int threads, emb_backend **out,
                                     emb_error *err) {
    emb_backend *be = calloc(1, sizeof *be);
    sb_ctx *c = calloc(1, sizeof *c);
    if (!be || !c) {
        free(be);
        free(c);
        return emb_fail(err, EMB_ERR_NOMEM, "out of memory creating the static backend");
    }
    c->sv = sv;
    c->threads = threads;
    be->name = "cpu-static";
    be->compute_dtype = EMB_DTYPE_F32;
    be->ctx = c;
    be->chunks_internally = 1;
    be->encode = sb_encode;
    be->destroy = sb_destroy;
    *out = be;
    return EMB_OK;
}
