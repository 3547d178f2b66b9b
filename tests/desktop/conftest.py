"""Desktop tests: real widgets, offscreen, on one qasync loop shared by the whole session.

The qasync loop wraps the Qt event loop, so ``qtbot.waitUntil`` / ``waitSignal`` run its
tasks. It is marked running only while a desktop test runs: the core's tests (plain asyncio)
share the process and must not see a running loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest
import qasync

from llmos.config import load_settings


@pytest.fixture(scope="session")
def qloop(qapp) -> Iterator[qasync.QEventLoop]:
    # As in the app (desktop/main.py): closing the last window must not quit Qt, which would
    # stop this loop's timers for the rest of the session.
    qapp.setQuitOnLastWindowClosed(False)
    loop = qasync.QEventLoop(qapp, already_running=True)
    asyncio.events._set_running_loop(None)
    yield loop


@pytest.fixture(autouse=True)
def loop(qloop, qtbot) -> Iterator[qasync.QEventLoop]:
    """The qasync loop, running for this test; no task may outlive the test."""
    asyncio.events._set_running_loop(qloop)
    try:
        yield qloop
        leftover: set[asyncio.Task[Any]] = set()

        def settled() -> bool:
            leftover.clear()
            leftover.update(t for t in asyncio.all_tasks(qloop) if not t.done())
            return not leftover

        try:
            qtbot.waitUntil(settled, timeout=5000)
        except Exception:
            names = sorted(t.get_name() for t in leftover)
            for task in leftover:
                task.cancel()
            pytest.fail(f"tasks outlived the test: {names}")
    finally:
        asyncio.events._set_running_loop(None)


@pytest.fixture
def arun(qtbot, loop) -> Callable[..., Any]:
    """Run a coroutine on the qasync loop while Qt keeps processing events; return its result."""

    def run(coro: Coroutine[Any, Any, Any], timeout: float = 10.0) -> Any:
        task = loop.create_task(coro)
        qtbot.waitUntil(task.done, timeout=int(timeout * 1000))
        return task.result()

    return run


@pytest.fixture
def settings(tmp_path):
    """Settings of an isolated data dir and config file (see the top-level conftest)."""
    return load_settings({"engine": "ollama"})
