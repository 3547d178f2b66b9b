"""The Ollama backend, on the official client's ``AsyncClient`` over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import shlex
from collections.abc import AsyncGenerator, Sequence
from pathlib import Path
from typing import Any, NoReturn, cast
from urllib.parse import urlsplit

import httpx
import pydantic

try:
    import ollama
except ValueError:
    # The official package builds a default client from OLLAMA_HOST as it is imported, so a
    # malformed OLLAMA_HOST breaks the import itself. Import it without that variable; the
    # settings then say what is wrong with the value.
    _malformed_host = os.environ.pop("OLLAMA_HOST", None)
    try:
        import ollama
    finally:
        if _malformed_host is not None:
            os.environ["OLLAMA_HOST"] = _malformed_host

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
    ProtocolMismatch,
    PullProgress,
    RequestRejected,
    StreamBroken,
)
from llmos.drivers.embedded_driver import engine_available
from llmos.drivers.gguf_counter import TemplateCounter, load_vocab

log = logging.getLogger(__name__)

_NS = 1e-9
_CLIENT_ERRORS = (ollama.ResponseError, httpx.HTTPError, ConnectionError, ValueError)
"""What the client raises: HTTP and transport errors, and ValueError for a body that is not
Ollama's JSON (json and pydantic errors are ValueErrors) or for input it cannot send."""
CONTROL_TIMEOUT = 10.0
"""Seconds a quick request (version, tags, show, ps, delete) may take."""
STREAM_IDLE_TIMEOUT = 600.0
"""Seconds a generation may stay silent (a large model loading on a CPU can take minutes)."""


def parse_ollama_host(host: str | None) -> str:
    """Normalise a host the way Ollama's own clients read ``OLLAMA_HOST``.

    ``None`` or empty gives ``http://127.0.0.1:11434``; scheme and port may be omitted.
    """
    # The official client owns this rule; reuse it rather than drift from it.
    from ollama._client import _parse_host

    try:
        url = str(_parse_host(host or None))
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as error:
        raise ValueError(f"'{host}' is not a valid host ({error})") from None
    if not parts.hostname:
        raise ValueError(f"'{host}' is not a valid host")
    return url


class OllamaDriver(ModelDriver):
    """Talks to an Ollama server (or anything speaking its REST API).

    Args:
        host: the server, in any form ``OLLAMA_HOST`` accepts.
        connect_timeout: seconds to wait for a connection before calling the server down.
        control_timeout: seconds a quick request (version, tags, show, ps) may take.
    """

    kind = "ollama"

    def __init__(
        self,
        host: str | None = None,
        *,
        connect_timeout: float = 3.0,
        control_timeout: float = CONTROL_TIMEOUT,
    ) -> None:
        self._host = parse_ollama_host(host)
        # Two clients: generations may stay silent for minutes while a model loads, but a
        # status question to a server that accepts and never answers must not hang forever.
        self._client = ollama.AsyncClient(
            host=self._host, timeout=httpx.Timeout(STREAM_IDLE_TIMEOUT, connect=connect_timeout)
        )
        self._control = ollama.AsyncClient(
            host=self._host, timeout=httpx.Timeout(control_timeout, connect=connect_timeout)
        )
        self._info_cache: dict[str, ModelInfo] = {}
        self._blobs: dict[str, Path] = {}
        self._counters: dict[str, TemplateCounter] = {}

    @property
    def location(self) -> str:
        return self._host

    async def close(self) -> None:
        await self._client.close()
        await self._control.close()

    # -- errors ----------------------------------------------------------------------------

    def _unreachable(self) -> BackendUnavailable:
        return BackendUnavailable(
            f"Ollama is not reachable at {self._host}.",
            hint="Start it with `ollama serve`, or point LLM-OS elsewhere with --ollama-host "
            "or OLLAMA_HOST.",
        )

    def _not_ollama(self, detail: str) -> ProtocolMismatch:
        return ProtocolMismatch(
            f"The server at {self._host} does not answer like Ollama ({detail}).",
            hint="Check that --ollama-host or OLLAMA_HOST points at an Ollama server.",
        )

    def _raise(self, error: BaseException, model: str = "") -> NoReturn:
        """Translate client and transport errors into DriverErrors that say what to do."""
        if isinstance(error, DriverError):
            raise error
        if isinstance(error, ollama.ResponseError):
            text = str(error.error).strip()
            if error.status_code == 404 and model and _says_model_missing(text, model):
                quoted = shlex.quote(model)
                raise ModelNotFound(
                    model,
                    f"The model '{model}' is not installed on {self._host}.",
                    hint=f"Pull it with `llmos models pull {quoted}` (or `ollama pull {quoted}`).",
                ) from None
            if error.status_code == 404:
                raise self._not_ollama(f"HTTP 404: {_shorten(text)}") from None
            raise RequestRejected(f"Ollama refused the request: {_shorten(text)}.") from None
        if isinstance(error, httpx.TimeoutException) and not isinstance(
            error, httpx.ConnectTimeout
        ):
            raise BackendUnavailable(
                f"Ollama at {self._host} accepted the connection but did not answer in time.",
                hint="Check that the server is healthy (restart `ollama serve`).",
            ) from None
        if isinstance(error, ConnectionError | httpx.ConnectError | httpx.ConnectTimeout):
            raise self._unreachable() from None
        if isinstance(error, httpx.HTTPError):
            raise StreamBroken(
                f"The connection to Ollama at {self._host} broke: {type(error).__name__}.",
                hint="Check that the server is still running, then try again.",
            ) from None
        if isinstance(error, json.JSONDecodeError | pydantic.ValidationError):
            raise self._not_ollama(f"unexpected reply: {type(error).__name__}") from None
        if isinstance(error, ValueError):
            raise RequestRejected(f"The request cannot be sent: {error}.") from None
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
        except _CLIENT_ERRORS as error:
            if started and not isinstance(error, httpx.HTTPError | ConnectionError):
                detail = error.error if isinstance(error, ollama.ResponseError) else error
                raise StreamBroken(
                    f"Ollama stopped mid-answer: {_shorten(str(detail))}.",
                    hint="The partial answer was kept; try again.",
                ) from None
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
        # The official client has no version call; its own httpx client has the host and
        # timeouts set already.
        try:
            response = await self._control._client.get("/api/version")
            response.raise_for_status()
            body = response.json()
        except httpx.HTTPStatusError as error:
            raise self._not_ollama(f"HTTP {error.response.status_code} on /api/version") from None
        except _CLIENT_ERRORS as error:
            self._raise(error)
        if not isinstance(body, dict) or "version" not in body:
            raise self._not_ollama("no version in /api/version")
        return str(body["version"])

    async def model_info(self, name: str) -> ModelInfo:
        if name in self._info_cache:
            return self._info_cache[name]
        try:
            shown = await self._control.show(name)
        except _CLIENT_ERRORS as error:
            self._raise(error, name)
        info = _model_info_from_show(name, shown)
        self._info_cache[name] = info
        blob = _local_blob(shown.modelfile or "")
        if blob is not None:
            self._blobs[name] = blob
        return info

    # -- exact counting --------------------------------------------------------------------

    async def prepare(self, model: str) -> None:
        """Load the model's vocabulary for exact counts when Ollama runs on this machine and
        its GGUF blob is readable."""
        blob = self._blobs.get(model)
        if blob is None or model in self._counters or not engine_available():
            return
        try:
            vocab = await asyncio.to_thread(load_vocab, blob)
            self._counters[model] = await asyncio.to_thread(TemplateCounter, vocab)
        except Exception:  # an odd GGUF: counting falls back to calibration
            log.warning("cannot read the vocabulary of %s from %s", model, blob, exc_info=True)

    def exact_tokenizer(self, model: str) -> TemplateCounter | None:
        counter = self._counters.get(model)
        return counter if counter is not None and counter.trusted else None

    def counting(self, model: str) -> str:
        counter = self._counters.get(model)
        if counter is not None and not counter.trusted:
            return "estimated: Ollama's counts differ from the GGUF template's, so calibrated"
        if model in self._blobs and engine_available():
            return f"exact, with the model's own tokenizer ({self._blobs[model]})"
        if model in self._blobs:
            return "estimated and calibrated (install llmos[embedded] for exact counts)"
        return "estimated, calibrated against Ollama's own counts"

    async def list_models(self) -> list[ModelInfo]:
        try:
            listed = await self._control.list()
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
            response = await self._control.ps()
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
            response = await self._client.pull(name, stream=True)
            stream = cast(AsyncGenerator[ollama.ProgressResponse, None], response)
            # Closed here, in this task, however the loop ends (a cancelled pull stops the
            # download at once). An error line from the server still leaves ollama-python's
            # inner line iterator to the event loop's finalizer, which closes it from another
            # task; anyio then logs "exit cancel scope in a different task" (harmless here).
            async with contextlib.aclosing(stream):
                async for step in stream:
                    yield PullProgress(
                        status=step.status or "",
                        completed=step.completed,
                        total=step.total,
                        digest=step.digest or "",
                    )
        except _CLIENT_ERRORS as error:
            if isinstance(error, ollama.ResponseError) and "file does not exist" in str(
                error.error
            ):
                raise ModelNotFound(
                    name,
                    f"There is no model called '{name}' in the Ollama library.",
                    hint="Check the name and tag (for example `qwen2.5:0.5b`).",
                ) from None
            self._raise(error, name)
        self._info_cache.pop(name, None)

    async def delete(self, name: str) -> None:
        try:
            await self._control.delete(name)
        except _CLIENT_ERRORS as error:
            self._raise(error, name)
        self._info_cache.pop(name, None)


def _local_blob(modelfile: str) -> Path | None:
    """The GGUF file a local Ollama serves a model from (the modelfile's FROM line), if this
    process can read it."""
    match = re.search(r"^FROM\s+(\S.*?)\s*$", modelfile, re.MULTILINE)
    if not match:
        return None
    path = Path(match.group(1))
    try:
        with path.open("rb") as blob:
            return path if blob.read(4) == b"GGUF" else None
    except OSError:
        return None


def _says_model_missing(text: str, model: str) -> bool:
    """Ollama's 404 for a model reads "model 'x' not found"; a 404 page does not."""
    return "not found" in text and ("model" in text or model in text)


def _shorten(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
