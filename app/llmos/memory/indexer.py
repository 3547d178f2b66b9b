"""Vectors filled in behind ingestion, for whichever embedding model is active.

A document is searchable by full text the moment it is stored; the indexer then embeds its
chunks and marks it ``ready``. It works from the store, not from the ingestion queue, so the same
loop resumes after a crash and re-embeds everything when the embedding model changes (vectors
that model already made are reused, not recomputed). While one round's vectors are written the
next round is already embedding, so a fast embedder is never left waiting on LanceDB.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from llmos.drivers.base import DriverError
from llmos.memory.embedder import Embedder
from llmos.memory.store import MemoryStore

log = logging.getLogger(__name__)

DOCS_PER_ROUND = 64


@dataclass(frozen=True, slots=True)
class IndexProgress:
    chunks: int
    """Chunks embedded so far by this indexer."""
    documents: int
    """Documents made ready so far."""
    pending: int
    """Documents waiting for vectors at the start of the round (ingestion may add more)."""


class Indexer:
    """Embeds stored chunks that lack vectors from ``embedder``'s model.

    Args:
        on_progress: called on the event loop after every embedding batch.
        gate: awaited before every embedding batch; the desktop uses it to embed only while
            no process is generating on the same engine (a batch holds the embedded engine
            for seconds).
    """

    def __init__(
        self,
        store: MemoryStore,
        embedder: Embedder,
        on_progress: Callable[[IndexProgress], None] | None = None,
        gate: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self._on_progress = on_progress
        self._gate = gate
        self._more = asyncio.Event()
        self._closing = False
        self._stopped = False
        self.chunks_done = 0
        self.docs_done = 0
        self.error: str | None = None
        """Why embedding stopped early (the backend's words), if it did."""

    def wake(self) -> None:
        """New documents were stored: look again."""
        self._more.set()

    def finish(self) -> None:
        """Stop once nothing is left to embed (instead of waiting for more)."""
        self._closing = True
        self._more.set()

    def stop(self) -> None:
        """Stop after the batch in hand; documents not embedded yet stay ``indexing``."""
        self._stopped = True
        self._closing = True
        self._more.set()

    async def run(self) -> None:
        """Embed until :meth:`finish` was called and nothing is pending, or the backend fails.

        The next round's documents and chunk texts are fetched while this round embeds, and
        this round's vectors are written while the next one embeds: the embedder never waits
        on LanceDB.
        """
        taken: set[str] = set()
        """Revisions this run has embedded or is embedding: never fetched twice."""
        writing: asyncio.Task[None] | None = None
        prepared = asyncio.create_task(self._prepare(taken))
        try:
            while not self._stopped:
                docs, chunks, pending = await prepared
                if not docs:
                    if writing is not None:
                        await writing
                        writing = None
                    if not self._more.is_set():
                        if self._closing:
                            return
                        await self._more.wait()
                    prepared = asyncio.create_task(self._prepare(taken))
                    continue
                taken.update(doc.rev for doc in docs)
                prepared = asyncio.create_task(self._prepare(taken))
                rows = await self._embed(chunks, pending)
                if rows is None:  # stopped part-way: these documents stay "indexing"
                    break
                if writing is not None:
                    await writing
                writing = asyncio.create_task(self._write(rows, [doc.rev for doc in docs]))
        except DriverError as error:
            self.error = error.message
            log.warning("embedding stopped: %s", error.message)
        except (RuntimeError, OSError, ValueError) as error:  # LanceDB, or a vector mismatch
            log.exception("embedding stopped")
            self.error = f"vectors could not be stored ({error})."
        finally:
            prepared.cancel()
            await asyncio.gather(prepared, return_exceptions=True)
            if writing is not None:
                if self.error is None:
                    await writing
                else:
                    await asyncio.gather(writing, return_exceptions=True)

    async def _prepare(self, taken: set[str]) -> tuple[list[Any], list[tuple[str, str, str]], int]:
        """The next documents to embed and their chunks; reused vectors are marked here."""
        self._more.clear()
        model = self.embedder.model
        while True:
            # Up to two rounds are taken but not yet marked (one writing, one embedding).
            pending = await self.store.pending_vectors(model, DOCS_PER_ROUND * 3)
            docs = [doc for doc in pending if doc.rev not in taken][:DOCS_PER_ROUND]
            if not docs:
                return [], [], 0
            reused = await self.store.revs_with_vectors(model, [doc.rev for doc in docs])
            if reused:
                await self.store.mark_embedded(sorted(reused), model)
                self.docs_done += len(reused)
                self._report(await self.store.count_pending(model))
                docs = [doc for doc in docs if doc.rev not in reused]
            if docs:
                chunks = await self.store.chunk_texts([doc.rev for doc in docs])
                return docs, chunks, await self.store.count_pending(model)

    async def _embed(
        self, chunks: list[tuple[str, str, str]], pending: int
    ) -> list[dict[str, Any]] | None:
        rows: list[dict[str, Any]] = []
        size = self.embedder.batch_size
        for start in range(0, len(chunks), size):
            if self._gate is not None:
                await self._gate()
            if self._stopped:
                return None
            batch = chunks[start : start + size]
            vectors = await self.embedder.embed([text for _, _, text in batch])
            rows.extend(
                {"chunk_id": chunk_id, "rev": rev, "vector": vector}
                for (chunk_id, rev, _), vector in zip(batch, vectors, strict=True)
            )
            self.chunks_done += len(batch)
            self._report(pending)
        return rows

    async def _write(self, rows: list[dict[str, Any]], revs: list[str]) -> None:
        model = self.embedder.model
        # Another indexer (a second ingest, the desktop) may have embedded some meanwhile.
        already = await self.store.revs_with_vectors(model, revs)
        rows = [row for row in rows if row["rev"] not in already]
        if rows:
            await self.store.add_vectors(model, len(rows[0]["vector"]), rows)
        await self.store.mark_embedded(revs, model)
        # A revision replaced or removed while it was being embedded: its vectors go too.
        live = await self.store.documents_by_rev(revs)
        await self.store.drop_vectors([rev for rev in revs if rev not in live])
        self.docs_done += len(revs)
        self._report(0)

    def _report(self, pending: int) -> None:
        if self._on_progress is not None:
            self._on_progress(IndexProgress(self.chunks_done, self.docs_done, pending))
