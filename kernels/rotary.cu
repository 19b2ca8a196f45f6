/*
 * Rotary position embedding, in place on the Q and K heads of the fused QKV
 * activations (layout in kernels.h), before attention. One CTA per token:
 * the token's position within its sequence is found once (binary search on
 * cu_seqlens), each thread owns (head, d) pairs of the rotate_half pairing
 * (d, d + rotary_dim/2) and computes its angle in fp32 exactly as
 * transformers does (inv_freq = 1 / theta^((float)(2d)/rotary_dim), angle =
 * (float)pos * inv_freq). V heads and dims past rotary_dim are not touched.
 * CPU twin: cpu_rotary.
 */
#include "common.cuh"

template <typename T>
__global__ void rotary_kernel(T *__restrict__ qkv, const int32_t *__restrict__ cu_seqlens,
                              int nseq, int nrot, int ld, int head_dim, int half,
                              float rotary_dim, float theta) {
    const int t = blockIdx.x;
    const float pos = (float)(t - cu_seqlens[emb_seq_of(cu_seqlens, nseq, t)]);
    T *row = qkv + (size_t)t * ld;
    for (int i = threadIdx.x; i < nrot * half; i += blockDim.x) {
        const int h = i / half, d = i % half;
        const float inv_freq = 1.0f / powf(theta, (float)(2 * d) / rotary_dim);
        /* The angle is rounded to fp32 exactly as torch does; its reduction
         * to [-pi, pi] runs in double (exact enough for any position), so
         * the fast __sinf/__cosf apply and sincosf's large-argument path
         * (which needs local memory) is never compiled in. */
        const double ang = (double)(pos * inv_freq);
        const float red = (float)(ang - rint(ang * 0.15915494309189535) * 6.283185307179586);
        const float sn = __sinf(red), cs = __cosf(red);
        T *x = row + (size_t)h * head_dim;
        const float x1 = emb_ld(x + d), x2 = emb_ld(x + d + half);
        /* q * cos + rotate_half(q) * sin, each product rounded as in torch. */
        const float a1 = __fmul_rn(x1, cs), b1 = __fmul_rn(-x2, sn);
        const float a2 = __fmul_rn(x2, cs), b2 = __fmul_rn(x1, sn);
        emb_st(x + d, a1 + b1);
        emb_st(x + d + half, a2 + b2);
    }
}

extern "C" cudaError_t emb_launch_rotary(void *qkv, emb_kdtype dt, const int32_t *cu_seqlens,
                                         int nseq, int total, int heads, int kv_heads,
                                         int head_dim, int rotary_dim, float theta,
                                         cudaStream_t stream) {
    if (nseq < 0 || total < 0 || heads < 1 || kv_heads < 1 || head_dim < 2 ||
        rotary_dim < 2 || rotary_dim % 2 || rotary_dim > head_dim || !(theta > 0.0f))
        return cudaErrorInvalidValue;
    if (nseq == 0 || total == 0) return cudaSuccess;
    const int nrot = heads + kv_heads, half = rotary_dim / 2;
    const int ld = (heads + 2 * kv_heads) * head_dim;
    int threads = (nrot * half + 31) / 32 * 32;
    if (threads > 256) threads = 256;
    EMB_DISPATCH_DT(dt, T, {
        auto k = rotary_kernel<T>;
        EMB_LAUNCH(k, total, threads, 0, stream)((T *)qkv, cu_seqlens, nseq, nrot, ld, head_dim,
                                                 half, (float)rotary_dim, theta);
    });
    return emb_launch_status();
}
