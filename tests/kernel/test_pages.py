"""Memory pages in a process's context RAM: page in, page out, and the room they may take."""

from __future__ import annotations

import asyncio
import math

import pytest

from llmos.kernel.context import Segment
from llmos.kernel.errors import NoSuchProcess, PageTooLarge, ProcessGone
from llmos.kernel.events import ContextUsageChanged, PagesChanged
from llmos.kernel.pages import CONVERSATION_FLOOR_TOKENS, Page
from llmos.kernel.process import ProcessState
from llmos.kernel.tokens import CalibratedEstimator
from tests.fakes import FakeDriver, FakeModel
from tests.kernel.test_kernel import record, wait_for

REPORT = Page(
    key="/Documents/report.pdf",
    source="/Documents/report.pdf",
    label="chunks 3, 7 of 12",
    text="The kernel keeps a small context window and pages older memory out.",
    chunk_ids=("report-3", "report-7"),
)


def words(key: str, count: int, *, source: str = "/Documents/long.txt") -> Page:
    """A page whose text is ``count`` words, each one token to the uncalibrated estimate."""
    return Page(key=key, source=source, label="whole document", text="word " * count)


def cost(kernel, process, page: Page) -> int:
    return kernel.page_cost(process.pid, page)


def filling(kernel, process, key: str = "/Documents/long.txt") -> Page:
    """A page that takes exactly the room the process has for new pages."""
    room = kernel.page_room(process.pid, replacing=[key])
    page = words(key, room - cost(kernel, process, words(key, 0)))
    assert cost(kernel, process, page) == room
    return page


async def test_a_page_in_fills_the_paged_in_segment_and_is_announced(kernel):
    process = await kernel.spawn("chat")
    before = process.usage
    events = record(kernel, PagesChanged, ContextUsageChanged)
    usage = kernel.page_in(process.pid, [REPORT])
    tokens = cost(kernel, process, REPORT)
    assert before.segments[Segment.PAGED_IN] == 0
    assert usage.segments[Segment.PAGED_IN] == tokens > 20
    assert usage.used == before.used + tokens
    assert process.usage == usage
    assert process.paged_in == [REPORT]
    assert [type(e) for e in events] == [PagesChanged, ContextUsageChanged]
    assert events[0].pid == process.pid and events[0].pages == (REPORT,)
    assert events[1].usage == usage


async def test_the_next_request_carries_the_page_between_the_system_prompt_and_history(
    kernel, driver
):
    process = await kernel.spawn("chat")
    await kernel.send(process.pid, "first question")
    kernel.page_in(process.pid, [REPORT])
    await kernel.send(process.pid, "what does the report say?")
    assert all(m["content"] != REPORT.message["content"] for m in driver.requests[0].messages)
    sent = driver.requests[-1].messages
    assert [m["role"] for m in sent] == ["system", "system", "user", "assistant", "user"]
    assert sent[0]["content"].startswith("You are a helpful assistant")
    assert sent[1] == {
        "role": "system",
        "content": "Memory page: /Documents/report.pdf (chunks 3, 7 of 12)\n\n"
        "The kernel keeps a small context window and pages older memory out.",
    }
    assert [m["content"] for m in sent[2:]] == [
        "first question",
        process.history[1]["content"],
        "what does the report say?",
    ]


async def test_a_page_that_does_not_fit_is_refused_and_changes_nothing(make_kernel, driver):
    kernel = make_kernel(num_ctx=1024)
    process = await kernel.spawn("chat")
    kernel.page_in(process.pid, [REPORT])
    usage = process.usage
    events = record(kernel)
    big = words("/Documents/long.txt", 400)
    with pytest.raises(PageTooLarge) as refused:
        kernel.page_in(process.pid, [big])
    room = kernel.page_room(process.pid)
    assert str(refused.value).startswith(
        f"'/Documents/long.txt' needs about {refused.value.tokens} "
    )
    assert refused.value.tokens == cost(kernel, process, big)
    assert refused.value.room == room
    assert refused.value.over_by == refused.value.tokens - room > 0
    assert f"room for {room} (the context RAM is 1024 tokens)" in str(refused.value)
    assert process.paged_in == [REPORT]
    assert process.usage is usage
    assert process.counters.page_ins == 2
    assert events == []


async def test_a_page_that_takes_all_the_room_fits_and_one_token_more_does_not(make_kernel):
    kernel = make_kernel(num_ctx=1024)
    process = await kernel.spawn("chat")
    page = filling(kernel, process)
    with pytest.raises(PageTooLarge) as refused:
        kernel.page_in(process.pid, [words(page.key, len(page.text.split()) + 1)])
    assert refused.value.over_by == 1
    usage = kernel.page_in(process.pid, [page])
    assert usage.segments[Segment.PAGED_IN] == cost(kernel, process, page)
    assert kernel.page_room(process.pid) == 0


async def test_page_room_keeps_the_conversation_floor(make_kernel, driver):
    # A small context RAM: the 256-token floor is more than an eighth of the prompt limit.
    kernel = make_kernel(num_ctx=1024)
    process = await kernel.spawn("chat")
    usage = process.usage
    assert usage.prompt_limit == 512
    usable = math.floor(512 / 1.25)  # the uncalibrated estimate's 25% margin
    fixed = usage.segments[Segment.SYSTEM] + usage.segments[Segment.TOOLS]
    expected = usable - fixed - CONVERSATION_FLOOR_TOKENS
    assert kernel.page_room(process.pid) == expected > 0

    # Filled to the brim, the process still takes a question about its page.
    kernel.page_in(process.pid, [filling(kernel, process)])
    result = await kernel.send(process.pid, "Summarise the document in one line, please.")
    assert result.dropped_turns == 0
    assert driver.requests[-1].messages[1]["content"].startswith("Memory page: ")
    for request, reported in zip(driver.requests, driver.reported, strict=True):
        assert reported + request.options["num_predict"] <= 1024


async def test_page_room_keeps_an_eighth_of_a_large_window_or_the_newest_turn(kernel):
    process = await kernel.spawn("chat")
    usage = process.usage
    assert usage.prompt_limit == 7168
    usable = math.floor(7168 / 1.25)
    system = usage.segments[Segment.SYSTEM] + usage.segments[Segment.TOOLS]
    assert kernel.page_room(process.pid) == usable - system - 7168 // 8

    # A newest turn larger than that eighth keeps its own size.
    process.history.append({"role": "user", "content": "word " * 1200})
    newest = kernel.calibration.for_model(process.model).message(process.history[-1])
    assert newest > 7168 // 8
    assert kernel.page_room(process.pid) == usable - system - newest


async def test_paging_in_the_same_key_replaces_the_page_in_place(make_kernel):
    kernel = make_kernel(num_ctx=1024)
    process = await kernel.spawn("chat")
    other = Page(key="/Documents/notes.md", source="/Documents/notes.md", label="1 chunk", text="x")
    first = filling(kernel, process)
    kernel.page_in(process.pid, [first])
    # The pages take all the room, yet the same document paged in again fits: its old
    # version does not count against it.
    second = words(first.key, len(first.text.split()) - 10)
    with pytest.raises(PageTooLarge):
        kernel.page_in(process.pid, [words("/Documents/another.txt", 1)])
    usage = kernel.page_in(process.pid, [second])
    assert process.paged_in == [second]
    assert usage.segments[Segment.PAGED_IN] == cost(kernel, process, second)

    kernel.page_out(process.pid, first.key)
    kernel.page_in(process.pid, [REPORT, other])
    changed = record(kernel, PagesChanged)
    newer = Page(REPORT.key, REPORT.source, "whole document, 12 chunks", "All of it.")
    kernel.page_in(process.pid, [newer])
    assert process.paged_in == [newer, other]
    assert changed[0].pages == (newer, other)
    assert process.usage.segments[Segment.PAGED_IN] == cost(kernel, process, newer) + cost(
        kernel, process, other
    )


async def test_page_out_gives_the_room_back(kernel):
    process = await kernel.spawn("chat")
    await kernel.send(process.pid, "hello")
    before = process.usage
    kernel.page_in(process.pid, [REPORT])
    events = record(kernel, PagesChanged, ContextUsageChanged)
    usage = kernel.page_out(process.pid, REPORT.key)
    assert usage is not None and usage.segments == before.segments
    assert usage.segments[Segment.PAGED_IN] == 0
    assert process.paged_in == []
    assert [type(e) for e in events] == [PagesChanged, ContextUsageChanged]
    assert events[0].pages == ()
    # A page the process does not hold: nothing to do, nothing announced.
    assert kernel.page_out(process.pid, REPORT.key) is None
    assert len(events) == 2


async def test_page_ins_count_chunks(kernel):
    process = await kernel.spawn("chat")
    kernel.page_in(process.pid, [REPORT, words("/Documents/long.txt", 5)])
    assert process.counters.page_ins == 3  # two chunks, and a page without chunk ids
    kernel.page_in(process.pid, [REPORT])
    assert process.counters.page_ins == 3  # the same chunks again: nothing was brought in


async def test_chunks_are_never_held_twice(kernel):
    process = await kernel.spawn("chat")
    one = Page("/Documents/report.pdf#7", "/Documents/report.pdf", "chunk 7 of 12", "seven",
               ("report-7",))  # fmt: skip
    kernel.page_in(process.pid, [one])
    # The whole of it (here: the chunks it holds) supersedes the single chunk...
    kernel.page_in(process.pid, [REPORT])
    assert [page.key for page in process.paged_in] == [REPORT.key]
    assert process.usage.segments[Segment.PAGED_IN] == cost(kernel, process, REPORT)
    assert process.counters.page_ins == 2  # report-7, then report-3
    # ...and a chunk it already holds adds nothing.
    kernel.page_in(process.pid, [one])
    assert [page.key for page in process.paged_in] == [REPORT.key]
    assert process.counters.page_ins == 2
    # Another document's chunk with the same id is another chunk.
    other = Page("/Documents/other.pdf#7", "/Documents/other.pdf", "chunk 7", "x", ("report-7",))
    kernel.page_in(process.pid, [other])
    assert [page.key for page in process.paged_in] == [REPORT.key, other.key]


async def test_an_ended_process_takes_no_pages(kernel):
    process = await kernel.spawn("chat")
    kernel.page_in(process.pid, [REPORT])
    kernel.kill(process.pid)
    with pytest.raises(ProcessGone, match="was killed"):
        kernel.page_in(process.pid, [REPORT])
    with pytest.raises(ProcessGone):
        kernel.page_out(process.pid, REPORT.key)
    with pytest.raises(NoSuchProcess):
        kernel.page_in(99, [REPORT])
    assert process.counters.page_ins == 2


async def test_a_page_in_during_a_turn_applies_from_the_next_request(kernel, driver):
    driver.token_delay = 0.005
    process = await kernel.spawn("chat")
    turn = asyncio.create_task(kernel.send(process.pid, "tell me a story"))
    await wait_for(lambda: process.state is ProcessState.RUNNING)
    kernel.page_in(process.pid, [REPORT])
    await asyncio.wait_for(turn, 5)
    assert [m["role"] for m in driver.requests[0].messages] == ["system", "user"]
    driver.token_delay = 0
    await kernel.send(process.pid, "and the report?")
    assert driver.requests[-1].messages[1] == REPORT.message
    assert process.usage.segments[Segment.PAGED_IN] == cost(kernel, process, REPORT)


async def test_pages_survive_a_backend_switch(kernel):
    process = await kernel.spawn("chat")
    kernel.page_in(process.pid, [REPORT])
    other = FakeDriver(models=[FakeModel("other-model:3b", 4096)])
    await kernel.switch_driver(other)
    assert process.paged_in == [REPORT]
    assert process.usage.budget == 4096
    assert process.usage.segments[Segment.PAGED_IN] == cost(kernel, process, REPORT)
    await kernel.send(process.pid, "still there?")
    assert other.requests[-1].messages[1] == REPORT.message


class _WholePromptCounter(CalibratedEstimator):
    """Counts a whole prompt 1,000 tokens above its parts (more than the room pages leave
    the conversation), as a template that adds its own preamble might."""

    def prompt(self, messages, tools):
        return self.estimate(messages, tools) + 1000


async def test_a_whole_prompt_count_over_the_room_refuses_the_page(kernel, driver):
    counter = _WholePromptCounter()
    driver.exact_tokenizer = lambda model: counter
    process = await kernel.spawn("chat")
    usage = process.usage
    page = filling(kernel, process)
    with pytest.raises(PageTooLarge) as refused:
        kernel.page_in(process.pid, [page])
    assert refused.value.over_by > 0
    assert refused.value.room == refused.value.tokens - refused.value.over_by
    assert process.paged_in == [] and process.usage is usage
    assert process.counters.page_ins == 0
