/* kv: malloc'd K/V storage for kv.h's cache, one block per layer for K and one for V, so
 * growing the cache is one realloc per block and the filled rows move with it. */
#include "kv.h"

#include <stdlib.h>

/* Every block to cap rows (cap > 0: an empty cache still has its blocks). A failure part
 * way leaves some blocks larger than kv->cap, which is harmless: kv->cap stays what every
 * block holds. */
static int grow(kv_cache *kv, size_t cap) {
    if (kv->kv_dim && cap > (size_t)-1 / sizeof(float) / kv->kv_dim) return -1;
    size_t bytes = cap * kv->kv_dim * sizeof(float);
    if (!bytes) bytes = 1;
    for (int l = 0; l < kv->n_layers; l++) {
        float *k = realloc(kv->k[l], bytes);
        if (!k) return -1;
        kv->k[l] = k;
        float *v = realloc(kv->v[l], bytes);
        if (!v) return -1;
        kv->v[l] = v;
    }
    kv->cap = cap;
    return 0;
}

int kv_alloc(kv_cache *kv, int n_layers, size_t kv_dim, size_t cap) {
    *kv = (kv_cache){.n_layers = n_layers < 0 ? 0 : n_layers, .kv_dim = kv_dim};
    size_t nl = n_layers > 0 ? (size_t)n_layers : 1;
    if (n_layers < 0 || !(kv->k = calloc(nl, sizeof *kv->k)) || !(kv->v = calloc(nl, sizeof *kv->v)) ||
        grow(kv, cap ? cap : 1) < 0) {
        kv_free(kv);
        return -1;
    }
    return 0;
}

int kv_reserve(kv_cache *kv, size_t cap) { return cap <= kv->cap ? 0 : grow(kv, cap); }

void kv_free(kv_cache *kv) {
    if (kv->k)
        for (int l = 0; l < kv->n_layers; l++) free(kv->k[l]);
    if (kv->v)
        for (int l = 0; l < kv->n_layers; l++) free(kv->v[l]);
    free(kv->k);
    free(kv->v);
    *kv = (kv_cache){0};
}
