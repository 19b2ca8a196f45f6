/*
 * Per-head q/k RMS norms and rotary position embedding, fused, in place on
 * the Q and K heads of the fused QKV activations (layout in kernels.h),
 * before attention: Qwen3 / Gemma 3 normalize each query and key head over
 * head_dim and then rotate it; Llama-like families only rotate, ModernBERT
 * only rotates; that is this same kernel with the norms off. One CTA per
 * token: the token's position within its sequence is found once (binary
 * search on cu_seqlens); each warp takes whole heads, stages the head (RMS
 * normalized in fp32 when that block has a norm weight) in shared memory and
 * then writes the rotate_half pairs (d, d + rotary_dim/2) with their angle
 * computed in fp32 exactly as transformers does (inv_freq = 1 /
 * theta^((float)(2d)/rotary_dim), angle = (float)pos * inv_freq). The
 * normalized head is never rounded to fp16/bf16 before its rotation. V heads
 * are not touched; dims past rotary_dim only when normalized.
 * CPU twin: cpu_qk_norm_rotary (what the CPU backend runs).
 */
#include "common.cuh"

#define QKR_WARPS 4

template <typename T>
__global__ void qk_norm_rotary_kernel(T *__restrict__ qkv, const int32_t *__restrict__ cu_seqlens,
                                      int nseq, int heads, int kv_heads, int head_dim,
                                      const T *__restrict__ q_g, float q_eps,
                                      const T *__restrict__ k_g, float k_eps, int half,
                                      float rotary_dim, float theta) {
    EMB_SHARED(float, stage, QKR_WARPS][EMB_KERNEL_MAX_HEAD_DIM);
    const int t = blockIdx.x, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const float pos = (float)(t - cu_seqlens[emb_seq_of(cu_seqlens, nseq, t)]);
    T *row = qkv + (size_t)t * (size_t)(heads + 2 * kv_heads) * head_dim;
    float *s = stage[warp];
    for (int h = warp; h < heads + kv_heads; h += QKR_WARPS) {
        T *x = row + (size_t)h * head_dim;
        const T *g = h < heads ? q_g : k_g;
        if (g) {
            const float eps = h < heads ? q_eps : k_eps;
            float ss = 0.0f;
            for (int c = lane; c < head_dim; c += 32) {
                const float v = emb_ld(x + c);
                s[c] = v;
                ss += v * v;
            }
            const float rstd = 1.0f / sqrtf(emb_warp_sum(ss) / (float)head_dim + eps);
            for (int c = lane; c < head_dim; c += 32) s[c] = s[c] * rstd * emb_ld(g + c);
        } else {
            for (int c = lane; c < 2 * half; c += 32) s[c] = emb_ld(x + c);
        }
        __syncwarp(EMB_FULL_MASK);
        for (int d = lane; d < half; d += 32) {
            const float inv_freq = 1.0f / powf(theta, (float)(2 * d) / rotary_dim);
            /* The angle is rounded to fp32 exactly as torch does; its
             * reduction to [-pi, pi] runs in double (exact enough for any
             * position), so the fast __sinf/__cosf apply and sincosf's
             * large-argument path (which needs local memory) is never
             * compiled in. */
            const double ang = (double)(pos * inv_freq);
            const float red = (float)(ang - rint(ang * 0.15915494309189535) * 6.283185307179586);
            const float sn = __sinf(red), cs = __cosf(red);
            const float x1 = s[d], x2 = s[d + half];
            /* q * cos + rotate_half(q) * sin, each product rounded as in torch. */
            const float a1 = __fmul_rn(x1, cs), b1 = __fmul_rn(-x2, sn);
            const float a2 = __fmul_rn(x2, cs), b2 = __fmul_rn(x1, sn);
            emb_st(x + d, a1 + b1);
            emb_st(x + d + half, a2 + b2);
        }
        if (g)
            for (int c = 2 * half + lane; c < head_dim; c += 32) emb_st(x + c, s[c]);
        __syncwarp(EMB_FULL_MASK);   /* s is restaged for the warp's next head */
    }
}

extern "C" cudaError_t emb_launch_qk_norm_rotary(void *qkv, emb_kdtype dt, const int32_t *cu_seqlens,
                                                 int nseq, int total, int heads, int kv_heads,
                                                 int head_dim, const void *q_g, float q_eps,
                                                 const void *k_g, float k_eps, int rotary_dim,
                                                 float theta, cudaStream_t stream) {
    if (nseq < 0 || total < 0 || heads < 1 || kv_heads < 1 || head_dim < 2 || head_dim % 2 ||
        head_dim > EMB_KERNEL_MAX_HEAD_DIM || rotary_dim < 0 || rotary_dim % 2 ||
        rotary_dim > head_dim || (rotary_dim && !(theta > 0.0f)) ||
        ((q_g || k_g) && !(q_eps >= 0.0f && k_eps >= 0.0f)))
        return cudaErrorInvalidValue;
    if (nseq == 0 || total == 0 || (!rotary_dim && !q_g && !k_g)) return cudaSuccess;
    EMB_DISPATCH_DT(dt, T, {
        auto k = qk_norm_rotary_kernel<T>;
        EMB_LAUNCH(k, total, 32 * QKR_WARPS, 0, stream)((T *)qkv, cu_seqlens, nseq, heads, kv_heads,
                                                         head_dim, (const T *)q_g, q_eps,
                                                         (const T *)k_g, k_eps, rotary_dim / 2,
                                                         (float)rotary_dim, theta);
    });
    return emb_launch_status();
}
