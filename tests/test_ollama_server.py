"""Tests of the fake Ollama server, driven by the real ``ollama`` client over real HTTP."""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import ollama
import pytest

from tests.ollama_server import (
    DEFAULT_MODELS,
    NO_VISION_ERROR,
    PULL_ERROR,
    ModelSpec,
    OllamaTestServer,
    count_prompt_tokens,
    count_tokens,
    default_responder,
    split_tokens,
)

MODEL = "qwen2.5:0.5b"
EMBED = "nomic-embed-text"
IMAGE = (  # a 1x1 PNG, base64
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "City name"}},
            "required": ["city"],
        },
    },
}


def user(text: str) -> dict[str, Any]:
    """A user message."""
    return {"role": "user", "content": text}


CONVERSATION = [
    {"role": "system", "content": "You are the LLM-OS kernel."},
    user("Open the file manager, please."),
]


@pytest.fixture
def server() -> Iterator[OllamaTestServer]:
    """A fresh server per test."""
    with OllamaTestServer() as srv:
        yield srv


@pytest.fixture
def client(server: OllamaTestServer) -> Iterator[ollama.Client]:
    """A real synchronous ollama client bound to ``server``."""
    with ollama.Client(host=server.host, timeout=10) as c:
        yield c


def stream_text(parts: Any) -> tuple[str, list[Any]]:
    """Concatenate a streamed chat; return (text, chunks)."""
    chunks = list(parts)
    return "".join(c.message.content or "" for c in chunks), chunks


# --------------------------------------------------------------------------- tokenizer


def test_count_tokens_formula() -> None:
    assert count_tokens("") == 0
    assert count_tokens("   \n") == 0
    assert count_tokens("Hello, world!") == 4
    assert count_tokens("internationalization") == 4  # ceil(20 / 6)
    assert count_tokens("abcdef abcdefg") == 3
    assert count_tokens("héllo wörld") == 2  # non-ASCII letters are word characters
    assert count_tokens("日本語のテキスト") == 2  # 8 letters -> ceil(8 / 6)
    assert count_tokens("a+b=c") == 5
    # Not bytes/4:
    assert count_tokens("x" * 400) == 67


@pytest.mark.parametrize(
    "text",
    [
        "",
        "one",
        "  lead and trail  ",
        "Hello, internationalization!\n\nNew para.",
        "émigré naïve café – “quotes” 日本語",
        "tabs\tand\nnewlines\r\n",
        "a_b_c 123456789",
    ],
)
def test_split_tokens_roundtrip(text: str) -> None:
    pieces = split_tokens(text)
    assert "".join(pieces) == text
    if text.strip():
        assert len(pieces) == count_tokens(text)


def test_count_prompt_tokens_formula() -> None:
    msgs = [{"role": "system", "content": "Be brief."}, user("Hello, world!")]
    # (4 + 3) + (4 + 4) + 3
    assert count_prompt_tokens(msgs) == 18
    # Prefill: last assistant message has no closing token and no generation prompt.
    assert count_prompt_tokens([*msgs, {"role": "assistant", "content": "Sure"}]) == 15 + 4
    # Missing content counts as empty.
    assert count_prompt_tokens([{"role": "user"}]) == 7
    tools = [WEATHER_TOOL]
    expected_tools = count_tokens(json.dumps(tools, ensure_ascii=False)) + 10
    assert count_prompt_tokens(msgs, tools) == 18 + expected_tools
    calls = [{"function": {"name": "f", "arguments": {"x": 1}}}]
    with_calls = [user("hi"), {"role": "assistant", "content": "", "tool_calls": calls}]
    calls_tokens = count_tokens(json.dumps(calls, ensure_ascii=False))
    assert count_prompt_tokens(with_calls) == (4 + 1) + (3 + calls_tokens)
    with_image = [{"role": "user", "content": "what is this", "images": [IMAGE, IMAGE]}]
    assert count_prompt_tokens(with_image) == 4 + 3 + 512 + 3


def test_default_responder_is_deterministic() -> None:
    msgs = [user("Tell me about the memory manager")]
    a = default_responder(MODEL, msgs, None)
    assert a == default_responder(MODEL, msgs, None)
    assert a.startswith("Reply 1: ")
    assert 20 <= count_tokens(a) <= 42
    other = default_responder(
        MODEL, [*msgs, {"role": "assistant", "content": a}, user("more")], None
    )
    assert other.startswith("Reply 2: ") and other != a


# --------------------------------------------------------------------------- chat


def test_stream_concatenation_equals_non_streamed(
    server: OllamaTestServer, client: ollama.Client
) -> None:
    full = client.chat(MODEL, CONVERSATION)
    assert full.done and full.done_reason == "stop"
    text, chunks = stream_text(client.chat(MODEL, CONVERSATION, stream=True))
    assert text == full.message.content
    assert len(chunks) == count_tokens(text) + 1
    assert all(not c.done for c in chunks[:-1])
    last = chunks[-1]
    assert last.done and last.done_reason == "stop" and last.message.content == ""
    assert last.eval_count == full.eval_count == count_tokens(text)
    assert last.eval_duration and last.eval_duration > 0
    assert last.total_duration and last.load_duration is not None
    assert last.prompt_eval_duration and last.prompt_eval_duration > 0


def test_async_client_stream_and_concurrency(server: OllamaTestServer) -> None:
    async def run() -> tuple[str, str, list[str]]:
        async with ollama.AsyncClient(host=server.host, timeout=10) as c:
            full = await c.chat(MODEL, CONVERSATION)
            text = ""
            async for part in await c.chat(MODEL, CONVERSATION, stream=True):
                text += part.message.content or ""

            async def one(i: int) -> str:
                out = ""
                async for part in await c.chat(MODEL, [user(f"question {i}")], stream=True):
                    out += part.message.content or ""
                return out

            many = await asyncio.gather(*(one(i) for i in range(20)))
            return full.message.content or "", text, list(many)

    full, text, many = asyncio.run(run())
    assert text == full
    for i, answer in enumerate(many):
        assert answer == default_responder(MODEL, [user(f"question {i}")], None)


def test_num_predict_stops_with_length(client: ollama.Client) -> None:
    full = client.chat(MODEL, CONVERSATION).message.content or ""
    text, chunks = stream_text(
        client.chat(MODEL, CONVERSATION, stream=True, options={"num_predict": 5})
    )
    assert chunks[-1].done_reason == "length"
    assert chunks[-1].eval_count == 5
    assert text == "".join(split_tokens(full)[:5])
    short = client.chat(MODEL, CONVERSATION, options={"num_predict": 3})
    assert short.done_reason == "length" and short.eval_count == 3


def test_prompt_eval_count_matches_formula(server: OllamaTestServer, client: ollama.Client) -> None:
    msgs = [*CONVERSATION, {"role": "assistant", "content": "Done."}, user("Now the editor.")]
    r = client.chat(MODEL, msgs)
    assert r.prompt_eval_count == count_prompt_tokens(msgs)
    # With tools, the count uses the tools exactly as the client serialized them.
    r = client.chat(MODEL, msgs, tools=[WEATHER_TOOL])
    body = server.requests[-1]["body"]
    assert r.prompt_eval_count == count_prompt_tokens(body["messages"], body["tools"])
    assert r.prompt_eval_count > count_prompt_tokens(msgs)
    log = server.requests[-1]
    assert log["path"] == "/api/chat" and log["model"] == MODEL
    assert log["num_ctx"] == 4096 and log["num_predict"] is None
    assert log["prompt_tokens"] == r.prompt_eval_count and log["truncated"] is False
    client.chat(MODEL, msgs, options={"num_ctx": 8192, "num_predict": 9})
    assert server.requests[-1]["num_ctx"] == 8192
    assert server.requests[-1]["num_predict"] == 9
    assert len(server.requests) == 3
    server.reset()
    assert server.requests == []


def test_prompt_cache_reporting_modes(server: OllamaTestServer) -> None:
    turn1 = list(CONVERSATION)
    with httpx.Client(base_url=server.host, timeout=10) as http:

        def chat(messages: list[dict[str, Any]]) -> dict[str, Any]:
            r = http.post("/api/chat", json={"model": MODEL, "messages": messages, "stream": False})
            assert r.status_code == 200
            return r.json()

        first = chat(turn1)
        assert first["prompt_eval_count"] == count_prompt_tokens(turn1)
        assert first["prompt_eval_cached_count"] == 0
        turn2 = [*turn1, first["message"], user("And then?")]
        second = chat(turn2)
        assert second["prompt_eval_count"] == count_prompt_tokens(turn2)
        # Cached = previous prompt + previously generated tokens.
        assert (
            second["prompt_eval_cached_count"] == first["prompt_eval_count"] + first["eval_count"]
        )

        server.report_prompt_eval = "omit_on_cache"
        turn3 = [*turn2, second["message"], user("Thanks")]
        third = chat(turn3)
        assert "prompt_eval_count" not in third and "prompt_eval_cached_count" not in third
        # Other model, empty cache -> reported; the cache is per model.
        r = http.post(
            "/api/chat", json={"model": "tiny", "messages": [user("unrelated")], "stream": False}
        )
        assert r.json()["prompt_eval_count"] == count_prompt_tokens([user("unrelated")])

        server.report_prompt_eval = "none"
        assert "prompt_eval_count" not in chat([user("other")])
    with pytest.raises(ValueError):
        OllamaTestServer(report_prompt_eval="bogus")


def test_truncation_emulation(server: OllamaTestServer, client: ollama.Client) -> None:
    seen: list[list[dict[str, Any]]] = []

    def responder(model: str, messages: list[dict[str, Any]], tools: Any) -> str:
        seen.append(messages)
        return "ok"

    server.responder = responder
    history: list[dict[str, Any]] = [{"role": "system", "content": "system prompt"}]
    for i in range(30):
        history.append(user(f"message {i} " + "lorem ipsum dolor " * 5))
        history.append({"role": "assistant", "content": f"answer {i}"})
    history.append(user("final question"))
    assert count_prompt_tokens(history) > 256

    r = client.chat(MODEL, history, options={"num_ctx": 256})
    log = server.requests[-1]
    assert log["truncated"] is True
    assert log["prompt_tokens"] == count_prompt_tokens(history)
    assert r.prompt_eval_count is not None and r.prompt_eval_count <= 256
    kept = seen[-1]
    assert kept[0]["role"] == "system" and kept[-1]["content"] == "final question"
    assert len(kept) == log["kept_messages"] < len(history)

    client.chat(MODEL, history, options={"num_ctx": 32768})
    assert server.requests[-1]["truncated"] is False
    assert len(seen[-1]) == len(history)

    # Ollama clamps num_ctx to the model's trained context (tiny: 2048).
    big = [user("word " * 2500)]
    hard = client.chat("tiny", big, options={"num_ctx": 8192})
    assert hard.prompt_eval_count == 2048  # single message: hard-cut to the context
    assert server.requests[-1]["truncated"] is True
    assert server.requests[-1]["effective_num_ctx"] == 2048
    ps = {m.model: m for m in client.ps().models}
    assert ps["tiny:latest"].context_length == 2048


def test_prefill_continuation_equals_uninterrupted(client: ollama.Client) -> None:
    full = client.chat(MODEL, CONVERSATION).message.content or ""
    partial = client.chat(MODEL, CONVERSATION, options={"num_predict": 7})
    assert partial.done_reason == "length"
    prefix = partial.message.content or ""
    assert full.startswith(prefix) and prefix != full

    resumed_msgs = [*CONVERSATION, {"role": "assistant", "content": prefix}]
    text, chunks = stream_text(client.chat(MODEL, resumed_msgs, stream=True))
    assert prefix + text == full
    assert chunks[-1].done_reason == "stop"
    assert chunks[-1].prompt_eval_count == count_prompt_tokens(resumed_msgs)
    assert chunks[-1].eval_count == count_tokens(full) - 7

    # A prefill that is not a prefix of the answer: the full answer is generated.
    other = [*CONVERSATION, {"role": "assistant", "content": "Something else"}]
    assert client.chat(MODEL, other).message.content == full


def test_errors_match_ollama(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as err:
        client.chat("nope:1b", CONVERSATION)
    assert err.value.status_code == 404 and err.value.error == "model 'nope:1b' not found"
    with pytest.raises(ollama.ResponseError) as err:
        list(client.chat("nope", CONVERSATION, stream=True))
    assert err.value.status_code == 404 and err.value.error == "model 'nope' not found"
    with pytest.raises(ollama.ResponseError) as err:
        client.chat(EMBED, CONVERSATION)
    assert err.value.status_code == 400
    assert err.value.error == '"nomic-embed-text" does not support chat'
    with pytest.raises(ollama.ResponseError) as err:
        client.chat("tiny:latest", CONVERSATION, tools=[WEATHER_TOOL])
    assert err.value.status_code == 400 and "does not support tools" in err.value.error
    with pytest.raises(ollama.ResponseError) as err:
        client.show("missing-model")
    assert err.value.status_code == 404
    with pytest.raises(ollama.ResponseError) as err:
        client.embed(MODEL, input="hello")
    assert err.value.status_code == 400
    assert err.value.error == '"qwen2.5:0.5b" does not support embeddings'


def test_images(server: OllamaTestServer, client: ollama.Client) -> None:
    msgs = [{"role": "user", "content": "What is in this picture?", "images": [IMAGE]}]
    r = client.chat("llava:7b", msgs)
    assert r.message.content
    assert r.prompt_eval_count == count_prompt_tokens(server.requests[-1]["body"]["messages"])
    assert r.prompt_eval_count == count_prompt_tokens([user("What is in this picture?")]) + 256
    with pytest.raises(ollama.ResponseError) as err:
        client.chat("tiny", msgs)
    assert err.value.status_code == 400 and err.value.error == NO_VISION_ERROR


def test_tool_calls_from_custom_responder(server: OllamaTestServer, client: ollama.Client) -> None:
    received: list[Any] = []

    def responder(model: str, messages: list[dict[str, Any]], tools: Any) -> dict[str, Any]:
        received.append(tools)
        return {
            "tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}],
            "content": "",
        }

    server.responder = responder
    r = client.chat(MODEL, [user("weather in Paris?")], tools=[WEATHER_TOOL])
    assert r.message.tool_calls is not None
    call = r.message.tool_calls[0]
    assert call.function.name == "get_weather" and call.function.arguments == {"city": "Paris"}
    assert received[-1][0]["function"]["name"] == "get_weather"

    chunks = list(
        client.chat(MODEL, [user("weather in Paris?")], tools=[WEATHER_TOOL], stream=True)
    )
    with_calls = [c for c in chunks if c.message.tool_calls]
    assert len(with_calls) == 1 and not with_calls[0].done
    assert with_calls[0].message.tool_calls[0].function.arguments == {"city": "Paris"}
    assert chunks[-1].done and chunks[-1].done_reason == "stop"
    assert chunks[-1].eval_count and chunks[-1].eval_count > 0


# --------------------------------------------------------------------------- faults


def test_fault_break_mid_stream(server: OllamaTestServer, client: ollama.Client) -> None:
    server.fail_next = {"kind": "break", "after_tokens": 3}
    received = []
    with pytest.raises(httpx.TransportError):
        for part in client.chat(MODEL, CONVERSATION, stream=True):
            received.append(part)
    assert len(received) == 3 and not any(p.done for p in received)
    assert server.fail_next is None
    # One-shot: the next request (same client, new connection) works.
    assert client.chat(MODEL, CONVERSATION).done


def test_fault_error_mid_stream(server: OllamaTestServer, client: ollama.Client) -> None:
    server.fail_next = {"kind": "error", "after_tokens": 2, "message": "runner crashed"}
    received = []
    with pytest.raises(ollama.ResponseError) as err:
        for part in client.chat(MODEL, CONVERSATION, stream=True):
            received.append(part)
    assert err.value.error == "runner crashed"
    assert len(received) == 2
    assert client.chat(MODEL, CONVERSATION).done


def test_fault_http_status(server: OllamaTestServer, client: ollama.Client) -> None:
    server.fail_next = {"kind": "http", "status": 503, "message": "server busy"}
    with pytest.raises(ollama.ResponseError) as err:
        list(client.chat(MODEL, CONVERSATION, stream=True))
    assert err.value.status_code == 503 and err.value.error == "server busy"
    server.fail_next = {"kind": "http", "status": 500, "message": "boom"}
    with pytest.raises(ollama.ResponseError) as err:
        client.embed(EMBED, input="x")
    assert err.value.status_code == 500


def test_async_faults(server: OllamaTestServer) -> None:
    async def run() -> tuple[int, BaseException | None, int, BaseException | None]:
        async with ollama.AsyncClient(host=server.host, timeout=10) as c:
            server.fail_next = {"kind": "break", "after_tokens": 4}
            n_break, exc_break = 0, None
            try:
                async for _ in await c.chat(MODEL, CONVERSATION, stream=True):
                    n_break += 1
            except httpx.TransportError as exc:
                exc_break = exc
            server.fail_next = {"kind": "error", "after_tokens": 1, "message": "oops"}
            n_err, exc_err = 0, None
            try:
                async for _ in await c.chat(MODEL, CONVERSATION, stream=True):
                    n_err += 1
            except ollama.ResponseError as exc:
                exc_err = exc
            return n_break, exc_break, n_err, exc_err

    n_break, exc_break, n_err, exc_err = asyncio.run(run())
    assert n_break == 4 and exc_break is not None
    assert n_err == 1 and isinstance(exc_err, ollama.ResponseError)


# --------------------------------------------------------------------------- embeddings


def test_embed(client: ollama.Client) -> None:
    r = client.embed(EMBED, input="the kernel schedules processes")
    assert len(r.embeddings) == 1 and len(r.embeddings[0]) == 768
    assert math.isclose(sum(v * v for v in r.embeddings[0]), 1.0, rel_tol=1e-9)
    again = client.embed(EMBED, input=["the kernel schedules processes", "bananas are yellow"])
    assert again.embeddings[0] == r.embeddings[0]
    assert again.embeddings[1] != r.embeddings[0]
    assert again.prompt_eval_count == count_tokens("the kernel schedules processes") + count_tokens(
        "bananas are yellow"
    )

    def cos(a: Any, b: Any) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    near = client.embed(EMBED, input="the kernel schedules many processes").embeddings[0]
    assert cos(near, r.embeddings[0]) > cos(again.embeddings[1], r.embeddings[0]) + 0.3
    legacy = client.embeddings(EMBED, prompt="the kernel schedules processes")
    assert list(legacy.embedding) == list(r.embeddings[0])
    assert len(client.embed(EMBED, input="short", dimensions=64).embeddings[0]) == 64


# --------------------------------------------------------------------------- model admin


def test_show_tags_ps_version(server: OllamaTestServer, client: ollama.Client) -> None:
    show = client.show(MODEL)
    assert show.capabilities == ["completion", "tools"]
    assert show.modelinfo is not None
    assert show.modelinfo["general.architecture"] == "qwen2"
    assert show.modelinfo["qwen2.context_length"] == 32768
    assert show.details is not None and show.details.family == "qwen2"
    assert show.template and show.parameters
    emb = client.show(EMBED)
    assert emb.capabilities == ["embedding"]
    assert emb.modelinfo is not None and emb.modelinfo["nomic-bert.embedding_length"] == 768
    assert client.show("llava:7b").capabilities == ["completion", "vision"]

    names = [m.model for m in client.list().models]
    assert set(DEFAULT_MODELS) <= set(names)
    tag = next(m for m in client.list().models if m.model == MODEL)
    assert tag.size == DEFAULT_MODELS[MODEL].size and tag.digest
    assert tag.details is not None and tag.details.quantization_level == "Q4_K_M"

    assert client.ps().models == []
    client.chat(MODEL, CONVERSATION, options={"num_ctx": 8192})
    ps = client.ps().models
    assert [m.model for m in ps] == [MODEL]
    assert ps[0].context_length == 8192 and ps[0].size_vram == 0 and ps[0].expires_at
    client.chat(MODEL, [], keep_alive=0)  # unload, like `ollama stop`
    assert client.ps().models == []

    with httpx.Client(base_url=server.host) as http:
        assert http.get("/").text == "Ollama is running"
        assert http.get("/api/version").json() == {"version": "0.12.6"}
        assert http.get("/api/nothing").status_code == 404


def test_pull_and_delete(server: OllamaTestServer, client: ollama.Client) -> None:
    progress = list(client.pull("smollm2:135m", stream=True))
    statuses = [p.status for p in progress]
    assert statuses[0] == "pulling manifest"
    assert statuses[-3:] == ["verifying sha256 digest", "writing manifest", "success"]
    layer = [p for p in progress if p.digest == progress[1].digest]
    assert progress[1].status == f"pulling {progress[1].digest[7:19]}"
    completed = [p.completed for p in layer]
    assert completed == sorted(completed) and completed[-1] == layer[0].total
    assert "smollm2:135m" in [m.model for m in client.list().models]
    assert client.chat("smollm2:135m", CONVERSATION).message.content

    with pytest.raises(ollama.ResponseError) as err:
        list(client.pull("does-not-exist:7b", stream=True))
    assert err.value.error == PULL_ERROR
    with pytest.raises(ollama.ResponseError) as err:
        client.pull("does-not-exist:7b")
    assert err.value.status_code == 500 and err.value.error == PULL_ERROR

    assert client.delete("tiny").status == "success"
    assert "tiny:latest" not in [m.model for m in client.list().models]
    with pytest.raises(ollama.ResponseError) as err:
        client.chat("tiny", CONVERSATION)
    assert err.value.status_code == 404
    with pytest.raises(ollama.ResponseError) as err:
        client.delete("tiny")
    assert err.value.status_code == 404 and err.value.error == "model 'tiny' not found"
    # A deleted model can be pulled back (non-streamed).
    assert client.pull("tiny").status == "success"
    assert "tiny:latest" in [m.model for m in client.list().models]


def test_custom_models() -> None:
    spec = ModelSpec(
        name="mini",
        family="phi3",
        context_length=1024,
        capabilities=["completion"],
        parameter_size="3.8B",
    )
    with OllamaTestServer([spec]) as srv, ollama.Client(host=srv.host) as c:
        assert [m.model for m in c.list().models] == ["mini:latest"]
        info = c.show("mini").modelinfo
        assert info is not None and info["phi3.context_length"] == 1024
        assert "phi3.embedding_length" not in info


# --------------------------------------------------------------------------- transport


def test_keep_alive_many_requests(server: OllamaTestServer, client: ollama.Client) -> None:
    start = time.perf_counter()
    for i in range(300):
        if i % 2:
            assert client.chat(MODEL, [user(f"q{i}")]).done
        else:
            text, _ = stream_text(client.chat(MODEL, [user(f"q{i}")], stream=True))
            assert text
    elapsed = time.perf_counter() - start
    assert server.connections_accepted == 1
    assert len(server.requests) == 300
    assert elapsed < 5


def test_token_delay(server: OllamaTestServer, client: ollama.Client) -> None:
    server.token_delay = 0.02
    start = time.perf_counter()
    _, chunks = stream_text(
        client.chat(MODEL, CONVERSATION, stream=True, options={"num_predict": 5})
    )
    assert time.perf_counter() - start >= 0.09
    assert chunks[-1].eval_count == 5


def test_stop_leaves_no_threads() -> None:
    before = {t.ident for t in threading.enumerate()}
    srv = OllamaTestServer(token_delay=0.05).start()
    c = ollama.Client(host=srv.host, timeout=5)
    assert c.chat(MODEL, [user("hi")], options={"num_predict": 1}).done  # idle keep-alive conn
    srv.stop()
    srv.stop()  # idempotent
    leftover = [t for t in threading.enumerate() if t.ident not in before and t.is_alive()]
    assert leftover == []
    with pytest.raises((ConnectionError, httpx.TransportError)):
        c.chat(MODEL, [user("hi")])
    c.close()
