/* Simulated libascendcl.so: init, device, one stream, device memory (tracked host blocks),
 * copies; plus the checks and counters the other two libraries share (sim.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

typedef struct block {
    char *p;
    size_t size;
    struct block *next;
} block;

static struct {
    int inited, device, stream_live, pending;
    char stream_obj; /* the stream handle is its address */
    block *blocks;
    size_t used, limit;
    unsigned long long h2d, d2h, mallocs, violations;
    char msg[512];
    struct {
        char name[64];
        unsigned long n;
    } ops[64];
    int n_ops;
    void (*at_fin[4])(void);
    int n_fin;
    char fail_name[128];
    long fail_at, fail_seen;
    int env_read;
} S = {.device = -1};

int sim_err(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(S.msg, sizeof S.msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "ascend sim: %s\n", S.msg);
    S.violations++;
    return code;
}

/* An injected failure is not a violation: it only says what failed. */
int sim_inject(const char *fn) {
    if (!S.env_read) {
        S.env_read = 1;
        const char *e = getenv("ASCEND_SIM_FAIL");
        if (e && *e) {
            snprintf(S.fail_name, sizeof S.fail_name, "%s", e);
            char *colon = strchr(S.fail_name, ':');
            S.fail_at = 1;
            if (colon) *colon = 0, S.fail_at = atol(colon + 1);
        }
        const char *m = getenv("ASCEND_SIM_MEM");
        if (m && *m) S.limit = strtoull(m, NULL, 10);
    }
    if (!S.fail_name[0] || strcmp(fn, S.fail_name)) return 0;
    if (++S.fail_seen != S.fail_at) return 0;
    snprintf(S.msg, sizeof S.msg, "%s failed (injected by ASCEND_SIM_FAIL)", fn);
    return 1;
}

int sim_mem_ok(const void *p, size_t bytes) {
    const char *c = p;
    for (block *b = S.blocks; b; b = b->next)
        if (c >= b->p && c <= b->p + b->size) return bytes <= (size_t)(b->p + b->size - c);
    return 0;
}

static int in_device(const void *p) {
    for (block *b = S.blocks; b; b = b->next)
        if ((const char *)p >= b->p && (const char *)p < b->p + b->size) return 1;
    return 0;
}

int sim_stream_ok(aclrtStream s) { return S.stream_live && s == &S.stream_obj; }

void sim_launched(aclrtStream s, const char *op) {
    (void)s;
    S.pending = 1;
    for (int i = 0; i < S.n_ops; i++)
        if (!strcmp(S.ops[i].name, op)) {
            S.ops[i].n++;
            return;
        }
    if (S.n_ops < 64) {
        snprintf(S.ops[S.n_ops].name, sizeof S.ops[0].name, "%s", op);
        S.ops[S.n_ops++].n = 1;
    }
}

void sim_at_finalize(void (*fn)(void)) {
    if (S.n_fin < 4) S.at_fin[S.n_fin++] = fn;
}

const char *aclGetRecentErrMsg(void) { return S.msg; }

aclError aclInit(const char *cfg) {
    (void)cfg;
    if (sim_inject("aclInit")) return S_ERR_RT;
    if (S.inited) return sim_err(S_ERR_REPEAT_INIT, "aclInit: called twice");
    S.inited = 1;
    return 0;
}

aclError aclrtSetDevice(int32_t dev) {
    if (sim_inject("aclrtSetDevice")) return S_ERR_RT;
    if (!S.inited) return sim_err(S_ERR_PARAM, "aclrtSetDevice before aclInit");
    if (dev != 0) return sim_err(S_ERR_PARAM, "aclrtSetDevice: device %d does not exist (the simulation has device 0)", dev);
    S.device = dev;
    return 0;
}

aclError aclrtCreateStream(aclrtStream *s) {
    if (sim_inject("aclrtCreateStream")) return S_ERR_RT;
    if (S.device < 0) return sim_err(S_ERR_PARAM, "aclrtCreateStream before aclrtSetDevice");
    if (S.stream_live) return sim_err(S_ERR_PARAM, "aclrtCreateStream: the backend should need only one stream");
    S.stream_live = 1;
    *s = &S.stream_obj;
    return 0;
}

aclError aclrtSynchronizeStream(aclrtStream s) {
    if (sim_inject("aclrtSynchronizeStream")) return S_ERR_RT;
    if (!sim_stream_ok(s)) return sim_err(S_ERR_PARAM, "aclrtSynchronizeStream: not a live stream");
    S.pending = 0;
    return 0;
}

aclError aclrtDestroyStream(aclrtStream s) {
    if (!sim_stream_ok(s)) return sim_err(S_ERR_PARAM, "aclrtDestroyStream: not a live stream");
    if (S.pending) sim_err(S_ERR_PARAM, "aclrtDestroyStream with work not synchronized");
    S.stream_live = 0;
    return 0;
}

aclError aclrtMalloc(void **p, size_t size, int policy) {
    if (!p) return sim_err(S_ERR_PARAM, "aclrtMalloc: NULL pointer");
    *p = NULL;
    if (sim_inject("aclrtMalloc")) return S_ERR_MEM;
    if (S.device < 0) return sim_err(S_ERR_PARAM, "aclrtMalloc before aclrtSetDevice");
    if (size == 0) return sim_err(S_ERR_PARAM, "aclrtMalloc: size 0");
    if (policy < 0 || policy > 3) return sim_err(S_ERR_PARAM, "aclrtMalloc: policy %d", policy);
    if (S.limit && S.used + size > S.limit) {
        snprintf(S.msg, sizeof S.msg, "out of device memory (%zu bytes in use, %zu asked, ASCEND_SIM_MEM %zu)", S.used,
                 size, S.limit);
        return S_ERR_MEM;
    }
    block *b = malloc(sizeof *b);
    void *q = NULL;
    if (!b || posix_memalign(&q, 64, size)) {
        free(b);
        return S_ERR_MEM;
    }
    memset(q, 0xA5, size); /* device memory is not zeroed */
    b->p = q, b->size = size, b->next = S.blocks;
    S.blocks = b;
    S.used += size;
    S.mallocs++;
    *p = q;
    return 0;
}

aclError aclrtFree(void *p) {
    if (S.pending) return sim_err(S_ERR_PARAM, "aclrtFree with launched work not synchronized");
    for (block **b = &S.blocks; *b; b = &(*b)->next)
        if ((*b)->p == p) {
            block *d = *b;
            *b = d->next;
            S.used -= d->size;
            free(d->p);
            free(d);
            return 0;
        }
    return sim_err(S_ERR_PARAM, "aclrtFree: %p is not a device block", p);
}

aclError aclrtMemcpy(void *dst, size_t dmax, const void *src, size_t n, int kind) {
    if (sim_inject("aclrtMemcpy")) return S_ERR_RT;
    if (S.pending) return sim_err(S_ERR_PARAM, "aclrtMemcpy with launched work not synchronized");
    if (n > dmax) return sim_err(S_ERR_PARAM, "aclrtMemcpy: %zu bytes into %zu", n, dmax);
    if (kind == 1) { /* host to device */
        if (!sim_mem_ok(dst, n)) return sim_err(S_ERR_PARAM, "aclrtMemcpy to device: %zu bytes at %p outside device memory", n, dst);
        if (in_device(src)) return sim_err(S_ERR_PARAM, "aclrtMemcpy to device: the source is device memory");
        S.h2d += n;
    } else if (kind == 2) {
        if (!sim_mem_ok(src, n)) return sim_err(S_ERR_PARAM, "aclrtMemcpy to host: %zu bytes at %p outside device memory", n, src);
        if (in_device(dst)) return sim_err(S_ERR_PARAM, "aclrtMemcpy to host: the destination is device memory");
        S.d2h += n;
    } else if (kind == 3) {
        if (!sim_mem_ok(src, n) || !sim_mem_ok(dst, n)) return sim_err(S_ERR_PARAM, "aclrtMemcpy device to device: outside device memory");
    } else {
        return sim_err(S_ERR_PARAM, "aclrtMemcpy: kind %d", kind);
    }
    memmove(dst, src, n);
    return 0;
}

aclError aclrtResetDevice(int32_t dev) {
    if (dev != S.device) return sim_err(S_ERR_PARAM, "aclrtResetDevice(%d): device %d is set", dev, S.device);
    if (S.stream_live) sim_err(S_ERR_PARAM, "aclrtResetDevice with a live stream");
    S.device = -1;
    return 0;
}

aclError aclFinalize(void) {
    if (!S.inited) return sim_err(S_ERR_PARAM, "aclFinalize without aclInit");
    for (int i = 0; i < S.n_fin; i++) S.at_fin[i]();
    size_t n = 0, bytes = 0;
    for (block *b = S.blocks; b; b = b->next) n++, bytes += b->size;
    if (n) sim_err(S_ERR_PARAM, "aclFinalize: %zu device blocks (%zu bytes) never freed", n, bytes);
    if (S.device >= 0) sim_err(S_ERR_PARAM, "aclFinalize before aclrtResetDevice");
    const char *path = getenv("ASCEND_SIM_STATS");
    FILE *f = path && *path ? fopen(path, "a") : NULL;
    if (f) {
        fprintf(f, "h2d_bytes %llu\nd2h_bytes %llu\nmallocs %llu\nviolations %llu\n", S.h2d, S.d2h, S.mallocs,
                S.violations);
        for (int i = 0; i < S.n_ops; i++) fprintf(f, "op %s %lu\n", S.ops[i].name, S.ops[i].n);
        fclose(f);
    }
    S.inited = 0;
    return 0;
}
