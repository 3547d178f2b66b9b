"""A process's audit log: every syscall it made, refused ones standing out, kept up to date.

The kernel keeps the log (:attr:`~llmos.kernel.process.Process.audit`, the last 500 calls);
:class:`AuditView` only reads it, appending the new entries when the process makes a call.
"""

from __future__ import annotations

import time

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QColor, QShowEvent
from PySide6.QtWidgets import (
    QDialog,
    QHeaderView,
    QLabel,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from llmos.apps.permissions import SYSCALLS
from llmos.desktop.bridge import KernelBridge
from llmos.desktop.theme import current_theme, icon
from llmos.kernel.errors import NoSuchProcess
from llmos.kernel.kernel import Kernel
from llmos.kernel.process import AuditEntry, Process

SHORTCUT = "Ctrl+L"
"""Opens the selected process's log from the task manager."""
UPDATE_MS = 50
"""Calls that end together make one update."""
COLUMNS = ("Time", "Tool", "Permission", "Outcome", "Seconds", "Error")
TIME, TOOL, PERMISSION, OUTCOME, SECONDS, ERROR = range(len(COLUMNS))


class AuditView(QDialog):
    """The syscalls one process made, newest last (a non-modal window).

    Signals:
        None (beyond QDialog's).
    """

    def __init__(
        self, kernel: Kernel, pid: int, bridge: KernelBridge, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("AuditView")
        self.setWindowIcon(icon("audit"))
        self.kernel = kernel
        self.pid = pid
        self._shown: list[AuditEntry] = []
        self._pending = QTimer(self, singleShot=True, interval=UPDATE_MS)
        self._pending.timeout.connect(self.refresh)
        self.heading = QLabel(wordWrap=True)
        self.tree = QTreeWidget(rootIsDecorated=False, uniformRowHeights=True)
        self.tree.setColumnCount(len(COLUMNS))
        self.tree.setHeaderLabels(list(COLUMNS))
        self.tree.setAccessibleName("Syscalls")
        self.tree.setAlternatingRowColors(True)
        header = self.tree.header()
        header.setStretchLastSection(True)
        for column in (TIME, TOOL, PERMISSION, OUTCOME, SECONDS):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        self.empty = QLabel(
            "No syscalls yet. They are listed here as the process makes them.",
            alignment=Qt.AlignmentFlag.AlignCenter,
            wordWrap=True,
        )
        layout = QVBoxLayout(self)
        layout.addWidget(self.heading)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.empty)
        self.resize(760, 420)
        bridge.syscallFinished.connect(self._on_call)
        bridge.exited.connect(self._on_call)
        self.refresh()

    def _process(self) -> Process | None:
        try:
            return self.kernel.get(self.pid)
        except NoSuchProcess:
            return None

    def _on_call(self, pid: int, *_: object) -> None:
        # Hidden, it waits: showing it reads the log afresh.
        if pid == self.pid and self.isVisible() and not self._pending.isActive():
            self._pending.start()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.refresh()

    def refresh(self) -> None:
        """Show the entries logged since the last refresh (all again once old ones dropped
        out of the log)."""
        self._pending.stop()
        process = self._process()
        entries = list(process.audit) if process is not None else []
        shown = self._shown
        tree = self.tree
        at_end = tree.verticalScrollBar().value() >= tree.verticalScrollBar().maximum()
        if len(entries) >= len(shown) and all(a is b for a, b in zip(entries, shown, strict=False)):
            new = entries[len(shown) :]
        else:
            tree.clear()
            new = entries
        tree.addTopLevelItems([self._item(entry) for entry in new])
        self._shown = entries
        if new and at_end:
            tree.scrollToBottom()
        refused = sum(entry.outcome == "refused" for entry in entries)
        name = process.app.name if process is not None else "?"
        ended = "" if process is not None and process.alive else " (ended)"
        self.setWindowTitle(f"Syscalls \u00b7 {name} \u00b7 {self.pid}{ended}")
        granted = ", ".join(process.app.permissions.syscalls) if process is not None else ""
        self.heading.setText(
            f"<b>{name}</b>, pid {self.pid}{ended} \u00b7 {len(entries)} "
            f"call{'' if len(entries) == 1 else 's'}"
            + (f", <b>{refused} refused</b>" if refused else "")
            + f" \u00b7 granted: {granted or 'none'}"
        )
        self.empty.setVisible(not entries)
        self.tree.setVisible(bool(entries))

    def _item(self, entry: AuditEntry) -> QTreeWidgetItem:
        clock = time.strftime("%H:%M:%S", time.localtime(entry.at))
        seconds = f"{entry.seconds:.2f}"
        item = QTreeWidgetItem(
            [clock, entry.tool, entry.permission, entry.outcome, seconds, entry.error]
        )
        item.setTextAlignment(SECONDS, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        item.setToolTip(TIME, time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.at)))
        if entry.permission in SYSCALLS:
            item.setToolTip(PERMISSION, SYSCALLS[entry.permission].words)
        item.setToolTip(ERROR, entry.error)
        theme = current_theme()
        if entry.outcome == "refused":
            tint = QColor(theme.bad)
            tint.setAlpha(40)
            font = item.font(OUTCOME)
            font.setBold(True)
            for column in range(len(COLUMNS)):
                item.setBackground(column, tint)
            item.setForeground(OUTCOME, theme.bad)
            item.setFont(OUTCOME, font)
        elif entry.outcome != "ok":
            item.setForeground(OUTCOME, theme.warn)
        return item
