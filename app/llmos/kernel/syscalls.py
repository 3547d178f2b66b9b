"""Syscalls: tool calls a process's model makes, run by the kernel within the app's permissions.

An app's manifest lists the syscalls it may make (``[permissions] syscalls``). A model that
can call tools is offered the tools of those syscalls; each call it makes is dispatched here,
and its result goes back to it as a ``tool`` message. A call outside the grant, to an unknown
tool or with bad arguments gets an error message the model sees; nothing raises out of a
syscall. Results are bounded (:data:`RESULT_CHARS`) and paginated.

The table is :mod:`llmos.kernel.memory_syscalls` (search, read, notes, core memory) and
:mod:`llmos.kernel.system_syscalls` (clock, calculator, models, processes). Every call is
kept in the process's audit log (:attr:`Process.audit`) and published as events.
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import TYPE_CHECKING, Any

from llmos.drivers.base import Tool
from llmos.kernel.events import SyscallFinished, SyscallQueued, SyscallStarted
from llmos.kernel.memory_syscalls import MEMORY_SYSCALLS
from llmos.kernel.process import AuditEntry
from llmos.kernel.process_syscalls import PROCESS_SYSCALLS
from llmos.kernel.syscall_table import Syscall, SyscallError, SyscallRefused
from llmos.kernel.system_syscalls import SYSTEM_SYSCALLS

if TYPE_CHECKING:
    from llmos.kernel.kernel import Kernel
    from llmos.kernel.paging import Backing
    from llmos.kernel.process import Process

log = logging.getLogger(__name__)

RESULT_CHARS = 1600
"""The most text one syscall result gives the model (about 400 tokens)."""
TOOLS_SHARE = 8
"""Tools are offered only when their schemas take at most 1/8 of the prompt room."""


SMALL_MODEL = 1.0
"""Billions of parameters below which a model gets tools only from apps that require them."""


def billions(parameter_size: str) -> float | None:
    """``"0.5B"`` -> 0.5, ``"494.03M"`` -> 0.494; None when unknown."""
    match = re.fullmatch(r"\s*([\d.]+)\s*([KMBT])\s*", parameter_size or "", re.IGNORECASE)
    if not match:
        return None
    scale = {"K": 1e-6, "M": 1e-3, "B": 1.0, "T": 1e3}[match.group(2).upper()]
    return float(match.group(1)) * scale


class Syscalls:
    """The kernel's syscall table (one per kernel)."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.table: dict[str, Syscall] = {
            call.tool: call for call in (*MEMORY_SYSCALLS, *SYSTEM_SYSCALLS, *PROCESS_SYSCALLS)
        }

    def tools(self, process: Process, parameter_size: str = "") -> list[Tool] | None:
        """The tool schemas offered to ``process`` (None: its model cannot call tools, its
        app may make no syscalls, or the schemas would crowd a small context out).

        Args:
            parameter_size: the model's size as its backend gives it (``0.5B``, ``494M``).
                Models under :data:`SMALL_MODEL` are offered tools only by apps that need
                them: the 0.5B default model, offered memory tools in a chat, answered plain
                questions with tool calls and searched in circles.
        """
        if "tools" not in process.capabilities:
            return None
        size = billions(parameter_size)
        if size is not None and size < SMALL_MODEL and "tools" not in process.app.model.requires:
            return None
        granted = set(process.app.permissions.syscalls)
        schemas = [call.schema for call in self.table.values() if call.permission in granted]
        if not schemas:
            return None
        counter = self.kernel._counter(process.model)
        if counter.tools(schemas) * TOOLS_SHARE > process.budget - process.reserve:
            return None
        return schemas

    async def dispatch(self, process: Process, call: dict[str, Any]) -> tuple[str, str]:
        """Run one tool call of ``process``; returns (tool name, result for the model)."""
        function = call.get("function") or call
        name = str(function.get("name") or "")
        syscall = self.table.get(name)
        permission = syscall.permission if syscall else name or "?"
        call_id = next(self.kernel._call_ids)
        bus = self.kernel.bus
        bus.publish(SyscallQueued(process.pid, call_id, permission, process.priority))
        bus.publish(SyscallStarted(process.pid, call_id, permission, 0.0))
        started = time.perf_counter()
        outcome, error = "ok", ""
        try:
            if syscall is None:
                raise SyscallError(f"There is no tool named '{name}'.")
            if permission not in process.app.permissions.syscalls:
                raise SyscallRefused(
                    f"{process.app.name} has no permission for {permission}; the call was refused."
                )
            arguments = _arguments(function.get("arguments"))
            missing = [key for key in syscall.required if key not in arguments]
            if missing:
                raise SyscallError(f"{name} needs {', '.join(missing)}.")
            result = await syscall.handler(self, process, arguments)
        except SyscallError as refused:
            outcome = "refused" if isinstance(refused, SyscallRefused) else "failed"
            error = str(refused)
            result = f"Error: {refused}"
        except Exception as failure:  # memory failed: the model hears of it, the turn goes on
            log.warning("pid %d: syscall %s failed: %s", process.pid, name, failure)
            outcome, error = "failed", str(failure)
            result = f"Error: {failure}"
        finally:
            if outcome != "ok":
                log.info("pid %d: syscall %s %s: %s", process.pid, permission, outcome, error)
        seconds = time.perf_counter() - started
        process.record(AuditEntry(time.time(), name or "?", permission, outcome, error, seconds))
        bus.publish(SyscallFinished(process.pid, call_id, permission, outcome, seconds, error))
        return name or "?", _bounded(result)

    async def backing(self) -> Backing:
        backing = await self.kernel.pager._backing(create=True)
        if backing is None:
            raise SyscallError("Long-term memory is not available right now.")
        return backing


def _arguments(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    if raw in (None, ""):
        return {}
    try:
        parsed = json.loads(str(raw))
    except ValueError:
        raise SyscallError("The arguments are not a JSON object.") from None
    if not isinstance(parsed, dict):
        raise SyscallError("The arguments are not a JSON object.")
    return parsed


def _bounded(text: str) -> str:
    if len(text) <= RESULT_CHARS:
        return text
    return text[: RESULT_CHARS - 20].rsplit(" ", 1)[0] + " ... (cut)"
