"""The pager on the fake driver and real LanceDB memory: eviction, summaries, paging in."""

from __future__ import annotations

import asyncio
import random

import pytest

from llmos.drivers.base import StreamBroken
from llmos.kernel.events import PageFaults, PagesChanged, SummaryUpdated, TurnsEvicted
from llmos.kernel.pages import Page
from llmos.kernel.summaries import extractive_summary, render_turns, usable_summary
from llmos.memory.backing import MemoryBacking
from llmos.memory.long_term import LongTermMemory
from tests.fakes import count_prompt, default_answer
from tests.kernel.long_talk import conversation

WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "river",
    "mountain",
    "forest",
    "cloud",
    "engine",
    "paper",
    "window",
    "garden",
]
FACT = "Please remember: the locker code for building Zorblat is 4417."
QUESTION = "What was the locker code for building Zorblat?"


def filler(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 30))) + "."


@pytest.fixture
async def memory(tmp_path):
    memory = await LongTermMemory.open(tmp_path / "data")
    yield memory
    await memory.close()


@pytest.fixture
def backing(memory):
    return MemoryBacking(memory)


@pytest.fixture
def paged_kernel(make_kernel, backing):
    """A kernel whose pager writes to real memory."""

    def make(num_ctx: int = 1024):
        kernel = make_kernel(num_ctx=num_ctx)

        async def link(create: bool):
            return backing

        kernel.memory = link
        return kernel

    return make


def record(kernel, *types):
    seen: list = []
    kernel.bus.subscribe(seen.append, *types)
    return seen


def is_summary_call(messages) -> bool:
    return "running summary" in str(messages[0].get("content", ""))


async def test_300_turns_in_1024_tokens_never_overflow_and_turn_3_comes_back_at_250(
    paged_kernel, driver, memory
):
    kernel = paged_kernel(1024)
    events = record(kernel, TurnsEvicted, SummaryUpdated, PageFaults)
    process = await kernel.spawn("chat")
    rng = random.Random(3)
    for number in range(1, 301):
        text = FACT if number == 3 else QUESTION if number == 250 else filler(rng)
        result = await kernel.send(process.pid, text)
        request = driver.requests[-1]
        # What the backend counted, plus the answer's room, stays inside the window.
        assert count_prompt(request.messages) + request.options["num_predict"] <= 1024
        assert request.options["num_ctx"] == 1024
        assert result.dropped_turns == 0, number
        if number == 250:
            pages = [m["content"] for m in request.messages if "Memory page:" in m["content"]]
            assert any("4417" in page and "/Processes/chat-1" in page for page in pages)
            assert result.page_faults >= 1
    counters = process.counters
    assert counters.evictions > 250  # everything but the newest turns went to memory
    assert counters.page_faults > 0 and counters.page_ins >= counters.page_faults
    assert 0 < counters.summary_tokens <= kernel.pager.shares(process).summary + 64
    assert {type(e) for e in events} == {TurnsEvicted, SummaryUpdated, PageFaults}
    # Nothing was lost: every evicted turn is in memory, in order, once.
    pages = await memory.store.documents(process.memory_folder)
    evicted = [e for e in events if isinstance(e, TurnsEvicted)]
    assert len(pages) == len(evicted)
    covered = [n for e in evicted for n in range(e.first, e.last + 1)]
    assert covered == list(range(1, process.first_turn))
    assert all(page.kind == "conversation" for page in pages)


async def test_a_conversation_page_holds_its_turns_with_time_and_numbers(
    paged_kernel, memory, backing
):
    kernel = paged_kernel(1024)
    process = await kernel.spawn("chat")
    rng = random.Random(5)
    await kernel.send(process.pid, FACT)
    while not process.counters.evictions:
        await kernel.send(process.pid, filler(rng))
    (page,) = await memory.store.documents(process.memory_folder)
    assert page.path.startswith(f"{process.memory_folder}/turns-0001-")
    text = "\n".join(text for _, text in await backing.read(page.path))
    assert "## Turn 1 · 20" in text  # a date follows the turn number
    assert "**user:** " + FACT in text
    hits = (await memory.search("Zorblat locker", folder=process.memory_folder)).hits
    assert hits and hits[0].document.path == page.path


async def test_a_failing_summariser_falls_back_and_the_process_goes_on(paged_kernel, driver):
    def answer(messages):
        if is_summary_call(messages):
            raise StreamBroken("the summariser broke")
        return default_answer(messages)

    driver.answer = answer
    kernel = paged_kernel(1024)
    summaries = record(kernel, SummaryUpdated)
    process = await kernel.spawn("chat")
    rng = random.Random(1)
    for _ in range(30):
        result = await kernel.send(process.pid, filler(rng))
        assert result.dropped_turns == 0
    assert summaries and all(s.method == "extractive" for s in summaries)
    assert "summariser broke" in summaries[0].note
    assert process.counters.summary_fallbacks == process.counters.summaries > 0
    # Newest turns kept; older lines gave way to stay within the bound.
    lines = process.summary.splitlines()
    assert lines[-1].startswith(f"Turn {process.first_turn - 1}: user:")


async def test_a_looping_summary_is_nonsense_and_replaced(paged_kernel, driver):
    def answer(messages):
        if is_summary_call(messages):
            return "the the the the " * 30
        return default_answer(messages)

    driver.answer = answer
    kernel = paged_kernel(1024)
    summaries = record(kernel, SummaryUpdated)
    process = await kernel.spawn("chat")
    rng = random.Random(2)
    while not summaries:
        await kernel.send(process.pid, filler(rng))
    assert summaries[0].method == "extractive"
    assert "the the the" not in process.summary


async def test_the_model_writes_the_summary_from_the_old_one_and_the_turns(paged_kernel, driver):
    calls = []

    def answer(messages):
        if is_summary_call(messages):
            calls.append(messages[-1]["content"])
            return f"Summary number {len(calls)} of the talk about rivers and mountains."
        return default_answer(messages)

    driver.answer = answer
    kernel = paged_kernel(1024)
    process = await kernel.spawn("chat")
    rng = random.Random(4)
    while len(calls) < 2:
        await kernel.send(process.pid, filler(rng))
    assert "Previous summary:\n(none)" in calls[0]
    assert "Previous summary:\nSummary number 1" in calls[1]  # recursive
    assert process.summary == "Summary number 2 of the talk about rivers and mountains."
    summary_request = next(r for r in driver.requests if is_summary_call(r.messages))
    assert summary_request.options["num_predict"] <= 300


async def test_killed_during_eviction_the_turns_still_reach_memory(paged_kernel, backing, memory):
    kernel = paged_kernel(1024)
    release = asyncio.Event()
    saving = asyncio.Event()
    save = backing.save

    async def slow_save(*args, **kwargs):
        saving.set()
        await release.wait()
        return await save(*args, **kwargs)

    backing.save = slow_save
    process = await kernel.spawn("chat")
    rng = random.Random(6)
    await kernel.send(process.pid, FACT)
    held = []
    turn = None
    while not saving.is_set():
        held = [m["content"] for m in process.history if m["role"] == "user"]
        turn = asyncio.create_task(kernel.send(process.pid, filler(rng)))
        await asyncio.wait(
            [turn, asyncio.create_task(saving.wait())],
            timeout=5,
            return_when=asyncio.FIRST_COMPLETED,
        )
    kernel.kill(process.pid)
    await asyncio.gather(turn, return_exceptions=True)
    release.set()
    await kernel.pager.flush()
    (page,) = await memory.store.documents(process.memory_folder)
    text = "\n".join(text for _, text in await backing.read(page.path))
    assert FACT in text and held[0] == FACT


async def test_without_memory_nothing_is_evicted_and_old_turns_are_left_out(make_kernel):
    kernel = make_kernel(num_ctx=1024)

    async def broken(create: bool):
        raise OSError("disk on fire")

    kernel.memory = broken
    process = await kernel.spawn("chat")
    rng = random.Random(7)
    dropped = 0
    for _ in range(20):
        dropped = max(dropped, (await kernel.send(process.pid, filler(rng))).dropped_turns)
    assert process.counters.evictions == 0 and dropped > 0


async def test_paged_in_memory_is_replaced_when_the_topic_moves_and_user_pages_stay(
    paged_kernel, backing, driver
):
    await backing.save("/Documents/rivers.md", "The Danube river flows to the Black Sea.",
                       kind="document", title="rivers")  # fmt: skip
    await backing.save("/Documents/peaks.md", "Mount Kazbek is a mountain in the Caucasus.",
                       kind="document", title="peaks")  # fmt: skip
    kernel = paged_kernel(4096)
    changes = record(kernel, PagesChanged)
    process = await kernel.spawn("chat")
    mine = Page("/Notes/mine.md", "/Notes/mine.md", "whole document", "My own note.")
    kernel.page_in(process.pid, [mine])
    first = await kernel.send(process.pid, "Where does the Danube river flow?")
    assert [p.source for p in process.paged_in] == ["/Notes/mine.md", "/Documents/rivers.md"]
    assert first.page_faults == 1 and first.paged_in == 1
    sent = [m["content"] for m in driver.requests[-1].messages]
    assert any(c.startswith("Memory page: /Documents/rivers.md (chunk 1 of 1") for c in sent)
    again = await kernel.send(process.pid, "Tell me more about the Danube river.")
    assert again.page_faults == 0  # still held: no fault
    await kernel.send(process.pid, "Which mountain is Kazbek?")
    assert [p.source for p in process.paged_in] == ["/Notes/mine.md", "/Documents/peaks.md"]
    assert changes[-1].pages == tuple(process.paged_in)


async def test_an_app_that_may_not_search_memory_only_gets_its_own_pages_back(
    paged_kernel, backing, driver
):
    from llmos.apps.manifest import AppManifest

    await backing.save("/Documents/rivers.md", "The Danube river flows to the Black Sea.",
                       kind="document", title="rivers")  # fmt: skip
    kernel = paged_kernel(4096)
    app = AppManifest(id="sealed", name="Sealed")
    process = await kernel.spawn(app)
    result = await kernel.send(process.pid, "Where does the Danube river flow?")
    assert result.paged_in == 0 and process.paged_in == []


def test_evicted_turns_render_as_markdown_with_tool_calls():
    turns = [
        [
            {"role": "user", "content": "What time is it?", "at": 1796000000.0},
            {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "clock"}}]},
            {"role": "tool", "tool_name": "clock", "content": "12:00"},
            {"role": "assistant", "content": "Noon.", "interrupted": True},
        ]
    ]
    text = render_turns(turns, 7, "Chat (pid 1), turns 7-7")
    assert text.startswith("# Chat (pid 1), turns 7-7\n")
    assert "## Turn 7 · " in text
    assert "**assistant:** (called clock)" in text
    assert "**tool (clock):** 12:00" in text
    assert "**assistant:** Noon. [interrupted]" in text


def test_summaries_stay_within_their_bound(make_kernel):
    from llmos.kernel.tokens import CalibratedEstimator

    counter = CalibratedEstimator()
    long_turns = [
        [{"role": "user", "content": "word " * 400}, {"role": "assistant", "content": "ok"}]
    ]
    summary = extractive_summary("Turn 1: user: hello", long_turns * 40, 2, 60, counter)
    assert counter.message({"role": "system", "content": summary}) <= 60
    assert summary.splitlines()[-1].startswith("Turn 41: user: word")
    assert usable_summary("", 60, counter) == ""
    assert usable_summary("Summary: Alice chose the red car.", 60, counter) == (
        "Alice chose the red car."
    )
    assert usable_summary("A sentence here. " * 100, 30, counter) == ""  # looping
    text = " ".join(f"Item{i} costs {i * 3} coins." for i in range(100))
    cut = usable_summary(text, 30, counter)
    assert counter.message({"role": "system", "content": cut}) <= 30 and cut.endswith(".")


async def test_pages_that_come_and_go_never_push_a_request_over_the_window(paged_kernel, driver):
    """Pages arrive with a user message and leave apart from it. The token counter once
    learned such a pair's split, whose errors then compounded: a page counted at 10 tokens
    took 105, and a request the kernel counted at 647 tokens was 1,428 (of 1,024 allowed)."""
    kernel = paged_kernel(2048)
    process = await kernel.spawn("chat")
    texts, _ = conversation(random.Random(1), 300)
    for number, text in enumerate(texts, start=1):
        result = await kernel.send(process.pid, text)
        assert not result.over_budget, (number, result.prompt_tokens_reported)
    assert process.counters.overflows == 0 and process.counters.page_faults > 0


async def test_the_pagers_pages_make_way_for_the_users(paged_kernel, backing):
    await backing.save("/Documents/rivers.md", "The Danube river flows to the Black Sea.\n" * 30,
                       kind="document", title="rivers")  # fmt: skip
    kernel = paged_kernel(2048)
    process = await kernel.spawn("chat")
    await kernel.send(process.pid, "Where does the Danube river flow?")
    pagers = [page.key for page in process.paged_in if page.by_pager]
    assert pagers
    room, without = kernel.page_room(process.pid), kernel.page_room(process.pid, pagers)

    def page(words: int) -> Page:
        return Page("/Notes/n.md", "/Notes/n.md", "whole document", "note " * words)

    words = 1
    while kernel.page_cost(process.pid, page(words)) <= room:
        words += 1
    mine = page(words)  # too big beside the pager's pages, fits without them
    assert kernel.page_cost(process.pid, mine) <= without
    kernel.page_in(process.pid, [mine])
    assert process.paged_in == [mine]
