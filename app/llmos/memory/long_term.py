"""Long-term memory as the rest of LLM-OS sees it: one object over store, queue and search.

The CLI, the desktop and (later) the kernel's pager all go through :class:`LongTermMemory`;
it is built in the composition root (:func:`llmos.bootstrap.open_memory`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmos.drivers.base import ModelDriver
from llmos.memory import paths, upkeep
from llmos.memory.embedder import Embedder, EmbedderChoice
from llmos.memory.errors import MemoryStoreError
from llmos.memory.indexer import Indexer, IndexProgress
from llmos.memory.ingest import IngestJob, IngestOptions, IngestReport
from llmos.memory.journal import MAX_ATTEMPTS, IngestJournal, JobRecord
from llmos.memory.records import MemoryStats
from llmos.memory.search import SearchResult, search
from llmos.memory.store import MemoryStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ResumableJob:
    sources: list[Path]
    options: IngestOptions
    record: JobRecord


class LongTermMemory:
    """The disk: documents in virtual folders, ingestion, vectors and hybrid search."""

    def __init__(self, store: MemoryStore, journal: IngestJournal, choice: EmbedderChoice) -> None:
        self.owned: list[ModelDriver] = []
        """Drivers closed with memory (the CLI's, which exist only for this command)."""
        self.store = store
        self.journal = journal
        self.embedder: Embedder | None = choice.embedder
        self.embedder_note = choice.reason
        """Why there is no embedder (memory then runs on full text), or ""."""

    @classmethod
    async def open(cls, data_dir: Path, choice: EmbedderChoice | None = None) -> LongTermMemory:
        directory = data_dir / "memory"
        store = await MemoryStore.open(directory)
        choice = choice or EmbedderChoice(None, "no embedding model was chosen")
        return cls(store, IngestJournal(directory), choice)

    async def close(self) -> None:
        self.store.close()
        if self.embedder is not None and self.embedder.owns_driver:
            await self.embedder.driver.close()
        for driver in self.owned:
            await driver.close()

    @property
    def embedder_name(self) -> str | None:
        return self.embedder.model if self.embedder else None

    # -- ingestion -------------------------------------------------------------------------

    def job(
        self, sources: list[Path], options: IngestOptions | None = None, **callbacks: Any
    ) -> IngestJob:
        """An ingest to :meth:`run`; keep it to :meth:`IngestJob.cancel` it."""
        return IngestJob(self.store, sources, options, **callbacks)

    async def run(
        self,
        job: IngestJob,
        waiting: Callable[[], None] | None = None,
        resumes: JobRecord | None = None,
    ) -> IngestReport:
        """Run ``job`` as a durable queue entry.

        Ingests on one memory take turns; ``waiting`` is called if this one has to wait.
        ``resumes`` is the record of the killed ingest this job finishes (see
        :meth:`interrupted`); it is forgotten only once this job is done.
        """
        async with self.journal.turn(waiting):
            await self._refuse_folder_in_document(paths.normalize(job.options.folder))
            await self.store.collect_garbage()
            # Job files are fsync'ed: written in a thread, so the event loop never waits on disk.
            if resumes is not None:
                record = await asyncio.to_thread(self.journal.again, resumes)
            else:
                options = job.options
                record = await asyncio.to_thread(
                    self.journal.start,
                    [str(source) for source in job.sources],
                    options.folder,
                    {
                        "chunk_tokens": options.chunk_tokens,
                        "overlap_tokens": options.overlap_tokens,
                        "max_file_bytes": options.max_file_bytes,
                    },
                )
            report = await job.run()
            # A cancelled job is finished too: the user chose to stop it. A job that raised,
            # was interrupted (the desktop closing) or whose process died keeps its record and
            # is resumed next time.
            if not job.interrupted:
                await asyncio.to_thread(self.journal.finish, record)
            if report.counts["added"] or report.counts["replaced"]:
                await upkeep.maintain(self.store)
        return report

    async def interrupted(
        self, waiting: Callable[[], None] | None = None
    ) -> tuple[list[ResumableJob], list[JobRecord]]:
        """What killed ingests left unfinished: (jobs to run again, jobs given up).

        Pass a resumable job's record to :meth:`run` as ``resumes``. A job that was resumed
        :data:`~llmos.memory.journal.MAX_ATTEMPTS` times without finishing is given up (and
        forgotten), so one that kills its ingest every time cannot block every later ingest.
        """
        resumable, given_up = [], []
        async with self.journal.turn(waiting):
            for record in await asyncio.to_thread(self.journal.interrupted):
                if record.attempts >= MAX_ATTEMPTS:
                    given_up.append(record)
                    self.journal.finish(record)
                    continue
                options = IngestOptions(folder=record.folder, **record.options)
                sources = [Path(source) for source in record.sources]
                resumable.append(ResumableJob(sources, options, record))
        return resumable, given_up

    # -- the file system (these wait for a running ingest: it holds a snapshot of paths) -----

    async def mkdir(self, path: str) -> str:
        async with self.journal.turn():
            await self._refuse_folder_in_document(paths.normalize(path))
            return await self.store.mkdir(path)

    async def move(self, source: str, target: str) -> str:
        async with self.journal.turn():
            return await self.store.move(source, target)

    async def remove(self, path: str) -> tuple[int, int]:
        async with self.journal.turn():
            return await self.store.remove(path)

    async def _refuse_folder_in_document(self, folder: str) -> None:
        for path in [*paths.ancestors(folder + "/x")]:
            if await self.store.has_document(path):
                raise MemoryStoreError(f"'{path}' is a document, so '{folder}' cannot be a folder.")

    def indexer(
        self,
        on_progress: Callable[[IndexProgress], None] | None = None,
        gate: Callable[[], Awaitable[None]] | None = None,
    ) -> Indexer | None:
        """An indexer for the active embedder (None when memory runs on full text)."""
        if self.embedder is None:
            return None
        return Indexer(self.store, self.embedder, on_progress, gate)

    # -- reading ---------------------------------------------------------------------------

    async def search(
        self, query: str, k: int = 5, folder: str = paths.ROOT, document: str | None = None
    ) -> SearchResult:
        result = await search(
            self.store, query, k=k, folder=folder, document=document, embedder=self.embedder
        )
        if result.note and not self.embedder:
            return SearchResult(result.hits, result.mode, self.embedder_note or result.note)
        return result

    async def stats(self) -> MemoryStats:
        store = self.store
        documents, chunks, tokens = await store.count()
        disk_bytes = await asyncio.to_thread(_disk_usage, store.directory)
        vectors = await store.vector_models()
        text_index, vector_index = await upkeep.index_state(store, self.embedder_name)
        indexing = 0
        if self.embedder:
            indexing = await store.count_pending(self.embedder.model)
        return MemoryStats(
            documents=documents,
            chunks=chunks,
            tokens=tokens,
            folders=len(await store.folders()),
            disk_bytes=disk_bytes,
            embedder=self.embedder_name,
            vectors={model: rows for model, (_, rows) in vectors.items()},
            indexing=indexing,
            text_index=text_index,
            vector_index=vector_index,
        )


def _disk_usage(directory: Path) -> int:
    total = 0
    for root, _, files in os.walk(directory):
        for name in files:
            with contextlib.suppress(OSError):  # a file compacted away while we count
                total += os.stat(os.path.join(root, name)).st_size
    return total
