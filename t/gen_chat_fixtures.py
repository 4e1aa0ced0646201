#!/usr/bin/env python3
"""Write t/fixtures/chat_extra.jsonl: edge cases of the Qwen3 and Qwen2.5 chat templates,
rendered by transformers' apply_chat_template (the reference lib/chat.c must match).

    /work/venv/bin/python t/gen_chat_fixtures.py   # needs transformers, jinja2, tokenizers

Fields as in chat_public.jsonl (name, messages, tools (null = not passed),
add_generation_prompt, enable_thinking (null = not passed), rendered, ids) plus
"template": "qwen3" | "qwen2.5", and "error" ("Type: message") with rendered and ids
null where transformers raised. The Qwen3 template is the one in tokenizer_config.json;
the Qwen2.5 one is passed as chat_template=. Output is deterministic.
"""
import json
import os
import sys

from transformers import AutoTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
TOK_DIR = os.path.join(HERE, "fixtures", "qwen3-tokenizer")
OUT = os.path.join(HERE, "fixtures", "chat_extra.jsonl")

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. \"Paris\""},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}
# Escapes, non-ASCII, floats and big ints as tojson must write them.
ODD_TOOL = {
    "type": "function",
    "function": {
        "name": "odd",
        "description": "Quotes \" backslash \\ newline \n tab \t ctrl \u0001 del \u007f "
        "nbsp \u00a0 ls \u2028 é 中文 😀 <b>&amp;</b>",
        "parameters": {"type": "object", "properties": {
            "x": {"type": "number", "minimum": 0.0, "maximum": 1e16, "default": 0.1,
                  "multipleOf": 1e-07, "examples": [1.5, -2.25, 100.0, 1e300, -0.0, 5e-324]},
            "n": {"type": "integer", "maximum": 12345678901234567890, "minimum": -9007199254740993},
            "flag": {"type": "boolean", "default": False}, "none": {"default": None}}},
    },
}
NESTED_ARGS = {"q": "naïve \"café\"\n\ttab\\", "n": [1, 2.0, 1e-07, 1e+16, 0.1, 12345678901234567890,
               -3, 3.14159, 1e22, 2.5e-5], "ok": True, "nothing": None, "deep": {"a": {"b": [{"c": "ü"}]}},
               "emoji": "😀", "ctrl": "\u0001\u001f\u007f\u0085\u2029"}


def call(name, args, wrapped=True, **extra):
    fn = {"name": name, "arguments": args}
    return dict({"type": "function", "function": fn}, **extra) if wrapped else fn


def U(c):
    return {"role": "user", "content": c}


def A(c, **kw):
    return dict({"role": "assistant", "content": c}, **kw)


def S(c):
    return {"role": "system", "content": c}


def T(c):
    return {"role": "tool", "content": c}


# (name, template, messages, tools, add_generation_prompt, enable_thinking)
CASES = [
    # ---- Qwen3 ----
    ("q3_tool_call_string_args_nested", "qwen3",
     [U("weather?"), A("", tool_calls=[call("get_weather", '{"city": "Paris", "opts": {"deg": 1.0, "x": [1, "é"]}}')])],
     [WEATHER], False, None),
    ("q3_tool_call_nested_args_floats_unicode", "qwen3",
     [U("go"), A("ok", tool_calls=[call("odd", NESTED_ARGS)])], [ODD_TOOL], True, None),
    ("q3_tools_escapes_floats_bigints", "qwen3", [U("hi")], [ODD_TOOL, WEATHER], True, None),
    ("q3_reasoning_content_with_tool_calls_last", "qwen3",
     [U("weather in Paris?"), A("Let me check.", reasoning_content="\nNeed the tool.\n",
                                tool_calls=[call("get_weather", {"city": "Paris"})])],
     [WEATHER], False, None),
    ("q3_multiple_system_messages", "qwen3",
     [S("first system"), U("hi"), S("second system"), A("hello"), U("again")], None, True, None),
    ("q3_multiple_system_with_tools", "qwen3",
     [S("first system"), S("second system"), U("hi")], [WEATHER], True, None),
    ("q3_empty_contents", "qwen3", [S(""), U(""), A(""), U("")], None, True, None),
    ("q3_empty_assistant_last", "qwen3", [U("x"), A("")], None, False, None),
    ("q3_tools_thinking_off", "qwen3", [S("sys"), U("weather?")], [WEATHER], True, False),
    ("q3_tools_empty_list", "qwen3", [S("sys"), U("hi")], [], True, None),
    ("q3_thinking_off_no_gen_prompt", "qwen3", [U("hi"), A("hello")], None, False, False),
    ("q3_thinking_on_explicit_tools", "qwen3", [U("hi")], [WEATHER], True, True),
    ("q3_tool_content_null", "qwen3",
     [U("go"), A("", tool_calls=[call("f", {})]), T(None)], None, True, None),
    ("q3_tool_content_missing", "qwen3",
     [U("go"), A("", tool_calls=[call("f", {})]), {"role": "tool"}], None, True, None),
    ("q3_tool_content_list_repr", "qwen3",
     [U("go"), A("", tool_calls=[call("f", {})]),
      T([{"type": "text", "text": "it's \"quoted\"\n\t\\ é \u00a0 \u2028 \u0001 \u007f 😀 \u200b"},
         {"n": 1, "f": 2.5, "big": 12345678901234567890, "t": True, "z": None, "e": 1e-07,
          "l": [], "d": {}, "s": "plain 'single'"}])],
     None, True, None),
    ("q3_tool_content_scalars", "qwen3",
     [U("go"), A("", tool_calls=[call("f", {}), call("g", {})]), T(42), T(1.0), T(True), T({"a": "b"}),
      T(False), T(1e16), T("")],
     None, True, None),
    ("q3_unknown_role_skipped", "qwen3",
     [{"role": "developer", "content": "dev"}, U("hi"), {"role": "function", "content": "f"}, A("yo")],
     None, True, None),
    ("q3_tool_call_name_not_string", "qwen3",
     [U("go"), A("", tool_calls=[call(3.5, {"a": 1}), {"type": "function", "function": {"arguments": {}}},
                                  call(None, "raw"), call(["x", 1], {})])],
     None, False, None),
    ("q3_tool_call_flat", "qwen3",
     [U("go"), A("calling", tool_calls=[call("f", {"a": 1}, wrapped=False), call("g", "{}", wrapped=False)])],
     None, False, None),
    ("q3_tool_call_function_empty_dict", "qwen3",
     [U("go"), A("", tool_calls=[{"function": {}, "name": "outer", "arguments": {"k": "v"}}])],
     None, False, None),
    ("q3_tool_call_arguments_null_and_scalars", "qwen3",
     [U("go"), A("", tool_calls=[call("a", None), call("b", 5), call("c", [1, "x"]), call("d", False),
                                  call("e", "")])],
     None, False, None),
    ("q3_tool_calls_empty_list", "qwen3", [U("go"), A("plain", tool_calls=[])], None, True, None),
    ("q3_thinking_alias", "qwen3", [U("hi"), A("answer", thinking="thought")], None, False, None),
    ("q3_reasoning_alias", "qwen3", [U("hi"), A("answer", reasoning="\n\nthought\n\n")], None, False, None),
    ("q3_reasoning_null_falls_back_to_content", "qwen3",
     [U("hi"), A("<think>\nparsed\n</think>\n\nanswer", reasoning_content=None)], None, False, None),
    ("q3_reasoning_empty_not_last", "qwen3",
     [U("hi"), A("one", reasoning_content="", tool_calls=[call("f", {})]), T("r"), A("two", reasoning_content="")],
     None, False, None),
    ("q3_reasoning_non_string_unused", "qwen3",
     [U("hi"), A("one", reasoning_content=[]), T("r"), A("two")], None, False, None),
    ("q3_multiple_think_tags", "qwen3",
     [U("q"), A("<think>a</think>b<think>\n\nc\n\n</think>\n\nd</think>\n\n\ne")], None, False, None),
    ("q3_think_without_open_tag", "qwen3", [U("q"), A("\n\nreasoning only\n</think>answer")], None, False, None),
    ("q3_think_in_history_stripped", "qwen3",
     [U("q1"), A("<think>r1</think>a1"), U("q2"), A("<think>\nr2\n</think>\n\na2"), U("q3")], None, True, None),
    ("q3_multi_step_tools_reasoning", "qwen3",
     [S("sys"), U("plan a trip"),
      A("", reasoning_content="step 1", tool_calls=[call("get_weather", {"city": "Oslo"})]),
      T('{"temp": -3.5}'),
      A("<think>step 2</think>checking more", tool_calls=[call("get_weather", {"city": "Rome"}),
                                                         call("get_weather", {"city": "Nice"})]),
      T("sunny"), T("rain"),
      U("<tool_response>\nextra\n</tool_response>"),
      A("<think>\nfinal thought\n</think>\n\nDone.")],
     [WEATHER], True, None),
    ("q3_tool_first_message", "qwen3", [T("orphan"), U("hi")], None, True, None),
    ("q3_tools_at_end_no_gen_prompt", "qwen3",
     [U("go"), A("", tool_calls=[call("f", {})]), T("a"), T("b")], None, False, None),
    ("q3_user_tool_response_only", "qwen3",
     [U("<tool_response>x</tool_response>"), A("<think>r</think>a")], None, False, None),
    ("q3_assistant_first", "qwen3", [A("<think>r</think>hello"), U("hi")], None, True, None),
    ("q3_content_special_whitespace", "qwen3",
     [S("  sys  \n"), U("\r\n tabs\tand\u3000ideographic\u2028sep\n"), A("\n\nleading newlines")], None, False, None),
    ("q3_long_unicode", "qwen3", [U("日本語のテキスト" * 20 + " ☃ 🎉 ∑")], None, True, None),
    # errors: transformers raises
    ("q3_err_assistant_content_null_tool_calls", "qwen3",
     [U("go"), A(None, tool_calls=[call("f", {})])], None, True, None),
    ("q3_err_user_content_list", "qwen3", [U([{"type": "text", "text": "hi"}])], None, True, None),
    ("q3_err_user_content_missing", "qwen3", [{"role": "user"}], None, True, None),
    ("q3_err_system_content_number", "qwen3", [S(5), U("hi")], None, True, None),
    ("q3_err_tool_call_no_arguments", "qwen3", [U("go"), A("", tool_calls=[{"function": {"name": "f"}}])],
     None, True, None),
    ("q3_err_tool_calls_dict", "qwen3", [U("go"), A("", tool_calls={"function": {"name": "f", "arguments": {}}})],
     None, True, None),
    ("q3_err_tool_call_function_string", "qwen3", [U("go"), A("", tool_calls=[{"function": "f"}])],
     None, True, None),
    ("q3_err_reasoning_non_string_used", "qwen3", [U("hi"), A("x", reasoning_content=5)], None, True, None),
    ("q3_err_empty_conversation", "qwen3", [], None, True, None),
    ("q3_err_tool_not_object", "qwen3", [U("hi")], ["get_weather"], True, None),
    # ---- Qwen2.5 ----
    ("q25_no_system", "qwen2.5", [U("Hello!")], None, True, None),
    ("q25_system", "qwen2.5", [S("You are terse."), U("Hello!")], None, True, None),
    ("q25_multi_turn_no_gen_prompt", "qwen2.5",
     [S("sys"), U("q1"), A("<think>kept</think>a1"), U("q2"), A("a2")], None, False, None),
    ("q25_tools_no_system", "qwen2.5", [U("weather?")], [WEATHER], True, None),
    ("q25_tools_with_system", "qwen2.5", [S("You are a weather bot."), U("weather?")], [WEATHER, ODD_TOOL], True, None),
    ("q25_tool_calls_full_loop", "qwen2.5",
     [S("sys"), U("weather in Paris and Rome?"),
      A("Checking.", tool_calls=[call("get_weather", {"city": "Paris"}), call("get_weather", {"city": "Rome"})]),
      T('{"temp": 21.5}'), T({"temp": 25.0}),
      A("Paris 21.5, Rome 25.")],
     [WEATHER], True, None),
    ("q25_tool_call_content_null", "qwen2.5",
     [U("go"), A(None, tool_calls=[call("f", {"a": 1.0})])], None, True, None),
    ("q25_tool_call_content_empty", "qwen2.5",
     [U("go"), A("", tool_calls=[call("f", NESTED_ARGS)])], None, False, None),
    ("q25_tool_call_string_args_quoted", "qwen2.5",
     [U("go"), A("", tool_calls=[call("f", '{"city": "Paris"}'), call("g", {"x": 1}, wrapped=False)])],
     None, False, None),
    ("q25_tool_first_and_consecutive", "qwen2.5", [T("a"), T(["b", 1]), U("hi"), T(None)], None, True, None),
    ("q25_assistant_empty_no_tool_calls", "qwen2.5", [U("hi"), A(""), A("again", tool_calls=[])], None, True, None),
    ("q25_thinking_flag_ignored", "qwen2.5", [U("hi")], None, True, False),
    ("q25_tools_system_content_list", "qwen2.5",
     [S([{"type": "text", "text": "sys"}]), U("hi")], [WEATHER], True, None),
    ("q25_tools_system_content_null", "qwen2.5", [S(None), U("hi")], [WEATHER], True, None),
    ("q25_multiple_system_unknown_role", "qwen2.5",
     [S("a"), S("b"), {"role": "developer", "content": "dev"}, U("hi")], None, True, None),
    ("q25_tool_call_function_null_name", "qwen2.5",
     [U("go"), A("x", tool_calls=[call(None, {}), {"function": {"arguments": []}}])], None, False, None),
    ("q25_err_system_content_list_no_tools", "qwen2.5", [S([{"type": "text", "text": "sys"}]), U("hi")],
     None, True, None),
    ("q25_err_user_content_missing", "qwen2.5", [{"role": "user"}], None, True, None),
    ("q25_err_content_number_with_tool_calls", "qwen2.5", [U("go"), A(7, tool_calls=[call("f", {})])],
     None, True, None),
    ("q25_err_function_null", "qwen2.5", [U("go"), A("", tool_calls=[{"function": None}])], None, True, None),
    ("q25_err_no_arguments", "qwen2.5", [U("go"), A("", tool_calls=[{"function": {"name": "f"}}])], None, True, None),
]

# Cases whose messages must be written as raw JSON: duplicate keys (json.loads keeps the
# last value, at the first key's place).
RAW_CASES = [
    ("q3_duplicate_keys", "qwen3",
     '[{"role": "user", "content": "first", "content": "second"}, '
     '{"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f", '
     '"arguments": {"a": 1, "b": 2, "a": 3}}}]}]', None, False, None),
]


def main():
    tok = AutoTokenizer.from_pretrained(TOK_DIR)
    q25 = open(os.path.join(TOK_DIR, "qwen2.5_chat_template.jinja")).read()
    cases = [(n, t, m, json.dumps(m, ensure_ascii=False), tl, g, e) for n, t, m, tl, g, e in CASES]
    cases += [(n, t, json.loads(raw), raw, tl, g, e) for n, t, raw, tl, g, e in RAW_CASES]
    names = set()
    lines = []
    for name, template, messages, messages_json, tools, gen, think in cases:
        assert name not in names, name
        names.add(name)
        kw = {} if think is None else {"enable_thinking": think}
        if template == "qwen2.5":
            kw["chat_template"] = q25
        try:
            rendered = tok.apply_chat_template(messages, tools=tools, add_generation_prompt=gen,
                                               tokenize=False, **kw)
            ids, error = tok.encode(rendered, add_special_tokens=False), None
        except Exception as e:  # the C side must refuse these too
            rendered, ids, error = None, None, f"{type(e).__name__}: {e}"
        head = json.dumps({"name": name, "template": template}, ensure_ascii=False)[:-1]
        tail = json.dumps({"tools": tools, "add_generation_prompt": gen, "enable_thinking": think,
                           "rendered": rendered, "ids": ids, "error": error}, ensure_ascii=False)[1:]
        lines.append(f'{head}, "messages": {messages_json}, {tail}')
    with open(OUT, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    errors = sum('"error": null' not in line for line in lines)
    print(f"{OUT}: {len(lines)} cases, {errors} expected to raise", file=sys.stderr)


if __name__ == "__main__":
    main()
