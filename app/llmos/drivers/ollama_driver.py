"""The Ollama backend, on the official client's ``AsyncClient`` over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Sequence
from typing import Any, NoReturn, cast

import httpx
import ollama

from llmos.drivers.base import (
    BackendUnavailable,
    ChatChunk,
    ChatRequest,
    ChatStats,
    DriverError,
    LoadedModel,
    ModelDriver,
    ModelInfo,
    ModelNotFound,
    PullProgress,
    RequestRejected,
    StreamBroken,
)

_NS = 1e-9
_CLIENT_ERRORS = (ollama.ResponseError, httpx.HTTPError, ConnectionError)


def parse_ollama_host(host: str | None) -> str:
    """Normalise a host the way Ollama's own clients read ``OLLAMA_HOST``.

    ``None`` or empty gives ``http://127.0.0.1:11434``; scheme and port may be omitted.
    """
    # The official client owns this rule; reuse it rather than drift from it.
    from ollama._client import _parse_host

    return str(_parse_host(host or None))


class OllamaDriver(ModelDriver):
    """Talks to an Ollama server (or anything speaking its REST API).

    Args:
        host: the server, in any form ``OLLAMA_HOST`` accepts.
        connect_timeout: seconds to wait for a connection before calling the server down.
    """

    kind = "ollama"

    def __init__(self, host: str | None = None, *, connect_timeout: float = 3.0) -> None:
        self._host = parse_ollama_host(host)
        timeout = httpx.Timeout(None, connect=connect_timeout)
        self._client = ollama.AsyncClient(host=self._host, timeout=timeout)
        self._info_cache: dict[str, ModelInfo] = {}

    @property
    def location(self) -> str:
        return self._host

    async def close(self) -> None:
        await self._client.close()

    # -- errors ----------------------------------------------------------------------------

    def _unreachable(self) -> BackendUnavailable:
        return BackendUnavailable(
            f"Ollama is not reachable at {self._host}.",
            hint="Start it with `ollama serve`, or point LLM-OS elsewhere with --ollama-host "
            "or OLLAMA_HOST.",
        )

    def _raise(self, error: BaseException, model: str = "") -> NoReturn:
        """Translate client and transport errors into DriverErrors that say what to do."""
        if isinstance(error, DriverError):
            raise error
        if isinstance(error, ollama.ResponseError):
            text = str(error.error)
            if error.status_code == 404 or ("not found" in text and model):
                name = model or text
                raise ModelNotFound(
                    name,
                    f"The model '{name}' is not installed on {self._host}.",
                    hint=f"Pull it with `llmos models pull {name}` (or `ollama pull {name}`).",
                ) from None
            raise RequestRejected(f"Ollama refused the request: {text}.") from None
        if isinstance(error, ConnectionError | httpx.ConnectError | httpx.ConnectTimeout):
            raise self._unreachable() from None
        if isinstance(error, httpx.HTTPError):
            raise StreamBroken(
                f"The connection to Ollama at {self._host} broke: {type(error).__name__}.",
                hint="Check that the server is still running, then try again.",
            ) from None
        raise error

    # -- chat ------------------------------------------------------------------------------

    async def chat(self, request: ChatRequest) -> AsyncGenerator[ChatChunk, None]:
        started = False
        try:
            response = await self._client.chat(
                model=request.model,
                messages=list(request.messages),
                tools=list(request.tools) if request.tools else None,
                options=request.options or None,
                keep_alive=request.keep_alive,
                stream=True,
            )
            stream = cast(AsyncGenerator[ollama.ChatResponse, None], response)
            # aclosing: an early close (kill, preemption) must close the HTTP stream now,
            # not when the garbage collector gets to it, so the server stops generating.
            final: ChatChunk | None = None
            async with contextlib.aclosing(stream):
                async for part in stream:
                    started = True
                    chunk = _chunk_from(part)
                    if chunk.done:
                        # Hold the final chunk until the body is read to its end, so the
                        # connection goes back to the pool even if the caller stops here.
                        final = chunk
                        continue
                    yield chunk
            if final is not None:
                yield final
                return
            raise StreamBroken(
                f"Ollama at {self._host} ended the answer without finishing it.",
                hint="The partial answer was kept; try again.",
            )
        except ollama.ResponseError as error:
            if started:
                raise StreamBroken(
                    f"Ollama stopped mid-answer: {error.error}.",
                    hint="The partial answer was kept; try again.",
                ) from None
            self._raise(error, request.model)
        except (httpx.HTTPError, ConnectionError) as error:
            self._raise(error, request.model)

    # -- embeddings ------------------------------------------------------------------------

    async def embed(self, model: str, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        try:
            response = await self._client.embed(model=model, input=list(texts))
        except _CLIENT_ERRORS as error:
            self._raise(error, model)
        return [list(vector) for vector in response.embeddings]

    # -- models ----------------------------------------------------------------------------

    async def version(self) -> str:
        try:
            response = await self._client._client.get("/api/version")
            response.raise_for_status()
        except httpx.HTTPStatusError:
            return "unknown"
        except (httpx.HTTPError, ConnectionError) as error:
            self._raise(error)
        return str(response.json().get("version", "unknown"))

    async def model_info(self, name: str) -> ModelInfo:
        if name in self._info_cache:
            return self._info_cache[name]
        try:
            shown = await self._client.show(name)
        except _CLIENT_ERRORS as error:
            self._raise(error, name)
        info = _model_info_from_show(name, shown)
        self._info_cache[name] = info
        return info

    async def list_models(self) -> list[ModelInfo]:
        try:
            listed = await self._client.list()
        except _CLIENT_ERRORS as error:
            self._raise(error)
        names = [entry.model for entry in listed.models if entry.model]
        details = await asyncio.gather(*(self.model_info(name) for name in names))
        sizes = {entry.model: int(entry.size or 0) for entry in listed.models}
        return [
            ModelInfo(
                name=info.name,
                family=info.family,
                parameter_size=info.parameter_size,
                quantization=info.quantization,
                size_bytes=sizes.get(info.name, 0),
                context_length=info.context_length,
                embedding_length=info.embedding_length,
                capabilities=info.capabilities,
            )
            for info in details
        ]

    async def loaded_models(self) -> list[LoadedModel]:
        try:
            response = await self._client.ps()
        except _CLIENT_ERRORS as error:
            self._raise(error)
        return [
            LoadedModel(
                name=entry.model or entry.name or "",
                size_bytes=int(entry.size or 0),
                vram_bytes=int(entry.size_vram or 0),
                context_length=entry.context_length,
                expires_at=entry.expires_at.isoformat() if entry.expires_at else "",
            )
            for entry in response.models
        ]

    async def pull(self, name: str) -> AsyncGenerator[PullProgress, None]:
        try:
            stream = await self._client.pull(name, stream=True)
            async for step in stream:
                yield PullProgress(
                    status=step.status or "",
                    completed=step.completed,
                    total=step.total,
                    digest=step.digest or "",
                )
        except ollama.ResponseError as error:
            if "file does not exist" in str(error.error) or error.status_code == 404:
                raise ModelNotFound(
                    name,
                    f"There is no model called '{name}' in the Ollama library.",
                    hint="Check the name and tag (for example `qwen2.5:0.5b`).",
                ) from None
            self._raise(error, name)
        except (httpx.HTTPError, ConnectionError) as error:
            self._raise(error, name)
        self._info_cache.pop(name, None)

    async def delete(self, name: str) -> None:
        try:
            await self._client.delete(name)
        except _CLIENT_ERRORS as error:
            self._raise(error, name)
        self._info_cache.pop(name, None)


def _chunk_from(part: ollama.ChatResponse) -> ChatChunk:
    message = part.message
    calls: tuple[dict[str, Any], ...] = ()
    if message.tool_calls:
        calls = tuple(call.model_dump(exclude_none=True) for call in message.tool_calls)
    stats = None
    if part.done:
        stats = ChatStats(
            prompt_tokens=part.prompt_eval_count,
            cached_prompt_tokens=getattr(part, "prompt_eval_cached_count", None),
            completion_tokens=part.eval_count,
            done_reason=part.done_reason or "",
            eval_seconds=part.eval_duration * _NS if part.eval_duration else None,
            total_seconds=part.total_duration * _NS if part.total_duration else None,
        )
    return ChatChunk(
        content=message.content or "",
        thinking=message.thinking or "",
        tool_calls=calls,
        done=bool(part.done),
        stats=stats,
    )


def _model_info_from_show(name: str, shown: ollama.ShowResponse) -> ModelInfo:
    info = dict(shown.modelinfo or {})
    arch = str(info.get("general.architecture") or "")
    if not arch:
        # Some servers omit general.architecture; the keys themselves name it.
        arch = next((key.split(".")[0] for key in info if key.endswith(".context_length")), "")
    details = shown.details
    context = info.get(f"{arch}.context_length") if arch else None
    embedding = info.get(f"{arch}.embedding_length") if arch else None
    return ModelInfo(
        name=name,
        family=(details.family if details else "") or arch,
        parameter_size=(details.parameter_size if details else "") or "",
        quantization=(details.quantization_level if details else "") or "",
        context_length=int(context) if context else None,
        embedding_length=int(embedding) if embedding else None,
        capabilities=frozenset(shown.capabilities or ()),
    )
