/* sample: the sampler behind sample.h, and the mapping of Axera's post_config.json.
 *
 * One step is HF transformers' chain, in its order and with its tie rules:
 *   RepetitionPenaltyLogitsProcessor   every id the sequence holds, once per id
 *   presence/frequency (vLLM)          generated ids: l -= frequency*count; l -= presence
 *   TemperatureLogitsWarper            l /= T (over the whole vocabulary, before top-k,
 *                                      so that ties the division creates are HF's ties)
 *   TopKLogitsWarper                   keep l >= the k-th largest (ties at the k-th all stay)
 *   TopPLogitsWarper                   drop ids whose ascending cumulative probability is
 *                                      <= 1 - top_p: the id that crosses top_p stays
 *   MinPLogitsWarper                   drop p < min_p * p_max
 *   softmax over the survivors, one uniform draw.
 * Every filter keeps at least the most likely id (HF's min_tokens_to_keep = 1). Where HF
 * leaves the order of equal logits to torch.sort, we put the lower id first.
 *
 * Cost per token is O(V) plus sorting the survivors of top-k: the k-th largest comes
 * from a k-entry min-heap, never a sort of the vocabulary. Without top-k, top-p sorts only
 * the ids that can survive (n*p > 1 - top_p; all others lie in the removed prefix).
 * All scratch is allocated in sampler_new; sampler_next allocates nothing.
 *
 * The RNG is xoshiro256** seeded through splitmix64, advanced exactly once per
 * sampler_next (greedy steps too), so a seed replays the same ids anywhere. */
#include "sample.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

typedef struct {
    float l;    /* processed logit */
    int32_t id;
} cand;

struct sampler {
    sample_opts o;
    size_t V;
    uint32_t *held, *gen;       /* (V) count of each id: in the sequence / generated */
    int32_t *held_ids, *gen_ids; /* (V) distinct ids with held > 0 / gen > 0 */
    size_t n_held, n_gen;
    int32_t *ring;              /* (penalty_window) the last generated ids, for Axera's window */
    size_t ring_len, ring_pos;
    uint32_t *mark, stamp;      /* (V) dedupe of the window without clearing per step */
    float *heap;                /* (top_k) min-heap of the k largest logits */
    cand *c;                    /* (V) the surviving candidates */
    size_t n;
    int32_t *out_ids;           /* (V) sampler_dist's view of c */
    float *out_p;               /* (V) their probabilities */
    double *p;                  /* (V) probabilities of c, in double for the cumulative sums */
    uint64_t rng[4];
};

/* ---- RNG: splitmix64 to expand the seed, xoshiro256** to draw ---- */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t xoshiro(uint64_t s[4]) {
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0], s[3] ^= s[1], s[1] ^= s[2], s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

/* Uniform in [0, 1) with 53 random bits. */
static double uniform(uint64_t s[4]) { return (double)(xoshiro(s) >> 11) * 0x1.0p-53; }

/* ---- options ---- */

void sample_defaults(sample_opts *o, int no_think) {
    memset(o, 0, sizeof *o);
    o->temp = no_think ? 0.7f : 0.6f;
    o->top_p = no_think ? 0.8f : 0.95f;
    o->top_k = 20;
    o->min_p = 0;
    o->rep_penalty = 1;
    /* sodium_init may fail only if the system has no randomness source at all; then the
     * clock and pid still give distinct runs distinct seeds. */
    if (sodium_init() >= 0) randombytes_buf(&o->seed, sizeof o->seed);
    else o->seed = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid();
}

/* A post_config.json number or bool; absent keys keep *v (ax-llm's member defaults). */
static int pc_num(const cJSON *root, const char *key, double *v, char *err, size_t errlen) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j) return 0;
    if (!cJSON_IsNumber(j)) return seterr(err, errlen, "%s: want a number", key);
    *v = j->valuedouble;
    return 0;
}

static int pc_bool(const cJSON *root, const char *key, int *v, char *err, size_t errlen) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j) return 0;
    if (!cJSON_IsBool(j)) return seterr(err, errlen, "%s: want true or false", key);
    *v = cJSON_IsTrue(j);
    return 0;
}

/* ax-llm's LLMPostprocess::apply, as sample_opts:
 *
 *   enable_temperature, temperature  T when on, 1.0 when off (its logits are then unscaled).
 *   enable_top_p_sampling, top_p     top_p, top_k = 0: when both are on ax-llm takes top-p
 *                                    and ignores top-k. Its nucleus (heap pops until the
 *                                    cumulative probability reaches top_p, that id kept)
 *                                    is HF's top-p.
 *   enable_top_k_sampling, top_k     top_k, top_p = 1. top_k = 1 is greedy (temp = 0).
 *                                    ax-llm keeps exactly k (ties in partial_sort order),
 *                                    we keep HF's ties at the k-th logit.
 *   neither sampler on               greedy (temp = 0): ax-llm takes the argmax, whatever T.
 *   enable_repetition_penalty,       reproduced exactly: ax-llm divides a positive logit by
 *   repetition_penalty,              sqrt(penalty) (multiplies a negative one) for each
 *   penalty_window                   distinct id among the last penalty_window generated
 *                                    ids; the prompt is not counted. That is HF's formula
 *                                    with rep_penalty = sqrtf(penalty) over that window, so
 *                                    penalty_window = W selects the window. Off, or W = 0
 *                                    (an empty window in ax-llm), is rep_penalty = 1.
 *                                    ax-llm divides by T first, then penalizes; both scale
 *                                    by positive factors, so the order does not matter.
 *   min_p, presence, frequency       0: ax-llm has none. The seed is left as it was.
 * Keys other than these (ax-llm ignores them too) are ignored; a missing key keeps
 * ax-llm's default (all off, T = 1, penalty 1, window 20, top_p 1, top_k 1). */
int sample_load_post_config(const char *path, sample_opts *o, char *err, size_t errlen) {
    mapped m;
    if (map_file(path, &m, err, errlen) < 0) return -1;
    cJSON *root = cJSON_ParseWithLength((const char *)m.data, m.size);
    unmap_file(&m);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return seterr(err, errlen, "%s: not a JSON object", path);
    }
    int en_t = 0, en_rep = 0, en_p = 0, en_k = 0, rc = -1;
    double t = 1, rep = 1, win = 20, p = 1, k = 1;
    char e[200];
    if (pc_bool(root, "enable_temperature", &en_t, e, sizeof e) < 0 ||
        pc_num(root, "temperature", &t, e, sizeof e) < 0 ||
        pc_bool(root, "enable_repetition_penalty", &en_rep, e, sizeof e) < 0 ||
        pc_num(root, "repetition_penalty", &rep, e, sizeof e) < 0 ||
        pc_num(root, "penalty_window", &win, e, sizeof e) < 0 ||
        pc_bool(root, "enable_top_p_sampling", &en_p, e, sizeof e) < 0 ||
        pc_num(root, "top_p", &p, e, sizeof e) < 0 ||
        pc_bool(root, "enable_top_k_sampling", &en_k, e, sizeof e) < 0 ||
        pc_num(root, "top_k", &k, e, sizeof e) < 0) {
        seterr(err, errlen, "%s: %s", path, e);
        goto done;
    }
    /* Ranges are checked only for settings in effect, as ax-llm reads the others but never
     * uses them. */
    if (en_t && !(t > 0 && isfinite(t))) {
        seterr(err, errlen, "%s: temperature %g: want a number > 0", path, t);
        goto done;
    }
    if (en_rep && (!(rep > 0 && isfinite(rep)) || win < 0 || win > 1e9 || win != floor(win))) {
        seterr(err, errlen, "%s: repetition_penalty %g, penalty_window %g: want penalty > 0, window an integer >= 0",
               path, rep, win);
        goto done;
    }
    if (en_p && !(p > 0 && p <= 1)) {
        seterr(err, errlen, "%s: top_p %g: want a number in (0, 1]", path, p);
        goto done;
    }
    if (en_k && !en_p && (k < 1 || k > 1e9 || k != floor(k))) {
        seterr(err, errlen, "%s: top_k %g: want an integer >= 1", path, k);
        goto done;
    }
    o->min_p = o->presence = o->frequency = 0;
    o->temp = en_t ? (float)t : 1.0f;
    o->top_p = 1, o->top_k = 0;
    if (en_p) o->top_p = (float)p;
    else if (en_k && k > 1) o->top_k = (int)k;
    else o->temp = 0;
    o->rep_penalty = 1, o->penalty_window = 0;
    if (en_rep && win > 0 && rep != 1) {
        o->rep_penalty = sqrtf((float)rep); /* ax-llm: std::sqrt(float) */
        o->penalty_window = (int)win;
    }
    rc = 0;
done:
    cJSON_Delete(root);
    return rc;
}

/* ---- the shared flags ---- */

enum { F_TEMP, F_TOPK, F_TOPP, F_MINP, F_REP, F_PRES, F_FREQ, F_SEED, F_NOTHINK, F_GREEDY, F_POST };

/* In the order of the enum: a flag's index is its key. */
const sample_flag_def sample_flags[] = {
    {"temp", 1},  {"top-k", 1}, {"top-p", 1},    {"min-p", 1},  {"repeat-penalty", 1}, {"presence-penalty", 1},
    {"frequency-penalty", 1}, {"seed", 1}, {"no-think", 0}, {"greedy", 0}, {"post-config", 1}, {NULL, 0},
};

/* A number in [lo, hi] (lo itself excluded when lo_open), or -1. */
static int flag_num(const char *s, double lo, double hi, int lo_open, float *out) {
    char *e;
    errno = 0;
    double v = strtod(s, &e);
    if (errno || e == s || *e || !isfinite(v) || v < lo || v > hi || (lo_open && v == lo)) return -1;
    *out = (float)v;
    return 0;
}

int sample_flag(sample_opts *o, const sample_flag_def *f, const char *arg, char *err, size_t errlen) {
    const char *want = NULL;
    char *e;
    switch (f - sample_flags) {
    case F_TEMP:
        if (flag_num(arg, 0, INFINITY, 0, &o->temp) < 0) want = "a number >= 0 (0 = greedy)";
        break;
    case F_TOPK: {
        errno = 0;
        long k = strtol(arg, &e, 10);
        if (errno || e == arg || *e || k < 0 || k > INT32_MAX) want = "an integer >= 0 (0 = off)";
        else o->top_k = (int)k;
        break;
    }
    case F_TOPP:
        if (flag_num(arg, 0, 1, 0, &o->top_p) < 0) want = "a number in [0, 1]";
        break;
    case F_MINP:
        if (flag_num(arg, 0, 1, 0, &o->min_p) < 0) want = "a number in [0, 1]";
        break;
    case F_REP:
        if (flag_num(arg, 0, INFINITY, 1, &o->rep_penalty) < 0) want = "a number > 0 (1 = off)";
        else o->penalty_window = 0; /* HF's, over the whole sequence */
        break;
    case F_PRES:
        if (flag_num(arg, -2, 2, 0, &o->presence) < 0) want = "a number in [-2, 2]";
        break;
    case F_FREQ:
        if (flag_num(arg, -2, 2, 0, &o->frequency) < 0) want = "a number in [-2, 2]";
        break;
    case F_SEED: {
        errno = 0;
        unsigned long long v = strtoull(arg, &e, 10);
        if (errno || e == arg || *e || arg[0] == '-' || arg[0] == '+' || arg[0] == ' ')
            want = "an integer in [0, 18446744073709551615]";
        else o->seed = v;
        break;
    }
    case F_NOTHINK: break; /* the caller passed it to sample_defaults */
    case F_GREEDY: o->temp = 0; break;
    case F_POST: return sample_load_post_config(arg, o, err, errlen);
    default: return seterr(err, errlen, "not a sampling flag");
    }
    if (want) return seterr(err, errlen, "--%s %s: want %s", f->name, arg, want);
    return 0;
}

/* ---- the sampler ---- */

sampler *sampler_new(const sample_opts *o, size_t n_vocab) {
    sampler *s = calloc(1, sizeof *s);
    if (!s || n_vocab == 0 || n_vocab > INT32_MAX) goto fail;
    s->o = *o;
    s->V = n_vocab;
    size_t V = n_vocab;
    size_t k = o->top_k > 0 ? (size_t)o->top_k : 0;
    size_t w = o->penalty_window > 0 ? (size_t)o->penalty_window : 0;
    if (k >= V) k = 0; /* top-k that keeps everything is off */
    s->o.top_k = (int)k;
    s->held = calloc(V, sizeof *s->held);
    s->gen = calloc(V, sizeof *s->gen);
    s->held_ids = malloc(V * sizeof *s->held_ids);
    s->gen_ids = malloc(V * sizeof *s->gen_ids);
    s->mark = calloc(V, sizeof *s->mark);
    s->c = malloc(V * sizeof *s->c);
    s->out_ids = malloc(V * sizeof *s->out_ids);
    s->out_p = malloc(V * sizeof *s->out_p);
    s->p = malloc(V * sizeof *s->p);
    s->heap = malloc((k ? k : 1) * sizeof *s->heap);
    s->ring = malloc((w ? w : 1) * sizeof *s->ring);
    if (!s->held || !s->gen || !s->held_ids || !s->gen_ids || !s->mark || !s->c || !s->out_ids ||
        !s->out_p || !s->p || !s->heap || !s->ring)
        goto fail;
    uint64_t x = o->seed;
    for (int i = 0; i < 4; i++) s->rng[i] = splitmix64(&x);
    return s;
fail:
    sampler_free(s);
    return NULL;
}

void sampler_free(sampler *s) {
    if (!s) return;
    free(s->held), free(s->gen), free(s->held_ids), free(s->gen_ids), free(s->mark);
    free(s->c), free(s->out_ids), free(s->out_p), free(s->p), free(s->heap), free(s->ring);
    free(s);
}

/* Ids outside [0, n_vocab) cannot be logits' indices and are ignored. Counts saturate,
 * so an id enters held_ids / gen_ids once however long the sequence. */
void sampler_seen(sampler *s, const int32_t *ids, size_t n, int generated) {
    size_t w = (size_t)(s->o.penalty_window > 0 ? s->o.penalty_window : 0);
    for (size_t i = 0; i < n; i++) {
        int32_t t = ids[i];
        if (t < 0 || (size_t)t >= s->V) continue;
        if (s->held[t] == 0) s->held_ids[s->n_held++] = t;
        if (s->held[t] < UINT32_MAX) s->held[t]++;
        if (!generated) continue;
        if (s->gen[t] == 0) s->gen_ids[s->n_gen++] = t;
        if (s->gen[t] < UINT32_MAX) s->gen[t]++;
        if (w) {
            s->ring[s->ring_pos] = t;
            s->ring_pos = (s->ring_pos + 1) % w;
            if (s->ring_len < w) s->ring_len++;
        }
    }
}

/* HF: torch.where(score < 0, score * penalty, score / penalty), once per id. */
static void penalize(float *l, float pen) { *l = *l < 0 ? *l * pen : *l / pen; }

static void penalties(sampler *s, float *l) {
    float pen = s->o.rep_penalty;
    if (pen != 1 && s->o.penalty_window > 0) {
        if (++s->stamp == 0) { /* wrapped after 2^32 steps: forget old marks */
            memset(s->mark, 0, s->V * sizeof *s->mark);
            s->stamp = 1;
        }
        for (size_t i = 0; i < s->ring_len; i++) {
            int32_t t = s->ring[i];
            if (s->mark[t] != s->stamp) s->mark[t] = s->stamp, penalize(&l[t], pen);
        }
    } else if (pen != 1) {
        for (size_t i = 0; i < s->n_held; i++) penalize(&l[s->held_ids[i]], pen);
    }
    if (s->o.frequency != 0 || s->o.presence != 0) {
        /* vLLM: logits -= frequency * counts; logits -= presence * mask, in that order */
        for (size_t i = 0; i < s->n_gen; i++) {
            int32_t t = s->gen_ids[i];
            l[t] -= s->o.frequency * (float)s->gen[t];
            l[t] -= s->o.presence;
        }
    }
}

static void heap_down(float *h, size_t n, size_t i) {
    for (;;) {
        size_t m = i, a = 2 * i + 1, b = a + 1;
        if (a < n && h[a] < h[m]) m = a;
        if (b < n && h[b] < h[m]) m = b;
        if (m == i) return;
        float t = h[i];
        h[i] = h[m], h[m] = t;
        i = m;
    }
}

/* The k-th largest of l[0..V) (NaN skipped) through a k-entry min-heap: O(V log k),
 * and close to O(V) since most logits lose to the heap's root at once. */
static float kth_largest(sampler *s, const float *l, size_t k) {
    float *h = s->heap;
    size_t n = 0;
    for (size_t i = 0; i < s->V; i++) {
        float x = l[i];
        if (x != x) continue;
        if (n < k) {
            h[n++] = x;
            if (n == k)
                for (size_t j = k / 2; j-- > 0;) heap_down(h, k, j);
        } else if (x > h[0]) {
            h[0] = x;
            heap_down(h, k, 0);
        }
    }
    if (n < k) return -INFINITY; /* fewer than k numbers: keep them all */
    return h[0];
}

/* Descending logit, then ascending id. */
static int cand_cmp(const void *pa, const void *pb) {
    const cand *a = pa, *b = pb;
    if (a->l != b->l) return a->l > b->l ? -1 : 1;
    return (a->id > b->id) - (a->id < b->id);
}

static float cand_max(const cand *c, size_t n) {
    float m = -INFINITY;
    for (size_t i = 0; i < n; i++)
        if (c[i].l > m) m = c[i].l;
    return m;
}

/* The maximum and sum of exp(l - max) over c[0..n): softmax(l)_i = exp(l_i - *mx) / *sum.
 * 0 when there is no finite maximum. */
static int softmax_stats(const cand *c, size_t n, float *mx, double *sum) {
    *mx = cand_max(c, n);
    if (!isfinite(*mx)) return 0;
    *sum = 0;
    for (size_t i = 0; i < n; i++) *sum += exp((double)c[i].l - *mx);
    return 1;
}

/* HF TopPLogitsWarper on c[0..n): sorted ascending, softmax, cumsum; remove where
 * cumsum <= 1 - top_p, except the last (most likely) id. An id with n*p <= 1 - top_p has
 * cumsum <= n*p (only ids no likelier come before it), so it is removed: those are set
 * aside unsorted and their mass starts the sum, and only the rest is sorted. Leaves the
 * survivors sorted by descending logit. */
static size_t top_p(sampler *s, size_t n) {
    float mx;
    double sum;
    if (!softmax_stats(s->c, n, &mx, &sum)) return n;
    double cut = 1.0 - (double)s->o.top_p, removed = 0;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        double p = exp((double)s->c[i].l - mx) / sum;
        if ((double)n * p > cut) s->c[m++] = s->c[i];
        else removed += p;
    }
    if (m == 0) { /* top_p = 0 over equal logits (c is untouched): keep the first likeliest */
        size_t best = 0;
        while (s->c[best].l != mx) best++;
        s->c[0] = s->c[best];
        return 1;
    }
    qsort(s->c, m, sizeof *s->c, cand_cmp);
    double cum = removed;
    size_t j = m;
    while (j > 1) {
        cum += exp((double)s->c[j - 1].l - mx) / sum;
        if (cum > cut) break;
        j--;
    }
    return j;
}

/* p[i] = softmax(c[0..n).l); uniform when no logit is finite. */
static void softmax(const cand *c, size_t n, double *p) {
    float mx;
    double sum;
    if (!softmax_stats(c, n, &mx, &sum)) {
        for (size_t i = 0; i < n; i++) p[i] = 1.0 / (double)n;
        return;
    }
    for (size_t i = 0; i < n; i++) p[i] = exp((double)c[i].l - mx) / sum;
}

/* HF MinPLogitsWarper: remove p < min_p * p_max, i.e. exp(l - l_max) < min_p. */
static size_t min_p(sampler *s, size_t n) {
    float mx = cand_max(s->c, n);
    if (!isfinite(mx)) return n;
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (exp((double)s->c[i].l - mx) >= (double)s->o.min_p) s->c[m++] = s->c[i];
    return m;
}

/* Penalties, temperature and the filters: survivors in s->c[0..s->n), their
 * probabilities in s->p. */
static void filter(sampler *s, float *l) {
    size_t V = s->V, n = 0;
    penalties(s, l);
    if (s->o.temp == 0) {
        size_t best = 0;
        for (size_t i = 1; i < V; i++)
            if (l[i] > l[best] || l[best] != l[best]) best = i;
        s->c[0] = (cand){l[best], (int32_t)best};
        s->p[0] = 1;
        s->n = 1;
        return;
    }
    if (s->o.temp != 1)
        for (size_t i = 0; i < V; i++) l[i] /= s->o.temp;
    if (s->o.top_k > 0) {
        float thr = kth_largest(s, l, (size_t)s->o.top_k);
        for (size_t i = 0; i < V; i++)
            if (l[i] >= thr) s->c[n++] = (cand){l[i], (int32_t)i};
    } else {
        for (size_t i = 0; i < V; i++) s->c[n++] = (cand){l[i], (int32_t)i};
    }
    if (n == 0) { /* only NaNs: nothing to rank, take id 0 */
        s->c[n++] = (cand){l[0], 0};
    }
    if (s->o.top_p < 1) n = top_p(s, n);
    if (s->o.min_p > 0) n = min_p(s, n);
    softmax(s->c, n, s->p);
    s->n = n;
}

size_t sampler_dist(sampler *s, float *logits, const int32_t **ids, const float **probs) {
    filter(s, logits);
    for (size_t i = 0; i < s->n; i++) s->out_ids[i] = s->c[i].id, s->out_p[i] = (float)s->p[i];
    *ids = s->out_ids;
    *probs = s->out_p;
    return s->n;
}

int32_t sampler_next(sampler *s, float *logits) {
    filter(s, logits);
    double u = uniform(s->rng), cum = 0; /* once per token, greedy or not */
    size_t pick = s->n - 1;
    for (size_t i = 0; i < s->n; i++) {
        cum += s->p[i];
        if (u < cum) {
            pick = i;
            break;
        }
    }
    /* rounding can leave cum just under 1: fall back on the last id with any mass */
    while (pick > 0 && s->p[pick] == 0) pick--;
    int32_t id = s->c[pick].id;
    sampler_seen(s, &id, 1, 1);
    return id;
}
