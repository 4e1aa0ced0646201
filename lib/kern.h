/* kern: the CPU kernels of the Qwen3 forward pass, all computing in f32 whatever the
 * weight dtype (F32, F16 or BF16 weights are widened on the fly, never copied).
 *
 * The few loops that carry the time (the matmul, and attention's scores and weighted
 * sum of V) come in ISA variants behind one table, kern_ops: the generic C one is always
 * built and is the reference the tests hold the others to; kern_best() picks one at run
 * time, the only place that asks the CPU what it supports. The rest (norms, RoPE,
 * SwiGLU) is plain C: it is a rounding error next to the matmuls.
 *
 * Numerics follow HF transformers run in float32 (not its bf16 casts): RMSNorm as
 * w * (x * rsqrt(mean(x^2) + eps)), RoPE angles as f32 pos * f32 inv_freq, softmax in
 * f32 (online, so attention needs no buffer that grows with the context). */
#ifndef KERN_H
#define KERN_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "pool.h"

/* One ISA's inner loops. matmul[t] is for weights of st_dtype t (ST_F32, ST_F16, ST_BF16):
 * y[n,out] = x[n,in] @ W[out,in]^T, but only output columns [o0, o1) of each row of y. */
typedef void kern_matmul_fn(float *y, const float *x, const void *w, size_t n, size_t in,
                            size_t out, size_t o0, size_t o1);
/* The same for BF16 weights w and x rounded to bf16 (kern_to_bf16) as xb: the bf16a scheme
 * (quant.h), llama.cpp's BF16 arithmetic. Products of two bf16 are exact in f32; their sums
 * are f32 in the variant's order: a lane's chain of in/16 adds and the lanes' reduction,
 * within (in/16 + 6) 2^-24 sum |x w| of the exact sum (kern_test asks (in + 32) 2^-24). */
typedef void kern_matmul_bx_fn(float *y, const uint16_t *xb, const uint16_t *w, size_t n, size_t in,
                               size_t out, size_t o0, size_t o1);

/* Activations quantized for the integer kernels.
 * 8DA4W and 8DA8W: per token, as torchao's _apply_int8_act_asym_per_token_quant_dequant: row i is
 *   (q[i*in ..], scale[i], zp[i]) and stands for x' = (q - zp) * scale.
 * Q4 and Q8: per block of 32 (kern_quant_blocks): row i is h[i*in ..] with block scales
 *   hs[i*in/32 ..], x' = h * hs; Q8's h are int16, within 2^-16 of the block's largest |x|
 *   (w8a16, the AX650's scheme), Q4's int8 (w4a8, llama.cpp's Q4_0 x Q8_0; also as u = h + 128,
 *   maddubs's unsigned operand), with integer dot products instead of widening every weight
 *   to f32.
 * A row (8DA4W) or block (Q4, Q8) holding a NaN or an Inf gets scale NaN, so its outputs are
 * NaN (defined behaviour, the same in every variant). */
typedef struct {
    int8_t *q;     /* 8DA4W; Q4: h as int8 (kern_blocks_i8): what their panels read */
    uint8_t *u;    /* 8DA4W: q + 128, Q4: h + 128, the unsigned operand of x86's maddubs */
    float *scale;
    int32_t *zp;
    int16_t *h;    /* Q4, Q8; 8DA4W: q - zp, the int16 operand of x86's pmaddwd */
    float *hs;     /* Q4, Q8 */
    int32_t *c8;   /* Q4, 8DA4W (kern_blocks_i8, kern_block_sums): 8 * each block of 32's sum of q */
} kern_xq;

/* The same contract as kern_matmul_fn for a quantized weight w, reading xq (x is unused). */
typedef void kern_qmatmul_fn(float *y, const float *x, const kern_xq *xq, const qweight *w, size_t n,
                             size_t in, size_t out, size_t o0, size_t o1);
typedef void kern_panel_fn(float *y, const kern_xq *xq, const void *panels, size_t n, size_t in, size_t out,
                           size_t o0, size_t o1);
/* A variant as kern_variants gives it has every entry: those its file leaves NULL are the
 * variant's below it (generic has all but the panels and matmul_bx), so callers never check
 * but for those two. */
typedef struct {
    const char *name;
    kern_matmul_fn *matmul[3];
    /* Optional (NULL: kern_matmul_bx widens xb back to f32 and runs matmul[ST_BF16]): BF16
     * weights times bf16 x, two products per f32 lane (VDPBF16PS) */
    kern_matmul_bx_fn *matmul_bx;
    /* [wq_type]; NULL where the variant has none (kern_matmul_w then takes the best
     * variant below it that has one; generic has them all) */
    kern_qmatmul_fn *qmatmul[WQ_N];
    /* s[t] = q[hd] . k[t*stride .. +hd] for t < n (attention scores of n keys) */
    void (*scores)(float *s, const float *q, const float *k, size_t n, size_t stride, size_t hd);
    /* o[hd] += sum over t < n of p[t] * v[t*stride .. +hd] (probabilities times values) */
    void (*accum)(float *o, const float *p, const float *v, size_t n, size_t stride, size_t hd);
    /* scores and accum over K and V rows held as f16 (kern_attention_f16); with rows
     * whose f32 values are those f16s, the same bits as scores and accum */
    void (*scores16)(float *s, const float *q, const uint16_t *k, size_t n, size_t stride, size_t hd);
    void (*accum16)(float *o, const float *p, const uint16_t *v, size_t n, size_t stride, size_t hd);
    /* Optional (NULL: attention calls the ones above twice): scores and accum for two
     * queries over the same rows (two q heads of one kv head), with the bits of the
     * variant's own scores/accum(16) called once for each */
    void (*scores2)(float *s0, float *s1, const float *q0, const float *q1, const float *k, size_t n,
                    size_t stride, size_t hd);
    void (*accum2)(float *o0, float *o1, const float *p0, const float *p1, const float *v, size_t n,
                   size_t stride, size_t hd);
    void (*scores2_16)(float *s0, float *s1, const float *q0, const float *q1, const uint16_t *k, size_t n,
                       size_t stride, size_t hd);
    void (*accum2_16)(float *o0, float *o1, const float *p0, const float *p1, const uint16_t *v, size_t n,
                      size_t stride, size_t hd);
    /* kern_to_f16 with the same bits */
    void (*to_f16)(uint16_t *h, const float *x, size_t n);
    /* kern_to_bf16 with the same bits */
    void (*to_bf16)(uint16_t *h, const float *x, size_t n);
    /* s[t] = exp(s[t] - m) for t < n (every s[t] <= m), returning their sum: softmax's
     * numerators; within 2 ulp of expf, a NaN stays NaN */
    float (*exps)(float *s, size_t n, float m);
    /* kern_swiglu within a few ulp */
    void (*swiglu)(float *y, const float *g, const float *u, size_t n);
    /* kern_rmsnorm with the same bits */
    void (*rmsnorm)(float *y, const float *x, const float *w, size_t n, size_t dim, float eps);
    /* kern_quant_act and kern_quant_blocks with the same bits; quant_act also writes
     * u = q + 128 and h = q - zp */
    void (*quant_act)(int8_t *q, uint8_t *u, int16_t *h, float *scale, int32_t *zp, const float *x, size_t in);
    void (*quant_blocks)(int16_t *h, uint8_t *u, float *hs, const float *x, size_t in, int qmax);
    /* [wq_type]: Q8, Q4, 8DA4W and 8DA8W weights repacked as panels (kern_pack, below): y
     * columns [o0, o1) of n rows, o0 a multiple of 8; NULL where the variant has none */
    kern_panel_fn *panel[WQ_N];
} kern_ops;

/* Room for every variant a CPU runs (x86 has 5: generic, avx2, avx512, avx512vnni, avx512bf16). */
enum { KERN_VARIANTS = 8 };
/* The fastest variant this CPU runs. */
const kern_ops *kern_best(void);
/* Every variant this CPU runs, generic first, best last (for tests and benchmarks): fills
 * v[0..max) and returns the count. */
size_t kern_variants(const kern_ops **v, size_t max);

/* y[n,out] = x[n,in] @ W[out,in]^T, w F32/F16/BF16, f32 accumulate, output rows of W split
 * over p's threads (p may be NULL). y must not overlap x. */
void kern_matmul(const kern_ops *k, pool *p, float *y, const float *x, weight w, size_t n,
                 size_t in, size_t out);

/* Bytes of scratch kern_matmul_w needs for n rows of in inputs (the quantized activations),
 * and kern_matmul_bx (at least 64 + 4 n in: x as bf16, or widened back to f32).
 * Its first 64 bytes say what it holds: zero them once before the first call. */
size_t kern_qscratch(size_t n, size_t in);

/* kern_matmul for any weight: F32/F16/BF16 is exactly kern_matmul; a quantized weight
 * goes to k's qmatmul (each quantized type first quantizes x into scratch, kern_qscratch(n, in)
 * bytes, 64-byte aligned); a WQ_FMT weight to its format's prep and matmul (scratch: at
 * least 64 + w->fmt->scratch(w, n) bytes, 64-byte aligned; the format gets it past 64). */
void kern_matmul_w(const kern_ops *k, pool *p, float *y, const float *x, weight w, size_t n,
                   size_t in, size_t out, void *scratch);
/* The same, for an x unchanged since the last kern_matmul_w on this scratch (q, k and v
 * share their input, and so do gate and up): activations already quantized the way w
 * wants, for this x, n and in, are used as they are rather than quantized again. */
void kern_matmul_w_same(const kern_ops *k, pool *p, float *y, const float *x, weight w, size_t n,
                        size_t in, size_t out, void *scratch);

/* A quantized weight repacked as panels of 8 rows, for prefill's GEMM and decode's GEMV:
 * lanes are rows, so one row of x (broadcast) multiplies 8 rows of W at once, and the
 * per-block int-to-f32 scaling is done once per 8 rows rather than per row. Every type's
 * panels take the bytes its plain layout takes (Q4 in groups of 128: 9% more), give its
 * reference's bits, and run faster than the plain layout for one row of x too: decode
 * reads them, lm_head's included (kern_matmul_wp takes them for any n).
 * A Q4 or 8DA4W weight's panels: per block of 32 columns, the 8 rows' int4 values as
 * q + 8, interleaved 4 columns at a time (128 bytes), then the 8 rows' scales of the block
 * (Q4: f16 d of its group, 144 bytes per block, group 128's repeated; 8DA4W: f32, 160).
 * The kernel multiplies the unsigned q + 8 by x's signed int8 (Q4: h; 8DA4W: xq) and takes
 * 8 * the block's sum of x (kern_xq's c8) off, per block, once for the 8 rows; 8DA4W's
 * zero point takes zp * sum q off, its sum q counted by the kernel.
 * An 8DA8W weight's panels: 8 rows whose int8 values are interleaved 2 columns at a time
 * (16 bytes: row r's pair at bytes 2r, 2r+1), then the 8 rows' scales, then their sums of q
 * (int32: VNNI's kernel multiplies x's unsigned xq + 128 and takes (128 + zp) * sum q off);
 * its sums are exact in int32 over the whole row. A Q8 weight's panels are an 8DA8W weight's bytes (its int8
 * values and per-row scales are laid out alike), its kernel adds the blocks as its
 * reference. */
typedef struct kern_packed kern_packed;
/* Bytes of one panel (8 rows) of a weight of type t with in columns, in the layouts above:
 * 8DA4W and Q4 per block of 32 columns, 8DA8W and Q8 per row length. kern.c packs them, the
 * variants' panel kernels read them. */
enum { KERN_8DA4W_BLOCK = 8 * 16 + 8 * 4, KERN_Q4_BLOCK = 8 * 16 + 8 * 2 };
/* The panels live in a cache file of their own (cpu.c), whose version this is: bumped
 * whenever a layout changes (2: 8DA4W's lost its sums of q; 3: 8DA8W's gained its). */
enum { KERN_PANELS_VERSION = 3 };
static inline size_t kern_panel_bytes(wq_type t, size_t in) {
    return t == WQ_8DA8W ? in * 8 + 64
           : t == WQ_Q8  ? in * 8 + 32
                         : in / 32 * (t == WQ_Q4 ? KERN_Q4_BLOCK : KERN_8DA4W_BLOCK);
}
kern_packed *kern_pack(const kern_ops *k, const qweight *w, size_t rows);
/* The bytes kern_pack would allocate for w (0: k has no panels for it), and its panels at
 * mem (those bytes, 64-byte aligned; fill: packed there now, else already there, as in a
 * cache file kern_pack_at filled before); mem stays the caller's. */
size_t kern_pack_bytes(const kern_ops *k, const qweight *w, size_t rows);
kern_packed *kern_pack_at(const kern_ops *k, const qweight *w, size_t rows, void *mem, int fill);
void kern_packed_free(kern_packed *p);
const void *kern_panels(const kern_packed *p); /* for tests: the panel kernels' argument */
/* kern_matmul_w (same: kern_matmul_w_same) through w's panels pk where pk is not NULL, for
 * any n (decode's one row of x too). */
void kern_matmul_wp(const kern_ops *k, pool *p, float *y, const float *x, weight w, const kern_packed *pk,
                    size_t n, size_t in, size_t out, void *scratch, int same);
/* kern_matmul_wp for the bf16a scheme: a BF16 weight multiplies x rounded to bf16 (into
 * scratch, reused as kern_matmul_w_same's activations are when same), by k's matmul_bx;
 * any other weight goes to kern_matmul_wp. The rows of y do not depend on n or on the
 * threads. */
void kern_matmul_bx(const kern_ops *k, pool *p, float *y, const float *x, weight w, const kern_packed *pk,
                    size_t n, size_t in, size_t out, void *scratch, int same);

/* One row x[in] to int8 per torchao (quant.h): min_neg = min(min x, 0), max_pos = max(max x, 0),
 * s = max((max_pos - min_neg) / 255, FLT_MIN), zp = clamp(-128 - rne(min_neg / s), -128, 127),
 * q = clamp(rne(x * (1/s)) + zp, -128, 127); all f32. */
void kern_quant_act(int8_t *q, float *scale, int32_t *zp, const float *x, size_t in);

/* One row x[in] (in a multiple of 32) to integers per block of 32, symmetric: amax the block's
 * largest |x|, hs = amax / qmax, h = clamp(rne(x / hs), -qmax, qmax) (all f32; h = 0 where hs
 * is 0: amax 0, or below 2^-149 * qmax); a block holding a NaN or an Inf gets hs NaN and h 0.
 * qmax 32767 is Q8's activations (int16), 127 Q4's (int8, as llama.cpp's Q8_0 but with an
 * f32 scale and RNE); with qmax 127 only, u (when not NULL) gets u = h + 128. */
void kern_quant_blocks(int16_t *h, uint8_t *u, float *hs, const float *x, size_t in, int qmax);
/* Q4's activations as its panels read them: h8 = h as int8 (|h| <= 127), c8 = 8 * each block
 * of 32's sum of h (the q + 8 offset of the panels' nibbles, taken off once per block). */
void kern_blocks_i8(int8_t *h8, int32_t *c8, const int16_t *h, size_t in);
/* 8DA4W's: c8 = 8 * each block of 32's sum of its xq. */
void kern_block_sums(int32_t *c8, const int8_t *q, size_t in);

/* The generic (reference) kernel for quantization type t, for tests. */
kern_qmatmul_fn *kern_qref(wq_type t);

/* y[n,dim] = w * (x * rsqrt(mean(x^2) + eps)) row by row; y may be x. The per-head q/k
 * norm is the same call over (n*heads, head_dim). */
void kern_rmsnorm(float *y, const float *x, const float *w, size_t n, size_t dim, float eps);
/* The same by k's variant (the same bits). */
void kern_rmsnorm_k(const kern_ops *k, float *y, const float *x, const float *w, size_t n, size_t dim, float eps);

/* inv_freq[head_dim/2] and *scale (cos/sin factor: YaRN's attention_factor, else 1) for
 * c's rope_theta and rope_scaling, as HF computes them in f32. */
void kern_rope_freqs(const qwen_config *c, float *inv_freq, float *scale);
/* cos[n,half], sin[n,half] for positions pos0 .. pos0+n-1: scale * cos(f32(pos * inv_freq)). */
void kern_rope_table(float *cos, float *sin, const float *inv_freq, float scale, size_t pos0,
                     size_t n, size_t half);
/* x[n,heads,2*half] rotated in place, NeoX halves (i, i+half), row i by cos/sin row i. */
void kern_rope(float *x, const float *cos, const float *sin, size_t n, size_t heads, size_t half);

/* out[n, n_heads*hd] = causal GQA attention of q[n, n_heads*hd] at positions pos0+i over
 * K/V rows [0, pos0+i] of kc, vc (rows of n_kv_heads*hd; q head h reads kv head
 * h / (n_heads/n_kv_heads)), scale 1/sqrt(hd), softmax in f32. (position, kv head)
 * pairs are split over p's threads. out must not overlap q, kc or vc. */
void kern_attention(const kern_ops *k, pool *p, float *out, const float *q, const float *kc,
                    const float *vc, size_t pos0, size_t n, size_t n_heads, size_t n_kv_heads,
                    size_t hd);

/* The same with K and V as f16 (kern_to_f16 of the f32 rows): half the bytes to read,
 * which is what a decode's attention costs. llama.cpp's default cache type; each value
 * within 2^-11 of its f32 (relative), so logits move by about that much. The f16 rows are
 * in one array, kv, kern_kv16_copy's layout: per kv head, blocks of KERN_KV_BLOCK K rows
 * each followed by the same positions' V rows, so an attention reads one contiguous run
 * per head (the hardware prefetchers follow it: twice the bytes/s of separate K and V).
 * cap: rows per head, a multiple of KERN_KV_BLOCK. */
enum { KERN_KV_BLOCK = 32 };
void kern_attention_f16(const kern_ops *k, pool *p, float *out, const float *q, const uint16_t *kv, size_t cap,
                        size_t pos0, size_t n, size_t n_heads, size_t n_kv_heads, size_t hd);
/* f16 copies of f32 K and V rows [from, to) (n_kv_heads*hd floats each) into that layout. */
void kern_kv16_copy(const kern_ops *k, uint16_t *kv, const float *kr, const float *vr, size_t cap, size_t from,
                    size_t to, size_t n_kv_heads, size_t hd);

/* y[i] = silu(g[i]) * u[i] = g/(1+exp(-g)) * u for i < n; y may be g or u. */
void kern_swiglu(float *y, const float *g, const float *u, size_t n);
/* The same by k's variant. */
void kern_swiglu_k(const kern_ops *k, float *y, const float *g, const float *u, size_t n);

/* y[i] += x[i] for i < n (the residual). */
void kern_add(float *y, const float *x, size_t n);

/* Scalar widening, for tests and the generic loops. */
float kern_bf16(uint16_t h);
float kern_f16(uint16_t h);
/* h[i] = x[i] as IEEE binary16, rounded to nearest even (x86's vcvtps2ph, imm 0): beyond
 * 65504 (from 65520 on) an infinity, below 2^-14 a subnormal, a NaN quiet with its sign
 * and top payload bits. */
void kern_to_f16(uint16_t *h, const float *x, size_t n);
/* h[i] = x[i] as bfloat16 as x86's VCVTNEPS2BF16 rounds it: nearest even; zeros and
 * subnormals to a zero of their sign; an infinity as it is; a NaN quiet (its top 16 bits,
 * bit 6 set); beyond the largest bf16 (from 0x7f7f8000 on) an infinity. */
void kern_to_bf16(uint16_t *h, const float *x, size_t n);

#endif
