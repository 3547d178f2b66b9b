"""The conversation view: Markdown, streaming into the last message, and themes."""

from __future__ import annotations

import time

import pytest

from llmos.desktop.chat_view import BACKGROUND_RENDER_MS, ChatView
from llmos.desktop.theme import apply_theme, current_theme

PROSE = "A long paragraph of prose that must wrap inside the window. " * 12
CODE = "```python\ndef greet(name):\n    return 'hello ' + name * 40 + ' and a very long tail'\n```"


@pytest.fixture
def view(qtbot):
    chat = ChatView()
    chat.resize(420, 500)
    qtbot.addWidget(chat)
    chat.show()
    return chat


def code_blocks(view: ChatView) -> list:
    blocks, block = [], view.document().begin()
    while block.isValid():
        if "def greet" in block.text():
            blocks.append(block)
        block = block.next()
    return blocks


def test_a_streamed_answer_wraps_like_a_finished_one(qtbot, view):
    view.add_message("user", "Show me code", "You")
    view.begin_answer("Chat")
    # The stream pauses inside an open code block, then the answer ends in it.
    for part in (PROSE, "\n\n```python\ndef greet(name):\n", "    return 1\n"):
        view.append_stream(part)
        qtbot.waitUntil(lambda: view.streaming_text == view._rendered)
    view.end_answer(PROSE + "\n\n" + CODE)
    qtbot.wait(20)
    assert view.horizontalScrollBar().maximum() == 0  # nothing scrolls sideways
    paragraph = view.document().find("A long paragraph").block()
    assert not paragraph.blockFormat().nonBreakableLines()
    assert paragraph.layout().lineCount() > 3
    (code,) = code_blocks(view)
    assert code.blockFormat().background().color() == current_theme().alt_base
    assert view.messages == 2


def test_markdown_renders_lists_and_code(view):
    view.add_message("assistant", "Steps:\n\n- one\n- two\n\n" + CODE, "Chat")
    text = view.toPlainText()
    assert "one" in text and "two" in text and "**" not in text and "```" not in text
    assert view.document().find("one").block().textList() is not None


def test_truncate_removes_what_came_after_the_mark(view):
    view.add_message("user", "kept", "You")
    mark = view.mark()
    view.add_message("user", "unsent", "You")
    view.begin_answer("Chat")
    view.truncate(mark)
    assert "kept" in view.toPlainText() and "unsent" not in view.toPlainText()
    assert view.messages == 1


def test_a_theme_switch_recolours_earlier_messages(qapp, view):
    view.add_message("user", "question", "You")
    view.add_message("assistant", "answer", "Chat")
    try:
        apply_theme(qapp, "dark")
        view.restyle()
        frames = view.document().rootFrame().childFrames()
        dark = current_theme()
        assert frames[0].frameFormat().background().color() == dark.user_bubble
        assert frames[1].frameFormat().background().color() == dark.assistant_bubble
    finally:
        apply_theme(qapp, "light")


def test_a_thousand_messages(view):
    for index in range(500):
        view.add_message("user", f"question {index}", "You")
        view.add_message("assistant", f"answer {index}\n\n- a\n- b", "Chat")
    assert view.messages == 1000
    assert "answer 499" in view.toPlainText()


@pytest.mark.parametrize("foreground", [True, False])
def test_a_background_window_renders_a_few_times_a_second(qtbot, view, foreground):
    view.set_foreground(foreground)
    view.begin_answer("Chat")
    started = time.monotonic()
    for index in range(40):  # a frame's worth of text every ~8 ms
        view.append_stream(f" word{index}")
        qtbot.wait(8)
    elapsed = time.monotonic() - started
    view.end_answer()
    assert "word39" in view.toPlainText()
    if foreground:
        assert view.renders >= 20  # about one render per frame of text
    else:
        # At most one render per BACKGROUND_RENDER_MS, however slow the machine is today.
        assert view.renders <= elapsed / (BACKGROUND_RENDER_MS / 1000) + 1


def test_a_view_showing_the_newest_message_keeps_showing_it_when_it_shrinks(qtbot, view):
    # (The strip of memory pages appears above the chat when the pager brings some in.)
    for number in range(12):
        view.add_message("user", f"Question {number}: {PROSE}", "You")
    bar = view.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 0)
    bar.setValue(bar.maximum())
    view.resize(420, 460)
    qtbot.waitUntil(lambda: view.height() == 460)
    assert bar.value() == bar.maximum()

    bar.setValue(0)  # reading further up: it stays there
    view.resize(420, 430)
    qtbot.waitUntil(lambda: view.height() == 430)
    assert bar.value() == 0
