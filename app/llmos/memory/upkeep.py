"""Index upkeep, run in a short-lived worker process.

Folding new rows into a LanceDB index takes memory in proportion to them, and the allocator
keeps much of it after the work is done: in one process, upkeep after each part of a
10,000-file ingest grew the resident size by 30-100 MB a round. A process that exits gives it
all back, so :func:`fold_in` runs in one (see :meth:`llmos.memory.store.MemoryStore.maintain`).
"""

from __future__ import annotations

from datetime import timedelta

KEEP_VERSIONS = timedelta(minutes=10)
"""Old table versions are kept this long for readers that still use them, then deleted."""
MAX_SEGMENTS = 8
"""Index segments (one per upkeep round) before they are merged into one."""
COMPACT_FRAGMENTS = 64
"""Data files (one per write) before they are compacted."""


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
