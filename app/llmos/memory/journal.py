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
from dataclasses import asdict, dataclass
from pathlib import Path

import filelock


@dataclass(frozen=True, slots=True)
class JobRecord:
    id: str
    sources: list[str]
    folder: str
    started: float


class IngestJournal:
    def __init__(self, directory: Path) -> None:
        self.jobs = directory / "jobs"
        self._lock = filelock.FileLock(directory / "ingest.lock")

    @asynccontextmanager
    async def turn(self, waiting: Callable[[], None] | None = None) -> AsyncIterator[None]:
        """Hold the ingest lock; ``waiting`` is called once if another ingest holds it now."""
        told = False
        while True:
            try:
                self._lock.acquire(timeout=0)
                break
            except filelock.Timeout:
                if not told and waiting is not None:
                    waiting()
                    told = True
                await asyncio.sleep(0.25)
        try:
            yield
        finally:
            self._lock.release()

    def start(self, sources: list[str], folder: str) -> JobRecord:
        record = JobRecord(uuid.uuid4().hex[:12], sources, folder, time.time())
        self.jobs.mkdir(parents=True, exist_ok=True)
        final = self.jobs / f"{record.id}.json"
        temporary = final.with_suffix(".tmp")
        with temporary.open("w", encoding="utf-8") as handle:
            json.dump(asdict(record), handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, final)
        return record

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
