"""What long-term memory holds, as plain records, and the LanceDB schemas they live in.

Tables (one LanceDB database under ``<data dir>/memory/lancedb``):

``documents``
    One row per visible document, keyed by its virtual ``path``. ``rev`` names the content
    revision whose chunks are current; a document is visible exactly when its row exists, and
    the row is written only after all of the revision's chunks are, so no reader ever sees half
    a document. ``kind`` is ``document`` for ingested files; the kernel's conversation pages and
    agents' notes use ``conversation`` and ``note`` in the same table and folder tree.
``chunks``
    The text of every revision, with its position and token estimate; full-text indexed.
``folders``
    Folders made explicitly (folders that hold documents exist implicitly).
``vectors__<model>``
    One table per embedding model (its name and dimension are in the schema metadata), so one
    search never mixes models or dimensions. Rows point at chunks by ``chunk_id`` and ``rev``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import pyarrow as pa

DOCUMENTS = "documents"
CHUNKS = "chunks"
FOLDERS = "folders"
VECTORS_PREFIX = "vectors__"

DOCUMENT_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("path", pa.string()),
        ("folder", pa.string()),
        ("title", pa.string()),
        ("kind", pa.string()),
        ("source", pa.string()),
        ("media_type", pa.string()),
        ("size", pa.int64()),
        ("content_hash", pa.string()),
        ("tokens", pa.int64()),
        ("chunks", pa.int32()),
        ("created", pa.float64()),
        ("updated", pa.float64()),
        ("rev", pa.string()),
        ("vectors_model", pa.string()),
    ]
)
CHUNK_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("doc_id", pa.string()),
        ("rev", pa.string()),
        ("ordinal", pa.int32()),
        ("text", pa.string()),
        ("tokens", pa.int32()),
        ("position", pa.string()),
        ("page", pa.int32()),
        ("line_start", pa.int32()),
        ("line_end", pa.int32()),
        ("heading", pa.string()),
    ]
)
FOLDER_SCHEMA = pa.schema([("path", pa.string()), ("created", pa.float64())])
CHUNK_COLUMNS = [name for name in CHUNK_SCHEMA.names]


def vector_schema(model: str, dim: int) -> pa.Schema:
    return pa.schema(
        [
            ("chunk_id", pa.string()),
            ("rev", pa.string()),
            ("vector", pa.list_(pa.float32(), dim)),
        ],
        metadata={"model": model, "dim": str(dim)},
    )


@dataclass(frozen=True, slots=True)
class Document:
    """A stored document as the file explorer and the CLI show it."""

    id: str
    path: str
    folder: str
    title: str
    kind: str
    source: str
    media_type: str
    size: int
    content_hash: str
    tokens: int
    chunks: int
    created: float
    updated: float
    rev: str
    vectors_model: str

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    def state(self, embedder: str | None) -> str:
        """``indexing`` while vectors for the active embedding model are missing, else ``ready``."""
        if embedder and self.vectors_model != embedder:
            return "indexing"
        return "ready"

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Document:
        return cls(**{name: row[name] for name in DOCUMENT_SCHEMA.names})

    def to_row(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Chunk:
    """One stored chunk of a document: its text, size and position."""

    id: str
    doc_id: str
    rev: str
    ordinal: int
    text: str
    tokens: int
    position: str
    page: int | None
    line_start: int
    line_end: int
    heading: str

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Chunk:
        return cls(**{name: row[name] for name in CHUNK_COLUMNS})


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One search result: a chunk, its document, and how well it matched."""

    score: float
    """Reciprocal-rank-fusion score: higher is better."""
    chunk: Chunk
    document: Document
    matched_by: tuple[str, ...]
    """``text`` (full-text), ``vector`` or both."""


@dataclass(frozen=True, slots=True)
class MemoryStats:
    documents: int
    chunks: int
    tokens: int
    folders: int
    disk_bytes: int
    embedder: str | None
    """The embedding model search uses, or None when memory runs on full text only."""
    vectors: dict[str, int]
    """Rows per embedding model's vector table."""
    indexing: int
    """Documents still waiting for vectors from the active embedder."""
    text_index: str
    vector_index: str


def now() -> float:
    return time.time()
