/* kvs_test: the KV store (lib/kvs.h) through its header, with no model math: a fake model
 * (a config and a fingerprint) and K/V rows filled with values that are a function of the
 * position, the layer and the token, so any row read back can be checked exactly.
 *
 *   kvs_test CASE DIR [ARGS]   run one case against a store in DIR (t/kvstore.bats runs each)
 *   kvs_test make DIR NAME N [SEED] [--key FILE]   a session of N positions for kvstore.bats
 *   kvs_test check DIR NAME [--key FILE]           reopen it and check every row
 *   kvs_test bench DIR                             Qwen3-0.6B dims: bytes/token, commit, resume
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kvs.h"
#include "util.h"

static char err[512];
static int failures;

#define CHECK(c, ...)                                                                     \
    do {                                                                                  \
        if (!(c)) {                                                                       \
            fprintf(stderr, "kvs_test:%d: %s: ", __LINE__, #c);                           \
            fprintf(stderr, __VA_ARGS__);                                                 \
            fprintf(stderr, "\n");                                                        \
            failures++;                                                               \
            return 1;                                                                     \
        }                                                                                 \
    } while (0)

/* A model as the store sees it: shape and fingerprint. */
static model fake(int n_layers, int kv_dim, int dim, int seed) {
    model m;
    memset(&m, 0, sizeof m);
    m.cfg.n_layers = n_layers;
    m.cfg.n_kv_heads = 1;
    m.cfg.head_dim = kv_dim;
    m.cfg.n_heads = 1;
    m.cfg.dim = dim;
    for (int i = 0; i < 32; i++) m.fingerprint[i] = (uint8_t)(seed * 31 + i);
    return m;
}

/* The row value a position holds: depends on everything before it, as real K/V does, via
 * a running hash of the tokens (so equal prefixes give equal rows). */
static float value(uint32_t ctx, int l, int which, size_t i) {
    uint32_t x = ctx * 2654435761u ^ (uint32_t)(l * 40503 + which * 977 + (int)i * 7);
    x ^= x >> 15, x *= 2246822519u, x ^= x >> 13;
    return (float)(x % 100000) / 1000.0f - 50.0f;
}

static uint32_t ctx_of(const int32_t *ids, size_t p) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i <= p; i++) h = (h ^ (uint32_t)ids[i]) * 16777619u;
    return h;
}

/* Token ids of a conversation: seed picks the text; positions below `same` are shared. */
static void make_ids(int32_t *ids, size_t n, unsigned seed, size_t same) {
    for (size_t p = 0; p < n; p++) ids[p] = (int32_t)((p < same ? p * 7919u : p * 7919u + seed * 104729u) % 151000u);
}

/* Append positions [s->kv.n, to) of ids, as prefill would, with the hidden state. */
static int feed(session *s, const int32_t *ids, size_t to) {
    size_t from = s->kv.n;
    if (kv_reserve(&s->kv, to + 16) < 0) return -1;
    for (size_t p = from; p < to; p++) {
        uint32_t c = ctx_of(ids, p);
        for (int l = 0; l < s->kv.n_layers; l++)
            for (size_t i = 0; i < s->kv.kv_dim; i++) {
                s->kv.k[l][p * s->kv.kv_dim + i] = value(c, l, 0, i);
                s->kv.v[l][p * s->kv.kv_dim + i] = value(c, l, 1, i);
            }
    }
    s->kv.n = to;
    if (sess_push_tokens(s, ids + from, to - from, err, sizeof err) < 0) return -1;
    float h[4096];
    for (size_t i = 0; i < s->dim; i++) h[i] = value(ctx_of(ids, to - 1), 99, 2, i);
    return sess_set_hidden(s, h, err, sizeof err);
}

/* Does s hold exactly ids[0..n) with their rows (and the hidden state, if it has one)? */
static int holds(const session *s, const int32_t *ids, size_t n) {
    if (s->kv.n != n) return fprintf(stderr, "holds %zu positions, want %zu\n", s->kv.n, n), 0;
    for (size_t p = 0; p < n; p++) {
        if (s->tokens[p] != ids[p]) return fprintf(stderr, "token %zu: %d, want %d\n", p, s->tokens[p], ids[p]), 0;
        uint32_t c = ctx_of(ids, p);
        for (int l = 0; l < s->kv.n_layers; l++)
            for (size_t i = 0; i < s->kv.kv_dim; i++) {
                float k = value(c, l, 0, i), v = value(c, l, 1, i);
                if (memcmp(&s->kv.k[l][p * s->kv.kv_dim + i], &k, 4) || memcmp(&s->kv.v[l][p * s->kv.kv_dim + i], &v, 4))
                    return fprintf(stderr, "row %zu layer %d differs\n", p, l), 0;
            }
    }
    if (s->hidden && n)
        for (size_t i = 0; i < s->dim; i++) {
            float h = value(ctx_of(ids, n - 1), 99, 2, i);
            if (memcmp(&s->hidden[i], &h, 4)) return fprintf(stderr, "hidden differs at %zu\n", i), 0;
        }
    return 1;
}

/* hex of block i's name for ids under model m (the hash chain of docs/kvstore.md) */
static void block_hex(char hex[65], const model *m, const int32_t *ids, int i) {
    uint8_t h[32], dt[4] = {0};
    crypto_generichash_state cs;
    crypto_generichash_init(&cs, NULL, 0, 32);
    crypto_generichash_update(&cs, (const uint8_t *)"qwen3-pipe kv 1", 15);
    crypto_generichash_update(&cs, m->fingerprint, 32);
    crypto_generichash_update(&cs, dt, 4);
    crypto_generichash_final(&cs, h, 32);
    for (int b = 0; b <= i; b++) {
        uint8_t in[32 + 64];
        memcpy(in, h, 32);
        for (int j = 0; j < 16; j++) put_le32(in + 32 + 4 * j, (uint32_t)ids[16 * b + j]);
        crypto_generichash(h, 32, in, sizeof in, NULL, 0);
    }
    sodium_bin2hex(hex, 65, h, 32);
}

static size_t count_blocks(const char *dir) {
    char p[4096];
    size_t n = 0;
    snprintf(p, sizeof p, "%s/blocks", dir);
    DIR *d = opendir(p);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (strlen(e->d_name) != 2) continue;
        char q[4352];
        snprintf(q, sizeof q, "%s/%s", p, e->d_name);
        DIR *d2 = opendir(q);
        struct dirent *f;
        while (d2 && (f = readdir(d2))) n += strlen(f->d_name) == 64;
        if (d2) closedir(d2);
    }
    if (d) closedir(d);
    return n;
}

static model m1, m2;

static kvs_store *store(const char *dir, const char *key) {
    kvs_store *st = kvs_open(dir, key, err, sizeof err);
    if (!st) fprintf(stderr, "kvs_open: %s\n", err);
    return st;
}

/* Write a session of n positions in commits of varying size; return 0. */
static int write_session(kvs_store *st, const char *name, const model *m, const int32_t *ids, size_t n) {
    session s;
    CHECK(sess_open(st, name, m, &s, SESS_WRITE, err, sizeof err) == 0, "%s", err);
    size_t step[] = {1, 5, 16, 15, 3, 40, 1};
    for (size_t i = 0; s.kv.n < n; i++) {
        size_t to = s.kv.n + step[i % 7];
        if (to > n) to = n;
        CHECK(feed(&s, ids, to) == 0, "%s", err);
        CHECK(sess_commit(&s, err, sizeof err) == 0, "%s", err);
        CHECK(s.committed == to, "committed %zu", s.committed);
    }
    sess_close(&s);
    return 0;
}

static int reopen_holds(kvs_store *st, const char *name, const model *m, const int32_t *ids, size_t n) {
    session s;
    CHECK(sess_open(st, name, m, &s, SESS_READ, err, sizeof err) == 0, "%s", err);
    int ok = holds(&s, ids, n);
    sess_close(&s);
    CHECK(ok, "%s does not hold what was committed", name);
    return 0;
}

static int t_roundtrip(const char *dir, const char *key) {
    kvs_store *st = store(dir, key);
    CHECK(st, "open");
    int32_t ids[200];
    make_ids(ids, 200, 1, 0);
    if (write_session(st, "a", &m1, ids, 200)) return 1;
    session s;
    CHECK(sess_open(st, "a", &m1, &s, SESS_READ, err, sizeof err) == 0, "%s", err);
    CHECK(holds(&s, ids, 200) && s.hidden && s.committed == 200, "round trip");
    sess_close(&s);
    /* and continue it in a "new process": open for writing, append, reopen */
    CHECK(sess_open(st, "a", &m1, &s, SESS_WRITE, err, sizeof err) == 0, "%s", err);
    int32_t more[230];
    memcpy(more, ids, sizeof ids);
    make_ids(more + 200, 30, 9, 0);
    CHECK(feed(&s, more, 230) == 0 && sess_commit(&s, err, sizeof err) == 0, "%s", err);
    sess_close(&s);
    if (reopen_holds(st, "a", &m1, more, 230)) return 1;
    kvs_close(st);
    return 0;
}

static int t_reuse(const char *dir) {
    kvs_store *st = store(dir, NULL);
    CHECK(st, "open");
    int32_t a[50], b[60];
    make_ids(a, 50, 1, 50);
    make_ids(b, 60, 2, 40); /* agrees with a on 40 positions: blocks 0 and 1 */
    if (write_session(st, "a", &m1, a, 50)) return 1;
    CHECK(count_blocks(dir) == 3, "a: %zu blocks, want 3", count_blocks(dir));
    session s;
    CHECK(sess_open(st, "b", &m1, &s, SESS_WRITE, err, sizeof err) == 0, "%s", err);
    long got = sess_reuse_prefix(&s, b, 60, err, sizeof err);
    CHECK(got == 32, "reused %ld, want 32", got);
    CHECK(holds(&s, b, 32), "reused rows");
    CHECK(feed(&s, b, 60) == 0 && sess_commit(&s, err, sizeof err) == 0, "%s", err);
    sess_close(&s);
    if (reopen_holds(st, "b", &m1, b, 60)) return 1;
    /* dedup: a's 3 blocks + b's third (its first two are a's) */
    CHECK(count_blocks(dir) == 4, "%zu block files, want 4", count_blocks(dir));
    /* a whole prompt that is stored: every full block found; another model finds nothing */
    CHECK(sess_open(st, "c", &m1, &s, SESS_WRITE, err, sizeof err) == 0, "%s", err);
    CHECK((got = sess_reuse_prefix(&s, b, 60, err, sizeof err)) == 48, "reused %ld, want 48", got);
    sess_close(&s);
    CHECK(sess_open(st, "d", &m2, &s, SESS_WRITE, err, sizeof err) == 0, "%s", err);
    CHECK((got = sess_reuse_prefix(&s, b, 60, err, sizeof err)) == 0, "other model reused %ld", got);
    sess_close(&s);
    /* positions without ids (bare embeddings) are never content-named */
    int32_t u[40];
    make_ids(u, 40, 3, 0);
    u[5] = -1;
    CHECK(sess_open(st, "e", &m1, &s, SESS_WRITE, err, sizeof err) == 0, "%s", err);
    size_t before = count_blocks(dir);
    CHECK(feed(&s, u, 40) == 0 && sess_commit(&s, err, sizeof err) == 0, "%s", err);
    CHECK(count_blocks(dir) == before, "a block with an unknown id was sealed");
    sess_close(&s);
    if (reopen_holds(st, "e", &m1, u, 40)) return 1;
    kvs_close(st);
    return 0;
}

static int t_fork_trim(const char *dir) {
    kvs_store *st = store(dir, NULL);
    CHECK(st, "open");
    int32_t a[70], c[90];
    make_ids(a, 70, 1, 70);
    if (write_session(st, "a", &m1, a, 70)) return 1;
    size_t nb = count_blocks(dir);
    CHECK(kvs_fork(st, "a", "c", err, sizeof err) == 0, "%s", err);
    CHECK(count_blocks(dir) == nb, "fork copied blocks");
    CHECK(kvs_fork(st, "a", "c", err, sizeof err) < 0 && strstr(err, "c: session exists"), "fork over: %s", err);
    if (reopen_holds(st, "c", &m1, a, 70)) return 1;
    /* diverge the child at 20 (inside block 1), within one commit: trim then append */
    session s;
    CHECK(sess_open(st, "c", &m1, &s, SESS_WRITE, err, sizeof err) == 0, "%s", err);
    make_ids(c, 90, 5, 20);
    CHECK(sess_trim(&s, 20, err, sizeof err) == 0, "%s", err);
    CHECK(feed(&s, c, 90) == 0 && sess_commit(&s, err, sizeof err) == 0, "%s", err);
    sess_close(&s);
    if (reopen_holds(st, "c", &m1, c, 90) || reopen_holds(st, "a", &m1, a, 70)) return 1;
    /* trim alone (kvstore trim), to a block boundary, inside the tail, to 0; then append */
    size_t to[] = {64, 50, 33, 32, 0};
    for (int i = 0; i < 5; i++) {
        CHECK(kvs_trim(st, "c", to[i], err, sizeof err) == 0, "%s", err);
        CHECK(sess_open(st, "c", &m1, &s, SESS_READ, err, sizeof err) == 0, "%s", err);
        CHECK(holds(&s, c, to[i]) && !s.hidden, "trim to %zu", to[i]);
        sess_close(&s);
    }
    CHECK(kvs_trim(st, "c", 5, err, sizeof err) < 0 && strstr(err, "cannot trim to 5"), "trim past: %s", err);
    CHECK(sess_open(st, "c", &m1, &s, SESS_WRITE, err, sizeof err) == 0, "%s", err);
    CHECK(feed(&s, a, 70) == 0 && sess_commit(&s, err, sizeof err) == 0, "%s", err);
    sess_close(&s);
    if (reopen_holds(st, "c", &m1, a, 70)) return 1;
    /* lowering kv.n by hand is a trim too */
    CHECK(sess_open(st, "c", &m1, &s, SESS_WRITE, err, sizeof err) == 0, "%s", err);
    s.kv.n = 10;
    CHECK(sess_commit(&s, err, sizeof err) == 0, "%s", err);
    sess_close(&s);
    if (reopen_holds(st, "c", &m1, a, 10)) return 1;
    kvs_close(st);
    return 0;
}

static int t_writers(const char *dir) {
    kvs_store *st = store(dir, NULL);
    CHECK(st, "open");
    session s, s2;
    CHECK(sess_open(st, "w", &m1, &s, SESS_WRITE, err, sizeof err) == 0, "%s", err);
    CHECK(sess_open(st, "w", &m1, &s2, SESS_WRITE, err, sizeof err) < 0, "second writer let in");
    CHECK(!strcmp(err, "session w is in use by another process"), "message: %s", err);
    CHECK(kvs_rm(st, "w", err, sizeof err) < 0 && strstr(err, "in use"), "rm while in use: %s", err);
    sess_close(&s);
    CHECK(sess_open(st, "w", &m1, &s2, SESS_WRITE, err, sizeof err) == 0, "after close: %s", err);
    sess_close(&s2);
    CHECK(kvs_rm(st, "w", err, sizeof err) == 0, "%s", err);
    CHECK(sess_open(st, "w", &m1, &s2, SESS_READ, err, sizeof err) < 0 && !strcmp(err, "w: no such session"),
          "read after rm: %s", err);
    kvs_close(st);
    return 0;
}

/* A child commits in a loop (writing "n\n" to a pipe before and after each commit);
 * readers, or a SIGKILL, meet it at random moments. */
static pid_t writer_child(const char *dir, const char *name, int fd, unsigned seed, int trims) {
    pid_t pid = fork();
    if (pid) return pid;
    kvs_store *st = kvs_open(dir, NULL, err, sizeof err);
    session s;
    if (!st || sess_open(st, name, &m1, &s, SESS_WRITE, err, sizeof err) < 0) {
        fprintf(stderr, "child: %s\n", err);
        _exit(1);
    }
    static int32_t ids[4096];
    make_ids(ids, 4096, 7, 0);
    srand(seed);
    char start[64];
    int sl = snprintf(start, sizeof start, "a %zu\n", s.kv.n); /* where it starts: committed before */
    if (write(fd, start, (size_t)sl) != sl) _exit(1);
    for (;;) {
        size_t n = s.kv.n;
        if (trims && n > 20 && rand() % 8 == 0) sess_trim(&s, n - 1 - (size_t)rand() % 20, err, sizeof err);
        size_t to = s.kv.n + 1 + (size_t)rand() % (rand() % 4 ? 3 : 40);
        if (to > 4000) sess_trim(&s, 0, err, sizeof err), to = 1;
        if (feed(&s, ids, to) < 0) _exit(1);
        char line[64];
        int l = snprintf(line, sizeof line, "b %zu\n", s.kv.n);
        if (write(fd, line, (size_t)l) != l) _exit(1);
        if (sess_commit(&s, err, sizeof err) < 0) {
            fprintf(stderr, "child: %s\n", err);
            _exit(1);
        }
        l = snprintf(line, sizeof line, "a %zu\n", s.kv.n);
        if (write(fd, line, (size_t)l) != l) _exit(1);
    }
}

/* The last committed n and the one in flight, from the child's pipe. */
static void read_marks(int fd, long *done, long *flight) {
    static char b[1 << 20];
    size_t len = 0;
    ssize_t r;
    while ((r = read(fd, b + len, sizeof b - 1 - len)) > 0) len += (size_t)r;
    b[len] = 0;
    *done = -1, *flight = -1;
    for (char *p = b; *p;) {
        char kind = *p;
        long v = strtol(p + 2, &p, 10);
        if (kind == 'a') *done = v, *flight = -1;
        else *flight = v;
        while (*p == '\n') p++;
    }
}

static int t_crash(const char *dir, int trials, unsigned seed) {
    int32_t ids[4096];
    make_ids(ids, 4096, 7, 0);
    srand(seed);
    kvs_store *st = store(dir, NULL);
    CHECK(st, "open");
    int in_flight = 0;
    long prev[8] = {-1, -1, -1, -1, -1, -1, -1, -1}; /* where each session was left */
    for (int t = 0; t < trials; t++) {
        char name[32];
        snprintf(name, sizeof name, "crash%d", t % 8); /* killed sessions are continued too */
        int pfd[2];
        CHECK(pipe(pfd) == 0, "pipe");
        pid_t pid = writer_child(dir, name, pfd[1], seed * 1000 + (unsigned)t, 1);
        close(pfd[1]);
        struct timespec ts = {0, (long)(rand() % 20000) * 1000};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int ws;
        waitpid(pid, &ws, 0);
        long done, flight;
        read_marks(pfd[0], &done, &flight);
        close(pfd[0]);
        if (done == -1) done = prev[t % 8]; /* killed before it opened the session */
        session s;
        /* every open must succeed: as a reader, and as the next writer (which cuts garbage) */
        for (int mode = 0; mode < 2; mode++) {
            if (sess_open(st, name, &m1, &s, mode, err, sizeof err) < 0) {
                /* killed before it made the session: fine; after: never */
                CHECK(done == -1 && strstr(err, "no such session"), "trial %d: %s", t, err);
                continue;
            }
            long n = (long)s.kv.n;
            CHECK(n == done || n == flight || (done == -1 && n == 0), "trial %d: at %ld, committed %ld, in flight %ld", t, n, done, flight);
            in_flight += mode == 0 && n == flight && n != done;
            prev[t % 8] = n;
            CHECK(holds(&s, ids, s.kv.n), "trial %d: rows", t);
            sess_close(&s);
        }
    }
    long problems = kvs_verify(st, NULL, NULL, NULL, err, sizeof err);
    CHECK(problems == 0, "verify after crashes: %ld problems", problems);
    printf("crash: %d trials, %d ended with the in-flight commit durable\n", trials, in_flight);
    kvs_close(st);
    return 0;
}

static int t_readers(const char *dir, int reads) {
    int32_t ids[4096];
    make_ids(ids, 4096, 7, 0);
    kvs_store *st = store(dir, NULL);
    CHECK(st, "open");
    int pfd[2];
    CHECK(pipe(pfd) == 0, "pipe");
    pid_t pid = writer_child(dir, "live", pfd[1], 42, 1);
    close(pfd[1]);
    char c[3] = "";
    while (c[0] != 'a' && read(pfd[0], c, 1) == 1) {} /* its first commit */
    int seen = 0;
    for (int i = 0; i < reads; i++) {
        session s;
        CHECK(sess_open(st, "live", &m1, &s, SESS_READ, err, sizeof err) == 0, "reader: %s", err);
        CHECK(holds(&s, ids, s.kv.n), "reader %d saw %zu positions, not a commit", i, s.kv.n);
        seen++;
        sess_close(&s);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    close(pfd[0]);
    CHECK(seen > 0, "no read succeeded");
    printf("readers: %d reads during commits, all at a commit\n", seen);
    kvs_close(st);
    return 0;
}

/* Every failure point of a commit that seals a block (and compacts): the session reopens
 * at the previous commit or, when only the compaction failed, the new one. */
/* A new store at dir holding session "e" with ids[0..n) committed, reopened with the
 * ENOSPC hook at `fail` bytes and "e" opened in *s for writing; NULL on error (printed). */
static kvs_store *hooked(const char *dir, long fail, const int32_t *ids, size_t n, session *s) {
    kvs_store *st = store(dir, NULL);
    if (!st) return NULL;
    int ok = sess_open(st, "e", &m1, s, SESS_WRITE, err, sizeof err) == 0;
    ok = ok && feed(s, ids, n) == 0 && sess_commit(s, err, sizeof err) == 0;
    if (ok) sess_close(s);
    kvs_close(st);
    if (!ok) {
        fprintf(stderr, "%s\n", err);
        return NULL;
    }
    char v[32];
    snprintf(v, sizeof v, "%ld", fail);
    setenv("QWEN_KVS_FAIL_AFTER", v, 1);
    st = store(dir, NULL);
    unsetenv("QWEN_KVS_FAIL_AFTER");
    if (st && sess_open(st, "e", &m1, s, SESS_WRITE, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        kvs_close(st);
        return NULL;
    }
    return st;
}

static int t_enospc(const char *dir, long step) {
    int32_t ids[64];
    make_ids(ids, 64, 3, 0);
    int tried = 0;
    char d[4096];
    for (long fail = 0;; fail += step) {
        snprintf(d, sizeof d, "%s/%ld", dir, fail); /* a fresh store: every block is written, not found */
        const char *dir = d;
        session s;
        kvs_store *st = hooked(dir, fail, ids, 14, &s);
        CHECK(st, "fail %ld: setting up", fail);
        CHECK(feed(&s, ids, 40) == 0, "feed");
        int rc = sess_commit(&s, err, sizeof err);
        if (rc < 0)
            CHECK(!strncmp(err, "e: write: No space left on device", 33),
                  "fail %ld: %s", fail, err);
        sess_close(&s);
        kvs_close(st);
        st = store(dir, NULL);
        CHECK(sess_open(st, "e", &m1, &s, SESS_WRITE, err, sizeof err) == 0, "fail %ld: %s", fail, err);
        CHECK(s.kv.n == (rc < 0 ? 14u : 40u), "fail %ld: reopened at %zu (commit rc %d)", fail, s.kv.n, rc);
        CHECK(holds(&s, ids, s.kv.n), "fail %ld: rows", fail);
        /* and it goes on: the next commit works */
        CHECK(feed(&s, ids, 41) == 0 && sess_commit(&s, err, sizeof err) == 0, "after fail %ld: %s", fail, err);
        sess_close(&s);
        if (reopen_holds(st, "e", &m1, ids, 41)) return 1;
        kvs_close(st);
        tried++;
        if (rc == 0) break;
    }
    printf("enospc: %d failure points, every %ld bytes of a commit that seals 2 blocks\n", tried, step);
    return 0;
}

/* Deferred sync (sess_defer_sync), commits of one position each from 17 to 20, with the
 * ENOSPC hook at every byte: the first error (a commit's own write, or the sync of the
 * commit before, reported by the next commit or by sess_sync) is the same words, and the
 * session reopens holding every commit before the failing one. Without the hook, every
 * commit is there after sess_sync. */
static int t_defer(const char *dir) {
    int32_t ids[64];
    make_ids(ids, 64, 4, 0);
    int tried = 0, at_sync = 0;
    char d[4096];
    for (long fail = 0;; fail++) {
        snprintf(d, sizeof d, "%s/%ld", dir, fail);
        session s;
        kvs_store *st = hooked(d, fail, ids, 17, &s);
        CHECK(st, "fail %ld: setting up", fail);
        CHECK(sess_defer_sync(&s, err, sizeof err) == 0, "%s", err);
        size_t good = 17; /* (no block sealed before 32: only the session file is written) */
        int rc = 0;
        for (size_t to = 18; to <= 20 && rc == 0; to++) {
            CHECK(feed(&s, ids, to) == 0, "feed");
            if ((rc = sess_commit(&s, err, sizeof err)) == 0) good = to;
        }
        if (rc == 0 && (rc = sess_sync(&s, err, sizeof err)) < 0) at_sync++;
        if (rc < 0) CHECK(!strncmp(err, "e: write: No space left on device", 33), "fail %ld: %s", fail, err);
        CHECK(sess_sync(&s, err, sizeof err) == 0, "fail %ld: an error reported twice: %s", fail, err);
        sess_close(&s);
        kvs_close(st);
        st = store(d, NULL);
        CHECK(sess_open(st, "e", &m1, &s, SESS_READ, err, sizeof err) == 0, "fail %ld: %s", fail, err);
        CHECK(s.kv.n == good, "fail %ld: reopened at %zu, %zu committed (rc %d)", fail, s.kv.n, good, rc);
        CHECK(holds(&s, ids, s.kv.n), "fail %ld: rows", fail);
        sess_close(&s);
        kvs_close(st);
        tried++;
        if (rc == 0) break;
    }
    CHECK(at_sync > 0, "no failure point made the last deferred sync fail");
    printf("defer: %d failure points, %d of them the last commit's deferred sync\n", tried, at_sync);
    return 0;
}

/* Truncate the session file at every byte of its last commit: it opens at the one before. */
static int t_torn(const char *dir) {
    kvs_store *st = store(dir, NULL);
    CHECK(st, "open");
    int32_t ids[64];
    make_ids(ids, 64, 4, 0);
    session s;
    CHECK(sess_open(st, "t", &m1, &s, SESS_WRITE, err, sizeof err) == 0, "%s", err);
    CHECK(feed(&s, ids, 10) == 0 && sess_commit(&s, err, sizeof err) == 0, "%s", err);
    char path[4096];
    snprintf(path, sizeof path, "%s/sessions/t.kvs", dir);
    struct stat sb;
    stat(path, &sb);
    off_t before = sb.st_size;
    CHECK(feed(&s, ids, 13) == 0 && sess_commit(&s, err, sizeof err) == 0, "%s", err);
    sess_close(&s);
    stat(path, &sb);
    off_t after = sb.st_size;
    mapped f;
    CHECK(map_file(path, &f, err, sizeof err) == 0, "%s", err);
    uint8_t *copy = malloc(f.size);
    memcpy(copy, f.data, f.size);
    unmap_file(&f);
    for (off_t cut = before; cut <= after; cut++) {
        int fd = open(path, O_WRONLY | O_TRUNC);
        CHECK(write(fd, copy, (size_t)cut) == cut, "write");
        if (cut < after) CHECK(write(fd, "\xff\x00junk", 6) == 6, "junk"); /* and garbage after it */
        close(fd);
        CHECK(sess_open(st, "t", &m1, &s, SESS_READ, err, sizeof err) == 0, "cut %ld: %s", (long)cut, err);
        CHECK(holds(&s, ids, cut == after ? 13 : 10), "cut %ld", (long)cut);
        sess_close(&s);
    }
    /* the next writer cuts the garbage and appends after the last good record */
    CHECK(sess_open(st, "t", &m1, &s, SESS_WRITE, err, sizeof err) == 0, "%s", err);
    CHECK(feed(&s, ids, 20) == 0 && sess_commit(&s, err, sizeof err) == 0, "%s", err);
    sess_close(&s);
    free(copy);
    if (reopen_holds(st, "t", &m1, ids, 20)) return 1;
    printf("torn: %ld truncation points\n", (long)(after - before + 1));
    kvs_close(st);
    return 0;
}

/* XOR bytes[0..n) into path at off (from the end if negative): with nonzero bytes the file
 * surely changes, whatever random bytes (nonces, ciphertext) were there. */
static int patch(const char *path, long off, const void *bytes, size_t n) {
    int fd = open(path, O_RDWR);
    if (fd < 0) return -1;
    if (off < 0) off += lseek(fd, 0, SEEK_END);
    uint8_t b[64];
    int rc = -1;
    if (n <= sizeof b && pread(fd, b, n, off) == (ssize_t)n) {
        for (size_t i = 0; i < n; i++) b[i] ^= ((const uint8_t *)bytes)[i];
        rc = pwrite(fd, b, n, off) == (ssize_t)n ? 0 : -1;
    }
    close(fd);
    return rc;
}

static void first_block(const char *dir, char *out, size_t outlen, char *hex) {
    char p[4096];
    snprintf(p, sizeof p, "%s/blocks", dir);
    DIR *d = opendir(p);
    struct dirent *e;
    while ((e = readdir(d)))
        if (strlen(e->d_name) == 2) break;
    char q[4352];
    snprintf(q, sizeof q, "%s/%s", p, e->d_name);
    closedir(d);
    d = opendir(q);
    while ((e = readdir(d)))
        if (strlen(e->d_name) == 64) break;
    if (snprintf(out, outlen, "%s/%s", q, e->d_name) >= (int)outlen) out[0] = 0;
    memcpy(hex, e->d_name, 64);
    hex[64] = 0;
    closedir(d);
}

static void count_report(void *ctx, const char *msg) {
    char *last = ctx;
    snprintf(last, 512, "%s", msg);
    fprintf(stderr, "verify: %s\n", msg);
}

static int t_corrupt(const char *dir) {
    kvs_store *st = store(dir, NULL);
    CHECK(st, "open");
    int32_t ids[40];
    make_ids(ids, 40, 1, 0);
    if (write_session(st, "a", &m1, ids, 40)) return 1;
    char last[512] = "";
    CHECK(kvs_verify(st, NULL, count_report, last, err, sizeof err) == 0, "clean store: %s", last);
    char path[4096 + 400], hex[65], want[200];
    first_block(dir, path, sizeof path, hex);
    uint8_t x = 0x5a;
    CHECK(patch(path, 400, &x, 1) == 0, "patch");
    snprintf(want, sizeof want, "block %s: checksum mismatch", hex);
    CHECK(kvs_verify(st, NULL, count_report, last, err, sizeof err) == 1 && strstr(last, want), "verify: %s", last);
    CHECK(kvs_verify(st, "a", count_report, last, err, sizeof err) == 1 && strstr(last, want), "verify a: %s", last);
    session s;
    CHECK(sess_open(st, "a", &m1, &s, SESS_READ, err, sizeof err) < 0, "opened a corrupt session");
    CHECK(strstr(err, want) && !strncmp(err, "a: ", 3), "open: %s", err);
    /* a prompt whose prefix is that block recomputes it, and the commit heals the file */
    CHECK(sess_open(st, "b", &m1, &s, SESS_WRITE, err, sizeof err) == 0, "%s", err);
    long got = sess_reuse_prefix(&s, ids, 40, err, sizeof err);
    CHECK(got == 0 || got == 16, "reuse over a corrupt block: %ld", got);
    CHECK(feed(&s, ids, 40) == 0 && sess_commit(&s, err, sizeof err) == 0, "%s", err);
    sess_close(&s);
    CHECK(kvs_verify(st, NULL, count_report, last, err, sizeof err) == 0, "healed: %s", last);
    if (reopen_holds(st, "a", &m1, ids, 40)) return 1;
    /* a flipped byte in a record: verify says so, the log ends before it */
    snprintf(path, sizeof path, "%s/sessions/a.kvs", dir);
    CHECK(patch(path, -40, &x, 1) == 0, "patch");
    CHECK(kvs_verify(st, "a", count_report, last, err, sizeof err) == 1 && strstr(last, "after the last good record"),
          "record: %s", last);
    CHECK(kvs_verify(st, "nosuch", count_report, last, err, sizeof err) < 0 && strstr(err, "nosuch: no such session"),
          "%s", err);
    /* blocks loaded by several threads, all corrupt: the error names the first */
    int32_t big[300];
    make_ids(big, 300, 8, 0);
    if (write_session(st, "big", &m1, big, 300)) return 1;
    for (int i = 0; i < 18; i++) {
        block_hex(hex, &m1, big, i);
        snprintf(path, sizeof path, "%s/blocks/%.2s/%s", dir, hex, hex);
        CHECK(patch(path, 200, &x, 1) == 0, "patch %s", path);
    }
    block_hex(hex, &m1, big, 0);
    snprintf(want, sizeof want, "big: block %s: checksum mismatch", hex);
    CHECK(sess_open(st, "big", &m1, &s, SESS_READ, err, sizeof err) < 0 && !strcmp(err, want), "big: %s", err);
    kvs_close(st);
    return 0;
}

/* Write bytes as a whole new session file. */
static int put(const char *dir, const char *name, const uint8_t *b, size_t n) {
    char p[4096];
    snprintf(p, sizeof p, "%s/sessions/%s.kvs", dir, name);
    return write_atomic(p, b, n, err, sizeof err);
}

static int expect_open_error(kvs_store *st, const char *name, const model *m, const char *want) {
    session s;
    int rc = sess_open(st, name, m, &s, SESS_READ, err, sizeof err);
    if (rc == 0) sess_close(&s);
    CHECK(rc < 0, "%s opened", name);
    CHECK(strstr(err, want) != NULL, "%s: got '%s', want '%s'", name, err, want);
    /* and for writing, which must not clobber it either */
    rc = sess_open(st, name, m, &s, SESS_WRITE, err, sizeof err);
    if (rc == 0) sess_close(&s);
    CHECK(rc < 0 && strstr(err, want), "%s for writing: '%s'", name, err);
    return 0;
}

static int t_bad(const char *dir) {
    kvs_store *st = store(dir, NULL);
    CHECK(st, "open");
    int32_t ids[40];
    make_ids(ids, 40, 1, 0);
    if (write_session(st, "good", &m1, ids, 40)) return 1;
    char p[4096];
    snprintf(p, sizeof p, "%s/sessions/good.kvs", dir);
    mapped f;
    CHECK(map_file(p, &f, err, sizeof err) == 0, "%s", err);
    size_t n = f.size;
    uint8_t *g = malloc(n + 64);
    memcpy(g, f.data, n);
    unmap_file(&f);
    uint8_t *b = malloc(n + 64);
    int bad = 0;
    bad |= put(dir, "trunc", g, 50) || expect_open_error(st, "trunc", &m1, "trunc: truncated header (50 of 96 bytes)");
    memcpy(b, g, n), b[0] = 'X';
    bad |= put(dir, "magic", b, n) || expect_open_error(st, "magic", &m1, "magic: not a session file (bad magic)");
    memcpy(b, g, n), put_le32(b + 8, 2);
    bad |= put(dir, "ver", b, n) || expect_open_error(st, "ver", &m1, "ver: session format version 2, this build reads 1");
    memcpy(b, g, n), b[70] ^= 1;
    bad |= put(dir, "hsum", b, n) || expect_open_error(st, "hsum", &m1, "hsum: header checksum mismatch");
    bad |= expect_open_error(st, "good", &m2, "good: " KVS_OTHER_MODEL);
    /* a BLOCKS record claiming more blocks than it holds, with a good checksum: an error, not a read past it */
    memcpy(b, g, 96);
    uint8_t rec[8 + 4 + 32 + 32];
    put_le32(rec, 1), put_le32(rec + 4, 36), put_le32(rec + 8, 1000000);
    memset(rec + 12, 7, 32);
    crypto_generichash(rec + 44, 32, rec, 44, NULL, 0);
    memcpy(b + 96, rec, sizeof rec);
    bad |= put(dir, "count", b, 96 + sizeof rec) ||
           expect_open_error(st, "count", &m1, "count: record at offset 96: BLOCKS claims 1000000 blocks in 36 bytes");
    /* a record length past the end is a commit that never finished: the session before it */
    memcpy(b, g, n);
    put_le32(b + n, 2), put_le32(b + n + 4, 0x7fffffff);
    session s;
    bad |= put(dir, "len", b, n + 8);
    CHECK(sess_open(st, "len", &m1, &s, SESS_READ, err, sizeof err) == 0 && holds(&s, ids, 40), "len: %s", err);
    sess_close(&s);
    /* a block name that is missing */
    memcpy(b, g, 96);
    put_le32(rec + 8, 1);
    crypto_generichash(rec + 44, 32, rec, 44, NULL, 0);
    memcpy(b + 96, rec, sizeof rec);
    bad |= put(dir, "missing", b, 96 + sizeof rec) ||
           expect_open_error(st, "missing", &m1, "missing: block 0707070707070707070707070707070707070707070707070707070707070707: missing");
    bad |= expect_open_error(st, "nosuch", NULL, "nosuch: no such session");
    CHECK(sess_open(st, "../x", &m1, &s, SESS_WRITE, err, sizeof err) < 0 && strstr(err, "session name '../x'"),
          "%s", err);
    CHECK(sess_open(st, ".x", &m1, &s, SESS_WRITE, err, sizeof err) < 0, ".x accepted");
    free(b);
    free(g);
    CHECK(!bad, "bad input cases failed");
    kvs_close(st);
    /* a store of a newer version */
    char v[4096];
    snprintf(v, sizeof v, "%s/VERSION", dir);
    CHECK(write_atomic(v, "qwen3-pipe kv 2\n", 16, err, sizeof err) == 0, "%s", err);
    CHECK(!kvs_open(dir, NULL, err, sizeof err) && strstr(err, "VERSION says 'qwen3-pipe kv 2'"), "%s", err);
    CHECK(write_atomic(v, "qwen3-pipe kv 1\n", 16, err, sizeof err) == 0, "%s", err);
    return 0;
}

static int t_crypt(const char *dir, const char *key, const char *wrong) {
    char plain[4096];
    snprintf(plain, sizeof plain, "%s-plain", dir);
    kvs_close(store(plain, NULL));
    CHECK(!kvs_open(plain, key, err, sizeof err) && strstr(err, "is not encrypted (it was made without a key)"), "%s",
          err);
    if (t_roundtrip(dir, key)) return 1;
    CHECK(!kvs_open(dir, wrong, err, sizeof err), "wrong key accepted");
    char want[4200];
    snprintf(want, sizeof want, "wrong key for store %s", dir);
    CHECK(!strcmp(err, want), "'%s'", err);
    CHECK(!kvs_open(dir, NULL, err, sizeof err) && strstr(err, "is encrypted: give its key"), "%s", err);
    /* the tokens are not in the clear: search the files for the first block's ids */
    kvs_store *st = store(dir, key);
    int32_t ids[200];
    make_ids(ids, 200, 1, 0);
    char p[4096 + 400], hex[65];
    first_block(dir, p, sizeof p, hex);
    mapped f;
    CHECK(map_file(p, &f, err, sizeof err) == 0, "%s", err);
    uint8_t pat[16];
    for (int i = 0; i < 4; i++) put_le32(pat + 4 * i, (uint32_t)ids[16 + i]);
    CHECK(!memmem(f.data, f.size, pat, 16), "tokens in the clear in a block");
    unmap_file(&f);
    CHECK(kvs_verify(st, NULL, NULL, NULL, err, sizeof err) == 0, "verify");
    kvs_close(st);
    return 0;
}

static int t_gc(const char *dir) {
    kvs_store *st = store(dir, NULL);
    CHECK(st, "open");
    int32_t a[64], b[64];
    make_ids(a, 64, 1, 64);
    make_ids(b, 64, 2, 32);
    if (write_session(st, "a", &m1, a, 64) || write_session(st, "b", &m1, b, 64)) return 1;
    CHECK(count_blocks(dir) == 6, "%zu blocks, want 6", count_blocks(dir));
    kvs_gc_stats gs;
    CHECK(kvs_gc(st, -1, &gs, err, sizeof err) == 0 && gs.blocks_dropped == 0, "gc dropped referenced blocks");
    CHECK(kvs_rm(st, "b", err, sizeof err) == 0, "%s", err);
    /* a budget the store fits: b's two blocks stay as a prefix cache */
    CHECK(kvs_gc(st, 1LL << 40, &gs, err, sizeof err) == 0 && gs.blocks_dropped == 0, "budget");
    /* make one of b's blocks older, then a budget that fits one more block: the older goes */
    session s;
    CHECK(sess_open(st, "x", &m1, &s, SESS_WRITE, err, sizeof err) == 0, "%s", err);
    CHECK(sess_reuse_prefix(&s, b, 64, err, sizeof err) == 64, "reuse b"); /* touches b's blocks */
    sess_close(&s);
    CHECK(kvs_rm(st, "x", err, sizeof err) == 0, "%s", err);
    char p[4400];
    snprintf(p, sizeof p, "%s/sessions/x.kvs", dir);
    /* blocks 2 and 3 of b are b's own: age block 2 */
    char hex[65], old[4400];
    block_hex(hex, &m1, b, 2);
    snprintf(old, sizeof old, "%s/blocks/%.2s/%s", dir, hex, hex);
    struct timespec tv[2] = {{1000000, 0}, {1000000, 0}};
    CHECK(utimensat(AT_FDCWD, old, tv, 0) == 0, "age %s: %s", old, strerror(errno));
    kvs_info in;
    CHECK(kvs_stat(st, "a", &in, err, sizeof err) == 0, "%s", err);
    size_t blk = in.block_bytes / 4, total = 0;
    char **names;
    size_t count;
    kvs_list(st, &names, &count, err, sizeof err);
    for (size_t i = 0; i < count; i++) {
        kvs_info j;
        kvs_stat(st, names[i], &j, err, sizeof err);
        total += j.file_bytes;
    }
    kvs_list_free(names, count);
    total += 6 * blk;
    CHECK(kvs_gc(st, (long long)(total - blk), &gs, err, sizeof err) == 0, "%s", err);
    CHECK(gs.blocks_dropped == 1 && access(old, F_OK) < 0, "LRU: dropped %zu", gs.blocks_dropped);
    CHECK(kvs_gc(st, -1, &gs, err, sizeof err) == 0 && gs.blocks_dropped == 1, "rest: %zu", gs.blocks_dropped);
    CHECK(count_blocks(dir) == 4, "%zu blocks left", count_blocks(dir));
    if (reopen_holds(st, "a", &m1, a, 64)) return 1;
    CHECK(kvs_verify(st, NULL, NULL, NULL, err, sizeof err) == 0, "verify after gc");
    kvs_close(st);
    return 0;
}

static int t_export(const char *dir, const char *key) {
    char d1[4096], d2[4096], file[4096];
    snprintf(d1, sizeof d1, "%s/one", dir);
    snprintf(d2, sizeof d2, "%s/two", dir);
    snprintf(file, sizeof file, "%s/a.kvx", dir);
    kvs_store *st = store(d1, key);
    CHECK(st, "open");
    int32_t a[75];
    make_ids(a, 75, 1, 0);
    if (write_session(st, "a", &m1, a, 75)) return 1;
    CHECK(kvs_export(st, "a", file, err, sizeof err) == 0, "%s", err);
    kvs_store *st2 = store(d2, key);
    CHECK(kvs_import(st2, file, "b", err, sizeof err) == 0, "%s", err);
    CHECK(kvs_import(st2, file, "b", err, sizeof err) < 0 && strstr(err, "b: session exists"), "%s", err);
    if (reopen_holds(st2, "b", &m1, a, 75)) return 1;
    CHECK(count_blocks(d2) == 4, "imported %zu blocks", count_blocks(d2));
    /* a damaged export is refused whole */
    uint8_t x = 1;
    CHECK(patch(file, 300, &x, 1) == 0, "patch");
    CHECK(kvs_import(st2, file, "c", err, sizeof err) < 0 && strstr(err, "checksum mismatch"), "%s", err);
    kvs_close(st);
    kvs_close(st2);
    return 0;
}

/* Sizes and times at Qwen3-0.6B dims: 28 layers, kv_dim 1024 (8 kv heads x 128), dim 1024. */
static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int bench(const char *dir, size_t n, int commits) {
    model m = fake(28, 1024, 1024, 9);
    kvs_store *st = store(dir, NULL);
    CHECK(st, "open");
    int32_t *ids = malloc(n * sizeof *ids);
    make_ids(ids, n, 1, 0);
    session s;
    CHECK(sess_open(st, "bench", &m, &s, SESS_WRITE, err, sizeof err) == 0, "%s", err);
    CHECK(feed(&s, ids, n) == 0, "feed");
    double t0 = now();
    CHECK(sess_commit(&s, err, sizeof err) == 0, "%s", err);
    double tbulk = now() - t0;
    sess_close(&s);
    kvs_info in;
    CHECK(kvs_stat(st, "bench", &in, err, sizeof err) == 0, "%s", err);
    printf("%zu positions: session file %zu bytes, blocks %zu bytes: %.0f bytes/token (rows alone: %d)\n", n,
           in.file_bytes, in.block_bytes, (double)(in.file_bytes + in.block_bytes) / (double)n, 28 * 2 * 1024 * 4);
    printf("commit of %zu positions at once: %.3f s\n", n, tbulk);
    double *lat = malloc((size_t)commits * sizeof *lat);
    for (int rep = 0; rep < 5; rep++) {
        t0 = now();
        CHECK(sess_open(st, "bench", &m, &s, SESS_READ, err, sizeof err) == 0, "%s", err);
        double t = now() - t0;
        printf("resume (open, read and check %zu positions): %.1f ms\n", s.kv.n, t * 1e3);
        sess_close(&s);
    }
    /* decode: one position per commit */
    CHECK(sess_open(st, "bench", &m, &s, SESS_WRITE, err, sizeof err) == 0, "%s", err);
    int32_t *more = malloc((n + (size_t)commits) * sizeof *more);
    make_ids(more, n + (size_t)commits, 1, n);
    for (int i = 0; i < commits; i++) {
        CHECK(feed(&s, more, s.kv.n + 1) == 0, "feed");
        t0 = now();
        CHECK(sess_commit(&s, err, sizeof err) == 0, "%s", err);
        lat[i] = now() - t0;
    }
    sess_close(&s);
    double sorted[100000];
    memcpy(sorted, lat, (size_t)commits * sizeof *lat);
    qsort(sorted, (size_t)commits, sizeof *sorted, cmp_d);
    double sealing = 0, plain = 0;
    int ns = 0, np = 0;
    for (int i = 0; i < commits; i++) {
        if ((n + (size_t)i + 1) % 16 == 0) sealing += lat[i], ns++;
        else plain += lat[i], np++;
    }
    printf("commit of 1 position (fdatasync), %d commits: median %.3f ms, p90 %.3f ms, max %.3f ms; "
           "mean %.3f ms without a seal, %.3f ms with one (%d seals)\n",
           commits, sorted[commits / 2] * 1e3, sorted[commits * 9 / 10] * 1e3, sorted[commits - 1] * 1e3,
           np ? plain / np * 1e3 : 0, ns ? sealing / ns * 1e3 : 0, ns);
    free(lat);
    free(more);
    free(ids);
    kvs_close(st);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: kvs_test CASE DIR [ARGS]\n");
        return 2;
    }
    m1 = fake(2, 8, 6, 1);
    m2 = fake(2, 8, 6, 2);
    const char *c = argv[1], *dir = argv[2];
    const char *key = NULL;
    for (int i = 3; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--key")) key = argv[i + 1];
    int rc;
    if (!strcmp(c, "roundtrip")) rc = t_roundtrip(dir, key);
    else if (!strcmp(c, "reuse")) rc = t_reuse(dir);
    else if (!strcmp(c, "fork")) rc = t_fork_trim(dir);
    else if (!strcmp(c, "writers")) rc = t_writers(dir);
    else if (!strcmp(c, "crash")) rc = t_crash(dir, argc > 3 ? atoi(argv[3]) : 300, argc > 4 ? (unsigned)atoi(argv[4]) : 1);
    else if (!strcmp(c, "readers")) rc = t_readers(dir, argc > 3 ? atoi(argv[3]) : 2000);
    else if (!strcmp(c, "enospc")) rc = t_enospc(dir, argc > 3 ? atol(argv[3]) : 97);
    else if (!strcmp(c, "defer")) rc = t_defer(dir);
    else if (!strcmp(c, "torn")) rc = t_torn(dir);
    else if (!strcmp(c, "corrupt")) rc = t_corrupt(dir);
    else if (!strcmp(c, "bad")) rc = t_bad(dir);
    else if (!strcmp(c, "crypt") && argc > 4) rc = t_crypt(dir, argv[3], argv[4]);
    else if (!strcmp(c, "gc")) rc = t_gc(dir);
    else if (!strcmp(c, "export")) rc = t_export(dir, key);
    else if (!strcmp(c, "bench")) rc = bench(dir, argc > 3 ? (size_t)atol(argv[3]) : 2048, argc > 4 ? atoi(argv[4]) : 200);
    else if (!strcmp(c, "make") && argc > 4) {
        kvs_store *st = store(dir, key);
        int32_t ids[4096];
        size_t n = (size_t)atol(argv[4]);
        make_ids(ids, n, argc > 5 && argv[5][0] != '-' ? (unsigned)atoi(argv[5]) : 1, 0);
        rc = !st || n > 4096 || write_session(st, argv[3], &m1, ids, n);
        kvs_close(st);
    } else if (!strcmp(c, "check") && argc > 4) {
        kvs_store *st = store(dir, key);
        int32_t ids[4096];
        size_t n = (size_t)atol(argv[4]);
        make_ids(ids, n, argc > 5 && argv[5][0] != '-' ? (unsigned)atoi(argv[5]) : 1, 0);
        rc = !st || reopen_holds(st, argv[3], &m1, ids, n);
        kvs_close(st);
    } else {
        fprintf(stderr, "kvs_test: unknown case %s\n", c);
        return 2;
    }
    if (rc || failures) return 1;
    return 0;
}
