"""The durable ingestion queue: what an ingest set out to do, kept until it is done.

An ingest writes its job (sources, folder, options) to ``memory/jobs/<id>.json`` before storing
anything and deletes it when it finishes or the user cancels it. Ingests on one memory take turns
through ``memory/ingest.lock``, so a job file found while holding that lock belongs to an ingest
that was killed: the next ingest resumes it (unchanged files are skipped by content hash) after
removing the chunks the killed one left without a document.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import filelock

MAX_ATTEMPTS = 3
"""Times a job is resumed before it is given up (a job that kills its ingest every time)."""


@dataclass(frozen=True, slots=True)
class JobRecord:
    id: str
    sources: list[str]
    """Absolute paths, so a resume from another directory finds them."""
    folder: str
    started: float
    options: dict[str, int] = field(default_factory=dict)
    """Chunking and size options the job ran with."""
    attempts: int = 1


class IngestJournal:
    def __init__(self, directory: Path) -> None:
        self.jobs = directory / "jobs"
        self._lock = filelock.FileLock(directory / "ingest.lock")
        # filelock lets the holder acquire again, so tasks of this process queue here first.
        self._local = asyncio.Lock()

    @asynccontextmanager
    async def turn(self, waiting: Callable[[], None] | None = None) -> AsyncIterator[None]:
        """Hold the ingest lock; ``waiting`` is called once if another ingest holds it now."""
        told = False

        def tell() -> None:
            nonlocal told
            if not told and waiting is not None:
                waiting()
                told = True

        if self._local.locked():
            tell()
        async with self._local:
            while True:
                try:
                    self._lock.acquire(timeout=0)
                    break
                except filelock.Timeout:
                    tell()
                    await asyncio.sleep(0.25)
            try:
                yield
            finally:
                self._lock.release()

    def start(self, sources: list[str], folder: str, options: dict[str, int]) -> JobRecord:
        absolute = [os.path.abspath(os.path.expanduser(source)) for source in sources]
        record = JobRecord(uuid.uuid4().hex[:12], absolute, folder, time.time(), options)
        self._write(record)
        return record

    def again(self, record: JobRecord) -> JobRecord:
        """Note another attempt at ``record`` before it is resumed."""
        record = replace(record, attempts=record.attempts + 1)
        self._write(record)
        return record

    def _write(self, record: JobRecord) -> None:
        self.jobs.mkdir(parents=True, exist_ok=True)
        final = self.jobs / f"{record.id}.json"
        temporary = final.with_suffix(".tmp")
        with temporary.open("w", encoding="utf-8") as handle:
            json.dump(asdict(record), handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, final)

    def finish(self, record: JobRecord) -> None:
        (self.jobs / f"{record.id}.json").unlink(missing_ok=True)

    def interrupted(self) -> list[JobRecord]:
        """Jobs whose ingest died; only meaningful while holding :meth:`turn`."""
        records = []
        for file in sorted(self.jobs.glob("*.json")) if self.jobs.exists() else []:
            try:
                records.append(JobRecord(**json.loads(file.read_text(encoding="utf-8"))))
            except (OSError, ValueError, TypeError):
                file.unlink(missing_ok=True)  # a job file cut short by the crash itself
        for stale in self.jobs.glob("*.tmp") if self.jobs.exists() else []:
            stale.unlink(missing_ok=True)
        return records
