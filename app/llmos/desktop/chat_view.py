"""The conversation of one agent window: Markdown messages in one scrolling document.

A single :class:`QTextDocument` holds the whole conversation (a frame per message), so text
can be selected and copied across messages, and a 1,000-message chat scrolls at a couple of
milliseconds a frame (see benchmarks/desktop_bench.py). The answer being generated is the
last frame; each frame's worth of streamed text re-renders only that frame.
"""

from __future__ import annotations

import html
import time

from PySide6.QtCore import QTimer
from PySide6.QtGui import (
    QResizeEvent,
    QTextBlockFormat,
    QTextCharFormat,
    QTextCursor,
    QTextFormat,
    QTextFrameFormat,
)
from PySide6.QtWidgets import QTextBrowser, QWidget

from llmos.desktop.theme import current_theme

ROLE_PROPERTY = QTextFormat.Property.UserProperty + 1
"""Frame format property holding the message's role (to recolour it for a new theme)."""
CODE_FENCE = QTextFormat.Property.BlockCodeFence
SLOW_RENDER_MS = 8.0
"""A re-render slower than this spaces the next ones out (very long answers)."""
BACKGROUND_RENDER_MS = 100
"""How often a window that is not the active one re-renders its streaming answer."""


class ChatView(QTextBrowser):
    """Read-only, selectable conversation with a streaming last message."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ChatView")
        self.setOpenExternalLinks(True)
        self.setReadOnly(True)
        self.setUndoRedoEnabled(False)
        self.document().setDocumentMargin(12)
        self._streaming = False
        self._background = False
        self._body_start = 0
        self._text = ""
        self._rendered = ""
        self._render_ms = 0.0
        self._render_timer = QTimer(self, singleShot=True)
        self._render_timer.timeout.connect(self._render_stream)
        self.messages = 0
        """Messages shown (for tests and the window's title)."""
        self.renders = 0
        """Re-renders of streaming answers so far (for tests and benchmarks)."""

    def resizeEvent(self, event: QResizeEvent) -> None:
        # Showing the newest message, it keeps showing it when the view shrinks (the strip of
        # memory pages appears above it), so the answers that follow stay in sight.
        bar = self.verticalScrollBar()
        at_bottom = bar.value() >= bar.maximum() - 4
        super().resizeEvent(event)
        if at_bottom:
            bar.setValue(bar.maximum())

    # -- messages ------------------------------------------------------------------------------

    def add_message(self, role: str, text: str, title: str, *, note: str = "") -> None:
        """Append a finished message (``role`` is ``user`` or ``assistant``)."""
        self._finish_stream()
        self._open_frame(role, title)
        cursor = self._end_cursor()
        start = cursor.position()
        cursor.insertMarkdown(text or " ")
        self._style_blocks(start, cursor.position())
        if note:
            self._insert_note(note)
        self.messages += 1

    def begin_answer(self, title: str) -> None:
        """Open the message that streamed text will fill."""
        self._finish_stream()
        self._open_frame("assistant", title)
        self._body_start = self._end_cursor().position()
        self._text = self._rendered = ""
        self._streaming = True
        self.messages += 1
        self._show_text("...")

    def set_foreground(self, foreground: bool) -> None:
        """A view in the active window renders every frame; the others a few times a second
        (laying text out is what streaming costs, and eight windows rendering at 60 frames a
        second saturate a core)."""
        self._background = not foreground

    def append_stream(self, text: str) -> None:
        """Add streamed text to the answer (called once a frame with that frame's text)."""
        if not self._streaming:
            self.begin_answer("")
        self._text += text
        if not self._render_timer.isActive():
            # Fast renders run at once; slow ones (very long answers) and background windows
            # are spaced out.
            delay = 0 if self._render_ms < SLOW_RENDER_MS else int(self._render_ms * 4)
            if self._background:
                delay = max(delay, BACKGROUND_RENDER_MS)
            self._render_timer.start(delay)

    def end_answer(self, text: str | None = None, *, note: str = "") -> None:
        """Finish the streaming answer with its final ``text`` (default: what streamed)."""
        if not self._streaming:
            if text is None:
                return
            self.begin_answer("")
        if text is not None:
            self._text = text
        self._render_timer.stop()
        if self._text != self._rendered or not self._text:
            self._show_text(self._text or " ")
        if note:
            self._insert_note(note)
        self._streaming = False

    @property
    def streaming_text(self) -> str:
        return self._text if self._streaming else ""

    def mark(self) -> int:
        """Where the next message will start (for :meth:`truncate`)."""
        return self._end_root_cursor().position()

    def truncate(self, mark: int) -> None:
        """Remove every message added after ``mark``."""
        self._render_timer.stop()
        self._streaming = False
        cursor = QTextCursor(self.document())
        cursor.setPosition(mark)
        cursor.movePosition(QTextCursor.MoveOperation.End, QTextCursor.MoveMode.KeepAnchor)
        removed = self.document().rootFrame().childFrames()
        cursor.removeSelectedText()
        self.messages -= len(removed) - len(self.document().rootFrame().childFrames())

    # -- rendering -------------------------------------------------------------------------------

    def _finish_stream(self) -> None:
        if self._streaming:
            self.end_answer()

    def _render_stream(self) -> None:
        if self._streaming and self._text != self._rendered:
            self.renders += 1
            started = time.perf_counter()
            self._show_text(self._text)
            self._render_ms = (time.perf_counter() - started) * 1000

    def _show_text(self, text: str) -> None:
        """Replace the streaming message's body with ``text`` rendered as Markdown."""
        bar = self.verticalScrollBar()
        at_bottom = bar.value() >= bar.maximum() - 4
        cursor = QTextCursor(self.document())
        cursor.setPosition(self._body_start)
        frame = cursor.currentFrame()
        cursor.setPosition(frame.lastPosition(), QTextCursor.MoveMode.KeepAnchor)
        cursor.removeSelectedText()
        # The emptied block keeps the format of the last block removed (a code block's
        # no-wrap, say); start the new text from plain formats.
        cursor.setBlockFormat(QTextBlockFormat())
        cursor.setCharFormat(QTextCharFormat())
        cursor.insertMarkdown(text)
        self._style_blocks(self._body_start, cursor.position())
        self._rendered = text
        if at_bottom:
            bar.setValue(bar.maximum())

    def _style_blocks(self, start: int, end: int) -> None:
        """Give code blocks a background and let their lines wrap: one long line must not
        scroll the whole conversation sideways."""
        code = current_theme().alt_base
        block = self.document().findBlock(start)
        while block.isValid() and block.position() <= end:
            block_format = block.blockFormat()
            if block_format.nonBreakableLines() or block_format.hasProperty(CODE_FENCE):
                block_format.setNonBreakableLines(False)
                block_format.setBackground(code)
                block_format.setLeftMargin(6)
                cursor = QTextCursor(block)
                cursor.setBlockFormat(block_format)
            block = block.next()

    def restyle(self) -> None:
        """Recolour every message for the current theme (after a theme switch)."""
        theme = current_theme()
        for frame in self.document().rootFrame().childFrames():
            frame_format = frame.frameFormat()
            role = frame_format.property(ROLE_PROPERTY)
            frame_format.setBackground(
                theme.user_bubble if role == "user" else theme.assistant_bubble
            )
            frame_format.setBorderBrush(theme.border)
            frame.setFrameFormat(frame_format)
        self._style_blocks(0, self.document().characterCount())

    def _open_frame(self, role: str, title: str) -> None:
        theme = current_theme()
        bar = self.verticalScrollBar()
        at_bottom = bar.value() >= bar.maximum() - 4
        cursor = self._end_root_cursor()
        frame_format = QTextFrameFormat()
        frame_format.setProperty(ROLE_PROPERTY, role)
        frame_format.setBackground(theme.user_bubble if role == "user" else theme.assistant_bubble)
        frame_format.setPadding(10)
        frame_format.setTopMargin(0)
        frame_format.setBottomMargin(10)
        frame_format.setBorder(1)
        frame_format.setBorderBrush(theme.border)
        frame_format.setBorderStyle(QTextFrameFormat.BorderStyle.BorderStyle_Solid)
        cursor.insertFrame(frame_format)
        if title:
            cursor.insertHtml(_title_html(title))
            cursor.insertBlock()
        cursor.setCharFormat(QTextCharFormat())
        if at_bottom:
            QTimer.singleShot(0, lambda: bar.setValue(bar.maximum()))

    def _insert_note(self, note: str) -> None:
        cursor = self._end_cursor()
        cursor.insertBlock()
        muted = current_theme().muted.name()
        cursor.insertHtml(f'<span style="color:{muted}"><i>{html.escape(note)}</i></span>')

    def _end_cursor(self) -> QTextCursor:
        """A cursor at the end of the last message."""
        cursor = QTextCursor(self.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        # The document ends with an empty block after the last frame; one step back is the
        # last position inside that frame.
        cursor.setPosition(max(0, cursor.position() - 1))
        return cursor

    def _end_root_cursor(self) -> QTextCursor:
        """A cursor after the last message, in the document's root frame."""
        cursor = QTextCursor(self.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        return cursor


def _title_html(title: str) -> str:
    # No colour of its own: it follows the palette, so a theme switch recolours it.
    return f'<span style="font-weight:600">{html.escape(title)}</span>'
