"""Index upkeep: new rows into index segments, compaction, old versions, ANN indexes.

Folding new rows into a LanceDB index takes memory in proportion to them, and the allocator
keeps much of it after the work is done: in one process, upkeep after each part of a
10,000-file ingest grew the resident size by 30-100 MB a round. A process that exits gives it
all back, so :func:`maintain` runs :func:`fold_in` in one when there is much to fold in.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures.process import BrokenProcessPool
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from llmos.memory.worker import start_pool, stop_pool_soon

if TYPE_CHECKING:  # the worker process imports only what fold_in needs
    from llmos.memory.store import MemoryStore

log = logging.getLogger(__name__)

KEEP_VERSIONS = timedelta(minutes=10)
"""Old table versions are kept this long for readers that still use them, then deleted."""
MAX_SEGMENTS = 8
"""Index segments (one per upkeep round) before they are merged into one."""
COMPACT_FRAGMENTS = 64
"""Data files (one per write) before they are compacted."""
IN_PROCESS_UPKEEP_ROWS = 5_000
"""New rows indexed in this process; more go to a short-lived one (starting it costs ~1 s)."""
ANN_MIN_ROWS = 20_000
"""Vector tables this large get an ANN index; below it a flat scan is faster than training one."""


def fold_in(jobs: list[tuple[str, str]]) -> None:
    """For each (table URI, index name): index new rows as a new segment; merge the segments
    and compact the files once there are many; delete old versions. Blocking."""
    import lance  # pylance: LanceDB's own API does not expose delta index segments

    for uri, index in jobs:
        dataset = lance.dataset(uri)
        stats = dataset.stats.index_stats(index)
        if stats["num_unindexed_rows"]:
            merge = stats["num_indices"] if stats["num_indices"] >= MAX_SEGMENTS else 0
            dataset.optimize.optimize_indices(index_names=[index], num_indices_to_merge=merge)
        if len(dataset.get_fragments()) >= COMPACT_FRAGMENTS:
            dataset.optimize.compact_files()
        dataset.cleanup_old_versions(older_than=KEEP_VERSIONS)


async def maintain(store: MemoryStore) -> None:
    """Fold new rows into the indexes, compact small files, and build ANN indexes when due.

    New rows go into a new index segment (cost in proportion to the new rows, not the
    table); segments are merged only once there are several. LanceDB's ``optimize()``
    rebuilt the whole full-text index instead: 4 s and 300 MB for 50 new chunks in a
    165k-chunk memory here. The work runs in a short-lived process (see
    :mod:`llmos.memory.upkeep`).
    """
    try:
        await _maintain(store)
    except (RuntimeError, OSError, ValueError, BrokenProcessPool) as error:
        # Upkeep is an optimisation: search is right without it, only slower. A commit
        # conflict with a concurrent writer (the indexer marking documents) lands here.
        log.warning("memory upkeep stopped (%s); the next ingest runs it again", error)


async def _maintain(store: MemoryStore) -> None:
    for table in store.small_tables:
        for attempt in range(3):
            try:
                await table.optimize(cleanup_older_than=KEEP_VERSIONS)
                break
            except RuntimeError:  # "Retryable commit conflict": a writer got there first
                if attempt == 2:
                    raise
                await asyncio.sleep(0.2)
    jobs = [(await store.chunk_table.uri(), "text_idx")]
    indexed = [store.chunk_table]
    for table in await store.vector_tables():
        indices = await table.list_indices()
        if indices:
            jobs.append((await table.uri(), indices[0].name))
            indexed.append(table)
        elif (rows := await table.count_rows()) >= ANN_MIN_ROWS:
            await table.create_index("vector", config=_ann_config(rows))
    unindexed = await store.chunk_table.count_rows() - await _indexed_rows(store.chunk_table)
    if unindexed <= IN_PROCESS_UPKEEP_ROWS:
        await asyncio.to_thread(fold_in, jobs)
    else:
        pool = start_pool(1)
        finished = False
        try:
            await asyncio.get_running_loop().run_in_executor(pool, fold_in, jobs)
            finished = True
        finally:
            await stop_pool_soon(pool, terminate=not finished)
    for table in indexed:
        await table.checkout_latest()


async def index_state(store: MemoryStore, model: str | None = None) -> tuple[str, str]:
    """(full-text index state, ``model``'s vector index state) in words."""
    stats = await store.chunk_table.index_stats("text_idx")
    text = "none"
    if stats is not None:
        text = (
            "current"
            if not stats.num_unindexed_rows
            else (f"{stats.num_unindexed_rows} rows waiting (searched directly until then)")
        )
    table = await store.vector_table(model) if model else None
    if table is None:
        return text, "none (no vectors)"
    indices = await table.list_indices()
    rows = await table.count_rows()
    if not indices:
        return text, f"flat scan of {rows} vectors (an index is built at {ANN_MIN_ROWS})"
    return text, f"{indices[0].index_type} over {rows} vectors"


async def _indexed_rows(table: Any) -> int:
    stats = await table.index_stats("text_idx")
    return stats.num_indexed_rows if stats is not None else 0


def _ann_config(rows: int) -> Any:
    partitions = max(1, min(1024, int(rows**0.5)))
    import lancedb

    return lancedb.index.IvfFlat(distance_type="cosine", num_partitions=partitions)
