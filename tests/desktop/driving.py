"""How the desktop tests drive the desktop: open apps from the launcher, type, send."""

from __future__ import annotations

from PySide6.QtCore import Qt

from llmos.desktop.agent_window import AgentWindow
from llmos.desktop.desktop_window import DesktopWindow

WAIT = 10_000
"""Milliseconds a test waits for something the desktop does in the background."""


def open_from_launcher(qtbot, desktop: DesktopWindow, name: str = "Chat") -> AgentWindow:
    before = len(desktop.agent_windows)
    desktop.launcher_action.trigger()
    launcher = desktop.launcher
    qtbot.waitUntil(launcher.isVisible)
    qtbot.keyClicks(launcher.search, name)
    qtbot.keyClick(launcher.search, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: len(desktop.agent_windows) == before + 1)
    assert not launcher.isVisible()
    window = desktop.agent_windows[-1]
    qtbot.waitUntil(lambda: window.pid is not None, timeout=WAIT)
    return window


def type_and_send(qtbot, window: AgentWindow, text: str) -> None:
    qtbot.keyClicks(window.composer, text)
    qtbot.keyClick(window.composer, Qt.Key.Key_Return)


def long_answer(messages) -> str:
    return " ".join(f"word{i}" for i in range(400)) + "."


def open_from_launcher_no_pid(qtbot, desktop: DesktopWindow) -> AgentWindow:
    desktop.launcher_action.trigger()
    qtbot.keyClick(desktop.launcher.search, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: len(desktop.agent_windows) == 1)
    return desktop.agent_windows[0]
