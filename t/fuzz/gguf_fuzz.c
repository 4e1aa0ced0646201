/* gguf_fuzz: libFuzzer target for lib/gguf (the parser and its accessors) and the GGUF
 * model format and tokenizer behind it (`make fuzz`, `make fuzz-run`; t/fuzz/corpus/gguf
 * seeds it with the fixtures' headers and small whole files).
 *
 * Every input is parsed from memory; one that parses is walked (every key as an integer
 * and a number, every array element), then written to a memfd and opened as a model
 * (config, binding, every WQ_FMT row of the embedding dequantized) and as a tokenizer.
 * Nothing may crash, leak or read out of bounds; errors are fine. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "gguf.h"
#include "model.h"
#include "tok.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    setenv("QWEN_CACHE", "/dev/null/no-cache", 1); /* no tokenizer cache files */
    return 0;
}

static void walk(const gguf *g) {
    for (size_t i = 0; i < g->n_kv; i++) {
        const gguf_kv *kv = &g->kv[i];
        uint64_t u;
        double d;
        int64_t v;
        gguf_kv_uint(kv, &u);
        gguf_kv_num(kv, &d);
        if (kv->type != GGUF_ARRAY) continue;
        size_t at = 0;
        gguf_str s;
        while (gguf_arr_next_str(kv, &at, &s) == 0)
            if (s.n) (void)*(volatile const char *)&s.s[s.n - 1];
        for (uint64_t k = 0; k < kv->count && k < 4096; k++) gguf_arr_int(kv, k, &v);
    }
    for (size_t i = 0; i < g->n_tensors; i++) {
        const gguf_tensor *t = &g->t[i];
        if (t->nbytes) (void)*(volatile const uint8_t *)&t->data[t->nbytes - 1];
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gguf g;
    char err[512];
    if (gguf_parse(&g, data, size, "fuzz", err, sizeof err) < 0) return 0;
    walk(&g);
    gguf_clear(&g);
    int fd = memfd_create("fuzz.gguf", 0);
    if (fd < 0 || write(fd, data, size) != (ssize_t)size) {
        if (fd >= 0) close(fd);
        return 0;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    model *m = model_open(path, err, sizeof err);
    if (m) {
        float *row = malloc((size_t)m->cfg.dim * sizeof *row);
        int32_t ids[2] = {0, m->cfg.vocab_size - 1};
        for (int i = 0; row && i < 2; i++) model_embed(m, &ids[i], 1, row, err, sizeof err);
        free(row);
        model_close(m);
    }
    tok *t = tok_load(path, err, sizeof err);
    if (t) {
        int32_t *ids = NULL;
        size_t n = 0, cap = 0;
        tok_encode(t, "Hello, world <|im_end|>", 23, &ids, &n, &cap, err, sizeof err);
        free(ids);
        tok_free(t);
    }
    close(fd);
    return 0;
}
