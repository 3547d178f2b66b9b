"""Hibernation: processes written to disk as they change, put to sleep, and brought back.

:class:`Hibernation` is the part of :class:`~llmos.kernel.kernel.Kernel` that keeps sessions
(:mod:`llmos.kernel.sessions`). With a :class:`SessionStore` attached, every process has a
journal (:mod:`llmos.kernel.journal`) from its spawn to its end; pids come from the store, so
they never repeat in a data dir. ``hibernate`` stops a process (a generation in flight is
cancelled and its partial answer kept), writes it down and frees its context RAM;
``restore`` brings a saved process back under its own pid, its context RAM rebuilt and
recounted for the model it runs on now. A process whose app was removed, or whose model is
gone, comes back suspended and *held*: ``held`` says why in plain words, and ``revive`` (with
another model, or once the app is back) lets it run again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from llmos.apps.manifest import AppManifest
from llmos.apps.registry import AppDisabled, AppNotFound
from llmos.drivers.base import DriverError, ModelInfo, ModelNotFound
from llmos.kernel.errors import KernelError
from llmos.kernel.events import ProcessSpawned
from llmos.kernel.journal import ProcessJournal
from llmos.kernel.process import Process, ProcessCounters, ProcessState
from llmos.kernel.sessions import SavedProcess, SessionDamaged, SessionStore

if TYPE_CHECKING:
    from llmos.apps.registry import AppRegistry
    from llmos.drivers.base import ModelDriver
    from llmos.kernel.events import EventBus
    from llmos.kernel.paging import Pager
    from llmos.kernel.syscalls import Syscalls

log = logging.getLogger("llmos.kernel.kernel")

HIBERNATED = "hibernated"
"""The exit reason of a process put to sleep (it can be restored)."""


class Hibernation:
    """Sessions of a kernel (mixed into :class:`~llmos.kernel.kernel.Kernel`)."""

    if TYPE_CHECKING:  # provided by Kernel
        driver: ModelDriver
        apps: AppRegistry
        bus: EventBus
        pager: Pager
        syscalls: Syscalls
        options: dict[str, Any]
        _processes: dict[int, Process]
        _pids: Iterator[int]

        def get(self, pid: int) -> Process: ...
        def _ram_for(self, app: AppManifest, info: ModelInfo) -> tuple[int, int]: ...
        def _account(self, process: Process) -> Any: ...
        def _set_state(self, process: Process, state: ProcessState) -> None: ...
        def _end(self, process: Process, reason: str) -> None: ...
        def suspend(self, pid: int) -> None: ...
        def resume(self, pid: int) -> None: ...
        def children(self, pid: int) -> list[Process]: ...
        async def choose_model(
            self, app: AppManifest, override: str | None = None
        ) -> ModelInfo: ...

    sessions: SessionStore | None
    _settling: set[asyncio.Task[None]]

    # -- journals ----------------------------------------------------------------------------

    async def _new_pid(self) -> int:
        if self.sessions is None:
            return next(self._pids)
        spare = self.sessions.spare_pid()
        if spare is not None:
            return spare
        return await asyncio.to_thread(self.sessions.allocate_pid)

    def _open_journal(self, process: Process) -> None:
        """Start writing a new process down (its pid came from the store): its folder and
        lock are made on the writer thread, before its first record."""
        store = self.sessions
        if store is None:
            return
        pid = process.pid
        store.writer.call(lambda: store.claim(pid))
        journal = ProcessJournal(store, process, self._sleeps_with)
        process._journal = journal
        journal.begin(process)

    def _save(self, process: Process, *, info: bool = False) -> None:
        """Write what changed in ``process`` to its session log (queued, never blocking)."""
        if process._journal is not None:
            process._journal.sync(process, info=info)

    def set_window(self, pid: int, window: dict[str, Any] | None) -> None:
        """Remember where the desktop shows the process's window (kept with its session).

        ``window`` is the desktop's own description (geometry, state, stacking); the key
        ``open`` says the window is on screen, so a restart brings it back.
        """
        process = self.get(pid)
        if process.window != window:
            process.window = dict(window) if window is not None else None
            self._save(process)

    def _settle_later(self, process: Process, reason: str) -> None:
        """After ``_end``: once the stopped turn has kept its partial answer, write the end
        down and let go of the session."""
        if process._journal is None:
            return
        task = asyncio.get_running_loop().create_task(
            self._settle(process, reason), name=f"llmos-settle-{process.pid}"
        )
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def _settle(self, process: Process, reason: str) -> None:
        turn = process._turn
        if turn is not None and not turn.done():
            await asyncio.gather(turn, return_exceptions=True)
        journal, store = process._journal, self.sessions
        if journal is None or store is None:
            return
        journal.status = HIBERNATED if reason == HIBERNATED else "ended"
        journal.sync(process, info=True)
        journal.close()
        process._journal = None
        # Let go of it once its last records are written (synced with the next group).
        store.writer.call(functools.partial(store.release, process.pid))
        if reason == HIBERNATED:
            # Its context RAM is on disk now: free it here.
            process.history = []
            process.paged_in = []
            process.usage = None

    async def settled(self) -> None:
        """Wait until every ended process is written down."""
        while self._settling:
            await asyncio.gather(*tuple(self._settling), return_exceptions=True)

    # -- hibernate ---------------------------------------------------------------------------

    async def hibernate(self, pid: int) -> None:
        """Put a process (and the processes it started) to sleep: a generation in flight is
        cancelled and its partial answer kept, the state is written down, and its context RAM
        is freed. :meth:`restore` brings it back.

        Without a session store there is nowhere to keep it: the process is killed.
        """
        process = self.get(pid)
        if not process.alive:
            return
        self._end(process, HIBERNATED if self.sessions is not None else "killed")
        await self.settled()
        if self.sessions is not None:
            await self.sessions.writer.flush()  # on disk, and let go of, when this returns

    # -- restore -----------------------------------------------------------------------------

    async def load_saved(self, pid: int) -> SavedProcess:
        """A saved process as its session log gives it (read off the event loop).

        Raises:
            SessionError: there is none, or it cannot be read.
        """
        store = self._store()
        await store.writer.flush()  # what this kernel wrote is read back
        return await asyncio.to_thread(store.load, pid)

    async def restore(self, saved: SavedProcess, *, model: str | None = None) -> Process:
        """Bring a saved process back under its own pid, its context RAM rebuilt and recounted
        for the model it gets now (``model``, or the one it ran on).

        An app that was removed or disabled, or a model that is gone, does not stop it: the
        process comes back suspended, with ``held`` saying why and what to do.

        Raises:
            SessionBusy: another LLM-OS runs it.
            SessionDamaged: its saved app cannot be read.
            DriverError: the backend does not answer, or has no ``model``.
            NoUsableModel: ``model`` cannot run the app.
        """
        store = self._store()
        current = self._processes.get(saved.pid)
        if current is not None and current.alive:
            return current
        if current is not None:  # it ended here: let its end be written and its lock go
            await self.settled()
            await store.writer.flush()
        manifest, held = app_of(saved, self.apps)
        info: ModelInfo | None = None
        if model is not None:  # asked for by name: if it cannot run the app, say so
            info = await self.choose_model(manifest, model)
        else:
            try:
                info = await self.choose_model(manifest, saved.model)
            except (ModelNotFound, KernelError) as error:
                held = held or _model_gone(saved.model, self.driver.location, error)
        store.claim(saved.pid)
        try:
            process = self._rebuild(saved, manifest, info)
        except BaseException:
            store.release(saved.pid)
            raise
        process.held = held
        journal = ProcessJournal(store, process, self._sleeps_with)
        store.tidy(saved)
        journal.adopt(process, saved.transcript)
        process._journal = journal
        if saved.partial:
            # The answer a crash cut: kept, marked interrupted.
            process.history.append(
                {"role": "assistant", "content": saved.partial, "interrupted": True}
            )
        self._processes[process.pid] = process
        self.bus.publish(
            ProcessSpawned(
                process.pid, manifest.id, process.model, process.priority, process.parent_pid
            )
        )
        if held or saved.suspended:  # held, or suspended by the user before it slept
            self.suspend(process.pid)
        if held:
            log.info("pid %d restored, held: %s", process.pid, held)
        self._account(process)
        self._save(process, info=True)
        await self._restore_children(saved)
        return process

    async def _restore_children(self, saved: SavedProcess) -> None:
        """Bring back the processes ``saved`` started that slept with it."""
        for pid in saved.children:
            known = self._processes.get(pid)
            if known is not None and known.alive:
                continue
            try:
                child = await self.load_saved(pid)
                if child.status != "ended":  # it may have ended after its parent last wrote
                    await self.restore(child)
            except (KernelError, DriverError) as error:
                log.warning("pid %d: its child %d stays asleep (%s)", saved.pid, pid, error)
        parent = self._processes.get(saved.pid)
        if saved.children and parent is not None:
            self._save(parent)  # the children that came back

    def _sleeps_with(self, pid: int) -> list[int]:
        return [child.pid for child in self.children(pid) if not child.detached]

    async def revive(self, pid: int, *, model: str | None = None) -> Process:
        """Let a held process run again: on ``model`` (another one, when its own is gone),
        once its app is installed and enabled again.

        Raises:
            KernelError: it still cannot run (the message says why).
            DriverError: the backend failed.
        """
        process = self.get(pid)
        try:
            manifest = self.apps.get(process.app.id)
        except AppNotFound as error:
            raise KernelError(str(error)) from None
        info = await self.choose_model(manifest, model or process.model)
        await self.driver.prepare(info.name)
        process.app = manifest
        process.model = info.name
        process.budget, process.reserve = self._ram_for(manifest, info)
        process.capabilities = info.capabilities
        process.tools = self.syscalls.tools(process, info.parameter_size)
        process.held = ""
        self.resume(pid)
        self._account(process)
        self._save(process, info=True)
        return process

    async def reopen(self, saved: SavedProcess | int) -> Process:
        """Start a new process with an ended (or hibernated) process's conversation, summary
        and core memory (``saved``, or read by pid); its evicted turns stay where they are in
        long-term memory.

        Raises:
            SessionError: the saved process cannot be read.
        """
        store = self._store()
        if isinstance(saved, int):
            saved = await self.load_saved(saved)
        new_pid = await self._new_pid()
        copy = dataclasses.replace(
            saved,
            pid=new_pid,
            transcript=list(saved.transcript),
            pinned=list(saved.pinned),
            pages=list(saved.pages),
            counters={},
            started_at=time.time(),
            status="running",
            exit_reason="",
            ended_at=None,
            window=None,
            parent_pid=None,
            children=[],
            damage="",
        )
        if saved.partial:
            copy.transcript.append(
                {"role": "assistant", "content": saved.partial, "interrupted": True}
            )
            copy.partial = ""
        store.rewrite(copy)
        await store.writer.flush()
        return await self.restore(copy)

    # -- internals ---------------------------------------------------------------------------

    def _store(self) -> SessionStore:
        if self.sessions is None:
            raise KernelError("This kernel keeps no sessions (it has no data dir).")
        return self.sessions

    def _rebuild(
        self, saved: SavedProcess, manifest: AppManifest, info: ModelInfo | None
    ) -> Process:
        if info is not None:
            budget, reserve = self._ram_for(manifest, info)
        else:  # its model is gone: keep the room it had until another is chosen
            budget = saved.budget or min(manifest.model.context or 8192, 8192)
            reserve = min(manifest.model.reserve, budget // 2)
        known = {f.name for f in dataclasses.fields(ProcessCounters)}
        counters = ProcessCounters(
            **{k: v for k, v in saved.counters.items() if k in known and k != "ended_at"}
        )
        counters.started_at = saved.started_at or counters.started_at
        process = Process(
            pid=saved.pid,
            app=manifest,
            model=info.name if info is not None else saved.model,
            priority=saved.priority,
            budget=budget,
            reserve=reserve,
            parent_pid=saved.parent_pid,
            detached=saved.detached,
            history=list(saved.history),
            pinned=list(saved.pinned),
            paged_in=list(saved.pages),
            summary=saved.summary,
            core=saved.core,
            first_turn=saved.first_turn,
            memory_folder=saved.memory_folder,
            counters=counters,
            options=dict(self.options),
            window=saved.window,
        )
        if info is not None:
            process.capabilities = info.capabilities
            process.tools = self.syscalls.tools(process, info.parameter_size)
        return process


def _model_gone(model: str, location: str, error: Exception) -> str:
    if isinstance(error, ModelNotFound):
        return (
            f"Its model {model} is not installed at {location} any more. Choose another model "
            f"to go on (or pull it: llmos models pull {model}). The conversation is kept."
        )
    return f"{error} The conversation is kept."


def app_of(saved: SavedProcess, apps: AppRegistry) -> tuple[AppManifest, str]:
    """The app to bring ``saved`` back with: the installed one, or (removed, disabled) the one
    it started with; and why it cannot run ("" when it can).

    Raises:
        SessionDamaged: neither can be read.
    """
    try:
        return apps.get(saved.app_id), ""
    except AppNotFound as error:
        try:
            manifest = AppManifest.model_validate(saved.app)
        except ValidationError:
            raise SessionDamaged(
                saved.pid, f"its app '{saved.app_id}' cannot be read back"
            ) from None
        if isinstance(error, AppDisabled):
            why = f"The app {manifest.name} is disabled: enable it in the App Store"
        else:
            why = f"The app {manifest.name} was removed: install it again from the App Store"
        return manifest, f"{why} to go on. The conversation is kept."
