/*
 * Kernel microbenchmark ladders (llm.c style): for each kernel family a naive
 * version and the production kernel from kernels/, each validated against the
 * CPU twin (host/cpu_ops.c) before it is timed, then timed with CUDA events
 * and reported as achieved TFLOP/s (attention) or GB/s (memory-bound kernels)
 * against the device's peak. Needs a GPU; built and run by tools/gpu-check:
 *   bench_kernels [--quick]
 * Ladder:
 *   attention v0  one thread per (query, head), fp32 scalar online softmax
 *   attention v1  kernels/attention.cu: FA2 tiles, mma.sync, online softmax
 *   layernorm v0  one thread per row, three passes over global memory
 *   layernorm v1  kernels/norm.cu: one CTA per row, values in registers
 */
#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <functional>
#include <vector>

#include "kernels.h"
extern "C" {
#include "cpu_ops.h"
}

#define CK(x)                                                                              \
    do {                                                                                   \
        cudaError_t e_ = (x);                                                              \
        if (e_ != cudaSuccess) {                                                           \
            fprintf(stderr, "%s failed at %s:%d: %s\n", #x, __FILE__, __LINE__,            \
                    cudaGetErrorString(e_));                                               \
            exit(1);                                                                       \
        }                                                                                  \
    } while (0)

static float frand() { return (float)rand() / RAND_MAX * 2.0f - 1.0f; }

/* ---- attention v0 ---------------------------------------------------------- */
__global__ void attn_v0(__half *out, const __half *qkv, const int *cu, int nseq, int heads, int D,
                        float scale) {
    int s = blockIdx.y, h = blockIdx.z;
    int start = cu[s], len = cu[s + 1] - start;
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= len) return;
    size_t ld = (size_t)3 * heads * D;
    const __half *q = qkv + (size_t)(start + i) * ld + (size_t)h * D;
    float acc[128], m = -INFINITY, l = 0;
    for (int d = 0; d < D; d++) acc[d] = 0;
    for (int j = 0; j < len; j++) {
        const __half *k = qkv + (size_t)(start + j) * ld + (size_t)(heads + h) * D;
        const __half *v = k + (size_t)heads * D;
        float sc = 0;
        for (int d = 0; d < D; d++) sc += __half2float(q[d]) * __half2float(k[d]);
        sc *= scale;
        float mn = fmaxf(m, sc), a = expf(m - mn), p = expf(sc - mn);
        l = l * a + p;
        for (int d = 0; d < D; d++) acc[d] = acc[d] * a + p * __half2float(v[d]);
        m = mn;
    }
    __half *o = out + (size_t)(start + i) * heads * D + (size_t)h * D;
    for (int d = 0; d < D; d++) o[d] = __float2half(acc[d] / l);
}

/* ---- layernorm v0 ---------------------------------------------------------- */
__global__ void ln_v0(__half *x, const __half *bias, const __half *res, const __half *g,
                      const __half *b, int rows, int dim, float eps) {
    int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= rows) return;
    __half *row = x + (size_t)r * dim;
    const __half *rr = res + (size_t)r * dim;
    float mean = 0, var = 0;
    for (int c = 0; c < dim; c++) mean += __half2float(row[c]) + __half2float(bias[c]) + __half2float(rr[c]);
    mean /= dim;
    for (int c = 0; c < dim; c++) {
        float d = __half2float(row[c]) + __half2float(bias[c]) + __half2float(rr[c]) - mean;
        var += d * d;
    }
    float rstd = 1.0f / sqrtf(var / dim + eps);
    for (int c = 0; c < dim; c++) {
        float v = __half2float(row[c]) + __half2float(bias[c]) + __half2float(rr[c]);
        row[c] = __float2half((v - mean) * rstd * __half2float(g[c]) + __half2float(b[c]));
    }
}

/* ---- helpers ------------------------------------------------------------------ */
static __half *up(const std::vector<float> &x) {
    std::vector<__half> h(x.size());
    for (size_t i = 0; i < x.size(); i++) h[i] = __float2half(x[i]);
    __half *d;
    CK(cudaMalloc(&d, h.size() * 2));
    CK(cudaMemcpy(d, h.data(), h.size() * 2, cudaMemcpyHostToDevice));
    return d;
}
static std::vector<float> down(const __half *d, size_t n) {
    std::vector<__half> h(n);
    CK(cudaMemcpy(h.data(), d, n * 2, cudaMemcpyDeviceToHost));
    std::vector<float> x(n);
    for (size_t i = 0; i < n; i++) x[i] = __half2float(h[i]);
    return x;
}
static void round_f16(std::vector<float> &x) {
    for (auto &v : x) v = __half2float(__float2half(v));
}
static bool validate(const char *name, const std::vector<float> &got, const std::vector<float> &ref,
                     float tol) {
    double worst = 0;
    for (size_t i = 0; i < ref.size(); i++) {
        double d = fabs((double)got[i] - ref[i]) / (tol + fabs((double)ref[i]));
        if (!(d <= worst)) worst = isnan(d) ? INFINITY : d > worst ? d : worst;
    }
    bool ok = worst <= 1.0;
    printf("  %-14s validate: %s (worst scaled error %.3f)\n", name, ok ? "ok" : "FAILED", worst);
    return ok;
}
template <typename F> static float time_ms(F f, int iters) {
    cudaEvent_t a, b;
    CK(cudaEventCreate(&a));
    CK(cudaEventCreate(&b));
    f();
    CK(cudaDeviceSynchronize());
    CK(cudaEventRecord(a));
    for (int i = 0; i < iters; i++) f();
    CK(cudaEventRecord(b));
    CK(cudaEventSynchronize(b));
    float ms;
    CK(cudaEventElapsedTime(&ms, a, b));
    return ms / iters;
}

int main(int argc, char **argv) {
    const bool quick = argc > 1 && !strcmp(argv[1], "--quick");
    cudaDeviceProp p;
    CK(cudaGetDeviceProperties(&p, 0));
    /* Peak dense fp16 tensor FLOP/s and DRAM bandwidth: looked up for the parts
     * DESIGN.md §5 names, bandwidth from the device's own clock and bus width. */
    double peak_tflops = p.major == 9 ? 989.0 : (p.major == 8 && p.minor == 0 ? 312.0 : 0.0);
    if (p.major == 9 && strstr(p.name, "PCIe")) peak_tflops = 756.0;
    int mem_clock_khz = 0, bus_bits = 0;
    cudaDeviceGetAttribute(&mem_clock_khz, cudaDevAttrMemoryClockRate, 0);
    cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, 0);
    double peak_gbs = 2.0 * mem_clock_khz * 1e3 * (bus_bits / 8) / 1e9;
    printf("device: %s (sm_%d%d), peak fp16 dense %.0f TFLOP/s, DRAM %.0f GB/s\n", p.name, p.major,
           p.minor, peak_tflops, peak_gbs);
    int fails = 0;

    /* Attention: BERT-base shape (12 heads x 64), packed mix of lengths. */
    {
        const int heads = 12, D = 64;
        std::vector<int> lens;
        int total = 0, maxlen = 0;
        for (int i = 0; i < (quick ? 16 : 128); i++) {
            int l = 32 + (i * 97) % 481;
            lens.push_back(l);
            total += l;
            maxlen = l > maxlen ? l : maxlen;
        }
        std::vector<int> cu(lens.size() + 1, 0);
        for (size_t i = 0; i < lens.size(); i++) cu[i + 1] = cu[i] + lens[i];
        std::vector<float> qkv((size_t)total * 3 * heads * D);
        for (auto &v : qkv) v = frand();
        round_f16(qkv);
        std::vector<float> ref((size_t)total * heads * D);
        const float scale = 1.0f / sqrtf((float)D);
        cpu_attention_varlen(ref.data(), qkv.data(), cu.data(), (int)lens.size(), heads, D, scale, 0);
        __half *dq = up(qkv), *dout;
        int *dcu;
        CK(cudaMalloc(&dout, ref.size() * 2));
        CK(cudaMalloc(&dcu, cu.size() * 4));
        CK(cudaMemcpy(dcu, cu.data(), cu.size() * 4, cudaMemcpyHostToDevice));
        double flops = 0;
        for (int l : lens) flops += 4.0 * l * l * D * heads;
        const int nseq = (int)lens.size();
        auto v0 = [&] {
            attn_v0<<<dim3((maxlen + 63) / 64, nseq, heads), 64>>>(dout, dq, dcu, nseq, heads, D, scale);
        };
        auto v1 = [&] {
            CK(emb_launch_attention_varlen(dout, EMB_KDT_F16, dq, dcu, nseq, maxlen, heads, D, scale, 0, 0));
        };
        printf("attention f16 heads=%d head_dim=%d, %d sequences, %d tokens\n", heads, D, nseq, total);
        const char *names[] = {"v0 naive", "v1 flash-mma"};
        for (int v = 0; v < 2; v++) {
            CK(cudaMemset(dout, 0xff, ref.size() * 2));
            if (v == 0) v0(); else v1();
            CK(cudaDeviceSynchronize());
            if (!validate(names[v], down(dout, ref.size()), ref, 1e-2f)) { fails++; continue; }
            float ms = v == 0 ? time_ms(v0, 3) : time_ms(v1, 20);
            double tf = flops / (ms * 1e-3) / 1e12;
            printf("  %-14s %8.3f ms  %7.1f TFLOP/s  %5.1f%% of peak\n", names[v], ms, tf,
                   peak_tflops > 0 ? 100 * tf / peak_tflops : 0.0);
        }
        cudaFree(dq); cudaFree(dout); cudaFree(dcu);
    }

    /* Bias + residual + LayerNorm over a 16k-token batch at hidden 768. */
    {
        const int rows = quick ? 2048 : 16384, dim = 768;
        std::vector<float> x((size_t)rows * dim), res(x.size()), bias(dim), g(dim), b(dim);
        for (auto *v : {&x, &res, &bias, &g, &b}) {
            for (auto &e : *v) e = frand();
            round_f16(*v);
        }
        std::vector<float> ref = x;
        cpu_bias_residual_layernorm(ref.data(), bias.data(), res.data(), g.data(), b.data(), rows, dim, 1e-12f);
        __half *dx = up(x), *dres = up(res), *dbias = up(bias), *dg = up(g), *db = up(b), *dwork;
        CK(cudaMalloc(&dwork, x.size() * 2));
        auto v0 = [&] { ln_v0<<<(rows + 127) / 128, 128>>>(dwork, dbias, dres, dg, db, rows, dim, 1e-12f); };
        auto v1 = [&] {
            CK(emb_launch_bias_residual_layernorm(dwork, EMB_KDT_F16, dwork, dbias, dres, dg, db, rows, dim,
                                                  1e-12f, 0));
        };
        const double bytes = 3.0 * rows * dim * 2;   /* read x, residual; write out */
        printf("bias+residual+LayerNorm f16 rows=%d dim=%d\n", rows, dim);
        const char *names[] = {"v0 thread/row", "v1 cta/row"};
        for (int v = 0; v < 2; v++) {
            CK(cudaMemcpy(dwork, dx, x.size() * 2, cudaMemcpyDeviceToDevice));
            if (v == 0) v0(); else v1();
            CK(cudaDeviceSynchronize());
            if (!validate(names[v], down(dwork, x.size()), ref, 8e-3f)) { fails++; continue; }
            /* Timed in place on already-normalized rows: same traffic. */
            float ms = time_ms(v == 0 ? std::function<void()>(v0) : std::function<void()>(v1), 20);
            double gbs = bytes / (ms * 1e-3) / 1e9;
            printf("  %-14s %8.3f ms  %7.1f GB/s     %5.1f%% of peak\n", names[v], ms, gbs,
                   peak_gbs > 0 ? 100 * gbs / peak_gbs : 0.0);
        }
        cudaFree(dx); cudaFree(dres); cudaFree(dbias); cudaFree(dg); cudaFree(db); cudaFree(dwork);
    }
    return fails ? 1 : 0;
}
