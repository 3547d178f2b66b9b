"""The task manager's lists of saved processes: the hibernated ones (to wake) and the ended
ones (to reopen), read from the kernel's sessions off the GUI thread.

:class:`SessionLists` reads every session's line (``SessionStore.list``, which reads files)
in a worker thread, a few times at most however many processes end at once, and hands the
lines to its two :class:`SessionTable` widgets. Waking and reopening open windows, which is
the desktop window's job: the lists only ask for it (``wakeRequested``, ``reopenRequested``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any, ClassVar

from PySide6.QtCore import (
    QModelIndex,
    QObject,
    QPersistentModelIndex,
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
from llmos.desktop.ram_bar import human_tokens
from llmos.desktop.row_table import ColumnsModel, show_rows
from llmos.desktop.session import DesktopSession, KernelNotRunning
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
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
STATUS_TEXT = {
    "hibernated": "Hibernated",
    "interrupted": "Interrupted \u2014 LLM-OS stopped",
    "damaged": "Damaged",
    "ended": "Ended",
}
STATUS_TIPS = {
    "hibernated": "Written to disk, its context RAM freed. Wake it to go on.",
    "interrupted": "LLM-OS stopped (it crashed or was killed) while this process ran. What "
    "was written down is kept: wake it to go on from there.",
    "damaged": "Its files cannot be read. Delete it to free the space.",
}

HIBERNATED_TIPS = {
    5: "The context RAM it held (tokens of its budget); waking it takes them again",
    6: "What could not be read from its files",
}
HISTORY_TIPS = {
    5: "Tokens it sent the model (every request's prompt) + tokens the model generated",
}


def when(stamp: float | None, now: float | None = None) -> str:
    """A time as the lists show it: "14:03" today, "Nov 28 14:03" this year, else the date."""
    if not stamp:
        return "\u2013"
    moment, today = time.localtime(stamp), time.localtime(now)
    if moment[:3] == today[:3]:
        return time.strftime("%H:%M", moment)
    if moment.tm_year == today.tm_year:
        return time.strftime("%b %d %H:%M", moment)
    return time.strftime("%Y-%m-%d", moment)


def problem_text(info: SessionInfo) -> str:
    """What is wrong with a session, as a sentence ("" when nothing)."""
    problem = info.problem.strip().rstrip(".")
    if info.status == "damaged":
        return f"{problem[:1].upper()}{problem[1:]}." if problem else "Its files cannot be read."
    return f"Partly damaged: {problem}." if problem else ""


def app_name(info: SessionInfo) -> str:
    return "Unknown app" if info.app_name in ("", "?") else info.app_name


# -- the models ------------------------------------------------------------------------------


class SessionListModel(ColumnsModel):
    """Saved processes, one a row (replaced as a whole at each reading). Columns are named;
    the conversation's first line comes last and takes the room left.

    Signals:
        None (beyond QAbstractTableModel's).
    """

    samples: ClassVar[dict[str, str]] = {}
    """Typical widest contents by column (their initial widths)."""
    numeric: ClassVar[frozenset[str]] = frozenset({"PID", "Turns"})
    """Columns of figures (aligned right)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.infos: list[SessionInfo] = []

    def set_infos(self, infos: Sequence[SessionInfo]) -> None:
        if [i.pid for i in infos] == [i.pid for i in self.infos]:
            self.infos = list(infos)
            if self.infos:
                last = self.index(len(self.infos) - 1, len(self.columns) - 1)
                self.dataChanged.emit(self.index(0, 0), last)
            return
        self.beginResetModel()
        self.infos = list(infos)
        self.endResetModel()

    def row_count(self) -> int:
        return len(self.infos)

    def data(
        self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self.infos):
            return None
        info, column = self.infos[index.row()], self.columns[index.column()]
        if role in (Qt.ItemDataRole.DisplayRole, SORT_ROLE):
            key, text = self.cell(info, column)
            return text if role == Qt.ItemDataRole.DisplayRole else key
        if role == Qt.ItemDataRole.ToolTipRole:
            return self.tooltip(info, column)
        if role == Qt.ItemDataRole.ForegroundRole:
            return self.colour(info, column)
        if role == Qt.ItemDataRole.TextAlignmentRole and column in self.numeric:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def cell(self, info: SessionInfo, column: str) -> tuple[Any, str]:
        """One cell's (sort key, text)."""
        if column == "PID":
            return info.pid, str(info.pid)
        if column == "App":
            return app_name(info).casefold(), app_name(info)
        if column == "Started":
            return info.started_at, when(info.started_at)
        if column == "Turns":
            return info.turns, "" if info.status == "damaged" else str(info.turns)
        return info.first_line.casefold(), info.first_line

    def tooltip(self, info: SessionInfo, column: str) -> str | None:
        return problem_text(info) or info.first_line or None

    def colour(self, info: SessionInfo, column: str) -> Any:
        return current_theme().bad if info.status == "damaged" else None


class HibernatedModel(SessionListModel):
    """Hibernated processes, those an LLM-OS crash interrupted, and damaged sessions."""

    columns = ("PID", "App", "Status", "Started", "Turns", "Context RAM", "Problem", "First line")
    samples: ClassVar[dict[str, str]] = {
        "PID": "88888", "App": "Unknown app", "Status": STATUS_TEXT["interrupted"],
        "Started": "Nov 28 14:03", "Turns": "888", "Context RAM": "88.8k / 88.8k tokens",
        "Problem": "x" * 64, "First line": "",
    }  # fmt: skip
    numeric = frozenset({"PID", "Turns", "Context RAM"})
    header_tips = HIBERNATED_TIPS

    def cell(self, info: SessionInfo, column: str) -> tuple[Any, str]:
        if column == "Status":
            return info.status, STATUS_TEXT.get(info.status, info.status.capitalize())
        if column == "Context RAM":
            if not info.budget:
                return 0, ""
            used, budget = human_tokens(info.context_tokens), human_tokens(info.budget)
            return info.context_tokens, f"{used} / {budget} tokens"
        if column == "Problem":
            return info.problem, problem_text(info)
        return super().cell(info, column)

    def tooltip(self, info: SessionInfo, column: str) -> str | None:
        if column == "Status":
            return STATUS_TIPS.get(info.status)
        if column == "Context RAM" and info.budget:
            return (
                f"It held {info.context_tokens:,} of its {info.budget:,} tokens of context RAM "
                "(freed while it sleeps)"
            )
        return super().tooltip(info, column)

    def colour(self, info: SessionInfo, column: str) -> Any:
        theme = current_theme()
        if info.status == "damaged" or (column == "Problem" and info.problem):
            return theme.bad
        if column == "Status":
            return theme.warn if info.status == "interrupted" else theme.muted
        return None


class HistoryModel(SessionListModel):
    """Ended processes, newest first."""

    columns = ("PID", "App", "Started", "Ended", "Turns", "Tokens", "First line")
    samples: ClassVar[dict[str, str]] = {
        "PID": "88888", "App": "Librarian", "Started": "Nov 28 14:03", "Ended": "Nov 28 14:03",
        "Turns": "888", "Tokens": "88.8k in + 88.8k out", "First line": "",
    }  # fmt: skip
    numeric = frozenset({"PID", "Turns", "Tokens"})
    header_tips = HISTORY_TIPS

    def cell(self, info: SessionInfo, column: str) -> tuple[Any, str]:
        if column == "Ended":
            return info.ended_at or 0.0, when(info.ended_at)
        if column == "Tokens":
            prompt, generated = info.prompt_tokens, info.generated_tokens
            return prompt + generated, f"{human_tokens(prompt)} in + {human_tokens(generated)} out"
        return super().cell(info, column)

    def tooltip(self, info: SessionInfo, column: str) -> str | None:
        if column == "Tokens":
            return (
                f"{info.prompt_tokens:,} tokens sent to the model (prompts) + "
                f"{info.generated_tokens:,} generated, on {info.model or 'its model'}"
            )
        return super().tooltip(info, column)


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
        for column, title in enumerate(self.model.columns):
            sample = metrics.horizontalAdvance(self.model.samples.get(title, ""))
            # Room for the sort arrow, and a gap after numbers aligned right.
            header.resizeSection(column, max(metrics.horizontalAdvance(title) + 28, sample + 24))

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
        if "Problem" in self.model.columns:  # mostly there is none: no empty column
            problems = any(problem_text(info) for info in infos)
            self.table.setColumnHidden(self.model.columns.index("Problem"), not problems)
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
            QMessageBox.Icon.Warning, "Delete saved process", _deletion_question(info),
            QMessageBox.StandardButton.Cancel, self,
        )  # fmt: skip
        box.setInformativeText(_what_is_lost(info))
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


def _deletion_question(info: SessionInfo) -> str:
    if info.status == "damaged":
        return f"Delete the damaged saved process {info.pid}?"
    return f"Delete {app_name(info)} (pid {info.pid}) and its conversation?"


def _what_is_lost(info: SessionInfo) -> str:
    if info.status == "damaged":
        return f"{problem_text(info)} Its files are removed from disk."
    turns = f"{info.turns} turn{'' if info.turns == 1 else 's'}"
    about = f" (\u201c{info.first_line}\u201d)" if info.first_line else ""
    can = "woken" if info.resumable else "reopened"
    return (
        f"Its conversation, {turns}{about}, and its saved context are removed from disk: it "
        f"cannot be {can} again. What it stored in long-term memory stays."
    )


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
