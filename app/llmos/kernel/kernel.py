"""The kernel: the process table, and every model call as a scheduled syscall.

Qt-free asyncio. The CLI, the desktop and the tests build it the same way (see
``llmos.bootstrap``) and watch it through the :class:`EventBus`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Collection, Sequence
from typing import Any

from llmos.apps.manifest import AppManifest
from llmos.apps.registry import AppRegistry
from llmos.drivers.base import (
    DriverError,
    Message,
    ModelDriver,
    ModelInfo,
    Tool,
)
from llmos.kernel.consent import ConsentBook
from llmos.kernel.context import ContextUsage, FittedRequest, PromptTooLarge, fit_request
from llmos.kernel.errors import (
    KernelError,
    ModelCallFailed,
    NoSuchProcess,
    NotAnAgent,
    NoUsableModel,
    PageTooLarge,
    ProcessBusy,
    ProcessGone,
    ProcessHeld,
)
from llmos.kernel.events import (
    ContextUsageChanged,
    EventBus,
    PagesChanged,
    ProcessExited,
    ProcessSpawned,
    ProcessStateChanged,
)
from llmos.kernel.hibernation import HIBERNATED, Hibernation
from llmos.kernel.pages import Page, page_room
from llmos.kernel.paging import MemoryLink, Pager, PagingPolicy, memory_folder
from llmos.kernel.process import Mail, Process, ProcessState
from llmos.kernel.scheduler import Scheduler
from llmos.kernel.sessions import SessionStore
from llmos.kernel.syscalls import Syscalls
from llmos.kernel.tokens import Calibration, TokenCounter
from llmos.kernel.turns import TurnMachine, TurnResult

__all__ = ["Kernel", "TurnResult"]  # TurnResult is defined in turns.py, used from here

EXAMPLE_MODELS = {"vision": "llava:7b", "embedding": "nomic-embed-text", "tools": "qwen2.5:0.5b"}
"""A model to suggest pulling when none installed has a capability an app needs."""


class Kernel(TurnMachine, Hibernation):
    """Runs agent-app processes on one model backend.

    Args:
        driver: the model backend.
        apps: installed apps.
        scheduler: shares the backend's slots.
        bus: where events are published.
        default_model: the model to use when an app has no preference (settings' ``model``).
        num_ctx: the largest context RAM any process gets, in tokens.
        options: model options sent with every call (temperature, seed, ...).
        memory: long-term memory for paging (see :mod:`llmos.kernel.paging`); without it
            processes still run, and their oldest turns are left out of full requests.
        paging: when and how much the pager evicts and pages in.
        sessions: where processes are written down as they change (see
            :mod:`llmos.kernel.hibernation`); without it pids restart at 1, and shutting down
            kills the processes instead of hibernating them.
    """

    def __init__(
        self,
        driver: ModelDriver,
        *,
        apps: AppRegistry,
        scheduler: Scheduler | None = None,
        bus: EventBus | None = None,
        default_model: str | None = None,
        num_ctx: int = 8192,
        options: dict[str, Any] | None = None,
        memory: MemoryLink | None = None,
        paging: PagingPolicy | None = None,
        sessions: SessionStore | None = None,
    ) -> None:
        self.driver = driver
        self.apps = apps
        self.scheduler = scheduler or Scheduler()
        self.bus = bus or EventBus()
        self.default_model = default_model
        self.num_ctx = num_ctx
        self.options = dict(options or {})
        self.calibration = Calibration()
        self._processes: dict[int, Process] = {}
        self._pids = itertools.count(1)
        self._call_ids = itertools.count(1)
        self.pager = Pager(self, paging)
        self.pager.link = memory
        self.syscalls = Syscalls(self)
        self.consent = ConsentBook()
        """Who may make sensitive syscalls; the desktop sets its ``asker``."""
        self._jobs: dict[int, asyncio.Task[TurnResult]] = {}
        self.sessions = sessions
        self._settling: set[asyncio.Task[None]] = set()

    @property
    def memory(self) -> MemoryLink | None:
        """Long-term memory as the pager reaches it; may be attached after start-up."""
        return self.pager.link

    @memory.setter
    def memory(self, link: MemoryLink | None) -> None:
        self.pager.link = link

    # -- the process table -----------------------------------------------------------------

    @property
    def processes(self) -> tuple[Process, ...]:
        return tuple(self._processes.values())

    def get(self, pid: int) -> Process:
        try:
            return self._processes[pid]
        except KeyError:
            raise NoSuchProcess(pid) from None

    async def spawn(
        self,
        app: AppManifest | str,
        *,
        priority: int | None = None,
        parent_pid: int | None = None,
        model: str | None = None,
        detached: bool = False,
    ) -> Process:
        """Start a process of ``app`` on the best available model.

        Raises:
            AppNotFound, NoUsableModel, DriverError (backend down, model missing).
        """
        manifest = self.apps.get(app) if isinstance(app, str) else app
        if manifest.kind != "agent":
            raise NotAnAgent(
                f"{manifest.name} is a desktop tool, not an agent app: open it from the "
                "desktop's launcher."
            )
        info = await self.choose_model(manifest, model)
        await self.driver.prepare(info.name)
        budget, reserve = self._ram_for(manifest, info)
        process = Process(
            pid=await self._new_pid(),
            app=manifest,
            model=info.name,
            priority=manifest.priority if priority is None else priority,
            budget=budget,
            reserve=reserve,
            parent_pid=parent_pid,
            detached=detached,
            options=dict(self.options),
        )
        process.memory_folder = memory_folder(manifest.id, process.pid, time.time())
        process.capabilities = info.capabilities
        process.tools = self.syscalls.tools(process, info.parameter_size)
        self._open_journal(process)
        self._processes[process.pid] = process
        parent = self._processes.get(parent_pid or 0)
        if parent is not None and not detached:
            self._save(parent)  # it sleeps and wakes with its parent
        self.bus.publish(
            ProcessSpawned(
                process.pid, manifest.id, process.model, process.priority, process.parent_pid
            )
        )
        self._account(process)
        return process

    def _ram_for(self, app: AppManifest, info: ModelInfo) -> tuple[int, int]:
        """Context RAM (budget, reserve for the answer) for ``app`` on ``info``."""
        budget = min(app.model.context or self.num_ctx, self.num_ctx)
        if info.context_length:
            budget = min(budget, info.context_length)
        return budget, min(app.model.reserve, budget // 2)

    async def choose_model(
        self, app: AppManifest, override: str | None = None, *, driver: ModelDriver | None = None
    ) -> ModelInfo:
        """The model a process of ``app`` runs on: ``override``, the app's first installed
        preference, the default model, or the first installed model with what the app needs.

        Args:
            driver: choose on this backend instead of the kernel's own.
        """
        driver = driver or self.driver
        needs = set(app.model.requires)
        wanted = override or None
        if wanted:
            info = await driver.model_info(wanted)
            self._check_capabilities(app, info, needs)
            return info
        installed = await driver.list_models()
        by_name = {m.name: m for m in installed}
        for name in (*app.model.prefer, self.default_model):
            if name and name in by_name and needs <= by_name[name].capabilities:
                return by_name[name]
        for info in installed:
            if needs <= info.capabilities:
                return info
        example = next((EXAMPLE_MODELS[need] for need in EXAMPLE_MODELS if need in needs), "")
        pull = f"`llmos models pull {example or 'qwen2.5:0.5b'}`"
        if driver.kind == "embedded":  # it runs one GGUF and downloads nothing
            how = (
                f"Start Ollama and pull one ({pull}), or run a GGUF that has what it needs "
                "with --model /path/to/model.gguf."
            )
        else:
            how = f"Pull one, for example {pull}."
        raise NoUsableModel(
            f"No installed model at {driver.location} can run {app.name} "
            f"(it needs {', '.join(sorted(needs))}). {how}"
        )

    @staticmethod
    def _check_capabilities(app: AppManifest, info: ModelInfo, needs: set[str]) -> None:
        missing = needs - info.capabilities
        if missing and info.capabilities:
            raise NoUsableModel(
                f"The model '{info.name}' cannot run {app.name}: it lacks "
                f"{', '.join(sorted(missing))} (it offers {', '.join(sorted(info.capabilities))})."
                " Choose another with --model."
            )

    def kill(self, pid: int) -> None:
        """End a process now: its generation is cancelled and its slot freed at once."""
        process = self.get(pid)
        if process.alive:
            self._end(process, "killed")

    def exit(self, pid: int) -> None:
        """End a process normally (its app is done)."""
        process = self.get(pid)
        if process.alive:
            self._end(process, "exited")

    def suspend(self, pid: int) -> None:
        """Stop scheduling a process; a generation in flight stops at the next token and is
        kept, to be resumed where it stopped."""
        process = self.get(pid)
        if not process.alive or process.state is ProcessState.SUSPENDED:
            return
        process._resumed.clear()
        self.scheduler.hold(pid)
        if process._lease is not None:
            process._lease.request_yield(force=True)
        self._set_state(process, ProcessState.SUSPENDED)
        self._save(process)

    def resume(self, pid: int) -> None:
        """Schedule a suspended process again (a held one stays suspended: see ``revive``)."""
        process = self.get(pid)
        if process.state is not ProcessState.SUSPENDED or process.held:
            return
        process._resumed.set()
        self._set_state(process, ProcessState.WAITING if process.busy else ProcessState.READY)
        self.scheduler.unhold(pid)
        self._save(process)

    def set_priority(self, pid: int, priority: int) -> None:
        process = self.get(pid)
        process.priority = priority
        self.scheduler.set_priority(pid, priority)
        self._save(process)

    async def wait(self, pid: int) -> str:
        """Wait until a process exits; returns why (``exited``, ``killed``)."""
        process = self.get(pid)
        await process._exited.wait()
        return process.exit_reason

    async def switch_driver(
        self, driver: ModelDriver, *, scheduler: Scheduler | None = None
    ) -> None:
        """Move every process to another backend (Ollama came up, or went away).

        Conversations are kept whole; a turn in flight is stopped and its partial answer
        kept. Each process gets the model the new backend would give its app, and its
        context RAM is resized and recounted for that model.

        Raises:
            DriverError, KernelError: the new backend cannot run some process's app; nothing
                has changed (no turn was stopped) and ``driver`` is left to the caller.
        """
        # Choose and load every model first, so a backend that cannot take the processes
        # changes nothing.
        alive = [p for p in self.processes if p.alive and not p.held]
        chosen: dict[int, ModelInfo] = {}
        for process in alive:
            info = await self.choose_model(process.app, driver=driver)
            await driver.prepare(info.name)
            chosen[process.pid] = info
        for process in alive:
            if process.busy and process._turn is not None:
                process._turn.cancel()
        turns = [p._turn for p in self.processes if p._turn is not None]
        if turns:
            await asyncio.gather(*turns, return_exceptions=True)
        old, self.driver = self.driver, driver
        if scheduler is not None:
            self.scheduler = scheduler
        for process in alive:
            info = chosen[process.pid]
            process.model = info.name
            process.budget, process.reserve = self._ram_for(process.app, info)
            process.capabilities = info.capabilities
            process.tools = self.syscalls.tools(process, info.parameter_size)
            self._account(process)
        await old.close()
        for process in self.processes:
            if process.alive and process.held:
                # Its model may be on the new backend (Ollama came up): try it quietly.
                with contextlib.suppress(KernelError, DriverError):
                    await self.revive(process.pid)

    async def shutdown(self) -> None:
        """Hibernate every process (kill them, without a session store), wait for what is
        being written (conversation pages, session logs), and close the backend.

        Generations in flight are cancelled, not waited for; their partial answers are kept.
        """
        reason = HIBERNATED if self.sessions is not None else "killed"
        for process in self.processes:
            if process.alive:
                self._end(process, reason)
        turns = [p._turn for p in self.processes if p._turn is not None]
        if turns:
            await asyncio.gather(*turns, return_exceptions=True)
        await self.settled()
        await self.pager.flush()
        await self.driver.close()
        if self.sessions is not None:
            await asyncio.to_thread(self.sessions.close)

    # -- memory pages ----------------------------------------------------------------------

    def page_room(self, pid: int, replacing: Collection[str] = ()) -> int:
        """Tokens new memory pages may take in a process's context RAM right now.

        The prompt limit (budget less the answer's reserve) shrunk by the token counter's
        error margin, less the system prompt, pinned memory, tool schemas, the pages that
        stay (all but those whose keys are in ``replacing``), and room kept for the
        conversation: the largest of ``CONVERSATION_FLOOR_TOKENS`` (256), an eighth of the
        prompt limit, and the newest turn. See :func:`llmos.kernel.pages.page_room`.
        """
        return page_room(**self._layout(self.get(pid), leaving=replacing))

    def page_cost(self, pid: int, page: Page) -> int:
        """Tokens ``page`` takes in a process's context RAM, as :meth:`page_in` charges it."""
        return self._counter(self.get(pid).model).message(page.message)

    def page_in(self, pid: int, pages: Sequence[Page]) -> ContextUsage:
        """Put memory pages into a process's context RAM and return its new usage.

        A page whose key the process already holds replaces that page in place; others are
        added after the pages held. Chunks are never held twice: a page whose chunks another
        page already holds is skipped, and a held page whose chunks a new page holds (one
        chunk of a document, then the whole document) is taken out. The pager's pages make
        way for the user's when both do not fit. Allowed while a turn is
        in flight: the pages go into the next request (a preempted or suspended turn picks
        them up when it resumes).

        Raises:
            ProcessGone: the process has exited.
            PageTooLarge: the pages cost more than :meth:`page_room` gives them; nothing
                changes.
        """
        process = self.get(pid)
        if not process.alive:
            raise ProcessGone(pid, process.exit_reason)
        held = process.paged_in
        incoming = {
            page.key: page
            for page in pages
            if not any(_covers(other, page) for other in held if other.key != page.key)
        }
        if not incoming:
            return self._fit_next(process).usage  # all of it is held already
        superseded = {
            page.key
            for page in held
            if page.key not in incoming and any(_covers(new, page) for new in incoming.values())
        }
        sources = [page.source for page in incoming.values()]
        tokens = sum(self.page_cost(pid, page) for page in incoming.values())
        room = self.page_room(pid, replacing=[*incoming.keys(), *superseded])
        pagers = {page.key for page in held if page.by_pager and page.key not in incoming}
        if tokens > room and pagers:
            # What the user puts in beats what the pager chose: its pages make way.
            without = self.page_room(pid, replacing=[*incoming.keys(), *superseded, *pagers])
            if tokens <= without:
                superseded |= pagers
                room = without
        if tokens > room:
            raise PageTooLarge(sources, tokens=tokens, room=room, budget=process.budget)
        held_chunks = {chunk for page in held for chunk in page.chunk_ids}
        held_keys = {page.key for page in held}
        process.paged_in = [
            *(incoming.get(page.key, page) for page in held if page.key not in superseded),
            *(page for key, page in incoming.items() if key not in held_keys),
        ]
        try:
            fitted = self._fit_next(process)
        except PromptTooLarge as refused:
            # The room adds up messages one by one; a tokenizer that counts the whole prompt
            # can find it larger still.
            process.paged_in = held
            raise PageTooLarge(
                sources,
                tokens=tokens,
                room=max(0, tokens - refused.over_by),
                budget=process.budget,
            ) from None
        process.counters.page_ins += sum(
            len(set(page.chunk_ids) - held_chunks) if page.chunk_ids else 1
            for page in incoming.values()
        )
        self.bus.publish(PagesChanged(pid, tuple(process.paged_in)))
        self._publish_usage(process, fitted.usage)
        return fitted.usage

    def page_out(self, pid: int, key: str) -> ContextUsage | None:
        """Take the page with ``key`` out of a process's context RAM; return the new usage.

        Like :meth:`page_in`, this applies from the next request. Returns None, changing
        nothing, when the process holds no page with that key (the pager, or another
        window, took it out first). Also None when the conversation cannot fit the context
        RAM even without the page (only after the budget shrank, see :meth:`_account`).

        Raises:
            ProcessGone: the process has exited.
        """
        process = self.get(pid)
        if not process.alive:
            raise ProcessGone(pid, process.exit_reason)
        kept = [page for page in process.paged_in if page.key != key]
        if len(kept) == len(process.paged_in):
            return None
        process.paged_in = kept
        self.bus.publish(PagesChanged(pid, tuple(kept)))
        return self._account(process)

    # -- turns -----------------------------------------------------------------------------

    async def send(self, pid: int, text: str, *, images: Sequence[str | bytes] = ()) -> TurnResult:
        """Give a process a user message and wait for its answer (streamed as events).

        Raises:
            PromptTooLarge: the message cannot fit the process's context RAM at all.
            ModelCallFailed: the backend failed; a partial answer is kept in the history (with
                nothing generated, the message is taken back out of it).
            ProcessGone: the process was killed while answering.
        """
        process = self.get(pid)
        if not process.alive:
            raise ProcessGone(pid, process.exit_reason)
        if process.held:
            raise ProcessHeld(pid, process.held)
        if process.busy:
            raise ProcessBusy(pid)
        message: Message = {"role": "user", "content": text, "at": time.time()}
        if images:
            message["images"] = list(images)
        process.history.append(message)
        turn = asyncio.create_task(self._run_turn(process), name=f"llmos-turn-{pid}")
        process._turn = turn
        try:
            return await turn
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if not process.alive and not (current and current.cancelling()):
                raise ProcessGone(pid, process.exit_reason) from None
            raise
        except PromptTooLarge:
            # The turn never reached the model; leave the history as it was.
            if process.history and process.history[-1] is message:
                process.history.pop()
                self._save(process)
            raise
        except ModelCallFailed as failure:
            # Nothing came back: leave the history as it was, so sending again is clean.
            if not failure.partial and process.history and process.history[-1] is message:
                process.history.pop()
                self._account(process)
            raise

    def _counter(self, model: str) -> TokenCounter:
        exact: TokenCounter | None = self.driver.exact_tokenizer(model)
        return exact or self.calibration.for_model(model)

    # -- bookkeeping -----------------------------------------------------------------------

    def _account(self, process: Process) -> ContextUsage | None:
        """Recount the context RAM the process's next request would hold, and publish it.

        Returns None (and publishes nothing) when that request cannot fit at all.
        """
        try:
            fitted = self._fit_next(process)
        except PromptTooLarge:
            return None
        self._publish_usage(process, fitted.usage)
        return fitted.usage

    def _fit_next(self, process: Process) -> FittedRequest:
        """Lay out the process's next request as it stands.

        Raises:
            PromptTooLarge: it cannot fit the context RAM at all.
        """
        return fit_request(**self._layout(process))

    def _layout(self, process: Process, leaving: Collection[str] = ()) -> dict[str, Any]:
        """What a request of ``process`` is made of (the pages whose keys are in ``leaving``
        left out), as :func:`fit_request` and :func:`page_room` take it."""
        return {
            "budget": process.budget,
            "reserve": process.reserve,
            "counter": self._counter(process.model),
            "system": process.system_messages,
            "pinned": process.pinned_messages,
            "summary": process.summary_messages,
            "paged_in": [page.message for page in process.paged_in if page.key not in leaving],
            "history": process.history,
            "tools": self.tools_for(process),
        }

    def tools_for(self, process: Process) -> list[Tool] | None:
        """The tool schemas a process's next request carries (None: it is offered none)."""
        return None if process._tools_off else process.tools

    def _publish_usage(self, process: Process, usage: ContextUsage) -> None:
        process.usage = usage
        self.bus.publish(ContextUsageChanged(process.pid, usage))
        self._save(process)

    def _set_state(self, process: Process, state: ProcessState) -> None:
        if process.state is state or not process.alive:
            return
        if process.state is ProcessState.SUSPENDED and not process._resumed.is_set():
            return  # a suspended process stays suspended until resumed
        old = process.state
        process.state = state
        self.bus.publish(ProcessStateChanged(process.pid, old.value, state.value))

    def children(self, pid: int) -> list[Process]:
        """The live processes ``pid`` started."""
        return [p for p in self.processes if p.parent_pid == pid and p.alive]

    def start(self, pid: int, text: str) -> asyncio.Task[TurnResult]:
        """Send a process a message without waiting: the turn runs as a task, whose result
        :meth:`result` waits for (a parent giving a child its job)."""
        job = asyncio.create_task(self.send(pid, text), name=f"llmos-job-{pid}")
        self._jobs[pid] = job
        job.add_done_callback(lambda _: None if job.cancelled() else job.exception())
        return job

    async def result(self, pid: int, within: float) -> TurnResult | None:
        """The answer to the message :meth:`start` gave ``pid``; None if not done within
        ``within`` seconds.

        Raises:
            NoSuchProcess: nothing was started for ``pid``.
            ProcessGone, ModelCallFailed, PromptTooLarge: the job failed so.
        """
        job = self._jobs.get(pid)
        if job is None:
            raise NoSuchProcess(pid)
        done, _ = await asyncio.wait([job], timeout=within)
        return job.result() if done else None

    def post(self, sender: int, pid: int, text: str) -> None:
        """Leave a message in a process's mailbox."""
        target = self.get(pid)
        if not target.alive:
            raise ProcessGone(pid, target.exit_reason)
        target.mailbox.append(Mail(sender, text, time.time()))

    def _end(self, process: Process, reason: str) -> None:
        for child in self.children(process.pid):
            if not child.detached:  # a child ends (or sleeps) with its parent
                self._end(child, HIBERNATED if reason == HIBERNATED else "killed")
        if process._lease is not None:
            # Free the slot now; the cancelled turn's own release is then a no-op.
            self.scheduler.release(process._lease)
            process._lease = None
        turn = process._turn
        if turn is not None and not turn.done():
            turn.cancel()
        self.scheduler.cancel_waiting(process.pid)
        process._resumed.set()
        old = process.state
        process.state = ProcessState.EXITED
        process.exit_reason = reason
        process.counters.ended_at = time.time()
        self.bus.publish(ProcessStateChanged(process.pid, old.value, ProcessState.EXITED.value))
        self.bus.publish(ProcessExited(process.pid, reason))
        process._exited.set()
        parent = self._processes.get(process.parent_pid or 0)
        if parent is not None and parent.alive and reason != HIBERNATED:
            self._save(parent)  # its children changed
        self._settle_later(process, reason)


def _covers(page: Page, other: Page) -> bool:
    """True when ``page`` holds every chunk ``other`` holds (of the same document)."""
    return (
        page.source == other.source
        and bool(other.chunk_ids)
        and set(other.chunk_ids) <= set(page.chunk_ids)
    )
