/* uni: code point classes, strict UTF-8, and the reference's Unicode 9.0 NFC, all over
 * the generated tables in ucd_tables.h (lib/gen/ucdgen.c).
 *
 * NFC is built for text that is almost always NFC already: a quick check (UAX #15
 * NFC_QC plus canonical order) runs over the input, and only a segment that fails it
 * is normalized. A segment starts at a ccc 0, NFC_QC=Yes code point (nothing before
 * it can reorder or compose with what follows; ucdgen checks this holds for their
 * decompositions too) and runs to the next one. Output is only written once some
 * segment actually changes, so text that passes or only looks doubtful (NFC_QC=Maybe)
 * costs no copy. */
#include "uni.h"

#include <stdlib.h>
#include <string.h>

#include "ucd_tables.h"

/* Hangul syllable algorithm constants (Unicode chapter 3.12). */
enum { S_BASE = 0xAC00, L_BASE = 0x1100, V_BASE = 0x1161, T_BASE = 0x11A7,
       L_COUNT = 19, V_COUNT = 21, T_COUNT = 28, N_COUNT = V_COUNT * T_COUNT,
       S_COUNT = L_COUNT * N_COUNT };

int uni_class(uint32_t cp) {
    if (cp < 256) return ucd_class_latin[cp];
    if (cp > 0x10FFFF) return 0;
    uint32_t blk = ucd_class_stage1[cp >> ucd_class_SHIFT];
    return ucd_class_stage2[blk << ucd_class_SHIFT | (cp & ((1u << ucd_class_SHIFT) - 1))];
}

/* ---- UTF-8 ---- */

static inline int cont(uint8_t b) { return (b & 0xC0) == 0x80; }

int utf8_decode(const uint8_t *s, size_t n, uint32_t *cp) {
    if (n == 0) return 0;
    uint32_t b = s[0], c;
    if (b < 0x80) {
        *cp = b;
        return 1;
    }
    if (b < 0xC2) return 0; /* continuation byte, or a 2-byte overlong lead */
    if (b < 0xE0) {
        if (n < 2 || !cont(s[1])) return 0;
        *cp = (b & 0x1F) << 6 | (s[1] & 0x3Fu);
        return 2;
    }
    if (b < 0xF0) {
        if (n < 3 || !cont(s[1]) || !cont(s[2])) return 0;
        c = (b & 0x0F) << 12 | (s[1] & 0x3Fu) << 6 | (s[2] & 0x3Fu);
        if (c < 0x800 || (c >= 0xD800 && c <= 0xDFFF)) return 0;
        *cp = c;
        return 3;
    }
    if (b < 0xF5) {
        if (n < 4 || !cont(s[1]) || !cont(s[2]) || !cont(s[3])) return 0;
        c = (b & 0x07) << 18 | (s[1] & 0x3Fu) << 12 | (s[2] & 0x3Fu) << 6 | (s[3] & 0x3Fu);
        if (c < 0x10000 || c > 0x10FFFF) return 0;
        *cp = c;
        return 4;
    }
    return 0;
}

int utf8_encode(uint32_t cp, uint8_t *out) {
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xC0 | cp >> 6);
        out[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xE0 | cp >> 12);
        out[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | cp >> 18);
    out[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

/* 1 if the 8 bytes at s are all ASCII. */
static inline int ascii8(const uint8_t *s) {
    uint64_t w;
    memcpy(&w, s, 8);
    return !(w & 0x8080808080808080ull);
}

size_t utf8_valid_prefix(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        if (i + 8 <= n && ascii8(s + i)) {
            i += 8;
            continue;
        }
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        int len = utf8_decode(s + i, n - i, &cp);
        if (!len) break;
        i += (size_t)len;
    }
    return i;
}

/* ---- NFC ---- */

static inline unsigned nfc_prop(uint32_t cp) {
    uint32_t blk = ucd_nfc_stage1[cp >> ucd_nfc_SHIFT];
    return ucd_nfc_stage2[blk << ucd_nfc_SHIFT | (cp & ((1u << ucd_nfc_SHIFT) - 1))];
}
static inline unsigned prop_qc(unsigned p) { return p >> 6; }
static inline unsigned prop_ccc(unsigned p) { return ucd_ccc_value[p & 63]; }
static inline unsigned ccc(uint32_t cp) {
    return cp < UCD_NFC_TRIVIAL_BELOW ? 0 : prop_ccc(nfc_prop(cp));
}

/* Code points of the segment being normalized: a small local array, a heap one for
 * segments longer than that (a base with hundreds of marks). */
typedef struct {
    uint32_t *p;
    size_t n, cap;
    uint32_t local[256];
} cpbuf;

static int cp_push(cpbuf *b, uint32_t cp) {
    if (b->n == b->cap) {
        size_t cap = b->cap * 2;
        uint32_t *p = b->p == b->local ? malloc(cap * sizeof *p) : realloc(b->p, cap * sizeof *p);
        if (!p) return -1;
        if (b->p == b->local) memcpy(p, b->local, sizeof b->local);
        b->p = p, b->cap = cap;
    }
    b->p[b->n++] = cp;
    return 0;
}

/* Append the full canonical decomposition of cp. */
static int decompose(cpbuf *b, uint32_t cp) {
    uint32_t si = cp - S_BASE;
    if (si < S_COUNT) {
        if (cp_push(b, L_BASE + si / N_COUNT) || cp_push(b, V_BASE + si % N_COUNT / T_COUNT)) return -1;
        return si % T_COUNT ? cp_push(b, T_BASE + si % T_COUNT) : 0;
    }
    size_t lo = 0, hi = UCD_NDECOMP;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (ucd_decomp_cp[mid] < cp) lo = mid + 1;
        else hi = mid;
    }
    if (lo < UCD_NDECOMP && ucd_decomp_cp[lo] == cp) {
        for (unsigned i = ucd_decomp_off[lo]; i < ucd_decomp_off[lo + 1]; i++)
            if (cp_push(b, ucd_decomp_pool[i])) return -1;
        return 0;
    }
    return cp_push(b, cp);
}

/* Canonical ordering: stable sort of each run of non-starters by ccc. Runs are short
 * in real text; long ones (adversarial input) get a counting sort to stay linear. */
static int reorder(uint32_t *p, size_t n) {
    size_t i = 0;
    while (i < n) {
        if (ccc(p[i]) == 0) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < n && ccc(p[j]) != 0) j++;
        size_t len = j - i;
        if (len <= 32) {
            for (size_t k = i + 1; k < j; k++) {
                uint32_t c = p[k];
                unsigned cc = ccc(c);
                size_t m = k;
                for (; m > i && ccc(p[m - 1]) > cc; m--) p[m] = p[m - 1];
                p[m] = c;
            }
        } else {
            size_t count[257] = {0};
            uint32_t *tmp = malloc(len * sizeof *tmp);
            if (!tmp) return -1;
            for (size_t k = i; k < j; k++) count[ccc(p[k]) + 1]++;
            for (int c = 1; c < 257; c++) count[c] += count[c - 1];
            for (size_t k = i; k < j; k++) tmp[count[ccc(p[k])]++] = p[k];
            memcpy(p + i, tmp, len * sizeof *tmp);
            free(tmp);
        }
        i = j;
    }
    return 0;
}

/* The primary composite of a + b, or 0. */
static uint32_t compose(uint32_t a, uint32_t b) {
    uint32_t li = a - L_BASE, vi = b - V_BASE, si = a - S_BASE, ti = b - T_BASE;
    if (li < L_COUNT && vi < V_COUNT) return S_BASE + (li * V_COUNT + vi) * T_COUNT;
    if (si < S_COUNT && si % T_COUNT == 0 && ti - 1 < T_COUNT - 1) return a + ti;
    uint64_t key = (uint64_t)a << 21 | b;
    size_t lo = 0, hi = UCD_NCOMP;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (ucd_comp_key[mid] < key) lo = mid + 1;
        else hi = mid;
    }
    return lo < UCD_NCOMP && ucd_comp_key[lo] == key ? ucd_comp_val[lo] : 0;
}

/* Canonical composition in place; returns the new length. */
static size_t recompose(uint32_t *p, size_t n) {
    if (n == 0) return 0;
    size_t len = 1, sp = 0;
    /* last_cc: ccc of the last code point kept; 256 while there is no starter yet,
     * so nothing composes with a leading non-starter. */
    unsigned last_cc = ccc(p[0]) == 0 ? 0 : 256;
    for (size_t i = 1; i < n; i++) {
        uint32_t c = p[i];
        unsigned pr = c < UCD_NFC_TRIVIAL_BELOW ? 0 : nfc_prop(c), cc = prop_ccc(pr);
        /* c is blocked from the starter unless every code point kept since has a lower
         * ccc (last_cc is the highest: they are in canonical order), or none was kept
         * (last_cc == 0: the starter itself is the last one kept). Only NFC_QC=Maybe
         * code points are second halves of a composite. */
        if (prop_qc(pr) == UCD_QC_MAYBE && (last_cc < cc || last_cc == 0)) {
            uint32_t comp = compose(p[sp], c);
            if (comp) {
                p[sp] = comp;
                continue;
            }
        }
        if (cc == 0) sp = len;
        last_cc = cc;
        p[len++] = c;
    }
    return len;
}

/* Append n bytes to the output buffer. */
static int out_put(char **out, size_t *cap, size_t *len, const void *p, size_t n) {
    if (n == 0) return 0;
    if (*len + n > *cap) {
        size_t c = *cap ? *cap : 256;
        while (c < *len + n) c *= 2;
        char *q = realloc(*out, c);
        if (!q) return -1;
        *out = q, *cap = c;
    }
    memcpy(*out + *len, p, n);
    *len += n;
    return 0;
}

/* A segment boundary: a code point before which nothing interacts with what follows. */
static inline int boundary(uint32_t cp) { return cp < UCD_NFC_TRIVIAL_BELOW || nfc_prop(cp) == 0; }

/* Normalize s[seg..end) into b; returns 1 if it differs from the input, 0 if not,
 * -1 if out of memory. Invalid bytes (the caller promised there are none) pass as is. */
static int nfc_segment(const uint8_t *s, size_t seg, size_t end, cpbuf *b) {
    b->n = 0;
    for (size_t i = seg; i < end;) {
        uint32_t cp;
        int len = utf8_decode(s + i, end - i, &cp);
        if (!len) return 0; /* leave invalid text untouched */
        if (decompose(b, cp)) return -1;
        i += (size_t)len;
    }
    if (reorder(b->p, b->n)) return -1;
    b->n = recompose(b->p, b->n);
    size_t k = 0;
    for (size_t i = seg; i < end; k++) {
        uint32_t cp;
        i += (size_t)utf8_decode(s + i, end - i, &cp);
        if (k >= b->n || b->p[k] != cp) return 1;
    }
    return k != b->n;
}

int uni_nfc(const char *text, size_t n, char **out, size_t *outn, size_t *cap) {
    const uint8_t *s = (const uint8_t *)text;
    size_t i = 0, seg = 0, done = 0, olen = 0;
    unsigned last_cc = 0;
    int changed = 0, rc = 0;
    cpbuf b;
    b.p = b.local, b.n = 0, b.cap = sizeof b.local / sizeof b.local[0];
    while (i < n) {
        if (i + 8 <= n && ascii8(s + i)) {
            i += 8, seg = i - 1, last_cc = 0;
            continue;
        }
        uint32_t cp;
        int len = s[i] < 0x80 ? (cp = s[i], 1) : utf8_decode(s + i, n - i, &cp);
        if (len == 0) { /* invalid: not ours to fix; treat the byte as a boundary */
            seg = i++, last_cc = 0;
            continue;
        }
        unsigned pr = cp < UCD_NFC_TRIVIAL_BELOW ? 0 : nfc_prop(cp), cc = prop_ccc(pr);
        if (pr == 0) { /* ccc 0, NFC_QC=Yes */
            seg = i, last_cc = 0, i += (size_t)len;
            continue;
        }
        if (prop_qc(pr) == UCD_QC_YES && last_cc <= cc) { /* a mark in canonical order */
            last_cc = cc, i += (size_t)len;
            continue;
        }
        /* The quick check failed: normalize from the segment start to the next boundary. */
        size_t end = i + (size_t)len;
        while (end < n) {
            int l = utf8_decode(s + end, n - end, &cp);
            if (l == 0 || boundary(cp)) break;
            end += (size_t)l;
        }
        rc = nfc_segment(s, seg, end, &b);
        if (rc < 0) goto done;
        if (rc == 1) {
            changed = 1, rc = out_put(out, cap, &olen, s + done, seg - done);
            for (size_t k = 0; k < b.n && rc == 0; k++) {
                uint8_t u[4];
                rc = out_put(out, cap, &olen, u, (size_t)utf8_encode(b.p[k], u));
            }
            if (rc < 0) goto done;
            done = end;
        }
        i = end, seg = end, last_cc = 0;
    }
    rc = 0;
    if (changed) {
        rc = out_put(out, cap, &olen, s + done, n - done) ? -1 : 1;
        *outn = olen;
    }
done:
    if (b.p != b.local) free(b.p);
    return rc;
}
