"""Errors the kernel raises to its callers. Each message is plain words saying what to do."""

from __future__ import annotations

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
        super().__init__(f"Process {pid} has {reason}.")
        self.pid = pid
        self.reason = reason


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
