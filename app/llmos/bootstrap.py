"""The composition root: the one place where the kernel and its collaborators are built.

The CLI, the desktop and the tests all call :func:`build_kernel`, so they run the same
kernel the same way.
"""

from __future__ import annotations

from llmos.apps.registry import AppRegistry
from llmos.config import Settings
from llmos.drivers.base import DriverError, ModelDriver
from llmos.drivers.ollama_driver import OllamaDriver
from llmos.kernel.events import EventBus
from llmos.kernel.kernel import Kernel
from llmos.kernel.scheduler import Scheduler


class EngineUnavailable(DriverError):
    """The engine the settings ask for cannot run here."""


def build_driver(settings: Settings) -> ModelDriver:
    """The model backend the settings choose.

    ``auto`` uses Ollama at the configured host. The embedded llama.cpp engine is not part
    of this build yet, so asking for it explicitly fails with a clear message.
    """
    if settings.engine == "embedded":
        raise EngineUnavailable(
            "The embedded engine is not available in this version of LLM-OS.",
            hint="Use Ollama instead: start `ollama serve` and pass --engine ollama.",
        )
    return OllamaDriver(settings.ollama_host)


def build_kernel(
    settings: Settings, *, driver: ModelDriver | None = None, bus: EventBus | None = None
) -> Kernel:
    """A kernel wired from ``settings``; pass ``driver`` to use another backend (tests)."""
    return Kernel(
        driver or build_driver(settings),
        apps=AppRegistry.default(settings.data_dir),
        scheduler=Scheduler(slots=settings.parallel),
        bus=bus or EventBus(),
        default_model=settings.model,
        num_ctx=settings.num_ctx,
    )
