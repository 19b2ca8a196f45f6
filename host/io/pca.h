/* Principal components of a set of vectors, for pictures (host/io/pca.c). */
#ifndef EMBEDC_HOST_PCA_H
#define EMBEDC_HOST_PCA_H
#include <stdint.h>
#include "embedc.h"

/* The two leading principal components of n vectors of dim d (row-major
 * float32): the data centred on its mean, the eigenvectors of its covariance
 * with the two largest eigenvalues, each signed so that its largest-magnitude
 * entry is positive (scikit-learn's convention). coords (2n, optional): each
 * vector projected, x then y. comp (2d, optional), var (2, optional): the
 * explained variance (covariance eigenvalues, n-1 denominator) and ratio (2,
 * optional) its share of the total. */
emb_status io_pca2(const float *x, uint64_t n, int d, double *coords, double *comp, double *var,
                   double *ratio, emb_error *err);

#endif
