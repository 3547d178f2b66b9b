"""The pager's texts: evicted turns as a conversation page, the summarising call's prompt,
checking the model's summary, the extractive summary that stands in for it, and excerpts of
chunks too large to page in whole. Pure functions of text and a token counter."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from llmos.drivers.base import Message
from llmos.kernel.pages import Page
from llmos.kernel.tokens import TokenCounter

if TYPE_CHECKING:
    from llmos.kernel.process import Process


def render_turns(turns: Sequence[Sequence[Message]], first: int, title: str) -> str:
    """Evicted turns as a Markdown conversation page: one section a turn, with its time."""
    lines = [f"# {title}", ""]
    for number, turn in enumerate(turns, start=first):
        stamp = next((m.get("at") for m in turn if m.get("at")), None)
        when = f" · {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(stamp))}" if stamp else ""
        lines += [f"## Turn {number}{when}", ""]
        for message in turn:
            role = str(message.get("role", "?"))
            if message.get("tool_name"):
                role += f" ({message['tool_name']})"
            content = str(message.get("content") or "").strip()
            if message.get("tool_calls"):
                calls = ", ".join(
                    str(call.get("function", {}).get("name", "?")) for call in message["tool_calls"]
                )
                content = f"{content}\n(called {calls})".strip()
            if message.get("interrupted"):
                content += " [interrupted]"
            lines += [f"**{role}:** {content}", ""]
    return "\n".join(lines).rstrip() + "\n"


def summary_prompt(
    old: str,
    turns: Sequence[Sequence[Message]],
    first: int,
    last: int,
    cap: int,
    counter: TokenCounter,
    process: Process,
) -> list[Message]:
    """The summarising call's messages, cut to fit the process's context RAM."""
    words = max(20, int(cap * 0.6))
    system: Message = {
        "role": "system",
        "content": (
            "You maintain the running summary of a conversation whose older turns were moved "
            "out of the context window. Rewrite the summary so it covers the previous summary "
            "and the new turns. Keep names, numbers, decisions and open questions. "
            f"Write plain sentences, at most {words} words, and nothing else."
        ),
    }
    head = f"Previous summary:\n{old.strip() or '(none)'}\n\nNew turns {first}-{last}:\n"
    body = "\n".join(
        f"{m.get('role')}: {str(m.get('content') or '').strip()}" for turn in turns for m in turn
    )
    room = math.floor((process.budget - cap) / (1 + counter.margin)) - 64
    for _ in range(4):
        user: Message = {"role": "user", "content": head + body}
        cost = counter.message(system) + counter.message(user) + counter.generation_prompt()
        if cost <= room or len(body) < 200:
            break
        body = body[: int(len(body) * room / cost * 0.9)] + " ..."
    return [system, user]


def usable_summary(text: str, cap: int, counter: TokenCounter) -> str:
    """The model's summary cleaned up and cut to ``cap`` tokens; "" when it is nonsense
    (empty, no words, or looping on the same words)."""
    text = re.sub(r"^\s*(updated\s+)?summary\s*:\s*", "", text.strip(), flags=re.IGNORECASE)
    words = re.findall(r"\w+", text.lower())
    if len(words) < 3:
        return ""
    if len(words) >= 24 and len(set(words)) / len(words) < 0.3:
        return ""  # a model stuck in a loop
    return _cut(text, cap, counter)


def extractive_summary(
    old: str, turns: Sequence[Sequence[Message]], first: int, cap: int, counter: TokenCounter
) -> str:
    """A summary without a model: the first sentence of each side of each evicted turn,
    after the old summary; the oldest lines go first when it outgrows ``cap`` tokens."""
    lines = [line for line in old.splitlines() if line.strip()]
    for number, turn in enumerate(turns, start=first):
        asked = next((m for m in turn if m.get("role") == "user"), None)
        answered = next((m for m in reversed(turn) if m.get("role") == "assistant"), None)
        parts = []
        if asked is not None:
            parts.append(f"user: {_gist(str(asked.get('content') or ''), 40)}")
        if answered is not None:
            parts.append(f"assistant: {_gist(str(answered.get('content') or ''), 24)}")
        if parts:
            lines.append(f"Turn {number}: " + " / ".join(parts))
    while len(lines) > 1 and _cost(lines, counter) > cap:
        lines.pop(0)
    return _cut("\n".join(lines), cap, counter)


def _gist(text: str, words: int) -> str:
    sentence = re.split(r"(?<=[.!?])\s", " ".join(text.split()), maxsplit=1)[0]
    kept = sentence.split()
    return " ".join(kept[:words]) + (" ..." if len(kept) > words else "")


def _cost(lines: list[str], counter: TokenCounter) -> int:
    return counter.message({"role": "system", "content": "\n".join(lines)})


def _cut(text: str, cap: int, counter: TokenCounter) -> str:
    """``text`` within ``cap`` tokens, cut at a sentence or word boundary when too long."""
    if counter.message({"role": "system", "content": text}) <= cap:
        return text
    low, high = 0, len(text)
    while low < high:  # the longest prefix that fits
        middle = (low + high + 1) // 2
        if counter.message({"role": "system", "content": text[:middle]}) <= cap:
            low = middle
        else:
            high = middle - 1
    cut = text[:low]
    end = max(cut.rfind(". "), cut.rfind("\n"))
    if end > low // 2:
        return cut[: end + 1].rstrip()
    return cut.rsplit(" ", 1)[0].rstrip() + " ..."


def excerpt(page: Page, query: str, room: int, counter: TokenCounter) -> Page:
    """The lines of ``page`` around its best match for ``query`` that fit ``room`` tokens
    (its text empty when no line matches or none fits)."""
    words = set(re.findall(r"\w{3,}", query.lower()))
    lines = page.text.splitlines()
    scores = [len(words & set(re.findall(r"\w{3,}", line.lower()))) for line in lines]
    if not lines or max(scores) == 0:
        return replace(page, text="")
    best = scores.index(max(scores))
    start = end = best
    label = f"{page.label}, excerpt"

    def cost(first: int, last: int) -> int:
        text = "\n".join(lines[first : last + 1])
        return counter.message(replace(page, text=text, label=label).message)

    if cost(best, best) > room:
        return replace(page, text="")
    while True:  # grow around the best line while it fits, forward first
        grew = False
        if end + 1 < len(lines) and cost(start, end + 1) <= room:
            end, grew = end + 1, True
        if start > 0 and cost(start - 1, end) <= room:
            start, grew = start - 1, True
        if not grew:
            break
    return replace(page, text="\n".join(lines[start : end + 1]), label=label)
