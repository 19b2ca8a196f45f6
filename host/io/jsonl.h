/*
 * The JSONL reader's scanner: one line holding one JSON object, read with the
 * semantics of Python's json.loads (strict mode), and the value of one
 * string field extracted as length-carrying UTF-8:
 *   - "\u0000" is kept (the result is not NUL-terminated text);
 *   - of duplicate keys the last one wins;
 *   - a surrogate pair becomes its code point; a lone surrogate (which
 *     Python keeps in the str and no UTF-8 encoder accepts) becomes U+FFFD;
 *   - raw control characters inside strings are errors, as in strict mode;
 *   - NaN, Infinity and -Infinity are accepted as values, as Python does;
 *   - anything but whitespace after the object is an error.
 * Bytes that are not valid UTF-8 are passed through (the engine repairs
 * them like any document text). Nesting deeper than JSONL_MAX_DEPTH is
 * refused (Python raises RecursionError near 1000).
 */
#ifndef EMBEDC_HOST_JSONL_H
#define EMBEDC_HOST_JSONL_H

#include <stddef.h>
#include <stdint.h>

#define JSONL_MAX_DEPTH 900

typedef enum {
    JSONL_OK,            /* field found, a string: *out holds it */
    JSONL_MISSING,       /* valid object without the field */
    JSONL_NOT_STRING,    /* the field's (last) value is not a string */
    JSONL_SYNTAX,        /* not one JSON object: msg says why, *at is the byte offset */
    JSONL_NOMEM,
    JSONL_BLANK,         /* jsonl_scan: the line holds only whitespace */
    JSONL_IO             /* jsonl_scan: the source reported a read error */
} jsonl_result;

typedef struct {
    char *buf;           /* decoded field value (owned, reused between calls) */
    size_t len, cap;
    size_t keep;         /* keep at most this many bytes of the value (0 = all) */
    size_t full_len;     /* the value's whole decoded length */
    int lone_surrogates; /* lone surrogates replaced by U+FFFD */
    /* A second top-level member to capture in the same pass (an integer id):
     * set aux_key; after a scan aux_found is 0 (absent), 1 (a number, its text
     * in aux_num) or 2 (another kind of value, or a number too long to be an id). */
    const char *aux_key;
    char aux_num[40];
    int aux_found;
} jsonl_value;

/* A source of one line's bytes: copies at most max into dst and returns the
 * count, 0 at the end of the line; sets *error on a read error (and returns 0). */
typedef size_t (*jsonl_read_fn)(void *ud, char *dst, size_t max, int *error);

/* Scans one line from read, holding a 64 KiB window of it (plus at most
 * v->keep bytes of the value), so a line of any length costs the same. Reads
 * the line to its end when it is valid. */
jsonl_result jsonl_scan(jsonl_read_fn read, void *ud, const char *key, jsonl_value *v, char *msg,
                        size_t msg_cap, uint64_t *at);

/* Scans line[0..n) (a blank line is JSONL_SYNTAX here) and extracts key's value into v (v->buf is overwritten;
 * v->keep bounds the memory it takes). msg gets a short reason on
 * JSONL_SYNTAX. */
jsonl_result jsonl_get_field(const char *line, size_t n, const char *key, jsonl_value *v, char *msg,
                             size_t msg_cap, size_t *at);

#endif
