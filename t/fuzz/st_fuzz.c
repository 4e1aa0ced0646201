/* st_fuzz: libFuzzer target for lib/st (safetensors) and model_open over it (`make fuzz`,
 * `make fuzz-run`; t/fuzz/corpus/st seeds it with files st_test mkmodel writes).
 *
 * st_open reads a directory, so each input becomes DIR/model.safetensors in a private
 * temporary directory beside a fixed config.json (st_test's tiny Qwen3: dim 8, 2 layers,
 * heads 2, kv 1, head_dim 6, ff 20, vocab 16, tied); a file that opens is listed, every
 * tensor's last byte read, and the model bound and an embedding row looked up. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model.h"
#include "st.h"

static char dir[64], file[96];

static const char config[] =
    "{\"model_type\": \"qwen3\", \"hidden_size\": 8, \"num_hidden_layers\": 2, \"num_attention_heads\": 2,"
    " \"num_key_value_heads\": 1, \"head_dim\": 6, \"intermediate_size\": 20, \"vocab_size\": 16,"
    " \"max_position_embeddings\": 64, \"rms_norm_eps\": 1e-06, \"rope_theta\": 1000000,"
    " \"tie_word_embeddings\": true, \"hidden_act\": \"silu\"}";

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    snprintf(dir, sizeof dir, "/tmp/st_fuzz.XXXXXX");
    if (!mkdtemp(dir)) return 1;
    snprintf(file, sizeof file, "%s/model.safetensors", dir);
    char cfg[96];
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    FILE *f = fopen(cfg, "w");
    if (!f || fputs(config, f) < 0 || fclose(f)) return 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FILE *f = fopen(file, "wb");
    if (!f) return 0;
    size_t w = fwrite(data, 1, size, f);
    if (fclose(f) || w != size) return 0;
    char err[512];
    st_file *s = st_open(dir, err, sizeof err);
    if (s) {
        size_t n;
        const st_tensor *t = st_tensors(s, &n);
        for (size_t i = 0; i < n; i++) {
            if (t[i].nbytes) (void)*(volatile const uint8_t *)((const uint8_t *)t[i].data + t[i].nbytes - 1);
            if (st_find(s, t[i].name) == NULL) abort(); /* every listed name is found */
        }
        st_close(s);
    }
    model *m = model_open(dir, err, sizeof err);
    if (m) {
        float row[8];
        int32_t id = 15;
        model_embed(m, &id, 1, row, err, sizeof err);
        model_close(m);
    }
    return 0;
}
