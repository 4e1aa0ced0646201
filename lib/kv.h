/* kv: the key/value cache of one sequence, as the backends read and write it: per layer,
 * K and V rows of kv_dim = n_kv_heads*head_dim floats, one row per position, K stored
 * after RoPE (as HF does). Rows [0, n) are filled; the cache has room for cap rows. The
 * storage behind k[l] and v[l] belongs to whoever made the cache (sess.c: malloc now,
 * mapped files later). */
#ifndef KV_H
#define KV_H

#include <stddef.h>

typedef struct {
    int n_layers;
    size_t kv_dim;
    size_t cap;  /* rows allocated per layer */
    size_t n;    /* rows filled (positions held) */
    float **k;   /* [n_layers] -> (cap, kv_dim) */
    float **v;   /* [n_layers] -> (cap, kv_dim) */
} kv_cache;

/* Allocate an empty cache with room for cap positions; -1 if out of memory. */
int kv_alloc(kv_cache *kv, int n_layers, size_t kv_dim, size_t cap);
/* Grow to at least cap rows, keeping the filled ones; -1 if out of memory. */
int kv_reserve(kv_cache *kv, size_t cap);
void kv_free(kv_cache *kv);

#endif
