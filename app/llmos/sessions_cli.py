"""``llmos ps``: the processes of the data dir, running, hibernated and (``--all``) ended."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from llmos.config import Settings
from llmos.console import confirm, human_tokens, print_table
from llmos.kernel.sessions import SessionError, SessionInfo, SessionStore

STATES = {
    "running": "running",
    "hibernated": "hibernated",
    "interrupted": "interrupted",
    "ended": "ended",
    "damaged": "DAMAGED",
}


def add_command(commands: Any, flags: argparse.ArgumentParser) -> None:
    ps = commands.add_parser(
        "ps",
        parents=[flags],
        help="list the processes of the data dir: running and hibernated (--all: ended too)",
    )
    ps.add_argument("-a", "--all", action="store_true", help="ended processes as well")
    ps.add_argument("--json", action="store_true", help="print a JSON list")
    actions = ps.add_subparsers(dest="ps_command", metavar="ACTION")
    remove = actions.add_parser(
        "rm", parents=[flags], help="delete saved processes (hibernated, interrupted or ended)"
    )
    remove.add_argument("pids", nargs="+", type=int, metavar="PID")
    remove.add_argument("-y", "--yes", action="store_true", help="do not ask")


async def cmd_ps(args: argparse.Namespace, settings: Settings) -> int:
    store = SessionStore.in_data_dir(settings.data_dir)
    if getattr(args, "ps_command", None) == "rm":
        return await _remove(store, args.pids, args.yes)
    infos = await asyncio.to_thread(store.list, ended=args.all)
    if args.json:
        print(json.dumps([info.as_dict() for info in infos], indent=2, ensure_ascii=False))
        return 0
    if not infos:
        more = "" if args.all else " (llmos ps --all lists ended ones too)"
        print(f"No processes in {settings.data_dir}{more}.")
        return 0
    rows: list[tuple[str, ...]] = [
        ("PID", "APP", "STATE", "MODEL", "TURNS", "CONTEXT", "STARTED", "FIRST LINE")
    ]
    rows += [_row(info) for info in infos]
    print_table(rows)
    problems = [info for info in infos if info.problem]
    for info in problems:
        print(f"  {info.pid}: {info.problem}")
    if any(info.resumable for info in infos):
        print("Continue one with: llmos run APP --resume PID --prompt TEXT")
    return 0


def _row(info: SessionInfo) -> tuple[str, ...]:
    context = (
        f"{human_tokens(info.context_tokens)}/{human_tokens(info.budget)}" if info.budget else ""
    )
    started = (
        time.strftime("%Y-%m-%d %H:%M", time.localtime(info.started_at)) if info.started_at else ""
    )
    return (
        str(info.pid),
        info.app_id,
        STATES.get(info.status, info.status),
        info.model,
        str(info.turns),
        context,
        started,
        info.first_line[:48] + ("\u2026" if len(info.first_line) > 48 else ""),
    )


async def _remove(store: SessionStore, pids: list[int], yes: bool) -> int:
    """Delete saved processes after asking; 1 when some could not be deleted."""
    saved = set(await asyncio.to_thread(store.pids))
    infos = [await asyncio.to_thread(store.info, pid) for pid in pids if pid in saved]
    missing = sorted(set(pids) - {info.pid for info in infos})
    for pid in missing:
        print(f"llmos: there is no saved process {pid} (see llmos ps --all).", file=sys.stderr)
    if not infos:
        return 1
    for info in infos:
        turns = f"{info.turns} turn{'s' if info.turns != 1 else ''}"
        print(f"  {info.pid}  {info.app_name}, {info.status}, {turns}: {info.first_line}")
    question = (
        f"Delete {'this process' if len(infos) == 1 else f'these {len(infos)} processes'}? "
        "Their conversations go (what they stored in long-term memory stays)."
    )
    if not yes and not confirm(question):
        return 1
    failed = bool(missing)
    for info in infos:
        try:
            await asyncio.to_thread(store.delete, info.pid)
        except SessionError as error:
            print(f"llmos: {error}", file=sys.stderr)
            failed = True
        else:
            print(f"Deleted process {info.pid}.")
    return 1 if failed else 0
