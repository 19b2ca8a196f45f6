/*
 * The embedc command line, run as a user would: every error path exits
 * non-zero with a message naming what failed and leaves nothing under the
 * output name; every output format holds the same vectors in input order.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli_run.h"
#include "npy.h"
#include "test_support.h"

TestSuite(cli, .init = setup, .fini = teardown, .timeout = 120);

Test(cli, no_arguments_prints_usage) {
    cr_assert_eq(run(""), 2);
    cr_assert(strstr(err_text, "usage: embedc"));
}

Test(cli, unknown_command) {
    cr_assert_eq(run("frobnicate"), 2);
    cr_assert(strstr(err_text, "unknown command \"frobnicate\""));
}

Test(cli, bad_flag_values) {
    cr_assert_eq(run("encode --truncate-dim abc"), 2);
    cr_assert(strstr(err_text, "--truncate-dim expects an integer"), "%s", err_text);
    cr_assert_eq(run("encode --pooling median"), 2);
    cr_assert(strstr(err_text, "unknown pooling mode \"median\""), "%s", err_text);
    cr_assert_eq(run("encode --format parquet -o x.parquet"), 2);
    cr_assert(strstr(err_text, "--format parquet"), "%s", err_text);
    cr_assert_neq(run("encode --dtype fp8"), 0);
    cr_assert(strstr(err_text, "--dtype fp8: not offered"), "%s", err_text);
    cr_assert_neq(run("encode --dtype f8"), 0);
    cr_assert(strstr(err_text, "--dtype f8: expected auto, f16, bf16 or f32"), "%s", err_text);
}

Test(cli, missing_model) {
    write_text("in.txt", "hello\n");
    cr_assert_eq(run("encode -m '%s/no-such-model' -i '%s' -o '%s'", tmp, tpath("in.txt"), tpath("out.npy")), 1);
    cr_assert(strstr(err_text, "no-such-model"), "%s", err_text);
    cr_assert(!exists(tpath("out.npy")));
    assert_no_partial();
}

Test(cli, unreadable_input) {
    need_model();
    cr_assert_eq(run("encode -i '%s' -o '%s'", tpath("missing.txt"), tpath("out.npy")), 1);
    cr_assert(strstr(err_text, "cannot open input") && strstr(err_text, "missing.txt"), "%s", err_text);
    cr_assert(!exists(tpath("out.npy")));
}

Test(cli, input_is_a_directory) {
    need_model();
    cr_assert_eq(run("encode -i '%s' -o '%s'", tmp, tpath("out.npy")), 1);
    cr_assert(strstr(err_text, "is a directory"), "%s", err_text);
}

Test(cli, unwritable_output) {
    need_model();
    write_text("in.txt", "hello\n");
    cr_assert_eq(run("encode -i '%s' -o '%s'", tpath("in.txt"), tpath("no-dir/out.npy")), 1);
    cr_assert(strstr(err_text, "cannot create output") && strstr(err_text, "no-dir/out.npy"), "%s", err_text);
}

Test(cli, binary_output_to_stdout_refused) {
    need_model();
    write_text("in.txt", "hello\n");
    cr_assert_eq(run("encode -i '%s' -o - -f npy", tpath("in.txt")), 1);
    cr_assert(strstr(err_text, "standard output"), "%s", err_text);
}

Test(cli, malformed_jsonl_names_the_line) {
    need_model();
    write_text("in.jsonl", "{\"text\": \"ok\"}\n{\"text\": 12}\n");
    cr_assert_eq(run("encode -i '%s' -o '%s'", tpath("in.jsonl"), tpath("out.npy")), 1);
    cr_assert(strstr(err_text, "line 2") && strstr(err_text, "not a string"), "%s", err_text);
    cr_assert(!exists(tpath("out.npy")));
    assert_no_partial();
    write_text("in2.jsonl", "{\"body\": \"ok\"}\nnot json\n");
    cr_assert_eq(run("encode -i '%s' --field body -o '%s'", tpath("in2.jsonl"), tpath("out.npy")), 1);
    cr_assert(strstr(err_text, "line 2: not a JSON object"), "%s", err_text);
}

Test(cli, unknown_prompt_name) {
    need_model();
    write_text("in.txt", "hello\n");
    cr_assert_eq(run("encode -i '%s' -o '%s' --prompt-name query", tpath("in.txt"), tpath("o.npy")), 1);
    cr_assert(strstr(err_text, "prompt name \"query\""), "%s", err_text);
}

Test(cli, truncate_dim_too_large) {
    need_model();
    write_text("in.txt", "hello\n");
    cr_assert_eq(run("encode -i '%s' -o '%s' --truncate-dim 999", tpath("in.txt"), tpath("o.npy")), 1);
    cr_assert(strstr(err_text, "--truncate-dim 999"), "%s", err_text);
}

Test(cli, full_disk_leaves_nothing) {
    need_model();
    /* A file-size limit makes write() fail with EFBIG, as a full disk fails
     * with ENOSPC: the job must stop with an error, not leave a short file. */
    FILE *f = fopen(tpath("in.txt"), "w");
    for (int i = 0; i < 200; i++) fprintf(f, "a line of text to embed, number %d\n", i);
    fclose(f);
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "cd '%s' && (ulimit -f 64; exec %s/host/embedc encode -q -i '%s' -o '%s') 2> '%s'",
             EMBEDC_SOURCE_DIR, EMBEDC_BINARY_DIR, tpath("in.txt"), tpath("out.npy"), tpath("err"));
    int rc = system(cmd);
    cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) == 1, "status %d", rc);
    char *e = ts_read_file(tpath("err"), NULL);
    cr_assert(e && strstr(e, "writing") && strstr(e, "out.npy"), "%s", e);
    free(e);
    cr_assert(!exists(tpath("out.npy")));
    assert_no_partial();
}

static float *read_fvecs(const char *path, size_t *rows, int *dim) {
    size_t len;
    char *d = ts_read_file(path, &len);
    cr_assert_not_null(d);
    int32_t dm;
    memcpy(&dm, d, 4);
    size_t rec = 4 + (size_t)dm * 4;
    cr_assert_eq(len % rec, 0);
    *rows = len / rec;
    *dim = dm;
    float *v = malloc(len);
    for (size_t i = 0; i < *rows; i++) {
        int32_t k;
        memcpy(&k, d + i * rec, 4);
        cr_assert_eq(k, dm);
        memcpy(v + i * (size_t)dm, d + i * rec + 4, (size_t)dm * 4);
    }
    free(d);
    return v;
}

Test(cli, formats_agree_and_keep_input_order) {
    need_model();
    /* Lengths vary so the batcher reorders; the outputs must not. */
    write_text("in.txt", "short\na somewhat longer sentence about cats and dogs\n\nx\n"
                         "the longest line of them all, with several clauses, commas, and words\nshort\n");
    cr_assert_eq(run("encode -q -i '%s' -o '%s'", tpath("in.txt"), tpath("a.npy")), 0, "%s", err_text);
    cr_assert_eq(run("encode -q -i '%s' -o '%s' --batch-tokens 8", tpath("in.txt"), tpath("b.fvecs")), 0, "%s", err_text);
    cr_assert_eq(run("encode -q -i '%s' -o '%s' -f npy16", tpath("in.txt"), tpath("c.npy")), 0, "%s", err_text);
    cr_assert_eq(run("encode -q -i - -o - < '%s'", tpath("in.txt")), 0, "%s", err_text);
    size_t r1, c1, r3, c3, r2;
    int d2;
    float *a = npy_load(tpath("a.npy"), &r1, &c1);
    float *b = read_fvecs(tpath("b.fvecs"), &r2, &d2);
    float *c = npy_load(tpath("c.npy"), &r3, &c3);
    cr_assert_not_null(a);
    cr_assert_not_null(c);
    cr_assert_eq(r1, 6);
    cr_assert_eq(c1, 384);
    cr_assert_eq(r2, 6);
    cr_assert_eq(d2, 384);
    cr_assert_eq(r3, 6);
    for (size_t i = 0; i < r1 * c1; i++) {
        cr_assert_float_eq(a[i], b[i], 1e-5, "npy vs fvecs at %zu", i);
        cr_assert_float_eq(a[i], c[i], 2e-3, "npy vs npy16 at %zu", i);
    }
    /* Lines 1 and 6 are the same text: the same vector, wherever batches cut. */
    for (size_t j = 0; j < c1; j++) cr_assert_float_eq(a[j], a[5 * c1 + j], 1e-6);
    /* JSONL on stdout: 6 lines, index 0..5, values round-trip the float32 output. */
    char *line = out_text;
    for (size_t i = 0; i < 6; i++) {
        unsigned long long idx;
        cr_assert_eq(sscanf(line, "{\"index\": %llu", &idx), 1);
        cr_assert_eq(idx, i);
        char *p = strchr(line, '[') + 1;
        for (size_t j = 0; j < c1; j++) {
            float v = strtof(p, &p);
            cr_assert_eq(v, a[i * c1 + j], "jsonl row %zu col %zu", i, j);
            p += strspn(p, ", ");
        }
        line = strchr(line, '\n') + 1;
    }
    cr_assert_eq(*line, 0);
    free(a);
    free(b);
    free(c);
}

Test(cli, empty_input_gives_empty_valid_npy) {
    need_model();
    write_text("in.txt", "");
    cr_assert_eq(run("encode -q -i '%s' -o '%s'", tpath("in.txt"), tpath("e.npy")), 0, "%s", err_text);
    size_t r, c;
    float *v = npy_load(tpath("e.npy"), &r, &c);
    cr_assert_not_null(v);
    cr_assert_eq(r, 0);
    cr_assert_eq(c, 384);
    free(v);
}

Test(cli, summary_counts_invalid_utf8_and_truncation) {
    need_model();
    /* Line 2 holds invalid UTF-8; line 3 is far over 256 tokens. */
    FILE *f = fopen(tpath("in.txt"), "wb");
    fputs("clean text\nbad \xff\xfe bytes \xc3\n", f);
    for (int i = 0; i < 400; i++) fputs("word ", f);
    fputs("\n", f);
    fclose(f);
    cr_assert_eq(run("encode -q -i '%s' -o '%s' --summary-json '%s'", tpath("in.txt"), tpath("o.npy"),
                     tpath("s.json")), 0, "%s", err_text);
    char *s = ts_read_file(tpath("s.json"), NULL);
    cr_assert_not_null(s);
    cr_assert(strstr(s, "\"documents\": 3"), "%s", s);
    cr_assert(strstr(s, "\"invalid_utf8\": 1"), "%s", s);
    cr_assert(strstr(s, "\"truncated\": 1"), "%s", s);
    free(s);
}

Test(cli, tokenize_writes_ids_and_tokens) {
    need_model();
    write_text("in.txt", "Hello, world!\n");
    cr_assert_eq(run("tokenize -i '%s' --tokens", tpath("in.txt")), 0, "%s", err_text);
    /* BERT uncased: [CLS] hello , world ! [SEP] */
    cr_assert(strstr(out_text, "\"tokens\": [\"[CLS]\", \"hello\", \",\", \"world\", \"!\", \"[SEP]\"]"), "%s", out_text);
    cr_assert(strstr(out_text, "\"ids\": [101, "), "%s", out_text);
}

Test(cli, info_describes_the_model) {
    need_model();
    cr_assert_eq(run("info"), 0, "%s", err_text);
    cr_assert(strstr(out_text, "6 layers"), "%s", out_text);
    cr_assert(strstr(out_text, "pooling:         mean"), "%s", out_text);
    cr_assert(strstr(out_text, "max length:      256"), "%s", out_text);
    cr_assert(strstr(out_text, "output dim:      384"), "%s", out_text);
}

/* The similarity table shows at most 60 characters of each text, never a
 * UTF-8 sequence cut in half. */
Test(cli, similarity_table_cuts_text_on_character_boundaries) {
    need_model();
    const char *ru = "Центральный банк повысил процентную ставку после того как инфляция выросла";
    cr_assert_eq(run("similarity --device cpu -q '%s' 'hello world'", ru), 0, "%s", err_text);
    const char *line = strstr(out_text, "Центральный");
    cr_assert_not_null(line, "text missing from the table:\n%s", out_text);
    size_t n = strcspn(line, "\n");
    cr_assert_lt(n, strlen(ru), "the long text was not shortened");
    int chars = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)line[i];
        size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        cr_assert_neq(len, 0, "invalid UTF-8 lead byte at %zu", i);
        cr_assert_leq(i + len, n, "UTF-8 sequence cut at the end of the line: %.*s", (int)n, line);
        for (size_t k = 1; k < len; k++)
            cr_assert_eq((unsigned char)line[i + k] & 0xC0, 0x80, "bad continuation byte at %zu", i + k);
        i += len;
        chars++;
    }
    cr_assert_eq(chars, 60, "expected 60 characters, got %d", chars);
}

/* ---- static models and TF-IDF (tests/golden/static) ------------------------ */

Test(cli, similar_words_and_analogy_print_word_score_lines) {
    cr_assert_eq(run("similar-words -m tests/golden/static/w2v.txt -k 4 the"), 0, "%s", err_text);
    int lines = 0;
    for (char *l = out_text; l && *l; lines++) {
        char w[128];
        double s;
        cr_assert_eq(sscanf(l, "%127s %lf", w, &s), 2, "bad line: %s", l);
        cr_assert(s <= 1.0 && s >= -1.0);
        cr_assert_str_neq(w, "the", "the query word itself is excluded");
        l = strchr(l, '\n');
        l = l ? l + 1 : NULL;
    }
    cr_assert_eq(lines, 4);
    cr_assert_eq(run("analogy -m tests/golden/static/w2v.bin -k 2 the of and"), 0, "%s", err_text);
    cr_assert(out_text && strchr(out_text, '\n') && strchr(strchr(out_text, '\n') + 1, '\n'));
    cr_assert_neq(run("similar-words -m tests/golden/static/w2v.txt nosuchword"), 0);
    cr_assert(strstr(err_text, "\"nosuchword\" is not in the vocabulary of tests/golden/static/w2v.txt"), "%s", err_text);
}

Test(cli, static_encode_counts_oov_and_names_malformed_lines) {
    cr_assert_eq(run("encode -m tests/golden/static/glove.txt -i tests/data/corpus/texts.jsonl -o %s --pooling sum "
                     "--summary-json %s", tpath("v.npy"), tpath("s.json")), 0, "%s", err_text);
    cr_assert(strstr(err_text, "words out of vocabulary (dropped)"), "%s", err_text);
    char *js = ts_read_file(tpath("s.json"), NULL);
    cr_assert(js && strstr(js, "\"oov\": "), "%s", js ? js : "(none)");
    free(js);
    size_t rows, cols;
    float *v = npy_load(tpath("v.npy"), &rows, &cols);
    cr_assert(v && rows == 10240 && cols == 8);
    free(v);
    FILE *f = fopen(tpath("bad.txt"), "w");
    fputs("2 3\nalpha 1 2 3\nbeta 1 2\n", f);
    fclose(f);
    cr_assert_neq(run("encode -m %s -i tests/data/corpus/texts.jsonl -o %s", tpath("bad.txt"), tpath("x.npy")), 0);
    char want[4200];
    snprintf(want, sizeof want, "%s:3: row of 2 values, expected 3", tpath("bad.txt"));
    cr_assert(strstr(err_text, want), "%s", err_text);
    cr_assert(!exists(tpath("x.npy")));
    assert_no_partial();
}

Test(cli, fit_tfidf_then_sparse_npz_and_jsonl) {
    cr_assert_eq(run("fit-tfidf -i tests/data/corpus/texts.jsonl -o %s --min-df 2", tpath("tf")), 0, "%s", err_text);
    cr_assert(exists(tpath("tf/tfidf.json")));
    cr_assert_eq(run("encode -m %s -i tests/data/corpus/texts.jsonl -o %s", tpath("tf"), tpath("rows.npz")), 0, "%s", err_text);
    size_t n;
    char *z = ts_read_file(tpath("rows.npz"), &n);
    cr_assert(z && n > 22 && !memcmp(z, "PK\x03\x04", 4), "not a zip");
    free(z);
    cr_assert_eq(run("encode -m %s -i tests/data/corpus/texts.jsonl -o -", tpath("tf")), 0, "%s", err_text);
    int lines = 0;
    for (char *l = out_text; l && (l = strchr(l, '\n')); l++) lines++;
    cr_assert_eq(lines, 10240);
    cr_assert(!strncmp(out_text, "{\"index\": 0, \"vector\": {", 24), "%.80s", out_text);
    assert_no_partial();
}

Test(cli, tokenize_static_models) {
    static const char *models[] = {"tests/golden/static/fasttext.bin", "tests/golden/static/w2v.txt",
                                   "tests/golden/static/st-static"};
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(run("tokenize -m %s --tokens -i tests/data/corpus/texts.jsonl", models[i]), 0, "%s: %s",
                     models[i], err_text);
        int lines = 0;
        for (char *l = out_text; l && (l = strchr(l, '\n')); l++) lines++;
        cr_assert_eq(lines, 10240, "%s", models[i]);
        cr_assert(strstr(out_text, "\"oov\": "), "%s", models[i]);
    }
}
