"""A reader that kills its worker process on files named ``crash*``, like a reader library
crashing hard in C (used by the ingestion tests; workers import it by name)."""

from __future__ import annotations

import os
from pathlib import Path

from llmos.memory.worker import ReadResult, ReadTask, read_document


def read_or_crash(task: ReadTask) -> ReadResult:
    if Path(task.source).name.startswith("crash"):
        os._exit(1)
    return read_document(task)
