"""The header line of an agent window: its process and model, the RAM meter, Context."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QHBoxLayout, QLabel, QToolButton, QWidget

from llmos.desktop.context_view import SHORTCUT as CONTEXT_SHORTCUT
from llmos.desktop.ram_bar import RamMeter
from llmos.desktop.theme import icon
from llmos.drivers.base import ModelDriver
from llmos.kernel.process import Process


class ProcessHeader(QWidget):
    """Which process runs on which model, how full its context RAM is, and a button for what
    is in it (``context_action``: the window adds it, so its shortcut works anywhere in it).

    Signals:
        None.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model_label = QLabel("Starting...")
        self.model_label.setObjectName("ModelLabel")
        self.model_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.meter = RamMeter()
        self.context_action = QAction(icon("memory"), "Context", self)
        self.context_action.setShortcut(QKeySequence(CONTEXT_SHORTCUT))
        self.context_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.context_action.setToolTip(
            f"What is in this process's context RAM, part by part ({CONTEXT_SHORTCUT})"
        )
        self.context_action.setEnabled(False)
        self.context_button = QToolButton(autoRaise=True)
        self.context_button.setDefaultAction(self.context_action)
        self.context_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        header = QHBoxLayout(self)
        header.setContentsMargins(10, 6, 10, 0)
        header.setSpacing(4)  # as the window's own layout
        header.addWidget(self.model_label, 1)
        header.addWidget(self.meter)
        header.addWidget(self.context_button)

    def show_process(self, process: Process, driver: ModelDriver) -> None:
        """Show ``process``'s usage and model (which can change under it: a new engine or
        host in the settings)."""
        self.meter.set_usage(process.usage, process.budget)
        self.model_label.setText(f"pid {process.pid} \u00b7 {process.model}")
        self.model_label.setToolTip(f"{driver.kind} at {driver.location}")
