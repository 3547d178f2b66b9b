"""The memory explorer as a user drives it: real files dropped on it, a real LanceDB in the
test's data dir, the kernel on the fake driver (which also embeds: ``fake-embed``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

from llmos.desktop import memory_service
from llmos.desktop.memory_drag import MemoryRef, memory_mime
from llmos.desktop.memory_models import NAME
from llmos.kernel.context import Segment
from llmos.memory.long_term import LongTermMemory
from llmos.memory.store import DocumentWrite, new_document
from tests.desktop.driving import WAIT, open_from_launcher, type_and_send
from tests.fakes import FakeDriver

OKAPI = "The okapi lives in the rainforest of the Congo. It is a relative of the giraffe.\n"


@pytest.fixture
def files(tmp_path) -> Path:
    """A folder of mixed documents, one of them broken."""
    folder = tmp_path / "drop"
    folder.mkdir()
    (folder / "okapi.md").write_text("# Okapi\n\n" + OKAPI * 3)
    paragraphs = (f"Paragraph {i}: the quarterly numbers grew by {i} percent." for i in range(300))
    (folder / "notes.txt").write_text("\n\n".join(paragraphs))
    (folder / "broken.pdf").write_bytes(b"%PDF-1.7\nthis is not really a PDF")
    return folder


def drop(widget: QWidget, mime: QMimeData, at: QPoint | None = None) -> bool:
    """Drag ``mime`` onto ``widget`` and drop it, as Qt delivers a drag from another
    application; returns whether the drop was accepted."""
    point = at if at is not None else widget.rect().center()
    actions = Qt.DropAction.CopyAction | Qt.DropAction.MoveAction
    button, no_keys = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    for kind in (QDragEnterEvent, QDragMoveEvent):
        QApplication.sendEvent(widget, kind(point, actions, mime, button, no_keys))
    event = QDropEvent(QPointF(point), actions, mime, button, no_keys)
    QApplication.sendEvent(widget, event)
    return event.isAccepted()


def file_mime(*paths: Path) -> QMimeData:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path)) for path in paths])
    return mime


def open_explorer(qtbot, open_desktop, driver: FakeDriver | None = None):
    desktop = open_desktop(driver or FakeDriver())
    desktop.memory_action.trigger()
    explorer = desktop.explorer
    qtbot.waitUntil(lambda: desktop.memory.phase == "ready", timeout=WAIT)
    qtbot.waitUntil(lambda: explorer.location.text() != "", timeout=WAIT)
    return desktop, explorer


def listed(explorer) -> list[str]:
    return [entry.name for entry in explorer.listing_model.entries]


def select(qtbot, explorer, name: str) -> None:
    model = explorer.listing_model
    row = next(i for i, e in enumerate(model.entries) if e.name == name)
    index = explorer.listing.proxy.mapFromSource(model.index(row, NAME))
    explorer.listing.setCurrentIndex(index)
    qtbot.waitUntil(
        lambda: explorer.details.document is not None and explorer.details.document.name == name,
        timeout=WAIT,
    )


def ingest_dropped(qtbot, explorer, files: Path) -> None:
    drop(explorer.listing.viewport(), file_mime(files))
    qtbot.waitUntil(lambda: explorer.panel.isVisible(), timeout=WAIT)
    qtbot.waitUntil(lambda: not explorer.panel.busy, timeout=60_000)


def test_a_dropped_folder_is_ingested_shown_with_chunks_and_broken_files_reported(
    qtbot, open_desktop, files
):
    desktop, explorer = open_explorer(qtbot, open_desktop)
    assert explorer.folder == "/Documents"
    ingest_dropped(qtbot, explorer, files)

    # The folder went in as a folder of /Documents; the broken file did not.
    qtbot.waitUntil(lambda: "drop" in listed(explorer), timeout=WAIT)
    explorer.show_folder("/Documents/drop")
    qtbot.waitUntil(lambda: sorted(listed(explorer)) == ["notes.txt", "okapi.md"], timeout=WAIT)
    failed = [o for o in explorer.panel.model.outcomes if o.status == "failed"]
    assert [Path(o.source).name for o in failed] == ["broken.pdf"]
    assert "PDF" in failed[0].reason
    assert "broken.pdf" in explorer.panel.summary.text() or "could not" in (
        explorer.panel.summary.text()
    )

    # A document's chunks, in order, with their token counts.
    select(qtbot, explorer, "notes.txt")
    details = explorer.details
    chunks = details.chunk_model.chunks
    assert len(chunks) == details.document.chunks > 1
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    assert "Paragraph 0:" in details.text.toPlainText()
    details.show_chunk(len(chunks) - 1)
    assert f"Chunk {len(chunks)} of {len(chunks)}" in details.text.toPlainText()
    assert "Paragraph 299" in details.text.toPlainText()

    # The usage summary counts what is stored.
    qtbot.waitUntil(
        lambda: desktop.memory.stats is not None and desktop.memory.stats.documents == 2,
        timeout=WAIT,
    )
    assert f"{desktop.memory.stats.chunks:,} chunks" in explorer.summary.text()


def test_files_dropped_on_the_wallpaper_go_to_documents(qtbot, open_desktop, files):
    desktop = open_desktop(FakeDriver())
    qtbot.waitUntil(lambda: desktop.session.status.phase == "ready", timeout=WAIT)
    drop(desktop.workspace.viewport(), file_mime(files / "okapi.md"))
    assert desktop.memory_dock.isVisible()
    explorer = desktop.explorer
    qtbot.waitUntil(lambda: "okapi.md" in listed(explorer), timeout=30_000)
    qtbot.waitUntil(lambda: not explorer.panel.busy, timeout=WAIT)


def test_delete_asks_then_removes_the_document_and_its_chunks(qtbot, open_desktop, files, arun):
    desktop, explorer = open_explorer(qtbot, open_desktop)
    drop(explorer.listing.viewport(), file_mime(files / "okapi.md", files / "notes.txt"))
    qtbot.waitUntil(lambda: sorted(listed(explorer)) == ["notes.txt", "okapi.md"], timeout=30_000)
    select(qtbot, explorer, "okapi.md")
    document = explorer.details.document
    store = desktop.memory.memory.store
    assert arun(store.chunks(document))

    explorer.delete_action.trigger()
    box = explorer.delete_box
    assert box is not None and box.isVisible()
    assert "cannot be undone" in box.informativeText()
    box.button(QMessageBox.StandardButton.Cancel).click()
    assert "okapi.md" in listed(explorer)

    explorer.delete_action.trigger()
    delete = next(b for b in explorer.delete_box.buttons() if b.text() == "Delete")
    delete.click()
    qtbot.waitUntil(lambda: listed(explorer) == ["notes.txt"], timeout=WAIT)
    assert arun(store.chunks(document)) == []
    shown = explorer.details.document
    assert shown is None or shown.name == "notes.txt"  # the next document, as file managers do


def test_search_finds_a_chunk_and_opens_its_document_there(qtbot, open_desktop, files):
    _, explorer = open_explorer(qtbot, open_desktop)
    drop(explorer.listing.viewport(), file_mime(files / "okapi.md", files / "notes.txt"))
    qtbot.waitUntil(lambda: len(listed(explorer)) == 2, timeout=30_000)
    qtbot.waitUntil(lambda: not explorer.panel.busy, timeout=WAIT)

    qtbot.keyClicks(explorer.search, "Paragraph 277")
    qtbot.keyClick(explorer.search, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: explorer.results.count() > 0, timeout=WAIT)
    first = explorer.results.item(0)
    hit = first.data(explorer_hit_role())
    assert hit.document.name == "notes.txt"
    assert "Paragraph 277" in hit.chunk.text
    assert "background-color" in explorer.results.itemWidget(first).text()  # terms marked

    explorer.results.itemActivated.emit(first)
    details = explorer.details

    def at_hit() -> bool:
        row = details.current_chunk
        return row >= 0 and details.chunk_model.chunks[row].id == hit.chunk.id

    qtbot.waitUntil(at_hit, timeout=WAIT)
    assert details.document.name == "notes.txt"
    assert "Paragraph 277" in details.text.toPlainText()
    assert explorer.stack.currentIndex() == 0  # back on the listing, the document selected


def explorer_hit_role():
    from llmos.desktop.memory_search import HIT_ROLE

    return HIT_ROLE


def test_new_folder_rename_move_and_undo(qtbot, open_desktop, files):
    _, explorer = open_explorer(qtbot, open_desktop)
    drop(explorer.listing.viewport(), file_mime(files / "okapi.md"))
    qtbot.waitUntil(lambda: listed(explorer) == ["okapi.md"], timeout=30_000)

    explorer.new_folder_action.trigger()
    explorer.input_dialog.textValueSelected.emit("Animals")
    qtbot.waitUntil(lambda: "Animals" in listed(explorer), timeout=WAIT)

    select(qtbot, explorer, "okapi.md")
    explorer.rename_action.trigger()
    explorer.input_dialog.textValueSelected.emit("okapia.md")
    qtbot.waitUntil(lambda: "okapia.md" in listed(explorer), timeout=WAIT)

    # Dragging the document onto the folder in the tree moves it there.
    tree = explorer.tree
    folder_item = tree.model().match(
        tree.model().index(0, 0), Qt.ItemDataRole.DisplayRole, "Animals", 1,
        Qt.MatchFlag.MatchRecursive,
    )[0]  # fmt: skip
    at = tree.visualRect(folder_item).center()
    drop(tree.viewport(), memory_mime([MemoryRef("/Documents/okapia.md")]), at)
    qtbot.waitUntil(lambda: listed(explorer) == ["Animals"], timeout=WAIT)

    explorer.undo_action.trigger()  # the move
    qtbot.waitUntil(lambda: sorted(listed(explorer)) == ["Animals", "okapia.md"], timeout=WAIT)
    explorer.undo_action.trigger()  # the rename
    qtbot.waitUntil(lambda: sorted(listed(explorer)) == ["Animals", "okapi.md"], timeout=WAIT)


def test_what_another_process_stores_shows_up_live(
    qtbot, open_desktop, settings, arun, monkeypatch
):
    monkeypatch.setattr(memory_service, "WATCH_SECONDS", 0.2)
    _, explorer = open_explorer(qtbot, open_desktop)
    assert listed(explorer) == []

    async def write_elsewhere() -> None:  # as `llmos ingest` in another terminal would
        other = await LongTermMemory.open(settings.data_dir)
        try:
            doc = new_document("/Documents/elsewhere.txt", None, title="x", chunks=1, tokens=3)
            row = {"id": f"{doc.rev}.0", "doc_id": doc.id, "rev": doc.rev, "ordinal": 0,
                   "text": "written elsewhere", "tokens": 3, "position": "line 1", "page": None,
                   "line_start": 1, "line_end": 1, "heading": ""}  # fmt: skip
            await other.store.commit([DocumentWrite(doc, [row])])
        finally:
            await other.close()

    arun(write_elsewhere())
    qtbot.waitUntil(lambda: listed(explorer) == ["elsewhere.txt"], timeout=WAIT)


def test_a_document_dragged_onto_an_agent_window_is_paged_into_its_context_ram(
    qtbot, open_desktop, files
):
    driver = FakeDriver()
    desktop, explorer = open_explorer(qtbot, open_desktop, driver)
    drop(explorer.listing.viewport(), file_mime(files / "okapi.md"))
    qtbot.waitUntil(lambda: listed(explorer) == ["okapi.md"], timeout=30_000)
    window = open_from_launcher(qtbot, desktop)
    process = window.kernel.get(window.pid)
    before = process.usage.segments.get(Segment.PAGED_IN, 0)

    drop(window, memory_mime([MemoryRef("/Documents/okapi.md")]))
    qtbot.waitUntil(lambda: len(process.paged_in) == 1, timeout=WAIT)
    assert process.usage.segments[Segment.PAGED_IN] > before
    assert process.counters.page_ins == 1
    assert window.paged_in.isVisible()
    row = desktop.task_manager.model
    qtbot.waitUntil(lambda: row.rowCount() == 1, timeout=WAIT)

    # The next answer is asked with the document in the request.
    type_and_send(qtbot, window, "Where does the okapi live?")
    qtbot.waitUntil(lambda: len(driver.requests) == 1, timeout=WAIT)
    sent = driver.requests[0].messages
    assert any("Memory page: /Documents/okapi.md" in str(m["content"]) for m in sent)
    assert any("rainforest of the Congo" in str(m["content"]) for m in sent)
    qtbot.waitUntil(lambda: not window.generating, timeout=WAIT)

    # The window can drop it again.
    window.page_out(process.paged_in[0].key)
    qtbot.waitUntil(lambda: not process.paged_in, timeout=WAIT)
    assert process.usage.segments.get(Segment.PAGED_IN, 0) == 0
    assert not window.paged_in.isVisible()


def test_a_document_too_large_offers_the_best_matching_chunks(qtbot, open_desktop, files, arun):
    desktop, explorer = open_explorer(qtbot, open_desktop, FakeDriver())
    drop(explorer.listing.viewport(), file_mime(files / "notes.txt"))
    qtbot.waitUntil(lambda: listed(explorer) == ["notes.txt"], timeout=30_000)
    document = arun(desktop.memory.memory.store.document("/Documents/notes.txt"))
    desktop.session.kernel.num_ctx = 4096  # notes.txt is about 5,000 tokens
    window = open_from_launcher(qtbot, desktop)
    process = window.kernel.get(window.pid)
    assert process.budget == 4096
    type_and_send(qtbot, window, "How much did paragraph 123 grow?")
    qtbot.waitUntil(lambda: not window.generating and len(process.history) == 2, timeout=WAIT)

    window.page_in([MemoryRef("/Documents/notes.txt")])
    qtbot.waitUntil(lambda: window.pager.offer is not None, timeout=WAIT)
    offer = window.pager.offer
    assert "tokens too large" in offer.text()
    assert not mine(process)  # (the pager may hold chunks it found for the question)
    accept = next(b for b in offer.buttons() if "best chunks" in b.text())
    accept.click()
    qtbot.waitUntil(lambda: len(mine(process)) == 1, timeout=WAIT)
    (page,) = mine(process)
    assert "best matches" in page.label
    assert 0 < len(page.chunk_ids) < document.chunks
    assert "Paragraph 123:" in page.text  # the chunk the question is about came first
    assert process.usage.prompt <= process.usage.prompt_limit


def mine(process) -> list:
    """The pages the user put in (not the kernel's pager)."""
    return [page for page in process.paged_in if not page.by_pager]


def test_closing_mid_ingest_keeps_what_was_stored_and_the_next_start_resumes(
    qtbot, open_desktop, tmp_path, arun
):
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(400):
        (folder / f"note-{i:03}.txt").write_text(f"Note {i}: " + "words of memory " * 40)
    desktop, explorer = open_explorer(qtbot, open_desktop)
    drop(explorer.listing.viewport(), file_mime(folder))
    qtbot.waitUntil(lambda: explorer.panel.model.rowCount() > 0, timeout=60_000)
    arun(desktop.shutdown(), timeout=30)
    assert desktop.closed.done()

    # The same data dir; the explorer stays closed, and the ingest is finished anyway.
    desktop = open_desktop(FakeDriver())
    explorer = desktop.explorer
    qtbot.waitUntil(lambda: explorer.panel.busy, timeout=WAIT)
    assert "Resuming" in explorer.panel.title.text()
    assert not desktop.memory_dock.isVisible()
    qtbot.waitUntil(lambda: not explorer.panel.busy, timeout=120_000)
    documents = arun(desktop.memory.memory.store.documents("/Documents/many"))
    assert len(documents) == 400
    assert arun(desktop.memory.memory.interrupted()) == ([], [])


def test_undoing_a_new_folder_never_deletes_what_was_put_in_it(qtbot, open_desktop, files):
    _, explorer = open_explorer(qtbot, open_desktop)
    told = []
    explorer.message.disconnect()
    explorer.message.connect(lambda title, text: told.append(text))
    explorer.new_folder_action.trigger()
    explorer.input_dialog.textValueSelected.emit("Project")
    qtbot.waitUntil(lambda: "Project" in listed(explorer), timeout=WAIT)
    ingest_dropped_into(qtbot, explorer, files / "okapi.md", "/Documents/Project")

    explorer.undo_action.trigger()
    qtbot.waitUntil(lambda: bool(told), timeout=WAIT)
    assert "no longer empty" in told[0]
    assert "Project" in listed(explorer)


def ingest_dropped_into(qtbot, explorer, path: Path, folder: str) -> None:
    explorer.ingest([path], folder)
    qtbot.waitUntil(lambda: explorer.panel.busy, timeout=WAIT)
    qtbot.waitUntil(lambda: not explorer.panel.busy, timeout=60_000)


def test_opening_a_document_that_is_gone_says_so_once(qtbot, open_desktop, monkeypatch):
    desktop, explorer = open_explorer(qtbot, open_desktop)
    # Once the embedder is chosen, nothing else asks for a reload.
    qtbot.waitUntil(lambda: desktop.memory.memory.embedder is not None, timeout=WAIT)
    qtbot.waitUntil(lambda: not explorer._loading or explorer._loading.done(), timeout=WAIT)
    told = []
    explorer.message.disconnect()
    explorer.message.connect(lambda title, text: told.append(text))
    loads = []
    store = desktop.memory.memory.store
    real = store.folders

    async def counted(*args, **kwargs):
        loads.append(1)
        return await real(*args, **kwargs)

    monkeypatch.setattr(store, "folders", counted)
    explorer.open_document("/Gone/away.md", 3)
    qtbot.waitUntil(lambda: bool(told), timeout=WAIT)
    assert "no longer in memory" in told[0]
    settled = len(loads)
    qtbot.wait(500)
    assert len(loads) - settled <= 2 and len(told) == 1  # no reload loop (it was 200 a second)


def test_a_document_dropped_on_the_message_box_is_paged_in_not_pasted(qtbot, open_desktop, files):
    desktop, explorer = open_explorer(qtbot, open_desktop)
    drop(explorer.listing.viewport(), file_mime(files / "okapi.md"))
    qtbot.waitUntil(lambda: listed(explorer) == ["okapi.md"], timeout=30_000)
    window = open_from_launcher(qtbot, desktop)
    process = window.kernel.get(window.pid)
    assert drop(window.composer.viewport(), memory_mime([MemoryRef("/Documents/okapi.md")]))
    qtbot.waitUntil(lambda: len(process.paged_in) == 1, timeout=WAIT)
    assert window.composer.toPlainText() == ""

    # Its chip's close button after the process has gone: a plain message, no traceback.
    window.kernel.kill(window.pid)
    window.page_out(process.paged_in[0].key)


def test_vectors_start_once_the_engine_runs(qtbot, open_desktop, files):
    desktop, explorer = open_explorer(qtbot, open_desktop)
    qtbot.waitUntil(lambda: desktop.memory.memory.embedder is not None, timeout=WAIT)
    assert desktop.memory.memory.embedder.model == "fake-embed"
    drop(explorer.listing.viewport(), file_mime(files / "okapi.md"))
    qtbot.waitUntil(lambda: listed(explorer) == ["okapi.md"], timeout=30_000)
    qtbot.waitUntil(lambda: explorer.listing_model.entries[0].state == "ready", timeout=WAIT)
    assert "vectors by fake-embed" in explorer.summary.text()
