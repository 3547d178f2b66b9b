"""The ``llmos`` command line against an Ollama-protocol server on 127.0.0.1."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from llmos.cli import main
from tests.ollama_server import count_prompt_tokens, default_responder


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    out, _ = capsys.readouterr()
    assert exited.value.code == 0
    assert "doctor" in out and "run" in out
    assert "Without a command, llmos opens the desktop." in out


def test_bare_llmos_without_a_display_says_how_to_go_on(capsys, monkeypatch):
    # Bare `llmos` opens the desktop (tests/desktop); with no screen it must not abort in Qt.
    for name in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    code, _, err = run_cli(capsys)
    assert code == 1
    assert "no display" in err and "llmos run chat" in err


def test_bare_llmos_on_x11_without_xcb_cursor_says_what_to_install(capsys, monkeypatch):
    import ctypes.util

    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    code, _, err = run_cli(capsys)
    assert code == 1
    assert "libxcb-cursor0" in err


def test_doctor_reports_a_usable_backend(capsys, ollama_server):
    code, out, _ = run_cli(capsys, "doctor", "--json", "--ollama-host", ollama_server.host)
    assert code == 0
    report = json.loads(out)
    assert report["reachable"] is True and report["usable"] is True
    assert report["host"] == ollama_server.host
    models = {m["name"]: m for m in report["models"]}
    assert models["qwen2.5:0.5b"]["context_length"] == 32768
    assert "tools" in models["qwen2.5:0.5b"]["capabilities"]
    assert models["nomic-embed-text:latest"]["capabilities"] == ["embedding"]
    code, out, _ = run_cli(capsys, "doctor", "--ollama-host", ollama_server.host)
    assert code == 0 and "reachable" in out and "qwen2.5:0.5b" in out


def test_doctor_reads_ollama_host_from_the_environment(capsys, ollama_server, monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", ollama_server.host.removeprefix("http://"))
    code, out, _ = run_cli(capsys, "doctor", "--json")
    assert code == 0 and json.loads(out)["host"] == ollama_server.host


def test_doctor_with_nothing_listening_exits_1_with_a_clear_message(capsys, dead_host):
    code, out, err = run_cli(capsys, "doctor", "--engine", "ollama", "--ollama-host", dead_host)
    assert code == 1
    assert f"Ollama is not reachable at {dead_host}" in err
    assert "Traceback" not in err
    code, out, _ = run_cli(
        capsys, "doctor", "--json", "--engine", "ollama", "--ollama-host", dead_host
    )
    assert code == 1 and json.loads(out)["reachable"] is False


def test_doctor_without_a_chat_model_is_not_usable(capsys, ollama_server):
    for name in ("qwen2.5:0.5b", "llava:7b", "tiny:latest"):
        assert main(["models", "rm", name, "--ollama-host", ollama_server.host]) == 0
    code, _, err = run_cli(capsys, "doctor", "--ollama-host", ollama_server.host)
    assert code == 1 and "No chat model is installed" in err


def test_run_json_reports_answer_context_and_both_token_counts(capsys, ollama_server):
    code, out, err = run_cli(
        capsys,
        "run",
        "chat",
        "--prompt",
        "What is virtual memory?",
        "--json",
        "--ollama-host",
        ollama_server.host,
        "--model",
        "qwen2.5:0.5b",
    )
    assert code == 0, err
    result = json.loads(out)
    sent = ollama_server.requests[-1]
    messages = sent["body"]["messages"]
    assert messages[0]["role"] == "system" and messages[-1]["content"] == "What is virtual memory?"
    assert result["answer"] == default_responder("qwen2.5:0.5b", messages, None)
    assert result["app"] == "chat" and result["model"] == "qwen2.5:0.5b" and result["pid"] == 1
    assert result["prompt_tokens_reported"] == count_prompt_tokens(messages, sent["body"]["tools"])
    assert result["prompt_tokens_accounted"] > 0
    context = result["context"]
    assert context["budget"] == sent["num_ctx"] == 8192
    assert context["reserve"] == sent["num_predict"]
    assert context["used"] == result["prompt_tokens_accounted"] + context["reserve"]
    assert set(context) >= {"system", "pinned", "tools", "history", "paged_in", "reserve"}
    assert result["dropped_turns"] == 0
    assert not sent["truncated"]


def test_run_streams_the_answer_to_stdout(capsys, ollama_server):
    code, out, _ = run_cli(
        capsys, "run", "chat", "--prompt", "hello there", "--ollama-host", ollama_server.host
    )
    assert code == 0
    messages = ollama_server.requests[-1]["body"]["messages"]
    assert out == default_responder(ollama_server.requests[-1]["model"], messages, None) + "\n"


def test_run_reads_the_prompt_from_stdin(capsys, ollama_server, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("a question from a pipe\n"))
    code, _, _ = run_cli(
        capsys, "run", "chat", "--prompt", "-", "--json", "--ollama-host", ollama_server.host
    )
    assert code == 0
    assert ollama_server.requests[-1]["body"]["messages"][-1]["content"].startswith(
        "a question from a pipe"
    )


def test_run_never_sends_more_than_num_ctx(capsys, ollama_server):
    # A long prompt in a small window goes out whole and within the window.
    prompt = "The kernel pages memory in and out of the context window. " * 40
    code, out, err = run_cli(
        capsys,
        "run",
        "chat",
        "--prompt",
        prompt,
        "--json",
        "--num-ctx",
        "2048",
        "--ollama-host",
        ollama_server.host,
    )
    assert code == 0, err
    sent = ollama_server.requests[-1]
    assert sent["num_ctx"] == 2048
    assert sent["prompt_tokens"] > 400
    assert sent["prompt_tokens"] + sent["num_predict"] <= 2048
    assert not sent["truncated"]
    assert json.loads(out)["prompt_tokens_reported"] == sent["prompt_tokens"]


def test_run_refuses_a_prompt_that_cannot_fit(capsys, ollama_server):
    code, _, err = run_cli(
        capsys,
        "run",
        "chat",
        "--prompt",
        "word " * 3000,
        "--num-ctx",
        "1024",
        "--ollama-host",
        ollama_server.host,
    )
    assert code == 1
    assert "tokens too large" in err and "Traceback" not in err
    assert not [r for r in ollama_server.requests if r["path"] == "/api/chat"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--model", "nope:1b"), "llmos models pull nope:1b"),
        (("--model", "nomic-embed-text:latest"), "lacks completion"),
    ],
)
def test_run_with_an_unusable_model_says_what_to_do(capsys, ollama_server, args, expected):
    code, _, err = run_cli(
        capsys, "run", "chat", "--prompt", "hi", "--ollama-host", ollama_server.host, *args
    )
    assert code == 1 and expected in err


def test_run_with_nothing_listening_exits_1(capsys, dead_host):
    code, out, err = run_cli(
        capsys, "run", "chat", "--prompt", "hi", "--engine", "ollama", "--ollama-host", dead_host
    )
    assert code == 1 and out == ""
    assert err.strip() == (
        f"llmos: Ollama is not reachable at {dead_host}. Start it with `ollama serve`, or "
        "point LLM-OS elsewhere with --ollama-host or OLLAMA_HOST."
    )


def test_run_an_unknown_app(capsys, ollama_server):
    code, _, err = run_cli(
        capsys, "run", "paint", "--prompt", "hi", "--ollama-host", ollama_server.host
    )
    assert code == 1 and "no app called 'paint'" in err


def test_a_stream_broken_mid_way_prints_the_partial_answer_and_the_error(capsys, ollama_server):
    ollama_server.fail_next = {"kind": "break", "after_tokens": 3}
    code, out, err = run_cli(
        capsys, "run", "chat", "--prompt", "hi", "--ollama-host", ollama_server.host
    )
    assert code == 1
    assert out.strip()  # the three tokens that arrived were shown
    assert "connection to Ollama" in err and "Traceback" not in err


def test_models_list_pull_and_remove(capsys, ollama_server):
    host = ("--ollama-host", ollama_server.host)
    code, out, _ = run_cli(capsys, "models", *host)
    assert code == 0 and "qwen2.5:0.5b" in out and "32768" in out
    code, out, _ = run_cli(capsys, "models", "pull", "smollm2:135m", *host)
    assert code == 0 and "success" in out and "Pulled smollm2:135m" in out
    code, out, _ = run_cli(capsys, "models", *host)
    assert "smollm2:135m" in out
    code, out, _ = run_cli(capsys, "models", "rm", "smollm2:135m", *host)
    assert code == 0
    code, _, err = run_cli(capsys, "models", "pull", "no-such:1b", *host)
    assert code == 1 and "no model called 'no-such:1b'" in err


def test_apps_lists_the_builtin_chat(capsys):
    code, out, _ = run_cli(capsys, "apps")
    assert code == 0 and "chat" in out and "Chat" in out


def test_the_installed_command_runs_as_a_subprocess(ollama_server):
    done = subprocess.run(
        [sys.executable, "-m", "llmos", "run", "chat", "--prompt", "ping", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**__import__("os").environ, "OLLAMA_HOST": ollama_server.host},
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["answer"]


def test_run_with_no_stdin_to_read_says_so(capsys, ollama_server, monkeypatch):
    monkeypatch.setattr(sys, "stdin", None)
    code, _, err = run_cli(
        capsys, "run", "chat", "--prompt", "-", "--ollama-host", ollama_server.host
    )
    assert code == 1 and "there is no stdin" in err


def test_run_with_an_empty_prompt_says_so(capsys, ollama_server):
    code, _, err = run_cli(
        capsys, "run", "chat", "--prompt", "  ", "--ollama-host", ollama_server.host
    )
    assert code == 1 and "the prompt is empty" in err


def _turns_file(tmp_path, count: int = 300):
    """A long conversation: a fact in turn 3, a question about it in turn 250."""
    import random

    rng = random.Random(11)
    words = ["river", "engine", "garden", "violet", "cloud", "paper", "window", "orange"]
    lines = []
    for number in range(1, count + 1):
        if number == 3:
            lines.append("Please remember: the locker code for building Zorblat is 4417.")
        elif number == 250:
            lines.append(json.dumps({"content": "What was the locker code for building Zorblat?"}))
        else:
            lines.append(" ".join(rng.choice(words) for _ in range(rng.randint(8, 40))) + ".")
    path = tmp_path / "turns.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_run_turns_keeps_300_turns_in_a_2048_token_window_without_dropping_any(
    capsys, ollama_server, tmp_path
):
    turns = _turns_file(tmp_path)
    code, out, err = run_cli(
        capsys,
        "run",
        "chat",
        "--turns",
        str(turns),
        "--json",
        "--num-ctx",
        "2048",
        "--ollama-host",
        ollama_server.host,
    )
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [row["turn"] for row in rows] == list(range(1, 301))
    assert all(row["dropped_turns"] == 0 for row in rows)
    assert {"evicted", "paged_in", "page_faults", "answer", "context"} <= set(rows[0])
    assert sum(row["evicted"] for row in rows) > 250
    chats = [r for r in ollama_server.requests if r["path"] == "/api/chat"]
    assert all(r["prompt_tokens"] + r["num_predict"] <= 2048 and not r["truncated"] for r in chats)
    # Turn 250's request carries the page of turn 3 from long-term memory.
    asked = next(
        r
        for r in chats
        if "locker code" in r["body"]["messages"][-1]["content"]
        and r["body"]["messages"][-1]["content"].startswith("What was")
    )
    pages = [m["content"] for m in asked["body"]["messages"] if m["role"] == "system"]
    assert any("Memory page: /Processes/chat-1" in p and "4417" in p for p in pages)
    assert rows[249]["page_faults"] >= 1
    assert "300 of 300 turns answered" in err


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "holds no turns"),
        ('{"text": "hi"}\n', 'line 1 of the turns file is not a JSON object with a text "content"'),
        ("hello\n{broken json\n", "line 2"),
    ],
)
def test_run_turns_with_a_bad_file_says_which_line(capsys, tmp_path, text, expected):
    path = tmp_path / "turns.jsonl"
    path.write_text(text, encoding="utf-8")
    code, _, err = run_cli(capsys, "run", "chat", "--turns", str(path))
    assert code == 1 and expected in err and "Traceback" not in err


def test_run_turns_reports_a_turn_too_large_and_goes_on(capsys, ollama_server, tmp_path):
    path = tmp_path / "turns.txt"
    path.write_text("hello\n" + "word " * 3000 + "\nbye\n", encoding="utf-8")
    code, out, err = run_cli(
        capsys,
        "run", "chat", "--turns", str(path), "--json", "--num-ctx", "1024",
        "--ollama-host", ollama_server.host,
    )  # fmt: skip
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 1
    assert [row["turn"] for row in rows] == [1, 2, 3]
    assert "tokens too large" in rows[1]["error"] and rows[2]["answer"]
    assert "2 of 3 turns answered" in err


def test_run_turns_without_a_file_says_so(capsys, tmp_path):
    code, _, err = run_cli(capsys, "run", "chat", "--turns", str(tmp_path / "nope.txt"))
    assert code == 1 and "could not be read" in err


@pytest.mark.parametrize("allow", [False, True])
def test_run_headless_denies_sensitive_syscalls_unless_allowed(
    capsys, ollama_server, tmp_path, allow
):
    secret = tmp_path / "plan.txt"
    secret.write_text("The plan is 42.", encoding="utf-8")
    manifest = tmp_path / "reader.toml"
    manifest.write_text(
        'id = "reader"\nname = "Reader"\n[model]\nrequires = ["completion", "tools"]\n'
        '[permissions]\nsyscalls = ["files.read"]\n',
        encoding="utf-8",
    )
    assert main(["apps", "install", str(manifest), "--yes"]) == 0
    capsys.readouterr()

    def responder(model, messages, tools):
        if messages[-1]["role"] == "user":
            return {
                "tool_calls": [
                    {"function": {"name": "read_file", "arguments": {"path": str(secret)}}}
                ]
            }
        if (
            messages[-1]["role"] == "tool"
            and len([m for m in messages if m["role"] == "tool"]) == 1
        ):
            # A document's text tries to grant itself a permission: it cannot.
            return {
                "tool_calls": [
                    {
                        "function": {
                            "name": "memory_save_note",
                            "arguments": {"title": "x", "text": "y"},
                        }
                    }
                ]
            }
        return "done"

    ollama_server.responder = responder
    args = ["run", "reader", "--prompt", "Read my plan.", "--json"]
    args += ["--ollama-host", ollama_server.host, "--model", "qwen2.5:0.5b"]
    code, out, err = run_cli(capsys, *args, *(["--allow", "files.read"] if allow else []))
    assert code == 0, err
    calls = json.loads(out)["syscalls"]
    assert [(c["tool"], c["outcome"]) for c in calls] == [
        ("read_file", "ok" if allow else "refused"),
        ("memory_save_note", "refused"),
    ]
    assert "memory.note refused: Reader has no permission for memory.note" in err
    told = [m for m in ollama_server.requests if m["path"] == "/api/chat"][1]["body"]["messages"][
        -1
    ]
    assert ("The plan is 42." in told["content"]) is allow
    assert ("files.read refused" in err) is not allow


def test_the_vision_app_sends_images_to_a_vision_model(capsys, ollama_server, tmp_path):
    image = tmp_path / "cat.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    ollama_server.responder = lambda model, messages, tools: (
        f"{model} sees {len(messages[-1].get('images') or [])} image(s)."
    )
    code, out, err = run_cli(
        capsys, "run", "vision", "--prompt", "Describe this.", "--image", str(image),
        "--ollama-host", ollama_server.host,
    )  # fmt: skip
    assert code == 0, err
    assert out.strip() == "llava:7b sees 1 image(s)."  # the installed vision model was chosen
    sent = ollama_server.requests[-1]["body"]["messages"][-1]
    assert len(sent["images"]) == 1


def test_the_vision_app_without_a_vision_model_says_what_to_pull(capsys, ollama_server, tmp_path):
    ollama_server.models.pop("llava:7b")
    code, _, err = run_cli(
        capsys, "run", "vision", "--prompt", "Describe this.", "--ollama-host", ollama_server.host
    )
    assert code == 1
    assert "No installed model" in err and "needs completion, vision" in err
    assert "llmos models pull llava:7b" in err


def test_run_refuses_a_file_that_is_not_an_image(capsys, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello", encoding="utf-8")
    code, _, err = run_cli(capsys, "run", "vision", "--prompt", "x", "--image", str(text))
    assert code == 1 and "is not a PNG, JPEG, GIF, WebP or BMP image" in err
    code, _, err = run_cli(
        capsys, "run", "vision", "--prompt", "x", "--image", str(tmp_path / "no.png")
    )
    assert code == 1 and "cannot be read" in err
