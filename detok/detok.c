/* detok: token ids -> UTF-8 text, streaming.
 *
 * Reads a token stream (text lines or int32 .npy records), writes the text of every id
 * as soon as it forms complete characters, and holds back an incomplete UTF-8 sequence
 * until the ids that finish it arrive; output is flushed at the end of each input line,
 * so `decode | detok` prints as the model generates. Bytes that can never become valid
 * UTF-8 come out as U+FFFD, one per maximal invalid subpart, as HF decode does.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "ids.h"
#include "jsonl.h"
#include "tok.h"
#include "utf8.h"
#include "util.h"

static const char *prog = "detok";

static const char usage[] =
    "usage: detok [-m DIR] [options] [FILE]\n"
    "Decode Qwen3 token ids (text lines or int32 .npy records; stdin when FILE is absent or '-')\n"
    "into UTF-8 text, printing each character as soon as its ids have arrived.\n"
    "\n"
    "  -m, --model DIR     model/tokenizer directory (tokenizer.json) or .gguf; default $QWEN_MODEL,\n"
    "                      else the built-in tiny model (same tokenizer as every Qwen3)\n"
    "  -s, --skip-special  drop special tokens (<|im_start|>, <|im_end|>, <|endoftext|>, ...)\n"
    "  -l, --lines         one text line per input line (newline-terminated; each line complete)\n"
    "      --jsonl         batch: {\"ids\": [...]} per input line -> {\"text\": ...} per output line;\n"
    "                      a bad line gives {\"error\": ..., \"line\": N}; the exit status is 1 if any did\n"
    "  -h, --help          this help\n";

typedef struct {
    int skip_special, lines, jsonl;
} opts;

/* Append the bytes of ids to pending (special ones dropped if asked). */
static int gather(const opts *o, const tok *t, const int32_t *ids, size_t n, buf *pending) {
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *b = tok_bytes(t, ids[i], &len);
        if (!b) return -1;
        if (o->skip_special && tok_is_special(t, ids[i])) continue;
        if (buf_append(pending, b, len) < 0) return -1;
    }
    return 0;
}

/* Write what pending holds as text; keep an incomplete tail unless final. */
static int drain(buf *pending, int final, buf *text) {
    text->len = 0;
    size_t used = utf8_lossy((const uint8_t *)pending->data, pending->len, final, text);
    if (used == (size_t)-1) return -1;
    if (used < pending->len) memmove(pending->data, pending->data + used, pending->len - used);
    pending->len -= used;
    if (text->len && fwrite(text->data, 1, text->len, stdout) != text->len) return -1;
    return 0;
}

static int run_stream(const opts *o, const tok *t, FILE *in, const char *inname) {
    ids_reader r;
    ids_open(&r, in);
    int32_t *ids = NULL;
    size_t n = 0, cap = 0;
    buf pending = {0}, text = {0};
    char err[512];
    int rc = EXIT_OK, got;
    while ((got = ids_next(&r, &ids, &n, &cap, tok_vocab_size(t), err, sizeof err)) > 0) {
        if (gather(o, t, ids, n, &pending) < 0 || drain(&pending, o->lines, &text) < 0 ||
            (o->lines && putchar('\n') == EOF) || fflush(stdout) == EOF) {
            fprintf(stderr, "%s: stdout: %s\n", prog, strerror(errno));
            rc = EXIT_DATA;
            break;
        }
    }
    if (got < 0) {
        fprintf(stderr, "%s: %s: %s\n", prog, inname, err);
        rc = EXIT_DATA;
    }
    if (drain(&pending, 1, &text) < 0) rc = EXIT_DATA;
    ids_close(&r);
    free(ids);
    buf_free(&pending);
    buf_free(&text);
    return rc;
}

/* One --jsonl line: {"ids": [...]} -> {"text": ...} into out. */
/* --jsonl: one line in, one object out (called by jsonl_run, lib/jsonl.h). */
typedef struct {
    const opts *o;
    const tok *t;
} batch;

static int jsonl_one(void *ctx, const char *line, size_t len, buf *out, char *err, size_t errlen) {
    const opts *o = ((const batch *)ctx)->o;
    const tok *t = ((const batch *)ctx)->t;
    static buf pending, text;
    static int32_t *ids;
    static size_t cap;
    jsonl_doc d;
    if (jsonl_parse(line, len, &d, err, errlen) < 0) return -1;
    int rc = -1;
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(d.root, "ids"), *v;
    size_t n = 0, vocab = tok_vocab_size(t);
    if (!cJSON_IsArray(a)) {
        seterr(err, errlen, "want an object with \"ids\": [...]");
        goto done;
    }
    cJSON_ArrayForEach(v, a) {
        double x = cJSON_IsNumber(v) ? v->valuedouble : -1;
        if (x < 0 || x >= (double)vocab || x != (double)(int32_t)x) {
            seterr(err, errlen, "id %zu: not a token id in [0, %zu)", n, vocab);
            goto done;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            int32_t *p = realloc(ids, cap * sizeof *p);
            if (!p) goto done;
            ids = p;
        }
        ids[n++] = (int32_t)x;
    }
    pending.len = text.len = 0;
    if (gather(o, t, ids, n, &pending) < 0 ||
        utf8_lossy((const uint8_t *)pending.data, pending.len, 1, &text) == (size_t)-1) {
        seterr(err, errlen, "out of memory");
        goto done;
    }
    buf_append(out, "{\"text\": ", 9);
    json_put_str(out, text.data, text.len);
    buf_putc(out, '}');
    rc = 0;
done:
    jsonl_free(&d);
    return rc;
}

static void batch_report(void *ctx, const char *msg) {
    (void)ctx;
    fprintf(stderr, "%s: %s\n", prog, msg);
}

static int run_jsonl(const opts *o, const tok *t, FILE *in) {
    batch b = {o, t};
    return jsonl_run(in, stdout, jsonl_one, batch_report, &b) == 0 ? EXIT_OK : EXIT_DATA;
}

int main(int argc, char **argv) {
    opts o = {0};
    const char *model = NULL;
    enum { O_JSONL = 256 };
    static const struct option lo[] = {{"model", required_argument, 0, 'm'},
                                       {"skip-special", no_argument, 0, 's'},
                                       {"lines", no_argument, 0, 'l'},
                                       {"jsonl", no_argument, 0, O_JSONL},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "m:slh", lo, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 's': o.skip_special = 1; break;
        case 'l': o.lines = 1; break;
        case O_JSONL: o.jsonl = 1; break;
        case 'h': fputs(usage, stdout); return EXIT_OK;
        default: fputs(usage, stderr); return EXIT_USAGE;
        }
    }
    model = model_dir(model);
    if (argc - optind > 1) {
        fprintf(stderr, "%s: one input file at most\n%s", prog, usage);
        return EXIT_USAGE;
    }
    const char *inname;
    char err[512];
    FILE *in = open_input(optind < argc ? argv[optind] : NULL, &inname, err, sizeof err);
    if (!in) {
        fprintf(stderr, "%s: %s\n", prog, err);
        return EXIT_DATA;
    }
    tok *t = tok_load(model, err, sizeof err);
    if (!t) {
        fprintf(stderr, "%s: %s\n", prog, err);
        return EXIT_DATA;
    }
    int rc = o.jsonl ? run_jsonl(&o, t, in) : run_stream(&o, t, in, inname);
    if (in != stdin) fclose(in);
    tok_free(t);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "%s: stdout: %s\n", prog, strerror(errno));
        return EXIT_DATA;
    }
    return rc;
}
