/* jsonl: one JSON value per line, parsed with cJSON, with the two things cJSON alone
 * gets wrong for text: it cuts a string at an escaped NUL (\u0000), and it does not
 * check UTF-8. jsonl_parse swaps each \u0000 escape for a noncharacter the line does not
 * contain (the "sentinel") and jsonl_str swaps it back and validates, so a string comes
 * out as exact bytes with its length. */
#ifndef JSONL_H
#define JSONL_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

typedef struct {
    cJSON *root;
    uint32_t sentinel; /* the code point standing for NUL, 0 if the line had no \u0000 */
} jsonl_doc;

/* Parse line[0..len). -1 with a reason in err if it is not valid JSON. */
int jsonl_parse(const char *line, size_t len, jsonl_doc *d, char *err, size_t errlen);
void jsonl_free(jsonl_doc *d);

/* Give every number node under root its JSON literal in valuestring (freed by
 * cJSON_Delete), from the text it was parsed from, so that chat templates' tojson prints
 * 1.0 as 1.0 and big integers exactly (cJSON keeps only a double). jsonl_parse does
 * this already. -1 if out of memory. */
int json_keep_numbers(cJSON *root, const char *text, size_t len);

/* The bytes of string item (NULs restored) into out (cleared first). -1 if item is not a
 * string, or if its text is not valid UTF-8 (err gives the byte offset). */
int jsonl_str(const jsonl_doc *d, const cJSON *item, buf *out, char *err, size_t errlen);

/* Append s[0..n) to out as a JSON string literal (quotes included), escaped exactly as
 * Python's json.dumps(ensure_ascii=False) does: ", \, \n \r \t \b \f, other controls
 * as \u00xx, everything else raw UTF-8. -1 if out of memory. */
int json_put_str(buf *out, const char *s, size_t n);

/* A JSON Lines batch: for each line of in (newline and CR stripped), one(ctx, line, len,
 * out, err, errlen) appends the answer object to out; a line it fails gets
 * {"error": "line N: why", "line": N} in its place and report(ctx, "line N: why") is
 * called, and the batch goes on. Answers are written to outf one per line, in order.
 * Returns the number of failed lines, or -1 if writing failed. */
typedef int (*jsonl_fn)(void *ctx, const char *line, size_t len, buf *out, char *err, size_t errlen);
long jsonl_run(FILE *in, FILE *outf, jsonl_fn one, void (*report)(void *ctx, const char *msg), void *ctx);

#endif
