"""The pager with the real embedded model: it summarises, evicts and pages a fact back in."""

from __future__ import annotations

from llmos.bootstrap import build_kernel
from llmos.config import load_settings
from llmos.drivers.embedded_driver import EmbeddedDriver
from llmos.drivers.model_store import DEFAULT_RECIPE
from llmos.kernel.events import SummaryUpdated
from llmos.memory.backing import MemoryBacking
from llmos.memory.long_term import LongTermMemory

NAME = DEFAULT_RECIPE.name
SMALL_TALK = [
    f"Describe {place} in two sentences, please: its size, its climate and its people."
    for place in (
        "Portugal", "Norway", "Kenya", "Chile", "Japan", "Canada", "Peru", "Egypt", "Iceland",
        "Vietnam",
    )
]  # fmt: skip


async def test_a_long_talk_in_a_small_window_evicts_summarises_and_recalls(default_model, tmp_path):
    driver = EmbeddedDriver(default_model, name=NAME, n_ctx=1024)
    sent = []
    chat = driver.chat

    def recording(request):
        sent.append(request)
        return chat(request)

    driver.chat = recording  # type: ignore[method-assign]
    memory = await LongTermMemory.open(tmp_path / "data")
    backing = MemoryBacking(memory)
    kernel = build_kernel(load_settings({"num_ctx": 1024}), driver=driver)

    async def link(create: bool):
        return backing

    kernel.memory = link
    summaries: list = []
    kernel.bus.subscribe(summaries.append, SummaryUpdated)
    try:
        process = await kernel.spawn("chat", model=NAME)
        process.options.update(temperature=0.0, seed=7)
        process.reserve = 48  # short answers keep the test quick
        turns = [*SMALL_TALK[:2], "Remember this: the access code of the Zorblat vault is 7731.",
                 *SMALL_TALK[2:]]  # fmt: skip
        for text in turns:
            result = await kernel.send(process.pid, text)
            assert result.dropped_turns == 0
            assert result.prompt_tokens_accounted == result.prompt_tokens_reported
        assert process.counters.evictions >= 3  # the fact's turn has left the window
        assert all(m["content"] != turns[2] for m in process.history)
        assert summaries and all(s.tokens > 0 for s in summaries)
        result = await kernel.send(process.pid, "What is the access code of the Zorblat vault?")
        asked = sent[-1].messages
        assert any("Memory page: /Processes/chat-1" in m["content"] and "7731" in m["content"]
                   for m in asked)  # fmt: skip
        assert result.page_faults >= 1
        assert "7731" in result.answer
    finally:
        await kernel.shutdown()
        await memory.close()
