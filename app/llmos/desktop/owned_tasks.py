"""Tasks a window owns: named, logged when they fail, cancelled when the window closes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterator
from typing import Any

log = logging.getLogger(__name__)


class OwnedTasks:
    """The asyncio tasks one widget started (its answer, a pull, an install...).

    Args:
        owner: names the tasks (``llmos-<owner>-<what>``) and their failures in the log.
    """

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self._tasks: set[asyncio.Task[None]] = set()

    def run(self, coro: Coroutine[Any, Any, None], what: str) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro, name=f"llmos-{self.owner}-{what}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(self._report)
        return task

    def cancel(self) -> None:
        """Cancel every task still running (the widget is closing)."""
        for task in tuple(self._tasks):
            task.cancel()

    def __iter__(self) -> Iterator[asyncio.Task[None]]:
        return iter(tuple(self._tasks))

    def __len__(self) -> int:
        return len(self._tasks)

    def _report(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("a %s task failed", self.owner, exc_info=task.exception())
