/* sample_test: lib/sample against HF transformers, and the draw's statistics.
 *
 *   sample_test fixture FILE      every case of t/fixtures/sample_hf.jsonl: the penalized
 *                                 logits, the surviving ids and their probabilities
 *                                 (1e-6), the greedy id
 *   sample_test stats             20k draws against the distribution; same seed, same ids
 *   sample_test stream DIR N V S  N logits records (float32 (1,V) and (2,V)) to DIR/all.npy
 *                                 and DIR/rN.npy, the history to DIR/hist.txt, and the ids
 *                                 the lib chooses with seed S to stdout, for t/sample.bats
 *                                 to compare with the program
 * Logits are regenerated from the case's seed exactly as t/gen_sample_fixture.py does. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "npy.h"
#include "sample.h"
#include "util.h"

static int fails;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            fails++;                                                                               \
        }                                                                                          \
    } while (0)

/* splitmix64's i-th output (i from 1), as numpy computes it in the generator script. */
static uint64_t mix(uint64_t seed, uint64_t i) {
    uint64_t z = i * 0x9e3779b97f4a7c15ull + seed;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* make_logits of the generator: exact in float32. */
static void make_logits(float *l, size_t V, uint64_t seed, float scale, int ties, const cJSON *boosts) {
    for (size_t i = 0; i < V; i++) {
        uint64_t u = mix(seed, i + 1);
        l[i] = ties ? (float)(u >> 60) * 0.5f : ((float)(u >> 40) * 0x1p-23f - 1.0f) * scale;
    }
    const cJSON *b;
    cJSON_ArrayForEach(b, boosts) l[cJSON_GetArrayItem(b, 0)->valueint] += (float)cJSON_GetArrayItem(b, 1)->valuedouble;
}

static double num(const cJSON *c, const char *k) { return cJSON_GetObjectItemCaseSensitive(c, k)->valuedouble; }

static size_t ids_of(const cJSON *a, int32_t *out) {
    size_t n = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, a) out[n++] = v->valueint;
    return n;
}

static void one_case(const cJSON *c) {
    const char *name = cJSON_GetObjectItemCaseSensitive(c, "name")->valuestring;
    size_t V = (size_t)num(c, "vocab");
    float *l = malloc(V * sizeof *l), *l0 = malloc(V * sizeof *l0);
    int32_t *prompt = malloc(4096 * sizeof *prompt), *gen = malloc(4096 * sizeof *gen);
    size_t np = ids_of(cJSON_GetObjectItemCaseSensitive(c, "prompt"), prompt);
    size_t ng = ids_of(cJSON_GetObjectItemCaseSensitive(c, "generated"), gen);
    make_logits(l0, V, (uint64_t)num(c, "seed"), (float)num(c, "scale"),
                cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "ties")),
                cJSON_GetObjectItemCaseSensitive(c, "boosts"));

    sample_opts o = {.temp = (float)num(c, "temp"), .top_k = (int)num(c, "top_k"),
                     .top_p = (float)num(c, "top_p"), .min_p = (float)num(c, "min_p"),
                     .rep_penalty = (float)num(c, "rep"), .presence = (float)num(c, "presence"),
                     .frequency = (float)num(c, "frequency"), .seed = 1};
    const cJSON *pc = cJSON_GetObjectItemCaseSensitive(c, "post_config");
    if (pc) { /* through the loader, so the mapping itself is what is tested */
        char path[] = "/tmp/sample_test.XXXXXX", err[256];
        int fd = mkstemp(path);
        char *txt = cJSON_PrintUnformatted(pc);
        FILE *f = fdopen(fd, "w");
        fputs(txt, f);
        fclose(f);
        free(txt);
        sample_defaults(&o, 0);
        CHECK(sample_load_post_config(path, &o, err, sizeof err) == 0, "%s: %s", name, err);
        remove(path);
    }

    /* The penalties alone: a sampler that neither scales nor filters leaves the
     * penalized logits in l. */
    sample_opts po = o;
    po.temp = 1, po.top_k = 0, po.top_p = 1, po.min_p = 0;
    sampler *s = sampler_new(&po, V);
    sampler_seen(s, prompt, np, 0);
    sampler_seen(s, gen, ng, 1);
    memcpy(l, l0, V * sizeof *l);
    const int32_t *ids;
    const float *probs;
    sampler_dist(s, l, &ids, &probs);
    sampler_free(s);
    char *touched = calloc(V, 1);
    const cJSON *pe;
    cJSON_ArrayForEach(pe, cJSON_GetObjectItemCaseSensitive(c, "penalized")) {
        int t = cJSON_GetArrayItem(pe, 0)->valueint;
        double want = cJSON_GetArrayItem(pe, 1)->valuedouble;
        touched[t] = 1;
        CHECK(fabs(l[t] - want) <= 1e-6 * fmax(1, fabs(want)), "%s: penalized logit of %d: %.9g, HF %.9g", name, t,
              l[t], want);
    }
    for (size_t i = 0; i < V; i++)
        if (!touched[i] && l[i] != l0[i]) {
            CHECK(0, "%s: logit of %zu changed by the penalties though the sequence does not hold it", name, i);
            break;
        }

    /* The whole chain. */
    s = sampler_new(&o, V);
    sampler_seen(s, prompt, np, 0);
    sampler_seen(s, gen, ng, 1);
    memcpy(l, l0, V * sizeof *l);
    size_t n = sampler_dist(s, l, &ids, &probs);
    if (o.temp == 0) {
        int want = (int)num(c, "greedy");
        CHECK(n == 1 && ids[0] == want, "%s: greedy %d, HF %d", name, ids[0], want);
        memcpy(l, l0, V * sizeof *l);
        int32_t got = sampler_next(s, l);
        CHECK(got == want, "%s: sampler_next chose %d, HF's greedy %d", name, got, want);
    } else {
        const cJSON *wid = cJSON_GetObjectItemCaseSensitive(c, "ids"), *wp = cJSON_GetObjectItemCaseSensitive(c, "probs");
        size_t wn = (size_t)cJSON_GetArraySize(wid);
        CHECK(n == wn, "%s: %zu ids survive, HF keeps %zu", name, n, wn);
        float *pid = calloc(V, sizeof *pid);
        for (size_t i = 0; i < n; i++) pid[ids[i]] = probs[i] > 0 ? probs[i] : -1;
        for (size_t i = 0; i < wn; i++) {
            int id = cJSON_GetArrayItem(wid, (int)i)->valueint;
            double want = cJSON_GetArrayItem(wp, (int)i)->valuedouble;
            CHECK(pid[id] != 0, "%s: HF keeps id %d (p %.9g), we drop it", name, id, want);
            CHECK(fabs(pid[id] - want) <= 1e-6, "%s: p(%d) = %.9g, HF %.9g", name, id, pid[id], want);
        }
        free(pid);
    }
    sampler_free(s);
    free(touched), free(l), free(l0), free(prompt), free(gen);
}

static int fixture(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        return EXIT_DATA;
    }
    char *line = NULL;
    size_t cap = 0, cases = 0;
    while (getline(&line, &cap, f) > 0) {
        cJSON *c = cJSON_Parse(line);
        if (c && cJSON_GetObjectItemCaseSensitive(c, "name")) one_case(c), cases++;
        cJSON_Delete(c);
    }
    free(line);
    fclose(f);
    printf("%zu cases, %d failures\n", cases, fails);
    return fails || cases == 0 ? EXIT_DATA : EXIT_OK;
}

/* 20k draws from a 6-id distribution through temperature and top-k: each frequency within
 * 4.5 standard deviations of its probability, the filtered id never drawn; a seed replays
 * its ids, another seed does not. */
static int stats(void) {
    enum { V = 6, N = 20000 };
    const float base[V] = {2.0f, 1.5f, 1.0f, 0.2f, -0.5f, -3.0f};
    sample_opts o = {.temp = 0.8f, .top_k = 5, .top_p = 1, .rep_penalty = 1, .seed = 42};
    sampler *s = sampler_new(&o, V);
    float l[V];
    const int32_t *ids;
    const float *probs;
    double p[V] = {0};
    memcpy(l, base, sizeof l);
    size_t n = sampler_dist(s, l, &ids, &probs);
    CHECK(n == 5, "stats: %zu ids survive top-k 5", n);
    for (size_t i = 0; i < n; i++) p[ids[i]] = probs[i];
    size_t count[V] = {0};
    for (int i = 0; i < N; i++) {
        memcpy(l, base, sizeof l);
        count[sampler_next(s, l)]++;
    }
    double chi2 = 0;
    for (int i = 0; i < V; i++) {
        double f = (double)count[i] / N, sd = sqrt(p[i] * (1 - p[i]) / N);
        CHECK(fabs(f - p[i]) <= 4.5 * sd, "stats: id %d drawn %.4f of the time, p = %.4f", i, f, p[i]);
        if (p[i] > 0) chi2 += (count[i] - N * p[i]) * (count[i] - N * p[i]) / (N * p[i]);
    }
    CHECK(count[5] == 0, "stats: id 5 (outside the top 5) drawn %zu times", count[5]);
    CHECK(chi2 < 18.5, "stats: chi-square %.2f over 4 degrees of freedom (p < 0.001)", chi2); /* 18.47 */
    sampler_free(s);

    /* Reproducibility: same seed same ids; a different seed soon differs. */
    sampler *a = sampler_new(&o, V), *b = sampler_new(&o, V);
    o.seed = 43;
    sampler *c = sampler_new(&o, V);
    int same_c = 1;
    for (int i = 0; i < 200; i++) {
        float la[V], lb[V], lc[V];
        memcpy(la, base, sizeof la), memcpy(lb, base, sizeof lb), memcpy(lc, base, sizeof lc);
        int32_t x = sampler_next(a, la), y = sampler_next(b, lb), z = sampler_next(c, lc);
        CHECK(x == y, "seed: draw %d: %d and %d from the same seed", i, x, y);
        same_c &= x == z;
    }
    CHECK(!same_c, "seed: seeds 42 and 43 gave the same 200 ids");
    sampler_free(a), sampler_free(b), sampler_free(c);
    printf("stats: %d draws, chi-square %.2f, %d failures\n", N, chi2, fails);
    return fails ? EXIT_DATA : EXIT_OK;
}

/* The records and ids t/sample.bats gives the program: options as its flags there
 * (--seed S --repeat-penalty 1.1 --presence-penalty 0.3 --frequency-penalty 0.1 --top-k 40
 * --history DIR/hist.txt, thinking defaults otherwise). */
static int stream(const char *dir, size_t n, size_t V, uint64_t seed) {
    char path[4096], err[256];
    snprintf(path, sizeof path, "%s/all.npy", dir);
    FILE *all = fopen(path, "wb");
    snprintf(path, sizeof path, "%s/hist.txt", dir);
    FILE *hist = fopen(path, "w");
    if (!all || !hist) {
        perror(dir);
        return EXIT_DATA;
    }
    int32_t h[50];
    for (int i = 0; i < 50; i++) h[i] = (int32_t)(mix(seed + 1, (uint64_t)i + 1) % V);
    fprintf(hist, "%d", h[0]);
    for (int i = 1; i < 50; i++) fprintf(hist, i % 10 ? " %d" : "\n%d", h[i]);
    fputc('\n', hist);
    fclose(hist);
    sample_opts o;
    sample_defaults(&o, 0);
    o.seed = seed, o.rep_penalty = 1.1f, o.presence = 0.3f, o.frequency = 0.1f, o.top_k = 40;
    sampler *s = sampler_new(&o, V);
    sampler_seen(s, h, 50, 0);
    float *rec = malloc(2 * V * sizeof *rec);
    for (size_t r = 0; r < n; r++) {
        size_t rows = 1 + r % 2, shape[2] = {rows, V};
        for (size_t i = 0; i < rows * V; i++) rec[i] = ((float)(mix(seed + 2 + r, i + 1) >> 40) * 0x1p-23f - 1) * 6;
        snprintf(path, sizeof path, "%s/r%zu.npy", dir, r + 1);
        FILE *one = fopen(path, "wb");
        if (!one || npy_write(all, NPY_F32, 2, shape, rec, err, sizeof err) < 0 ||
            npy_write(one, NPY_F32, 2, shape, rec, err, sizeof err) < 0) {
            perror(path);
            return EXIT_DATA;
        }
        fclose(one);
        printf("%d\n", sampler_next(s, rec + (rows - 1) * V));
    }
    fclose(all);
    free(rec);
    sampler_free(s);
    return EXIT_OK;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "fixture")) return fixture(argv[2]);
    if (argc == 2 && !strcmp(argv[1], "stats")) return stats();
    if (argc == 6 && !strcmp(argv[1], "stream"))
        return stream(argv[2], strtoull(argv[3], NULL, 10), strtoull(argv[4], NULL, 10), strtoull(argv[5], NULL, 10));
    fprintf(stderr, "usage: sample_test fixture FILE | stats | stream DIR N VOCAB SEED\n");
    return EXIT_USAGE;
}
