/* tok_load: finding the compiled tokenizer image, checking it, and building it when
 * there is none (tok_load, tok_free).
 *
 * The cache directory holds
 *   tok-<BLAKE2b-256 of tokenizer.json, hex>.bin   the image (tok_impl.h), mmap'd in place
 *   tok-path-<BLAKE2b-128 of its absolute path>   an index entry: the (dev, ino, size,
 *                                                 mtime_ns) the file had when its content
 *                                                 was hashed, the hash, and the path
 * A warm start is stat + index read + mmap + tok_attach's checks, with no hashing of
 * the 11 MB source. When the stat data differs the source is hashed again, and only a
 * missing or unusable image makes us parse JSON. The cache is an optimization: if it
 * cannot be written (read-only directory, no HOME) the tokenizer still loads. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf.h"
#include "tok_impl.h"
#include "uni.h"

uint64_t tokimg_sum(const uint8_t *p, size_t n) {
    /* Fletcher-style over four 64-bit lanes held in registers: adds only, so it runs at
     * memory speed; a word changed anywhere changes its lane's sum, a word moved changes
     * the running sum of sums. */
    uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0, b0 = 0, b1 = 0, b2 = 0, b3 = 0;
    for (; n >= 32; p += 32, n -= 32) {
        a0 += le64(p), a1 += le64(p + 8), a2 += le64(p + 16), a3 += le64(p + 24);
        b0 += a0, b1 += a1, b2 += a2, b3 += a3;
    }
    uint64_t h = n, lanes[8] = {a0, a1, a2, a3, b0, b1, b2, b3};
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001B3u;
    for (int k = 0; k < 8; k++) {
        h = (h ^ lanes[k]) * 0xFF51AFD7ED558CCDu;
        h ^= h >> 32;
    }
    return h;
}

/* Section [off, off + len) lies inside the image, past the header. */
static int inside(const uint8_t *img, size_t size, int field, size_t len) {
    uint64_t off = le64(img + field);
    return off >= TOKIMG_HDR && off <= size && len <= size - off;
}

static int bad(char *err, size_t errlen, const char *why) {
    return seterr(err, errlen, "tokenizer image: %s", why);
}

int tok_attach(tok *t, const uint8_t *img, size_t size, char *err, size_t errlen) {
    if (size < TOKIMG_HDR || memcmp(img + H_MAGIC, TOKIMG_MAGIC, 8) != 0) return bad(err, errlen, "bad magic");
    if (le32(img + H_VERSION) != TOKIMG_VERSION) return bad(err, errlen, "other version");
    if (le64(img + H_SIZE) != size) return bad(err, errlen, "truncated");
    if (le64(img + H_SUM) != tokimg_sum(img + TOKIMG_HDR, size - TOKIMG_HDR)) return bad(err, errlen, "bad checksum");
    size_t n_ids = le32(img + H_NIDS), n_vocab = le32(img + H_NVOCAB), n_added = le32(img + H_NADDED);
    size_t vcap = le32(img + H_VCAP), mcap = le32(img + H_MCAP), blob_len = le64(img + H_BLOBLEN);
    size_t max_piece = le32(img + H_MAXPIECE), vprobe = le32(img + H_VPROBE), mprobe = le32(img + H_MPROBE);
    if (n_vocab < 256 || n_vocab + n_added != n_ids || n_ids >= TOK_WHOLE ||
        n_added > sizeof t->added_order / sizeof t->added_order[0] || vcap < 2 || (vcap & (vcap - 1)) ||
        mcap < 2 || (mcap & (mcap - 1)) || vprobe > vcap || mprobe > mcap || blob_len > UINT32_MAX)
        return bad(err, errlen, "bad counts");
    if (!inside(img, size, H_TOKOFF, 4 * (n_ids + 1)) || !inside(img, size, H_BLOB, blob_len) ||
        !inside(img, size, H_VHASH, 8 * vcap) || !inside(img, size, H_MHASH, 16 * mcap) ||
        !inside(img, size, H_ADDED, 8 * n_added))
        return bad(err, errlen, "section out of bounds");
    t->img = img;
    t->size = size;
    t->n_ids = n_ids;
    t->n_vocab = n_vocab;
    t->n_added = n_added;
    t->n_merges = le32(img + H_NMERGES);
    t->max_piece = max_piece;
    t->vmask = (uint32_t)(vcap - 1);
    t->mmask = (uint32_t)(mcap - 1);
    t->vprobe = (uint32_t)vprobe;
    t->mprobe = (uint32_t)mprobe;
    t->tokoff = img + le64(img + H_TOKOFF);
    t->blob = img + le64(img + H_BLOB);
    t->vhash = img + le64(img + H_VHASH);
    t->mhash = img + le64(img + H_MHASH);
    t->added = img + le64(img + H_ADDED);

    /* Every id's bytes are non-empty and inside blob; no branch per id, so ~0.1 ms. */
    uint32_t prev = le32(t->tokoff), unsorted = prev != 0;
    for (size_t id = 1; id <= n_ids; id++) {
        uint32_t o = le32(t->tokoff + 4 * id);
        unsorted |= o <= prev;
        prev = o;
    }
    if (unsorted || prev != blob_len) return bad(err, errlen, "bad token offsets");
    for (int b = 0; b < 256; b++) {
        uint8_t c = (uint8_t)b;
        uint32_t v = tok_vocab_find(t, &c, 1);
        if (v == TOK_EMPTY) return bad(err, errlen, "a byte missing from the vocabulary");
        t->byte_id[b] = v & ~TOK_WHOLE;
    }
    for (int c = 0; c < 128; c++)
        t->ascii[c] = (uint8_t)(uni_class((uint32_t)c) | (c == '\r' || c == '\n' ? TOK_CRLF : 0));
    memset(t->added_start, 0, sizeof t->added_start);
    for (size_t k = 0; k < n_added; k++) {
        uint32_t id = le32(t->added + 8 * k);
        if (id < n_vocab || id >= n_ids) return bad(err, errlen, "bad added token");
        t->added_start[t->blob[le32(t->tokoff + 4 * (size_t)id)]] = 1;
        /* insertion sort, longest first: the first match at a position is the longest */
        size_t j = k, len = le32(t->tokoff + 4 * (size_t)id + 4) - le32(t->tokoff + 4 * (size_t)id);
        for (; j > 0; j--) {
            uint32_t o = le32(t->added + 8 * t->added_order[j - 1]);
            if (le32(t->tokoff + 4 * (size_t)o + 4) - le32(t->tokoff + 4 * (size_t)o) >= len) break;
            t->added_order[j] = t->added_order[j - 1];
        }
        t->added_order[j] = (uint32_t)k;
    }
    return 0;
}

static void hex(const uint8_t *h, size_t n, char *out) {
    for (size_t i = 0; i < n; i++) snprintf(out + 2 * i, 3, "%02x", h[i]);
}

/* Map cdir/tok-<hash>.bin and attach it if it is sound and built from that content. */
static int open_image(tok *t, const char *cdir, const uint8_t hash[32]) {
    char name[PATH_MAX], hx[65];
    hex(hash, 32, hx);
    if ((size_t)snprintf(name, sizeof name, "%s/tok-%s.bin", cdir, hx) >= sizeof name) return -1;
    mapped m;
    if (map_file(name, &m, NULL, 0) < 0) return -1;
    if (tok_attach(t, m.data, m.size, NULL, 0) < 0 || memcmp(m.data + H_SRCHASH, hash, 32) != 0) {
        unmap_file(&m);
        memset(t, 0, sizeof *t);
        return -1;
    }
    t->map = m;
    return 0;
}

enum { IX_DEV = 8, IX_INO = 16, IX_SIZE = 24, IX_MTIME = 32, IX_HASH = 40, IX_PATH = 72 };
#define INDEX_MAGIC "QW3TOKi\n"

static int index_name(const char *cdir, const char *abs, char *name, size_t n) {
    uint8_t h[16];
    char hx[33];
    crypto_generichash(h, sizeof h, (const uint8_t *)abs, strlen(abs), NULL, 0);
    hex(h, sizeof h, hx);
    return (size_t)snprintf(name, n, "%s/tok-path-%s", cdir, hx) < n ? 0 : -1;
}

static void index_stat(uint8_t *e, const struct stat *st) {
    put_le64(e + IX_DEV, (uint64_t)st->st_dev);
    put_le64(e + IX_INO, (uint64_t)st->st_ino);
    put_le64(e + IX_SIZE, (uint64_t)st->st_size);
    put_le64(e + IX_MTIME, (uint64_t)st->st_mtim.tv_sec * 1000000000u + (uint64_t)st->st_mtim.tv_nsec);
}

/* The content hash recorded for abs, if its stat data is still st. */
static int index_get(const char *cdir, const char *abs, const struct stat *st, uint8_t hash[32]) {
    char name[PATH_MAX];
    uint8_t e[IX_PATH + PATH_MAX], want[IX_PATH];
    if (index_name(cdir, abs, name, sizeof name) < 0) return -1;
    int fd = open(name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, e, sizeof e);
    close(fd);
    size_t pl = strlen(abs);
    index_stat(want, st);
    if (n < 0 || (size_t)n != IX_PATH + pl || memcmp(e, INDEX_MAGIC, 8) != 0 ||
        memcmp(e + IX_DEV, want + IX_DEV, IX_HASH - IX_DEV) != 0 || memcmp(e + IX_PATH, abs, pl) != 0)
        return -1;
    memcpy(hash, e + IX_HASH, 32);
    return 0;
}

static void index_put(const char *cdir, const char *abs, const struct stat *st, const uint8_t hash[32]) {
    char name[PATH_MAX];
    uint8_t e[IX_PATH + PATH_MAX];
    size_t pl = strlen(abs);
    if (pl >= PATH_MAX || index_name(cdir, abs, name, sizeof name) < 0) return;
    memcpy(e, INDEX_MAGIC, 8);
    index_stat(e, st);
    memcpy(e + IX_HASH, hash, 32);
    memcpy(e + IX_PATH, abs, pl);
    write_atomic(name, e, IX_PATH + pl, NULL, 0);
}

static int same_stat(const struct stat *a, const struct stat *b) {
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Hash the source; use its image if one is cached, else compile and cache it. cdir is
 * NULL when there is no cache. */
static int load_cold(tok *t, const char *path, const char *cdir, const char *abs, const struct stat *st,
                     char *err, size_t errlen) {
    mapped src;
    uint8_t h[32];
    if (map_file(path, &src, err, errlen) < 0) return -1;
    crypto_generichash(h, sizeof h, src.data, src.size, NULL, 0);
    struct stat now;
    /* Record the stat data only if the file did not change while we read it. */
    int stable = stat(path, &now) == 0 && same_stat(st, &now);
    if (cdir && open_image(t, cdir, h) == 0) {
        unmap_file(&src);
        if (stable) index_put(cdir, abs, st, h);
        return 0;
    }
    uint8_t *img;
    size_t size;
    int rc = tok_build(path, src.data, src.size, h, &img, &size, err, errlen);
    unmap_file(&src);
    if (rc < 0) return -1;
    if (tok_attach(t, img, size, err, errlen) < 0) {
        free(img);
        return -1;
    }
    t->owned = img;
    char name[PATH_MAX], hx[65];
    hex(h, 32, hx);
    if (cdir && (size_t)snprintf(name, sizeof name, "%s/tok-%s.bin", cdir, hx) < sizeof name &&
        write_atomic(name, img, size, NULL, 0) == 0 && stable)
        index_put(cdir, abs, st, h);
    return 0;
}

tok *tok_load(const char *dir, char *err, size_t errlen) {
    char path[PATH_MAX], cdir[PATH_MAX], abs[PATH_MAX];
    if (gguf_is_file(dir)) return tok_load_gguf(dir, err, errlen);
    if ((size_t)snprintf(path, sizeof path, "%s/tokenizer.json", dir) >= sizeof path) {
        seterr(err, errlen, "%s: path too long", dir);
        return NULL;
    }
    struct stat st;
    if (stat(path, &st) < 0) {
        /* an ax-llm model directory keeps its tokenizer in qwen3_tokenizer/ */
        char alt[PATH_MAX];
        if ((size_t)snprintf(alt, sizeof alt, "%s/qwen3_tokenizer/tokenizer.json", dir) < sizeof alt &&
            stat(alt, &st) == 0)
            memcpy(path, alt, sizeof path);
        else {
            seterr(err, errlen, "%s: %s", path, strerror(errno));
            return NULL;
        }
    }
    if (sodium_init() < 0) {
        seterr(err, errlen, "libsodium: cannot initialize");
        return NULL;
    }
    tok *t = calloc(1, sizeof *t);
    if (!t) {
        seterr(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    int cached = cache_dir(cdir, sizeof cdir, NULL, 0) == 0 && realpath(path, abs);
    uint8_t h[32];
    if (cached && index_get(cdir, abs, &st, h) == 0 && open_image(t, cdir, h) == 0) return t;
    if (load_cold(t, path, cached ? cdir : NULL, abs, &st, err, errlen) == 0) return t;
    free(t);
    return NULL;
}

void tok_free(tok *t) {
    if (!t) return;
    unmap_file(&t->map);
    free(t->owned);
    free(t);
}
