"""The windows of saved processes: brought back at start-up, woken, reopened.

At start-up the windows that were on screen when LLM-OS last closed (or crashed) open at once
where they were, each showing its conversation, while the model engine starts behind them
(:mod:`~llmos.desktop.restore`). Later the task manager wakes a hibernated process into a
window, or reopens an ended one as a new process.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QWidget

from llmos.apps.registry import AppRegistry
from llmos.desktop.agent_window import AgentWindow
from llmos.desktop.app_windows import AppWindows
from llmos.desktop.restore import manifest_of, read_saved_windows, stacking
from llmos.desktop.session import DesktopSession, KernelNotRunning
from llmos.kernel.errors import KernelError
from llmos.kernel.sessions import SessionError


class SessionWindows(QObject):
    """Opens saved processes' windows through ``windows``.

    Args:
        apps: gives the installed apps (read afresh).

    Signals:
        problem(str, str): something could not be brought back (a title, the reason).
    """

    problem = Signal(str, str)

    def __init__(
        self,
        session: DesktopSession,
        windows: AppWindows,
        apps: Callable[[], AppRegistry],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._session = session
        self._windows = windows
        self._apps = apps
        self._stopped = False

    def restore(self) -> None:
        """Bring back the windows that were on screen (call once, as the desktop starts)."""
        self._session.run(self._restore(), "llmos-restore-windows")

    def stop(self) -> None:
        """Open no more windows (the desktop is closing)."""
        self._stopped = True

    def wake(self, pid: int) -> None:
        """Bring hibernated (or interrupted) process ``pid`` back in a window where its window
        was (the next place of the cascade if it had none)."""
        for window in self._windows.of_kind(AgentWindow):
            if window.pid == pid:  # already back
                self._windows.bring_to_front(pid)
                return
        with contextlib.suppress(KernelNotRunning):  # shutting down
            self._session.run(self._open(pid, reopen=False), f"llmos-wake-{pid}")

    def reopen(self, pid: int) -> None:
        """Start a new process with ended (or hibernated) process ``pid``'s conversation, in a
        new window."""
        with contextlib.suppress(KernelNotRunning):
            self._session.run(self._open(pid, reopen=True), f"llmos-reopen-{pid}")

    async def _restore(self) -> None:
        found = await asyncio.to_thread(read_saved_windows, self._session.settings.data_dir)
        if self._stopped:
            return
        apps = self._apps()
        problems = list(found.problems)
        opened: dict[int, QWidget] = {}
        # Opened in the order they were (as the taskbar showed them), then stacked as they were.
        for saved in found.saved:
            try:
                manifest = manifest_of(saved, apps)
            except SessionError as error:
                problems.append(str(error))
                continue
            opened[saved.pid] = self._windows.open(manifest, saved=saved, place=saved.window)
        for saved in stacking(found.saved):
            if saved.pid in opened:
                self._windows.raise_window(opened[saved.pid])
        if problems:
            self.problem.emit("Some windows were not brought back", "\n\n".join(problems))

    async def _open(self, pid: int, *, reopen: bool) -> None:
        title = f"Process {pid} cannot be {'reopened' if reopen else 'woken'}"
        try:
            kernel = await self._session.kernel_ready()
            saved = await kernel.load_saved(pid)
            manifest = manifest_of(saved, self._apps())
        except (KernelNotRunning, KernelError) as error:
            self.problem.emit(title, str(error))
            return
        store = kernel.sessions
        if not reopen and store is not None and await asyncio.to_thread(store.in_use, pid):
            why = f"Process {pid} is running (here or in another LLM-OS on this data dir)."
            self.problem.emit(title, why)
            return
        if self._stopped:
            return
        place = None if reopen or saved.window is None else {**saved.window, "state": "normal"}
        self._windows.open(manifest, saved=saved, reopen=reopen, place=place)
