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

import base64
import json
import logging
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import filelock

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

from llmos.drivers.base import Message
from llmos.kernel.errors import KernelError
from llmos.kernel.pages import Page
from llmos.kernel.state_files import (
    Writer,
    encode,
    json_bytes,
    read_log,
    read_log_lines,
    write_atomically,
)

log = logging.getLogger(__name__)

FORMAT = 1
"""The session format this version writes and reads."""
CHECKPOINT_SECONDS = 0.1
"""How often the answer being generated is written down (a crash loses at most this much)."""
PID_BLOCK = 16
"""Pids reserved at a time (the counter file is written once a block)."""
COMPACT_BYTES = 1_000_000
"""A log larger than this, and over twice what a fresh one would take, is rewritten when its
process is restored."""


class SessionError(KernelError):
    """A session cannot be used; the message says why and what to do."""


class SessionBusy(SessionError):
    def __init__(self, pid: int) -> None:
        super().__init__(
            f"Process {pid} is running in another LLM-OS (a desktop or an `llmos run`) on this "
            "data dir. Close it there first."
        )
        self.pid = pid


class NoSuchSession(SessionError):
    def __init__(self, pid: int) -> None:
        super().__init__(f"There is no saved process {pid} (see `llmos ps --all`).")
        self.pid = pid


class SessionDamaged(SessionError):
    """The session's files cannot be read at all (``why`` says what is wrong)."""

    def __init__(self, pid: int | None, why: str) -> None:
        subject = f"Process {pid}" if pid is not None else "The process"
        super().__init__(f"{subject} cannot be brought back: {why}.")
        self.why = why


# -- what a process looks like on disk -------------------------------------------------------


@dataclass(slots=True)
class SavedProcess:
    """A process as its log gives it back."""

    pid: int
    app_id: str
    app: dict[str, Any]
    """The app's manifest when the process started (to show it if the app was removed)."""
    model: str
    priority: int
    started_at: float
    memory_folder: str = ""
    parent_pid: int | None = None
    detached: bool = False
    transcript: list[Message] = field(default_factory=list)
    """Every message of the conversation, evicted ones included (what a window shows)."""
    ram_start: int = 0
    """Where the messages still in context RAM begin in ``transcript``."""
    partial: str = ""
    """An answer a crash cut (not in ``transcript``)."""
    summary: str = ""
    core: str = ""
    first_turn: int = 1
    pinned: list[Message] = field(default_factory=list)
    pages: list[Page] = field(default_factory=list)
    counters: dict[str, Any] = field(default_factory=dict)
    window: dict[str, Any] | None = None
    """Where the desktop showed the process's window (None: it had none)."""
    status: str = "running"
    """``running``, ``hibernated`` or ``ended``."""
    exit_reason: str = ""
    ended_at: float | None = None
    context_tokens: int = 0
    """Context RAM the process held when last counted."""
    budget: int = 0
    damage: str = ""
    """What could not be read (the rest was)."""
    log_bytes: int = 0
    """The size of the good part of its log."""

    @property
    def history(self) -> list[Message]:
        """The messages in context RAM."""
        return self.transcript[self.ram_start :]


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """One line of ``llmos ps`` (and of the desktop's lists)."""

    pid: int
    app_id: str
    app_name: str
    status: str
    """``running`` (in a live LLM-OS), ``hibernated``, ``interrupted`` (its LLM-OS died) or
    ``ended``; ``damaged`` when its files cannot be read."""
    model: str = ""
    started_at: float = 0.0
    ended_at: float | None = None
    first_line: str = ""
    turns: int = 0
    prompt_tokens: int = 0
    generated_tokens: int = 0
    context_tokens: int = 0
    budget: int = 0
    window: bool = False
    """The desktop showed it in a window (it comes back with one)."""
    problem: str = ""
    """Why it cannot run as it was, or what was damaged."""
    parent_pid: int | None = None
    """The process that started it (it sleeps and wakes with that one)."""

    @property
    def resumable(self) -> bool:
        return self.status in ("hibernated", "interrupted")

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def message_json(message: Message) -> dict[str, Any]:
    """A message as the log keeps it (images as base64 text)."""
    out = dict(message)
    images = out.get("images")
    if images:
        out["images"] = [
            {"b64": base64.b64encode(image).decode()} if isinstance(image, bytes) else image
            for image in images
        ]
    return out


def message_from_json(data: dict[str, Any]) -> Message:
    message: dict[str, Any] = dict(data)
    images = message.get("images")
    if images:
        message["images"] = [
            base64.b64decode(image["b64"]) if isinstance(image, dict) else image for image in images
        ]
    return message


def page_json(page: Page) -> dict[str, Any]:
    return {
        "key": page.key,
        "source": page.source,
        "label": page.label,
        "text": page.text,
        "chunk_ids": list(page.chunk_ids),
        "by_pager": page.by_pager,
    }


def page_from_json(data: dict[str, Any]) -> Page:
    return Page(
        key=str(data["key"]),
        source=str(data["source"]),
        label=str(data.get("label", "")),
        text=str(data.get("text", "")),
        chunk_ids=tuple(str(c) for c in data.get("chunk_ids", ())),
        by_pager=bool(data.get("by_pager", False)),
    )


def replay(records: Iterable[dict[str, Any]], *, damage: str = "") -> SavedProcess:
    """The process a log's records describe.

    Raises:
        SessionDamaged: the records do not begin a session this version can read.
    """
    records = iter(records)
    begin = next(records, None)
    if begin is None or begin.get("op") != "begin":
        raise SessionDamaged(
            None, f"its log does not begin a session{f' ({damage})' if damage else ''}"
        )
    written = begin.get("format", 0)
    if not isinstance(written, int) or written > FORMAT:
        raise SessionDamaged(
            None,
            f"it was written by a newer LLM-OS (session format {written}; this one reads up to "
            f"{FORMAT}); open it with that version, or upgrade",
        )
    given = begin.get("app")
    app: dict[str, Any] = given if isinstance(given, dict) else {}
    saved = SavedProcess(
        pid=int(begin["pid"]),
        app_id=str(begin.get("app_id") or app.get("id", "?")),
        app=app,
        model=str(begin.get("model", "")),
        priority=int(begin.get("priority", 0)),
        started_at=float(begin.get("started_at", 0.0)),
        memory_folder=str(begin.get("memory_folder", "")),
        parent_pid=begin.get("parent_pid"),
        detached=bool(begin.get("detached", False)),
        damage=damage,
    )
    for record in records:
        op = record.get("op")
        if op == "msg":
            saved.transcript.append(message_from_json(record["m"]))
            saved.partial = ""
        elif op == "partial":
            saved.partial += str(record.get("text", ""))
        elif op == "evict":
            saved.ram_start = min(len(saved.transcript), saved.ram_start + int(record["n"]))
        elif op == "drop":
            keep = max(saved.ram_start, len(saved.transcript) - int(record["n"]))
            del saved.transcript[keep:]
            saved.partial = ""
        elif op == "set":
            _apply_set(saved, record)
    return saved


def _apply_set(saved: SavedProcess, record: dict[str, Any]) -> None:
    for key, value in record.items():
        if key == "op":
            continue
        if key == "pages":
            saved.pages = [page_from_json(p) for p in value]
        elif key == "pinned":
            saved.pinned = [message_from_json(m) for m in value]
        elif key == "partial_done":
            saved.partial = ""
        elif key in _SETTABLE:
            setattr(saved, key, value)


_SETTABLE = {
    "summary",
    "core",
    "first_turn",
    "counters",
    "window",
    "status",
    "exit_reason",
    "ended_at",
    "model",
    "priority",
    "context_tokens",
    "budget",
    "parent_pid",
}


def snapshot_records(saved: SavedProcess) -> list[dict[str, Any]]:
    """Records that replay to ``saved`` (a fresh or compacted log)."""
    records: list[dict[str, Any]] = [
        {
            "op": "begin",
            "format": FORMAT,
            "pid": saved.pid,
            "app_id": saved.app_id,
            "app": saved.app,
            "model": saved.model,
            "priority": saved.priority,
            "started_at": saved.started_at,
            "memory_folder": saved.memory_folder,
            "parent_pid": saved.parent_pid,
            "detached": saved.detached,
        }
    ]
    records += [{"op": "msg", "m": message_json(m)} for m in saved.transcript]
    if saved.ram_start:
        records.append({"op": "evict", "n": saved.ram_start})
    if saved.partial:
        records.append({"op": "partial", "text": saved.partial})
    records.append(
        {
            "op": "set",
            "summary": saved.summary,
            "core": saved.core,
            "first_turn": saved.first_turn,
            "pinned": [message_json(m) for m in saved.pinned],
            "pages": [page_json(p) for p in saved.pages],
            "counters": saved.counters,
            "window": saved.window,
            "status": saved.status,
            "exit_reason": saved.exit_reason,
            "ended_at": saved.ended_at,
            "context_tokens": saved.context_tokens,
            "budget": saved.budget,
        }
    )
    return records


def info_of(saved: SavedProcess, status: str | None = None) -> SessionInfo:
    counters = saved.counters
    first = next(
        (str(m.get("content") or "") for m in saved.transcript if m.get("role") == "user"), ""
    )
    return SessionInfo(
        pid=saved.pid,
        app_id=saved.app_id,
        app_name=str(saved.app.get("name") or saved.app_id),
        status=status or saved.status,
        model=saved.model,
        started_at=saved.started_at,
        ended_at=saved.ended_at,
        first_line=first_line(first),
        turns=sum(1 for m in saved.transcript if m.get("role") == "user"),
        prompt_tokens=int(counters.get("prompt_tokens", 0)),
        generated_tokens=int(counters.get("generated_tokens", 0)),
        context_tokens=saved.context_tokens,
        budget=saved.budget,
        window=bool(saved.window and saved.window.get("open")),
        problem=saved.damage,
        parent_pid=saved.parent_pid if not saved.detached else None,
    )


def first_line(text: str, width: int = 80) -> str:
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    return line if len(line) <= width else line[: width - 1] + "\u2026"


# -- the store -----------------------------------------------------------------------------


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

    def claimed(self, pid: int) -> bool:
        """True while this program holds ``pid``."""
        return pid in self._claims

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
        infos = [self.info(pid) for pid in self.pids()]
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
        if self.in_use(pid):
            raise SessionBusy(pid)
        self.writer.flush_now()
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
