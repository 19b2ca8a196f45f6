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
    char prefix[512], old[sizeof err->message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->message, sizeof old);
    snprintf(err->message, sizeof err->message, "%s: %s", prefix, old);
    return err->code;
}
