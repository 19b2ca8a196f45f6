/*
 * The runner behind cr_shim.h: tests register themselves from constructors;
 * main() runs each selected test, in suite/name order, in a fresh process
 * (this executable again with --child; --jobs N side by side), between its
 * suite's and its own .init/.fini, and leaves a failed cr_assert or a
 * cr_skip_test through longjmp. Exit status 0 when every test passed or
 * skipped, 1 otherwise; a child killed by a signal or ending with a
 * sanitizer's exit status is a failed test.
 */
#include "cr_shim.h"

#include <fnmatch.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    const char *suite, *name;
    void (*fn)(void);
    const struct cr_shim_opts *opts;
} shim_test;

typedef struct {
    const char *name;
    const struct cr_shim_opts *opts;
} shim_suite;

static shim_test *tests;
static int ntests, cap_tests;
static shim_suite *suites;
static int nsuites, cap_suites;

enum { RUNNING, FAILED, SKIPPED };
static jmp_buf test_exit;
static int in_test, test_state;
static const char *cur_suite = "", *cur_name = "";

static void *grow(void *p, int *cap, size_t elem) {
    *cap = *cap ? 2 * *cap : 64;
    p = realloc(p, (size_t)*cap * elem);
    if (!p) {
        fputs("cr_shim: out of memory\n", stderr);
        exit(2);
    }
    return p;
}

void cr_shim_register_test(const char *suite, const char *name, void (*fn)(void),
                           const struct cr_shim_opts *opts) {
    if (ntests == cap_tests) tests = grow(tests, &cap_tests, sizeof *tests);
    tests[ntests++] = (shim_test){suite, name, fn, opts};
}

void cr_shim_register_suite(const char *suite, const struct cr_shim_opts *opts) {
    if (nsuites == cap_suites) suites = grow(suites, &cap_suites, sizeof *suites);
    suites[nsuites++] = (shim_suite){suite, opts};
}

/* Messages arrive as " " + the caller's format (see cr_shim.h). */
static void vreport(const char *tag, const char *file, int line, const char *expr, const char *fmt,
                    va_list ap) {
    char msg[2048];
    vsnprintf(msg, sizeof msg, fmt, ap);
    const char *m = msg[0] == ' ' ? msg + 1 : msg;
    fprintf(stderr, "[%s] %s::%s: %s:%d: %s%s%s\n", tag, cur_suite, cur_name, file, line,
            *m ? m : "assertion failed", expr ? ": " : "", expr ? expr : "");
}

void cr_shim_abort(const char *file, int line, const char *expr, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vreport("FAIL", file, line, expr, fmt, ap);
    va_end(ap);
    test_state = FAILED;
    if (in_test) longjmp(test_exit, 1);
    exit(1);   /* from a .init/.fini outside the test body */
}

void cr_shim_expect_failed(const char *file, int line, const char *expr, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vreport("FAIL", file, line, expr, fmt, ap);
    va_end(ap);
    test_state = FAILED;
}

void cr_shim_skip(const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "[SKIP] %s::%s:%s\n", cur_suite, cur_name, msg);
    if (test_state != FAILED) test_state = SKIPPED;
    if (in_test) longjmp(test_exit, 1);
    exit(0);
}

void cr_shim_log(const char *level, const char *fmt, ...) {
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "[%s] %s::%s:%s\n", level, cur_suite, cur_name, msg);
}

static int by_name(const void *a, const void *b) {
    const shim_test *x = a, *y = b;
    int c = strcmp(x->suite, y->suite);
    return c ? c : strcmp(x->name, y->name);
}

static const struct cr_shim_opts *suite_opts(const char *name) {
    for (int i = 0; i < nsuites; i++)
        if (!strcmp(suites[i].name, name)) return suites[i].opts;
    return NULL;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Runs one test; returns its final state. What the body's longjmp must not
 * clobber lives in statics. */
static const shim_test *cur_test;
static const struct cr_shim_opts *cur_suite_opts;

static int run_one(const shim_test *t) {
    cur_test = t;
    cur_suite_opts = suite_opts(t->suite);
    cur_suite = t->suite;
    cur_name = t->name;
    test_state = RUNNING;
    in_test = 1;
    if (!setjmp(test_exit)) {
        if (cur_suite_opts && cur_suite_opts->init) cur_suite_opts->init();
        if (cur_test->opts->init) cur_test->opts->init();
        cur_test->fn();
    }
    in_test = 0;
    /* .fini runs even after a failure, as in Criterion. */
    if (cur_test->opts->fini) cur_test->opts->fini();
    if (cur_suite_opts && cur_suite_opts->fini) cur_suite_opts->fini();
    return test_state;
}

/* A test in a fresh process: `self --child --filter suite/name`, its output
 * kept in a temporary file and printed whole when it ends (children may run
 * side by side). A fresh process per test also keeps the simulator's fiber
 * pool, and with it TSan's vector clocks, as small as that test needs. */
typedef struct {
    pid_t pid;
    int test;
    FILE *log;
    double t0;
} child;

static int spawn(child *c, int test, const char *self) {
    char full[512];
    snprintf(full, sizeof full, "%s/%s", tests[test].suite, tests[test].name);
    c->test = test;
    c->log = tmpfile();
    c->t0 = now_s();
    if (!c->log) return -1;
    fflush(NULL);
    c->pid = fork();
    if (c->pid < 0) return -1;
    if (c->pid == 0) {
        dup2(fileno(c->log), STDOUT_FILENO);
        dup2(fileno(c->log), STDERR_FILENO);
        execl(self, self, "--child", "--filter", full, (char *)NULL);
        perror("cr_shim: exec");
        _exit(127);
    }
    return 0;
}

/* Prints a finished child's output and returns its state. */
static int reap(child *c, int status) {
    char buf[4096];
    size_t n;
    rewind(c->log);
    while ((n = fread(buf, 1, sizeof buf, c->log)) > 0) fwrite(buf, 1, n, stderr);
    fclose(c->log);
    const shim_test *t = &tests[c->test];
    int st = WIFEXITED(status) && WEXITSTATUS(status) == 0   ? RUNNING
             : WIFEXITED(status) && WEXITSTATUS(status) == 77 ? SKIPPED
                                                               : FAILED;
    if (WIFSIGNALED(status))
        fprintf(stderr, "[FAIL] %s::%s: crashed (signal %d)\n", t->suite, t->name, WTERMSIG(status));
    else if (st == FAILED)
        fprintf(stderr, "[FAIL] %s::%s: exit status %d\n", t->suite, t->name, WEXITSTATUS(status));
    fprintf(stderr, "[%s] %s::%s (%.2f s)\n", st == FAILED ? "FAIL" : st == SKIPPED ? "SKIP" : "PASS",
            t->suite, t->name, now_s() - c->t0);
    return st;
}

int main(int argc, char **argv) {
    const char *filter = NULL;
    int list = 0, is_child = 0, jobs = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--filter") && i + 1 < argc) filter = argv[++i];
        else if (!strncmp(argv[i], "--filter=", 9)) filter = argv[i] + 9;
        else if (!strcmp(argv[i], "--list")) list = 1;
        else if (!strcmp(argv[i], "--child")) is_child = 1;
        else if (!strcmp(argv[i], "--jobs") && i + 1 < argc) jobs = atoi(argv[++i]);
        else if (!strncmp(argv[i], "--jobs=", 7)) jobs = atoi(argv[i] + 7);
        else if (!strcmp(argv[i], "--verbose")) continue;   /* Criterion's; every line is printed anyway */
        else {
            fprintf(stderr, "usage: %s [--filter SUITE/TEST-GLOB] [--jobs N] [--list] [--verbose]\n", argv[0]);
            return 2;
        }
    }
    if (jobs < 1) jobs = 1;
    if (ntests) qsort(tests, (size_t)ntests, sizeof *tests, by_name);
    int *todo = malloc(((size_t)ntests + 1) * sizeof *todo), ntodo = 0;
    for (int i = 0; i < ntests; i++) {
        char full[512];
        snprintf(full, sizeof full, "%s/%s", tests[i].suite, tests[i].name);
        if (filter ? fnmatch(filter, full, 0) == 0 : !tests[i].opts->disabled) todo[ntodo++] = i;
    }
    if (list) {
        for (int i = 0; i < ntodo; i++) printf("%s/%s\n", tests[todo[i]].suite, tests[todo[i]].name);
        return 0;
    }
    if (filter && ntodo == 0) {
        fprintf(stderr, "cr_shim: no test matches '%s'\n", filter);
        return 1;
    }
    if (is_child) {   /* run in this process: one test, as the parent asked */
        int failed = 0, all_skipped = ntodo > 0;
        for (int i = 0; i < ntodo; i++) {
            int st = run_one(&tests[todo[i]]);
            failed |= st == FAILED;
            all_skipped &= st == SKIPPED;
        }
        return failed ? 1 : all_skipped ? 77 : 0;
    }

    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0) {
        perror("cr_shim: /proc/self/exe");
        return 2;
    }
    self[len] = 0;
    int passed = 0, failed = 0, skipped = 0, next = 0, running = 0;
    child *kids = calloc((size_t)jobs, sizeof *kids);
    const double t_all = now_s();
    while (next < ntodo || running) {
        while (running < jobs && next < ntodo) {
            int slot = 0;
            while (kids[slot].pid) slot++;
            if (spawn(&kids[slot], todo[next++], self)) {
                perror("cr_shim: spawn");
                return 2;
            }
            running++;
        }
        int status;
        pid_t pid = wait(&status);
        if (pid < 0) {
            perror("cr_shim: wait");
            return 2;
        }
        for (int k = 0; k < jobs; k++) {
            if (kids[k].pid != pid) continue;
            int st = reap(&kids[k], status);
            kids[k].pid = 0;
            running--;
            if (st == FAILED) failed++;
            else if (st == SKIPPED) skipped++;
            else passed++;
        }
    }
    fprintf(stderr, "[====] Synthesis: Tested: %d | Passing: %d | Failing: %d | Skipped: %d (%.1f s)\n",
            ntodo, passed, failed, skipped, now_s() - t_all);
    free(kids);
    free(todo);
    return failed ? 1 : 0;
}
