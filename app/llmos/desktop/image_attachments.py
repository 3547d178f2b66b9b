"""Images attached to an agent window's next message: dropped files, pasted images, or chosen
with "Attach image...". They show as chips (a thumbnail, the name, x) above the message box
and go with the message as bytes (Ollama's ``images``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QBuffer, QByteArray, QEvent, QIODevice, QObject, Qt, Signal
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent, QImage, QPixmap
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QLabel, QToolButton, QWidget

from llmos.console import human_bytes
from llmos.desktop.memory_drag import dropped_files
from llmos.desktop.theme import icon

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp")
THUMBNAIL = 28
MAX_IMAGE_BYTES = 20_000_000
"""Larger files are refused: they would be sent base64-encoded with every request."""
_DRAG_EVENTS = (QEvent.Type.DragEnter, QEvent.Type.DragMove, QEvent.Type.Drop)


@dataclass(frozen=True)
class Attachment:
    """One image waiting to be sent."""

    name: str
    data: bytes


def image_files(paths: list[Path]) -> list[Path]:
    """The paths that name image files LLM-OS can send."""
    return [p for p in paths if p.suffix.lower() in IMAGE_SUFFIXES]


def sees_images(capabilities: frozenset[str]) -> bool:
    """Whether a model with ``capabilities`` can be sent images."""
    # A backend that does not say what a model can do gets the benefit of the doubt.
    return not capabilities or "vision" in capabilities


def images_note(images: list[Attachment]) -> str:
    """The line under a message that says which images went with it."""
    if not images:
        return ""
    names = ", ".join(image.name for image in images)
    return f"Image: {names}" if len(images) == 1 else f"Images: {names}"


class ImageAttachments(QWidget):
    """The chips of the images attached to the next message (hidden while there are none).

    Signals:
        changed(): an image was attached or removed.
        problem(str): an image could not be attached (the sentence says why).
    """

    changed = Signal()
    problem = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ImageAttachments")
        self.attachments: list[Attachment] = []
        self._row = QHBoxLayout(self)
        self._row.setContentsMargins(10, 0, 10, 0)
        self._row.addStretch(1)
        self._dialog: QFileDialog | None = None
        self.hide()

    # -- attaching -----------------------------------------------------------------------------

    def add_files(self, paths: list[Path]) -> None:
        """Attach image files (other files are refused with a message)."""
        for path in paths:
            if path not in image_files([path]):
                self.problem.emit(f"{path.name} is not an image (PNG, JPEG, GIF or WebP).")
                continue
            try:
                size = path.stat().st_size
                if size > MAX_IMAGE_BYTES:
                    self.problem.emit(
                        f"{path.name} is too large to send ({human_bytes(size)}; "
                        f"at most {human_bytes(MAX_IMAGE_BYTES)})."
                    )
                    continue
                data = path.read_bytes()
            except OSError as error:
                self.problem.emit(f"{path.name} could not be read ({error.strerror}).")
                continue
            self.add(Attachment(path.name, data))

    def add_image(self, image: QImage, name: str = "pasted image.png") -> None:
        """Attach an image from the clipboard (as PNG)."""
        data = QByteArray()
        buffer = QBuffer(data)
        buffer.open(QIODevice.OpenModeFlag.WriteOnly)
        image.save(buffer, "PNG")
        self.add(Attachment(name, bytes(data.data())))

    def add(self, attachment: Attachment) -> None:
        self.attachments.append(attachment)
        chip = self._chip(attachment)
        self._row.insertWidget(self._row.count() - 1, chip)
        chip.show()  # the layout would show it only on the next turn of the loop
        self.show()
        self.changed.emit()

    def choose(self) -> None:
        """Ask for image files (a non-modal dialog)."""
        if self._dialog is None:
            dialog = QFileDialog(self.window(), "Attach images")
            dialog.setFileMode(QFileDialog.FileMode.ExistingFiles)
            patterns = " ".join(f"*{s}" for s in IMAGE_SUFFIXES)
            dialog.setNameFilter(f"Images ({patterns})")
            dialog.filesSelected.connect(lambda files: self.add_files([Path(f) for f in files]))
            self._dialog = dialog
        self._dialog.open()

    def take(self) -> list[Attachment]:
        """The attached images, removing them (they are being sent)."""
        taken, self.attachments = self.attachments, []
        self._clear_chips()
        return taken

    def remove(self, attachment: Attachment) -> None:
        self.attachments.remove(attachment)
        restore = self.attachments
        self.attachments = []
        self._clear_chips()
        for each in restore:
            self.add(each)
        self.changed.emit()

    def _clear_chips(self) -> None:
        while self._row.count() > 1:
            item = self._row.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self.hide()

    def _chip(self, attachment: Attachment) -> QWidget:
        chip = QWidget(objectName="ImageChip")
        chip.setAttribute(Qt.WidgetAttribute.WA_StyledBackground)
        row = QHBoxLayout(chip)
        row.setContentsMargins(4, 2, 2, 2)
        row.setSpacing(4)
        thumbnail = QLabel()
        pixmap = QPixmap()
        if pixmap.loadFromData(attachment.data):
            thumbnail.setPixmap(
                pixmap.scaled(
                    THUMBNAIL,
                    THUMBNAIL,
                    Qt.AspectRatioMode.KeepAspectRatio,
                    Qt.TransformationMode.SmoothTransformation,
                )
            )
        else:
            thumbnail.setPixmap(icon("file-text").pixmap(THUMBNAIL // 2, THUMBNAIL // 2))
        name = QLabel(attachment.name)
        name.setToolTip(f"{attachment.name} \u00b7 {human_bytes(len(attachment.data))}")
        close = QToolButton(icon=icon("close"), autoRaise=True, objectName="ChipClose")
        close.setToolTip(f"Remove {attachment.name}")
        close.clicked.connect(lambda: self.remove(attachment))
        row.addWidget(thumbnail)
        row.addWidget(name)
        row.addWidget(close)
        return chip

    # -- drags -------------------------------------------------------------------------------

    def take_drag(self, event: QDragEnterEvent | QDragMoveEvent | QDropEvent) -> bool:
        """Accept a drag of image files, attaching them when dropped; False for other drags."""
        files = image_files(dropped_files(event.mimeData()))
        if not files:
            return False
        event.acceptProposedAction()
        if event.type() == QEvent.Type.Drop:
            self.add_files(files)
        return True

    def watch(self, viewport: QWidget) -> None:
        """Take images dropped on ``viewport`` (a text box's), which would paste their paths."""
        viewport.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() in _DRAG_EVENTS:
            assert isinstance(event, QDragEnterEvent | QDragMoveEvent | QDropEvent)
            if self.take_drag(event):
                return True
        return super().eventFilter(watched, event)
