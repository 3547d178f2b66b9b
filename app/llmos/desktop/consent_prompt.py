"""Asking the user before a process makes a sensitive syscall, without blocking anything.

The kernel's :class:`~llmos.kernel.consent.ConsentBook` awaits :class:`DesktopConsent`, which
puts the question in a :class:`ConsentBar` of the agent window of the process asking (or of
the process that started it; failing both, in a small window of its own) and waits for the
button the user presses. Questions queue, one shown at a time; a window that closes, or a
process that ends, answers Deny.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QCloseEvent, QKeyEvent
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from llmos.apps.permissions import SYSCALLS
from llmos.desktop.session import DesktopSession
from llmos.desktop.theme import icon
from llmos.kernel.consent import Consent, ConsentRequest
from llmos.kernel.errors import NoSuchProcess

Waiting = tuple[ConsentRequest, "asyncio.Future[Consent]"]


class ConsentBar(QFrame):
    """Questions waiting for the user's answer, the oldest shown (hidden while none wait).

    Esc answers Deny while the bar has the focus; it takes the focus when it appears in the
    window the user is working in, and gives it back once answered.

    Signals:
        settled(): no question is waiting any more.
        alwaysAllowed(str, str): the user allowed an app a permission for good (app id,
            permission); the same questions waiting elsewhere need no answer.
    """

    settled = Signal()
    alwaysAllowed = Signal(str, str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, objectName="ConsentBar")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.icon = QLabel()
        self.icon.setPixmap(icon("shield").pixmap(22, 22))
        # Plain text: the detail may hold anything (a file name with "<b>" in it).
        self.text = QLabel(wordWrap=True, textFormat=Qt.TextFormat.PlainText)
        self.text.setObjectName("ConsentQuestion")
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.text.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        font = self.text.font()
        font.setBold(True)
        self.text.setFont(font)
        self.detail = QLabel(wordWrap=True, textFormat=Qt.TextFormat.PlainText)
        self.detail.setObjectName("ConsentDetail")
        self.more = QLabel(objectName="ConsentMore")
        self.once_button = QPushButton("Allow once")
        self.always_button = QPushButton("Always for this app")
        self.deny_button = QPushButton("Deny", toolTip="Refuse this use (Esc)")
        buttons = QHBoxLayout()
        buttons.addWidget(self.more, 1)
        for button, consent in (
            (self.once_button, Consent.ONCE),
            (self.always_button, Consent.ALWAYS),
            (self.deny_button, Consent.DENY),
        ):
            button.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
            button.clicked.connect(lambda _=False, c=consent: self.answer(c))
            buttons.addWidget(button)
        column = QVBoxLayout()
        column.addWidget(self.text)
        column.addWidget(self.detail)
        column.addLayout(buttons)
        row = QHBoxLayout(self)
        row.setContentsMargins(10, 8, 8, 8)
        row.addWidget(self.icon, 0, Qt.AlignmentFlag.AlignTop)
        row.addLayout(column, 1)
        self.hide()
        self._waiting: list[Waiting] = []
        self._focus_before: QWidget | None = None

    @property
    def requests(self) -> list[ConsentRequest]:
        """The questions waiting, the one shown first."""
        return [request for request, future in self._waiting if not future.done()]

    def ask(self, request: ConsentRequest, future: asyncio.Future[Consent]) -> None:
        """Queue a question; ``future`` gets the answer (a cancelled one is withdrawn)."""
        self._waiting.append((request, future))
        future.add_done_callback(lambda _: self._show_next())
        self._show_next()

    def answer(self, consent: Consent) -> None:
        """Answer the question shown."""
        if self._waiting:
            request, future = self._waiting[0]
            if not future.done():
                future.set_result(consent)
            if consent is Consent.ALWAYS:
                self.alwaysAllowed.emit(request.app_id, request.permission)
                self.allow(request.app_id, request.permission)
        self._show_next()

    def allow(self, app_id: str, permission: str) -> None:
        """Answer Always to the questions waiting of ``app_id`` for ``permission``."""
        for request, future in self._waiting:
            if not future.done() and (request.app_id, request.permission) == (app_id, permission):
                future.set_result(Consent.ALWAYS)
        self._show_next()

    def deny(self, pid: int | None = None) -> None:
        """Answer Deny to every question waiting (of ``pid``, or of any process)."""
        for request, future in self._waiting:
            if not future.done() and pid in (None, request.pid):
                future.set_result(Consent.DENY)
        self._show_next()

    def _show_next(self) -> None:
        self._waiting = [(r, f) for r, f in self._waiting if not f.done()]
        if not self._waiting:
            if not self.isHidden():
                had_focus = self.isAncestorOf(QApplication.focusWidget())
                self.hide()
                if had_focus and self._focus_before is not None:
                    self._focus_before.setFocus()
                self._focus_before = None
                self.settled.emit()
            return
        request = self._waiting[0][0]
        words = SYSCALLS[request.permission].words if request.permission in SYSCALLS else ""
        self.text.setText(f"{request.app_name} (pid {request.pid}) wants to {request.detail}.")
        self.detail.setText(f"Permission {request.permission}" + (f": {words}" if words else ""))
        self.setAccessibleDescription(request.question)
        self.once_button.setToolTip(f"Allow this use only; {request.app_name} asks again next time")
        self.always_button.setToolTip(
            f"Let {request.app_name} {words or request.permission} without asking again "
            "until LLM-OS quits"
        )
        more = len(self._waiting) - 1
        self.more.setText(f"{more} more question{'s' if more > 1 else ''} waiting" if more else "")
        if self.isHidden():
            self.show()
            # In the window the user works in, the answer is a key away (Esc: Deny).
            focus, owner = QApplication.focusWidget(), self.parentWidget()
            if focus is not None and owner is not None and owner.isAncestorOf(focus):
                self._focus_before = focus
                self.deny_button.setFocus()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Escape and self._waiting:
            self.answer(Consent.DENY)
            return
        super().keyPressEvent(event)


class ConsentDialog(QDialog):
    """Questions of processes that have no window (nor a parent with one); closing it denies.

    Signals:
        None (beyond QDialog's).
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Permission needed")
        self.setWindowIcon(icon("shield"))
        self.setModal(False)
        self.bar = ConsentBar(self)
        self.bar.settled.connect(self.hide)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(self.bar)
        self.resize(520, self.sizeHint().height())

    def ask(self, request: ConsentRequest, future: asyncio.Future[Consent]) -> None:
        self.bar.ask(request, future)
        self.show()
        self.raise_()
        self.bar.deny_button.setFocus()

    def reject(self) -> None:  # Esc or the window's close button
        self.bar.deny()
        super().reject()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.bar.deny()
        super().closeEvent(event)


class DesktopConsent:
    """The desktop's consent asker (``kernel.consent.asker``): each question goes to the
    window of the process asking, else of its nearest ancestor with one, else a dialog.

    Args:
        session: the kernel's session (to find a process's parent).
        bars: the consent bar of each process that has a window, by pid.
        parent: the window the dialog for windowless processes belongs to.
    """

    def __init__(
        self,
        session: DesktopSession,
        bars: Callable[[], dict[int, ConsentBar]],
        parent: QWidget,
    ) -> None:
        self._session = session
        self._bars = bars
        self._parent = parent
        self.dialog: ConsentDialog | None = None
        """The window of questions from processes without one (made when first needed)."""
        self._heard: set[int] = set()
        """The bars whose "always" answers are passed on to the others (by id)."""

    async def __call__(self, request: ConsentRequest) -> Consent:
        future: asyncio.Future[Consent] = asyncio.get_running_loop().create_future()
        bar = self.bar_for(request.pid)
        if bar is None:
            if self.dialog is None:
                self.dialog = ConsentDialog(self._parent)
            bar = self.dialog.bar
            self.dialog.ask(request, future)
        else:
            bar.ask(request, future)
        key = id(bar)
        if key not in self._heard:
            self._heard.add(key)
            bar.alwaysAllowed.connect(self._allow_everywhere)
            bar.destroyed.connect(lambda _=None: self._heard.discard(key))
        # A process killed meanwhile cancels this await, which withdraws the question.
        return await future

    def bar_for(self, pid: int) -> ConsentBar | None:
        """The bar of ``pid``'s window, or of its nearest ancestor's."""
        bars, kernel, seen = self._bars(), self._session.kernel, set()
        current: int | None = pid
        while current is not None and current not in seen:
            if current in bars:
                return bars[current]
            seen.add(current)
            try:
                current = kernel.get(current).parent_pid if kernel else None
            except NoSuchProcess:
                current = None
        return None

    def _allow_everywhere(self, app_id: str, permission: str) -> None:
        for bar in self._all_bars():
            bar.allow(app_id, permission)

    def _all_bars(self) -> list[ConsentBar]:
        bars = list(self._bars().values())
        return [*bars, self.dialog.bar] if self.dialog is not None else bars

    def withdraw(self, pid: int) -> None:
        """Deny what ``pid`` is asking (it ended)."""
        for bar in self._all_bars():
            bar.deny(pid)
