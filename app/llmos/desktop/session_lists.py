"""The task manager's lists of saved processes: the hibernated ones (to wake) and the ended
ones (to reopen), read from the kernel's sessions off the GUI thread.

:class:`SessionLists` reads every session's line (``SessionStore.list``, which reads files)
in a worker thread, a few times at most however many processes end at once, and hands the
lines to its two :class:`SessionTable` widgets. Waking and reopening open windows, which is
the desktop window's job: the lists only ask for it (``wakeRequested``, ``reopenRequested``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import (
    QEvent,
    QObject,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QLabel,
    QMenu,
    QMessageBox,
    QTableView,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from llmos.desktop.bridge import KernelBridge
from llmos.desktop.row_table import fit_columns, show_rows
from llmos.desktop.session import DesktopSession, KernelNotRunning
from llmos.desktop.session_models import (
    SORT_ROLE,
    HibernatedModel,
    HistoryModel,
    SessionListModel,
    deletion_question,
    problem_text,
    what_is_lost,
)
from llmos.desktop.theme import current_theme, icon
from llmos.kernel.sessions import SessionError, SessionInfo

HIBERNATE_SHORTCUT = "Ctrl+H"
"""The task manager's Hibernate (named in the empty list's hint)."""
HIBERNATED_HINT = (
    f"No hibernated processes. Hibernate one from Processes ({HIBERNATE_SHORTCUT}) to free its "
    "context RAM."
)
HISTORY_HINT = (
    "No ended processes. A process that ends is kept here: reopen it to go on with its "
    "conversation."
)
NO_SESSIONS_HINT = "This kernel keeps no sessions: processes are not saved."
REFRESH_MS = 150
"""Processes ending together (a shutdown, a parent and its children) make one reading."""
FIRST_LINE_ROOM = 220
"""Pixels the first line keeps before a narrow panel hides other columns."""


# -- one list --------------------------------------------------------------------------------


class SessionTable(QWidget):
    """One list of saved processes with its actions: open (Wake or Reopen) and Delete.

    Args:
        model: the rows.
        open_text: the opening action's name ("Wake", "Reopen").
        open_tip: what opening does, in words.
        hint: shown instead of an empty list.

    Signals:
        openRequested(int): the user asked to wake or reopen the selected session (its pid).
        deleteRequested(int): the user confirmed deleting a session (its pid).
    """

    openRequested = Signal(int)
    deleteRequested = Signal(int)

    def __init__(
        self,
        model: SessionListModel,
        open_text: str,
        open_tip: str,
        hint: str,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.model = model
        self.model.setParent(self)
        self.empty_hint = hint
        self.confirmation: QMessageBox | None = None
        """The open question before a deletion (None when none is asked)."""
        self.proxy = QSortFilterProxyModel(self, sortRole=SORT_ROLE, dynamicSortFilter=True)
        self.proxy.setSourceModel(model)
        self.table = QTableView(self)
        self._setup_table()
        self.toolbar = QToolBar(self)
        self.toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.open_action = self._action(
            "wake" if open_text == "Wake" else "new-window", open_text, open_tip,
            self._open_selected, (Qt.Key.Key_Return, Qt.Key.Key_Enter),
        )  # fmt: skip
        self.delete_action = self._action(
            "delete", "Delete\u2026", "Delete its saved conversation from disk",
            self.confirm_delete, (QKeySequence.StandardKey.Delete,),
        )  # fmt: skip
        self.menu = QMenu(self)
        self.menu.addActions(self.actions())
        self.notice = QLabel(self, wordWrap=True)
        self.notice.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.notice.hide()
        self.placeholder = QLabel(hint, self, wordWrap=True)
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 6)
        layout.setSpacing(4)
        for widget in (self.toolbar, self.notice, self.placeholder, self.table):
            layout.addWidget(widget, 1 if widget in (self.table, self.placeholder) else 0)
        self.table.selectionModel().selectionChanged.connect(self._update_actions)
        self.model.modelReset.connect(self._update_actions)
        self.set_infos([])

    def _setup_table(self) -> None:
        table = self.table
        show_rows(table, self.proxy)
        table.setAccessibleName(self.model.__class__.__name__.removesuffix("Model"))
        table.verticalHeader().hide()
        table.verticalHeader().setDefaultSectionSize(table.fontMetrics().height() + 10)
        table.setSortingEnabled(True)
        table.sortByColumn(self.model.columns.index("Started"), Qt.SortOrder.DescendingOrder)
        table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        table.customContextMenuRequested.connect(self._show_menu)
        table.doubleClicked.connect(self._open_selected)
        header, metrics = table.horizontalHeader(), table.fontMetrics()
        header.setStretchLastSection(True)
        self._widths: dict[str, int] = {}
        for column, title in enumerate(self.model.columns):
            sample = metrics.horizontalAdvance(self.model.samples.get(title, ""))
            # Room for the sort arrow, and a gap after numbers aligned right.
            self._widths[title] = max(metrics.horizontalAdvance(title) + 28, sample + 24)
            header.resizeSection(column, self._widths[title])
        table.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.table and event.type() == QEvent.Type.Resize:
            self._fit_columns()
        return super().eventFilter(watched, event)

    def _fit_columns(self) -> None:
        """Hide the least needed columns that would push the first line out of a narrow
        panel, and the Problem column while nothing is damaged."""
        columns = self.model.columns
        hidden = []
        if "Problem" in columns and not any(map(problem_text, self.model.infos)):
            hidden.append(columns.index("Problem"))
        least = [columns.index(title) for title in self.model.least_needed]
        widths = [self._widths[title] for title in columns]
        fit_columns(self.table, widths, least, keep=FIRST_LINE_ROOM, hidden=hidden)

    def _action(self, name: str, text: str, tip: str, slot: Any, keys: tuple[Any, ...]) -> QAction:
        act = QAction(icon(name), text, self)
        act.triggered.connect(slot)
        act.setShortcuts([QKeySequence(key) for key in keys])
        # Only while this list shows: the task manager's process actions use the same keys.
        act.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        act.setToolTip(f"{tip} ({act.shortcut().toString(QKeySequence.SequenceFormat.NativeText)})")
        self.addAction(act)
        self.toolbar.addAction(act)
        return act

    # -- contents ----------------------------------------------------------------------------

    def set_infos(self, infos: Sequence[SessionInfo], hint: str | None = None) -> None:
        """Show these sessions (keeping the selected one selected), or ``hint`` (this list's
        own hint by default) when there are none."""
        selected = self.selected()
        self.model.set_infos(infos)
        if selected is not None:
            self.select_pid(selected.pid)
        if self.selected() is None and self.proxy.rowCount():
            self.table.selectRow(0)  # so Enter (Wake, Reopen) works at once
        self._fit_columns()
        self.placeholder.setText(hint or self.empty_hint)
        self.placeholder.setVisible(not infos)
        self.table.setVisible(bool(infos))
        self._update_actions()

    def show_notice(self, text: str) -> None:
        """Say what went wrong ("" hides it)."""
        self.notice.setText(text)
        self.notice.setStyleSheet(f"color: {current_theme().bad.name()}")
        self.notice.setVisible(bool(text))

    def pids(self) -> list[int]:
        """The pids listed, in the order shown."""
        source = self.proxy.mapToSource
        return [
            self.model.infos[source(self.proxy.index(row, 0)).row()].pid
            for row in range(self.proxy.rowCount())
        ]

    def selected(self) -> SessionInfo | None:
        rows = self.table.selectionModel().selectedRows()
        row = self.proxy.mapToSource(rows[0]).row() if rows else -1
        return self.model.infos[row] if 0 <= row < len(self.model.infos) else None

    def select_pid(self, pid: int) -> None:
        pids = [info.pid for info in self.model.infos]
        if pid in pids:
            index = self.proxy.mapFromSource(self.model.index(pids.index(pid), 0))
            self.table.selectRow(index.row())

    # -- actions -----------------------------------------------------------------------------

    def _update_actions(self) -> None:
        info = self.selected()
        self.delete_action.setEnabled(info is not None)
        self.open_action.setEnabled(info is not None and info.status != "damaged")

    def _open_selected(self) -> None:
        info = self.selected()
        if info is not None and info.status != "damaged":
            self.show_notice("")
            self.openRequested.emit(info.pid)

    def _show_menu(self, pos: Any) -> None:
        index = self.table.indexAt(pos)
        if index.isValid():
            self.table.selectRow(index.row())
            self.menu.popup(self.table.viewport().mapToGlobal(pos))

    def confirm_delete(self) -> None:
        """Ask before deleting the selected session (the answer comes back through
        ``finished``: no nested event loop)."""
        info = self.selected()
        if info is None or self.confirmation is not None:
            return
        box = QMessageBox(
            QMessageBox.Icon.Warning, "Delete saved process", deletion_question(info),
            QMessageBox.StandardButton.Cancel, self,
        )  # fmt: skip
        box.setInformativeText(what_is_lost(info))
        delete = box.addButton("Delete", QMessageBox.ButtonRole.DestructiveRole)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        def answered() -> None:
            self.confirmation = None
            if box.clickedButton() is delete:
                self.show_notice("")
                self.deleteRequested.emit(info.pid)

        box.finished.connect(answered)
        self.confirmation = box
        box.open()


# -- both lists, kept up to date ---------------------------------------------------------------


class SessionLists(QObject):
    """Keeps the Hibernated and History lists in step with the kernel's sessions.

    The task manager shows :attr:`hibernated` and :attr:`history` in its
    tabs. It reads the sessions when asked to (:meth:`refresh`), when the kernel starts, and
    when a process starts or ends (a woken one leaves the list, an ended one joins History).

    Signals:
        wakeRequested(int): the user asked to wake a hibernated process (its pid).
        reopenRequested(int): the user asked to reopen an ended process (its pid).
        loaded(): the lists were read again (``hibernated_count``, the processes that can be
            woken, may have changed).
    """

    wakeRequested = Signal(int)
    reopenRequested = Signal(int)
    loaded = Signal()

    def __init__(
        self, session: DesktopSession, bridge: KernelBridge, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self._session = session
        self.hibernated = SessionTable(
            HibernatedModel(), "Wake", "Bring it back in a window, its context RAM reloaded",
            HIBERNATED_HINT, parent,
        )  # fmt: skip
        self.history = SessionTable(
            HistoryModel(), "Reopen", "Start a new process with its conversation",
            HISTORY_HINT, parent,
        )  # fmt: skip
        self.hibernated_count = 0
        self._loading: asyncio.Task[None] | None = None
        self._again = False
        self._timer = QTimer(self, singleShot=True, interval=REFRESH_MS)
        self._timer.timeout.connect(self._load_now)
        self.hibernated.openRequested.connect(self._wake)
        self.history.openRequested.connect(self._reopen)
        for table in (self.hibernated, self.history):
            table.deleteRequested.connect(self._delete)
        bridge.spawned.connect(self.refresh)
        bridge.exited.connect(self.refresh)
        session.statusChanged.connect(self.refresh)

    def refresh(self, *_: object) -> None:
        """Read the sessions again soon (requests close together make one reading)."""
        self._timer.start()

    def _load_now(self) -> None:
        if self._loading is not None and not self._loading.done():
            self._again = True  # a process ended while reading: read once more after
            return
        try:
            self._loading = self._session.run(self._load(), "llmos-session-lists")
        except KernelNotRunning:
            self._show([], [], "LLM-OS is shutting down.")

    async def _load(self) -> None:
        self._again = False
        kernel = self._session.kernel
        if kernel is None:
            self._show([], [], self._session.status.message or "The kernel is not running.")
            return
        if kernel.sessions is None:
            self._show([], [], NO_SESSIONS_HINT)
            return
        await kernel.settled()  # the processes that just ended are written down
        infos = await asyncio.to_thread(kernel.sessions.list)
        sleeping = [i for i in infos if i.resumable or i.status == "damaged"]
        ended = [i for i in infos if i.status == "ended"]
        self._show(sleeping, ended)
        if self._again:
            self.refresh()

    def _show(
        self, sleeping: list[SessionInfo], ended: list[SessionInfo], why: str | None = None
    ) -> None:
        self.hibernated.set_infos(sleeping, why)
        self.history.set_infos(ended, why)
        self.hibernated_count = sum(info.resumable for info in sleeping)
        self.loaded.emit()

    def _wake(self, pid: int) -> None:
        self.wakeRequested.emit(pid)
        self.refresh()

    def _reopen(self, pid: int) -> None:
        self.reopenRequested.emit(pid)
        self.refresh()

    def _delete(self, pid: int) -> None:
        try:
            self._session.run(self._delete_files(pid), f"llmos-delete-session-{pid}")
        except KernelNotRunning as error:
            self._notice(pid, str(error))

    async def _delete_files(self, pid: int) -> None:
        kernel = self._session.kernel
        if kernel is None or kernel.sessions is None:
            self._notice(pid, "The kernel is not running: nothing was deleted.")
            return
        try:
            await asyncio.to_thread(kernel.sessions.delete, pid)
        except SessionError as error:
            self._notice(pid, str(error))
        except OSError as error:
            self._notice(pid, f"Process {pid} could not be deleted: {error.strerror or error}.")
        self.refresh()

    def _notice(self, pid: int, text: str) -> None:
        for table in (self.hibernated, self.history):
            if pid in (info.pid for info in table.model.infos):
                table.show_notice(text)
