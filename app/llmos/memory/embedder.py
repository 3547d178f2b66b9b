"""Which model turns memory into vectors, chosen from what the active backend has.

Preference: the model the user named (``embed_model`` setting, ``none`` turns vectors off); else
a dedicated embedding model the backend has installed (``nomic-embed-text``, ``all-minilm``,
...); else the embedded engine's own model, mean-pooled; else none, and memory runs on full
text alone and says so.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from llmos.drivers.base import DriverError, ModelDriver, ModelInfo

log = logging.getLogger(__name__)

PREFERRED = ("nomic-embed-text", "all-minilm", "mxbai-embed-large", "bge-m3", "snowflake-arctic")
OFF = "none"
QUERY_CACHE = 16
"""Query vectors an embedder keeps."""


@dataclass(slots=True)
class Embedder:
    """One embedding model on one driver."""

    driver: ModelDriver
    model: str
    reason: str
    batch_size: int = 32
    owns_driver: bool = False
    """True when the driver exists only to embed, so memory closes it."""
    _queries: OrderedDict[str, list[float]] = field(default_factory=OrderedDict, repr=False)

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return await self.driver.embed(self.model, texts)

    async def embed_query(self, text: str) -> list[float]:
        """One search query's vector; the last few are kept, as the pager searches a
        process's own pages and then all memory for the same turn."""
        if text in self._queries:
            self._queries.move_to_end(text)
            return self._queries[text]
        (vector,) = await self.embed([text])
        self._queries[text] = vector
        while len(self._queries) > QUERY_CACHE:
            self._queries.popitem(last=False)
        return vector


@dataclass(frozen=True, slots=True)
class EmbedderChoice:
    embedder: Embedder | None
    reason: str
    """Why this model, or why there is none (with what to do about it)."""


async def choose_embedder(
    driver: ModelDriver,
    wanted: str | None,
    fallback: Callable[[], Awaitable[Embedder | None]] | None = None,
) -> EmbedderChoice:
    """Pick the embedding model for memory on ``driver``.

    Args:
        driver: the active backend.
        wanted: the ``embed_model`` setting: a model name, ``none``, or None for automatic.
        fallback: makes an embedder on the embedded engine when ``driver`` has no embedding
            model; it returns None when the embedded engine is not installed.
    """
    if wanted == OFF:
        return EmbedderChoice(None, "vectors are turned off (embed_model = none)")
    try:
        models = await driver.list_models()
    except DriverError as error:
        return EmbedderChoice(None, error.message.rstrip("."))
    if wanted:
        for info in models:
            if info.name in (wanted, f"{wanted}:latest"):
                return EmbedderChoice(Embedder(driver, info.name, "chosen in the settings"), "")
        return EmbedderChoice(
            None,
            f"the embedding model '{wanted}' is not installed (run: llmos models pull {wanted})",
        )
    dedicated = sorted((m for m in models if m.can_embed and not m.can_chat), key=_rank)
    if dedicated:
        model = dedicated[0].name
        return EmbedderChoice(Embedder(driver, model, "the backend's embedding model"), "")
    own = [m for m in models if m.can_embed]
    if own:
        return EmbedderChoice(Embedder(driver, own[0].name, "the engine's own model"), "")
    embedder = await fallback() if fallback else None
    if embedder is not None:
        return EmbedderChoice(embedder, "")
    return EmbedderChoice(
        None,
        "no embedding model is installed (run: llmos models pull nomic-embed-text)",
    )


def _rank(model: ModelInfo) -> tuple[int, str]:
    for rank, prefix in enumerate(PREFERRED):
        if model.name.startswith(prefix):
            return rank, model.name
    return len(PREFERRED), model.name
