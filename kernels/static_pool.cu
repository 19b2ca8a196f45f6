/*
 * Gather-and-pool for static embedding tables (word vectors, model2vec,
 * StaticEmbedding) over packed token ids: one CTA per sequence, each thread a
 * column strip; a token's row is table[mapping ? mapping[id] : id] scaled by
 * weights[id] (model2vec's vocabulary quantization and per-token weights);
 * groups[t] > 1 marks a word made of that many consecutive rows (fastText
 * subwords), averaged into the word's vector before pooling words.
 * Pools max, mean and sum (EMB_POOL_* bit order), keeps the first out_dim
 * columns and L2-normalizes them, so only finished vectors leave the GPU.
 * CPU twin: emb_static_pool (host/cpu/static_backend.c) + the backend's
 * normalization (divide by the norm when it is non-zero).
 */
#include "common.cuh"

#define STATIC_POOL_THREADS 128
#define SP_MAX 2
#define SP_MEAN 4
#define SP_SUM 64

__global__ void static_pool_kernel(float *__restrict__ out, const float *__restrict__ table, int dim,
                                   const int32_t *__restrict__ ids, const int32_t *__restrict__ groups,
                                   const int32_t *__restrict__ cu_seqlens,
                                   const int32_t *__restrict__ mapping, const float *__restrict__ weights,
                                   int modes, int out_dim, int normalize) {
    EMB_SHARED(float, red, 33);
    const int s = blockIdx.x;
    const int start = cu_seqlens[s], len = cu_seqlens[s + 1] - start;
    const int32_t *tok = ids + start;
    const int32_t *grp = groups ? groups + start : NULL;
    float *o = out + (size_t)s * out_dim;
    for (int c = threadIdx.x; c < dim; c += blockDim.x) {
        float sum = 0.0f, mx = len > 0 ? -INFINITY : 0.0f;
        int words = 0;
        for (int t = 0; t < len;) {
            /* One word: g consecutive rows averaged (fastText subwords), else 1. */
            int g = grp && grp[t] > 1 ? grp[t] : 1;
            if (g > len - t) g = len - t;
            float x = 0.0f;
            for (int q = t; q < t + g; q++) {
                const int32_t id = tok[q];
                const int32_t row = mapping ? mapping[id] : id;
                x += table[(size_t)row * dim + c] * (weights ? weights[id] : 1.0f);
            }
            if (g > 1) x *= 1.0f / (float)g;
            sum += x;
            mx = fmaxf(mx, x);
            words++;
            t += g;
        }
        const float inv_len = words > 0 ? 1.0f / (float)words : 0.0f;
    int base = 0;
        if (modes & SP_MAX) { if (base + c < out_dim) o[base + c] = mx; base += dim; }
        if (modes & SP_MEAN) { if (base + c < out_dim) o[base + c] = sum * inv_len; base += dim; }
        if (modes & SP_SUM) { if (base + c < out_dim) o[base + c] = sum; }
    }
    __syncthreads();   /* the norm reads columns other threads wrote */
    if (!normalize) return;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < out_dim; i += blockDim.x) ss += o[i] * o[i];
    ss = emb_block_sum(ss, red);
    if (ss > 0.0f) {
        const float inv = 1.0f / sqrtf(ss);
        for (int i = threadIdx.x; i < out_dim; i += blockDim.x) o[i] *= inv;
    }
}

extern "C" cudaError_t emb_launch_static_pool(float *out, const float *table, int dim, const int32_t *ids,
                                              const int32_t *groups, const int32_t *cu_seqlens, int nseq,
                                              const int32_t *mapping,
                                              const float *weights, int modes, int out_dim, int normalize,
                                              cudaStream_t stream) {
    int width = 0;
    for (int m = modes & (SP_MAX | SP_MEAN | SP_SUM); m; m &= m - 1) width += dim;
    if (nseq < 0 || dim < 1 || (modes & ~(SP_MAX | SP_MEAN | SP_SUM)) || width == 0 || out_dim < 1 ||
        out_dim > width || !table || !cu_seqlens || (!ids && nseq > 0))
        return cudaErrorInvalidValue;
    if (nseq == 0) return cudaSuccess;
    EMB_LAUNCH(static_pool_kernel, dim3(nseq), dim3(STATIC_POOL_THREADS), 0, stream)(
        out, table, dim, ids, groups, cu_seqlens, mapping, weights, modes, out_dim, normalize);
    return emb_launch_status();
}
