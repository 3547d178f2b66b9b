"""``llmos ps``: the processes of the data dir, running, hibernated and (``--all``) ended."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from llmos.config import Settings
from llmos.console import human_tokens, print_table
from llmos.kernel.sessions import SessionInfo, SessionStore

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


async def cmd_ps(args: argparse.Namespace, settings: Settings) -> int:
    store = SessionStore.in_data_dir(settings.data_dir)
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
