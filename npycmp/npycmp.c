/* npycmp: compare two .npy streams record by record, to see where two stages (or two
 * backends) part ways.
 *
 * Record i of A is compared with record i of B: same shape required, any numeric dtype
 * on either side (float32, float16, bfloat16 as '<u2', int32), all compared as doubles.
 * Per record and over all records: max and mean |A-B|, RMSE, cosine similarity, and how
 * many rows of the last dimension have the same argmax (first index on ties). --tol
 * makes it a check: exit 1 if any record's cosine is below COS.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "npy.h"
#include "util.h"

static const char *prog = "npycmp";

static const char usage[] =
    "usage: npycmp [--tol COS] A.npy B.npy\n"
    "Compare two streams of .npy records (float32, float16, '<u2' bfloat16, int32) record by\n"
    "record: max and mean |A-B|, RMSE, cosine similarity and the argmax match over the rows\n"
    "of the last dimension, per record and overall. One of A, B may be '-' (stdin).\n"
    "\n"
    "      --tol COS   exit 1 if any record's cosine similarity is below COS\n"
    "  -h, --help      this help\n";

/* Sums that make every statistic, per record and overall. */
typedef struct {
    double maxd, sumd, sumd2, ab, aa, bb;
    size_t n, rows, argmax_same;
} stats;

static double elem(const npy *a, size_t i) {
    const uint8_t *p = a->data;
    switch (a->dtype) {
    case NPY_F32: {
        float f;
        memcpy(&f, p + 4 * i, 4);
        return f;
    }
    case NPY_I32: return (double)(int32_t)le32(p + 4 * i);
    case NPY_BF16: {
        uint32_t b = (uint32_t)le16(p + 2 * i) << 16;
        float f;
        memcpy(&f, &b, 4);
        return f;
    }
    case NPY_F16: {
        uint16_t h = le16(p + 2 * i);
        int e = h >> 10 & 31, m = h & 1023;
        double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(m + 1024, e - 25);
        return h >> 15 ? -v : v;
    }
    }
    return 0;
}

static void add(stats *s, const npy *a, const npy *b) {
    size_t last = a->ndim ? a->shape[a->ndim - 1] : 1;
    for (size_t r = 0; last && r < a->count / last; r++) {
        size_t ia = 0, ib = 0;
        double ma = -INFINITY, mb = -INFINITY;
        for (size_t j = 0; j < last; j++) {
            size_t i = r * last + j;
            double x = elem(a, i), y = elem(b, i), d = fabs(x - y);
            if (d > s->maxd || d != d) s->maxd = d; /* a NaN difference shows as NaN */
            s->sumd += d, s->sumd2 += d * d;
            s->ab += x * y, s->aa += x * x, s->bb += y * y;
            if (x > ma) ma = x, ia = j;
            if (y > mb) mb = y, ib = j;
        }
        s->rows++;
        s->argmax_same += ia == ib;
    }
    s->n += a->count;
}

static double cosine(const stats *s) {
    if (s->aa == 0 && s->bb == 0) return 1; /* two zero vectors agree */
    if (s->aa == 0 || s->bb == 0) return 0;
    return s->ab / sqrt(s->aa * s->bb);
}

static void row(const char *label, const char *shape, const stats *s) {
    double n = s->n ? (double)s->n : 1;
    printf("%-6s %-16s %-11.4e %-11.4e %-11.4e %-12.9f %zu/%zu\n", label, shape, s->maxd, s->sumd / n,
           sqrt(s->sumd2 / n), cosine(s), s->argmax_same, s->rows);
}

static void shape_str(const npy *a, char *out, size_t len) {
    size_t n = (size_t)snprintf(out, len, "(");
    for (int i = 0; i < a->ndim && n < len; i++)
        n += (size_t)snprintf(out + n, len - n, "%zu%s", a->shape[i], i + 1 < a->ndim ? "," : "");
    if (n < len) snprintf(out + n, len - n, ")");
}

static FILE *open_in(const char *path) {
    if (!strcmp(path, "-")) return stdin;
    FILE *f = fopen(path, "rb");
    if (!f) fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
    return f;
}

int main(int argc, char **argv) {
    static const struct option longs[] = {{"tol", required_argument, 0, 't'}, {"help", no_argument, 0, 'h'}, {0}};
    double tol = -2; /* below any cosine: no check */
    int c;
    while ((c = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
        if (c == 'h') {
            fputs(usage, stdout);
            return EXIT_OK;
        }
        if (c != 't') {
            fputs(usage, stderr);
            return EXIT_USAGE;
        }
        char *e;
        errno = 0;
        tol = strtod(optarg, &e);
        if (errno || e == optarg || *e || !(tol >= -1 && tol <= 1)) {
            fprintf(stderr, "%s: --tol: '%s' is not a cosine between -1 and 1\n", prog, optarg);
            return EXIT_USAGE;
        }
    }
    if (argc - optind != 2) {
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    const char *na = argv[optind], *nb = argv[optind + 1];
    if (!strcmp(na, "-") && !strcmp(nb, "-")) {
        fprintf(stderr, "%s: only one of A and B can be stdin\n", prog);
        return EXIT_USAGE;
    }
    FILE *fa = open_in(na), *fb = fa ? open_in(nb) : NULL;
    if (!fa || !fb) {
        if (fa && fa != stdin) fclose(fa);
        return EXIT_DATA;
    }
    npy a = {0}, b = {0};
    stats all = {0};
    char err[512], shape[64];
    int rc = EXIT_OK, below = 0;
    size_t rec = 0;
    printf("%-6s %-16s %-11s %-11s %-11s %-12s %s\n", "record", "shape", "max|d|", "mean|d|", "rmse", "cosine",
           "argmax");
    for (;; rec++) {
        int ga = npy_read(fa, &a, 0, err, sizeof err);
        if (ga < 0) {
            fprintf(stderr, "%s: %s: record %zu: %s\n", prog, na, rec, err);
            rc = EXIT_DATA;
            break;
        }
        int gb = npy_read(fb, &b, 0, err, sizeof err);
        if (gb < 0) {
            fprintf(stderr, "%s: %s: record %zu: %s\n", prog, nb, rec, err);
            rc = EXIT_DATA;
            break;
        }
        if (!ga || !gb) {
            if (ga != gb)
                fprintf(stderr, "%s: %s has %zu records, %s has more\n", prog, ga ? nb : na, rec, ga ? na : nb);
            rc = ga != gb ? EXIT_DATA : rc;
            break;
        }
        if (a.ndim != b.ndim || memcmp(a.shape, b.shape, (size_t)a.ndim * sizeof *a.shape)) {
            char sb[64];
            shape_str(&a, shape, sizeof shape);
            shape_str(&b, sb, sizeof sb);
            fprintf(stderr, "%s: record %zu: shapes differ: %s in %s, %s in %s\n", prog, rec, shape, na, sb, nb);
            rc = EXIT_DATA;
            break;
        }
        stats s = {0};
        add(&s, &a, &b);
        add(&all, &a, &b);
        char label[24];
        snprintf(label, sizeof label, "%zu", rec);
        shape_str(&a, shape, sizeof shape);
        row(label, shape, &s);
        if (!(cosine(&s) >= tol)) below++;
    }
    if (rc == EXIT_OK) {
        snprintf(shape, sizeof shape, "%zu records", rec);
        row("all", shape, &all);
        if (below) {
            fprintf(stderr, "%s: %d of %zu records have cosine below %g\n", prog, below, rec, tol);
            rc = EXIT_DATA;
        }
    }
    npy_free(&a), npy_free(&b);
    if (fa != stdin) fclose(fa);
    if (fb != stdin) fclose(fb);
    if (fflush(stdout) || ferror(stdout)) {
        fprintf(stderr, "%s: stdout: %s\n", prog, strerror(errno));
        return EXIT_DATA;
    }
    return rc;
}
