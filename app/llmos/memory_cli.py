"""``llmos ingest`` and ``llmos memory ...``: long-term memory from the command line.

Exit codes: 0 success; 1 a user error (printed as a sentence); 2 an ingest where some files
failed (each named with its reason); 130 an ingest stopped with Ctrl-C (nothing half-stored).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import signal
import sys
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmos.bootstrap import choose_engine, open_memory
from llmos.config import Settings
from llmos.console import assembly_progress, human_bytes
from llmos.drivers.base import DriverError
from llmos.drivers.model_store import ModelFileError
from llmos.memory import paths

if TYPE_CHECKING:  # LanceDB takes 1.5 s to import: `llmos run` and the workers skip it
    from llmos.memory.indexer import Indexer, IndexProgress
    from llmos.memory.ingest import IngestOptions, IngestProgress, IngestReport
    from llmos.memory.journal import JobRecord
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


# -- ingest -----------------------------------------------------------------------------------


async def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from llmos.memory.ingest import IngestOptions

    if args.chunk_tokens < 32 or not 0 <= args.overlap_tokens < args.chunk_tokens:
        print("llmos: --chunk-tokens must be at least 32 and --overlap-tokens below it.",
              file=sys.stderr)  # fmt: skip
        return 1
    memory = await _open(settings, vectors=not args.no_vectors)
    try:
        resumable, given_up = await memory.interrupted(_say_waiting)
        for gone in given_up:
            sources = ", ".join(gone.sources)
            print(f"llmos: gave up resuming the ingest of {sources} after {gone.attempts} "
                  "attempts; ingest them again to retry.", file=sys.stderr)  # fmt: skip
        if resumable:
            print(f"Resuming {len(resumable)} ingest(s) that stopped part-way.", file=sys.stderr)
        work: list[tuple[list[Path], IngestOptions, JobRecord | None]] = [
            (job.sources, job.options, job.record) for job in resumable
        ]
        options = IngestOptions(
            folder=paths.normalize(args.folder),
            chunk_tokens=args.chunk_tokens,
            overlap_tokens=args.overlap_tokens,
        )
        if args.sources:
            work.append(([Path(source) for source in args.sources], options, None))
        elif not work:
            waiting = 0
            if memory.embedder is not None and not args.no_vectors:
                waiting = len(await memory.store.pending_vectors(memory.embedder.model, 1_000_000))
            if not waiting:
                print("llmos: nothing to ingest: name files or folders.", file=sys.stderr)
                return 1
            # Nothing new, but vectors are missing (a new embedding model, a stopped ingest).
            print(f"Embedding {waiting} documents with {memory.embedder_name}.", file=sys.stderr)
        reports = []
        with _ingest_display(args.json) as display:
            indexer = None if args.no_vectors else memory.indexer(display.vectors)
            wake = (lambda _docs: indexer.wake()) if indexer else None
            jobs = [
                (memory.job(sources, opts, on_progress=display.files, on_commit=wake), record)
                for sources, opts, record in work
            ]
            indexing = asyncio.create_task(indexer.run()) if indexer else None
            try:
                with _stop_on_ctrl_c([job for job, _ in jobs], indexer) as stopped:
                    for job, record in jobs:
                        reports.append(
                            await memory.run(job, waiting=display.waiting, resumes=record)
                        )
                        if stopped():
                            break
                    if indexer is not None:
                        indexer.finish()
            finally:
                if indexing is not None:
                    await _settle(indexing)
        return _ingest_summary(args, memory, reports, indexer)
    finally:
        await memory.close()


def _say_waiting() -> None:
    print("Another ingest is running on this memory; waiting for it to finish.", file=sys.stderr)


async def _settle(task: asyncio.Task[None]) -> None:
    """Wait for ``task``; if we are being cancelled, cancel it and still wait for it."""
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        raise


def _ingest_summary(
    args: argparse.Namespace,
    memory: LongTermMemory,
    reports: list[IngestReport],
    indexer: Indexer | None,
) -> int:
    outcomes = [outcome for report in reports for outcome in report.outcomes]
    cancelled = any(report.cancelled for report in reports)
    failed = [outcome for outcome in outcomes if outcome.status == "failed"]
    by_status = {
        s: [o for o in outcomes if o.status == s] for s in ("added", "replaced", "unchanged")
    }
    skipped = sum(report.skipped for report in reports)
    vectors = {
        "model": memory.embedder_name if indexer else None,
        "chunks": indexer.chunks_done if indexer else 0,
        "error": indexer.error if indexer else None,
        "note": memory.embedder_note if not args.no_vectors else "vectors skipped (--no-vectors)",
    }
    if args.json:
        out = {
            **{status: [asdict(o) for o in items] for status, items in by_status.items()},
            "failed": [asdict(o) for o in failed],
            "skipped": skipped,
            "chunks": sum(o.chunks for o in by_status["added"] + by_status["replaced"]),
            "seconds": round(sum(report.seconds for report in reports), 3),
            "cancelled": cancelled,
            "vectors": vectors,
        }
        print(json.dumps(out, indent=2, ensure_ascii=False))
    else:
        stored = len(by_status["added"]) + len(by_status["replaced"])
        chunks = sum(o.chunks for o in by_status["added"] + by_status["replaced"])
        print(
            f"{stored} stored ({len(by_status['added'])} added, {len(by_status['replaced'])} "
            f"replaced; {chunks} chunks), {len(by_status['unchanged'])} unchanged, "
            f"{len(failed)} failed"
            + (f", {skipped} hidden or junk skipped" if skipped else "")
            + "."
        )
        for outcome in failed:
            print(f"  failed: {outcome.source}: {outcome.reason}")
        if vectors["error"]:
            print(f"Vectors stopped: {vectors['error']} The documents are searchable by full "
                  "text; the next ingest fills the vectors in.")  # fmt: skip
        elif vectors["model"]:
            print(f"Vectors: {vectors['chunks']} chunks embedded with {vectors['model']}.")
        elif vectors["note"]:
            print(f"Memory runs on full text only: {vectors['note']}.")
        if cancelled:
            print("Stopped: every document above is whole; run the same ingest to finish.")
    if cancelled:
        return 130
    return 2 if failed else 0


class _IngestDisplay:
    def __init__(self, quiet: bool) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self.console = Console(stderr=True)
        self.bar = Progress(
            TextColumn("{task.description:<8}"),
            BarColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
            disable=quiet,
        )
        self._files = self.bar.add_task("files", total=None, detail="finding files…")
        self._vectors: Any = None

    def files(self, progress: IngestProgress) -> None:
        rate = progress.files_done / max(progress.elapsed, 1e-3)
        detail = (
            f"{progress.files_done}/{progress.files_total} files · {progress.chunks} chunks · "
            f"{rate:.1f} files/s"
        )
        total = progress.files_total if progress.phase != "discovering" else None
        self.bar.update(self._files, completed=progress.files_done, total=total, detail=detail)

    def vectors(self, progress: IndexProgress) -> None:
        if self._vectors is None:
            self._vectors = self.bar.add_task("vectors", total=None, detail="")
        detail = f"{progress.chunks} chunks embedded · {progress.documents} documents ready"
        self.bar.update(self._vectors, detail=detail)

    def waiting(self) -> None:  # through the console, which keeps the bars intact
        self.console.print("Another ingest is running on this memory; waiting for it to finish.")


@contextlib.contextmanager
def _ingest_display(quiet: bool) -> Iterator[_IngestDisplay]:
    display = _IngestDisplay(quiet)
    display.bar.start()
    try:
        yield display
    finally:
        display.bar.stop()


@contextlib.contextmanager
def _stop_on_ctrl_c(jobs: list[Any], indexer: Indexer | None) -> Iterator[Any]:
    """First Ctrl-C: stop cleanly (whole documents only). A second one quits at once."""
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    presses = 0

    def on_interrupt() -> None:
        nonlocal presses
        presses += 1
        if presses > 1 and main is not None:
            main.cancel()
            return
        print("\nStopping: finishing the documents in hand (Ctrl-C again to quit at once).",
              file=sys.stderr)  # fmt: skip
        for job in jobs:
            job.cancel()
        if indexer is not None:
            indexer.stop()

    try:
        loop.add_signal_handler(signal.SIGINT, on_interrupt)
    except (NotImplementedError, RuntimeError):  # Windows: Ctrl-C raises as usual
        yield lambda: presses > 0
        return
    try:
        yield lambda: presses > 0
    finally:
        loop.remove_signal_handler(signal.SIGINT)


# -- memory ---------------------------------------------------------------------------------


async def cmd_memory(args: argparse.Namespace, settings: Settings) -> int:
    action = args.memory_command or "ls"
    memory = await _open(settings, vectors=action in ("search", "stats"))
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


async def _open(settings: Settings, vectors: bool) -> LongTermMemory:
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
    _table(rows)
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


def _table(rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
