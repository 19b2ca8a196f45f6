/*
 * Error reporting and checked arithmetic shared by all of host/. Library code
 * never exits on bad input: it fills an emb_error and returns its code.
 */
#ifndef EMBEDC_HOST_ERROR_H
#define EMBEDC_HOST_ERROR_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "embedc.h"

#if defined(__GNUC__)
#define EMB_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define EMB_PRINTF(a, b)
#endif

/* Fills err (may be NULL) and returns code, so callers can `return emb_fail(...)`. */
emb_status emb_fail(emb_error *err, emb_status code, const char *fmt, ...) EMB_PRINTF(3, 4);

/* Prefixes an existing message with context ("loading X: <old message>"). */
emb_status emb_fail_prefix(emb_error *err, const char *fmt, ...) EMB_PRINTF(2, 3);

static inline bool emb_mul_ok(size_t a, size_t b, size_t *out) {
    return !__builtin_mul_overflow(a, b, out);
}
static inline bool emb_add_ok(size_t a, size_t b, size_t *out) {
    return !__builtin_add_overflow(a, b, out);
}

#endif
