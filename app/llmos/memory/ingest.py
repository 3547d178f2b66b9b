"""Ingestion: files and folders into long-term memory, concurrently, boundedly, crash-safely.

The pipeline, for one :class:`IngestJob`:

1. discovery walks the sources in a thread (:mod:`llmos.memory.discovery`);
2. a process pool reads, hashes, extracts and chunks files (:mod:`llmos.memory.worker`), at most
   two files per worker in flight, so memory stays flat however large the folder;
3. the writer gathers finished documents and commits them in large batches (every LanceDB
   ``add`` is a table version), one commit in the background while the pool keeps working;
4. an :class:`~llmos.memory.indexer.Indexer` (if an embedder is active) embeds what was
   committed, behind it; documents are searchable by full text from step 3 on.

A document appears only once its batch commits (see :mod:`llmos.memory.store`), so a crash or
``kill -9`` at any moment leaves whole documents or none.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmos.memory import paths, upkeep
from llmos.memory.chunking import DEFAULT_CHUNK_TOKENS, DEFAULT_OVERLAP_TOKENS
from llmos.memory.discovery import Candidate, discover, printable
from llmos.memory.readers import MEDIA_TYPES
from llmos.memory.records import Document
from llmos.memory.store import DocumentWrite, MemoryStore, new_document
from llmos.memory.worker import (
    ReadResult,
    ReadTask,
    read_document,
    start_pool,
    stop_pool,
    stop_pool_soon,
)

log = logging.getLogger(__name__)


SMALL_JOB_FILES = 4
SMALL_JOB_BYTES = 2_000_000
"""Jobs this small are read in a thread instead of worker processes."""
MAINTAIN_EVERY = 32_768
"""Chunks written between index upkeep rounds during a long ingest."""


@dataclass(frozen=True, slots=True)
class IngestOptions:
    folder: str = paths.DOCUMENTS
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS
    overlap_tokens: int = DEFAULT_OVERLAP_TOKENS
    max_file_bytes: int = 64_000_000
    workers: int = max(1, os.cpu_count() or 1)
    batch_chunks: int = 4096
    """Chunks per LanceDB write; a batch is also written once it is ``batch_seconds`` old."""
    batch_seconds: float = 2.0


@dataclass(frozen=True, slots=True)
class FileOutcome:
    source: str
    path: str
    """Its virtual path in memory."""
    status: str
    """``added``, ``replaced``, ``unchanged`` or ``failed``."""
    reason: str = ""
    chunks: int = 0
    document_id: str = ""


@dataclass(slots=True)
class IngestProgress:
    files_total: int = 0
    files_done: int = 0
    bytes_total: int = 0
    bytes_done: int = 0
    chunks: int = 0
    """Chunks stored (committed) so far."""
    counts: Counter[str] = field(default_factory=Counter)
    skipped: int = 0
    started: float = field(default_factory=time.monotonic)
    phase: str = "discovering"
    """``discovering``, ``reading``, ``finishing`` or ``done``."""

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started


@dataclass(slots=True)
class IngestReport:
    outcomes: list[FileOutcome]
    skipped: int
    seconds: float
    cancelled: bool = False

    @property
    def counts(self) -> Counter[str]:
        return Counter(outcome.status for outcome in self.outcomes)

    @property
    def failures(self) -> list[FileOutcome]:
        return [outcome for outcome in self.outcomes if outcome.status == "failed"]


class IngestJob:
    """One ingest of some files and folders into a memory folder.

    Args:
        on_progress: called on the event loop as files finish (about 10 times a second at most).
        on_outcome: called on the event loop with each file's outcome once it is final.
        on_commit: called after each batch of documents is stored (for an indexer to wake).
    """

    def __init__(
        self,
        store: MemoryStore,
        sources: list[Path],
        options: IngestOptions | None = None,
        *,
        on_progress: Callable[[IngestProgress], None] | None = None,
        on_outcome: Callable[[FileOutcome], None] | None = None,
        on_commit: Callable[[list[Document]], None] | None = None,
        reader: Callable[[ReadTask], ReadResult] = read_document,
    ) -> None:
        self.store = store
        self._reader = reader
        """What workers run per file (a module-level function: it is pickled by name)."""
        self.sources = sources
        self.options = options or IngestOptions()
        self.progress = IngestProgress()
        self._on_progress = on_progress
        self._on_outcome = on_outcome
        self._on_commit = on_commit
        self._cancelled = asyncio.Event()
        self.interrupted = False
        """Stopped by :meth:`interrupt`: the job is to be resumed, not forgotten."""
        self._outcomes: list[FileOutcome] = []
        self._buffer: list[tuple[DocumentWrite, FileOutcome]] = []
        self._buffer_chunks = 0
        self._buffer_since = 0.0
        self._commit_task: asyncio.Task[None] | None = None
        self._commits = 0
        self._unmaintained = 0
        self._last_report = 0.0

    def cancel(self) -> None:
        """Stop soon: files in flight are dropped, stored documents stay; nothing is half-stored."""
        self._cancelled.set()

    def interrupt(self) -> None:
        """Stop soon, as :meth:`cancel` does, but as an interruption rather than the user's
        choice: the job stays queued and the next ingest resumes it (the desktop closing)."""
        self.interrupted = True
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    async def run(self) -> IngestReport:
        options = self.options
        folder = paths.normalize(options.folder)
        # The data dir (memory's tables, models, sessions) is never ingested, even when a
        # source folder holds it.
        data_dir = self.store.directory.parent
        found = await asyncio.to_thread(
            discover, self.sources, folder, options.max_file_bytes, (data_dir,)
        )
        progress = self.progress
        progress.files_total = len(found.files) + len(found.refused)
        progress.bytes_total = found.total_bytes
        progress.skipped = found.skipped
        for refused in found.refused:
            outcome = FileOutcome(
                printable(refused.source), refused.target, "failed", refused.reason
            )
            self._finish(outcome)
        known = await self.store.known(folder)
        progress.phase = "reading"
        self._report(force=True)
        if found.files and not self.cancelled:
            await self._read_all(found.files, known)
        progress.phase = "finishing"
        self._report(force=True)
        await self._flush(wait=True)
        progress.phase = "done"
        self._report(force=True)
        return IngestReport(self._outcomes, found.skipped, progress.elapsed, self.cancelled)

    async def _read_all(self, files: list[Candidate], known: dict[str, Document]) -> None:
        options = self.options
        workers = max(1, min(options.workers, len(files)))
        small = len(files) <= SMALL_JOB_FILES and sum(f.size for f in files) <= SMALL_JOB_BYTES
        # Starting worker processes costs about a second; a few small files read in a
        # thread are done before the first worker would be up.
        pool: Executor = ThreadPoolExecutor(1) if small else start_pool(workers)
        in_flight: dict[asyncio.Future[ReadResult], Candidate] = {}
        queue = deque(files)
        suspects: deque[Candidate] = deque()
        """Files in flight when a worker died: retried one at a time to find the culprit."""
        testing: Candidate | None = None
        """The suspect running alone, if any."""
        try:
            while True:
                if suspects:
                    if testing is None and not in_flight and not self.cancelled:
                        testing = suspects.popleft()
                        in_flight[self._submit(pool, testing, known)] = testing
                else:
                    while queue and len(in_flight) < workers * 2 and not self.cancelled:
                        candidate = queue.popleft()
                        in_flight[self._submit(pool, candidate, known)] = candidate
                if not in_flight:
                    break
                cancel: asyncio.Future[Any] = asyncio.ensure_future(self._cancelled.wait())
                waiting: list[asyncio.Future[Any]] = [*in_flight, cancel]
                done, _ = await asyncio.wait(
                    waiting, timeout=options.batch_seconds, return_when=asyncio.FIRST_COMPLETED
                )
                cancel.cancel()
                if self.cancelled:
                    break
                broken = False
                for future in done:
                    if future is cancel:
                        continue
                    candidate = in_flight.pop(future)
                    if isinstance(future.exception(), BrokenProcessPool):
                        # A worker died (a reader crashed hard, or the OS killed it) and took
                        # the pool with it. Alone, the file is the culprit; otherwise it is a
                        # suspect, retried alone in a new pool.
                        broken = True
                        if candidate is testing:
                            reason = "the reader crashed on this file (it may be malformed)"
                            outcome = FileOutcome(str(candidate.source), candidate.target,
                                                  "failed", reason)  # fmt: skip
                            self._finish(outcome, candidate.size)
                        else:
                            suspects.append(candidate)
                        continue
                    await self._accept(candidate, future, known)
                if testing is not None and testing not in in_flight.values():
                    testing = None
                if broken:
                    suspects.extend(in_flight.values())
                    _abandon(in_flight)
                    in_flight.clear()
                    testing = None
                    assert isinstance(pool, ProcessPoolExecutor)  # only a process pool breaks
                    stop_pool(pool, terminate=True)
                    pool = start_pool(workers)
                # The first batches are small so the first documents are searchable (and the
                # indexer busy) within moments; later ones grow to batch_chunks.
                wanted = min(options.batch_chunks, 256 << self._commits)
                if self._buffer and (
                    self._buffer_chunks >= wanted
                    or time.monotonic() - self._buffer_since >= options.batch_seconds
                ):
                    await self._flush(wait=False)
        finally:
            _abandon(in_flight)
            # Cancel must not wait for a worker deep in a PDF: files in flight are dropped
            # anyway, so the workers are stopped rather than awaited.
            if isinstance(pool, ProcessPoolExecutor):
                await stop_pool_soon(pool, terminate=bool(in_flight))
            else:
                pool.shutdown(wait=False, cancel_futures=True)

    def _submit(
        self, pool: Executor, candidate: Candidate, known: dict[str, Document]
    ) -> asyncio.Future[ReadResult]:
        options = self.options
        previous = known.get(candidate.target)
        task = ReadTask(
            str(candidate.source),
            candidate.target,
            previous.content_hash if previous else "",
            options.max_file_bytes,
            options.chunk_tokens,
            options.overlap_tokens,
        )
        return asyncio.get_running_loop().run_in_executor(pool, self._reader, task)

    async def _accept(
        self, candidate: Candidate, future: asyncio.Future[ReadResult], known: dict[str, Document]
    ) -> None:
        source, target = str(candidate.source), candidate.target
        try:
            result = future.result()
        except Exception as error:  # a bug in a reader library
            log.exception("reading %s failed", source)
            reason = f"it could not be read ({type(error).__name__}: {error})"
            self._finish(FileOutcome(source, target, "failed", reason), candidate.size)
            return
        previous = known.get(target)
        if result.error:
            self._finish(FileOutcome(source, target, "failed", result.error), candidate.size)
        elif result.unchanged and previous is not None:
            outcome = FileOutcome(source, target, "unchanged", "", previous.chunks, previous.id)
            self._finish(outcome, candidate.size)
        else:
            self._stage(result, previous, candidate.size)

    def _stage(self, result: ReadResult, previous: Document | None, size: int) -> None:
        suffix = Path(result.source).suffix.lower()
        document = new_document(
            result.target,
            previous,
            title=result.title,
            source=result.source,
            media_type=result.media_type or MEDIA_TYPES.get(suffix, "text/plain"),
            size=result.size,
            content_hash=result.content_hash,
            tokens=sum(int(row[2]) for row in result.chunks),  # type: ignore[call-overload]
            chunks=len(result.chunks),
        )
        rows = [
            {
                "id": f"{document.rev}.{ordinal}",
                "doc_id": document.id,
                "rev": document.rev,
                "ordinal": ordinal,
                "text": text,
                "tokens": tokens,
                "position": position,
                "page": page,
                "line_start": line_start,
                "line_end": line_end,
                "heading": heading,
            }
            for (ordinal, text, tokens, position, page, line_start, line_end, heading) in (
                result.chunks
            )
        ]
        write = DocumentWrite(document, rows, previous.rev if previous else None)
        status = "replaced" if previous else "added"
        outcome = FileOutcome(result.source, result.target, status, "", len(rows), document.id)
        if not self._buffer:
            self._buffer_since = time.monotonic()
        self._buffer.append((write, outcome))
        self._buffer_chunks += len(rows)
        self.progress.bytes_done += size

    async def _flush(self, wait: bool) -> None:
        if self._commit_task is not None:
            await self._commit_task
            self._commit_task = None
        if self._buffer:
            batch, self._buffer, self._buffer_chunks = self._buffer, [], 0
            self._commit_task = asyncio.create_task(self._commit(batch))
            self._commits += 1
        if wait and self._commit_task is not None:
            await self._commit_task
            self._commit_task = None

    async def _commit(self, batch: list[tuple[DocumentWrite, FileOutcome]]) -> None:
        await self.store.commit([write for write, _ in batch])
        self._unmaintained += sum(len(write.chunks) for write, _ in batch)
        if self._unmaintained >= MAINTAIN_EVERY:
            # Folding new rows into the indexes as we go keeps each round small: one round
            # at the end of a huge ingest needed memory in proportion to all of it.
            await upkeep.maintain(self.store)
            self._unmaintained = 0
        for write, outcome in batch:
            self.progress.chunks += len(write.chunks)
            self._finish(outcome, 0)
        if self._on_commit is not None:
            self._on_commit([write.document for write, _ in batch])

    def _finish(self, outcome: FileOutcome, size: int = 0) -> None:
        self._outcomes.append(outcome)
        self.progress.files_done += 1
        self.progress.bytes_done += size
        self.progress.counts[outcome.status] += 1
        if self._on_outcome is not None:
            self._on_outcome(outcome)
        self._report()

    def _report(self, force: bool = False) -> None:
        now = time.monotonic()
        if self._on_progress is not None and (force or now - self._last_report >= 0.1):
            self._last_report = now
            self._on_progress(self.progress)


def _abandon(futures: Iterable[asyncio.Future[Any]]) -> None:
    """Let go of futures whose files are retried or dropped.

    They are not cancelled: the executor's manager thread would then fail to set their
    "pool broken" exception (InvalidStateError on 3.11). Their outcome is read and ignored.
    """
    for future in futures:
        future.add_done_callback(lambda done: done.cancelled() or done.exception())
