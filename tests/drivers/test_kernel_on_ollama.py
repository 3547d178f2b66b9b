"""The whole stack: kernel, Ollama driver and the real client against the protocol server."""

from __future__ import annotations

import asyncio
import base64

import pytest

from llmos.bootstrap import build_kernel
from llmos.config import load_settings
from llmos.kernel.context import PromptTooLarge
from llmos.kernel.events import TokenStreamed


async def test_a_long_conversation_stays_within_num_ctx_as_the_server_counts(ollama_server):
    settings = load_settings({"ollama_host": ollama_server.host, "num_ctx": 1024})
    kernel = build_kernel(settings)
    try:
        process = await kernel.spawn("chat", model="qwen2.5:0.5b")
        errors = []
        for turn in range(25):
            result = await kernel.send(
                process.pid, f"Turn {turn}. Tell me more about pages, frames and swapping."
            )
            reported = result.prompt_tokens_reported
            errors.append(abs(result.prompt_tokens_accounted - reported) / reported)
        chats = [r for r in ollama_server.requests if r["path"] == "/api/chat"]
        assert len(chats) == 25
        for sent in chats:
            assert sent["num_ctx"] == 1024
            assert sent["prompt_tokens"] + sent["num_predict"] <= 1024
            assert not sent["truncated"]
        assert result.dropped_turns > 0  # the conversation outgrew the window
        # After the first call the kernel's count is within 2% of the server's.
        assert max(errors[1:]) <= 0.02, errors
    finally:
        await kernel.shutdown()


async def test_killing_a_process_stops_the_server_streaming(ollama_server):
    ollama_server.token_delay = 0.02
    kernel = build_kernel(load_settings({"ollama_host": ollama_server.host}))
    try:
        process = await kernel.spawn("chat", model="qwen2.5:0.5b")
        first_token = asyncio.Event()
        kernel.bus.subscribe(lambda e: first_token.set(), TokenStreamed)
        turn = asyncio.create_task(kernel.send(process.pid, "talk slowly"))
        await asyncio.wait_for(first_token.wait(), 5)
        kernel.kill(process.pid)
        assert kernel.scheduler.free_slots == kernel.scheduler.slots
        await asyncio.gather(turn, return_exceptions=True)
        entry = ollama_server.requests[-1]
        async with asyncio.timeout(2):
            while "eval_count" not in entry:
                await asyncio.sleep(0.01)
        assert entry.get("done_reason") is None  # cut off, not finished
    finally:
        await kernel.shutdown()


DENSE = {
    "digits": lambda turn: ",".join(str(turn * 37 + i) for i in range(60)),
    "csv": lambda turn: "\n".join(f"{turn},{i},{i * 3.5},x{i}" for i in range(25)),
    "cjk": lambda turn: "内存分页和上下文窗口" * (6 + turn % 4),
    "code": lambda turn: f"def f{turn}(x):\n    return [x[i] ** 2 for i in range({turn})]\n" * 6,
}


@pytest.mark.parametrize("kind", sorted(DENSE))
async def test_dense_text_never_overflows_the_window(ollama_server, kind):
    """Numbers, CSV, CJK and code are 1-2 bytes a token: the estimate must not undercount."""
    kernel = build_kernel(load_settings({"ollama_host": ollama_server.host, "num_ctx": 1024}))
    try:
        process = await kernel.spawn("chat", model="qwen2.5:0.5b")
        for turn in range(12):
            await kernel.send(process.pid, DENSE[kind](turn))
        for sent in (r for r in ollama_server.requests if r["path"] == "/api/chat"):
            assert sent["prompt_tokens"] + sent["num_predict"] <= 1024, sent["prompt_tokens"]
            assert not sent["truncated"]
    finally:
        await kernel.shutdown()


async def test_a_dense_prompt_too_large_for_the_window_is_refused_not_truncated(ollama_server):
    kernel = build_kernel(load_settings({"ollama_host": ollama_server.host, "num_ctx": 2048}))
    try:
        process = await kernel.spawn("chat", model="qwen2.5:0.5b")
        with pytest.raises(PromptTooLarge):
            await kernel.send(process.pid, "1," * 1100)  # 2,200 tokens as the server counts
        assert not [r for r in ollama_server.requests if r["path"] == "/api/chat"]
    finally:
        await kernel.shutdown()


async def test_images_are_counted_apart_from_text(ollama_server):
    image = base64.b64encode(bytes(range(256)) * 8).decode()
    kernel = build_kernel(load_settings({"ollama_host": ollama_server.host, "num_ctx": 4096}))
    try:
        process = await kernel.spawn("chat", model="llava:7b")
        await kernel.send(process.pid, "What is in this picture?", images=[image])
        for turn in range(10):
            await kernel.send(process.pid, f"Turn {turn}: and what about the colours there?")
        other = base64.b64encode(bytes(range(255, -1, -1))).decode()
        await kernel.send(process.pid, "And this one?", images=[other])
        for sent in (r for r in ollama_server.requests if r["path"] == "/api/chat"):
            assert sent["prompt_tokens"] + sent["num_predict"] <= 4096
            assert not sent["truncated"]
        counter = kernel.calibration.for_model("llava:7b")
        assert counter.image_tokens == pytest.approx(256, abs=8)  # the server's image cost
    finally:
        await kernel.shutdown()
