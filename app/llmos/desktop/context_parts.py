"""What a process's next request is made of, part by part (for the context view).

:func:`parts_of` only reads the process (the kernel owns it): the request's segments in the
order the request carries them (the system prompt, pinned and core memory, the summary of the
turns paged out to long-term memory, the memory pages, the conversation turns held, tools),
then the reserve kept for the answer and the free room.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from llmos.desktop.ram_bar import SEGMENT_NAMES
from llmos.drivers.base import Message
from llmos.kernel.context import Segment, split_turns
from llmos.kernel.pages import Page
from llmos.kernel.process import Process
from llmos.memory import paths

TITLE_CHARS = 160
"""Characters of a part's text shown on its line (the view elides what does not fit)."""


@dataclass
class Part:
    """One line of the view: a segment of the request, or one thing in it."""

    key: str
    """Stable across updates (what stays selected and expanded)."""
    title: str
    tokens: int
    note: str = ""
    text: str = ""
    """What the part holds, shown when it is selected."""
    segment: str = ""
    """The segment whose colour marks it (top-level parts)."""
    icon: str = ""
    tip: str = ""
    """The line's tooltip (its title when empty)."""
    faded: bool = False
    """Empty, or held but not sent (a turn left out for lack of room)."""
    children: list[Part] = field(default_factory=list)


def one_line(text: str) -> str:
    """``text`` on one line, cut to what a line can show."""
    flat = " ".join(text.split())
    return flat if len(flat) <= TITLE_CHARS else flat[: TITLE_CHARS - 1] + "\u2026"


def parts_of(
    process: Process, count: Callable[[Message], int], page_cost: Callable[[Page], int]
) -> list[Part]:
    """The parts of ``process``'s next request, in the order it carries them.

    Args:
        count: tokens one message takes (the kernel's counter for the process's model).
        page_cost: tokens one memory page takes.
    """
    usage = process.usage
    segments = usage.segments if usage is not None else {}
    budget = process.budget

    def segment(key: Segment) -> int:
        return segments.get(key, 0)

    system = process.app.system_prompt.strip() or "This app has no system prompt."
    parts = [
        Part(
            "system",
            SEGMENT_NAMES["system"],
            segment(Segment.SYSTEM),
            text=f"{system}\n\n(Its count includes the tokens the model's chat template adds to "
            "open the answer.)",
            segment="system",
        )
    ]

    pinned = Part("pinned", SEGMENT_NAMES["pinned"], segment(Segment.PINNED), segment="pinned")
    for number, message in enumerate(process.pinned, start=1):
        content = str(message.get("content") or "")
        pinned.children.append(
            Part(
                f"pinned:{number}", one_line(content), count(message), text=content, icon="page-in"
            )
        )
    core = process.core.strip()
    if core:
        core_message = process.pinned_messages[-1]
        pinned.children.append(
            Part(
                "core",
                f"Core memory: {one_line(core)}",
                count(core_message),
                "the model keeps it",
                core,
                icon="note",
            )
        )
    pinned.note = f"{len(pinned.children)} item{'s' if len(pinned.children) != 1 else ''}"
    pinned.text = (
        "Pinned memory and core memory (a small block the model edits itself) go into every "
        "request."
        if pinned.children
        else "Nothing is pinned, and core memory is empty."
    )
    parts.append(pinned)

    evicted = process.first_turn - 1
    summary = Part("summary", SEGMENT_NAMES["summary"], segment(Segment.SUMMARY), segment="summary")
    if process.summary.strip():
        counters = process.counters
        fallbacks = counters.summary_fallbacks
        times = "once" if counters.summaries == 1 else f"{counters.summaries} times"
        how = f"Written {times}" + (
            f", {fallbacks} of them without the model (extractive)." if fallbacks else "."
        )
        summary.note = f"turns 1\u2013{evicted}"
        summary.text = (
            f"Turns 1\u2013{evicted} are in long-term memory at {process.memory_folder}; "
            f"this summary of them stays in context RAM. {how}\n\n{process.summary.strip()}"
        )
    else:
        summary.text = (
            "No turns have left the context RAM yet. When the conversation nears its room, "
            "the oldest turns move to long-term memory and a summary of them stays here."
        )
    parts.append(summary)

    pages = Part("paged_in", SEGMENT_NAMES["paged_in"], segment(Segment.PAGED_IN))
    pages.segment = "paged_in"
    for page in process.paged_in:
        who = "paged in for this turn" if page.by_pager else "paged in by you"
        pages.children.append(
            Part(
                f"page:{page.key}",
                f"{paths.name(page.source)} \u00b7 {page.label}",
                page_cost(page),
                who,
                f"{page.source} ({page.label}), {who}:\n\n{page.text}",
                icon="memory" if page.by_pager else "page-in",
                tip=f"{page.source}\n{page.label}",
            )
        )
    pages.note = f"{len(process.paged_in)} page{'s' if len(process.paged_in) != 1 else ''}"
    pages.text = (
        "Memory pages: documents you dragged onto the window, and the chunks of long-term "
        "memory the kernel found relevant to the newest message (replaced every turn)."
        if process.paged_in
        else "No memory pages. Drag documents from the memory explorer onto the window; the "
        "kernel also pages in what long-term memory holds about each new message."
    )
    parts.append(pages)

    parts.append(_conversation(process, count, segment(Segment.HISTORY)))

    if segment(Segment.TOOLS):
        tools = Part("tools", SEGMENT_NAMES["tools"], segment(Segment.TOOLS), segment="tools")
        tools.text = "The schemas of the tools the model may call."
        parts.append(tools)
    reserve = segment(Segment.RESERVE) or process.reserve
    parts.append(
        Part(
            "reserve",
            SEGMENT_NAMES["reserve"],
            reserve,
            "the longest answer",
            f"Kept free for the answer: it may be up to {reserve:,} tokens long.",
            "reserve",
        )
    )
    free = usage.free if usage is not None else budget
    parts.append(
        Part("free", SEGMENT_NAMES["free"], free, "", "Room this request leaves unused.", "free")
    )
    for part in parts:
        part.faded = part.faded or (not part.tokens and part.key not in ("free", "reserve"))
    return parts


def _conversation(process: Process, count: Callable[[Message], int], held: int) -> Part:
    """The conversation's turns, numbered as the process counts them, newest last."""
    turns = split_turns(process.history)
    costs = [sum(count(message) for message in turn) for turn in turns]
    # The request keeps the newest turns that fit; older ones are left out (only when
    # long-term memory cannot take them).
    kept, room = 0, held
    for cost in reversed(costs):
        if kept and cost > room:
            break
        kept += 1
        room -= cost
    first = process.first_turn
    part = Part("history", "Conversation", held, segment="history")
    name = process.app.name
    for index, (turn, cost) in enumerate(zip(turns, costs, strict=True)):
        number = first + index
        left_out = index < len(turns) - kept
        asked = next((m for m in turn if m.get("role") == "user"), turn[0])
        stamp = next((m.get("at") for m in turn if m.get("at")), None)
        note = "left out: no room" if left_out else _clock(stamp)
        lines = []
        for message in turn:
            role = str(message.get("role") or "")
            who = {"user": "You", "assistant": name}.get(role, role.capitalize())
            if message.get("interrupted"):
                who += " (interrupted)"
            lines.append(f"{who}:\n{str(message.get('content') or '').strip()}")
        part.children.append(
            Part(
                f"turn:{number}",
                f"Turn {number} \u00b7 {one_line(str(asked.get('content') or ''))}",
                cost,
                note,
                "\n\n".join(lines),
                icon="conversation",
                faded=left_out,
            )
        )
    if turns:
        last = first + len(turns) - 1
        part.note = f"turns {first}\u2013{last}" if last > first else f"turn {first}"
        part.text = f"{len(turns)} turn{'s' if len(turns) != 1 else ''} held in context RAM."
        if first > 1:
            part.text += f" Turns 1\u2013{first - 1} were moved to long-term memory."
    else:
        part.text = "No messages yet."
    return part


def _clock(stamp: object) -> str:
    if not isinstance(stamp, int | float):
        return ""
    return time.strftime("%H:%M", time.localtime(stamp))
