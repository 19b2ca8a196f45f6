/* test_cublas.cu: the cuBLAS subset against a plain column-major matmul,
 * for every transpose and every operand type, plus the batched form and
 * cuBLASLt's matmul with its bias / GELU epilogues. */
#include "helpers.h"

#include <cublasLt.h>
#include <cublas_v2.h>

#include <cmath>

namespace {

template <typename T> T from_f(float f);
template <> float from_f<float>(float f) { return f; }
template <> __half from_f<__half>(float f) { return __float2half(f); }
template <> __nv_bfloat16 from_f<__nv_bfloat16>(float f) { return __float2bfloat16(f); }
float to_f(float f) { return f; }
float to_f(__half h) { return __half2float(h); }
float to_f(__nv_bfloat16 b) { return __bfloat162float(b); }
template <typename T> cudaDataType type_of();
template <> cudaDataType type_of<float>() { return CUDA_R_32F; }
template <> cudaDataType type_of<__half>() { return CUDA_R_16F; }
template <> cudaDataType type_of<__nv_bfloat16>() { return CUDA_R_16BF; }
template <typename T> float eps() { return sizeof(T) == 4 ? 1e-6f : std::is_same_v<T, __half> ? 1e-3f : 8e-3f; }

/* C = alpha op(A) op(B) + beta C, column-major, with m=33 n=17 k=31 and
 * leading dimensions larger than needed. */
template <typename T>
void check_gemm(cublasOperation_t ta, cublasOperation_t tb, float beta)
{
    const int m = 33, n = 17, k = 31;
    int rows_a = ta == CUBLAS_OP_N ? m : k, cols_a = ta == CUBLAS_OP_N ? k : m;
    int rows_b = tb == CUBLAS_OP_N ? k : n, cols_b = tb == CUBLAS_OP_N ? n : k;
    int lda = rows_a + 3, ldb = rows_b + 1, ldc = m + 2;
    uint64_t seed = 99;
    std::vector<T> A(static_cast<size_t>(lda * cols_a)), B(static_cast<size_t>(ldb * cols_b)), C(static_cast<size_t>(ldc * n));
    for (T &x : A)
        x = from_f<T>(test_randf(seed));
    for (T &x : B)
        x = from_f<T>(test_randf(seed));
    /* With beta == 0, C must not be read: fill it with NaN. */
    for (T &x : C)
        x = beta == 0.0f ? from_f<T>(NAN) : from_f<T>(test_randf(seed));
    DevBuf<T> dA(A), dB(B), dC(C);
    cublasHandle_t h;
    cr_assert_eq(cublasCreate(&h), CUBLAS_STATUS_SUCCESS);
    cudaStream_t s;
    CUDA_OK(cudaStreamCreate(&s));
    cr_assert_eq(cublasSetStream(h, s), CUBLAS_STATUS_SUCCESS);
    cr_assert_eq(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH), CUBLAS_STATUS_SUCCESS);
    float alpha = 0.75f;
    cr_assert_eq(cublasGemmEx(h, ta, tb, m, n, k, &alpha, dA.d, type_of<T>(), lda, dB.d, type_of<T>(), ldb, &beta, dC.d,
                              type_of<T>(), ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                 CUBLAS_STATUS_SUCCESS);
    CUDA_OK(cudaStreamSynchronize(s));
    std::vector<T> R = dC.get();
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            double acc = 0;
            for (int p = 0; p < k; p++) {
                float a = to_f(ta == CUBLAS_OP_N ? A[static_cast<size_t>(i + p * lda)] : A[static_cast<size_t>(p + i * lda)]);
                float b = to_f(tb == CUBLAS_OP_N ? B[static_cast<size_t>(p + j * ldb)] : B[static_cast<size_t>(j + p * ldb)]);
                acc += static_cast<double>(a) * b;
            }
            double expect = alpha * acc + (beta != 0.0f ? beta * to_f(C[static_cast<size_t>(i + j * ldc)]) : 0.0);
            float got = to_f(R[static_cast<size_t>(i + j * ldc)]);
            cr_assert(std::fabs(got - expect) <= eps<T>() * (std::fabs(expect) + 1.0), "ta=%d tb=%d (%d,%d): %f vs %f",
                      ta, tb, i, j, static_cast<double>(got), expect);
        }
    /* Padding rows of C are untouched. */
    cr_assert(std::isnan(to_f(R[static_cast<size_t>(m)])) == (beta == 0.0f));
    cublasDestroy(h);
    CUDA_OK(cudaStreamDestroy(s));
}

template <typename T>
void check_all_transposes()
{
    for (cublasOperation_t ta : {CUBLAS_OP_N, CUBLAS_OP_T})
        for (cublasOperation_t tb : {CUBLAS_OP_N, CUBLAS_OP_T})
            for (float beta : {0.0f, 0.5f})
                check_gemm<T>(ta, tb, beta);
}

} // namespace

Test(cublas, gemm_ex_fp32) { check_all_transposes<float>(); }
Test(cublas, gemm_ex_fp16) { check_all_transposes<__half>(); }
Test(cublas, gemm_ex_bf16) { check_all_transposes<__nv_bfloat16>(); }

/* Batched: Q K^T per head, the attention-score shape. */
Test(cublas, gemm_strided_batched)
{
    const int batch = 3, m = 7, n = 5, k = 8;
    uint64_t seed = 5;
    std::vector<__half> A(static_cast<size_t>(batch * k * m)), B(static_cast<size_t>(batch * k * n));
    for (auto &x : A)
        x = __float2half(test_randf(seed));
    for (auto &x : B)
        x = __float2half(test_randf(seed));
    DevBuf<__half> dA(A), dB(B);
    DevBuf<float> dC(static_cast<size_t>(batch * m * n));
    cublasHandle_t h;
    cublasCreate(&h);
    float alpha = 1.0f, beta = 0.0f;
    /* C_b (m x n) = A_b^T (A_b stored k x m) * B_b (k x n) */
    cr_assert_eq(cublasGemmStridedBatchedEx(h, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &alpha, dA.d, CUDA_R_16F, k, k * m, dB.d,
                                            CUDA_R_16F, k, k * n, &beta, dC.d, CUDA_R_32F, m, m * n, batch,
                                            CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                 CUBLAS_STATUS_SUCCESS);
    std::vector<float> C = dC.get(); /* blocking copy on the legacy stream runs it */
    for (int z = 0; z < batch; z++)
        for (int j = 0; j < n; j++)
            for (int i = 0; i < m; i++) {
                double acc = 0;
                for (int p = 0; p < k; p++)
                    acc += static_cast<double>(__half2float(A[static_cast<size_t>(z * k * m + i * k + p)])) *
                           __half2float(B[static_cast<size_t>(z * k * n + j * k + p)]);
                cr_assert_float_eq(C[static_cast<size_t>(z * m * n + j * m + i)], acc, 1e-5);
            }
    cublasDestroy(h);
}

Test(cublas, invalid_arguments)
{
    cublasHandle_t h;
    cublasCreate(&h);
    float one = 1.0f;
    float *p = nullptr;
    cr_assert_eq(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &one, p, CUDA_R_32F, 3, p, CUDA_R_32F, 4, &one, p,
                              CUDA_R_32F, 4, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                 CUBLAS_STATUS_INVALID_VALUE, "lda < m");
    cr_assert_eq(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &one, p, CUDA_R_8I, 4, p, CUDA_R_8I, 4, &one, p,
                              CUDA_R_32F, 4, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                 CUBLAS_STATUS_NOT_SUPPORTED);
    cublasDestroy(h);
}

/* An injected out-of-memory fails one GEMM with ALLOC_FAILED, then they run. */
Test(cublas, injected_out_of_memory)
{
    cublasHandle_t h;
    cublasCreate(&h);
    const float one = 1.0f, zero = 0.0f;
    DevBuf<float> a(std::vector<float>(4, 1.0f)), c(4);
    long before = embsim_oom_injected();
    embsim_inject_oom(0, 1);
    cr_assert_eq(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 2, &one, a.d, 2, a.d, 2, &zero, c.d, 2),
                 CUBLAS_STATUS_ALLOC_FAILED);
    cr_assert_eq(embsim_oom_injected(), before + 1);
    cr_assert_eq(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 2, &one, a.d, 2, a.d, 2, &zero, c.d, 2),
                 CUBLAS_STATUS_SUCCESS);
    for (float v : c.get())
        cr_assert_eq(v, 2.0f);
    embsim_inject_oom(0, 0);
    cublasDestroy(h);
}

/* cublasLtMatmul as the CUDA backend calls it (y[rows, out] = x W^T: A = W
 * stored [in, out], op T; B = x stored [in, rows]; D = C in place), with the
 * DEFAULT, BIAS, GELU, GELU_BIAS, RELU and RELU_BIAS epilogues: bias per row
 * of D, GELU in the tanh form, ReLU, in fp32 on the result, against a host
 * reference. An unsupported epilogue and D != C are refused. */
Test(cublas, lt_matmul_epilogues)
{
    const int in = 40, out = 24, rows = 13;
    uint64_t seed = 7;
    std::vector<__half> W(static_cast<size_t>(in * out)), X(static_cast<size_t>(in * rows)), bias(out);
    for (auto &x : W)
        x = __float2half(test_randf(seed));
    for (auto &x : X)
        x = __float2half(test_randf(seed));
    for (auto &x : bias)
        x = __float2half(2.0f * test_randf(seed));
    DevBuf<__half> dW(W), dX(X), dB(bias), dY(std::vector<__half>(static_cast<size_t>(out * rows), __float2half(NAN)));
    cublasLtHandle_t lt;
    cr_assert_eq(cublasLtCreate(&lt), CUBLAS_STATUS_SUCCESS);
    cublasLtMatmulDesc_t desc;
    cr_assert_eq(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), CUBLAS_STATUS_SUCCESS);
    const int32_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    cr_assert_eq(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta), CUBLAS_STATUS_SUCCESS);
    cr_assert_eq(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb), CUBLAS_STATUS_SUCCESS);
    const void *bp = dB.d;
    cr_assert_eq(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bp, sizeof bp),
                 CUBLAS_STATUS_SUCCESS);
    cublasLtMatrixLayout_t a, b, d;
    cr_assert_eq(cublasLtMatrixLayoutCreate(&a, CUDA_R_16F, in, out, in), CUBLAS_STATUS_SUCCESS);
    cr_assert_eq(cublasLtMatrixLayoutCreate(&b, CUDA_R_16F, in, rows, in), CUBLAS_STATUS_SUCCESS);
    cr_assert_eq(cublasLtMatrixLayoutCreate(&d, CUDA_R_16F, out, rows, out), CUBLAS_STATUS_SUCCESS);
    const float one = 1.0f, zero = 0.0f;
    const uint32_t epis[] = {CUBLASLT_EPILOGUE_DEFAULT, CUBLASLT_EPILOGUE_BIAS, CUBLASLT_EPILOGUE_GELU,
                             CUBLASLT_EPILOGUE_GELU_BIAS, CUBLASLT_EPILOGUE_RELU, CUBLASLT_EPILOGUE_RELU_BIAS};
    for (uint32_t epi : epis) {
        cr_assert_eq(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi),
                     CUBLAS_STATUS_SUCCESS);
        cr_assert_eq(cublasLtMatmul(lt, desc, &one, dW.d, a, dX.d, b, &zero, dY.d, d, dY.d, d, nullptr, nullptr, 0, 0),
                     CUBLAS_STATUS_SUCCESS);
        CUDA_OK(cudaDeviceSynchronize());
        std::vector<__half> Y = dY.get();
        const bool has_bias = epi == CUBLASLT_EPILOGUE_BIAS || epi == CUBLASLT_EPILOGUE_GELU_BIAS ||
                              epi == CUBLASLT_EPILOGUE_RELU_BIAS;
        const bool has_gelu = epi == CUBLASLT_EPILOGUE_GELU || epi == CUBLASLT_EPILOGUE_GELU_BIAS;
        const bool has_relu = epi == CUBLASLT_EPILOGUE_RELU || epi == CUBLASLT_EPILOGUE_RELU_BIAS;
        for (int r = 0; r < rows; r++)
            for (int o = 0; o < out; o++) {
                double acc = 0;
                for (int p = 0; p < in; p++)
                    acc += static_cast<double>(__half2float(W[static_cast<size_t>(o * in + p)])) *
                           __half2float(X[static_cast<size_t>(r * in + p)]);
                double v = acc + (has_bias ? __half2float(bias[static_cast<size_t>(o)]) : 0.0);
                if (has_gelu)
                    v = 0.5 * v * (1.0 + std::tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
                if (has_relu)
                    v = v > 0 ? v : 0;
                const float got = __half2float(Y[static_cast<size_t>(r * out + o)]);
                cr_assert(std::fabs(got - v) <= 2e-3 * (std::fabs(v) + 1.0), "epilogue %u (%d,%d): %f vs %f", epi, r,
                          o, static_cast<double>(got), v);
            }
    }
    const uint32_t dgelu = CUBLASLT_EPILOGUE_DGELU;
    cr_assert_eq(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &dgelu, sizeof dgelu),
                 CUBLAS_STATUS_SUCCESS);
    cr_assert_eq(cublasLtMatmul(lt, desc, &one, dW.d, a, dX.d, b, &zero, dY.d, d, dY.d, d, nullptr, nullptr, 0, 0),
                 CUBLAS_STATUS_NOT_SUPPORTED);
    cr_assert_eq(cublasLtMatmul(lt, desc, &one, dW.d, a, dX.d, b, &zero, dX.d, d, dY.d, d, nullptr, nullptr, 0, 0),
                 CUBLAS_STATUS_NOT_SUPPORTED);
    cublasLtMatrixLayoutDestroy(a);
    cublasLtMatrixLayoutDestroy(b);
    cublasLtMatrixLayoutDestroy(d);
    cublasLtMatmulDescDestroy(desc);
    cublasLtDestroy(lt);
}
