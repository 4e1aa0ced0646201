/* util: the small pieces every lib module shares: error strings, files, mmap,
 * atomic writes, the cache directory, little-endian helpers, growable buffers.
 *
 * Error convention (the whole of lib/): a function that can fail takes
 * `char *err, size_t errlen` last, returns 0 (or a non-NULL pointer) on success and
 * -1 (or NULL) on failure with a one-line reason in err ("what: why", no program
 * name, no newline). lib/ never prints and never exits. */
#ifndef UTIL_H
#define UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Exit statuses of every program, in one place. */
enum { EXIT_OK = 0, EXIT_DATA = 1, EXIT_USAGE = 2 };

/* printf into err (if err != NULL); always returns -1 so `return seterr(...)` reads well. */
int seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A whole file mapped read-only. size 0 files map to data == NULL. */
typedef struct {
    const uint8_t *data;
    size_t size;
} mapped;
int map_file(const char *path, mapped *m, char *err, size_t errlen);
void unmap_file(mapped *m);

/* Read a whole stream (stdin, a pipe) into a malloc'd buffer with a NUL after the end. */
int read_all(FILE *f, char **buf, size_t *len, char *err, size_t errlen);

/* Write len bytes to path atomically: temp file in the same dir, fsync, rename.
 * Either the old file or the complete new one is visible, never a partial file. */
int write_atomic(const char *path, const void *data, size_t len, char *err, size_t errlen);

/* The same for a file of size bytes written in place through a writable mapping (no second
 * copy in memory): a temp file beside path, its blocks allocated first (a full disk is an
 * error here, not a SIGBUS while filling), fill(ctx, base) writing all of it (0, or -1 with
 * err set), msync, fsync, rename. */
int write_mapped(const char *path, size_t size, int (*fill)(void *ctx, uint8_t *base, char *err, size_t errlen),
                 void *ctx, char *err, size_t errlen);

/* The per-user cache directory: $QWEN_CACHE, else $XDG_CACHE_HOME/qwen3-pipe, else
 * $HOME/.cache/qwen3-pipe; created (mode 0700) if missing. out gets the path. */
int cache_dir(char *out, size_t outlen, char *err, size_t errlen);

/* The model directory a program uses: given (from -m) if not NULL, else $QWEN_MODEL,
 * else the tiny model the build generated (DEFAULT_MODEL, set by the Makefile). */
const char *model_dir(const char *given);

/* What a filter reads: the file at path, or stdin when path is NULL or "-". *name gets
 * what to call it in messages ("stdin" or path). NULL with err if it cannot be opened. */
FILE *open_input(const char *path, const char **name, char *err, size_t errlen);

/* *out = s as a whole decimal integer in [lo, hi]; -1 if s is anything else. */
int parse_long(const char *s, long lo, long hi, long *out);

/* A progress callback for long work (model_open_q's quantizing): draws "what: 42%" on the
 * terminal stream ctx (a FILE *), rewriting the line; prints a newline when done == total.
 * Programs pass it only when that stream is a terminal. */
void progress_bar(void *ctx, size_t done, size_t total);

/* Seconds on the monotonic clock, for timings. */
double now_sec(void);

/* Growable byte buffer. */
typedef struct {
    char *data;
    size_t len, cap;
} buf;
int buf_reserve(buf *b, size_t extra);          /* 0, or -1 if out of memory */
int buf_append(buf *b, const void *p, size_t n);
int buf_putc(buf *b, char c);
int buf_printf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_free(buf *b);

/* Little-endian loads and stores (files are little-endian whatever the host). */
static inline uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t le64(const uint8_t *p) { return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32; }
static inline void put_le16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void put_le32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> 8 * i);
}
static inline void put_le64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> 8 * i);
}

#endif
