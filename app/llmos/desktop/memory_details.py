"""The memory explorer's details pane: a document's metadata, its chunk map, its chunks.

The chunk map draws the document as a disk draws sectors: one cell per chunk, in order, as
wide as the chunk is long; click a cell to read that chunk. The chunk list can be dragged
onto an agent window to page those chunks in.
"""

from __future__ import annotations

import math
from html import escape

from PySide6.QtCore import QModelIndex, QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QMouseEvent, QPainter, QPaintEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QLabel,
    QListView,
    QSplitter,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from llmos.desktop.ingest_outcomes import count
from llmos.desktop.memory_drag import MemoryRef, memory_mime
from llmos.desktop.memory_models import (
    ChunkListModel,
    chunk_position,
    highlight,
    kind_of,
    when,
)
from llmos.desktop.ram_bar import human_bytes
from llmos.desktop.theme import current_theme
from llmos.memory.records import Chunk, Document

MAP_ROWS = 2
MAP_ROW_HEIGHT = 10
MAP_GAP = 1
MIN_CELL = 2


class ChunkMap(QWidget):
    """One cell per chunk, in order, sized by tokens; the current chunk is marked.

    A document of more chunks than fit (cells are at least MIN_CELL pixels wide) is drawn
    with one cell per run of consecutive chunks; clicking a cell opens the run's first.

    Signals:
        chunkClicked(int): the row of the chunk clicked.
    """

    chunkClicked = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._tokens: list[int] = []
        self._current = -1
        self._marked: set[int] = set()
        self._cells: list[QRect] = []
        self._runs: list[range] = []
        """The chunk rows each cell stands for."""
        self.setMouseTracking(True)
        self.setMinimumHeight(MAP_ROWS * (MAP_ROW_HEIGHT + MAP_GAP))

    def sizeHint(self) -> QSize:
        return QSize(300, MAP_ROWS * (MAP_ROW_HEIGHT + MAP_GAP))

    def set_chunks(self, tokens: list[int]) -> None:
        self._tokens = tokens
        self._current = -1
        self._marked = set()
        self._layout()
        self.update()

    def set_current(self, row: int) -> None:
        self._current = row
        self.update()

    def set_marked(self, rows: set[int]) -> None:
        """Chunks to mark (search hits)."""
        self._marked = rows
        self.update()

    def _layout(self) -> None:
        """Cells flow left to right over MAP_ROWS rows, widths proportional to tokens."""
        self._cells, self._runs = [], []
        count = len(self._tokens)
        if not count:
            return
        width = max(1, self.width())
        fits = max(1, (width // (MIN_CELL + MAP_GAP)) * MAP_ROWS)
        per = max(1, math.ceil(count / fits))
        self._runs = [range(i, min(count, i + per)) for i in range(0, count, per)]
        weights = [sum(max(1, self._tokens[r]) for r in run) for run in self._runs]
        total = sum(weights)
        span = width * MAP_ROWS - MAP_GAP * len(self._runs)
        x, line = 0.0, 0
        for weight in weights:
            cell = max(float(MIN_CELL), span * weight / total)
            if x + cell > width and x > 0 and line < MAP_ROWS - 1:
                x, line = 0.0, line + 1
            top = line * (MAP_ROW_HEIGHT + MAP_GAP)
            self._cells.append(QRect(int(x), top, max(1, int(cell)), MAP_ROW_HEIGHT))
            x += cell + MAP_GAP

    def resizeEvent(self, event: object) -> None:
        self._layout()

    def paintEvent(self, event: QPaintEvent) -> None:
        theme = current_theme()
        plain = QColor(theme.segments["paged_in"])  # a copy: the theme's colour is shared
        plain.setAlphaF(0.55)
        painter = QPainter(self)
        for cell, run in zip(self._cells, self._runs, strict=True):
            if self._current in run:
                color = theme.accent
            elif any(row in self._marked for row in run):
                color = theme.warn
            else:
                color = plain
            painter.fillRect(cell, color)

    def _run_at(self, event: QMouseEvent) -> range | None:
        point = event.position().toPoint()
        return next(
            (
                run
                for cell, run in zip(self._cells, self._runs, strict=True)
                if cell.contains(point)
            ),
            None,
        )

    def mousePressEvent(self, event: QMouseEvent) -> None:
        run = self._run_at(event)
        if run is not None:
            self.chunkClicked.emit(run.start)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        run = self._run_at(event)
        if run is None:
            self.setToolTip("")
            return
        tokens = sum(self._tokens[row] for row in run)
        which = f"Chunk {run.start + 1}" if len(run) == 1 else f"Chunks {run.start + 1}-{run.stop}"
        self.setToolTip(f"{which} of {len(self._tokens)}: {tokens} tokens")


class ChunkList(QListView):
    """The chunks in order; selected chunks drag out as memory."""

    def __init__(self, model: ChunkListModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setModel(model)
        self.chunk_model = model
        self.document_path = ""
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setDragEnabled(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.setUniformItemSizes(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setWordWrap(False)
        self.setTextElideMode(Qt.TextElideMode.ElideRight)

    def startDrag(self, actions: Qt.DropAction) -> None:
        rows = sorted(index.row() for index in self.selectionModel().selectedRows())
        if not rows or not self.document_path:
            return
        ids = tuple(self.chunk_model.chunks[row].id for row in rows)
        from PySide6.QtGui import QDrag

        drag = QDrag(self)
        drag.setMimeData(memory_mime([MemoryRef(self.document_path, ids)]))
        drag.exec(Qt.DropAction.CopyAction)


class DetailsPane(QWidget):
    """What the selected document is, and what it was cut into."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document: Document | None = None
        self._terms: list[str] = []
        self.title = QLabel(self, textFormat=Qt.TextFormat.RichText, wordWrap=True)
        self.meta = QLabel(self, textFormat=Qt.TextFormat.RichText, wordWrap=True)
        self.meta.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.map = ChunkMap(self)
        self.chunk_model = ChunkListModel(self)
        self.chunks = ChunkList(self.chunk_model, self)
        self.text = QTextBrowser(self, openLinks=False)
        self.text.setPlaceholderText("Select a chunk to read it.")
        self.split = split = QSplitter(Qt.Orientation.Vertical, self, childrenCollapsible=False)
        split.addWidget(self.chunks)
        split.addWidget(self.text)
        split.setSizes([110, 240])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(4)
        layout.addWidget(self.title)
        layout.addWidget(self.meta)
        layout.addWidget(self.map)
        layout.addWidget(split, 1)
        layout.addStretch(0)
        self.map.chunkClicked.connect(self.show_chunk)
        self.chunks.selectionModel().currentChanged.connect(
            lambda current, _previous: self._show_text(current.row())
        )
        self.clear()

    def clear(self, text: str = "Select a document to see its chunks.") -> None:
        self.document = None
        self.title.setText(f"<span style='color:{current_theme().muted.name()}'>{text}</span>")
        self.meta.clear()
        self.chunks.document_path = ""
        self.chunk_model.set_chunks([])
        self.map.set_chunks([])
        self.text.clear()
        self.map.hide()  # nothing to show: just the hint
        self.split.hide()

    def update_document(self, document: Document, state: str) -> None:
        """The same content with new metadata (a rename, vectors made): the chunk stays."""
        self.document = document
        self._describe(document, state)

    def show_document(
        self,
        document: Document,
        chunks: list[Chunk],
        state: str,
        *,
        focus: int | None = None,
        terms: list[str] | None = None,
    ) -> None:
        """Show ``document`` with its ``chunks``; open chunk ``focus`` (an ordinal) if given."""
        self.document = document
        self._terms = terms or []
        self._describe(document, state)
        self.map.show()
        self.split.show()
        self.chunk_model.set_chunks(chunks)
        self.map.set_chunks([chunk.tokens for chunk in chunks])
        self.map.set_marked(set())
        row = 0
        if focus is not None:
            row = next((i for i, c in enumerate(chunks) if c.ordinal == focus), 0)
            self.map.set_marked({row})
        if chunks:
            self.show_chunk(row)
        else:
            self.text.clear()

    def _describe(self, document: Document, state: str) -> None:
        name, _ = kind_of(document)
        self.title.setText(f"<b>{escape(document.name)}</b>")
        muted = current_theme().muted.name()
        facts = [
            name,
            human_bytes(document.size),
            count(document.chunks, "chunk"),
            f"about {document.tokens:,} tokens",
            state,
            f"updated {when(document.updated)}",
        ]
        source = f"<br>from {escape(document.source)}" if document.source else ""
        self.meta.setText(
            f"<span style='color:{muted}'>{escape(document.path)}<br>"
            f"{' · '.join(escape(f) for f in facts)}{source}</span>"
        )
        self.chunks.document_path = document.path

    def show_chunk(self, row: int) -> None:
        index = self.chunk_model.index(row, 0)
        self.chunks.setCurrentIndex(index)
        self.chunks.scrollTo(index, QAbstractItemView.ScrollHint.PositionAtCenter)
        self._show_text(row)

    @property
    def current_chunk(self) -> int:
        """The row of the chunk shown (-1 when none)."""
        index: QModelIndex = self.chunks.currentIndex()
        return index.row() if index.isValid() else -1

    def _show_text(self, row: int) -> None:
        if not 0 <= row < len(self.chunk_model.chunks):
            self.text.clear()
            return
        chunk = self.chunk_model.chunks[row]
        self.map.set_current(row)
        theme = current_theme()
        body = highlight(chunk.text, self._terms, theme.warn.name()).replace("\n", "<br>")
        total = len(self.chunk_model.chunks)
        self.text.setHtml(
            f"<p style='color:{theme.muted.name()}'>Chunk {row + 1} of {total} · "
            f"{chunk.tokens} tokens · {escape(chunk_position(chunk))}</p><p>{body}</p>"
        )
