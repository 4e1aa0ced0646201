/* pool: a persistent thread pool for the CPU backend. Threads are created once (at
 * backend open) and reused for every matmul and attention of every token: a job is one
 * function run on all n threads at once, each told its index. Between jobs the workers
 * spin briefly (the next job of a layer usually follows within microseconds), then sleep
 * on a condition variable so an idle decoder does not burn a core. */
#ifndef POOL_H
#define POOL_H

#include <stdatomic.h>
#include <stddef.h>

typedef struct pool pool;

/* fn(arg, i, n) is called once for each i in [0, n) and must only touch its own share. */
typedef void pool_fn(void *arg, int i, int n);

/* A pool of n_threads threads in all, counting the caller of pool_run (so n_threads - 1
 * workers); n_threads 0 means one per online core. NULL on error. */
pool *pool_new(int n_threads, char *err, size_t errlen);
void pool_free(pool *p);

/* Threads taking part in each job (1 for a NULL pool). */
int pool_size(const pool *p);

/* Run fn on every thread of p, the caller being thread 0; return when all are done.
 * A NULL pool runs fn(arg, 0, 1) in the caller. Not reentrant: one job at a time. */
void pool_run(pool *p, pool_fn *fn, void *arg);

/* Rows [*lo, *hi) of n that thread i of nt owns: contiguous, split at multiples of
 * align rows so that threads writing neighbouring rows never share a cache line. */
void pool_split(size_t n, size_t align, int i, int nt, size_t *lo, size_t *hi);

/* Rows [0, n) handed out to whichever thread asks next, in chunks that shrink as the rows
 * run out (a share of what is left, at least `align` rows, multiples of align): a thread
 * held up (descheduled, a page fault, a slower stream) leaves the last rows to the others
 * rather than keep them waiting, while the first chunks are long runs. Which thread
 * computes a row changes nothing but the time. Set up before pool_run: */
typedef struct {
    atomic_size_t next;
    size_t n, align, nt;
} pool_chunks;
void pool_chunks_init(pool_chunks *c, size_t n, size_t align, int nt);
/* The next chunk [*lo, *hi); 0 when none is left. */
int pool_take(pool_chunks *c, size_t *lo, size_t *hi);

#endif
