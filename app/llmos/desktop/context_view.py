"""What is in a process's context RAM: every part of its next request, with its tokens.

:class:`ContextView` shows the parts (:mod:`~llmos.desktop.context_parts`) as a tree, with the
selected part's text under it, and follows the process live.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, Qt, QTimer
from PySide6.QtGui import QColor, QIcon, QPixmap, QShowEvent
from PySide6.QtWidgets import (
    QDialog,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QSplitter,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from llmos.desktop.bridge import KernelBridge
from llmos.desktop.context_parts import Part, parts_of
from llmos.desktop.ram_bar import RamMeter
from llmos.desktop.theme import current_theme, icon
from llmos.kernel.kernel import Kernel

SHORTCUT = "Ctrl+I"
"""Opens the view from an agent window (the help lists it)."""
UPDATE_MS = 50
"""Events that arrive together (an eviction is four) make one update."""
KEY_ROLE = Qt.ItemDataRole.UserRole + 1
TEXT_ROLE = Qt.ItemDataRole.UserRole + 2
PART, TOKENS, NOTE = range(3)
NOTE_SAMPLE = "paged in for this turn"
"""The widest usual note, for the note column's width."""


class ContextView(QDialog):
    """A process's context RAM, part by part, kept up to date (a non-modal window).

    Signals:
        None (beyond QDialog's).
    """

    def __init__(
        self, kernel: Kernel, pid: int, bridge: KernelBridge, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self._pending = QTimer(self, singleShot=True, interval=UPDATE_MS)
        self._pending.timeout.connect(self.refresh)
        self.kernel = kernel
        self.pid = pid
        self._swatches: dict[tuple[str, bool], QIcon] = {}
        self._expanded = {"paged_in", "history"}
        self.setObjectName("ContextView")
        self.meter = RamMeter(stacked=True)
        self.heading = QLabel(wordWrap=True)
        self.tree = QTreeWidget()
        self.tree.setColumnCount(3)
        self.tree.setHeaderLabels(["Part", "Tokens", "Note"])
        self.tree.setUniformRowHeights(True)
        self.tree.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.tree.setAccessibleName("Context RAM parts")
        header = self.tree.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(PART, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(TOKENS, QHeaderView.ResizeMode.ResizeToContents)
        # The notes are short; the parts' titles get the room.
        header.setSectionResizeMode(NOTE, QHeaderView.ResizeMode.Interactive)
        header.resizeSection(NOTE, self.fontMetrics().horizontalAdvance(NOTE_SAMPLE) + 16)
        self.tree.currentItemChanged.connect(self._show_text)
        self.tree.itemExpanded.connect(lambda item: self._expanded.add(item.data(0, KEY_ROLE)))
        self.tree.itemCollapsed.connect(lambda item: self._expanded.discard(item.data(0, KEY_ROLE)))
        self.text = QPlainTextEdit(readOnly=True)
        self.text.setAccessibleName("Contents")
        self.footer = QLabel(wordWrap=True)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.tree)
        splitter.addWidget(self.text)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        splitter.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.addWidget(self.heading)
        layout.addWidget(self.meter)
        layout.addWidget(splitter, 1)
        layout.addWidget(self.footer)
        self.resize(680, 640)

        for signal in (
            bridge.usageChanged,
            bridge.pagesChanged,
            bridge.turnsEvicted,
            bridge.summaryUpdated,
            bridge.coreChanged,
            bridge.stateChanged,
        ):
            signal.connect(self._on_event)
        self.refresh()

    def _on_event(self, pid: int, *_: object) -> None:
        # Hidden, it waits: showing it reads the process afresh.
        if pid == self.pid and self.isVisible() and not self._pending.isActive():
            self._pending.start()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.refresh()

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.PaletteChange:
            self._pending.start()  # the swatches follow the theme
        super().changeEvent(event)

    def refresh(self) -> None:
        """Read the process again and show what changed (cheap: counts are cached)."""
        self._pending.stop()
        process = self.kernel.get(self.pid)
        # The kernel's own counter, so each part costs what the kernel charges for it.
        counter = self.kernel._counter(process.model)
        parts = parts_of(
            process, counter.message, lambda page: self.kernel.page_cost(self.pid, page)
        )
        ended = "" if process.alive else " (ended)"
        self.setWindowTitle(f"Context RAM \u00b7 {process.app.name} \u00b7 {process.pid}{ended}")
        self.heading.setText(
            f"<b>{process.app.name}</b>, pid {process.pid}{ended} \u00b7 {process.model} \u00b7 "
            f"{process.budget:,} tokens of context RAM; what its next request holds:"
        )
        self.meter.set_usage(process.usage, process.budget)
        exact = process.usage is not None and process.usage.exact
        self.footer.setText(
            "Counts are exact: the model's own tokenizer."
            if exact
            else f"Counts are estimates, calibrated by the backend's reports; requests keep "
            f"a {counter.margin:.0%} safety margin."
        )
        self._show(parts)

    def _show(self, parts: list[Part]) -> None:
        tree = self.tree
        current = tree.currentItem()
        current_key = current.data(0, KEY_ROLE) if current is not None else "history"
        scroll = tree.verticalScrollBar().value()
        tree.setUpdatesEnabled(False)
        tree.blockSignals(True)  # no expanded/current changes while it is rebuilt
        try:
            tree.clear()
            chosen: QTreeWidgetItem | None = None
            for part in parts:
                item = self._item(part)
                tree.addTopLevelItem(item)
                children = [self._item(child) for child in part.children]
                item.addChildren(children)
                item.setExpanded(part.key in self._expanded)
                for made in (item, *children):
                    if made.data(0, KEY_ROLE) == current_key:
                        chosen = made
            chosen = chosen or tree.topLevelItem(0)
            if chosen is not None:
                tree.setCurrentItem(chosen)
        finally:
            tree.blockSignals(False)
            tree.setUpdatesEnabled(True)
        tree.verticalScrollBar().setValue(scroll)
        self._show_text(tree.currentItem())

    def _item(self, part: Part) -> QTreeWidgetItem:
        item = QTreeWidgetItem([part.title, f"{part.tokens:,}", part.note])
        item.setData(0, KEY_ROLE, part.key)
        item.setData(0, TEXT_ROLE, part.text)
        item.setTextAlignment(TOKENS, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        item.setToolTip(PART, part.tip or part.title)
        if part.segment:
            item.setIcon(PART, self._swatch(part.segment))
            budget = self.kernel.get(self.pid).budget
            share = 100 * part.tokens / budget if budget else 0.0
            item.setToolTip(TOKENS, f"{share:.1f}% of the context RAM")
        elif part.icon:
            item.setIcon(PART, icon(part.icon))
        if part.faded:
            muted = current_theme().muted
            for column in (PART, TOKENS, NOTE):
                item.setForeground(column, muted)
        return item

    def _swatch(self, segment: str) -> QIcon:
        theme = current_theme()
        key = (segment, theme.dark)
        if key not in self._swatches:
            pixmap = QPixmap(12, 12)
            pixmap.fill(QColor(theme.segments[segment]))
            self._swatches[key] = QIcon(pixmap)
        return self._swatches[key]

    def _show_text(self, item: QTreeWidgetItem | None, _previous: object = None) -> None:
        text = item.data(0, TEXT_ROLE) if item is not None else ""
        if text != self.text.toPlainText():
            self.text.setPlainText(text)
