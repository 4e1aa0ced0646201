/* tok_build: tokenizer.json -> the compiled image (layout in tok_impl.h).
 *
 * Only the Qwen3 shape is accepted, since the encoder hard-codes that pipeline: NFC
 * normalizer, the Qwen2 Split regex + ByteLevel pre-tokenizer, byte-level BPE without
 * dropout, unk, byte fallback or affixes, and added tokens matched in the raw text (not
 * normalized, no stripping, not single-word) numbered right after the vocabulary.
 * Anything else is refused by name. This runs once per tokenizer.json (~100 ms, mostly
 * cJSON) and its result is cached, so it favours plainness over speed. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "tok_impl.h"
#include "uni.h"

static const char QWEN2_SPLIT[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+"
    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

enum { MAX_ADDED = sizeof(((tok *)0)->added_order) / sizeof(uint32_t) };

/* GPT-2's bytes_to_unicode, inverted: the byte each stand-in code point means. Printable
 * non-space bytes stand for themselves (! .. ~, U+00A1 .. U+00AC, U+00AE .. U+00FF); the
 * other 68 bytes are U+0100 .. U+0143 in byte order. */
static void byte_level_inverse(int16_t inv[324]) {
    for (int i = 0; i < 324; i++) inv[i] = -1;
    int k = 0;
    for (int b = 0; b < 256; b++) {
        int self = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        inv[self ? b : 256 + k++] = (int16_t)b;
    }
}

/* The raw bytes of byte-level string s into out (room for strlen(s) bytes): their
 * number, or -1 if s holds anything but the 256 stand-ins. */
static long unbyte(const int16_t *inv, const char *s, uint8_t *out) {
    size_t n = strlen(s), o = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int l = utf8_decode((const uint8_t *)s + i, n - i, &cp);
        if (l == 0 || cp >= 324 || inv[cp] < 0) return -1;
        out[o++] = (uint8_t)inv[cp];
        i += (size_t)l;
    }
    return (long)o;
}

static const char *jstr(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}
static int jis(const cJSON *o, const char *k, const char *want) {
    const char *s = jstr(o, k);
    return s && strcmp(s, want) == 0;
}
/* Absent, null or false. */
static int jfalse(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return !v || cJSON_IsNull(v) || cJSON_IsFalse(v);
}
/* Absent, null or "". */
static int jempty(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return !v || cJSON_IsNull(v) || (cJSON_IsString(v) && !*v->valuestring);
}

/* The pipeline around the model must be exactly Qwen3's. Returns the reason, or NULL. */
static const char *check_pipeline(const cJSON *root) {
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    if (!jis(norm, "type", "NFC")) return "normalizer is not NFC";
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    const cJSON *seq = cJSON_GetObjectItemCaseSensitive(pre, "pretokenizers");
    if (!jis(pre, "type", "Sequence") || cJSON_GetArraySize(seq) != 2)
        return "pre_tokenizer is not the Qwen2 Split + ByteLevel sequence";
    const cJSON *split = cJSON_GetArrayItem(seq, 0), *bl = cJSON_GetArrayItem(seq, 1);
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(split, "pattern");
    if (!jis(split, "type", "Split") || !jis(pat, "Regex", QWEN2_SPLIT) ||
        !jis(split, "behavior", "Isolated") || !jfalse(split, "invert"))
        return "pre_tokenizer Split is not the Qwen2 regex (Isolated)";
    if (!jis(bl, "type", "ByteLevel") || !jfalse(bl, "add_prefix_space") || !jfalse(bl, "use_regex"))
        return "pre_tokenizer ByteLevel has add_prefix_space or use_regex set";
    const cJSON *post = cJSON_GetObjectItemCaseSensitive(root, "post_processor");
    if (post && !cJSON_IsNull(post) && !jis(post, "type", "ByteLevel"))
        return "post_processor is not ByteLevel (it would add tokens)";
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(root, "decoder");
    if (!jis(dec, "type", "ByteLevel")) return "decoder is not ByteLevel";
    if (!jfalse(root, "truncation") || !jfalse(root, "padding")) return "truncation or padding is set";
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(m)) return "no model";
    if (cJSON_GetObjectItemCaseSensitive(m, "type") && !jis(m, "type", "BPE")) return "model is not BPE";
    if (!jfalse(m, "dropout") || !jfalse(m, "unk_token") || !jfalse(m, "byte_fallback") ||
        !jempty(m, "continuing_subword_prefix") || !jempty(m, "end_of_word_suffix"))
        return "model BPE has dropout, unk_token, byte_fallback or affixes set";
    return NULL;
}

typedef struct {
    const char *path;
    int16_t inv[324];
    size_t json_len;
    size_t n_vocab, n_ids, n_added, n_merges;
    uint8_t *bytes;       /* raw bytes of every id, in JSON order */
    size_t *at, *len;     /* where id's bytes are in bytes */
    uint32_t added_special[MAX_ADDED];
    uint32_t added_id[MAX_ADDED];
    char *err;
    size_t errlen;
} build;

/* model.vocab: byte-level string -> id, ids exactly [0, n). */
static int read_vocab(build *b, const cJSON *vocab, size_t *used) {
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab) {
        double d = cJSON_IsNumber(e) ? e->valuedouble : -1;
        if (!(d >= 0 && d < (double)b->n_vocab) || d != (size_t)d)
            return seterr(b->err, b->errlen, "%s: vocab: \"%s\": id out of range", b->path, e->string);
        size_t id = (size_t)d;
        if (b->len[id] != SIZE_MAX)
            return seterr(b->err, b->errlen, "%s: vocab: id %zu appears twice", b->path, id);
        long n = unbyte(b->inv, e->string, b->bytes + *used);
        if (n <= 0)
            return seterr(b->err, b->errlen, "%s: vocab: \"%s\": not a byte-level token", b->path, e->string);
        b->at[id] = *used;
        b->len[id] = (size_t)n;
        *used += (size_t)n;
    }
    return 0;
}

/* added_tokens: ids n_vocab .. n_ids-1, matched in raw text. */
static int read_added(build *b, const cJSON *added, size_t *used) {
    const cJSON *a;
    size_t k = 0;
    cJSON_ArrayForEach(a, added) {
        const cJSON *idj = cJSON_GetObjectItemCaseSensitive(a, "id");
        const char *content = jstr(a, "content");
        double d = cJSON_IsNumber(idj) ? idj->valuedouble : -1;
        if (!content || !*content || !(d >= (double)b->n_vocab && d < (double)b->n_ids) || d != (size_t)d)
            return seterr(b->err, b->errlen,
                          "%s: added_tokens[%zu]: needs a content and an id in [%zu, %zu)", b->path, k,
                          b->n_vocab, b->n_ids);
        if (!jfalse(a, "normalized") || !jfalse(a, "lstrip") || !jfalse(a, "rstrip") ||
            !jfalse(a, "single_word"))
            return seterr(b->err, b->errlen,
                          "%s: added token \"%s\": normalized, lstrip, rstrip or single_word set "
                          "(not supported)",
                          b->path, content);
        size_t id = (size_t)d, n = strlen(content);
        if (b->len[id] != SIZE_MAX)
            return seterr(b->err, b->errlen, "%s: added token id %zu appears twice", b->path, id);
        memcpy(b->bytes + *used, content, n);
        b->at[id] = *used;
        b->len[id] = n;
        *used += n;
        b->added_id[k] = (uint32_t)id;
        b->added_special[k] = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a, "special"));
        k++;
    }
    return 0;
}

static size_t pow2_above(size_t n) {
    size_t c = 1024;
    while (c < n + n / 2) c *= 2;
    return c;
}

/* Insert every vocabulary id into the image's vhash (no TOK_WHOLE yet). */
static void fill_vhash(tok *t, size_t n_vocab) {
    for (uint32_t id = 0; id < n_vocab; id++) {
        uint32_t a = le32(t->tokoff + 4 * (size_t)id), e = le32(t->tokoff + 4 * (size_t)id + 4);
        uint64_t h = tok_hash_bytes(t->blob + a, e - a);
        size_t i = (size_t)h & t->vmask;
        uint32_t probe = 1;
        for (; le32(t->vhash + 8 * i) != TOK_EMPTY; probe++) i = (i + 1) & t->vmask;
        if (probe > t->vprobe) t->vprobe = probe;
        uint8_t *slot = (uint8_t *)t->vhash + 8 * i;
        put_le32(slot, id);
        put_le32(slot + 4, (uint32_t)(h >> 32));
    }
}

/* One merge "a b" or ["a", "b"]: the ids of both sides and of their concatenation. */
static int read_merge(build *b, tok *t, const cJSON *m, size_t rank, uint8_t *scratch) {
    const char *l = NULL, *r = NULL;
    char *two = NULL;
    if (cJSON_IsString(m)) {
        two = strdup(m->valuestring);
        char *sp = two ? strchr(two, ' ') : NULL;
        if (sp && !strchr(sp + 1, ' ')) *sp = 0, l = two, r = sp + 1;
    } else if (cJSON_GetArraySize(m) == 2) {
        l = cJSON_GetStringValue(cJSON_GetArrayItem(m, 0));
        r = cJSON_GetStringValue(cJSON_GetArrayItem(m, 1));
    }
    long nl = l ? unbyte(b->inv, l, scratch) : -1;
    long nr = r && nl > 0 ? unbyte(b->inv, r, scratch + nl) : -1;
    uint32_t a = nl > 0 ? tok_vocab_find(t, scratch, (size_t)nl) : TOK_EMPTY;
    uint32_t c = nr > 0 ? tok_vocab_find(t, scratch + nl, (size_t)nr) : TOK_EMPTY;
    uint32_t ab = nr > 0 ? tok_vocab_find(t, scratch, (size_t)(nl + nr)) : TOK_EMPTY;
    free(two);
    if (a == TOK_EMPTY || c == TOK_EMPTY || ab == TOK_EMPTY)
        return seterr(b->err, b->errlen, "%s: merges[%zu]: not two vocabulary tokens whose join is one",
                      b->path, rank);
    /* HF collects merges into a map, so a repeated pair keeps its last rank. */
    size_t i = tok_hash_pair(a, c) & t->mmask;
    for (uint32_t probe = 1;; probe++, i = (i + 1) & t->mmask) {
        uint32_t sa = le32(t->mhash + 16 * i), sc = le32(t->mhash + 16 * i + 4);
        if (probe > t->mprobe) t->mprobe = probe;
        if (sa == TOK_EMPTY || (sa == a && sc == c)) break;
    }
    uint8_t *slot = (uint8_t *)t->mhash + 16 * i;
    put_le32(slot, a);
    put_le32(slot + 4, c);
    put_le32(slot + 8, (uint32_t)rank);
    put_le32(slot + 12, ab);
    return 0;
}

/* Mark the vocabulary entries BPE rebuilds whole from their own bytes (all of them
 * when the model ignores merges for whole words). */
static int mark_whole(tok *t, int ignore_merges) {
    uint32_t *out = malloc(4 * t->max_piece), *sym = malloc(4 * TOK_BPE_SYM(t->max_piece));
    uint64_t *heap = malloc(8 * TOK_BPE_HEAP(t->max_piece));
    int rc = out && sym && heap ? 0 : -1;
    for (size_t i = 0; i <= t->vmask && rc == 0; i++) {
        uint8_t *slot = (uint8_t *)t->vhash + 8 * i;
        uint32_t id = le32(slot);
        if (id == TOK_EMPTY) continue;
        uint32_t a = le32(t->tokoff + 4 * (size_t)id), e = le32(t->tokoff + 4 * (size_t)id + 4);
        if (ignore_merges || (tok_bpe(t, t->blob + a, e - a, out, sym, heap) == 1 && out[0] == id))
            put_le32(slot, id | TOK_WHOLE);
    }
    free(out);
    free(sym);
    free(heap);
    return rc;
}

static void seal(uint8_t *img, size_t size) {
    put_le64(img + H_SUM, tokimg_sum(img + TOKIMG_HDR, size - TOKIMG_HDR));
}

static int compile(build *b, const cJSON *root, uint8_t **out, size_t *outsize, const uint8_t src_hash[32]) {
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (!cJSON_IsObject(vocab) || !cJSON_IsArray(merges) || (added && !cJSON_IsArray(added)))
        return seterr(b->err, b->errlen, "%s: model.vocab, model.merges or added_tokens missing", b->path);
    b->n_vocab = (size_t)cJSON_GetArraySize(vocab);
    b->n_added = added ? (size_t)cJSON_GetArraySize(added) : 0;
    b->n_merges = (size_t)cJSON_GetArraySize(merges);
    b->n_ids = b->n_vocab + b->n_added;
    if (b->n_vocab < 256 || b->n_ids >= TOK_WHOLE)
        return seterr(b->err, b->errlen, "%s: a vocabulary of %zu entries cannot be byte-level BPE", b->path, b->n_vocab);
    if (b->n_added > MAX_ADDED)
        return seterr(b->err, b->errlen, "%s: %zu added tokens (at most %d)", b->path, b->n_added, MAX_ADDED);

    /* All the raw bytes together are shorter than the JSON text they come from (a walk
     * over 150k scattered cJSON nodes to add up exact sizes costs ~20 ms). */
    const cJSON *e;
    b->bytes = malloc(b->json_len + 1);
    b->at = malloc(sizeof(size_t) * b->n_ids);
    b->len = malloc(sizeof(size_t) * b->n_ids);
    if (!b->bytes || !b->at || !b->len) return seterr(b->err, b->errlen, "%s: out of memory", b->path);
    for (size_t i = 0; i < b->n_ids; i++) b->len[i] = SIZE_MAX;
    size_t used = 0;
    if (read_vocab(b, vocab, &used) < 0 || read_added(b, added, &used) < 0) return -1;
    for (size_t i = 0; i < b->n_ids; i++) /* n_ids entries, none twice: none missing either */
        if (b->len[i] == SIZE_MAX) return seterr(b->err, b->errlen, "%s: no token has id %zu", b->path, i);

    size_t blob_len = used, vcap = pow2_above(b->n_vocab), mcap = pow2_above(b->n_merges);
    size_t o_tokoff = TOKIMG_HDR, o_blob = o_tokoff + 4 * (b->n_ids + 1);
    size_t o_vhash = (o_blob + blob_len + 7) & ~(size_t)7, o_mhash = o_vhash + 8 * vcap;
    size_t o_added = o_mhash + 16 * mcap, size = o_added + 8 * b->n_added;
    uint8_t *img = malloc(size);
    if (!img) return seterr(b->err, b->errlen, "%s: out of memory", b->path);
    memset(img, 0, o_vhash);
    memset(img + o_vhash, 0xFF, o_added - o_vhash); /* all slots TOK_EMPTY */
    memcpy(img + H_MAGIC, TOKIMG_MAGIC, 8);
    put_le32(img + H_VERSION, TOKIMG_VERSION);
    put_le32(img + H_NIDS, (uint32_t)b->n_ids);
    put_le32(img + H_NVOCAB, (uint32_t)b->n_vocab);
    put_le32(img + H_NMERGES, (uint32_t)b->n_merges);
    put_le32(img + H_NADDED, (uint32_t)b->n_added);
    put_le32(img + H_VCAP, (uint32_t)vcap);
    put_le32(img + H_MCAP, (uint32_t)mcap);
    put_le64(img + H_TOKOFF, o_tokoff);
    put_le64(img + H_BLOB, o_blob);
    put_le64(img + H_BLOBLEN, blob_len);
    put_le64(img + H_VHASH, o_vhash);
    put_le64(img + H_MHASH, o_mhash);
    put_le64(img + H_ADDED, o_added);
    put_le64(img + H_SIZE, size);
    memcpy(img + H_SRCHASH, src_hash, 32);
    size_t pos = 0, max_piece = 0;
    for (size_t id = 0; id < b->n_ids; id++) { /* blob in id order */
        put_le32(img + o_tokoff + 4 * id, (uint32_t)pos);
        memcpy(img + o_blob + pos, b->bytes + b->at[id], b->len[id]);
        pos += b->len[id];
        if (id < b->n_vocab && b->len[id] > max_piece) max_piece = b->len[id];
    }
    put_le32(img + o_tokoff + 4 * b->n_ids, (uint32_t)pos);
    put_le32(img + H_MAXPIECE, (uint32_t)max_piece);
    for (size_t k = 0; k < b->n_added; k++) {
        put_le32(img + o_added + 8 * k, b->added_id[k]);
        put_le32(img + o_added + 8 * k + 4, b->added_special[k]);
    }

    /* A view of the image as it grows, for the lookups the merges need. */
    tok t = {0};
    t.n_vocab = b->n_vocab;
    t.tokoff = img + o_tokoff;
    t.blob = img + o_blob;
    t.vhash = img + o_vhash;
    t.mhash = img + o_mhash;
    t.vmask = (uint32_t)(vcap - 1);
    t.mmask = (uint32_t)(mcap - 1);
    fill_vhash(&t, b->n_vocab);
    uint8_t *scratch = malloc(2 * max_piece + 1);
    size_t rank = 0;
    int rc = scratch ? 0 : -1;
    cJSON_ArrayForEach(e, merges) {
        if (rc < 0) break;
        rc = read_merge(b, &t, e, rank++, scratch);
    }
    free(scratch);
    put_le32(img + H_VPROBE, t.vprobe);
    put_le32(img + H_MPROBE, t.mprobe);
    if (rc == 0) {
        seal(img, size);
        rc = tok_attach(&t, img, size, b->err, b->errlen);
    }
    if (rc == 0 && mark_whole(&t, cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(model, "ignore_merges"))) < 0)
        rc = seterr(b->err, b->errlen, "%s: out of memory", b->path);
    if (rc < 0) {
        free(img);
        return -1;
    }
    seal(img, size);
    *out = img;
    *outsize = size;
    return 0;
}

int tok_build(const char *path, const uint8_t *json, size_t len, const uint8_t src_hash[32],
              uint8_t **img, size_t *size, char *err, size_t errlen) {
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts((const char *)json, len, &end, 0);
    if (!root) {
        size_t at = end ? (size_t)(end - (const char *)json) : 0;
        return seterr(err, errlen, "%s: not valid JSON (near byte %zu of %zu)", path, at, len);
    }
    const char *why = check_pipeline(root);
    if (why) {
        cJSON_Delete(root);
        return seterr(err, errlen, "%s: %s: not a Qwen3 tokenizer", path, why);
    }
    build b = {.path = path, .json_len = len, .err = err, .errlen = errlen};
    byte_level_inverse(b.inv);
    int rc = compile(&b, root, img, size, src_hash);
    free(b.bytes);
    free(b.at);
    free(b.len);
    cJSON_Delete(root);
    return rc;
}
