/*
 * The part of Criterion's API that the CUDA test suites use (Test, TestSuite,
 * cr_assert*, cr_expect*, cr_log_*, cr_skip_test), over a tiny runner in one
 * process (cr_shim.c) instead of Criterion's forking one. It exists for the
 * ThreadSanitizer build of the kernel suite (Criterion's runner does not
 * start under TSan: "Could not initialize inheritable arena") and for the
 * real-GPU builds of the CUDA suites (*_gpu, run by tools/gpu-check on GPU
 * machines that have no Criterion); the test bodies stay the very same files
 * as the Criterion builds. kt_util.h and the suites include this instead of
 * <criterion/criterion.h> when KT_CR_SHIM is defined.
 *
 * Like Criterion, each test runs in a process of its own (fork + exec of the
 * runner, so nothing but the test's own work is in it) and --jobs N runs N
 * side by side. Unlike it, a failed cr_assert leaves the test with a longjmp
 * (its allocations leak), .timeout is ignored, and a .disabled test runs when
 * --filter names it. Runner options: --filter GLOB (on "suite/test"),
 * --jobs N, --list (and --verbose, accepted: every line is printed anyway).
 */
#ifndef EMBEDC_TESTS_CUDA_CR_SHIM_H
#define EMBEDC_TESTS_CUDA_CR_SHIM_H

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

struct cr_shim_opts {
    int unused_;   /* keeps `{ .unused_ = 0, __VA_ARGS__ }` valid when there are no options */
    void (*init)(void);
    void (*fini)(void);
    double timeout;
    bool disabled;
    const char *description;
    int signal;
    int exit_code;
};

void cr_shim_register_test(const char *suite, const char *name, void (*fn)(void),
                           const struct cr_shim_opts *opts);
void cr_shim_register_suite(const char *suite, const struct cr_shim_opts *opts);

/* The message of every report starts with the " " that makes an absent
 * format argument a valid (non-empty) format string. */
__attribute__((noreturn, format(printf, 4, 5))) void cr_shim_abort(const char *file, int line,
                                                                   const char *expr, const char *fmt,
                                                                   ...);
__attribute__((format(printf, 4, 5))) void cr_shim_expect_failed(const char *file, int line,
                                                                  const char *expr, const char *fmt,
                                                                  ...);
__attribute__((noreturn, format(printf, 1, 2))) void cr_shim_skip(const char *fmt, ...);
__attribute__((format(printf, 2, 3))) void cr_shim_log(const char *level, const char *fmt, ...);

#define TestSuite(suite, ...)                                                             \
    static const struct cr_shim_opts cr_shim_suite_opts_##suite = {.unused_ = 0, __VA_ARGS__}; \
    __attribute__((constructor)) static void cr_shim_suite_reg_##suite(void) {            \
        cr_shim_register_suite(#suite, &cr_shim_suite_opts_##suite);                      \
    }                                                                                     \
    struct cr_shim_opts /* takes the caller's ';' */

#define Test(suite, name, ...)                                                             \
    static void cr_shim_test_##suite##_##name(void);                                       \
    static const struct cr_shim_opts cr_shim_test_opts_##suite##_##name = {.unused_ = 0,    \
                                                                          __VA_ARGS__};    \
    __attribute__((constructor)) static void cr_shim_test_reg_##suite##_##name(void) {     \
        cr_shim_register_test(#suite, #name, cr_shim_test_##suite##_##name,                \
                              &cr_shim_test_opts_##suite##_##name);                        \
    }                                                                                      \
    static void cr_shim_test_##suite##_##name(void)

/* ---- assertions: cr_assert* abort the test, cr_expect* mark it failed ------- */

#define CR_SHIM_CHECK_(fatal, cond, expr, ...)                                            \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            if (fatal) cr_shim_abort(__FILE__, __LINE__, expr, " " __VA_ARGS__);          \
            else cr_shim_expect_failed(__FILE__, __LINE__, expr, " " __VA_ARGS__);        \
        }                                                                                 \
    } while (0)

#define cr_assert(cond, ...) CR_SHIM_CHECK_(1, cond, #cond, __VA_ARGS__)
#define cr_expect(cond, ...) CR_SHIM_CHECK_(0, cond, #cond, __VA_ARGS__)
#define cr_assert_not(cond, ...) CR_SHIM_CHECK_(1, !(cond), "!(" #cond ")", __VA_ARGS__)
#define cr_expect_not(cond, ...) CR_SHIM_CHECK_(0, !(cond), "!(" #cond ")", __VA_ARGS__)
#define cr_assert_fail(...) CR_SHIM_CHECK_(1, 0, "cr_assert_fail", __VA_ARGS__)
#define cr_expect_fail(...) CR_SHIM_CHECK_(0, 0, "cr_expect_fail", __VA_ARGS__)

#define CR_SHIM_OP_(fatal, op, a, b, ...) \
    CR_SHIM_CHECK_(fatal, (a)op(b), #a " " #op " " #b, __VA_ARGS__)
#define cr_assert_eq(a, b, ...) CR_SHIM_OP_(1, ==, a, b, __VA_ARGS__)
#define cr_assert_neq(a, b, ...) CR_SHIM_OP_(1, !=, a, b, __VA_ARGS__)
#define cr_assert_lt(a, b, ...) CR_SHIM_OP_(1, <, a, b, __VA_ARGS__)
#define cr_assert_leq(a, b, ...) CR_SHIM_OP_(1, <=, a, b, __VA_ARGS__)
#define cr_assert_gt(a, b, ...) CR_SHIM_OP_(1, >, a, b, __VA_ARGS__)
#define cr_assert_geq(a, b, ...) CR_SHIM_OP_(1, >=, a, b, __VA_ARGS__)
#define cr_expect_eq(a, b, ...) CR_SHIM_OP_(0, ==, a, b, __VA_ARGS__)
#define cr_expect_neq(a, b, ...) CR_SHIM_OP_(0, !=, a, b, __VA_ARGS__)
#define cr_expect_lt(a, b, ...) CR_SHIM_OP_(0, <, a, b, __VA_ARGS__)
#define cr_expect_leq(a, b, ...) CR_SHIM_OP_(0, <=, a, b, __VA_ARGS__)
#define cr_expect_gt(a, b, ...) CR_SHIM_OP_(0, >, a, b, __VA_ARGS__)
#define cr_expect_geq(a, b, ...) CR_SHIM_OP_(0, >=, a, b, __VA_ARGS__)

#define cr_assert_null(p, ...) CR_SHIM_CHECK_(1, (p) == NULL, #p " == NULL", __VA_ARGS__)
#define cr_assert_not_null(p, ...) CR_SHIM_CHECK_(1, (p) != NULL, #p " != NULL", __VA_ARGS__)
#define cr_expect_null(p, ...) CR_SHIM_CHECK_(0, (p) == NULL, #p " == NULL", __VA_ARGS__)
#define cr_expect_not_null(p, ...) CR_SHIM_CHECK_(0, (p) != NULL, #p " != NULL", __VA_ARGS__)

#define cr_assert_str_eq(a, b, ...) \
    CR_SHIM_CHECK_(1, strcmp((a), (b)) == 0, #a " equals " #b, __VA_ARGS__)
#define cr_assert_str_neq(a, b, ...) \
    CR_SHIM_CHECK_(1, strcmp((a), (b)) != 0, #a " differs from " #b, __VA_ARGS__)
#define cr_expect_str_eq(a, b, ...) \
    CR_SHIM_CHECK_(0, strcmp((a), (b)) == 0, #a " equals " #b, __VA_ARGS__)
#define cr_assert_str_empty(a, ...) CR_SHIM_CHECK_(1, *(a) == '\0', #a " is empty", __VA_ARGS__)
#define cr_expect_str_empty(a, ...) CR_SHIM_CHECK_(0, *(a) == '\0', #a " is empty", __VA_ARGS__)

#define cr_assert_float_eq(a, b, eps, ...)                                                     \
    CR_SHIM_CHECK_(1, fabs((double)(a) - (double)(b)) <= (double)(eps),                        \
                   "|" #a " - " #b "| <= " #eps, __VA_ARGS__)
#define cr_assert_float_neq(a, b, eps, ...)                                                    \
    CR_SHIM_CHECK_(1, fabs((double)(a) - (double)(b)) > (double)(eps),                         \
                   "|" #a " - " #b "| > " #eps, __VA_ARGS__)
#define cr_expect_float_eq(a, b, eps, ...)                                                     \
    CR_SHIM_CHECK_(0, fabs((double)(a) - (double)(b)) <= (double)(eps),                        \
                   "|" #a " - " #b "| <= " #eps, __VA_ARGS__)

/* ---- logging and skipping ------------------------------------------------- */

#define cr_log_info(...) cr_shim_log("info", " " __VA_ARGS__)
#define cr_log_warn(...) cr_shim_log("warn", " " __VA_ARGS__)
#define cr_log_error(...) cr_shim_log("error", " " __VA_ARGS__)
#define cr_skip_test(...) cr_shim_skip(" " __VA_ARGS__)

#endif
