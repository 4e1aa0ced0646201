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
} sample_opts;

/* Qwen3's generation_config.json defaults: thinking T=0.6 top-p 0.95 top-k 20;
 * no_think T=0.7 top-p 0.8 top-k 20. Seed from libsodium randomness. */
void sample_defaults(sample_opts *o, int no_think);

/* Apply Axera's post_config.json (ax-llm sampling settings) to o. -1 with err on a
 * malformed file. */
int sample_load_post_config(const char *path, sample_opts *o, char *err, size_t errlen);

typedef struct sampler sampler;

/* A sampler for a vocabulary of n_vocab; scratch allocated once here. NULL if out of memory. */
sampler *sampler_new(const sample_opts *o, size_t n_vocab);
void sampler_free(sampler *s);

/* Tell the sampler about tokens the sequence already holds (the prompt: counted for the
 * repetition penalty only) or that were generated (counted for all penalties). */
void sampler_seen(sampler *s, const int32_t *ids, size_t n, int generated);

/* Choose the next id from logits[n_vocab] (modified in place) and record it as generated. */
int32_t sampler_next(sampler *s, float *logits);

#endif
