"""The desktop's kernel session and settings: start-up, live changes, what gets saved."""

from __future__ import annotations

import threading
import tomllib
from dataclasses import replace

import pytest
from PySide6.QtCore import Qt

from llmos.desktop.desktop_window import DesktopWindow
from llmos.desktop.session import DesktopSession, KernelNotRunning
from llmos.desktop.settings_dialog import SettingsDialog
from tests.desktop.driving import WAIT, open_from_launcher, open_from_launcher_no_pid, type_and_send
from tests.fakes import FakeDriver


def test_progress_reported_from_the_assembly_thread_reaches_the_taskbar(qtbot, arun, settings):
    session = DesktopSession(settings, driver=FakeDriver())
    progress = arun(_make_progress(session))
    worker = threading.Thread(target=progress, args=(50, 200))
    worker.start()
    worker.join()
    qtbot.waitUntil(lambda: session.status.progress == (50, 200))
    assert "Preparing the built-in model" in session.status.message


async def _make_progress(session: DesktopSession):
    return session._progress_from_thread()


def test_a_start_that_breaks_unexpectedly_is_reported_not_hung(qtbot, arun, settings, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug in start-up")

    # Fault injection: any exception, not only the expected kinds, must reach the windows.
    monkeypatch.setattr("llmos.desktop.session.build_kernel", broken)
    session = DesktopSession(settings, driver=FakeDriver())
    session.start()
    with pytest.raises(KernelNotRunning, match=r"could not start.*a bug in start-up"):
        arun(session.kernel_ready())
    assert session.status.phase == "failed"
    arun(session.shutdown())


def test_changing_only_the_default_model_leaves_answers_streaming(
    qtbot,
    open_desktop,
    ollama_server,
):
    ollama_server.token_delay = 0.01
    desktop = open_desktop(engine="ollama", ollama_host=ollama_server.host)
    window = open_from_launcher(qtbot, desktop)
    type_and_send(qtbot, window, "tell me a long story " * 3)
    qtbot.waitUntil(lambda: window.generating and bool(window.chat.streaming_text), timeout=WAIT)
    session = desktop.session
    arun_task = session.run(session.apply(replace(session.settings, model="tiny:latest")), "t")
    qtbot.waitUntil(arun_task.done, timeout=WAIT)
    assert window.generating  # not stopped by the change
    assert session.kernel.default_model == "tiny:latest"
    qtbot.waitUntil(lambda: not window.generating, timeout=WAIT)
    assert "Stopped." not in window.chat.toPlainText()


def test_a_host_that_does_not_answer_changes_nothing(
    qtbot,
    arun,
    open_desktop,
    ollama_server,
    dead_host,
):
    desktop = open_desktop(engine="ollama", ollama_host=ollama_server.host)
    window = open_from_launcher(qtbot, desktop)
    session = desktop.session
    qtbot.waitUntil(lambda: session.status.connected, timeout=WAIT)
    before = session.settings
    with pytest.raises(Exception, match="not reachable"):
        arun(session.apply(replace(before, ollama_host=dead_host)), timeout=20)
    assert session.settings == before
    assert ollama_server.host in session.kernel.driver.location
    assert session.status.message != "Switching the model engine..."
    type_and_send(qtbot, window, "still here?")
    qtbot.waitUntil(lambda: window.chat.messages == 2 and not window.generating, timeout=WAIT)


def test_the_settings_dialog_saves_only_what_was_changed(qtbot, open_desktop, settings):
    desktop: DesktopWindow = open_desktop(FakeDriver(), num_ctx=2048)  # as if from a flag
    desktop.settings_action.trigger()
    dialog = desktop.findChild(SettingsDialog)
    dialog.theme.setCurrentIndex(dialog.theme.findData("dark"))
    dialog.button_box.button(dialog.button_box.StandardButton.Save).click()
    config = tomllib.loads(
        settings.config_file.read_text() if settings.config_file else _config_path().read_text()
    )
    assert config == {"theme": "dark"}


def _config_path():
    import os
    from pathlib import Path

    return Path(os.environ["LLMOS_CONFIG"])


def test_one_click_that_also_activates_opens_one_window(qtbot, open_desktop):
    desktop = open_desktop(FakeDriver())
    desktop.launcher_action.trigger()
    item = desktop.launcher.apps.item(0)
    desktop.launcher.apps.itemClicked.emit(item)
    desktop.launcher.apps.itemActivated.emit(item)
    qtbot.wait(50)
    assert len(desktop.agent_windows) == 1


def test_typing_in_the_launcher_prefers_a_matching_name(qtbot, open_desktop):
    desktop = open_desktop(FakeDriver())
    desktop.launcher_action.trigger()
    qtbot.keyClicks(desktop.launcher.search, "writ")  # Chat's description says "writing"
    assert desktop.launcher.apps.currentItem().text().startswith("Writer")
    qtbot.keyClick(desktop.launcher.search, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: len(desktop.agent_windows) == 1)
    assert desktop.agent_windows[0].manifest.id == "writer"


def test_retry_after_a_failed_start_starts_the_engine_again(
    qtbot, open_desktop, tmp_path, default_model
):
    model = tmp_path / "later.gguf"  # not there yet: the engine cannot start
    desktop = open_desktop(engine="embedded", model=str(model))
    window = open_from_launcher_no_pid(qtbot, desktop)
    qtbot.waitUntil(window.banner.isVisible, timeout=WAIT)
    assert desktop.session.status.phase == "failed"
    assert "later.gguf" in window.banner_text.text()

    model.symlink_to(default_model)  # the user fixes it; Retry must really try again
    qtbot.mouseClick(window.retry_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.pid is not None, timeout=60_000)
    assert desktop.session.status.phase == "ready" and not window.banner.isVisible()


def test_a_failed_message_is_kept_for_retry_even_with_a_new_draft(qtbot, open_desktop):
    driver = FakeDriver(break_after=0)  # the next call breaks before any token
    desktop = open_desktop(driver)
    window = open_from_launcher(qtbot, desktop)
    type_and_send(qtbot, window, "the important question")
    qtbot.keyClicks(window.composer, "a draft")  # typed while waiting
    qtbot.waitUntil(window.banner.isVisible, timeout=WAIT)
    assert window.composer.toPlainText() == "a draft"
    assert "important question" not in window.chat.toPlainText()
    qtbot.mouseClick(window.retry_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.chat.messages == 2 and not window.generating, timeout=WAIT)
    assert "the important question" in window.chat.toPlainText()
    assert window.composer.toPlainText() == "a draft"


def test_a_failed_engine_switch_still_applies_the_other_changes(
    qtbot, arun, open_desktop, ollama_server, dead_host
):
    desktop = open_desktop(engine="ollama", ollama_host=ollama_server.host)
    open_from_launcher(qtbot, desktop)
    session = desktop.session
    with pytest.raises(Exception, match="not reachable"):
        arun(session.apply(replace(session.settings, ollama_host=dead_host, num_ctx=4096)), 20)
    assert session.settings.num_ctx == 4096 and session.kernel.num_ctx == 4096
    assert session.settings.ollama_host == ollama_server.host
