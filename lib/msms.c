/* msms: msModelSlim checkpoints (the format vLLM-Ascend serves): a directory with
 * config.json, quant_model_description*.json and quant_model_weight*.safetensors.
 *
 * The description is one flat JSON object: metadata ("version", "group_size", ...) and,
 * for every tensor of the files, "<hf name>": "<TYPE>". The type is read per linear layer
 * from its "<prefix>.weight" entry (checkpoints mix schemes, and roll layers back to
 * FLOAT); every other tensor of the layer must carry the same type, except a FLOAT bias.
 * The files and the description must list the same tensors, and every tensor must be one
 * a Qwen3 model uses: a tensor nobody reads means the checkpoint is something we do not
 * understand, and we say so rather than run it wrong.
 *
 * The arithmetic of each scheme is in msms.h; here it is in plain C, in f32 like the rest
 * of the CPU path, with the integer matmuls in integers (int32 sums of int8 products,
 * widened to int64 every 65536 terms so that no input can overflow). Integer weights are
 * used in place; the small per-channel vectors are copied to f32 at open. */
#include "msms.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <float.h>
#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kern.h"
#include "util.h"

static const char *const scheme_names[MSMS_NSCHEMES] = {"W8A8", "W8A8_DYNAMIC", "W4A8_DYNAMIC",
                                                        "W4A4_FLATQUANT_DYNAMIC"};
#define TYPES "FLOAT, W8A8, W8A8_DYNAMIC, W4A8_DYNAMIC, W4A4_FLATQUANT_DYNAMIC"

int msms_scheme_find(const char *name) {
    for (int i = 0; i < MSMS_NSCHEMES; i++)
        if (!strcmp(name, scheme_names[i])) return i;
    return -1;
}

const char *msms_scheme_name(msms_scheme s) { return s < MSMS_NSCHEMES ? scheme_names[s] : "?"; }

/* THE rounding choice: round half to even. vLLM-Ascend quantizes activations with
 * aclnnAscendQuantV3(roundMode "round") and aclnnDynamicQuant; CANN's AscendQuant doc
 * describes "round" as CAST_RINT (half to even), and torch.round (the reference side)
 * is half to even too. Unconfirmed on hardware; if the NPU rounds half away from zero,
 * this is the one line to change (roundf). */
float msms_round(float v) { return nearbyintf(v); }

/* ---- the math ---- */

#define CHUNK ((size_t)65536) /* int8 x int8 products summed in int32: 65536 * 2^14 < 2^31 */

static int64_t idot(const int8_t *a, const int8_t *b, size_t K) {
    int64_t acc = 0;
    for (size_t k0 = 0; k0 < K; k0 += CHUNK) {
        size_t n = K - k0 < CHUNK ? K - k0 : CHUNK, n16 = n & ~(size_t)15;
        const int8_t *pa = a + k0, *pb = b + k0;
        int32_t s = 0;
        for (size_t j = 0; j < n16; j++) s += pa[j] * pb[j]; /* a multiple of 16: -O2 vectorizes it */
        for (size_t j = n16; j < n; j++) s += pa[j] * pb[j];
        acc += s;
    }
    return acc;
}

/* Scratch: xq int8 [n, K] (64-byte padded), then the per-token scale s[n] (NaN marks a
 * token whose x held a NaN or an Inf: its outputs are NaN), then FlatQuant's two [L, R]
 * work matrices. */
static size_t xq_bytes(const qweight *w, size_t n) { return (n * w->in + 63) / 64 * 64; }

static size_t fmt_scratch(const qweight *w, size_t n) {
    const msms_weight *q = w->aux;
    if (q->scheme == MSMS_W4A8_DYNAMIC) return 0;
    return xq_bytes(w, n) + n * sizeof(float) + (q->scheme == MSMS_W4A4_FLATQUANT_DYNAMIC ? 2 * q->in * sizeof(float) : 0);
}

/* q = clamp(round(v / s), lo, hi) with s = max|v| * clip / qmax; returns s (0 for an
 * all-zero v, whose q is 0; NaN if v holds a non-finite value). */
static float quant_sym(int8_t *q, const float *v, size_t K, float clip, float qmax, int lo, int hi) {
    float m = 0;
    for (size_t k = 0; k < K; k++) {
        float a = fabsf(v[k]);
        if (!(a <= FLT_MAX)) {
            memset(q, 0, K);
            return NAN;
        }
        if (a > m) m = a;
    }
    float s = m * clip / qmax;
    if (!(s > 0)) {
        memset(q, 0, K);
        return 0;
    }
    for (size_t k = 0; k < K; k++) {
        float r = msms_round(v[k] / s);
        q[k] = (int8_t)(r < lo ? lo : r > hi ? hi : r);
    }
    return s;
}

/* W8A8 static: q = sat_int8(round(x * (1/input_scale) + input_offset)); 1, or NaN. */
static float quant_static(int8_t *q, const float *x, size_t K, const msms_weight *w) {
    float inv = 1.0f / w->input_scale;
    for (size_t k = 0; k < K; k++) {
        float r = msms_round(x[k] * inv + w->input_offset);
        if (isnan(r)) {
            memset(q, 0, K);
            return NAN;
        }
        q[k] = (int8_t)(r < -128 ? -128 : r > 127 ? 127 : r);
    }
    return 1;
}

/* X' = left^T X right for x as X [L, R] row-major (aclnnFlatQuant: X R, then left^T .). */
static void kronecker(float *xo, float *t, const float *x, const msms_weight *w) {
    size_t L = w->L, R = w->R;
    for (size_t i = 0; i < L; i++)
        for (size_t j = 0; j < R; j++) {
            float s = 0;
            for (size_t k = 0; k < R; k++) s += x[i * R + k] * w->right_trans[k * R + j];
            t[i * R + j] = s;
        }
    for (size_t i = 0; i < L; i++)
        for (size_t j = 0; j < R; j++) {
            float s = 0;
            for (size_t a = 0; a < L; a++) s += w->left_trans[a * L + i] * t[a * R + j];
            xo[i * R + j] = s;
        }
}

static void fmt_prep(const qweight *qw, const float *x, size_t n, void *scratch) {
    const msms_weight *w = qw->aux;
    size_t K = w->in;
    if (w->scheme == MSMS_W4A8_DYNAMIC) return;
    int8_t *xq = scratch;
    float *s = (float *)((char *)scratch + xq_bytes(qw, n)), *xo = s + n, *t = xo + K;
    for (size_t i = 0; i < n; i++) {
        const float *xi = x + i * K;
        int8_t *qi = xq + i * K;
        switch (w->scheme) {
        case MSMS_W8A8: s[i] = quant_static(qi, xi, K, w); break;
        case MSMS_W8A8_DYNAMIC: s[i] = quant_sym(qi, xi, K, 1.0f, 127.0f, -128, 127); break;
        default:
            /* s = max|X'| * clip / 7, msModelSlim's ActivationQuantizer (xmax *= clip; xmax / qmax)
             * and the newer CANN doc of aclnnFlatQuant (max / (7 / clip)); older CANN docs
             * say / (7 * clip): unconfirmed on hardware, see ascend.md 2.4 */
            kronecker(xo, t, xi, w);
            s[i] = quant_sym(qi, xo, K, w->clip_ratio, 7.0f, -8, 7);
        }
    }
}

/* y = sum_k x[k] * (w4[o,k] * (weight_scale[o] * weight_scale_second[o, k/group])), summed
 * in 8 lanes (which -O2 vectorizes) added pairwise at the end */
static float w4a16_dot(const float *x, const msms_weight *w, size_t o) {
    size_t K = w->in, G = w->weight_scale_second ? w->group : K;
    float acc[8] = {0};
    const int8_t *r8 = w->w ? w->w + o * K : NULL;
    const uint8_t *r4 = w->w ? NULL : w->w_packed + o / 2 * K;
    int sh = o % 2 ? 4 : 0;
    for (size_t g0 = 0; g0 < K; g0 += G) {
        float a = w->weight_scale[o];
        if (w->weight_scale_second) a *= w->weight_scale_second[o * (K / G) + g0 / G];
        size_t k = g0, g1 = g0 + G;
        if (r8) {
            for (; k + 8 <= g1; k += 8)
                for (size_t j = 0; j < 8; j++) acc[j] += x[k + j] * ((float)r8[k + j] * a);
            for (; k < g1; k++) acc[0] += x[k] * ((float)r8[k] * a);
        } else { /* the same sums in the same order as the unpacked layout */
            for (; k + 8 <= g1; k += 8)
                for (size_t j = 0; j < 8; j++) {
                    int v = r4[k + j] >> sh & 15;
                    acc[j] += x[k + j] * ((float)(v >= 8 ? v - 16 : v) * a);
                }
            for (; k < g1; k++) {
                int v = r4[k] >> sh & 15;
                acc[0] += x[k] * ((float)(v >= 8 ? v - 16 : v) * a);
            }
        }
    }
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

static void fmt_matmul(float *y, const float *x, const void *scratch, const qweight *qw, size_t n, size_t out,
                       size_t o0, size_t o1) {
    const msms_weight *w = qw->aux;
    size_t K = w->in;
    const int8_t *xq = scratch;
    const float *s = w->scheme == MSMS_W4A8_DYNAMIC ? NULL : (const float *)((const char *)scratch + xq_bytes(qw, n));
    for (size_t o = o0; o < o1; o++) /* a row of W stays in cache over the n tokens */
        for (size_t i = 0; i < n; i++) {
            float v;
            if (w->scheme == MSMS_W4A8_DYNAMIC) v = w4a16_dot(x + i * K, w, o);
            else {
                int64_t acc = idot(xq + i * K, w->w + o * K, K);
                if (w->scheme == MSMS_W8A8) v = (float)(acc + w->quant_bias[o]) * w->deq_scale[o] * s[i];
                else v = (float)acc * w->weight_scale[o] * s[i];
            }
            if (w->bias) v += w->bias[o];
            y[i * out + o] = v;
        }
}

/* Row r as the float weight it stands for: y = x @ row^T (FlatQuant: in x's own space,
 * left W' right^T for the row W' as [L, R]). */
static void fmt_row(const qweight *qw, size_t r, float *o) {
    const msms_weight *w = qw->aux;
    size_t K = w->in;
    for (size_t k = 0; k < K; k++) {
        float v = (float)msms_wval(w, r, k);
        switch (w->scheme) {
        case MSMS_W8A8: v *= w->deq_scale[r] / w->input_scale; break;
        case MSMS_W4A8_DYNAMIC:
            v *= w->weight_scale[r] * (w->weight_scale_second ? w->weight_scale_second[r * (K / w->group) + k / w->group] : 1);
            break;
        default: v *= w->weight_scale[r];
        }
        o[k] = v;
    }
    if (w->scheme != MSMS_W4A4_FLATQUANT_DYNAMIC) return;
    size_t L = w->L, R = w->R;
    float *t = malloc(K * sizeof *t);
    if (!t) {
        for (size_t k = 0; k < K; k++) o[k] = NAN;
        return;
    }
    for (size_t i = 0; i < L; i++) /* t = left W' */
        for (size_t j = 0; j < R; j++) {
            float s = 0;
            for (size_t a = 0; a < L; a++) s += w->left_trans[i * L + a] * o[a * R + j];
            t[i * R + j] = s;
        }
    for (size_t i = 0; i < L; i++) /* o = t right^T */
        for (size_t j = 0; j < R; j++) {
            float s = 0;
            for (size_t b = 0; b < R; b++) s += t[i * R + b] * w->right_trans[j * R + b];
            o[i * R + j] = s;
        }
    free(t);
}

const wfmt msms_fmt = {
    .name = "msmodelslim",
    .scratch = fmt_scratch,
    .prep = fmt_prep,
    .matmul = fmt_matmul,
    .row = fmt_row,
};

/* ---- the loader ---- */

typedef struct {
    cJSON *desc;
    char desc_name[256];
    int v1;              /* "version": "1.0.0" (packed W4A8) */
    size_t group_size;   /* "group_size", 0 = per channel */
    const st_file *st;
    const st_tensor *tensors; /* st's, sorted by name */
    size_t n_tensors;
    unsigned char *used; /* [n_tensors] */
    msms_weight *mw;     /* one per quantized linear */
    qweight *qw;
    size_t n_w, cap_w;
    float **owned;       /* the f32 copies */
    size_t n_owned;
} ctx;

static void ctx_free(ctx *c) {
    if (!c) return;
    cJSON_Delete(c->desc);
    free(c->used);
    free(c->mw);
    free(c->qw);
    for (size_t i = 0; i < c->n_owned; i++) free(c->owned[i]);
    free(c->owned);
    free(c);
}

static void fmt_close(model *m) {
    ctx_free(m->fmt_ctx);
    m->fmt_ctx = NULL;
}

static int ends_with(const char *s, const char *t) {
    size_t a = strlen(s), b = strlen(t);
    return a >= b && !strcmp(s + a - b, t);
}

/* The description file in dir: quant_model_description.json, else the one
 * quant_model_description*.json (older tools append the type: ..._w8a8.json). */
static int find_desc(const char *dir, char *name, size_t len) {
    char p[4096];
    snprintf(p, sizeof p, "%s/quant_model_description.json", dir);
    if (!access(p, R_OK)) return snprintf(name, len, "quant_model_description.json"), 1;
    DIR *d = opendir(dir);
    int found = 0;
    if (!d) return 0;
    for (struct dirent *e; (e = readdir(d));)
        if (!strncmp(e->d_name, "quant_model_description", 23) && ends_with(e->d_name, ".json") &&
            strlen(e->d_name) < len) {
            if (!found || strcmp(e->d_name, name) < 0) snprintf(name, len, "%s", e->d_name);
            found = 1;
        }
    closedir(d);
    return found;
}

static int detect(const char *path) {
    char name[256];
    return find_desc(path, name, sizeof name);
}

/* The weights' file name for st_open_named: an index if there is one, else the one
 * quant_model_weight*.safetensors, else model.safetensors. */
static int find_weights(const char *dir, char *base, size_t len, char *err, size_t errlen) {
    DIR *d = opendir(dir);
    if (!d) return seterr(err, errlen, "%s: cannot list the directory", dir);
    int n_idx = 0, n_one = 0;
    char idx[256] = "", one[256] = "";
    for (struct dirent *e; (e = readdir(d));) {
        const char *s = e->d_name;
        if (strncmp(s, "quant_model_weight", 18) || strlen(s) >= sizeof idx) continue;
        if (ends_with(s, ".safetensors.index.json")) n_idx++, snprintf(idx, sizeof idx, "%.*s", (int)(strlen(s) - 11), s);
        else if (ends_with(s, ".safetensors")) n_one++, snprintf(one, sizeof one, "%s", s);
    }
    closedir(d);
    if (n_idx > 1 || (!n_idx && n_one > 1))
        return seterr(err, errlen, "%s: %d quant_model_weight*.safetensors files and %d indexes: which one?", dir, n_one,
                      n_idx);
    snprintf(base, len, "%s", n_idx ? idx : n_one ? one : "model.safetensors");
    return 0;
}

/* dir/name, malloc'd with a NUL after the end. */
static char *slurp(const char *dir, const char *name, size_t *len, char *err, size_t errlen) {
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "rb");
    if (!f) return seterr(err, errlen, "%s: cannot open %s", dir, name), NULL;
    char *s = NULL;
    if (read_all(f, &s, len, err, errlen) < 0) s = NULL;
    fclose(f);
    return s;
}

static const char *meta_keys[] = {"model_quant_type", "version", "group_size", "kv_cache_type", "kv_quant_type",
                                  "fa_quant_type", "reduce_quant_type", "metadata", "optional", NULL};

static int is_meta(const cJSON *e) {
    for (int i = 0; meta_keys[i]; i++)
        if (!strcmp(e->string, meta_keys[i])) return 1;
    return 0;
}

/* The description's type of tensor name, or NULL. */
static const char *dtype_of(const ctx *c, const char *name) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->desc, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Parse the description and check it against the files, both ways. */
static int check_desc(ctx *c, const char *json, size_t len, char *err, size_t errlen) {
    const char *dn = c->desc_name;
    if (!(c->desc = cJSON_ParseWithLength(json, len)) || !cJSON_IsObject(c->desc))
        return seterr(err, errlen, "%s: not a JSON object", dn);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->desc, "version");
    if (v && !cJSON_IsString(v)) return seterr(err, errlen, "%s: version: not a string", dn);
    c->v1 = v && !strcmp(v->valuestring, "1.0.0");
    v = cJSON_GetObjectItemCaseSensitive(c->desc, "group_size");
    if (v && !cJSON_IsNull(v)) {
        if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 1 << 20 || v->valuedouble != floor(v->valuedouble))
            return seterr(err, errlen, "%s: group_size: not an integer in [0, %d]", dn, 1 << 20);
        c->group_size = (size_t)v->valuedouble;
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, c->desc) {
        if (is_meta(e)) continue;
        if (!cJSON_IsString(e)) return seterr(err, errlen, "%s: %s: not a type string", dn, e->string);
        if (strcmp(e->valuestring, "FLOAT") && msms_scheme_find(e->valuestring) < 0)
            return seterr(err, errlen, "%s: tensor %s: type \"%.40s\" is not one of " TYPES, dn, e->string,
                          e->valuestring);
        if (!st_find(c->st, e->string)) return seterr(err, errlen, "%s: tensor %s: not in the safetensors files", dn, e->string);
    }
    for (size_t i = 0; i < c->n_tensors; i++)
        if (!dtype_of(c, c->tensors[i].name))
            return seterr(err, errlen, "tensor %s: not in %s", c->tensors[i].name, dn);
    return 0;
}

static void shape_str(const st_tensor *t, char *s, size_t n) {
    snprintf(s, n, "[");
    for (int i = 0; i < t->ndim; i++) snprintf(s + strlen(s), n - strlen(s), "%s%zu", i ? ", " : "", t->shape[i]);
    snprintf(s + strlen(s), n - strlen(s), "]");
}

/* t is [d0, d1]; or with d1 == 0, [d0] or [d0, 1] (msModelSlim writes per-channel
 * vectors as [N, 1]; a per-tensor value is [1] or a scalar). */
static int shape_ok(const st_tensor *t, size_t d0, size_t d1, char *err, size_t errlen) {
    int ok = d1 ? t->ndim == 2 && t->shape[0] == d0 && t->shape[1] == d1
                : (t->ndim == 1 && t->shape[0] == d0) || (t->ndim == 2 && t->shape[0] == d0 && t->shape[1] == 1) ||
                      (d0 == 1 && t->ndim == 0);
    if (ok) return 0;
    char got[96];
    shape_str(t, got, sizeof got);
    if (d1) return seterr(err, errlen, "tensor %s: shape %s, config wants [%zu, %zu]", t->name, got, d0, d1);
    return seterr(err, errlen, "tensor %s: shape %s, config wants [%zu] or [%zu, 1]", t->name, got, d0, d0);
}

/* *t = tensor name, marked used, after checking that the description gives it `type`
 * (NULL: any). 1 found, 0 absent, -1 error. */
static int take(ctx *c, const char *name, const char *type, const st_tensor **t, char *err, size_t errlen) {
    *t = st_find(c->st, name);
    if (!*t) return 0;
    const char *d = dtype_of(c, name);
    if (type && strcmp(d, type))
        return seterr(err, errlen, "%s: tensor %s: type %s, but its layer is %s", c->desc_name, name, d, type);
    c->used[*t - c->tensors] = 1;
    return 1;
}

/* dtypes a vector may come in: I64_BITS is an int64 holding an f32's bits in its low half
 * (deq_scale of an fp16 model: the "UINT64" scale CANN wants), I64_INT an int64 value */
enum { FLOATS = 1 << ST_F32 | 1 << ST_F16 | 1 << ST_BF16, I8 = 1 << ST_I8, I64_BITS = 1 << ST_I64, I64_INT = 1 << 16 };

/* Element i as f32 (an int64 as bits or as a value, as the caller says). */
static float elem(const st_tensor *t, size_t i, int bits) {
    const uint8_t *p = (const uint8_t *)t->data + i * st_dtype_size(t->dtype);
    uint32_t u;
    float f;
    switch (t->dtype) {
    case ST_F32: u = le32(p); break;
    case ST_F16: return kern_f16(le16(p));
    case ST_BF16: return kern_bf16(le16(p));
    case ST_I8: return (float)(int8_t)p[0];
    default: /* ST_I64 */
        if (!bits) return (float)(int64_t)le64(p);
        u = (uint32_t)le64(p);
    }
    memcpy(&f, &u, 4);
    return f;
}

/* *out = an f32 copy of tensor prefix.suffix, shaped as shape_ok says, of a dtype in mask;
 * NULL if absent and not required. The copy belongs to c. */
static int vec(ctx *c, const char *prefix, const char *suffix, const char *type, size_t d0, size_t d1, unsigned mask,
               int required, const float **out, char *err, size_t errlen) {
    char name[256];
    const st_tensor *t;
    snprintf(name, sizeof name, "%s.%s", prefix, suffix);
    *out = NULL;
    int r = take(c, name, type, &t, err, errlen);
    if (r < 0) return -1;
    if (!r) return required ? seterr(err, errlen, "tensor %s: missing (%s needs it)", name, type) : 0;
    if (!(mask & 1u << t->dtype) && !(t->dtype == ST_I64 && mask & I64_INT))
        return seterr(err, errlen, "tensor %s: dtype %s, want %s", name, st_dtype_name(t->dtype),
                      mask & (I64_BITS | I64_INT) ? "F32, F16, BF16 or I64" : mask & I8 ? "F32, F16, BF16 or I8" : "F32, F16 or BF16");
    if (shape_ok(t, d0, d1, err, errlen) < 0) return -1;
    size_t n = d0 * (d1 ? d1 : 1);
    float *v = malloc(n * sizeof *v), **o = realloc(c->owned, (c->n_owned + 1) * sizeof *o);
    if (o) c->owned = o;
    if (!v || !o) {
        free(v);
        return seterr(err, errlen, "tensor %s: out of memory", name);
    }
    c->owned[c->n_owned++] = v;
    for (size_t i = 0; i < n; i++) v[i] = elem(t, i, !!(mask & I64_BITS));
    *out = v;
    return 0;
}

/* A per-tensor or per-channel value that must be a positive finite number. */
static int positive(const float *v, size_t n, const char *prefix, const char *suffix, char *err, size_t errlen) {
    for (size_t i = 0; i < n; i++)
        if (!(v[i] > 0 && v[i] <= FLT_MAX))
            return seterr(err, errlen, "tensor %s.%s: element %zu is %g, not a positive finite scale", prefix, suffix, i,
                          v[i]);
    return 0;
}

/* A FLOAT tensor through model_bind (F32/F16/BF16, exact shape); absent is an error
 * unless optional (then w stays {0}). */
static int bindf(ctx *c, model *m, const char *name, size_t d0, size_t d1, int optional, weight *w, char *err,
                 size_t errlen) {
    const st_tensor *t;
    int r = take(c, name, "FLOAT", &t, err, errlen);
    if (r < 0) return -1;
    if (!r) return optional ? 0 : seterr(err, errlen, "tensor %s: missing", name);
    return model_bind(m, name, d0, d1, w, err, errlen);
}

/* The int8 weight of a quantized linear: [N, K], or [N/2, K] for W4A8 v1's packed int4. */
static int qweight_data(ctx *c, msms_weight *w, const char *name, const char *type, char *err, size_t errlen) {
    const st_tensor *t;
    if (take(c, name, type, &t, err, errlen) < 0) return -1;
    if (t->dtype != ST_I8) return seterr(err, errlen, "tensor %s: dtype %s, want I8", name, st_dtype_name(t->dtype));
    if (w->scheme == MSMS_W4A8_DYNAMIC && c->v1) {
        if (w->out % 2) return seterr(err, errlen, "tensor %s: %zu output rows cannot be packed in pairs", name, w->out);
        if (shape_ok(t, w->out / 2, w->in, err, errlen) < 0) return -1;
        w->w_packed = t->data;
    } else {
        if (shape_ok(t, w->out, w->in, err, errlen) < 0) return -1;
        w->w = t->data;
    }
    return 0;
}

/* Linear layer prefix [N, K]: FLOAT as it is, else an msms_weight of its scheme. */
static int linear(ctx *c, model *m, const char *prefix, size_t N, size_t K, weight *out, char *err, size_t errlen) {
    char name[256];
    snprintf(name, sizeof name, "%s.weight", prefix);
    const char *ty = dtype_of(c, name);
    if (!ty) return seterr(err, errlen, "tensor %s: missing", name);
    if (!strcmp(ty, "FLOAT")) return bindf(c, m, name, N, K, 0, out, err, errlen);
    if (c->n_w == c->cap_w) return seterr(err, errlen, "tensor %s: more linear layers than the config has", name);
    msms_weight *w = &c->mw[c->n_w];
    qweight *q = &c->qw[c->n_w++];
    *w = (msms_weight){.scheme = (msms_scheme)msms_scheme_find(ty), .out = N, .in = K};
    if (qweight_data(c, w, name, ty, err, errlen) < 0) return -1;
    switch (w->scheme) {
    case MSMS_W8A8: {
        const float *is, *io;
        const st_tensor *qb;
        snprintf(name, sizeof name, "%s.quant_bias", prefix);
        int r = take(c, name, ty, &qb, err, errlen);
        if (r <= 0) return r < 0 ? -1 : seterr(err, errlen, "tensor %s: missing (W8A8 needs it)", name);
        if (qb->dtype != ST_I32) return seterr(err, errlen, "tensor %s: dtype %s, want I32", name, st_dtype_name(qb->dtype));
        if (shape_ok(qb, N, 0, err, errlen) < 0) return -1;
        if ((uintptr_t)qb->data % 4) return seterr(err, errlen, "tensor %s: data not aligned to its 4-byte elements", name);
        w->quant_bias = qb->data;
        if (vec(c, prefix, "input_scale", ty, 1, 0, FLOATS, 1, &is, err, errlen) < 0 ||
            vec(c, prefix, "input_offset", ty, 1, 0, FLOATS | I8, 1, &io, err, errlen) < 0 ||
            vec(c, prefix, "deq_scale", ty, N, 0, FLOATS | I64_BITS, 1, &w->deq_scale, err, errlen) < 0 ||
            vec(c, prefix, "weight_scale", ty, N, 0, FLOATS, 0, &w->weight_scale, err, errlen) < 0 ||
            vec(c, prefix, "weight_offset", ty, N, 0, FLOATS, 0, &w->weight_offset, err, errlen) < 0 ||
            positive(is, 1, prefix, "input_scale", err, errlen) < 0)
            return -1;
        if (!isfinite(*io)) return seterr(err, errlen, "tensor %s.input_offset: %g is not finite", prefix, *io);
        w->input_scale = *is, w->input_offset = *io;
        break;
    }
    case MSMS_W8A8_DYNAMIC:
        if (vec(c, prefix, "weight_scale", ty, N, 0, FLOATS, 1, &w->weight_scale, err, errlen) < 0 ||
            vec(c, prefix, "weight_offset", ty, N, 0, FLOATS, 0, &w->weight_offset, err, errlen) < 0)
            return -1;
        break;
    case MSMS_W4A8_DYNAMIC: {
        if (vec(c, prefix, "weight_scale", ty, N, 0, FLOATS, 1, &w->weight_scale, err, errlen) < 0 ||
            vec(c, prefix, "weight_offset", ty, N, 0, FLOATS, 0, &w->weight_offset, err, errlen) < 0)
            return -1;
        snprintf(name, sizeof name, "%s.weight_scale_second", prefix);
        const st_tensor *t = st_find(c->st, name);
        if (t) { /* the groups: K / columns, which must agree with group_size if it is given */
            size_t cols = t->ndim == 2 ? t->shape[1] : 0;
            if (!cols || K % cols) {
                char got[96];
                shape_str(t, got, sizeof got);
                return seterr(err, errlen, "tensor %s: shape %s, want [%zu, a divisor of %zu]", name, got, N, K);
            }
            w->group = K / cols;
            if (c->group_size && c->group_size != w->group)
                return seterr(err, errlen, "tensor %s: groups of %zu, but %s says group_size %zu", name, w->group,
                              c->desc_name, c->group_size);
            if (vec(c, prefix, "weight_scale_second", ty, N, cols, FLOATS, 1, &w->weight_scale_second, err, errlen) < 0 ||
                vec(c, prefix, "weight_offset_second", ty, N, cols, FLOATS | I64_INT, 0, &w->weight_offset_second, err,
                    errlen) < 0)
                return -1;
        }
        snprintf(name, sizeof name, "%s.scale_bias", prefix);
        if ((t = st_find(c->st, name))) {
            w->scale_bias_cols = t->ndim == 2 && t->shape[1] == 16 ? 16 : 1;
            if (vec(c, prefix, "scale_bias", ty, N, w->scale_bias_cols == 16 ? 16 : 0, FLOATS, 1, &w->scale_bias, err,
                    errlen) < 0)
                return -1;
        }
        break;
    }
    default: { /* W4A4_FLATQUANT_DYNAMIC */
        const float *clip;
        snprintf(name, sizeof name, "%s.left_trans", prefix);
        const st_tensor *t = st_find(c->st, name);
        size_t L = t && t->ndim == 2 ? t->shape[0] : 0, R = L && K % L == 0 ? K / L : 0;
        if (!t) return seterr(err, errlen, "tensor %s: missing (W4A4_FLATQUANT_DYNAMIC needs it)", name);
        if (!R || t->shape[1] != L) {
            char got[96];
            shape_str(t, got, sizeof got);
            return seterr(err, errlen, "tensor %s: shape %s, want [L, L] with L dividing in_features %zu", name, got, K);
        }
        snprintf(name, sizeof name, "%s.right_trans", prefix);
        if ((t = st_find(c->st, name)) && !(t->ndim == 2 && t->shape[0] * L == K)) {
            char got[96];
            shape_str(t, got, sizeof got);
            return seterr(err, errlen, "tensor %s: shape %s, want [%zu, %zu] (left_trans is [%zu, %zu], in_features %zu)",
                          name, got, R, R, L, L, K);
        }
        w->L = L, w->R = R;
        if (vec(c, prefix, "left_trans", ty, L, L, FLOATS, 1, &w->left_trans, err, errlen) < 0 ||
            vec(c, prefix, "right_trans", ty, R, R, FLOATS, 0, &w->right_trans, err, errlen) < 0 ||
            vec(c, prefix, "clip_ratio", ty, 1, 0, FLOATS, 1, &clip, err, errlen) < 0 ||
            vec(c, prefix, "weight_scale", ty, N, 0, FLOATS, 1, &w->weight_scale, err, errlen) < 0 ||
            vec(c, prefix, "weight_offset", ty, N, 0, FLOATS, 0, &w->weight_offset, err, errlen) < 0 ||
            positive(clip, 1, prefix, "clip_ratio", err, errlen) < 0)
            return -1;
        w->clip_ratio = *clip;
        if (!w->right_trans) { /* o_proj: FlatQuant folds the head_dim transform into v_proj */
            float *id = calloc(R * R, sizeof *id), **o = realloc(c->owned, (c->n_owned + 1) * sizeof *o);
            if (o) c->owned = o;
            if (!id || !o) {
                free(id);
                return seterr(err, errlen, "%s: out of memory", prefix);
            }
            for (size_t i = 0; i < R; i++) id[i * R + i] = 1;
            c->owned[c->n_owned++] = id;
            w->right_trans = id;
        }
    }
    }
    /* a float bias after the dequant (Qwen3 has none; msModelSlim types it FLOAT) */
    snprintf(name, sizeof name, "%s.bias", prefix);
    if (st_find(c->st, name) && vec(c, prefix, "bias", NULL, N, 0, FLOATS, 1, &w->bias, err, errlen) < 0) return -1;
    *q = (qweight){.q = WQ_FMT, .data = w->w ? (const void *)w->w : w->w_packed, .in = K, .fmt = &msms_fmt, .aux = w};
    *out = (weight){WQ_DTYPE(WQ_FMT), q};
    return 0;
}

static int bind_layer(ctx *c, model *m, int l, char *err, size_t errlen) {
    model_slot t[MODEL_SLOTS];
    model_layer_slots(m, l, t);
    layer_weights *w = &m->layers[l];
    size_t dim = (size_t)m->cfg.dim;
    char name[256];
    for (size_t i = 0; i < MODEL_SLOTS; i++) {
        if (t[i].d1) continue; /* a linear weight */
        snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, t[i].hf);
        if (bindf(c, m, name, t[i].d0, 0, 0, t[i].w, err, errlen) < 0) return -1;
    }
    /* the anti-outlier pass's biases on the two block norms, where it ran */
    const struct { const char *name; weight *w; } bias[] = {{"input_layernorm", &w->attn_norm_bias},
                                                            {"post_attention_layernorm", &w->ffn_norm_bias}};
    for (size_t i = 0; i < 2; i++) {
        snprintf(name, sizeof name, "model.layers.%d.%s.bias", l, bias[i].name);
        if (bindf(c, m, name, dim, 0, 1, bias[i].w, err, errlen) < 0) return -1;
    }
    for (size_t i = 0; i < MODEL_SLOTS; i++) {
        if (!t[i].d1) continue; /* a norm */
        snprintf(name, sizeof name, "model.layers.%d.%s", l, t[i].hf);
        if (linear(c, m, name, t[i].d0, t[i].d1, t[i].w, err, errlen) < 0) return -1;
    }
    return 0;
}

static int fmt_open(model *m, const char *dir, char *err, size_t errlen) {
    ctx *c = calloc(1, sizeof *c);
    char *cfg = NULL, *desc = NULL, base[256];
    size_t cfg_len = 0, desc_len = 0;
    int rc = -1;
    if (!(m->fmt_ctx = c)) return seterr(err, errlen, "%s: out of memory", dir);
    if (!find_desc(dir, c->desc_name, sizeof c->desc_name)) return seterr(err, errlen, "%s: no quant_model_description.json", dir);
    if (!(cfg = slurp(dir, "config.json", &cfg_len, err, errlen)) ||
        !(desc = slurp(dir, c->desc_name, &desc_len, err, errlen)) || cfg_load(dir, &m->cfg, err, errlen) < 0 ||
        find_weights(dir, base, sizeof base, err, errlen) < 0 || !(m->st = st_open_named(dir, base, err, errlen)))
        goto done;
    const qwen_config *cf = &m->cfg;
    c->st = m->st;
    c->tensors = st_tensors(m->st, &c->n_tensors);
    c->cap_w = 7 * (size_t)cf->n_layers + 1;
    if (!(m->layers = calloc((size_t)cf->n_layers, sizeof *m->layers)) || !(c->used = calloc(c->n_tensors + 1, 1)) ||
        !(c->mw = calloc(c->cap_w, sizeof *c->mw)) || !(c->qw = calloc(c->cap_w, sizeof *c->qw))) {
        seterr(err, errlen, "%s: out of memory", dir);
        goto done;
    }
    /* identity: the config, the description and every safetensors header */
    uint8_t hh[32];
    st_header_hash(m->st, hh);
    crypto_generichash_state hs;
    crypto_generichash_init(&hs, NULL, 0, sizeof m->fingerprint);
    crypto_generichash_update(&hs, (const unsigned char *)cfg, cfg_len);
    crypto_generichash_update(&hs, (const unsigned char *)desc, desc_len);
    crypto_generichash_update(&hs, hh, sizeof hh);
    crypto_generichash_final(&hs, m->fingerprint, sizeof m->fingerprint);
    if (check_desc(c, desc, desc_len, err, errlen) < 0) goto done;
    size_t V = (size_t)cf->vocab_size, dim = (size_t)cf->dim;
    if (bindf(c, m, "model.embed_tokens.weight", V, dim, 0, &m->embed, err, errlen) < 0 ||
        bindf(c, m, "model.norm.weight", dim, 0, 0, &m->final_norm, err, errlen) < 0)
        goto done;
    for (int l = 0; l < cf->n_layers; l++)
        if (bind_layer(c, m, l, err, errlen) < 0) goto done;
    const st_tensor *t;
    if (cf->tie_embeddings) { /* as model.c: a tied checkpoint's lm_head.weight is ignored */
        m->lm_head = m->embed;
        if (take(c, "lm_head.weight", NULL, &t, err, errlen) < 0) goto done;
    } else if (linear(c, m, "lm_head", V, dim, &m->lm_head, err, errlen) < 0)
        goto done;
    for (size_t i = 0; i < c->n_tensors; i++)
        if (!c->used[i]) {
            seterr(err, errlen, "tensor %s (%s): not one a Qwen3 model uses", c->tensors[i].name, dtype_of(c, c->tensors[i].name));
            goto done;
        }
    rc = 0;
done:
    free(cfg);
    free(desc);
    return rc;
}

const model_format msms_format = {
    .name = "msmodelslim",
    .detect = detect,
    .open = fmt_open,
    .close = fmt_close,
};
