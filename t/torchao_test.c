/* torchao_test: the torchao safetensors export (lib/torchao.h) against torchao itself
 * (t/gen_torchao_export.py).
 *
 *   torchao_test fixture FIXDIR
 *       FIXDIR/model through model_open (it must be detected as torchao): rows [0, 16) of
 *       the tensors the fixture recorded, dequantized, equal to torchao's dequantize() bit
 *       for bit ((q - zp) * s in f32); then the logits of its prompt, every position,
 *       against the quantized model's forward in torchao (int8 activations per token,
 *       quantized and dequantized, F.linear in f32): max|diff| <= 1e-5 * max|logit| per
 *       row and the same argmax (measured: 3.7e-7).
 * "N checks, M failures" last; exit 1 on any failure. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "npy.h"
#include "util.h"

static const char *prog = "torchao_test";
static int fails, checks;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        checks++;                                                                                  \
        if (!(cond)) {                                                                             \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            fails++;                                                                               \
        }                                                                                          \
    } while (0)

static void die(const char *what, const char *why) {
    fprintf(stderr, "%s: %s: %s\n", prog, what, why);
    exit(EXIT_DATA);
}

static void next_rec(FILE *f, const char *name, npy *a, npy_dtype t) {
    char err[512];
    int got = npy_read(f, a, 0, err, sizeof err);
    if (got <= 0) die(name, got < 0 ? err : "fewer records than gen_torchao_export.py writes");
    if (a->dtype != t) die(name, "a record's dtype is not what gen_torchao_export.py writes");
}

static int cmd_fixture(const char *fixdir) {
    char path[4096], err[512];
    snprintf(path, sizeof path, "%s/model", fixdir);
    model *m = model_open(path, err, sizeof err);
    if (!m) die(path, err);
    CHECK(m->format && !strcmp(m->format->name, "torchao"), "%s: not detected as a torchao export", path);
    snprintf(path, sizeof path, "%s/ref.npy", fixdir);
    FILE *f = fopen(path, "rb");
    if (!f) die(path, "cannot open");
    npy ids = {0}, want = {0}, d = {0};
    next_rec(f, path, &ids, NPY_I32);
    next_rec(f, path, &want, NPY_F32);
    const layer_weights *L = m->layers;
    const struct { const char *name; weight w; } t[] = {
        {"embed_tokens", m->embed}, {"layers.0.q_proj", L[0].wq}, {"layers.0.down_proj", L[0].w_down},
        {"layers.1.v_proj", L[1].wv}, {"lm_head", m->lm_head},
    };
    for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
        next_rec(f, path, &d, NPY_F32);
        size_t bad = 0;
        for (size_t j = 0; j < d.count; j++) {
            float a = weight_get(t[i].w, j), b = ((const float *)d.data)[j];
            bad += memcmp(&a, &b, 4) != 0;
        }
        CHECK(weight_q(t[i].w) == WQ_FMT, "%s: not a torchao quantized weight", t[i].name);
        CHECK(bad == 0, "%s: %zu of %zu values differ from torchao's dequantize()", t[i].name, bad, d.count);
        printf("%s: %zu values equal to torchao's dequantize(): %s\n", t[i].name, d.count, bad ? "NO" : "yes");
    }
    fclose(f);
    size_t P = ids.count, V = (size_t)m->cfg.vocab_size;
    CHECK(want.count == P * V, "ref.npy: logits shape is not (prompt, vocab)");
    if (fails) goto out;
    backend_opts o = {.n_threads = 1, .max_batch = P};
    void *ctx = backend_cpu.open(m, &o, err, sizeof err);
    if (!ctx) die("backend", err);
    kv_cache kv;
    if (kv_alloc(&kv, m->cfg.n_layers, (size_t)m->cfg.n_kv_heads * m->cfg.head_dim, P) < 0) die("kv", "out of memory");
    float *x = malloc(P * (size_t)m->cfg.dim * sizeof *x), *lg = malloc(P * V * sizeof *lg);
    if (!x || !lg) die("malloc", "out of memory");
    if (model_embed(m, ids.data, P, x, err, sizeof err) < 0 || forward(&backend_cpu, ctx, m, x, P, &kv, lg, 1, err, sizeof err) < 0)
        die("forward", err);
    double worst = 0;
    for (size_t i = 0; i < P; i++) {
        const float *a = lg + i * V, *b = (const float *)want.data + i * V;
        double md = 0, scale = 0;
        size_t ma = 0, mb = 0;
        for (size_t j = 0; j < V; j++) {
            md = fmax(md, fabs((double)a[j] - b[j]));
            if (a[j] != a[j]) md = INFINITY;
            scale = fmax(scale, fabs(b[j]));
            if (a[j] > a[ma]) ma = j;
            if (b[j] > b[mb]) mb = j;
        }
        worst = fmax(worst, md / scale);
        CHECK(md <= 1e-5 * scale && ma == mb, "row %zu: max|diff| %.3g (max|logit| %.3g), argmax %zu vs %zu", i, md, scale, ma, mb);
    }
    printf("logits of %zu positions against torchao's forward: max|diff| / max|logit| %.3g\n", P, worst);
    free(x), free(lg);
    kv_free(&kv);
    backend_cpu.close(ctx);
out:
    npy_free(&ids), npy_free(&want), npy_free(&d);
    model_close(m);
    printf("%d checks, %d failures\n", checks, fails);
    return fails ? EXIT_DATA : 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "fixture")) return cmd_fixture(argv[2]);
    fprintf(stderr, "usage: %s fixture FIXDIR\n", prog);
    return EXIT_USAGE;
}
