"""The foot of an agent window: starter prompts, the images attached, and the message box
with its Attach, Send and Stop buttons."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QPushButton, QToolButton, QVBoxLayout, QWidget

from llmos.apps.manifest import AppManifest
from llmos.desktop.composer import Composer
from llmos.desktop.image_attachments import ImageAttachments
from llmos.desktop.theme import icon


class MessageBar(QWidget):
    """Where a message to ``manifest``'s app is put together.

    Signals:
        sendRequested(): Enter in the message box, or the Send button.
        stopRequested(): Esc in the message box while generating, or the Stop button.
        starterChosen(str): a starter prompt was clicked (its text).
    """

    sendRequested = Signal()
    stopRequested = Signal()
    starterChosen = Signal(str)

    def __init__(self, manifest: AppManifest, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.starters = QWidget()
        starters = QHBoxLayout(self.starters)
        starters.setContentsMargins(10, 0, 10, 0)
        for prompt in manifest.starter_prompts[:3]:
            button = QPushButton(prompt, objectName="Starter", flat=True)
            button.setToolTip(prompt)
            button.clicked.connect(lambda _=False, text=prompt: self.starterChosen.emit(text))
            starters.addWidget(button)
        starters.addStretch(1)

        self.composer = Composer(manifest.name)
        self.composer.sendRequested.connect(self.sendRequested)
        self.composer.stopRequested.connect(self.stopRequested)
        self.attachments = ImageAttachments()
        self.composer.imagePasted.connect(self.attachments.add_image)
        self.attach_button = QToolButton(icon=icon("add-files"), autoRaise=True)
        self.attach_button.setToolTip("Attach images (or drop or paste them here)")
        self.attach_button.clicked.connect(self.attachments.choose)
        self.send_button = QToolButton(icon=icon("send"), toolTip="Send (Enter)")
        self.send_button.clicked.connect(lambda: self.sendRequested.emit())
        self.stop_button = QToolButton(icon=icon("stop"), toolTip="Stop generating (Esc)")
        self.stop_button.clicked.connect(lambda: self.stopRequested.emit())
        self.stop_button.hide()
        composer_row = QHBoxLayout()
        composer_row.setContentsMargins(10, 4, 10, 10)
        composer_row.addWidget(self.attach_button, 0, Qt.AlignmentFlag.AlignBottom)
        composer_row.addWidget(self.composer, 1)
        composer_row.addWidget(self.send_button, 0, Qt.AlignmentFlag.AlignBottom)
        composer_row.addWidget(self.stop_button, 0, Qt.AlignmentFlag.AlignBottom)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(self.starters)
        layout.addWidget(self.attachments)
        layout.addLayout(composer_row)

    def set_generating(self, generating: bool, *, can_send: bool) -> None:
        """Offer Stop while an answer is generated, else Send (enabled when ``can_send``)."""
        self.send_button.setEnabled(can_send)
        self.composer.generating = generating
        self.send_button.setVisible(not generating)
        self.stop_button.setVisible(generating)
