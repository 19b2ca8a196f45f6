#include "arch.h"
#include "error.h"
#define PENDING(fn, name) \
    emb_status fn(const cJSON *j, emb_weights *w, emb_recipe *r, emb_error *err) { \
        (void)j, (void)w, (void)r; \
        return emb_fail(err, EMB_ERR_UNSUPPORTED, "config.json: model_type \"%s\" is not supported yet", name); \
    }
PENDING(emb_arch_distilbert, "distilbert")
PENDING(emb_arch_mpnet, "mpnet")
PENDING(emb_arch_modernbert, "modernbert")
PENDING(emb_arch_t5, "t5")
