"""The apps' windows on the desktop: each in a frame on the workspace, with a taskbar button.

An agent app's window runs a process of its own; the desktop's own tools (the Shell, the
Models window) run none and open wider than tall, for their tables and console lines.
"""

from __future__ import annotations

from typing import Any, TypeVar

from PySide6.QtCore import QObject, QPoint, Qt, Signal
from PySide6.QtWidgets import QMdiSubWindow, QWidget

from llmos.apps.manifest import AppManifest
from llmos.desktop.agent_window import AgentWindow
from llmos.desktop.bridge import KernelBridge
from llmos.desktop.memory_service import MemoryService
from llmos.desktop.models_window import ModelsWindow
from llmos.desktop.session import DesktopSession
from llmos.desktop.shell_window import ShellWindow
from llmos.desktop.taskbar import Taskbar
from llmos.desktop.theme import app_icon_of
from llmos.desktop.window_places import WindowPlaces
from llmos.desktop.workspace import Workspace
from llmos.kernel.sessions import SavedProcess

WINDOW_SIZE = (660, 540)
TOOL_SIZES = {"shell": (780, 460), "models": (900, 460)}
"""The desktop's own tools are wider than tall: tables and console lines."""
CASCADE_STEP = 28

AppWindow = AgentWindow | ShellWindow | ModelsWindow
W = TypeVar("W", bound=QWidget)


class AppWindows(QObject):
    """Opens apps' windows on ``workspace`` and keeps ``taskbar`` in step with them.

    Signals:
        settingsRequested(): an agent window asked for the settings (from an error banner).
    """

    settingsRequested = Signal()

    def __init__(
        self,
        session: DesktopSession,
        bridge: KernelBridge,
        memory: MemoryService,
        workspace: Workspace,
        taskbar: Taskbar,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._session = session
        self._bridge = bridge
        self._memory = memory
        self._workspace = workspace
        self._taskbar = taskbar
        self.places = WindowPlaces(workspace, self)
        """Where the agent windows are, kept with their processes' sessions."""
        workspace.subWindowActivated.connect(self._on_activated)
        taskbar.windowClicked.connect(self._on_taskbar_click)

    def of_kind(self, kind: type[W]) -> list[W]:
        """The open windows that are ``kind`` (AgentWindow, ShellWindow...), oldest first."""
        return [w.widget() for w in self._workspace.subWindowList() if isinstance(w.widget(), kind)]

    def open(
        self,
        manifest: AppManifest,
        *,
        saved: SavedProcess | None = None,
        reopen: bool = False,
        place: dict[str, Any] | None = None,
    ) -> AppWindow:
        """Open a new window of ``manifest``'s app and start it: a new process, or ``saved``
        brought back (as a new process with ``reopen``), at ``place`` (default: the next step
        of the cascade)."""
        window: AppWindow
        if manifest.kind == "shell":
            window = ShellWindow(self._session, manifest, memory=self._memory)
        elif manifest.kind == "models":
            window = ModelsWindow(self._session, manifest)
        else:
            window = AgentWindow(self._session, self._bridge, manifest, memory=self._memory)
            window.settingsRequested.connect(self.settingsRequested)
            if saved is not None:
                window.resume(saved, reopen=reopen)
        workspace, taskbar = self._workspace, self._taskbar
        sub = workspace.addSubWindow(window)
        sub.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        sub.setWindowIcon(app_icon_of(manifest))
        sub.resize(*TOOL_SIZES.get(manifest.kind, WINDOW_SIZE))
        offset = (len(workspace.subWindowList()) - 1) % 8 * CASCADE_STEP
        sub.move(QPoint(24 + offset, 16 + offset))
        if isinstance(window, AgentWindow):
            self.places.track(sub, window)
        sub.windowStateChanged.connect(lambda *_: taskbar.set_active(workspace.activeSubWindow()))
        window.windowTitleChanged.connect(lambda _: taskbar.update_window(sub))
        sub.destroyed.connect(lambda _=None: self._on_window_gone(sub))
        taskbar.add_window(sub)
        if place is not None:
            self.places.place(sub, place)
        sub.show()
        workspace.viewport().update()  # no hint behind windows
        window.setFocus()
        window.start()
        return window

    def bring_to_front(self, pid: int) -> None:
        """Show the window of process ``pid`` on top, with the focus."""
        for sub in self._workspace.subWindowList():
            window = sub.widget()
            if isinstance(window, AgentWindow) and window.pid == pid:
                self._raise(sub)
                return

    def raise_window(self, window: QWidget) -> None:
        """Show ``window`` on top, with the focus."""
        sub = window.parentWidget()
        if isinstance(sub, QMdiSubWindow):
            self._raise(sub)

    def close_all(self) -> None:
        """Close every window now, agent windows even mid-answer, leaving their processes to
        the kernel to hibernate (the desktop is closing): their places are written first, so
        the next start puts them back."""
        self.places.stop()
        for sub in self._workspace.subWindowList():
            window = sub.widget()
            if isinstance(window, AgentWindow):
                window.detach()  # closes its frame too
            else:
                sub.close()

    def _on_window_gone(self, sub: QMdiSubWindow) -> None:
        self._taskbar.remove_window(sub)
        self._workspace.viewport().update()  # the hint shows again on an empty desktop

    def _raise(self, sub: QMdiSubWindow) -> None:
        if sub.isMinimized():
            sub.showNormal()
        self._workspace.setActiveSubWindow(sub)
        sub.raise_()
        if sub.widget() is not None:
            sub.widget().setFocus()

    def _on_taskbar_click(self, sub: QMdiSubWindow) -> None:
        if sub is self._workspace.activeSubWindow() and not sub.isMinimized():
            sub.showMinimized()
            self._taskbar.set_active(None)
        else:
            self._raise(sub)

    def _on_activated(self, sub: QMdiSubWindow | None) -> None:
        self._taskbar.set_active(sub)
        for each in self._workspace.subWindowList():
            window = each.widget()
            if isinstance(window, AgentWindow):
                window.chat.set_foreground(each is sub)
