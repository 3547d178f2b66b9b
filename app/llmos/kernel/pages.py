"""Memory pages: parts of long-term memory a process holds in its context RAM.

A page is put there by the user (dropping a document on a window) or by the kernel's pager
(:mod:`llmos.kernel.paging`: the memory most relevant to the newest turn). It goes into every
request after the system prompt, pinned memory and summary, before the conversation, as one
system message that names its source so an answer can cite it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from llmos.drivers.base import Message, Tool
from llmos.kernel.context import split_turns
from llmos.kernel.tokens import TokenCounter

CONVERSATION_FLOOR_TOKENS = 256
"""The least prompt room pages leave for the conversation, however small the context RAM."""


@dataclass(frozen=True, slots=True)
class Page:
    """One memory page: a whole document or some of its chunks."""

    key: str
    """Stable identity (a document path, a chunk id); a page with the same key replaces it."""
    source: str
    """The document's virtual memory path, e.g. ``/Documents/report.pdf``."""
    label: str
    """Which part of the document this is, in words: ``whole document, 12 chunks``."""
    text: str
    chunk_ids: tuple[str, ...] = ()
    by_pager: bool = False
    """Brought in by the kernel's pager for the current turn (it replaces these as the
    conversation moves on); False for pages the user or the app put in."""

    @property
    def message(self) -> Message:
        """The page as the model sees it: a system message whose first line names the page.

        The format is ``Memory page: {source} ({label})``, a blank line, then the text. It is
        kept stable: the token counter remembers costs by content, and answers cite the path.
        """
        return {
            "role": "system",
            "content": f"Memory page: {self.source} ({self.label})\n\n{self.text}",
        }

    @property
    def chunks(self) -> int:
        """How many chunks this page holds (a page without chunk ids is one)."""
        return len(self.chunk_ids) or 1


def page_room(
    *,
    budget: int,
    reserve: int,
    counter: TokenCounter,
    system: Sequence[Message] = (),
    pinned: Sequence[Message] = (),
    summary: Sequence[Message] = (),
    paged_in: Sequence[Message] = (),
    history: Sequence[Message] = (),
    tools: Sequence[Tool] | None = None,
) -> int:
    """Tokens new pages may take in a request laid out by :func:`fit_request`.

    The prompt limit (``budget - reserve``) is shrunk by the counter's error margin, as
    ``fit_request`` widens every count by it. From that go the system prompt (with the
    template's opening of the answer), pinned memory, the tool schemas, the pages that stay
    (``paged_in``), and room kept for the conversation: the largest of
    :data:`CONVERSATION_FLOOR_TOKENS`, an eighth of the prompt limit, and the newest turn of
    ``history``. So pages never crowd out the turn being answered, and leave room to ask a
    question about them. Never negative.
    """
    limit = budget - reserve
    usable = math.floor(limit / (1 + counter.margin))
    fixed = (
        sum(counter.message(m) for m in system)
        + counter.generation_prompt()
        + sum(counter.message(m) for m in pinned)
        + sum(counter.message(m) for m in summary)
        + counter.tools(tools)
        + sum(counter.message(m) for m in paged_in)
    )
    turns = split_turns(history)
    newest = sum(counter.message(m) for m in turns[-1]) if turns else 0
    conversation = max(CONVERSATION_FLOOR_TOKENS, limit // 8, newest)
    return max(0, usable - fixed - conversation)
