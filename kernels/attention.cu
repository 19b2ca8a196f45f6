/*
 * Fused varlen self-attention (FlashAttention-2 style) over packed sequences:
 * q, k, v are read in place from the fused QKV GEMM output [total, heads +
 * 2*kv_heads, head_dim] (grouped-query heads: query head h reads KV head
 * h / (heads / kv_heads) where it lies, never copied), sequences are
 * delimited by cu_seqlens, and no padded token or score matrix ever exists in
 * memory. One CTA (4 warps) per (sequence, head, 64-query tile); each warp
 * owns 16 query rows, keeps the running max/sum and the output accumulator in
 * registers (and its Q fragments too up to head_dim 128; at 256 they are
 * re-read from shared memory), and walks the key tiles: S = Q K^T and
 * O += P V on tensor cores (mma.sync m16n8k16, fp32 accumulate; the row
 * sums too, as P times a column of ones), online softmax in fp32 with exp2;
 * the K and V loads of the next tile overlap the
 * current tile's math (see the loop). A CTA walks only the key tiles that the
 * window (window_left / window_right, see kernels.h) of one of its queries reaches;
 * inside them, keys out of the sequence or out of a query's window get -inf
 * scores, and out-of-range tile rows are zero-filled so 0 * garbage never
 * reaches the accumulator. Optional per-head relative bias table and logit
 * softcap. Templated on element type and head_dim.
 * CPU twin: cpu_attention.
 */
#include <string.h>
#include "common.cuh"

/* 16-byte unit of shared memory: gives the tiles the alignment ldmatrix and
 * cp.async need (EMB_SHARED cannot carry an alignment itself). */
struct alignas(16) attn_chunk { uint32_t w[4]; };

template <typename T> struct attn_mma;
template <> struct attn_mma<__half> {
    static constexpr uint32_t ONES = 0x3C003C00u;   /* two 1.0 halves */
    static __device__ __forceinline__ void run(float d[4], const uint32_t a[4], const uint32_t b[2]) {
        emb_mma_m16n8k16_f16f32(d, a, b, d);
    }
};
template <> struct attn_mma<__nv_bfloat16> {
    static constexpr uint32_t ONES = 0x3F803F80u;   /* two 1.0 bf16s */
    static __device__ __forceinline__ void run(float d[4], const uint32_t a[4], const uint32_t b[2]) {
        emb_mma_m16n8k16_bf16f32(d, a, b, d);
    }
};

/* l += P 1: the row sums of one k-step's probabilities (P as A fragments, see
 * attn_pack_p) by the tensor cores against a column of ones: one MMA instead
 * of 8 FADDs per thread, and every thread gets its rows' whole sums (no
 * shuffles). l is a C fragment: l[0], l[1] row g, l[2], l[3] row g + 8 (the
 * two of a row are equal). The sums are of the rounded probabilities the
 * P V product uses, so each output row is an exact weighted mean of V. */
template <typename T>
__device__ __forceinline__ void attn_rowsum(float l[4], const uint32_t pa[4]) {
    const uint32_t ones[2] = {attn_mma<T>::ONES, attn_mma<T>::ONES};
    attn_mma<T>::run(l, pa, ones);
}

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
static_assert(ATTN_BM == EMB_KATTN_QUERY_TILE, "kernels.h states the query tile");

/* Key tile: 64 rows, 32 from head_dim 128. Up to 128 the Q fragments stay in
 * registers; at 256 the output accumulator alone takes 128 registers per
 * thread, so Q is re-read from shared memory for every key tile instead. */
template <int D> struct attn_cfg {
    static constexpr int BN = D >= 128 ? 32 : 64;
    static constexpr int LDS = D + 8;   /* +16 B per row: ldmatrix rows hit distinct banks */
    static constexpr bool QREG = D <= 128;
    static constexpr int SMEM = (ATTN_BM + 2 * BN) * LDS * 2;  /* bytes (16-bit elements) */
    /* CTAs per SM the register budget must allow without bias/softcap: 4 at
     * head_dim 32 (<= 128 registers, as before windows were runtime
     * arguments; the bias/softcap variant would spill). With them: 3 up to
     * head_dim 64 (<= 170 registers; MPNet's and T5's relative bias ran 2
     * CTAs per SM at 173), no spill on sm_80-90a and the same loop. */
    static constexpr int MIN_CTAS = D == 32 ? 4 : 1;
    static constexpr int MIN_CTAS_XF = D <= 64 ? 3 : 1;
};

/* The launch arguments that are not pointers to the tensors. */
struct attn_kargs {
    int heads, kv_heads;
    float scale, scale_log2;
    int wl, wr;                 /* window; < 0: unbounded on that side */
    float softcap;              /* > 0: softcap * tanh(logit / softcap) */
    const float *rel_bias;      /* [heads, 2 * rel_span - 1] or NULL */
    int rel_span;
    const void *q_bias;         /* [heads * D] of T, or NULL */
};

/* Where one CTA (sequence blockIdx.x, head blockIdx.y, queries from
 * blockIdx.z * ATTN_BM) stands: the sequence, its KV head, and the key tiles
 * (of BN) that the window of any of its queries reaches: from the first
 * query's window start (rounded down to a tile) to the last query's window
 * end. False when the CTA has no query (the whole CTA leaves together). */
struct attn_cta {
    int start, len, q0, kvh, k_begin, k_end;
    size_t ld;
    const float *bias_h;
};
template <int BN, bool XF>
__device__ __forceinline__ bool attn_cta_setup(attn_cta &c, const int32_t *cu_seqlens, const attn_kargs &a,
                                               int D) {
    const int s = blockIdx.x, h = blockIdx.y;
    c.q0 = blockIdx.z * ATTN_BM;
    c.start = cu_seqlens[s];
    c.len = cu_seqlens[s + 1] - c.start;
    if (c.q0 >= c.len) return false;
    c.kvh = h / (a.heads / a.kv_heads);
    c.ld = (size_t)(a.heads + 2 * a.kv_heads) * D;
    const int q_last = (c.q0 + ATTN_BM < c.len ? c.q0 + ATTN_BM : c.len) - 1;
    int kb = a.wl < 0 || c.q0 - a.wl < 0 ? 0 : c.q0 - a.wl;
    c.k_begin = kb - kb % BN;
    c.k_end = a.wr < 0 || q_last + a.wr + 1 > c.len ? c.len : q_last + a.wr + 1;
    c.bias_h = XF && a.rel_bias ? a.rel_bias + (size_t)h * (2 * a.rel_span - 1) + a.rel_span - 1 : nullptr;
    return true;
}

/* The keys a thread's two query rows (g and g + 8 of its warp, qrow0 and
 * qrow0 + 8) may see: [lo, hi) each, from the window and the sequence end;
 * empty for a row past the end. Computed once per CTA. */
struct attn_rows {
    int lo[2], hi[2];
};
__device__ __forceinline__ attn_rows attn_rows_of(int qrow0, int len, const attn_kargs &a) {
    attn_rows r;
#pragma unroll
    for (int e = 0; e < 2; e++) {
        const int q = qrow0 + 8 * e;
        r.lo[e] = a.wl < 0 || q - a.wl < 0 ? 0 : q - a.wl;
        r.hi[e] = q >= len ? 0 : a.wr < 0 || q + a.wr + 1 > len ? len : q + a.wr + 1;
    }
    return r;
}

/* The mask key tile [k0, k0 + BN) needs for the warp's query rows inside the
 * sequence (rows w0 .. w0 + 15), warp-uniform: none when they all see it
 * whole; keys past the sequence's end only (the last tile of a sequence when
 * the windows reach the whole tile: every tile of a short document without
 * windows), one compare per key; else each row's window bounds. Rows past
 * the end are not masked (ATTN_MASK_ROWS aside): they compute logits of
 * their zero (or bias-only) queries against real keys, finite, never stored. */
enum { ATTN_MASK_NONE = 0, ATTN_MASK_END = 1, ATTN_MASK_ROWS = 2 };
template <int BN>
__device__ __forceinline__ int attn_tile_mask(int k0, int w0, int len, const attn_kargs &a) {
    const int last = w0 + 15 < len ? w0 + 15 : len - 1;
    if (!((a.wl < 0 || k0 >= last - a.wl) && (a.wr < 0 || k0 + BN - 1 <= w0 + a.wr))) return ATTN_MASK_ROWS;
    return k0 + BN > len ? ATTN_MASK_END : ATTN_MASK_NONE;
}

/* One key tile of the online softmax, on the S fragment of a warp's 16
 * query rows (the mma.m16n8 C layout, which wgmma's accumulator shares: this
 * thread holds rows g and g + 8, keys k0 + 8i + 2t4 + {0, 1}): running max m
 * updated (log2 domain), the sums l (attn_rowsum's fragment; the tile's own
 * are added after, from the packed P) and the output accumulator o rescaled,
 * and sc left holding the unnormalised probabilities. MASK (attn_tile_mask):
 * keys at or past len (ATTN_MASK_END) or outside a row's [lo, hi)
 * (ATTN_MASK_ROWS) become -inf; a tile the warp sees whole runs without (at
 * head_dim 32-64 the per-element mask tests cost more issue slots than the
 * tile's MMAs). Without XF the max is taken on the raw
 * logits and the scale folded into one FFMA per element (scale > 0, so the
 * max commutes with it): p = exp2(s * scale_log2 - m). XF adds the bias and
 * softcap first, element by element. */
template <int NT, int DT, bool XF, int MASK>
__device__ __forceinline__ void attn_online_softmax(float (*sc)[4], float (*o)[4], float m[2], float l[4],
                                                    int k0, int qrow0, int len, const attn_rows &rows, int t4,
                                                    const attn_kargs &a, const float *bias_h) {
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int i = 0; i < NT; i++) {
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const int key = k0 + i * 8 + 2 * t4 + (e & 1), r = e >> 1;
            const bool ok = MASK == ATTN_MASK_NONE ? true
                            : MASK == ATTN_MASK_END ? key < len
                                                    : key >= rows.lo[r] && key < rows.hi[r];
            float x = sc[i][e];
            if (XF) {
                x *= a.scale;
                /* The table covers key - query within one sequence only: a
                 * row past the end (hi 0; unmasked outside ATTN_MASK_ROWS)
                 * or a key past it reads none. */
                if (bias_h && (MASK == ATTN_MASK_ROWS ? ok : rows.hi[r] > 0 && ok)) {
                    const int j = key - (qrow0 + 8 * r);
                    EMB_SIM_ASSERT(j > -a.rel_span && j < a.rel_span);
                    x += bias_h[j];
                }
                if (a.softcap > 0.0f) x = a.softcap * tanhf(x / a.softcap);
                x *= 1.4426950408889634f;
            }
            if (MASK != ATTN_MASK_NONE) x = ok ? x : -INFINITY;
            sc[i][e] = x;
            mx[r] = fmaxf(mx[r], x);
        }
    }
    /* Without XF, sc holds raw logits: the log2-domain value is s * scale_log2. */
    const float s2 = XF ? 1.0f : a.scale_log2;
    float alpha[2], mu[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        /* The 4 lanes of a quad share a row. */
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(EMB_FULL_MASK, mx[r], 1));
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(EMB_FULL_MASK, mx[r], 2));
        const float mnew = fmaxf(m[r], XF ? mx[r] : mx[r] * s2);
        /* A row with no visible key yet keeps -inf; exp2 of (-inf - 0) = 0. */
        mu[r] = mnew == -INFINITY ? 0.0f : mnew;
        alpha[r] = emb_ex2_ftz(m[r] - mu[r]);
        m[r] = mnew;
    }
    /* Once a row's max settles (most tiles of a long sequence) alpha is
     * exactly 1: skip the D / 2 + 4 multiplies when it is for the warp's 16 rows. */
    if (__any_sync(EMB_FULL_MASK, alpha[0] != 1.0f || alpha[1] != 1.0f)) {
        l[0] *= alpha[0];
        l[1] *= alpha[0];
        l[2] *= alpha[1];
        l[3] *= alpha[1];
#pragma unroll
        for (int i = 0; i < DT; i++) {
            o[i][0] *= alpha[0];
            o[i][1] *= alpha[0];
            o[i][2] *= alpha[1];
            o[i][3] *= alpha[1];
        }
    }
#pragma unroll
    for (int i = 0; i < NT; i++) {
#pragma unroll
        for (int e = 0; e < 4; e++) {
            sc[i][e] = emb_ex2_ftz(XF ? sc[i][e] - mu[e >> 1] : fmaf(sc[i][e], s2, -mu[e >> 1]));
        }
    }
}

/* The softmax step of a tile, with the mask attn_tile_mask says it needs. */
template <int BN, int DT, bool XF>
__device__ __forceinline__ void attn_softmax_tile(float (*sc)[4], float (*o)[4], float m[2], float l[4],
                                                  int k0, int w0, int qrow0, int len, const attn_rows &rows,
                                                  int t4, const attn_kargs &a, const float *bias_h) {
    const int mask = attn_tile_mask<BN>(k0, w0, len, a);
    if (mask == ATTN_MASK_NONE)
        attn_online_softmax<BN / 8, DT, XF, ATTN_MASK_NONE>(sc, o, m, l, k0, qrow0, len, rows, t4, a, bias_h);
    else if (mask == ATTN_MASK_END)
        attn_online_softmax<BN / 8, DT, XF, ATTN_MASK_END>(sc, o, m, l, k0, qrow0, len, rows, t4, a, bias_h);
    else
        attn_online_softmax<BN / 8, DT, XF, ATTN_MASK_ROWS>(sc, o, m, l, k0, qrow0, len, rows, t4, a, bias_h);
}

/* The A fragment of P for k-step kk of O += P V: the S accumulators of two
 * adjacent n-tiles are exactly the rows g / g+8, keys 2t.. and 2t+8.. */
template <typename T>
__device__ __forceinline__ void attn_pack_p(uint32_t pa[4], const float (*sc)[4], int kk) {
    pa[0] = pack2<T>(sc[2 * kk][0], sc[2 * kk][1]);
    pa[1] = pack2<T>(sc[2 * kk][2], sc[2 * kk][3]);
    pa[2] = pack2<T>(sc[2 * kk + 1][0], sc[2 * kk + 1][1]);
    pa[3] = pack2<T>(sc[2 * kk + 1][2], sc[2 * kk + 1][3]);
}

/* Final 1 / l (attn_rowsum's whole-row sums) and the store of a warp's 16
 * rows (those inside the sequence). */
template <typename T, int DT>
__device__ __forceinline__ void attn_store(T *out, const float (*o)[4], const float l[4], int qrow0, int len,
                                           int start, int h, int t4, int heads) {
    const size_t ldo = (size_t)heads * DT * 8;
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int qrow = qrow0 + r * 8;
        if (qrow >= len) continue;
        const float inv = 1.0f / l[2 * r];
        T *dst = out + (size_t)(start + qrow) * ldo + (size_t)h * DT * 8 + 2 * t4;
#pragma unroll
        for (int i = 0; i < DT; i++) emb_st2(dst + i * 8, o[i][2 * r] * inv, o[i][2 * r + 1] * inv);
    }
}

/* The i-th 16-byte chunk of a tile of D columns: its row r, its column
 * chunk c (8 elements) and its element offset in the tile. Plain tiles
 * (CORE false) are rows of LDS elements; CORE tiles use the core-matrix
 * layout wgmma reads (see the sm_90a kernel below), where consecutive chunks
 * are consecutive rows of one column chunk, so each 8 fill one 128-byte core
 * matrix. */
template <int D, bool CORE>
__device__ __forceinline__ int tile_chunk(int i, int &r, int &c) {
    constexpr int CH = D / 8;
    if (CORE) {
        r = (i & 7) + (i / (8 * CH)) * 8, c = (i >> 3) % CH;
        return (r >> 3) * 8 * D + c * 64 + (r & 7) * 8;
    }
    r = i / CH, c = i % CH;
    return r * attn_cfg<D>::LDS + c * 8;
}

/* The 16-byte chunks of an N-row tile each thread copies: N * D / 8 of them
 * over the CTA's threads, an exact multiple for every tile here (N 32 or
 * 64, D a multiple of 16), so the loops below unroll with no remainder.
 * Fully up to 8 per thread; by 4 above (16 at head_dim 256 on 64 rows, where
 * the hoisted addresses of a full unroll spill the wgmma kernel). */
template <int N, int D> struct tile_share {
    static constexpr int CHUNKS = N * (D / 8), PER_THREAD = CHUNKS / (32 * ATTN_WARPS);
    static constexpr int UNROLL = PER_THREAD <= 8 ? PER_THREAD : 4;
    static_assert(CHUNKS % (32 * ATTN_WARPS) == 0, "a tile's chunks split evenly over the threads");
};

/* Copies rows [r0, r0 + N) of a [.., ld] head slice into a tile (N a
 * multiple of 8 for CORE); rows at or past `len` are zero-filled by the same
 * cp.async (g, the sequence's first row, stands in as their source). */
template <typename T, int D, bool CORE, int N>
__device__ __forceinline__ void load_tile(T *tile, const T *g, size_t ld, int r0, int len) {
#pragma unroll (tile_share<N, D>::UNROLL)
    for (int j = 0; j < tile_share<N, D>::PER_THREAD; j++) {
        int r, c;
        T *dst = tile + tile_chunk<D, CORE>(threadIdx.x + j * 32 * ATTN_WARPS, r, c);
        const bool in = r0 + r < len;
        emb_cp_async_16_zfill(dst, in ? g + (size_t)(r0 + r) * ld + c * 8 : g, in);
    }
}

/* Adds a head's query bias to the chunks of a Q tile (N rows) that this
 * thread itself loaded (load_tile's order): after this thread's cp.async
 * wait, with no barrier before it; the one after it publishes the sums. The
 * fp32 sum rounded to T, as a bias pass over qkv would have stored it. */
template <typename T, int D, bool CORE, int N>
__device__ __forceinline__ void add_q_bias(T *tile, const T *bias) {
#pragma unroll
    for (int j = 0; j < tile_share<N, D>::PER_THREAD; j++) {
        int r, c;
        T *dst = tile + tile_chunk<D, CORE>(threadIdx.x + j * 32 * ATTN_WARPS, r, c);
#pragma unroll
        for (int e = 0; e < 8; e++)
            dst[e] = emb_elem<T>::from_f(emb_elem<T>::to_f(dst[e]) + emb_elem<T>::to_f(bias[c * 8 + e]));
    }
}

template <typename T, int D, bool XF>
__global__ void __launch_bounds__(32 * ATTN_WARPS, XF ? attn_cfg<D>::MIN_CTAS_XF : attn_cfg<D>::MIN_CTAS) attention_kernel(T *__restrict__ out, const T *__restrict__ qkv,
                                 const int32_t *__restrict__ cu_seqlens, const attn_kargs a) {
    constexpr int BM = ATTN_BM, BN = attn_cfg<D>::BN, LDS = attn_cfg<D>::LDS;
    constexpr bool QREG = attn_cfg<D>::QREG;
    constexpr int KD = D / 16;    /* k-steps over head_dim for S = Q K^T */
    constexpr int NT = BN / 8;    /* n-tiles of S per key tile */
    constexpr int DT = D / 8;     /* n-tiles of O */
    EMB_DYNAMIC_SHARED(attn_chunk, smem);
    T *sQ = reinterpret_cast<T *>(smem);
    T *sK = sQ + BM * LDS;
    T *sV = sK + BN * LDS;

    attn_cta c;
    if (!attn_cta_setup<BN, XF>(c, cu_seqlens, a, D)) return;  /* whole CTA: no barrier is skipped */
    const int h = blockIdx.y, start = c.start, len = c.len, q0 = c.q0;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int g = lane >> 2, t4 = lane & 3;
    const size_t ld = c.ld;
    const T *gQ = qkv + (size_t)start * ld + (size_t)h * D;
    const T *gK = qkv + (size_t)start * ld + (size_t)(a.heads + c.kvh) * D;
    const T *gV = qkv + (size_t)start * ld + (size_t)(a.heads + a.kv_heads + c.kvh) * D;
    const int k_begin = c.k_begin, k_end = c.k_end;
    const float *bias_h = c.bias_h;

    uint32_t qf[QREG ? KD : 1][4];
    float o[DT][4];
    float m[2] = {-INFINITY, -INFINITY}, l[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
    for (int i = 0; i < DT; i++) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;

    /* Query rows of this thread within the sequence: g and g + 8 of its warp. */
    const int qrow0 = q0 + warp * 16 + g;
    const attn_rows rows = attn_rows_of(qrow0, len, a);
    const T *qfrag = sQ + (warp * 16 + (lane & 15)) * LDS + (lane >> 4) * 8;

    /* Loads staggered as in FlashAttention-2, one buffer each for K and V:
     * K of tile j + 1 is fetched while tile j's softmax and P V run, V of
     * tile j + 1 while tile j + 1's Q K^T runs. At the top of each iteration
     * the two newest cp.async groups are K_j then V_j (possibly empty ones
     * past the last tile, so the counts hold). */
    load_tile<T, D, false, BM>(sQ, gQ, ld, q0, len);
    emb_cp_async_commit();
    load_tile<T, D, false, BN>(sK, gK, ld, k_begin, len);
    emb_cp_async_commit();
    load_tile<T, D, false, BN>(sV, gV, ld, k_begin, len);
    emb_cp_async_commit();
    if (a.q_bias) {   /* published by the first barrier of the loop */
        emb_cp_async_wait_group<2>();   /* Q landed */
        add_q_bias<T, D, false, BM>(sQ, static_cast<const T *>(a.q_bias) + (size_t)h * D);
    }
    for (int k0 = k_begin; k0 < k_end; k0 += BN) {
        const bool more = k0 + BN < k_end;
        emb_cp_async_wait_group<1>();   /* K_j (and Q) landed; V_j may be in flight */
        __syncthreads();
        if (QREG && k0 == k_begin) {
#pragma unroll
            for (int kk = 0; kk < KD; kk++) emb_ldmatrix_x4(qf[QREG ? kk : 0], qfrag + kk * 16);
        }

        float sc[NT][4];
#pragma unroll
        for (int i = 0; i < NT; i++) sc[i][0] = sc[i][1] = sc[i][2] = sc[i][3] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < KD; kk++) {
            uint32_t qs[4];
            if (!QREG) emb_ldmatrix_x4(qs, qfrag + kk * 16);
            const uint32_t *qa = QREG ? qf[QREG ? kk : 0] : qs;
#pragma unroll
            for (int j = 0; j < NT / 2; j++) {
                uint32_t r[4];
                emb_ldmatrix_x4(r, sK + (j * 16 + (lane & 7) + (lane >> 4) * 8) * LDS + kk * 16 +
                                       ((lane >> 3) & 1) * 8);
                const uint32_t b0[2] = {r[0], r[1]}, b1[2] = {r[2], r[3]};
                attn_mma<T>::run(sc[2 * j], qa, b0);
                attn_mma<T>::run(sc[2 * j + 1], qa, b1);
            }
        }
        __syncthreads();   /* every warp is done with K_j */
        if (more) load_tile<T, D, false, BN>(sK, gK, ld, k0 + BN, len);
        emb_cp_async_commit();

        attn_softmax_tile<BN, DT, XF>(sc, o, m, l, k0, q0 + warp * 16, qrow0, len, rows, t4, a, bias_h);

        emb_cp_async_wait_group<1>();   /* V_j landed; K_{j+1} may be in flight */
        __syncthreads();
        /* O += P V (P as A fragments, see attn_pack_p). */
#pragma unroll
        for (int kk = 0; kk < BN / 16; kk++) {
            uint32_t pa[4];
            attn_pack_p<T>(pa, sc, kk);
            attn_rowsum<T>(l, pa);
#pragma unroll
            for (int j = 0; j < DT / 2; j++) {
                uint32_t r[4];
                emb_ldmatrix_x4_trans(r, sV + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LDS +
                                             j * 16 + (lane >> 4) * 8);
                const uint32_t b0[2] = {r[0], r[1]}, b1[2] = {r[2], r[3]};
                attn_mma<T>::run(o[2 * j], pa, b0);
                attn_mma<T>::run(o[2 * j + 1], pa, b1);
            }
        }
        __syncthreads();   /* every warp is done with V_j */
        if (more) load_tile<T, D, false, BN>(sV, gV, ld, k0 + BN, len);
        emb_cp_async_commit();
    }
    emb_cp_async_wait_all();   /* nothing left in flight at exit */

    attn_store<T, DT>(out, o, l, qrow0, len, start, h, t4, a.heads);
}

/* ---- sm_90a: the same algorithm on warpgroup MMA ---------------------------
 * One warpgroup (the CTA's 4 warps) per 64-query tile, as above, but S = Q K^T
 * is one wgmma per 16 of head_dim with Q and K both read by the tensor cores
 * from shared memory, and O += P V one wgmma per 16 keys with P from
 * registers and V from shared memory (MN-major); no ldmatrix, and no Q
 * fragments held in registers. K/V tiles are double-buffered: the cp.async of
 * tile j + 1 is in flight while tile j is computed. Tiles use the core-matrix
 * layout wgmma reads without a swizzle (see kernels/arch.h): element (r, c)
 * of a tile of D columns at (r / 8) * 8D + (c / 8) * 64 + (r % 8) * 8 + c % 8,
 * 128 contiguous bytes per 8 x 8 core matrix, written conflict-free. */
#define WG_BN 64
template <int D> struct wg_cfg {
    static constexpr int SMEM = (ATTN_BM + 4 * WG_BN) * D * 2;  /* Q, 2 K, 2 V; bytes */
};

template <typename T, int D, bool XF>
__global__ void __launch_bounds__(32 * ATTN_WARPS, 1) attention_wgmma_kernel(T *__restrict__ out, const T *__restrict__ qkv,
                                 const int32_t *__restrict__ cu_seqlens, const attn_kargs a) {
#if EMB_HAVE_WGMMA
    constexpr int BM = ATTN_BM, BN = WG_BN;
    constexpr int KD = D / 16, NT = BN / 8, DT = D / 8;
    constexpr uint32_t CORE = 128, GROUP = 16 * D;  /* bytes: next core matrix along the columns; next 8 rows */
    EMB_DYNAMIC_SHARED(attn_chunk, smem);
    T *sQ = reinterpret_cast<T *>(smem);
    T *sK = sQ + BM * D;      /* [2][BN * D] */
    T *sV = sK + 2 * BN * D;  /* [2][BN * D] */

    attn_cta c;
    if (!attn_cta_setup<BN, XF>(c, cu_seqlens, a, D)) return;  /* whole CTA: no barrier is skipped */
    const int h = blockIdx.y;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int t4 = lane & 3;
    const T *gQ = qkv + (size_t)c.start * c.ld + (size_t)h * D;
    const T *gK = qkv + (size_t)c.start * c.ld + (size_t)(a.heads + c.kvh) * D;
    const T *gV = qkv + (size_t)c.start * c.ld + (size_t)(a.heads + a.kv_heads + c.kvh) * D;

    float o[DT][4];
    float m[2] = {-INFINITY, -INFINITY}, l[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
    for (int i = 0; i < DT; i++) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
    const int qrow0 = c.q0 + warp * 16 + (lane >> 2);
    const attn_rows rows = attn_rows_of(qrow0, c.len, a);

    load_tile<T, D, true, BM>(sQ, gQ, c.ld, c.q0, c.len);
    emb_cp_async_commit();
    load_tile<T, D, true, BN>(sK, gK, c.ld, c.k_begin, c.len);
    load_tile<T, D, true, BN>(sV, gV, c.ld, c.k_begin, c.len);
    emb_cp_async_commit();
    if (a.q_bias) {   /* fenced and published at the top of the loop */
        emb_cp_async_wait_group<1>();  /* Q landed */
        add_q_bias<T, D, true, BM>(sQ, static_cast<const T *>(a.q_bias) + (size_t)h * D);
    }
    int buf = 0;
    for (int k0 = c.k_begin; k0 < c.k_end; k0 += BN, buf ^= 1) {
        if (k0 + BN < c.k_end) {  /* the other buffer was released by the last barrier */
            load_tile<T, D, true, BN>(sK + (buf ^ 1) * BN * D, gK, c.ld, k0 + BN, c.len);
            load_tile<T, D, true, BN>(sV + (buf ^ 1) * BN * D, gV, c.ld, k0 + BN, c.len);
        }
        emb_cp_async_commit();
        emb_cp_async_wait_group<1>();  /* tile j (and Q) landed; j + 1 may be in flight */
        emb_fence_proxy_async();       /* this thread's copies and sums, to the tensor cores */
        __syncthreads();
        const T *cK = sK + buf * BN * D, *cV = sV + buf * BN * D;

        float sc[NT][4];
#pragma unroll
        for (int i = 0; i < NT; i++) sc[i][0] = sc[i][1] = sc[i][2] = sc[i][3] = 0.0f;
        emb_wgmma_fence_acc<NT * 4>(&sc[0][0]);
        emb_wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < KD; kk++)
            emb_wgmma_ss<T, BN>(&sc[0][0], emb_wgmma_desc(sQ + kk * 128, CORE, GROUP),
                                emb_wgmma_desc(cK + kk * 128, CORE, GROUP));
        emb_wgmma_commit();
        emb_wgmma_wait<0>();
        emb_wgmma_fence_acc<NT * 4>(&sc[0][0]);

        attn_softmax_tile<BN, DT, XF>(sc, o, m, l, k0, c.q0 + warp * 16, qrow0, c.len, rows, t4, a, c.bias_h);

        uint32_t pa[BN / 16][4];
#pragma unroll
        for (int kk = 0; kk < BN / 16; kk++) {
            attn_pack_p<T>(pa[kk], sc, kk);
            attn_rowsum<T>(l, pa[kk]);
        }
        emb_wgmma_fence_acc<DT * 4>(&o[0][0]);
        emb_wgmma_fence();
        /* V as B, MN-major: along K (keys) the next core matrix is 8 rows on,
         * along N (head_dim) the next 8 columns. */
#pragma unroll
        for (int kk = 0; kk < BN / 16; kk++)
            emb_wgmma_rs_mn<T, D>(&o[0][0], pa[kk], emb_wgmma_desc(cV + kk * 16 * D, GROUP, CORE));
        emb_wgmma_commit();
        emb_wgmma_wait<0>();
        emb_wgmma_fence_acc<DT * 4>(&o[0][0]);
        __syncthreads();  /* tile j's buffers are free for tile j + 2 */
    }
    emb_cp_async_wait_all();  /* nothing left in flight at exit */

    attn_store<T, DT>(out, o, l, qrow0, c.len, c.start, h, t4, a.heads);
#else
    (void)out; (void)qkv; (void)cu_seqlens; (void)a;
    __trap();  /* not sm_90a code: the launcher's caller asked emb_launch_wgmma_probe */
#endif
}

/* Writes 1 where this device runs sm_90a code of this build (wgmma), else 0. */
__global__ void attention_wgmma_probe(int *yes) { *yes = EMB_HAVE_WGMMA; }

template <typename T, int D>
static cudaError_t attn_launch(void *out, const void *qkv, const int32_t *cu_seqlens, int nseq,
                               int max_seqlen, const attn_kargs &a, bool wg, cudaStream_t stream) {
    const dim3 grid(nseq, a.heads, (max_seqlen + ATTN_BM - 1) / ATTN_BM);
    const dim3 block(32 * ATTN_WARPS);
    const int smem = wg ? wg_cfg<D>::SMEM : attn_cfg<D>::SMEM;
    /* Bias and softcap in their own instantiation: the plain one keeps the
     * register budget (and occupancy) of a bare FlashAttention kernel. */
    const bool xf = a.rel_bias || a.softcap > 0.0f;
    auto k = wg ? (xf ? attention_wgmma_kernel<T, D, true> : attention_wgmma_kernel<T, D, false>)
                : (xf ? attention_kernel<T, D, true> : attention_kernel<T, D, false>);
    if (smem > 48 * 1024) {
        /* Cheap after the first call; a launcher must not keep host state. */
        cudaError_t e = cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
        if (e != cudaSuccess) return e;
    }
    EMB_LAUNCH(k, grid, block, smem, stream)((T *)out, (const T *)qkv, cu_seqlens, a);
    return emb_launch_status();
}

template <typename T>
static cudaError_t attn_dispatch(void *out, const void *qkv, const int32_t *cu_seqlens, int nseq,
                                 int max_seqlen, int head_dim, const attn_kargs &a, bool wg,
                                 cudaStream_t stream) {
    switch (head_dim) {
    case 16: return attn_launch<T, 16>(out, qkv, cu_seqlens, nseq, max_seqlen, a, wg, stream);
    case 32: return attn_launch<T, 32>(out, qkv, cu_seqlens, nseq, max_seqlen, a, wg, stream);
    case 64: return attn_launch<T, 64>(out, qkv, cu_seqlens, nseq, max_seqlen, a, wg, stream);
    case 80: return attn_launch<T, 80>(out, qkv, cu_seqlens, nseq, max_seqlen, a, wg, stream);
    case 96: return attn_launch<T, 96>(out, qkv, cu_seqlens, nseq, max_seqlen, a, wg, stream);
    case 128: return attn_launch<T, 128>(out, qkv, cu_seqlens, nseq, max_seqlen, a, wg, stream);
    case 256: return attn_launch<T, 256>(out, qkv, cu_seqlens, nseq, max_seqlen, a, wg, stream);
    default: return cudaErrorInvalidValue;
    }
}

extern "C" cudaError_t emb_launch_attention(void *out, emb_kdtype dt, const void *qkv,
                                            const int32_t *cu_seqlens, int nseq, int max_seqlen,
                                            const emb_kattn_params *p, cudaStream_t stream) {
    if (!p || nseq < 0 || max_seqlen < 0 || p->heads < 1 || p->heads > 65535 ||
        p->kv_heads < 1 || p->heads % p->kv_heads != 0 ||
        (max_seqlen + ATTN_BM - 1) / ATTN_BM > 65535 ||
        (dt != EMB_KDT_F16 && dt != EMB_KDT_BF16) ||
        (p->head_dim != 16 && p->head_dim != 32 && p->head_dim != 64 && p->head_dim != 80 && p->head_dim != 96 &&
         p->head_dim != 128 && p->head_dim != 256) ||
        (p->rel_bias && p->rel_span < max_seqlen) || !(p->softcap >= 0.0f) ||
        !(p->scale > 0.0f && p->scale < INFINITY) ||
        (p->impl != EMB_KATTN_MMA && p->impl != EMB_KATTN_WGMMA))
        return cudaErrorInvalidValue;
    const bool wg = p->impl == EMB_KATTN_WGMMA;
    if (nseq == 0 || max_seqlen == 0) return cudaSuccess;
    attn_kargs a;
    a.heads = p->heads;
    a.kv_heads = p->kv_heads;
    a.scale = p->scale;
    a.scale_log2 = p->scale * 1.4426950408889634f;
    a.wl = p->window_left < 0 ? -1 : p->window_left;
    a.wr = p->window_right < 0 ? -1 : p->window_right;
    a.softcap = p->softcap;
    a.rel_bias = p->rel_bias;
    a.rel_span = p->rel_span;
    a.q_bias = p->q_bias;
    if (dt == EMB_KDT_F16)
        return attn_dispatch<__half>(out, qkv, cu_seqlens, nseq, max_seqlen, p->head_dim, a, wg, stream);
    return attn_dispatch<__nv_bfloat16>(out, qkv, cu_seqlens, nseq, max_seqlen, p->head_dim, a, wg,
                                        stream);
}

extern "C" cudaError_t emb_launch_wgmma_probe(int *d_flag, cudaStream_t stream) {
    if (!d_flag) return cudaErrorInvalidValue;
    EMB_LAUNCH(attention_wgmma_probe, 1, 1, 0, stream)(d_flag);
    return emb_launch_status();
}

extern "C" cudaError_t emb_launch_attention_varlen(void *out, emb_kdtype dt, const void *qkv,
                                                   const int32_t *cu_seqlens, int nseq,
                                                   int max_seqlen, int heads, int head_dim,
                                                   float scale, int causal,
                                                   cudaStream_t stream) {
    emb_kattn_params p;
    memset(&p, 0, sizeof p);
    p.heads = p.kv_heads = heads;
    p.head_dim = head_dim;
    p.scale = scale;
    p.window_left = -1;
    p.window_right = causal ? 0 : -1;
    return emb_launch_attention(out, dt, qkv, cu_seqlens, nseq, max_seqlen, &p, stream);
}
