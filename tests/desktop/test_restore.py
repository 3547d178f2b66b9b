"""Sessions on the desktop: windows that come back after a restart, where they were, with their
conversations; held processes explained in their windows; windows put to sleep elsewhere."""

from __future__ import annotations

import shutil

from PySide6.QtCore import QRect, Qt
from PySide6.QtWidgets import QMdiArea

from llmos.desktop.agent_window import AgentWindow
from llmos.desktop.desktop_window import DesktopWindow
from llmos.desktop.process_table import PID, RAM
from llmos.desktop.ram_bar import USAGE_ROLE
from llmos.kernel.process import ProcessState
from llmos.resources import resource_path
from tests.desktop.driving import WAIT, long_answer, open_from_launcher, type_and_send
from tests.fakes import FakeDriver, FakeModel


def sub_of(window: AgentWindow):
    return window.parentWidget()


def ram_in_task_manager(desktop: DesktopWindow) -> dict[int, int]:
    """Each row's pid and the context RAM it shows."""
    proxy = desktop.task_manager.proxy
    rows = {}
    for row in range(proxy.rowCount()):
        usage, _budget = proxy.index(row, RAM).data(USAGE_ROLE)
        rows[int(proxy.index(row, PID).data())] = usage.used if usage is not None else 0
    return rows


def by_title(desktop: DesktopWindow) -> dict[str, AgentWindow]:
    return {w.windowTitle(): w for w in desktop.agent_windows}


def test_windows_come_back_after_a_restart_where_they_were(qtbot, open_desktop):
    first = open_desktop(FakeDriver())
    windows = [open_from_launcher(qtbot, first, name) for name in ("Chat", "Writer", "Coder")]
    for window in windows:
        type_and_send(qtbot, window, f"hello {window.manifest.name}")
    for window in windows:
        qtbot.waitUntil(lambda w=window: not w.generating and w.chat.messages == 2, timeout=WAIT)
    sub_of(windows[1]).setGeometry(QRect(300, 120, 500, 380))
    first.app_windows.bring_to_front(windows[0].pid)  # Chat, opened first, on top
    places = {w.windowTitle(): sub_of(w).geometry() for w in windows}
    said = {w.windowTitle(): w.chat.toPlainText() for w in windows}
    pids = [w.pid for w in windows]
    titles = [w.windowTitle() for w in windows]
    first.close()
    qtbot.waitUntil(first.closed.done, timeout=WAIT)

    driver = FakeDriver()
    second = open_desktop(driver)
    qtbot.waitUntil(lambda: len(second.agent_windows) == 3, timeout=WAIT)
    back = by_title(second)
    assert set(back) == set(titles)
    for title, window in back.items():
        assert sub_of(window).geometry() == places[title]
        for line in ("You", said[title].split("\n")[1], said[title].split("\n")[-1]):
            assert line in window.chat.toPlainText()
        assert not window.starters.isVisible()
    # In the taskbar in the order they were opened; stacked as they were, Chat on top.
    assert [w.windowTitle() for w in second.agent_windows] == titles
    buttons = second.taskbar.findChildren(type(second.taskbar.start_button), "WindowButton")
    assert [b.toolTip() for b in buttons] == titles
    stacking = second.workspace.subWindowList(QMdiArea.WindowOrder.StackingOrder)
    assert [s.widget().windowTitle() for s in stacking] == [*titles[1:], titles[0]]
    assert second.workspace.activeSubWindow() is sub_of(back[titles[0]])

    qtbot.waitUntil(lambda: all(w.pid is not None for w in back.values()), timeout=WAIT)
    qtbot.waitUntil(lambda: set(ram_in_task_manager(second)) == set(pids), timeout=WAIT)
    assert all(used > 0 for used in ram_in_task_manager(second).values())

    chat = back[titles[0]]
    type_and_send(qtbot, chat, "and again")
    qtbot.waitUntil(lambda: not chat.generating and chat.chat.messages == 4, timeout=WAIT)
    sent = [(m["role"], m["content"]) for m in driver.requests[-1].messages]
    assert ("user", "hello Chat") in sent and sent[-1] == ("user", "and again")
    assert any(role == "assistant" for role, _ in sent[:-1])


def test_a_moved_window_is_written_down_once_it_settles(qtbot, open_desktop):
    desktop = open_desktop(FakeDriver())
    window = open_from_launcher(qtbot, desktop)
    process = window.kernel.get(window.pid)
    qtbot.waitUntil(lambda: process.window is not None, timeout=WAIT)
    assert process.window["open"] is True
    sub_of(window).setGeometry(QRect(200, 100, 480, 360))
    sub_of(window).setGeometry(QRect(210, 110, 480, 360))
    qtbot.waitUntil(lambda: process.window["x"] == 210, timeout=WAIT)
    assert process.window == {
        "open": True,
        "x": 210,
        "y": 110,
        "w": 480,
        "h": 360,
        "state": "normal",
        "z": 0,
        "order": 0,
    }
    sub_of(window).showMaximized()
    qtbot.waitUntil(lambda: process.window["state"] == "maximized", timeout=WAIT)
    assert (process.window["x"], process.window["w"]) == (210, 480)  # its normal place


def test_a_removed_app_comes_back_held_with_the_reason_in_its_window(qtbot, open_desktop, settings):
    user_apps = settings.data_dir / "apps"
    shutil.copytree(resource_path("apps") / "writer", user_apps / "poet")
    manifest = user_apps / "poet" / "app.toml"
    text = manifest.read_text().replace('id = "writer"', 'id = "poet"')
    manifest.write_text(text.replace('name = "Writer"', 'name = "Poet"'))
    first = open_desktop(FakeDriver())
    poet = open_from_launcher(qtbot, first, "Poet")
    type_and_send(qtbot, poet, "a line about the sea")
    qtbot.waitUntil(lambda: not poet.generating and poet.chat.messages == 2, timeout=WAIT)
    first.close()
    qtbot.waitUntil(first.closed.done, timeout=WAIT)

    shutil.rmtree(user_apps / "poet")
    second = open_desktop(FakeDriver())
    qtbot.waitUntil(lambda: len(second.agent_windows) == 1, timeout=WAIT)
    window = second.agent_windows[0]
    qtbot.waitUntil(lambda: window.pid is not None, timeout=WAIT)
    assert window.windowTitle() == f"Poet \u00b7 {poet.pid}"
    assert "a line about the sea" in window.chat.toPlainText()
    assert window.kernel.get(window.pid).state is ProcessState.SUSPENDED
    assert window.banner.isVisible()
    assert "Poet was removed" in window.banner_text.text()
    assert not window.held.choose_button.isVisible()  # another model would not help
    # Sending keeps the text and says why nothing happens.
    type_and_send(qtbot, window, "more please")
    assert window.composer.toPlainText() == "more please"
    assert "a line about the sea" in window.chat.toPlainText()
    assert window.chat.messages == 2
    assert "Poet was removed" in window.banner_text.text()


def test_a_gone_model_is_chosen_again_from_the_window(qtbot, open_desktop):
    old = FakeDriver(models=[FakeModel("old-model", 8192), FakeModel("new-model", 4096)])
    first = open_desktop(old)
    window = open_from_launcher(qtbot, first)
    assert window.kernel.get(window.pid).model in ("old-model", "new-model")
    model = window.kernel.get(window.pid).model
    type_and_send(qtbot, window, "hello")
    qtbot.waitUntil(lambda: not window.generating and window.chat.messages == 2, timeout=WAIT)
    first.close()
    qtbot.waitUntil(first.closed.done, timeout=WAIT)

    other = "new-model" if model == "old-model" else "old-model"
    second = open_desktop(FakeDriver(models=[FakeModel(other, 8192)]))
    qtbot.waitUntil(lambda: len(second.agent_windows) == 1, timeout=WAIT)
    back = second.agent_windows[0]
    qtbot.waitUntil(lambda: back.pid is not None, timeout=WAIT)
    assert f"{model} is not installed" in back.banner_text.text()
    assert back.held.choose_button.isVisible()
    qtbot.mouseClick(back.held.choose_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: back.held.menu is not None and back.held.menu.isVisible())
    names = [action.text() for action in back.held.menu.actions()]
    assert names == [other]
    back.held.menu.actions()[0].trigger()
    qtbot.waitUntil(lambda: not back.banner.isVisible(), timeout=WAIT)
    back.held.menu.close()
    assert back.kernel.get(back.pid).model == other
    type_and_send(qtbot, back, "still there?")
    qtbot.waitUntil(lambda: not back.generating and back.chat.messages == 4, timeout=WAIT)


def test_a_window_put_to_sleep_elsewhere_closes_and_stays_closed(qtbot, open_desktop, arun):
    first = open_desktop(FakeDriver())
    keep, sleeper = open_from_launcher(qtbot, first), open_from_launcher(qtbot, first)
    kernel, pid = sleeper.kernel, sleeper.pid
    arun(kernel.hibernate(pid))
    qtbot.waitUntil(lambda: first.agent_windows == [keep], timeout=WAIT)
    assert kernel.sessions.info(pid).status == "hibernated"  # not killed
    first.close()
    qtbot.waitUntil(first.closed.done, timeout=WAIT)

    # The next start brings back the window that was on screen, not the one put to sleep;
    # waking it opens its window again.
    second = open_desktop(FakeDriver())
    qtbot.waitUntil(lambda: len(second.agent_windows) == 1, timeout=WAIT)
    assert second.agent_windows[0].windowTitle() == f"Chat \u00b7 {keep.pid}"
    second.wake(pid)
    qtbot.waitUntil(lambda: len(second.agent_windows) == 2, timeout=WAIT)
    woken = second.agent_windows[-1]
    qtbot.waitUntil(lambda: woken.pid == pid, timeout=WAIT)
    assert woken.windowTitle() == f"Chat \u00b7 {pid}"


def test_reopen_starts_a_new_process_with_the_conversation(qtbot, open_desktop):
    desktop = open_desktop(FakeDriver())
    window = open_from_launcher(qtbot, desktop)
    type_and_send(qtbot, window, "remember the lighthouse")
    qtbot.waitUntil(lambda: not window.generating and window.chat.messages == 2, timeout=WAIT)
    old = window.pid
    window.close_without_asking()
    qtbot.waitUntil(lambda: desktop.agent_windows == [], timeout=WAIT)
    desktop.reopen(old)
    qtbot.waitUntil(lambda: len(desktop.agent_windows) == 1, timeout=WAIT)
    again = desktop.agent_windows[0]
    qtbot.waitUntil(lambda: again.pid is not None, timeout=WAIT)
    assert again.pid != old and again.windowTitle() == f"Chat \u00b7 {again.pid}"
    assert "remember the lighthouse" in again.chat.toPlainText()


def test_closing_the_desktop_mid_answer_keeps_what_came(qtbot, open_desktop):
    first = open_desktop(FakeDriver(token_delay=0.01, answer=long_answer))
    window = open_from_launcher(qtbot, first)
    type_and_send(qtbot, window, "talk for a while")
    qtbot.waitUntil(lambda: "word3" in window.chat.toPlainText(), timeout=WAIT)
    first.close()  # no question: the process sleeps, it does not end
    qtbot.waitUntil(first.closed.done, timeout=WAIT)

    second = open_desktop(FakeDriver())
    qtbot.waitUntil(lambda: len(second.agent_windows) == 1, timeout=WAIT)
    text = second.agent_windows[0].chat.toPlainText()
    assert "talk for a while" in text and "word3" in text
    assert "Interrupted" in text
