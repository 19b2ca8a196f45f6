/*
 * The index builder of index.h, and the FAISS stubs of faiss_shim.h for a
 * build without FAISS.
 */
#include "index.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"

#ifndef EMBEDC_HAVE_FAISS
/* ---- without FAISS: every entry point says so ------------------------- */
#define FX_NONE "this embedc was built without FAISS (install libfaiss-dev, e.g. tools/install-deps, and rebuild)"
int fx_available(void) { return 0; }
const char *fx_version(void) { return "none"; }
emb_status fx_create(int dim, const char *spec, fx_metric metric, int custom_ids, fx_index **out,
                     emb_error *err) {
    (void)dim; (void)spec; (void)metric; (void)custom_ids;
    *out = NULL;
    return emb_fail(err, EMB_ERR_UNSUPPORTED, FX_NONE);
}
void fx_train_size(const fx_index *ix, uint64_t *target, uint64_t *minimum) { (void)ix; *target = *minimum = 0; }
int fx_is_trained(const fx_index *ix) { (void)ix; return 0; }
emb_status fx_train(fx_index *ix, uint64_t n, const float *x, emb_error *err) {
    (void)ix; (void)n; (void)x;
    return emb_fail(err, EMB_ERR_UNSUPPORTED, FX_NONE);
}
emb_status fx_add(fx_index *ix, uint64_t n, const float *x, const int64_t *ids, emb_error *err) {
    (void)ix; (void)n; (void)x; (void)ids;
    return emb_fail(err, EMB_ERR_UNSUPPORTED, FX_NONE);
}
emb_status fx_set_param(fx_index *ix, const char *name, double value, emb_error *err) {
    (void)ix; (void)name; (void)value;
    return emb_fail(err, EMB_ERR_UNSUPPORTED, FX_NONE);
}
emb_status fx_search(const fx_index *ix, uint64_t n, const float *x, int k, float *distances,
                     int64_t *labels, emb_error *err) {
    (void)ix; (void)n; (void)x; (void)k; (void)distances; (void)labels;
    return emb_fail(err, EMB_ERR_UNSUPPORTED, FX_NONE);
}
emb_status fx_write(const fx_index *ix, FILE *f, const char *name, emb_error *err) {
    (void)ix; (void)f; (void)name;
    return emb_fail(err, EMB_ERR_UNSUPPORTED, FX_NONE);
}
emb_status fx_read(const char *path, fx_index **out, emb_error *err) {
    (void)path;
    *out = NULL;
    return emb_fail(err, EMB_ERR_UNSUPPORTED, FX_NONE);
}
int fx_dim(const fx_index *ix) { (void)ix; return 0; }
uint64_t fx_ntotal(const fx_index *ix) { (void)ix; return 0; }
fx_metric fx_get_metric(const fx_index *ix) { (void)ix; return FX_METRIC_L2; }
void fx_free(fx_index *ix) { (void)ix; }
#endif

/* ---- atomic write ------------------------------------------------------ */

emb_status ix_write_atomic(const fx_index *ix, const char *path, emb_error *err) {
    size_t n = strlen(path) + 32;
    char *tmp = malloc(n);
    if (!tmp) return emb_fail(err, EMB_ERR_NOMEM, "out of memory");
    snprintf(tmp, n, "%s.partial-%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        emb_status st = emb_fail(err, EMB_ERR_IO, "cannot create index %s: %s", path, strerror(errno));
        free(tmp);
        return st;
    }
    emb_status st = fx_write(ix, f, path, err);
    if (st == EMB_OK && (fflush(f) != 0 || fsync(fileno(f)) != 0))
        st = emb_fail(err, EMB_ERR_IO, "writing index %s: %s", path, strerror(errno));
    if (fclose(f) != 0 && st == EMB_OK)
        st = emb_fail(err, EMB_ERR_IO, "writing index %s: %s", path, strerror(errno));
    if (st == EMB_OK && rename(tmp, path) != 0)
        st = emb_fail(err, EMB_ERR_IO, "cannot move %s into place as %s: %s", tmp, path, strerror(errno));
    if (st != EMB_OK) unlink(tmp);
    free(tmp);
    return st;
}

/* ---- the builder -------------------------------------------------------- */

struct ix_builder {
    ix_build_options o;
    char *path, *spool_path;
    int dim;
    fx_index *ix;
    int trained;               /* vectors go straight into the index */
    uint64_t target, minimum;
    float *sample;             /* reservoir: min(seen, target) rows */
    uint64_t seen;
    uint64_t rng;
    FILE *spool;               /* records: [int64 id if custom_ids] dim floats */
};

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

emb_status ix_builder_open(const char *path, int dim, const ix_build_options *o, ix_builder **out,
                           emb_error *err) {
    *out = NULL;
    ix_builder *b = calloc(1, sizeof *b);
    if (!b) return emb_fail(err, EMB_ERR_NOMEM, "out of memory");
    b->o = *o;
    b->dim = dim;
    b->rng = o->seed;
    b->path = path ? strdup(path) : NULL;
    emb_status st = fx_create(dim, o->spec, o->metric, o->custom_ids, &b->ix, err);
    if (st != EMB_OK) goto fail;
    fx_train_size(b->ix, &b->target, &b->minimum);
    if (o->train_size) b->target = o->train_size < b->minimum ? b->minimum : o->train_size;
    b->trained = fx_is_trained(b->ix);
    if (!b->trained && o->train) {
        if (o->train_rows < b->minimum) {
            st = emb_fail(err, EMB_ERR_INVALID_ARG,
                          "too few vectors to train index \"%s\": the training matrix has %llu, it needs at least %llu",
                          o->spec, (unsigned long long)o->train_rows, (unsigned long long)b->minimum);
            goto fail;
        }
        if ((st = fx_train(b->ix, o->train_rows, o->train, err)) != EMB_OK) goto fail;
        b->trained = 1;
    }
    if (!b->trained) {
        b->sample = malloc((size_t)b->target * (size_t)dim * sizeof *b->sample);
        if (!b->sample) {
            st = emb_fail(err, EMB_ERR_NOMEM, "out of memory for a training sample of %llu x %d",
                          (unsigned long long)b->target, dim);
            goto fail;
        }
        if (!o->no_spool) {
            if (!path) { st = emb_fail(err, EMB_ERR_INTERNAL, "index builder: a spool needs a path"); goto fail; }
            size_t n = strlen(path) + 32;
            b->spool_path = malloc(n);
            if (!b->spool_path) { st = emb_fail(err, EMB_ERR_NOMEM, "out of memory"); goto fail; }
            snprintf(b->spool_path, n, "%s.spool-%ld", path, (long)getpid());
            b->spool = fopen(b->spool_path, "w+b");
            if (!b->spool) {
                st = emb_fail(err, EMB_ERR_IO, "cannot create %s: %s", b->spool_path, strerror(errno));
                free(b->spool_path);
                b->spool_path = NULL;
                goto fail;
            }
        }
    }
    *out = b;
    return EMB_OK;
fail:
    ix_builder_close(b);
    return st;
}

emb_status ix_builder_add(ix_builder *b, uint64_t first, uint64_t n, const float *vecs,
                          const int64_t *ids, emb_error *err) {
    size_t d = (size_t)b->dim;
    if (b->trained) {
        if (b->o.custom_ids && ids) return fx_add(b->ix, n, vecs, ids, err);
        if (b->o.custom_ids) {
            /* document indexes as ids */
            int64_t *tmp = malloc((n ? n : 1) * sizeof *tmp);
            if (!tmp) return emb_fail(err, EMB_ERR_NOMEM, "out of memory");
            for (uint64_t i = 0; i < n; i++) tmp[i] = (int64_t)(first + i);
            emb_status st = fx_add(b->ix, n, vecs, tmp, err);
            free(tmp);
            return st;
        }
        return fx_add(b->ix, n, vecs, NULL, err);
    }
    for (uint64_t i = 0; i < n; i++) {
        const float *v = vecs + i * d;
        uint64_t t = b->seen++, slot = t;
        if (t >= b->target) slot = splitmix64(&b->rng) % (t + 1);
        if (slot < b->target) memcpy(b->sample + slot * d, v, d * sizeof *v);
        if (b->spool) {
            int64_t id = ids ? ids[i] : (int64_t)(first + i);
            if ((b->o.custom_ids && fwrite(&id, sizeof id, 1, b->spool) != 1) ||
                fwrite(v, sizeof *v, d, b->spool) != d)
                return emb_fail(err, EMB_ERR_IO, "writing %s: %s", b->spool_path, strerror(errno ? errno : EIO));
        }
    }
    return EMB_OK;
}

static emb_status add_from_spool(ix_builder *b, emb_error *err) {
    size_t d = (size_t)b->dim, chunk = 4096;
    size_t rec = d * sizeof(float) + (b->o.custom_ids ? sizeof(int64_t) : 0);
    if (fflush(b->spool) != 0 || fseek(b->spool, 0, SEEK_SET) != 0)
        return emb_fail(err, EMB_ERR_IO, "reading back %s: %s", b->spool_path, strerror(errno));
    char *buf = malloc(chunk * rec);
    float *x = malloc(chunk * d * sizeof *x);
    int64_t *ids = malloc(chunk * sizeof *ids);
    emb_status st = EMB_OK;
    if (!buf || !x || !ids) st = emb_fail(err, EMB_ERR_NOMEM, "out of memory");
    for (uint64_t done = 0; st == EMB_OK && done < b->seen;) {
        size_t m = b->seen - done < chunk ? (size_t)(b->seen - done) : chunk;
        if (fread(buf, rec, m, b->spool) != m) {
            st = emb_fail(err, EMB_ERR_IO, "reading back %s: short read", b->spool_path);
            break;
        }
        for (size_t i = 0; i < m; i++) {
            const char *r = buf + i * rec;
            if (b->o.custom_ids) {
                memcpy(&ids[i], r, sizeof *ids);
                r += sizeof *ids;
            }
            memcpy(x + i * d, r, d * sizeof *x);
        }
        st = fx_add(b->ix, m, x, b->o.custom_ids ? ids : NULL, err);
        done += m;
    }
    free(buf);
    free(x);
    free(ids);
    return st;
}

emb_status ix_builder_finish(ix_builder *b, const float *all, const int64_t *all_ids, emb_error *err) {
    emb_status st;
    if (!b->trained) {
        uint64_t have = b->seen < b->target ? b->seen : b->target;
        if (have < b->minimum)
            return emb_fail(err, EMB_ERR_INVALID_ARG,
                            "too few vectors to train index \"%s\": got %llu, it needs at least %llu "
                            "(or give a training matrix with --index-train)",
                            b->o.spec, (unsigned long long)have, (unsigned long long)b->minimum);
        if (b->o.verbose)
            fprintf(stderr, "embedc: training index \"%s\" on %llu of %llu vectors%s\n", b->o.spec,
                    (unsigned long long)have, (unsigned long long)b->seen,
                    have < b->target ? " (fewer than the spec would like)" : "");
        if ((st = fx_train(b->ix, have, b->sample, err)) != EMB_OK) return st;
        free(b->sample);
        b->sample = NULL;
        b->trained = 1;
        if (b->spool) st = add_from_spool(b, err);
        else if (all) {
            uint64_t chunk = 65536;
            st = EMB_OK;
            for (uint64_t i = 0; st == EMB_OK && i < b->seen; i += chunk) {
                uint64_t m = b->seen - i < chunk ? b->seen - i : chunk;
                st = ix_builder_add(b, i, m, all + i * (uint64_t)b->dim, all_ids ? all_ids + i : NULL, err);
            }
        } else
            st = emb_fail(err, EMB_ERR_INTERNAL, "index builder: no spool and no vectors to add");
        if (st != EMB_OK) return st;
    }
    if (!b->path) return EMB_OK;
    if (b->o.verbose)
        fprintf(stderr, "embedc: index \"%s\": %llu vectors of dim %d -> %s\n", b->o.spec,
                (unsigned long long)fx_ntotal(b->ix), b->dim, b->path);
    return ix_write_atomic(b->ix, b->path, err);
}

fx_index *ix_builder_index(ix_builder *b) { return b->ix; }

uint64_t ix_builder_train_rows(const ix_builder *b) {
    return b->o.train ? b->o.train_rows : b->seen < b->target ? b->seen : b->target;
}

void ix_builder_close(ix_builder *b) {
    if (!b) return;
    if (b->spool) fclose(b->spool);
    if (b->spool_path) unlink(b->spool_path);
    free(b->spool_path);
    free(b->sample);
    free(b->path);
    fx_free(b->ix);
    free(b);
}
