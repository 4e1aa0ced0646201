/* Simulated libopapi.so: the aclnn operators lib/ascend.c calls, each as two phases.
 * GetWorkspaceSize checks the arguments against the operator's reference (dtypes, ranks,
 * shapes, the tensors' memory) and plans an executor; the launch checks the executor,
 * workspace and stream, and computes on the host: f32 arithmetic (double sums) on the
 * widened inputs, the result rounded once to the output dtype (round to nearest even),
 * as the reference formulas read. Where the reference leaves a detail to the hardware
 * (the rounding of AscendQuant's "round" and of DynamicQuant, the dtype the weight-quant
 * matmul dequantizes in), the choice made here is named beside it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

/* ---- element access ---- */

static size_t esize(int dt) {
    switch (dt) {
    case S_FLOAT: case S_INT32: return 4;
    case S_FLOAT16: case S_BF16: return 2;
    case S_INT64: return 8;
    default: return 1;
    }
}

static float bf2f(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static uint16_t f2bf(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)(u >> 16 | 0x40);
    return (uint16_t)((u + 0x7fffu + (u >> 16 & 1)) >> 16);
}
static float h2f(uint16_t h) {
    uint32_t s = (uint32_t)(h & 0x8000) << 16, e = h >> 10 & 31, m = h & 1023, u;
    if (e == 31) u = s | 0x7f800000u | m << 13;
    else if (e) u = s | (e + 112) << 23 | m << 13;
    else if (!m) u = s;
    else {
        float f = ldexpf((float)m, -24);
        return s ? -f : f;
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static uint16_t f2h(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = x >> 16 & 0x8000, m = x & 0x7fffff;
    int e = (int)(x >> 23 & 255);
    if (e == 255) return (uint16_t)(sign | 0x7c00 | (m ? 0x200 : 0));
    int he = e - 127 + 15;
    if (he >= 31) return (uint16_t)(sign | 0x7c00);
    if (he <= 0) {
        if (he < -10) return (uint16_t)sign;
        m |= 0x800000;
        int shift = 14 - he;
        uint32_t hm = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (hm & 1))) hm++;
        return (uint16_t)(sign | hm);
    }
    uint32_t r = sign | (uint32_t)he << 10 | m >> 13, rem = m & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (r & 1))) r++;
    return (uint16_t)r;
}

/* element e (in elements from data) as float */
static float rd(const aclTensor *t, int64_t e) {
    const char *p = t->data;
    switch (t->dtype) {
    case S_FLOAT: return ((const float *)p)[e];
    case S_FLOAT16: return h2f(((const uint16_t *)p)[e]);
    case S_BF16: return bf2f(((const uint16_t *)p)[e]);
    case S_INT8: return ((const int8_t *)p)[e];
    case S_INT32: return (float)((const int32_t *)p)[e];
    case S_INT4: {
        int b = ((const uint8_t *)p)[e / 2], v = e % 2 ? b >> 4 : b & 15;
        return (float)(v >= 8 ? v - 16 : v);
    }
    default: return ((const uint8_t *)p)[e];
    }
}
static void wr(const aclTensor *t, int64_t e, float v) {
    char *p = t->data;
    switch (t->dtype) {
    case S_FLOAT: ((float *)p)[e] = v; break;
    case S_FLOAT16: ((uint16_t *)p)[e] = f2h(v); break;
    case S_BF16: ((uint16_t *)p)[e] = f2bf(v); break;
    default: break;
    }
}
/* v rounded to dtype and back (what storing it in that dtype keeps) */
static float keep(int dt, float v) { return dt == S_BF16 ? bf2f(f2bf(v)) : dt == S_FLOAT16 ? h2f(f2h(v)) : v; }
static int64_t at2(const aclTensor *t, int64_t i, int64_t j) { return t->offset + i * t->strides[0] + j * t->strides[1]; }

static int is_float(int dt) { return dt == S_FLOAT || dt == S_FLOAT16 || dt == S_BF16; }

/* ---- checks ---- */

#define BAD(...) return sim_err(ACLNN_ERR_PARAM_INVALID, __VA_ARGS__)

/* t is a live tensor of rank nd whose elements all lie in one live device block */
static int check(const char *op, const char *name, const aclTensor *t, int nd) {
    if (!t) return sim_err(ACLNN_ERR_PARAM_NULLPTR, "%s: %s is NULL", op, name);
    if (t->magic != SIM_TENSOR || !sim_tensor_live(t)) BAD("%s: %s is not a live tensor", op, name);
    if (nd && t->nd != nd) BAD("%s: %s has rank %d, not %d", op, name, t->nd, nd);
    if (t->format != 2) BAD("%s: %s format %d (only ND is simulated)", op, name, t->format);
    int64_t last = t->offset;
    for (int i = 0; i < t->nd; i++) last += (t->dims[i] - 1) * t->strides[i];
    size_t es = esize(t->dtype);
    const char *lo = (const char *)t->data + (t->dtype == S_INT4 ? t->offset / 2 : t->offset * (int64_t)es);
    size_t bytes = t->dtype == S_INT4 ? (size_t)(last / 2 - t->offset / 2 + 1) : (size_t)(last - t->offset + 1) * es;
    if ((uintptr_t)t->data % 32) BAD("%s: %s: device address not 32-byte aligned", op, name);
    if (!sim_mem_ok(lo, bytes)) BAD("%s: %s: %zu bytes at %p are not inside one live device block", op, name, bytes, (void *)lo);
    return 0;
}
static int contiguous(const aclTensor *t) {
    int64_t s = 1;
    for (int i = t->nd - 1; i >= 0; i--) {
        if (t->dims[i] > 1 && t->strides[i] != s) return 0;
        s *= t->dims[i];
    }
    return 1;
}
static int same_dims(const aclTensor *a, const aclTensor *b) {
    if (a->nd != b->nd) return 0;
    for (int i = 0; i < a->nd; i++)
        if (a->dims[i] != b->dims[i]) return 0;
    return 1;
}
#define CHECK(t, nd) do { int r_ = check(op, #t, t, nd); if (r_) return r_; } while (0)

static int plan(const char *op, uint64_t ws, int (*run)(aclOpExecutor *), const aclTensor *const *t, int nt,
                uint64_t *wsp, aclOpExecutor **exp, aclOpExecutor **out) {
    if (!wsp || !exp) return sim_err(ACLNN_ERR_PARAM_NULLPTR, "%s: NULL workspaceSize or executor", op);
    aclOpExecutor *e = sim_exec_new(op, ws);
    if (!e) return ACLNN_ERR_INNER;
    for (int i = 0; i < nt; i++)
        if (t[i]) e->t[e->nt++] = t[i];
    e->run = run;
    *wsp = ws;
    *exp = e;
    *out = e;
    return 0;
}

/* The launch every operator shares. */
static int launch(const char *op, void *ws, uint64_t wsize, aclOpExecutor *ex, aclrtStream s) {
    int r = sim_exec_take(ex, op);
    if (r) return r;
    if (sim_inject(op)) { /* a failed launch still consumes its executor */
        sim_exec_free(ex);
        return ACLNN_ERR_INNER;
    }
    if (!sim_stream_ok(s)) r = sim_err(ACLNN_ERR_PARAM_INVALID, "%s: not the live stream", op);
    else if (wsize < ex->ws) r = sim_err(ACLNN_ERR_PARAM_INVALID, "%s: workspace of %llu bytes, %llu asked for", op,
                                         (unsigned long long)wsize, (unsigned long long)ex->ws);
    else if (ex->ws && !sim_mem_ok(ws, ex->ws)) r = sim_err(ACLNN_ERR_PARAM_INVALID, "%s: workspace is not %llu bytes of device memory",
                                                           op, (unsigned long long)ex->ws);
    for (int i = 0; !r && i < ex->nt; i++)
        if (!sim_tensor_live(ex->t[i])) r = sim_err(ACLNN_ERR_PARAM_INVALID, "%s: tensor %d destroyed before the launch", op, i);
        else r = check(op, "tensor", ex->t[i], 0);
    if (!r) {
        if (ex->ws) memset(ws, 0x5A, ex->ws < 4096 ? ex->ws : 4096); /* the op owns its workspace */
        r = ex->run(ex);
        sim_launched(s, op);
    }
    sim_exec_free(ex);
    return r;
}

#define LAUNCH(name)                                                                          \
    aclError name(void *ws, uint64_t wsize, aclOpExecutor *ex, aclrtStream s) {               \
        return launch(#name, ws, wsize, ex, s);                                               \
    }

/* ---- aclnnRmsNorm: y = x * rsqrt(mean(x^2) + eps) * gamma over the last dim ---- */

static int run_rms(aclOpExecutor *e) {
    const aclTensor *x = e->t[0], *g = e->t[1], *y = e->t[2], *rs = e->t[3];
    int64_t rows = x->dims[0], d = x->dims[1];
    for (int64_t i = 0; i < rows; i++) {
        double ss = 0;
        for (int64_t j = 0; j < d; j++) {
            float v = rd(x, at2(x, i, j));
            ss += (double)v * v;
        }
        float r = 1.0f / sqrtf((float)(ss / (double)d) + (float)e->d[0]);
        wr(rs, at2(rs, i, 0), r);
        for (int64_t j = 0; j < d; j++)
            wr(y, at2(y, i, j), rd(g, g->offset + j * g->strides[0]) * (rd(x, at2(x, i, j)) * r));
    }
    return 0;
}
aclError aclnnRmsNormGetWorkspaceSize(const aclTensor *x, const aclTensor *gamma, double eps, const aclTensor *y,
                                      const aclTensor *rstd, uint64_t *ws, aclOpExecutor **ex) {
    const char *op = "aclnnRmsNorm";
    if (sim_inject("aclnnRmsNormGetWorkspaceSize")) return ACLNN_ERR_INNER;
    CHECK(x, 2); CHECK(gamma, 1); CHECK(y, 2); CHECK(rstd, 2);
    if (!is_float(x->dtype) || gamma->dtype != x->dtype || y->dtype != x->dtype)
        BAD("%s: x, gamma and y must share one of FLOAT, FLOAT16, BF16 (x %d gamma %d y %d)", op, x->dtype, gamma->dtype, y->dtype);
    if (rstd->dtype != S_FLOAT) BAD("%s: rstd must be FLOAT", op);
    if (gamma->dims[0] != x->dims[1] || !same_dims(x, y) || rstd->dims[0] != x->dims[0] || rstd->dims[1] != 1)
        BAD("%s: shapes x [%lld,%lld] gamma [%lld] y, rstd [%lld,%lld]", op, (long long)x->dims[0], (long long)x->dims[1],
            (long long)gamma->dims[0], (long long)rstd->dims[0], (long long)rstd->dims[1]);
    if (!(eps > 0 && eps < 1)) BAD("%s: epsilon %g", op, eps);
    aclOpExecutor *e;
    int r = plan(op, 0, run_rms, (const aclTensor *[]){x, gamma, y, rstd}, 4, ws, ex, &e);
    if (!r) e->d[0] = eps;
    return r;
}
LAUNCH(aclnnRmsNorm)

/* ---- aclnnCast ---- */

static int run_cast(aclOpExecutor *e) {
    const aclTensor *x = e->t[0], *y = e->t[1];
    for (int64_t i = 0; i < x->dims[0]; i++)
        for (int64_t j = 0; j < x->dims[1]; j++) wr(y, at2(y, i, j), rd(x, at2(x, i, j)));
    return 0;
}
aclError aclnnCastGetWorkspaceSize(const aclTensor *x, int dtype, aclTensor *out, uint64_t *ws, aclOpExecutor **ex) {
    const char *op = "aclnnCast";
    if (sim_inject("aclnnCastGetWorkspaceSize")) return ACLNN_ERR_INNER;
    CHECK(x, 2); CHECK(out, 2);
    if (out->dtype != dtype) BAD("%s: out is dtype %d, asked for %d", op, out->dtype, dtype);
    if (!is_float(x->dtype) || !is_float(dtype)) BAD("%s: only float casts are simulated", op);
    if (!same_dims(x, out)) BAD("%s: shapes differ", op);
    aclOpExecutor *e;
    return plan(op, 0, run_cast, (const aclTensor *[]){x, out}, 2, ws, ex, &e);
}
LAUNCH(aclnnCast)

/* ---- aclnnInplaceAdd: self += alpha * other (other broadcast over rows if 1-D) ---- */

static int run_add(aclOpExecutor *e) {
    const aclTensor *x = e->t[0], *o = e->t[1];
    for (int64_t i = 0; i < x->dims[0]; i++)
        for (int64_t j = 0; j < x->dims[1]; j++) {
            int64_t oe = o->nd == 1 ? o->offset + j * o->strides[0] : at2(o, i, j);
            wr(x, at2(x, i, j), rd(x, at2(x, i, j)) + (float)e->d[0] * rd(o, oe));
        }
    return 0;
}
aclError aclnnInplaceAddGetWorkspaceSize(aclTensor *self, const aclTensor *other, const aclScalar *alpha, uint64_t *ws,
                                         aclOpExecutor **ex) {
    const char *op = "aclnnInplaceAdd";
    if (sim_inject("aclnnInplaceAddGetWorkspaceSize")) return ACLNN_ERR_INNER;
    CHECK(self, 2); CHECK(other, 0);
    if (!alpha || alpha->magic != SIM_SCALAR) BAD("%s: alpha is not a scalar", op);
    if (!is_float(self->dtype) || !is_float(other->dtype)) BAD("%s: float tensors only", op);
    /* the promoted type must convert to self's: a narrower other into a FLOAT self */
    if (self->dtype != S_FLOAT && other->dtype != self->dtype) BAD("%s: other dtype %d does not promote to self %d", op, other->dtype, self->dtype);
    if (!(same_dims(self, other) || (other->nd == 1 && other->dims[0] == self->dims[1])))
        BAD("%s: other does not broadcast to self", op);
    aclOpExecutor *e;
    int r = plan(op, 0, run_add, (const aclTensor *[]){self, other}, 2, ws, ex, &e);
    if (!r) e->d[0] = alpha->v;
    return r;
}
LAUNCH(aclnnInplaceAdd)

/* ---- matmuls ---- */

/* y[M,N] = sum_k a[m,k] * b[k,n] where b is given as a function; rounded into y */
static float *widen_t(const aclTensor *b, int64_t K, int64_t N, const aclTensor *scale, int64_t group, int xdt) {
    float *bt = malloc((size_t)(K * N) * sizeof *bt); /* [N][K] */
    if (!bt) return NULL;
    if (!scale && (b->dtype == S_FLOAT16 || b->dtype == S_BF16)) { /* the common case, fast */
        const uint16_t *h = b->data;
        for (int64_t n = 0; n < N; n++)
            for (int64_t k = 0; k < K; k++) {
                uint16_t u = h[b->offset + k * b->strides[0] + n * b->strides[1]];
                bt[n * K + k] = b->dtype == S_BF16 ? bf2f(u) : h2f(u);
            }
        return bt;
    }
    for (int64_t k = 0; k < K; k++)
        for (int64_t n = 0; n < N; n++) {
            float v = rd(b, at2(b, k, n));
            if (scale) { /* antiquant: (w + 0) * scale, held in the activation dtype */
                int64_t g = group ? k / group : 0;
                float s = scale->nd == 1 ? rd(scale, scale->offset + n * scale->strides[0])
                                         : rd(scale, at2(scale, scale->dims[0] == 1 ? 0 : g, n));
                v = keep(xdt, v * s);
            }
            bt[n * K + k] = v;
        }
    return bt;
}
static int mm(const aclTensor *a, const float *bt, const aclTensor *y, int64_t M, int64_t K, int64_t N) {
    float *ar = malloc((size_t)K * sizeof *ar);
    if (!ar) return ACLNN_ERR_INNER;
    for (int64_t m = 0; m < M; m++) {
        for (int64_t k = 0; k < K; k++) ar[k] = rd(a, at2(a, m, k));
        for (int64_t n = 0; n < N; n++) {
            double s = 0;
            const float *b = bt + n * K;
            for (int64_t k = 0; k < K; k++) s += (double)ar[k] * b[k];
            wr(y, at2(y, m, n), (float)s);
        }
    }
    free(ar);
    return 0;
}

static int run_matmul(aclOpExecutor *e) {
    const aclTensor *a = e->t[0], *b = e->t[1], *y = e->t[2];
    int64_t M = a->dims[0], K = a->dims[1], N = b->dims[1];
    float *bt = widen_t(b, K, N, NULL, 0, 0);
    if (!bt) return ACLNN_ERR_INNER;
    int r = mm(a, bt, y, M, K, N);
    free(bt);
    return r;
}
aclError aclnnMatmulGetWorkspaceSize(const aclTensor *self, const aclTensor *mat2, aclTensor *out, int8_t cube,
                                     uint64_t *ws, aclOpExecutor **ex) {
    const char *op = "aclnnMatmul";
    if (sim_inject("aclnnMatmulGetWorkspaceSize")) return ACLNN_ERR_INNER;
    CHECK(self, 2); CHECK(mat2, 2); CHECK(out, 2);
    if (!is_float(self->dtype) || mat2->dtype != self->dtype) BAD("%s: self %d and mat2 %d must be one float dtype", op, self->dtype, mat2->dtype);
    if (!(out->dtype == self->dtype || (self->dtype == S_FLOAT16 && out->dtype == S_FLOAT)))
        BAD("%s: out dtype %d for inputs %d (only FLOAT16 inputs may give FLOAT)", op, out->dtype, self->dtype);
    if (self->dims[1] != mat2->dims[0] || out->dims[0] != self->dims[0] || out->dims[1] != mat2->dims[1])
        BAD("%s: [%lld,%lld] @ [%lld,%lld] -> [%lld,%lld]", op, (long long)self->dims[0], (long long)self->dims[1],
            (long long)mat2->dims[0], (long long)mat2->dims[1], (long long)out->dims[0], (long long)out->dims[1]);
    if (cube < -1 || cube > 3) BAD("%s: cubeMathType %d", op, cube);
    aclOpExecutor *e;
    return plan(op, (uint64_t)(out->dims[0] * out->dims[1] * 4), run_matmul, (const aclTensor *[]){self, mat2, out}, 3,
                ws, ex, &e);
}
LAUNCH(aclnnMatmul)

/* aclnnWeightQuantBatchMatmulV2: y = x @ ((w + offset) * scale); the dequantized weight
 * is held in x's dtype before the matmul (the simulation's reading of "antiquant") */
static int run_wqbmm(aclOpExecutor *e) {
    const aclTensor *x = e->t[0], *w = e->t[1], *s = e->t[2], *y = e->t[3];
    int64_t M = x->dims[0], K = x->dims[1], N = w->dims[1];
    float *bt = widen_t(w, K, N, s, e->i[0], x->dtype);
    if (!bt) return ACLNN_ERR_INNER;
    int r = mm(x, bt, y, M, K, N);
    free(bt);
    return r;
}
aclError aclnnWeightQuantBatchMatmulV2GetWorkspaceSize(const aclTensor *x, const aclTensor *w, const aclTensor *scale,
                                                       const aclTensor *aoff, const aclTensor *qs, const aclTensor *qo,
                                                       const aclTensor *bias, int group, const aclTensor *y,
                                                       uint64_t *ws, aclOpExecutor **ex) {
    const char *op = "aclnnWeightQuantBatchMatmulV2";
    if (sim_inject("aclnnWeightQuantBatchMatmulV2GetWorkspaceSize")) return ACLNN_ERR_INNER;
    CHECK(x, 2); CHECK(w, 2); CHECK(scale, 0); CHECK(y, 2);
    if (aoff || qs || qo || bias) BAD("%s: offsets, output quantization and bias are not simulated", op);
    if (x->dtype != S_FLOAT16 && x->dtype != S_BF16) BAD("%s: x must be FLOAT16 or BF16, not %d", op, x->dtype);
    if (w->dtype != S_INT8 && w->dtype != S_INT4) BAD("%s: weight must be INT8 or INT4, not %d", op, w->dtype);
    if (scale->dtype != x->dtype) BAD("%s: antiquantScale dtype %d, x %d", op, scale->dtype, x->dtype);
    if (y->dtype != x->dtype) BAD("%s: y dtype %d, x %d", op, y->dtype, x->dtype);
    int64_t M = x->dims[0], K = x->dims[1], N = w->dims[1];
    if (w->dims[0] != K || y->dims[0] != M || y->dims[1] != N) BAD("%s: x [%lld,%lld] weight [%lld,%lld] y", op,
                                                                   (long long)M, (long long)K, (long long)w->dims[0], (long long)N);
    if (w->dtype == S_INT4 && (!contiguous(w) || N % 2)) BAD("%s: INT4 weight must be contiguous [K, N], N even", op);
    if (group) {
        if (group < 32 || group % 32 || group >= K || K % group)
            BAD("%s: antiquantGroupSize %d (a multiple of 32 in [32, K-1] dividing K = %lld)", op, group, (long long)K);
        if (scale->nd != 2 || scale->dims[0] != K / group || scale->dims[1] != N)
            BAD("%s: per-group antiquantScale must be [%lld, %lld]", op, (long long)(K / group), (long long)N);
    } else if (!((scale->nd == 1 && scale->dims[0] == N) || (scale->nd == 2 && scale->dims[0] == 1 && scale->dims[1] == N))) {
        BAD("%s: per-channel antiquantScale must be [%lld] or [1, %lld]", op, (long long)N, (long long)N);
    }
    aclOpExecutor *e;
    int r = plan(op, (uint64_t)(K * N * 2), run_wqbmm, (const aclTensor *[]){x, w, scale, y}, 4, ws, ex, &e);
    if (!r) e->i[0] = group;
    return r;
}
LAUNCH(aclnnWeightQuantBatchMatmulV2)

/* aclnnQuantMatmulV4: out = (x1 @ x2 + bias) * scale [* pertoken], int32 accumulation */
static int run_qmm(aclOpExecutor *e) {
    const aclTensor *a = e->t[0], *b = e->t[1], *s = e->t[2], *y = e->t[3];
    const aclTensor *pt = e->i[0] ? e->t[4] : NULL, *bias = e->i[1] ? e->t[4 + (e->i[0] != 0)] : NULL;
    int64_t M = a->dims[0], K = a->dims[1], N = b->dims[1];
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            int64_t acc = 0;
            for (int64_t k = 0; k < K; k++) acc += (int64_t)rd(a, at2(a, m, k)) * (int64_t)rd(b, at2(b, k, n));
            if (acc > INT32_MAX || acc < INT32_MIN) return sim_err(ACLNN_ERR_INNER, "aclnnQuantMatmulV4: int32 accumulator overflow");
            if (bias) acc += ((const int32_t *)bias->data)[bias->offset + n * bias->strides[0]];
            float sc = rd(s, s->offset + (s->dims[0] == 1 ? 0 : n * s->strides[0]));
            float v = (float)acc * sc;
            if (pt) v *= rd(pt, pt->offset + m * pt->strides[0]);
            wr(y, at2(y, m, n), v);
        }
    return 0;
}
aclError aclnnQuantMatmulV4GetWorkspaceSize(const aclTensor *x1, const aclTensor *x2, const aclTensor *scale,
                                            const aclTensor *offset, const aclTensor *pertoken, const aclTensor *bias,
                                            bool tx1, bool tx2, const aclTensor *out, uint64_t *ws, aclOpExecutor **ex) {
    const char *op = "aclnnQuantMatmulV4";
    if (sim_inject("aclnnQuantMatmulV4GetWorkspaceSize")) return ACLNN_ERR_INNER;
    CHECK(x1, 2); CHECK(x2, 2); CHECK(scale, 1); CHECK(out, 2);
    if (offset) BAD("%s: offset is not simulated", op);
    if (tx1 || tx2) BAD("%s: transposition is given by the strides here, not the flags", op);
    if (!((x1->dtype == S_INT8 && x2->dtype == S_INT8) || (x1->dtype == S_INT4 && x2->dtype == S_INT4)))
        BAD("%s: x1 and x2 must be both INT8 or both INT4 (%d, %d)", op, x1->dtype, x2->dtype);
    if (x1->dtype == S_INT4 && (!contiguous(x1) || x1->dims[1] % 2 || x2->strides[0] != 1))
        BAD("%s: INT4 x1 must be contiguous [M, K], K even, and x2 contiguous along K", op);
    if (out->dtype != S_BF16 && out->dtype != S_FLOAT16) BAD("%s: out must be BF16 or FLOAT16", op);
    if (scale->dtype != S_FLOAT && scale->dtype != S_BF16) BAD("%s: scale must be FLOAT or BF16 here", op);
    int64_t M = x1->dims[0], K = x1->dims[1], N = x2->dims[1];
    if (x2->dims[0] != K || out->dims[0] != M || out->dims[1] != N) BAD("%s: shapes", op);
    if (scale->dims[0] != N && scale->dims[0] != 1) BAD("%s: scale must be [N] or [1]", op);
    if (pertoken) {
        CHECK(pertoken, 1);
        if (pertoken->dtype != S_FLOAT || pertoken->dims[0] != M) BAD("%s: pertokenScale must be FLOAT [M]", op);
        if (bias) BAD("%s: pertoken with bias is not simulated", op);
    }
    if (bias) {
        CHECK(bias, 1);
        if (bias->dtype != S_INT32 || bias->dims[0] != N) BAD("%s: bias must be INT32 [N] here", op);
    }
    aclOpExecutor *e;
    int r = plan(op, (uint64_t)(M * N * 4), run_qmm, (const aclTensor *[]){x1, x2, scale, out, pertoken, bias}, 6, ws, ex, &e);
    if (!r) e->i[0] = pertoken != NULL, e->i[1] = bias != NULL;
    return r;
}
LAUNCH(aclnnQuantMatmulV4)

/* ---- quantizers ---- */

/* "round" as the AscendC AscendQuant reference describes it: half to even (rintf) */
static float round_mode(float v, const char *mode) {
    return !strcmp(mode, "floor") ? floorf(v) : !strcmp(mode, "ceil") ? ceilf(v) : !strcmp(mode, "trunc") ? truncf(v) : rintf(v);
}
static int8_t sat8(float v) { return (int8_t)(v > 127 ? 127 : v < -128 ? -128 : v); }

static int run_quant(aclOpExecutor *e) {
    const aclTensor *x = e->t[0], *s = e->t[1], *o = e->i[0] ? e->t[2] : NULL, *y = e->t[2 + (e->i[0] != 0)];
    for (int64_t i = 0; i < x->dims[0]; i++)
        for (int64_t j = 0; j < x->dims[1]; j++) {
            int64_t sj = s->dims[0] == 1 ? 0 : j;
            float v = rd(x, at2(x, i, j)) * rd(s, s->offset + sj * s->strides[0]);
            if (o) v += rd(o, o->offset + sj * o->strides[0]);
            ((int8_t *)y->data)[at2(y, i, j)] = sat8(round_mode(v, e->s));
        }
    return 0;
}
aclError aclnnAscendQuantV3GetWorkspaceSize(const aclTensor *x, const aclTensor *scale, const aclTensor *offset,
                                            bool sqrt_mode, const char *round, int32_t dst, int32_t axis,
                                            const aclTensor *y, uint64_t *ws, aclOpExecutor **ex) {
    const char *op = "aclnnAscendQuantV3";
    if (sim_inject("aclnnAscendQuantV3GetWorkspaceSize")) return ACLNN_ERR_INNER;
    CHECK(x, 2); CHECK(scale, 1); CHECK(y, 2);
    if (offset) CHECK(offset, 1);
    if (!is_float(x->dtype)) BAD("%s: x must be a float dtype", op);
    if (x->dtype != S_FLOAT && scale->dtype != x->dtype) BAD("%s: scale must have x's dtype when x is not FLOAT", op);
    if (!is_float(scale->dtype) || (offset && offset->dtype != scale->dtype)) BAD("%s: offset dtype must be scale's", op);
    if (scale->dims[0] != 1 && scale->dims[0] != x->dims[1]) BAD("%s: scale must be [1] or [K]", op);
    if (offset && offset->dims[0] != scale->dims[0]) BAD("%s: offset and scale shapes differ", op);
    if (sqrt_mode) BAD("%s: sqrtMode is not simulated", op);
    if (!round || (strcmp(round, "round") && strcmp(round, "floor") && strcmp(round, "ceil") && strcmp(round, "trunc")))
        BAD("%s: roundMode %s", op, round ? round : "NULL");
    if (dst != S_INT8 || y->dtype != S_INT8) BAD("%s: only dstType INT8 is simulated", op);
    if (axis != -1 && axis != 1) BAD("%s: axis %d", op, axis);
    if (!same_dims(x, y)) BAD("%s: y shape", op);
    aclOpExecutor *e;
    int r = plan(op, 0, run_quant, (const aclTensor *[]){x, scale, offset, y}, 4, ws, ex, &e);
    if (!r) e->i[0] = offset != NULL, snprintf(e->s, sizeof e->s, "%s", round);
    return r;
}
LAUNCH(aclnnAscendQuantV3)

/* aclnnDynamicQuant: per row s = max|x| / 127, y = round(x / s) (half to even here) */
static int run_dq(aclOpExecutor *e) {
    const aclTensor *x = e->t[0], *y = e->t[1], *s = e->t[2];
    for (int64_t i = 0; i < x->dims[0]; i++) {
        float mx = 0;
        for (int64_t j = 0; j < x->dims[1]; j++) mx = fmaxf(mx, fabsf(rd(x, at2(x, i, j))));
        float sc = mx / 127.0f;
        ((float *)s->data)[s->offset + i * s->strides[0]] = sc;
        for (int64_t j = 0; j < x->dims[1]; j++)
            ((int8_t *)y->data)[at2(y, i, j)] = sc > 0 ? sat8(rintf(rd(x, at2(x, i, j)) / sc)) : 0;
    }
    return 0;
}
aclError aclnnDynamicQuantGetWorkspaceSize(const aclTensor *x, const aclTensor *smooth, const aclTensor *y,
                                           const aclTensor *scale, uint64_t *ws, aclOpExecutor **ex) {
    const char *op = "aclnnDynamicQuant";
    if (sim_inject("aclnnDynamicQuantGetWorkspaceSize")) return ACLNN_ERR_INNER;
    CHECK(x, 2); CHECK(y, 2); CHECK(scale, 1);
    if (smooth) BAD("%s: smoothScales is not simulated", op);
    if (x->dtype != S_FLOAT16 && x->dtype != S_BF16) BAD("%s: x must be FLOAT16 or BF16", op);
    if (y->dtype != S_INT8 || !same_dims(x, y)) BAD("%s: y must be INT8 shaped as x", op);
    if (scale->dtype != S_FLOAT || scale->dims[0] != x->dims[0]) BAD("%s: scale must be FLOAT [rows]", op);
    aclOpExecutor *e;
    return plan(op, 0, run_dq, (const aclTensor *[]){x, y, scale}, 3, ws, ex, &e);
}
LAUNCH(aclnnDynamicQuant)

/* ---- aclnnFlatQuant: x'' = P1 @ (x @ P2) per token [M, N]; s = max|x''| / (7 / clipRatio);
 * out = x'' / s as INT4 (rounded half to even here, clamped to [-8, 7]) ---- */

static int run_flat(aclOpExecutor *e) {
    const aclTensor *x = e->t[0], *p1 = e->t[1], *p2 = e->t[2], *y = e->t[3], *s = e->t[4];
    int64_t T = x->dims[0], M = x->dims[1], N = x->dims[2];
    float *a = malloc((size_t)(M * N) * sizeof *a), *b = malloc((size_t)(M * N) * sizeof *b);
    if (!a || !b) return free(a), free(b), ACLNN_ERR_INNER;
    for (int64_t t = 0; t < T; t++) {
        for (int64_t i = 0; i < M; i++) /* a = x[t] @ P2, rounded to x's dtype as a matmul output */
            for (int64_t j = 0; j < N; j++) {
                double acc = 0;
                for (int64_t k = 0; k < N; k++)
                    acc += (double)rd(x, x->offset + t * x->strides[0] + i * x->strides[1] + k * x->strides[2]) *
                           rd(p2, at2(p2, k, j));
                a[i * N + j] = keep(x->dtype, (float)acc);
            }
        float mx = 0;
        for (int64_t i = 0; i < M; i++) /* b = P1 @ a */
            for (int64_t j = 0; j < N; j++) {
                double acc = 0;
                for (int64_t k = 0; k < M; k++) acc += (double)rd(p1, at2(p1, i, k)) * a[k * N + j];
                b[i * N + j] = keep(x->dtype, (float)acc);
                mx = fmaxf(mx, fabsf(b[i * N + j]));
            }
        float sc = mx / (7.0f / (float)e->d[0]);
        ((float *)s->data)[s->offset + t * s->strides[0]] = sc;
        for (int64_t i = 0; i < M * N; i++) {
            float q = sc > 0 ? rintf(b[i] / sc) : 0;
            q = q < -8 ? -8 : q > 7 ? 7 : q;
            int64_t el = y->offset + t * y->strides[0] + i; /* y is contiguous */
            uint8_t *byte = (uint8_t *)y->data + el / 2;
            *byte = (uint8_t)(el % 2 ? (*byte & 15) | ((int)q & 15) << 4 : (*byte & 0xf0) | ((int)q & 15));
        }
    }
    free(a), free(b);
    return 0;
}
aclError aclnnFlatQuantGetWorkspaceSize(const aclTensor *x, const aclTensor *p1, const aclTensor *p2, double clip,
                                        aclTensor *out, aclTensor *scale, uint64_t *ws, aclOpExecutor **ex) {
    const char *op = "aclnnFlatQuant";
    if (sim_inject("aclnnFlatQuantGetWorkspaceSize")) return ACLNN_ERR_INNER;
    CHECK(x, 3); CHECK(p1, 2); CHECK(p2, 2); CHECK(out, 3); CHECK(scale, 1);
    if (x->dtype != S_FLOAT16 && x->dtype != S_BF16) BAD("%s: x must be FLOAT16 or BF16", op);
    if (p1->dtype != x->dtype || p2->dtype != x->dtype) BAD("%s: kroneckerP1/P2 must have x's dtype", op);
    int64_t M = x->dims[1], N = x->dims[2];
    if (M > 256 || N > 256) BAD("%s: M %lld and N %lld must not exceed 256", op, (long long)M, (long long)N);
    if (p1->dims[0] != M || p1->dims[1] != M || p2->dims[0] != N || p2->dims[1] != N) BAD("%s: P1 must be [M, M], P2 [N, N]", op);
    if (out->dtype != S_INT4 || !same_dims(out, x) || !contiguous(out) || N % 2) BAD("%s: out must be contiguous INT4 shaped as x, N even", op);
    if (scale->dtype != S_FLOAT || scale->dims[0] != x->dims[0]) BAD("%s: quantScale must be FLOAT [K]", op);
    if (!(clip > 0 && clip <= 1)) BAD("%s: clipRatio %g outside (0, 1]", op, clip);
    aclOpExecutor *e;
    int r = plan(op, 0, run_flat, (const aclTensor *[]){x, p1, p2, out, scale}, 5, ws, ex, &e);
    if (!r) e->d[0] = clip;
    return r;
}
LAUNCH(aclnnFlatQuant)

/* ---- aclnnApplyRotaryPosEmb, layout 1 (BSND), in place: x*cos + rotate_half(x)*sin ---- */

static void rope4(const aclTensor *x, const aclTensor *c, const aclTensor *s) {
    int64_t S = x->dims[1], H = x->dims[2], D = x->dims[3], half = D / 2;
    float *v = malloc((size_t)D * sizeof *v);
    if (!v) return;
    for (int64_t i = 0; i < S; i++)
        for (int64_t h = 0; h < H; h++) {
            int64_t base = x->offset + i * x->strides[1] + h * x->strides[2];
            for (int64_t d = 0; d < D; d++) v[d] = rd(x, base + d * x->strides[3]);
            for (int64_t d = 0; d < D; d++) {
                float rot = d < half ? -v[d + half] : v[d - half];
                float cv = rd(c, c->offset + i * c->strides[1] + d * c->strides[3]);
                float sv = rd(s, s->offset + i * s->strides[1] + d * s->strides[3]);
                wr(x, base + d * x->strides[3], v[d] * cv + rot * sv);
            }
        }
    free(v);
}
static int run_rope(aclOpExecutor *e) {
    rope4(e->t[0], e->t[2], e->t[3]);
    rope4(e->t[1], e->t[2], e->t[3]);
    return 0;
}
aclError aclnnApplyRotaryPosEmbGetWorkspaceSize(aclTensor *q, aclTensor *k, const aclTensor *cos, const aclTensor *sin,
                                                int64_t layout, uint64_t *ws, aclOpExecutor **ex) {
    const char *op = "aclnnApplyRotaryPosEmb";
    if (sim_inject("aclnnApplyRotaryPosEmbGetWorkspaceSize")) return ACLNN_ERR_INNER;
    CHECK(q, 4); CHECK(k, 4); CHECK(cos, 4); CHECK(sin, 4);
    if (layout != 1) BAD("%s: layout %lld (only 1, BSND, is simulated)", op, (long long)layout);
    if (!is_float(q->dtype) || k->dtype != q->dtype || cos->dtype != q->dtype || sin->dtype != q->dtype)
        BAD("%s: query, key, cos and sin must share one float dtype", op);
    if (!same_dims(cos, sin) || cos->dims[2] != 1 || cos->dims[3] != q->dims[3] || k->dims[3] != q->dims[3] ||
        cos->dims[0] != q->dims[0] || cos->dims[1] != q->dims[1] || k->dims[0] != q->dims[0] || k->dims[1] != q->dims[1])
        BAD("%s: query [B,S,N,D], key [B,S,Nk,D], cos/sin [B,S,1,D] do not agree", op);
    if (q->dims[3] % 2) BAD("%s: head dim %lld is odd", op, (long long)q->dims[3]);
    aclOpExecutor *e;
    return plan(op, 0, run_rope, (const aclTensor *[]){q, k, cos, sin}, 4, ws, ex, &e);
}
LAUNCH(aclnnApplyRotaryPosEmb)

/* ---- aclnnSwiGlu: out = silu(a) * b, a and b the two halves of x along dim ---- */

static int run_swiglu(aclOpExecutor *e) {
    const aclTensor *x = e->t[0], *y = e->t[1];
    int64_t H = y->dims[1];
    for (int64_t i = 0; i < x->dims[0]; i++)
        for (int64_t j = 0; j < H; j++) {
            float a = rd(x, at2(x, i, j)), b = rd(x, at2(x, i, j + H));
            wr(y, at2(y, i, j), a / (1.0f + expf(-a)) * b);
        }
    return 0;
}
aclError aclnnSwiGluGetWorkspaceSize(const aclTensor *x, int64_t dim, aclTensor *out, uint64_t *ws, aclOpExecutor **ex) {
    const char *op = "aclnnSwiGlu";
    if (sim_inject("aclnnSwiGluGetWorkspaceSize")) return ACLNN_ERR_INNER;
    CHECK(x, 2); CHECK(out, 2);
    if (dim != -1 && dim != 1) BAD("%s: dim %lld (the last is simulated)", op, (long long)dim);
    if (!is_float(x->dtype) || out->dtype != x->dtype) BAD("%s: x and out must share a float dtype", op);
    if (x->dims[1] % 2 || out->dims[1] * 2 != x->dims[1] || out->dims[0] != x->dims[0]) BAD("%s: out must be x's halves", op);
    aclOpExecutor *e;
    return plan(op, 0, run_swiglu, (const aclTensor *[]){x, out}, 2, ws, ex, &e);
}
LAUNCH(aclnnSwiGlu)

/* ---- aclnnFusedInferAttentionScoreV2, layout BSH, one batch, contiguous K/V ---- */

static int run_fia(aclOpExecutor *e) {
    const aclTensor *q = e->t[0], *k = e->t[1], *v = e->t[2], *o = e->t[3];
    int64_t S = q->dims[1], Skv = k->dims[1], nh = e->i[0], nkv = e->i[1], D = q->dims[2] / nh, mode = e->i[2];
    float scale = (float)e->d[0];
    double *p = malloc((size_t)Skv * sizeof *p);
    float *acc = malloc((size_t)D * sizeof *acc);
    if (!p || !acc) return free(p), free(acc), ACLNN_ERR_INNER;
    for (int64_t i = 0; i < S; i++)
        for (int64_t h = 0; h < nh; h++) {
            int64_t kh = h / (nh / nkv), last = mode == 3 ? Skv - S + i : Skv - 1;
            int64_t qb = q->offset + i * q->strides[1] + h * D * q->strides[2];
            double mx = -INFINITY, sum = 0;
            for (int64_t j = 0; j <= last; j++) {
                int64_t kb = k->offset + j * k->strides[1] + kh * D * k->strides[2];
                double s = 0;
                for (int64_t d = 0; d < D; d++) s += (double)rd(q, qb + d * q->strides[2]) * rd(k, kb + d * k->strides[2]);
                p[j] = (float)s * scale;
                mx = fmax(mx, p[j]);
            }
            for (int64_t j = 0; j <= last; j++) sum += p[j] = exp(p[j] - mx);
            for (int64_t d = 0; d < D; d++) acc[d] = 0;
            for (int64_t j = 0; j <= last; j++) {
                int64_t vb = v->offset + j * v->strides[1] + kh * D * v->strides[2];
                for (int64_t d = 0; d < D; d++) acc[d] += (float)(p[j] / sum) * rd(v, vb + d * v->strides[2]);
            }
            int64_t ob = o->offset + i * o->strides[1] + h * D * o->strides[2];
            for (int64_t d = 0; d < D; d++) wr(o, ob + d * o->strides[2], acc[d]);
        }
    free(p), free(acc);
    return 0;
}
aclError aclnnFusedInferAttentionScoreV2GetWorkspaceSize(
    const aclTensor *q, const aclTensorList *kl, const aclTensorList *vl, const aclTensor *pse, const aclTensor *mask,
    const aclIntArray *seq, const aclIntArray *seq_kv, const aclTensor *dq1, const aclTensor *qs1, const aclTensor *dq2,
    const aclTensor *qs2, const aclTensor *qo2, const aclTensor *aqs, const aclTensor *aqo, const aclTensor *bt,
    const aclTensor *qpad, const aclTensor *kvpad, const aclTensor *kaqs, const aclTensor *kaqo, const aclTensor *vaqs,
    const aclTensor *vaqo, const aclTensor *kpre, const aclTensor *vpre, const aclIntArray *prelen, int64_t nh,
    double scale, int64_t pre, int64_t next, char *layout, int64_t nkv, int64_t mode, int64_t precise, int64_t block,
    int64_t aqmode, bool lse_flag, int64_t kaqmode, int64_t vaqmode, const aclTensor *out, const aclTensor *lse,
    uint64_t *ws, aclOpExecutor **ex) {
    const char *op = "aclnnFusedInferAttentionScoreV2";
    if (sim_inject("aclnnFusedInferAttentionScoreV2GetWorkspaceSize")) return ACLNN_ERR_INNER;
    CHECK(q, 3); CHECK(out, 3);
    if (pse || seq || seq_kv || dq1 || qs1 || dq2 || qs2 || qo2 || aqs || aqo || bt || qpad || kvpad || kaqs || kaqo ||
        vaqs || vaqo || kpre || vpre || prelen || lse || lse_flag || block || aqmode || kaqmode || vaqmode)
        BAD("%s: quantized, paged, padded, shared-prefix and lse variants are not simulated", op);
    if (!kl || !vl || kl->magic != SIM_LIST || vl->magic != SIM_LIST || kl->n != 1 || vl->n != 1)
        BAD("%s: key and value must be lists of one tensor", op);
    const aclTensor *k = kl->v[0], *v = vl->v[0];
    CHECK(k, 3); CHECK(v, 3);
    if (!layout || strcmp(layout, "BSH")) BAD("%s: inputLayout %s (BSH is simulated)", op, layout ? layout : "NULL");
    if (q->dtype != S_BF16 && q->dtype != S_FLOAT16) BAD("%s: query must be BF16 or FLOAT16", op);
    if (k->dtype != q->dtype || v->dtype != q->dtype || out->dtype != q->dtype) BAD("%s: dtypes differ", op);
    if (nh <= 0 || nkv <= 0 || nh % nkv || q->dims[2] % nh) BAD("%s: numHeads %lld numKeyValueHeads %lld", op, (long long)nh, (long long)nkv);
    int64_t D = q->dims[2] / nh;
    if (q->dims[0] != 1 || k->dims[0] != 1 || !same_dims(k, v) || k->dims[2] != nkv * D || !same_dims(q, out))
        BAD("%s: query [1,S,%lld], key/value [1,Skv,%lld], out as query", op, (long long)(nh * D), (long long)(nkv * D));
    if (k->dims[1] < q->dims[1]) BAD("%s: fewer keys (%lld) than queries (%lld)", op, (long long)k->dims[1], (long long)q->dims[1]);
    if (precise != 0 && precise != 1) BAD("%s: innerPrecise %lld", op, (long long)precise);
    if (!(scale > 0)) BAD("%s: scaleValue %g", op, scale);
    if (mode == 3) {
        CHECK(mask, 2);
        if (mask->dims[0] != 2048 || mask->dims[1] != 2048 || (mask->dtype != S_BOOL && mask->dtype != S_INT8 && mask->dtype != S_UINT8))
            BAD("%s: sparseMode 3 takes a 2048x2048 BOOL/INT8/UINT8 mask", op);
        const uint8_t *m = mask->data;
        for (int64_t i = 0; i < 2048; i += 7)
            for (int64_t j = i > 3 ? i - 3 : 0; j < 2048 && j < i + 4; j++)
                if (m[at2(mask, i, j)] != (j > i)) BAD("%s: the sparseMode 3 mask is not 1 exactly above the diagonal", op);
    } else if (mode == 0) {
        if (mask) BAD("%s: a mask with sparseMode 0 is not simulated", op);
        if (q->dims[1] > 1 && next != 0) BAD("%s: sparseMode 0 with %lld queries and nextTokens %lld attends to the future", op,
                                            (long long)q->dims[1], (long long)next);
        (void)pre;
    } else {
        BAD("%s: sparseMode %lld is not simulated", op, (long long)mode);
    }
    aclOpExecutor *e;
    uint64_t w = (uint64_t)(q->dims[1] * k->dims[1] * nh * 4);
    int r = plan(op, w > (64u << 20) ? 64u << 20 : w, run_fia, (const aclTensor *[]){q, k, v, out, mask}, 5, ws, ex, &e);
    if (!r) e->i[0] = nh, e->i[1] = nkv, e->i[2] = mode, e->d[0] = scale;
    return r;
}
LAUNCH(aclnnFusedInferAttentionScoreV2)
