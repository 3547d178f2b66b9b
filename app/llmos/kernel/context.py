"""Context RAM: a process's ``num_ctx`` tokens, accounted per segment, and fitting a request
into it.

A request is laid out as: system prompt, pinned (core) memory, the summary of evicted turns,
paged-in memory, the conversation history, and the tool schemas; ``reserve`` tokens stay free
for the answer (Ollama's ``num_predict``). The kernel never sends a request whose counted
prompt plus the reserve, widened by the counter's error margin, exceeds the budget.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from llmos.drivers.base import Message, Tool
from llmos.kernel.tokens import TokenCounter

BYTES_PER_TOKEN_SHOWN = 5
"""The seed's rule of thumb for showing context RAM in bytes."""


class Segment(StrEnum):
    SYSTEM = "system"
    PINNED = "pinned"
    SUMMARY = "summary"
    TOOLS = "tools"
    HISTORY = "history"
    PAGED_IN = "paged_in"
    RESERVE = "reserve"


@dataclass(frozen=True, slots=True)
class ContextUsage:
    """A snapshot of one process's context RAM, in tokens."""

    budget: int
    segments: dict[Segment, int] = field(default_factory=dict)
    exact: bool = False
    """True when counted by the model's tokenizer, False when estimated and calibrated."""

    @property
    def used(self) -> int:
        return sum(self.segments.values())

    @property
    def free(self) -> int:
        return max(0, self.budget - self.used)

    @property
    def prompt(self) -> int:
        """Tokens of the request itself (everything but the answer's reserve)."""
        return self.used - self.segments.get(Segment.RESERVE, 0)

    @property
    def prompt_limit(self) -> int:
        """The most prompt tokens a request may carry (the budget less the reserve)."""
        return self.budget - self.segments.get(Segment.RESERVE, 0)

    @property
    def used_bytes(self) -> int:
        return self.used * BYTES_PER_TOKEN_SHOWN

    def as_dict(self) -> dict[str, int | bool]:
        data: dict[str, int | bool] = {s.value: self.segments.get(s, 0) for s in Segment}
        data.update(used=self.used, free=self.free, budget=self.budget, exact=self.exact)
        return data


class PromptTooLarge(Exception):
    """The newest turn cannot fit the context RAM even with all older history left out.

    ``over_by`` is how many tokens (as the kernel counts them, safety margin included) must
    go for the request to be sent.
    """

    def __init__(self, *, over_by: int, budget: int, reserve: int, estimated: bool) -> None:
        self.over_by = over_by
        self.budget = budget
        self.reserve = reserve
        how = (
            " (an estimate with a safety margin: counts become exact once the model has "
            "answered once)"
            if estimated
            else ""
        )
        super().__init__(
            f"The message is about {over_by} tokens too large for this process's context RAM "
            f"({budget} tokens, of which {reserve} are kept for the answer){how}. Shorten it, "
            "or give the process more context (num_ctx in the settings or --num-ctx)."
        )


@dataclass(frozen=True, slots=True)
class FittedRequest:
    """What goes to the model, and what it costs."""

    messages: list[Message]
    usage: ContextUsage
    dropped_turns: int
    dropped_messages: int


def split_turns(history: Sequence[Message]) -> list[list[Message]]:
    """Group history into turns: each starts at a user message and runs to the next.

    Messages before the first user message form a turn of their own. Keeping turns whole
    keeps a tool call with its result.
    """
    turns: list[list[Message]] = []
    for message in history:
        if message.get("role") == "user" or not turns:
            turns.append([message])
        else:
            turns[-1].append(message)
    return turns


def fit_request(
    *,
    budget: int,
    reserve: int,
    counter: TokenCounter,
    system: Sequence[Message] = (),
    pinned: Sequence[Message] = (),
    summary: Sequence[Message] = (),
    paged_in: Sequence[Message] = (),
    history: Sequence[Message] = (),
    tools: Sequence[Tool] | None = None,
) -> FittedRequest:
    """Lay out a request that fits ``budget`` tokens, leaving out the oldest turns if needed.

    The system prompt, pinned memory, the summary, the pages and the newest turn are never
    left out. (The kernel's pager evicts old turns to long-term memory before a request is
    laid out, so with memory attached nothing is left out here.)

    Raises:
        PromptTooLarge: when even the newest turn alone does not fit.
    """
    segments = {
        Segment.SYSTEM: sum(counter.message(m) for m in system) + counter.generation_prompt(),
        Segment.PINNED: sum(counter.message(m) for m in pinned),
        Segment.SUMMARY: sum(counter.message(m) for m in summary),
        Segment.TOOLS: counter.tools(tools),
        Segment.PAGED_IN: sum(counter.message(m) for m in paged_in),
    }
    fixed = sum(segments.values())
    limit = budget - reserve
    scale = 1.0 + counter.margin

    turns = split_turns(history)
    kept: list[tuple[list[Message], int]] = []  # newest first, with each turn's cost
    history_tokens = 0
    for turn in reversed(turns):
        cost = sum(counter.message(m) for m in turn)
        if kept and math.ceil((fixed + history_tokens + cost) * scale) > limit:
            break
        kept.append((turn, cost))
        history_tokens += cost

    def too_large(needed: int) -> PromptTooLarge:
        return PromptTooLarge(
            over_by=needed - limit,
            budget=budget,
            reserve=reserve,
            estimated=not counter.exact and not counter.calibrated,
        )

    needed = math.ceil((fixed + history_tokens) * scale)
    if needed > limit:
        raise too_large(needed)

    while True:
        messages = [
            *system,
            *pinned,
            *summary,
            *paged_in,
            *(m for turn, _ in reversed(kept) for m in turn),
        ]
        exact = counter.prompt(messages, tools)
        if exact is None:
            break
        # A counter that can count the whole prompt has the last word: per-message costs
        # add up exactly only for templates that render each message on its own.
        if math.ceil(exact * scale) <= limit:
            segments[Segment.SYSTEM] += exact - (fixed + history_tokens)
            break
        if len(kept) <= 1:
            raise too_large(math.ceil(exact * scale))
        _, cost = kept.pop()
        history_tokens -= cost

    segments[Segment.HISTORY] = history_tokens
    segments[Segment.RESERVE] = reserve
    dropped = turns[: len(turns) - len(kept)]
    return FittedRequest(
        messages=messages,
        usage=ContextUsage(budget=budget, segments=segments, exact=counter.exact),
        dropped_turns=len(dropped),
        dropped_messages=sum(len(turn) for turn in dropped),
    )
