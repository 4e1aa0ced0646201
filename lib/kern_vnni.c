/* kern_vnni: the panel kernels (kern_panels.h) with AVX-512 VNNI's dot products on 256-bit
 * vectors (AVX512VL): vpdpbusd for 8DA4W's, Q4's and 8DA8W's bytes, vpdpwssd for Q8's
 * int16 pairs, each one instruction where AVX2 takes two or three. Zen 4 runs a zmm
 * instruction as two ymm halves, so ymm loses nothing there, and the panels keep their
 * 8-row layout (and their cache files). Everything else comes from the variants below
 * (kern.c). */
#if defined(__x86_64__) || defined(__i386__)
#include "kern.h"

#define PT __attribute__((target("avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni")))
#define INLINE static inline __attribute__((always_inline))
#define DOT_UB(s, u, b) _mm256_dpbusd_epi32(s, u, b)
#define SUM_UB(s) (s)
#define DOT_WS(s, a, b) _mm256_dpwssd_epi32(s, a, b)
enum { SLAB = 256 * 1024 };
#define KEEP(v) __asm__("" : "+v"(v))
#define NIBX 12
#define NIBX_8DA4W 12
#define PAIRX 6
#define QUAD8 1
#include "kern_panels.h"

const kern_ops kern_vnni = {
    .name = "avx512vnni",
    .panel = {[WQ_Q8] = panel_q8, [WQ_Q4] = panel_q4, [WQ_8DA4W] = panel_8da4w, [WQ_8DA8W] = panel_8da8w},
};
#else
/* ISO C wants something in every translation unit. */
typedef int kern_vnni_empty;
#endif
