"""The syscalls an app's manifest may ask for, in words a user can judge before installing.

An app's ``[permissions] syscalls`` lists names from :data:`SYSCALLS`; the kernel offers a
process only the tools of the syscalls its app was granted (:mod:`llmos.kernel.syscalls`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Permission:
    name: str
    words: str
    """What granting it lets the app do, for the App Store and ``llmos apps install``."""
    sensitive: bool = False
    """Some uses reach beyond the app's own reach (a file on the computer, a third process
    at once): the user is asked before each such use."""


SYSCALLS: dict[str, Permission] = {
    p.name: p
    for p in (
        Permission("memory.search", "search long-term memory (documents, notes)"),
        Permission("memory.read", "read documents in long-term memory"),
        Permission("memory.note", "save notes to long-term memory (in its own /Notes folder)"),
        Permission("memory.core", "edit its own core memory"),
        Permission("clock", "read the date and time"),
        Permission("calculator", "evaluate arithmetic"),
        Permission("models.list", "list the installed models and what they can do"),
        Permission("processes.list", "list the running processes"),
        Permission(
            "processes.spawn",
            "start processes of other apps and wait for their results (asks beyond two at once)",
            True,
        ),
        Permission("processes.message", "send messages to other processes and read its own"),
        Permission("files.read", "read files on this computer (asks for each file)", True),
    )
}


def describe(syscalls: tuple[str, ...] | list[str]) -> list[str]:
    """One line per permission: its name and what it allows."""
    return [f"{name}: {SYSCALLS[name].words}" for name in syscalls if name in SYSCALLS]
