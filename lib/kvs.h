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

/* What a session opened with another model's fingerprint is called: the checkpoint, the
 * --quant scheme, or the scheme's arithmetic (q4's activations became int8) differ. */
#define KVS_OTHER_MODEL "made by a different model (checkpoint, --quant scheme, or a build that computes the scheme otherwise)"
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
    size_t committed;  /* positions in the session file (durable too, but see sess_defer_sync) */
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

/* Roll back to n positions (n <= kv.n), dropping the hidden state unless it is n's; on disk
 * at the next commit. (Lowering kv.n by hand below `committed` does the same.) */
int sess_trim(session *s, size_t n, char *err, size_t errlen);

/* Make positions [committed, kv.n) and the hidden state durable (see docs/kvstore.md). On
 * failure (ENOSPC, ...) the session on disk stays at its last commit. */
int sess_commit(session *s, char *err, size_t errlen);

/* From now on a commit returns once its records are written, and their fdatasync runs
 * on a thread of the session's while the caller goes on; the next commit (or sess_sync)
 * waits for it and reports its error. A killed process loses nothing committed (the
 * kernel has it); a power cut can lose the last commit (the log then opens at the one
 * before). decode uses it: one token's sync overlaps the next token's compute. */
int sess_defer_sync(session *s, char *err, size_t errlen);
/* Wait until every commit is durable; the deferred sync's error, if it failed. */
int sess_sync(session *s, char *err, size_t errlen);

/* Free memory and release the lock (after the last commit's sync). Uncommitted positions
 * are dropped. */
void sess_close(session *s);

/* The store as a whole, for the kvstore program. m == NULL in sess_open takes the shape
 * from the session's header (no model needed to read, trim or copy a session). */

/* One session as its log describes it, without reading a row. */
typedef struct {
    char name[129];
    uint8_t fingerprint[32];
    int n_layers;
    size_t kv_dim, dim;
    size_t n;           /* positions */
    size_t blocks;      /* leading blocks (16 positions each) */
    size_t tail;        /* positions after them, in the session file */
    int has_hidden, encrypted;
    size_t file_bytes;  /* the session file */
    size_t garbage;     /* bytes after its last valid record (an interrupted commit) */
    size_t block_bytes; /* the block files it uses (shared ones counted in full) */
    int64_t mtime;      /* last commit, seconds since the epoch */
} kvs_info;

/* Names of the store's sessions, sorted; free with kvs_list_free. */
int kvs_list(kvs_store *st, char ***names, size_t *count, char *err, size_t errlen);
void kvs_list_free(char **names, size_t count);
int kvs_stat(kvs_store *st, const char *name, kvs_info *info, char *err, size_t errlen);
/* Roll session name back to n positions (takes its lock). */
int kvs_trim(kvs_store *st, const char *name, size_t n, char *err, size_t errlen);
/* A new session newname sharing name's blocks (refused if newname exists). */
int kvs_fork(kvs_store *st, const char *name, const char *newname, char *err, size_t errlen);
/* Remove a session (refused while a writer holds it); its blocks stay for gc. */
int kvs_rm(kvs_store *st, const char *name, char *err, size_t errlen);

typedef struct {
    size_t blocks_kept, blocks_dropped, bytes_kept, bytes_dropped, tmp_dropped;
} kvs_gc_stats;
/* Drop blocks no session references, least recently used first, until the store fits
 * max_size bytes (max_size < 0: drop them all), and every file in tmp/. */
int kvs_gc(kvs_store *st, long long max_size, kvs_gc_stats *gs, char *err, size_t errlen);

/* Check every checksum of session name (NULL: every session and every block file),
 * calling report(ctx, "what: why") for each problem. Returns the number of problems, or
 * -1 if the check could not run. */
long kvs_verify(kvs_store *st, const char *name, void (*report)(void *ctx, const char *msg), void *ctx,
                char *err, size_t errlen);

/* One portable file holding session name and its blocks; import refuses an existing name. */
int kvs_export(kvs_store *st, const char *name, const char *path, char *err, size_t errlen);
int kvs_import(kvs_store *st, const char *path, const char *name, char *err, size_t errlen);

#endif
