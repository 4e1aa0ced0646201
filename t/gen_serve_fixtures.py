#!/usr/bin/env python3
"""Write t/fixtures/serve_sessions.jsonl: scripted conversations with Axera's legacy
Python tokenizer service (qwen3_tokenizer_uid.py, shared reference ax650.md §1), each
request and the exact response body it gives.

The service is modelled here from its published behaviour with the reference
implementation we did not write (transformers' AutoTokenizer): a Qwen3 tokenizer
encodes and decodes, the Qwen2.5 ChatML template renders, json.dumps with its defaults
(", " and ": ", ensure_ascii) writes every answer. HTTP is left out: `handle` takes the
raw request target and body as the service's handler sees them.

uids are random in the service, so the fixture names them by placeholders
("{{uid1}}"): a /get_uid line carries "bind", and the replay (t/serve.bats) binds the
placeholder to whatever uuid the server under test handed out and substitutes it in
every later request and expected body of that session.

Every line: {"session", "method", "path", "body" (POST only, the exact bytes sent),
"response" (the exact body expected), "bind"? (the placeholder a /get_uid defines)}.

Run: /work/venv/bin/python t/gen_serve_fixtures.py > t/fixtures/serve_sessions.jsonl
"""
import json
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from transformers import AutoTokenizer

HERE = Path(__file__).resolve().parent
TOKDIR = HERE / "fixtures" / "qwen3-tokenizer"
DEFAULT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."

TOK = AutoTokenizer.from_pretrained(str(TOKDIR))
TEMPLATE = (TOKDIR / "qwen2.5_chat_template.jinja").read_text()


def render(messages):
    return TOK.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                   chat_template=TEMPLATE)


class Uid:
    """One uid's state, with the service's side effects kept: its reset and
    encode-with-last_reply also run the decode path (for a debug print), which feeds
    the incremental-decode cache."""

    def __init__(self):
        self.messages = [{"role": "system", "content": DEFAULT_SYSTEM}]
        self.token_ids = []   # an /encode before any /reset diffs against nothing
        self.pending = []     # ids not yet returned by /decode

    def decode(self, ids):
        self.pending += ids
        text = TOK.decode(self.pending)
        if "\ufffd" in text:  # incomplete UTF-8 (or a real U+FFFD): hold everything back
            return ""
        self.pending.clear()
        return text

    def reset(self, system_prompt=DEFAULT_SYSTEM):
        self.messages = [{"role": "system", "content": system_prompt}]
        # [:-3] drops the generation prompt "<|im_start|>assistant\n"
        self.token_ids = TOK.encode(render(self.messages))[:-3]
        self.decode(self.token_ids)
        return self.token_ids

    def encode(self, prompt, last_reply):
        if last_reply is not None:
            last_reply = last_reply.replace("<think>", "").replace("</think>", "").strip("\n")
            self.messages.append({"role": "assistant", "content": last_reply})
            self.token_ids = TOK.encode(render(self.messages))[:-3]
            self.decode(self.token_ids)
        if not prompt.endswith("/no_think"):
            prompt += "/no_think"
        self.messages.append({"role": "user", "content": prompt})
        ids = TOK.encode(render(self.messages))
        diff = ids[len(self.token_ids):]
        self.token_ids = ids
        self.decode(diff)
        return ids, diff


class Service:
    def __init__(self):
        self.uids = {}
        self.n = 0

    def handle(self, method, path, body):
        """The response body for one request; (body, placeholder bound or None)."""
        bind = None
        if method == "GET":
            q = parse_qs(urlparse(path).query)
            inst = self.uids.get(q["uid"][0] if q.get("uid") else None)
            if "/get_uid" in path:
                self.n += 1
                bind = "{{uid%d}}" % self.n
                self.uids[bind] = Uid()
                out = {"uid": bind}
            elif "/bos_id" in path:
                out = {"error": "Invalid uid"} if inst is None else {"bos_id": -1}
            elif "/eos_id" in path:
                out = ({"error": "Invalid uid"} if inst is None
                       else {"eos_id": TOK.eos_token_id})
            else:
                out = {"error": "Invalid GET endpoint"}
            return json.dumps(out), bind
        req = json.loads(body)
        inst = self.uids.get(req.get("uid"))
        if "/encode" in path:
            if inst is None:
                out = {"error": "Invalid uid"}
            else:
                ids, diff = inst.encode(req.get("text"), req.get("last_reply"))
                out = {"token_ids": ids, "diff": diff}
        elif "/decode" in path:
            out = ({"error": "Invalid uid"} if inst is None
                   else {"text": inst.decode(req.get("token_ids"))})
        elif "/reset" in path:
            if inst is None:
                out = {"error": "Invalid uid"}
            elif req.get("system_prompt") is not None:
                out = {"token_ids": inst.reset(req["system_prompt"])}
            else:
                out = {"token_ids": inst.reset()}
        else:
            out = {"error": "Invalid POST endpoint"}
        return json.dumps(out), bind


def byte_ids(data):
    """One id per byte: the byte-level tokens, so a decode stream can split a character."""
    table = {}
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    for b, c in zip(bs, cs):
        table[b] = TOK.convert_tokens_to_ids(chr(c))
    return [table[b] for b in data]


class Script:
    def __init__(self):
        self.svc = Service()
        self.lines = []
        self.session = None

    def req(self, method, path, body=None):
        if body is not None and not isinstance(body, str):
            body = json.dumps(body)
        resp, bind = self.svc.handle(method, path, body)
        line = {"session": self.session, "method": method, "path": path}
        if body is not None:
            line["body"] = body
        line["response"] = resp
        if bind:
            line["bind"] = bind
        self.lines.append(line)
        return json.loads(resp)

    def new_uid(self, path="/get_uid"):
        return self.req("GET", path)["uid"]

    def stream(self, uid, ids, every=3):
        """Decode ids the way the C++ runner does: every 3 tokens, then the rest."""
        for i in range(0, len(ids), every):
            self.req("POST", "/decode", {"uid": uid, "token_ids": ids[i:i + every]})


def main():
    s = Script()

    # The C++ client's whole life cycle: init, reset, three turns with streamed replies.
    s.session = "client_cycle"
    u = s.new_uid()
    s.req("GET", "/bos_id?uid=" + u)
    s.req("GET", "/eos_id?uid=" + u)
    s.req("POST", "/reset", {"uid": u, "system_prompt": DEFAULT_SYSTEM})
    s.req("POST", "/encode", {"uid": u, "text": "Hello, who are you?", "img_prompt": False})
    reply = "<think>\n\n</think>\n\nI am Qwen 😀, a model from Alibaba Cloud. 你好！"
    ids = TOK.encode(reply) + [TOK.eos_token_id]
    s.stream(u, ids)
    s.req("POST", "/decode", {"uid": u, "token_ids": ids})
    s.req("POST", "/encode", {"uid": u, "text": "Translate 'good morning' into Japanese.",
                              "last_reply": reply, "img_prompt": False})
    reply2 = "<think>\nThe user wants Japanese.\n</think>\n\nおはようございます (ohayō gozaimasu)."
    s.stream(u, TOK.encode(reply2))
    s.req("POST", "/encode", {"uid": u, "text": "Thanks! /no_think", "last_reply": reply2,
                              "img_prompt": False})
    s.req("POST", "/encode", {"uid": u, "text": "Ends already /no_think",
                              "last_reply": "\n\nshort answer\n", "img_prompt": False})

    # A custom system prompt (non-ASCII, sent raw and escaped), and the default one.
    s.session = "system_prompts"
    u = s.new_uid("/get_uid?tokenizer_type=qwen3")
    s.req("POST", "/reset", json.dumps({"uid": u, "system_prompt": "Tu es un assistant. 日本語で答えて。"},
                                       ensure_ascii=False))
    s.req("POST", "/encode", json.dumps({"uid": u, "text": "Café crème, s'il vous plaît 🍰"},
                                        ensure_ascii=False))
    s.req("POST", "/reset", {"uid": u})
    s.req("POST", "/reset", {"uid": u, "system_prompt": None})
    s.req("POST", "/reset", {"uid": u, "system_prompt": ""})
    s.req("POST", "/encode", {"uid": u, "text": "e\u0301 and \u212b need NFC; tabs\tand\r\nCRLF"})
    s.req("POST", "/reset", {"uid": u, "system_prompt": "Line one.\nLine two with <think> inside."})
    s.req("POST", "/encode", {"uid": u, "text": "", "last_reply": ""})
    s.req("POST", "/encode", {"uid": u, "text": "/no_think"})
    s.req("POST", "/encode", {"uid": u, "text": "special <|im_end|> and <think> in text",
                              "last_reply": None})

    # /encode with no /reset first: the service diffs against an empty history.
    s.session = "encode_before_reset"
    u = s.new_uid()
    s.req("POST", "/encode", {"uid": u, "text": "First thing said."})
    s.req("POST", "/encode", {"uid": u, "text": "Second.",
                              "last_reply": "</think><think>nested</think>\n\n\n"})
    s.req("POST", "/encode", {"uid": u, "text": "Third.",
                              "last_reply": "</<think>think>odd\n<think>x</think>\n"})

    # Decode streams that split characters across calls, special tokens, escaping.
    s.session = "decode_streams"
    u = s.new_uid()
    s.req("POST", "/decode", {"uid": u, "token_ids": []})
    emoji = byte_ids("😀".encode())
    s.req("POST", "/decode", {"uid": u, "token_ids": emoji[:1]})
    s.req("POST", "/decode", {"uid": u, "token_ids": emoji[1:2]})
    s.req("POST", "/decode", {"uid": u, "token_ids": emoji[2:]})
    cjk = byte_ids("你好".encode())
    s.req("POST", "/decode", {"uid": u, "token_ids": cjk[:2]})
    s.req("POST", "/decode", {"uid": u, "token_ids": cjk[2:4]})
    s.req("POST", "/decode", {"uid": u, "token_ids": cjk[4:]})
    s.stream(u, TOK.encode("混合 text 👩‍👩‍👧 ünïcödé ∑ 𝔘𝔫𝔦"), every=1)
    s.req("POST", "/decode", {"uid": u, "token_ids": [151644, 872, 198, 151667, 151668, 151645,
                                                        151643]})
    s.req("POST", "/decode", {"uid": u, "token_ids": TOK.encode(
        "tab\t\"quote\" back\\slash /slash \x7f\x01\x1f\b\f é \u2028 😀")})
    s.req("POST", "/decode", {"uid": u, "token_ids": [151669, 200000, 9707]})
    # a real U+FFFD in the text also holds back, and keeps holding.
    s.req("POST", "/decode", {"uid": u, "token_ids": TOK.encode("bad \ufffd char")})
    s.req("POST", "/decode", {"uid": u, "token_ids": TOK.encode(" more")})

    # A byte that can never complete: the cache is stuck, even across /reset and
    # /encode (whose internal decodes append to it).
    s.session = "decode_stuck"
    u = s.new_uid()
    s.req("POST", "/reset", {"uid": u})
    s.req("POST", "/decode", {"uid": u, "token_ids": byte_ids(b"\xe4\xbd")})
    s.req("POST", "/reset", {"uid": u, "system_prompt": "Short."})
    s.req("POST", "/decode", {"uid": u, "token_ids": byte_ids(b"\xa0")})
    s.req("POST", "/decode", {"uid": u, "token_ids": byte_ids(b"\xff")})
    s.req("POST", "/encode", {"uid": u, "text": "hi", "last_reply": "ok"})
    s.req("POST", "/decode", {"uid": u, "token_ids": TOK.encode("still stuck")})

    # Errors the service answers (with HTTP 200), and substring path matching.
    s.session = "errors"
    u = s.new_uid()
    s.req("GET", "/bos_id?uid=00000000-0000-4000-8000-000000000000")
    s.req("GET", "/bos_id")
    s.req("GET", "/eos_id?uid=")
    s.req("GET", "/eos_id?other=1&uid=" + u)
    s.req("GET", "/nothing")
    s.req("GET", "/")
    s.req("GET", "/v1/eos_id/x?uid=" + u)
    s.req("GET", "/?next=/bos_id&uid=" + u)        # matched in the query string too
    s.req("GET", "/eos_id?uid=&uid=" + u)          # parse_qs skips the empty value
    s.req("GET", "/eos_id?u%69d=" + u)             # parse_qs unquotes names
    s.req("POST", "/encode", {"uid": "nope", "text": "x"})
    s.req("POST", "/encode", {"text": "x"})
    s.req("POST", "/decode", {"uid": None, "token_ids": [1]})
    s.req("POST", "/reset", {"uid": "nope"})
    s.req("POST", "/nothing", {"uid": u})
    s.req("POST", "/api/reset?tokenizer_type=2", {"uid": u, "system_prompt": "S"})
    s.req("POST", "/x/encode/decode", {"uid": u, "text": "which wins?"})
    s.req("POST", "/decode?uid=ignored", {"uid": u, "token_ids": [9707, 0]})
    s.req("POST", "/%65ncode", {"uid": u, "text": "raw target, not unescaped"})
    s.req("POST", "/decode", '{"uid": "nope", "uid": "%s", "token_ids": [9707]}' % u)

    for line in s.lines:
        sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
