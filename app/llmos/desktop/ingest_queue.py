"""The desktop's ingests, one after another: files dropped while one runs wait their turn.

:class:`~llmos.desktop.memory_service.MemoryService` owns the queue and passes its signals on
as its own ``ingest...`` signals. Requests for the same folder that wait together become one
job; ingests that a closed desktop (or a killed one) left unfinished are queued first when
memory opens again. Kept apart from the service, which opens memory and keeps it live, so
that this holds the running of ingests.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal

if TYPE_CHECKING:
    from llmos.memory.ingest import IngestJob, IngestOptions, IngestProgress
    from llmos.memory.journal import JobRecord
    from llmos.memory.long_term import LongTermMemory, ResumableJob

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class IngestRequest:
    sources: list[Path]
    folder: str
    resumes: JobRecord | None = None


class IngestQueue(QObject):
    """Ingests into memory, run one at a time once the owner sets ``memory``.

    Signals:
        started(str): an ingest began; the text says what it adds where.
        waiting(str): it waits for another process's ingest on this memory (why).
        progress(object): an :class:`IngestProgress` (about 10 a second at most).
        outcome(object): a file's final :class:`FileOutcome`.
        finished(object): the :class:`IngestReport`.
        failed(str): the ingest could not run at all (why, and what to do).
        committed(): documents were stored (they wait for vectors).
        ended(): an ingest ended, however it did (memory may have changed).
    """

    started = Signal(str)
    waiting = Signal(str)
    progress = Signal(object)
    outcome = Signal(object)
    finished = Signal(object)
    failed = Signal(str)
    committed = Signal()
    ended = Signal()

    def __init__(
        self,
        run: Callable[[Coroutine[Any, Any, None], str], asyncio.Task[None] | None],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.memory: LongTermMemory | None = None
        """Where ingests go; none runs until it is set."""
        self._run = run
        self._queue: deque[IngestRequest] = deque()
        self._job: IngestJob | None = None
        self._request: IngestRequest | None = None
        self._waiting = False
        """The running ingest waits for another process's ingest."""
        self._ingesting: asyncio.Task[None] | None = None
        self._closing = False

    def add(self, sources: list[Path], folder: str) -> None:
        """Add ``sources`` to ``folder`` (a normalized path) after the ingests before them."""
        waiting = next((r for r in self._queue if r.folder == folder and not r.resumes), None)
        if waiting is not None:  # dropped while another ingest runs: one job for both
            waiting.sources.extend(sources)
        else:
            self._queue.append(IngestRequest(list(sources), folder))
        self._next_ingest()

    def resume(self, jobs: list[ResumableJob]) -> None:
        """Run again the ingests that were cut short."""
        for job in jobs:
            self._queue.append(IngestRequest(job.sources, job.options.folder, job.record))
        self._next_ingest()

    @property
    def running(self) -> bool:
        return self._ingesting is not None and not self._ingesting.done()

    @property
    def queued(self) -> int:
        """Ingests waiting for the running one."""
        return len(self._queue)

    def clear(self) -> None:
        """Drop the ingests waiting their turn."""
        self._queue.clear()

    def cancel(self) -> None:
        """Stop the running ingest (stored documents stay) and drop the waiting ones."""
        self._queue.clear()
        if self._job is not None:
            self._job.cancel()
        if self._waiting and self._ingesting is not None:
            # Nothing started yet (it waits for another process's ingest): just stop waiting.
            self._ingesting.cancel()

    def close(self) -> asyncio.Task[None] | None:
        """Take no more ingests, and interrupt the running one (it is resumed the next time
        memory opens); returns its task, for the owner to wait for."""
        self._closing = True
        self._queue.clear()
        if self._job is not None:
            self._job.interrupt()
        return self._ingesting

    def _next_ingest(self) -> None:
        if self.running or not self._queue or self.memory is None or self._closing:
            return
        request = self._queue.popleft()
        self._ingesting = self._run(self._ingest(request), "llmos-memory-ingest")

    async def _ingest(self, request: IngestRequest) -> None:
        from llmos.memory.ingest import IngestOptions, IngestReport

        memory = self.memory
        assert memory is not None
        options: IngestOptions = IngestOptions(folder=request.folder)
        if request.resumes is not None:
            options = IngestOptions(folder=request.folder, **request.resumes.options)
        job = memory.job(
            request.sources,
            options,
            on_progress=self._on_progress,
            on_outcome=self.outcome.emit,
            on_commit=self._on_commit,
        )
        self._job, self._request, self._waiting = job, request, False
        self.started.emit(_describe(request))
        try:
            report = await memory.run(job, waiting=self._say_waiting, resumes=request.resumes)
        except asyncio.CancelledError:
            if self._waiting and not self._closing:  # the user stopped the wait
                self.finished.emit(IngestReport([], 0, 0.0, cancelled=True))
            else:
                raise
        except Exception as error:
            log.exception("ingest failed")
            self.failed.emit(f"The files could not be added to memory: {error}")
        else:
            self.finished.emit(report)
        finally:
            self._job = self._request = None
            self._waiting = False
            if not self._closing:
                self.ended.emit()
        self._ingesting = None
        self._next_ingest()

    def _say_waiting(self) -> None:
        self._waiting = True
        self.waiting.emit(
            "Waiting for another ingest on this memory (llmos ingest in a terminal?) to finish..."
        )

    def _on_progress(self, progress: IngestProgress) -> None:
        if self._waiting and self._request is not None:
            self._waiting = False  # its turn came
            self.started.emit(_describe(self._request))
        self.progress.emit(progress)

    def _on_commit(self, _documents: object) -> None:
        self.committed.emit()


def _describe(request: IngestRequest) -> str:
    if request.resumes is not None:
        return f"Resuming an ingest into {request.folder} that stopped part-way"
    if len(request.sources) == 1:
        return f"Adding {request.sources[0].name} to {request.folder}"
    return f"Adding {len(request.sources)} items to {request.folder}"
