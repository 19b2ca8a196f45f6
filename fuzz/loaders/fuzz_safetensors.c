/* fuzz_safetensors.c - libFuzzer target: any bytes as a safetensors file.
 * st_parse must accept or refuse with a message, never read outside the
 * buffer; every accepted tensor lies inside it. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    st_file *f = NULL;
    emb_error err;
    memset(&err, 0, sizeof err);
    if (st_parse(data, size, "fuzz.safetensors", &f, &err) != EMB_OK) {
        if (!err.message[0])
            __builtin_trap();   /* every failure must say why */
        return 0;
    }
    for (size_t i = 0; i < f->n_tensors; i++) {
        const st_tensor *t = &f->tensors[i];
        const uint8_t *p = t->data;
        if (p < data || p + t->nbytes > data + size || st_find(f, t->name) == NULL)
            __builtin_trap();
        volatile uint8_t sum = 0;
        for (size_t k = 0; k < t->nbytes; k++)
            sum ^= p[k];   /* ASan checks every byte is in bounds */
        (void)sum;
    }
    st_close(f);
    return 0;
}
