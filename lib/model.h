/* model: a Qwen3 checkpoint as the forward pass sees it: the config (config.json, every
 * size 0.6B-32B; head_dim is read, never derived from hidden/heads), and each weight as a
 * typed pointer into the mapped safetensors (F32, F16 or BF16), shape-checked against
 * the config. Tied checkpoints use the embedding as lm_head. With a quantization scheme
 * (model_open_q, quant.h) the linear weights (and for 8da4w the embedding) point into a
 * cache file of quantized weights instead, mapped read-only like the checkpoint. */
#ifndef MODEL_H
#define MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "st.h"

typedef struct {
    int dim;          /* hidden_size */
    int n_layers;     /* num_hidden_layers */
    int n_heads;      /* num_attention_heads */
    int n_kv_heads;   /* num_key_value_heads */
    int head_dim;     /* head_dim (128 in every Qwen3) */
    int hidden_dim;   /* intermediate_size */
    int vocab_size;
    int max_pos;      /* max_position_embeddings */
    float rms_eps;
    double rope_theta;
    int tie_embeddings;
    int bos_id, eos_id; /* -1 if absent */
    /* rope_scaling: none, or YaRN */
    int yarn;
    double yarn_factor;
    int yarn_orig_max_pos;
    double yarn_beta_fast, yarn_beta_slow; /* 32, 1 unless given */
    double yarn_attn_factor;               /* 0.1 ln(factor) + 1 unless given */
    int yarn_truncate;                     /* 1 unless "truncate": false */
} qwen_config;

/* A weight: dtype F32/F16/BF16 elements, row-major, at data; or quantized by quant.c into
 * the cache file (quant.h gives the exact layouts and math), in which case dtype is
 * WQ_DTYPE(type) (past st.h's codes, so code that knows only F32/F16/BF16 refuses it)
 * and data points at a qweight that holds the arrays:
 *   WQ_Q8    int8 [rows, in], f32 scale per row, x int16 per 32 (w8a16; in a multiple of 32)
 *   WQ_Q4    int4 [rows, in] in blocks of 32, f16 scale per `group` (32 or 128), x int8 per 32
 *   WQ_8DA4W int4 [rows, in] in blocks of 32, f32 scale per 32 (torchao), x int8 per token
 *   WQ_E8    int8 [rows, in], f32 scale per row (8da4w's and 8da8w's embedding; never a matmul)
 *   WQ_8DA8W int8 [rows, in], f32 scale per row (torchao), x int8 per token as 8DA4W's
 * (Two fields only, so that {dtype, data} initializers elsewhere stay complete.) */
typedef enum { WQ_NONE, WQ_Q8, WQ_Q4, WQ_8DA4W, WQ_E8, WQ_FMT, WQ_8DA8W, WQ_N } wq_type;
#define WQ_DTYPE(t) ((st_dtype)(ST_OTHER + (t)))

typedef struct wfmt wfmt;

typedef struct {
    wq_type q;
    const void *data;   /* the quantized values */
    const void *scales; /* f32 [rows] (Q8, E8, 8DA8W), f16 [rows, in/group] (Q4), f32 [rows, in/32] (8DA4W) */
    size_t group;       /* elements per scale (Q4: 32 or 128; 8DA4W: 32) */
    size_t in;          /* elements per row */
    const wfmt *fmt;    /* WQ_FMT: the format's math (below); aux is its per-weight descriptor */
    const void *aux;
} qweight;

/* WQ_FMT: a weight as another runtime's checkpoint stores it (MLX affine, GGUF blocks,
 * msModelSlim W8A8..., ...). Such a format defines its own arithmetic, so it brings it,
 * as plain C, exact to its definition; the CPU backend calls it through kern_matmul_w.
 * in = q->in, out = the weight's rows. */
struct wfmt {
    const char *name;
    /* Bytes of scratch prep needs for n rows of x (0 if it needs none). */
    size_t (*scratch)(const qweight *w, size_t n);
    /* Once per matmul, before the output rows are split over threads (e.g. quantize x
     * per token into scratch). May be NULL. */
    void (*prep)(const qweight *w, const float *x, size_t n, void *scratch);
    /* y[n,out] = x[n,in] @ W^T as the format defines it, output columns [o0, o1) only;
     * scratch as prep left it. Called from several threads at once on disjoint columns. */
    void (*matmul)(float *y, const float *x, const void *scratch, const qweight *w, size_t n, size_t out,
                   size_t o0, size_t o1);
    /* Row r dequantized to f32 out[in] (embedding lookup, weight_get, tests). */
    void (*row)(const qweight *w, size_t r, float *out);
};

typedef struct {
    st_dtype dtype;   /* ST_F32, ST_F16, ST_BF16, or WQ_DTYPE(t) */
    const void *data; /* elements, or the qweight */
} weight;

/* The quantization type of w (WQ_NONE for F32/F16/BF16). */
static inline wq_type weight_q(weight w) {
    return w.dtype > ST_OTHER && w.dtype < WQ_DTYPE(WQ_N) ? (wq_type)(w.dtype - ST_OTHER) : WQ_NONE;
}

typedef struct {
    weight attn_norm;   /* (dim) */
    weight wq;          /* (n_heads*head_dim, dim) */
    weight wk;          /* (n_kv_heads*head_dim, dim) */
    weight wv;          /* (n_kv_heads*head_dim, dim) */
    weight wo;          /* (dim, n_heads*head_dim) */
    weight q_norm;      /* (head_dim) */
    weight k_norm;      /* (head_dim) */
    weight ffn_norm;    /* (dim) post_attention_layernorm */
    /* (dim) or absent (data NULL): the bias msModelSlim's anti-outlier pass adds to the
     * norms (y = rmsnorm(x) * w + b) */
    weight attn_norm_bias, ffn_norm_bias;
    weight w_gate;      /* (hidden_dim, dim) */
    weight w_up;        /* (hidden_dim, dim) */
    weight w_down;      /* (dim, hidden_dim) */
} layer_weights;

typedef struct {
    qwen_config cfg;
    weight embed;       /* (vocab_size, dim) */
    layer_weights *layers; /* n_layers */
    weight final_norm;  /* (dim) */
    weight lm_head;     /* (vocab_size, dim); = embed when tied */
    uint8_t fingerprint[32]; /* BLAKE2b of config.json and the safetensors headers; when
                              * quantized, BLAKE2b of that, the scheme and its version */
    st_file *st;
    char *dir;
    int scheme;         /* quant_scheme (quant.h); 0 = the checkpoint as it is */
    void *qmap;         /* the mapped cache file of quantized weights, or NULL */
    size_t qmap_size;
    qweight *qw;        /* the quantized weights' descriptors (weights point at them) */
    void **owned;       /* buffers a format had to make (model_own), freed by model_close */
    size_t n_owned;
    const struct model_format *format; /* NULL: a Hugging Face safetensors directory */
    void *fmt_ctx;      /* the format's own state (freed by format->close) */
} model;

/* A checkpoint layout other than a Hugging Face safetensors directory (GGUF, MLX,
 * msModelSlim, torchao export, an ax-llm directory). model_open asks each in turn
 * (model.c's table) whether path is one of its, and lets the first that says yes fill m:
 * cfg, every weight (F32/F16/BF16, or WQ_FMT with the format's own math), fingerprint. */
typedef struct model_format {
    const char *name;
    /* 1 if path is this format (cheap: a file name, a magic, a config key), else 0 */
    int (*detect)(const char *path);
    /* fill m (m->dir is set); 0, or -1 with err naming the file or tensor */
    int (*open)(model *m, const char *path, char *err, size_t errlen);
    void (*close)(model *m); /* frees m->fmt_ctx; may be NULL */
} model_format;

/* Helpers for formats that are safetensors directories underneath (MLX, msModelSlim,
 * torchao): read dir/config.json into m->cfg, open the safetensors, allocate m->layers,
 * and set m->fingerprint from the config and headers, as model_open does. */
int model_open_hf_base(model *m, const char *dir, char *err, size_t errlen);
/* Point w at a F32/F16/BF16 tensor name shaped [d0] (d1 == 0) or [d0, d1] (model_open's
 * own binder: missing, dtype and shape are errors naming the tensor). */
int model_bind(const model *m, const char *name, size_t d0, size_t d1, weight *w, char *err, size_t errlen);
/* One weight of decoder layer l as the checkpoint formats name it: hf without the
 * "model.layers.N." prefix and the ".weight" suffix, gguf without "blk.N." and ".weight";
 * its shape from the config ([d0] if d1 == 0); where it goes. */
typedef struct {
    const char *hf, *gguf;
    size_t d0, d1;
    weight *w;
} model_slot;
enum { MODEL_LINEARS = 7, MODEL_SLOTS = 11 };
/* The weights of layer l in a checkpoint's order, the one list every format binds by:
 * 4 norms (d1 == 0: attn, q, k, ffn) and MODEL_LINEARS linear weights (q, k, v, o, gate,
 * up, down). */
void model_layer_slots(const model *m, int l, model_slot s[MODEL_SLOTS]);

/* model_bind, but a tensor at an offset its dtype does not divide (MLX's and torchao's
 * writers pack tensors back to back) is copied once into memory m owns, which the
 * kernels' typed reads need; a Hugging Face checkpoint keeps model_bind's refusal. */
int model_bind_copy(model *m, const char *name, size_t d0, size_t d1, weight *w, char *err, size_t errlen);
/* bytes of memory that lives as long as m (freed by model_close), or NULL. */
void *model_own(model *m, size_t bytes);

/* The format names model_open knows, for --help ("safetensors, gguf, ..."). */
const char *model_formats(void);

/* Parse dir/config.json. Missing or absurd fields are errors naming the field. */
int cfg_load(const char *dir, qwen_config *c, char *err, size_t errlen);

/* Open the model in dir: config, weights (mapped, checked), fingerprint. NULL on error. */
model *model_open(const char *dir, char *err, size_t errlen);
/* The same, with the weights in quantization scheme `scheme` (a quant.h name: "none",
 * "bf16", "bf16a", "q8", "q4", "q4g128", "8da4w", "8da8w"). The quantized weights come from a cache file
 * (cache_dir()/quant-<BLAKE2b of model fingerprint, scheme, format version>.bin), built
 * here once if missing (temp file, fsync, rename) and mapped read-only, so every process
 * shares one copy. progress (may be NULL) is called while building with the elements
 * done of total. A scheme that changes any weight changes m->fingerprint (sessions of
 * one scheme are not another's); "bf16" of a BF16 checkpoint changes nothing. NULL on
 * error (unknown scheme, a non-finite weight, I/O). */
model *model_open_q(const char *dir, const char *scheme,
                    void (*progress)(void *pctx, size_t done, size_t total), void *pctx, char *err,
                    size_t errlen);
void model_close(model *m);

/* out[n, dim] = rows ids[0..n) of the embedding, as f32. -1 if an id is out of range. The
 * embedding's pages are then dropped from this process if it is read from a file and is
 * not also the lm_head (the kernel maps up to 2 MB around each row read: 512 scattered ids
 * would keep 400 MB of a Qwen3-4B embedding resident). */
int model_embed(const model *m, const int32_t *ids, size_t n, float *out, char *err, size_t errlen);

/* Drop the whole pages inside [p, p+n) from this process if they belong to one of m's
 * read-only file mappings (the cache file, the safetensors); otherwise nothing. They stay
 * in the page cache: a later read maps them again. */
void model_drop_pages(const model *m, const void *p, size_t n);

/* Element i of a weight as f32, dequantized if quantized (slow; for tests and one-off use). */
float weight_get(weight w, size_t i);

#endif
