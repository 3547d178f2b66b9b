"""The ingest panel: what a user sees while dropped files go into long-term memory."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import pytest
from PySide6.QtCore import Qt

from llmos.desktop.ingest_panel import CHUNKS, FILE, REASON, STATE, IngestPanel
from llmos.desktop.theme import current_theme
from llmos.memory.ingest import FileOutcome, IngestProgress, IngestReport


class _Clocked(IngestProgress):
    """Progress at a chosen elapsed time, so speeds and times left are exact."""

    __slots__ = ("at",)

    @property
    def elapsed(self) -> float:
        return self.at


def progress(at: float = 0.0, phase: str = "reading", **fields: Any) -> IngestProgress:
    state = _Clocked(phase=phase, **fields)
    state.at = at
    return state


def outcome(name: str, status: str = "added", reason: str = "", chunks: int = 3) -> FileOutcome:
    return FileOutcome(f"/home/ada/papers/{name}", f"/Documents/{name}", status, reason, chunks)


UNREADABLE = "the PDF is encrypted"


@pytest.fixture
def panel(qtbot) -> IngestPanel:
    panel = IngestPanel()
    qtbot.addWidget(panel)
    panel.resize(450, 420)
    panel.start("Adding 3 items to /Documents")
    qtbot.waitExposed(panel)
    return panel


def rows(panel: IngestPanel) -> list[tuple[str, str, str, str]]:
    proxy = panel.proxy
    return [
        tuple(proxy.index(row, column).data() for column in (FILE, STATE, CHUNKS, REASON))
        for row in range(proxy.rowCount())
    ]


def add(panel: IngestPanel, qtbot, outcomes: list[FileOutcome]) -> None:
    total = panel.model.rowCount() + len(outcomes)
    for each in outcomes:
        panel.add_outcome(each)
    qtbot.waitUntil(lambda: panel.model.rowCount() == total)


def shown_rate(panel: IngestPanel) -> float:
    """The speed on the status line, in MB/s."""
    match = re.search(r"([\d.]+) MB/s", panel.status.text())
    assert match, panel.status.text()
    return float(match.group(1))


def test_start_shows_a_busy_bar_while_files_are_found(qtbot):
    panel = IngestPanel()
    qtbot.addWidget(panel)
    assert panel.isHidden()
    assert not panel.busy

    panel.start("Adding 3 items to /Documents")
    assert panel.isVisible()
    assert panel.busy
    assert panel.title.text() == "Adding 3 items to /Documents"
    assert panel.bar.maximum() == 0  # busy
    assert panel.status.text() == "Looking for files..."
    assert panel.button.text() == "Cancel"

    panel.update_progress(progress(phase="discovering", files_total=5, bytes_total=500))
    assert panel.bar.maximum() == 0
    assert panel.status.text() == "Looking for files..."


def test_bar_and_status_follow_the_progress(panel):
    panel.update_progress(progress(0.0, files_total=1000, bytes_total=124_000_000))
    assert panel.bar.maximum() > 0
    assert panel.bar.value() == 0
    assert panel.status.text() == "0 of 1,000 files"

    counts = Counter(added=400, replaced=2, unchanged=6, failed=4)
    panel.update_progress(
        progress(2.0, files_total=1000, files_done=412, bytes_total=124_000_000,
                 bytes_done=6_000_000, counts=counts)
    )  # fmt: skip
    assert panel.bar.value() == 6_000_000 * panel.bar.maximum() // 124_000_000
    assert panel.status.text() == "412 of 1,000 files · 3.0 MB/s · about 40 s left"
    assert panel.counts.text() == "400 added · 2 replaced · 6 unchanged"
    assert panel.failures.text() == "4 failed"

    panel.update_progress(progress(3.0, phase="finishing", files_total=1000, files_done=990,
                                   bytes_total=124_000_000, bytes_done=124_000_000))  # fmt: skip
    assert panel.bar.value() == panel.bar.maximum()
    assert panel.status.text() == "Saving the last documents..."


def test_speed_waits_for_a_second_of_data_and_does_not_jump(panel):
    sizes = {"files_total": 10, "bytes_total": 1_000_000_000}
    panel.update_progress(progress(0.0, **sizes))
    panel.update_progress(progress(0.5, bytes_done=1_000_000, **sizes))
    assert "/s" not in panel.status.text()
    assert "left" not in panel.status.text()

    panel.update_progress(progress(1.0, bytes_done=3_000_000, **sizes))
    assert shown_rate(panel) == 3.0
    assert "about 6 min left" in panel.status.text()

    # 60 MB in a tenth of a second (one big file finishing) moves the figure, gently.
    panel.update_progress(progress(1.1, bytes_done=9_000_000, **sizes))
    assert 3.0 < shown_rate(panel) < 10.0


def test_outcomes_appear_as_rows_with_their_states_and_reasons(panel, qtbot):
    add(panel, qtbot, [
        outcome("a.md"),
        outcome("b.pdf", "failed", UNREADABLE, 0),
        outcome("c.txt", "unchanged", chunks=12),
        outcome("d.txt", "replaced", chunks=1),
    ])  # fmt: skip
    assert rows(panel) == [
        ("a.md", "Added", "3", ""),
        ("b.pdf", "Failed", "", UNREADABLE),
        ("c.txt", "Unchanged", "12", ""),
        ("d.txt", "Replaced", "1", ""),
    ]
    model, roles = panel.model, Qt.ItemDataRole
    tip = model.index(0, FILE).data(roles.ToolTipRole)
    assert "/home/ada/papers/a.md" in tip and "/Documents/a.md" in tip
    assert model.index(1, STATE).data(roles.ForegroundRole) == current_theme().bad
    assert not model.index(1, STATE).data(roles.DecorationRole).isNull()
    assert model.index(0, STATE).data(roles.ForegroundRole) is None
    assert model.index(0, STATE).data(roles.DecorationRole) is None


def test_only_problems_shows_just_the_failed_files(panel, qtbot):
    unsupported = outcome("d.doc", "failed", "not a supported type", 0)
    add(panel, qtbot, [outcome("a.md"), outcome("b.pdf", "failed", UNREADABLE, 0),
                       outcome("c.md"), unsupported])  # fmt: skip
    assert not panel.only_problems.isChecked()

    qtbot.mouseClick(panel.only_problems, Qt.MouseButton.LeftButton)
    assert panel.only_problems.isChecked()
    assert [(name, reason) for name, _, _, reason in rows(panel)] == [
        ("b.pdf", UNREADABLE),
        ("d.doc", "not a supported type"),
    ]
    add(panel, qtbot, [outcome("e.md"), outcome("f.pdf", "failed", UNREADABLE, 0)])
    assert [name for name, *_ in rows(panel)] == ["b.pdf", "d.doc", "f.pdf"]

    qtbot.mouseClick(panel.only_problems, Qt.MouseButton.LeftButton)
    assert len(rows(panel)) == 6


def test_finish_after_failures_summarises_and_shows_only_the_problems(panel, qtbot):
    outcomes = [outcome(f"{n}.md") for n in range(98)]
    outcomes[10:10] = [outcome("x.pdf", "failed", UNREADABLE, 0)]
    outcomes.append(outcome("y.pdf", "failed", "empty file", 0))
    for each in outcomes:
        panel.add_outcome(each)
    counts = Counter(added=98, failed=2)
    panel.update_progress(progress(4.0, files_total=100, files_done=100, bytes_total=5000,
                                   bytes_done=5000, counts=counts))  # fmt: skip

    panel.finish(IngestReport(outcomes, skipped=0, seconds=4.2))
    assert not panel.busy
    assert panel.summary.isVisible()
    assert panel.summary.text() == "Added 98 documents, 2 could not be read."
    assert panel.status.text() == "100 files · 5.0 KB in 4 s"
    assert panel.bar.value() == panel.bar.maximum() > 0
    assert panel.only_problems.isChecked()
    assert [name for name, *_ in rows(panel)] == ["x.pdf", "y.pdf"]
    assert panel.model.rowCount() == 100
    assert panel.button.text() == "Close"
    assert panel.button.isEnabled()


def test_finish_without_failures_keeps_every_row_and_says_what_changed(panel, qtbot):
    outcomes = [outcome("a.md"), outcome("b.md", "replaced"), outcome("c.md", "unchanged")]
    for each in outcomes:
        panel.add_outcome(each)
    panel.finish(IngestReport(outcomes, skipped=2, seconds=1.0))
    assert panel.summary.text() == (
        "Added 1 document, replaced 1 that changed, 1 already up to date "
        "(2 hidden or junk files skipped)."
    )
    assert not panel.only_problems.isChecked()
    assert len(rows(panel)) == 3


def test_cancel_asks_to_stop_and_waits_for_the_report(panel, qtbot):
    panel.update_progress(progress(1.0, files_total=100, bytes_total=1000))
    with qtbot.waitSignal(panel.cancelRequested):
        qtbot.mouseClick(panel.button, Qt.MouseButton.LeftButton)
    assert panel.button.text() == "Stopping..."
    assert not panel.button.isEnabled()
    assert panel.busy
    with qtbot.assertNotEmitted(panel.cancelRequested):
        qtbot.mouseClick(panel.button, Qt.MouseButton.LeftButton)

    done = [outcome(f"{n}.md") for n in range(40)]
    panel.finish(IngestReport(done, skipped=0, seconds=3.0, cancelled=True))
    assert panel.summary.text() == "Stopped: 40 of 100 files done; stored documents were kept."
    assert panel.button.text() == "Close"
    assert panel.button.isEnabled()
    assert not panel.busy


def test_escape_cancels_while_the_panel_has_focus(panel, qtbot):
    panel.activateWindow()
    qtbot.waitUntil(panel.isActiveWindow)
    panel.table.setFocus()
    with qtbot.waitSignal(panel.cancelRequested):
        qtbot.keyClick(panel.table, Qt.Key.Key_Escape)
    assert panel.button.text() == "Stopping..."


def test_close_hides_the_panel_and_a_new_start_begins_afresh(panel, qtbot):
    failed = outcome("x.pdf", "failed", UNREADABLE, 0)
    panel.add_outcome(failed)
    panel.finish(IngestReport([failed], skipped=0, seconds=1.0))
    with qtbot.waitSignal(panel.dismissed):
        qtbot.mouseClick(panel.button, Qt.MouseButton.LeftButton)
    assert panel.isHidden()

    panel.start("Adding 1 item to /Notes")
    assert panel.isVisible() and panel.busy
    assert panel.model.rowCount() == 0
    assert not panel.only_problems.isChecked()
    assert not panel.summary.isVisible()
    assert panel.button.text() == "Cancel"


def test_fail_says_why_and_offers_close(panel, qtbot):
    panel.fail("Long-term memory is not available: the data folder is read-only.")
    assert not panel.busy
    assert panel.error.isVisible()
    assert panel.error.text() == "Long-term memory is not available: the data folder is read-only."
    assert not panel.bar.isVisible()
    assert not panel.table.isVisible()  # nothing was read
    assert panel.button.text() == "Close"
    with qtbot.waitSignal(panel.dismissed):
        qtbot.mouseClick(panel.button, Qt.MouseButton.LeftButton)
    assert panel.isHidden()


def test_double_click_opens_a_stored_file_but_not_a_failed_one(panel, qtbot):
    add(panel, qtbot, [outcome("a.md"), outcome("b.pdf", "failed", UNREADABLE, 0)])
    table = panel.table

    def double_click(row: int) -> None:
        where = table.visualRect(panel.proxy.index(row, FILE)).center()
        qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=where)
        qtbot.mouseDClick(table.viewport(), Qt.MouseButton.LeftButton, pos=where)

    with qtbot.waitSignal(panel.outcomeActivated) as activated:
        double_click(0)
    assert activated.args == ["/Documents/a.md"]
    with qtbot.assertNotEmitted(panel.outcomeActivated):
        double_click(1)


def test_ten_thousand_outcomes_arrive_in_a_few_batches(panel, qtbot):
    inserts: list[int] = []
    panel.model.rowsInserted.connect(lambda _parent, first, last: inserts.append(last - first + 1))
    outcomes = [
        outcome(f"{n:05}.md", "failed" if n % 1000 == 0 else "added", "unreadable")
        for n in range(10_000)
    ]
    for each in outcomes:
        panel.add_outcome(each)
    qtbot.waitUntil(lambda: panel.model.rowCount() == 10_000)
    assert sum(inserts) == 10_000
    assert len(inserts) <= 10
    assert panel.proxy.index(9_999, FILE).data() == "09999.md"

    panel.finish(IngestReport(outcomes, skipped=0, seconds=30.0))
    assert panel.model.rowCount() == 10_000  # the report's outcomes are not added twice
    assert panel.proxy.rowCount() == 10
