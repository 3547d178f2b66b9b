"""Images given to an agent window: dropped, pasted or chosen, shown as chips, sent with the
next message, and kept (with a word about the Vision app) when the model cannot see."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QMimeData, Qt, QUrl
from PySide6.QtGui import QColor, QImage
from PySide6.QtWidgets import QLabel

from tests.desktop.driving import WAIT, open_from_launcher, type_and_send
from tests.desktop.test_memory_explorer import drop
from tests.fakes import FakeDriver, FakeModel


def png(path: Path, colour: str = "red") -> Path:
    image = QImage(16, 12, QImage.Format.Format_RGB32)
    image.fill(QColor(colour))
    assert image.save(str(path), "PNG")
    return path


def file_mime(*paths: Path) -> QMimeData:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    return mime


def vision_driver() -> FakeDriver:
    return FakeDriver(
        models=[FakeModel("fake-vision:3b", 32768, frozenset({"completion", "vision"}))]
    )


def chip_names(window) -> list[str]:
    return [
        label.text()
        for label in window.attachments.findChildren(QLabel)
        if label.text() and label.isVisibleTo(window.attachments)
    ]


def test_a_dropped_png_is_attached_and_sent(qtbot, open_desktop, tmp_path):
    driver = vision_driver()
    desktop = open_desktop(driver)
    window = open_from_launcher(qtbot, desktop)
    picture = png(tmp_path / "cat.png")
    assert not window.attachments.isVisible()

    assert drop(window.chat, file_mime(picture, tmp_path / "notes.txt"))
    assert window.attachments.isVisible()
    assert chip_names(window) == ["cat.png"]

    type_and_send(qtbot, window, "What is in this picture?")
    qtbot.waitUntil(lambda: not window.generating, timeout=WAIT)
    sent = driver.requests[-1].messages[-1]
    assert sent["content"] == "What is in this picture?"
    assert sent["images"] == [picture.read_bytes()]
    assert "Image: cat.png" in window.chat.toPlainText()
    assert window.attachments.attachments == [] and not window.attachments.isVisible()

    # The next message goes without it.
    type_and_send(qtbot, window, "thanks")
    qtbot.waitUntil(lambda: not window.generating, timeout=WAIT)
    assert "images" not in driver.requests[-1].messages[-1]


def test_a_dropped_image_on_the_message_box_and_a_pasted_one_become_chips(
    qtbot, open_desktop, tmp_path
):
    desktop = open_desktop(vision_driver())
    window = open_from_launcher(qtbot, desktop)
    assert drop(window.composer.viewport(), file_mime(png(tmp_path / "a.png")))
    assert window.composer.toPlainText() == ""  # attached, not typed as a path
    pasted = QMimeData()
    image = QImage(8, 8, QImage.Format.Format_RGB32)
    image.fill(QColor("blue"))
    pasted.setImageData(image)
    window.composer.insertFromMimeData(pasted)
    assert chip_names(window) == ["a.png", "pasted image.png"]
    assert QImage.fromData(window.attachments.attachments[1].data).size() == image.size()

    # x removes one chip, keeping the other.
    close = window.attachments.findChildren(type(window.attach_button), "ChipClose")[0]
    qtbot.mouseClick(close, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: chip_names(window) == ["pasted image.png"])


def test_a_model_that_cannot_see_keeps_the_message_and_points_to_vision(
    qtbot, open_desktop, tmp_path
):
    driver = FakeDriver()  # fake-chat:1b: completion and tools, no vision
    desktop = open_desktop(driver)
    window = open_from_launcher(qtbot, desktop)
    assert drop(window, file_mime(png(tmp_path / "chart.png")))
    type_and_send(qtbot, window, "Read this chart")
    assert not window.banner.isHidden()
    assert "Vision app" in window.banner_text.text()
    assert "fake-chat:1b cannot see images" in window.banner_text.text()
    assert window.composer.toPlainText() == "Read this chart"
    assert chip_names(window) == ["chart.png"]
    assert driver.requests == [] and not window.generating


def test_a_message_that_got_no_answer_keeps_its_images(qtbot, open_desktop, tmp_path):
    driver = vision_driver()
    driver.break_after = 0  # the stream breaks before the first token
    desktop = open_desktop(driver)
    window = open_from_launcher(qtbot, desktop)
    assert drop(window, file_mime(png(tmp_path / "photo.png")))
    type_and_send(qtbot, window, "Describe it")
    qtbot.waitUntil(lambda: not window.generating, timeout=WAIT)
    assert driver.requests[-1].messages[-1]["images"]  # it was sent...
    assert not window.banner.isHidden()  # ...and failed
    assert window.composer.toPlainText() == "Describe it"
    assert chip_names(window) == ["photo.png"]  # back, for Retry or a new try
    assert "photo.png" not in window.chat.toPlainText()
