"""An agent app's window: one process, its conversation, and its context RAM.

The window spawns its process when it opens (or restores a saved one, see
:mod:`~llmos.desktop.restore`) and kills it when the user closes it (asking first while an
answer is being generated); when the desktop closes, the window lets go of its process for
the kernel to hibernate. Every failure a user can meet (no backend, a model that is not
installed, a message too large for the context RAM, a broken stream) shows as a banner in
plain words, and the text typed is never lost. Sending and answering are in
:mod:`~llmos.desktop.agent_turns`; the banner, the message box and the memory pages in
:mod:`~llmos.desktop.banner`, :mod:`~llmos.desktop.message_bar` and
:mod:`~llmos.desktop.paged_in`; a restored process that cannot run in
:mod:`~llmos.desktop.held_process`; the header line in :mod:`~llmos.desktop.agent_header`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QMdiSubWindow, QMessageBox, QVBoxLayout, QWidget

from llmos.apps.manifest import AppManifest
from llmos.desktop.agent_header import ProcessHeader
from llmos.desktop.agent_turns import AgentTurns
from llmos.desktop.banner import Banner
from llmos.desktop.bridge import KernelBridge
from llmos.desktop.chat_view import ChatView
from llmos.desktop.consent_prompt import ConsentBar
from llmos.desktop.context_view import ContextView
from llmos.desktop.held_process import REVIVE, HeldProcess
from llmos.desktop.memory_drag import MemoryRef
from llmos.desktop.memory_service import MemoryService
from llmos.desktop.message_bar import MessageBar
from llmos.desktop.owned_tasks import OwnedTasks
from llmos.desktop.paged_in import PagedIn
from llmos.desktop.restore import show_conversation
from llmos.desktop.session import DesktopSession, KernelNotRunning
from llmos.desktop.theme import app_icon_of
from llmos.drivers.base import DriverError
from llmos.kernel.errors import KernelError
from llmos.kernel.hibernation import HIBERNATED
from llmos.kernel.kernel import Kernel
from llmos.kernel.process import Process
from llmos.kernel.sessions import SavedProcess

Starter = Callable[[Kernel], Awaitable[Process]]
"""How a window gets its process from the kernel (spawn, restore, reopen)."""


class AgentWindow(AgentTurns, QWidget):
    """The window of one process of ``manifest``.

    Signals:
        processStarted(int): the process is running (its pid).
        settingsRequested(): the user asked for the settings (from an error banner).
        generatingChanged(bool): an answer started or ended.
    """

    processStarted = Signal(int)
    settingsRequested = Signal()
    generatingChanged = Signal(bool)

    def __init__(
        self,
        session: DesktopSession,
        bridge: KernelBridge,
        manifest: AppManifest,
        parent: QWidget | None = None,
        *,
        memory: MemoryService | None = None,
    ) -> None:
        super().__init__(parent)
        self.session = session
        self.manifest = manifest
        self.memory = memory
        self.pid: int | None = None
        self.kernel: Kernel | None = None
        self._bridge = bridge
        self._tasks = OwnedTasks("window")
        self._turn: asyncio.Task[Any] | None = None
        self._force_close = False
        self._detached = False
        self._starter: Starter = self._spawn_new
        self._place: dict[str, Any] | None = None
        self._asking = False
        self._closed = False
        self.context_view: ContextView | None = None
        """What is in the process's context RAM (made when first asked for)."""
        self.setWindowTitle(manifest.name)
        self.setWindowIcon(app_icon_of(manifest))
        self._build()
        self.setAcceptDrops(True)  # images always; memory when there is some
        bridge.tokens.connect(self._on_tokens)
        bridge.usageChanged.connect(self._on_usage)
        bridge.pagesChanged.connect(self.pages.show_pages)
        bridge.exited.connect(self._on_exited)
        bridge.stateChanged.connect(self.held.check)

    # -- layout --------------------------------------------------------------------------------

    def _build(self) -> None:
        self.header = ProcessHeader()
        self.model_label, self.meter = self.header.model_label, self.header.meter
        self.context_action = self.header.context_action
        self.context_button = self.header.context_button
        self.context_action.triggered.connect(self.show_context)
        self.addAction(self.context_action)

        self.banner = Banner()
        self.banner.retryRequested.connect(self._retry)
        self.banner.settingsRequested.connect(self.settingsRequested)
        self.held = HeldProcess(self.banner, self._run, self)
        """Why a restored process cannot run, Choose model..., Retry."""
        self.held.revived.connect(self._on_usage)
        self.banner_text = self.banner.text
        self.retry_button = self.banner.retry_button
        self.settings_button = self.banner.settings_button
        self._unsent = ""
        """A message that got no answer, kept for Retry."""
        self.consent = ConsentBar(self)
        """Questions before sensitive syscalls of this process (or of those it started)."""

        self.pages = PagedIn(self, self.memory, self._show_problem, self._run)
        self.pager, self.paged_in = self.pages.pager, self.pages.strip

        self.chat = ChatView()
        self.chat.setAcceptDrops(False)  # a memory drop is the window's, not the text's
        self.message_bar = MessageBar(self.manifest)
        self.message_bar.sendRequested.connect(self.send)
        self.message_bar.stopRequested.connect(self.stop)
        self.message_bar.starterChosen.connect(self._send_text)
        self.starters, self.composer = self.message_bar.starters, self.message_bar.composer
        self.attachments = self.message_bar.attachments
        self.attach_button = self.message_bar.attach_button
        self.send_button = self.message_bar.send_button
        self.stop_button = self.message_bar.stop_button
        self.attachments.problem.connect(self._show_problem)
        # Drags arrive at the box's viewport; the filter installed last (images) sees them first.
        self.pages.watch(self.composer.viewport())
        self.attachments.watch(self.composer.viewport())

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(self.header)
        layout.addWidget(self.banner)
        layout.addWidget(self.consent)
        layout.addWidget(self.paged_in)
        layout.addWidget(self.chat, 1)
        layout.addWidget(self.message_bar)
        self._set_generating(False)
        self.setFocusProxy(self.composer)

    # -- the process -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start this window's process (call once the window is on screen): a new one, or the
        one given to :meth:`resume`."""
        self._run(self._begin(), "start")

    def resume(self, saved: SavedProcess, *, reopen: bool = False) -> None:
        """Show ``saved``'s conversation now and bring the process back once the kernel runs
        (as a new process with ``reopen``); then call :meth:`start`."""
        show_conversation(self.chat, saved, self.manifest.name)
        if self.chat.messages:
            self.starters.hide()
        if reopen:
            self._starter = lambda kernel: kernel.reopen(saved)
        else:
            self._starter = lambda kernel: kernel.restore(saved)
            self.setWindowTitle(f"{self.manifest.name} \u00b7 {saved.pid}")

    async def _spawn_new(self, kernel: Kernel) -> Process:
        # A model chosen in the settings is a wish to honour or explain, not a hint.
        chosen = kernel.default_model if self.session.settings.model else None
        return await kernel.spawn(self.manifest, model=chosen)

    async def _begin(self) -> None:
        self.model_label.setText("Waiting for the model engine...")
        self.banner.hide()
        try:
            kernel = await self.session.kernel_ready()
            if self._closed:
                return
            self.model_label.setText("Loading the model...")
            process = await self._starter(kernel)
        except (KernelNotRunning, DriverError, KernelError) as error:
            if not self._closed:
                self.model_label.setText("Not running")
                self._show_problem(str(error), retry="spawn")
            return
        if self._closed:  # closed while the model loaded: the process has no window
            if not self._detached:
                kernel.kill(process.pid)
            return
        self.kernel, self.pid = kernel, process.pid
        self.pages.kernel, self.pages.pid = kernel, process.pid
        self.setWindowTitle(f"{self.manifest.name} \u00b7 {process.pid}")
        self._on_usage(process.pid)
        self.context_action.setEnabled(True)
        self.send_button.setEnabled(True)
        self.held.kernel, self.held.pid = kernel, process.pid
        if process.held:
            self.held.show(process)
        self.processStarted.emit(process.pid)
        frame = self.parentWidget()
        area = frame.mdiArea() if isinstance(frame, QMdiSubWindow) else None
        if area is None or area.activeSubWindow() is frame:  # windows restored together
            self.composer.setFocus()

    def set_place(self, place: dict[str, Any]) -> None:
        """Where the window is on the desktop (kept with the process's session)."""
        self._place = place
        if self.kernel is not None and self.pid is not None and self.kernel.get(self.pid).alive:
            self.kernel.set_window(self.pid, place)

    def _show_problem(self, text: str, *, retry: str | None = None) -> None:
        self.held.problem(text, retry=retry)

    def _retry(self, action: str) -> None:
        if action == "spawn":
            self.start()
        elif action == REVIVE:
            self.held.revive()
        elif action == "send":
            text, self._unsent = self._unsent, ""
            if self.composer.toPlainText() == text:
                self.send()
            elif text:
                self._send_text(text)  # the draft typed meanwhile stays in the composer

    # -- kernel events ---------------------------------------------------------------------------

    def _on_tokens(self, pid: int, text: str) -> None:
        if pid == self.pid and self.generating:
            self.chat.append_stream(text)

    def _on_usage(self, pid: int) -> None:
        if pid != self.pid or self.kernel is None:
            return
        self.header.show_process(self.kernel.get(pid), self.kernel.driver)

    def show_context(self) -> None:
        """Show what is in the process's context RAM (a window of its own, kept up to date)."""
        if self.kernel is None or self.pid is None:
            return
        if self.context_view is None:
            self.context_view = ContextView(self.kernel, self.pid, self._bridge, self)
        self.context_view.show()
        self.context_view.raise_()
        self.context_view.activateWindow()

    # -- memory pages ----------------------------------------------------------------------------

    def page_in(self, refs: list[MemoryRef]) -> None:
        """Page documents or chunks of memory into this process's context RAM."""
        self.pages.page_in(refs)

    def page_out(self, key: str) -> None:
        """Take a memory page out of this process's context RAM."""
        self.pages.page_out(key)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if not self.attachments.take_drag(event):
            self.pages.take_drag(event)

    def dropEvent(self, event: QDropEvent) -> None:
        if not self.attachments.take_drag(event):
            self.pages.take_drag(event)

    def _on_exited(self, pid: int, reason: str) -> None:
        if pid != self.pid:
            return
        if reason == "killed":
            # Killed elsewhere (the task manager): the window goes with its process.
            self.close_without_asking()
        elif reason == HIBERNATED and self.kernel is not None:
            # Put to sleep elsewhere: the window goes, and does not come back by itself at the
            # next start (the kernel writes this before the session closes).
            self.kernel.set_window(pid, {**(self._place or {}), "open": False})
            self.detach()

    # -- closing ---------------------------------------------------------------------------------

    def closeEvent(self, event: QCloseEvent) -> None:
        if self._closed:
            event.accept()
            return
        if self.generating and not self._force_close:
            event.ignore()
            self._confirm_close()
            return
        self._closed = True
        self.consent.deny()
        self._bridge.tokens.disconnect(self._on_tokens)
        self._bridge.usageChanged.disconnect(self._on_usage)
        self._bridge.pagesChanged.disconnect(self.pages.show_pages)
        self._bridge.exited.disconnect(self._on_exited)
        self._bridge.stateChanged.disconnect(self.held.check)
        self._tasks.cancel()
        if self.context_view is not None:
            self.context_view.close()
        if self.kernel is not None and self.pid is not None and not self._detached:
            process = self.kernel.get(self.pid)
            if process.alive:
                self.kernel.kill(self.pid)
        event.accept()

    def close_without_asking(self) -> None:
        """Close now, even mid-answer, and end the process."""
        self._force_close = True
        self._close_frame()

    def detach(self) -> None:
        """Close now without ending the process (the desktop is closing: the kernel hibernates
        it, an answer being generated stops and what came of it is kept)."""
        self._detached = True
        self.close_without_asking()

    def _close_frame(self) -> None:
        # On the desktop the window sits in an MDI frame: closing the frame closes both.
        frame = self.parentWidget()
        (frame if isinstance(frame, QMdiSubWindow) else self).close()

    def _confirm_close(self) -> None:
        if self._asking:
            return
        self._asking = True
        box = QMessageBox(
            QMessageBox.Icon.Question,
            f"Close {self.manifest.name}?",
            f"{self.manifest.name} is still answering. Closing the window stops the answer "
            "and ends the process.",
            QMessageBox.StandardButton.Close | QMessageBox.StandardButton.Cancel,
            self,
        )
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        def finished(answer: int) -> None:
            self._asking = False
            if answer == QMessageBox.StandardButton.Close:
                self.close_without_asking()

        box.finished.connect(finished)
        box.open()

    # -- small parts -----------------------------------------------------------------------------

    def _set_generating(self, generating: bool) -> None:
        # Until the process runs there is nothing to send to (typed text waits in the box).
        self.message_bar.set_generating(generating, can_send=self.pid is not None)
        self.generatingChanged.emit(generating)

    def _run(self, coro: Coroutine[Any, Any, None], what: str) -> asyncio.Task[None]:
        return self._tasks.run(coro, what)
