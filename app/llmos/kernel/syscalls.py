"""Syscalls: tool calls a process's model makes, run by the kernel within the app's permissions.

An app's manifest lists the syscalls it may make (``[permissions] syscalls``). A model that
can call tools is offered the tools of those syscalls; each call it makes is dispatched here,
and its result goes back to it as a ``tool`` message. A call outside the grant, to an unknown
tool or with bad arguments gets an error message the model sees; nothing raises out of a
syscall. Results are bounded (:data:`RESULT_CHARS`) and paginated.

The memory syscalls:

=================  ===================  ==================================================
permission         tool                 does
=================  ===================  ==================================================
``memory.search``  ``memory_search``    hybrid search of memory (own conversation pages,
                                        documents, notes), a page of hits at a time
``memory.read``    ``memory_read``      a document, or one chunk of it, a page at a time
``memory.note``    ``memory_save_note`` saves a note to ``/Notes``
``memory.core``    ``core_memory_edit``   edits core memory, a small block kept in
                                        context RAM
=================  ===================  ==================================================
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llmos.drivers.base import Tool
from llmos.kernel.events import (
    CoreMemoryChanged,
    SyscallFinished,
    SyscallQueued,
    SyscallStarted,
)
from llmos.memory import paths

if TYPE_CHECKING:
    from llmos.kernel.kernel import Kernel
    from llmos.kernel.paging import Backing
    from llmos.kernel.process import Process

log = logging.getLogger(__name__)

RESULT_CHARS = 1600
"""The most text one syscall result gives the model (about 400 tokens)."""
SEARCH_HITS = 4
"""Hits on one page of ``memory_search`` results."""
SNIPPET_CHARS = 320
NOTE_CHARS = 8000
CORE_MEMORY_TOKENS = 256
"""The most core memory may hold (an eighth of small windows: see :meth:`Syscalls.core_room`)."""
TOOLS_SHARE = 8
"""Tools are offered only when their schemas take at most 1/8 of the prompt room."""


class SyscallError(Exception):
    """A syscall cannot be done; the message goes to the model."""


Handler = Callable[["Syscalls", "Process", dict[str, Any]], Awaitable[str]]


@dataclass(frozen=True, slots=True)
class Syscall:
    tool: str
    permission: str
    description: str
    parameters: dict[str, Any]
    required: tuple[str, ...]
    handler: Handler

    @property
    def schema(self) -> Tool:
        return {
            "type": "function",
            "function": {
                "name": self.tool,
                "description": self.description,
                # In the order the ollama client sends the keys, so an exact tokenizer
                # counts what the server will.
                "parameters": {
                    "type": "object",
                    "required": list(self.required),
                    "properties": self.parameters,
                },
            },
        }


class Syscalls:
    """The kernel's syscall table (one per kernel)."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.table: dict[str, Syscall] = {call.tool: call for call in MEMORY_SYSCALLS}

    def tools(self, process: Process) -> list[Tool] | None:
        """The tool schemas offered to ``process`` (None: its model cannot call tools, its
        app may make no syscalls, or the schemas would crowd a small context out)."""
        if "tools" not in process.capabilities:
            return None
        granted = set(process.app.permissions.syscalls)
        schemas = [call.schema for call in self.table.values() if call.permission in granted]
        if not schemas:
            return None
        counter = self.kernel._counter(process.model)
        if counter.tools(schemas) * TOOLS_SHARE > process.budget - process.reserve:
            return None
        return schemas

    def core_room(self, process: Process) -> int:
        return min(CORE_MEMORY_TOKENS, (process.budget - process.reserve) // 8)

    async def dispatch(self, process: Process, call: dict[str, Any]) -> tuple[str, str]:
        """Run one tool call of ``process``; returns (tool name, result for the model)."""
        function = call.get("function") or call
        name = str(function.get("name") or "")
        syscall = self.table.get(name)
        permission = syscall.permission if syscall else name or "?"
        call_id = next(self.kernel._call_ids)
        bus = self.kernel.bus
        bus.publish(SyscallQueued(process.pid, call_id, permission, process.priority))
        bus.publish(SyscallStarted(process.pid, call_id, permission, 0.0))
        started = time.perf_counter()
        outcome, error = "ok", ""
        try:
            if syscall is None:
                raise SyscallError(f"There is no tool named '{name}'.")
            if permission not in process.app.permissions.syscalls:
                outcome = "refused"
                raise SyscallError(
                    f"{process.app.name} has no permission for {permission}; the call was refused."
                )
            arguments = _arguments(function.get("arguments"))
            missing = [key for key in syscall.required if key not in arguments]
            if missing:
                raise SyscallError(f"{name} needs {', '.join(missing)}.")
            result = await syscall.handler(self, process, arguments)
        except SyscallError as refused:
            outcome = "refused" if outcome == "refused" else "failed"
            error = str(refused)
            result = f"Error: {refused}"
        except Exception as failure:  # memory failed: the model hears of it, the turn goes on
            log.warning("pid %d: syscall %s failed: %s", process.pid, name, failure)
            outcome, error = "failed", str(failure)
            result = f"Error: {failure}"
        finally:
            if outcome != "ok":
                log.info("pid %d: syscall %s %s: %s", process.pid, permission, outcome, error)
        bus.publish(
            SyscallFinished(
                process.pid, call_id, permission, outcome, time.perf_counter() - started, error
            )
        )
        return name or "?", _bounded(result)

    async def backing(self) -> Backing:
        backing = await self.kernel.pager._backing(create=True)
        if backing is None:
            raise SyscallError("Long-term memory is not available right now.")
        return backing


# -- handlers --------------------------------------------------------------------------------


async def _search(calls: Syscalls, process: Process, args: dict[str, Any]) -> str:
    query = str(args["query"]).strip()
    if not re.search(r"\w", query):
        raise SyscallError("Search for at least one word.")
    page = _page_number(args)
    backing = await calls.backing()
    found = await backing.recall(
        query, own=process.memory_folder, shared=True, k=SEARCH_HITS * page + 1
    )
    shown = found[SEARCH_HITS * (page - 1) : SEARCH_HITS * page]
    if not shown:
        return f"No {'more ' if page > 1 else ''}results for '{query}'."
    first = SEARCH_HITS * (page - 1) + 1
    lines = [f"Results {first}-{first + len(shown) - 1} for '{query}':"]
    for number, hit in enumerate(shown, start=first):
        snippet = " ".join(hit.text.split())
        if len(snippet) > SNIPPET_CHARS:
            snippet = snippet[:SNIPPET_CHARS].rsplit(" ", 1)[0] + " ..."
        lines.append(f"{number}. {hit.source} ({hit.label}): {snippet}")
    if len(found) > SEARCH_HITS * page:
        lines.append(f"(More: call memory_search with page {page + 1}.)")
    lines.append("Read a result whole with memory_read(path, chunk).")
    return "\n".join(lines)


async def _read(calls: Syscalls, process: Process, args: dict[str, Any]) -> str:
    path = paths.normalize(str(args["path"]))
    backing = await calls.backing()
    chunks = await backing.read(path)
    if "chunk" in args and args["chunk"] not in (None, ""):
        number = _int(args["chunk"], "chunk")
        if not 1 <= number <= len(chunks):
            raise SyscallError(f"{path} has chunks 1-{len(chunks)}; there is no chunk {number}.")
        position, text = chunks[number - 1]
        where = f"chunk {number} of {len(chunks)}" + (f", {position}" if position else "")
    else:
        text = "\n".join(text for _, text in chunks)
        where = f"{len(chunks)} chunks"
    size = RESULT_CHARS - 200
    pages = max(1, -(-len(text) // size))
    page = _page_number(args)
    if page > pages:
        raise SyscallError(f"{path} ({where}) has {pages} pages of text; there is no page {page}.")
    part = text[size * (page - 1) : size * page]
    more = f"\n(Page {page} of {pages}: call memory_read with page {page + 1} for more.)"
    return f"{path} ({where}):\n{part}" + (more if page < pages else "")


async def _save_note(calls: Syscalls, process: Process, args: dict[str, Any]) -> str:
    title = " ".join(str(args["title"]).split())[:80]
    text = str(args["text"]).strip()
    if not title or not text:
        raise SyscallError("A note needs a title and some text.")
    if len(text) > NOTE_CHARS:
        raise SyscallError(f"A note holds at most {NOTE_CHARS} characters; this has {len(text)}.")
    name = re.sub(r"[/\\\x00-\x1f]+", " ", title).strip(" .") or "note"
    backing = await calls.backing()
    body = f"# {title}\n\n{text}\n\n_Saved by {process.app.name} (pid {process.pid})._\n"
    saved = await backing.save(f"{paths.NOTES}/{name}.md", body, kind="note", title=title)
    return f"Saved the note as {saved}."


async def _core_edit(calls: Syscalls, process: Process, args: dict[str, Any]) -> str:
    old, new = str(args.get("old") or ""), str(args.get("new") or "").strip()
    if not old:
        if not new:
            raise SyscallError("There is nothing to add: give new.")
        return _set_core(calls, process, f"{process.core.rstrip()}\n{new}".strip())
    if old not in process.core:
        raise SyscallError("That old text is not in core memory; nothing was changed.")
    return _set_core(calls, process, process.core.replace(old, new, 1).strip())


def _set_core(calls: Syscalls, process: Process, text: str) -> str:
    room = calls.core_room(process)
    counter = calls.kernel._counter(process.model)
    cost = counter.message({"role": "system", "content": f"Core memory:\n{text}"})
    if cost > room:
        raise SyscallError(
            f"Core memory holds {room} tokens and this would take {cost}: replace or shorten "
            "something first."
        )
    process.core = text
    calls.kernel.bus.publish(CoreMemoryChanged(process.pid, text))
    calls.kernel._account(process)
    return f"Core memory now holds {cost} of {room} tokens."


def _arguments(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    if raw in (None, ""):
        return {}
    try:
        parsed = json.loads(str(raw))
    except ValueError:
        raise SyscallError("The arguments are not a JSON object.") from None
    if not isinstance(parsed, dict):
        raise SyscallError("The arguments are not a JSON object.")
    return parsed


def _int(value: Any, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise SyscallError(f"{name} must be a whole number.") from None


def _page_number(args: dict[str, Any]) -> int:
    page = _int(args.get("page") or 1, "page")
    if page < 1:
        raise SyscallError("page starts at 1.")
    return page


def _bounded(text: str) -> str:
    if len(text) <= RESULT_CHARS:
        return text
    return text[: RESULT_CHARS - 20].rsplit(" ", 1)[0] + " ... (cut)"


_TEXT = {"type": "string"}
_PAGE = {"type": "integer"}
MEMORY_SYSCALLS = (
    Syscall(
        "memory_search",
        "memory.search",
        "Search long-term memory: documents, notes, this chat's earlier turns.",
        {"query": _TEXT, "page": _PAGE},
        ("query",),
        _search,
    ),
    Syscall(
        "memory_read",
        "memory.read",
        "Read a memory document, or one chunk of it.",
        {"path": _TEXT, "chunk": {"type": "integer"}, "page": _PAGE},
        ("path",),
        _read,
    ),
    Syscall(
        "memory_save_note",
        "memory.note",
        "Save a note to long-term memory.",
        {"title": _TEXT, "text": _TEXT},
        ("title", "text"),
        _save_note,
    ),
    Syscall(
        "core_memory_edit",
        "memory.core",
        "Edit your core memory (always in view): replace old with new; no old appends new.",
        {"old": _TEXT, "new": _TEXT},
        ("new",),
        _core_edit,
    ),
)
