"""The memory explorer's search: memory's hybrid search for what is typed in its search box.

The search runs when typing pauses (or on Enter), as a task of the memory service; a newer
search cancels an older one. Hits are listed with the query's words marked; one opens its
document at its chunk, and hits drag out onto an agent window as their chunks.
"""

from __future__ import annotations

import asyncio
import logging

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from llmos.desktop.memory_drag import MemoryRef, memory_mime
from llmos.desktop.memory_models import highlight, kind_of, query_terms, snippet
from llmos.desktop.memory_service import MemoryService
from llmos.desktop.theme import current_theme, icon
from llmos.memory.records import SearchHit

log = logging.getLogger(__name__)

SEARCH_DELAY_MS = 250
SEARCH_HITS = 20
HIT_ROLE = Qt.ItemDataRole.UserRole + 10
"""The :class:`SearchHit` of a row of :class:`SearchResults`."""


class SearchPage(QWidget):
    """The hits of a search for what is typed in ``box``, and a note of how they matched.

    Signals:
        shown(bool): a search began (show this page), or the box was emptied (show the
            listing again).
        hitOpened(str, int, list): a hit was opened: its document's path, its chunk's
            ordinal, and the query's words.
    """

    shown = Signal(bool)
    hitOpened = Signal(str, int, list)

    def __init__(self, service: MemoryService, box: QLineEdit, parent: QWidget) -> None:
        super().__init__(parent)
        self.service = service
        self.box = box
        self._task: asyncio.Task[None] | None = None
        self.results = SearchResults(self)
        self.results.setDragEnabled(True)
        self.results.setWordWrap(True)
        self.results.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.note = QLabel(self, wordWrap=True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.note)
        layout.addWidget(self.results, 1)
        self._timer = QTimer(self, singleShot=True, interval=SEARCH_DELAY_MS)
        self._timer.timeout.connect(self.run)
        box.textChanged.connect(self._on_text)
        box.returnPressed.connect(self.run)
        self.results.itemActivated.connect(self._open_hit)

    def _on_text(self, text: str) -> None:
        if text.strip():
            self._timer.start()
        else:
            self._timer.stop()
            self.shown.emit(False)

    def run(self) -> None:
        """Search for what the box holds now (a search still running is cancelled)."""
        self._timer.stop()  # Enter before the pause: this is that search
        query = self.box.text().strip()
        if not query or self.service.memory is None:
            return
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._task = self.service.run(self._search(query), "llmos-explorer-search")

    async def _search(self, query: str) -> None:
        memory = self.service.memory
        assert memory is not None
        self.shown.emit(True)
        self.note.setText("Searching...")
        try:
            result = await memory.search(query, k=SEARCH_HITS)
        except Exception as error:  # a backend that stopped answering mid-search, a bad index
            log.warning("memory search failed: %s", error)
            self.results.clear()
            self.note.setText(f"The search failed: {error}")
            return
        terms = query_terms(query)
        colour = current_theme().warn.name()
        self.results.clear()
        for hit in result.hits:
            self.results.add_hit(hit, terms, colour)
        how = {"hybrid": "words and meaning", "text": "words", "vector": "meaning"}.get(
            result.mode, result.mode
        )
        found = f"{len(result.hits)} chunks" if result.hits else "Nothing found"
        note = f" ({result.note})" if result.note else ""
        self.note.setText(f"{found} for “{query}”, matched by {how}{note}.")
        if result.hits:
            self.results.setCurrentRow(0)

    def _open_hit(self, item: QListWidgetItem) -> None:
        self._timer.stop()  # a search still due would take the page back from the document
        hit: SearchHit = item.data(HIT_ROLE)
        self.hitOpened.emit(hit.document.path, hit.chunk.ordinal, query_terms(self.box.text()))


class SearchResults(QListWidget):
    """Search hits with the query's words marked; hits drag out as their chunks."""

    def add_hit(self, hit: SearchHit, terms: list[str], colour: str) -> None:
        """List ``hit``, its name and snippet with ``terms`` marked in ``colour``."""
        item = QListWidgetItem(self)
        item.setData(HIT_ROLE, hit)
        item.setIcon(icon(kind_of(hit.document)[1]))
        label = QLabel(wordWrap=True, textFormat=Qt.TextFormat.RichText)
        label.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        label.setContentsMargins(4, 3, 4, 3)
        muted = current_theme().muted.name()
        label.setText(
            f"<b>{highlight(hit.document.name, terms, colour)}</b> "
            f"<span style='color:{muted}'>chunk {hit.chunk.ordinal + 1} of "
            f"{hit.document.chunks} · {hit.document.folder}</span><br>"
            f"{highlight(snippet(hit.chunk.text, terms), terms, colour)}"
        )
        label.setFixedWidth(self.label_width())
        item.setSizeHint(label.sizeHint())
        self.setItemWidget(item, label)
        item.setToolTip(f"{hit.document.path}\nEnter opens it at this chunk.")

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        for row in range(self.count()):  # the hits' texts wrap to the new width
            item = self.item(row)
            label = self.itemWidget(item)
            if label is not None:
                label.setFixedWidth(self.label_width())
                item.setSizeHint(label.sizeHint())

    def label_width(self) -> int:
        return max(200, self.viewport().width() - 36)

    def mimeData(self, items: list[QListWidgetItem]) -> object:  # type: ignore[override]
        hits = [item.data(HIT_ROLE) for item in items]
        return memory_mime([MemoryRef(h.document.path, (h.chunk.id,)) for h in hits])
