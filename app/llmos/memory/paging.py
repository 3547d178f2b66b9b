"""Memory pages made from long-term memory: a whole document, chosen chunks, or the chunks of
a document that best match what a process is talking about.

The kernel decides whether pages fit (:meth:`llmos.kernel.kernel.Kernel.page_in`); this module
only reads memory and lays the text out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from llmos.kernel.pages import Page
from llmos.memory.long_term import LongTermMemory
from llmos.memory.records import Chunk, Document

OVERLAP_PROBE = 48
"""Characters of a chunk's start looked for in the previous chunk's end."""
BEST_CANDIDATES = 64
"""Chunks of a document ranked when choosing the best matching ones."""


async def page_of(memory: LongTermMemory, path: str, chunk_ids: Sequence[str] = ()) -> Page:
    """The page of the document at ``path``: all of it, or the chunks ``chunk_ids``.

    Raises:
        NotFound: there is no such document (any more), or none of the chunks is current.
    """
    from llmos.memory.errors import NotFound

    document = await memory.store.document(path)
    chunks = await memory.store.chunks(document)
    if not chunk_ids:
        noun = "chunk" if len(chunks) == 1 else "chunks"
        return _page(document, chunks, document.path, f"whole document, {len(chunks)} {noun}")
    wanted = set(chunk_ids)
    chosen = [chunk for chunk in chunks if chunk.id in wanted]
    if not chosen:
        raise NotFound(f"Those chunks of '{path}' are no longer in memory (it changed).")
    key = f"{document.path}#{','.join(str(c.ordinal + 1) for c in chosen)}"
    return _page(document, chosen, key, _chunks_label(chosen, document))


async def best_page(
    memory: LongTermMemory, path: str, query: str, room: int, cost: Callable[[Page], int]
) -> Page | None:
    """The chunks of ``path`` that best match ``query`` and fit ``room`` tokens, as one page.

    Chunks are ranked by memory's hybrid search within the document (in their own order when
    nothing matches) and taken while the page's cost, as ``cost`` counts it, stays within
    ``room``. None when not even one chunk fits.
    """
    document = await memory.store.document(path)
    chunks = await memory.store.chunks(document)
    ranked: list[Chunk] = []
    if query.strip():
        result = await memory.search(query, k=BEST_CANDIDATES, document=document.path)
        ranked = [hit.chunk for hit in result.hits if hit.document.rev == document.rev]
    seen = {chunk.id for chunk in ranked}
    ranked += [chunk for chunk in chunks if chunk.id not in seen]
    # Chunks' stored token counts are high-side estimates: choose by them, in rank order...
    chosen: list[Chunk] = []
    used = cost(_page(document, [], "", _chunks_label(chunks, document)))
    for chunk in ranked:
        if used + chunk.tokens <= room:
            chosen.append(chunk)
            used += chunk.tokens
    # ...then let the real count decide, giving up the lowest ranked first.
    while chosen:
        in_order = sorted(chosen, key=lambda c: c.ordinal)
        label = _chunks_label(in_order, document) + ", best matches"
        page = _page(document, in_order, f"{document.path}#best", label)
        if cost(page) <= room:
            return page
        chosen.pop()
    return None


def _page(document: Document, chunks: list[Chunk], key: str, label: str) -> Page:
    return Page(
        key=key,
        source=document.path,
        label=label,
        text=join_chunks([chunk.text for chunk in chunks]),
        chunk_ids=tuple(chunk.id for chunk in chunks),
    )


def _chunks_label(chunks: list[Chunk], document: Document) -> str:
    numbers = [chunk.ordinal + 1 for chunk in chunks]
    shown = ", ".join(map(str, numbers[:8])) + (", ..." if len(numbers) > 8 else "")
    noun = "chunk" if len(numbers) == 1 else "chunks"
    return f"{noun} {shown} of {document.chunks}"


def join_chunks(texts: list[str]) -> str:
    """Chunk texts as one text, without the overlap consecutive chunks share."""
    out: list[str] = []
    previous = ""
    for text in texts:
        out.append(text[_overlap(previous, text) :] if previous else text)
        previous = text
    return "\n".join(part.strip("\n") for part in out if part.strip())


def _overlap(before: str, after: str) -> int:
    """How many leading characters of ``after`` repeat the end of ``before``."""
    probe = after[:OVERLAP_PROBE]
    if len(probe) < 8:
        return 0
    at = before.rfind(probe)
    while at >= 0:
        tail = before[at:]
        if after.startswith(tail):
            return len(tail)
        at = before.rfind(probe, 0, at)
    return 0
