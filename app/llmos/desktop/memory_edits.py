"""Changes the explorer makes to memory: files added, new folder, rename, move, delete, undo.

Files chosen in a file dialog are ingested into the folder shown. The other changes run as
tasks of the memory service, after any ingest that is running; one that memory refuses (a
name taken, a folder no longer empty) is said in plain words, never as a traceback, and what
can be undone is kept, newest last. Kept apart from the explorer, which shows memory, so that
this holds what changes it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog, QInputDialog, QLabel, QMessageBox, QWidget

from llmos.desktop.memory_drag import MemoryRef
from llmos.desktop.memory_service import MemoryService, MemoryUnavailable
from llmos.desktop.memory_views import Listing
from llmos.memory import paths
from llmos.memory.errors import MemoryStoreError
from llmos.memory.paths import MemoryPathError

log = logging.getLogger(__name__)

UNDO_KEPT = 50


class MemoryEdits(QObject):
    """The explorer's changes to memory, on the selected entries of ``listing`` or in the
    folder ``folder()`` shows; its questions are dialogs of ``parent``.

    Signals:
        message(str, str): a change was refused or failed (title, text).
        undoChanged(str): what Undo would undo now ("" when nothing).
    """

    message = Signal(str, str)
    undoChanged = Signal(str)

    def __init__(
        self,
        service: MemoryService,
        listing: Listing,
        location: QLabel,
        folder: Callable[[], str],
        parent: QWidget,
    ) -> None:
        super().__init__(parent)
        self.service = service
        self._parent = parent
        self._listing = listing
        self._location = location
        self._folder = folder
        self._undo: list[tuple[str, Callable[[], Awaitable[object]]]] = []
        self.delete_box: QMessageBox | None = None
        """The last "delete?" question asked."""
        self.input_dialog: QInputDialog | None = None
        """The last name asked for (a new folder's, a new name)."""

    def add_files(self) -> None:
        dialog = QFileDialog(self._parent, "Add files to memory")
        dialog.setFileMode(QFileDialog.FileMode.ExistingFiles)
        dialog.filesSelected.connect(self._add)
        dialog.open()

    def add_folder(self) -> None:
        dialog = QFileDialog(self._parent, "Add a folder to memory")
        dialog.setFileMode(QFileDialog.FileMode.Directory)
        dialog.filesSelected.connect(self._add)
        dialog.open()

    def _add(self, files: list[str]) -> None:
        self.service.ingest([Path(f) for f in files], self._folder())

    def new_folder(self) -> None:
        folder = self._folder()
        self._ask("New folder", f"Name of the new folder in {folder}:", "New folder",
                  lambda name: self._do(self._make_folder(name)))  # fmt: skip

    async def _make_folder(self, name: str) -> None:
        memory = await self.service.ready()
        target = paths.join(self._folder(), name)
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
        entries = self._listing.selected_entries()
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

    def move_refs(self, refs: list[MemoryRef], folder: str) -> None:
        """Move the documents and folders of ``refs`` into ``folder`` (chunks stay)."""
        moves = [ref.path for ref in refs if not ref.chunks and paths.parent(ref.path) != folder]
        for source in moves:
            self._do(self._move(source, folder))

    async def _move(self, source: str, target: str) -> None:
        memory = await self.service.ready()
        moved = await memory.move(source, target)
        if moved != source:
            self._remember(f"move of {paths.name(source)}", lambda: memory.move(moved, source))

    def delete_selected(self) -> None:
        entries = self._listing.selected_entries()
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
            self._parent,
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
        """Undo the latest change that can be undone."""
        if not self._undo:
            return
        _, action = self._undo.pop()
        self._update_undo()
        self._do(action())

    def _remember(self, what: str, undo: Callable[[], Awaitable[object]]) -> None:
        self._undo = [*self._undo[-UNDO_KEPT + 1 :], (what, undo)]
        self._update_undo()

    def _update_undo(self) -> None:
        self.undoChanged.emit(self._undo[-1][0] if self._undo else "")

    def _do(self, change: Awaitable[object]) -> None:
        """Run a change to memory; say plainly if it was refused, and show the result."""

        async def run() -> None:
            if self.service.ingesting:
                self._location.setText(
                    f"{self._location.text()} · waiting for the ingest to finish..."
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

        self.service.run(run(), "llmos-explorer-change")

    def _ask(self, title: str, label: str, text: str, then: Callable[[str], None]) -> None:
        dialog = QInputDialog(self._parent)
        dialog.setWindowTitle(title)
        dialog.setLabelText(label)
        dialog.setTextValue(text)
        dialog.textValueSelected.connect(lambda value: value.strip() and then(value.strip()))
        dialog.open()
        self.input_dialog = dialog
