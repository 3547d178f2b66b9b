"""The desktop's actions: what each is called, its icon and its keyboard shortcuts.

The shortcuts work whichever window has the focus, and the help lists them from the desktop's
own actions, so this table is the one place they are set.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QWidget

from llmos.desktop.app_store import SHORTCUT as STORE_SHORTCUT
from llmos.desktop.theme import icon


@dataclass(frozen=True)
class DesktopAction:
    """What an action of the desktop is called, its icon's name and its shortcuts."""

    text: str
    icon: str
    keys: tuple[str, ...]


LAUNCHER = DesktopAction("Open the launcher", "launcher", ("Ctrl+Space", "Alt+F1"))
NEXT_WINDOW = DesktopAction("Next window", "front", ("Ctrl+Tab", "Ctrl+F6"))
PREVIOUS_WINDOW = DesktopAction("Previous window", "front", ("Ctrl+Shift+Tab", "Ctrl+Shift+F6"))
CLOSE_WINDOW = DesktopAction("Close the window", "close", ("Ctrl+W",))
TILE = DesktopAction("Tile windows", "tile", ("Ctrl+Alt+T",))
CASCADE = DesktopAction("Cascade windows", "cascade", ("Ctrl+Alt+C",))
TASK_MANAGER = DesktopAction("Task manager", "task-manager", ("Ctrl+Shift+Esc", "Ctrl+T"))
MEMORY = DesktopAction("Memory explorer", "memory", ("Ctrl+E",))
SETTINGS = DesktopAction("Settings", "settings", ("Ctrl+,",))
APP_STORE = DesktopAction("App Store\u2026", "store", (STORE_SHORTCUT,))
HELP = DesktopAction("Keyboard shortcuts", "help", ("F1",))
QUIT = DesktopAction("Quit LLM-OS", "quit", ("Ctrl+Q",))


def add_action(
    window: QWidget,
    what: DesktopAction,
    slot: Callable[[], object] | None,
    made: QAction | None = None,
) -> QAction:
    """Add an application-wide action to ``window`` (so the help lists it).

    Args:
        window: the desktop's window.
        what: the action's text, icon and shortcuts.
        slot: called when the action is triggered.
        made: an action that exists already (a dock's toggle action) to set up instead of a
            new one.
    """
    action = made or QAction(window)
    action.setText(what.text)
    action.setIcon(icon(what.icon))
    action.setShortcuts([QKeySequence(k) for k in what.keys])
    action.setShortcutContext(Qt.ShortcutContext.ApplicationShortcut)
    action.setToolTip(f"{what.text} ({', '.join(what.keys)})")
    if slot is not None:
        action.triggered.connect(slot)
    window.addAction(action)
    return action
