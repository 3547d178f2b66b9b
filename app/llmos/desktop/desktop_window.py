"""The desktop: wallpaper and agent windows, the taskbar, the launcher and the panels."""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from pathlib import Path

from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QCloseEvent, QGuiApplication
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QDockWidget,
    QMainWindow,
    QMessageBox,
    QToolBar,
    QWidget,
)

from llmos.apps.registry import AppNotFound, AppRegistry
from llmos.config import Settings
from llmos.desktop import desktop_actions as shortcuts
from llmos.desktop.agent_window import AgentWindow
from llmos.desktop.app_store import AppStore
from llmos.desktop.app_windows import AppWindow, AppWindows
from llmos.desktop.bridge import KernelBridge
from llmos.desktop.consent_prompt import ConsentBar, DesktopConsent
from llmos.desktop.help_dialog import HelpDialog
from llmos.desktop.launcher import Launcher
from llmos.desktop.memory_explorer import MemoryExplorer
from llmos.desktop.memory_link import DesktopMemoryLink
from llmos.desktop.memory_service import MemoryService
from llmos.desktop.session import DesktopSession
from llmos.desktop.session_windows import SessionWindows
from llmos.desktop.settings_dialog import SettingsDialog
from llmos.desktop.shell_window import ShellWindow
from llmos.desktop.task_manager import TaskManager
from llmos.desktop.taskbar import Taskbar
from llmos.desktop.theme import apply_theme, icon
from llmos.desktop.workspace import Workspace
from llmos.drivers.base import DriverError, ModelDriver
from llmos.drivers.model_store import ModelFileError
from llmos.kernel.errors import KernelError
from llmos.memory import paths

log = logging.getLogger(__name__)

TASK_MANAGER_HEIGHT = 250
MEMORY_WIDTH = 520


class DesktopWindow(QMainWindow):
    """The whole desktop in one top-level window.

    Args:
        settings: the settings the desktop starts with.
        driver: run on this model backend instead of choosing one (tests, benchmarks).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        driver: ModelDriver | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("LLM-OS")
        self.setWindowIcon(icon("llmos"))
        self.session = DesktopSession(settings, driver=driver, parent=self)
        self.bridge = KernelBridge(self.session.bus, self)
        self.closed: asyncio.Future[None] = asyncio.get_event_loop().create_future()
        self._shutdown_task: asyncio.Task[None] | None = None
        self._settings_dialog: SettingsDialog | None = None
        self.app_store: AppStore | None = None
        # Sensitive syscalls are asked about in the asking process's window (or its parent's).
        self.consent = DesktopConsent(self.session, self._consent_bars, self)
        self.session.asker = self.consent
        self.bridge.exited.connect(lambda pid, _: self.consent.withdraw(pid))

        self.workspace = Workspace()
        self.task_manager = TaskManager(self.session, self.bridge)
        self.task_manager_dock = self._dock(
            "Task manager",
            "TaskManagerDock",
            self.task_manager,
            Qt.DockWidgetArea.BottomDockWidgetArea,
        )
        self.task_manager_dock.dockLocationChanged.connect(
            lambda area: self.task_manager.set_wide(
                area
                in (Qt.DockWidgetArea.TopDockWidgetArea, Qt.DockWidgetArea.BottomDockWidgetArea)
            )
        )
        self.task_manager.set_wide(True)
        self.memory = MemoryService(self.session, self)
        # The kernel's pager stores evicted turns in the same memory the explorer shows.
        self.session.memory = DesktopMemoryLink(self.memory)
        self.bridge.turnsEvicted.connect(lambda *_: self.memory.notify_stored())
        self.explorer = MemoryExplorer(self.memory)
        self.explorer.message.connect(self._tell)
        self.memory_dock = self._dock(
            "Memory", "MemoryDock", self.explorer, Qt.DockWidgetArea.RightDockWidgetArea
        )
        self.memory_dock.hide()
        # The explorer is tall (folders, documents, chunks): it takes the right edge top to
        # bottom, and the task manager the rest of the bottom.
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        self.workspace.filesDropped.connect(self._on_files_dropped)
        self._make_actions()

        self.taskbar = Taskbar(
            self.launcher_action,
            [self.task_manager_action, self.memory_action, self.settings_action, self.help_action],
        )
        self.taskbar.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        self.taskbar.addActions([self.tile_action, self.cascade_action])
        self.setCentralWidget(self.workspace)
        # In a toolbar area the taskbar spans the whole bottom edge, under the docks.
        taskbar_area = QToolBar("Taskbar", self, objectName="TaskbarArea", movable=False)
        taskbar_area.setFloatable(False)
        taskbar_area.setContextMenuPolicy(Qt.ContextMenuPolicy.PreventContextMenu)
        taskbar_area.layout().setContentsMargins(0, 0, 0, 0)
        taskbar_area.addWidget(self.taskbar)
        self.addToolBar(Qt.ToolBarArea.BottomToolBarArea, taskbar_area)
        self.app_windows = AppWindows(
            self.session, self.bridge, self.memory, self.workspace, self.taskbar, self
        )
        self.app_windows.settingsRequested.connect(self.show_settings)
        self.task_manager.bringToFront.connect(self.app_windows.bring_to_front)
        self.saved_windows = SessionWindows(self.session, self.app_windows, lambda: self.apps, self)
        self.saved_windows.problem.connect(self._tell)
        self.task_manager.wakeRequested.connect(self.wake)
        self.task_manager.reopenRequested.connect(self.reopen)

        self.launcher = Launcher(
            [self.app_store_action, self.settings_action, self.help_action, self.quit_action], self
        )
        self.launcher.appChosen.connect(self.open_app)
        self.launcher.set_apps(self.apps)

        self.session.statusChanged.connect(self._on_status)
        self._on_status()
        QGuiApplication.styleHints().colorSchemeChanged.connect(self._follow_system_look)
        self.resize(1280, 800)
        self.resizeDocks([self.task_manager_dock], [TASK_MANAGER_HEIGHT], Qt.Orientation.Vertical)
        self.resizeDocks([self.memory_dock], [MEMORY_WIDTH], Qt.Orientation.Horizontal)

    # -- set-up --------------------------------------------------------------------------------

    def _make_actions(self) -> None:
        action = partial(shortcuts.add_action, self)
        workspace = self.workspace
        self.launcher_action = action(shortcuts.LAUNCHER, self.show_launcher)
        self.next_action = action(shortcuts.NEXT_WINDOW, workspace.activateNextSubWindow)
        self.previous_action = action(
            shortcuts.PREVIOUS_WINDOW, workspace.activatePreviousSubWindow
        )
        self.close_window_action = action(shortcuts.CLOSE_WINDOW, workspace.closeActiveSubWindow)
        self.tile_action = action(shortcuts.TILE, workspace.tileSubWindows)
        self.cascade_action = action(shortcuts.CASCADE, workspace.cascadeSubWindows)
        # A dock's own toggle action stays in step with the dock however it is closed.
        self.task_manager_action = action(
            shortcuts.TASK_MANAGER, None, self.task_manager_dock.toggleViewAction()
        )
        self.memory_action = action(shortcuts.MEMORY, None, self.memory_dock.toggleViewAction())
        self.settings_action = action(shortcuts.SETTINGS, self.show_settings)
        self.app_store_action = action(shortcuts.APP_STORE, self.show_app_store)
        self.help_action = action(shortcuts.HELP, self.show_help)
        self.quit_action = action(shortcuts.QUIT, self.close)

    def _dock(self, title: str, name: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        dock.setAllowedAreas(Qt.DockWidgetArea.AllDockWidgetAreas)
        self.addDockWidget(area, dock)
        return dock

    def start(self) -> None:
        """Start the kernel (call once the event loop runs) and bring back the windows that
        were on screen when LLM-OS last closed (or crashed)."""
        self.session.start()
        self.memory.resume_interrupted()
        self.saved_windows.restore()

    @property
    def apps(self) -> AppRegistry:
        """The installed apps (read afresh: apps installed meanwhile show up)."""
        return AppRegistry.default(self.session.settings.data_dir)

    def _consent_bars(self) -> dict[int, ConsentBar]:
        return {w.pid: w.consent for w in self.agent_windows if w.pid is not None}

    def _refresh_apps(self) -> None:
        """Read the installed apps again, for the launcher and the kernel (which starts the
        apps processes ask for)."""
        apps = self.apps
        if self.session.kernel is not None:
            self.session.kernel.apps = apps
        self.launcher.set_apps(apps)

    # -- windows -------------------------------------------------------------------------------

    @property
    def agent_windows(self) -> list[AgentWindow]:
        return self.app_windows.of_kind(AgentWindow)

    @property
    def shell_windows(self) -> list[ShellWindow]:
        return self.app_windows.of_kind(ShellWindow)

    def open_app(self, app_id: str) -> AppWindow | None:
        """Open a new window of ``app_id``: an agent app's runs a new process; the desktop's
        own tools (the Shell, the Models window) run none."""
        try:
            manifest = self.apps.get(app_id)
        except AppNotFound as error:
            self._tell("App not found", str(error))
            return None
        return self.app_windows.open(manifest)

    def wake(self, pid: int) -> None:
        """Bring hibernated (or interrupted) process ``pid`` back in a window where its window
        was (the next place of the cascade if it had none)."""
        self.saved_windows.wake(pid)

    def reopen(self, pid: int) -> None:
        """Start a new process with ended (or hibernated) process ``pid``'s conversation, in a
        new window."""
        self.saved_windows.reopen(pid)

    def _on_files_dropped(self, files: list[Path]) -> None:
        """Files dropped on the wallpaper go into /Documents, with the explorer showing how."""
        self.show_memory()
        self.explorer.ingest(files, paths.DOCUMENTS)

    def show_memory(self) -> None:
        self.memory_dock.show()
        self.memory_dock.raise_()

    # -- launcher, settings, help --------------------------------------------------------------

    def show_launcher(self) -> None:
        if self.launcher.isVisible():
            self.launcher.hide()
            return
        self._refresh_apps()
        button = self.taskbar.start_button
        self.launcher.popup_at(button.mapToGlobal(QPoint(0, -4)))

    def show_help(self) -> None:
        dialog = HelpDialog(self.actions(), self.task_manager.actions(), self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()

    def show_app_store(self) -> None:
        if self.app_store is None:
            self.app_store = AppStore(self.session, self)
            self.app_store.appsChanged.connect(self._refresh_apps)
        else:
            self.app_store.refresh()
        self.app_store.show()
        self.app_store.raise_()
        self.app_store.activateWindow()

    def show_settings(self) -> None:
        if self._settings_dialog is not None:
            self._settings_dialog.raise_()
            return
        dialog = SettingsDialog(self.session, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.saved.connect(self._apply_settings)
        dialog.finished.connect(lambda _: setattr(self, "_settings_dialog", None))
        self._settings_dialog = dialog
        dialog.open()
        dialog.load_models()

    def _apply_settings(self, settings: Settings) -> None:
        if self._shutdown_task is not None:
            return
        if settings.theme != self.session.settings.theme:
            self.apply_look(settings.theme)
        self.session.run(self._switch(settings), "llmos-apply-settings")

    async def _switch(self, settings: Settings) -> None:
        try:
            await self.session.apply(settings)
        except (DriverError, ModelFileError, KernelError) as error:
            self._tell(
                "Settings saved, engine unchanged",
                f"The new engine settings could not be used now: {error}",
            )

    def _tell(self, title: str, text: str) -> None:
        """A warning that does not block the event loop (no nested exec)."""
        box = QMessageBox(
            QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Ok, self
        )
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

    def apply_look(self, mode: str) -> None:
        """Switch the theme live: palette, style sheet, icons, wallpaper and conversations."""
        app = QApplication.instance()
        if not isinstance(app, QApplication):
            return
        apply_theme(app, mode)
        self.workspace.refresh_wallpaper()
        for window in self.agent_windows:
            window.chat.restyle()
        self.update()

    def _follow_system_look(self) -> None:
        if self.session.settings.theme == "system":
            self.apply_look("system")

    def _on_status(self) -> None:
        status = self.session.status
        self.taskbar.show_status(status)

    # -- shutdown ------------------------------------------------------------------------------

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.closed.done():
            event.accept()
            return
        event.ignore()
        self._start_shutdown()

    async def shutdown(self) -> None:
        """Close every window, stop the kernel (generations are cancelled), then close.

        Every caller (the window's close button, Ctrl+Q, Ctrl-C in the terminal) waits for the
        one shutdown; a caller that is cancelled does not cancel it.
        """
        await asyncio.shield(self._start_shutdown())

    def _start_shutdown(self) -> asyncio.Task[None]:
        if self._shutdown_task is None:
            self._shutdown_task = asyncio.get_running_loop().create_task(
                self._shut_down(), name="llmos-desktop-shutdown"
            )
        return self._shutdown_task

    async def _shut_down(self) -> None:
        self.launcher.hide()
        for dialog in self.findChildren(QDialog):
            dialog.close()
        self.saved_windows.stop()
        self.app_windows.close_all()
        try:
            await self.memory.close()
            await self.session.shutdown()
        finally:
            self.bridge.close()
            if not self.closed.done():
                self.closed.set_result(None)
            self.close()
