#!/usr/bin/env python3
"""serve_openai.py - talk to a running `smoe serve` with the official openai package:
list models, a chat completion, a streamed chat completion, a completion and a streamed
completion, plus two errors, checking shapes and counts (the test model has random weights,
so the text is gibberish). Prints "N passed, N failed" last; exits 1 on any failure.

usage: serve_openai.py BASE_URL API_KEY MODEL_ID     (BASE_URL like http://127.0.0.1:8080/v1)
"""
import sys

import openai

base, key, model = sys.argv[1], sys.argv[2], sys.argv[3]
client = openai.OpenAI(base_url=base, api_key=key, max_retries=0, timeout=60)
passed = failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what, file=sys.stderr)


def run(name, fn):
    try:
        fn()
    except Exception as e:  # an exception is one failed check; the others still run
        check(False, f"{name}: {type(e).__name__}: {e}")


def models():
    ids = [m.id for m in client.models.list()]
    check(ids == [model], f"models.list() = {ids}")


CHAT = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say hello."}]


def chat():
    r = client.chat.completions.create(model=model, messages=CHAT, max_tokens=8, temperature=0)
    check(r.object == "chat.completion", f"object {r.object}")
    check(len(r.choices) == 1 and r.choices[0].message.role == "assistant", "one assistant choice")
    check(isinstance(r.choices[0].message.content, str), "content is a string")
    check(r.choices[0].finish_reason in ("stop", "length"), f"finish_reason {r.choices[0].finish_reason}")
    u = r.usage
    check(u.prompt_tokens > 0 and 0 <= u.completion_tokens <= 8 and u.total_tokens == u.prompt_tokens + u.completion_tokens,
          f"usage {u}")
    again = client.chat.completions.create(model=model, messages=CHAT, max_tokens=8, temperature=0)
    check(again.choices[0].message.content == r.choices[0].message.content, "temperature 0 is deterministic")


def chat_stream():
    text, finish, chunks, usage = "", None, 0, None
    msgs = [{"role": "user", "content": "Count to three."}]
    stream = client.chat.completions.create(model=model, messages=msgs, max_tokens=12, temperature=0, stream=True,
                                            stream_options={"include_usage": True})
    objects = set()
    for ch in stream:
        chunks += 1
        objects.add(ch.object)
        if ch.usage:
            usage = ch.usage
        for c in ch.choices:
            text += c.delta.content or ""
            finish = c.finish_reason or finish
    check(objects == {"chat.completion.chunk"}, f"chunk objects {objects}")
    check(chunks >= 2, f"{chunks} chunks")
    check(finish in ("stop", "length"), f"stream finish_reason {finish}")
    check(usage is not None and usage.prompt_tokens > 0, f"stream usage {usage}")
    whole = client.chat.completions.create(model=model, messages=msgs, max_tokens=12, temperature=0)
    check(whole.choices[0].message.content == text, "streamed text == whole text")


def completion():
    r = client.completions.create(model=model, prompt="Once upon a time", max_tokens=6, temperature=0)
    check(r.object == "text_completion", f"object {r.object}")
    check(len(r.choices) == 1 and isinstance(r.choices[0].text, str), "one text choice")
    check(r.choices[0].finish_reason == "length" or r.usage.completion_tokens < 6,
          f"finish_reason {r.choices[0].finish_reason}")
    check(r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens, f"usage {r.usage}")
    text = "".join(c.choices[0].text for c in client.completions.create(
        model=model, prompt="Once upon a time", max_tokens=6, temperature=0, stream=True) if c.choices)
    check(text == r.choices[0].text, "streamed completion == whole completion")


def errors():
    try:
        client.completions.create(model="no-such-model", prompt="x", max_tokens=1)
        check(False, "unknown model accepted")
    except openai.NotFoundError as e:
        check(e.status_code == 404, f"unknown model status {e.status_code}")
    bad = openai.OpenAI(base_url=base, api_key="wrong-" + key, max_retries=0)
    try:
        bad.models.list()
        check(False, "wrong key accepted")
    except openai.AuthenticationError as e:
        check(e.status_code == 401, f"wrong key status {e.status_code}")


for name, fn in [("models", models), ("chat", chat), ("chat_stream", chat_stream), ("completion", completion),
                 ("errors", errors)]:
    run(name, fn)
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
