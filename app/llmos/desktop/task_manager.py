"""The task manager: every live process, its context RAM and speed, and the controls to
kill, suspend, resume, reprioritise or raise it.

Rows are kept in place: the table changes structure only when a process starts or ends,
and a bridge tick (a few a second) repaints the values with one ``dataChanged``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QPoint,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QLabel,
    QMenu,
    QTableView,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from llmos.desktop.bridge import KernelBridge
from llmos.desktop.history_graph import HistoryGraph
from llmos.desktop.ram_bar import USAGE_ROLE, RamDelegate, human_bytes, human_tokens, ram_tooltip
from llmos.desktop.session import DesktopSession
from llmos.desktop.theme import current_theme, icon
from llmos.kernel.context import BYTES_PER_TOKEN_SHOWN
from llmos.kernel.errors import NoSuchProcess
from llmos.kernel.process import Process, ProcessState

COLUMNS = (
    "PID", "App", "State", "Model", "Priority", "Context RAM", "Tokens/s",
    "Calls", "Evictions", "Page-ins", "Wall time",
)  # fmt: skip
PID, APP, STATE, MODEL, PRIORITY, RAM, RATE, CALLS, EVICTIONS, PAGE_INS, WALL = range(11)
NUMERIC = frozenset({PID, PRIORITY, RATE, CALLS, EVICTIONS, PAGE_INS, WALL})
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
"""Model role with each cell's sort key (numbers for numeric columns)."""
HEADER_TIPS = {
    RAM: "Context RAM: the tokens of the process's context window, by segment",
    RATE: "Tokens streamed per second, over the last two seconds",
    CALLS: "Model calls made",
    EVICTIONS: "Turns paged out of context RAM into long-term memory",
    PAGE_INS: "Chunks paged into context RAM from long-term memory",
    PRIORITY: "Scheduler priority, -10 to 10; higher runs first",
}
COLUMN_SAMPLES = {PID: "88888", APP: "Librarian", STATE: "Suspended", MODEL: "qwen2.5:0.5b",
                  PRIORITY: "+10", RAM: "88.8k / 88.8k tokens · 88.8 KB", RATE: "888.8",
                  WALL: "88:88:88"}  # fmt: skip
"""Typical widest contents, for the initial column widths."""
PRIORITY_RANGE = (-10, 10)
_ROOT = QModelIndex()


def wall_time(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02}:{whole % 60:02}"


class ProcessTableModel(QAbstractTableModel):
    """One row per live process of the session's kernel, read live from the kernel.

    Signals:
        None (beyond QAbstractTableModel's).
    """

    def __init__(
        self, session: DesktopSession, rate: Callable[[int], float], parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self._session = session
        self._rate = rate
        self.pids: list[int] = []

    def process(self, row: int) -> Process | None:
        kernel = self._session.kernel
        if kernel is None or not 0 <= row < len(self.pids):
            return None
        try:
            return kernel.get(self.pids[row])
        except NoSuchProcess:
            return None

    # -- structure ---------------------------------------------------------------------------

    def add(self, pid: int) -> None:
        if pid not in self.pids:
            self.beginInsertRows(_ROOT, len(self.pids), len(self.pids))
            self.pids.append(pid)
            self.endInsertRows()

    def remove(self, pid: int) -> None:
        if pid in self.pids:
            row = self.pids.index(pid)
            self.beginRemoveRows(_ROOT, row, row)
            del self.pids[row]
            self.endRemoveRows()

    def sync(self) -> None:
        """Match the rows to the kernel's live processes (on start-up and kernel changes)."""
        kernel = self._session.kernel
        alive = [p.pid for p in kernel.processes if p.alive] if kernel else []
        for pid in [pid for pid in self.pids if pid not in alive]:
            self.remove(pid)
        for pid in alive:
            self.add(pid)

    def refresh(self, pid: int | None = None) -> None:
        """Tell the views that the values moved on (of every row, or of ``pid``'s)."""
        if pid in self.pids:
            first = last = self.pids.index(pid)
        elif pid is None and self.pids:
            first, last = 0, len(self.pids) - 1
        else:
            return
        self.dataChanged.emit(self.index(first, 0), self.index(last, len(COLUMNS) - 1))

    # -- QAbstractTableModel -------------------------------------------------------------------

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = _ROOT) -> int:
        return 0 if parent.isValid() else len(self.pids)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = _ROOT) -> int:
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation != Qt.Orientation.Horizontal:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return HEADER_TIPS.get(section) if role == Qt.ItemDataRole.ToolTipRole else None

    def data(
        self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        process = self.process(index.row())
        if process is None:
            return None
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._cell(process, column)[1]
        if role == SORT_ROLE:
            return self._cell(process, column)[0]
        if role == USAGE_ROLE and column == RAM:
            return (process.usage, process.budget)
        if role == Qt.ItemDataRole.ToolTipRole and column == RAM:
            return ram_tooltip(process.usage, process.budget)
        if role == Qt.ItemDataRole.TextAlignmentRole and column in NUMERIC:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ForegroundRole and column == STATE:
            theme, state = current_theme(), ProcessState
            colours = {
                state.RUNNING: theme.ok,
                state.WAITING: theme.warn,
                state.SUSPENDED: theme.muted,
            }
            return colours.get(process.state)
        return None

    def _cell(self, process: Process, column: int) -> tuple[int | float | str, str]:
        """One cell's (sort key, text)."""
        counters = process.counters
        if column == PID:
            return process.pid, str(process.pid)
        if column == APP:
            return process.app.name.casefold(), process.app.name
        if column == STATE:
            return process.state.value, process.state.value.capitalize()
        if column == MODEL:
            return process.model.casefold(), process.model
        if column == PRIORITY:
            return process.priority, f"{process.priority:+d}" if process.priority else "0"
        if column == RAM:
            return (process.usage.used if process.usage else 0), ""  # drawn by RamDelegate
        if column == RATE:
            rate = self._rate(process.pid)
            return rate, f"{rate:.1f}"
        if column == WALL:
            return counters.wall_seconds, wall_time(counters.wall_seconds)
        count = {CALLS: counters.model_calls, EVICTIONS: counters.evictions}.get(
            column, counters.page_ins
        )
        return count, str(count)


class TaskManager(QWidget):
    """Lists the kernel's processes with their context RAM, speed and counters; kills,
    suspends, resumes and reprioritises the selected one. The desktop docks it.

    Signals:
        bringToFront(int): the user asked to see the selected process's window (its pid).
    """

    bringToFront = Signal(int)
    kill_action: QAction
    suspend_action: QAction
    """Suspends, or resumes when the selected process is suspended."""
    priority_up_action: QAction
    priority_down_action: QAction
    front_action: QAction

    def __init__(
        self, session: DesktopSession, bridge: KernelBridge, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self._session = session
        self._bridge = bridge
        self._showing_resume = False
        self.model = ProcessTableModel(session, bridge.rate, self)
        self.proxy = QSortFilterProxyModel(self, sortRole=SORT_ROLE, dynamicSortFilter=True)
        self.proxy.setSourceModel(self.model)
        self.table = QTableView(self)
        self._setup_table()
        self.placeholder = QLabel(self, wordWrap=True, alignment=Qt.AlignmentFlag.AlignCenter)
        self.totals = QLabel(self, wordWrap=True)
        self.totals.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.graph = HistoryGraph(self)
        self.toolbar = QToolBar("Process actions", self)
        self.toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self._make_actions()
        self.menu = QMenu(self)
        self.menu.addActions(self.actions())

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 6)
        layout.setSpacing(4)
        for widget in (self.toolbar, self.placeholder, self.table, self.totals, self.graph):
            layout.addWidget(widget, {self.table: 3, self.graph: 2}.get(widget, 0))

        self._sampler = QTimer(self, interval=1000)
        self._sampler.timeout.connect(self._sample)
        self._sampler.start()
        bridge.tick.connect(self._on_tick)
        bridge.spawned.connect(self._on_spawned)
        bridge.exited.connect(self._on_exited)
        session.statusChanged.connect(self._on_status)
        self.table.selectionModel().selectionChanged.connect(self._update_actions)
        self._on_status()

    def _setup_table(self) -> None:
        table, views = self.table, QAbstractItemView
        table.setModel(self.proxy)
        table.setItemDelegateForColumn(RAM, RamDelegate(table))
        table.setSelectionBehavior(views.SelectionBehavior.SelectRows)
        table.setSelectionMode(views.SelectionMode.SingleSelection)
        table.setEditTriggers(views.EditTrigger.NoEditTriggers)
        table.setAlternatingRowColors(True)
        table.setShowGrid(False)
        table.setWordWrap(False)
        table.setAccessibleName("Processes")
        table.verticalHeader().hide()
        table.verticalHeader().setDefaultSectionSize(table.fontMetrics().height() + 10)
        table.setSortingEnabled(True)
        table.sortByColumn(PID, Qt.SortOrder.AscendingOrder)
        table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        table.customContextMenuRequested.connect(self._show_menu)
        table.doubleClicked.connect(self._bring_to_front)
        header, metrics = table.horizontalHeader(), table.fontMetrics()
        header.setStretchLastSection(True)
        for column, title in enumerate(COLUMNS):
            sample = metrics.horizontalAdvance(COLUMN_SAMPLES.get(column, "888"))
            sample += RamDelegate.BAR_WIDTH + 12 if column == RAM else 0
            header.resizeSection(column, max(metrics.horizontalAdvance(title) + 28, sample + 14))

    def _make_actions(self) -> None:
        keys = QKeySequence.StandardKey
        specs = (  # attribute, icon, text, tooltip, slot, keys
            ("kill_action", "kill", "Kill", "End the selected process now", self._kill,
             (keys.Delete,)),
            ("suspend_action", "suspend", "Suspend", "Suspend or resume the selected process",
             self._toggle_suspend, ("Space",)),
            ("priority_up_action", "priority-up", "Priority +", "Raise its priority",
             lambda: self._nudge_priority(1), ("Ctrl+Up",)),
            ("priority_down_action", "priority-down", "Priority −", "Lower its priority",
             lambda: self._nudge_priority(-1), ("Ctrl+Down",)),
            ("front_action", "front", "Bring to front", "Show its window",
             self._bring_to_front, (Qt.Key.Key_Return, Qt.Key.Key_Enter)),
        )  # fmt: skip
        for attribute, name, text, tip, slot, shortcuts in specs:
            act = QAction(icon(name), text, self)
            act.triggered.connect(slot)
            act.setShortcuts([QKeySequence(key) for key in shortcuts])
            act.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            act.setToolTip(
                f"{tip} ({act.shortcut().toString(QKeySequence.SequenceFormat.NativeText)})"
            )
            self.addAction(act)
            self.toolbar.addAction(act)
            setattr(self, attribute, act)

    # -- selection and actions ---------------------------------------------------------------

    def selected_pid(self) -> int | None:
        rows = self.table.selectionModel().selectedRows()
        row = self.proxy.mapToSource(rows[0]).row() if rows else -1
        return self.model.pids[row] if 0 <= row < len(self.model.pids) else None

    def select_pid(self, pid: int) -> None:
        if pid in self.model.pids:
            index = self.proxy.mapFromSource(self.model.index(self.model.pids.index(pid), 0))
            self.table.selectRow(index.row())

    def _selected(self) -> Process | None:
        pid = self.selected_pid()
        return None if pid is None else self.model.process(self.model.pids.index(pid))

    def _update_actions(self) -> None:
        process = self._selected()
        for act in self.actions():
            act.setEnabled(process is not None)
        if process is not None:
            low, high = PRIORITY_RANGE
            self.priority_up_action.setEnabled(process.priority < high)
            self.priority_down_action.setEnabled(process.priority > low)
            resume = process.state is ProcessState.SUSPENDED
            if resume != self._showing_resume:
                self._showing_resume = resume
                self.suspend_action.setText("Resume" if resume else "Suspend")
                self.suspend_action.setIcon(icon("resume" if resume else "suspend"))

    def _kill(self) -> None:
        kernel, pid = self._session.kernel, self.selected_pid()
        if kernel is not None and pid is not None:
            kernel.kill(pid)  # instant; the bridge's ``exited`` removes the row

    def _toggle_suspend(self) -> None:
        kernel, process = self._session.kernel, self._selected()
        if kernel is not None and process is not None:
            if process.state is ProcessState.SUSPENDED:
                kernel.resume(process.pid)
            else:
                kernel.suspend(process.pid)
            self._changed(process.pid)

    def _nudge_priority(self, step: int) -> None:
        kernel, process = self._session.kernel, self._selected()
        if kernel is not None and process is not None:
            low, high = PRIORITY_RANGE
            kernel.set_priority(process.pid, max(low, min(high, process.priority + step)))
            self._changed(process.pid)

    def _bring_to_front(self) -> None:
        pid = self.selected_pid()
        if pid is not None:
            self.bringToFront.emit(pid)

    def _changed(self, pid: int) -> None:
        # Show the user's own action at once rather than at the next tick.
        self.model.refresh(pid=pid)
        self._update_actions()

    def _show_menu(self, pos: QPoint) -> None:
        index = self.table.indexAt(pos)
        if index.isValid():
            self.table.selectRow(index.row())
            self.menu.popup(self.table.viewport().mapToGlobal(pos))

    # -- updates -----------------------------------------------------------------------------

    def _on_tick(self) -> None:
        self.model.refresh()
        self._update_totals()
        self._update_actions()

    def _on_spawned(self, pid: int) -> None:
        self.model.add(pid)
        self._update_totals()

    def _on_exited(self, pid: int, _reason: str) -> None:
        selected = self.selected_pid() == pid
        self.model.remove(pid)
        if selected:
            # Qt would select a neighbour; a second Delete must not kill that one too.
            self.table.clearSelection()
        self._update_totals()
        self._update_actions()

    def _on_status(self) -> None:
        self.placeholder.setText(self._session.status.message)
        self.placeholder.setVisible(self._session.kernel is None)
        self.model.sync()
        self._update_totals()
        self._update_actions()

    def _ram_totals(self) -> tuple[int, int]:
        live = [p for p in map(self.model.process, range(len(self.model.pids))) if p]
        return sum(p.usage.used for p in live if p.usage), sum(p.budget for p in live)

    def _update_totals(self) -> None:
        kernel = self._session.kernel
        if kernel is None:
            self.totals.setText("Kernel not running")
            return
        count, (used, budget) = len(self.model.pids), self._ram_totals()
        self.totals.setText(
            f"{count} process{'' if count == 1 else 'es'} · context RAM {human_tokens(used)} / "
            f"{human_tokens(budget)} tokens ({human_bytes(used * BYTES_PER_TOKEN_SHOWN)}) · "
            f"slots in use {len(kernel.scheduler.running)} / {kernel.scheduler.slots} · "
            f"{self._bridge.total_rate():.1f} tok/s"
        )

    def _sample(self) -> None:
        if self._session.kernel is None:
            if self.model.pids:
                self._on_status()  # the kernel went away without a status change
            return
        # Wall time moves, and priorities change, without kernel events: repaint once a second.
        self._on_tick()
        used, budget = self._ram_totals()
        self.graph.add_sample(used, budget, self._bridge.total_rate())
