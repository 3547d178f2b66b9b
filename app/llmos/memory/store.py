"""The disk of LLM-OS: documents, chunks, folders and vectors in LanceDB (async API).

Crash safety comes from the order of writes, not from transactions LanceDB does not have
across tables: a revision's chunks are added first, then its document row (one merge on the
virtual path), and only then are superseded chunks and vectors deleted. Whatever a crash
interrupts is either invisible (chunks without a document row) or still complete (the old
revision); :meth:`MemoryStore.collect_garbage` removes the invisible leftovers.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import lancedb
import pyarrow as pa
import pyarrow.compute as pc

from llmos.memory import paths
from llmos.memory.errors import MemoryStoreError, NotFound
from llmos.memory.records import (
    CHUNK_SCHEMA,
    CHUNKS,
    DOCUMENT_SCHEMA,
    DOCUMENTS,
    FOLDER_SCHEMA,
    FOLDERS,
    VECTORS_PREFIX,
    Chunk,
    Document,
    now,
    vector_schema,
)

log = logging.getLogger(__name__)


_IN_BATCH = 500
"""Ids per ``IN (...)`` filter: long lists are split so each filter stays cheap to parse."""


@dataclass(frozen=True, slots=True)
class DocumentWrite:
    """A new revision of one document: its row and its chunks, written together."""

    document: Document
    chunks: list[dict[str, Any]]
    replaces: str | None = None
    """The revision this one supersedes, if the path held a document before."""


class MemoryStore:
    """Long-term memory in one LanceDB database. Create with :meth:`open`."""

    def __init__(self, db: Any, directory: Path, tables: dict[str, Any]) -> None:
        self._db = db
        self.directory = directory
        self._documents = tables[DOCUMENTS]
        self._chunks = tables[CHUNKS]
        self._folders = tables[FOLDERS]
        self._vectors: dict[str, Any] = {}
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, directory: Path) -> MemoryStore:
        await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
        db = await lancedb.connect_async(str(directory / "lancedb"))
        tables = {}
        for name, schema in ((DOCUMENTS, DOCUMENT_SCHEMA), (CHUNKS, CHUNK_SCHEMA),
                             (FOLDERS, FOLDER_SCHEMA)):  # fmt: skip
            tables[name] = await db.create_table(name, schema=schema, exist_ok=True)
        store = cls(db, directory, tables)
        if not await store._has_text_index():
            await store._chunks.create_index("text", config=_fts_config())
        if await store._folders.count_rows() == 0:
            await store.mkdir(paths.DOCUMENTS)
        return store

    async def refresh(self) -> bool:
        """See what other processes committed (another ``llmos ingest``, an agent's note).

        A LanceDB table object keeps reading the version it last saw; this moves every table
        to its latest version. Returns True when documents or folders changed meanwhile.
        Cheap (well under a millisecond per table), so it can be polled.
        """
        before = (await self._documents.version(), await self._folders.version())
        for table in (self._documents, self._folders, self._chunks, *self._vectors.values()):
            await table.checkout_latest()
        return before != (await self._documents.version(), await self._folders.version())

    def close(self) -> None:
        for table in (self._documents, self._chunks, self._folders, *self._vectors.values()):
            table.close()
        self._db.close()

    # -- reading --------------------------------------------------------------------------

    async def documents(self, folder: str = paths.ROOT, recursive: bool = True) -> list[Document]:
        folder = paths.normalize(folder)
        where = (
            paths.within_filter("folder", folder)
            if recursive
            else f"folder = {paths.sql_literal(folder)}"
        )
        rows = await self._documents.query().where(where).to_list()
        return sorted((Document.from_row(row) for row in rows), key=lambda d: d.path)

    async def revs_within(self, folder: str) -> list[str]:
        """The current revision of every document within ``folder`` (read as Arrow: fast
        for folders of many thousands)."""
        query = self._documents.query().where(paths.within_filter("folder", folder))
        return list((await query.select(["rev"]).to_arrow()).column("rev").to_pylist())

    async def documents_by_rev(self, revs: Iterable[str]) -> dict[str, Document]:
        out = {}
        for where in _in_filters("rev", revs):
            for row in await self._documents.query().where(where).to_list():
                out[row["rev"]] = Document.from_row(row)
        return out

    async def folders(self, folder: str = paths.ROOT) -> list[str]:
        """Folders within ``folder`` (not itself): made explicitly, or holding documents."""
        folder = paths.normalize(folder)
        explicit = await self._folders.query().where(paths.within_filter("path", folder)).to_list()
        found = {row["path"] for row in explicit}
        query = self._documents.query().where(paths.within_filter("folder", folder))
        # Distinct folders in Arrow: a Python loop over every document's row took the event
        # loop ~0.1 s per 100k documents, and the explorer asks on every reload.
        column = (await query.select(["folder"]).to_arrow()).column("folder")
        for holder in pc.unique(column).to_pylist():
            found.add(holder)
            found.update(paths.ancestors(holder + "/x"))
        return sorted(f for f in found if f != folder and paths.is_within(f, folder))

    async def is_folder(self, path: str) -> bool:
        if path == paths.ROOT:
            return True
        where = f"path = {paths.sql_literal(path)}"
        if await self._folders.count_rows(where):
            return True
        return bool(await self._documents.count_rows(paths.within_filter("folder", path)))

    async def has_document(self, path: str) -> bool:
        return bool(await self._documents.count_rows(f"path = {paths.sql_literal(path)}"))

    async def document(self, ref: str) -> Document:
        """The document at virtual path ``ref``, or whose id starts with ``ref``."""
        if ref.startswith("/"):
            rows = (
                await self._documents.query()
                .where(f"path = {paths.sql_literal(paths.normalize(ref))}")
                .to_list()
            )
        elif re.fullmatch(r"[0-9a-f]{4,32}", ref):
            rows = await self._documents.query().where(f"starts_with(id, '{ref}')").to_list()
        else:
            raise NotFound(f"'{ref}' is neither a memory path (/...) nor a document id.")
        if not rows:
            raise NotFound(f"No document in memory at '{ref}'.")
        if len(rows) > 1:
            raise NotFound(f"'{ref}' matches {len(rows)} documents; give more of the id.")
        return Document.from_row(rows[0])

    async def chunks(self, document: Document) -> list[Chunk]:
        rows = await self._chunks.query().where(f"rev = '{document.rev}'").to_list()
        return sorted((Chunk.from_row(row) for row in rows), key=lambda c: c.ordinal)

    async def chunks_by_id(self, ids: Iterable[str]) -> dict[str, Chunk]:
        out = {}
        for where in _in_filters("id", ids):
            for row in await self._chunks.query().where(where).to_list():
                out[row["id"]] = Chunk.from_row(row)
        return out

    async def known(self, folder: str = paths.ROOT) -> dict[str, Document]:
        """Documents within ``folder`` by path, to tell unchanged files from new ones."""
        return {doc.path: doc for doc in await self.documents(folder)}

    # -- writing documents -----------------------------------------------------------------

    async def commit(self, writes: Sequence[DocumentWrite]) -> None:
        """Store new revisions: chunks, then document rows, then drop what they replace."""
        if not writes:
            return
        async with self._lock:
            rows = [row for write in writes for row in write.chunks]
            if rows:
                # Thousands of rows take a ~100 ms to convert: not on the event loop, which
                # may be the desktop's GUI thread.
                table = await asyncio.to_thread(pa.Table.from_pylist, rows, CHUNK_SCHEMA)
                await self._chunks.add(table)
            docs = [write.document.to_row() for write in writes]
            merge = self._documents.merge_insert("path")
            await (
                merge.when_matched_update_all()
                .when_not_matched_insert_all()
                .execute(pa.Table.from_pylist(docs, schema=DOCUMENT_SCHEMA))
            )
            await self._drop_revisions([w.replaces for w in writes if w.replaces])

    async def mark_embedded(self, revs: Sequence[str], model: str) -> None:
        for where in _in_filters("rev", revs):
            await self._documents.update({"vectors_model": model}, where=where)

    async def remove(self, path: str) -> tuple[int, int]:
        """Delete a document, or a folder with everything in it. Returns (documents, folders)."""
        path = paths.normalize(path)
        if path == paths.ROOT:
            raise MemoryStoreError("The root folder cannot be removed; remove the folders in it.")
        async with self._lock:
            docs = (
                await self._documents.query()
                .where(f"path = {paths.sql_literal(path)} OR {paths.within_filter('folder', path)}")
                .to_list()
            )
            folders = await self._folders.count_rows(paths.within_filter("path", path))
            if not docs and not folders:
                raise NotFound(f"Nothing in memory at '{path}'.")
            for where in _in_filters("id", [row["id"] for row in docs]):
                await self._documents.delete(where)
            await self._folders.delete(paths.within_filter("path", path))
            await self._drop_revisions([row["rev"] for row in docs])
        return len(docs), folders

    async def mkdir(self, path: str) -> str:
        path = paths.normalize(path)
        if path == paths.ROOT:
            return path
        for folder in [*paths.ancestors(path), path]:
            if await self.has_document(folder):
                raise MemoryStoreError(f"'{folder}' is a document, not a folder.")
        rows = [{"path": p, "created": now()} for p in [*paths.ancestors(path), path]]
        merge = self._folders.merge_insert("path").when_not_matched_insert_all()
        await merge.execute(pa.Table.from_pylist(rows, schema=FOLDER_SCHEMA))
        return path

    async def move(self, source: str, target: str) -> str:
        """Move or rename a document or folder; into ``target`` when it is a folder."""
        source, target = paths.normalize(source), paths.normalize(target)
        if source == paths.ROOT:
            raise MemoryStoreError("The root folder cannot be moved.")
        if await self.is_folder(target) and target != source:
            target = paths.join(target, paths.name(source))
        if target == source:
            return target  # already there
        if paths.is_within(target, source):
            raise MemoryStoreError(f"'{source}' cannot be moved into itself.")
        async with self._lock:
            if await self._documents.count_rows(f"path = {paths.sql_literal(target)}") or (
                await self.is_folder(target)
            ):
                raise MemoryStoreError(f"'{target}' already exists in memory.")
            for folder in paths.ancestors(target):
                if await self.has_document(folder):
                    raise MemoryStoreError(f"'{folder}' is a document, not a folder.")
            if await self.has_document(source):
                await self.mkdir(paths.parent(target))
                await self._documents.update(
                    where=f"path = {paths.sql_literal(source)}",
                    updates={"path": target, "folder": paths.parent(target), "updated": now()},
                )
                return target
            if not await self.is_folder(source):
                raise NotFound(f"Nothing in memory at '{source}'.")
            await self.mkdir(target)
            rest = len(source) + 1
            await self._folders.update(
                where=f"starts_with(path, {paths.sql_literal(source + '/')})",
                updates_sql={"path": f"concat({paths.sql_literal(target)}, substr(path, {rest}))"},
            )
            await self._documents.update(
                where=paths.within_filter("folder", source),
                updates_sql={
                    "path": f"concat({paths.sql_literal(target)}, substr(path, {rest}))",
                    "folder": f"concat({paths.sql_literal(target)}, substr(folder, {rest}))",
                },
            )
            await self._folders.delete(f"path = {paths.sql_literal(source)}")
        return target

    async def drop_vectors(self, revs: Sequence[str]) -> None:
        for where in _in_filters("rev", revs):
            for table in await self.vector_tables():
                await table.delete(where)

    async def _drop_revisions(self, revs: Sequence[str]) -> None:
        for where in _in_filters("rev", revs):
            await self._chunks.delete(where)
            for table in await self.vector_tables():
                await table.delete(where)

    async def collect_garbage(self) -> int:
        """Delete chunks and vectors that no document row points at (left by a crash)."""
        async with self._lock:
            live = {row["rev"] for row in await self._documents.query().select(["rev"]).to_list()}
            stored = await self._chunks.query().select(["rev"]).to_arrow()
            orphans = set(stored.column("rev").unique().to_pylist()) - live
            for table in await self.vector_tables():
                revs = (await table.query().select(["rev"]).to_arrow()).column("rev")
                orphans |= set(revs.unique().to_pylist()) - live
            await self._drop_revisions(sorted(orphans))
        if orphans:
            log.info("removed %d unfinished revisions from memory", len(orphans))
        return len(orphans)

    # -- vectors ---------------------------------------------------------------------------

    async def vector_table(self, model: str, dim: int | None = None) -> Any | None:
        """The vector table of ``model``; created when ``dim`` is given and it does not exist."""
        name = VECTORS_PREFIX + _slug(model)
        if name in self._vectors:
            return self._vectors[name]
        if name in await self._table_names():
            try:
                table = await self._db.open_table(name)
            except ValueError:
                if dim is not None:
                    raise
                return None  # listed, but still being created (by the indexer): not yet
        elif dim is None:
            return None
        else:
            table = await self._db.create_table(name, schema=vector_schema(model, dim))
        self._vectors[name] = table
        return table

    async def vector_models(self) -> dict[str, tuple[int, int]]:
        """Embedding model -> (dimension, rows) for every vector table."""
        out = {}
        for table in await self.vector_tables():
            meta = (await table.schema()).metadata or {}
            model = meta.get(b"model", b"?").decode()
            out[model] = (int(meta.get(b"dim", b"0")), await table.count_rows())
        return out

    async def pending_vectors(self, model: str, limit: int = 64) -> list[Document]:
        """Documents without vectors from ``model`` yet, oldest first."""
        rows = await self._documents.query().where(_pending(model)).limit(limit).to_list()
        return sorted((Document.from_row(row) for row in rows), key=lambda d: d.updated)

    async def count_pending(self, model: str) -> int:
        """How many documents still wait for vectors from ``model``."""
        return int(await self._documents.count_rows(_pending(model)))

    async def revs_with_vectors(self, model: str, revs: Sequence[str]) -> set[str]:
        """Those of ``revs`` that already have vectors from ``model``."""
        table = await self.vector_table(model)
        found: set[str] = set()
        if table is None:
            return found
        for where in _in_filters("rev", revs):
            rows = await table.query().where(where).select(["rev"]).to_arrow()
            found.update(rows.column("rev").unique().to_pylist())
        return found

    async def chunk_texts(self, revs: Sequence[str]) -> list[tuple[str, str, str]]:
        """(chunk id, rev, text) of every chunk of ``revs``."""
        out: list[tuple[str, str, str]] = []
        for where in _in_filters("rev", revs):
            rows = await self._chunks.query().where(where).select(["id", "rev", "text"]).to_list()
            out.extend((row["id"], row["rev"], row["text"]) for row in rows)
        return out

    async def add_vectors(self, model: str, dim: int, rows: list[dict[str, Any]]) -> None:
        table = await self.vector_table(model, dim)
        assert table is not None  # created, given dim
        await table.add(pa.Table.from_pylist(rows, schema=vector_schema(model, dim)))

    async def vector_tables(self) -> list[Any]:
        for name in await self._table_names():
            if name.startswith(VECTORS_PREFIX) and name not in self._vectors:
                try:
                    self._vectors[name] = await self._db.open_table(name)
                except ValueError:
                    continue  # being created right now (by the indexer): seen next time
        return list(self._vectors.values())

    async def _table_names(self) -> list[str]:
        response = await self._db.list_tables()
        return list(getattr(response, "tables", response))

    # -- upkeep (see llmos.memory.upkeep) ---------------------------------------------

    async def _has_text_index(self) -> bool:
        return any(index.name == "text_idx" for index in await self._chunks.list_indices())

    async def count(self) -> tuple[int, int, int]:
        """(documents, chunks of visible documents, tokens)."""
        rows = await self._documents.query().select(["chunks", "tokens"]).to_arrow()
        return (
            rows.num_rows,
            int(pa.compute.sum(rows["chunks"]).as_py() or 0),
            int(pa.compute.sum(rows["tokens"]).as_py() or 0),
        )

    @property
    def chunk_table(self) -> Any:
        return self._chunks

    @property
    def small_tables(self) -> tuple[Any, Any]:
        """The documents and folders tables."""
        return self._documents, self._folders


def new_document(path: str, previous: Document | None, **fields: Any) -> Document:
    """A document row for a new revision at ``path``, keeping the id of what it replaces."""
    stamp = now()
    base = Document(
        id=previous.id if previous else uuid.uuid4().hex,
        path=path,
        folder=paths.parent(path),
        title="",
        kind="document",
        source="",
        media_type="text/plain",
        size=0,
        content_hash="",
        tokens=0,
        chunks=0,
        created=previous.created if previous else stamp,
        updated=stamp,
        rev=uuid.uuid4().hex,
        vectors_model="",
    )
    return replace(base, **fields)


def _pending(model: str) -> str:
    return f"vectors_model != {paths.sql_literal(model)} AND chunks > 0"


def _in_filters(column: str, values: Iterable[str]) -> list[str]:
    values = list(dict.fromkeys(values))
    return [
        f"{column} IN ({', '.join(paths.sql_literal(v) for v in values[i : i + _IN_BATCH])})"
        for i in range(0, len(values), _IN_BATCH)
    ]


def _slug(model: str) -> str:
    readable = re.sub(r"[^A-Za-z0-9_-]+", "_", model).strip("_")[:48] or "model"
    return f"{readable}_{hashlib.sha1(model.encode()).hexdigest()[:8]}"


def _fts_config() -> Any:
    return lancedb.index.FTS(with_position=False, stem=True, remove_stop_words=True)
