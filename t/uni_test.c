/* uni_test: checks lib/uni.h against data we did not derive it from by hand.
 *
 * usage: uni_test [CLASSES_JSON [DELTAS [UCD_DIR]]]
 *        (defaults: lib/data/unicode_classes.json, lib/data/nfc_unicode9_deltas.txt,
 *        /usr/share/unicode; run from the repository root)
 *
 *  - uni_class: every code point against the reference's class ranges, plus examples
 *    from the tokenizer notes;
 *  - UTF-8: decode edge cases, encode/decode round trip of every scalar;
 *  - NFC: hand examples, every entry of the deltas file (the reference's Unicode 9.0
 *    behaviour), and NormalizationTest.txt restricted to lines whose code points are
 *    all assigned in Unicode <= 9.0 (DerivedAge.txt).
 * Prints one "ok GROUP (N checks)" line per group; failures go to stderr; exit 1 if any. */
#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "uni.h"

#define NCP 0x110000

static long nchecks, nfails;

static int check(int ok, const char *fmt, ...) {
    nchecks++;
    if (ok) return 1;
    if (nfails++ < 30) {
        va_list ap;
        va_start(ap, fmt);
        fputs("FAIL: ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
    }
    return 0;
}

static long group_start;
static void group_done(const char *name) {
    printf("ok %s (%ld checks)\n", name, nchecks - group_start);
    group_start = nchecks;
}

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *p = malloc(cap);
    size_t r;
    while (p && (r = fread(p + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (n + 1 == cap) p = realloc(p, cap *= 2);
    }
    fclose(f);
    if (p) p[n] = 0;
    if (len) *len = n;
    return p;
}

/* Code points as UTF-8, into out (NUL-terminated); returns the length. */
static size_t enc(const uint32_t *cps, size_t n, char *out) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += (size_t)utf8_encode(cps[i], (uint8_t *)out + k);
    out[k] = 0;
    return k;
}

/* NFC of s as a string in a static buffer (uni_nfc's 0 means: s itself). */
static const char *nfc(const char *s, size_t n, size_t *outlen) {
    static char *buf;
    static size_t cap;
    static char copy[4096];
    size_t outn = 0;
    int rc = uni_nfc(s, n, &buf, &outn, &cap);
    if (rc < 0) return NULL;
    if (rc == 0) {
        if (n >= sizeof copy) return NULL;
        memcpy(copy, s, n), copy[n] = 0;
        *outlen = n;
        return copy;
    }
    *outlen = outn;
    return buf;
}

static void hex(const char *s, size_t n, char *out, size_t outlen) {
    size_t k = 0;
    out[0] = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int l = utf8_decode((const uint8_t *)s + i, n - i, &cp);
        if (!l) cp = 0xFFFD, l = 1;
        if (k + 10 < outlen) k += (size_t)snprintf(out + k, outlen - k, "%s%04X", i ? " " : "", cp);
        i += (size_t)l;
    }
}

/* Check NFC(in) == want, both given as code points; what names the case. */
static void check_nfc(const uint32_t *in, size_t nin, const uint32_t *want, size_t nwant, const char *what) {
    char a[256], b[256];
    size_t na = enc(in, nin, a), nb = enc(want, nwant, b), no;
    const char *got = nfc(a, na, &no);
    char hg[512] = "?", hw[512], hi[512];
    if (got && no == nb && !memcmp(got, b, nb)) {
        check(1, "");
        return;
    }
    if (got) hex(got, no, hg, sizeof hg);
    hex(b, nb, hw, sizeof hw), hex(a, na, hi, sizeof hi);
    check(0, "%s: NFC(%s) = %s, want %s", what, hi, hg, hw);
}

/* ---- uni_class ---- */

static void test_class(const char *json_path) {
    char *text = slurp(json_path, NULL);
    if (!check(text != NULL, "open %s", json_path)) return;
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!check(root != NULL, "%s: not JSON", json_path)) return;
    static uint8_t want[NCP];
    const char *keys[3] = {"L", "N", "S"};
    const int bits[3] = {UNI_L, UNI_N, UNI_S};
    for (int k = 0; k < 3; k++) {
        cJSON *r, *arr = cJSON_GetObjectItemCaseSensitive(root, keys[k]);
        check(cJSON_IsArray(arr) && cJSON_GetArraySize(arr) > 0, "%s: no ranges for %s", json_path, keys[k]);
        cJSON_ArrayForEach(r, arr) {
            unsigned long lo = strtoul(cJSON_GetArrayItem(r, 0)->valuestring, NULL, 16);
            unsigned long hi = strtoul(cJSON_GetArrayItem(r, 1)->valuestring, NULL, 16);
            for (unsigned long c = lo; c <= hi && c < NCP; c++) want[c] |= (uint8_t)bits[k];
        }
    }
    cJSON_Delete(root);
    /* Every code point, which covers every range boundary. */
    long bad = 0;
    for (uint32_t c = 0; c < NCP; c++)
        if (!check(uni_class(c) == want[c], "uni_class(U+%04X) = %d, want %d", c, uni_class(c), want[c])) bad++;
    check(uni_class(0x110000) == 0 && uni_class(0xFFFFFFFF) == 0, "uni_class beyond U+10FFFF");
    /* The tokenizer notes' examples. */
    struct { uint32_t cp; int cls; } ex[] = {
        {'a', UNI_L}, {'Z', UNI_L}, {'5', UNI_N}, {' ', UNI_S}, {'\t', UNI_S}, {'\r', UNI_S},
        {'\n', UNI_S}, {'\'', 0}, {'.', 0}, {0, 0},
        {0x0085, UNI_S},  /* NEL */
        {0x00A0, UNI_S},  /* NBSP */
        {0x3000, UNI_S},  /* ideographic space */
        {0xFEFF, 0},      /* BOM is not \s */
        {0x180E, 0},      /* Mongolian vowel separator is not \s */
        {0x0301, 0},      /* combining marks are not letters */
        {0x0939, UNI_L},  /* ह */
        {0x093F, 0},      /* ि (Mc) */
        {0x094D, 0},      /* ् (Mn) */
        {0x0E32, UNI_L},  /* Thai sara aa is Lo */
        {0x017F, UNI_L},  /* ſ */
        {0x2162, UNI_N},  /* Roman numeral three (Nl) */
        {0x00BD, UNI_N},  /* ½ (No) */
        {0x0661, UNI_N},  /* Arabic-Indic one (Nd) */
        {0x00B2, UNI_N},  /* superscript two */
        {0x0120, UNI_L},  /* Ġ */
        {0x4E00, UNI_L},  /* CJK */
        {0x1F600, 0},     /* emoji */
        {0x200D, 0},      /* ZWJ */
    };
    for (size_t i = 0; i < sizeof ex / sizeof ex[0]; i++)
        check(uni_class(ex[i].cp) == ex[i].cls, "uni_class(U+%04X) = %d, want %d", ex[i].cp,
              uni_class(ex[i].cp), ex[i].cls);
    group_done("uni_class");
}

/* ---- UTF-8 ---- */

static void test_utf8(void) {
    struct { const char *s; size_t n; int len; uint32_t cp; } ex[] = {
        {"\x00", 1, 1, 0}, {"\x7F", 1, 1, 0x7F}, {"\xC2\x80", 2, 2, 0x80}, {"\xDF\xBF", 2, 2, 0x7FF},
        {"\xE0\xA0\x80", 3, 3, 0x800}, {"\xED\x9F\xBF", 3, 3, 0xD7FF}, {"\xEE\x80\x80", 3, 3, 0xE000},
        {"\xEF\xBF\xBF", 3, 3, 0xFFFF}, {"\xF0\x90\x80\x80", 4, 4, 0x10000},
        {"\xF4\x8F\xBF\xBF", 4, 4, 0x10FFFF},
        {"\xC0\x80", 2, 0, 0},          /* overlong NUL */
        {"\xC1\xBF", 2, 0, 0},          /* overlong */
        {"\xE0\x9F\xBF", 3, 0, 0},      /* overlong 3-byte */
        {"\xF0\x8F\xBF\xBF", 4, 0, 0},  /* overlong 4-byte */
        {"\xED\xA0\x80", 3, 0, 0},      /* U+D800 */
        {"\xED\xBF\xBF", 3, 0, 0},      /* U+DFFF */
        {"\xF4\x90\x80\x80", 4, 0, 0},  /* U+110000 */
        {"\xF5\x80\x80\x80", 4, 0, 0}, {"\xFF", 1, 0, 0}, {"\xFE", 1, 0, 0},
        {"\x80", 1, 0, 0}, {"\xBF", 1, 0, 0},             /* lone continuation */
        {"\xE2\x82", 2, 0, 0}, {"\xF0\x9F\x98", 3, 0, 0}, /* truncated */
        {"\xC3", 1, 0, 0}, {"\xC3\x41", 2, 0, 0}, {"\xE2\x28\xA1", 3, 0, 0},
        {"", 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof ex / sizeof ex[0]; i++) {
        uint32_t cp = 0xDEAD;
        int len = utf8_decode((const uint8_t *)ex[i].s, ex[i].n, &cp);
        check(len == ex[i].len && (len == 0 || cp == ex[i].cp), "utf8_decode case %zu: len %d cp %04X", i, len, cp);
    }
    /* Every scalar round-trips at its shortest length; every surrogate is refused. */
    for (uint32_t c = 0; c < NCP; c++) {
        uint8_t b[4];
        uint32_t back = 0;
        int len = utf8_encode(c, b), want = c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
        int dlen = utf8_decode(b, (size_t)len, &back);
        if (c >= 0xD800 && c <= 0xDFFF) check(dlen == 0, "surrogate U+%04X decoded", c);
        else check(len == want && dlen == len && back == c, "round trip U+%04X", c);
        if (len > 1) check(utf8_decode(b, (size_t)len - 1, &back) == 0, "truncated U+%04X decoded", c);
    }
    struct { const char *s; size_t n, want; } pre[] = {
        {"", 0, 0}, {"abc", 3, 3}, {"abc\xFF", 4, 3}, {"h\xC3\xA9llo", 6, 6}, {"h\xC3", 2, 1},
        {"0123456789abcdef\xE2\x82", 18, 16}, {"0123456789abcdefg\xED\xA0\x80xyz", 23, 17},
        {"\xF0\x9F\x98\x80\xF0\x9F\x98\x80", 8, 8}, {"01234567\xC0\x80", 10, 8},
    };
    for (size_t i = 0; i < sizeof pre / sizeof pre[0]; i++) {
        size_t got = utf8_valid_prefix((const uint8_t *)pre[i].s, pre[i].n);
        check(got == pre[i].want, "utf8_valid_prefix case %zu: %zu, want %zu", i, got, pre[i].want);
    }
    group_done("utf8");
}

/* ---- NFC ---- */

static uint8_t age9[NCP]; /* 1 if assigned in Unicode <= 9.0 */

static int read_age(const char *ucd) {
    char path[4096], line[512];
    snprintf(path, sizeof path, "%s/DerivedAge.txt", ucd);
    FILE *f = fopen(path, "r");
    if (!check(f != NULL, "open %s", path)) return -1;
    while (fgets(line, sizeof line, f)) {
        unsigned lo, hi;
        int major, minor;
        if (line[0] == '#' || line[0] == '\n') continue;
        if (sscanf(line, "%x..%x ; %d.%d", &lo, &hi, &major, &minor) != 4) {
            if (sscanf(line, "%x ; %d.%d", &lo, &major, &minor) != 3) continue;
            hi = lo;
        }
        for (unsigned c = lo; c <= hi && c < NCP; c++) age9[c] = major < 9 || (major == 9 && minor == 0);
    }
    fclose(f);
    return 0;
}

/* Canonical mapping of cp from UnicodeData.txt (for the deltas' composites). */
static int canon_mapping(const char *ucd, uint32_t cp, uint32_t *out) {
    char path[4096], line[1024], key[16];
    snprintf(path, sizeof path, "%s/UnicodeData.txt", ucd);
    snprintf(key, sizeof key, "%04X;", cp);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    int n = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, strlen(key))) continue;
        char *p = line;
        for (int k = 0; k < 5 && p; k++) p = strchr(p, ';') ? strchr(p, ';') + 1 : NULL;
        unsigned a, b;
        if (p && sscanf(p, "%x %x;", &a, &b) == 2) out[0] = a, out[1] = b, n = 2;
        break;
    }
    fclose(f);
    return n;
}

static void test_nfc_examples(void) {
    struct { uint32_t in[6]; size_t nin; uint32_t want[6]; size_t nwant; const char *what; } ex[] = {
        {{'e', 0x301}, 2, {0xE9}, 1, "e + acute"},
        {{0xE9}, 1, {0xE9}, 1, "precomposed stays"},
        {{0x1100, 0x1161, 0x11A8}, 3, {0xAC01}, 1, "Hangul L+V+T"},
        {{0x1100, 0x1161}, 2, {0xAC00}, 1, "Hangul L+V"},
        {{0xAC00, 0x11A8}, 2, {0xAC01}, 1, "Hangul LV+T"},
        {{0xAC01, 0x11A8}, 2, {0xAC01, 0x11A8}, 2, "Hangul LVT+T"},
        {{0xAC00, 0x11A7}, 2, {0xAC00, 0x11A7}, 2, "U+11A7 is no trailing consonant"},
        {{'a', 0x301, 0x316}, 3, {0xE1, 0x316}, 2, "marks reordered (230, 220), then composed"},
        {{'a', 0x316, 0x301}, 3, {0xE1, 0x316}, 2, "marks in order"},
        {{'a', 0x305, 0x301}, 3, {'a', 0x305, 0x301}, 3, "same class blocks composition"},
        {{'q', 0x307, 0x323}, 3, {'q', 0x323, 0x307}, 3, "reordered without composition"},
        {{0x1E0A, 0x323}, 2, {0x1E0C, 0x307}, 2, "D dot above + dot below"},
        {{0x958}, 1, {0x915, 0x93C}, 2, "composition exclusion (Devanagari qa)"},
        {{0x915, 0x93C}, 2, {0x915, 0x93C}, 2, "excluded composite stays decomposed"},
        {{0x212B}, 1, {0xC5}, 1, "singleton: angstrom sign"},
        {{0x2126}, 1, {0x3A9}, 1, "singleton: ohm sign"},
        {{0x344}, 1, {0x308, 0x301}, 2, "non-starter decomposition"},
        {{0x301, 'e'}, 2, {0x301, 'e'}, 2, "leading mark"},
        {{'x', 0x301}, 2, {'x', 0x301}, 2, "no composite"},
        {{0xD9, 0x31B}, 2, {0x1EEA}, 1, "Latin-1 composite decomposed, reordered, recomposed"},
        {{'z', 0x14F, 0x323}, 3, {'z', 0x1ECD, 0x306}, 3, "o breve + dot below"},
        {{0x1F82}, 1, {0x1F82}, 1, "Greek 4-deep decomposition recomposes"},
        {{0x3B1, 0x313, 0x300, 0x345}, 4, {0x1F82}, 1, "Greek marks compose stepwise"},
    };
    for (size_t i = 0; i < sizeof ex / sizeof ex[0]; i++) check_nfc(ex[i].in, ex[i].nin, ex[i].want, ex[i].nwant, ex[i].what);

    /* Already-NFC text: returns 0 and leaves the output buffer alone. */
    char *out = (char *)"untouched";
    size_t outn = 12345, cap = 0;
    const char *ascii = "plain ASCII text, long enough for the 8-byte path";
    check(uni_nfc(ascii, strlen(ascii), &out, &outn, &cap) == 0 && outn == 12345 && cap == 0 &&
              !strcmp(out, "untouched"), "NFC text is not left alone");
    const char *mixed = "caf\xC3\xA9 \xED\x95\x9C\xEA\xB5\xAD\xEC\x96\xB4 \xE4\xB8\xAD\xE6\x96\x87 x\xCC\x81";
    check(uni_nfc(mixed, strlen(mixed), &out, &outn, &cap) == 0 && cap == 0, "NFC text (Maybe) is not left alone");
    check(uni_nfc("", 0, &out, &outn, &cap) == 0, "empty text");

    /* Changes in the middle of long text: untouched parts are copied exactly. */
    out = NULL, cap = 0;
    char in[4096], want[4096];
    size_t n = 0, nw = 0;
    for (int k = 0; k < 50; k++) {
        n += (size_t)sprintf(in + n, "word%d e\xCC\x81 \xE1\x84\x80\xE1\x85\xA1 ", k);
        nw += (size_t)sprintf(want + nw, "word%d \xC3\xA9 \xEA\xB0\x80 ", k);
    }
    int rc = uni_nfc(in, n, &out, &outn, &cap);
    check(rc == 1 && outn == nw && !memcmp(out, want, nw), "long mixed text");
    /* A segment longer than any local buffer: one base, 2000 marks in reverse order. */
    static uint32_t longin[2001], longwant[2000];
    longin[0] = 'a';
    for (int k = 0; k < 1000; k++) longin[1 + 2 * k] = 0x301, longin[2 + 2 * k] = 0x316; /* 230, 220 */
    /* Ordered: a, 1000 x 0316, 1000 x 0301; the first acute composes with a. */
    longwant[0] = 0xE1;
    for (int k = 0; k < 1000; k++) longwant[1 + k] = 0x316;
    for (int k = 0; k < 999; k++) longwant[1001 + k] = 0x301;
    static char lin[16384], lwant[16384];
    size_t ln = enc(longin, 2001, lin), lwn = enc(longwant, 2000, lwant), lo = 0;
    rc = uni_nfc(lin, ln, &out, &lo, &cap);
    check(rc == 1 && lo == lwn && !memcmp(out, lwant, lwn), "2000 marks in one segment");
    free(out);
    group_done("nfc examples");
}

static void test_deltas(const char *path, const char *ucd) {
    FILE *f = fopen(path, "r");
    if (!check(f != NULL, "open %s", path)) return;
    char line[256];
    int nentries = 0;
    while (fgets(line, sizeof line, f)) {
        char kind[32], what[64];
        unsigned x;
        if (line[0] == '#' || sscanf(line, "%31s U+%x", kind, &x) != 2) continue;
        nentries++;
        uint32_t self[1] = {x};
        snprintf(what, sizeof what, "%s U+%04X", kind, x);
        check_nfc(self, 1, self, 1, what); /* unassigned in 9.0: left as is */
        if (!strcmp(kind, "compose-no")) {
            /* Its canonical decomposition is not composed (where this UCD knows it). */
            uint32_t dm[2];
            if (canon_mapping(ucd, x, dm) == 2) check_nfc(dm, 2, dm, 2, what);
        } else {
            /* A starter: blocks a + acute from composing, and is not moved before a
             * mark of class 240 (the highest). */
            uint32_t s1[3] = {'a', x, 0x301}, s2[3] = {'x', 0x345, x};
            check_nfc(s1, 3, s1, 3, what);
            check_nfc(s2, 3, s2, 3, what);
        }
    }
    fclose(f);
    check(nentries == 175, "%s: %d entries, want 21 + 154", path, nentries);
    group_done("nfc deltas");
}

/* Parse "XXXX YYYY" code points; returns the count or -1. */
static int parse_cps(const char *s, uint32_t *out, int max) {
    int n = 0;
    for (;;) {
        char *end;
        unsigned long c = strtoul(s, &end, 16);
        if (end == s) break;
        if (n == max) return -1;
        out[n++] = (uint32_t)c, s = end;
    }
    return n;
}

static void test_normalization_txt(const char *ucd) {
    char path[4096], cmd[4200], line[2048];
    snprintf(path, sizeof path, "%s/NormalizationTest.txt.bz2", ucd);
    snprintf(cmd, sizeof cmd, "bunzip2 -c '%s'", path);
    FILE *f = popen(cmd, "r");
    if (!check(f != NULL, "run %s", cmd)) return;
    long used = 0, skipped = 0;
    static uint8_t in_part1[NCP];
    int part = -1;
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "@Part", 5)) part = atoi(line + 5);
        if (line[0] == '#' || line[0] == '@' || line[0] == '\n') continue;
        uint32_t col[5][32];
        int ncol[5], ok = 1;
        char *p = line;
        for (int k = 0; k < 5; k++) {
            char *semi = strchr(p, ';');
            if (!semi) { ok = 0; break; }
            *semi = 0;
            ncol[k] = parse_cps(p, col[k], 32);
            if (ncol[k] <= 0) ok = 0;
            p = semi + 1;
        }
        if (!check(ok, "NormalizationTest.txt: bad line")) continue;
        if (part == 1) in_part1[col[0][0]] = 1;
        int old = 1;
        for (int k = 0; k < 5; k++)
            for (int i = 0; i < ncol[k]; i++) old &= age9[col[k][i]];
        if (!old) {
            skipped++;
            continue;
        }
        used++;
        /* c2 == NFC(c1) == NFC(c2) == NFC(c3), c4 == NFC(c4) == NFC(c5) */
        char what[64];
        snprintf(what, sizeof what, "NormalizationTest part %d", part);
        for (int k = 0; k < 3; k++) check_nfc(col[k], (size_t)ncol[k], col[1], (size_t)ncol[1], what);
        for (int k = 3; k < 5; k++) check_nfc(col[k], (size_t)ncol[k], col[3], (size_t)ncol[3], what);
    }
    int st = pclose(f);
    check(st == 0 && used > 15000, "%s: bunzip2 status %d, %ld lines used", path, st, used);
    /* Code points not in part 1 are their own NFC. */
    for (uint32_t c = 0; c < NCP; c++) {
        if (!age9[c] || in_part1[c] || (c >= 0xD800 && c <= 0xDFFF)) continue;
        check_nfc(&c, 1, &c, 1, "not in part 1");
    }
    printf("# NormalizationTest.txt: %ld lines all <= Unicode 9.0 used, %ld newer skipped\n", used, skipped);
    group_done("nfc NormalizationTest");
}

int main(int argc, char **argv) {
    const char *json = argc > 1 ? argv[1] : "lib/data/unicode_classes.json";
    const char *deltas = argc > 2 ? argv[2] : "lib/data/nfc_unicode9_deltas.txt";
    const char *ucd = argc > 3 ? argv[3] : "/usr/share/unicode";
    setvbuf(stdout, NULL, _IOLBF, 0); /* keep "ok" lines and failures in order */
    test_class(json);
    test_utf8();
    test_nfc_examples();
    if (read_age(ucd) == 0) {
        test_deltas(deltas, ucd);
        test_normalization_txt(ucd);
    }
    if (nfails) {
        fprintf(stderr, "uni_test: %ld of %ld checks failed\n", nfails, nchecks);
        return 1;
    }
    printf("uni_test: all %ld checks passed\n", nchecks);
    return 0;
}
