"""Counting tokens: exactly when a backend can tokenize, otherwise a calibrated estimate.

Ollama has no tokenize endpoint, so for it the kernel estimates from UTF-8 bytes and corrects
the estimate after every call with the server's own ``prompt_eval_count``. The estimate is
linear in the bytes of each piece, so per-segment figures always add up to the total.
"""

from __future__ import annotations

import json
from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from typing import Protocol

from llmos.drivers.base import Message, Tool

BYTES_PER_TOKEN = 4.0
"""Prior for text before any calibration (what MemGPT/Letta assume for Ollama)."""
MESSAGE_OVERHEAD = 4
"""Role markers a chat template wraps around each message."""
GENERATION_PROMPT = 3
"""The template's opening of the assistant's answer."""
TOOLS_OVERHEAD = 10
IMAGE_TOKENS = 576
"""A typical vision encoder's image cost (LLaVA-style 24x24 patches)."""

UNCALIBRATED_MARGIN = 0.25
MIN_MARGIN = 0.02
MAX_MARGIN = 0.25


class TokenCounter(Protocol):
    """Counts the tokens of prompt pieces for one model."""

    @property
    def exact(self) -> bool:
        """True when counts come from the model's own tokenizer."""
        ...

    @property
    def calibrated(self) -> bool:
        """True once the counter has learned from at least one backend count."""
        ...

    @property
    def margin(self) -> float:
        """Fraction to keep free on top of the count to absorb estimation error."""
        ...

    def message(self, message: Message) -> int:
        """Tokens one message adds to a prompt, template markers included."""
        ...

    def tools(self, tools: Sequence[Tool] | None) -> int:
        """Tokens the tool schemas add."""
        ...

    def generation_prompt(self) -> int:
        """Tokens the template adds to open the answer."""
        ...

    def observe(
        self, messages: Sequence[Message], tools: Sequence[Tool] | None, reported: int
    ) -> None:
        """Learn from the backend's count of a prompt it received."""
        ...

    def learn_answer(self, message: Message, completion_tokens: int) -> None:
        """Learn an answer's cost from the backend's count of the tokens it generated."""
        ...


def _raw_message(message: Message) -> float:
    size = len(str(message.get("content") or "").encode())
    calls = message.get("tool_calls")
    if calls:
        size += len(json.dumps(calls, ensure_ascii=False, default=str).encode())
    images = message.get("images") or ()
    return MESSAGE_OVERHEAD + size / BYTES_PER_TOKEN + IMAGE_TOKENS * len(images)


def _raw_tools(tools: Sequence[Tool] | None) -> float:
    if not tools:
        return 0.0
    size = len(json.dumps(list(tools), ensure_ascii=False, default=str).encode())
    return TOOLS_OVERHEAD + size / BYTES_PER_TOKEN


class CalibratedEstimator:
    """A byte-based estimate that learns the backend's counts.

    Two things are learned from every call's ``prompt_eval_count``:

    - the cost of each message the call introduced: the reported total, less what is already
      known, is shared among the new messages by their byte estimates (with one new message,
      the usual case, its cost is then exact), and remembered by content. A finished answer's
      cost is learned from ``eval_count``. So a conversation's next prompt is known but for
      its newest user turn;
    - a bytes-to-tokens scale for text not seen yet, from the same remainder.

    The margin grows to 1.5x the worst relative error seen over the last few calls, so a
    request sized with it does not overflow while the estimate is still settling.
    """

    def __init__(self, *, history: int = 8, remember: int = 50_000) -> None:
        self.scale = 1.0
        self._observations = 0
        self._errors: deque[float] = deque(maxlen=history)
        self._known: OrderedDict[int, int] = OrderedDict()
        self._remember = remember

    @property
    def exact(self) -> bool:
        return False

    @property
    def calibrated(self) -> bool:
        return self._observations > 0

    @property
    def margin(self) -> float:
        if not self._errors:
            return UNCALIBRATED_MARGIN
        return min(MAX_MARGIN, max(MIN_MARGIN, 1.5 * max(self._errors)))

    def message(self, message: Message) -> int:
        known = self._known.get(_message_key(message))
        if known is not None:
            return known
        return round(self.scale * _raw_message(message))

    def tools(self, tools: Sequence[Tool] | None) -> int:
        return round(self.scale * _raw_tools(tools))

    def generation_prompt(self) -> int:
        return round(self.scale * GENERATION_PROMPT)

    def estimate(self, messages: Iterable[Message], tools: Sequence[Tool] | None) -> int:
        return sum(self.message(m) for m in messages) + self.tools(tools) + self.generation_prompt()

    def observe(
        self, messages: Sequence[Message], tools: Sequence[Tool] | None, reported: int
    ) -> None:
        if reported <= 0:
            return
        if self.calibrated:
            self._errors.append(abs(self.estimate(messages, tools) - reported) / reported)
        known = 0
        new: dict[int, float] = {}
        for message in messages:
            key = _message_key(message)
            if key in self._known:
                known += self._known[key]
            else:
                new[key] = new.get(key, 0.0) + _raw_message(message)
        remainder = reported - known - self.tools(tools) - self.generation_prompt()
        raw = sum(new.values())
        if new and remainder > 0:
            self.scale = remainder / raw
            for key, cost in new.items():
                self._remember_cost(key, max(1, round(remainder * cost / raw)))
        self._observations += 1

    def learn_answer(self, message: Message, completion_tokens: int) -> None:
        """Remember an answer's cost from the backend's count of the tokens it generated."""
        if completion_tokens > 0:
            self._remember_cost(_message_key(message), completion_tokens + MESSAGE_OVERHEAD)

    def _remember_cost(self, key: int, tokens: int) -> None:
        self._known[key] = tokens
        self._known.move_to_end(key)
        while len(self._known) > self._remember:
            self._known.popitem(last=False)


def _message_key(message: Message) -> int:
    calls = message.get("tool_calls")
    return hash(
        (
            message.get("role"),
            str(message.get("content") or ""),
            json.dumps(calls, sort_keys=True, default=str) if calls else "",
            len(message.get("images") or ()),
        )
    )


class Calibration:
    """One estimator per model, shared by every process using that model."""

    def __init__(self) -> None:
        self._by_model: dict[str, CalibratedEstimator] = {}

    def for_model(self, model: str) -> CalibratedEstimator:
        if model not in self._by_model:
            self._by_model[model] = CalibratedEstimator()
        return self._by_model[model]
