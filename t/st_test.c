/* st_test: lib/st and lib/model over safetensors files this program writes itself.
 *
 *   st_test read DIR           F32/F16/BF16/I32 tensors read back exactly (every F16 bit
 *                              pattern), shapes, metadata, a sharded copy, header hashes
 *   st_test mkbad CASE DIR     DIR/model.safetensors broken in one way (cases below)
 *   st_test st DIR             st_open DIR: a line per tensor, or the error (exit 1)
 *   st_test mkmodel DIR [--untied] [--shards] [--embed F16|BF16|F32] [--drop NAME]
 *                       [--shape NAME=D0[,D1]] [--dtype NAME=DTYPE] [--skip BYTES]
 *                       [KEY=JSON | KEY=] ...
 *                              a tiny Qwen3 (2 layers, dim 8, heads 2, kv 1, head_dim 6,
 *                              ff 20, vocab 16); KEY=JSON sets a config field, KEY= drops
 *                              it; --skip leaves a hole before the first tensor
 *   st_test cfg DIR            cfg_load: every field, one per line, or the error (exit 1)
 *   st_test open DIR           model_open: "ok", or the error (exit 1)
 *   st_test model DIR          mkmodel variants opened and checked: embeddings, tied and
 *                              untied lm_head, fingerprints
 * The writer pads the header to 8 bytes and lays tensors out in order, as safetensors'
 * own serializer does. */
#include <cjson/cJSON.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model.h"
#include "st.h"
#include "util.h"

static int fails, checks;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        checks++;                                                                                  \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                                        \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            fails++;                                                                               \
        }                                                                                          \
    } while (0)

static void die(const char *what) {
    fprintf(stderr, "st_test: %s\n", what);
    exit(2);
}

/* ---- writer ---- */

typedef struct {
    char name[96];
    const char *dtype;
    int ndim;
    size_t shape[4];
    void *data;
    size_t nbytes;
} wt;

static void write_file(const char *path, const void *a, size_t an, const void *b, size_t bn) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(a, 1, an, f) != an || (bn && fwrite(b, 1, bn, f) != bn) || fclose(f)) die(path);
}

/* u64 N | header (padded with spaces so 8 + N is a multiple of 8) | data */
static void write_raw(const char *path, const char *header, int pad, const void *data, size_t n) {
    size_t hl = strlen(header), N = pad ? (hl + 7) / 8 * 8 : hl;
    uint8_t *p = malloc(8 + N);
    put_le64(p, N);
    memcpy(p + 8, header, hl);
    memset(p + 8 + hl, ' ', N - hl);
    write_file(path, p, 8 + N, data, n);
    free(p);
}

/* The header for tensors t[0..n) laid out back to back; returns the data size. */
static size_t header_for(buf *h, const wt *t, size_t n, const char *meta, size_t off) {
    buf_printf(h, "{");
    if (meta) buf_printf(h, "\"__metadata__\":%s,", meta);
    for (size_t i = 0; i < n; i++) {
        buf_printf(h, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[", i ? "," : "", t[i].name, t[i].dtype);
        for (int d = 0; d < t[i].ndim; d++) buf_printf(h, "%s%zu", d ? "," : "", t[i].shape[d]);
        buf_printf(h, "],\"data_offsets\":[%zu,%zu]}", off, off + t[i].nbytes);
        off += t[i].nbytes;
    }
    buf_putc(h, '}');
    buf_putc(h, 0);
    return off;
}

/* skip: bytes of hole before the first tensor */
static void write_st_at(const char *path, const wt *t, size_t n, const char *meta, size_t skip) {
    buf h = {0};
    size_t size = header_for(&h, t, n, meta, skip);
    uint8_t *d = calloc(1, size ? size : 1), *p = d + skip;
    for (size_t i = 0; i < n; i++) memcpy(p, t[i].data, t[i].nbytes), p += t[i].nbytes;
    write_raw(path, h.data, 1, d, size);
    free(d);
    buf_free(&h);
}

static void write_st(const char *path, const wt *t, size_t n, const char *meta) { write_st_at(path, t, n, meta, 0); }

static char *join(const char *dir, const char *name) {
    static char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path) die("path too long");
    return path;
}

static uint16_t f32_bf16(float f) { /* exact for the values used here */
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)(u >> 16);
}

/* Half from a float that is exactly a half (tests only use such). */
static uint16_t f32_f16(float f) {
    for (uint32_t h = 0; h < 0x10000; h++) {
        weight w = {ST_F16, &(uint16_t){(uint16_t)h}};
        if (weight_get(w, 0) == f && signbit(weight_get(w, 0)) == signbit(f)) return (uint16_t)h;
    }
    die("f32_f16: not a half");
    return 0;
}

/* A tensor of n elements in dtype, element i = v(i). */
static wt tensor(const char *name, const char *dtype, int ndim, const size_t *shape, float (*v)(size_t, size_t),
                 size_t seed) {
    wt t = {.dtype = dtype, .ndim = ndim};
    snprintf(t.name, sizeof t.name, "%s", name);
    size_t n = 1;
    for (int d = 0; d < ndim; d++) n *= t.shape[d] = shape[d];
    int f32 = !strcmp(dtype, "F32"), f16 = !strcmp(dtype, "F16"), bf16 = !strcmp(dtype, "BF16");
    size_t es = strstr(dtype, "64") ? 8 : f32 || strstr(dtype, "32") ? 4 : f16 || bf16 || strstr(dtype, "16") ? 2 : 1;
    t.nbytes = n * es;
    t.data = calloc(1, t.nbytes ? t.nbytes : 1); /* integer dtypes: zeros */
    for (size_t i = 0; i < n && (f32 || f16 || bf16); i++) {
        float f = v(seed, i);
        if (f32) memcpy((uint8_t *)t.data + 4 * i, &f, 4);
        else put_le16((uint8_t *)t.data + 2 * i, bf16 ? f32_bf16(f) : f32_f16(f));
    }
    return t;
}

/* Values exact in bf16 and f16, distinct per tensor (seed) and element. */
static float pattern(size_t seed, size_t i) { return (float)((int)((i * 5 + seed * 3) % 64) - 32) / 8.0f; }

/* ---- read ---- */

static float ref_f16(uint16_t h) { /* the definition, in doubles */
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v = e == 31 ? (m ? NAN : INFINITY) : e ? ldexp(1024 + m, e - 25) : ldexp(m, -24);
    return (float)(s ? -v : v);
}

static void check_values(const st_file *f, const char *name, const char *dtype, int ndim, const size_t *shape,
                         size_t seed) {
    const st_tensor *t = st_find(f, name);
    CHECK(t, "%s: not found", name);
    if (!t) return;
    CHECK(!strcmp(st_dtype_name(t->dtype), dtype), "%s: dtype %s", name, st_dtype_name(t->dtype));
    CHECK(t->ndim == ndim, "%s: ndim %d", name, t->ndim);
    size_t n = 1;
    for (int d = 0; d < ndim; d++) {
        CHECK(t->shape[d] == shape[d], "%s: shape[%d] %zu", name, d, t->shape[d]);
        n *= shape[d];
    }
    CHECK(t->nbytes == n * st_dtype_size(t->dtype), "%s: nbytes %zu", name, t->nbytes);
    weight w = {t->dtype, t->data};
    for (size_t i = 0; i < n; i++)
        CHECK(weight_get(w, i) == pattern(seed, i), "%s[%zu] = %g, want %g", name, i, weight_get(w, i), pattern(seed, i));
}

static void blake(const void *a, size_t an, const void *b, size_t bn, uint8_t out[32]) {
    crypto_generichash_state s;
    crypto_generichash_init(&s, NULL, 0, 32);
    crypto_generichash_update(&s, a, an);
    crypto_generichash_update(&s, b, bn);
    crypto_generichash_final(&s, out, 32);
}

/* The raw header of a file this program wrote. */
static void header_of(const char *path, buf *h) {
    mapped m;
    char err[256];
    if (map_file(path, &m, err, sizeof err)) die(err);
    buf_append(h, m.data + 8, (size_t)le64(m.data));
    unmap_file(&m);
}

static int cmd_read(const char *dir) {
    char err[512];
    /* every half: NaNs as NaN, everything else exact */
    for (uint32_t h = 0; h < 0x10000; h++) {
        uint16_t v = (uint16_t)h;
        float got = weight_get((weight){ST_F16, &v}, 0), want = ref_f16(v);
        if (isnan(want)) CHECK(isnan(got), "f16 %04x: %g, want nan", h, got);
        else CHECK(got == want && signbit(got) == signbit(want), "f16 %04x: %g, want %g", h, got, want);
    }
    size_t s34[] = {3, 4}, s5[] = {5}, s2222[] = {2, 2, 2, 2}, s0[] = {0, 4}, s7[] = {7};
    wt t[] = {
        tensor("a.f32", "F32", 2, s34, pattern, 1), tensor("b.f16", "F16", 1, s5, pattern, 2),
        tensor("c.bf16", "BF16", 4, s2222, pattern, 3), tensor("d.empty", "F32", 2, s0, pattern, 4),
        tensor("e.scalar", "BF16", 0, s0, pattern, 5), tensor("f.odd", "F16", 1, s7, pattern, 6),
    };
    size_t nt = sizeof t / sizeof *t;
    mkdir(dir, 0755);
    write_st(join(dir, "model.safetensors"), t, nt, "{\"format\":\"pt\"}");
    st_file *f = st_open(dir, err, sizeof err);
    CHECK(f, "st_open: %s", err);
    if (!f) return 1;
    size_t n;
    const st_tensor *all = st_tensors(f, &n);
    CHECK(n == nt, "%zu tensors", n);
    for (size_t i = 1; i < n; i++) CHECK(strcmp(all[i - 1].name, all[i].name) < 0, "tensors not sorted by name");
    for (size_t i = 0; i < nt; i++) check_values(f, t[i].name, t[i].dtype, t[i].ndim, t[i].shape, i + 1);
    CHECK(!st_find(f, "nope") && !st_find(f, "__metadata__"), "st_find found a non-tensor");
    CHECK(st_dtype_size(ST_BF16) == 2 && st_dtype_size(ST_F32) == 4 && st_dtype_size(ST_OTHER) == 0, "dtype sizes");
    buf h = {0};
    header_of(join(dir, "model.safetensors"), &h);
    uint8_t want[32], got[32];
    blake(h.data, h.len, "", 0, want);
    st_header_hash(f, got);
    CHECK(!memcmp(want, got, 32), "header hash of one file");
    st_close(f);

    /* the same tensors over two shards, listed in an index in reverse order */
    char sdir[4096];
    snprintf(sdir, sizeof sdir, "%s/sharded", dir);
    mkdir(sdir, 0755);
    write_st(join(sdir, "model-00001-of-00002.safetensors"), t, 3, NULL);
    write_st(join(sdir, "model-00002-of-00002.safetensors"), t + 3, nt - 3, "{\"format\":\"pt\"}");
    buf ix = {0};
    buf_printf(&ix, "{\"metadata\":{\"total_size\":1},\"weight_map\":{");
    for (size_t i = nt; i-- > 0;)
        buf_printf(&ix, "\"%s\":\"model-0000%d-of-00002.safetensors\"%s", t[i].name, i < 3 ? 1 : 2, i ? "," : "");
    buf_printf(&ix, "}}");
    write_file(join(sdir, "model.safetensors.index.json"), ix.data, ix.len, NULL, 0);
    f = st_open(sdir, err, sizeof err);
    CHECK(f, "st_open sharded: %s", err);
    if (!f) return 1;
    st_tensors(f, &n);
    CHECK(n == nt, "sharded: %zu tensors", n);
    for (size_t i = 0; i < nt; i++) check_values(f, t[i].name, t[i].dtype, t[i].ndim, t[i].shape, i + 1);
    buf h1 = {0}, h2 = {0};
    header_of(join(sdir, "model-00001-of-00002.safetensors"), &h1);
    header_of(join(sdir, "model-00002-of-00002.safetensors"), &h2);
    blake(h1.data, h1.len, h2.data, h2.len, want);
    st_header_hash(f, got);
    CHECK(!memcmp(want, got, 32), "header hash of two shards, in shard order");
    st_close(f);
    buf_free(&h), buf_free(&h1), buf_free(&h2), buf_free(&ix);
    for (size_t i = 0; i < nt; i++) free(t[i].data);
    printf("%d checks, %d failures\n", checks, fails);
    return fails != 0;
}

/* ---- broken files ---- */

static int cmd_mkbad(const char *c, const char *dir) {
    const char *path = join(dir, "model.safetensors");
    static uint8_t data[64];
    const char *ok = "{\"x\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}";
    if (!strcmp(c, "truncated")) write_file(path, "\x10\0\0", 3, NULL, 0);
    else if (!strcmp(c, "empty")) write_file(path, "", 0, NULL, 0);
    else if (!strcmp(c, "header-past-end")) {
        uint8_t p[8 + 16] = {0};
        put_le64(p, 1000);
        memcpy(p + 8, "{\"x\":{}}        ", 16);
        write_file(path, p, sizeof p, NULL, 0);
    } else if (!strcmp(c, "header-huge")) {
        uint8_t p[8];
        put_le64(p, 0xffffffffffffff00ull);
        write_file(path, p, 8, "{}", 2);
    } else if (!strcmp(c, "data-truncated")) write_raw(path, ok, 1, data, 12);
    else if (!strcmp(c, "past-end"))
        write_raw(path, "{\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[1000000],\"data_offsets\":[10,4000010]}}", 1,
                  data, 64);
    else if (!strcmp(c, "backwards"))
        write_raw(path, "{\"x\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[16,8]}}", 1, data, 16);
    else if (!strcmp(c, "overlap"))
        write_raw(path,
                  "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                  "\"b\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[12,20]}}",
                  1, data, 32);
    else if (!strcmp(c, "size-mismatch"))
        write_raw(path, "{\"x\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[0,16]}}", 1, data, 16);
    else if (!strcmp(c, "unknown-dtype"))
        write_raw(path, "{\"x\":{\"dtype\":\"Q4_K\",\"shape\":[2],\"data_offsets\":[0,16]}}", 1, data, 16);
    else if (!strcmp(c, "not-json")) write_raw(path, "{\"x\": nope}", 1, data, 16);
    else if (!strcmp(c, "not-object")) write_raw(path, "[1, 2, 3]", 1, data, 16);
    else if (!strcmp(c, "trailing")) write_raw(path, "{} {}", 1, data, 16);
    else if (!strcmp(c, "duplicate"))
        write_raw(path,
                  "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                  "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
                  1, data, 16);
    else if (!strcmp(c, "five-dims"))
        write_raw(path, "{\"x\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,2],\"data_offsets\":[0,2]}}", 1, data, 8);
    else if (!strcmp(c, "negative-shape"))
        write_raw(path, "{\"x\":{\"dtype\":\"U8\",\"shape\":[-2],\"data_offsets\":[0,2]}}", 1, data, 8);
    else if (!strcmp(c, "overflow"))
        write_raw(path, "{\"x\":{\"dtype\":\"F64\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}", 1,
                  data, 8);
    else if (!strcmp(c, "no-offsets")) write_raw(path, "{\"x\":{\"dtype\":\"U8\",\"shape\":[2]}}", 1, data, 8);
    else if (!strcmp(c, "bad-metadata")) write_raw(path, "{\"__metadata__\":7}", 1, data, 0);
    else if (!strcmp(c, "index-missing-shard") || !strcmp(c, "index-wrong-shard") || !strcmp(c, "index-escape")) {
        write_raw(join(dir, "a.safetensors"), ok, 1, data, 16);
        const char *ix = !strcmp(c, "index-missing-shard") ? "{\"weight_map\":{\"x\":\"a.safetensors\",\"y\":\"b.safetensors\"}}"
                         : !strcmp(c, "index-wrong-shard")
                             ? "{\"weight_map\":{\"x\":\"a.safetensors\",\"y\":\"b.safetensors\"}}"
                             : "{\"weight_map\":{\"x\":\"../a.safetensors\"}}";
        if (!strcmp(c, "index-wrong-shard"))
            write_raw(join(dir, "b.safetensors"),
                      "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                      "\"y\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
                      1, data, 16);
        write_file(join(dir, "model.safetensors.index.json"), ix, strlen(ix), NULL, 0);
    } else die("mkbad: unknown case");
    return 0;
}

static int cmd_st(const char *dir) {
    char err[512];
    st_file *f = st_open(dir, err, sizeof err);
    if (!f) return puts(err), 1;
    size_t n;
    const st_tensor *t = st_tensors(f, &n);
    for (size_t i = 0; i < n; i++) {
        printf("%s %s [", t[i].name, st_dtype_name(t[i].dtype));
        for (int d = 0; d < t[i].ndim; d++) printf("%s%zu", d ? ", " : "", t[i].shape[d]);
        puts("]");
    }
    st_close(f);
    return 0;
}

/* ---- tiny models ---- */

enum { DIM = 8, LAYERS = 2, HEADS = 2, KV = 1, HD = 6, FF = 20, VOCAB = 16 };

static const char *base_config =
    "{\"architectures\":[\"Qwen3ForCausalLM\"],\"attention_bias\":false,\"bos_token_id\":1,"
    "\"eos_token_id\":[2,3],\"head_dim\":6,\"hidden_act\":\"silu\",\"hidden_size\":8,"
    "\"intermediate_size\":20,\"max_position_embeddings\":64,\"model_type\":\"qwen3\","
    "\"num_attention_heads\":2,\"num_hidden_layers\":2,\"num_key_value_heads\":1,"
    "\"rms_norm_eps\":1e-06,\"rope_scaling\":null,\"rope_theta\":1000000,"
    "\"tie_word_embeddings\":true,\"torch_dtype\":\"bfloat16\",\"vocab_size\":16}";

/* The embedding row i, element j: exact in every dtype. */
static float embed_val(size_t seed, size_t k) {
    (void)seed;
    return (float)((int)k - 64) / 8.0f;
}

static int cmd_mkmodel(int argc, char **argv) {
    const char *dir = argv[0], *embed_dtype = "BF16", *drop = NULL, *shape_name = NULL, *dtype_name = NULL;
    size_t shape[2] = {0, 0}, skip = 0;
    int untied = 0, shards = 0;
    cJSON *cfg = cJSON_Parse(base_config);
    for (int i = 1; i < argc; i++) {
        char *a = argv[i], *eq;
        if (!strcmp(a, "--untied")) untied = 1;
        else if (!strcmp(a, "--shards")) shards = 1;
        else if (!strcmp(a, "--embed") && i + 1 < argc) embed_dtype = argv[++i];
        else if (!strcmp(a, "--drop") && i + 1 < argc) drop = argv[++i];
        else if (!strcmp(a, "--skip") && i + 1 < argc) skip = (size_t)atol(argv[++i]);
        else if (!strcmp(a, "--dtype") && i + 1 < argc && (eq = strchr(argv[i + 1], '='))) {
            *eq = 0;
            dtype_name = argv[++i];
            embed_dtype = eq + 1; /* reused below for the one tensor */
        }
        else if (!strcmp(a, "--shape") && i + 1 < argc && (eq = strchr(argv[i + 1], '='))) {
            *eq = 0;
            shape_name = argv[++i];
            if (sscanf(eq + 1, "%zu,%zu", &shape[0], &shape[1]) < 1) die("--shape NAME=D0[,D1]");
        } else if ((eq = strchr(a, '='))) {
            *eq = 0;
            cJSON_DeleteItemFromObjectCaseSensitive(cfg, a);
            if (eq[1]) {
                cJSON *v = cJSON_Parse(eq + 1);
                if (!v) die("KEY=JSON: bad JSON");
                cJSON_AddItemToObject(cfg, a, v);
            }
        } else die("mkmodel: unknown option");
    }
    if (untied) cJSON_ReplaceItemInObjectCaseSensitive(cfg, "tie_word_embeddings", cJSON_CreateFalse());
    mkdir(dir, 0755);
    wt t[4 + 11 * LAYERS];
    size_t n = 0, d[2];
    const char *dt = "BF16";
#define ADD(nm, nd, d0, d1, dtype, fn)                                                             \
    do {                                                                                           \
        d[0] = d0, d[1] = d1;                                                                      \
        t[n] = tensor(nm, dtype, nd, d, fn, n);                                                    \
        n++;                                                                                       \
    } while (0)
    ADD("model.embed_tokens.weight", 2, VOCAB, DIM, dtype_name ? "BF16" : embed_dtype, embed_val);
    for (int l = 0; l < LAYERS; l++) {
        char p[64];
        const struct {
            const char *s;
            int nd;
            size_t d0, d1;
        } L[] = {
            {"input_layernorm", 1, DIM, 0},        {"self_attn.q_proj", 2, HEADS * HD, DIM},
            {"self_attn.k_proj", 2, KV * HD, DIM}, {"self_attn.v_proj", 2, KV * HD, DIM},
            {"self_attn.o_proj", 2, DIM, HEADS * HD}, {"self_attn.q_norm", 1, HD, 0},
            {"self_attn.k_norm", 1, HD, 0},        {"post_attention_layernorm", 1, DIM, 0},
            {"mlp.gate_proj", 2, FF, DIM},         {"mlp.up_proj", 2, FF, DIM},
            {"mlp.down_proj", 2, DIM, FF},
        };
        for (size_t k = 0; k < sizeof L / sizeof *L; k++) {
            snprintf(p, sizeof p, "model.layers.%d.%s.weight", l, L[k].s);
            ADD(p, L[k].nd, L[k].d0, L[k].d1, dt, pattern);
        }
    }
    ADD("model.norm.weight", 1, DIM, 0, dt, pattern);
    /* tied models get a bogus lm_head.weight: it must be ignored */
    if (untied) ADD("lm_head.weight", 2, VOCAB, DIM, "F32", pattern);
    else ADD("lm_head.weight", 1, 3, 0, "F32", pattern);
    for (size_t i = 0; i < n; i++)
        if (shape_name && !strcmp(t[i].name, shape_name)) {
            free(t[i].data);
            size_t s[2] = {shape[0], shape[1]};
            t[i] = tensor(shape_name, t[i].dtype, shape[1] ? 2 : 1, s, pattern, i);
        }
    for (size_t i = 0; i < n; i++)
        if (dtype_name && !strcmp(t[i].name, dtype_name)) {
            free(t[i].data);
            size_t s[2] = {t[i].shape[0], t[i].shape[1]};
            t[i] = tensor(dtype_name, embed_dtype, t[i].ndim, s, pattern, i);
        }
    for (size_t i = 0; i < n; i++)
        if (drop && !strcmp(t[i].name, drop)) free(t[i].data), t[i] = t[--n];
    if (shards) {
        size_t h = n / 2;
        write_st(join(dir, "model-00001-of-00002.safetensors"), t, h, NULL);
        write_st(join(dir, "model-00002-of-00002.safetensors"), t + h, n - h, NULL);
        buf ix = {0};
        buf_printf(&ix, "{\"metadata\":{},\"weight_map\":{");
        for (size_t i = 0; i < n; i++)
            buf_printf(&ix, "%s\"%s\":\"model-0000%d-of-00002.safetensors\"", i ? "," : "", t[i].name, i < h ? 1 : 2);
        buf_printf(&ix, "}}");
        write_file(join(dir, "model.safetensors.index.json"), ix.data, ix.len, NULL, 0);
        buf_free(&ix);
    } else write_st_at(join(dir, "model.safetensors"), t, n, "{\"format\":\"pt\"}", skip);
    char *js = cJSON_Print(cfg);
    write_file(join(dir, "config.json"), js, strlen(js), NULL, 0);
    free(js);
    cJSON_Delete(cfg);
    for (size_t i = 0; i < n; i++) free(t[i].data);
    return 0;
}

static int cmd_cfg(const char *dir) {
    char err[512];
    qwen_config c;
    if (cfg_load(dir, &c, err, sizeof err)) return puts(err), 1;
    printf("dim=%d\nn_layers=%d\nn_heads=%d\nn_kv_heads=%d\nhead_dim=%d\nhidden_dim=%d\nvocab_size=%d\n"
           "max_pos=%d\nrms_eps=%g\nrope_theta=%g\ntie_embeddings=%d\nbos_id=%d\neos_id=%d\nyarn=%d\n",
           c.dim, c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim, c.hidden_dim, c.vocab_size, c.max_pos,
           (double)c.rms_eps, c.rope_theta, c.tie_embeddings, c.bos_id, c.eos_id, c.yarn);
    if (c.yarn)
        printf("yarn_factor=%g\nyarn_orig_max_pos=%d\nyarn_beta_fast=%g\nyarn_beta_slow=%g\n"
               "yarn_attn_factor=%.9f\nyarn_truncate=%d\n",
               c.yarn_factor, c.yarn_orig_max_pos, c.yarn_beta_fast, c.yarn_beta_slow, c.yarn_attn_factor,
               c.yarn_truncate);
    return 0;
}

static int cmd_open(const char *dir) {
    char err[512];
    model *m = model_open(dir, err, sizeof err);
    if (!m) return puts(err), 1;
    puts("ok");
    model_close(m);
    return 0;
}

static model *mk_open(const char *dir, const char *sub, char **args, int nargs) {
    char path[4096], err[512];
    snprintf(path, sizeof path, "%s/%s", dir, sub);
    char *argv[8] = {path};
    for (int i = 0; i < nargs; i++) argv[i + 1] = args[i];
    cmd_mkmodel(nargs + 1, argv);
    model *m = model_open(path, err, sizeof err);
    CHECK(m, "%s: %s", sub, err);
    return m;
}

/* model_embed rows equal the written values, in f32, whatever the stored dtype. */
static void check_embed(model *m, const char *what) {
    int32_t ids[] = {0, 15, 7, 7};
    float out[4 * DIM];
    char err[256];
    CHECK(model_embed(m, ids, 4, out, err, sizeof err) == 0, "%s: embed: %s", what, err);
    for (size_t r = 0; r < 4; r++)
        for (size_t j = 0; j < DIM; j++)
            CHECK(out[r * DIM + j] == embed_val(0, (size_t)ids[r] * DIM + j), "%s: embed[%d][%zu] = %g", what, ids[r], j,
                  out[r * DIM + j]);
    int32_t bad[] = {3, 16};
    CHECK(model_embed(m, bad, 2, out, err, sizeof err) == -1 && !strcmp(err, "token id 16 out of range [0, 16)"),
          "%s: id 16: %s", what, err);
    bad[1] = -1;
    CHECK(model_embed(m, bad, 2, out, err, sizeof err) == -1 && !strcmp(err, "token id -1 out of range [0, 16)"),
          "%s: id -1: %s", what, err);
}

static int cmd_model(const char *dir) {
    mkdir(dir, 0755);
    char *f16[] = {"--embed", "F16"}, *f32[] = {"--embed", "F32", "--untied"}, *untied[] = {"--untied"},
         *sharded[] = {"--shards"};
    model *tied = mk_open(dir, "tied", NULL, 0), *m16 = mk_open(dir, "f16", f16, 2),
          *m32 = mk_open(dir, "f32", f32, 3), *un = mk_open(dir, "untied", untied, 1),
          *sh = mk_open(dir, "sharded", sharded, 1), *again = mk_open(dir, "tied", NULL, 0);
    if (!tied || !m16 || !m32 || !un || !sh || !again) return 1;
    const qwen_config *c = &tied->cfg;
    CHECK(c->dim == DIM && c->n_layers == LAYERS && c->n_heads == HEADS && c->n_kv_heads == KV && c->head_dim == HD &&
              c->hidden_dim == FF && c->vocab_size == VOCAB && c->max_pos == 64,
          "config sizes");
    CHECK(c->bos_id == 1 && c->eos_id == 2 && c->tie_embeddings && !c->yarn, "config ids, tie, rope");
    CHECK(c->rms_eps == 1e-6f && c->rope_theta == 1e6, "config eps, theta");
    check_embed(tied, "bf16");
    check_embed(m16, "f16");
    check_embed(m32, "f32");
    check_embed(sh, "sharded");
    CHECK(tied->embed.dtype == ST_BF16 && m16->embed.dtype == ST_F16 && m32->embed.dtype == ST_F32, "embed dtypes");
    /* tied: lm_head is the embedding, the file's lm_head.weight ignored */
    CHECK(tied->lm_head.data == tied->embed.data && tied->lm_head.dtype == ST_BF16, "tied lm_head is the embedding");
    CHECK(un->lm_head.data != un->embed.data && un->lm_head.dtype == ST_F32 && !un->cfg.tie_embeddings,
          "untied lm_head is its own");
    const st_tensor *lm = st_find(un->st, "lm_head.weight");
    CHECK(lm && un->lm_head.data == lm->data, "untied lm_head points at lm_head.weight");
    for (size_t i = 0; i < (size_t)VOCAB * DIM; i++) /* mkmodel seeds each tensor with its index */
        CHECK(weight_get(un->lm_head, i) == pattern(2 + 11 * LAYERS, i), "lm_head[%zu]", i);
    /* every weight bound to its tensor */
    for (int l = 0; l < LAYERS; l++) {
        char name[96];
        snprintf(name, sizeof name, "model.layers.%d.self_attn.o_proj.weight", l);
        const st_tensor *t = st_find(tied->st, name);
        CHECK(t && tied->layers[l].wo.data == t->data && t->shape[0] == DIM && t->shape[1] == HEADS * HD, "%s", name);
        snprintf(name, sizeof name, "model.layers.%d.mlp.down_proj.weight", l);
        t = st_find(tied->st, name);
        CHECK(t && tied->layers[l].w_down.data == t->data, "%s", name);
    }
    CHECK(tied->final_norm.data == st_find(tied->st, "model.norm.weight")->data, "final norm");
    /* fingerprint: the same bytes give the same print; another config or header another */
    CHECK(!memcmp(tied->fingerprint, again->fingerprint, 32), "fingerprint not stable");
    CHECK(memcmp(tied->fingerprint, un->fingerprint, 32) && memcmp(tied->fingerprint, m16->fingerprint, 32) &&
              memcmp(tied->fingerprint, sh->fingerprint, 32),
          "fingerprints of different models collide");
    model_close(tied), model_close(m16), model_close(m32), model_close(un), model_close(sh), model_close(again);
    printf("%d checks, %d failures\n", checks, fails);
    return fails != 0;
}

int main(int argc, char **argv) {
    if (sodium_init() < 0) die("sodium_init");
    if (argc == 3 && !strcmp(argv[1], "read")) return cmd_read(argv[2]);
    if (argc == 4 && !strcmp(argv[1], "mkbad")) return cmd_mkbad(argv[2], argv[3]);
    if (argc == 3 && !strcmp(argv[1], "st")) return cmd_st(argv[2]);
    if (argc >= 3 && !strcmp(argv[1], "mkmodel")) return cmd_mkmodel(argc - 2, argv + 2);
    if (argc == 3 && !strcmp(argv[1], "cfg")) return cmd_cfg(argv[2]);
    if (argc == 3 && !strcmp(argv[1], "open")) return cmd_open(argv[2]);
    if (argc == 3 && !strcmp(argv[1], "model")) return cmd_model(argv[2]);
    fputs("usage: st_test read|mkbad CASE|st|mkmodel|cfg|open|model DIR ...\n", stderr);
    return 2;
}
