/* fuzz_load.c - libFuzzer target: any bytes as a tokenizer.json document.
 * Loading must either succeed or fail with a message, never crash; a
 * document that loads is then used to encode a few fixed strings. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tok_tokenizer *t = NULL;
    tok_error err;
    if (tok_load_json((const char *)data, size, "fuzz.json", &t, &err) != 0) {
        if (!err.message[0])
            __builtin_trap();   /* every failure must say why */
        return 0;
    }
    static const char *const probes[] = {"", "Hello world!", "  a\tb\n", "\xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x98\x80",
                                         "[CLS] <s> <unk>", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
    tok_encoding e;
    tok_encoding_init(&e);
    for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
        tok_encode(t, probes[i], strlen(probes[i]), 1, 0, &e, &err);
        for (size_t k = 0; k < e.len; k++)
            if (e.ids[k] < 0 || (size_t)e.ids[k] >= tok_vocab_size(t))
                __builtin_trap();
    }
    tok_encoding_free(&e);
    tok_free(t);
    return 0;
}
