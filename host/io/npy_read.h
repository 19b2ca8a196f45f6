/* Reading a whole .npy matrix of vectors (see npy_read.c). */
#ifndef EMBEDC_HOST_NPY_READ_H
#define EMBEDC_HOST_NPY_READ_H
#include <stdint.h>
#include "embedc.h"

/* float16/32/64, 2-D, C order -> malloc'ed float32 rows x cols. */
emb_status io_npy_read(const char *path, float **data, uint64_t *rows, int *cols, emb_error *err);

#endif
