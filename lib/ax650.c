/* ax650: the backend that runs the decoder on Axera's AX650 NPU, one precompiled graph
 * per layer, as ax-llm does (reference notes §2.5-2.9, §3).
 *
 * The model is an ax-llm directory (fmt_axllm.c): per-layer *.axmodel files with a decode
 * group 0 ([1,1,H] in, KV cache of S rows) and prefill groups g >= 1 (P positions over a
 * history of at most S_g rows), and a post model (final norm + lm_head). Sizes, groups
 * and P are read from the models' IO info and checked against the config and each other.
 * Every layer's K and V live in one device buffer of S bf16 rows that all its groups
 * alias; the other IO buffers are shared by all layers (they run one after another).
 *
 * The session's kv_cache (f32 rows, kv.h) stays the truth: rows this backend computes go
 * to the device buffer and, widened from the same bf16, to the cache; rows the cache holds
 * that the device does not (a resumed session, a prefix reused from the store) are sent
 * before the next run. So a session moves freely between this backend and the CPU's.
 * The device copy is assumed to match the cache below the rows it wrote (one session per
 * backend context, as in prefill and decode); a cache that shrinks is noticed.
 *
 * Two transports: the on-board engine (libax_engine.so + libax_sys.so: CMM buffers the
 * CPU maps, flushed before and invalidated after each run) and AXCL (libaxcl_rt.so: a
 * card's memory over PCIe; every AXCL call made from one thread that owns the device's
 * context, as the AXCL docs require). AX650_TRANSPORT=engine|axcl picks one; by default
 * the engine if its library loads, else AXCL. Libraries are dlopen'd by the names in
 * AX_ENGINE_LIB, AX_SYS_LIB, AXCL_RT_LIB (defaults libax_engine.so, libax_sys.so,
 * libaxcl_rt.so, from the library path or else /soc/lib and /usr/lib/axcl, where the
 * vendor installs them); AXCL_DEVICE picks a card (index in the device list, default 0). */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ax650.h"
#include "backend.h"
#include "util.h"

enum { IN_X, IN_IDX, IN_MASK, IN_K, IN_V, N_IN };
enum { OUT_K, OUT_V, OUT_X, N_OUT };
static const char *const in_name[N_IN] = {"input", "indices", "mask", "K_cache", "V_cache"};
static const char *const out_name[N_OUT] = {"K_cache_out", "V_cache_out", "output"};
enum { MAX_IO = 16, MAX_GROUPS = 64 };

/* One tensor of a group as the runtime describes it. */
typedef struct {
    char name[64];
    int32_t dims[8];
    int nd;
    size_t size;
} meta;

typedef struct {
    meta in[MAX_IO], out[MAX_IO];
    uint32_t n_in, n_out;
} gmeta;

/* A device buffer: engine (phy, vir), or AXCL (dev). */
typedef struct {
    uint64_t phy;
    void *vir, *dev;
    size_t size;
} dbuf;

/* One shape group of one loaded model: which IO index is which tensor, and its bindings. */
typedef struct {
    int in_idx[N_IN], out_idx[N_OUT];
    uint32_t n_in, n_out;
    ax_io io;              /* engine */
    ax_io_buffer *ib, *ob; /* engine: n_in, n_out */
    axcl_io aio;           /* AXCL */
} group;

typedef struct {
    char path[PATH_MAX];
    ax_handle h;       /* engine */
    ax_context ctx;
    uint64_t id, cid;  /* AXCL model and context */
    axcl_io_info info;
    int loaded;
    int n_groups;
    group *g;
} amodel;

/* The vendor functions used, looked up by name (dlsym). */
typedef struct {
    ax_engine_version_fn *version;
    ax_engine_init_fn *init;
    ax_engine_deinit_fn *deinit;
    ax_create_handle_fn *create;
    ax_destroy_handle_fn *destroy;
    ax_create_context_fn *context1;
    ax_create_context_v2_fn *context;
    ax_group_count_fn *groups;
    ax_group_info_fn *group_info;
    ax_run_group_fn *run;
    ax_sys_init_fn *sys_init;
    ax_sys_deinit_fn *sys_deinit;
    ax_mem_alloc_fn *alloc, *alloc_cached;
    ax_mem_free_fn *free;
    ax_mem_cache_fn *flush, *invalidate;
} engine_api;

typedef struct {
    axcl_init_fn *init;
    axcl_finalize_fn *finalize;
    axcl_device_list_fn *devices;
    axcl_set_device_fn *set_device;
    axcl_create_ctx_fn *create_ctx;
    axcl_destroy_ctx_fn *destroy_ctx;
    axcl_engine_init_fn *engine_init;
    axcl_engine_fini_fn *engine_fini;
    axcl_load_file_fn *load;
    axcl_unload_fn *unload;
    axcl_engine_ctx_fn *engine_ctx;
    axcl_get_io_info_fn *io_info;
    axcl_destroy_io_info_fn *destroy_io_info;
    axcl_groups_fn *groups;
    axcl_num_fn *n_in, *n_out;
    axcl_name_fn *in_name, *out_name;
    axcl_size_fn *in_size, *out_size;
    axcl_dims_fn *in_dims, *out_dims;
    axcl_create_io_fn *create_io;
    axcl_destroy_io_fn *destroy_io;
    axcl_set_buffer_fn *set_in, *set_out;
    axcl_execute_fn *execute;
    axcl_malloc_fn *malloc;
    axcl_free_fn *free;
    axcl_memcpy_fn *memcpy;
} axcl_api;

typedef struct call call;

typedef struct {
    const model *m;
    int axcl; /* the transport: 0 engine, 1 AXCL */
    void *lib_engine, *lib_sys, *lib_axcl;
    engine_api e;
    axcl_api x;
    int inited, sys_inited;
    axcl_ctx xctx;
    int32_t device;
    axllm_files files;
    size_t max_batch;
    /* the IO contract, from layer 0's groups */
    size_t H, D, S, P, vocab;
    int n_groups;
    size_t Sg[MAX_GROUPS]; /* K_cache rows of each group (Sg[0] = S) */
    amodel *layers, post;
    dbuf *K, *V;               /* [n_layers]: S rows of D bf16 */
    dbuf gin[MAX_GROUPS][3];   /* input, indices, mask of each group, shared by the layers */
    dbuf gout[MAX_GROUPS][N_OUT];
    dbuf post_in, post_out;
    size_t *dev_n;             /* [n_layers]: rows of K/V on the device that match the cache */
    uint16_t *stage;           /* host staging, stage_size bytes */
    size_t stage_size;
    /* AXCL: the thread that owns the device context */
    pthread_t th;
    int th_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    call *pending;
    int quit;
} ax;

/* ---- small helpers ---- */

static uint16_t to_bf16(float f) { /* round to nearest even; NaN stays NaN */
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)(u >> 16 | 0x40);
    return (uint16_t)((u + 0x7fffu + (u >> 16 & 1)) >> 16);
}
static float from_bf16(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static int vendor_err(char *err, size_t errlen, const char *what, int32_t rc) {
    return seterr(err, errlen, "backend ax650: %s: error 0x%x", what, (unsigned)rc);
}

/* Free CMM in KB from /proc/ax_proc/mem_cmm_info ("remain=NKB"), or -1. */
static long cmm_remain_kb(void) {
    FILE *f = fopen("/proc/ax_proc/mem_cmm_info", "r");
    char line[512];
    long kb = -1;
    while (f && fgets(line, sizeof line, f)) {
        char *p = strstr(line, "remain=");
        if (p) {
            kb = strtol(p + 7, NULL, 10);
            break;
        }
    }
    if (f) fclose(f);
    return kb;
}

/* ---- transport: libraries ---- */

/* The library env names, else def from the loader's path, else from dir (where the vendor
 * installs it: /soc/lib on the board, /usr/lib/axcl for AXCL; neither is always on the path). */
static void *open_lib(const char *env, const char *def, const char *dir, char *err, size_t errlen) {
    const char *name = getenv(env);
    int given = name && *name;
    void *h = dlopen(given ? name : def, RTLD_NOW | RTLD_LOCAL);
    if (h) return h;
    char why[384], alt[PATH_MAX];
    const char *e = dlerror();
    snprintf(why, sizeof why, "%s", e ? e : "cannot load");
    if (!given) {
        snprintf(alt, sizeof alt, "%s/%s", dir, def);
        if ((h = dlopen(alt, RTLD_NOW | RTLD_LOCAL))) return h;
    }
    if (!given) name = def;
    char where[PATH_MAX + 96];
    if (given) snprintf(where, sizeof where, "named by %s", env);
    else snprintf(where, sizeof where, "looked on the library path and in %s; set %s or LD_LIBRARY_PATH", dir, env);
    if (strstr(why, name)) seterr(err, errlen, "backend ax650: %s (%s)", why, where);
    else seterr(err, errlen, "backend ax650: %s: %s (%s)", name, why, where);
    return NULL;
}

typedef struct {
    const char *name;
    void **slot;
} sym;

static int bind_syms(void *lib, const char *libname, const sym *s, size_t n, char *err, size_t errlen) {
    for (size_t i = 0; i < n; i++)
        if (!(*s[i].slot = dlsym(lib, s[i].name)))
            return seterr(err, errlen,
                          "backend ax650: %s: no symbol %s (not the runtime this backend was written for?)", libname,
                          s[i].name);
    return 0;
}
#define SYM(api, f, name) {name, (void **)&(api).f}

static int load_engine(ax *a, char *err, size_t errlen) {
    if (!(a->lib_engine = open_lib("AX_ENGINE_LIB", "libax_engine.so", "/soc/lib", err, errlen)) ||
        !(a->lib_sys = open_lib("AX_SYS_LIB", "libax_sys.so", "/soc/lib", err, errlen)))
        return -1;
    const sym es[] = {
        SYM(a->e, version, "AX_ENGINE_GetVersion"), SYM(a->e, init, "AX_ENGINE_Init"),
        SYM(a->e, deinit, "AX_ENGINE_Deinit"), SYM(a->e, create, "AX_ENGINE_CreateHandle"),
        SYM(a->e, destroy, "AX_ENGINE_DestroyHandle"), SYM(a->e, context1, "AX_ENGINE_CreateContext"),
        SYM(a->e, context, "AX_ENGINE_CreateContextV2"),
        SYM(a->e, groups, "AX_ENGINE_GetGroupIOInfoCount"), SYM(a->e, group_info, "AX_ENGINE_GetGroupIOInfo"),
        SYM(a->e, run, "AX_ENGINE_RunGroupIOSync"),
    };
    const sym ss[] = {
        SYM(a->e, sys_init, "AX_SYS_Init"), SYM(a->e, sys_deinit, "AX_SYS_Deinit"),
        SYM(a->e, alloc, "AX_SYS_MemAlloc"), SYM(a->e, alloc_cached, "AX_SYS_MemAllocCached"),
        SYM(a->e, free, "AX_SYS_MemFree"), SYM(a->e, flush, "AX_SYS_MflushCache"),
        SYM(a->e, invalidate, "AX_SYS_MinvalidateCache"),
    };
    return bind_syms(a->lib_engine, "libax_engine.so", es, sizeof es / sizeof *es, err, errlen) < 0 ||
                   bind_syms(a->lib_sys, "libax_sys.so", ss, sizeof ss / sizeof *ss, err, errlen) < 0
               ? -1
               : 0;
}

static int load_axcl(ax *a, char *err, size_t errlen) {
    if (!(a->lib_axcl = open_lib("AXCL_RT_LIB", "libaxcl_rt.so", "/usr/lib/axcl", err, errlen))) return -1;
    const sym xs[] = {
        SYM(a->x, init, "axclInit"), SYM(a->x, finalize, "axclFinalize"),
        SYM(a->x, devices, "axclrtGetDeviceList"), SYM(a->x, set_device, "axclrtSetDevice"),
        SYM(a->x, create_ctx, "axclrtCreateContext"), SYM(a->x, destroy_ctx, "axclrtDestroyContext"),
        SYM(a->x, engine_init, "axclrtEngineInit"), SYM(a->x, engine_fini, "axclrtEngineFinalize"),
        SYM(a->x, load, "axclrtEngineLoadFromFile"), SYM(a->x, unload, "axclrtEngineUnload"),
        SYM(a->x, engine_ctx, "axclrtEngineCreateContext"), SYM(a->x, io_info, "axclrtEngineGetIOInfo"),
        SYM(a->x, destroy_io_info, "axclrtEngineDestroyIOInfo"),
        SYM(a->x, groups, "axclrtEngineGetShapeGroupsCount"), SYM(a->x, n_in, "axclrtEngineGetNumInputs"),
        SYM(a->x, n_out, "axclrtEngineGetNumOutputs"), SYM(a->x, in_name, "axclrtEngineGetInputNameByIndex"),
        SYM(a->x, out_name, "axclrtEngineGetOutputNameByIndex"),
        SYM(a->x, in_size, "axclrtEngineGetInputSizeByIndex"),
        SYM(a->x, out_size, "axclrtEngineGetOutputSizeByIndex"), SYM(a->x, in_dims, "axclrtEngineGetInputDims"),
        SYM(a->x, out_dims, "axclrtEngineGetOutputDims"), SYM(a->x, create_io, "axclrtEngineCreateIO"),
        SYM(a->x, destroy_io, "axclrtEngineDestroyIO"), SYM(a->x, set_in, "axclrtEngineSetInputBufferByIndex"),
        SYM(a->x, set_out, "axclrtEngineSetOutputBufferByIndex"), SYM(a->x, execute, "axclrtEngineExecute"),
        SYM(a->x, malloc, "axclrtMalloc"), SYM(a->x, free, "axclrtFree"), SYM(a->x, memcpy, "axclrtMemcpy"),
    };
    return bind_syms(a->lib_axcl, "libaxcl_rt.so", xs, sizeof xs / sizeof *xs, err, errlen);
}

/* The transport: AX650_TRANSPORT, else the engine if it loads, else AXCL. */
static int load_libs(ax *a, char *err, size_t errlen) {
    const char *t = getenv("AX650_TRANSPORT");
    if (t && *t && strcmp(t, "engine") && strcmp(t, "axcl"))
        return seterr(err, errlen, "backend ax650: AX650_TRANSPORT=%.32s: not engine or axcl", t);
    if (t && *t) return (a->axcl = !strcmp(t, "axcl")) ? load_axcl(a, err, errlen) : load_engine(a, err, errlen);
    if (load_engine(a, err, errlen) == 0) return 0;
    char e1[512];
    snprintf(e1, sizeof e1, "%s", err);
    if (a->lib_engine) dlclose(a->lib_engine);
    if (a->lib_sys) dlclose(a->lib_sys);
    a->lib_engine = a->lib_sys = NULL;
    a->axcl = 1;
    if (load_axcl(a, err, errlen) == 0) return 0;
    char e2[512];
    snprintf(e2, sizeof e2, "%s", err + (strncmp(err, "backend ax650: ", 15) ? 0 : 15));
    return seterr(err, errlen, "%s; nor AXCL: %s", e1, e2);
}

/* ---- transport: memory ---- */

static int dbuf_alloc(ax *a, dbuf *b, size_t size, int cached, const char *what, char *err, size_t errlen) {
    b->size = size;
    if (size > UINT32_MAX) return seterr(err, errlen, "backend ax650: %s: %zu bytes, over 4 GiB", what, size);
    if (a->axcl) {
        int32_t rc = a->x.malloc(&b->dev, size, AXCL_MALLOC_HUGE_FIRST);
        if (rc || !b->dev)
            return b->dev = NULL, seterr(err, errlen, "backend ax650: axclrtMalloc(%zu bytes for %s): error 0x%x "
                                         "(out of device memory?)", size, what, (unsigned)rc);
        return 0;
    }
    int32_t rc = (cached ? a->e.alloc_cached : a->e.alloc)(&b->phy, &b->vir, (uint32_t)size, 128,
                                                           (const int8_t *)"npu");
    if (rc || !b->vir) {
        long kb = cmm_remain_kb();
        char free_s[64] = "free CMM unknown";
        if (kb >= 0) snprintf(free_s, sizeof free_s, "%ld KB of CMM free", kb);
        b->vir = NULL;
        return seterr(err, errlen, "backend ax650: AX_SYS_MemAlloc%s(%zu bytes for %s): error 0x%x (out of CMM? %s)",
                      cached ? "Cached" : "", size, what, (unsigned)rc, free_s);
    }
    return 0;
}

static void dbuf_free(ax *a, dbuf *b) {
    if (a->axcl && b->dev) a->x.free(b->dev);
    if (!a->axcl && b->vir) a->e.free(b->phy, b->vir);
    b->dev = b->vir = NULL;
}

/* n bytes from src into b at off: the CPU's writes flushed (engine), or copied over PCIe. */
static int dbuf_write(ax *a, dbuf *b, size_t off, const void *src, size_t n, char *err, size_t errlen) {
    if (a->axcl) {
        int32_t rc = a->x.memcpy((char *)b->dev + off, src, n, AXCL_H2D);
        return rc ? vendor_err(err, errlen, "axclrtMemcpy host to device", rc) : 0;
    }
    memcpy((char *)b->vir + off, src, n);
    int32_t rc = a->e.flush(b->phy + off, (char *)b->vir + off, (uint32_t)n);
    return rc ? vendor_err(err, errlen, "AX_SYS_MflushCache", rc) : 0;
}

/* n bytes of b at off into dst: the CPU's cache invalidated first (engine), or copied back. */
static int dbuf_read(ax *a, dbuf *b, size_t off, void *dst, size_t n, char *err, size_t errlen) {
    if (a->axcl) {
        int32_t rc = a->x.memcpy(dst, (char *)b->dev + off, n, AXCL_D2H);
        return rc ? vendor_err(err, errlen, "axclrtMemcpy device to host", rc) : 0;
    }
    int32_t rc = a->e.invalidate(b->phy + off, (char *)b->vir + off, (uint32_t)n);
    if (rc) return vendor_err(err, errlen, "AX_SYS_MinvalidateCache", rc);
    memcpy(dst, (char *)b->vir + off, n);
    return 0;
}

/* ---- loading a model and reading its IO info ---- */

static void meta_set(meta *t, const char *name, const int32_t *dims, int nd, size_t size) {
    snprintf(t->name, sizeof t->name, "%s", name ? name : "");
    t->nd = nd < 0 ? 0 : nd > 8 ? 8 : nd;
    for (int i = 0; i < t->nd; i++) t->dims[i] = dims[i];
    t->size = size;
}

static int load_model(ax *a, amodel *md, gmeta **gm, char *err, size_t errlen) {
    struct stat st;
    if (stat(md->path, &st) < 0) return seterr(err, errlen, "backend ax650: %s: %s", md->path, strerror(errno));
    uint32_t ng = 0;
    if (a->axcl) {
        int32_t rc, n = 0;
        if ((rc = a->x.load(md->path, &md->id)))
            return seterr(err, errlen, "backend ax650: axclrtEngineLoadFromFile(%s): error 0x%x", md->path,
                          (unsigned)rc);
        md->loaded = 1;
        if ((rc = a->x.engine_ctx(md->id, &md->cid)) || (rc = a->x.io_info(md->id, &md->info)) ||
            (rc = a->x.groups(md->info, &n)))
            return seterr(err, errlen, "backend ax650: %s: axclrtEngine context/IO info: error 0x%x", md->path,
                          (unsigned)rc);
        ng = n > 0 ? (uint32_t)n : 0;
    } else {
        mapped f;
        if (map_file(md->path, &f, err, errlen) < 0) return -1;
        if (f.size > UINT32_MAX) {
            unmap_file(&f);
            return seterr(err, errlen, "backend ax650: %s: over 4 GiB", md->path);
        }
        /* CreateHandle takes the whole file in memory and copies what it needs */
        int32_t rc = a->e.create(&md->h, f.data, (uint32_t)f.size);
        unmap_file(&f);
        if (rc)
            return seterr(err, errlen, "backend ax650: AX_ENGINE_CreateHandle(%s): error 0x%x", md->path, (unsigned)rc);
        md->loaded = 1;
        /* both, in ax-llm's order (ax_model_runner_ax650.cpp): the sequence known to work */
        if ((rc = a->e.context1(md->h)) || (rc = a->e.context(md->h, &md->ctx)) || (rc = a->e.groups(md->h, &ng)))
            return seterr(err, errlen, "backend ax650: %s: AX_ENGINE context/group count: error 0x%x", md->path,
                          (unsigned)rc);
    }
    if (ng < 1 || ng > MAX_GROUPS)
        return seterr(err, errlen, "backend ax650: %s: %u shape groups (want 1 to %d)", md->path, ng, MAX_GROUPS);
    md->n_groups = (int)ng;
    if (!(md->g = calloc(ng, sizeof *md->g)) || !(*gm = calloc(ng, sizeof **gm)))
        return seterr(err, errlen, "backend ax650: out of memory");
    for (uint32_t g = 0; g < ng; g++) {
        gmeta *t = &(*gm)[g];
        if (a->axcl) {
            t->n_in = a->x.n_in(md->info), t->n_out = a->x.n_out(md->info);
            if (t->n_in > MAX_IO || t->n_out > MAX_IO) goto malformed;
            for (uint32_t i = 0; i < t->n_in + t->n_out; i++) {
                int o = i >= t->n_in;
                uint32_t k = o ? i - t->n_in : i;
                axcl_dims d = {0};
                int32_t rc = (o ? a->x.out_dims : a->x.in_dims)(md->info, g, (int32_t)k, &d);
                if (rc || d.dimCount < 0 || d.dimCount > 8) goto malformed;
                meta_set(o ? &t->out[k] : &t->in[k], (o ? a->x.out_name : a->x.in_name)(md->info, k), d.dims,
                         d.dimCount, (size_t)(o ? a->x.out_size : a->x.in_size)(md->info, g, k));
            }
        } else {
            ax_io_info *io = NULL;
            int32_t rc = a->e.group_info(md->h, g, &io);
            if (rc)
                return seterr(err, errlen, "backend ax650: %s: AX_ENGINE_GetGroupIOInfo(%u): error 0x%x", md->path, g,
                              (unsigned)rc);
            /* no size field to check the struct against: absurd counts or shapes mean this
             * SDK lays AX_ENGINE_IO_INFO_T out differently from lib/ax650.h */
            if (!io || io->nInputSize > MAX_IO || io->nOutputSize > MAX_IO) goto malformed;
            t->n_in = io->nInputSize, t->n_out = io->nOutputSize;
            for (uint32_t i = 0; i < t->n_in + t->n_out; i++) {
                int o = i >= t->n_in;
                const ax_iometa *mt = o ? &io->pOutputs[i - t->n_in] : &io->pInputs[i];
                if (mt->nShapeSize > 8 || (mt->nShapeSize && !mt->pShape)) goto malformed;
                meta_set(o ? &t->out[i - t->n_in] : &t->in[i], mt->pName, mt->pShape, mt->nShapeSize, mt->nSize);
            }
        }
    }
    return 0;
malformed:
    return seterr(err, errlen, "backend ax650: %s: the IO info looks malformed (does this runtime lay its structs out "
                  "as lib/ax650.h declares them?%s%s)", md->path, a->axcl ? "" : " engine ",
                  a->axcl ? "" : a->e.version());
}

/* ---- the IO contract ---- */

static void dims_str(char *s, size_t n, const int32_t *d, int nd) {
    size_t k = (size_t)snprintf(s, n, "[");
    for (int i = 0; i < nd && k < n; i++) k += (size_t)snprintf(s + k, n - k, "%s%d", i ? "," : "", d[i]);
    if (k < n) snprintf(s + k, n - k, "]");
}

static int find(const meta *t, uint32_t n, const char *name) {
    for (uint32_t i = 0; i < n; i++)
        if (!strcmp(t[i].name, name)) return (int)i;
    return -1;
}

/* Tensor name of group g must exist with dims want[nd] of elem-byte elements. */
static int expect(const amodel *md, int g, const meta *t, uint32_t n, const char *name, int out, const int32_t *want,
                  int nd, size_t elem, int *idx, char *err, size_t errlen) {
    int i = find(t, n, name);
    if (i < 0)
        return seterr(err, errlen, "backend ax650: %s: group %d has no %s '%s'", md->path, g, out ? "output" : "input",
                      name);
    size_t count = 1;
    int same = t[i].nd == nd;
    for (int k = 0; k < nd; k++) count *= (size_t)want[k], same = same && t[i].dims[k] == want[k];
    if (!same || t[i].size != count * elem) {
        char got[96], exp[96];
        dims_str(got, sizeof got, t[i].dims, t[i].nd);
        dims_str(exp, sizeof exp, want, nd);
        return seterr(err, errlen, "backend ax650: %s: group %d %s '%s': shape %s (%zu bytes), want %s (%zu bytes)",
                      md->path, g, out ? "output" : "input", name, got, t[i].size, exp, count * elem);
    }
    *idx = i;
    return 0;
}

static int dim_of(const gmeta *t, const char *name, int axis) {
    int i = find(t->in, t->n_in, name);
    return i < 0 || t->in[i].nd <= axis ? -1 : t->in[i].dims[axis];
}

/* Check a layer's groups against the contract; layer 0 sets S, P and the S_g. */
static int check_layer(ax *a, amodel *md, const gmeta *gm, int first, char *err, size_t errlen) {
    int32_t H = (int32_t)a->H, D = (int32_t)a->D;
    if (first) {
        int s = dim_of(&gm[0], "K_cache", 1), p = md->n_groups > 1 ? dim_of(&gm[1], "indices", 1) : 1;
        if (s < 1 || p < 1)
            return seterr(err, errlen, "backend ax650: %s: no K_cache [1,S,%d] in group 0 or indices [1,P] in group 1",
                          md->path, D);
        a->S = (size_t)s, a->P = (size_t)p, a->n_groups = md->n_groups;
        for (int g = 0; g < md->n_groups; g++) {
            int sg = dim_of(&gm[g], "K_cache", 1);
            if (sg < 1 || sg > s)
                return seterr(err, errlen, "backend ax650: %s: group %d K_cache holds %d rows, want 1..%d (group 0's)",
                              md->path, g, sg, s);
            a->Sg[g] = (size_t)sg;
        }
    } else if (md->n_groups != a->n_groups)
        return seterr(err, errlen, "backend ax650: %s: %d shape groups, layer 0 has %d", md->path, md->n_groups,
                      a->n_groups);
    for (int g = 0; g < md->n_groups; g++) {
        const gmeta *t = &gm[g];
        group *gr = &md->g[g];
        int32_t n = g ? (int32_t)a->P : 1, sg = (int32_t)a->Sg[g], S = (int32_t)a->S;
        int32_t x[] = {1, n, H}, idx[] = {1, n}, mask[] = {1, n, g ? sg + n : S + 1}, kv[] = {1, sg, D},
                ko[] = {1, n, D};
        gr->n_in = t->n_in, gr->n_out = t->n_out;
        if (expect(md, g, t->in, t->n_in, "input", 0, x, 3, 2, &gr->in_idx[IN_X], err, errlen) < 0 ||
            expect(md, g, t->in, t->n_in, "indices", 0, idx, 2, 4, &gr->in_idx[IN_IDX], err, errlen) < 0 ||
            expect(md, g, t->in, t->n_in, "mask", 0, mask, 3, 2, &gr->in_idx[IN_MASK], err, errlen) < 0 ||
            expect(md, g, t->in, t->n_in, "K_cache", 0, kv, 3, 2, &gr->in_idx[IN_K], err, errlen) < 0 ||
            expect(md, g, t->in, t->n_in, "V_cache", 0, kv, 3, 2, &gr->in_idx[IN_V], err, errlen) < 0 ||
            expect(md, g, t->out, t->n_out, "K_cache_out", 1, ko, 3, 2, &gr->out_idx[OUT_K], err, errlen) < 0 ||
            expect(md, g, t->out, t->n_out, "V_cache_out", 1, ko, 3, 2, &gr->out_idx[OUT_V], err, errlen) < 0 ||
            expect(md, g, t->out, t->n_out, "output", 1, x, 3, 2, &gr->out_idx[OUT_X], err, errlen) < 0)
            return -1;
        if (t->n_in != N_IN || t->n_out != N_OUT)
            return seterr(err, errlen, "backend ax650: %s: group %d has %u inputs and %u outputs, want %d and %d",
                          md->path, g, t->n_in, t->n_out, N_IN, N_OUT);
    }
    return 0;
}

/* Bind group g of md to the buffers: in[3] (input, indices, mask), K, V, out[3]. */
static int bind_group(ax *a, amodel *md, int g, dbuf *in3, dbuf *K, dbuf *V, dbuf *out3, size_t kv_size, char *err,
                      size_t errlen) {
    group *gr = &md->g[g];
    dbuf *ins[N_IN] = {&in3[0], &in3[1], &in3[2], K, V}, *outs[N_OUT] = {&out3[0], &out3[1], &out3[2]};
    size_t in_sz[N_IN] = {in3[0].size, in3[1].size, in3[2].size, kv_size, kv_size};
    if (a->axcl) {
        int32_t rc = a->x.create_io(md->info, &gr->aio);
        for (int i = 0; !rc && i < N_IN; i++) rc = a->x.set_in(gr->aio, (uint32_t)gr->in_idx[i], ins[i]->dev, in_sz[i]);
        for (int i = 0; !rc && i < N_OUT; i++)
            rc = a->x.set_out(gr->aio, (uint32_t)gr->out_idx[i], outs[i]->dev, outs[i]->size);
        return rc ? seterr(err, errlen, "backend ax650: %s: binding group %d's buffers: error 0x%x", md->path, g,
                           (unsigned)rc)
                  : 0;
    }
    if (!(gr->ib = calloc(N_IN, sizeof *gr->ib)) || !(gr->ob = calloc(N_OUT, sizeof *gr->ob)))
        return seterr(err, errlen, "backend ax650: out of memory");
    for (int i = 0; i < N_IN; i++) /* K/V: group g sees the first S_g rows of the shared buffer */
        gr->ib[gr->in_idx[i]] =
            (ax_io_buffer){.phyAddr = ins[i]->phy, .pVirAddr = ins[i]->vir, .nSize = (uint32_t)in_sz[i]};
    for (int i = 0; i < N_OUT; i++)
        gr->ob[gr->out_idx[i]] =
            (ax_io_buffer){.phyAddr = outs[i]->phy, .pVirAddr = outs[i]->vir, .nSize = (uint32_t)outs[i]->size};
    gr->io = (ax_io){.pInputs = gr->ib, .nInputSize = N_IN, .pOutputs = gr->ob, .nOutputSize = N_OUT, .nBatchSize = 1};
    return 0;
}

static int run_group(ax *a, amodel *md, int g, const char *what, int l, char *err, size_t errlen) {
    int32_t rc = a->axcl ? a->x.execute(md->id, md->cid, (uint32_t)g, md->g[g].aio)
                         : a->e.run(md->h, md->ctx, (uint32_t)g, &md->g[g].io);
    if (rc)
        return seterr(err, errlen, "backend ax650: %s(%s %d, group %d): error 0x%x",
                      a->axcl ? "axclrtEngineExecute" : "AX_ENGINE_RunGroupIOSync", what, l, g, (unsigned)rc);
    return 0;
}

/* ---- open and close (on the AXCL thread when AXCL is the transport) ---- */

static void unload(ax *a, amodel *md) {
    for (int g = 0; md->g && g < md->n_groups; g++) {
        if (a->axcl && md->g[g].aio) a->x.destroy_io(md->g[g].aio);
        free(md->g[g].ib);
        free(md->g[g].ob);
    }
    free(md->g);
    md->g = NULL;
    if (md->loaded) {
        if (a->axcl) {
            if (md->info) a->x.destroy_io_info(md->info);
            a->x.unload(md->id);
        } else
            a->e.destroy(md->h);
    }
    md->loaded = 0;
}

static void teardown(ax *a) {
    int L = a->m->cfg.n_layers;
    for (int l = 0; a->layers && l < L; l++) unload(a, &a->layers[l]);
    unload(a, &a->post);
    for (int l = 0; a->K && l < L; l++) dbuf_free(a, &a->K[l]), dbuf_free(a, &a->V[l]);
    for (int g = 0; g < MAX_GROUPS; g++)
        for (int i = 0; i < 3; i++) dbuf_free(a, &a->gin[g][i]), dbuf_free(a, &a->gout[g][i]);
    dbuf_free(a, &a->post_in);
    dbuf_free(a, &a->post_out);
    if (a->inited) {
        if (a->axcl) {
            a->x.engine_fini();
            if (a->xctx) a->x.destroy_ctx(a->xctx);
            a->x.finalize();
        } else
            a->e.deinit();
    }
    if (a->sys_inited) a->e.sys_deinit();
    a->inited = a->sys_inited = 0;
}

static int init_runtime(ax *a, char *err, size_t errlen) {
    int32_t rc;
    if (a->axcl) {
        if ((rc = a->x.init(NULL))) return vendor_err(err, errlen, "axclInit", rc);
        a->inited = 1;
        axcl_device_list dl = {0};
        if ((rc = a->x.devices(&dl))) return vendor_err(err, errlen, "axclrtGetDeviceList", rc);
        long want = 0;
        const char *env = getenv("AXCL_DEVICE");
        if (env && *env && parse_long(env, 0, AXCL_MAX_DEVICES - 1, &want) < 0)
            return seterr(err, errlen, "backend ax650: AXCL_DEVICE=%.32s: not a device index", env);
        if (dl.num == 0 || (uint32_t)want >= dl.num || dl.num > AXCL_MAX_DEVICES)
            return seterr(err, errlen, "backend ax650: AXCL: device %ld asked, %u found", want, dl.num);
        a->device = dl.devices[want];
        if ((rc = a->x.set_device(a->device))) return vendor_err(err, errlen, "axclrtSetDevice", rc);
        if ((rc = a->x.create_ctx(&a->xctx, a->device))) return vendor_err(err, errlen, "axclrtCreateContext", rc);
        if ((rc = a->x.engine_init(0))) return vendor_err(err, errlen, "axclrtEngineInit", rc);
        return 0;
    }
    if ((rc = a->e.sys_init())) return vendor_err(err, errlen, "AX_SYS_Init", rc);
    a->sys_inited = 1;
    ax_npu_attr attr = {0}; /* AX_ENGINE_VIRTUAL_NPU_DISABLE */
    if ((rc = a->e.init(&attr))) return vendor_err(err, errlen, "AX_ENGINE_Init", rc);
    a->inited = 1;
    return 0;
}

static int setup(ax *a, char *err, size_t errlen) {
    const qwen_config *c = &a->m->cfg;
    int L = c->n_layers;
    a->H = (size_t)c->dim, a->D = (size_t)c->n_kv_heads * (size_t)c->head_dim, a->vocab = (size_t)c->vocab_size;
    if (a->files.n_layers != L)
        return seterr(err, errlen, "backend ax650: the ax-llm directory has %d layers (axmodel_num), the model %d",
                      a->files.n_layers, L);
    if (init_runtime(a, err, errlen) < 0) return -1;
    if (!(a->layers = calloc((size_t)L, sizeof *a->layers)) || !(a->K = calloc((size_t)L, sizeof *a->K)) ||
        !(a->V = calloc((size_t)L, sizeof *a->V)) || !(a->dev_n = calloc((size_t)L, sizeof *a->dev_n)))
        return seterr(err, errlen, "backend ax650: out of memory");
    for (int l = 0; l < L; l++) {
        amodel *md = &a->layers[l];
        gmeta *gm = NULL;
        axllm_layer_path(&a->files, l, md->path, sizeof md->path);
        int rc = load_model(a, md, &gm, err, errlen);
        if (rc == 0) rc = check_layer(a, md, gm, l == 0, err, errlen);
        free(gm);
        if (rc < 0) return -1;
        char what[64];
        size_t kv_size = a->S * a->D * 2;
        snprintf(what, sizeof what, "layer %d K_cache", l);
        if (dbuf_alloc(a, &a->K[l], kv_size, 1, what, err, errlen) < 0) return -1;
        snprintf(what, sizeof what, "layer %d V_cache", l);
        if (dbuf_alloc(a, &a->V[l], kv_size, 1, what, err, errlen) < 0) return -1;
        for (int g = 0; l == 0 && g < a->n_groups; g++) { /* the buffers all layers share */
            size_t n = g ? a->P : 1, cols = g ? a->Sg[g] + n : a->S + 1;
            size_t in_sz[3] = {n * a->H * 2, n * 4, n * cols * 2},
                   out_sz[3] = {n * a->D * 2, n * a->D * 2, n * a->H * 2};
            for (int i = 0; i < 3; i++) {
                snprintf(what, sizeof what, "group %d %s", g, in_name[i]);
                if (dbuf_alloc(a, &a->gin[g][i], in_sz[i], 0, what, err, errlen) < 0) return -1;
                snprintf(what, sizeof what, "group %d %s", g, out_name[i]);
                if (dbuf_alloc(a, &a->gout[g][i], out_sz[i], 1, what, err, errlen) < 0) return -1;
            }
        }
        for (int g = 0; g < a->n_groups; g++)
            if (bind_group(a, md, g, a->gin[g], &a->K[l], &a->V[l], a->gout[g], a->Sg[g] * a->D * 2, err, errlen) < 0)
                return -1;
    }
    /* the post model: input [1,1,H] -> output [1,1,vocab] */
    amodel *pm = &a->post;
    gmeta *gm = NULL;
    snprintf(pm->path, sizeof pm->path, "%s", a->files.post);
    int rc = load_model(a, pm, &gm, err, errlen), xi = 0, oi = 0;
    int32_t x[] = {1, 1, (int32_t)a->H}, lo[] = {1, 1, (int32_t)a->vocab};
    if (rc == 0 && ((rc = expect(pm, 0, gm[0].in, gm[0].n_in, "input", 0, x, 3, 2, &xi, err, errlen)) < 0 ||
                    (rc = expect(pm, 0, gm[0].out, gm[0].n_out, "output", 1, lo, 3, 2, &oi, err, errlen)) < 0)) {
    } else if (rc == 0 && (gm[0].n_in != 1 || gm[0].n_out != 1))
        rc = seterr(err, errlen, "backend ax650: %s: %u inputs, %u outputs, want 1 and 1", pm->path, gm[0].n_in,
                    gm[0].n_out);
    free(gm);
    if (rc < 0 || dbuf_alloc(a, &a->post_in, a->H * 2, 0, "post input", err, errlen) < 0 ||
        dbuf_alloc(a, &a->post_out, a->vocab * 2, 1, "post output (logits)", err, errlen) < 0)
        return -1;
    group *pg = &pm->g[0];
    if (a->axcl) {
        int32_t r = a->x.create_io(pm->info, &pg->aio);
        if (!r) r = a->x.set_in(pg->aio, (uint32_t)xi, a->post_in.dev, a->post_in.size);
        if (!r) r = a->x.set_out(pg->aio, (uint32_t)oi, a->post_out.dev, a->post_out.size);
        if (r) return seterr(err, errlen, "backend ax650: %s: binding buffers: error 0x%x", pm->path, (unsigned)r);
    } else {
        if (!(pg->ib = calloc(1, sizeof *pg->ib)) || !(pg->ob = calloc(1, sizeof *pg->ob)))
            return seterr(err, errlen, "backend ax650: out of memory");
        pg->ib[0] =
            (ax_io_buffer){.phyAddr = a->post_in.phy, .pVirAddr = a->post_in.vir, .nSize = (uint32_t)a->post_in.size};
        pg->ob[0] = (ax_io_buffer){
            .phyAddr = a->post_out.phy, .pVirAddr = a->post_out.vir, .nSize = (uint32_t)a->post_out.size};
        pg->io = (ax_io){.pInputs = pg->ib, .nInputSize = 1, .pOutputs = pg->ob, .nOutputSize = 1, .nBatchSize = 1};
    }
    size_t smax = a->S + 1, P = a->P > 1 ? a->P : 1;
    for (int g = 1; g < a->n_groups; g++)
        if (P * (a->Sg[g] + P) > smax) smax = P * (a->Sg[g] + P);
    size_t need = smax, rows = P * (a->H > a->D ? a->H : a->D);
    need = need > rows ? need : rows;
    need = need > a->vocab ? need : a->vocab;
    if (need < 2 * P) need = 2 * P; /* indices: P uint32 */
    a->stage_size = need * 2;
    if (!(a->stage = malloc(a->stage_size))) return seterr(err, errlen, "backend ax650: out of memory");
    a->max_batch = a->n_groups > 1 ? a->P : 1;
    return 0;
}

/* ---- one layer over positions ---- */

/* Send the cache's rows [dev_n, pos) of layer l to the device (a resumed session, reused
 * blocks); forget device rows at or past pos (the cache was cut back). */
static int sync_rows(ax *a, int l, const kv_cache *kv, size_t pos, char *err, size_t errlen) {
    if (a->dev_n[l] > pos) a->dev_n[l] = pos;
    size_t D = a->D, per = a->stage_size / 2 / D;
    for (size_t r = a->dev_n[l]; r < pos; r += per) {
        size_t nr = pos - r < per ? pos - r : per;
        for (int kvi = 0; kvi < 2; kvi++) {
            const float *src = (kvi ? kv->v[l] : kv->k[l]) + r * D;
            for (size_t i = 0; i < nr * D; i++) a->stage[i] = to_bf16(src[i]);
            if (dbuf_write(a, kvi ? &a->V[l] : &a->K[l], r * D * 2, a->stage, nr * D * 2, err, errlen) < 0) return -1;
        }
    }
    a->dev_n[l] = pos;
    return 0;
}

static int context_full(ax *a, size_t pos, size_t n, char *err, size_t errlen) {
    return seterr(err, errlen, "backend ax650: context full: positions %zu..%zu asked, the axmodels hold %zu "
                  "(kv_cache_num)", pos, pos + n - 1, a->S);
}

/* Run layer l's group g over n valid rows at positions pos..: x (n, H) in and out, and
 * their K/V rows into the device buffers and the cache. The mask and indices are set. */
static int run_rows(ax *a, int l, int g, float *x, size_t n, size_t pos, kv_cache *kv, char *err, size_t errlen) {
    size_t H = a->H, D = a->D, rows = g ? a->P : 1;
    for (size_t i = 0; i < rows * H; i++) a->stage[i] = i < n * H ? to_bf16(x[i]) : 0;
    if (dbuf_write(a, &a->gin[g][IN_X], 0, a->stage, rows * H * 2, err, errlen) < 0 ||
        run_group(a, &a->layers[l], g, "layer", l, err, errlen) < 0 ||
        dbuf_read(a, &a->gout[g][OUT_X], 0, a->stage, n * H * 2, err, errlen) < 0)
        return -1;
    for (size_t i = 0; i < n * H; i++) x[i] = from_bf16(a->stage[i]);
    for (int kvi = 0; kvi < 2; kvi++) {
        if (dbuf_read(a, &a->gout[g][kvi ? OUT_V : OUT_K], 0, a->stage, n * D * 2, err, errlen) < 0 ||
            dbuf_write(a, kvi ? &a->V[l] : &a->K[l], pos * D * 2, a->stage, n * D * 2, err, errlen) < 0)
            return -1;
        float *dst = (kvi ? kv->v[l] : kv->k[l]) + pos * D;
        for (size_t i = 0; i < n * D; i++) dst[i] = from_bf16(a->stage[i]);
    }
    a->dev_n[l] = pos + n;
    return 0;
}

/* Decode group 0 for one position pos of layer l. */
static int decode_at(ax *a, int l, float *x, size_t pos, kv_cache *kv, char *err, size_t errlen) {
    if (pos >= a->S) return context_full(a, pos, 1, err, errlen);
    if (sync_rows(a, l, kv, pos, err, errlen) < 0) return -1;
    uint32_t idx = (uint32_t)pos;
    for (size_t j = 0; j <= a->S; j++) a->stage[j] = j < pos || j == a->S ? 0 : AX_MASK_BLOCKED;
    if (dbuf_write(a, &a->gin[0][IN_MASK], 0, a->stage, (a->S + 1) * 2, err, errlen) < 0 ||
        dbuf_write(a, &a->gin[0][IN_IDX], 0, &idx, 4, err, errlen) < 0)
        return -1;
    return run_rows(a, l, 0, x, 1, pos, kv, err, errlen);
}

/* A prefill group for n <= P positions after hist: the first whose cache holds the history. */
static int prefill_at(ax *a, int l, float *x, size_t n, size_t hist, kv_cache *kv, char *err, size_t errlen) {
    int g = 1;
    while (g < a->n_groups && a->Sg[g] < hist) g++;
    if (hist + n > a->S) return context_full(a, hist, n, err, errlen);
    if (g == a->n_groups || n == 1) { /* past the last prefill group: one position at a time */
        for (size_t i = 0; i < n; i++)
            if (decode_at(a, l, x + i * a->H, hist + i, kv, err, errlen) < 0) return -1;
        return 0;
    }
    if (sync_rows(a, l, kv, hist, err, errlen) < 0) return -1;
    size_t P = a->P, Sg = a->Sg[g], cols = Sg + P;
    uint32_t *idx = (uint32_t *)(void *)a->stage;
    for (size_t k = 0; k < P; k++) idx[k] = (uint32_t)(hist + k);
    if (dbuf_write(a, &a->gin[g][IN_IDX], 0, idx, P * 4, err, errlen) < 0) return -1;
    /* row i < n attends to the history [0, hist) and to chunk rows [Sg, Sg + i]; padding rows to nothing */
    for (size_t i = 0; i < P; i++)
        for (size_t j = 0; j < cols; j++)
            a->stage[i * cols + j] = i < n && (j < hist || (j >= Sg && j <= Sg + i)) ? 0 : AX_MASK_BLOCKED;
    if (dbuf_write(a, &a->gin[g][IN_MASK], 0, a->stage, P * cols * 2, err, errlen) < 0) return -1;
    return run_rows(a, l, g, x, n, hist, kv, err, errlen);
}

static int logits_rows(ax *a, const float *x, size_t n, float *logits, char *err, size_t errlen) {
    for (size_t r = 0; r < n; r++) {
        for (size_t i = 0; i < a->H; i++) a->stage[i] = to_bf16(x[r * a->H + i]);
        if (dbuf_write(a, &a->post_in, 0, a->stage, a->H * 2, err, errlen) < 0 ||
            run_group(a, &a->post, 0, "post", 0, err, errlen) < 0 ||
            dbuf_read(a, &a->post_out, 0, a->stage, a->vocab * 2, err, errlen) < 0)
            return -1;
        for (size_t i = 0; i < a->vocab; i++) logits[r * a->vocab + i] = from_bf16(a->stage[i]);
    }
    return 0;
}

/* ---- the AXCL thread: every call below runs there when AXCL is the transport ---- */

enum { OP_SETUP, OP_TEARDOWN, OP_PREFILL, OP_DECODE, OP_LOGITS };
struct call {
    int op, l, done, rc;
    float *x;
    const float *cx;
    size_t n;
    kv_cache *kv;
    float *logits;
    char *err;
    size_t errlen;
};

static void dispatch(ax *a, call *c) {
    switch (c->op) {
    case OP_SETUP: c->rc = setup(a, c->err, c->errlen); break;
    case OP_TEARDOWN: teardown(a), c->rc = 0; break;
    case OP_PREFILL: c->rc = prefill_at(a, c->l, c->x, c->n, c->kv->n, c->kv, c->err, c->errlen); break;
    case OP_DECODE: c->rc = decode_at(a, c->l, c->x, c->kv->n, c->kv, c->err, c->errlen); break;
    default: c->rc = logits_rows(a, c->cx, c->n, c->logits, c->err, c->errlen); break;
    }
}

static void *worker(void *arg) {
    ax *a = arg;
    pthread_mutex_lock(&a->mu);
    for (;;) {
        while (!a->pending && !a->quit) pthread_cond_wait(&a->cv, &a->mu);
        if (!a->pending) break;
        call *c = a->pending;
        pthread_mutex_unlock(&a->mu);
        dispatch(a, c);
        pthread_mutex_lock(&a->mu);
        a->pending = NULL;
        c->done = 1;
        pthread_cond_broadcast(&a->cv);
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

static int call_op(ax *a, call *c) {
    if (!a->axcl) return dispatch(a, c), c->rc;
    pthread_mutex_lock(&a->mu);
    a->pending = c;
    pthread_cond_broadcast(&a->cv);
    while (!c->done) pthread_cond_wait(&a->cv, &a->mu);
    pthread_mutex_unlock(&a->mu);
    return c->rc;
}

/* ---- the backend ---- */

static void ax_close(void *ctx) {
    ax *a = ctx;
    if (!a) return;
    call c = {.op = OP_TEARDOWN};
    if (!a->axcl || a->th_started) call_op(a, &c);
    if (a->th_started) {
        pthread_mutex_lock(&a->mu);
        a->quit = 1;
        pthread_cond_broadcast(&a->cv);
        pthread_mutex_unlock(&a->mu);
        pthread_join(a->th, NULL);
        pthread_mutex_destroy(&a->mu);
        pthread_cond_destroy(&a->cv);
    }
    if (a->lib_engine) dlclose(a->lib_engine);
    if (a->lib_sys) dlclose(a->lib_sys);
    if (a->lib_axcl) dlclose(a->lib_axcl);
    free(a->layers);
    free(a->K);
    free(a->V);
    free(a->dev_n);
    free(a->stage);
    free(a);
}

static void *ax_open(const model *m, const backend_opts *o, char *err, size_t errlen) {
    if (o->max_batch == 0) return seterr(err, errlen, "backend ax650: max_batch must be at least 1"), NULL;
    ax *a = calloc(1, sizeof *a);
    if (!a) return seterr(err, errlen, "backend ax650: out of memory"), NULL;
    a->m = m;
    const char *dir = axllm_is(m) ? m->dir : getenv("AX650_MODEL");
    if (!dir || !*dir) {
        seterr(err, errlen, "backend ax650: %s is not an ax-llm model directory (config.json naming the *.axmodel "
               "files): give one with -m, or set AX650_MODEL to the one built from this checkpoint", m->dir);
        goto fail;
    }
    char e[512];
    if (axllm_files_read(dir, &a->files, e, sizeof e) < 0) {
        seterr(err, errlen, "backend ax650: %s", e);
        goto fail;
    }
    if (load_libs(a, err, errlen) < 0) goto fail;
    if (!axllm_is(m) && (a->files.hidden != m->cfg.dim || a->files.vocab != m->cfg.vocab_size)) {
        seterr(err, errlen, "backend ax650: AX650_MODEL=%s is for hidden %ld, vocab %ld; the model has %d, %d", dir,
               a->files.hidden, a->files.vocab, m->cfg.dim, m->cfg.vocab_size);
        goto fail;
    }
    if (a->axcl) {
        if (pthread_mutex_init(&a->mu, NULL) || pthread_cond_init(&a->cv, NULL) ||
            pthread_create(&a->th, NULL, worker, a)) {
            seterr(err, errlen, "backend ax650: cannot start the AXCL thread");
            goto fail;
        }
        a->th_started = 1;
    }
    call c = {.op = OP_SETUP, .err = err, .errlen = errlen};
    if (call_op(a, &c) < 0) goto fail;
    if (a->max_batch > o->max_batch) a->max_batch = o->max_batch;
    return a;
fail:
    ax_close(a);
    return NULL;
}

static int ax_prefill_layer(void *ctx, int l, float *x, size_t n, kv_cache *kv, char *err, size_t errlen) {
    ax *a = ctx;
    if (n > a->max_batch)
        return seterr(err, errlen, "backend ax650: %zu positions, more than max_batch %zu", n, a->max_batch);
    if (kv->n + n > kv->cap)
        return seterr(err, errlen, "backend ax650: kv cache holds %zu rows, %zu needed", kv->cap, kv->n + n);
    call c = {.op = OP_PREFILL, .l = l, .x = x, .n = n, .kv = kv, .err = err, .errlen = errlen};
    return call_op(a, &c);
}

static int ax_decode_layer(void *ctx, int l, float *x, kv_cache *kv, char *err, size_t errlen) {
    ax *a = ctx;
    if (kv->n + 1 > kv->cap)
        return seterr(err, errlen, "backend ax650: kv cache holds %zu rows, %zu needed", kv->cap, kv->n + 1);
    call c = {.op = OP_DECODE, .l = l, .x = x, .n = 1, .kv = kv, .err = err, .errlen = errlen};
    return call_op(a, &c);
}

static int ax_logits(void *ctx, const float *x, size_t n, float *logits, char *err, size_t errlen) {
    call c = {.op = OP_LOGITS, .cx = x, .n = n, .logits = logits, .err = err, .errlen = errlen};
    return call_op(ctx, &c);
}

static size_t ax_max_batch(const void *ctx) { return ((const ax *)ctx)->max_batch; }

const backend backend_ax650 = {
    .name = "ax650",
    .open = ax_open,
    .close = ax_close,
    .prefill_layer = ax_prefill_layer,
    .decode_layer = ax_decode_layer,
    .logits = ax_logits,
    .max_batch = ax_max_batch,
};
