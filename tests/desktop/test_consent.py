"""Consent before sensitive syscalls: the question shows in the asking process's window, and
the user's answer (or a window closing) decides."""

from __future__ import annotations

import asyncio

import pytest
from PySide6.QtCore import Qt

from llmos.desktop.agent_window import AgentWindow
from llmos.desktop.desktop_window import DesktopWindow
from llmos.kernel.process import Process
from tests.desktop.driving import WAIT, open_from_launcher
from tests.fakes import FakeDriver

DETAIL = "read the file /home/ada/plan.txt"


@pytest.fixture
def desktop(qtbot, open_desktop) -> DesktopWindow:
    desktop = open_desktop(FakeDriver())
    qtbot.waitUntil(lambda: desktop.session.status.phase == "ready", timeout=WAIT)
    return desktop


def ask(window_or_process: AgentWindow | Process, desktop: DesktopWindow) -> asyncio.Task[bool]:
    kernel = desktop.session.kernel
    assert kernel is not None
    if isinstance(window_or_process, AgentWindow):
        process = kernel.get(window_or_process.pid)
    else:
        process = window_or_process
    return asyncio.get_running_loop().create_task(kernel.consent.ask(process, "files.read", DETAIL))


@pytest.mark.parametrize(
    ("button", "allowed"),
    [("once_button", True), ("always_button", True), ("deny_button", False)],
)
def test_each_answer_reaches_the_kernel(qtbot, desktop, button, allowed):
    window = open_from_launcher(qtbot, desktop)
    asking = ask(window, desktop)
    bar = window.consent
    qtbot.waitUntil(bar.isVisible)
    assert bar.text.text() == f"Chat (pid {window.pid}) wants to {DETAIL}."
    assert bar.detail.text() == (
        "Permission files.read: read files on this computer (asks for each file)"
    )
    assert not asking.done()  # the kernel waits; the desktop does not

    qtbot.mouseClick(getattr(bar, button), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(asking.done)
    assert asking.result() is allowed
    assert bar.isHidden()


def test_always_is_not_asked_again_for_that_app(qtbot, desktop):
    first = open_from_launcher(qtbot, desktop)
    asking = ask(first, desktop)
    qtbot.waitUntil(first.consent.isVisible)
    first.consent.always_button.click()
    qtbot.waitUntil(asking.done)

    second = open_from_launcher(qtbot, desktop)  # another process of the same app
    again = ask(second, desktop)
    qtbot.waitUntil(again.done)
    assert again.result() is True
    assert second.consent.isHidden() and first.consent.isHidden()


def test_always_answers_the_same_questions_waiting_elsewhere(qtbot, desktop):
    first = open_from_launcher(qtbot, desktop)
    second = open_from_launcher(qtbot, desktop)
    lonely = _spawn(qtbot, desktop)  # no window: asks in the dialog
    asking = [ask(first, desktop), ask(second, desktop), ask(lonely, desktop)]
    qtbot.waitUntil(lambda: second.consent.isVisible() and desktop.consent.dialog is not None)

    second.consent.always_button.click()
    qtbot.waitUntil(lambda: all(task.done() for task in asking))
    assert [task.result() for task in asking] == [True, True, True]
    assert first.consent.isHidden() and desktop.consent.dialog.isHidden()


def test_once_is_asked_again(qtbot, desktop):
    window = open_from_launcher(qtbot, desktop)
    asking = ask(window, desktop)
    qtbot.waitUntil(window.consent.isVisible)
    window.consent.once_button.click()
    qtbot.waitUntil(asking.done)

    again = ask(window, desktop)
    qtbot.waitUntil(window.consent.isVisible)
    window.consent.deny_button.click()
    qtbot.waitUntil(again.done)
    assert again.result() is False


def test_escape_denies_and_the_focus_goes_back(qtbot, desktop):
    window = open_from_launcher(qtbot, desktop)
    desktop.activateWindow()
    window.composer.setFocus()
    qtbot.waitUntil(window.composer.hasFocus)
    asking = ask(window, desktop)
    bar = window.consent
    qtbot.waitUntil(bar.isVisible)
    for button in (bar.once_button, bar.always_button, bar.deny_button):
        assert button.focusPolicy() & Qt.FocusPolicy.TabFocus
    assert bar.deny_button.hasFocus()  # the window in use: the answer is a key away

    qtbot.keyClick(bar.deny_button, Qt.Key.Key_Escape)
    qtbot.waitUntil(asking.done)
    assert asking.result() is False
    assert bar.isHidden()
    assert window.composer.hasFocus()


def test_requests_queue_and_are_answered_in_turn(qtbot, desktop):
    window = open_from_launcher(qtbot, desktop)
    first, second = ask(window, desktop), ask(window, desktop)
    bar = window.consent
    qtbot.waitUntil(lambda: len(bar.requests) == 2)
    assert bar.more.text() == "1 more question waiting"

    bar.deny_button.click()
    qtbot.waitUntil(first.done)
    assert first.result() is False and not second.done()
    assert bar.isVisible() and bar.more.text() == ""

    bar.once_button.click()
    qtbot.waitUntil(second.done)
    assert second.result() is True
    assert bar.isHidden()


def test_closing_the_window_denies(qtbot, desktop):
    window = open_from_launcher(qtbot, desktop)
    asking = ask(window, desktop)
    qtbot.waitUntil(window.consent.isVisible)

    window.close_without_asking()
    qtbot.waitUntil(asking.done)
    assert asking.result() is False


def test_a_process_that_ends_withdraws_its_question(qtbot, desktop):
    kernel = desktop.session.kernel
    window = open_from_launcher(qtbot, desktop)
    child = _spawn(qtbot, desktop, parent=window.pid)
    asking = ask(child, desktop)
    bar = window.consent
    qtbot.waitUntil(bar.isVisible)  # a child without a window asks in its parent's

    kernel.kill(child.pid)
    qtbot.waitUntil(asking.done)
    assert asking.result() is False
    assert bar.isHidden()
    assert window.pid is not None and kernel.get(window.pid).alive


def test_a_child_asks_in_its_parents_window(qtbot, desktop):
    window = open_from_launcher(qtbot, desktop)
    child = _spawn(qtbot, desktop, parent=window.pid)
    asking = ask(child, desktop)
    qtbot.waitUntil(window.consent.isVisible)
    assert f"(pid {child.pid})" in window.consent.text.text()

    window.consent.once_button.click()
    qtbot.waitUntil(asking.done)
    assert asking.result() is True


def test_a_process_without_a_window_asks_in_a_dialog_of_its_own(qtbot, desktop):
    process = _spawn(qtbot, desktop)
    asking = ask(process, desktop)
    qtbot.waitUntil(
        lambda: desktop.consent.dialog is not None and desktop.consent.dialog.isVisible()
    )
    dialog = desktop.consent.dialog
    assert f"(pid {process.pid})" in dialog.bar.text.text()
    assert not dialog.isModal()

    dialog.close()  # closing it is a No
    qtbot.waitUntil(asking.done)
    assert asking.result() is False
    assert dialog.isHidden()


def _spawn(qtbot, desktop: DesktopWindow, parent: int | None = None) -> Process:
    kernel = desktop.session.kernel
    assert kernel is not None
    task = asyncio.get_running_loop().create_task(kernel.spawn("chat", parent_pid=parent))
    qtbot.waitUntil(task.done, timeout=WAIT)
    return task.result()
