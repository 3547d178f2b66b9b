"""The Shell window as a user drives it: commands typed into a real desktop's console."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from llmos.console import ram_text
from llmos.desktop.desktop_window import DesktopWindow
from llmos.desktop.process_table import PID, RAM
from llmos.desktop.ram_bar import USAGE_ROLE
from llmos.desktop.shell_window import ShellWindow
from tests.desktop.driving import WAIT, open_from_launcher, type_and_send
from tests.fakes import FakeDriver


def open_shell(qtbot, desktop: DesktopWindow) -> ShellWindow:
    before = len(desktop.shell_windows)
    desktop.launcher_action.trigger()
    qtbot.waitUntil(desktop.launcher.isVisible)
    qtbot.keyClicks(desktop.launcher.search, "Shell")
    qtbot.keyClick(desktop.launcher.search, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: len(desktop.shell_windows) == before + 1)
    shell = desktop.shell_windows[-1]
    qtbot.waitUntil(shell.prompt.isEnabled, timeout=WAIT)
    return shell


def run(qtbot, shell: ShellWindow, line: str) -> str:
    """Type ``line``, press Enter; the output the command added."""
    before = shell.output.toPlainText()
    with qtbot.waitSignal(shell.commandDone, timeout=WAIT):
        qtbot.keyClicks(shell.prompt, line)
        qtbot.keyClick(shell.prompt, Qt.Key.Key_Return)
    return shell.output.toPlainText()[len(before) :]


def table_ram_text(desktop: DesktopWindow, pid: int) -> str:
    """The text the task manager's RAM column draws for ``pid``."""
    model = desktop.task_manager.model
    for row in range(model.rowCount()):
        if model.index(row, PID).data() == str(pid):
            return ram_text(*model.index(row, RAM).data(USAGE_ROLE))
    raise AssertionError(f"no task manager row for {pid}")


def test_ps_free_and_kill_agree_with_the_task_manager(qtbot, open_desktop):
    desktop = open_desktop(FakeDriver())
    chat = open_from_launcher(qtbot, desktop)
    type_and_send(qtbot, chat, "hello there")
    qtbot.waitUntil(lambda: not chat.generating, timeout=WAIT)
    shell = open_shell(qtbot, desktop)
    assert len(desktop.session.kernel.processes) == 1  # a tool: the shell runs no process
    process = desktop.session.kernel.get(chat.pid)
    expected = ram_text(process.usage, process.budget)
    assert process.usage is not None and process.usage.used > 0
    qtbot.waitUntil(lambda: table_ram_text(desktop, chat.pid) == expected)

    ps = run(qtbot, shell, "ps")
    assert ps.lstrip("\n").startswith("llmos$ ps\n")
    line = next(x for x in ps.splitlines() if x.split()[:1] == [str(chat.pid)])
    assert "Chat" in line and expected in line and process.model in line
    free = run(qtbot, shell, "free")
    line = next(x for x in free.splitlines() if x.split()[:1] == [str(chat.pid)])
    assert expected in line
    assert "total:" in free

    # The taskbar lists the shell like any window.
    titles = {
        b.toolTip()
        for b in desktop.taskbar.findChildren(type(desktop.taskbar.start_button), "WindowButton")
    }
    assert "Shell" in titles

    killed = run(qtbot, shell, f"kill {chat.pid}")
    assert f"Killed {chat.pid}" in killed
    qtbot.waitUntil(lambda: desktop.task_manager.model.rowCount() == 0, timeout=WAIT)
    qtbot.waitUntil(lambda: desktop.agent_windows == [], timeout=WAIT)
    assert "No processes are running." in run(qtbot, shell, "ps")


def test_tab_completes_history_recalls_and_clear_clears(qtbot, open_desktop):
    desktop = open_desktop(FakeDriver())
    first = open_shell(qtbot, desktop)
    shell = open_shell(qtbot, desktop)  # several shells may be open
    assert shell is not first and len(desktop.shell_windows) == 2

    shell.prompt.setFocus()
    focused = QApplication.focusWidget()
    qtbot.keyClicks(shell.prompt, "fr")
    qtbot.keyClick(shell.prompt, Qt.Key.Key_Tab)
    assert shell.prompt.text() == "free"
    assert QApplication.focusWidget() is focused  # Tab completed instead of moving the focus
    shell.prompt.clear()

    # Several choices: the line grows as far as they agree, and they are listed.
    qtbot.keyClicks(shell.prompt, "c")
    qtbot.keyClick(shell.prompt, Qt.Key.Key_Tab)
    assert shell.prompt.text() == "c"
    assert shell.output.toPlainText().splitlines()[-2:] == ["llmos$ c", "cat  clear"]
    shell.prompt.clear()

    assert "Unknown command" not in run(qtbot, shell, "help")
    assert "No processes are running." in run(qtbot, shell, "ps")
    qtbot.keyClick(shell.prompt, Qt.Key.Key_Up)
    assert shell.prompt.text() == "ps"
    qtbot.keyClick(shell.prompt, Qt.Key.Key_Up)
    assert shell.prompt.text() == "help"
    qtbot.keyClick(shell.prompt, Qt.Key.Key_Down)
    qtbot.keyClick(shell.prompt, Qt.Key.Key_Down)
    assert shell.prompt.text() == ""

    run(qtbot, shell, "clear")
    assert shell.output.toPlainText() == ""
    run(qtbot, shell, "ps")
    qtbot.keyClick(shell.prompt, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier)
    assert shell.output.toPlainText() == ""
