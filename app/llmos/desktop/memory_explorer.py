"""The memory explorer: long-term memory as a file explorer, filled by dragging files onto it.

Folders on the left, the current folder's documents on the right, the selected document's
chunks below; a search box runs memory's hybrid search. Files dropped from a file manager are
ingested into the folder under the cursor, with a progress panel; documents and chunks dragged
out onto an agent window are paged into its context RAM. Everything that touches LanceDB runs
as a task; the views are updated in place when memory changes, here or in another process.
The views are in :mod:`~llmos.desktop.memory_views`, the search in
:mod:`~llmos.desktop.memory_search`, and the changes to memory in
:mod:`~llmos.desktop.memory_edits`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from PySide6.QtCore import QModelIndex, QPoint, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMenu,
    QMessageBox,
    QSplitter,
    QStackedWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from llmos.desktop.ingest_outcomes import count
from llmos.desktop.ingest_panel import IngestPanel
from llmos.desktop.memory_details import DetailsPane
from llmos.desktop.memory_edits import MemoryEdits
from llmos.desktop.memory_models import PATH_ROLE, Entry, ListingModel
from llmos.desktop.memory_search import SearchPage
from llmos.desktop.memory_service import MemoryService
from llmos.desktop.memory_views import FolderTree, Listing, UsageSummary
from llmos.desktop.theme import icon
from llmos.memory import paths
from llmos.memory.errors import MemoryStoreError
from llmos.memory.records import Document

PANEL_ROWS = 4
"""Files the ingest panel lists without scrolling (it shares the dock with the explorer)."""


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
        self._loading: asyncio.Task[None] | None = None
        self._reload = False
        self._details_task: asyncio.Task[None] | None = None
        self._pending_open: tuple[str, int | None, list[str]] | None = None
        self._make_widgets()
        self.edits = MemoryEdits(service, self.listing, self.location, lambda: self.folder, self)
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
        self.tree = FolderTree(self)
        self.listing_model = ListingModel(self)
        self.listing = Listing(self.listing_model, self)
        self.search_page = SearchPage(self.service, self.search, self)
        self.results, self.results_note = self.search_page.results, self.search_page.note
        self.stack = QStackedWidget(self)
        self.stack.addWidget(self.listing)
        self.stack.addWidget(self.search_page)
        self.details = DetailsPane(self)
        self.panel = IngestPanel(self)
        self.panel.hide()
        rows = self.panel.table.verticalHeader().defaultSectionSize()
        header = self.panel.table.horizontalHeader().sizeHint().height()
        self.panel.table.setMinimumHeight(header + 2 * rows)
        self.panel.table.setMaximumHeight(header + PANEL_ROWS * rows + 4)
        self.summary = UsageSummary(self)
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

        edits = self.edits
        self.add_files_action = action("Add files...", "add-files", "Ctrl+O", edits.add_files)
        self.add_folder_action = action(
            "Add a folder...", "folder", "Ctrl+Shift+O", edits.add_folder
        )
        self.new_folder_action = action(
            "New folder", "folder-new", "Ctrl+Shift+N", edits.new_folder
        )
        self.rename_action = action("Rename", "rename", "F2", edits.rename_selected)
        self.delete_action = action("Delete", "delete", "Del", edits.delete_selected)
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
        self.listing.selectionModel().currentChanged.connect(self._on_listing_current)
        self.listing.activated.connect(self._on_listing_activated)
        for view in (self.tree, self.listing):
            view.filesDropped.connect(self.ingest)
            view.refsDropped.connect(self.edits.move_refs)
        self.edits.message.connect(self.message)
        self.edits.undoChanged.connect(self._show_undo)
        self.search_page.shown.connect(lambda shown: self.stack.setCurrentIndex(int(shown)))
        self.search_page.hitOpened.connect(self.open_document)

    # -- showing --------------------------------------------------------------------------------

    def showEvent(self, event: object) -> None:
        # Memory opens the first time anyone looks at it.
        if self.service.phase in ("closed", "failed"):
            self.service.start()
        elif self.service.phase == "ready" and not self.listing_model.entries:
            self.reload()

    def _on_state(self) -> None:
        ready = self.service.phase == "ready"
        for made in (self.new_folder_action, self.rename_action, self.delete_action):
            made.setEnabled(ready)
        self.summary.show_state(self.service)
        if ready and not self.listing_model.entries and self.isVisible():
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
        self.tree.show_folders(folders, self.folder)
        children = [f for f in folders if paths.parent(f) == folder]
        entries = [Entry(f) for f in children] + [
            Entry(d.path, d, self._state_of(d)) for d in documents
        ]
        self.listing.folder = self.folder
        self.listing_model.set_entries(entries)
        counts = [count(len(documents), "document")]
        if children:
            counts.insert(0, count(len(children), "folder"))
        self.location.setText(f"<b>{self.folder}</b> · {' · '.join(counts)}")
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

    def undo(self) -> None:
        """Undo the latest new folder, rename or move."""
        self.edits.undo()

    def _show_undo(self, what: str) -> None:
        self.undo_action.setEnabled(bool(what))
        self.undo_action.setText(f"Undo {what}" if what else "Undo")

    @property
    def input_dialog(self) -> QInputDialog | None:
        """The last name asked for (a new folder's, a new name)."""
        return self.edits.input_dialog

    @property
    def delete_box(self) -> QMessageBox | None:
        """The last "delete?" question."""
        return self.edits.delete_box

    def _listing_menu(self, point: QPoint) -> None:
        menu = QMenu(self)
        menu.addActions([self.rename_action, self.delete_action])
        menu.addSeparator()
        menu.addActions([self.new_folder_action, self.add_files_action, self.add_folder_action])
        menu.popup(self.listing.viewport().mapToGlobal(point))

    def _run(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None] | None:
        return self.service.run(coro, name)
