"""What memory operations raise when a user's request cannot be done (messages say why).

Kept apart from the store so the command line can name them without importing LanceDB.
"""

from __future__ import annotations


class MemoryStoreError(Exception):
    """A memory operation the user asked for cannot be done; the message says why."""


class NotFound(MemoryStoreError):
    """No document or folder at the path or id given."""
