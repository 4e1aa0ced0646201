/* util: errors, files, atomic writes, the cache directory, growable buffers. */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int seterr(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int map_file(const char *path, mapped *m, char *err, size_t errlen) {
    m->data = NULL;
    m->size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return seterr(err, errlen, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        return seterr(err, errlen, "%s: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return seterr(err, errlen, "%s: not a regular file", path);
    }
    if (st.st_size > 0) {
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            int e = errno;
            close(fd);
            return seterr(err, errlen, "%s: mmap: %s", path, strerror(e));
        }
        m->data = p;
        m->size = (size_t)st.st_size;
    }
    close(fd);
    return 0;
}

void unmap_file(mapped *m) {
    if (m->data) munmap((void *)m->data, m->size);
    m->data = NULL;
    m->size = 0;
}

int read_all(FILE *f, char **out, size_t *len, char *err, size_t errlen) {
    buf b = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (buf_append(&b, chunk, n) < 0) {
            buf_free(&b);
            return seterr(err, errlen, "read: out of memory");
        }
    if (ferror(f)) {
        buf_free(&b);
        return seterr(err, errlen, "read: %s", strerror(errno));
    }
    if (buf_putc(&b, 0) < 0) {
        buf_free(&b);
        return seterr(err, errlen, "read: out of memory");
    }
    *out = b.data;
    *len = b.len - 1;
    return 0;
}

int write_atomic(const char *path, const void *data, size_t len, char *err, size_t errlen) {
    size_t pl = strlen(path);
    char *tmp = malloc(pl + 32);
    if (!tmp) return seterr(err, errlen, "%s: out of memory", path);
    snprintf(tmp, pl + 32, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        seterr(err, errlen, "%s: %s", tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) goto fail;
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) < 0) goto fail;
    if (close(fd) < 0) {
        fd = -1;
        goto fail;
    }
    if (rename(tmp, path) < 0) {
        fd = -1;
        goto fail;
    }
    free(tmp);
    return 0;
fail:
    seterr(err, errlen, "%s: %s", path, strerror(errno ? errno : EIO));
    if (fd >= 0) close(fd);
    unlink(tmp);
    free(tmp);
    return -1;
}

int write_mapped(const char *path, size_t size, int (*fill)(void *ctx, uint8_t *base, char *err, size_t errlen),
                 void *ctx, char *err, size_t errlen) {
    size_t pl = strlen(path) + 16;
    char *tmp = malloc(pl);
    uint8_t *base = MAP_FAILED;
    int fd = -1, rc = -1;
    if (!tmp) return seterr(err, errlen, "%s: out of memory", path);
    snprintf(tmp, pl, "%s.tmpXXXXXX", path);
    if ((fd = mkstemp(tmp)) < 0) {
        seterr(err, errlen, "%s: %s", tmp, strerror(errno));
        goto out;
    }
    int e = posix_fallocate(fd, 0, (off_t)size);
    if (e) {
        seterr(err, errlen, "%s: %s", tmp, strerror(e));
        goto out;
    }
    if ((base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) == MAP_FAILED) {
        seterr(err, errlen, "%s: mmap: %s", tmp, strerror(errno));
        goto out;
    }
    if (fill(ctx, base, err, errlen) < 0) goto out;
    if (msync(base, size, MS_SYNC) < 0 || fsync(fd) < 0) {
        seterr(err, errlen, "%s: %s", tmp, strerror(errno));
        goto out;
    }
    if (rename(tmp, path) < 0) {
        seterr(err, errlen, "%s: %s", path, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    if (base != MAP_FAILED) munmap(base, size);
    if (fd >= 0) {
        close(fd);
        if (rc < 0) unlink(tmp);
    }
    free(tmp);
    return rc;
}

static int mkdir_p(char *path) {
    for (char *s = path + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(path, 0700) < 0 && errno != EEXIST) return -1;
        *s = '/';
    }
    if (mkdir(path, 0700) < 0 && errno != EEXIST) return -1;
    return 0;
}

int cache_dir(char *out, size_t outlen, char *err, size_t errlen) {
    const char *q = getenv("QWEN_CACHE"), *x = getenv("XDG_CACHE_HOME"), *h = getenv("HOME");
    int n;
    if (q && *q) n = snprintf(out, outlen, "%s", q);
    else if (x && *x) n = snprintf(out, outlen, "%s/qwen3-pipe", x);
    else if (h && *h) n = snprintf(out, outlen, "%s/.cache/qwen3-pipe", h);
    else return seterr(err, errlen, "cache: set QWEN_CACHE, XDG_CACHE_HOME or HOME");
    if (n < 0 || (size_t)n >= outlen) return seterr(err, errlen, "cache: path too long");
    if (mkdir_p(out) < 0) return seterr(err, errlen, "cache: %s: %s", out, strerror(errno));
    return 0;
}

#ifndef DEFAULT_MODEL
#define DEFAULT_MODEL "build/models/tiny"
#endif

const char *model_dir(const char *given) {
    const char *env = getenv("QWEN_MODEL");
    if (given && *given) return given;
    if (env && *env) return env;
    return DEFAULT_MODEL;
}

FILE *open_input(const char *path, const char **name, char *err, size_t errlen) {
    if (!path || !strcmp(path, "-")) {
        *name = "stdin";
        return stdin;
    }
    *name = path;
    FILE *f = fopen(path, "rb");
    if (!f) seterr(err, errlen, "%s: %s", path, strerror(errno));
    return f;
}

int parse_long(const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

void progress_bar(void *ctx, size_t done, size_t total) {
    FILE *f = ctx;
    int pct = total ? (int)(100.0 * (double)done / (double)total) : 100;
    char bar[41];
    for (int i = 0; i < 40; i++) bar[i] = i < pct * 40 / 100 ? '#' : '.';
    bar[40] = 0;
    fprintf(f, "\rquantizing [%s] %3d%%%s", bar, pct, done >= total ? "\n" : "");
    fflush(f);
}

double now_sec(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int buf_reserve(buf *b, size_t extra) {
    if (b->len + extra <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra) cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

int buf_append(buf *b, const void *p, size_t n) {
    if (buf_reserve(b, n) < 0) return -1;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int buf_putc(buf *b, char c) { return buf_append(b, &c, 1); }

int buf_printf(buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || buf_reserve(b, (size_t)n + 1) < 0) return -1;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void buf_free(buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
