"""The scheduler: shares a backend's generation slots among processes.

Every model call asks for a slot. When one is free and nobody waits, the slot is granted at
once, without awaiting anything (no polling interval; the cost is a few microseconds). When
all slots are busy the call waits in a queue and is picked by:

1. effective priority: the process's priority (higher runs first) plus one level for every
   ``aging_seconds`` it has waited, so a low-priority call is never starved;
2. round robin among equals: the process served least recently goes first;
3. arrival order.

A waiter whose priority is strictly higher than a running call's asks that call to yield
(preemption). The running call sees ``lease.should_yield()`` turn true at its next token
boundary (after a small guaranteed quantum, so every grant makes progress), stops, keeps
its partial output and queues again.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(eq=False)
class Lease:
    """A granted slot. Release it by leaving the ``async with`` block."""

    pid: int
    priority: int
    granted_at: float
    tokens: int = 0
    """Tokens produced under this lease; the generation loop counts them with ``tick``."""
    _preempt: bool = False
    _force: bool = False
    _quantum: int = 0

    def tick(self, tokens: int = 1) -> None:
        self.tokens += tokens

    def should_yield(self) -> bool:
        """True when the holder must stop at this token boundary and queue again."""
        if self._force:
            return True
        return self._preempt and self.tokens >= self._quantum

    @property
    def preempt_requested(self) -> bool:
        return self._preempt or self._force

    def request_yield(self, *, force: bool = False) -> None:
        """Ask the holder to stop; ``force`` skips the quantum (suspend, shutdown)."""
        self._preempt = True
        self._force = self._force or force


@dataclass(eq=False)
class _Waiter:
    pid: int
    priority: int
    enqueued_at: float
    seq: int
    future: asyncio.Future[Lease] = field(repr=False)


class Scheduler:
    """Grants at most ``slots`` concurrent model calls on one backend.

    Args:
        slots: concurrent calls the backend serves (Ollama's ``OLLAMA_NUM_PARALLEL``).
        aging_seconds: waiting this long raises a call's priority by one level.
        quantum_tokens: tokens a call may always produce before a preemption takes effect.
        clock: monotonic clock in seconds (injectable for tests).
    """

    def __init__(
        self,
        slots: int = 1,
        *,
        aging_seconds: float = 5.0,
        quantum_tokens: int = 4,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if slots < 1:
            raise ValueError("a backend needs at least one slot")
        self.slots = slots
        self.aging_seconds = aging_seconds
        self.quantum_tokens = quantum_tokens
        self._clock = clock
        self._running: list[Lease] = []
        self._waiting: list[_Waiter] = []
        self._seq = itertools.count()
        self._last_served: dict[int, int] = {}
        self._held: set[int] = set()
        self._serve_seq = itertools.count()
        self.preemptions = 0

    # -- state -----------------------------------------------------------------------------

    @property
    def running(self) -> tuple[Lease, ...]:
        return tuple(self._running)

    @property
    def waiting_pids(self) -> tuple[int, ...]:
        return tuple(w.pid for w in self._waiting)

    @property
    def free_slots(self) -> int:
        return self.slots - len(self._running)

    # -- acquiring and releasing -----------------------------------------------------------

    def slot(self, pid: int, priority: int = 0) -> _SlotContext:
        """``async with scheduler.slot(pid, priority) as lease:`` runs one model call."""
        return _SlotContext(self, pid, priority)

    async def acquire(self, pid: int, priority: int = 0) -> Lease:
        if self.free_slots > 0 and not self._waiting:
            return self._grant(pid, priority)
        loop = asyncio.get_running_loop()
        waiter = _Waiter(pid, priority, self._clock(), next(self._seq), loop.create_future())
        self._waiting.append(waiter)
        self._preempt_for(waiter)
        try:
            return await waiter.future
        except asyncio.CancelledError:
            if waiter in self._waiting:
                self._waiting.remove(waiter)
            elif waiter.future.done() and not waiter.future.cancelled():
                # Granted in the same tick we were cancelled: hand the slot back.
                self.release(waiter.future.result())
            raise

    def release(self, lease: Lease) -> None:
        if lease in self._running:
            self._running.remove(lease)
            self._dispatch()

    def hold(self, pid: int) -> None:
        """Keep ``pid``'s queued calls in the queue without granting them (a suspended
        process), and withdraw preemptions that only they were asking for."""
        self._held.add(pid)
        for lease in self._running:
            if lease.preempt_requested and not lease._force and not self._outranked(lease):
                lease._preempt = False

    def unhold(self, pid: int) -> None:
        self._held.discard(pid)
        self._dispatch()
        for waiter in [w for w in self._waiting if w.pid == pid]:
            self._preempt_for(waiter)

    def cancel_waiting(self, pid: int) -> None:
        """Drop every queued call of ``pid`` (its awaiting callers get CancelledError)."""
        self._held.discard(pid)
        for waiter in [w for w in self._waiting if w.pid == pid]:
            self._waiting.remove(waiter)
            waiter.future.cancel()

    def set_priority(self, pid: int, priority: int) -> None:
        for waiter in self._waiting:
            if waiter.pid == pid:
                waiter.priority = priority
        for lease in self._running:
            if lease.pid == pid:
                lease.priority = priority
        for waiter in self._waiting:
            self._preempt_for(waiter)

    # -- policy ----------------------------------------------------------------------------

    def _grant(self, pid: int, priority: int) -> Lease:
        lease = Lease(pid, priority, self._clock(), _quantum=self.quantum_tokens)
        self._running.append(lease)
        self._last_served[pid] = next(self._serve_seq)
        return lease

    def _effective(self, waiter: _Waiter, now: float) -> float:
        if self.aging_seconds <= 0:
            return waiter.priority
        return waiter.priority + (now - waiter.enqueued_at) // self.aging_seconds

    def _pick(self) -> _Waiter | None:
        now = self._clock()
        eligible = [w for w in self._waiting if w.pid not in self._held]
        if not eligible:
            return None
        return min(
            eligible,
            key=lambda w: (-self._effective(w, now), self._last_served.get(w.pid, -1), w.seq),
        )

    def _outranked(self, lease: Lease) -> bool:
        return any(w.priority > lease.priority and w.pid not in self._held for w in self._waiting)

    def _dispatch(self) -> None:
        while self.free_slots > 0:
            waiter = self._pick()
            if waiter is None:
                return
            self._waiting.remove(waiter)
            if waiter.future.done():
                continue
            waiter.future.set_result(self._grant(waiter.pid, waiter.priority))

    def _preempt_for(self, waiter: _Waiter) -> None:
        """If no slot is free, ask the lowest-priority running call below ``waiter`` to yield."""
        if waiter.pid in self._held:
            return
        if self.free_slots > 0:
            self._dispatch()
            return
        candidates = [
            lease
            for lease in self._running
            if lease.priority < waiter.priority and not lease.preempt_requested
        ]
        if candidates:
            victim = min(candidates, key=lambda lease: (lease.priority, -lease.granted_at))
            victim.request_yield()
            self.preemptions += 1


class _SlotContext:
    def __init__(self, scheduler: Scheduler, pid: int, priority: int) -> None:
        self._scheduler = scheduler
        self._pid = pid
        self._priority = priority
        self._lease: Lease | None = None

    async def __aenter__(self) -> Lease:
        self._lease = await self._scheduler.acquire(self._pid, self._priority)
        return self._lease

    async def __aexit__(self, *exc: object) -> None:
        if self._lease is not None:
            self._scheduler.release(self._lease)
