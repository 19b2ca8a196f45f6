// The C interface of host/io/faiss_shim.h over FAISS's C++ API. Debian's
// libfaiss-dev has the C API's headers but not its library (libfaiss_c), so
// this file is the one piece of C++ in host/ (docs/architecture.md). It
// catches every exception at the boundary and turns it into an emb_error.
#include "faiss_shim.h"

#include <faiss/AutoTune.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIDMap.h>
#include <faiss/IndexIVF.h>
#include <faiss/IndexIVFPQ.h>
#include <faiss/IndexPQ.h>
#include <faiss/IndexPreTransform.h>
#include <faiss/IndexRefine.h>
#include <faiss/VectorTransform.h>
#include <faiss/index_factory.h>
#include <faiss/index_io.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

extern "C" {
#include "error.h"
}

// faiss::idx_t in newer FAISS, faiss::Index::idx_t in 1.7; ntotal has it in both.
using fidx = decltype(faiss::Index::ntotal);

struct fx_index {
    faiss::Index *ix;
};

#define FX_STR2(x) #x
#define FX_STR(x) FX_STR2(x)

// FAISS's messages start with "Error in <function> at <file>:<line>: ";
// the part after that is what a user can act on.
static std::string short_what(const std::exception &e) {
    std::string s = e.what();
    size_t at = s.rfind(" at ");
    if (s.rfind("Error in ", 0) == 0 && at != std::string::npos) {
        size_t q = s.find(": ", at);   // " at file:line: msg"
        if (q != std::string::npos) s = s.substr(q + 2);
    }
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
}

#define FX_TRY(what) try {
#define FX_CATCH(what)                                                                   \
    }                                                                                    \
    catch (const std::bad_alloc &) {                                                     \
        return emb_fail(err, EMB_ERR_NOMEM, "FAISS: out of memory (%s)", what);          \
    }                                                                                    \
    catch (const std::exception &e) {                                                    \
        return emb_fail(err, EMB_ERR_FORMAT, "FAISS: %s: %s", what, short_what(e).c_str()); \
    }

extern "C" int fx_available(void) { return 1; }

extern "C" const char *fx_version(void) {
#ifdef FAISS_VERSION_MAJOR
    return FX_STR(FAISS_VERSION_MAJOR) "." FX_STR(FAISS_VERSION_MINOR) "." FX_STR(FAISS_VERSION_PATCH);
#else
    return "unknown";
#endif
}

// The innermost index that stores the vectors, looking through
// pre-transforms, id maps and refinement.
static faiss::Index *innermost(faiss::Index *ix) {
    for (;;) {
        if (auto *p = dynamic_cast<faiss::IndexPreTransform *>(ix)) ix = p->index;
        else if (auto *m = dynamic_cast<faiss::IndexIDMap *>(ix)) ix = m->index;
        else if (auto *r = dynamic_cast<faiss::IndexRefine *>(ix)) ix = r->base_index;
        else return ix;
    }
}

extern "C" emb_status fx_create(int dim, const char *spec, fx_metric metric, int custom_ids,
                                fx_index **out, emb_error *err) {
    *out = nullptr;
    faiss::Index *ix = nullptr;
    FX_TRY("index spec")
    ix = faiss::index_factory(dim, spec,
                              metric == FX_METRIC_IP ? faiss::METRIC_INNER_PRODUCT : faiss::METRIC_L2);
    FX_CATCH((std::string("index spec \"") + spec + "\"").c_str())
    if (custom_ids && !dynamic_cast<faiss::IndexIVF *>(innermost(ix)) &&
        !dynamic_cast<faiss::IndexIDMap *>(ix)) {
        try {
            ix = new faiss::IndexIDMap2(ix);
            static_cast<faiss::IndexIDMap2 *>(ix)->own_fields = true;
        } catch (const std::exception &e) {
            delete ix;
            return emb_fail(err, EMB_ERR_NOMEM, "FAISS: %s", e.what());
        }
    }
    *out = new (std::nothrow) fx_index{ix};
    if (!*out) {
        delete ix;
        return emb_fail(err, EMB_ERR_NOMEM, "out of memory");
    }
    return EMB_OK;
}

// Largest number of k-means centroids any trained part of the index learns.
static uint64_t max_centroids(const faiss::Index *ix) {
    uint64_t c = 0;
    if (auto *p = dynamic_cast<const faiss::IndexPreTransform *>(ix)) {
        for (auto *vt : p->chain) {
            if (dynamic_cast<const faiss::OPQMatrix *>(vt)) c = std::max<uint64_t>(c, 256);
            else if (!vt->is_trained) c = std::max<uint64_t>(c, (uint64_t)vt->d_in);
        }
        return std::max(c, max_centroids(p->index));
    }
    if (auto *m = dynamic_cast<const faiss::IndexIDMap *>(ix)) return max_centroids(m->index);
    if (auto *r = dynamic_cast<const faiss::IndexRefine *>(ix))
        return std::max(max_centroids(r->base_index), max_centroids(r->refine_index));
    if (auto *h = dynamic_cast<const faiss::IndexHNSW *>(ix)) return max_centroids(h->storage);
    if (auto *v = dynamic_cast<const faiss::IndexIVF *>(ix)) {
        c = v->nlist;
        if (auto *pq = dynamic_cast<const faiss::IndexIVFPQ *>(ix)) c = std::max<uint64_t>(c, pq->pq.ksub);
        return c;
    }
    if (auto *q = dynamic_cast<const faiss::IndexPQ *>(ix)) return q->pq.ksub;
    return ix->is_trained ? 0 : 1;
}

extern "C" void fx_train_size(const fx_index *ix, uint64_t *target, uint64_t *minimum) {
    if (ix->ix->is_trained) {
        *target = *minimum = 0;
        return;
    }
    uint64_t c = max_centroids(ix->ix);
    if (c < 1) c = 1;
    // FAISS's k-means warns below 39 points per centroid and subsamples
    // above 256; 39 per centroid (at least 1000) is the default sample.
    *minimum = c;
    *target = std::max<uint64_t>(39 * c, 1000);
}

extern "C" int fx_is_trained(const fx_index *ix) { return ix->ix->is_trained; }

extern "C" emb_status fx_train(fx_index *ix, uint64_t n, const float *x, emb_error *err) {
    FX_TRY("training")
    ix->ix->train((fidx)n, x);
    FX_CATCH("training")
    return EMB_OK;
}

extern "C" emb_status fx_add(fx_index *ix, uint64_t n, const float *x, const int64_t *ids,
                             emb_error *err) {
    FX_TRY("adding vectors")
    if (ids) ix->ix->add_with_ids((fidx)n, x, reinterpret_cast<const fidx *>(ids));
    else ix->ix->add((fidx)n, x);
    FX_CATCH("adding vectors")
    return EMB_OK;
}

extern "C" emb_status fx_set_param(fx_index *ix, const char *name, double value, emb_error *err) {
    FX_TRY(name)
    faiss::ParameterSpace ps;
    ps.set_index_parameter(ix->ix, name, value);
    FX_CATCH((std::string("setting ") + name).c_str())
    return EMB_OK;
}

extern "C" emb_status fx_search(const fx_index *ix, uint64_t n, const float *x, int k, float *distances,
                                int64_t *labels, emb_error *err) {
    FX_TRY("search")
    ix->ix->search((fidx)n, x, (fidx)k, distances,
                   reinterpret_cast<fidx *>(labels));
    FX_CATCH("search")
    return EMB_OK;
}

extern "C" emb_status fx_write(const fx_index *ix, FILE *f, const char *name, emb_error *err) {
    FX_TRY(name)
    faiss::write_index(ix->ix, f);
    FX_CATCH((std::string("writing ") + name).c_str())
    return EMB_OK;
}

extern "C" emb_status fx_read(const char *path, fx_index **out, emb_error *err) {
    *out = nullptr;
    faiss::Index *ix = nullptr;
    FILE *f = fopen(path, "rb");
    if (!f) return emb_fail(err, EMB_ERR_IO, "cannot open index %s: %s", path, strerror(errno));
    try {
        ix = faiss::read_index(f);
    } catch (const std::bad_alloc &) {
        fclose(f);
        return emb_fail(err, EMB_ERR_NOMEM, "FAISS: out of memory reading %s", path);
    } catch (const std::exception &e) {
        fclose(f);
        return emb_fail(err, EMB_ERR_FORMAT, "%s is not a FAISS index this build can read: %s", path,
                        short_what(e).c_str());
    }
    fclose(f);
    *out = new (std::nothrow) fx_index{ix};
    if (!*out) {
        delete ix;
        return emb_fail(err, EMB_ERR_NOMEM, "out of memory");
    }
    return EMB_OK;
}

extern "C" int fx_dim(const fx_index *ix) { return ix->ix->d; }
extern "C" uint64_t fx_ntotal(const fx_index *ix) { return (uint64_t)ix->ix->ntotal; }
extern "C" fx_metric fx_get_metric(const fx_index *ix) {
    return ix->ix->metric_type == faiss::METRIC_INNER_PRODUCT ? FX_METRIC_IP : FX_METRIC_L2;
}

extern "C" void fx_free(fx_index *ix) {
    if (!ix) return;
    delete ix->ix;
    delete ix;
}
