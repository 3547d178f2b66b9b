"""The Models window: installed models listed, pulled and removed through the real ``ollama``
client against the Ollama-protocol test server, and a pull cancelled on the fake backend."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from llmos.desktop.desktop_window import DesktopWindow
from llmos.desktop.models_window import COLUMNS, NAME, PROGRESS_STEPS, ModelsWindow
from llmos.drivers.base import DriverError, ModelNotFound, PullProgress
from tests.desktop.driving import WAIT
from tests.fakes import FakeDriver


def open_models(qtbot, desktop: DesktopWindow) -> ModelsWindow:
    def models_windows() -> list[ModelsWindow]:
        subs = desktop.workspace.subWindowList()
        return [s.widget() for s in subs if isinstance(s.widget(), ModelsWindow)]

    desktop.launcher_action.trigger()
    qtbot.waitUntil(desktop.launcher.isVisible)
    qtbot.keyClicks(desktop.launcher.search, "Models")
    qtbot.keyClick(desktop.launcher.search, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: len(models_windows()) == 1)
    window = models_windows()[0]
    qtbot.waitUntil(lambda: window.table.rowCount() > 0, timeout=WAIT)
    return window


def shown_names(window: ModelsWindow) -> list[str]:
    return [window.table.item(row, NAME).text() for row in range(window.table.rowCount())]


def cell(window: ModelsWindow, name: str, column: str) -> str:
    row = shown_names(window).index(name)
    return window.table.item(row, COLUMNS.index(column)).text()


def pull(qtbot, window: ModelsWindow, name: str) -> str:
    window.pull_name.clear()
    qtbot.keyClicks(window.pull_name, name)
    with qtbot.waitSignal(window.pullEnded, timeout=WAIT) as ended:
        qtbot.mouseClick(window.pull_button, Qt.MouseButton.LeftButton)
    return ended.args[0]


def test_list_pull_and_remove_over_real_http(qtbot, open_desktop, ollama_server):
    desktop = open_desktop(engine="ollama", ollama_host=ollama_server.host)
    window = open_models(qtbot, desktop)
    assert not desktop.session.kernel.processes  # the window runs no process
    installed = shown_names(window)
    assert "qwen2.5:0.5b" in installed and "smollm2:135m" not in installed
    assert "completion" in cell(window, "qwen2.5:0.5b", "Capabilities")
    assert cell(window, "qwen2.5:0.5b", "Context") not in ("", "?")
    assert ollama_server.host.removeprefix("http://") in window.where.text()

    values: list[int] = []
    window.progress.valueChanged.connect(values.append)
    assert pull(qtbot, window, "smollm2:135m") == "Pulled smollm2:135m."
    assert values and max(values) == PROGRESS_STEPS  # the bytes of every layer arrived
    qtbot.waitUntil(lambda: "smollm2:135m" in shown_names(window), timeout=WAIT)
    assert cell(window, "smollm2:135m", "Family") == "llama"
    assert not window.progress.isVisible() and not window.cancel_button.isVisible()
    assert window.pull_name.text() == ""

    # Remove asks first; Cancel keeps the model, Remove deletes it.
    window.table.selectRow(shown_names(window).index("smollm2:135m"))
    qtbot.mouseClick(window.remove_button, Qt.MouseButton.LeftButton)
    box = window.confirm
    qtbot.waitUntil(box.isVisible)
    box.button(QMessageBox.StandardButton.Cancel).click()
    assert "smollm2:135m" in shown_names(window)
    qtbot.mouseClick(window.remove_button, Qt.MouseButton.LeftButton)
    with qtbot.waitSignal(window.removed, timeout=WAIT):
        window.confirm.button(QMessageBox.StandardButton.Yes).click()
    qtbot.waitUntil(lambda: "smollm2:135m" not in shown_names(window), timeout=WAIT)
    assert "smollm2:135m" not in ollama_server.models


@dataclass
class NoDownloadsDriver(FakeDriver):
    """A backend that cannot download (as the embedded engine), or knows no such model."""

    async def pull(self, name: str) -> AsyncGenerator[PullProgress, None]:
        if name.startswith("nosuch"):
            raise ModelNotFound(name, f"There is no model called '{name}' in the library.")
        raise DriverError("The embedded engine cannot download models; use Ollama for that.")
        yield PullProgress("never")


def test_a_pull_that_fails_says_why_and_keeps_the_name(qtbot, open_desktop):
    # (Over real HTTP an unknown name also fails like this, but the ollama client leaves an
    # httpx stream to be closed by the loop in another task, which anyio reports as an error:
    # see the report; so the failure comes from the fake backend here.)
    desktop = open_desktop(NoDownloadsDriver())
    window = open_models(qtbot, desktop)
    message = pull(qtbot, window, "nosuch:1b")
    assert message == "There is no model called 'nosuch:1b' in the library."
    assert window.message.isVisible() and window.message.text() == message
    assert window.message.property("error") is True
    assert window.pull_name.text() == "nosuch:1b"
    message = pull(qtbot, window, "qwen2.5:0.5b")
    assert window.message.text() == message and "cannot download" in message
    assert window.pull_button.isEnabled() and not window.progress.isVisible()


def test_a_server_gone_is_a_message_not_a_traceback(qtbot, open_desktop, ollama_server):
    desktop = open_desktop(engine="ollama", ollama_host=ollama_server.host)
    window = open_models(qtbot, desktop)
    ollama_server.stop()
    with qtbot.waitSignal(window.refresh_button.clicked):
        qtbot.mouseClick(window.refresh_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(window.message.isVisible, timeout=WAIT)
    assert window.message.text() and "Traceback" not in window.message.text()
    qtbot.waitUntil(window.refresh_button.isEnabled, timeout=WAIT)


@dataclass
class SlowPullDriver(FakeDriver):
    """A backend whose downloads report a first step, then hang until cancelled."""

    pulls_closed: int = 0

    async def pull(self, name: str) -> AsyncGenerator[PullProgress, None]:
        try:
            yield PullProgress("pulling abc", 250, 1000, "sha256:abc")
            await asyncio.Event().wait()
        finally:
            self.pulls_closed += 1


def test_cancel_stops_the_pull(qtbot, open_desktop):
    driver = SlowPullDriver()
    desktop = open_desktop(driver)
    window = open_models(qtbot, desktop)
    assert shown_names(window) == ["fake-chat:1b", "fake-embed"]
    qtbot.keyClicks(window.pull_name, "big:70b")
    qtbot.keyClick(window.pull_name, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.progress.value() == PROGRESS_STEPS // 4, timeout=WAIT)
    assert window.cancel_button.isVisible() and not window.pull_button.isEnabled()
    assert "250 B of 1.0 KB" in window.progress.format()
    with qtbot.waitSignal(window.pullEnded, timeout=WAIT) as ended:
        qtbot.mouseClick(window.cancel_button, Qt.MouseButton.LeftButton)
    assert ended.args[0] == "Pulling big:70b was cancelled."
    assert driver.pulls_closed == 1
    assert window.pull_button.isEnabled() and not window.cancel_button.isVisible()
