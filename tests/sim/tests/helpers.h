/* helpers.h: small shared pieces of the simulator's own test suites. */
#ifndef EMBSIM_TEST_HELPERS_H
#define EMBSIM_TEST_HELPERS_H

#include "arch.h"

#include <criterion/criterion.h>

#include <cstdint>
#include <cstring>
#include <vector>

#define CUDA_OK(call)                                                                             \
    do {                                                                                          \
        cudaError_t e_ = (call);                                                                  \
        cr_assert_eq(e_, cudaSuccess, "%s failed: %s", #call, cudaGetErrorString(e_));            \
    } while (0)

/* A device buffer filled from / read back to a host vector. */
template <typename T>
struct DevBuf {
    T *d = nullptr;
    size_t n = 0;
    explicit DevBuf(size_t count) : n(count) { CUDA_OK(cudaMalloc(reinterpret_cast<void **>(&d), count * sizeof(T) + (count == 0))); }
    explicit DevBuf(const std::vector<T> &h) : DevBuf(h.size()) { put(h); }
    ~DevBuf() { cudaFree(d); }
    DevBuf(const DevBuf &) = delete;
    DevBuf &operator=(const DevBuf &) = delete;
    void put(const std::vector<T> &h) { CUDA_OK(cudaMemcpy(d, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice)); }
    std::vector<T> get() const
    {
        std::vector<T> h(n);
        CUDA_OK(cudaMemcpy(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost));
        return h;
    }
};

/* Deterministic pseudo-random numbers for test inputs. */
static inline uint32_t test_rand(uint64_t &s)
{
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<uint32_t>(s >> 33);
}
static inline float test_randf(uint64_t &s) { return static_cast<float>(test_rand(s) % 20001) / 10000.0f - 1.0f; }

/* Runs `fn` under the three scheduling orders; all results must be equal. */
template <typename F>
static auto under_all_orders(F fn) -> decltype(fn())
{
    embsim_set_order(EMBSIM_FORWARD, 0);
    auto a = fn();
    embsim_set_order(EMBSIM_REVERSE, 0);
    auto b = fn();
    embsim_set_order(EMBSIM_SHUFFLE, 777);
    auto c = fn();
    cr_assert(a == b && a == c, "results differ between scheduling orders");
    return a;
}

#endif
