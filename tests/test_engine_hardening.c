/*
 * Engine hardening (issue 9, points 6, 8, 10 and the tokenizer without a
 * model): the per-document byte limit (cut documents embed exactly as uncut
 * ones; the error policy names the input number), invalid UTF-8 in prompts
 * repaired, documents with no tokens at all (a tokenizer without specials)
 * embedded as zero vectors instead of failing the job, and tokenize on a
 * directory holding only tokenizer.json; and (issue 16) the host pipeline
 * timings of emb_encode_stats.
 */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine.h"
#include "hostmem.h"
#include "npy.h"
#include "test_support.h"

static const char *need_model(void) {
    const char *m = ts_default_model();
    if (!m) cr_skip_test("default model not fetched");
    return m;
}

static emb_model *load(const char *dir) {
    emb_model_options o = emb_model_default_options();
    o.device = EMB_DEVICE_CPU;
    o.threads = 2;
    emb_model *m = NULL;
    emb_error err = {0};
    cr_assert_eq(emb_model_load(dir, &o, &m, &err), EMB_OK, "%s", err.message);
    return m;
}

/* The default model with some files replaced by the given contents. */
static char *mirror_with(const char *name, const char *content) {
    const char *m = need_model();
    static const char *files[] = {"config.json", "config_sentence_transformers.json", "model.safetensors",
                                  "modules.json", "sentence_bert_config.json", "tokenizer.json"};
    char *d = ts_tmpdir();
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char *dst = ts_join(d, files[i]);
        if (name && !strcmp(files[i], name)) {
            cr_assert_eq(ts_write_file(dst, content, strlen(content)), 0);
        } else {
            char *src = ts_join(m, files[i]);
            cr_assert_eq(symlink(src, dst), 0);
            free(src);
        }
        free(dst);
    }
    /* Module folders must be inside the directory: a real one, its file linked. */
    char *pool = ts_join(d, "1_Pooling"), *src = ts_join(m, "1_Pooling/config.json"), *dst = ts_join(pool, "config.json");
    cr_assert_eq(mkdir(pool, 0755), 0);
    cr_assert_eq(symlink(src, dst), 0);
    free(pool); free(src); free(dst);
    return d;
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double d = 0;
    for (size_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - (double)b[i]));
    return d;
}

/* ---- point 6: the per-document byte limit -------------------------------- */

static char *repeat_text(const char *unit, size_t bytes) {
    size_t u = strlen(unit);
    char *s = malloc(bytes + u + 1);
    size_t k = 0;
    while (k < bytes) {
        memcpy(s + k, unit, u);
        k += u;
    }
    s[k] = 0;
    return s;
}

Test(hard_engine, cut_documents_embed_as_uncut) {
    emb_model *m = load(need_model());
    int dim = emb_model_dim(m, NULL);
    /* Words and a run of CJK without spaces whose cut falls inside a character. */
    char *a = repeat_text("The quick brown fox jumps over the lazy dog. ", 3u << 20);
    char *b = repeat_text("\xe7\x8c\xab", (1u << 20) + 1);
    const char *texts[] = {a, "short one", b};
    float *cut = malloc(3 * (size_t)dim * sizeof(float)), *full = malloc(3 * (size_t)dim * sizeof(float));
    emb_encode_options o = emb_encode_default_options();
    emb_encode_stats st;
    emb_error err = {0};
    cr_assert_eq(emb_encode(m, texts, NULL, 3, &o, cut, &st, &err), EMB_OK, "%s", err.message);
    cr_assert_eq(st.cut, 2);
    cr_assert_eq(st.truncated, 2);
    o.max_doc_bytes = SIZE_MAX;
    cr_assert_eq(emb_encode(m, texts, NULL, 3, &o, full, &st, &err), EMB_OK, "%s", err.message);
    cr_assert_eq(st.cut, 0);
    cr_assert_leq(max_abs_diff(cut, full, 3 * (size_t)dim), 0.0, "a cut document embeds differently");
    /* The error policy names the document by its input number. */
    o.max_doc_bytes = 1000;
    o.long_docs = EMB_LONG_DOCS_ERROR;
    cr_assert_eq(emb_encode(m, texts, NULL, 3, &o, full, &st, &err), EMB_ERR_INVALID_ARG);
    cr_assert(strstr(err.message, "document 0: longer than the limit of 1000 bytes"), "%s", err.message);
    const char *t2[] = {"ok", a};
    cr_assert_eq(emb_encode(m, t2, NULL, 2, &o, full, &st, &err), EMB_ERR_INVALID_ARG);
    cr_assert(strstr(err.message, "document 1: "), "%s", err.message);
    free(a); free(b); free(cut); free(full);
    emb_model_free(m);
}

/* ---- point 8: invalid UTF-8 in a prompt ---------------------------------- */

Test(hard_engine, invalid_utf8_prompt_repaired) {
    char *d = mirror_with("config_sentence_transformers.json",
                          "{\"prompts\": {\"q\": \"\xffquery: \", \"r\": \"\xef\xbf\xbdquery: \"}}");
    emb_model *m = load(d);
    int dim = emb_model_dim(m, NULL);
    const char *texts[] = {"hello"};
    float *a = malloc((size_t)dim * sizeof(float)), *b = malloc((size_t)dim * sizeof(float));
    emb_encode_options o = emb_encode_default_options();
    emb_error err = {0};
    o.prompt_name = "q";
    cr_assert_eq(emb_encode(m, texts, NULL, 1, &o, a, NULL, &err), EMB_OK, "%s", err.message);
    o.prompt_name = "r";
    cr_assert_eq(emb_encode(m, texts, NULL, 1, &o, b, NULL, &err), EMB_OK, "%s", err.message);
    cr_assert_leq(max_abs_diff(a, b, (size_t)dim), 0.0);
    o.prompt_name = NULL;
    o.prompt = "\xff\xfequery: ";
    cr_assert_eq(emb_encode(m, texts, NULL, 1, &o, a, NULL, &err), EMB_OK, "%s", err.message);
    o.prompt = "\xef\xbf\xbd\xef\xbf\xbdquery: ";
    cr_assert_eq(emb_encode(m, texts, NULL, 1, &o, b, NULL, &err), EMB_OK, "%s", err.message);
    cr_assert_leq(max_abs_diff(a, b, (size_t)dim), 0.0);
    free(a); free(b); free(d);
    emb_model_free(m);
}

/* ---- point 10: a document with no tokens --------------------------------- */

static char *tokenizer_without_specials(void) {
    char *src = ts_join(need_model(), "tokenizer.json");
    char *text = ts_read_file(src, NULL);
    cr_assert_not_null(text);
    cJSON *j = cJSON_Parse(text);
    cJSON_ReplaceItemInObject(j, "post_processor", cJSON_CreateNull());
    char *out = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    free(text);
    free(src);
    return out;
}

Test(hard_engine, empty_document_without_specials_is_a_zero_vector) {
    char *tj = tokenizer_without_specials();
    char *d = mirror_with("tokenizer.json", tj);
    emb_model *m = load(d);
    int dim = emb_model_dim(m, NULL);
    const char *texts[] = {"first document", "", "hello", "\xef\xbf\xbd"};
    float *v = malloc(4 * (size_t)dim * sizeof(float)), *one = malloc((size_t)dim * sizeof(float));
    emb_encode_options o = emb_encode_default_options();
    emb_encode_stats st;
    emb_error err = {0};
    cr_assert_eq(emb_encode(m, texts, NULL, 4, &o, v, &st, &err), EMB_OK, "%s", err.message);
    cr_assert_eq(st.empty, 2);
    for (int k = 0; k < dim; k++) {
        cr_assert_eq(v[(size_t)dim + (size_t)k], 0.0f);
        cr_assert_eq(v[3 * (size_t)dim + (size_t)k], 0.0f);
    }
    const char *h[] = {"hello"};
    cr_assert_eq(emb_encode(m, h, NULL, 1, &o, one, NULL, &err), EMB_OK, "%s", err.message);
    cr_assert_leq(max_abs_diff(v + 2 * (size_t)dim, one, (size_t)dim), 1e-6);
    const char *e[] = {""};
    cr_assert_eq(emb_encode(m, e, NULL, 1, &o, one, &st, &err), EMB_OK, "%s", err.message);
    cr_assert_eq(st.empty, 1);
    /* sentence-transformers on the same texts (tools/make-hardening-golden). */
    char *gp = ts_src_path("tests/golden/hardening/empty_doc.npy");
    size_t rows = 0, cols = 0;
    float *g = npy_load(gp, &rows, &cols);
    cr_assert_not_null(g, "missing %s", gp);
    cr_assert_eq(rows, 3);
    cr_assert_eq(cols, (size_t)dim);
    const char *gt[] = {"first document", "", "hello"};
    cr_assert_eq(emb_encode(m, gt, NULL, 3, &o, v, NULL, &err), EMB_OK, "%s", err.message);
    cr_assert_leq(max_abs_diff(v, g, 3 * (size_t)dim), 1e-4, "differs from sentence-transformers");
    free(g);
    free(gp);
    free(v); free(one); free(d); free(tj);
    emb_model_free(m);
}

/* ---- tokenize needs no model -------------------------------------------- */

Test(hard_engine, tokenizer_only_directory) {
    char *src = ts_join(need_model(), "tokenizer.json");
    char *d = ts_tmpdir(), *dst = ts_join(d, "tokenizer.json");
    cr_assert_eq(symlink(src, dst), 0);
    emb_model *m = NULL;
    emb_error err = {0};
    cr_assert_eq(eng_load_tokenizer_model(NULL, d, 0, &m, &err), EMB_OK, "%s", err.message);
    cr_assert_not_null(m, "a directory with only tokenizer.json must load as a tokenizer");
    emb_encode_options eo = emb_encode_default_options();
    eng_prompt p;
    cr_assert_eq(eng_resolve_prompt(m, &eo, &p, &err), EMB_OK, "%s", err.message);
    tok_encoding enc;
    tok_encoding_init(&enc);
    int inv, tr;
    char *big = repeat_text("word ", 4000);
    cr_assert_eq(eng_tokenize(m, &p, big, strlen(big), &enc, &inv, &tr, &err), EMB_OK, "%s", err.message);
    /* MiniLM's tokenizer.json truncates at 128. */
    cr_assert_eq(enc.len, 128);
    cr_assert(tr);
    emb_model_free(m);
    m = NULL;
    /* --tokenizer FILE, with --max-length. */
    cr_assert_eq(eng_load_tokenizer_model(src, "unused", 5, &m, &err), EMB_OK, "%s", err.message);
    cr_assert_eq(eng_tokenize(m, &p, big, strlen(big), &enc, &inv, &tr, &err), EMB_OK, "%s", err.message);
    cr_assert_eq(enc.len, 5);
    emb_model_free(m);
    m = NULL;
    /* A model directory is left to the full loader. */
    cr_assert_eq(eng_load_tokenizer_model(NULL, need_model(), 0, &m, &err), EMB_OK, "%s", err.message);
    cr_assert_null(m);
    tok_encoding_free(&enc);
    eng_prompt_free(&p);
    free(big); free(src); free(dst); free(d);
}

/* ---- point 6: memory per document, measured on the CLI -------------------- */

#include <sys/resource.h>
#include <sys/wait.h>

/* Peak RSS (MiB) of `embedc encode` on a file holding one 100 MB line; the
 * unbounded tokenizer took 3 GB for this (100 MB of '!'). */
static long encode_peak_mib(const char *input) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s/host/embedc encode -q --threads 2 -m '%s' -i '%s' -o '%s.npy'", EMBEDC_BINARY_DIR,
             need_model(), input, input);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    struct rusage ru;
    cr_assert_eq(wait4(pid, &status, 0, &ru), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s failed", cmd);
    return ru.ru_maxrss / 1024;
}

Test(hard_engine, long_line_memory_is_bounded, .timeout = 300) {
    need_model();
    size_t big = 100u << 20;
    char *d = ts_tmpdir();
    char *txt = ts_join(d, "long.txt"), *jsl = ts_join(d, "long.jsonl");
    char *data = malloc(big + 32);
    memset(data, '!', big);
    data[big] = '\n';
    cr_assert_eq(ts_write_file(txt, data, big + 1), 0);
    memcpy(data, "{\"text\": \"", 10);
    memcpy(data + big, "\"}\n", 3);
    cr_assert_eq(ts_write_file(jsl, data, big + 3), 0);
    free(data);
    long t = encode_peak_mib(txt), j = encode_peak_mib(jsl);
    /* The model and pipeline take ~200 MB (more under ASan); the line itself
     * is never held whole, in either format. */
    cr_assert_lt(t, 600, "text: peak RSS %ld MiB for one 100 MB line", t);
    cr_assert_lt(j, 600, "JSONL: peak RSS %ld MiB for one 100 MB line", j);
    unlink(txt);
    unlink(jsl);
    free(txt); free(jsl); free(d);
}

/* ---- the CLI: summary counts and tokenize without a model --------------- */

static char *run_out(const char *cmd) {
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t cap = 1 << 16, n = 0;
    char *buf = calloc(1, cap);
    n = fread(buf, 1, cap - 1, p);
    buf[n] = 0;
    cr_assert_eq(pclose(p), 0, "%s failed: %s", cmd, buf);
    return buf;
}

Test(hard_cli, summary_counts_cut_and_empty, .timeout = 120) {
    const char *model = need_model();
    char *d = ts_tmpdir(), *in = ts_join(d, "in.txt"), *sum = ts_join(d, "s.json");
    char *big = repeat_text("word ", 1100000);
    size_t bl = strlen(big);
    big = realloc(big, bl + 16);
    memcpy(big + bl, "\n\nshort\n", 9);
    cr_assert_eq(ts_write_file(in, big, strlen(big)), 0);
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s/host/embedc encode -q --threads 2 -m '%s' -i '%s' -o '%s/o.npy' --summary-json '%s' 2>&1",
             EMBEDC_BINARY_DIR, model, in, d, sum);
    free(run_out(cmd));
    char *js = ts_read_file(sum, NULL);
    cr_assert_not_null(js);
    cJSON *j = cJSON_Parse(js);
    cr_assert_eq(cJSON_GetObjectItem(j, "documents")->valueint, 3);
    cr_assert_eq(cJSON_GetObjectItem(j, "cut")->valueint, 1, "%s", js);
    cr_assert_eq(cJSON_GetObjectItem(j, "empty")->valueint, 0, "%s", js);
    cJSON_Delete(j);
    free(js);
    snprintf(cmd, sizeof cmd, "%s/host/embedc encode -q -m '%s' -i '%s' -o '%s/o.npy' --long-docs error 2>&1; echo rc=$?",
             EMBEDC_BINARY_DIR, model, in, d);
    FILE *p = popen(cmd, "r");
    char out[4096] = "";
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    pclose(p);
    cr_assert(strstr(out, "document 0: longer than the limit of 1048576 bytes"), "%s", out);
    cr_assert(strstr(out, "rc=1"), "%s", out);
    free(big); free(in); free(sum); free(d);
}

Test(hard_cli, tokenize_with_only_a_tokenizer, .timeout = 60) {
    const char *model = need_model();
    char *d = ts_tmpdir(), *tj = ts_join(model, "tokenizer.json"), *dst = ts_join(d, "tokenizer.json");
    cr_assert_eq(symlink(tj, dst), 0);
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "printf 'hello world\\n' | %s/host/embedc tokenize -m '%s'", EMBEDC_BINARY_DIR, d);
    char *a = run_out(cmd);
    snprintf(cmd, sizeof cmd, "printf 'hello world\\n' | %s/host/embedc tokenize -m '%s'", EMBEDC_BINARY_DIR, model);
    char *b = run_out(cmd);
    cr_assert_str_eq(a, b);
    snprintf(cmd, sizeof cmd, "printf 'hello world\\n' | %s/host/embedc tokenize --tokenizer '%s' --max-length 3",
             EMBEDC_BINARY_DIR, tj);
    char *c = run_out(cmd);
    cr_assert(strstr(c, "\"ids\": [101, 7592, 102], \"truncated\": true"), "%s", c);
    free(a); free(b); free(c); free(tj); free(dst); free(d);
}

/* A tokenizer that truncates on the left keeps a document's last tokens:
 * cutting its first bytes would change them, so it is refused instead. */
Test(hard_engine, left_truncating_tokenizer_is_not_cut) {
    char *src = ts_join(need_model(), "tokenizer.json");
    char *text = ts_read_file(src, NULL);
    cJSON *j = cJSON_Parse(text);
    cJSON *tr = cJSON_GetObjectItem(j, "truncation");
    cJSON_AddStringToObject(tr, "direction", "Left");
    char *out = cJSON_PrintUnformatted(j);
    char *d = ts_tmpdir(), *dst = ts_join(d, "tokenizer.json");
    cr_assert_eq(ts_write_file(dst, out, strlen(out)), 0);
    emb_model *m = NULL;
    emb_error err = {0};
    cr_assert_eq(eng_load_tokenizer_model(dst, NULL, 0, &m, &err), EMB_OK, "%s", err.message);
    cr_assert(tok_truncation_left(m->tok));
    char *big = repeat_text("word ", 2000);
    size_t len = strlen(big);
    cr_assert_eq(eng_doc_limit(m, 1000, 0, big, &len, 7, &err), -1);
    cr_assert(strstr(err.message, "document 7: longer than the limit of 1000 bytes"), "%s", err.message);
    cr_assert(strstr(err.message, "truncates on the left"), "%s", err.message);
    len = 500;
    cr_assert_eq(eng_doc_limit(m, 1000, 0, big, &len, 7, &err), 0);
    emb_model_free(m);
    cJSON_Delete(j);
    free(out); free(text); free(src); free(big); free(dst); free(d);
}

/* ---- a NaN or Inf vector is an error, never written --------------------- */

/* The backend's encode wrapped: the first row of the batch holding the
 * longest sequence (batches are sorted longest first) gets `poison` in one
 * element, as a model overflowing fp16 would give. */
static emb_status (*real_encode)(emb_backend *, const emb_batch *, const emb_job *, float *, emb_error *);
static float poison_value;
static int poison_len;
static emb_status poisoning_encode(emb_backend *be, const emb_batch *b, const emb_job *job, float *out,
                                   emb_error *err) {
    emb_status st = real_encode(be, b, job, out, err);
    for (int s = 0; st == EMB_OK && s < b->nseq; s++)
        if (b->cu_seqlens[s + 1] - b->cu_seqlens[s] == poison_len) out[(size_t)s * job->out_dim + 3] = poison_value;
    return st;
}

/* Eight short documents, number 5 much longer than the rest. */
static const char *const nan_texts[] = {"alpha", "beta", "gamma", "delta", "epsilon",
                                        "this document is far longer than every other one in the batch", "eta",
                                        "theta"};

static emb_model *load_poisoning(float value) {
    emb_model *m = load(need_model());
    int32_t ids[64], types[64];
    emb_error err = {0};
    size_t n = 0;
    cr_assert_eq(emb_tokenize(m, nan_texts[5], strlen(nan_texts[5]), NULL, ids, types, 64, &n, &err), EMB_OK,
                 "%s", err.message);
    poison_len = (int)n;
    poison_value = value;
    real_encode = m->be->encode;
    m->be->encode = poisoning_encode;
    return m;
}

Test(hard_engine, nan_vector_is_an_error_naming_the_document) {
    emb_model *m = load_poisoning(NAN);
    int dim = emb_model_dim(m, NULL);
    float *v = malloc(8 * (size_t)dim * sizeof(float));
    for (size_t i = 0; i < 8 * (size_t)dim; i++) v[i] = 7.0f;
    emb_encode_options o = emb_encode_default_options();
    emb_error err = {0};
    cr_assert_eq(emb_encode(m, nan_texts, NULL, 8, &o, v, NULL, &err), EMB_ERR_UNSUPPORTED);
    cr_assert(strstr(err.message, "document 5:") && strstr(err.message, "NaN"), "%s", err.message);
    for (size_t i = 0; i < 8 * (size_t)dim; i++) cr_assert_eq(v[i], 7.0f, "element %zu written", i);
    free(v);
    emb_model_free(m);
}

/* Through eng_run: the window before the bad document is written, the
 * window holding it is not, and the error carries the input's id. */
typedef struct {
    uint64_t written;
} count_writer;
static emb_status count_write(void *ud, uint64_t first, size_t n, const float *vecs, int dim, emb_error *err) {
    (void)vecs, (void)dim, (void)err;
    count_writer *c = ud;
    cr_assert_eq(first, c->written);
    c->written += n;
    return EMB_OK;
}
typedef struct {
    size_t next;
} text_reader;
static int read_texts(void *ud, const char **text, size_t *len, emb_error *err) {
    (void)err;
    text_reader *r = ud;
    if (r->next == 8) return 0;
    *text = nan_texts[r->next++];
    *len = strlen(*text);
    return 1;
}
static int label_doc(void *ud, uint64_t doc, char *buf, size_t cap) {
    (void)ud;
    snprintf(buf, cap, "row-%llu", (unsigned long long)doc * 10);
    return 0;
}

Test(hard_engine, inf_vector_window_is_never_written) {
    emb_model *m = load_poisoning(INFINITY);
    text_reader r = {0};
    count_writer w = {0};
    eng_run_options ro = {0};
    ro.window_docs = 4;
    ro.doc_label = label_doc;
    emb_error err = {0};
    cr_assert_eq(eng_run(m, NULL, &ro, read_texts, &r, count_write, &w, NULL, &err), EMB_ERR_UNSUPPORTED);
    cr_assert(strstr(err.message, "document 5 (id row-50):") && strstr(err.message, "Inf") &&
                  strstr(err.message, "documents 4..7"), "%s", err.message);
    cr_assert_eq(w.written, 4, "documents 0..3 written, 4..7 not (%llu written)", (unsigned long long)w.written);
    emb_model_free(m);
}

/* ---- host pipeline timings (issue 16) ------------------------------------ */

/* emb_encode_stats' host timings are there for every window, never negative,
 * and the calling thread's four parts add up to no more than the call. */
Test(hard_engine, host_pipeline_timings_consistent) {
    emb_model *m = load(need_model());
    int dim = emb_model_dim(m, NULL);
    const char *texts[10];
    for (int i = 0; i < 10; i++) texts[i] = i % 2 ? "a short document" : "another, somewhat longer document here";
    float *out = malloc(10 * (size_t)dim * sizeof(float));
    emb_encode_options o = emb_encode_default_options();
    eng_run_options ro = {0};
    ro.window_docs = 4;   /* 4 + 4 + 2: three windows */
    emb_encode_stats st;
    emb_error err = {0};
    const double t0 = eng_now_s();
    cr_assert_eq(eng_encode_array(m, texts, NULL, 10, &o, &ro, out, &st, &err), EMB_OK, "%s", err.message);
    const double wall = eng_now_s() - t0;
    cr_assert_eq(st.windows, 3);
    const double parts[] = {st.read_seconds, st.tokenize_seconds, st.wait_seconds, st.batch_seconds,
                            st.encode_seconds, st.write_seconds};
    for (int i = 0; i < 6; i++) cr_assert(parts[i] >= 0.0 && isfinite(parts[i]), "part %d: %g", i, parts[i]);
    cr_assert_gt(st.encode_seconds, 0.0);
    cr_assert_gt(st.tokenize_seconds, 0.0);
    const double loop = st.wait_seconds + st.batch_seconds + st.encode_seconds + st.write_seconds;
    cr_assert_leq(loop, wall, "calling thread parts %g s > the call's %g s", loop, wall);
    cr_assert_leq(st.read_seconds + st.tokenize_seconds, wall, "producer %g s > the call's %g s",
                  st.read_seconds + st.tokenize_seconds, wall);
    free(out);
    emb_model_free(m);
}

/* A model whose fp32 weights exceed the host memory left is refused at load
 * with a message saying how much it needs, instead of being OOM-killed half
 * loaded (EMBEDC_HOST_MEMORY stands in for MemAvailable / a cgroup limit);
 * the real bounds of this machine let it load. */
Test(hard_engine, host_memory_refusal_names_the_need) {
    const char *dir = need_model();
    emb_model_options o = emb_model_default_options();
    o.device = EMB_DEVICE_CPU;
    emb_model *m = NULL;
    emb_error err = {0};
    cr_assert_eq(setenv("EMBEDC_HOST_MEMORY", "64M", 1), 0);   /* all-MiniLM-L6-v2: 22.7M fp32 parameters */
    cr_assert_eq(emb_model_load(dir, &o, &m, &err), EMB_ERR_NOMEM);
    cr_assert_null(m);
    cr_log_info("%s", err.message);
    cr_assert(strstr(err.message, "needs 0.08 GiB of host memory"), "%s", err.message);
    cr_assert(strstr(err.message, "23 million parameters"), "%s", err.message);
    cr_assert(strstr(err.message, "0.06 GiB are available (EMBEDC_HOST_MEMORY)"), "%s", err.message);
    cr_assert_eq(setenv("EMBEDC_HOST_MEMORY", "1G", 1), 0);
    cr_assert_eq(emb_model_load(dir, &o, &m, &err), EMB_OK, "%s", err.message);
    emb_model_free(m);
    m = NULL;
    cr_assert_eq(unsetenv("EMBEDC_HOST_MEMORY"), 0);
    cr_assert_eq(emb_model_load(dir, &o, &m, &err), EMB_OK, "%s", err.message);
    emb_model_free(m);
}

Test(hard_engine, host_memory_sizes_parse) {
    uint64_t b;
    cr_assert_eq(emb_parse_size("123", &b), 0);
    cr_assert_eq(b, 123);
    cr_assert_eq(emb_parse_size("512M", &b), 0);
    cr_assert_eq(b, UINT64_C(512) << 20);
    cr_assert_eq(emb_parse_size("1.5GiB", &b), 0);
    cr_assert_eq(b, UINT64_C(3) << 29);
    cr_assert_eq(emb_parse_size("2t", &b), 0);
    cr_assert_eq(b, UINT64_C(2) << 40);
    cr_assert_neq(emb_parse_size("", &b), 0);
    cr_assert_neq(emb_parse_size("-1G", &b), 0);
    cr_assert_neq(emb_parse_size("12 apples", &b), 0);
    cr_assert_neq(emb_parse_size("G", &b), 0);
    /* Whatever bounds this machine, it is a positive number of bytes. */
    cr_assert_eq(unsetenv("EMBEDC_HOST_MEMORY"), 0);
    const char *src = NULL;
    if (emb_host_memory_available(&b, &src)) {
        cr_assert_not_null(src);
        cr_assert_gt(b, 0);
    }
    cr_assert_eq(setenv("EMBEDC_HOST_MEMORY", "unlimited", 1), 0);
    cr_assert_eq(emb_host_memory_available(&b, &src), 0);
}
