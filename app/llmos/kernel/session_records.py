"""What a session log holds: its records replayed into a :class:`SavedProcess`, and the
line the lists show for it (:class:`SessionInfo`). The files themselves are
:mod:`llmos.kernel.sessions`'s."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from llmos.drivers.base import Message
from llmos.kernel.errors import KernelError
from llmos.kernel.pages import Page

FORMAT = 1
"""The session format this version writes and reads."""


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
    suspended: bool = False
    """The user had suspended it (it comes back suspended)."""
    children: list[int] = field(default_factory=list)
    """The processes it started that sleep and wake with it."""
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
    "suspended",
    "children",
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
            "suspended": saved.suspended,
            "children": saved.children,
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
