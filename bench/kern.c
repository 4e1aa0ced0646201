/* kern: the matmul kernels alone, per weight scheme, at Qwen3-0.6B's shapes: decode (one row
 * of x) and prefill (rows of x at once), T threads. Prints GB/s of weights read and
 * G multiply-adds/s, the median of R runs. For finding where a forward pass spends its time,
 * not for comparing with peers (bench/llama.sh does that).
 *   cc -O2 -Ilib bench/kern.c build/release/libqwen.a -lcjson -lsodium -lpthread -lm -o kern
 *   ./kern [threads=2] [runs=5] [scheme]   (one scheme: bf16, bf16a, q8, q4, 8da4w or 8da8w)
 * bf16a is bf16's weights with x rounded to bf16 (kern_matmul_bx). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kern.h"
#include "quant.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void *amalloc(size_t n) {
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? (n + 63) / 64 * 64 : 64)) abort();
    return p;
}

/* A weight [out, in] of scheme s from f32 w; bytes read per pass in *bytes. */
static weight make(const char *s, const float *w, size_t in, size_t out, size_t *bytes) {
    if (!strcmp(s, "bf16") || !strcmp(s, "bf16a") || !strcmp(s, "f32")) {
        int bf = s[0] == 'b';
        void *d = amalloc(in * out * (bf ? 2 : 4));
        for (size_t i = 0; i < in * out; i++)
            if (bf) ((uint16_t *)d)[i] = quant_bf16(w[i]);
            else ((float *)d)[i] = w[i];
        *bytes = in * out * (bf ? 2 : 4);
        return (weight){bf ? ST_BF16 : ST_F32, d};
    }
    qweight *q = calloc(1, sizeof *q);
    q->in = in;
    if (!strcmp(s, "q8")) {
        int8_t *d = amalloc(in * out);
        float *sc = amalloc(out * 4);
        for (size_t o = 0; o < out; o++) quant_row_q8(d + o * in, sc + o, w + o * in, in);
        *q = (qweight){.q = WQ_Q8, .data = d, .scales = sc, .group = in, .in = in};
        *bytes = in * out + out * 4;
    } else if (!strcmp(s, "q4")) {
        uint8_t *d = amalloc(in * out / 2);
        uint16_t *sc = amalloc(out * in / 32 * 2);
        for (size_t o = 0; o < out; o++) quant_row_q4(d + o * in / 2, sc + o * in / 32, w + o * in, in, 32);
        *q = (qweight){.q = WQ_Q4, .data = d, .scales = sc, .group = 32, .in = in};
        *bytes = in * out / 2 + out * in / 32 * 2;
    } else if (!strcmp(s, "8da8w")) {
        int8_t *d = amalloc(in * out);
        float *sc = amalloc(out * 4);
        for (size_t o = 0; o < out; o++) quant_row_e8(d + o * in, sc + o, w + o * in, in);
        *q = (qweight){.q = WQ_8DA8W, .data = d, .scales = sc, .in = in};
        *bytes = in * out + out * 4;
    } else {
        uint8_t *d = amalloc(in * out / 2);
        float *sc = amalloc(out * in / 32 * 4);
        for (size_t o = 0; o < out; o++) quant_row_8da4w(d + o * in / 2, sc + o * in / 32, w + o * in, in);
        *q = (qweight){.q = WQ_8DA4W, .data = d, .scales = sc, .group = 32, .in = in};
        *bytes = in * out / 2 + out * in / 32 * 4;
    }
    return (weight){WQ_DTYPE(q->q), q};
}

int main(int argc, char **argv) {
    int T = argc > 1 ? atoi(argv[1]) : 2, R = argc > 2 ? atoi(argv[2]) : 5;
    char err[256];
    pool *p = pool_new(T, err, sizeof err);
    const kern_ops *k = kern_best();
    const char *schemes[] = {"bf16", "bf16a", "q8", "q4", "8da4w", "8da8w"};
    size_t nsch = sizeof schemes / sizeof *schemes, known = argc < 4;
    for (size_t s = 0; s < nsch; s++) known |= argc > 3 && !strcmp(argv[3], schemes[s]);
    if (!known) {
        fprintf(stderr, "kern: scheme '%s': not one of bf16, bf16a, q8, q4, 8da4w, 8da8w\n", argv[3]);
        return 2;
    }
    size_t shapes[][2] = {{1024, 3072}, {3072, 1024}, {1024, 151936}};
    size_t ns[] = {1, 64};
    printf("kernels %s, %d threads, median of %d\n", k->name, T, R);
    printf("%-6s %-14s %4s %9s %8s %9s\n", "scheme", "in x out", "n", "ms", "GB/s", "GMAC/s");
    for (size_t si = 0; si < 3; si++) {
        size_t in = shapes[si][0], out = shapes[si][1];
        float *w = amalloc(in * out * 4), *x = amalloc(64 * in * 4), *y = amalloc(64 * out * 4);
        srand(1);
        for (size_t i = 0; i < in * out; i++) w[i] = (float)rand() / RAND_MAX - 0.5f;
        for (size_t i = 0; i < 64 * in; i++) x[i] = (float)rand() / RAND_MAX - 0.5f;
        void *scratch = amalloc(kern_qscratch(64, in));
        for (size_t s = 0; s < nsch; s++) {
            if (argc > 3 && strcmp(argv[3], schemes[s])) continue;
            size_t bytes;
            weight wt = make(schemes[s], w, in, out, &bytes);
            for (size_t ni = 0; ni < 2; ni++) {
                size_t n = ns[ni];
                if (out > 100000 && n > 1) continue;
                double t[32];
                int reps = n == 1 ? 20 : 2;
                for (int r = 0; r < R && r < 32; r++) {
                    double t0 = now();
                    for (int i = 0; i < reps; i++)
                        if (!strcmp(schemes[s], "bf16a")) kern_matmul_bx(k, p, y, x, wt, NULL, n, in, out, scratch, 0);
                        else kern_matmul_w(k, p, y, x, wt, n, in, out, scratch);
                    t[r] = (now() - t0) / reps;
                }
                qsort(t, (size_t)(R < 32 ? R : 32), sizeof *t, cmp);
                double m = t[R / 2];
                printf("%-6s %5zux%-8zu %4zu %9.3f %8.2f %9.2f\n", schemes[s], in, out, n, m * 1e3, bytes / m / 1e9,
                       (double)n * in * out / m / 1e9);
                /* the quantized schemes' path: the weight repacked as panels (kern_pack), which
                 * prefill and decode both read */
                kern_packed *pk = weight_q(wt) != WQ_NONE ? kern_pack(k, wt.data, out) : NULL;
                if (pk) {
                    for (int r = 0; r < R && r < 32; r++) {
                        double t0 = now();
                        for (int i = 0; i < reps; i++) kern_matmul_wp(k, p, y, x, wt, pk, n, in, out, scratch, 0);
                        t[r] = (now() - t0) / reps;
                    }
                    qsort(t, (size_t)(R < 32 ? R : 32), sizeof *t, cmp);
                    m = t[R / 2];
                    printf("%-6s %5zux%-8zu %4zu %9.3f %8.2f %9.2f  (panels)\n", schemes[s], in, out, n, m * 1e3,
                           bytes / m / 1e9, (double)n * in * out / m / 1e9);
                    kern_packed_free(pk);
                }
            }
        }
        free(w), free(x), free(y), free(scratch);
    }
    pool_free(p);
    return 0;
}
