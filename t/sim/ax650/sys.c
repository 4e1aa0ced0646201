/* sys: a simulated libax_sys.so: CMM buffers (physical = virtual + SIM_PHY_OFFSET) out of
 * a pool of AXSIM_CMM_BYTES (unlimited when unset), and cache maintenance that checks its
 * addresses. Calls before AX_SYS_Init fail, as on the board. */
#include <stdint.h>
#include <stdlib.h>

#include "ax650.h"
#include "sim.h"

/* AXSIM_CMM_BYTES, read here too: this library stands alone, as libax_sys does */
static size_t mem_limit(void) {
    const char *e = getenv("AXSIM_CMM_BYTES");
    return e && *e ? (size_t)strtoull(e, NULL, 10) : 0;
}

enum { ERR_NOT_INIT = (int32_t)0x80010001, ERR_NOMEM = (int32_t)0x80010002, ERR_ARG = (int32_t)0x80010003 };
static int inited;
static size_t used;

typedef struct blk {
    void *p;
    size_t n;
    struct blk *next;
} blk;
static blk *blocks;

int32_t AX_SYS_Init(void) { return inited = 1, 0; }

int32_t AX_SYS_Deinit(void) {
    if (!inited) return ERR_NOT_INIT;
    inited = 0;
    return blocks ? ERR_ARG : 0; /* every buffer must be freed first */
}

static blk *lookup(uint64_t phy, const void *vir, uint32_t n) {
    for (blk *b = blocks; b; b = b->next)
        if ((const char *)vir >= (char *)b->p && (const char *)vir + n <= (char *)b->p + b->n &&
            phy == (uint64_t)(uintptr_t)vir + SIM_PHY_OFFSET)
            return b;
    return NULL;
}

static int32_t alloc(uint64_t *phy, void **vir, uint32_t size, uint32_t align, const int8_t *token) {
    if (!inited) return ERR_NOT_INIT;
    if (!phy || !vir || !size || !align || (align & (align - 1)) || !token) return ERR_ARG;
    size_t lim = mem_limit();
    if (lim && used + size > lim) return ERR_NOMEM;
    blk *b = malloc(sizeof *b);
    void *p = NULL;
    if (!b || posix_memalign(&p, align < sizeof(void *) ? sizeof(void *) : align, size)) {
        free(b);
        return ERR_NOMEM;
    }
    *b = (blk){p, size, blocks};
    blocks = b;
    used += size;
    *vir = p;
    *phy = (uint64_t)(uintptr_t)p + SIM_PHY_OFFSET;
    return 0;
}

int32_t AX_SYS_MemAlloc(uint64_t *phy, void **vir, uint32_t size, uint32_t align, const int8_t *token) {
    return alloc(phy, vir, size, align, token);
}
int32_t AX_SYS_MemAllocCached(uint64_t *phy, void **vir, uint32_t size, uint32_t align, const int8_t *token) {
    return alloc(phy, vir, size, align, token);
}

int32_t AX_SYS_MemFree(uint64_t phy, void *vir) {
    for (blk **pp = &blocks; *pp; pp = &(*pp)->next)
        if ((*pp)->p == vir) {
            blk *b = *pp;
            if (phy != (uint64_t)(uintptr_t)vir + SIM_PHY_OFFSET) return ERR_ARG;
            *pp = b->next;
            used -= b->n;
            free(b->p);
            free(b);
            return 0;
        }
    return ERR_ARG;
}

int32_t AX_SYS_MflushCache(uint64_t phy, void *vir, uint32_t size) { return lookup(phy, vir, size) ? 0 : ERR_ARG; }
int32_t AX_SYS_MinvalidateCache(uint64_t phy, void *vir, uint32_t size) { return lookup(phy, vir, size) ? 0 : ERR_ARG; }
