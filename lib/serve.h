/* serve: `tok --serve`, a drop-in replacement for Axera's Python tokenizer service
 * (qwen3_tokenizer_uid.py; see shared reference ax650.md §1): the same endpoints
 * (/get_uid, /bos_id, /eos_id, /encode with last_reply and diff, /decode with its
 * U+FFFD hold-back, /reset), the same JSON and the same token ids, rendered with the
 * Qwen2.5 ChatML template and encoded with the Qwen3 tokenizer, quirks included.
 * Improvements a client cannot observe as breakage: binds 127.0.0.1 unless told,
 * concurrent clients, capped request size, idle uids expire, uids from libsodium
 * randomness, malformed requests answered with an error body instead of a crash. */
#ifndef SERVE_H
#define SERVE_H

#include <signal.h>
#include <stddef.h>

#include "tok.h"

typedef struct {
    const char *addr;      /* "127.0.0.1" unless the user says otherwise */
    int port;              /* 1..65535 */
    size_t max_body;       /* bytes; larger requests get an error body */
    int idle_expire_s;     /* a uid unused this long is dropped */
    size_t max_uids;       /* live uids at most; the least recently used goes first */
    const char *system_prompt; /* default system prompt, NULL = the Python service's */
} serve_opts;

/* Serve until *stop becomes nonzero (set it from a signal handler). Returns 0 after a
 * clean stop, -1 if the server could not start (address in use, ...) with err set. */
int serve_run(const tok *t, const serve_opts *o, volatile sig_atomic_t *stop, char *err,
              size_t errlen);

#endif
