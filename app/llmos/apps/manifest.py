"""App manifests: an agent app described as data (TOML).

A manifest looks like this (every key but ``id`` and ``name`` has a default)::

    id = "chat"                      # lowercase letters, digits, "-" and "_"
    name = "Chat"                    # the title shown in launchers and windows
    version = "1.0.0"
    author = "LLM-OS"
    description = "A general assistant."
    icon = "chat.svg"                # a file beside the manifest or in resources/icons
    kind = "agent"                   # agent (default); shell and models are desktop tools
    priority = 0                     # scheduler priority; higher runs first
    system_prompt = "You are ..."
    starter_prompts = ["..."]

    [model]
    prefer = ["qwen2.5:0.5b"]        # first installed one wins; empty: the default model
    requires = ["completion"]        # capabilities the model must have
    context = 8192                   # context RAM wanted (num_ctx), capped by settings/model
    reserve = 1024                   # tokens kept free for the answer (num_predict)

    [permissions]
    syscalls = ["memory.search"]     # syscalls the app may make (llmos.apps.permissions)
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from llmos.apps.permissions import SYSCALLS

_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"


class ManifestError(Exception):
    """A manifest cannot be read or is invalid; the message names the file and the field."""


class ModelPreference(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    prefer: tuple[str, ...] = ()
    requires: tuple[str, ...] = ("completion",)
    context: int | None = Field(default=None, ge=256, le=1_048_576)
    reserve: int = Field(default=1024, ge=16, le=131_072)


class Permissions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    syscalls: tuple[str, ...] = ()

    @field_validator("syscalls")
    @classmethod
    def _known(cls, syscalls: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [name for name in syscalls if name not in SYSCALLS]
        if unknown:
            raise ValueError(
                f"unknown syscall {', '.join(map(repr, unknown))} "
                f"(known: {', '.join(sorted(SYSCALLS))})"
            )
        return tuple(dict.fromkeys(syscalls))


class AppManifest(BaseModel):
    """One agent app."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=_ID_PATTERN)
    name: str = Field(min_length=1, max_length=80)
    version: str = "0.1.0"
    author: str = ""
    description: str = ""
    icon: str = ""
    kind: Literal["agent", "shell", "models"] = "agent"
    """``agent``: a model-driven process in a chat window. ``shell`` and ``models`` are the
    desktop's own tools (the kernel console, the model manager): they run no model."""
    priority: int = Field(default=0, ge=-10, le=10)
    system_prompt: str = ""
    starter_prompts: tuple[str, ...] = ()
    model: ModelPreference = ModelPreference()
    permissions: Permissions = Permissions()
    source: Path | None = Field(default=None, exclude=True)
    """Where the manifest was read from (not part of the file)."""

    @classmethod
    def from_toml(cls, path: Path) -> AppManifest:
        """Read and validate a manifest file.

        Raises:
            ManifestError: naming the file and, for invalid values, the field.
        """
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as error:
            raise ManifestError(f"{path}: cannot be read ({error.strerror}).") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise ManifestError(f"{path}: is not valid TOML ({error}).") from None
        try:
            return cls.model_validate({**data, "source": path})
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'manifest'}: {e['msg']}"
                for e in error.errors()
            )
            raise ManifestError(f"{path}: {problems}.") from None
