"""Sessions: what writing every process down costs, and how fast processes come back.

Usage: python benchmarks/sessions_bench.py [--turns 200] [--tokens 60] [--long 1000]
       [--listed 500] [--processes 20]

1. Streaming cost: one process on the fake in-process backend (no delay, so the kernel's own
   work is all there is) answers --turns turns of --tokens tokens, with a session store and
   without; the two alternate turn by turn. Prints the extra event-loop time per turn and per
   token that the journal adds (the writes themselves run on the writer thread).
2. Spawn: a process's first pid and log (the pid counter is a file under a lock).
3. Restore: a session of --long turns (its log replayed, the process rebuilt and recounted).
4. Listing: ``llmos ps`` over --listed sessions (their info files).
5. Shutdown: --processes processes hibernated at once (the desktop closing).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from llmos.apps.registry import AppRegistry  # noqa: E402
from llmos.kernel.kernel import Kernel  # noqa: E402
from llmos.kernel.scheduler import Scheduler  # noqa: E402
from llmos.kernel.sessions import SessionStore  # noqa: E402
from llmos.resources import resource_path  # noqa: E402
from tests.fakes import FakeDriver  # noqa: E402


def make_kernel(driver: FakeDriver, root: Path | None) -> Kernel:
    return Kernel(
        driver,
        apps=AppRegistry([resource_path("apps")]),
        scheduler=Scheduler(slots=4),
        num_ctx=32768,
        sessions=SessionStore(root) if root is not None else None,
    )


def words(n: int, seed: int) -> str:
    return " ".join(f"w{seed}x{i}" for i in range(n)) + "."


async def streaming(turns: int, tokens: int, root: Path) -> None:
    driver = FakeDriver(answer=lambda messages: words(tokens, len(messages)))
    plain, kept = make_kernel(driver, None), make_kernel(driver, root / "stream")
    a, b = await plain.spawn("chat"), await kept.spawn("chat")
    times: dict[str, list[float]] = {"without": [], "with": []}
    for turn in range(turns):
        for name, kernel, process in (("without", plain, a), ("with", kept, b)):
            if len(process.history) > 40:  # keep both short: the cost per turn, not of length
                del process.history[:20]
            start = time.perf_counter()
            await kernel.send(process.pid, f"Question {turn}: {words(12, turn)}")
            times[name].append(time.perf_counter() - start)
    await kept.sessions.writer.flush()
    size = kept.sessions.log_path(b.pid).stat().st_size
    await plain.shutdown()
    await kept.shutdown()
    without, with_ = statistics.median(times["without"]), statistics.median(times["with"])
    print(f"1. streaming, {turns} turns of {tokens} tokens (median per turn):")
    print(f"   without sessions {without * 1000:.2f} ms, with {with_ * 1000:.2f} ms")
    extra = with_ - without
    print(
        f"   journal on the event loop: {extra * 1000:.3f} ms a turn, "
        f"({extra / tokens * 1e6:.1f} us for each of its {tokens} tokens); log "
        f"{size / turns / 1024:.1f} KB a turn"
    )


async def spawning(root: Path, count: int = 50) -> None:
    kernel = make_kernel(FakeDriver(), root / "spawn")
    times = []
    for _ in range(count):
        start = time.perf_counter()
        process = await kernel.spawn("chat")
        times.append(time.perf_counter() - start)
        kernel.exit(process.pid)
    await kernel.shutdown()
    print(
        f"2. spawn with a session: median {statistics.median(times) * 1000:.2f} ms, "
        f"max {max(times) * 1000:.2f} ms ({count} spawns)"
    )


async def restoring(long: int, root: Path) -> None:
    driver = FakeDriver(answer=lambda messages: words(60, len(messages)))
    kernel = make_kernel(driver, root / "long")
    process = await kernel.spawn("chat")
    for turn in range(long):
        if len(process.history) > 60:  # as the pager would: the transcript keeps them all
            del process.history[:20]
        await kernel.send(process.pid, f"Turn {turn}: {words(20, turn)}")
    await kernel.shutdown()
    store = SessionStore(root / "long")
    size = store.log_path(process.pid).stat().st_size
    again = make_kernel(driver, root / "long")
    start = time.perf_counter()
    saved = await again.load_saved(process.pid)
    loaded = time.perf_counter()
    back = await again.restore(saved)
    done = time.perf_counter()
    assert back.usage is not None
    print(
        f"3. restore a {long}-turn session ({size / 1e6:.1f} MB log, "
        f"{len(saved.transcript)} messages): read {1000 * (loaded - start):.0f} ms, "
        f"rebuild and recount {1000 * (done - loaded):.0f} ms"
    )
    await again.shutdown()


async def listing(listed: int, root: Path) -> None:
    kernel = make_kernel(FakeDriver(), root / "many")
    for _ in range(listed):
        process = await kernel.spawn("chat")
        await kernel.send(process.pid, "Hello there")
        kernel.exit(process.pid)
    await kernel.shutdown()
    store = SessionStore(root / "many")
    start = time.perf_counter()
    infos = await asyncio.to_thread(store.list)
    took = time.perf_counter() - start
    print(f"4. list {len(infos)} sessions (llmos ps --all): {took * 1000:.0f} ms")


async def shutting_down(processes: int, root: Path) -> None:
    driver = FakeDriver(token_delay=0.01)
    kernel = make_kernel(driver, root / "shutdown")
    spawned = [await kernel.spawn("chat") for _ in range(processes)]
    for process in spawned[: processes // 2]:
        await kernel.send(process.pid, "hello")
    turns = [asyncio.ensure_future(kernel.send(p.pid, "a long answer")) for p in spawned]
    await asyncio.sleep(0.2)  # some are mid-answer
    busy = sum(1 for p in spawned if p.busy)
    start = time.perf_counter()
    await kernel.shutdown()
    took = time.perf_counter() - start
    await asyncio.gather(*turns, return_exceptions=True)
    store = SessionStore(root / "shutdown")
    states = [store.info(p.pid).status for p in spawned]
    print(
        f"5. shut down with {processes} processes ({busy} mid-answer): "
        f"{took * 1000:.0f} ms until every one was hibernated "
        f"({states.count('hibernated')} hibernated)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--tokens", type=int, default=60)
    parser.add_argument("--long", type=int, default=1000)
    parser.add_argument("--listed", type=int, default=500)
    parser.add_argument("--processes", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        await streaming(args.turns, args.tokens, root)
        await spawning(root)
        await restoring(args.long, root)
        await listing(args.listed, root)
        await shutting_down(args.processes, root)


if __name__ == "__main__":
    asyncio.run(main())
