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

from llmos import __version__, ingest_cli, memory_cli, run_cli, sessions_cli
from llmos.apps import store as app_store
from llmos.apps.manifest import ManifestError
from llmos.apps.permissions import describe
from llmos.apps.registry import AppNotFound, AppRegistry
from llmos.bootstrap import choose_engine
from llmos.config import ENGINES, Settings, SettingsError, load_settings
from llmos.console import (
    assembly_progress,
    confirm,
    human_bytes,
    print_table,
    silence_stdout,
)
from llmos.desktop.main import NoDisplay, run_desktop
from llmos.drivers.base import DriverError, ModelDriver, ModelInfo
from llmos.drivers.model_store import ModelFileError
from llmos.kernel.context import PromptTooLarge
from llmos.kernel.errors import KernelError
from llmos.memory.errors import MemoryStoreError
from llmos.memory.paths import MemoryPathError

_USER_ERRORS = (
    run_cli.InputError,
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

    run_cli.add_command(commands, flags)
    sessions_cli.add_command(commands, flags)

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
        "run": run_cli.cmd_run,
        "ps": sessions_cli.cmd_ps,
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
    if not args.yes and not confirm("Install it and grant these permissions?"):
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
    if not args.yes and not confirm(f"Remove {app.name} ({app.id})?"):
        print("Not removed.")
        return 1
    removed = app_store.remove(args.id, settings.data_dir)
    print(f"Removed {removed.name}.")
    return 0


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
