/* kvs: the KV store of docs/kvstore.md. This file owns every byte of its formats: the
 * store directory (VERSION, key.check, gc.lock), block files, session logs, export files.
 *
 * Key decisions:
 * - Loading is two passes. Pass 1 (log_parse) reads the session log into a logical state
 *   that says where every position's rows live (a block, or a TAIL record at an offset)
 *   without reading a row; ls, info, gc and fork stop there. Pass 2 (log_load) copies the
 *   rows. So a TRIM that cuts into a block, or a BLOCKS record after tail records, needs no
 *   special case: the last word on each position wins.
 * - Files are read with pread into malloc'd buffers, never mmap: a writer truncating the
 *   garbage of a crashed commit under a reader would otherwise be a SIGBUS.
 * - A commit seals full blocks first (temp file, fsync, rename), then appends BLOCKS,
 *   TAIL and HIDDEN records with one write and one fdatasync: the publish point. A block
 *   exists before anything names it; a crash leaves at worst unreferenced files.
 * - gc.lock: writers hold it shared from sealing through publishing, gc exclusively, so gc
 *   never drops a block between a writer finding it present and the writer naming it.
 * - Every write and sync goes through io_write/io_sync, where the QWEN_KVS_FAIL_AFTER=BYTES
 *   testing hook (read once in kvs_open) makes them fail with ENOSPC after BYTES bytes.
 * - f32 rows are stored in host byte order: every target is little-endian (asserted). */
#include "kvs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "kvs stores f32 rows in host order");

enum {
    FORMAT = 1,  /* block, session and export format version */
    KV_F32 = 0,  /* kv dtype */
    HASH = 32,
    BLK_HDR = 160,
    SES_HDR = 96,
    REC_HDR = 8, /* u32 kind, u32 length */
    REC_MAX = 16, /* positions per TAIL record (keeps a record's length far from 4 GiB) */
    NONCE = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
    MAC = crypto_aead_xchacha20poly1305_ietf_ABYTES,
    R_BLOCKS = 1, R_TAIL = 2, R_HIDDEN = 3, R_TRIM = 4,
    F_ENCRYPTED = 1,
    MAX_LAYERS = 1024, MAX_KV_DIM = 65536, MAX_DIM = 1 << 20,
};

static const uint32_t R_MORE = 0x80000000u; /* in a record's kind: its commit goes on in the next record */

static const char VERSION_TEXT[] = "qwen3-pipe kv 1\n";
static const char CHAIN_TAG[] = "qwen3-pipe kv 1";
static const uint8_t BLK_MAGIC[8] = "QWKVBLK1", SES_MAGIC[8] = "QWKVSES1", KEY_MAGIC[8] = "QWKVKEY1",
                     EXP_MAGIC[8] = "QWKVEXP1";
static const uint8_t KEY_VALUE[32] = "qwen3-pipe kv store key check.";

struct kvs_store {
    char *dir;
    int encrypted;
    uint8_t key[32];
    long long fail_after; /* testing hook: writes fail with ENOSPC past this many bytes; -1 off */
    size_t written;       /* bytes written through io_write (for the hook) */
    unsigned tmp_seq;     /* makes temp names unique within the process */
};

struct kvs_sess {
    kvs_store *st;
    char name[129];
    int mode;
    int fd, lock_fd, gc_fd;  /* session file, NAME.lock, gc.lock (writer only) */
    uint8_t hdr[SES_HDR];    /* the header; its checksum is the AEAD additional data */
    size_t rowbytes;         /* one position's K and V over all layers */
    uint8_t h0[HASH];        /* the chain's root */
    uint8_t (*names)[HASH];  /* names[i] = h_{i+1}, valid for i < k */
    size_t k, names_cap;     /* leading blocks sealed (in memory) */
    size_t log_k;            /* of those, how many the log names (and are known present) */
    size_t force_from;       /* blocks from here on are rewritten even if present */
    size_t trim_to;          /* lowest sess_trim since the last commit, SIZE_MAX if none */
    size_t hidden_n;         /* kv.n when the hidden state was set, SIZE_MAX if none */
    float *hidden_buf;
    size_t end;              /* bytes of valid records in the log (with the header) */
    size_t live;             /* what a compact rewrite would take */
    buf out;                 /* records being built (one commit, or a rewrite's chunk) */
    uint8_t *scratch;        /* a block file or a decrypted record */
    size_t scratch_cap;
    struct syncer *sy;       /* sess_defer_sync's thread, or NULL */
};

/* ---- small helpers ---- */

static void hexname(char out[65], const uint8_t h[HASH]) {
    static const char hx[] = "0123456789abcdef";
    for (int i = 0; i < HASH; i++) out[2 * i] = hx[h[i] >> 4], out[2 * i + 1] = hx[h[i] & 15];
    out[64] = 0;
}

static int path_of(char *out, const kvs_store *st, const char *fmt, const char *a, const char *b) {
    int n = snprintf(out, PATH_MAX, fmt, st->dir, a, b);
    return n < 0 || n >= PATH_MAX ? -1 : 0;
}

/* out = a/b; -1 if too long. */
static int join(char *out, const char *a, const char *b) {
    int n = snprintf(out, PATH_MAX, "%s/%s", a, b);
    return n < 0 || n >= PATH_MAX ? -1 : 0;
}

static int block_path(char *out, const kvs_store *st, const uint8_t h[HASH]) {
    char hex[65], dir[3] = {0};
    hexname(hex, h);
    memcpy(dir, hex, 2);
    return path_of(out, st, "%s/blocks/%s/%s", dir, hex);
}

static int valid_name(const char *name) {
    size_t n = strlen(name);
    if (n < 1 || n > 128 || name[0] == '.') return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

static int bad_name(const char *name, char *err, size_t errlen) {
    return seterr(err, errlen, "session name '%s': use 1-128 of A-Z a-z 0-9 . _ -, not starting with '.'",
                  name);
}

static int grow(void *pp, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *p = realloc(*(void **)pp, c * elem);
    if (!p) return -1;
    *(void **)pp = p;
    *cap = c;
    return 0;
}

static int mkdir_p(const char *path) {
    char p[PATH_MAX];
    size_t n = strlen(path);
    if (n >= sizeof p) return errno = ENAMETOOLONG, -1;
    memcpy(p, path, n + 1);
    for (size_t i = 1; i <= n; i++)
        if (p[i] == '/' || p[i] == 0) {
            char c = p[i];
            p[i] = 0;
            if (mkdir(p, 0700) < 0 && errno != EEXIST) return -1;
            p[i] = c;
        }
    return 0;
}

static int sync_dir(const char *path) {
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* The directory part of path, synced (after a rename into it). */
static int sync_parent(const char *path) {
    char d[PATH_MAX];
    snprintf(d, sizeof d, "%s", path);
    char *s = strrchr(d, '/');
    if (s) *s = 0;
    return sync_dir(d);
}

/* Read the whole file at path (as long as it is now) into *p. 1 if it does not exist. */
static int slurp(const char *path, uint8_t **p, size_t *cap, size_t *len) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT ? 1 : -1;
    struct stat sb;
    if (fstat(fd, &sb) < 0 || grow(p, cap, (size_t)sb.st_size + 1, 1) < 0) goto fail;
    size_t got = 0;
    while (got < (size_t)sb.st_size) {
        ssize_t r = pread(fd, *p + got, (size_t)sb.st_size - got, (off_t)got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) goto fail;
        if (r == 0) break; /* shrank under us: what is there is what we read */
        got += (size_t)r;
    }
    close(fd);
    *len = got;
    return 0;
fail:;
    int e = errno;
    close(fd);
    errno = e ? e : ENOMEM;
    return -1;
}

/* ---- I/O through the fault-injection hook ---- */

/* Write n bytes at off (off < 0: at the file position). Returns 0 or an errno. */
static int io_write(kvs_store *st, int fd, const void *p, size_t n, long long off) {
    int fail = 0;
    if (st->fail_after >= 0) {
        size_t left = st->written < (size_t)st->fail_after ? (size_t)st->fail_after - st->written : 0;
        if (n > left) n = left, fail = ENOSPC;
    }
    const uint8_t *c = p;
    while (n) {
        ssize_t w = off >= 0 ? pwrite(fd, c, n, (off_t)off) : write(fd, c, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return w < 0 ? errno : EIO;
        c += w, n -= (size_t)w, st->written += (size_t)w;
        if (off >= 0) off += w;
    }
    return fail;
}

static int io_sync(kvs_store *st, int fd, int data_only) {
    if (st->fail_after >= 0 && st->written >= (size_t)st->fail_after) return ENOSPC;
    return (data_only ? fdatasync(fd) : fsync(fd)) < 0 ? errno : 0;
}

/* Write a new file atomically at final: temp file in tmp/, fsync, then rename over final
 * (or, with no_clobber, link: EEXIST if final exists), then fsync final's directory. */
static int put_file(kvs_store *st, const char *final, const void *p, size_t n, int no_clobber) {
    char tmp[PATH_MAX];
    char tag[64];
    snprintf(tag, sizeof tag, "%ld.%u", (long)getpid(), st->tmp_seq++);
    if (path_of(tmp, st, "%s/tmp/%s%s", tag, "") < 0) return ENAMETOOLONG;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return errno;
    int e = io_write(st, fd, p, n, 0);
    if (!e) e = io_sync(st, fd, 0);
    if (close(fd) < 0 && !e) e = errno;
    if (!e && no_clobber) {
        if (link(tmp, final) < 0) e = errno;
    } else if (!e && rename(tmp, final) < 0)
        e = errno;
    if (e || no_clobber) unlink(tmp);
    if (!e && sync_parent(final) < 0) e = errno;
    return e;
}

/* ---- the hash chain and checksums ---- */

static void chain_root(uint8_t h[HASH], const uint8_t fp[32]) {
    crypto_generichash_state s;
    uint8_t dt[4];
    put_le32(dt, KV_F32);
    crypto_generichash_init(&s, NULL, 0, HASH);
    crypto_generichash_update(&s, (const uint8_t *)CHAIN_TAG, strlen(CHAIN_TAG));
    crypto_generichash_update(&s, fp, 32);
    crypto_generichash_update(&s, dt, 4);
    crypto_generichash_final(&s, h, HASH);
}

static void chain_next(uint8_t out[HASH], const uint8_t parent[HASH], const int32_t *tok) {
    uint8_t b[HASH + 4 * KVS_BLOCK];
    memcpy(b, parent, HASH);
    for (int i = 0; i < KVS_BLOCK; i++) put_le32(b + HASH + 4 * i, (uint32_t)tok[i]);
    crypto_generichash(out, HASH, b, sizeof b, NULL, 0);
}

static void sum(uint8_t out[HASH], const uint8_t *p, size_t n) { crypto_generichash(out, HASH, p, n, NULL, 0); }

static int sum_ok(const uint8_t *p, size_t n) {
    uint8_t h[HASH];
    sum(h, p, n);
    return sodium_memcmp(h, p + n, HASH) == 0;
}

/* ---- the store ---- */

static int read_key(const char *file, uint8_t key[32], char *err, size_t errlen) {
    uint8_t *p = NULL;
    size_t cap = 0, n = 0;
    int r = slurp(file, &p, &cap, &n);
    if (r) {
        free(p);
        return seterr(err, errlen, "%s: %s", file, r > 0 ? "no such file" : strerror(errno));
    }
    size_t t = n;
    while (t && (p[t - 1] == '\n' || p[t - 1] == '\r' || p[t - 1] == ' ')) t--;
    size_t got = 0;
    int rc = 0;
    if (t == 64 && sodium_hex2bin(key, 32, (const char *)p, 64, NULL, &got, NULL) == 0 && got == 32) rc = 0;
    else if (n == 32) memcpy(key, p, 32);
    else rc = seterr(err, errlen, "%s: a key is 32 raw bytes or 64 hex digits", file);
    sodium_memzero(p, cap);
    free(p);
    return rc;
}

static int make_key_check(kvs_store *st, char *err, size_t errlen) {
    uint8_t b[8 + NONCE + sizeof KEY_VALUE + MAC];
    memcpy(b, KEY_MAGIC, 8);
    randombytes_buf(b + 8, NONCE);
    crypto_aead_xchacha20poly1305_ietf_encrypt(b + 8 + NONCE, NULL, KEY_VALUE, sizeof KEY_VALUE, b, 8, NULL,
                                               b + 8, st->key);
    char path[PATH_MAX];
    path_of(path, st, "%s/key.check%s%s", "", "");
    int e = put_file(st, path, b, sizeof b, 0);
    return e ? seterr(err, errlen, "%s: %s", path, strerror(e)) : 0;
}

static int check_key(kvs_store *st, const uint8_t *b, size_t n, char *err, size_t errlen) {
    uint8_t v[sizeof KEY_VALUE];
    if (n != 8 + NONCE + sizeof KEY_VALUE + MAC || memcmp(b, KEY_MAGIC, 8))
        return seterr(err, errlen, "%s/key.check: not a key check file", st->dir);
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(v, NULL, NULL, b + 8 + NONCE, n - 8 - NONCE, b, 8, b + 8,
                                                   st->key) < 0 ||
        memcmp(v, KEY_VALUE, sizeof v))
        return seterr(err, errlen, "wrong key for store %s", st->dir);
    return 0;
}

/* Make the store's directories and files if missing, then check VERSION and the key. */
static int store_init(kvs_store *st, int have_key, char *err, size_t errlen) {
    char p[PATH_MAX];
    uint8_t *b = NULL;
    size_t cap = 0, n = 0;
    static const char *const subdirs[] = {"blocks", "sessions", "tmp"};
    if (mkdir_p(st->dir) < 0) return seterr(err, errlen, "%s: %s", st->dir, strerror(errno));
    for (int i = 0; i < 3; i++) {
        path_of(p, st, "%s/%s%s", subdirs[i], "");
        if (mkdir(p, 0700) < 0 && errno != EEXIST) return seterr(err, errlen, "%s: %s", p, strerror(errno));
    }
    int rc = -1;
    path_of(p, st, "%s/key.check%s%s", "", "");
    int kr = slurp(p, &b, &cap, &n);
    if (kr < 0) {
        seterr(err, errlen, "%s: %s", p, strerror(errno));
        goto done;
    }
    path_of(p, st, "%s/VERSION%s%s", "", "");
    struct stat sb;
    int fresh = stat(p, &sb) < 0 && errno == ENOENT;
    if (kr == 0 && !have_key) {
        seterr(err, errlen, "store %s is encrypted: give its key (--key FILE)", st->dir);
        goto done;
    }
    if (kr == 0 && check_key(st, b, n, err, errlen) < 0) goto done;
    if (kr == 1 && have_key) {
        /* key.check is written before VERSION, so a store without VERSION is still new */
        if (!fresh) {
            seterr(err, errlen, "store %s is not encrypted (it was made without a key)", st->dir);
            goto done;
        }
        if (make_key_check(st, err, errlen) < 0) goto done;
    }
    if (fresh) {
        int e = put_file(st, p, VERSION_TEXT, strlen(VERSION_TEXT), 0);
        if (e) {
            seterr(err, errlen, "%s: %s", p, strerror(e));
            goto done;
        }
    } else {
        int r = slurp(p, &b, &cap, &n);
        if (r) {
            seterr(err, errlen, "%s: %s", p, r > 0 ? "no such file" : strerror(errno));
            goto done;
        }
        if (n != strlen(VERSION_TEXT) || memcmp(b, VERSION_TEXT, n)) {
            size_t l = 0;
            while (l < n && l < 60 && b[l] >= ' ' && b[l] < 127) l++;
            seterr(err, errlen, "store %s: VERSION says '%.*s', this build reads '%.*s'", st->dir, (int)l,
                   (const char *)b, (int)strlen(VERSION_TEXT) - 1, VERSION_TEXT);
            goto done;
        }
    }
    rc = 0;
done:
    free(b);
    return rc;
}

kvs_store *kvs_open(const char *dir, const char *keyfile, char *err, size_t errlen) {
    char d[PATH_MAX];
    if (sodium_init() < 0) return seterr(err, errlen, "kvs: libsodium failed to initialise"), NULL;
    const char *env = getenv("QWEN_KVSTORE");
    if (!dir && env && *env) dir = env;
    if (!dir) {
        if (cache_dir(d, sizeof d - 4, err, errlen) < 0) return NULL;
        strcat(d, "/kv");
        dir = d;
    }
    kvs_store *st = calloc(1, sizeof *st);
    if (!st || !(st->dir = strdup(dir))) {
        free(st);
        return seterr(err, errlen, "kvs: out of memory"), NULL;
    }
    size_t l = strlen(st->dir);
    while (l > 1 && st->dir[l - 1] == '/') st->dir[--l] = 0;
    /* Testing hook (documented in docs/kvstore.md): fail writes after this many bytes. */
    const char *fa = getenv("QWEN_KVS_FAIL_AFTER");
    st->fail_after = fa && *fa ? strtoll(fa, NULL, 10) : -1;
    if (keyfile && read_key(keyfile, st->key, err, errlen) < 0) goto fail;
    st->encrypted = keyfile != NULL;
    if (store_init(st, keyfile != NULL, err, errlen) < 0) goto fail;
    return st;
fail:
    kvs_close(st);
    return NULL;
}

void kvs_close(kvs_store *st) {
    if (!st) return;
    sodium_memzero(st->key, sizeof st->key);
    free(st->dir);
    free(st);
}

const char *kvs_dir(const kvs_store *st) { return st->dir; }

static int gc_lock(kvs_store *st, int how) {
    char p[PATH_MAX];
    path_of(p, st, "%s/gc.lock%s%s", "", "");
    int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return -1;
    while (flock(fd, how) < 0)
        if (errno != EINTR) {
            close(fd);
            return -1;
        }
    return fd;
}

/* ---- the session log, pass 1: where each position's rows are ---- */

typedef struct {
    const uint8_t *hdr;
    int n_layers, encrypted;
    size_t kv_dim, dim, rowbytes;
    uint8_t (*bname)[HASH]; /* bname[i]: the block that supplies positions 16i..16i+15 */
    size_t nb, bcap;        /* entries of bname ever set */
    size_t k;               /* blocks the log lists, cut by TRIM */
    size_t n;               /* positions */
    size_t *src;            /* per position: offset of its TAIL payload, 0 = block bname[p/16] */
    uint32_t *idx;          /* its index in that record */
    size_t scap, icap;
    size_t hidden;          /* offset of the HIDDEN payload for position n-1, 0 = none */
    size_t end;             /* bytes of valid records with the header */
} logstate;

static void log_free(logstate *ls) {
    free(ls->bname);
    free(ls->src);
    free(ls->idx);
    memset(ls, 0, sizeof *ls);
}

static int parse_header(const char *name, const uint8_t *d, size_t size, logstate *ls, char *err, size_t errlen) {
    if (size < SES_HDR) return seterr(err, errlen, "%s: truncated header (%zu of %d bytes)", name, size, SES_HDR);
    if (memcmp(d, SES_MAGIC, 8)) return seterr(err, errlen, "%s: not a session file (bad magic)", name);
    if (le32(d + 8) != FORMAT)
        return seterr(err, errlen, "%s: session format version %u, this build reads %d", name, le32(d + 8), FORMAT);
    if (!sum_ok(d, SES_HDR - HASH)) return seterr(err, errlen, "%s: header checksum mismatch", name);
    if (le32(d + 12) != KV_F32)
        return seterr(err, errlen, "%s: kv dtype %u, this build reads %d (f32)", name, le32(d + 12), KV_F32);
    uint32_t nl = le32(d + 48), kd = le32(d + 52), dim = le32(d + 56);
    if (nl < 1 || nl > MAX_LAYERS || kd < 1 || kd > MAX_KV_DIM || dim < 1 || dim > MAX_DIM)
        return seterr(err, errlen, "%s: bad shape in header (%u layers, kv_dim %u, dim %u)", name, nl, kd, dim);
    ls->hdr = d;
    ls->n_layers = (int)nl;
    ls->kv_dim = kd;
    ls->dim = dim;
    ls->encrypted = le32(d + 60) & F_ENCRYPTED;
    ls->rowbytes = (size_t)nl * 2 * kd * sizeof(float);
    return 0;
}

static int set_n(logstate *ls, size_t n) {
    if (grow(&ls->src, &ls->scap, n, sizeof *ls->src) < 0 || grow(&ls->idx, &ls->icap, n, sizeof *ls->idx) < 0)
        return -1;
    return 0;
}

/* Apply one record whose checksum is good. A record that is well formed on disk but says
 * something impossible is an error, not the end of the log: no crash can write it. */
static int apply(const char *name, logstate *ls, uint32_t kind, const uint8_t *p, size_t len, size_t off, char *err,
                 size_t errlen) {
    size_t over = ls->encrypted ? NONCE + MAC : 0;
    if (kind == R_BLOCKS) {
        uint32_t k = len >= 4 ? le32(p) : 0;
        if (len < 4 || k > (len - 4) / HASH || len != 4 + (size_t)k * HASH)
            return seterr(err, errlen, "%s: record at offset %zu: BLOCKS claims %u blocks in %zu bytes", name, off, k,
                          len);
        if (grow(&ls->bname, &ls->bcap, k, HASH) < 0 || set_n(ls, (size_t)k * KVS_BLOCK) < 0) goto oom;
        memcpy(ls->bname, p + 4, (size_t)k * HASH);
        if (k > ls->nb) ls->nb = k;
        size_t top = (size_t)k * KVS_BLOCK;
        for (size_t i = 0; i < top; i++) ls->src[i] = 0;
        if (top > ls->n) ls->n = top, ls->hidden = 0;
        ls->k = k;
    } else if (kind == R_TAIL) {
        size_t plain = len >= over ? len - over : 0, per = 4 + ls->rowbytes;
        size_t count = plain >= 4 ? (plain - 4) / per : 0;
        if (len < over + 4 || (plain - 4) % per || (!ls->encrypted && le32(p) != count))
            return seterr(err, errlen, "%s: record at offset %zu: TAIL of %zu bytes does not hold whole positions",
                          name, off, len);
        if (set_n(ls, ls->n + count) < 0) goto oom;
        for (size_t j = 0; j < count; j++) ls->src[ls->n + j] = off + REC_HDR, ls->idx[ls->n + j] = (uint32_t)j;
        ls->n += count;
        if (count) ls->hidden = 0;
    } else if (kind == R_HIDDEN) {
        if (len != over + ls->dim * sizeof(float))
            return seterr(err, errlen, "%s: record at offset %zu: HIDDEN of %zu bytes, dim is %zu", name, off, len,
                          ls->dim);
        ls->hidden = off + REC_HDR;
    } else if (kind == R_TRIM) {
        uint64_t n = len == 8 ? le64(p) : UINT64_MAX;
        if (n > ls->n)
            return seterr(err, errlen, "%s: record at offset %zu: TRIM past the end (%zu positions)", name, off, ls->n);
        ls->n = (size_t)n;
        if (ls->k > ls->n / KVS_BLOCK) ls->k = ls->n / KVS_BLOCK;
        ls->hidden = 0;
    } else {
        return seterr(err, errlen, "%s: record at offset %zu: unknown kind %u", name, off, kind);
    }
    return 0;
oom:
    return seterr(err, errlen, "%s: out of memory", name);
}

/* Read the header and every commit up to the first one with a record that fails its
 * checksum or runs past the end of d: that commit and the rest never completed. A commit
 * is the records up to one without R_MORE, applied only when all of them are good, so a
 * torn commit shows none of its records. */
static int log_parse(const char *name, const uint8_t *d, size_t size, logstate *ls, char *err, size_t errlen) {
    memset(ls, 0, sizeof *ls);
    if (parse_header(name, d, size, ls, err, errlen) < 0) return -1;
    size_t off = SES_HDR;
    for (;;) {
        size_t end = off;
        int whole = 0;
        while (size - end >= REC_HDR + HASH) {
            size_t len = le32(d + end + 4);
            if (len > size - end - REC_HDR - HASH || !sum_ok(d + end, REC_HDR + len)) break;
            int more = (le32(d + end) & R_MORE) != 0;
            end += REC_HDR + len + HASH;
            if (!more) {
                whole = 1;
                break;
            }
        }
        if (!whole) break;
        for (size_t r = off; r < end;) {
            size_t len = le32(d + r + 4);
            if (apply(name, ls, le32(d + r) & ~R_MORE, d + r + REC_HDR, len, r, err, errlen) < 0) {
                log_free(ls);
                return -1;
            }
            r += REC_HDR + len + HASH;
        }
        off = end;
    }
    ls->end = off;
    return 0;
}

/* Is block i wholly a block source (all 16 positions below n come from it)? */
static int whole_block(const logstate *ls, size_t i) {
    return i < ls->k;
}

/* Is any position of block i sourced from it? */
static int uses_block(const logstate *ls, size_t i) {
    for (size_t p = i * KVS_BLOCK; p < ls->n && p < (i + 1) * KVS_BLOCK; p++)
        if (ls->src[p] == 0) return 1;
    return 0;
}

/* ---- blocks ---- */

static size_t block_size(size_t rowbytes, int encrypted) {
    return BLK_HDR + (encrypted ? NONCE + 4 * KVS_BLOCK + MAC : 0) + KVS_BLOCK * rowbytes + HASH;
}

static int scratch(kvs_sess *P, size_t n) { return grow(&P->scratch, &P->scratch_cap, n, 1); }

/* Check the block file b (n bytes) named name: its size, checksum, header, chain link
 * (parent NULL: any), and, with a key, its box. On success *tok and *rows point at its
 * 16 token ids (little-endian) and its payload (decrypted in place when encrypted).
 * kv_dim 0 takes the shape from the header (verify of a loose block). */
static int block_check(const kvs_store *st, uint8_t *b, size_t n, const uint8_t name[HASH],
                       const uint8_t *parent, int n_layers, size_t kv_dim, const uint8_t **tok, const uint8_t **rows,
                       char *err, size_t errlen) {
    char hex[65];
    hexname(hex, name);
    if (n < BLK_HDR + HASH || memcmp(b, BLK_MAGIC, 8))
        return seterr(err, errlen, "block %s: not a block file (%s)", hex, n < BLK_HDR + HASH ? "truncated" : "bad magic");
    if (le32(b + 8) != FORMAT)
        return seterr(err, errlen, "block %s: block format version %u, this build reads %d", hex, le32(b + 8), FORMAT);
    uint32_t nl = le32(b + 16), kd = le32(b + 20), flags = le32(b + 28);
    if (!kv_dim) {
        if (nl < 1 || nl > MAX_LAYERS || kd < 1 || kd > MAX_KV_DIM)
            return seterr(err, errlen, "block %s: bad shape in header", hex);
        n_layers = (int)nl, kv_dim = kd;
    }
    int enc = flags & F_ENCRYPTED;
    size_t rowbytes = (size_t)n_layers * 2 * kv_dim * sizeof(float);
    if (nl != (uint32_t)n_layers || kd != kv_dim || le32(b + 12) != KV_F32 || le32(b + 24) != KVS_BLOCK)
        return seterr(err, errlen, "block %s: shape or dtype differs from the session's", hex);
    if (n != block_size(rowbytes, enc))
        return seterr(err, errlen, "block %s: %zu bytes, its header implies %zu", hex, n, block_size(rowbytes, enc));
    if (!sum_ok(b, n - HASH)) return seterr(err, errlen, "block %s: checksum mismatch", hex);
    if (memcmp(b + 32, name, HASH)) return seterr(err, errlen, "block %s: holds another block's name", hex);
    if (parent && memcmp(b + 64, parent, HASH)) return seterr(err, errlen, "block %s: parent does not match the chain", hex);
    if (enc != st->encrypted)
        return seterr(err, errlen, "block %s: %s, but the store is %s", hex, enc ? "encrypted" : "not encrypted",
                      st->encrypted ? "encrypted" : "not");
    uint8_t *p = b + BLK_HDR;
    if (enc) {
        unsigned long long m;
        if (crypto_aead_xchacha20poly1305_ietf_decrypt(p + NONCE, &m, NULL, p + NONCE, n - HASH - BLK_HDR - NONCE, b,
                                                       BLK_HDR, p, st->key) < 0)
            return seterr(err, errlen, "block %s: cannot be decrypted (wrong key or corrupt)", hex);
        p += NONCE;
    }
    int32_t t[KVS_BLOCK];
    for (int i = 0; i < KVS_BLOCK; i++) t[i] = (int32_t)le32((enc ? p : b + 96) + 4 * i);
    uint8_t h[HASH];
    chain_next(h, b + 64, t);
    if (memcmp(h, name, HASH)) return seterr(err, errlen, "block %s: its tokens do not hash to its name", hex);
    *tok = enc ? p : b + 96;
    *rows = enc ? p + 4 * KVS_BLOCK : p;
    return 0;
}

/* Load block name (child of parent) and copy its positions [from, to) to rows
 * base+from.. of s->kv and s->tokens. Returns 0, 1 if the block does not exist, -1. */
static int block_load(const kvs_store *st, uint8_t **scr, size_t *cap, session *s, const uint8_t name[HASH],
                      const uint8_t parent[HASH], size_t base, size_t from, size_t to, char *err, size_t errlen) {
    char path[PATH_MAX];
    size_t n;
    if (block_path(path, st, name) < 0) return seterr(err, errlen, "%s: path too long", st->dir);
    int r = slurp(path, scr, cap, &n);
    char hex[65];
    hexname(hex, name);
    if (r > 0) return seterr(err, errlen, "block %s: missing", hex), 1;
    if (r < 0) return seterr(err, errlen, "block %s: %s", hex, strerror(errno));
    const uint8_t *tok, *rows;
    if (block_check(st, *scr, n, name, parent, s->kv.n_layers, s->kv.kv_dim, &tok, &rows, err, errlen) < 0)
        return -1;
    size_t kd = s->kv.kv_dim, rb = kd * sizeof(float);
    kv_written(&s->kv, base + from);
    for (size_t j = from; j < to; j++) s->tokens[base + j] = (int32_t)le32(tok + 4 * j);
    for (int l = 0; l < s->kv.n_layers; l++) {
        const uint8_t *k = rows + (size_t)2 * l * KVS_BLOCK * rb, *v = k + KVS_BLOCK * rb;
        memcpy(s->kv.k[l] + (base + from) * kd, k + from * rb, (to - from) * rb);
        memcpy(s->kv.v[l] + (base + from) * kd, v + from * rb, (to - from) * rb);
    }
    return 0;
}

/* Make sure block i (positions 16i..16i+15 of s) is in the store: touch it if present
 * (its mtime is gc's recency), else write it: temp file, fsync, rename, fsync the dir. */
static int block_put(kvs_sess *P, const session *s, size_t i, char *err, size_t errlen) {
    kvs_store *st = P->st;
    char path[PATH_MAX], hex[65];
    hexname(hex, P->names[i]);
    if (block_path(path, st, P->names[i]) < 0) return seterr(err, errlen, "%s: path too long", st->dir);
    if (i < P->force_from && utimensat(AT_FDCWD, path, NULL, 0) == 0) return 0;
    size_t n = block_size(P->rowbytes, st->encrypted), kd = s->kv.kv_dim, rb = kd * sizeof(float);
    if (scratch(P, n) < 0) return seterr(err, errlen, "%s: out of memory", P->name);
    uint8_t *b = P->scratch;
    memset(b, 0, BLK_HDR);
    memcpy(b, BLK_MAGIC, 8);
    put_le32(b + 8, FORMAT);
    put_le32(b + 12, KV_F32);
    put_le32(b + 16, (uint32_t)s->kv.n_layers);
    put_le32(b + 20, (uint32_t)kd);
    put_le32(b + 24, KVS_BLOCK);
    put_le32(b + 28, st->encrypted ? F_ENCRYPTED : 0);
    memcpy(b + 32, P->names[i], HASH);
    memcpy(b + 64, i ? P->names[i - 1] : P->h0, HASH);
    /* encrypted: the token ids go inside the box, so a block does not show the text */
    uint8_t *p = b + BLK_HDR + (st->encrypted ? NONCE : 0), *t = st->encrypted ? p : b + 96;
    for (int j = 0; j < KVS_BLOCK; j++) put_le32(t + 4 * j, (uint32_t)s->tokens[i * KVS_BLOCK + j]);
    uint8_t *r = st->encrypted ? p + 4 * KVS_BLOCK : p;
    for (int l = 0; l < s->kv.n_layers; l++) {
        memcpy(r, s->kv.k[l] + i * KVS_BLOCK * kd, KVS_BLOCK * rb), r += KVS_BLOCK * rb;
        memcpy(r, s->kv.v[l] + i * KVS_BLOCK * kd, KVS_BLOCK * rb), r += KVS_BLOCK * rb;
    }
    if (st->encrypted) {
        randombytes_buf(b + BLK_HDR, NONCE);
        crypto_aead_xchacha20poly1305_ietf_encrypt(p, NULL, p, 4 * KVS_BLOCK + KVS_BLOCK * P->rowbytes, b, BLK_HDR,
                                                   NULL, b + BLK_HDR, st->key);
    }
    sum(b + n - HASH, b, n - HASH);
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    *strrchr(dir, '/') = 0;
    int fresh = mkdir(dir, 0700) == 0;
    if (!fresh && errno != EEXIST) return seterr(err, errlen, "%s: %s", dir, strerror(errno));
    if (fresh) sync_parent(dir);
    int e = put_file(st, path, b, n, 0);
    return e ? seterr(err, errlen, "%s: write: %s (block %s)", P->name, strerror(e), hex) : 0;
}

/* ---- the session in memory ---- */

static int tokens_reserve(session *s, size_t n) {
    return grow(&s->tokens, &s->tokens_cap, n, sizeof *s->tokens);
}

static int rows_reserve(session *s, size_t n) {
    if (n <= s->kv.cap) return 0;
    size_t c = s->kv.cap ? s->kv.cap : 256;
    while (c < n) c *= 2;
    return kv_reserve(&s->kv, c);
}

static int names_reserve(kvs_sess *P, size_t n) { return grow(&P->names, &P->names_cap, n, HASH); }

static void header_make(uint8_t h[SES_HDR], const uint8_t fp[32], int n_layers, size_t kv_dim, size_t dim, int enc) {
    memset(h, 0, SES_HDR);
    memcpy(h, SES_MAGIC, 8);
    put_le32(h + 8, FORMAT);
    put_le32(h + 12, KV_F32);
    memcpy(h + 16, fp, 32);
    put_le32(h + 48, (uint32_t)n_layers);
    put_le32(h + 52, (uint32_t)kv_dim);
    put_le32(h + 56, (uint32_t)dim);
    put_le32(h + 60, enc ? F_ENCRYPTED : 0);
    sum(h + SES_HDR - HASH, h, SES_HDR - HASH);
}

/* Decrypt a record payload (nonce, box) into P->scratch; the kind and the session header
 * are its additional data, so a box cannot be moved to another kind or session. */
static const uint8_t *open_box(kvs_sess *P, uint32_t kind, const uint8_t *p, size_t len, char *err, size_t errlen) {
    if (!P->st->encrypted) return p;
    uint8_t ad[4 + HASH];
    put_le32(ad, kind);
    memcpy(ad + 4, P->hdr + SES_HDR - HASH, HASH);
    if (scratch(P, len) < 0) return seterr(err, errlen, "%s: out of memory", P->name), NULL;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(P->scratch, NULL, NULL, p + NONCE, len - NONCE, ad, sizeof ad, p,
                                                   P->st->key) < 0)
        return seterr(err, errlen, "%s: a record cannot be decrypted (wrong key or corrupt)", P->name), NULL;
    return P->scratch;
}

/* The blocks of a load, shared by its threads: each takes the next block index. */
typedef struct {
    kvs_sess *P;
    session *s;
    const logstate *ls;
    int blocks;
    size_t next;        /* the next block to load (atomic) */
    pthread_mutex_t mu; /* guards bad and err */
    size_t bad;         /* lowest block that failed, SIZE_MAX if none */
    char err[400];
} loadjob;

static void *load_blocks(void *arg) {
    loadjob *j = arg;
    const logstate *ls = j->ls;
    uint8_t *scr = NULL;
    size_t cap = 0, n = ls->n;
    for (;;) {
        size_t i = __atomic_fetch_add(&j->next, 1, __ATOMIC_RELAXED);
        if (i * KVS_BLOCK >= n) break;
        if (!uses_block(ls, i) || (!j->blocks && whole_block(ls, i))) continue;
        size_t to = n - i * KVS_BLOCK < KVS_BLOCK ? n - i * KVS_BLOCK : KVS_BLOCK;
        /* a partial block (after a TRIM) supplies only its positions not re-appended since */
        size_t from = 0;
        while (from < to && ls->src[i * KVS_BLOCK + from]) from++;
        size_t stop = from;
        while (stop < to && !ls->src[i * KVS_BLOCK + stop]) stop++;
        char e[400];
        if (block_load(j->P->st, &scr, &cap, j->s, ls->bname[i], i ? ls->bname[i - 1] : j->P->h0, i * KVS_BLOCK, from,
                       stop, e, sizeof e)) {
            pthread_mutex_lock(&j->mu);
            if (i < j->bad) j->bad = i, snprintf(j->err, sizeof j->err, "%s", e); /* the first bad one, whatever the timing */
            pthread_mutex_unlock(&j->mu);
        }
    }
    free(scr);
    return NULL;
}

/* Pass 2: copy every position's token and rows, and the hidden state, into s. With
 * blocks 0, whole blocks are left unread (fork and export need only the tail). */
static int log_load(kvs_sess *P, session *s, const uint8_t *d, const logstate *ls, int blocks, char *err,
                    size_t errlen) {
    size_t n = ls->n, kd = ls->kv_dim, rb = kd * sizeof(float);
    if (rows_reserve(s, n + 1) < 0 || tokens_reserve(s, n + 1) < 0 || names_reserve(P, ls->k + 1) < 0)
        return seterr(err, errlen, "%s: out of memory for %zu positions", P->name, n);
    if (ls->k) memcpy(P->names, ls->bname, ls->k * HASH);
    P->k = P->log_k = ls->k;
    loadjob j = {.P = P, .s = s, .ls = ls, .blocks = blocks, .bad = SIZE_MAX};
    pthread_mutex_init(&j.mu, NULL);
    /* blocks are independent and their checksums cost more than reading them: one
     * thread per core (up to 16), each with its own buffer */
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    size_t nt = (size_t)(cores < 1 ? 1 : cores > 16 ? 16 : cores), nblk = (n + KVS_BLOCK - 1) / KVS_BLOCK;
    if (nt > nblk / 4) nt = nblk / 4 ? nblk / 4 : 1;
    pthread_t th[16];
    size_t started = 0;
    for (; started + 1 < nt; started++)
        if (pthread_create(&th[started], NULL, load_blocks, &j)) break;
    load_blocks(&j);
    for (size_t t = 0; t < started; t++) pthread_join(th[t], NULL);
    pthread_mutex_destroy(&j.mu);
    if (j.bad != SIZE_MAX) return seterr(err, errlen, "%s: %s", P->name, j.err);
    for (size_t p = 0; p < n;) {
        if (!ls->src[p]) {
            p++;
            continue;
        }
        size_t off = ls->src[p], len = le32(d + off - 4);
        const uint8_t *r = open_box(P, R_TAIL, d + off, len, err, errlen);
        if (!r) return -1;
        size_t count = le32(r);
        if (count != (len - (ls->encrypted ? NONCE + MAC : 0) - 4) / (4 + ls->rowbytes))
            return seterr(err, errlen, "%s: TAIL record at offset %zu: count %zu does not match its length", P->name,
                          off - REC_HDR, count);
        const uint8_t *tok = r + 4, *rows = tok + 4 * count;
        kv_written(&s->kv, p);
        for (; p < n && ls->src[p] == off; p++) {
            size_t j = ls->idx[p];
            s->tokens[p] = (int32_t)le32(tok + 4 * j);
            for (int l = 0; l < ls->n_layers; l++) {
                memcpy(s->kv.k[l] + p * kd, rows + ((size_t)2 * l * count + j) * rb, rb);
                memcpy(s->kv.v[l] + p * kd, rows + ((size_t)(2 * l + 1) * count + j) * rb, rb);
            }
        }
    }
    s->kv.n = s->committed = n;
    if (ls->hidden) {
        const uint8_t *h = open_box(P, R_HIDDEN, d + ls->hidden, le32(d + ls->hidden - 4), err, errlen);
        if (!h) return -1;
        memcpy(P->hidden_buf, h, ls->dim * sizeof(float));
        s->hidden = P->hidden_buf;
        P->hidden_n = n;
    }
    return 0;
}

/* ---- records and the compact image ---- */

/* Start a record at the end of b; SIZE_MAX if out of memory. */
static size_t rec_begin(kvs_sess *P, buf *b, uint32_t kind) {
    size_t at = b->len;
    uint8_t h[REC_HDR + NONCE] = {0};
    put_le32(h, kind);
    return buf_append(b, h, REC_HDR + (P->st->encrypted ? NONCE : 0)) < 0 ? SIZE_MAX : at;
}

/* Seal the record begun at `at`: encrypt its payload if the store is encrypted, fill in
 * its length, append its checksum. -1 if out of memory (anywhere since rec_begin). */
static int rec_end(kvs_sess *P, buf *b, size_t at, int failed) {
    if (failed || at == SIZE_MAX || buf_reserve(b, MAC + HASH) < 0) return -1;
    uint8_t *r = (uint8_t *)b->data + at;
    size_t len = b->len - at - REC_HDR;
    if (P->st->encrypted) {
        uint8_t ad[4 + HASH];
        put_le32(ad, le32(r) & ~R_MORE);
        memcpy(ad + 4, P->hdr + SES_HDR - HASH, HASH);
        uint8_t *nonce = r + REC_HDR, *m = nonce + NONCE;
        randombytes_buf(nonce, NONCE);
        crypto_aead_xchacha20poly1305_ietf_encrypt(m, NULL, m, len - NONCE, ad, sizeof ad, NULL, nonce, P->st->key);
        len += MAC;
    }
    put_le32(r + 4, (uint32_t)len);
    sum(r + REC_HDR + len, r, REC_HDR + len);
    b->len = at + REC_HDR + len + HASH;
    return 0;
}

static int rec_blocks(kvs_sess *P, buf *b, size_t k, int more) {
    size_t at = b->len;
    uint8_t h[REC_HDR + 4];
    put_le32(h, R_BLOCKS | (more ? R_MORE : 0));
    put_le32(h + 4, (uint32_t)(4 + k * HASH));
    put_le32(h + 8, (uint32_t)k);
    int bad = buf_append(b, h, sizeof h) < 0 || buf_append(b, P->names, k * HASH) < 0 || buf_reserve(b, HASH) < 0;
    if (bad) return -1;
    sum((uint8_t *)b->data + b->len, (uint8_t *)b->data + at, b->len - at);
    b->len += HASH;
    return 0;
}

static int rec_trim(buf *b, size_t n, int more) {
    uint8_t r[REC_HDR + 8 + HASH];
    put_le32(r, R_TRIM | (more ? R_MORE : 0));
    put_le32(r + 4, 8);
    put_le64(r + 8, n);
    sum(r + REC_HDR + 8, r, REC_HDR + 8);
    return buf_append(b, r, sizeof r);
}

static int rec_tail(kvs_sess *P, buf *b, const session *s, size_t from, size_t count, int more) {
    size_t at = rec_begin(P, b, R_TAIL | (more ? R_MORE : 0)), kd = s->kv.kv_dim, rb = kd * sizeof(float);
    if (at == SIZE_MAX || buf_reserve(b, 4 + 4 * count + count * P->rowbytes) < 0) return -1;
    uint8_t *q = (uint8_t *)b->data + b->len;
    put_le32(q, (uint32_t)count), q += 4;
    for (size_t j = 0; j < count; j++) put_le32(q, (uint32_t)s->tokens[from + j]), q += 4;
    for (int l = 0; l < s->kv.n_layers; l++) {
        memcpy(q, s->kv.k[l] + from * kd, count * rb), q += count * rb;
        memcpy(q, s->kv.v[l] + from * kd, count * rb), q += count * rb;
    }
    b->len = (size_t)(q - (uint8_t *)b->data);
    return rec_end(P, b, at, 0);
}

static int rec_hidden(kvs_sess *P, buf *b, const session *s) {
    size_t at = rec_begin(P, b, R_HIDDEN);
    return rec_end(P, b, at, buf_append(b, s->hidden, s->dim * sizeof(float)) < 0);
}

static size_t rec_size(const kvs_sess *P, size_t payload, int boxed) {
    return REC_HDR + payload + (boxed && P->st->encrypted ? NONCE + MAC : 0) + HASH;
}

/* Bytes of the compact image of s: header, BLOCKS, TAIL, HIDDEN. */
static size_t image_size(const kvs_sess *P, const session *s) {
    size_t z = SES_HDR + (P->k ? rec_size(P, 4 + P->k * HASH, 0) : 0);
    for (size_t p = P->k * KVS_BLOCK; p < s->kv.n; p += REC_MAX) {
        size_t c = s->kv.n - p < REC_MAX ? s->kv.n - p : REC_MAX;
        z += rec_size(P, 4 + c * (4 + P->rowbytes), 1);
    }
    if (s->hidden) z += rec_size(P, s->dim * sizeof(float), 1);
    return z;
}

/* Write the compact image of s to fd, in chunks through P->out. Returns 0 or an errno. */
static int image_write(kvs_sess *P, const session *s, int fd) {
    buf *b = &P->out;
    b->len = 0;
    long long off = 0;
    size_t n = s->kv.n, from = P->k * KVS_BLOCK;
    int hidden = s->hidden != NULL;
    if (buf_append(b, P->hdr, SES_HDR) < 0 || (P->k && rec_blocks(P, b, P->k, from < n || hidden) < 0)) return ENOMEM;
    for (size_t p = from; p < n; p += REC_MAX) {
        size_t c = n - p < REC_MAX ? n - p : REC_MAX;
        if (rec_tail(P, b, s, p, c, p + c < n || hidden) < 0) return ENOMEM;
        if (b->len > ((size_t)8 << 20)) {
            int e = io_write(P->st, fd, b->data, b->len, off);
            if (e) return e;
            off += (long long)b->len, b->len = 0;
        }
    }
    if (hidden && rec_hidden(P, b, s) < 0) return ENOMEM;
    int e = io_write(P->st, fd, b->data, b->len, off);
    b->len = 0;
    return e;
}

/* Write the compact image of s as a new file: tmp/, fsync, then rename over (or link to,
 * when no_clobber) final, fsync the directory. Returns 0 or an errno. */
static int image_put(kvs_sess *P, const session *s, const char *final, int no_clobber) {
    kvs_store *st = P->st;
    char tmp[PATH_MAX], tag[64];
    snprintf(tag, sizeof tag, "%ld.%u.kvs", (long)getpid(), st->tmp_seq++);
    if (path_of(tmp, st, "%s/tmp/%s%s", tag, "") < 0) return ENAMETOOLONG;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return errno;
    int e = image_write(P, s, fd);
    if (!e) e = io_sync(st, fd, 0);
    if (close(fd) < 0 && !e) e = errno;
    if (!e && (no_clobber ? link(tmp, final) : rename(tmp, final)) < 0) e = errno;
    if (e || no_clobber) unlink(tmp);
    if (!e && sync_parent(final) < 0) e = errno;
    return e;
}

/* Rewrite the session file compactly and reopen it. A failure leaves the old file, which
 * is as good (the commit before this was already durable), so it is not an error. */
static void compact(kvs_sess *P, const session *s) {
    char path[PATH_MAX];
    if (path_of(path, P->st, "%s/sessions/%s.kvs%s", P->name, "") < 0) return;
    if (image_put(P, s, path, 0)) return;
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) return; /* cannot happen short of a vanished dir: keep appending to the old inode */
    close(P->fd);
    P->fd = fd;
    P->end = P->live = image_size(P, s);
}

/* ---- sessions ---- */

/* ---- deferred sync (sess_defer_sync) ----
 * A commit's fdatasync runs on the session's own thread while the caller goes on (decode
 * computes the next token); the next commit, sess_sync and sess_close wait for it. The
 * write itself stays in the commit, so a killed process loses nothing it committed, and a
 * torn or unsynced commit still opens at the commit before (the log's rule). */
typedef struct syncer {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int fd, pending, quit, err, hook_fail; /* hook_fail: the QWEN_KVS_FAIL_AFTER hook says ENOSPC */
} syncer;

static void *sync_main(void *arg) {
    syncer *y = arg;
    pthread_mutex_lock(&y->mu);
    for (;;) {
        while (!y->pending && !y->quit) pthread_cond_wait(&y->cv, &y->mu);
        if (!y->pending) break; /* quit, nothing in flight */
        int fd = y->fd, hook = y->hook_fail;
        pthread_mutex_unlock(&y->mu);
        int e = hook ? ENOSPC : fdatasync(fd) < 0 ? errno : 0;
        pthread_mutex_lock(&y->mu);
        if (e && !y->err) y->err = e;
        y->pending = 0;
        pthread_cond_broadcast(&y->cv);
    }
    pthread_mutex_unlock(&y->mu);
    return NULL;
}

/* Wait for the sync in flight, if any; its error (0 if none), reported once. */
static int sync_wait(kvs_sess *P) {
    syncer *y = P->sy;
    if (!y) return 0;
    pthread_mutex_lock(&y->mu);
    while (y->pending) pthread_cond_wait(&y->cv, &y->mu);
    int e = y->err;
    y->err = 0;
    pthread_mutex_unlock(&y->mu);
    return e;
}

/* hook_fail: the testing hook would have failed this commit's io_sync (as io_sync decides
 * it, when the commit's write is done) */
static void sync_start(kvs_sess *P, int hook_fail) {
    syncer *y = P->sy;
    pthread_mutex_lock(&y->mu);
    y->fd = P->fd;
    y->hook_fail = hook_fail;
    y->pending = 1;
    pthread_cond_signal(&y->cv);
    pthread_mutex_unlock(&y->mu);
}

/* Stop the thread after its last sync. */
static void sync_stop(kvs_sess *P) {
    syncer *y = P->sy;
    if (!y) return;
    pthread_mutex_lock(&y->mu);
    y->quit = 1;
    pthread_cond_signal(&y->cv);
    pthread_mutex_unlock(&y->mu);
    pthread_join(y->th, NULL);
    pthread_mutex_destroy(&y->mu);
    pthread_cond_destroy(&y->cv);
    free(y);
    P->sy = NULL;
}

int sess_defer_sync(session *s, char *err, size_t errlen) {
    kvs_sess *P = s->priv;
    if (P->mode != SESS_WRITE) return seterr(err, errlen, "%s: opened read-only", P->name);
    if (P->sy) return 0;
    syncer *y = calloc(1, sizeof *y);
    if (!y) return seterr(err, errlen, "%s: out of memory", P->name);
    pthread_mutex_init(&y->mu, NULL);
    pthread_cond_init(&y->cv, NULL);
    int e = pthread_create(&y->th, NULL, sync_main, y);
    if (e) {
        pthread_mutex_destroy(&y->mu);
        pthread_cond_destroy(&y->cv);
        free(y);
        return seterr(err, errlen, "%s: sync thread: %s", P->name, strerror(e));
    }
    P->sy = y;
    return 0;
}

int sess_sync(session *s, char *err, size_t errlen) {
    kvs_sess *P = s->priv;
    int e = sync_wait(P);
    return e ? seterr(err, errlen, "%s: write: %s", P->name, strerror(e)) : 0;
}

static void priv_free(kvs_sess *P) {
    if (!P) return;
    sync_stop(P); /* the last commit's sync done before its file is closed */
    if (P->fd >= 0) close(P->fd);
    if (P->lock_fd >= 0) close(P->lock_fd); /* releases the flock */
    if (P->gc_fd >= 0) close(P->gc_fd);
    free(P->names);
    free(P->hidden_buf);
    buf_free(&P->out);
    free(P->scratch);
    free(P);
}

void sess_close(session *s) {
    kv_free(&s->kv);
    free(s->tokens);
    priv_free(s->priv);
    memset(s, 0, sizeof *s);
}

/* Open the session file at path read-write, creating it (header only) if missing. */
static int create_or_open(kvs_sess *P, const char *path, const model *m, char *err, size_t errlen) {
    for (int tries = 0; tries < 2; tries++) {
        P->fd = open(path, O_RDWR | O_CLOEXEC);
        if (P->fd >= 0) return 0;
        if (errno != ENOENT) return seterr(err, errlen, "%s: %s", path, strerror(errno));
        if (!m) return seterr(err, errlen, "%s: no such session", P->name);
        const qwen_config *c = &m->cfg;
        header_make(P->hdr, m->fingerprint, c->n_layers, (size_t)c->n_kv_heads * (size_t)c->head_dim,
                    (size_t)c->dim, P->st->encrypted);
        int e = put_file(P->st, path, P->hdr, SES_HDR, 1);
        if (e && e != EEXIST) return seterr(err, errlen, "%s: create: %s", P->name, strerror(e));
    }
    return seterr(err, errlen, "%s: cannot create", P->name);
}

static int take_lock(kvs_sess *P, char *err, size_t errlen) {
    char path[PATH_MAX];
    path_of(path, P->st, "%s/sessions/%s.lock%s", P->name, "");
    P->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (P->lock_fd < 0) return seterr(err, errlen, "%s: %s", path, strerror(errno));
    while (flock(P->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        if (errno == EINTR) continue;
        if (errno == EWOULDBLOCK) return seterr(err, errlen, "session %s is in use by another process", P->name);
        return seterr(err, errlen, "%s: %s", path, strerror(errno));
    }
    return 0;
}

/* Shared by sess_open and the store-level commands: open name, read and replay its log,
 * load rows (all of them, or with blocks 0 only the tail's). */
static int open_impl(kvs_store *st, const char *name, const model *m, session *s, int mode, int blocks, char *err,
                     size_t errlen) {
    memset(s, 0, sizeof *s);
    if (!valid_name(name)) return bad_name(name, err, errlen);
    kvs_sess *P = calloc(1, sizeof *P);
    if (!P) return seterr(err, errlen, "%s: out of memory", name);
    *P = (kvs_sess){.st = st, .mode = mode, .fd = -1, .lock_fd = -1, .gc_fd = -1, .force_from = SIZE_MAX,
                    .trim_to = SIZE_MAX, .hidden_n = SIZE_MAX};
    snprintf(P->name, sizeof P->name, "%s", name);
    s->priv = P;
    char path[PATH_MAX];
    uint8_t *d = NULL;
    size_t dcap = 0, size = 0;
    logstate ls = {0};
    int rc = -1;
    if (path_of(path, st, "%s/sessions/%s.kvs%s", name, "") < 0) {
        seterr(err, errlen, "%s: path too long", name);
        goto done;
    }
    if (mode == SESS_WRITE) {
        char p[PATH_MAX];
        path_of(p, st, "%s/gc.lock%s%s", "", "");
        if (take_lock(P, err, errlen) < 0) goto done;
        if ((P->gc_fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0) {
            seterr(err, errlen, "%s: %s", p, strerror(errno));
            goto done;
        }
        if (create_or_open(P, path, m, err, errlen) < 0) goto done;
    }
    int r = slurp(path, &d, &dcap, &size);
    if (r) {
        seterr(err, errlen, r > 0 ? "%s: no such session" : "%s: %s", name, strerror(errno));
        goto done;
    }
    if (log_parse(name, d, size, &ls, err, errlen) < 0) goto done;
    if (m && memcmp(d + 16, m->fingerprint, 32)) {
        seterr(err, errlen, "%s: " KVS_OTHER_MODEL, name);
        goto done;
    }
    if (m && ((size_t)m->cfg.n_layers != (size_t)ls.n_layers ||
              (size_t)m->cfg.n_kv_heads * (size_t)m->cfg.head_dim != ls.kv_dim || (size_t)m->cfg.dim != ls.dim)) {
        seterr(err, errlen, "%s: shape (%d layers, kv_dim %zu, dim %zu) does not match the model", name,
               ls.n_layers, ls.kv_dim, ls.dim);
        goto done;
    }
    if (ls.encrypted != st->encrypted) {
        seterr(err, errlen, "%s: %s, but the store was opened %s a key", name,
               ls.encrypted ? "encrypted" : "not encrypted", st->encrypted ? "with" : "without");
        goto done;
    }
    memcpy(P->hdr, d, SES_HDR);
    memcpy(s->fingerprint, d + 16, 32);
    P->rowbytes = ls.rowbytes;
    s->dim = ls.dim;
    chain_root(P->h0, s->fingerprint);
    if (kv_alloc(&s->kv, ls.n_layers, ls.kv_dim, ls.n + 256) < 0 || !(P->hidden_buf = malloc(ls.dim * sizeof(float)))) {
        seterr(err, errlen, "%s: out of memory for %zu positions", name, ls.n);
        goto done;
    }
    if (log_load(P, s, d, &ls, blocks, err, errlen) < 0) goto done;
    P->end = ls.end;
    P->live = image_size(P, s);
    if (mode == SESS_WRITE && size > ls.end) {
        /* the remains of a commit that never completed: cut them so appends follow the last good record */
        if (ftruncate(P->fd, (off_t)ls.end) < 0 || fdatasync(P->fd) < 0) {
            seterr(err, errlen, "%s: truncate: %s", name, strerror(errno));
            goto done;
        }
    }
    rc = 0;
done:
    log_free(&ls);
    free(d);
    if (rc < 0) sess_close(s);
    return rc;
}

int sess_open(kvs_store *st, const char *name, const model *m, session *s, int mode, char *err,
              size_t errlen) {
    if (mode != SESS_READ && mode != SESS_WRITE) return seterr(err, errlen, "%s: bad open mode %d", name, mode);
    return open_impl(st, name, m, s, mode, 1, err, errlen);
}

int sess_push_tokens(session *s, const int32_t *ids, size_t n, char *err, size_t errlen) {
    if (n > s->kv.n) return seterr(err, errlen, "session: %zu tokens but only %zu cached positions", n, s->kv.n);
    if (tokens_reserve(s, s->kv.n + 1) < 0) return seterr(err, errlen, "session: out of memory");
    if (n) memcpy(s->tokens + s->kv.n - n, ids, n * sizeof *ids); /* ids may be NULL when n is 0 */
    return 0;
}

int sess_set_hidden(session *s, const float *h, char *err, size_t errlen) {
    (void)err, (void)errlen;
    kvs_sess *P = s->priv;
    memcpy(P->hidden_buf, h, s->dim * sizeof(float));
    s->hidden = P->hidden_buf;
    P->hidden_n = s->kv.n;
    return 0;
}

int sess_trim(session *s, size_t n, char *err, size_t errlen) {
    kvs_sess *P = s->priv;
    if (n > s->kv.n) return seterr(err, errlen, "%s: cannot trim to %zu: it holds %zu positions", P->name, n, s->kv.n);
    s->kv.n = n;
    kv_written(&s->kv, n);
    if (n < P->trim_to) P->trim_to = n;
    if (P->k > n / KVS_BLOCK) P->k = n / KVS_BLOCK;
    if (P->log_k > P->k) P->log_k = P->k;
    if (P->hidden_n != n) s->hidden = NULL, P->hidden_n = SIZE_MAX;
    return 0;
}

/* Name the full blocks after the sealed ones whose ids are all known (a position fed as a
 * bare embedding has no id, and neither it nor anything after it can be content-named). */
static int seal_names(kvs_sess *P, const session *s, size_t upto) {
    if (names_reserve(P, upto / KVS_BLOCK + 1) < 0) return -1;
    while ((P->k + 1) * KVS_BLOCK <= upto) {
        const int32_t *t = s->tokens + P->k * KVS_BLOCK;
        for (int j = 0; j < KVS_BLOCK; j++)
            if (t[j] < 0) return 0;
        chain_next(P->names[P->k], P->k ? P->names[P->k - 1] : P->h0, t);
        P->k++;
    }
    return 0;
}

long sess_reuse_prefix(session *s, const int32_t *ids, size_t n, char *err, size_t errlen) {
    kvs_sess *P = s->priv;
    size_t base = s->kv.n;
    if (base % KVS_BLOCK) return 0;
    if (seal_names(P, s, base) < 0) return seterr(err, errlen, "%s: out of memory", P->name);
    if (P->k * KVS_BLOCK != base) return 0; /* an unnamed position before: no chain to walk */
    size_t got = 0;
    while (n - got >= KVS_BLOCK) {
        for (int j = 0; j < KVS_BLOCK; j++)
            if (ids[got + j] < 0) return (long)got;
        if (rows_reserve(s, base + got + KVS_BLOCK) < 0 || tokens_reserve(s, base + got + KVS_BLOCK) < 0 ||
            names_reserve(P, P->k + 1) < 0)
            return seterr(err, errlen, "%s: out of memory", P->name);
        uint8_t h[HASH];
        const uint8_t *parent = P->k ? P->names[P->k - 1] : P->h0;
        chain_next(h, parent, ids + got);
        char e2[256];
        int r = block_load(P->st, &P->scratch, &P->scratch_cap, s, h, parent, base + got, 0, KVS_BLOCK, e2, sizeof e2);
        if (r) {
            /* missing: compute from here. Corrupt: compute, and let the commit replace it. */
            if (r < 0 && P->force_from > P->k) P->force_from = P->k;
            break;
        }
        char path[PATH_MAX];
        if (block_path(path, P->st, h) == 0) utimensat(AT_FDCWD, path, NULL, 0); /* recency for gc */
        memcpy(P->names[P->k++], h, HASH);
        got += KVS_BLOCK;
        s->kv.n += KVS_BLOCK;
    }
    return (long)got;
}

int sess_commit(session *s, char *err, size_t errlen) {
    kvs_sess *P = s->priv;
    if (P->mode != SESS_WRITE) return seterr(err, errlen, "%s: opened read-only", P->name);
    /* the last commit's deferred sync: its records are in the file whatever it says */
    int e0 = sync_wait(P);
    if (e0) return seterr(err, errlen, "%s: write: %s", P->name, strerror(e0));
    size_t n = s->kv.n;
    if (n < s->committed && n < P->trim_to) sess_trim(s, n, err, errlen); /* kv.n lowered by hand */
    size_t trim = P->trim_to < s->committed ? P->trim_to : SIZE_MAX;
    size_t k0 = P->k, log_k0 = P->log_k;
    int hidden = s->hidden && P->hidden_n == n;
    buf *b = &P->out;
    b->len = 0;
    while (flock(P->gc_fd, LOCK_SH) < 0)
        if (errno != EINTR) return seterr(err, errlen, "%s: gc.lock: %s", P->name, strerror(errno));
    int rc = -1, e = 0, hook_fail = 0;
    if (seal_names(P, s, n) < 0) goto oom;
    for (size_t i = P->log_k; i < P->k; i++)
        if (block_put(P, s, i, err, errlen) < 0) goto fail;
    size_t from = trim != SIZE_MAX ? trim : s->committed;
    if (from < P->k * KVS_BLOCK) from = P->k * KVS_BLOCK;
    int blocks = P->k != P->log_k, rest = from < n || hidden; /* R_MORE on all but the last */
    if (trim != SIZE_MAX && rec_trim(b, trim, blocks || rest) < 0) goto oom;
    if (blocks && rec_blocks(P, b, P->k, rest) < 0) goto oom;
    for (size_t p = from; p < n; p += REC_MAX) {
        size_t c = n - p < REC_MAX ? n - p : REC_MAX;
        if (rec_tail(P, b, s, p, c, p + c < n || hidden) < 0) goto oom;
    }
    if (hidden && rec_hidden(P, b, s) < 0) goto oom;
    if (b->len) {
        e = io_write(P->st, P->fd, b->data, b->len, (long long)P->end);
        hook_fail = P->st->fail_after >= 0 && P->st->written >= (size_t)P->st->fail_after;
        if (!e && !P->sy) e = io_sync(P->st, P->fd, 1);
        if (e) {
            /* the session stays at its last commit: cut what part of this one reached the file */
            if (ftruncate(P->fd, (off_t)P->end) == 0) fdatasync(P->fd);
            seterr(err, errlen, "%s: write: %s", P->name, strerror(e));
            goto fail;
        }
    }
    int wrote = b->len > 0;
    P->end += b->len;
    s->committed = n;
    P->log_k = P->k;
    P->trim_to = SIZE_MAX;
    P->force_from = SIZE_MAX;
    if (!hidden) s->hidden = NULL, P->hidden_n = SIZE_MAX;
    P->live = image_size(P, s);
    /* Rewrite when dead records (sealed tail, old hidden states) outweigh the live ones,
     * or a trim left positions that only a dropped block supplies. */
    size_t dead = P->end - P->live, floor = (size_t)64 << 10;
    if ((trim != SIZE_MAX && trim < log_k0 * KVS_BLOCK) || dead > (P->live > floor ? P->live : floor)) compact(P, s);
    if (wrote && P->sy) sync_start(P, hook_fail); /* (after compact, which may have replaced P->fd) */
    rc = 0;
    goto unlock;
oom:
    seterr(err, errlen, "%s: out of memory", P->name);
fail:
    P->k = k0;
    P->log_k = log_k0;
unlock:
    b->len = 0;
    flock(P->gc_fd, LOCK_UN);
    return rc;
}

/* ---- store-level operations (the kvstore program) ---- */

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int kvs_list(kvs_store *st, char ***names, size_t *count, char *err, size_t errlen) {
    char p[PATH_MAX];
    path_of(p, st, "%s/sessions%s%s", "", "");
    *names = NULL, *count = 0;
    DIR *d = opendir(p);
    if (!d) return seterr(err, errlen, "%s: %s", p, strerror(errno));
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 5 || strcmp(e->d_name + l - 4, ".kvs") || e->d_name[0] == '.') continue;
        char *nm = strndup(e->d_name, l - 4);
        if (!nm || grow(names, &cap, *count + 1, sizeof **names) < 0) {
            free(nm);
            closedir(d);
            kvs_list_free(*names, *count);
            return seterr(err, errlen, "%s: out of memory", p);
        }
        (*names)[(*count)++] = nm;
    }
    closedir(d);
    if (*count) qsort(*names, *count, sizeof **names, cmp_str); /* (names may be NULL when empty) */
    return 0;
}

void kvs_list_free(char **names, size_t count) {
    for (size_t i = 0; i < count; i++) free(names[i]);
    free(names);
}

/* Read session name's log (pass 1 only). d is its bytes, owned by the caller after. */
static int read_log(kvs_store *st, const char *name, uint8_t **d, size_t *size, logstate *ls, struct stat *sb,
                    char *err, size_t errlen) {
    char path[PATH_MAX];
    size_t cap = 0;
    *d = NULL;
    if (!valid_name(name)) return bad_name(name, err, errlen);
    if (path_of(path, st, "%s/sessions/%s.kvs%s", name, "") < 0) return seterr(err, errlen, "%s: path too long", name);
    int r = slurp(path, d, &cap, size);
    if (r) return seterr(err, errlen, r > 0 ? "%s: no such session" : "%s: %s", name, strerror(errno));
    if (sb && stat(path, sb) < 0) memset(sb, 0, sizeof *sb);
    return log_parse(name, *d, *size, ls, err, errlen);
}

int kvs_stat(kvs_store *st, const char *name, kvs_info *in, char *err, size_t errlen) {
    uint8_t *d;
    size_t size;
    logstate ls;
    struct stat sb;
    memset(in, 0, sizeof *in);
    if (read_log(st, name, &d, &size, &ls, &sb, err, errlen) < 0) {
        free(d);
        return -1;
    }
    snprintf(in->name, sizeof in->name, "%s", name);
    memcpy(in->fingerprint, d + 16, 32);
    in->n_layers = ls.n_layers;
    in->kv_dim = ls.kv_dim;
    in->dim = ls.dim;
    in->n = ls.n;
    in->blocks = ls.k;
    in->tail = ls.n - ls.k * KVS_BLOCK;
    in->has_hidden = ls.hidden != 0;
    in->encrypted = ls.encrypted;
    in->file_bytes = (size_t)sb.st_size;
    in->garbage = size - ls.end;
    in->mtime = (int64_t)sb.st_mtime;
    for (size_t i = 0; i * KVS_BLOCK < ls.n; i++) {
        char p[PATH_MAX];
        struct stat bs;
        if (uses_block(&ls, i) && block_path(p, st, ls.bname[i]) == 0 && stat(p, &bs) == 0)
            in->block_bytes += (size_t)bs.st_size;
    }
    log_free(&ls);
    free(d);
    return 0;
}

int kvs_trim(kvs_store *st, const char *name, size_t n, char *err, size_t errlen) {
    session s;
    if (sess_open(st, name, NULL, &s, SESS_WRITE, err, errlen) < 0) return -1;
    int rc = sess_trim(&s, n, err, errlen) < 0 || sess_commit(&s, err, errlen) < 0 ? -1 : 0;
    sess_close(&s);
    return rc;
}

/* Write session `name`'s compact image under a new name (fork) or into an export. */
int kvs_fork(kvs_store *st, const char *name, const char *newname, char *err, size_t errlen) {
    if (!valid_name(newname)) return bad_name(newname, err, errlen);
    session s;
    if (open_impl(st, name, NULL, &s, SESS_READ, 0, err, errlen) < 0) return -1;
    char path[PATH_MAX];
    int rc = -1, gfd = gc_lock(st, LOCK_SH); /* its blocks must outlive a gc until NEW names them */
    if (gfd < 0) {
        seterr(err, errlen, "%s/gc.lock: %s", st->dir, strerror(errno));
        goto done;
    }
    if (path_of(path, st, "%s/sessions/%s.kvs%s", newname, "") < 0) {
        seterr(err, errlen, "%s: path too long", newname);
        goto done;
    }
    int e = image_put(s.priv, &s, path, 1);
    if (e == EEXIST) seterr(err, errlen, "%s: session exists", newname);
    else if (e) seterr(err, errlen, "%s: write: %s", newname, strerror(e));
    else rc = 0;
done:
    if (gfd >= 0) close(gfd);
    sess_close(&s);
    return rc;
}

int kvs_rm(kvs_store *st, const char *name, char *err, size_t errlen) {
    if (!valid_name(name)) return bad_name(name, err, errlen);
    kvs_sess P = {.st = st, .lock_fd = -1};
    snprintf(P.name, sizeof P.name, "%s", name);
    char path[PATH_MAX];
    int rc = take_lock(&P, err, errlen);
    /* the lock file stays: unlinking it under a waiting opener would let two writers in */
    if (rc == 0 && path_of(path, st, "%s/sessions/%s.kvs%s", name, "") == 0 && unlink(path) < 0)
        rc = seterr(err, errlen, errno == ENOENT ? "%s: no such session" : "%s: %s", name, strerror(errno));
    if (rc == 0) sync_parent(path);
    if (P.lock_fd >= 0) close(P.lock_fd);
    return rc;
}

/* A block file found in blocks/. */
typedef struct {
    uint8_t name[HASH];
    size_t size;
    int64_t mtime;
    int referenced;
} blockfile;

static int cmp_name(const void *a, const void *b) { return memcmp(a, b, HASH); }

static int cmp_age(const void *a, const void *b) {
    const blockfile *x = a, *y = b;
    return x->mtime < y->mtime ? -1 : x->mtime > y->mtime;
}

/* Every block file in the store, sorted by name. Files whose names are not block names
 * (a stray temp) count as unreferenced with an all-zero name and are not listed. */
static int list_blocks(kvs_store *st, blockfile **out, size_t *count, char *err, size_t errlen) {
    char p[PATH_MAX];
    size_t cap = 0;
    *out = NULL, *count = 0;
    path_of(p, st, "%s/blocks%s%s", "", "");
    DIR *top = opendir(p);
    if (!top) return seterr(err, errlen, "%s: %s", p, strerror(errno));
    struct dirent *e;
    while ((e = readdir(top))) {
        if (strlen(e->d_name) != 2) continue;
        char sub[PATH_MAX];
        DIR *d = join(sub, p, e->d_name) < 0 ? NULL : opendir(sub);
        if (!d) continue;
        struct dirent *f;
        while ((f = readdir(d))) {
            blockfile bf = {0};
            size_t got;
            if (strlen(f->d_name) != 64 || sodium_hex2bin(bf.name, HASH, f->d_name, 64, NULL, &got, NULL) || got != HASH)
                continue;
            char fp[PATH_MAX];
            struct stat sb;
            if (join(fp, sub, f->d_name) < 0 || stat(fp, &sb) < 0) continue;
            bf.size = (size_t)sb.st_size;
            bf.mtime = (int64_t)sb.st_mtime;
            if (grow(out, &cap, *count + 1, sizeof **out) < 0) {
                closedir(d);
                closedir(top);
                return seterr(err, errlen, "%s: out of memory", p);
            }
            (*out)[(*count)++] = bf;
        }
        closedir(d);
    }
    closedir(top);
    if (*count) qsort(*out, *count, sizeof **out, cmp_name);
    return 0;
}

/* Mark in blocks every block some session references. An unreadable session stops gc:
 * dropping what it might reference could lose a conversation. */
static int mark_referenced(kvs_store *st, blockfile *blocks, size_t nblocks, size_t *session_bytes, char *err,
                           size_t errlen) {
    char **names;
    size_t count;
    if (kvs_list(st, &names, &count, err, errlen) < 0) return -1;
    int rc = 0;
    for (size_t s = 0; s < count && rc == 0; s++) {
        uint8_t *d;
        size_t size;
        logstate ls;
        if (read_log(st, names[s], &d, &size, &ls, NULL, err, errlen) < 0) {
            free(d);
            rc = -1;
            break;
        }
        *session_bytes += size;
        for (size_t i = 0; i * KVS_BLOCK < ls.n; i++) {
            if (!uses_block(&ls, i)) continue;
            blockfile *bf = bsearch(ls.bname[i], blocks, nblocks, sizeof *blocks, cmp_name);
            if (bf) bf->referenced = 1;
        }
        log_free(&ls);
        free(d);
    }
    kvs_list_free(names, count);
    return rc;
}

int kvs_gc(kvs_store *st, long long max_size, kvs_gc_stats *gs, char *err, size_t errlen) {
    memset(gs, 0, sizeof *gs);
    int gfd = gc_lock(st, LOCK_EX); /* no writer is between sealing and publishing */
    if (gfd < 0) return seterr(err, errlen, "%s/gc.lock: %s", st->dir, strerror(errno));
    blockfile *bl = NULL;
    size_t nb = 0, total = 0;
    int rc = -1;
    if (list_blocks(st, &bl, &nb, err, errlen) < 0 || mark_referenced(st, bl, nb, &total, err, errlen) < 0) goto done;
    for (size_t i = 0; i < nb; i++) total += bl[i].size;
    if (nb) qsort(bl, nb, sizeof *bl, cmp_age); /* least recently used first */
    for (size_t i = 0; i < nb; i++) {
        char p[PATH_MAX];
        if (bl[i].referenced || (max_size >= 0 && total <= (size_t)max_size)) {
            gs->blocks_kept++, gs->bytes_kept += bl[i].size;
            continue;
        }
        if (block_path(p, st, bl[i].name) == 0 && unlink(p) == 0) {
            gs->blocks_dropped++, gs->bytes_dropped += bl[i].size;
            total -= bl[i].size;
        }
    }
    /* tmp/: under the exclusive lock every file there is a dead writer's */
    char tp[PATH_MAX];
    path_of(tp, st, "%s/tmp%s%s", "", "");
    DIR *d = opendir(tp);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char fp[PATH_MAX];
        if (e->d_name[0] != '.' && join(fp, tp, e->d_name) == 0 && unlink(fp) == 0) gs->tmp_dropped++;
    }
    if (d) closedir(d);
    rc = 0;
done:
    free(bl);
    close(gfd);
    return rc;
}

static void say(void (*report)(void *, const char *), void *ctx, long *problems, const char *msg) {
    (*problems)++;
    if (report) report(ctx, msg);
}

/* Check one block file; its problem, if any, goes to msg. */
static int check_file(kvs_store *st, const uint8_t name[HASH], const uint8_t *parent, int n_layers, size_t kv_dim,
                      uint8_t **b, size_t *cap, char *msg, size_t msglen) {
    char path[PATH_MAX], hex[65];
    size_t n;
    hexname(hex, name);
    block_path(path, st, name);
    int r = slurp(path, b, cap, &n);
    if (r) return seterr(msg, msglen, "block %s: %s", hex, r > 0 ? "missing" : strerror(errno));
    const uint8_t *t, *rows;
    return block_check(st, *b, n, name, parent, n_layers, kv_dim, &t, &rows, msg, msglen);
}

long kvs_verify(kvs_store *st, const char *only, void (*report)(void *, const char *), void *ctx, char *err,
                size_t errlen) {
    char **names = NULL, msg[512];
    size_t count = 0, cap = 0;
    uint8_t *b = NULL;
    long problems = 0;
    blockfile *bl = NULL;
    size_t nb = 0;
    if (only) {
        if (!(names = malloc(sizeof *names)) || !(names[0] = strdup(only))) {
            free(names);
            return seterr(err, errlen, "out of memory");
        }
        count = 1;
    } else if (kvs_list(st, &names, &count, err, errlen) < 0) {
        return -1;
    }
    if (!only && list_blocks(st, &bl, &nb, err, errlen) < 0) goto fail;
    for (size_t s = 0; s < count; s++) {
        uint8_t *d;
        size_t size;
        logstate ls;
        if (read_log(st, names[s], &d, &size, &ls, NULL, msg, sizeof msg) < 0) {
            free(d);
            if (only && strstr(msg, "no such session")) {
                seterr(err, errlen, "%s", msg);
                goto fail;
            }
            say(report, ctx, &problems, msg);
            continue;
        }
        if (ls.end < size) {
            snprintf(msg, sizeof msg, "%s: %zu bytes after the last good record at offset %zu (an interrupted commit, or corruption)",
                     names[s], size - ls.end, ls.end);
            say(report, ctx, &problems, msg);
        }
        uint8_t h0[HASH];
        chain_root(h0, d + 16);
        for (size_t i = 0; i * KVS_BLOCK < ls.n; i++) {
            if (!uses_block(&ls, i)) continue;
            char m1[300];
            if (check_file(st, ls.bname[i], i ? ls.bname[i - 1] : h0, ls.n_layers, ls.kv_dim, &b, &cap, m1,
                           sizeof m1) < 0) {
                snprintf(msg, sizeof msg, "%s: %s", names[s], m1);
                say(report, ctx, &problems, msg);
            }
            blockfile *bf = bl ? bsearch(ls.bname[i], bl, nb, sizeof *bl, cmp_name) : NULL;
            if (bf) bf->referenced = 1; /* checked with its session: not again below */
        }
        log_free(&ls);
        free(d);
    }
    for (size_t i = 0; i < nb; i++)
        if (!bl[i].referenced && check_file(st, bl[i].name, NULL, 0, 0, &b, &cap, msg, sizeof msg) < 0)
            say(report, ctx, &problems, msg);
    kvs_list_free(names, count);
    free(bl);
    free(b);
    return problems;
fail:
    kvs_list_free(names, count);
    free(bl);
    free(b);
    return -1;
}

/* ---- export and import: one file holding a session's compact image and its blocks ----
 *
 *   "QWKVEXP1", u32 version (1), u32 blocks, u64 image bytes, the image,
 *   per block: u64 bytes, the block file; then BLAKE2b-256 of everything before. */

int kvs_export(kvs_store *st, const char *name, const char *path, char *err, size_t errlen) {
    session s;
    if (open_impl(st, name, NULL, &s, SESS_READ, 0, err, errlen) < 0) return -1;
    kvs_sess *P = s.priv;
    int rc = -1, e = 0;
    crypto_generichash_state h;
    crypto_generichash_init(&h, NULL, 0, HASH);
    FILE *f = fopen(path, "wb");
    char tmp[PATH_MAX], tag[64];
    snprintf(tag, sizeof tag, "%ld.%u.exp", (long)getpid(), st->tmp_seq++);
    path_of(tmp, st, "%s/tmp/%s%s", tag, "");
    int ifd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    uint8_t *img = NULL, *blk = NULL;
    size_t icap = 0, ilen = 0, bcap = 0, blen = 0;
    if (!f || ifd < 0) {
        seterr(err, errlen, "%s: %s", !f ? path : tmp, strerror(errno));
        goto done;
    }
    /* the image goes through a temp file: it may be as large as the session */
    if ((e = image_write(P, &s, ifd)) || slurp(tmp, &img, &icap, &ilen)) {
        seterr(err, errlen, "%s: %s", tmp, strerror(e ? e : errno));
        goto done;
    }
    uint8_t hd[24];
    memcpy(hd, EXP_MAGIC, 8);
    put_le32(hd + 8, FORMAT);
    put_le32(hd + 12, (uint32_t)P->k);
    put_le64(hd + 16, ilen);
    crypto_generichash_update(&h, hd, sizeof hd);
    crypto_generichash_update(&h, img, ilen);
    fwrite(hd, 1, sizeof hd, f);
    fwrite(img, 1, ilen, f);
    for (size_t i = 0; i < P->k; i++) {
        char bp[PATH_MAX], hex[65];
        block_path(bp, st, P->names[i]);
        hexname(hex, P->names[i]);
        int r = slurp(bp, &blk, &bcap, &blen);
        if (r) {
            seterr(err, errlen, "%s: block %s: %s", name, hex, r > 0 ? "missing" : strerror(errno));
            goto done;
        }
        uint8_t l8[8];
        put_le64(l8, blen);
        crypto_generichash_update(&h, l8, 8);
        crypto_generichash_update(&h, blk, blen);
        fwrite(l8, 1, 8, f);
        fwrite(blk, 1, blen, f);
    }
    uint8_t sm[HASH];
    crypto_generichash_final(&h, sm, HASH);
    fwrite(sm, 1, HASH, f);
    if (fflush(f) || ferror(f) || fsync(fileno(f))) {
        seterr(err, errlen, "%s: %s", path, strerror(errno));
        goto done;
    }
    rc = 0;
done:
    if (f && fclose(f) && rc == 0) rc = seterr(err, errlen, "%s: %s", path, strerror(errno));
    if (ifd >= 0) close(ifd), unlink(tmp);
    free(img);
    free(blk);
    sess_close(&s);
    return rc;
}

int kvs_import(kvs_store *st, const char *path, const char *name, char *err, size_t errlen) {
    if (!valid_name(name)) return bad_name(name, err, errlen);
    mapped f;
    if (map_file(path, &f, err, errlen) < 0) return -1;
    const uint8_t *d = f.data;
    size_t n = f.size;
    int rc = -1, gfd = -1;
    uint8_t *b = NULL;
    size_t bcap = 0;
    if (n < 24 + HASH || memcmp(d, EXP_MAGIC, 8)) {
        seterr(err, errlen, "%s: not a kvstore export", path);
        goto done;
    }
    if (le32(d + 8) != FORMAT) {
        seterr(err, errlen, "%s: export format version %u, this build reads %d", path, le32(d + 8), FORMAT);
        goto done;
    }
    if (!sum_ok(d, n - HASH)) {
        seterr(err, errlen, "%s: checksum mismatch (corrupt or truncated)", path);
        goto done;
    }
    size_t nblk = le32(d + 12), off = 24, end = n - HASH;
    uint64_t ilen = le64(d + 16);
    if (ilen > end - off) {
        seterr(err, errlen, "%s: image length past the end", path);
        goto done;
    }
    const uint8_t *img = d + off;
    logstate ls;
    char e2[300];
    if (log_parse(name, img, (size_t)ilen, &ls, e2, sizeof e2) < 0) {
        seterr(err, errlen, "%s: %s", path, e2);
        goto done;
    }
    int enc = ls.encrypted;
    int nl = ls.n_layers;
    size_t kd = ls.kv_dim;
    uint8_t h0[HASH];
    chain_root(h0, img + 16);
    int listed = ls.k == nblk && ls.end == ilen;
    uint8_t (*bn)[HASH] = listed && nblk ? malloc(nblk * HASH) : NULL;
    if (bn) memcpy(bn, ls.bname, nblk * HASH);
    log_free(&ls);
    if (!listed || (nblk && !bn)) {
        free(bn);
        seterr(err, errlen, "%s: its image does not match its %zu blocks", path, nblk);
        goto done;
    }
    if (enc != st->encrypted) {
        free(bn);
        seterr(err, errlen, "%s: %s, but the store is %s", path, enc ? "encrypted" : "not encrypted",
               st->encrypted ? "encrypted" : "not");
        goto done;
    }
    if ((gfd = gc_lock(st, LOCK_SH)) < 0) {
        free(bn);
        seterr(err, errlen, "%s/gc.lock: %s", st->dir, strerror(errno));
        goto done;
    }
    off += (size_t)ilen;
    for (size_t i = 0; i < nblk; i++) {
        uint64_t bl = end - off >= 8 ? le64(d + off) : UINT64_MAX;
        if (bl > end - off - 8) {
            free(bn);
            seterr(err, errlen, "%s: block %zu runs past the end", path, i);
            goto done;
        }
        off += 8;
        if (grow(&b, &bcap, (size_t)bl, 1) < 0) {
            free(bn);
            seterr(err, errlen, "%s: out of memory", path);
            goto done;
        }
        memcpy(b, d + off, (size_t)bl); /* block_check decrypts in place */
        const uint8_t *t, *rows;
        if (block_check(st, b, (size_t)bl, bn[i], i ? bn[i - 1] : h0, nl, kd, &t, &rows, e2, sizeof e2) < 0) {
            free(bn);
            seterr(err, errlen, "%s: %s", path, e2);
            goto done;
        }
        char bp[PATH_MAX];
        block_path(bp, st, bn[i]);
        if (utimensat(AT_FDCWD, bp, NULL, 0) < 0) {
            char dir[PATH_MAX];
            snprintf(dir, sizeof dir, "%s", bp);
            *strrchr(dir, '/') = 0;
            mkdir(dir, 0700);
            int e = put_file(st, bp, d + off, (size_t)bl, 0);
            if (e) {
                free(bn);
                seterr(err, errlen, "%s: write block: %s", name, strerror(e));
                goto done;
            }
        }
        off += (size_t)bl;
    }
    free(bn);
    if (off != end) {
        seterr(err, errlen, "%s: %zu bytes after its last block", path, end - off);
        goto done;
    }
    char sp[PATH_MAX];
    path_of(sp, st, "%s/sessions/%s.kvs%s", name, "");
    int e = put_file(st, sp, img, (size_t)ilen, 1);
    if (e == EEXIST) seterr(err, errlen, "%s: session exists", name);
    else if (e) seterr(err, errlen, "%s: write: %s", name, strerror(e));
    else rc = 0;
done:
    if (gfd >= 0) close(gfd);
    free(b);
    unmap_file(&f);
    return rc;
}
