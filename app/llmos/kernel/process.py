"""Processes: running instances of agent apps, each with its own context RAM."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from llmos.apps.manifest import AppManifest
from llmos.drivers.base import Message, Tool
from llmos.kernel.context import ContextUsage
from llmos.kernel.pages import Page
from llmos.kernel.scheduler import Lease

if TYPE_CHECKING:
    from llmos.kernel.journal import ProcessJournal


class ProcessState(StrEnum):
    READY = "ready"
    """Idle, waiting for input."""
    WAITING = "waiting"
    """Queued for the model."""
    RUNNING = "running"
    """Generating on a backend slot."""
    BLOCKED = "blocked"
    """Waiting on a tool or the user."""
    SUSPENDED = "suspended"
    """Held by the user or the kernel; not scheduled until resumed."""
    EXITED = "exited"


@dataclass
class ProcessCounters:
    prompt_tokens: int = 0
    """Prompt tokens over all calls (the backend's count where it gave one)."""
    generated_tokens: int = 0
    model_calls: int = 0
    tokens_per_second: float = 0.0
    """Generation speed of the latest call."""
    preemptions: int = 0
    faults: int = 0
    """Model calls that broke mid-way."""
    overflows: int = 0
    """Calls the backend counted larger than the kernel allowed (the estimate missed)."""
    dropped_turns: int = 0
    """Oldest turns left out of the latest request to fit the context RAM."""
    evictions: int = 0
    """Turns paged out of context RAM into long-term memory."""
    page_ins: int = 0
    """Chunks paged into context RAM from long-term memory (a page without chunks is one)."""
    syscalls: int = 0
    """Syscalls made (tool calls the kernel ran, refused ones included)."""
    page_faults: int = 0
    """Chunks the pager found relevant to a turn that were not in context RAM (so were read
    back from long-term memory)."""
    summaries: int = 0
    """Times the summary of evicted turns was rewritten."""
    summary_fallbacks: int = 0
    """Of those, times the model's summary failed or was unusable (an extractive one stood in)."""
    summary_tokens: int = 0
    """Size of the current summary of evicted turns."""
    started_at: float = field(default_factory=time.time)
    ended_at: float | None = None

    @property
    def wall_seconds(self) -> float:
        return (self.ended_at or time.time()) - self.started_at


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One syscall a process made, as its audit log keeps it."""

    at: float
    tool: str
    permission: str
    outcome: str
    """``ok``, ``refused`` (not granted) or ``failed``."""
    error: str
    seconds: float


@dataclass(frozen=True, slots=True)
class Mail:
    """A message one process sent another."""

    sender: int
    text: str
    at: float


MAILBOX_SIZE = 100
"""Unread messages a process keeps (the oldest go first)."""
AUDIT_ENTRIES = 500
"""Syscalls a process's audit log keeps (the oldest go first)."""


@dataclass(eq=False)
class Process:
    """An agent app instance. The kernel owns and mutates it; everyone else reads."""

    pid: int
    app: AppManifest
    model: str
    priority: int
    budget: int
    """Context RAM in tokens (the ``num_ctx`` sent with every call)."""
    reserve: int
    """Tokens kept free for the answer (``num_predict``)."""
    parent_pid: int | None = None
    detached: bool = False
    """Outlives its parent (otherwise it ends when its parent does)."""
    state: ProcessState = ProcessState.READY
    history: list[Message] = field(default_factory=list)
    pinned: list[Message] = field(default_factory=list)
    paged_in: list[Page] = field(default_factory=list)
    """Memory pages in the context RAM, in the order requests carry them."""
    summary: str = ""
    """The running summary of every turn evicted so far (kept in context RAM)."""
    core: str = ""
    """Core memory: a small block the model edits itself (kept in context RAM)."""
    first_turn: int = 1
    """The number of the oldest turn still in ``history`` (turns before it were evicted)."""
    memory_folder: str = ""
    """Where this process's evicted turns go in long-term memory (set at spawn)."""
    usage: ContextUsage | None = None
    counters: ProcessCounters = field(default_factory=ProcessCounters)
    exit_reason: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    """Extra model options (temperature, seed, ...) sent with each call."""
    capabilities: frozenset[str] = frozenset()
    """What the process's model can do (``tools``, ``vision``, ...)."""
    tools: list[Tool] | None = None
    """The syscalls offered to its model as tools (None: none are)."""
    audit: deque[AuditEntry] = field(default_factory=lambda: deque(maxlen=AUDIT_ENTRIES))
    """The syscalls it made, newest last."""
    mailbox: deque[Mail] = field(default_factory=lambda: deque(maxlen=MAILBOX_SIZE))
    """Messages other processes sent it, oldest first, not yet read."""
    window: dict[str, Any] | None = None
    """Where the desktop shows its window (kept with its session; the kernel only stores it)."""
    held: str = ""
    """Why a restored process cannot run (its app was removed, its model is gone), in plain
    words; it stays suspended until revived. Empty when it can run."""

    # Kernel-private run state.
    _turn: asyncio.Task[Any] | None = field(default=None, repr=False)
    _lease: Lease | None = field(default=None, repr=False)
    _resumed: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    _exited: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    _tools_off: bool = field(default=False, repr=False)
    _journal: ProcessJournal | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._resumed.set()

    def record(self, entry: AuditEntry) -> None:
        self.audit.append(entry)
        self.counters.syscalls += 1

    @property
    def alive(self) -> bool:
        return self.state is not ProcessState.EXITED

    @property
    def busy(self) -> bool:
        """True while a turn is in flight (queued, generating, or suspended mid-turn)."""
        return self._turn is not None and not self._turn.done()

    @property
    def system_messages(self) -> list[Message]:
        prompt = self.app.system_prompt.strip()
        return [{"role": "system", "content": prompt}] if prompt else []

    @property
    def pinned_messages(self) -> list[Message]:
        """Pinned memory and core memory, as requests carry them."""
        core: list[Message] = []
        if self.core.strip():
            core = [{"role": "system", "content": f"Core memory:\n{self.core.strip()}"}]
        return [*self.pinned, *core]

    @property
    def summary_messages(self) -> list[Message]:
        if not self.summary.strip():
            return []
        text = (
            f"Summary of the earlier conversation (turns 1-{self.first_turn - 1}; "
            f"the turns themselves are in long-term memory under {self.memory_folder}):\n"
            f"{self.summary.strip()}"
        )
        return [{"role": "system", "content": text}]
