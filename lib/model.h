/* model: a Qwen3 checkpoint as the forward pass sees it: the config (config.json, every
 * size 0.6B-32B; head_dim is read, never derived from hidden/heads), and each weight as a
 * typed pointer into the mapped safetensors (F32, F16 or BF16), shape-checked against
 * the config. Tied checkpoints use the embedding as lm_head. */
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

typedef struct {
    st_dtype dtype;  /* ST_F32, ST_F16 or ST_BF16 */
    const void *data;
} weight;

typedef struct {
    weight attn_norm;   /* (dim) */
    weight wq;          /* (n_heads*head_dim, dim) */
    weight wk;          /* (n_kv_heads*head_dim, dim) */
    weight wv;          /* (n_kv_heads*head_dim, dim) */
    weight wo;          /* (dim, n_heads*head_dim) */
    weight q_norm;      /* (head_dim) */
    weight k_norm;      /* (head_dim) */
    weight ffn_norm;    /* (dim) post_attention_layernorm */
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
    uint8_t fingerprint[32]; /* BLAKE2b of config.json and the safetensors headers */
    st_file *st;
    char *dir;
} model;

/* Parse dir/config.json. Missing or absurd fields are errors naming the field. */
int cfg_load(const char *dir, qwen_config *c, char *err, size_t errlen);

/* Open the model in dir: config, weights (mapped, checked), fingerprint. NULL on error. */
model *model_open(const char *dir, char *err, size_t errlen);
void model_close(model *m);

/* out[n, dim] = rows ids[0..n) of the embedding, as f32. -1 if an id is out of range. */
int model_embed(const model *m, const int32_t *ids, size_t n, float *out, char *err, size_t errlen);

/* Element i of a weight as f32 (slow; for tests and one-off use). */
float weight_get(weight w, size_t i);

#endif
