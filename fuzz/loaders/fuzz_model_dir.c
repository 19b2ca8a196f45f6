/* fuzz_model_dir.c - libFuzzer target: a whole model directory from one
 * blob. The blob is split at NUL bytes into config.json, modules.json,
 * 1_Pooling/config.json, sentence_bert_config.json,
 * config_sentence_transformers.json, and the rest (NULs included) is
 * model.safetensors; empty parts and parts the blob does not reach are
 * absent. Loading must
 * succeed or fail with a message, never crash or leak. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model_files.h"

static const char *const names[] = {"config.json", "modules.json", "1_Pooling/config.json",
                                    "sentence_bert_config.json", "config_sentence_transformers.json",
                                    "model.safetensors"};
#define N_PARTS (sizeof names / sizeof names[0])

static char dir[64];

static void put(const char *name, const uint8_t *p, size_t n, int present)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    unlink(path);
    if (!present)
        return;
    FILE *f = fopen(path, "wb");
    if (!f)
        return;
    if (n)
        fwrite(p, 1, n, f);
    fclose(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/embedc-fuzz-model-%ld", (long)getpid());
        mkdir(dir, 0700);
        char pool[128];
        snprintf(pool, sizeof pool, "%s/1_Pooling", dir);
        mkdir(pool, 0700);
    }
    size_t start = 0;
    for (size_t k = 0; k < N_PARTS; k++) {
        int present = start <= size;
        size_t end = size;
        if (present && k + 1 < N_PARTS) {
            const uint8_t *z = memchr(data + start, 0, size - start);
            end = z ? (size_t)(z - data) : size;
        }
        /* An empty part is an absent file. */
        put(names[k], data + (present ? start : 0), present ? end - start : 0, present && end > start);
        start = present ? end + 1 : size + 1;
    }
    emb_model_files mf;
    emb_error err;
    memset(&err, 0, sizeof err);
    if (emb_mf_load(dir, &mf, &err) != EMB_OK) {
        if (!err.message[0])
            __builtin_trap();
        return 0;
    }
    emb_mf_free(&mf);
    return 0;
}
