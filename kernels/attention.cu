/*
 * Fused varlen self-attention (FlashAttention-2 style) over packed sequences:
 * q, k, v are read in place from the fused QKV GEMM output [total, 3, heads,
 * head_dim] (row stride 3*hidden), sequences are delimited by cu_seqlens, and
 * no padded token or score matrix ever exists in memory. One CTA (4 warps)
 * per (sequence, head, 64-query tile); each warp owns 16 query rows, keeps
 * its Q fragments, the running max/sum and the output accumulator in
 * registers, and walks the key tiles: S = Q K^T and O += P V on tensor cores
 * (mma.sync m16n8k16, fp32 accumulate), online softmax in fp32 with exp2.
 * Keys past the sequence end (and, for causal masks, after the query) get
 * -inf scores; out-of-range tile rows are zero-filled so 0 * garbage never
 * reaches the accumulator. Templated on element type, head_dim and the mask.
 * CPU twin: cpu_attention_varlen.
 */
#include <string.h>
#include "common.cuh"

/* 16-byte unit of shared memory: gives the tiles the alignment ldmatrix and
 * cp.async need (EMB_SHARED cannot carry an alignment itself). */
struct alignas(16) attn_chunk { uint32_t w[4]; };

template <typename T> struct attn_mma;
template <> struct attn_mma<__half> {
    static __device__ __forceinline__ void run(float d[4], const uint32_t a[4], const uint32_t b[2]) {
        emb_mma_m16n8k16_f16f32(d, a, b, d);
    }
};
template <> struct attn_mma<__nv_bfloat16> {
    static __device__ __forceinline__ void run(float d[4], const uint32_t a[4], const uint32_t b[2]) {
        emb_mma_m16n8k16_bf16f32(d, a, b, d);
    }
};

/* Two fp32 values as one 32-bit register of two 16-bit elements, the lower
 * column in the low half (the mma fragment convention). */
template <typename T> __device__ __forceinline__ uint32_t pack2(float lo, float hi) {
    emb_pair<T> v;
    v.x = emb_elem<T>::from_f(lo);
    v.y = emb_elem<T>::from_f(hi);
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    return u;
}

#define ATTN_WARPS 4
#define ATTN_BM (16 * ATTN_WARPS)

/* Key tile: 64 rows, 32 at head_dim 128 so Q + K + V tiles stay within the
 * 48 KiB of static shared memory and the accumulators within registers. */
template <int D> struct attn_cfg {
    static constexpr int BN = D == 128 ? 32 : 64;
    static constexpr int LDS = D + 8;   /* +16 B per row: ldmatrix rows hit distinct banks */
    static constexpr int CH = D / 8;    /* 16-byte chunks per row */
};

/* Copies rows [r0, r0 + n) of a [.., ld] head slice into a tile (LDS stride);
 * rows at or past `len` are zeroed instead. */
template <typename T, int D>
__device__ __forceinline__ void load_tile(T *tile, const T *g, size_t ld, int r0, int n, int len) {
    constexpr int CH = attn_cfg<D>::CH, LDS = attn_cfg<D>::LDS;
    for (int i = threadIdx.x; i < n * CH; i += 32 * ATTN_WARPS) {
        const int r = i / CH, c = (i % CH) * 8;
        T *dst = tile + r * LDS + c;
        if (r0 + r < len) emb_cp_async_16(dst, g + (size_t)(r0 + r) * ld + c);
        else *reinterpret_cast<attn_chunk *>(dst) = attn_chunk{};
    }
}

template <typename T, int D, bool CAUSAL>
__global__ void attention_varlen_kernel(T *__restrict__ out, const T *__restrict__ qkv,
                                        const int32_t *__restrict__ cu_seqlens, int heads,
                                        float scale_log2) {
    constexpr int BM = ATTN_BM, BN = attn_cfg<D>::BN, LDS = attn_cfg<D>::LDS;
    constexpr int KD = D / 16;    /* k-steps over head_dim for S = Q K^T */
    constexpr int NT = BN / 8;    /* n-tiles of S per key tile */
    constexpr int DT = D / 8;     /* n-tiles of O */
    EMB_SHARED(attn_chunk, smem, (BM + 2 * BN) * LDS * (int)sizeof(T) / 16);
    T *sQ = reinterpret_cast<T *>(smem);
    T *sK = sQ + BM * LDS;
    T *sV = sK + BN * LDS;

    const int s = blockIdx.x, h = blockIdx.y, q0 = blockIdx.z * BM;
    const int start = cu_seqlens[s], len = cu_seqlens[s + 1] - start;
    if (q0 >= len) return;  /* whole CTA leaves together: no barrier is skipped */

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int g = lane >> 2, t4 = lane & 3;
    const size_t ld = (size_t)3 * heads * D;
    const T *gQ = qkv + (size_t)start * ld + (size_t)h * D;
    const T *gK = gQ + (size_t)heads * D;
    const T *gV = gQ + (size_t)2 * heads * D;
    const int n_end = CAUSAL && q0 + BM < len ? q0 + BM : len;

    uint32_t qf[KD][4];
    float o[DT][4];
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
#pragma unroll
    for (int i = 0; i < DT; i++) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;

    /* Query rows of this thread within the sequence: g and g + 8 of its warp. */
    const int qrow0 = q0 + warp * 16 + g;

    load_tile<T, D>(sQ, gQ, ld, q0, BM, len);
    for (int k0 = 0; k0 < n_end; k0 += BN) {
        load_tile<T, D>(sK, gK, ld, k0, BN, len);
        load_tile<T, D>(sV, gV, ld, k0, BN, len);
        emb_cp_async_commit();
        emb_cp_async_wait_all();
        __syncthreads();
        if (k0 == 0) {
#pragma unroll
            for (int kk = 0; kk < KD; kk++)
                emb_ldmatrix_x4(qf[kk], sQ + (warp * 16 + (lane & 15)) * LDS + kk * 16 +
                                            (lane >> 4) * 8);
        }

        float sc[NT][4];
#pragma unroll
        for (int i = 0; i < NT; i++) sc[i][0] = sc[i][1] = sc[i][2] = sc[i][3] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < KD; kk++) {
#pragma unroll
            for (int j = 0; j < NT / 2; j++) {
                uint32_t r[4];
                emb_ldmatrix_x4(r, sK + (j * 16 + (lane & 7) + (lane >> 4) * 8) * LDS + kk * 16 +
                                       ((lane >> 3) & 1) * 8);
                const uint32_t b0[2] = {r[0], r[1]}, b1[2] = {r[2], r[3]};
                attn_mma<T>::run(sc[2 * j], qf[kk], b0);
                attn_mma<T>::run(sc[2 * j + 1], qf[kk], b1);
            }
        }

        /* Scale into the log2 domain, mask, and update the running max. */
        float mnew[2] = {m[0], m[1]};
#pragma unroll
        for (int i = 0; i < NT; i++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int key = k0 + i * 8 + 2 * t4 + (e & 1);
                const int qrow = qrow0 + (e >> 1) * 8;
                const bool ok = key < len && (!CAUSAL || key <= qrow);
                sc[i][e] = ok ? sc[i][e] * scale_log2 : -INFINITY;
                mnew[e >> 1] = fmaxf(mnew[e >> 1], sc[i][e]);
            }
        }
        float alpha[2], mu[2];
#pragma unroll
        for (int r = 0; r < 2; r++) {
            /* The 4 lanes of a quad share a row. */
            mnew[r] = fmaxf(mnew[r], __shfl_xor_sync(EMB_FULL_MASK, mnew[r], 1));
            mnew[r] = fmaxf(mnew[r], __shfl_xor_sync(EMB_FULL_MASK, mnew[r], 2));
            /* A row with no visible key yet keeps -inf; exp2 of (-inf - 0) = 0. */
            mu[r] = mnew[r] == -INFINITY ? 0.0f : mnew[r];
            alpha[r] = exp2f(m[r] - mu[r]);
            m[r] = mnew[r];
            l[r] *= alpha[r];
        }
#pragma unroll
        for (int i = 0; i < DT; i++) {
            o[i][0] *= alpha[0];
            o[i][1] *= alpha[0];
            o[i][2] *= alpha[1];
            o[i][3] *= alpha[1];
        }
#pragma unroll
        for (int i = 0; i < NT; i++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                sc[i][e] = exp2f(sc[i][e] - mu[e >> 1]);
                l[e >> 1] += sc[i][e];
            }
        }

        /* O += P V: the S accumulators of two adjacent n-tiles are exactly the
         * A fragment of one k-step (rows g / g+8, keys 2t.. and 2t+8..). */
#pragma unroll
        for (int kk = 0; kk < BN / 16; kk++) {
            const uint32_t a[4] = {pack2<T>(sc[2 * kk][0], sc[2 * kk][1]),
                                   pack2<T>(sc[2 * kk][2], sc[2 * kk][3]),
                                   pack2<T>(sc[2 * kk + 1][0], sc[2 * kk + 1][1]),
                                   pack2<T>(sc[2 * kk + 1][2], sc[2 * kk + 1][3])};
#pragma unroll
            for (int j = 0; j < DT / 2; j++) {
                uint32_t r[4];
                emb_ldmatrix_x4_trans(r, sV + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LDS +
                                             j * 16 + (lane >> 4) * 8);
                const uint32_t b0[2] = {r[0], r[1]}, b1[2] = {r[2], r[3]};
                attn_mma<T>::run(o[2 * j], a, b0);
                attn_mma<T>::run(o[2 * j + 1], a, b1);
            }
        }
        __syncthreads();  /* the next tile overwrites sK / sV */
    }

    const size_t ldo = (size_t)heads * D;
#pragma unroll
    for (int r = 0; r < 2; r++) {
        l[r] += __shfl_xor_sync(EMB_FULL_MASK, l[r], 1);
        l[r] += __shfl_xor_sync(EMB_FULL_MASK, l[r], 2);
        const int qrow = qrow0 + r * 8;
        if (qrow >= len) continue;
        const float inv = 1.0f / l[r];
        T *dst = out + (size_t)(start + qrow) * ldo + (size_t)h * D + 2 * t4;
#pragma unroll
        for (int i = 0; i < DT; i++) emb_st2(dst + i * 8, o[i][2 * r] * inv, o[i][2 * r + 1] * inv);
    }
}

template <typename T, int D>
static void attn_launch(void *out, const void *qkv, const int32_t *cu_seqlens, int nseq,
                        int max_seqlen, int heads, float scale_log2, int causal,
                        cudaStream_t stream) {
    const dim3 grid(nseq, heads, (max_seqlen + ATTN_BM - 1) / ATTN_BM);
    const dim3 block(32 * ATTN_WARPS);
    if (causal) {
        auto k = attention_varlen_kernel<T, D, true>;
        EMB_LAUNCH(k, grid, block, 0, stream)((T *)out, (const T *)qkv, cu_seqlens, heads,
                                              scale_log2);
    } else {
        auto k = attention_varlen_kernel<T, D, false>;
        EMB_LAUNCH(k, grid, block, 0, stream)((T *)out, (const T *)qkv, cu_seqlens, heads,
                                              scale_log2);
    }
}

extern "C" cudaError_t emb_launch_attention_varlen(void *out, emb_kdtype dt, const void *qkv,
                                                   const int32_t *cu_seqlens, int nseq,
                                                   int max_seqlen, int heads, int head_dim,
                                                   float scale, int causal,
                                                   cudaStream_t stream) {
    if (nseq < 0 || max_seqlen < 0 || heads < 1 || heads > 65535 ||
        (max_seqlen + ATTN_BM - 1) / ATTN_BM > 65535 ||
        (dt != EMB_KDT_F16 && dt != EMB_KDT_BF16) ||
        (head_dim != 32 && head_dim != 64 && head_dim != 128))
        return cudaErrorInvalidValue;
    if (nseq == 0 || max_seqlen == 0) return cudaSuccess;
    const float scale_log2 = scale * 1.4426950408889634f;
#define ATTN_CASE(TT, DD)                                                                    \
    attn_launch<TT, DD>(out, qkv, cu_seqlens, nseq, max_seqlen, heads, scale_log2, causal, \
                        stream)
    if (dt == EMB_KDT_F16) {
        if (head_dim == 32) ATTN_CASE(__half, 32);
        else if (head_dim == 64) ATTN_CASE(__half, 64);
        else ATTN_CASE(__half, 128);
    } else {
        if (head_dim == 32) ATTN_CASE(__nv_bfloat16, 32);
        else if (head_dim == 64) ATTN_CASE(__nv_bfloat16, 64);
        else ATTN_CASE(__nv_bfloat16, 128);
    }
#undef ATTN_CASE
    return emb_launch_status();
}
