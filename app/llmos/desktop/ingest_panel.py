"""The ingest panel: progress, speed and per-file outcomes while files go into long-term memory.

The core's :class:`~llmos.memory.ingest.IngestJob` reports on the event loop; the panel only
renders. Outcomes are queued and appended to the list in batches at most ten times a second,
so an ingest of tens of thousands of files keeps the desktop smooth.
"""

from __future__ import annotations

import math
from collections import Counter

from PySide6.QtCore import (
    QModelIndex,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QAction, QFont, QKeySequence, QPainter, QPaintEvent
from PySide6.QtWidgets import (
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

from llmos.desktop.ingest_outcomes import (
    CHUNKS,
    COLUMNS,
    FILE,
    REASON,
    STATE,
    STATUS_ROLE,
    OutcomeModel,
    duration,
    plural,
    summary,
    time_left,
)
from llmos.desktop.ram_bar import human_bytes
from llmos.desktop.row_table import show_rows
from llmos.desktop.theme import icon
from llmos.memory.ingest import FileOutcome, IngestProgress, IngestReport

BAR_STEPS = 1000
"""The progress bar's range (bytes do not fit a QProgressBar's int)."""
FLUSH_MS = 100
"""Queued outcomes are appended to the list at most this often."""
RATE_AFTER = 1.0
"""Seconds of reading before a speed and a time left are shown."""
RATE_SMOOTHING = 3.0
"""Time constant, in seconds, of the speed's moving average."""


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
        table = self.table
        show_rows(table, self.proxy)
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
            parts = [f"{progress.files_done:,} of {total:,} file{plural(total)}"]
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
        parts = [] if report.cancelled else [f"{done:,} file{plural(done)}"]
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
