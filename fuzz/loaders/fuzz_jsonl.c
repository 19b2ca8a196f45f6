/* fuzz_jsonl.c - libFuzzer target: any bytes as one JSONL line. The scanner
 * must accept or refuse with a reason, never read outside the line, and keep
 * no more of the field than asked. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jsonl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly size bytes, so ASan catches a read past the end. */
    char *line = malloc(size ? size : 1);
    if (!line)
        return 0;
    memcpy(line, data, size);
    static const size_t keeps[] = {0, 7};
    for (size_t k = 0; k < 2; k++) {
        jsonl_value v;
        memset(&v, 0, sizeof v);
        v.keep = keeps[k];
        char msg[128];
        size_t at = 0;
        jsonl_result r = jsonl_get_field(line, size, "text", &v, msg, sizeof msg, &at);
        if (r == JSONL_SYNTAX && (!msg[0] || at > size))
            __builtin_trap();
        if (r == JSONL_OK && (v.len > v.full_len || (v.keep && v.len > v.keep)))
            __builtin_trap();
        free(v.buf);
    }
    free(line);
    return 0;
}
