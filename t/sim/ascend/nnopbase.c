/* Simulated libnnopbase.so: aclTensor, aclTensorList, aclScalar, and the executors that
 * GetWorkspaceSize makes and the launch consumes (each exactly once). */
#include <stdlib.h>
#include <string.h>

#include "sim.h"

static aclTensor *tensors;     /* live */
static aclOpExecutor *execs;   /* planned, not launched */

int sim_tensor_live(const aclTensor *t) {
    for (aclTensor *p = tensors; p; p = p->next)
        if (p == t) return 1;
    return 0;
}

aclTensor *aclCreateTensor(const int64_t *dims, uint64_t nd, int dtype, const int64_t *strides, int64_t offset,
                           int format, const int64_t *sdims, uint64_t nsd, void *data) {
    if (sim_inject("aclCreateTensor")) return NULL;
    if (nd > 8 || (nd && (!dims || !strides)) || !sdims || nsd == 0 || nsd > 8 || offset < 0) {
        sim_err(ACLNN_ERR_PARAM_INVALID, "aclCreateTensor: bad rank, strides or storage");
        return NULL;
    }
    aclTensor *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->magic = SIM_TENSOR, t->dtype = dtype, t->nd = (int)nd, t->format = format, t->offset = offset, t->data = data;
    t->storage = 1;
    for (uint64_t i = 0; i < nsd; i++) t->storage *= sdims[i];
    int64_t extent = 1;
    for (uint64_t i = 0; i < nd; i++) {
        if (dims[i] <= 0 || strides[i] < 0) {
            sim_err(ACLNN_ERR_PARAM_INVALID, "aclCreateTensor: dim %lld stride %lld", (long long)dims[i], (long long)strides[i]);
            free(t);
            return NULL;
        }
        t->dims[i] = dims[i], t->strides[i] = strides[i];
        extent += (dims[i] - 1) * strides[i];
    }
    if (offset + extent > t->storage) {
        sim_err(ACLNN_ERR_PARAM_INVALID, "aclCreateTensor: view (offset %lld, extent %lld) past its storage (%lld)",
                (long long)offset, (long long)extent, (long long)t->storage);
        free(t);
        return NULL;
    }
    t->next = tensors;
    tensors = t;
    return t;
}

aclError aclDestroyTensor(const aclTensor *t) {
    for (aclTensor **p = &tensors; *p; p = &(*p)->next)
        if (*p == t) {
            aclTensor *d = *p;
            *p = d->next;
            d->magic = 0;
            free(d);
            return 0;
        }
    return sim_err(ACLNN_ERR_PARAM_INVALID, "aclDestroyTensor: not a live tensor");
}

aclTensorList *aclCreateTensorList(const aclTensor *const *v, uint64_t n) {
    if (n > 8) return NULL;
    aclTensorList *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    l->magic = SIM_LIST, l->n = n;
    for (uint64_t i = 0; i < n; i++) l->v[i] = (aclTensor *)v[i];
    return l;
}

aclError aclDestroyTensorList(const aclTensorList *l) {
    if (!l || l->magic != SIM_LIST) return sim_err(ACLNN_ERR_PARAM_INVALID, "aclDestroyTensorList: not a list");
    free((void *)l);
    return 0;
}

aclScalar *aclCreateScalar(void *v, int dtype) {
    aclScalar *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->magic = SIM_SCALAR, s->dtype = dtype;
    if (dtype == S_FLOAT) s->v = *(float *)v;
    else if (dtype == S_INT32) s->v = *(int32_t *)v;
    else {
        sim_err(ACLNN_ERR_PARAM_INVALID, "aclCreateScalar: dtype %d not simulated", dtype);
        free(s);
        return NULL;
    }
    return s;
}

aclError aclDestroyScalar(const aclScalar *s) {
    if (!s || s->magic != SIM_SCALAR) return sim_err(ACLNN_ERR_PARAM_INVALID, "aclDestroyScalar: not a scalar");
    free((void *)s);
    return 0;
}

aclOpExecutor *sim_exec_new(const char *op, uint64_t ws) {
    aclOpExecutor *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    e->magic = SIM_EXEC, e->op = op, e->ws = ws, e->next = execs;
    execs = e;
    return e;
}

/* Unlink ex if it is a planned executor of op. */
int sim_exec_take(aclOpExecutor *ex, const char *op) {
    for (aclOpExecutor **p = &execs; *p; p = &(*p)->next)
        if (*p == ex) {
            if (strcmp(ex->op, op))
                return sim_err(ACLNN_ERR_PARAM_INVALID, "%s: the executor is %s's", op, ex->op);
            *p = ex->next;
            return 0;
        }
    return sim_err(ACLNN_ERR_PARAM_INVALID, "%s: executor not from %sGetWorkspaceSize, or launched already", op, op);
}

void sim_exec_free(aclOpExecutor *ex) {
    ex->magic = 0;
    free(ex);
}

static void leaks(void) {
    size_t nt = 0, ne = 0;
    for (aclTensor *t = tensors; t; t = t->next) nt++;
    for (aclOpExecutor *e = execs; e; e = e->next) ne++;
    if (nt) sim_err(ACLNN_ERR_PARAM_INVALID, "aclFinalize: %zu tensors never destroyed", nt);
    if (ne) sim_err(ACLNN_ERR_PARAM_INVALID, "aclFinalize: %zu executors planned and never launched (first: %s)", ne,
                    execs->op);
}

__attribute__((constructor)) static void init(void) { sim_at_finalize(leaks); }
