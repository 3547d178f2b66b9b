"""The message box: one line shown whole when empty, growing to six lines, then scrolling."""

from __future__ import annotations

from PySide6.QtWidgets import QApplication

from llmos.desktop.composer import COMPOSER_LINES, Composer
from llmos.desktop.theme import apply_theme


def test_the_message_box_fits_its_lines_with_the_style_sheet_applied(qtbot):
    apply_theme(QApplication.instance(), "light")  # its border and padding are the sheet's
    composer = Composer("Chat")
    qtbot.addWidget(composer)
    composer.show()
    qtbot.waitExposed(composer)
    scroll = composer.verticalScrollBar()
    assert scroll.maximum() == 0  # the placeholder line is not cut off
    one = composer.height()
    assert composer.viewport().height() >= composer.fontMetrics().lineSpacing()

    composer.setPlainText("first\nsecond\nthird")
    qtbot.waitUntil(lambda: composer.height() > one)
    assert scroll.maximum() == 0
    high = COMPOSER_LINES[1]
    composer.setPlainText("\n".join(f"line {i}" for i in range(high + 4)))
    qtbot.waitUntil(lambda: scroll.maximum() > 0)  # capped: the rest scrolls
    capped = composer.height()
    composer.setPlainText("\n".join(f"line {i}" for i in range(high + 9)))
    assert composer.height() == capped
