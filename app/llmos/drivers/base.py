"""The interface every model backend implements, and the errors it raises.

The kernel talks to a model only through :class:`ModelDriver`. Messages use Ollama's chat
format (``{"role": ..., "content": ..., "images": [...], "tool_calls": [...]}``) because it is
the lingua franca of local backends; a driver for another engine translates at its edge.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import Any

Message = dict[str, Any]
"""One chat message in Ollama's format."""

Tool = dict[str, Any]
"""One tool schema in Ollama's (OpenAI-style) format: ``{"type": "function", ...}``."""


class DriverError(Exception):
    """A model backend failed. ``str(error)`` is a plain sentence a user can act on."""

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} {self.hint}".strip()


class BackendUnavailable(DriverError):
    """Nothing answers where the backend should be."""


class ModelNotFound(DriverError):
    """The backend answers but does not have the requested model."""

    def __init__(self, model: str, message: str, *, hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.model = model


class StreamBroken(DriverError):
    """A generation stopped mid-way (connection lost or an in-stream error)."""


class ProtocolMismatch(DriverError):
    """Something answers at the backend's address, but not in the backend's protocol."""


class RequestRejected(DriverError):
    """The backend refused the request (bad input, unsupported capability, server error)."""


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What a backend says about one installed model."""

    name: str
    family: str = ""
    parameter_size: str = ""
    quantization: str = ""
    size_bytes: int = 0
    context_length: int | None = None
    """The length the model was trained for (its largest usable context)."""
    embedding_length: int | None = None
    capabilities: frozenset[str] = frozenset()
    """Any of ``completion``, ``tools``, ``vision``, ``embedding``, ``thinking``."""

    @property
    def can_chat(self) -> bool:
        return "completion" in self.capabilities

    @property
    def can_embed(self) -> bool:
        return "embedding" in self.capabilities


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A model currently held in memory by the backend."""

    name: str
    size_bytes: int = 0
    vram_bytes: int = 0
    context_length: int | None = None
    expires_at: str = ""


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """One model call. ``options`` always carries ``num_ctx`` when sent by the kernel."""

    model: str
    messages: Sequence[Message]
    tools: Sequence[Tool] | None = None
    options: dict[str, Any] = field(default_factory=dict)
    keep_alive: str | float | None = None


@dataclass(frozen=True, slots=True)
class ChatStats:
    """The backend's own figures for a finished call."""

    prompt_tokens: int | None = None
    """The backend's count of the prompt (``prompt_eval_count``); None when it gave none."""
    cached_prompt_tokens: int | None = None
    completion_tokens: int | None = None
    done_reason: str = ""
    eval_seconds: float | None = None
    total_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class ChatChunk:
    """One piece of a streamed answer. The last chunk has ``done`` set and carries ``stats``."""

    content: str = ""
    thinking: str = ""
    tool_calls: tuple[dict[str, Any], ...] = ()
    done: bool = False
    stats: ChatStats | None = None


@dataclass(frozen=True, slots=True)
class PullProgress:
    """One step of a model download."""

    status: str
    completed: int | None = None
    total: int | None = None
    digest: str = ""


class ModelDriver(ABC):
    """A model backend: the CPU of LLM-OS."""

    kind: str = "abstract"
    """Short name of the engine, e.g. ``ollama`` or ``embedded``."""

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the backend lives (a URL or a file path), for status lines and errors."""

    @abstractmethod
    def chat(self, request: ChatRequest) -> AsyncGenerator[ChatChunk, None]:
        """Stream an answer. Closing the iterator early cancels the generation."""

    @abstractmethod
    async def embed(self, model: str, texts: Sequence[str]) -> list[list[float]]:
        """Embed a batch of texts; one vector per text, in order."""

    @abstractmethod
    async def list_models(self) -> list[ModelInfo]:
        """Installed models with capabilities and context lengths."""

    @abstractmethod
    async def model_info(self, name: str) -> ModelInfo:
        """One model's details; raises :class:`ModelNotFound` when absent."""

    @abstractmethod
    async def loaded_models(self) -> list[LoadedModel]:
        """Models currently in memory."""

    @abstractmethod
    def pull(self, name: str) -> AsyncGenerator[PullProgress, None]:
        """Download a model, reporting progress."""

    @abstractmethod
    async def delete(self, name: str) -> None:
        """Remove an installed model."""

    @abstractmethod
    async def version(self) -> str:
        """The backend's version; raises :class:`BackendUnavailable` when it does not answer."""

    async def prepare(self, model: str) -> None:  # noqa: B027 - optional hook
        """Get ready to run ``model`` (load it, or its tokenizer); called when a process
        spawns. The default does nothing."""

    def counting(self, model: str) -> str:
        """How prompt tokens of ``model`` are counted, in words for ``llmos doctor``."""
        return "estimated, calibrated against the backend's own counts"

    def exact_tokenizer(self, model: str) -> Any | None:
        """A ``TokenCounter`` that counts exactly for ``model``, or None when the backend
        cannot tokenize locally (the kernel then calibrates an estimate)."""
        return None

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and engines."""
