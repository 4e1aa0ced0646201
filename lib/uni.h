/* uni: the Unicode the reference tokenizer sees, from tables generated at build time
 * (lib/gen/ucdgen.c -> ucd_tables.h). Two Unicode versions on purpose:
 *  - the split regex's \p{L} \p{N} \s classes are the reference's (Unicode 16.0,
 *    lib/data/unicode_classes.json, probed from Oniguruma inside HF tokenizers);
 *  - NFC is Unicode 9.0's, derived from Debian's UnicodeData.txt by DerivedAge.txt
 *    (code points assigned after 9.0 neither decompose, compose nor reorder), checked
 *    against lib/data/nfc_unicode9_deltas.txt. */
#ifndef UNI_H
#define UNI_H

#include <stddef.h>
#include <stdint.h>

enum { UNI_L = 1, UNI_N = 2, UNI_S = 4 }; /* \p{L}, \p{N}, \s as the reference's regex sees them */

/* Class bits of code point cp (0 for none; cp > 0x10FFFF gives 0). */
int uni_class(uint32_t cp);

/* Decode one UTF-8 scalar at s[0..n). Returns its length (1..4) and sets *cp, or 0 if
 * the bytes there are not a valid, shortest-form scalar (surrogates, > U+10FFFF). */
int utf8_decode(const uint8_t *s, size_t n, uint32_t *cp);
/* Encode cp into out[4]; returns its length (1..4). */
int utf8_encode(uint32_t cp, uint8_t *out);
/* Length of the longest prefix of s[0..n) that is valid UTF-8. */
size_t utf8_valid_prefix(const uint8_t *s, size_t n);

/* NFC (Unicode 9.0 tables) of valid UTF-8 s[0..n). If s is already NFC (the common case,
 * found by a quick check), returns 0 and touches nothing. Otherwise
 * writes the normalized text to *out (malloc'd / realloc'd, capacity *cap, reusable
 * across calls), its length to *outn, and returns 1. Returns -1 on out of memory. */
int uni_nfc(const char *s, size_t n, char **out, size_t *outn, size_t *cap);

#endif
