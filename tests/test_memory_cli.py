"""``llmos ingest`` and ``llmos memory``: what a user types, on a real LanceDB store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.memory.corpus import GOOD, write_broken, write_good
from tests.test_cli import run_cli


@pytest.fixture
def offline(dead_host):
    """Flags for a machine with no model backend: memory runs on full text."""
    return ["--engine", "ollama", "--ollama-host", dead_host]


def test_ingest_a_mixed_folder_exits_2_naming_each_failure_then_changes_nothing(
    capsys, tmp_path, offline
):
    write_good(tmp_path / "mixed")
    expected = write_broken(tmp_path / "mixed", 64_000_000)
    (tmp_path / "mixed" / "huge.txt").unlink()  # the default limit is tested elsewhere

    code, out, err = run_cli(capsys, "ingest", str(tmp_path / "mixed"), *offline)
    assert code == 2, err
    for name, reason in expected.items():
        if reason and name != "huge.txt":
            line = next(line for line in out.splitlines() if f"/{name}:" in line)
            assert line.startswith("  failed:") and reason in line
    assert f"{len(GOOD) + 1} stored" in out
    assert "full text only" in out

    code, out, _ = run_cli(capsys, "ingest", str(tmp_path / "mixed"), *offline, "--json")
    report = json.loads(out)
    assert code == 2
    assert report["added"] == report["replaced"] == []
    assert len(report["unchanged"]) == len(GOOD) + 1
    assert {Path(f["source"]).name for f in report["failed"]} == {
        name for name, reason in expected.items() if reason and name != "huge.txt"
    }


def test_ingest_of_good_files_exits_0(capsys, tmp_path, offline):
    (tmp_path / "a.md").write_text("# A\nfine")
    code, out, _ = run_cli(capsys, "ingest", str(tmp_path / "a.md"), *offline, "--json")
    assert code == 0
    assert [f["path"] for f in json.loads(out)["added"]] == ["/Documents/a.md"]


def test_memory_commands_browse_move_and_remove(capsys, tmp_path, offline):
    write_good(tmp_path / "docs")
    assert run_cli(capsys, "ingest", str(tmp_path / "docs"), "--folder", "/Work", *offline)[0] == 0

    code, out, _ = run_cli(capsys, "memory", "ls", "--json")
    listing = json.loads(out)
    assert code == 0 and "/Work" in listing["folders"] and "/Documents" in listing["folders"]

    code, out, _ = run_cli(capsys, "memory", "ls", "/Work/docs")
    assert "paper.pdf" in out and "NAME" in out

    code, out, _ = run_cli(capsys, "memory", "show", "/Work/docs/paper.pdf", "--chunks", "--json")
    shown = json.loads(out)
    assert shown["media_type"] == "application/pdf"
    assert len(shown["chunk_list"]) == shown["chunks"] >= 1
    assert shown["chunk_list"][0]["position"].startswith("page")

    code, out, _ = run_cli(capsys, "memory", "show", shown["id"][:8])
    assert code == 0 and "/Work/docs/paper.pdf" in out

    assert run_cli(capsys, "memory", "mkdir", "/Archive")[0] == 0
    assert run_cli(capsys, "memory", "mv", "/Work/docs/paper.pdf", "/Archive")[0] == 0
    code, out, _ = run_cli(capsys, "memory", "search", GOOD["paper.pdf"], "--json", *offline)
    assert json.loads(out)["hits"][0]["path"] == "/Archive/paper.pdf"

    code, out, _ = run_cli(capsys, "memory", "rm", "/Work")
    assert code == 0 and "documents" in out
    code, out, _ = run_cli(capsys, "memory", "ls", "/", "--json")
    assert "/Work" not in json.loads(out)["folders"]

    code, _, err = run_cli(capsys, "memory", "show", "/Work/docs/guide.md")
    assert code == 1 and "No document" in err


def test_memory_search_finds_a_distinctive_phrase_first_with_and_without_vectors(
    capsys, tmp_path, offline, ollama_server
):
    write_good(tmp_path / "docs")
    for i in range(20):
        (tmp_path / "docs" / f"filler{i}.txt").write_text(f"ordinary filler text number {i}\n")
    with_vectors = ["--ollama-host", ollama_server.host]
    code, out, _ = run_cli(capsys, "ingest", str(tmp_path / "docs"), *with_vectors, "--json")
    assert code == 0
    assert json.loads(out)["vectors"]["model"] == "nomic-embed-text:latest"

    for flags, mode in ((with_vectors, "hybrid"), (offline, "text")):
        code, out, _ = run_cli(
            capsys, "memory", "search", GOOD["letter.docx"], "--k", "3", "--json", *flags
        )
        result = json.loads(out)
        assert code == 0 and result["mode"] == mode
        assert result["hits"][0]["path"] == "/Documents/docs/letter.docx"

    code, out, _ = run_cli(capsys, "memory", "search", "golf", *with_vectors)
    assert "letter.docx" in out and "hybrid search with nomic-embed-text" in out

    code, out, _ = run_cli(capsys, "memory", "stats", "--json", *with_vectors)
    stats = json.loads(out)
    assert stats["documents"] == len(GOOD) + 20
    assert stats["vectors"]["nomic-embed-text:latest"] == stats["chunks"]
    assert stats["indexing"] == 0


def test_bad_memory_requests_get_plain_errors(capsys, offline):
    code, _, err = run_cli(capsys, "memory", "search", "  ", *offline)
    assert code == 1 and "at least one word" in err
    code, _, err = run_cli(capsys, "memory", "mv", "/nothing", "/else")
    assert code == 1 and "Nothing in memory" in err
    code, _, err = run_cli(capsys, "memory", "ls", "/a/../b")
    assert code == 1 and ".." in err
    code, _, err = run_cli(capsys, "ingest")
    assert code == 1 and "nothing to ingest" in err


def _documents(data_dir: Path) -> list[dict]:
    done = subprocess.run(
        [sys.executable, "-m", "llmos", "memory", "ls", "/Documents/big", "--json"],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "LLMOS_DATA_DIR": str(data_dir)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["documents"]


FILES = 1500


def _start_big_ingest(tmp_path: Path, dead_host: str) -> tuple[subprocess.Popen, Path]:
    """``llmos ingest --json`` of FILES files in its own process group, once it has stored
    its first documents (and is still going)."""
    import lancedb

    big = tmp_path / "big"
    big.mkdir()
    for i in range(FILES):
        (big / f"f{i:04}.txt").write_text(f"file {i} begins. " + "lorem ipsum dolor sit. " * 300)
    data = tmp_path / "data"
    command = [sys.executable, "-m", "llmos", "ingest", str(big), "--json",
               "--engine", "ollama", "--ollama-host", dead_host]  # fmt: skip
    ingest = subprocess.Popen(command, env={**os.environ, "LLMOS_DATA_DIR": str(data)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.05)
        try:
            if lancedb.connect(data / "memory" / "lancedb").open_table("documents").count_rows():
                break
        except (ValueError, FileNotFoundError, OSError):
            continue
    if ingest.poll() is not None:
        ingest.communicate()
        pytest.fail("the ingest finished before it could be interrupted")
    return ingest, data


def test_kill_9_mid_ingest_leaves_no_partial_document_and_the_next_ingest_finishes(
    tmp_path, dead_host
):
    import lancedb

    files = FILES
    ingest, data = _start_big_ingest(tmp_path, dead_host)
    env = {**os.environ, "LLMOS_DATA_DIR": str(data)}
    os.killpg(ingest.pid, signal.SIGKILL)  # the CLI and its workers, like a crash
    ingest.communicate(timeout=30)

    stored = _documents(data)
    assert 0 < len(stored) < files
    db = lancedb.connect(data / "memory" / "lancedb")
    ordinals: dict[str, list[int]] = {}
    for row in db.open_table("chunks").to_arrow().select(["rev", "ordinal"]).to_pylist():
        ordinals.setdefault(row["rev"], []).append(row["ordinal"])
    for doc in stored:
        assert sorted(ordinals[doc["rev"]]) == list(range(doc["chunks"])), doc["path"]
    assert list((data / "memory" / "jobs").glob("*.json")), "the job must survive the crash"

    done = subprocess.run(
        [sys.executable, "-m", "llmos", "ingest", "--json",
         "--engine", "ollama", "--ollama-host", dead_host],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Resuming 1 ingest" in done.stderr
    report = json.loads(done.stdout)
    assert len(report["unchanged"]) == len(stored)
    assert len(report["added"]) == files - len(stored)
    final = _documents(data)
    assert len(final) == files
    chunks = db.open_table("chunks")
    assert chunks.count_rows() == sum(doc["chunks"] for doc in final), "leftovers were collected"
    assert not list((data / "memory" / "jobs").glob("*.json"))


def test_ctrl_c_stops_cleanly_with_whole_documents_only(tmp_path, dead_host):
    import lancedb

    files = FILES
    ingest, data = _start_big_ingest(tmp_path, dead_host)
    os.killpg(ingest.pid, signal.SIGINT)  # what a terminal sends to the whole group
    out, err = ingest.communicate(timeout=60)

    assert ingest.returncode == 130, err
    assert "Stopping" in err
    report = json.loads(out)
    assert report["cancelled"] and 0 < len(report["added"]) < files
    stored = _documents(data)
    assert len(stored) == len(report["added"])
    db = lancedb.connect(data / "memory" / "lancedb")
    rows = db.open_table("chunks").to_arrow().select(["rev"]).to_pylist()
    live = {doc["rev"]: doc["chunks"] for doc in stored}
    assert sum(1 for row in rows if row["rev"] in live) == sum(live.values())
    assert not list((data / "memory" / "jobs").glob("*.json")), "a cancelled job is finished"


def test_ingest_without_paths_fills_in_missing_vectors(capsys, tmp_path, ollama_server):
    (tmp_path / "a.txt").write_text("the axolotl regrows its limbs")
    with_vectors = ["--ollama-host", ollama_server.host]
    code, out, _ = run_cli(capsys, "ingest", str(tmp_path / "a.txt"), "--no-vectors",
                           "--json", *with_vectors)  # fmt: skip
    assert code == 0 and json.loads(out)["vectors"]["chunks"] == 0
    code, out, _ = run_cli(capsys, "memory", "stats", "--json", *with_vectors)
    assert json.loads(out)["indexing"] == 1

    code, out, err = run_cli(capsys, "ingest", "--json", *with_vectors)
    assert code == 0 and "Embedding 1 documents" in err
    assert json.loads(out)["vectors"]["chunks"] == 1
    code, out, _ = run_cli(capsys, "memory", "stats", "--json", *with_vectors)
    assert json.loads(out)["indexing"] == 0
    code, out, err = run_cli(capsys, "ingest", *with_vectors)
    assert code == 1 and "nothing to ingest" in err


def test_a_second_ingest_waits_for_the_one_running(tmp_path, dead_host):
    import filelock

    (tmp_path / "a.txt").write_text("the pangolin has scales")
    data = tmp_path / "data"
    (data / "memory").mkdir(parents=True)
    running = filelock.FileLock(data / "memory" / "ingest.lock")
    running.acquire()  # another ingest, as far as this one can tell
    command = [sys.executable, "-m", "llmos", "ingest", str(tmp_path / "a.txt"),
               "--engine", "ollama", "--ollama-host", dead_host]  # fmt: skip
    env = {**os.environ, "LLMOS_DATA_DIR": str(data)}
    waiting = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)  # fmt: skip
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(waiting.stderr), daemon=True)
    reader.start()
    try:
        # Wait for it to say it waits (however long a loaded machine takes to start it).
        deadline = time.monotonic() + 60
        while not any("waiting for it to finish" in line for line in lines):
            assert waiting.poll() is None, "it finished while the other ingest held the lock"
            assert time.monotonic() < deadline, "it never said it was waiting"
            time.sleep(0.05)
    finally:
        running.release()
    out = waiting.stdout.read()
    assert waiting.wait(timeout=60) == 0, "".join(lines)
    reader.join(timeout=10)
    assert "1 stored" in out


def test_when_embedding_fails_the_summary_says_what_still_waits(capsys, tmp_path, ollama_server):
    for i in range(3):
        (tmp_path / f"{i}.txt").write_text(f"note number {i} about lemurs")
    ollama_server.fail_next = {"kind": "http", "status": 500, "message": "out of memory"}
    # tmp_path also holds the data dir: memory never ingests its own files.
    code, out, _ = run_cli(capsys, "ingest", str(tmp_path), "--ollama-host", ollama_server.host)
    assert code == 0, out
    assert "3 stored" in out
    assert "Vectors stopped" in out and "out of memory" in out
    code, out, _ = run_cli(capsys, "memory", "search", "lemurs", "--json",
                           "--ollama-host", ollama_server.host)  # fmt: skip
    assert len(json.loads(out)["hits"]) == 3  # searchable by text all the same

    code, out, _ = run_cli(capsys, "ingest", "--json", "--ollama-host", ollama_server.host)
    vectors = json.loads(out)["vectors"]
    assert code == 0 and vectors["chunks"] == 3 and vectors["waiting"] == 0
