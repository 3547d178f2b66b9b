"""What the desktop's read-only tables share: named columns with header tips, and a view of
whole rows (the task manager's processes, the ingest panel's files)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
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


def fit_columns(
    table: QTableView,
    widths: Sequence[int],
    least_needed: Iterable[int],
    *,
    keep: int = 0,
    hidden: Collection[int] = (),
) -> None:
    """Hide ``table``'s least needed columns (in that order) that do not fit its width, rather
    than scroll the ones that matter out of sight.

    Args:
        widths: each column's width.
        keep: pixels to leave over (for a stretched last column's text).
        hidden: columns hidden whatever the width.
    """
    # The table's new width (its viewport follows only after a resize event).
    room = table.width() - 2 * table.frameWidth() - keep
    if table.verticalScrollBar().isVisible():
        room -= table.verticalScrollBar().width()
    hide = set(hidden)
    needed = sum(width for column, width in enumerate(widths) if column not in hide)
    for column in least_needed:
        if needed <= room:
            break
        if column not in hide:
            hide.add(column)
            needed -= widths[column]
    header = table.horizontalHeader()
    for column in range(len(widths)):
        if header.isSectionHidden(column) != (column in hide):
            header.setSectionHidden(column, column in hide)
