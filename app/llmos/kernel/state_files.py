"""Files that survive crashes: JSON written atomically, and append-only logs with checksums.

A log line is ``<crc32 of the JSON, 8 hex digits> <JSON>\\n``. Reading stops at the first line
that is cut short or fails its checksum: what came before is good, what follows is reported
as damaged (a ``kill -9`` mid-write cuts only the last line). Writes go through one
:class:`Writer` thread per store, so the event loop never waits on a disk: a write is queued,
and :meth:`Writer.flush` waits until everything queued is on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import queue
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)

GROUP_COMMIT_SECONDS = 0.1
"""How long appends wait to be synced together (they are written at once: only a power cut
in that time can lose them)."""


def encode(record: dict[str, Any]) -> bytes:
    """One log line for ``record``."""
    body = json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()
    return b"%08x %s\n" % (zlib.crc32(body), body)


@dataclass(frozen=True, slots=True)
class LogRead:
    records: list[dict[str, Any]]
    """The good records, in order."""
    damage: str = ""
    """Why reading stopped before the end (empty when the whole log was good)."""
    good_bytes: int = 0
    """Where the good part of the file ends."""


def read_log(path: Path) -> LogRead:
    """The records of the log at ``path`` up to the first damaged line.

    Raises:
        OSError: the file cannot be read.
    """
    return read_log_lines(path.read_bytes().splitlines(keepends=True))


def read_log_lines(lines: list[bytes]) -> LogRead:
    """The records of a log's ``lines`` (each with its newline) up to the first damaged one."""
    records: list[dict[str, Any]] = []
    offset = 0
    for number, line in enumerate(lines, start=1):
        problem = _check(line)
        if problem is None:
            try:
                record = json.loads(line[9:])
            except ValueError:
                problem = "is not JSON"
            else:
                if isinstance(record, dict):
                    records.append(record)
                    offset += len(line)
                    continue
                problem = "is not a record"
        if not line.endswith(b"\n") and number == len(lines):
            problem = "was cut short (the writer stopped mid-line)"
        return LogRead(records, f"line {number} {problem}", offset)
    return LogRead(records, "", offset)


def _check(line: bytes) -> str | None:
    if not line.endswith(b"\n"):
        return "was cut short"
    if len(line) < 11 or line[8:9] != b" ":
        return "is not a log line"
    try:
        crc = int(line[:8], 16)
    except ValueError:
        return "is not a log line"
    if zlib.crc32(line[9:-1]) != crc:
        return "fails its checksum"
    return None


def write_atomically(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old file or the new one whole.

    Args:
        durable: sync it to disk before returning; without it the replacement survives the
            program being killed, and a power cut may leave the old file (whole).

    Raises:
        OSError: the disk refused (the old file is left as it was).
    """
    temp = path.with_name(f".{path.name}.tmp")
    try:
        with open(temp, "wb") as file:
            file.write(data)
            file.flush()
            if durable:
                os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    if durable:
        _sync_folder(path.parent)


def _sync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (where the platform can)."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


class Writer:
    """A thread that does a store's writes in the order they were queued.

    Appends are written at once (a killed program keeps them) and synced in groups: at most
    :data:`GROUP_COMMIT_SECONDS` later, with whatever came meanwhile. Replacements that need
    no sync are written then too, only the last of each file. :meth:`flush` writes and syncs
    everything at once. A write that fails is logged; later writes still run.
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._files: dict[Path, IO[bytes]] = {}
        self._closing: list[IO[bytes]] = []
        """Files closed with appends not yet synced (synced, then closed, with the group)."""
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._lock = threading.Lock()

    def append(self, path: Path, lines: Iterable[bytes], *, sync: bool = True) -> None:
        """Queue lines to append to the log at ``path``.

        Args:
            sync: make them durable (``fsync``); without it they survive the program being
                killed (they are in the operating system's hands) but not a power cut.
        """
        self._put(_Job("append", path, b"".join(lines), sync=sync))

    def replace(self, path: Path, data: bytes, *, sync: bool = True) -> None:
        """Queue an atomic replacement of ``path`` (a later append reopens it).

        Args:
            sync: make it durable (see :func:`write_atomically`).
        """
        self._put(_Job("replace", path, data, sync=sync))

    def close_file(self, path: Path) -> None:
        """Queue closing the log at ``path`` (its writes before are done first)."""
        self._put(_Job("close", path, b""))

    def call(self, action: Callable[[], None]) -> None:
        """Queue ``action`` to run on the writer thread, in order with the writes."""
        self._put(_Job("call", Path(), b"", action))

    def flushed(self) -> Future[None]:
        """A future done once every write queued so far is on disk."""
        done: Future[None] = Future()
        self._put(_Job("flush", Path(), b"", done=done))
        return done

    async def flush(self) -> None:
        """Wait (without blocking the loop) until every write queued so far is on disk."""
        await asyncio.wrap_future(self.flushed())

    def flush_now(self) -> None:
        """Wait, blocking, until every write queued so far is on disk (no event loop)."""
        self.flushed().result()

    def stop(self) -> None:
        """Finish the queued writes, close every file and end the thread (blocking). Writes
        queued later are done at once by the caller, and there is nothing to flush."""
        with self._lock:
            thread, self._thread = self._thread, None
            self._stopped = True
        if thread is not None:
            self._queue.put(None)
            thread.join()

    def _put(self, job: _Job) -> None:
        with self._lock:
            if self._stopped:
                # Late (a list read after shutdown): no thread is started again for it.
                if job.done is not None:
                    job.done.set_result(None)
                elif job.kind != "flush":
                    dirty: set[Path] = set()
                    self._do(job, dirty)
                    self._settle(dirty, {})
                    self._close(job.path)
                return
            if self._thread is None and job.kind == "flush" and job.done is not None:
                job.done.set_result(None)  # nothing was ever queued
                return
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="llmos-state-writer", daemon=True
                )
                self._thread.start()
        self._queue.put(job)

    def _run(self) -> None:
        dirty: set[Path] = set()
        """Appended to, not yet synced."""
        lazy: dict[Path, bytes] = {}
        """Replacements that need no sync, not yet written (only the last of each counts)."""
        due: float | None = None
        stopping = False
        while not stopping:
            wait = None if due is None else max(0.0, due - time.monotonic())
            try:
                jobs: list[_Job | None] = [self._queue.get(timeout=wait)]
            except queue.Empty:
                jobs = []
            with contextlib.suppress(queue.Empty):
                while len(jobs) < 256:
                    jobs.append(self._queue.get_nowait())
            waiting: list[Future[None]] = []
            for job in jobs:
                if job is None:
                    stopping = True
                elif job.kind == "flush" and job.done is not None:
                    waiting.append(job.done)
                elif job.kind == "replace" and not job.sync:
                    lazy[job.path] = job.data
                else:
                    if job.path in lazy:  # keep the order of writes to one file
                        self._do(_Job("replace", job.path, lazy.pop(job.path), sync=False), dirty)
                    self._do(job, dirty)
            if waiting or stopping or (due is not None and time.monotonic() >= due):
                self._settle(dirty, lazy)
                due = None
                for done in waiting:
                    done.set_result(None)
            elif (dirty or lazy or self._closing) and due is None:
                # Group commit: what comes in meanwhile is synced with it.
                due = time.monotonic() + GROUP_COMMIT_SECONDS
        for file in self._files.values():
            with contextlib.suppress(OSError):
                file.close()
        self._files.clear()

    def _settle(self, dirty: set[Path], lazy: dict[Path, bytes]) -> None:
        """Write the lazy replacements and sync what was appended."""
        for path, data in lazy.items():
            self._do(_Job("replace", path, data, sync=False), dirty)
        lazy.clear()
        for path in dirty:
            file = self._files.get(path)
            if file is not None:
                try:
                    os.fsync(file.fileno())
                except OSError as error:
                    self._failed(path, error)
        dirty.clear()
        for file in self._closing:
            try:
                os.fsync(file.fileno())
            except OSError as error:
                self._failed(Path(file.name), error)
            finally:
                with contextlib.suppress(OSError):
                    file.close()
        self._closing.clear()

    def _do(self, job: _Job, dirty: set[Path]) -> None:
        try:
            if job.kind == "append":
                file = self._files.get(job.path)
                if file is None:
                    file = self._files[job.path] = open(job.path, "ab")  # noqa: SIM115
                file.write(job.data)
                file.flush()  # in the operating system's hands: a killed program keeps it
                if job.sync:
                    dirty.add(job.path)
            elif job.kind == "replace":
                self._close(job.path)
                dirty.discard(job.path)
                write_atomically(job.path, job.data, durable=job.sync)
            elif job.kind == "close":
                file = self._files.pop(job.path, None)
                if file is not None and job.path in dirty:
                    self._closing.append(file)  # synced and closed with the group
                    dirty.discard(job.path)
                elif file is not None:
                    file.close()
            elif job.kind == "call" and job.action is not None:
                job.action()
        except OSError as error:
            self._close(job.path)
            self._failed(job.path, error)
        except Exception:  # a bug must not stop every later write
            log.exception("a state write to %s failed", job.path)

    def _close(self, path: Path) -> None:
        file = self._files.pop(path, None)
        if file is not None:
            with contextlib.suppress(OSError):
                file.close()

    def _failed(self, path: Path, error: OSError) -> None:
        log.warning("could not write %s (%s)", path, error.strerror or error)


@dataclass(slots=True)
class _Job:
    kind: str
    path: Path
    data: bytes
    action: Callable[[], None] | None = None
    done: Future[None] | None = None
    sync: bool = True
