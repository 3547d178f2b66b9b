"""Desktop responsiveness: the event loop while chats stream, a 1,000-message chat, and the
cold start to a painted desktop. Prints figures; headless (offscreen unless QT_QPA_PLATFORM
is set).

Usage: .venv/bin/python benchmarks/desktop_bench.py [--windows 8] [--seconds 10]
       [--token-delay 0.002] [--messages 1000] [--runs 5] [--server process|thread]

1. The real DesktopWindow and ``ollama`` client against the Ollama-protocol test server (in
   its own process, as Ollama is), answering ~400-token Markdown at full speed in --windows
   chat windows at once (parallel = windows, task manager shown, each re-sending when done).
   A 5 ms single-shot QTimer chain records how late each firing comes; the baseline runs it
   with no window open. Frames are the desktop window's update requests (repaints).
2. One chat gets --messages Markdown messages, then is scrolled a page (one repaint) a step.
3. ``llmos`` itself (engine "ollama" at a dead host: no model loads) in a fresh process, from
   just before it starts to its desktop's first paint.

Targets: max stall < 50 ms and p99 lateness < 16 ms while streaming, scroll p99 < 16 ms,
cold start < 2 s.
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

import qasync
from PySide6.QtCore import QEvent, QObject, Qt, QTimer, qInstallMessageHandler
from PySide6.QtWidgets import QApplication

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from llmos.config import load_settings  # noqa: E402
from llmos.desktop.agent_window import AgentWindow  # noqa: E402
from llmos.desktop.desktop_window import DesktopWindow  # noqa: E402
from llmos.desktop.main import settle_heap_when_ready  # noqa: E402
from llmos.desktop.theme import apply_theme  # noqa: E402
from llmos.kernel.events import TokenStreamed  # noqa: E402
from tests.ollama_server import OllamaTestServer  # noqa: E402

PROBE_MS = 5
QUIET_QT = "This plugin does not support propagateSizeHints"  # offscreen only, harmless
PROMPT = "Explain paging in an operating system, with an example."
ANSWER = """## How paging keeps a process running

A process sees one **flat address space**; the kernel keeps in RAM only the pages it needs.
When memory runs short, the *least recently used* pages go to disk.

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

In LLM-OS the same idea applies to **context RAM**: old turns are paged out to long-term
memory and paged back in when a question needs them. See `ContextRAM.fit()`.
"""  # 408 tokens by the test server's count
SERVER = """import sys
from tests.ollama_server import OllamaTestServer
server = OllamaTestServer(token_delay=float(sys.argv[1]))
server.responder = lambda model, messages, tools: sys.argv[2]
print(server.start().host, flush=True)
sys.stdin.read()  # until the benchmark closes it
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
                QTimer.singleShot(0, lambda: shown(window))  # once this frame is painted
        return False
def shown(window):
    print("PAINTED", time.time(), flush=True)
    window.close()
app = QApplication(sys.argv[:1])  # run_desktop takes this one; the filter must come first
app.installEventFilter(first_paint := FirstPaint())
from llmos.cli import main
sys.exit(main([]))
"""


class Probe(QObject):
    """A single-shot PROBE_MS timer chain recording how late (ms) each firing comes, and the
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


async def measure(label: str, probe: Probe, seconds: float, tokens: list[int]) -> dict:
    tokens[0] = 0
    cpu, started = time.process_time(), time.perf_counter()
    probe.start()
    await asyncio.sleep(seconds)
    probe.timer.stop()
    elapsed = time.perf_counter() - started
    late = probe.late
    f = {"max": max(late), "p99": percentile(late, 0.99), "rate": tokens[0] / elapsed}
    f["frames"] = probe.frames
    print(
        f"  {label}: {elapsed:.1f} s, {len(late)} firings ({sum(x > 16 for x in late)} over "
        f"16 ms late); lateness p50 {percentile(late, 0.5):.2f} / p95 "
        f"{percentile(late, 0.95):.2f} / p99 {f['p99']:.2f} ms, max stall {f['max']:.1f} ms; "
        f"{f['rate']:.0f} tokens/s; {probe.frames} frames ({probe.frames / elapsed:.0f}/s); "
        f"this process's CPU {(time.process_time() - cpu) / elapsed:.0%} of a core"
    )
    return f


def emitted(signal) -> asyncio.Future[None]:
    """A future done when ``signal`` is next emitted."""
    future = asyncio.get_running_loop().create_future()
    signal.connect(lambda *_: future.done() or future.set_result(None))
    return future


async def streaming(desktop: DesktopWindow, args: argparse.Namespace) -> dict:
    tokens = [0]
    desktop.session.bus.subscribe(lambda _: tokens.__setitem__(0, tokens[0] + 1), TokenStreamed)
    probe = Probe(desktop)
    desktop.task_manager_dock.show()
    await settle_heap_when_ready(desktop.session)  # as llmos itself does once the kernel runs
    await asyncio.sleep(0.5)
    results = {"baseline": await measure("0 windows (baseline)", probe, args.seconds, tokens)}

    windows = [desktop.open_app("chat") for _ in range(args.windows)]
    await asyncio.wait_for(asyncio.gather(*(emitted(w.processStarted) for w in windows)), 30)
    resending = True

    def resend(window: AgentWindow, generating: bool) -> None:
        if not generating and resending:  # once the turn's task has finished
            QTimer.singleShot(0, lambda: resending and window._send_text(PROMPT))

    for window in windows:
        window.generatingChanged.connect(lambda on, w=window: resend(w, on))
        window._send_text(PROMPT)
    await asyncio.sleep(1.0)  # every slot streaming
    label = f"{args.windows} windows streaming"
    results["streaming"] = await measure(label, probe, args.seconds, tokens)
    resending = False
    stopped = [emitted(w.generatingChanged) for w in windows if w.generating]
    for window in windows:
        window.stop()
    await asyncio.wait_for(asyncio.gather(*stopped), 30)
    answers = sum(w.chat.messages for w in windows) // 2
    print(f"  ({answers} answers begun, {len(ANSWER)} characters each when complete)")
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
    QTimer.singleShot(0, lambda: pending.set_result(None))  # after the events queued meanwhile
    await pending
    settled = time.perf_counter() - started
    bar = chat.verticalScrollBar()
    frames = []
    for value in range(0, bar.maximum() + bar.pageStep(), bar.pageStep()):
        begin = time.perf_counter()
        bar.setValue(value)
        chat.viewport().repaint()
        frames.append((time.perf_counter() - begin) * 1000)
    f = {"p99": percentile(frames, 0.99), "max": max(frames)}
    print(
        f"  {chat.messages} messages added in {built:.2f} s ({settled:.2f} s with the events "
        f"queued meanwhile); scrolled {bar.maximum() + bar.pageStep()} px in {len(frames)} "
        f"page steps: p50 {percentile(frames, 0.5):.2f} / p99 {f['p99']:.2f} / max "
        f"{f['max']:.2f} ms a frame"
    )
    return f


async def desktop_figures(args: argparse.Namespace, host: str, data: Path) -> dict:
    flags = {"engine": "ollama", "ollama_host": host, "parallel": max(1, args.windows)}
    desktop = DesktopWindow(load_settings({**flags, "data_dir": data}))
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
        with OllamaTestServer(token_delay=args.token_delay) as server:
            server.responder = lambda model, messages, tools: ANSWER
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
    env = {**os.environ, "LLMOS_ENGINE": "ollama", "OLLAMA_HOST": dead}
    env |= {"LLMOS_DATA_DIR": str(tmp / "cold"), "LLMOS_CONFIG": str(tmp / "cold.toml")}
    seconds = []
    for _ in range(runs):
        started = time.time()
        done = subprocess.run(
            [sys.executable, "-c", COLD_START], env=env, capture_output=True, text=True, timeout=60
        )
        painted = [line.split()[1] for line in done.stdout.splitlines() if "PAINTED" in line]
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
    parser.add_argument("--windows", type=int, default=8, help="chat windows streaming")
    parser.add_argument("--seconds", type=float, default=10.0, help="each probe's duration")
    parser.add_argument("--token-delay", type=float, default=0.002, help="server s/token")
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5, help="cold starts")
    parser.add_argument("--server", choices=("process", "thread"), default="process")
    args = parser.parse_args()

    qt_warnings = []

    def on_qt_message(mode: object, context: object, message: str) -> None:
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

    stream, chat, n = results["streaming"], results["chat"], args.windows
    rows = [
        ("max stall, 0 windows (ms)", results["baseline"]["max"], 50),
        (f"max stall, {n} windows streaming (ms)", stream["max"], 50),
        (f"p99 lateness, {n} windows streaming (ms)", stream["p99"], 16),
        (f"{args.messages} messages: scroll p99 (ms/frame)", chat["p99"], 16),
        (f"{args.messages} messages: scroll max (ms/frame)", chat["max"], 50),
        ("cold start, median (s)", statistics.median(cold), 2),
    ]
    print(f"\n{'summary':<40} {'measured':>9} {'target':>7}  met")
    for label, value, target in rows:
        met = "yes" if value < target else "NO"
        print(f"{label:<40} {value:>9.2f} {'< ' + str(target):>7}  {met}")
    print(f"{f'tokens/s, {n} windows streaming':<40} {stream['rate']:>9.0f}")
    print(f"{f'frames painted, {n} windows streaming':<40} {stream['frames']:>9}")
    print(f"{'Qt warnings':<40} {len(qt_warnings):>9}")


if __name__ == "__main__":
    main()
