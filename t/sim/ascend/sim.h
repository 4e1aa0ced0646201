/* The simulated CANN runtime that t/ascend.bats runs the Ascend backend against: three
 * shared libraries with the real ones' names (libascendcl.so: device, memory, stream;
 * libnnopbase.so: tensors, executors; libopapi.so: the aclnn operators), implementing on
 * the host, from CANN's public API reference, the calls lib/ascend.c makes. "Device"
 * memory is host memory the simulation tracks, so that every misuse a real device would
 * punish (or silently corrupt on) is caught here instead:
 *   - a tensor over memory that is not a live aclrtMalloc block, or past its end;
 *   - dtypes, ranks and shapes each operator's reference does not allow;
 *   - a launch without its GetWorkspaceSize, twice, with a smaller workspace than asked
 *     for, on another stream, or with a tensor destroyed since;
 *   - aclrtMemcpy or aclrtFree while launched work is not synchronized;
 *   - blocks, tensors or executors left over at aclFinalize.
 * Each is reported on stderr as "ascend sim: ..." and the call fails.
 * Environment: ASCEND_SIM_FAIL=NAME[:K] fails the K-th call (default 1st) of function
 * NAME; ASCEND_SIM_MEM=BYTES caps device memory; ASCEND_SIM_STATS=FILE appends the
 * traffic and operator counts at aclFinalize. */
#ifndef ASCEND_SIM_H
#define ASCEND_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* aclDataType codes as the reference documents them */
enum {
    S_FLOAT = 0, S_FLOAT16 = 1, S_INT8 = 2, S_INT32 = 3, S_UINT8 = 4, S_INT64 = 9, S_BOOL = 12, S_BF16 = 27, S_INT4 = 29
};
enum { S_ERR_PARAM = 100000, S_ERR_REPEAT_INIT = 100002, S_ERR_MEM = 207001, S_ERR_RT = 507000,
       ACLNN_ERR_PARAM_NULLPTR = 161001, ACLNN_ERR_PARAM_INVALID = 161002, ACLNN_ERR_INNER = 561000 };

typedef int aclError;
typedef void *aclrtStream;

#define SIM_TENSOR 0x7e450a01u
#define SIM_LIST 0x7e450a02u
#define SIM_SCALAR 0x7e450a03u
#define SIM_EXEC 0x7e450a04u

typedef struct aclTensor {
    uint32_t magic;
    int dtype, nd, format;
    int64_t dims[8], strides[8], offset, storage;
    void *data;
    struct aclTensor *next; /* the live list */
} aclTensor;

typedef struct aclTensorList {
    uint32_t magic;
    uint64_t n;
    aclTensor *v[8];
} aclTensorList;

typedef struct aclScalar {
    uint32_t magic;
    int dtype;
    double v;
} aclScalar;

typedef struct aclIntArray aclIntArray;

/* An operator planned by its GetWorkspaceSize: the op's name, the workspace it asked for,
 * the tensors it reads and writes, and its arguments for run(). */
typedef struct aclOpExecutor {
    uint32_t magic;
    const char *op;
    uint64_t ws;
    const aclTensor *t[16];
    int nt;
    double d[4];
    int64_t i[8];
    char s[16];
    int (*run)(struct aclOpExecutor *ex);
    struct aclOpExecutor *next;
} aclOpExecutor;

/* libascendcl.so, for the other two */
int sim_err(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int sim_inject(const char *fn);                    /* 1: fail this call (ASCEND_SIM_FAIL) */
int sim_mem_ok(const void *p, size_t bytes);       /* 1: [p, p+bytes) in a live block */
int sim_stream_ok(aclrtStream s);                  /* 1: the live stream */
void sim_launched(aclrtStream s, const char *op);  /* work pending; counts the op */
void sim_at_finalize(void (*fn)(void));            /* leak checks of the other libraries */

/* libnnopbase.so, for libopapi.so */
int sim_tensor_live(const aclTensor *t);
aclOpExecutor *sim_exec_new(const char *op, uint64_t ws);
int sim_exec_take(aclOpExecutor *ex, const char *op); /* 0, or a reported error */
void sim_exec_free(aclOpExecutor *ex);

#endif
