/* chat: the Qwen3 and Qwen2.5 chat templates, rendered byte for byte as transformers'
 * apply_chat_template renders them (jinja2, trim_blocks, lstrip_blocks).
 *
 * We translate the two templates by hand, we don't embed a Jinja engine: each is ~60
 * lines of Jinja, and a translation keeps every Python-ism in plain sight ({{ x }}
 * prints str(x), str + non-str raises, `in` on a list tests membership). What
 * transformers does before the template is reproduced too: null-valued keys are dropped
 * from each message, reasoning_content is filled from `thinking` or `reasoning`, an
 * empty conversation and a tool that is not an object are refused.
 *
 * JSON values are the Python values the template sees: a missing key is jinja's
 * Undefined (prints "", is falsy, raises when concatenated). Where the template raises
 * we return -1 naming the message. Where jinja would silently skip a message with no
 * role or a non-string role we refuse it as malformed; unknown roles it skips, we skip.
 *
 * Numbers: Python keeps 1 and 1.0 apart and big ints exact, cJSON keeps a double. A
 * number node whose valuestring holds its JSON literal (t/chat_test.c's
 * keep_number_text attaches them) prints exactly; without it, integral values below
 * 2^53 print as ints and the rest as Python floats, so a literal 1.0 prints as 1 and
 * ints past 2^53 come out rounded. cJSON strings end at U+0000, so "\u0000" can't be. */
#include "chat.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Output with a sticky out-of-memory flag, checked once at the end. */
typedef struct {
    buf *out;
    int oom;
} rd;

static void put(rd *r, const char *s, size_t n) {
    if (!r->oom && buf_append(r->out, s, n)) r->oom = 1;
}
static void puts_(rd *r, const char *s) { put(r, s, strlen(s)); }
static void putc_(rd *r, char c) { put(r, &c, 1); }

static const char TOOLS_HEAD[] =
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>";
static const char TOOLS_TAIL[] =
    "\n</tools>\n\nFor each function call, return a json object with function name and "
    "arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
    "{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n";
static const char QWEN25_SYSTEM[] = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";

/* ---- Python values ---- */

/* obj[key], or NULL (Undefined) if absent or obj is not an object. Like json.loads,
 * the last of duplicate keys wins. */
static const cJSON *field(const cJSON *obj, const char *key) {
    const cJSON *v = NULL;
    if (!cJSON_IsObject(obj)) return NULL;
    for (const cJSON *c = obj->child; c; c = c->next)
        if (c->string && strcmp(c->string, key) == 0) v = c;
    return v;
}

/* A message's field as the template sees it: transformers drops null-valued keys. */
static const cJSON *mfield(const cJSON *m, const char *key) {
    const cJSON *v = field(m, key);
    return cJSON_IsNull(v) ? NULL : v;
}

static const char *role(const cJSON *m) { return field(m, "role")->valuestring; }

/* Python truthiness; NULL is Undefined, which is falsy. */
static int truthy(const cJSON *v) {
    if (!v || cJSON_IsNull(v) || cJSON_IsFalse(v)) return 0;
    if (cJSON_IsNumber(v)) return v->valuedouble != 0;
    if (cJSON_IsString(v)) return v->valuestring[0] != 0;
    if (cJSON_IsArray(v) || cJSON_IsObject(v)) return v->child != NULL;
    return 1;
}

static const char *kind(const cJSON *v) {
    if (!v) return "missing or null";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNull(v)) return "null";
    return "not a string";
}

/* x as Python's repr(float) writes it: the shortest digits that read back as x,
 * positional when the decimal point falls within [-4, 16), else d.ddde+XX. json.dumps
 * writes the same, with Infinity for inf. */
static void put_float(rd *r, double x, int json) {
    if (isinf(x)) {
        puts_(r, json ? (x < 0 ? "-Infinity" : "Infinity") : (x < 0 ? "-inf" : "inf"));
        return;
    }
    if (isnan(x)) {
        puts_(r, json ? "NaN" : "nan");
        return;
    }
    char tmp[40], digits[24], o[64];
    for (int p = 1; p <= 17; p++) {
        snprintf(tmp, sizeof tmp, "%.*e", p - 1, x);
        if (strtod(tmp, NULL) == x) break;
    }
    const char *s = tmp;
    int neg = *s == '-', nd = 0;
    s += neg;
    for (; *s && *s != 'e'; s++)
        if (*s != '.') digits[nd++] = *s;
    int e = atoi(s + 1), decpt = e + 1, k = 0;
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    if (neg) o[k++] = '-';
    if (decpt <= -4 || decpt > 16) {
        o[k++] = digits[0];
        if (nd > 1) {
            o[k++] = '.';
            memcpy(o + k, digits + 1, (size_t)nd - 1);
            k += nd - 1;
        }
        k += snprintf(o + k, sizeof o - (size_t)k, "e%c%02d", e < 0 ? '-' : '+', abs(e));
    } else if (decpt <= 0) {
        o[k++] = '0';
        o[k++] = '.';
        for (int i = 0; i < -decpt; i++) o[k++] = '0';
        memcpy(o + k, digits, (size_t)nd);
        k += nd;
    } else {
        for (int i = 0; i < decpt || i < nd; i++) {
            if (i == decpt) o[k++] = '.';
            o[k++] = i < nd ? digits[i] : '0';
        }
        if (decpt >= nd) o[k++] = '.', o[k++] = '0';
    }
    put(r, o, (size_t)k);
}

/* A JSON number as Python prints the int or float json.loads made of it. */
static void put_number(rd *r, const cJSON *v, int json) {
    const char *lit = v->valuestring;
    if (lit && !strpbrk(lit, ".eE")) { /* an int literal: Python ints are exact */
        puts_(r, strcmp(lit, "-0") == 0 ? "0" : lit);
        return;
    }
    double x = lit ? strtod(lit, NULL) : v->valuedouble;
    if (!lit && fabs(x) < 9007199254740992.0 && x == (double)(int64_t)x) {
        char t[24];
        snprintf(t, sizeof t, "%lld", (long long)x);
        puts_(r, t);
        return;
    }
    put_float(r, x, json);
}

/* json.dumps(s, ensure_ascii=False): only " \ and C0 controls are escaped. */
static void put_json_string(rd *r, const char *s) {
    putc_(r, '"');
    for (const char *run = s;; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        put(r, run, (size_t)(s - run));
        if (!c) break;
        run = s + 1;
        switch (c) {
        case '"': puts_(r, "\\\""); break;
        case '\\': puts_(r, "\\\\"); break;
        case '\n': puts_(r, "\\n"); break;
        case '\r': puts_(r, "\\r"); break;
        case '\t': puts_(r, "\\t"); break;
        case '\b': puts_(r, "\\b"); break;
        case '\f': puts_(r, "\\f"); break;
        default: {
            char e[8];
            snprintf(e, sizeof e, "\\u%04x", c);
            puts_(r, e);
        }
        }
    }
    putc_(r, '"');
}

/* Decode one shortest-form UTF-8 scalar; its length, or 0 if the bytes are not one. */
static int utf8_next(const unsigned char *s, uint32_t *cp) {
    int n = s[0] < 0x80 ? 1 : s[0] >= 0xC2 && s[0] < 0xE0 ? 2 : s[0] >= 0xE0 && s[0] < 0xF0 ? 3
          : s[0] >= 0xF0 && s[0] < 0xF5 ? 4 : 0;
    if (!n) return 0;
    uint32_t c = n == 1 ? s[0] : s[0] & (0x7F >> n);
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        c = c << 6 | (s[i] & 0x3F);
    }
    static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (c < min[n] || c > 0x10FFFF || (c >= 0xD800 && c < 0xE000)) return 0;
    *cp = c;
    return n;
}

/* Non-ASCII code points Python 3.11's str.isprintable() rejects (Unicode 14.0 Cc, Cf,
 * Co, Zs, Zl, Zp). Unassigned code points (Cn) are left out: they are printable here
 * and escaped by Python, a difference only for text that no one can have typed yet. */
static int py_printable(uint32_t cp) {
    static const uint32_t np[][2] = {
        {0x80, 0xA0}, {0xAD, 0xAD}, {0x600, 0x605}, {0x61C, 0x61C}, {0x6DD, 0x6DD},
        {0x70F, 0x70F}, {0x890, 0x891}, {0x8E2, 0x8E2}, {0x1680, 0x1680}, {0x180E, 0x180E},
        {0x2000, 0x200F}, {0x2028, 0x202F}, {0x205F, 0x2064}, {0x2066, 0x206F},
        {0x3000, 0x3000}, {0xD800, 0xF8FF}, {0xFEFF, 0xFEFF}, {0xFFF9, 0xFFFB},
        {0x110BD, 0x110BD}, {0x110CD, 0x110CD}, {0x13430, 0x13438}, {0x1BCA0, 0x1BCA3},
        {0x1D173, 0x1D17A}, {0xE0001, 0xE0001}, {0xE0020, 0xE007F}, {0xF0000, 0xFFFFD},
        {0x100000, 0x10FFFD},
    };
    for (size_t i = 0; i < sizeof np / sizeof np[0]; i++)
        if (cp >= np[i][0] && cp <= np[i][1]) return 0;
    return 1;
}

/* repr(s): single quotes unless s has ' and no ", then \t \n \r, \xNN for other
 * controls, \xNN \uNNNN \UNNNNNNNN for non-printables. */
static void put_repr_string(rd *r, const char *str) {
    char q = strchr(str, '\'') && !strchr(str, '"') ? '"' : '\'';
    putc_(r, q);
    for (const unsigned char *s = (const unsigned char *)str; *s;) {
        uint32_t cp;
        int n = utf8_next(s, &cp);
        if (!n) { /* not UTF-8 (json.loads would have refused it): pass the byte on */
            putc_(r, (char)*s++);
            continue;
        }
        char e[12] = "";
        if (cp == (uint32_t)q || cp == '\\') snprintf(e, sizeof e, "\\%c", (char)cp);
        else if (cp == '\t') strcpy(e, "\\t");
        else if (cp == '\n') strcpy(e, "\\n");
        else if (cp == '\r') strcpy(e, "\\r");
        else if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && !py_printable(cp)))
            snprintf(e, sizeof e, cp < 0x100 ? "\\x%02x" : cp < 0x10000 ? "\\u%04x" : "\\U%08x",
                     (unsigned)cp);
        if (e[0]) puts_(r, e);
        else put(r, (const char *)s, (size_t)n);
        s += (size_t)n;
    }
    putc_(r, q);
}

/* json.dumps (json != 0) or repr of a JSON value, as transformers' tojson and Python's
 * str() of a list or dict write them. Recursion is bounded by cJSON's nesting limit. */
static void put_value(rd *r, const cJSON *v, int json) {
    if (cJSON_IsNull(v)) puts_(r, json ? "null" : "None");
    else if (cJSON_IsTrue(v)) puts_(r, json ? "true" : "True");
    else if (cJSON_IsFalse(v)) puts_(r, json ? "false" : "False");
    else if (cJSON_IsNumber(v)) put_number(r, v, json);
    else if (cJSON_IsString(v)) (json ? put_json_string : put_repr_string)(r, v->valuestring);
    else if (cJSON_IsRaw(v)) puts_(r, v->valuestring);
    else if (cJSON_IsArray(v)) {
        putc_(r, '[');
        for (const cJSON *c = v->child; c; c = c->next) {
            put_value(r, c, json);
            if (c->next) puts_(r, ", ");
        }
        putc_(r, ']');
    } else if (cJSON_IsObject(v)) {
        /* A duplicate key keeps its first place and its last value, as in a dict. */
        int first = 1;
        putc_(r, '{');
        for (const cJSON *c = v->child; c; c = c->next) {
            const cJSON *d = v->child;
            while (d != c && strcmp(d->string, c->string) != 0) d = d->next;
            if (d != c) continue;
            if (!first) puts_(r, ", ");
            first = 0;
            (json ? put_json_string : put_repr_string)(r, c->string);
            puts_(r, ": ");
            put_value(r, field(v, c->string), json);
        }
        putc_(r, '}');
    }
}

/* {{ v }}: str(v), so strings as they are, other values as repr, Undefined as "". */
static void put_str(rd *r, const cJSON *v) {
    if (!v) return;
    if (cJSON_IsString(v)) puts_(r, v->valuestring);
    else put_value(r, v, 0);
}

/* ---- what both templates share ---- */

/* Checks made before the template runs: a non-empty array of objects, each with a
 * string role, and tools (if passed) an array of objects. *msgs gets the messages as
 * an array (malloc'd) so the templates can look back and ahead. */
static int load(const chat_req *q, const cJSON ***msgs, int *n, char *err, size_t errlen) {
    if (!cJSON_IsArray(q->messages)) return seterr(err, errlen, "messages: not an array");
    int count = cJSON_GetArraySize(q->messages);
    if (count == 0) return seterr(err, errlen, "messages: empty conversation");
    int i = 0;
    for (const cJSON *m = q->messages->child; m; m = m->next, i++) {
        if (!cJSON_IsObject(m)) return seterr(err, errlen, "messages[%d]: not an object", i);
        const cJSON *role = mfield(m, "role");
        if (!role) return seterr(err, errlen, "messages[%d]: no role", i);
        if (!cJSON_IsString(role)) return seterr(err, errlen, "messages[%d]: role is not a string", i);
    }
    if (q->tools && !cJSON_IsNull(q->tools)) {
        if (!cJSON_IsArray(q->tools)) return seterr(err, errlen, "tools: not an array");
        i = 0;
        for (const cJSON *t = q->tools->child; t; t = t->next, i++)
            if (!cJSON_IsObject(t)) return seterr(err, errlen, "tools[%d]: not an object", i);
    }
    const cJSON **m = malloc((size_t)count * sizeof *m);
    if (!m) return seterr(err, errlen, "out of memory");
    i = 0;
    for (const cJSON *c = q->messages->child; c; c = c->next) m[i++] = c;
    *msgs = m;
    *n = count;
    return 0;
}

/* The content of messages[i] where the template concatenates it with +, which raises
 * for anything but a string (Undefined included); NULL with err set then. */
static const char *text(const cJSON *m, int i, char *err, size_t errlen) {
    const cJSON *c = mfield(m, "content");
    if (cJSON_IsString(c)) return c->valuestring;
    seterr(err, errlen, "messages[%d] (%s): content is %s, the template needs a string", i,
           role(m), kind(c));
    return NULL;
}

/* A user or system turn, the same in both templates. */
static int turn(rd *r, const cJSON *m, int i, char *err, size_t errlen) {
    const char *t = text(m, i, err, errlen);
    if (!t) return -1;
    puts_(r, "<|im_start|>");
    puts_(r, role(m));
    putc_(r, '\n');
    puts_(r, t);
    puts_(r, "<|im_end|>\n");
    return 0;
}

/* A tool message: consecutive ones share one user turn. Its content prints as str(). */
static void tool_turn(rd *r, const cJSON **m, int n, int i) {
    if (i == 0 || strcmp(role(m[i - 1]), "tool") != 0) puts_(r, "<|im_start|>user");
    puts_(r, "\n<tool_response>\n");
    put_str(r, mfield(m[i], "content"));
    puts_(r, "\n</tool_response>");
    if (i == n - 1 || strcmp(role(m[i + 1]), "tool") != 0) puts_(r, "<|im_end|>\n");
}

/* The tool_calls of messages[i] if the template loops over them (they are truthy),
 * else NULL; -1 if it would loop over something that is not a list. */
static int tool_calls(const cJSON *m, int i, const cJSON **out, char *err, size_t errlen) {
    const cJSON *tc = mfield(m, "tool_calls");
    *out = NULL;
    if (!truthy(tc)) return 0;
    if (!cJSON_IsArray(tc)) return seterr(err, errlen, "messages[%d]: tool_calls is %s, not an array", i, kind(tc));
    *out = tc;
    return 0;
}

/* One tool call, from <tool_call> to </tool_call>. Qwen3 unwraps `function` when it is
 * truthy and writes string arguments as they are; Qwen2.5 unwraps it when present at
 * all and sends arguments through tojson always (a string comes out quoted). */
static int put_tool_call(rd *r, const cJSON *tc, int qwen3, int i, int k, char *err, size_t errlen) {
    const cJSON *f = field(tc, "function");
    if (qwen3 ? truthy(f) : f != NULL) tc = f;
    if (!cJSON_IsObject(tc))
        return seterr(err, errlen, "messages[%d].tool_calls[%d]: the call is %s, not an object", i, k, kind(tc));
    const cJSON *args = field(tc, "arguments");
    if (!args) return seterr(err, errlen, "messages[%d].tool_calls[%d]: no arguments", i, k);
    puts_(r, "<tool_call>\n{\"name\": \"");
    put_str(r, field(tc, "name"));
    puts_(r, "\", \"arguments\": ");
    if (qwen3 && cJSON_IsString(args)) puts_(r, args->valuestring);
    else put_value(r, args, 1);
    puts_(r, "}\n</tool_call>");
    return 0;
}

static int finish(rd *r, size_t mark, int rc, char *err, size_t errlen) {
    if (!rc && !r->oom) return 0;
    r->out->len = mark; /* nothing half-rendered is left behind */
    return rc ? -1 : seterr(err, errlen, "out of memory");
}

/* ---- Qwen3 ---- */

/* Python's str.strip('\n') family on s[0..*n). */
static const char *lstrip_nl(const char *s, size_t *n) {
    while (*n && *s == '\n') s++, (*n)--;
    return s;
}
static void rstrip_nl(const char *s, size_t *n) {
    while (*n && s[*n - 1] == '\n') (*n)--;
}

/* The last occurrence of needle in s[0..n), or NULL. */
static const char *last_of(const char *s, size_t n, const char *needle) {
    const char *hit = NULL;
    size_t k = strlen(needle);
    for (const char *p = s; (size_t)(s + n - p) >= k; p++)
        if (memcmp(p, needle, k) == 0) hit = p;
    return hit;
}

/* An assistant turn. Its reasoning is reasoning_content (or the aliases transformers
 * folds into it), else the text before </think> in content; it is shown in a <think>
 * block only after the last user query, and there only for the last message or when
 * non-empty. Earlier turns keep the content after </think> alone. */
static int qwen3_assistant(rd *r, const cJSON *m, int i, int n, int last_query, char *err, size_t errlen) {
    const char *c = text(m, i, err, errlen);
    if (!c) return -1;
    size_t cn = strlen(c);
    const cJSON *rv = mfield(m, "reasoning_content");
    if (!rv) rv = mfield(m, "thinking");
    if (!rv) rv = mfield(m, "reasoning");
    const char *rs = "";
    size_t rn = 0;
    int has_reasoning;
    if (rv) {
        has_reasoning = truthy(rv);
        if (cJSON_IsString(rv)) rs = rv->valuestring, rn = strlen(rs);
    } else {
        const char *end = last_of(c, cn, "</think>");
        if (end) {
            /* content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n') */
            rs = c;
            rn = (size_t)(strstr(c, "</think>") - c);
            rstrip_nl(rs, &rn);
            const char *open = last_of(rs, rn, "<think>");
            if (open) rn -= (size_t)(open + 7 - rs), rs = open + 7;
            rs = lstrip_nl(rs, &rn);
            /* content.split('</think>')[-1].lstrip('\n') */
            cn -= (size_t)(end + 8 - c);
            c = lstrip_nl(end + 8, &cn);
        }
        has_reasoning = rn > 0;
    }
    puts_(r, "<|im_start|>assistant\n");
    if (i > last_query && (i == n - 1 || has_reasoning)) {
        if (rv && !cJSON_IsString(rv))
            return seterr(err, errlen, "messages[%d]: reasoning_content is %s, not a string", i, kind(rv));
        rs = lstrip_nl(rs, &rn);
        rstrip_nl(rs, &rn);
        puts_(r, "<think>\n");
        put(r, rs, rn);
        puts_(r, "\n</think>\n\n");
        size_t ln = cn;
        const char *l = lstrip_nl(c, &ln);
        put(r, l, ln);
    } else {
        put(r, c, cn);
    }
    const cJSON *calls;
    if (tool_calls(m, i, &calls, err, errlen)) return -1;
    int k = 0;
    for (const cJSON *tc = calls ? calls->child : NULL; tc; tc = tc->next, k++) {
        if (k > 0 || cn > 0) putc_(r, '\n');
        if (put_tool_call(r, tc, 1, i, k, err, errlen)) return -1;
    }
    puts_(r, "<|im_end|>\n");
    return 0;
}

static int qwen3(rd *r, const chat_req *q, const cJSON **m, int n, char *err, size_t errlen) {
    const char *sys = NULL;
    if (strcmp(role(m[0]), "system") == 0 && !(sys = text(m[0], 0, err, errlen))) return -1;
    if (truthy(q->tools)) {
        puts_(r, "<|im_start|>system\n");
        if (sys) puts_(r, sys), puts_(r, "\n\n");
        puts_(r, TOOLS_HEAD);
        for (const cJSON *t = q->tools->child; t; t = t->next) putc_(r, '\n'), put_value(r, t, 1);
        puts_(r, TOOLS_TAIL);
    } else if (sys) {
        puts_(r, "<|im_start|>system\n");
        puts_(r, sys);
        puts_(r, "<|im_end|>\n");
    }
    /* The last user query: the last user message that is not a wrapped tool response. */
    int last_query = n - 1;
    for (int i = n - 1; i >= 0; i--) {
        if (strcmp(role(m[i]), "user") != 0) continue;
        const char *t = text(m[i], i, err, errlen);
        if (!t) return -1;
        size_t tn = strlen(t);
        if (!(strncmp(t, "<tool_response>", 15) == 0 && tn >= 16 &&
              strcmp(t + tn - 16, "</tool_response>") == 0)) {
            last_query = i;
            break;
        }
    }
    for (int i = 0; i < n; i++) {
        const char *ro = role(m[i]);
        if (strcmp(ro, "user") == 0 || (strcmp(ro, "system") == 0 && i > 0)) {
            if (turn(r, m[i], i, err, errlen)) return -1;
        } else if (strcmp(ro, "assistant") == 0) {
            if (qwen3_assistant(r, m[i], i, n, last_query, err, errlen)) return -1;
        } else if (strcmp(ro, "tool") == 0) {
            tool_turn(r, m, n, i);
        }
    }
    if (q->add_generation_prompt) {
        puts_(r, "<|im_start|>assistant\n");
        if (q->enable_thinking == 0) puts_(r, "<think>\n\n</think>\n\n");
    }
    return 0;
}

int chat_render_qwen3(const chat_req *q, buf *out, char *err, size_t errlen) {
    rd r = {out, 0};
    size_t mark = out->len;
    const cJSON **m;
    int n;
    if (load(q, &m, &n, err, errlen)) return -1;
    int rc = qwen3(&r, q, m, n, err, errlen);
    free(m);
    return finish(&r, mark, rc, err, errlen);
}

/* ---- Qwen2.5 ---- */

static int qwen25(rd *r, const chat_req *q, const cJSON **m, int n, char *err, size_t errlen) {
    int has_sys = strcmp(role(m[0]), "system") == 0;
    if (truthy(q->tools)) {
        puts_(r, "<|im_start|>system\n");
        if (has_sys) put_str(r, mfield(m[0], "content")); /* {{ }}, so str(), not + */
        else puts_(r, QWEN25_SYSTEM);
        puts_(r, "\n\n");
        puts_(r, TOOLS_HEAD);
        for (const cJSON *t = q->tools->child; t; t = t->next) putc_(r, '\n'), put_value(r, t, 1);
        puts_(r, TOOLS_TAIL);
    } else if (has_sys) {
        const char *sys = text(m[0], 0, err, errlen);
        if (!sys) return -1;
        puts_(r, "<|im_start|>system\n");
        puts_(r, sys);
        puts_(r, "<|im_end|>\n");
    } else {
        puts_(r, "<|im_start|>system\n");
        puts_(r, QWEN25_SYSTEM);
        puts_(r, "<|im_end|>\n");
    }
    for (int i = 0; i < n; i++) {
        const char *ro = role(m[i]);
        const cJSON *calls = NULL;
        if (strcmp(ro, "assistant") == 0 && tool_calls(m[i], i, &calls, err, errlen)) return -1;
        if (strcmp(ro, "user") == 0 || (strcmp(ro, "system") == 0 && i > 0) ||
            (strcmp(ro, "assistant") == 0 && !calls)) {
            if (turn(r, m[i], i, err, errlen)) return -1;
        } else if (strcmp(ro, "assistant") == 0) {
            const cJSON *c = mfield(m[i], "content");
            puts_(r, "<|im_start|>assistant");
            if (truthy(c)) {
                const char *t = text(m[i], i, err, errlen);
                if (!t) return -1;
                putc_(r, '\n');
                puts_(r, t);
            }
            int k = 0;
            for (const cJSON *tc = calls->child; tc; tc = tc->next, k++) {
                putc_(r, '\n');
                if (put_tool_call(r, tc, 0, i, k, err, errlen)) return -1;
            }
            puts_(r, "<|im_end|>\n");
        } else if (strcmp(ro, "tool") == 0) {
            tool_turn(r, m, n, i);
        }
    }
    if (q->add_generation_prompt) puts_(r, "<|im_start|>assistant\n");
    return 0;
}

int chat_render_qwen25(const chat_req *q, buf *out, char *err, size_t errlen) {
    rd r = {out, 0};
    size_t mark = out->len;
    const cJSON **m;
    int n;
    if (load(q, &m, &n, err, errlen)) return -1;
    int rc = qwen25(&r, q, m, n, err, errlen);
    free(m);
    return finish(&r, mark, rc, err, errlen);
}
