"""A process's journal: its changes appended to its session log as they happen.

The kernel calls :meth:`ProcessJournal.sync` whenever a process's context RAM is recounted
(a message joined, turns were evicted, a page came in), and :meth:`ProcessJournal.stream`
with every token of an answer. ``sync`` compares the conversation with what the log already
holds (by identity: the kernel only appends, evicts the oldest and takes back the newest) and
appends just the difference; ``stream`` writes the answer being generated as a checkpoint at
most every :data:`~llmos.kernel.sessions.CHECKPOINT_SECONDS`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from llmos.drivers.base import Message
from llmos.kernel.pages import Page
from llmos.kernel.process import Process, ProcessState
from llmos.kernel.session_records import FORMAT, SessionInfo, first_line, message_json, page_json
from llmos.kernel.sessions import CHECKPOINT_SECONDS, SessionStore
from llmos.kernel.state_files import encode

_MISSING = object()
_LISTED = {"status", "model", "window"}
"""Fields the lists show (besides the conversation's)."""
_DURABLE = {"status", "model", "window", "summary", "core", "first_turn", "pinned", "pages"}
"""Fields worth a sync of their own."""


class ProcessJournal:
    """Writes one process's changes to its session log (through the store's writer)."""

    def __init__(
        self,
        store: SessionStore,
        process: Process,
        children: Callable[[int], list[int]] = lambda pid: [],
    ) -> None:
        """Args:
        children: the pids of the live processes a pid started that sleep and wake with
            it (not detached ones)."""
        self.store = store
        self._children = children
        self.pid = process.pid
        self.path = store.log_path(process.pid)
        self.status = "running"
        self._persisted: list[Message] = []
        self._fields: dict[str, Any] = {}
        self._pending = ""
        self._checkpoint_at = time.monotonic()
        self._turns = 0
        self._first = ""
        self._pages_of: list[Page] | None = None
        self._pages: list[dict[str, Any]] = []

    # -- starting ----------------------------------------------------------------------------

    def begin(self, process: Process) -> None:
        """Start a new log for a new process."""
        record = {
            "op": "begin",
            "format": FORMAT,
            "pid": process.pid,
            "app_id": process.app.id,
            "app": process.app.model_dump(mode="json"),
            "model": process.model,
            "priority": process.priority,
            "started_at": process.counters.started_at,
            "memory_folder": process.memory_folder,
            "parent_pid": process.parent_pid,
            "detached": process.detached,
        }
        self.store.writer.append(self.path, [encode(record)])
        self.sync(process)  # its info comes with its first answer (the log stands in)

    def adopt(self, process: Process, transcript: list[Message]) -> None:
        """Continue a log that already holds ``transcript`` (the process's history is its
        tail). Its other fields are all written again at the next sync (the process may come
        back on another model, with another budget...)."""
        self._persisted = list(process.history)
        self._fields = {}
        users = [m for m in transcript if m.get("role") == "user"]
        self._turns = len(users)
        self._first = first_line(str(users[0].get("content") or "")) if users else ""

    # -- writing -----------------------------------------------------------------------------

    def sync(self, process: Process, *, info: bool = False) -> None:
        """Append what changed since the last sync."""
        records = self._conversation(process.history)
        added = any(r["op"] in ("msg", "drop") for r in records)
        # The lists change with an answer (a crash mid-turn is read from the log instead).
        answered = any(
            r["op"] == "drop" or r["m"]["role"] == "assistant"
            for r in records
            if r["op"] in ("msg", "drop")
        )
        if added:
            self._pending = ""
            self._checkpoint_at = time.monotonic()
        changed = self._changes(process)
        if changed:
            records.append({"op": "set", **changed})
        if records:
            # Counts that change every call (tokens, context) are written at once but synced
            # with the next message: a power cut may lose them, never a message.
            durable = bool(records[:-1] if changed else records) or bool(_DURABLE & changed.keys())
            self.store.writer.append(self.path, [encode(r) for r in records], sync=durable)
        if answered or info or _LISTED & changed.keys():
            self.store.write_info(self.info(process))

    def stream(self, text: str) -> None:
        """A piece of the answer being generated (checkpointed every so often)."""
        self._pending += text
        now = time.monotonic()
        if now - self._checkpoint_at >= CHECKPOINT_SECONDS:
            self.checkpoint(now)

    def checkpoint(self, now: float | None = None) -> None:
        if self._pending:
            record = {"op": "partial", "text": self._pending}
            # Written at once, synced with the answer: a killed program keeps it.
            self.store.writer.append(self.path, [encode(record)], sync=False)
            self._pending = ""
        self._checkpoint_at = time.monotonic() if now is None else now

    def close(self) -> None:
        self.store.writer.close_file(self.path)

    # -- what is written ---------------------------------------------------------------------

    def _conversation(self, history: list[Message]) -> list[dict[str, Any]]:
        persisted = self._persisted
        records: list[dict[str, Any]] = []
        new: list[Message]
        if not persisted:
            new = list(history)
        elif not history:
            records.append({"op": "drop", "n": len(persisted)})
            self._count_dropped(persisted)
            new = []
        else:
            start = next((i for i, m in enumerate(persisted) if m is history[0]), None)
            if start is None:
                # Everything logged left context RAM (evicted) before the next sync.
                records.append({"op": "evict", "n": len(persisted)})
                new = list(history)
            else:
                if start:
                    records.append({"op": "evict", "n": start})
                kept = persisted[start:]
                same = 0
                while same < min(len(kept), len(history)) and kept[same] is history[same]:
                    same += 1
                if same < len(kept):
                    records.append({"op": "drop", "n": len(kept) - same})
                    self._count_dropped(kept[same:])
                new = history[same:]
        for message in new:
            records.append({"op": "msg", "m": message_json(message)})
            if message.get("role") == "user":
                self._turns += 1
                if not self._first:
                    self._first = first_line(str(message.get("content") or ""))
        self._persisted = list(history)
        return records

    def _count_dropped(self, dropped: list[Message]) -> None:
        self._turns -= sum(1 for m in dropped if m.get("role") == "user")

    def _changes(self, process: Process) -> dict[str, Any]:
        fields = self.fields(process)
        changed = {k: v for k, v in fields.items() if self._fields.get(k, _MISSING) != v}
        self._fields.update(changed)
        return changed

    def fields(self, process: Process) -> dict[str, Any]:
        """The process's state besides its conversation, as ``set`` records carry it."""
        usage = process.usage
        if process.paged_in is not self._pages_of:  # the kernel replaces the list on change
            self._pages_of = process.paged_in
            self._pages = [page_json(p) for p in process.paged_in]
        return {
            "summary": process.summary,
            "core": process.core,
            "first_turn": process.first_turn,
            "pinned": [message_json(m) for m in process.pinned],
            "pages": self._pages,
            "counters": dict(vars(process.counters)),
            "priority": process.priority,
            "model": process.model,
            "window": process.window,
            "status": self.status,
            "exit_reason": process.exit_reason,
            "ended_at": process.counters.ended_at,
            "context_tokens": usage.used if usage is not None else 0,
            "budget": process.budget,
            "parent_pid": process.parent_pid,
            # As they were when it ended: it sleeps as the user left it, with its children.
            "suspended": (process.state is ProcessState.SUSPENDED and not process.held)
            if process.alive
            else self._fields.get("suspended", False),
            "children": self._children(process.pid)
            if process.alive
            else self._fields.get("children", []),
        }

    def info(self, process: Process) -> SessionInfo:
        counters = process.counters
        usage = process.usage
        return SessionInfo(
            pid=process.pid,
            app_id=process.app.id,
            app_name=process.app.name,
            status=self.status,
            model=process.model,
            started_at=counters.started_at,
            ended_at=counters.ended_at,
            first_line=self._first,
            turns=self._turns,
            prompt_tokens=counters.prompt_tokens,
            generated_tokens=counters.generated_tokens,
            context_tokens=usage.used if usage is not None else 0,
            budget=process.budget,
            window=bool(process.window and process.window.get("open")),
            problem=process.held,
            parent_pid=process.parent_pid if not process.detached else None,
        )
