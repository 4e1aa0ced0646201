/* decode: generate from a session, one token at a time.
 *
 * Each step takes the next token from a sampler, writes it (one id per line, flushed, so
 * `detok` prints text as it comes), and runs it through the model, appending its K/V to
 * the session. The sampler is in-process (lib/sample.c, the same code and flags as the
 * `sample` program) unless --sampler CMD names a program that speaks the same streams: it
 * gets a logits .npy record on its stdin per step and answers one id line on its stdout.
 * Ids on stdin (e.g. from `sample` after `prefill`) are taken as the first tokens; with
 * none, generation starts from the session's last position (its final hidden state, kept
 * in the store, through lm_head). Generation stops on <|im_end|> or <|endoftext|> (not
 * written, not fed), a --stop id, or after -n tokens. Every token is committed to the KV
 * store as it is fed, so a kill at any moment loses at most the token being computed.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend.h"
#include "ids.h"
#include "model.h"
#include "quant.h"
#include "npy.h"
#include "sample.h"
#include "kvs.h"
#include "util.h"

static const char *prog = "decode";

static const char usage[] =
    "usage: decode [-m DIR] -k SESSION [options]\n"
    "Generate tokens from SESSION, writing one id per line as each is chosen. Ids on stdin\n"
    "(e.g. from `sample`) are the first tokens; with none, continue from the session's end.\n"
    "\n"
    "  -m, --model DIR       Qwen3 model: a Hugging Face, MLX, torchao, msModelSlim or ax-llm\n"
    "                        directory, or a .gguf file; default $QWEN_MODEL, else the built-in tiny model\n"
    "  -k, --session NAME    the session to continue (required; each token is committed)\n"
    "      --store DIR       the KV store (default $QWEN_KVSTORE, else ~/.cache/qwen3-pipe/kv)\n"
    "      --key FILE        encryption key of the store (32 bytes, or 64 hex digits)\n"
    "  -n, --max-tokens N    stop after N tokens (default 512)\n"
    "      --stop ID[,ID..]  more ids that end generation (<|im_end|> and <|endoftext|> always do)\n"
    "      --sampler CMD     choose tokens with CMD (run by /bin/sh): it reads a logits .npy\n"
    "                        record per step on stdin and answers one id line on stdout\n"
    "  -t, --threads N       threads (default: one per core)\n"
    "      --quant SCHEME    weights as none (the checkpoint's), bf16, q8, q4, q4g128, 8da4w or\n"
    "                        8da8w, or bf16a (bf16 with x rounded to bf16 too: llama.cpp's BF16\n"
    "                        arithmetic); quantized once into a cache file that every later run maps\n"
    "      --kv-type T       the K/V each step's attention reads: f32 or f16 (half the bytes;\n"
    "                        llama.cpp's default); default f16 with --quant bf16a, q8, q4,\n"
    "                        q4g128, 8da4w, 8da8w, else f32. The session stores f32 either way (cpu backend)\n"
    "  -v, --verbose         report tokens and speed on stderr\n"
    "      --backend NAME    where the layers run: cpu, ax650, ascend (default cpu; README: AX650, Ascend)\n"
    "In-process sampling (the same flags and defaults as `sample`):\n"
    SAMPLE_FLAGS_HELP
    "  -h, --help            this help\n";

enum { MAX_STOP = 64 };

typedef struct {
    const char *session, *sampler_cmd, *backend, *store, *key;
    long max_tokens;
    int threads, verbose, kv_type;
    int32_t stop[MAX_STOP];
    size_t n_stop;
    sample_opts so;
    int32_t *first; /* ids given on stdin */
    size_t n_first;
} opts;

static volatile sig_atomic_t stop_flag;
static void on_signal(int sig) {
    (void)sig;
    stop_flag = 1;
}

/* An external sampler: a child process with a pipe each way. */
typedef struct {
    pid_t pid;
    FILE *to, *from;
    char *line;
    size_t cap;
} coproc;

static int coproc_start(coproc *c, const char *cmd, char *err, size_t errlen) {
    int in[2], out[2];
    if (pipe(in) < 0 || pipe(out) < 0) return seterr(err, errlen, "--sampler: pipe: %s", strerror(errno));
    fflush(NULL);
    c->pid = fork();
    if (c->pid < 0) return seterr(err, errlen, "--sampler: fork: %s", strerror(errno));
    if (c->pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[0]), close(in[1]), close(out[0]), close(out[1]);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    c->to = fdopen(in[1], "wb");
    c->from = fdopen(out[0], "rb");
    if (!c->to || !c->from) return seterr(err, errlen, "--sampler: fdopen: %s", strerror(errno));
    return 0;
}

/* Send logits, read back one id. */
static int coproc_next(coproc *c, const float *logits, size_t vocab, int32_t *id, char *err, size_t errlen) {
    size_t shape[1] = {vocab};
    if (npy_write(c->to, NPY_F32, 1, shape, logits, err, errlen) < 0 || fflush(c->to) == EOF)
        return seterr(err, errlen, "--sampler: writing logits: %s", strerror(errno));
    ssize_t len = getline(&c->line, &c->cap, c->from);
    if (len < 0) return seterr(err, errlen, "--sampler: it ended without answering");
    char *end;
    long v = strtol(c->line, &end, 10);
    while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n') end++;
    if (end == c->line || *end || v < 0 || v >= (long)vocab)
        return seterr(err, errlen, "--sampler: answered '%.*s', not a token id in [0, %zu)",
                      (int)(len > 0 && c->line[len - 1] == '\n' ? len - 1 : len), c->line, vocab);
    *id = (int32_t)v;
    return 0;
}

static void coproc_end(coproc *c) {
    if (c->to) fclose(c->to);
    if (c->from) fclose(c->from);
    if (c->pid > 0) waitpid(c->pid, NULL, 0);
    free(c->line);
}

static int parse_stop(opts *o, const char *s) {
    char *end;
    while (*s) {
        long v = strtol(s, &end, 10);
        if (end == s || v < 0 || v > INT32_MAX || o->n_stop == MAX_STOP) return -1;
        o->stop[o->n_stop++] = (int32_t)v;
        s = end;
        if (*s == ',') s++;
        else if (*s) return -1;
    }
    return 0;
}

static int is_stop(const opts *o, int32_t id) {
    if (id == 151645 || id == 151643) return 1; /* <|im_end|>, <|endoftext|> */
    for (size_t i = 0; i < o->n_stop; i++)
        if (o->stop[i] == id) return 1;
    return 0;
}

/* Ids given on stdin (none when stdin is a terminal). */
static int read_first(int32_t **ids, size_t *n, size_t vocab, char *err, size_t errlen) {
    *n = 0;
    if (isatty(0)) return 0;
    ids_reader r;
    ids_open(&r, stdin);
    int32_t *seq = NULL;
    size_t k = 0, cap = 0, have = 0;
    int got;
    while ((got = ids_next(&r, &seq, &k, &cap, vocab, err, errlen)) > 0) {
        int32_t *p = realloc(*ids, (have + k + 1) * sizeof *p);
        if (!p) {
            got = seterr(err, errlen, "out of memory");
            break;
        }
        *ids = p;
        memcpy(*ids + have, seq, k * sizeof *seq);
        have += k;
    }
    ids_close(&r);
    free(seq);
    *n = have;
    return got < 0 ? -1 : 0;
}

static int generate(const opts *o, model *m, const backend *b, void *ctx, session *s, char *err,
                    size_t errlen) {
    size_t vocab = (size_t)m->cfg.vocab_size, dim = (size_t)m->cfg.dim;
    const int32_t *first = o->first;
    size_t n_first = o->n_first, next_first = 0;
    float *x = malloc(dim * sizeof *x), *logits = NULL;
    sampler *smp = NULL;
    coproc cp = {0};
    int rc = -1;
    if (!x) goto oom;
    if (n_first == 0 && !s->hidden) {
        seterr(err, errlen, "the session has no position to continue from and no token came on stdin "
                            "(run prefill first, or pipe a token in)");
        goto out;
    }
    if (!(logits = malloc(vocab * sizeof *logits))) goto oom;
    if (n_first == 0 && b->logits(ctx, s->hidden, 1, logits, err, errlen) < 0) goto out;
    if (o->sampler_cmd) {
        if (coproc_start(&cp, o->sampler_cmd, err, errlen) < 0) goto out;
    } else {
        if (!(smp = sampler_new(&o->so, vocab))) goto oom;
        for (size_t i = 0; i < s->kv.n; i++) /* the prompt, for the repetition penalty */
            if (s->tokens[i] >= 0) sampler_seen(smp, s->tokens + i, 1, 0);
    }
    long count;
    double t0 = now_sec();
    for (count = 0; count < o->max_tokens && !stop_flag; count++) {
        int32_t id;
        int given = next_first < n_first; /* chosen outside: the in-process sampler must be told */
        if (given) id = first[next_first++];
        else if (smp) id = sampler_next(smp, logits);
        else if (coproc_next(&cp, logits, vocab, &id, err, errlen) < 0) goto out;
        if (is_stop(o, id)) break;
        if (printf("%d\n", id) < 0 || fflush(stdout) == EOF) {
            seterr(err, errlen, "stdout: %s", strerror(errno));
            goto out;
        }
        if (smp && given) sampler_seen(smp, &id, 1, 1);
        if (model_embed(m, &id, 1, x, err, errlen) < 0 ||
            forward(b, ctx, m, x, 1, &s->kv, logits, 0, err, errlen) < 0 ||
            sess_push_tokens(s, &id, 1, err, errlen) < 0 || sess_set_hidden(s, x, err, errlen) < 0 ||
            sess_commit(s, err, errlen) < 0)
            goto out;
    }
    rc = 0;
    if (o->verbose) {
        double dt = now_sec() - t0;
        fprintf(stderr, "%s: %ld tokens in %.3f s (%.2f tokens/s), session now %zu positions\n", prog, count, dt,
                dt > 0 ? (double)count / dt : 0.0, s->kv.n);
    }
    goto out;
oom:
    seterr(err, errlen, "out of memory");
out:
    free(x);
    free(logits);
    sampler_free(smp);
    coproc_end(&cp);
    return rc;
}

int main(int argc, char **argv) {
    opts o = {.backend = "cpu", .max_tokens = 512};
    const char *dir = NULL, *quant = "none";
    int no_think = 0;
    enum { O_STOP = 256, O_SAMPLER, O_BACKEND, O_STORE, O_KEY, O_QUANT, O_KV_TYPE, O_SAMPLE_BASE = 512 };
    struct option lo[64] = {
        {"model", required_argument, 0, 'm'},       {"session", required_argument, 0, 'k'},
        {"max-tokens", required_argument, 0, 'n'},  {"stop", required_argument, 0, O_STOP},
        {"sampler", required_argument, 0, O_SAMPLER}, {"threads", required_argument, 0, 't'},
        {"backend", required_argument, 0, O_BACKEND}, {"help", no_argument, 0, 'h'},
        {"verbose", no_argument, 0, 'v'},           {"store", required_argument, 0, O_STORE},
        {"key", required_argument, 0, O_KEY},       {"quant", required_argument, 0, O_QUANT},
        {"kv-type", required_argument, 0, O_KV_TYPE}};
    size_t nlo = 13;
    for (size_t i = 0; sample_flags[i].name; i++, nlo++)
        lo[nlo] = (struct option){sample_flags[i].name, sample_flags[i].has_arg ? required_argument : no_argument,
                                  0, O_SAMPLE_BASE + (int)i};
    lo[nlo] = (struct option){0, 0, 0, 0};
    /* --no-think changes the defaults the other sampling flags start from: look first */
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--no-think")) no_think = 1;
    sample_defaults(&o.so, no_think);
    int c;
    char err[512];
    long v;
    while ((c = getopt_long(argc, argv, "m:k:n:t:vh", lo, NULL)) != -1) {
        switch (c) {
        case 'm': dir = optarg; break;
        case 'k': o.session = optarg; break;
        case 'n':
            if (parse_long(optarg, 1, LONG_MAX, &o.max_tokens) < 0) {
                fprintf(stderr, "%s: -n: want a positive token count, not '%s'\n", prog, optarg);
                return EXIT_USAGE;
            }
            break;
        case O_STOP:
            if (parse_stop(&o, optarg) < 0) {
                fprintf(stderr, "%s: --stop: want token ids separated by commas, not '%s'\n", prog, optarg);
                return EXIT_USAGE;
            }
            break;
        case O_SAMPLER: o.sampler_cmd = optarg; break;
        case 'v': o.verbose = 1; break;
        case O_STORE: o.store = optarg; break;
        case O_KEY: o.key = optarg; break;
        case O_QUANT:
            if (quant_scheme_find(optarg) < 0) {
                fprintf(stderr, "%s: --quant: '%s' is not one of: %s\n", prog, optarg, quant_names());
                return EXIT_USAGE;
            }
            quant = optarg;
            break;
        case O_KV_TYPE:
            if (strcmp(optarg, "f32") && strcmp(optarg, "f16")) {
                fprintf(stderr, "%s: --kv-type: want f32 or f16, not '%s'\n", prog, optarg);
                return EXIT_USAGE;
            }
            o.kv_type = strcmp(optarg, "f16") ? KV_READ_F32 : KV_READ_F16;
            break;
        case 't':
            if (parse_long(optarg, 1, 1024, &v) < 0) {
                fprintf(stderr, "%s: -t: want a thread count 1..1024, not '%s'\n", prog, optarg);
                return EXIT_USAGE;
            }
            o.threads = (int)v;
            break;
        case O_BACKEND: o.backend = optarg; break;
        case 'h': fputs(usage, stdout); return EXIT_OK;
        default:
            if (c >= O_SAMPLE_BASE) {
                if (sample_flag(&o.so, &sample_flags[c - O_SAMPLE_BASE], optarg, err, sizeof err) < 0) {
                    fprintf(stderr, "%s: %s\n", prog, err);
                    return EXIT_USAGE;
                }
                break;
            }
            fputs(usage, stderr);
            return EXIT_USAGE;
        }
    }
    if (!o.session || optind < argc) {
        fprintf(stderr, "%s: %s\n%s", prog, o.session ? "no arguments expected" : "-k SESSION is required", usage);
        return EXIT_USAGE;
    }
    const backend *b = backend_find(o.backend);
    if (!b) {
        fprintf(stderr, "%s: --backend: '%s' is not one of: %s\n", prog, o.backend, backend_names());
        return EXIT_USAGE;
    }
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    int rc = EXIT_DATA;
    session s;
    void *ctx = NULL;
    backend_opts bo = {.n_threads = o.threads, .max_batch = 1, .kv_type = o.kv_type};
    model *m = model_open_q(model_dir(dir), quant, isatty(2) ? progress_bar : NULL, stderr, err, sizeof err);
    if (!m) goto done;
    /* Read stdin before opening the session: in `prefill -k S | sample | decode -k S` the
     * token arrives only after prefill has saved S (see prefill.c). */
    kvs_store *st = NULL;
    if (read_first(&o.first, &o.n_first, (size_t)m->cfg.vocab_size, err, sizeof err) < 0) goto done_model;
    /* the backend before the session: one that cannot start must not leave a new, empty session */
    if (!(ctx = b->open(m, &bo, err, sizeof err))) goto done_model;
    if (!(st = kvs_open(o.store, o.key, err, sizeof err))) goto done_ctx;
    if (sess_open(st, o.session, m, &s, SESS_WRITE, err, sizeof err) < 0) goto done_store;
    /* each token is committed as it comes; its sync overlaps the next token's compute */
    if (sess_defer_sync(&s, err, sizeof err) == 0 && generate(&o, m, b, ctx, &s, err, sizeof err) == 0 &&
        sess_sync(&s, err, sizeof err) == 0)
        rc = EXIT_OK;
    sess_close(&s);
done_store:
    kvs_close(st);
done_ctx:
    b->close(ctx);
done_model:
    model_close(m);
done:
    if (rc != EXIT_OK) fprintf(stderr, "%s: %s\n", prog, err);
    free(o.first);
    return rc;
}
