/*
 * Segmented pooling over packed sequences and the output tail. Pass one,
 * pool_kernel: one CTA per (sequence, chunk of 32 column vectors); its eight
 * warps take every eighth token of the sequence (16-byte loads, 8 halves per
 * lane, when the width allows), keep column sums, position-weighted sums and
 * maxima in registers, and add the eight warps' partials in shared memory in
 * a fixed order, so a long sequence is read by 8 warps x dim / 256 CTAs at
 * once and results are bit-identical run to run. It computes every
 * requested mode (cls, max, mean, mean_sqrt_len, weightedmean, lasttoken;
 * sentence-transformers order), honours include_prompt (skip[s] leading
 * tokens excluded) and writes only the first out_dim columns (Matryoshka
 * truncation); cls and lasttoken read exactly one row, and a CTA whose modes
 * are only those never walks the tokens. Pass two, finalize_kernel (one CTA
 * per row, in place), L2-normalizes and optionally quantizes to int8 or
 * packed bits; it is also the tail for vectors that went through Dense
 * modules after pooling. Only finished vectors leave the GPU.
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

/* Mode bits: the values of EMB_POOL_* in include/embedc.h. */
enum { POOL_CLS = 1, POOL_MAX = 2, POOL_MEAN = 4, POOL_MEAN_SQRT = 8, POOL_WMEAN = 16, POOL_LAST = 32 };

#define POOL_WARPS 8
#define POOL_LANES 32   /* column vectors per CTA: one per lane */

/* Grid (nseq, column chunks of POOL_LANES * V). Warp w sums tokens k + w,
 * k + w + POOL_WARPS, ... in order; the partials are then added w = 0..7, so
 * an element's result depends on neither V nor the scheduling. */
template <typename T, int V>
__global__ void pool_kernel(float *__restrict__ out, const T *__restrict__ hidden,
                            const int32_t *__restrict__ cu_seqlens,
                            const int32_t *__restrict__ skip, int dim, int modes, int out_dim) {
    EMB_SHARED(float, part, POOL_WARPS * 3 * POOL_LANES * 8);
    const int s = blockIdx.x;
    const int start = cu_seqlens[s], len = cu_seqlens[s + 1] - start;
    int k = skip ? skip[s] : 0;
    k = k < 0 ? 0 : (k > len ? len : k);
    const T *h = hidden + (size_t)start * dim;
    float *o = out + (size_t)s * out_dim;
    const int kept = len - k;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int chunk = POOL_LANES * V, c_base = blockIdx.y * chunk;
    const bool walk = modes & (POOL_MAX | POOL_MEAN | POOL_MEAN_SQRT |
                               POOL_WMEAN);

    if (walk) {
        float sum[V], ws[V], mx[V];
#pragma unroll
        for (int j = 0; j < V; j++) sum[j] = 0.0f, ws[j] = 0.0f, mx[j] = -INFINITY;
        const int c = c_base + V * lane;
        if (c < dim) {
            /* Unrolled so that several rows' loads are in flight per lane; the
             * accumulation order stays t ascending. */
#pragma unroll 4
            for (int t = k + warp; t < len; t += POOL_WARPS) {
                float a[V];
                emb_ldv<T, V>(h + (size_t)t * dim + c, a);
                const float w = (float)(t + 1);
#pragma unroll
                for (int j = 0; j < V; j++) {
                    sum[j] += a[j];
                    ws[j] += w * a[j];
                    mx[j] = fmaxf(mx[j], a[j]);
                }
            }
        }
        float *p = part + (size_t)warp * 3 * chunk + V * lane;
#pragma unroll
        for (int j = 0; j < V; j++) p[j] = sum[j], p[chunk + j] = ws[j], p[2 * chunk + j] = mx[j];
    }
    __syncthreads();

    /* Same denominators as the reference (cpu_ops.c): clamped at 1e-9. */
    const float inv_mean = (float)(1.0 / fmax((double)kept, 1e-9));
    const float inv_sqrt = (float)(1.0 / sqrt(fmax((double)kept, 1e-9)));
    const double wsum = 0.5 * ((double)len * (len + 1) - (double)k * (k + 1));
    const float inv_w = (float)(1.0 / fmax(wsum, 1e-9));
    const int cls_t = k < len ? k : 0;
    for (int e = threadIdx.x; e < chunk; e += blockDim.x) {
        const int c = c_base + e;
        if (c >= dim) break;
        float sum = 0.0f, ws = 0.0f, mx = -INFINITY;
        if (walk)
            for (int w = 0; w < POOL_WARPS; w++) {
                const float *p = part + (size_t)w * 3 * chunk + e;
                sum += p[0];
                ws += p[chunk];
                mx = fmaxf(mx, p[2 * chunk]);
            }
        int base = 0;
        /* Writes one mode's column, dropping those past out_dim. */
        auto put = [&](float v) {
            if (base + c < out_dim) o[base + c] = v;
            base += dim;
        };
        if (modes & POOL_CLS) put(len > 0 ? emb_ld(h + (size_t)cls_t * dim + c) : 0.0f);
        if (modes & POOL_MAX) put(mx);
        if (modes & POOL_MEAN) put(sum * inv_mean);
        if (modes & POOL_MEAN_SQRT) put(sum * inv_sqrt);
        if (modes & POOL_WMEAN) put(ws * inv_w);
        if (modes & POOL_LAST) put(kept > 0 ? emb_ld(h + (size_t)(len - 1) * dim + c) : 0.0f);
    }
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

/* The tail of both launchers: normalize / quantize rows of out in place. */
static cudaError_t finish_rows(float *out, int rows, int out_dim, int normalize, int quant,
                               void *qout, float *qscale, cudaStream_t stream) {
    if (!normalize && quant == EMB_KQUANT_NONE) return cudaSuccess;
    EMB_LAUNCH(finalize_kernel, dim3(rows), dim3(POOL_THREADS), 0, stream)(
        out, out, out_dim, out_dim, normalize, quant, qout, qscale);
    return emb_launch_status();
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
        enum { V_ = EMB_VEC16(T) };
        auto pool_v = pool_kernel<T, V_>;
        auto pool_pairs = pool_kernel<T, 2>;
        const bool vec16 = emb_vec_ok(dim, V_, sizeof(T), hidden);
        const int V = vec16 ? (int)V_ : 2, chunk = POOL_LANES * V;
        const dim3 grid(nseq, (dim + chunk - 1) / chunk);
        if (vec16)
            EMB_LAUNCH(pool_v, grid, dim3(POOL_WARPS * 32), 0, stream)(
                out, (const T *)hidden, cu_seqlens, skip, dim, modes, out_dim);
        else
            EMB_LAUNCH(pool_pairs, grid, dim3(POOL_WARPS * 32), 0, stream)(
                out, (const T *)hidden, cu_seqlens, skip, dim, modes, out_dim));
    const cudaError_t e = emb_launch_status();
    if (e != cudaSuccess) return e;
    return finish_rows(out, nseq, out_dim, normalize, quant, qout, qscale, stream);
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
