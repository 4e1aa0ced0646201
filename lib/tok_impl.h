/* tok_impl: what lib/tok.c (encoding), lib/tok_build.c (tokenizer.json -> image) and
 * lib/tok_load.c (the cache) share; nothing outside lib/tok*.c includes it.
 *
 * The compiled image is one flat little-endian buffer, position-independent, used in
 * place from an mmap of the cache file (or from the buffer it was just built in):
 *
 *   header  TOKIMG_HDR bytes, the H_* fields below
 *   tokoff  u32[n_ids + 1]      offset of each id's raw bytes in blob (the last = blob_len)
 *   blob    u8[blob_len]        raw bytes of every id: vocabulary entries byte-level
 *                               decoded, added tokens their own text
 *   vhash   u32[vcap][2]        vocabulary by raw bytes, open addressing (linear probing):
 *                               {id | TOK_WHOLE, tag = hash >> 32}; id TOK_EMPTY = free slot.
 *                               TOK_WHOLE marks entries that BPE over their own bytes turns
 *                               into that single id, checked when the image is built, so
 *                               "whole piece in the vocabulary => its id" is exact.
 *   mhash   u32[mcap][4]        merges by pair, open addressing: {left, right, rank, merged};
 *                               left TOK_EMPTY = free slot
 *   added   u32[n_added][2]     {id, special}
 *
 * Attaching an image checks the header, that every section lies inside it, the token
 * offsets and the added tokens, and a checksum of the whole body (0.5 ms for 8 MB); the
 * hash tables are not walked (that would double the start-up time), so lookups stop
 * after the longest probe recorded at build time and skip ids out of range: whatever
 * the file holds, the encoder stays in bounds. */
#ifndef TOK_IMPL_H
#define TOK_IMPL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tok.h"
#include "util.h"

#define TOKIMG_MAGIC "QW3TOKc\n"
enum { TOKIMG_VERSION = 2 };

enum { /* header field offsets */
    H_MAGIC = 0,
    H_VERSION = 8,
    H_NIDS = 12,      /* u32: all ids, vocabulary + added tokens */
    H_NVOCAB = 16,    /* u32: the merged vocabulary, ids [0, n_vocab) */
    H_NMERGES = 20,   /* u32 */
    H_NADDED = 24,    /* u32 */
    H_VCAP = 28,      /* u32, power of two */
    H_MCAP = 32,      /* u32, power of two */
    H_MAXPIECE = 36,  /* u32: longest vocabulary entry in bytes */
    H_VPROBE = 40,    /* u32: most slots a vhash lookup looks at (its longest probe) */
    H_MPROBE = 44,    /* u32: the same for mhash */
    H_TOKOFF = 48,    /* u64 offsets of the sections from the start of the image */
    H_BLOB = 56,
    H_BLOBLEN = 64,
    H_VHASH = 72,
    H_MHASH = 80,
    H_ADDED = 88,
    H_SIZE = 96,      /* u64: the whole image */
    H_SUM = 104,      /* u64: tokimg_sum of everything after the header */
    H_SRCHASH = 112,  /* u8[32]: BLAKE2b-256 of the tokenizer.json it was built from */
    TOKIMG_HDR = 144
};

#define TOK_EMPTY 0xFFFFFFFFu
#define TOK_WHOLE 0x80000000u
#define TOK_NORANK 0xFFFFFFFFu

/* Class bits of one code point for the split scanner: uni.h's UNI_L, UNI_N, UNI_S plus
 * CR/LF, which the regex treats apart from other whitespace. */
enum { TOK_CRLF = 8 };

struct tok {
    const uint8_t *img; /* the image: points into map or owned */
    size_t size;
    mapped map;         /* the cache file, when mapped */
    uint8_t *owned;     /* the image, when built in memory this run */
    size_t n_ids, n_vocab, n_merges, n_added, max_piece;
    uint32_t vmask, mmask, vprobe, mprobe;
    const uint8_t *tokoff, *blob, *vhash, *mhash, *added;
    uint32_t byte_id[256];   /* the id of each single byte: where BPE starts */
    uint8_t ascii[128];      /* class bits of each ASCII code point */
    uint8_t added_start[256];/* 1 if some added token starts with that byte */
    uint32_t added_order[64];/* indices into added, longest text first (leftmost-longest) */
};

/* 64-bit hash of raw bytes (vocabulary lookup). Part of the image format: changing it
 * needs a TOKIMG_VERSION bump. */
static inline uint64_t tok_hash_bytes(const uint8_t *p, size_t n) {
    uint64_t h = 0x243F6A8885A308D3u ^ (uint64_t)n * 0x9E3779B97F4A7C15u;
    for (; n >= 8; p += 8, n -= 8) {
        h = (h ^ le64(p)) * 0xFF51AFD7ED558CCDu;
        h ^= h >> 32;
    }
    uint64_t tail = 0;
    for (size_t i = 0; i < n; i++) tail |= (uint64_t)p[i] << 8 * i;
    h = (h ^ tail) * 0xC4CEB9FE1A85EC53u;
    h ^= h >> 29;
    h *= 0xFF51AFD7ED558CCDu;
    return h ^ h >> 32;
}

/* Hash of a merge pair (left, right). Part of the image format too. */
static inline uint32_t tok_hash_pair(uint32_t a, uint32_t b) {
    uint64_t h = ((uint64_t)a << 32 | b) * 0x9E3779B97F4A7C15u;
    return (uint32_t)(h >> 32 ^ h >> 7);
}

/* Checksum of an image body: catches truncation and stray writes, not malice. */
uint64_t tokimg_sum(const uint8_t *p, size_t n);

/* Check every header field and section of img[0..size) and point t at it (t->img,
 * t->size and the derived tables; map/owned are left to the caller). -1 with the
 * reason in err if anything is out of bounds or inconsistent. */
int tok_attach(tok *t, const uint8_t *img, size_t size, char *err, size_t errlen);

/* Compile tokenizer.json (json[0..len), read from path, BLAKE2b src_hash) into a new
 * malloc'd image. -1 with "path: why" in err if it is not a Qwen3 tokenizer. */
int tok_build(const char *path, const uint8_t *json, size_t len, const uint8_t src_hash[32],
              uint8_t **img, size_t *size, char *err, size_t errlen);

/* The tokenizer of a .gguf file (tokenizer.ggml.*; lib/tok_gguf.c), compiled and cached
 * like a tokenizer.json. NULL with err. */
tok *tok_load_gguf(const char *path, char *err, size_t errlen);

/* BPE over the raw bytes s[0..n) (n >= 1) into out[0..n): returns the number of ids.
 * Scratch: sym[TOK_BPE_SYM(n)], heap[TOK_BPE_HEAP(n)]. */
#define TOK_BPE_SYM(n) (5 * (size_t)(n))
#define TOK_BPE_HEAP(n) (3 * (size_t)(n))
size_t tok_bpe(const tok *t, const uint8_t *s, size_t n, uint32_t *out, uint32_t *sym, uint64_t *heap);

/* The id of raw bytes s[0..n) in the vocabulary, with TOK_WHOLE if set, or TOK_EMPTY. */
static inline uint32_t tok_vocab_find(const tok *t, const uint8_t *s, size_t n) {
    uint64_t h = tok_hash_bytes(s, n);
    uint32_t tag = (uint32_t)(h >> 32);
    size_t i = (size_t)h & t->vmask;
    for (uint32_t k = 0; k < t->vprobe; k++, i = (i + 1) & t->vmask) {
        const uint8_t *slot = t->vhash + 8 * i;
        uint32_t v = le32(slot), id = v & ~TOK_WHOLE;
        if (v == TOK_EMPTY) return TOK_EMPTY;
        if (le32(slot + 4) != tag || id >= t->n_vocab) continue;
        uint32_t a = le32(t->tokoff + 4 * (size_t)id), b = le32(t->tokoff + 4 * (size_t)id + 4);
        if (b - a == n && memcmp(t->blob + a, s, n) == 0) return v;
    }
    return TOK_EMPTY;
}

#endif
