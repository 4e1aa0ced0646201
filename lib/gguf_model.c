/* gguf_model: a .gguf file as a model (model.h's model_format): the qwen3 metadata as
 * llama.cpp's convert_hf_to_gguf.py writes it, and every weight by its GGUF name.
 *
 * Config: general.architecture must be "qwen3"; sizes come from qwen3.block_count,
 * embedding_length, feed_forward_length, attention.head_count(_kv), attention.key_length
 * (head_dim: never derived when given, since 4B's is not dim/heads), context_length,
 * rope.freq_base, attention.layer_norm_rms_epsilon, rope.scaling.* (yarn); the vocabulary
 * is token_embd's row count. Integers may be any integer type (gguf-py writes u32).
 *
 * Weights: GGUF dims are innermost first, so HF's [out, in] is ne = [in, out]; the data
 * is out rows of in elements, which is our layout. The converter does not permute q/k
 * for qwen3 (only the llama arch is permuted), and llama.cpp runs qwen3 with NeoX rope,
 * as HF does: rows are HF's. F32/F16/BF16 tensors are plain weights used in place;
 * Q8_0/Q4_0/Q4_K/Q6_K are WQ_FMT weights with gguf_blocks' math; any other type is an
 * error naming the tensor and its type. output.weight absent = tied to token_embd.
 * Fingerprint: BLAKE2b-256 of the header, metadata and tensor infos (every name, type,
 * shape and offset), as for safetensors headers. */
#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "gguf_blocks.h"
#include "model.h"
#include "util.h"

typedef struct {
    gguf *g;
    qweight *qw; /* one per tensor of the file, for the WQ_FMT ones */
} gctx;

static int detect(const char *path) { return gguf_is_file(path); }

/* A size from metadata key "qwen3.<k>" in [lo, hi]; def < 0: required. */
static int meta_int(const gguf *g, const char *path, const char *k, long lo, long hi, long def, int *out,
                    char *err, size_t errlen) {
    char key[96];
    snprintf(key, sizeof key, "qwen3.%s", k);
    const gguf_kv *kv = gguf_find(g, key);
    uint64_t v;
    if (!kv) {
        if (def < 0) return seterr(err, errlen, "%s: metadata %s: missing", path, key);
        *out = (int)def;
        return 0;
    }
    if (gguf_kv_uint(kv, &v) < 0) return seterr(err, errlen, "%s: metadata %s: not a non-negative integer", path, key);
    if (v < (uint64_t)lo || v > (uint64_t)hi)
        return seterr(err, errlen, "%s: metadata %s: %llu not in [%ld, %ld]", path, key, (unsigned long long)v, lo, hi);
    *out = (int)v;
    return 0;
}

/* A number from "qwen3.<k>" in (lo, hi]; def NAN-free: < 0 means required. */
static int meta_num(const gguf *g, const char *path, const char *k, double lo, double hi, double def, double *out,
                    char *err, size_t errlen) {
    char key[96];
    snprintf(key, sizeof key, "qwen3.%s", k);
    const gguf_kv *kv = gguf_find(g, key);
    if (!kv) {
        if (def < 0) return seterr(err, errlen, "%s: metadata %s: missing", path, key);
        *out = def;
        return 0;
    }
    if (gguf_kv_num(kv, out) < 0) return seterr(err, errlen, "%s: metadata %s: not a number", path, key);
    if (!(*out > lo && *out <= hi)) return seterr(err, errlen, "%s: metadata %s: %g not in (%g, %g]", path, key, *out, lo, hi);
    return 0;
}

static int meta_str_is(const gguf *g, const char *key, const char *want) {
    const gguf_kv *kv = gguf_find(g, key);
    if (!kv || kv->type != GGUF_STRING) return 0;
    gguf_str s = {(const char *)kv->v + 8, kv->len - 8};
    return gguf_str_is(s, want);
}

/* rope.scaling.*: none, or yarn (HF's defaults for what the file leaves out). */
static int rope_scaling(const gguf *g, const char *path, qwen_config *c, char *err, size_t errlen) {
    const gguf_kv *t = gguf_find(g, "qwen3.rope.scaling.type");
    if (!t || meta_str_is(g, "qwen3.rope.scaling.type", "none")) return 0;
    if (!meta_str_is(g, "qwen3.rope.scaling.type", "yarn"))
        return seterr(err, errlen, "%s: metadata qwen3.rope.scaling.type: only yarn or none is supported", path);
    c->yarn = 1;
    if (meta_num(g, path, "rope.scaling.factor", 0, 1024, -1, &c->yarn_factor, err, errlen) < 0 ||
        meta_int(g, path, "rope.scaling.original_context_length", 1, 1 << 24, c->max_pos, &c->yarn_orig_max_pos,
                 err, errlen) < 0 ||
        meta_num(g, path, "rope.scaling.yarn_beta_fast", 0, 1e6, 32, &c->yarn_beta_fast, err, errlen) < 0 ||
        meta_num(g, path, "rope.scaling.yarn_beta_slow", 0, 1e6, 1, &c->yarn_beta_slow, err, errlen) < 0)
        return -1;
    if (c->yarn_factor < 1) return seterr(err, errlen, "%s: metadata qwen3.rope.scaling.factor: below 1", path);
    c->yarn_attn_factor = 0.1 * log(c->yarn_factor) + 1;
    c->yarn_truncate = 1;
    return 0;
}

/* A token id from tokenizer.ggml.<k>, or -1 when absent. */
static int token_id(const gguf *g, const char *path, const char *k, int vocab, int *out, char *err, size_t errlen) {
    char key[96];
    snprintf(key, sizeof key, "tokenizer.ggml.%s", k);
    const gguf_kv *kv = gguf_find(g, key);
    uint64_t v;
    *out = -1;
    if (!kv) return 0;
    if (gguf_kv_uint(kv, &v) < 0 || v >= (uint64_t)vocab)
        return seterr(err, errlen, "%s: metadata %s: not a token id in [0, %d)", path, key, vocab);
    *out = (int)v;
    return 0;
}

static int read_config(const gguf *g, const char *path, qwen_config *c, char *err, size_t errlen) {
    memset(c, 0, sizeof *c);
    const gguf_kv *arch = gguf_find(g, "general.architecture");
    if (!arch || arch->type != GGUF_STRING) return seterr(err, errlen, "%s: metadata general.architecture: missing", path);
    if (!meta_str_is(g, "general.architecture", "qwen3"))
        return seterr(err, errlen, "%s: metadata general.architecture: \"%.*s\", only qwen3 is supported", path,
                      (int)(arch->len - 8 < 32 ? arch->len - 8 : 32), (const char *)arch->v + 8);
    const gguf_tensor *emb = gguf_tensor_find(g, "token_embd.weight");
    if (!emb) return seterr(err, errlen, "%s: tensor token_embd.weight: missing", path);
    if (emb->ndim != 2 || emb->ne[1] < 1 || emb->ne[1] > (1 << 24))
        return seterr(err, errlen, "%s: tensor token_embd.weight: not 2-D with 1 to 2^24 rows", path);
    c->vocab_size = (int)emb->ne[1];
    if (meta_int(g, path, "block_count", 1, 1024, -1, &c->n_layers, err, errlen) < 0 ||
        meta_int(g, path, "embedding_length", 1, 1 << 16, -1, &c->dim, err, errlen) < 0 ||
        meta_int(g, path, "feed_forward_length", 1, 1 << 20, -1, &c->hidden_dim, err, errlen) < 0 ||
        meta_int(g, path, "attention.head_count", 1, 1024, -1, &c->n_heads, err, errlen) < 0 ||
        meta_int(g, path, "attention.head_count_kv", 1, c->n_heads, c->n_heads, &c->n_kv_heads, err, errlen) < 0 ||
        meta_int(g, path, "attention.key_length", 2, 1024, c->dim / c->n_heads, &c->head_dim, err, errlen) < 0 ||
        meta_int(g, path, "context_length", 1, 1 << 24, -1, &c->max_pos, err, errlen) < 0)
        return -1;
    int vl, vocab_meta;
    if (meta_int(g, path, "attention.value_length", 1, 1024, c->head_dim, &vl, err, errlen) < 0 ||
        meta_int(g, path, "vocab_size", 1, 1 << 24, c->vocab_size, &vocab_meta, err, errlen) < 0)
        return -1;
    if (vl != c->head_dim)
        return seterr(err, errlen, "%s: metadata qwen3.attention.value_length: %d, not key_length %d", path, vl, c->head_dim);
    if (vocab_meta != c->vocab_size)
        return seterr(err, errlen, "%s: metadata qwen3.vocab_size: %d, but token_embd.weight has %d rows", path,
                      vocab_meta, c->vocab_size);
    if (c->n_heads % c->n_kv_heads)
        return seterr(err, errlen, "%s: metadata qwen3.attention.head_count: %d is not a multiple of head_count_kv %d",
                      path, c->n_heads, c->n_kv_heads);
    if (c->head_dim % 2 || c->head_dim < 2) /* (the default dim / heads may be 0) */
        return seterr(err, errlen, "%s: metadata qwen3.attention.key_length: %d is not an even number >= 2", path,
                      c->head_dim);
    double eps, theta;
    /* llama.cpp's default base when the key is absent is 10000 */
    if (meta_num(g, path, "attention.layer_norm_rms_epsilon", 0, 1, -1, &eps, err, errlen) < 0 ||
        meta_num(g, path, "rope.freq_base", 0, 1e12, 10000, &theta, err, errlen) < 0)
        return -1;
    c->rms_eps = (float)eps;
    c->rope_theta = theta;
    c->tie_embeddings = !gguf_tensor_find(g, "output.weight");
    if (token_id(g, path, "bos_token_id", c->vocab_size, &c->bos_id, err, errlen) < 0 ||
        token_id(g, path, "eos_token_id", c->vocab_size, &c->eos_id, err, errlen) < 0)
        return -1;
    return rope_scaling(g, path, c, err, errlen);
}

/* Point w at tensor name, HF shape [d0] (d1 == 0) or [d0, d1] (GGUF ne [d1, d0]).
 * quant: whether a quantized type may stand here (not for norms). */
static int bind(model *m, const char *name, size_t d0, size_t d1, int quant, weight *w, char *err, size_t errlen) {
    gctx *x = m->fmt_ctx;
    const gguf_tensor *t = gguf_tensor_find(x->g, name);
    if (!t) return seterr(err, errlen, "%s: tensor %s: missing", m->dir, name);
    int nd = d1 ? 2 : 1;
    uint64_t want0 = d1 ? d1 : d0, want1 = d1 ? d0 : 1;
    if (t->ndim != nd || t->ne[0] != want0 || t->ne[1] != want1) {
        char got[96] = "[";
        for (int i = 0; i < t->ndim; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%llu", i ? ", " : "", (unsigned long long)t->ne[i]);
        strncat(got, "]", sizeof got - strlen(got) - 1);
        if (d1)
            return seterr(err, errlen, "%s: tensor %s: dims %s, metadata wants [%zu, %zu] (GGUF order, innermost first)",
                          m->dir, name, got, d1, d0);
        return seterr(err, errlen, "%s: tensor %s: dims %s, metadata wants [%zu]", m->dir, name, got, d0);
    }
    size_t es = t->type == GGML_F32 ? 4 : t->type == GGML_F16 || t->type == GGML_BF16 ? 2 : 1;
    if ((uintptr_t)t->data % es) /* general.alignment may be 1 or 2; the kernels read in place */
        return seterr(err, errlen, "%s: tensor %s: data not aligned to its %zu-byte elements (general.alignment)",
                      m->dir, name, es);
    switch (t->type) {
    case GGML_F32: w->dtype = ST_F32; w->data = t->data; return 0;
    case GGML_F16: w->dtype = ST_F16; w->data = t->data; return 0;
    case GGML_BF16: w->dtype = ST_BF16; w->data = t->data; return 0;
    default: break;
    }
    const wfmt *f = gguf_wfmt(t->type);
    const char *tn = gguf_type_name(t->type);
    if (!f)
        return seterr(err, errlen, "%s: tensor %s: type %s not supported (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K)",
                      m->dir, name, tn ? tn : "?");
    if (!quant) return seterr(err, errlen, "%s: tensor %s: type %s, a norm must be F32, F16 or BF16", m->dir, name, tn);
    qweight *q = &x->qw[t - x->g->t];
    *q = (qweight){.q = WQ_FMT, .data = t->data, .in = (size_t)t->ne[0], .fmt = f, .aux = &t->type};
    w->dtype = WQ_DTYPE(WQ_FMT);
    w->data = q;
    return 0;
}

static int bind_layer(model *m, int l, char *err, size_t errlen) {
    model_slot t[MODEL_SLOTS];
    model_layer_slots(m, l, t);
    for (size_t i = 0; i < MODEL_SLOTS; i++) {
        char name[96];
        snprintf(name, sizeof name, "blk.%d.%s.weight", l, t[i].gguf);
        if (bind(m, name, t[i].d0, t[i].d1, t[i].d1 != 0, t[i].w, err, errlen) < 0) return -1;
    }
    return 0;
}

static void gclose(model *m) {
    gctx *x = m->fmt_ctx;
    if (!x) return;
    gguf_close(x->g);
    free(x->qw);
    free(x);
    m->fmt_ctx = NULL;
}

static int gopen(model *m, const char *path, char *err, size_t errlen) {
    gctx *x = calloc(1, sizeof *x);
    if (!x) return seterr(err, errlen, "%s: out of memory", path);
    m->fmt_ctx = x;
    if (!(x->g = gguf_open(path, err, errlen))) return -1;
    if (!(x->qw = calloc(x->g->n_tensors ? x->g->n_tensors : 1, sizeof *x->qw)))
        return seterr(err, errlen, "%s: out of memory", path);
    if (read_config(x->g, path, &m->cfg, err, errlen) < 0) return -1;
    const qwen_config *c = &m->cfg;
    if (!(m->layers = calloc((size_t)c->n_layers, sizeof *m->layers))) return seterr(err, errlen, "%s: out of memory", path);
    size_t V = (size_t)c->vocab_size, dim = (size_t)c->dim;
    if (bind(m, "token_embd.weight", V, dim, 1, &m->embed, err, errlen) < 0 ||
        bind(m, "output_norm.weight", dim, 0, 0, &m->final_norm, err, errlen) < 0)
        return -1;
    for (int l = 0; l < c->n_layers; l++)
        if (bind_layer(m, l, err, errlen) < 0) return -1;
    if (c->tie_embeddings) m->lm_head = m->embed;
    else if (bind(m, "output.weight", V, dim, 1, &m->lm_head, err, errlen) < 0) return -1;
    crypto_generichash(m->fingerprint, sizeof m->fingerprint, x->g->base, x->g->info_end, NULL, 0);
    return 0;
}

const model_format model_format_gguf = {"gguf", detect, gopen, gclose};
