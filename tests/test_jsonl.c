/*
 * The JSONL reader against Python's json.loads + HF tokenizers
 * (tests/golden/hardening/jsonl.json, written by tools/make-hardening-golden):
 * "\u0000" kept, the last duplicate key wins, lone surrogates become U+FFFD,
 * trailing data and other lines json.loads rejects stop with FILE line N.
 * Then the text reader's bounded lines (issue 9, points 6 and 7).
 */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io.h"
#include "jsonl.h"
#include "test_support.h"
#include "tokenizer.h"

static char *write_tmp(const char *content, size_t len, const char *name) {
    char *d = ts_tmpdir();
    size_t n = strlen(d) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", d, name);
    free(d);
    cr_assert_eq(ts_write_file(p, content, len), 0);
    return p;
}

Test(jsonl, golden_python_semantics) {
    const char *model = ts_default_model();
    if (!model) cr_skip_test("default model not fetched");
    char tokpath[4200];
    snprintf(tokpath, sizeof tokpath, "%s/tokenizer.json", model);
    tok_tokenizer *t = NULL;
    tok_error te;
    cr_assert_eq(tok_load_file(tokpath, &t, &te), 0, "%s", te.message);
    char *gp = ts_src_path("tests/golden/hardening/jsonl.json");
    char *g = ts_read_file(gp, NULL);
    cr_assert_not_null(g, "missing %s (tools/make-hardening-golden)", gp);
    cJSON *cases = cJSON_Parse(g);
    cr_assert(cJSON_IsArray(cases));
    int n_ok = 0, n_err = 0;
    tok_encoding enc;
    tok_encoding_init(&enc);
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        const char *line = cJSON_GetObjectItem(c, "line")->valuestring;
        size_t ll = strlen(line);
        char *buf = malloc(ll + 2);
        memcpy(buf, line, ll);
        buf[ll] = '\n';
        char *path = write_tmp(buf, ll + 1, "in.jsonl");
        free(buf);
        io_reader *r = NULL;
        emb_error err = {0};
        cr_assert_eq(io_reader_open(path, IO_IN_JSONL, "text", &r, &err), EMB_OK);
        const char *text;
        size_t len;
        int got = io_reader_next(r, &text, &len, &err);
        if (cJSON_GetObjectItem(c, "python_error")) {
            cr_assert_eq(got, -1, "accepted a line json.loads rejects: %s", line);
            char want[4300];
            snprintf(want, sizeof want, "%s line 1", path);
            cr_assert(strstr(err.message, want) == err.message, "message \"%s\" for %s", err.message, line);
            n_err++;
        } else {
            cr_assert_eq(got, 1, "rejected %s: %s", line, err.message);
            char *fixed = NULL;
            size_t fl = 0;
            tok_utf8_repair(text, len, &fixed, &fl);
            cr_assert_eq(tok_encode(t, fixed, fl, 1, 0, &enc, &te), 0, "%s", te.message);
            free(fixed);
            const cJSON *ids = cJSON_GetObjectItem(c, "ids");
            cr_assert_eq(enc.len, (size_t)cJSON_GetArraySize(ids), "token count for %s", line);
            for (size_t k = 0; k < enc.len; k++)
                cr_assert_eq(enc.ids[k], cJSON_GetArrayItem(ids, (int)k)->valueint, "id %zu of %s", k, line);
            n_ok++;
        }
        io_reader_close(r);
        free(path);
    }
    cr_assert_geq(n_ok, 10);
    cr_assert_geq(n_err, 6);
    tok_encoding_free(&enc);
    cJSON_Delete(cases);
    free(g);
    free(gp);
    tok_free(t);
}

Test(jsonl, nul_kept_and_last_duplicate_wins) {
    jsonl_value v = {0};
    const char *l = "{\"text\": \"a\\u0000b\", \"x\": 1}";
    cr_assert_eq(jsonl_get_field(l, strlen(l), "text", &v, NULL, 0, NULL), JSONL_OK);
    cr_assert_eq(v.len, 3);
    cr_assert_eq(memcmp(v.buf, "a\0b", 3), 0);
    l = "{\"text\": \"one\", \"text\": \"two\"}";
    cr_assert_eq(jsonl_get_field(l, strlen(l), "text", &v, NULL, 0, NULL), JSONL_OK);
    cr_assert_eq(v.len, 3);
    cr_assert_eq(memcmp(v.buf, "two", 3), 0);
    l = "{\"text\": \"one\", \"text\": null}";
    cr_assert_eq(jsonl_get_field(l, strlen(l), "text", &v, NULL, 0, NULL), JSONL_NOT_STRING);
    l = "{\"text\": \"\\ud800x\\udfff\"}";
    cr_assert_eq(jsonl_get_field(l, strlen(l), "text", &v, NULL, 0, NULL), JSONL_OK);
    cr_assert_eq(v.len, 7);
    cr_assert_eq(memcmp(v.buf, "\xef\xbf\xbdx\xef\xbf\xbd", 7), 0);
    cr_assert_eq(v.lone_surrogates, 2);
    free(v.buf);
}

Test(jsonl, field_value_bounded_by_keep) {
    size_t big = 1 << 20;
    char *l = malloc(big + 32);
    size_t k = (size_t)sprintf(l, "{\"text\": \"");
    memset(l + k, 'x', big);
    k += big;
    k += (size_t)sprintf(l + k, "\"}");
    jsonl_value v = {0};
    v.keep = 100;
    cr_assert_eq(jsonl_get_field(l, k, "text", &v, NULL, 0, NULL), JSONL_OK);
    cr_assert_eq(v.len, 100);
    cr_assert_eq(v.full_len, big);
    cr_assert_leq(v.cap, 256, "held %zu bytes for a value cut to 100", v.cap);
    free(v.buf);
    free(l);
}

Test(jsonl, deep_nesting_refused_not_crashing) {
    size_t depth = 100000;
    char *l = malloc(depth * 2 + 16);
    size_t k = (size_t)sprintf(l, "{\"a\": ");
    memset(l + k, '[', depth);
    k += depth;
    memset(l + k, ']', depth);
    k += depth;
    l[k++] = '}';
    jsonl_value v = {0};
    char msg[128];
    cr_assert_eq(jsonl_get_field(l, k, "text", &v, msg, sizeof msg, NULL), JSONL_SYNTAX);
    cr_assert(strstr(msg, "nested deeper"), "%s", msg);
    free(l);
}

Test(text_reader, long_line_held_only_up_to_keep) {
    size_t big = 3 << 20;
    char *data = malloc(big + 16);
    memset(data, 'y', big);
    memcpy(data + big, "\r\nab\r\n", 6);
    char *path = write_tmp(data, big + 6, "in.txt");
    io_reader *r = NULL;
    emb_error err = {0};
    cr_assert_eq(io_reader_open(path, IO_IN_TEXT, NULL, &r, &err), EMB_OK);
    io_reader_set_keep(r, 1000);
    const char *t;
    size_t len;
    cr_assert_eq(io_reader_next(r, &t, &len, &err), 1);
    cr_assert_eq(len, 1000);
    cr_assert_eq(io_reader_next(r, &t, &len, &err), 1);
    cr_assert_eq(len, 2, "the \\r of a whole line is dropped");
    cr_assert_eq(memcmp(t, "ab", 2), 0);
    cr_assert_eq(io_reader_next(r, &t, &len, &err), 0);
    uint64_t used, size;
    io_reader_progress(r, &used, &size);
    cr_assert_eq(used, big + 6);
    io_reader_close(r);
    free(path);
    free(data);
}

/* The scanner holds a 64 KiB window of the line: escapes, surrogate pairs,
 * literals and numbers straddling the window's edge decode as anywhere else. */
Test(jsonl, tokens_across_the_window_edge) {
    const char *tail = "\", \"n\": -12.5e+3, \"t\": true, \"i\": -Infinity, "
                       "\"text\": \"A\\u00e9\\ud83d\\ude00B\\n\\\"\"}";
    const char *want = "A\xc3\xa9\xf0\x9f\x98\x80" "B\n\"";
    size_t tl = strlen(tail);
    char *l = malloc(65536 + 200 + tl);
    for (size_t pad = 65536 - 140; pad < 65536 + 20; pad++) {
        size_t k = (size_t)sprintf(l, "{\"pad\": \"");
        memset(l + k, 'p', pad - k);
        memcpy(l + pad, tail, tl);
        jsonl_value v = {0};
        char msg[128];
        jsonl_result r = jsonl_get_field(l, pad + tl, "text", &v, msg, sizeof msg, NULL);
        cr_assert_eq(r, JSONL_OK, "pad %zu: %d %s", pad, r, msg);
        cr_assert_eq(v.len, strlen(want), "pad %zu", pad);
        cr_assert_eq(memcmp(v.buf, want, v.len), 0, "pad %zu", pad);
        free(v.buf);
    }
    free(l);
}
