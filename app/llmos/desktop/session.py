"""The kernel the desktop runs on: started in the background, watched, and changed live.

The desktop window shows at once; the engine (Ollama, or the embedded engine whose default
model may first have to be assembled) starts behind it. Windows that need the kernel await
:meth:`DesktopSession.kernel_ready`, so an app opened during start-up simply waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, replace
from typing import Any

from PySide6.QtCore import QObject, Signal

from llmos.bootstrap import (
    build_kernel,
    build_scheduler,
    choose_engine,
    gguf_path,
    open_kernel,
)
from llmos.config import Settings
from llmos.drivers.base import DriverError, ModelDriver, ModelInfo
from llmos.drivers.model_store import ModelFileError, Progress
from llmos.kernel.consent import Asker
from llmos.kernel.events import EventBus
from llmos.kernel.kernel import Kernel
from llmos.kernel.paging import MemoryLink

log = logging.getLogger(__name__)

HEALTH_SECONDS = 5.0
"""How often the backend is asked whether it still answers."""
HEALTH_TIMEOUT = 3.0


class KernelNotRunning(Exception):
    """The kernel could not start; ``str()`` says why and what to do."""


@dataclass(frozen=True, slots=True)
class KernelStatus:
    """What the taskbar shows about the kernel."""

    phase: str = "starting"
    """``starting``, ``ready`` or ``failed``."""
    engine: str = ""
    """``ollama``, ``embedded`` (or ``fake`` in tests)."""
    location: str = ""
    """The Ollama host, or the embedded model's file."""
    model: str = ""
    """The default model apps run on ("" when each app picks among the installed ones)."""
    connected: bool = False
    message: str = "Starting the model engine..."
    """Why the engine was chosen, or what went wrong and what to do."""
    progress: tuple[int, int] | None = None
    """(bytes done, bytes in all) while the default model is assembled."""


class DesktopSession(QObject):
    """Owns the kernel for the desktop's lifetime.

    Args:
        settings: where to find the backend and the data dir.
        driver: run on this backend instead of choosing one (tests, benchmarks).

    Signals:
        statusChanged(): ``status`` changed (phase, connection, model, progress).
    """

    statusChanged = Signal()

    def __init__(
        self,
        settings: Settings,
        *,
        driver: ModelDriver | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.settings = settings
        self.bus = EventBus()
        self.kernel: Kernel | None = None
        self.memory: MemoryLink | None = None
        """Long-term memory for the kernel's pager (the desktop sets it before ``start``);
        without it the oldest turns of a full context are left out of requests."""
        self.asker: Asker | None = None
        """Asks the user before a sensitive syscall (the desktop sets it before ``start``);
        without it such syscalls are denied."""
        self.status = KernelStatus()
        self._driver = driver
        self._ready: asyncio.Future[Kernel] | None = None
        self._boot: asyncio.Task[None] | None = None
        self._health: asyncio.Task[None] | None = None
        self._reason = ""
        """Why this engine runs (shown while it answers)."""
        self._engine_model: str | None = None
        """The embedded engine's one model (Ollama has many: None)."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    # -- start-up ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the kernel in the background (call once the event loop runs)."""
        if self._ready is None or self._ready.done():
            # A start that was cut short keeps its future: windows waiting on it still hear.
            self._ready = asyncio.get_running_loop().create_future()
        self._boot = self.run(self._start_kernel(), "llmos-boot")

    async def kernel_ready(self) -> Kernel:
        """The running kernel, once it has started.

        Raises:
            KernelNotRunning: it failed to start (the message says why and what to do).
        """
        if self._ready is None:
            raise KernelNotRunning("The desktop has not started its kernel.")
        if self.status.phase == "failed" and self._ready.done() and not self._closing:
            # Asked again after a failed start (a window's Retry): try again, since the user
            # may have started Ollama meanwhile.
            self.start()
        return await asyncio.shield(self._ready)

    async def _start_kernel(self) -> None:
        assert self._ready is not None
        ready = self._ready
        self._set(phase="starting", message="Starting the model engine...", connected=False)
        try:
            if self._driver is not None:
                kernel = build_kernel(self.settings, driver=self._driver, bus=self.bus)
                reason = "the given backend"
            else:
                kernel, choice = await open_kernel(
                    self.settings, bus=self.bus, progress=self._progress_from_thread()
                )
                reason = choice.reason
                if choice.driver.kind == "embedded":
                    self._engine_model = choice.model
        except (DriverError, ModelFileError) as error:
            self._fail(ready, str(error))
            return
        except Exception as error:
            # Whatever breaks, the windows waiting for the kernel must hear of it.
            log.exception("the kernel could not start")
            self._fail(
                ready, f"The model engine could not start ({type(error).__name__}: {error})."
            )
            return
        kernel.memory = self.memory
        kernel.consent.asker = self.asker
        self.kernel = kernel
        self._reason = reason
        self._set(
            phase="ready",
            engine=kernel.driver.kind,
            location=kernel.driver.location,
            model=kernel.default_model or "",
            message=reason,
            progress=None,
        )
        if not ready.done():
            ready.set_result(kernel)
        self._health = self.run(self._watch_health(kernel), "llmos-health")

    def _fail(self, ready: asyncio.Future[Kernel], why: str) -> None:
        self._set(phase="failed", message=why, connected=False, progress=None)
        if not ready.done():
            ready.set_exception(KernelNotRunning(why))
            ready.exception()  # retrieved: windows that never asked must not warn

    def _progress_from_thread(self) -> Progress:
        loop = asyncio.get_running_loop()

        def progress(done: int, total: int) -> None:
            # Called from the thread that assembles the model file (no keywords through
            # call_soon_threadsafe: hence the partial).
            update = functools.partial(
                self._set, message="Preparing the built-in model...", progress=(done, total)
            )
            loop.call_soon_threadsafe(update)

        return progress

    async def _watch_health(self, kernel: Kernel) -> None:
        while True:
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
                # that arrives as the call finishes, and this loop would never end.
                async with asyncio.timeout(HEALTH_TIMEOUT):
                    await kernel.driver.version()
            except (DriverError, TimeoutError) as error:
                if self.status.connected:
                    log.info("the backend stopped answering: %s", error)
                why = str(error) or "The model backend does not answer."
                self._set(connected=False, message=why)
            else:
                if not self.status.connected:
                    self._set(connected=True, message=self._reason)
            await asyncio.sleep(HEALTH_SECONDS)

    # -- live changes ------------------------------------------------------------------------

    async def models(self) -> list[ModelInfo]:
        """The models the backend has (raises DriverError when it does not answer)."""
        kernel = await self.kernel_ready()
        return await kernel.driver.list_models()

    async def apply(self, settings: Settings) -> None:
        """Run on new settings: the default model and context size apply to processes started
        from now on; a new engine or host moves every process to the new backend.

        Raises:
            DriverError, ModelFileError: the new backend cannot run (nothing changed).
            KernelError: a process's app has no usable model on the new backend.
        """
        old, self.settings = self.settings, settings
        kernel = self.kernel
        if kernel is None:
            # The kernel never started (or is still starting): start again on the new settings.
            if self._boot is not None:
                self._boot.cancel()
            self.start()
            return
        moved = (old.engine, old.ollama_host) != (settings.engine, settings.ollama_host)
        if kernel.driver.kind == "embedded" and gguf_path(old.model) != gguf_path(settings.model):
            moved = True  # the built-in engine runs one model file: another file, another engine
        if moved and self._driver is not None:
            moved = False  # tests and benchmarks pin their backend
        if moved:
            await self._switch(kernel, old, settings)
        kernel.num_ctx = settings.num_ctx
        kernel.default_model = self._engine_model or settings.model
        self._set(model=kernel.default_model or "")

    async def _switch(self, kernel: Kernel, old: Settings, settings: Settings) -> None:
        self._set(message="Switching the model engine...")
        if self._health is not None:
            self._health.cancel()
        switched = False
        try:
            choice = await choose_engine(settings, progress=self._progress_from_thread())
            try:
                await kernel.switch_driver(
                    choice.driver, scheduler=build_scheduler(settings, choice.driver)
                )
            except BaseException:
                await choice.driver.close()
                raise
            switched = True
            self._engine_model = choice.model if choice.driver.kind == "embedded" else None
            self._reason = choice.reason
            self._set(engine=kernel.driver.kind, location=kernel.driver.location, progress=None)
        finally:
            if not switched:
                # Only the engine stays as it was; the other changes still apply.
                self.settings = replace(
                    settings, engine=old.engine, ollama_host=old.ollama_host, model=old.model
                )
                kernel.num_ctx = settings.num_ctx
            self._set(message=self._reason, connected=switched and self.status.connected)
            self._health = self.run(self._watch_health(kernel), "llmos-health")

    # -- shutdown ----------------------------------------------------------------------------

    async def shutdown(self) -> None:
        """Cancel generations, stop the kernel and close the backend."""
        self._closing = True
        self._cancel_tasks()
        tasks = tuple(self._tasks)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self.kernel is not None:
            await self.kernel.shutdown()
            self.kernel = None

    # -- internals ---------------------------------------------------------------------------

    def run(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Run ``coro`` as a task the session owns: cancelled at shutdown, failures logged.

        Raises:
            KernelNotRunning: the session is shutting down.
        """
        if self._closing:
            coro.close()
            raise KernelNotRunning("The desktop is shutting down.")
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_log_failure)
        return task

    def _cancel_tasks(self) -> None:
        for task in self._tasks:
            task.cancel()

    def _set(self, **changes: object) -> None:
        if self._closing:
            return
        status = replace(self.status, **changes)  # type: ignore[arg-type]
        if status != self.status:
            self.status = status
            self.statusChanged.emit()


def _log_failure(task: asyncio.Task[None]) -> None:
    with contextlib.suppress(asyncio.CancelledError):
        if task.exception() is not None:
            log.error("%s failed", task.get_name(), exc_info=task.exception())
