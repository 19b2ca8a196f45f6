/*
 * MPI ranks (ranks.h): thin wrappers so the CLI reads the same with and
 * without MPI, and the rule of when MPI starts lives in one place.
 */
#include "ranks.h"

#include <stdio.h>
#include <stdlib.h>

#ifdef EMBEDC_HAVE_MPI
#include <mpi.h>
#endif

#ifdef EMBEDC_HAVE_MPI
static int mpi_on;
#endif

/* Open MPI's mpirun, PMI/PMIx launchers (srun, hydra) set these. */
static int launched_by_mpi(void) {
    static const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i])) return 1;
    return 0;
}

int eng_ranks_init(int *argc, char ***argv, int *rank, int *size) {
    *rank = 0;
    *size = 1;
    if (!launched_by_mpi()) return 0;
#ifdef EMBEDC_HAVE_MPI
    if (MPI_Init(argc, argv) != MPI_SUCCESS) {
        fprintf(stderr, "embedc: error: MPI_Init failed\n");
        return -1;
    }
    mpi_on = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, rank);
    MPI_Comm_size(MPI_COMM_WORLD, size);
    return 0;
#else
    (void)argc;
    (void)argv;
    fprintf(stderr, "embedc: error: started by an MPI launcher, but this embedc was built without MPI "
                    "(install libopenmpi-dev and rebuild)\n");
    return -1;
#endif
}

void eng_ranks_finalize(void) {
#ifdef EMBEDC_HAVE_MPI
    if (mpi_on) MPI_Finalize();
    mpi_on = 0;
#endif
}

uint64_t eng_ranks_bcast_u64(uint64_t v) {
#ifdef EMBEDC_HAVE_MPI
    if (mpi_on) {
        unsigned long long x = v;
        MPI_Bcast(&x, 1, MPI_UNSIGNED_LONG_LONG, 0, MPI_COMM_WORLD);
        return x;
    }
#endif
    return v;
}

int eng_ranks_max_int(int v) {
#ifdef EMBEDC_HAVE_MPI
    if (mpi_on) {
        int r = v;
        MPI_Allreduce(&v, &r, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
        return r;
    }
#endif
    return v;
}

void eng_ranks_abort(int code) {
#ifdef EMBEDC_HAVE_MPI
    if (mpi_on) MPI_Abort(MPI_COMM_WORLD, code);
#endif
    (void)code;
}
