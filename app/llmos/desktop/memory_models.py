"""Item models of the memory explorer: a folder's entries, and a document's chunks.

Both are updated in place: when memory changes (an ingest commits, another process writes),
rows are inserted, removed or repainted, so selection and scroll position survive.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from html import escape
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
)
from PySide6.QtGui import QIcon

from llmos.desktop.ram_bar import human_bytes, human_tokens
from llmos.desktop.theme import icon
from llmos.memory import paths
from llmos.memory.records import Chunk, Document

NAME, SIZE, TOKENS, CHUNKS, STATE, UPDATED = range(6)
COLUMNS = ("Name", "Size", "Tokens", "Chunks", "State", "Updated")
"""The type is the name's icon (and its tooltip): a column of it took a narrow dock's room."""
NUMERIC = frozenset({SIZE, TOKENS, CHUNKS})
COLUMN_SAMPLES = {SIZE: "888.8 KB", TOKENS: "Tokens", CHUNKS: "Chunks", STATE: "indexing",
                  UPDATED: "2026-11-30"}  # fmt: skip
"""The widest text of each column but the name (which takes the rest)."""
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
PATH_ROLE = Qt.ItemDataRole.UserRole + 2
_ROOT = QModelIndex()
Index = QModelIndex | QPersistentModelIndex

_KINDS = {
    "application/pdf": ("PDF", "file-pdf"),
    "text/markdown": ("Markdown", "file-text"),
    "text/html": ("HTML", "file-code"),
    "text/csv": ("CSV", "file-table"),
    "application/json": ("JSON", "file-code"),
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": (
        "Word",
        "file-text",
    ),
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ("Excel", "file-table"),
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": (
        "PowerPoint",
        "file-text",
    ),
}
_CODE_SUFFIXES = {"py", "js", "ts", "c", "h", "cpp", "rs", "go", "java", "rb", "sh", "toml", "yaml"}


def kind_of(document: Document) -> tuple[str, str]:
    """(the type shown, the icon's name) of ``document``."""
    if document.kind == "note":
        return "Note", "note"
    if document.kind == "conversation":
        return "Conversation", "conversation"
    if document.media_type in _KINDS:
        return _KINDS[document.media_type]
    suffix = document.name.rsplit(".", 1)[-1].lower() if "." in document.name else ""
    if suffix in _CODE_SUFFIXES:
        return suffix.upper() if len(suffix) <= 3 else suffix.capitalize(), "file-code"
    return "Text", "file-text"


def day(timestamp: float) -> str:
    """The time for today, else the date: what fits a narrow column."""
    moment = datetime.datetime.fromtimestamp(timestamp)
    if moment.date() == datetime.date.today():
        return moment.strftime("%H:%M")
    return moment.strftime("%Y-%m-%d")


def when(timestamp: float) -> str:
    moment = datetime.datetime.fromtimestamp(timestamp)
    if moment.date() == datetime.date.today():
        return moment.strftime("%H:%M")
    return moment.strftime("%Y-%m-%d %H:%M")


@dataclass(frozen=True, slots=True)
class Entry:
    """A row of the folder listing: a subfolder or a document."""

    path: str
    document: Document | None = None
    state: str = ""
    """``indexing``, ``ready`` or ``no vectors`` for documents."""

    @property
    def is_folder(self) -> bool:
        return self.document is None

    @property
    def name(self) -> str:
        return paths.name(self.path)


class ListingModel(QAbstractTableModel):
    """The entries of one memory folder: subfolders, then documents."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.entries: list[Entry] = []
        self._rows: dict[str, int] = {}

    def rowCount(self, parent: Index = _ROOT) -> int:
        return 0 if parent.isValid() else len(self.entries)

    def columnCount(self, parent: Index = _ROOT) -> int:
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = 0) -> Any:
        if orientation == Qt.Orientation.Horizontal:
            if role == Qt.ItemDataRole.DisplayRole:
                return COLUMNS[section]
            if role == Qt.ItemDataRole.TextAlignmentRole and section in NUMERIC:
                return Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        base = super().flags(index)
        return base | Qt.ItemFlag.ItemIsDragEnabled if index.isValid() else base

    def entry(self, row: int) -> Entry:
        return self.entries[row]

    def row_of(self, path: str) -> int | None:
        return self._rows.get(path)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        entry = self.entries[index.row()]
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return _display(entry, column)
        if role == SORT_ROLE:
            return _sort_key(entry, column)
        if role == PATH_ROLE:
            return entry.path
        if role == Qt.ItemDataRole.DecorationRole and column == NAME:
            return _icon(entry)
        if role == Qt.ItemDataRole.TextAlignmentRole and column in NUMERIC:
            return Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
        if role == Qt.ItemDataRole.ToolTipRole:
            return _tooltip(entry)
        return None

    def set_entries(self, entries: list[Entry]) -> None:
        """Show ``entries``: rows that stay keep their place; others come and go."""
        wanted = {entry.path: entry for entry in entries}
        gone = [row for row, entry in enumerate(self.entries) if entry.path not in wanted]
        for first, last in reversed(_runs(gone)):
            self.beginRemoveRows(_ROOT, first, last)
            del self.entries[first : last + 1]
            self.endRemoveRows()
        changed = []
        for row, entry in enumerate(self.entries):
            new = wanted.pop(entry.path)
            if new != entry:
                self.entries[row] = new
                changed.append(row)
        for first, last in _runs(changed):
            self.dataChanged.emit(self.index(first, 0), self.index(last, len(COLUMNS) - 1))
        if wanted:  # what is left is new, in the given order
            start = len(self.entries)
            self.beginInsertRows(_ROOT, start, start + len(wanted) - 1)
            self.entries.extend(wanted.values())
            self.endInsertRows()
        self._rows = {entry.path: row for row, entry in enumerate(self.entries)}


class FoldersFirst(QSortFilterProxyModel):
    """Sorts by the column's sort key with folders always above documents."""

    def lessThan(self, left: Index, right: Index) -> bool:
        model = self.sourceModel()
        assert isinstance(model, ListingModel)
        a, b = model.entry(left.row()), model.entry(right.row())
        if a.is_folder != b.is_folder:
            ascending = self.sortOrder() == Qt.SortOrder.AscendingOrder
            return a.is_folder if ascending else b.is_folder
        return bool(left.data(SORT_ROLE) < right.data(SORT_ROLE))


def _runs(rows: list[int]) -> list[tuple[int, int]]:
    """Sorted rows as (first, last) runs of consecutive numbers."""
    runs: list[tuple[int, int]] = []
    for row in rows:
        if runs and runs[-1][1] == row - 1:
            runs[-1] = (runs[-1][0], row)
        else:
            runs.append((row, row))
    return runs


def _display(entry: Entry, column: int) -> str:
    doc = entry.document
    if column == NAME:
        return entry.name
    if doc is None:
        return ""
    if column == SIZE:
        return human_bytes(doc.size)
    if column == TOKENS:
        return human_tokens(doc.tokens)
    if column == CHUNKS:
        return f"{doc.chunks:,}"
    if column == STATE:
        return entry.state
    return day(doc.updated)


def _sort_key(entry: Entry, column: int) -> Any:
    doc = entry.document
    if column == NAME or doc is None:
        return entry.name.casefold()
    return {
        SIZE: doc.size,
        TOKENS: doc.tokens,
        CHUNKS: doc.chunks,
        STATE: entry.state,
        UPDATED: doc.updated,
    }[column]


def _icon(entry: Entry) -> QIcon:
    if entry.document is None:
        return icon("folder")
    return icon(kind_of(entry.document)[1])


def _tooltip(entry: Entry) -> str:
    doc = entry.document
    if doc is None:
        return entry.path
    lines = [f"<b>{escape(doc.path)}</b>", f"{kind_of(doc)[0]}, updated {when(doc.updated)}"]
    if doc.source:
        lines.append(f"from {escape(doc.source)}")
    lines.append(f"{doc.chunks:,} chunks, about {doc.tokens:,} tokens")
    if entry.state == "indexing":
        lines.append("Searchable by words now; by meaning once its vectors are made.")
    return "<br>".join(lines)


# -- chunks ------------------------------------------------------------------------------------


class ChunkListModel(QAbstractListModel):
    """A document's chunks in order: number, position, tokens and the first words."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.chunks: list[Chunk] = []

    def rowCount(self, parent: Index = _ROOT) -> int:
        return 0 if parent.isValid() else len(self.chunks)

    def flags(self, index: Index) -> Qt.ItemFlag:
        base = super().flags(index)
        return base | Qt.ItemFlag.ItemIsDragEnabled if index.isValid() else base

    def set_chunks(self, chunks: list[Chunk]) -> None:
        self.beginResetModel()
        self.chunks = chunks
        self.endResetModel()

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        chunk = self.chunks[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            first = " ".join(chunk.text[:160].split())
            return f"#{chunk.ordinal + 1}   {chunk.tokens} tok   {first}"
        if role == Qt.ItemDataRole.ToolTipRole:
            where = chunk_position(chunk)
            return (
                f"Chunk {chunk.ordinal + 1}: {chunk.tokens} tokens, {where}.\n"
                "Drag it onto an agent window to page it in."
            )
        return None


def chunk_position(chunk: Chunk) -> str:
    """Where a chunk lies in its source, in words: page, heading, lines."""
    parts = []
    if chunk.page:
        parts.append(f"page {chunk.page}")
    if chunk.heading:
        parts.append(f"§ {chunk.heading}")
    if chunk.line_start:
        if chunk.line_end and chunk.line_end != chunk.line_start:
            parts.append(f"lines {chunk.line_start}-{chunk.line_end}")
        else:
            parts.append(f"line {chunk.line_start}")
    return ", ".join(parts) or chunk.position or "-"


# -- highlighting -------------------------------------------------------------------------------


def query_terms(query: str) -> list[str]:
    """The words of a search worth highlighting (two letters or more)."""
    return sorted({w for w in re.findall(r"\w+", query.casefold()) if len(w) > 1}, key=len)[::-1]


def highlight(text: str, terms: list[str], color: str) -> str:
    """``text`` as HTML with every occurrence of ``terms`` marked."""
    if not terms:
        return escape(text)
    pattern = re.compile("|".join(re.escape(term) for term in terms), re.IGNORECASE)
    out, last = [], 0
    for match in pattern.finditer(text):
        out.append(escape(text[last : match.start()]))
        out.append(f'<span style="background-color:{color}">{escape(match.group())}</span>')
        last = match.end()
    out.append(escape(text[last:]))
    return "".join(out)


def snippet(text: str, terms: list[str], width: int = 220) -> str:
    """About ``width`` characters of ``text`` around the first of ``terms`` found."""
    flat = " ".join(text.split())
    lowered = flat.casefold()
    at = min((i for i in (lowered.find(t) for t in terms) if i >= 0), default=0)
    start = max(0, at - width // 3)
    piece = flat[start : start + width]
    return ("..." if start else "") + piece + ("..." if start + width < len(flat) else "")
