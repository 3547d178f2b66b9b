"""The task manager's Hibernated and History tabs on a real kernel (fake backend) and real
session files: what a user sees in them and can do with them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from llmos.desktop.bridge import KernelBridge
from llmos.desktop.session import DesktopSession
from llmos.desktop.session_lists import HIBERNATED_HINT, HISTORY_HINT, SessionTable
from llmos.desktop.session_models import when
from llmos.desktop.task_manager import TaskManager
from llmos.kernel.kernel import Kernel
from llmos.kernel.process import Process
from llmos.kernel.sessions import SessionStore
from llmos.kernel.state_files import encode
from tests.fakes import FakeDriver


@dataclass
class Lists:
    session: DesktopSession
    bridge: KernelBridge
    manager: TaskManager
    qtbot: Any
    arun: Any

    @property
    def kernel(self) -> Kernel:
        assert self.session.kernel is not None
        return self.session.kernel

    @property
    def hibernated(self) -> SessionTable:
        return self.manager.sessions.hibernated

    @property
    def history(self) -> SessionTable:
        return self.manager.sessions.history

    def spawn(self, said: str = "") -> Process:
        process = self.arun(self.kernel.spawn("chat"))
        if said:
            self.arun(self.kernel.send(process.pid, said))
        return process

    def show(self, table: SessionTable) -> None:
        self.manager.tabs.setCurrentWidget(table)

    def cell(self, table: SessionTable, pid: int, column: str) -> Any:
        row = table.pids().index(pid)
        return table.proxy.index(row, table.model.columns.index(column)).data()

    def click(self, table: SessionTable, pid: int, *, double: bool = False) -> None:
        index = table.proxy.index(table.pids().index(pid), 0)
        where = table.table.visualRect(index).center()
        self.qtbot.mouseClick(table.table.viewport(), Qt.MouseButton.LeftButton, pos=where)
        if double:
            self.qtbot.mouseDClick(table.table.viewport(), Qt.MouseButton.LeftButton, pos=where)
        assert table.selected() is not None and table.selected().pid == pid

    def answer(self, table: SessionTable, button: str) -> None:
        box = table.confirmation
        assert box is not None
        self.qtbot.waitUntil(box.isVisible)
        (chosen,) = [b for b in box.buttons() if b.text().replace("&", "") == button]
        chosen.click()
        self.qtbot.waitUntil(lambda: table.confirmation is None)


@pytest.fixture
def lists(qtbot, arun, settings) -> Iterator[Lists]:
    session = DesktopSession(settings, driver=FakeDriver())
    bridge = KernelBridge(session.bus)
    manager = TaskManager(session, bridge)
    qtbot.addWidget(manager)
    manager.resize(1200, 480)
    manager.show()
    qtbot.waitExposed(manager)
    session.start()
    arun(session.kernel_ready())
    yield Lists(session, bridge, manager, qtbot, arun)
    bridge.close()
    arun(session.shutdown())


def test_empty_lists_say_how_they_fill(lists):
    for table, hint in ((lists.hibernated, HIBERNATED_HINT), (lists.history, HISTORY_HINT)):
        lists.show(table)
        lists.qtbot.waitUntil(table.placeholder.isVisible)
        assert table.placeholder.text() == hint
        assert table.table.isHidden()
        assert not table.open_action.isEnabled() and not table.delete_action.isEnabled()
    assert "Ctrl+H" in HIBERNATED_HINT
    assert lists.manager.tabs.tabText(1) == "Hibernated"


def test_wake_asks_for_the_hibernated_process_by_double_click_enter_and_action(lists):
    process = lists.spawn("My cat is called Miso.")
    lists.arun(lists.kernel.hibernate(process.pid))
    table = lists.hibernated
    lists.show(table)
    lists.qtbot.waitUntil(lambda: table.pids() == [process.pid])
    assert lists.cell(table, process.pid, "Status") == "Hibernated"
    assert lists.cell(table, process.pid, "First line") == "My cat is called Miso."
    assert lists.cell(table, process.pid, "Turns") == "1"
    assert lists.cell(table, process.pid, "App") == "Chat"
    assert lists.cell(table, process.pid, "Started") == when(process.counters.started_at)
    assert lists.cell(table, process.pid, "Context RAM").endswith(" tokens")
    problem = table.model.columns.index("Problem")
    assert table.table.isColumnHidden(problem)  # nothing wrong: no empty column
    assert lists.manager.tabs.tabText(1) == "Hibernated (1)"

    with lists.qtbot.waitSignal(lists.manager.wakeRequested) as woken:
        lists.click(table, process.pid, double=True)
    assert woken.args == [process.pid]
    lists.manager.activateWindow()
    lists.qtbot.waitUntil(lists.manager.isActiveWindow)
    table.table.setFocus()
    with lists.qtbot.waitSignal(lists.manager.wakeRequested) as woken:
        lists.qtbot.keyClick(table.table, Qt.Key.Key_Return)
    assert woken.args == [process.pid]
    with lists.qtbot.waitSignal(lists.manager.wakeRequested) as woken:
        table.open_action.trigger()
    assert woken.args == [process.pid]

    # Woken (by the desktop): it leaves the list.
    lists.arun(lists.kernel.restore(lists.arun(lists.kernel.load_saved(process.pid))))
    lists.qtbot.waitUntil(lambda: table.pids() == [])
    assert lists.manager.tabs.tabText(1) == "Hibernated"


def test_a_process_its_llmos_lost_is_listed_as_interrupted(lists):
    process = lists.spawn("Plan my week")
    lists.arun(lists.kernel.hibernate(process.pid))
    # What a crash leaves: its log and info say running, and no LLM-OS holds its lock.
    folder = lists.kernel.sessions.folder(process.pid)
    with open(folder / "log.jsonl", "ab") as log:
        log.write(encode({"op": "set", "status": "running"}))
    data = json.loads((folder / "info.json").read_text())
    (folder / "info.json").write_text(json.dumps({**data, "status": "running"}))
    table = lists.hibernated
    lists.show(table)
    lists.qtbot.waitUntil(lambda: table.pids() == [process.pid])
    assert lists.cell(table, process.pid, "Status") == "Interrupted \u2014 LLM-OS stopped"
    lists.click(table, process.pid)
    assert table.open_action.isEnabled()


def test_ended_processes_show_in_history_newest_first_and_reopen(lists):
    older = lists.spawn("Tell me about otters")
    lists.kernel.kill(older.pid)
    newer = lists.spawn("Write a limerick about tea")
    lists.kernel.exit(newer.pid)
    live = lists.spawn("Still talking")
    table = lists.history
    lists.show(table)
    lists.qtbot.waitUntil(lambda: table.pids() == [newer.pid, older.pid])
    assert lists.cell(table, older.pid, "First line") == "Tell me about otters"
    assert lists.cell(table, older.pid, "Turns") == "1"
    tokens = older.counters.prompt_tokens, older.counters.generated_tokens
    assert all(tokens)
    assert lists.cell(table, older.pid, "Tokens") == "{} in + {} out".format(*tokens)
    assert live.pid not in lists.hibernated.pids()

    lists.click(table, older.pid)
    with lists.qtbot.waitSignal(lists.manager.reopenRequested) as reopened:
        table.open_action.trigger()
    assert reopened.args == [older.pid]


def test_delete_asks_first_then_removes_the_files(lists):
    process = lists.spawn("Something private")
    lists.kernel.kill(process.pid)
    folder = lists.kernel.sessions.folder(process.pid)
    table = lists.history
    lists.show(table)
    lists.qtbot.waitUntil(lambda: table.pids() == [process.pid])
    lists.click(table, process.pid)

    table.delete_action.trigger()
    box = table.confirmation
    assert box is not None and box.icon() == QMessageBox.Icon.Warning
    assert "Chat (pid" in box.text()
    assert "Something private" in box.informativeText()
    assert "cannot be reopened" in box.informativeText()
    lists.answer(table, "Cancel")
    assert folder.is_dir()

    table.delete_action.trigger()
    lists.answer(table, "Delete")
    lists.qtbot.waitUntil(lambda: table.pids() == [])
    assert not folder.exists()
    assert table.placeholder.isVisible()


def test_deleting_a_process_another_llmos_runs_says_so(lists, tmp_path):
    process = lists.spawn("hello")
    lists.arun(lists.kernel.hibernate(process.pid))
    table = lists.hibernated
    lists.show(table)
    lists.qtbot.waitUntil(lambda: table.pids() == [process.pid])
    lists.click(table, process.pid)
    table.delete_action.trigger()
    other = SessionStore(lists.kernel.sessions.root)  # another LLM-OS woke it meanwhile
    other.claim(process.pid)
    try:
        lists.answer(table, "Delete")
        lists.qtbot.waitUntil(table.notice.isVisible)
        assert "running in another LLM-OS" in table.notice.text()
        assert lists.kernel.sessions.folder(process.pid).is_dir()
    finally:
        other.release(process.pid)


def test_a_damaged_session_is_listed_with_its_problem_and_can_be_deleted(lists):
    store = lists.kernel.sessions
    pid = lists.arun(asyncio.to_thread(store.allocate_pid))
    store.folder(pid).mkdir(parents=True, exist_ok=True)
    store.log_path(pid).write_bytes(b"this is not a session log\n")
    table = lists.hibernated
    lists.show(table)
    lists.qtbot.waitUntil(lambda: table.pids() == [pid])
    assert lists.cell(table, pid, "Status") == "Damaged"
    problem = lists.cell(table, pid, "Problem")
    store_says = lists.arun(asyncio.to_thread(store.info, pid)).problem
    assert store_says and problem.casefold().startswith(store_says.casefold().rstrip("."))
    assert not table.table.isColumnHidden(table.model.columns.index("Problem"))
    assert lists.manager.tabs.tabText(1) == "Hibernated"  # none of them can be woken
    lists.click(table, pid)
    assert not table.open_action.isEnabled()

    table.delete_action.trigger()
    assert table.confirmation is not None and "damaged" in table.confirmation.text()
    lists.answer(table, "Delete")
    lists.qtbot.waitUntil(lambda: table.pids() == [])
    assert not store.folder(pid).exists()


def test_a_narrow_panel_keeps_the_first_line_in_sight(lists):
    process = lists.spawn("Tell me about otters")
    lists.arun(lists.kernel.hibernate(process.pid))
    table = lists.hibernated
    lists.show(table)
    lists.qtbot.waitUntil(lambda: table.pids() == [process.pid])
    header = table.table.horizontalHeader()

    def shown() -> set[str]:
        columns = table.model.columns
        return {name for i, name in enumerate(columns) if not header.isSectionHidden(i)}

    lists.manager.resize(460, 300)
    lists.qtbot.waitUntil(lambda: "Context RAM" not in shown())
    assert {"App", "Status", "First line"} <= shown()
    first_line = table.model.columns.index("First line")
    assert header.sectionViewportPosition(first_line) < table.table.viewport().width()
    lists.manager.resize(1800, 300)
    lists.qtbot.waitUntil(lambda: shown() == set(table.model.columns) - {"Problem"})
