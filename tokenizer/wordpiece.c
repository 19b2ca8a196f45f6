/* wordpiece.c - the WordPiece model: greedy longest-match-first over the
 * vocabulary, continuation pieces carrying the prefix ("##"), and the whole
 * word becoming the unknown token when any part fails to match or the word
 * is longer than max_input_chars_per_word characters.  Continuation lookups
 * use a second map keyed without the prefix so no string is built. */
#include "internal.h"

static int push_unk(const tok_model *m, struct tok_scratch *s)
{
    if (m->wp.unk_id < 0)
        return -1;
    return tok_scratch_push_id(s, m->wp.unk_id, 0);
}

int tok_wordpiece_encode(const tok_model *m, const char *word, size_t len, struct tok_scratch *s)
{
    if (tok_utf8_count(word, len) > m->wp.max_chars)
        return push_unk(m, s);
    size_t mark = s->n_ids, start = 0;
    while (start < len) {
        size_t end = len;
        int32_t id = -1;
        while (start < end) {
            id = start == 0 ? tok_map_get(&m->vocab.map, word, end)
                            : tok_map_get(&m->wp.cont, word + start, end - start);
            if (id >= 0)
                break;
            end--;
            while (end > start && ((unsigned char)word[end] & 0xC0) == 0x80)
                end--;
        }
        if (id < 0) {
            s->n_ids = mark;   /* any failed piece makes the whole word unknown */
            return push_unk(m, s);
        }
        if (tok_scratch_push_id(s, id, 0))
            return -1;
        start = end;
    }
    return 0;
}
