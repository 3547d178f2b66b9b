"""The memory explorer: long-term memory as a file explorer, filled by dragging files onto it.

Folders on the left, the current folder's documents on the right, the selected document's
chunks below; a search box runs memory's hybrid search. Files dropped from a file manager are
ingested into the folder under the cursor, with a progress panel; documents and chunks dragged
out onto an agent window are paged into its context RAM. Everything that touches LanceDB runs
as a task; the views are updated in place when memory changes, here or in another process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from PySide6.QtCore import QModelIndex, QPoint, Qt, QTimer, Signal
from PySide6.QtGui import (
    QAction,
    QDrag,
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QKeySequence,
    QResizeEvent,
    QStandardItem,
    QStandardItemModel,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QMessageBox,
    QSplitter,
    QStackedWidget,
    QTableView,
    QToolBar,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from llmos.desktop.ingest_panel import IngestPanel
from llmos.desktop.memory_details import DetailsPane
from llmos.desktop.memory_drag import MemoryRef, dropped_files, memory_mime, memory_refs
from llmos.desktop.memory_models import (
    COLUMN_SAMPLES,
    NAME,
    PATH_ROLE,
    SORT_ROLE,
    Entry,
    FoldersFirst,
    ListingModel,
    highlight,
    kind_of,
    query_terms,
    snippet,
)
from llmos.desktop.memory_service import MemoryService, MemoryUnavailable
from llmos.desktop.ram_bar import human_bytes, human_tokens
from llmos.desktop.theme import current_theme, icon
from llmos.memory import paths
from llmos.memory.errors import MemoryStoreError
from llmos.memory.paths import MemoryPathError
from llmos.memory.records import Document, SearchHit

log = logging.getLogger(__name__)

SEARCH_DELAY_MS = 250
SEARCH_HITS = 20
UNDO_KEPT = 50
HIT_ROLE = Qt.ItemDataRole.UserRole + 10
PANEL_ROWS = 4
"""Files the ingest panel lists without scrolling (it shares the dock with the explorer)."""


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


class SearchResults(QListWidget):
    """Search hits with the query's words marked; hits drag out as their chunks."""

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


class MemoryExplorer(QWidget):
    """Browse, search and fill long-term memory.

    Signals:
        message(str, str): something to tell the user (title, text) that is not an error of
            a single file.
    """

    message = Signal(str, str)

    def __init__(self, service: MemoryService, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("MemoryExplorer")
        self.service = service
        self.folder = paths.DOCUMENTS
        self._undo: list[tuple[str, Callable[[], Awaitable[object]]]] = []
        self._loading: asyncio.Task[None] | None = None
        self._reload = False
        self._details_task: asyncio.Task[None] | None = None
        self._search_task: asyncio.Task[None] | None = None
        self._expanded: set[str] = {paths.ROOT}
        self._pending_open: tuple[str, int | None, list[str]] | None = None
        self.delete_box: QMessageBox | None = None
        self.input_dialog: QInputDialog | None = None
        self._make_widgets()
        self._make_actions()
        self._wire()
        self._on_state()

    # -- building ------------------------------------------------------------------------------

    def _make_widgets(self) -> None:
        self.search = QLineEdit(
            self, placeholderText="Search memory (Ctrl+F)", clearButtonEnabled=True
        )
        self.search.addAction(icon("search"), QLineEdit.ActionPosition.LeadingPosition)
        self.toolbar = QToolBar(self)
        self.toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
        self.tree_model = QStandardItemModel(self)
        self.tree = FolderTree(self)
        self.tree.setModel(self.tree_model)
        self.listing_model = ListingModel(self)
        self.listing = Listing(self.listing_model, self)
        self.results = SearchResults(self)
        self.results.setDragEnabled(True)
        self.results.setWordWrap(True)
        self.results.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.results_note = QLabel(self, wordWrap=True)
        results_box = QWidget(self)
        results_layout = QVBoxLayout(results_box)
        results_layout.setContentsMargins(0, 0, 0, 0)
        results_layout.addWidget(self.results_note)
        results_layout.addWidget(self.results, 1)
        self.stack = QStackedWidget(self)
        self.stack.addWidget(self.listing)
        self.stack.addWidget(results_box)
        self.details = DetailsPane(self)
        self.panel = IngestPanel(self)
        self.panel.hide()
        rows = self.panel.table.verticalHeader().defaultSectionSize()
        header = self.panel.table.horizontalHeader().sizeHint().height()
        self.panel.table.setMinimumHeight(header + 2 * rows)
        self.panel.table.setMaximumHeight(header + PANEL_ROWS * rows + 4)
        self.summary = QLabel(self, wordWrap=True)
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.location = QLabel(self)

        top = QSplitter(Qt.Orientation.Horizontal, self, childrenCollapsible=False)
        top.addWidget(self.tree)
        top.addWidget(self.stack)
        top.setStretchFactor(1, 1)
        top.setSizes([170, 500])
        self.split = QSplitter(Qt.Orientation.Vertical, self, childrenCollapsible=False)
        self.split.addWidget(top)
        self.split.addWidget(self.details)
        self.split.setSizes([320, 360])
        bar = QHBoxLayout()
        bar.addWidget(self.search, 1)
        bar.addWidget(self.toolbar)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(4)
        layout.addLayout(bar)
        layout.addWidget(self.location)
        layout.addWidget(self.split, 1)
        layout.addWidget(self.panel)
        layout.addWidget(self.summary)

    def _make_actions(self) -> None:
        def action(text: str, icon_name: str, keys: str, slot: Callable[[], None]) -> QAction:
            made = QAction(icon(icon_name), text, self)
            if keys:
                made.setShortcut(QKeySequence(keys))
                shown = QKeySequence(keys).toString(QKeySequence.SequenceFormat.NativeText)
                made.setToolTip(f"{text} ({shown})")
            made.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            made.triggered.connect(slot)
            self.addAction(made)
            return made

        self.add_files_action = action("Add files...", "add-files", "Ctrl+O", self.add_files)
        self.add_folder_action = action(
            "Add a folder...", "folder", "Ctrl+Shift+O", self.add_folder
        )
        self.new_folder_action = action("New folder", "folder-new", "Ctrl+Shift+N", self.new_folder)
        self.rename_action = action("Rename", "rename", "F2", self.rename_selected)
        self.delete_action = action("Delete", "delete", "Del", self.delete_selected)
        self.undo_action = action("Undo", "undo", "Ctrl+Z", self.undo)
        self.refresh_action = action("Refresh", "refresh", "F5", self.reload)
        self.find_action = action("Search", "search", "Ctrl+F", self._focus_search)
        for made in (self.add_files_action, self.new_folder_action, self.rename_action,
                     self.delete_action, self.undo_action):  # fmt: skip
            self.toolbar.addAction(made)
        self.undo_action.setEnabled(False)
        self.listing.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.listing.customContextMenuRequested.connect(self._listing_menu)

    def _wire(self) -> None:
        service = self.service
        service.stateChanged.connect(self._on_state)
        service.changed.connect(self.reload)
        service.ingestStarted.connect(self._on_ingest_started)
        service.ingestWaiting.connect(self._on_ingest_waiting)
        service.ingestProgress.connect(self.panel.update_progress)
        service.ingestOutcome.connect(self.panel.add_outcome)
        service.ingestFinished.connect(self.panel.finish)
        service.ingestFailed.connect(self._on_ingest_failed)
        self.panel.cancelRequested.connect(service.cancel_ingest)
        self.panel.dismissed.connect(self.panel.hide)
        self.panel.outcomeActivated.connect(lambda path: self.open_document(path))
        self.tree.selectionModel().currentChanged.connect(self._on_tree_current)
        self.tree.expanded.connect(lambda i: self._expanded.add(i.data(PATH_ROLE)))
        self.tree.collapsed.connect(lambda i: self._expanded.discard(i.data(PATH_ROLE)))
        self.listing.selectionModel().currentChanged.connect(self._on_listing_current)
        self.listing.activated.connect(self._on_listing_activated)
        for view in (self.tree, self.listing):
            view.filesDropped.connect(self.ingest)
            view.refsDropped.connect(self._move_refs)
        self._search_timer = QTimer(self, singleShot=True, interval=SEARCH_DELAY_MS)
        self._search_timer.timeout.connect(self._run_search)
        self.search.textChanged.connect(self._on_search_text)
        self.search.returnPressed.connect(self._run_search)
        self.results.itemActivated.connect(self._open_hit)

    # -- showing --------------------------------------------------------------------------------

    def showEvent(self, event: object) -> None:
        # Memory opens the first time anyone looks at it.
        if self.service.phase in ("closed", "failed"):
            self.service.start()
        elif self.service.phase == "ready" and not self.listing_model.entries:
            self.reload()

    def _on_state(self) -> None:
        service = self.service
        theme = current_theme()
        enabled = service.phase == "ready"
        for made in (self.new_folder_action, self.rename_action, self.delete_action):
            made.setEnabled(enabled)
        if service.phase != "ready":
            colour = theme.bad.name() if service.phase == "failed" else theme.muted.name()
            text = service.message or "Long-term memory opens when you look at it."
            self.summary.setText(f"<span style='color:{colour}'>{text}</span>")
            return
        stats = service.stats
        if stats is None:
            self.summary.setText("Counting...")
        else:
            vectors = (
                f"vectors by {stats.embedder}"
                + (f" ({stats.indexing:,} documents waiting)" if stats.indexing else "")
                if stats.embedder
                else f"full text only ({service.message})"
            )
            if service.indexing_error:
                vectors = (f"<span style='color:{theme.bad.name()}'>vectors stopped: "
                           f"{service.indexing_error}</span>")  # fmt: skip
            self.summary.setText(
                f"{stats.documents:,} documents · {stats.chunks:,} chunks · "
                f"{human_tokens(stats.tokens)} tokens · {human_bytes(stats.disk_bytes)} on disk"
                f"<br>{vectors} · text index {stats.text_index}"
            )
        if not self.listing_model.entries and self.isVisible():
            self.reload()

    def reload(self) -> None:
        """Read the folder tree and the current folder again (coalesced)."""
        if self.service.memory is None:
            return
        if self._loading is not None and not self._loading.done():
            self._reload = True
            return
        self._loading = self._run(self._load(), "llmos-explorer-load")

    async def _load(self) -> None:
        memory = self.service.memory
        if memory is None:
            return
        store = memory.store
        wanted = self.folder
        folders = await store.folders()
        folder = wanted
        if folder != paths.ROOT and folder not in folders:
            folder = paths.DOCUMENTS if paths.DOCUMENTS in folders else paths.ROOT
        documents = await store.documents(folder, recursive=False)
        if self.folder != wanted:  # the user went elsewhere meanwhile: show that instead
            self._loading = None
            self.reload()
            return
        self.folder = folder
        self._fill_tree(folders)
        children = [f for f in folders if paths.parent(f) == folder]
        entries = [Entry(f) for f in children] + [
            Entry(d.path, d, self._state_of(d)) for d in documents
        ]
        self.listing.folder = self.folder
        self.listing_model.set_entries(entries)
        self.location.setText(f"<b>{self.folder}</b> · {len(documents):,} documents")
        shown = self.details.document
        if shown is not None and self._pending_open is None:
            still = next((d for d in documents if d.id == shown.id), None)
            if still is None:
                self.details.clear()
            elif still.rev != shown.rev:
                self._show(still)  # new content: from the top
            elif still != shown:
                self.details.update_document(still, self._state_of(still))  # same chunks
        if self._pending_open is not None:
            path, focus, terms = self._pending_open
            self._pending_open = None
            if self.listing_model.row_of(path) is None:
                self.message.emit("Memory", f"'{path}' is no longer in memory.")
            else:
                await self._open(path, focus, terms)
        if self._reload:
            self._reload = False
            self._loading = None
            self.reload()

    def _fill_tree(self, folders: list[str]) -> None:
        model = self.tree_model
        current = self.folder
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
            self._select_in_tree(self.folder)  # the same tree: keep it as it is
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
                self.tree.expand(item.index())
        self._select_in_tree(self.folder)

    def _select_in_tree(self, folder: str) -> None:
        """Mark the folder shown (without navigating: it is shown already)."""
        model = self.tree_model
        found = model.match(
            model.index(0, 0), PATH_ROLE, folder, 1,
            Qt.MatchFlag.MatchExactly | Qt.MatchFlag.MatchRecursive,
        )  # fmt: skip
        if not found or self.tree.currentIndex() == found[0]:
            return
        parent = found[0].parent()
        while parent.isValid():
            self.tree.expand(parent)
            parent = parent.parent()
        selection = self.tree.selectionModel()
        selection.blockSignals(True)
        try:
            self.tree.setCurrentIndex(found[0])
        finally:
            selection.blockSignals(False)
        self.tree.viewport().update()

    def _on_tree_current(self, current: QModelIndex, _previous: QModelIndex) -> None:
        folder = current.data(PATH_ROLE)
        if folder and folder != self.folder:
            self.folder = folder
            self.details.clear()
            self.search.clear()
            self.reload()

    def _on_listing_current(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if not current.isValid():
            return
        entry = self.listing.entry_at(current)
        if entry.document is not None:
            self._show(entry.document)

    def _show(
        self, document: Document, focus: int | None = None, terms: list[str] | None = None
    ) -> None:
        """Show ``document`` in the details pane (a newer request wins over an older one)."""
        if self._details_task is not None and not self._details_task.done():
            self._details_task.cancel()
        self._details_task = self._run(
            self._show_details(document, focus, terms), "llmos-explorer-doc"
        )

    def _on_listing_activated(self, index: QModelIndex) -> None:
        entry = self.listing.entry_at(index)
        if entry.is_folder:
            self.show_folder(entry.path)

    def show_folder(self, folder: str) -> None:
        self.folder = folder
        self.details.clear()
        self.reload()

    async def _show_details(
        self, document: Document, focus: int | None = None, terms: list[str] | None = None
    ) -> None:
        memory = self.service.memory
        if memory is None:
            return
        chunks = await memory.store.chunks(document)
        self.details.show_document(
            document, chunks, self._state_of(document), focus=focus, terms=terms
        )

    def _state_of(self, document: Document) -> str:
        memory = self.service.memory
        state = document.state(memory.embedder_name if memory else None)
        if self.service.indexing_error and state == "indexing":
            return "no vectors"
        return state

    def open_document(
        self, path: str, chunk: int | None = None, terms: list[str] | None = None
    ) -> None:
        """Show the document at ``path`` in its folder, at chunk ordinal ``chunk``."""
        self._run(self._open(path, chunk, terms or []), "llmos-explorer-open")

    async def _open(self, path: str, chunk: int | None, terms: list[str]) -> None:
        memory = self.service.memory
        if memory is None:
            return
        folder = paths.parent(path)
        if folder != self.folder or self.listing_model.row_of(path) is None:
            # Show its folder first; the load that does so opens it (or says it is gone).
            self.folder = folder
            self._pending_open = (path, chunk, terms)
            self.search.blockSignals(True)
            self.search.clear()
            self.search.blockSignals(False)
            self.stack.setCurrentIndex(0)
            self.reload()
            return
        self.stack.setCurrentIndex(0)
        try:
            document = await memory.store.document(path)
        except MemoryStoreError:
            self.message.emit("Memory", f"'{path}' is no longer in memory.")
            return
        selection = self.listing.selectionModel()
        selection.blockSignals(True)  # this document is shown here, at its chunk
        try:
            self.listing.select_path(path)
        finally:
            selection.blockSignals(False)
        self._show(document, chunk, terms)

    # -- searching ------------------------------------------------------------------------------

    def _focus_search(self) -> None:
        self.search.setFocus()
        self.search.selectAll()

    def _on_search_text(self, text: str) -> None:
        if text.strip():
            self._search_timer.start()
        else:
            self._search_timer.stop()
            self.stack.setCurrentIndex(0)

    def _run_search(self) -> None:
        query = self.search.text().strip()
        if not query or self.service.memory is None:
            return
        if self._search_task is not None and not self._search_task.done():
            self._search_task.cancel()
        self._search_task = self._run(self._search(query), "llmos-explorer-search")

    async def _search(self, query: str) -> None:
        memory = self.service.memory
        assert memory is not None
        self.stack.setCurrentIndex(1)
        self.results_note.setText("Searching...")
        try:
            result = await memory.search(query, k=SEARCH_HITS)
        except Exception as error:  # a backend that stopped answering mid-search, a bad index
            log.warning("memory search failed: %s", error)
            self.results.clear()
            self.results_note.setText(f"The search failed: {error}")
            return
        terms = query_terms(query)
        colour = current_theme().warn.name()
        self.results.clear()
        for hit in result.hits:
            self._add_hit(hit, terms, colour)
        how = {"hybrid": "words and meaning", "text": "words", "vector": "meaning"}.get(
            result.mode, result.mode
        )
        found = f"{len(result.hits)} chunks" if result.hits else "Nothing found"
        note = f" ({result.note})" if result.note else ""
        self.results_note.setText(f"{found} for “{query}”, matched by {how}{note}.")
        if result.hits:
            self.results.setCurrentRow(0)

    def _add_hit(self, hit: SearchHit, terms: list[str], colour: str) -> None:
        item = QListWidgetItem(self.results)
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
        label.setFixedWidth(self.results.label_width())
        item.setSizeHint(label.sizeHint())
        self.results.setItemWidget(item, label)
        item.setToolTip(f"{hit.document.path}\nEnter opens it at this chunk.")

    def _open_hit(self, item: QListWidgetItem) -> None:
        hit: SearchHit = item.data(HIT_ROLE)
        self.open_document(hit.document.path, hit.chunk.ordinal, query_terms(self.search.text()))

    # -- changing memory ------------------------------------------------------------------------

    def ingest(self, files: list[Path], folder: str | None = None) -> None:
        """Add files and folders from the computer to ``folder`` (the one shown by default)."""
        self.service.ingest(files, folder or self.folder)

    def _on_ingest_started(self, title: str) -> None:
        self.panel.start(title)
        self.panel.show()

    def _on_ingest_waiting(self, why: str) -> None:
        self.panel.show()
        self.panel.title.setText(why)

    def _on_ingest_failed(self, why: str) -> None:
        self.panel.show()
        self.panel.fail(why)

    def add_files(self) -> None:
        dialog = QFileDialog(self, "Add files to memory")
        dialog.setFileMode(QFileDialog.FileMode.ExistingFiles)
        dialog.filesSelected.connect(lambda files: self.ingest([Path(f) for f in files]))
        dialog.open()

    def add_folder(self) -> None:
        dialog = QFileDialog(self, "Add a folder to memory")
        dialog.setFileMode(QFileDialog.FileMode.Directory)
        dialog.filesSelected.connect(lambda files: self.ingest([Path(f) for f in files]))
        dialog.open()

    def new_folder(self) -> None:
        self._ask("New folder", f"Name of the new folder in {self.folder}:", "New folder",
                  lambda name: self._do(self._make_folder(name)))  # fmt: skip

    async def _make_folder(self, name: str) -> None:
        memory = await self.service.ready()
        target = paths.join(self.folder, name)
        await self._refuse_existing(target)
        made = await memory.mkdir(target)
        self._remember(f"new folder {paths.name(made)}", lambda: self._remove_if_empty(made))

    async def _remove_if_empty(self, folder: str) -> None:
        memory = await self.service.ready()
        if await memory.store.documents(folder) or await memory.store.folders(folder):
            raise MemoryStoreError(
                f"'{paths.name(folder)}' is no longer empty, so undo leaves it; delete it "
                "yourself if you mean to (Del asks first)."
            )
        await memory.remove(folder)

    async def _refuse_existing(self, target: str) -> None:
        memory = await self.service.ready()
        if await memory.store.has_document(target) or await memory.store.is_folder(target):
            raise MemoryStoreError(
                f"'{paths.name(target)}' already exists in {paths.parent(target)}."
            )

    def rename_selected(self) -> None:
        entries = self.listing.selected_entries()
        if len(entries) != 1:
            return
        entry = entries[0]
        folder = paths.parent(entry.path)
        self._ask(
            "Rename",
            f"New name for {entry.name}:",
            entry.name,
            lambda name: self._do(self._rename(entry.path, paths.join(folder, name))),
        )

    async def _rename(self, source: str, target: str) -> None:
        if target != source:
            await self._refuse_existing(target)  # a rename never moves into a folder
            await self._move(source, target)

    def _move_refs(self, refs: list[MemoryRef], folder: str) -> None:
        moves = [ref.path for ref in refs if not ref.chunks and paths.parent(ref.path) != folder]
        for source in moves:
            self._do(self._move(source, folder))

    async def _move(self, source: str, target: str) -> None:
        memory = await self.service.ready()
        moved = await memory.move(source, target)
        if moved != source:
            self._remember(f"move of {paths.name(source)}", lambda: memory.move(moved, source))

    def delete_selected(self) -> None:
        entries = self.listing.selected_entries()
        if not entries:
            return
        documents = [e for e in entries if e.document is not None]
        folders = [e for e in entries if e.is_folder]
        chunks = sum(e.document.chunks for e in documents if e.document)
        what = entries[0].name if len(entries) == 1 else f"{len(entries)} items"
        details = []
        if documents:
            details.append(f"{len(documents)} document(s) with {chunks:,} chunks and their vectors")
        if folders:
            details.append(f"{len(folders)} folder(s) with everything in them")
        box = QMessageBox(
            QMessageBox.Icon.Warning,
            "Delete from memory",
            f"Delete {what} from long-term memory?",
            QMessageBox.StandardButton.Cancel,
            self,
        )
        box.setInformativeText(
            f"This removes {' and '.join(details)}. It cannot be undone: the files on your "
            "computer stay, and can be added again."
        )
        delete = box.addButton("Delete", QMessageBox.ButtonRole.DestructiveRole)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.finished.connect(
            lambda _: (
                box.clickedButton() is delete and self._do(self._delete([e.path for e in entries]))
            )
        )
        box.open()
        self.delete_box = box

    async def _delete(self, targets: list[str]) -> None:
        memory = await self.service.ready()
        for path in targets:
            await memory.remove(path)

    def undo(self) -> None:
        if not self._undo:
            return
        _, action = self._undo.pop()
        self._update_undo()
        self._do(action())

    def _remember(self, what: str, undo: Callable[[], Awaitable[object]]) -> None:
        self._undo = [*self._undo[-UNDO_KEPT + 1 :], (what, undo)]
        self._update_undo()

    def _update_undo(self) -> None:
        self.undo_action.setEnabled(bool(self._undo))
        self.undo_action.setText(f"Undo {self._undo[-1][0]}" if self._undo else "Undo")

    def _do(self, change: Awaitable[object]) -> None:
        """Run a change to memory; say plainly if it was refused, and show the result."""

        async def run() -> None:
            if self.service.ingesting:
                self.location.setText(
                    f"{self.location.text()} · waiting for the ingest to finish..."
                )
            try:
                await change
            except (MemoryStoreError, MemoryPathError, MemoryUnavailable) as error:
                self.message.emit("Memory", str(error))
            except Exception as error:  # LanceDB refused: say so rather than nothing
                log.exception("a change to memory failed")
                self.message.emit("Memory", f"Memory could not make that change: {error}")
            finally:
                self.service.notify_changed()

        self._run(run(), "llmos-explorer-change")

    def _ask(self, title: str, label: str, text: str, then: Callable[[str], None]) -> None:
        dialog = QInputDialog(self)
        dialog.setWindowTitle(title)
        dialog.setLabelText(label)
        dialog.setTextValue(text)
        dialog.textValueSelected.connect(lambda value: value.strip() and then(value.strip()))
        dialog.open()
        self.input_dialog = dialog

    def _listing_menu(self, point: QPoint) -> None:
        menu = QMenu(self)
        menu.addActions([self.rename_action, self.delete_action])
        menu.addSeparator()
        menu.addActions([self.new_folder_action, self.add_files_action, self.add_folder_action])
        menu.popup(self.listing.viewport().mapToGlobal(point))

    def _run(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None] | None:
        return self.service.run(coro, name)
