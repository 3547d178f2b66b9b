"""Hybrid search latency in long-term memory at 10k and 100k chunks.

Chunks are synthetic (sentences drawn from a 5,000-word vocabulary, 384-dimension random unit
vectors, as all-MiniLM makes); the store, indexes and search path are the real ones. The query
vector is made up front, so the figures are search alone, not the embedding model.

    python benchmarks/memory_search_bench.py [--sizes 10000 100000] [--queries 200]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from llmos.memory import upkeep
from llmos.memory.embedder import Embedder, EmbedderChoice
from llmos.memory.long_term import LongTermMemory
from llmos.memory.store import DocumentWrite, new_document

DIM = 384
CHUNKS_PER_DOC = 20


class FixedVectors:
    """Stands in for the driver: returns one precomputed vector per text, at no cost."""

    kind = "bench"

    def __init__(self, vector: list[float]) -> None:
        self.vector = vector

    async def embed(self, model: str, texts: list[str]) -> list[list[float]]:
        return [self.vector for _ in texts]


async def build(memory: LongTermMemory, size: int, rng: random.Random) -> float:
    words = [f"w{i}" for i in range(5000)]
    vectors = np.random.default_rng(1).standard_normal((size, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    started = time.perf_counter()
    writes, rows_v = [], []
    for d in range(size // CHUNKS_PER_DOC):
        doc = new_document(f"/Bench/{d // 100}/doc{d}.txt", None, chunks=CHUNKS_PER_DOC,
                           vectors_model="bench")  # fmt: skip
        chunks = []
        for i in range(CHUNKS_PER_DOC):
            n = d * CHUNKS_PER_DOC + i
            text = " ".join(rng.choices(words, k=120))
            chunks.append(
                {
                    "id": f"{doc.rev}.{i}",
                    "doc_id": doc.id,
                    "rev": doc.rev,
                    "ordinal": i,
                    "text": text,
                    "tokens": 120,
                    "position": "",
                    "page": None,
                    "line_start": 1,
                    "line_end": 1,
                    "heading": "",
                }
            )
            rows_v.append({"chunk_id": f"{doc.rev}.{i}", "rev": doc.rev, "vector": vectors[n]})
        writes.append(DocumentWrite(doc, chunks))
        if len(writes) * CHUNKS_PER_DOC >= 10_000:
            await memory.store.commit(writes)
            await memory.store.add_vectors("bench", DIM, rows_v)
            writes, rows_v = [], []
    if writes:
        await memory.store.commit(writes)
        await memory.store.add_vectors("bench", DIM, rows_v)
    await upkeep.maintain(memory.store)
    return time.perf_counter() - started


async def measure(size: int, queries: int) -> dict[str, float | str]:
    rng = random.Random(size)
    with tempfile.TemporaryDirectory() as tmp:
        query_vector = list(np.random.default_rng(2).standard_normal(DIM) / np.sqrt(DIM))
        embedder = Embedder(FixedVectors(query_vector), "bench", "benchmark")  # type: ignore[arg-type]
        memory = await LongTermMemory.open(Path(tmp), EmbedderChoice(embedder, ""))
        try:
            build_s = await build(memory, size, rng)
            _, vector_index = await upkeep.index_state(memory.store, "bench")
            vector_index = vector_index.split(" ")[0]
            words = [f"w{i}" for i in range(5000)]
            for _ in range(10):  # warm caches
                await memory.search(" ".join(rng.choices(words, k=3)), k=5)
            latencies = []
            modes = set()
            for _ in range(queries):
                query = " ".join(rng.choices(words, k=3))
                started = time.perf_counter()
                result = await memory.search(query, k=5)
                latencies.append((time.perf_counter() - started) * 1000)
                modes.add(result.mode)
            folder_latencies = []
            for _ in range(max(20, queries // 4)):
                query = " ".join(rng.choices(words, k=3))
                started = time.perf_counter()
                await memory.search(query, k=5, folder="/Bench/3")
                folder_latencies.append((time.perf_counter() - started) * 1000)
        finally:
            await memory.close()
    latencies.sort()
    folder_latencies.sort()
    return {
        "chunks": size,
        "build_s": build_s,
        "vector_index": vector_index,
        "mode": "/".join(sorted(modes)),
        "p50": statistics.median(latencies),
        "p95": latencies[int(0.95 * (len(latencies) - 1))],
        "folder_p95": folder_latencies[int(0.95 * (len(folder_latencies) - 1))],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    print(f"{'chunks':>8} {'build s':>8} {'vector index':>13} {'mode':>7} "
          f"{'p50 ms':>7} {'p95 ms':>7} {'p95 in a folder':>16}")  # fmt: skip
    for size in args.sizes:
        r = asyncio.run(measure(size, args.queries))
        print(f"{r['chunks']:>8} {r['build_s']:>8.1f} {r['vector_index']:>13} {r['mode']:>7} "
              f"{r['p50']:>7.1f} {r['p95']:>7.1f} {r['folder_p95']:>16.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
