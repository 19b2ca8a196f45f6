/* Error reporting for the embedc library (see error.h). */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *emb_status_name(emb_status s) {
    switch (s) {
    case EMB_OK: return "ok";
    case EMB_ERR_INVALID_ARG: return "invalid argument";
    case EMB_ERR_IO: return "I/O error";
    case EMB_ERR_FORMAT: return "format error";
    case EMB_ERR_UNSUPPORTED: return "unsupported";
    case EMB_ERR_NOMEM: return "out of memory";
    case EMB_ERR_DEVICE: return "device error";
    case EMB_ERR_DEVICE_OOM: return "device out of memory";
    case EMB_ERR_INTERNAL: return "internal error";
    case EMB_ERR_INTERRUPTED: return "interrupted";
    }
    return "unknown status";
}

emb_status emb_fail(emb_error *err, emb_status code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return code;
}

emb_status emb_fail_prefix(emb_error *err, const char *fmt, ...) {
    if (!err) return EMB_ERR_INTERNAL;
    char msg[sizeof err->message];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t k = n < 0 ? 0 : (size_t)n;
    if (k > sizeof msg - 3) k = sizeof msg - 3;
    memcpy(msg + k, ": ", 2);
    k += 2;
    size_t old = strnlen(err->message, sizeof err->message - 1);
    if (old > sizeof msg - 1 - k) old = sizeof msg - 1 - k;
    memcpy(msg + k, err->message, old);
    msg[k + old] = 0;
    memcpy(err->message, msg, sizeof msg);
    return err->code;
}
