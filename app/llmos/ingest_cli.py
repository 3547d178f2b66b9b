"""``llmos ingest``: files and folders into long-term memory, with progress and a summary.

Exit codes: 0 every file stored or unchanged; 1 a user error (printed as a sentence); 2 some
files failed (each named with its reason); 130 stopped with Ctrl-C (nothing half-stored).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmos.config import Settings
from llmos.memory import paths
from llmos.memory_cli import open_for_cli

if TYPE_CHECKING:  # LanceDB takes 1.5 s to import: `llmos run` and the workers skip it
    from llmos.memory.indexer import Indexer, IndexProgress
    from llmos.memory.ingest import IngestOptions, IngestProgress, IngestReport
    from llmos.memory.journal import JobRecord
    from llmos.memory.long_term import LongTermMemory


async def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from llmos.memory.ingest import IngestOptions

    if args.chunk_tokens < 32 or not 0 <= args.overlap_tokens < args.chunk_tokens:
        print("llmos: --chunk-tokens must be at least 32 and --overlap-tokens below it.",
              file=sys.stderr)  # fmt: skip
        return 1
    memory = await open_for_cli(settings, vectors=not args.no_vectors)
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
                waiting = await memory.store.count_pending(memory.embedder.model)
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
                interrupted = stopped()
            finally:
                if indexing is not None:
                    await _settle(indexing)
        waiting = 0
        if indexer is not None and memory.embedder is not None:
            waiting = await memory.store.count_pending(memory.embedder.model)
        return _ingest_summary(args, memory, reports, indexer, interrupted, waiting)
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
    interrupted: bool,
    waiting: int,
) -> int:
    outcomes = [outcome for report in reports for outcome in report.outcomes]
    cancelled = interrupted or any(report.cancelled for report in reports)
    failed = [outcome for outcome in outcomes if outcome.status == "failed"]
    by_status = {
        s: [o for o in outcomes if o.status == s] for s in ("added", "replaced", "unchanged")
    }
    skipped = sum(report.skipped for report in reports)
    vectors = {
        "model": memory.embedder_name if indexer else None,
        "chunks": indexer.chunks_done if indexer else 0,
        "error": indexer.error if indexer else None,
        "waiting": waiting,  # documents still without vectors (the next ingest embeds them)
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
            line = f"Vectors: {vectors['chunks']} chunks embedded with {vectors['model']}."
            if waiting:
                line += (f" {waiting} documents still wait for vectors (the next `llmos ingest`"
                         " embeds them; full-text search works meanwhile).")  # fmt: skip
            print(line)
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
        if progress.pending:
            detail += f" · {progress.pending} waiting"
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
