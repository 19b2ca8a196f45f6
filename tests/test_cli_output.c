/*
 * Where embedc's output goes, run as a user would: a device, FIFO or symlink
 * is written through, never replaced; the input is never overwritten; a
 * NAME_MAX-long name works; a signal or a dead process leaves no temporary
 * file behind; every write to standard output is checked; and the
 * command-line checks say what they refuse.
 *
 * Device nodes are made with mknod inside the test's directory when allowed
 * (as root), so that a regression replaces a node of ours, never /dev/null.
 */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli_run.h"
#include "io.h"
#include "npy.h"
#include "test_support.h"

#define BIN EMBEDC_BINARY_DIR "/host/embedc"

TestSuite(cli_output, .init = setup, .fini = teardown, .timeout = 180);

static void write_lines(const char *name, int n) {
    FILE *f = fopen(tpath(name), "w");
    cr_assert_not_null(f);
    for (int i = 0; i < n; i++) fprintf(f, "line number %d of a small test corpus\n", i);
    cr_assert_eq(fclose(f), 0);
}

static void assert_npy_rows(const char *path, size_t rows) {
    size_t r, c;
    float *v = npy_load(path, &r, &c);
    cr_assert_not_null(v, "%s is not a readable .npy", path);
    cr_assert_eq(r, rows, "%s: %zu rows, expected %zu", path, r, rows);
    cr_assert_eq(c, 384);
    free(v);
}

/* A character device like /dev/null (minor 3) or /dev/full (minor 7) in tmp;
 * without the right to make one, the system's own (then /dev is not
 * writable either, so a regression cannot replace it). */
static const char *char_device(const char *name, unsigned minor) {
    static char buf[2][4096];
    char *p = buf[minor == 3];
    snprintf(p, sizeof buf[0], "%s", tpath(name));
    if (mknod(p, S_IFCHR | 0666, makedev(1, minor)) == 0) {
        int fd = open(p, O_WRONLY);
        if (fd >= 0) {
            close(fd);
            return p;
        }
        unlink(p);   /* a nodev mount */
    }
    if (geteuid() == 0) cr_skip_test("cannot make a device node in %s", tmp);
    return minor == 3 ? "/dev/null" : "/dev/full";
}

static int is_chr(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISCHR(st.st_mode);
}

Test(cli_output, device_is_written_in_place_never_replaced) {
    need_model();
    write_lines("in.txt", 5);
    const char *null = char_device("null", 3);
    cr_assert_eq(run("encode -q -i '%s' -o '%s'", tpath("in.txt"), null), 0, "%s", err_text);
    cr_assert_eq(run("encode -q -i '%s' -o '%s' -f fvecs", tpath("in.txt"), null), 0, "%s", err_text);
    cr_assert(is_chr(null), "%s is no longer a device", null);
    const char *full = char_device("full", 7);
    cr_assert_eq(run("encode -q -i '%s' -o '%s'", tpath("in.txt"), full), 1, "%s", err_text);
    cr_assert(strstr(err_text, "No space left on device") && strstr(err_text, full), "%s", err_text);
    cr_assert(is_chr(full), "%s is no longer a device", full);
    assert_no_partial();
}

/* Runs encode into a FIFO read by `cat` into tmp/got; returns encode's status. */
static int encode_into_fifo(const char *fmt) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "cd '%s' && { timeout 20 cat '%s' > '%s' & "
             "%s encode -q -i '%s' -o '%s' -f %s 2> '%s'; rc=$?; wait; exit $rc; }",
             EMBEDC_SOURCE_DIR, tpath("fifo"), tpath("got"), BIN, tpath("in.txt"), tpath("fifo"), fmt,
             tpath("err"));
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

Test(cli_output, fifo_streams_to_its_reader) {
    need_model();
    write_lines("in.txt", 7);
    cr_assert_eq(mkfifo(tpath("fifo"), 0644), 0);
    /* npy patches its header at the end: it goes through a spool file. */
    cr_assert_eq(encode_into_fifo("npy"), 0, "%s", ts_read_file(tpath("err"), NULL));
    assert_npy_rows(tpath("got"), 7);
    cr_assert_eq(encode_into_fifo("fvecs"), 0, "%s", ts_read_file(tpath("err"), NULL));
    struct stat st;
    cr_assert_eq(stat(tpath("got"), &st), 0);
    cr_assert_eq(st.st_size, 7 * (4 + 384 * 4));
    cr_assert_eq(lstat(tpath("fifo"), &st), 0);
    cr_assert(S_ISFIFO(st.st_mode), "the FIFO was replaced");
    assert_no_partial();
}

Test(cli_output, symlink_keeps_the_link_and_replaces_its_target) {
    need_model();
    write_lines("in.txt", 3);
    cr_assert_eq(mkdir(tpath("sub"), 0755), 0);
    write_text("sub/target.npy", "old contents");
    cr_assert_eq(chmod(tpath("sub/target.npy"), 0640), 0);
    cr_assert_eq(symlink("sub/target.npy", tpath("link.npy")), 0);
    cr_assert_eq(run("encode -q -i '%s' -o '%s'", tpath("in.txt"), tpath("link.npy")), 0, "%s", err_text);
    struct stat st;
    cr_assert_eq(lstat(tpath("link.npy"), &st), 0);
    cr_assert(S_ISLNK(st.st_mode), "the symlink was replaced by a file");
    assert_npy_rows(tpath("sub/target.npy"), 3);
    cr_assert_eq(stat(tpath("sub/target.npy"), &st), 0);
    cr_assert_eq(st.st_mode & 07777, 0640, "the target's mode changed to %o", st.st_mode & 07777);
    /* A dangling link names the file to create. */
    cr_assert_eq(symlink("sub/new.npy", tpath("dangling.npy")), 0);
    cr_assert_eq(run("encode -q -i '%s' -o '%s'", tpath("in.txt"), tpath("dangling.npy")), 0, "%s", err_text);
    assert_npy_rows(tpath("sub/new.npy"), 3);
    cr_assert_eq(lstat(tpath("dangling.npy"), &st), 0);
    cr_assert(S_ISLNK(st.st_mode));
    cr_assert(!temp_files_in(tpath("sub")), "a temporary file was left beside the target");
    assert_no_partial();
}

Test(cli_output, output_that_is_the_input_is_refused) {
    need_model();
    const char *text = "first document\nsecond document\n";
    write_text("in.txt", text);
    cr_assert_eq(mkdir(tpath("sub"), 0755), 0);
    cr_assert_eq(link(tpath("in.txt"), tpath("hard.txt")), 0);
    cr_assert_eq(symlink("in.txt", tpath("soft.txt")), 0);
    const char *same[] = {"in.txt", "sub/../in.txt", "hard.txt", "soft.txt"};
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        cr_assert_eq(run("encode -q -i '%s' -o '%s' -f jsonl", tpath("in.txt"), tpath(same[i])), 1,
                     "-o %s: %s", same[i], err_text);
        cr_assert(strstr(err_text, "same file as the input"), "-o %s: %s", same[i], err_text);
    }
    cr_assert_eq(run("encode -q -o '%s' < '%s'", tpath("hard.txt"), tpath("in.txt")), 1, "%s", err_text);
    cr_assert(strstr(err_text, "same file as the input (standard input)"), "%s", err_text);
    cr_assert_eq(run("tokenize -i '%s' -o '%s'", tpath("in.txt"), tpath("in.txt")), 1, "%s", err_text);
    cr_assert(strstr(err_text, "same file as the input"), "%s", err_text);
    char *now = ts_read_file(tpath("in.txt"), NULL);
    cr_assert_str_eq(now, text, "the input was changed");
    free(now);
    assert_no_partial();
}

Test(cli_output, name_of_255_bytes_works) {
    need_model();
    write_lines("in.txt", 2);
    char name[256];
    memset(name, 'a', 251);
    memcpy(name + 251, ".npy", 5);   /* 255 bytes: NAME_MAX */
    cr_assert_eq(run("encode -q -i '%s' -o '%s'", tpath("in.txt"), tpath(name)), 0, "%s", err_text);
    assert_npy_rows(tpath(name), 2);
    name[240] = 0;                   /* the 244-byte name of the report */
    strcat(name, ".npy");
    cr_assert_eq(run("encode -q -i '%s' -o '%s'", tpath("in.txt"), tpath(name)), 0, "%s", err_text);
    assert_npy_rows(tpath(name), 2);
    assert_no_partial();
}

static int temp_present(void) { return temp_files_in(tmp); }

/* A job reading a pipe that stays open is in flight with its temporary
 * output made; the signal must remove it and kill the job by that signal. */
static void signal_leaves_nothing(int sig) {
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    char out[4096];
    snprintf(out, sizeof out, "%s", tpath("out.npy"));
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        dup2(fds[0], 0);
        close(fds[0]);
        close(fds[1]);
        int e = open(tpath("stderr"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (e >= 0) dup2(e, 2);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        if (chdir(EMBEDC_SOURCE_DIR) != 0) _exit(126);
        execl(BIN, "embedc", "encode", "-q", "-i", "-", "-o", out, (char *)NULL);
        _exit(127);
    }
    close(fds[0]);
    const char *doc = "a document that arrives before the pipe stalls\n";
    for (int i = 0; i < 3; i++) cr_assert_eq(write(fds[1], doc, strlen(doc)), (ssize_t)strlen(doc));
    for (int i = 0; i < 600 && !temp_present(); i++) usleep(100000);
    int made = temp_present();
    kill(pid, sig);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    close(fds[1]);
    cr_assert(made, "no temporary output appeared: %s", ts_read_file(tpath("stderr"), NULL));
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == sig, "signal %d: status %#x", sig, status);
    assert_no_partial();
    cr_assert(!exists(out));
}

Test(cli_output, sigint_sigterm_sighup_remove_the_temporary_file) {
    need_model();
    signal_leaves_nothing(SIGINT);
    signal_leaves_nothing(SIGTERM);
    signal_leaves_nothing(SIGHUP);
}

Test(cli_output, stale_temporary_files_of_dead_processes_are_removed) {
    need_model();
    write_lines("in.txt", 2);
    pid_t dead = fork();
    if (dead == 0) _exit(0);
    cr_assert_eq(waitpid(dead, NULL, 0), dead);
    char stale[64], live[64], other_host[64];
    io_temp_name_prefix((long)dead, stale, sizeof stale);
    strcat(stale, "abcdef");
    io_temp_name_prefix((long)getpid(), live, sizeof live);
    strcat(live, "ghijkl");
    /* The same dead PID on another machine sharing the directory. */
    snprintf(other_host, sizeof other_host, ".embedc-%ld-%08x-mnopqr", (long)dead,
             ~(unsigned)strtoul(strrchr(stale, '-') - 8, NULL, 16));
    write_text(stale, "left by SIGKILL");
    write_text(live, "a job still running");
    write_text(other_host, "another host's job");
    write_text(".embedc-notes", "not ours");
    cr_assert_eq(run("encode -q -i '%s' -o '%s'", tpath("in.txt"), tpath("out.npy")), 0, "%s", err_text);
    cr_assert(!exists(tpath(stale)), "the dead process's temporary file is still there");
    cr_assert(exists(tpath(live)), "a live process's temporary file was removed");
    cr_assert(exists(tpath(other_host)), "another host's temporary file was removed");
    cr_assert(exists(tpath(".embedc-notes")));
    assert_npy_rows(tpath("out.npy"), 2);
}

Test(cli_output, stray_positional_argument_is_an_error) {
    need_model();
    write_lines("in.txt", 2);
    cr_assert_eq(run("encode -q '%s' -o '%s' < /dev/null", tpath("in.txt"), tpath("o.npy")), 2, "%s", err_text);
    cr_assert(strstr(err_text, "unexpected argument") && strstr(err_text, "in.txt"), "%s", err_text);
    cr_assert(!exists(tpath("o.npy")));
    cr_assert_eq(run("tokenize '%s' < /dev/null", tpath("in.txt")), 2, "%s", err_text);
    cr_assert(strstr(err_text, "unexpected argument"), "%s", err_text);
    cr_assert_eq(run("bench -q --fixed-lengths none '%s' < /dev/null", tpath("in.txt")), 2, "%s", err_text);
    cr_assert(strstr(err_text, "unexpected argument"), "%s", err_text);
    cr_assert_eq(run("info models/all-MiniLM-L6-v2 extra"), 2, "%s", err_text);
    cr_assert(strstr(err_text, "unexpected argument \"extra\""), "%s", err_text);
}

Test(cli_output, standard_output_write_errors_are_reported) {
    need_model();
    if (!is_chr("/dev/full")) cr_skip_test("no /dev/full");
    write_lines("in.txt", 2);
    char in[4096];
    snprintf(in, sizeof in, "%s", tpath("in.txt"));
    const char *cmds[] = {"--help", "--version", "encode --help", "info", "similarity -q --device cpu a b",
                          "tokenize -i '%s'", "encode -q -i '%s' -o -",
                          "bench -q --device cpu --fixed-lengths none -i '%s'"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        char args[8192];
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
        snprintf(args, sizeof args, cmds[i], in);
#pragma GCC diagnostic pop
        cr_assert_eq(run_to("/dev/full", "%s", args), 1, "%s: %s", args, err_text);
        cr_assert(strstr(err_text, "standard output") && strstr(err_text, "No space left on device"), "%s: %s",
                  args, err_text);
    }
    const char *full = char_device("full", 7);
    cr_assert_eq(run("encode -q -i '%s' -o '%s' --summary-json '%s'", in, tpath("o.npy"), full), 1, "%s",
                 err_text);
    cr_assert(strstr(err_text, "--summary-json") && strstr(err_text, "No space left on device"), "%s", err_text);
    cr_assert(is_chr(full));
}

/* bench --corpus-copies N: a last workload holding the corpus N times over,
 * N times its documents and tokens (the steady state of a bulk job); none
 * with 1 (the CPU default); values outside 1..1000 refused, naming the flag. */
Test(cli_output, bench_corpus_copies) {
    need_model();
    write_lines("in.txt", 5);
    cr_assert_eq(run("bench -q --device cpu --fixed-lengths none --corpus-copies 3 -i '%s' --summary-json '%s'",
                     tpath("in.txt"), tpath("b.json")), 0, "%s", err_text);
    cr_assert(strstr(out_text, "| corpus mix | 5 |"), "%s", out_text);
    cr_assert(strstr(out_text, "| corpus mix x3 | 15 |"), "%s", out_text);
    char *js = ts_read_file(tpath("b.json"), NULL);
    cr_assert(js);
    cJSON *root = cJSON_Parse(js);
    free(js);
    cJSON *w = cJSON_GetObjectItem(root, "workloads");
    cr_assert_eq(cJSON_GetArraySize(w), 2);
    cJSON *one = cJSON_GetArrayItem(w, 0), *three = cJSON_GetArrayItem(w, 1);
    cr_assert_str_eq(cJSON_GetObjectItem(three, "workload")->valuestring, "corpus mix x3");
    cr_assert_eq(cJSON_GetObjectItem(three, "documents")->valuedouble,
                 3 * cJSON_GetObjectItem(one, "documents")->valuedouble);
    cr_assert_eq(cJSON_GetObjectItem(three, "tokens")->valuedouble,
                 3 * cJSON_GetObjectItem(one, "tokens")->valuedouble);
    cJSON_Delete(root);
    cr_assert_eq(run("bench -q --device cpu --fixed-lengths none -i '%s'", tpath("in.txt")), 0, "%s", err_text);
    cr_assert(!strstr(out_text, "corpus mix x"), "%s", out_text);
    cr_assert_eq(run("bench -q --device cpu --fixed-lengths none --corpus-copies 0 -i '%s'", tpath("in.txt")), 2);
    cr_assert(strstr(err_text, "--corpus-copies"), "%s", err_text);
}

/* similarity and bench check --layer and --truncate-dim as encode does, with
 * the same message (they used to say "out of memory"). */
Test(cli_output, similarity_and_bench_check_layer_and_truncate_dim) {
    need_model();
    write_lines("in.txt", 2);
    const char *bad[][2] = {{"--layer 99", "--layer 99: the model has 6 encoder layers (use 1..6, or -1 for the last)"},
                            {"--layer -7", "--layer -7: the model has 6 encoder layers"},
                            {"--truncate-dim 999", "--truncate-dim 999: must be 1..384"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(run("encode -q -i '%s' -o '%s' %s", tpath("in.txt"), tpath("o.npy"), bad[i][0]), 1);
        cr_assert(strstr(err_text, bad[i][1]), "encode %s: %s", bad[i][0], err_text);
        cr_assert_eq(run("similarity -q --device cpu %s a b", bad[i][0]), 1);
        cr_assert(strstr(err_text, bad[i][1]), "similarity %s: %s", bad[i][0], err_text);
        cr_assert_eq(run("bench -q --device cpu --fixed-lengths none -i '%s' %s", tpath("in.txt"), bad[i][0]), 1);
        cr_assert(strstr(err_text, bad[i][1]), "bench %s: %s", bad[i][0], err_text);
        cr_assert(!strstr(err_text, "out of memory"), "%s", err_text);
    }
}

Test(cli_output, pooling_and_layer_flags_say_what_they_refuse) {
    need_model();
    write_lines("in.txt", 2);
    const char *pool[] = {"''", "','", "',,'"};
    for (size_t i = 0; i < sizeof pool / sizeof pool[0]; i++) {
        cr_assert_eq(run("encode -q -i '%s' -o '%s' --pooling %s", tpath("in.txt"), tpath("o.npy"), pool[i]), 2);
        cr_assert(strstr(err_text, "--pooling") && strstr(err_text, "expected a comma list"), "%s: %s", pool[i],
                  err_text);
    }
    /* Layers are 1-based, negative from the end: the check and the message agree. */
    cr_assert_eq(run("encode -q -i '%s' -o '%s' --layer 0", tpath("in.txt"), tpath("o.npy")), 2);
    cr_assert(strstr(err_text, "--layer 0: layers are numbered from 1"), "%s", err_text);
    cr_assert_eq(run("encode -q -i '%s' -o '%s' --layer 6", tpath("in.txt"), tpath("a.npy")), 0, "%s", err_text);
    cr_assert_eq(run("encode -q -i '%s' -o '%s' --layer -1", tpath("in.txt"), tpath("b.npy")), 0, "%s", err_text);
    size_t r, c;
    float *a = npy_load(tpath("a.npy"), &r, &c), *b = npy_load(tpath("b.npy"), &r, &c);
    cr_assert(a && b);
    cr_assert_eq(memcmp(a, b, r * c * sizeof *a), 0, "--layer 6 and --layer -1 differ on a 6-layer model");
    free(a);
    free(b);
    cr_assert_eq(run("encode -q -i '%s' -o '%s' --layer 1", tpath("in.txt"), tpath("c.npy")), 0, "%s", err_text);
}

Test(cli_output, max_length_above_the_model_limit_is_said_once) {
    need_model();
    write_lines("in.txt", 2);
    cr_assert_eq(run("encode -q -i '%s' -o '%s' --max-length 100000", tpath("in.txt"), tpath("o.npy")), 0, "%s",
                 err_text);
    const char *msg = "--max-length 100000 is above the model's limit: using 256 tokens";
    const char *p = strstr(err_text, msg);
    cr_assert(p, "%s", err_text);
    cr_assert_null(strstr(p + 1, msg), "said more than once: %s", err_text);
    cr_assert_eq(run("encode -q -i '%s' -o '%s' --max-length 100", tpath("in.txt"), tpath("o.npy")), 0);
    cr_assert_null(strstr(err_text, "above the model's limit"), "%s", err_text);
}
