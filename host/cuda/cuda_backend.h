/*
 * CUDA backend extras beyond the backend table (host/backend.h): a cheap
 * "is there a GPU we can run on" probe for --device auto and tools, and the
 * static-model (gather-and-pool) backend.
 */
#ifndef EMBEDC_HOST_CUDA_BACKEND_H
#define EMBEDC_HOST_CUDA_BACKEND_H

#include <stddef.h>
#include "embedc.h"

struct emb_backend;
struct emb_static_vectors;
/* The static-model backend (host/cuda/static_cuda.c): sv must outlive it. */
emb_status emb_cuda_static_backend_create(const struct emb_static_vectors *sv, int device,
                                          struct emb_backend **out, emb_error *err);

/* EMB_OK when `device` exists and is sm_80 or newer; otherwise fills why. */
emb_status emb_cuda_device_usable(int device, char *why, size_t why_len);

/* The device workers of one model over devices ids[0..n): one per device,
 * or with tp > 1 one per tensor-parallel group of tp devices (host/cuda/tp.c);
 * with several workers the weights are converted once and reach the others
 * by NCCL broadcast. */
struct emb_model_files;
emb_status emb_cuda_workers_create(const struct emb_model_files *mf, emb_dtype dtype, const int *ids, int n,
                                   int tp, size_t tokens, struct emb_backend **workers, int *nworkers,
                                   emb_error *err);

/* *yes = 1 when the current device runs this build's sm_90a code (the wgmma
 * attention, EMBEDC_ATTENTION=wgmma), else 0. One tiny launch. */
emb_status emb_cuda_wgmma_available(int *yes, emb_error *err);

/* Visible CUDA devices (0 without a driver or GPU). */
int emb_cuda_device_count(void);

#endif
