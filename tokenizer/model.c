/* model.c - dispatch from a word to the model that turns it into ids. */
#include <stdlib.h>

#include "internal.h"

int tok_bpe_encode(const tok_model *m, const char *word, size_t len, struct tok_scratch *s);
int tok_unigram_encode(const tok_model *m, const char *word, size_t len, struct tok_scratch *s);
void tok_bpe_free(struct tok_bpe *b);
void tok_unigram_free(struct tok_unigram *u);

int tok_model_encode(const tok_model *m, const char *word, size_t len, struct tok_scratch *s, tok_error *err)
{
    int rc = -1;
    switch (m->type) {
    case TOK_MODEL_WORDPIECE:
        rc = tok_wordpiece_encode(m, word, len, s);
        break;
    case TOK_MODEL_BPE:
        rc = tok_bpe_encode(m, word, len, s);
        break;
    case TOK_MODEL_UNIGRAM:
        rc = tok_unigram_encode(m, word, len, s);
        break;
    }
    if (rc && err && !err->message[0]) {
        if (m->type == TOK_MODEL_WORDPIECE && m->wp.unk_id < 0)
            tok_set_error(err,
                          "model: word '%.*s' is not in the vocabulary and the WordPiece model has no unknown "
                          "token (model.unk_token is missing from model.vocab)",
                          (int)(len > 64 ? 64 : len), word);
        else
            tok_set_error(err, "model: out of memory encoding word '%.*s'", (int)(len > 64 ? 64 : len), word);
    }
    return rc;
}

void tok_model_free(tok_model *m)
{
    for (size_t i = 0; i < m->vocab.n; i++)
        free(m->vocab.tokens[i]);
    free(m->vocab.tokens);
    free(m->vocab.lens);
    tok_map_free(&m->vocab.map);
    tok_map_free(&m->wp.cont);
    tok_bpe_free(m->bpe);
    tok_unigram_free(m->uni);
}
