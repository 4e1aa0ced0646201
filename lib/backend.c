/* backend: the registry of backends (the one place that knows which exist) and forward(),
 * which drives any of them through every layer: one position through decode_layer,
 * longer runs through prefill_layer in pieces of the backend's max_batch, each piece
 * through all layers before the next (the next piece attends to its K/V rows). */
#include "backend.h"

#include <string.h>

#include "util.h"

extern const backend backend_ax650; /* ax650.c */
extern const backend backend_ascend; /* ascend.c */

static const backend *const backends[] = {&backend_cpu, &backend_ax650, &backend_ascend};

const backend *backend_find(const char *name) {
    for (size_t i = 0; i < sizeof backends / sizeof *backends; i++)
        if (!strcmp(backends[i]->name, name)) return backends[i];
    return NULL;
}

/* in step with backends[] */
const char *backend_names(void) { return "cpu, ax650, ascend"; }

/* Room for need rows: doubling, so a decode loop grows the cache O(log n) times. */
static int room(kv_cache *kv, size_t need, char *err, size_t errlen) {
    if (need <= kv->cap) return 0;
    size_t cap = kv->cap * 2 > need ? kv->cap * 2 : need;
    if (kv_reserve(kv, cap) < 0 && kv_reserve(kv, need) < 0)
        return seterr(err, errlen, "kv cache: out of memory for %zu positions", need);
    return 0;
}

static int run(const backend *b, void *ctx, const model *m, float *x, size_t n, kv_cache *kv,
               float *logits, int all_logits, char *err, size_t errlen) {
    size_t dim = (size_t)m->cfg.dim, vocab = (size_t)m->cfg.vocab_size, batch = b->max_batch(ctx);
    if (room(kv, kv->n + n, err, errlen) < 0) return -1;
    for (size_t i = 0; i < n; i += batch) {
        size_t nb = n - i < batch ? n - i : batch;
        float *xi = x + i * dim;
        for (int l = 0; l < m->cfg.n_layers; l++)
            if ((nb == 1 ? b->decode_layer(ctx, l, xi, kv, err, errlen)
                         : b->prefill_layer(ctx, l, xi, nb, kv, err, errlen)) < 0)
                return -1;
        kv->n += nb;
        if (logits && all_logits && b->logits(ctx, xi, nb, logits + i * vocab, err, errlen) < 0) return -1;
    }
    if (logits && !all_logits) return b->logits(ctx, x + (n - 1) * dim, 1, logits, err, errlen);
    return 0;
}

int forward(const backend *b, void *ctx, const model *m, float *x, size_t n, kv_cache *kv,
            float *logits, int all_logits, char *err, size_t errlen) {
    if (n == 0) return 0;
    size_t n0 = kv->n;
    if (run(b, ctx, m, x, n, kv, logits, all_logits, err, errlen) < 0) {
        kv->n = n0; /* the rows written past n0 are not part of the cache */
        kv_written(kv, n0);
        return -1;
    }
    return 0;
}
