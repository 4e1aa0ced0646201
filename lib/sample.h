/* sample: choosing the next token from logits, with HF transformers' semantics and
 * order: repetition penalty (over every token the sequence holds: divide a positive
 * logit, multiply a negative one), presence and frequency penalties (OpenAI/vLLM: over
 * the generated tokens, logit -= presence*[count>0] + frequency*count), then temperature,
 * top-k, top-p, min-p, and a draw from the softmax. temp == 0 is greedy (argmax, lowest
 * id on ties). Draws come from a seeded generator advanced once per token, so the same
 * seed gives the same tokens in `decode` and in the `sample` program. */
#ifndef SAMPLE_H
#define SAMPLE_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    float temp;        /* 0 = greedy */
    int top_k;         /* 0 = off */
    float top_p;       /* 1 = off */
    float min_p;       /* 0 = off */
    float rep_penalty; /* 1 = off (HF repetition_penalty) */
    float presence;    /* 0 = off */
    float frequency;   /* 0 = off */
    uint64_t seed;
    int penalty_window; /* 0: rep_penalty over every token the sequence holds (HF); W > 0:
                         * over the distinct ids among the last W generated (Axera) */
} sample_opts;

/* Qwen3's generation_config.json defaults: thinking T=0.6 top-p 0.95 top-k 20;
 * no_think T=0.7 top-p 0.8 top-k 20. Seed from libsodium randomness. */
void sample_defaults(sample_opts *o, int no_think);

/* Apply Axera's post_config.json (ax-llm sampling settings) to o. -1 with err on a
 * malformed file. */
int sample_load_post_config(const char *path, sample_opts *o, char *err, size_t errlen);

/* The sampling flags, shared by every program that samples (`sample`, `decode`), so that
 * they read alike: a getopt_long table is built from sample_flags (ended by name NULL) and
 * each flag met is passed to sample_flag. --no-think changes the defaults the others start
 * from, so callers look for it first and pass it to sample_defaults; sample_flag ignores
 * it. SAMPLE_FLAGS_HELP is their usage text. */
typedef struct {
    const char *name; /* long option, without "--" */
    int has_arg;
} sample_flag_def;
extern const sample_flag_def sample_flags[];

/* Apply one flag (arg NULL when it has none) to o. -1 with err ("--temp -1: want a number
 * >= 0 (0 = greedy)"; a --post-config file's own error) on a bad value, never clamped. */
int sample_flag(sample_opts *o, const sample_flag_def *f, const char *arg, char *err, size_t errlen);

#define SAMPLE_FLAGS_HELP                                                                          \
    "      --temp T          temperature, >= 0 (0 = greedy); default 0.6, 0.7 with --no-think\n"  \
    "      --top-k K         keep the K likeliest ids, K >= 0 (0 = off); default 20\n"            \
    "      --top-p P         nucleus, in [0, 1] (1 = off); default 0.95, 0.8 with --no-think\n"   \
    "      --min-p P         drop ids below P times the top probability, in [0, 1]; default 0\n"  \
    "      --repeat-penalty R  HF repetition penalty over every id the sequence holds, > 0\n"    \
    "                        (1 = off); default 1\n"                                              \
    "      --presence-penalty X  subtract X from each id generated so far, in [-2, 2]; default 0\n" \
    "      --frequency-penalty X  subtract X times each generated id's count, in [-2, 2];\n"     \
    "                        default 0\n"                                                         \
    "      --seed N          seed of the generator, in [0, 2^64-1]; default random\n"            \
    "      --no-think        Qwen3's non-thinking defaults (T 0.7, top-p 0.8, top-k 20)\n"       \
    "      --greedy          the likeliest id (= --temp 0)\n"                                     \
    "      --post-config FILE  Axera's post_config.json (ax-llm's sampling, as ax-llm applies\n" \
    "                        it): replaces the flags before it; the flags after it still apply\n"

typedef struct sampler sampler;

/* A sampler for a vocabulary of n_vocab; scratch allocated once here. NULL if out of memory. */
sampler *sampler_new(const sample_opts *o, size_t n_vocab);
void sampler_free(sampler *s);

/* Tell the sampler about tokens the sequence already holds (the prompt: counted for the
 * repetition penalty only) or that were generated (counted for all penalties). */
void sampler_seen(sampler *s, const int32_t *ids, size_t n, int generated);

/* Choose the next id from logits[n_vocab] (modified in place) and record it as generated. */
int32_t sampler_next(sampler *s, float *logits);

/* What sampler_next would draw from, without drawing or recording: applies the penalties
 * and filters to logits[n_vocab] (in place) and points *ids and *probs at the surviving
 * ids and their renormalized probabilities (scratch owned by s, valid until the next call).
 * Returns how many survive (1 when greedy). For tests and diagnostics. */
size_t sampler_dist(sampler *s, float *logits, const int32_t **ids, const float **probs);

#endif
