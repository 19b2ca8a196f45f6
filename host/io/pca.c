/*
 * Two-component PCA (pca.h). The covariance matrix is accumulated in double
 * precision in blocks of rows (so memory stays d*d + d*block whatever n is);
 * its leading eigenvectors come from subspace iteration on a block of p
 * vectors with a Rayleigh-Ritz step (Jacobi on the small p x p matrix),
 * iterated until the two leading Ritz vectors stop moving.
 */
#include "pca.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

/* Eigen-decomposition of a symmetric p x p matrix a (destroyed) by cyclic
 * Jacobi: eigenvalues in w, eigenvectors in the columns of v. */
static void jacobi(double *a, int p, double *w, double *v) {
    for (int i = 0; i < p; i++)
        for (int j = 0; j < p; j++) v[i * p + j] = i == j;
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0, diag = 0;
        for (int i = 0; i < p; i++) {
            diag += a[i * p + i] * a[i * p + i];
            for (int j = i + 1; j < p; j++) off += a[i * p + j] * a[i * p + j];
        }
        if (off <= 1e-30 * diag || off == 0) break;
        for (int i = 0; i < p; i++)
            for (int j = i + 1; j < p; j++) {
                double aij = a[i * p + j];
                if (aij == 0) continue;
                double theta = (a[j * p + j] - a[i * p + i]) / (2 * aij);
                double t = (theta >= 0 ? 1 : -1) / (fabs(theta) + sqrt(theta * theta + 1));
                double c = 1 / sqrt(t * t + 1), s = t * c;
                for (int k = 0; k < p; k++) {   /* A <- A J (columns i, j) */
                    double aki = a[k * p + i], akj = a[k * p + j];
                    a[k * p + i] = c * aki - s * akj;
                    a[k * p + j] = s * aki + c * akj;
                }
                for (int k = 0; k < p; k++) {   /* A <- J^T A (rows i, j) */
                    double aik = a[i * p + k], ajk = a[j * p + k];
                    a[i * p + k] = c * aik - s * ajk;
                    a[j * p + k] = s * aik + c * ajk;
                }
                for (int k = 0; k < p; k++) {
                    double vki = v[k * p + i], vkj = v[k * p + j];
                    v[k * p + i] = c * vki - s * vkj;
                    v[k * p + j] = s * vki + c * vkj;
                }
            }
    }
    for (int i = 0; i < p; i++) w[i] = a[i * p + i];
}

/* Orthonormalizes the p columns of q (d x p, row-major) by modified
 * Gram-Schmidt, twice for stability; a column that vanishes is replaced by a
 * unit vector. */
static void orthonormalize(double *q, int d, int p) {
    for (int pass = 0; pass < 2; pass++)
        for (int j = 0; j < p; j++) {
            for (int i = 0; i < j; i++) {
                double dot = 0;
                for (int k = 0; k < d; k++) dot += q[k * p + i] * q[k * p + j];
                for (int k = 0; k < d; k++) q[k * p + j] -= dot * q[k * p + i];
            }
            double nn = 0;
            for (int k = 0; k < d; k++) nn += q[k * p + j] * q[k * p + j];
            nn = sqrt(nn);
            if (nn < 1e-300) {
                for (int k = 0; k < d; k++) q[k * p + j] = k == j % d;
                continue;
            }
            for (int k = 0; k < d; k++) q[k * p + j] /= nn;
        }
}

emb_status io_pca2(const float *x, uint64_t n, int d, double *coords, double *comp, double *var,
                   double *ratio, emb_error *err) {
    if (n < 2 || d < 2)
        return emb_fail(err, EMB_ERR_INVALID_ARG, "PCA needs at least 2 vectors of at least 2 dimensions (got %llu x %d)",
                        (unsigned long long)n, d);
    size_t D = (size_t)d, B = 1024;
    int p = d < 10 ? d : 10;
    double *mean = calloc(D, sizeof *mean), *cov = calloc(D * D, sizeof *cov);
    double *blk = malloc(D * B * sizeof *blk);
    double *q = malloc(D * (size_t)p * sizeof *q), *z = malloc(D * (size_t)p * sizeof *z);
    double *t = malloc((size_t)p * p * sizeof *t), *v = malloc((size_t)p * p * sizeof *v);
    double *w = malloc((size_t)p * sizeof *w), *prev = calloc(2 * D, sizeof *prev);
    emb_status st = EMB_OK;
    if (!mean || !cov || !blk || !q || !z || !t || !v || !w || !prev) {
        st = emb_fail(err, EMB_ERR_NOMEM, "PCA: out of memory for dim %d", d);
        goto done;
    }
    for (uint64_t r = 0; r < n; r++)
        for (size_t k = 0; k < D; k++) mean[k] += x[r * D + k];
    for (size_t k = 0; k < D; k++) mean[k] /= (double)n;
    /* cov = sum over blocks of Xc^T Xc (upper triangle), blk holds the block transposed */
    for (uint64_t r0 = 0; r0 < n; r0 += B) {
        size_t m = n - r0 < B ? (size_t)(n - r0) : B;
        for (size_t r = 0; r < m; r++)
            for (size_t k = 0; k < D; k++) blk[k * m + r] = x[(r0 + r) * D + k] - mean[k];
#pragma omp parallel for schedule(dynamic, 8)
        for (int i = 0; i < d; i++) {
            const double *bi = blk + (size_t)i * m;
            for (int j = i; j < d; j++) {
                const double *bj = blk + (size_t)j * m;
                double s = 0;
                for (size_t r = 0; r < m; r++) s += bi[r] * bj[r];
                cov[(size_t)i * D + j] += s;
            }
        }
    }
    double trace = 0;
    for (size_t i = 0; i < D; i++) {
        for (size_t j = i; j < D; j++) {
            cov[i * D + j] /= (double)(n - 1);
            cov[j * D + i] = cov[i * D + j];
        }
        trace += cov[i * D + i];
    }
    /* subspace iteration from a fixed pseudo-random start */
    uint64_t s = 0x2545F4914F6CDD1Dull;
    for (size_t k = 0; k < D * (size_t)p; k++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        q[k] = (double)(s >> 11) / 9007199254740992.0 - 0.5;
    }
    orthonormalize(q, d, p);
    for (int it = 0; it < 3000; it++) {
        /* z = C q */
#pragma omp parallel for
        for (int i = 0; i < d; i++)
            for (int j = 0; j < p; j++) {
                double acc = 0;
                for (int k = 0; k < d; k++) acc += cov[(size_t)i * D + k] * q[(size_t)k * p + j];
                z[(size_t)i * p + j] = acc;
            }
        /* Rayleigh-Ritz: t = q^T C q, rotate q by t's eigenvectors */
        for (int a = 0; a < p; a++)
            for (int b = 0; b < p; b++) {
                double acc = 0;
                for (size_t k = 0; k < D; k++) acc += q[k * p + a] * z[k * p + b];
                t[a * p + b] = acc;
            }
        for (int a = 0; a < p; a++)
            for (int b = a + 1; b < p; b++) t[a * p + b] = t[b * p + a] = 0.5 * (t[a * p + b] + t[b * p + a]);
        jacobi(t, p, w, v);
        int order[16];
        for (int a = 0; a < p; a++) order[a] = a;
        for (int a = 0; a < p; a++)
            for (int b = a + 1; b < p; b++)
                if (w[order[b]] > w[order[a]]) { int tmp = order[a]; order[a] = order[b]; order[b] = tmp; }
        /* Ritz vectors q v (current estimate) and next block z v */
        double moved = 0;
        for (size_t k = 0; k < D; k++) {
            double qr[16], zr[16];
            for (int a = 0; a < p; a++) {
                double aq = 0, az = 0;
                for (int b = 0; b < p; b++) {
                    aq += q[k * p + b] * v[b * p + order[a]];
                    az += z[k * p + b] * v[b * p + order[a]];
                }
                qr[a] = aq;
                zr[a] = az;
            }
            for (int a = 0; a < p; a++) q[k * p + a] = zr[a];
            for (int a = 0; a < 2; a++) {
                double dlt = fabs(qr[a]) - fabs(prev[a * D + k]);
                moved += dlt * dlt;
                prev[a * D + k] = qr[a];
            }
        }
        orthonormalize(q, d, p);
        w[0] = w[order[0]];
        w[1] = w[order[1]];
        if (it > 2 && moved < 1e-26) break;
    }
    for (int a = 0; a < 2; a++) {
        /* sign: the largest-magnitude entry positive */
        size_t arg = 0;
        for (size_t k = 1; k < D; k++)
            if (fabs(prev[a * D + k]) > fabs(prev[a * D + arg])) arg = k;
        double sg = prev[a * D + arg] < 0 ? -1 : 1;
        for (size_t k = 0; k < D; k++) prev[a * D + k] *= sg;
    }
    if (comp) memcpy(comp, prev, 2 * D * sizeof *comp);
    if (var) { var[0] = w[0]; var[1] = w[1]; }
    if (ratio) { ratio[0] = trace > 0 ? w[0] / trace : 0; ratio[1] = trace > 0 ? w[1] / trace : 0; }
    if (coords)
        for (uint64_t r = 0; r < n; r++) {
            double a0 = 0, a1 = 0;
            for (size_t k = 0; k < D; k++) {
                double c = x[r * D + k] - mean[k];
                a0 += c * prev[k];
                a1 += c * prev[D + k];
            }
            coords[2 * r] = a0;
            coords[2 * r + 1] = a1;
        }
done:
    free(mean); free(cov); free(blk); free(q); free(z); free(t); free(v); free(w); free(prev);
    return st;
}
