/* See cli_run.h. */
#include "cli_run.h"

#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "test_support.h"

char *tmp;
char *out_text, *err_text;

void setup(void) { tmp = ts_tmpdir(); }

void teardown(void) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0) cr_log_warn("could not remove %s", tmp);
    free(tmp);
    free(out_text);
    free(err_text);
    out_text = err_text = NULL;
}

static int vrun(const char *out_path, const char *fmt, va_list ap) {
    char args[4096], cmd[16384], outp[4096];
    vsnprintf(args, sizeof args, fmt, ap);
    snprintf(outp, sizeof outp, "%s/stdout", tmp);
    snprintf(cmd, sizeof cmd, "cd '%s' && %s/host/embedc %s > '%s' 2> '%s/stderr'", EMBEDC_SOURCE_DIR,
             EMBEDC_BINARY_DIR, args, out_path ? out_path : outp, tmp);
    int rc = system(cmd);
    char p[4096];
    free(out_text);
    free(err_text);
    out_text = out_path ? strdup("") : ts_read_file(outp, NULL);
    snprintf(p, sizeof p, "%s/stderr", tmp);
    err_text = ts_read_file(p, NULL);
    if (!WIFEXITED(rc)) return -1;
    return WEXITSTATUS(rc);
}

int run(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = vrun(NULL, fmt, ap);
    va_end(ap);
    return rc;
}

int run_to(const char *out_path, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = vrun(out_path, fmt, ap);
    va_end(ap);
    return rc;
}

char *tpath(const char *name) {
    static char buf[8][4096];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmp, name);
    return buf[k];
}

int exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

int temp_files_in(const char *dir) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "ls -A '%s' | grep -q -e partial -e '^[.]embedc-'", dir);
    return system(cmd) == 0;
}

void assert_no_partial(void) {
    cr_assert(!temp_files_in(tmp), "a temporary output file was left behind");
}

void need_model(void) {
    if (!ts_default_model()) cr_skip_test("default model not fetched (tools/fetch-model)");
}

void write_text(const char *name, const char *s) {
    cr_assert_eq(ts_write_file(tpath(name), s, strlen(s)), 0);
}
