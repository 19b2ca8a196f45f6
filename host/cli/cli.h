/*
 * What the embedc command's files share: the parsed options and the helpers
 * every command uses (model loading, input opening, progress on a terminal).
 */
#ifndef EMBEDC_CLI_H
#define EMBEDC_CLI_H

#include <stddef.h>
#include <stdint.h>
#include "embedc.h"
#include "io.h"
#include "cli_extra.h"

typedef struct {
    const char *model, *input, *output, *format, *input_format, *field, *summary_json;
    const char *device, *dtype, *fixed_lengths, *job, *devices, *tokenizer;
    size_t batch_tokens, window_docs;
    int max_length, threads, quiet, tokens, help, lowercase, tensor_parallel, corpus_copies;
    emb_encode_options eo;
    cli_extra x;               /* index and picture options (cli_extra.h) */
} cli_opts;

typedef struct {
    double t0, last;
    io_reader *reader;
    int enabled;
} cli_progress;

double cli_now_s(void);
/* An integer option in lo..hi; -1 with a message naming the flag otherwise. */
int cli_parse_int(const char *flag, const char *s, long lo, long hi, long *out);
emb_model *cli_load_model(const cli_opts *o, emb_error *err);
int cli_open_input(const cli_opts *o, io_reader **r, emb_error *err);
void cli_on_progress(void *ud, uint64_t docs, uint64_t tokens);

/* encode --job DIR (host/cli/job_cmd.c). */
int cli_encode_job(const cli_opts *o);

#endif
