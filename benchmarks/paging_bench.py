"""Virtual context memory: does the kernel bring back what a long conversation needs, and
what does paging cost per turn?

Usage: .venv/bin/python benchmarks/paging_bench.py [--conversations 12] [--turns 300]
       [--num-ctx 2048] [--pages 10000] [--overhead-turns 60] [--seed 1]

Recall: --conversations synthetic conversations of --turns turns each, one process each, on
the fake in-process backend (deterministic answers; it counts tokens like a chat template)
with real LanceDB memory. Eight facts are planted in the first 20 turns of each ("the
combination of my bike lock is 3921"); the rest is small talk that reuses the facts' words
in other senses ("a new lock on the shed"); the questions come in the last 60 turns ("What
is the combination of my bike lock?"). A question counts as recalled when the request the
kernel sends for it carries the text of the fact, in a memory page or still in the
conversation. The window is --num-ctx tokens, so every fact has long been evicted when it is
asked about. Recall here runs on full text (the fake backend has no embedding model); the
desktop and `llmos run` search by vector too when an embedding model is installed.

Overhead: one process whose own memory holds --pages conversation pages (written straight
to the store in batches, then indexed as memory upkeep does), and --overhead-turns more
turns. Prints the pager's time per turn (mean, p50, p95, max): the hybrid search for the
newest turn plus, on turns that evict, writing the conversation page and summarising (the
fake backend summarises at once, so this is the kernel's own cost, not the model's).

Target: recall >= 0.95.
"""

from __future__ import annotations

import argparse
import asyncio
import random
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
from llmos.memory import upkeep  # noqa: E402
from llmos.memory.backing import MemoryBacking  # noqa: E402
from llmos.memory.long_term import LongTermMemory  # noqa: E402
from llmos.memory.store import DocumentWrite, new_document  # noqa: E402
from llmos.resources import resource_path  # noqa: E402
from tests.fakes import FakeDriver  # noqa: E402
from tests.kernel.long_talk import SMALL_TALK, conversation  # noqa: E402


def kernel_on(driver: FakeDriver, backing: MemoryBacking, num_ctx: int) -> Kernel:
    kernel = Kernel(
        driver,
        apps=AppRegistry([resource_path("apps")]),
        scheduler=Scheduler(slots=1),
        num_ctx=num_ctx,
    )

    async def link(create: bool) -> MemoryBacking:
        return backing

    kernel.memory = link
    return kernel


async def recall(args: argparse.Namespace, memory: LongTermMemory) -> None:
    backing = MemoryBacking(memory)
    rng = random.Random(args.seed)
    hits = questions = evicted = faults = dropped = 0
    misses: list[str] = []
    started = time.perf_counter()
    for number in range(args.conversations):
        driver = FakeDriver()
        kernel = kernel_on(driver, backing, args.num_ctx)
        process = await kernel.spawn("chat")
        texts, asked = conversation(rng, args.turns)
        wanted = dict(asked)
        for turn, text in enumerate(texts):
            result = await kernel.send(process.pid, text)
            dropped = max(dropped, result.dropped_turns)
            if turn in wanted:
                questions += 1
                request = "\n".join(str(m.get("content")) for m in driver.requests[-1].messages)
                if wanted[turn] in request:
                    hits += 1
                else:
                    misses.append(f"conversation {number + 1}, turn {turn + 1}: {text}")
        evicted += process.counters.evictions
        faults += process.counters.page_faults
        await kernel.shutdown()
    seconds = time.perf_counter() - started
    turns = args.conversations * args.turns
    print(f"Deep-memory recall ({args.conversations} conversations x {args.turns} turns, "
          f"{args.num_ctx}-token window, full-text search)")  # fmt: skip
    print(f"  questions             {questions} (facts planted in turns 1-20, asked in the "
          f"last 60)")  # fmt: skip
    print(f"  recall                {hits / questions:.3f}  ({hits} of {questions}; target "
          ">= 0.95)")  # fmt: skip
    print(f"  turns evicted         {evicted} of {turns}; most dropped_turns {dropped}")
    print(f"  page faults           {faults} ({faults / turns:.2f} a turn)")
    print(f"  time                  {seconds:.1f} s ({seconds / turns * 1000:.1f} ms a turn)")
    for miss in misses[:10]:
        print(f"  missed: {miss}")


async def fill(memory: LongTermMemory, folder: str, pages: int, rng: random.Random) -> None:
    """``pages`` conversation pages in ``folder``, committed in batches like an ingest."""
    batch: list[DocumentWrite] = []
    for number in range(pages):
        lines = [f"# Old turns {number * 2 + 1}-{number * 2 + 2}", ""]
        for turn in (number * 2 + 1, number * 2 + 2):
            lines += [f"## Turn {turn}", "", f"**user:** {rng.choice(SMALL_TALK)}", "",
                      f"**assistant:** {rng.choice(SMALL_TALK)}", ""]  # fmt: skip
        text = "\n".join(lines)
        document = new_document(
            f"{folder}/turns-{number:05d}.md", None, kind="conversation", tokens=len(text) // 4,
            chunks=1, media_type="text/markdown", size=len(text),
        )  # fmt: skip
        row = {
            "id": f"{document.rev}.0", "doc_id": document.id, "rev": document.rev, "ordinal": 0,
            "text": text, "tokens": len(text) // 4, "position": "", "page": None,
            "line_start": 1, "line_end": len(lines), "heading": "",
        }  # fmt: skip
        batch.append(DocumentWrite(document, [row]))
        if len(batch) == 1000:
            await memory.store.commit(batch)
            batch = []
    if batch:
        await memory.store.commit(batch)
    await upkeep.maintain(memory.store)


async def overhead(args: argparse.Namespace, memory: LongTermMemory) -> None:
    backing = MemoryBacking(memory)
    rng = random.Random(args.seed + 1)
    driver = FakeDriver()
    kernel = kernel_on(driver, backing, args.num_ctx)
    process = await kernel.spawn("chat")
    started = time.perf_counter()
    await fill(memory, process.memory_folder, args.pages, rng)
    filled = time.perf_counter() - started
    timings: list[float] = []
    prepare = kernel.pager.prepare

    async def timed(target):  # type: ignore[no-untyped-def]
        began = time.perf_counter()
        try:
            await prepare(target)
        finally:
            timings.append(time.perf_counter() - began)

    kernel.pager.prepare = timed  # type: ignore[method-assign]
    texts, _ = conversation(rng, max(args.overhead_turns, 70))
    for text in texts[: args.overhead_turns]:
        await kernel.send(process.pid, text)
    await kernel.shutdown()
    ms = sorted(t * 1000 for t in timings)
    print(f"Paging overhead per turn ({args.pages} stored pages in the process's own memory, "
          f"{args.overhead_turns} turns, {process.counters.evictions} evicted)")  # fmt: skip
    print(f"  stored in             {filled:.1f} s (batched writes and one upkeep round)")
    print(f"  pager per turn        mean {statistics.fmean(ms):.1f} ms, p50 "
          f"{statistics.median(ms):.1f} ms, p95 {ms[int(len(ms) * 0.95) - 1]:.1f} ms, max "
          f"{ms[-1]:.1f} ms")  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=12)
    parser.add_argument("--turns", type=int, default=300)
    parser.add_argument("--num-ctx", type=int, default=2048)
    parser.add_argument("--pages", type=int, default=10_000)
    parser.add_argument("--overhead-turns", type=int, default=60)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        memory = await LongTermMemory.open(Path(directory) / "recall")
        try:
            await recall(args, memory)
        finally:
            await memory.close()
        memory = await LongTermMemory.open(Path(directory) / "overhead")
        try:
            await overhead(args, memory)
        finally:
            await memory.close()


if __name__ == "__main__":
    asyncio.run(main())
