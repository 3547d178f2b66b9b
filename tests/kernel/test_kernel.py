"""Kernel rules on a deterministic fake driver: turns, budget, kill, preemption, suspend."""

from __future__ import annotations

import asyncio

import pytest

from llmos.kernel.context import PromptTooLarge
from llmos.kernel.errors import ModelCallFailed, NoUsableModel, ProcessBusy, ProcessGone
from llmos.kernel.events import (
    ContextUsageChanged,
    ProcessExited,
    ProcessSpawned,
    SyscallFinished,
    TokenStreamed,
)
from llmos.kernel.process import ProcessState
from tests.fakes import FakeModel, default_answer


def record(kernel, *types):
    seen: list = []
    kernel.bus.subscribe(seen.append, *types)
    return seen


async def wait_for(predicate, timeout: float = 2.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.001)


async def test_spawn_chooses_an_installed_chat_model_and_sizes_its_ram(kernel, driver):
    events = record(kernel, ProcessSpawned, ContextUsageChanged)
    process = await kernel.spawn("chat")
    assert process.model == "fake-chat:1b"  # never the embedding-only model
    assert process.budget == 8192  # the app asks 8192; the model could do 32768
    assert process.reserve == 1024
    assert isinstance(events[0], ProcessSpawned) and events[0].app == "chat"
    assert process.usage is not None and process.usage.budget == 8192


async def test_context_is_capped_by_the_model_and_settings(make_kernel, driver):
    driver.models = [FakeModel("small", 2048)]
    process = await make_kernel(num_ctx=4096).spawn("chat")
    assert process.budget == 2048
    driver.models = [FakeModel("big", 131072)]
    process = await make_kernel(num_ctx=4096).spawn("chat")
    assert process.budget == 4096


async def test_no_chat_model_is_a_clear_error(kernel, driver):
    driver.models = [FakeModel("embed-only", 2048, frozenset({"embedding"}))]
    with pytest.raises(NoUsableModel, match="models pull"):
        await kernel.spawn("chat")
    with pytest.raises(NoUsableModel, match="lacks completion"):
        await kernel.spawn("chat", model="embed-only")


async def test_a_turn_streams_tokens_and_reports_both_counts(kernel, driver):
    tokens = record(kernel, TokenStreamed)
    process = await kernel.spawn("chat")
    result = await kernel.send(process.pid, "Tell me about paging")
    assert result.answer == default_answer(process.history[:-1])
    assert "".join(t.text for t in tokens) == result.answer
    assert result.prompt_tokens_reported == driver.reported[-1]
    assert result.prompt_tokens_accounted == result.usage.prompt
    assert driver.requests[-1].options["num_ctx"] == process.budget
    assert driver.requests[-1].options["num_predict"] == process.reserve
    assert (process.history[-1]["role"], process.history[-1]["content"]) == (
        "assistant",
        result.answer,
    )
    assert process.state is ProcessState.READY
    assert process.counters.model_calls == 1
    assert process.counters.generated_tokens == result.completion_tokens > 0


async def test_accounting_calibrates_to_the_backend_count(kernel, driver):
    process = await kernel.spawn("chat")
    errors = []
    for i in range(5):
        result = await kernel.send(process.pid, f"Question number {i} about schedulers and RAM")
        reported = result.prompt_tokens_reported
        errors.append(abs(result.prompt_tokens_accounted - reported) / reported)
    assert errors[0] > 0.02  # the uncalibrated guess
    assert max(errors[1:]) <= 0.02, errors


async def test_requests_never_exceed_the_budget_as_the_backend_counts(make_kernel, driver):
    kernel = make_kernel(num_ctx=600)
    process = await kernel.spawn("chat")
    assert process.budget == 600 and process.reserve == 300
    dropped = []
    for i in range(12):
        result = await kernel.send(process.pid, f"Turn {i}: " + "some words here " * 5)
        dropped.append(result.dropped_turns)
    for request, reported in zip(driver.requests, driver.reported, strict=True):
        assert reported + request.options["num_predict"] <= request.options["num_ctx"]
    assert dropped[-1] > 0
    assert process.counters.dropped_turns == dropped[-1]
    # The newest user turn always goes out.
    assert driver.requests[-1].messages[-1]["content"].startswith("Turn 11:")
    assert driver.requests[-1].messages[0]["role"] == "system"


async def test_a_prompt_that_can_never_fit_is_refused_before_sending(make_kernel, driver):
    kernel = make_kernel(num_ctx=512)
    process = await kernel.spawn("chat")
    with pytest.raises(PromptTooLarge) as refused:
        await kernel.send(process.pid, "word " * 2000)
    assert refused.value.over_by > 1000
    assert driver.requests == []
    assert process.history == []
    assert process.state is ProcessState.READY


async def test_kill_mid_stream_cancels_at_once_and_frees_the_slot(kernel, driver):
    driver.token_delay = 0.01
    driver.answer = lambda messages: "word " * 500
    exits = record(kernel, ProcessExited)
    victim = await kernel.spawn("chat")
    other = await kernel.spawn("chat")
    turn = asyncio.create_task(kernel.send(victim.pid, "go on forever"))
    await wait_for(lambda: victim.state is ProcessState.RUNNING and victim.counters.model_calls)
    waiting = asyncio.create_task(kernel.send(other.pid, "my turn"))
    await wait_for(lambda: other.state is ProcessState.WAITING)

    kernel.kill(victim.pid)
    assert victim.state is ProcessState.EXITED
    assert kernel.scheduler.free_slots == 0  # handed straight to the waiting process
    with pytest.raises(ProcessGone):
        await turn
    await wait_for(lambda: driver.closed_early == 1)
    assert [e.reason for e in exits] == ["killed"]
    driver.answer = default_answer
    driver.token_delay = 0
    assert (await asyncio.wait_for(waiting, 5)).answer
    assert await kernel.wait(victim.pid) == "killed"
    with pytest.raises(ProcessGone):
        await kernel.send(victim.pid, "hello?")


async def test_higher_priority_preempts_and_the_preempted_answer_resumes_intact(
    make_kernel, driver
):
    kernel = make_kernel(slots=1, quantum_tokens=2)
    driver.token_delay = 0.005
    finished = record(kernel, SyscallFinished)
    low = await kernel.spawn("chat", priority=0)
    high = await kernel.spawn("chat", priority=5)
    low_turn = asyncio.create_task(kernel.send(low.pid, "a long story about operating systems"))
    await wait_for(lambda: low.counters.model_calls == 1 and len(driver.requests) == 1)
    await asyncio.sleep(0.03)
    high_result = await kernel.send(high.pid, "urgent question")
    assert not low_turn.done()
    low_result = await low_turn

    outcomes = [(e.pid, e.outcome) for e in finished]
    assert outcomes[0] == (low.pid, "preempted")
    assert outcomes.index((high.pid, "ok")) < outcomes.index((low.pid, "ok"))
    # The resumed call carried the partial answer as a prefilled assistant message...
    resumed = driver.requests[-1]
    assert resumed.messages[-1]["role"] == "assistant"
    assert resumed.messages[-1]["content"]
    # ...and the whole answer is exactly what an uninterrupted run gives.
    assert low_result.answer == default_answer(low.history[:-1])
    assert low_result.preemptions == 1
    assert high_result.answer == default_answer(high.history[:-1])
    assert low.history[-1]["content"] == low_result.answer


async def test_suspend_holds_a_generation_and_resume_finishes_it(kernel, driver):
    driver.token_delay = 0.005
    process = await kernel.spawn("chat")
    turn = asyncio.create_task(kernel.send(process.pid, "count slowly"))
    await wait_for(lambda: process.state is ProcessState.RUNNING)
    await asyncio.sleep(0.02)
    kernel.suspend(process.pid)
    assert process.state is ProcessState.SUSPENDED
    await wait_for(lambda: driver.active == 0)
    calls = len(driver.requests)
    await asyncio.sleep(0.05)
    assert len(driver.requests) == calls  # nothing runs while suspended
    assert kernel.scheduler.free_slots == 1
    kernel.resume(process.pid)
    result = await asyncio.wait_for(turn, 5)
    assert result.answer == default_answer(process.history[:-1])
    assert process.state is ProcessState.READY


async def test_a_broken_stream_keeps_the_partial_answer(kernel, driver):
    process = await kernel.spawn("chat")
    driver.break_after = 5
    with pytest.raises(ModelCallFailed) as failed:
        await kernel.send(process.pid, "start answering")
    partial = failed.value.partial
    assert partial and default_answer(process.history[:1]).startswith(partial)
    assert process.history[-1]["content"] == partial
    assert process.history[-1]["interrupted"] is True
    assert process.counters.faults == 1
    assert process.state is ProcessState.READY
    assert kernel.scheduler.free_slots == 1
    # The process carries on, and its own marks never reach the backend.
    await kernel.send(process.pid, "try again")
    assert all("interrupted" not in m for m in driver.requests[-1].messages)


async def test_a_process_answers_one_turn_at_a_time(kernel, driver):
    driver.token_delay = 0.005
    process = await kernel.spawn("chat")
    first = asyncio.create_task(kernel.send(process.pid, "one"))
    await wait_for(lambda: process.busy)
    with pytest.raises(ProcessBusy):
        await kernel.send(process.pid, "two")
    await first


async def test_missing_prompt_count_falls_back_to_the_estimate(kernel, driver):
    driver.report_prompt = False
    process = await kernel.spawn("chat")
    result = await kernel.send(process.pid, "hello")
    assert result.prompt_tokens_reported is None
    assert process.counters.prompt_tokens == result.prompt_tokens_accounted


async def test_shutdown_leaves_no_task_running(kernel, driver):
    driver.token_delay = 0.01
    processes = [await kernel.spawn("chat") for _ in range(3)]
    turns = [asyncio.create_task(kernel.send(p.pid, "hi")) for p in processes]
    await wait_for(lambda: driver.active == 1)
    await kernel.shutdown()
    results = await asyncio.gather(*turns, return_exceptions=True)
    assert all(isinstance(r, ProcessGone) for r in results)
    assert driver.active == 0
    assert all(not p.alive for p in processes)
    leftover = [t for t in asyncio.all_tasks() if t.get_name().startswith("llmos-turn")]
    assert all(t.done() for t in leftover)


async def test_a_resume_in_a_tight_window_finishes_the_answer(make_kernel, driver):
    kernel = make_kernel(num_ctx=512)
    driver.token_delay = 0.002
    driver.answer = lambda messages: "word " * 200
    process = await kernel.spawn("chat")
    # A prompt that fills most of what the window allows before the answer.
    turn = asyncio.create_task(kernel.send(process.pid, "one " * 141))
    await wait_for(lambda: len(process.history) == 1 and process.state is ProcessState.RUNNING)
    await wait_for(lambda: driver.requests and process.counters.model_calls == 1)
    await asyncio.sleep(0.06)
    kernel.suspend(process.pid)
    await wait_for(lambda: driver.active == 0)
    kernel.resume(process.pid)
    result = await asyncio.wait_for(turn, 5)
    assert result.answer.startswith("word word")
    assert process.history[-1]["content"] == result.answer
    assert process.history[0]["role"] == "user"
    assert process.state is ProcessState.READY
    for request, reported in zip(driver.requests, driver.reported, strict=True):
        assert reported + request.options["num_predict"] <= 512


async def test_a_caller_that_gives_up_leaves_the_process_ready(kernel, driver):
    driver.token_delay = 0.01
    process = await kernel.spawn("chat")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(kernel.send(process.pid, "slow answer please"), 0.05)
    assert process.state is ProcessState.READY and not process.busy
    assert process.history[-1].get("interrupted") is True  # what arrived is kept
    assert kernel.scheduler.free_slots == 1
    driver.token_delay = 0
    assert (await kernel.send(process.pid, "again")).answer


async def test_a_caller_that_gives_up_while_queued_leaves_the_process_ready(kernel, driver):
    driver.token_delay = 0.01
    busy = await kernel.spawn("chat")
    queued = await kernel.spawn("chat")
    first = asyncio.create_task(kernel.send(busy.pid, "hold the slot"))
    await wait_for(lambda: busy.state is ProcessState.RUNNING)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(kernel.send(queued.pid, "behind"), 0.03)
    assert queued.state is ProcessState.READY
    assert kernel.scheduler.waiting_pids == ()
    await first


async def test_an_unexpected_driver_exception_is_a_model_call_failure(kernel, driver):
    process = await kernel.spawn("chat")
    driver.answer = lambda messages: (_ for _ in ()).throw(ValueError("bad JSON line"))
    with pytest.raises(ModelCallFailed, match="bad JSON line"):
        await kernel.send(process.pid, "hello")
    assert process.state is ProcessState.READY
    assert process.counters.faults == 1
    assert kernel.scheduler.free_slots == 1
    # Nothing was generated: the message is taken back, so sending it again is clean.
    assert process.history == []


async def test_a_suspended_waiter_does_not_preempt(make_kernel, driver):
    # A long quantum keeps the preemption pending long enough to suspend the waiter.
    kernel = make_kernel(slots=1, quantum_tokens=10)
    driver.token_delay = 0.003
    finished = record(kernel, SyscallFinished)
    low = await kernel.spawn("chat", priority=0)
    high = await kernel.spawn("chat", priority=5)
    low_turn = asyncio.create_task(kernel.send(low.pid, "long low answer"))
    await wait_for(lambda: low.state is ProcessState.RUNNING)
    high_turn = asyncio.create_task(kernel.send(high.pid, "urgent"))
    await wait_for(lambda: kernel.scheduler.waiting_pids == (high.pid,))
    assert kernel.scheduler.running[0].preempt_requested
    kernel.suspend(high.pid)
    assert not kernel.scheduler.running[0].preempt_requested
    await low_turn
    assert [(e.pid, e.outcome) for e in finished if e.pid == low.pid] == [(low.pid, "ok")]
    assert not high_turn.done()
    kernel.resume(high.pid)
    assert (await asyncio.wait_for(high_turn, 5)).answer


async def test_switching_backends_keeps_every_conversation(kernel, driver):
    from tests.fakes import FakeDriver

    process = await kernel.spawn("chat")
    await kernel.send(process.pid, "first question")
    history = list(process.history)
    other = FakeDriver(models=[FakeModel("other-model:3b", 4096)])
    await kernel.switch_driver(other)
    assert process.model == "other-model:3b"
    assert process.budget == 4096
    assert process.history == history
    result = await kernel.send(process.pid, "second question")
    sent = other.requests[-1].messages
    assert [m["content"] for m in sent[1:3]] == [h["content"] for h in history]
    assert result.answer == default_answer(process.history[:-1])


async def test_a_backend_that_cannot_take_the_processes_changes_nothing(kernel, driver):
    from tests.fakes import FakeDriver

    driver.token_delay = 0.01
    process = await kernel.spawn("chat")
    turn = asyncio.create_task(kernel.send(process.pid, "keep answering"))
    await wait_for(lambda: process.state is ProcessState.RUNNING)
    embed_only = FakeDriver(models=[FakeModel("embed-only", 2048, frozenset({"embedding"}))])
    with pytest.raises(NoUsableModel):
        await kernel.switch_driver(embed_only)
    assert kernel.driver is driver and process.model == "fake-chat:1b"
    assert not turn.done()  # the answer in flight was not stopped
    assert (await asyncio.wait_for(turn, 10)).answer


async def test_an_app_no_model_can_run_says_how_on_the_embedded_engine(make_kernel, driver):
    from llmos.apps.manifest import AppManifest, ModelPreference

    driver.kind = "embedded"
    vision = AppManifest(
        id="eyes", name="Eyes", model=ModelPreference(requires=("completion", "vision"))
    )
    with pytest.raises(
        NoUsableModel, match=r"Start Ollama and pull one \(`llmos models pull llava:7b`\)"
    ):
        await make_kernel().spawn(vision)
