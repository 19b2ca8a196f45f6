/*
 * Document readers (text lines, JSONL field, stdin) and vector writers (.npy
 * float32/float16 written streaming, .fvecs, JSONL). Outputs (io_out) put
 * their bytes in a temporary file beside the destination and rename it into
 * place only when everything was written and synced, so a failed job never
 * leaves a half-written file under the final name. A symlink's target is the
 * file replaced (the link stays); a device, FIFO or socket is written in
 * place, never replaced.
 */
#ifndef EMBEDC_HOST_IO_H
#define EMBEDC_HOST_IO_H

#include <stdint.h>
#include <stdio.h>
#include "embedc.h"
#include "jsonl.h"

typedef enum { IO_IN_TEXT, IO_IN_JSONL } io_in_format;
typedef enum { IO_OUT_NPY, IO_OUT_NPY_F16, IO_OUT_FVECS, IO_OUT_JSONL } io_out_format;

typedef struct io_reader io_reader;

/* path "-" reads standard input. field: the JSONL key holding the text. */
emb_status io_reader_open(const char *path, io_in_format fmt, const char *field, io_reader **out,
                          emb_error *err);
/* Holds at most keep bytes of each document (0 = all): the rest of a text
 * line is skipped as it is read; a JSONL line is streamed through the
 * scanner (64 KiB window), checked to its end, its field's value cut to keep
 * bytes. The engine then applies its --max-doc-bytes policy to what it gets
 * (keep = that limit + 1). */
void io_reader_set_keep(io_reader *r, size_t keep);
/* eng_read_fn-compatible: 1 document, 0 end, -1 error. */
int io_reader_next(void *reader, const char **text, size_t *len, emb_error *err);
/* Bytes consumed so far and the input's size (0 when unknown, e.g. a pipe). */
void io_reader_progress(const io_reader *r, uint64_t *consumed, uint64_t *size);
void io_reader_close(io_reader *r);
/* JSONL: the integer field `name` of the document last returned (e.g. an id
 * for an index); an error naming the line when absent or not an integer. */
/* Asks the JSONL reader to capture the integer member `name` of every line
 * it reads (call before the first io_reader_next); io_reader_int_field then
 * gives the current line's value. */
void io_reader_want_int_field(io_reader *r, const char *name);
emb_status io_reader_int_field(const io_reader *r, const char *name, int64_t *out, emb_error *err);

/* Guesses the input format from the file name (.jsonl/.ndjson -> JSONL). */
io_in_format io_guess_in_format(const char *path);
/* Parses "npy", "npy16"/"npy-f16", "fvecs", "jsonl"; guesses from the output
 * name when name is NULL. Returns -1 for an unknown name. */
int io_parse_out_format(const char *name, const char *path, io_out_format *fmt);

/* An output file. "-" is standard output. A regular file (or a name that
 * does not exist yet, or a symlink to either) is written to a temporary
 * ".embedc-PID-HOST-XXXXXX" (HOST: 8 hex digits hashing the host name) in the
 * target's directory and renamed over the target by io_out_commit; opening
 * one first removes such temporaries of this host left by processes that no
 * longer exist (killed by SIGKILL). A device, FIFO or
 * socket is written directly; with `seekable` set (the .npy header is
 * patched at the end) a node that cannot seek gets a spool file copied into
 * it at commit. Open and close outputs from one thread. */
typedef struct io_out io_out;
emb_status io_out_open(const char *path, int seekable, io_out **out, emb_error *err);
FILE *io_out_stream(io_out *o);
/* The name written: the symlink's target when path was a symlink. */
const char *io_out_path(const io_out *o);
/* Flushes, checks every write, syncs and renames into place. */
emb_status io_out_commit(io_out *o, emb_error *err);
/* Closes; removes the temporary file unless committed. Frees o. */
void io_out_close(io_out *o);
/* Writes ".embedc-PID-HOST-", the start of a temporary output's name. */
int io_temp_name_prefix(long pid, char *buf, size_t n);
/* Async-signal-safe: unlinks every temporary output file in flight (for a
 * SIGINT/SIGTERM/SIGHUP handler, which then re-raises the signal). */
void io_remove_temp_files(void);
/* Refuses an output that is the input file itself (same device and inode:
 * another name, a hard link or a symlink; input "-" checks standard input). */
emb_status io_check_not_input(const char *input, const char *output, emb_error *err);

typedef struct io_writer io_writer;

/* An io_out; path "-" writes standard output (JSONL only). */
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
