/* prefill: embeddings (or ids) -> K/V appended to a session, and logits out.
 *
 * Input, per sequence, any of: `embed`'s pair of records (int32 ids, then f32 (n, dim)
 * embeddings), an f32 embeddings record alone (tokens recorded as -1: unknown, e.g. a
 * vision tower's output), or bare ids (a text line or an int32 record not followed by
 * embeddings), which prefill embeds itself. Each sequence is appended to the session
 * after what it already holds, and committed to the KV store (docs/kvstore.md); leading
 * 16-position blocks the store already holds for the same tokens are reused, not
 * recomputed. The logits of its last position (or of every position, --all-logits) are
 * written as an f32 .npy record.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "ids.h"
#include "model.h"
#include "quant.h"
#include "npy.h"
#include "kvs.h"
#include "util.h"

static const char *prog = "prefill";

static const char usage[] =
    "usage: prefill [-m DIR] -k SESSION [options] [FILE]\n"
    "Run the model over new positions and append their K/V to SESSION (created if missing).\n"
    "Input (stdin when FILE is absent or '-'): embed's records (int32 ids + f32 (n, hidden)\n"
    "embeddings), f32 embeddings alone, or token ids (text lines or int32 .npy), embedded here.\n"
    "Writes the logits of each sequence's last position as an f32 .npy record (vocab,).\n"
    "\n"
    "  -m, --model DIR     Qwen3 model: a Hugging Face, MLX, torchao, msModelSlim or ax-llm\n"
    "                      directory, or a .gguf file; default $QWEN_MODEL, else the built-in tiny model\n"
    "  -k, --session NAME  the session to extend, created if missing (required)\n"
    "      --store DIR     the KV store (default $QWEN_KVSTORE, else ~/.cache/qwen3-pipe/kv)\n"
    "      --key FILE      encryption key of the store (32 bytes, or 64 hex digits)\n"
    "      --all-logits    write logits for every position: one record (n, vocab) per sequence\n"
    "                      (computes every position: no prefix reuse)\n"
    "  -t, --threads N     threads (default: one per core)\n"
    "      --quant SCHEME  weights as none (the checkpoint's), bf16, q8, q4, q4g128, 8da4w or 8da8w,\n"
    "                      or bf16a (bf16 with x rounded to bf16 too: llama.cpp's BF16 arithmetic);\n"
    "                      quantized once into a cache file that every later run maps\n"
    "  -v, --verbose       report positions (computed and reused) and speed on stderr\n"
    "      --backend NAME  where the layers run: cpu, ax650, ascend (default cpu; README: AX650, Ascend)\n"
    "  -h, --help          this help\n";

typedef struct {
    const char *session, *backend, *store, *key;
    int all_logits, threads, verbose;
} opts;

/* The state of one run: model, backend, session, and buffers reused across sequences. */
typedef struct {
    model *m;
    const backend *b;
    void *ctx;
    session s;
    float *x, *logits;
    size_t x_cap, logits_cap;
    size_t pending; /* rows of logits computed but not yet written (see flush) */
    int feed_failed; /* the error came from the model or the store, not from the input */
    size_t fed;     /* positions computed by this run */
    size_t reused;  /* positions found in the store instead */
    double secs;    /* time spent in forward() */
} run;

/* Write the logits held back. The last sequence's logits are written only after the
 * session is saved: `prefill -k S | sample | decode -k S` starts all three at once, and
 * decode opens S only when a token reaches it, so this order is what guarantees it sees
 * the saved session. */
static int flush(run *r, const opts *o, char *err, size_t errlen) {
    size_t shape[2] = {r->pending, (size_t)r->m->cfg.vocab_size};
    int rc = 0;
    if (r->pending)
        rc = o->all_logits ? npy_write(stdout, NPY_F32, 2, shape, r->logits, err, errlen)
                           : npy_write(stdout, NPY_F32, 1, shape + 1, r->logits, err, errlen);
    r->pending = 0;
    return rc;
}

static int grow(float **p, size_t *cap, size_t n) {
    if (n <= *cap) return 0;
    float *q = realloc(*p, n * sizeof *q);
    if (!q) return -1;
    *p = q;
    *cap = n;
    return 0;
}

/* Run n positions whose embeddings are r->x (n, dim) and ids are ids (NULL = unknown),
 * reusing the leading blocks the store holds, and commit them. */
static int feed_run(run *r, const opts *o, const int32_t *ids, size_t n, char *err, size_t errlen);

/* feed_run, remembering that a failure is the model's or the store's (messages then name
 * the session, not the input). */
static int feed(run *r, const opts *o, const int32_t *ids, size_t n, char *err, size_t errlen) {
    if (feed_run(r, o, ids, n, err, errlen) == 0) return 0;
    r->feed_failed = 1;
    return -1;
}

static int feed_run(run *r, const opts *o, const int32_t *ids, size_t n, char *err, size_t errlen) {
    size_t vocab = (size_t)r->m->cfg.vocab_size, dim = (size_t)r->m->cfg.dim, skip = 0;
    if (n == 0) return 0;
    if (flush(r, o, err, errlen) < 0) return -1;
    if (ids && !o->all_logits) {
        long got = sess_reuse_prefix(&r->s, ids, n, err, errlen);
        if (got < 0) return -1;
        skip = (size_t)got;
        if (skip == n) { /* all of it is stored: recompute the last position for its logits */
            if (sess_trim(&r->s, r->s.kv.n - 1, err, errlen) < 0) return -1;
            skip = n - 1;
        }
        r->reused += skip;
    }
    if (grow(&r->logits, &r->logits_cap, (o->all_logits ? n : 1) * vocab) < 0)
        return seterr(err, errlen, "out of memory for logits");
    double t0 = now_sec();
    if (forward(r->b, r->ctx, r->m, r->x + skip * dim, n - skip, &r->s.kv, r->logits, o->all_logits, err,
                errlen) < 0)
        return -1;
    r->secs += now_sec() - t0;
    r->fed += n - skip;
    int32_t *unknown = NULL;
    if (!ids) {
        if (!(unknown = malloc(n * sizeof *unknown))) return seterr(err, errlen, "out of memory");
        for (size_t i = 0; i < n; i++) unknown[i] = -1;
    }
    int rc = sess_push_tokens(&r->s, ids ? ids + skip : unknown, n - skip, err, errlen);
    free(unknown);
    /* forward() leaves the final hidden states in x: the session keeps the last one, so the
     * next token's logits are one lm_head away when decode starts from the session alone */
    if (rc < 0 || sess_set_hidden(&r->s, r->x + (n - 1) * dim, err, errlen) < 0 ||
        sess_commit(&r->s, err, errlen) < 0)
        return -1;
    r->pending = o->all_logits ? n : 1;
    return 0;
}

static int feed_ids(run *r, const opts *o, const int32_t *ids, size_t n, char *err, size_t errlen) {
    if (grow(&r->x, &r->x_cap, n * (size_t)r->m->cfg.dim) < 0) return seterr(err, errlen, "out of memory");
    if (model_embed(r->m, ids, n, r->x, err, errlen) < 0) return -1;
    return feed(r, o, ids, n, err, errlen);
}

/* Read .npy records: int32 ids, optionally followed by their f32 embeddings. */
static int read_records(run *r, const opts *o, FILE *in, char *err, size_t errlen) {
    npy rec = {0};
    int32_t *ids = NULL; /* pending ids, not yet matched with embeddings */
    size_t n_ids = 0, rec_no = 0, dim = (size_t)r->m->cfg.dim;
    int got, rc = 0, magic_read = 1;
    char e[256];
    while ((got = npy_read(in, &rec, magic_read, e, sizeof e)) > 0) {
        magic_read = 0;
        rec_no++;
        if (rec.dtype == NPY_I32) {
            if (ids && feed_ids(r, o, ids, n_ids, err, errlen) < 0) goto fail;
            if (rec.ndim > 2 || (rec.ndim == 2 && rec.shape[0] != 1)) {
                seterr(err, errlen, "record %zu: token ids must have shape (n,)", rec_no);
                goto fail;
            }
            free(ids);
            n_ids = rec.count;
            if (!(ids = malloc((n_ids ? n_ids : 1) * sizeof *ids))) goto oom;
            memcpy(ids, rec.data, n_ids * sizeof *ids);
            for (size_t i = 0; i < n_ids; i++)
                if (ids[i] < 0 || ids[i] >= r->m->cfg.vocab_size) {
                    seterr(err, errlen, "record %zu: id %d out of range [0, %d)", rec_no, ids[i],
                           r->m->cfg.vocab_size);
                    goto fail;
                }
        } else if (rec.dtype == NPY_F32) {
            size_t n = rec.ndim == 2 ? rec.shape[0] : rec.ndim == 1 ? 1 : 0;
            if (rec.ndim < 1 || rec.ndim > 2 || rec.shape[rec.ndim - 1] != dim) {
                seterr(err, errlen, "record %zu: embeddings must have shape (n, %zu) (this model's hidden size)",
                       rec_no, dim);
                goto fail;
            }
            if (ids && n_ids != n) {
                seterr(err, errlen, "record %zu: %zu embeddings for %zu ids", rec_no, n, n_ids);
                goto fail;
            }
            if (grow(&r->x, &r->x_cap, n * dim) < 0) goto oom;
            memcpy(r->x, rec.data, n * dim * sizeof(float));
            if (feed(r, o, ids, n, err, errlen) < 0) goto fail;
            free(ids);
            ids = NULL;
        } else {
            seterr(err, errlen, "record %zu: want int32 ids or f32 embeddings", rec_no);
            goto fail;
        }
    }
    if (got < 0) {
        seterr(err, errlen, "record %zu: %s", rec_no + 1, e);
        goto fail;
    }
    if (ids && feed_ids(r, o, ids, n_ids, err, errlen) < 0) goto fail;
    goto out;
oom:
    seterr(err, errlen, "out of memory");
fail:
    rc = -1;
out:
    free(ids);
    npy_free(&rec);
    return rc;
}

static int read_text(run *r, const opts *o, FILE *in, char *err, size_t errlen) {
    ids_reader rd;
    ids_open(&rd, in);
    int32_t *ids = NULL;
    size_t n = 0, cap = 0;
    int got;
    char e[256];
    while ((got = ids_next(&rd, &ids, &n, &cap, (size_t)r->m->cfg.vocab_size, e, sizeof e)) > 0)
        if (feed_ids(r, o, ids, n, err, errlen) < 0) break;
    if (got < 0) seterr(err, errlen, "%s", e);
    ids_close(&rd);
    free(ids);
    return got == 0 ? 0 : -1;
}

int main(int argc, char **argv) {
    opts o = {.backend = "cpu"};
    const char *dir = NULL, *quant = "none";
    enum { O_ALL = 256, O_BACKEND, O_STORE, O_KEY, O_QUANT };
    static const struct option lo[] = {
        {"model", required_argument, 0, 'm'},    {"session", required_argument, 0, 'k'},
        {"all-logits", no_argument, 0, O_ALL},   {"threads", required_argument, 0, 't'},
        {"backend", required_argument, 0, O_BACKEND}, {"help", no_argument, 0, 'h'},
        {"verbose", no_argument, 0, 'v'},        {"store", required_argument, 0, O_STORE},
        {"key", required_argument, 0, O_KEY},
        {"quant", required_argument, 0, O_QUANT},
        {0, 0, 0, 0}};
    int c;
    long v;
    while ((c = getopt_long(argc, argv, "m:k:t:vh", lo, NULL)) != -1) {
        switch (c) {
        case 'm': dir = optarg; break;
        case 'k': o.session = optarg; break;
        case O_ALL: o.all_logits = 1; break;
        case 'v': o.verbose = 1; break;
        case 't':
            if (parse_long(optarg, 1, 1024, &v) < 0) {
                fprintf(stderr, "%s: -t: want a thread count 1..1024, not '%s'\n", prog, optarg);
                return EXIT_USAGE;
            }
            o.threads = (int)v;
            break;
        case O_BACKEND: o.backend = optarg; break;
        case O_STORE: o.store = optarg; break;
        case O_KEY: o.key = optarg; break;
        case O_QUANT:
            if (quant_scheme_find(optarg) < 0) {
                fprintf(stderr, "%s: --quant: '%s' is not one of: %s\n", prog, optarg, quant_names());
                return EXIT_USAGE;
            }
            quant = optarg;
            break;
        case 'h': fputs(usage, stdout); return EXIT_OK;
        default: fputs(usage, stderr); return EXIT_USAGE;
        }
    }
    if (!o.session) {
        fprintf(stderr, "%s: -k SESSION is required\n%s", prog, usage);
        return EXIT_USAGE;
    }
    if (argc - optind > 1) {
        fprintf(stderr, "%s: one input file at most\n%s", prog, usage);
        return EXIT_USAGE;
    }
    run r = {0};
    if (!(r.b = backend_find(o.backend))) {
        fprintf(stderr, "%s: --backend: '%s' is not one of: %s\n", prog, o.backend, backend_names());
        return EXIT_USAGE;
    }
    const char *inname;
    char err[512];
    FILE *in = open_input(optind < argc ? argv[optind] : NULL, &inname, err, sizeof err);
    if (!in) {
        fprintf(stderr, "%s: %s\n", prog, err);
        return EXIT_DATA;
    }
    int rc = EXIT_DATA;
    backend_opts bo = {.n_threads = o.threads, .max_batch = 512};
    kvs_store *st = NULL;
    if (!(r.m = model_open_q(model_dir(dir), quant, isatty(2) ? progress_bar : NULL, stderr, err, sizeof err)))
        goto done;
    /* the backend first: one that cannot start must not leave a new, empty session behind */
    if (!(r.ctx = r.b->open(r.m, &bo, err, sizeof err))) goto done_model;
    if (!(st = kvs_open(o.store, o.key, err, sizeof err))) goto done_ctx;
    if (sess_open(st, o.session, r.m, &r.s, SESS_WRITE, err, sizeof err) < 0) goto done_store;
    int ch = getc(in);
    int ok;
    if (ch == EOF) ok = 0;
    else if (ch == (unsigned char)NPY_MAGIC[0]) {
        char m5[5];
        if (fread(m5, 1, 5, in) != 5 || memcmp(m5, NPY_MAGIC + 1, 5)) ok = seterr(err, sizeof err, "record 1: bad .npy magic");
        else ok = read_records(&r, &o, in, err, sizeof err);
    } else {
        ungetc(ch, in);
        ok = read_text(&r, &o, in, err, sizeof err);
    }
    if (ok < 0) {
        if (r.feed_failed) fprintf(stderr, "%s: %s\n", prog, err);
        else fprintf(stderr, "%s: %s: %s\n", prog, inname, err);
        err[0] = 0;
    } else if (flush(&r, &o, err, sizeof err) < 0 || fflush(stdout) == EOF || ferror(stdout)) {
        snprintf(err, sizeof err, "stdout: %s", strerror(errno));
    } else {
        rc = EXIT_OK; /* every sequence was committed as it was fed */
    }
    if (rc == EXIT_OK && o.verbose)
        fprintf(stderr, "%s: %zu positions computed in %.3f s (%.1f tokens/s), %zu reused from the store, "
                "session %s now %zu positions\n", prog, r.fed, r.secs, r.secs > 0 ? (double)r.fed / r.secs : 0.0,
                r.reused, o.session, r.s.kv.n);
    sess_close(&r.s);
done_store:
    kvs_close(st);
done_ctx:
    r.b->close(r.ctx);
done_model:
    model_close(r.m);
done:
    if (rc != EXIT_OK && err[0]) fprintf(stderr, "%s: %s\n", prog, err);
    free(r.x);
    free(r.logits);
    if (in != stdin) fclose(in);
    return rc;
}
