"""Which model embeds memory, and vectors from the real embedded engine."""

from __future__ import annotations

import pytest

from llmos.bootstrap import choose_memory_embedder
from llmos.config import Settings
from llmos.drivers.embedded_driver import EmbeddedDriver
from llmos.drivers.model_store import DEFAULT_RECIPE
from llmos.memory.embedder import Embedder, EmbedderChoice
from llmos.memory.long_term import LongTermMemory
from tests.memory.conftest import ingest


async def test_an_installed_embedding_model_is_preferred(ollama_driver, tmp_path):
    choice = await choose_memory_embedder(Settings(data_dir=tmp_path), ollama_driver)
    assert choice.embedder is not None
    assert choice.embedder.model == "nomic-embed-text:latest"


async def test_a_named_model_that_is_missing_says_how_to_get_it(ollama_driver, tmp_path):
    settings = Settings(data_dir=tmp_path, embed_model="all-minilm")
    choice = await choose_memory_embedder(settings, ollama_driver)
    assert choice.embedder is None
    assert "llmos models pull all-minilm" in choice.reason


async def test_vectors_can_be_turned_off(ollama_driver, tmp_path):
    choice = await choose_memory_embedder(Settings(data_dir=tmp_path, embed_model="none"),
                                          ollama_driver)  # fmt: skip
    assert choice.embedder is None and "turned off" in choice.reason


async def test_without_an_ollama_embedder_the_embedded_engine_embeds(
    ollama_server, ollama_driver, shared_data_dir, default_model
):
    ollama_server.models.pop("nomic-embed-text:latest")
    choice = await choose_memory_embedder(Settings(data_dir=shared_data_dir), ollama_driver)
    assert choice.embedder is not None
    try:
        assert isinstance(choice.embedder.driver, EmbeddedDriver)
        assert choice.embedder.model == DEFAULT_RECIPE.name
        assert choice.embedder.owns_driver
    finally:
        await choice.embedder.driver.close()


async def test_the_embedded_engine_fills_vectors_that_search_uses(tmp_path, default_model):
    engine = EmbeddedDriver(default_model, name=DEFAULT_RECIPE.name, n_ctx=2048)
    embedder = Embedder(engine, DEFAULT_RECIPE.name, "test", owns_driver=True)
    memory = await LongTermMemory.open(tmp_path / "data", EmbedderChoice(embedder, ""))
    try:
        texts = {
            "cooking.txt": "Simmer the tomatoes with garlic and basil for twenty minutes.",
            "astronomy.txt": "Jupiter's moons orbit the gas giant in resonant orbits.",
            "finance.txt": "The bond's yield rose as the central bank raised its rate.",
        }
        for name, text in texts.items():
            (tmp_path / name).write_text(text)
        await ingest(memory, *(tmp_path / name for name in texts))
        models = await memory.store.vector_models()
        assert models == {DEFAULT_RECIPE.name: (896, 3)}
        result = await memory.search(texts["astronomy.txt"], k=3)
        assert result.mode == "hybrid"
        assert result.hits[0].document.name == "astronomy.txt"
        assert "vector" in result.hits[0].matched_by
    finally:
        await memory.close()


@pytest.mark.parametrize("wanted", [None, DEFAULT_RECIPE.name])
async def test_on_the_embedded_engine_its_model_embeds(tmp_path, default_model, wanted):
    engine = EmbeddedDriver(default_model, name=DEFAULT_RECIPE.name, n_ctx=2048)
    try:
        choice = await choose_memory_embedder(
            Settings(data_dir=tmp_path, embed_model=wanted), engine
        )
        assert choice.embedder is not None and choice.embedder.driver is engine
        assert not choice.embedder.owns_driver
    finally:
        await engine.close()
