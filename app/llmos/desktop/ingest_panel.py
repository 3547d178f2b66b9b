"""The ingest panel: progress, speed and per-file outcomes while files go into long-term memory.

The core's :class:`~llmos.memory.ingest.IngestJob` reports on the event loop; the panel only
renders. Outcomes are queued and appended to the list in batches at most ten times a second,
so an ingest of tens of thousands of files keeps the desktop smooth.
"""

from __future__ import annotations

import html
import math
from collections import Counter
from pathlib import PurePath
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QAction, QColor, QFont, QIcon, QKeySequence, QPainter, QPaintEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from llmos.desktop.ram_bar import human_bytes
from llmos.desktop.theme import current_theme, icon
from llmos.memory.ingest import FileOutcome, IngestProgress, IngestReport

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
BAR_STEPS = 1000
"""The progress bar's range (bytes do not fit a QProgressBar's int)."""
FLUSH_MS = 100
"""Queued outcomes are appended to the list at most this often."""
RATE_AFTER = 1.0
"""Seconds of reading before a speed and a time left are shown."""
RATE_SMOOTHING = 3.0
"""Time constant, in seconds, of the speed's moving average."""
_ROOT = QModelIndex()
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
        files += f" file{_s(max(files_total, done))}"
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
            parts.append((later if parts else first).format(f"{count:,}", _s(count)))
    if not parts:
        parts.append("no files to add")
    sentence = ", ".join(parts)
    if report.skipped:
        sentence += f" ({report.skipped:,} hidden or junk file{_s(report.skipped)} skipped)"
    return sentence[0].upper() + sentence[1:] + "."


def _s(count: int) -> str:
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


class OutcomeModel(QAbstractTableModel):
    """One row per finished file, appended in batches.

    Signals:
        None (beyond QAbstractTableModel's).
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.outcomes: list[FileOutcome] = []

    def append(self, outcomes: list[FileOutcome]) -> None:
        if outcomes:
            first = len(self.outcomes)
            self.beginInsertRows(_ROOT, first, first + len(outcomes) - 1)
            self.outcomes.extend(outcomes)
            self.endInsertRows()

    def clear(self) -> None:
        self.beginResetModel()
        self.outcomes = []
        self.endResetModel()

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = _ROOT) -> int:
        return 0 if parent.isValid() else len(self.outcomes)

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


class _ElideRight(QStyledItemDelegate):
    """Elides at the end (the table elides file names in the middle, to keep the extension)."""

    def initStyleOption(self, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        super().initStyleOption(option, index)
        option.textElideMode = Qt.TextElideMode.ElideRight


class _ElidedLabel(QLabel):
    """A one-line label that elides its text in the middle rather than widening the dock."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        text = self.fontMetrics().elidedText(
            self.text(), Qt.TextElideMode.ElideMiddle, self.contentsRect().width()
        )
        painter.setPen(self.palette().color(self.foregroundRole()))
        painter.drawText(self.contentsRect(), int(self.alignment()), text)


class IngestPanel(QWidget):
    """Progress of one ingest: an overall bar, files and speed, counts and a per-file list.

    Hidden until :meth:`start`; the owner feeds it the job's progress, outcomes and report.
    The button (and Esc) cancels while the ingest runs and closes the panel once it is over.

    Signals:
        cancelRequested(): the user asked to stop the ingest.
        dismissed(): the user closed the panel after the ingest ended (it is hidden).
        outcomeActivated(str): a stored file's row was double-clicked or entered (its path in
            memory).
    """

    cancelRequested = Signal()
    dismissed = Signal()
    outcomeActivated = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._state = "idle"  # running, stopping, done
        self._pending: list[FileOutcome] = []
        self._files_total = 0
        self._bytes_total = self._bytes_done = 0
        self._rate: float | None = None
        self._sample: tuple[float, int] | None = None
        """(elapsed, bytes) of the speed's start, then of its last update."""

        self.title = _ElidedLabel(self)
        font = QFont(self.title.font())
        font.setBold(True)
        self.title.setFont(font)
        self.button = QPushButton(self)
        self.button.clicked.connect(self._on_button)
        self.bar = QProgressBar(self, textVisible=False)
        self.bar.setAccessibleName("Ingest progress")
        self.status = _ElidedLabel(self)
        self.status.setObjectName("Muted")
        self.summary = QLabel(self, wordWrap=True)
        self.error = QLabel(self, objectName="Error", wordWrap=True)
        for label in (self.summary, self.error):
            label.setTextFormat(Qt.TextFormat.PlainText)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.tally = QWidget(self)
        self.counts = QLabel(self.tally, objectName="Muted", wordWrap=True)
        self.failures = QLabel(self.tally, objectName="Error")
        self.only_problems = QCheckBox("Only problems", self.tally)
        self.only_problems.setToolTip("Show only the files that could not be read")
        self.only_problems.toggled.connect(self._filter)

        self.model = OutcomeModel(self)
        self.proxy = QSortFilterProxyModel(self, filterKeyColumn=STATE, filterRole=STATUS_ROLE)
        self.proxy.setSourceModel(self.model)
        self.table = QTableView(self)
        self._setup_table()
        self._flush_timer = QTimer(self, interval=FLUSH_MS, singleShot=True)
        self._flush_timer.timeout.connect(self._flush)
        self._escape = QAction("Cancel", self)
        self._escape.setShortcut(QKeySequence(Qt.Key.Key_Escape))
        self._escape.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self._escape.triggered.connect(self._on_button)
        self.addAction(self._escape)

        top = QHBoxLayout()
        top.addWidget(self.title, 1)
        top.addWidget(self.button)
        tally = QHBoxLayout(self.tally)
        tally.setContentsMargins(0, 0, 0, 0)
        tally.setSpacing(8)
        tally.addWidget(self.counts, 1)
        tally.addWidget(self.failures)
        tally.addWidget(self.only_problems)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 6)
        layout.setSpacing(6)
        layout.addLayout(top)
        layout.addWidget(self.bar)
        layout.addWidget(self.status)
        layout.addWidget(self.summary)
        layout.addWidget(self.error)
        layout.addWidget(self.tally)
        layout.addWidget(self.table, 1)
        layout.addStretch(0)  # takes the room when the table is hidden
        self.hide()

    def _setup_table(self) -> None:
        table, views = self.table, QAbstractItemView
        table.setModel(self.proxy)
        table.setSelectionBehavior(views.SelectionBehavior.SelectRows)
        table.setSelectionMode(views.SelectionMode.SingleSelection)
        table.setEditTriggers(views.EditTrigger.NoEditTriggers)
        table.setAlternatingRowColors(True)
        table.setShowGrid(False)
        table.setWordWrap(False)
        table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        table.setItemDelegateForColumn(REASON, _ElideRight(table))
        table.setAccessibleName("Files")
        table.activated.connect(self._activate)
        metrics, rows = table.fontMetrics(), table.verticalHeader()
        rows.hide()
        rows.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)  # sizing rows is per row
        rows.setDefaultSectionSize(metrics.height() + 8)
        header = table.horizontalHeader()
        header.setStretchLastSection(True)
        # The reason gets what is left: in a 450 px dock, about a third.
        samples = {FILE: "quarterly-report.pdf", STATE: "Unchanged", CHUNKS: COLUMNS[CHUNKS]}
        for column, sample in samples.items():
            extra = 36 if column == STATE else 24  # the failure icon; the header's padding
            header.resizeSection(column, metrics.horizontalAdvance(sample) + extra)
        table.setMinimumHeight(rows.defaultSectionSize() * 4 + header.sizeHint().height())

    @property
    def busy(self) -> bool:
        """Between :meth:`start` and :meth:`finish` or :meth:`fail`."""
        return self._state in ("running", "stopping")

    # -- the ingest --------------------------------------------------------------------------

    def start(self, title: str) -> None:
        """Reset for a new ingest and show the panel."""
        self._state = "running"
        self._pending.clear()
        self._flush_timer.stop()
        self.model.clear()
        self._files_total = self._bytes_total = self._bytes_done = 0
        self._rate, self._sample = None, None
        self.title.setText(title)
        self.title.setToolTip(title)
        self.bar.setRange(0, 0)
        self.bar.show()
        self.status.setText("Looking for files...")
        self.status.show()
        self.summary.hide()
        self.error.hide()
        self.tally.show()
        self.table.show()
        self.counts.setText("")
        self.failures.setText("")
        self.only_problems.setChecked(False)
        self._set_button("Cancel", "stop", "Stop adding files; documents stored so far are kept")
        self.show()

    def update_progress(self, progress: IngestProgress) -> None:
        """Render the job's progress (its fields are read now: the job keeps changing them)."""
        if not self.busy:
            return
        self._files_total, self._bytes_total = progress.files_total, progress.bytes_total
        self._bytes_done = progress.bytes_done
        if progress.phase != "discovering" and progress.bytes_total:
            self._set_bar(progress.bytes_done, progress.bytes_total)
        elif progress.phase != "discovering" and progress.files_total:
            self._set_bar(progress.files_done, progress.files_total)  # only empty files
        else:
            self.bar.setRange(0, 0)
        self._show_counts(progress.counts)
        if progress.phase == "discovering" or not progress.files_total:
            self.status.setText("Looking for files...")
        elif progress.phase in ("finishing", "done"):
            self.status.setText("Saving the last documents...")
        else:
            self._measure(progress.elapsed, progress.bytes_done)
            total = progress.files_total
            parts = [f"{progress.files_done:,} of {total:,} file{_s(total)}"]
            if self._rate is not None and self._rate >= 1:
                parts.append(f"{human_bytes(round(self._rate))}/s")
                left = progress.bytes_total - progress.bytes_done
                if left > 0:
                    parts.append(time_left(left / self._rate))
            self.status.setText(" · ".join(parts))

    def add_outcome(self, outcome: FileOutcome) -> None:
        """Queue one finished file's row; rows are appended in batches."""
        self._pending.append(outcome)
        if not self._flush_timer.isActive():
            self._flush_timer.start()

    def finish(self, report: IngestReport) -> None:
        """Show what the ingest did; the button becomes Close."""
        self._flush()
        # Rows shown are the report's first ones (the same order): add any not reported.
        self.model.append(report.outcomes[self.model.rowCount() :])
        self._state = "done"
        counts = report.counts
        if report.cancelled:
            self.bar.setRange(0, BAR_STEPS)  # left where it stopped (or empty if still busy)
        else:
            self._set_bar(1, 1)
        done = len(report.outcomes)
        size = self._bytes_done if report.cancelled else self._bytes_total
        parts = [] if report.cancelled else [f"{done:,} file{_s(done)}"]
        parts += [human_bytes(size)] if size else []
        self.status.setText(f"{' · '.join(parts)} in {duration(report.seconds)}".lstrip())
        self.summary.setText(summary(report, self._files_total))
        self.summary.show()
        self._show_counts(counts)
        if counts["failed"]:
            self.only_problems.setChecked(True)
            self.table.scrollToTop()
        self._set_button("Close", "close", "Close this panel")

    def fail(self, message: str) -> None:
        """The ingest could not run at all: say why; the button becomes Close."""
        self._flush()
        self._state = "done"
        self.bar.hide()
        self.status.hide()
        self.error.setText(message)
        self.error.show()
        self.tally.setVisible(self.model.rowCount() > 0)
        self.table.setVisible(self.model.rowCount() > 0)
        self._set_button("Close", "close", "Close this panel")

    # -- rendering ---------------------------------------------------------------------------

    def _set_bar(self, done: int, total: int) -> None:
        self.bar.setRange(0, BAR_STEPS)
        self.bar.setValue(min(BAR_STEPS, done * BAR_STEPS // max(1, total)))

    def _measure(self, elapsed: float, done: int) -> None:
        """Update the smoothed speed: an average over the first second, then a moving one."""
        if self._sample is None:
            self._sample = (elapsed, done)
            return
        then, before = self._sample
        span = elapsed - then
        if self._rate is None:
            if span >= RATE_AFTER:
                self._rate = (done - before) / span
                self._sample = (elapsed, done)
        elif span > 0:
            weight = 1 - math.exp(-span / RATE_SMOOTHING)  # the same however often it is called
            self._rate += weight * ((done - before) / span - self._rate)
            self._sample = (elapsed, done)

    def _show_counts(self, counts: Counter[str]) -> None:
        parts = [f"{counts[s]:,} {s}" for s in ("added", "replaced", "unchanged") if counts[s]]
        self.counts.setText(" · ".join(parts))
        self.failures.setText(f"{counts['failed']:,} failed" if counts["failed"] else "")
        self.failures.setVisible(bool(counts["failed"]))

    def _set_button(self, text: str, icon_name: str, tip: str) -> None:
        self.button.setText(text)
        self.button.setIcon(icon(icon_name))
        self.button.setToolTip(f"{tip} (Esc)")
        self.button.setEnabled(True)

    def _flush(self) -> None:
        self._flush_timer.stop()
        if not self._pending:
            return
        bar = self.table.verticalScrollBar()
        following = bar.value() >= bar.maximum() - 2
        batch, self._pending = self._pending, []
        self.model.append(batch)
        if following and self.busy:
            self.table.scrollToBottom()

    def _filter(self, only_problems: bool) -> None:
        self.proxy.setFilterFixedString("failed" if only_problems else "")
        self.table.setColumnHidden(CHUNKS, only_problems)  # failures have none: room for why

    # -- user actions ------------------------------------------------------------------------

    def _on_button(self) -> None:
        if self._state == "running":
            self._state = "stopping"
            self.button.setText("Stopping...")
            self.button.setEnabled(False)
            self.cancelRequested.emit()
        elif self._state == "done":
            self._state = "idle"
            self.hide()
            self.dismissed.emit()

    def _activate(self, index: QModelIndex) -> None:
        row = self.proxy.mapToSource(index).row()
        if 0 <= row < len(self.model.outcomes):
            outcome = self.model.outcomes[row]
            if outcome.status != "failed" and outcome.path:
                self.outcomeActivated.emit(outcome.path)
