/* quant: the quantizers (one row at a time, f32 arithmetic as torch does it) and the cache
 * file of a quantized model: where it lives, how it is laid out, building it once
 * (written through a mapping of a preallocated temp file, fsync'd, renamed into place),
 * and binding a model's weights to it (mapped read-only: the page cache holds one copy
 * for every process). Quantizing copies: it is the one place in lib/ that turns the
 * mapped checkpoint into new weights, and it says so by caching the result.
 *
 * File layout (little-endian): a 4096-byte header page, then for each quantized weight in
 * a fixed order (layer 0 wq wk wv wo gate up down, layer 1 ..., lm_head, embed) its arrays
 * (values, scales), each 64-byte aligned. The order and sizes follow from the
 * config and the scheme alone, so the reader recomputes them (plan()) and checks that the
 * file is exactly that long; the header names magic, version, scheme, the source model's
 * fingerprint and the size. */
#include "quant.h"

#include <float.h>
#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "kern.h"
#include "util.h"

static const char *const names[QS_N] = {"none", "bf16", "q8", "q4", "q4g128", "8da4w", "8da8w", "bf16a"};

int quant_scheme_find(const char *name) {
    for (int i = 0; i < QS_N; i++)
        if (!strcmp(names[i], name)) return i;
    return -1;
}

const char *quant_scheme_name(int s) { return s >= 0 && s < QS_N ? names[s] : "?"; }
const char *quant_names(void) { return "none, bf16, bf16a, q8, q4, q4g128, 8da4w, 8da8w"; }

/* ---- rounding ---- */

/* Round half to even for |v| < 2^22 (adding 1.5*2^23 leaves no fraction bits; the FPU
 * rounds that addition to nearest even). Callers clamp first, which changes nothing:
 * clamp(rne(v), lo, hi) == clamp(rne(clamp(v, lo-1, hi+1)), lo, hi) for integer bounds. */
static float rne(float v) {
    if (v > 1024) v = 1024;
    if (v < -1024) v = -1024;
    volatile float t = v + 12582912.0f; /* volatile: never folded into v under any flags */
    return t - 12582912.0f;
}

uint16_t quant_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)(u >> 16 | 0x40); /* quiet NaN */
    return (uint16_t)((u + 0x7fffu + (u >> 16 & 1)) >> 16);
}

uint16_t quant_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint16_t sign = (uint16_t)(u >> 16 & 0x8000);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return sign | 0x7e00;                 /* NaN */
    if (a >= 0x477ff000u) return sign | 0x7c00;                /* rounds to >= 65536: Inf */
    if (a < 0x38800000u) {                                     /* f16 subnormal or zero */
        float m = fabsf(f) * 0x1p24f;                          /* units of 2^-24, exact */
        return sign | (uint16_t)rne(m > 2048 ? 2048 : m);      /* 1024 = smallest normal */
    }
    uint32_t r = a + 0xfffu + (a >> 13 & 1); /* RNE at 13 bits */
    return sign | (uint16_t)((r >> 13) - (112u << 10));
}

/* ---- row quantizers ---- */

static int finite_row(const float *w, size_t in) {
    for (size_t k = 0; k < in; k++)
        if (!isfinite(w[k])) return 0;
    return 1;
}

static float amax_of(const float *w, size_t n) {
    float m = 0;
    for (size_t k = 0; k < n; k++) m = fmaxf(m, fabsf(w[k]));
    return m;
}

int quant_row_q8(int8_t *q, float *scale, const float *w, size_t in) {
    if (!finite_row(w, in)) return -1;
    float s = amax_of(w, in) / 127.0f, id = s > 0 ? 1.0f / s : 0;
    for (size_t k = 0; k < in; k++) {
        float v = rne(w[k] * id);
        q[k] = (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v);
    }
    *scale = s;
    return 0;
}

static void put_nib(uint8_t *nib, size_t k, int q) {
    uint8_t *b = nib + k / 32 * 16 + k % 16;
    if (k % 32 < 16) *b = (uint8_t)((*b & 0xf0) | (q + 8));
    else *b = (uint8_t)((*b & 0x0f) | (q + 8) << 4);
}

int quant_row_q4(uint8_t *nib, uint16_t *scales, const float *w, size_t in, size_t group) {
    if (!finite_row(w, in)) return -1;
    memset(nib, 0, in / 2);
    for (size_t g = 0; g < in / group; g++) {
        const float *wg = w + g * group;
        float m = 0; /* the signed value of largest magnitude: it maps to -8, the full range */
        for (size_t k = 0; k < group; k++)
            if (fabsf(wg[k]) > fabsf(m)) m = wg[k];
        uint16_t h = quant_f16(m / -8.0f);
        float d = kern_f16(h), id = d != 0 ? 1.0f / d : 0;
        for (size_t k = 0; k < group; k++) {
            float v = rne(wg[k] * id);
            put_nib(nib, g * group + k, (int)(v > 7 ? 7 : v < -8 ? -8 : v));
        }
        scales[g] = h;
    }
    return 0;
}

int quant_row_8da4w(uint8_t *nib, float *scales, const float *w, size_t in) {
    if (!finite_row(w, in)) return -1;
    memset(nib, 0, in / 2);
    for (size_t g = 0; g < in / 32; g++) {
        const float *wg = w + g * 32;
        /* choose_qparams_affine SYMMETRIC: max(-min(min,0), max(max,0)) / ((7 - -8) / 2) */
        float s = fmaxf(amax_of(wg, 32) / 7.5f, FLT_MIN), id = 1.0f / s;
        for (size_t k = 0; k < 32; k++) {
            float v = rne(wg[k] * id);
            put_nib(nib, g * 32 + k, (int)(v > 7 ? 7 : v < -8 ? -8 : v));
        }
        scales[g] = s;
    }
    return 0;
}

int quant_row_e8(int8_t *q, float *scale, const float *w, size_t in) {
    if (!finite_row(w, in)) return -1;
    float s = fmaxf(amax_of(w, in) / 127.5f, FLT_MIN), id = 1.0f / s;
    for (size_t k = 0; k < in; k++) {
        float v = rne(w[k] * id);
        q[k] = (int8_t)(v > 127 ? 127 : v < -128 ? -128 : v);
    }
    *scale = s;
    return 0;
}

/* ---- the plan: which weights, in what form, where in the file ---- */

enum { HDR = 4096, ALIGN = 64 };

typedef struct {
    weight *w;       /* the model's weight, rebound to the file */
    qweight *qd;     /* its descriptor (in m->qw), unless q is WQ_NONE */
    weight src;      /* where its values come from */
    size_t rows, in;
    wq_type q;       /* WQ_NONE: converted to BF16 */
    size_t group;
    const char *name;
} slot;

/* Every weight scheme s changes, in file order; n gets the count. NULL if out of memory. */
static slot *slots_of(model *m, int s, size_t *n) {
    if (!(m->qw = calloc((size_t)m->cfg.n_layers * 7 + 2, sizeof *m->qw))) return NULL;
    const qwen_config *c = &m->cfg;
    size_t dim = (size_t)c->dim, hd = (size_t)c->head_dim, qd = (size_t)c->n_heads * hd,
           kvd = (size_t)c->n_kv_heads * hd, ff = (size_t)c->hidden_dim, V = (size_t)c->vocab_size;
    slot *v = calloc((size_t)c->n_layers * 7 + 2, sizeof *v);
    if (!v) return NULL;
    wq_type q = s == QS_Q8      ? WQ_Q8
                : s == QS_Q4 || s == QS_Q4G128 ? WQ_Q4
                : s == QS_8DA4W ? WQ_8DA4W
                : s == QS_8DA8W ? WQ_8DA8W
                                : WQ_NONE;
    size_t group = s == QS_Q4G128 ? 128 : 32, k = 0;
    for (int l = 0; l < c->n_layers; l++) {
        layer_weights *lw = &m->layers[l];
        struct { weight *w; size_t rows, in; const char *name; } t[] = {
            {&lw->wq, qd, dim, "q_proj"}, {&lw->wk, kvd, dim, "k_proj"}, {&lw->wv, kvd, dim, "v_proj"},
            {&lw->wo, dim, qd, "o_proj"}, {&lw->w_gate, ff, dim, "gate_proj"}, {&lw->w_up, ff, dim, "up_proj"},
            {&lw->w_down, dim, ff, "down_proj"},
        };
        for (size_t i = 0; i < 7; i++, k++)
            v[k] = (slot){t[i].w, &m->qw[k], *t[i].w, t[i].rows, t[i].in, q, group, t[i].name};
    }
    v[k] = (slot){&m->lm_head, &m->qw[k], m->lm_head, V, dim, q, group, "lm_head"}, k++;
    if (s == QS_8DA4W || s == QS_8DA8W) v[k] = (slot){&m->embed, &m->qw[k], m->embed, V, dim, WQ_E8, 0, "embed_tokens"}, k++;
    if (s == QS_BF16) { /* BF16 already: used in place, nothing to store */
        size_t j = 0;
        for (size_t i = 0; i < k; i++)
            if (v[i].src.dtype != ST_BF16) v[j++] = v[i];
        k = j;
    }
    *n = k;
    return v;
}

static size_t up(size_t x) { return (x + ALIGN - 1) / ALIGN * ALIGN; }

/* Point sl->w into base (the file) at *off, advancing *off; base NULL just sizes. */
static void place(const slot *sl, uint8_t *base, size_t *off) {
    qweight w = {.q = sl->q, .group = sl->group, .in = sl->in};
    size_t r = sl->rows, in = sl->in, vals, sc = 0;
    switch (sl->q) {
    case WQ_NONE: vals = r * in * 2; break;
    case WQ_Q8: case WQ_E8: case WQ_8DA8W: vals = r * in, sc = r * 4; break;
    case WQ_Q4: vals = r * in / 2, sc = r * (in / sl->group) * 2; break;
    default: vals = r * in / 2, sc = r * (in / 32) * 4; w.group = 32; break;
    }
    w.data = base + *off;
    *off = up(*off + vals);
    w.scales = sc ? base + *off : NULL;
    *off = up(*off + sc);
    if (!base) return;
    if (sl->q == WQ_NONE) { /* plain BF16 in the file */
        *sl->w = (weight){ST_BF16, w.data};
        return;
    }
    *sl->qd = w;
    *sl->w = (weight){WQ_DTYPE(sl->q), sl->qd};
}

/* Row i of a checkpoint weight as f32. */
static void src_row(float *dst, weight w, size_t i, size_t in) {
    const uint8_t *p = (const uint8_t *)w.data + i * in * st_dtype_size(w.dtype);
    for (size_t k = 0; k < in; k++)
        dst[k] = w.dtype == ST_F32 ? ((const float *)p)[k]
                 : w.dtype == ST_F16 ? kern_f16(((const uint16_t *)p)[k]) : kern_bf16(((const uint16_t *)p)[k]);
}

/* Fill one slot's arrays (already placed in the writable mapping). */
static int fill(const slot *sl, float *row, void (*progress)(void *, size_t, size_t), void *pctx, size_t *done,
                size_t total, char *err, size_t errlen) {
    const qweight *w = sl->qd;
    uint16_t *bf = (uint16_t *)sl->w->data; /* WQ_NONE: the BF16 copy */
    size_t in = sl->in, ng = w->group ? in / w->group : 0;
    for (size_t i = 0; i < sl->rows; i++) {
        src_row(row, sl->src, i, in);
        int rc = 0;
        switch (sl->q) {
        case WQ_NONE:
            for (size_t k = 0; k < in; k++) bf[i * in + k] = quant_bf16(row[k]);
            break;
        case WQ_Q8: rc = quant_row_q8((int8_t *)w->data + i * in, (float *)w->scales + i, row, in); break;
        case WQ_E8: case WQ_8DA8W: rc = quant_row_e8((int8_t *)w->data + i * in, (float *)w->scales + i, row, in); break;
        case WQ_Q4:
            rc = quant_row_q4((uint8_t *)w->data + i * in / 2, (uint16_t *)w->scales + i * ng, row, in, w->group);
            break;
        default:
            rc = quant_row_8da4w((uint8_t *)w->data + i * in / 2, (float *)w->scales + i * ng, row, in);
            break;
        }
        if (rc < 0) return seterr(err, errlen, "%s: row %zu holds a NaN or an infinity", sl->name, i);
        *done += in;
        if (progress && (i % 1024 == 1023 || i + 1 == sl->rows)) progress(pctx, *done, total);
    }
    return 0;
}

static void header(uint8_t *h, const model *m, int s, size_t size) {
    memset(h, 0, HDR);
    memcpy(h, "QWENQNT\0", 8);
    put_le32(h + 8, QUANT_VERSION);
    put_le32(h + 12, (uint32_t)s);
    memcpy(h + 16, m->fingerprint, 32);
    put_le64(h + 48, size);
}

int quant_cache_path(const model *m, int s, char *out, size_t outlen, char *err, size_t errlen) {
    char dir[4096];
    if (cache_dir(dir, sizeof dir, err, errlen) < 0) return -1;
    /* the fingerprint covers config.json and the tensor headers (names, dtypes, shapes,
     * offsets); a few bytes of each weight's values are hashed too, so rewriting a
     * checkpoint in place with new values of the same shapes is another key */
    crypto_generichash_state hs;
    uint8_t key[32], v[4];
    crypto_generichash_init(&hs, NULL, 0, sizeof key);
    crypto_generichash_update(&hs, (const uint8_t *)"qwen3-pipe quant", 16);
    crypto_generichash_update(&hs, m->fingerprint, sizeof m->fingerprint);
    if (s == QS_BF16A) s = QS_BF16; /* the same weights */
    crypto_generichash_update(&hs, (const uint8_t *)names[s], strlen(names[s]) + 1);
    put_le32(v, QUANT_VERSION);
    crypto_generichash_update(&hs, v, 4);
    const weight *ws[] = {&m->embed, &m->lm_head};
    for (size_t i = 0; i < 2; i++) crypto_generichash_update(&hs, ws[i]->data, 64);
    for (int l = 0; l < m->cfg.n_layers; l++) {
        crypto_generichash_update(&hs, m->layers[l].wq.data, 64);
        crypto_generichash_update(&hs, m->layers[l].w_down.data, 64);
    }
    crypto_generichash_final(&hs, key, sizeof key);
    char hex[65];
    sodium_bin2hex(hex, sizeof hex, key, sizeof key);
    if ((size_t)snprintf(out, outlen, "%s/quant-%s.bin", dir, hex) >= outlen)
        return seterr(err, errlen, "%s: cache path too long", dir);
    return 0;
}

typedef struct {
    model *m;
    int s;
    slot *v;
    size_t nv, size;
    void (*progress)(void *, size_t, size_t);
    void *pctx;
} build_job;

/* write_mapped's fill: every slot quantized into the file, then the header. */
static int build_fill(void *ctx, uint8_t *base, char *err, size_t errlen) {
    build_job *b = ctx;
    size_t total = 0, done = 0, maxin = 0, off = HDR;
    for (size_t i = 0; i < b->nv; i++) {
        total += b->v[i].rows * b->v[i].in;
        if (b->v[i].in > maxin) maxin = b->v[i].in;
    }
    float *row = malloc(maxin * sizeof *row);
    if (!row) return seterr(err, errlen, "quantize: out of memory");
    for (size_t i = 0; i < b->nv; i++) place(&b->v[i], base, &off);
    int rc = 0;
    for (size_t i = 0; i < b->nv && rc == 0; i++)
        rc = fill(&b->v[i], row, b->progress, b->pctx, &done, total, err, errlen);
    free(row);
    if (rc == 0) header(base, b->m, b->s, b->size);
    return rc;
}

/* The model's identity (what saved sessions are keyed by) for weights or activations that
 * compute other K/V and logits: BLAKE2b(source fingerprint, scheme, version[, the
 * activations' version where a scheme's run-time activations changed: q4's became int8, so
 * a session saved with int16 ones is another model's, whose K/V these kernels would not
 * compute]). */
static void rekey(model *m, int s) {
    crypto_generichash_state hs;
    uint8_t ver[4];
    put_le32(ver, QUANT_VERSION);
    crypto_generichash_init(&hs, NULL, 0, sizeof m->fingerprint);
    crypto_generichash_update(&hs, m->fingerprint, sizeof m->fingerprint);
    crypto_generichash_update(&hs, (const uint8_t *)names[s], strlen(names[s]) + 1);
    crypto_generichash_update(&hs, ver, 4);
    if (s == QS_Q4 || s == QS_Q4G128) crypto_generichash_update(&hs, (const uint8_t *)"a8", 2);
    crypto_generichash_final(&hs, m->fingerprint, sizeof m->fingerprint);
}

int quant_apply(model *m, int sa, void (*progress)(void *, size_t, size_t), void *pctx, char *err, size_t errlen) {
    if (sa < 0 || sa >= QS_N) return seterr(err, errlen, "quantize: no scheme %d", sa);
    if (sa == QS_NONE) return 0;
    if (m->format) return seterr(err, errlen, "quantize %s: %s is a %s checkpoint, already in its own format", names[sa], m->dir, m->format->name);
    int s = sa == QS_BF16A ? QS_BF16 : sa; /* bf16a's weights are bf16's, in bf16's cache file */
    const qwen_config *c = &m->cfg;
    size_t g = s == QS_Q4G128 ? 128 : 32;
    if (s != QS_BF16 && ((size_t)c->dim % g || (size_t)c->hidden_dim % g || (size_t)c->n_heads * c->head_dim % g))
        return seterr(err, errlen, "quantize %s: dim %d, hidden_dim %d and n_heads*head_dim must be multiples of %zu",
                      names[s], c->dim, c->hidden_dim, g);
    if (s == QS_8DA8W && ((size_t)c->dim > 65536 || (size_t)c->hidden_dim > 65536 || (size_t)c->n_heads * c->head_dim > 65536))
        return seterr(err, errlen,
                      "quantize 8da8w: rows longer than 65536 (dim %d, hidden_dim %d, n_heads*head_dim %d) could "
                      "overflow its int32 sums", c->dim, c->hidden_dim, c->n_heads * c->head_dim);
    size_t nv = 0;
    slot *v = slots_of(m, s, &nv);
    if (!v) return seterr(err, errlen, "quantize: out of memory");
    /* the model's weights as the checkpoint has them, to restore on failure */
    weight embed0 = m->embed, head0 = m->lm_head;
    layer_weights *layers0 = malloc((size_t)c->n_layers * sizeof *layers0);
    if (!layers0) {
        free(v);
        return seterr(err, errlen, "quantize: out of memory");
    }
    memcpy(layers0, m->layers, (size_t)c->n_layers * sizeof *layers0);
    m->scheme = sa;
    if (nv == 0) { /* bf16 of a BF16 checkpoint: its K/V and logits; bf16a's are not */
        if (sa == QS_BF16A) rekey(m, sa);
        free(v);
        free(layers0);
        return 0;
    }
    char path[4200];
    size_t size = HDR;
    for (size_t i = 0; i < nv; i++) place(&v[i], NULL, &size);
    if (quant_cache_path(m, s, path, sizeof path, err, errlen) < 0) goto fail;
    mapped f;
    if (map_file(path, &f, NULL, 0) < 0) {
        build_job b = {m, s, v, nv, size, progress, pctx};
        if (write_mapped(path, size, build_fill, &b, err, errlen) < 0 || map_file(path, &f, err, errlen) < 0)
            goto fail;
    }
    uint8_t h[HDR];
    header(h, m, s, size);
    if (f.size != size || memcmp(f.data, h, HDR)) {
        unmap_file(&f);
        seterr(err, errlen, "%s: not the quantized weights of this model (header or size); delete it to rebuild", path);
        goto fail;
    }
    size_t off = HDR;
    for (size_t i = 0; i < nv; i++) place(&v[i], (uint8_t *)f.data, &off);
    m->qmap = (void *)f.data;
    m->qmap_size = f.size;
    rekey(m, sa); /* other weights compute other K/V and logits */
    free(v);
    free(layers0);
    return 0;
fail:
    m->embed = embed0, m->lm_head = head0;
    memcpy(m->layers, layers0, (size_t)c->n_layers * sizeof *layers0);
    m->scheme = QS_NONE;
    free(v);
    free(layers0);
    return -1;
}
