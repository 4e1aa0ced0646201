/* backend: where the decoder runs. The interface speaks in layers, not matmuls, so that
 * an NPU that runs one compiled graph per decoder layer (AX650) or one operator at a time
 * (Ascend) fits behind it: embedding lookup stays on the host (model_embed), each
 * backend runs a layer over n new positions (prefill) or one (decode), and the final
 * norm + lm_head. The CPU backend (cpu.c) is the reference; all compute is f32 whatever
 * the weight dtype. */
#ifndef BACKEND_H
#define BACKEND_H

#include <stddef.h>

#include "kv.h"
#include "model.h"

/* The K/V a decode step's attention reads (the CPU backend; the cache itself is f32). */
enum { KV_READ_AUTO, KV_READ_F32, KV_READ_F16 };

typedef struct {
    int n_threads;     /* 0 = one per core */
    size_t max_batch;  /* most positions one prefill call takes (scratch is sized for it) */
    int kv_type;       /* KV_READ_AUTO (0): f16 for a decode (max_batch 1) of our quantized
                        * schemes and bf16a (--quant bf16a, q8, q4, q4g128, 8da4w, 8da8w),
                        * else f32 */
} backend_opts;

typedef struct backend backend;
struct backend {
    const char *name;
    /* Prepare to run m (scratch allocated here, once). NULL on error. */
    void *(*open)(const model *m, const backend_opts *o, char *err, size_t errlen);
    void (*close)(void *ctx);
    /* Decoder layer l over x (n, dim), in place, for positions kv->n .. kv->n+n-1: writes
     * their K/V rows into kv (which must have room) and attends causally over rows
     * [0, kv->n + i]. Does not advance kv->n (the caller does, after the last layer).
     * n <= max_batch. */
    int (*prefill_layer)(void *ctx, int l, float *x, size_t n, kv_cache *kv, char *err, size_t errlen);
    /* The same for one position (x is (dim)); may be a separate graph on an NPU. */
    int (*decode_layer)(void *ctx, int l, float *x, kv_cache *kv, char *err, size_t errlen);
    /* logits (n, vocab) = lm_head(final_norm(x (n, dim))). */
    int (*logits)(void *ctx, const float *x, size_t n, float *logits, char *err, size_t errlen);
    /* The max_batch ctx was opened with: forward() splits longer runs into pieces of it. */
    size_t (*max_batch)(const void *ctx);
};

extern const backend backend_cpu;

/* The backend called name ("cpu", ...), or NULL; names lists them for messages. */
const backend *backend_find(const char *name);
const char *backend_names(void);

/* Run every layer over n new positions x (n, dim) (n == 1 uses decode_layer), advance
 * kv->n by n, and if logits is not NULL write the logits of the last position (all_logits
 * = 0) or of every position (all_logits = 1). Grows kv if needed. */
int forward(const backend *b, void *ctx, const model *m, float *x, size_t n, kv_cache *kv,
            float *logits, int all_logits, char *err, size_t errlen);

#endif
