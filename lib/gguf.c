/* gguf: the bounds-checked GGUF reader behind gguf.h.
 *
 * One cursor (cur) walks the file; every read asks it for n bytes first, so no count,
 * length or offset taken from the file is trusted before it is compared with what is
 * left. Counts are not used to size allocations up front (a 30-byte file may claim 2^64
 * tensors): the tables grow as entries actually parse. The checks follow llama.cpp's
 * gguf.cpp where it has one (versions 2-3, names under 64 bytes, at most 4 dims, no
 * negative or overflowing dims, whole blocks per row, a power-of-two general.alignment,
 * offsets exactly where its writer puts them, no duplicate keys or tensor names, no
 * arrays of arrays), so a file we accept is one llama.cpp accepts, and the reverse. */
#include "gguf.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util.h"

/* Block size (elements) and bytes per block of every ggml type ggml-common.h defines
 * (gguf-py's GGML_QUANT_SIZES), so that a tensor of a type we do not compute with is
 * still sized and bounds-checked, and refused by name only where it is used. */
static const struct {
    uint32_t id;
    const char *name;
    uint32_t blck, size;
} types[] = {
    {0, "F32", 1, 4},        {1, "F16", 1, 2},         {2, "Q4_0", 32, 18},     {3, "Q4_1", 32, 20},
    {6, "Q5_0", 32, 22},     {7, "Q5_1", 32, 24},      {8, "Q8_0", 32, 34},     {9, "Q8_1", 32, 40},
    {10, "Q2_K", 256, 84},   {11, "Q3_K", 256, 110},   {12, "Q4_K", 256, 144},  {13, "Q5_K", 256, 176},
    {14, "Q6_K", 256, 210},  {15, "Q8_K", 256, 292},   {16, "IQ2_XXS", 256, 66}, {17, "IQ2_XS", 256, 74},
    {18, "IQ3_XXS", 256, 98}, {19, "IQ1_S", 256, 50},  {20, "IQ4_NL", 32, 18},  {21, "IQ3_S", 256, 110},
    {22, "IQ2_S", 256, 82},  {23, "IQ4_XS", 256, 136}, {24, "I8", 1, 1},        {25, "I16", 1, 2},
    {26, "I32", 1, 4},       {27, "I64", 1, 8},        {28, "F64", 1, 8},       {29, "IQ1_M", 256, 56},
    {30, "BF16", 1, 2},      {34, "TQ1_0", 256, 54},   {35, "TQ2_0", 256, 66},  {39, "MXFP4", 32, 17},
};

static int type_index(uint32_t t) {
    for (size_t i = 0; i < sizeof types / sizeof *types; i++)
        if (types[i].id == t) return (int)i;
    return -1;
}

const char *gguf_type_name(uint32_t t) {
    int i = type_index(t);
    return i < 0 ? NULL : types[i].name;
}

/* Bytes of one value of a fixed-size metadata type; 0 for string and array. */
static size_t vsize(gguf_vtype t) {
    static const uint8_t sz[GGUF_NTYPES] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return t < GGUF_NTYPES ? sz[t] : 0;
}

static const char *vtype_name(gguf_vtype t) {
    static const char *n[GGUF_NTYPES] = {"u8", "i8",     "u16",   "i16", "u32", "i32", "f32",
                                         "bool", "string", "array", "u64", "i64", "f64"};
    return t < GGUF_NTYPES ? n[t] : "unknown";
}

typedef struct {
    const uint8_t *p;
    size_t size, at;
    const char *name; /* the file, for messages */
    char *err;
    size_t errlen;
} cur;

static size_t left(const cur *c) { return c->size - c->at; }

/* Take n bytes: a pointer to them, or NULL (with err saying what) if fewer are left. */
static const uint8_t *take(cur *c, size_t n, const char *what) {
    if (n > left(c)) {
        seterr(c->err, c->errlen, "%s: %s at byte %zu: %zu bytes needed, %zu left (truncated?)", c->name, what,
               c->at, n, left(c));
        return NULL;
    }
    const uint8_t *r = c->p + c->at;
    c->at += n;
    return r;
}

static int u32(cur *c, uint32_t *v, const char *what) {
    const uint8_t *p = take(c, 4, what);
    return p ? (*v = le32(p), 0) : -1;
}

static int u64(cur *c, uint64_t *v, const char *what) {
    const uint8_t *p = take(c, 8, what);
    return p ? (*v = le64(p), 0) : -1;
}

static int str(cur *c, gguf_str *s, const char *what) {
    uint64_t n;
    if (u64(c, &n, what) < 0) return -1;
    if (n > left(c))
        return seterr(c->err, c->errlen, "%s: %s at byte %zu: length %llu, only %zu bytes left", c->name, what,
                      c->at - 8, (unsigned long long)n, left(c));
    s->s = (const char *)take(c, (size_t)n, what);
    s->n = (size_t)n;
    return 0;
}

int gguf_str_is(gguf_str s, const char *c) { return strlen(c) == s.n && memcmp(s.s, c, s.n) == 0; }

/* Grow *arr (of elem bytes each, *cap of them) to hold n + 1. */
static int grow(void **arr, size_t *cap, size_t n, size_t elem) {
    if (n < *cap) return 0;
    size_t nc = *cap ? *cap * 2 : 16;
    void *p = realloc(*arr, nc * elem);
    if (!p) return -1;
    *arr = p;
    *cap = nc;
    return 0;
}

/* The value of one key/value, after its type. */
static int value(cur *c, gguf_kv *kv) {
    char what[96];
    snprintf(what, sizeof what, "key %.*s", (int)(kv->key.n < 48 ? kv->key.n : 48), kv->key.s);
    size_t start;
    if (kv->type == GGUF_ARRAY) {
        uint32_t et;
        if (u32(c, &et, what) < 0 || u64(c, &kv->count, what) < 0) return -1;
        if (et >= GGUF_NTYPES)
            return seterr(c->err, c->errlen, "%s: %s: array of unknown type %u", c->name, what, (unsigned)et);
        if (et == GGUF_ARRAY)
            return seterr(c->err, c->errlen, "%s: %s: arrays of arrays are not supported", c->name, what);
        kv->elem = (gguf_vtype)et;
        start = c->at;
        if (et == GGUF_STRING) {
            /* each string is at least its 8-byte length: refuse absurd counts at once */
            if (kv->count > left(c) / 8)
                return seterr(c->err, c->errlen, "%s: %s: %llu strings, more than the %zu bytes left can hold",
                              c->name, what, (unsigned long long)kv->count, left(c));
            gguf_str s;
            for (uint64_t i = 0; i < kv->count; i++)
                if (str(c, &s, what) < 0) return -1;
        } else {
            size_t es = vsize(kv->elem);
            if (kv->count > left(c) / es)
                return seterr(c->err, c->errlen, "%s: %s: %llu elements of %s, more than the %zu bytes left hold",
                              c->name, what, (unsigned long long)kv->count, vtype_name(kv->elem), left(c));
            take(c, (size_t)kv->count * es, what);
        }
    } else {
        start = c->at;
        gguf_str s;
        if (kv->type == GGUF_STRING ? str(c, &s, what) < 0 : !take(c, vsize(kv->type), what)) return -1;
    }
    kv->v = c->p + start;
    kv->len = c->at - start;
    return 0;
}

static int strcmp_n(gguf_str a, gguf_str b) {
    int r = memcmp(a.s, b.s, a.n < b.n ? a.n : b.n);
    return r ? r : (a.n > b.n) - (a.n < b.n);
}
static int kv_cmp(const void *a, const void *b) { return strcmp_n((*(gguf_kv *const *)a)->key, (*(gguf_kv *const *)b)->key); }
static int t_cmp(const void *a, const void *b) { return strcmp_n((*(gguf_tensor *const *)a)->name, (*(gguf_tensor *const *)b)->name); }

/* No key (names = 0) or tensor name (names = 1) twice: sort pointers, compare neighbours. */
static int no_duplicates(gguf *g, int names, cur *c) {
    size_t n = names ? g->n_tensors : g->n_kv;
    if (n < 2) return 0;
    const void **v = malloc(n * sizeof *v);
    if (!v) return seterr(c->err, c->errlen, "%s: out of memory", c->name);
    for (size_t i = 0; i < n; i++) v[i] = names ? (const void *)&g->t[i] : (const void *)&g->kv[i];
    qsort(v, n, sizeof *v, names ? t_cmp : kv_cmp);
    for (size_t i = 1; i < n; i++)
        if ((names ? t_cmp : kv_cmp)(&v[i - 1], &v[i]) == 0) {
            gguf_str s = names ? ((const gguf_tensor *)v[i])->name : ((const gguf_kv *)v[i])->key;
            free(v);
            return seterr(c->err, c->errlen, "%s: %s %.*s appears twice", c->name, names ? "tensor" : "key",
                          (int)(s.n < 64 ? s.n : 64), s.s);
        }
    free(v);
    return 0;
}

/* One tensor info: name, dims, type, offset; sized and checked (not yet placed). */
static int tensor_info(cur *c, gguf_tensor *t) {
    if (str(c, &t->name, "tensor name") < 0) return -1;
    int nl = (int)(t->name.n < 64 ? t->name.n : 64);
    const char *nm = t->name.s;
    if (t->name.n > GGUF_MAXNAME)
        return seterr(c->err, c->errlen, "%s: tensor %.*s...: name of %zu bytes (at most %d)", c->name, nl, nm,
                      t->name.n, GGUF_MAXNAME);
    uint32_t nd;
    if (u32(c, &nd, "tensor dims") < 0) return -1;
    if (nd < 1 || nd > GGUF_MAXDIM)
        return seterr(c->err, c->errlen, "%s: tensor %.*s: %u dims (1 to %d supported)", c->name, nl, nm,
                      (unsigned)nd, GGUF_MAXDIM);
    t->ndim = (int)nd;
    for (int i = 0; i < GGUF_MAXDIM; i++) t->ne[i] = 1;
    for (uint32_t i = 0; i < nd; i++)
        if (u64(c, &t->ne[i], "tensor dims") < 0) return -1;
    if (u32(c, &t->type, "tensor type") < 0 || u64(c, &t->offset, "tensor offset") < 0) return -1;
    int ti = type_index(t->type);
    if (ti < 0)
        return seterr(c->err, c->errlen, "%s: tensor %.*s: unknown ggml type %u", c->name, nl, nm, (unsigned)t->type);
    /* elements and bytes, refusing anything past INT64_MAX as ggml does */
    uint64_t elems = 1;
    for (int i = 0; i < GGUF_MAXDIM; i++) {
        if (t->ne[i] > INT64_MAX || (t->ne[i] && elems > INT64_MAX / t->ne[i]))
            return seterr(c->err, c->errlen, "%s: tensor %.*s: dims overflow", c->name, nl, nm);
        elems *= t->ne[i];
    }
    if (t->ne[0] % types[ti].blck)
        return seterr(c->err, c->errlen, "%s: tensor %.*s: rows of %llu elements are not whole %s blocks (%u)",
                      c->name, nl, nm, (unsigned long long)t->ne[0], types[ti].name, (unsigned)types[ti].blck);
    uint64_t blocks = elems / types[ti].blck;
    if (blocks > SIZE_MAX / types[ti].size)
        return seterr(c->err, c->errlen, "%s: tensor %.*s: dims overflow", c->name, nl, nm);
    t->nbytes = (size_t)(blocks * types[ti].size);
    return 0;
}

static size_t align_up(size_t x, size_t a) { return (x + a - 1) / a * a; }

static int parse(gguf *g, cur *c) {
    if (c->size < 4 || memcmp(c->p, "GGUF", 4))
        return seterr(c->err, c->errlen, "%s: not a GGUF file (bad magic)", c->name);
    c->at = 4;
    uint64_t nt, nkv;
    if (u32(c, &g->version, "version") < 0) return -1;
    if (g->version != 2 && g->version != 3)
        return seterr(c->err, c->errlen, "%s: GGUF version %u not supported (2 or 3)", c->name, (unsigned)g->version);
    if (u64(c, &nt, "tensor count") < 0 || u64(c, &nkv, "metadata count") < 0) return -1;
    /* a key/value takes at least 13 bytes, a tensor info 32: claims past that are absurd */
    if (nkv > left(c) / 13)
        return seterr(c->err, c->errlen, "%s: %llu metadata keys, more than the file's %zu bytes can hold", c->name,
                      (unsigned long long)nkv, c->size);
    if (nt > left(c) / 32)
        return seterr(c->err, c->errlen, "%s: %llu tensors, more than the file's %zu bytes can hold", c->name,
                      (unsigned long long)nt, c->size);
    size_t cap = 0;
    for (uint64_t i = 0; i < nkv; i++) {
        if (grow((void **)&g->kv, &cap, g->n_kv, sizeof *g->kv) < 0)
            return seterr(c->err, c->errlen, "%s: out of memory", c->name);
        gguf_kv *kv = &g->kv[g->n_kv];
        memset(kv, 0, sizeof *kv);
        uint32_t ty;
        if (str(c, &kv->key, "key") < 0 || u32(c, &ty, "value type") < 0) return -1;
        if (ty >= GGUF_NTYPES)
            return seterr(c->err, c->errlen, "%s: key %.*s: unknown value type %u", c->name,
                          (int)(kv->key.n < 48 ? kv->key.n : 48), kv->key.s, (unsigned)ty);
        kv->type = (gguf_vtype)ty;
        if (value(c, kv) < 0) return -1;
        g->n_kv++;
    }
    if (no_duplicates(g, 0, c) < 0) return -1;
    g->alignment = 32;
    const gguf_kv *al = gguf_find(g, "general.alignment");
    if (al) {
        uint32_t a = al->type == GGUF_U32 ? le32(al->v) : 0;
        if (!a || (a & (a - 1)))
            return seterr(c->err, c->errlen, "%s: general.alignment: not a u32 power of two", c->name);
        g->alignment = a;
    }
    cap = 0;
    for (uint64_t i = 0; i < nt; i++) {
        if (grow((void **)&g->t, &cap, g->n_tensors, sizeof *g->t) < 0)
            return seterr(c->err, c->errlen, "%s: out of memory", c->name);
        memset(&g->t[g->n_tensors], 0, sizeof *g->t);
        if (tensor_info(c, &g->t[g->n_tensors]) < 0) return -1;
        g->n_tensors++;
    }
    if (no_duplicates(g, 1, c) < 0) return -1;
    g->info_end = c->at;
    g->data_off = align_up(c->at, g->alignment);
    size_t data = g->data_off <= c->size ? c->size - g->data_off : 0, want = 0;
    for (size_t i = 0; i < g->n_tensors; i++) {
        gguf_tensor *t = &g->t[i];
        int nl = (int)t->name.n;
        if (t->offset != want)
            return seterr(c->err, c->errlen, "%s: tensor %.*s: offset %llu, expected %zu", c->name, nl, t->name.s,
                          (unsigned long long)t->offset, want);
        if (t->nbytes > data || want > data - t->nbytes)
            return seterr(c->err, c->errlen,
                          "%s: tensor %.*s: bytes [%zu, %zu) of the data section past the end of the file "
                          "(%zu bytes of data): truncated",
                          c->name, nl, t->name.s, want, want + t->nbytes, data);
        t->data = t->nbytes ? c->p + g->data_off + want : c->p; /* never read when empty */
        want += t->nbytes;
        if (i + 1 < g->n_tensors) want = align_up(want, g->alignment); /* cannot pass data: aligned below size */
    }
    return 0;
}

void gguf_clear(gguf *g) {
    free(g->kv);
    free(g->t);
    g->kv = NULL;
    g->t = NULL;
    g->n_kv = g->n_tensors = 0;
}

int gguf_parse(gguf *g, const uint8_t *buf, size_t size, const char *name, char *err, size_t errlen) {
    memset(g, 0, sizeof *g);
    g->base = buf;
    g->size = size;
    cur c = {buf, size, 0, name, err, errlen};
    if (parse(g, &c) < 0) {
        gguf_clear(g);
        return -1;
    }
    return 0;
}

int gguf_is_file(const char *path) {
    struct stat st;
    if (stat(path, &st) < 0 || !S_ISREG(st.st_mode)) return 0;
    size_t n = strlen(path);
    if (n > 5 && !strcmp(path + n - 5, ".gguf")) return 1; /* then a bad magic is reported as such */
    FILE *f = fopen(path, "rb");
    char m[4];
    int r = f && fread(m, 1, 4, f) == 4 && !memcmp(m, "GGUF", 4);
    if (f) fclose(f);
    return r;
}

gguf *gguf_open(const char *path, char *err, size_t errlen) {
    mapped m;
    if (map_file(path, &m, err, errlen) < 0) return NULL;
    gguf *g = malloc(sizeof *g);
    if (!g) {
        unmap_file(&m);
        seterr(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    if (gguf_parse(g, m.data, m.size, path, err, errlen) < 0) {
        unmap_file(&m);
        free(g);
        return NULL;
    }
    g->map_data = (void *)m.data;
    g->map_size = m.size;
    return g;
}

void gguf_close(gguf *g) {
    if (!g) return;
    mapped m = {g->map_data, g->map_size};
    unmap_file(&m);
    gguf_clear(g);
    free(g);
}

const gguf_kv *gguf_find(const gguf *g, const char *key) {
    for (size_t i = 0; i < g->n_kv; i++)
        if (gguf_str_is(g->kv[i].key, key)) return &g->kv[i];
    return NULL;
}

const gguf_tensor *gguf_tensor_find(const gguf *g, const char *name) {
    for (size_t i = 0; i < g->n_tensors; i++)
        if (gguf_str_is(g->t[i].name, name)) return &g->t[i];
    return NULL;
}

/* A fixed-size integer value at p of type t, as int64 (u64 above INT64_MAX: -1). */
static int int_at(gguf_vtype t, const uint8_t *p, int64_t *out) {
    switch (t) {
    case GGUF_U8: *out = p[0]; return 0;
    case GGUF_I8: *out = (int8_t)p[0]; return 0;
    case GGUF_U16: *out = le16(p); return 0;
    case GGUF_I16: *out = (int16_t)le16(p); return 0;
    case GGUF_U32: *out = le32(p); return 0;
    case GGUF_I32: *out = (int32_t)le32(p); return 0;
    case GGUF_U64: return le64(p) > INT64_MAX ? -1 : (*out = (int64_t)le64(p), 0);
    case GGUF_I64: *out = (int64_t)le64(p); return 0;
    default: return -1;
    }
}

int gguf_kv_uint(const gguf_kv *kv, uint64_t *out) {
    int64_t v;
    if (kv->type == GGUF_U64) return *out = le64(kv->v), 0;
    if (int_at(kv->type, kv->v, &v) < 0 || v < 0) return -1;
    *out = (uint64_t)v;
    return 0;
}

int gguf_kv_num(const gguf_kv *kv, double *out) {
    uint64_t u;
    if (kv->type == GGUF_F32) {
        uint32_t b = le32(kv->v);
        float f;
        memcpy(&f, &b, 4);
        return *out = f, 0;
    }
    if (kv->type == GGUF_F64) {
        uint64_t b = le64(kv->v);
        memcpy(out, &b, 8);
        return 0;
    }
    int64_t v;
    if (int_at(kv->type, kv->v, &v) == 0) return *out = (double)v, 0;
    if (gguf_kv_uint(kv, &u) == 0) return *out = (double)u, 0;
    return -1;
}

int gguf_arr_int(const gguf_kv *kv, uint64_t i, int64_t *out) {
    if (kv->type != GGUF_ARRAY || i >= kv->count || !vsize(kv->elem)) return -1;
    return int_at(kv->elem, kv->v + i * vsize(kv->elem), out);
}

int gguf_arr_next_str(const gguf_kv *kv, size_t *at, gguf_str *out) {
    if (kv->type != GGUF_ARRAY || kv->elem != GGUF_STRING || *at + 8 > kv->len) return -1;
    uint64_t n = le64(kv->v + *at);
    out->s = (const char *)kv->v + *at + 8;
    out->n = (size_t)n;
    *at += 8 + (size_t)n;
    return 0;
}
