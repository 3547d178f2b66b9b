"""The Ollama driver, through the real ``ollama.AsyncClient``, against an Ollama-protocol
server on 127.0.0.1."""

from __future__ import annotations

import asyncio

import pytest

from llmos.drivers.base import (
    BackendUnavailable,
    ChatRequest,
    ModelNotFound,
    RequestRejected,
    StreamBroken,
)
from llmos.drivers.ollama_driver import OllamaDriver, parse_ollama_host
from tests.ollama_server import count_prompt_tokens, default_responder, split_tokens

MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is a context window?"},
]


@pytest.fixture
async def driver(ollama_server):
    driver = OllamaDriver(ollama_server.host)
    yield driver
    await driver.close()


async def collect(driver, request):
    return [chunk async for chunk in driver.chat(request)]


async def test_streamed_chat_sends_num_ctx_and_returns_the_backend_counts(driver, ollama_server):
    request = ChatRequest("qwen2.5:0.5b", MESSAGES, options={"num_ctx": 8192, "num_predict": 100})
    chunks = await collect(driver, request)
    answer = "".join(c.content for c in chunks)
    assert answer == default_responder("qwen2.5:0.5b", MESSAGES, None)
    assert len(chunks) > 5  # really streamed, token by token
    final = chunks[-1]
    assert final.done and final.stats is not None
    assert final.stats.prompt_tokens == count_prompt_tokens(MESSAGES)
    assert final.stats.completion_tokens == len(chunks) - 1
    assert final.stats.done_reason == "stop"
    sent = ollama_server.requests[-1]
    assert sent["num_ctx"] == 8192 and sent["num_predict"] == 100


async def test_model_info_reads_context_length_and_capabilities(driver):
    info = await driver.model_info("qwen2.5:0.5b")
    assert info.context_length == 32768
    assert info.capabilities >= {"completion", "tools"}
    assert info.family == "qwen2"
    embed = await driver.model_info("nomic-embed-text:latest")
    assert embed.can_embed and not embed.can_chat and embed.embedding_length == 768
    names = {m.name for m in await driver.list_models()}
    assert {"qwen2.5:0.5b", "llava:7b", "nomic-embed-text:latest", "tiny:latest"} <= names


async def test_embeddings_come_back_in_a_batch(driver):
    vectors = await driver.embed("nomic-embed-text:latest", ["one", "two", "three"])
    assert len(vectors) == 3 and all(len(v) == 768 for v in vectors)
    assert vectors[0] != vectors[1]
    with pytest.raises(RequestRejected, match="does not support embeddings"):
        await driver.embed("qwen2.5:0.5b", ["x"])


async def test_a_missing_model_says_how_to_pull_it(driver):
    with pytest.raises(ModelNotFound, match="llmos models pull nope:1b") as missing:
        await collect(driver, ChatRequest("nope:1b", MESSAGES))
    assert missing.value.model == "nope:1b"
    with pytest.raises(ModelNotFound):
        await driver.model_info("nope:1b")


async def test_nothing_listening_names_the_host_and_what_to_do(dead_host):
    driver = OllamaDriver(dead_host)
    try:
        for attempt in (driver.version(), driver.list_models()):
            with pytest.raises(BackendUnavailable) as down:
                await attempt
            assert dead_host in str(down.value)
            assert "ollama serve" in str(down.value) and "--ollama-host" in str(down.value)
        with pytest.raises(BackendUnavailable):
            await collect(driver, ChatRequest("qwen2.5:0.5b", MESSAGES))
    finally:
        await driver.close()


@pytest.mark.parametrize("kind", ["break", "error"])
async def test_a_stream_broken_mid_way_is_a_stream_error_after_partial_output(
    driver, ollama_server, kind
):
    ollama_server.fail_next = {"kind": kind, "after_tokens": 4, "message": "model crashed"}
    received = []
    with pytest.raises(StreamBroken):
        async for chunk in driver.chat(ChatRequest("qwen2.5:0.5b", MESSAGES)):
            received.append(chunk.content)
    assert len(received) == 4


async def test_server_error_before_the_stream_is_a_rejection(driver, ollama_server):
    ollama_server.fail_next = {"kind": "http", "status": 500, "message": "out of memory"}
    with pytest.raises(RequestRejected, match="out of memory"):
        await collect(driver, ChatRequest("qwen2.5:0.5b", MESSAGES))


async def test_closing_the_stream_early_stops_the_server_generation(driver, ollama_server):
    ollama_server.token_delay = 0.02
    stream = driver.chat(ChatRequest("qwen2.5:0.5b", MESSAGES))
    first = await anext(stream)
    assert first.content
    await stream.aclose()
    # The HTTP stream is closed at once, so the server's next write fails and it stops.
    entry = ollama_server.requests[-1]
    async with asyncio.timeout(2):
        while "eval_count" not in entry:
            await asyncio.sleep(0.01)
    full = len(split_tokens(default_responder("qwen2.5:0.5b", MESSAGES, None)))
    assert entry["eval_count"] < full
    assert entry.get("done_reason") is None


async def test_pull_reports_progress_and_installs(driver):
    steps = [step async for step in driver.pull("smollm2:135m")]
    assert steps[0].status == "pulling manifest"
    sized = [s for s in steps if s.total]
    assert sized and sized[-1].completed == sized[-1].total
    assert steps[-1].status == "success"
    assert "smollm2:135m" in {m.name for m in await driver.list_models()}
    await driver.delete("smollm2:135m")
    assert "smollm2:135m" not in {m.name for m in await driver.list_models()}
    with pytest.raises(ModelNotFound, match="no model called"):
        [step async for step in driver.pull("no-such-model:7b")]
    with pytest.raises(ModelNotFound):
        await driver.delete("no-such-model:7b")


async def test_loaded_models_lists_what_ran(driver):
    await collect(driver, ChatRequest("tiny:latest", MESSAGES, options={"num_ctx": 1024}))
    loaded = await driver.loaded_models()
    assert [m.name for m in loaded] == ["tiny:latest"]
    assert loaded[0].context_length == 1024


def test_hosts_are_read_like_the_official_client():
    assert parse_ollama_host(None) == "http://127.0.0.1:11434"
    assert parse_ollama_host("box") == "http://box:11434"
    assert parse_ollama_host(":8000") == "http://127.0.0.1:8000"
