/* gguf_test: lib/gguf, lib/gguf_blocks and the GGUF model format for t/gguf.bats.
 *
 *   gguf_test info FILE               version, counts, then "name TYPE [ne0, ne1, ...]" per tensor
 *   gguf_test dequant FILE TENSOR     the tensor as little-endian f32 on stdout (our dequantizer)
 *   gguf_test dot FILE TENSOR         the format's matmul of seeded random x against the same
 *                                     sum taken in double over the dequantized weight and the
 *                                     dequantized activations: "max rel err E"; exit 1 if over 1e-5
 *   gguf_test open FILE               model_open: "ok vocab V dim D layers L tied T", or the error
 *   gguf_test mkbad CASE IN OUT       OUT = IN broken as CASE: magic, version, count, kvcount,
 *                                     keylen (2^60), vtype (13), v2 (not broken: version 2),
 *                                     type:TENSOR (an unsupported type of the same size),
 *                                     meta:KEY=N (a u32 value changed), dup (a duplicate key),
 *                                     align (general.alignment 3), offset:TENSOR (moved by 32)
 * Errors: "gguf_test: why" and exit 1. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "gguf_blocks.h"
#include "kern.h"
#include "model.h"
#include "util.h"

static char err[1024];

static int die(const char *msg) {
    fprintf(stderr, "gguf_test: %s\n", msg);
    return 1;
}

static int info(const char *path) {
    gguf *g = gguf_open(path, err, sizeof err);
    if (!g) return die(err);
    printf("version %u, %zu keys, %zu tensors, alignment %zu\n", (unsigned)g->version, g->n_kv, g->n_tensors,
           g->alignment);
    for (size_t i = 0; i < g->n_tensors; i++) {
        const gguf_tensor *t = &g->t[i];
        printf("%.*s %s [", (int)t->name.n, t->name.s, gguf_type_name(t->type));
        for (int d = 0; d < t->ndim; d++) printf("%s%llu", d ? ", " : "", (unsigned long long)t->ne[d]);
        printf("]\n");
    }
    gguf_close(g);
    return 0;
}

/* Row r of t as f32 (F32/F16/BF16 widened, a block type dequantized). -1 if unsupported. */
static int row_of(const gguf_tensor *t, size_t r, float *out) {
    size_t k = (size_t)t->ne[0];
    const wfmt *f = gguf_wfmt(t->type);
    if (f) {
        qweight q = {.q = WQ_FMT, .data = t->data, .in = k, .fmt = f, .aux = &t->type};
        f->row(&q, r, out);
        return 0;
    }
    for (size_t j = 0; j < k; j++) {
        const uint8_t *p = t->data + (r * k + j) * (t->type == GGML_F32 ? 4 : 2);
        if (t->type == GGML_F32) {
            uint32_t u = le32(p);
            memcpy(&out[j], &u, 4);
        } else if (t->type == GGML_F16) out[j] = kern_f16(le16(p));
        else if (t->type == GGML_BF16) out[j] = kern_bf16(le16(p));
        else return -1;
    }
    return 0;
}

static const gguf_tensor *find(gguf *g, const char *name) {
    const gguf_tensor *t = gguf_tensor_find(g, name);
    if (!t) snprintf(err, sizeof err, "%s: no tensor %s", "gguf_test", name);
    return t;
}

static int dequant(const char *path, const char *name) {
    gguf *g = gguf_open(path, err, sizeof err);
    if (!g) return die(err);
    const gguf_tensor *t = find(g, name);
    if (!t) return die(err);
    size_t k = (size_t)t->ne[0], rows = (size_t)(t->ne[1] * t->ne[2] * t->ne[3]);
    float *row = malloc(k * sizeof *row);
    for (size_t r = 0; r < rows; r++) {
        if (row_of(t, r, row) < 0) return die("type not supported");
        for (size_t j = 0; j < k; j++) { /* little-endian whatever the host */
            uint32_t u;
            uint8_t b[4];
            memcpy(&u, &row[j], 4);
            put_le32(b, u);
            fwrite(b, 1, 4, stdout);
        }
    }
    free(row);
    gguf_close(g);
    return fflush(stdout) ? 1 : 0;
}

static uint64_t rng = 0x9E3779B97F4A7C15u;
static float frand(void) { /* xorshift64*, uniform in [-1, 1) */
    rng ^= rng >> 12, rng ^= rng << 25, rng ^= rng >> 27;
    return (float)((rng * 0x2545F4914F6CDD1Du) >> 40) / (float)(1 << 23) - 1.0f;
}

static int dot(const char *path, const char *name) {
    gguf *g = gguf_open(path, err, sizeof err);
    if (!g) return die(err);
    const gguf_tensor *t = find(g, name);
    if (!t) return die(err);
    const wfmt *f = gguf_wfmt(t->type);
    if (!f) return die("not a block type");
    size_t k = (size_t)t->ne[0], out = (size_t)t->ne[1], n = 3;
    qweight q = {.q = WQ_FMT, .data = t->data, .in = k, .fmt = f, .aux = &t->type};
    float *x = malloc(n * k * sizeof *x), *y = malloc(n * out * sizeof *y), *w = malloc(k * sizeof *w);
    float *xd = malloc(n * k * sizeof *xd);
    void *scratch = malloc(f->scratch(&q, n));
    for (size_t i = 0; i < n * k; i++) x[i] = frand() * (i % 97 == 0 ? 10.0f : 1.0f);
    f->prep(&q, x, n, scratch);
    f->matmul(y, x, scratch, &q, n, out, 0, out);
    /* the activations as the format quantized them, dequantized independently */
    int kq = t->type == GGML_Q4_K || t->type == GGML_Q6_K;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < k; j++) {
            if (kq) {
                const gguf_q8_kx *b = (const gguf_q8_kx *)scratch + i * (k / 256) + j / 256;
                xd[i * k + j] = b->d * b->q[j % 256];
            } else {
                const gguf_q8_0x *b = (const gguf_q8_0x *)scratch + i * (k / 32) + j / 32;
                xd[i * k + j] = b->d * b->q[j % 32];
            }
        }
    double worst = 0;
    for (size_t o = 0; o < out; o++) {
        row_of(t, o, w);
        for (size_t i = 0; i < n; i++) {
            double s = 0, mag = 0;
            for (size_t j = 0; j < k; j++) s += (double)w[j] * xd[i * k + j], mag += fabs((double)w[j] * xd[i * k + j]);
            double e = fabs(y[i * out + o] - s) / (mag > 0 ? mag : 1);
            if (!(e <= worst)) worst = e;
        }
    }
    printf("max rel err %.3g\n", worst);
    free(x), free(y), free(w), free(xd), free(scratch);
    gguf_close(g);
    return worst <= 1e-5 ? 0 : 1;
}

static int open_model(const char *path) {
    model *m = model_open(path, err, sizeof err);
    if (!m) return die(err);
    printf("ok vocab %d dim %d layers %d tied %d\n", m->cfg.vocab_size, m->cfg.dim, m->cfg.n_layers,
           m->cfg.tie_embeddings);
    model_close(m);
    return 0;
}

/* ---- mkbad ---- */

static int mkbad(const char *what, const char *in, const char *outp) {
    mapped m;
    if (map_file(in, &m, err, sizeof err) < 0) return die(err);
    gguf g;
    if (gguf_parse(&g, m.data, m.size, in, err, sizeof err) < 0) return die(err);
    uint8_t *b = malloc(m.size + 64);
    memcpy(b, m.data, m.size);
    size_t size = m.size;
    const char *arg = strchr(what, ':');
    arg = arg ? arg + 1 : "";
    if (!strcmp(what, "magic")) memcpy(b, "GGUX", 4);
    else if (!strcmp(what, "version")) put_le32(b + 4, 4);
    else if (!strcmp(what, "v2")) put_le32(b + 4, 2); /* v2 has v3's layout (v3 added big-endian files) */
    else if (!strcmp(what, "count")) put_le64(b + 8, (uint64_t)1 << 62);
    else if (!strcmp(what, "kvcount")) put_le64(b + 16, g.n_kv + 1);
    else if (!strcmp(what, "keylen")) put_le64(b + 24, (uint64_t)1 << 60); /* the first key's length */
    else if (!strcmp(what, "vtype")) put_le32(b + 24 + 8 + g.kv[0].key.n, 13); /* its value type */
    else if (!strncmp(what, "type:", 5) || !strncmp(what, "offset:", 7)) {
        const gguf_tensor *t = gguf_tensor_find(&g, arg);
        if (!t) return die("no such tensor");
        size_t at = (size_t)((const uint8_t *)t->name.s - m.data) + t->name.n + 4 + 8 * (size_t)t->ndim;
        if (what[0] == 't') /* a type of the same size per element that we do not compute with */
            put_le32(b + at, t->type == GGML_F32 ? 26 : t->type == GGML_Q4_0 ? 20 : 25); /* I32, IQ4_NL, I16 */
        else put_le64(b + at + 4, t->offset + 32);
    } else if (!strncmp(what, "meta:", 5)) {
        char key[128];
        const char *eq = strchr(arg, '=');
        if (!eq || (size_t)(eq - arg) >= sizeof key) return die("meta:KEY=N");
        memcpy(key, arg, (size_t)(eq - arg));
        key[eq - arg] = 0;
        const gguf_kv *kv = gguf_find(&g, key);
        if (!kv || kv->type != GGUF_U32) return die("no such u32 key");
        put_le32(b + (kv->v - m.data), (uint32_t)atol(eq + 1));
    } else if (!strcmp(what, "dup")) { /* a key's name given to the next key of its length */
        size_t i, j = g.n_kv;
        for (i = 0; i < g.n_kv && j == g.n_kv; i++)
            for (j = i + 1; j < g.n_kv && g.kv[j].key.n != g.kv[i].key.n; j++) {}
        if (j == g.n_kv) return die("no two keys of one length");
        memcpy(b + ((const uint8_t *)g.kv[j].key.s - m.data), g.kv[i - 1].key.s, g.kv[j].key.n);
    } else if (!strcmp(what, "align")) {
        const gguf_kv *kv = gguf_find(&g, "general.alignment");
        if (!kv) return die("no general.alignment");
        put_le32(b + (kv->v - m.data), 3);
    } else return die("unknown case");
    FILE *f = fopen(outp, "wb");
    if (!f || fwrite(b, 1, size, f) != size || fclose(f)) return die("cannot write");
    free(b);
    gguf_clear(&g);
    unmap_file(&m);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "info")) return info(argv[2]);
    if (argc == 4 && !strcmp(argv[1], "dequant")) return dequant(argv[2], argv[3]);
    if (argc == 4 && !strcmp(argv[1], "dot")) return dot(argv[2], argv[3]);
    if (argc == 3 && !strcmp(argv[1], "open")) return open_model(argv[2]);
    if (argc == 5 && !strcmp(argv[1], "mkbad")) return mkbad(argv[2], argv[3], argv[4]);
    fprintf(stderr, "usage: gguf_test info|dequant|dot|open|mkbad ...\n");
    return 2;
}
