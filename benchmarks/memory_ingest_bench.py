"""Ingestion throughput and memory use of long-term memory, on a real corpus.

The corpus is the Python standard library's own sources (``sysconfig``'s stdlib directory):
real files nobody here wrote, mostly code and text, with some data files the readers refuse.

1. Embeddings off: files/s, chunks/s and MB/s of the whole pipeline (discovery, reading,
   extraction, chunking, LanceDB writes, index upkeep), then the same ingest again (unchanged).
2. A fixed embedder (it takes ``--embed-ms`` per chunk, in batches of 32, without using the
   CPU, like a GPU or a remote embedding server): throughput of the pipeline with vectors
   (first file read to last vector written) divided by the embedder's own throughput on the
   same chunks. Target: >= 0.9.
3. ``--rss``: peak resident memory while ingesting 1,000 / 5,000 / 10,000 files (the corpus
   files repeated under new names), each size in a fresh process, workers included.

    python benchmarks/memory_ingest_bench.py [--corpus DIR] [--embed-ms 1.0] [--rss]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

from llmos.memory.discovery import discover
from llmos.memory.embedder import Embedder, EmbedderChoice
from llmos.memory.ingest import IngestOptions
from llmos.memory.long_term import LongTermMemory


class FixedCostEmbedder:
    """Driver stand-in whose embedding takes a fixed time per text and no CPU."""

    kind = "bench"

    def __init__(self, seconds_per_text: float, dim: int = 384) -> None:
        self.seconds_per_text = seconds_per_text
        self.vector = [1.0 / dim**0.5] * dim

    async def embed(self, model: str, texts: list[str]) -> list[list[float]]:
        await asyncio.sleep(self.seconds_per_text * len(texts))
        return [self.vector] * len(texts)

    async def close(self) -> None:
        pass


def corpus_size(corpus: Path) -> tuple[int, int]:
    found = discover([corpus], "/", 64_000_000)
    return len(found.files), found.total_bytes


async def ingest_once(corpus: Path, data: Path, embedder: Embedder | None) -> dict[str, float]:
    choice = EmbedderChoice(embedder, "" if embedder else "off")
    memory = await LongTermMemory.open(data, choice)
    try:
        indexer = memory.indexer()
        job = memory.job(
            [corpus],
            IngestOptions(folder="/Bench"),
            on_commit=(lambda _docs: indexer.wake()) if indexer else None,
        )
        started = time.perf_counter()
        indexing = asyncio.create_task(indexer.run()) if indexer else None
        report = await memory.run(job)
        stored_at = time.perf_counter() - started
        if indexer is not None and indexing is not None:
            indexer.finish()
            await indexing
        seconds = time.perf_counter() - started
        counts = report.counts
        chunks = sum(o.chunks for o in report.outcomes if o.status in ("added", "replaced"))
        return {
            "seconds": seconds,
            "stored_seconds": stored_at,
            "files": counts["added"] + counts["replaced"] + counts["unchanged"],
            "failed": counts["failed"],
            "chunks": chunks,
            "embedded": indexer.chunks_done if indexer else 0,
        }
    finally:
        await memory.close()


async def embedder_alone(data: Path, embedder: Embedder) -> tuple[int, float]:
    """The embedder's own time on exactly the chunks the pipeline embedded, same batches."""
    memory = await LongTermMemory.open(data)
    try:
        docs = await memory.store.documents()
        texts = [t for _, _, t in await memory.store.chunk_texts([d.rev for d in docs])]
    finally:
        await memory.close()
    started = time.perf_counter()
    for i in range(0, len(texts), embedder.batch_size):
        await embedder.embed(texts[i : i + embedder.batch_size])
    return len(texts), time.perf_counter() - started


def throughput(args: argparse.Namespace) -> None:
    corpus = Path(args.corpus)
    files, size = corpus_size(corpus)
    print(f"corpus: {corpus} ({files} files, {size / 1e6:.1f} MB), {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        off = asyncio.run(ingest_once(corpus, Path(tmp) / "off", None))
        again = asyncio.run(ingest_once(corpus, Path(tmp) / "off", None))
    print("\nembeddings off")
    print(f"  first ingest   {off['seconds']:6.1f} s  {off['files'] / off['seconds']:7.1f} files/s"
          f"  {off['chunks'] / off['seconds']:7.0f} chunks/s  {size / 1e6 / off['seconds']:5.1f}"
          f" MB/s  ({off['files']:.0f} stored, {off['failed']:.0f} refused, "
          f"{off['chunks']:.0f} chunks)")  # fmt: skip
    print(f"  again (unchanged) {again['seconds']:4.1f} s  "
          f"{again['files'] / again['seconds']:7.1f} files/s")  # fmt: skip

    fixed = Embedder(FixedCostEmbedder(args.embed_ms / 1000), "fixed", "bench")  # type: ignore[arg-type]
    with tempfile.TemporaryDirectory() as tmp:
        piped = asyncio.run(ingest_once(corpus, Path(tmp) / "on", fixed))
        chunks, alone = asyncio.run(embedder_alone(Path(tmp) / "on", fixed))
    pipeline_rate = piped["embedded"] / piped["seconds"]
    alone_rate = chunks / alone
    print(f"\nfixed embedder ({args.embed_ms} ms per chunk, batches of {fixed.batch_size})")
    print(f"  embedder alone  {chunks} chunks in {alone:6.1f} s  {alone_rate:7.0f} chunks/s")
    stored = piped["stored_seconds"]
    print(f"  whole pipeline  {piped['embedded']:.0f} chunks in {piped['seconds']:6.1f} s  "
          f"{pipeline_rate:7.0f} chunks/s  (all text stored after {stored:.1f} s)")  # fmt: skip
    print(f"  pipeline / embedder = {pipeline_rate / alone_rate:.3f}  (target >= 0.9)")


def rss(args: argparse.Namespace) -> None:
    corpus = Path(args.corpus)
    found = discover([corpus], "/", 64_000_000)
    sources = [c.source for c in found.files]
    print(f"peak RSS while ingesting N files (copies of {len(sources)} {corpus} files)")
    print(f"{'files':>7} {'chunks':>8} {'seconds':>8} {'main MB':>8} {'worker MB':>10}")
    for count in args.rss_sizes:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "files"
            folder.mkdir()
            for i in range(count):
                source = sources[i % len(sources)]
                os.symlink(source, folder / f"{i:05}-{source.name}")
            done = subprocess.run(
                [sys.executable, __file__, "--rss-child", str(folder), str(Path(tmp) / "data")],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            r = json.loads(done.stdout)
        print(f"{count:>7} {r['chunks']:>8} {r['seconds']:>8.1f} {r['main_mb']:>8.0f} "
              f"{r['worker_mb']:>10.0f}")  # fmt: skip


def rss_child(folder: str, data: str) -> None:
    result = asyncio.run(ingest_once(Path(folder), Path(data), None))
    main_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    worker_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps({**result, "main_mb": main_mb, "worker_mb": worker_mb}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default=sysconfig.get_paths()["stdlib"])
    parser.add_argument("--embed-ms", type=float, default=1.0, help="fixed embedder cost")
    parser.add_argument("--rss", action="store_true", help="measure peak memory instead")
    parser.add_argument("--rss-sizes", type=int, nargs="+", default=[1000, 5000, 10000])
    parser.add_argument("--rss-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        rss_child(*args.rss_child)
    elif args.rss:
        rss(args)
    else:
        throughput(args)


if __name__ == "__main__":
    main()
