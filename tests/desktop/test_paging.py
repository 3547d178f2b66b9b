"""The kernel's pager on the desktop: a conversation longer than its context RAM moves its
oldest turns into the desktop's long-term memory, where the explorer shows them, and the task
manager and the context view say so."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QToolButton

from llmos.desktop.context_view import KEY_ROLE
from llmos.desktop.memory_models import kind_of
from llmos.desktop.memory_views import PATH_ROLE
from llmos.desktop.process_table import EVICTIONS, PID, SUMMARY
from llmos.memory import paths
from tests.desktop.driving import WAIT, open_from_launcher, type_and_send
from tests.fakes import FakeDriver

TOPICS = (
    "okapi", "zebra", "giraffe", "pangolin", "axolotl", "narwhal", "quokka", "tapir",
    "capybara", "lemur", "ibex", "kakapo", "dugong", "fossa", "saiga",
)  # fmt: skip


def chat(qtbot, window, topics) -> None:
    for topic in topics:
        type_and_send(qtbot, window, topic)
        qtbot.waitUntil(lambda: not window.generating, timeout=WAIT)
        assert not window.banner.isVisible(), window.banner_text.text()


def listed(explorer) -> list[str]:
    return [entry.name for entry in explorer.listing_model.entries]


def test_a_long_chat_pages_its_oldest_turns_into_memory_and_shows_it(qtbot, open_desktop, arun):
    desktop = open_desktop(FakeDriver(), num_ctx=1024)
    desktop.memory_action.trigger()
    explorer = desktop.explorer
    qtbot.waitUntil(lambda: desktop.memory.phase == "ready", timeout=WAIT)
    explorer.show_folder(paths.ROOT)
    qtbot.waitUntil(lambda: explorer.location.text() != "", timeout=WAIT)
    assert "Processes" not in listed(explorer)
    window = open_from_launcher(qtbot, desktop)
    process = window.kernel.get(window.pid)
    assert process.budget == 1024

    chat(qtbot, window, [f"Tell me three facts about the {t} and where it lives." for t in TOPICS])
    counters = process.counters
    assert counters.evictions > 0 and process.first_turn == counters.evictions + 1
    assert counters.dropped_turns == 0  # nothing left out of a request: it went to memory
    assert process.summary and counters.summary_tokens > 0

    # The turns are conversation pages in the desktop's memory...
    memory = arun(desktop.memory.ready())
    documents = arun(memory.store.documents(paths.PROCESSES))
    assert documents and {d.kind for d in documents} == {"conversation"}
    assert all(paths.is_within(d.path, process.memory_folder) for d in documents)
    first = min(documents, key=lambda d: d.path)
    assert paths.name(first.path).startswith("turns-0001-")
    chunks = arun(memory.store.chunks(first))
    assert "okapi" in " ".join(chunk.text for chunk in chunks)

    # ... which the explorer shows as they are written, with the conversation icon.
    qtbot.waitUntil(lambda: "Processes" in listed(explorer), timeout=WAIT)
    explorer.show_folder(process.memory_folder)
    qtbot.waitUntil(lambda: len(listed(explorer)) == len(documents), timeout=WAIT)
    entry = explorer.listing_model.entries[0]
    assert kind_of(entry.document) == ("Conversation", "conversation")
    tree = explorer.tree.folders
    found = tree.match(tree.index(0, 0), PATH_ROLE, paths.PROCESSES, 1, Qt.MatchFlag.MatchRecursive)
    assert found

    # Asked about an early turn, the pager brings it back for the answer, shown apart from
    # the pages the user put in; the user can still take it out.
    chat(qtbot, window, ["Remind me: where did you say the okapi lives?"])
    recalled = [page for page in process.paged_in if page.by_pager]
    assert recalled and all(p.source.startswith(process.memory_folder) for p in recalled)
    assert counters.page_faults > 0
    (chip,) = window.paged_in.chips
    assert chip.objectName() == "PagerChip"
    assert "Paged in automatically" in chip.toolTip()
    chip.findChild(QToolButton).click()
    qtbot.waitUntil(lambda: not process.paged_in, timeout=WAIT)
    assert not window.paged_in.isVisible()

    # The task manager counts the evictions and the summary's size...
    proxy = desktop.task_manager.proxy
    row = next(r for r in range(proxy.rowCount()) if proxy.index(r, PID).data() == str(window.pid))
    qtbot.waitUntil(lambda: proxy.index(row, EVICTIONS).data() == str(counters.evictions))
    assert proxy.index(row, SUMMARY).data() == f"{counters.summary_tokens} tok"

    # ... and the context view says where the early turns are.
    window.show_context()
    view = window.context_view
    keys = [i.data(0, KEY_ROLE) for i in _items(view.tree)]
    assert f"turn:{process.first_turn}" in keys and "turn:1" not in keys
    summary = next(i for i in _items(view.tree) if i.data(0, KEY_ROLE) == "summary")
    assert summary.text(2) == f"turns 1\u2013{process.first_turn - 1}"
    view.tree.setCurrentItem(summary)
    assert process.memory_folder in view.text.toPlainText()


def _items(tree):
    for i in range(tree.topLevelItemCount()):
        top = tree.topLevelItem(i)
        yield top
        for j in range(top.childCount()):
            yield top.child(j)


def test_a_short_chat_on_a_desktop_without_memory_does_not_create_it(qtbot, open_desktop, settings):
    desktop = open_desktop(FakeDriver())
    window = open_from_launcher(qtbot, desktop)
    chat(qtbot, window, ["Hello there, how are you?"])
    assert window.kernel.get(window.pid).counters.model_calls == 1
    assert desktop.memory.phase == "closed"
    assert not (settings.data_dir / "memory").exists()
