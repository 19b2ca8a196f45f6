/*
 * The CPU twins (host/cpu/cpu_ops.c) against naive implementations written here:
 * plain loops, double accumulation, on random non-zero inputs of awkward
 * sizes. Outputs are poisoned with NaN first, so an element that was never
 * written fails the comparison.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cpu_ops.h"
#include "npy.h"
#include "test_support.h"

/* ---- helpers ---------------------------------------------------------- */

static uint64_t rng_state;

static void rng_seed(uint64_t s) { rng_state = s * 0x9E3779B97F4A7C15ull + 1; }

/* Uniform in [lo, hi), never exactly zero. */
static float rnd(float lo, float hi) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    float u = (float)((rng_state >> 11) * (1.0 / 9007199254740992.0));
    float v = lo + (hi - lo) * u;
    return v == 0.0f ? 1e-3f : v;
}

static float *rnd_array(size_t n, float lo, float hi) {
    float *p = malloc(n * sizeof *p);
    cr_assert(p);
    for (size_t i = 0; i < n; i++) p[i] = rnd(lo, hi);
    return p;
}

static float *poisoned(size_t n) {
    float *p = malloc((n ? n : 1) * sizeof *p);
    cr_assert(p);
    for (size_t i = 0; i < n; i++) p[i] = NAN;
    return p;
}

static double *dalloc(size_t n) {
    double *p = calloc(n ? n : 1, sizeof *p);
    cr_assert(p);
    return p;
}

/* |got - want| <= atol + rtol |want| for every element (NaN fails). */
static void expect_close(const char *what, const float *got, const double *want, size_t n,
                         double atol, double rtol) {
    size_t bad = 0, first = 0;
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        int ok = !isnan(got[i]) && (d <= atol + rtol * fabs(want[i]) ||
                                    (isinf(want[i]) && got[i] == want[i]));
        if (!ok) {
            if (!bad) first = i;
            bad++;
        }
        if (!isnan(d) && d > worst && !isinf(want[i])) worst = d;
    }
    cr_expect(bad == 0, "%s: %zu of %zu elements off (first [%zu]: got %.9g want %.9g), max |d| %.3g",
              what, bad, n, first, bad ? got[first] : 0.0, bad ? want[first] : 0.0, worst);
}

static int32_t *make_cu(const int *lens, int nseq) {
    int32_t *cu = malloc((size_t)(nseq + 1) * sizeof *cu);
    cr_assert(cu);
    cu[0] = 0;
    for (int s = 0; s < nseq; s++) cu[s + 1] = cu[s] + lens[s];
    return cu;
}

static double act_ref(double x, emb_act act) {
    switch (act) {
    case EMB_ACT_IDENTITY: return x;
    case EMB_ACT_GELU: return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
    case EMB_ACT_GELU_TANH:
        return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
    case EMB_ACT_RELU: return x > 0 ? x : 0;
    case EMB_ACT_SILU: return x / (1.0 + exp(-x));
    case EMB_ACT_TANH: return tanh(x);
    case EMB_ACT_SIGMOID: return 1.0 / (1.0 + exp(-x));
    }
    return x;
}

static const emb_act ALL_ACTS[] = {EMB_ACT_IDENTITY, EMB_ACT_GELU, EMB_ACT_GELU_TANH,
                                   EMB_ACT_RELU,     EMB_ACT_SILU, EMB_ACT_TANH,
                                   EMB_ACT_SIGMOID};

static void layernorm_ref(double *x, const float *g, const float *b, int dim, double eps) {
    double mean = 0, var = 0;
    for (int c = 0; c < dim; c++) mean += x[c];
    mean /= dim;
    for (int c = 0; c < dim; c++) var += (x[c] - mean) * (x[c] - mean);
    var /= dim;
    for (int c = 0; c < dim; c++) x[c] = (x[c] - mean) / sqrt(var + eps) * g[c] + b[c];
}

/* ---- embeddings + LayerNorm ------------------------------------------- */

static void check_embed(const int *lens, int nseq, int hidden, int with_types) {
    const int vocab = 97, maxpos = 600, ntypes = 2;
    const float eps = 1e-12f;
    int32_t *cu = make_cu(lens, nseq);
    const int total = cu[nseq];
    int32_t *ids = malloc((size_t)total * sizeof *ids), *types = malloc((size_t)total * sizeof *types);
    for (int t = 0; t < total; t++) {
        ids[t] = (int32_t)(rnd(0, 1) * vocab) % vocab;
        types[t] = (int32_t)(rnd(0, 1) * ntypes) % ntypes;
    }
    float *word = rnd_array((size_t)vocab * hidden, -1, 1);
    float *pos = rnd_array((size_t)maxpos * hidden, -1, 1);
    float *tt = rnd_array((size_t)ntypes * hidden, -1, 1);
    float *g = rnd_array(hidden, 0.5f, 1.5f), *b = rnd_array(hidden, -0.5f, 0.5f);
    float *out = poisoned((size_t)total * hidden);
    double *want = dalloc((size_t)total * hidden);

    cpu_embed_layernorm(out, ids, with_types ? types : NULL, cu, nseq, word, pos, tt, g, b,
                        hidden, eps);
    for (int s = 0; s < nseq; s++)
        for (int p = 0; p < lens[s]; p++) {
            int t = cu[s] + p, ty = with_types ? types[t] : 0;
            double *w = want + (size_t)t * hidden;
            for (int c = 0; c < hidden; c++)
                w[c] = (double)word[(size_t)ids[t] * hidden + c] + pos[(size_t)p * hidden + c] +
                       tt[(size_t)ty * hidden + c];
            layernorm_ref(w, g, b, hidden, eps);
        }
    char what[64];
    snprintf(what, sizeof what, "embed nseq=%d hidden=%d", nseq, hidden);
    expect_close(what, out, want, (size_t)total * hidden, 1e-5, 1e-5);
    free(cu), free(ids), free(types), free(word), free(pos), free(tt), free(g), free(b);
    free(out), free(want);
}

Test(cpu_ops, embed_layernorm) {
    rng_seed(1);
    const int lens[] = {1, 31, 33, 127, 513};
    check_embed(lens, 5, 384, 1);
    check_embed(lens, 5, 33, 0);
    const int one[] = {1};
    check_embed(one, 1, 768, 1);
    const int with_empty[] = {3, 0, 5};
    check_embed(with_empty, 3, 31, 1);
}

/* ---- norms ------------------------------------------------------------ */

static void check_brln(int rows, int dim, int use_bias, int use_res) {
    const float eps = 1e-5f;
    float *x = rnd_array((size_t)rows * dim, -2, 2);
    float *res = rnd_array((size_t)rows * dim, -2, 2);
    float *bias = rnd_array(dim, -1, 1);
    float *g = rnd_array(dim, 0.5f, 1.5f), *b = rnd_array(dim, -0.5f, 0.5f);
    double *want = dalloc((size_t)rows * dim);
    for (int r = 0; r < rows; r++) {
        double *w = want + (size_t)r * dim;
        for (int c = 0; c < dim; c++)
            w[c] = (double)x[(size_t)r * dim + c] + (use_bias ? bias[c] : 0) +
                   (use_res ? res[(size_t)r * dim + c] : 0);
        layernorm_ref(w, g, b, dim, eps);
    }
    cpu_bias_residual_layernorm(x, use_bias ? bias : NULL, use_res ? res : NULL, g, b, rows, dim,
                                eps);
    char what[80];
    snprintf(what, sizeof what, "bias_residual_layernorm %dx%d bias=%d res=%d", rows, dim,
             use_bias, use_res);
    expect_close(what, x, want, (size_t)rows * dim, 1e-5, 1e-5);
    free(x), free(res), free(bias), free(g), free(b), free(want);
}

Test(cpu_ops, bias_residual_layernorm) {
    rng_seed(2);
    const int rows[] = {1, 31, 33, 127, 513}, dims[] = {31, 384, 1024};
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 3; j++) check_brln(rows[i], dims[j], (i + j) % 2, 1);
    check_brln(33, 384, 1, 0);
    check_brln(33, 384, 0, 0);
}

static void check_rmsnorm(int rows, int dim, int use_res) {
    const float eps = 1e-6f;
    float *x = rnd_array((size_t)rows * dim, -2, 2), *res = rnd_array((size_t)rows * dim, -2, 2);
    float *g = rnd_array(dim, 0.5f, 1.5f);
    double *want = dalloc((size_t)rows * dim);
    for (int r = 0; r < rows; r++) {
        double *w = want + (size_t)r * dim, ss = 0;
        for (int c = 0; c < dim; c++) {
            w[c] = (double)x[(size_t)r * dim + c] + (use_res ? res[(size_t)r * dim + c] : 0);
            ss += w[c] * w[c];
        }
        for (int c = 0; c < dim; c++) w[c] = w[c] / sqrt(ss / dim + eps) * g[c];
    }
    cpu_rmsnorm(x, use_res ? res : NULL, g, rows, dim, eps);
    expect_close("rmsnorm", x, want, (size_t)rows * dim, 1e-5, 1e-5);
    free(x), free(res), free(g), free(want);
}

Test(cpu_ops, rmsnorm) {
    rng_seed(3);
    check_rmsnorm(1, 31, 0);
    check_rmsnorm(33, 384, 1);
    check_rmsnorm(513, 1024, 1);
    check_rmsnorm(127, 33, 0);
}

Test(cpu_ops, l2_normalize) {
    rng_seed(4);
    const int rows = 5, dim = 33;
    float *x = rnd_array((size_t)rows * dim, -3, 3);
    for (int c = 0; c < dim; c++) x[2 * dim + c] = 0.0f; /* a zero row stays zero */
    double *want = dalloc((size_t)rows * dim);
    for (int r = 0; r < rows; r++) {
        double ss = 0;
        for (int c = 0; c < dim; c++) ss += (double)x[r * dim + c] * x[r * dim + c];
        double n = fmax(sqrt(ss), 1e-12);
        for (int c = 0; c < dim; c++) want[r * dim + c] = x[r * dim + c] / n;
    }
    cpu_l2_normalize(x, rows, dim);
    expect_close("l2_normalize", x, want, (size_t)rows * dim, 1e-7, 1e-6);
    for (int c = 0; c < dim; c++) cr_expect(x[2 * dim + c] == 0.0f);
    free(x), free(want);
}

/* ---- elementwise ------------------------------------------------------ */

Test(cpu_ops, bias_act_every_activation) {
    rng_seed(5);
    const int rows = 33, cols = 513;
    for (size_t a = 0; a < sizeof ALL_ACTS / sizeof *ALL_ACTS; a++)
        for (int use_bias = 0; use_bias < 2; use_bias++) {
            float *x = rnd_array((size_t)rows * cols, -6, 6), *bias = rnd_array(cols, -1, 1);
            double *want = dalloc((size_t)rows * cols);
            for (int r = 0; r < rows; r++)
                for (int c = 0; c < cols; c++)
                    want[r * cols + c] =
                        act_ref((double)x[r * cols + c] + (use_bias ? bias[c] : 0), ALL_ACTS[a]);
            cpu_bias_act(x, use_bias ? bias : NULL, rows, cols, ALL_ACTS[a]);
            char what[64];
            snprintf(what, sizeof what, "bias_act act=%d bias=%d", (int)ALL_ACTS[a], use_bias);
            expect_close(what, x, want, (size_t)rows * cols, 1e-6, 1e-5);
            free(x), free(bias), free(want);
        }
}

Test(cpu_ops, gated_act) {
    rng_seed(6);
    const int rows = 31, cols = 127;
    for (size_t a = 0; a < sizeof ALL_ACTS / sizeof *ALL_ACTS; a++) {
        float *x = rnd_array((size_t)rows * 2 * cols, -4, 4), *out = poisoned((size_t)rows * cols);
        double *want = dalloc((size_t)rows * cols);
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++)
                want[r * cols + c] = act_ref(x[(size_t)r * 2 * cols + c], ALL_ACTS[a]) *
                                     x[(size_t)r * 2 * cols + cols + c];
        cpu_gated_act(out, x, rows, cols, ALL_ACTS[a]);
        expect_close("gated_act", out, want, (size_t)rows * cols, 1e-6, 1e-5);
        free(x), free(out), free(want);
    }
}

/* ---- linear ----------------------------------------------------------- */

static void check_linear(int rows, int in, int out, int use_bias) {
    float *x = rnd_array((size_t)rows * in, -1, 1), *w = rnd_array((size_t)out * in, -1, 1);
    float *b = rnd_array(out, -1, 1), *y = poisoned((size_t)rows * out);
    double *want = dalloc((size_t)rows * out);
    for (int r = 0; r < rows; r++)
        for (int o = 0; o < out; o++) {
            double acc = use_bias ? b[o] : 0;
            for (int i = 0; i < in; i++) acc += (double)x[(size_t)r * in + i] * w[(size_t)o * in + i];
            want[(size_t)r * out + o] = acc;
        }
    cpu_linear(y, x, w, use_bias ? b : NULL, rows, in, out);
    char what[64];
    snprintf(what, sizeof what, "linear %dx%d->%d bias=%d", rows, in, out, use_bias);
    /* fp32 dot products of `in` terms: error grows like sqrt(in) ulps. */
    expect_close(what, y, want, (size_t)rows * out, 2e-6 * sqrt((double)in), 1e-5);
    free(x), free(w), free(b), free(y), free(want);
}

Test(cpu_ops, linear) {
    rng_seed(7);
    const int rows[] = {1, 31, 33, 127, 513};
    for (int i = 0; i < 5; i++) {
        check_linear(rows[i], 384, 1536, i % 2);
        check_linear(rows[i], 31, 33, !(i % 2));
    }
    check_linear(33, 1536, 384, 1);
}

/* ---- attention -------------------------------------------------------- */

static void attention_ref(double *out, const float *qkv, const int32_t *cu, int nseq, int heads,
                          int hd, double scale, int causal) {
    const size_t ld = (size_t)3 * heads * hd;
    for (int s = 0; s < nseq; s++) {
        int start = cu[s], len = cu[s + 1] - start;
        double *p = dalloc((size_t)len);
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < len; i++) {
                const float *q = qkv + (size_t)(start + i) * ld + (size_t)h * hd;
                int nk = causal ? i + 1 : len;
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j < nk; j++) {
                    const float *k = qkv + (size_t)(start + j) * ld + (size_t)(heads + h) * hd;
                    double d = 0;
                    for (int c = 0; c < hd; c++) d += (double)q[c] * k[c];
                    p[j] = d * scale;
                    mx = fmax(mx, p[j]);
                }
                for (int j = 0; j < nk; j++) sum += (p[j] = exp(p[j] - mx));
                double *o = out + (size_t)(start + i) * heads * hd + (size_t)h * hd;
                for (int c = 0; c < hd; c++) {
                    double acc = 0;
                    for (int j = 0; j < nk; j++)
                        acc += p[j] * qkv[(size_t)(start + j) * ld + (size_t)(2 * heads + h) * hd + c];
                    o[c] = acc / sum;
                }
            }
        free(p);
    }
}

static void check_attention(const int *lens, int nseq, int heads, int hd, int causal) {
    int32_t *cu = make_cu(lens, nseq);
    const int total = cu[nseq];
    /* Spread of +-2 gives peaky softmaxes at head_dim 64, flat ones at 32. */
    float *qkv = rnd_array((size_t)total * 3 * heads * hd, -2, 2);
    float *out = poisoned((size_t)total * heads * hd);
    double *want = dalloc((size_t)total * heads * hd);
    const float scale = 1.0f / sqrtf((float)hd);
    cpu_attention_varlen(out, qkv, cu, nseq, heads, hd, scale, causal);
    attention_ref(want, qkv, cu, nseq, heads, hd, scale, causal);
    char what[80];
    snprintf(what, sizeof what, "attention nseq=%d heads=%d hd=%d causal=%d", nseq, heads, hd,
             causal);
    expect_close(what, out, want, (size_t)total * heads * hd, 1e-5, 1e-5);
    free(cu), free(qkv), free(out), free(want);
}

Test(cpu_ops, attention_packed) {
    rng_seed(8);
    const int lens[] = {1, 31, 33, 127, 513};
    for (int causal = 0; causal < 2; causal++) {
        check_attention(lens, 5, 12, 32, causal);
        check_attention(lens, 5, 6, 64, causal);
    }
}

Test(cpu_ops, attention_single_sequences) {
    rng_seed(9);
    const int lens[] = {1, 31, 33, 127, 513};
    for (int i = 0; i < 5; i++)
        for (int causal = 0; causal < 2; causal++) check_attention(&lens[i], 1, 6, 64, causal);
}

Test(cpu_ops, attention_packing_is_invisible) {
    /* The same sequences packed together or run one by one: identical bits,
     * since each (sequence, head) block does exactly the same arithmetic. */
    rng_seed(10);
    const int lens[] = {33, 1, 127}, heads = 12, hd = 32, ld = 3 * heads * hd;
    int32_t *cu = make_cu(lens, 3);
    float *qkv = rnd_array((size_t)cu[3] * ld, -2, 2);
    float *packed = poisoned((size_t)cu[3] * heads * hd);
    cpu_attention_varlen(packed, qkv, cu, 3, heads, hd, 0.17f, 0);
    for (int s = 0; s < 3; s++) {
        int32_t one[2] = {0, lens[s]};
        float *alone = poisoned((size_t)lens[s] * heads * hd);
        cpu_attention_varlen(alone, qkv + (size_t)cu[s] * ld, one, 1, heads, hd, 0.17f, 0);
        cr_expect(memcmp(alone, packed + (size_t)cu[s] * heads * hd,
                         (size_t)lens[s] * heads * hd * sizeof(float)) == 0,
                  "sequence %d differs packed vs alone", s);
        free(alone);
    }
    free(cu), free(qkv), free(packed);
}

/* ---- attention with grouped heads, windows, bias, softcap ------------- */

/* The contract of cpu_attention written out literally: every (query, key)
 * pair, the mask as a condition, double accumulation. */
static void gqa_ref(double *out, const float *qkv, const int32_t *cu, int nseq,
                    const cpu_attn_params *p) {
    const int H = p->heads, KV = p->kv_heads, hd = p->head_dim;
    const size_t ld = (size_t)(H + 2 * KV) * hd;
    for (int s = 0; s < nseq; s++) {
        int start = cu[s], len = cu[s + 1] - start;
        double *w = dalloc((size_t)len);
        for (int h = 0; h < H; h++) {
            const int kvh = h / (H / KV);
            for (int i = 0; i < len; i++) {
                const float *q = qkv + (size_t)(start + i) * ld + (size_t)h * hd;
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j < len; j++) {
                    int vis = (p->window_left < 0 || j >= i - p->window_left) &&
                              (p->window_right < 0 || j <= i + p->window_right);
                    if (!vis) {
                        w[j] = -INFINITY;
                        continue;
                    }
                    const float *k = qkv + (size_t)(start + j) * ld + (size_t)(H + kvh) * hd;
                    double d = 0;
                    for (int c = 0; c < hd; c++) d += (double)q[c] * k[c];
                    d *= p->scale;
                    if (p->rel_bias)
                        d += p->rel_bias[(size_t)h * (2 * p->rel_span - 1) +
                                         (size_t)(j - i + p->rel_span - 1)];
                    if (p->softcap > 0) d = p->softcap * tanh(d / p->softcap);
                    w[j] = d;
                    mx = fmax(mx, d);
                }
                for (int j = 0; j < len; j++) sum += (w[j] = isinf(w[j]) ? 0.0 : exp(w[j] - mx));
                double *o = out + (size_t)(start + i) * H * hd + (size_t)h * hd;
                for (int c = 0; c < hd; c++) {
                    double acc = 0;
                    for (int j = 0; j < len; j++)
                        acc += w[j] * qkv[(size_t)(start + j) * ld + (size_t)(H + KV + kvh) * hd + c];
                    o[c] = acc / sum;
                }
            }
        }
        free(w);
    }
}

static void check_gqa(const int *lens, int nseq, cpu_attn_params p, int with_bias) {
    int32_t *cu = make_cu(lens, nseq);
    const int total = cu[nseq], hd = p.head_dim;
    int maxlen = 1;
    for (int s = 0; s < nseq; s++) maxlen = lens[s] > maxlen ? lens[s] : maxlen;
    float *qkv = rnd_array((size_t)total * (p.heads + 2 * p.kv_heads) * hd, -2, 2);
    float *bias = NULL;
    if (with_bias) {
        p.rel_span = maxlen + 3; /* any span >= the longest sequence */
        bias = rnd_array((size_t)p.heads * (2 * p.rel_span - 1), -3, 3);
        p.rel_bias = bias;
    }
    float *out = poisoned((size_t)total * p.heads * hd);
    double *want = dalloc((size_t)total * p.heads * hd);
    cpu_attention(out, qkv, cu, nseq, &p);
    gqa_ref(want, qkv, cu, nseq, &p);
    char what[160];
    snprintf(what, sizeof what,
             "attention heads=%d kv=%d hd=%d window=(%d,%d) softcap=%g bias=%d", p.heads,
             p.kv_heads, hd, p.window_left, p.window_right, p.softcap, with_bias);
    expect_close(what, out, want, (size_t)total * p.heads * hd, 2e-5, 2e-5);
    free(cu), free(qkv), free(out), free(want), free(bias);
}

Test(cpu_ops, attention_gqa_mqa_every_head_dim) {
    rng_seed(21);
    const int lens[] = {1, 31, 133, 70};
    const int hds[] = {16, 32, 64, 80, 96, 128, 256};
    for (int d = 0; d < 7; d++) {
        const int heads = 4;
        const int kvs[] = {1, heads / 2, heads};
        for (int k = 0; k < 3; k++) {
            cpu_attn_params p = {.heads = heads, .kv_heads = kvs[k], .head_dim = hds[d],
                                 .scale = 1.0f / sqrtf((float)hds[d]), .window_left = -1,
                                 .window_right = (k == 1) ? 0 : -1};
            check_gqa(lens, 4, p, 0);
        }
    }
}

Test(cpu_ops, attention_windows) {
    /* Windows narrower and wider than the query block (128), one-sided and
     * symmetric, on sequences shorter and longer than the window. */
    rng_seed(22);
    const int lens[] = {5, 300, 1, 129};
    const int win[][2] = {{0, 0}, {3, 3}, {64, 64}, {4095, 0}, {15, 0}, {-1, 7}, {200, -1},
                          {130, 130}};
    for (int w = 0; w < 8; w++) {
        cpu_attn_params p = {.heads = 6, .kv_heads = 2, .head_dim = 64, .scale = 0.125f,
                             .window_left = win[w][0], .window_right = win[w][1]};
        check_gqa(lens, 4, p, 0);
    }
}

Test(cpu_ops, attention_rel_bias_and_softcap) {
    rng_seed(23);
    const int lens[] = {17, 140, 2};
    cpu_attn_params p = {.heads = 3, .kv_heads = 3, .head_dim = 32, .scale = 0.25f,
                         .window_left = -1, .window_right = -1};
    check_gqa(lens, 3, p, 1);                       /* relative bias (MPNet, T5) */
    p.softcap = 5.0f;
    check_gqa(lens, 3, p, 0);                       /* softcap alone (Gemma 2) */
    p.kv_heads = 1, p.window_left = 20, p.window_right = 0;
    check_gqa(lens, 3, p, 1);                       /* everything at once */
}

Test(cpu_ops, attention_varlen_is_the_full_or_causal_case) {
    rng_seed(24);
    const int lens[] = {40, 9};
    int32_t *cu = make_cu(lens, 2);
    const int heads = 2, hd = 32, n = cu[2] * heads * hd;
    float *qkv = rnd_array((size_t)cu[2] * 3 * heads * hd, -2, 2);
    float *a = poisoned((size_t)n), *b = poisoned((size_t)n);
    for (int causal = 0; causal < 2; causal++) {
        cpu_attention_varlen(a, qkv, cu, 2, heads, hd, 0.3f, causal);
        cpu_attn_params p = {.heads = heads, .kv_heads = heads, .head_dim = hd, .scale = 0.3f,
                             .window_left = -1, .window_right = causal ? 0 : -1};
        cpu_attention(b, qkv, cu, 2, &p);
        cr_expect(memcmp(a, b, (size_t)n * sizeof *a) == 0, "causal=%d", causal);
    }
    free(cu), free(qkv), free(a), free(b);
}

/* ---- rotary ----------------------------------------------------------- */

/* transformers' LlamaRotaryEmbedding + apply_rotary_pos_emb in float32
 * (tools/make-rotary-golden) on exactly representable inputs. */
Test(cpu_ops, rotary_matches_transformers) {
    char *mpath = ts_src_path("tests/golden/rotary/manifest.json");
    char *mtext = ts_read_file(mpath, NULL);
    cr_assert(mtext, "cannot read %s", mpath);
    cJSON *m = cJSON_Parse(mtext);
    cr_assert(cJSON_IsArray(m));
    int ncases = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, m) {
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        const int heads = cJSON_GetObjectItem(c, "heads")->valueint;
        const int kv = cJSON_GetObjectItem(c, "kv_heads")->valueint;
        const int hd = cJSON_GetObjectItem(c, "head_dim")->valueint;
        const int rot = cJSON_GetObjectItem(c, "rotary_dim")->valueint;
        const float theta = (float)cJSON_GetObjectItem(c, "theta")->valuedouble;
        const cJSON *jl = cJSON_GetObjectItem(c, "lens"), *jt = cJSON_GetObjectItem(c, "tokens");
        int lens[8], nseq = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, jl) lens[nseq++] = e->valueint;
        int32_t *cu = make_cu(lens, nseq);
        const int total = cu[nseq], ncol = (heads + 2 * kv) * hd;
        float *qkv = malloc((size_t)total * ncol * sizeof *qkv);
        cr_assert(qkv);
        for (int t = 0; t < total; t++)
            for (int h = 0; h < heads + 2 * kv; h++)
                for (int d = 0; d < hd; d++)
                    qkv[(size_t)t * ncol + h * hd + d] =
                        (float)(((7 * t + 5 * h + 13 * d) % 17) - 8) / 4.0f;
        cpu_rotary(qkv, cu, nseq, heads, kv, hd, rot, theta, NULL);

        char rel[128];
        snprintf(rel, sizeof rel, "tests/golden/rotary/%s.npy", name);
        char *gpath = ts_src_path(rel);
        size_t rows, cols;
        float *gold = npy_load(gpath, &rows, &cols);
        cr_assert(gold, "cannot read %s", gpath);
        cr_assert_eq(cols, (size_t)hd);
        size_t r = 0;
        cJSON_ArrayForEach(e, jt) {
            const int t = e->valueint;
            for (int h = 0; h < heads + kv; h++, r++) {
                cr_assert(r < rows);
                double want[512];
                for (int d = 0; d < hd; d++) want[d] = gold[r * cols + d];
                char what[96];
                snprintf(what, sizeof what, "rotary %s token %d head %d", name, t, h);
                /* float32 cos/sin of angles up to ~8000 rad: a few ulp of the angle. */
                expect_close(what, qkv + (size_t)t * ncol + h * hd, want, (size_t)hd, 2e-5, 2e-5);
            }
            /* V heads are not rotated. */
            for (int h = heads + kv; h < heads + 2 * kv; h++)
                for (int d = 0; d < hd; d++)
                    cr_expect_eq(qkv[(size_t)t * ncol + h * hd + d],
                                 (float)(((7 * t + 5 * h + 13 * d) % 17) - 8) / 4.0f);
        }
        cr_expect_eq(r, rows);
        free(gold), free(gpath), free(qkv), free(cu);
        ncases++;
    }
    cr_expect_eq(ncases, 4);
    cJSON_Delete(m);
    free(mtext), free(mpath);
}

/* ---- pooling ---------------------------------------------------------- */

/* Straight from sentence-transformers 6.x Pooling._forward_padded with the
 * first skip tokens' attention mask zeroed: a mask array, then each mode. */
static void pool_ref(double *out, const float *hidden, const int32_t *cu, int nseq, int dim,
                     int modes, const int32_t *skip) {
    int nm = __builtin_popcount((unsigned)modes);
    for (int s = 0; s < nseq; s++) {
        int start = cu[s], len = cu[s + 1] - start;
        int *mask = malloc((size_t)(len ? len : 1) * sizeof *mask);
        int first = -1, last = -1;
        double count = 0, wsum = 0;
        for (int t = 0; t < len; t++) {
            mask[t] = !(skip && t < skip[s]);
            if (mask[t]) {
                if (first < 0) first = t;
                last = t;
                count += 1;
                wsum += t + 1;
            }
        }
        double *o = out + (size_t)s * dim * nm;
        const float *h = hidden + (size_t)start * dim;
        for (int c = 0; c < dim; c++) {
            double *oc = o + c;
            double mx = -INFINITY, sum = 0, wsm = 0;
            for (int t = 0; t < len; t++)
                if (mask[t]) {
                    double v = h[(size_t)t * dim + c];
                    mx = fmax(mx, v);
                    sum += v;
                    wsm += (t + 1) * v;
                }
            if (modes & EMB_POOL_CLS) *oc = h[(size_t)(first < 0 ? 0 : first) * dim + c], oc += dim;
            if (modes & EMB_POOL_MAX) *oc = mx, oc += dim;
            if (modes & EMB_POOL_MEAN) *oc = sum / fmax(count, 1e-9), oc += dim;
            if (modes & EMB_POOL_MEAN_SQRT_LEN) *oc = sum / sqrt(fmax(count, 1e-9)), oc += dim;
            if (modes & EMB_POOL_WEIGHTED_MEAN) *oc = wsm / fmax(wsum, 1e-9), oc += dim;
            if (modes & EMB_POOL_LAST_TOKEN) *oc = last < 0 ? 0.0 : h[(size_t)last * dim + c];
        }
        free(mask);
    }
}

static void check_pool(const int *lens, int nseq, int dim, int modes, const int32_t *skip,
                       float lo, float hi) {
    int32_t *cu = make_cu(lens, nseq);
    int nm = __builtin_popcount((unsigned)modes);
    float *hidden = rnd_array((size_t)cu[nseq] * dim, lo, hi);
    float *out = poisoned((size_t)nseq * dim * nm);
    double *want = dalloc((size_t)nseq * dim * nm);
    cpu_pool(out, hidden, cu, nseq, dim, modes, skip);
    pool_ref(want, hidden, cu, nseq, dim, modes, skip);
    char what[64];
    snprintf(what, sizeof what, "pool modes=0x%x dim=%d skip=%s", modes, dim, skip ? "yes" : "no");
    expect_close(what, out, want, (size_t)nseq * dim * nm, 1e-6, 1e-5);
    free(cu), free(hidden), free(out), free(want);
}

static const int POOL_LENS[] = {1, 31, 33, 127, 513};

Test(cpu_ops, pool_each_mode) {
    rng_seed(11);
    for (int m = EMB_POOL_CLS; m <= EMB_POOL_LAST_TOKEN; m <<= 1) {
        check_pool(POOL_LENS, 5, 384, m, NULL, -1, 1);
        check_pool(POOL_LENS, 5, 31, m, NULL, -1, 1);
    }
}

Test(cpu_ops, pool_several_modes_concatenated) {
    rng_seed(12);
    const int all = EMB_POOL_CLS | EMB_POOL_MAX | EMB_POOL_MEAN | EMB_POOL_MEAN_SQRT_LEN |
                    EMB_POOL_WEIGHTED_MEAN | EMB_POOL_LAST_TOKEN;
    check_pool(POOL_LENS, 5, 64, all, NULL, -1, 1);
    check_pool(POOL_LENS, 5, 33, EMB_POOL_CLS | EMB_POOL_MEAN, NULL, -1, 1);
    check_pool(POOL_LENS, 5, 33, EMB_POOL_MAX | EMB_POOL_WEIGHTED_MEAN | EMB_POOL_LAST_TOKEN,
               NULL, -1, 1);
}

Test(cpu_ops, pool_skip_prompt) {
    rng_seed(13);
    const int all = EMB_POOL_CLS | EMB_POOL_MAX | EMB_POOL_MEAN | EMB_POOL_MEAN_SQRT_LEN |
                    EMB_POOL_WEIGHTED_MEAN | EMB_POOL_LAST_TOKEN;
    /* skip inside the sequence, equal to its length, and beyond it: the
     * last two leave nothing to pool (max -inf, means and lasttoken 0). */
    const int32_t skip[] = {0, 5, 33, 200, 7};
    check_pool(POOL_LENS, 5, 48, all, skip, -1, 1);
    for (int m = EMB_POOL_CLS; m <= EMB_POOL_LAST_TOKEN; m <<= 1)
        check_pool(POOL_LENS, 5, 31, m, skip, -1, 1);

    /* Spot-check the empty cases against their literal values. */
    const int lens[] = {3};
    const int32_t sk[] = {3};
    int32_t cu[] = {0, 3};
    float hidden[3 * 2] = {1, 2, 3, 4, 5, 6}, out[6 * 2];
    cpu_pool(out, hidden, cu, 1, 2, all, sk);
    (void)lens;
    cr_expect(out[0] == 1 && out[1] == 2, "cls of an all-prompt sequence is token 0");
    cr_expect(isinf(out[2]) && out[2] < 0 && isinf(out[3]), "max of nothing is -inf");
    for (int i = 4; i < 12; i++) cr_expect(out[i] == 0.0f, "out[%d] = %g, want 0", i, out[i]);
}

Test(cpu_ops, pool_one_token_and_all_negative_max) {
    rng_seed(14);
    const int all = EMB_POOL_CLS | EMB_POOL_MAX | EMB_POOL_MEAN | EMB_POOL_MEAN_SQRT_LEN |
                    EMB_POOL_WEIGHTED_MEAN | EMB_POOL_LAST_TOKEN;
    const int one[] = {1};
    check_pool(one, 1, 384, all, NULL, -1, 1);
    /* All-negative values: max must not be clamped at 0 (or -1e9). */
    check_pool(POOL_LENS, 5, 33, EMB_POOL_MAX, NULL, -5, -0.5f);
    const int32_t skip[] = {0, 1, 2, 3, 4};
    check_pool(POOL_LENS, 5, 33, EMB_POOL_MAX, skip, -5, -0.5f);
}
