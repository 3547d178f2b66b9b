"""The taskbar: the launcher button, one button per open window, panels, kernel status, clock."""

from __future__ import annotations

import html
from datetime import datetime

from PySide6.QtCore import QLocale, Qt, QTimer, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QMdiSubWindow,
    QMenu,
    QProgressBar,
    QSizePolicy,
    QToolButton,
    QWidget,
)

from llmos.desktop.session import KernelStatus
from llmos.desktop.theme import icon

WINDOW_BUTTON_WIDTH = 180


class Taskbar(QFrame):
    """A bar along the bottom of the desktop.

    Signals:
        windowClicked(QMdiSubWindow): a window's button was clicked (focus, restore or minimise).
    """

    windowClicked = Signal(QMdiSubWindow)

    def __init__(
        self,
        launcher: QAction,
        panels: list[QAction],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("Taskbar")
        self._buttons: dict[QMdiSubWindow, QToolButton] = {}

        self.start_button = QToolButton(objectName="StartButton")
        self.start_button.setDefaultAction(launcher)
        self.start_button.setText("LLM-OS")
        self.start_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)

        self.windows = QHBoxLayout()
        self.windows.setSpacing(4)
        windows = QWidget()
        windows.setLayout(self.windows)
        self.windows.setContentsMargins(0, 0, 0, 0)
        self.windows.addStretch(1)
        windows.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)

        self.status_icon = QLabel()
        self.status = QLabel(objectName="KernelStatus")
        self.progress = QProgressBar(maximumWidth=120, textVisible=False)
        self.progress.hide()
        self.clock = QLabel(objectName="Clock")
        self._clock_timer = QTimer(self, interval=1000)
        self._clock_timer.timeout.connect(self._tick_clock)
        self._clock_timer.start()
        self._tick_clock()

        row = QHBoxLayout(self)
        row.setContentsMargins(6, 4, 10, 4)
        row.setSpacing(6)
        row.addWidget(self.start_button)
        row.addWidget(_separator())
        row.addWidget(windows, 1)
        for action in panels:
            button = QToolButton()
            button.setDefaultAction(action)
            button.setAutoRaise(True)
            row.addWidget(button)
        row.addWidget(_separator())
        row.addWidget(self.status_icon)
        row.addWidget(self.status)
        row.addWidget(self.progress)
        row.addWidget(_separator())
        row.addWidget(self.clock)

    # -- windows -------------------------------------------------------------------------------

    def add_window(self, window: QMdiSubWindow) -> None:
        button = QToolButton(objectName="WindowButton", checkable=True, autoRaise=True)
        button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        button.setMaximumWidth(WINDOW_BUTTON_WIDTH)
        button.clicked.connect(lambda: self.windowClicked.emit(window))
        # Right-click: what a window's own title bar offers, from the taskbar.
        menu = QMenu(button)
        menu.addAction(icon("front"), "Restore", window.showNormal)
        menu.addAction(icon("minimize"), "Minimise", window.showMinimized)
        menu.addAction(icon("maximize"), "Maximise", window.showMaximized)
        menu.addSeparator()
        menu.addAction(icon("close"), "Close", window.close)
        button.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        button.customContextMenuRequested.connect(
            lambda point: menu.popup(button.mapToGlobal(point))
        )
        self._buttons[window] = button
        self.windows.insertWidget(self.windows.count() - 1, button)
        self.update_window(window)

    def update_window(self, window: QMdiSubWindow) -> None:
        button = self._buttons.get(window)
        if button is None:
            return
        title = window.windowTitle()
        button.setIcon(window.windowIcon())
        button.setToolTip(title)
        metrics = button.fontMetrics()
        button.setText(metrics.elidedText(title, Qt.TextElideMode.ElideRight, 130))

    def remove_window(self, window: QMdiSubWindow) -> None:
        button = self._buttons.pop(window, None)
        if button is not None:
            button.deleteLater()

    def set_active(self, window: QMdiSubWindow | None) -> None:
        for each, button in self._buttons.items():
            button.setChecked(each is window and not each.isMinimized())

    # -- status --------------------------------------------------------------------------------

    def show_status(self, status: KernelStatus) -> None:
        if status.phase == "starting":
            text, good = "Starting...", False
        elif status.phase == "failed":
            text, good = "No model engine", False
        else:
            engine = {"ollama": "Ollama", "embedded": "Built-in engine"}.get(
                status.engine, status.engine
            )
            text = f"{engine} \u00b7 {status.model or 'auto'}"
            good = status.connected
            if not good:
                text += " \u00b7 not answering"
        self.status.setText(text)
        self.status_icon.setPixmap(icon("connected" if good else "disconnected").pixmap(16, 16))
        where = ""
        if status.location:
            where = f"<b>{html.escape(status.engine)}</b> at {html.escape(status.location)}<br>"
        self.status.setToolTip(f"{where}{html.escape(status.message)}")
        self.status_icon.setToolTip(self.status.toolTip())
        if status.progress:
            done, total = status.progress
            self.progress.setRange(0, max(1, total))
            self.progress.setValue(done)
            self.progress.show()
        else:
            self.progress.hide()

    def _tick_clock(self) -> None:
        now = datetime.now()
        locale = QLocale()
        self.clock.setText(now.strftime("%H:%M"))
        self.clock.setToolTip(locale.toString(now.date(), QLocale.FormatType.LongFormat))


def _separator() -> QFrame:
    line = QFrame()
    line.setFrameShape(QFrame.Shape.VLine)
    line.setFrameShadow(QFrame.Shadow.Plain)
    line.setObjectName("TaskbarSeparator")
    return line
