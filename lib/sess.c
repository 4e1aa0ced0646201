/* sess: one conversation in one file (format version 1), rewritten atomically on save.
 *
 *   off 0   "QWSESS\r\n"                       magic (the \r\n catches text-mode mangling)
 *       8   u32 version (1), u32 kv dtype (0 = f32)
 *      16   u8[32] model fingerprint (model.h)
 *      48   u32 n_layers, u32 kv_dim, u64 n (positions), u64 vocab (0 = no logits)
 *      72   i32 tokens[n]
 *           f32 for each layer: K rows (n, kv_dim), then V rows (n, kv_dim)
 *           f32 logits[vocab] after the last position
 *           u8[32] BLAKE2b-256 of everything before it
 *
 * All integers little-endian. Loading checks size, checksum, version and fingerprint
 * before trusting a byte, so a truncated or corrupt file, or one made by another model,
 * is refused with the reason. Saving writes a temp file beside the target, fsyncs it and
 * renames it over, so a crash leaves the old session or the new one, never a mix. */
#include "sess.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

static const char MAGIC[8] = {'Q', 'W', 'S', 'E', 'S', 'S', '\r', '\n'};
enum { VERSION = 1, HDR = 72, SUM = 32, KV_F32 = 0 };

static int empty(const model *m, session *s, char *err, size_t errlen) {
    const qwen_config *c = &m->cfg;
    memset(s, 0, sizeof *s);
    memcpy(s->fingerprint, m->fingerprint, 32);
    s->vocab = (size_t)c->vocab_size;
    if (kv_alloc(&s->kv, c->n_layers, (size_t)c->n_kv_heads * (size_t)c->head_dim, 256) < 0)
        return seterr(err, errlen, "session: out of memory");
    return 0;
}

static int load(const char *path, const model *m, session *s, const mapped *f, char *err, size_t errlen) {
    const qwen_config *c = &m->cfg;
    const uint8_t *p = f->data;
    size_t kv_dim = (size_t)c->n_kv_heads * (size_t)c->head_dim;
    if (f->size < HDR + SUM || memcmp(p, MAGIC, 8))
        return seterr(err, errlen, "%s: not a session file", path);
    uint32_t version = le32(p + 8);
    if (version != VERSION)
        return seterr(err, errlen, "%s: session format version %u, this build reads version %d", path,
                      version, VERSION);
    if (le32(p + 12) != KV_F32) return seterr(err, errlen, "%s: KV dtype %u not supported", path, le32(p + 12));
    uint8_t sum[32];
    crypto_generichash(sum, 32, p, f->size - SUM, NULL, 0);
    if (sodium_memcmp(sum, p + f->size - SUM, 32))
        return seterr(err, errlen, "%s: checksum mismatch (the file is corrupt or truncated)", path);
    if (memcmp(p + 16, m->fingerprint, 32))
        return seterr(err, errlen, "%s: made by a different model (fingerprint differs from %s)", path, m->dir);
    uint32_t layers = le32(p + 48), dim = le32(p + 52);
    uint64_t n = le64(p + 56), vocab = le64(p + 64);
    if (layers != (uint32_t)c->n_layers || dim != kv_dim || (vocab && vocab != (uint64_t)c->vocab_size))
        return seterr(err, errlen, "%s: shape (%u layers, kv_dim %u) does not match the model", path, layers, dim);
    uint64_t want = HDR + n * 4 + (uint64_t)layers * 2 * n * dim * 4 + vocab * 4 + SUM;
    if (n > ((uint64_t)1 << 32) || want != f->size)
        return seterr(err, errlen, "%s: size %zu does not match its header", path, f->size);
    if (empty(m, s, err, errlen) < 0) return -1;
    if (kv_reserve(&s->kv, (size_t)n + 256) < 0) goto oom;
    const uint8_t *q = p + HDR;
    s->kv.n = (size_t)n;
    if (sess_push_tokens(s, (const int32_t *)q, (size_t)n, err, errlen) < 0) return -1;
    q += n * 4;
    for (uint32_t l = 0; l < layers; l++) {
        memcpy(s->kv.k[l], q, n * dim * 4);
        q += n * dim * 4;
        memcpy(s->kv.v[l], q, n * dim * 4);
        q += n * dim * 4;
    }
    if (vocab) {
        if (!(s->logits = malloc(vocab * 4))) goto oom;
        memcpy(s->logits, q, vocab * 4);
    }
    return 0;
oom:
    sess_free(s);
    return seterr(err, errlen, "%s: out of memory", path);
}

int sess_open(const char *path, const model *m, session *s, char *err, size_t errlen) {
    mapped f;
    struct stat st;
    if (stat(path, &st) < 0 && errno == ENOENT) return empty(m, s, err, errlen);
    if (map_file(path, &f, err, errlen) < 0) return -1;
    int rc = load(path, m, s, &f, err, errlen);
    unmap_file(&f);
    return rc;
}

int sess_push_tokens(session *s, const int32_t *ids, size_t n, char *err, size_t errlen) {
    if (n > s->kv.n) return seterr(err, errlen, "session: %zu tokens but only %zu cached positions", n, s->kv.n);
    size_t have = s->kv.n - n;
    if (have + n > s->tokens_cap) {
        size_t cap = s->tokens_cap ? s->tokens_cap : 256;
        while (cap < have + n) cap *= 2;
        int32_t *t = realloc(s->tokens, cap * sizeof *t);
        if (!t) return seterr(err, errlen, "session: out of memory");
        s->tokens = t;
        s->tokens_cap = cap;
    }
    memcpy(s->tokens + have, ids, n * sizeof *ids);
    return 0;
}

/* Streaming writer: every byte goes to the temp file and into the checksum. */
typedef struct {
    int fd;
    crypto_generichash_state h;
    int failed;
} writer;

static void put(writer *w, const void *p, size_t n) {
    crypto_generichash_update(&w->h, p, n);
    const char *c = p;
    while (n && !w->failed) {
        ssize_t k = write(w->fd, c, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            w->failed = errno ? errno : EIO;
            break;
        }
        c += k;
        n -= (size_t)k;
    }
}

int sess_save(const char *path, const session *s, char *err, size_t errlen) {
    size_t pl = strlen(path);
    char *tmp = malloc(pl + 32);
    if (!tmp) return seterr(err, errlen, "%s: out of memory", path);
    snprintf(tmp, pl + 32, "%s.tmp.%ld", path, (long)getpid());
    writer w = {.fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)};
    if (w.fd < 0) {
        seterr(err, errlen, "%s: %s", tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    crypto_generichash_init(&w.h, NULL, 0, 32);
    const kv_cache *kv = &s->kv;
    uint8_t h[HDR];
    memcpy(h, MAGIC, 8);
    put_le32(h + 8, VERSION);
    put_le32(h + 12, KV_F32);
    memcpy(h + 16, s->fingerprint, 32);
    put_le32(h + 48, (uint32_t)kv->n_layers);
    put_le32(h + 52, (uint32_t)kv->kv_dim);
    put_le64(h + 56, kv->n);
    put_le64(h + 64, s->logits ? s->vocab : 0);
    put(&w, h, HDR);
    put(&w, s->tokens, kv->n * sizeof *s->tokens);
    for (int l = 0; l < kv->n_layers; l++) {
        put(&w, kv->k[l], kv->n * kv->kv_dim * sizeof(float));
        put(&w, kv->v[l], kv->n * kv->kv_dim * sizeof(float));
    }
    if (s->logits) put(&w, s->logits, s->vocab * sizeof(float));
    uint8_t sum[32];
    crypto_generichash_final(&w.h, sum, 32);
    put(&w, sum, 32);
    if (!w.failed && fsync(w.fd) < 0) w.failed = errno;
    if (close(w.fd) < 0 && !w.failed) w.failed = errno;
    if (!w.failed && rename(tmp, path) < 0) w.failed = errno;
    if (w.failed) {
        unlink(tmp);
        seterr(err, errlen, "%s: %s", path, strerror(w.failed));
    }
    free(tmp);
    return w.failed ? -1 : 0;
}

void sess_free(session *s) {
    kv_free(&s->kv);
    free(s->tokens);
    free(s->logits);
    s->tokens = NULL;
    s->logits = NULL;
}
