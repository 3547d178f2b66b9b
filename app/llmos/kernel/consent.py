"""Consent for sensitive syscalls: the user decides, never the text a model read.

A sensitive syscall (reading a file outside memory, spawning many processes; see
:data:`llmos.apps.permissions.SYSCALLS`) runs only when the app was granted it in its manifest
*and* the user allows this use: once, always for this app (until the kernel stops), or not.
The desktop asks with a non-blocking prompt (:attr:`ConsentBook.asker`); headless runs have
no one to ask and deny, unless a permission was allowed up front (``llmos run --allow``).
Nothing a model reads or writes can reach this book: only the asker's answer changes it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from llmos.apps.permissions import SYSCALLS

if TYPE_CHECKING:
    from llmos.kernel.process import Process


class Consent(StrEnum):
    ONCE = "once"
    ALWAYS = "always"
    """For this app, until the kernel stops."""
    DENY = "deny"


@dataclass(frozen=True, slots=True)
class ConsentRequest:
    """What the user is asked: which process wants to do what."""

    pid: int
    app_id: str
    app_name: str
    permission: str
    detail: str
    """The particular use, in words: ``read /home/ada/plan.txt``."""

    @property
    def question(self) -> str:
        words = SYSCALLS[self.permission].words if self.permission in SYSCALLS else ""
        return f"{self.app_name} (pid {self.pid}) wants to {self.detail}" + (
            f" ({words})." if words else "."
        )


Asker = Callable[[ConsentRequest], Awaitable[Consent]]


class ConsentBook:
    """Who may do what sensitive thing (one per kernel).

    Args:
        asker: asks the user (the desktop's prompt); None: no one to ask, so deny.
        allowed: permissions allowed for every app without asking (``--allow``).
    """

    def __init__(self, asker: Asker | None = None, allowed: Iterable[str] = ()) -> None:
        self.asker = asker
        self.allowed = set(allowed)
        self._always: set[tuple[str, str]] = set()

    async def ask(self, process: Process, permission: str, detail: str) -> bool:
        """True when ``process`` may make this use of ``permission``."""
        if permission in self.allowed or (process.app.id, permission) in self._always:
            return True
        if self.asker is None:
            return False
        request = ConsentRequest(process.pid, process.app.id, process.app.name, permission, detail)
        answer = await self.asker(request)
        if answer is Consent.ALWAYS:
            self._always.add((process.app.id, permission))
        return answer is not Consent.DENY

    def forget(self, app_id: str | None = None) -> None:
        """Withdraw "always" answers (for one app, or all)."""
        self._always = {entry for entry in self._always if app_id not in (None, entry[0])}
