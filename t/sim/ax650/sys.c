/* sys: a simulated libax_sys.so: CMM buffers (physical = virtual + SIM_PHY_OFFSET) out of
 * a pool of AXSIM_CMM_BYTES (unlimited when unset). Calls before AX_SYS_Init fail, as on
 * the board.
 *
 * Cached buffers (AX_SYS_MemAllocCached) are not coherent, as on the board: the CPU's view
 * (the virtual address) and the NPU's (what axsim_sys_device gives the simulated engine)
 * are two copies, AX_SYS_MflushCache copies a range from the CPU's to the NPU's and
 * AX_SYS_MinvalidateCache back. A host that forgets either runs on stale data here too.
 * Uncached buffers (AX_SYS_MemAlloc) are one copy. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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
    char *p;   /* the CPU's view */
    char *dev; /* the NPU's: a second copy when cached, else p */
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

/* The block holding [vir, vir+n) if phy is vir's physical address. */
static blk *lookup(uint64_t phy, const void *vir, size_t n) {
    for (blk *b = blocks; b; b = b->next)
        if ((const char *)vir >= b->p && (const char *)vir + n <= b->p + b->n &&
            phy == (uint64_t)(uintptr_t)vir + SIM_PHY_OFFSET)
            return b;
    return NULL;
}

/* For the simulated engine: the NPU's view of physical range [phy, phy+n), or NULL. */
void *axsim_sys_device(uint64_t phy, size_t n) {
    const char *vir = (const char *)(uintptr_t)(phy - SIM_PHY_OFFSET);
    blk *b = lookup(phy, vir, n);
    return b ? b->dev + (vir - b->p) : NULL;
}

static int32_t alloc(uint64_t *phy, void **vir, uint32_t size, uint32_t align, const int8_t *token, int cached) {
    if (!inited) return ERR_NOT_INIT;
    if (!phy || !vir || !size || !align || (align & (align - 1)) || !token) return ERR_ARG;
    size_t lim = mem_limit();
    if (lim && used + size > lim) return ERR_NOMEM;
    blk *b = calloc(1, sizeof *b);
    void *p = NULL;
    if (!b || posix_memalign(&p, align < sizeof(void *) ? sizeof(void *) : align, size) ||
        (cached && !(b->dev = malloc(size)))) {
        free(b ? b->dev : NULL);
        free(b);
        free(p);
        return ERR_NOMEM;
    }
    memset(p, 0xa5, size); /* CMM is not cleared: neither side may count on zeros */
    b->p = p, b->n = size, b->next = blocks;
    if (cached) memset(b->dev, 0x5a, size);
    else b->dev = p;
    blocks = b;
    used += size;
    *vir = p;
    *phy = (uint64_t)(uintptr_t)p + SIM_PHY_OFFSET;
    return 0;
}

int32_t AX_SYS_MemAlloc(uint64_t *phy, void **vir, uint32_t size, uint32_t align, const int8_t *token) {
    return alloc(phy, vir, size, align, token, 0);
}
int32_t AX_SYS_MemAllocCached(uint64_t *phy, void **vir, uint32_t size, uint32_t align, const int8_t *token) {
    return alloc(phy, vir, size, align, token, 1);
}

int32_t AX_SYS_MemFree(uint64_t phy, void *vir) {
    for (blk **pp = &blocks; *pp; pp = &(*pp)->next)
        if ((*pp)->p == vir) {
            blk *b = *pp;
            if (phy != (uint64_t)(uintptr_t)vir + SIM_PHY_OFFSET) return ERR_ARG;
            *pp = b->next;
            used -= b->n;
            if (b->dev != b->p) free(b->dev);
            free(b->p);
            free(b);
            return 0;
        }
    return ERR_ARG;
}

int32_t AX_SYS_MflushCache(uint64_t phy, void *vir, uint32_t size) {
    blk *b = lookup(phy, vir, size);
    if (!b) return ERR_ARG;
    memmove(b->dev + ((char *)vir - b->p), vir, size);
    return 0;
}

int32_t AX_SYS_MinvalidateCache(uint64_t phy, void *vir, uint32_t size) {
    blk *b = lookup(phy, vir, size);
    if (!b) return ERR_ARG;
    memmove(vir, b->dev + ((char *)vir - b->p), size);
    return 0;
}
