"""A held process in its window: why it cannot run, and the way to let it run again.

A restored process whose model is gone, or whose app was removed or disabled, comes back
held (:mod:`llmos.kernel.hibernation`). Its window's banner says why; for a model that is gone
Choose model... offers the backend's models that can chat (listed without blocking the event
loop) and runs the process on the one picked, and for an app that is back Retry revives it.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QMenu, QPushButton

from llmos.apps.registry import AppNotFound
from llmos.desktop.banner import Banner
from llmos.drivers.base import DriverError
from llmos.kernel.errors import KernelError
from llmos.kernel.kernel import Kernel
from llmos.kernel.process import Process

REVIVE = "revive"
"""The banner's Retry step that revives the process."""


class HeldProcess(QObject):
    """The banner's part in a held process: its text, Choose model..., Retry.

    The window sets ``kernel`` and ``pid`` once its process is back.

    Args:
        banner: the window's banner (Choose model... joins its row).
        run: runs a coroutine as a task the window owns (``run(coro, what)``).

    Signals:
        revived(int): the process runs again (its pid).
    """

    revived = Signal(int)

    def __init__(
        self,
        banner: Banner,
        run: Callable[[Coroutine[Any, Any, None], str], object],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.kernel: Kernel | None = None
        self.pid: int | None = None
        self._banner = banner
        self._run = run
        self.choose_button = QPushButton("Choose model...", objectName="ChooseModel")
        self.choose_button.clicked.connect(lambda: self._run(self._offer(), "models"))
        self.choose_button.hide()
        # In the banner's row, before Settings...
        banner.layout().insertWidget(3, self.choose_button, 0, Qt.AlignmentFlag.AlignTop)
        self.menu: QMenu | None = None
        """The models last offered."""

    def show(self, process: Process) -> None:
        """Say why ``process`` is held, with what can be done about it."""
        assert self.kernel is not None
        try:
            self.kernel.apps.get(process.app.id)
        except AppNotFound:  # removed or disabled: Retry once it is back
            self.problem(process.held, retry=REVIVE)
        else:  # its model is gone
            self.problem(process.held)
            self.choose_button.show()

    def problem(self, text: str, *, retry: str | None = None) -> None:
        """Show another problem in the banner (Choose model... goes)."""
        self.choose_button.hide()
        self._banner.show_problem(text, retry=retry)

    def revive(self, model: str | None = None) -> None:
        """Let the process run again (on ``model``, or its own)."""
        self._run(self._revive(model), "revive")

    def check(self, pid: int) -> None:
        """``pid``'s state changed: a process revived elsewhere (a new engine has its model)
        loses its banner."""
        if pid != self.pid or self.kernel is None or not self.choose_button.isVisible():
            return
        if not self.kernel.get(pid).held:
            self._banner.hide()
            self.choose_button.hide()

    async def _offer(self) -> None:
        if self.kernel is None:
            return
        self.choose_button.setEnabled(False)
        try:
            models = await self.kernel.driver.list_models()
        except DriverError as error:
            self.problem(str(error))
            return
        finally:
            self.choose_button.setEnabled(True)
        menu = QMenu(self.choose_button)
        for info in models:
            if info.can_chat:
                menu.addAction(info.name, lambda name=info.name: self.revive(name))
        if menu.isEmpty():
            menu.addAction("No model that can chat is installed").setEnabled(False)
        if self.menu is not None:
            self.menu.deleteLater()
        self.menu = menu
        menu.popup(self.choose_button.mapToGlobal(self.choose_button.rect().bottomLeft()))

    async def _revive(self, model: str | None) -> None:
        if self.kernel is None or self.pid is None:
            return
        self.choose_button.setEnabled(False)
        try:
            process = await self.kernel.revive(self.pid, model=model)
        except (DriverError, KernelError) as error:
            self.problem(str(error), retry=None if model else REVIVE)
            if model:
                self.choose_button.show()  # another one, then
            return
        finally:
            self.choose_button.setEnabled(True)
        self._banner.hide()
        self.choose_button.hide()
        self.revived.emit(process.pid)
