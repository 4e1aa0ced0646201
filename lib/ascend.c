/* ascend: the decoder on a Huawei Ascend NPU (CANN), one aclnn operator at a time.
 *
 * The runtime is loaded with dlopen (libascendcl.so: device, memory, stream;
 * libnnopbase.so: aclTensor; libopapi.so: the aclnn operators), from $ASCEND_HOME_PATH/lib64
 * when that is set, else from the loader's path. The few functions, enums and opaque
 * handles used are declared below from CANN's public API reference; no vendor header.
 * Every operator runs in CANN's two phases on the one stream: aclnnXxxGetWorkspaceSize
 * (checks the arguments and plans) then aclnnXxx(workspace, size, executor, stream).
 *
 * What lives on the device, uploaded once at open: every weight (a copy: the NPU cannot
 * read the host mapping), the norms, the causal mask. What stays there across a whole
 * prefill or decode: each layer's K and V rows ([cap, kv_dim], activation dtype), scratch.
 * What crosses per call, because backend.h hands layers host memory: x (n, dim) f32 in
 * and out of each layer, the n new K/V rows out (the session's cache is the host one,
 * lib/kv.h, f32, so sessions move between backends), cos/sin for the n positions once
 * per forward, and the logits. The device K/V rows are reused while the host cache is
 * the one we last wrote (same storage, same row count, same last row); otherwise (a
 * resumed session, a rollback) rows [0, pos0) are uploaded from the host first.
 *
 * Numerics: linear inputs and outputs, q/k/v, the K/V cache and attention in f16
 * (QWEN_ASCEND_DTYPE=bf16: in bf16, as vLLM-Ascend runs a bf16 Qwen3), f32 accumulation on
 * the device; the residual stream and the layer norms in f32, so the large activations of
 * the residual never meet f16's range; the final norm and lm_head in f16 with f32 logits
 * (aclnnMatmul's f16-in, f32-out case), so that greedy picks are not lost to logit ties.
 * The device id is ASCEND_DEVICE_ID (default 0).
 * Matmuls per weight: float weights aclnnMatmul; q8 and q4 (ours) and msModelSlim W4A8_DYNAMIC
 * aclnnWeightQuantBatchMatmulV2 (int8 or int4 weight, per-channel or per-group antiquant
 * scale in the activation dtype); msModelSlim W8A8 aclnnAscendQuantV3 + aclnnQuantMatmulV4
 * with deq_scale and quant_bias; W8A8_DYNAMIC aclnnDynamicQuant + aclnnQuantMatmulV4 with
 * per-token scales; W4A4_FLATQUANT_DYNAMIC aclnnFlatQuant (the Kronecker transform and int4
 * per-token quantization) + aclnnQuantMatmulV4 on int4. */
#include <dlfcn.h>
#include <stddef.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "kern.h"
#include "msms.h"
#include "quant.h"
#include "util.h"

/* ---- the CANN API we use, declared from the public reference ---- */

typedef struct aclTensor aclTensor;
typedef struct aclTensorList aclTensorList;
typedef struct aclScalar aclScalar;
typedef struct aclIntArray aclIntArray;
typedef struct aclOpExecutor aclOpExecutor;
typedef void *aclrtStream;
typedef int aclError;

/* aclDataType codes (acl_base.h); only real hardware can confirm them */
enum {
    ACL_FLOAT = 0, ACL_FLOAT16 = 1, ACL_INT8 = 2, ACL_INT32 = 3, ACL_BOOL = 12, ACL_BF16 = 27, ACL_INT4 = 29
};
enum { ACL_FORMAT_ND = 2 };
enum { ACL_MEM_MALLOC_HUGE_FIRST = 0 };
enum { ACL_MEMCPY_HOST_TO_DEVICE = 1, ACL_MEMCPY_DEVICE_TO_HOST = 2 };

typedef aclError launch_fn(void *ws, uint64_t wsize, aclOpExecutor *ex, aclrtStream s);

typedef struct {
    void *lib[3];
    /* libascendcl */
    aclError (*init)(const char *cfg);
    aclError (*finalize)(void);
    aclError (*set_device)(int32_t dev);
    aclError (*reset_device)(int32_t dev);
    aclError (*create_stream)(aclrtStream *s);
    aclError (*destroy_stream)(aclrtStream s);
    aclError (*sync_stream)(aclrtStream s);
    aclError (*malloc_)(void **p, size_t size, int policy);
    aclError (*free_)(void *p);
    aclError (*memcpy_)(void *dst, size_t dmax, const void *src, size_t n, int kind);
    const char *(*recent_err)(void); /* may be NULL */
    /* libnnopbase */
    aclTensor *(*create_tensor)(const int64_t *dims, uint64_t ndims, int dtype, const int64_t *strides,
                                int64_t offset, int format, const int64_t *sdims, uint64_t nsdims, void *data);
    aclError (*destroy_tensor)(const aclTensor *t);
    aclTensorList *(*create_tensor_list)(const aclTensor *const *v, uint64_t n);
    aclError (*destroy_tensor_list)(const aclTensorList *l);
    aclScalar *(*create_scalar)(void *value, int dtype);
    aclError (*destroy_scalar)(const aclScalar *s);
    /* libopapi: XxxGetWorkspaceSize, then Xxx */
    aclError (*rms_norm_ws)(const aclTensor *x, const aclTensor *gamma, double eps, const aclTensor *y,
                            const aclTensor *rstd, uint64_t *ws, aclOpExecutor **ex);
    aclError (*cast_ws)(const aclTensor *self, int dtype, aclTensor *out, uint64_t *ws, aclOpExecutor **ex);
    aclError (*inplace_add_ws)(aclTensor *self, const aclTensor *other, const aclScalar *alpha, uint64_t *ws,
                               aclOpExecutor **ex);
    aclError (*matmul_ws)(const aclTensor *self, const aclTensor *mat2, aclTensor *out, int8_t cube_math,
                          uint64_t *ws, aclOpExecutor **ex);
    aclError (*wqbmm_ws)(const aclTensor *x, const aclTensor *w, const aclTensor *antiquant_scale,
                         const aclTensor *antiquant_offset, const aclTensor *quant_scale,
                         const aclTensor *quant_offset, const aclTensor *bias, int group, const aclTensor *y,
                         uint64_t *ws, aclOpExecutor **ex);
    aclError (*quant_ws)(const aclTensor *x, const aclTensor *scale, const aclTensor *offset, bool sqrt_mode,
                         const char *round_mode, int32_t dst_type, int32_t axis, const aclTensor *y, uint64_t *ws,
                         aclOpExecutor **ex);
    aclError (*dyn_quant_ws)(const aclTensor *x, const aclTensor *smooth, const aclTensor *y, const aclTensor *scale,
                             uint64_t *ws, aclOpExecutor **ex);
    aclError (*qmm_ws)(const aclTensor *x1, const aclTensor *x2, const aclTensor *scale, const aclTensor *offset,
                       const aclTensor *pertoken, const aclTensor *bias, bool tx1, bool tx2, const aclTensor *out,
                       uint64_t *ws, aclOpExecutor **ex);
    aclError (*rope_ws)(aclTensor *q, aclTensor *k, const aclTensor *cos, const aclTensor *sin, int64_t layout,
                        uint64_t *ws, aclOpExecutor **ex);
    aclError (*flat_quant_ws)(const aclTensor *x, const aclTensor *p1, const aclTensor *p2, double clip, aclTensor *out,
                              aclTensor *scale, uint64_t *ws, aclOpExecutor **ex);
    aclError (*swiglu_ws)(const aclTensor *x, int64_t dim, aclTensor *out, uint64_t *ws, aclOpExecutor **ex);
    aclError (*fia_ws)(const aclTensor *q, const aclTensorList *k, const aclTensorList *v, const aclTensor *pse,
                       const aclTensor *mask, const aclIntArray *seq, const aclIntArray *seq_kv,
                       const aclTensor *dq1, const aclTensor *qs1, const aclTensor *dq2, const aclTensor *qs2,
                       const aclTensor *qo2, const aclTensor *aqs, const aclTensor *aqo, const aclTensor *block_table,
                       const aclTensor *qpad, const aclTensor *kvpad, const aclTensor *kaqs, const aclTensor *kaqo,
                       const aclTensor *vaqs, const aclTensor *vaqo, const aclTensor *kprefix,
                       const aclTensor *vprefix, const aclIntArray *prefix_len, int64_t n_heads, double scale,
                       int64_t pre_tokens, int64_t next_tokens, char *layout, int64_t n_kv_heads,
                       int64_t sparse_mode, int64_t inner_precise, int64_t block_size, int64_t antiquant_mode,
                       bool lse_flag, int64_t k_antiquant_mode, int64_t v_antiquant_mode, const aclTensor *out,
                       const aclTensor *lse, uint64_t *ws, aclOpExecutor **ex);
    launch_fn *rms_norm, *cast, *inplace_add, *matmul, *wqbmm, *quant, *dyn_quant, *qmm, *rope, *flat_quant, *swiglu, *fia;
} acl_api;

static const char *const libnames[3] = {"libascendcl.so", "libnnopbase.so", "libopapi.so"};

/* Each symbol, its library, and where in acl_api it goes. */
static const struct {
    const char *name;
    int lib, optional;
    size_t at;
} syms[] = {
    {"aclInit", 0, 0, offsetof(acl_api, init)},
    {"aclFinalize", 0, 0, offsetof(acl_api, finalize)},
    {"aclrtSetDevice", 0, 0, offsetof(acl_api, set_device)},
    {"aclrtResetDevice", 0, 0, offsetof(acl_api, reset_device)},
    {"aclrtCreateStream", 0, 0, offsetof(acl_api, create_stream)},
    {"aclrtDestroyStream", 0, 0, offsetof(acl_api, destroy_stream)},
    {"aclrtSynchronizeStream", 0, 0, offsetof(acl_api, sync_stream)},
    {"aclrtMalloc", 0, 0, offsetof(acl_api, malloc_)},
    {"aclrtFree", 0, 0, offsetof(acl_api, free_)},
    {"aclrtMemcpy", 0, 0, offsetof(acl_api, memcpy_)},
    {"aclGetRecentErrMsg", 0, 1, offsetof(acl_api, recent_err)},
    {"aclCreateTensor", 1, 0, offsetof(acl_api, create_tensor)},
    {"aclDestroyTensor", 1, 0, offsetof(acl_api, destroy_tensor)},
    {"aclCreateTensorList", 1, 0, offsetof(acl_api, create_tensor_list)},
    {"aclDestroyTensorList", 1, 0, offsetof(acl_api, destroy_tensor_list)},
    {"aclCreateScalar", 1, 0, offsetof(acl_api, create_scalar)},
    {"aclDestroyScalar", 1, 0, offsetof(acl_api, destroy_scalar)},
    {"aclnnRmsNormGetWorkspaceSize", 2, 0, offsetof(acl_api, rms_norm_ws)},
    {"aclnnCastGetWorkspaceSize", 2, 0, offsetof(acl_api, cast_ws)},
    {"aclnnInplaceAddGetWorkspaceSize", 2, 0, offsetof(acl_api, inplace_add_ws)},
    {"aclnnMatmulGetWorkspaceSize", 2, 0, offsetof(acl_api, matmul_ws)},
    {"aclnnWeightQuantBatchMatmulV2GetWorkspaceSize", 2, 0, offsetof(acl_api, wqbmm_ws)},
    {"aclnnAscendQuantV3GetWorkspaceSize", 2, 0, offsetof(acl_api, quant_ws)},
    {"aclnnDynamicQuantGetWorkspaceSize", 2, 0, offsetof(acl_api, dyn_quant_ws)},
    {"aclnnQuantMatmulV4GetWorkspaceSize", 2, 0, offsetof(acl_api, qmm_ws)},
    {"aclnnApplyRotaryPosEmbGetWorkspaceSize", 2, 0, offsetof(acl_api, rope_ws)},
    {"aclnnFlatQuantGetWorkspaceSize", 2, 0, offsetof(acl_api, flat_quant_ws)},
    {"aclnnSwiGluGetWorkspaceSize", 2, 0, offsetof(acl_api, swiglu_ws)},
    {"aclnnFusedInferAttentionScoreV2GetWorkspaceSize", 2, 0, offsetof(acl_api, fia_ws)},
    {"aclnnRmsNorm", 2, 0, offsetof(acl_api, rms_norm)},
    {"aclnnCast", 2, 0, offsetof(acl_api, cast)},
    {"aclnnInplaceAdd", 2, 0, offsetof(acl_api, inplace_add)},
    {"aclnnMatmul", 2, 0, offsetof(acl_api, matmul)},
    {"aclnnWeightQuantBatchMatmulV2", 2, 0, offsetof(acl_api, wqbmm)},
    {"aclnnAscendQuantV3", 2, 0, offsetof(acl_api, quant)},
    {"aclnnDynamicQuant", 2, 0, offsetof(acl_api, dyn_quant)},
    {"aclnnQuantMatmulV4", 2, 0, offsetof(acl_api, qmm)},
    {"aclnnApplyRotaryPosEmb", 2, 0, offsetof(acl_api, rope)},
    {"aclnnFlatQuant", 2, 0, offsetof(acl_api, flat_quant)},
    {"aclnnSwiGlu", 2, 0, offsetof(acl_api, swiglu)},
    {"aclnnFusedInferAttentionScoreV2", 2, 0, offsetof(acl_api, fia)},
};

static void api_unload(acl_api *a) {
    for (int i = 2; i >= 0; i--)
        if (a->lib[i]) dlclose(a->lib[i]);
    memset(a, 0, sizeof *a);
}

static int api_load(acl_api *a, char *err, size_t errlen) {
    const char *home = getenv("ASCEND_HOME_PATH");
    memset(a, 0, sizeof *a);
    for (int i = 0; i < 3; i++) {
        char path[4096];
        if (home && *home) snprintf(path, sizeof path, "%s/lib64/%s", home, libnames[i]);
        else snprintf(path, sizeof path, "%s", libnames[i]);
        if (!(a->lib[i] = dlopen(path, RTLD_NOW | RTLD_GLOBAL))) {
            /* dlerror names the file, except where there is no dynamic loader (static builds) */
            const char *why = dlerror();
            if (why && strstr(why, libnames[i])) seterr(err, errlen, "backend ascend: %s (set ASCEND_HOME_PATH or LD_LIBRARY_PATH)", why);
            else if (why && strstr(why, "not supported")) /* musl's static dlopen */
                seterr(err, errlen, "backend ascend: %s: %s (this is a static build: use the dynamic one)", path, why);
            else seterr(err, errlen, "backend ascend: %s: %s (set ASCEND_HOME_PATH or LD_LIBRARY_PATH)", path,
                        why ? why : "cannot be loaded");
            api_unload(a);
            return -1;
        }
    }
    for (size_t i = 0; i < sizeof syms / sizeof *syms; i++) {
        void *p = dlsym(a->lib[syms[i].lib], syms[i].name);
        if (!p && !syms[i].optional) {
            seterr(err, errlen, "backend ascend: %s has no %s (CANN too old?)", libnames[syms[i].lib], syms[i].name);
            api_unload(a);
            return -1;
        }
        memcpy((char *)a + syms[i].at, &p, sizeof p);
    }
    return 0;
}

/* ---- device weights ---- */

typedef enum {
    DW_FLOAT,   /* bf16 (f16 for lm_head) [out, in]: aclnnMatmul over the transposed view */
    DW_WQ8,     /* int8 [out, in], scale [out]: weight-quant matmul, per channel */
    DW_WQ4,     /* int4 [in, out] packed along out, scale [in/group, out]: weight-quant matmul, grouped */
    DW_W8A8,    /* int8 [out, in], deq_scale f32 [out], quant_bias i32 [out], 1/input_scale, offset f32 [1] */
    DW_W8A8D,   /* int8 [out, in], weight_scale f32 [out]; x quantized per token */
    DW_W4A4F,   /* int4 [out, in] packed along in, weight_scale f32 [out], FlatQuant's P1 = left^T [L, L],
                 * P2 = right [R, R] (activation dtype) and clip ratio; x transformed and quantized per token */
} dw_kind;

typedef struct {
    dw_kind kind;
    int xdt;            /* activation dtype the matmul takes: ACL_BF16, or ACL_FLOAT16 (lm_head) */
    size_t out, in, group, L, R;
    double clip;
    void *w, *scale, *bias, *qscale, *qoffset, *p1, *p2; /* device */
} dweight;

enum { LOGIT_ROWS = 16, MAX_TENSORS = 256, MASK = 2048 };

typedef struct {
    acl_api a;
    int dev, inited, dev_set;
    int adt;         /* activation dtype of the layers: ACL_BF16 or ACL_FLOAT16 */
    aclrtStream stream;
    const model *m;
    size_t B; /* max_batch */
    /* weights: [l * 7 + i] wq wk wv wo gate up down, then lm_head */
    dweight *w;
    void *norms;     /* per layer: attn f32 (dim), ffn f32 (dim), q bf16 (hd), k bf16 (hd) */
    size_t norm_stride;
    void *norm_bias; /* per layer attn, ffn f32 (dim), or NULL */
    void *final_norm;
    void *mask;      /* bool [2048, 2048], 1 above the diagonal */
    /* scratch */
    void *xd, *hd, *rstd, *hb, *qb, *qn, *kb, *att, *ob, *gu, *act, *xf, *xq, *pts, *cs, *sn, *lf, *lo, *lo16;
    void *ws;
    size_t ws_size;
    /* K/V on the device: [l] bf16 (dev_cap, kv_dim) */
    void **kc, **vc;
    size_t dev_cap;
    size_t *dev_n;        /* [l] rows valid on the device */
    const kv_cache *kv_id; /* the host cache they mirror */
    float *lastk;         /* [l] (kv_dim): host K row dev_n-1 as we wrote it */
    uint16_t *stage;      /* host staging, (max(B, LOGIT_ROWS) rows of the widest kv/logit need) */
    size_t stage_elems;
    float *inv_freq, rope_scale, *cos_h, *sin_h;
    size_t rope_pos0, rope_n;
    aclScalar *one;
    float one_v;
    /* the tensors of the call in flight, destroyed after its sync */
    aclTensor *tens[MAX_TENSORS];
    size_t n_tens;
    aclTensorList *lists[2];
} ascend;

static int acl_fail(ascend *c, const char *what, aclError st, char *err, size_t errlen) {
    const char *why = c->a.recent_err ? c->a.recent_err() : NULL;
    return seterr(err, errlen, "backend ascend: %s: error %d%s%s", what, st, why && *why ? ": " : "", why ? why : "");
}
#define ACL(call, what)                                                    \
    do {                                                                   \
        aclError st_ = (call);                                             \
        if (st_ != 0) return acl_fail(c, what, st_, err, errlen);          \
    } while (0)

static int dmalloc(ascend *c, void **p, size_t bytes, char *err, size_t errlen) {
    *p = NULL;
    aclError st = c->a.malloc_(p, bytes ? bytes : 32, ACL_MEM_MALLOC_HUGE_FIRST);
    if (st) {
        *p = NULL;
        char what[64];
        snprintf(what, sizeof what, "aclrtMalloc of %zu bytes", bytes);
        return acl_fail(c, what, st, err, errlen);
    }
    return 0;
}
static void dfree(ascend *c, void **p) {
    if (*p) c->a.free_(*p);
    *p = NULL;
}
static int h2d(ascend *c, void *d, const void *h, size_t bytes, char *err, size_t errlen) {
    if (!bytes) return 0;
    ACL(c->a.memcpy_(d, bytes, h, bytes, ACL_MEMCPY_HOST_TO_DEVICE), "aclrtMemcpy to the device");
    return 0;
}
static int d2h(ascend *c, void *h, const void *d, size_t bytes, char *err, size_t errlen) {
    if (!bytes) return 0;
    ACL(c->a.memcpy_(h, bytes, d, bytes, ACL_MEMCPY_DEVICE_TO_HOST), "aclrtMemcpy from the device");
    return 0;
}
/* Upload a host array into fresh device memory (*d). */
static int upload(ascend *c, void **d, const void *h, size_t bytes, char *err, size_t errlen) {
    if (dmalloc(c, d, bytes, err, errlen) < 0) return -1;
    return h2d(c, *d, h, bytes, err, errlen);
}

/* ---- tensors: created per call, kept until the call's sync ---- */

static size_t dt_size(int dt) { return dt == ACL_FLOAT || dt == ACL_INT32 ? 4 : dt == ACL_INT8 || dt == ACL_BOOL ? 1 : 2; }

/* A tensor over device memory base: dims[nd], element strides (NULL: contiguous), offset in
 * elements. NULL if the tensor table is full or the library refuses (a bug: checked). */
static aclTensor *T(ascend *c, void *base, int dt, int64_t offset, int nd, const int64_t *dims, const int64_t *strides) {
    int64_t st[8], extent = 1;
    if (!strides) {
        for (int i = nd - 1; i >= 0; i--) {
            st[i] = i == nd - 1 ? 1 : st[i + 1] * dims[i + 1];
        }
        strides = st;
    }
    for (int i = 0; i < nd; i++) extent += (dims[i] - 1) * strides[i];
    int64_t sdim = offset + extent;
    if (c->n_tens == MAX_TENSORS) return NULL;
    aclTensor *t = c->a.create_tensor(dims, (uint64_t)nd, dt, strides, offset, ACL_FORMAT_ND, &sdim, 1, base);
    if (t) c->tens[c->n_tens++] = t;
    return t;
}
#define D(...) ((const int64_t[]){__VA_ARGS__})
#define T2(base, dt, off, d0, d1) T(c, base, dt, off, 2, D(d0, d1), NULL)

static void drop_tensors(ascend *c) {
    for (size_t i = 0; i < c->n_tens; i++) c->a.destroy_tensor(c->tens[i]);
    c->n_tens = 0;
    for (int i = 0; i < 2; i++)
        if (c->lists[i]) c->a.destroy_tensor_list(c->lists[i]), c->lists[i] = NULL;
}

/* Phase two of an operator: the workspace it asked for (grown when needed, after a sync),
 * then the launch on our stream. */
static int launch(ascend *c, const char *op, aclError st, uint64_t ws, aclOpExecutor *ex, launch_fn *fn, char *err,
                  size_t errlen) {
    if (st) return acl_fail(c, op, st, err, errlen);
    if (ws > c->ws_size) {
        ACL(c->a.sync_stream(c->stream), "aclrtSynchronizeStream");
        dfree(c, &c->ws);
        size_t want = ws > 2 * c->ws_size ? ws : 2 * c->ws_size;
        if (dmalloc(c, &c->ws, want, err, errlen) < 0) {
            c->ws_size = 0;
            return -1;
        }
        c->ws_size = want;
    }
    ACL(fn(ws ? c->ws : NULL, ws, ex, c->stream), op);
    return 0;
}
#define RUN(op, fn, ...)                                                                               \
    do {                                                                                               \
        uint64_t ws_ = 0;                                                                              \
        aclOpExecutor *ex_ = NULL;                                                                     \
        aclError st_ = c->a.fn##_ws(__VA_ARGS__, &ws_, &ex_);                                          \
        if (launch(c, op, st_, ws_, ex_, c->a.fn, err, errlen) < 0) return -1;                         \
    } while (0)
#define NEED(...)                                                                                      \
    do {                                                                                               \
        const void *t_[] = {__VA_ARGS__};                                                              \
        for (size_t i_ = 0; i_ < sizeof t_ / sizeof *t_; i_++)                                         \
            if (!t_[i_]) return seterr(err, errlen, "backend ascend: aclCreateTensor failed");         \
    } while (0)

/* ---- host conversions for the upload (each a copy, made once at open) ---- */

static float wget(weight w, size_t i) {
    return w.dtype == ST_F32 ? ((const float *)w.data)[i]
         : w.dtype == ST_F16 ? kern_f16(((const uint16_t *)w.data)[i])
                             : kern_bf16(((const uint16_t *)w.data)[i]);
}

/* n elements of a F32/F16/BF16 weight as dt (ACL_FLOAT, ACL_BF16, ACL_FLOAT16) into a new
 * device array. A BF16 weight wanted as BF16 is uploaded straight from the mapping. */
static int up_float(ascend *c, void **d, weight w, size_t n, int dt, char *err, size_t errlen) {
    if (w.dtype == ST_BF16 && dt == ACL_BF16) return upload(c, d, w.data, n * 2, err, errlen);
    if (w.dtype == ST_F32 && dt == ACL_FLOAT) return upload(c, d, w.data, n * 4, err, errlen);
    void *h = malloc(n * dt_size(dt));
    if (!h) return seterr(err, errlen, "backend ascend: out of memory");
    for (size_t i = 0; i < n; i++) {
        float v = wget(w, i);
        if (dt == ACL_FLOAT16 && fabsf(v) > 65504.0f) {
            free(h);
            return seterr(err, errlen, "backend ascend: a weight of %g exceeds f16's range (set QWEN_ASCEND_DTYPE=bf16)", v);
        }
        if (dt == ACL_FLOAT) ((float *)h)[i] = v;
        else ((uint16_t *)h)[i] = dt == ACL_BF16 ? quant_bf16(v) : quant_f16(v);
    }
    int rc = upload(c, d, h, n * dt_size(dt), err, errlen);
    free(h);
    return rc;
}

/* f32 values as dt (f32, bf16 or f16), uploaded */
static int up_scales(ascend *c, void **d, const float *v, size_t n, int dt, char *err, size_t errlen) {
    weight w = {ST_F32, v};
    return up_float(c, d, w, n, dt, err, errlen);
}

/* int4 values q(n, k) of an [out, in] weight as ACL_INT4 [in, out], two per byte along out
 * (the even row in the low nibble), the layout the weight-quant matmul reads without a
 * transpose. */
static int up_int4(ascend *c, void **d, size_t out, size_t in, int (*q)(const void *, size_t, size_t),
                   const void *src, char *err, size_t errlen) {
    size_t bytes = in * out / 2;
    uint8_t *h = malloc(bytes);
    if (!h) return seterr(err, errlen, "backend ascend: out of memory");
    for (size_t k = 0; k < in; k++)
        for (size_t n = 0; n < out; n += 2)
            h[(k * out + n) / 2] = (uint8_t)((q(src, n, k) & 15) | (q(src, n + 1, k) & 15) << 4);
    int rc = upload(c, d, h, bytes, err, errlen);
    free(h);
    return rc;
}
static int q4_val(const void *src, size_t n, size_t k) {
    const qweight *q = src;
    return quant_nib((const uint8_t *)q->data + n * (q->in / 2), k);
}
static int msms_val(const void *src, size_t n, size_t k) { return msms_wval(src, n, k); }

static int is_msms(weight w) { return weight_q(w) == WQ_FMT && ((const qweight *)w.data)->fmt == &msms_fmt; }

/* Upload weight w [out, in] for activations of dtype xdt. */
static int up_weight(ascend *c, dweight *d, weight w, size_t out, size_t in, int xdt, const char *name, char *err,
                     size_t errlen) {
    memset(d, 0, sizeof *d);
    d->out = out, d->in = in, d->xdt = xdt;
    wq_type t = weight_q(w);
    const qweight *q = w.data;
    if (t == WQ_NONE) {
        d->kind = DW_FLOAT;
        return up_float(c, &d->w, w, out * in, xdt, err, errlen);
    }
    if (t == WQ_Q8) {
        d->kind = DW_WQ8;
        if (upload(c, &d->w, q->data, out * in, err, errlen) < 0) return -1;
        return up_scales(c, &d->scale, q->scales, out, xdt, err, errlen);
    }
    if (t == WQ_Q4) {
        if (out % 2) return seterr(err, errlen, "backend ascend: %s: int4 needs an even number of rows, not %zu", name, out);
        /* a group as long as the row is the per-channel case (group 0) */
        d->kind = DW_WQ4, d->group = q->group < in ? q->group : 0;
        size_t ng = in / q->group;
        float *s = malloc(ng * out * sizeof *s);
        if (!s) return seterr(err, errlen, "backend ascend: out of memory");
        const uint16_t *hs = q->scales;
        for (size_t g = 0; g < ng; g++)
            for (size_t n = 0; n < out; n++) s[g * out + n] = kern_f16(hs[n * ng + g]);
        int rc = up_int4(c, &d->w, out, in, q4_val, q, err, errlen);
        if (rc == 0) rc = up_scales(c, &d->scale, s, ng * out, xdt, err, errlen);
        free(s);
        return rc;
    }
    if (!is_msms(w))
        return seterr(err, errlen, "backend ascend: %s: weights quantized as %s have no Ascend kernel here "
                      "(use --quant none, bf16, q8, q4 or q4g128)", name,
                      t == WQ_FMT ? q->fmt->name : t == WQ_8DA4W ? "8da4w" : t == WQ_8DA8W ? "8da8w" : "this");
    const msms_weight *mw = q->aux;
    if (mw->bias) return seterr(err, errlen, "backend ascend: %s: msModelSlim float bias is not supported", name);
    if (mw->scheme == MSMS_W8A8 || mw->scheme == MSMS_W8A8_DYNAMIC) {
        if (!mw->w) return seterr(err, errlen, "backend ascend: %s: int8 weight missing", name);
        if (upload(c, &d->w, mw->w, out * in, err, errlen) < 0) return -1;
        if (mw->scheme == MSMS_W8A8_DYNAMIC) {
            d->kind = DW_W8A8D;
            return up_scales(c, &d->scale, mw->weight_scale, out, ACL_FLOAT, err, errlen);
        }
        d->kind = DW_W8A8;
        /* vLLM-Ascend passes 1/input_scale (an f32 division) and the offset to the quantizer */
        float qs = 1.0f / mw->input_scale, qo = mw->input_offset;
        if (up_scales(c, &d->scale, mw->deq_scale, out, ACL_FLOAT, err, errlen) < 0 ||
            upload(c, &d->bias, mw->quant_bias, out * 4, err, errlen) < 0 ||
            upload(c, &d->qscale, &qs, 4, err, errlen) < 0 || upload(c, &d->qoffset, &qo, 4, err, errlen) < 0)
            return -1;
        return 0;
    }
    if (mw->scheme == MSMS_W4A8_DYNAMIC) {
        /* vLLM-Ascend's dense W4A8 is weight-only: antiquant scale = weight_scale * second level */
        if (out % 2) return seterr(err, errlen, "backend ascend: %s: int4 needs an even number of rows, not %zu", name, out);
        d->kind = DW_WQ4, d->group = mw->group && mw->group < in ? mw->group : 0;
        size_t ng = d->group ? in / d->group : 1;
        float *s = malloc(ng * out * sizeof *s);
        if (!s) return seterr(err, errlen, "backend ascend: out of memory");
        for (size_t g = 0; g < ng; g++)
            for (size_t n = 0; n < out; n++)
                s[g * out + n] = mw->weight_scale[n] * (mw->weight_scale_second ? mw->weight_scale_second[n * ng + g] : 1.0f);
        int rc = up_int4(c, &d->w, out, in, msms_val, mw, err, errlen);
        if (rc == 0) rc = up_scales(c, &d->scale, s, ng * out, xdt, err, errlen);
        free(s);
        return rc;
    }
    if (mw->scheme == MSMS_W4A4_FLATQUANT_DYNAMIC) {
        /* vLLM-Ascend: npu_kronecker_quant(x [T, L, R], left^T, right) then the int4 quant matmul */
        if (!mw->w || in % 2 || mw->L * mw->R != in)
            return seterr(err, errlen, "backend ascend: %s: FlatQuant needs an int4 weight and L*R = in", name);
        d->kind = DW_W4A4F, d->L = mw->L, d->R = mw->R, d->clip = mw->clip_ratio;
        size_t bytes = out * in / 2, L = mw->L, R = mw->R;
        uint8_t *h = malloc(bytes);
        float *p = malloc((L * L + R * R) * sizeof *p);
        int rc = h && p ? 0 : seterr(err, errlen, "backend ascend: out of memory");
        if (rc == 0) {
            for (size_t n = 0; n < out; n++)
                for (size_t k = 0; k < in; k += 2)
                    h[(n * in + k) / 2] = (uint8_t)((mw->w[n * in + k] & 15) | (mw->w[n * in + k + 1] & 15) << 4);
            for (size_t i = 0; i < L; i++)
                for (size_t j = 0; j < L; j++) p[i * L + j] = mw->left_trans[j * L + i];
            for (size_t i = 0; i < R * R; i++) p[L * L + i] = mw->right_trans ? mw->right_trans[i] : (float)(i / R == i % R);
            rc = upload(c, &d->w, h, bytes, err, errlen);
        }
        if (rc == 0) rc = up_scales(c, &d->p1, p, L * L, xdt, err, errlen);
        if (rc == 0) rc = up_scales(c, &d->p2, p + L * L, R * R, xdt, err, errlen);
        if (rc == 0) rc = up_scales(c, &d->scale, mw->weight_scale, out, ACL_FLOAT, err, errlen);
        free(h), free(p);
        return rc;
    }
    return seterr(err, errlen, "backend ascend: %s: msModelSlim %s is not supported on this backend", name,
                  msms_scheme_name(mw->scheme));
}

static void free_weight(ascend *c, dweight *d) {
    dfree(c, &d->w), dfree(c, &d->scale), dfree(c, &d->bias), dfree(c, &d->qscale), dfree(c, &d->qoffset);
    dfree(c, &d->p1), dfree(c, &d->p2);
}

/* y[n, out] (bf16, or xdt for lm_head's weight-quant path) = x[n, in] @ W^T on the device.
 * xb: x in w->xdt; xf: the same x in f32 if at hand (W8A8 quantizes from f32), else NULL.
 * y is base + yoff with row stride ystride elements. */
static int linear(ascend *c, const dweight *w, void *xb, void *xf, size_t n, void *y, int ydt, int64_t yoff,
                  int64_t ystride, char *err, size_t errlen) {
    int64_t N = (int64_t)w->out, K = (int64_t)w->in, M = (int64_t)n;
    aclTensor *x = T2(xb, w->xdt, 0, M, K);
    aclTensor *out = T(c, y, ydt, yoff, 2, D(M, N), D(ystride, 1));
    aclTensor *wt = w->kind == DW_WQ4 ? T2(w->w, ACL_INT4, 0, K, N)
                                      : T(c, w->w, w->kind == DW_FLOAT ? w->xdt : w->kind == DW_W4A4F ? ACL_INT4 : ACL_INT8,
                                          0, 2, D(K, N), D(1, K));
    NEED(x, out, wt);
    switch (w->kind) {
    case DW_FLOAT:
        RUN("aclnnMatmul", matmul, x, wt, out, 0);
        return 0;
    case DW_WQ8:
    case DW_WQ4: {
        aclTensor *s = w->kind == DW_WQ8 || !w->group ? T(c, w->scale, w->xdt, 0, 1, D(N), NULL)
                                         : T2(w->scale, w->xdt, 0, K / (int64_t)w->group, N);
        NEED(s);
        RUN("aclnnWeightQuantBatchMatmulV2", wqbmm, x, wt, s, NULL, NULL, NULL, NULL,
            (int)w->group, out);
        return 0;
    }
    case DW_W8A8: {
        if (!xf) { /* the quantizer's scale is f32, so it takes f32 x */
            aclTensor *xc = T2(c->xf, ACL_FLOAT, 0, M, K);
            NEED(xc);
            RUN("aclnnCast", cast, x, ACL_FLOAT, xc);
            xf = c->xf;
        }
        aclTensor *xin = T2(xf, ACL_FLOAT, 0, M, K), *xq = T2(c->xq, ACL_INT8, 0, M, K);
        aclTensor *qs = T(c, w->qscale, ACL_FLOAT, 0, 1, D(1), NULL), *qo = T(c, w->qoffset, ACL_FLOAT, 0, 1, D(1), NULL);
        aclTensor *ds = T(c, w->scale, ACL_FLOAT, 0, 1, D(N), NULL), *qb = T(c, w->bias, ACL_INT32, 0, 1, D(N), NULL);
        NEED(xin, xq, qs, qo, ds, qb);
        RUN("aclnnAscendQuantV3", quant, xin, qs, qo, false, "round", ACL_INT8, -1, xq);
        RUN("aclnnQuantMatmulV4", qmm, xq, wt, ds, NULL, NULL, qb, false, false, out);
        return 0;
    }
    case DW_W4A4F: {
        int64_t L = (int64_t)w->L, R = (int64_t)w->R;
        aclTensor *x3 = T(c, xb, w->xdt, 0, 3, D(M, L, R), NULL), *xq3 = T(c, c->xq, ACL_INT4, 0, 3, D(M, L, R), NULL);
        aclTensor *p1 = T2(w->p1, w->xdt, 0, L, L), *p2 = T2(w->p2, w->xdt, 0, R, R);
        aclTensor *pts = T(c, c->pts, ACL_FLOAT, 0, 1, D(M), NULL), *xq = T2(c->xq, ACL_INT4, 0, M, K);
        aclTensor *ws = T(c, w->scale, ACL_FLOAT, 0, 1, D(N), NULL);
        NEED(x3, xq3, p1, p2, pts, xq, ws);
        RUN("aclnnFlatQuant", flat_quant, x3, p1, p2, w->clip, xq3, pts);
        RUN("aclnnQuantMatmulV4", qmm, xq, wt, ws, NULL, pts, NULL, false, false, out);
        return 0;
    }
    case DW_W8A8D: {
        aclTensor *xq = T2(c->xq, ACL_INT8, 0, M, K), *pts = T(c, c->pts, ACL_FLOAT, 0, 1, D(M), NULL);
        aclTensor *ws = T(c, w->scale, ACL_FLOAT, 0, 1, D(N), NULL);
        NEED(xq, pts, ws);
        RUN("aclnnDynamicQuant", dyn_quant, x, NULL, xq, pts);
        RUN("aclnnQuantMatmulV4", qmm, xq, wt, ws, NULL, pts, NULL, false, false, out);
        return 0;
    }
    }
    return seterr(err, errlen, "backend ascend: bad weight kind");
}

/* y[rows, d] = rmsnorm(x) * gamma, dtype dt for x and y; rstd is scratch. */
static int rmsnorm(ascend *c, void *x, int64_t xoff, void *gamma, int64_t goff, void *y, int64_t yoff, int dt,
                   size_t rows, size_t d, char *err, size_t errlen) {
    int64_t R = (int64_t)rows, Dd = (int64_t)d;
    aclTensor *xt = T2(x, dt, xoff, R, Dd), *g = T(c, gamma, dt, goff, 1, D(Dd), NULL), *yt = T2(y, dt, yoff, R, Dd);
    aclTensor *rs = T2(c->rstd, ACL_FLOAT, 0, R, 1);
    NEED(xt, g, yt, rs);
    RUN("aclnnRmsNorm", rms_norm, xt, g, (double)c->m->cfg.rms_eps, yt, rs);
    return 0;
}

/* x (f32 [rows, d]) += y (dt, [rows, d] or [d] broadcast) */
static int add(ascend *c, void *x, void *y, int64_t yoff, int dt, size_t rows, size_t d, int bcast, char *err,
               size_t errlen) {
    aclTensor *xt = T2(x, ACL_FLOAT, 0, (int64_t)rows, (int64_t)d);
    aclTensor *yt = bcast ? T(c, y, dt, yoff, 1, D((int64_t)d), NULL) : T2(y, dt, yoff, (int64_t)rows, (int64_t)d);
    NEED(xt, yt);
    RUN("aclnnInplaceAdd", inplace_add, xt, yt, c->one);
    return 0;
}

/* normed input of a block: hd (f32) = rmsnorm(xd) * g (+ bias), hb = bf16(hd) */
static int block_in(ascend *c, int l, int which, size_t n, char *err, size_t errlen) {
    size_t dim = (size_t)c->m->cfg.dim;
    if (rmsnorm(c, c->xd, 0, c->norms, (int64_t)(c->norm_stride * (size_t)l / 4 + which * dim), c->hd, 0, ACL_FLOAT, n,
                dim, err, errlen) < 0)
        return -1;
    if (c->norm_bias && add(c, c->hd, c->norm_bias, (int64_t)((2 * (size_t)l + (size_t)which) * dim), ACL_FLOAT, n, dim,
                            1, err, errlen) < 0)
        return -1;
    aclTensor *h = T2(c->hd, ACL_FLOAT, 0, (int64_t)n, (int64_t)dim), *hb = T2(c->hb, c->adt, 0, (int64_t)n, (int64_t)dim);
    NEED(h, hb);
    RUN("aclnnCast", cast, h, c->adt, hb);
    return 0;
}

/* ---- the device K/V mirror ---- */

/* f32 to and from the activation dtype, on the host side of a copy */
static uint16_t to_adt(const ascend *c, float v) { return c->adt == ACL_BF16 ? quant_bf16(v) : quant_f16(v); }
static float from_adt(const ascend *c, uint16_t h) { return c->adt == ACL_BF16 ? kern_bf16(h) : kern_f16(h); }
static void adt_rows(const ascend *c, uint16_t *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = to_adt(c, src[i]);
}

/* Room for need rows on the device: every layer's buffers reallocated (contents dropped:
 * the host rows are uploaded again as each layer next needs them). */
static int dev_room(ascend *c, size_t need, size_t cap, char *err, size_t errlen) {
    if (need <= c->dev_cap) return 0;
    const qwen_config *cf = &c->m->cfg;
    size_t kv_dim = (size_t)cf->n_kv_heads * (size_t)cf->head_dim, want = cap > 2 * c->dev_cap ? cap : 2 * c->dev_cap;
    if (want < need) want = need;
    for (int l = 0; l < cf->n_layers; l++) {
        dfree(c, &c->kc[l]), dfree(c, &c->vc[l]);
        c->dev_n[l] = 0;
    }
    c->dev_cap = 0;
    for (int l = 0; l < cf->n_layers; l++)
        if (dmalloc(c, &c->kc[l], want * kv_dim * 2, err, errlen) < 0 || dmalloc(c, &c->vc[l], want * kv_dim * 2, err, errlen) < 0)
            return -1;
    c->dev_cap = want;
    return 0;
}

/* Make device rows [0, pos0) of layer l equal the host cache's. */
static int kv_sync(ascend *c, int l, const kv_cache *kv, size_t pos0, char *err, size_t errlen) {
    size_t kv_dim = kv->kv_dim;
    int same = kv == c->kv_id && c->dev_n[l] == pos0 &&
               (pos0 == 0 || !memcmp(kv->k[l] + (pos0 - 1) * kv_dim, c->lastk + (size_t)l * kv_dim, kv_dim * sizeof(float)));
    if (same) return 0;
    size_t rows = c->stage_elems / kv_dim;
    for (size_t r = 0; r < pos0; r += rows) {
        size_t nr = pos0 - r < rows ? pos0 - r : rows;
        adt_rows(c, c->stage, kv->k[l] + r * kv_dim, nr * kv_dim);
        if (h2d(c, (uint16_t *)c->kc[l] + r * kv_dim, c->stage, nr * kv_dim * 2, err, errlen) < 0) return -1;
        adt_rows(c, c->stage, kv->v[l] + r * kv_dim, nr * kv_dim);
        if (h2d(c, (uint16_t *)c->vc[l] + r * kv_dim, c->stage, nr * kv_dim * 2, err, errlen) < 0) return -1;
    }
    c->dev_n[l] = pos0;
    if (pos0) memcpy(c->lastk + (size_t)l * kv_dim, kv->k[l] + (pos0 - 1) * kv_dim, kv_dim * sizeof(float));
    return 0;
}

/* ---- open / close ---- */

static void asc_close(void *ctx) {
    ascend *c = ctx;
    if (!c) return;
    if (c->a.lib[0]) {
        const qwen_config *cf = &c->m->cfg;
        if (c->stream) c->a.sync_stream(c->stream);
        drop_tensors(c);
        if (c->w)
            for (int i = 0; i <= 7 * cf->n_layers; i++) free_weight(c, &c->w[i]);
        void **bufs[] = {&c->norms, &c->norm_bias, &c->final_norm, &c->mask, &c->xd, &c->hd, &c->rstd, &c->hb,
                         &c->qb, &c->qn, &c->kb, &c->att, &c->ob, &c->gu, &c->act, &c->xf, &c->xq, &c->pts,
                         &c->cs, &c->sn, &c->lf, &c->lo, &c->lo16, &c->ws};
        for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) dfree(c, bufs[i]);
        for (int l = 0; c->kc && l < cf->n_layers; l++) dfree(c, &c->kc[l]), dfree(c, &c->vc[l]);
        if (c->one) c->a.destroy_scalar(c->one);
        if (c->stream) c->a.destroy_stream(c->stream);
        if (c->dev_set) c->a.reset_device(c->dev);
        if (c->inited) c->a.finalize();
        api_unload(&c->a);
    }
    free(c->w), free(c->kc), free(c->vc), free(c->dev_n), free(c->lastk), free(c->stage);
    free(c->inv_freq), free(c->cos_h), free(c->sin_h);
    free(c);
}

static int asc_setup(ascend *c, const model *m, char *err, size_t errlen) {
    const qwen_config *cf = &m->cfg;
    size_t B = c->B, dim = (size_t)cf->dim, hd = (size_t)cf->head_dim, nh = (size_t)cf->n_heads,
           qdim = nh * hd, kv_dim = (size_t)cf->n_kv_heads * hd, hidden = (size_t)cf->hidden_dim,
           vocab = (size_t)cf->vocab_size, L = (size_t)cf->n_layers, R = B > LOGIT_ROWS ? B : LOGIT_ROWS;
    const char *dev = getenv("ASCEND_DEVICE_ID");
    c->dev = dev ? atoi(dev) : 0;
    ACL(c->a.init(NULL), "aclInit");
    c->inited = 1;
    ACL(c->a.set_device(c->dev), "aclrtSetDevice");
    c->dev_set = 1;
    ACL(c->a.create_stream(&c->stream), "aclrtCreateStream");
    c->one_v = 1.0f;
    if (!(c->one = c->a.create_scalar(&c->one_v, ACL_FLOAT))) return seterr(err, errlen, "backend ascend: aclCreateScalar failed");

    /* weights */
    if (!(c->w = calloc(7 * L + 1, sizeof *c->w)) || !(c->kc = calloc(L, sizeof *c->kc)) ||
        !(c->vc = calloc(L, sizeof *c->vc)) || !(c->dev_n = calloc(L, sizeof *c->dev_n)) ||
        !(c->lastk = calloc(L * kv_dim, sizeof *c->lastk)) || !(c->inv_freq = calloc(hd / 2, sizeof(float))) ||
        !(c->cos_h = malloc(B * hd * sizeof(float))) || !(c->sin_h = malloc(B * hd * sizeof(float))))
        return seterr(err, errlen, "backend ascend: out of memory");
    static const char *const names[7] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
    for (size_t l = 0; l < L; l++) {
        const layer_weights *lw = &m->layers[l];
        const weight ws[7] = {lw->wq, lw->wk, lw->wv, lw->wo, lw->w_gate, lw->w_up, lw->w_down};
        const size_t outs[7] = {qdim, kv_dim, kv_dim, dim, hidden, hidden, dim},
                     ins[7] = {dim, dim, dim, qdim, dim, dim, hidden};
        for (int i = 0; i < 7; i++) {
            char name[64];
            snprintf(name, sizeof name, "layer %zu %s", l, names[i]);
            if (up_weight(c, &c->w[l * 7 + (size_t)i], ws[i], outs[i], ins[i], c->adt, name, err, errlen) < 0) return -1;
        }
    }
    if (up_weight(c, &c->w[7 * L], m->lm_head, vocab, dim, ACL_FLOAT16, "lm_head", err, errlen) < 0) return -1;

    /* norms: per layer attn f32, ffn f32, q bf16, k bf16 (byte stride a multiple of 4) */
    c->norm_stride = (2 * dim * 4 + 2 * hd * 2 + 3) / 4 * 4;
    uint8_t *h = calloc(L, c->norm_stride);
    if (!h) return seterr(err, errlen, "backend ascend: out of memory");
    for (size_t l = 0; l < L; l++) {
        const layer_weights *lw = &m->layers[l];
        uint8_t *p = h + l * c->norm_stride;
        for (size_t i = 0; i < dim; i++) ((float *)p)[i] = wget(lw->attn_norm, i), ((float *)p)[dim + i] = wget(lw->ffn_norm, i);
        /* q/k norms go into the bf16 region after the f32 ones */
        uint16_t *qk = (uint16_t *)(p + 2 * dim * 4);
        for (size_t i = 0; i < hd; i++) qk[i] = to_adt(c, wget(lw->q_norm, i)), qk[hd + i] = to_adt(c, wget(lw->k_norm, i));
    }
    int rc = upload(c, &c->norms, h, L * c->norm_stride, err, errlen);
    free(h);
    if (rc < 0) return -1;
    int has_bias = 0;
    for (size_t l = 0; l < L; l++) has_bias |= m->layers[l].attn_norm_bias.data || m->layers[l].ffn_norm_bias.data;
    if (has_bias) {
        float *b = calloc(2 * L * dim, sizeof *b);
        if (!b) return seterr(err, errlen, "backend ascend: out of memory");
        for (size_t l = 0; l < L; l++)
            for (size_t i = 0; i < dim; i++) {
                if (m->layers[l].attn_norm_bias.data) b[2 * l * dim + i] = wget(m->layers[l].attn_norm_bias, i);
                if (m->layers[l].ffn_norm_bias.data) b[(2 * l + 1) * dim + i] = wget(m->layers[l].ffn_norm_bias, i);
            }
        rc = upload(c, &c->norm_bias, b, 2 * L * dim * 4, err, errlen);
        free(b);
        if (rc < 0) return -1;
    }
    if (up_float(c, &c->final_norm, m->final_norm, dim, ACL_FLOAT, err, errlen) < 0) return -1;
    /* the causal mask FIA's sparse mode 3 takes: 2048 x 2048, 1 above the diagonal */
    uint8_t *mk = malloc((size_t)MASK * MASK);
    if (!mk) return seterr(err, errlen, "backend ascend: out of memory");
    for (size_t i = 0; i < MASK; i++)
        for (size_t j = 0; j < MASK; j++) mk[i * MASK + j] = j > i;
    rc = upload(c, &c->mask, mk, (size_t)MASK * MASK, err, errlen);
    free(mk);
    if (rc < 0) return -1;

    /* scratch */
    size_t widest = dim > qdim ? dim : qdim;
    widest = widest > hidden ? widest : hidden;
    struct {
        void **p;
        size_t bytes;
    } s[] = {
        {&c->xd, R * dim * 4}, {&c->hd, R * dim * 4}, {&c->rstd, R * nh * 4}, {&c->hb, B * dim * 2},
        {&c->qb, B * qdim * 2}, {&c->qn, B * qdim * 2}, {&c->kb, B * kv_dim * 2}, {&c->att, B * qdim * 2},
        {&c->ob, B * dim * 2}, {&c->gu, B * 2 * hidden * 2}, {&c->act, B * hidden * 2}, {&c->xf, R * widest * 4},
        {&c->xq, R * widest}, {&c->pts, R * 4}, {&c->cs, B * hd * 2}, {&c->sn, B * hd * 2},
        {&c->lf, LOGIT_ROWS * dim * 2}, {&c->lo, LOGIT_ROWS * vocab * 4}, {&c->lo16, LOGIT_ROWS * vocab * 2},
    };
    for (size_t i = 0; i < sizeof s / sizeof *s; i++)
        if (dmalloc(c, s[i].p, s[i].bytes, err, errlen) < 0) return -1;
    c->stage_elems = B * kv_dim > LOGIT_ROWS * vocab ? B * kv_dim : LOGIT_ROWS * vocab;
    if (c->stage_elems < 2 * B * hd) c->stage_elems = 2 * B * hd;
    if (!(c->stage = malloc(c->stage_elems * 2))) return seterr(err, errlen, "backend ascend: out of memory");
    kern_rope_freqs(cf, c->inv_freq, &c->rope_scale);
    c->rope_n = 0;
    return 0;
}

static void *asc_open(const model *m, const backend_opts *o, char *err, size_t errlen) {
    const qwen_config *cf = &m->cfg;
    if (o->max_batch == 0) {
        seterr(err, errlen, "backend ascend: max_batch must be at least 1");
        return NULL;
    }
    if (cf->head_dim % 2 || cf->n_kv_heads <= 0 || cf->n_heads % cf->n_kv_heads) {
        seterr(err, errlen, "backend ascend: head_dim %d must be even and n_heads %d a multiple of n_kv_heads %d",
               cf->head_dim, cf->n_heads, cf->n_kv_heads);
        return NULL;
    }
    ascend *c = calloc(1, sizeof *c);
    if (!c) {
        seterr(err, errlen, "backend ascend: out of memory");
        return NULL;
    }
    c->m = m;
    c->B = o->max_batch;
    const char *dt = getenv("QWEN_ASCEND_DTYPE");
    if (dt && strcmp(dt, "f16") && strcmp(dt, "bf16")) {
        seterr(err, errlen, "backend ascend: QWEN_ASCEND_DTYPE: '%s' is not one of: f16, bf16", dt);
        free(c);
        return NULL;
    }
    c->adt = dt && !strcmp(dt, "bf16") ? ACL_BF16 : ACL_FLOAT16;
    if (api_load(&c->a, err, errlen) < 0 || asc_setup(c, m, err, errlen) < 0) {
        asc_close(c);
        return NULL;
    }
    return c;
}

/* ---- the layer ---- */

/* cos/sin [n, head_dim] (NeoX halves repeated) for positions pos0.., uploaded once per forward */
static int rope_table(ascend *c, size_t pos0, size_t n, char *err, size_t errlen) {
    if (c->rope_n == n && c->rope_pos0 == pos0) return 0;
    size_t hd = (size_t)c->m->cfg.head_dim, half = hd / 2;
    kern_rope_table(c->cos_h, c->sin_h, c->inv_freq, c->rope_scale, pos0, n, half);
    uint16_t *cs = c->stage, *sn = c->stage + n * hd;
    if (2 * n * hd > c->stage_elems) return seterr(err, errlen, "backend ascend: rope table too large");
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < hd; j++) {
            cs[i * hd + j] = to_adt(c, c->cos_h[i * half + j % half]);
            sn[i * hd + j] = to_adt(c, c->sin_h[i * half + j % half]);
        }
    if (h2d(c, c->cs, cs, n * hd * 2, err, errlen) < 0 || h2d(c, c->sn, sn, n * hd * 2, err, errlen) < 0) return -1;
    c->rope_pos0 = pos0, c->rope_n = n;
    return 0;
}

static int layer_ops(ascend *c, int l, size_t n, size_t pos0, char *err, size_t errlen) {
    const qwen_config *cf = &c->m->cfg;
    const dweight *w = c->w + (size_t)l * 7;
    int64_t N = (int64_t)n, dim = cf->dim, hd = cf->head_dim, nh = cf->n_heads, nkv = cf->n_kv_heads,
            qdim = nh * hd, kv_dim = nkv * hd, hidden = cf->hidden_dim, P = (int64_t)pos0;
    int64_t qk_norms = (int64_t)(c->norm_stride * (size_t)l / 2) + 2 * dim * 2; /* bf16 elements */

    /* attention */
    if (block_in(c, l, 0, n, err, errlen) < 0) return -1;
    if (linear(c, &w[0], c->hb, c->hd, n, c->qb, c->adt, 0, qdim, err, errlen) < 0 ||
        linear(c, &w[1], c->hb, c->hd, n, c->kb, c->adt, 0, kv_dim, err, errlen) < 0 ||
        linear(c, &w[2], c->hb, c->hd, n, c->vc[l], c->adt, P * kv_dim, kv_dim, err, errlen) < 0)
        return -1;
    /* per-head q/k norms; k's lands in the cache rows */
    if (rmsnorm(c, c->qb, 0, c->norms, qk_norms, c->qn, 0, c->adt, n * (size_t)nh, (size_t)hd, err, errlen) < 0 ||
        rmsnorm(c, c->kb, 0, c->norms, qk_norms + hd, c->kc[l], P * kv_dim, c->adt, n * (size_t)nkv, (size_t)hd, err,
                errlen) < 0)
        return -1;
    aclTensor *q4 = T(c, c->qn, c->adt, 0, 4, D(1, N, nh, hd), NULL);
    aclTensor *k4 = T(c, c->kc[l], c->adt, P * kv_dim, 4, D(1, N, nkv, hd), NULL);
    aclTensor *cs = T(c, c->cs, c->adt, 0, 4, D(1, N, 1, hd), NULL), *sn = T(c, c->sn, c->adt, 0, 4, D(1, N, 1, hd), NULL);
    NEED(q4, k4, cs, sn);
    RUN("aclnnApplyRotaryPosEmb", rope, q4, k4, cs, sn, 1);
    /* attention of the n queries over cache rows [0, pos0 + n): causal with the cache
     * before them (sparse mode 3: the mask's diagonal aligned to the bottom right) */
    aclTensor *q = T(c, c->qn, c->adt, 0, 3, D(1, N, qdim), NULL);
    aclTensor *kt = T(c, c->kc[l], c->adt, 0, 3, D(1, P + N, kv_dim), NULL);
    aclTensor *vt = T(c, c->vc[l], c->adt, 0, 3, D(1, P + N, kv_dim), NULL);
    aclTensor *o = T(c, c->att, c->adt, 0, 3, D(1, N, qdim), NULL);
    aclTensor *mask = n > 1 ? T2(c->mask, ACL_BOOL, 0, MASK, MASK) : NULL;
    NEED(q, kt, vt, o);
    if (n > 1) NEED(mask);
    const aclTensor *kl[1] = {kt}, *vl[1] = {vt};
    if (!(c->lists[0] = c->a.create_tensor_list(kl, 1)) || !(c->lists[1] = c->a.create_tensor_list(vl, 1)))
        return seterr(err, errlen, "backend ascend: aclCreateTensorList failed");
    char layout[] = "BSH";
    RUN("aclnnFusedInferAttentionScoreV2", fia, q, c->lists[0], c->lists[1], NULL, mask, NULL, NULL, NULL, NULL, NULL,
        NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, nh,
        1.0 / sqrt((double)hd), 2147483647, n > 1 ? 0 : 2147483647, layout, nkv, n > 1 ? 3 : 0, 0, 0, 0, false, 0, 0,
        o, NULL);
    if (linear(c, &w[3], c->att, NULL, n, c->ob, c->adt, 0, dim, err, errlen) < 0 ||
        add(c, c->xd, c->ob, 0, c->adt, n, (size_t)dim, 0, err, errlen) < 0)
        return -1;

    /* SwiGLU MLP: gate and up side by side in gu, as aclnnSwiGlu splits its input */
    if (block_in(c, l, 1, n, err, errlen) < 0) return -1;
    if (linear(c, &w[4], c->hb, c->hd, n, c->gu, c->adt, 0, 2 * hidden, err, errlen) < 0 ||
        linear(c, &w[5], c->hb, c->hd, n, c->gu, c->adt, hidden, 2 * hidden, err, errlen) < 0)
        return -1;
    aclTensor *gu = T2(c->gu, c->adt, 0, N, 2 * hidden), *act = T2(c->act, c->adt, 0, N, hidden);
    NEED(gu, act);
    RUN("aclnnSwiGlu", swiglu, gu, -1, act);
    if (linear(c, &w[6], c->act, NULL, n, c->ob, c->adt, 0, dim, err, errlen) < 0 ||
        add(c, c->xd, c->ob, 0, c->adt, n, (size_t)dim, 0, err, errlen) < 0)
        return -1;
    return 0;
}

static int layer(ascend *c, int l, float *x, size_t n, kv_cache *kv, char *err, size_t errlen) {
    const qwen_config *cf = &c->m->cfg;
    size_t dim = (size_t)cf->dim, kv_dim = kv->kv_dim, pos0 = kv->n;
    if (n > c->B) return seterr(err, errlen, "backend ascend: %zu positions, more than max_batch %zu", n, c->B);
    if (pos0 + n > kv->cap) return seterr(err, errlen, "backend ascend: kv cache holds %zu rows, %zu needed", kv->cap, pos0 + n);
    if (kv_dim != (size_t)cf->n_kv_heads * (size_t)cf->head_dim || kv->n_layers != cf->n_layers)
        return seterr(err, errlen, "backend ascend: kv cache shape does not match the model");
    if (dev_room(c, pos0 + n, kv->cap, err, errlen) < 0 || kv_sync(c, l, kv, pos0, err, errlen) < 0) return -1;
    c->kv_id = kv;
    c->dev_n[l] = 0; /* until this layer's rows are back on the host */
    int rc = rope_table(c, pos0, n, err, errlen);
    if (rc == 0) rc = h2d(c, c->xd, x, n * dim * 4, err, errlen);
    if (rc == 0) rc = layer_ops(c, l, n, pos0, err, errlen);
    aclError st = c->a.sync_stream(c->stream);
    drop_tensors(c);
    if (rc < 0) return -1;
    if (st) return acl_fail(c, "aclrtSynchronizeStream", st, err, errlen);
    if (d2h(c, x, c->xd, n * dim * 4, err, errlen) < 0) return -1;
    /* the new K/V rows back to the host cache, widened from bf16 */
    float *dst[2] = {kv->k[l] + pos0 * kv_dim, kv->v[l] + pos0 * kv_dim};
    void *src[2] = {c->kc[l], c->vc[l]};
    for (int i = 0; i < 2; i++) {
        if (d2h(c, c->stage, (uint16_t *)src[i] + pos0 * kv_dim, n * kv_dim * 2, err, errlen) < 0) return -1;
        for (size_t j = 0; j < n * kv_dim; j++) dst[i][j] = from_adt(c, c->stage[j]);
    }
    c->dev_n[l] = pos0 + n;
    memcpy(c->lastk + (size_t)l * kv_dim, kv->k[l] + (pos0 + n - 1) * kv_dim, kv_dim * sizeof(float));
    return 0;
}

static int asc_prefill_layer(void *ctx, int l, float *x, size_t n, kv_cache *kv, char *err, size_t errlen) {
    return layer(ctx, l, x, n, kv, err, errlen);
}

static int asc_decode_layer(void *ctx, int l, float *x, kv_cache *kv, char *err, size_t errlen) {
    return layer(ctx, l, x, 1, kv, err, errlen);
}

/* final norm (f32), then f16 into lm_head: f32 logits, LOGIT_ROWS rows at a time */
static int logit_ops(ascend *c, size_t n, char *err, size_t errlen) {
    const qwen_config *cf = &c->m->cfg;
    const dweight *lm = &c->w[7 * (size_t)cf->n_layers];
    int64_t N = (int64_t)n, dim = cf->dim, vocab = cf->vocab_size;
    if (rmsnorm(c, c->xd, 0, c->final_norm, 0, c->hd, 0, ACL_FLOAT, n, (size_t)dim, err, errlen) < 0) return -1;
    aclTensor *h = T2(c->hd, ACL_FLOAT, 0, N, dim), *lf = T2(c->lf, ACL_FLOAT16, 0, N, dim);
    NEED(h, lf);
    RUN("aclnnCast", cast, h, ACL_FLOAT16, lf);
    if (lm->kind == DW_FLOAT) return linear(c, lm, c->lf, c->hd, n, c->lo, ACL_FLOAT, 0, vocab, err, errlen);
    if (linear(c, lm, c->lf, c->hd, n, c->lo16, ACL_FLOAT16, 0, vocab, err, errlen) < 0) return -1;
    aclTensor *l16 = T2(c->lo16, ACL_FLOAT16, 0, N, vocab), *l32 = T2(c->lo, ACL_FLOAT, 0, N, vocab);
    NEED(l16, l32);
    RUN("aclnnCast", cast, l16, ACL_FLOAT, l32);
    return 0;
}

static int asc_logits(void *ctx, const float *x, size_t n, float *logits, char *err, size_t errlen) {
    ascend *c = ctx;
    size_t dim = (size_t)c->m->cfg.dim, vocab = (size_t)c->m->cfg.vocab_size;
    for (size_t i = 0; i < n; i += LOGIT_ROWS) {
        size_t nb = n - i < LOGIT_ROWS ? n - i : LOGIT_ROWS;
        int rc = h2d(c, c->xd, x + i * dim, nb * dim * 4, err, errlen);
        if (rc == 0) rc = logit_ops(c, nb, err, errlen);
        aclError st = c->a.sync_stream(c->stream);
        drop_tensors(c);
        if (rc < 0) return -1;
        if (st) return acl_fail(c, "aclrtSynchronizeStream", st, err, errlen);
        if (d2h(c, logits + i * vocab, c->lo, nb * vocab * 4, err, errlen) < 0) return -1;
    }
    return 0;
}

static size_t asc_max_batch(const void *ctx) { return ((const ascend *)ctx)->B; }

const backend backend_ascend = {
    .name = "ascend",
    .open = asc_open,
    .close = asc_close,
    .prefill_layer = asc_prefill_layer,
    .decode_layer = asc_decode_layer,
    .logits = asc_logits,
    .max_batch = asc_max_batch,
};
