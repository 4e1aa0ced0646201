/* fmt_axllm: an ax-llm model directory (Axera's AX650 runtime) as a model, for the host
 * stages (tok, embed, sessions) and the ax650 backend.
 *
 * Such a directory holds the decoder layers compiled into per-layer *.axmodel files,
 * which only the NPU runs: the model it makes has a config and an embedding table
 * (the raw bf16 [vocab][hidden] file, mapped and used in place) and no layer, norm or
 * lm_head weights (dtype ST_OTHER, so the CPU backend refuses it). The axllm-era
 * config.json names the files (an HTTP-era directory, whose config.json is empty, names them
 * in the flags of its run_*.sh scripts, read as such); the Qwen3 sizes that it does not carry (heads, head_dim,
 * rope) come from the Hugging Face config.json in the tokenizer folder ax-llm ships
 * (qwen3_tokenizer/, or tokenizer/), checked against the ax-llm config, or else from the
 * released Qwen3 sizes that match its hidden size and layer count. The fingerprint
 * is BLAKE2b of both configs and the sizes of every file the model consists of. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ax650.h"
#include "util.h"

typedef struct {
    mapped embed;
} axllm;

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    char *s = NULL;
    if (!f) return NULL;
    if (read_all(f, &s, len, NULL, 0) < 0) s = NULL;
    fclose(f);
    return s;
}

static int path_in(char *out, const char *dir, const char *rel, const char *field, char *err, size_t errlen) {
    if (!rel || !*rel) return seterr(err, errlen, "%s/config.json: %s: missing", dir, field);
    if ((size_t)snprintf(out, PATH_MAX, "%s/%s", dir, rel) >= PATH_MAX)
        return seterr(err, errlen, "%s/config.json: %s: path too long", dir, field);
    return 0;
}

void axllm_layer_path(const axllm_files *f, int l, char *out, size_t outlen) {
    const char *d = f->layer_tmpl, *p, *at = NULL;
    for (p = d; (p = strstr(p, "%d")); p++) at = p;
    if (!at) snprintf(out, outlen, "%s", d);
    else snprintf(out, outlen, "%.*s%d%s", (int)(at - d), d, l, at + 2);
}

static const char *str_of(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int long_of(const cJSON *o, const char *k, long lo, long hi, long *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(v) || v->valuedouble < lo || v->valuedouble > hi || v->valuedouble != (long)v->valuedouble)
        return -1;
    *out = (long)v->valuedouble;
    return 0;
}

/* The flags of an HTTP-era run script (run_qwen3_4b_int8_ctx_ax650.sh: --template_filename_axmodel
 * "..." --axmodel_num 36 ...) as the JSON object an axllm-era config.json would hold. */
static char *script_config(const char *script) {
    static const char *const keys[] = {"template_filename_axmodel", "axmodel_num", "filename_post_axmodel",
                                       "filename_tokens_embed", "tokens_embed_num", "tokens_embed_size"};
    size_t len;
    char *text = slurp(script, &len), *p = text, *json = NULL;
    cJSON *o = cJSON_CreateObject();
    char *prev = NULL;
    while (text && o && *p) { /* words: whitespace apart, quotes kept together, backslash-newline skipped */
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\\') p++;
        if (!*p) break;
        char *w = p, *o_ = p;
        while (*p && *p != ' ' && *p != '\t' && *p != '\n') {
            char q = *p;
            if (q == '"' || q == '\'') {
                for (p++; *p && *p != q; p++) *o_++ = *p;
                if (*p) p++;
            } else
                *o_++ = *p++;
        }
        int end = *p != 0;
        if (end) p++;
        *o_ = 0;
        for (size_t i = 0; prev && i < sizeof keys / sizeof *keys; i++)
            if (!strncmp(prev, "--", 2) && !strcmp(prev + 2, keys[i]) && !cJSON_HasObjectItem(o, keys[i])) {
                char *e;
                double v = strtod(w, &e);
                if (*w && !*e) cJSON_AddNumberToObject(o, keys[i], v);
                else cJSON_AddStringToObject(o, keys[i], w);
            }
        prev = w;
        if (!end) break;
    }
    if (o && cJSON_HasObjectItem(o, "template_filename_axmodel")) json = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    free(text);
    return json;
}

/* The configuration of dir: config.json when it names the layer files (axllm era), else the
 * flags of a run_*.sh beside it (HTTP era: config.json is empty). Malloc'd, or NULL. */
static char *config_text(const char *dir, size_t *len, char *src, size_t srclen) {
    char path[PATH_MAX];
    snprintf(src, srclen, "%s/config.json", dir);
    char *json = slurp(src, len);
    if (json && strstr(json, "\"template_filename_axmodel\"")) return json;
    free(json);
    DIR *d = opendir(dir);
    struct dirent *e;
    char *best = NULL;
    int best_rank = -1;
    while (d && (e = readdir(d))) { /* run_*.sh that name the layer files; the on-board one first */
        size_t n = strlen(e->d_name);
        if (strncmp(e->d_name, "run_", 4) || n < 7 || strcmp(e->d_name + n - 3, ".sh")) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        char *j = script_config(path);
        int rank = !j ? -1 : strstr(e->d_name, "axcl") ? 0 : 1;
        if (rank > best_rank || (rank == best_rank && j && strcmp(path, src) < 0)) {
            free(best);
            best = j, j = NULL, best_rank = rank;
            snprintf(src, srclen, "%s", path);
        }
        free(j);
    }
    if (d) closedir(d);
    if (best) *len = strlen(best);
    else snprintf(src, srclen, "%s/config.json", dir);
    return best;
}

int axllm_files_read(const char *dir, axllm_files *f, char *err, size_t errlen) {
    char path[PATH_MAX];
    size_t len;
    memset(f, 0, sizeof *f);
    char *json = config_text(dir, &len, path, sizeof path);
    if (!json)
        return seterr(err, errlen,
                      "%s: no config.json naming the axmodels (template_filename_axmodel), nor a run_*.sh that does",
                      dir);
    cJSON *o = cJSON_ParseWithLength(json, len);
    free(json);
    int rc = -1;
    long n;
    const char *tmpl = str_of(o, "template_filename_axmodel");
    if (!cJSON_IsObject(o)) seterr(err, errlen, "%s: not a JSON object", path);
    else if (path_in(f->layer_tmpl, dir, tmpl, "template_filename_axmodel", err, errlen) < 0) {
    } else if (!strstr(tmpl, "%d") || strchr(strstr(tmpl, "%d") + 2, '%') || strchr(tmpl, '%') != strstr(tmpl, "%d"))
        seterr(err, errlen, "%s: template_filename_axmodel: \"%.64s\" must hold one %%d (the layer) and no other %%",
               path, tmpl);
    else if (long_of(o, "axmodel_num", 1, 1024, &n) < 0)
        seterr(err, errlen, "%s: axmodel_num: missing or not an integer in [1, 1024]", path);
    else if (path_in(f->post, dir, str_of(o, "filename_post_axmodel"), "filename_post_axmodel", err, errlen) < 0 ||
             path_in(f->embed, dir, str_of(o, "filename_tokens_embed"), "filename_tokens_embed", err, errlen) < 0) {
    } else if (long_of(o, "tokens_embed_num", 1, 1 << 24, &f->vocab) < 0)
        seterr(err, errlen, "%s: tokens_embed_num: missing or not an integer in [1, %d]", path, 1 << 24);
    else if (long_of(o, "tokens_embed_size", 1, 1 << 16, &f->hidden) < 0)
        seterr(err, errlen, "%s: tokens_embed_size: missing or not an integer in [1, %d]", path, 1 << 16);
    else {
        f->n_layers = (int)n;
        const char *pc = str_of(o, "post_config_path");
        struct stat st;
        if (path_in(f->post_config, dir, pc ? pc : "post_config.json", "post_config_path", NULL, 0) < 0 ||
            stat(f->post_config, &st) < 0)
            f->post_config[0] = 0;
        rc = 0;
    }
    cJSON_Delete(o);
    return rc;
}

/* An axllm-era config.json names its layer files; a Hugging Face one never does. */
static int detect(const char *dir) {
    char path[PATH_MAX];
    size_t len;
    char *json = config_text(dir, &len, path, sizeof path);
    free(json);
    return json != NULL;
}

static void hash_file_size(crypto_generichash_state *hs, const char *path) {
    struct stat st;
    uint8_t b[8];
    put_le64(b, stat(path, &st) == 0 ? (uint64_t)st.st_size : UINT64_MAX);
    crypto_generichash_update(hs, b, sizeof b);
}

/* Without the HF config, the released Qwen3 sizes (reference notes, quant.md §4.3): what a
 * session needs (layers, dim, KV heads x head_dim) and the rest for completeness. */
static int qwen3_preset(const axllm_files *f, qwen_config *c) {
    static const struct {
        int dim, layers, heads, hidden, tied;
    } q[] = {{1024, 28, 16, 3072, 1}, {2048, 28, 16, 6144, 1}, {2560, 36, 32, 9728, 1},
             {4096, 36, 32, 12288, 0}, {5120, 40, 40, 17408, 0}, {5120, 64, 64, 25600, 0}};
    for (size_t i = 0; i < sizeof q / sizeof *q; i++)
        if (q[i].dim == f->hidden && q[i].layers == f->n_layers && f->vocab == 151936) {
            *c = (qwen_config){.dim = q[i].dim, .n_layers = q[i].layers, .n_heads = q[i].heads, .n_kv_heads = 8,
                               .head_dim = 128, .hidden_dim = q[i].hidden, .vocab_size = 151936, .max_pos = 40960,
                               .rms_eps = 1e-6f, .rope_theta = 1e6, .tie_embeddings = q[i].tied,
                               .bos_id = 151643, .eos_id = 151645};
            return 0;
        }
    return -1;
}

static int open_axllm(model *m, const char *dir, char *err, size_t errlen) {
    axllm_files f;
    if (axllm_files_read(dir, &f, err, errlen) < 0) return -1;
    static const char *const tokdirs[] = {"qwen3_tokenizer", "tokenizer"};
    char hfdir[PATH_MAX] = "", path[PATH_MAX + 32];
    for (size_t i = 0; i < 2 && !hfdir[0]; i++) {
        struct stat st;
        snprintf(path, sizeof path, "%s/%s/config.json", dir, tokdirs[i]);
        if (stat(path, &st) == 0) snprintf(hfdir, sizeof hfdir, "%s/%s", dir, tokdirs[i]);
    }
    char e[256];
    if (!hfdir[0]) {
        if (qwen3_preset(&f, &m->cfg) < 0)
            return seterr(err, errlen, "%s: no qwen3_tokenizer/config.json (the Hugging Face config: ax-llm's own "
                          "config.json has no head counts), and hidden %ld with %d layers is no Qwen3 we know", dir,
                          f.hidden, f.n_layers);
    } else if (cfg_load(hfdir, &m->cfg, e, sizeof e) < 0)
        return seterr(err, errlen, "%s/%s", hfdir, e);
    const qwen_config *c = &m->cfg;
    if (c->dim != f.hidden || c->vocab_size != f.vocab || c->n_layers != f.n_layers)
        return seterr(err, errlen,
                      "%s: config.json says hidden %ld, vocab %ld, %d layers; %s/config.json says %d, %d, %d", dir,
                      f.hidden, f.vocab, f.n_layers, hfdir, c->dim, c->vocab_size, c->n_layers);
    axllm *a = calloc(1, sizeof *a);
    if (!a || !(m->layers = calloc((size_t)c->n_layers, sizeof *m->layers))) {
        free(a);
        return seterr(err, errlen, "%s: out of memory", dir);
    }
    m->fmt_ctx = a;
    if (map_file(f.embed, &a->embed, e, sizeof e) < 0) return seterr(err, errlen, "%s", e);
    size_t want = (size_t)f.vocab * (size_t)f.hidden * 2;
    if (a->embed.size != want)
        return seterr(err, errlen, "%s: %zu bytes, want %zu (bf16 [%ld][%ld], tokens_embed_num x tokens_embed_size)",
                      f.embed, a->embed.size, want, f.vocab, f.hidden);
    m->embed = (weight){ST_BF16, a->embed.data};
    /* the layers live in the axmodels: nothing here for a CPU to run */
    weight none = {ST_OTHER, NULL};
    m->final_norm = m->lm_head = none;
    for (int l = 0; l < c->n_layers; l++) {
        layer_weights *w = &m->layers[l];
        weight *ws[] = {&w->attn_norm, &w->wq, &w->wk, &w->wv, &w->wo, &w->q_norm, &w->k_norm, &w->ffn_norm,
                        &w->w_gate, &w->w_up, &w->w_down};
        for (size_t i = 0; i < sizeof ws / sizeof *ws; i++) *ws[i] = none;
    }
    crypto_generichash_state hs;
    crypto_generichash_init(&hs, (const unsigned char *)"ax-llm", 6, sizeof m->fingerprint);
    size_t len;
    char *json = config_text(dir, &len, path, sizeof path);
    if (json) crypto_generichash_update(&hs, (const unsigned char *)json, len);
    free(json);
    json = NULL;
    snprintf(path, sizeof path, "%s/config.json", hfdir);
    if (hfdir[0] && (json = slurp(path, &len))) crypto_generichash_update(&hs, (const unsigned char *)json, len);
    free(json);
    hash_file_size(&hs, f.embed);
    hash_file_size(&hs, f.post);
    for (int l = 0; l < f.n_layers; l++) {
        axllm_layer_path(&f, l, path, sizeof path);
        hash_file_size(&hs, path);
    }
    crypto_generichash_final(&hs, m->fingerprint, sizeof m->fingerprint);
    return 0;
}

static void close_axllm(model *m) {
    axllm *a = m->fmt_ctx;
    if (!a) return;
    unmap_file(&a->embed);
    free(a);
    m->fmt_ctx = NULL;
}

const model_format fmt_axllm = {
    .name = "ax-llm",
    .detect = detect,
    .open = open_axllm,
    .close = close_axllm,
};

int axllm_is(const model *m) { return m->format == &fmt_axllm; }
