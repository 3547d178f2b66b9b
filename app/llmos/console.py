"""Small pieces of terminal output shared by the command-line modules."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from llmos.kernel.context import BYTES_PER_TOKEN_SHOWN, ContextUsage


def human_bytes(size: int) -> str:
    if not size:
        return "-"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


def human_tokens(tokens: int) -> str:
    """8192 -> "8.2k"; small counts stay exact."""
    if tokens < 1000:
        return str(tokens)
    if tokens < 1_000_000:
        return f"{tokens / 1000:.1f}k"
    return f"{tokens / 1_000_000:.1f}M"


def ram_bytes(count: int) -> str:
    """Context RAM in bytes as shown: 6000 -> "6.0 KB" (and 0 -> "0 B")."""
    return human_bytes(count) if count else "0 B"


def ram_text(usage: ContextUsage | None, budget: int) -> str:
    """A process's context RAM as the task manager and the Shell show it:
    "1.2k / 8.2k tokens · 6.0 KB"."""
    used = usage.used if usage else 0
    return (
        f"{human_tokens(used)} / {human_tokens(budget)} tokens · "
        f"{ram_bytes(used * BYTES_PER_TOKEN_SHOWN)}"
    )


@contextlib.contextmanager
def assembly_progress() -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr for the first-run assembly of the default model; it only
    appears if there is work to show."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    bar: Progress | None = None
    task: Any = None

    def update(done: int, total: int) -> None:
        nonlocal bar, task
        if bar is None:
            bar = Progress(
                TextColumn("preparing the embedded model"),
                BarColumn(),
                DownloadColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            bar.start()
            task = bar.add_task("model", total=total)
        bar.update(task, completed=done, total=total)

    try:
        yield update
    finally:
        if bar is not None:
            bar.stop()


def silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def print_table(rows: Sequence[Sequence[str]], indent: str = "") -> None:
    """Rows as left-aligned columns two spaces apart (the first row is the header)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(indent + "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())


def confirm(question: str) -> bool:
    """Ask on the terminal; without one (a script), the answer is no: pass --yes."""
    if sys.stdin is None or not sys.stdin.isatty():
        print(f"{question} There is no terminal to ask on; pass --yes.", file=sys.stderr)
        return False
    try:
        return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
    except EOFError:
        return False
