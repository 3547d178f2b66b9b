"""The store's file system: folders, moves, removal, atomic replacement, crash leftovers."""

from __future__ import annotations

import pytest

from llmos.memory.paths import MemoryPathError, normalize
from llmos.memory.store import DocumentWrite, MemoryStoreError, NotFound, new_document
from tests.memory.conftest import ingest


async def put(memory, path: str, *texts: str, previous=None):
    """Store a document at ``path`` with one chunk per text, the way ingestion does."""
    doc = new_document(path, previous, title=path, chunks=len(texts), tokens=len(texts))
    rows = [
        {"id": f"{doc.rev}.{i}", "doc_id": doc.id, "rev": doc.rev, "ordinal": i, "text": text,
         "tokens": 1, "position": f"line {i + 1}", "page": None, "line_start": i + 1,
         "line_end": i + 1, "heading": ""}
        for i, text in enumerate(texts)
    ]  # fmt: skip
    await memory.store.commit([DocumentWrite(doc, rows, previous.rev if previous else None)])
    return doc


def test_paths_are_normalised_and_checked():
    assert normalize("Documents//papers/./x.pdf") == "/Documents/papers/x.pdf"
    assert normalize("/") == "/"
    with pytest.raises(MemoryPathError, match=r"\.\."):
        normalize("/a/../b")
    with pytest.raises(MemoryPathError, match="empty"):
        normalize("  ")


async def test_folders_can_be_made_listed_renamed_and_removed(memory):
    store = memory.store
    await store.mkdir("/Projects/llm/notes")
    await put(memory, "/Projects/llm/plan.txt", "the plan")
    assert await store.folders("/Projects") == ["/Projects/llm", "/Projects/llm/notes"]
    assert "/Documents" in await store.folders()

    await store.move("/Projects/llm", "/Archive")  # a rename, as with mv
    assert await store.folders("/Projects") == []
    assert await store.folders("/Archive") == ["/Archive/notes"]
    moved = await store.document("/Archive/plan.txt")
    assert moved.folder == "/Archive"
    assert [c.text for c in await store.chunks(moved)] == ["the plan"]

    await store.mkdir("/Shelf")
    await store.move("/Archive", "/Shelf")  # into an existing folder, as with mv
    assert await store.folders("/Shelf") == ["/Shelf/Archive", "/Shelf/Archive/notes"]

    documents, folders = await store.remove("/Shelf")
    assert (documents, folders) == (1, 3)
    assert await store.folders("/Shelf") == []
    with pytest.raises(NotFound):
        await store.document("/Shelf/Archive/plan.txt")


async def test_a_folder_cannot_move_into_itself_or_onto_something(memory):
    store = memory.store
    await store.mkdir("/A/B")
    await put(memory, "/C.txt", "c")
    with pytest.raises(MemoryStoreError, match="into itself"):
        await store.move("/A", "/A/B/inner")
    await store.mkdir("/D")
    await put(memory, "/D/A", "taken")
    with pytest.raises(MemoryStoreError, match="already exists"):
        await store.move("/A", "/D")
    with pytest.raises(MemoryStoreError, match="is a document"):
        await store.mkdir("/C.txt")


async def test_a_document_can_be_renamed_and_moved_into_a_folder(memory):
    store = memory.store
    await put(memory, "/Documents/a.txt", "alpha")
    await store.move("/Documents/a.txt", "/Documents/b.txt")
    await store.mkdir("/Other")
    target = await store.move("/Documents/b.txt", "/Other")
    assert target == "/Other/b.txt"
    doc = await store.document("/Other/b.txt")
    assert (await memory.search("alpha")).hits[0].document.path == "/Other/b.txt"
    assert doc.folder == "/Other"


async def test_removing_a_document_removes_its_chunks_and_vectors(vector_memory, tmp_path):
    (tmp_path / "a.txt").write_text("the zebrafruit grows on trees")
    (tmp_path / "b.txt").write_text("apples grow on trees too")
    await ingest(vector_memory, tmp_path / "a.txt", tmp_path / "b.txt")
    store = vector_memory.store
    doc = await store.document("/Documents/a.txt")
    table = await store.vector_table("nomic-embed-text:latest")
    assert await table.count_rows(f"rev = '{doc.rev}'") == 1
    await store.remove("/Documents/a.txt")
    assert await store.chunk_table.count_rows(f"rev = '{doc.rev}'") == 0
    assert await table.count_rows(f"rev = '{doc.rev}'") == 0
    assert [h.document.path for h in (await vector_memory.search("zebrafruit")).hits] == [
        "/Documents/b.txt"
    ]


async def test_a_new_revision_replaces_the_old_one_whole(memory):
    first = await put(memory, "/d.txt", "old one", "old two")
    second = await put(memory, "/d.txt", "new text", previous=first)
    assert second.id == first.id and second.rev != first.rev
    assert [c.text for c in await memory.store.chunks(await memory.store.document("/d.txt"))] == [
        "new text"
    ]
    assert await memory.store.chunk_table.count_rows(f"rev = '{first.rev}'") == 0
    assert (await memory.search("old")).hits == []


async def test_chunks_without_a_document_are_invisible_and_collected(memory):
    """What a crash between the chunk write and the document write leaves behind."""
    doc = new_document("/ghost.txt", None, chunks=1)
    row = {"id": f"{doc.rev}.0", "doc_id": doc.id, "rev": doc.rev, "ordinal": 0,
           "text": "ghostly words", "tokens": 2, "position": "line 1", "page": None,
           "line_start": 1, "line_end": 1, "heading": ""}  # fmt: skip
    import pyarrow as pa

    from llmos.memory.records import CHUNK_SCHEMA

    await memory.store.chunk_table.add(pa.Table.from_pylist([row], schema=CHUNK_SCHEMA))
    assert (await memory.search("ghostly")).hits == []
    assert (await memory.store.documents()) == []
    assert await memory.store.collect_garbage() == 1
    assert await memory.store.chunk_table.count_rows() == 0


async def test_documents_are_found_by_path_or_id_prefix(memory):
    doc = await put(memory, "/x.txt", "text")
    assert (await memory.store.document(doc.id[:8])).path == "/x.txt"
    assert (await memory.store.document("/x.txt")).id == doc.id
    with pytest.raises(NotFound, match="neither"):
        await memory.store.document("x.txt")
    with pytest.raises(NotFound, match="No document"):
        await memory.store.document("/nope.txt")


async def test_paths_with_quotes_and_wildcards_are_data_not_sql(memory):
    await put(memory, "/it's 100%_done/a.txt", "quoted")
    await put(memory, "/it's 100X_done/b.txt", "other")
    docs = await memory.store.documents("/it's 100%_done")
    assert [d.path for d in docs] == ["/it's 100%_done/a.txt"]
    await memory.store.move("/it's 100%_done", "/done")
    assert [d.path for d in await memory.store.documents("/done")] == ["/done/a.txt"]


async def test_nothing_can_be_put_inside_a_document(memory):
    await put(memory, "/Documents/a.txt", "alpha")
    await put(memory, "/Documents/b.txt", "bravo")
    with pytest.raises(MemoryStoreError, match="is a document"):
        await memory.mkdir("/Documents/a.txt/sub")
    with pytest.raises(MemoryStoreError, match="is a document"):
        await memory.move("/Documents/b.txt", "/Documents/a.txt/inner/b.txt")
    assert (await memory.store.document("/Documents/b.txt")).path == "/Documents/b.txt"
    assert await memory.move("/Documents/b.txt", "/Documents") == "/Documents/b.txt"


async def test_a_big_folder_is_filtered_after_ranking_with_the_same_result(memory, monkeypatch):
    from llmos.memory import search

    for i in range(6):
        await put(memory, f"/In/{i}.txt", f"shared words and number{i}")
        await put(memory, f"/Out/{i}.txt", f"shared words and number{i}")
    prefiltered = await memory.search("shared words", k=10, folder="/In")
    monkeypatch.setattr(search, "PREFILTER_MAX", 1)
    postfiltered = await memory.search("shared words", k=10, folder="/In")
    assert sorted(h.document.path for h in prefiltered.hits) == [f"/In/{i}.txt" for i in range(6)]
    assert sorted(h.document.path for h in postfiltered.hits) == [f"/In/{i}.txt" for i in range(6)]


async def test_refresh_shows_what_another_connection_committed(memory, tmp_path):
    from llmos.memory.long_term import LongTermMemory

    other = await LongTermMemory.open(tmp_path / "data")  # e.g. `llmos ingest` elsewhere
    try:
        await put(other, "/Documents/elsewhere.txt", "written by another process")
        assert not await memory.store.has_document("/Documents/elsewhere.txt")
        assert await memory.store.refresh()
        assert await memory.store.has_document("/Documents/elsewhere.txt")
        assert not await memory.store.refresh()  # nothing new since
        await other.store.mkdir("/Projects")
        assert await memory.store.refresh()
        assert "/Projects" in await memory.store.folders()
    finally:
        await other.close()
