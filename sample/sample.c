/* sample: logits -> next token id, one id per record.
 *
 * Reads float32 .npy records (shape (vocab) or (n, vocab): the last row is the next
 * position's logits) from FILE or stdin and writes one chosen id per record as a text
 * line, flushed at once. `decode` runs it as a coprocess, writing a record and reading
 * the id back step by step, so a record is answered as soon as it is whole. Each chosen
 * id counts as generated for the penalties of the records after it.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "ids.h"
#include "npy.h"
#include "sample.h"
#include "util.h"

static const char *prog = "sample";

static const char usage[] =
    "usage: sample [options] [FILE]\n"
    "Choose the next token from each float32 .npy logits record of FILE (stdin when absent or\n"
    "'-'), shape (vocab) or (n, vocab) (the last row), and print its id on a line of its own.\n"
    "Sampling follows Hugging Face transformers: repetition penalty, presence/frequency\n"
    "penalties, temperature, top-k, top-p, min-p. Defaults are Qwen3's (thinking mode).\n"
    "\n"
    SAMPLE_FLAGS_HELP
    "      --history FILE    ids the sequence already holds (a token stream: text lines or\n"
    "                        int32 .npy), counted for the repetition penalty\n"
    "  -h, --help            this help\n";

/* Read every id of the --history token stream into *ids. */
static int read_history(const char *path, int32_t **ids, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
        return -1;
    }
    ids_reader r;
    ids_open(&r, f);
    int32_t *seq = NULL;
    size_t len = 0, cap = 0, icap = 0;
    char err[512];
    int got;
    while ((got = ids_next(&r, &seq, &len, &cap, 0, err, sizeof err)) > 0) {
        if (*n + len > icap) {
            icap = (*n + len) * 2;
            int32_t *p = realloc(*ids, icap * sizeof *p);
            if (!p) {
                got = -1;
                snprintf(err, sizeof err, "out of memory");
                break;
            }
            *ids = p;
        }
        memcpy(*ids + *n, seq, len * sizeof *seq);
        *n += len;
    }
    if (got < 0) fprintf(stderr, "%s: %s: %s\n", prog, path, err);
    ids_close(&r);
    free(seq);
    fclose(f);
    return got < 0 ? -1 : 0;
}

static int run(const sample_opts *o, FILE *in, const char *inname, const int32_t *hist, size_t n_hist,
               const char *hist_name) {
    npy rec = {0};
    sampler *s = NULL;
    size_t vocab = 0, recno = 0;
    char err[512];
    int rc = EXIT_OK, got;
    while ((got = npy_read(in, &rec, 0, err, sizeof err)) > 0) {
        recno++;
        if (rec.dtype != NPY_F32 || rec.ndim < 1 || rec.ndim > 2 || rec.count == 0) {
            static const char *names[] = {"int32", "float32", "float16", "bfloat16"};
            fprintf(stderr, "%s: %s: record %zu: want float32 logits of shape (vocab) or (n, vocab), got %s of %d dims%s\n",
                    prog, inname, recno, names[rec.dtype], rec.ndim, rec.count ? "" : " and no elements");
            rc = EXIT_DATA;
            break;
        }
        size_t v = rec.shape[rec.ndim - 1];
        if (!s) {
            vocab = v;
            if (!(s = sampler_new(o, vocab))) {
                fprintf(stderr, "%s: out of memory for a vocabulary of %zu\n", prog, vocab);
                rc = EXIT_DATA;
                break;
            }
            for (size_t i = 0; i < n_hist; i++)
                if ((size_t)hist[i] >= vocab) {
                    fprintf(stderr, "%s: %s: id %d out of range [0, %zu)\n", prog, hist_name, hist[i], vocab);
                    rc = EXIT_DATA;
                    goto done;
                }
            sampler_seen(s, hist, n_hist, 0);
        } else if (v != vocab) {
            fprintf(stderr, "%s: %s: record %zu: vocab %zu, but earlier records had %zu\n", prog, inname, recno,
                    v, vocab);
            rc = EXIT_DATA;
            break;
        }
        float *row = (float *)rec.data + (rec.count - vocab);
        if (printf("%d\n", sampler_next(s, row)) < 0 || fflush(stdout) == EOF) {
            fprintf(stderr, "%s: stdout: %s\n", prog, strerror(errno));
            rc = EXIT_DATA;
            break;
        }
    }
    if (got < 0) {
        fprintf(stderr, "%s: %s: record %zu: %s\n", prog, inname, recno + 1, err);
        rc = EXIT_DATA;
    }
done:
    sampler_free(s);
    npy_free(&rec);
    return rc;
}

int main(int argc, char **argv) {
    enum { O_HIST = 256, O_SAMPLE_BASE = 512 };
    struct option lo[32] = {{"history", required_argument, 0, O_HIST}, {"help", no_argument, 0, 'h'}};
    size_t nlo = 2;
    for (size_t i = 0; sample_flags[i].name; i++, nlo++)
        lo[nlo] = (struct option){sample_flags[i].name, sample_flags[i].has_arg ? required_argument : no_argument,
                                  0, O_SAMPLE_BASE + (int)i};
    lo[nlo] = (struct option){0, 0, 0, 0};
    /* --no-think picks the defaults the other flags then override, wherever it stands */
    int no_think = 0, c;
    for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
        if (!strcmp(argv[i], "--no-think")) no_think = 1;
    sample_opts o;
    sample_defaults(&o, no_think);
    const char *hist_path = NULL;
    char err[512];
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        if (c >= O_SAMPLE_BASE) {
            if (sample_flag(&o, &sample_flags[c - O_SAMPLE_BASE], optarg, err, sizeof err) < 0) {
                fprintf(stderr, "%s: %s\n", prog, err);
                return EXIT_USAGE;
            }
        } else if (c == O_HIST) {
            hist_path = optarg;
        } else if (c == 'h') {
            fputs(usage, stdout);
            return EXIT_OK;
        } else {
            fputs(usage, stderr);
            return EXIT_USAGE;
        }
    }
    if (argc - optind > 1) {
        fprintf(stderr, "%s: one input file at most\n%s", prog, usage);
        return EXIT_USAGE;
    }
    const char *inname;
    FILE *in = open_input(optind < argc ? argv[optind] : NULL, &inname, err, sizeof err);
    if (!in) {
        fprintf(stderr, "%s: %s\n", prog, err);
        return EXIT_DATA;
    }
    int32_t *hist = NULL;
    size_t n_hist = 0;
    int rc = EXIT_DATA;
    if (!hist_path || read_history(hist_path, &hist, &n_hist) == 0)
        rc = run(&o, in, inname, hist, n_hist, hist_path);
    free(hist);
    if (in != stdin) fclose(in);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "%s: stdout: %s\n", prog, strerror(errno));
        return EXIT_DATA;
    }
    return rc;
}
