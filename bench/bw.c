/* bw: the machine's memory read bandwidth, the ceiling of decode speed: T threads each
 * sum their slice of a 1 GiB buffer (far larger than any cache), best of 5 passes.
 *   cc -O2 -march=native -pthread bench/bw.c -o bw && ./bw [threads]   -> GB/s on stdout */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { SIZE = 1 << 30 };
static double *buf;
static int nthreads;

static void *sum(void *arg) {
    size_t t = (size_t)arg, n = SIZE / sizeof(double), lo = n * t / nthreads, hi = n * (t + 1) / nthreads;
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t i = lo; i + 4 <= hi; i += 4) s0 += buf[i], s1 += buf[i + 1], s2 += buf[i + 2], s3 += buf[i + 3];
    double *out = malloc(sizeof *out);
    *out = s0 + s1 + s2 + s3;
    return out;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    nthreads = argc > 1 ? atoi(argv[1]) : 2;
    if (nthreads < 1 || nthreads > 256) return 2;
    buf = malloc(SIZE);
    if (!buf) return 1;
    memset(buf, 1, SIZE);
    double best = 0, check = 0;
    for (int pass = 0; pass < 5; pass++) {
        pthread_t th[256];
        double t0 = now();
        for (int t = 0; t < nthreads; t++) pthread_create(&th[t], NULL, sum, (void *)(size_t)t);
        for (int t = 0; t < nthreads; t++) {
            void *r;
            pthread_join(th[t], &r);
            check += *(double *)r;
            free(r);
        }
        double gbs = SIZE / (now() - t0) / 1e9;
        if (gbs > best) best = gbs;
    }
    printf("%.2f\n", best + check * 0); /* check keeps the sums alive */
    return 0;
}
