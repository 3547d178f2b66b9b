"""The box a message to an agent is typed in, at the foot of its window.

It grows with its text, Enter sends, Shift+Enter starts a new line, and Esc stops the answer
being generated. Kept apart from the agent window, which holds the conversation and the
process, so that this holds the typing.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QEvent, QMimeData, Qt, Signal
from PySide6.QtGui import QImage, QKeyEvent
from PySide6.QtWidgets import QPlainTextEdit, QWidget

COMPOSER_LINES = (1, 6)
"""The input box grows with its text between these many lines."""


class Composer(QPlainTextEdit):
    """The message box of an agent window for the app called ``app_name``.

    Signals:
        sendRequested(): Enter was pressed (without Shift).
        stopRequested(): Esc was pressed while ``generating``.
        imagePasted(QImage): an image was pasted (it is attached, not typed).
    """

    sendRequested = Signal()
    stopRequested = Signal()
    imagePasted = Signal(QImage)

    def __init__(self, app_name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent, objectName="Composer")
        self.setPlaceholderText(f"Message {app_name}...")
        self.setToolTip("Enter sends; Shift+Enter starts a new line")
        self.setTabChangesFocus(True)
        self.generating = False
        """An answer is being generated (the window sets it): Esc stops it."""
        self.textChanged.connect(self._fit)
        self._fit()

    def _fit(self) -> None:
        # The style sheet's border and padding count only once it is applied (polished);
        # measured before, one line was cut in half.
        self.ensurePolished()
        lines = max(1, self.document().lineCount())
        low, high = COMPOSER_LINES
        shown = min(max(lines, low), high)
        margins = self.contentsMargins()  # the frame: border and padding
        text = shown * self.fontMetrics().lineSpacing() + 2 * self.document().documentMargin()
        # +1: QPlainTextEdit wants a pixel more than its lines, or it offers to scroll.
        self.setFixedHeight(math.ceil(text) + margins.top() + margins.bottom() + 1)

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() in (QEvent.Type.StyleChange, QEvent.Type.FontChange):
            self._fit()  # a theme switch, a new font

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            if not event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
                self.sendRequested.emit()
                return
        elif key == Qt.Key.Key_Escape and self.generating:
            self.stopRequested.emit()
            return
        super().keyPressEvent(event)

    def canInsertFromMimeData(self, source: QMimeData) -> bool:
        return source.hasImage() or super().canInsertFromMimeData(source)

    def insertFromMimeData(self, source: QMimeData) -> None:
        image = source.imageData() if source.hasImage() else None
        if isinstance(image, QImage) and not image.isNull():
            self.imagePasted.emit(image)
        else:
            super().insertFromMimeData(source)
