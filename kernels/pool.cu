/*
 * Segmented pooling over packed sequences and the output tail, in one kernel:
 * one CTA per sequence computes every requested mode (cls, max, mean,
 * mean_sqrt_len, weightedmean, lasttoken; sentence-transformers order),
 * honours include_prompt (skip[s] leading tokens excluded), keeps only the
 * first out_dim columns (Matryoshka truncation), L2-normalizes them and
 * optionally quantizes to int8 or packed bits, so hidden states are read once
 * and only finished vectors leave the GPU. finalize_kernel is the same tail
 * for vectors that went through Dense modules after pooling.
 * CPU twins: cpu_pool, cpu_l2_normalize (semantics documented in cpu_ops.c).
 */
#include "common.cuh"

#define POOL_THREADS 256

__device__ __forceinline__ float block_max(float v, float *red) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int nwarps = (blockDim.x + 31) >> 5;
    v = emb_warp_max(v);
    if (lane == 0) red[warp] = v;
    __syncthreads();
    if (warp == 0) {
        float w = lane < nwarps ? red[lane] : -INFINITY;
        w = emb_warp_max(w);
        if (lane == 0) red[32] = w;
    }
    __syncthreads();
    float r = red[32];
    __syncthreads();
    return r;
}

/* The shared tail: o[0, n) is fully written by the block (after the caller's
 * __syncthreads). Normalizes like F.normalize (x / max(||x||, 1e-12)) and
 * quantizes. Every thread of the block calls it. */
__device__ void finish_row(float *o, int n, int normalize, int quant, void *qout, float *qscale,
                           size_t row, float *red) {
    if (normalize) {
        float ss = 0.0f;
        for (int i = threadIdx.x; i < n; i += blockDim.x) ss += o[i] * o[i];
        const float norm = sqrtf(emb_block_sum(ss, red));
        const float inv = 1.0f / fmaxf(norm, 1e-12f);
        /* Each thread rescales the elements it summed: no other thread reads
         * them before the barrier below. */
        for (int i = threadIdx.x; i < n; i += blockDim.x) o[i] *= inv;
    }
    if (quant == EMB_KQUANT_NONE) return;
    __syncthreads();
    if (quant == EMB_KQUANT_INT8) {
        float m = 0.0f;
        for (int i = threadIdx.x; i < n; i += blockDim.x) m = fmaxf(m, fabsf(o[i]));
        m = block_max(m, red);
        const float scale = m > 0.0f ? m / 127.0f : 1.0f;
        int8_t *q = (int8_t *)qout + row * n;
        for (int i = threadIdx.x; i < n; i += blockDim.x) {
            float v = rintf(o[i] / scale);
            v = fminf(fmaxf(v, -127.0f), 127.0f);
            q[i] = (int8_t)v;
        }
        if (threadIdx.x == 0 && qscale) qscale[row] = scale;
    } else if (quant == EMB_KQUANT_BINARY) {
        const int nbytes = (n + 7) / 8;
        uint8_t *q = (uint8_t *)qout + row * nbytes;
        for (int j = threadIdx.x; j < nbytes; j += blockDim.x) {
            unsigned byte = 0;
            for (int b = 0; b < 8; b++) {
                int i = 8 * j + b;
                if (i < n && o[i] > 0.0f) byte |= 0x80u >> b;
            }
            q[j] = (uint8_t)byte;
        }
    }
}

template <typename T>
__global__ void pool_kernel(float *__restrict__ out, const T *__restrict__ hidden,
                            const int32_t *__restrict__ cu_seqlens,
                            const int32_t *__restrict__ skip, int dim, int modes, int out_dim,
                            int normalize, int quant, void *qout, float *qscale) {
    EMB_SHARED(float, red, 33);
    const int s = blockIdx.x;
    const int start = cu_seqlens[s], len = cu_seqlens[s + 1] - start;
    int k = skip ? skip[s] : 0;
    k = k < 0 ? 0 : (k > len ? len : k);
    const T *h = hidden + (size_t)start * dim;
    float *o = out + (size_t)s * out_dim;
    const int kept = len - k;
    /* Same denominators as the reference (cpu_ops.c): clamped at 1e-9. */
    const float inv_mean = (float)(1.0 / fmax((double)kept, 1e-9));
    const float inv_sqrt = (float)(1.0 / sqrt(fmax((double)kept, 1e-9)));
    const double wsum = 0.5 * ((double)len * (len + 1) - (double)k * (k + 1));
    const float inv_w = (float)(1.0 / fmax(wsum, 1e-9));
    const int cls_t = k < len ? k : 0;

    for (int c = 2 * threadIdx.x; c < dim; c += 2 * blockDim.x) {
        float sum0 = 0.0f, sum1 = 0.0f, ws0 = 0.0f, ws1 = 0.0f;
        float mx0 = -INFINITY, mx1 = -INFINITY;
        for (int t = k; t < len; t++) {
            float a, b;
            emb_ld2(h + (size_t)t * dim + c, a, b);
            sum0 += a;
            sum1 += b;
            const float w = (float)(t + 1);
            ws0 += w * a;
            ws1 += w * b;
            mx0 = fmaxf(mx0, a);
            mx1 = fmaxf(mx1, b);
        }
        int base = 0;
        /* Writes one mode's pair of columns, dropping those past out_dim. */
        auto put = [&](float a, float b) {
            if (base + c < out_dim) o[base + c] = a;
            if (base + c + 1 < out_dim) o[base + c + 1] = b;
            base += dim;
        };
        if (modes & 1) { /* cls */
            float a = 0.0f, b = 0.0f;
            if (len > 0) emb_ld2(h + (size_t)cls_t * dim + c, a, b);
            put(a, b);
        }
        if (modes & 2) put(mx0, mx1);                                   /* max */
        if (modes & 4) put(sum0 * inv_mean, sum1 * inv_mean);           /* mean */
        if (modes & 8) put(sum0 * inv_sqrt, sum1 * inv_sqrt);           /* mean_sqrt_len */
        if (modes & 16) put(ws0 * inv_w, ws1 * inv_w);                  /* weightedmean */
        if (modes & 32) {                                               /* lasttoken */
            float a = 0.0f, b = 0.0f;
            if (kept > 0) emb_ld2(h + (size_t)(len - 1) * dim + c, a, b);
            put(a, b);
        }
    }
    __syncthreads();  /* the tail reads columns other threads wrote */
    finish_row(o, out_dim, normalize, quant, qout, qscale, s, red);
}

__global__ void finalize_kernel(float *out, const float *x, int in_dim, int out_dim,
                                int normalize, int quant, void *qout, float *qscale) {
    EMB_SHARED(float, red, 33);
    const size_t r = blockIdx.x;
    float *o = out + r * out_dim;
    const float *xr = x + r * in_dim;
    /* With out == x (out_dim == in_dim) this copies each element onto itself. */
    for (int i = threadIdx.x; i < out_dim; i += blockDim.x) o[i] = xr[i];
    __syncthreads();
    finish_row(o, out_dim, normalize, quant, qout, qscale, r, red);
}

static int popcount_modes(int modes) {
    int n = 0;
    for (int m = modes & 63; m; m &= m - 1) n++;
    return n;
}

extern "C" cudaError_t emb_launch_pool(float *out, const void *hidden, emb_kdtype dt,
                                       const int32_t *cu_seqlens, const int32_t *skip, int nseq,
                                       int dim, int modes, int out_dim, int normalize, int quant,
                                       void *qout, float *qscale, cudaStream_t stream) {
    const int width = dim * popcount_modes(modes);
    if (nseq < 0 || dim < 2 || dim % 2 || (modes & ~63) || width == 0 || out_dim < 1 ||
        out_dim > width || quant < EMB_KQUANT_NONE || quant > EMB_KQUANT_BINARY ||
        (quant != EMB_KQUANT_NONE && !qout))
        return cudaErrorInvalidValue;
    if (nseq == 0) return cudaSuccess;
    EMB_DISPATCH_DT(dt, T,
        EMB_LAUNCH(pool_kernel<T>, dim3(nseq), dim3(POOL_THREADS), 0, stream)(
            out, (const T *)hidden, cu_seqlens, skip, dim, modes, out_dim, normalize, quant,
            qout, qscale));
    return emb_launch_status();
}

extern "C" cudaError_t emb_launch_finalize(float *out, const float *x, int rows, int in_dim,
                                           int out_dim, int normalize, int quant, void *qout,
                                           float *qscale, cudaStream_t stream) {
    if (rows < 0 || out_dim < 1 || out_dim > in_dim || (out == x && out_dim != in_dim) ||
        quant < EMB_KQUANT_NONE || quant > EMB_KQUANT_BINARY ||
        (quant != EMB_KQUANT_NONE && !qout))
        return cudaErrorInvalidValue;
    if (rows == 0) return cudaSuccess;
    EMB_LAUNCH(finalize_kernel, dim3(rows), dim3(POOL_THREADS), 0, stream)(
        out, x, in_dim, out_dim, normalize, quant, qout, qscale);
    return emb_launch_status();
}
