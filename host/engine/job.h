/*
 * Durable bulk jobs (`embedc encode ... --job DIR`): the job directory holds
 * a manifest (what makes the vectors: the input's identity, the model's, and
 * every option that changes them), the vectors in chunks, and one journal per
 * rank. A chunk is written to a temporary name, fsynced, renamed into place
 * and the directory fsynced before a journal line records it, so a process
 * killed at any instant leaves a journal that names only whole, durable
 * chunks. Running the same command again continues after the last journaled
 * chunk; the final output is assembled from the chunks in input order, and is
 * byte-identical to an uninterrupted run. See docs/architecture.md.
 */
#ifndef EMBEDC_HOST_JOB_H
#define EMBEDC_HOST_JOB_H

#include <stdint.h>
#include "embedc.h"
#include "engine.h"

typedef struct eng_jobdir eng_jobdir;

typedef struct {
    const char *dir;
    /* A flat JSON object of strings: every key that, changed, changes the
     * vectors or their order. An existing job must match it key by key. */
    const char *manifest;
    int rank, nranks;
    uint64_t share_first;       /* this rank's documents: [share_first, share_first + share_count) */
    uint64_t share_count;       /* UINT64_MAX: to the end of the input */
    int dim;
} eng_jobdir_options;

/* Opens (or creates) the job directory. *done: documents of this rank's share
 * already durably written, counted from share_first; *ended: the rank's share
 * was finished by an earlier run. Rank 0 must have opened the directory
 * before other ranks do (it writes the manifest). */
emb_status eng_jobdir_open(const eng_jobdir_options *o, eng_jobdir **out, uint64_t *done,
                           int *ended, emb_error *err);

/* eng_write_fn: `first` counts from the first document of this run (the
 * engine's numbering); each call becomes one durable chunk. */
emb_status eng_jobdir_write(void *jobdir, uint64_t first, size_t n, const float *vecs, int dim,
                            emb_error *err);

/* Records that this rank's share ends at document `end` (global index). */
emb_status eng_jobdir_end(eng_jobdir *j, uint64_t end, emb_error *err);

/* Streams every rank's chunks, in input order, to `write`; checks that they
 * cover [0, total) without a gap or overlap and that each chunk's checksum
 * matches its journal line. *total is set to the number of documents. */
emb_status eng_jobdir_assemble(eng_jobdir *j, eng_write_fn write, void *write_ud,
                               uint64_t *total, emb_error *err);

void eng_jobdir_close(eng_jobdir *j);

/* Test hook: EMBEDC_JOB_CRASH=POINT:K kills the process with SIGKILL at the
 * K-th time it reaches POINT (chunk-written, chunk-synced, chunk-renamed,
 * journaled, assembling), so tests can stop a job between any two steps. */
void eng_job_crash_point(const char *point);

#endif
