"""Where each agent window is: kept with its process's session, so a restart puts it back.

A place is the window's normal geometry in workspace coordinates, its state (``normal``,
``minimized`` or ``maximized``), its rank in the stacking order (``z``, 0 at the bottom) and
among the windows as they were opened (``order``, as the taskbar shows them), with ``open``
set while the window is on screen. Moves and resizes are written once they
settle (:data:`SETTLE_MS`), never per pixel.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QEvent, QObject, QRect, QTimer
from PySide6.QtWidgets import QMdiArea, QMdiSubWindow

from llmos.desktop.agent_window import AgentWindow

SETTLE_MS = 300
"""A window that moved or was resized is written down this long after it stops."""
MIN_SIZE = (240, 180)


class WindowPlaces(QObject):
    """Keeps the kernel told where the agent windows on ``workspace`` are."""

    def __init__(self, workspace: QMdiArea, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._workspace = workspace
        self._normal: dict[QMdiSubWindow, QRect] = {}
        self._timer = QTimer(self, singleShot=True, interval=SETTLE_MS)
        self._timer.timeout.connect(self.push)
        self._stopped = False
        workspace.subWindowActivated.connect(lambda _: self.schedule())

    def track(self, sub: QMdiSubWindow, window: AgentWindow) -> None:
        """Follow ``sub`` (the frame of ``window``) from now on."""
        self._normal[sub] = sub.geometry()
        sub.installEventFilter(self)
        sub.windowStateChanged.connect(lambda *_: self.schedule())
        sub.destroyed.connect(lambda _=None: self._forget(sub))
        # Told at once when the process starts (or comes back).
        window.processStarted.connect(lambda _: self.push())

    def place(self, sub: QMdiSubWindow, place: dict[str, Any]) -> None:
        """Put ``sub`` where ``place`` says (moved into sight when the workspace shrank)."""
        geometry = [place.get(k) for k in ("x", "y", "w", "h")]
        if all(isinstance(v, int) for v in geometry):
            x, y, w, h = (int(v) for v in geometry)  # type: ignore[arg-type]
            w, h = max(w, MIN_SIZE[0]), max(h, MIN_SIZE[1])
            area = self._workspace.viewport().size()
            if area.width() > MIN_SIZE[0] and area.height() > MIN_SIZE[1]:
                x = min(x, area.width() - MIN_SIZE[0] // 2)
                y = min(y, area.height() - MIN_SIZE[1] // 2)
            sub.setGeometry(QRect(max(0, x), max(0, y), w, h))
            self._normal[sub] = sub.geometry()
        state = place.get("state")
        if state == "maximized":
            sub.showMaximized()
        elif state == "minimized":
            sub.showMinimized()

    def schedule(self) -> None:
        """Write the places down once things settle."""
        if not self._stopped:
            self._timer.start()

    def push(self) -> None:
        """Tell the kernel every agent window's place now (unchanged ones cost nothing)."""
        if self._stopped:
            return
        self._timer.stop()
        stacking = self._agent_subs(QMdiArea.WindowOrder.StackingOrder)
        opened = self._agent_subs(QMdiArea.WindowOrder.CreationOrder)
        for z, sub in enumerate(stacking):
            window = sub.widget()
            assert isinstance(window, AgentWindow)
            window.set_place(self.place_of(sub, z) | {"order": opened.index(sub)})

    def stop(self) -> None:
        """Write the places a last time and stop following (the desktop is closing)."""
        self.push()
        self._stopped = True

    def place_of(self, sub: QMdiSubWindow, z: int) -> dict[str, Any]:
        if sub.isMinimized():
            state = "minimized"
        elif sub.isMaximized():
            state = "maximized"
        else:
            state = "normal"
            self._normal[sub] = sub.geometry()
        rect = self._normal.get(sub, sub.geometry())
        return {
            "open": True,
            "x": rect.x(),
            "y": rect.y(),
            "w": rect.width(),
            "h": rect.height(),
            "state": state,
            "z": z,
        }

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if isinstance(watched, QMdiSubWindow) and event.type() in (
            QEvent.Type.Move,
            QEvent.Type.Resize,
        ):
            # Not read here: while a window maximizes, it moves before its state says so.
            self.schedule()
        return False

    def _agent_subs(self, order: QMdiArea.WindowOrder) -> list[QMdiSubWindow]:
        subs = self._workspace.subWindowList(order)
        return [s for s in subs if isinstance(s.widget(), AgentWindow)]

    def _forget(self, sub: QMdiSubWindow) -> None:
        self._normal.pop(sub, None)
        self.schedule()  # the others' stacking ranks moved
