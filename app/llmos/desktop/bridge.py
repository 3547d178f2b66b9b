"""Kernel events as Qt signals: the one place where the kernel's event bus meets Qt.

Streamed tokens are batched once per frame per process, and everything the task manager
shows is coalesced into a few ``tick`` signals a second, so eight windows streaming at full
speed cost the GUI a handful of repaints per frame, not one per token.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque

from PySide6.QtCore import QObject, QTimer, Signal

from llmos.kernel.events import (
    ContextUsageChanged,
    CoreMemoryChanged,
    Event,
    EventBus,
    PageFaults,
    PagesChanged,
    ProcessExited,
    ProcessSpawned,
    ProcessStateChanged,
    SummaryUpdated,
    SyscallFinished,
    TokenStreamed,
    TurnsEvicted,
)

FRAME_MS = 16
"""How often streamed text is handed to the windows (about 60 frames a second)."""
TICK_MS = 250
"""How often the task manager hears that the process table changed."""
RATE_WINDOW = 2.0
"""Seconds over which live tokens per second are measured."""


class KernelBridge(QObject):
    """Subscribes to a kernel's :class:`EventBus` and re-emits its events as Qt signals.

    Signals:
        spawned(int): a process started (its pid).
        exited(int, str): a process ended (pid, ``exited`` / ``killed`` / ``failed``).
        stateChanged(int, str): a process's new state (``ready``, ``running``, ...).
        usageChanged(int): a process's context RAM was recounted (read ``process.usage``).
        pagesChanged(int): memory pages went into or out of a process (``process.paged_in``).
        turnsEvicted(int, str): the pager moved a process's oldest turns to long-term memory
            (pid, the conversation page's path; ``process.first_turn`` is the oldest left).
        summaryUpdated(int, str, str): the summary of a process's evicted turns was rewritten
            (pid, ``model`` or ``extractive``, why the extractive one stood in).
        pageFaults(int, int): the pager brought memory relevant to a process's newest turn
            into its context RAM (pid, chunks).
        coreChanged(int): a process's core memory changed (``process.core``).
        syscallFinished(int, str, str): a process's syscall or model call ended (pid, the
            permission, the outcome; the audit log, ``process.audit``, has the details).
        tokens(int, str): text a process streamed since the last frame.
        tick(): the process table changed since the last tick (at most 1 per TICK_MS).
    """

    spawned = Signal(int)
    exited = Signal(int, str)
    stateChanged = Signal(int, str)
    usageChanged = Signal(int)
    pagesChanged = Signal(int)
    turnsEvicted = Signal(int, str)
    summaryUpdated = Signal(int, str, str)
    pageFaults = Signal(int, int)
    coreChanged = Signal(int)
    syscallFinished = Signal(int, str, str)
    tokens = Signal(int, str)
    tick = Signal()

    def __init__(
        self,
        bus: EventBus,
        parent: QObject | None = None,
        *,
        frame_ms: int = FRAME_MS,
        tick_ms: int = TICK_MS,
    ) -> None:
        super().__init__(parent)
        self._pending: dict[int, list[str]] = defaultdict(list)
        self._streamed: dict[int, deque[tuple[float, int]]] = defaultdict(deque)
        self._dirty = False
        self._frame = QTimer(self, interval=frame_ms, singleShot=True)
        self._frame.timeout.connect(self._flush_tokens)
        self._ticker = QTimer(self, interval=tick_ms)
        self._ticker.timeout.connect(self._flush_tick)
        self._ticker.start()
        self._unsubscribe = bus.subscribe(self._on_event)

    def close(self) -> None:
        """Stop listening (the bus may outlive the desktop in tests)."""
        self._unsubscribe()
        self._frame.stop()
        self._ticker.stop()

    # -- live rates --------------------------------------------------------------------------

    def rate(self, pid: int) -> float:
        """Tokens per second ``pid`` streamed over the last RATE_WINDOW seconds."""
        samples = self._streamed.get(pid)
        if not samples:
            return 0.0
        self._expire(samples, time.monotonic())
        return sum(count for _, count in samples) / RATE_WINDOW

    def total_rate(self) -> float:
        return sum(self.rate(pid) for pid in tuple(self._streamed))

    @staticmethod
    def _expire(samples: deque[tuple[float, int]], now: float) -> None:
        while samples and samples[0][0] < now - RATE_WINDOW:
            samples.popleft()

    # -- events ------------------------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        # Runs on the event loop (the GUI thread under qasync) for every kernel event: keep it
        # cheap. Tokens are only queued here; the frame timer hands them out.
        self._dirty = True
        if isinstance(event, TokenStreamed):
            self._pending[event.pid].append(event.text)
            if not self._frame.isActive():
                self._frame.start()
            return
        if isinstance(event, ContextUsageChanged):
            self.usageChanged.emit(event.pid)
        elif isinstance(event, PagesChanged):
            self.pagesChanged.emit(event.pid)
        elif isinstance(event, TurnsEvicted):
            self.turnsEvicted.emit(event.pid, event.path)
        elif isinstance(event, SummaryUpdated):
            self.summaryUpdated.emit(event.pid, event.method, event.note)
        elif isinstance(event, PageFaults):
            self.pageFaults.emit(event.pid, event.chunks)
        elif isinstance(event, SyscallFinished):
            self.syscallFinished.emit(event.pid, event.name, event.outcome)
        elif isinstance(event, CoreMemoryChanged):
            self.coreChanged.emit(event.pid)
        elif isinstance(event, ProcessStateChanged):
            self.stateChanged.emit(event.pid, event.new)
        elif isinstance(event, ProcessSpawned):
            self.spawned.emit(event.pid)
        elif isinstance(event, ProcessExited):
            self._flush_tokens()
            self._streamed.pop(event.pid, None)
            self.exited.emit(event.pid, event.reason)

    def flush(self) -> None:
        """Hand out streamed text now (before a turn's end is rendered)."""
        self._flush_tokens()

    def _flush_tokens(self) -> None:
        self._frame.stop()
        if not self._pending:
            return
        pending, self._pending = self._pending, defaultdict(list)
        now = time.monotonic()
        for pid, parts in pending.items():
            samples = self._streamed[pid]
            samples.append((now, len(parts)))
            self._expire(samples, now)
            self.tokens.emit(pid, "".join(parts))

    def _flush_tick(self) -> None:
        # Rates decay and wall time moves even without events while anything streamed lately.
        if self._dirty or any(self._streamed.values()):
            self._dirty = False
            self.tick.emit()
