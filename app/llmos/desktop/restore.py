"""Bringing windows back: the sessions that had a window on screen, and their conversations.

At start-up the desktop reads the sessions folder itself (off the GUI thread), so the windows
of the processes that were on screen open at once, each showing its conversation, while the
model engine starts behind them; each window then asks the kernel to restore its process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmos.apps.manifest import AppManifest
from llmos.apps.registry import AppRegistry
from llmos.desktop.chat_view import ChatView
from llmos.drivers.base import Message
from llmos.kernel.hibernation import app_of
from llmos.kernel.sessions import SavedProcess, SessionError, SessionStore

INTERRUPTED = "Interrupted: this answer was not finished."
CUT_BY_CRASH = "Interrupted: LLM-OS stopped before this answer was finished."


@dataclass
class SavedWindows:
    """What the sessions folder says about the windows to bring back."""

    saved: list[SavedProcess] = field(default_factory=list)
    """The processes whose window was on screen, in the order they were opened."""
    problems: list[str] = field(default_factory=list)
    """Sessions that cannot come back now, in plain words."""


def read_saved_windows(data_dir: Path) -> SavedWindows:
    """The sleeping or interrupted processes that had a window on screen (blocking: call it
    in a thread)."""
    store = SessionStore.in_data_dir(data_dir)
    found = SavedWindows()
    try:
        for info in store.list(ended=False):
            if not info.window:  # damaged ones too: the Hibernated list shows them
                continue
            if info.status == "running":
                found.problems.append(
                    f"{info.app_name} \u00b7 {info.pid} is running in another LLM-OS on this "
                    "data dir, so its window stays there."
                )
                continue
            if not info.resumable:
                continue
            try:
                saved = store.load(info.pid)
            except SessionError as error:
                found.problems.append(f"Process {info.pid} cannot be read: {error}")
                continue
            if saved.window is not None and saved.window.get("open"):
                found.saved.append(saved)
    finally:
        store.close()
    found.saved.sort(key=lambda s: (_number(s.window, "order", s.pid), s.pid))
    return found


def stacking(saved: list[SavedProcess]) -> list[SavedProcess]:
    """``saved`` from the bottom of the stack of windows to its top."""
    return sorted(saved, key=lambda s: _number(s.window, "z", 0))


def manifest_of(saved: SavedProcess, apps: AppRegistry) -> AppManifest:
    """The app to show ``saved`` with: the installed one, or (removed, disabled) the one it
    started with (the kernel's own choice, :func:`~llmos.kernel.hibernation.app_of`).

    Raises:
        SessionError: neither can be read.
    """
    return app_of(saved, apps)[0]


def show_conversation(chat: ChatView, saved: SavedProcess, name: str) -> None:
    """Show ``saved``'s whole conversation (evicted turns too) in ``chat``.

    Tool calls and their results are the process's own business: only what was said shows.
    """
    for message in saved.transcript:
        _show_message(chat, message, name)
    if saved.partial:
        chat.add_message("assistant", saved.partial, name, note=CUT_BY_CRASH)


def _show_message(chat: ChatView, message: Message, name: str) -> None:
    role, content = message.get("role"), str(message.get("content") or "")
    if role == "user":
        images = len(message.get("images") or ())
        note = "" if not images else "With 1 image." if images == 1 else f"With {images} images."
        chat.add_message("user", content, "You", note=note)
    elif role == "assistant" and content.strip():
        note = INTERRUPTED if message.get("interrupted") else ""
        chat.add_message("assistant", content, name, note=note)


def _number(window: dict[str, Any] | None, key: str, default: int) -> int:
    value = (window or {}).get(key, default)
    return value if isinstance(value, int) else default
