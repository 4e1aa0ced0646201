/* tinymodel: writes a complete Qwen3 model directory (config.json, model.safetensors)
 * with random weights from a seed, for tests and benchmarks. The tokenizer files are
 * copied beside them by the Makefile.
 *
 * usage: tinymodel [--preset tiny|0.6b-2l|0.6b|4b] [--dtype f32|bf16] [--untied]
 *                  [--yarn FACTOR:ORIG] [--seed N] OUTDIR
 *
 * Key decisions:
 *  - Bytes are identical on every machine and libc: each tensor draws from its own
 *    splitmix64 stream (seeded by the seed and the tensor's name, so --untied or more
 *    layers leave the other tensors unchanged) and turns integers into floats with
 *    exact arithmetic only (an integer times a power of two; no libm).
 *  - Embedding and lm_head are uniform on [-2^-5, 2^-5) (std 0.018, near HF's
 *    initializer_range 0.02); layer matrices are scaled by fan-in (amp_of); norm weights
 *    are 1 +- 0.125 so that a kernel that drops them is caught.
 *  - bf16 is round-to-nearest-even from those f32 values, as torch's .to(bfloat16).
 *  - The safetensors header is padded with spaces so the data starts 8-byte aligned;
 *    tensors lie back to back in HF's name order, every size a multiple of 8 bytes.
 *  - Files are written to a temporary name and renamed, so a make interrupted halfway
 *    never leaves a model that looks complete. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { EXIT_OK = 0, EXIT_DATA = 1, EXIT_USAGE = 2 };

typedef struct {
    const char *name;
    int dim, n_layers, n_heads, n_kv_heads, head_dim, hidden_dim, vocab_size, max_pos;
} preset;

/* Qwen3 dimensions (quant.md 4.3); tiny has head_dim != dim/n_heads on purpose. */
static const preset presets[] = {
    {"tiny", 64, 2, 4, 2, 32, 128, 151936, 40960},
    {"0.6b-2l", 1024, 2, 16, 8, 128, 3072, 151936, 40960},
    {"0.6b", 1024, 28, 16, 8, 128, 3072, 151936, 40960},
    {"4b", 2560, 36, 32, 8, 128, 9728, 151936, 40960},
};

typedef struct {
    char name[96];
    size_t rows, cols; /* cols == 0: a vector of rows */
    int is_norm;
    int amp;           /* matrices: values in [-2^-amp, 2^-amp) */
} tensor;

static const char *prog = "tinymodel";

static uint64_t mix(uint64_t seed, uint64_t i) {
    uint64_t z = i * 0x9e3779b97f4a7c15ull + seed;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t fnv1a(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    return h;
}

/* Element i of a tensor's stream: both forms are exact in f32 (24 and 19 significant bits).
 * Matrices are uniform on [-2^-amp, 2^-amp). */
static float value(uint64_t tseed, size_t i, int is_norm, int amp) {
    uint64_t u = mix(tseed, (uint64_t)i + 1);
    if (is_norm) return 1.0f + (float)((int32_t)(u >> 48) - (1 << 15)) * 0x1p-18f;
    float v = (float)((int32_t)(u >> 40) - (1 << 23)) * 0x1p-23f;
    for (int k = 0; k < amp; k++) v *= 0.5f;
    return v;
}

/* The amplitude exponent of a layer's matrix: ceil(log2(fan_in)/2), so std ~ 0.3-0.6/sqrt(fan_in)
 * and activations keep their scale at any size (0.009-0.018 at 0.6B's sizes, HF's init is
 * 0.02). Embedding and lm_head stay at 2^-5 (std 0.018). With 0.02 everywhere a dim-64
 * model's layers are too weak beside its tied embedding: greedy would only echo the input. */
static int amp_of(size_t fan_in) {
    int a = 0;
    while (((size_t)1 << 2 * a) < fan_in) a++;
    return a;
}

static uint16_t to_bf16(float f) {
    uint32_t b;
    memcpy(&b, &f, 4);
    return (uint16_t)((b + 0x7fffu + ((b >> 16) & 1u)) >> 16); /* no NaN or Inf here */
}

static size_t count(const tensor *t) { return t->rows * (t->cols ? t->cols : 1); }

static size_t list_tensors(const preset *p, int untied, tensor *t) {
    size_t n = 0;
    size_t q = (size_t)p->n_heads * p->head_dim, kv = (size_t)p->n_kv_heads * p->head_dim;
    size_t dim = (size_t)p->dim, hid = (size_t)p->hidden_dim;
#define T(r, c, norm, ...) (snprintf(t[n].name, sizeof t[n].name, __VA_ARGS__), t[n].rows = (r), \
                            t[n].cols = (c), t[n].is_norm = (norm), t[n].amp = amp_of(c), n++)
    T((size_t)p->vocab_size, dim, 0, "model.embed_tokens.weight");
    for (int l = 0; l < p->n_layers; l++) {
        T(dim, 0, 1, "model.layers.%d.input_layernorm.weight", l);
        T(q, dim, 0, "model.layers.%d.self_attn.q_proj.weight", l);
        T(kv, dim, 0, "model.layers.%d.self_attn.k_proj.weight", l);
        T(kv, dim, 0, "model.layers.%d.self_attn.v_proj.weight", l);
        T(dim, q, 0, "model.layers.%d.self_attn.o_proj.weight", l);
        T((size_t)p->head_dim, 0, 1, "model.layers.%d.self_attn.q_norm.weight", l);
        T((size_t)p->head_dim, 0, 1, "model.layers.%d.self_attn.k_norm.weight", l);
        T(dim, 0, 1, "model.layers.%d.post_attention_layernorm.weight", l);
        T(hid, dim, 0, "model.layers.%d.mlp.gate_proj.weight", l);
        T(hid, dim, 0, "model.layers.%d.mlp.up_proj.weight", l);
        T(dim, hid, 0, "model.layers.%d.mlp.down_proj.weight", l);
    }
    T(dim, 0, 1, "model.norm.weight");
    if (untied) T((size_t)p->vocab_size, dim, 0, "lm_head.weight");
#undef T
    t[0].amp = 5; /* embedding */
    if (untied) t[n - 1].amp = 5;
    return n;
}

/* Write path via path.tmp + rename; the caller's writer fills the stream. */
static int finish(FILE *f, const char *tmp, const char *path) {
    int bad = ferror(f);
    if (fclose(f) || bad) {
        fprintf(stderr, "%s: write %s: %s\n", prog, tmp, strerror(errno));
        return -1;
    }
    if (rename(tmp, path)) {
        fprintf(stderr, "%s: rename %s: %s\n", prog, path, strerror(errno));
        return -1;
    }
    return 0;
}

static FILE *create(const char *tmp) {
    FILE *f = fopen(tmp, "wb");
    if (!f) fprintf(stderr, "%s: create %s: %s\n", prog, tmp, strerror(errno));
    return f;
}

static int write_config(const char *dir, const preset *p, int bf16, int untied, const char *yarn_factor,
                        long yarn_orig) {
    char path[4096], tmp[4200], rope[256] = "null";
    snprintf(path, sizeof path, "%s/config.json", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (yarn_factor)
        snprintf(rope, sizeof rope,
                 "{\n    \"rope_type\": \"yarn\",\n    \"factor\": %s,\n"
                 "    \"original_max_position_embeddings\": %ld\n  }",
                 yarn_factor, yarn_orig);
    FILE *f = create(tmp);
    if (!f) return -1;
    /* Every field of Qwen3-0.6B's config.json, in its order. */
    fprintf(f,
            "{\n"
            "  \"architectures\": [\n    \"Qwen3ForCausalLM\"\n  ],\n"
            "  \"attention_bias\": false,\n"
            "  \"attention_dropout\": 0.0,\n"
            "  \"bos_token_id\": 151643,\n"
            "  \"eos_token_id\": 151645,\n"
            "  \"head_dim\": %d,\n"
            "  \"hidden_act\": \"silu\",\n"
            "  \"hidden_size\": %d,\n"
            "  \"initializer_range\": 0.02,\n"
            "  \"intermediate_size\": %d,\n"
            "  \"max_position_embeddings\": %d,\n"
            "  \"max_window_layers\": %d,\n"
            "  \"model_type\": \"qwen3\",\n"
            "  \"num_attention_heads\": %d,\n"
            "  \"num_hidden_layers\": %d,\n"
            "  \"num_key_value_heads\": %d,\n"
            "  \"rms_norm_eps\": 1e-06,\n"
            "  \"rope_scaling\": %s,\n"
            "  \"rope_theta\": 1000000,\n"
            "  \"sliding_window\": null,\n"
            "  \"tie_word_embeddings\": %s,\n"
            "  \"torch_dtype\": \"%s\",\n"
            "  \"transformers_version\": \"4.51.0\",\n"
            "  \"use_cache\": true,\n"
            "  \"use_sliding_window\": false,\n"
            "  \"vocab_size\": %d\n"
            "}\n",
            p->head_dim, p->dim, p->hidden_dim, p->max_pos, p->n_layers, p->n_heads, p->n_layers,
            p->n_kv_heads, rope, untied ? "false" : "true", bf16 ? "bfloat16" : "float32", p->vocab_size);
    return finish(f, tmp, path);
}

static int write_weights(const char *dir, const preset *p, int bf16, int untied, uint64_t seed) {
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    tensor *t = malloc(((size_t)p->n_layers * 11 + 3) * sizeof *t);
    size_t hcap = ((size_t)p->n_layers * 11 + 3) * 200 + 64;
    char *h = malloc(hcap);
    if (!t || !h) {
        fprintf(stderr, "%s: out of memory\n", prog);
        free(t), free(h);
        return -1;
    }
    size_t nt = list_tensors(p, untied, t), es = bf16 ? 2 : 4, off = 0, hl = 0;
    hl += (size_t)snprintf(h + hl, hcap - hl, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (size_t i = 0; i < nt; i++) {
        size_t end = off + count(&t[i]) * es;
        char shape[64];
        if (t[i].cols) snprintf(shape, sizeof shape, "[%zu,%zu]", t[i].rows, t[i].cols);
        else snprintf(shape, sizeof shape, "[%zu]", t[i].rows);
        hl += (size_t)snprintf(h + hl, hcap - hl, ",\"%s\":{\"dtype\":\"%s\",\"shape\":%s,\"data_offsets\":[%zu,%zu]}",
                               t[i].name, bf16 ? "BF16" : "F32", shape, off, end);
        off = end;
    }
    h[hl++] = '}';
    while ((8 + hl) % 8) h[hl++] = ' ';

    FILE *f = create(tmp);
    if (!f) {
        free(t), free(h);
        return -1;
    }
    uint8_t len[8];
    for (int i = 0; i < 8; i++) len[i] = (uint8_t)((uint64_t)hl >> 8 * i);
    fwrite(len, 1, 8, f);
    fwrite(h, 1, hl, f);
    enum { CHUNK = 1 << 16 };
    static uint8_t out[CHUNK * 4];
    for (size_t i = 0; i < nt; i++) {
        uint64_t tseed = fnv1a(t[i].name) ^ seed * 0x9e3779b97f4a7c15ull;
        size_t n = count(&t[i]);
        for (size_t j = 0; j < n; j += CHUNK) {
            size_t m = n - j < CHUNK ? n - j : CHUNK;
            for (size_t k = 0; k < m; k++) {
                float v = value(tseed, j + k, t[i].is_norm, t[i].amp);
                uint32_t b;
                memcpy(&b, &v, 4);
                if (bf16) b = to_bf16(v);
                for (size_t e = 0; e < es; e++) out[k * es + e] = (uint8_t)(b >> 8 * e); /* little-endian */
            }
            fwrite(out, es, m, f);
        }
    }
    free(t), free(h);
    return finish(f, tmp, path);
}

static int usage(void) {
    fprintf(stderr, "usage: %s [--preset tiny|0.6b-2l|0.6b|4b] [--dtype f32|bf16] [--untied] "
                    "[--yarn FACTOR:ORIG] [--seed N] OUTDIR\n", prog);
    return EXIT_USAGE;
}

int main(int argc, char **argv) {
    const preset *p = &presets[0];
    int bf16 = 1, untied = 0;
    char yarn_factor[32] = "";
    long yarn_orig = 0;
    uint64_t seed = 1;
    const char *dir = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--untied")) {
            untied = 1;
            continue;
        }
        if (a[0] != '-' || !a[1]) {
            if (dir) return usage();
            dir = a;
            continue;
        }
        if (!v) return usage();
        i++;
        if (!strcmp(a, "--preset")) {
            size_t k;
            for (k = 0; k < sizeof presets / sizeof *presets; k++)
                if (!strcmp(v, presets[k].name)) break;
            if (k == sizeof presets / sizeof *presets) {
                fprintf(stderr, "%s: --preset: '%s' is not one of tiny, 0.6b-2l, 0.6b, 4b\n", prog, v);
                return EXIT_USAGE;
            }
            p = &presets[k];
        } else if (!strcmp(a, "--dtype")) {
            if (strcmp(v, "f32") && strcmp(v, "bf16")) {
                fprintf(stderr, "%s: --dtype: '%s' is not one of f32, bf16\n", prog, v);
                return EXIT_USAGE;
            }
            bf16 = !strcmp(v, "bf16");
        } else if (!strcmp(a, "--yarn")) {
            char *colon = strchr(v, ':'), *e1, *e2;
            double fac = colon ? strtod(v, &e1) : 0;
            yarn_orig = colon ? strtol(colon + 1, &e2, 10) : 0;
            if (!colon || e1 != colon || e1 == v || *e2 || e2 == colon + 1 || !(fac > 1) || fac > 1e6 ||
                yarn_orig <= 0 || yarn_orig > 1 << 30) {
                fprintf(stderr, "%s: --yarn: '%s' is not FACTOR:ORIG (FACTOR > 1, ORIG > 0, e.g. 4:32)\n", prog, v);
                return EXIT_USAGE;
            }
            /* The shortest decimal that reads back as the same double: JSON, and what was meant. */
            for (int prec = 1; prec <= 17; prec++) {
                snprintf(yarn_factor, sizeof yarn_factor, "%.*g", prec, fac);
                if (strtod(yarn_factor, NULL) == fac) break;
            }
        } else if (!strcmp(a, "--seed")) {
            char *e;
            errno = 0;
            seed = strtoull(v, &e, 0);
            if (errno || e == v || *e || *v == '-') {
                fprintf(stderr, "%s: --seed: '%s' is not an unsigned integer\n", prog, v);
                return EXIT_USAGE;
            }
        } else {
            return usage();
        }
    }
    if (!dir) return usage();
    if (mkdir(dir, 0777) && errno != EEXIST) {
        fprintf(stderr, "%s: mkdir %s: %s\n", prog, dir, strerror(errno));
        return EXIT_DATA;
    }
    /* Weights first: config.json appearing last marks the directory complete. */
    if (write_weights(dir, p, bf16, untied, seed) || write_config(dir, p, bf16, untied, yarn_factor[0] ? yarn_factor : NULL, yarn_orig))
        return EXIT_DATA;
    return EXIT_OK;
}
