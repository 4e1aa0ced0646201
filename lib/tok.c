/* tok: encoding and the accessors over a loaded image (tok_load.c loads it, the layout
 * is in tok_impl.h).
 *
 * Encoding, as HF `tokenizers` does it for Qwen3:
 *  1. added tokens are found in the raw text (leftmost, then longest);
 *  2. each span between them is NFC-normalized (uni_nfc, Unicode 9.0);
 *  3. the span is split by the Qwen2 regex
 *       (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}
 *       | ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 *     hand-coded as a scanner (piece_end) that reproduces Oniguruma's leftmost-first
 *     alternation and backtracking, with classes from uni_class;
 *  4. a piece that is a TOK_WHOLE vocabulary entry is that id (exact: checked when the
 *     image was built); any other piece goes through BPE by merge rank over its bytes.
 * The raw bytes are looked up directly (the byte-level alphabet was undone when the
 * image was built), and nothing allocates per piece except BPE of a piece over
 * SMALL_PIECE bytes that is not in the vocabulary. */
#include <stdlib.h>
#include <string.h>

#include "tok_impl.h"
#include "uni.h"

enum { SMALL_PIECE = 256 };

/* The merge of pair (a, b): its rank (TOK_NORANK if none) and the merged id. A merged
 * id out of range (only in a damaged image) counts as no merge. */
static inline uint32_t merge_rank(const tok *t, uint32_t a, uint32_t b, uint32_t *merged) {
    size_t i = tok_hash_pair(a, b) & t->mmask;
    for (uint32_t k = 0; k < t->mprobe; k++, i = (i + 1) & t->mmask) {
        const uint8_t *s = t->mhash + 16 * i;
        uint32_t sa = le32(s);
        if (sa == TOK_EMPTY) break;
        if (sa == a && le32(s + 4) == b) {
            *merged = le32(s + 12);
            return *merged < t->n_vocab ? le32(s + 8) : TOK_NORANK;
        }
    }
    return TOK_NORANK;
}

/* Binary min-heap of (rank << 32 | position) keys. */
static void heap_push(uint64_t *h, size_t *n, uint64_t k) {
    size_t i = (*n)++;
    for (; i > 0 && h[(i - 1) / 2] > k; i = (i - 1) / 2) h[i] = h[(i - 1) / 2];
    h[i] = k;
}
static uint64_t heap_pop(uint64_t *h, size_t *n) {
    uint64_t top = h[0], k = h[--*n];
    size_t i = 0;
    for (size_t c; (c = 2 * i + 1) < *n; i = c) {
        if (c + 1 < *n && h[c + 1] < h[c]) c++;
        if (h[c] >= k) break;
        h[i] = h[c];
    }
    h[i] = k;
    return top;
}

enum { END = 0xFFFFFFFFu };

/* BPE as HF does it: repeatedly merge the adjacent pair of lowest rank, leftmost on
 * ties. Symbols are a linked list and keep the position of their first byte; candidate
 * pairs wait in a heap keyed by (rank, position), and entries that went stale are
 * skipped when popped: a rank names one pair, so an entry is current iff its position
 * still starts a pair of that rank. O(n log n), for the 3,000-byte words too. */
size_t tok_bpe(const tok *t, const uint8_t *s, size_t n, uint32_t *out, uint32_t *sym, uint64_t *heap) {
    uint32_t *id = sym, *next = id + n, *prev = next + n, *rank = prev + n, *merged = rank + n;
    size_t hn = 0;
    for (size_t i = 0; i < n; i++) {
        id[i] = t->byte_id[s[i]];
        next[i] = i + 1 < n ? (uint32_t)i + 1 : END;
        prev[i] = i > 0 ? (uint32_t)i - 1 : END;
    }
    for (size_t i = 0; i < n; i++) {
        rank[i] = i + 1 < n ? merge_rank(t, id[i], id[i + 1], &merged[i]) : TOK_NORANK;
        if (rank[i] != TOK_NORANK) heap_push(heap, &hn, (uint64_t)rank[i] << 32 | i);
    }
    while (hn > 0) {
        uint64_t k = heap_pop(heap, &hn);
        uint32_t p = (uint32_t)k, r = (uint32_t)(k >> 32);
        if (id[p] == END || rank[p] != r) continue;
        uint32_t q = next[p];
        id[p] = merged[p];
        id[q] = END;
        next[p] = next[q];
        if (next[q] != END) prev[next[q]] = p;
        rank[q] = TOK_NORANK;
        rank[p] = next[p] != END ? merge_rank(t, id[p], id[next[p]], &merged[p]) : TOK_NORANK;
        if (rank[p] != TOK_NORANK) heap_push(heap, &hn, (uint64_t)rank[p] << 32 | p);
        uint32_t o = prev[p];
        if (o != END) {
            rank[o] = merge_rank(t, id[o], id[p], &merged[o]);
            if (rank[o] != TOK_NORANK) heap_push(heap, &hn, (uint64_t)rank[o] << 32 | o);
        }
    }
    size_t k = 0;
    for (uint32_t i = 0; i != END; i = next[i]) out[k++] = id[i];
    return k;
}

/* Class bits (UNI_L, UNI_N, UNI_S, TOK_CRLF) of the code point at s[i] and its length.
 * s is valid UTF-8 (checked once up front), so the decoder does not re-check. */
static inline int cls(const tok *t, const uint8_t *s, size_t i, size_t *len) {
    uint32_t c = s[i], cp;
    if (c < 0x80) {
        *len = 1;
        return t->ascii[c];
    }
    if (c < 0xE0) {
        cp = (c & 0x1F) << 6 | (s[i + 1] & 0x3Fu);
        *len = 2;
    } else if (c < 0xF0) {
        cp = (c & 0x0F) << 12 | (s[i + 1] & 0x3Fu) << 6 | (s[i + 2] & 0x3Fu);
        *len = 3;
    } else {
        cp = (c & 0x07) << 18 | (s[i + 1] & 0x3Fu) << 12 | (s[i + 2] & 0x3Fu) << 6 | (s[i + 3] & 0x3Fu);
        *len = 4;
    }
    return uni_class(cp);
}

/* (?i:'s|'t|'re|'ve|'m|'ll|'d) after the apostrophe: the length matched, or 0. Case
 * folding is Unicode's simple folding, under which U+017F LONG S is an s; no other
 * code point folds to one of these letters. */
static size_t contraction(const uint8_t *s, size_t n) {
    uint8_t a = s[0] | 0x20, b = n > 1 ? s[1] | 0x20 : 0;
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 1;
    if (n > 1 && s[0] == 0xC5 && s[1] == 0xBF) return 2;
    if (((a == 'r' || a == 'v') && b == 'e') || (a == 'l' && b == 'l')) return 2;
    return 0;
}

/* The end of the run of code points from i whose class has a bit of `want` (run) or
 * none of the bits of `stop` (run_not). */
static inline size_t run(const tok *t, const uint8_t *s, size_t n, size_t i, int want) {
    size_t l;
    while (i < n && (cls(t, s, i, &l) & want)) i += l;
    return i;
}
static inline size_t run_not(const tok *t, const uint8_t *s, size_t n, size_t i, int stop) {
    size_t l;
    while (i < n && !(cls(t, s, i, &l) & stop)) i += l;
    return i;
}

/* ?[^\s\p{L}\p{N}]+[\r\n]* once the first symbol is known to end at j. */
static size_t punct_end(const tok *t, const uint8_t *s, size_t n, size_t j) {
    j = run_not(t, s, n, j, UNI_L | UNI_N | UNI_S);
    while (j < n && (s[j] == '\r' || s[j] == '\n')) j++;
    return j;
}

/* The end of the regex match that starts at i < n: the alternatives in order, each
 * the way Oniguruma settles it. */
static size_t piece_end(const tok *t, const uint8_t *s, size_t n, size_t i) {
    size_t l0, l1;
    int c0 = cls(t, s, i, &l0);
    size_t j = i + l0;
    if (s[i] == '\'' && j < n) { /* contractions */
        size_t k = contraction(s + j, n - j);
        if (k) return j + k;
    }
    if (c0 & UNI_L) return run(t, s, n, j, UNI_L); /* [^\r\n\p{L}\p{N}]?\p{L}+ */
    if (!(c0 & (UNI_N | TOK_CRLF)) && j < n && (cls(t, s, j, &l1) & UNI_L))
        return run(t, s, n, j + l1, UNI_L);
    if (c0 & UNI_N) return j; /* \p{N} */
    if (!(c0 & UNI_S)) return punct_end(t, s, n, j); /* ?[^\s\p{L}\p{N}]+[\r\n]* */
    if (s[i] == ' ' && j < n && !(cls(t, s, j, &l1) & (UNI_L | UNI_N | UNI_S)))
        return punct_end(t, s, n, j + l1);
    /* Whitespace. \s*[\r\n]+ backtracks to end after the run's last CR/LF, if any;
     * else \s+(?!\S) takes the run, less its last code point when a non-space follows
     * (that one then leads the next piece); a lone space before a non-space is \s+. */
    size_t end = j, last = i, after_crlf = c0 & TOK_CRLF ? j : 0;
    while (end < n) {
        int c = cls(t, s, end, &l1);
        if (!(c & UNI_S)) break;
        last = end;
        end += l1;
        if (c & TOK_CRLF) after_crlf = end;
    }
    if (after_crlf) return after_crlf;
    if (end == n || last == i) return end;
    return last;
}

typedef struct {
    const tok *t;
    int32_t *ids;
    size_t n, cap;
    uint32_t *sym;  /* BPE scratch for pieces over SMALL_PIECE bytes: TOK_BPE_SYM(wcap) */
    uint64_t *heap; /* and TOK_BPE_HEAP(wcap) */
    size_t wcap;
} enc;

/* Room for `more` ids. */
static int reserve(enc *e, size_t more) {
    if (e->n + more <= e->cap) return 0;
    size_t cap = e->cap ? e->cap : 1024;
    while (cap < e->n + more) cap *= 2;
    int32_t *p = realloc(e->ids, cap * sizeof *p);
    if (!p) return -1;
    e->ids = p;
    e->cap = cap;
    return 0;
}

static int piece(enc *e, const uint8_t *s, size_t n) {
    const tok *t = e->t;
    if (reserve(e, n) < 0) return -1;
    if (n <= t->max_piece) {
        uint32_t v = tok_vocab_find(t, s, n);
        if (v != TOK_EMPTY && (v & TOK_WHOLE)) {
            e->ids[e->n++] = (int32_t)(v & ~TOK_WHOLE);
            return 0;
        }
    }
    uint32_t sym_small[TOK_BPE_SYM(SMALL_PIECE)], *sym = sym_small;
    uint64_t heap_small[TOK_BPE_HEAP(SMALL_PIECE)], *heap = heap_small;
    if (n > SMALL_PIECE) {
        if (e->wcap < n) {
            free(e->sym);
            free(e->heap);
            e->wcap = 2 * n;
            e->sym = malloc(sizeof *sym * TOK_BPE_SYM(e->wcap));
            e->heap = malloc(sizeof *heap * TOK_BPE_HEAP(e->wcap));
            if (!e->sym || !e->heap) return e->wcap = 0, -1;
        }
        sym = e->sym;
        heap = e->heap;
    }
    /* the ids go straight to the output: BPE never makes more ids than bytes */
    e->n += tok_bpe(t, s, n, (uint32_t *)(e->ids + e->n), sym, heap);
    return 0;
}

static int span(enc *e, const uint8_t *s, size_t n) {
    for (size_t i = 0, j; i < n; i = j) {
        j = piece_end(e->t, s, n, i);
        if (piece(e, s + i, j - i) < 0) return -1;
    }
    return 0;
}

/* The length of the longest added token at s[i..n), its id in *id; 0 if none. */
static size_t added_at(const tok *t, const uint8_t *s, size_t n, size_t i, uint32_t *id) {
    for (size_t k = 0; k < t->n_added; k++) {
        uint32_t a = le32(t->added + 8 * (size_t)t->added_order[k]);
        size_t o = le32(t->tokoff + 4 * (size_t)a), len = le32(t->tokoff + 4 * (size_t)a + 4) - o;
        if (len <= n - i && memcmp(s + i, t->blob + o, len) == 0) {
            *id = a;
            return len;
        }
    }
    return 0;
}

int tok_encode(const tok *t, const char *text, size_t len, int32_t **ids, size_t *n, size_t *cap,
               char *err, size_t errlen) {
    const uint8_t *s = (const uint8_t *)text;
    size_t valid = utf8_valid_prefix(s, len);
    if (valid != len) return seterr(err, errlen, "invalid UTF-8 at byte %zu", valid);
    enc e = {.t = t, .ids = *ids, .n = *n, .cap = *cap};
    char *nfc = NULL;
    size_t nfcn = 0, nfccap = 0;
    int rc = 0;
    for (size_t pos = 0; pos < len && rc == 0;) {
        size_t p = pos, m = 0;
        uint32_t id = 0;
        for (; p < len; p++)
            if (t->added_start[s[p]] && (m = added_at(t, s, len, p, &id))) break;
        if (p > pos) {
            int r = uni_nfc(text + pos, p - pos, &nfc, &nfcn, &nfccap);
            rc = r < 0 ? -1 : r ? span(&e, (const uint8_t *)nfc, nfcn) : span(&e, s + pos, p - pos);
        }
        if (rc == 0 && m) {
            rc = reserve(&e, 1);
            if (rc == 0) e.ids[e.n++] = (int32_t)id;
        }
        pos = p + m;
    }
    free(nfc);
    free(e.sym);
    free(e.heap);
    *ids = e.ids;
    *cap = e.cap;
    if (rc < 0) return seterr(err, errlen, "encode: out of memory");
    *n = e.n;
    return 0;
}

size_t tok_vocab_size(const tok *t) { return t->n_ids; }

const char *tok_bytes(const tok *t, int32_t id, size_t *len) {
    if (id < 0 || (size_t)id >= t->n_ids) return NULL;
    size_t a = le32(t->tokoff + 4 * (size_t)id);
    *len = le32(t->tokoff + 4 * (size_t)id + 4) - a;
    return (const char *)t->blob + a;
}

int tok_is_special(const tok *t, int32_t id) {
    for (size_t k = 0; k < t->n_added; k++)
        if ((int64_t)le32(t->added + 8 * k) == id) return le32(t->added + 8 * k + 4) != 0;
    return 0;
}

int32_t tok_added_id(const tok *t, const char *text) {
    size_t n = strlen(text);
    for (size_t k = 0; k < t->n_added; k++) {
        uint32_t a = le32(t->added + 8 * k);
        size_t o = le32(t->tokoff + 4 * (size_t)a);
        if (le32(t->tokoff + 4 * (size_t)a + 4) - o == n && memcmp(t->blob + o, text, n) == 0) return (int32_t)a;
    }
    return -1;
}
