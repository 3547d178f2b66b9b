"""Virtual paths of long-term memory: ``/Documents/papers/x.pdf``, like a file system.

Paths are absolute, use ``/``, never end with ``/`` (except the root) and contain no empty,
``.`` or ``..`` parts. Names may hold any other character, spaces included.
"""

from __future__ import annotations

ROOT = "/"
DOCUMENTS = "/Documents"
"""Where ingested files go unless the user names another folder."""
PROCESSES = "/Processes"
"""The kernel's conversation pages: a folder per process, ``<app>-<pid> (<start time>)``."""
NOTES = "/Notes"
"""Notes agents save (the ``memory.note`` syscall)."""


class MemoryPathError(ValueError):
    """A virtual path is malformed; the message says why."""


def normalize(path: str) -> str:
    """The canonical form of ``path``; relative paths are taken from the root."""
    text = path.strip().replace("\\", "/")
    if not text:
        raise MemoryPathError("A memory path cannot be empty; use / for the root.")
    parts = [part for part in text.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise MemoryPathError(f"'{path}': memory paths cannot contain '..'.")
    if any(ord(ch) < 32 for part in parts for ch in part):
        raise MemoryPathError(f"'{path}': memory paths cannot contain control characters.")
    return "/" + "/".join(parts)


def join(folder: str, *names: str) -> str:
    return normalize("/".join((folder, *names)))


def parent(path: str) -> str:
    head = path.rsplit("/", 1)[0]
    return head or ROOT


def name(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def ancestors(path: str) -> list[str]:
    """Every folder above ``path``, nearest last, root excluded: ``/a/b/c`` → [/a, /a/b]."""
    parts = path.strip("/").split("/")[:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def is_within(path: str, folder: str) -> bool:
    """True when ``path`` is ``folder`` itself or lies somewhere below it."""
    return folder == ROOT or path == folder or path.startswith(folder + "/")


def sql_literal(text: str) -> str:
    """``text`` as a SQL string literal for LanceDB filters."""
    return "'" + text.replace("'", "''") + "'"


def within_filter(column: str, folder: str) -> str:
    """A LanceDB filter matching rows whose ``column`` lies within ``folder``."""
    if folder == ROOT:
        return "true"
    return (
        f"({column} = {sql_literal(folder)} OR starts_with({column}, {sql_literal(folder + '/')}))"
    )
