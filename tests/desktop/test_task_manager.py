"""The task manager on a real kernel (fake backend): what a user sees and can do in it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from PySide6.QtCore import QPoint, QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPainter

from llmos.desktop.bridge import KernelBridge
from llmos.desktop.process_table import (
    APP,
    CALLS,
    EVICTIONS,
    PAGE_FAULTS,
    PAGE_INS,
    PID,
    PRIORITY,
    RAM,
    RATE,
    STATE,
    SUMMARY,
    WALL,
)
from llmos.desktop.ram_bar import USAGE_ROLE, RamMeter, paint_ram_bar, ram_text
from llmos.desktop.session import DesktopSession
from llmos.desktop.task_manager import TaskManager
from llmos.desktop.theme import current_theme
from llmos.drivers.base import Message
from llmos.kernel.context import ContextUsage, Segment
from llmos.kernel.events import PageFaults, SummaryUpdated, TurnsEvicted
from llmos.kernel.kernel import Kernel
from llmos.kernel.process import Process
from tests.fakes import FakeDriver, default_answer


def _answer(messages: Sequence[Message]) -> str:
    """Short answers, and a long one (seconds of streaming) when asked for "long"."""
    last = str(messages[-1].get("content")) if messages else ""
    return default_answer(messages, 2000 if "long" in last else 20)


@dataclass
class Desk:
    session: DesktopSession
    bridge: KernelBridge
    manager: TaskManager
    qtbot: Any
    arun: Any
    loop: asyncio.AbstractEventLoop
    streams: list[asyncio.Task[Any]] = field(default_factory=list)

    @property
    def kernel(self) -> Kernel:
        assert self.session.kernel is not None
        return self.session.kernel

    def start(self) -> Kernel:
        self.session.start()
        return self.arun(self.session.kernel_ready())

    def spawn(self, count: int = 1) -> list[Process]:
        return [self.arun(self.kernel.spawn("chat")) for _ in range(count)]

    def stream(self, pid: int, text: str = "a long answer please") -> asyncio.Task[Any]:
        task = self.loop.create_task(self.kernel.send(pid, text))
        self.streams.append(task)
        return task

    def rows(self) -> list[int]:
        proxy = self.manager.proxy
        return [int(proxy.index(row, PID).data()) for row in range(proxy.rowCount())]

    def cell(self, pid: int, column: int, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        proxy = self.manager.proxy
        row = self.rows().index(pid)
        return proxy.index(row, column).data(role)

    def click_row(self, pid: int, *, double: bool = False) -> None:
        table = self.manager.table
        index = self.manager.proxy.index(self.rows().index(pid), PID)
        where = table.visualRect(index).center()
        self.qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=where)
        if double:  # a real double-click: the first click, then the second
            self.qtbot.mouseDClick(table.viewport(), Qt.MouseButton.LeftButton, pos=where)
        assert self.manager.selected_pid() == pid


@pytest.fixture
def desk(qtbot, arun, loop, settings) -> Iterator[Desk]:
    session = DesktopSession(settings, driver=FakeDriver(token_delay=0.005, answer=_answer))
    bridge = KernelBridge(session.bus)
    manager = TaskManager(session, bridge)
    qtbot.addWidget(manager)
    manager.resize(960, 480)
    manager.show()
    qtbot.waitExposed(manager)
    desk = Desk(session, bridge, manager, qtbot, arun, loop)
    yield desk
    for task in desk.streams:
        task.cancel()
    qtbot.waitUntil(lambda: all(task.done() for task in desk.streams))
    bridge.close()
    arun(session.shutdown())


def test_placeholder_says_why_until_the_kernel_runs(desk):
    manager = desk.manager
    assert not manager.placeholder.isHidden()
    assert manager.placeholder.text() == desk.session.status.message != ""
    assert desk.rows() == []
    assert not manager.kill_action.isEnabled()

    desk.start()
    desk.qtbot.waitUntil(manager.placeholder.isHidden)


def test_rows_appear_for_spawned_processes_and_vanish_when_they_end(desk):
    desk.start()
    first, second = desk.spawn(2)
    desk.qtbot.waitUntil(lambda: desk.rows() == [first.pid, second.pid])
    assert desk.cell(first.pid, STATE) == "Ready"
    assert desk.cell(first.pid, CALLS) == "0"

    desk.kernel.kill(first.pid)
    desk.qtbot.waitUntil(lambda: desk.rows() == [second.pid])


def test_streaming_grows_context_ram_and_counts_calls(desk):
    desk.start()
    (process,) = desk.spawn()
    usage, _budget = desk.cell(process.pid, RAM, USAGE_ROLE)
    assert usage.segments.get(Segment.HISTORY, 0) == 0

    task = desk.stream(process.pid)
    desk.qtbot.waitUntil(lambda: desk.cell(process.pid, CALLS) == "1")
    desk.qtbot.waitUntil(lambda: float(desk.cell(process.pid, RATE)) > 0)
    usage, budget = desk.cell(process.pid, RAM, USAGE_ROLE)
    assert usage.segments[Segment.HISTORY] > 0
    assert budget == process.budget
    assert desk.cell(process.pid, STATE) == "Running"
    assert not task.done()


def test_ram_cell_tooltip_lists_the_segments(desk):
    desk.start()
    (process,) = desk.spawn()
    tip = desk.cell(process.pid, RAM, Qt.ItemDataRole.ToolTipRole)
    for name in ("System prompt", "Pinned memory", "History", "Reserve", "Free"):
        assert name in tip
    assert f"{process.reserve:,}" in tip
    assert "Estimated counts" in tip or "Exact counts" in tip


def test_kill_action_ends_the_selected_process_at_once(desk):
    desk.start()
    first, second = desk.spawn(2)
    desk.qtbot.waitUntil(lambda: len(desk.rows()) == 2)
    assert not desk.manager.kill_action.isEnabled()
    desk.stream(second.pid)
    desk.click_row(second.pid)
    assert desk.manager.kill_action.isEnabled()

    desk.manager.kill_action.trigger()
    assert not desk.kernel.get(second.pid).alive
    assert desk.rows() == [first.pid]
    assert not desk.manager.kill_action.isEnabled()


def test_suspend_and_resume_toggle_the_state(desk):
    desk.start()
    (process,) = desk.spawn()
    desk.qtbot.waitUntil(lambda: desk.rows() == [process.pid])
    desk.click_row(process.pid)
    toggle = desk.manager.suspend_action

    toggle.trigger()
    assert desk.cell(process.pid, STATE) == "Suspended"
    assert toggle.text() == "Resume"
    toggle.trigger()
    assert desk.cell(process.pid, STATE) == "Ready"
    assert toggle.text() == "Suspend"


def test_priority_buttons_change_the_priority_within_limits(desk):
    desk.start()
    (process,) = desk.spawn()
    desk.qtbot.waitUntil(lambda: desk.rows() == [process.pid])
    desk.click_row(process.pid)

    desk.manager.priority_up_action.trigger()
    assert desk.kernel.get(process.pid).priority == 1
    assert desk.cell(process.pid, PRIORITY) == "+1"

    desk.kernel.set_priority(process.pid, 10)  # from elsewhere: shown within a second
    desk.qtbot.waitUntil(lambda: not desk.manager.priority_up_action.isEnabled())
    assert desk.cell(process.pid, PRIORITY) == "+10"
    desk.manager.priority_down_action.trigger()
    assert desk.kernel.get(process.pid).priority == 9
    desk.manager.priority_up_action.trigger()
    assert desk.kernel.get(process.pid).priority == 10
    assert not desk.manager.priority_up_action.isEnabled()


def test_sorting_by_context_ram_orders_rows_by_tokens_used(desk):
    desk.start()
    small, big, middle = desk.spawn(3)
    # Each one talks, so each is counted with what the first call taught the token counter
    # (an idle process keeps the count it got at spawn, before that).
    desk.arun(desk.kernel.send(small.pid, "hi"))
    desk.arun(desk.kernel.send(big.pid, "tell me about the scheduler " * 30))
    desk.arun(desk.kernel.send(middle.pid, "hello there, how are you today?"))
    desk.qtbot.waitUntil(lambda: len(desk.rows()) == 3)
    header = desk.manager.table.horizontalHeader()
    x = header.sectionViewportPosition(RAM) + header.sectionSize(RAM) // 2
    desk.qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(x, 5))

    def used(pid: int) -> int:
        usage = desk.kernel.get(pid).usage
        assert usage is not None
        return usage.used

    shown = desk.rows()
    assert [used(pid) for pid in shown] == sorted(used(pid) for pid in shown)
    assert shown == [small.pid, middle.pid, big.pid]
    desk.qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(x, 5))
    assert desk.rows() == [big.pid, middle.pid, small.pid]


def test_paging_columns_follow_the_pagers_events(desk):
    desk.start()
    first, second = desk.spawn(2)
    desk.qtbot.waitUntil(lambda: len(desk.rows()) == 2)
    assert [desk.cell(first.pid, c) for c in (EVICTIONS, SUMMARY, PAGE_INS, PAGE_FAULTS)] == [
        "0", "\u2013", "0", "0",
    ]  # fmt: skip
    assert desk.cell(first.pid, EVICTIONS, Qt.ItemDataRole.ToolTipRole) is None

    # What the kernel's pager does to a process, and tells the bus.
    counters = first.counters
    first.summary, first.first_turn = "The user asked about okapis.", 13
    counters.evictions, counters.summaries, counters.summary_tokens = 12, 3, 240
    counters.page_ins, counters.page_faults = 5, 4
    bus = desk.kernel.bus
    bus.publish(TurnsEvicted(first.pid, 7, 12, 600, f"{first.memory_folder}/turns-0007-0012.md"))
    bus.publish(SummaryUpdated(first.pid, 240, "model"))
    bus.publish(PageFaults(first.pid, 4, (f"{first.memory_folder}/turns-0001-0006.md",)))
    desk.qtbot.waitUntil(lambda: desk.cell(first.pid, EVICTIONS) == "12")
    assert desk.cell(first.pid, SUMMARY) == "240 tok"
    assert desk.cell(first.pid, PAGE_INS) == "5"
    assert desk.cell(first.pid, PAGE_FAULTS) == "4"
    assert desk.cell(second.pid, EVICTIONS) == "0"
    tip = desk.cell(first.pid, EVICTIONS, Qt.ItemDataRole.ToolTipRole)
    assert "Turns 1\u201312" in tip and first.memory_folder in tip
    assert "rewritten 3 times" in desk.cell(first.pid, SUMMARY, Qt.ItemDataRole.ToolTipRole)

    # Sorting by the summary's size sorts by tokens, not by the text.
    header = desk.manager.table.horizontalHeader()
    x = header.sectionViewportPosition(SUMMARY) + header.sectionSize(SUMMARY) // 2
    desk.qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(x, 5))
    assert desk.rows() == [second.pid, first.pid]


def test_a_narrow_panel_hides_the_least_needed_columns_first(desk):
    desk.start()
    desk.spawn()
    manager, header = desk.manager, desk.manager.table.horizontalHeader()

    def shown() -> set[int]:
        return {c for c in range(header.count()) if not header.isSectionHidden(c)}

    manager.resize(2400, 480)
    desk.qtbot.waitUntil(lambda: shown() == set(range(header.count())))
    widths = [header.sectionSize(c) for c in range(header.count() - 1)]
    manager.resize(760, 480)
    desk.qtbot.waitUntil(lambda: WALL not in shown())
    assert {PID, APP, RAM, STATE, EVICTIONS} <= shown()
    assert sum(header.sectionSize(c) for c in shown()) <= manager.table.viewport().width()
    manager.resize(400, 480)
    desk.qtbot.waitUntil(lambda: shown() == {PID, APP, RAM, STATE})
    manager.resize(2400, 480)
    desk.qtbot.waitUntil(lambda: shown() == set(range(header.count())))
    assert [header.sectionSize(c) for c in range(header.count() - 1)] == widths


def test_totals_line_sums_every_process(desk):
    desk.start()
    first, second = desk.spawn(2)
    desk.arun(desk.kernel.send(first.pid, "hello there"))
    used = sum(p.usage.used for p in (first, second) if p.usage)
    budget = first.budget + second.budget
    expected = f"2 processes · context RAM {used / 1000:.1f}k / {budget / 1000:.1f}k tokens"
    desk.qtbot.waitUntil(lambda: desk.manager.totals.text().startswith(expected))
    assert f"({used * 5 / 1000:.1f} KB)" in desk.manager.totals.text()
    assert "slots in use 0 / 1" in desk.manager.totals.text()


def test_double_click_and_enter_bring_the_process_to_front(desk):
    desk.start()
    first, second = desk.spawn(2)
    desk.qtbot.waitUntil(lambda: len(desk.rows()) == 2)
    with desk.qtbot.waitSignal(desk.manager.bringToFront) as raised:
        desk.click_row(second.pid, double=True)
    assert raised.args == [second.pid]

    desk.click_row(first.pid)
    desk.manager.activateWindow()
    desk.qtbot.waitUntil(desk.manager.isActiveWindow)
    desk.manager.table.setFocus()
    with desk.qtbot.waitSignal(desk.manager.bringToFront) as raised:
        desk.qtbot.keyClick(desk.manager.table, Qt.Key.Key_Return)
    assert raised.args == [first.pid]


def test_selection_survives_ticks_while_processes_stream(desk):
    desk.start()
    processes = desk.spawn(8)
    desk.qtbot.waitUntil(lambda: len(desk.rows()) == 8)
    resets: list[str] = []
    model = desk.manager.model
    model.modelReset.connect(lambda: resets.append("reset"))
    model.layoutChanged.connect(lambda: resets.append("layout"))
    model.rowsRemoved.connect(lambda: resets.append("removed"))
    desk.click_row(processes[3].pid)
    for process in processes[:4]:
        desk.stream(process.pid)
    for _ in range(3):
        with desk.qtbot.waitSignal(desk.bridge.tick, timeout=2000):
            pass
    assert desk.manager.selected_pid() == processes[3].pid
    assert resets == []


def test_history_graph_samples_ram_and_speed_every_second(desk):
    desk.start()
    first, second = desk.spawn(2)
    desk.stream(first.pid)
    graph = desk.manager.graph
    desk.qtbot.waitUntil(lambda: graph.sample_count >= 2, timeout=4000)
    used, budget, rate = graph.samples()[-1]
    assert budget == first.budget + second.budget
    assert used == sum(p.usage.used for p in (first, second) if p.usage)
    assert rate > 0


def test_ram_text_and_a_tiny_segment_stays_visible(qapp):
    usage = ContextUsage(budget=8192, segments={Segment.SYSTEM: 200, Segment.HISTORY: 1000})
    assert ram_text(usage, 8192) == "1.2k / 8.2k tokens · 6.0 KB"

    theme = current_theme()
    tiny = ContextUsage(budget=100_000, segments={Segment.SYSTEM: 1})
    image = QImage(200, 10, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    paint_ram_bar(painter, QRectF(0, 0, 200, 10), tiny, 100_000, theme)
    painter.end()
    assert QColor(image.pixel(0, 5)) == theme.segments["system"]
    assert QColor(image.pixel(100, 5)) == theme.segments["free"]


def test_ram_meter_shows_figures_and_breaks_them_down_on_hover(qtbot):
    meter = RamMeter()
    qtbot.addWidget(meter)
    usage = ContextUsage(budget=8192, segments={Segment.SYSTEM: 200, Segment.HISTORY: 1000})
    meter.set_usage(usage, 8192)
    assert meter.text() == "1.2k / 8.2k tokens · 6.0 KB"
    assert "1.2k / 8.2k tokens" in meter.accessibleDescription()
    assert "History" in meter.toolTip() and "1,000" in meter.toolTip()
    assert meter.sizeHint().width() >= 200


def _call(desk: Desk, process: Process, tool: str, **arguments: Any) -> None:
    call = {"function": {"name": tool, "arguments": arguments}}
    desk.arun(desk.kernel.syscalls.dispatch(process, call))


def test_syscalls_view_lists_the_audit_log_live_with_refusals_marked(desk):
    desk.start()
    (process,) = desk.spawn()
    desk.qtbot.waitUntil(lambda: desk.rows() == [process.pid])
    _call(desk, process, "memory_search", query="")  # granted (fails: no memory here)
    desk.click_row(process.pid)
    desk.manager.audit_action.trigger()
    view = desk.manager.audit_views[process.pid]
    desk.qtbot.waitUntil(view.isVisible)
    assert view.tree.topLevelItemCount() == 1
    assert view.tree.topLevelItem(0).text(2) == "memory.search"

    _call(desk, process, "clock")  # Chat may not read the clock: refused
    desk.qtbot.waitUntil(lambda: view.tree.topLevelItemCount() == 2)
    refused = view.tree.topLevelItem(1)
    assert [refused.text(c) for c in (1, 2, 3)] == ["clock", "clock", "refused"]
    assert "no permission for clock" in refused.text(5)
    assert refused.background(0).color().alpha() > 0  # highlighted
    assert view.tree.topLevelItem(0).background(0).style() == Qt.BrushStyle.NoBrush
    assert "1 refused" in view.heading.text()

    # The same window again, not a second one.
    desk.manager.audit_action.trigger()
    assert desk.manager.audit_views[process.pid] is view
    view.close()


def test_a_child_shows_indented_under_its_parent_and_dies_with_it(desk):
    desk.start()
    parent, other = desk.spawn(2)
    child = desk.arun(desk.kernel.spawn("writer", parent_pid=parent.pid))
    desk.qtbot.waitUntil(lambda: desk.rows() == [parent.pid, child.pid, other.pid])
    assert desk.cell(child.pid, APP) == "\u2514 Writer"
    assert desk.cell(parent.pid, APP) == "Chat"
    tip = desk.cell(child.pid, APP, Qt.ItemDataRole.ToolTipRole)
    assert tip.startswith(f"Started by Chat (pid {parent.pid})")
    assert desk.cell(parent.pid, APP, Qt.ItemDataRole.ToolTipRole) is None

    # Whatever the order, a child stays right after its parent.
    desk.manager.table.sortByColumn(PID, Qt.SortOrder.DescendingOrder)
    desk.qtbot.waitUntil(lambda: desk.rows() == [other.pid, parent.pid, child.pid])
    # By name Writer would come after both Chats; it stays under the one that started it.
    desk.manager.table.sortByColumn(APP, Qt.SortOrder.AscendingOrder)
    desk.qtbot.waitUntil(lambda: desk.rows() == [parent.pid, child.pid, other.pid])

    desk.kernel.kill(parent.pid)
    desk.qtbot.waitUntil(lambda: desk.rows() == [other.pid])


def test_hibernate_frees_the_process_and_lists_it_as_hibernated(desk):
    desk.start()
    first, second = desk.spawn(2)
    desk.arun(desk.kernel.send(first.pid, "My cat is called Miso."))
    desk.kernel.set_window(first.pid, {"open": True, "x": 10, "y": 20})
    desk.qtbot.waitUntil(lambda: len(desk.rows()) == 2)
    manager = desk.manager
    assert not manager.hibernate_action.isEnabled()
    desk.click_row(first.pid)
    assert manager.hibernate_action.isEnabled()
    assert manager.hibernate_action in manager.menu.actions()

    manager.activateWindow()
    desk.qtbot.waitUntil(manager.isActiveWindow)
    manager.table.setFocus()
    desk.qtbot.keyClick(manager.table, Qt.Key.Key_H, Qt.KeyboardModifier.ControlModifier)
    desk.qtbot.waitUntil(lambda: desk.rows() == [second.pid])
    desk.qtbot.waitUntil(lambda: first.history == [] and first.usage is None)
    assert first.exit_reason == "hibernated"
    store = desk.kernel.sessions
    assert desk.arun(asyncio.to_thread(store.info, first.pid)).status == "hibernated"
    # Its window is not brought back at the next start: it waits in Hibernated.
    assert desk.arun(desk.kernel.load_saved(first.pid)).window == {"open": False, "x": 10, "y": 20}
    hibernated = manager.sessions.hibernated
    desk.qtbot.waitUntil(lambda: hibernated.pids() == [first.pid])
    assert manager.tabs.tabText(manager.tabs.indexOf(hibernated)) == "Hibernated (1)"
    assert second.alive


def test_process_actions_rest_while_a_saved_list_shows(desk):
    desk.start()
    (process,) = desk.spawn()
    desk.qtbot.waitUntil(lambda: desk.rows() == [process.pid])
    desk.click_row(process.pid)
    manager = desk.manager
    manager.tabs.setCurrentWidget(manager.sessions.history)
    # Delete and Enter mean the list's Delete and Reopen there, not Kill and Bring to front.
    assert not manager.kill_action.isEnabled() and not manager.front_action.isEnabled()
    manager.tabs.setCurrentWidget(manager.processes_page)
    assert manager.kill_action.isEnabled()
