/* torchao: the torchao safetensors export (torchao.h says what it is). Every quantized
 * weight stays in the read-only mapping; a descriptor per weight (tao_q, in qweight.aux)
 * says where its integers, scales and zero points are and whether activations are
 * quantized. The header's __metadata__ (which st.h does not keep) is read here from each
 * file's JSON header, once, at open. */
#include "torchao.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kern.h"
#include "util.h"

typedef struct {
    const int8_t *q;         /* [rows, in] */
    const uint8_t *scale;    /* [rows, groups] of sdt */
    const int8_t *zp;        /* [rows, groups] */
    st_dtype sdt;            /* F32, BF16 or F16 */
    size_t groups;
    int act;                 /* 1: int8_asym_per_token activations */
} tao_q;

typedef struct {
    qweight *qw;
    tao_q *tq;
    size_t n, cap;
} tao_ctx;

static const cJSON *jget(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }

static float ld(const uint8_t *p, st_dtype t, size_t i) {
    if (t == ST_F32) {
        float f;
        memcpy(&f, p + 4 * i, 4);
        return f;
    }
    uint16_t h = le16(p + 2 * i);
    return t == ST_BF16 ? kern_bf16(h) : kern_f16(h);
}

static size_t up64(size_t x) { return (x + 63) / 64 * 64; }

static size_t tao_scratch(const qweight *w, size_t n) {
    const tao_q *t = w->aux;
    return t->act ? up64(n * w->in) + up64(n * sizeof(float)) + up64(n * sizeof(int32_t)) : 0;
}

/* x rows to int8 per token, as torchao's _apply_int8_act_asym_per_token_quant_dequant */
static void tao_prep(const qweight *w, const float *x, size_t n, void *scratch) {
    const tao_q *t = w->aux;
    if (!t->act) return;
    uint8_t *s = scratch;
    int8_t *q = (int8_t *)s;
    float *sc = (float *)(s + up64(n * w->in));
    int32_t *zp = (int32_t *)(s + up64(n * w->in) + up64(n * sizeof(float)));
    for (size_t i = 0; i < n; i++) kern_quant_act(q + i * w->in, sc + i, zp + i, x + i * w->in, w->in);
}

static void tao_row(const qweight *w, size_t r, float *out) {
    const tao_q *t = w->aux;
    const int8_t *q = t->q + r * w->in;
    for (size_t g = 0; g < t->groups; g++) {
        float s = ld(t->scale, t->sdt, r * t->groups + g);
        int32_t z = t->zp[r * t->groups + g];
        for (size_t k = g * w->group; k < (g + 1) * w->group; k++) out[k] = (float)(q[k] - z) * s;
    }
}

static void tao_matmul(float *y, const float *x, const void *scratch, const qweight *w, size_t n, size_t out, size_t o0,
                       size_t o1) {
    const tao_q *t = w->aux;
    size_t in = w->in, gs = w->group;
    if (!t->act) { /* weight only: f32 x times the dequantized row, a group at a time */
        float buf[256];
        for (size_t o = o0; o < o1; o++) {
            for (size_t i = 0; i < n; i++) y[i * out + o] = 0;
            const int8_t *q = t->q + o * in;
            for (size_t k0 = 0; k0 < in; k0 += 256) {
                size_t m = in - k0 < 256 ? in - k0 : 256;
                for (size_t k = k0; k < k0 + m; k++)
                    buf[k - k0] = (float)(q[k] - t->zp[o * t->groups + k / gs]) * ld(t->scale, t->sdt, o * t->groups + k / gs);
                for (size_t i = 0; i < n; i++) {
                    float acc = 0;
                    for (size_t k = 0; k < m; k++) acc += x[i * in + k0 + k] * buf[k];
                    y[i * out + o] += acc;
                }
            }
        }
        return;
    }
    const uint8_t *s = scratch;
    const int8_t *xq = (const int8_t *)s;
    const float *xs = (const float *)(s + up64(n * in));
    const int32_t *xz = (const int32_t *)(s + up64(n * in) + up64(n * sizeof(float)));
    for (size_t o = o0; o < o1; o++) {
        const int8_t *q = t->q + o * in;
        for (size_t i = 0; i < n; i++) {
            const int8_t *a = xq + i * in;
            float acc = 0;
            for (size_t g = 0; g < t->groups; g++) {
                const int8_t *ag = a + g * gs, *qg = q + g * gs;
                int32_t G = 0, z = t->zp[o * t->groups + g];
                if (gs == 32) /* the recipe's group: a fixed count the compiler can vectorize */
                    for (size_t k = 0; k < 32; k++) G += (ag[k] - xz[i]) * (qg[k] - z);
                else
                    for (size_t k = 0; k < gs; k++) G += (ag[k] - xz[i]) * (qg[k] - z);
                acc += ld(t->scale, t->sdt, o * t->groups + g) * (float)G;
            }
            y[i * out + o] = xs[i] * acc;
        }
    }
}

static const wfmt tao_fmt = {"torchao", tao_scratch, tao_prep, tao_matmul, tao_row};

static cJSON *read_json_file(const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) return seterr(err, errlen, "%s: %s", path, strerror(errno)), NULL;
    char *s = NULL;
    size_t len = 0;
    cJSON *j = NULL;
    if (read_all(f, &s, &len, err, errlen) == 0 && !(j = cJSON_ParseWithLength(s, len)))
        seterr(err, errlen, "%s: not JSON", path);
    fclose(f);
    free(s);
    return j;
}

static int tao_detect(const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    cJSON *j = read_json_file(path, NULL, 0);
    const cJSON *m = jget(jget(j, "quantization_config"), "quant_method");
    int yes = cJSON_IsString(m) && !strcmp(m->valuestring, "torchao");
    cJSON_Delete(j);
    return yes;
}

/* The __metadata__ of one safetensors file's header, merged into meta. */
static int file_meta(const char *path, cJSON *meta, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) return seterr(err, errlen, "%s: %s", path, strerror(errno));
    uint8_t n8[8];
    char *h = NULL;
    int rc = -1;
    if (fread(n8, 1, 8, f) != 8 || le64(n8) > (100u << 20) || !(h = malloc(le64(n8) + 1)) ||
        fread(h, 1, le64(n8), f) != le64(n8)) {
        seterr(err, errlen, "%s: not a safetensors file", path);
        goto done;
    }
    cJSON *j = cJSON_ParseWithLength(h, le64(n8)), *md = cJSON_DetachItemFromObjectCaseSensitive(j, "__metadata__");
    if (!j) seterr(err, errlen, "%s: header is not JSON", path);
    else rc = 0;
    while (md && md->child) {
        cJSON *it = cJSON_DetachItemViaPointer(md, md->child);
        if (it->string) cJSON_AddItemToObject(meta, it->string, it);
        else cJSON_Delete(it);
    }
    cJSON_Delete(md);
    cJSON_Delete(j);
done:
    free(h);
    fclose(f);
    return rc;
}

/* Every file's __metadata__: model.safetensors, or each shard its index names. */
static cJSON *read_meta(const char *dir, char *err, size_t errlen) {
    char path[4096];
    cJSON *meta = cJSON_CreateObject();
    if (!meta) return seterr(err, errlen, "%s: out of memory", dir), NULL;
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    cJSON *idx = access(path, F_OK) == 0 ? read_json_file(path, err, errlen) : NULL;
    const cJSON *wm = jget(idx, "weight_map"), *e;
    int rc = 0;
    if (!idx) {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        rc = file_meta(path, meta, err, errlen);
    } else
        cJSON_ArrayForEach(e, wm) {
            if (!cJSON_IsString(e) || strchr(e->valuestring, '/')) continue;
            const cJSON *p; /* each shard once: the map names it for every tensor it holds */
            for (p = wm->child; p != e; p = p->next)
                if (cJSON_IsString(p) && !strcmp(p->valuestring, e->valuestring)) break;
            if (p != e) continue;
            snprintf(path, sizeof path, "%s/%s", dir, e->valuestring);
            if ((rc = file_meta(path, meta, err, errlen)) < 0) break;
        }
    cJSON_Delete(idx);
    if (rc < 0) cJSON_Delete(meta), meta = NULL;
    return meta;
}

static void shape_str(const st_tensor *t, char *s, size_t n) {
    snprintf(s, n, "[");
    for (int i = 0; i < t->ndim; i++) snprintf(s + strlen(s), n - strlen(s), "%s%zu", i ? ", " : "", t->shape[i]);
    snprintf(s + strlen(s), n - strlen(s), "]");
}

/* A plain F32/F16/BF16 tensor; safetensors does not align, so model_bind_copy copies one
 * at an offset its dtype does not divide, once. */
static int plain(model *m, const char *name, size_t d0, size_t d1, weight *w, char *err, size_t errlen) {
    return model_bind_copy(m, name, d0, d1, w, err, errlen);
}

/* The recipe's weights in the layouts the CPU kernels already run (quant.h), when every
 * zero point is 0 and the integers fit: an int4 group-32 linear with int8 activations
 * becomes WQ_8DA4W (integers repacked two to a byte, scales widened to f32: a copy, made
 * once at open, half the size of the int8 file data, which is then no longer read); an
 * int8 per-row linear with int8 activations (Int8DynamicActivationIntxWeightConfig(int8,
 * PerAxis(0))) is WQ_8DA8W, unless in > 65536 (its int32 row sums could overflow); an
 * int8 per-row weight-only tensor is WQ_E8 (the embedding) or WQ_Q8 (a linear, e.g. the
 * lm_head transformers quantizes like a tied embedding) if in is a multiple of 32 (WQ_Q8
 * takes x as int16 per block of 32, and an embedding may be the tied lm_head). The last
 * three in place (scales copied only if not F32 and aligned). The same integers and scales
 * as the WQ_FMT path, through the SIMD kernels: equal up to the order of f32 rounding, and
 * for WQ_Q8 up to its int16 activations (2^-16 of each block's largest |x|). 1 if done, 0
 * if w stays WQ_FMT, -1 on out of memory. */
static int to_kernel_layout(model *m, tao_ctx *c, const tao_q *t, size_t rows, size_t in, size_t group, int embed, weight *w) {
    int int4 = t->act && group == 32, int8 = t->act && !int4 && t->groups == 1 && in <= 65536;
    if (embed && t->act) return 0; /* an embedding is never a matmul: its WQ_FMT row() reads it */
    if (!int4 && !int8 && (t->act || t->groups != 1)) return 0;
    if (!int4 && !int8 && in % 32) return 0; /* WQ_Q8 takes its activations per block of 32 */
    for (size_t i = 0; i < rows * t->groups; i++)
        if (t->zp[i]) return 0;
    if (int4)
        for (size_t i = 0; i < rows * in; i++)
            if (t->q[i] < -8 || t->q[i] > 7) return 0;
    float *sc = t->sdt == ST_F32 && (uintptr_t)t->scale % 4 == 0 ? (float *)t->scale : NULL;
    if (!sc) {
        if (!(sc = model_own(m, rows * t->groups * sizeof *sc))) return -1;
        for (size_t i = 0; i < rows * t->groups; i++) sc[i] = ld(t->scale, t->sdt, i);
    }
    qweight *q = &c->qw[c->n - 1];
    if (!int4) {
        *q = (qweight){.q = int8 ? WQ_8DA8W : embed ? WQ_E8 : WQ_Q8, .data = t->q, .scales = sc, .in = in};
        w->dtype = WQ_DTYPE(q->q);
        return 1;
    }
    uint8_t *nib = model_own(m, rows * in / 2);
    if (!nib) return -1;
    for (size_t r = 0; r < rows; r++)
        for (size_t b = 0; b < in / 32; b++) {
            const int8_t *v = t->q + r * in + b * 32;
            uint8_t *o = nib + r * in / 2 + b * 16;
            for (size_t j = 0; j < 16; j++) o[j] = (uint8_t)((v[j] + 8) | (v[j + 16] + 8) << 4);
        }
    *q = (qweight){.q = WQ_8DA4W, .data = nib, .scales = sc, .group = 32, .in = in};
    w->dtype = WQ_DTYPE(WQ_8DA4W);
    return 1;
}

/* Module path of shape [rows, in]: quantized if path._weight_qdata exists, else plain. */
static int bind(model *m, const cJSON *meta, const char *path, size_t rows, size_t in, weight *w, char *err,
                size_t errlen) {
    tao_ctx *c = m->fmt_ctx;
    char name[256], sh[96];
    snprintf(name, sizeof name, "%s._weight_qdata", path);
    const st_tensor *tq = st_find(m->st, name), *ts, *tz;
    if (!tq) {
        snprintf(name, sizeof name, "%s.weight", path);
        return plain(m, name, rows, in, w, err, errlen);
    }
    shape_str(tq, sh, sizeof sh);
    if (tq->dtype != ST_I8 || tq->ndim != 2 || tq->shape[0] != rows || tq->shape[1] != in)
        return seterr(err, errlen, "tensor %s: %s %s, config wants I8 [%zu, %zu]", name, st_dtype_name(tq->dtype), sh, rows, in);
    snprintf(name, sizeof name, "%s._weight_scale", path);
    if (!(ts = st_find(m->st, name))) return seterr(err, errlen, "tensor %s: missing", name);
    shape_str(ts, sh, sizeof sh);
    if ((ts->dtype != ST_F32 && ts->dtype != ST_BF16 && ts->dtype != ST_F16) || ts->ndim != 2 || ts->shape[0] != rows ||
        !ts->shape[1] || in % ts->shape[1])
        return seterr(err, errlen, "tensor %s: %s %s, want F32, BF16 or F16 [%zu, in/group] with in = %zu", name,
                      st_dtype_name(ts->dtype), sh, rows, in);
    snprintf(name, sizeof name, "%s._weight_zero_point", path);
    if (!(tz = st_find(m->st, name))) return seterr(err, errlen, "tensor %s: missing", name);
    if (tz->dtype != ST_I8 || tz->ndim != 2 || tz->shape[0] != ts->shape[0] || tz->shape[1] != ts->shape[1]) {
        char sz[96];
        shape_str(tz, sz, sizeof sz);
        return seterr(err, errlen, "tensor %s: %s %s, want I8 %s like %s._weight_scale", name, st_dtype_name(tz->dtype), sz,
                      sh, path);
    }
    /* the metadata: an IntxUnpackedToInt8Tensor with block_size [1, in/groups] */
    snprintf(name, sizeof name, "%s.weight", path);
    const cJSON *ms = jget(meta, name);
    cJSON *md = cJSON_IsString(ms) ? cJSON_Parse(ms->valuestring) : NULL;
    const cJSON *ty = jget(md, "_type"), *d = jget(md, "_data"), *bs = jget(d, "block_size"), *aq = jget(d, "activation_quantization");
    size_t group = in / ts->shape[1];
    int rc = 0;
    if (!md) rc = seterr(err, errlen, "tensor %s: no torchao metadata for it in the safetensors header", name);
    else if (!cJSON_IsString(ty) || strcmp(ty->valuestring, "IntxUnpackedToInt8Tensor"))
        rc = seterr(err, errlen, "tensor %s: torchao type %.40s not supported (only IntxUnpackedToInt8Tensor)", name,
                    cJSON_IsString(ty) ? ty->valuestring : "?");
    else if (cJSON_GetArraySize(bs) != 2 || cJSON_GetArrayItem(bs, 0)->valuedouble != 1 ||
             cJSON_GetArrayItem(bs, 1)->valuedouble != (double)group)
        rc = seterr(err, errlen, "tensor %s: metadata block_size is not [1, %zu] as its scales' shape gives", name, group);
    else if (aq && !cJSON_IsNull(aq) && !(cJSON_IsString(aq) && !strcmp(aq->valuestring, "int8_asym_per_token")))
        rc = seterr(err, errlen, "tensor %s: activation_quantization %.40s not supported (int8_asym_per_token or none)",
                    name, cJSON_IsString(aq) ? aq->valuestring : "?");
    else if (c->n == c->cap) rc = seterr(err, errlen, "%s: more quantized modules than a Qwen3 has", path);
    int act = cJSON_IsString(aq);
    cJSON_Delete(md);
    if (rc < 0) return -1;
    tao_q *t = &c->tq[c->n];
    qweight *q = &c->qw[c->n++];
    *t = (tao_q){(const int8_t *)tq->data, ts->data, (const int8_t *)tz->data, ts->dtype, ts->shape[1], act};
    *q = (qweight){.q = WQ_FMT, .data = tq->data, .scales = ts->data, .group = group, .in = in, .fmt = &tao_fmt, .aux = t};
    w->dtype = WQ_DTYPE(WQ_FMT);
    w->data = q;
    if (to_kernel_layout(m, c, t, rows, in, group, !strcmp(path, "model.embed_tokens"), w) < 0)
        return seterr(err, errlen, "%s: out of memory", path);
    return 0;
}

static void tao_close(model *m) {
    tao_ctx *c = m->fmt_ctx;
    if (!c) return;
    free(c->qw);
    free(c->tq);
    free(c);
    m->fmt_ctx = NULL;
}

static int tao_open(model *m, const char *dir, char *err, size_t errlen) {
    if (model_open_hf_base(m, dir, err, errlen) < 0) return -1;
    const qwen_config *cf = &m->cfg;
    size_t V = (size_t)cf->vocab_size, dim = (size_t)cf->dim, cap = 2 + MODEL_LINEARS * (size_t)cf->n_layers;
    tao_ctx *c = calloc(1, sizeof *c);
    if (!c || !(c->qw = calloc(cap, sizeof *c->qw)) || !(c->tq = calloc(cap, sizeof *c->tq))) {
        if (c) free(c->qw);
        free(c);
        return seterr(err, errlen, "%s: out of memory", dir);
    }
    c->cap = cap;
    m->fmt_ctx = c;
    cJSON *meta = read_meta(dir, err, errlen);
    int rc = -1;
    if (!meta || bind(m, meta, "model.embed_tokens", V, dim, &m->embed, err, errlen) < 0 ||
        plain(m, "model.norm.weight", dim, 0, &m->final_norm, err, errlen) < 0)
        goto done;
    for (int l = 0; l < cf->n_layers; l++) {
        model_slot t[MODEL_SLOTS];
        model_layer_slots(m, l, t);
        char name[160];
        for (size_t i = 0; i < MODEL_SLOTS; i++) {
            if (!t[i].d1) continue; /* a norm */
            snprintf(name, sizeof name, "model.layers.%d.%s", l, t[i].hf);
            if (bind(m, meta, name, t[i].d0, t[i].d1, t[i].w, err, errlen) < 0) goto done;
        }
        for (size_t i = 0; i < MODEL_SLOTS; i++) {
            if (t[i].d1) continue; /* a linear weight */
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, t[i].hf);
            if (plain(m, name, t[i].d0, 0, t[i].w, err, errlen) < 0) goto done;
        }
    }
    /* torchao's recipe unties lm_head before quantizing it (int4, unlike the embedding's
     * int8), and transformers saves it even when the config still says tied: a quantized
     * lm_head in the file is the one torchao ran */
    if (cf->tie_embeddings && !st_find(m->st, "lm_head._weight_qdata")) {
        m->lm_head = m->embed;
        /* the int8 per-row embedding (WQ_E8, never a matmul) as a linear is WQ_Q8: the same
         * integers and per-row f32 scales, read as w8a16 */
        if (weight_q(m->embed) == WQ_E8) {
            qweight *q = model_own(m, sizeof *q);
            if (!q) {
                seterr(err, errlen, "%s: out of memory", dir);
                goto done;
            }
            *q = *(const qweight *)m->embed.data;
            q->q = WQ_Q8;
            m->lm_head = (weight){WQ_DTYPE(WQ_Q8), q};
        }
    } else if (bind(m, meta, "lm_head", V, dim, &m->lm_head, err, errlen) < 0) goto done;
    rc = 0;
done:
    cJSON_Delete(meta);
    return rc;
}

const model_format model_format_torchao = {"torchao", tao_detect, tao_open, tao_close};
