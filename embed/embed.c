/* embed: token ids -> embeddings, as .npy records.
 *
 * For each input sequence (a line of ids, or an int32 .npy record) it writes two records:
 * the ids (int32, (n,)) and their embedding rows (f32, (n, dim)), so that `prefill` can
 * record in the session which tokens it holds; --no-ids writes the embeddings alone.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ids.h"
#include "model.h"
#include "quant.h"
#include "npy.h"
#include "util.h"

static const char *prog = "embed";

static const char usage[] =
    "usage: embed [-m DIR] [--no-ids] [FILE]\n"
    "Look up the embedding rows of token ids (text lines or int32 .npy records; stdin when\n"
    "FILE is absent or '-'). Writes, per sequence, an int32 .npy record of the ids and an f32\n"
    ".npy record (n, hidden_size) of their embeddings.\n"
    "\n"
    "  -m, --model DIR   Qwen3 model: a Hugging Face, MLX, torchao, msModelSlim or ax-llm\n"
    "                    directory, or a .gguf file; default $QWEN_MODEL, else the built-in tiny model\n"
    "      --no-ids      write only the embeddings record\n"
    "      --quant SCHEME  weights as none (the checkpoint's), bf16, q8, q4, q4g128, 8da4w or 8da8w,\n"
    "                      or bf16a (bf16 with x rounded to bf16 too: llama.cpp's BF16 arithmetic);\n"
    "                      quantized once into a cache file that every later run maps\n"
    "  -h, --help        this help\n";

int main(int argc, char **argv) {
    const char *dir = NULL, *quant = "none";
    int no_ids = 0;
    enum { O_NOIDS = 256, O_QUANT };
    static const struct option lo[] = {{"model", required_argument, 0, 'm'},
                                       {"no-ids", no_argument, 0, O_NOIDS},
        {"quant", required_argument, 0, O_QUANT},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "m:h", lo, NULL)) != -1) {
        switch (c) {
        case 'm': dir = optarg; break;
        case O_NOIDS: no_ids = 1; break;
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
    if (argc - optind > 1) {
        fprintf(stderr, "%s: one input file at most\n%s", prog, usage);
        return EXIT_USAGE;
    }
    dir = model_dir(dir);
    const char *inname;
    char err[512];
    FILE *in = open_input(optind < argc ? argv[optind] : NULL, &inname, err, sizeof err);
    if (!in) {
        fprintf(stderr, "%s: %s\n", prog, err);
        return EXIT_DATA;
    }
    model *m = model_open_q(dir, quant, isatty(2) ? progress_bar : NULL, stderr, err, sizeof err);
    if (!m) {
        fprintf(stderr, "%s: %s\n", prog, err);
        return EXIT_DATA;
    }
    size_t dim = (size_t)m->cfg.dim;
    ids_reader r;
    ids_open(&r, in);
    int32_t *ids = NULL;
    size_t n = 0, cap = 0, rows_cap = 0;
    float *rows = NULL;
    int rc = EXIT_OK, got;
    while ((got = ids_next(&r, &ids, &n, &cap, (size_t)m->cfg.vocab_size, err, sizeof err)) > 0) {
        if (n > rows_cap) {
            free(rows);
            rows_cap = n;
            if (!(rows = malloc(n * dim * sizeof *rows))) {
                fprintf(stderr, "%s: out of memory for %zu embeddings\n", prog, n);
                rc = EXIT_DATA;
                break;
            }
        }
        size_t shape[2] = {n, dim};
        if (model_embed(m, ids, n, rows, err, sizeof err) < 0 ||
            (!no_ids && npy_write(stdout, NPY_I32, 1, shape, ids, err, sizeof err) < 0) ||
            npy_write(stdout, NPY_F32, 2, shape, rows, err, sizeof err) < 0 || fflush(stdout) == EOF) {
            fprintf(stderr, "%s: %s\n", prog, err);
            rc = EXIT_DATA;
            break;
        }
    }
    if (got < 0) {
        fprintf(stderr, "%s: %s: %s\n", prog, inname, err);
        rc = EXIT_DATA;
    }
    ids_close(&r);
    free(ids);
    free(rows);
    model_close(m);
    if (in != stdin) fclose(in);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "%s: stdout: %s\n", prog, strerror(errno));
        return EXIT_DATA;
    }
    return rc;
}
