"""Long-term memory fixtures: a real LanceDB store in a temp dir, with or without vectors."""

from __future__ import annotations

import pytest

from llmos.drivers.ollama_driver import OllamaDriver
from llmos.memory.embedder import Embedder, EmbedderChoice
from llmos.memory.long_term import LongTermMemory


@pytest.fixture
async def memory(tmp_path):
    """Memory on full text only (no embedding model)."""
    memory = await LongTermMemory.open(tmp_path / "data")
    yield memory
    await memory.close()


@pytest.fixture
async def ollama_driver(ollama_server):
    driver = OllamaDriver(ollama_server.host)
    yield driver
    await driver.close()


@pytest.fixture
async def vector_memory(tmp_path, ollama_driver):
    """Memory embedding with nomic-embed-text on the Ollama-protocol test server."""
    embedder = Embedder(ollama_driver, "nomic-embed-text:latest", "test")
    memory = await LongTermMemory.open(tmp_path / "data", EmbedderChoice(embedder, ""))
    yield memory
    await memory.close()


async def ingest(memory: LongTermMemory, *sources, folder: str = "/Documents", **options):
    """Run one ingest to the end, vectors included when memory has an embedder."""
    from llmos.memory.ingest import IngestOptions

    indexer = memory.indexer()
    job = memory.job(
        list(sources),
        IngestOptions(folder=folder, **options),
        on_commit=(lambda _docs: indexer.wake()) if indexer else None,
    )
    report = await memory.run(job)
    if indexer is not None:
        indexer.finish()
        await indexer.run()
    return report
