"""Scheduler rules: slots, priority, round robin, aging, preemption, cancellation."""

from __future__ import annotations

import asyncio

import pytest

from llmos.kernel.scheduler import Scheduler


async def cancelled(task: asyncio.Task) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_free_slot_is_granted_without_waiting():
    scheduler = Scheduler(slots=1)
    coroutine = scheduler.acquire(pid=1)
    # A free slot must be granted on the first step: the coroutine finishes without
    # suspending even once (no polling, no loop round trip).
    with pytest.raises(StopIteration) as done:
        coroutine.send(None)
    lease = done.value.value
    assert lease.pid == 1
    assert scheduler.free_slots == 0


async def test_at_most_n_calls_run_at_once():
    scheduler = Scheduler(slots=2)
    first = await scheduler.acquire(1)
    await scheduler.acquire(2)
    third = asyncio.create_task(scheduler.acquire(3))
    await asyncio.sleep(0)
    assert not third.done()
    assert scheduler.waiting_pids == (3,)
    scheduler.release(first)
    lease = await asyncio.wait_for(third, 1)
    assert lease.pid == 3
    assert scheduler.free_slots == 0


async def test_higher_priority_waiter_goes_first():
    scheduler = Scheduler(slots=1)
    holder = await scheduler.acquire(1)
    low = asyncio.create_task(scheduler.acquire(2, priority=0))
    await asyncio.sleep(0)
    high = asyncio.create_task(scheduler.acquire(3, priority=5))
    await asyncio.sleep(0)
    scheduler.release(holder)
    granted = await asyncio.wait_for(high, 1)
    assert not low.done()
    scheduler.release(granted)
    assert (await asyncio.wait_for(low, 1)).pid == 2


async def test_equal_priorities_are_served_round_robin():
    """A process that was just served goes behind one that has waited its turn."""
    scheduler = Scheduler(slots=1)
    served: list[int] = []

    async def worker(pid: int, calls: int) -> None:
        for _ in range(calls):
            lease = await scheduler.acquire(pid)
            served.append(pid)
            await asyncio.sleep(0)
            scheduler.release(lease)

    await asyncio.gather(worker(1, 4), worker(2, 4), worker(3, 4))
    assert len(served) == 12
    # Each window of three consecutive grants serves three different processes.
    for start in range(0, 12, 3):
        assert sorted(served[start : start + 3]) == [1, 2, 3], served


async def test_waiting_low_priority_is_not_starved():
    clock = Clock()
    scheduler = Scheduler(slots=1, aging_seconds=1.0, clock=clock)
    holder = await scheduler.acquire(1, priority=3)
    low = asyncio.create_task(scheduler.acquire(2, priority=0))
    await asyncio.sleep(0)
    clock.now = 10.0  # waited ten aging periods: effective priority 10
    high = asyncio.create_task(scheduler.acquire(3, priority=3))
    await asyncio.sleep(0)
    scheduler.release(holder)
    assert (await asyncio.wait_for(low, 1)).pid == 2
    assert not high.done()
    await cancelled(high)


async def test_higher_priority_waiter_preempts_after_the_quantum():
    scheduler = Scheduler(slots=1, quantum_tokens=3)
    running = await scheduler.acquire(1, priority=0)
    running.tick()
    waiter = asyncio.create_task(scheduler.acquire(2, priority=1))
    await asyncio.sleep(0)
    assert running.preempt_requested
    assert not running.should_yield()  # one token so far; the quantum is three
    running.tick(2)
    assert running.should_yield()
    scheduler.release(running)
    assert (await asyncio.wait_for(waiter, 1)).pid == 2
    assert scheduler.preemptions == 1


async def test_equal_priority_never_preempts():
    scheduler = Scheduler(slots=1, quantum_tokens=0)
    running = await scheduler.acquire(1, priority=2)
    waiter = asyncio.create_task(scheduler.acquire(2, priority=2))
    await asyncio.sleep(0)
    running.tick(100)
    assert not running.should_yield()
    await cancelled(waiter)


async def test_preemption_picks_the_lowest_priority_call():
    scheduler = Scheduler(slots=2, quantum_tokens=0)
    mid = await scheduler.acquire(1, priority=1)
    low = await scheduler.acquire(2, priority=-1)
    waiter = asyncio.create_task(scheduler.acquire(3, priority=5))
    await asyncio.sleep(0)
    assert low.should_yield()
    assert not mid.should_yield()
    await cancelled(waiter)


async def test_cancelled_waiter_leaves_the_queue_and_leaks_no_slot():
    scheduler = Scheduler(slots=1)
    holder = await scheduler.acquire(1)
    waiter = asyncio.create_task(scheduler.acquire(2))
    await asyncio.sleep(0)
    await cancelled(waiter)
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert scheduler.waiting_pids == ()
    scheduler.release(holder)
    assert scheduler.free_slots == 1


async def test_cancel_waiting_drops_all_calls_of_a_process():
    scheduler = Scheduler(slots=1)
    holder = await scheduler.acquire(1)
    waiters = [asyncio.create_task(scheduler.acquire(2)) for _ in range(2)]
    other = asyncio.create_task(scheduler.acquire(3))
    await asyncio.sleep(0)
    scheduler.cancel_waiting(2)
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert all(isinstance(r, asyncio.CancelledError) for r in results)
    scheduler.release(holder)
    assert (await asyncio.wait_for(other, 1)).pid == 3


async def test_raising_priority_of_a_waiter_preempts():
    scheduler = Scheduler(slots=1, quantum_tokens=0)
    running = await scheduler.acquire(1, priority=0)
    waiter = asyncio.create_task(scheduler.acquire(2, priority=0))
    await asyncio.sleep(0)
    assert not running.preempt_requested
    scheduler.set_priority(2, 4)
    assert running.should_yield()
    await cancelled(waiter)
