/* ids: token streams in and out (see ids.h). */
#include "ids.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

void ids_open(ids_reader *r, FILE *f) {
    memset(r, 0, sizeof *r);
    r->f = f;
}

void ids_close(ids_reader *r) {
    free(r->lbuf);
    npy_free(&r->rec);
    r->lbuf = NULL;
}

static int push(int32_t **ids, size_t *n, size_t *cap, int32_t v) {
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 256;
        int32_t *p = realloc(*ids, c * sizeof *p);
        if (!p) return -1;
        *ids = p;
        *cap = c;
    }
    (*ids)[(*n)++] = v;
    return 0;
}

static int next_npy(ids_reader *r, int32_t **ids, size_t *n, size_t *cap, size_t vocab, char *err,
                    size_t errlen) {
    char e[200];
    int magic_read = r->line == 0; /* the sniffer consumed the first record's magic */
    int got = npy_read(r->f, &r->rec, magic_read, e, sizeof e);
    r->line++;
    if (got <= 0) return got < 0 ? seterr(err, errlen, "record %zu: %s", r->line, e) : 0;
    if (r->rec.dtype != NPY_I32 || r->rec.ndim > 2 || (r->rec.ndim == 2 && r->rec.shape[0] != 1))
        return seterr(err, errlen, "record %zu: token ids must be int32 of shape (n,) or (1, n)", r->line);
    const int32_t *v = r->rec.data;
    *n = 0;
    for (size_t i = 0; i < r->rec.count; i++) {
        if (v[i] < 0 || (vocab && (size_t)v[i] >= vocab))
            return seterr(err, errlen, "record %zu: id %d out of range [0, %zu)", r->line, v[i], vocab);
        if (push(ids, n, cap, v[i]) < 0) return seterr(err, errlen, "out of memory");
    }
    return 1;
}

static int next_text(ids_reader *r, int32_t **ids, size_t *n, size_t *cap, size_t vocab, char *err,
                     size_t errlen) {
    ssize_t len = getline(&r->lbuf, &r->lcap, r->f);
    if (len < 0) return ferror(r->f) ? seterr(err, errlen, "read: %s", strerror(errno)) : 0;
    r->line++;
    *n = 0;
    const char *p = r->lbuf, *end = r->lbuf + len;
    while (p < end) {
        if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') {
            p++;
            continue;
        }
        if (*p < '0' || *p > '9')
            return seterr(err, errlen, "line %zu: '%c' is not part of a token id", r->line, *p);
        unsigned long v = 0;
        while (p < end && *p >= '0' && *p <= '9') {
            v = v * 10 + (unsigned long)(*p++ - '0');
            if (v > INT32_MAX) return seterr(err, errlen, "line %zu: token id too large", r->line);
        }
        if (vocab && v >= vocab)
            return seterr(err, errlen, "line %zu: id %lu out of range [0, %zu)", r->line, v, vocab);
        if (push(ids, n, cap, (int32_t)v) < 0) return seterr(err, errlen, "out of memory");
    }
    return 1;
}

int ids_next(ids_reader *r, int32_t **ids, size_t *n, size_t *cap, size_t vocab, char *err,
             size_t errlen) {
    if (r->mode == 0) {
        int c = getc(r->f);
        if (c == EOF) return 0;
        if (c == (unsigned char)NPY_MAGIC[0]) {
            char m[5];
            if (fread(m, 1, 5, r->f) != 5 || memcmp(m, NPY_MAGIC + 1, 5))
                return seterr(err, errlen, "record 1: bad .npy magic");
            r->mode = 2;
        } else {
            ungetc(c, r->f);
            r->mode = 1;
        }
    }
    return r->mode == 2 ? next_npy(r, ids, n, cap, vocab, err, errlen)
                        : next_text(r, ids, n, cap, vocab, err, errlen);
}

int ids_write_text(FILE *f, const int32_t *ids, size_t n) {
    char tmp[16];
    for (size_t i = 0; i < n; i++) {
        int l = snprintf(tmp, sizeof tmp, i ? " %d" : "%d", ids[i]);
        if (fwrite(tmp, 1, (size_t)l, f) != (size_t)l) return -1;
    }
    return putc('\n', f) == EOF ? -1 : 0;
}
