"""Sessions: every process's state on disk, so processes survive restarts and crashes.

Each process has a folder ``<data dir>/sessions/<pid>/``:

``log.jsonl``
    The truth: an append-only log with a checksum per line (:mod:`llmos.kernel.state_files`).
    It opens with a ``begin`` record (the app, its manifest, the model, the parent), then
    ``msg`` (a message joined the conversation), ``evict`` (the oldest messages left context
    RAM for long-term memory; the transcript keeps them), ``drop`` (the newest messages were
    taken back), ``partial`` (text of the answer being generated, a checkpoint every
    :data:`CHECKPOINT_SECONDS`) and ``set`` (summary, core memory, pages, counters, status,
    window...). Replaying it gives back the process; a ``partial`` not followed by its
    answer is the answer a crash cut, kept and marked interrupted.
``info.json``
    What ``llmos ps`` and the desktop's lists show, written atomically after each turn; when
    it is missing or damaged the log is replayed instead.
``lock``
    Held by the LLM-OS that runs the process; the operating system lets go of it when that
    program dies, so a ``running`` session whose lock is free was interrupted by a crash.

Pids are handed out from ``sessions/next-pid`` (under ``sessions/pids.lock``), so they never
repeat in a data dir. A damaged file costs its own process at most: the good part of a log is
read, a log that cannot be read at all is reported and skipped.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import filelock

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

from llmos.kernel.session_records import (
    FORMAT,
    NoSuchSession,
    SavedProcess,
    SessionBusy,
    SessionDamaged,
    SessionError,
    SessionInfo,
    info_of,
    replay,
    snapshot_records,
)
from llmos.kernel.state_files import (
    Writer,
    encode,
    json_bytes,
    read_log,
    read_log_lines,
    write_atomically,
)

log = logging.getLogger(__name__)

__all__ = [  # what a session is made of is in session_records; its files are here
    "FORMAT",
    "NoSuchSession",
    "SavedProcess",
    "SessionBusy",
    "SessionDamaged",
    "SessionError",
    "SessionInfo",
    "SessionStore",
]

CHECKPOINT_SECONDS = 0.1
"""How often the answer being generated is written down (a crash loses at most this much)."""
PID_BLOCK = 16
"""Pids reserved at a time (the counter file is written once a block)."""
COMPACT_BYTES = 1_000_000
"""A log larger than this, and over twice what a fresh one would take, is rewritten when its
process is restored."""


class SessionStore:
    """The sessions folder of a data dir.

    Listing and loading read files (call them off the event loop); writing is queued to
    :attr:`writer`'s thread.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.writer = Writer()
        self._claims: dict[int, ProcessLock] = {}
        self._spare: list[int] = []
        """Reserved pids, the next last."""
        self._block_end = 0

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> SessionStore:
        return cls(data_dir / "sessions")

    def folder(self, pid: int) -> Path:
        return self.root / str(pid)

    def log_path(self, pid: int) -> Path:
        return self.folder(pid) / "log.jsonl"

    # -- pids and locks ----------------------------------------------------------------------

    def allocate_pid(self) -> int:
        """A pid never used in this data dir (blocking for a moment while another LLM-OS
        takes some).

        Pids are reserved :data:`PID_BLOCK` at a time (the counter is synced once a block),
        so most calls touch no file: see :meth:`spare_pid`.
        """
        spare = self.spare_pid()
        if spare is not None:
            return spare
        self.root.mkdir(parents=True, exist_ok=True)
        counter = self.root / "next-pid"
        with filelock.FileLock(self.root / "pids.lock", thread_local=False):
            try:
                given = int(counter.read_text().strip())
            except (OSError, ValueError):
                # No counter (a new data dir) or a broken one: start above every pid used.
                used = [int(p.name) for p in self.root.iterdir() if p.name.isdigit()]
                given = max(used, default=0) + 1
            write_atomically(counter, f"{given + PID_BLOCK}\n".encode())
        self._spare = list(range(given + PID_BLOCK - 1, given - 1, -1))
        self._block_end = given + PID_BLOCK
        return self.spare_pid() or self.allocate_pid()

    def spare_pid(self) -> int | None:
        """A pid from the block this program reserved, or None when it has none left."""
        while self._spare:
            pid = self._spare.pop()
            if not self.folder(pid).exists():  # taken meanwhile by hand: skip it
                return pid
        return None

    def claim(self, pid: int) -> None:
        """Hold ``pid``'s lock while this program runs the process.

        Raises:
            SessionBusy: another LLM-OS runs it.
        """
        if pid in self._claims:
            return
        folder = self.folder(pid)
        folder.mkdir(parents=True, exist_ok=True)
        lock = ProcessLock(folder / "lock")
        if not lock.acquire():
            raise SessionBusy(pid)
        self._claims[pid] = lock

    def release(self, pid: int) -> None:
        lock = self._claims.pop(pid, None)
        if lock is not None:
            lock.release()

    def in_use(self, pid: int) -> bool:
        """True while some LLM-OS (this one included) runs ``pid``."""
        if pid in self._claims:
            return True
        path = self.folder(pid) / "lock"
        if not path.exists():
            return False
        lock = ProcessLock(path)
        if not lock.acquire():
            return True
        lock.release()
        return False

    # -- reading -----------------------------------------------------------------------------

    def pids(self) -> list[int]:
        if not self.root.is_dir():
            return []
        return sorted(
            int(p.name)
            for p in self.root.iterdir()
            if p.name.isdigit() and (p / "log.jsonl").exists()
        )

    def load(self, pid: int) -> SavedProcess:
        """Replay ``pid``'s log (blocking).

        Raises:
            NoSuchSession, SessionDamaged.
        """
        self.writer.flush_now()  # what this program queued is read back
        path = self.log_path(pid)
        try:
            read = read_log(path)
        except FileNotFoundError:
            raise NoSuchSession(pid) from None
        except OSError as error:
            raise SessionDamaged(pid, f"its log cannot be read ({error.strerror})") from None
        try:
            saved = replay(read.records, damage=read.damage)
            saved.log_bytes = read.good_bytes
            return saved
        except SessionDamaged as error:
            raise SessionDamaged(pid, str(error)) from None
        except (KeyError, TypeError, ValueError) as error:
            raise SessionDamaged(
                pid, f"its log holds a record this version cannot read ({error})"
            ) from None

    def info(self, pid: int) -> SessionInfo:
        """``pid``'s line in the lists (blocking); a damaged session gives a ``damaged`` line."""
        self.writer.flush_now()
        return self._info(pid)

    def _info(self, pid: int) -> SessionInfo:
        status_now = "running" if self.in_use(pid) else None
        try:
            if not log_begins(self.log_path(pid)):
                raise ValueError("the log does not begin well")
            data = json.loads((self.folder(pid) / "info.json").read_bytes())
            info = SessionInfo(**data)
            if info.status == "running" and status_now is None:
                # Its program died: the info may lag its log by the last instant.
                raise ValueError("interrupted")
        except (OSError, ValueError, TypeError):
            try:
                info = info_of(self.load(pid))
            except SessionError as error:
                why = error.why if isinstance(error, SessionDamaged) else str(error)
                return SessionInfo(pid, "?", "?", "damaged", problem=why)
        if status_now is None and info.status == "running":
            info = _replace_status(info, "interrupted")
        elif status_now is not None and info.status != "ended":
            info = _replace_status(info, status_now)
        return info

    def list(self, *, ended: bool = True) -> list[SessionInfo]:
        """Every session's line, oldest first (blocking)."""
        self.writer.flush_now()
        infos = [self._info(pid) for pid in self.pids()]
        return [i for i in infos if ended or i.status != "ended"]

    # -- writing -----------------------------------------------------------------------------

    def write_info(self, info: SessionInfo) -> None:
        # Not synced: it only saves replaying the log, which stands in when it is lost.
        path = self.folder(info.pid) / "info.json"
        self.writer.replace(path, json_bytes(info.as_dict()), sync=False)

    def rewrite(self, saved: SavedProcess) -> None:
        """Queue replacing ``saved``'s log with a fresh one that replays to it."""
        data = b"".join(encode(record) for record in snapshot_records(saved))
        self.folder(saved.pid).mkdir(parents=True, exist_ok=True)
        self.writer.replace(self.log_path(saved.pid), data)
        self.write_info(info_of(saved))

    def tidy(self, saved: SavedProcess) -> None:
        """Before ``saved`` goes on: a log with a damaged tail, or grown to over twice what
        it holds, is replaced by a fresh one (later records must follow good ones)."""
        if saved.damage:
            self.rewrite(saved)
        elif saved.log_bytes > COMPACT_BYTES:
            fresh = sum(len(encode(record)) for record in snapshot_records(saved))
            if saved.log_bytes > 2 * fresh:
                self.rewrite(saved)

    def delete(self, pid: int) -> None:
        """Remove a session's files (blocking).

        Raises:
            SessionBusy: it is running (here or in another LLM-OS).
        """
        self.writer.flush_now()  # an ended process lets go of its lock on the writer thread
        if self.in_use(pid):
            raise SessionBusy(pid)
        shutil.rmtree(self.folder(pid), ignore_errors=True)

    def close(self) -> None:
        """Finish every queued write, let go of every lock, and give back the pids reserved
        but not used (when no one reserved any since), so pids stay consecutive (blocking)."""
        self.writer.stop()
        for pid in list(self._claims):
            self.release(pid)
        if self._spare:
            self._give_back()

    def _give_back(self) -> None:
        counter = self.root / "next-pid"
        try:
            with filelock.FileLock(self.root / "pids.lock", thread_local=False):
                if int(counter.read_text().strip()) == self._block_end:
                    write_atomically(counter, f"{self._spare[-1]}\n".encode())
        except (OSError, ValueError):
            pass  # the block stays used: pids skip a few, nothing more
        self._spare = []


class ProcessLock:
    """A lock file held while a program runs a process; the operating system lets go of it
    when the program dies. ``flock`` on POSIX (cheap: sessions take one per process),
    ``filelock`` elsewhere."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._other: filelock.BaseFileLock | None = None

    def acquire(self) -> bool:
        """Take the lock if it is free; False when another program holds it."""
        if fcntl is None:
            lock = filelock.FileLock(self.path, thread_local=False)
            try:
                lock.acquire(timeout=0)
            except filelock.Timeout:
                return False
            self._other = lock
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing lets go of the flock
            self._fd = None
        if self._other is not None:
            self._other.release()
            self._other = None


def log_begins(path: Path) -> bool:
    """True when the log's first line is whole and checks out (a cheap test for listing)."""
    with open(path, "rb") as file:
        line = file.readline(1 << 20)
    return bool(read_log_lines([line]).records) if line else False


def _replace_status(info: SessionInfo, status: str) -> SessionInfo:
    data = info.as_dict()
    data["status"] = status
    return SessionInfo(**data)
