/*
 * MPI ranks for jobs that outgrow one machine: `mpirun -np N embedc encode
 * ... --job DIR` (or srun). Each rank embeds a contiguous share of the
 * documents on its own node and writes its chunks into the shared job
 * directory; rank 0 assembles the output. MPI is initialised only when a
 * launcher started the process (its environment says so), so a plain
 * `embedc` never touches MPI. Built only into the CLI, and only when CMake
 * finds MPI; elsewhere every call is the one-rank answer.
 */
#ifndef EMBEDC_HOST_RANKS_H
#define EMBEDC_HOST_RANKS_H

#include <stdint.h>

/* Starts MPI if a launcher started us; *rank / *size are 0 / 1 otherwise.
 * Returns -1 (message on stderr) if the launcher asked for MPI and this
 * build has none, or MPI failed to start. */
int eng_ranks_init(int *argc, char ***argv, int *rank, int *size);
void eng_ranks_finalize(void);
/* Collective: every rank passes its value; all get rank 0's. */
uint64_t eng_ranks_bcast_u64(uint64_t v);
/* Collective: the largest of the ranks' values (all ranks get it). */
int eng_ranks_max_int(int v);
/* Ends every rank of the job (a rank that cannot go on). */
void eng_ranks_abort(int code);

#endif
