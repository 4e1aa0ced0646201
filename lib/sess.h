/* sess: a conversation's state on disk, so a chat can stop in one process and continue
 * in another: the model's fingerprint, the token ids the cache holds, the K/V rows of
 * every layer, and the logits after the last position (so `decode` can start without a
 * token). This first format is one file rewritten atomically on save (write temp, fsync,
 * rename); the block store with prefix sharing replaces it in kvstore. */
#ifndef SESS_H
#define SESS_H

#include <stddef.h>
#include <stdint.h>

#include "kv.h"
#include "model.h"

typedef struct {
    uint8_t fingerprint[32];
    int32_t *tokens;    /* kv.n ids */
    size_t tokens_cap;
    kv_cache kv;
    float *logits;      /* (vocab) after the last position, or NULL if none */
    size_t vocab;
} session;

/* Open the session at path for model m: load it if the file exists (refusing one made by
 * another model or in another format version, saying which), else start empty. */
int sess_open(const char *path, const model *m, session *s, char *err, size_t errlen);

/* Record the ids of the last n cached positions (forward() has written their K/V rows and
 * advanced s->kv.n), so that tokens[i] is the id at position i. */
int sess_push_tokens(session *s, const int32_t *ids, size_t n, char *err, size_t errlen);

/* Save atomically: the old file or the whole new one, never a mix. */
int sess_save(const char *path, const session *s, char *err, size_t errlen);
void sess_free(session *s);

#endif
