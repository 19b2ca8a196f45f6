/* embsim.h: the C control surface of the CUDA simulator, for tests.
 *
 * Host code under test talks to the simulator only through the real CUDA,
 * cuBLAS and NCCL headers; tests use these few extra calls to choose the
 * scheduling order, to collect the simulator's reports instead of aborting,
 * and to change the poison patterns. Everything here can also be set with
 * environment variables, so a test binary can be rerun unchanged:
 *   EMBSIM_ORDER    forward | reverse | shuffle[:SEED]   (default forward)
 *   EMBSIM_DEVICES  number of virtual devices            (default 1)
 *   EMBSIM_POISON   byte written into fresh device and shared memory (0xff)
 *   EMBSIM_FIBER    asm | ucontext                       (default asm on x86-64)
 *   EMBSIM_DEVICE_MEMORY  bytes of memory per device, K/M/G suffixes (80G)
 *   EMBSIM_OOM_AFTER      N[:COUNT]: out-of-memory injection, see embsim_inject_oom
 */
#ifndef EMBSIM_H
#define EMBSIM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum embsim_order {
    EMBSIM_FORWARD = 0, /* threads and blocks in index order */
    EMBSIM_REVERSE = 1, /* highest index first */
    EMBSIM_SHUFFLE = 2, /* a permutation drawn from the seed */
} embsim_order;

/* Order in which the threads of a block (between two rendezvous) and the
 * blocks of a grid are run. Results of a race-free kernel do not depend on it. */
void embsim_set_order(embsim_order order, uint64_t seed);
embsim_order embsim_get_order(void);
const char *embsim_order_name(void);

/* By default a report is printed and the process aborts, so that any bug in a
 * kernel under test fails the test. In record mode reports are counted and
 * kept (the launch that caused a fatal one is abandoned and its stream call
 * returns cudaErrorLaunchFailure). */
void embsim_set_record_errors(int record);
int embsim_error_count(void);
/* The first recorded report since the last clear, or "" if none. */
const char *embsim_first_error(void);
/* Number of recorded reports whose text contains `needle`. */
int embsim_errors_matching(const char *needle);
void embsim_clear_errors(void);

/* Byte used to poison fresh cudaMalloc memory and each block's shared arena.
 * A kernel whose output changes with the poison reads memory it never wrote. */
void embsim_set_poison(uint8_t byte);
uint8_t embsim_get_poison(void);

/* Memory of each virtual device (0: the default 80 GiB). cudaMalloc past it
 * fails with cudaErrorMemoryAllocation (not sticky, as on a GPU);
 * cudaMemGetInfo and cudaGetDeviceProperties report it. Pinned host memory
 * does not count. */
void embsim_set_device_memory(size_t bytes);
size_t embsim_get_device_memory(void);
/* Bytes of cudaMalloc memory `device` holds now (rounded to 256 per buffer). */
size_t embsim_device_memory_used(int device);

/* Out-of-memory injection, as a GPU shared with other processes gives it:
 * counting from this call, the operations that may allocate device memory
 * (cudaMalloc, kernel launches, cuBLAS GEMMs) succeed `after` times, then the
 * next `count` fail (count < 0: all later ones; count 0 turns injection
 * off): cudaMalloc and launches with cudaErrorMemoryAllocation, cuBLAS with
 * CUBLAS_STATUS_ALLOC_FAILED. */
void embsim_inject_oom(long after, long count);
/* Failures injected since start. */
long embsim_oom_injected(void);

/* Calls the code under test made of the runtime functions that allocate or
 * block the host, since the last embsim_reset_api_calls (all threads and
 * devices; calls the simulator makes of its own functions, such as the
 * device synchronisation inside cudaFree, are not counted): what a check of
 * a steady state counts (no allocation, one wait per chunk). */
typedef enum embsim_api {
    EMBSIM_API_MALLOC = 0,       /* cudaMalloc */
    EMBSIM_API_FREE,             /* cudaFree */
    EMBSIM_API_HOST_ALLOC,       /* cudaMallocHost, cudaHostAlloc, cudaHostRegister */
    EMBSIM_API_HOST_FREE,        /* cudaFreeHost, cudaHostUnregister */
    EMBSIM_API_DEVICE_SYNC,      /* cudaDeviceSynchronize, cudaDeviceReset */
    EMBSIM_API_STREAM_SYNC,      /* cudaStreamSynchronize (not cudaStreamQuery) */
    EMBSIM_API_EVENT_SYNC,       /* cudaEventSynchronize (not cudaEventQuery) */
    EMBSIM_API_SYNC_COPY,        /* cudaMemcpy, cudaMemset (the synchronous forms) */
    EMBSIM_API_GRAPH_INSTANTIATE,/* cudaGraphInstantiate[WithFlags] */
    EMBSIM_API_COUNT
} embsim_api;
uint64_t embsim_api_calls(embsim_api which);
void embsim_reset_api_calls(void);

/* Number of blocks run and fiber switches made since start (for tests of the
 * simulator itself). */
uint64_t embsim_blocks_run(void);
uint64_t embsim_fiber_switches(void);

#ifdef __cplusplus
}
#endif

#endif /* EMBSIM_H */
