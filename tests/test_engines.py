"""Engine selection and exact counting, end to end with the real default model."""

from __future__ import annotations

import json

import pytest

from llmos.bootstrap import build_kernel, choose_engine
from llmos.cli import main
from llmos.config import load_settings
from llmos.drivers.gguf_counter import TemplateCounter, load_vocab
from llmos.drivers.model_store import DEFAULT_RECIPE
from llmos.drivers.ollama_driver import OllamaDriver
from tests.ollama_server import DEFAULT_MODELS, ModelSpec, OllamaTestServer


@pytest.fixture
def shared_data(monkeypatch, shared_data_dir, default_model):
    """Point the settings at the data dir where the default model is already assembled."""
    monkeypatch.setenv("LLMOS_DATA_DIR", str(shared_data_dir))
    return shared_data_dir


def test_embedded_run_answers_and_counts_exactly(capsys, shared_data, monkeypatch):
    monkeypatch.setenv("LLMOS_ENGINE", "embedded")
    code = main(["run", "chat", "--prompt", "What is 2+2? Reply with the number.", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out)
    assert result["engine"] == "embedded"
    assert result["model"] == DEFAULT_RECIPE.name
    # The answer samples at Ollama's default temperature, so its wording varies from run to
    # run (greedy answers are checked in tests/drivers/test_embedded_driver.py).
    assert result["answer"].strip()
    assert result["completion_tokens"] > 0
    assert result["prompt_tokens_accounted"] == result["prompt_tokens_reported"]
    assert result["context"]["exact"] is True


def test_auto_uses_ollama_when_it_answers(ollama_server):
    settings = load_settings({"ollama_host": ollama_server.host})
    choice = _run(choose_engine(settings))
    assert choice.driver.kind == "ollama" and "answered" in choice.reason


def test_auto_falls_back_to_the_embedded_engine_and_doctor_says_why(capsys, shared_data, dead_host):
    code = main(["doctor", "--json", "--ollama-host", dead_host])
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert report["engine"] == "embedded"
    assert f"not reachable at {dead_host}" in report["engine_reason"]
    assert report["models"][0]["counting"].startswith("exact")


def test_a_damaged_default_model_is_rebuilt_before_it_is_loaded(tmp_path, monkeypatch, capsys):
    from llmos.drivers.model_store import ensure_model

    models = tmp_path / "data" / "models"
    ensure_model(DEFAULT_RECIPE, models)
    target = models / DEFAULT_RECIPE.filename
    with target.open("r+b") as model:
        model.truncate(DEFAULT_RECIPE.size // 2)  # a crash mid-copy
    code = main(["doctor", "--engine", "embedded"])
    assert code == 0, capsys.readouterr().err
    assert target.stat().st_size == DEFAULT_RECIPE.size


async def test_ollama_models_are_counted_exactly_when_their_gguf_is_readable(default_model):
    vocab = TemplateCounter(load_vocab(default_model))
    spec = ModelSpec(
        name="qwen2.5-coder:0.5b",
        family="qwen2",
        context_length=32768,
        capabilities=["completion", "tools"],
        blob=str(default_model),
        # The server counts like a real Ollama serving this model would.
        prompt_counter=lambda messages, tools: vocab.prompt(messages, tools),
    )
    with OllamaTestServer(models=[spec, *DEFAULT_MODELS.values()]) as server:
        driver = OllamaDriver(server.host)
        kernel = build_kernel(load_settings({"ollama_host": server.host}), driver=driver)
        try:
            process = await kernel.spawn("chat", model="qwen2.5-coder:0.5b")
            assert driver.counting("qwen2.5-coder:0.5b").startswith("exact")
            assert driver.counting("tiny:latest").startswith("estimated")
            for question in ("What is paging?", "And swapping?"):
                result = await kernel.send(process.pid, question)
                # Exact from the very first call: no calibration needed.
                assert result.prompt_tokens_accounted == result.prompt_tokens_reported
                assert result.usage.exact
        finally:
            await kernel.shutdown()


async def test_an_ollama_that_counts_otherwise_falls_back_to_calibration(default_model):
    spec = ModelSpec(
        name="qwen2.5-coder:0.5b",
        family="qwen2",
        capabilities=["completion"],
        blob=str(default_model),  # readable, but this server counts with its toy tokenizer
    )
    with OllamaTestServer(models=[spec]) as server:
        driver = OllamaDriver(server.host)
        kernel = build_kernel(
            load_settings({"ollama_host": server.host, "num_ctx": 1024}), driver=driver
        )
        try:
            process = await kernel.spawn("chat", model="qwen2.5-coder:0.5b")
            assert driver.exact_tokenizer("qwen2.5-coder:0.5b") is not None
            for turn in range(6):
                await kernel.send(process.pid, f"Turn {turn}: tell me about page tables.")
            assert driver.exact_tokenizer("qwen2.5-coder:0.5b") is None
            assert "differ" in driver.counting("qwen2.5-coder:0.5b")
            for sent in (r for r in server.requests if r["path"] == "/api/chat"):
                assert sent["prompt_tokens"] + sent["num_predict"] <= 1024
                assert not sent["truncated"]
        finally:
            await kernel.shutdown()


def _run(coroutine):
    import asyncio

    return asyncio.run(coroutine)
