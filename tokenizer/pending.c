/* pending.c - components of issue #5 not implemented yet: refused at load. */
#include <cjson/cJSON.h>
#include "internal.h"

int tok_unigram_load(tok_model *m, const cJSON *j, const char *origin, tok_error *err)
{ (void)m; (void)j; tok_set_error(err, "%s: field 'model.type': Unigram is not supported yet", origin); return -1; }
int tok_unigram_encode(const tok_model *m, const char *w, size_t l, struct tok_scratch *s) { (void)m; (void)w; (void)l; (void)s; return -1; }
void tok_unigram_free(struct tok_unigram *u) { (void)u; }
int tok_charsmap_load(const char *b64, size_t len, struct tok_charsmap **out, const char *origin, tok_error *err)
{ (void)b64; (void)len; *out = NULL; tok_set_error(err, "%s: Precompiled normalizer is not supported yet", origin); return -1; }
void tok_charsmap_free(struct tok_charsmap *m) { (void)m; }
int tok_charsmap_apply(const struct tok_charsmap *m, const char *in, size_t len, tok_buf *out) { (void)m; (void)in; (void)len; (void)out; return -1; }
