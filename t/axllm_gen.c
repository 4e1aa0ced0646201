/* axllm_gen: turn a model directory the CPU backend runs into an ax-llm-style directory
 * for the simulated AX650 runtimes (t/sim/ax650), laid out as ax-llm ships Qwen3:
 *
 *   config.json          axllm-era keys (template_filename_axmodel, axmodel_num, ...)
 *   post_config.json     the sampling settings of AXERA-TECH/Qwen3-4B
 *   qwen3_tokenizer/     tokenizer.json, tokenizer_config.json, config.json (the HF one)
 *   qwen3-ax650/model.embed_tokens.weight.bfloat16.bin   raw bf16 [vocab][hidden],
 *                        truncated from f32 as ax-llm-build's fp32_to_bf16 does
 *   qwen3-ax650/qwen3_p<P>_l<i>_together.axmodel         sim.h's layer files
 *   qwen3-ax650/qwen3_post.axmodel
 *
 * usage: axllm_gen [--prefill P] [--kv S] [--groups S1,S2,...] SRC OUT
 * (defaults P 16, S 96, groups 1,32,64: small, so tests cross every boundary quickly) */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model.h"
#include "util.h"

static int die(const char *what) {
    fprintf(stderr, "axllm_gen: %s\n", what);
    return 1;
}

/* mkdir -p for OUT and one level below it */
static int mkdirs(const char *p) {
    char b[PATH_MAX];
    snprintf(b, sizeof b, "%s", p);
    for (char *s = b + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            mkdir(b, 0755);
            *s = '/';
        }
    struct stat st;
    return mkdir(b, 0755) == 0 || (stat(b, &st) == 0 && S_ISDIR(st.st_mode)) ? 0 : -1;
}

static int copy(const char *from, const char *to) {
    FILE *in = fopen(from, "rb"), *out = in ? fopen(to, "wb") : NULL;
    char b[65536];
    size_t n;
    int rc = in && out ? 0 : -1;
    while (!rc && (n = fread(b, 1, sizeof b, in)) > 0)
        if (fwrite(b, 1, n, out) != n) rc = -1;
    if (in) fclose(in);
    if (out && fclose(out)) rc = -1;
    return rc;
}

int main(int argc, char **argv) {
    long P = 16, S = 96;
    const char *groups = "1,32,64";
    int a = 1;
    for (; a + 1 < argc && !strncmp(argv[a], "--", 2); a += 2) {
        if (!strcmp(argv[a], "--prefill")) P = atol(argv[a + 1]);
        else if (!strcmp(argv[a], "--kv")) S = atol(argv[a + 1]);
        else if (!strcmp(argv[a], "--groups")) groups = argv[a + 1];
        else return die("usage: axllm_gen [--prefill P] [--kv S] [--groups S1,S2,...] SRC OUT");
    }
    if (argc - a != 2 || P < 1 || S < 1)
        return die("usage: axllm_gen [--prefill P] [--kv S] [--groups S1,S2,...] SRC OUT");
    char src[PATH_MAX], err[512], path[PATH_MAX + 64];
    if (!realpath(argv[a], src)) return die("SRC: no such directory");
    const char *out = argv[a + 1];
    model *m = model_open(src, err, sizeof err);
    if (!m) return die(err);
    const qwen_config *c = &m->cfg;
    long H = c->dim, D = (long)c->n_kv_heads * c->head_dim, V = c->vocab_size;
    snprintf(path, sizeof path, "%s/qwen3-ax650", out);
    if (mkdirs(path) < 0) return die("cannot create OUT");
    snprintf(path, sizeof path, "%s/qwen3_tokenizer", out);
    if (mkdirs(path) < 0) return die("cannot create OUT");
    const char *tokfiles[] = {"tokenizer.json", "tokenizer_config.json", "config.json"};
    for (int i = 0; i < 3; i++) {
        char from[PATH_MAX + 64];
        snprintf(from, sizeof from, "%s/%s", src, tokfiles[i]);
        snprintf(path, sizeof path, "%s/qwen3_tokenizer/%s", out, tokfiles[i]);
        if (copy(from, path) < 0) return die("cannot copy the tokenizer and config");
    }
    FILE *f;
    snprintf(path, sizeof path, "%s/config.json", out);
    if (!(f = fopen(path, "w"))) return die("cannot write config.json");
    fprintf(f, "{\n  \"model_name\": \"qwen3-sim\",\n  \"tokenizer_type\": \"Qwen3\",\n"
               "  \"url_tokenizer_model\": \"qwen3_tokenizer\",\n"
               "  \"template_filename_axmodel\": \"qwen3-ax650/qwen3_p%ld_l%%d_together.axmodel\",\n"
               "  \"axmodel_num\": %d,\n  \"filename_post_axmodel\": \"qwen3-ax650/qwen3_post.axmodel\",\n"
               "  \"filename_tokens_embed\": \"qwen3-ax650/model.embed_tokens.weight.bfloat16.bin\",\n"
               "  \"tokens_embed_num\": %ld,\n  \"tokens_embed_size\": %ld,\n  \"use_mmap_load_embed\": 1\n}\n",
            P, c->n_layers, V, H);
    if (fclose(f)) return die("cannot write config.json");
    snprintf(path, sizeof path, "%s/post_config.json", out);
    if (!(f = fopen(path, "w"))) return die("cannot write post_config.json");
    fputs("{\"enable_temperature\":false,\"temperature\":0.9,\"enable_repetition_penalty\":false,"
          "\"repetition_penalty\":1.2,\"penalty_window\":20,\"enable_top_p_sampling\":false,\"top_p\":0.8,"
          "\"enable_top_k_sampling\":true,\"top_k\":1}\n", f);
    if (fclose(f)) return die("cannot write post_config.json");
    /* the embedding, f32 -> bf16 by truncation (bits >> 16) */
    snprintf(path, sizeof path, "%s/qwen3-ax650/model.embed_tokens.weight.bfloat16.bin", out);
    float *row = malloc((size_t)H * sizeof *row);
    uint16_t *h = malloc((size_t)H * sizeof *h);
    if (!row || !h || !(f = fopen(path, "wb"))) return die("cannot write the embedding");
    for (int32_t id = 0; id < V; id++) {
        if (model_embed(m, &id, 1, row, err, sizeof err) < 0) return die(err);
        for (long j = 0; j < H; j++) {
            uint32_t u;
            memcpy(&u, &row[j], 4);
            h[j] = (uint16_t)(u >> 16);
        }
        if (fwrite(h, sizeof *h, (size_t)H, f) != (size_t)H) return die("cannot write the embedding");
    }
    if (fclose(f)) return die("cannot write the embedding");
    for (int l = 0; l < c->n_layers; l++) {
        snprintf(path, sizeof path, "%s/qwen3-ax650/qwen3_p%ld_l%d_together.axmodel", out, P, l);
        if (!(f = fopen(path, "w"))) return die("cannot write an axmodel");
        fprintf(f, "{\"sim_axmodel\": \"layer\", \"model\": \"%s\", \"layer\": %d, \"hidden\": %ld, \"kv_dim\": %ld, "
                   "\"kv_cache_num\": %ld, \"prefill_len\": %ld, \"groups\": [%s]}\n",
                src, l, H, D, S, P, groups);
        if (fclose(f)) return die("cannot write an axmodel");
    }
    snprintf(path, sizeof path, "%s/qwen3-ax650/qwen3_post.axmodel", out);
    if (!(f = fopen(path, "w"))) return die("cannot write the post axmodel");
    fprintf(f, "{\"sim_axmodel\": \"post\", \"model\": \"%s\", \"hidden\": %ld, \"vocab\": %ld}\n", src, H, V);
    if (fclose(f)) return die("cannot write the post axmodel");
    free(row);
    free(h);
    model_close(m);
    return 0;
}
