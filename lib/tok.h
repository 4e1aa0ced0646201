/* tok: the Qwen3 byte-level BPE tokenizer, exact to Hugging Face `tokenizers`.
 *
 * Encoding: added tokens are matched first in the raw text (exact, case-sensitive,
 * longest match, even inside words); each span between them is NFC-normalized
 * (Unicode 9.0), split by the Qwen2 pre-tokenizer regex, mapped byte-level, and merged
 * by BPE rank. Decoding: the bytes of each id, concatenated.
 *
 * tok_load reads DIR/tokenizer.json once and keeps a compiled binary form in the
 * cache directory (util.h cache_dir), keyed by a BLAKE2b hash of the source file and
 * written atomically; later loads mmap it and start in about a millisecond. */
#ifndef TOK_H
#define TOK_H

#include <stddef.h>
#include <stdint.h>

typedef struct tok tok;

/* Load the tokenizer of model directory dir (dir/tokenizer.json, or the compiled
 * cache of it), or of a .gguf file (its tokenizer.ggml.* keys; tok_gguf.c). NULL on error. */
tok *tok_load(const char *dir, char *err, size_t errlen);
void tok_free(tok *t);

/* Total number of ids (merged vocabulary + added tokens): valid ids are [0, n). */
size_t tok_vocab_size(const tok *t);

/* Append the ids of text[0..len) to *ids (malloc'd/realloc'd, capacity *cap, length *n).
 * text must be valid UTF-8 (check with utf8_valid_prefix first): invalid UTF-8 is
 * refused with -1 and the byte offset in err. -1 on out of memory too. */
int tok_encode(const tok *t, const char *text, size_t len, int32_t **ids, size_t *n, size_t *cap,
               char *err, size_t errlen);

/* The raw bytes id stands for (byte-level decoded; an added token's own text).
 * NULL if id is out of range. */
const char *tok_bytes(const tok *t, int32_t id, size_t *len);

/* 1 if id is one of the "special" added tokens (<|im_start|>, <|endoftext|>, ...:
 * those skip_special_tokens drops), else 0. */
int tok_is_special(const tok *t, int32_t id);

/* The id of an added token by its exact text ("<|im_end|>"), or -1. */
int32_t tok_added_id(const tok *t, const char *text);

#endif
