"""What a syscall is: a tool a model may call, the permission it needs, and its handler."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llmos.drivers.base import Tool

if TYPE_CHECKING:
    from llmos.kernel.process import Process
    from llmos.kernel.syscalls import Syscalls


class SyscallError(Exception):
    """A syscall cannot be done; the message goes to the model."""


class SyscallRefused(SyscallError):
    """A syscall was not allowed (not granted, or the user said no); logged as ``refused``."""


Handler = Callable[["Syscalls", "Process", dict[str, Any]], Awaitable[str]]
TEXT: dict[str, Any] = {"type": "string"}
INTEGER: dict[str, Any] = {"type": "integer"}


@dataclass(frozen=True, slots=True)
class Syscall:
    tool: str
    permission: str
    description: str
    parameters: dict[str, Any]
    required: tuple[str, ...]
    handler: Handler

    @property
    def schema(self) -> Tool:
        return {
            "type": "function",
            "function": {
                "name": self.tool,
                "description": self.description,
                # In the order the ollama client sends the keys, so an exact tokenizer
                # counts what the server will.
                "parameters": {
                    "type": "object",
                    "required": list(self.required),
                    "properties": self.parameters,
                },
            },
        }


def integer(value: Any, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise SyscallError(f"{name} must be a whole number.") from None
