"""``llmos run``: an app run headlessly on one prompt or a file of turns, or a hibernated
process continued (``--resume PID``)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from llmos.apps.permissions import SYSCALLS
from llmos.bootstrap import MemoryLink, open_kernel
from llmos.config import Settings
from llmos.console import assembly_progress, silence_stdout
from llmos.kernel.context import PromptTooLarge
from llmos.kernel.errors import KernelError, ProcessGone
from llmos.kernel.events import SyscallFinished, TokenStreamed
from llmos.kernel.kernel import Kernel, TurnResult
from llmos.kernel.process import Process


class InputError(Exception):
    """A file given on the command line cannot be used; the message says why."""


def add_command(commands: Any, flags: argparse.ArgumentParser) -> None:
    run = commands.add_parser(
        "run", parents=[flags], help="run an app headlessly on one prompt or a file of turns"
    )
    run.add_argument("app", help="app id, e.g. chat")
    given = run.add_mutually_exclusive_group(required=True)
    given.add_argument("--prompt", help="the user message ('-' reads stdin)")
    given.add_argument(
        "--turns",
        metavar="FILE",
        help='user messages, one a line (or JSON lines {"content": ...}), all sent in order '
        "to one process ('-' reads stdin)",
    )
    run.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object at the end (with --turns: one line per turn)",
    )
    run.add_argument("--priority", type=int, default=None, help="scheduler priority")
    run.add_argument(
        "--resume",
        type=int,
        metavar="PID",
        help="continue a hibernated or interrupted process of APP (see llmos ps); it is "
        "hibernated again afterwards. An ended one goes on as a new process",
    )
    run.add_argument(
        "--image",
        action="append",
        default=[],
        metavar="FILE",
        help="an image to send with the prompt (for apps like vision); repeatable",
    )
    run.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="SYSCALL",
        choices=sorted(name for name, p in SYSCALLS.items() if p.sensitive),
        help="allow a sensitive syscall the app was granted without asking (headless runs "
        "have no one to ask, so they deny them otherwise); repeatable",
    )


async def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    if args.turns is not None:
        turns = _read_turns(args.turns)
        if turns is None:
            return 1
    else:
        prompt = _read_prompt(args.prompt)
        if prompt is None:
            return 1
        turns = [prompt]
    if args.image and args.turns is not None:
        raise InputError("--image goes with --prompt (one message with its images).")
    images = [_read_image(Path(name)) for name in args.image]
    with assembly_progress() as progress:
        kernel, choice = await open_kernel(settings, progress=progress)
    memory = MemoryLink(settings, kernel)
    kernel.memory = memory
    kernel.consent.allowed.update(args.allow)

    def refused(event: SyscallFinished) -> None:
        # Headless, a refused syscall is reported as it happens (and kept in the audit log).
        if event.outcome == "refused":
            print(f"llmos: pid {event.pid}: {event.name} refused: {event.error}", file=sys.stderr)

    kernel.bus.subscribe(refused, SyscallFinished)
    process: Process | None = None
    try:
        process, resumed = await _process_for(kernel, args, choice.model)
        if args.turns is not None:
            return await _run_turns(kernel, process, turns, args.json, keep=resumed)
        prompt = turns[0]
        streamed = False
        reader_gone = False
        if not args.json:

            def show(event: TokenStreamed) -> None:
                nonlocal streamed, reader_gone
                if event.pid != process.pid or reader_gone:
                    return
                try:
                    sys.stdout.write(event.text)
                    sys.stdout.flush()
                    streamed = True
                except BrokenPipeError:
                    # Whoever read the answer (`| head`) has gone: stop generating it.
                    reader_gone = True
                    kernel.kill(process.pid)

            kernel.bus.subscribe(show, TokenStreamed)
        try:
            result = await kernel.send(process.pid, prompt, images=images)
        except ProcessGone:
            if reader_gone:
                silence_stdout()
                return 0
            raise
        await _finish(kernel, process, keep=resumed)
        if args.json:
            print(json.dumps(_result_json(kernel, process, result), indent=2, ensure_ascii=False))
        elif streamed and not result.answer.endswith("\n"):
            print()
        if result.over_budget:
            print(
                f"llmos: warning: the backend counted {result.prompt_tokens_reported} prompt "
                f"tokens, more than the {result.usage.prompt_limit} this process may send; the "
                "kernel has corrected its estimate for next time.",
                file=sys.stderr,
            )
        if result.done_reason == "length":
            print(
                f"llmos: the answer was cut at the reserve for answers ({process.reserve} tokens).",
                file=sys.stderr,
            )
        return 0
    finally:
        await kernel.shutdown()
        await memory.close()
        task = asyncio.current_task()
        stopped = task is not None and task.cancelling() > 0  # Ctrl-C
        if stopped and process is not None and process.exit_reason == "hibernated":
            print(
                f"llmos: process {process.pid} is hibernated; continue it with "
                f"`llmos run {process.app.id} --resume {process.pid} --prompt ...`.",
                file=sys.stderr,
            )


IMAGE_BYTES = 20_000_000


def _read_image(path: Path) -> bytes:
    """An image file's bytes; a plain error when it cannot be one."""
    try:
        if path.stat().st_size > IMAGE_BYTES:
            raise InputError(f"{path} is over {IMAGE_BYTES // 1_000_000} MB: too large an image.")
        data = path.read_bytes()
    except OSError as error:
        raise InputError(f"The image {path} cannot be read ({error.strerror}).") from None
    if not data.startswith((b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"RIFF", b"BM")):
        raise InputError(f"{path} is not a PNG, JPEG, GIF, WebP or BMP image.")
    return data


def _result_json(kernel: Kernel, process: Process, result: TurnResult) -> dict[str, Any]:
    """The stable ``--json`` fields of one answered turn."""
    return {
        "answer": result.answer,
        "pid": result.pid,
        "app": process.app.id,
        "model": result.model,
        "engine": kernel.driver.kind,
        "location": kernel.driver.location,
        "context": result.usage.as_dict(),
        "prompt_tokens_accounted": result.prompt_tokens_accounted,
        "prompt_tokens_reported": result.prompt_tokens_reported,
        "completion_tokens": result.completion_tokens,
        "dropped_turns": result.dropped_turns,
        "done_reason": result.done_reason,
        "syscalls": [
            {"tool": e.tool, "permission": e.permission, "outcome": e.outcome, "error": e.error}
            for e in result.syscalls
        ],
    }


async def _process_for(
    kernel: Kernel, args: argparse.Namespace, model: str | None
) -> tuple[Process, bool]:
    """The process the run talks to: a new one, or (``--resume``) a saved one brought back;
    True when it was brought back."""
    if args.resume is None:
        return await kernel.spawn(args.app, priority=args.priority, model=model), False
    pid = args.resume
    saved = await kernel.load_saved(pid)
    if saved.app_id != args.app:
        raise InputError(
            f"Process {pid} runs {saved.app.get('name') or saved.app_id}, not {args.app}: "
            f"continue it with `llmos run {saved.app_id} --resume {pid} ...`."
        )
    chosen = getattr(args, "model", None)  # only a model asked for on this command line
    if saved.status == "ended":
        process = await kernel.reopen(saved)
        print(
            f"llmos: process {pid} had ended; its conversation goes on as process {process.pid}.",
            file=sys.stderr,
        )
    else:
        process = await kernel.restore(saved, model=chosen)
    if process.held:
        hint = "" if chosen else " (with --model NAME to choose another)"
        raise KernelError(f"Process {process.pid} cannot go on. {process.held}{hint}")
    if args.priority is not None:
        kernel.set_priority(process.pid, args.priority)
    return process, True


async def _finish(kernel: Kernel, process: Process, *, keep: bool) -> None:
    """End the run's process, or (``keep``: it was resumed) hibernate it again."""
    if keep:
        await kernel.hibernate(process.pid)
    else:
        kernel.exit(process.pid)


async def _run_turns(
    kernel: Kernel, process: Process, turns: list[str], as_json: bool, *, keep: bool = False
) -> int:
    """Send every turn to one process; print each answer (or one JSON line per turn)."""
    if not as_json:

        def show(event: TokenStreamed) -> None:
            if event.pid == process.pid:
                sys.stdout.write(event.text)
                sys.stdout.flush()

        kernel.bus.subscribe(show, TokenStreamed)
    refused = 0
    for number, text in enumerate(turns, start=1):
        if not as_json:
            print(f"\n> {text}" if number > 1 else f"> {text}")
        try:
            result = await kernel.send(process.pid, text)
        except PromptTooLarge as error:
            # One message too large for the window: say so and go on with the rest.
            refused += 1
            if as_json:
                print(json.dumps({"turn": number, "error": str(error)}, ensure_ascii=False))
            else:
                print(f"llmos: turn {number} was not sent: {error}", file=sys.stderr)
            continue
        if as_json:
            line = {
                "turn": number,
                **_result_json(kernel, process, result),
                "evicted": result.evicted,
                "paged_in": result.paged_in,
                "page_faults": result.page_faults,
            }
            print(json.dumps(line, ensure_ascii=False), flush=True)
        elif not result.answer.endswith("\n"):
            print()
    await _finish(kernel, process, keep=keep)
    counters = process.counters
    print(
        f"llmos: {len(turns) - refused} of {len(turns)} turns answered; {counters.evictions} "
        f"evicted to memory ({process.memory_folder}), {counters.page_faults} page faults.",
        file=sys.stderr,
    )
    return 1 if refused else 0


def _read_turns(given: str) -> list[str] | None:
    """The user turns of a ``--turns`` file: a line each, or JSON lines with ``content``;
    None after printing why not."""
    try:
        if given == "-":
            if sys.stdin is None or sys.stdin.closed:
                print("llmos: --turns - reads stdin, but there is no stdin.", file=sys.stderr)
                return None
            text = sys.stdin.read()
        else:
            text = Path(given).expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        print(f"llmos: the turns file could not be read ({error}).", file=sys.stderr)
        return None
    turns = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            try:
                content = json.loads(line).get("content")
            except (ValueError, AttributeError):
                content = None
            if not isinstance(content, str) or not content.strip():
                print(
                    f"llmos: line {number} of the turns file is not a JSON object with a "
                    'text "content" (e.g. {"content": "Hello"}).',
                    file=sys.stderr,
                )
                return None
            turns.append(content)
        else:
            turns.append(line)
    if not turns:
        print("llmos: the turns file holds no turns.", file=sys.stderr)
        return None
    return turns


def _read_prompt(given: str) -> str | None:
    """The prompt text, from the flag or (for ``-``) stdin; None after printing why not."""
    if given == "-":
        if sys.stdin is None or sys.stdin.closed:
            print("llmos: --prompt - reads stdin, but there is no stdin.", file=sys.stderr)
            return None
        try:
            given = sys.stdin.read()
        except (OSError, UnicodeDecodeError) as error:
            print(f"llmos: the prompt could not be read from stdin ({error}).", file=sys.stderr)
            return None
    if not given.strip():
        print("llmos: the prompt is empty.", file=sys.stderr)
        return None
    return given
