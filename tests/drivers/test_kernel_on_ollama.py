"""The whole stack: kernel, Ollama driver and the real client against the protocol server."""

from __future__ import annotations

import asyncio

from llmos.bootstrap import build_kernel
from llmos.config import load_settings
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
