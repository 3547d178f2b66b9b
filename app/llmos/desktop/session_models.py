"""What the task manager's lists of saved processes show: a row per session
(:class:`~llmos.kernel.sessions.SessionInfo`), its figures and problems in words."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, ClassVar

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtWidgets import QWidget

from llmos.desktop.ram_bar import human_tokens
from llmos.desktop.row_table import ColumnsModel
from llmos.desktop.theme import current_theme
from llmos.kernel.sessions import SessionInfo

SORT_ROLE = Qt.ItemDataRole.UserRole + 1
STATUS_TEXT = {
    "hibernated": "Hibernated",
    "interrupted": "Interrupted \u2014 LLM-OS stopped",
    "damaged": "Damaged",
    "ended": "Ended",
}
STATUS_TIPS = {
    "hibernated": "Written to disk, its context RAM freed. Wake it to go on.",
    "interrupted": "LLM-OS stopped (it crashed or was killed) while this process ran. What "
    "was written down is kept: wake it to go on from there.",
    "damaged": "Its files cannot be read. Delete it to free the space.",
}

HIBERNATED_TIPS = {
    4: "The context RAM it held (tokens of its budget); waking it takes them again",
    6: "What could not be read from its files",
}
HISTORY_TIPS = {
    3: "Tokens it sent the model (every request's prompt) + tokens the model generated",
}


def when(stamp: float | None, now: float | None = None) -> str:
    """A time as the lists show it: "14:03" today, "Nov 28 14:03" this year, else the date."""
    if not stamp:
        return "\u2013"
    moment, today = time.localtime(stamp), time.localtime(now)
    if moment[:3] == today[:3]:
        return time.strftime("%H:%M", moment)
    if moment.tm_year == today.tm_year:
        return time.strftime("%b %d %H:%M", moment)
    return time.strftime("%Y-%m-%d", moment)


def problem_text(info: SessionInfo) -> str:
    """What is wrong with a session, as a sentence ("" when nothing)."""
    problem = info.problem.strip().rstrip(".")
    if info.status == "damaged":
        return f"{problem[:1].upper()}{problem[1:]}." if problem else "Its files cannot be read."
    return f"Partly damaged: {problem}." if problem else ""


def app_name(info: SessionInfo) -> str:
    return "Unknown app" if info.app_name in ("", "?") else info.app_name


class SessionListModel(ColumnsModel):
    """Saved processes, one a row (replaced as a whole at each reading). Columns are named;
    the conversation's first line comes last and takes the room left.

    Signals:
        None (beyond QAbstractTableModel's).
    """

    samples: ClassVar[dict[str, str]] = {}
    """Typical widest contents by column (their initial widths)."""
    aligned: ClassVar[dict[str, Qt.AlignmentFlag]] = {
        "PID": Qt.AlignmentFlag.AlignRight,
        "Turns": Qt.AlignmentFlag.AlignHCenter,  # right, it would run into the next column
    }
    least_needed: ClassVar[tuple[str, ...]] = ()
    """Columns a narrow panel hides, in this order, to keep the first line in sight."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.infos: list[SessionInfo] = []

    def set_infos(self, infos: Sequence[SessionInfo]) -> None:
        if [i.pid for i in infos] == [i.pid for i in self.infos]:
            self.infos = list(infos)
            if self.infos:
                last = self.index(len(self.infos) - 1, len(self.columns) - 1)
                self.dataChanged.emit(self.index(0, 0), last)
            return
        self.beginResetModel()
        self.infos = list(infos)
        self.endResetModel()

    def row_count(self) -> int:
        return len(self.infos)

    def data(
        self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self.infos):
            return None
        info, column = self.infos[index.row()], self.columns[index.column()]
        if role in (Qt.ItemDataRole.DisplayRole, SORT_ROLE):
            key, text = self.cell(info, column)
            return text if role == Qt.ItemDataRole.DisplayRole else key
        if role == Qt.ItemDataRole.ToolTipRole:
            return self.tooltip(info, column)
        if role == Qt.ItemDataRole.ForegroundRole:
            return self.colour(info, column)
        if role == Qt.ItemDataRole.TextAlignmentRole and column in self.aligned:
            return int(self.aligned[column] | Qt.AlignmentFlag.AlignVCenter)
        return None

    def cell(self, info: SessionInfo, column: str) -> tuple[Any, str]:
        """One cell's (sort key, text)."""
        if column == "PID":
            return info.pid, str(info.pid)
        if column == "App":
            return app_name(info).casefold(), app_name(info)
        if column == "Started":
            return info.started_at, when(info.started_at)
        if column == "Turns":
            return info.turns, "" if info.status == "damaged" else str(info.turns)
        return info.first_line.casefold(), info.first_line

    def tooltip(self, info: SessionInfo, column: str) -> str | None:
        return problem_text(info) or info.first_line or None

    def colour(self, info: SessionInfo, column: str) -> Any:
        return current_theme().bad if info.status == "damaged" else None


class HibernatedModel(SessionListModel):
    """Hibernated processes, those an LLM-OS crash interrupted, and damaged sessions."""

    # Started (text) before the first line: figures aligned right would touch it.
    columns = ("PID", "App", "Status", "Turns", "Context RAM", "Started", "Problem", "First line")
    samples: ClassVar[dict[str, str]] = {
        "PID": "88888", "App": "Unknown app", "Status": STATUS_TEXT["interrupted"],
        "Started": "Nov 28 14:03", "Turns": "888", "Context RAM": "88.8k / 88.8k tokens",
        "Problem": "x" * 64, "First line": "",
    }  # fmt: skip
    least_needed = ("Context RAM", "Turns", "Started", "PID")
    header_tips = HIBERNATED_TIPS

    def cell(self, info: SessionInfo, column: str) -> tuple[Any, str]:
        if column == "Status":
            return info.status, STATUS_TEXT.get(info.status, info.status.capitalize())
        if column == "Context RAM":
            if not info.budget:
                return 0, ""
            used, budget = human_tokens(info.context_tokens), human_tokens(info.budget)
            return info.context_tokens, f"{used} / {budget} tokens"
        if column == "Problem":
            return info.problem, problem_text(info)
        return super().cell(info, column)

    def tooltip(self, info: SessionInfo, column: str) -> str | None:
        if column == "Status":
            return STATUS_TIPS.get(info.status)
        if column == "Context RAM" and info.budget:
            return (
                f"It held {info.context_tokens:,} of its {info.budget:,} tokens of context RAM "
                "(freed while it sleeps)"
            )
        return super().tooltip(info, column)

    def colour(self, info: SessionInfo, column: str) -> Any:
        theme = current_theme()
        if info.status == "damaged" or (column == "Problem" and info.problem):
            return theme.bad
        if column == "Status":
            return theme.warn if info.status == "interrupted" else theme.muted
        return None


class HistoryModel(SessionListModel):
    """Ended processes, newest first."""

    columns = ("PID", "App", "Turns", "Tokens", "Started", "Ended", "First line")
    samples: ClassVar[dict[str, str]] = {
        "PID": "88888", "App": "Librarian", "Started": "Nov 28 14:03", "Ended": "Nov 28 14:03",
        "Turns": "888", "Tokens": "88.8k in + 88.8k out", "First line": "",
    }  # fmt: skip
    least_needed = ("Tokens", "Ended", "Turns", "PID")
    header_tips = HISTORY_TIPS

    def cell(self, info: SessionInfo, column: str) -> tuple[Any, str]:
        if column == "Ended":
            return info.ended_at or 0.0, when(info.ended_at)
        if column == "Tokens":
            prompt, generated = info.prompt_tokens, info.generated_tokens
            return prompt + generated, f"{human_tokens(prompt)} in + {human_tokens(generated)} out"
        return super().cell(info, column)

    def tooltip(self, info: SessionInfo, column: str) -> str | None:
        if column == "Tokens":
            return (
                f"{info.prompt_tokens:,} tokens sent to the model (prompts) + "
                f"{info.generated_tokens:,} generated, on {info.model or 'its model'}"
            )
        return super().tooltip(info, column)


def deletion_question(info: SessionInfo) -> str:
    """The question asked before deleting a session."""
    if info.status == "damaged":
        return f"Delete the damaged saved process {info.pid}?"
    return f"Delete {app_name(info)} (pid {info.pid}) and its conversation?"


def what_is_lost(info: SessionInfo) -> str:
    """What deleting a session loses, and what it keeps."""
    if info.status == "damaged":
        return f"{problem_text(info)} Its files are removed from disk."
    turns = f"{info.turns} turn{'' if info.turns == 1 else 's'}"
    about = f" (\u201c{info.first_line}\u201d)" if info.first_line else ""
    can = "woken" if info.resumable else "reopened"
    return (
        f"Its conversation, {turns}{about}, and its saved context are removed from disk: it "
        f"cannot be {can} again. What it stored in long-term memory stays."
    )
