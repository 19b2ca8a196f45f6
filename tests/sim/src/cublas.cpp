/* cublas.cpp: the cuBLAS subset the project uses, on the CPU.
 *
 * cublasGemmEx and cublasGemmStridedBatchedEx for fp16, bf16 and fp32
 * operands with fp32 compute, every transpose, and cuBLASLt's cublasLtMatmul
 * (D = C in place, no batches) with the DEFAULT, BIAS, GELU, GELU_BIAS, RELU
 * and RELU_BIAS epilogues (bias per row of D in D's type, added to the fp32
 * result; GELU in the tanh form cuBLASLt computes, in fp32; ReLU max(x, 0),
 * NaN to 0 as cuBLASLt does); products accumulated in
 * double and rounded once to the output type, so the result is at least as
 * accurate as the GPU's and tests can compare against it with a tolerance.
 * Like the real library, a call only queues the work on the handle's stream,
 * and beta == 0 never reads C (which may hold NaN). An injected
 * out-of-memory (embsim_inject_oom) makes a GEMM return
 * CUBLAS_STATUS_ALLOC_FAILED.
 */
#include "internal.h"

#include <cublas_v2.h>
#include <cublasLt.h>

#include <cmath>
#include <cstring>

#include <array>
#include <cstdio>

struct cublasContext {
    cudaStream_t stream = nullptr;
    cublasMath_t math = CUBLAS_DEFAULT_MATH;
    cublasPointerMode_t pointer_mode = CUBLAS_POINTER_MODE_HOST;
    void *workspace = nullptr;
    size_t workspace_bytes = 0;
};

namespace {

bool supported_type(cudaDataType t) { return t == CUDA_R_16F || t == CUDA_R_16BF || t == CUDA_R_32F; }

size_t type_size(cudaDataType t) { return t == CUDA_R_32F ? 4 : 2; }

float load(const void *p, size_t i, cudaDataType t)
{
    switch (t) {
    case CUDA_R_16F: return __half2float(static_cast<const __half *>(p)[i]);
    case CUDA_R_16BF: return __bfloat162float(static_cast<const __nv_bfloat16 *>(p)[i]);
    default: return static_cast<const float *>(p)[i];
    }
}

void store(void *p, size_t i, cudaDataType t, double v)
{
    switch (t) {
    case CUDA_R_16F: static_cast<__half *>(p)[i] = __double2half(v); break;
    case CUDA_R_16BF: static_cast<__nv_bfloat16 *>(p)[i] = __double2bfloat16(v); break;
    default: static_cast<float *>(p)[i] = static_cast<float>(v); break;
    }
}

struct Gemm {
    cublasOperation_t ta, tb;
    int m, n, k;
    const void *alpha, *beta;
    bool device_scalars;
    const void *A;
    cudaDataType at;
    int lda;
    long long sa;
    const void *B;
    cudaDataType bt;
    int ldb;
    long long sb;
    void *C;
    cudaDataType ct;
    int ldc;
    long long sc;
    int batch;
    /* cublasLtMatmul's epilogue: + bias[i] (row i of D), then GELU (tanh form) or ReLU. */
    const void *bias = nullptr;
    bool gelu = false, relu = false;
};

/* cuBLASLt's GELU epilogue: the tanh approximation, in fp32. */
float gelu_tanh(float x)
{
    const float k = 0.7978845608028654f; /* sqrt(2 / pi) */
    return 0.5f * x * (1.0f + std::tanh(k * (x + 0.044715f * x * x * x)));
}

/* sum_p a[p] b[p] in double, as 8 interleaved partial sums added in a fixed
 * order: the same value for an element whatever the shape of the call it
 * is part of (multi-device runs are compared bit for bit), and about twice
 * as fast as one chain of dependent adds (perf on the real
 * all-mpnet-base-v2 test: GEMM time ~82 s -> ~37 s). */
double dot(const double *a, const double *b, int k)
{
    /* Named accumulators, not an array: GCC keeps an array's partial sums in
     * memory and every add then waits on a store. */
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
    int p = 0;
    for (; p + 8 <= k; p += 8) {
        s0 += a[p] * b[p];
        s1 += a[p + 1] * b[p + 1];
        s2 += a[p + 2] * b[p + 2];
        s3 += a[p + 3] * b[p + 3];
        s4 += a[p + 4] * b[p + 4];
        s5 += a[p + 5] * b[p + 5];
        s6 += a[p + 6] * b[p + 6];
        s7 += a[p + 7] * b[p + 7];
    }
    double tail = 0;
    for (; p < k; p++)
        tail += a[p] * b[p];
    return (((s0 + s4) + (s1 + s5)) + ((s2 + s6) + (s3 + s7))) + tail;
}

/* Column-major, as cuBLAS: C[i + j*ldc] = alpha * sum_p op(A)[i][p] op(B)[p][j] + beta * C. */
void run_gemm(const Gemm &g)
{
    float alpha = *static_cast<const float *>(g.alpha);
    float beta = *static_cast<const float *>(g.beta);
    std::vector<double> a(static_cast<size_t>(g.m) * g.k), b(static_cast<size_t>(g.n) * g.k);
    for (int z = 0; z < g.batch; z++) {
        const char *A = static_cast<const char *>(g.A) + z * g.sa * static_cast<long long>(type_size(g.at));
        const char *B = static_cast<const char *>(g.B) + z * g.sb * static_cast<long long>(type_size(g.bt));
        char *C = static_cast<char *>(g.C) + z * g.sc * static_cast<long long>(type_size(g.ct));
        /* Gather op(A) by rows and op(B) by columns so the dot product is contiguous. */
        for (int i = 0; i < g.m; i++)
            for (int p = 0; p < g.k; p++) {
                size_t idx = g.ta == CUBLAS_OP_N ? static_cast<size_t>(i) + static_cast<size_t>(p) * g.lda
                                                 : static_cast<size_t>(p) + static_cast<size_t>(i) * g.lda;
                a[static_cast<size_t>(i) * g.k + p] = load(A, idx, g.at);
            }
        for (int j = 0; j < g.n; j++)
            for (int p = 0; p < g.k; p++) {
                size_t idx = g.tb == CUBLAS_OP_N ? static_cast<size_t>(p) + static_cast<size_t>(j) * g.ldb
                                                 : static_cast<size_t>(j) + static_cast<size_t>(p) * g.ldb;
                b[static_cast<size_t>(j) * g.k + p] = load(B, idx, g.bt);
            }
        for (int j = 0; j < g.n; j++)
            for (int i = 0; i < g.m; i++) {
                const double acc = dot(&a[static_cast<size_t>(i) * g.k], &b[static_cast<size_t>(j) * g.k], g.k);
                size_t ci = static_cast<size_t>(i) + static_cast<size_t>(j) * g.ldc;
                double v = static_cast<double>(alpha) * acc;
                if (beta != 0.0f)
                    v += static_cast<double>(beta) * load(C, ci, g.ct);
                if (g.bias || g.gelu || g.relu) {
                    float f = static_cast<float>(v);
                    if (g.bias)
                        f += load(g.bias, static_cast<size_t>(i), g.ct);
                    if (g.gelu)
                        f = gelu_tanh(f);
                    if (g.relu)
                        f = f > 0.0f ? f : 0.0f;
                    v = f;
                }
                store(C, ci, g.ct, v);
            }
    }
}

cublasStatus_t enqueue_gemm(cublasHandle_t h, Gemm g, cublasComputeType_t compute)
{
    if (!h)
        return CUBLAS_STATUS_NOT_INITIALIZED;
    if (g.m < 0 || g.n < 0 || g.k < 0 || g.batch < 0 || !g.alpha || !g.beta)
        return CUBLAS_STATUS_INVALID_VALUE;
    bool ok_ops = (g.ta == CUBLAS_OP_N || g.ta == CUBLAS_OP_T || g.ta == CUBLAS_OP_C) &&
                  (g.tb == CUBLAS_OP_N || g.tb == CUBLAS_OP_T || g.tb == CUBLAS_OP_C);
    if (!ok_ops)
        return CUBLAS_STATUS_INVALID_VALUE;
    int rows_a = g.ta == CUBLAS_OP_N ? g.m : g.k;
    int rows_b = g.tb == CUBLAS_OP_N ? g.k : g.n;
    if (g.lda < std::max(1, rows_a) || g.ldb < std::max(1, rows_b) || g.ldc < std::max(1, g.m))
        return CUBLAS_STATUS_INVALID_VALUE;
    if (!supported_type(g.at) || !supported_type(g.bt) || !supported_type(g.ct) || g.at != g.bt)
        return CUBLAS_STATUS_NOT_SUPPORTED;
    switch (compute) {
    case CUBLAS_COMPUTE_32F: case CUBLAS_COMPUTE_32F_PEDANTIC: case CUBLAS_COMPUTE_32F_FAST_16F:
    case CUBLAS_COMPUTE_32F_FAST_16BF: case CUBLAS_COMPUTE_32F_FAST_TF32:
        break;
    default:
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    if (g.m == 0 || g.n == 0 || g.batch == 0)
        return CUBLAS_STATUS_SUCCESS;
    /* cuBLAS allocates (its default workspace, lazily loaded kernels) and
     * reports a failed cudaMalloc so (embsim_inject_oom). */
    if (embsim::inject_oom_now())
        return CUBLAS_STATUS_ALLOC_FAILED;
    /* Host-mode scalars are read at the call, device-mode ones when it runs. */
    auto scalars = std::make_shared<std::array<float, 2>>();
    if (!g.device_scalars) {
        (*scalars)[0] = *static_cast<const float *>(g.alpha);
        (*scalars)[1] = *static_cast<const float *>(g.beta);
        g.alpha = &(*scalars)[0];
        g.beta = &(*scalars)[1];
    }
    embsim::enqueue_op(h->stream, g.bias || g.gelu || g.relu ? "cublasLtMatmul" : "cublasGemmEx", [g, scalars]() -> cudaError_t {
        run_gemm(g);
        return cudaSuccess;
    });
    return CUBLAS_STATUS_SUCCESS;
}

} // namespace

extern "C" {

cublasStatus_t cublasCreate_v2(cublasHandle_t *handle)
{
    *handle = new cublasContext();
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy_v2(cublasHandle_t handle)
{
    delete handle;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream_v2(cublasHandle_t handle, cudaStream_t stream)
{
    if (!handle)
        return CUBLAS_STATUS_NOT_INITIALIZED;
    handle->stream = stream;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGetStream_v2(cublasHandle_t handle, cudaStream_t *stream)
{
    if (!handle)
        return CUBLAS_STATUS_NOT_INITIALIZED;
    *stream = handle->stream;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode)
{
    if (!handle)
        return CUBLAS_STATUS_NOT_INITIALIZED;
    handle->math = mode;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGetMathMode(cublasHandle_t handle, cublasMath_t *mode)
{
    if (!handle)
        return CUBLAS_STATUS_NOT_INITIALIZED;
    *mode = handle->math;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetPointerMode_v2(cublasHandle_t handle, cublasPointerMode_t mode)
{
    if (!handle)
        return CUBLAS_STATUS_NOT_INITIALIZED;
    handle->pointer_mode = mode;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGetPointerMode_v2(cublasHandle_t handle, cublasPointerMode_t *mode)
{
    if (!handle)
        return CUBLAS_STATUS_NOT_INITIALIZED;
    *mode = handle->pointer_mode;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetWorkspace_v2(cublasHandle_t handle, void *workspace, size_t bytes)
{
    if (!handle)
        return CUBLAS_STATUS_NOT_INITIALIZED;
    handle->workspace = workspace;
    handle->workspace_bytes = bytes;
    return CUBLAS_STATUS_SUCCESS;
}

const char *cublasGetStatusString(cublasStatus_t status)
{
    switch (status) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    default: return "CUBLAS_STATUS_UNKNOWN";
    }
}

const char *cublasGetStatusName(cublasStatus_t status) { return cublasGetStatusString(status); }

cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,
                            const void *alpha, const void *A, cudaDataType Atype, int lda, const void *B,
                            cudaDataType Btype, int ldb, const void *beta, void *C, cudaDataType Ctype, int ldc,
                            cublasComputeType_t computeType, cublasGemmAlgo_t)
{
    Gemm g{transa, transb, m, n, k, alpha, beta, handle && handle->pointer_mode == CUBLAS_POINTER_MODE_DEVICE,
           A, Atype, lda, 0, B, Btype, ldb, 0, C, Ctype, ldc, 0, 1};
    return enqueue_gemm(handle, g, computeType);
}

cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m,
                                          int n, int k, const void *alpha, const void *A, cudaDataType Atype, int lda,
                                          long long int strideA, const void *B, cudaDataType Btype, int ldb,
                                          long long int strideB, const void *beta, void *C, cudaDataType Ctype, int ldc,
                                          long long int strideC, int batchCount, cublasComputeType_t computeType,
                                          cublasGemmAlgo_t)
{
    Gemm g{transa, transb, m, n, k, alpha, beta, handle && handle->pointer_mode == CUBLAS_POINTER_MODE_DEVICE,
           A, Atype, lda, strideA, B, Btype, ldb, strideB, C, Ctype, ldc, strideC, batchCount};
    return enqueue_gemm(handle, g, computeType);
}

/* ---- cuBLASLt ------------------------------------------------------------------------------- */

struct LtDesc {
    cublasComputeType_t compute;
    cudaDataType_t scale;
    int32_t ta, tb;
    uint32_t epilogue;
    const void *bias;
    int32_t pointer_mode;
};
struct LtLayout {
    cudaDataType type;
    uint64_t rows, cols;
    int64_t ld;
};
static_assert(sizeof(LtDesc) <= sizeof(cublasLtMatmulDescOpaque_t), "LtDesc fits the opaque descriptor");
static_assert(sizeof(LtLayout) <= sizeof(cublasLtMatrixLayoutOpaque_t), "LtLayout fits the opaque layout");

static LtDesc *lt_desc(cublasLtMatmulDesc_t d) { return reinterpret_cast<LtDesc *>(d->data); }
static LtLayout *lt_layout(cublasLtMatrixLayout_t l) { return reinterpret_cast<LtLayout *>(l->data); }

struct cublasLtContext {
    cublasContext blas;
};

cublasStatus_t cublasLtCreate(cublasLtHandle_t *h)
{
    *h = new cublasLtContext();
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtDestroy(cublasLtHandle_t h)
{
    delete h;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *d, cublasComputeType_t compute, cudaDataType_t scale)
{
    auto *o = new cublasLtMatmulDescOpaque_t();
    LtDesc v{compute, scale, CUBLAS_OP_N, CUBLAS_OP_N, CUBLASLT_EPILOGUE_DEFAULT, nullptr, 0};
    memcpy(o->data, &v, sizeof v);
    *d = o;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d)
{
    delete d;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr,
                                              const void *buf, size_t bytes)
{
    if (!d || !buf)
        return CUBLAS_STATUS_INVALID_VALUE;
    LtDesc *v = lt_desc(d);
    switch (attr) {
    case CUBLASLT_MATMUL_DESC_TRANSA:
    case CUBLASLT_MATMUL_DESC_TRANSB:
        if (bytes != sizeof(int32_t))
            return CUBLAS_STATUS_INVALID_VALUE;
        memcpy(attr == CUBLASLT_MATMUL_DESC_TRANSA ? &v->ta : &v->tb, buf, bytes);
        return CUBLAS_STATUS_SUCCESS;
    case CUBLASLT_MATMUL_DESC_EPILOGUE:
        if (bytes != sizeof(uint32_t))
            return CUBLAS_STATUS_INVALID_VALUE;
        memcpy(&v->epilogue, buf, bytes);
        return CUBLAS_STATUS_SUCCESS;
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER:
        if (bytes != sizeof(void *))
            return CUBLAS_STATUS_INVALID_VALUE;
        memcpy(&v->bias, buf, bytes);
        return CUBLAS_STATUS_SUCCESS;
    case CUBLASLT_MATMUL_DESC_POINTER_MODE:
        if (bytes != sizeof(int32_t))
            return CUBLAS_STATUS_INVALID_VALUE;
        memcpy(&v->pointer_mode, buf, bytes);
        return CUBLAS_STATUS_SUCCESS;
    default:
        fprintf(stderr, "embsim: cublasLtMatmulDescSetAttribute: attribute %d is not simulated\n", (int)attr);
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *l, cudaDataType type, uint64_t rows, uint64_t cols,
                                          int64_t ld)
{
    auto *o = new cublasLtMatrixLayoutOpaque_t();
    LtLayout v{type, rows, cols, ld};
    memcpy(o->data, &v, sizeof v);
    *l = o;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l)
{
    delete l;
    return CUBLAS_STATUS_SUCCESS;
}

/* D = epilogue(alpha op(A) op(B) + beta C): the shapes from the layouts (A and
 * B as stored, before op), D must be C (in place) with C's layout. */
cublasStatus_t cublasLtMatmul(cublasLtHandle_t h, cublasLtMatmulDesc_t desc, const void *alpha, const void *A,
                              cublasLtMatrixLayout_t Adesc, const void *B, cublasLtMatrixLayout_t Bdesc,
                              const void *beta, const void *C, cublasLtMatrixLayout_t Cdesc, void *D,
                              cublasLtMatrixLayout_t Ddesc, const cublasLtMatmulAlgo_t *, void *, size_t,
                              cudaStream_t stream)
{
    if (!h || !desc || !Adesc || !Bdesc || !Cdesc || !Ddesc)
        return CUBLAS_STATUS_INVALID_VALUE;
    const LtDesc *v = lt_desc(desc);
    const LtLayout *a = lt_layout(Adesc), *b = lt_layout(Bdesc), *c = lt_layout(Cdesc), *d = lt_layout(Ddesc);
    if (D != C || memcmp(c, d, sizeof *c) != 0) {
        fprintf(stderr, "embsim: cublasLtMatmul: only D == C with one layout is simulated\n");
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    if (v->scale != CUDA_R_32F)
        return CUBLAS_STATUS_NOT_SUPPORTED;
    const uint32_t e = v->epilogue;
    const bool bias = e == CUBLASLT_EPILOGUE_BIAS || e == CUBLASLT_EPILOGUE_GELU_BIAS || e == CUBLASLT_EPILOGUE_RELU_BIAS;
    const bool gelu = e == CUBLASLT_EPILOGUE_GELU || e == CUBLASLT_EPILOGUE_GELU_BIAS;
    const bool relu = e == CUBLASLT_EPILOGUE_RELU || e == CUBLASLT_EPILOGUE_RELU_BIAS;
    if (!bias && !gelu && !relu && e != CUBLASLT_EPILOGUE_DEFAULT)
        return CUBLAS_STATUS_NOT_SUPPORTED;
    if (bias && !v->bias)
        return CUBLAS_STATUS_INVALID_VALUE;
    const auto ta = static_cast<cublasOperation_t>(v->ta), tb = static_cast<cublasOperation_t>(v->tb);
    const uint64_t m = ta == CUBLAS_OP_N ? a->rows : a->cols, k = ta == CUBLAS_OP_N ? a->cols : a->rows;
    const uint64_t n = tb == CUBLAS_OP_N ? b->cols : b->rows, kb = tb == CUBLAS_OP_N ? b->rows : b->cols;
    if (k != kb || c->rows != m || c->cols != n)
        return CUBLAS_STATUS_INVALID_VALUE;
    h->blas.stream = stream;
    h->blas.pointer_mode = v->pointer_mode ? CUBLAS_POINTER_MODE_DEVICE : CUBLAS_POINTER_MODE_HOST;
    Gemm g{ta, tb, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, beta,
           v->pointer_mode != 0, A, a->type, static_cast<int>(a->ld), 0, B, b->type, static_cast<int>(b->ld), 0, D,
           c->type, static_cast<int>(c->ld), 0, 1, bias ? v->bias : nullptr, gelu, relu};
    return enqueue_gemm(&h->blas, g, v->compute);
}

const char *cublasLtGetStatusString(cublasStatus_t status) { return cublasGetStatusString(status); }

cublasStatus_t cublasSgemm_v2(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                              int k, const float *alpha, const float *A, int lda, const float *B, int ldb,
                              const float *beta, float *C, int ldc)
{
    return cublasGemmEx(handle, transa, transb, m, n, k, alpha, A, CUDA_R_32F, lda, B, CUDA_R_32F, ldb, beta, C,
                        CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
}

} // extern "C"
