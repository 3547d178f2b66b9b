"""The desktop as a user drives it: real widgets offscreen, a real kernel on the fake driver or
on the real ``ollama`` client talking to the Ollama-protocol test server."""

from __future__ import annotations

import asyncio

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QMenu, QMessageBox

from llmos.config import load_settings
from llmos.desktop.help_dialog import HelpDialog
from llmos.desktop.ram_bar import ram_text
from llmos.desktop.settings_dialog import SettingsDialog
from llmos.kernel.process import ProcessState
from tests.desktop.driving import (
    WAIT,
    long_answer,
    open_from_launcher,
    open_from_launcher_no_pid,
    type_and_send,
)
from tests.fakes import FakeDriver, tokens_of


def test_three_apps_from_the_launcher_stream_over_real_http(qtbot, open_desktop, ollama_server):
    ollama_server.token_delay = 0.002
    desktop = open_desktop(engine="ollama", ollama_host=ollama_server.host, parallel=3)
    qtbot.waitUntil(lambda: desktop.session.status.phase == "ready", timeout=WAIT)
    windows = [open_from_launcher(qtbot, desktop) for _ in range(3)]
    assert len({w.pid for w in windows}) == 3
    assert all("qwen2.5:0.5b" in w.model_label.text() for w in windows)
    taskbar_titles = {
        b.toolTip()
        for b in desktop.taskbar.findChildren(type(desktop.taskbar.start_button), "WindowButton")
    }
    assert taskbar_titles == {f"Chat \u00b7 {w.pid}" for w in windows}

    for index, window in enumerate(windows):
        type_and_send(qtbot, window, f"question number {index}")
    for index, window in enumerate(windows):
        qtbot.waitUntil(lambda w=window: not w.generating, timeout=WAIT)
        text = window.chat.toPlainText()
        assert "You" in text and f"question number {index}" in text
        others = {f"question number {i}" for i in range(3)} - {f"question number {index}"}
        assert not any(other in text for other in others)  # each window its own process
        answer = window.kernel.get(window.pid).history[-1]["content"]
        assert answer and answer.split()[-1] in text
        assert window.composer.toPlainText() == ""

    # The task manager has a row per process, and its context RAM grew with the answers.
    model = desktop.task_manager.model
    qtbot.waitUntil(lambda: model.rowCount() == 3)
    for window in windows:
        usage = window.kernel.get(window.pid).usage
        assert usage is not None and usage.segments["history"] > 0
        assert window.meter.text() == ram_text(usage, window.kernel.get(window.pid).budget)


def test_streamed_text_is_batched_per_frame(qtbot, open_desktop):
    driver = FakeDriver(token_delay=0.0005, answer=long_answer)
    desktop = open_desktop(driver)
    window = open_from_launcher(qtbot, desktop)
    batches: list[str] = []
    desktop.bridge.tokens.connect(lambda pid, text: batches.append(text))
    type_and_send(qtbot, window, "go")
    qtbot.waitUntil(lambda: not window.generating, timeout=WAIT)
    streamed = "".join(batches)
    assert streamed == long_answer([])
    assert len(batches) < len(tokens_of(streamed)) / 4  # many tokens per widget update
    assert "word399." in window.chat.toPlainText()


def test_stop_cancels_the_answer_at_once_and_keeps_what_came(qtbot, open_desktop):
    driver = FakeDriver(token_delay=0.02, answer=long_answer)
    desktop = open_desktop(driver)
    window = open_from_launcher(qtbot, desktop)
    type_and_send(qtbot, window, "talk for a while")
    qtbot.waitUntil(lambda: "word3" in window.chat.toPlainText(), timeout=WAIT)
    assert window.stop_button.isVisible() and not window.send_button.isVisible()
    qtbot.mouseClick(window.stop_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.generating, timeout=2000)
    process = window.kernel.get(window.pid)
    assert process.state is ProcessState.READY
    assert driver.closed_early == 1 and driver.active == 0
    assert process.history[-1].get("interrupted") is True
    assert "Stopped." in window.chat.toPlainText()
    assert window.send_button.isVisible()
    # The process goes on answering.
    driver.answer = lambda messages: "fine again."
    type_and_send(qtbot, window, "again")
    qtbot.waitUntil(lambda: "fine again." in window.chat.toPlainText(), timeout=WAIT)


def test_kill_from_the_task_manager_closes_the_window(qtbot, open_desktop):
    driver = FakeDriver(token_delay=0.01, answer=long_answer)
    desktop = open_desktop(driver)
    keep, doomed = open_from_launcher(qtbot, desktop), open_from_launcher(qtbot, desktop)
    type_and_send(qtbot, doomed, "busy")
    qtbot.waitUntil(lambda: doomed.generating and "word1" in doomed.chat.toPlainText())
    manager = desktop.task_manager
    qtbot.waitUntil(lambda: manager.model.rowCount() == 2)
    manager.select_pid(doomed.pid)
    manager.kill_action.trigger()
    qtbot.waitUntil(lambda: desktop.agent_windows == [keep], timeout=WAIT)
    assert not doomed.kernel.get(doomed.pid).alive
    qtbot.waitUntil(lambda: manager.model.rowCount() == 1)
    button = type(desktop.taskbar.start_button)
    qtbot.waitUntil(lambda: len(desktop.taskbar.findChildren(button, "WindowButton")) == 1)
    qtbot.waitUntil(lambda: driver.active == 0)


def test_closing_a_window_mid_answer_asks_first(qtbot, open_desktop):
    driver = FakeDriver(token_delay=0.01, answer=long_answer)
    desktop = open_desktop(driver)
    window = open_from_launcher(qtbot, desktop)
    type_and_send(qtbot, window, "busy")
    qtbot.waitUntil(lambda: window.generating)
    desktop.close_window_action.trigger()

    def question() -> QMessageBox | None:
        boxes = [w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox)]
        return next((b for b in boxes if b.isVisible()), None)

    qtbot.waitUntil(lambda: question() is not None)
    assert desktop.agent_windows == [window]  # nothing closed yet
    question().button(QMessageBox.StandardButton.Close).click()
    qtbot.waitUntil(lambda: desktop.agent_windows == [], timeout=WAIT)
    qtbot.waitUntil(lambda: not window.kernel.get(window.pid).alive)


def test_ollama_down_is_explained_in_the_window(qtbot, open_desktop, dead_host):
    desktop = open_desktop(engine="ollama", ollama_host=dead_host)
    window = open_from_launcher_no_pid(qtbot, desktop)
    qtbot.waitUntil(window.banner.isVisible, timeout=WAIT)
    text = window.banner_text.text()
    assert "Ollama is not reachable" in text and "ollama serve" in text
    assert window.retry_button.isVisible() and window.settings_button.isVisible()
    qtbot.waitUntil(
        lambda: (
            not desktop.session.status.connected
            and "not answering" in desktop.taskbar.status.text()
        ),
        timeout=WAIT,
    )


def test_a_model_that_is_not_installed_says_how_to_get_it(qtbot, open_desktop, ollama_server):
    desktop = open_desktop(engine="ollama", ollama_host=ollama_server.host, model="nosuch:7b")
    window = open_from_launcher_no_pid(qtbot, desktop)
    qtbot.waitUntil(window.banner.isVisible, timeout=WAIT)
    assert "nosuch:7b" in window.banner_text.text()
    assert "pull" in window.banner_text.text()


def test_a_message_too_large_is_given_back(qtbot, open_desktop):
    desktop = open_desktop(FakeDriver(), num_ctx=512)
    window = open_from_launcher(qtbot, desktop)
    huge = "word " * 3000
    window.composer.setPlainText(huge)
    qtbot.keyClick(window.composer, Qt.Key.Key_Return)
    qtbot.waitUntil(window.banner.isVisible, timeout=WAIT)
    assert "too large" in window.banner_text.text()
    assert window.composer.toPlainText() == huge  # nothing typed is lost
    assert window.chat.messages == 0 and "word word" not in window.chat.toPlainText()
    assert window.kernel.get(window.pid).history == []


def test_settings_are_saved_and_applied_without_restart(qtbot, open_desktop):
    desktop = open_desktop(FakeDriver())
    qtbot.waitUntil(lambda: desktop.session.kernel is not None)
    desktop.settings_action.trigger()
    dialog = desktop.findChild(SettingsDialog)
    assert dialog is not None
    qtbot.waitUntil(lambda: dialog.model.findData("fake-chat:1b") >= 0, timeout=WAIT)
    dialog.model.setCurrentIndex(dialog.model.findData("fake-chat:1b"))
    dialog.num_ctx.setValue(4096)
    dialog.theme.setCurrentIndex(dialog.theme.findData("dark"))
    dialog.button_box.button(dialog.button_box.StandardButton.Save).click()
    qtbot.waitUntil(lambda: desktop.session.kernel.num_ctx == 4096)

    saved = load_settings()
    assert (saved.model, saved.num_ctx, saved.theme) == ("fake-chat:1b", 4096, "dark")
    assert QApplication.instance().palette().window().color().lightness() < 100
    assert desktop.session.kernel.default_model == "fake-chat:1b"
    window = open_from_launcher(qtbot, desktop)
    assert window.kernel.get(window.pid).budget == 4096


def test_shortcuts_switch_close_and_toggle(qtbot, open_desktop):
    desktop = open_desktop(FakeDriver())
    first, second = open_from_launcher(qtbot, desktop), open_from_launcher(qtbot, desktop)
    workspace = desktop.workspace
    assert workspace.activeSubWindow().widget() is second
    desktop.next_action.trigger()
    assert workspace.activeSubWindow().widget() is first
    visible = desktop.task_manager_dock.isVisible()
    desktop.task_manager_action.trigger()
    assert desktop.task_manager_dock.isVisible() is not visible
    desktop.close_window_action.trigger()
    qtbot.waitUntil(lambda: desktop.agent_windows == [second])
    shortcuts = {a.text(): a.shortcuts() for a in desktop.actions() if a.shortcuts()}
    for name in (
        "Open the launcher",
        "Next window",
        "Close the window",
        "Task manager",
        "Memory explorer",
        "Quit LLM-OS",
    ):
        assert shortcuts[name], name


def test_closing_the_desktop_stops_everything(qtbot, open_desktop, caplog):
    driver = FakeDriver(token_delay=0.01, answer=long_answer)
    desktop = open_desktop(driver)
    windows = [open_from_launcher(qtbot, desktop) for _ in range(2)]
    for window in windows:
        type_and_send(qtbot, window, "busy")
    qtbot.waitUntil(lambda: driver.active >= 1)
    kernel = desktop.session.kernel
    desktop.close()
    qtbot.waitUntil(desktop.closed.done, timeout=WAIT)
    assert not desktop.isVisible()
    assert all(not p.alive for p in kernel.processes)
    assert driver.active == 0
    # The windows' cancelled turns unwind; anything they log must be seen.
    qtbot.waitUntil(lambda: all(t.done() for t in asyncio.all_tasks()), timeout=WAIT)
    errors = [r.getMessage() for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]
    assert not errors


def test_a_new_ollama_host_applies_without_restart(qtbot, open_desktop, dead_host, ollama_server):
    desktop = open_desktop(engine="ollama", ollama_host=dead_host)
    window = open_from_launcher_no_pid(qtbot, desktop)
    qtbot.waitUntil(window.banner.isVisible, timeout=WAIT)

    desktop.settings_action.trigger()
    dialog = desktop.findChild(SettingsDialog)
    dialog.host.setText(ollama_server.host)
    dialog.button_box.button(dialog.button_box.StandardButton.Save).click()
    qtbot.waitUntil(lambda: desktop.session.status.connected, timeout=WAIT)
    assert ollama_server.host in desktop.session.status.location
    assert load_settings().ollama_host == ollama_server.host

    # The window that could not start retries on the new host.
    qtbot.mouseClick(window.retry_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.pid is not None, timeout=WAIT)
    assert not window.banner.isVisible()
    type_and_send(qtbot, window, "hello again")
    qtbot.waitUntil(lambda: not window.generating and window.chat.messages == 2, timeout=WAIT)


def test_help_lists_every_shortcut(qtbot, open_desktop):
    desktop = open_desktop(FakeDriver())
    desktop.help_action.trigger()
    dialog = desktop.findChild(HelpDialog)
    qtbot.waitUntil(dialog.isVisible)
    rows = {
        dialog.table.item(r, 0).text(): dialog.table.item(r, 1).text()
        for r in range(dialog.table.rowCount())
    }
    assert rows["Open the launcher"].startswith("Ctrl+Space")
    assert rows["Task manager"] and rows["Quit LLM-OS"] == "Ctrl+Q"
    assert rows["New line in the message"] == "Shift+Enter"
    assert rows["Task manager: Kill"] and rows["Task manager: Bring to front"]
    dialog.close()


def test_bring_to_front_from_the_task_manager(qtbot, open_desktop):
    desktop = open_desktop(FakeDriver())
    first = open_from_launcher(qtbot, desktop)
    second = open_from_launcher(qtbot, desktop)
    first.parentWidget().showMinimized()
    desktop.workspace.setActiveSubWindow(second.parentWidget())
    assert desktop.workspace.activeSubWindow().widget() is second
    manager = desktop.task_manager
    qtbot.waitUntil(lambda: manager.model.rowCount() == 2)
    manager.select_pid(first.pid)
    manager.front_action.trigger()
    assert desktop.workspace.activeSubWindow().widget() is first
    assert not first.parentWidget().isMinimized()


def test_a_taskbar_button_menu_minimises_and_closes_its_window(qtbot, open_desktop):
    desktop = open_desktop(FakeDriver())
    window = open_from_launcher(qtbot, desktop)
    frame = window.parentWidget()
    button = next(
        b
        for b in desktop.taskbar.findChildren(type(desktop.taskbar.start_button), "WindowButton")
        if b.toolTip() == frame.windowTitle()
    )
    actions = {a.text(): a for a in button.findChild(QMenu).actions()}
    actions["Minimise"].trigger()
    assert frame.isMinimized()
    actions["Restore"].trigger()
    assert not frame.isMinimized()
    actions["Close"].trigger()
    qtbot.waitUntil(lambda: desktop.agent_windows == [], timeout=WAIT)
    qtbot.waitUntil(lambda: not window.kernel.get(window.pid).alive)


def test_nothing_is_sent_before_the_process_runs_and_the_text_waits(qtbot, open_desktop, dead_host):
    desktop = open_desktop(engine="ollama", ollama_host=dead_host)
    window = open_from_launcher_no_pid(qtbot, desktop)
    assert not window.send_button.isEnabled()
    type_and_send(qtbot, window, "are you there?")
    qtbot.waitUntil(window.banner.isVisible, timeout=WAIT)
    assert window.composer.toPlainText() == "are you there?"
    assert window.chat.messages == 0 and not window.send_button.isEnabled()
