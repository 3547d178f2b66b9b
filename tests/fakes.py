"""A deterministic in-process model driver for kernel unit tests.

It behaves like a small Ollama: it tokenizes prompts with a fixed rule, reports
``prompt_eval_count``, honours ``num_predict``, continues a prefilled assistant message, and
can be told to break mid-stream. Integration tests use the real client against
``tests.ollama_server`` instead.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, field

from llmos.drivers.base import (
    ChatChunk,
    ChatRequest,
    ChatStats,
    LoadedModel,
    Message,
    ModelDriver,
    ModelInfo,
    ModelNotFound,
    PullProgress,
    StreamBroken,
    Tool,
)

_PIECE = re.compile(r"\s*(?:\w+|[^\w\s])")


def tokens_of(text: str) -> list[str]:
    """Split text into tokens, whitespace attached, so ''.join(tokens) == text.strip-ish."""
    return _PIECE.findall(text)


def count_text(text: str) -> int:
    return len(tokens_of(text))


def count_prompt(messages: Sequence[Message], tools: Sequence[Tool] | None = None) -> int:
    """The fake chat template: 4 tokens a message, 3 to open the answer (none on prefill),
    and the tool schemas' JSON plus 10 when tools are offered."""
    total = sum(4 + count_text(str(m.get("content") or "")) for m in messages)
    if tools:
        total += 10 + count_text(json.dumps(list(tools)))
    if messages and messages[-1].get("role") == "assistant":
        return total - 2
    return total + 3


def default_answer(messages: Sequence[Message], words: int = 30) -> str:
    """A deterministic answer derived from the last user message."""
    last = next((m for m in reversed(messages) if m.get("role") == "user"), {"content": ""})
    seed = re.findall(r"\w+", str(last.get("content"))) or ["empty"]
    return " ".join(f"{seed[i % len(seed)]}{i}" for i in range(words)) + "."


@dataclass
class FakeModel:
    name: str
    context_length: int = 32768
    capabilities: frozenset[str] = frozenset({"completion", "tools"})


@dataclass
class FakeDriver(ModelDriver):
    """An in-process backend. ``token_delay`` seconds pass between streamed tokens."""

    models: list[FakeModel] = field(
        default_factory=lambda: [
            FakeModel("fake-chat:1b", 32768),
            FakeModel("fake-embed", 2048, frozenset({"embedding"})),
        ]
    )
    token_delay: float = 0.0
    answer: Callable[[Sequence[Message]], str] = default_answer
    break_after: int | None = None
    """Tokens to stream before the next call breaks (one-shot)."""
    report_prompt: bool = True
    requests: list[ChatRequest] = field(default_factory=list)
    reported: list[int] = field(default_factory=list)
    active: int = 0
    """Calls streaming right now."""
    closed_early: int = 0
    """Calls whose consumer stopped reading before the end."""

    kind = "fake"

    @property
    def location(self) -> str:
        return "memory://fake"

    def _find(self, name: str) -> FakeModel:
        for model in self.models:
            if model.name == name:
                return model
        raise ModelNotFound(name, f"The model '{name}' is not installed.")

    async def chat(self, request: ChatRequest) -> AsyncGenerator[ChatChunk, None]:
        self._find(request.model)
        self.requests.append(request)
        messages = list(request.messages)
        prefill = ""
        if messages and messages[-1].get("role") == "assistant":
            prefill = str(messages[-1].get("content") or "")
            messages = messages[:-1]
        full = self.answer(messages)
        rest = full[len(prefill) :] if full.startswith(prefill) else full
        pieces = tokens_of(rest)
        limit = request.options.get("num_predict")
        reason = "stop"
        if limit is not None and limit >= 0 and len(pieces) > limit:
            pieces, reason = pieces[:limit], "length"
        prompt = count_prompt(request.messages, request.tools)
        self.reported.append(prompt)
        fail_at, self.break_after = self.break_after, None
        self.active += 1
        finished = False
        try:
            for index, piece in enumerate(pieces):
                if fail_at is not None and index == fail_at:
                    raise StreamBroken("The connection to the fake backend broke.")
                if self.token_delay:
                    await asyncio.sleep(self.token_delay)
                else:
                    await asyncio.sleep(0)
                yield ChatChunk(content=piece)
            finished = True
            yield ChatChunk(
                done=True,
                stats=ChatStats(
                    prompt_tokens=prompt if self.report_prompt else None,
                    completion_tokens=len(pieces),
                    done_reason=reason,
                ),
            )
        finally:
            self.active -= 1
            if not finished:
                self.closed_early += 1

    async def embed(self, model: str, texts: Sequence[str]) -> list[list[float]]:
        self._find(model)
        return [[float(len(text)), 1.0] for text in texts]

    async def list_models(self) -> list[ModelInfo]:
        return [await self.model_info(m.name) for m in self.models]

    async def model_info(self, name: str) -> ModelInfo:
        model = self._find(name)
        return ModelInfo(
            name=model.name, context_length=model.context_length, capabilities=model.capabilities
        )

    async def loaded_models(self) -> list[LoadedModel]:
        return []

    async def pull(self, name: str) -> AsyncGenerator[PullProgress, None]:
        yield PullProgress(status="success")

    async def delete(self, name: str) -> None:
        self.models.remove(self._find(name))

    async def version(self) -> str:
        return "fake"
