/*
 * Document readers (text lines, JSONL field, stdin) and vector writers (.npy
 * float32/float16 written streaming, .fvecs, JSONL). Writers put their bytes
 * in a temporary file beside the destination and rename it into place only
 * when everything was written and synced, so a failed job never leaves a
 * half-written file under the final name.
 */
#ifndef EMBEDC_HOST_IO_H
#define EMBEDC_HOST_IO_H

#include <stdint.h>
#include <stdio.h>
#include "embedc.h"

typedef enum { IO_IN_TEXT, IO_IN_JSONL } io_in_format;
typedef enum { IO_OUT_NPY, IO_OUT_NPY_F16, IO_OUT_FVECS, IO_OUT_JSONL } io_out_format;

typedef struct io_reader io_reader;

/* path "-" reads standard input. field: the JSONL key holding the text. */
emb_status io_reader_open(const char *path, io_in_format fmt, const char *field, io_reader **out,
                          emb_error *err);
/* eng_read_fn-compatible: 1 document, 0 end, -1 error. */
int io_reader_next(void *reader, const char **text, size_t *len, emb_error *err);
/* Bytes consumed so far and the input's size (0 when unknown, e.g. a pipe). */
void io_reader_progress(const io_reader *r, uint64_t *consumed, uint64_t *size);
void io_reader_close(io_reader *r);
/* JSONL: the integer field `name` of the document last returned (e.g. an id
 * for an index); an error naming the line when absent or not an integer. */
emb_status io_reader_int_field(const io_reader *r, const char *name, int64_t *out, emb_error *err);

/* Guesses the input format from the file name (.jsonl/.ndjson -> JSONL). */
io_in_format io_guess_in_format(const char *path);
/* Parses "npy", "npy16"/"npy-f16", "fvecs", "jsonl"; guesses from the output
 * name when name is NULL. Returns -1 for an unknown name. */
int io_parse_out_format(const char *name, const char *path, io_out_format *fmt);

typedef struct io_writer io_writer;

/* path "-" writes standard output (JSONL only). */
emb_status io_writer_open(const char *path, io_out_format fmt, int dim, io_writer **out,
                          emb_error *err);
/* eng_write_fn-compatible. */
emb_status io_writer_write(void *writer, uint64_t first, size_t n, const float *vecs, int dim,
                           emb_error *err);
/* Finishes the file (patches the .npy header, syncs) and renames it into place. */
emb_status io_writer_commit(io_writer *w, emb_error *err);
/* Removes the temporary file; no-op after a successful commit. Frees w. */
void io_writer_close(io_writer *w);

uint16_t io_f32_to_f16(float f);

#endif
