"""Scheduler benchmark: 32 processes share a backend with 4 slots and a fixed per-token latency.

Runs the real kernel (spawn, send, scheduler, context fitting, events) on an in-process
backend that streams each token after a fixed latency, like a GPU serving 4 requests at once.

Prints:
- throughput as a fraction of the ideal (slots / latency tokens per second);
- Jain's fairness index over the tokens each process got in the window;
- the queueing delay the scheduler adds when a slot is free (p50/p99), measured through the
  kernel from "syscall queued" to "syscall started" with one process on 4 slots.

Usage: python benchmarks/scheduler_bench.py [--seconds 10] [--latency-ms 5]
Targets: throughput >= 0.95, fairness >= 0.95, p99 free-slot delay < 1 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncGenerator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llmos.bootstrap import build_kernel
from llmos.config import load_settings
from llmos.drivers.base import ChatChunk, ChatRequest, ChatStats
from llmos.kernel.events import SyscallStarted, TokenStreamed
from llmos.kernel.kernel import Kernel
from tests.fakes import FakeDriver, count_prompt


class LatencyDriver(FakeDriver):
    """Streams ``tokens`` tokens per answer, one every ``latency`` seconds, on deadlines
    (so sleep overshoot does not accumulate)."""

    def __init__(self, latency: float, tokens: int) -> None:
        super().__init__()
        self.latency = latency
        self.tokens = tokens

    async def chat(self, request: ChatRequest) -> AsyncGenerator[ChatChunk, None]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        for produced in range(1, self.tokens + 1):
            await asyncio.sleep(max(0.0, start + produced * self.latency - loop.time()))
            yield ChatChunk(content=" tok")
        yield ChatChunk(
            done=True,
            stats=ChatStats(
                prompt_tokens=count_prompt(request.messages),
                completion_tokens=self.tokens,
                done_reason="stop",
            ),
        )


SCRATCH = tempfile.TemporaryDirectory(prefix="llmos-bench-")


def bench_kernel(driver: LatencyDriver, slots: int) -> Kernel:
    """The kernel the app builds (same composition root), on the latency backend."""
    scratch = SCRATCH.name  # its sessions stay out of the user's data dir
    settings = load_settings({"parallel": slots, "num_ctx": 4096, "data_dir": scratch}, env={})
    return build_kernel(settings, driver=driver)


def jain(values: list[float]) -> float:
    return sum(values) ** 2 / (len(values) * sum(v * v for v in values))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def contention(processes: int, slots: int, latency: float, seconds: float) -> dict:
    kernel = bench_kernel(LatencyDriver(latency, tokens=20), slots)
    bus = kernel.bus
    tokens: Counter[int] = Counter()
    counting = False

    def count(event: TokenStreamed) -> None:
        if counting:
            tokens[event.pid] += 1

    bus.subscribe(count, TokenStreamed)
    procs = [await kernel.spawn("chat", model="fake-chat:1b") for _ in range(processes)]

    async def user(pid: int) -> None:
        turn = 0
        while True:
            turn += 1
            await kernel.send(pid, f"question {turn}")

    users = [asyncio.create_task(user(p.pid)) for p in procs]
    await asyncio.sleep(1.0)  # warm-up: every process has queued and run
    counting = True
    started = time.perf_counter()
    await asyncio.sleep(seconds)
    counting = False
    elapsed = time.perf_counter() - started
    await kernel.shutdown()
    await asyncio.gather(*users, return_exceptions=True)
    per_process = [float(tokens[p.pid]) for p in procs]
    ideal = slots / latency * elapsed
    return {
        "tokens": sum(per_process),
        "ideal": ideal,
        "throughput": sum(per_process) / ideal,
        "fairness": jain(per_process),
        "min": min(per_process),
        "max": max(per_process),
    }


async def free_slot_delay(calls: int, slots: int) -> list[float]:
    kernel = bench_kernel(LatencyDriver(0.0, tokens=1), slots)
    bus = kernel.bus
    delays: list[float] = []
    bus.subscribe(lambda e: delays.append(e.queued_seconds), SyscallStarted)
    process = await kernel.spawn("chat", model="fake-chat:1b")
    for i in range(calls):
        await kernel.send(process.pid, f"q{i}")
        if i % 50 == 49:
            process.history.clear()
    await kernel.shutdown()
    return delays


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--latency-ms", type=float, default=5.0)
    parser.add_argument("--processes", type=int, default=32)
    parser.add_argument("--slots", type=int, default=4)
    args = parser.parse_args()

    result = await contention(args.processes, args.slots, args.latency_ms / 1000, args.seconds)
    delays = await free_slot_delay(2000, args.slots)
    p50 = statistics.median(delays) * 1000
    p99 = percentile(delays, 0.99) * 1000
    print(
        f"scheduler: {args.processes} processes, {args.slots} slots, "
        f"{args.latency_ms:g} ms/token, {args.seconds:g} s window"
    )
    print(
        f"  throughput      {result['throughput']:.3f} of ideal "
        f"({result['tokens']:.0f} of {result['ideal']:.0f} tokens)   target >= 0.95"
    )
    print(
        f"  fairness (Jain) {result['fairness']:.4f} "
        f"(tokens per process {result['min']:.0f}..{result['max']:.0f})   target >= 0.95"
    )
    print(f"  free-slot delay p50 {p50:.4f} ms, p99 {p99:.4f} ms   target p99 < 1 ms")


if __name__ == "__main__":
    asyncio.run(main())
