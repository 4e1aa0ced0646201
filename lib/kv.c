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

int kv_half_reserve(kv_cache *kv, size_t cap) {
    if (kv->n16 && kv->cap16 && cap <= kv->cap16) return 0; /* cap16 0: nothing allocated */
    if (!kv->n16) {
        size_t nl = kv->n_layers > 0 ? (size_t)kv->n_layers : 1;
        kv->kv16 = calloc(nl, sizeof *kv->kv16);
        kv->n16 = calloc(nl, sizeof *kv->n16);
        if (!kv->kv16 || !kv->n16) {
            free(kv->kv16), free(kv->n16);
            kv->kv16 = NULL, kv->n16 = NULL;
            return -1;
        }
    }
    if (kv->kv_dim && cap > (size_t)-1 / 2 / sizeof(uint16_t) / kv->kv_dim) return -1;
    size_t bytes = 2 * cap * kv->kv_dim * sizeof(uint16_t);
    if (!bytes) bytes = 1;
    /* the copies are laid out by cap16 (kv.h): new storage, no copy valid in it yet; after
     * a failure part way cap16 is 0, so the next call allocates every layer again */
    kv_written(kv, 0);
    for (int l = 0; l < kv->n_layers; l++) {
        free(kv->kv16[l]);
        if (!(kv->kv16[l] = malloc(bytes))) {
            kv->cap16 = 0;
            return -1;
        }
    }
    kv->cap16 = cap;
    return 0;
}

void kv_written(kv_cache *kv, size_t from) {
    if (kv->n16)
        for (int l = 0; l < kv->n_layers; l++)
            if (kv->n16[l] > from) kv->n16[l] = from;
}

void kv_half_free(kv_cache *kv) {
    for (int l = 0; l < kv->n_layers; l++) {
        if (kv->kv16) free(kv->kv16[l]);
    }
    free(kv->kv16), free(kv->n16);
    kv->kv16 = NULL, kv->n16 = NULL, kv->cap16 = 0;
}

void kv_free(kv_cache *kv) {
    kv_half_free(kv);
    for (int l = 0; l < kv->n_layers; l++) {
        if (kv->k) free(kv->k[l]);
        if (kv->v) free(kv->v[l]);
    }
    free(kv->k), free(kv->v);
    *kv = (kv_cache){0};
}
