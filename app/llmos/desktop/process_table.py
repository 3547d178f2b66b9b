"""The task manager's table: one row per live process, updated in place.

Rows change structure only when a process starts or ends; a bridge tick repaints the values
with one ``dataChanged``. A process another started shows right under it, indented
(:class:`ProcessSortProxy` keeps it there whatever the sort).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QSortFilterProxyModel, Qt
from PySide6.QtWidgets import QWidget

from llmos.desktop.ram_bar import RAM_TEXT_SAMPLE, USAGE_ROLE, human_tokens, ram_tooltip
from llmos.desktop.row_table import ROOT, ColumnsModel
from llmos.desktop.session import DesktopSession
from llmos.desktop.theme import current_theme
from llmos.kernel.errors import NoSuchProcess
from llmos.kernel.process import Process, ProcessState

# Context RAM comes right after the app: it is what the task manager is for, and it must be
# visible without scrolling in a docked panel.
COLUMNS = (
    "PID", "App", "Context RAM", "State", "Tokens/s", "Model", "Priority",
    "Calls", "Evictions", "Summary", "Page-ins", "Page faults", "Wall time",
)  # fmt: skip
(PID, APP, RAM, STATE, RATE, MODEL, PRIORITY,
 CALLS, EVICTIONS, SUMMARY, PAGE_INS, PAGE_FAULTS, WALL) = range(13)  # fmt: skip
NUMERIC = frozenset({PID, PRIORITY, RATE, CALLS, EVICTIONS, SUMMARY, PAGE_INS, PAGE_FAULTS, WALL})
LEAST_NEEDED = (WALL, CALLS, PAGE_INS, PRIORITY, MODEL, SUMMARY, RATE, PAGE_FAULTS, EVICTIONS)
"""Columns a table too narrow for all of them hides, in this order (PID, app, context RAM and
state always show)."""
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
"""Model role with each cell's sort key (numbers for numeric columns)."""
HEADER_TIPS = {
    RAM: "Context RAM: the tokens of the process's context window, by segment",
    RATE: "Tokens streamed per second, over the last two seconds",
    CALLS: "Model calls made",
    EVICTIONS: "Turns paged out of context RAM into long-term memory",
    SUMMARY: "Tokens the running summary of the evicted turns takes in context RAM",
    PAGE_INS: "Chunks paged into context RAM from long-term memory",
    PAGE_FAULTS: "Chunks the pager found relevant to a turn that were not in context RAM, "
    "so it read them back from long-term memory",
    PRIORITY: "Scheduler priority, -10 to 10; higher runs first",
}
COLUMN_SAMPLES = {PID: "88888", APP: "Librarian", STATE: "Suspended", MODEL: "qwen2.5:0.5b",
                  PRIORITY: "+10", RAM: RAM_TEXT_SAMPLE, RATE: "888.8",
                  SUMMARY: "888 tok", WALL: "88:88:88"}  # fmt: skip
"""Typical widest contents, for the initial column widths."""
PRIORITY_RANGE = (-10, 10)


def wall_time(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02}:{whole % 60:02}"


class ProcessTableModel(ColumnsModel):
    """One row per live process of the session's kernel, read live from the kernel.

    Signals:
        None (beyond QAbstractTableModel's).
    """

    columns = COLUMNS
    header_tips = HEADER_TIPS

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
            self.beginInsertRows(ROOT, len(self.pids), len(self.pids))
            self.pids.append(pid)
            self.endInsertRows()

    def remove(self, pid: int) -> None:
        if pid in self.pids:
            row = self.pids.index(pid)
            self.beginRemoveRows(ROOT, row, row)
            del self.pids[row]
            self.endRemoveRows()

    def lineage(self, row: int) -> list[int]:
        """The rows of ``row``'s ancestors that are in the table, the oldest first, then
        ``row`` itself."""
        rows, process, seen = [row], self.process(row), {row}
        while process is not None and process.parent_pid in self.pids:
            parent = self.pids.index(process.parent_pid)
            if parent in seen:
                break
            rows.insert(0, parent)
            seen.add(parent)
            process = self.process(parent)
        return rows

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

    def row_count(self) -> int:
        return len(self.pids)

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
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._parent_tip(index.row()) if column == APP else _tooltip(process, column)
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
            depth = len(self.lineage(self.pids.index(process.pid))) - 1
            indent = "    " * (depth - 1) + "\u2514 " if depth else ""
            return process.app.name.casefold(), indent + process.app.name
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
        if column == SUMMARY:
            tokens = counters.summary_tokens if process.summary else 0
            return tokens, f"{human_tokens(tokens)} tok" if tokens else "\u2013"
        count = {
            CALLS: counters.model_calls,
            EVICTIONS: counters.evictions,
            PAGE_INS: counters.page_ins,
            PAGE_FAULTS: counters.page_faults,
        }[column]
        return count, str(count)

    def _parent_tip(self, row: int) -> str | None:
        lineage = self.lineage(row)
        process = self.process(row)
        if len(lineage) < 2 or process is None:
            return None
        parent = self.process(lineage[-2])
        if parent is None:
            return None
        ends = "runs on if it ends" if process.detached else "ends with it"
        return f"Started by {parent.app.name} (pid {parent.pid}); {ends}"


class ProcessSortProxy(QSortFilterProxyModel):
    """Sorts the processes by the chosen column, keeping each one's children right after
    it (themselves sorted so), whichever the order.

    Signals:
        None (beyond QSortFilterProxyModel's).
    """

    def lessThan(
        self, left: QModelIndex | QPersistentModelIndex, right: QModelIndex | QPersistentModelIndex
    ) -> bool:
        model = self.sourceModel()
        if not isinstance(model, ProcessTableModel):
            return super().lessThan(left, right)
        ascending = self.sortOrder() == Qt.SortOrder.AscendingOrder
        mine, theirs = model.lineage(left.row()), model.lineage(right.row())
        for a, b in zip(mine, theirs, strict=False):
            if a != b:  # compare the two branches where they part
                keys = [model.index(row, left.column()).data(self.sortRole()) for row in (a, b)]
                if keys[0] != keys[1] and None not in keys:
                    return bool(keys[0] < keys[1])
                return model.pids[a] < model.pids[b]
        # One is the other's ancestor: it comes first in either order (Qt swaps the
        # arguments to sort in descending order).
        return (len(mine) < len(theirs)) == ascending


def _tooltip(process: Process, column: int) -> str | None:
    """What a cell's figure means for this process, in words."""
    counters = process.counters
    if column == RAM:
        return ram_tooltip(process.usage, process.budget)
    if column == EVICTIONS and counters.evictions:
        return (
            f"Turns 1\u2013{process.first_turn - 1} were moved to long-term memory, in "
            f"{process.memory_folder}"
        )
    if column == SUMMARY and counters.summaries:
        fallbacks = counters.summary_fallbacks
        how = f", {fallbacks} of them extractive (the model's failed)" if fallbacks else ""
        return (
            f"The summary of turns 1\u2013{process.first_turn - 1} takes "
            f"{counters.summary_tokens:,} tokens; rewritten {counters.summaries} "
            f"time{'s' if counters.summaries != 1 else ''}{how}"
        )
    return None
