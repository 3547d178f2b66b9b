"""Turns: a user message answered by scheduled model calls, tool rounds and all.

:class:`TurnMachine` is the part of :class:`~llmos.kernel.kernel.Kernel` that runs a turn:
page (the pager), fit, queue for a slot, stream, be preempted and resume, run the syscalls the
model calls, finish (calibrate the counter, account). The kernel mixes it in; it reads the
kernel's collaborators and bookkeeping, declared below for the type checker.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import time
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from llmos.drivers.base import ChatRequest, ChatStats, DriverError, Message, Tool
from llmos.kernel.context import ContextUsage, FittedRequest, PromptTooLarge, fit_request
from llmos.kernel.errors import ModelCallFailed
from llmos.kernel.events import SyscallFinished, SyscallQueued, SyscallStarted, TokenStreamed
from llmos.kernel.process import AuditEntry, Process, ProcessState
from llmos.kernel.scheduler import Lease

if TYPE_CHECKING:
    from llmos.drivers.base import ModelDriver
    from llmos.kernel.events import EventBus
    from llmos.kernel.paging import Pager
    from llmos.kernel.scheduler import Scheduler
    from llmos.kernel.syscalls import Syscalls
    from llmos.kernel.tokens import TokenCounter

log = logging.getLogger("llmos.kernel.kernel")

CHAT_SYSCALL = "model.chat"
MAX_TOOL_ROUNDS = 4
"""Rounds of tool calls in one turn; the call after the last is offered no tools."""
MAX_CALLS_PER_ROUND = 8
"""Tool calls run from one answer; the rest are answered with :data:`TOO_MANY`."""
TOO_MANY = f"Error: at most {MAX_CALLS_PER_ROUND} tool calls run at a time; this one did not."
_SENT_KEYS = ("role", "content", "images", "tool_calls", "tool_name", "thinking")
"""Message keys a backend understands; the kernel's own marks (``interrupted``) stay home."""


@dataclass(frozen=True, slots=True)
class TurnResult:
    """What one user turn produced."""

    pid: int
    answer: str
    model: str
    usage: ContextUsage
    """The context RAM of the request that produced the answer."""
    prompt_tokens_accounted: int
    """The kernel's count of the prompt it sent in the final call of the turn."""
    prompt_tokens_reported: int | None
    """The backend's count of the same prompt; None when it gave none."""
    dropped_turns: int
    completion_tokens: int
    done_reason: str
    preemptions: int
    tool_calls: tuple[dict[str, Any], ...] = ()
    over_budget: bool = False
    """The backend counted more prompt tokens than the kernel allowed (an estimate missed)."""
    evicted: int = 0
    """Turns the pager evicted to long-term memory before answering."""
    paged_in: int = 0
    """Chunks paged into context RAM during the turn."""
    page_faults: int = 0
    """Of those, chunks the pager found relevant and had to bring in."""
    syscalls: tuple[AuditEntry, ...] = ()
    """The syscalls the model made during the turn."""


@dataclass
class _Call:
    """One streamed model call's outcome."""

    parts: list[str]
    stats: ChatStats | None = None
    tool_calls: tuple[dict[str, Any], ...] = ()
    yielded: bool = False
    tools: Sequence[Tool] | None = None
    """The tool schemas the request carried."""
    first_token_at: float | None = None
    last_token_at: float | None = None


class TurnMachine:
    """Runs turns (mixed into :class:`~llmos.kernel.kernel.Kernel`)."""

    if TYPE_CHECKING:  # provided by Kernel
        driver: ModelDriver
        bus: EventBus
        scheduler: Scheduler
        pager: Pager
        syscalls: Syscalls
        _call_ids: Iterator[int]

        def _counter(self, model: str) -> TokenCounter: ...
        def _layout(self, process: Process, leaving: Collection[str] = ()) -> dict[str, Any]: ...
        def _account(self, process: Process) -> ContextUsage | None: ...
        def _publish_usage(self, process: Process, usage: ContextUsage) -> None: ...
        def _set_state(self, process: Process, state: ProcessState) -> None: ...
        def tools_for(self, process: Process) -> list[Tool] | None: ...
        def _save(self, process: Process, *, info: bool = False) -> None: ...

        @property
        def processes(self) -> tuple[Process, ...]: ...

    async def _run_turn(self, process: Process) -> TurnResult:
        """Answer the newest user message, running the syscalls the model calls on the way."""
        before = (
            process.counters.evictions,
            process.counters.page_ins,
            process.counters.page_faults,
        )
        completion = 0
        audited = process.counters.syscalls
        try:
            results: list[Message] = []
            for rounds in itertools.count():
                process._tools_off = rounds >= MAX_TOOL_ROUNDS
                try:
                    result = await self._answer(process)
                except PromptTooLarge:
                    if not results:
                        raise
                    # The last round's calls and results do not fit beside the turn: the
                    # round leaves the history and the model answers without tools.
                    log.warning(
                        "pid %d: %d tool results did not fit; answering without them",
                        process.pid,
                        len(results),
                    )
                    del process.history[-len(results) - 1 :]
                    process._tools_off = True
                    result = await self._answer(process)
                completion += result.completion_tokens
                if not result.tool_calls or process._tools_off or not process.tools:
                    break
                results = []
                for number, call in enumerate(result.tool_calls):
                    if number < MAX_CALLS_PER_ROUND:
                        name, output = await self.syscalls.dispatch(process, call)
                    else:
                        name, output = str(call.get("function", {}).get("name")), TOO_MANY
                    results.append(
                        {"role": "tool", "tool_name": name, "content": output, "at": time.time()}
                    )
                process.history.extend(results)
                self._account(process)
        finally:
            process._tools_off = False
        counters = process.counters
        made = counters.syscalls - audited  # the newest entries of the audit log
        return replace(
            result,
            syscalls=tuple(process.audit)[-made:] if made else (),
            completion_tokens=completion,
            evicted=counters.evictions - before[0],
            paged_in=counters.page_ins - before[1],
            page_faults=counters.page_faults - before[2],
        )

    async def _answer(self, process: Process) -> TurnResult:
        """One model call's worth of the turn (resumed across preemptions)."""
        counter = self._counter(process.model)
        partial = ""
        generated = 0
        preemptions = 0
        fitted: FittedRequest | None = None
        try:
            while True:
                await self._wait_resumed(process)
                if not partial:
                    await self.pager.prepare(process)
                history = process.history
                reserve = process.reserve
                if partial:
                    # Resume a preempted answer: the model continues a prefilled assistant
                    # message. The partial answer moves from the reserve into the prompt, so
                    # the reserve gives back what the fit charges for it (margin included)
                    # and a turn that fitted before still fits.
                    prefill: Message = {"role": "assistant", "content": partial}
                    history = [*history, prefill]
                    charged = math.ceil(counter.message(prefill) * (1 + counter.margin))
                    reserve = max(16, process.reserve - charged)
                try:
                    layout = self._layout(process)
                    layout.update(reserve=reserve, counter=counter, history=history)
                    fitted = fit_request(**layout)
                except PromptTooLarge:
                    if fitted is None or not partial:
                        raise
                    # The answer has grown past what the window can continue: keep it.
                    ended = _Call(parts=[], stats=ChatStats(done_reason="length"))
                    return self._finish_turn(
                        process, counter, fitted, ended, partial, generated, preemptions
                    )
                process.counters.dropped_turns = fitted.dropped_turns
                self._publish_usage(process, fitted.usage)

                call = await self._model_call(process, fitted, reserve, partial)
                partial += "".join(call.parts)
                generated += len(call.parts)
                if call.yielded:
                    preemptions += 1
                    process.counters.preemptions += 1
                    process.counters.generated_tokens += len(call.parts)
                    continue
                return self._finish_turn(
                    process,
                    counter,
                    fitted,
                    call,
                    partial,
                    generated - len(call.parts),
                    preemptions,
                )
        finally:
            # However the turn ended (answered, failed, killed, cancelled by the caller), a
            # live process is ready again; a suspended one stays suspended.
            if process.state in (ProcessState.WAITING, ProcessState.RUNNING):
                self._set_state(process, ProcessState.READY)

    async def _wait_resumed(self, process: Process) -> None:
        if not process._resumed.is_set():
            await process._resumed.wait()

    async def _model_call(
        self, process: Process, fitted: FittedRequest, reserve: int, prefill: str
    ) -> _Call:
        """One scheduled chat syscall; returns when done, preempted, or failed."""
        call_id = next(self._call_ids)
        call = _Call(parts=[])
        queued = time.perf_counter()
        self._set_state(process, ProcessState.WAITING)
        self.bus.publish(SyscallQueued(process.pid, call_id, CHAT_SYSCALL, process.priority))
        outcome = "cancelled"
        error = ""
        lease = await self.scheduler.acquire(process.pid, process.priority)
        started = time.perf_counter()
        try:
            process._lease = lease
            self.bus.publish(SyscallStarted(process.pid, call_id, CHAT_SYSCALL, started - queued))
            if not process._resumed.is_set():
                call.yielded = True
                outcome = "suspended"
                return call
            self._set_state(process, ProcessState.RUNNING)
            process.counters.model_calls += 1
            await self._stream(process, fitted, reserve, lease, call)
            if not call.yielded:
                outcome = "ok"
            elif process._resumed.is_set():
                outcome = "preempted"
            else:
                outcome = "suspended"
        except asyncio.CancelledError:
            self._keep_partial(process, prefill + "".join(call.parts))
            raise
        except Exception as failure:
            if not isinstance(failure, DriverError):
                # A driver must raise DriverErrors; if one slips, the process still survives.
                log.exception("pid %d: the model backend failed unexpectedly", process.pid)
                failure = DriverError(
                    f"The model backend failed unexpectedly ({type(failure).__name__}: {failure})."
                )
            outcome, error = "failed", str(failure)
            self._keep_partial(process, prefill + "".join(call.parts))
            process.counters.faults += 1
            raise ModelCallFailed(failure, prefill + "".join(call.parts)) from None
        finally:
            process._lease = None
            self.scheduler.release(lease)
            self.bus.publish(
                SyscallFinished(
                    process.pid,
                    call_id,
                    CHAT_SYSCALL,
                    outcome,
                    time.perf_counter() - started,
                    error,
                )
            )
        return call

    async def _side_call(
        self, process: Process, name: str, messages: list[Message], *, num_predict: int
    ) -> str:
        """A model call the kernel makes for a process (a summary, say): scheduled at the
        process's priority like its own calls, not streamed to anyone, not preempted.

        Raises:
            DriverError: the backend failed.
        """
        call_id = next(self._call_ids)
        queued = time.perf_counter()
        self._set_state(process, ProcessState.WAITING)
        self.bus.publish(SyscallQueued(process.pid, call_id, name, process.priority))
        lease = await self.scheduler.acquire(process.pid, process.priority)
        started = time.perf_counter()
        outcome, error = "cancelled", ""
        parts: list[str] = []
        try:
            self._set_state(process, ProcessState.RUNNING)
            self.bus.publish(SyscallStarted(process.pid, call_id, name, started - queued))
            request = ChatRequest(
                model=process.model,
                messages=messages,
                options={**process.options, "num_ctx": process.budget, "num_predict": num_predict},
            )
            process.counters.model_calls += 1
            stream = self.driver.chat(request)
            async with contextlib.aclosing(stream):
                async for chunk in stream:
                    parts.append(chunk.content)
                    lease.tick()
            outcome = "ok"
            return "".join(parts)
        except DriverError as failure:
            outcome, error = "failed", str(failure)
            raise
        finally:
            self.scheduler.release(lease)
            self.bus.publish(
                SyscallFinished(
                    process.pid, call_id, name, outcome, time.perf_counter() - started, error
                )
            )

    async def _stream(
        self, process: Process, fitted: FittedRequest, reserve: int, lease: Lease, call: _Call
    ) -> None:
        request = ChatRequest(
            model=process.model,
            messages=[_for_backend(m) for m in fitted.messages],
            tools=self.tools_for(process),
            options={**process.options, "num_ctx": process.budget, "num_predict": reserve},
        )
        call.tools = request.tools
        publish = self.bus.publish
        pid = process.pid
        journal = process._journal
        stream = self.driver.chat(request)
        async with contextlib.aclosing(stream):
            async for chunk in stream:
                if chunk.content:
                    now = time.perf_counter()
                    if call.first_token_at is None:
                        call.first_token_at = now
                    call.last_token_at = now
                    call.parts.append(chunk.content)
                    lease.tick()
                    publish(TokenStreamed(pid, chunk.content))
                    if journal is not None:
                        journal.stream(chunk.content)
                if chunk.tool_calls:
                    call.tool_calls += chunk.tool_calls
                if chunk.done:
                    call.stats = chunk.stats
                    return
                if lease.should_yield():
                    call.yielded = True
                    return

    def _finish_turn(
        self,
        process: Process,
        counter: TokenCounter,
        fitted: FittedRequest,
        call: _Call,
        answer: str,
        generated_before: int,
        preemptions: int,
    ) -> TurnResult:
        stats = call.stats or ChatStats()
        accounted = fitted.usage.prompt
        reported = stats.prompt_tokens or None  # 0 means "not counted", as on a cache hit
        over_budget = reported is not None and reported > fitted.usage.prompt_limit
        if reported is not None:
            # A count at num_ctx means the backend cut the prompt: only a floor to learn from.
            truncated = reported >= process.budget
            counter.observe(fitted.messages, call.tools, reported, truncated=truncated)
        if over_budget:
            process.counters.overflows += 1
            log.warning(
                "pid %d: the backend counted %s prompt tokens, over the %d available",
                process.pid,
                reported,
                fitted.usage.prompt_limit,
            )
        generated = stats.completion_tokens
        if generated is None:
            generated = len(call.parts)
        counters = process.counters
        counters.prompt_tokens += reported if reported is not None else accounted
        counters.generated_tokens += generated
        if stats.eval_seconds:
            counters.tokens_per_second = generated / stats.eval_seconds
        elif call.first_token_at is not None and call.last_token_at is not None:
            span = call.last_token_at - call.first_token_at
            counters.tokens_per_second = (len(call.parts) - 1) / span if span > 0 else 0.0

        reply: Message = {"role": "assistant", "content": answer, "at": time.time()}
        if call.tool_calls:
            reply["tool_calls"] = list(call.tool_calls)
        process.history.append(reply)
        if stats.completion_tokens is not None and not preemptions:
            counter.learn_answer(reply, stats.completion_tokens)
        self._set_state(process, ProcessState.READY)
        self._account(process)
        if reported is not None:
            # What was learned changes every idle process's count on this model (the tool
            # schemas' cost, the scale): recount them so the task manager stays true.
            idle = [p for p in self.processes if p.alive and not p.busy and p is not process]
            for other in idle:
                if other.model == process.model:
                    self._account(other)
        return TurnResult(
            pid=process.pid,
            answer=answer,
            model=process.model,
            usage=fitted.usage,
            prompt_tokens_accounted=accounted,
            prompt_tokens_reported=reported,
            dropped_turns=fitted.dropped_turns,
            completion_tokens=generated_before + generated,
            done_reason=stats.done_reason,
            preemptions=preemptions,
            tool_calls=call.tool_calls,
            over_budget=over_budget,
        )

    def _keep_partial(self, process: Process, partial: str) -> None:
        if partial:
            process.history.append(
                {"role": "assistant", "content": partial, "interrupted": True, "at": time.time()}
            )
            self._save(process)


def _for_backend(message: Message) -> Message:
    return {key: message[key] for key in _SENT_KEYS if key in message}
