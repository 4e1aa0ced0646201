/* utf8: turning token bytes into text the way HF decode does (String::from_utf8_lossy):
 * each maximal invalid subpart becomes one U+FFFD. Streaming callers hold back an
 * incomplete trailing sequence until more bytes arrive. */
#ifndef UTF8_H
#define UTF8_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* Append the text of s[0..n) to out, each maximal invalid subpart replaced by U+FFFD.
 * If final is 0, an incomplete sequence at the end that could still become valid is
 * left unconsumed. Returns the number of bytes consumed (n when final), or (size_t)-1
 * if out of memory. */
size_t utf8_lossy(const uint8_t *s, size_t n, int final, buf *out);

/* Offset of the first invalid byte of s[0..n), or n if s is valid UTF-8. */
size_t utf8_check(const uint8_t *s, size_t n);

#endif
