/* st: safetensors read in place. Each file is mapped read-only; its JSON header is parsed
 * with cJSON only to learn names, dtypes, shapes and offsets, then dropped: tensors point
 * into the mapping, names live in one allocation per file set.
 *
 * Checks, all before any tensor is handed out: the header length fits the file, the
 * header is a JSON object, every dtype is a safetensors dtype, every shape has at most
 * ST_MAXDIM dims, every tensor's bytes lie inside its file's data buffer and number
 * shape x dtype size, no two tensors overlap, and no name appears twice (across shards
 * too). Holes between tensors are allowed: they are harmless, and a writer may pad for
 * alignment. A sharded checkpoint's weight_map must agree with the shards' headers. */
#include "st.h"

#include <cjson/cJSON.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

enum { ST_MAX_HEADER = 100000000 }; /* the format's own limit on N */

typedef struct {
    char *name;   /* as listed in the index, for messages: "model-00001-of-00002.safetensors" */
    mapped map;
    size_t header_len;
} shard;

struct st_file {
    shard *shards;
    size_t n_shards;
    st_tensor *tensors; /* sorted by name, for st_find */
    size_t n_tensors;
    char *names;        /* one pool for every tensor name */
    uint8_t header_hash[32];
};

/* Every dtype of the format, so that a known but unused dtype is sized correctly and
 * only a name the format does not define is an error. bits, since F4/F6 are sub-byte. */
static const struct {
    const char *name;
    st_dtype t;
    unsigned bits;
} dtypes[] = {
    {"F32", ST_F32, 32},        {"F16", ST_F16, 16},         {"BF16", ST_BF16, 16},
    {"I8", ST_I8, 8},           {"U8", ST_U8, 8},            {"I32", ST_I32, 32},
    {"U32", ST_U32, 32},        {"I64", ST_I64, 64},         {"BOOL", ST_OTHER, 8},
    {"F8_E5M2", ST_OTHER, 8},   {"F8_E4M3", ST_OTHER, 8},    {"I16", ST_OTHER, 16},
    {"U16", ST_OTHER, 16},      {"F64", ST_OTHER, 64},       {"U64", ST_OTHER, 64},
    {"F8_E8M0", ST_OTHER, 8},   {"F4", ST_OTHER, 4},         {"F6_E2M3", ST_OTHER, 6},
    {"F6_E3M2", ST_OTHER, 6},   {"F8_E4M3FNUZ", ST_OTHER, 8}, {"F8_E5M2FNUZ", ST_OTHER, 8},
    {"C64", ST_OTHER, 64},
};

const char *st_dtype_name(st_dtype t) {
    for (size_t i = 0; i < sizeof dtypes / sizeof *dtypes; i++)
        if (dtypes[i].t == t && t != ST_OTHER) return dtypes[i].name;
    return "other";
}

size_t st_dtype_size(st_dtype t) {
    for (size_t i = 0; i < sizeof dtypes / sizeof *dtypes; i++)
        if (dtypes[i].t == t && t != ST_OTHER) return dtypes[i].bits / 8;
    return 0;
}

/* A JSON number that is a non-negative integer cJSON holds exactly (below 2^53). */
static int json_size(const cJSON *v, size_t *out) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!(d >= 0 && d < 9007199254740992.0) || d != (double)(uint64_t)d) return -1;
    *out = (size_t)d;
    return 0;
}

/* One tensor entry of a header. name points into the cJSON tree; the caller copies it. */
static int parse_entry(const char *file, const cJSON *e, size_t data_size, st_tensor *t, size_t *begin,
                       char *err, size_t errlen) {
    const char *name = e->string;
    if (!cJSON_IsObject(e)) return seterr(err, errlen, "%s: tensor %s: not a JSON object", file, name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt)) return seterr(err, errlen, "%s: tensor %s: no dtype string", file, name);
    unsigned bits = 0;
    for (size_t i = 0; i < sizeof dtypes / sizeof *dtypes; i++)
        if (!strcmp(dt->valuestring, dtypes[i].name)) t->dtype = dtypes[i].t, bits = dtypes[i].bits;
    if (!bits) return seterr(err, errlen, "%s: tensor %s: unknown dtype \"%.32s\"", file, name, dt->valuestring);
    if (!cJSON_IsArray(sh)) return seterr(err, errlen, "%s: tensor %s: no shape array", file, name);
    int ndim = cJSON_GetArraySize(sh);
    if (ndim > ST_MAXDIM)
        return seterr(err, errlen, "%s: tensor %s: %d dims, at most %d supported", file, name, ndim, ST_MAXDIM);
    /* count elements in bits, refusing overflow: SIZE_MAX/bits bounds every step */
    size_t nbits = bits;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        size_t d;
        if (json_size(cJSON_GetArrayItem(sh, i), &d) < 0)
            return seterr(err, errlen, "%s: tensor %s: shape[%d] is not a non-negative integer", file, name, i);
        if (d && nbits > SIZE_MAX / d)
            return seterr(err, errlen, "%s: tensor %s: shape too large", file, name);
        nbits *= d;
        t->shape[i] = d;
    }
    size_t b, e2;
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 || json_size(cJSON_GetArrayItem(off, 0), &b) < 0 ||
        json_size(cJSON_GetArrayItem(off, 1), &e2) < 0)
        return seterr(err, errlen, "%s: tensor %s: data_offsets is not two non-negative integers", file, name);
    if (b > e2) return seterr(err, errlen, "%s: tensor %s: data_offsets [%zu, %zu] end before they begin", file, name, b, e2);
    if (e2 > data_size)
        return seterr(err, errlen, "%s: tensor %s: data_offsets [%zu, %zu] past the end of the file (%zu bytes of data)",
                      file, name, b, e2, data_size);
    if (nbits % 8 || e2 - b != nbits / 8) {
        char sh_s[128] = "";
        for (int i = 0; i < ndim; i++)
            snprintf(sh_s + strlen(sh_s), sizeof sh_s - strlen(sh_s), "%s%zu", i ? ", " : "", t->shape[i]);
        if (nbits % 8)
            return seterr(err, errlen, "%s: tensor %s: shape [%s] of %s is %zu bits, not whole bytes", file, name,
                          sh_s, dt->valuestring, nbits);
        return seterr(err, errlen, "%s: tensor %s: data_offsets [%zu, %zu] hold %zu bytes, shape [%s] of %s needs %zu",
                      file, name, b, e2, e2 - b, sh_s, dt->valuestring, nbits / 8);
    }
    t->nbytes = e2 - b;
    *begin = b;
    return 0;
}

/* A tensor's bytes in its file, for the overlap check. */
typedef struct {
    size_t begin, end, idx;
} span;

static int span_cmp(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->begin != y->begin) return (x->begin > y->begin) - (x->begin < y->begin);
    return (x->end > y->end) - (x->end < y->end);
}

/* Map one file and check its header length; on success *hdr is its parsed JSON. */
static int open_shard(const char *dir, shard *s, cJSON **hdr, char *err, size_t errlen) {
    size_t pl = strlen(dir) + strlen(s->name) + 2;
    char *path = malloc(pl);
    if (!path) return seterr(err, errlen, "%s: out of memory", s->name);
    snprintf(path, pl, "%s/%s", dir, s->name);
    int rc = map_file(path, &s->map, err, errlen);
    free(path);
    if (rc < 0) return -1;
    const uint8_t *p = s->map.data;
    size_t size = s->map.size;
    if (size < 8) return seterr(err, errlen, "%s: %zu bytes, too short for the 8-byte header length", s->name, size);
    uint64_t n = le64(p);
    if (n > ST_MAX_HEADER)
        return seterr(err, errlen, "%s: header length %llu over the format's limit of %d", s->name,
                      (unsigned long long)n, ST_MAX_HEADER);
    if (n > size - 8)
        return seterr(err, errlen, "%s: header length %llu past the end of the file (%zu bytes)", s->name,
                      (unsigned long long)n, size);
    s->header_len = (size_t)n;
    const char *h = (const char *)p + 8;
    if (n == 0 || h[0] != '{') return seterr(err, errlen, "%s: header does not start with '{'", s->name);
    const char *end = NULL;
    *hdr = cJSON_ParseWithLengthOpts(h, (size_t)n, &end, 0);
    if (!*hdr) return seterr(err, errlen, "%s: header is not valid JSON (at byte %zu)", s->name,
                             end && end >= h ? (size_t)(end - h) : (size_t)0);
    /* writers pad with spaces to 8-byte alignment; anything else after the object is junk */
    for (; end < h + n; end++)
        if (*end != ' ' && *end != '\t' && *end != '\n' && *end != '\r') {
            cJSON_Delete(*hdr);
            *hdr = NULL;
            return seterr(err, errlen, "%s: header has bytes after its JSON object", s->name);
        }
    if (!cJSON_IsObject(*hdr)) {
        cJSON_Delete(*hdr);
        *hdr = NULL;
        return seterr(err, errlen, "%s: header is not a JSON object", s->name);
    }
    return 0;
}

/* Parse shard s's tensors into out[0..*count); names still point into hdr. */
static int parse_shard(const shard *s, const cJSON *hdr, st_tensor *out, size_t *count, char *err, size_t errlen) {
    const uint8_t *data = s->map.data + 8 + s->header_len;
    size_t data_size = s->map.size - 8 - s->header_len;
    size_t n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, hdr) if (strcmp(e->string, "__metadata__")) n++;
    span *sp = malloc((n ? n : 1) * sizeof *sp);
    if (!sp) return seterr(err, errlen, "%s: out of memory", s->name);
    size_t i = 0;
    cJSON_ArrayForEach(e, hdr) {
        if (!strcmp(e->string, "__metadata__")) {
            if (!cJSON_IsObject(e)) {
                free(sp);
                return seterr(err, errlen, "%s: __metadata__ is not a JSON object", s->name);
            }
            continue;
        }
        st_tensor *t = &out[i];
        memset(t, 0, sizeof *t);
        size_t b = 0;
        if (parse_entry(s->name, e, data_size, t, &b, err, errlen) < 0) {
            free(sp);
            return -1;
        }
        t->data = data + b;
        t->name = e->string; /* replaced by the caller's copy before the tree is freed */
        sp[i] = (span){b, b + t->nbytes, i};
        i++;
    }
    qsort(sp, n, sizeof *sp, span_cmp);
    size_t prev = n; /* the last non-empty span; empty tensors overlap nothing */
    for (i = 0; i < n; i++) {
        if (sp[i].begin == sp[i].end) continue;
        if (prev < n && sp[i].begin < sp[prev].end) {
            int r = seterr(err, errlen, "%s: tensor %s: data_offsets [%zu, %zu] overlap tensor %s [%zu, %zu]", s->name,
                           out[sp[i].idx].name, sp[i].begin, sp[i].end, out[sp[prev].idx].name, sp[prev].begin,
                           sp[prev].end);
            free(sp);
            return r;
        }
        prev = i;
    }
    free(sp);
    *count = n;
    return 0;
}

static int by_name(const void *a, const void *b) {
    return strcmp(((const st_tensor *)a)->name, ((const st_tensor *)b)->name);
}

/* Names of the shards in the index file fn (dir/model.safetensors.index.json), sorted
 * (shard order: HF names them model-0000k-of-0000n), with the weight_map kept for the
 * cross-check. */
static int read_index(const char *path, const char *fn, cJSON **index, shard **shards, size_t *n_shards, char *err,
                      size_t errlen) {
    mapped m;
    if (map_file(path, &m, err, errlen) < 0) return -1;
    *index = cJSON_ParseWithLength((const char *)m.data, m.size);
    unmap_file(&m);
    if (!*index) return seterr(err, errlen, "%s: not valid JSON", fn);
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(*index, "weight_map");
    if (!cJSON_IsObject(wm)) return seterr(err, errlen, "%s: no weight_map object", fn);
    size_t n = (size_t)cJSON_GetArraySize(wm), k = 0;
    shard *sh = calloc(n ? n : 1, sizeof *sh);
    if (!sh) return seterr(err, errlen, "%s: out of memory", fn);
    *shards = sh;
    const cJSON *e;
    cJSON_ArrayForEach(e, wm) {
        if (!cJSON_IsString(e)) return seterr(err, errlen, "%s: weight_map: %s: not a file name", fn, e->string);
        const char *f = e->valuestring;
        /* a shard lives in the model directory: refuse paths that leave it */
        if (!*f || strchr(f, '/') || !strcmp(f, ".") || !strcmp(f, ".."))
            return seterr(err, errlen, "%s: weight_map: %s: bad file name \"%.64s\"", fn, e->string, f);
        size_t j = 0;
        while (j < k && strcmp(sh[j].name, f)) j++;
        if (j == k && !(sh[k++].name = strdup(f))) return seterr(err, errlen, "%s: out of memory", fn);
        *n_shards = k;
    }
    if (!k) return seterr(err, errlen, "%s: weight_map is empty", fn);
    for (size_t i = 1; i < k; i++) /* insertion sort: a handful of shards */
        for (size_t j = i; j > 0 && strcmp(sh[j - 1].name, sh[j].name) > 0; j--) {
            shard t = sh[j];
            sh[j] = sh[j - 1];
            sh[j - 1] = t;
        }
    return 0;
}

/* The index and the headers agree: each weight_map entry is a tensor of the shard it names.
 * Tensors the map does not list are kept; nothing depends on the map being complete. */
static int check_index(const st_file *f, const char *fn, const cJSON *index, char *err, size_t errlen) {
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(index, "weight_map"), *e;
    cJSON_ArrayForEach(e, wm) if (!st_find(f, e->string))
        return seterr(err, errlen, "%s: tensor %s: not in %s", fn, e->string, e->valuestring);
    return 0;
}

/* A tensor that the index places in another shard than the one holding it. */
static int check_placement(const char *fn, const cJSON *index, const shard *s, const st_tensor *t, size_t n,
                           char *err, size_t errlen) {
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(index, "weight_map");
    for (size_t i = 0; i < n; i++) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(wm, t[i].name);
        if (e && strcmp(e->valuestring, s->name))
            return seterr(err, errlen, "%s: tensor %s: in %s, not in %s", fn, t[i].name, s->name, e->valuestring);
    }
    return 0;
}

/* The file holding t, for messages (by address: tensors are sorted by name). */
static const char *shard_of(const st_file *f, const st_tensor *t) {
    uintptr_t p = (uintptr_t)t->data;
    for (size_t i = 0; i < f->n_shards; i++) {
        uintptr_t b = (uintptr_t)f->shards[i].map.data;
        if (p >= b && p <= b + f->shards[i].map.size) return f->shards[i].name;
    }
    return "?";
}

st_file *st_open(const char *dir, char *err, size_t errlen) { return st_open_named(dir, "model.safetensors", err, errlen); }

st_file *st_open_named(const char *dir, const char *base, char *err, size_t errlen) {
    st_file *f = calloc(1, sizeof *f);
    cJSON *index = NULL, **hdrs = NULL;
    size_t n_hdrs = 0, pl = strlen(dir) + strlen(base) + 64;
    char *path = malloc(pl), idx[256];
    if (!f || !path) goto oom;
    snprintf(idx, sizeof idx, "%s.index.json", base);
    snprintf(path, pl, "%s/%s", dir, idx);
    if (access(path, F_OK) == 0) {
        if (read_index(path, idx, &index, &f->shards, &f->n_shards, err, errlen) < 0) goto fail;
    } else {
        snprintf(path, pl, "%s/%s", dir, base);
        if (access(path, F_OK) < 0) {
            seterr(err, errlen, "%s: no %s or %s", dir, base, idx);
            goto fail;
        }
        if (!(f->shards = calloc(1, sizeof *f->shards)) || !(f->shards[0].name = strdup(base))) goto oom;
        f->n_shards = 1;
    }
    if (!(hdrs = calloc(f->n_shards, sizeof *hdrs))) goto oom;
    n_hdrs = f->n_shards;
    size_t total = 0, name_bytes = 0;
    for (size_t i = 0; i < f->n_shards; i++) {
        if (open_shard(dir, &f->shards[i], &hdrs[i], err, errlen) < 0) goto fail;
        const cJSON *e;
        cJSON_ArrayForEach(e, hdrs[i]) total++, name_bytes += strlen(e->string) + 1;
    }
    if (!(f->tensors = calloc(total ? total : 1, sizeof *f->tensors)) || !(f->names = malloc(name_bytes + 1))) goto oom;
    char *np = f->names;
    for (size_t i = 0; i < f->n_shards; i++) {
        size_t n = 0;
        st_tensor *t = f->tensors + f->n_tensors;
        if (parse_shard(&f->shards[i], hdrs[i], t, &n, err, errlen) < 0 ||
            (index && check_placement(idx, index, &f->shards[i], t, n, err, errlen) < 0))
            goto fail;
        for (size_t j = 0; j < n; j++) { /* own the names before the tree goes */
            size_t l = strlen(t[j].name) + 1;
            memcpy(np, t[j].name, l);
            t[j].name = np;
            np += l;
        }
        f->n_tensors += n;
    }
    qsort(f->tensors, f->n_tensors, sizeof *f->tensors, by_name);
    for (size_t i = 1; i < f->n_tensors; i++)
        if (!strcmp(f->tensors[i].name, f->tensors[i - 1].name)) {
            const char *a = shard_of(f, &f->tensors[i - 1]), *b = shard_of(f, &f->tensors[i]);
            if (a == b) seterr(err, errlen, "%s: tensor %s: listed twice", a, f->tensors[i].name);
            else seterr(err, errlen, "tensor %s: in both %s and %s", f->tensors[i].name, a, b);
            goto fail;
        }
    if (index && check_index(f, idx, index, err, errlen) < 0) goto fail;
    crypto_generichash_state hs;
    crypto_generichash_init(&hs, NULL, 0, sizeof f->header_hash);
    for (size_t i = 0; i < f->n_shards; i++)
        crypto_generichash_update(&hs, f->shards[i].map.data + 8, f->shards[i].header_len);
    crypto_generichash_final(&hs, f->header_hash, sizeof f->header_hash);
    goto done;
oom:
    seterr(err, errlen, "%s: out of memory", dir);
fail:
    st_close(f);
    f = NULL;
done:
    for (size_t i = 0; i < n_hdrs; i++) cJSON_Delete(hdrs[i]);
    free(hdrs);
    free(path);
    cJSON_Delete(index);
    return f;
}

void st_close(st_file *f) {
    if (!f) return;
    for (size_t i = 0; i < f->n_shards; i++) {
        unmap_file(&f->shards[i].map);
        free(f->shards[i].name);
    }
    free(f->shards);
    free(f->tensors);
    free(f->names);
    free(f);
}

int st_maps(const st_file *f, const void *p, size_t n) {
    for (size_t i = 0; f && i < f->n_shards; i++) {
        uintptr_t a = (uintptr_t)f->shards[i].map.data, q = (uintptr_t)p;
        if (a && q >= a && q - a <= f->shards[i].map.size && n <= f->shards[i].map.size - (q - a)) return 1;
    }
    return 0;
}

const st_tensor *st_find(const st_file *f, const char *name) {
    st_tensor key = {.name = name};
    return bsearch(&key, f->tensors, f->n_tensors, sizeof key, by_name);
}

const st_tensor *st_tensors(const st_file *f, size_t *n) {
    *n = f->n_tensors;
    return f->tensors;
}

void st_header_hash(const st_file *f, uint8_t out[32]) { memcpy(out, f->header_hash, 32); }
