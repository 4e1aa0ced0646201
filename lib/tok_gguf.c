/* tok_gguf: the tokenizer of a .gguf file (tokenizer.ggml.*), compiled into the same
 * image tok_build makes from tokenizer.json, and cached the same way.
 *
 * llama.cpp's converter (conversion/base.py get_vocab_base, _set_vocab_gpt2) writes the
 * HF vocabulary id by id: tokens[] are the byte-level strings of tokenizer.json's vocab,
 * except added tokens, which are their raw text with token_type 3 (CONTROL: HF's special
 * ones and any "<|...|>") or 4 (USER_DEFINED); ids HF leaves empty are "[PAD<i>]" of type
 * 5 (UNUSED); merges[] are tokenizer.json's "a b" strings; pre = "qwen2" names the Qwen2
 * split regex. So the tokenizer.json it came from is rebuilt here (normal tokens the
 * vocab, CONTROL and USER_DEFINED the added tokens, trailing UNUSED dropped) and handed to
 * tok_build, which checks everything it checks for a tokenizer.json. One thing a GGUF
 * does not keep: HF's "special" flag. CONTROL is taken as special, so <|fim_prefix|> and
 * the other "<|...|>" tokens Qwen3 marks not special are dropped by detok --skip-special.
 *
 * Cache: tok-<BLAKE2b of "gguf-tok" and the file's header, metadata and tensor infos>.bin
 * in cache_dir(), built once (about 0.3 s for Qwen3's 151k tokens), mapped after. */
#include <cjson/cJSON.h>
#include <limits.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "tok_impl.h"

/* Must match tok_build's check (the Qwen2 pre-tokenizer of tokenizer.json). */
static const char QWEN2_SPLIT[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+"
    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

enum { TT_NORMAL = 1, TT_CONTROL = 3, TT_USER = 4, TT_UNUSED = 5 };

/* s as a malloc'd C string, or NULL (out of memory, or a NUL inside: no token has one). */
static char *cstr(gguf_str s) {
    char *c = memchr(s.s, 0, s.n) ? NULL : malloc(s.n + 1);
    if (c) memcpy(c, s.s, s.n), c[s.n] = 0;
    return c;
}

static int str_key(const gguf *g, const char *key, const char *want) {
    const gguf_kv *kv = gguf_find(g, key);
    if (!kv || kv->type != GGUF_STRING) return 0;
    gguf_str s = {(const char *)kv->v + 8, kv->len - 8};
    return gguf_str_is(s, want);
}

/* The tokenizer.json the converter read, as cJSON. NULL with err. */
static cJSON *rebuild(const gguf *g, const char *path, char *err, size_t errlen) {
    if (!str_key(g, "tokenizer.ggml.model", "gpt2") || !str_key(g, "tokenizer.ggml.pre", "qwen2"))
        return seterr(err, errlen, "%s: tokenizer.ggml.model is not gpt2 with pre qwen2: not a Qwen3 tokenizer", path),
               NULL;
    const gguf_kv *toks = gguf_find(g, "tokenizer.ggml.tokens"), *types = gguf_find(g, "tokenizer.ggml.token_type"),
                  *merges = gguf_find(g, "tokenizer.ggml.merges");
    if (!toks || toks->type != GGUF_ARRAY || toks->elem != GGUF_STRING || !merges || merges->type != GGUF_ARRAY ||
        merges->elem != GGUF_STRING || !types || types->type != GGUF_ARRAY || types->count != toks->count)
        return seterr(err, errlen,
                      "%s: tokenizer.ggml.tokens, token_type (as many) and merges: missing or not arrays", path),
               NULL;
    cJSON *root = cJSON_CreateObject(), *model = cJSON_AddObjectToObject(root, "model");
    cJSON *vocab = cJSON_AddObjectToObject(model, "vocab"), *mj = cJSON_AddArrayToObject(model, "merges");
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    cJSON *pre = cJSON_AddObjectToObject(root, "pre_tokenizer"), *seq = cJSON_AddArrayToObject(pre, "pretokenizers");
    cJSON *split = cJSON_CreateObject(), *bl = cJSON_CreateObject();
    cJSON_AddItemToArray(seq, split);
    cJSON_AddItemToArray(seq, bl);
    cJSON_AddStringToObject(cJSON_AddObjectToObject(root, "normalizer"), "type", "NFC");
    cJSON_AddStringToObject(pre, "type", "Sequence");
    cJSON_AddStringToObject(split, "type", "Split");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(split, "pattern"), "Regex", QWEN2_SPLIT);
    cJSON_AddStringToObject(split, "behavior", "Isolated");
    cJSON_AddStringToObject(bl, "type", "ByteLevel");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(root, "decoder"), "type", "ByteLevel");
    cJSON_AddStringToObject(model, "type", "BPE");
    size_t at = 0;
    gguf_str s;
    int64_t unused_from = -1;
    for (uint64_t id = 0; gguf_arr_next_str(toks, &at, &s) == 0; id++) {
        int64_t ty;
        if (gguf_arr_int(types, id, &ty) < 0) {
            cJSON_Delete(root);
            return seterr(err, errlen, "%s: tokenizer.ggml.token_type: not integers", path), NULL;
        }
        if (ty == TT_UNUSED) {
            if (unused_from < 0) unused_from = (int64_t)id;
            continue;
        }
        char *t = cstr(s);
        if (unused_from >= 0 || !t || (ty != TT_NORMAL && ty != TT_CONTROL && ty != TT_USER)) {
            free(t);
            cJSON_Delete(root);
            if (!t) return seterr(err, errlen, "%s: tokenizer.ggml.tokens[%llu]: holds a NUL byte (or out of memory)",
                                  path, (unsigned long long)id), NULL;
            return seterr(err, errlen, "%s: tokenizer.ggml.token_type[%llu]: %lld %s", path, (unsigned long long)id,
                          (long long)ty, unused_from >= 0 ? "after an unused id (only trailing ones are supported)"
                                                          : "is not normal, control or user-defined"),
                   NULL;
        }
        if (ty == TT_NORMAL) cJSON_AddNumberToObject(vocab, t, (double)id);
        else {
            cJSON *a = cJSON_CreateObject();
            cJSON_AddNumberToObject(a, "id", (double)id);
            cJSON_AddStringToObject(a, "content", t);
            cJSON_AddBoolToObject(a, "special", ty == TT_CONTROL);
            cJSON_AddItemToArray(added, a);
        }
        free(t);
    }
    at = 0;
    while (gguf_arr_next_str(merges, &at, &s) == 0) {
        char *m = cstr(s);
        cJSON_AddItemToArray(mj, cJSON_CreateString(m ? m : "")); /* "" fails tok_build's check, by rank */
        free(m);
    }
    return root;
}

/* Map cdir/tok-<hx>.bin and attach it if sound and built from this hash. */
static int open_cached(tok *t, const char *name, const uint8_t h[32]) {
    mapped m;
    if (map_file(name, &m, NULL, 0) < 0) return -1;
    if (tok_attach(t, m.data, m.size, NULL, 0) < 0 || memcmp(m.data + H_SRCHASH, h, 32) != 0) {
        unmap_file(&m);
        memset(t, 0, sizeof *t);
        return -1;
    }
    t->map = m;
    return 0;
}

tok *tok_load_gguf(const char *path, char *err, size_t errlen) {
    if (sodium_init() < 0) return seterr(err, errlen, "libsodium: cannot initialize"), NULL;
    gguf *g = gguf_open(path, err, errlen);
    if (!g) return NULL;
    tok *t = calloc(1, sizeof *t);
    if (!t) {
        gguf_close(g);
        return seterr(err, errlen, "%s: out of memory", path), NULL;
    }
    uint8_t h[32];
    crypto_generichash_state hs;
    crypto_generichash_init(&hs, NULL, 0, sizeof h);
    crypto_generichash_update(&hs, (const uint8_t *)"gguf-tok", 8);
    crypto_generichash_update(&hs, g->base, g->info_end);
    crypto_generichash_final(&hs, h, sizeof h);
    char cdir[PATH_MAX], name[PATH_MAX + 80];
    int cached = cache_dir(cdir, sizeof cdir, NULL, 0) == 0;
    if (cached) {
        int n = snprintf(name, sizeof name, "%s/tok-", cdir);
        for (int i = 0; i < 32; i++) n += snprintf(name + n, sizeof name - (size_t)n, "%02x", h[i]);
        snprintf(name + n, sizeof name - (size_t)n, ".bin");
        if (open_cached(t, name, h) == 0) {
            gguf_close(g);
            return t;
        }
    }
    cJSON *j = rebuild(g, path, err, errlen);
    gguf_close(g);
    char *json = NULL;
    if (j && !(json = cJSON_PrintUnformatted(j))) seterr(err, errlen, "%s: out of memory", path);
    cJSON_Delete(j);
    uint8_t *img = NULL;
    size_t size;
    if (json && tok_build(path, (const uint8_t *)json, strlen(json), h, &img, &size, err, errlen) == 0 &&
               tok_attach(t, img, size, err, errlen) == 0) {
        free(json);
        t->owned = img;
        if (cached) write_atomic(name, img, size, NULL, 0); /* an optimization: failure is fine */
        return t;
    }
    free(json);
    free(img);
    free(t);
    return NULL;
}
