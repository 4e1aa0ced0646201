/* cpu: the reference backend, the Qwen3 decoder layer on the CPU with kern.h's kernels
 * and pool.h's threads. Everything a layer needs is allocated once at open, sized for
 * max_batch positions; a layer writes its K and V straight into the cache rows (after
 * the k norm and RoPE, as HF caches them), so nothing is copied or allocated per token.
 * Decode is the same code with n = 1. Linear weights may be quantized (model_open_q):
 * kern_matmul_w dispatches on each weight's type, with scratch for the quantized activations
 * (q8, q4, 8da4w, 8da8w; bf16a's x rounded to bf16, kern_matmul_bx), quantized once for q, k
 * and v and once for gate and up. Their
 * weights repacked as panels (kern.h) are built here and kept in a cache file of this
 * file's own format (map_panels). */
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "kern.h"
#include "quant.h"
#include "util.h"

typedef struct {
    const model *m;
    const kern_ops *k;
    pool *pool;
    size_t max_batch;
    /* f32 copies of the norm weights (a few KiB per layer; the kernels then need not
     * widen them): [l] -> attn (dim), ffn (dim), q (head_dim), k (head_dim) */
    float *norms;
    float *final_norm; /* (dim) */
    float *norm_bias;  /* [l] -> attn (dim), ffn (dim): msModelSlim's anti-outlier bias, or NULL */
    /* scratch, (max_batch, ...) each */
    float *xb;    /* (B, dim) normed input, then a projection back to dim */
    float *q;     /* (B, n_heads*head_dim) */
    float *att;   /* (B, n_heads*head_dim) attention output */
    float *hb;    /* (B, hidden_dim) gate, then silu(gate)*up */
    float *hb2;   /* (B, hidden_dim) up */
    void *qscratch; /* kern_qscratch(B, widest input) bytes: activations quantized per token */
    kern_packed **packed; /* [l*7 + i]: the layer's quantized weights as panels, [n_slots - 1]: lm_head's,
                           * or NULL */
    mapped pmap;          /* the panels file (map_panels), or nothing */
    int half_kv;          /* decode reads K/V as f16 copies (kv.h): backend_opts.kv_type */
    float *inv_freq;     /* (head_dim/2) */
    float rope_scale;
    float *cos, *sin;    /* (B, head_dim/2) for positions rope_pos0 .. + rope_n */
    size_t rope_pos0, rope_n;
} cpu;

/* The weights that can have panels: 7 per layer, then lm_head. */
static size_t n_slots(const qwen_config *c) { return 7 * (size_t)c->n_layers + 1; }

static size_t norms_per_layer(const qwen_config *c) { return 2 * (size_t)c->dim + 2 * (size_t)c->head_dim; }

static void widen_all(float *dst, weight w, size_t n) {
    const uint16_t *h = w.data;
    for (size_t i = 0; i < n; i++)
        dst[i] = w.dtype == ST_F32 ? ((const float *)w.data)[i] : w.dtype == ST_F16 ? kern_f16(h[i]) : kern_bf16(h[i]);
}

/* Norms are never quantized (only linear weights and the embedding are); any weight may be. */
static int dtype_ok(weight w) {
    return weight_q(w) != WQ_NONE || w.dtype == ST_F32 || w.dtype == ST_F16 || w.dtype == ST_BF16;
}
static int norm_ok(weight w) { return weight_q(w) == WQ_NONE && dtype_ok(w); }

static void cpu_close(void *ctx) {
    cpu *c = ctx;
    if (!c) return;
    pool_free(c->pool);
    free(c->norms);
    free(c->norm_bias);
    free(c->xb);
    free(c->q);
    free(c->att);
    free(c->hb);
    free(c->hb2);
    free(c->qscratch);
    if (c->packed)
        for (size_t i = 0; i < n_slots(&c->m->cfg); i++) kern_packed_free(c->packed[i]);
    free(c->packed);
    unmap_file(&c->pmap);
    free(c->inv_freq);
    free(c->cos);
    free(c->sin);
    free(c);
}

/* 64-byte aligned, so that thread slabs split at 16 floats never share a cache line. */
static float *falloc(size_t n) {
    void *p = NULL;
    size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
    return posix_memalign(&p, 64, bytes ? bytes : 64) ? NULL : p;
}

/* Weight i (q k v o gate up down of layer i / 7; lm_head past the layers), and its rows. */
static const weight *slot_w(const model *m, size_t i) {
    if (i == n_slots(&m->cfg) - 1) return &m->lm_head;
    const layer_weights *lw = &m->layers[i / 7];
    const weight *ws[] = {&lw->wq, &lw->wk, &lw->wv, &lw->wo, &lw->w_gate, &lw->w_up, &lw->w_down};
    return ws[i % 7];
}

static size_t slot_rows(const qwen_config *cf, size_t i) {
    if (i == n_slots(cf) - 1) return (size_t)cf->vocab_size;
    size_t qd = (size_t)cf->n_heads * (size_t)cf->head_dim, kvd = (size_t)cf->n_kv_heads * (size_t)cf->head_dim;
    size_t rows[] = {qd, kvd, kvd, (size_t)cf->dim, (size_t)cf->hidden_dim, (size_t)cf->hidden_dim, (size_t)cf->dim};
    return rows[i % 7];
}

/* The bytes of q's plain layout: its values and its scales. */
static void plain_bytes(const qweight *q, size_t rows, size_t *data, size_t *scales) {
    int i8 = q->q == WQ_8DA8W || q->q == WQ_Q8;
    *data = i8 ? rows * q->in : rows * q->in / 2;
    *scales = i8 ? rows * sizeof(float)
            : q->q == WQ_Q4 ? rows * (q->in / q->group) * sizeof(uint16_t)
                            : rows * (q->in / 32) * sizeof(float);
}

/* The pages of q's plain layout this process read (it holds the panels now). */
static void drop_plain(const model *m, const qweight *q, size_t rows) {
    size_t data, scales;
    plain_bytes(q, rows, &data, &scales);
    model_drop_pages(m, q->data, data);
    model_drop_pages(m, q->scales, scales);
}

/* Pool job (arg: the cpu): weights ti, ti + nt, ... as panels. */
static void pack_task(void *arg, int ti, int nt) {
    cpu *c = arg;
    const model *m = c->m;
    for (size_t i = (size_t)ti; i < n_slots(&m->cfg); i += (size_t)nt) {
        const weight *w = slot_w(m, i);
        wq_type t = weight_q(*w);
        if (!c->k->panel[t]) continue;
        const qweight *q = w->data;
        size_t rows = slot_rows(&m->cfg, i);
        if ((c->packed[i] = kern_pack(c->k, q, rows))) drop_plain(m, q, rows);
    }
}

/* The quantized weights' panels are built once into a cache file of
 * their own and mapped, as the quantized weights are, by every later process (decode's start
 * would otherwise repack the model: 0.8 s for q4 at 4B dims; and processes share one copy in
 * the page cache): cache_dir()/panels-<panels_key>.bin, a header ("QWENPAN\0", the version,
 * the slot count, the key, the size) and each slot's panels from a page boundary. A file of
 * another size or header is built again; one that cannot be built (a read-only or full
 * disk) leaves the panels in memory. */
enum { PANELS_HDR = 64, PANELS_ALIGN = 4096 };

static size_t slot_panel_bytes(const cpu *c, size_t i) {
    const weight *w = slot_w(c->m, i);
    return weight_q(*w) != WQ_NONE ? kern_pack_bytes(c->k, w->data, slot_rows(&c->m->cfg, i)) : 0;
}

/* off[i]: where slot i's panels start; returns the file's size. */
static size_t panels_layout(const cpu *c, size_t *off) {
    size_t size = PANELS_HDR;
    for (size_t i = 0; i < n_slots(&c->m->cfg); i++) {
        size = (size + PANELS_ALIGN - 1) / PANELS_ALIGN * PANELS_ALIGN;
        off[i] = size;
        size += slot_panel_bytes(c, i);
    }
    return size;
}

static void panels_header(uint8_t *h, const cpu *c, const uint8_t *key, size_t size) {
    memset(h, 0, PANELS_HDR);
    memcpy(h, "QWENPAN\0", 8);
    put_le32(h + 8, KERN_PANELS_VERSION);
    put_le32(h + 12, (uint32_t)n_slots(&c->m->cfg));
    memcpy(h + 16, key, 32);
    put_le64(h + 48, size);
}

/* The file's key: BLAKE2b of the model's identity, KERN_PANELS_VERSION, and the first and
 * last 64 bytes of every slot's plain values and the first 64 of its scales. The identity
 * covers config.json, the tensor headers and the scheme, not the weights' values (nor does
 * the quantized weights' cache key see all of them): two checkpoints of one shape, or one
 * rewritten in place, must not share panels. */
static void panels_key(const cpu *c, uint8_t *key) {
    crypto_generichash_state hs;
    uint8_t v[4];
    crypto_generichash_init(&hs, NULL, 0, 32);
    crypto_generichash_update(&hs, (const uint8_t *)"qwen3-pipe panels", 17);
    crypto_generichash_update(&hs, c->m->fingerprint, sizeof c->m->fingerprint);
    put_le32(v, KERN_PANELS_VERSION);
    crypto_generichash_update(&hs, v, 4);
    for (size_t i = 0; i < n_slots(&c->m->cfg); i++) {
        if (!slot_panel_bytes(c, i)) continue;
        const qweight *q = slot_w(c->m, i)->data;
        size_t data, scales;
        plain_bytes(q, slot_rows(&c->m->cfg, i), &data, &scales);
        const uint8_t *d = q->data, *sc = q->scales;
        crypto_generichash_update(&hs, d, data < 64 ? data : 64);
        if (data > 64) crypto_generichash_update(&hs, d + data - 64, 64);
        crypto_generichash_update(&hs, sc, scales < 64 ? scales : 64);
    }
    crypto_generichash_final(&hs, key, 32);
}

typedef struct {
    cpu *c;
    uint8_t *base;
    const size_t *off;
    size_t size;
    const uint8_t *key;
} fill_job;

/* Pool job: slots ti, ti + nt, ... packed into the file's writable mapping. */
static void fill_task(void *arg, int ti, int nt) {
    const fill_job *j = arg;
    const model *m = j->c->m;
    for (size_t i = (size_t)ti; i < n_slots(&m->cfg); i += (size_t)nt) {
        if (!slot_panel_bytes(j->c, i)) continue;
        const qweight *q = slot_w(m, i)->data;
        size_t rows = slot_rows(&m->cfg, i);
        kern_packed_free(kern_pack_at(j->c->k, q, rows, j->base + j->off[i], 1));
        drop_plain(m, q, rows);
    }
}

/* write_mapped's fill: every slot's panels over the pool, then the header. */
static int panels_fill(void *ctx, uint8_t *base, char *err, size_t errlen) {
    (void)err, (void)errlen;
    fill_job *j = ctx;
    j->base = base;
    pool_run(j->c->pool, fill_task, j);
    panels_header(base, j->c, j->key, j->size);
    return 0;
}

/* c->packed from the panels file, built first if missing or stale; -1 (c->packed
 * untouched) if it cannot be had. */
static int map_panels(cpu *c) {
    size_t n = n_slots(&c->m->cfg), *off = malloc(n * sizeof *off);
    char dir[4096], path[4200], hex[65];
    int rc = -1;
    if (!off || cache_dir(dir, sizeof dir, NULL, 0) < 0) goto out;
    size_t size = panels_layout(c, off);
    uint8_t key[32], h[PANELS_HDR];
    panels_key(c, key);
    sodium_bin2hex(hex, sizeof hex, key, sizeof key);
    if ((size_t)snprintf(path, sizeof path, "%s/panels-%s.bin", dir, hex) >= sizeof path) goto out;
    panels_header(h, c, key, size);
    mapped f;
    for (int tries = 0; tries < 2; tries++) {
        if (map_file(path, &f, NULL, 0) == 0) {
            if (f.size == size && !memcmp(f.data, h, PANELS_HDR)) break;
            unmap_file(&f);
        }
        fill_job j = {c, NULL, off, size, key};
        if (tries || write_mapped(path, size, panels_fill, &j, NULL, 0) < 0) goto out;
    }
    c->pmap = f;
    rc = 0;
    for (size_t i = 0; i < n; i++)
        if (slot_panel_bytes(c, i) &&
            !(c->packed[i] = kern_pack_at(c->k, slot_w(c->m, i)->data, slot_rows(&c->m->cfg, i),
                                          (void *)(f.data + off[i]), 0)))
            rc = -1;
    if (rc < 0) {
        for (size_t i = 0; i < n; i++) kern_packed_free(c->packed[i]), c->packed[i] = NULL;
        unmap_file(&c->pmap);
    }
out:
    free(off);
    return rc;
}

static void *cpu_open(const model *m, const backend_opts *o, char *err, size_t errlen) {
    const qwen_config *cf = &m->cfg;
    cpu *c = NULL;
    if (o->max_batch == 0) {
        seterr(err, errlen, "cpu backend: max_batch must be at least 1");
        return NULL;
    }
    if (cf->head_dim % 2 || cf->n_kv_heads <= 0 || cf->n_heads % cf->n_kv_heads) {
        seterr(err, errlen, "cpu backend: head_dim %d must be even and n_heads %d a multiple of n_kv_heads %d",
               cf->head_dim, cf->n_heads, cf->n_kv_heads);
        return NULL;
    }
    const weight *check[] = {&m->embed, &m->final_norm, &m->lm_head};
    for (size_t i = 0; i < sizeof check / sizeof *check; i++)
        if (!dtype_ok(*check[i])) goto dtype;
    if (!norm_ok(m->final_norm)) goto dtype;
    for (int l = 0; l < cf->n_layers; l++) {
        const layer_weights *lw = &m->layers[l];
        const weight *ws[] = {&lw->attn_norm, &lw->wq, &lw->wk, &lw->wv, &lw->wo, &lw->q_norm,
                              &lw->k_norm, &lw->ffn_norm, &lw->w_gate, &lw->w_up, &lw->w_down};
        for (size_t i = 0; i < sizeof ws / sizeof *ws; i++)
            if (!dtype_ok(*ws[i])) goto dtype;
        if (!norm_ok(lw->attn_norm) || !norm_ok(lw->ffn_norm) || !norm_ok(lw->q_norm) || !norm_ok(lw->k_norm))
            goto dtype;
    }
    if (!(c = calloc(1, sizeof *c))) goto oom;
    c->m = m;
    c->k = kern_best();
    c->max_batch = o->max_batch;
    size_t B = o->max_batch, dim = (size_t)cf->dim, hd = (size_t)cf->head_dim,
           qdim = (size_t)cf->n_heads * hd, hidden = (size_t)cf->hidden_dim, npl = norms_per_layer(cf);
    if (!(c->norms = falloc(npl * (size_t)cf->n_layers + dim)) || !(c->xb = falloc(B * dim)) ||
        !(c->q = falloc(B * qdim)) || !(c->att = falloc(B * qdim)) || !(c->hb = falloc(B * hidden)) ||
        !(c->hb2 = falloc(B * hidden)) || !(c->inv_freq = falloc(hd / 2)) || !(c->cos = falloc(B * hd / 2)) ||
        !(c->sin = falloc(B * hd / 2)))
        goto oom;
    size_t widest = dim > qdim ? dim : qdim;
    widest = widest > hidden ? widest : hidden;
    size_t qs = kern_qscratch(B, widest);
    for (int l = 0; l <= cf->n_layers; l++) { /* WQ_FMT weights say what scratch they need */
        const layer_weights *lw = &m->layers[l < cf->n_layers ? l : 0];
        const weight *ws[] = {&lw->wq, &lw->wk, &lw->wv, &lw->wo, &lw->w_gate, &lw->w_up, &lw->w_down};
        for (size_t i = 0; i < 7; i++) {
            const weight *w = l < cf->n_layers ? ws[i] : &m->lm_head;
            const qweight *q = w->data;
            if (weight_q(*w) == WQ_FMT && q->fmt->scratch && 64 + q->fmt->scratch(q, B) > qs)
                qs = 64 + q->fmt->scratch(q, B);
        }
    }
    if (posix_memalign(&c->qscratch, 64, qs)) {
        c->qscratch = NULL;
        goto oom;
    }
    memset(c->qscratch, 0, 64);
    for (int l = 0; l < cf->n_layers; l++) {
        const layer_weights *lw = &m->layers[l];
        float *nl = c->norms + (size_t)l * npl;
        widen_all(nl, lw->attn_norm, dim);
        widen_all(nl + dim, lw->ffn_norm, dim);
        widen_all(nl + 2 * dim, lw->q_norm, hd);
        widen_all(nl + 2 * dim + hd, lw->k_norm, hd);
    }
    c->final_norm = c->norms + npl * (size_t)cf->n_layers;
    for (int l = 0; l < cf->n_layers; l++) {
        const layer_weights *lw = &m->layers[l];
        if (!lw->attn_norm_bias.data && !lw->ffn_norm_bias.data) continue;
        if (!c->norm_bias && !(c->norm_bias = calloc(2 * dim * (size_t)cf->n_layers, sizeof(float)))) goto oom;
        if (lw->attn_norm_bias.data) widen_all(c->norm_bias + 2 * dim * (size_t)l, lw->attn_norm_bias, dim);
        if (lw->ffn_norm_bias.data) widen_all(c->norm_bias + 2 * dim * (size_t)l + dim, lw->ffn_norm_bias, dim);
    }
    widen_all(c->final_norm, m->final_norm, dim);
    kern_rope_freqs(cf, c->inv_freq, &c->rope_scale);
    if (!(c->pool = pool_new(o->n_threads, err, errlen))) {
        cpu_close(c);
        return NULL;
    }
    wq_type wq = weight_q(m->layers[0].wq);
    /* (by the scheme, not the weights' type: a torchao export's 8da4w weights keep f32) */
    c->half_kv = o->kv_type == KV_READ_F16 ||
                 (o->kv_type == KV_READ_AUTO && B == 1 && m->scheme != QS_NONE && m->scheme != QS_BF16);
    /* Panels, where this CPU has a kernel for them. They take the bytes of their plain
     * layout and one row of x runs faster on them too (kern.h): every backend, decode's too,
     * maps them from their own cache file (map_panels; lm_head's included), built in memory
     * only where that file cannot be written (pack_task, over the pool). The plain layout's
     * pages packing read are then dropped from this process (they stay in the page cache),
     * so its memory holds one copy. */
    if (c->k->panel[wq]) {
        if (!(c->packed = calloc(n_slots(cf), sizeof *c->packed))) goto oom;
        if (map_panels(c) < 0) pool_run(c->pool, pack_task, c);
        int all = 1; /* the panels are a speed-up: without memory for all, none */
        for (size_t i = 0; i + 1 < n_slots(cf); i++) all &= weight_q(*slot_w(m, i)) != wq || c->packed[i];
        if (!all) {
            for (size_t i = 0; i < n_slots(cf); i++) kern_packed_free(c->packed[i]);
            free(c->packed);
            c->packed = NULL;
            unmap_file(&c->pmap);
        }
    }
    return c;
oom:
    cpu_close(c);
    seterr(err, errlen, "cpu backend: out of memory");
    return NULL;
dtype:
    seterr(err, errlen, "cpu backend: weights must be F32, F16 or BF16 (or quantized, norms excepted)");
    return NULL;
}

/* kern_matmul_wp, or under the bf16a scheme kern_matmul_bx (x rounded to bf16 for BF16 weights). */
static void matmul_any(const cpu *c, float *y, const float *x, weight w, const kern_packed *pk, size_t n, size_t in,
                       size_t out, int same) {
    (c->m->scheme == QS_BF16A ? kern_matmul_bx : kern_matmul_wp)(c->k, c->pool, y, x, w, pk, n, in, out, c->qscratch,
                                                                 same);
}

/* y = x @ W^T for weight i (q k v o gate up down) of layer l, of any type (see kern_matmul_w),
 * through its panels if it has them; same: x is the last call's, whose quantized activations
 * may serve again. */
static void mml(cpu *c, int l, int i, float *y, const float *x, weight w, size_t n, size_t in, size_t out, int same) {
    matmul_any(c, y, x, w, c->packed ? c->packed[7 * (size_t)l + (size_t)i] : NULL, n, in, out, same);
}

/* x[n,dim] += b[dim] on every row (the anti-outlier norm bias). */
static void add_rows(float *x, const float *b, size_t n, size_t dim) {
    for (size_t i = 0; i < n; i++) kern_add(x + i * dim, b, dim);
}

/* Layer l's attention over K/V rows [0, pos0+n), the new ones written. With half_kv a
 * decode step reads f16 copies of the rows (made here as rows arrive; kv.h): half the
 * bytes, and at 512 positions the attention is a quarter of a step's memory traffic. That
 * is llama.cpp's default cache type. By default only the decode program (max_batch 1) of
 * our quantized schemes and bf16a does it: their weights (bf16a: x) move the logits far
 * more than f16 K/V does (each value within 2^-11); a prefill, float weights and other
 * runtimes' formats keep f32 K/V, so their logits stay their references'. */
static int attention(cpu *c, int l, size_t n, kv_cache *kv, char *err, size_t errlen) {
    const qwen_config *cf = &c->m->cfg;
    size_t hd = (size_t)cf->head_dim, nh = (size_t)cf->n_heads, nkv = (size_t)cf->n_kv_heads, pos0 = kv->n;
    if (!c->half_kv || n != 1) {
        kern_attention(c->k, c->pool, c->att, c->q, kv->k[l], kv->v[l], pos0, n, nh, nkv, hd);
        return 0;
    }
    size_t cap = (kv->cap + KERN_KV_BLOCK - 1) / KERN_KV_BLOCK * KERN_KV_BLOCK;
    if (kv_half_reserve(kv, cap) < 0) return seterr(err, errlen, "cpu backend: out of memory for the f16 K/V");
    size_t from = kv->n16[l], to = pos0 + n;
    kern_kv16_copy(c->k, kv->kv16[l], kv->k[l], kv->v[l], kv->cap16, from, to, nkv, hd);
    kv->n16[l] = to;
    kern_attention_f16(c->k, c->pool, c->att, c->q, kv->kv16[l], kv->cap16, pos0, n, nh, nkv, hd);
    return 0;
}

/* One decoder layer over x (n, dim) at positions kv->n .. kv->n+n-1 (see backend.h). */
static int layer(cpu *c, int l, float *x, size_t n, kv_cache *kv, char *err, size_t errlen) {
    const qwen_config *cf = &c->m->cfg;
    const layer_weights *w = &c->m->layers[l];
    if (n > c->max_batch) return seterr(err, errlen, "cpu backend: %zu positions, more than max_batch %zu", n, c->max_batch);
    if (kv->n + n > kv->cap) return seterr(err, errlen, "cpu backend: kv cache holds %zu rows, %zu needed", kv->cap, kv->n + n);
    size_t dim = (size_t)cf->dim, hd = (size_t)cf->head_dim, half = hd / 2, nh = (size_t)cf->n_heads,
           nkv = (size_t)cf->n_kv_heads, qdim = nh * hd, kv_dim = nkv * hd, hidden = (size_t)cf->hidden_dim,
           pos0 = kv->n;
    const float *norms = c->norms + (size_t)l * norms_per_layer(cf);
    float *kr = kv->k[l] + pos0 * kv_dim, *vr = kv->v[l] + pos0 * kv_dim;
    const kern_ops *k = c->k;
    if (kv->n16 && kv->n16[l] > pos0) kv->n16[l] = pos0; /* f16 copies of rows about to be written are stale */

    const float *bias = c->norm_bias ? c->norm_bias + 2 * dim * (size_t)l : NULL;

    /* attention */
    kern_rmsnorm_k(k, c->xb, x, norms, n, dim, cf->rms_eps);
    if (bias) add_rows(c->xb, bias, n, dim);
    mml(c, l, 0, c->q, c->xb, w->wq, n, dim, qdim, 0);
    mml(c, l, 1, kr, c->xb, w->wk, n, dim, kv_dim, 1);
    mml(c, l, 2, vr, c->xb, w->wv, n, dim, kv_dim, 1);
    kern_rmsnorm_k(k, c->q, c->q, norms + 2 * dim, n * nh, hd, cf->rms_eps); /* per head, before RoPE */
    kern_rmsnorm_k(k, kr, kr, norms + 2 * dim + hd, n * nkv, hd, cf->rms_eps);
    if (c->rope_pos0 != pos0 || c->rope_n != n) { /* once per forward, shared by the layers */
        kern_rope_table(c->cos, c->sin, c->inv_freq, c->rope_scale, pos0, n, half);
        c->rope_pos0 = pos0;
        c->rope_n = n;
    }
    kern_rope(c->q, c->cos, c->sin, n, nh, half);
    kern_rope(kr, c->cos, c->sin, n, nkv, half);
    if (attention(c, l, n, kv, err, errlen) < 0) return -1;
    mml(c, l, 3, c->xb, c->att, w->wo, n, qdim, dim, 0);
    kern_add(x, c->xb, n * dim);

    /* SwiGLU MLP */
    kern_rmsnorm_k(k, c->xb, x, norms + dim, n, dim, cf->rms_eps);
    if (bias) add_rows(c->xb, bias + dim, n, dim);
    mml(c, l, 4, c->hb, c->xb, w->w_gate, n, dim, hidden, 0);
    mml(c, l, 5, c->hb2, c->xb, w->w_up, n, dim, hidden, 1);
    kern_swiglu_k(k, c->hb, c->hb, c->hb2, n * hidden);
    mml(c, l, 6, c->xb, c->hb, w->w_down, n, hidden, dim, 0);
    kern_add(x, c->xb, n * dim);
    return 0;
}

static int cpu_prefill_layer(void *ctx, int l, float *x, size_t n, kv_cache *kv, char *err, size_t errlen) {
    return layer(ctx, l, x, n, kv, err, errlen);
}

static int cpu_decode_layer(void *ctx, int l, float *x, kv_cache *kv, char *err, size_t errlen) {
    return layer(ctx, l, x, 1, kv, err, errlen);
}

/* Any n: max_batch rows at a time through the scratch. */
static int cpu_logits(void *ctx, const float *x, size_t n, float *logits, char *err, size_t errlen) {
    (void)err, (void)errlen;
    cpu *c = ctx;
    const qwen_config *cf = &c->m->cfg;
    size_t dim = (size_t)cf->dim, vocab = (size_t)cf->vocab_size;
    for (size_t i = 0; i < n; i += c->max_batch) {
        size_t nb = n - i < c->max_batch ? n - i : c->max_batch;
        kern_rmsnorm_k(c->k, c->xb, x + i * dim, c->final_norm, nb, dim, cf->rms_eps);
        matmul_any(c, logits + i * vocab, c->xb, c->m->lm_head, c->packed ? c->packed[n_slots(cf) - 1] : NULL, nb,
                   dim, vocab, 0);
    }
    return 0;
}

static size_t cpu_max_batch(const void *ctx) { return ((const cpu *)ctx)->max_batch; }

const backend backend_cpu = {
    .name = "cpu",
    .open = cpu_open,
    .close = cpu_close,
    .prefill_layer = cpu_prefill_layer,
    .decode_layer = cpu_decode_layer,
    .logits = cpu_logits,
    .max_batch = cpu_max_batch,
};
