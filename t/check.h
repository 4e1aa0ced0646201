/* check.h: what the C test programs in t/ share. CHECK counts a failed condition and says
 * why on stderr (the program exits non-zero at the end if any failed); die ends it at once
 * on a setup failure; xmalloc never returns NULL (and zeroes). Define `prog` before including it. */
#ifndef T_CHECK_H
#define T_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#include "util.h"

__attribute__((unused)) static int fails, checks;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        checks++;                                                                                  \
        if (!(cond)) {                                                                             \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            fails++;                                                                               \
        }                                                                                          \
    } while (0)

__attribute__((unused)) static void die(const char *what, const char *why) {
    fprintf(stderr, "%s: %s: %s\n", prog, what, why);
    exit(EXIT_DATA);
}

__attribute__((unused)) static void *xmalloc(size_t n) {
    void *p = calloc(n ? n : 1, 1);
    if (!p) die("malloc", "out of memory");
    return p;
}

#endif
