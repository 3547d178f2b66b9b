"""The embedded engine with the real default model (Qwen2.5-Coder-0.5B-Instruct, Q4_K_M).

Kept few and short: each loads the model once (under a second) and generates a handful of
tokens.
"""

from __future__ import annotations

import asyncio

import pytest

from llmos.bootstrap import build_kernel
from llmos.config import load_settings
from llmos.drivers.base import BackendUnavailable, ChatRequest, DriverError
from llmos.drivers.embedded_driver import EmbeddedDriver
from llmos.drivers.model_store import DEFAULT_RECIPE
from llmos.kernel.context import PromptTooLarge

NAME = DEFAULT_RECIPE.name
GREEDY = {"temperature": 0.0, "seed": 7}
QUESTION = [
    {"role": "system", "content": "You are a terse assistant."},
    {"role": "user", "content": "What is 2+2? Answer with just the number."},
]


@pytest.fixture
async def engine(default_model):
    driver = EmbeddedDriver(default_model, name=NAME, n_ctx=4096)
    await driver.load()
    yield driver
    await driver.close()


async def test_a_chat_answer_streams_token_by_token(engine):
    request = ChatRequest(NAME, QUESTION, options={**GREEDY, "num_predict": 16})
    chunks = [chunk async for chunk in engine.chat(request)]
    answer = "".join(c.content for c in chunks)
    assert "4" in answer
    final = chunks[-1]
    assert final.done and final.stats is not None
    assert final.stats.done_reason == "stop"
    assert final.stats.prompt_tokens == engine.exact_tokenizer(NAME).prompt(QUESTION, None)
    assert final.stats.completion_tokens == engine.last_generated >= len(chunks) - 1


async def test_the_prompt_uses_the_model_chat_template_and_continues_a_prefill(engine):
    counter = engine.exact_tokenizer(NAME)
    prompt = counter.render(QUESTION)
    assert prompt.startswith("<|im_start|>system\nYou are a terse assistant.<|im_end|>")
    assert prompt.endswith("<|im_start|>assistant\n")
    prefilled = counter.render([*QUESTION, {"role": "assistant", "content": "The answer is"}])
    assert prefilled.endswith("<|im_start|>assistant\nThe answer is")


async def test_cancelling_stops_generation_within_one_token(engine):
    ask = [{"role": "user", "content": "Count from 1 to 200, one number per line."}]
    stream = engine.chat(ChatRequest(NAME, ask, options={**GREEDY, "num_predict": 400}))
    received = [await anext(stream) for _ in range(3)]
    await stream.aclose()
    async with engine._busy:  # the worker has ended
        pass
    assert all(chunk.content for chunk in received)
    assert engine.last_generated <= len(received) + 1


async def test_cancelling_aborts_the_evaluation_of_a_long_prompt(engine):
    long = [{"role": "user", "content": "Summarise: " + "the kernel pages memory. " * 500}]
    prompt_tokens = engine.exact_tokenizer(NAME).prompt(long, None)
    stream = engine.chat(ChatRequest(NAME, long, options={"num_predict": 5}))
    first = asyncio.create_task(anext(stream))
    await asyncio.sleep(0.5)  # evaluating ~2,500 tokens takes far longer on a CPU
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    await stream.aclose()
    async with engine._busy:
        pass
    assert engine.last_generated == 0
    # The abort callback stopped llama.cpp part-way through the prompt.
    assert engine._llm.n_tokens < prompt_tokens


async def test_the_kernel_counts_exactly_what_the_engine_counts(default_model):
    driver = EmbeddedDriver(default_model, name=NAME, n_ctx=4096)
    kernel = build_kernel(load_settings({"num_ctx": 4096}), driver=driver)
    try:
        assert kernel.scheduler.slots == 1
        process = await kernel.spawn("chat", model=NAME)
        process.options.update(GREEDY, num_predict=24)
        for question in ("What is 2+2?", "And 3+3?"):
            result = await kernel.send(process.pid, question)
            assert result.usage.exact
            assert result.prompt_tokens_accounted == result.prompt_tokens_reported
    finally:
        await kernel.shutdown()


async def test_a_paged_in_memory_page_is_what_the_real_model_answers_from(default_model):
    """A fact only the page holds (a made-up one) comes back in the answer."""
    from llmos.kernel.pages import Page

    driver = EmbeddedDriver(default_model, name=NAME, n_ctx=4096)
    kernel = build_kernel(load_settings({"num_ctx": 4096}), driver=driver)
    try:
        process = await kernel.spawn("chat", model=NAME)
        process.options.update(GREEDY, num_predict=32)
        fact = "The access code of the Zorblat vault is 7731. The vault opens at dawn."
        page = Page("/Notes/vault.md", "/Notes/vault.md", "whole document, 1 chunks", fact)
        usage = kernel.page_in(process.pid, [page])
        assert usage.exact and usage.segments["paged_in"] == kernel.page_cost(process.pid, page)
        result = await kernel.send(process.pid, "What is the access code of the Zorblat vault?")
        assert "7731" in result.answer
        assert result.prompt_tokens_accounted == result.prompt_tokens_reported
    finally:
        await kernel.shutdown()


async def test_an_over_long_prompt_is_refused_before_generation(default_model):
    driver = EmbeddedDriver(default_model, name=NAME, n_ctx=4096)
    kernel = build_kernel(load_settings({"num_ctx": 1024}), driver=driver)
    try:
        process = await kernel.spawn("chat", model=NAME)
        with pytest.raises(PromptTooLarge) as refused:
            await kernel.send(process.pid, "lorem ipsum dolor " * 400)
        assert "estimate" not in str(refused.value)  # counted exactly, not guessed
        assert driver.generations == 0
    finally:
        await kernel.shutdown()


async def test_embeddings_come_from_the_same_model(engine):
    vectors = await engine.embed(NAME, ["paging", "a context window"])
    assert len(vectors) == 2 and len(vectors[0]) == 896
    assert vectors[0] != vectors[1]


async def test_odd_options_fail_cleanly_instead_of_hanging(engine):
    request = ChatRequest(NAME, QUESTION, options={"seed": None, "stop": 5, "num_predict": 4})
    async with asyncio.timeout(60):  # a guard against a hang, not a speed assertion
        with pytest.raises(DriverError, match="failed while generating"):
            [chunk async for chunk in engine.chat(request)]
    # The engine is free again.
    chunks = [c async for c in engine.chat(ChatRequest(NAME, QUESTION, options=GREEDY))]
    assert chunks[-1].done


async def test_close_stops_a_running_generation_at_the_next_token(engine):
    ask = [{"role": "user", "content": "Count from 1 to 200, one number per line."}]
    stream = engine.chat(ChatRequest(NAME, ask, options={**GREEDY, "num_predict": 300}))
    read = [await anext(stream) for _ in range(3)]
    await engine.close()
    assert engine.last_generated <= len(read) + 2
    with pytest.raises(BackendUnavailable, match="shut down"):
        [c async for c in engine.chat(ChatRequest(NAME, QUESTION, options=GREEDY))]
    await stream.aclose()


async def test_a_stream_abandoned_after_its_end_does_not_disturb_the_next(engine):
    first = engine.chat(ChatRequest(NAME, QUESTION, options={**GREEDY, "num_predict": 2}))
    await anext(first)
    async with engine._busy:  # the worker has finished; its "done" is still unread
        pass
    await first.aclose()
    second = [c async for c in engine.chat(ChatRequest(NAME, QUESTION, options=GREEDY))]
    assert second[-1].done and second[-1].stats.done_reason == "stop"


async def test_an_app_without_a_system_prompt_runs(default_model):
    from llmos.apps.manifest import AppManifest

    bare = AppManifest(id="bare", name="Bare")
    driver = EmbeddedDriver(default_model, name=NAME, n_ctx=2048)
    kernel = build_kernel(load_settings({"num_ctx": 2048}), driver=driver)
    try:
        process = await kernel.spawn(bare, model=NAME)
        process.options.update(GREEDY, num_predict=8)
        result = await kernel.send(process.pid, "Say hi")
        # Qwen's template adds its own system prompt here; the count still matches.
        assert result.prompt_tokens_accounted == result.prompt_tokens_reported
    finally:
        await kernel.shutdown()


def test_a_damaged_gguf_chosen_by_path_is_a_clear_error(default_model, tmp_path, capsys):
    from llmos.cli import main

    damaged = tmp_path / "damaged.gguf"
    damaged.write_bytes(default_model.read_bytes()[:1_000_000])
    assert main(["run", "chat", "--prompt", "hi", "--model", str(damaged)]) == 1
    err = capsys.readouterr().err
    assert "could not load damaged.gguf" in err and "Traceback" not in err


def test_tool_calls_are_read_tagged_bare_or_fenced_but_not_from_plain_json():
    from llmos.drivers.embedded_driver import _may_be_call, _tool_calls

    names = {"memory_search", "clock"}
    tagged = 'Let me look.<tool_call>{"name": "clock", "arguments": {}}</tool_call>'
    assert _tool_calls(tagged, names) == ({"function": {"name": "clock", "arguments": {}}},)
    bare = '{"name": "memory_search", "arguments": {"query": "cats"}}'
    assert _tool_calls(bare, names)[0]["function"]["arguments"] == {"query": "cats"}
    fenced = '```json\n[{"name": "clock", "arguments": {}}]\n```'
    assert _tool_calls(fenced, names)[0]["function"]["name"] == "clock"
    assert _tool_calls('{"name": "Ada", "age": 36}', names) == ()  # JSON the user asked for
    assert _tool_calls(bare, set()) == ()  # no tools offered: never a call
    assert _may_be_call("  <tool") and _may_be_call('{"na') and not _may_be_call("Hello")
