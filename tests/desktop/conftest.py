"""Desktop tests: real widgets, offscreen, on one qasync loop shared by the whole session.

The qasync loop wraps the Qt event loop, so ``qtbot.waitUntil`` / ``waitSignal`` run its
tasks. It is marked running only while a desktop test runs: the core's tests (plain asyncio)
share the process and must not see a running loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import replace
from typing import Any

import pytest
import qasync
from PySide6.QtWidgets import QApplication

from llmos.config import load_settings
from llmos.desktop.desktop_window import DesktopWindow
from llmos.desktop.theme import apply_theme
from tests.desktop.driving import WAIT
from tests.fakes import FakeDriver


@pytest.fixture(scope="session")
def qloop(qapp) -> Iterator[qasync.QEventLoop]:
    # As in the app (desktop/main.py): closing the last window must not quit Qt, which would
    # stop this loop's timers for the rest of the session.
    qapp.setQuitOnLastWindowClosed(False)
    loop = qasync.QEventLoop(qapp, already_running=True)
    asyncio.events._set_running_loop(None)
    # Threads for asyncio.to_thread, owned here so they are joined before Qt goes away
    # (the loop itself is never closed: it runs "already" for the whole session).
    executor = qasync.QThreadExecutor()
    loop.set_default_executor(executor)
    yield loop
    executor.shutdown(wait=True)


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


@pytest.fixture
def open_desktop(qtbot, arun, settings) -> Iterator[Callable[..., DesktopWindow]]:
    """Open desktops; each is shut down (if the test did not) and checked to leave nothing."""
    opened: list[DesktopWindow] = []
    threads_before = _threads()

    def open_(driver: FakeDriver | None = None, **changes: object) -> DesktopWindow:
        # Not qtbot.addWidget: pytest-qt would close and delete it before this fixture's
        # teardown, in the middle of the desktop's own asynchronous shutdown.
        window = DesktopWindow(replace(settings, **changes), driver=driver)
        window.show()
        window.start()
        opened.append(window)
        return window

    yield open_
    for window in opened:
        if not window.closed.done():
            arun(window.shutdown())
        qtbot.waitUntil(window.closed.done, timeout=WAIT)
        assert window.session.kernel is None
        window.deleteLater()
    app = QApplication.instance()
    apply_theme(app, "light")
    left = [w for w in app.topLevelWidgets() if w.isVisible()]
    assert not left, f"windows left open: {left}"
    try:
        qtbot.waitUntil(lambda: _threads() <= threads_before, timeout=WAIT)
    except Exception:
        names = sorted(thread.name for thread in threading.enumerate())
        pytest.fail(f"threads outlived the desktop ({threads_before} before): {names}")


LIFELONG_THREADS = {"LanceDBBackgroundEventLoop"}
"""Threads a library starts once and keeps for the life of the process (not leaks)."""


def _threads() -> int:
    """Python's threads but those that live as long as the process. Threads Python did not
    start (``_DummyThread``: the session's QThreadExecutor workers, which appear here once
    each has run its first task) are not counted."""
    return sum(
        thread.name not in LIFELONG_THREADS and not isinstance(thread, threading._DummyThread)
        for thread in threading.enumerate()
    )
