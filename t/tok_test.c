/* tok_test: lib/tok.h against the reference (HF tokenizers 0.22.2) outputs.
 *
 *   tok_test MODEL_DIR FIXTURE.jsonl     every {"text", "ids"} line: ids exact, and
 *                                        decode(ids) == NFC(text); plus API spot checks
 *   tok_test -b MODEL_DIR FIXTURE.jsonl  speed: load times, and encoding the texts
 *                                        joined, one thread
 *   tok_test -l MODEL_DIR                load only (exit 1 with the error)
 *
 * Mismatches go to stderr with the line number (1-based) and where the ids diverge. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jsonl.h"
#include "tok.h"
#include "uni.h"
#include "util.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
    buf text;
    int32_t *ids;
    size_t n;
} doc;

/* Each line of path as (text, ids). */
static int read_docs(const char *path, doc **out, size_t *ndocs) {
    FILE *f = fopen(path, "rb");
    char *all, err[256];
    size_t len;
    if (!f || read_all(f, &all, &len, err, sizeof err) < 0) {
        fprintf(stderr, "tok_test: %s: cannot read\n", path);
        return -1;
    }
    fclose(f);
    size_t cap = 0, n = 0;
    doc *d = NULL;
    for (char *line = all, *nl; line < all + len; line = nl + 1) {
        nl = memchr(line, '\n', (size_t)(all + len - line));
        if (!nl) nl = all + len;
        jsonl_doc j;
        if (jsonl_parse(line, (size_t)(nl - line), &j, err, sizeof err) < 0) {
            fprintf(stderr, "tok_test: %s:%zu: %s\n", path, n + 1, err);
            return -1;
        }
        if (n == cap && !(d = realloc(d, (cap = cap ? 2 * cap : 4096) * sizeof *d))) return -1;
        doc *x = &d[n++];
        memset(x, 0, sizeof *x);
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(j.root, "ids"), *e;
        if (jsonl_str(&j, cJSON_GetObjectItemCaseSensitive(j.root, "text"), &x->text, err, sizeof err) < 0 ||
            !cJSON_IsArray(ids)) {
            fprintf(stderr, "tok_test: %s:%zu: no text or ids\n", path, n);
            return -1;
        }
        x->ids = malloc(sizeof(int32_t) * ((size_t)cJSON_GetArraySize(ids) + 1));
        cJSON_ArrayForEach(e, ids) x->ids[x->n++] = (int32_t)e->valueint;
        jsonl_free(&j);
    }
    free(all);
    *out = d;
    *ndocs = n;
    return 0;
}

static int fails;
#define CHECK(c)                                                                  \
    do {                                                                          \
        if (!(c)) fprintf(stderr, "tok_test: %s:%d: %s\n", __FILE__, __LINE__, #c), fails++; \
    } while (0)

/* The parts of tok.h the corpus does not reach. */
static void api_checks(tok *t) {
    CHECK(tok_vocab_size(t) == 151669);
    CHECK(tok_added_id(t, "<|im_end|>") == 151645);
    CHECK(tok_added_id(t, "<think>") == 151667);
    CHECK(tok_added_id(t, "<|IM_END|>") == -1);
    CHECK(tok_is_special(t, 151643) == 1 && tok_is_special(t, 151645) == 1);
    CHECK(tok_is_special(t, 151667) == 0 && tok_is_special(t, 151657) == 0 && tok_is_special(t, 9707) == 0);
    size_t len = 99;
    const char *b = tok_bytes(t, 188, &len);
    CHECK(b && len == 1 && b[0] == 0);
    b = tok_bytes(t, 151644, &len);
    CHECK(b && len == 12 && memcmp(b, "<|im_start|>", 12) == 0);
    CHECK(tok_bytes(t, 151669, &len) == NULL && tok_bytes(t, -1, &len) == NULL);
    int32_t *ids = NULL;
    size_t n = 0, cap = 0;
    char err[128] = "";
    CHECK(tok_encode(t, "ab\xC3(", 4, &ids, &n, &cap, err, sizeof err) == -1 && n == 0);
    CHECK(strstr(err, "byte 2") != NULL);
    CHECK(tok_encode(t, "", 0, &ids, &n, &cap, err, sizeof err) == 0 && n == 0);
    CHECK(tok_encode(t, "x<think>y", 9, &ids, &n, &cap, err, sizeof err) == 0 && n == 3 && ids[1] == 151667);
    free(ids);
}

static int check(tok *t, doc *d, size_t nd) {
    int32_t *ids = NULL;
    size_t cap = 0, ok = 0, shown = 0, nfccap = 0, nfcn;
    char *nfc = NULL, err[256];
    buf dec = {0};
    for (size_t i = 0; i < nd; i++) {
        size_t n = 0;
        if (tok_encode(t, d[i].text.data, d[i].text.len, &ids, &n, &cap, err, sizeof err) < 0) {
            fprintf(stderr, "tok_test: line %zu: %s\n", i + 1, err);
            continue;
        }
        size_t k = 0;
        while (k < n && k < d[i].n && ids[k] == d[i].ids[k]) k++;
        int same = k == n && n == d[i].n;
        dec.len = 0;
        for (size_t j = 0; j < n; j++) {
            size_t bl;
            const char *b = tok_bytes(t, ids[j], &bl);
            buf_append(&dec, b, bl);
        }
        int r = uni_nfc(d[i].text.data, d[i].text.len, &nfc, &nfcn, &nfccap);
        const char *want = r ? nfc : d[i].text.data;
        size_t wantn = r ? nfcn : d[i].text.len;
        int round = dec.len == wantn && (wantn == 0 || memcmp(dec.data, want, wantn) == 0);
        ok += same && round;
        if ((!same || !round) && shown++ < 10) {
            fprintf(stderr, "tok_test: line %zu: %s; at id %zu: got", i + 1,
                    same ? "decode != NFC(text)" : "ids differ", k);
            for (size_t j = k; j < n && j < k + 6; j++) fprintf(stderr, " %d", ids[j]);
            fprintf(stderr, ", want");
            for (size_t j = k; j < d[i].n && j < k + 6; j++) fprintf(stderr, " %d", d[i].ids[j]);
            fprintf(stderr, "\n");
        }
    }
    printf("%zu/%zu exact\n", ok, nd);
    free(ids);
    free(nfc);
    buf_free(&dec);
    return ok == nd ? 0 : -1;
}

static int bench(const char *dir, doc *d, size_t nd) {
    char err[512];
    double t0 = now();
    tok *t = tok_load(dir, err, sizeof err);
    double t1 = now();
    if (!t) return fprintf(stderr, "tok_test: %s\n", err), -1;
    tok_free(t);
    double t2 = now();
    t = tok_load(dir, err, sizeof err);
    double t3 = now();
    buf all = {0};
    for (size_t i = 0; i < nd; i++) buf_append(&all, d[i].text.data, d[i].text.len);
    int32_t *ids = NULL;
    size_t n = 0, cap = 0;
    double best = 1e9;
    for (int rep = 0; rep < 5; rep++) {
        n = 0;
        double a = now();
        if (tok_encode(t, all.data, all.len, &ids, &n, &cap, err, sizeof err) < 0)
            return fprintf(stderr, "tok_test: %s\n", err), -1;
        double b = now() - a;
        best = b < best ? b : best;
    }
    printf("load: first %.1f ms, again %.2f ms\n", 1e3 * (t1 - t0), 1e3 * (t3 - t2));
    printf("encode: %zu bytes -> %zu ids in %.1f ms: %.2f MB/s, %.2f M tokens/s\n", all.len, n, 1e3 * best,
           (double)all.len / best / 1e6, (double)n / best / 1e6);
    free(ids);
    buf_free(&all);
    tok_free(t);
    return 0;
}

int main(int argc, char **argv) {
    int mode = argc > 1 && argv[1][0] == '-' ? argv[1][1] : 0;
    int a = mode ? 2 : 1;
    if (!(mode == 'l' && argc == 3) && !((mode == 0 || mode == 'b') && argc == a + 2)) {
        fprintf(stderr, "usage: tok_test [-b] MODEL_DIR FIXTURE.jsonl | tok_test -l MODEL_DIR\n");
        return EXIT_USAGE;
    }
    char err[512];
    if (mode == 'l') {
        tok *t = tok_load(argv[2], err, sizeof err);
        if (!t) return fprintf(stderr, "tok_test: %s\n", err), EXIT_DATA;
        printf("%zu ids\n", tok_vocab_size(t));
        tok_free(t);
        return EXIT_OK;
    }
    doc *d;
    size_t nd;
    if (read_docs(argv[a + 1], &d, &nd) < 0) return EXIT_DATA;
    if (mode == 'b') return bench(argv[a], d, nd) < 0 ? EXIT_DATA : EXIT_OK;
    tok *t = tok_load(argv[a], err, sizeof err);
    if (!t) return fprintf(stderr, "tok_test: %s\n", err), EXIT_DATA;
    api_checks(t);
    int rc = check(t, d, nd);
    tok_free(t);
    for (size_t i = 0; i < nd; i++) free(d[i].ids), buf_free(&d[i].text);
    free(d);
    return rc < 0 || fails ? EXIT_DATA : EXIT_OK;
}
