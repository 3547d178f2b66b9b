"""What the desktop's read-only tables share: named columns with header tips, and a view of
whole rows (the task manager's processes, the ingest panel's files)."""

from __future__ import annotations

from typing import Any, ClassVar

from PySide6.QtCore import (
    QAbstractItemModel,
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    Qt,
)
from PySide6.QtWidgets import QAbstractItemView, QTableView

ROOT = QModelIndex()
Index = QModelIndex | QPersistentModelIndex


class ColumnsModel(QAbstractTableModel):
    """A flat table of ``columns``, headed by their names, with ``header_tips`` as tooltips.

    Subclasses say how many rows they hold (:meth:`row_count`) and what is in them (``data``).
    """

    columns: ClassVar[tuple[str, ...]] = ()
    header_tips: ClassVar[dict[int, str]] = {}

    def row_count(self) -> int:
        raise NotImplementedError

    def rowCount(self, parent: Index = ROOT) -> int:
        return 0 if parent.isValid() else self.row_count()

    def columnCount(self, parent: Index = ROOT) -> int:
        return 0 if parent.isValid() else len(self.columns)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation != Qt.Orientation.Horizontal:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self.columns[section]
        return self.header_tips.get(section) if role == Qt.ItemDataRole.ToolTipRole else None


def show_rows(table: QTableView, model: QAbstractItemModel) -> None:
    """Make ``table`` a read-only list of ``model``'s rows: one selected at a time, striped,
    no grid, one line each."""
    views = QAbstractItemView
    table.setModel(model)
    table.setSelectionBehavior(views.SelectionBehavior.SelectRows)
    table.setSelectionMode(views.SelectionMode.SingleSelection)
    table.setEditTriggers(views.EditTrigger.NoEditTriggers)
    table.setAlternatingRowColors(True)
    table.setShowGrid(False)
    table.setWordWrap(False)
