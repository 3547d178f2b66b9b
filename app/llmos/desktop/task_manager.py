"""The task manager: every live process, its context RAM and speed, and the controls to
kill, suspend, resume, reprioritise, hibernate or raise it; in two more tabs, the hibernated
processes (to wake) and the ended ones (to reopen).

Rows are kept in place: the table changes structure only when a process starts or ends,
and a bridge tick (a few a second) repaints the values with one ``dataChanged``.
"""

from __future__ import annotations

import contextlib

from PySide6.QtCore import (
    QEvent,
    QObject,
    QPoint,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QAction, QKeySequence, QResizeEvent, QShowEvent
from PySide6.QtWidgets import (
    QBoxLayout,
    QLabel,
    QMenu,
    QTableView,
    QTabWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from llmos.desktop.audit_view import SHORTCUT as AUDIT_SHORTCUT
from llmos.desktop.audit_view import AuditView
from llmos.desktop.bridge import KernelBridge
from llmos.desktop.history_graph import HistoryGraph
from llmos.desktop.process_table import (
    COLUMN_SAMPLES,
    COLUMNS,
    LEAST_NEEDED,
    PID,
    PRIORITY_RANGE,
    RAM,
    SORT_ROLE,
    ProcessSortProxy,
    ProcessTableModel,
)
from llmos.desktop.ram_bar import RamDelegate, human_bytes, human_tokens
from llmos.desktop.row_table import fit_columns, show_rows
from llmos.desktop.session import DesktopSession, KernelNotRunning
from llmos.desktop.session_lists import HIBERNATE_SHORTCUT, SessionLists
from llmos.desktop.theme import icon
from llmos.kernel.context import BYTES_PER_TOKEN_SHOWN
from llmos.kernel.process import Process, ProcessState

GRAPH_WIDTH = 360
"""The history graph's width beside the table in a wide panel."""
GRAPH_BESIDE_MIN_WIDTH = 1100
"""Below this width a wide panel shows the table alone."""
QWIDGETSIZE_MAX = (1 << 24) - 1


class TaskManager(QWidget):
    """Lists the kernel's processes with their context RAM, speed and counters; kills,
    suspends, resumes, reprioritises and hibernates the selected one. Its Hibernated and
    History tabs list the saved processes. The desktop docks it.

    Signals:
        bringToFront(int): the user asked to see the selected process's window (its pid).
        wakeRequested(int): the user asked to wake a hibernated process (its pid).
        reopenRequested(int): the user asked to reopen an ended process (its pid).
    """

    bringToFront = Signal(int)
    wakeRequested = Signal(int)
    reopenRequested = Signal(int)
    kill_action: QAction
    suspend_action: QAction
    """Suspends, or resumes when the selected process is suspended."""
    hibernate_action: QAction
    priority_up_action: QAction
    priority_down_action: QAction
    front_action: QAction
    audit_action: QAction

    def __init__(
        self, session: DesktopSession, bridge: KernelBridge, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self._session = session
        self._bridge = bridge
        self._showing_resume = False
        self._wide = True
        self.model = ProcessTableModel(session, bridge.rate, self)
        self.proxy = ProcessSortProxy(self, sortRole=SORT_ROLE, dynamicSortFilter=True)
        self.audit_views: dict[int, AuditView] = {}
        """The syscall logs opened, by pid (kept after the process ends)."""
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

        processes = QVBoxLayout()
        processes.setSpacing(4)
        for widget in (self.toolbar, self.placeholder, self.table, self.totals):
            processes.addWidget(widget, 1 if widget is self.table else 0)
        # Docked at the side the graph goes under the table; along the top or bottom, beside it.
        self.processes_page = QWidget(self)
        self._layout = QBoxLayout(QBoxLayout.Direction.TopToBottom, self.processes_page)
        self._layout.setContentsMargins(6, 4, 6, 6)
        self._layout.setSpacing(8)
        self._layout.addLayout(processes, 3)
        self._layout.addWidget(self.graph, 2)
        self.sessions = SessionLists(session, bridge, self)
        self.sessions.wakeRequested.connect(self.wakeRequested)
        self.sessions.reopenRequested.connect(self.reopenRequested)
        self.sessions.loaded.connect(self._update_tab_titles)
        self.tabs = QTabWidget(self, documentMode=True)
        self.tabs.addTab(self.processes_page, "Processes")
        self.tabs.addTab(self.sessions.hibernated, "Hibernated")
        self.tabs.addTab(self.sessions.history, "History")
        self.tabs.currentChanged.connect(self._on_tab)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.tabs)

        self._sampler = QTimer(self, interval=1000)
        self._sampler.timeout.connect(self._sample)
        self._sampler.start()
        bridge.tick.connect(self._on_tick)
        bridge.spawned.connect(self._on_spawned)
        bridge.exited.connect(self._on_exited)
        session.statusChanged.connect(self._on_status)
        self.table.selectionModel().selectionChanged.connect(self._update_actions)
        self._on_status()

    def set_wide(self, wide: bool) -> None:
        """Lay out for a wide, short panel (graph beside the table) or a tall one (below)."""
        self._wide = wide
        direction = QBoxLayout.Direction.LeftToRight if wide else QBoxLayout.Direction.TopToBottom
        self._layout.setDirection(direction)
        self.graph.setMaximumWidth(GRAPH_WIDTH if wide else QWIDGETSIZE_MAX)
        self._fit_graph()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self._on_tab()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._fit_graph()

    def _fit_graph(self) -> None:
        # Beside a table squeezed by another panel (the memory explorer), the graph would
        # hide the columns: the table comes first.
        self.graph.setVisible(not self._wide or self.width() >= GRAPH_BESIDE_MIN_WIDTH)

    def _setup_table(self) -> None:
        table = self.table
        show_rows(table, self.proxy)
        table.setItemDelegateForColumn(RAM, RamDelegate(table))
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
        self._widths: list[int] = []
        """Each column's width when shown (the last one shown stretches)."""
        for column, title in enumerate(COLUMNS):
            sample = metrics.horizontalAdvance(COLUMN_SAMPLES.get(column, "888"))
            sample += RamDelegate.BAR_WIDTH + 12 if column == RAM else 0
            self._widths.append(max(metrics.horizontalAdvance(title) + 28, sample + 14))
            header.resizeSection(column, self._widths[-1])
        header.sectionResized.connect(self._on_section_resized)
        table.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.table and event.type() == QEvent.Type.Resize:
            self._fit_columns()
        return super().eventFilter(watched, event)

    def _fit_columns(self) -> None:
        """Hide the least needed columns that do not fit (a narrow dock, the memory explorer
        beside it) rather than scroll the ones that matter out of sight."""
        fit_columns(self.table, self._widths, LEAST_NEEDED)

    def _on_section_resized(self, column: int, _old: int, new: int) -> None:
        # The user's widths count; the stretched last column's does not.
        header = self.table.horizontalHeader()
        last = max((c for c in range(len(COLUMNS)) if not header.isSectionHidden(c)), default=-1)
        if new > 0 and column != last:
            self._widths[column] = new

    def _make_actions(self) -> None:
        keys = QKeySequence.StandardKey
        specs = (  # attribute, icon, text, tooltip, slot, keys
            ("kill_action", "kill", "Kill", "End the selected process now", self._kill,
             (keys.Delete,)),
            ("suspend_action", "suspend", "Suspend", "Suspend or resume the selected process",
             self._toggle_suspend, ("Space",)),
            ("hibernate_action", "hibernate", "Hibernate", "Write it to disk and free its "
             "context RAM; wake it from Hibernated", self.hibernate, (HIBERNATE_SHORTCUT,)),
            ("priority_up_action", "priority-up", "Priority +", "Raise its priority",
             lambda: self._nudge_priority(1), ("Ctrl+Up",)),
            ("priority_down_action", "priority-down", "Priority −", "Lower its priority",
             lambda: self._nudge_priority(-1), ("Ctrl+Down",)),
            ("front_action", "front", "Bring to front", "Show its window",
             self._bring_to_front, (Qt.Key.Key_Return, Qt.Key.Key_Enter)),
            ("audit_action", "audit", "Syscalls\u2026", "The syscalls it made, refused ones "
             "highlighted", self.show_audit, (AUDIT_SHORTCUT,)),
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
        # Only on the Processes tab: the lists' own actions share keys (Delete, Enter).
        process = self._selected() if self.tabs.currentWidget() is self.processes_page else None
        for act in self.actions():
            act.setEnabled(process is not None)
        if process is not None:
            kernel = self._session.kernel
            self.hibernate_action.setEnabled(kernel is not None and kernel.sessions is not None)
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

    def hibernate(self) -> None:
        """Hibernate the selected process (and those it started) in the background: its row
        leaves the table, and it waits in Hibernated (no window at the next start)."""
        kernel, process = self._session.kernel, self._selected()
        if kernel is None or process is None or not process.alive:
            return
        # Its window closes as it sleeps: it must not come back at the next start.
        kernel.set_window(process.pid, {**(process.window or {}), "open": False})
        self.hibernate_action.setEnabled(False)
        with contextlib.suppress(KernelNotRunning):  # the desktop is closing: it sleeps anyway
            self._session.run(kernel.hibernate(process.pid), f"llmos-hibernate-{process.pid}")

    def _bring_to_front(self) -> None:
        pid = self.selected_pid()
        if pid is not None:
            self.bringToFront.emit(pid)

    def show_audit(self) -> None:
        """Show the selected process's syscalls (a window of its own, kept up to date)."""
        kernel, pid = self._session.kernel, self.selected_pid()
        if kernel is None or pid is None:
            return
        view = self.audit_views.get(pid)
        if view is None or view.kernel is not kernel:
            view = self.audit_views[pid] = AuditView(kernel, pid, self._bridge, self)
        view.show()
        view.raise_()
        view.activateWindow()

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

    def _on_tab(self) -> None:
        if self.tabs.currentWidget() is not self.processes_page:
            self.sessions.refresh()
        self._update_actions()

    def _update_tab_titles(self) -> None:
        count = self.sessions.hibernated_count
        index = self.tabs.indexOf(self.sessions.hibernated)
        self.tabs.setTabText(index, f"Hibernated ({count})" if count else "Hibernated")

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
