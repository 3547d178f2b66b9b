"""The memory syscalls: search and read long-term memory, save notes, edit core memory.

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

import re
from typing import TYPE_CHECKING, Any

from llmos.kernel.events import CoreMemoryChanged
from llmos.kernel.syscall_table import INTEGER, TEXT, Syscall, SyscallError, integer
from llmos.memory import paths

if TYPE_CHECKING:
    from llmos.kernel.process import Process
    from llmos.kernel.syscalls import Syscalls

SEARCH_HITS = 4
"""Hits on one page of ``memory_search`` results."""
SNIPPET_CHARS = 320
NOTE_CHARS = 8000
PAGE_CHARS = 1400
"""Text on one page of ``memory_read``."""
CORE_MEMORY_TOKENS = 256
"""The most core memory may hold (an eighth of small windows: see :func:`core_room`)."""


def core_room(process: Process) -> int:
    return min(CORE_MEMORY_TOKENS, (process.budget - process.reserve) // 8)


def page_number(args: dict[str, Any]) -> int:
    page = integer(args.get("page") or 1, "page")
    if page < 1:
        raise SyscallError("page starts at 1.")
    return page


async def _search(calls: Syscalls, process: Process, args: dict[str, Any]) -> str:
    query = str(args["query"]).strip()
    if not re.search(r"\w", query):
        raise SyscallError("Search for at least one word.")
    page = page_number(args)
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
        number = integer(args["chunk"], "chunk")
        if not 1 <= number <= len(chunks):
            raise SyscallError(f"{path} has chunks 1-{len(chunks)}; there is no chunk {number}.")
        position, text = chunks[number - 1]
        where = f"chunk {number} of {len(chunks)}" + (f", {position}" if position else "")
    else:
        text = "\n".join(text for _, text in chunks)
        where = f"{len(chunks)} chunks"
    size = PAGE_CHARS
    pages = max(1, -(-len(text) // size))
    page = page_number(args)
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
    # Each app writes into its own folder of /Notes: never over another app's notes.
    folder = paths.join(paths.NOTES, process.app.id)
    saved = await backing.save(f"{folder}/{name}.md", body, kind="note", title=title)
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
    room = core_room(process)
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


MEMORY_SYSCALLS = (
    Syscall(
        "memory_search",
        "memory.search",
        "Search long-term memory: documents, notes, this chat's earlier turns.",
        {"query": TEXT, "page": INTEGER},
        ("query",),
        _search,
    ),
    Syscall(
        "memory_read",
        "memory.read",
        "Read a memory document, or one chunk of it.",
        {"path": TEXT, "chunk": INTEGER, "page": INTEGER},
        ("path",),
        _read,
    ),
    Syscall(
        "memory_save_note",
        "memory.note",
        "Save a note to long-term memory.",
        {"title": TEXT, "text": TEXT},
        ("title", "text"),
        _save_note,
    ),
    Syscall(
        "core_memory_edit",
        "memory.core",
        "Edit your core memory (always in view): replace old with new; no old appends new.",
        {"old": TEXT, "new": TEXT},
        ("new",),
        _core_edit,
    ),
)
