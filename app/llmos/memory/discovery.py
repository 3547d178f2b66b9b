"""Finding the files an ingest covers: a recursive walk that never hangs and never guesses.

Hidden files and folders (``.name``) and obvious junk (caches, VCS folders, build output, OS
litter) are skipped and counted. A broken symbolic link, a link loop, an unreadable folder or a
file over the size limit becomes a failure with its reason, found here before any worker runs.
Symbolic links to folders are followed once: a link that leads back into a folder already on
the way is reported as a loop instead of being walked forever.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from llmos.memory import paths

JUNK_DIRS = frozenset(
    {"__pycache__", "node_modules", "__MACOSX", "site-packages", "venv", "env", "dist-packages",
     "$RECYCLE.BIN", "System Volume Information", "lost+found"}
)  # fmt: skip
JUNK_FILES = frozenset({"thumbs.db", "desktop.ini", "ehthumbs.db", "icon\r"})
JUNK_SUFFIXES = frozenset(
    {".pyc", ".pyo", ".o", ".obj", ".a", ".so", ".dylib", ".dll", ".exe", ".class", ".jar",
     ".swp", ".swo", ".tmp", ".part", ".crdownload", ".lnk", ".DS_Store", ".egg-info"}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Candidate:
    source: Path
    target: str
    """The virtual path the file will have in memory."""
    size: int


@dataclass(frozen=True, slots=True)
class Refused:
    source: Path
    target: str
    reason: str


@dataclass(slots=True)
class Discovery:
    files: list[Candidate] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)
    skipped: int = 0
    """Hidden or junk files and folders left out on purpose."""
    excluded: set[tuple[int, int]] = field(default_factory=set)

    @property
    def total_bytes(self) -> int:
        return sum(file.size for file in self.files)


def discover(
    sources: list[Path], folder: str, max_bytes: int, exclude: tuple[Path, ...] = ()
) -> Discovery:
    """Every file under ``sources``, mapped into memory ``folder``. Blocking: run in a thread.

    Folders in ``exclude`` (LLM-OS's data dir) are skipped wherever they turn up.
    """
    found = Discovery(excluded={_key(p.stat()) for p in exclude if p.exists()})
    targets: set[str] = set()
    for source in sources:
        source = Path(os.path.abspath(os.path.expanduser(source)))
        target, problem = _target(folder, source.name or "root")
        if problem:
            found.refused.append(Refused(source, target, problem))
            continue
        try:
            info = source.stat()
        except OSError as error:
            found.refused.append(Refused(source, target, _stat_reason(source, error)))
            continue
        if stat.S_ISDIR(info.st_mode):
            _walk(source, target, found, targets, max_bytes, {_key(info)})
        else:
            _file(source, target, info, found, targets, max_bytes)
    return found


def _walk(
    directory: Path,
    target: str,
    found: Discovery,
    targets: set[str],
    max_bytes: int,
    on_the_way: set[tuple[int, int]],
) -> None:
    try:
        entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
    except OSError as error:
        reason = "permission denied" if error.errno == errno.EACCES else os_reason(error)
        found.refused.append(Refused(directory, target, f"the folder cannot be read: {reason}"))
        return
    for entry in entries:
        if _is_junk(entry.name):
            found.skipped += 1
            continue
        path = Path(entry.path)
        child, problem = _target(target, entry.name)
        if problem:
            found.refused.append(Refused(path, child, problem))
            continue
        try:
            info = path.stat()
        except OSError as error:
            found.refused.append(Refused(path, child, _stat_reason(path, error)))
            continue
        if stat.S_ISDIR(info.st_mode):
            key = _key(info)
            if key in found.excluded:
                found.skipped += 1
                continue
            if key in on_the_way:
                reason = f"symbolic link loop (leads back to {os.path.realpath(path)})"
                found.refused.append(Refused(path, child, reason))
                continue
            _walk(path, child, found, targets, max_bytes, on_the_way | {key})
        else:
            _file(path, child, info, found, targets, max_bytes)


def _file(
    path: Path,
    target: str,
    info: os.stat_result,
    found: Discovery,
    targets: set[str],
    max_bytes: int,
) -> None:
    if not stat.S_ISREG(info.st_mode):
        found.refused.append(Refused(path, target, "not a regular file (a device, pipe or socket)"))
    elif info.st_size > max_bytes:
        limit = f"{max_bytes / 1e6:.0f} MB"
        reason = f"too large ({info.st_size / 1e6:.1f} MB; the limit is {limit})"
        found.refused.append(Refused(path, target, reason))
    elif target in targets:
        reason = f"another file in this ingest also goes to {target}"
        found.refused.append(Refused(path, target, reason))
    else:
        targets.add(target)
        found.files.append(Candidate(path, target, info.st_size))


def printable(path: Path | str) -> str:
    """``path`` as text that can be printed, even when its bytes are not UTF-8."""
    return str(path).encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _target(folder: str, name: str) -> tuple[str, str]:
    """The virtual path for ``name`` in ``folder``, or a reason the name cannot be one."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return f"{folder}/{printable(name)}", "its name is not valid text (rename it to UTF-8)"
    try:
        return paths.join(folder, name), ""
    except paths.MemoryPathError:
        return f"{folder}/{name!r}", "its name contains control characters (rename it)"


def _is_junk(name: str) -> bool:
    lower = name.lower()
    return (
        name.startswith(".")
        or name in JUNK_DIRS
        or lower in JUNK_FILES
        or os.path.splitext(lower)[1] in JUNK_SUFFIXES
        or name.endswith("~")
    )


def _key(info: os.stat_result) -> tuple[int, int]:
    return info.st_dev, info.st_ino


def _stat_reason(path: Path, error: OSError) -> str:
    if error.errno == errno.ELOOP:
        return "symbolic link loop"
    if path.is_symlink() and error.errno == errno.ENOENT:
        return f"broken symbolic link (it points to {os.readlink(path)}, which does not exist)"
    if error.errno == errno.ENOENT:
        return "no such file or folder"
    return os_reason(error)


def os_reason(error: OSError) -> str:
    if error.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return error.strerror or str(error)
