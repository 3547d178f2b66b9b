"""The composition root: the one place where the kernel and its collaborators are built.

The CLI, the desktop and the tests all build the kernel here, so they run the same kernel
the same way. :func:`choose_engine` decides which model backend runs:

- ``--engine ollama``: Ollama at the configured host;
- ``--engine embedded``: llama.cpp in this process, on ``--model /path/to/model.gguf`` or the
  default model (assembled once from its package-index parts);
- ``--engine auto`` (the default): Ollama when it answers, else the embedded engine when it
  is installed, else an error naming both ways to get a model.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from llmos.apps.registry import AppRegistry
from llmos.config import Settings
from llmos.drivers.base import DriverError, ModelDriver
from llmos.drivers.embedded_driver import EmbeddedDriver, engine_available
from llmos.drivers.model_store import (
    DEFAULT_RECIPE,
    ModelFileError,
    Progress,
    ensure_model,
    verify_gguf,
)
from llmos.drivers.ollama_driver import OllamaDriver
from llmos.kernel.events import EventBus
from llmos.kernel.kernel import Kernel
from llmos.kernel.scheduler import Scheduler
from llmos.kernel.sessions import SessionStore
from llmos.memory.embedder import OFF, Embedder, EmbedderChoice, choose_embedder

if TYPE_CHECKING:  # LanceDB takes 1.5 s to import: only memory commands pay for it
    from llmos.memory.backing import MemoryBacking
    from llmos.memory.long_term import LongTermMemory

PROBE_TIMEOUT = 2.0
"""Seconds ``auto`` waits for Ollama to answer before using the embedded engine."""


class EngineUnavailable(DriverError):
    """No model backend can run with these settings."""


@dataclass(frozen=True, slots=True)
class EngineChoice:
    """The backend to run on, and why it was chosen."""

    driver: ModelDriver
    reason: str
    model: str | None
    """The model to run apps on (None: let each app choose among installed ones)."""


def gguf_path(model: str | None) -> Path | None:
    """``model`` as a GGUF file path, when it names one."""
    if model and (model.endswith(".gguf") or Path(model).expanduser().is_file()):
        return Path(model).expanduser()
    return None


async def choose_engine(settings: Settings, *, progress: Progress | None = None) -> EngineChoice:
    """Pick and build the model backend.

    Args:
        progress: told (bytes done, bytes in all) while the default model is assembled.

    Raises:
        EngineUnavailable, ModelFileError: with what to do.
    """
    if settings.engine == "ollama":
        return EngineChoice(
            OllamaDriver(settings.ollama_host), "chosen with --engine ollama", settings.model
        )
    if settings.engine == "embedded":
        return await _embedded(settings, progress, "chosen with --engine embedded")

    if gguf_path(settings.model) is not None:
        return await _embedded(settings, progress, "--model names a GGUF file")
    ollama = OllamaDriver(settings.ollama_host, control_timeout=PROBE_TIMEOUT)
    try:
        version = await ollama.version()
    except DriverError as error:
        await ollama.close()
        why = error.message
    else:
        await ollama.close()
        return EngineChoice(
            OllamaDriver(settings.ollama_host),
            f"Ollama {version} answered at {settings.ollama_host}",
            settings.model,
        )
    if not engine_available():
        raise EngineUnavailable(
            f"No model backend: {why} The embedded engine is not installed either.",
            hint="Start Ollama (`ollama serve`), or install the embedded engine with "
            "pip install 'llmos[embedded]'.",
        )
    return await _embedded(settings, progress, f"{why} Using the embedded engine.")


async def _embedded(settings: Settings, progress: Progress | None, reason: str) -> EngineChoice:
    if not engine_available():
        raise EngineUnavailable(
            "The embedded engine is not installed.",
            hint="Install it with pip install 'llmos[embedded]', or use Ollama.",
        )
    path = gguf_path(settings.model)
    if path is not None:
        await asyncio.to_thread(verify_gguf, path)
        name = path.stem
    elif settings.model and settings.engine == "embedded":
        raise ModelFileError(
            f"The embedded engine runs GGUF files, and '{settings.model}' is not one. "
            "Pass --model /path/to/model.gguf, or leave --model out for the default model."
        )
    else:
        models = settings.data_dir / "models"
        path = await asyncio.to_thread(ensure_model, DEFAULT_RECIPE, models, progress)
        name = DEFAULT_RECIPE.name
    driver = EmbeddedDriver(path, name=name, n_ctx=settings.num_ctx)
    return EngineChoice(driver, reason, name)


def build_scheduler(settings: Settings, driver: ModelDriver) -> Scheduler:
    """The scheduler for ``driver``'s slots."""
    # llama.cpp in this process runs one generation at a time.
    slots = 1 if isinstance(driver, EmbeddedDriver) else settings.parallel
    return Scheduler(slots=slots)


def build_kernel(
    settings: Settings, *, driver: ModelDriver | None = None, bus: EventBus | None = None
) -> Kernel:
    """A kernel wired from ``settings`` on ``driver`` (Ollama at the configured host when
    none is given; use :func:`open_kernel` to choose the engine)."""
    driver = driver or OllamaDriver(settings.ollama_host)
    return Kernel(
        driver,
        apps=AppRegistry.default(settings.data_dir),
        scheduler=build_scheduler(settings, driver),
        bus=bus or EventBus(),
        default_model=settings.model,
        num_ctx=settings.num_ctx,
        sessions=SessionStore.in_data_dir(settings.data_dir),
    )


async def open_kernel(
    settings: Settings, *, bus: EventBus | None = None, progress: Progress | None = None
) -> tuple[Kernel, EngineChoice]:
    """Choose the engine and build the kernel on it."""
    choice = await choose_engine(settings, progress=progress)
    kernel = build_kernel(settings, driver=choice.driver, bus=bus)
    kernel.default_model = choice.model
    return kernel, choice


class MemoryLink:
    """Long-term memory for a kernel's pager (headless runs), opened when first needed.

    Memory that does not exist yet is created only to store evicted turns; a search for
    pages to bring in does not create it. Queries are embedded by the kernel's own backend
    when it has an embedding model (the embedded engine's model embeds too); otherwise recall
    runs on full text. Close it after the kernel has shut down.
    """

    def __init__(self, settings: Settings, kernel: Kernel) -> None:
        self.settings = settings
        self.kernel = kernel
        self.memory: LongTermMemory | None = None
        self._backing: MemoryBacking | None = None
        self._lock = asyncio.Lock()

    async def __call__(self, create: bool) -> MemoryBacking | None:
        if self._backing is not None:
            return self._backing
        if not create and not (self.settings.data_dir / "memory" / "lancedb").exists():
            return None
        async with self._lock:
            if self._backing is None:
                from llmos.memory.backing import MemoryBacking
                from llmos.memory.long_term import LongTermMemory

                driver = self.kernel.driver
                if isinstance(driver, EmbeddedDriver):
                    choice = await choose_memory_embedder(self.settings, driver)
                else:  # no second engine just to embed queries: full text will do
                    choice = await choose_embedder(driver, self.settings.embed_model)
                data_dir = self.settings.ensure_data_dir()
                self.memory = await LongTermMemory.open(data_dir, choice)
                self._backing = MemoryBacking(self.memory)
        return self._backing

    async def close(self) -> None:
        if self.memory is not None:
            await self.memory.close()
            self.memory = self._backing = None


async def choose_memory_embedder(
    settings: Settings, driver: ModelDriver, *, progress: Progress | None = None
) -> EmbedderChoice:
    """The embedding model long-term memory uses on ``driver`` (see :mod:`llmos.memory.embedder`).

    On Ollama without an embedding model, the embedded engine embeds (when it is installed).
    """
    if isinstance(driver, EmbeddedDriver) and settings.embed_model in (None, driver.name):
        return EmbedderChoice(Embedder(driver, driver.name, "the embedded engine's model"), "")

    async def embedded_fallback() -> Embedder | None:
        if not engine_available() or settings.embed_model == OFF:
            return None
        models = settings.data_dir / "models"
        path = await asyncio.to_thread(ensure_model, DEFAULT_RECIPE, models, progress)
        engine = EmbeddedDriver(path, name=DEFAULT_RECIPE.name, n_ctx=2048)
        why = "the embedded engine (Ollama has no embedding model; pull nomic-embed-text)"
        return Embedder(engine, DEFAULT_RECIPE.name, why, owns_driver=True)

    return await choose_embedder(driver, settings.embed_model, embedded_fallback)


async def open_memory(
    settings: Settings,
    driver: ModelDriver | None = None,
    *,
    progress: Progress | None = None,
    owns_driver: bool = False,
) -> LongTermMemory:
    """Long-term memory in the data dir; with ``driver``, it also embeds and searches vectors.

    Args:
        owns_driver: close ``driver`` when memory closes.
    """
    from llmos.memory.long_term import LongTermMemory

    choice = None
    try:
        if driver is not None:
            choice = await choose_memory_embedder(settings, driver, progress=progress)
        memory = await LongTermMemory.open(settings.ensure_data_dir(), choice)
    except BaseException:
        if choice is not None and choice.embedder is not None and choice.embedder.owns_driver:
            await choice.embedder.driver.close()
        if driver is not None and owns_driver:
            await driver.close()
        raise
    if driver is not None and owns_driver:
        memory.owned.append(driver)
    return memory
