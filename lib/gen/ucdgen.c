/* ucdgen: writes ucd_tables.h, the Unicode tables lib/uni.c uses, at build time.
 *
 * usage: ucdgen UCD_DIR CLASSES_JSON > ucd_tables.h
 *
 * Inputs: Debian's unicode-data (UnicodeData.txt, DerivedAge.txt,
 * CompositionExclusions.txt, DerivedNormalizationProps.txt) and the reference
 * regex's classes (CLASSES_JSON); nfc_unicode9_deltas.txt is read from the
 * directory of CLASSES_JSON.
 *
 * Key decisions:
 *  - NFC is the reference's Unicode 9.0 NFC: from the newer UnicodeData.txt we keep
 *    only code points whose DerivedAge is <= 9.0 (Unicode's stability policy keeps
 *    their decompositions, combining classes and exclusions unchanged), everything
 *    newer is unassigned: no decomposition, no composition, ccc 0.
 *  - The derivation is checked before anything is written, and any mismatch fails the
 *    build: NFC_QC and Full_Composition_Exclusion against DerivedNormalizationProps
 *    (restricted to <= 9.0), and every difference between the file's Unicode and 9.0
 *    against the deltas file probed from the reference, both ways.
 *  - Lookups are two-level tables (block index -> deduplicated block), block size
 *    chosen for the smallest total; the class table also gets a direct table for
 *    U+0000..U+00FF. Decompositions (full, recursive) and compositions are sorted
 *    arrays searched only on the slow path. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NCP 0x110000
#define MAXDM 4 /* longest full canonical decomposition (checked) */

enum { QC_YES = 0, QC_MAYBE = 1, QC_NO = 2 };
enum { CLS_L = 1, CLS_N = 2, CLS_S = 4 }; /* = uni.h's UNI_L, UNI_N, UNI_S */

/* Hangul syllable algorithm constants (Unicode chapter 3.12). */
enum { S_BASE = 0xAC00, L_BASE = 0x1100, V_BASE = 0x1161, T_BASE = 0x11A7,
       L_COUNT = 19, V_COUNT = 21, T_COUNT = 28, S_COUNT = L_COUNT * V_COUNT * T_COUNT };

static const char *prog = "ucdgen";

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

/* Per code point facts, as read (15.0) and as derived (9.0). */
static uint8_t age9[NCP];            /* 1 if assigned in Unicode <= 9.0 */
static uint8_t assigned[NCP];        /* 1 if in DerivedAge at all */
static uint8_t ccc15[NCP];
static uint32_t dm15[NCP][2];        /* canonical mapping: up to 2 code points */
static uint8_t dmlen15[NCP];
static uint8_t excl_listed[NCP];     /* CompositionExclusions.txt */
static uint8_t dnp_fce[NCP];         /* DerivedNormalizationProps: Full_Composition_Exclusion */
static uint8_t dnp_qc[NCP];          /* DerivedNormalizationProps: NFC_QC */
static uint8_t cls[NCP];

static FILE *open_in(const char *dir, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (!f) die("open %s: %s", path, strerror(errno));
    return f;
}

/* Parse "XXXX" or "XXXX..YYYY" at s; returns 0 on success. */
static int parse_range(const char *s, uint32_t *lo, uint32_t *hi) {
    char *end;
    unsigned long a = strtoul(s, &end, 16);
    if (end == s) return -1;
    unsigned long b = a;
    if (end[0] == '.' && end[1] == '.') {
        const char *t = end + 2;
        b = strtoul(t, &end, 16);
        if (end == t) return -1;
    }
    if (a > b || b >= NCP) return -1;
    *lo = (uint32_t)a, *hi = (uint32_t)b;
    return 0;
}

static void read_unicode_data(const char *dir) {
    FILE *f = open_in(dir, "UnicodeData.txt");
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        char *fld[15] = {0};
        int k = 0;
        for (char *p = line; k < 15; k++) {
            fld[k] = p;
            char *semi = strchr(p, ';');
            if (!semi) { k++; break; }
            *semi = 0, p = semi + 1;
        }
        if (k < 6) die("UnicodeData.txt: short line");
        uint32_t cp = (uint32_t)strtoul(fld[0], NULL, 16);
        if (cp >= NCP) die("UnicodeData.txt: bad code point %s", fld[0]);
        ccc15[cp] = (uint8_t)atoi(fld[3]);
        /* Compatibility mappings start with <tag>: NFC ignores them. */
        if (fld[5][0] && fld[5][0] != '<') {
            char *p = fld[5], *end;
            int m = 0;
            for (;;) {
                unsigned long c = strtoul(p, &end, 16);
                if (end == p) break;
                if (m == 2) die("UnicodeData.txt: U+%04X: canonical mapping longer than 2", cp);
                dm15[cp][m++] = (uint32_t)c;
                p = end;
            }
            dmlen15[cp] = (uint8_t)m;
        }
        n++;
    }
    fclose(f);
    if (n < 30000) die("UnicodeData.txt: only %d lines", n);
}

static void read_age(const char *dir) {
    FILE *f = open_in(dir, "DerivedAge.txt");
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n') continue;
        uint32_t lo, hi;
        char *semi = strchr(line, ';');
        if (!semi || parse_range(line, &lo, &hi)) die("DerivedAge.txt: bad line: %s", line);
        int major = 0, minor = 0;
        if (sscanf(semi + 1, " %d.%d", &major, &minor) != 2) die("DerivedAge.txt: bad age: %s", line);
        int old = major < 9 || (major == 9 && minor == 0);
        for (uint32_t c = lo; c <= hi; c++) assigned[c] = 1, age9[c] = (uint8_t)old;
    }
    fclose(f);
}

static void read_exclusions(const char *dir) {
    FILE *f = open_in(dir, "CompositionExclusions.txt");
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n') continue;
        uint32_t lo, hi;
        if (parse_range(line, &lo, &hi)) die("CompositionExclusions.txt: bad line: %s", line);
        for (uint32_t c = lo; c <= hi; c++) excl_listed[c] = 1;
    }
    fclose(f);
}

static void read_norm_props(const char *dir) {
    FILE *f = open_in(dir, "DerivedNormalizationProps.txt");
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n') continue;
        uint32_t lo, hi;
        char prop[64], val[8] = "";
        char *semi = strchr(line, ';');
        if (!semi || parse_range(line, &lo, &hi)) continue;
        if (sscanf(semi + 1, " %63[A-Za-z_] ; %7[A-Za-z]", prop, val) < 1) continue;
        for (uint32_t c = lo; c <= hi; c++) {
            if (!strcmp(prop, "Full_Composition_Exclusion")) dnp_fce[c] = 1;
            else if (!strcmp(prop, "NFC_QC")) dnp_qc[c] = val[0] == 'N' ? QC_NO : QC_MAYBE;
        }
    }
    fclose(f);
}

static void class_ranges(cJSON *root, const char *key, uint8_t bit) {
    cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) == 0) die("classes: no array \"%s\"", key);
    cJSON *r;
    cJSON_ArrayForEach(r, arr) {
        cJSON *a = cJSON_GetArrayItem(r, 0), *b = cJSON_GetArrayItem(r, 1);
        if (!cJSON_IsString(a) || !cJSON_IsString(b)) die("classes: \"%s\": bad range", key);
        unsigned long lo = strtoul(a->valuestring, NULL, 16), hi = strtoul(b->valuestring, NULL, 16);
        if (lo > hi || hi >= NCP) die("classes: \"%s\": bad range %s..%s", key, a->valuestring, b->valuestring);
        for (unsigned long c = lo; c <= hi; c++) cls[c] |= bit;
    }
}

static long read_classes(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) die("open %s: %s", path, strerror(errno));
    static char text[1 << 22];
    size_t n = fread(text, 1, sizeof text - 1, f);
    if (ferror(f) || !feof(f)) die("read %s: error or larger than %zu bytes", path, sizeof text);
    fclose(f);
    text[n] = 0;
    cJSON *root = cJSON_Parse(text);
    if (!root) die("%s: not JSON", path);
    class_ranges(root, "L", CLS_L);
    class_ranges(root, "N", CLS_N);
    class_ranges(root, "S", CLS_S);
    cJSON *cnt = cJSON_GetObjectItemCaseSensitive(root, "nfc_changes_single_codepoint_count");
    long count = cJSON_IsNumber(cnt) ? (long)cnt->valuedouble : -1;
    cJSON_Delete(root);
    return count;
}

/* ---- Derivation: Unicode 9.0 NFC data ---- */

static uint8_t ccc9[NCP];
static uint32_t full9[NCP][MAXDM]; /* full canonical decomposition (empty: none) */
static uint8_t fulllen9[NCP];
static uint8_t fce9[NCP];          /* Full_Composition_Exclusion, 9.0 */
static uint8_t qc9[NCP];
static uint8_t second9[NCP];       /* may compose with a preceding character */

typedef struct {
    uint32_t a, b, c; /* a + b -> c */
} pair;
static pair pairs9[NCP / 64], pairs15[NCP / 64];
static int npairs9, npairs15;

static void decompose(uint32_t cp, uint32_t *out, int *n) {
    if (!dmlen15[cp]) {
        if (*n == MAXDM) die("U+%04X: full decomposition longer than %d", cp, MAXDM);
        out[(*n)++] = cp;
        return;
    }
    for (int i = 0; i < dmlen15[cp]; i++) decompose(dm15[cp][i], out, n);
}

/* Primary composites of a Unicode version (ccc: its combining classes; use_age9:
 * only code points of 9.0): canonical pairs that are not fully excluded. */
static int composites(pair *out, const uint8_t *ccc, int use_age9) {
    int n = 0;
    for (uint32_t c = 0; c < NCP; c++) {
        if (dmlen15[c] != 2 || (use_age9 && !age9[c])) continue;
        if (excl_listed[c] || ccc[c] != 0 || ccc[dm15[c][0]] != 0) continue; /* non-starter decomposition */
        out[n++] = (pair){dm15[c][0], dm15[c][1], c};
    }
    return n;
}

static void derive(void) {
    for (uint32_t c = 0; c < NCP; c++) {
        if (!age9[c]) continue;
        ccc9[c] = ccc15[c];
        for (int i = 0; i < dmlen15[c]; i++)
            if (!age9[dm15[c][i]]) die("U+%04X (<= 9.0) maps to U+%04X (> 9.0)", c, dm15[c][i]);
        if (dmlen15[c]) {
            int n = 0;
            decompose(c, full9[c], &n);
            fulllen9[c] = (uint8_t)n;
        }
    }
    for (uint32_t c = 0; c < NCP; c++) {
        if (!age9[c] || !dmlen15[c]) continue;
        /* Full composition exclusion = listed + singletons + non-starter decompositions. */
        fce9[c] = excl_listed[c] || dmlen15[c] == 1 || ccc9[c] != 0 || ccc9[dm15[c][0]] != 0;
    }
    npairs9 = composites(pairs9, ccc9, 1);
    npairs15 = composites(pairs15, ccc15, 0);
    for (int i = 0; i < npairs9; i++) second9[pairs9[i].b] = 1;
    for (uint32_t c = 0; c < NCP; c++) {
        int hangul_second = (c >= V_BASE && c < V_BASE + V_COUNT) || (c > T_BASE && c < T_BASE + T_COUNT);
        if (hangul_second) second9[c] = 1;
        qc9[c] = fce9[c] ? QC_NO : second9[c] ? QC_MAYBE : QC_YES;
    }
}

/* ---- Checks: any failure stops the build ---- */

static int nfail;
static void fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (nfail++ < 20) {
        fprintf(stderr, "%s: check failed: ", prog);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
    }
    va_end(ap);
}

static void check_props(long single_changes) {
    long nno = 0;
    for (uint32_t c = 0; c < NCP; c++) {
        if (!age9[c]) continue;
        if (fce9[c] != dnp_fce[c]) fail("U+%04X: Full_Composition_Exclusion %d, file says %d", c, fce9[c], dnp_fce[c]);
        if (qc9[c] != dnp_qc[c]) fail("U+%04X: NFC_QC %d, file says %d", c, qc9[c], dnp_qc[c]);
        nno += qc9[c] == QC_NO;
        /* uni.c starts a normalization segment at any ccc 0, NFC_QC=Yes code point: that
         * needs its decomposition to begin with a starter that cannot compose backwards. */
        if (ccc9[c] == 0 && qc9[c] == QC_YES && fulllen9[c] &&
            (ccc9[full9[c][0]] != 0 || qc9[full9[c][0]] != QC_YES))
            fail("U+%04X: boundary code point whose decomposition starts with U+%04X", c, full9[c][0]);
    }
    /* A single code point changes under NFC exactly when it is NFC_QC=No. */
    if (single_changes >= 0 && nno != single_changes)
        fail("%ld code points change under NFC, classes file says %ld", nno, single_changes);
}

static void check_deltas(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) die("open %s: %s", path, strerror(errno));
    static uint8_t listed_compose[NCP], listed_ccc[NCP];
    static uint8_t comp9[NCP], comp15[NCP];
    for (int i = 0; i < npairs9; i++) comp9[pairs9[i].c] = 1;
    for (int i = 0; i < npairs15; i++) comp15[pairs15[i].c] = 1;
    char line[256];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        char kind[32];
        unsigned cp;
        if (line[0] == '#' || line[0] == '\n') continue;
        if (sscanf(line, "%31s U+%x", kind, &cp) != 2 || cp >= NCP) die("%s: bad line: %s", path, line);
        if (!strcmp(kind, "compose-no")) listed_compose[cp] = 1;
        else if (!strcmp(kind, "ccc0")) listed_ccc[cp] = 1;
        else die("%s: unknown kind %s", path, kind);
        n++;
    }
    fclose(f);
    if (n == 0) die("%s: no entries", path);
    for (uint32_t c = 0; c < NCP; c++) {
        if (listed_compose[c]) {
            if (comp9[c]) fail("U+%04X: listed compose-no, but composes in 9.0 tables", c);
            if (assigned[c] && !comp15[c]) fail("U+%04X: listed compose-no, but is no primary composite", c);
        } else if (comp15[c] && !comp9[c]) {
            fail("U+%04X: composes in current Unicode, not in 9.0, and is not listed", c);
        }
        if (listed_ccc[c]) {
            if (ccc9[c] != 0) fail("U+%04X: listed ccc0, has ccc %d in 9.0 tables", c, ccc9[c]);
            if (assigned[c] && ccc15[c] == 0) fail("U+%04X: listed ccc0, but has ccc 0 anyway", c);
        } else if (ccc15[c] != ccc9[c]) {
            fail("U+%04X: ccc %d in current Unicode, %d in 9.0, and is not listed", c, ccc15[c], ccc9[c]);
        }
    }
}

/* ---- Output ---- */

/* Emit a two-level table for v[0..NCP): NAME_stage1[cp >> SHIFT] is a block number,
 * NAME_stage2[block << SHIFT | (cp & mask)] the value. The shift with the smallest
 * total size wins. */
static void emit_two_level(const char *name, const uint8_t *v) {
    static uint16_t best_s1[NCP], s1[NCP];
    static uint8_t best_s2[NCP], s2[NCP];
    size_t best_size = SIZE_MAX, best_nb = 0;
    int best_shift = 0;
    for (int shift = 4; shift <= 10; shift++) {
        size_t bs = (size_t)1 << shift, nblk = NCP >> shift, nb = 0;
        for (size_t i = 0; i < nblk; i++) {
            const uint8_t *blk = v + i * bs;
            size_t j;
            for (j = 0; j < nb; j++)
                if (!memcmp(s2 + j * bs, blk, bs)) break;
            if (j == nb) memcpy(s2 + nb++ * bs, blk, bs);
            s1[i] = (uint16_t)j;
        }
        if (nb > 65535) continue;
        size_t size = nblk * (nb <= 256 ? 1 : 2) + nb * bs;
        if (size < best_size) {
            best_size = size, best_shift = shift, best_nb = nb;
            memcpy(best_s1, s1, nblk * sizeof *s1);
            memcpy(best_s2, s2, nb * bs);
        }
    }
    size_t nblk = NCP >> best_shift, n2 = best_nb << best_shift;
    printf("/* %s: %zu bytes */\n#define %s_SHIFT %d\n", name, best_size, name, best_shift);
    printf("static const %s %s_stage1[%zu] = {", best_nb <= 256 ? "uint8_t" : "uint16_t", name, nblk);
    for (size_t i = 0; i < nblk; i++) printf("%s%u,", i % 24 ? "" : "\n", best_s1[i]);
    printf("\n};\nstatic const uint8_t %s_stage2[%zu] = {", name, n2);
    for (size_t i = 0; i < n2; i++) printf("%s%u,", i % 32 ? "" : "\n", best_s2[i]);
    printf("\n};\n\n");
}

static int cmp_pair(const void *x, const void *y) {
    const pair *a = x, *b = y;
    uint64_t ka = (uint64_t)a->a << 21 | a->b, kb = (uint64_t)b->a << 21 | b->b;
    return ka < kb ? -1 : ka > kb;
}

static void emit(void) {
    printf("/* Generated by lib/gen/ucdgen.c from Debian's unicode-data and the reference\n"
           " * tokenizer's regex classes. Do not edit. */\n\n");

    printf("/* Regex class bits (1 = \\p{L}, 2 = \\p{N}, 4 = \\s) of U+0000..U+00FF. */\n");
    printf("static const uint8_t ucd_class_latin[256] = {");
    for (int i = 0; i < 256; i++) printf("%s%u,", i % 32 ? "" : "\n", cls[i]);
    printf("\n};\n\n");
    emit_two_level("ucd_class", cls);

    /* NFC property byte: NFC_QC in bits 6-7, index into ucd_ccc_value in bits 0-5. */
    int ccc_index[256], nccc = 0;
    uint8_t ccc_value[64];
    memset(ccc_index, -1, sizeof ccc_index);
    ccc_index[0] = nccc, ccc_value[nccc++] = 0;
    static uint8_t prop[NCP];
    uint32_t trivial_below = NCP;
    for (uint32_t c = 0; c < NCP; c++) {
        if (ccc_index[ccc9[c]] < 0) {
            if (nccc == 64) die("more than 64 combining classes");
            ccc_index[ccc9[c]] = nccc, ccc_value[nccc++] = ccc9[c];
        }
        prop[c] = (uint8_t)(qc9[c] << 6 | ccc_index[ccc9[c]]);
        if (prop[c] && c < trivial_below) trivial_below = c;
    }
    printf("/* NFC (Unicode 9.0): quick check values, and code points below\n"
           " * UCD_NFC_TRIVIAL_BELOW are all NFC_QC=Yes with ccc 0. */\n");
    printf("enum { UCD_QC_YES = %d, UCD_QC_MAYBE = %d, UCD_QC_NO = %d };\n", QC_YES, QC_MAYBE, QC_NO);
    printf("#define UCD_NFC_TRIVIAL_BELOW 0x%04X\n", trivial_below);
    printf("static const uint8_t ucd_ccc_value[64] = {");
    for (int i = 0; i < nccc; i++) printf("%s%u,", i % 16 ? "" : "\n", ccc_value[i]);
    printf("\n};\n/* property byte: NFC_QC << 6 | index into ucd_ccc_value */\n");
    emit_two_level("ucd_nfc", prop);

    /* Full decompositions, sorted by code point (Hangul syllables are algorithmic). */
    int nd = 0, pool = 0;
    for (uint32_t c = 0; c < NCP; c++) nd += fulllen9[c] != 0;
    printf("#define UCD_DECOMP_MAX %d\n#define UCD_NDECOMP %d\n", MAXDM, nd);
    printf("static const uint32_t ucd_decomp_cp[%d] = {", nd);
    int k = 0;
    for (uint32_t c = 0; c < NCP; c++)
        if (fulllen9[c]) printf("%s0x%X,", k++ % 12 ? "" : "\n", c);
    printf("\n};\n/* ucd_decomp_pool[ucd_decomp_off[i] .. ucd_decomp_off[i+1]) */\n");
    printf("static const uint16_t ucd_decomp_off[%d] = {", nd + 1);
    k = 0;
    for (uint32_t c = 0; c < NCP; c++)
        if (fulllen9[c]) printf("%s%d,", k++ % 16 ? "" : "\n", pool), pool += fulllen9[c];
    printf("%d\n};\nstatic const uint32_t ucd_decomp_pool[%d] = {", pool, pool);
    k = 0;
    for (uint32_t c = 0; c < NCP; c++)
        for (int i = 0; i < fulllen9[c]; i++) printf("%s0x%X,", k++ % 12 ? "" : "\n", full9[c][i]);
    printf("\n};\n\n");

    qsort(pairs9, (size_t)npairs9, sizeof *pairs9, cmp_pair);
    printf("/* Primary composites: ucd_comp_key[i] = first << 21 | second, sorted. */\n");
    printf("#define UCD_NCOMP %d\nstatic const uint64_t ucd_comp_key[%d] = {", npairs9, npairs9);
    for (int i = 0; i < npairs9; i++)
        printf("%s0x%llX,", i % 6 ? "" : "\n", (unsigned long long)((uint64_t)pairs9[i].a << 21 | pairs9[i].b));
    printf("\n};\nstatic const uint32_t ucd_comp_val[%d] = {", npairs9);
    for (int i = 0; i < npairs9; i++) printf("%s0x%X,", i % 12 ? "" : "\n", pairs9[i].c);
    printf("\n};\n");
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s UCD_DIR CLASSES_JSON > ucd_tables.h\n", prog);
        return 2;
    }
    read_unicode_data(argv[1]);
    read_age(argv[1]);
    read_exclusions(argv[1]);
    read_norm_props(argv[1]);
    long single_changes = read_classes(argv[2]);

    char deltas[4096];
    const char *slash = strrchr(argv[2], '/');
    int dirlen = slash ? (int)(slash - argv[2]) : 1;
    snprintf(deltas, sizeof deltas, "%.*s/nfc_unicode9_deltas.txt", dirlen, slash ? argv[2] : ".");

    derive();
    check_props(single_changes);
    check_deltas(deltas);
    if (nfail) die("%d checks failed: Unicode 9.0 NFC tables not written", nfail);
    emit();
    if (fflush(stdout) || ferror(stdout)) die("write: %s", strerror(errno));
    return 0;
}
