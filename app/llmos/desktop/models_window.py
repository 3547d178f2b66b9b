"""The Models window: the backend's installed models, pulling new ones, removing old ones.

It runs no process. Everything goes through the kernel's driver (``list_models``,
``loaded_models``, ``pull``, ``delete``); what fails (no server, an unknown name, an engine
that cannot download) is shown as a sentence in the window.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from llmos.apps.manifest import AppManifest
from llmos.console import human_bytes
from llmos.desktop.owned_tasks import OwnedTasks
from llmos.desktop.session import DesktopSession, KernelNotRunning
from llmos.desktop.theme import icon
from llmos.drivers.base import DriverError, ModelDriver, ModelInfo
from llmos.kernel.errors import KernelError

COLUMNS = (
    "Name",
    "Family",
    "Parameters",
    "Quantization",
    "Size",
    "Context",
    "Capabilities",
    "Loaded",
)
NAME, LOADED = 0, len(COLUMNS) - 1
PROGRESS_STEPS = 1000
"""The progress bar counts in thousandths: byte counts overflow its int range."""
WHERE_CHARS = 48
FAILURES = (DriverError, KernelError, KernelNotRunning)


class ModelsWindow(QWidget):
    """The installed models of the session's backend.

    Signals:
        modelsShown(int): the list was (re)filled; how many models it shows.
        pullEnded(str): a pull ended (done, failed or cancelled); the message shown.
        removed(str): a model was removed (its name).
    """

    modelsShown = Signal(int)
    pullEnded = Signal(str)
    removed = Signal(str)

    def __init__(
        self, session: DesktopSession, manifest: AppManifest, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.session = session
        self.manifest = manifest
        self.models: list[ModelInfo] = []
        self._tasks = OwnedTasks("models")
        self._pull: asyncio.Task[None] | None = None
        self._closed = False
        self.setWindowTitle(manifest.name)
        self._build()

    def _build(self) -> None:
        self.where = QLabel("Waiting for the model engine...", objectName="ModelLabel")
        self.refresh_button = QPushButton(icon("refresh"), "Refresh")
        self.refresh_button.clicked.connect(self.refresh)
        self.remove_button = QPushButton(icon("delete"), "Remove\u2026")
        self.remove_button.setEnabled(False)
        self.remove_button.clicked.connect(self.ask_remove)
        header = QHBoxLayout()
        header.addWidget(self.where, 1)
        header.addWidget(self.refresh_button)
        header.addWidget(self.remove_button)

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        heading = self.table.horizontalHeader()
        heading.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        # Names can be long (a GGUF's): the name takes what is left, elided in the middle.
        heading.setSectionResizeMode(NAME, QHeaderView.ResizeMode.Stretch)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.table.itemSelectionChanged.connect(self._update_buttons)

        self.pull_name = QLineEdit(placeholderText="A model to download, e.g. qwen2.5:0.5b")
        self.pull_name.returnPressed.connect(self.pull)
        self.pull_button = QPushButton(icon("add-files"), "Pull\u2026")
        self.pull_button.clicked.connect(self.pull)
        self.cancel_button = QPushButton(icon("stop"), "Cancel")
        self.cancel_button.clicked.connect(self.cancel_pull)
        self.cancel_button.hide()
        pull_row = QHBoxLayout()
        pull_row.addWidget(self.pull_name, 1)
        pull_row.addWidget(self.pull_button)
        pull_row.addWidget(self.cancel_button)
        self.progress = QProgressBar()
        self.progress.setRange(0, PROGRESS_STEPS)
        self.progress.hide()
        self.message = QLabel(objectName="ModelsMessage", wordWrap=True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message.hide()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 8, 10, 10)
        layout.addLayout(header)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.message)
        layout.addLayout(pull_row)
        layout.addWidget(self.progress)
        self.setFocusProxy(self.pull_name)

    def start(self) -> None:
        """List the models (call once the window is on screen)."""
        self.refresh()

    # -- listing -----------------------------------------------------------------------------

    def refresh(self) -> None:
        """List the installed models again."""
        self._run(self._refresh(), "refresh")

    async def _refresh(self) -> None:
        self.refresh_button.setEnabled(False)
        try:
            driver = await self._driver()
            models = await driver.list_models()
            try:
                loaded = {m.name for m in await driver.loaded_models()}
            except DriverError:
                loaded = set()  # which are loaded is a detail; the list is what matters
        except FAILURES as error:
            if not self._closed:
                self.say(str(error))
            return
        finally:
            if not self._closed:
                self.refresh_button.setEnabled(True)
        if self._closed:
            return
        location = driver.location
        if len(location) > WHERE_CHARS:  # a GGUF file's path: its end says which
            location = "\u2026" + location[-WHERE_CHARS:]
        self.where.setText(f"{len(models)} installed \u00b7 {driver.kind} at {location}")
        self.where.setToolTip(f"{driver.kind} at {driver.location}")
        self._fill(models, loaded)
        self.modelsShown.emit(len(models))

    def _fill(self, models: list[ModelInfo], loaded: set[str]) -> None:
        self.models = sorted(models, key=lambda m: m.name)
        self.table.setRowCount(len(self.models))
        for row, info in enumerate(self.models):
            cells = (
                info.name,
                info.family,
                info.parameter_size,
                info.quantization,
                human_bytes(info.size_bytes) if info.size_bytes else "",
                f"{info.context_length:,}" if info.context_length else "?",
                ", ".join(sorted(info.capabilities)),
                "Loaded" if info.name in loaded else "",
            )
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if column == NAME:
                    item.setToolTip(info.name)
                self.table.setItem(row, column, item)
        self._update_buttons()

    def selected_model(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        return self.models[rows[0].row()].name if rows else None

    def _update_buttons(self) -> None:
        self.remove_button.setEnabled(self.selected_model() is not None)

    # -- pulling -----------------------------------------------------------------------------

    def pull(self) -> None:
        """Download the model named in the pull field."""
        name = self.pull_name.text().strip()
        if not name or (self._pull is not None and not self._pull.done()):
            return
        self._pull = self._run(self._pulling(name), "pull")

    async def _pulling(self, name: str) -> None:
        self._set_pulling(True)
        self.say(f"Pulling {name}...", error=False)
        totals: dict[str, int] = {}
        done: dict[str, int] = {}
        ended = ""
        try:
            driver = await self._driver()
            async with contextlib.aclosing(driver.pull(name)) as steps:
                async for step in steps:
                    if step.digest and step.total:
                        totals[step.digest] = step.total
                        done[step.digest] = step.completed or 0
                    self._show_progress(step.status, sum(done.values()), sum(totals.values()))
            ended = f"Pulled {name}."
            self.say(ended, error=False)
            self.pull_name.clear()
            self.refresh()
        except asyncio.CancelledError:
            if not self._closed:
                ended = f"Pulling {name} was cancelled."
                self.say(ended, error=False)
            raise
        except FAILURES as error:
            ended = str(error)
            self.say(ended)
        finally:
            if not self._closed:
                self._set_pulling(False)
                self.pullEnded.emit(ended)

    def _show_progress(self, status: str, completed: int, total: int) -> None:
        if total:
            self.progress.setValue(int(PROGRESS_STEPS * min(completed, total) / total))
            figures = f"{human_bytes(completed)} of {human_bytes(total)}"
            self.progress.setFormat(f"{status}: {figures} (%p%)")
        else:
            self.progress.setValue(0)
            self.progress.setFormat(status)

    def cancel_pull(self) -> None:
        """Stop the download (the backend keeps what it has for a later pull)."""
        if self._pull is not None:
            self._pull.cancel()

    def _set_pulling(self, pulling: bool) -> None:
        self.pull_button.setEnabled(not pulling)
        self.pull_name.setEnabled(not pulling)
        self.cancel_button.setVisible(pulling)
        self.progress.setVisible(pulling)
        if pulling:
            self._show_progress("Starting", 0, 0)

    # -- removing ----------------------------------------------------------------------------

    def ask_remove(self) -> None:
        """Ask, then remove the selected model from the backend."""
        name = self.selected_model()
        if name is None:
            return
        box = QMessageBox(
            QMessageBox.Icon.Question,
            f"Remove {name}?",
            f"{name} will be deleted from the model engine. Pulling it again downloads it anew.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            self,
        )
        box.button(QMessageBox.StandardButton.Yes).setText("Remove")
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.finished.connect(
            lambda answer: (
                self._run(self._remove(name), "remove")
                if answer == QMessageBox.StandardButton.Yes and not self._closed
                else None
            )
        )
        self.confirm = box
        box.open()

    async def _remove(self, name: str) -> None:
        self.remove_button.setEnabled(False)
        try:
            driver = await self._driver()
            await driver.delete(name)
        except FAILURES as error:
            self.say(str(error))
            self._update_buttons()
            return
        self.say(f"Removed {name}.", error=False)
        self.removed.emit(name)
        self.refresh()

    # -- small parts -------------------------------------------------------------------------

    async def _driver(self) -> ModelDriver:
        kernel = await self.session.kernel_ready()
        return kernel.driver

    def say(self, text: str, *, error: bool = True) -> None:
        """Show a sentence under the list (an error unless ``error`` is false)."""
        self.message.setProperty("error", error)
        self.message.setText(text)
        self.message.setVisible(bool(text))
        self.message.style().unpolish(self.message)
        self.message.style().polish(self.message)

    def closeEvent(self, event: QCloseEvent) -> None:
        self._closed = True
        self._tasks.cancel()
        event.accept()

    def _run(self, coro: Coroutine[Any, Any, None], what: str) -> asyncio.Task[None]:
        return self._tasks.run(coro, what)
