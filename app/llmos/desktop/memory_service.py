"""Long-term memory for the desktop: opened on first use, kept live, filled by drops.

One :class:`MemoryService` per desktop owns the :class:`LongTermMemory`. It runs ingests one
after another (files dropped while one runs wait their turn in its :class:`IngestQueue`), an
indexer that embeds behind them, and a watcher that notices what other processes committed
(``llmos ingest`` in a terminal on the same data dir). Widgets listen to its signals; nothing
here blocks the GUI thread: LanceDB is imported and opened in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import logging
import math
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal

from llmos.bootstrap import choose_memory_embedder, open_memory
from llmos.desktop.ingest_queue import IngestQueue
from llmos.desktop.session import DesktopSession, KernelNotRunning
from llmos.kernel.events import ProcessExited, ProcessStateChanged
from llmos.kernel.process import ProcessState
from llmos.memory import paths
from llmos.memory.embedder import EmbedderChoice
from llmos.memory.journal import IngestJournal

if TYPE_CHECKING:
    from llmos.memory.indexer import Indexer, IndexProgress
    from llmos.memory.long_term import LongTermMemory
    from llmos.memory.records import MemoryStats

log = logging.getLogger(__name__)

WATCH_SECONDS = 2.0
"""How often memory looks for what other processes committed."""
INDEX_RETRY_SECONDS = 30.0
"""After embedding failed (the backend went away), how long before it is tried again."""
STATS_SECONDS = 2.0
"""The least time between two counts of memory for the summary line."""
CLOSE_WAIT_SECONDS = 5.0
"""How long closing waits for an interrupted ingest to stop before cancelling it."""
SHARED_ENGINE_BATCH = 8
"""Chunks per embedding batch when the embedder is the engine the agents run on: a batch
holds it, so a message sent meanwhile waits for at most this many."""


class MemoryUnavailable(Exception):
    """Memory could not be opened; ``str()`` says why and what to do."""


class MemoryService(QObject):
    """The desktop's long-term memory.

    Memory opens on full text at once; vectors start once the kernel's engine is up, with the
    embedding model chosen for that engine, and are chosen again when the engine changes.

    Signals:
        stateChanged(): ``phase``, ``message``, ``stats`` or the indexing figures changed.
        changed(): documents or folders changed (here, or in another process).
        ingestStarted(str): an ingest began; the text says what it adds where.
        ingestWaiting(str): it waits for another process's ingest on this memory (why).
        ingestProgress(object): an :class:`IngestProgress` (about 10 a second at most).
        ingestOutcome(object): a file's final :class:`FileOutcome`.
        ingestFinished(object): the :class:`IngestReport`.
        ingestFailed(str): the ingest could not run at all (why, and what to do).
    """

    stateChanged = Signal()
    changed = Signal()
    ingestStarted = Signal(str)
    ingestWaiting = Signal(str)
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
        self._ingests = IngestQueue(self.run, self)
        self._ingests.started.connect(self.ingestStarted)
        self._ingests.waiting.connect(self.ingestWaiting)
        self._ingests.progress.connect(self.ingestProgress)
        self._ingests.outcome.connect(self.ingestOutcome)
        self._ingests.finished.connect(self.ingestFinished)
        self._ingests.failed.connect(self.ingestFailed)
        self._ingests.committed.connect(self._on_commit)
        self._ingests.ended.connect(self.notify_changed)
        self._indexer: Indexer | None = None
        self._indexing: asyncio.Task[None] | None = None
        self._failed_at = -math.inf
        self._stats_task: asyncio.Task[None] | None = None
        self._stats_again = False
        self._watching: asyncio.Task[None] | None = None
        self._engine: object | None = None
        """The kernel driver the embedder was chosen for (None: not chosen yet)."""
        self._choosing: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False
        session.statusChanged.connect(self._follow_engine)

    # -- opening -------------------------------------------------------------------------------

    def start(self) -> None:
        """Open memory in the background (once; later calls do nothing)."""
        if self._opened is None or (self.phase == "failed" and not self._closing):
            self._opened = asyncio.get_running_loop().create_future()
            self.run(self._open(self._opened), "llmos-memory-open")

    def resume_interrupted(self) -> None:
        """Open memory now if a closed (or killed) desktop left an ingest unfinished, so that
        it is finished without waiting for the explorer to be opened."""
        jobs = IngestJournal(self._session.settings.data_dir / "memory").jobs
        if any(jobs.glob("*.json")):
            self.start()

    @property
    def closing(self) -> bool:
        """True once :meth:`close` was called: memory is not opened again."""
        return self._closing

    def exists(self) -> bool:
        """Whether the data dir holds memory (opened or not); a file check, no LanceDB."""
        return (self._session.settings.data_dir / "memory" / "lancedb").exists()

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
            memory = await open_memory(self._session.settings)
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
        self.memory = self._ingests.memory = memory
        self._set(phase="ready", message="vectors wait for the model engine to start")
        opened.set_result(memory)
        self._watching = self.run(self._watch(memory), "llmos-memory-watch")
        self.refresh_stats()
        self._follow_engine()
        resumable, _ = await memory.interrupted()
        self._ingests.resume(resumable)

    def _follow_engine(self) -> None:
        """Choose the embedding model again when the kernel's engine came up or changed."""
        kernel = self._session.kernel
        if self.memory is None or self._closing or kernel is None:
            return
        if kernel.driver is self._engine:
            return
        if self._choosing is not None and not self._choosing.done():
            return  # it looks again when done
        self._choosing = self.run(self._choose_embedder(), "llmos-memory-embedder")

    async def _choose_embedder(self) -> None:
        memory, kernel = self.memory, self._session.kernel
        if memory is None or kernel is None:
            return
        driver = kernel.driver
        try:
            choice = await choose_memory_embedder(self._session.settings, driver)
        except Exception as error:  # a damaged built-in model, a backend gone meanwhile
            log.warning("no embedding model for memory: %s", error)
            choice = EmbedderChoice(None, f"no embedding model could be used ({error})")
        if self.memory is not memory or self._closing:
            if choice.embedder is not None and choice.embedder.owns_driver:
                await choice.embedder.driver.close()
            return
        await self._stop_indexer()
        old = memory.embedder
        embedder = choice.embedder
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if embedder is not None and embedder.driver is driver:
            # The engine the agents run on: embed in small batches, and only while idle.
            embedder = dataclasses.replace(embedder, batch_size=SHARED_ENGINE_BATCH)
            self._unsubscribe = self._session.bus.subscribe(
                self._on_process_state, ProcessStateChanged, ProcessExited
            )
        self._on_process_state(None)
        memory.embedder, memory.embedder_note = embedder, choice.reason
        if (
            old is not None
            and old.owns_driver
            and old.driver is not getattr(embedder, "driver", None)
        ):
            await old.driver.close()
        self._engine = driver
        self._failed_at = -math.inf
        self._set(indexing_error="", message=embedder.reason if embedder else choice.reason)
        self._ensure_indexer()
        self.notify_changed()  # documents' states follow the embedding model
        self._follow_engine()  # the engine may have changed again meanwhile

    # -- ingestion ------------------------------------------------------------------------------

    def ingest(self, sources: list[Path], folder: str = paths.DOCUMENTS) -> None:
        """Add files and folders to memory (after any ingest already running)."""
        if not sources or self._closing:
            return
        self._ingests.add(sources, paths.normalize(folder))
        if self.memory is None:
            self.start()  # the queue runs once memory is open
            self.run(self._report_if_unavailable(), "llmos-memory-wait")

    @property
    def ingesting(self) -> bool:
        return self._ingests.running

    @property
    def queued(self) -> int:
        """Ingests waiting for the running one."""
        return self._ingests.queued

    def cancel_ingest(self) -> None:
        """Stop the running ingest (stored documents stay) and drop the waiting ones."""
        self._ingests.cancel()

    async def _report_if_unavailable(self) -> None:
        try:
            await self.ready()
        except MemoryUnavailable as error:
            self._ingests.clear()
            self.ingestFailed.emit(str(error))

    def _on_commit(self) -> None:
        self.changed.emit()
        self._ensure_indexer()

    # -- vectors --------------------------------------------------------------------------------

    def _ensure_indexer(self) -> None:
        """Embed what waits for vectors: wake the indexer, or start one (again)."""
        memory = self.memory
        if memory is None or self._closing or memory.embedder is None:
            return
        if self._indexer is not None:
            self._indexer.wake()
            return
        if time.monotonic() - self._failed_at < INDEX_RETRY_SECONDS:
            return  # it failed a moment ago: the backend gets time to come back
        indexer = memory.indexer(self._on_index_progress, self._engine_idle)
        if indexer is not None:
            self._indexer = indexer
            self._indexing = self.run(self._index(indexer), "llmos-memory-index")

    async def _index(self, indexer: Indexer) -> None:
        try:
            await indexer.run()
        except Exception as error:  # whatever it was, say so instead of "indexing" forever
            log.exception("embedding stopped")
            indexer.error = indexer.error or str(error)
        finally:
            if self._indexer is indexer:
                self._indexer = None
        if indexer.error and not self._closing:
            self._failed_at = time.monotonic()
            self._set(indexing_error=indexer.error)
            self.notify_changed()

    async def _stop_indexer(self) -> None:
        indexer, task = self._indexer, self._indexing
        if indexer is not None:
            indexer.stop()
        self._idle.set()  # an indexer held at the gate sees the stop
        if task is not None and not task.done():
            with contextlib.suppress(Exception):
                await task
        self._indexer = None

    async def _engine_idle(self) -> None:
        """Wait while an agent uses the engine memory embeds with (set only when shared)."""
        await self._idle.wait()

    def _on_process_state(self, _event: object) -> None:
        kernel = self._session.kernel
        generating = (
            self._unsubscribe is not None
            and kernel is not None
            and any(
                process.state in (ProcessState.WAITING, ProcessState.RUNNING)
                for process in kernel.processes
            )
        )
        if generating:
            self._idle.clear()
        else:
            self._idle.set()

    def _on_index_progress(self, progress: IndexProgress) -> None:
        if self.indexing_error:
            self._set(indexing_error="")  # it works again
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
                self.notify_changed()
                self._ensure_indexer()

    def refresh_stats(self) -> None:
        """Count documents, chunks and disk use again (in the background, coalesced)."""
        if self.memory is None or self._closing:
            return
        if self._stats_task is not None and not self._stats_task.done():
            self._stats_again = True
            return
        self._stats_task = self.run(self._count(self.memory), "llmos-memory-stats")

    async def _count(self, memory: LongTermMemory) -> None:
        while True:
            try:
                stats = await memory.stats()
            except Exception:
                log.exception("memory could not be counted")
            else:
                self._set(stats=stats)
            if not self._stats_again:
                return
            # Asked again meanwhile (every commit and embedding batch asks): count once more,
            # but not sooner than STATS_SECONDS, since counting walks the data dir's files.
            await asyncio.sleep(STATS_SECONDS)
            self._stats_again = False

    def notify_changed(self) -> None:
        """Memory changed (here, or in another process): tell the views, count again."""
        self.changed.emit()
        self.refresh_stats()

    def notify_stored(self) -> None:
        """Documents were stored outside an ingest (the kernel's pager wrote a conversation
        page): show them now, rather than at the next look for changes, and embed them."""
        self.notify_changed()
        self._ensure_indexer()

    def run(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None] | None:
        """Run ``coro`` as a task of the desktop's session (None once it shuts down)."""
        try:
            return self._session.run(coro, name)
        except KernelNotRunning:
            return None

    # -- closing --------------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop ingesting and embedding. Stored documents stay, and an ingest cut short is
        resumed the next time memory opens."""
        self._closing = True
        ingesting = self._ingests.close()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        for task in (self._watching, self._choosing, self._stats_task):
            if task is not None:
                task.cancel()
        if ingesting is not None and not ingesting.done():
            # Files in flight are dropped at once; waiting for another process's ingest, or
            # for a long discovery, is not worth keeping the desktop open for.
            done, _ = await asyncio.wait({ingesting}, timeout=CLOSE_WAIT_SECONDS)
            if not done:
                ingesting.cancel()
        await self._stop_indexer()
        for task in (self._watching, self._choosing, ingesting, self._stats_task):
            if task is not None and not task.done():
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await task
        kernel = self._session.kernel
        if kernel is not None:
            # Turns the pager is writing out are stored before memory closes under them.
            await kernel.pager.flush()
        if self.memory is not None:
            memory, self.memory = self.memory, None
            await memory.close()

    def _set(self, **changes: object) -> None:
        for name, value in changes.items():
            setattr(self, name, value)
        self.stateChanged.emit()
