"""The embedded engine: llama.cpp in this process (llama-cpp-python), for machines without
Ollama.

One model, one generation at a time (one scheduler slot). Loading and generation run in a
worker thread; tokens come back to the event loop one by one. Cancelling the stream (a kill,
a preemption) sets a flag that llama.cpp's abort callback and the token loop both check, so
generation stops within one token, even in the middle of evaluating a long prompt.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import ctypes
import json
import logging
import os
import re
import threading
import time
from collections import deque
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
)
from llmos.drivers.gguf_counter import TemplateCounter, load_vocab

log = logging.getLogger(__name__)

# Ollama's sampling defaults, so the two engines answer alike.
_SAMPLING_DEFAULTS = {
    "temperature": 0.8,
    "top_k": 40,
    "top_p": 0.9,
    "min_p": 0.0,
    "repeat_penalty": 1.1,
}
_TOOL_CALL = re.compile(r"<tool_call>\s*(\{.*?\})\s*</tool_call>", re.DOTALL)


def engine_available() -> bool:
    """True when llama-cpp-python is installed (the ``[embedded]`` extra)."""
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None


WAKE_INTERVAL = 1 / 30
"""Seconds between wake-ups of the event loop for new tokens (about one per display frame).
Waking it for every token took ~4% off the token rate on 2 cores: the loop's thread
competes with llama.cpp's compute threads."""


@dataclass
class _Generation:
    """One generation's hand-off between the worker thread and the event loop.

    The worker appends items and wakes the loop at most once per ``WAKE_INTERVAL`` (at once
    for the first token and for the end), so a token waits at most one token's time. The
    worker always ends with a ``done`` or ``error`` item, whatever happens.
    """

    loop: asyncio.AbstractEventLoop
    items: deque[tuple[str, Any]] = field(default_factory=deque)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    abort_callback: Any = None
    """llama.cpp's abort callback for this generation only, so a stop meant for one
    generation can never abort the next."""
    _woken: float = 0.0

    def send(self, kind: str, value: Any = None) -> None:
        self.items.append((kind, value))
        now = time.perf_counter()
        if kind != "token" or now - self._woken >= WAKE_INTERVAL:
            self._woken = now
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody listens
                self.loop.call_soon_threadsafe(self.ready.set)

    async def receive(self) -> tuple[str, Any]:
        while not self.items:
            self.ready.clear()
            if self.items:  # appended between the check and the clear
                break
            await self.ready.wait()
        return self.items.popleft()


class EmbeddedDriver(ModelDriver):
    """Runs one GGUF model with llama.cpp.

    Args:
        model_path: the GGUF file (already verified).
        name: the model's name in LLM-OS.
        n_ctx: the engine's context size (the largest context RAM a process can get).
        threads: CPU threads for llama.cpp (default: every core this process may use;
            llama-cpp-python's own default of half the cores ran at 30 instead of 47
            tokens/s on 2 cores).
    """

    kind = "embedded"

    def __init__(
        self,
        model_path: Path,
        *,
        name: str | None = None,
        n_ctx: int = 8192,
        threads: int | None = None,
    ) -> None:
        self.model_path = model_path
        self.name = name or model_path.stem
        self._n_ctx_wanted = n_ctx
        self._threads = threads or _usable_cores()
        self._llm: Any = None
        self._embedder: Any = None
        self._counter: TemplateCounter | None = None
        self._load_lock = asyncio.Lock()
        self._busy = asyncio.Lock()
        self._current: _Generation | None = None
        self._closed = False
        self.load_seconds: float | None = None
        self.generations = 0
        """Generations started (tests and the task manager read it)."""
        self.last_generated = 0
        """Tokens the latest generation produced before it ended, however it ended."""

    @property
    def location(self) -> str:
        return str(self.model_path)

    # -- loading ---------------------------------------------------------------------------

    async def load(self) -> None:
        """Load the model once, off the event loop (later calls return at once)."""
        if self._closed:
            raise BackendUnavailable("The embedded engine has been shut down.")
        if self._llm is not None:
            return
        async with self._load_lock:
            if self._llm is None:
                started = time.perf_counter()
                self._llm, self._counter = await asyncio.to_thread(self._load)
                self.load_seconds = time.perf_counter() - started

    def _load(self) -> tuple[Any, TemplateCounter]:
        llama_cpp = _llama_cpp()
        try:
            vocab = load_vocab(self.model_path)
            trained = _trained_context(vocab.metadata)
            n_ctx = min(self._n_ctx_wanted, trained) if trained else self._n_ctx_wanted
            llm = llama_cpp.Llama(
                str(self.model_path),
                n_ctx=n_ctx,
                n_threads=self._threads,
                n_threads_batch=self._threads,
                n_batch=256,
                verbose=False,
            )
            counter = TemplateCounter(vocab)
        except (ValueError, RuntimeError, OSError) as error:
            raise BackendUnavailable(
                f"The embedded engine could not load {self.model_path.name}: {error}.",
                hint="Check that the file is a complete GGUF model.",
            ) from None
        return llm, counter

    async def close(self) -> None:
        """Stop any generation at its next token, wait for it, and free the model."""
        self._closed = True
        if self._current is not None:
            self._current.stop.set()
        async with self._busy:
            self._llm = None
            self._embedder = None

    # -- chat ------------------------------------------------------------------------------

    async def prepare(self, model: str) -> None:
        await self.load()

    def exact_tokenizer(self, model: str) -> TemplateCounter | None:
        return self._counter if model == self.name else None

    def counting(self, model: str) -> str:
        return "exact, with the model's own tokenizer and chat template"

    async def chat(self, request: ChatRequest) -> AsyncGenerator[ChatChunk, None]:
        self._check_model(request.model)
        await self.load()
        assert self._counter is not None
        try:
            prompt_text = self._counter.render(request.messages, request.tools)
        except Exception as error:  # the template's own raise_exception, or a Jinja error
            raise RequestRejected(
                f"The model's chat template cannot lay out this conversation: {error}."
            ) from None
        tokens = self._counter.tokenize_prompt(prompt_text)
        options = request.options
        limit = _int(options.get("num_predict")) or -1
        n_ctx = self._llm.n_ctx()
        if len(tokens) >= n_ctx:
            raise RequestRejected(
                f"The prompt is {len(tokens)} tokens; the embedded engine holds {n_ctx}."
            )
        if limit < 0 or len(tokens) + limit > n_ctx:
            limit = n_ctx - len(tokens)

        await self._busy.acquire()
        llm = self._llm
        if llm is None:  # closed while we waited
            self._busy.release()
            raise BackendUnavailable("The embedded engine has been shut down.")
        self.generations += 1
        generation = _Generation(asyncio.get_running_loop())
        self._current = generation
        worker = asyncio.create_task(
            asyncio.to_thread(self._generate, llm, tokens, limit, options, generation)
        )
        # The engine stays busy until the worker has really stopped, even if we stop
        # reading first; the next generation waits for that.
        worker.add_done_callback(lambda _: self._busy.release())
        text: list[str] = []
        # While an answer may still turn out to be a tool call, its tokens are held back
        # (as Ollama does): the user should not watch a call's JSON stream past.
        held: list[str] = []
        holding = bool(request.tools)
        finished = False
        try:
            while True:
                kind, value = await generation.receive()
                if kind == "token":
                    text.append(value)
                    if holding:
                        held.append(value)
                        if _may_be_call("".join(held)):
                            continue
                        holding = False
                        value, held = "".join(held), []
                    yield ChatChunk(content=value)
                elif kind == "done":
                    finished = True
                    generated, seconds, reason = value
                    names = {str(t.get("function", {}).get("name")) for t in request.tools or ()}
                    calls = _tool_calls("".join(text), names) if request.tools else ()
                    if held and not calls:
                        yield ChatChunk(content="".join(held))
                    yield ChatChunk(
                        done=True,
                        tool_calls=calls,
                        stats=ChatStats(
                            prompt_tokens=len(tokens),
                            completion_tokens=generated,
                            done_reason=reason,
                            eval_seconds=seconds,
                        ),
                    )
                    return
                else:
                    finished = True
                    raise value
        finally:
            if not finished:
                generation.stop.set()

    def _generate(
        self,
        llm: Any,
        tokens: list[int],
        limit: int,
        options: dict[str, Any],
        generation: _Generation,
    ) -> None:
        """The worker thread: generate until an end token, the limit, or a stop request.

        Always ends by sending ``done`` or ``error``: the reader waits for one of them.
        """
        self.last_generated = 0
        try:
            self._run(llm, tokens, limit, options, generation)
        except BaseException as error:
            if generation.stop.is_set():
                generation.send("done", (self.last_generated, 0.0, "cancelled"))
            else:
                log.exception("embedded generation failed")
                generation.send(
                    "error",
                    DriverError(f"The embedded engine failed while generating: {error}."),
                )
        finally:
            self._watch_abort(llm, None)

    def _run(
        self,
        llm: Any,
        tokens: list[int],
        limit: int,
        options: dict[str, Any],
        generation: _Generation,
    ) -> None:
        import llama_cpp

        vocab = llm._model.vocab
        sampling = {**_SAMPLING_DEFAULTS, **{k: v for k, v in options.items() if v is not None}}
        if options.get("seed") is not None:
            llm.set_seed(int(options["seed"]))
        raw_stops = options.get("stop") or ()
        stops = [raw_stops] if isinstance(raw_stops, str) else [str(s) for s in raw_stops if s]
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        produced = 0
        reason = "length"
        started: float | None = None
        text = ""
        # Checked by llama.cpp between graph nodes, so a stop arrives even in the middle of
        # evaluating a long prompt. Armed only until the first token: each check takes the
        # GIL, which cost ~4% of the token rate when left on.
        self._watch_abort(llm, generation)
        for token in llm.generate(
            tokens,
            temp=float(sampling["temperature"]),
            top_k=int(sampling["top_k"]),
            top_p=float(sampling["top_p"]),
            min_p=float(sampling["min_p"]),
            repeat_penalty=float(sampling["repeat_penalty"]),
        ):
            if generation.stop.is_set():
                reason = "cancelled"
                break
            if started is None:
                started = time.perf_counter()
                self._watch_abort(llm, None)  # from here the loop checks every token
            if llama_cpp.llama_vocab_is_eog(vocab, token):
                reason = "stop"
                break
            produced += 1
            self.last_generated = produced
            piece = decoder.decode(llm.detokenize([token]))
            if piece:
                text += piece
                generation.send("token", piece)
            if stops and any(stop in text for stop in stops):
                reason = "stop"
                break
            if produced >= limit:
                break
        self.last_generated = produced
        tail = decoder.decode(b"", final=True)
        if tail:
            generation.send("token", tail)
        seconds = time.perf_counter() - started if started else 0.0
        generation.send("done", (produced, seconds, reason))

    @staticmethod
    def _watch_abort(llm: Any, generation: _Generation | None) -> None:
        import llama_cpp

        if generation is None:
            callback = llama_cpp.ggml_abort_callback()  # NULL: no checks
        else:
            stop = generation.stop
            callback = llama_cpp.ggml_abort_callback(lambda _: stop.is_set())
            generation.abort_callback = callback  # keep it alive while llama.cpp holds it
        llama_cpp.llama_set_abort_callback(llm._ctx.ctx, callback, None)

    # -- embeddings ------------------------------------------------------------------------

    async def embed(self, model: str, texts: Sequence[str]) -> list[list[float]]:
        self._check_model(model)
        if not texts:
            return []
        async with self._busy:
            if self._embedder is None:
                self._embedder = await asyncio.to_thread(self._load_embedder)
            vectors = await asyncio.to_thread(self._embedder.embed, list(texts))
        return [list(map(float, v)) for v in vectors]

    def _load_embedder(self) -> Any:
        llama_cpp = _llama_cpp()
        try:
            # Mean pooling (LLAMA_POOLING_TYPE_MEAN = 1): one vector per text.
            return llama_cpp.Llama(
                str(self.model_path), embedding=True, pooling_type=1, n_ctx=2048, verbose=False
            )
        except (ValueError, RuntimeError, OSError) as error:
            raise BackendUnavailable(
                f"The embedded engine could not load {self.model_path.name} for embeddings: "
                f"{error}."
            ) from None

    # -- models ----------------------------------------------------------------------------

    def _check_model(self, model: str) -> None:
        if model != self.name:
            raise ModelNotFound(
                model,
                f"The embedded engine runs {self.name}, not '{model}'.",
                hint="Choose a GGUF file with --model /path/to/model.gguf.",
            )

    async def model_info(self, name: str) -> ModelInfo:
        self._check_model(name)
        await self.load()
        metadata = self._llm.metadata
        capabilities = {"completion", "embedding"}
        template = metadata.get("tokenizer.chat_template") or ""
        if "tools" in template:
            capabilities.add("tools")
        return ModelInfo(
            name=self.name,
            family=metadata.get("general.architecture", ""),
            parameter_size=metadata.get("general.size_label", ""),
            quantization=_quantization(self.model_path.name),
            size_bytes=self.model_path.stat().st_size,
            context_length=self._llm.n_ctx(),
            embedding_length=_int(
                metadata.get(f"{metadata.get('general.architecture')}.embedding_length")
            ),
            capabilities=frozenset(capabilities),
        )

    async def list_models(self) -> list[ModelInfo]:
        return [await self.model_info(self.name)]

    async def loaded_models(self) -> list[LoadedModel]:
        if self._llm is None:
            return []
        return [
            LoadedModel(
                name=self.name,
                size_bytes=self.model_path.stat().st_size,
                context_length=self._llm.n_ctx(),
            )
        ]

    async def pull(self, name: str) -> AsyncGenerator[PullProgress, None]:
        raise RequestRejected(
            "The embedded engine does not download models.",
            hint="Pass a GGUF file with --model /path/to/model.gguf, or use Ollama to pull.",
        )
        yield  # pragma: no cover - makes this an async generator

    async def delete(self, name: str) -> None:
        raise RequestRejected("The embedded engine does not delete model files.")

    async def version(self) -> str:
        return f"llama-cpp-python {_llama_cpp().__version__}"


def _llama_cpp() -> Any:
    global _LOG_CALLBACK
    try:
        import llama_cpp
    except ImportError:
        raise BackendUnavailable(
            "The embedded engine is not installed.",
            hint="Install it with: pip install 'llmos[embedded]'",
        ) from None
    if _LOG_CALLBACK is None:
        # llama-cpp-python prints llama.cpp's log lines on stderr, some even with
        # verbose=False ("model default pooling_type is [-1], but [1] was specified" at each
        # embedder load). They go to Python logging instead: visible with --debug.
        def forward(level: int, text: bytes, _user_data: Any) -> None:
            native_log.debug("%s", text.decode("utf-8", "replace").rstrip())

        _LOG_CALLBACK = llama_cpp.llama_log_callback(forward)
        llama_cpp.llama_log_set(_LOG_CALLBACK, ctypes.c_void_p(0))
    return llama_cpp


_LOG_CALLBACK: Any = None
"""The ctypes callback llama.cpp logs through (kept referenced: llama.cpp holds a pointer)."""
native_log = logging.getLogger("llmos.llama_cpp")


def _usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _trained_context(metadata: dict[str, str]) -> int | None:
    return _int(metadata.get(f"{metadata.get('general.architecture')}.context_length"))


def _int(value: object) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def _quantization(filename: str) -> str:
    match = re.search(r"(q\d_k(?:_[sml])?|q\d_\d|f16|bf16|f32)", filename, re.IGNORECASE)
    return match.group(1).upper() if match else ""


_OPENING = "<tool_call>"
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


def _may_be_call(text: str) -> bool:
    """True while an answer's start could still be a tool call (tagged, or bare JSON)."""
    start = text.lstrip()
    return not start or start.startswith(("{", "[", "```", _OPENING)) or _OPENING.startswith(start)


def _tool_calls(text: str, names: set[str] | None = None) -> tuple[dict[str, Any], ...]:
    """Tool calls in the Hermes/Qwen form ``<tool_call>{"name": ..., "arguments": ...}``,
    or (small models drop the tags) an answer that is nothing but such a JSON object, or a
    list of them, naming one of the tools offered (``names``)."""
    raws = _TOOL_CALL.findall(text)
    bare = False
    if not raws and names:
        stripped = text.strip()
        fenced = _FENCE.match(stripped)
        raws, bare = [fenced.group(1) if fenced else stripped], True
    calls = []
    for raw in raws:
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError:
            continue
        for call in parsed if isinstance(parsed, list) else [parsed]:
            if not isinstance(call, dict) or not isinstance(call.get("name"), str):
                continue
            if bare and call["name"] not in (names or ()):
                continue  # plain JSON the user asked for, not a call
            arguments = call.get("arguments") or call.get("parameters") or {}
            calls.append({"function": {"name": call["name"], "arguments": arguments}})
    return tuple(calls)
