"""A fake Ollama server speaking the real Ollama REST protocol, for tests and benchmarks.

The server follows Ollama's documented HTTP API (``docs/api.md`` of ollama/ollama) closely
enough that the real ``ollama.Client`` / ``ollama.AsyncClient`` can be pointed at it over
real HTTP on 127.0.0.1.  It is standard-library only: an ``http.server.ThreadingHTTPServer``
running in a daemon thread, HTTP/1.1 with keep-alive, ``TCP_NODELAY`` on accepted sockets,
streamed answers as NDJSON with ``Transfer-Encoding: chunked`` (one chunk per line, written
immediately) and non-streamed answers with ``Content-Length``.  No request sleeps unless
``token_delay`` is set.

Public API
==========

``ModelSpec(name, family="llama", context_length=4096, capabilities=["completion"],
embedding_length=0, parameter_size="1B", quantization_level="Q4_K_M", size=0, digest="",
modified_at="2025-01-01T00:00:00Z")``
    Dataclass describing a served model.  ``arch`` is an alias of ``family``; it prefixes
    the ``model_info`` keys of ``/api/show`` (``f"{arch}.context_length"`` and, when
    non-zero, ``f"{arch}.embedding_length"``).  ``size`` (bytes) and ``digest`` (64 hex
    chars) are derived from the name / parameter size when left empty.

``DEFAULT_MODELS: dict[str, ModelSpec]``
    ``qwen2.5:0.5b`` (qwen2, ctx 32768, completion+tools), ``llava:7b`` (llama, ctx 4096,
    completion+vision), ``nomic-embed-text:latest`` (nomic-bert, ctx 2048, embedding, 768
    dims), ``tiny:latest`` (llama, ctx 2048, completion only).

``DEFAULT_PULLABLE: dict[str, ModelSpec]``
    Models that ``/api/pull`` can fetch: ``smollm2:135m`` (llama, ctx 8192, completion+tools).
    Served and deleted models can be pulled (back) too.

``PULL_ERROR``, ``NO_VISION_ERROR``
    The error strings of an unknown pull and of images sent to a non-vision model.

``count_tokens(text: str) -> int``
    Deterministic toy tokenizer.  ``text`` is split into pieces with the regex
    ``\\w+|[^\\w\\s]`` (Unicode-aware: non-ASCII letters and digits are word characters,
    whitespace is free).  A word piece of ``L`` characters costs ``ceil(L / 6)`` tokens, every
    other (punctuation/symbol) piece costs 1 token.  Examples: ``"Hello, world!"`` -> 4,
    ``"internationalization"`` -> 4, ``"héllo wörld"`` -> 2, ``""`` -> 0.

``split_tokens(text: str) -> list[str]``
    The streaming split matching ``count_tokens``: every piece carries the whitespace that
    precedes it, words longer than 6 characters are cut into 6-character chunks and trailing
    whitespace is attached to the last piece, so ``"".join(split_tokens(t)) == t`` and
    ``len(split_tokens(t)) == count_tokens(t)`` (except for whitespace-only ``t``, which
    yields ``[t]``).

``count_prompt_tokens(messages, tools=None) -> int``
    Chat-template prompt size, exactly::

        sum over messages m of
            4                                   # 3 opening + 1 closing template tokens
          + count_tokens(m["content"] or "")
          + count_tokens(json.dumps(m["tool_calls"], ensure_ascii=False))  # if present
          + 256 * len(m["images"])                                         # if present
        + 3                                     # assistant generation prompt
        + count_tokens(json.dumps(tools, ensure_ascii=False)) + 10         # if tools

    If the last message is an assistant message (a *prefill*), it gets no closing token
    (3 instead of 4) and the 3 generation-prompt tokens are not added.  ``tools`` and
    ``tool_calls`` are counted as received in the request body (i.e. after the client's own
    serialization).

``default_responder(model, messages, tools) -> str``
    Deterministic answer: ``f"Reply {n}: "`` (``n`` = number of user messages) followed by
    words taken from the last user message and a fixed vocabulary, ending with ``"."``,
    about 20-40 tokens long, seeded by a SHA-256 of the conversation (same conversation, same
    answer).

``OllamaTestServer(models=None, *, token_delay=0.0, default_num_ctx=4096,
report_prompt_eval="full", port=0, pullable=None, verbose=False)``
    ``models``/``pullable`` accept a ``dict[str, ModelSpec]`` or an iterable of ``ModelSpec``.
    Methods: ``start() -> OllamaTestServer``, ``stop() -> None``, ``reset() -> None``; usable
    as a context manager (``with OllamaTestServer() as srv:``).  After ``start()``: ``host``
    (``"http://127.0.0.1:PORT"``) and ``port``.

    Settable at runtime:

    * ``token_delay: float`` - seconds slept before each generated token.
    * ``report_prompt_eval: str`` - ``"full"``: ``prompt_eval_count`` is the whole (possibly
      truncated) prompt and an extra raw-JSON field ``prompt_eval_cached_count`` gives the
      number of leading prompt tokens shared with the previous request of that model (its
      prompt plus generated tokens, like a KV cache; at most prompt-1).  ``"omit_on_cache"``:
      ``prompt_eval_count`` omitted when that cached count is > 0 (older Ollama; note that
      the shared template tokens of a same-model conversation count as cached).  ``"none"``:
      never reported.  (The ``ollama`` client models drop the non-standard extra field.)
    * ``fail_next: dict | None`` - one-shot fault for the next ``/api/chat`` or
      ``/api/embed`` request: ``{"kind": "break", "after_tokens": n}`` closes the socket
      after ``n`` streamed token lines (no final line, no terminating chunk);
      ``{"kind": "error", "after_tokens": n, "message": "..."}`` sends ``{"error": ...}`` as
      an NDJSON line after ``n`` tokens then ends the stream cleanly;
      ``{"kind": "http", "status": 500, "message": "..."}`` answers with that status and
      ``{"error": message}``.  For non-streamed requests "break" closes the connection
      without an answer and "error" answers HTTP 500.
    * ``responder`` - ``(model, messages, tools) -> str | dict``; a dict is
      ``{"tool_calls": [...], "content": ""}`` (tool calls may be ``{"function": {"name",
      "arguments"}}`` or just ``{"name", "arguments"}``).
    * ``version: str`` - reported by ``/api/version`` (``"0.12.6"``).

    Read-only state: ``requests`` - list (append-only, guarded by a lock) of dicts, one per
    ``/api/chat``, ``/api/embed`` and ``/api/embeddings`` request, with keys ``path``,
    ``model``, ``body`` (parsed JSON), ``num_ctx`` (options.num_ctx or ``default_num_ctx``),
    ``num_predict`` (or None), ``prompt_tokens`` (``count_prompt_tokens`` of what was sent;
    for embeddings the sum of ``count_tokens`` of the inputs), ``truncated`` (bool), plus
    ``effective_num_ctx`` (``min(num_ctx, model context_length)`` like Ollama's clamp),
    ``prompt_eval_tokens`` (after truncation), ``cached_tokens``, ``kept_messages``,
    ``stream``, ``status``, ``fault``, ``eval_count``, ``done_reason`` and ``content``
    (the text generated by this request).  ``connections_accepted: int`` counts accepted
    TCP connections (keep-alive check).

Generation semantics (``/api/chat``)
====================================

* Unknown model -> 404 ``{"error": "model 'NAME' not found"}``; embedding-only model -> 400
  ``"NAME" does not support chat``; tools for a model without the "tools" capability ->
  400 ``"NAME" does not support tools``; ``think`` without "thinking" -> 400 ``... does not
  support thinking``; images for a non-vision model -> 400
  ``this model is missing data required for image input``.  Names without a tag get
  ``:latest``.  Empty ``messages`` only loads (``done_reason: "load"``) or, with
  ``keep_alive: 0``, unloads (``"unload"``) the model.
* If the prompt exceeds ``effective_num_ctx`` the oldest non-system messages (never the last
  one) are dropped until it fits, and the log entry gets ``truncated=True``; if it still
  does not fit it is hard-cut to the context size, keeping the first 4 and the most recent
  tokens (also ``truncated=True``).
* The answer is split with ``split_tokens``; one NDJSON line per token, stopping after
  ``options.num_predict`` tokens (``done_reason: "length"``, else ``"stop"``).  The final
  line has ``done: true``, empty content, ``done_reason``, ``total_duration``,
  ``load_duration``, ``prompt_eval_count`` (per ``report_prompt_eval``),
  ``prompt_eval_duration`` (synthetic, 20 us per non-cached token), ``eval_count`` (tokens
  generated) and ``eval_duration`` (wall clock since the request arrived, ns).
* The responder sees the messages kept after truncation.  Prefill: if the last message is
  an assistant message with content ``P``, the answer is computed from the conversation
  without it; if ``P`` is a prefix of that answer only the remainder is generated,
  otherwise the full answer is generated.
* Tool calls are emitted in one chunk (after any content tokens), then the final line;
  their JSON counts towards ``eval_count``; a ``num_predict`` cut drops them.

Other endpoints: ``/api/embed``, ``/api/embeddings`` (legacy), ``/api/tags``, ``/api/show``,
``/api/ps``, ``/api/version``, ``GET /`` ("Ollama is running"), ``/api/pull``,
``DELETE /api/delete``.  Embeddings are deterministic unit vectors (feature hashing of the
words plus a small text-hash component, so texts sharing words are similar).

CLI: ``python -m tests.ollama_server --port 11434 [--token-delay 0.05] [--verbose]``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import hashlib
import json
import math
import random
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = [
    "DEFAULT_MODELS",
    "DEFAULT_PULLABLE",
    "NO_VISION_ERROR",
    "PULL_ERROR",
    "ModelSpec",
    "OllamaTestServer",
    "count_prompt_tokens",
    "count_tokens",
    "default_responder",
    "split_tokens",
]

Responder = Callable[[str, list[dict[str, Any]], list[Any] | None], str | dict[str, Any]]
"""Signature of ``OllamaTestServer.responder``."""

WORD_CHUNK = 6
"""Characters per token inside a word piece."""
MESSAGE_OPEN_TOKENS = 3
MESSAGE_CLOSE_TOKENS = 1
GENERATION_PROMPT_TOKENS = 3
TOOLS_OVERHEAD_TOKENS = 10
IMAGE_TOKENS = 256
PROMPT_EVAL_NS_PER_TOKEN = 20_000
LOAD_NS = 1_000_000
DEFAULT_KEEP_ALIVE_S = 300.0
PULL_ERROR = "pull model manifest: file does not exist"
NO_VISION_ERROR = "this model is missing data required for image input"

_PIECE_RE = re.compile(r"\w+|[^\w\s]")
_SPLIT_RE = re.compile(r"(\s*)(\w+|[^\w\s])")
_WORD_RE = re.compile(r"\w+")
_SIZE_RE = re.compile(r"^\s*([\d.]+)\s*([KMBT]?)\s*$", re.IGNORECASE)
_DURATION_RE = re.compile(r"(-?[\d.]+)(ns|us|µs|ms|s|m|h)")


# --------------------------------------------------------------------------- tokenizer


def count_tokens(text: str) -> int:
    """Count tokens: regex pieces ``\\w+|[^\\w\\s]``, a word of L chars costs ceil(L/6)."""
    total = 0
    for match in _PIECE_RE.finditer(text or ""):
        total += -(-len(match.group()) // WORD_CHUNK)
    return total


def split_tokens(text: str) -> list[str]:
    """Split ``text`` into streamable tokens whose concatenation is exactly ``text``."""
    pieces: list[str] = []
    end = 0
    for match in _SPLIT_RE.finditer(text):
        space, core = match.group(1), match.group(2)
        chunks = [core[i : i + WORD_CHUNK] for i in range(0, len(core), WORD_CHUNK)]
        chunks[0] = space + chunks[0]
        pieces.extend(chunks)
        end = match.end()
    tail = text[end:]
    if tail:
        if pieces:
            pieces[-1] += tail
        else:
            pieces.append(tail)
    return pieces


def _prompt_pieces(text: str) -> list[str]:
    """Tokens of ``text`` for prompt accounting (empty for whitespace-only text)."""
    return split_tokens(text) if count_tokens(text) else []


def _dumps(obj: Any) -> str:
    """JSON text used for counting tool definitions and tool calls."""
    return json.dumps(obj, ensure_ascii=False)


def _content_of(message: Mapping[str, Any]) -> str:
    """Return a message's content as a string ('' when missing)."""
    content = message.get("content")
    if content is None:
        return ""
    return content if isinstance(content, str) else _dumps(content)


def _is_prefill(messages: list[dict[str, Any]]) -> bool:
    """True when the conversation ends with an assistant message (a prefill)."""
    return bool(messages) and messages[-1].get("role") == "assistant"


def _message_pieces(message: Mapping[str, Any], closed: bool) -> list[str]:
    """Template tokens of one message (3 opening, content, tool calls, images, 1 closing)."""
    role = str(message.get("role") or "user")
    pieces = ["<|im_start|>", role, "\n"]
    for image in message.get("images") or []:
        tag = hashlib.sha1(str(image).encode()).hexdigest()[:8]
        pieces.extend([f"<img:{tag}>"] * IMAGE_TOKENS)
    pieces.extend(_prompt_pieces(_content_of(message)))
    if message.get("tool_calls"):
        pieces.extend(_prompt_pieces(_dumps(message["tool_calls"])))
    if closed:
        pieces.append("<|im_end|>")
    return pieces


def _tools_pieces(tools: list[Any] | None) -> list[str]:
    """Template tokens of the tool definitions block."""
    if not tools:
        return []
    return ["<tools>"] * TOOLS_OVERHEAD_TOKENS + _prompt_pieces(_dumps(tools))


def _render_parts(
    messages: list[dict[str, Any]], tools: list[Any] | None
) -> tuple[list[str], list[list[str]], list[str]]:
    """Render a prompt as (tools block, per-message tokens, generation prompt)."""
    prefill = _is_prefill(messages)
    per_message = [
        _message_pieces(m, closed=not (prefill and i == len(messages) - 1))
        for i, m in enumerate(messages)
    ]
    tail = [] if prefill else ["<|im_start|>", "assistant", "\n"]
    return _tools_pieces(tools), per_message, tail


def count_prompt_tokens(messages: list[dict[str, Any]], tools: list[Any] | None = None) -> int:
    """Number of prompt tokens of a chat request (see the module docstring for the formula)."""
    head, per_message, tail = _render_parts(list(messages), tools)
    return len(head) + sum(len(p) for p in per_message) + len(tail)


# --------------------------------------------------------------------------- models


def _parse_parameter_size(text: str) -> int:
    """Convert "494M" / "7B" / "1.5B" into a parameter count."""
    match = _SIZE_RE.match(text or "")
    if not match:
        return 0
    scale = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9, "T": 10**12}[match.group(2).upper()]
    return int(float(match.group(1)) * scale)


@dataclass
class ModelSpec:
    """Description of a model served by :class:`OllamaTestServer`."""

    name: str
    family: str = "llama"
    context_length: int = 4096
    capabilities: list[str] = field(default_factory=lambda: ["completion"])
    embedding_length: int = 0
    parameter_size: str = "1B"
    quantization_level: str = "Q4_K_M"
    size: int = 0
    digest: str = ""
    modified_at: str = "2025-01-01T00:00:00Z"
    blob: str = ""
    """Path of a real GGUF file; ``/api/show``'s modelfile then says ``FROM <blob>``, as a
    local Ollama does for a pulled model."""
    prompt_counter: Any = None
    """``(messages, tools) -> int``: when set, the prompt count reported for this model
    (like a real tokenizer would give) instead of the toy tokenizer's."""

    def __post_init__(self) -> None:
        self.name = _normalize_name(self.name)
        if not self.size:
            # Roughly 4.85 bits per weight for Q4_K_M plus some metadata.
            self.size = int(_parse_parameter_size(self.parameter_size) * 0.61) + 50_000_000
        if not self.digest:
            self.digest = hashlib.sha256(self.name.encode()).hexdigest()

    @property
    def arch(self) -> str:
        """Architecture name used in ``model_info`` keys (same as ``family``)."""
        return self.family

    def details(self) -> dict[str, Any]:
        """The ``details`` object of /api/tags, /api/show and /api/ps."""
        return {
            "parent_model": "",
            "format": "gguf",
            "family": self.family,
            "families": [self.family],
            "parameter_size": self.parameter_size,
            "quantization_level": self.quantization_level,
        }

    def model_info(self) -> dict[str, Any]:
        """The ``model_info`` object of /api/show."""
        info: dict[str, Any] = {
            "general.architecture": self.arch,
            "general.basename": self.name.split(":")[0],
            "general.file_type": 15,
            "general.parameter_count": _parse_parameter_size(self.parameter_size),
            "general.quantization_version": 2,
            f"{self.arch}.context_length": self.context_length,
        }
        if self.embedding_length:
            info[f"{self.arch}.embedding_length"] = self.embedding_length
        return info


def _normalize_name(name: str) -> str:
    """Add the implicit ``:latest`` tag like Ollama does."""
    name = (name or "").strip()
    if name and ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    return name


DEFAULT_MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="qwen2.5:0.5b",
            family="qwen2",
            context_length=32768,
            capabilities=["completion", "tools"],
            embedding_length=896,
            parameter_size="494.03M",
            quantization_level="Q4_K_M",
            size=397_821_319,
        ),
        ModelSpec(
            name="llava:7b",
            family="llama",
            context_length=4096,
            capabilities=["completion", "vision"],
            embedding_length=4096,
            parameter_size="7B",
            quantization_level="Q4_0",
            size=4_733_363_377,
        ),
        ModelSpec(
            name="nomic-embed-text:latest",
            family="nomic-bert",
            context_length=2048,
            capabilities=["embedding"],
            embedding_length=768,
            parameter_size="137M",
            quantization_level="F16",
            size=274_302_450,
        ),
        ModelSpec(
            name="tiny:latest",
            family="llama",
            context_length=2048,
            capabilities=["completion"],
            embedding_length=2048,
            parameter_size="1.1B",
            quantization_level="Q4_0",
            size=637_700_138,
        ),
    )
}

DEFAULT_PULLABLE: dict[str, ModelSpec] = {
    "smollm2:135m": ModelSpec(
        name="smollm2:135m",
        family="llama",
        context_length=8192,
        capabilities=["completion", "tools"],
        embedding_length=576,
        parameter_size="134.52M",
        quantization_level="F16",
        size=270_898_672,
    ),
}

_TEMPLATE = (
    "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n"
    "{{ end }}<|im_start|>assistant\n"
)
_PARAMETERS = (
    'stop                           "<|im_start|>"\nstop                           "<|im_end|>"'
)


def _spec_dict(
    models: Mapping[str, ModelSpec] | Iterable[ModelSpec] | None, default: Mapping[str, ModelSpec]
) -> dict[str, ModelSpec]:
    """Copy a model collection into a name -> spec dict keyed by normalized names."""
    source = default if models is None else models
    specs = source.values() if isinstance(source, Mapping) else source
    out: dict[str, ModelSpec] = {}
    for spec in specs:
        spec = copy.deepcopy(spec)
        out[spec.name] = spec
    return out


# --------------------------------------------------------------------------- responder

_VOCAB = re.findall(
    r"\w+",
    "the kernel keeps a small context window and pages older memory out while the "
    "scheduler streams tokens from the model so every process sees a stable answer",
)


def default_responder(model: str, messages: list[dict[str, Any]], tools: list[Any] | None) -> str:
    """Deterministic 20-40 token answer derived from the conversation."""
    users = [m for m in messages if m.get("role") == "user"]
    last = _content_of(users[-1]) if users else ""
    words = [w.lower() for w in _WORD_RE.findall(last)][:16] or ["hello"]
    key = _dumps([[m.get("role"), _content_of(m)] for m in messages]).encode()
    rng = random.Random(hashlib.sha256(key).digest())
    target = rng.randint(20, 40)
    pool = words + _VOCAB
    out = f"Reply {len(users)}:"
    while count_tokens(out) < target - 1:
        word = rng.choice(pool)
        out += (", " if rng.random() < 0.08 else " ") + word
    return out + "."


# --------------------------------------------------------------------------- helpers


def _now_iso() -> str:
    """Current UTC time in RFC 3339 with a ``Z`` suffix."""
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _iso(ts: float) -> str:
    """Convert a POSIX timestamp to RFC 3339 (far future for infinity)."""
    if math.isinf(ts):
        return "2318-01-01T00:00:00Z"
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def _parse_keep_alive(value: Any) -> float:
    """Keep-alive in seconds (``inf`` for negative values), Ollama/Go duration syntax."""
    if value is None or value == "":
        return DEFAULT_KEEP_ALIVE_S
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = str(value).strip()
        try:
            seconds = float(text)
        except ValueError:
            units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
            parts = _DURATION_RE.findall(text)
            if not parts:
                return DEFAULT_KEEP_ALIVE_S
            seconds = sum(float(n) * units[u] for n, u in parts)
    return math.inf if seconds < 0 else seconds


def _embedding(text: str, dims: int) -> list[float]:
    """Deterministic unit vector: hashed bag of words plus a small text-hash component."""
    vec = [0.0] * dims
    for word in _WORD_RE.findall(text.lower()):
        digest = hashlib.sha256(word.encode()).digest()
        for i in range(0, 32, 4):
            index = int.from_bytes(digest[i : i + 3], "little") % dims
            vec[index] += 1.0 if digest[i + 3] & 1 else -1.0
    rng = random.Random(hashlib.sha256(text.encode()).digest())
    noise = 0.05 if any(vec) else 1.0
    vec = [v + noise * rng.gauss(0.0, 1.0) for v in vec]
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [v / norm for v in vec]


def _normalize_tool_calls(calls: Iterable[Any]) -> list[dict[str, Any]]:
    """Turn responder tool calls into Ollama's ``{"function": {name, arguments}}`` form."""
    out = []
    for call in calls:
        function = call.get("function", call)
        out.append(
            {
                "function": {
                    "name": function["name"],
                    "arguments": dict(function.get("arguments") or {}),
                }
            }
        )
    return out


def _common_prefix(a: list[str], b: list[str]) -> int:
    """Length of the common prefix of two token lists."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class _ClientGoneError(Exception):
    """Raised when a stream must be aborted (client went away or server stopping)."""


# --------------------------------------------------------------------------- HTTP layer


class _HTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that tracks its connection threads so ``stop()`` can end them."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], owner: OllamaTestServer) -> None:
        self.owner = owner
        self._conn_lock = threading.Lock()
        self._conns: dict[socket.socket, threading.Thread] = {}
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve each connection in its own tracked daemon thread."""
        thread = threading.Thread(
            target=self._serve_connection,
            args=(request, client_address),
            name="ollama-test-conn",
            daemon=True,
        )
        with self._conn_lock:
            self._conns[request] = thread
            self.owner.connections_accepted += 1
        thread.start()

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            with self._conn_lock:
                self._conns.pop(request, None)
            self.shutdown_request(request)

    def close_connections(self, timeout: float = 2.0) -> None:
        """Shut down every open connection and wait for its thread."""
        with self._conn_lock:
            items = list(self._conns.items())
        for sock, _thread in items:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for _sock, thread in items:
            thread.join(timeout)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Ignore disconnects; print anything else."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (OSError, _ClientGoneError)):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """Request handler dispatching to :class:`OllamaTestServer`."""

    protocol_version = "HTTP/1.1"
    server_version = "ollama-test"
    sys_version = ""
    disable_nagle_algorithm = True
    server: _HTTPServer

    # -- plumbing -----------------------------------------------------------------------

    def log_message(self, format: str, *args: Any) -> None:
        """Log only in verbose mode."""
        if self.server.owner.verbose:
            super().log_message(format, *args)

    def _read_body(self) -> bytes:
        """Read the request body (Content-Length or chunked)."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            data = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(data)
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def send_json(self, status: int, obj: Any) -> None:
        """Send a complete JSON response with Content-Length."""
        data = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()
        self.send_bytes(status, data, "application/json; charset=utf-8")

    def send_error_json(self, status: int, message: str) -> None:
        """Send ``{"error": message}`` with the given status."""
        self.send_json(status, {"error": message})

    def send_bytes(self, status: int, data: bytes, content_type: str) -> None:
        """Send a complete response body."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data and self.command != "HEAD":
            self.wfile.write(data)

    def start_stream(self) -> None:
        """Start a chunked NDJSON response."""
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def send_line(self, obj: Any) -> None:
        """Write one NDJSON line as one HTTP chunk."""
        line = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
        try:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
        except OSError as exc:
            raise _ClientGoneError() from exc

    def end_stream(self) -> None:
        """Write the terminating zero-length chunk."""
        try:
            self.wfile.write(b"0\r\n\r\n")
        except OSError as exc:
            raise _ClientGoneError() from exc

    def abort_connection(self) -> None:
        """Close the socket abruptly (no terminating chunk)."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # -- dispatch -----------------------------------------------------------------------

    def _dispatch(self) -> None:
        body_bytes = self._read_body()
        path = self.path.split("?", 1)[0].rstrip("/") or "/"
        owner = self.server.owner
        routes: dict[tuple[str, str], Callable[[_Handler, Any], None]] = {
            ("GET", "/"): owner._handle_root,
            ("HEAD", "/"): owner._handle_root,
            ("GET", "/api/version"): owner._handle_version,
            ("GET", "/api/tags"): owner._handle_tags,
            ("GET", "/api/ps"): owner._handle_ps,
            ("POST", "/api/show"): owner._handle_show,
            ("POST", "/api/chat"): owner._handle_chat,
            ("POST", "/api/embed"): owner._handle_embed,
            ("POST", "/api/embeddings"): owner._handle_embeddings,
            ("POST", "/api/pull"): owner._handle_pull,
            ("DELETE", "/api/delete"): owner._handle_delete,
        }
        route = routes.get((self.command, path))
        if route is None:
            self.send_bytes(404, b"404 page not found", "text/plain")
            return
        body: Any = None
        if self.command in ("POST", "DELETE"):
            if not body_bytes.strip():
                self.send_error_json(400, "missing request body")
                return
            try:
                body = json.loads(body_bytes)
            except ValueError as exc:
                self.send_error_json(400, f"invalid JSON: {exc}")
                return
            if not isinstance(body, dict):
                self.send_error_json(400, "request body must be a JSON object")
                return
        try:
            route(self, body)
        except _ClientGoneError:
            self.close_connection = True

    def do_GET(self) -> None:
        """Handle GET."""
        self._dispatch()

    def do_HEAD(self) -> None:
        """Handle HEAD."""
        self._dispatch()

    def do_POST(self) -> None:
        """Handle POST."""
        self._dispatch()

    def do_DELETE(self) -> None:
        """Handle DELETE."""
        self._dispatch()


# --------------------------------------------------------------------------- server


class OllamaTestServer:
    """In-process fake Ollama server (see the module docstring for the full contract)."""

    def __init__(
        self,
        models: Mapping[str, ModelSpec] | Iterable[ModelSpec] | None = None,
        *,
        token_delay: float = 0.0,
        default_num_ctx: int = 4096,
        report_prompt_eval: str = "full",
        port: int = 0,
        pullable: Mapping[str, ModelSpec] | Iterable[ModelSpec] | None = None,
        verbose: bool = False,
    ) -> None:
        if report_prompt_eval not in ("full", "omit_on_cache", "none"):
            raise ValueError(f"bad report_prompt_eval: {report_prompt_eval!r}")
        self.models: dict[str, ModelSpec] = _spec_dict(models, DEFAULT_MODELS)
        self.pullable: dict[str, ModelSpec] = _spec_dict(pullable, DEFAULT_PULLABLE)
        self.token_delay = token_delay
        self.default_num_ctx = default_num_ctx
        self.report_prompt_eval = report_prompt_eval
        self.fail_next: dict[str, Any] | None = None
        self.responder: Responder = default_responder
        self.version = "0.12.6"
        self.verbose = verbose
        self.requests: list[dict[str, Any]] = []
        self.connections_accepted = 0
        self.host: str | None = None
        self.port: int = port
        self._requested_port = port
        self._lock = threading.RLock()
        self._loaded: dict[str, dict[str, Any]] = {}
        self._kv_cache: dict[str, list[str]] = {}
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> OllamaTestServer:
        """Bind 127.0.0.1 and serve in a daemon thread; returns ``self``."""
        if self._httpd is not None:
            return self
        self._stopping.clear()
        self._httpd = _HTTPServer(("127.0.0.1", self._requested_port), self)
        self.port = self._httpd.server_address[1]
        self.host = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="ollama-test-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close every connection and join all server threads."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()
        httpd.close_connections()
        if thread is not None:
            thread.join(5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> OllamaTestServer:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def reset(self) -> None:
        """Clear the request log (the KV-cache emulation and loaded models are kept)."""
        with self._lock:
            self.requests.clear()

    # -- internals ------------------------------------------------------------------------

    def _log(self, entry: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.requests.append(entry)
        return entry

    def _take_fault(self) -> dict[str, Any] | None:
        """Consume ``fail_next``; unknown kinds are treated as "error"."""
        with self._lock:
            fault, self.fail_next = self.fail_next, None
        if fault is None:
            return None
        fault = dict(fault)
        if fault.get("kind") not in ("break", "error", "http"):
            fault["kind"] = "error"
        return fault

    def _find(self, name: Any) -> ModelSpec | None:
        with self._lock:
            return self.models.get(_normalize_name(str(name or "")))

    def _touch(self, spec: ModelSpec, num_ctx: int, keep_alive: Any) -> None:
        seconds = _parse_keep_alive(keep_alive)
        with self._lock:
            if seconds == 0:
                self._loaded.pop(spec.name, None)
            else:
                self._loaded[spec.name] = {"expires": time.time() + seconds, "num_ctx": num_ctx}

    def _is_loaded(self, spec: ModelSpec) -> bool:
        with self._lock:
            entry = self._loaded.get(spec.name)
            return bool(entry) and entry["expires"] > time.time()

    def _sleep(self, seconds: float) -> None:
        if seconds > 0 and self._stopping.wait(seconds):
            raise _ClientGoneError()

    # -- simple endpoints -------------------------------------------------------------------

    def _handle_root(self, h: _Handler, body: Any) -> None:
        h.send_bytes(200, b"Ollama is running", "text/plain; charset=utf-8")

    def _handle_version(self, h: _Handler, body: Any) -> None:
        h.send_json(200, {"version": self.version})

    def _handle_tags(self, h: _Handler, body: Any) -> None:
        with self._lock:
            specs = list(self.models.values())
        models = [
            {
                "name": s.name,
                "model": s.name,
                "modified_at": s.modified_at,
                "size": s.size,
                "digest": s.digest,
                "details": s.details(),
            }
            for s in specs
        ]
        h.send_json(200, {"models": models})

    def _handle_ps(self, h: _Handler, body: Any) -> None:
        now = time.time()
        models = []
        with self._lock:
            for name, entry in list(self._loaded.items()):
                spec = self.models.get(name)
                if spec is None or entry["expires"] <= now:
                    continue
                models.append(
                    {
                        "name": spec.name,
                        "model": spec.name,
                        "size": spec.size,
                        "digest": spec.digest,
                        "details": spec.details(),
                        "expires_at": _iso(entry["expires"]),
                        "size_vram": 0,
                        "context_length": entry["num_ctx"],
                    }
                )
        h.send_json(200, {"models": models})

    def _handle_show(self, h: _Handler, body: dict[str, Any]) -> None:
        name = body.get("model") or body.get("name") or ""
        spec = self._find(name)
        if spec is None:
            h.send_error_json(404, f"model '{name}' not found")
            return
        h.send_json(
            200,
            {
                "license": "",
                "modelfile": (
                    f"# Modelfile generated by ollama-test\nFROM {spec.blob or spec.name}\n"
                ),
                "parameters": _PARAMETERS,
                "template": _TEMPLATE,
                "details": spec.details(),
                "model_info": spec.model_info(),
                "capabilities": list(spec.capabilities),
                "modified_at": spec.modified_at,
            },
        )

    def _handle_delete(self, h: _Handler, body: dict[str, Any]) -> None:
        name = body.get("model") or body.get("name") or ""
        key = _normalize_name(str(name))
        with self._lock:
            spec = self.models.pop(key, None)
            if spec is not None:
                self.pullable[key] = spec
                self._loaded.pop(key, None)
                self._kv_cache.pop(key, None)
        if spec is None:
            h.send_error_json(404, f"model '{name}' not found")
            return
        h.send_bytes(200, b"", "application/json; charset=utf-8")

    def _handle_pull(self, h: _Handler, body: dict[str, Any]) -> None:
        name = str(body.get("model") or body.get("name") or "")
        stream = body.get("stream", True) is not False
        key = _normalize_name(name)
        with self._lock:
            spec = self.pullable.get(key) or self.models.get(key)
        if spec is None:
            if stream:
                h.start_stream()
                h.send_line({"status": "pulling manifest"})
                h.send_line({"error": PULL_ERROR})
                h.end_stream()
            else:
                h.send_error_json(500, PULL_ERROR)
            return
        if stream:
            h.start_stream()
            h.send_line({"status": "pulling manifest"})
            layers = [
                (hashlib.sha256(f"{spec.name}:model".encode()).hexdigest(), spec.size),
                (hashlib.sha256(f"{spec.name}:template".encode()).hexdigest(), len(_TEMPLATE)),
                (hashlib.sha256(f"{spec.name}:params".encode()).hexdigest(), len(_PARAMETERS)),
            ]
            for digest, total in layers:
                for step in range(5):
                    h.send_line(
                        {
                            "status": f"pulling {digest[:12]}",
                            "digest": f"sha256:{digest}",
                            "total": total,
                            "completed": total * step // 4,
                        }
                    )
            h.send_line({"status": "verifying sha256 digest"})
            h.send_line({"status": "writing manifest"})
        with self._lock:
            self.models[spec.name] = copy.deepcopy(spec)
        if stream:
            h.send_line({"status": "success"})
            h.end_stream()
        else:
            h.send_json(200, {"status": "success"})

    # -- embeddings ---------------------------------------------------------------------

    def _handle_embed(self, h: _Handler, body: dict[str, Any]) -> None:
        self._embed_common(h, body, legacy=False)

    def _handle_embeddings(self, h: _Handler, body: dict[str, Any]) -> None:
        self._embed_common(h, body, legacy=True)

    def _embed_common(self, h: _Handler, body: dict[str, Any], legacy: bool) -> None:
        t0 = time.perf_counter_ns()
        name = str(body.get("model") or "")
        options = body.get("options") or {}
        num_ctx = int(options.get("num_ctx") or self.default_num_ctx)
        raw = body.get("prompt", "") if legacy else body.get("input", [])
        inputs = [raw] if isinstance(raw, str) else [str(x) for x in raw or []]
        spec = self._find(name)
        eff_ctx = min(num_ctx, spec.context_length) if spec else num_ctx
        counts = [count_tokens(text) for text in inputs]
        entry = self._log(
            {
                "path": "/api/embeddings" if legacy else "/api/embed",
                "model": name,
                "body": body,
                "num_ctx": num_ctx,
                "effective_num_ctx": eff_ctx,
                "num_predict": None,
                "prompt_tokens": sum(counts),
                "prompt_eval_tokens": sum(min(c, eff_ctx) for c in counts),
                "truncated": any(c > eff_ctx for c in counts),
                "stream": False,
                "status": 200,
                "fault": None,
            }
        )

        def fail(status: int, message: str) -> None:
            entry["status"] = status
            h.send_error_json(status, message)

        if not name:
            fail(400, "model is required")
            return
        if spec is None:
            fail(404, f"model '{name}' not found")
            return
        if "embedding" not in spec.capabilities:
            fail(400, f'"{name}" does not support embeddings')
            return
        if entry["truncated"] and body.get("truncate") is False:
            fail(400, "the input length exceeds the context length")
            return
        fault = self._take_fault()
        if fault:
            entry["fault"] = fault.get("kind")
            if fault.get("kind") == "break":
                entry["status"] = None
                h.abort_connection()
                return
            status = int(fault.get("status", 500))
            fail(status, str(fault.get("message") or "an error was encountered"))
            return
        dims = spec.embedding_length or 768
        requested = body.get("dimensions")
        vectors = []
        for text in inputs:
            vec = _embedding(text, dims)
            if requested and 0 < int(requested) < dims:
                vec = vec[: int(requested)]
                norm = math.sqrt(sum(v * v for v in vec)) or 1.0
                vec = [v / norm for v in vec]
            vectors.append(vec)
        loaded = self._is_loaded(spec)
        self._touch(spec, eff_ctx, body.get("keep_alive"))
        if legacy:
            h.send_json(200, {"embedding": vectors[0] if vectors else []})
            return
        h.send_json(
            200,
            {
                "model": name,
                "embeddings": vectors,
                "total_duration": time.perf_counter_ns() - t0 + (0 if loaded else LOAD_NS),
                "load_duration": 0 if loaded else LOAD_NS,
                "prompt_eval_count": entry["prompt_eval_tokens"],
            },
        )

    # -- chat ---------------------------------------------------------------------------

    def _handle_chat(self, h: _Handler, body: dict[str, Any]) -> None:
        t0 = time.perf_counter_ns()
        name = str(body.get("model") or "")
        messages: list[dict[str, Any]] = [
            m for m in (body.get("messages") or []) if isinstance(m, dict)
        ]
        tools = body.get("tools") or None
        options = body.get("options") or {}
        stream = body.get("stream", True) is not False
        num_ctx = int(options.get("num_ctx") or self.default_num_ctx)
        num_predict = options.get("num_predict")
        num_predict = None if num_predict is None else int(num_predict)
        spec = self._find(name)
        eff_ctx = min(num_ctx, spec.context_length) if spec else num_ctx
        prompt_tokens = count_prompt_tokens(messages, tools)
        if spec is not None and spec.prompt_counter is not None:
            prompt_tokens = int(spec.prompt_counter(messages, tools))
        entry = self._log(
            {
                "path": "/api/chat",
                "model": name,
                "body": body,
                "num_ctx": num_ctx,
                "effective_num_ctx": eff_ctx,
                "num_predict": num_predict,
                "prompt_tokens": prompt_tokens,
                "prompt_eval_tokens": prompt_tokens,
                "cached_tokens": 0,
                "kept_messages": len(messages),
                "truncated": False,
                "stream": stream,
                "status": 200,
                "fault": None,
                "eval_count": 0,
                "done_reason": None,
                "content": "",
            }
        )

        def fail(status: int, message: str) -> None:
            entry["status"] = status
            h.send_error_json(status, message)

        if not name:
            fail(400, "model is required")
            return
        if spec is None:
            fail(404, f"model '{name}' not found")
            return
        caps = set(spec.capabilities)
        if "completion" not in caps:
            fail(400, f'"{name}" does not support chat')
            return
        if tools and "tools" not in caps:
            fail(400, f'"{name}" does not support tools')
            return
        if body.get("think") and "thinking" not in caps:
            fail(400, f'"{name}" does not support thinking')
            return
        if "vision" not in caps and any(m.get("images") for m in messages):
            fail(400, NO_VISION_ERROR)
            return

        loaded = self._is_loaded(spec)
        load_ns = 0 if loaded else LOAD_NS
        if not messages:
            unload = _parse_keep_alive(body.get("keep_alive")) == 0
            self._touch(spec, eff_ctx, body.get("keep_alive"))
            reason = "unload" if unload else "load"
            entry["done_reason"] = reason
            final = {
                "model": name,
                "created_at": _now_iso(),
                "message": {"role": "assistant", "content": ""},
                "done_reason": reason,
                "done": True,
            }
            if stream:
                h.start_stream()
                h.send_line(final)
                h.end_stream()
            else:
                h.send_json(200, final)
            return

        # Ollama-style truncation: drop the oldest non-system messages (never the last).
        kept = list(messages)
        head, per_message, tail = _render_parts(kept, tools)
        total = len(head) + sum(len(p) for p in per_message) + len(tail)
        while total > eff_ctx:
            index = next((i for i, m in enumerate(kept[:-1]) if m.get("role") != "system"), None)
            if index is None:
                break
            total -= len(per_message[index])
            del kept[index]
            del per_message[index]
            entry["truncated"] = True
        prompt = head + [p for piece in per_message for p in piece] + tail
        if len(prompt) > eff_ctx:
            # Like the runner: keep the first few tokens and the most recent ones.
            keep = min(4, eff_ctx)
            prompt = prompt[:keep] + prompt[len(prompt) - (eff_ctx - keep) :]
            entry["truncated"] = True
        entry["kept_messages"] = len(kept)
        entry["prompt_eval_tokens"] = len(prompt)

        # Answer, with prefill continuation.
        prefill = _content_of(kept[-1]) if _is_prefill(kept) else None
        context = kept[:-1] if prefill is not None else kept
        try:
            answer = self.responder(name, copy.deepcopy(context), copy.deepcopy(tools))
        except Exception as exc:  # responder bugs become Ollama-like 500s
            fail(500, f"responder failed: {exc}")
            return
        tool_calls: list[dict[str, Any]] | None = None
        if isinstance(answer, dict):
            text = _content_of(answer)
            if answer.get("tool_calls"):
                tool_calls = _normalize_tool_calls(answer["tool_calls"])
        else:
            text = str(answer)
            if prefill and text.startswith(prefill):
                text = text[len(prefill) :]
        pieces = split_tokens(text)
        done_reason = "stop"
        if num_predict is not None and num_predict >= 0 and len(pieces) > num_predict:
            pieces = pieces[:num_predict]
            done_reason = "length"
            tool_calls = None
        call_pieces = _prompt_pieces(_dumps(tool_calls)) if tool_calls else []

        # KV-cache emulation.
        with self._lock:
            previous = self._kv_cache.get(spec.name, [])
        cached = min(_common_prefix(previous, prompt), max(len(prompt) - 1, 0))
        entry["cached_tokens"] = cached
        self._touch(spec, eff_ctx, body.get("keep_alive"))

        fault = self._take_fault()
        if fault:
            entry["fault"] = fault.get("kind")
            if fault.get("kind") == "http":
                fail(int(fault.get("status", 500)), str(fault.get("message") or "error"))
                return
            pieces = pieces[: int(fault.get("after_tokens", 0))]
            tool_calls = None
            call_pieces = []

        generated: list[str] = []
        try:
            if stream:
                self._stream_chat(h, name, pieces, tool_calls, generated, fault)
            else:
                self._sleep(self.token_delay * len(pieces))
                generated.extend(pieces)
        finally:
            with self._lock:
                self._kv_cache[spec.name] = prompt + generated + call_pieces
            entry["eval_count"] = len(generated) + len(call_pieces)
            entry["content"] = "".join(generated)

        if fault and fault.get("kind") in ("break", "error"):
            entry["status"] = None if fault["kind"] == "break" else 500
            if stream:
                if fault["kind"] == "error":
                    message = fault.get("message") or "an error was encountered while running"
                    h.send_line({"error": str(message)})
                    h.end_stream()
                else:
                    h.abort_connection()
            elif fault["kind"] == "error":
                h.send_error_json(500, str(fault.get("message") or "error"))
            else:
                h.abort_connection()
            return

        entry["done_reason"] = done_reason
        eval_ns = max(time.perf_counter_ns() - t0, 1)
        prompt_eval_ns = max(len(prompt) - cached, 1) * PROMPT_EVAL_NS_PER_TOKEN
        final: dict[str, Any] = {
            "model": name,
            "created_at": _now_iso(),
            "message": {"role": "assistant", "content": ""},
            "done_reason": done_reason,
            "done": True,
            "total_duration": load_ns + prompt_eval_ns + eval_ns,
            "load_duration": load_ns,
        }
        mode = self.report_prompt_eval
        if mode == "full" or (mode == "omit_on_cache" and cached == 0):
            final["prompt_eval_count"] = (
                prompt_tokens if spec.prompt_counter is not None else len(prompt)
            )
        if mode == "full":
            final["prompt_eval_cached_count"] = cached
        final["prompt_eval_duration"] = prompt_eval_ns
        final["eval_count"] = entry["eval_count"]
        final["eval_duration"] = eval_ns
        if stream:
            h.send_line(final)
            h.end_stream()
        else:
            message: dict[str, Any] = {"role": "assistant", "content": "".join(generated)}
            if tool_calls:
                message["tool_calls"] = tool_calls
            final["message"] = message
            h.send_json(200, final)

    def _stream_chat(
        self,
        h: _Handler,
        name: str,
        pieces: list[str],
        tool_calls: list[dict[str, Any]] | None,
        generated: list[str],
        fault: dict[str, Any] | None,
    ) -> None:
        """Stream token lines (and a tool-call line); the caller writes the final line."""
        h.start_stream()
        for piece in pieces:
            self._sleep(self.token_delay)
            h.send_line(
                {
                    "model": name,
                    "created_at": _now_iso(),
                    "message": {"role": "assistant", "content": piece},
                    "done": False,
                }
            )
            generated.append(piece)
        if tool_calls and not fault:
            self._sleep(self.token_delay)
            h.send_line(
                {
                    "model": name,
                    "created_at": _now_iso(),
                    "message": {"role": "assistant", "content": "", "tool_calls": tool_calls},
                    "done": False,
                }
            )


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    """Run the fake server in the foreground until interrupted."""
    parser = argparse.ArgumentParser(description="Fake Ollama server for LLM-OS tests.")
    parser.add_argument("--port", type=int, default=11434)
    parser.add_argument("--token-delay", type=float, default=0.0)
    parser.add_argument("--num-ctx", type=int, default=4096, help="default num_ctx")
    parser.add_argument(
        "--report-prompt-eval", choices=("full", "omit_on_cache", "none"), default="full"
    )
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    server = OllamaTestServer(
        token_delay=args.token_delay,
        default_num_ctx=args.num_ctx,
        report_prompt_eval=args.report_prompt_eval,
        port=args.port,
        verbose=args.verbose,
    )
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server.start()
    print(f"fake Ollama listening on {server.host} (models: {', '.join(server.models)})")
    sys.stdout.flush()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
