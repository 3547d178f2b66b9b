"""``llmos ps`` and ``llmos run --resume`` against an Ollama-protocol server on 127.0.0.1,
including a real ``llmos run`` killed with SIGKILL mid-answer."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time

from llmos.cli import main
from tests.ollama_server import split_tokens

STORY = " ".join(f"word{i}" for i in range(400)) + "."


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def ps(capsys, *flags: str) -> dict[int, dict]:
    code, out, _ = run_cli(capsys, "ps", "--json", *flags)
    assert code == 0
    return {info["pid"]: info for info in json.loads(out)}


def read_until(stream, enough: int, timeout: float = 60.0) -> bytes:
    """What ``stream`` gives until ``enough`` bytes came (or it ends)."""
    got = b""
    deadline = time.monotonic() + timeout
    while len(got) < enough and time.monotonic() < deadline:
        ready, _, _ = select.select([stream], [], [], 0.5)
        if ready:
            chunk = os.read(stream.fileno(), 4096)
            if not chunk:
                break
            got += chunk
    return got


def test_kill_9_mid_answer_loses_only_the_unfinished_tokens(capsys, ollama_server):
    ollama_server.token_delay = 0.02
    ollama_server.responder = lambda model, messages, tools: (
        STORY if messages[-1]["content"].startswith("Tell") else "Going on from there."
    )
    host = ollama_server.host
    code, _, _ = run_cli(capsys, "run", "chat", "--prompt", "Hello first", "--ollama-host", host)
    assert code == 0
    child = subprocess.Popen(
        [sys.executable, "-m", "llmos", "run", "chat", "--prompt", "Tell me a story"],
        env={**os.environ, "OLLAMA_HOST": host},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        printed = read_until(child.stdout, 600).decode()
        time.sleep(0.3)  # the checkpoint of what was printed is written
        printed += os.read(child.stdout.fileno(), 1 << 16).decode()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
        child.stderr.close()
    assert len(printed) >= 600 and printed != STORY

    listed = ps(capsys)
    [pid] = [pid for pid, info in listed.items() if info["status"] == "interrupted"]
    assert listed[pid]["first_line"] == "Tell me a story" and listed[pid]["app_id"] == "chat"
    assert len(listed) == 1  # the first run ended: only `ps --all` shows it
    assert len(ps(capsys, "--all")) == 2
    code, out, _ = run_cli(capsys, "ps")
    assert "interrupted" in out and "--resume PID" in out

    code, out, err = run_cli(
        capsys, "run", "chat", "--resume", str(pid), "--prompt", "Go on", "--json",
        "--ollama-host", host,
    )  # fmt: skip
    assert code == 0, err
    answer = json.loads(out)
    assert answer["pid"] == pid and answer["answer"] == "Going on from there."
    sent = ollama_server.requests[-1]["body"]["messages"]
    said = [(m["role"], m["content"]) for m in sent if m["role"] != "system"]
    assert said[0] == ("user", "Tell me a story")
    kept = said[1][1]
    # Everything printed before the kill came back, but for the tokens of its last instant.
    assert said[1][0] == "assistant" and printed.startswith(kept)
    assert len(split_tokens(printed)) - len(split_tokens(kept)) <= 10
    assert said[2] == ("user", "Go on")
    assert ps(capsys)[pid]["status"] == "hibernated"  # resumable again
    assert ps(capsys)[pid]["turns"] == 2


def test_resume_says_plainly_what_cannot_be_resumed(capsys, ollama_server):
    host = ollama_server.host
    code, _, err = run_cli(capsys, "run", "chat", "--resume", "41", "--prompt", "hi")
    assert code == 1 and "no saved process 41" in err and "llmos ps --all" in err
    run_cli(capsys, "run", "writer", "--prompt", "A title", "--ollama-host", host)
    [pid] = ps(capsys, "--all")
    code, _, err = run_cli(
        capsys, "run", "chat", "--resume", str(pid), "--prompt", "hi", "--ollama-host", host
    )
    assert code == 1 and f"llmos run writer --resume {pid}" in err
    # An ended process goes on as a new one, with its conversation.
    code, _, err = run_cli(
        capsys, "run", "writer", "--resume", str(pid), "--prompt", "More", "--ollama-host", host
    )
    assert code == 0 and f"process {pid} had ended" in err
    sent = ollama_server.requests[-1]["body"]["messages"]
    assert [m["content"] for m in sent if m["role"] == "user"] == ["A title", "More"]


def test_a_resumed_process_whose_model_is_gone_says_how_to_go_on(capsys, ollama_server):
    host = ollama_server.host
    run_cli(capsys, "run", "chat", "--prompt", "hi", "--model", "tiny", "--ollama-host", host)
    [pid] = ps(capsys, "--all")
    run_cli(capsys, "run", "chat", "--resume", str(pid), "--prompt", "x", "--ollama-host", host)
    assert main(["models", "rm", "tiny", "--ollama-host", host]) == 0
    code, _, err = run_cli(
        capsys, "run", "chat", "--resume", str(pid + 1), "--prompt", "y", "--ollama-host", host
    )
    assert code == 1 and "tiny" in err and "is not installed" in err and "--model" in err
    code, out, err = run_cli(
        capsys, "run", "chat", "--resume", str(pid + 1), "--prompt", "y", "--json",
        "--model", "qwen2.5:0.5b", "--ollama-host", host,
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["model"] == "qwen2.5:0.5b"


def test_ps_lists_a_damaged_session_without_failing(capsys, ollama_server, tmp_path):
    run_cli(capsys, "run", "chat", "--prompt", "hi", "--ollama-host", ollama_server.host)
    log = tmp_path / "data" / "sessions" / "1" / "log.jsonl"
    log.write_bytes(b"\x00\x01 not a log\n")
    code, out, _ = run_cli(capsys, "ps", "--all")
    assert code == 0 and "DAMAGED" in out and "does not begin a session" in out


def test_ps_rm_deletes_saved_processes_after_asking(capsys, ollama_server, monkeypatch):
    host = ollama_server.host
    for prompt in ("first", "second"):
        run_cli(capsys, "run", "chat", "--prompt", prompt, "--ollama-host", host)
    first, second = sorted(ps(capsys, "--all"))
    code, out, err = run_cli(capsys, "ps", "rm", str(first))
    assert code == 1 and "pass --yes" in err and "first" in out  # no terminal: nothing goes
    assert first in ps(capsys, "--all")
    code, out, err = run_cli(capsys, "ps", "rm", str(first), "999", "-y")
    assert code == 1 and "no saved process 999" in err and f"Deleted process {first}" in out
    assert sorted(ps(capsys, "--all")) == [second]
