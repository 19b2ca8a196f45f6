/* Helpers for the suites that run the built embedc binary (test_cli*.c): a
 * fresh temporary directory per test, and "embedc ARGS" run through the
 * shell with stdout and stderr captured. */
#ifndef EMBEDC_CLI_RUN_H
#define EMBEDC_CLI_RUN_H

extern char *tmp;                 /* the test's temporary directory */
extern char *out_text, *err_text; /* stdout and stderr of the last run */

void setup(void);
void teardown(void);
/* Runs "embedc ARGS" from the source tree; returns the exit status, or -1 if
 * it died of a signal (always a failure). */
int run(const char *fmt, ...);
/* The same with standard output sent to out_path (out_text is then empty). */
int run_to(const char *out_path, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* tmp/name (one of 8 rotating static buffers). */
char *tpath(const char *name);
int exists(const char *p);
/* Whether dir holds a temporary output (".embedc-*", or an old-style "*partial*"). */
int temp_files_in(const char *dir);
/* No temporary output (".embedc-*", or an old-style "*partial*") in tmp. */
void assert_no_partial(void);
void need_model(void);
void write_text(const char *name, const char *s);

#endif
