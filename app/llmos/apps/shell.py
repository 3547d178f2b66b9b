"""The Shell app: a kernel console. Typed commands, no model needed.

``ps``, ``top``, ``free``, ``kill PID``, ``ls [/memory/path]``, ``cat PATH``,
``search WORDS``, ``apps``, ``models``, ``help``. The figures are the task manager's own
(the same :class:`~llmos.kernel.context.ContextUsage`, formatted by the same
:func:`llmos.console.ram_text`). :meth:`Shell.complete` offers command names, pids and
memory paths. Qt-free: the desktop's Shell window and tests drive it alike.
"""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from llmos.console import human_tokens, ram_text
from llmos.drivers.base import DriverError
from llmos.kernel.errors import KernelError
from llmos.memory import paths
from llmos.memory.errors import MemoryStoreError

if TYPE_CHECKING:
    from llmos.kernel.kernel import Kernel
    from llmos.kernel.process import Process
    from llmos.memory.long_term import LongTermMemory
    from llmos.memory.records import Document

MemoryOpener = Callable[[], Awaitable["LongTermMemory"]]
CAT_CHARS = 8000

HELP = {
    "ps [-a]": "processes: pid, app, state, context RAM, model (-a: saved ones too)",
    "top": "processes by speed: tokens/s, model calls, generated tokens",
    "free": "context RAM by process, and the total",
    "kill PID": "end a process (and the children it started)",
    "ls [PATH]": "a memory folder: its folders and documents",
    "cat PATH": "a memory document's text",
    "search WORDS": "hybrid search of memory",
    "apps": "installed apps",
    "models": "installed models",
    "help": "this list",
}


class Shell:
    """One console session on a kernel.

    Args:
        memory: opens long-term memory (on first use) for ``ls``, ``cat`` and ``search``.
    """

    def __init__(self, kernel: Kernel, memory: MemoryOpener | None = None) -> None:
        self.kernel = kernel
        self._memory = memory
        self.cwd = paths.ROOT

    async def run(self, line: str) -> str:
        """Run one command line; returns its output (errors as plain sentences)."""
        try:
            words = shlex.split(line)
        except ValueError as error:
            return f"Cannot read that line ({error})."
        if not words:
            return ""
        name, args = words[0].lower(), words[1:]
        command = getattr(self, f"_cmd_{name}", None)
        if command is None:
            return f"Unknown command '{name}'. Type help for the list."
        try:
            return str(await command(args))
        except (KernelError, DriverError, MemoryStoreError, ValueError, LookupError) as error:
            return str(error)

    def complete(self, text: str) -> list[str]:
        """Completions for the line typed so far (whole lines, sorted)."""
        head, _, last = text.rpartition(" ")
        if not head:
            names = [n.removeprefix("_cmd_") for n in dir(self) if n.startswith("_cmd_")]
            return sorted(n for n in names if n.startswith(last.lower()))
        command = head.split()[0].lower()
        if command == "kill":
            pids = [str(p.pid) for p in self.kernel.processes if p.alive]
            return [f"{head} {pid}" for pid in pids if pid.startswith(last)]
        return []

    async def complete_path(self, text: str) -> list[str]:
        """Completions of a memory path argument (``ls``, ``cat``): folders and documents."""
        head, _, last = text.rpartition(" ")
        if not head or self._memory is None:
            return self.complete(text)
        memory = await self._memory()
        folder = paths.parent(last) if "/" in last.rstrip("/")[1:] else paths.ROOT
        if last.endswith("/") and last != "/":
            folder = paths.normalize(last)
        folders = await memory.store.folders(folder)
        documents = await memory.store.documents(folder, recursive=False)
        names = [f for f in folders if paths.parent(f) == folder] + [d.path for d in documents]
        return sorted(f"{head} {name}" for name in names if name.startswith(last))

    # -- commands --------------------------------------------------------------------------

    async def _cmd_help(self, args: list[str]) -> str:
        width = max(map(len, HELP))
        return "\n".join(f"{name.ljust(width)}  {words}" for name, words in HELP.items())

    async def _cmd_ps(self, args: list[str]) -> str:
        rows = [("PID", "PARENT", "APP", "STATE", "CONTEXT RAM", "MODEL")]
        for process in self._alive():
            rows.append(
                (
                    str(process.pid),
                    str(process.parent_pid or "-"),
                    process.app.name,
                    process.state.value,
                    ram_text(process.usage, process.budget),
                    process.model,
                )
            )
        store = self.kernel.sessions
        if "-a" in args and store is not None:  # the data dir's saved processes too
            live = {p.pid for p in self._alive()}
            for info in await asyncio.to_thread(store.list):
                if info.pid in live:
                    continue
                context = f"{human_tokens(info.context_tokens)} / {human_tokens(info.budget)}"
                rows.append(
                    (
                        str(info.pid),
                        str(info.parent_pid or "-"),
                        info.app_name,
                        info.status,
                        f"{context} tokens" if info.budget else "-",
                        info.model or "-",
                    )
                )
        return _table(rows) if len(rows) > 1 else "No processes are running."

    async def _cmd_top(self, args: list[str]) -> str:
        rows = [("PID", "APP", "STATE", "TOKENS/S", "CALLS", "GENERATED")]
        ranked = sorted(self._alive(), key=lambda p: -p.counters.tokens_per_second)
        for process in ranked:
            counters = process.counters
            rows.append(
                (
                    str(process.pid),
                    process.app.name,
                    process.state.value,
                    f"{counters.tokens_per_second:.1f}",
                    str(counters.model_calls),
                    human_tokens(counters.generated_tokens),
                )
            )
        return _table(rows) if len(rows) > 1 else "No processes are running."

    async def _cmd_free(self, args: list[str]) -> str:
        rows = [("PID", "APP", "CONTEXT RAM", "FREE")]
        used = budget = 0
        for process in self._alive():
            usage = process.usage
            rows.append(
                (
                    str(process.pid),
                    process.app.name,
                    ram_text(usage, process.budget),
                    f"{human_tokens(usage.free if usage else process.budget)} tokens",
                )
            )
            used += usage.used if usage else 0
            budget += process.budget
        if len(rows) == 1:
            return "No processes are running."
        total = f"total: {human_tokens(used)} of {human_tokens(budget)} tokens in use"
        return _table(rows) + "\n" + total

    async def _cmd_kill(self, args: list[str]) -> str:
        if len(args) != 1 or not args[0].isdigit():
            return "Usage: kill PID"
        pid = int(args[0])
        process = self.kernel.get(pid)
        if not process.alive:
            return f"Process {pid} has already ended."
        children = len(self.kernel.children(pid))
        self.kernel.kill(pid)
        also = f" and {children} of its children" if children else ""
        return f"Killed {pid} ({process.app.name}){also}."

    async def _cmd_apps(self, args: list[str]) -> str:
        rows = [("ID", "NAME", "PERMISSIONS")]
        rows += [(a.id, a.name, ", ".join(a.permissions.syscalls) or "-") for a in self.kernel.apps]
        return _table(rows)

    async def _cmd_models(self, args: list[str]) -> str:
        models = await self.kernel.driver.list_models()
        if not models:
            return f"No models are installed at {self.kernel.driver.location}."
        rows = [("NAME", "CONTEXT", "CAPABILITIES")]
        for info in models:
            context = str(info.context_length or "?")
            rows.append((info.name, context, ", ".join(sorted(info.capabilities)) or "?"))
        return _table(rows)

    async def _cmd_ls(self, args: list[str]) -> str:
        memory = await self._open()
        folder = paths.normalize(args[0]) if args else self.cwd
        if await memory.store.has_document(folder):
            document = await memory.store.document(folder)
            return (
                f"{document.path}  {human_tokens(document.tokens)} tokens, {document.chunks} chunks"
            )
        folders = [f for f in await memory.store.folders(folder) if paths.parent(f) == folder]
        documents = await memory.store.documents(folder, recursive=False)
        if not folders and not documents:
            if not await memory.store.is_folder(folder):
                return f"There is nothing in memory at {folder}."
            return f"{folder} is empty."
        lines = [f"{paths.name(f)}/" for f in folders]
        lines += [
            f"{d.name}  {human_tokens(d.tokens)} tokens, {d.chunks} chunks" for d in documents
        ]
        return "\n".join(lines)

    async def _cmd_cat(self, args: list[str]) -> str:
        if len(args) != 1:
            return "Usage: cat PATH"
        memory = await self._open()
        document = await memory.store.document(paths.normalize(args[0]))
        text = "\n".join(chunk.text for chunk in await memory.store.chunks(document))
        if len(text) > CAT_CHARS:
            return text[:CAT_CHARS] + f"\n... ({len(text) - CAT_CHARS} more characters)"
        return text

    async def _cmd_search(self, args: list[str]) -> str:
        if not args:
            return "Usage: search WORDS"
        memory = await self._open()
        result = await memory.search(" ".join(args), k=8)
        if not result.hits:
            return "Nothing in memory matches."
        lines = []
        for hit in result.hits:
            snippet = " ".join(hit.chunk.text.split())[:100]
            lines.append(f"{hit.document.path} (chunk {hit.chunk.ordinal + 1}): {snippet}")
        if result.note:
            lines.append(f"({result.note})")
        return "\n".join(lines)

    # -- helpers ---------------------------------------------------------------------------

    def _alive(self) -> list[Process]:
        return [p for p in self.kernel.processes if p.alive]

    async def _open(self) -> LongTermMemory:
        if self._memory is None:
            raise LookupError("Long-term memory is not available in this Shell.")
        return await self._memory()


def _size(document: Document) -> str:
    return f"{human_tokens(document.tokens)} tokens, {document.chunks} chunks"


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows
    )
