"""Ingestion end to end on a real LanceDB: mixed folders, idempotence, replacement, cancel."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from llmos.drivers.ollama_driver import OllamaDriver
from llmos.memory.embedder import Embedder, EmbedderChoice
from llmos.memory.ingest import IngestOptions
from llmos.memory.long_term import LongTermMemory
from tests.memory.conftest import ingest
from tests.memory.corpus import GOOD, write_broken, write_good
from tests.ollama_server import DEFAULT_MODELS, ModelSpec, OllamaTestServer

LIMIT = 100_000


async def assert_whole(memory: LongTermMemory) -> None:
    """Every visible document has exactly the chunks it says it has, ordinals 0..n-1."""
    for doc in await memory.store.documents():
        chunks = await memory.store.chunks(doc)
        assert [c.ordinal for c in chunks] == list(range(doc.chunks)), doc.path
        assert sum(c.tokens for c in chunks) == doc.tokens


async def test_a_mixed_folder_stores_every_good_file_and_names_every_bad_one(memory, tmp_path):
    write_good(tmp_path / "mixed")
    expected = write_broken(tmp_path / "mixed", LIMIT)
    report = await ingest(memory, tmp_path / "mixed", max_file_bytes=LIMIT)

    stored = {Path(o.source).name for o in report.outcomes if o.status == "added"}
    assert stored == set(GOOD) | {name for name, why in expected.items() if why is None}
    failures = {Path(o.source).name: o.reason for o in report.failures}
    assert set(failures) == {name for name, why in expected.items() if why}
    for name, reason in failures.items():
        assert expected[name] in reason, (name, reason)
    docs = {d.name: d for d in await memory.store.documents("/Documents/mixed")}
    assert set(docs) == stored
    assert docs["paper.pdf"].media_type == "application/pdf"
    assert docs["guide.md"].title == "Guide"
    assert all(d.state(None) == "ready" for d in docs.values())
    await assert_whole(memory)

    for name, phrase in GOOD.items():
        hits = (await memory.search(phrase, k=1)).hits
        assert hits and hits[0].document.name == name, (name, phrase)


async def test_ingesting_the_same_files_again_changes_nothing(memory, tmp_path):
    write_good(tmp_path / "docs")
    await ingest(memory, tmp_path / "docs")
    before = {d.path: (d.rev, d.updated) for d in await memory.store.documents()}
    chunk_rows = await memory.store.chunk_table.count_rows()
    version = await memory.store.chunk_table.version()

    report = await ingest(memory, tmp_path / "docs")

    assert report.counts == {"unchanged": len(GOOD)}
    assert {d.path: (d.rev, d.updated) for d in await memory.store.documents()} == before
    assert await memory.store.chunk_table.count_rows() == chunk_rows
    assert await memory.store.chunk_table.version() == version


async def test_a_changed_file_replaces_its_old_chunks(memory, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("the first draft mentions quasars\n" * 200)
    await ingest(memory, path, chunk_tokens=64, overlap_tokens=0)
    old = await memory.store.document("/Documents/notes.txt")
    assert old.chunks > 1

    path.write_text("the second draft mentions pulsars\n")
    report = await ingest(memory, path)

    assert report.counts == {"replaced": 1}
    new = await memory.store.document("/Documents/notes.txt")
    assert new.id == old.id and new.rev != old.rev and new.chunks == 1
    assert (await memory.search("quasars")).hits == []
    assert (await memory.search("pulsars")).hits[0].document.id == old.id
    assert await memory.store.chunk_table.count_rows() == 1


async def test_files_go_into_the_folder_asked_for(memory, tmp_path):
    (tmp_path / "a.txt").write_text("aardvark")
    (tmp_path / "tree" / "sub").mkdir(parents=True)
    (tmp_path / "tree" / "sub" / "b.md").write_text("# B\nbadger")
    await ingest(memory, tmp_path / "a.txt", tmp_path / "tree", folder="/Work/x")
    paths = [d.path for d in await memory.store.documents()]
    assert paths == ["/Work/x/a.txt", "/Work/x/tree/sub/b.md"]
    assert await memory.store.folders("/Work") == ["/Work/x", "/Work/x/tree", "/Work/x/tree/sub"]


async def test_cancel_stops_soon_and_stores_only_whole_documents(memory, tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(300):
        (folder / f"f{i:03}.txt").write_text(f"file {i} says " + "words and more words. " * 400)
    commits = []
    job = memory.job(
        [folder],
        IngestOptions(batch_chunks=50, batch_seconds=0.05),
        on_commit=lambda docs: (commits.append(len(docs)), job.cancel()),
    )
    report = await memory.run(job)

    assert report.cancelled
    stored = await memory.store.documents()
    assert 0 < len(stored) < 300
    assert len(stored) == report.counts["added"]
    await assert_whole(memory)
    # The durable queue forgot the job: the user chose to stop it.
    assert not list((memory.store.directory / "jobs").glob("*.json"))


async def test_vectors_fill_in_behind_and_the_document_is_searchable_before(
    vector_memory, tmp_path
):
    (tmp_path / "a.txt").write_text("the okapi lives in the rainforest")
    report = await vector_memory.run(vector_memory.job([tmp_path / "a.txt"]))
    assert report.counts == {"added": 1}
    doc = await vector_memory.store.document("/Documents/a.txt")
    assert doc.state("nomic-embed-text:latest") == "indexing"
    result = await vector_memory.search("okapi")
    assert [h.document.path for h in result.hits] == ["/Documents/a.txt"]
    assert result.mode == "text"

    indexer = vector_memory.indexer()
    indexer.finish()
    await indexer.run()
    doc = await vector_memory.store.document("/Documents/a.txt")
    assert doc.state("nomic-embed-text:latest") == "ready"
    result = await vector_memory.search("okapi")
    assert result.mode == "hybrid"
    assert result.hits[0].matched_by == ("text", "vector")


async def test_the_indexer_embeds_only_when_its_gate_opens(vector_memory, tmp_path):
    (tmp_path / "a.txt").write_text("the okapi lives in the rainforest")
    await vector_memory.run(vector_memory.job([tmp_path / "a.txt"]))
    open_gate = asyncio.Event()
    calls = 0

    async def gate() -> None:
        nonlocal calls
        calls += 1
        await open_gate.wait()

    indexer = vector_memory.indexer(gate=gate)
    indexer.finish()
    running = asyncio.create_task(indexer.run())
    while calls == 0:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    assert indexer.chunks_done == 0  # held at the gate (a process is generating)
    open_gate.set()
    await asyncio.wait_for(running, 30)
    assert indexer.chunks_done == 1


@pytest.fixture
async def two_embedders():
    """A server with two embedding models of different dimensions, and a driver on it."""
    minilm = ModelSpec(
        name="all-minilm:latest", family="bert", context_length=512,
        capabilities=["embedding"], embedding_length=384,
    )  # fmt: skip
    with OllamaTestServer([*DEFAULT_MODELS.values(), minilm]) as server:
        driver = OllamaDriver(server.host)
        yield driver
        await driver.close()


async def test_a_new_embedding_model_re_embeds_and_never_mixes(tmp_path, two_embedders):
    ollama_driver = two_embedders
    for i in range(5):
        (tmp_path / f"{i}.txt").write_text(f"document number {i} about topic{i}")
    nomic = Embedder(ollama_driver, "nomic-embed-text:latest", "test")
    memory = await LongTermMemory.open(tmp_path / "data", EmbedderChoice(nomic, ""))
    await ingest(memory, *sorted(tmp_path.glob("*.txt")))
    await memory.close()

    minilm = Embedder(ollama_driver, "all-minilm:latest", "test")
    memory = await LongTermMemory.open(tmp_path / "data", EmbedderChoice(minilm, ""))
    try:
        # Until the new model has embedded them, documents are "indexing" and search uses
        # full text only: never the other model's 768-dimension vectors.
        docs = await memory.store.documents()
        assert {d.state("all-minilm:latest") for d in docs} == {"indexing"}
        assert (await memory.search("topic3")).mode == "text"

        indexer = memory.indexer()
        indexer.finish()
        await indexer.run()
        assert indexer.chunks_done == 5
        models = await memory.store.vector_models()
        assert models == {"nomic-embed-text:latest": (768, 5), "all-minilm:latest": (384, 5)}
        result = await memory.search("topic3")
        assert result.mode == "hybrid" and result.hits[0].document.name == "3.txt"
    finally:
        await memory.close()

    # Back to the first model: its vectors are reused, not recomputed.
    memory = await LongTermMemory.open(tmp_path / "data", EmbedderChoice(nomic, ""))
    try:
        indexer = memory.indexer()
        indexer.finish()
        await indexer.run()
        assert indexer.chunks_done == 0 and indexer.docs_done == 5
    finally:
        await memory.close()


async def test_embedding_failure_leaves_documents_searchable_by_text(
    vector_memory, tmp_path, ollama_server
):
    (tmp_path / "a.txt").write_text("the narwhal has a tusk")
    await vector_memory.run(vector_memory.job([tmp_path / "a.txt"]))
    ollama_server.models.pop("nomic-embed-text:latest")
    indexer = vector_memory.indexer()
    indexer.finish()
    await asyncio.wait_for(indexer.run(), 30)
    assert indexer.error and "nomic-embed-text" in indexer.error
    doc = await vector_memory.store.document("/Documents/a.txt")
    assert doc.state("nomic-embed-text:latest") == "indexing"
    assert (await vector_memory.search("narwhal")).hits[0].document.path == "/Documents/a.txt"


async def test_a_file_that_kills_its_worker_fails_alone_and_the_rest_is_stored(memory, tmp_path):
    from tests.memory.crashing_reader import read_or_crash

    folder = tmp_path / "files"
    folder.mkdir()
    for i in range(12):
        (folder / f"f{i:02}.txt").write_text(f"ordinary file {i}")
    (folder / "crash-a.txt").write_text("boom")
    (folder / "crash-b.txt").write_text("boom")
    job = memory.job([folder], IngestOptions(workers=2), reader=read_or_crash)
    report = await memory.run(job)

    failures = {Path(o.source).name: o.reason for o in report.failures}
    assert set(failures) == {"crash-a.txt", "crash-b.txt"}
    assert all("crashed" in reason for reason in failures.values())
    assert report.counts["added"] == 12


async def test_odd_file_names_are_refused_one_by_one(memory, tmp_path):
    folder = tmp_path / "names"
    folder.mkdir()
    (folder / "tab\there.txt").write_text("a tab in the name")
    (folder / "good.txt").write_text("fine")
    import os

    Path(os.fsdecode(os.path.join(os.fsencode(folder), b"caf\xe9.txt"))).write_bytes(b"latin-1")
    report = await ingest(memory, folder)
    assert report.counts == {"added": 1, "failed": 2}
    reasons = sorted(o.reason for o in report.failures)
    assert "control characters" in reasons[0] and "not valid text" in reasons[1]
    for outcome in report.failures:  # printable in a UTF-8 terminal or JSON
        outcome.source.encode("utf-8")


async def test_a_resumed_job_finds_its_files_from_anywhere(memory, tmp_path, monkeypatch):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("alpha")
    monkeypatch.chdir(tmp_path)
    record = memory.journal.start(["docs"], "/Documents", {"chunk_tokens": 128})
    monkeypatch.chdir("/")
    resumable, given_up = await memory.interrupted()
    assert given_up == [] and [job.sources for job in resumable] == [[tmp_path / "docs"]]
    assert resumable[0].options.chunk_tokens == 128
    job = resumable[0]
    report = await memory.run(memory.job(job.sources, job.options), resumes=job.record)
    assert report.counts == {"added": 1}
    assert not list(memory.journal.jobs.glob("*.json")), record


async def test_an_interrupted_job_stays_queued_and_a_cancelled_one_does_not(memory, tmp_path):
    for i in range(6):
        (tmp_path / f"{i}.txt").write_text(f"file {i}")
    interrupted = memory.job([tmp_path])
    interrupted.interrupt()  # the desktop closing: resume next time
    report = await memory.run(interrupted)
    assert report.cancelled
    resumable, _ = await memory.interrupted()
    assert [job.sources for job in resumable] == [[tmp_path]]

    cancelled = memory.job([tmp_path])
    cancelled.cancel()  # the user's choice: forget it
    await memory.run(cancelled, resumes=resumable[0].record)
    assert await memory.interrupted() == ([], [])


async def test_a_job_that_never_finishes_is_given_up_after_three_tries(memory, tmp_path):
    record = memory.journal.start([str(tmp_path)], "/Documents", {})
    for _ in range(2):
        record = memory.journal.again(record)  # resumed twice, killed each time
    resumable, given_up = await memory.interrupted()
    assert resumable == [] and [g.id for g in given_up] == [record.id]
    assert not list(memory.journal.jobs.glob("*.json"))


async def test_a_search_does_not_wait_for_a_busy_embedding_model(
    vector_memory, tmp_path, monkeypatch
):
    from llmos.memory import search as search_module

    (tmp_path / "a.txt").write_text("the quokka smiles on Rottnest island")
    await ingest(vector_memory, tmp_path / "a.txt")
    assert (await vector_memory.search("quokka")).mode == "hybrid"

    async def busy(model, texts):  # the embedded engine, generating someone's answer
        await asyncio.sleep(30)

    monkeypatch.setattr(search_module, "QUERY_EMBED_SECONDS", 0.2)
    monkeypatch.setattr(vector_memory.embedder.driver, "embed", busy)
    # A new query (the last few are remembered) while the model is busy.
    result = await asyncio.wait_for(vector_memory.search("quokka island"), 5)
    assert result.mode == "text" and "busy" in result.note
    assert result.hits[0].document.name == "a.txt"
