/* jsonl: cJSON with exact strings (see jsonl.h). */
#include "jsonl.h"

#include <stdlib.h>
#include <string.h>

#include "utf8.h"

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Does line contain code point cp, raw or as a \u escape? (cp is in the BMP.) */
static int contains(const char *line, size_t len, uint32_t cp) {
    const uint8_t raw[3] = {(uint8_t)(0xE0 | cp >> 12), (uint8_t)(0x80 | (cp >> 6 & 0x3F)),
                            (uint8_t)(0x80 | (cp & 0x3F))};
    for (size_t i = 0; i + 3 <= len; i++)
        if (!memcmp(line + i, raw, 3)) return 1;
    for (size_t i = 0; i + 6 <= len; i++) {
        if (line[i] != '\\' || line[i + 1] != 'u') continue;
        uint32_t v = 0;
        int ok = 1;
        for (int k = 0; k < 4; k++) {
            int h = hexval(line[i + 2 + k]);
            if (h < 0) ok = 0;
            v = v << 4 | (uint32_t)(h & 15);
        }
        if (ok && v == cp) return 1;
    }
    return 0;
}

int jsonl_parse(const char *line, size_t len, jsonl_doc *d, char *err, size_t errlen) {
    d->root = NULL;
    d->sentinel = 0;
    buf b = {0};
    const char *src = line;
    /* Find \u0000 escapes (inside strings, not preceded by an escaping backslash). */
    int has_nul = 0;
    for (size_t i = 0, in = 0; i < len; i++) {
        if (!in) {
            in = line[i] == '"';
            continue;
        }
        if (line[i] == '"') in = 0;
        else if (line[i] == '\\' && i + 1 < len) {
            if (i + 5 < len && !memcmp(line + i + 1, "u0000", 5)) has_nul = 1;
            i++;
        }
    }
    if (has_nul) {
        for (uint32_t cp = 0xFDD0; cp <= 0xFDEF && !d->sentinel; cp++)
            if (!contains(line, len, cp)) d->sentinel = cp;
        if (!d->sentinel) return seterr(err, errlen, "json: too many noncharacters around a \\u0000");
        char esc[7];
        snprintf(esc, sizeof esc, "u%04X", (unsigned)d->sentinel);
        for (size_t i = 0, in = 0; i < len; i++) {
            if (buf_putc(&b, line[i]) < 0) goto oom;
            if (!in) {
                in = line[i] == '"';
                continue;
            }
            if (line[i] == '"') in = 0;
            else if (line[i] == '\\' && i + 1 < len) {
                if (i + 5 < len && !memcmp(line + i + 1, "u0000", 5)) {
                    if (buf_append(&b, esc, 5) < 0) goto oom;
                    i += 5;
                } else if (buf_putc(&b, line[++i]) < 0) goto oom;
            }
        }
        src = b.data;
        len = b.len;
    }
    const char *end = NULL;
    d->root = cJSON_ParseWithLengthOpts(src, len, &end, 0);
    if (!d->root) {
        size_t at = end ? (size_t)(end - src) : 0;
        buf_free(&b);
        return seterr(err, errlen, "invalid JSON near byte %zu", at);
    }
    if (json_keep_numbers(d->root, src, len) < 0) {
        jsonl_free(d);
        buf_free(&b);
        return seterr(err, errlen, "out of memory");
    }
    buf_free(&b);
    return 0;
oom:
    buf_free(&b);
    return seterr(err, errlen, "out of memory");
}

/* The next number literal in p[0..end) outside strings, or NULL; *n gets its length. */
static const char *next_number(const char *p, const char *end, size_t *n) {
    for (; p < end; p++) {
        if (*p == '"') {
            for (p++; p < end && *p != '"'; p++)
                if (*p == '\\') p++;
        } else if (*p == '-' || (*p >= '0' && *p <= '9')) {
            const char *q = p;
            while (q < end && *q && strchr("+-.eE0123456789", *q)) q++;
            *n = (size_t)(q - p);
            return p;
        }
    }
    return NULL;
}

/* Give every number node in v its literal text (valuestring, which cJSON_Delete frees).
 * Numbers come in the text in the order of a depth-first walk of cJSON's tree, and
 * outside strings only numbers contain '-' or digits. */
static int keep_number_text(cJSON *v, const char **p, const char *end) {
    for (; v; v = v->next) {
        if (cJSON_IsNumber(v)) {
            size_t n;
            const char *lit = next_number(*p, end, &n);
            if (!lit || !(v->valuestring = strndup(lit, n))) return -1;
            *p = lit + n;
        } else if (v->child && keep_number_text(v->child, p, end)) {
            return -1;
        }
    }
    return 0;
}

int json_keep_numbers(cJSON *root, const char *text, size_t len) {
    const char *p = text;
    return keep_number_text(root, &p, text + len) ? -1 : 0;
}

void jsonl_free(jsonl_doc *d) {
    cJSON_Delete(d->root);
    d->root = NULL;
}

int jsonl_str(const jsonl_doc *d, const cJSON *item, buf *out, char *err, size_t errlen) {
    out->len = 0;
    if (!cJSON_IsString(item) || !item->valuestring) return seterr(err, errlen, "not a string");
    const char *s = item->valuestring;
    size_t n = strlen(s);
    size_t bad = utf8_check((const uint8_t *)s, n);
    if (bad < n) return seterr(err, errlen, "invalid UTF-8 at byte %zu", bad);
    if (buf_reserve(out, n + 1) < 0) return seterr(err, errlen, "out of memory");
    uint8_t sent[3] = {0};
    if (d->sentinel)
        sent[0] = (uint8_t)(0xE0 | d->sentinel >> 12), sent[1] = (uint8_t)(0x80 | (d->sentinel >> 6 & 0x3F)),
        sent[2] = (uint8_t)(0x80 | (d->sentinel & 0x3F));
    for (size_t i = 0; i < n; i++) {
        if (d->sentinel && i + 3 <= n && !memcmp(s + i, sent, 3)) {
            out->data[out->len++] = 0;
            i += 2;
        } else {
            out->data[out->len++] = s[i];
        }
    }
    out->data[out->len] = 0;
    return 0;
}

int json_put_str(buf *out, const char *s, size_t n) {
    if (buf_putc(out, '"') < 0) return -1;
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        if (buf_append(out, s + start, i - start) < 0) return -1;
        int r;
        switch (c) {
        case '"': r = buf_append(out, "\\\"", 2); break;
        case '\\': r = buf_append(out, "\\\\", 2); break;
        case '\n': r = buf_append(out, "\\n", 2); break;
        case '\r': r = buf_append(out, "\\r", 2); break;
        case '\t': r = buf_append(out, "\\t", 2); break;
        case '\b': r = buf_append(out, "\\b", 2); break;
        case '\f': r = buf_append(out, "\\f", 2); break;
        default: r = buf_printf(out, "\\u%04x", c);
        }
        if (r < 0) return -1;
        start = i + 1;
    }
    if (buf_append(out, s + start, n - start) < 0) return -1;
    return buf_putc(out, '"');
}

long jsonl_run(FILE *in, FILE *outf, jsonl_fn one, void (*report)(void *ctx, const char *msg), void *ctx) {
    char *line = NULL, err[512], msg[600];
    size_t lcap = 0, lineno = 0;
    ssize_t len;
    long failed = 0;
    buf out = {0};
    while ((len = getline(&line, &lcap, in)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) len--;
        out.len = 0;
        if (one(ctx, line, (size_t)len, &out, err, sizeof err) < 0) {
            failed++;
            out.len = 0;
            snprintf(msg, sizeof msg, "line %zu: %s", lineno, err);
            buf_append(&out, "{\"error\": ", 10);
            json_put_str(&out, msg, strlen(msg));
            buf_printf(&out, ", \"line\": %zu}", lineno);
            report(ctx, msg);
        }
        if (buf_putc(&out, '\n') < 0 || fwrite(out.data, 1, out.len, outf) != out.len) {
            failed = -1;
            break;
        }
    }
    free(line);
    buf_free(&out);
    return failed;
}
