/*
 * Every CUDA kernel against its CPU twin (host/cpu/cpu_ops.h) on random non-zero
 * inputs of awkward sizes (1, 31, 33, 127, 513 tokens; the head counts and
 * widths of the real models), with outputs poisoned before each launch and
 * every element checked written. Under the simulator each launch is repeated
 * in forward, reverse and shuffled thread/block order and must give
 * bit-identical results; on a real GPU (tools/gpu-check) the same checks run
 * once on the device.
 */
#include <stdio.h>

#include "kt_util.h"
#include "cpu_ops.h"
#include "cuda_backend.h"

TestSuite(cuda_kernels, .init = kt_need_device);

static const emb_kdtype DTS[] = {EMB_KDT_F16, EMB_KDT_BF16};
/* The dtypes the loops below run: both, except under ThreadSanitizer
 * (KT_CR_SHIM), where f16 alone stands for them. A kernel synchronises the
 * same way whatever it loads, TSan's happens-before analysis costs ~10x per
 * access, and the plain simulator suite checks both dtypes' values. */
#ifdef KT_CR_SHIM
#define NDTS 1
#else
#define NDTS 2
#endif
static const char *dt_name(emb_kdtype dt) {
    return dt == EMB_KDT_F16 ? "f16" : dt == EMB_KDT_BF16 ? "bf16" : "f32";
}

/* cu_seqlens for the given lengths. */
static int32_t *make_cu(const int *lens, int n, int *total, int *maxlen) {
    int32_t *cu = malloc(((size_t)n + 1) * sizeof *cu);
    cu[0] = 0;
    *maxlen = 0;
    for (int i = 0; i < n; i++) {
        cu[i + 1] = cu[i] + lens[i];
        if (lens[i] > *maxlen) *maxlen = lens[i];
    }
    *total = cu[n];
    return cu;
}

static const int AWKWARD[] = {1, 31, 33, 127, 513};
#define NAWK 5

/* ---- embedding + LayerNorm ---------------------------------------------- */

typedef struct {
    void *out;
    emb_kdtype dt;
    int32_t *ids, *types, *cu;
    int nseq, total, hidden;
    void *word, *pos, *tt, *g, *b;
} embed_args;

static void embed_launch(void *ud) {
    embed_args *a = ud;
    kt_poison(a->out, (size_t)a->total * a->hidden * kt_esz(a->dt));
    KT_CHECK(emb_launch_embed_layernorm(a->out, a->dt, a->ids, a->types, a->cu, a->nseq, a->total,
                                        a->word, a->pos, a->tt, a->g, a->b, a->hidden, 1e-12f, 0));
}

Test(cuda_kernels, embed_layernorm) {
    const int hiddens[] = {384, 768};
    for (int di = 0; di < NDTS; di++)
        for (int hi = 0; hi < 2; hi++) {
            emb_kdtype dt = DTS[di];
            int H = hiddens[hi], vocab = 50, maxpos = 520, ntypes = 2, total, maxlen;
            int32_t *cu = make_cu(AWKWARD, NAWK, &total, &maxlen);
            int32_t *ids = malloc((size_t)total * 4), *types = malloc((size_t)total * 4);
            for (int t = 0; t < total; t++) {
                ids[t] = (int)kt_uniform(0, vocab - 0.01f);
                types[t] = t % 3 == 0;
            }
            float *word = kt_rand((size_t)vocab * H, 1.0f, dt), *pos = kt_rand((size_t)maxpos * H, 0.5f, dt);
            float *tt = kt_rand((size_t)ntypes * H, 0.3f, dt), *g = kt_rand(H, 1.5f, dt), *b = kt_rand(H, 0.5f, dt);
            float *ref = malloc((size_t)total * H * sizeof *ref);
            cpu_embed_layernorm(ref, ids, types, cu, NAWK, word, pos, tt, g, b, H, 1e-12f);
            embed_args a = {kt_poisoned((size_t)total * H * 2), dt, kt_upload_bytes(ids, (size_t)total * 4),
                            kt_upload_bytes(types, (size_t)total * 4), kt_upload_bytes(cu, (NAWK + 1) * 4),
                            NAWK, total, H, kt_upload(word, (size_t)vocab * H, dt),
                            kt_upload(pos, (size_t)maxpos * H, dt), kt_upload(tt, (size_t)ntypes * H, dt),
                            kt_upload(g, H, dt), kt_upload(b, H, dt)};
            kt_run_orders(embed_launch, &a, a.out, (size_t)total * H * 2);
            float *got = kt_download(a.out, (size_t)total * H, dt), atol, rtol;
            kt_tol(dt, &atol, &rtol);
            char what[64];
            snprintf(what, sizeof what, "embed_layernorm %s H=%d", dt_name(dt), H);
            kt_compare(what, got, ref, (size_t)total * H, atol, rtol);
            cudaFree(a.out); cudaFree(a.ids); cudaFree(a.types); cudaFree(a.cu); cudaFree(a.word);
            cudaFree(a.pos); cudaFree(a.tt); cudaFree(a.g); cudaFree(a.b);
            free(cu); free(ids); free(types); free(word); free(pos); free(tt); free(g); free(b);
            free(ref); free(got);
        }
}

/* ---- the general embedding (any position rule, scale, norm kind) --------- */

typedef struct {
    void *out;
    emb_kdtype dt;
    int32_t *ids, *types, *pos_ids;
    int total, hidden, norm;
    float scale;
    void *word, *pos, *tt, *g, *b;
} gembed_args;

static void gembed_launch(void *ud) {
    gembed_args *a = ud;
    kt_poison(a->out, (size_t)a->total * a->hidden * kt_esz(a->dt));
    KT_CHECK(emb_launch_embed(a->out, a->dt, a->ids, a->types, a->pos_ids, a->total, a->word, a->scale,
                              a->pos, a->tt, a->norm, a->g, a->b, a->hidden, 1e-6f, 0));
}

/* use_pos / use_tt / use_b: whether that table is given; norm EMB_KNORM_*. */
static void gembed_case(emb_kdtype dt, int H, float scale, int use_pos, int use_tt, int norm, int use_b) {
    int total, maxlen;
    const int vocab = 50, npos = 700, ntypes = 2;
    int32_t *cu = make_cu(AWKWARD, NAWK, &total, &maxlen);
    int32_t *ids = malloc((size_t)total * 4), *types = malloc((size_t)total * 4), *pids = malloc((size_t)total * 4);
    for (int t = 0; t < total; t++) {
        ids[t] = (int)kt_uniform(0, vocab - 0.01f);
        types[t] = t % 3 == 0;
        pids[t] = (t * 7 + 2) % npos;   /* any rule: the host decides */
    }
    float *word = kt_rand((size_t)vocab * H, 1.0f, dt), *pos = kt_rand((size_t)npos * H, 0.5f, dt);
    float *tt = kt_rand((size_t)ntypes * H, 0.3f, dt), *g = kt_rand(H, 1.5f, dt), *b = kt_rand(H, 0.5f, dt);
    float *zero = calloc((size_t)H, sizeof *zero), *ref = malloc((size_t)total * H * sizeof *ref);
    for (int t = 0; t < total; t++)
        for (int c = 0; c < H; c++)
            ref[(size_t)t * H + c] = word[(size_t)ids[t] * H + c] * scale +
                                     (use_pos ? pos[(size_t)pids[t] * H + c] : 0.0f) +
                                     (use_tt ? tt[(size_t)types[t] * H + c] : 0.0f);
    if (norm == EMB_KNORM_LAYER) cpu_bias_residual_layernorm(ref, NULL, NULL, g, use_b ? b : zero, total, H, 1e-6f);
    else if (norm == EMB_KNORM_RMS) cpu_rmsnorm(ref, NULL, g, total, H, 1e-6f);
    gembed_args a = {kt_poisoned((size_t)total * H * 2), dt, kt_upload_bytes(ids, (size_t)total * 4),
                     use_tt ? kt_upload_bytes(types, (size_t)total * 4) : NULL,
                     use_pos ? kt_upload_bytes(pids, (size_t)total * 4) : NULL, total, H, norm, scale,
                     kt_upload(word, (size_t)vocab * H, dt), use_pos ? kt_upload(pos, (size_t)npos * H, dt) : NULL,
                     use_tt ? kt_upload(tt, (size_t)ntypes * H, dt) : NULL,
                     norm ? kt_upload(g, H, dt) : NULL, norm && use_b ? kt_upload(b, H, dt) : NULL};
    kt_run_orders(gembed_launch, &a, a.out, (size_t)total * H * 2);
    float *got = kt_download(a.out, (size_t)total * H, dt), atol, rtol;
    kt_tol(dt, &atol, &rtol);
    char what[128];
    snprintf(what, sizeof what, "embed %s H=%d scale=%g pos=%d types=%d norm=%d bias=%d", dt_name(dt), H, scale,
             use_pos, use_tt, norm, use_b);
    kt_compare(what, got, ref, (size_t)total * H, atol * (scale > 1 ? 8 : 1), rtol);
    cudaFree(a.out); cudaFree(a.ids); cudaFree(a.types); cudaFree(a.pos_ids); cudaFree(a.word);
    cudaFree(a.pos); cudaFree(a.tt); cudaFree(a.g); cudaFree(a.b);
    free(cu); free(ids); free(types); free(pids); free(word); free(pos); free(tt); free(g); free(b);
    free(zero); free(ref); free(got);
}

Test(cuda_kernels, embed_general) {
    for (int di = 0; di < NDTS; di++) {
        gembed_case(DTS[di], 768, 1.0f, 1, 1, EMB_KNORM_LAYER, 1);   /* learned positions + types */
        gembed_case(DTS[di], 384, 1.0f, 0, 0, EMB_KNORM_LAYER, 0);   /* LayerNorm without bias */
        gembed_case(DTS[di], 256, 16.0f, 0, 0, EMB_KNORM_RMS, 0);    /* scaled words, RMSNorm */
        gembed_case(DTS[di], 64, 1.0f, 1, 0, EMB_KNORM_NONE, 0);     /* no norm */
    }
    /* Off the 16-byte path (pairs) and the widest row on it. */
    gembed_case(EMB_KDT_F16, 34, 1.0f, 1, 1, EMB_KNORM_LAYER, 1);
    gembed_case(EMB_KDT_BF16, 34, 4.0f, 0, 1, EMB_KNORM_RMS, 0);
    gembed_case(EMB_KDT_BF16, 1000, 1.0f, 1, 0, EMB_KNORM_LAYER, 1);
    gembed_case(EMB_KDT_F16, 8192, 1.0f, 1, 1, EMB_KNORM_LAYER, 1);
}

/* x += y over every element. */
typedef struct {
    void *x, *y;
    const float *x_host;
    emb_kdtype dt;
    size_t n;
} add_args;

static void add_launch(void *ud) {
    add_args *a = ud;
    void *fresh = kt_upload(a->x_host, a->n, a->dt);
    KT_CHECK(cudaMemcpy(a->x, fresh, a->n * kt_esz(a->dt), cudaMemcpyDeviceToDevice));
    cudaFree(fresh);
    KT_CHECK(emb_launch_add(a->x, a->dt, a->y, a->n, 0));
}

Test(cuda_kernels, add) {
    for (int di = 0; di < NDTS; di++) {
        const size_t n = (size_t)127 * 96;
        float *x = kt_rand(n, 2.0f, DTS[di]), *y = kt_rand(n, 2.0f, DTS[di]), *ref = malloc(n * sizeof *ref);
        for (size_t i = 0; i < n; i++) ref[i] = x[i] + y[i];
        add_args a = {kt_poisoned(n * 2), kt_upload(y, n, DTS[di]), x, DTS[di], n};
        kt_run_orders(add_launch, &a, a.x, n * 2);
        float *got = kt_download(a.x, n, DTS[di]), atol, rtol;
        kt_tol(DTS[di], &atol, &rtol);
        kt_compare("add", got, ref, n, atol, rtol);
        cudaFree(a.x); cudaFree(a.y);
        free(x); free(y); free(ref); free(got);
    }
    /* Lengths off the 16-byte path (pairs) and a shifted y (pairs at a multiple of 8). */
    static const size_t ns[] = {2, 6, 1004, 1000};
    for (int i = 0; i < 4; i++) {
        const emb_kdtype dt = DTS[i % 2];
        const size_t n = ns[i];
        const int off = i == 3 ? 2 : 0;
        float *x = kt_rand(n, 2.0f, dt), *y = kt_rand(n, 2.0f, dt), *ref = malloc(n * sizeof *ref);
        for (size_t j = 0; j < n; j++) ref[j] = x[j] + y[j];
        add_args a = {kt_poisoned(n * 2), kt_upload_at(y, n, dt, off), x, dt, n};
        kt_run_orders(add_launch, &a, a.x, n * 2);
        float *got = kt_download(a.x, n, dt), atol, rtol;
        kt_tol(dt, &atol, &rtol);
        kt_compare("add (pairs)", got, ref, n, atol, rtol);
        cudaFree(a.x); kt_free_at(a.y, dt, off);
        free(x); free(y); free(ref); free(got);
    }
    cr_assert_eq(emb_launch_add(NULL, EMB_KDT_F16, NULL, 3, 0), cudaErrorInvalidValue);
}

/* ---- f16/bf16 -> f32 (token embeddings) ------------------------------------ */

/* Exact: every 16-bit value has an fp32 twin. n a multiple of 8 (16-byte
 * path), odd, and the source shifted off alignment (single elements). */
Test(cuda_kernels, to_f32_vector_and_scalar_paths) {
    static const size_t ns[] = {8, 4096, 12345, 1};
    for (int di = 0; di < NDTS; di++)
        for (int i = 0; i < 4; i++)
            for (int off = 0; off <= 1; off++) {
                const emb_kdtype dt = DTS[di];
                const size_t n = ns[i];
                float *x = kt_rand(n, 100.0f, dt);
                void *src = kt_upload_at(x, n, dt, off);
                float *dst = kt_poisoned(n * sizeof(float));
                KT_CHECK(emb_launch_to_f32(dst, src, dt, n, 0));
                float *got = kt_download(dst, n, EMB_KDT_F32);
                cr_assert(!memcmp(got, x, n * sizeof(float)), "to_f32 %s n=%zu off=%d", dt_name(dt), n, off);
                kt_free_at(src, dt, off);
                cudaFree(dst);
                free(x);
                free(got);
            }
}

/* ---- bias + residual + LayerNorm, RMSNorm --------------------------------- */

typedef struct {
    void *out, *x, *bias, *res, *g, *b;
    const float *x_host;
    emb_kdtype dt;
    int rows, dim, rms;
} norm_args;

static void norm_launch(void *ud) {
    norm_args *a = ud;
    /* In place, like the backend: restore the input, the output is x itself. */
    void *fresh = kt_upload(a->x_host, (size_t)a->rows * a->dim, a->dt);
    KT_CHECK(cudaMemcpy(a->x, fresh, (size_t)a->rows * a->dim * kt_esz(a->dt), cudaMemcpyDeviceToDevice));
    cudaFree(fresh);
    if (a->rms)
        KT_CHECK(emb_launch_rmsnorm(a->x, a->dt, a->x, a->res, a->g, a->rows, a->dim, 1e-6f, 0));
    else
        KT_CHECK(emb_launch_bias_residual_layernorm(a->x, a->dt, a->x, a->bias, a->res, a->g, a->b,
                                                    a->rows, a->dim, 1e-12f, 0));
}

/* Out-of-place too: every output element must be written (poisoned target). */
static void norm_launch_oop(void *ud) {
    norm_args *a = ud;
    kt_poison(a->out, (size_t)a->rows * a->dim * kt_esz(a->dt));
    if (a->rms)
        KT_CHECK(emb_launch_rmsnorm(a->out, a->dt, a->x, a->res, a->g, a->rows, a->dim, 1e-6f, 0));
    else
        KT_CHECK(emb_launch_bias_residual_layernorm(a->out, a->dt, a->x, a->bias, a->res, a->g,
                                                    a->b, a->rows, a->dim, 1e-12f, 0));
}

/* rms: 0 LayerNorm, 1 RMSNorm, 2 LayerNorm without its bias b (b == NULL).
 * off: x shifted by that many elements (off 16-byte alignment: the pair path). */
static void norm_case_at(emb_kdtype dt, int rows, int dim, int rms, int with_bias, int with_res,
                         int off) {
    const size_t n = (size_t)rows * dim;
    const int no_beta = rms == 2;
    if (no_beta) rms = 0;
    float *x = kt_rand(n, 2.0f, dt), *res = kt_rand(n, 1.0f, dt), *bias = kt_rand(dim, 0.5f, dt);
    float *g = kt_rand(dim, 1.5f, dt), *b = kt_rand(dim, 0.5f, dt);
    if (no_beta) memset(b, 0, (size_t)dim * sizeof *b);
    float *ref = malloc(n * sizeof *ref);
    memcpy(ref, x, n * sizeof *ref);
    if (rms) cpu_rmsnorm(ref, with_res ? res : NULL, g, rows, dim, 1e-6f);
    else cpu_bias_residual_layernorm(ref, with_bias ? bias : NULL, with_res ? res : NULL, g, b, rows, dim, 1e-12f);
    norm_args a = {kt_poisoned(n * kt_esz(dt)), kt_upload_at(x, n, dt, off),
                   with_bias ? kt_upload(bias, dim, dt) : NULL, with_res ? kt_upload(res, n, dt) : NULL,
                   kt_upload(g, dim, dt), no_beta ? NULL : kt_upload(b, dim, dt), x, dt, rows, dim, rms};
    float atol, rtol;
    kt_tol(dt, &atol, &rtol);
    char what[96];
    snprintf(what, sizeof what, "%s %s rows=%d dim=%d bias=%d res=%d off=%d", rms ? "rmsnorm" : "layernorm",
             dt_name(dt), rows, dim, with_bias, with_res, off);
    kt_run_orders(norm_launch_oop, &a, a.out, n * kt_esz(dt));
    float *got = kt_download(a.out, n, dt);
    kt_compare(what, got, ref, n, atol, rtol);
    free(got);
    kt_run_orders(norm_launch, &a, a.x, n * kt_esz(dt));
    got = kt_download(a.x, n, dt);
    kt_compare(what, got, ref, n, atol, rtol);
    free(got);
    cudaFree(a.out); kt_free_at(a.x, dt, off); cudaFree(a.bias); cudaFree(a.res); cudaFree(a.g); cudaFree(a.b);
    free(x); free(res); free(bias); free(g); free(b); free(ref);
}

static void norm_case(emb_kdtype dt, int rows, int dim, int rms, int with_bias, int with_res) {
    norm_case_at(dt, rows, dim, rms, with_bias, with_res, 0);
}

Test(cuda_kernels, bias_residual_layernorm) {
    for (int di = 0; di < NDTS; di++)
        for (int r = 0; r < NAWK; r++) norm_case(DTS[di], AWKWARD[r], r % 2 ? 768 : 384, 0, 1, 1);
    norm_case(EMB_KDT_F16, 33, 1024, 0, 0, 1);
    norm_case(EMB_KDT_BF16, 31, 4096, 0, 1, 0);
    norm_case(EMB_KDT_F32, 33, 384, 0, 1, 1);
    norm_case(EMB_KDT_F16, 3, 34, 0, 1, 1);   /* width not a multiple of 64 */
    norm_case(EMB_KDT_BF16, 33, 768, 2, 0, 1);  /* LayerNorm without bias */
    norm_case(EMB_KDT_F16, 127, 384, 2, 1, 0);
}

Test(cuda_kernels, rmsnorm) {
    for (int di = 0; di < NDTS; di++)
        for (int r = 0; r < NAWK; r++) norm_case(DTS[di], AWKWARD[r], 384, 1, 0, r % 2);
    norm_case(EMB_KDT_BF16, 31, 4096, 1, 0, 1);
}

/* Widths on and off the 16-byte path: multiples of 8 (vectors of 8 halves),
 * 1004 (4 floats but not 8 halves), 2 and 34 (pairs only), the largest
 * width; each also with x shifted off alignment (pairs at the same width). */
Test(cuda_kernels, norms_vector_and_pair_paths) {
    static const int dims[] = {2, 8, 24, 34, 1000, 1004, 8192};
    for (int i = 0; i < 7; i++)
        for (int off = 0; off <= 2; off += 2) {
            const emb_kdtype dt = i == 5 ? EMB_KDT_F32 : DTS[(i + off / 2) % 2];
            const int rows = dims[i] == 8192 ? 3 : AWKWARD[(i + off) % NAWK];
            norm_case_at(dt, rows, dims[i], i % 3, i % 2, 1, off);
        }
}

/* ---- the sandwich step (Gemma): post-norm, residual add, next norm ------- */

typedef struct {
    void *y, *h, *next, *gp, *gn;
    const float *h_host;
    emb_kdtype dt;
    int rows, dim, mode; /* 0: h and next, 1: h only, 2: next over h (final norm) */
} sandwich_args;

static void sandwich_launch(void *ud) {
    sandwich_args *a = ud;
    const size_t n = (size_t)a->rows * a->dim;
    void *fresh = kt_upload(a->h_host, n, a->dt);   /* h is updated in place: restore it */
    KT_CHECK(cudaMemcpy(a->h, fresh, n * kt_esz(a->dt), cudaMemcpyDeviceToDevice));
    cudaFree(fresh);
    if (a->mode == 0) kt_poison(a->next, n * kt_esz(a->dt));
    void *next = a->mode == 0 ? a->next : a->mode == 2 ? a->h : NULL;
    KT_CHECK(emb_launch_sandwich_norm(a->mode == 2 ? NULL : a->h, next, a->dt, a->y, a->h, a->gp, 1e-6f,
                                      a->mode == 1 ? NULL : a->gn, 1e-5f, a->rows, a->dim, 0));
}

/* Against the CPU twins (rmsnorm, add rounded to dt, rmsnorm) and, on
 * aligned rows, bit for bit against the three launches it replaces. */
static void sandwich_case(emb_kdtype dt, int rows, int dim, int mode, int off) {
    const size_t n = (size_t)rows * dim;
    float *y = kt_rand(n, 3.0f, dt), *h = kt_rand(n, 20.0f, dt);
    float *gp = kt_rand(dim, 1.5f, dt), *gn = kt_rand(dim, 1.5f, dt);
    float *ref_h = malloc(n * sizeof *ref_h), *ref_n = malloc(n * sizeof *ref_n);
    memcpy(ref_h, y, n * sizeof *ref_h);
    cpu_rmsnorm(ref_h, NULL, gp, rows, dim, 1e-6f);
    for (size_t i = 0; i < n; i++) ref_h[i] = kt_round(h[i] + kt_round(ref_h[i], dt), dt);
    memcpy(ref_n, ref_h, n * sizeof *ref_n);
    cpu_rmsnorm(ref_n, NULL, gn, rows, dim, 1e-5f);
    sandwich_args a = {kt_upload_at(y, n, dt, off), kt_upload(h, n, dt), kt_poisoned(n * kt_esz(dt)),
                       kt_upload(gp, dim, dt), kt_upload(gn, dim, dt), h, dt, rows, dim, mode};
    kt_run_orders(sandwich_launch, &a, mode == 0 ? a.next : a.h, n * kt_esz(dt));
    float atol, rtol;
    kt_tol(dt, &atol, &rtol);
    char what[96];
    snprintf(what, sizeof what, "sandwich %s rows=%d dim=%d mode=%d off=%d", dt_name(dt), rows, dim, mode, off);
    float *got_h = kt_download(a.h, n, dt), *got_n = mode == 0 ? kt_download(a.next, n, dt) : NULL;
    if (mode == 2) kt_compare(what, got_h, ref_n, n, atol, rtol);
    else kt_compare(what, got_h, ref_h, n, atol, rtol);
    if (got_n) kt_compare(what, got_n, ref_n, n, atol, rtol);
    if (off == 0) {
        /* The three launches of the split path, on copies. */
        void *y2 = kt_upload(y, n, dt), *h2 = kt_upload(h, n, dt), *n2 = kt_poisoned(n * kt_esz(dt));
        KT_CHECK(emb_launch_rmsnorm(y2, dt, y2, NULL, a.gp, rows, dim, 1e-6f, 0));
        KT_CHECK(emb_launch_add(h2, dt, y2, n, 0));
        if (mode != 1) KT_CHECK(emb_launch_rmsnorm(mode == 2 ? h2 : n2, dt, h2, NULL, a.gn, rows, dim, 1e-5f, 0));
        KT_CHECK(cudaDeviceSynchronize());
        unsigned char *hb = malloc(n * kt_esz(dt)), *h2b = malloc(n * kt_esz(dt));
        KT_CHECK(cudaMemcpy(hb, a.h, n * kt_esz(dt), cudaMemcpyDeviceToHost));
        KT_CHECK(cudaMemcpy(h2b, h2, n * kt_esz(dt), cudaMemcpyDeviceToHost));
        cr_expect(memcmp(hb, h2b, n * kt_esz(dt)) == 0, "%s: h differs from the split launches", what);
        if (mode == 0) {
            KT_CHECK(cudaMemcpy(hb, a.next, n * kt_esz(dt), cudaMemcpyDeviceToHost));
            KT_CHECK(cudaMemcpy(h2b, n2, n * kt_esz(dt), cudaMemcpyDeviceToHost));
            cr_expect(memcmp(hb, h2b, n * kt_esz(dt)) == 0, "%s: next differs from the split launches", what);
        }
        free(hb); free(h2b);
        cudaFree(y2); cudaFree(h2); cudaFree(n2);
    }
    kt_free_at(a.y, dt, off); cudaFree(a.h); cudaFree(a.next); cudaFree(a.gp); cudaFree(a.gn);
    free(y); free(h); free(gp); free(gn); free(ref_h); free(ref_n); free(got_h); free(got_n);
}

Test(cuda_kernels, sandwich_norm) {
    for (int di = 0; di < NDTS; di++)
        for (int r = 0; r < NAWK; r++) sandwich_case(DTS[di], AWKWARD[r], r % 2 ? 768 : 1152, r % 3, 0);
    sandwich_case(EMB_KDT_BF16, 31, 3584, 0, 0);   /* Gemma 2 9B width */
    sandwich_case(EMB_KDT_F16, 17, 34, 0, 0);      /* pairs only */
    sandwich_case(EMB_KDT_BF16, 33, 768, 0, 2);    /* y off 16-byte alignment: pairs */
    sandwich_case(EMB_KDT_F32, 9, 256, 2, 0);
    cr_assert_eq(emb_launch_sandwich_norm(NULL, NULL, EMB_KDT_F16, (void *)8, (void *)8, (void *)8, 1e-6f,
                                          NULL, 0.0f, 4, 64, 0), cudaErrorInvalidValue);
    cr_assert_eq(emb_launch_sandwich_norm((void *)8, NULL, EMB_KDT_F16, (void *)8, (void *)8, (void *)8, 1e-6f,
                                          (void *)8, 0.0f, 4, 64, 0), cudaErrorInvalidValue);
}

/* ---- bias + activation, gated activations ------------------------------- */

typedef struct {
    void *x, *out, *bias;
    const float *x_host;
    emb_kdtype dt;
    int rows, cols, act, gated;
} act_args;

static void act_launch(void *ud) {
    act_args *a = ud;
    if (a->gated) {
        kt_poison(a->out, (size_t)a->rows * a->cols * kt_esz(a->dt));
        KT_CHECK(emb_launch_gated_act(a->out, a->dt, a->x, a->rows, a->cols, a->act, 0));
    } else {
        /* In place: restore the input first, then poison nothing (x is the output,
         * and its fresh copy is non-NaN, so an unwritten element keeps x + 0). The
         * comparison catches it since act(x + bias) != x for these inputs. */
        void *fresh = kt_upload(a->x_host, (size_t)a->rows * a->cols, a->dt);
        KT_CHECK(cudaMemcpy(a->x, fresh, (size_t)a->rows * a->cols * kt_esz(a->dt), cudaMemcpyDeviceToDevice));
        cudaFree(fresh);
        KT_CHECK(emb_launch_bias_act(a->x, a->dt, a->bias, a->rows, a->cols, a->act, 0));
    }
}

/* off: x shifted by that many elements (the pair path). Returns the output
 * (caller frees). */
static float *act_case_at(emb_kdtype dt, int rows, int cols, int act, int gated, int off) {
    const size_t nin = (size_t)rows * cols * (gated ? 2 : 1), nout = (size_t)rows * cols;
    float *x = kt_rand(nin, 3.0f, dt), *bias = kt_rand(cols, 0.5f, dt);
    float *ref = malloc(nin * sizeof *ref);
    if (gated) cpu_gated_act(ref, x, rows, cols, act);
    else {
        memcpy(ref, x, nin * sizeof *ref);
        cpu_bias_act(ref, bias, rows, cols, act);
    }
    act_args a = {kt_upload_at(x, nin, dt, off), gated ? kt_poisoned(nout * kt_esz(dt)) : NULL,
                  kt_upload(bias, cols, dt), x, dt, rows, cols, act, gated};
    void *res = gated ? a.out : a.x;
    kt_run_orders(act_launch, &a, res, nout * kt_esz(dt));
    float *got = kt_download(res, nout, dt), atol, rtol;
    kt_tol(dt, &atol, &rtol);
    char what[96];
    snprintf(what, sizeof what, "%s act=%d %s rows=%d cols=%d off=%d", gated ? "gated" : "bias_act", act,
             dt_name(dt), rows, cols, off);
    kt_compare(what, got, ref, nout, atol, rtol);
    kt_free_at(a.x, dt, off); cudaFree(a.out); cudaFree(a.bias);
    free(x); free(bias); free(ref);
    return got;
}

static void act_case(emb_kdtype dt, int rows, int cols, int act, int gated) {
    free(act_case_at(dt, rows, cols, act, gated, 0));
}

/* Elementwise work is the same arithmetic per element on both paths: the
 * 16-byte path and the pair path (x shifted) must agree bit for bit, at
 * widths that are and are not multiples of 8. */
Test(cuda_kernels, act_vector_and_pair_paths) {
    static const int cols[] = {2, 6, 8, 40, 1000, 1004, 3072};
    for (int i = 0; i < 7; i++)
        for (int gated = 0; gated < 2; gated++) {
            const emb_kdtype dt = i == 5 ? EMB_KDT_F32 : DTS[(i + gated) % 2];
            const int rows = AWKWARD[(i + gated) % 4], act = gated ? EMB_KACT_SILU : EMB_KACT_GELU;
            const uint64_t seed = kt_rng;
            float *vec = act_case_at(dt, rows, cols[i], act, gated, 0);
            kt_rng = seed;
            float *pairs = act_case_at(dt, rows, cols[i], act, gated, 2);
            cr_assert(!memcmp(vec, pairs, (size_t)rows * cols[i] * sizeof *vec),
                      "%s cols=%d: 16-byte and pair paths differ", gated ? "gated" : "bias_act", cols[i]);
            free(vec);
            free(pairs);
        }
}

Test(cuda_kernels, bias_act) {
    for (int act = EMB_KACT_IDENTITY; act <= EMB_KACT_SIGMOID; act++)
        for (int di = 0; di < NDTS; di++) act_case(DTS[di], AWKWARD[act % NAWK], act % 2 ? 1536 : 1152, act, 0);
    act_case(EMB_KDT_F32, 33, 768, EMB_KACT_TANH, 0);   /* Dense modules run in fp32 */
    act_case(EMB_KDT_F16, 1, 2, EMB_KACT_GELU, 0);
}

Test(cuda_kernels, gated_act) {
    const int acts[] = {EMB_KACT_GELU, EMB_KACT_GELU_TANH, EMB_KACT_SILU};
    for (int i = 0; i < 3; i++)
        for (int di = 0; di < NDTS; di++) act_case(DTS[di], AWKWARD[i + 1], 1024 + 2 * i, acts[i], 1);
}

/* ---- varlen attention ---------------------------------------------------- */

typedef struct {
    void *out, *qkv;
    int32_t *cu;
    emb_kdtype dt;
    int nseq, total, maxlen, heads, hd, causal;
} attn_args;

static void attn_launch(void *ud) {
    attn_args *a = ud;
    kt_poison(a->out, (size_t)a->total * a->heads * a->hd * kt_esz(a->dt));
    KT_CHECK(emb_launch_attention_varlen(a->out, a->dt, a->qkv, a->cu, a->nseq, a->maxlen, a->heads,
                                         a->hd, 1.0f / sqrtf((float)a->hd), a->causal, 0));
}

static void attn_case(emb_kdtype dt, const int *lens, int nseq, int heads, int hd, int causal) {
    int total, maxlen;
    int32_t *cu = make_cu(lens, nseq, &total, &maxlen);
    const size_t nqkv = (size_t)total * 3 * heads * hd, nout = (size_t)total * heads * hd;
    float *qkv = kt_rand(nqkv, 2.0f, dt), *ref = malloc(nout * sizeof *ref);
    cpu_attention_varlen(ref, qkv, cu, nseq, heads, hd, 1.0f / sqrtf((float)hd), causal);
    attn_args a = {kt_poisoned(nout * 2), kt_upload(qkv, nqkv, dt),
                   kt_upload_bytes(cu, ((size_t)nseq + 1) * 4), dt, nseq, total, maxlen, heads, hd, causal};
    kt_run_orders(attn_launch, &a, a.out, nout * 2);
    float *got = kt_download(a.out, nout, dt);
    /* P is rounded to 16 bits before P V (as in FlashAttention). */
    float atol = dt == EMB_KDT_F16 ? 6e-3f : 3e-2f, rtol = dt == EMB_KDT_F16 ? 6e-3f : 2e-2f;
    char what[96];
    snprintf(what, sizeof what, "attention %s heads=%d hd=%d causal=%d total=%d", dt_name(dt), heads,
             hd, causal, total);
    kt_compare(what, got, ref, nout, atol, rtol);
    cudaFree(a.out); cudaFree(a.qkv); cudaFree(a.cu);
    free(cu); free(qkv); free(ref); free(got);
}

Test(cuda_kernels, attention_awkward_lengths) {
    /* Every awkward length in one packed batch, both dtypes, both masks. */
    for (int di = 0; di < NDTS; di++)
        for (int causal = 0; causal < 2; causal++) attn_case(DTS[di], AWKWARD, NAWK, 1, 64, causal);
}

Test(cuda_kernels, attention_head_dims) {
    const int lens[] = {33, 1, 70};
    for (int di = 0; di < NDTS; di++) {
        attn_case(DTS[di], lens, 3, 12, 32, 0);    /* all-MiniLM-L6-v2 */
        attn_case(DTS[di], lens, 3, 12, 64, 0);    /* BERT-base */
        attn_case(DTS[di], lens, 3, 2, 128, 1);
        attn_case(DTS[di], lens, 3, 2, 128, 0);
    }
    const int one[] = {127};
    attn_case(EMB_KDT_F16, one, 1, 3, 32, 1);
}

/* ---- attention: grouped heads, windows, relative bias, softcap ------------ */
/* Every case below runs on both implementations: each Test sets the one its
 * name says (the TSan runner runs tests one after another in one process). */
static emb_kattn_impl g_impl = EMB_KATTN_MMA;

/* The wgmma tests run where the device runs this build's sm_90a code: always
 * under the simulator, on a real GPU only on Hopper with a 90a build. */
static void need_wgmma(void) {
    int yes = 0;
    emb_error err = {0};
    cr_assert_eq(emb_cuda_wgmma_available(&yes, &err), EMB_OK, "%s", err.message);
    if (!yes) cr_skip_test("no sm_90a code for this device (wgmma)");
}

typedef struct {
    void *out, *qkv;
    int32_t *cu;
    emb_kdtype dt;
    int nseq, total, maxlen;
    emb_kattn_params p;
} gqa_args;

static void gqa_launch(void *ud) {
    gqa_args *a = ud;
    kt_poison(a->out, (size_t)a->total * a->p.heads * a->p.head_dim * kt_esz(a->dt));
    KT_CHECK(emb_launch_attention(a->out, a->dt, a->qkv, a->cu, a->nseq, a->maxlen, &a->p, 0));
}

/* Rows of the relative-bias table beyond max_seqlen (the launcher's minimum
 * is max_seqlen): 0 in the case where rows past a sequence's end must not
 * read outside it (compute-sanitizer's memcheck sees such reads on a GPU). */
static int g_span_slack = 5;

/* One launch against cpu_attention. `bias` draws a relative-bias table;
 * `qbias` a query bias, which the reference adds to the Q heads (rounded to
 * dt, as the kernel does) before cpu_attention. */
static void gqa_case_qb(emb_kdtype dt, const int *lens, int nseq, int heads, int kv, int hd, int wl,
                        int wr, float softcap, int bias, int qbias) {
    int total, maxlen;
    int32_t *cu = make_cu(lens, nseq, &total, &maxlen);
    const size_t nqkv = (size_t)total * (heads + 2 * kv) * hd, nout = (size_t)total * heads * hd;
    float *qkv = kt_rand(nqkv, 2.0f, dt), *ref = malloc(nout * sizeof *ref), *tab = NULL;
    float *qb = qbias ? kt_rand((size_t)heads * hd, 3.0f, dt) : NULL;
    float *qkv_ref = qkv;
    if (qbias) {
        qkv_ref = malloc(nqkv * sizeof *qkv_ref);
        memcpy(qkv_ref, qkv, nqkv * sizeof *qkv_ref);
        for (int t = 0; t < total; t++)
            for (int j = 0; j < heads * hd; j++) {
                float *x = qkv_ref + (size_t)t * (heads + 2 * kv) * hd + j;
                *x = kt_round(*x + qb[j], dt);
            }
    }
    const int span = maxlen + g_span_slack;
    cpu_attn_params cp = {heads, kv, hd, 1.0f / sqrtf((float)hd), wl, wr, softcap, NULL, 0};
    gqa_args a = {kt_poisoned(nout * 2), kt_upload(qkv, nqkv, dt),
                  kt_upload_bytes(cu, ((size_t)nseq + 1) * 4), dt, nseq, total, maxlen,
                  {heads, kv, hd, cp.scale, wl, wr, softcap, NULL, 0, g_impl, NULL}};
    if (bias) {
        tab = kt_rand((size_t)heads * (2 * span - 1), 3.0f, EMB_KDT_F32);
        cp.rel_bias = tab, cp.rel_span = span;
        a.p.rel_bias = kt_upload(tab, (size_t)heads * (2 * span - 1), EMB_KDT_F32);
        a.p.rel_span = span;
    }
    if (qbias) a.p.q_bias = kt_upload(qb, (size_t)heads * hd, dt);
    cpu_attention(ref, qkv_ref, cu, nseq, &cp);
    kt_run_orders(gqa_launch, &a, a.out, nout * 2);
    float *got = kt_download(a.out, nout, dt);
    float atol = dt == EMB_KDT_F16 ? 6e-3f : 3e-2f, rtol = dt == EMB_KDT_F16 ? 6e-3f : 2e-2f;
    char what[176];
    snprintf(what, sizeof what,
             "attention %s %s heads=%d kv=%d hd=%d window=(%d,%d) softcap=%g bias=%d qbias=%d",
             g_impl == EMB_KATTN_WGMMA ? "wgmma" : "mma", dt_name(dt), heads, kv, hd, wl, wr, softcap, bias,
             qbias);
    kt_compare(what, got, ref, nout, atol, rtol);
    cudaFree(a.out); cudaFree(a.qkv); cudaFree(a.cu); cudaFree((void *)a.p.rel_bias);
    cudaFree((void *)a.p.q_bias);
    if (qkv_ref != qkv) free(qkv_ref);
    free(cu); free(qkv); free(ref); free(got); free(tab); free(qb);
}

static void gqa_case(emb_kdtype dt, const int *lens, int nseq, int heads, int kv, int hd, int wl,
                     int wr, float softcap, int bias) {
    gqa_case_qb(dt, lens, nseq, heads, kv, hd, wl, wr, softcap, bias, 0);
}

static void gqa_mqa_head_dims(emb_kattn_impl impl) {
    g_impl = impl;
    const int lens[] = {33, 1, 70, 130};
    const int hds[] = {16, 32, 64, 80, 96, 128, 256};
    for (int di = 0; di < NDTS; di++)
        for (int d = 0; d < 7; d++) {
            gqa_case(DTS[di], lens, 4, 4, 1, hds[d], -1, -1, 0, 0);   /* MQA */
            gqa_case(DTS[di], lens, 4, 4, 2, hds[d], -1, 0, 0, 0);    /* GQA, causal */
            gqa_case(DTS[di], lens, 4, 4, 4, hds[d], -1, -1, 0, 0);   /* MHA */
        }
}

/* Narrower and wider than a key tile, symmetric (ModernBERT local), sliding
 * causal (Mistral), one-sided; on sequences shorter and longer. */
static void windows(emb_kattn_impl impl) {
    g_impl = impl;
    const int lens[] = {5, 300, 1, 129};
    const int win[][2] = {{0, 0}, {3, 3}, {64, 64}, {4095, 0}, {15, 0}, {-1, 7}, {200, -1}};
    for (int di = 0; di < NDTS; di++)
        for (int w = 0; w < 7; w++)
            gqa_case(DTS[di], lens, 4, 4, 2, w % 2 ? 64 : 128, win[w][0], win[w][1], 0, 0);
    gqa_case(EMB_KDT_F16, lens, 4, 2, 1, 256, 20, 20, 0, 0);
    gqa_case(EMB_KDT_BF16, lens, 4, 2, 2, 80, 33, 0, 0, 0);
}

static void rel_bias_softcap(emb_kattn_impl impl) {
    g_impl = impl;
    const int lens[] = {17, 140, 2};
    for (int di = 0; di < NDTS; di++) {
        gqa_case(DTS[di], lens, 3, 3, 3, 32, -1, -1, 0, 1);       /* MPNet / T5 bias */
        gqa_case(DTS[di], lens, 3, 4, 2, 256, -1, -1, 30.0f, 0);  /* Gemma 2 softcap */
        gqa_case(DTS[di], lens, 3, 4, 1, 64, 20, 0, 5.0f, 1);     /* everything */
    }
    /* A table exactly max_seqlen wide, sequences ending inside a query tile
     * after whole key tiles (rows past the end, unmasked there). */
    const int tight[] = {140, 70, 129};
    g_span_slack = 0;
    gqa_case(EMB_KDT_F16, tight, 3, 3, 3, 64, -1, -1, 0, 1);
    gqa_case(EMB_KDT_BF16, tight, 3, 2, 1, 32, -1, -1, 0, 1);
    g_span_slack = 5;
}

/* The query bias added in the kernel (BERT-family QKV biases, see
 * kernels.h): every head dim, the Q tile's plain and core-matrix layouts,
 * with GQA, windows and the bias/softcap variant. */
static void q_bias(emb_kattn_impl impl) {
    g_impl = impl;
    const int lens[] = {70, 1, 33, 130};
    const int hds[] = {16, 32, 64, 80, 96, 128, 256};
    for (int di = 0; di < NDTS; di++) {
        for (int d = 0; d < 7; d++) gqa_case_qb(DTS[di], lens, 4, 4, 4, hds[d], -1, -1, 0, 0, 1);
        gqa_case_qb(DTS[di], lens, 4, 4, 2, 64, 20, 0, 0, 0, 1);
        gqa_case_qb(DTS[di], lens, 4, 3, 3, 32, -1, -1, 0, 1, 1);  /* MPNet: relative bias too */
    }
}

Test(cuda_kernels, attention_gqa_mqa_head_dims) { gqa_mqa_head_dims(EMB_KATTN_MMA); }
Test(cuda_kernels, attention_q_bias) { q_bias(EMB_KATTN_MMA); }
Test(cuda_kernels, attention_wgmma_q_bias) { need_wgmma(); q_bias(EMB_KATTN_WGMMA); }
Test(cuda_kernels, attention_windows) { windows(EMB_KATTN_MMA); }
Test(cuda_kernels, attention_rel_bias_softcap) { rel_bias_softcap(EMB_KATTN_MMA); }
/* The sm_90a kernel: wgmma from the descriptors' core-matrix layouts (the
 * simulator computes them from the PTX ISA's definitions), double-buffered
 * K/V tiles (the simulator's cp.async lands only at the wait). */
Test(cuda_kernels, attention_wgmma_gqa_mqa_head_dims) { need_wgmma(); gqa_mqa_head_dims(EMB_KATTN_WGMMA); }
Test(cuda_kernels, attention_wgmma_windows) { need_wgmma(); windows(EMB_KATTN_WGMMA); }
Test(cuda_kernels, attention_wgmma_rel_bias_softcap) { need_wgmma(); rel_bias_softcap(EMB_KATTN_WGMMA); }

/* Key tiles outside every window of a query tile are not read at all: with
 * the K and V rows of far keys set to NaN, a kernel that only masked them
 * would still multiply P = 0 by NaN V rows and return NaN. */
static void window_skips_far_key_tiles(emb_kattn_impl impl) {
    const int len = 300, heads = 2, kv = 1, hd = 64, w = 8, ld = (heads + 2 * kv) * hd;
    for (int side = 0; side < 2; side++) {
        int total, maxlen;
        int32_t *cu = make_cu(&len, 1, &total, &maxlen);
        float *qkv = kt_rand((size_t)total * ld, 2.0f, EMB_KDT_F16);
        float *ref = malloc((size_t)total * heads * hd * sizeof *ref);
        cpu_attn_params cp = {heads, kv, hd, 0.125f, w, w, 0, NULL, 0};
        cpu_attention(ref, qkv, cu, 1, &cp);
        /* side 0: keys >= 128 poisoned, queries of the first tile (0..63) checked;
         * side 1: keys < 128 poisoned, queries 256.. checked. */
        for (int t = 0; t < total; t++)
            if (side ? t < 128 : t >= 128)
                for (int c = heads * hd; c < ld; c++) qkv[(size_t)t * ld + c] = NAN;
        gqa_args a = {kt_poisoned((size_t)total * heads * hd * 2),
                      kt_upload(qkv, (size_t)total * ld, EMB_KDT_F16), kt_upload_bytes(cu, 8),
                      EMB_KDT_F16, 1, total, maxlen, {heads, kv, hd, 0.125f, w, w, 0, NULL, 0, impl, NULL}};
        gqa_launch(&a);
        KT_CHECK(cudaDeviceSynchronize());
        float *got = kt_download(a.out, (size_t)total * heads * hd, EMB_KDT_F16);
        const int q_lo = side ? 256 : 0, q_hi = side ? total : 64;
        kt_compare(side ? "last query tile" : "first query tile", got + (size_t)q_lo * heads * hd,
                   ref + (size_t)q_lo * heads * hd, (size_t)(q_hi - q_lo) * heads * hd, 6e-3f, 6e-3f);
        cudaFree(a.out); cudaFree(a.qkv); cudaFree(a.cu);
        free(cu); free(qkv); free(ref); free(got);
    }
}
Test(cuda_kernels, attention_window_skips_far_key_tiles) { window_skips_far_key_tiles(EMB_KATTN_MMA); }
Test(cuda_kernels, attention_wgmma_window_skips_far_key_tiles) {
    need_wgmma();
    window_skips_far_key_tiles(EMB_KATTN_WGMMA);
}

/* The same at awkward lengths, for the two window forms the decoder families
 * use: causal sliding (Mistral: right 0, left W) and symmetric bidirectional
 * (Gemma 3 bidirectional: left = right = W). For a chosen query tile of
 * every sequence (the first, the second, the last), the K/V rows of that
 * sequence in key tiles the tile never needs (before its first query's
 * window start rounded down to 64, a multiple of every key-tile height, or
 * from its last query's window end rounded up to 64) are NaN; that tile's
 * outputs must match the reference from the clean input. (Keys masked inside
 * a walked tile are read: P = 0 times a NaN V row would still be NaN.) */
static void window_skip_case(emb_kdtype dt, int hd, int wl, int wr, int pick, emb_kattn_impl impl) {
    static const int lens[] = {1, 31, 33, 513};
    const int nseq = 4, heads = 2, kv = 1, ld = (heads + 2 * kv) * hd, od = heads * hd;
    int total, maxlen;
    int32_t *cu = make_cu(lens, nseq, &total, &maxlen);
    float *qkv = kt_rand((size_t)total * ld, 2.0f, dt), *ref = malloc((size_t)total * od * sizeof *ref);
    const float scale = 1.0f / sqrtf((float)hd);
    cpu_attn_params cp = {heads, kv, hd, scale, wl, wr, 0, NULL, 0};
    cpu_attention(ref, qkv, cu, nseq, &cp);
    int q0[4], q1[4];
    for (int s = 0; s < nseq; s++) {
        const int len = lens[s], tiles = (len + 63) / 64;
        const int z = pick == 0 ? 0 : pick == 1 ? (tiles > 1 ? 1 : 0) : tiles - 1;
        q0[s] = z * 64, q1[s] = (z * 64 + 64 < len ? z * 64 + 64 : len) - 1;
        int lo = q0[s] - wl;
        lo = lo < 0 ? 0 : lo - lo % 64;
        const int hi = (q1[s] + wr + 1 + 63) / 64 * 64;   /* first key past the tiles walked */
        for (int j = 0; j < len; j++)
            if (j < lo || j >= hi)
                for (int c = od; c < ld; c++) qkv[(size_t)(cu[s] + j) * ld + c] = NAN;
    }
    gqa_args a = {kt_poisoned((size_t)total * od * 2), kt_upload(qkv, (size_t)total * ld, dt),
                  kt_upload_bytes(cu, ((size_t)nseq + 1) * 4), dt, nseq, total, maxlen,
                  {heads, kv, hd, scale, wl, wr, 0, NULL, 0, impl, NULL}};
    gqa_launch(&a);
    KT_CHECK(cudaDeviceSynchronize());
    float *got = kt_download(a.out, (size_t)total * od, dt);
    float atol = dt == EMB_KDT_F16 ? 6e-3f : 3e-2f, rtol = dt == EMB_KDT_F16 ? 6e-3f : 2e-2f;
    for (int s = 0; s < nseq; s++) {
        char what[128];
        snprintf(what, sizeof what, "window (%d,%d) %s hd=%d: sequence %d queries %d..%d", wl, wr, dt_name(dt), hd,
                 s, q0[s], q1[s]);
        const size_t off = (size_t)(cu[s] + q0[s]) * od;
        kt_compare(what, got + off, ref + off, (size_t)(q1[s] - q0[s] + 1) * od, atol, rtol);
    }
    cudaFree(a.out); cudaFree(a.qkv); cudaFree(a.cu);
    free(cu); free(qkv); free(ref); free(got);
}

Test(cuda_kernels, attention_windows_skip_far_keys_awkward) {
    const int win[][2] = {{40, 0}, {100, 0}, {40, 40}};
    const int hds[] = {64, 256};
    for (int di = 0; di < NDTS; di++)
        for (int h = 0; h < 2; h++)
            for (int w = 0; w < 3; w++)
                for (int pick = 0; pick < 3; pick++)
                    window_skip_case(DTS[di], hds[h], win[w][0], win[w][1], pick, EMB_KATTN_MMA);
}

Test(cuda_kernels, attention_wgmma_windows_skip_far_keys_awkward) {
    need_wgmma();
    const int win[][2] = {{40, 0}, {100, 0}, {40, 40}};
    const int hds[] = {64, 256};
    for (int h = 0; h < 2; h++)
        for (int w = 0; w < 3; w++)
            for (int pick = 0; pick < 3; pick++)
                window_skip_case(DTS[(h + w) % NDTS], hds[h], win[w][0], win[w][1], pick, EMB_KATTN_WGMMA);
}

/* ---- the QKV epilogue: bias + q/k norms + rotary -------------------------------- */

typedef struct {
    void *qkv;
    int32_t *cu;
    emb_kdtype dt;
    int nseq, total;
    emb_kqk_params p;  /* device pointers */
    const float *init; /* host values re-uploaded before every run (in place) */
} qkr_args;

static void qkr_launch(void *ud) {
    qkr_args *a = ud;
    const size_t n = (size_t)a->total * (a->p.heads + 2 * a->p.kv_heads) * a->p.head_dim;
    void *fresh = kt_upload(a->init, n, a->dt);
    KT_CHECK(cudaMemcpy(a->qkv, fresh, n * kt_esz(a->dt), cudaMemcpyDeviceToDevice));
    cudaFree(fresh);
    KT_CHECK(emb_launch_qk_norm_rotary(a->qkv, a->dt, a->cu, a->nseq, a->total, &a->p, 0));
}

/* What a case switches on besides rotary: Q / K norm weights, the q/k/v
 * bias, a host inv_freq table (a scaled rope) instead of theta. */
enum { QKR_QN = 1, QKR_KN = 2, QKR_BIAS = 4, QKR_TABLE = 8 };

/* One launch against cpu_qk_norm_rotary on packed sequences `lens`; rot 0:
 * no rotary. Elements the kernel must leave alone (V heads and dims past
 * rot of a head that is neither normalized nor biased) are compared bit for
 * bit with the input; the V heads with a bias against the twin. */
static void qkr_case(emb_kdtype dt, const int *lens, int nseq, int heads, int kv, int hd, int rot,
                     float theta, int parts) {
    int total, maxlen;
    int32_t *cu = make_cu(lens, nseq, &total, &maxlen);
    const int ld = (heads + 2 * kv) * hd, qn = !!(parts & QKR_QN), kn = !!(parts & QKR_KN);
    const int biased = !!(parts & QKR_BIAS);
    const size_t n = (size_t)total * ld;
    float *x = kt_rand(n, 2.0f, dt), *ref = malloc(n * sizeof *ref);
    float *qg = kt_rand((size_t)hd, 1.5f, dt), *kg = kt_rand((size_t)hd, 1.5f, dt);
    float *bias = kt_rand((size_t)ld, 1.0f, dt), table[EMB_KERNEL_MAX_HEAD_DIM / 2 + 1];
    /* Frequencies no theta gives: every band scaled differently. */
    for (int d = 0; d < rot / 2; d++) table[d] = powf(theta, -(float)(2 * d) / (float)rot) / (1.0f + (float)(d % 5));
    const float *tab = parts & QKR_TABLE ? table : NULL;
    memcpy(ref, x, n * sizeof *ref);
    const cpu_qk_params cp = {.heads = heads, .kv_heads = kv, .head_dim = hd, .bias = biased ? bias : NULL,
                              .q_g = qn ? qg : NULL, .q_eps = 1e-6f, .k_g = kn ? kg : NULL, .k_eps = 1e-5f,
                              .rotary_dim = rot, .theta = theta, .inv_freq = tab};
    cpu_qk_norm_rotary(ref, cu, nseq, &cp);
    qkr_args a = {kt_poisoned(n * kt_esz(dt)), kt_upload_bytes(cu, ((size_t)nseq + 1) * 4), dt, nseq, total,
                  {.heads = heads, .kv_heads = kv, .head_dim = hd, .bias = biased ? kt_upload(bias, (size_t)ld, dt) : NULL,
                   .q_g = qn ? kt_upload(qg, (size_t)hd, dt) : NULL, .q_eps = 1e-6f,
                   .k_g = kn ? kt_upload(kg, (size_t)hd, dt) : NULL, .k_eps = 1e-5f, .rotary_dim = rot,
                   .theta = theta, .inv_freq = tab ? kt_upload(tab, (size_t)rot / 2, EMB_KDT_F32) : NULL},
                  x};
    kt_run_orders(qkr_launch, &a, a.qkv, n * kt_esz(dt));
    float *got = kt_download(a.qkv, n, dt), atol, rtol;
    kt_tol(dt, &atol, &rtol);
    char what[160];
    snprintf(what, sizeof what, "qk_norm_rotary %s lens[0]=%d heads=%d kv=%d hd=%d rot=%d norms=%d%d bias=%d table=%d",
             dt_name(dt), lens[0], heads, kv, hd, rot, qn, kn, biased, !!tab);
    kt_compare(what, got, ref, n, atol, rtol);
    for (size_t i = 0; i < n; i++) {
        const int c = (int)(i % (size_t)ld), h = c / hd, d = c % hd;
        const int normed = h < heads ? qn : h < heads + kv ? kn : 0;
        if (!biased && (h >= heads + kv || (!normed && d >= rot)))
            cr_assert(memcmp(&got[i], &x[i], sizeof *x) == 0, "%s: element %zu (head %d dim %d) changed",
                      what, i, h, d);
    }
    cudaFree(a.qkv); cudaFree(a.cu); cudaFree((void *)a.p.q_g); cudaFree((void *)a.p.k_g);
    cudaFree((void *)a.p.bias); cudaFree((void *)a.p.inv_freq);
    free(cu); free(x); free(ref); free(got); free(qg); free(kg); free(bias);
}

/* Total tokens 1, 31, 33 and 513 (several sequences); every head_dim the
 * decoder families use; GQA 4:1 and MHA; partial rotary; norms on, off, or
 * on one block only (a K-only norm is not a model, but catches a swap); the
 * q/k/v bias with and without norms and rotary (BERT: bias alone; Qwen2:
 * bias + rotary; bias + norms + rotary); a scaled rope's table. */
Test(cuda_kernels, qk_norm_rotary) {
    static const int l1[] = {1}, l31[] = {31}, l33[] = {20, 13}, l513[] = {200, 1, 312};
    static const int *lens[] = {l1, l31, l33, l513};
    static const int nseqs[] = {1, 1, 2, 3};
    const int hds[] = {64, 80, 96, 128, 256};
    const int all = QKR_QN | QKR_KN;
    for (int di = 0; di < NDTS; di++)
        for (int h = 0; h < 5; h++) {
            const int hd = hds[h];
            for (int b = 0; b < 4; b++) {
                const int kv = b % 2 ? 1 : 4, rot = b == 2 ? hd / 2 : hd;
                qkr_case(DTS[di], lens[b], nseqs[b], 4, kv, hd, rot, b == 3 ? 1e6f : 1e4f, all);
                qkr_case(DTS[di], lens[b], nseqs[b], 4, kv, hd, rot, 5e5f, QKR_BIAS | (b % 2 ? QKR_TABLE : 0));
            }
            qkr_case(DTS[di], l33, 2, 4, 1, hd, hd - 16, 1e4f, 0);          /* rotary alone, partial */
            qkr_case(DTS[di], l31, 1, 2, 2, hd, 0, 0.0f, all);              /* norms alone */
            qkr_case(DTS[di], l33, 2, 4, 2, hd, 0, 0.0f, QKR_BIAS);         /* bias alone */
            qkr_case(DTS[di], l513, 3, 4, 2, hd, hd - 16, 1e4f, all | QKR_BIAS | QKR_TABLE);
        }
    qkr_case(EMB_KDT_F16, l33, 2, 4, 2, 128, 128, 1e4f, QKR_KN);
    qkr_case(EMB_KDT_F32, l513, 3, 3, 1, 96, 96, 1e4f, all | QKR_BIAS);
}

/* ---- pooling + normalize + truncate + quantize ----------------------------- */

typedef struct {
    float *out;
    void *hidden, *qout;
    float *qscale;
    int32_t *cu, *skip;
    emb_kdtype dt;
    int nseq, dim, modes, out_dim, normalize, quant;
} pool_args;

static void pool_launch(void *ud) {
    pool_args *a = ud;
    kt_poison(a->out, (size_t)a->nseq * a->out_dim * 4);
    KT_CHECK(emb_launch_pool(a->out, a->hidden, a->dt, a->cu, a->skip, a->nseq, a->dim, a->modes,
                             a->out_dim, a->normalize, a->quant, a->qout, a->qscale, 0));
}

static int popc(int m) {
    int n = 0;
    for (; m; m &= m - 1) n++;
    return n;
}

typedef struct {
    const int *lens;
    const int32_t *skip;   /* NULL: no prompt tokens excluded */
    int nseq, dim, off;    /* off: hidden shifted by that many elements (pair path) */
} pool_shape;

/* Pools one batch on the device, checks it against cpu_pool (+ truncation,
 * normalization, quantization) and returns the fp32 rows for bit-identity
 * checks between paths (caller frees). */
static float *pool_run(emb_kdtype dt, const pool_shape *sh, int modes, int trunc, int normalize,
                       int quant) {
    const int nseq = sh->nseq, dim = sh->dim;
    int total, maxlen;
    int32_t *cu = make_cu(sh->lens, nseq, &total, &maxlen);
    const int width = dim * popc(modes), out_dim = trunc ? trunc : width;
    float *h = kt_rand((size_t)total * dim, 2.0f, dt);
    float *full = malloc((size_t)nseq * width * sizeof *full);
    cpu_pool(full, h, cu, nseq, dim, modes, sh->skip);
    float *ref = malloc((size_t)nseq * out_dim * sizeof *ref);
    for (int s = 0; s < nseq; s++) memcpy(ref + (size_t)s * out_dim, full + (size_t)s * width, (size_t)out_dim * 4);
    if (normalize) cpu_l2_normalize(ref, nseq, out_dim);
    const size_t qbytes = quant == EMB_KQUANT_BINARY ? (size_t)nseq * ((out_dim + 7) / 8) : (size_t)nseq * out_dim;
    pool_args a = {kt_poisoned((size_t)nseq * out_dim * 4), kt_upload_at(h, (size_t)total * dim, dt, sh->off),
                   quant ? kt_poisoned(qbytes) : NULL, quant ? kt_poisoned((size_t)nseq * 4) : NULL,
                   kt_upload_bytes(cu, ((size_t)nseq + 1) * 4),
                   sh->skip ? kt_upload_bytes(sh->skip, (size_t)nseq * 4) : NULL,
                   dt, nseq, dim, modes, out_dim, normalize, quant};
    kt_run_orders(pool_launch, &a, a.out, (size_t)nseq * out_dim * 4);
    float *got = kt_download(a.out, (size_t)nseq * out_dim, EMB_KDT_F32);
    char what[128];
    snprintf(what, sizeof what, "pool %s dim=%d off=%d modes=%#x skip=%d trunc=%d norm=%d", dt_name(dt),
             dim, sh->off, modes, sh->skip != NULL, trunc, normalize);
    /* Inputs are exact in both; only fp32 summation order differs. */
    kt_compare(what, got, ref, (size_t)nseq * out_dim, 2e-5f, 2e-5f);
    if (quant) {
        unsigned char *q = malloc(qbytes);
        float *sc = malloc((size_t)nseq * sizeof *sc);
        KT_CHECK(cudaMemcpy(q, a.qout, qbytes, cudaMemcpyDeviceToHost));
        KT_CHECK(cudaMemcpy(sc, a.qscale, (size_t)nseq * 4, cudaMemcpyDeviceToHost));
        for (int s = 0; s < nseq; s++) {
            const float *r = ref + (size_t)s * out_dim;
            if (quant == EMB_KQUANT_BINARY) {
                for (int i = 0; i < out_dim; i++) {
                    int bit = (q[(size_t)s * ((out_dim + 7) / 8) + i / 8] >> (7 - i % 8)) & 1;
                    if (fabsf(r[i]) > 1e-5f) cr_assert_eq(bit, r[i] > 0, "binary s=%d i=%d", s, i);
                }
            } else {
                float m = 0;
                for (int i = 0; i < out_dim; i++) m = fmaxf(m, fabsf(r[i]));
                cr_assert_float_eq(sc[s], m > 0 ? m / 127 : 1, 1e-5f * (m + 1), "int8 scale s=%d", s);
                for (int i = 0; i < out_dim; i++) {
                    int want = (int)rintf(r[i] / sc[s]);
                    int gotq = (int8_t)q[(size_t)s * out_dim + i];
                    cr_assert(abs(gotq - want) <= 1, "int8 s=%d i=%d got %d want %d", s, i, gotq, want);
                }
            }
        }
        free(q);
        free(sc);
    }
    cudaFree(a.out); kt_free_at(a.hidden, dt, sh->off); cudaFree(a.qout); cudaFree(a.qscale);
    cudaFree(a.cu); cudaFree(a.skip);
    free(cu); free(h); free(full); free(ref);
    return got;
}

static void pool_case(emb_kdtype dt, int modes, int use_skip, int trunc, int normalize, int quant) {
    static const int lens[] = {1, 31, 33, 127, 5, 2};
    static const int32_t skip[] = {0, 3, 33, 1, 0, 1};    /* 33 of 33: nothing kept */
    const pool_shape sh = {lens, use_skip ? skip : NULL, 6, 384, 0};
    free(pool_run(dt, &sh, modes, trunc, normalize, quant));
}

Test(cuda_kernels, pool_modes) {
    for (int m = 0; m < 6; m++)
        for (int di = 0; di < NDTS; di++) pool_case(DTS[di], 1 << m, m % 2, 0, 0, 0);
}

Test(cuda_kernels, pool_combined_normalized_truncated) {
    /* max pooling with nothing kept is -inf, which normalization would turn
     * into NaN; the combinations that normalize leave MAX out or keep tokens. */
    pool_case(EMB_KDT_F16, EMB_POOL_CLS | EMB_POOL_MEAN, 1, 0, 1, 0);
    pool_case(EMB_KDT_BF16, EMB_POOL_MEAN, 1, 128, 1, 0);
    pool_case(EMB_KDT_F16, EMB_POOL_CLS | EMB_POOL_MEAN_SQRT_LEN | EMB_POOL_WEIGHTED_MEAN | EMB_POOL_LAST_TOKEN,
              0, 1000, 1, 0);
    pool_case(EMB_KDT_F16, 63, 0, 0, 1, 0);
    pool_case(EMB_KDT_F16, EMB_POOL_MEAN, 0, 77, 1, EMB_KQUANT_INT8);
    pool_case(EMB_KDT_BF16, EMB_POOL_MEAN, 0, 0, 1, EMB_KQUANT_BINARY);
    pool_case(EMB_KDT_F16, EMB_POOL_CLS, 0, 61, 0, EMB_KQUANT_BINARY);
}

/* The awkward lengths (an empty sequence too) at widths from 2 to 1024: on the
 * 16-byte path (widths a multiple of 8 halves / 4 floats) and, with hidden
 * shifted off 16-byte alignment, on the pair path, which must give the very
 * same bits (each element is summed in the same order on both). */
Test(cuda_kernels, pool_sizes_and_paths) {
    static const int lens[] = {1, 31, 0, 33, 513};
    static const int32_t skip[] = {0, 30, 0, 2, 100};
    static const int dims[] = {2, 6, 8, 34, 200, 1000, 1024};
    const int modes = EMB_POOL_MEAN | EMB_POOL_MAX | EMB_POOL_CLS | EMB_POOL_LAST_TOKEN;
    for (int i = 0; i < 7; i++) {
        const emb_kdtype dt = DTS[i % 2];
        pool_shape sh = {lens, i % 3 ? skip : NULL, 5, dims[i], 0};
        const uint64_t seed = kt_rng;
        float *vec = pool_run(dt, &sh, modes, 0, 0, 0);
        kt_rng = seed;   /* the same inputs */
        sh.off = 2;
        float *pairs = pool_run(dt, &sh, modes, 0, 0, 0);
        const size_t n = (size_t)5 * dims[i] * 4;
        cr_assert(!memcmp(vec, pairs, n * sizeof *vec), "pool dim=%d: 16-byte and pair paths differ",
                  dims[i]);
        free(vec);
        free(pairs);
    }
    const pool_shape f32 = {lens, skip, 5, 36, 0};   /* fp32: 4 floats per 16 bytes */
    free(pool_run(EMB_KDT_F32, &f32, EMB_POOL_WEIGHTED_MEAN | EMB_POOL_MEAN_SQRT_LEN, 0, 0, 0));
    const pool_shape wide = {lens + 3, NULL, 2, 1024, 0};   /* 33 and 513 tokens, normalized */
    free(pool_run(EMB_KDT_BF16, &wide, EMB_POOL_MEAN | EMB_POOL_WEIGHTED_MEAN, 1500, 1, EMB_KQUANT_INT8));
}

/* Every one of the 63 mode combinations, with and without excluded prompt
 * tokens, on a narrow width (the column logic does not depend on it). */
Test(cuda_kernels, pool_every_mode_combination) {
    static const int lens[] = {1, 31, 33, 2};
    static const int32_t skip[] = {1, 3, 0, 2};
    for (int modes = 1; modes < 64; modes++) {
        const pool_shape sh = {lens, modes % 2 ? skip : NULL, 4, 8 + 2 * (modes % 3), modes % 5};
        free(pool_run(DTS[modes % 2], &sh, modes, 0, 0, 0));
    }
}

typedef struct {
    float *out, *x;
    int rows, in, out_dim, normalize;
} fin_args;

static void fin_launch(void *ud) {
    fin_args *a = ud;
    kt_poison(a->out, (size_t)a->rows * a->out_dim * 4);
    KT_CHECK(emb_launch_finalize(a->out, a->x, a->rows, a->in, a->out_dim, a->normalize,
                                 EMB_KQUANT_NONE, NULL, NULL, 0));
}

Test(cuda_kernels, finalize) {
    const int rows = 33, in = 768, outs[] = {768, 256, 1};
    for (int i = 0; i < 3; i++) {
        float *x = kt_rand((size_t)rows * in, 1.0f, EMB_KDT_F32);
        float *ref = malloc((size_t)rows * outs[i] * 4);
        for (int r = 0; r < rows; r++) memcpy(ref + (size_t)r * outs[i], x + (size_t)r * in, (size_t)outs[i] * 4);
        cpu_l2_normalize(ref, rows, outs[i]);
        fin_args a = {kt_poisoned((size_t)rows * outs[i] * 4), kt_upload(x, (size_t)rows * in, EMB_KDT_F32),
                      rows, in, outs[i], 1};
        kt_run_orders(fin_launch, &a, a.out, (size_t)rows * outs[i] * 4);
        float *got = kt_download(a.out, (size_t)rows * outs[i], EMB_KDT_F32);
        kt_compare("finalize", got, ref, (size_t)rows * outs[i], 1e-6f, 1e-5f);
        cudaFree(a.out); cudaFree(a.x);
        free(x); free(ref); free(got);
    }
}

/* ---- argument checking ----------------------------------------------------- */

Test(cuda_kernels, launchers_reject_bad_arguments) {
    cr_assert_eq(emb_launch_attention_varlen(NULL, EMB_KDT_F16, NULL, NULL, 1, 8, 1, 48, 1.0f, 0, 0),
                 cudaErrorInvalidValue);
    cr_assert_eq(emb_launch_attention_varlen(NULL, EMB_KDT_F32, NULL, NULL, 1, 8, 1, 64, 1.0f, 0, 0),
                 cudaErrorInvalidValue);
    cr_assert_eq(emb_launch_bias_residual_layernorm(NULL, EMB_KDT_F16, NULL, NULL, NULL, NULL, NULL, 1,
                                                    3, 1e-5f, 0),
                 cudaErrorInvalidValue);
    cr_assert_eq(emb_launch_pool(NULL, NULL, EMB_KDT_F16, NULL, NULL, 1, 64, EMB_POOL_MEAN, 65, 0, 0,
                                 NULL, NULL, 0),
                 cudaErrorInvalidValue);
    cr_assert_eq(emb_launch_bias_act(NULL, EMB_KDT_F16, NULL, 1, 64, 99, 0), cudaErrorInvalidValue);
    emb_kattn_params p = {4, 3, 64, 1.0f, -1, -1, 0, NULL, 0, EMB_KATTN_MMA, NULL}; /* heads % kv_heads != 0 */
    cr_assert_eq(emb_launch_attention(NULL, EMB_KDT_F16, NULL, NULL, 1, 8, &p, 0), cudaErrorInvalidValue);
    p.kv_heads = 2, p.head_dim = 48;                               /* no such head_dim */
    cr_assert_eq(emb_launch_attention(NULL, EMB_KDT_F16, NULL, NULL, 1, 8, &p, 0), cudaErrorInvalidValue);
    float dummy = 0;
    p.head_dim = 64, p.rel_bias = &dummy, p.rel_span = 7;         /* table shorter than max_seqlen */
    cr_assert_eq(emb_launch_attention(NULL, EMB_KDT_F16, NULL, NULL, 1, 8, &p, 0), cudaErrorInvalidValue);
    cr_assert_eq(emb_launch_attention(NULL, EMB_KDT_F16, NULL, NULL, 1, 8, NULL, 0), cudaErrorInvalidValue);
    p.rel_bias = NULL, p.rel_span = 0, p.impl = (emb_kattn_impl)7;  /* no such implementation */
    cr_assert_eq(emb_launch_attention(NULL, EMB_KDT_F16, NULL, NULL, 1, 8, &p, 0), cudaErrorInvalidValue);
    p.impl = EMB_KATTN_MMA, p.scale = 0.0f;   /* the kernels fold the scale into max and exp2: > 0 */
    cr_assert_eq(emb_launch_attention(NULL, EMB_KDT_F16, NULL, NULL, 1, 8, &p, 0), cudaErrorInvalidValue);
    p.scale = NAN;
    cr_assert_eq(emb_launch_attention(NULL, EMB_KDT_F16, NULL, NULL, 1, 8, &p, 0), cudaErrorInvalidValue);
#ifdef EMBEDC_SIM
    int wg = -1;
    emb_error err = {0};
    cr_assert_eq(emb_cuda_wgmma_available(&wg, &err), EMB_OK, "%s", err.message);
    cr_assert_eq(wg, 1, "the simulator runs the sm_90a path");
    cr_assert_eq(emb_launch_wgmma_probe(NULL, 0), cudaErrorInvalidValue);
#endif
    emb_kqk_params q = {.heads = 2, .kv_heads = 1, .head_dim = 64, .rotary_dim = 33, .theta = 1e4f};
    cr_assert_eq(emb_launch_qk_norm_rotary(NULL, EMB_KDT_F16, NULL, 1, 8, &q, 0), cudaErrorInvalidValue);
    q.rotary_dim = 128;                                            /* past head_dim */
    cr_assert_eq(emb_launch_qk_norm_rotary(NULL, EMB_KDT_F16, NULL, 1, 8, &q, 0), cudaErrorInvalidValue);
    q.rotary_dim = 64, q.theta = 0;                                /* no theta and no table */
    cr_assert_eq(emb_launch_qk_norm_rotary(NULL, EMB_KDT_F16, NULL, 1, 8, &q, 0), cudaErrorInvalidValue);
    q.rotary_dim = 0, q.head_dim = 512, q.q_g = &dummy, q.q_eps = 1e-6f;
    cr_assert_eq(emb_launch_qk_norm_rotary(NULL, EMB_KDT_F16, NULL, 1, 8, &q, 0),
                 cudaErrorInvalidValue);   /* head_dim past the staging buffer */
    cr_assert_eq(emb_launch_qk_norm_rotary(NULL, EMB_KDT_F16, NULL, 1, 8, NULL, 0), cudaErrorInvalidValue);
}
