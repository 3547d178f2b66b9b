"""Desktop responsiveness: the event loop while windows stream, a 1,000-message chat, and
the cold start to a painted desktop.

Usage: .venv/bin/python benchmarks/desktop_bench.py [--windows 8] [--seconds 10]
       [--token-delay 0.002] [--messages 1000] [--runs 5] [--server process|thread]

1. The real DesktopWindow, on the real ``ollama`` client, against the Ollama-protocol test
   server (in its own process like Ollama itself; ``--server thread`` runs it in this one)
   answering ~400-token Markdown at full speed. ``--windows`` chat windows stream at once
   (parallel = windows) with the task manager shown, re-sending as each answer ends. A 5 ms
   single-shot QTimer chain records how late each firing comes against its schedule; the
   same probe runs first with no window open (baseline).
2. One chat window gets ``--messages`` Markdown messages, then is scrolled through a page
   at a time, each step repainted at once (``viewport().repaint()``).
3. ``llmos`` (the CLI entry point, engine "ollama" at a dead host: no model loads) in a fresh
   process, from just before it is started to its desktop's first paint.

Targets: max stall < 50 ms, p99 lateness < 16 ms, scroll p99 < 16 ms, cold start < 2 s.
Runs headless (QT_QPA_PLATFORM=offscreen unless set).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import qasync  # noqa: E402
from PySide6.QtCore import QEvent, QObject, Qt, QTimer, qInstallMessageHandler  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from llmos.config import load_settings  # noqa: E402
from llmos.desktop.agent_window import AgentWindow  # noqa: E402
from llmos.desktop.desktop_window import DesktopWindow  # noqa: E402
from llmos.desktop.theme import apply_theme  # noqa: E402
from llmos.kernel.events import TokenStreamed  # noqa: E402
from tests.ollama_server import OllamaTestServer  # noqa: E402

PROBE_MS = 5
QUIET_QT = "This plugin does not support propagateSizeHints"  # offscreen only, harmless
PROMPT = "Explain paging in an operating system, with an example."
ANSWER = """## How paging keeps a process running

A process sees one **flat address space**, while the kernel keeps only the pages it
needs in RAM. When memory runs short, the *least recently used* pages go to disk.

1. The program touches an address; the MMU looks it up in the page table.
2. A missing page raises a **page fault**, and the kernel reads the page back in.
3. The faulting instruction runs again, as if nothing had happened.

Why it works well:

- Most programs touch a small *working set* at any one time.
- Pages are a fixed size (4 KiB here), so any free frame fits any page.
- Shared libraries are mapped once and shared by every process.
  - Copy-on-write pages are copied only when somebody writes.
  - Read-only pages can simply be dropped and read again.

```python
def evict(pages: list[Page], budget: int) -> list[Page]:
    \"\"\"Drop the least recently used pages until the rest fit in ``budget``.\"\"\"
    kept = sorted(pages, key=lambda page: page.last_used, reverse=True)
    while sum(page.size for page in kept) > budget:
        victim = kept.pop()
        swap.write(victim.number, victim.data)
    return kept
```

| Term | Meaning |
|------|---------|
| page | a fixed-size block of virtual memory |
| frame | a fixed-size block of physical memory |

In LLM-OS the same idea applies to **context RAM**: old turns are paged out to
long-term memory and paged back in when a question needs them. See `ContextRAM.fit()`.
"""  # 408 tokens by the test server's count
SERVER = """import sys
from tests.ollama_server import OllamaTestServer
server = OllamaTestServer(token_delay=float(sys.argv[1]))
server.responder = lambda model, messages, tools: sys.argv[2]
print(server.start().host, flush=True)
sys.stdin.read()
server.stop()
"""
COLD_START = """import sys, time
from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication, QWidget

class FirstPaint(QObject):
    def eventFilter(self, watched, event):
        if event.type() == QEvent.Type.Paint and isinstance(watched, QWidget):
            window = watched.window()
            if type(window).__name__ == "DesktopWindow":
                app.removeEventFilter(self)
                QTimer.singleShot(0, lambda: shown(window))  # once this paint is done
        return False

def shown(window):
    print("PAINTED", time.time(), flush=True)
    window.close()

app = QApplication(sys.argv[:1])  # run_desktop takes this one; the filter must come first
first_paint = FirstPaint()
app.installEventFilter(first_paint)
from llmos.cli import main
sys.exit(main([]))
"""


class Probe(QObject):
    """A single-shot PROBE_MS timer chain recording each firing's lateness (ms), and the
    frames (update requests) the desktop window painted meanwhile."""

    def __init__(self, window: QObject) -> None:
        super().__init__()
        self.timer = QTimer(self, singleShot=True, interval=PROBE_MS)
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.timeout.connect(self._fire)
        self.late: list[float] = []
        self.frames = 0
        self._due = 0.0
        window.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.UpdateRequest:
            self.frames += 1
        return False

    def start(self) -> None:
        self.late, self.frames = [], 0
        self._due = time.perf_counter() + PROBE_MS / 1000
        self.timer.start()

    def _fire(self) -> None:
        now = time.perf_counter()
        self.late.append((now - self._due) * 1000)
        self._due = now + PROBE_MS / 1000
        self.timer.start()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def measure(probe: Probe, seconds: float, tokens: list[int]) -> dict[str, float]:
    tokens[0] = 0
    probe.start()
    started = time.perf_counter()
    await asyncio.sleep(seconds)
    probe.timer.stop()
    elapsed = time.perf_counter() - started
    late = probe.late
    return {
        "seconds": elapsed,
        "firings": len(late),
        "max": max(late),
        "p50": percentile(late, 0.50),
        "p95": percentile(late, 0.95),
        "p99": percentile(late, 0.99),
        "tokens/s": tokens[0] / elapsed,
        "frames": probe.frames,
    }


def show_probe(label: str, f: dict[str, float]) -> None:
    print(
        f"  {label}: {f['seconds']:.1f} s, {f['firings']:.0f} firings; lateness p50 "
        f"{f['p50']:.2f} / p95 {f['p95']:.2f} / p99 {f['p99']:.2f} ms, max stall "
        f"{f['max']:.1f} ms; {f['tokens/s']:.0f} tokens/s; {f['frames']:.0f} frames "
        f"({f['frames'] / f['seconds']:.0f}/s)"
    )


async def until(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit("timed out waiting for the desktop")
        await asyncio.sleep(0.02)


async def streaming(desktop: DesktopWindow, args: argparse.Namespace) -> dict:
    tokens = [0]
    desktop.session.bus.subscribe(
        lambda _: tokens.__setitem__(0, tokens[0] + 1), TokenStreamed
    )
    probe = Probe(desktop)
    desktop.task_manager_dock.show()
    await until(lambda: desktop.session.kernel is not None)
    await asyncio.sleep(0.5)
    results = {"baseline": await measure(probe, args.seconds, tokens)}
    show_probe("0 windows (baseline)", results["baseline"])

    windows = [desktop.open_app("chat") for _ in range(args.windows)]
    await until(lambda: all(w.pid is not None for w in windows))
    resending = True

    def resend(window: AgentWindow, generating: bool) -> None:
        if not generating and resending:  # after the turn's task has finished
            QTimer.singleShot(0, lambda: resending and window._send_text(PROMPT))

    for window in windows:
        window.generatingChanged.connect(lambda on, w=window: resend(w, on))
        window._send_text(PROMPT)
    await asyncio.sleep(1.0)  # every slot streaming
    results["streaming"] = await measure(probe, args.seconds, tokens)
    show_probe(f"{args.windows} windows streaming", results["streaming"])
    resending = False
    for window in windows:
        window.stop()
    await until(lambda: not any(w.generating for w in windows))
    answers = sum(w.chat.messages for w in windows) // 2
    print(f"  ({answers} answers in all, {len(ANSWER)} characters each when complete)")
    return results


async def long_chat(desktop: DesktopWindow, messages: int) -> dict:
    window = desktop.open_app("chat")
    assert window is not None
    chat = window.chat
    started = time.perf_counter()
    for i in range(messages):
        if i % 2:
            chat.add_message("assistant", ANSWER, "Chat")
        else:
            chat.add_message("user", f"Question {i}: {PROMPT}", "You")
    built = time.perf_counter() - started
    pending = asyncio.get_running_loop().create_future()
    QTimer.singleShot(0, lambda: pending.set_result(None))  # after the events added queued
    await pending
    settled = time.perf_counter() - started
    bar = chat.verticalScrollBar()
    frames = []
    for value in range(0, bar.maximum() + bar.pageStep(), bar.pageStep()):
        begin = time.perf_counter()
        bar.setValue(value)
        chat.viewport().repaint()
        frames.append((time.perf_counter() - begin) * 1000)
    result = {
        "build": built,
        "settled": settled,
        "frames": len(frames),
        "height": bar.maximum() + bar.pageStep(),
        "p50": percentile(frames, 0.5),
        "p99": percentile(frames, 0.99),
        "max": max(frames),
    }
    print(
        f"  {chat.messages} messages added in {built:.2f} s ({settled:.2f} s with pending "
        f"events); scrolled {result['height']} px in {len(frames)} page steps: "
        f"p50 {result['p50']:.2f} / p99 {result['p99']:.2f} / max {result['max']:.2f} ms a frame"
    )
    return result


async def desktop_figures(args: argparse.Namespace, host: str, data: Path) -> dict:
    flags = {"engine": "ollama", "ollama_host": host, "parallel": max(1, args.windows)}
    settings = load_settings({**flags, "data_dir": data})
    desktop = DesktopWindow(settings)
    desktop.show()
    desktop.start()
    try:
        print(f"event loop ({PROBE_MS} ms probe), server token delay {args.token_delay} s:")
        results = await streaming(desktop, args)
        print(f"{args.messages}-message conversation:")
        results["chat"] = await long_chat(desktop, args.messages)
    finally:
        await desktop.shutdown()
        await desktop.closed
    return results


@contextlib.contextmanager
def serve(args: argparse.Namespace) -> Iterator[str]:
    if args.server == "thread":
        server = OllamaTestServer(token_delay=args.token_delay)
        server.responder = lambda model, messages, tools: ANSWER
        with server:
            yield str(server.host)
        return
    command = [sys.executable, "-c", SERVER, str(args.token_delay), ANSWER]
    child = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert child.stdin is not None and child.stdout is not None
    try:
        yield child.stdout.readline().decode().strip()
    finally:
        child.stdin.close()
        child.wait(10)


def cold_start(runs: int, tmp: Path) -> list[float]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"  # nothing listens once closed
    env = {
        **os.environ,
        "LLMOS_ENGINE": "ollama",
        "OLLAMA_HOST": dead,
        "LLMOS_DATA_DIR": str(tmp / "cold"),
        "LLMOS_CONFIG": str(tmp / "cold.toml"),
    }
    seconds = []
    for _ in range(runs):
        started = time.time()
        done = subprocess.run(
            [sys.executable, "-c", COLD_START], env=env, capture_output=True, text=True, timeout=60
        )
        painted = [line.split()[1] for line in done.stdout.splitlines() if line.startswith("PAINTED")]
        noise = [line for line in done.stderr.splitlines() if QUIET_QT not in line]
        if done.returncode or not painted or noise:
            raise SystemExit(f"cold start failed ({done.returncode}):\n{done.stderr}")
        seconds.append(float(painted[0]) - started)
    print(
        f"cold start to a painted desktop, {runs} runs: min {min(seconds):.2f} / median "
        f"{statistics.median(seconds):.2f} / max {max(seconds):.2f} s"
    )
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0, help="each probe's duration")
    parser.add_argument("--token-delay", type=float, default=0.002, help="server s/token")
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5, help="cold starts")
    parser.add_argument("--server", choices=("process", "thread"), default="process")
    args = parser.parse_args()

    qt_warnings = []

    def on_qt_message(mode, context, message: str) -> None:
        if QUIET_QT not in message:
            qt_warnings.append(message)
            print(f"Qt: {message}", file=sys.stderr)

    qInstallMessageHandler(on_qt_message)
    app = QApplication(sys.argv[:1])
    app.setQuitOnLastWindowClosed(False)
    apply_theme(app, "system")
    with tempfile.TemporaryDirectory() as temp:
        tmp = Path(temp)
        os.environ["LLMOS_CONFIG"] = str(tmp / "config.toml")  # the settings dialog's file
        with serve(args) as host, asyncio.Runner(loop_factory=qasync.QEventLoop) as runner:
            results = runner.run(desktop_figures(args, host, tmp / "data"))
        cold = cold_start(args.runs, tmp)

    stream, chat = results["streaming"], results["chat"]
    rows = [
        ("max stall, 0 windows (ms)", results["baseline"]["max"], 50),
        (f"max stall, {args.windows} streaming (ms)", stream["max"], 50),
        (f"p99 lateness, {args.windows} streaming (ms)", stream["p99"], 16),
        (f"scroll {args.messages} msgs, p99 (ms/frame)", chat["p99"], 16),
        (f"scroll {args.messages} msgs, max (ms/frame)", chat["max"], 50),
        ("cold start, median (s)", statistics.median(cold), 2),
    ]
    print(f"\n{'summary':<36} {'measured':>9} {'target':>8}  met")
    for label, value, target in rows:
        print(f"{label:<36} {value:>9.2f} {'< ' + str(target):>8}  {'yes' if value < target else 'NO'}")
    print(
        f"{'tokens/s streamed in total':<36} {stream['tokens/s']:>9.0f}\n"
        f"{'frames painted while streaming':<36} {stream['frames']:>9.0f}\n"
        f"{'Qt warnings':<36} {len(qt_warnings):>9}"
    )


if __name__ == "__main__":
    main()
