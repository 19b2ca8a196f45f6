/* Minimal .npy reader for the tests (float32/float16 2-D, C order). */
#ifndef EMBEDC_TEST_NPY_H
#define EMBEDC_TEST_NPY_H
#include <stddef.h>
/* Returns malloc'ed float32 data (converted from f16 if needed), rows/cols
 * filled; NULL if the file is missing or not a 2-D little-endian float npy. */
float *npy_load(const char *path, size_t *rows, size_t *cols);
#endif
