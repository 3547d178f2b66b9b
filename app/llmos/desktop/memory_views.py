"""The memory explorer's views: the folder tree, a folder's listing, and the usage summary.

The tree and the listing take drops and say what was dropped where, as signals up to the
explorer, which decides what happens: files from a file manager are ingested, documents and
folders of memory are moved. The listing's entries drag out as memory. Kept apart from the
explorer so that it holds the loading and the wiring, and this how memory is shown.
"""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPoint, Qt, Signal
from PySide6.QtGui import (
    QDrag,
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QPainter,
    QPaintEvent,
    QPalette,
    QResizeEvent,
    QStandardItem,
    QStandardItemModel,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QTableView,
    QTreeView,
    QWidget,
)

from llmos.desktop.ingest_outcomes import count
from llmos.desktop.memory_drag import MemoryRef, dropped_files, memory_mime, memory_refs
from llmos.desktop.memory_models import (
    COLUMN_SAMPLES,
    NAME,
    PATH_ROLE,
    SORT_ROLE,
    STATE,
    UPDATED,
    Entry,
    FoldersFirst,
    ListingModel,
    kind_of,
)
from llmos.desktop.memory_service import MemoryService
from llmos.desktop.ram_bar import human_bytes, human_tokens
from llmos.desktop.theme import current_theme, icon
from llmos.memory import paths

EMPTY_HINT = "Drop files or folders here to add them to memory (or Ctrl+O)."
NARROW_WITHOUT_DATE = 440
NARROW_WITHOUT_STATE = 360
"""Listing widths (pixels) below which the date, then the state column, are hidden."""


class FolderTree(QTreeView):
    """Memory's folders. Files dropped on a folder are added there; documents and folders
    dropped on it are moved there.

    Signals:
        filesDropped(list, str): local paths, and the memory folder they were dropped on.
        refsDropped(list, str): memory refs, and the folder they were dropped on.
    """

    filesDropped = Signal(list, str)
    refsDropped = Signal(list, str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setHeaderHidden(True)
        self.setAcceptDrops(True)
        self.setDropIndicatorShown(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DropOnly)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.folders = QStandardItemModel(self)
        self.setModel(self.folders)
        self._expanded: set[str] = {paths.ROOT}
        self.expanded.connect(lambda i: self._expanded.add(i.data(PATH_ROLE)))
        self.collapsed.connect(lambda i: self._expanded.discard(i.data(PATH_ROLE)))

    def show_folders(self, folders: list[str], current: str) -> None:
        """Show ``folders`` (sorted), with ``current`` marked and opened to."""
        model = self.folders
        known = [model.item(0)] if model.rowCount() else []
        existing = set()
        stack = list(known)
        while stack:
            item = stack.pop()
            if item is None:
                continue
            existing.add(item.data(PATH_ROLE))
            stack.extend(item.child(r) for r in range(item.rowCount()))
        if existing == {paths.ROOT, *folders}:
            self._select(current)  # the same tree: keep it as it is
            return
        model.clear()
        root = QStandardItem(icon("memory"), "Memory")
        root.setData(paths.ROOT, PATH_ROLE)
        items = {paths.ROOT: root}
        for folder in folders:  # sorted: parents come first
            item = QStandardItem(icon("folder"), paths.name(folder))
            item.setData(folder, PATH_ROLE)
            item.setToolTip(folder)
            items.get(paths.parent(folder), root).appendRow(item)
            items[folder] = item
        model.appendRow(root)
        for path, item in items.items():
            if path in self._expanded or paths.is_within(current, path):
                self.expand(item.index())
        self._select(current)

    def _select(self, folder: str) -> None:
        """Mark the folder shown (without navigating: it is shown already)."""
        model = self.folders
        found = model.match(
            model.index(0, 0), PATH_ROLE, folder, 1,
            Qt.MatchFlag.MatchExactly | Qt.MatchFlag.MatchRecursive,
        )  # fmt: skip
        if not found or self.currentIndex() == found[0]:
            return
        parent = found[0].parent()
        while parent.isValid():
            self.expand(parent)
            parent = parent.parent()
        selection = self.selectionModel()
        selection.blockSignals(True)
        try:
            self.setCurrentIndex(found[0])
        finally:
            selection.blockSignals(False)
        self.viewport().update()

    def folder_at(self, point: QPoint) -> str | None:
        index = self.indexAt(point)
        return index.data(PATH_ROLE) if index.isValid() else None

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        _accept_drag(event)

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        if self.folder_at(event.position().toPoint()) is None:
            event.ignore()
            return
        _accept_drag(event)

    def dropEvent(self, event: QDropEvent) -> None:
        folder = self.folder_at(event.position().toPoint())
        if folder is not None and _emit_drop(event, folder, self.filesDropped, self.refsDropped):
            event.acceptProposedAction()
        else:
            event.ignore()


class Listing(QTableView):
    """The current folder's entries; they drag out as memory, and take drops like the tree.

    Signals:
        filesDropped(list, str), refsDropped(list, str): as :class:`FolderTree`'s; the folder
            is the folder row under the cursor, or the one shown.
    """

    filesDropped = Signal(list, str)
    refsDropped = Signal(list, str)

    def __init__(self, model: ListingModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.listing = model
        self.folder = paths.DOCUMENTS
        self.proxy = FoldersFirst(self, sortRole=SORT_ROLE, dynamicSortFilter=True)
        self.proxy.setSourceModel(model)
        self.setModel(self.proxy)
        self.setSortingEnabled(True)
        self.sortByColumn(NAME, Qt.SortOrder.AscendingOrder)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setDragEnabled(True)
        self.setAcceptDrops(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragDrop)
        self.setShowGrid(False)
        self.setWordWrap(False)
        self.verticalHeader().hide()
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(False)
        header.setSectionResizeMode(NAME, QHeaderView.ResizeMode.Stretch)
        metrics = self.fontMetrics()
        for column, sample in COLUMN_SAMPLES.items():
            header.resizeSection(column, metrics.horizontalAdvance(sample) + 24)
        self.verticalHeader().setDefaultSectionSize(metrics.height() + 8)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        # In a narrow dock the name comes first: the date, then the state, make way for it.
        width = self.viewport().width()
        self.setColumnHidden(UPDATED, width < NARROW_WITHOUT_DATE)
        self.setColumnHidden(STATE, width < NARROW_WITHOUT_STATE)

    def paintEvent(self, event: QPaintEvent) -> None:
        super().paintEvent(event)
        if self.listing.rowCount():
            return
        painter = QPainter(self.viewport())
        color = self.palette().color(QPalette.ColorRole.PlaceholderText)
        painter.setPen(color)
        painter.drawText(
            self.viewport().rect().adjusted(12, 12, -12, -12),
            Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
            EMPTY_HINT,
        )

    def entry_at(self, index: QModelIndex) -> Entry:
        return self.listing.entry(self.proxy.mapToSource(index).row())

    def selected_entries(self) -> list[Entry]:
        rows = self.selectionModel().selectedRows()
        return [self.entry_at(index) for index in sorted(rows, key=lambda i: i.row())]

    def select_path(self, path: str) -> bool:
        row = self.listing.row_of(path)
        if row is None:
            return False
        index = self.proxy.mapFromSource(self.listing.index(row, 0))
        self.setCurrentIndex(index)
        self.scrollTo(index)
        return True

    def startDrag(self, actions: Qt.DropAction) -> None:
        entries = self.selected_entries()
        if not entries:
            return
        drag = QDrag(self)
        drag.setMimeData(memory_mime([MemoryRef(e.path, folder=e.is_folder) for e in entries]))
        drag.setPixmap(icon(kind_of(entries[0].document)[1] if entries[0].document else "folder")
                       .pixmap(32, 32))  # fmt: skip
        drag.exec(Qt.DropAction.CopyAction | Qt.DropAction.MoveAction, Qt.DropAction.CopyAction)

    def _target(self, point: QPoint) -> str:
        index = self.indexAt(point)
        if index.isValid():
            entry = self.entry_at(index)
            if entry.is_folder:
                return entry.path
        return self.folder

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        _accept_drag(event)

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        _accept_drag(event)

    def dropEvent(self, event: QDropEvent) -> None:
        folder = self._target(event.position().toPoint())
        if _emit_drop(event, folder, self.filesDropped, self.refsDropped):
            event.acceptProposedAction()
        else:
            event.ignore()


def _accept_drag(event: QDragEnterEvent | QDragMoveEvent) -> None:
    """Files from the computer, or documents and folders of memory (chunks cannot move)."""
    mime = event.mimeData()
    refs = memory_refs(mime)
    if dropped_files(mime) or (refs and not any(ref.chunks for ref in refs)):
        event.acceptProposedAction()
    else:
        event.ignore()


def _emit_drop(event: QDropEvent, folder: str, files: Signal, refs: Signal) -> bool:
    mime = event.mimeData()
    if dropped := dropped_files(mime):
        files.emit(dropped, folder)
        return True
    if moved := memory_refs(mime):
        refs.emit(moved, folder)
        return True
    return False


class UsageSummary(QLabel):
    """What memory holds (documents, chunks, tokens, disk) and how its vectors are doing; or,
    while it is not open, why."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, wordWrap=True)
        self.setTextFormat(Qt.TextFormat.RichText)

    def show_state(self, service: MemoryService) -> None:
        theme = current_theme()
        if service.phase != "ready":
            colour = theme.bad.name() if service.phase == "failed" else theme.muted.name()
            text = service.message or "Long-term memory opens when you look at it."
            self.setText(f"<span style='color:{colour}'>{text}</span>")
            return
        stats = service.stats
        if stats is None:
            self.setText("Counting...")
            return
        vectors = (
            f"vectors by {stats.embedder}"
            + (f" ({count(stats.indexing, 'document')} waiting)" if stats.indexing else "")
            if stats.embedder
            else f"full text only ({service.message})"
        )
        if service.indexing_error:
            vectors = (f"<span style='color:{theme.bad.name()}'>vectors stopped: "
                       f"{service.indexing_error}</span>")  # fmt: skip
        self.setText(
            f"{count(stats.documents, 'document')} · {count(stats.chunks, 'chunk')} · "
            f"{human_tokens(stats.tokens)} tokens · {human_bytes(stats.disk_bytes)} on disk"
            f"<br>{vectors} · text index {stats.text_index}"
        )
