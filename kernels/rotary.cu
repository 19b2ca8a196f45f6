/*
 * The QKV epilogue: one pass in place over the fused QKV GEMM's output
 * (layout in kernels.h) before attention, so the activations are read and
 * written once per layer: + the q/k/v bias (V heads get only that), the
 * per-head q/k RMS norms (Qwen3 / Gemma 3 normalize each query and key head
 * over head_dim) and rotary position embedding. Llama-like families only
 * rotate (with their bias when they have one), ModernBERT only rotates,
 * BERT-like encoders only add the bias; all are this kernel with the other
 * parts off. One CTA per token: the token's position within its sequence is
 * found once (binary search on cu_seqlens); each warp takes whole heads,
 * stages the head (+ bias, RMS normalized in fp32 when that block has a norm
 * weight) in shared memory and then writes the rotate_half pairs
 * (d, d + rotary_dim/2) with their angle computed in fp32 exactly as
 * transformers does (inv_freq = 1 / theta^((float)(2d)/rotary_dim), or the
 * host's table for a scaled rope, angle = (float)pos * inv_freq). The biased,
 * normalized head is never rounded to fp16/bf16 before its rotation.
 * CPU twin: cpu_qk_norm_rotary (what the CPU backend runs).
 */
#include "common.cuh"

#define QKR_WARPS 4

template <typename T>
__global__ void qk_norm_rotary_kernel(T *__restrict__ qkv, const int32_t *__restrict__ cu_seqlens,
                                      int nseq, emb_kqk_params p) {
    EMB_SHARED(float, stage, QKR_WARPS][EMB_KERNEL_MAX_HEAD_DIM);
    const int t = blockIdx.x, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int heads = p.heads, kv_heads = p.kv_heads, head_dim = p.head_dim, half = p.rotary_dim / 2;
    const T *bias = (const T *)p.bias;
    const float pos = (float)(t - cu_seqlens[emb_seq_of(cu_seqlens, nseq, t)]);
    T *row = qkv + (size_t)t * (size_t)(heads + 2 * kv_heads) * head_dim;
    float *s = stage[warp];
    /* V heads only when there is a bias to add. */
    const int nheads = heads + kv_heads + (bias ? kv_heads : 0);
    for (int h = warp; h < nheads; h += QKR_WARPS) {
        T *x = row + (size_t)h * head_dim;
        const T *b = bias ? bias + (size_t)h * head_dim : NULL;
        if (h >= heads + kv_heads) {   /* a V head: + bias, rounded once */
            for (int c = lane; c < head_dim; c += 32) emb_st(x + c, emb_ld(x + c) + emb_ld(b + c));
            continue;
        }
        const T *g = (const T *)(h < heads ? p.q_g : p.k_g);
        /* The dims written back beyond the rotated ones: all when biased or normalized. */
        const int whole = g || b;
        if (g) {
            const float eps = h < heads ? p.q_eps : p.k_eps;
            float ss = 0.0f;
            for (int c = lane; c < head_dim; c += 32) {
                const float v = emb_ld(x + c) + (b ? emb_ld(b + c) : 0.0f);
                s[c] = v;
                ss += v * v;
            }
            const float rstd = 1.0f / sqrtf(emb_warp_sum(ss) / (float)head_dim + eps);
            for (int c = lane; c < head_dim; c += 32) s[c] = s[c] * rstd * emb_ld(g + c);
        } else {
            for (int c = lane; c < (whole ? head_dim : 2 * half); c += 32)
                s[c] = emb_ld(x + c) + (b ? emb_ld(b + c) : 0.0f);
        }
        __syncwarp(EMB_FULL_MASK);
        for (int d = lane; d < half; d += 32) {
            const float inv_freq =
                p.inv_freq ? p.inv_freq[d] : 1.0f / powf(p.theta, (float)(2 * d) / (float)p.rotary_dim);
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
        if (whole)
            for (int c = 2 * half + lane; c < head_dim; c += 32) emb_st(x + c, s[c]);
        __syncwarp(EMB_FULL_MASK);   /* s is restaged for the warp's next head */
    }
}

extern "C" cudaError_t emb_launch_qk_norm_rotary(void *qkv, emb_kdtype dt, const int32_t *cu_seqlens,
                                                 int nseq, int total, const emb_kqk_params *p,
                                                 cudaStream_t stream) {
    if (!p || nseq < 0 || total < 0 || p->heads < 1 || p->kv_heads < 1 || p->head_dim < 2 ||
        p->head_dim % 2 || p->head_dim > EMB_KERNEL_MAX_HEAD_DIM || p->rotary_dim < 0 ||
        p->rotary_dim % 2 || p->rotary_dim > p->head_dim ||
        (p->rotary_dim && !p->inv_freq && !(p->theta > 0.0f)) ||
        ((p->q_g || p->k_g) && !(p->q_eps >= 0.0f && p->k_eps >= 0.0f)))
        return cudaErrorInvalidValue;
    if (nseq == 0 || total == 0 || (!p->rotary_dim && !p->q_g && !p->k_g && !p->bias)) return cudaSuccess;
    EMB_DISPATCH_DT(dt, T, {
        auto k = qk_norm_rotary_kernel<T>;
        EMB_LAUNCH(k, total, 32 * QKR_WARPS, 0, stream)((T *)qkv, cu_seqlens, nseq, *p);
    });
    return emb_launch_status();
}
