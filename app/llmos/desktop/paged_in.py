"""Paging memory into an agent window's process: the drop, the offer, and the strip of pages.

A document or chunks dragged from the memory explorer onto an agent window become a memory
page in that process's context RAM (:meth:`Kernel.page_in`). When they do not fit, the user is
told by how much and offered the chunks that best match the conversation instead. The strip
under the window's header lists the pages the process holds; each can be dropped again.
:class:`PagedIn` ties these together for one window.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent
from PySide6.QtWidgets import QHBoxLayout, QLabel, QMessageBox, QToolButton, QWidget

from llmos.desktop.memory_drag import MemoryRef, memory_refs
from llmos.desktop.memory_service import MemoryService, MemoryUnavailable
from llmos.desktop.ram_bar import human_tokens
from llmos.desktop.theme import icon
from llmos.drivers.base import DriverError
from llmos.kernel.errors import KernelError, PageTooLarge
from llmos.kernel.kernel import Kernel
from llmos.kernel.pages import Page
from llmos.memory import paths
from llmos.memory.errors import MemoryStoreError
from llmos.memory.paging import best_page, page_of

log = logging.getLogger(__name__)

TOO_LARGE_AT = 2
"""Documents whose stored (high-side) token estimate is this many times the room are refused
without being counted."""
CHIPS_SHOWN = 4
"""Pages shown as chips; more are summed up in one "+N more" chip."""
_DRAG_EVENTS = (QEvent.Type.DragEnter, QEvent.Type.DragMove, QEvent.Type.Drop)


class PagedInStrip(QWidget):
    """The memory pages a process holds, as chips with a button to drop each.

    The pages the user put in come first, one chip each; then the pages the kernel's pager
    brought in for the current turn, one chip per document (it brings chunks), drawn apart.

    Signals:
        pageOut(str): the user dropped the page with this key.
    """

    pageOut = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("PagedInStrip")
        self._row = QHBoxLayout(self)
        self._row.setContentsMargins(10, 0, 10, 0)
        self._row.setSpacing(6)
        self.pages: tuple[Page, ...] = ()
        self.chips: list[QWidget] = []
        self.hide()

    def set_pages(self, pages: tuple[Page, ...], costs: dict[str, int]) -> None:
        self.pages = pages
        self.chips = []
        while self._row.count():
            item = self._row.takeAt(0)
            if (widget := item.widget()) is not None:
                widget.deleteLater()
        if not pages:
            self.hide()
            return
        label = QLabel("Paged in:")
        label.setObjectName("PagedInTitle")
        self._row.addWidget(label)
        groups = [[page] for page in pages if not page.by_pager]
        recalled: dict[str, list[Page]] = {}
        for page in pages:
            if page.by_pager:
                recalled.setdefault(page.source, []).append(page)
        groups += recalled.values()
        for group in groups[:CHIPS_SHOWN]:
            chip = self._chip(group, sum(costs.get(page.key, 0) for page in group))
            self.chips.append(chip)
            self._row.addWidget(chip)
        if len(groups) > CHIPS_SHOWN:
            more = QLabel(f"+{len(groups) - CHIPS_SHOWN} more")
            more.setToolTip(
                "\n".join(f"{p.source} ({p.label})" for g in groups[CHIPS_SHOWN:] for p in g)
            )
            self._row.addWidget(more)
        self._row.addStretch(1)
        self.show()

    def _chip(self, pages: list[Page], tokens: int) -> QWidget:
        """A chip for one page of the user's, or for the pager's pages of one document."""
        first = pages[0]
        name = paths.name(first.source)
        by_pager = first.by_pager
        chip = QWidget(objectName="PagerChip" if by_pager else "PageChip")
        chip.setAttribute(Qt.WidgetAttribute.WA_StyledBackground)
        row = QHBoxLayout(chip)
        row.setContentsMargins(6, 1, 2, 1)
        row.setSpacing(2)
        picture = QLabel()
        picture.setPixmap(icon("memory" if by_pager else "page-in").pixmap(14, 14))
        count = f" \u00d7{len(pages)}" if len(pages) > 1 else ""
        text = QLabel(f"{name}{count} · {human_tokens(tokens)} tok")
        parts = "\n".join(page.label for page in pages)
        tip = f"{first.source}\n{parts}\nabout {tokens:,} tokens of context RAM"
        if by_pager:
            tip = (
                "Paged in automatically for this turn: the kernel found it relevant to the "
                f"newest message, and replaces it as the conversation moves on.\n{tip}"
            )
        chip.setToolTip(tip)
        drop = QToolButton(icon=icon("close"), autoRaise=True)
        drop.setToolTip(f"Take {name} out of this process's context RAM")
        drop.setAccessibleName(f"Page out {first.key}")
        keys = [page.key for page in pages]

        def page_out() -> None:
            for key in keys:
                self.pageOut.emit(key)

        drop.clicked.connect(page_out)
        row.addWidget(picture)
        row.addWidget(text)
        row.addWidget(drop)
        return chip


class PageIn:
    """Pages memory refs into one process, asking before it settles for fewer chunks.

    Args:
        tell: shows a problem in the window (its banner).
        run: runs a coroutine as a task the window owns (cancelled when it closes).
    """

    def __init__(
        self,
        parent: QWidget,
        memory: MemoryService,
        tell: Callable[[str], None],
        run: Callable[[Coroutine[Any, Any, None], str], object],
    ) -> None:
        self._parent = parent
        self._memory = memory
        self._tell = tell
        self._run = run
        self.offer: QMessageBox | None = None
        """The open "page in the best chunks instead?" question, if any."""

    async def drop(self, kernel: Kernel, pid: int, refs: list[MemoryRef]) -> None:
        documents = [ref for ref in refs if not ref.folder]
        if not documents:
            self._tell("Folders cannot be paged in: drag documents or chunks onto the window.")
            return
        try:
            memory = await self._memory.ready()
            whole = [ref.path for ref in documents if not ref.chunks]
            estimate = sum([(await memory.store.document(path)).tokens for path in whole])
            room = kernel.page_room(pid, replacing=whole)
            if estimate > TOO_LARGE_AT * room:
                # Far too large: say so from the stored estimate, without reading and
                # counting megabytes of text on the GUI thread.
                budget = kernel.get(pid).budget
                raise PageTooLarge(whole, tokens=estimate, room=room, budget=budget)
            pages = [await page_of(memory, ref.path, ref.chunks) for ref in documents]
            kernel.page_in(pid, pages)
        except PageTooLarge as error:
            self._offer_best(kernel, pid, documents, error)
        except (MemoryUnavailable, MemoryStoreError, KernelError) as error:
            self._tell(str(error))

    def _offer_best(
        self, kernel: Kernel, pid: int, refs: list[MemoryRef], error: PageTooLarge
    ) -> None:
        names = ", ".join(paths.name(ref.path) for ref in refs)
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Too large for the context RAM",
            f"{names} needs about {error.tokens:,} tokens; this process has room for "
            f"{error.room:,}, so it is {error.over_by:,} tokens too large.",
            QMessageBox.StandardButton.Cancel,
            self._parent,
        )
        box.setInformativeText(
            "Page in the chunks that best match the conversation instead? (Or give the process "
            "more context in the settings.)"
        )
        best = box.addButton("Page in the best chunks", QMessageBox.ButtonRole.AcceptRole)
        box.setDefaultButton(best)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        def answered(_result: int) -> None:
            self.offer = None
            if box.clickedButton() is best:
                self._run(self._page_best(kernel, pid, refs), "page-best")

        box.finished.connect(answered)
        box.open()
        self.offer = box

    async def _page_best(self, kernel: Kernel, pid: int, refs: list[MemoryRef]) -> None:
        try:
            process = kernel.get(pid)
            asked = [m for m in process.history if m.get("role") == "user"]
            # The room now (the conversation may have moved on since the question).
            room = kernel.page_room(pid, replacing=[f"{ref.path}#best" for ref in refs])
            memory = await self._memory.ready()
            pages = []
            for ref in refs:
                query = str(asked[-1].get("content", "")) if asked else paths.name(ref.path)
                share = room // len(refs)
                page = await best_page(
                    memory, ref.path, query, share, lambda p: kernel.page_cost(pid, p)
                )
                if page is not None:
                    pages.append(page)
            if not pages:
                self._tell("Not even one chunk fits this process's context RAM.")
                return
            kernel.page_in(pid, pages)
        except (MemoryUnavailable, MemoryStoreError, KernelError, DriverError) as error:
            self._tell(str(error))


class PagedIn(QObject):
    """The memory pages of an agent window's process: memory dragged onto the window (whose
    drag events it takes) or onto a text box it watches is paged in, and :attr:`strip` lists
    the pages, each of which can be paged out again.

    The window sets ``kernel`` and ``pid`` once its process runs. Without a memory service
    (``pager`` is None) memory is refused.

    Args:
        tell: shows a problem in the window (its banner).
        run: runs a coroutine as a task the window owns (cancelled when it closes).
    """

    def __init__(
        self,
        window: QWidget,
        memory: MemoryService | None,
        tell: Callable[[str], None],
        run: Callable[[Coroutine[Any, Any, None], str], object],
    ) -> None:
        super().__init__(window)
        self.kernel: Kernel | None = None
        self.pid: int | None = None
        self._tell = tell
        self._run = run
        self.pager = PageIn(window, memory, tell, run) if memory is not None else None
        self.strip = PagedInStrip()
        self.strip.pageOut.connect(self.page_out)

    def take_drag(self, event: QDragEnterEvent | QDragMoveEvent | QDropEvent) -> None:
        """Accept a drag of memory (if there is memory), and page it in when it is dropped."""
        refs = memory_refs(event.mimeData())
        if self.pager is None or not refs:
            event.ignore()
            return
        event.acceptProposedAction()
        if event.type() == QEvent.Type.Drop:
            self.page_in(refs)

    def watch(self, viewport: QWidget) -> None:
        """Take memory dragged onto ``viewport`` (a text box's), which would paste it as text."""
        viewport.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() in _DRAG_EVENTS:
            assert isinstance(event, QDragEnterEvent | QDragMoveEvent | QDropEvent)
            if memory_refs(event.mimeData()):
                self.take_drag(event)
                return True
        return super().eventFilter(watched, event)

    def page_in(self, refs: list[MemoryRef]) -> None:
        """Page documents or chunks of memory into the process's context RAM."""
        if self.pager is None:
            return
        if self.kernel is None or self.pid is None:
            self._tell("The process has not started yet; drop the document again soon.")
            return
        self._run(self.pager.drop(self.kernel, self.pid, refs), "page-in")

    def page_out(self, key: str) -> None:
        """Take a memory page out of the process's context RAM."""
        if self.kernel is not None and self.pid is not None:
            try:
                self.kernel.page_out(self.pid, key)
            except KernelError as error:  # the process ended meanwhile
                self._tell(str(error))

    def show_pages(self, pid: int) -> None:
        """Show the pages process ``pid`` holds now (if it is this window's)."""
        if pid != self.pid or self.kernel is None:
            return
        pages = tuple(self.kernel.get(pid).paged_in)
        costs = {page.key: self.kernel.page_cost(pid, page) for page in pages}
        self.strip.set_pages(pages, costs)
