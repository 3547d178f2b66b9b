"""The keyboard shortcuts, listed from the desktop's own actions (so the list cannot go stale)."""

from __future__ import annotations

from collections.abc import Iterable

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from llmos.desktop import context_view


def _rows(actions: Iterable[QAction]) -> list[tuple[str, str]]:
    """(name, keys) of every action that has a shortcut."""
    native = QKeySequence.SequenceFormat.NativeText
    return [
        (action.text().replace("&", ""), ", ".join(k.toString(native) for k in action.shortcuts()))
        for action in actions
        if action.shortcuts()
    ]


class HelpDialog(QDialog):
    """Lists every action that has a shortcut."""

    def __init__(
        self,
        actions: Iterable[QAction],
        task_manager_actions: Iterable[QAction] = (),
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        rows = _rows(actions)
        rows += [
            ("Send the message", "Enter"),
            ("New line in the message", "Shift+Enter"),
            ("Stop the answer", "Esc"),
            ("What is in the context RAM", context_view.SHORTCUT),
        ]
        rows += [(f"Task manager: {name}", keys) for name, keys in _rows(task_manager_actions)]
        self.table = QTableWidget(len(rows), 2)
        self.table.setHorizontalHeaderLabels(["Action", "Shortcut"])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QTableWidget.SelectionMode.NoSelection)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        for row, (name, keys) in enumerate(rows):
            self.table.setItem(row, 0, QTableWidgetItem(name))
            self.table.setItem(row, 1, QTableWidgetItem(keys))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(
            QLabel(
                "LLM-OS runs agent apps as processes on a local language model. Open apps from "
                "the launcher; the task manager shows each process's context RAM.",
                wordWrap=True,
            )
        )
        layout.addWidget(self.table)
        layout.addWidget(buttons)
        self.resize(460, 480)
