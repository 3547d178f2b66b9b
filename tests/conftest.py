"""Shared test configuration: headless Qt, isolated settings, and a kernel on a fake driver."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest

from llmos.apps.registry import AppRegistry
from llmos.kernel.events import EventBus
from llmos.kernel.kernel import Kernel
from llmos.kernel.scheduler import Scheduler
from llmos.resources import resource_path
from tests.fakes import FakeDriver


@pytest.fixture(autouse=True)
def _isolated_settings(tmp_path, monkeypatch):
    """No test reads the developer's config, data dir or Ollama host."""
    for name in (
        "OLLAMA_HOST",
        "OLLAMA_NUM_PARALLEL",
        "LLMOS_DATA_DIR",
        "LLMOS_MODEL",
        "LLMOS_ENGINE",
        "LLMOS_NUM_CTX",
        "LLMOS_PARALLEL",
        "LLMOS_EMBED_MODEL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LLMOS_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("LLMOS_DATA_DIR", str(tmp_path / "data"))


@pytest.fixture
def driver() -> FakeDriver:
    return FakeDriver()


@pytest.fixture
async def make_kernel(driver):
    """Build kernels on the fake driver; all are shut down at the end of the test."""
    kernels: list[Kernel] = []

    def make(*, slots: int = 1, num_ctx: int = 8192, **scheduler_args) -> Kernel:
        kernel = Kernel(
            driver,
            apps=AppRegistry([resource_path("apps")]),
            scheduler=Scheduler(slots=slots, **scheduler_args),
            bus=EventBus(),
            num_ctx=num_ctx,
        )
        kernels.append(kernel)
        return kernel

    yield make
    for kernel in kernels:
        await kernel.shutdown()


@pytest.fixture
def kernel(make_kernel) -> Kernel:
    return make_kernel()


@pytest.fixture
def ollama_server():
    """An Ollama-protocol server on 127.0.0.1 for the real ``ollama`` client."""
    from tests.ollama_server import OllamaTestServer

    with OllamaTestServer() as server:
        yield server


@pytest.fixture
def dead_host() -> str:
    """A loopback address where nothing listens."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture(scope="session")
def shared_data_dir(tmp_path_factory):
    """A data dir shared by the tests that need the real default model, so its 491 MB are
    assembled once per run."""
    return tmp_path_factory.mktemp("shared-data")


@pytest.fixture(scope="session")
def default_model(shared_data_dir):
    """The real default model (Qwen2.5-Coder-0.5B-Instruct), assembled from its parts."""
    from llmos.drivers.model_store import DEFAULT_RECIPE, ensure_model

    return ensure_model(DEFAULT_RECIPE, shared_data_dir / "models")
