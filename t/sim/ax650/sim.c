/* sim: the simulated axmodels (see sim.h). The layer math is lib/'s CPU backend, run over
 * the model directory an axmodel names; each source model is opened once per process. */
#include "sim.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "util.h"

#define BLOCKED 0xC780u

typedef struct sim_src {
    char *dir;
    model *m;
    void *cpu;
    size_t batch;
    struct sim_src *next;
} sim_src;

static sim_src *sources;
static long runs;

static uint16_t bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)(u >> 16 | 0x40);
    return (uint16_t)((u + 0x7fffu + (u >> 16 & 1)) >> 16);
}
static float f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static sim_src *source(const char *dir, size_t batch, char *err, size_t errlen) {
    for (sim_src *s = sources; s; s = s->next)
        if (!strcmp(s->dir, dir) && s->batch >= batch) return s;
    sim_src *s = calloc(1, sizeof *s);
    if (!s || !(s->dir = strdup(dir))) {
        free(s);
        return seterr(err, errlen, "sim: out of memory"), NULL;
    }
    backend_opts o = {.n_threads = 1, .max_batch = batch};
    if (!(s->m = model_open(dir, err, errlen)) || !(s->cpu = backend_cpu.open(s->m, &o, err, errlen))) {
        model_close(s->m);
        free(s->dir);
        free(s);
        return NULL;
    }
    s->batch = batch;
    s->next = sources;
    sources = s;
    return s;
}

void sim_shutdown(void) {
    while (sources) {
        sim_src *s = sources;
        sources = s->next;
        backend_cpu.close(s->cpu);
        model_close(s->m);
        free(s->dir);
        free(s);
    }
}

int sim_fail_now(void) {
    const char *e = getenv("AXSIM_FAIL_RUN");
    runs++;
    return e && *e && atol(e) == runs;
}

size_t sim_mem_limit(void) {
    const char *e = getenv("AXSIM_CMM_BYTES");
    return e && *e ? (size_t)strtoull(e, NULL, 10) : 0;
}

static void tensor(sim_tensor *t, const char *name, int elem, int32_t d0, int32_t d1, int32_t d2, int nd) {
    t->name = name, t->elem = elem, t->nd = nd;
    t->dims[0] = d0, t->dims[1] = d1, t->dims[2] = d2;
    t->size = (size_t)elem * (size_t)d0 * (size_t)d1 * (size_t)(nd == 3 ? d2 : 1);
}

static int num(const cJSON *o, const char *k, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(v) || v->valuedouble < 1 || v->valuedouble > 1e8) return -1;
    *out = (int)v->valuedouble;
    return 0;
}

/* Odd layers list their tensors in reverse order: the host must find them by name. */
static void layer_group(sim_model *sm, int g) {
    sim_group *G = &sm->g[g];
    int n = g ? sm->P : 1, sg = sm->Sg[g];
    sim_tensor in[5], out[3];
    tensor(&in[0], "input", 2, 1, n, sm->H, 3);
    tensor(&in[1], "indices", 4, 1, n, 0, 2);
    tensor(&in[2], "mask", 2, 1, n, g ? sg + n : sm->S + 1, 3);
    tensor(&in[3], "K_cache", 2, 1, sg, sm->D, 3);
    tensor(&in[4], "V_cache", 2, 1, sg, sm->D, 3);
    tensor(&out[0], "K_cache_out", 2, 1, n, sm->D, 3);
    tensor(&out[1], "V_cache_out", 2, 1, n, sm->D, 3);
    tensor(&out[2], "output", 2, 1, n, sm->H, 3);
    G->n_in = 5, G->n_out = 3;
    for (int i = 0; i < 5; i++) G->in[i] = in[sm->layer % 2 ? 4 - i : i];
    for (int i = 0; i < 3; i++) G->out[i] = out[sm->layer % 2 ? 2 - i : i];
}

sim_model *sim_load(const void *data, size_t n, char *err, size_t errlen) {
    cJSON *o = cJSON_ParseWithLength(data, n);
    sim_model *sm = calloc(1, sizeof *sm);
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(o, "sim_axmodel");
    const cJSON *dir = cJSON_GetObjectItemCaseSensitive(o, "model");
    if (!sm || !cJSON_IsString(kind) || !cJSON_IsString(dir)) {
        seterr(err, errlen, "sim: not a simulated axmodel");
        goto fail;
    }
    if (!strcmp(kind->valuestring, "post")) {
        sm->layer = -1, sm->n_groups = 1;
        if (num(o, "hidden", &sm->H) < 0 || num(o, "vocab", &sm->V) < 0) goto bad;
        sim_group *G = &sm->g[0];
        G->n_in = G->n_out = 1;
        tensor(&G->in[0], "input", 2, 1, 1, sm->H, 3);
        tensor(&G->out[0], "output", 2, 1, 1, sm->V, 3);
    } else {
        const cJSON *gs = cJSON_GetObjectItemCaseSensitive(o, "groups"),
                    *l = cJSON_GetObjectItemCaseSensitive(o, "layer");
        if (!cJSON_IsNumber(l) || l->valuedouble < 0 || num(o, "hidden", &sm->H) < 0 || num(o, "kv_dim", &sm->D) < 0 ||
            num(o, "kv_cache_num", &sm->S) < 0 || num(o, "prefill_len", &sm->P) < 0 || !cJSON_IsArray(gs) ||
            cJSON_GetArraySize(gs) > 31)
            goto bad;
        sm->layer = (int)l->valuedouble;
        sm->Sg[0] = sm->S;
        sm->n_groups = 1;
        for (const cJSON *g = gs->child; g; g = g->next) {
            if (!cJSON_IsNumber(g) || g->valuedouble < 1 || g->valuedouble > sm->S) goto bad;
            sm->Sg[sm->n_groups++] = (int)g->valuedouble;
        }
        for (int g = 0; g < sm->n_groups; g++) layer_group(sm, g);
    }
    if (!(sm->src = source(dir->valuestring, (size_t)(sm->P > 0 ? sm->P : 1), err, errlen))) goto fail;
    cJSON_Delete(o);
    return sm;
bad:
    seterr(err, errlen, "sim: axmodel: a field is missing or out of range");
fail:
    cJSON_Delete(o);
    free(sm);
    return NULL;
}

void sim_free(sim_model *sm) { free(sm); }

static void *find(const sim_group *G, void *const *p, const char *name, int out) {
    int n = out ? G->n_out : G->n_in;
    for (int i = 0; i < n; i++)
        if (!strcmp((out ? G->out : G->in)[i].name, name)) return p[i];
    return NULL;
}

int sim_run(sim_model *sm, int g, void *const *in, void *const *out, char *err, size_t errlen) {
    const qwen_config *c = &sm->src->m->cfg;
    const sim_group *G = &sm->g[g];
    if (g < 0 || g >= sm->n_groups) return seterr(err, errlen, "sim: group %d of %d", g, sm->n_groups);
    if (sm->H != c->dim || (sm->layer >= 0 && (sm->D != c->n_kv_heads * c->head_dim || sm->layer >= c->n_layers)) ||
        (sm->layer < 0 && sm->V != c->vocab_size))
        return seterr(err, errlen, "sim: this axmodel's IO does not fit its model (it was compiled for another)");
    if (sm->layer < 0) { /* post: final norm + lm_head */
        const uint16_t *x = in[0];
        uint16_t *y = out[0];
        float *xf = malloc((size_t)sm->H * sizeof *xf), *lf = malloc((size_t)sm->V * sizeof *lf);
        int rc = xf && lf ? 0 : seterr(err, errlen, "sim: out of memory");
        for (int i = 0; !rc && i < sm->H; i++) xf[i] = f32(x[i]);
        if (!rc) rc = backend_cpu.logits(sm->src->cpu, xf, 1, lf, err, errlen);
        for (int i = 0; !rc && i < sm->V; i++) y[i] = bf16(lf[i]);
        free(xf);
        free(lf);
        return rc;
    }
    size_t S = (size_t)sm->S, Sg = (size_t)sm->Sg[g], P = g ? (size_t)sm->P : 1, D = (size_t)sm->D,
           H = (size_t)sm->H, cols = g ? Sg + P : S + 1;
    const uint16_t *x = find(G, in, "input", 0), *mask = find(G, in, "mask", 0), *kc = find(G, in, "K_cache", 0),
                   *vc = find(G, in, "V_cache", 0);
    const uint32_t *idx = find(G, in, "indices", 0);
    uint16_t *ko = find(G, out, "K_cache_out", 1), *vo = find(G, out, "V_cache_out", 1), *y = find(G, out, "output", 1);
    size_t hist = idx[0], n = 0;
    /* indices: consecutive positions from the history's length */
    for (size_t k = 0; k < P; k++)
        if (idx[k] != hist + k) return seterr(err, errlen, "sim: indices[%zu] = %u, want %zu", k, idx[k], hist + k);
    if (g == 0 && hist >= S) return seterr(err, errlen, "sim: decode at position %zu, the cache holds %zu", hist, S);
    if (g > 0 && hist > Sg)
        return seterr(err, errlen, "sim: group %d holds %zu history rows, indices start at %zu", g, Sg, hist);
    /* mask: every value exactly as ax-llm writes it */
    if (g == 0) n = 1;
    else
        while (n < P && mask[n * cols + Sg + n] == 0) n++;
    if (n == 0) return seterr(err, errlen, "sim: the mask lets no row attend to itself");
    for (size_t i = 0; i < P; i++)
        for (size_t j = 0; j < cols; j++) {
            int open = g == 0 ? j < hist || j == S : i < n && (j < hist || (j >= Sg && j <= Sg + i));
            uint16_t want = open ? 0 : BLOCKED;
            if (mask[i * cols + j] != want)
                return seterr(err, errlen, "sim: group %d mask[%zu][%zu] = 0x%04x, want 0x%04x (history %zu, %zu rows)",
                              g, i, j, mask[i * cols + j], want, hist, n);
        }
    /* the layer on the CPU over bf16 inputs; outputs rounded to bf16 */
    size_t L = (size_t)c->n_layers;
    float **kp = calloc(L, sizeof *kp), **vp = calloc(L, sizeof *vp);
    float *kb = malloc((hist + n) * D * sizeof *kb), *vb = malloc((hist + n) * D * sizeof *vb),
          *xf = malloc(n * H * sizeof *xf);
    int rc = 0;
    if (!kp || !vp || !kb || !vb || !xf) rc = seterr(err, errlen, "sim: out of memory");
    else {
        for (size_t i = 0; i < hist * D; i++) kb[i] = f32(kc[i]), vb[i] = f32(vc[i]);
        for (size_t i = 0; i < n * H; i++) xf[i] = f32(x[i]);
        kp[sm->layer] = kb, vp[sm->layer] = vb;
        kv_cache kv = {.n_layers = (int)L, .kv_dim = D, .cap = hist + n, .n = hist, .k = kp, .v = vp};
        if (n == 1) rc = backend_cpu.decode_layer(sm->src->cpu, sm->layer, xf, &kv, err, errlen);
        else rc = backend_cpu.prefill_layer(sm->src->cpu, sm->layer, xf, n, &kv, err, errlen);
        kv_half_free(&kv); /* the f16 copies a quantized model's decode made, if any */
        for (size_t i = 0; !rc && i < P * H; i++) y[i] = i < n * H ? bf16(xf[i]) : 0x7fc0;
        for (size_t i = 0; !rc && i < P * D; i++) {
            ko[i] = i < n * D ? bf16(kb[hist * D + i]) : 0x7fc0;
            vo[i] = i < n * D ? bf16(vb[hist * D + i]) : 0x7fc0;
        }
    }
    free(kp), free(vp), free(kb), free(vb), free(xf);
    return rc;
}
