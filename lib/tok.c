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

/* The merge of pair (a, b): its rank (TOK_NORANK if none) and the merged id. */
static inline uint32_t merge_rank(const tok *t, uint32_t a, uint32_t b, uint32_t *merged) {
    for (size_t i = tok_hash_pair(a, b) & t->mmask;; i = (i + 1) & t->mmask) {
        const uint8_t *s = t->mhash + 16 * i;
        uint32_t sa = le32(s);
        if (sa == TOK_EMPTY) return TOK_NORANK;
        if (sa == a && le32(s + 4) == b) {
            *merged = le32(s + 12);
            return le32(s + 8);
        }
    }
}

/* Classic BPE: repeatedly merge the adjacent pair of lowest rank, leftmost on ties;
 * the same order HF's priority queue (rank, position) produces. rank[i] and merged[i]
 * describe the pair (id[i], id[i+1]). Quadratic in the piece, which is short: pieces
 * in the vocabulary never get here. */
size_t tok_bpe(const tok *t, const uint8_t *s, size_t n, uint32_t *id, uint32_t *work) {
    uint32_t *rank = work, *merged = work + n;
    for (size_t i = 0; i < n; i++) id[i] = t->byte_id[s[i]];
    for (size_t i = 0; i + 1 < n; i++) rank[i] = merge_rank(t, id[i], id[i + 1], &merged[i]);
    while (n > 1) {
        size_t best = 0;
        for (size_t i = 1; i + 1 < n; i++)
            if (rank[i] < rank[best]) best = i;
        if (rank[best] == TOK_NORANK) break;
        id[best] = merged[best];
        size_t tail = n - best - 2; /* ids after the merged pair */
        memmove(id + best + 1, id + best + 2, 4 * tail);
        if (tail > 1) {
            memmove(rank + best + 1, rank + best + 2, 4 * (tail - 1));
            memmove(merged + best + 1, merged + best + 2, 4 * (tail - 1));
        }
        n--;
        if (best + 1 < n) rank[best] = merge_rank(t, id[best], id[best + 1], &merged[best]);
        if (best > 0) rank[best - 1] = merge_rank(t, id[best - 1], id[best], &merged[best - 1]);
    }
    return n;
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

/* The end of the run of code points from i whose class has none of the bits in `stop`
 * (stop = 0: has one of `want`). */
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
    uint32_t *work; /* BPE scratch for pieces over SMALL_PIECE bytes */
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
    uint32_t small[4 * SMALL_PIECE], *out = small;
    if (n > SMALL_PIECE) {
        if (e->wcap < 4 * n) {
            free(e->work);
            e->wcap = 8 * n;
            if (!(e->work = malloc(4 * e->wcap))) return -1;
        }
        out = e->work;
    }
    size_t k = tok_bpe(t, s, n, out, out + n);
    for (size_t i = 0; i < k; i++) e->ids[e->n++] = (int32_t)out[i];
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
    free(e.work);
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
