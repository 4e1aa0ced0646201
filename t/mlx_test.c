/* mlx_test: the MLX loader (lib/mlx.h) against MLX itself (t/gen_mlx_fixtures.py).
 *
 *   mlx_test fixture FIXDIR [HFDIR]
 *       FIXDIR/model through model_open (it must be detected as mlx): rows [0, 16) of every
 *       tensor the fixture recorded, dequantized, equal to mx.dequantize's bf16 bit for bit;
 *       then the logits of its prompt, every position: against mlx-lm's f32 forward of the
 *       dequantized model, max|diff| <= 1e-5 * max|logit| per row; against mlx-lm's own
 *       quantized bf16 forward, cosine >= 0.998 and the same argmax on every row (bf16
 *       activations round at every step: measured worst cosine 0.99905). With HFDIR (what
 *       `model dequant` wrote), every tensor in it must hash (SHA-256 of its bytes) as the
 *       same tensor of mlx-lm's dequantize_model (FIXDIR/dequant.sha256), and its logits
 *       equal the MLX model's within 1e-6 * max|logit|.
 *   mlx_test untied FIXDIR
 *       the same for FIXDIR/untied (float16 scales: f16(f16(s*q)+b) exactly; an untied
 *       lm_head at 8 bits, the embedding at 3 bits in groups of 128).
 * "N checks, M failures" last; exit 1 on any failure. */
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "kern.h"
#include "mlx.h"
#include "npy.h"
#include "quant.h"
#include "util.h"

static const char *prog = "mlx_test";
#include "check.h"

static void next_rec(FILE *f, const char *name, npy *a, npy_dtype t) {
    char err[512];
    int got = npy_read(f, a, 0, err, sizeof err);
    if (got <= 0) die(name, got < 0 ? err : "fewer records than gen_mlx_fixtures.py writes");
    if (a->dtype != t) die(name, "a record's dtype is not what gen_mlx_fixtures.py writes");
}

/* The weights gen_mlx_fixtures.py records (TENSORS there, or UNTIED_TENSORS), in its order. */
static size_t recorded(const model *m, int untied, weight *w, const char **names) {
    const layer_weights *L = m->layers;
    if (untied) {
        static const char *n[] = {"embed_tokens", "lm_head", "0.q_proj"};
        weight t[] = {m->embed, m->lm_head, L[0].wq};
        for (size_t i = 0; i < 3; i++) w[i] = t[i], names[i] = n[i];
        return 3;
    }
    static const char *n[] = {"embed_tokens", "0.q_proj", "0.k_proj", "0.v_proj", "0.o_proj",
                              "0.gate_proj", "0.down_proj", "0.up_proj", "1.down_proj"};
    weight t[] = {m->embed, L[0].wq, L[0].wk, L[0].wv, L[0].wo, L[0].w_gate, L[0].w_down, L[0].w_up, L[1].w_down};
    for (size_t i = 0; i < 9; i++) w[i] = t[i], names[i] = n[i];
    return 9;
}

/* logits (P, vocab) of every position of ids through m on the CPU backend */
static float *logits_of(const model *m, const int32_t *ids, size_t P) {
    char err[512];
    backend_opts o = {.n_threads = 1, .max_batch = P};
    void *ctx = backend_cpu.open(m, &o, err, sizeof err);
    if (!ctx) die("backend", err);
    kv_cache kv;
    if (kv_alloc(&kv, m->cfg.n_layers, (size_t)m->cfg.n_kv_heads * m->cfg.head_dim, P) < 0) die("kv", "out of memory");
    float *x = xmalloc(P * (size_t)m->cfg.dim * sizeof *x), *lg = xmalloc(P * (size_t)m->cfg.vocab_size * sizeof *lg);
    if (model_embed(m, ids, P, x, err, sizeof err) < 0 || forward(&backend_cpu, ctx, m, x, P, &kv, lg, 1, err, sizeof err) < 0)
        die("forward", err);
    free(x);
    kv_free(&kv);
    backend_cpu.close(ctx);
    return lg;
}

/* rows [0, rows) of w (in columns) against want (bf16 bits, or f32 values): the count
 * that differ; a bf16 record also requires each of our values to be a bf16 value */
static size_t differ(weight w, const npy *want) {
    size_t bad = 0;
    for (size_t i = 0; i < want->count; i++) {
        float f = weight_get(w, i);
        if (want->dtype == NPY_F32) {
            float g = ((const float *)want->data)[i];
            bad += memcmp(&f, &g, 4) != 0;
            continue;
        }
        uint16_t ours = quant_bf16(f), theirs = ((const uint16_t *)want->data)[i];
        bad += ours != theirs || kern_bf16(ours) != f;
    }
    return bad;
}

static int cmd_fixture(const char *fixdir, const char *name, const char *hfdir) {
    char path[4096], err[512];
    int untied = !strcmp(name, "untied");
    snprintf(path, sizeof path, "%s/%s", fixdir, name);
    model *m = model_open(path, err, sizeof err), *h = NULL;
    if (!m) die(path, err);
    CHECK(m->format && !strcmp(m->format->name, "mlx"), "%s: not detected as an MLX checkpoint", path);
    if (hfdir && !(h = model_open(hfdir, err, sizeof err))) die(hfdir, err);
    if (h) CHECK(!h->format, "%s: should be a plain Hugging Face directory", hfdir);
    snprintf(path, sizeof path, "%s/%s.npy", fixdir, untied ? "untied" : "ref");
    FILE *f = fopen(path, "rb");
    if (!f) die(path, "cannot open");
    npy ids = {0}, native = {0}, f32 = {0}, d = {0};
    next_rec(f, path, &ids, NPY_I32);
    next_rec(f, path, &native, NPY_F32);
    next_rec(f, path, &f32, NPY_F32);
    weight w[16], hw[16];
    const char *names[16];
    size_t nt = recorded(m, untied, w, names);
    if (h) recorded(h, untied, hw, names);
    for (size_t i = 0; i < nt; i++) {
        next_rec(f, path, &d, untied ? NPY_F32 : NPY_BF16);
        size_t bad = differ(w[i], &d);
        CHECK(weight_q(w[i]) == WQ_FMT, "%s: not an MLX quantized weight", names[i]);
        CHECK(bad == 0, "%s: %zu of %zu values differ from mx.dequantize's", names[i], bad, d.count);
        const qweight *q = w[i].data;
        printf("%s: %zu values (group %zu) equal to mx.dequantize's: %s\n", names[i], d.count, q->group, bad ? "NO" : "yes");
        if (h) {
            bad = differ(hw[i], &d);
            CHECK(bad == 0 && hw[i].dtype == ST_BF16, "%s: the BF16 directory has %zu of %zu values other than MLX's",
                  names[i], bad, d.count);
        }
    }
    fclose(f);
    size_t P = ids.count, V = (size_t)m->cfg.vocab_size;
    CHECK(f32.count == P * V && native.count == P * V, "ref.npy: logits shape is not (prompt, vocab)");
    if (fails) goto out;
    float *lg = logits_of(m, ids.data, P);
    double worst = 0, worst_cos = 1, worst_h = 0;
    size_t same = 0;
    for (size_t i = 0; i < P; i++) {
        const float *a = lg + i * V, *b = (const float *)f32.data + i * V, *c = (const float *)native.data + i * V;
        double md = 0, scale = 0, ab = 0, aa = 0, cc = 0;
        size_t ma = 0, mc = 0;
        for (size_t j = 0; j < V; j++) {
            md = fmax(md, fabs((double)a[j] - b[j]));
            if (a[j] != a[j]) md = INFINITY;
            scale = fmax(scale, fabs(b[j]));
            ab += (double)a[j] * c[j], aa += (double)a[j] * a[j], cc += (double)c[j] * c[j];
            if (a[j] > a[ma]) ma = j;
            if (c[j] > c[mc]) mc = j;
        }
        double cs = ab / sqrt(aa * cc);
        worst = fmax(worst, md / scale), worst_cos = fmin(worst_cos, cs);
        same += ma == mc;
        CHECK(md <= 1e-5 * scale, "row %zu: max|diff| %.3g from MLX's f32 forward > 1e-5 * %.3g", i, md, scale);
        CHECK(cs >= 0.998 && ma == mc, "row %zu: against MLX's own forward cosine %.6f, argmax %zu vs %zu", i, cs, ma, mc);
    }
    printf("logits of %zu positions: max|diff| / max|logit| %.3g against mlx-lm's f32 forward; against its own "
           "quantized forward (the model's dtype) worst cosine %.6f, argmax equal on %zu of %zu\n", P, worst, worst_cos, same, P);
    if (h) {
        snprintf(path, sizeof path, "%s/dequant.sha256", fixdir);
        FILE *hf = fopen(path, "r");
        if (!hf) die(path, "cannot open");
        char hex[65], name[200];
        size_t n = 0, same_t = 0;
        while (fscanf(hf, "%64s %199s", hex, name) == 2) {
            const st_tensor *t = st_find(h->st, name);
            unsigned char hash[32];
            char ours[65] = "";
            if (t) {
                crypto_hash_sha256(hash, t->data, t->nbytes);
                for (int i = 0; i < 32; i++) snprintf(ours + 2 * i, 3, "%02x", hash[i]);
            }
            n++;
            same_t += t && !strcmp(ours, hex);
            CHECK(t && !strcmp(ours, hex), "%s: %s in the BF16 directory, not mlx-lm's dequantized bytes", name,
                  t ? "differs" : "missing");
        }
        fclose(hf);
        size_t nh;
        st_tensors(h->st, &nh);
        CHECK(n > 0 && nh == n, "the BF16 directory holds %zu tensors, mlx-lm's %zu", nh, n);
        printf("BF16 directory: %zu of %zu tensors byte for byte mlx-lm's dequantize_model\n", same_t, n);
        float *hl = logits_of(h, ids.data, P);
        for (size_t i = 0; i < P; i++) {
            double md = 0, scale = 0;
            for (size_t j = 0; j < V; j++)
                md = fmax(md, fabs((double)hl[i * V + j] - lg[i * V + j])), scale = fmax(scale, fabs(lg[i * V + j]));
            worst_h = fmax(worst_h, md / scale);
        }
        CHECK(worst_h <= 1e-6, "the BF16 directory's logits differ from the MLX model's: %.3g * max|logit|", worst_h);
        printf("BF16 directory: logits within %.3g * max|logit| of the MLX model's\n", worst_h);
        free(hl);
    }
    free(lg);
out:
    npy_free(&ids), npy_free(&native), npy_free(&f32), npy_free(&d);
    model_close(m);
    model_close(h);
    printf("%d checks, %d failures\n", checks, fails);
    return fails ? EXIT_DATA : 0;
}

int main(int argc, char **argv) {
    if (argc >= 3 && argc <= 4 && !strcmp(argv[1], "fixture")) return cmd_fixture(argv[2], "model", argc == 4 ? argv[3] : NULL);
    if (argc == 3 && !strcmp(argv[1], "untied")) return cmd_fixture(argv[2], "untied", NULL);
    fprintf(stderr, "usage: %s fixture FIXDIR [HFDIR] | untied FIXDIR\n", prog);
    return EXIT_USAGE;
}
