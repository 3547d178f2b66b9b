"""The README screenshots: the real desktop, headless, answered by a canned model server.

Usage: ``.venv/bin/python docs/screenshots.py`` re-renders docs/images/desktop-light.png,
desktop-dark.png (1440x900) and desktop-200.png (QT_SCALE_FACTOR=2, 2880x1800), each in its own
process (``--theme``, ``--scale``). tests/ollama_server.py serves the canned Markdown answers below
over real HTTP; config and data go to a temporary folder, never the user's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import qasync
from PySide6.QtCore import Qt, qInstallMessageHandler
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication

from llmos.config import load_settings
from llmos.desktop.desktop_window import DesktopWindow
from llmos.desktop.theme import apply_theme

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "docs" / "images"
SIZE = (1440, 900)
DOCK_HEIGHT = 260
TOKEN_DELAY = 0.06  # seconds a token: about 17 tokens a second for each answer

# (prompt, canned answer); the server answers each prompt with its answer, matched by text.
CONTEXT = (
    "Explain what a context window is, in two sentences.",
    """A context window is the span of text, counted in tokens, that a language model can see
at once: the system prompt, the conversation so far and the answer it is writing. Anything
outside it is invisible to the model, so long chats must summarise or drop their oldest turns.""",
)
TRIM = (
    "Show me how to drop the oldest turns of a chat so it fits a token budget.",
    """Keep the system prompt, then walk the history **newest first** and stop when the budget
runs out:

- count each message once (a rough tokenizer is fine for a budget);
- never drop the latest user message, or the model answers the wrong question;
- leave room for the answer itself (the *reserve*).

```python
def fit(messages, budget, reserve=512):
    system, *turns = messages
    room = budget - reserve - count(system)
    kept = []
    for message in reversed(turns):
        room -= count(message)
        if room < 0 and kept:
            break
        kept.append(message)
    return [system, *reversed(kept)]


def count(message):  # about 4 characters a token
    return len(message["content"]) // 4 + 4
```

For very long chats, summarise the dropped turns into one short message pinned after the system
prompt: the model keeps the gist at a fraction of the tokens.""",
)
# Pasted data makes long prompts, so the three windows use visibly different context RAM.
CSV = "\n".join(
    f"2024-{m:02d},{kind},{(m * (k + 3) * 37 + k * 211) % 400 + 60}.{(m * 13 + k * 29) % 100:02d}"
    for m in range(1, 13)
    for k, kind in enumerate(("rent", "groceries", "travel", "utilities"))
)
CHART = (
    f"Plot this as a grouped bar chart, one bar per category and month:\n\n```\n{CSV}\n```",
    """Collect the amounts per category, then draw one set of bars per category, side by side:

```python
import csv
from collections import defaultdict

import matplotlib.pyplot as plt

with open("spending.csv", newline="") as f:
    rows = list(csv.reader(f))
spent = defaultdict(dict)  # category -> month
for month, kind, amount in rows:
    spent[kind][month] = float(amount)
months = sorted({month for month, _, _ in rows})

slots = range(len(months))
width = 0.8 / len(spent)
for i, kind in enumerate(spent):
    xs = [x + i * width for x in slots]
    ys = [spent[kind][m] for m in months]
    plt.bar(xs, ys, width, label=kind)
plt.xticks(slots, months, rotation=45)
plt.legend()
plt.tight_layout()
plt.show()
```

For stacked bars instead, pass `bottom=` with the running totals; `plt.savefig("spending.png")`
writes a file for a report.""",
)
LOG = "\n".join(
    f"09:{i // 8 + 6:02d}:{i * 7 % 60:02d} INFO sync w{i % 3} notes={i * 13 % 70 + 4}"
    f" took={i * 37 % 90 + 8}ms"
    for i in range(96)
)
CRASH = (
    f"Our notes app's sync worker keeps dying. What is wrong? The log:\n\n```\n{LOG}\n"
    "09:18:02 ERROR sync w2 failed\nTraceback (most recent call last):\n"
    '  File "notes/sync.py", line 88, in flush\n    db.executemany(INSERT, batch)\n'
    "sqlite3.OperationalError: database is locked\n```",
    """The last line says it: **`database is locked`**. Three workers write to one SQLite file,
and worker 2 waited longer than the default 5 seconds for another one's write to end.

- The syncs before it were quick (8 to 97 ms), so this is contention, not a slow disk.
- `executemany` on a big batch holds the write lock for the whole batch.
- Readers block writers too, unless the database is in WAL mode.

Give the connection a longer timeout, switch to WAL once, and write in smaller batches:

```python
db = sqlite3.connect("notes.db", timeout=30)
db.execute("PRAGMA journal_mode=WAL")

for start in range(0, len(batch), 500):
    with db:  # one short transaction each
        rows = batch[start : start + 500]
        db.executemany(INSERT, rows)
```

If it still happens, let one worker own every write and take batches from a queue.""",
)
OKAPI = (
    "How many okapis did the camera traps record?",
    """The camera traps along the Epulu river recorded **41 okapis in 2024**, one more than in
2023 (source: *Memory page /Documents/research/okapi-field-notes.md*, "Counting them").
Individuals are told apart by their stripes, which are unique to each animal.""",
)
ANSWERS = dict([CONTEXT, TRIM, CHART, CRASH, OKAPI])


def demo_responder(model: str, messages: list[dict[str, Any]], tools: Any) -> str:
    """The canned answer to the last user message."""
    asked = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    return ANSWERS.get(asked.strip(), "(No canned answer for this prompt.)")


async def until(condition: Callable[[], bool]) -> None:
    """Wait, running the event loop, until ``condition()`` holds."""
    for _ in range(600):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise TimeoutError("the demo got stuck")


async def play(app: QApplication, server: Any, theme: str, out: Path) -> None:
    """Open the desktop, hold three conversations and grab it while two answers stream."""
    flags = {"engine": "ollama", "ollama_host": server.host, "parallel": 3, "num_ctx": 4096}
    settings = load_settings({**flags, "model": "qwen2.5:7b", "embed_model": "none"})
    apply_theme(app, theme)
    window = DesktopWindow(settings)
    window.resize(*SIZE)
    window.resizeDocks([window.task_manager_dock], [DOCK_HEIGHT], Qt.Orientation.Vertical)
    window.show()
    window.start()
    try:
        chats = []
        # One at a time, so that pids and the taskbar follow the windows.
        for app_id in ("chat", "coder", "chat"):
            chat = window.open_app(app_id)
            assert chat is not None
            await until(lambda chat=chat: chat.pid is not None)
            chats.append(chat)
        # One tall window on the left, two stacked on the right.
        area, gap = window.workspace.viewport().rect(), 8
        width, height = (area.width() - 3 * gap) // 2, (area.height() - 3 * gap) // 2
        subs = {sub.widget(): sub for sub in window.workspace.subWindowList()}
        subs[chats[0]].setGeometry(gap, gap, width, area.height() - 2 * gap)
        subs[chats[1]].setGeometry(2 * gap + width, gap, width, height)
        subs[chats[2]].setGeometry(2 * gap + width, 2 * gap + height, width, height)

        async def ask(chat: Any, prompt: tuple[str, str]) -> None:
            chat.composer.setPlainText(prompt[0])
            chat.send()
            await asyncio.sleep(1.0)

        for index, prompt in [(0, CONTEXT), (2, CRASH), (1, CHART)]:
            await ask(chats[index], prompt)
        await until(lambda: not chats[0].generating)
        await ask(chats[0], TRIM)
        await until(lambda: not chats[2].generating)
        await asyncio.sleep(2.0)  # the history graph steps down as one answer ends

        window.workspace.setActiveSubWindow(subs[chats[0]])
        window.task_manager.select_pid(chats[0].pid or 0)
        window.workspace.refresh_wallpaper()
        await asyncio.sleep(0.3)  # let everything repaint
        if not (chats[0].generating and chats[1].generating):
            print(f"{out.name}: an answer ended before the capture", file=sys.stderr)
        save(window.grab().toImage(), out)
        for chat in chats:  # end the answers first, as a user would, then close
            chat.stop()
        await until(lambda: not any(c.generating for c in chats))
    finally:
        await window.shutdown()


FIELD_NOTES = """# Okapi field notes

## Where it lives

The okapi (*Okapia johnstoni*) lives only in the Ituri rainforest of the north-east Democratic
Republic of the Congo, in dense forest between 500 and 1,500 metres. It is the giraffe's only
living relative, though its striped legs made early explorers think of a zebra.

## What it eats

Okapis browse more than a hundred plant species: leaves, buds, ferns, fungi and fruit. They
also eat clay from river banks, which gives them salt and minerals the leaves lack, and
charcoal from lightning-struck trees.

## Counting them

Camera traps along the Epulu river recorded 41 individuals in 2024, one more than in 2023.
Each okapi's stripes are unique, like a fingerprint, so photographs identify individuals.
The population is listed as endangered: mining, logging and poaching shrink the forest.

## Behaviour

Okapis are solitary and mostly active by day. A calf hides in a nest for its first two months
and does not defecate during that time, which keeps predators such as leopards from finding it.
They communicate with infrasonic calls too low for people to hear.
"""
SYNC_DESIGN = """# Notes sync: design

The notes app syncs through one SQLite file per user. Three workers pull changes from the
server and write them in batches.

## Locking

SQLite lets one writer in at a time. A worker that waits longer than the connection's timeout
fails with `database is locked`. Writes go in batches of at most 500 rows, each in its own
short transaction, and the database runs in WAL mode so that readers never block writers.

## Conflicts

Every note carries a revision number. A write whose base revision is older than the stored one
is kept as a conflict copy, never dropped: the user picks the version to keep.

## Retries

A failed batch is retried three times with exponential back-off (1 s, 4 s, 16 s). After that
the batch goes to a dead-letter table that the settings page shows.
"""


def memory_files(folder: Path) -> Path:
    """A folder of mixed documents to drop on the explorer: real formats, and broken ones."""
    from tests.memory.corpus import write_broken, write_good

    drop = folder / "research"
    write_good(drop / "formats")
    (drop / "okapi-field-notes.md").write_text(FIELD_NOTES)
    (drop / "sync-design.md").write_text(SYNC_DESIGN)
    minutes = [
        f"Meeting {week}: the team reviewed sync errors of week {week}; "
        f"{(week * 7) % 13} conflicts were kept as copies and {(week * 5) % 4} batches retried."
        for week in range(1, 120)
    ]
    (drop / "weekly-minutes.txt").write_text("\n\n".join(minutes))
    broken = folder / "broken"
    write_broken(broken, 64_000_000 // 1000)
    for name in ("corrupt.pdf", "locked.pdf", "picture.png"):
        (broken / name).rename(drop / name)
    return drop


async def play_explorer(app: QApplication, server: Any, theme: str, out: Path) -> None:
    """Drop a folder on the memory explorer, open a document's chunks, page one into a chat."""
    from PySide6.QtCore import QMimeData, QUrl

    from llmos.desktop.memory_drag import MemoryRef

    flags = {"engine": "ollama", "ollama_host": server.host, "num_ctx": 8192}
    settings = load_settings({**flags, "model": "qwen2.5:7b"})
    apply_theme(app, theme)
    window = DesktopWindow(settings)
    window.resize(*SIZE)
    window.resizeDocks([window.task_manager_dock], [200], Qt.Orientation.Vertical)
    window.show()
    window.start()
    try:
        window.memory_action.trigger()
        window.resizeDocks([window.memory_dock], [760], Qt.Orientation.Horizontal)
        explorer = window.explorer
        await until(lambda: window.memory.phase == "ready")
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(str(memory_files(Path(settings.data_dir).parent)))])
        explorer.ingest([Path(url.toLocalFile()) for url in mime.urls()])
        await until(lambda: explorer.panel.busy)
        await until(lambda: not explorer.panel.busy)
        chat = window.open_app("chat")
        assert chat is not None
        await until(lambda: chat.pid is not None)
        sub = chat.parentWidget()
        area = window.workspace.viewport().rect()
        sub.setGeometry(8, 8, area.width() - 16, area.height() - 16)
        chat.page_in([MemoryRef("/Documents/research/okapi-field-notes.md")])
        await until(lambda: chat.paged_in.isVisible())
        chat.composer.setPlainText("How many okapis did the camera traps record?")
        chat.send()
        await until(lambda: not chat.generating)
        explorer.open_document("/Documents/research/weekly-minutes.txt", 2, ["conflicts"])
        await until(lambda: explorer.details.current_chunk == 2)
        window.task_manager.select_pid(chat.pid or 0)
        await asyncio.sleep(0.5)
        save(window.grab().toImage(), out)
    finally:
        await window.shutdown()


def save(image: QImage, path: Path) -> None:
    """Save ``image`` as an opaque PNG, compressed as far as Qt goes."""
    image = image.convertToFormat(QImage.Format.Format_RGB32)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not image.save(str(path), "PNG", 0):
        raise OSError(f"could not write {path}")
    print(f"{path.relative_to(ROOT)}: {image.width()}x{image.height()}, {path.stat().st_size:,} B")


def render(theme: str, out: Path, scene: str = "desktop") -> None:
    """Render one picture in this process, on an isolated config and data dir."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    for name in [n for n in os.environ if n.startswith(("LLMOS_", "OLLAMA_"))]:
        del os.environ[name]
    sys.path.insert(0, str(ROOT))
    from tests.ollama_server import ModelSpec, OllamaTestServer

    qInstallMessageHandler(  # offscreen cannot size native windows: harmless, so not shown
        lambda mode, context, text: "propagateSizeHints" in text or print(text, file=sys.stderr)
    )
    from tests.ollama_server import DEFAULT_MODELS

    model = ModelSpec("qwen2.5:7b", "qwen2", 32768, ["completion", "tools"], parameter_size="7.6B")
    embedder = DEFAULT_MODELS["nomic-embed-text:latest"]
    app = QApplication(sys.argv[:1])
    with tempfile.TemporaryDirectory(prefix="llmos-shots-") as temp:
        os.environ["LLMOS_CONFIG"] = str(Path(temp) / "config.toml")
        os.environ["LLMOS_DATA_DIR"] = str(Path(temp) / "data")
        with OllamaTestServer([model, embedder], token_delay=TOKEN_DELAY) as server:
            server.responder = demo_responder
            scenes = {"desktop": play, "explorer": play_explorer}
            with asyncio.Runner(loop_factory=qasync.QEventLoop) as runner:
                runner.run(scenes[scene](app, server, theme, out))


def main() -> None:
    parser = argparse.ArgumentParser(description="Render the README screenshots.")
    parser.add_argument("--theme", choices=["light", "dark"], help="render one picture")
    parser.add_argument("--scale", type=int, default=1, help="with --theme: QT_SCALE_FACTOR")
    parser.add_argument("--scene", choices=["desktop", "explorer"], default="desktop")
    args = parser.parse_args()
    if args.theme:
        os.environ["QT_SCALE_FACTOR"] = str(args.scale)
        suffix = args.theme if args.scale == 1 else f"{args.scale * 100}"
        render(args.theme, IMAGES / f"{args.scene}-{suffix}.png", args.scene)
        return
    # Separate processes: QT_SCALE_FACTOR is read once, and a theme switched live would
    # leave the earlier chat bubbles in the old colours.
    children = [
        subprocess.Popen(
            [sys.executable, __file__, "--theme", theme, "--scale", scale, "--scene", scene]
        )
        for scene, theme, scale in [
            ("desktop", "light", "1"),
            ("desktop", "dark", "1"),
            ("desktop", "light", "2"),
            ("explorer", "light", "1"),
        ]
    ]
    if any([child.wait() for child in children]):  # a list: wait for every one
        sys.exit("a screenshot failed")


if __name__ == "__main__":
    main()
