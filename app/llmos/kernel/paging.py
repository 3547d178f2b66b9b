"""Virtual context memory: the kernel pages between context RAM and long-term memory.

Before every model call of a new user turn the :class:`Pager`:

1. **evicts** when the conversation would cross the high watermark (80% of the room left for
   history): the oldest whole turns (a tool call stays with its result; the newest turn never
   goes) are written to long-term memory as a *conversation page* of the process, and only
   then leave the context, down to the low watermark (50%). A running summary of everything
   evicted so far stays in the context: the old summary and the evicted turns make the new
   one, in a scheduled model call; when that fails or returns nonsense an extractive summary
   stands in. Either way the summary has a bounded size.
2. **pages in** the memory most relevant to the newest user turn: a hybrid search over the
   process's own conversation pages and (when the app may search memory) the shared documents
   and notes; the best chunks that fit the paged-in allowance (25% of the window) replace the
   pager's previous set. Each chunk that had to be brought in is a *page fault*.

Room is shared out like this (``free`` is the prompt room, widened by the token counter's
margin, left after the system prompt, pinned and core memory, tool schemas and the pages the
user put in)::

    summary   at most SUMMARY_SHARE of free (and SUMMARY_MAX_TOKENS)
    pages     at most PAGED_IN_SHARE of the window, and of free
    history   the rest: the watermarks are fractions of it

So a request always fits: nothing is left out of it unannounced (``dropped_turns`` stays 0)
while long-term memory can be written. Without memory (it failed to open, or a disk error)
nothing is evicted, and the oldest turns are left out of requests as before, counted in
``dropped_turns``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from llmos.drivers.base import Message
from llmos.kernel.context import PromptTooLarge, split_turns
from llmos.kernel.events import PageFaults, PagesChanged, SummaryUpdated, TurnsEvicted
from llmos.kernel.pages import Page
from llmos.kernel.summaries import (
    excerpt,
    extractive_summary,
    render_turns,
    summary_prompt,
    usable_summary,
)
from llmos.memory import paths

if TYPE_CHECKING:
    from llmos.kernel.kernel import Kernel
    from llmos.kernel.process import Process

log = logging.getLogger(__name__)

RECALL_CANDIDATES = 12
"""Chunks the pager ranks for each turn before choosing what fits."""
QUERY_CHARS = 1000
"""Characters of the newest user message used as the search query."""
SUMMARY_SECONDS = 120.0
"""How long a summarising model call may take before the extractive summary stands in."""
MIN_CHUNK_TOKENS = 48
"""The smallest chunks conversation pages are cut into (see :meth:`Pager.evict`)."""
RECALLED = "recalled"
"""The kernel's mark on a user message whose memory was paged in (never sent to a model)."""
MEMORY_RETRY_SECONDS = 30.0
"""After memory failed to open, how long the pager works without it before trying again."""


@dataclass(frozen=True, slots=True)
class PagingPolicy:
    """How context RAM is shared out and when the pager acts (see the module docs)."""

    high: float = 0.8
    """Evict when the conversation would take more than this fraction of its room."""
    low: float = 0.5
    """...down to this fraction."""
    paged_in_share: float = 0.25
    """The most the pager's pages take: this fraction of the window (and of the free room)."""
    summary_share: float = 0.15
    summary_max_tokens: int = 300
    summarize_with_model: bool = True
    """False: always use the extractive summary (no model call)."""


class Backing(Protocol):
    """Long-term memory as the pager sees it; :mod:`llmos.memory.backing` implements it."""

    async def save(
        self, path: str, text: str, *, kind: str, title: str, chunk_tokens: int = 0
    ) -> str:
        """Store ``text`` as a document at ``path`` (a free name near it when taken), cut
        into chunks of ``chunk_tokens`` (a default when 0); return the path used. Durable
        once it returns."""
        ...

    async def recall(self, query: str, *, own: str, shared: bool, k: int) -> list[Page]:
        """The ``k`` chunks best matching ``query``, best first, one page each: from the
        folder ``own``, and when ``shared`` also from everything outside ``/Processes``."""
        ...

    async def read(self, path: str) -> list[tuple[str, str]]:
        """The chunks of the document at ``path`` as (position, text), in order."""
        ...


MemoryLink = Callable[[bool], Awaitable[Backing | None]]
"""``await link(create)``: long-term memory, opened on first use; None when it is not there
(``create`` False and nothing stored yet) or cannot be opened."""


@dataclass(frozen=True, slots=True)
class Shares:
    """One process's room, in tokens (see the module docs)."""

    free: int
    summary: int
    paged_in: int
    history: int


class Pager:
    """The kernel's paging policy for every process (one per kernel)."""

    def __init__(self, kernel: Kernel, policy: PagingPolicy | None = None) -> None:
        self.kernel = kernel
        self.policy = policy or PagingPolicy()
        self.link: MemoryLink | None = None
        self._writes: set[asyncio.Future[str]] = set()
        self._memory_failed_at = -math.inf

    # -- the room ------------------------------------------------------------------------

    def shares(self, process: Process) -> Shares:
        kernel = self.kernel
        counter = kernel._counter(process.model)
        limit = process.budget - process.reserve
        usable = math.floor(limit / (1 + counter.margin))
        fixed = (
            sum(counter.message(m) for m in process.system_messages)
            + counter.generation_prompt()
            + sum(counter.message(m) for m in process.pinned_messages)
            + counter.tools(kernel.tools_for(process))
            + sum(counter.message(p.message) for p in process.paged_in if not p.by_pager)
        )
        free = max(0, usable - fixed)
        summary = min(self.policy.summary_max_tokens, int(free * self.policy.summary_share))
        paged_in = int(min(process.budget, free) * self.policy.paged_in_share)
        held_summary = sum(counter.message(m) for m in process.summary_messages)
        history = max(0, free - max(summary, held_summary) - paged_in)
        return Shares(free, summary, paged_in, history)

    # -- before each model call ------------------------------------------------------------

    async def prepare(self, process: Process) -> None:
        """Evict and page in for the process's next request, so it fits whole.

        Raises:
            PromptTooLarge: the newest turn cannot fit however much is paged out.
        """
        counter = self.kernel._counter(process.model)
        shares = self.shares(process)
        turns = split_turns(process.history)
        costs = [sum(counter.message(m) for m in turn) for turn in turns]
        total = sum(costs)
        if total > shares.history * self.policy.high and len(turns) > 1:
            count, left = 0, total
            while count < len(turns) - 1 and left > shares.history * self.policy.low:
                left -= costs[count]
                count += 1
            await self.evict(process, count)
        await self._page_in(process, shares.paged_in)
        # The shares are estimates; the layout has the last word. Whatever it would leave
        # out goes to memory instead (or pages go, when the newest turn needs their room).
        for _ in range(len(process.history) + 2):
            try:
                fitted = self.kernel._fit_next(process)
            except PromptTooLarge:
                if not self._drop_pager_pages(process):
                    raise
                continue
            if not fitted.dropped_turns or not await self.evict(process, fitted.dropped_turns):
                return

    async def evict(self, process: Process, count: int) -> bool:
        """Page the oldest ``count`` turns out to long-term memory, with a new summary.

        Returns False (and changes nothing) when memory cannot take them.
        """
        turns = split_turns(process.history)[:count]
        if not turns or self.link is None:
            return False
        first, last = process.first_turn, process.first_turn + len(turns) - 1
        backing = await self._backing(create=True)
        if backing is None:
            return False
        title = f"{process.app.name} (pid {process.pid}), turns {first}-{last}"
        text = render_turns(turns, first, title)
        path = f"{process.memory_folder}/turns-{first:04d}-{last:04d}.md"
        # The write goes on if the process is killed meanwhile: the turns are safe in memory
        # either way (shutdown waits for it).
        # Chunks small enough that several fit the pager's allowance come back one by one.
        size = max(MIN_CHUNK_TOKENS, self.shares(process).paged_in // 2)
        write = asyncio.ensure_future(
            backing.save(path, text, kind="conversation", title=title, chunk_tokens=size)
        )
        self._writes.add(write)
        write.add_done_callback(self._writes.discard)
        try:
            path = await asyncio.shield(write)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.warning("pid %d: evicted turns could not be saved (%s)", process.pid, error)
            self._memory_failed_at = time.monotonic()
            return False
        counter = self.kernel._counter(process.model)
        tokens = sum(counter.message(m) for turn in turns for m in turn)
        summary, method, note = await self._summarize(process, turns, first, last)
        # Only now, with the turns stored and the summary made, do they leave the context.
        del process.history[: sum(len(turn) for turn in turns)]
        process.first_turn = last + 1
        process.summary = summary
        counters = process.counters
        counters.evictions += len(turns)
        counters.summaries += 1
        counters.summary_fallbacks += method != "model"
        counters.summary_tokens = sum(counter.message(m) for m in process.summary_messages)
        bus = self.kernel.bus
        bus.publish(TurnsEvicted(process.pid, first, last, tokens, path))
        bus.publish(SummaryUpdated(process.pid, counters.summary_tokens, method, note))
        return True

    async def flush(self) -> None:
        """Wait for conversation pages still being written."""
        if self._writes:
            await asyncio.gather(*tuple(self._writes), return_exceptions=True)

    # -- paging in -------------------------------------------------------------------------

    async def _page_in(self, process: Process, allowance: int) -> None:
        newest = _newest_user_message(process.history)
        if newest is None or newest.get(RECALLED):
            return  # a tool round of the same turn: its pages are in already
        newest[RECALLED] = True
        shared = "memory.search" in process.app.permissions.syscalls
        if not shared and not process.counters.evictions:
            return  # nothing of its own in memory yet, and nothing else it may read
        backing = await self._backing(create=False)
        if backing is None:
            return
        query = str(newest.get("content") or "")[:QUERY_CHARS]
        if not re.search(r"\w", query):
            return
        try:
            found = await backing.recall(
                query, own=process.memory_folder, shared=shared, k=RECALL_CANDIDATES
            )
        except Exception as error:  # a search that fails must not fail the turn
            log.warning("pid %d: memory search for paging failed (%s)", process.pid, error)
            return
        counter = self.kernel._counter(process.model)
        mine = [page for page in process.paged_in if not page.by_pager]
        held_by_user = {chunk for page in mine for chunk in page.chunk_ids}
        chosen: list[Page] = []
        used = 0
        for page in found:
            if page.chunk_ids and set(page.chunk_ids) <= held_by_user:
                continue
            cost = counter.message(page.message)
            if used + cost > allowance:
                # Too big whole: the lines that match best, when they are worth a page.
                page = excerpt(page, query, allowance - used, counter)
                cost = counter.message(page.message)
                if not page.text or used + cost > allowance:
                    continue
            chosen.append(page)
            used += cost
        before = [page for page in process.paged_in if page.by_pager]
        held = {chunk for page in before for chunk in page.chunk_ids}
        brought = [page for page in chosen if not set(page.chunk_ids) <= held]
        faults = sum(len(set(page.chunk_ids) - held) or 1 for page in brought)
        process.paged_in = [*mine, *chosen]
        process.counters.page_ins += faults
        process.counters.page_faults += faults
        if [p.key for p in before] != [p.key for p in chosen]:
            self.kernel.bus.publish(PagesChanged(process.pid, tuple(process.paged_in)))
        if faults:
            sources = tuple(dict.fromkeys(page.source for page in brought))
            self.kernel.bus.publish(PageFaults(process.pid, faults, sources))

    def _drop_pager_pages(self, process: Process) -> bool:
        if not any(page.by_pager for page in process.paged_in):
            return False
        process.paged_in = [page for page in process.paged_in if not page.by_pager]
        self.kernel.bus.publish(PagesChanged(process.pid, tuple(process.paged_in)))
        return True

    async def _backing(self, *, create: bool) -> Backing | None:
        if self.link is None:
            return None
        if time.monotonic() - self._memory_failed_at < MEMORY_RETRY_SECONDS:
            return None
        try:
            return await self.link(create)
        except Exception as error:
            log.warning("long-term memory is unavailable to the pager (%s)", error)
            self._memory_failed_at = time.monotonic()
            return None

    # -- the summary -----------------------------------------------------------------------

    async def _summarize(
        self, process: Process, turns: Sequence[Sequence[Message]], first: int, last: int
    ) -> tuple[str, str, str]:
        """(new summary, ``model`` or ``extractive``, why the fallback stood in)."""
        counter = self.kernel._counter(process.model)
        cap = max(32, self.shares(process).summary)
        note = "summarising with the model is off"
        if self.policy.summarize_with_model:
            prompt = summary_prompt(process.summary, turns, first, last, cap, counter, process)
            try:
                async with asyncio.timeout(SUMMARY_SECONDS):
                    text = await self.kernel._side_call(
                        process, "model.summarize", prompt, num_predict=cap
                    )
            except TimeoutError:
                note = f"the model took over {SUMMARY_SECONDS:.0f} s"
            except Exception as error:  # the backend failed: carry on without it
                note = f"the model failed ({error})"
            else:
                usable = usable_summary(text, cap, counter)
                if usable:
                    return usable, "model", ""
                note = "the model's summary was empty or repetitive"
            log.info("pid %d: extractive summary (%s)", process.pid, note)
        return extractive_summary(process.summary, turns, first, cap, counter), "extractive", note


def _newest_user_message(history: Sequence[Message]) -> Message | None:
    for message in reversed(history):
        if message.get("role") == "user":
            return message
    return None


def memory_folder(app_id: str, pid: int, started: float) -> str:
    """The folder of a process's conversation pages: unique across kernels, even those
    without sessions, whose pids restart at 1."""
    stamp = time.strftime("%Y-%m-%d %H.%M.%S", time.localtime(started))
    return f"{paths.PROCESSES}/{app_id}-{pid} ({stamp})"
