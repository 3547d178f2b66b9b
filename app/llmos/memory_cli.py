"""``llmos memory ...``: browsing and searching long-term memory from the command line.

Both memory commands' parsers are made here; ``llmos ingest`` runs in :mod:`llmos.ingest_cli`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from dataclasses import asdict
from datetime import datetime
from typing import TYPE_CHECKING, Any

from llmos.bootstrap import choose_engine, open_memory
from llmos.config import Settings
from llmos.console import assembly_progress, human_bytes, print_table
from llmos.drivers.base import DriverError
from llmos.drivers.model_store import ModelFileError
from llmos.memory import paths

if TYPE_CHECKING:  # LanceDB takes 1.5 s to import: `llmos run` and the workers skip it
    from llmos.memory.long_term import LongTermMemory
    from llmos.memory.records import Document
    from llmos.memory.search import SearchResult


def add_commands(commands: Any, flags: argparse.ArgumentParser) -> None:
    ingest = commands.add_parser(
        "ingest", parents=[flags], help="store files and folders in long-term memory"
    )
    ingest.add_argument("sources", nargs="*", metavar="PATH", help="files and folders")
    ingest.add_argument("--folder", default=paths.DOCUMENTS, help="memory folder to put them in")
    ingest.add_argument("--json", action="store_true", help="print one JSON object at the end")
    ingest.add_argument("--chunk-tokens", type=int, default=512, help="tokens per chunk")
    ingest.add_argument("--overlap-tokens", type=int, default=64, help="tokens chunks share")
    ingest.add_argument(
        "--no-vectors", action="store_true", help="store full text only; embed later"
    )

    memory = commands.add_parser("memory", parents=[flags], help="browse and search memory")
    actions = memory.add_subparsers(dest="memory_command", metavar="ACTION")
    ls = actions.add_parser("ls", parents=[flags], help="list a folder (default /)")
    ls.add_argument("folder", nargs="?", default=paths.ROOT)
    ls.add_argument("--json", action="store_true")
    show = actions.add_parser("show", parents=[flags], help="a document's details")
    show.add_argument("document", metavar="DOC", help="memory path or document id")
    show.add_argument("--chunks", action="store_true", help="list its chunks in order")
    show.add_argument("--json", action="store_true")
    rm = actions.add_parser("rm", parents=[flags], help="remove a document or folder")
    rm.add_argument("path", metavar="DOC|FOLDER")
    rm.add_argument("-y", "--yes", action="store_true", help="do not ask before removing")
    mv = actions.add_parser("mv", parents=[flags], help="move or rename")
    mv.add_argument("source", metavar="SRC")
    mv.add_argument("target", metavar="DST")
    mkdir = actions.add_parser("mkdir", parents=[flags], help="make a folder")
    mkdir.add_argument("folder")
    search = actions.add_parser("search", parents=[flags], help="hybrid search")
    search.add_argument("query")
    search.add_argument("--k", type=int, default=5, help="how many hits (default 5)")
    search.add_argument("--folder", default=paths.ROOT, help="search only in this folder")
    search.add_argument("--json", action="store_true")
    stats = actions.add_parser("stats", parents=[flags], help="what memory holds")
    stats.add_argument("--json", action="store_true")


# -- memory ---------------------------------------------------------------------------------


async def cmd_memory(args: argparse.Namespace, settings: Settings) -> int:
    action = args.memory_command or "ls"
    memory = await open_for_cli(settings, vectors=action in ("search", "stats"))
    try:
        if action == "ls":
            return await _ls(args, memory)
        if action == "show":
            return await _show(args, memory)
        if action == "rm":
            return await _rm(args, memory)
        if action == "mv":
            target = await memory.move(args.source, args.target)
            print(f"Moved {paths.normalize(args.source)} to {target}.")
            return 0
        if action == "mkdir":
            print(f"Made {await memory.mkdir(args.folder)}.")
            return 0
        if action == "search":
            if args.k < 1:
                print("llmos: --k must be at least 1.", file=sys.stderr)
                return 1
            result = await memory.search(args.query, k=args.k, folder=args.folder)
            return _print_search(args, memory, result)
        return await _stats(args, memory)
    finally:
        await memory.close()


async def open_for_cli(settings: Settings, vectors: bool) -> LongTermMemory:
    """Memory, with the embedder of the active backend when ``vectors`` (else text only)."""
    if not vectors:
        return await open_memory(settings)
    with assembly_progress() as progress:
        try:
            choice = await choose_engine(settings, progress=progress)
        except (DriverError, ModelFileError) as error:
            memory = await open_memory(settings)
            memory.embedder_note = f"no model backend ({str(error).rstrip('.')})"
            return memory
        return await open_memory(settings, choice.driver, progress=progress, owns_driver=True)


async def _ls(args: argparse.Namespace, memory: LongTermMemory) -> int:
    folder = paths.normalize(args.folder)
    if not await memory.store.is_folder(folder):
        document = await memory.store.document(folder)
        docs, subfolders = [document], []
    else:
        docs = await memory.store.documents(folder, recursive=False)
        subfolders = [f for f in await memory.store.folders(folder) if paths.parent(f) == folder]
    if args.json:
        out = {"folder": folder, "folders": subfolders, "documents": [_doc_json(d) for d in docs]}
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return 0
    if not docs and not subfolders:
        print(f"{folder} is empty.")
        return 0
    rows = [("NAME", "SIZE", "TOKENS", "CHUNKS", "VECTORS", "UPDATED")]
    rows += [(paths.name(f) + "/", "", "", "", "", "") for f in subfolders]
    rows += [
        (d.name, human_bytes(d.size), str(d.tokens), str(d.chunks), d.vectors_model or "-",
         _when(d.updated))
        for d in docs
    ]  # fmt: skip
    print_table(rows)
    return 0


async def _show(args: argparse.Namespace, memory: LongTermMemory) -> int:
    document = await memory.store.document(args.document)
    chunks = await memory.store.chunks(document) if args.chunks else []
    if args.json:
        out = _doc_json(document)
        if args.chunks:
            out["chunk_list"] = [asdict(chunk) for chunk in chunks]
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return 0
    for label, value in (
        ("path", document.path), ("id", document.id), ("title", document.title),
        ("source", document.source), ("type", document.media_type),
        ("size", human_bytes(document.size)), ("tokens", document.tokens),
        ("chunks", document.chunks), ("vectors", document.vectors_model or "none yet"),
        ("added", _when(document.created)), ("updated", _when(document.updated)),
        ("sha256", document.content_hash),
    ):  # fmt: skip
        print(f"{label:>8}  {value}")
    for chunk in chunks:
        print(f"\n── chunk {chunk.ordinal} · {chunk.position} · {chunk.tokens} tokens")
        print(chunk.text)
    return 0


async def _rm(args: argparse.Namespace, memory: LongTermMemory) -> int:
    path = paths.normalize(args.path)
    if await memory.store.is_folder(path) and not args.yes:
        count = len(await memory.store.documents(path))
        if count and sys.stdin.isatty():
            question = f"Remove {path} and the {count} documents in it? [y/N] "
            answer = await asyncio.to_thread(input, question)
            if answer.strip().lower() not in ("y", "yes"):
                print("Nothing removed.")
                return 1
    documents, folders = await memory.remove(path)
    print(f"Removed {path} ({documents} documents, {folders} folders).")
    return 0


def _print_search(args: argparse.Namespace, memory: LongTermMemory, result: SearchResult) -> int:
    if args.json:
        hits = [
            {
                "score": round(hit.score, 6),
                "path": hit.document.path,
                "document_id": hit.document.id,
                "title": hit.document.title,
                "chunk": hit.chunk.ordinal,
                "position": hit.chunk.position,
                "tokens": hit.chunk.tokens,
                "matched_by": list(hit.matched_by),
                "text": hit.chunk.text,
            }
            for hit in result.hits
        ]
        out = {"query": args.query, "mode": result.mode, "note": result.note, "hits": hits}
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return 0
    from rich.console import Console
    from rich.text import Text

    console = Console(highlight=False)
    how = f"{result.mode} search" + (
        f" with {memory.embedder_name}" if result.mode != "text" else ""
    )
    console.print(how + (f" (full text only: {result.note})" if result.note else ""), style="dim")
    if not result.hits:
        console.print("No matches.")
    words = [w for w in re.findall(r"\w+", args.query.lower()) if len(w) > 2]
    for number, hit in enumerate(result.hits, start=1):
        console.print(
            f"\n{number}. {hit.document.path} · {hit.chunk.position} · "
            f"score {hit.score:.4f} ({'+'.join(hit.matched_by)})",
            style="bold",
        )
        snippet = Text(_snippet(hit.chunk.text, words))
        for word in words:
            snippet.highlight_words([word], style="reverse", case_sensitive=False)
        console.print(snippet)
    return 0


async def _stats(args: argparse.Namespace, memory: LongTermMemory) -> int:
    stats = await memory.stats()
    if args.json:
        print(json.dumps({**asdict(stats), "embedder_note": memory.embedder_note}, indent=2))
        return 0
    print(f"documents   {stats.documents} in {stats.folders} folders")
    print(f"chunks      {stats.chunks} ({stats.tokens} tokens)")
    print(f"on disk     {human_bytes(stats.disk_bytes)}")
    embedder = stats.embedder or f"none: {memory.embedder_note}"
    print(f"embedder    {embedder}")
    for model, rows in stats.vectors.items():
        print(f"vectors     {rows} from {model}")
    if stats.embedder:
        print(f"indexing    {stats.indexing} documents waiting for vectors")
    print(f"text index  {stats.text_index}")
    print(f"vector idx  {stats.vector_index}")
    return 0


def _snippet(text: str, words: list[str], width: int = 320) -> str:
    lower = text.lower()
    starts = [lower.find(word) for word in words if lower.find(word) >= 0]
    start = max(0, min(starts) - width // 3) if starts else 0
    piece = " ".join(text[start : start + width].split())
    return ("…" if start else "") + piece + ("…" if start + width < len(text) else "")


def _doc_json(document: Document) -> dict[str, Any]:
    out = asdict(document)
    out["name"] = document.name
    return out


def _when(stamp: float) -> str:
    return datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M")
