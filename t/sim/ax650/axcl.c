/* axcl: a simulated libaxcl_rt.so (one card) over sim.c's axmodels. Device memory is
 * tagged (a device pointer is not an address the host may use: dereferencing one
 * faults), memcpy checks that each side is what its kind says, and every call after
 * axclrtSetDevice must come from the thread that set the device and created the context,
 * as the AXCL docs require. AXSIM_CMM_BYTES bounds device memory; AXSIM_FAIL_RUN fails a
 * run. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ax650.h"
#include "sim.h"
#include "util.h"

enum { DEVICE_ID = 129 };
#define TAG 0x5a00000000000000ull /* non-canonical on x86-64 and aarch64 */
enum { ERR_ARG = (int32_t)0x80030001, ERR_THREAD = (int32_t)0x80030002, ERR_NOMEM = (int32_t)0x80030003,
       ERR_MODEL = (int32_t)0x80030004, ERR_RUN = (int32_t)0x80030005, ERR_NOT_INIT = (int32_t)0x80030006 };

static int inited, engine_inited, device_set;
static pthread_t owner;
static size_t used;

typedef struct dblk {
    char *p;
    size_t n;
    struct dblk *next;
} dblk;
static dblk *dev_blocks;

typedef struct {
    sim_model *sm;
    int ctx_made;
} smodel;
static smodel models[1024];

typedef struct {
    sim_model *sm;
    void *in[8], *out[8];
    uint64_t in_n[8], out_n[8];
} sio;

static int thread_ok(void) { return device_set && pthread_equal(owner, pthread_self()); }

/* The host address behind device range [d, d+n), or NULL if it is not device memory. */
static char *host_of(const void *d, size_t n) {
    uint64_t u = (uint64_t)(uintptr_t)d;
    if ((u & 0xff00000000000000ull) != TAG) return NULL;
    char *p = (char *)(uintptr_t)(u & ~0xff00000000000000ull);
    for (dblk *b = dev_blocks; b; b = b->next)
        if (p >= b->p && p + n <= b->p + b->n) return p;
    return NULL;
}

int32_t axclInit(const char *config) {
    (void)config;
    return inited = 1, 0;
}
int32_t axclFinalize(void) {
    if (!inited) return ERR_NOT_INIT;
    inited = device_set = 0;
    sim_shutdown();
    return dev_blocks ? ERR_ARG : 0;
}

int32_t axclrtGetDeviceList(axcl_device_list *l) {
    if (!inited || !l) return ERR_ARG;
    l->num = 1;
    l->devices[0] = DEVICE_ID;
    return 0;
}

int32_t axclrtSetDevice(int32_t dev) {
    if (!inited || dev != DEVICE_ID) return ERR_ARG;
    owner = pthread_self();
    device_set = 1;
    return 0;
}

int32_t axclrtCreateContext(axcl_ctx *ctx, int32_t dev) {
    if (!thread_ok() || !ctx || dev != DEVICE_ID) return ERR_THREAD;
    *ctx = &owner;
    return 0;
}
int32_t axclrtDestroyContext(axcl_ctx ctx) { return thread_ok() && ctx == &owner ? 0 : ERR_THREAD; }

int32_t axclrtEngineInit(int32_t vnpu) {
    if (!thread_ok()) return ERR_THREAD;
    if (vnpu != 0) return ERR_ARG;
    return engine_inited = 1, 0;
}
int32_t axclrtEngineFinalize(void) {
    if (!thread_ok()) return ERR_THREAD;
    engine_inited = 0;
    return 0;
}

int32_t axclrtMalloc(void **dev, size_t size, int32_t policy) {
    (void)policy;
    if (!thread_ok()) return ERR_THREAD;
    size_t lim = sim_mem_limit();
    if (!dev || !size) return ERR_ARG;
    if (lim && used + size > lim) return ERR_NOMEM;
    dblk *b = malloc(sizeof *b);
    char *p = malloc(size);
    if (!b || !p) {
        free(b), free(p);
        return ERR_NOMEM;
    }
    *b = (dblk){p, size, dev_blocks};
    dev_blocks = b;
    used += size;
    *dev = (void *)(uintptr_t)((uint64_t)(uintptr_t)p | TAG);
    return 0;
}

int32_t axclrtFree(void *dev) {
    if (!thread_ok()) return ERR_THREAD;
    char *p = host_of(dev, 1);
    for (dblk **pp = &dev_blocks; p && *pp; pp = &(*pp)->next)
        if ((*pp)->p == p) {
            dblk *b = *pp;
            *pp = b->next;
            used -= b->n;
            free(b->p);
            free(b);
            return 0;
        }
    return ERR_ARG;
}

int32_t axclrtMemcpy(void *dst, const void *src, size_t n, int32_t kind) {
    if (!thread_ok()) return ERR_THREAD;
    char *d = (char *)dst;
    const char *s = src;
    if (kind == AXCL_H2D || kind == AXCL_D2D) d = host_of(dst, n);
    if (kind == AXCL_D2H || kind == AXCL_D2D) s = host_of(src, n);
    if (kind < AXCL_H2D || kind > AXCL_D2D || !d || !s) return ERR_ARG;
    if ((kind == AXCL_H2D && host_of(src, 1)) || (kind == AXCL_D2H && host_of(dst, 1))) return ERR_ARG;
    memmove(d, s, n);
    return 0;
}

int32_t axclrtEngineLoadFromFile(const char *path, uint64_t *id) {
    if (!thread_ok()) return ERR_THREAD;
    if (!engine_inited || !path || !id) return ERR_ARG;
    mapped f;
    char err[256];
    if (map_file(path, &f, err, sizeof err) < 0) return ERR_MODEL;
    size_t i = 1;
    while (i < 1024 && models[i].sm) i++;
    sim_model *sm = i < 1024 ? sim_load(f.data, f.size, err, sizeof err) : NULL;
    unmap_file(&f);
    if (!sm) {
        fprintf(stderr, "axsim: %s\n", err);
        return ERR_MODEL;
    }
    models[i] = (smodel){sm, 0};
    *id = i;
    return 0;
}

static smodel *model_of(uint64_t id) { return id > 0 && id < 1024 && models[id].sm ? &models[id] : NULL; }

int32_t axclrtEngineUnload(uint64_t id) {
    smodel *m = model_of(id);
    if (!thread_ok()) return ERR_THREAD;
    if (!m) return ERR_ARG;
    sim_free(m->sm);
    *m = (smodel){0};
    return 0;
}

int32_t axclrtEngineCreateContext(uint64_t id, uint64_t *cid) {
    smodel *m = model_of(id);
    if (!thread_ok()) return ERR_THREAD;
    if (!m || !cid) return ERR_ARG;
    m->ctx_made = 1;
    *cid = id + 1000;
    return 0;
}

/* An IO info is the sim_model itself. */
int32_t axclrtEngineGetIOInfo(uint64_t id, axcl_io_info *info) {
    smodel *m = model_of(id);
    if (!thread_ok()) return ERR_THREAD;
    if (!m || !info) return ERR_ARG;
    *info = m->sm;
    return 0;
}
int32_t axclrtEngineDestroyIOInfo(axcl_io_info info) { return thread_ok() ? (info ? 0 : ERR_ARG) : ERR_THREAD; }

int32_t axclrtEngineGetShapeGroupsCount(axcl_io_info info, int32_t *count) {
    if (!thread_ok()) return ERR_THREAD;
    if (!info || !count) return ERR_ARG;
    *count = ((sim_model *)info)->n_groups;
    return 0;
}
uint32_t axclrtEngineGetNumInputs(axcl_io_info info) { return info ? (uint32_t)((sim_model *)info)->g[0].n_in : 0; }
uint32_t axclrtEngineGetNumOutputs(axcl_io_info info) { return info ? (uint32_t)((sim_model *)info)->g[0].n_out : 0; }

static const sim_tensor *tensor_of(axcl_io_info info, uint32_t g, uint32_t i, int out) {
    const sim_model *sm = info;
    if (!sm || g >= (uint32_t)sm->n_groups || i >= (uint32_t)(out ? sm->g[g].n_out : sm->g[g].n_in)) return NULL;
    return out ? &sm->g[g].out[i] : &sm->g[g].in[i];
}
const char *axclrtEngineGetInputNameByIndex(axcl_io_info info, uint32_t i) {
    const sim_tensor *t = tensor_of(info, 0, i, 0);
    return t ? t->name : NULL;
}
const char *axclrtEngineGetOutputNameByIndex(axcl_io_info info, uint32_t i) {
    const sim_tensor *t = tensor_of(info, 0, i, 1);
    return t ? t->name : NULL;
}
uint64_t axclrtEngineGetInputSizeByIndex(axcl_io_info info, uint32_t g, uint32_t i) {
    const sim_tensor *t = tensor_of(info, g, i, 0);
    return t ? t->size : 0;
}
uint64_t axclrtEngineGetOutputSizeByIndex(axcl_io_info info, uint32_t g, uint32_t i) {
    const sim_tensor *t = tensor_of(info, g, i, 1);
    return t ? t->size : 0;
}
static int32_t dims(axcl_io_info info, uint32_t g, int32_t i, axcl_dims *d, int out) {
    const sim_tensor *t = i < 0 ? NULL : tensor_of(info, g, (uint32_t)i, out);
    if (!t || !d) return ERR_ARG;
    d->dimCount = t->nd;
    for (int k = 0; k < t->nd; k++) d->dims[k] = t->dims[k];
    return 0;
}
int32_t axclrtEngineGetInputDims(axcl_io_info info, uint32_t g, int32_t i, axcl_dims *d) {
    return dims(info, g, i, d, 0);
}
int32_t axclrtEngineGetOutputDims(axcl_io_info info, uint32_t g, int32_t i, axcl_dims *d) {
    return dims(info, g, i, d, 1);
}

int32_t axclrtEngineCreateIO(axcl_io_info info, axcl_io *io) {
    if (!thread_ok()) return ERR_THREAD;
    if (!info || !io) return ERR_ARG;
    sio *s = calloc(1, sizeof *s);
    if (!s) return ERR_NOMEM;
    s->sm = info;
    *io = s;
    return 0;
}
int32_t axclrtEngineDestroyIO(axcl_io io) {
    if (!thread_ok()) return ERR_THREAD;
    free(io);
    return 0;
}

static int32_t set_buf(axcl_io io, uint32_t i, const void *dev, uint64_t size, int out) {
    sio *s = io;
    if (!thread_ok()) return ERR_THREAD;
    if (!s || i >= (uint32_t)(out ? s->sm->g[0].n_out : s->sm->g[0].n_in) || !host_of(dev, size)) return ERR_ARG;
    (out ? s->out : s->in)[i] = (void *)dev;
    (out ? s->out_n : s->in_n)[i] = size;
    return 0;
}
int32_t axclrtEngineSetInputBufferByIndex(axcl_io io, uint32_t i, const void *dev, uint64_t size) {
    return set_buf(io, i, dev, size, 0);
}
int32_t axclrtEngineSetOutputBufferByIndex(axcl_io io, uint32_t i, const void *dev, uint64_t size) {
    return set_buf(io, i, dev, size, 1);
}

int32_t axclrtEngineExecute(uint64_t id, uint64_t cid, uint32_t g, axcl_io io) {
    smodel *m = model_of(id);
    sio *s = io;
    if (!thread_ok()) return ERR_THREAD;
    if (!m || !m->ctx_made || cid != id + 1000 || !s || s->sm != m->sm || g >= (uint32_t)m->sm->n_groups)
        return ERR_ARG;
    const sim_group *G = &m->sm->g[g];
    void *in[8], *out[8];
    for (int i = 0; i < G->n_in; i++)
        if (s->in_n[i] < G->in[i].size || !(in[i] = host_of(s->in[i], G->in[i].size))) return ERR_ARG;
    for (int i = 0; i < G->n_out; i++)
        if (s->out_n[i] < G->out[i].size || !(out[i] = host_of(s->out[i], G->out[i].size))) return ERR_ARG;
    if (sim_fail_now()) return ERR_RUN;
    char err[256];
    if (sim_run(m->sm, (int)g, in, out, err, sizeof err) == 0) return 0;
    fprintf(stderr, "axsim: %s\n", err);
    return ERR_RUN;
}
