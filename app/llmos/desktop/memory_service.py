"""Long-term memory for the desktop: opened on first use, kept live, filled by drops.

One :class:`MemoryService` per desktop owns the :class:`LongTermMemory`. It runs ingests one
after another (files dropped while one runs wait their turn), an indexer that embeds behind
them, and a watcher that notices what other processes committed (``llmos ingest`` in a
terminal on the same data dir). Widgets listen to its signals; nothing here blocks the GUI
thread: LanceDB is imported and opened in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import logging
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal

from llmos.bootstrap import open_memory
from llmos.desktop.session import DesktopSession, KernelNotRunning
from llmos.kernel.events import ProcessExited, ProcessStateChanged
from llmos.kernel.process import ProcessState
from llmos.memory import paths

if TYPE_CHECKING:
    from llmos.memory.indexer import Indexer, IndexProgress
    from llmos.memory.ingest import IngestJob, IngestOptions
    from llmos.memory.journal import JobRecord
    from llmos.memory.long_term import LongTermMemory
    from llmos.memory.records import MemoryStats

log = logging.getLogger(__name__)

WATCH_SECONDS = 2.0
"""How often memory looks for what other processes committed."""
SHARED_ENGINE_BATCH = 8
"""Chunks per embedding batch when the embedder is the engine the agents run on: a batch
holds it, so a message sent meanwhile waits for at most this many."""


class MemoryUnavailable(Exception):
    """Memory could not be opened; ``str()`` says why and what to do."""


@dataclass(frozen=True, slots=True)
class IngestRequest:
    sources: list[Path]
    folder: str
    resumes: JobRecord | None = None


class MemoryService(QObject):
    """The desktop's long-term memory.

    Signals:
        stateChanged(): ``phase``, ``message``, ``stats`` or the indexing figures changed.
        changed(): documents or folders changed (here, or in another process).
        ingestStarted(str): an ingest began; the text says what it adds where.
        ingestProgress(object): an :class:`IngestProgress` (about 10 a second at most).
        ingestOutcome(object): a file's final :class:`FileOutcome`.
        ingestFinished(object): the :class:`IngestReport`.
        ingestFailed(str): the ingest could not run at all (why, and what to do).
    """

    stateChanged = Signal()
    changed = Signal()
    ingestStarted = Signal(str)
    ingestProgress = Signal(object)
    ingestOutcome = Signal(object)
    ingestFinished = Signal(object)
    ingestFailed = Signal(str)

    def __init__(self, session: DesktopSession, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._session = session
        self.memory: LongTermMemory | None = None
        self.phase = "closed"
        """``closed`` (not opened yet), ``opening``, ``ready`` or ``failed``."""
        self.message = ""
        self.stats: MemoryStats | None = None
        self.indexing_error = ""
        """Why vectors stopped (the backend's words), if they did."""
        self._opened: asyncio.Future[LongTermMemory] | None = None
        self._queue: deque[IngestRequest] = deque()
        self._job: IngestJob | None = None
        self._ingesting: asyncio.Task[None] | None = None
        self._indexer: Indexer | None = None
        self._indexing: asyncio.Task[None] | None = None
        self._stats_task: asyncio.Task[None] | None = None
        self._watching: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False

    # -- opening -------------------------------------------------------------------------------

    def start(self) -> None:
        """Open memory in the background (once; later calls do nothing)."""
        if self._opened is None or (self.phase == "failed" and not self._closing):
            self._opened = asyncio.get_running_loop().create_future()
            self._session.run(self._open(self._opened), "llmos-memory-open")

    async def ready(self) -> LongTermMemory:
        """Memory, once open.

        Raises:
            MemoryUnavailable: it could not be opened (the message says why).
        """
        self.start()
        assert self._opened is not None
        return await asyncio.shield(self._opened)

    async def _open(self, opened: asyncio.Future[LongTermMemory]) -> None:
        self._set(phase="opening", message="Opening long-term memory...")
        try:
            # LanceDB takes over a second to import: never on the GUI thread.
            await asyncio.to_thread(importlib.import_module, "lancedb")
            try:
                kernel = await self._session.kernel_ready()
            except KernelNotRunning:
                kernel = None  # memory still works, on full text
            driver = kernel.driver if kernel is not None else None
            memory = await open_memory(self._session.settings, driver)
        except Exception as error:
            log.exception("long-term memory could not be opened")
            why = f"Long-term memory could not be opened: {error}"
            self._set(phase="failed", message=why)
            if not opened.done():
                opened.set_exception(MemoryUnavailable(why))
                opened.exception()
            return
        if self._closing:
            await memory.close()
            return
        if memory.embedder is not None and kernel is not None:
            shared = memory.embedder.driver is kernel.driver
            if shared:
                memory.embedder = dataclasses.replace(
                    memory.embedder, batch_size=SHARED_ENGINE_BATCH
                )
                self._session.bus.subscribe(
                    self._on_process_state, ProcessStateChanged, ProcessExited
                )
        self.memory = memory
        note = memory.embedder.reason if memory.embedder else memory.embedder_note
        self._set(phase="ready", message=note)
        opened.set_result(memory)
        self._start_indexer()
        self._watching = self._session.run(self._watch(memory), "llmos-memory-watch")
        self.refresh_stats()
        resumable, _ = await memory.interrupted()
        for job in resumable:
            self._queue.append(IngestRequest(job.sources, job.options.folder, job.record))
        self._next_ingest()

    # -- ingestion ------------------------------------------------------------------------------

    def ingest(self, sources: list[Path], folder: str = paths.DOCUMENTS) -> None:
        """Add files and folders to memory (after any ingest already running)."""
        if not sources or self._closing:
            return
        self._queue.append(IngestRequest(list(sources), paths.normalize(folder)))
        if self.memory is None:
            self.start()  # the queue runs once memory is open
            self._session.run(self._report_if_unavailable(), "llmos-memory-wait")
        else:
            self._next_ingest()

    @property
    def ingesting(self) -> bool:
        return self._ingesting is not None and not self._ingesting.done()

    @property
    def queued(self) -> int:
        """Ingests waiting for the running one."""
        return len(self._queue)

    def cancel_ingest(self) -> None:
        """Stop the running ingest (stored documents stay) and drop the waiting ones."""
        self._queue.clear()
        if self._job is not None:
            self._job.cancel()

    async def _report_if_unavailable(self) -> None:
        try:
            await self.ready()
        except MemoryUnavailable as error:
            self._queue.clear()
            self.ingestFailed.emit(str(error))

    def _next_ingest(self) -> None:
        if self.ingesting or not self._queue or self.memory is None or self._closing:
            return
        request = self._queue.popleft()
        self._ingesting = self._session.run(self._ingest(request), "llmos-memory-ingest")

    async def _ingest(self, request: IngestRequest) -> None:
        from llmos.memory.ingest import IngestOptions

        memory = self.memory
        assert memory is not None
        options: IngestOptions = IngestOptions(folder=request.folder)
        if request.resumes is not None:
            options = IngestOptions(folder=request.folder, **request.resumes.options)
        job = memory.job(
            request.sources,
            options,
            on_progress=self.ingestProgress.emit,
            on_outcome=self.ingestOutcome.emit,
            on_commit=self._on_commit,
        )
        self._job = job
        self.ingestStarted.emit(_describe(request))
        try:
            report = await memory.run(job, waiting=self._say_waiting, resumes=request.resumes)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.exception("ingest failed")
            self.ingestFailed.emit(f"The files could not be added to memory: {error}")
        else:
            self.ingestFinished.emit(report)
        finally:
            self._job = None
            self.changed.emit()
            self.refresh_stats()
        self._ingesting = None
        self._next_ingest()

    def _say_waiting(self) -> None:
        self.ingestStarted.emit("Waiting for another ingest on this memory to finish...")

    def _on_commit(self, _documents: object) -> None:
        self.changed.emit()
        if self._indexer is not None:
            self._indexer.wake()

    # -- vectors --------------------------------------------------------------------------------

    def _start_indexer(self) -> None:
        assert self.memory is not None
        indexer = self.memory.indexer(self._on_index_progress, self._engine_idle)
        if indexer is None:
            return
        self._indexer = indexer
        self._indexing = self._session.run(self._index(indexer), "llmos-memory-index")

    async def _index(self, indexer: Indexer) -> None:
        await indexer.run()
        if indexer.error:
            self._set(indexing_error=indexer.error)
        self._indexer = None

    async def _engine_idle(self) -> None:
        """Wait while an agent uses the engine memory embeds with (set only when shared)."""
        await self._idle.wait()

    def _on_process_state(self, _event: object) -> None:
        kernel = self._session.kernel
        generating = kernel is not None and any(
            process.state in (ProcessState.WAITING, ProcessState.RUNNING)
            for process in kernel.processes
        )
        if generating:
            self._idle.clear()
        else:
            self._idle.set()

    def _on_index_progress(self, progress: IndexProgress) -> None:
        self.changed.emit()  # documents turn from "indexing" to "ready"
        self.refresh_stats()

    # -- keeping up to date ---------------------------------------------------------------------

    async def _watch(self, memory: LongTermMemory) -> None:
        while True:
            await asyncio.sleep(WATCH_SECONDS)
            try:
                moved = await memory.store.refresh()
            except Exception:
                log.exception("memory could not look for changes")
                continue
            if moved:
                self.changed.emit()
                self.refresh_stats()
                if self._indexer is not None:
                    self._indexer.wake()
                elif self.memory is not None and self.memory.embedder and not self.indexing_error:
                    self._start_indexer()

    def refresh_stats(self) -> None:
        """Count documents, chunks and disk use again (in the background, coalesced)."""
        if self.memory is None or self._closing:
            return
        if self._stats_task is not None and not self._stats_task.done():
            return
        self._stats_task = self._session.run(self._count(self.memory), "llmos-memory-stats")

    async def _count(self, memory: LongTermMemory) -> None:
        try:
            stats = await memory.stats()
        except Exception:
            log.exception("memory could not be counted")
            return
        self._set(stats=stats)

    def notify_changed(self) -> None:
        """Something here changed memory (a rename, a new folder): tell the views."""
        self.changed.emit()
        self.refresh_stats()

    def run(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None] | None:
        """Run ``coro`` as a task of the desktop's session (None once it shuts down)."""
        try:
            return self._session.run(coro, name)
        except KernelNotRunning:
            return None

    # -- closing --------------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop ingesting and embedding (kept work stays; a cut ingest resumes next time)."""
        self._closing = True
        self._queue.clear()
        if self._job is not None:
            self._job.cancel()
        if self._indexer is not None:
            self._indexer.stop()
        self._idle.set()  # an indexer held at the gate sees the stop
        if self._watching is not None:
            self._watching.cancel()
        for task in (self._watching, self._ingesting, self._indexing, self._stats_task):
            if task is not None and not task.done():
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await task
        if self.memory is not None:
            memory, self.memory = self.memory, None
            await memory.close()

    def _set(self, **changes: object) -> None:
        for name, value in changes.items():
            setattr(self, name, value)
        self.stateChanged.emit()


def _describe(request: IngestRequest) -> str:
    if request.resumes is not None:
        return f"Resuming an ingest into {request.folder} that stopped part-way"
    if len(request.sources) == 1:
        return f"Adding {request.sources[0].name} to {request.folder}"
    return f"Adding {len(request.sources)} items to {request.folder}"
