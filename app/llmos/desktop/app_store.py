"""The App Store: the installed apps with what each may do, installing and removing them.

Installing reads and checks the app first (:func:`llmos.apps.store.inspect`), then shows the
permissions it asks for, sensitive ones marked, and installs only when the user agrees. The
file work runs in a thread; an invalid manifest is explained in words (naming the field).
"""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from llmos.apps import store
from llmos.apps.manifest import AppManifest, ManifestError
from llmos.apps.permissions import SYSCALLS, describe
from llmos.apps.registry import AppNotFound, AppRegistry
from llmos.desktop.banner import Banner
from llmos.desktop.owned_tasks import OwnedTasks
from llmos.desktop.session import DesktopSession
from llmos.desktop.theme import app_icon_of, current_theme, icon

log = logging.getLogger(__name__)

SHORTCUT = "Ctrl+Shift+A"
ICON_SIZE = 40
SENSITIVE_MARK = "\u26a0"
"""Marks a permission the desktop asks about before it is used."""
SENSITIVE_NOTE = f"{SENSITIVE_MARK} reaches outside the app: LLM-OS asks you before it is used."


def permission_lines(syscalls: tuple[str, ...]) -> list[str]:
    """What an app may do, one HTML line per permission, sensitive ones marked."""
    warn = current_theme().warn.name()
    lines = []
    for name, line in zip([n for n in syscalls if n in SYSCALLS], describe(syscalls), strict=True):
        words = html.escape(line.split(": ", 1)[1])
        if SYSCALLS[name].sensitive:
            lines.append(f"<b style='color: {warn}'>{SENSITIVE_MARK} {words}</b>")
        else:
            lines.append(words)
    return lines


def is_user_app(app: AppManifest, data_dir: Path) -> bool:
    folder = store.apps_folder(data_dir).resolve()
    return app.source is not None and folder in app.source.resolve().parents


class AppCard(QFrame):
    """One installed app: icon, name, version, origin, description and permissions.

    Signals:
        removeRequested(str): Remove was clicked (the app's id).
        enabledToggled(str, bool): Enable or Disable was clicked (the id, the new state).
    """

    removeRequested = Signal(str)
    enabledToggled = Signal(str, bool)

    def __init__(self, app: AppManifest, user: bool, enabled: bool = True) -> None:
        super().__init__(objectName="AppCard")
        self.app = app
        self.enabled = enabled
        self.setFrameShape(QFrame.Shape.StyledPanel)
        picture = QLabel()
        picture.setPixmap(app_icon_of(app).pixmap(QSize(ICON_SIZE, ICON_SIZE)))
        origin = "installed by you" if user else "built in"
        if not enabled:
            origin += " \u00b7 disabled: not in the launcher"
        by = f" by {html.escape(app.author)}" if app.author else ""
        self.title = QLabel(
            f"<b>{html.escape(app.name)}</b> {html.escape(app.version)}{by} "
            f"<span style='color: palette(placeholder-text)'>\u00b7 {origin}</span>"
        )
        self.description = QLabel(app.description or "No description.", wordWrap=True)
        self.description.setTextFormat(Qt.TextFormat.PlainText)
        lines = permission_lines(app.permissions.syscalls)
        self.permissions = QLabel(
            "<br>".join(f"\u2022 {line}" for line in lines)
            if lines
            else "Asks for no permissions: it only chats."
            if app.kind == "agent"
            else "One of the desktop's own tools: it runs no model and asks for nothing.",
            wordWrap=True,
        )
        if any(SYSCALLS[name].sensitive for name in app.permissions.syscalls if name in SYSCALLS):
            self.permissions.setToolTip(SENSITIVE_NOTE)
        self.permissions.setObjectName("AppPermissions")
        self.permissions.setTextFormat(Qt.TextFormat.RichText)
        self.remove_button: QPushButton | None = None
        grid = QGridLayout(self)
        grid.setContentsMargins(10, 8, 10, 8)
        grid.setHorizontalSpacing(12)
        grid.addWidget(picture, 0, 0, 3, 1, Qt.AlignmentFlag.AlignTop)
        grid.addWidget(self.title, 0, 1)
        grid.addWidget(self.description, 1, 1, 1, 2)
        grid.addWidget(self.permissions, 2, 1, 1, 2)
        grid.setColumnStretch(1, 1)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.toggle_button = QPushButton("Enable" if not enabled else "Disable")
        self.toggle_button.setToolTip(
            f"Show {app.name} in the launcher again"
            if not enabled
            else f"Hide {app.name} from the launcher; it can no longer be started"
        )
        self.toggle_button.clicked.connect(lambda: self.enabledToggled.emit(app.id, not enabled))
        buttons.addWidget(self.toggle_button)
        if user:
            self.remove_button = QPushButton(icon("delete"), "Remove")
            self.remove_button.setToolTip(f"Uninstall {app.name}")
            self.remove_button.clicked.connect(lambda: self.removeRequested.emit(app.id))
            buttons.addWidget(self.remove_button)
        grid.addLayout(buttons, 0, 2, Qt.AlignmentFlag.AlignRight)
        if not enabled:
            for label in (self.description, self.permissions, picture):
                label.setEnabled(False)


class AppStore(QDialog):
    """The installed apps, and installing or removing one (a non-modal window).

    Signals:
        appsChanged(): an app was installed or removed (the launcher and the kernel's
            registry should read the apps again).
    """

    appsChanged = Signal()

    def __init__(self, session: DesktopSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("AppStore")
        self.setWindowTitle("App Store")
        self.setWindowIcon(icon("store"))
        self.setModal(False)
        self._session = session
        self._tasks = OwnedTasks("store")
        self.cards: dict[str, AppCard] = {}
        self.confirmation: QMessageBox | None = None
        """The question shown before an install or a removal (None when none is)."""

        self.install_file_button = QPushButton(icon("add-files"), "Install from file\u2026")
        self.install_file_button.setToolTip("Install an app from its manifest (app.toml)")
        self.install_file_button.clicked.connect(lambda: self.choose_source(folder=False))
        self.install_folder_button = QPushButton(icon("folder"), "Install folder\u2026")
        self.install_folder_button.setToolTip(
            "Install an app folder: its app.toml and what it holds (such as an icon)"
        )
        self.install_folder_button.clicked.connect(lambda: self.choose_source(folder=True))
        top = QHBoxLayout()
        top.addWidget(QLabel("<b>Installed apps</b>"), 1)
        top.addWidget(self.install_file_button)
        top.addWidget(self.install_folder_button)

        self.banner = Banner()
        self.banner.settings_button.hide()
        self.status = QLabel(wordWrap=True, objectName="StoreStatus")
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.list = QWidget(objectName="AppCards")
        self._cards_layout = QVBoxLayout(self.list)
        self._cards_layout.setContentsMargins(0, 0, 0, 0)
        self._cards_layout.setSpacing(8)
        self.scroll = QScrollArea(widgetResizable=True, frameShape=QFrame.Shape.NoFrame)
        self.scroll.setWidget(self.list)

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.banner)
        layout.addWidget(self.scroll, 1)
        layout.addWidget(self.status)
        self.resize(680, 640)
        self.refresh()

    @property
    def data_dir(self) -> Path:
        return self._session.settings.data_dir

    # -- the list ----------------------------------------------------------------------------

    def refresh(self) -> None:
        """List the installed apps afresh."""
        while self._cards_layout.count():
            widget = self._cards_layout.takeAt(0).widget()
            if widget is not None:
                widget.deleteLater()
        self.cards.clear()
        registry = AppRegistry.default(self.data_dir)
        for app in registry.everything():
            user = is_user_app(app, self.data_dir)
            card = AppCard(app, user, enabled=app.id not in registry.disabled)
            card.removeRequested.connect(self.remove)
            card.enabledToggled.connect(self.set_enabled)
            self.cards[app.id] = card
            self._cards_layout.addWidget(card)
        self._cards_layout.addStretch(1)
        if registry.errors:
            self.banner.show_problem(
                "Some installed apps could not be read:\n" + "\n".join(registry.errors)
            )

    def show_app(self, app_id: str) -> None:
        """Scroll ``app_id``'s card into view (once the list is laid out)."""
        card = self.cards.get(app_id)
        if card is not None:
            QTimer.singleShot(0, card, lambda: self.scroll.ensureWidgetVisible(card))

    # -- installing --------------------------------------------------------------------------

    def choose_source(self, *, folder: bool) -> None:
        """Ask for an app's manifest or folder (without blocking), then install it."""
        dialog = QFileDialog(self, "Install an app folder" if folder else "Install an app")
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.setDirectory(str(Path.home()))
        if folder:
            dialog.setFileMode(QFileDialog.FileMode.Directory)
            dialog.setOption(QFileDialog.Option.ShowDirsOnly)
        else:
            dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
            dialog.setNameFilters(["App manifests (*.toml)", "All files (*)"])
        dialog.fileSelected.connect(lambda path: self.install_from(Path(path)))
        dialog.open()

    def install_from(self, source: Path) -> None:
        """Check the app at ``source``, ask the user, and install it."""
        self._run(self._install(source), "install")

    async def _install(self, source: Path) -> None:
        self.banner.hide()
        self.status.clear()
        self._set_busy(True)
        try:
            try:
                candidate = await asyncio.to_thread(store.inspect, source, self.data_dir)
            except (ManifestError, store.AppStoreError) as error:
                self.banner.show_problem(str(error))
                return
            except OSError as error:
                self.banner.show_problem(f"{source} could not be read ({error.strerror}).")
                return
            app = candidate.manifest
            if not await self._confirm(*_install_question(candidate), "Install"):
                self.status.setText(f"{app.name} was not installed.")
                return
            try:
                installed = await asyncio.to_thread(store.install, candidate, self.data_dir)
            except store.AppStoreError as error:
                self.banner.show_problem(str(error))
                return
            self.refresh()
            self.appsChanged.emit()
            self.show_app(installed.id)
            self.status.setText(
                f"Installed {installed.name} {installed.version}: open it from the launcher."
            )
        finally:
            self._set_busy(False)

    # -- removing ----------------------------------------------------------------------------

    def set_enabled(self, app_id: str, enabled: bool) -> None:
        """Turn an app on or off (the launcher and the kernel's registry follow)."""
        self.banner.hide()
        try:
            app = store.set_enabled(app_id, self.data_dir, enabled)
        except (AppNotFound, OSError) as error:
            self.banner.show_problem(str(error))
            return
        self.refresh()
        self.appsChanged.emit()
        self.status.setText(f"{app.name} is {'enabled' if enabled else 'disabled'}.")

    def remove(self, app_id: str) -> None:
        """Ask, then uninstall the user app ``app_id``."""
        self._run(self._remove(app_id), "remove")

    async def _remove(self, app_id: str) -> None:
        card = self.cards.get(app_id)
        name = card.app.name if card is not None else app_id
        self.banner.hide()
        self.status.clear()
        question = (
            f"Remove {name}?",
            f"{name} is uninstalled. Its windows open now keep running until closed; "
            "its notes stay in memory.",
        )
        if not await self._confirm(*question, "Remove"):
            return
        self._set_busy(True)
        try:
            await asyncio.to_thread(store.remove, app_id, self.data_dir)
        except (AppNotFound, store.AppStoreError, OSError) as error:
            self.banner.show_problem(str(error))
            return
        finally:
            self._set_busy(False)
        self.refresh()
        self.appsChanged.emit()
        self.status.setText(f"Removed {name}.")

    # -- small parts -------------------------------------------------------------------------

    async def _confirm(self, title: str, text: str, verb: str) -> bool:
        """Ask without blocking the loop (``open()``, not ``exec()``); True when agreed."""
        box = QMessageBox(
            QMessageBox.Icon.Question, title, "", QMessageBox.StandardButton.NoButton, self
        )
        box.setTextFormat(Qt.TextFormat.RichText)
        box.setText(text)
        yes = box.addButton(verb, QMessageBox.ButtonRole.AcceptRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        answered: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        box.finished.connect(
            lambda _: answered.done() or answered.set_result(box.clickedButton() is yes)
        )
        self.confirmation = box
        box.open()
        try:
            return await answered
        finally:
            self.confirmation = None
            box.close()
            box.deleteLater()

    def _set_busy(self, busy: bool) -> None:
        for button in (self.install_file_button, self.install_folder_button):
            button.setEnabled(not busy)
        for card in self.cards.values():
            if card.remove_button is not None:
                card.remove_button.setEnabled(not busy)

    def _run(self, coro: Coroutine[Any, Any, None], what: str) -> None:
        self._tasks.run(coro, what)

    def done(self, result: int) -> None:  # closed (Esc, the close button, the desktop)
        # An install already copying finishes in its thread (it is atomic); asking stops.
        self._tasks.cancel()
        super().done(result)


def _install_question(candidate: store.Candidate) -> tuple[str, str]:
    app = candidate.manifest
    by = f" by {html.escape(app.author)}" if app.author else ""
    lines = permission_lines(app.permissions.syscalls)
    sensitive = any(SYSCALLS[n].sensitive for n in app.permissions.syscalls if n in SYSCALLS)
    asks = (
        "It asks to:<ul>"
        + "".join(f"<li>{line}</li>" for line in lines)
        + "</ul>"
        + (f"<p><small>{html.escape(SENSITIVE_NOTE)}</small></p>" if sensitive else "")
        if lines
        else "<p>It asks for no permissions: it can only chat.</p>"
    )
    replaces = (
        f"<p>It replaces the installed version {html.escape(candidate.replaces.version)}.</p>"
        if candidate.replaces is not None
        else ""
    )
    text = (
        f"<p><b>{html.escape(app.name)}</b> {html.escape(app.version)}{by}</p>"
        f"<p>{html.escape(app.description)}</p>{asks}{replaces}"
    )
    return f"Install {app.name}?", text
