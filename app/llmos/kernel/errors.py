"""Errors the kernel raises to its callers. Each message is plain words saying what to do."""

from __future__ import annotations

from collections.abc import Sequence

from llmos.drivers.base import DriverError


class KernelError(Exception):
    """Base of kernel errors."""


class NoSuchProcess(KernelError):
    def __init__(self, pid: int) -> None:
        super().__init__(f"There is no process {pid}.")
        self.pid = pid


class ProcessGone(KernelError):
    """The process exited (or was killed) before or during the call."""

    def __init__(self, pid: int, reason: str) -> None:
        ended = {
            "killed": "was killed",
            "exited": "has exited",
            "hibernated": "was hibernated (wake it to go on)",
        }.get(reason, f"ended ({reason})")
        super().__init__(f"Process {pid} {ended}.")
        self.pid = pid
        self.reason = reason


class ProcessHeld(KernelError):
    """A restored process cannot run until it is revived (``str()`` says why and how)."""

    def __init__(self, pid: int, why: str) -> None:
        super().__init__(why)
        self.pid = pid


class NotAnAgent(KernelError):
    """The app is one of the desktop's tools (the Shell, Models): it runs no process."""


class ProcessBusy(KernelError):
    def __init__(self, pid: int) -> None:
        super().__init__(f"Process {pid} is still answering; wait for it or stop it first.")
        self.pid = pid


class NoUsableModel(KernelError):
    """No installed model can run the app."""


class ModelCallFailed(KernelError):
    """A model call broke; whatever had been generated is kept in ``partial``."""

    def __init__(self, cause: DriverError, partial: str) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.partial = partial


class PageTooLarge(KernelError):
    """Memory pages do not fit the room a process's context RAM has for them.

    ``tokens`` is what the pages cost, ``room`` what the process can give them (see
    :func:`llmos.kernel.pages.page_room`), ``over_by`` how many tokens must go, and
    ``budget`` the process's context RAM.
    """

    def __init__(self, sources: Sequence[str], *, tokens: int, room: int, budget: int) -> None:
        names = ", ".join(f"'{source}'" for source in dict.fromkeys(sources))
        needs = "needs" if len(set(sources)) == 1 else "need"
        super().__init__(
            f"{names} {needs} about {tokens} tokens but this process has room for {room} "
            f"(the context RAM is {budget} tokens). Page in fewer chunks, or give the process "
            "more context (num_ctx in the settings or --num-ctx)."
        )
        self.tokens = tokens
        self.room = room
        self.budget = budget
        self.over_by = tokens - room
