/* model: config.json and the weights of a Qwen3 checkpoint, bound by their HF names.
 *
 * The config is read as HF's Qwen3Config reads it (head_dim defaults to hidden/heads,
 * tie_word_embeddings to false, eos may be a list), but the sizes the forward pass needs
 * are required and range-checked: a typo in config.json should fail here with the field's
 * name, not as a shape error or garbage logits later. Weights are pointers into st's
 * read-only mapping; each is checked for dtype (F32/F16/BF16), exact shape and alignment
 * so that kernels may read it through a typed pointer. */
#include "model.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mlx.h"
#include "torchao.h"
#include "msms.h"
#include "gguf.h"
#include "ax650.h"
#include "quant.h"
#include "util.h"

/* Bounds well past any Qwen3 (dim 5120, 64 layers, vocab 151936), low enough that every
 * product of two of them fits in an int64 and a row count fits an int32 id. */
enum { MAX_DIM = 1 << 16, MAX_LAYERS = 1024, MAX_HEADS = 1024, MAX_VOCAB = 1 << 24, MAX_POS = 1 << 24 };

static const cJSON *field(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }

/* An integer field in [lo, hi]. Missing is an error unless def != NULL (then *out = *def). */
static int get_int(const cJSON *o, const char *k, long lo, long hi, const int *def, int *out, char *err,
                   size_t errlen) {
    const cJSON *v = field(o, k);
    if (!v || cJSON_IsNull(v)) {
        if (!def) return seterr(err, errlen, "config.json: %s: missing", k);
        *out = *def;
        return 0;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
        return seterr(err, errlen, "config.json: %s: not an integer", k);
    double d = v->valuedouble;
    if (d < (double)lo || d > (double)hi)
        return seterr(err, errlen, "config.json: %s: %.17g not in [%ld, %ld]", k, d, lo, hi);
    *out = (int)d;
    return 0;
}

/* A number field in (lo, hi], or def when missing and def is not NAN. */
static int get_num(const cJSON *o, const char *where, const char *k, double lo, double hi, double def, double *out,
                   char *err, size_t errlen) {
    const cJSON *v = field(o, k);
    if (!v || cJSON_IsNull(v)) {
        if (isnan(def)) return seterr(err, errlen, "config.json: %s%s: missing", where, k);
        *out = def;
        return 0;
    }
    if (!cJSON_IsNumber(v)) return seterr(err, errlen, "config.json: %s%s: not a number", where, k);
    if (!(v->valuedouble > lo && v->valuedouble <= hi))
        return seterr(err, errlen, "config.json: %s%s: %.17g not in (%g, %g]", where, k, v->valuedouble, lo, hi);
    *out = v->valuedouble;
    return 0;
}

/* A token id: a number, or a list whose first entry is taken (generation configs list
 * several eos ids; the first is the one the chat template ends turns with). */
static int get_token(const cJSON *o, const char *k, int vocab, int *out, char *err, size_t errlen) {
    const cJSON *v = field(o, k);
    if (cJSON_IsArray(v)) v = cJSON_GetArrayItem(v, 0);
    *out = -1;
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < 0 || v->valuedouble >= vocab)
        return seterr(err, errlen, "config.json: %s: not a token id in [0, %d)", k, vocab);
    *out = (int)v->valuedouble;
    return 0;
}

/* get_mscale of HF's YaRN: 0.1 m ln(s) + 1 for s > 1. */
static double mscale(double s, double m) { return s <= 1 ? 1.0 : 0.1 * m * log(s) + 1.0; }

/* rope_scaling (or, from transformers v5, rope_parameters): none, "default", or YaRN. */
static int get_rope(const cJSON *root, qwen_config *c, char *err, size_t errlen) {
    const cJSON *rs = field(root, "rope_scaling");
    const char *where = "rope_scaling.";
    if (!rs || cJSON_IsNull(rs)) rs = field(root, "rope_parameters"), where = "rope_parameters.";
    c->yarn = 0;
    if (!rs || cJSON_IsNull(rs)) return 0;
    if (!cJSON_IsObject(rs)) return seterr(err, errlen, "config.json: %.*s: not an object or null", (int)strlen(where) - 1, where);
    const cJSON *t = field(rs, "rope_type");
    if (!t) t = field(rs, "type");
    if (!cJSON_IsString(t)) return seterr(err, errlen, "config.json: %srope_type: missing", where);
    if (!strcmp(t->valuestring, "default")) return 0;
    if (strcmp(t->valuestring, "yarn"))
        return seterr(err, errlen, "config.json: %srope_type: \"%.32s\" not supported (only yarn)", where, t->valuestring);
    /* factor as given: transformers before PR #40320 replaced it by max_pos/orig (issue
     * #38224); vLLM, llama.cpp and mlx-lm use it as written, and so do we */
    c->yarn = 1;
    if (get_num(rs, where, "factor", 0, 1024, NAN, &c->yarn_factor, err, errlen) < 0) return -1;
    if (c->yarn_factor < 1) return seterr(err, errlen, "config.json: %sfactor: %g is below 1", where, c->yarn_factor);
    if (get_int(rs, "original_max_position_embeddings", 1, MAX_POS, &c->max_pos, &c->yarn_orig_max_pos, err,
                errlen) < 0)
        return seterr(err, errlen, "config.json: %soriginal_max_position_embeddings: not an integer in [1, %d]",
                      where, MAX_POS);
    if (get_num(rs, where, "beta_fast", 0, 1e6, 32, &c->yarn_beta_fast, err, errlen) < 0 ||
        get_num(rs, where, "beta_slow", 0, 1e6, 1, &c->yarn_beta_slow, err, errlen) < 0)
        return -1;
    double m = 1, mad = 0;
    if (get_num(rs, where, "mscale", 0, 1e6, 1, &m, err, errlen) < 0 ||
        get_num(rs, where, "mscale_all_dim", 0, 1e6, 0, &mad, err, errlen) < 0)
        return -1;
    double def = mad ? mscale(c->yarn_factor, m) / mscale(c->yarn_factor, mad) : mscale(c->yarn_factor, 1);
    if (get_num(rs, where, "attention_factor", 0, 1e6, def, &c->yarn_attn_factor, err, errlen) < 0) return -1;
    const cJSON *tr = field(rs, "truncate");
    if (tr && !cJSON_IsBool(tr)) return seterr(err, errlen, "config.json: %struncate: not true or false", where);
    c->yarn_truncate = !cJSON_IsFalse(tr);
    return 0;
}

/* The architecture switches we do not implement must be off. */
static int check_unsupported(const cJSON *root, char *err, size_t errlen) {
    const cJSON *v = field(root, "model_type");
    if (!cJSON_IsString(v)) return seterr(err, errlen, "config.json: model_type: missing");
    if (strcmp(v->valuestring, "qwen3"))
        return seterr(err, errlen, "config.json: model_type: \"%.32s\", only qwen3 is supported", v->valuestring);
    if ((v = field(root, "hidden_act")) && !(cJSON_IsString(v) && !strcmp(v->valuestring, "silu")))
        return seterr(err, errlen, "config.json: hidden_act: only silu is supported");
    if (cJSON_IsTrue(field(root, "attention_bias")))
        return seterr(err, errlen, "config.json: attention_bias: true is not supported");
    if (cJSON_IsTrue(field(root, "use_sliding_window")))
        return seterr(err, errlen, "config.json: use_sliding_window: true is not supported");
    return 0;
}

static int cfg_parse(const char *json, size_t len, qwen_config *c, char *err, size_t errlen) {
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return seterr(err, errlen, "config.json: not a JSON object");
    }
    int rc = -1;
    memset(c, 0, sizeof *c);
    if (check_unsupported(root, err, errlen) < 0 ||
        get_int(root, "hidden_size", 1, MAX_DIM, NULL, &c->dim, err, errlen) < 0 ||
        get_int(root, "num_hidden_layers", 1, MAX_LAYERS, NULL, &c->n_layers, err, errlen) < 0 ||
        get_int(root, "num_attention_heads", 1, MAX_HEADS, NULL, &c->n_heads, err, errlen) < 0 ||
        get_int(root, "num_key_value_heads", 1, c->n_heads, NULL, &c->n_kv_heads, err, errlen) < 0 ||
        get_int(root, "intermediate_size", 1, 1 << 20, NULL, &c->hidden_dim, err, errlen) < 0 ||
        get_int(root, "vocab_size", 1, MAX_VOCAB, NULL, &c->vocab_size, err, errlen) < 0 ||
        get_int(root, "max_position_embeddings", 1, MAX_POS, NULL, &c->max_pos, err, errlen) < 0)
        goto done;
    if (c->n_heads % c->n_kv_heads) {
        seterr(err, errlen, "config.json: num_attention_heads: %d is not a multiple of num_key_value_heads (%d)",
               c->n_heads, c->n_kv_heads);
        goto done;
    }
    /* HF: head_dim = getattr(config, "head_dim", hidden_size // num_attention_heads) */
    int hd = c->dim / c->n_heads;
    if (get_int(root, "head_dim", 1, 1024, &hd, &c->head_dim, err, errlen) < 0) goto done;
    if (c->head_dim % 2) { /* rotate_half pairs element i with i + head_dim/2 */
        seterr(err, errlen, "config.json: head_dim: %d is odd (RoPE needs pairs)", c->head_dim);
        goto done;
    }
    double eps, theta;
    if (get_num(root, "", "rms_norm_eps", 0, 1, NAN, &eps, err, errlen) < 0) goto done;
    c->rms_eps = (float)eps;
    /* transformers v5 writes rope_theta inside rope_parameters */
    const cJSON *rp = field(root, "rope_parameters");
    int in_rp = !field(root, "rope_theta") && cJSON_IsObject(rp);
    if (get_num(in_rp ? rp : root, in_rp ? "rope_parameters." : "", "rope_theta", 0, 1e12, NAN, &theta, err,
                errlen) < 0)
        goto done;
    c->rope_theta = theta;
    const cJSON *tie = field(root, "tie_word_embeddings");
    if (tie && !cJSON_IsBool(tie)) {
        seterr(err, errlen, "config.json: tie_word_embeddings: not true or false");
        goto done;
    }
    c->tie_embeddings = cJSON_IsTrue(tie); /* Qwen3Config's default is false */
    if (get_token(root, "bos_token_id", c->vocab_size, &c->bos_id, err, errlen) < 0 ||
        get_token(root, "eos_token_id", c->vocab_size, &c->eos_id, err, errlen) < 0 ||
        get_rope(root, c, err, errlen) < 0)
        goto done;
    rc = 0;
done:
    cJSON_Delete(root);
    return rc;
}

/* dir/config.json, malloc'd (NUL after the end). */
static char *read_config(const char *dir, size_t *len, char *err, size_t errlen) {
    size_t pl = strlen(dir) + 16;
    char *path = malloc(pl);
    if (!path) return seterr(err, errlen, "config.json: out of memory"), NULL;
    snprintf(path, pl, "%s/config.json", dir);
    FILE *f = fopen(path, "rb");
    if (!f) {
        seterr(err, errlen, "%s: no config.json", dir);
        free(path);
        return NULL;
    }
    char *json = NULL;
    if (read_all(f, &json, len, err, errlen) < 0) json = NULL;
    fclose(f);
    free(path);
    return json;
}

int cfg_load(const char *dir, qwen_config *c, char *err, size_t errlen) {
    size_t len;
    char *json = read_config(dir, &len, err, errlen);
    if (!json) return -1;
    int rc = cfg_parse(json, len, c, err, errlen);
    free(json);
    return rc;
}

/* Point w at tensor name, which must be F32/F16/BF16, shaped [d0] (d1 == 0) or [d0, d1]. */
/* t (named name) checked as a plain weight shaped [d0] or [d0, d1]; copy 1 allows an
 * unaligned offset (the caller copies it). */
static int check_plain(const st_tensor *t, const char *name, size_t d0, size_t d1, int copy, char *err, size_t errlen) {
    if (!t) return seterr(err, errlen, "tensor %s: missing", name);
    if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16)
        return seterr(err, errlen, "tensor %s: dtype %s, want F32, F16 or BF16", name, st_dtype_name(t->dtype));
    int nd = d1 ? 2 : 1;
    if (t->ndim != nd || t->shape[0] != d0 || (d1 && t->shape[1] != d1)) {
        char got[96] = "[";
        for (int i = 0; i < t->ndim; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%zu", i ? ", " : "", t->shape[i]);
        strncat(got, "]", sizeof got - strlen(got) - 1);
        if (d1) return seterr(err, errlen, "tensor %s: shape %s, config wants [%zu, %zu]", name, got, d0, d1);
        return seterr(err, errlen, "tensor %s: shape %s, config wants [%zu]", name, got, d0);
    }
    /* the mapping is page-aligned, so this is the offset within the file */
    size_t es = st_dtype_size(t->dtype);
    if (!copy && (uintptr_t)t->data % es)
        return seterr(err, errlen, "tensor %s: data not aligned to its %zu-byte elements", name, es);
    return 0;
}

int model_bind(const model *m, const char *name, size_t d0, size_t d1, weight *w, char *err, size_t errlen) {
    const st_tensor *t = st_find(m->st, name);
    if (check_plain(t, name, d0, d1, 0, err, errlen) < 0) return -1;
    w->dtype = t->dtype;
    w->data = t->data;
    return 0;
}

void *model_own(model *m, size_t bytes) {
    void **o = realloc(m->owned, (m->n_owned + 1) * sizeof *o), *p;
    if (!o) return NULL;
    m->owned = o;
    if (!(p = malloc(bytes ? bytes : 1))) return NULL;
    return o[m->n_owned++] = p;
}

int model_bind_copy(model *m, const char *name, size_t d0, size_t d1, weight *w, char *err, size_t errlen) {
    const st_tensor *t = st_find(m->st, name);
    if (check_plain(t, name, d0, d1, 1, err, errlen) < 0) return -1;
    w->dtype = t->dtype;
    w->data = t->data;
    if ((uintptr_t)t->data % st_dtype_size(t->dtype) == 0) return 0;
    void *p = model_own(m, t->nbytes); /* the one copy: kernels read the elements typed */
    if (!p) return seterr(err, errlen, "tensor %s: out of memory", name);
    memcpy(p, t->data, t->nbytes);
    w->data = p;
    return 0;
}

void model_layer_slots(const model *m, int l, model_slot s[MODEL_SLOTS]) {
    const qwen_config *c = &m->cfg;
    size_t dim = (size_t)c->dim, hd = (size_t)c->head_dim, q = (size_t)c->n_heads * hd,
           kv = (size_t)c->n_kv_heads * hd, ff = (size_t)c->hidden_dim;
    layer_weights *w = &m->layers[l];
    const model_slot t[MODEL_SLOTS] = {
        {"input_layernorm", "attn_norm", dim, 0, &w->attn_norm},
        {"self_attn.q_proj", "attn_q", q, dim, &w->wq},
        {"self_attn.k_proj", "attn_k", kv, dim, &w->wk},
        {"self_attn.v_proj", "attn_v", kv, dim, &w->wv},
        {"self_attn.o_proj", "attn_output", dim, q, &w->wo},
        {"self_attn.q_norm", "attn_q_norm", hd, 0, &w->q_norm},
        {"self_attn.k_norm", "attn_k_norm", hd, 0, &w->k_norm},
        {"post_attention_layernorm", "ffn_norm", dim, 0, &w->ffn_norm},
        {"mlp.gate_proj", "ffn_gate", ff, dim, &w->w_gate},
        {"mlp.up_proj", "ffn_up", ff, dim, &w->w_up},
        {"mlp.down_proj", "ffn_down", dim, ff, &w->w_down},
    };
    memcpy(s, t, sizeof t);
}

static int bind_layer(model *m, int l, char *err, size_t errlen) {
    model_slot t[MODEL_SLOTS];
    model_layer_slots(m, l, t);
    for (size_t i = 0; i < MODEL_SLOTS; i++) {
        char name[128];
        snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, t[i].hf);
        if (model_bind(m, name, t[i].d0, t[i].d1, t[i].w, err, errlen) < 0) return -1;
    }
    return 0;
}

int model_open_hf_base(model *m, const char *dir, char *err, size_t errlen) {
    size_t len = 0;
    char *json = read_config(dir, &len, err, errlen);
    if (!json || cfg_parse(json, len, &m->cfg, err, errlen) < 0 || !(m->st = st_open(dir, err, errlen))) {
        free(json);
        return -1;
    }
    if (!(m->layers = calloc((size_t)m->cfg.n_layers, sizeof *m->layers))) {
        free(json);
        return seterr(err, errlen, "%s: out of memory", dir);
    }
    /* identity = the config's exact bytes and every header: any change to either is
     * another model as far as saved sessions are concerned */
    uint8_t hh[32];
    st_header_hash(m->st, hh);
    crypto_generichash_state hs;
    crypto_generichash_init(&hs, NULL, 0, sizeof m->fingerprint);
    crypto_generichash_update(&hs, (const unsigned char *)json, len);
    crypto_generichash_update(&hs, hh, sizeof hh);
    crypto_generichash_final(&hs, m->fingerprint, sizeof m->fingerprint);
    free(json);
    return 0;
}

/* A Hugging Face directory: config.json and F32/F16/BF16 safetensors. */
static int open_hf(model *m, const char *dir, char *err, size_t errlen) {
    if (model_open_hf_base(m, dir, err, errlen) < 0) return -1;
    const qwen_config *c = &m->cfg;
    size_t V = (size_t)c->vocab_size, dim = (size_t)c->dim;
    if (model_bind(m, "model.embed_tokens.weight", V, dim, &m->embed, err, errlen) < 0 ||
        model_bind(m, "model.norm.weight", dim, 0, &m->final_norm, err, errlen) < 0)
        return -1;
    for (int l = 0; l < c->n_layers; l++)
        if (bind_layer(m, l, err, errlen) < 0) return -1;
    /* tied: any lm_head.weight in the file is ignored, as mlx-lm and ExecuTorch do */
    if (c->tie_embeddings) m->lm_head = m->embed;
    else if (model_bind(m, "lm_head.weight", V, dim, &m->lm_head, err, errlen) < 0) return -1;
    return 0;
}

/* The layouts model_open knows besides a Hugging Face directory, asked in this order. */
static const model_format *const formats[] = {
    &model_format_mlx,
    &model_format_torchao,
    &msms_format,
    &model_format_gguf,
    &fmt_axllm, /* ax650.h */
    NULL,
};

const char *model_formats(void) {
    static char names[256];
    if (!names[0]) {
        strcpy(names, "safetensors (Hugging Face)");
        for (size_t i = 0; formats[i]; i++)
            snprintf(names + strlen(names), sizeof names - strlen(names), ", %s", formats[i]->name);
    }
    return names;
}

model *model_open(const char *dir, char *err, size_t errlen) {
    model *m = calloc(1, sizeof *m);
    if (!m || !(m->dir = strdup(dir))) {
        seterr(err, errlen, "%s: out of memory", dir);
        model_close(m);
        return NULL;
    }
    for (size_t i = 0; formats[i] && !m->format; i++)
        if (formats[i]->detect(dir)) m->format = formats[i];
    if ((m->format ? m->format->open(m, dir, err, errlen) : open_hf(m, dir, err, errlen)) < 0) {
        model_close(m);
        return NULL;
    }
    return m;
}

model *model_open_q(const char *dir, const char *scheme, void (*progress)(void *, size_t, size_t), void *pctx,
                    char *err, size_t errlen) {
    int s = quant_scheme_find(scheme ? scheme : "none");
    if (s < 0) return seterr(err, errlen, "quantization '%s': not one of %s", scheme, quant_names()), NULL;
    model *m = model_open(dir, err, errlen);
    if (m && quant_apply(m, s, progress, pctx, err, errlen) < 0) {
        model_close(m);
        return NULL;
    }
    return m;
}

void model_close(model *m) {
    if (!m) return;
    if (m->format && m->format->close) m->format->close(m);
    if (m->qmap) {
        mapped f = {m->qmap, m->qmap_size};
        unmap_file(&f);
    }
    free(m->qw);
    for (size_t i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m->owned);
    st_close(m->st);
    free(m->layers);
    free(m->dir);
    free(m);
}

static float bf16_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* IEEE half to single, exact: every half is a float. */
static float f16_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, mant = h & 0x3ff, u;
    if (e == 0x1f) u = sign | 0x7f800000u | mant << 13; /* inf, nan (payload kept) */
    else if (e) u = sign | (e + 112) << 23 | mant << 13;
    else if (!mant) u = sign;
    else { /* subnormal: normalise; the value is mant * 2^-24 */
        e = 113;
        while (!(mant & 0x400)) mant <<= 1, e--;
        u = sign | e << 23 | (mant & 0x3ff) << 13;
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float weight_get(weight w, size_t i) {
    const qweight *q = w.data;
    size_t r = 0, k = 0;
    if (weight_q(w) != WQ_NONE) r = i / q->in, k = i % q->in;
    switch (weight_q(w)) {
    case WQ_NONE: break;
    case WQ_FMT: {
        float *row = malloc(q->in * sizeof *row), v = NAN;
        if (row) q->fmt->row(q, r, row), v = row[k];
        free(row);
        return v;
    }
    case WQ_Q8:
    case WQ_8DA8W:
    case WQ_E8: return (float)((const int8_t *)q->data)[i] * ((const float *)q->scales)[r];
    case WQ_Q4:
        return (float)quant_nib((const uint8_t *)q->data + r * q->in / 2, k) *
               f16_f32(((const uint16_t *)q->scales)[r * (q->in / q->group) + k / q->group]);
    default:
        return (float)quant_nib((const uint8_t *)q->data + r * q->in / 2, k) *
               ((const float *)q->scales)[r * (q->in / 32) + k / 32];
    }
    switch (w.dtype) {
    case ST_F32: return ((const float *)w.data)[i];
    case ST_F16: return f16_f32(((const uint16_t *)w.data)[i]);
    case ST_BF16: return bf16_f32(((const uint16_t *)w.data)[i]);
    default: return NAN;
    }
}

void model_drop_pages(const model *m, const void *p, size_t n) {
    long ps = sysconf(_SC_PAGESIZE);
    uintptr_t a = (uintptr_t)p, e = a + n, q0 = (uintptr_t)m->qmap, page = ps > 0 ? (uintptr_t)ps : 4096;
    if (!((m->qmap && a >= q0 && e <= q0 + m->qmap_size) || st_maps(m->st, p, n))) return;
    a = (a + page - 1) / page * page;
    e = e / page * page;
    if (a < e) madvise((void *)a, e - a, MADV_DONTNEED);
}

int model_embed(const model *m, const int32_t *ids, size_t n, float *out, char *err, size_t errlen) {
    size_t dim = (size_t)m->cfg.dim, vocab = (size_t)m->cfg.vocab_size;
    for (size_t t = 0; t < n; t++) {
        if (ids[t] < 0 || ids[t] >= m->cfg.vocab_size)
            return seterr(err, errlen, "token id %d out of range [0, %d)", (int)ids[t], m->cfg.vocab_size);
        float *o = out + t * dim;
        if (weight_q(m->embed) == WQ_FMT) {
            const qweight *qw = m->embed.data;
            qw->fmt->row(qw, (size_t)ids[t], o);
            continue;
        }
        if (weight_q(m->embed) == WQ_E8) { /* torchao's dequantize: q * scale in f32 */
            const qweight *qw = m->embed.data;
            const int8_t *q = (const int8_t *)qw->data + (size_t)ids[t] * dim;
            float sc = ((const float *)qw->scales)[ids[t]];
            for (size_t j = 0; j < dim; j++) o[j] = (float)q[j] * sc;
            continue;
        }
        const uint8_t *row = (const uint8_t *)m->embed.data + (size_t)ids[t] * dim * st_dtype_size(m->embed.dtype);
        if (m->embed.dtype == ST_F32) memcpy(o, row, dim * sizeof *o);
        else if (m->embed.dtype == ST_BF16)
            for (size_t j = 0; j < dim; j++) o[j] = bf16_f32(((const uint16_t *)row)[j]);
        else
            for (size_t j = 0; j < dim; j++) o[j] = f16_f32(((const uint16_t *)row)[j]);
    }
    /* not when lm_head reads the same bytes (tied, used in place; torchao's E8 as a Q8
     * lm_head): every position's logits would fault them all back */
    const void *e = m->embed.data, *h = m->lm_head.data;
    if (weight_q(m->embed) != WQ_NONE) e = weight_q(m->embed) == WQ_E8 ? ((const qweight *)e)->data : NULL;
    if (weight_q(m->lm_head) != WQ_NONE && weight_q(m->lm_head) != WQ_FMT) h = ((const qweight *)h)->data;
    if (e && e != h)
        model_drop_pages(m, e, vocab * dim * (weight_q(m->embed) == WQ_E8 ? 1 : st_dtype_size(m->embed.dtype)));
    return 0;
}
