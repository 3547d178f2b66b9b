"""What is dragged around the desktop: files from a file manager, documents and chunks of memory.

Documents and chunks travel as :data:`MIME_TYPE` (JSON), so an agent window can tell a memory
drag from files, and a memory drag never leaves the desktop as something else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QMimeData

MIME_TYPE = "application/x-llmos-memory"


@dataclass(frozen=True, slots=True)
class MemoryRef:
    """A document of long-term memory, or some of its chunks (by chunk id)."""

    path: str
    chunks: tuple[str, ...] = ()
    """Chunk ids; empty for the whole document."""
    folder: bool = False
    """True when ``path`` is a folder (it can be moved, not paged in)."""


def memory_mime(refs: list[MemoryRef]) -> QMimeData:
    mime = QMimeData()
    payload = [{"path": r.path, "chunks": list(r.chunks), "folder": r.folder} for r in refs]
    mime.setData(MIME_TYPE, json.dumps(payload).encode())
    mime.setText("\n".join(ref.path for ref in refs))
    return mime


def memory_refs(mime: QMimeData) -> list[MemoryRef]:
    """The documents and chunks a drag carries ([] when it carries none, or garbage)."""
    if not mime.hasFormat(MIME_TYPE):
        return []
    try:
        payload = json.loads(bytes(mime.data(MIME_TYPE).data()).decode())
        return [
            MemoryRef(str(item["path"]), tuple(map(str, item["chunks"])), bool(item["folder"]))
            for item in payload
        ]
    except (ValueError, KeyError, TypeError):
        return []


def dropped_files(mime: QMimeData) -> list[Path]:
    """Local files and folders a drag from a file manager carries."""
    if mime.hasFormat(MIME_TYPE) or not mime.hasUrls():
        return []
    return [Path(url.toLocalFile()) for url in mime.urls() if url.isLocalFile()]
