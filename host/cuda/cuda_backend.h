/*
 * CUDA backend extras beyond the backend table (host/backend.h): a cheap
 * "is there a GPU we can run on" probe for --device auto and tools.
 */
#ifndef EMBEDC_HOST_CUDA_BACKEND_H
#define EMBEDC_HOST_CUDA_BACKEND_H

#include <stddef.h>
#include "embedc.h"

/* EMB_OK when `device` exists and is sm_80 or newer; otherwise fills why. */
emb_status emb_cuda_device_usable(int device, char *why, size_t why_len);

/* Visible CUDA devices (0 without a driver or GPU). */
int emb_cuda_device_count(void);

#endif
