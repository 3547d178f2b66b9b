"""What is in a process's context RAM, as the agent window's context view shows it."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from llmos.desktop.context_view import KEY_ROLE, TOKENS
from llmos.kernel.context import Segment
from llmos.kernel.events import SummaryUpdated, TurnsEvicted
from llmos.kernel.pages import Page
from tests.desktop.driving import WAIT, open_from_launcher, type_and_send
from tests.fakes import FakeDriver


def keys(view) -> list[str]:
    tree = view.tree
    return [tree.topLevelItem(i).data(0, KEY_ROLE) for i in range(tree.topLevelItemCount())]


def item(view, key: str):
    tree = view.tree
    for i in range(tree.topLevelItemCount()):
        top = tree.topLevelItem(i)
        for found in (top, *(top.child(j) for j in range(top.childCount()))):
            if found.data(0, KEY_ROLE) == key:
                return found
    return None


def test_ctrl_i_opens_the_context_and_it_follows_the_process_live(qtbot, open_desktop):
    desktop = open_desktop(FakeDriver())
    window = open_from_launcher(qtbot, desktop)
    process = window.kernel.get(window.pid)
    desktop.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is desktop)
    window.composer.setFocus()
    qtbot.keyClick(window.composer, Qt.Key.Key_I, Qt.KeyboardModifier.ControlModifier)
    view = window.context_view
    assert view is not None and view.isVisible()
    usage = process.usage
    tools = ["tools"] if usage.segments.get(Segment.TOOLS) else []  # when the app has tools
    assert keys(view) == [
        "system", "pinned", "summary", "paged_in", "history", *tools, "reserve", "free",
    ]  # fmt: skip
    assert item(view, "system").text(TOKENS) == f"{usage.segments[Segment.SYSTEM]:,}"
    assert item(view, "free").text(TOKENS) == f"{usage.free:,}"

    type_and_send(qtbot, window, "Where does the okapi live?")
    qtbot.waitUntil(lambda: item(view, "turn:1") is not None, timeout=WAIT)
    qtbot.waitUntil(lambda: not window.generating, timeout=WAIT)
    qtbot.waitUntil(
        lambda: (
            item(view, "history").text(TOKENS) == f"{process.usage.segments[Segment.HISTORY]:,}"
        ),
        timeout=WAIT,
    )
    turn = item(view, "turn:1")
    assert "okapi" in turn.text(0)
    view.tree.setCurrentItem(turn)
    assert "Where does the okapi live?" in view.text.toPlainText()

    # The kernel's pager moved turn 1 out and summarised it; a page came in for the turn.
    process.summary = "The user asked where the okapi lives."
    process.first_turn = 2
    process.history.clear()
    process.paged_in = [
        Page("/Notes/okapi.md#1", "/Notes/okapi.md", "chunk 1 of 1", "Okapis live in the Congo.",
             ("c1",), by_pager=True),
    ]  # fmt: skip
    bus = window.kernel.bus
    bus.publish(TurnsEvicted(process.pid, 1, 1, 40, f"{process.memory_folder}/turns-0001.md"))
    bus.publish(SummaryUpdated(process.pid, 30, "model"))
    qtbot.waitUntil(lambda: item(view, "turn:1") is None, timeout=WAIT)
    summary = item(view, "summary")
    assert summary.text(2) == "turns 1\u20131"
    view.tree.setCurrentItem(summary)
    text = view.text.toPlainText()
    assert process.memory_folder in text and "where the okapi lives" in text
    page = item(view, "page:/Notes/okapi.md#1")
    assert page is not None and page.text(2) == "paged in for this turn"

    window.close_without_asking()
    qtbot.waitUntil(lambda: not view.isVisible(), timeout=WAIT)
