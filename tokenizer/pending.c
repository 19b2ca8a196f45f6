/* pending.c - components of issue #5 not implemented yet: refused at load. */
#include <cjson/cJSON.h>
#include "internal.h"

int tok_bpe_load(tok_model *m, const cJSON *j, const char *origin, tok_error *err)
{ (void)m; (void)j; tok_set_error(err, "%s: field 'model.type': BPE is not supported yet", origin); return -1; }
int tok_unigram_load(tok_model *m, const cJSON *j, const char *origin, tok_error *err)
{ (void)m; (void)j; tok_set_error(err, "%s: field 'model.type': Unigram is not supported yet", origin); return -1; }
int tok_bpe_encode(const tok_model *m, const char *w, size_t l, struct tok_scratch *s) { (void)m; (void)w; (void)l; (void)s; return -1; }
int tok_unigram_encode(const tok_model *m, const char *w, size_t l, struct tok_scratch *s) { (void)m; (void)w; (void)l; (void)s; return -1; }
void tok_bpe_free(struct tok_bpe *b) { (void)b; }
void tok_unigram_free(struct tok_unigram *u) { (void)u; }
int tok_regex_compile(const char *p, size_t len, bool literal, struct tok_regex **out, tok_error *err)
{ (void)p; (void)len; (void)literal; *out = NULL; tok_set_error(err, "regular expressions are not supported yet"); return -1; }
void tok_regex_free(struct tok_regex *re) { (void)re; }
int tok_regex_events(const struct tok_regex *re, const char *s, size_t len, bool invert, tok_pieces *ev, tok_error *err)
{ (void)re; (void)s; (void)len; (void)invert; (void)ev; (void)err; return -1; }
int tok_charsmap_load(const char *b64, size_t len, struct tok_charsmap **out, const char *origin, tok_error *err)
{ (void)b64; (void)len; *out = NULL; tok_set_error(err, "%s: Precompiled normalizer is not supported yet", origin); return -1; }
void tok_charsmap_free(struct tok_charsmap *m) { (void)m; }
int tok_charsmap_apply(const struct tok_charsmap *m, const char *in, size_t len, tok_buf *out) { (void)m; (void)in; (void)len; (void)out; return -1; }
int tok_replace_apply(const tok_normalizer *n, const char *in, size_t len, tok_buf *out, tok_error *err) { (void)n; (void)in; (void)len; (void)out; (void)err; return -1; }
int tok_metaspace(const tok_pretokenizer *p, struct tok_scratch *s, const tok_piece *in, tok_pieces *out) { (void)p; (void)s; (void)in; (void)out; return -1; }
int tok_bytelevel_pretok(const tok_pretokenizer *p, struct tok_scratch *s, const tok_piece *in, tok_pieces *out, tok_error *err) { (void)p; (void)s; (void)in; (void)out; (void)err; return -1; }
