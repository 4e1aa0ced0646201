/* serve: Axera's tokenizer HTTP service (qwen3_tokenizer_uid.py, ax650.md §1) over
 * libmicrohttpd. This file owns the uid table, each uid's conversation (messages, the
 * token history the diffs are taken against, the incremental-decode cache), the request
 * routing, and the answers, written byte for byte as the service's json.dumps writes
 * them (", " and ": ", ensure_ascii: every non-ASCII character as \uXXXX).
 *
 * Kept from the service on purpose, because its C++ client or its results depend on
 * them: HTTP 200 for everything the service answers ("Invalid uid" included); paths
 * matched as substrings of the raw request target, query string included, in its order
 * (/get_uid, /bos_id, /eos_id; /encode, /decode, /reset); a fresh uid's history is empty
 * until /reset; /reset and /encode feed the decode cache (the service decodes them for
 * a debug print), so a cache stuck on bad UTF-8 stays stuck; /decode answers "" while
 * the text holds a U+FFFD, a real one included.
 *
 * Deliberate differences, none visible to a well-behaved client:
 *  - concurrent connections (one thread each); requests on one uid are serialized by
 *    that uid's mutex, so its state changes exactly as in the one-at-a-time service;
 *  - uids come from libsodium's randombytes; a uid unused for idle_expire_s, or the
 *    least recently used one beyond max_uids, is forgotten ("Invalid uid" afterwards);
 *  - requests the service would crash on (it drops the connection, which its C++
 *    client retries like any non-200 answer) get an {"error": ...} body instead: 400
 *    for a body that is not a JSON object, not UTF-8, holds \u0000 (a NUL cannot reach
 *    the renderer), or has a wrong-typed text, last_reply, system_prompt or token_ids;
 *    413 for a body over max_body, refused from Content-Length before it is read, or
 *    as soon as a chunked body passes the cap (the connection then closes); 501 for
 *    methods other than GET and POST; 500 if rendering fails. A request is checked
 *    completely before it changes anything, where the service could die half way;
 *  - token ids written as 9707.0 are taken as integers (Python refuses floats);
 *  - a decode cache that can never produce text again (an invalid byte sequence, or a
 *    U+FFFD, in its middle) is dropped and the uid answers "" from then on, as the
 *    service would, without growing the cache forever;
 *  - idle_expire_s <= 0 means uids never expire. */
#include "serve.h"

#include <netdb.h>
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "chat.h"
#include "jsonl.h"
#include "mhd.h"
#include "uni.h"
#include "utf8.h"
#include "util.h"

#define DEFAULT_SYSTEM "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."

typedef struct {
    int32_t *v;
    size_t n, cap;
} ids;

/* One uid: the service's Tokenizer_Http instance. */
typedef struct sess {
    char uid[37];
    pthread_mutex_t mu; /* held for a whole request on this uid */
    cJSON *messages;    /* [{"role","content"}...], starting with the system message */
    ids hist;           /* token_ids: the conversation as last encoded; diffs start after it */
    ids pend;           /* token_ids_cache: ids /decode has not yet turned into text */
    int stuck;          /* the cache can never decode cleanly again: /decode gives "" */
    int64_t used;       /* last request (monotonic ms), for idle expiry */
    int refs;           /* 1 for the table + 1 per request holding it */
    struct sess *prev, *next; /* LRU list, most recently used first */
} sess;

typedef struct {
    const tok *t;
    const char *system; /* default system prompt */
    int32_t eos;        /* <|im_end|>, the tokenizer's eos_token */
    size_t max_body, max_uids;
    int idle_s;
    pthread_mutex_t mu; /* guards the list, n and every refs */
    sess *head, *tail;
    size_t n;
    pthread_mutex_t logmu; /* libmicrohttpd's last complaint, for a failed start */
    char log[256];
    mhd_api mhd;           /* libmicrohttpd's entry points (mhd.h: loaded when serving starts) */
} server;

/* Per request: the raw request target (libmicrohttpd hands the access handler the path
 * unescaped and without its query, but the service matched against the raw one), and
 * the body as it arrives. */
typedef struct {
    char *uri;
    buf body;
    int started, too_big;
} conn;

/* ---- int vectors ---- */

static int ids_push(ids *a, const int32_t *v, size_t n) {
    if (a->n + n > a->cap) {
        size_t cap = a->cap ? a->cap : 64;
        while (cap < a->n + n) cap *= 2;
        int32_t *p = realloc(a->v, cap * sizeof *p);
        if (!p) return -1;
        a->v = p;
        a->cap = cap;
    }
    if (n) memcpy(a->v + a->n, v, n * sizeof *v);
    a->n += n;
    return 0;
}

static void ids_free(ids *a) {
    free(a->v);
    *a = (ids){0};
}

/* ---- JSON out, as Python's json.dumps writes it ---- */

/* A string literal with ensure_ascii: ASCII 0x20..0x7E raw except " and \, the short
 * escapes, everything else \u%04x (lowercase), astral planes as a surrogate pair.
 * s must be valid UTF-8. */
static int put_str(buf *o, const char *s, size_t n) {
    if (buf_putc(o, '"') < 0) return -1;
    for (size_t i = 0; i < n;) {
        uint8_t c = (uint8_t)s[i];
        int r;
        if (c >= 0x20 && c <= 0x7E && c != '"' && c != '\\') {
            r = buf_putc(o, (char)c);
            i++;
        } else if (c < 0x80) {
            const char *e = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\n' ? "\\n" : c == '\r' ? "\\r"
                          : c == '\t' ? "\\t" : c == '\b' ? "\\b" : c == '\f' ? "\\f" : NULL;
            r = e ? buf_append(o, e, 2) : buf_printf(o, "\\u%04x", c);
            i++;
        } else {
            uint32_t cp;
            int len = utf8_decode((const uint8_t *)s + i, n - i, &cp);
            if (len == 0) return -1;
            if (cp >= 0x10000)
                r = buf_printf(o, "\\u%04x\\u%04x", 0xD800 + ((cp - 0x10000) >> 10),
                               0xDC00 + ((cp - 0x10000) & 0x3FF));
            else
                r = buf_printf(o, "\\u%04x", cp);
            i += (size_t)len;
        }
        if (r < 0) return -1;
    }
    return buf_putc(o, '"');
}

static int put_ids(buf *o, const ids *a) {
    if (buf_putc(o, '[') < 0) return -1;
    for (size_t i = 0; i < a->n; i++)
        if (buf_printf(o, i ? ", %d" : "%d", a->v[i]) < 0) return -1;
    return buf_putc(o, ']');
}

/* {"KEY": "MSG"} */
static int put_kv(buf *o, const char *key, const char *msg, size_t len) {
    if (buf_printf(o, "{\"%s\": ", key) < 0 || put_str(o, msg, len) < 0) return -1;
    return buf_putc(o, '}');
}

/* ---- the uid table ---- */

/* Milliseconds on a clock that wall-clock changes do not move, for idle expiry (whole
 * seconds would expire a uid up to a second early). */
static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sess_free(sess *se) {
    pthread_mutex_destroy(&se->mu);
    cJSON_Delete(se->messages);
    ids_free(&se->hist);
    ids_free(&se->pend);
    free(se);
}

/* Under s->mu. */
static void unlink_sess(server *s, sess *se) {
    if (se->prev) se->prev->next = se->next;
    else s->head = se->next;
    if (se->next) se->next->prev = se->prev;
    else s->tail = se->prev;
    se->prev = se->next = NULL;
    s->n--;
    if (--se->refs == 0) sess_free(se); /* else the last request holding it frees it */
}

/* Under s->mu: forget uids idle too long (the list's tail is the oldest). */
static void expire(server *s, int64_t now) {
    while (s->idle_s > 0 && s->tail && now - s->tail->used >= (int64_t)s->idle_s * 1000) unlink_sess(s, s->tail);
}

static cJSON *system_messages(const char *content) {
    cJSON *m = cJSON_CreateArray(), *o = cJSON_CreateObject();
    if (!m || !o || !cJSON_AddItemToArray(m, o) || !cJSON_AddStringToObject(o, "role", "system") ||
        !cJSON_AddStringToObject(o, "content", content)) {
        if (o && !cJSON_IsArray(m)) cJSON_Delete(o);
        cJSON_Delete(m);
        return NULL;
    }
    return m;
}

/* A new uid in the table, as a uuid4 string in out[37]. -1 if out of memory. */
static int sess_new(server *s, char out[37]) {
    sess *se = calloc(1, sizeof *se);
    if (!se) return -1;
    if (!(se->messages = system_messages(s->system))) {
        free(se);
        return -1;
    }
    pthread_mutex_init(&se->mu, NULL);
    uint8_t r[16];
    randombytes_buf(r, sizeof r);
    r[6] = (uint8_t)((r[6] & 0x0F) | 0x40); /* version 4 */
    r[8] = (uint8_t)((r[8] & 0x3F) | 0x80); /* RFC 4122 variant */
    char *p = se->uid;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) *p++ = '-';
        p += sprintf(p, "%02x", r[i]);
    }
    memcpy(out, se->uid, 37);
    se->refs = 1;
    pthread_mutex_lock(&s->mu);
    se->used = now_ms();
    expire(s, se->used);
    while (s->n >= s->max_uids && s->tail) unlink_sess(s, s->tail);
    se->next = s->head;
    if (s->head) s->head->prev = se;
    s->head = se;
    if (!s->tail) s->tail = se;
    s->n++;
    pthread_mutex_unlock(&s->mu);
    return 0;
}

/* The live session of uid, held (refs) and locked, or NULL. Release with sess_put. */
static sess *sess_get(server *s, const char *uid) {
    if (!uid) return NULL;
    pthread_mutex_lock(&s->mu);
    int64_t now = now_ms();
    expire(s, now);
    sess *se = s->head;
    while (se && strcmp(se->uid, uid)) se = se->next;
    if (se) {
        se->refs++;
        se->used = now;
        if (se != s->head) { /* move to the front of the LRU list */
            se->prev->next = se->next;
            if (se->next) se->next->prev = se->prev;
            else s->tail = se->prev;
            se->prev = NULL;
            se->next = s->head;
            s->head->prev = se;
            s->head = se;
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (se) pthread_mutex_lock(&se->mu);
    return se;
}

static void sess_put(server *s, sess *se) {
    pthread_mutex_unlock(&se->mu);
    pthread_mutex_lock(&s->mu);
    if (--se->refs == 0) sess_free(se);
    pthread_mutex_unlock(&s->mu);
}

/* ---- the conversation ---- */

/* 1 if s[0..n) (n < 4) could still grow into one valid UTF-8 scalar. */
static int utf8_incomplete(const uint8_t *s, size_t n) {
    if (n == 0 || n > 3) return 0;
    uint8_t c = s[0];
    size_t need = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (need == 0 || n >= need) return 0;
    for (size_t i = 1; i < n; i++) {
        uint8_t lo = 0x80, hi = 0xBF;
        if (i == 1 && c == 0xE0) lo = 0xA0;
        if (i == 1 && c == 0xED) hi = 0x9F;
        if (i == 1 && c == 0xF0) lo = 0x90;
        if (i == 1 && c == 0xF4) hi = 0x8F;
        if (s[i] < lo || s[i] > hi) return 0;
    }
    return 1;
}

/* The service's decode: add ids to the cache and decode all of it; if the text has a
 * U+FFFD (HF's replacement for invalid UTF-8) answer "" and keep the cache, else clear it
 * and answer the text. The text is only ever looked at for U+FFFD and answered when it
 * has none, so "valid UTF-8 without EF BF BD" is the same test on the raw bytes.
 * text gets the answer. -1 if out of memory. */
static int conv_decode(server *s, sess *se, const int32_t *v, size_t n, buf *text) {
    text->len = 0;
    if (se->stuck) return 0;
    for (size_t i = 0; i < n; i++) {
        size_t len;
        /* ids beyond the vocabulary decode to nothing in HF; leaving them out keeps a
         * waiting cache from growing on them */
        if (tok_bytes(s->t, v[i], &len) && ids_push(&se->pend, &v[i], 1) < 0) return -1;
    }
    for (size_t i = 0; i < se->pend.n; i++) {
        size_t len;
        const char *b = tok_bytes(s->t, se->pend.v[i], &len);
        if (buf_append(text, b, len) < 0) return -1;
    }
    const uint8_t *p = (const uint8_t *)text->data;
    size_t ok = text->len ? utf8_check(p, text->len) : 0;
    int fffd = ok >= 3 && memmem(p, ok, "\xEF\xBF\xBD", 3) != NULL;
    if (ok == text->len && !fffd) {
        se->pend.n = 0;
        return 0;
    }
    /* What precedes an incomplete tail never changes, so a U+FFFD there, or a tail that
     * cannot complete, holds the cache back for good. */
    if (fffd || !utf8_incomplete(p + ok, text->len - ok)) {
        se->stuck = 1;
        ids_free(&se->pend);
    }
    text->len = 0;
    return 0;
}

/* Render msgs with the Qwen2.5 template (generation prompt on) and encode it into *a. */
static int render_encode(server *s, const cJSON *msgs, ids *a, char *err, size_t errlen) {
    chat_req r = {.messages = msgs, .tools = NULL, .add_generation_prompt = 1, .enable_thinking = -1};
    buf text = {0};
    a->n = 0;
    int rc = chat_render_qwen25(&r, &text, err, errlen);
    if (rc == 0) rc = tok_encode(s->t, text.data, text.len, &a->v, &a->n, &a->cap, err, errlen);
    buf_free(&text);
    return rc;
}

static int add_message(cJSON *msgs, const char *role, const char *content) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return -1;
    if (!cJSON_AddStringToObject(o, "role", role) || !cJSON_AddStringToObject(o, "content", content) ||
        !cJSON_AddItemToArray(msgs, o)) {
        cJSON_Delete(o);
        return -1;
    }
    return 0;
}

/* Python's s.replace(pat, "") into out (NUL-terminated). */
static int remove_all(const char *s, const char *pat, buf *out) {
    size_t pl = strlen(pat);
    out->len = 0;
    for (const char *q; (q = strstr(s, pat)); s = q + pl)
        if (buf_append(out, s, (size_t)(q - s)) < 0) return -1;
    if (buf_append(out, s, strlen(s) + 1) < 0) return -1;
    out->len--; /* the NUL is there but not counted */
    return 0;
}

/* The service's reset: history = the system turn (the rendering minus the generation
 * prompt's 3 tokens <|im_start|> assistant \n). Answer {"token_ids": [...]}. */
static int conv_reset(server *s, sess *se, const char *system, buf *o, char *err, size_t errlen) {
    cJSON *msgs = system_messages(system);
    ids a = {0};
    buf scratch = {0};
    if (!msgs) return seterr(err, errlen, "out of memory");
    if (render_encode(s, msgs, &a, err, errlen) < 0) goto fail;
    a.n = a.n >= 3 ? a.n - 3 : 0;
    if (buf_printf(o, "{\"token_ids\": ") < 0 || put_ids(o, &a) < 0 || buf_putc(o, '}') < 0 ||
        conv_decode(s, se, a.v, a.n, &scratch) < 0)
        goto oom;
    cJSON_Delete(se->messages);
    se->messages = msgs;
    ids_free(&se->hist);
    se->hist = a;
    buf_free(&scratch);
    return 0;
oom:
    seterr(err, errlen, "out of memory");
fail:
    cJSON_Delete(msgs);
    ids_free(&a);
    buf_free(&scratch);
    return -1;
}

/* The service's encode. With a last reply (think tags removed, then '\n' stripped from
 * both ends) the history is re-encoded to end after that reply; the prompt gets
 * "/no_think" appended unless it ends so; diff = the new encoding past the history.
 * Answer {"token_ids": [...], "diff": [...]}. */
static int conv_encode(server *s, sess *se, const char *prompt, const char *reply, buf *o, char *err,
                       size_t errlen) {
    cJSON *msgs = cJSON_Duplicate(se->messages, 1);
    ids base = {0}, all = {0}, diff = {0};
    buf t1 = {0}, t2 = {0};
    if (!msgs) return seterr(err, errlen, "out of memory");
    if (reply) {
        if (remove_all(reply, "<think>", &t1) < 0 || remove_all(t1.data, "</think>", &t2) < 0) goto oom;
        char *r = t2.data, *e = t2.data + t2.len;
        while (r < e && *r == '\n') r++;
        while (e > r && e[-1] == '\n') *--e = 0;
        if (add_message(msgs, "assistant", r) < 0) goto oom;
        if (render_encode(s, msgs, &base, err, errlen) < 0) goto fail;
        base.n = base.n >= 3 ? base.n - 3 : 0;
    } else if (ids_push(&base, se->hist.v, se->hist.n) < 0) {
        goto oom;
    }
    size_t pl = strlen(prompt), nl = strlen("/no_think");
    t1.len = 0;
    if (buf_append(&t1, prompt, pl) < 0) goto oom;
    if ((pl < nl || memcmp(prompt + pl - nl, "/no_think", nl)) && buf_append(&t1, "/no_think", nl) < 0)
        goto oom;
    if (buf_putc(&t1, 0) < 0 || add_message(msgs, "user", t1.data) < 0) goto oom;
    if (render_encode(s, msgs, &all, err, errlen) < 0) goto fail;
    if (all.n > base.n && ids_push(&diff, all.v + base.n, all.n - base.n) < 0) goto oom;
    if (buf_printf(o, "{\"token_ids\": ") < 0 || put_ids(o, &all) < 0 || buf_printf(o, ", \"diff\": ") < 0 ||
        put_ids(o, &diff) < 0 || buf_putc(o, '}') < 0)
        goto oom;
    /* The service decodes the re-encoded history and the diff for a debug print; both
     * pass through the decode cache. */
    if ((reply && conv_decode(s, se, base.v, base.n, &t1) < 0) || conv_decode(s, se, diff.v, diff.n, &t1) < 0)
        goto oom;
    cJSON_Delete(se->messages);
    se->messages = msgs;
    ids_free(&se->hist);
    se->hist = all;
    ids_free(&base);
    ids_free(&diff);
    buf_free(&t1);
    buf_free(&t2);
    return 0;
oom:
    seterr(err, errlen, "out of memory");
fail:
    cJSON_Delete(msgs);
    ids_free(&base);
    ids_free(&all);
    ids_free(&diff);
    buf_free(&t1);
    buf_free(&t2);
    return -1;
}

/* ---- requests ---- */

static int hexdig(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* urllib's unquote_plus of s[0..n) into out[cap] (NUL-terminated); -1 if it does not fit.
 * A '%' not followed by two hex digits stays as it is. */
static int unquote(const char *s, size_t n, char *out, size_t cap) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '+') c = ' ';
        else if (c == '%' && i + 2 < n && hexdig(s[i + 1]) >= 0 && hexdig(s[i + 2]) >= 0) {
            c = (char)(hexdig(s[i + 1]) << 4 | hexdig(s[i + 2]));
            i += 2;
        }
        if (k + 1 >= cap) return -1;
        out[k++] = c;
    }
    out[k] = 0;
    return 0;
}

/* The first value of key in the raw target's query, as urllib's parse_qs finds it:
 * fields split at '&', fields without '=' or with an empty value skipped. 0 if found. */
static int query_param(const char *uri, const char *key, char *out, size_t outlen) {
    const char *q = strchr(uri, '?');
    if (!q) return -1;
    const char *end = q + 1 + strcspn(q + 1, "#");
    for (const char *f = q + 1; f < end;) {
        const char *fe = memchr(f, '&', (size_t)(end - f));
        if (!fe) fe = end;
        const char *eq = memchr(f, '=', (size_t)(fe - f));
        char name[64];
        if (eq && eq + 1 < fe && unquote(f, (size_t)(eq - f), name, sizeof name) == 0 && !strcmp(name, key))
            return unquote(eq + 1, (size_t)(fe - eq - 1), out, outlen);
        f = fe + 1;
    }
    return -1;
}

typedef struct {
    unsigned status;
    buf body;
} reply;

/* An {"error": msg} answer; the service's own errors go out as 200. */
static void fail(reply *r, unsigned status, const char *msg) {
    r->status = status;
    r->body.len = 0;
    if (put_kv(&r->body, "error", msg, strlen(msg)) < 0) buf_free(&r->body);
}

static void answer_get(server *s, const char *uri, reply *r) {
    char uid[64];
    sess *se;
    int rc = 0;
    if (strstr(uri, "/get_uid")) {
        rc = sess_new(s, uid) < 0 ? -1 : put_kv(&r->body, "uid", uid, strlen(uid));
    } else if (!strstr(uri, "/bos_id") && !strstr(uri, "/eos_id")) {
        fail(r, 200, "Invalid GET endpoint");
    } else if (query_param(uri, "uid", uid, sizeof uid) < 0 || !(se = sess_get(s, uid))) {
        fail(r, 200, "Invalid uid");
    } else {
        sess_put(s, se);
        /* Qwen3 has no BOS token: the service answers None as -1 */
        if (strstr(uri, "/bos_id")) rc = buf_printf(&r->body, "{\"bos_id\": -1}");
        else rc = buf_printf(&r->body, "{\"eos_id\": %d}", s->eos);
    }
    if (rc < 0) fail(r, 500, "out of memory");
}

/* The last member named key (Python's json.loads keeps the last of duplicate keys). */
static const cJSON *field(const cJSON *o, const char *key) {
    const cJSON *hit = NULL;
    for (const cJSON *c = o->child; c; c = c->next)
        if (c->string && !strcmp(c->string, key)) hit = c;
    return hit;
}

/* A string member, or NULL when absent or null (*bad set if it is anything else). */
static const char *str_field(const cJSON *o, const char *key, int *bad) {
    const cJSON *v = field(o, key);
    if (!v || cJSON_IsNull(v)) return NULL;
    if (!cJSON_IsString(v)) *bad = 1;
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* token_ids: an array of integers in 0..2^32-1 (what the tokenizer accepts); those past
 * the vocabulary decode to nothing, so they are left out here. -1 if malformed. */
static int ids_field(server *s, const cJSON *o, ids *a) {
    const cJSON *v = field(o, "token_ids");
    if (!cJSON_IsArray(v)) return -1;
    size_t vocab = tok_vocab_size(s->t);
    for (const cJSON *c = v->child; c; c = c->next) {
        double d = c->valuedouble; /* range first: converting a huge double is undefined */
        if (!cJSON_IsNumber(c) || !(d >= 0 && d < 4294967296.0) || d != (double)(int64_t)d) return -1;
        int32_t id = (int32_t)(d < (double)vocab ? d : -1);
        if (id >= 0 && ids_push(a, &id, 1) < 0) return -1;
    }
    return 0;
}

static void answer_post(server *s, const char *uri, const char *body, size_t len, reply *r) {
    jsonl_doc d = {0};
    char err[256];
    if (utf8_check((const uint8_t *)body, len) < len) {
        fail(r, 400, "request body is not UTF-8");
        return;
    }
    if (jsonl_parse(body, len, &d, err, sizeof err) < 0) {
        fail(r, 400, "request body is not valid JSON");
        return;
    }
    /* Strings reach the chat renderer as C strings, so a NUL cannot be carried. */
    if (d.sentinel || !cJSON_IsObject(d.root)) {
        fail(r, 400, d.sentinel ? "\\u0000 is not supported in strings"
                                : "request body is not a JSON object");
        jsonl_free(&d);
        return;
    }
    int enc = strstr(uri, "/encode") != NULL, dec = !enc && strstr(uri, "/decode") != NULL,
        rst = !enc && !dec && strstr(uri, "/reset") != NULL;
    int bad = 0;
    sess *se = NULL;
    if (!enc && !dec && !rst) {
        fail(r, 200, "Invalid POST endpoint");
    } else if (!(se = sess_get(s, str_field(d.root, "uid", &bad)))) {
        fail(r, 200, "Invalid uid");
    } else if (enc) {
        const char *text = str_field(d.root, "text", &bad), *reply = str_field(d.root, "last_reply", &bad);
        if (!text || bad) fail(r, 400, "text must be a string, last_reply a string or null");
        else if (conv_encode(s, se, text, reply, &r->body, err, sizeof err) < 0) fail(r, 500, err);
    } else if (dec) {
        ids a = {0};
        buf text = {0};
        if (ids_field(s, d.root, &a) < 0) fail(r, 400, "token_ids must be an array of token ids");
        else if (conv_decode(s, se, a.v, a.n, &text) < 0 || put_kv(&r->body, "text", text.data, text.len) < 0)
            fail(r, 500, "out of memory");
        ids_free(&a);
        buf_free(&text);
    } else {
        const char *sys = str_field(d.root, "system_prompt", &bad);
        if (bad) fail(r, 400, "system_prompt must be a string or null");
        else if (conv_reset(s, se, sys ? sys : s->system, &r->body, err, sizeof err) < 0) fail(r, 500, err);
    }
    if (se) sess_put(s, se);
    jsonl_free(&d);
}

/* ---- libmicrohttpd glue ---- */

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c) {
    (void)cls, (void)c;
    conn *k = calloc(1, sizeof *k);
    if (k && !(k->uri = strdup(uri))) {
        free(k);
        k = NULL;
    }
    return k;
}

static void on_done(void *cls, struct MHD_Connection *c, void **req_cls,
                    enum MHD_RequestTerminationCode why) {
    (void)cls, (void)c, (void)why;
    conn *k = *req_cls;
    if (!k) return;
    free(k->uri);
    buf_free(&k->body);
    free(k);
    *req_cls = NULL;
}

static void on_log(void *cls, const char *fmt, va_list ap) {
    server *s = cls;
    pthread_mutex_lock(&s->logmu);
    vsnprintf(s->log, sizeof s->log, fmt, ap);
    s->log[strcspn(s->log, "\n")] = 0;
    pthread_mutex_unlock(&s->logmu);
}

static enum MHD_Result send_reply(const server *s, struct MHD_Connection *c, reply *r) {
    if (!r->body.data) return MHD_NO; /* out of memory even for the error: drop the connection */
    struct MHD_Response *resp =
        s->mhd.create_response_from_buffer(r->body.len, r->body.data, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        buf_free(&r->body);
        return MHD_NO;
    }
    s->mhd.add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    enum MHD_Result ok = s->mhd.queue_response(c, r->status, resp);
    s->mhd.destroy_response(resp);
    return ok;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **req_cls) {
    (void)url, (void)version;
    server *s = cls;
    conn *k = *req_cls;
    reply r = {200, {0}};
    if (!k) return MHD_NO; /* out of memory in on_uri */
    if (!strcmp(method, "GET")) {
        answer_get(s, k->uri, &r);
        return send_reply(s, c, &r);
    }
    if (strcmp(method, "POST")) {
        fail(&r, 501, "Unsupported method");
        return send_reply(s, c, &r);
    }
    if (!k->started) { /* headers only: refuse a declared oversize body before reading it */
        k->started = 1;
        const char *cl = s->mhd.lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (!cl || strtoull(cl, NULL, 10) <= s->max_body) return MHD_YES;
        k->too_big = 1;
    } else if (*upload_size) {
        if (k->body.len + *upload_size > s->max_body) {
            k->too_big = 1; /* chunked: answer now; if libmicrohttpd cannot, the connection drops */
        } else if (buf_append(&k->body, upload, *upload_size) < 0) {
            return MHD_NO;
        } else {
            *upload_size = 0;
            return MHD_YES;
        }
    }
    if (k->too_big) fail(&r, 413, "Request body too large");
    else answer_post(s, k->uri, k->body.data ? k->body.data : "", k->body.len, &r);
    return send_reply(s, c, &r);
}

int serve_run(const tok *t, const serve_opts *o, volatile sig_atomic_t *stop, char *err, size_t errlen) {
    if (o->port < 1 || o->port > 65535) return seterr(err, errlen, "port must be 1..65535, not %d", o->port);
    if (!o->max_body || !o->max_uids) return seterr(err, errlen, "max_body and max_uids must be positive");
    if (sodium_init() < 0) return seterr(err, errlen, "libsodium: cannot initialize");
    /* "[::1]" as written in ADDR:PORT */
    char host[256];
    const char *a = o->addr ? o->addr : "127.0.0.1";
    size_t al = strlen(a);
    if (al >= 2 && a[0] == '[' && a[al - 1] == ']') a++, al -= 2;
    if (al >= sizeof host) return seterr(err, errlen, "address too long");
    memcpy(host, a, al);
    host[al] = 0;
    char port[8];
    snprintf(port, sizeof port, "%d", o->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai;
    int gai = getaddrinfo(host, port, &hints, &ai);
    if (gai) return seterr(err, errlen, "%s: %s", host, gai_strerror(gai));

    server s = {.t = t,
                .system = o->system_prompt ? o->system_prompt : DEFAULT_SYSTEM,
                .eos = tok_added_id(t, "<|im_end|>"), /* the tokenizer's eos_token */
                .max_body = o->max_body,
                .max_uids = o->max_uids,
                .idle_s = o->idle_expire_s};
    if (mhd_load(&s.mhd, err, errlen) < 0) {
        freeaddrinfo(ai);
        return -1;
    }
    pthread_mutex_init(&s.mu, NULL);
    pthread_mutex_init(&s.logmu, NULL);
    /* A thread per connection: a slow client or a long encode never delays another uid. */
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO |
                     MHD_USE_ERROR_LOG; /* to on_log, which only keeps the last line */
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    struct MHD_Daemon *d = s.mhd.start_daemon(
        flags, (uint16_t)o->port, NULL, NULL, on_request, &s, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, &s, MHD_OPTION_NOTIFY_COMPLETED, on_done, &s,
        MHD_OPTION_EXTERNAL_LOGGER, on_log, &s, MHD_OPTION_CONNECTION_LIMIT, 256u,
        MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_END);
    freeaddrinfo(ai);
    int rc = 0;
    if (!d) {
        rc = seterr(err, errlen, "cannot listen on %s:%d: %s", host, o->port,
                    s.log[0] ? s.log : "libmicrohttpd failed");
    } else {
        while (!*stop) {
            struct timespec ts = {0, 100 * 1000 * 1000};
            nanosleep(&ts, NULL);
            pthread_mutex_lock(&s.mu);
            expire(&s, now_ms());
            pthread_mutex_unlock(&s.mu);
        }
        s.mhd.stop_daemon(d); /* waits for every connection thread */
    }
    while (s.head) unlink_sess(&s, s.head);
    pthread_mutex_destroy(&s.mu);
    pthread_mutex_destroy(&s.logmu);
    return rc;
}
