/* chat_test: renders conversations with lib/chat and compares them with what
 * transformers rendered.
 *
 *   chat_test FILE.jsonl...   every case: {name, template ("qwen3" when absent, or
 *                             "qwen2.5"), messages, tools, add_generation_prompt,
 *                             enable_thinking, rendered, error}. A case with an "error"
 *                             (transformers raised) must fail; the others must match
 *                             "rendered" byte for byte. Prints "N/M cases passed".
 *   chat_test --render [--template qwen3|qwen2.5] [--plain-numbers]
 *                             one such case on stdin; the rendering to stdout, or
 *                             "chat_test: reason" and status 1.
 *
 * Numbers keep their JSON literal (json_keep_numbers) so 1.0 stays 1.0 and big ints
 * stay exact; --plain-numbers shows what cJSON's doubles alone give. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "jsonl.h"
#include "util.h"

static cJSON *parse(const char *s, size_t n, int keep_numbers) {
    cJSON *v = cJSON_ParseWithLength(s, n);
    if (v && keep_numbers && json_keep_numbers(v, s, n) < 0) {
        cJSON_Delete(v);
        return NULL;
    }
    return v;
}

/* Render one case with the template it names (or tmpl when given). */
static int render(const cJSON *c, const char *tmpl, buf *out, char *err, size_t errlen) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(c, "template");
    const cJSON *et = cJSON_GetObjectItemCaseSensitive(c, "enable_thinking");
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(c, "tools");
    chat_req q = {
        .messages = cJSON_GetObjectItemCaseSensitive(c, "messages"),
        .tools = cJSON_IsNull(tools) ? NULL : tools,
        .add_generation_prompt = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "add_generation_prompt")),
        .enable_thinking = cJSON_IsBool(et) ? cJSON_IsTrue(et) : -1,
    };
    if (!tmpl) tmpl = cJSON_IsString(t) ? t->valuestring : "qwen3";
    if (strcmp(tmpl, "qwen3") == 0) return chat_render_qwen3(&q, out, err, errlen);
    if (strcmp(tmpl, "qwen2.5") == 0) return chat_render_qwen25(&q, out, err, errlen);
    return seterr(err, errlen, "template %s: not qwen3 or qwen2.5", tmpl);
}

/* Where got and want part, as the byte offset and a little of each side. */
static void show_diff(const char *name, const char *want, size_t wn, const char *got, size_t gn) {
    size_t i = 0;
    while (i < wn && i < gn && want[i] == got[i]) i++;
    size_t from = i > 20 ? i - 20 : 0;
    fprintf(stderr, "chat_test: %s: differs at byte %zu (want %zu bytes, got %zu)\n", name, i, wn, gn);
    const char *label[] = {"want", "got "};
    const char *s[] = {want, got};
    size_t n[] = {wn, gn};
    for (int k = 0; k < 2; k++) {
        fprintf(stderr, "  %s: ", label[k]);
        for (size_t j = from; j < n[k] && j < i + 40; j++) {
            unsigned char c = (unsigned char)s[k][j];
            if (j == i) fputs("[HERE]", stderr);
            if (c == '\n') fputs("\\n", stderr);
            else if (c < 0x20) fprintf(stderr, "\\x%02x", c);
            else fputc(c, stderr);
        }
        fputc('\n', stderr);
    }
}

/* Run every case of one fixture file; adds to *pass and *total. */
static int run_file(const char *path, int *pass, int *total) {
    char err[256];
    mapped f;
    if (map_file(path, &f, err, sizeof err)) {
        fprintf(stderr, "chat_test: %s\n", err);
        return -1;
    }
    const char *s = (const char *)f.data, *end = s + f.size;
    for (int line = 1; s < end; line++) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        size_t len = nl ? (size_t)(nl - s) : (size_t)(end - s);
        if (len == 0) {
            s += 1;
            continue;
        }
        cJSON *c = parse(s, len, 1);
        s += len + (nl != NULL);
        (*total)++;
        if (!c) {
            fprintf(stderr, "chat_test: %s:%d: not JSON\n", path, line);
            continue;
        }
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(c, "name");
        const cJSON *want = cJSON_GetObjectItemCaseSensitive(c, "rendered");
        const cJSON *werr = cJSON_GetObjectItemCaseSensitive(c, "error");
        const char *nm = cJSON_IsString(name) ? name->valuestring : "?";
        buf out = {0};
        int rc = render(c, NULL, &out, err, sizeof err);
        if (cJSON_IsString(werr)) {
            if (rc == 0) fprintf(stderr, "chat_test: %s: rendered, but transformers raised %s\n", nm, werr->valuestring);
            else (*pass)++;
        } else if (rc) {
            fprintf(stderr, "chat_test: %s: %s\n", nm, err);
        } else if (!cJSON_IsString(want)) {
            fprintf(stderr, "chat_test: %s:%d: no rendered string\n", path, line);
        } else if (out.len != strlen(want->valuestring) || memcmp(out.data, want->valuestring, out.len)) {
            show_diff(nm, want->valuestring, strlen(want->valuestring), out.data ? out.data : "", out.len);
        } else {
            (*pass)++;
        }
        buf_free(&out);
        cJSON_Delete(c);
    }
    unmap_file(&f);
    return 0;
}

static int render_stdin(const char *tmpl, int keep_numbers) {
    char *text, err[256];
    size_t len;
    if (read_all(stdin, &text, &len, err, sizeof err)) {
        fprintf(stderr, "chat_test: %s\n", err);
        return EXIT_DATA;
    }
    cJSON *c = parse(text, len, keep_numbers);
    free(text);
    if (!c) {
        fprintf(stderr, "chat_test: stdin: not JSON\n");
        return EXIT_DATA;
    }
    buf out = {0};
    int rc = render(c, tmpl, &out, err, sizeof err);
    cJSON_Delete(c);
    if (rc) {
        fprintf(stderr, "chat_test: %s\n", err);
        buf_free(&out);
        return EXIT_DATA;
    }
    fwrite(out.data, 1, out.len, stdout);
    buf_free(&out);
    return fclose(stdout) ? EXIT_DATA : EXIT_OK;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--render") == 0) {
        const char *tmpl = NULL;
        int keep = 1;
        for (int i = 2; i < argc; i++) {
            if (strcmp(argv[i], "--template") == 0 && i + 1 < argc) tmpl = argv[++i];
            else if (strcmp(argv[i], "--plain-numbers") == 0) keep = 0;
            else {
                fprintf(stderr, "usage: chat_test --render [--template qwen3|qwen2.5] [--plain-numbers]\n");
                return EXIT_USAGE;
            }
        }
        return render_stdin(tmpl, keep);
    }
    if (argc < 2) {
        fprintf(stderr, "usage: chat_test FILE.jsonl...\n");
        return EXIT_USAGE;
    }
    int pass = 0, total = 0;
    for (int i = 1; i < argc; i++)
        if (run_file(argv[i], &pass, &total)) return EXIT_DATA;
    printf("%d/%d cases passed\n", pass, total);
    return pass == total ? EXIT_OK : EXIT_DATA;
}
