"""The part of ingestion that runs in worker processes: read, hash, extract, chunk.

Parsing PDFs and Office files is CPU-bound Python, so it runs in a process pool (one worker per
core) where it neither holds the event loop's GIL nor freezes a window. Tasks and results are
small picklable records; a result carries its chunks as plain tuples.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from llmos.memory.chunking import chunk
from llmos.memory.discovery import os_reason
from llmos.memory.readers import UnreadableFile, extract


@dataclass(frozen=True, slots=True)
class ReadTask:
    source: str
    target: str
    known_hash: str
    """The content hash memory holds for ``target`` ("" if none): equal means unchanged."""
    max_bytes: int
    chunk_tokens: int
    overlap_tokens: int


@dataclass(frozen=True, slots=True)
class ReadResult:
    source: str
    target: str
    content_hash: str
    size: int
    unchanged: bool = False
    title: str = ""
    media_type: str = ""
    chunks: tuple[tuple[object, ...], ...] = ()
    """(ordinal, text, tokens, position, page, line_start, line_end, heading) per chunk."""
    error: str = ""


def init_worker() -> None:
    """Workers leave Ctrl-C to the parent, and exit when the parent dies.

    A worker blocks on its task queue, and it holds both ends of that pipe itself, so it
    never sees the parent go away: after a ``kill -9`` of the parent, workers lived on.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def read_document(task: ReadTask) -> ReadResult:
    """Everything ingestion needs from one file; failures come back as ``error``, not raised."""
    path = Path(task.source)
    try:
        with path.open("rb") as handle:
            data = handle.read(task.max_bytes + 1)
    except OSError as error:
        return ReadResult(task.source, task.target, "", 0, error=_open_reason(error))
    if len(data) > task.max_bytes:
        limit = f"{task.max_bytes / 1e6:.0f} MB"
        return ReadResult(
            task.source, task.target, "", len(data), error=f"too large (over {limit})"
        )
    digest = hashlib.sha256(data).hexdigest()
    if digest == task.known_hash:
        return ReadResult(task.source, task.target, digest, len(data), unchanged=True)
    try:
        doc = extract(path, data)
        drafts = chunk(doc, task.chunk_tokens, task.overlap_tokens)
    except UnreadableFile as error:
        return ReadResult(task.source, task.target, digest, len(data), error=str(error))
    except (MemoryError, RecursionError) as error:
        reason = f"the file is too complex to read ({type(error).__name__})"
        return ReadResult(task.source, task.target, digest, len(data), error=reason)
    rows = tuple(
        (d.ordinal, d.text, d.tokens, d.position, d.page, d.line_start, d.line_end, d.heading)
        for d in drafts
    )
    return ReadResult(
        task.source, task.target, digest, len(data), False, doc.title, doc.media_type, rows
    )


def _open_reason(error: OSError) -> str:
    if error.errno == errno.ENOENT:
        return "the file disappeared before it could be read"
    if error.errno == errno.EISDIR:
        return "it is a folder"
    return os_reason(error)


def stop_pool(pool: ProcessPoolExecutor, terminate: bool) -> None:
    """Shut ``pool`` down; with ``terminate``, stop its workers mid-task instead of waiting."""
    if terminate:
        # The executor offers no way to stop a running task; its process table is the only
        # handle (without it, interpreter exit still waits for every worker's current file).
        for process in list(getattr(pool, "_processes", {}).values()):
            process.terminate()
    pool.shutdown(wait=not terminate, cancel_futures=True)


async def stop_pool_soon(pool: ProcessPoolExecutor, terminate: bool) -> None:
    """:func:`stop_pool` without holding up the event loop: joining the workers takes a few
    hundred milliseconds, so it runs in a thread (and finishes even if the caller is
    cancelled meanwhile)."""
    if terminate:
        stop_pool(pool, terminate=True)  # no join: quick
        return
    await asyncio.shield(asyncio.to_thread(stop_pool, pool, False))


def start_pool(workers: int) -> ProcessPoolExecutor:
    # "spawn" everywhere: forking a process that runs LanceDB's and llama.cpp's threads can
    # deadlock the child, and spawn is what macOS and Windows do anyway.
    context = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(workers, mp_context=context, initializer=init_worker)
