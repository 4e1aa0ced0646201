/* ascend_sim_test DIR: the simulated CANN runtime in DIR (t/sim/ascend) refuses each misuse
 * its header promises to catch, and computes what the operator reference says on inputs
 * small enough to check by hand. Prints "ok NAME" per case, exit 1 on any failure; the
 * simulation's own complaints go to stderr (t/ascend.bats reads both). */
#include <dlfcn.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void T; /* aclTensor, aclOpExecutor, ...: opaque here */
enum { F32 = 0, F16 = 1, BF16 = 27 };

static int (*Init)(const char *);
static int (*Fin)(void);
static int (*SetDev)(int32_t);
static int (*ResetDev)(int32_t);
static int (*MkStream)(void **);
static int (*RmStream)(void *);
static int (*Sync)(void *);
static int (*Malloc)(void **, size_t, int);
static int (*Free)(void *);
static int (*Memcpy)(void *, size_t, const void *, size_t, int);
static T *(*MkTensor)(const int64_t *, uint64_t, int, const int64_t *, int64_t, int, const int64_t *, uint64_t, void *);
static int (*RmTensor)(const T *);
static int (*CastWs)(const T *, int, T *, uint64_t *, T **);
static int (*Cast)(void *, uint64_t, T *, void *);
static int (*MatmulWs)(const T *, const T *, T *, int8_t, uint64_t *, T **);
static int (*Matmul)(void *, uint64_t, T *, void *);

static int failed;
static void *stream;

static void check(int cond, const char *name) {
    printf("%s %s\n", cond ? "ok" : "FAIL", name);
    if (!cond) failed = 1;
}

/* a contiguous 2-D tensor over p */
static T *t2(void *p, int dt, int64_t r, int64_t c) {
    int64_t d[2] = {r, c}, s[2] = {c, 1}, st = r * c;
    return MkTensor(d, 2, dt, s, 0, 2, &st, 1, p);
}

static void *sym(void *lib, const char *name) {
    void *p = dlsym(lib, name);
    if (!p) {
        fprintf(stderr, "ascend_sim_test: no %s\n", name);
        exit(2);
    }
    return p;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: ascend_sim_test DIR\n");
        return 2;
    }
    void *lib[3];
    const char *names[3] = {"libascendcl.so", "libnnopbase.so", "libopapi.so"};
    for (int i = 0; i < 3; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", argv[1], names[i]);
        if (!(lib[i] = dlopen(path, RTLD_NOW | RTLD_GLOBAL))) {
            fprintf(stderr, "ascend_sim_test: %s\n", dlerror());
            return 2;
        }
    }
    /* POSIX dlsym returns void *; function pointers are assigned through memcpy */
#define LOAD(v, l, n) do { void *p_ = sym(lib[l], n); memcpy(&v, &p_, sizeof p_); } while (0)
    LOAD(Init, 0, "aclInit"); LOAD(Fin, 0, "aclFinalize"); LOAD(SetDev, 0, "aclrtSetDevice");
    LOAD(ResetDev, 0, "aclrtResetDevice"); LOAD(MkStream, 0, "aclrtCreateStream");
    LOAD(RmStream, 0, "aclrtDestroyStream"); LOAD(Sync, 0, "aclrtSynchronizeStream");
    LOAD(Malloc, 0, "aclrtMalloc"); LOAD(Free, 0, "aclrtFree"); LOAD(Memcpy, 0, "aclrtMemcpy");
    LOAD(MkTensor, 1, "aclCreateTensor"); LOAD(RmTensor, 1, "aclDestroyTensor");
    LOAD(CastWs, 2, "aclnnCastGetWorkspaceSize"); LOAD(Cast, 2, "aclnnCast");
    LOAD(MatmulWs, 2, "aclnnMatmulGetWorkspaceSize"); LOAD(Matmul, 2, "aclnnMatmul");

    check(SetDev(0) != 0, "aclrtSetDevice before aclInit is refused");
    check(Init(NULL) == 0 && SetDev(0) == 0 && MkStream(&stream) == 0, "init, device 0, a stream");
    void *s2;
    check(MkStream(&s2) != 0, "a second stream is refused (the backend needs one)");

    /* A [2,3] f32, B [3,2] f32 (a transposed view of [2,3] storage), C = A @ B */
    float ha[6] = {1, 2, 3, 4, 5, 6}, hb[6] = {1, 0, -1, 2, 1, 0.5f}, hc[4];
    void *a, *b, *c, *ws;
    check(Malloc(&a, 24, 0) == 0 && Malloc(&b, 24, 0) == 0 && Malloc(&c, 16, 0) == 0, "aclrtMalloc");
    check(Memcpy(a, 24, ha, 24, 1) == 0 && Memcpy(b, 24, hb, 24, 1) == 0, "copies to the device");
    int64_t bd[2] = {3, 2}, bs[2] = {1, 3}, bst = 6;
    T *ta = t2(a, F32, 2, 3), *tb = MkTensor(bd, 2, F32, bs, 0, 2, &bst, 1, b), *tc = t2(c, F32, 2, 2);
    uint64_t wsz = 0;
    T *ex = NULL;
    check(MatmulWs(ta, tb, tc, 1, &wsz, &ex) == 0 && wsz > 0, "aclnnMatmulGetWorkspaceSize asks for a workspace");
    check(Matmul(NULL, 0, ex, stream) != 0, "a launch with no workspace is refused");
    check(MatmulWs(ta, tb, tc, 1, &wsz, &ex) == 0 && Malloc(&ws, wsz, 0) == 0, "planned again, workspace allocated");
    check(Matmul(ws, wsz, ex, (char *)stream + 1) != 0, "a launch on another stream is refused");
    check(MatmulWs(ta, tb, tc, 1, &wsz, &ex) == 0 && Matmul(ws, wsz, ex, stream) == 0, "the launch");
    check(Matmul(ws, wsz, ex, stream) != 0, "the same executor twice is refused");
    check(Memcpy(hc, 16, c, 16, 2) != 0, "a copy back before the stream is synchronized is refused");
    check(Free(ws) != 0, "a free before the stream is synchronized is refused");
    check(Sync(stream) == 0 && Memcpy(hc, 16, c, 16, 2) == 0, "synchronized, copied back");
    /* by hand: row i of A dotted with column j of B = row j of the [2,3] storage */
    float want[4] = {1 * 1 + 2 * 0 + 3 * -1, 1 * 2 + 2 * 1 + 3 * 0.5f, 4 * 1 + 5 * 0 + 6 * -1, 4 * 2 + 5 * 1 + 6 * 0.5f};
    check(!memcmp(hc, want, sizeof want), "A @ B^T by the strides is the hand-computed product");

    /* f32 -> bf16 -> f32 rounds to nearest even */
    float hx[2] = {1.0f + 1.0f / 256, 1.0f + 3.0f / 256}; /* bf16's ulp at 1 is 1/128: 0.5 and 1.5 ulp */
    void *x, *y;
    Malloc(&x, 8, 0), Malloc(&y, 4, 0);
    Memcpy(x, 8, hx, 8, 1);
    T *tx = t2(x, F32, 1, 2), *ty = t2(y, BF16, 1, 2);
    check(CastWs(tx, BF16, ty, &wsz, &ex) == 0 && Cast(NULL, 0, ex, stream) == 0 && Sync(stream) == 0, "cast to bf16");
    uint16_t hy[2];
    Memcpy(hy, 4, y, 4, 2);
    check(hy[0] == 0x3f80 && hy[1] == 0x3f82, "bf16 rounding: halfway cases go to the even neighbour");

    check(CastWs(tx, F16, ty, &wsz, &ex) != 0, "a cast whose out dtype is not the one asked is refused");
    check(MatmulWs(t2(a, F32, 2, 3), t2(b, F16, 3, 2), tc, 1, &wsz, &ex) != 0, "a matmul of mixed dtypes is refused");
    check(MatmulWs(ta, t2(b, F32, 2, 3), tc, 1, &wsz, &ex) != 0, "a matmul of mismatched shapes is refused");
    _Alignas(64) float host[8] = {0};
    check(CastWs(t2(host, F32, 1, 2), BF16, ty, &wsz, &ex) != 0, "a tensor over host memory is refused");
    check(CastWs(t2(a, F32, 2, 4), F32, t2(c, F32, 2, 4), &wsz, &ex) != 0, "a tensor past its block's end is refused");
    T *gone = t2(x, F32, 1, 2);
    check(CastWs(gone, BF16, ty, &wsz, &ex) == 0 && RmTensor(gone) == 0 && Cast(NULL, 0, ex, stream) != 0,
          "a launch after its tensor was destroyed is refused");
    check(CastWs(tx, BF16, ty, &wsz, &ex) == 0, "an executor planned and never launched (reported at aclFinalize)");

    RmTensor(ta), RmTensor(tb), RmTensor(tc), RmTensor(tx), RmTensor(ty);
    Free(a), Free(b), Free(c), Free(ws), Free(x); /* y is left: reported at aclFinalize */
    check(RmStream(stream) == 0 && ResetDev(0) == 0 && Fin() == 0, "teardown");
    return failed;
}
