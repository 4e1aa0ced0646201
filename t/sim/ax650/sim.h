/* sim: the simulated AX650 "axmodels" that t/sim/ax650's engine and AXCL libraries run.
 *
 * An axmodel here is a small JSON file naming a layer of a model directory the CPU
 * backend runs ({"sim_axmodel": "layer", "model": DIR, "layer": l, "hidden": H,
 * "kv_dim": D, "kv_cache_num": S, "prefill_len": P, "groups": [S_1, S_2, ...]}, or
 * {"sim_axmodel": "post", "model": DIR, "hidden": H, "vocab": V}); t/axllm_gen.c writes
 * them. Its IO is ax-llm's (reference notes §2.5): group 0 decodes one position, group
 * g >= 1 prefills P over a history of at most S_g rows. A run checks the contract (sizes,
 * indices, every mask value) and computes the layer with the CPU backend on bf16 inputs,
 * rounding its outputs to bf16 (round to nearest even), as the NPU's bf16 graph would.
 * Rows past the valid ones (padding) come out as NaN: the host must not use them. */
#ifndef SIM_H
#define SIM_H

#include <stddef.h>
#include <stdint.h>

/* physical address = virtual + this, in the simulated CMM (libax_sys) */
#define SIM_PHY_OFFSET 0x100000000000ull

typedef struct {
    const char *name;
    int32_t dims[3];
    int nd;
    size_t size; /* bytes */
    int elem;    /* 2 (bf16) or 4 (uint32) */
} sim_tensor;

typedef struct {
    int n_in, n_out;
    sim_tensor in[5], out[3];
} sim_group;

typedef struct sim_model sim_model;
struct sim_model {
    int layer; /* -1: the post model */
    int n_groups;
    sim_group g[32];
    int H, D, S, P, V;
    int Sg[32];
    struct sim_src *src;
};

/* Parse an axmodel (n bytes); NULL with err if it is not one or its model will not open. */
sim_model *sim_load(const void *data, size_t n, char *err, size_t errlen);
void sim_free(sim_model *sm);
/* Run group g: in[i], out[i] are the bytes of the group's tensors in its order (sizes
 * already checked by the caller). 0, or -1 with err. */
int sim_run(sim_model *sm, int g, void *const *in, void *const *out, char *err, size_t errlen);
/* 1 when this run is the one AXSIM_FAIL_RUN=k asks to fail (the k-th of the process). */
int sim_fail_now(void);
/* AXSIM_CMM_BYTES: the simulated memory's size (0: unlimited). */
size_t sim_mem_limit(void);
/* Free the models the runs opened (at the runtime's deinit). */
void sim_shutdown(void);

#endif
