/* tok: text -> token ids with the Qwen3 tokenizer (exact to HF tokenizers).
 *
 *   tok -m DIR [TEXT...]        each TEXT (or all of stdin) -> one line of ids
 *   tok -m DIR --chat "hi"      rendered with the Qwen3 chat template first
 *   tok -m DIR --jsonl          {"text"} / {"messages",...} per line -> {"ids"[,"text"]}
 *   tok -m DIR --serve PORT     Axera's tokenizer HTTP service, natively
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "ids.h"
#include "jsonl.h"
#include "npy.h"
#include "serve.h"
#include "tok.h"
#include "utf8.h"
#include "util.h"

static const char *prog = "tok";

static const char usage[] =
    "usage: tok [-m DIR] [options] [TEXT...]\n"
    "Encode text into Qwen3 token ids, exactly as Hugging Face tokenizers does.\n"
    "Each TEXT argument gives one line of ids; with none, all of stdin (or -f FILE) is one text.\n"
    "\n"
    "  -m, --model DIR     model/tokenizer directory (tokenizer.json) or .gguf; default $QWEN_MODEL,\n"
    "                      else the built-in tiny model (same tokenizer as every Qwen3)\n"
    "  -f, --file FILE     read the text from FILE ('-' = stdin)\n"
    "      --npy           write int32 .npy records instead of text lines\n"
    "      --lossy         replace invalid UTF-8 with U+FFFD (default: refuse it, naming the byte)\n"
    "  -c, --chat          render the text as one user message with the chat template\n"
    "      --system TEXT   system message (with --chat); with --serve the default system prompt\n"
    "      --no-think      enable_thinking=false: an empty think block (with --chat)\n"
    "      --no-gen-prompt leave out the assistant turn opener (with --chat)\n"
    "      --jsonl         batch: one JSON object per input line, one per output line:\n"
    "                        {\"text\": ...} -> {\"ids\": [...]}\n"
    "                        {\"messages\": [...], \"tools\": [...], \"add_generation_prompt\": true,\n"
    "                         \"enable_thinking\": false} -> {\"ids\": [...], \"text\": \"<rendered>\"}\n"
    "                      a bad line gives {\"error\": ..., \"line\": N}; the exit status is 1 if any did\n"
    "      --serve [ADDR:]PORT  serve Axera's tokenizer HTTP protocol (qwen3_tokenizer_uid.py)\n"
    "                      on ADDR (default 127.0.0.1) until SIGINT/SIGTERM\n"
    "  -h, --help          this help\n";

typedef struct {
    const char *model, *file, *system, *serve;
    int npy, lossy, chat, no_think, no_gen, jsonl;
} opts;

static void die_usage(const char *fmt, const char *arg) {
    fprintf(stderr, "%s: ", prog);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n%s", usage);
    exit(EXIT_USAGE);
}

/* Write ids in the chosen stream format. */
static int emit(const opts *o, const int32_t *ids, size_t n) {
    char err[256];
    if (!o->npy) return ids_write_text(stdout, ids, n);
    size_t shape[1] = {n};
    return npy_write(stdout, NPY_I32, 1, shape, ids, err, sizeof err);
}

/* Chat request for plain text: an optional system message and one user message. */
static cJSON *plain_messages(const opts *o, const char *text) {
    cJSON *m = cJSON_CreateArray(), *msg;
    if (o->system) {
        msg = cJSON_CreateObject();
        cJSON_AddStringToObject(msg, "role", "system");
        cJSON_AddStringToObject(msg, "content", o->system);
        cJSON_AddItemToArray(m, msg);
    }
    msg = cJSON_CreateObject();
    cJSON_AddStringToObject(msg, "role", "user");
    cJSON_AddStringToObject(msg, "content", text);
    cJSON_AddItemToArray(m, msg);
    return m;
}

/* Encode one text (plain or chat) and write its line/record. Returns 0 or -1 (err set). */
static int encode_one(const opts *o, const tok *t, const char *text, size_t len, const char *what,
                      char *err, size_t errlen) {
    static int32_t *ids;
    static size_t cap;
    size_t n = 0;
    buf fixed = {0}, rendered = {0};
    int rc = -1;
    size_t bad = utf8_check((const uint8_t *)text, len);
    if (bad < len) {
        if (!o->lossy) {
            seterr(err, errlen, "%s: invalid UTF-8 at byte %zu (use --lossy to replace it)", what, bad);
            goto out;
        }
        if (utf8_lossy((const uint8_t *)text, len, 1, &fixed) == (size_t)-1) goto oom;
        text = fixed.data, len = fixed.len;
    }
    if (o->chat) {
        if (memchr(text, 0, len)) {
            seterr(err, errlen, "%s: NUL byte in a chat message", what);
            goto out;
        }
        cJSON *m = plain_messages(o, text);
        chat_req r = {m, NULL, !o->no_gen, o->no_think ? 0 : -1};
        int ok = chat_render_qwen3(&r, &rendered, err, errlen);
        cJSON_Delete(m);
        if (ok < 0) goto out;
        text = rendered.data, len = rendered.len;
    }
    if (tok_encode(t, text, len, &ids, &n, &cap, err, errlen) < 0) goto out;
    if (emit(o, ids, n) < 0) {
        seterr(err, errlen, "stdout: %s", strerror(errno));
        goto out;
    }
    rc = 0;
    goto out;
oom:
    seterr(err, errlen, "%s: out of memory", what);
out:
    buf_free(&fixed);
    buf_free(&rendered);
    return rc;
}

/* One --jsonl line into out (a JSON object, no newline). Returns 0, or -1 with err. */
/* --jsonl: one line in, one object out (called by jsonl_run, lib/jsonl.h). */
typedef struct {
    const opts *o;
    const tok *t;
} batch;

static int jsonl_one(void *ctx, const char *line, size_t len, buf *out, char *err, size_t errlen) {
    const opts *o = ((const batch *)ctx)->o;
    const tok *t = ((const batch *)ctx)->t;
    static int32_t *ids;
    static size_t cap;
    static buf text, rendered;
    size_t n = 0;
    jsonl_doc d;
    if (jsonl_parse(line, len, &d, err, errlen) < 0) return -1;
    int rc = -1;
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(d.root, "messages");
    const cJSON *txt = cJSON_GetObjectItemCaseSensitive(d.root, "text");
    if (!cJSON_IsObject(d.root)) {
        seterr(err, errlen, "not a JSON object");
    } else if (msgs || (o->chat && txt)) {
        cJSON *own = NULL;
        if (!msgs) {
            if (jsonl_str(&d, txt, &text, err, errlen) < 0) goto done;
            msgs = own = plain_messages(o, text.data);
        }
        const cJSON *tools = cJSON_GetObjectItemCaseSensitive(d.root, "tools");
        const cJSON *agp = cJSON_GetObjectItemCaseSensitive(d.root, "add_generation_prompt");
        const cJSON *et = cJSON_GetObjectItemCaseSensitive(d.root, "enable_thinking");
        chat_req r = {msgs, cJSON_IsNull(tools) ? NULL : tools, own ? !o->no_gen : cJSON_IsTrue(agp),
                      et && !cJSON_IsNull(et) ? cJSON_IsTrue(et) : (own && o->no_think ? 0 : -1)};
        rendered.len = 0;
        int ok = chat_render_qwen3(&r, &rendered, err, errlen);
        cJSON_Delete(own);
        if (ok < 0 || tok_encode(t, rendered.data, rendered.len, &ids, &n, &cap, err, errlen) < 0) goto done;
        buf_append(out, "{\"ids\": [", 9);
        for (size_t i = 0; i < n; i++) buf_printf(out, i ? ", %d" : "%d", ids[i]);
        buf_append(out, "], \"text\": ", 11);
        json_put_str(out, rendered.data, rendered.len);
        buf_putc(out, '}');
        rc = 0;
    } else if (txt) {
        char why[256];
        if (jsonl_str(&d, txt, &text, why, sizeof why) < 0) {
            seterr(err, errlen, "\"text\": %s", why);
            goto done;
        }
        if (tok_encode(t, text.data, text.len, &ids, &n, &cap, err, errlen) < 0) goto done;
        buf_append(out, "{\"ids\": [", 9);
        for (size_t i = 0; i < n; i++) buf_printf(out, i ? ", %d" : "%d", ids[i]);
        buf_append(out, "]}", 2);
        rc = 0;
    } else {
        seterr(err, errlen, "want an object with \"text\" or \"messages\"");
    }
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

static volatile sig_atomic_t stop_flag;
static void on_signal(int sig) {
    (void)sig;
    stop_flag = 1;
}

static int run_serve(const opts *o, const tok *t) {
    serve_opts so = {"127.0.0.1", 0, 1 << 20, 3600, 1024, o->system};
    char addr[256], err[512];
    const char *colon = strrchr(o->serve, ':');
    const char *port = o->serve;
    if (colon) {
        size_t al = (size_t)(colon - o->serve);
        if (al == 0 || al >= sizeof addr) die_usage("--serve: bad address in '%s'", o->serve);
        memcpy(addr, o->serve, al);
        addr[al] = 0;
        so.addr = addr;
        port = colon + 1;
    }
    char *end;
    long p = strtol(port, &end, 10);
    if (*port == 0 || *end || p < 1 || p > 65535) die_usage("--serve: port must be 1..65535, not '%s'", port);
    so.port = (int)p;
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if (serve_run(t, &so, &stop_flag, err, sizeof err) < 0) {
        fprintf(stderr, "%s: serve: %s\n", prog, err);
        return EXIT_DATA;
    }
    return EXIT_OK;
}

int main(int argc, char **argv) {
    opts o = {0};
    enum { O_NPY = 256, O_LOSSY, O_SYSTEM, O_NOTHINK, O_NOGEN, O_JSONL, O_SERVE };
    static const struct option lo[] = {
        {"model", required_argument, 0, 'm'},   {"file", required_argument, 0, 'f'},
        {"npy", no_argument, 0, O_NPY},         {"lossy", no_argument, 0, O_LOSSY},
        {"chat", no_argument, 0, 'c'},          {"system", required_argument, 0, O_SYSTEM},
        {"no-think", no_argument, 0, O_NOTHINK}, {"no-gen-prompt", no_argument, 0, O_NOGEN},
        {"jsonl", no_argument, 0, O_JSONL},     {"serve", required_argument, 0, O_SERVE},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "m:f:ch", lo, NULL)) != -1) {
        switch (c) {
        case 'm': o.model = optarg; break;
        case 'f': o.file = optarg; break;
        case 'c': o.chat = 1; break;
        case O_NPY: o.npy = 1; break;
        case O_LOSSY: o.lossy = 1; break;
        case O_SYSTEM: o.system = optarg; break;
        case O_NOTHINK: o.no_think = 1; break;
        case O_NOGEN: o.no_gen = 1; break;
        case O_JSONL: o.jsonl = 1; break;
        case O_SERVE: o.serve = optarg; break;
        case 'h': fputs(usage, stdout); return EXIT_OK;
        default: fputs(usage, stderr); return EXIT_USAGE;
        }
    }
    o.model = model_dir(o.model);
    if (o.jsonl && o.npy) die_usage("%s", "--jsonl and --npy do not go together");
    if ((o.system || o.no_think || o.no_gen) && !o.chat && !o.jsonl && !o.serve)
        die_usage("%s", "--system, --no-think and --no-gen-prompt go with --chat");
    if (optind < argc && (o.file || o.jsonl || o.serve))
        die_usage("%s", "TEXT arguments do not go with -f, --jsonl or --serve");

    char err[512];
    tok *t = tok_load(o.model, err, sizeof err);
    if (!t) {
        fprintf(stderr, "%s: %s\n", prog, err);
        return EXIT_DATA;
    }
    int rc = EXIT_OK;
    FILE *in = stdin;
    const char *inname = "stdin";
    if (o.file && strcmp(o.file, "-")) {
        in = fopen(o.file, "rb");
        inname = o.file;
        if (!in) {
            fprintf(stderr, "%s: %s: %s\n", prog, o.file, strerror(errno));
            tok_free(t);
            return EXIT_DATA;
        }
    }
    if (o.serve) {
        rc = run_serve(&o, t);
    } else if (o.jsonl) {
        rc = run_jsonl(&o, t, in);
    } else if (optind < argc) {
        for (int i = optind; i < argc && rc == EXIT_OK; i++) {
            char what[32];
            snprintf(what, sizeof what, "argument %d", i - optind + 1);
            if (encode_one(&o, t, argv[i], strlen(argv[i]), what, err, sizeof err) < 0) {
                fprintf(stderr, "%s: %s\n", prog, err);
                rc = EXIT_DATA;
            }
        }
    } else {
        char *text = NULL;
        size_t len;
        if (read_all(in, &text, &len, err, sizeof err) < 0 ||
            encode_one(&o, t, text, len, inname, err, sizeof err) < 0) {
            fprintf(stderr, "%s: %s\n", prog, err);
            rc = EXIT_DATA;
        }
        free(text);
    }
    if (in != stdin) fclose(in);
    tok_free(t);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "%s: stdout: %s\n", prog, strerror(errno));
        return EXIT_DATA;
    }
    return rc;
}
