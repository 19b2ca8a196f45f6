/* test_warp.cu: warp collectives of the simulator against CUDA's documented
 * semantics. The shuffle test is table-driven: every kind, every width, a
 * spread of lane offsets, each compared with a reference written from the
 * CUDA programming guide's wording (not from the PTX pseudocode the
 * simulator implements). */
#include "helpers.h"

enum ShflKind { kIdx, kUp, kDown, kXor };

__global__ void shfl_kernel(const uint32_t *in, uint32_t *out, int kind, int arg, int width)
{
    uint32_t v = in[threadIdx.x];
    uint32_t r = 0;
    switch (kind) {
    case kIdx: r = __shfl_sync(0xffffffffu, v, arg, width); break;
    case kUp: r = __shfl_up_sync(0xffffffffu, v, static_cast<unsigned>(arg), width); break;
    case kDown: r = __shfl_down_sync(0xffffffffu, v, static_cast<unsigned>(arg), width); break;
    default: r = __shfl_xor_sync(0xffffffffu, v, arg, width); break;
    }
    out[threadIdx.x] = r;
}

static int reference_source(int kind, int lane, int arg, int width)
{
    int group = lane / width, pos = lane % width;
    switch (kind) {
    case kIdx: return group * width + arg % width;            /* srcLane modulo width */
    case kUp: return pos < arg ? lane : lane - arg;           /* no wrap below the group */
    case kDown: return pos + arg >= width ? lane : lane + arg; /* no wrap past the group */
    default: {
        int src = lane ^ arg;                                 /* later groups: own value */
        return src / width > group ? lane : src;
    }
    }
}

Test(warp, shuffle_every_kind_and_width)
{
    std::vector<uint32_t> in(32);
    for (int i = 0; i < 32; i++)
        in[static_cast<size_t>(i)] = 1000u + 7u * static_cast<unsigned>(i);
    DevBuf<uint32_t> din(in), dout(32);
    const char *names[] = {"idx", "up", "down", "xor"};
    int cases = 0;
    for (int kind = kIdx; kind <= kXor; kind++)
        for (int width = 1; width <= 32; width *= 2)
            for (int arg : {0, 1, 2, 3, 5, 7, 8, 15, 16, 17, 31}) {
                EMB_LAUNCH(shfl_kernel, 1, 32, 0, 0)(din.d, dout.d, kind, arg, width);
                CUDA_OK(cudaGetLastError());
                std::vector<uint32_t> out = dout.get();
                for (int lane = 0; lane < 32; lane++) {
                    int src = reference_source(kind, lane, arg, width);
                    cr_assert_eq(out[static_cast<size_t>(lane)], in[static_cast<size_t>(src)],
                                 "%s width %d arg %d lane %d: got %u, expected lane %d's %u", names[kind], width, arg,
                                 lane, out[static_cast<size_t>(lane)], src, in[static_cast<size_t>(src)]);
                }
                cases++;
            }
    cr_assert_eq(cases, 4 * 6 * 11);
}

/* 64-bit and 16-bit values move whole. */
__global__ void shfl_types_kernel(double *d, __half *h)
{
    int lane = threadIdx.x;
    double dv = 1.0 / (lane + 1);
    __half hv = __float2half(static_cast<float>(lane) * 0.5f);
    d[lane] = __shfl_xor_sync(0xffffffffu, dv, 1);
    h[lane] = __shfl_down_sync(0xffffffffu, hv, 2);
}

Test(warp, shuffle_double_and_half)
{
    DevBuf<double> d(32);
    DevBuf<__half> h(32);
    EMB_LAUNCH(shfl_types_kernel, 1, 32, 0, 0)(d.d, h.d);
    std::vector<double> dv = d.get();
    std::vector<__half> hv = h.get();
    for (int l = 0; l < 32; l++) {
        cr_assert_eq(dv[static_cast<size_t>(l)], 1.0 / ((l ^ 1) + 1));
        float expect = static_cast<float>(l + 2 < 32 ? l + 2 : l) * 0.5f;
        cr_assert_eq(__half2float(hv[static_cast<size_t>(l)]), expect);
    }
}

__global__ void vote_kernel(int *out)
{
    int lane = threadIdx.x & 31;
    int pred = lane % 3 == 0;
    unsigned ballot = __ballot_sync(0xffffffffu, pred);
    int any = __any_sync(0xffffffffu, lane == 31);
    int all = __all_sync(0xffffffffu, lane < 31);
    int all_true = __all_sync(0xffffffffu, 1);
    unsigned sum = __reduce_add_sync(0xffffffffu, static_cast<unsigned>(lane));
    int mn = __reduce_min_sync(0xffffffffu, 5 - lane);
    int mx = __reduce_max_sync(0xffffffffu, lane - 40);
    unsigned orv = __reduce_or_sync(0xffffffffu, 1u << (lane % 4));
    unsigned xr = __reduce_xor_sync(0xffffffffu, static_cast<unsigned>(lane));
    unsigned match = __match_any_sync(0xffffffffu, lane / 8);
    int p = 0;
    unsigned mall = __match_all_sync(0xffffffffu, 42, &p);
    __syncwarp();
    int *o = out + 12 * threadIdx.x;
    o[0] = static_cast<int>(ballot);
    o[1] = any;
    o[2] = all;
    o[3] = all_true;
    o[4] = static_cast<int>(sum);
    o[5] = mn;
    o[6] = mx;
    o[7] = static_cast<int>(orv);
    o[8] = static_cast<int>(xr);
    o[9] = static_cast<int>(match);
    o[10] = static_cast<int>(mall);
    o[11] = p;
}

Test(warp, votes_reductions_and_matches)
{
    DevBuf<int> out(64 * 12);
    EMB_LAUNCH(vote_kernel, 1, 64, 0, 0)(out.d);
    std::vector<int> o = out.get();
    unsigned ballot = 0;
    for (int l = 0; l < 32; l++)
        if (l % 3 == 0)
            ballot |= 1u << l;
    for (int t = 0; t < 64; t++) {
        const int *r = &o[static_cast<size_t>(t) * 12];
        int lane = t & 31;
        cr_assert_eq(static_cast<unsigned>(r[0]), ballot);
        cr_assert_eq(r[1], 1);
        cr_assert_eq(r[2], 0);
        cr_assert_eq(r[3], 1);
        cr_assert_eq(r[4], 31 * 32 / 2);
        cr_assert_eq(r[5], 5 - 31);
        cr_assert_eq(r[6], 31 - 40);
        cr_assert_eq(r[7], 15);
        cr_assert_eq(r[8], 0); /* xor of 0..31 */
        cr_assert_eq(static_cast<unsigned>(r[9]), 0xffu << (8 * (lane / 8)));
        cr_assert_eq(static_cast<unsigned>(r[10]), 0xffffffffu);
        cr_assert_eq(r[11], 1);
    }
}

/* Lanes that diverge meet only with the lanes of their own branch. */
__global__ void divergent_kernel(unsigned *out)
{
    int lane = threadIdx.x;
    unsigned r;
    if (lane < 10) {
        unsigned m = __activemask();
        r = __shfl_sync(m, static_cast<unsigned>(lane * 100), 9) + (m << 1);
    } else {
        unsigned m = __activemask();
        r = __reduce_add_sync(0xfffffc00u, static_cast<unsigned>(lane)) + m;
    }
    out[lane] = r;
}

Test(warp, divergent_branches_with_their_own_masks)
{
    DevBuf<unsigned> out(32);
    EMB_LAUNCH(divergent_kernel, 1, 32, 0, 0)(out.d);
    std::vector<unsigned> o = out.get();
    unsigned sum_hi = 0;
    for (unsigned l = 10; l < 32; l++)
        sum_hi += l;
    for (int l = 0; l < 32; l++) {
        unsigned expect = l < 10 ? 900u + (0x3ffu << 1) : sum_hi + 0xfffffc00u;
        cr_assert_eq(o[static_cast<size_t>(l)], expect, "lane %d", l);
    }
}

/* A full-warp reduction gives the same bits in every scheduling order. */
__global__ void warp_sum_kernel(const float *in, float *out)
{
    float v = in[blockIdx.x * 32 + threadIdx.x];
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_down_sync(0xffffffffu, v, static_cast<unsigned>(o));
    if (threadIdx.x == 0)
        out[blockIdx.x] = v;
}

Test(warp, reduction_is_order_independent)
{
    uint64_t seed = 3;
    std::vector<float> in(32 * 33);
    for (float &x : in)
        x = test_randf(seed);
    DevBuf<float> din(in), dout(33);
    std::vector<float> r = under_all_orders([&] {
        EMB_LAUNCH(warp_sum_kernel, 33, 32, 0, 0)(din.d, dout.d);
        return dout.get();
    });
    for (int b = 0; b < 33; b++) {
        double s = 0;
        for (int l = 0; l < 32; l++)
            s += in[static_cast<size_t>(b * 32 + l)];
        cr_assert_float_eq(r[static_cast<size_t>(b)], s, 1e-4);
    }
}
