/* engine: a simulated libax_engine.so over sim.c's axmodels. It checks what the board's
 * engine would refuse (calls before Init, a handle's own context, every IO buffer's size
 * against the group's IO info and its physical address against the CMM mapping), reads
 * and writes the buffers as the NPU sees them (through physical addresses: sys.c's
 * uncoherent copy for cached CMM) and fails the run AXSIM_FAIL_RUN names. */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ax650.h"
#include "sim.h"

enum { ERR_NOT_INIT = (int32_t)0x80060001, ERR_ARG = (int32_t)0x80060002, ERR_MODEL = (int32_t)0x80060003,
       ERR_RUN = (int32_t)0x80060004, ERR_NOMEM = (int32_t)0x80060005 };
static int inited;

typedef struct {
    sim_model *sm;
    ax_io_info info[32];
    ax_iometa meta[32][8];
    int ctx_made;
} handle;

const char *AX_ENGINE_GetVersion(void) { return "1.45.0 (qwen3-pipe simulation)"; }

int32_t AX_ENGINE_Init(ax_npu_attr *attr) {
    if (!attr || attr->eHardMode != 0) return ERR_ARG;
    return inited = 1, 0;
}

int32_t AX_ENGINE_Deinit(void) {
    if (!inited) return ERR_NOT_INIT;
    inited = 0;
    sim_shutdown();
    return 0;
}

static void meta_of(ax_iometa *m, sim_tensor *t) {
    memset(m, 0, sizeof *m);
    m->pName = (char *)t->name;
    m->pShape = t->dims;
    m->nShapeSize = (uint8_t)t->nd;
    m->eDataType = t->elem == 4 ? AX_DT_UINT32 : AX_DT_BF16;
    m->nSize = (uint32_t)t->size;
}

int32_t AX_ENGINE_CreateHandle(ax_handle *h, const void *data, uint32_t size) {
    if (!inited) return ERR_NOT_INIT;
    if (!h || !data || !size) return ERR_ARG;
    char err[256];
    handle *hd = calloc(1, sizeof *hd);
    if (!hd) return ERR_NOMEM;
    if (!(hd->sm = sim_load(data, size, err, sizeof err))) {
        fprintf(stderr, "axsim: %s\n", err); /* the real runtime logs its reasons too */
        free(hd);
        return ERR_MODEL;
    }
    for (int g = 0; g < hd->sm->n_groups; g++) {
        sim_group *G = &hd->sm->g[g];
        for (int i = 0; i < G->n_in; i++) meta_of(&hd->meta[g][i], &G->in[i]);
        for (int i = 0; i < G->n_out; i++) meta_of(&hd->meta[g][G->n_in + i], &G->out[i]);
        hd->info[g] = (ax_io_info){.pInputs = hd->meta[g], .nInputSize = (uint32_t)G->n_in,
                                   .pOutputs = hd->meta[g] + G->n_in, .nOutputSize = (uint32_t)G->n_out,
                                   .nMaxBatchSize = 1};
    }
    *h = hd;
    return 0;
}

int32_t AX_ENGINE_DestroyHandle(ax_handle h) {
    handle *hd = h;
    if (!hd) return ERR_ARG;
    sim_free(hd->sm);
    free(hd);
    return 0;
}

int32_t AX_ENGINE_CreateContext(ax_handle h) { return h ? 0 : ERR_ARG; }

int32_t AX_ENGINE_CreateContextV2(ax_handle h, ax_context *ctx) {
    handle *hd = h;
    if (!hd || !ctx) return ERR_ARG;
    hd->ctx_made = 1;
    *ctx = hd;
    return 0;
}

int32_t AX_ENGINE_GetGroupIOInfoCount(ax_handle h, uint32_t *count) {
    if (!h || !count) return ERR_ARG;
    *count = (uint32_t)((handle *)h)->sm->n_groups;
    return 0;
}

int32_t AX_ENGINE_GetGroupIOInfo(ax_handle h, uint32_t group, ax_io_info **info) {
    handle *hd = h;
    if (!hd || !info || group >= (uint32_t)hd->sm->n_groups) return ERR_ARG;
    *info = &hd->info[group];
    return 0;
}

/* The NPU's view of a physical range, from the simulated libax_sys.so the host loaded
 * (cached CMM is not coherent there: see sys.c). */
typedef void *device_fn(uint64_t phy, size_t n);
static device_fn *device_view(void) {
    static device_fn *fn;
    void *h;
    if (!fn && (h = dlopen("libax_sys.so", RTLD_NOW | RTLD_NOLOAD))) {
        *(void **)&fn = dlsym(h, "axsim_sys_device");
        dlclose(h);
    }
    return fn;
}

static int buffers_ok(const ax_io_buffer *b, uint32_t n, const ax_iometa *m) {
    for (uint32_t i = 0; i < n; i++)
        if (!b[i].pVirAddr || b[i].nSize != m[i].nSize ||
            b[i].phyAddr != (uint64_t)(uintptr_t)b[i].pVirAddr + SIM_PHY_OFFSET)
            return 0;
    return 1;
}

int32_t AX_ENGINE_RunGroupIOSync(ax_handle h, ax_context ctx, uint32_t group, ax_io *io) {
    handle *hd = h;
    if (!inited) return ERR_NOT_INIT;
    if (!hd || ctx != hd || !hd->ctx_made || !io || group >= (uint32_t)hd->sm->n_groups) return ERR_ARG;
    ax_io_info *info = &hd->info[group];
    if (io->nInputSize != info->nInputSize || io->nOutputSize != info->nOutputSize || !io->pInputs || !io->pOutputs ||
        !buffers_ok(io->pInputs, io->nInputSize, info->pInputs) ||
        !buffers_ok(io->pOutputs, io->nOutputSize, info->pOutputs))
        return ERR_ARG;
    if (sim_fail_now()) return ERR_RUN;
    device_fn *view = device_view();
    if (!view) {
        fprintf(stderr, "axsim: the simulated libax_sys.so is not loaded\n");
        return ERR_NOT_INIT;
    }
    void *in[8], *out[8];
    for (uint32_t i = 0; i < io->nInputSize; i++)
        if (!(in[i] = view(io->pInputs[i].phyAddr, io->pInputs[i].nSize))) return ERR_ARG;
    for (uint32_t i = 0; i < io->nOutputSize; i++)
        if (!(out[i] = view(io->pOutputs[i].phyAddr, io->pOutputs[i].nSize))) return ERR_ARG;
    char err[256];
    if (sim_run(hd->sm, (int)group, in, out, err, sizeof err) == 0) return 0;
    fprintf(stderr, "axsim: %s\n", err);
    return ERR_RUN;
}
