/* mlx: the MLX affine format (mlx.h says what it is), and the BF16 writer.
 *
 * Loading binds every tensor in place: the packed words, scales and biases stay in the
 * read-only mapping and a small descriptor per weight (mlx_q, in qweight.aux) says how to
 * read them; nothing is dequantized ahead of time. A matmul dequantizes one group of a
 * row at a time (at most 128 values on the stack) and dots it with every x row, so the
 * weights cost their packed size in memory and the arithmetic is the exact MLX weight
 * times x in f32 (summed a group at a time, in the CPU's own order within a group). */
#include "mlx.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kern.h"
#include "quant.h"
#include "util.h"

/* One quantized weight, as the files hold it. */
typedef struct {
    const uint8_t *q;             /* rows of row_bytes packed bytes */
    const uint8_t *scales, *biases; /* [rows, in/group] of dtype */
    st_dtype dtype;               /* ST_BF16, ST_F16 or ST_F32 */
    int bits;
    size_t row_bytes, groups;     /* groups per row */
    const kern_ops *k;            /* the dot product matmul uses */
} mlx_q;

typedef struct {
    qweight *qw;
    mlx_q *mq;
    size_t n, cap;
} mlx_ctx;

static float ld(const uint8_t *p, st_dtype t, size_t i) {
    if (t == ST_F32) {
        float f;
        memcpy(&f, p + 4 * i, 4);
        return f;
    }
    uint16_t h = le16(p + 2 * i);
    return t == ST_BF16 ? kern_bf16(h) : kern_f16(h);
}

/* f rounded to nearest even bf16, as MLX's bfloat16 type rounds each result (NaN kept) */
static inline float bf16r(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return f;
    u = (u + 0x7fffu + ((u >> 16) & 1)) & 0xffff0000u;
    memcpy(&f, &u, 4);
    return f;
}

/* s*q + b as mx.dequantize computes it in the scales' dtype t */
static inline float deq1(float s, float b, unsigned q, st_dtype t) {
    if (t == ST_BF16) return bf16r(bf16r(s * (float)q) + b);
    if (t == ST_F16) return kern_f16(quant_f16(kern_f16(quant_f16(s * (float)q)) + b));
    volatile float p = s * (float)q; /* f32: two roundings, never a fused multiply-add */
    return p + b;
}

/* Element k of a packed row: bits [k*bits, (k+1)*bits) of its little-endian bytes. */
static unsigned elem(const uint8_t *row, size_t k, int bits) {
    size_t off = k * (size_t)bits;
    unsigned sh = off & 7, v = row[off >> 3] >> sh;
    if (sh + (unsigned)bits > 8) v |= (unsigned)row[(off >> 3) + 1] << (8 - sh);
    return v & ((1u << bits) - 1);
}

/* bf16r without the NaN test, for values known not to be NaN (an Inf stays Inf, and the
 * largest finite values round to Inf as they should): no branch in the table's loop */
static inline float bf16r_finite(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    u = (u + 0x7fffu + ((u >> 16) & 1)) & 0xffff0000u;
    memcpy(&f, &u, 4);
    return f;
}

/* out[j] = deq1(s, b, q[j]) for j < n, q given as floats */
static void deq_n(float *out, const float *q, size_t n, float s, float b, st_dtype t) {
    if (t != ST_BF16 || !isfinite(s) || !isfinite(b)) {
        for (size_t j = 0; j < n; j++) out[j] = deq1(s, b, (unsigned)q[j], t);
        return;
    }
    /* s finite: s*q is never NaN, nor is bf16(s*q) + b with b finite */
    for (size_t j = 0; j < n; j++) out[j] = bf16r_finite(bf16r_finite(s * q[j]) + b);
}

static const float qvals[256] = {
#define Q4(i) i, i + 1, i + 2, i + 3
#define Q16(i) Q4(i), Q4(i + 4), Q4(i + 8), Q4(i + 12)
#define Q64(i) Q16(i), Q16(i + 16), Q16(i + 32), Q16(i + 48)
    Q64(0), Q64(64), Q64(128), Q64(192)
#undef Q64
#undef Q16
#undef Q4
};

/* Group g of row r, dequantized as mx.dequantize does: out[group]. Each of the 2^bits
 * values a group can take is computed once when that is fewer than the group's size. */
static void deq_group(const qweight *w, const mlx_q *m, size_t r, size_t g, float *out) {
    float s = ld(m->scales, m->dtype, r * m->groups + g), b = ld(m->biases, m->dtype, r * m->groups + g);
    const uint8_t *row = m->q + r * m->row_bytes;
    size_t k0 = g * w->group, gs = w->group, nv = (size_t)1 << m->bits;
    if (nv > gs) {
        float q[128];
        for (size_t j = 0; j < gs; j++) q[j] = (float)elem(row, k0 + j, m->bits);
        deq_n(out, q, gs, s, b, m->dtype);
        return;
    }
    float lut[64];
    deq_n(lut, qvals, nv, s, b, m->dtype);
    if (m->bits == 4) {
        const uint8_t *p = row + k0 / 2;
        for (size_t j = 0; j < gs / 2; j++) out[2 * j] = lut[p[j] & 15], out[2 * j + 1] = lut[p[j] >> 4];
    } else if (m->bits == 2) {
        const uint8_t *p = row + k0 / 4;
        for (size_t j = 0; j < gs / 4; j++)
            for (int e = 0; e < 4; e++) out[4 * j + (size_t)e] = lut[p[j] >> (2 * e) & 3];
    } else
        for (size_t j = 0; j < gs; j++) out[j] = lut[elem(row, k0 + j, m->bits)];
}

static void mlx_row(const qweight *w, size_t r, float *out) {
    const mlx_q *m = w->aux;
    for (size_t g = 0; g < m->groups; g++) deq_group(w, m, r, g, out + g * w->group);
}

/* y[:, o] for o in [o0, o1): W's row o dequantized a chunk of whole groups at a time (at
 * most 1024 values, on the stack) and dotted with every x row by the CPU's best dot
 * product (kern_ops.scores); chunks summed in order */
static void mlx_matmul(float *y, const float *x, const void *scratch, const qweight *w, size_t n, size_t out,
                       size_t o0, size_t o1) {
    (void)scratch;
    const mlx_q *m = w->aux;
    size_t in = w->in, gs = w->group, per = 1024 / gs; /* groups per chunk */
    float buf[1024], s[64];
    for (size_t o = o0; o < o1; o++) {
        for (size_t i = 0; i < n; i++) y[i * out + o] = 0;
        for (size_t g0 = 0; g0 < m->groups; g0 += per) {
            size_t ng = m->groups - g0 < per ? m->groups - g0 : per, len = ng * gs;
            for (size_t g = 0; g < ng; g++) deq_group(w, m, o, g0 + g, buf + g * gs);
            for (size_t i0 = 0; i0 < n; i0 += 64) {
                size_t nb = n - i0 < 64 ? n - i0 : 64;
                m->k->scores(s, buf, x + i0 * in + g0 * gs, nb, in, len);
                for (size_t i = 0; i < nb; i++) y[(i0 + i) * out + o] += s[i];
            }
        }
    }
}

static const wfmt mlx_fmt = {.name = "mlx", .matmul = mlx_matmul, .row = mlx_row};

static const cJSON *jget(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }

static cJSON *read_json(const char *dir, char *err, size_t errlen) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "rb");
    if (!f) return seterr(err, errlen, "%s: no config.json", dir), NULL;
    char *s = NULL;
    size_t len = 0;
    cJSON *j = NULL;
    if (read_all(f, &s, &len, err, errlen) == 0 && !(j = cJSON_ParseWithLength(s, len)))
        seterr(err, errlen, "%s: config.json is not JSON", dir);
    fclose(f);
    free(s);
    return j;
}

static int mlx_detect(const char *dir) {
    cJSON *j = read_json(dir, NULL, 0);
    const cJSON *q = jget(j, "quantization");
    int yes = cJSON_IsObject(q) && cJSON_IsNumber(jget(q, "bits")) && cJSON_IsNumber(jget(q, "group_size"));
    cJSON_Delete(j);
    return yes;
}

/* bits and group_size of a quantization entry ({"bits": b, "group_size": g, "mode": ...}). */
static int entry(const cJSON *e, const char *what, int *bits, int *gs, char *err, size_t errlen) {
    const cJSON *b = jget(e, "bits"), *g = jget(e, "group_size"), *mode = jget(e, "mode");
    if (!cJSON_IsNumber(b) || !cJSON_IsNumber(g))
        return seterr(err, errlen, "config.json: quantization%s%s: bits and group_size must be numbers", *what ? "." : "", what);
    if (mode && !(cJSON_IsString(mode) && !strcmp(mode->valuestring, "affine")))
        return seterr(err, errlen, "config.json: quantization%s%s: mode %.32s not supported (only affine)", *what ? "." : "",
                      what, cJSON_IsString(mode) ? mode->valuestring : "?");
    *bits = b->valueint, *gs = g->valueint;
    return 0;
}

static int valid_bits(size_t b) { return b == 2 || b == 3 || b == 4 || b == 5 || b == 6 || b == 8; }


static void shape_str(const st_tensor *t, char *s, size_t n) {
    snprintf(s, n, "[");
    for (int i = 0; i < t->ndim; i++) snprintf(s + strlen(s), n - strlen(s), "%s%zu", i ? ", " : "", t->shape[i]);
    snprintf(s + strlen(s), n - strlen(s), "]");
}

/* A plain F32/F16/BF16 tensor (the norms, and any module left unquantized). MLX's
 * safetensors writer packs tensors back to back with no alignment, so a BF16 norm can sit
 * at an odd offset: model_bind_copy copies such a one once. */
static int plain(model *m, const char *name, size_t d0, size_t d1, weight *w, char *err, size_t errlen) {
    return model_bind_copy(m, name, d0, d1, w, err, errlen);
}

/* Module path (e.g. "model.layers.3.mlp.down_proj") of shape [rows, in] into w: quantized
 * if path.scales exists, else a plain tensor. */
static int bind(model *m, const cJSON *qcfg, const char *path, size_t rows, size_t in, weight *w, char *err,
                size_t errlen) {
    mlx_ctx *c = m->fmt_ctx;
    char name[256], sh[96];
    const cJSON *ov = jget(qcfg, path);
    if (cJSON_IsTrue(ov)) ov = NULL; /* mlx-lm 0.24's predicate value: quantized, as the default */
    snprintf(name, sizeof name, "%s.scales", path);
    const st_tensor *ts = st_find(m->st, name);
    if (!ts) {
        if (ov && !cJSON_IsFalse(ov))
            return seterr(err, errlen, "tensor %s: missing (config.json quantizes %s)", name, path);
        snprintf(name, sizeof name, "%s.weight", path);
        return plain(m, name, rows, in, w, err, errlen);
    }
    if (cJSON_IsFalse(ov))
        return seterr(err, errlen, "tensor %s: present, but config.json says %s is not quantized", name, path);
    int want_bits, want_gs;
    if (entry(ov ? ov : qcfg, ov ? path : "", &want_bits, &want_gs, err, errlen) < 0) return -1;
    snprintf(name, sizeof name, "%s.weight", path);
    const st_tensor *tw = st_find(m->st, name);
    if (!tw) return seterr(err, errlen, "tensor %s: missing", name);
    shape_str(tw, sh, sizeof sh);
    if (tw->dtype != ST_U32 || tw->ndim != 2 || tw->shape[0] != rows)
        return seterr(err, errlen, "tensor %s: %s %s, want U32 [%zu, in*bits/32] with in = %zu", name,
                      st_dtype_name(tw->dtype), sh, rows, in);
    size_t bits = tw->shape[1] * 32 / in;
    if (tw->shape[1] * 32 % in || !valid_bits(bits))
        return seterr(err, errlen, "tensor %s: %s packs %zu bits per row of %zu elements: not 2, 3, 4, 5, 6 or 8 bits each",
                      name, sh, tw->shape[1] * 32, in);
    snprintf(name, sizeof name, "%s.scales", path);
    shape_str(ts, sh, sizeof sh);
    if ((ts->dtype != ST_BF16 && ts->dtype != ST_F16 && ts->dtype != ST_F32) || ts->ndim != 2 || ts->shape[0] != rows ||
        !ts->shape[1] || in % ts->shape[1])
        return seterr(err, errlen, "tensor %s: %s %s, want BF16, F16 or F32 [%zu, in/group] with in = %zu", name,
                      st_dtype_name(ts->dtype), sh, rows, in);
    size_t gs = in / ts->shape[1];
    if (gs != 32 && gs != 64 && gs != 128)
        return seterr(err, errlen, "tensor %s: %s gives groups of %zu, not 32, 64 or 128", name, sh, gs);
    if ((int)bits != want_bits || (int)gs != want_gs)
        return seterr(err, errlen, "tensor %s.weight: shapes give %zu bits in groups of %zu, config.json quantization%s%s says %d bits, group_size %d",
                      path, bits, gs, ov ? "." : "", ov ? path : "", want_bits, want_gs);
    snprintf(name, sizeof name, "%s.biases", path);
    const st_tensor *tb = st_find(m->st, name);
    if (!tb) return seterr(err, errlen, "tensor %s: missing", name);
    if (tb->dtype != ts->dtype || tb->ndim != 2 || tb->shape[0] != ts->shape[0] || tb->shape[1] != ts->shape[1]) {
        char sh2[96];
        shape_str(tb, sh2, sizeof sh2);
        return seterr(err, errlen, "tensor %s: %s %s, want %s %s like %s.scales", name, st_dtype_name(tb->dtype), sh2,
                      st_dtype_name(ts->dtype), sh, path);
    }
    if (c->n == c->cap) return seterr(err, errlen, "%s: more quantized modules than a Qwen3 has", path);
    mlx_q *mq = &c->mq[c->n];
    qweight *q = &c->qw[c->n++];
    *mq = (mlx_q){tw->data, ts->data, tb->data, ts->dtype, (int)bits, tw->shape[1] * 4, ts->shape[1], kern_best()};
    *q = (qweight){.q = WQ_FMT, .data = tw->data, .scales = ts->data, .group = gs, .in = in, .fmt = &mlx_fmt, .aux = mq};
    w->dtype = WQ_DTYPE(WQ_FMT);
    w->data = q;
    return 0;
}

static void mlx_close(model *m) {
    mlx_ctx *c = m->fmt_ctx;
    if (!c) return;
    free(c->qw);
    free(c->mq);
    free(c);
    m->fmt_ctx = NULL;
}

static int mlx_open(model *m, const char *dir, char *err, size_t errlen) {
    if (model_open_hf_base(m, dir, err, errlen) < 0) return -1;
    cJSON *j = read_json(dir, err, errlen);
    if (!j) return -1;
    int rc = -1, b, g;
    const cJSON *qc = jget(j, "quantization");
    const qwen_config *cf = &m->cfg;
    size_t V = (size_t)cf->vocab_size, dim = (size_t)cf->dim, cap = 2 + MODEL_LINEARS * (size_t)cf->n_layers;
    mlx_ctx *c = calloc(1, sizeof *c);
    if (!c || !(c->qw = calloc(cap, sizeof *c->qw)) || !(c->mq = calloc(cap, sizeof *c->mq))) {
        if (c) free(c->qw);
        free(c);
        seterr(err, errlen, "%s: out of memory", dir);
        goto done;
    }
    c->cap = cap;
    m->fmt_ctx = c;
    if (entry(qc, "", &b, &g, err, errlen) < 0 || bind(m, qc, "model.embed_tokens", V, dim, &m->embed, err, errlen) < 0 ||
        plain(m, "model.norm.weight", dim, 0, &m->final_norm, err, errlen) < 0)
        goto done;
    for (int l = 0; l < cf->n_layers; l++) {
        model_slot t[MODEL_SLOTS];
        model_layer_slots(m, l, t);
        char name[160];
        for (size_t i = 0; i < MODEL_SLOTS; i++) {
            if (!t[i].d1) continue; /* a norm */
            snprintf(name, sizeof name, "model.layers.%d.%s", l, t[i].hf);
            if (bind(m, qc, name, t[i].d0, t[i].d1, t[i].w, err, errlen) < 0) goto done;
        }
        for (size_t i = 0; i < MODEL_SLOTS; i++) {
            if (t[i].d1) continue; /* a linear weight */
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, t[i].hf);
            if (plain(m, name, t[i].d0, 0, t[i].w, err, errlen) < 0) goto done;
        }
    }
    /* tied: lm_head is the embedding used as a linear (QuantizedEmbedding.as_linear) */
    if (cf->tie_embeddings) m->lm_head = m->embed;
    else if (bind(m, qc, "lm_head", V, dim, &m->lm_head, err, errlen) < 0) goto done;
    rc = 0;
done:
    cJSON_Delete(j);
    return rc;
}

const model_format model_format_mlx = {"mlx", mlx_detect, mlx_open, mlx_close};

/* ---- writing a BF16 Hugging Face directory ---- */

typedef struct {
    char name[160];
    weight w;
    size_t rows, cols; /* cols 0: a vector [rows] */
} out_tensor;

static size_t list_out(const model *m, out_tensor *t) {
    const qwen_config *cf = &m->cfg;
    size_t n = 0, V = (size_t)cf->vocab_size, dim = (size_t)cf->dim;
#define PUT(W, R, C, ...) (snprintf(t[n].name, sizeof t[n].name, __VA_ARGS__), t[n].w = (W), t[n].rows = (R), t[n].cols = (C), n++)
    PUT(m->embed, V, dim, "model.embed_tokens.weight");
    for (int l = 0; l < cf->n_layers; l++) {
        model_slot s[MODEL_SLOTS];
        model_layer_slots(m, l, s);
        for (size_t i = 0; i < MODEL_SLOTS; i++) PUT(*s[i].w, s[i].d0, s[i].d1, "model.layers.%d.%s.weight", l, s[i].hf);
    }
    PUT(m->final_norm, dim, 0, "model.norm.weight");
    if (!cf->tie_embeddings) PUT(m->lm_head, V, dim, "lm_head.weight");
#undef PUT
    return n;
}

/* Row r of t as f32 (cols values; a vector is one row of rows values). */
static void row_f32(const out_tensor *t, size_t r, float *out) {
    size_t cols = t->cols ? t->cols : t->rows;
    if (weight_q(t->w) == WQ_FMT) {
        const qweight *q = t->w.data;
        q->fmt->row(q, r, out);
        return;
    }
    for (size_t j = 0; j < cols; j++) out[j] = weight_get(t->w, r * cols + j);
}

static int copy_file(const char *from, const char *to, char *err, size_t errlen) {
    mapped f;
    if (map_file(from, &f, err, errlen) < 0) return -1;
    int rc = write_atomic(to, f.data, f.size, err, errlen);
    unmap_file(&f);
    return rc;
}

static int write_config(const model *m, const char *outdir, char *err, size_t errlen) {
    cJSON *j = read_json(m->dir, err, errlen);
    if (!j) return -1;
    cJSON_DeleteItemFromObjectCaseSensitive(j, "quantization");
    cJSON_DeleteItemFromObjectCaseSensitive(j, "quantization_config");
    const char *dt[] = {"torch_dtype", "dtype"};
    for (int i = 0; i < 2; i++)
        if (jget(j, dt[i])) cJSON_ReplaceItemInObjectCaseSensitive(j, dt[i], cJSON_CreateString("bfloat16"));
    char *s = cJSON_Print(j), path[4200];
    cJSON_Delete(j);
    if (!s) return seterr(err, errlen, "config.json: out of memory");
    snprintf(path, sizeof path, "%s/config.json", outdir);
    int rc = write_atomic(path, s, strlen(s), err, errlen);
    free(s);
    return rc;
}

static int write_weights(const model *m, const char *outdir, char *err, size_t errlen) {
    const qwen_config *cf = &m->cfg;
    size_t cap = 4 + 11 * (size_t)cf->n_layers, widest = (size_t)cf->vocab_size;
    size_t lim[] = {(size_t)cf->dim, (size_t)cf->hidden_dim, (size_t)cf->n_heads * cf->head_dim};
    for (int i = 0; i < 3; i++) widest = lim[i] > widest ? lim[i] : widest;
    out_tensor *t = calloc(cap, sizeof *t);
    float *row = malloc(widest * sizeof *row);
    uint16_t *h = malloc(widest * sizeof *h);
    buf hdr = {0};
    char path[4200], tmp[4300];
    FILE *f = NULL;
    int rc = -1;
    if (!t || !row || !h) {
        seterr(err, errlen, "%s: out of memory", outdir);
        goto done;
    }
    size_t n = list_out(m, t), off = 0;
    for (int l = 0; l < cf->n_layers; l++)
        if (m->layers[l].attn_norm_bias.data || m->layers[l].ffn_norm_bias.data) {
            seterr(err, errlen, "layer %d: norm biases (msModelSlim) have no place in a Hugging Face Qwen3 directory", l);
            goto done;
        }
    /* header: every tensor BF16, in order, then padding to 8 bytes */
    buf_putc(&hdr, '{');
    for (size_t i = 0; i < n; i++) {
        size_t bytes = t[i].rows * (t[i].cols ? t[i].cols : 1) * 2;
        if (t[i].cols)
            buf_printf(&hdr, "\"%s\":{\"dtype\":\"BF16\",\"shape\":[%zu,%zu],\"data_offsets\":[%zu,%zu]},", t[i].name,
                       t[i].rows, t[i].cols, off, off + bytes);
        else
            buf_printf(&hdr, "\"%s\":{\"dtype\":\"BF16\",\"shape\":[%zu],\"data_offsets\":[%zu,%zu]},", t[i].name,
                       t[i].rows, off, off + bytes);
        off += bytes;
    }
    buf_printf(&hdr, "\"__metadata__\":{\"format\":\"pt\"}}");
    while ((hdr.len + 8) % 8) buf_putc(&hdr, ' ');
    if (!hdr.data) {
        seterr(err, errlen, "%s: out of memory", outdir);
        goto done;
    }
    snprintf(path, sizeof path, "%s/model.safetensors", outdir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (!(f = fopen(tmp, "wb"))) {
        seterr(err, errlen, "%s: %s", tmp, strerror(errno));
        goto done;
    }
    uint8_t le[8];
    put_le64(le, hdr.len);
    fwrite(le, 1, 8, f);
    fwrite(hdr.data, 1, hdr.len, f);
    for (size_t i = 0; i < n; i++) {
        size_t rows = t[i].cols ? t[i].rows : 1, cols = t[i].cols ? t[i].cols : t[i].rows;
        for (size_t r = 0; r < rows; r++) {
            row_f32(&t[i], r, row);
            for (size_t k = 0; k < cols; k++) {
                uint16_t b = quant_bf16(row[k]);
                put_le16((uint8_t *)&h[k], b);
            }
            fwrite(h, 2, cols, f);
        }
    }
    if (fflush(f) || ferror(f) || fsync(fileno(f))) {
        seterr(err, errlen, "%s: %s", tmp, strerror(errno));
        goto done;
    }
    if (fclose(f)) {
        f = NULL;
        seterr(err, errlen, "%s: %s", tmp, strerror(errno));
        goto done;
    }
    f = NULL;
    if (rename(tmp, path) < 0) {
        seterr(err, errlen, "%s: %s", path, strerror(errno));
        goto done;
    }
    rc = 0;
done:
    if (f) fclose(f), unlink(tmp);
    buf_free(&hdr);
    free(t);
    free(row);
    free(h);
    return rc;
}

int mlx_write_hf(const model *m, const char *outdir, char *err, size_t errlen) {
    /* every weight must have values here (an ax-llm directory's layers live in its axmodels) */
    const weight *ws[] = {&m->embed, &m->final_norm, &m->lm_head};
    for (size_t i = 0; i < 3; i++)
        if (!ws[i]->data) return seterr(err, errlen, "%s: no weights on the host to write (an %s directory)", m->dir, m->format ? m->format->name : "?");
    for (int l = 0; l < m->cfg.n_layers; l++) {
        model_slot s[MODEL_SLOTS];
        model_layer_slots(m, l, s);
        for (size_t i = 0; i < MODEL_SLOTS; i++)
            if (!s[i].w->data)
                return seterr(err, errlen, "%s: no weights on the host to write (an %s directory)", m->dir, m->format ? m->format->name : "?");
    }
    if (mkdir(outdir, 0777) < 0 && errno != EEXIST) return seterr(err, errlen, "%s: %s", outdir, strerror(errno));
    if (write_weights(m, outdir, err, errlen) < 0) return -1;
    static const char *const tokfiles[] = {"tokenizer.json",   "tokenizer_config.json", "generation_config.json",
                                           "special_tokens_map.json", "vocab.json", "merges.txt", "added_tokens.json"};
    for (size_t i = 0; i < sizeof tokfiles / sizeof *tokfiles; i++) {
        char from[4200], to[4200];
        snprintf(from, sizeof from, "%s/%s", m->dir, tokfiles[i]);
        snprintf(to, sizeof to, "%s/%s", outdir, tokfiles[i]);
        if (access(from, F_OK) == 0 && copy_file(from, to, err, errlen) < 0) return -1;
    }
    /* config.json last: its presence means a complete directory */
    return write_config(m, outdir, err, errlen);
}
