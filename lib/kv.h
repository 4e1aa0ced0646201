/* kv: the key/value cache of one sequence, as the backends read and write it: per layer,
 * K and V rows of kv_dim = n_kv_heads*head_dim floats, one row per position, K stored
 * after RoPE (as HF does). Rows [0, n) are filled; the cache has room for cap rows. The
 * storage behind k[l] and v[l] belongs to whoever made the cache (sess.c: malloc now,
 * mapped files later). */
#ifndef KV_H
#define KV_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int n_layers;
    size_t kv_dim;
    size_t cap;  /* rows allocated per layer */
    size_t n;    /* rows filled (positions held) */
    float **k;   /* [n_layers] -> (cap, kv_dim) */
    float **v;   /* [n_layers] -> (cap, kv_dim) */
    /* f16 copies of rows [0, n16[l]) of k[l] and v[l], both in kv16[l] (room for cap16
     * rows of each), for a backend that reads K/V at half the bytes (cpu.c: a quantized
     * model's decode), laid out by whoever fills them (cpu.c: kern_kv16_copy's blocks);
     * NULL until kv_half_reserve. Code that writes rows [from, ...) of k or v other than by
     * appending them calls kv_written(kv, from) first, so no stale copy is read. */
    uint16_t **kv16;
    size_t *n16;
    size_t cap16;
} kv_cache;

/* Allocate an empty cache with room for cap positions; -1 if out of memory. */
int kv_alloc(kv_cache *kv, int n_layers, size_t kv_dim, size_t cap);
/* Grow to at least cap rows, keeping the filled ones; -1 if out of memory. */
int kv_reserve(kv_cache *kv, size_t cap);
void kv_free(kv_cache *kv);
/* The f16 copies' storage (kv16, n16) grown to at least cap rows; where it grows, the
 * copies are dropped (n16 0: their layout may depend on cap16). -1 if out of memory. */
int kv_half_reserve(kv_cache *kv, size_t cap);
/* Free the f16 copies alone (kv_free frees them too). */
void kv_half_free(kv_cache *kv);
/* Rows from `from` on are about to change: no f16 copy of them is valid any more. */
void kv_written(kv_cache *kv, size_t from);

#endif
