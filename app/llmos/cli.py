"""The headless ``llmos`` command line.

Errors are printed as one or two plain sentences on stderr with exit code 1; ``--debug``
shows the traceback as well.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from llmos import __version__, ingest_cli, memory_cli
from llmos.apps import store as app_store
from llmos.apps.manifest import ManifestError
from llmos.apps.permissions import SYSCALLS, describe
from llmos.apps.registry import AppNotFound, AppRegistry
from llmos.bootstrap import MemoryLink, choose_engine, open_kernel
from llmos.config import ENGINES, Settings, SettingsError, load_settings
from llmos.console import assembly_progress, human_bytes, print_table, silence_stdout
from llmos.desktop.main import NoDisplay, run_desktop
from llmos.drivers.base import DriverError, ModelDriver, ModelInfo
from llmos.drivers.model_store import ModelFileError
from llmos.kernel.context import PromptTooLarge
from llmos.kernel.errors import KernelError, ProcessGone
from llmos.kernel.events import SyscallFinished, TokenStreamed
from llmos.kernel.kernel import Kernel, TurnResult
from llmos.kernel.process import Process
from llmos.memory.errors import MemoryStoreError
from llmos.memory.paths import MemoryPathError


class InputError(Exception):
    """A file given on the command line cannot be used; the message says why."""


_USER_ERRORS = (
    InputError,
    DriverError,
    ModelFileError,
    KernelError,
    SettingsError,
    AppNotFound,
    ManifestError,
    app_store.AppStoreError,
    PromptTooLarge,
    MemoryStoreError,
    MemoryPathError,
    NoDisplay,
)


def _global_flags() -> argparse.ArgumentParser:
    # SUPPRESS lets the same flags stand before or after the subcommand.
    flags = argparse.ArgumentParser(add_help=False)
    group = flags.add_argument_group("global options")
    group.add_argument("--data-dir", default=argparse.SUPPRESS, help="where all state lives")
    group.add_argument(
        "--ollama-host", default=argparse.SUPPRESS, help="Ollama server (default OLLAMA_HOST)"
    )
    group.add_argument("--model", default=argparse.SUPPRESS, help="model to run apps on")
    group.add_argument("--engine", choices=ENGINES, default=argparse.SUPPRESS, help="model backend")
    group.add_argument(
        "--num-ctx", type=int, default=argparse.SUPPRESS, help="largest context RAM, in tokens"
    )
    group.add_argument(
        "--parallel", type=int, default=argparse.SUPPRESS, help="model calls at once"
    )
    group.add_argument(
        "--embed-model", default=argparse.SUPPRESS, help="memory's embedding model ('none': off)"
    )
    group.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks"
    )
    return flags


def build_parser() -> argparse.ArgumentParser:
    flags = _global_flags()
    parser = argparse.ArgumentParser(
        prog="llmos",
        description="LLM-OS: a desktop operating system whose kernel is a local language model.",
        epilog="Without a command, llmos opens the desktop.",
        parents=[flags],
    )
    parser.add_argument("--version", action="version", version=f"llmos {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    doctor = commands.add_parser(
        "doctor", parents=[flags], help="check the model backend, models and data dir"
    )
    doctor.add_argument("--json", action="store_true", help="print one JSON object")

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

    apps = commands.add_parser("apps", parents=[flags], help="list, install or remove apps")
    app_commands = apps.add_subparsers(dest="apps_command", metavar="ACTION")
    app_commands.add_parser("ls", parents=[flags], help="list installed apps (default)")
    install = app_commands.add_parser(
        "install", parents=[flags], help="install an app from its manifest file or folder"
    )
    install.add_argument("path", help="an app.toml, or a folder holding one")
    install.add_argument("-y", "--yes", action="store_true", help="grant its permissions")
    for verb, words in (("enable", "turn an app back on"), ("disable", "turn an app off")):
        toggle = app_commands.add_parser(verb, parents=[flags], help=words)
        toggle.add_argument("id", help="the app's id")
    remove = app_commands.add_parser("rm", parents=[flags], help="remove a user app")
    remove.add_argument("id", help="the app's id")
    remove.add_argument("-y", "--yes", action="store_true", help="do not ask")

    models = commands.add_parser("models", parents=[flags], help="list, pull or remove models")
    model_commands = models.add_subparsers(dest="models_command", metavar="ACTION")
    model_commands.add_parser("ls", parents=[flags], help="list installed models (default)")
    pull = model_commands.add_parser("pull", parents=[flags], help="download a model")
    pull.add_argument("name")
    rm = model_commands.add_parser("rm", parents=[flags], help="remove a model")
    rm.add_argument("name")

    memory_cli.add_commands(commands, flags)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(
        {
            "data_dir": getattr(args, "data_dir", None),
            "ollama_host": getattr(args, "ollama_host", None),
            "model": getattr(args, "model", None),
            "engine": getattr(args, "engine", None),
            "num_ctx": getattr(args, "num_ctx", None),
            "parallel": getattr(args, "parallel", None),
            "embed_model": getattr(args, "embed_model", None),
        }
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = bool(getattr(args, "debug", False))
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="llmos: %(levelname)s: %(message)s",
    )
    handlers: dict[str, Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, int]]] = {
        "doctor": cmd_doctor,
        "run": cmd_run,
        "apps": cmd_apps,
        "models": cmd_models,
        "ingest": ingest_cli.cmd_ingest,
        "memory": memory_cli.cmd_memory,
    }
    try:
        settings = _settings(args)
        if args.command is None:
            return run_desktop(settings)  # `llmos` alone opens the desktop
        return asyncio.run(handlers[args.command](args, settings))
    except _USER_ERRORS as error:
        if debug:
            raise
        print(f"llmos: {error}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, asyncio.CancelledError):  # a second Ctrl-C cancels the command
        print("llmos: interrupted.", file=sys.stderr)
        return 130
    except BrokenPipeError:
        silence_stdout()
        return 0


# -- doctor ---------------------------------------------------------------------------------


async def cmd_doctor(args: argparse.Namespace, settings: Settings) -> int:
    report: dict[str, Any] = {
        "version": __version__,
        "engine": settings.engine,
        "engine_reason": None,
        "location": None,
        "host": settings.ollama_host,
        "reachable": False,
        "server_version": None,
        "models": [],
        "loaded": [],
        "default_model": settings.model,
        "data_dir": str(settings.data_dir),
        "config_file": str(settings.config_file) if settings.config_file else None,
        "usable": False,
        "problem": None,
    }
    try:
        with assembly_progress() as progress:
            choice = await choose_engine(settings, progress=progress)
    except (DriverError, ModelFileError) as error:
        report["problem"] = str(error)
        return _doctor_out(args, report)
    driver = choice.driver
    report.update(engine=driver.kind, engine_reason=choice.reason, location=driver.location)
    report["default_model"] = choice.model
    try:
        report["server_version"] = await driver.version()
        report["reachable"] = True
        models = await driver.list_models()
        report["models"] = [{**_model_json(m), "counting": driver.counting(m.name)} for m in models]
        report["loaded"] = [m.name for m in await driver.loaded_models()]
        chat_models = [m.name for m in models if m.can_chat]
        if choice.model and choice.model not in {m.name for m in models}:
            report["problem"] = (
                f"The configured model '{choice.model}' is not installed. "
                f"Pull it with `llmos models pull {choice.model}`."
            )
        elif not chat_models:
            report["problem"] = (
                f"No chat model is installed at {driver.location}. Pull one, for example "
                "`llmos models pull qwen2.5:0.5b`."
            )
        else:
            report["usable"] = True
    except DriverError as error:
        report["problem"] = str(error)
    finally:
        await driver.close()
    return _doctor_out(args, report)


def _model_json(model: ModelInfo) -> dict[str, Any]:
    return {
        "name": model.name,
        "family": model.family,
        "parameter_size": model.parameter_size,
        "quantization": model.quantization,
        "size_bytes": model.size_bytes,
        "context_length": model.context_length,
        "embedding_length": model.embedding_length,
        "capabilities": sorted(model.capabilities),
    }


def _doctor_out(args: argparse.Namespace, report: dict[str, Any]) -> int:
    code = 0 if report["usable"] else 1
    if args.json:
        print(json.dumps(report, indent=2))
        return code
    print(f"LLM-OS {report['version']}")
    engine = report["engine"]
    if report["engine_reason"]:
        engine += f"  ({report['engine_reason']})"
    print(f"  engine    {engine}")
    if report["engine"] == "embedded":
        print(f"  model     {report['location']}  ({report['server_version']})")
    else:
        state = "reachable" if report["reachable"] else "NOT reachable"
        if report["server_version"]:
            state += f" (Ollama {report['server_version']})"
        print(f"  host      {report['host']}  {state}")
    print(f"  data dir  {report['data_dir']}")
    print(f"  config    {report['config_file'] or '(none; defaults and environment)'}")
    if report["models"]:
        print("  models")
        _print_models(report["models"], report["loaded"], indent="    ")
        print("  token counting")
        for model in report["models"]:
            if "counting" in model:
                print(f"    {model['name']}: {model['counting']}")
    if report["usable"]:
        print("OK: a model backend is ready.")
    else:
        print(f"Problem: {report['problem']}", file=sys.stderr)
    return code


def _print_models(models: list[dict[str, Any]], loaded: Sequence[str], indent: str = "") -> None:
    rows = [("NAME", "CONTEXT", "CAPABILITIES", "SIZE", "")]
    for m in models:
        rows.append(
            (
                m["name"],
                str(m["context_length"] or "?"),
                ",".join(m["capabilities"]) or "?",
                human_bytes(m["size_bytes"]),
                "loaded" if m["name"] in loaded else "",
            )
        )
    print_table(rows, indent)


# -- run ------------------------------------------------------------------------------------


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
    try:
        process = await kernel.spawn(args.app, priority=args.priority, model=choice.model)
        if args.turns is not None:
            return await _run_turns(kernel, process, turns, args.json)
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
        kernel.exit(process.pid)
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


async def _run_turns(kernel: Kernel, process: Process, turns: list[str], as_json: bool) -> int:
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
    kernel.exit(process.pid)
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


# -- apps and models --------------------------------------------------------------------------


async def cmd_apps(args: argparse.Namespace, settings: Settings) -> int:
    action = getattr(args, "apps_command", None) or "ls"
    if action == "install":
        return _install_app(args, settings)
    if action == "rm":
        return _remove_app(args, settings)
    if action in ("enable", "disable"):
        app = app_store.set_enabled(args.id, settings.ensure_data_dir(), action == "enable")
        print(f"{app.name} is {action}d.")
        return 0
    registry = AppRegistry.default(settings.data_dir)
    user = app_store.apps_folder(settings.data_dir)
    rows = [("ID", "NAME", "VERSION", "FROM", "PERMISSIONS")]
    for app in registry.everything():
        where = "user" if app.source and user in app.source.parents else "built-in"
        if app.id in registry.disabled:
            where += ", disabled"
        granted = ", ".join(app.permissions.syscalls) or "none"
        rows.append((app.id, app.name, app.version, where, granted))
    print_table(rows)
    for problem in registry.errors:
        print(f"llmos: skipped an app: {problem}", file=sys.stderr)
    return 0


def _install_app(args: argparse.Namespace, settings: Settings) -> int:
    candidate = app_store.inspect(Path(args.path), settings.data_dir)
    app = candidate.manifest
    verb = f"Update {app.name} {candidate.replaces.version} to" if candidate.replaces else "Install"
    print(f"{verb} {app.name} {app.version} ({app.id}) by {app.author or 'an unknown author'}.")
    if app.description:
        print(f"  {app.description}")
    granted = describe(app.permissions.syscalls)
    print("It asks to:" if granted else "It asks for no permissions.")
    for line in granted:
        print(f"  - {line}")
    if not args.yes and not _confirm("Install it and grant these permissions?"):
        print("Not installed.")
        return 1
    installed = app_store.install(candidate, settings.ensure_data_dir())
    print(
        f"Installed {installed.name} {installed.version}: "
        f"run it with `llmos run {installed.id} --prompt TEXT` or from the launcher."
    )
    return 0


def _remove_app(args: argparse.Namespace, settings: Settings) -> int:
    registry = AppRegistry.default(settings.data_dir)
    app = next((a for a in registry.everything() if a.id == args.id), None)
    if app is None:
        raise AppNotFound(args.id, [a.id for a in registry.everything()])
    if not args.yes and not _confirm(f"Remove {app.name} ({app.id})?"):
        print("Not removed.")
        return 1
    removed = app_store.remove(args.id, settings.data_dir)
    print(f"Removed {removed.name}.")
    return 0


def _confirm(question: str) -> bool:
    """Ask on the terminal; without one (a script), the answer is no: pass --yes."""
    if sys.stdin is None or not sys.stdin.isatty():
        print(f"{question} There is no terminal to ask on; pass --yes.", file=sys.stderr)
        return False
    try:
        return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
    except EOFError:
        return False


async def cmd_models(args: argparse.Namespace, settings: Settings) -> int:
    with assembly_progress() as progress:
        driver = (await choose_engine(settings, progress=progress)).driver
    try:
        action = args.models_command or "ls"
        if action == "pull":
            return await _pull(driver, args.name)
        if action == "rm":
            await driver.delete(args.name)
            print(f"Removed {args.name}.")
            return 0
        models = await driver.list_models()
        if not models:
            print(f"No models installed at {driver.location}. Try `llmos models pull NAME`.")
            return 0
        loaded = [m.name for m in await driver.loaded_models()]
        _print_models([_model_json(m) for m in models], loaded)
        return 0
    finally:
        await driver.close()


async def _pull(driver: ModelDriver, name: str) -> int:
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    tasks: dict[str, Any] = {}
    with Progress(*columns, transient=False) as progress:
        async for step in driver.pull(name):
            if step.digest and step.total:
                key = step.digest
                if key not in tasks:
                    label = f"pulling {step.digest.removeprefix('sha256:')[:12]}"
                    tasks[key] = progress.add_task(label, total=step.total)
                progress.update(tasks[key], completed=step.completed or 0, total=step.total)
            elif step.status:
                progress.console.print(step.status)
    print(f"Pulled {name}.")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
