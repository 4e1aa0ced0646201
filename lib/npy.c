/* npy: read and write .npy 1.0 records. The header is a Python dict literal; we parse
 * only the three keys numpy writes ('descr', 'fortran_order', 'shape') in any order and
 * refuse anything else. Data is little-endian on disk and on every host we build for
 * (checked below), so element data is copied as is. */
#include "npy.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "npy: little-endian hosts only");

const char NPY_MAGIC[6] = {(char)0x93, 'N', 'U', 'M', 'P', 'Y'};

static const struct {
    npy_dtype t;
    const char *descr;
    size_t size;
} dtypes[] = {
    {NPY_I32, "<i4", 4},
    {NPY_F32, "<f4", 4},
    {NPY_F16, "<f2", 2},
    {NPY_BF16, "<u2", 2},
};

size_t npy_elsize(npy_dtype t) { return dtypes[t].size; }

/* Skip spaces; return the pointer. */
static const char *ws(const char *p) {
    while (*p == ' ') p++;
    return p;
}

static int parse_header(const char *h, npy *a, char *err, size_t errlen) {
    int have_descr = 0, have_order = 0, have_shape = 0;
    const char *p = ws(h);
    if (*p++ != '{') return seterr(err, errlen, "npy: header is not a dict");
    for (;;) {
        p = ws(p);
        if (*p == '}') break;
        if (*p != '\'') return seterr(err, errlen, "npy: bad header key");
        const char *k = ++p;
        while (*p && *p != '\'') p++;
        if (!*p) return seterr(err, errlen, "npy: unterminated header key");
        size_t kl = (size_t)(p - k);
        p = ws(p + 1);
        if (*p++ != ':') return seterr(err, errlen, "npy: bad header");
        p = ws(p);
        if (kl == 5 && !memcmp(k, "descr", 5)) {
            if (*p++ != '\'') return seterr(err, errlen, "npy: bad descr");
            const char *v = p;
            while (*p && *p != '\'') p++;
            if (!*p) return seterr(err, errlen, "npy: bad descr");
            size_t vl = (size_t)(p++ - v), i;
            for (i = 0; i < sizeof dtypes / sizeof *dtypes; i++)
                if (strlen(dtypes[i].descr) == vl && !memcmp(dtypes[i].descr, v, vl)) break;
            if (i == sizeof dtypes / sizeof *dtypes)
                return seterr(err, errlen, "npy: dtype '%.*s' not supported (want <i4, <f4, <f2 or <u2)",
                              (int)vl, v);
            a->dtype = dtypes[i].t;
            have_descr = 1;
        } else if (kl == 13 && !memcmp(k, "fortran_order", 13)) {
            if (!strncmp(p, "False", 5)) p += 5;
            else return seterr(err, errlen, "npy: Fortran order not supported");
            have_order = 1;
        } else if (kl == 5 && !memcmp(k, "shape", 5)) {
            if (*p++ != '(') return seterr(err, errlen, "npy: bad shape");
            a->ndim = 0;
            a->count = 1;
            for (;;) {
                p = ws(p);
                if (*p == ')') break;
                if (*p < '0' || *p > '9') return seterr(err, errlen, "npy: bad shape");
                if (a->ndim == NPY_MAXDIM) return seterr(err, errlen, "npy: more than %d dims", NPY_MAXDIM);
                errno = 0;
                char *e;
                unsigned long long d = strtoull(p, &e, 10);
                if (errno || d > ((size_t)1 << 40)) return seterr(err, errlen, "npy: shape too large");
                p = ws(e);
                a->shape[a->ndim++] = (size_t)d;
                if (d && a->count > ((size_t)1 << 40) / d) return seterr(err, errlen, "npy: shape too large");
                a->count *= (size_t)d;
                if (*p == ',') p++;
                else if (*p != ')') return seterr(err, errlen, "npy: bad shape");
            }
            p++;
            have_shape = 1;
        } else {
            return seterr(err, errlen, "npy: unknown header key '%.*s'", (int)kl, k);
        }
        p = ws(p);
        if (*p == ',') p++;
    }
    if (!have_descr || !have_order || !have_shape)
        return seterr(err, errlen, "npy: header lacks descr, fortran_order or shape");
    return 0;
}

static int read_exact(FILE *f, void *p, size_t n) { return fread(p, 1, n, f) == n ? 0 : -1; }

int npy_read(FILE *f, npy *a, int magic_read, char *err, size_t errlen) {
    uint8_t pre[10];
    size_t got = 0;
    if (magic_read) {
        memcpy(pre, NPY_MAGIC, 6);
        got = 6;
    }
    got += fread(pre + got, 1, sizeof pre - got, f);
    if (got == 0) return ferror(f) ? seterr(err, errlen, "npy: read: %s", strerror(errno)) : 0;
    if (got < sizeof pre) return seterr(err, errlen, "npy: truncated record header");
    if (memcmp(pre, NPY_MAGIC, 6)) return seterr(err, errlen, "npy: bad magic (not an .npy record)");
    if (pre[6] != 1 || pre[7] != 0)
        return seterr(err, errlen, "npy: format version %d.%d not supported (want 1.0)", pre[6], pre[7]);
    size_t hl = le16(pre + 8);
    char h[65536];
    if (read_exact(f, h, hl) < 0) return seterr(err, errlen, "npy: truncated header");
    h[hl] = 0;
    if (hl == 0 || h[hl - 1] != '\n') return seterr(err, errlen, "npy: header not newline-terminated");
    if (parse_header(h, a, err, errlen) < 0) return -1;
    size_t bytes = a->count * npy_elsize(a->dtype);
    if (bytes > a->cap) {
        void *d = realloc(a->data, bytes);
        if (!d) return seterr(err, errlen, "npy: out of memory for %zu bytes", bytes);
        a->data = d;
        a->cap = bytes;
    }
    if (read_exact(f, a->data, bytes) < 0)
        return seterr(err, errlen, "npy: truncated data (want %zu bytes)", bytes);
    return 1;
}

int npy_write(FILE *f, npy_dtype t, int ndim, const size_t *shape, const void *data, char *err,
              size_t errlen) {
    char h[512];
    int n = snprintf(h, sizeof h, "{'descr': '%s', 'fortran_order': False, 'shape': (", dtypes[t].descr);
    size_t count = 1;
    for (int i = 0; i < ndim; i++) {
        n += snprintf(h + n, sizeof h - (size_t)n, "%zu%s", shape[i], i < ndim - 1 ? ", " : ndim == 1 ? "," : "");
        count *= shape[i];
    }
    n += snprintf(h + n, sizeof h - (size_t)n, "), }");
    /* pad with spaces so that magic + version + length + header is a multiple of 64 */
    size_t total = 10 + (size_t)n + 1;
    size_t pad = (64 - total % 64) % 64;
    memset(h + n, ' ', pad);
    n += (int)pad;
    h[n++] = '\n';
    uint8_t pre[10];
    memcpy(pre, NPY_MAGIC, 6);
    pre[6] = 1, pre[7] = 0;
    put_le16(pre + 8, (uint16_t)n);
    if (fwrite(pre, 1, 10, f) != 10 || fwrite(h, 1, (size_t)n, f) != (size_t)n ||
        (count && fwrite(data, npy_elsize(t), count, f) != count))
        return seterr(err, errlen, "npy: write: %s", strerror(errno));
    return 0;
}

void npy_free(npy *a) {
    free(a->data);
    a->data = NULL;
    a->cap = 0;
}
