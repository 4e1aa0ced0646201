/* chat: the chat templates, rendered in C to exactly what transformers'
 * apply_chat_template produces with jinja2 (byte for byte).
 *
 *  - chat_render_qwen3: the Qwen3 template in tokenizer_config.json: system, multi-turn,
 *    <think> stripping in history except after the last user query, reasoning_content,
 *    enable_thinking=false -> empty think block, tools, assistant tool_calls (arguments
 *    as object or string), consecutive tool messages merged into one user turn,
 *    add_generation_prompt.
 *  - chat_render_qwen25: the Qwen2.5 ChatML template (default system prompt "You are
 *    Qwen, created by Alibaba Cloud. You are a helpful assistant."), which Axera's
 *    Python tokenizer service uses.
 *
 * Messages and tools are cJSON values as in the OpenAI/HF message format. tojson
 * follows transformers' own filter (one line, ", " and ": ", insertion order,
 * non-ASCII raw, Python float formatting). */
#ifndef CHAT_H
#define CHAT_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "util.h"

typedef struct {
    const cJSON *messages;     /* array of {"role","content",...} (required) */
    const cJSON *tools;        /* array, or NULL = not passed */
    int add_generation_prompt; /* 0/1 */
    int enable_thinking;       /* 1, 0, or -1 = not passed (the template's default: on) */
} chat_req;

/* Append the rendered text to out. -1 with a reason in err on malformed input
 * (messages not an array, a message without a role, ...) or out of memory. */
int chat_render_qwen3(const chat_req *r, buf *out, char *err, size_t errlen);
int chat_render_qwen25(const chat_req *r, buf *out, char *err, size_t errlen);

#endif
