/* kvs: the KV store (docs/kvstore.md): sessions on disk in a directory shared by all of
 * them, K/V sealed into content-addressed blocks of 16 positions named by a hash chain
 * over (model, tokens so far), so identical prefixes are stored once and found again;
 * the positions after the last full block live in the session's append-only log of
 * checksummed records. Commits are durable at fdatasync; a crash at any instant leaves
 * every session at its last commit. One writer per session (flock). Optional encryption
 * at rest with libsodium AEAD. */
#ifndef KVS_H
#define KVS_H

#include <stddef.h>
#include <stdint.h>

#include "kv.h"
#include "model.h"

enum { KVS_BLOCK = 16 };

typedef struct kvs_store kvs_store;

/* Open (creating if needed) the store in dir (NULL: $QWEN_KVSTORE, else the cache dir's
 * kv/). keyfile (NULL: none) holds 32 raw bytes or 64 hex digits; a store made with a key
 * refuses to open without the right one, and the other way round. */
kvs_store *kvs_open(const char *dir, const char *keyfile, char *err, size_t errlen);
void kvs_close(kvs_store *st);
const char *kvs_dir(const kvs_store *st);

typedef struct kvs_sess kvs_sess; /* private state: file, lock, chain, committed counts */

typedef struct {
    uint8_t fingerprint[32];
    int32_t *tokens;   /* kv.n ids (-1 where unknown: positions fed as bare embeddings) */
    size_t tokens_cap;
    kv_cache kv;       /* rows [0, kv.n) valid */
    float *hidden;     /* (dim) final hidden state of the last position, NULL if none */
    size_t dim;
    size_t committed;  /* positions durable on disk */
    kvs_sess *priv;
} session;

enum { SESS_READ = 0, SESS_WRITE = 1 };

/* Open session name of store st for model m. SESS_WRITE takes the session's lock (a
 * second writer is refused) and creates it if missing; SESS_READ opens an existing one
 * without locking. A session of another model, another format version, or with a corrupt
 * block is refused with the reason. */
int sess_open(kvs_store *st, const char *name, const model *m, session *s, int mode, char *err,
              size_t errlen);

/* Before computing positions ids[0..n) that would follow the session's current end: load
 * every leading block of them the store already holds (walking the hash chain from the
 * session's current block boundary) into s->kv and s->tokens. Returns how many positions
 * were reused (a multiple of KVS_BLOCK, possibly 0), or -1 on error. */
long sess_reuse_prefix(session *s, const int32_t *ids, size_t n, char *err, size_t errlen);

/* Record the ids of the last n positions forward() appended to s->kv. */
int sess_push_tokens(session *s, const int32_t *ids, size_t n, char *err, size_t errlen);

/* Record the final hidden state (dim) of the last position. */
int sess_set_hidden(session *s, const float *h, char *err, size_t errlen);

/* Make positions [committed, kv.n) and the hidden state durable (see docs/kvstore.md). On
 * failure (ENOSPC, ...) the session on disk stays at its last commit. */
int sess_commit(session *s, char *err, size_t errlen);

/* Free memory and release the lock. Uncommitted positions are dropped. */
void sess_close(session *s);

#endif
