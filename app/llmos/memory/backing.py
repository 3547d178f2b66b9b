"""Long-term memory as the kernel's pager and memory syscalls use it (the backing store).

:class:`MemoryBacking` implements :class:`llmos.kernel.paging.Backing` on
:class:`~llmos.memory.long_term.LongTermMemory`: conversation pages and notes are stored as
Markdown documents (chunked like ingested files, searchable by full text at once and by
vector once the indexer reaches them), and recall is memory's hybrid search.
"""

from __future__ import annotations

import asyncio
import hashlib

from llmos.kernel.pages import Page
from llmos.memory import paths, upkeep
from llmos.memory.chunking import DEFAULT_CHUNK_TOKENS, chunk
from llmos.memory.long_term import LongTermMemory
from llmos.memory.readers import Extracted
from llmos.memory.records import SearchHit
from llmos.memory.store import DocumentWrite, new_document

MAINTAIN_EVERY = 8
"""Saves between index upkeep rounds. Each save adds small table fragments that a search
scans without an index: after 150 unmaintained saves a recall took 300 ms, maintained 33 ms,
and a round costs 60-170 ms."""
SHARED_OVERFETCH = 3
"""Hits a search of all memory ranks per hit wanted: other processes' pages are left out."""


class MemoryBacking:
    """The pager's view of long-term memory."""

    def __init__(self, memory: LongTermMemory) -> None:
        self.memory = memory
        self._unmaintained = 0

    async def save(
        self, path: str, text: str, *, kind: str, title: str, chunk_tokens: int = 0
    ) -> str:
        """Store ``text`` as a new Markdown document at ``path``, or beside it as
        ``name (2).md`` when that is taken; returns the path used.

        Args:
            chunk_tokens: chunk size (the ingest default when 0); the pager cuts
                conversation pages to fit its allowance, so one chunk can come back alone.
        """
        store = self.memory.store
        path = paths.normalize(path)
        stem, dot, suffix = path.rpartition(".")
        if not dot or "/" in suffix:
            stem, suffix = path, ""
        taken = 1
        while await store.has_document(path) or await store.is_folder(path):
            taken += 1
            path = f"{stem} ({taken}).{suffix}" if suffix else f"{stem} ({taken})"
        extracted = Extracted(text, "text/markdown", title, "markdown")
        size = chunk_tokens or DEFAULT_CHUNK_TOKENS
        drafts = await asyncio.to_thread(chunk, extracted, size, size // 8)
        data = text.encode("utf-8")
        document = new_document(
            path,
            None,
            title=title,
            kind=kind,
            source=f"llmos:{kind}",
            media_type="text/markdown",
            size=len(data),
            content_hash=hashlib.sha256(data).hexdigest(),
            tokens=sum(draft.tokens for draft in drafts),
            chunks=len(drafts),
        )
        rows = [
            {
                "id": f"{document.rev}.{draft.ordinal}",
                "doc_id": document.id,
                "rev": document.rev,
                "ordinal": draft.ordinal,
                "text": draft.text,
                "tokens": draft.tokens,
                "position": draft.position,
                "page": draft.page,
                "line_start": draft.line_start,
                "line_end": draft.line_end,
                "heading": draft.heading,
            }
            for draft in drafts
        ]
        await store.commit([DocumentWrite(document, rows)])
        self._unmaintained += 1
        if self._unmaintained >= MAINTAIN_EVERY:
            self._unmaintained = 0
            await upkeep.maintain(store)
        return path

    async def recall(self, query: str, *, own: str, shared: bool, k: int) -> list[Page]:
        """The ``k`` chunks that best match ``query``, best first: from the folder ``own`` and,
        when ``shared``, from all memory but other processes' conversation pages."""
        hits: dict[str, SearchHit] = {}
        if own:
            for hit in (await self.memory.search(query, k=k, folder=own)).hits:
                hits[hit.chunk.id] = hit
        if shared:
            result = await self.memory.search(query, k=k * SHARED_OVERFETCH)
            for hit in result.hits:
                path = hit.document.path
                if paths.is_within(path, paths.PROCESSES) and not (
                    own and paths.is_within(path, own)
                ):
                    continue
                if hit.chunk.id not in hits or hits[hit.chunk.id].score < hit.score:
                    hits[hit.chunk.id] = hit
        best = sorted(hits.values(), key=lambda hit: -hit.score)[:k]
        return [chunk_page(hit) for hit in best]

    async def read(self, path: str) -> list[tuple[str, str]]:
        store = self.memory.store
        document = await store.document(path)
        return [(c.position, c.text) for c in await store.chunks(document)]


def chunk_page(hit: SearchHit) -> Page:
    """One search hit as a memory page the pager holds."""
    document, found = hit.document, hit.chunk
    label = f"chunk {found.ordinal + 1} of {document.chunks}"
    if found.position:
        # The innermost heading and the lines: the whole heading trail cost a small page
        # a quarter of its tokens.
        label += f", {found.position.split(' › ')[-1]}"
    return Page(
        key=f"{document.path}#{found.ordinal + 1}",
        source=document.path,
        label=label,
        text=found.text,
        chunk_ids=(found.id,),
        by_pager=True,
    )
