"""The kernel's pager on the desktop's long-term memory.

The pager writes evicted turns to long-term memory and pages relevant memory back in (see
:mod:`llmos.kernel.paging`). On the desktop it goes through the one
:class:`~llmos.desktop.memory_service.MemoryService`, so what it writes shows up in the memory
explorer and is embedded by the same indexer as dropped files, and memory is opened once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmos.desktop.memory_service import MemoryService

if TYPE_CHECKING:  # LanceDB behind it is imported in a thread when memory first opens
    from llmos.memory.backing import MemoryBacking
    from llmos.memory.long_term import LongTermMemory


class DesktopMemoryLink:
    """A :data:`~llmos.kernel.paging.MemoryLink` on the desktop's memory service.

    ``await link(True)`` opens memory if needed (off the GUI thread); ``await link(False)``
    does not create memory that does not exist yet, so a desktop that never stored anything
    pays nothing for paging in. Raises :class:`MemoryUnavailable` when memory cannot open:
    the pager then works without it for a while and tries again.
    """

    def __init__(self, service: MemoryService) -> None:
        self.service = service
        self._backing: MemoryBacking | None = None

    async def __call__(self, create: bool) -> MemoryBacking | None:
        service = self.service
        if service.closing:
            return None  # the desktop is closing: evicting now would drop nothing
        if not create and service.memory is None and not service.exists():
            return None
        memory = await service.ready()
        return self._backing_of(memory)

    def _backing_of(self, memory: LongTermMemory) -> MemoryBacking:
        # One wrapper per memory object: memory is reopened after it failed to open.
        if self._backing is None or self._backing.memory is not memory:
            from llmos.memory.backing import MemoryBacking

            self._backing = MemoryBacking(memory)
        return self._backing
