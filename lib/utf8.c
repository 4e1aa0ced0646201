/* utf8: lossy decoding with maximal-subpart replacement (Unicode §3.9, as Rust's
 * from_utf8_lossy and so HF tokenizers' decode do it), streaming-aware. */
#include "utf8.h"

/* Valid range of the second byte after lead byte b, and the sequence length; len 0 for
 * a byte that cannot start a sequence. */
static int lead(uint8_t b, uint8_t *lo, uint8_t *hi) {
    *lo = 0x80, *hi = 0xBF;
    if (b < 0x80) return 1;
    if (b >= 0xC2 && b <= 0xDF) return 2;
    if (b == 0xE0) *lo = 0xA0;
    else if (b == 0xED) *hi = 0x9F;
    if (b >= 0xE0 && b <= 0xEF) return 3;
    if (b == 0xF0) *lo = 0x90;
    else if (b == 0xF4) *hi = 0x8F;
    if (b >= 0xF0 && b <= 0xF4) return 4;
    return 0;
}

/* Length of the valid sequence at s, 0 if the bytes there are an invalid subpart (its
 * length in *bad), or -1 if s[0..n) is a proper prefix of a valid sequence. */
static int scan(const uint8_t *s, size_t n, size_t *bad) {
    uint8_t lo, hi;
    int len = lead(s[0], &lo, &hi);
    if (len == 0) {
        *bad = 1;
        return 0;
    }
    for (int k = 1; k < len; k++) {
        if ((size_t)k >= n) return -1;
        if (s[k] < lo || s[k] > hi) {
            *bad = (size_t)k;
            return 0;
        }
        lo = 0x80, hi = 0xBF;
    }
    return len;
}

size_t utf8_lossy(const uint8_t *s, size_t n, int final, buf *out) {
    static const char fffd[] = "\xEF\xBF\xBD";
    size_t i = 0, start = 0; /* s[start..i) is valid text not yet appended */
    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t bad = 0;
        int len = scan(s + i, n - i, &bad);
        if (len > 0) {
            i += (size_t)len;
            continue;
        }
        if (buf_append(out, s + start, i - start) < 0) return (size_t)-1;
        if (len < 0) { /* incomplete at the end */
            if (!final) return i;
            bad = n - i;
        }
        if (buf_append(out, fffd, 3) < 0) return (size_t)-1;
        i += bad;
        start = i;
    }
    if (buf_append(out, s + start, i - start) < 0) return (size_t)-1;
    return n;
}

size_t utf8_check(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t bad;
        int len = scan(s + i, n - i, &bad);
        if (len <= 0) return i;
        i += (size_t)len;
    }
    return n;
}
