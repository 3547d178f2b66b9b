"""Processes that cooperate, and files: spawn a child and wait for its answer, mailboxes,
reading a file the user allows.

======================  ==================  ============================================
permission              tool                does
======================  ==================  ============================================
``processes.spawn``     ``spawn_process``   starts a process of an app with a task (the
                                            user is asked beyond two children at once)
``processes.spawn``     ``wait_process``    waits for a child's answer (bounded)
``processes.message``   ``send_message``    leaves a message in another process's mailbox
``processes.message``   ``read_messages``   reads (and empties) its own mailbox
``files.read``          ``read_file``       a text file, a page at a time; the user is
                                            asked for each file (headless: denied unless
                                            allowed with ``--allow files.read``)
======================  ==================  ============================================

A child ends with its parent unless it was spawned detached.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmos.apps.registry import AppNotFound
from llmos.drivers.base import DriverError
from llmos.kernel.errors import KernelError
from llmos.kernel.syscall_table import (
    INTEGER,
    TEXT,
    Syscall,
    SyscallError,
    SyscallRefused,
    integer,
)

if TYPE_CHECKING:
    from llmos.kernel.process import Process
    from llmos.kernel.syscalls import Syscalls

CHILDREN_WITHOUT_ASKING = 2
"""Children a process may have running at once before the user is asked for more."""
WAIT_SECONDS = 300
"""The longest one ``wait_process`` call waits."""
FILE_BYTES = 5_000_000
PAGE_CHARS = 1400


async def _spawn(calls: Syscalls, process: Process, args: dict[str, Any]) -> str:
    kernel = calls.kernel
    task = str(args["task"]).strip()
    if not task:
        raise SyscallError("Give the new process a task.")
    try:
        app = kernel.apps.get(str(args["app"]))
    except AppNotFound as error:
        raise SyscallError(str(error)) from None
    running = len(kernel.children(process.pid))
    if running >= CHILDREN_WITHOUT_ASKING:
        detail = f"start another process ({app.name}) while {running} it started still run"
        if not await kernel.consent.ask(process, "processes.spawn", detail):
            raise SyscallRefused(
                f"The user did not allow a process beyond {running}; wait for one to finish."
            )
    try:
        child = await kernel.spawn(
            app, parent_pid=process.pid, detached=bool(args.get("detached", False))
        )
    except (KernelError, DriverError) as error:
        raise SyscallError(f"{app.name} could not start ({error}).") from None
    kernel.start(child.pid, task)
    return (
        f"Started {app.name} as pid {child.pid} with the task. "
        f"Call wait_process({child.pid}) for its answer."
    )


async def _wait(calls: Syscalls, process: Process, args: dict[str, Any]) -> str:
    kernel = calls.kernel
    pid = integer(args["pid"], "pid")
    try:
        child = kernel.get(pid)
    except KernelError:
        raise SyscallError(f"There is no process {pid}.") from None
    if child.parent_pid != process.pid:
        raise SyscallRefused(f"pid {pid} is not a process you started.")
    timeout = min(WAIT_SECONDS, max(1, integer(args.get("timeout") or 60, "timeout")))
    try:
        result = await kernel.result(pid, timeout)
    except KernelError as error:
        raise SyscallError(f"pid {pid} did not answer: {error}") from None
    if result is None:
        return f"pid {pid} ({child.app.name}) is still working after {timeout} s; wait again."
    return f"pid {pid} ({child.app.name}) answered:\n{result.answer}"


async def _send(calls: Syscalls, process: Process, args: dict[str, Any]) -> str:
    pid = integer(args["pid"], "pid")
    text = str(args["text"]).strip()
    if not text:
        raise SyscallError("There is no message to send.")
    try:
        calls.kernel.post(process.pid, pid, text)
    except KernelError as error:
        raise SyscallError(str(error)) from None
    return f"Left the message in pid {pid}'s mailbox."


async def _read_messages(calls: Syscalls, process: Process, args: dict[str, Any]) -> str:
    if not process.mailbox:
        return "No messages."
    lines = []
    while process.mailbox:
        mail = process.mailbox.popleft()
        lines.append(f"From pid {mail.sender}: {mail.text}")
    return "\n".join(lines)


async def _read_file(calls: Syscalls, process: Process, args: dict[str, Any]) -> str:
    path = _expand(str(args["path"]))
    if not await calls.kernel.consent.ask(process, "files.read", f"read the file {path}"):
        raise SyscallRefused(f"The user did not allow reading {path}.")
    try:
        data = await asyncio.to_thread(_read_bytes, path)
    except OSError as error:
        raise SyscallError(f"{path} cannot be read ({error.strerror or error}).") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SyscallError(f"{path} is not a text file.") from None
    pages = max(1, -(-len(text) // PAGE_CHARS))
    page = integer(args.get("page") or 1, "page")
    if not 1 <= page <= pages:
        raise SyscallError(f"{path} has {pages} pages of text; there is no page {page}.")
    part = text[PAGE_CHARS * (page - 1) : PAGE_CHARS * page]
    more = f"\n(Page {page} of {pages}: call read_file with page {page + 1} for more.)"
    return f"{path}:\n{part}" + (more if page < pages else "")


def _expand(text: str) -> Path:
    """``~`` expanded (it reads the environment, not the disk)."""
    return Path(os.path.expanduser(text))


def _read_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise FileNotFoundError(2, "there is no such file")
    if path.stat().st_size > FILE_BYTES:
        raise OSError(0, f"it is larger than {FILE_BYTES // 1_000_000} MB")
    return path.read_bytes()


PROCESS_SYSCALLS = (
    Syscall(
        "spawn_process",
        "processes.spawn",
        "Start a process of an app (e.g. chat) with a task; returns its pid.",
        {"app": TEXT, "task": TEXT},
        ("app", "task"),
        _spawn,
    ),
    Syscall(
        "wait_process",
        "processes.spawn",
        "Wait for the answer of a process you started.",
        {"pid": INTEGER, "timeout": INTEGER},
        ("pid",),
        _wait,
    ),
    Syscall(
        "send_message",
        "processes.message",
        "Leave a message for another process.",
        {"pid": INTEGER, "text": TEXT},
        ("pid", "text"),
        _send,
    ),
    Syscall("read_messages", "processes.message", "Read your messages.", {}, (), _read_messages),
    Syscall(
        "read_file",
        "files.read",
        "Read a text file on this computer (the user is asked).",
        {"path": TEXT, "page": INTEGER},
        ("path",),
        _read_file,
    ),
)
