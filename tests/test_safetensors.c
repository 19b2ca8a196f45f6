/*
 * The safetensors reader: one crafted buffer per rule of the reference format
 * that must be rejected with its message, and acceptance tests for what
 * valid files may contain (F32/F16/BF16, zero-size and scalar tensors,
 * metadata, a padded header, an empty header).
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "model_files.h"
#include "safetensors.h"
#include "test_support.h"

#define ORIGIN "t.safetensors"

/* A safetensors image: 8-byte LE header length hlen (normally strlen(header)),
 * the header bytes, then payload bytes filled with a counting pattern. */
static uint8_t *mk_raw(uint64_t hlen, const char *header, size_t header_bytes, size_t payload,
                       size_t *len) {
    *len = 8 + header_bytes + payload;
    uint8_t *b = malloc(*len ? *len : 1);
    cr_assert_not_null(b);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(hlen >> (8 * i));
    memcpy(b + 8, header, header_bytes);
    for (size_t i = 0; i < payload; i++) b[8 + header_bytes + i] = (uint8_t)i;
    return b;
}

static uint8_t *mk(const char *header, size_t payload, size_t *len) {
    return mk_raw(strlen(header), header, strlen(header), payload, len);
}

static void expect_reject_buf(const uint8_t *b, size_t len, const char *phrase) {
    st_file *f = (st_file *)1;
    emb_error err = {0};
    emb_status s = st_parse(b, len, ORIGIN, &f, &err);
    cr_assert_eq(s, EMB_ERR_FORMAT, "expected a format error, got %d (%s)", s, err.message);
    cr_assert_null(f);
    cr_assert_eq(err.code, EMB_ERR_FORMAT);
    cr_assert(strstr(err.message, ORIGIN) != NULL, "message names no file: %s", err.message);
    cr_assert(strstr(err.message, phrase) != NULL, "message \"%s\" lacks \"%s\"", err.message, phrase);
}

static void expect_reject(const char *header, size_t payload, const char *phrase) {
    size_t len;
    uint8_t *b = mk(header, payload, &len);
    expect_reject_buf(b, len, phrase);
    free(b);
}

static st_file *expect_accept(const uint8_t *b, size_t len) {
    st_file *f = NULL;
    emb_error err = {0};
    emb_status s = st_parse(b, len, ORIGIN, &f, &err);
    cr_assert_eq(s, EMB_OK, "rejected: %s", err.message);
    cr_assert_not_null(f);
    return f;
}

/* ---------------------------------------------------------- rejections */

Test(st_reject, shorter_than_length_field) {
    uint8_t b[5] = {2, 0, 0, 0, 0};
    expect_reject_buf(b, sizeof b, "too small for the 8-byte header length");
    expect_reject_buf(b, 0, "file is 0 bytes");
}

Test(st_reject, header_over_100mb) {
    size_t len;
    uint8_t *b = mk_raw(100000001ull, "{}", 2, 0, &len);
    expect_reject_buf(b, len, "header length 100000001 exceeds the 100000000-byte limit");
    free(b);
    /* The largest length: must not wrap around in 8 + N. */
    b = mk_raw(UINT64_MAX, "{}", 2, 0, &len);
    expect_reject_buf(b, len, "exceeds the 100000000-byte limit");
    free(b);
}

Test(st_reject, header_past_end_of_file) {
    size_t len;
    uint8_t *b = mk_raw(100000000ull, "{}", 2, 0, &len);   /* at the limit, but not in the file */
    expect_reject_buf(b, len, "header length 100000000 runs past the end of the file (10 bytes)");
    free(b);
    b = mk_raw(3, "{}", 2, 0, &len);
    expect_reject_buf(b, len, "runs past the end of the file");
    free(b);
}

Test(st_reject, header_not_utf8) {
    expect_reject("{\"a\xff\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
                  "header is not valid UTF-8 (byte 11)");
    /* Overlong "/", a surrogate, a truncated sequence, beyond U+10FFFF. */
    expect_reject("{\"\xc0\xaf\":1}", 0, "not valid UTF-8");
    expect_reject("{\"\xed\xa0\x80\":1}", 0, "not valid UTF-8");
    expect_reject("{\"\xe2\x82", 0, "not valid UTF-8");
    expect_reject("{\"\xf4\x90\x80\x80\":1}", 0, "not valid UTF-8");
}

Test(st_reject, header_not_starting_with_brace) {
    expect_reject(" {}", 0, "header does not start with '{'");
    expect_reject("[]", 0, "header does not start with '{'");
    size_t len;
    uint8_t *b = mk_raw(0, "", 0, 0, &len);   /* N = 0: empty header */
    expect_reject_buf(b, len, "does not start with '{'");
    free(b);
}

Test(st_reject, header_not_json) {
    expect_reject("{\"a\":", 0, "header is not valid JSON");
    expect_reject("{\"a\":{\"dtype\":\"F32\",}}", 0, "header is not valid JSON");
    expect_reject("{} x", 0, "trailing data after the JSON object");
    expect_reject("{}{}", 0, "trailing data after the JSON object");
}

Test(st_reject, duplicate_keys) {
    expect_reject("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                  "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
                  2, "header has duplicate key \"a\"");
    expect_reject("{\"a\":{\"dtype\":\"U8\",\"dtype\":\"I8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
                  "tensor \"a\": duplicate key \"dtype\"");
    expect_reject("{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, "\"__metadata__\": duplicate key \"k\"");
    expect_reject("{\"__metadata__\":{},\"__metadata__\":{}}", 0, "duplicate key \"__metadata__\"");
}

Test(st_reject, unknown_dtype) {
    expect_reject("{\"w\":{\"dtype\":\"F12\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
                  "tensor \"w\": unknown dtype \"F12\"");
    expect_reject("{\"w\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "unknown dtype \"f32\"");
    expect_reject("{\"w\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "non-string \"dtype\"");
    expect_reject("{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "missing or non-string \"dtype\"");
}

Test(st_reject, offsets_not_integers) {
    expect_reject("{\"w\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,1.5]}}", 2,
                  "tensor \"w\": data_offsets entry 1.5 is not a non-negative integer");
    expect_reject("{\"w\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[-1,-1]}}", 0,
                  "data_offsets entry -1 is not a non-negative integer");
    expect_reject("{\"w\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[\"0\",2]}}", 2,
                  "data_offsets entry \"0\" is not a non-negative integer");
    expect_reject("{\"w\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,null]}}", 2,
                  "data_offsets entry null is not a non-negative integer");
    /* 2^60 cannot be held exactly by a double: refused, not rounded. */
    expect_reject("{\"w\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,1152921504606846976]}}", 2,
                  "is not a non-negative integer");
    /* Same value as an integer once parsed, but not spelled as one. */
    expect_reject("{\"w\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2.0]}}", 2,
                  "number \"2.0\" is not a non-negative integer");
    expect_reject("{\"w\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2e0]}}", 2, "number \"2e0\"");
    expect_reject("{\"w\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[-0,2]}}", 2, "number \"-0\"");
}

Test(st_reject, offsets_wrong_arity) {
    expect_reject("{\"w\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,1,2]}}", 2,
                  "tensor \"w\": \"data_offsets\" must be an array [begin, end]");
    expect_reject("{\"w\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[2]}}", 2, "must be an array [begin, end]");
    expect_reject("{\"w\":{\"dtype\":\"U8\",\"shape\":[2]}}", 2, "must be an array [begin, end]");
}

Test(st_reject, shape_not_integers) {
    expect_reject("{\"w\":{\"dtype\":\"U8\",\"shape\":[2,-1],\"data_offsets\":[0,2]}}", 2,
                  "tensor \"w\": shape entry 1 is not a non-negative integer");
    expect_reject("{\"w\":{\"dtype\":\"U8\",\"shape\":[0.5],\"data_offsets\":[0,0]}}", 0, "shape entry 0");
    expect_reject("{\"w\":{\"dtype\":\"U8\",\"shape\":\"2\",\"data_offsets\":[0,2]}}", 2, "non-array \"shape\"");
}

Test(st_reject, entry_not_object) {
    expect_reject("{\"w\":[1,2]}", 0, "tensor \"w\": entry must be an object");
}

Test(st_reject, first_tensor_not_at_zero) {
    expect_reject("{\"w\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[2,4]}}", 4,
                  "tensor \"w\": data_offsets [2, 4] leave a gap after byte 0 (tensors must start at 0)");
}

Test(st_reject, gap_between_tensors) {
    expect_reject("{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
                  "\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[3,5]}}",
                  5, "tensor \"b\": data_offsets [3, 5] leave a gap after byte 2 (end of tensor \"a\")");
}

Test(st_reject, overlapping_tensors) {
    expect_reject("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
                  "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[2,6]}}",
                  6, "tensor \"b\": data_offsets [2, 6] overlap tensor \"a\" ending at byte 4");
    /* Two tensors sharing the same bytes. */
    expect_reject("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
                  "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}",
                  4, "overlap tensor");
}

Test(st_reject, end_before_begin) {
    expect_reject("{\"w\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]},"
                  "\"v\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[4,2]}}",
                  4, "end before begin");
}

Test(st_reject, span_differs_from_shape) {
    expect_reject("{\"encoder.layer.0.attention.self.query.weight\":"
                  "{\"dtype\":\"F32\",\"shape\":[384,384],\"data_offsets\":[0,10]}}",
                  10,
                  "t.safetensors: tensor \"encoder.layer.0.attention.self.query.weight\": data_offsets "
                  "[0, 10] span 10 bytes but F32 [384, 384] needs 589824");
    expect_reject("{\"w\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[0,3]}}", 3,
                  "span 3 bytes but BF16 [3] needs 6");
}

Test(st_reject, shape_byte_size_overflows) {
    /* 2^52 * 2^52 elements: the element count itself overflows 64 bits. */
    expect_reject("{\"w\":{\"dtype\":\"U8\",\"shape\":[4503599627370496,4503599627370496],"
                  "\"data_offsets\":[0,0]}}",
                  0, "tensor \"w\": byte size of U8 [4503599627370496, 4503599627370496] overflows");
    /* Fits in elements, overflows in bytes (x8). */
    expect_reject("{\"w\":{\"dtype\":\"F64\",\"shape\":[4503599627370496,4096],\"data_offsets\":[0,0]}}", 0,
                  "overflows");
}

Test(st_reject, buffer_size_differs_from_file) {
    /* One byte too many after the last tensor. */
    expect_reject("{\"w\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}", 3,
                  "tensor data ends at byte 2 of the buffer, but the file size");
    /* Truncated: the tensor claims bytes the file does not have. */
    expect_reject("{\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}", 2,
                  "tensor data ends at byte 4 of the buffer, but the file size");
    /* No tensors but stray bytes. */
    expect_reject("{}", 1, "tensor data ends at byte 0");
}

Test(st_reject, metadata_not_strings) {
    expect_reject("{\"__metadata__\":{\"format\":1}}", 0, "\"__metadata__\": value of \"format\" must be a string");
    expect_reject("{\"__metadata__\":[\"pt\"]}", 0, "\"__metadata__\" must be an object of strings");
}

Test(st_reject, open_missing_file) {
    st_file *f = NULL;
    emb_error err = {0};
    cr_assert_eq(st_open("/nonexistent/x.safetensors", NULL, &f, &err), EMB_ERR_IO);
    cr_assert_null(f);
    cr_assert(strstr(err.message, "/nonexistent/x.safetensors: cannot open") != NULL, "%s", err.message);
}

Test(st_reject, open_truncated_file) {
    char *dir = ts_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/short.safetensors", dir);
    cr_assert_eq(ts_write_file(path, "\x02\x00\x00", 3), 0);
    st_file *f = NULL;
    emb_error err = {0};
    cr_assert_eq(st_open(path, "short.safetensors", &f, &err), EMB_ERR_FORMAT);
    cr_assert(strstr(err.message, "short.safetensors: file is 3 bytes") != NULL, "%s", err.message);
    free(dir);
}

/* ---------------------------------------------------------- acceptance */

Test(st_accept, f32_values_and_views) {
    const char *h = "{\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]},"
                    "\"a\":{\"dtype\":\"F32\",\"shape\":[1,2],\"data_offsets\":[0,8]}}";
    size_t len;
    uint8_t *buf = mk(h, 16, &len);
    float vals[4] = {1.5f, -2.25f, 3.0e-3f, 1e30f};
    memcpy(buf + 8 + strlen(h), vals, sizeof vals);
    st_file *f = expect_accept(buf, len);
    cr_assert_eq(f->n_tensors, 2);
    const st_tensor *a = st_find(f, "a"), *b = st_find(f, "b");
    cr_assert(a && b);
    cr_assert_null(st_find(f, "c"));
    cr_assert_eq(a->dtype, ST_F32);
    cr_assert_eq(a->ndim, 2);
    cr_assert_eq(a->shape[0], 1);
    cr_assert_eq(a->shape[1], 2);
    cr_assert_eq(a->nbytes, 8);
    cr_assert_eq((const uint8_t *)a->data, buf + 8 + strlen(h));
    cr_assert_eq((const uint8_t *)b->data, buf + 8 + strlen(h) + 8);
    emb_tensor t = {.data = b->data, .dtype = EMB_DTYPE_F32, .ndim = 1, .shape = {2}};
    float out[2];
    cr_assert_eq(emb_tensor_numel(&t), 2);
    emb_tensor_to_f32(&t, out, 2);
    cr_assert_float_eq(out[0], 3.0e-3f, 0);
    cr_assert_float_eq(out[1], 1e30f, 0);
    st_close(f);
    free(buf);
}

/* The exact value of a half, computed independently of the loader. */
static float half_ref(uint16_t h) {
    int e = (h >> 10) & 31, m = h & 1023;
    float v = e == 0 ? ldexpf((float)m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexpf((float)(1024 + m), e - 25);
    return (h & 0x8000) ? -v : v;
}

Test(st_accept, f16_every_value) {
    /* All 65536 halves: normals, subnormals, zeros, infinities, NaNs. */
    char h[128];
    snprintf(h, sizeof h, "{\"h\":{\"dtype\":\"F16\",\"shape\":[65536],\"data_offsets\":[0,131072]}}");
    size_t len;
    uint8_t *buf = mk(h, 131072, &len);
    for (uint32_t i = 0; i < 65536; i++) {
        buf[8 + strlen(h) + 2 * i] = (uint8_t)i;
        buf[8 + strlen(h) + 2 * i + 1] = (uint8_t)(i >> 8);
    }
    st_file *f = expect_accept(buf, len);
    const st_tensor *s = st_find(f, "h");
    emb_tensor t = {.data = s->data, .dtype = EMB_DTYPE_F16, .ndim = 1, .shape = {65536}};
    float *out = malloc(65536 * sizeof *out);
    emb_tensor_to_f32(&t, out, 65536);
    for (uint32_t i = 0; i < 65536; i++) {
        float r = half_ref((uint16_t)i);
        if (isnan(r)) cr_assert(isnan(out[i]), "half 0x%04x -> %g, expected NaN", i, out[i]);
        else cr_assert(out[i] == r && signbit(out[i]) == signbit(r), "half 0x%04x -> %g, expected %g", i, out[i], r);
    }
    /* A few by hand, so that a shared mistake in half_ref cannot hide. */
    cr_assert_eq(out[0x3C00], 1.0f);
    cr_assert_eq(out[0xC000], -2.0f);
    cr_assert_eq(out[0x0001], 5.9604644775390625e-08f);
    cr_assert_eq(out[0x03FF], 6.097555160522461e-05f);
    cr_assert_eq(out[0x7BFF], 65504.0f);
    cr_assert(isinf(out[0xFC00]) && out[0xFC00] < 0);
    cr_assert(signbit(out[0x8000]) && out[0x8000] == 0.0f);
    free(out);
    st_close(f);
    free(buf);
}

Test(st_accept, bf16_values) {
    const char *h = "{\"w\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[0,8]}}";
    size_t len;
    uint8_t *buf = mk(h, 8, &len);
    const uint16_t v[4] = {0x3F80, 0xC040, 0x7F80, 0x0001};   /* 1, -3, inf, smallest subnormal */
    memcpy(buf + 8 + strlen(h), v, sizeof v);
    st_file *f = expect_accept(buf, len);
    cr_assert_eq(st_find(f, "w")->dtype, ST_BF16);
    emb_tensor t = {.data = st_find(f, "w")->data, .dtype = EMB_DTYPE_BF16, .ndim = 1, .shape = {4}};
    float out[4];
    emb_tensor_to_f32(&t, out, 4);
    cr_assert_eq(out[0], 1.0f);
    cr_assert_eq(out[1], -3.0f);
    cr_assert(isinf(out[2]));
    cr_assert_eq(out[3], ldexpf(1.0f, -133));
    st_close(f);
    free(buf);
}

Test(st_accept, every_known_dtype) {
    static const char *names[] = {"BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16", "BF16",
                                  "I32", "U32", "F32", "F64", "I64", "U64"};
    static const size_t sizes[] = {1, 1, 1, 1, 1, 2, 2, 2, 2, 4, 4, 4, 8, 8, 8};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char h[160];
        snprintf(h, sizeof h, "{\"x\":{\"dtype\":\"%s\",\"shape\":[3],\"data_offsets\":[0,%zu]}}", names[i],
                 3 * sizes[i]);
        size_t len;
        uint8_t *buf = mk(h, 3 * sizes[i], &len);
        st_file *f = expect_accept(buf, len);
        st_dtype d;
        cr_assert_eq(st_dtype_parse(names[i], &d), 0);
        cr_assert_eq(st_find(f, "x")->dtype, d);
        cr_assert_str_eq(st_dtype_name(d), names[i]);
        cr_assert_eq(st_dtype_size(d), sizes[i]);
        st_close(f);
        free(buf);
    }
}

Test(st_accept, zero_size_and_scalar_tensors) {
    /* Zero-size tensors occupy no bytes and may sit anywhere, even between
     * or after the others; a scalar (shape []) has one element. */
    const char *h = "{\"e\":{\"dtype\":\"F32\",\"shape\":[0,4],\"data_offsets\":[4,4]},"
                    "\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},"
                    "\"z\":{\"dtype\":\"F16\",\"shape\":[3,0],\"data_offsets\":[4,4]}}";
    size_t len;
    uint8_t *buf = mk(h, 4, &len);
    st_file *f = expect_accept(buf, len);
    cr_assert_eq(f->n_tensors, 3);
    cr_assert_eq(st_find(f, "e")->nbytes, 0);
    cr_assert_eq(st_find(f, "s")->ndim, 0);
    cr_assert_eq(st_find(f, "s")->nbytes, 4);
    cr_assert_eq(st_find(f, "z")->nbytes, 0);
    st_close(f);
    free(buf);
}

Test(st_accept, metadata) {
    const char *h = "{\"__metadata__\":{\"format\":\"pt\",\"note\":\"h\\u00e9\"},"
                    "\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}";
    size_t len;
    uint8_t *buf = mk(h, 1, &len);
    st_file *f = expect_accept(buf, len);
    cr_assert_eq(f->n_tensors, 1);
    cr_assert_eq(f->n_meta, 2);
    cr_assert_str_eq(st_metadata(f, "format"), "pt");
    cr_assert_str_eq(st_metadata(f, "note"), "h\xc3\xa9");
    cr_assert_null(st_metadata(f, "missing"));
    st_close(f);
    free(buf);
    /* "__metadata__": null is allowed by the reference (an Option). */
    buf = mk("{\"__metadata__\":null}", 0, &len);
    f = expect_accept(buf, len);
    cr_assert_eq(f->n_meta, 0);
    st_close(f);
    free(buf);
}

Test(st_accept, padded_header_and_empty_header) {
    /* Writers pad the header with spaces to an 8-byte boundary. */
    const char *h = "{\"w\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}        ";
    size_t len;
    uint8_t *buf = mk(h, 2, &len);
    st_file *f = expect_accept(buf, len);
    cr_assert_eq(st_find(f, "w")->nbytes, 2);
    cr_assert_eq(((const uint8_t *)st_find(f, "w")->data)[1], 1);
    st_close(f);
    free(buf);
    buf = mk("{}", 0, &len);
    f = expect_accept(buf, len);
    cr_assert_eq(f->n_tensors, 0);
    st_close(f);
    free(buf);
}

Test(st_accept, open_file_from_disk) {
    char *dir = ts_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/w.safetensors", dir);
    const char *h = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    size_t len;
    uint8_t *buf = mk(h, 8, &len);
    float v[2] = {4.0f, -0.5f};
    memcpy(buf + 8 + strlen(h), v, sizeof v);
    cr_assert_eq(ts_write_file(path, buf, len), 0);
    st_file *f = NULL;
    emb_error err = {0};
    cr_assert_eq(st_open(path, NULL, &f, &err), EMB_OK, "%s", err.message);
    cr_assert_not_null(f->map);
    cr_assert_str_eq(f->origin, path);
    float out[2];
    memcpy(out, st_find(f, "w")->data, sizeof out);
    cr_assert_eq(out[0], 4.0f);
    cr_assert_eq(out[1], -0.5f);
    st_close(f);
    free(buf);
    free(dir);
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define ST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define ST_SANITIZED 1
#endif
#endif

/* A file larger than the address space left (ulimit -v): a message naming
 * the file, its size and the limit, not a bare "cannot mmap". */
Test(st_reject, larger_than_the_address_space) {
#ifdef ST_SANITIZED
    cr_skip_test("sanitizers reserve the address space themselves");
#else
    char *dir = ts_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/big.safetensors", dir);
    int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
    cr_assert_geq(fd, 0);
    cr_assert_eq(ftruncate(fd, (off_t)256 << 20), 0);   /* sparse: no disk used */
    close(fd);
    long pages = 0;
    FILE *sm = fopen("/proc/self/statm", "r");
    cr_assert_not_null(sm);
    cr_assert_eq(fscanf(sm, "%ld", &pages), 1);
    fclose(sm);
    struct rlimit old, rl;
    cr_assert_eq(getrlimit(RLIMIT_AS, &old), 0);
    rl = old;
    rl.rlim_cur = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + ((rlim_t)64 << 20);
    cr_assert_eq(setrlimit(RLIMIT_AS, &rl), 0);
    st_file *f = NULL;
    emb_error err = {0};
    emb_status st = st_open(path, "big.safetensors", &f, &err);
    setrlimit(RLIMIT_AS, &old);
    cr_assert_eq(st, EMB_ERR_NOMEM, "%s", err.message);
    cr_assert(strstr(err.message, "big.safetensors: cannot map its 256.0 MiB") &&
                  strstr(err.message, "address space (ulimit -v: "),
              "%s", err.message);
    unlink(path);
    free(dir);
#endif
}

Test(st_accept, default_model_file) {
    const char *m = ts_default_model();
    if (!m) cr_skip_test("default model not fetched");
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", m);
    st_file *f = NULL;
    emb_error err = {0};
    cr_assert_eq(st_open(path, "model.safetensors", &f, &err), EMB_OK, "%s", err.message);
    cr_assert_eq(f->n_tensors, 6 * 16 + 5 + 1 + 2);   /* layers, embeddings, position_ids, pooler */
    const st_tensor *p = st_find(f, "embeddings.position_ids");
    cr_assert_not_null(p);
    cr_assert_eq(p->dtype, ST_I64);
    const st_tensor *w = st_find(f, "embeddings.word_embeddings.weight");
    cr_assert_eq(w->shape[0], 30522);
    cr_assert_eq(w->shape[1], 384);
    cr_assert_str_eq(st_metadata(f, "format"), "pt");
    st_close(f);
}

Test(st_misc, shard_names) {
    cr_assert(st_shard_name_ok("model-00001-of-00002.safetensors"));
    cr_assert(!st_shard_name_ok("../model.safetensors"));
    cr_assert(!st_shard_name_ok("sub/model.safetensors"));
    cr_assert(!st_shard_name_ok("/etc/passwd"));
    cr_assert(!st_shard_name_ok("a\\b.safetensors"));
    cr_assert(!st_shard_name_ok(".."));
    cr_assert(!st_shard_name_ok("."));
    cr_assert(!st_shard_name_ok(""));
    st_dtype d;
    cr_assert_eq(st_dtype_parse("F4", &d), -1);
}
