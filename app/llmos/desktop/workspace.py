"""The desktop area: a wallpaper under the agent windows (an MDI area)."""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt, QTimer, Signal
from PySide6.QtGui import (
    QBrush,
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QPainter,
    QPaintEvent,
    QResizeEvent,
)
from PySide6.QtWidgets import QMdiArea, QWidget

from llmos.desktop.memory_drag import dropped_files
from llmos.desktop.theme import current_theme, wallpaper

RESIZE_SETTLE_MS = 120


class Workspace(QMdiArea):
    """Agent windows over the wallpaper; with none open, a hint says how to start one.

    Files dragged from a file manager onto the wallpaper (not onto a window) are offered to
    long-term memory.

    Signals:
        filesDropped(list): the local paths dropped on the wallpaper.
    """

    filesDropped = Signal(list)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.viewport().setAcceptDrops(True)
        self.setObjectName("Workspace")
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setActivationOrder(QMdiArea.WindowOrder.ActivationHistoryOrder)
        self.hint = "Open an app from the launcher (Ctrl+Space)"
        # While a window or dock is being resized, render the wallpaper once it settles.
        self._settle = QTimer(self, singleShot=True, interval=RESIZE_SETTLE_MS)
        self._settle.timeout.connect(self.refresh_wallpaper)

    def refresh_wallpaper(self) -> None:
        """Render the wallpaper for the current size and theme."""
        viewport = self.viewport()
        if viewport.width() <= 0 or viewport.height() <= 0:
            return
        dark = current_theme().dark
        self.setBackground(QBrush(wallpaper(viewport.size(), viewport.devicePixelRatioF(), dark)))

    def _on_wallpaper(self, point: QPoint) -> bool:
        """True when ``point`` (in viewport coordinates) is not on a window."""
        return not any(
            sub.isVisible() and sub.geometry().contains(point) for sub in self.subWindowList()
        )

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if dropped_files(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        if dropped_files(event.mimeData()) and self._on_wallpaper(event.position().toPoint()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        files = dropped_files(event.mimeData())
        if files and self._on_wallpaper(event.position().toPoint()):
            event.acceptProposedAction()
            self.filesDropped.emit(files)
        else:
            event.ignore()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if event.oldSize().isValid() and event.oldSize().width() > 0:
            self._settle.start()
        else:
            self.refresh_wallpaper()

    def paintEvent(self, event: QPaintEvent) -> None:
        super().paintEvent(event)
        if self.subWindowList():
            return
        painter = QPainter(self.viewport())
        theme = current_theme()
        color = theme.text
        color.setAlphaF(0.7)
        painter.setPen(color)
        font = painter.font()
        font.setPointSizeF(font.pointSizeF() * 1.25)
        painter.setFont(font)
        painter.drawText(self.viewport().rect(), Qt.AlignmentFlag.AlignCenter, self.hint)
