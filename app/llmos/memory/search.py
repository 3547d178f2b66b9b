"""Hybrid search: BM25 full text and vector similarity, fused by reciprocal rank.

Each side ranks candidates on its own (LanceDB's FTS index over chunk text; a flat scan or ANN
index over the active embedding model's vectors); reciprocal rank fusion (k = 60) then scores a
chunk ``sum(1 / (60 + rank))`` over the sides that found it. Only chunks of current document
revisions are returned, so a half-written or superseded revision never shows up.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass

from llmos.drivers.base import DriverError
from llmos.memory import paths
from llmos.memory.embedder import Embedder
from llmos.memory.errors import MemoryStoreError
from llmos.memory.records import CHUNK_COLUMNS, Chunk, SearchHit
from llmos.memory.store import MemoryStore

log = logging.getLogger(__name__)

RRF_K = 60
QUERY_EMBED_SECONDS = 5.0
"""How long a search waits for its query's vector before it matches by words alone."""
OVERFETCH = 4
"""Candidates fetched per side, as a multiple of k: fusion and filtering need spares."""
PREFILTER_MAX = 1000
"""Documents a folder filter lists by revision; larger folders are filtered after ranking."""
POSTFILTER_FETCH = 10
"""How many more candidates each side ranks when filtering after ranking."""
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True, slots=True)
class SearchResult:
    hits: list[SearchHit]
    mode: str
    """``hybrid``, ``text`` (no vectors for this search) or ``vector``."""
    note: str = ""
    """Why the search ran on full text alone, when it did."""


async def search(
    store: MemoryStore,
    query: str,
    *,
    k: int = 5,
    folder: str = paths.ROOT,
    document: str | None = None,
    embedder: Embedder | None = None,
) -> SearchResult:
    """The ``k`` chunks that best match ``query``, within ``folder`` or one ``document``."""
    query = query.strip()
    if not _WORD.search(query):
        raise MemoryStoreError("Search for at least one word.")
    where, allowed = await _scope(store, paths.normalize(folder), document)
    if where == "false":
        return SearchResult([], "text")
    fetch = max(k * OVERFETCH, 20)
    if allowed is not None:
        fetch *= POSTFILTER_FETCH
    # Filtering after ranking, the text side ranks ids only: full rows for hundreds of
    # candidates took 200 ms at 10k documents, and all but k are thrown away.
    light = allowed is not None
    text_task = asyncio.ensure_future(_text_ranking(store, query, where, fetch, light))
    note = ""
    vector_ids: list[str] = []
    try:
        if embedder is None:
            note = "no embedding model"
        else:
            vector_ids, note = await _vector_ranking(store, embedder, query, where, fetch)
    finally:
        text_ids, chunks = await text_task
    fused: dict[str, float] = {}
    sides: dict[str, list[str]] = {}
    for side, ranking in (("text", text_ids), ("vector", vector_ids)):
        for rank, chunk_id in enumerate(ranking, start=1):
            fused[chunk_id] = fused.get(chunk_id, 0.0) + 1.0 / (RRF_K + rank)
            sides.setdefault(chunk_id, []).append(side)
    ranked = sorted(fused, key=lambda chunk_id: -fused[chunk_id])
    if allowed is not None:
        ranked = [chunk_id for chunk_id in ranked if rev_of(chunk_id) in allowed]
    hits: list[SearchHit] = []
    # Read the best candidates' rows and documents a few at a time: most searches need
    # only the first k, a few skip revisions being replaced.
    for start in range(0, len(ranked), 2 * k):
        window = ranked[start : start + 2 * k]
        missing = [chunk_id for chunk_id in window if chunk_id not in chunks]
        chunks.update(await store.chunks_by_id(missing))
        revs = {chunks[chunk_id].rev for chunk_id in window if chunk_id in chunks}
        documents = await store.documents_by_rev(revs)
        for chunk_id in window:
            chunk = chunks.get(chunk_id)
            doc = documents.get(chunk.rev) if chunk else None
            if chunk is None or doc is None:
                continue  # a revision being replaced or left by a crash: not visible
            hits.append(SearchHit(fused[chunk_id], chunk, doc, tuple(sides[chunk_id])))
            if len(hits) == k:
                break
        if len(hits) == k:
            break
    mode = "hybrid" if vector_ids and text_ids else "vector" if vector_ids else "text"
    return SearchResult(hits, mode, "" if vector_ids else note)


async def _scope(
    store: MemoryStore, folder: str, document: str | None
) -> tuple[str, set[str] | None]:
    """(a filter both sides apply, or revisions to keep afterwards when a filter would be huge)."""
    if document:
        return f"rev = {paths.sql_literal((await store.document(document)).rev)}", None
    if folder == paths.ROOT:
        return "", None
    revs = await store.revs_within(folder)
    if not revs:
        return "false", None
    if len(revs) > PREFILTER_MAX:
        # A filter listing 100k revisions took 1.9 s to apply; a folder this large holds much
        # of memory, so ranking more candidates and keeping its own is cheaper.
        return "", set(revs)
    return f"rev IN ({', '.join(paths.sql_literal(rev) for rev in revs)})", None


def rev_of(chunk_id: str) -> str:
    """The revision a chunk belongs to: chunk ids are ``<rev>.<ordinal>``."""
    return chunk_id.rpartition(".")[0]


async def _text_ranking(
    store: MemoryStore, query: str, where: str, fetch: int, light: bool = False
) -> tuple[list[str], dict[str, Chunk]]:
    """Chunk ids best first, and the rows fetched with them (none when ``light``)."""
    columns = ["id", "_score"] if light else [*CHUNK_COLUMNS, "_score"]
    search = store.chunk_table.query().nearest_to_text(query).select(columns).limit(fetch)
    if where:
        search = search.where(where)
    if light:
        ids = (await search.to_arrow()).column("id").to_pylist()
        return ids, {}
    rows = await search.to_list()
    return [row["id"] for row in rows], {row["id"]: Chunk.from_row(row) for row in rows}


async def _vector_ranking(
    store: MemoryStore, embedder: Embedder, query: str, where: str, fetch: int
) -> tuple[list[str], str]:
    table = await store.vector_table(embedder.model)
    if table is None or not await table.count_rows():
        return [], f"no vectors from {embedder.model} yet"
    try:
        # asyncio.timeout, not wait_for (on 3.11 wait_for can swallow a cancellation).
        async with asyncio.timeout(QUERY_EMBED_SECONDS):
            vector = await embedder.embed_query(query)
    except DriverError as error:
        log.warning("query embedding failed: %s", error.message)
        return [], f"{embedder.model} is unavailable ({error.message})"
    except TimeoutError:
        # The embedded engine embeds on the model that is generating: rather than wait for
        # the answer to end, match by words.
        return [], f"{embedder.model} is busy; matched by words only"
    search = (
        table.query().nearest_to(vector).distance_type("cosine").select(["chunk_id", "_distance"])
    )
    if where:
        search = search.where(where)
    rows = await search.limit(fetch).to_list()
    # Two indexers racing can leave a chunk's vector twice; rank each chunk once.
    return list(dict.fromkeys(row["chunk_id"] for row in rows)), ""
