"""What the ingest panel lists and says: one row per finished file, and plain-words figures.

Split from :mod:`llmos.desktop.ingest_panel` (the widget); this module holds its model and the
sentences it shows (time left, durations, the closing summary).
"""

from __future__ import annotations

import html
import math
from pathlib import PurePath
from typing import Any

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor, QIcon, QPainter
from PySide6.QtWidgets import QWidget

from llmos.desktop.row_table import ROOT, ColumnsModel
from llmos.desktop.theme import current_theme, icon
from llmos.memory.ingest import FileOutcome, IngestReport

COLUMNS = ("File", "State", "Chunks", "Reason")
FILE, STATE, CHUNKS, REASON = range(4)
STATES = {"added": "Added", "replaced": "Replaced", "unchanged": "Unchanged", "failed": "Failed"}
STATUS_ROLE = Qt.ItemDataRole.UserRole + 1
"""Model role with a row's raw status (``added``, ``replaced``, ``unchanged``, ``failed``)."""
HEADER_TIPS = {
    STATE: "Added: new in memory · Replaced: a changed file's new version · Unchanged: "
    "already in memory as it is",
    CHUNKS: "Pieces of text stored for search",
    REASON: "Why a file could not be read",
}
_tints: dict[tuple[str, int], QIcon] = {}


def time_left(seconds: float) -> str:
    """38 -> "about 40 s left"; 400 -> "about 7 min left"."""
    if seconds < 10:
        return "a few seconds left"
    if seconds < 60:
        return f"about {5 * math.ceil(seconds / 5)} s left"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"about {minutes} min left"
    hours, minutes = divmod(minutes, 60)
    return f"about {hours} h {minutes} min left" if minutes else f"about {hours} h left"


def duration(seconds: float) -> str:
    """42.3 -> "42 s"; 185 -> "3 min 5 s"; 3720 -> "1 h 2 min"."""
    whole = max(1, round(seconds))
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s" if whole % 60 else f"{whole // 60} min"
    return f"{whole // 3600} h {whole // 60 % 60} min"


def summary(report: IngestReport, files_total: int) -> str:
    """What an ingest did, in one plain sentence."""
    done = len(report.outcomes)
    if report.cancelled:
        if not done:
            return "Stopped before any file was read."
        files = f"{done:,} of {files_total:,}" if files_total >= done else f"{done:,}"
        files += f" file{plural(max(files_total, done))}"
        return f"Stopped: {files} done; stored documents were kept."
    counts = report.counts
    phrases = [  # (count, with a noun when it opens the sentence, without)
        (counts["added"], "added {} document{}", "added {}"),
        (counts["replaced"], "replaced {} changed document{}", "replaced {} that changed"),
        (counts["unchanged"], "{} document{} already up to date", "{} already up to date"),
        (counts["failed"], "{} file{} could not be read", "{} could not be read"),
    ]
    parts = []
    for count, first, later in phrases:
        if count:
            parts.append((later if parts else first).format(f"{count:,}", plural(count)))
    if not parts:
        parts.append("no files to add")
    sentence = ", ".join(parts)
    if report.skipped:
        sentence += f" ({report.skipped:,} hidden or junk file{plural(report.skipped)} skipped)"
    return sentence[0].upper() + sentence[1:] + "."


def count(number: int, noun: str) -> str:
    """``count(1, "chunk")`` -> "1 chunk"; ``count(1200, "chunk")`` -> "1,200 chunks"."""
    return f"{number:,} {noun}{plural(number)}"


def plural(count: int) -> str:
    return "" if count == 1 else "s"


def _tinted(name: str, colour: QColor) -> QIcon:
    """A theme icon painted in ``colour`` (theme icons take the text colour)."""
    key = (name, colour.rgba())
    if key not in _tints:
        tinted, base = QIcon(), icon(name)
        for side in (16, 32):
            pixmap = base.pixmap(side, side)
            painter = QPainter(pixmap)
            painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_SourceIn)
            painter.fillRect(pixmap.rect(), colour)
            painter.end()
            tinted.addPixmap(pixmap)
        _tints[key] = tinted
    return _tints[key]


class OutcomeModel(ColumnsModel):
    """One row per finished file, appended in batches.

    Signals:
        None (beyond QAbstractTableModel's).
    """

    columns = COLUMNS
    header_tips = HEADER_TIPS

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.outcomes: list[FileOutcome] = []

    def append(self, outcomes: list[FileOutcome]) -> None:
        if outcomes:
            first = len(self.outcomes)
            self.beginInsertRows(ROOT, first, first + len(outcomes) - 1)
            self.outcomes.extend(outcomes)
            self.endInsertRows()

    def clear(self) -> None:
        self.beginResetModel()
        self.outcomes = []
        self.endResetModel()

    def row_count(self) -> int:
        return len(self.outcomes)

    def data(
        self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self.outcomes):
            return None
        outcome, column, roles = self.outcomes[index.row()], index.column(), Qt.ItemDataRole
        failed = outcome.status == "failed"
        if role == roles.DisplayRole:
            if column == FILE:
                return PurePath(outcome.source).name or outcome.source
            if column == STATE:
                return STATES.get(outcome.status, outcome.status.capitalize())
            if column == CHUNKS:
                return "" if failed else f"{outcome.chunks:,}"
            return outcome.reason
        if role == STATUS_ROLE:
            return outcome.status
        if role == roles.ToolTipRole:
            if column in (FILE, CHUNKS):
                return (
                    f"{html.escape(outcome.source)}<br>"
                    f"In memory: {html.escape(outcome.path) if outcome.path else '-'}"
                )
            return html.escape(outcome.reason) or None
        if role == roles.ForegroundRole and failed and column == STATE:
            return current_theme().bad
        if role == roles.DecorationRole and failed and column == STATE:
            return _tinted("error", current_theme().bad)
        if role == roles.TextAlignmentRole and column == CHUNKS:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None
