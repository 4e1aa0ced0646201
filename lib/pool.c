/* pool: persistent workers woken by a generation counter. pool_run publishes the job and
 * bumps `gen`; each worker spins on gen for SPIN_NS, then sleeps on a condvar. The
 * condvar is only signalled when some worker said it sleeps (`sleepers`), so a busy
 * decode loop costs no system call per job. Completion is an atomic countdown the
 * caller spins on: workers finish their share within microseconds of the caller. */
#include "pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <sched.h>
#include <unistd.h>

#include "util.h"

/* Long enough to cover the gap between two matmuls of a layer (norms, RoPE, a residual
 * add), short enough that a worker does not hold a core while the sampler runs. */
enum { SPIN_NS = 200 * 1000 };

struct pool {
    int n;                  /* threads per job, the caller included */
    pthread_t *th;          /* n - 1 workers */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_uint gen;        /* bumped once per job (and once to stop) */
    atomic_int pending;     /* workers still running the current job */
    atomic_int sleepers;    /* workers waiting (or about to wait) on cv */
    int stop;               /* written before the last gen bump */
    pool_fn *fn;            /* the current job, written before its gen bump */
    void *arg;
};

typedef struct {
    pool *p;
    int i;
} worker_arg;

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Wait until gen differs from seen; return the new value. */
static unsigned wait_job(pool *p, unsigned seen) {
    unsigned g;
    long long until = now_ns() + SPIN_NS;
    for (int k = 0;; k++) {
        if ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) != seen) return g;
        if ((k & 255) == 255 && now_ns() > until) break;
        cpu_relax();
    }
    pthread_mutex_lock(&p->mu);
    /* seq_cst increment then load, against pool_run's seq_cst bump then load of
     * sleepers: either we see the new job here or pool_run sees us and signals. */
    atomic_fetch_add(&p->sleepers, 1);
    while ((g = atomic_load(&p->gen)) == seen) pthread_cond_wait(&p->cv, &p->mu);
    atomic_fetch_sub(&p->sleepers, 1);
    pthread_mutex_unlock(&p->mu);
    return g;
}

static void *worker(void *a) {
    worker_arg *wa = a;
    pool *p = wa->p;
    int i = wa->i;
    free(wa);
    unsigned seen = 0;
    for (;;) {
        seen = wait_job(p, seen);
        if (p->stop) return NULL;
        p->fn(p->arg, i, p->n);
        atomic_fetch_sub_explicit(&p->pending, 1, memory_order_release);
    }
}

/* Publish a job (or the stop request) to every worker. */
static void bump(pool *p) {
    atomic_store_explicit(&p->pending, p->n - 1, memory_order_relaxed);
    atomic_fetch_add(&p->gen, 1);
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
}

pool *pool_new(int n_threads, char *err, size_t errlen) {
    if (n_threads < 0) {
        seterr(err, errlen, "threads: %d is negative", n_threads);
        return NULL;
    }
    if (n_threads == 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = c > 0 ? (int)c : 1;
    }
    pool *p = calloc(1, sizeof *p);
    if (!p || !(p->th = calloc((size_t)n_threads, sizeof *p->th))) {
        free(p);
        seterr(err, errlen, "thread pool: out of memory");
        return NULL;
    }
    p->n = 1;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    atomic_init(&p->gen, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->sleepers, 0);
    /* p->n counts the workers started so far (plus the caller), so pool_free can stop a
     * partly built pool. */
    for (int i = 1; i < n_threads; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (wa) *wa = (worker_arg){p, i};
        if (!wa || pthread_create(&p->th[i - 1], NULL, worker, wa) != 0) {
            free(wa);
            pool_free(p);
            seterr(err, errlen, "thread pool: cannot start thread %d of %d", i + 1, n_threads);
            return NULL;
        }
        p->n = i + 1;
    }
    return p;
}

void pool_free(pool *p) {
    if (!p) return;
    p->stop = 1;
    bump(p);
    for (int i = 1; i < p->n; i++) pthread_join(p->th[i - 1], NULL);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->th);
    free(p);
}

int pool_size(const pool *p) { return p ? p->n : 1; }

void pool_run(pool *p, pool_fn *fn, void *arg) {
    if (!p || p->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    bump(p);
    fn(arg, 0, p->n);
    for (int k = 0; atomic_load_explicit(&p->pending, memory_order_acquire) > 0; k++)
        if ((k & 1023) == 1023) sched_yield(); /* a worker was descheduled: let it run */
        else cpu_relax();
}

void pool_split(size_t n, size_t align, int i, int nt, size_t *lo, size_t *hi) {
    size_t per = (n + (size_t)nt - 1) / (size_t)nt;
    per = (per + align - 1) / align * align;
    size_t a = per * (size_t)i, b = a + per;
    *lo = a < n ? a : n;
    *hi = b < n ? b : n;
}

void pool_chunks_init(pool_chunks *c, size_t n, size_t align, int nt) {
    atomic_init(&c->next, 0);
    c->n = n;
    c->align = align ? align : 1;
    c->nt = nt > 0 ? (size_t)nt : 1;
}

int pool_take(pool_chunks *c, size_t *lo, size_t *hi) {
    size_t a = atomic_load_explicit(&c->next, memory_order_relaxed), b;
    do {
        if (a >= c->n) return 0;
        size_t k = (c->n - a) / (2 * c->nt) / c->align * c->align;
        b = a + (k < c->align ? c->align : k);
        if (b > c->n) b = c->n;
    } while (!atomic_compare_exchange_weak_explicit(&c->next, &a, b, memory_order_relaxed, memory_order_relaxed));
    *lo = a, *hi = b;
    return 1;
}
