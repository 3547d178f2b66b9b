"""Typed kernel events and the small, Qt-free bus that carries them.

The kernel publishes; the CLI renders; the desktop adapts them to Qt signals in one bridge.
Handlers run synchronously on the publishing (event-loop) thread and must be quick: a slow
handler slows token streaming for everyone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from llmos.kernel.context import ContextUsage
from llmos.kernel.pages import Page

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Event:
    """Base of every kernel event."""

    pid: int


@dataclass(frozen=True, slots=True)
class ProcessSpawned(Event):
    app: str
    model: str
    priority: int
    parent_pid: int | None


@dataclass(frozen=True, slots=True)
class ProcessStateChanged(Event):
    old: str
    new: str


@dataclass(frozen=True, slots=True)
class ProcessExited(Event):
    reason: str
    """``exited`` (finished), ``killed`` or ``failed``."""


@dataclass(frozen=True, slots=True)
class TokenStreamed(Event):
    text: str


@dataclass(frozen=True, slots=True)
class ContextUsageChanged(Event):
    usage: ContextUsage


@dataclass(frozen=True, slots=True)
class PagesChanged(Event):
    """A page went into or out of the process's context RAM."""

    pages: tuple[Page, ...]
    """Every page the process now holds, in the order its requests carry them."""


@dataclass(frozen=True, slots=True)
class TurnsEvicted(Event):
    """Old turns left the process's context RAM for long-term memory (see
    :mod:`llmos.kernel.paging`)."""

    first: int
    last: int
    """The turns' numbers (the first turn of a process is 1)."""
    tokens: int
    """Context RAM they held."""
    path: str
    """The conversation page in long-term memory that holds them now."""


@dataclass(frozen=True, slots=True)
class SummaryUpdated(Event):
    """The running summary of evicted turns was rewritten."""

    tokens: int
    method: str
    """``model`` (a scheduled model call wrote it) or ``extractive`` (the fallback)."""
    note: str = ""
    """Why the fallback stood in, when it did."""


@dataclass(frozen=True, slots=True)
class PageFaults(Event):
    """Memory relevant to the newest turn was not in context RAM and was paged in."""

    chunks: int
    sources: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CoreMemoryChanged(Event):
    """The model edited its core memory (a syscall)."""

    text: str


@dataclass(frozen=True, slots=True)
class SyscallQueued(Event):
    call_id: int
    name: str
    priority: int


@dataclass(frozen=True, slots=True)
class SyscallStarted(Event):
    call_id: int
    name: str
    queued_seconds: float


@dataclass(frozen=True, slots=True)
class SyscallFinished(Event):
    call_id: int
    name: str
    outcome: str
    """``ok``, ``preempted``, ``suspended``, ``cancelled`` or ``failed``."""
    seconds: float
    error: str = ""


E = TypeVar("E", bound=Event)
Handler = Callable[[Any], None]


class EventBus:
    """Publish/subscribe for kernel events, filtered by event type."""

    def __init__(self) -> None:
        self._handlers: list[tuple[tuple[type[Event], ...], Handler]] = []

    def subscribe(self, handler: Handler, *types: type[Event]) -> Callable[[], None]:
        """Call ``handler(event)`` for each published event of ``types`` (all when empty).

        Returns a function that unsubscribes.
        """
        entry = (types or (Event,), handler)
        self._handlers.append(entry)

        def unsubscribe() -> None:
            if entry in self._handlers:
                self._handlers.remove(entry)

        return unsubscribe

    def publish(self, event: Event) -> None:
        for types, handler in tuple(self._handlers):
            if isinstance(event, types):
                try:
                    handler(event)
                except Exception:
                    # A broken subscriber must never take the kernel down with it.
                    log.exception("event handler %r failed on %r", handler, event)
