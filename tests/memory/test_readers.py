"""Reading and chunking each supported format, and refusing each broken file with its reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmos.memory.chunking import chunk
from llmos.memory.discovery import discover
from llmos.memory.readers import Extracted, UnreadableFile, extract
from llmos.memory.worker import ReadTask, read_document
from tests.memory.corpus import GOOD, pdf_bytes, write_broken, write_good

LIMIT = 10_000


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("good")
    write_good(folder)
    return folder


@pytest.mark.parametrize("name", sorted(GOOD))
def test_every_supported_format_yields_its_text(good, name):
    path = good / name
    doc = extract(path, path.read_bytes())
    assert GOOD[name] in doc.text
    assert "<" not in doc.text or name in ("tool.py",), "markup must not leak into the text"


def test_html_scripts_do_not_become_memory(good):
    doc = extract(good / "page.html", (good / "page.html").read_bytes())
    assert "hidden" not in doc.text
    assert doc.title == "Page"


def test_pdf_chunks_know_their_pages(tmp_path):
    pages = [" ".join(f"page{n}word{i}" for i in range(300)) for n in range(1, 4)]
    doc = extract(tmp_path / "x.pdf", pdf_bytes(pages))
    drafts = chunk(doc, capacity=200, overlap=0)
    assert len(drafts) > 3
    for draft in drafts:
        words = {word[:5] for word in draft.text.split()}
        assert draft.page is not None
        assert f"page{draft.page}"[:5] in words
        assert draft.position.startswith("page")
    assert {d.page for d in drafts} == {1, 2, 3}


def test_markdown_chunks_know_their_heading_and_lines():
    text = "# Book\n\n" + "".join(
        f"## Part {n}\n\n" + "".join(f"Sentence {n}.{i} of the part.\n" for i in range(60)) + "\n"
        for n in range(1, 4)
    )
    drafts = chunk(Extracted(text, "text/markdown", "Book", "markdown"), capacity=120, overlap=10)
    lines = text.split("\n")
    for draft in drafts:
        first = draft.text.split("\n")[0]
        assert lines[draft.line_start - 1].startswith(first[:20])
        part = draft.text.split("Sentence ")[-1].split(".")[0] if "Sentence" in draft.text else ""
        if part and not draft.text.startswith("## Part"):
            assert draft.heading.startswith("Book › Part"), draft
    assert any("Part 3" in d.position for d in drafts)


def test_chunks_respect_the_capacity_and_overlap():
    text = " ".join(f"word{i}" for i in range(5000))
    drafts = chunk(Extracted(text, "text/plain", "t", "lines"), capacity=256, overlap=32)
    assert all(d.tokens <= 256 for d in drafts)
    assert [d.ordinal for d in drafts] == list(range(len(drafts)))
    # Neighbours share some words (the overlap), and together they cover everything.
    assert set(drafts[0].text.split()) & set(drafts[1].text.split())
    assert {w for d in drafts for w in d.text.split()} == set(text.split())


def test_every_broken_file_is_refused_with_its_own_reason(tmp_path):
    expected = write_broken(tmp_path, LIMIT)
    found = discover([tmp_path], "/Documents", LIMIT)
    reasons = {r.source.name: r.reason for r in found.refused}
    for candidate in found.files:
        task = ReadTask(str(candidate.source), candidate.target, "", LIMIT, 512, 64)
        result = read_document(task)
        reasons[candidate.source.name] = result.error
    for name, words in expected.items():
        if words is None:
            assert reasons[name] == "", f"{name} should be readable, got: {reasons[name]}"
        else:
            assert words in reasons[name], f"{name}: {reasons[name]!r}"


def test_legacy_encodings_are_decoded_not_mangled(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes("Café crème, déjà vu, naïve façade.".encode("latin-1"))
    assert extract(path, path.read_bytes()).text == "Café crème, déjà vu, naïve façade."


def test_hidden_and_junk_files_are_skipped_not_failed(tmp_path):
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text("x")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "m.cpython-311.pyc").write_bytes(b"\x00")
    (tmp_path / ".hidden.txt").write_text("x")
    (tmp_path / "kept.txt").write_text("x")
    found = discover([tmp_path], "/Documents", LIMIT)
    assert [c.target for c in found.files] == [f"/Documents/{tmp_path.name}/kept.txt"]
    assert found.skipped == 3
    assert not found.refused


def test_a_folder_link_back_up_the_tree_is_a_loop_not_a_hang(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "file.txt").write_text("x")
    (tmp_path / "a" / "b" / "up").symlink_to(tmp_path / "a")
    found = discover([tmp_path / "a"], "/D", LIMIT)
    assert [c.target for c in found.files] == ["/D/a/b/file.txt"]
    assert [r.reason.split(" (")[0] for r in found.refused] == ["symbolic link loop"]


def test_an_unreadable_file_says_permission_denied(tmp_path):
    import os

    if os.geteuid() == 0:
        pytest.skip("root reads every file")
    path = tmp_path / "secret.txt"
    path.write_text("x")
    path.chmod(0)
    result = read_document(ReadTask(str(path), "/D/secret.txt", "", LIMIT, 512, 64))
    assert result.error == "permission denied"


def test_unreadable_reasons_are_plain_sentences(tmp_path):
    with pytest.raises(UnreadableFile, match="empty"):
        extract(tmp_path / "x.txt", b"")
    with pytest.raises(UnreadableFile, match="no text"):
        extract(tmp_path / "x.txt", b"   \n\n  ")
