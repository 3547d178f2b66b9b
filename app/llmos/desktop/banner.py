"""The banner of an agent window: a problem in plain words, and what can be done about it.

It shows between the window's header and its conversation: Retry when the step that failed
(starting the process, sending a message) can be tried again, Settings... for a backend or a
model to fix, and a button to dismiss it. Kept apart from the agent window, which decides
what failed and what Retry does.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QToolButton

from llmos.desktop.theme import icon


class Banner(QFrame):
    """A problem of an agent window (hidden until there is one).

    Signals:
        retryRequested(str): Retry was clicked; the step to try again (as given to
            :meth:`show_problem`).
        settingsRequested(): Settings... was clicked.
    """

    retryRequested = Signal(str)
    settingsRequested = Signal()

    def __init__(self) -> None:
        super().__init__(objectName="Banner")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.icon = QLabel()
        self.text = QLabel(wordWrap=True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.text.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.retry_button = QPushButton("Retry")
        self.retry_button.clicked.connect(self._retry)
        self.settings_button = QPushButton("Settings...")
        self.settings_button.clicked.connect(self.settingsRequested)
        dismiss = QToolButton(icon=icon("close"), toolTip="Dismiss", autoRaise=True)
        dismiss.clicked.connect(self.hide)
        row = QHBoxLayout(self)
        row.setContentsMargins(10, 6, 6, 6)
        row.addWidget(self.icon, 0, Qt.AlignmentFlag.AlignTop)
        row.addWidget(self.text, 1)
        row.addWidget(self.retry_button, 0, Qt.AlignmentFlag.AlignTop)
        row.addWidget(self.settings_button, 0, Qt.AlignmentFlag.AlignTop)
        row.addWidget(dismiss, 0, Qt.AlignmentFlag.AlignTop)
        self.hide()
        self._retry_step: str | None = None

    def show_problem(self, text: str, *, retry: str | None = None) -> None:
        """Show ``text``, with Retry if there is a step to ``retry``."""
        self._retry_step = retry
        self.icon.setPixmap(icon("warning").pixmap(20, 20))
        self.text.setText(text)
        self.retry_button.setVisible(retry is not None)
        self.show()

    def _retry(self) -> None:
        step, self._retry_step = self._retry_step, None
        self.hide()
        self.retryRequested.emit(step or "")
