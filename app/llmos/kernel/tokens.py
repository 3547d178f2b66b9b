"""Counting tokens: exactly when a backend can tokenize, otherwise a calibrated estimate.

Ollama has no tokenize endpoint, so for it the kernel estimates and corrects the estimate
after every call with the server's own ``prompt_eval_count``. The estimate of a prompt is the
sum of its messages' estimates, so per-segment figures always add up to the total.

The prior, before any calibration, is deliberately on the high side for every kind of text:
a run of ASCII letters costs one token per 4 letters (rounded up), and every other visible
character (a digit, punctuation, a CJK character, an accented letter) one token. Dense text
such as numbers, CSV or code is 1-2 bytes a token, so a bytes-based prior would undercount it
and let an oversized request through.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Protocol

from llmos.drivers.base import Message, Tool

MESSAGE_OVERHEAD = 4
"""Role markers a chat template wraps around each message."""
GENERATION_PROMPT = 3
"""The template's opening of the assistant's answer."""
TOOLS_OVERHEAD = 10
IMAGE_TOKENS = 1024
"""Prior for one image (vision encoders use 256 to ~1,600); learned per model."""

UNCALIBRATED_MARGIN = 0.25
MIN_MARGIN = 0.02
MAX_MARGIN = 0.5

_ASCII_WORD = re.compile(r"[A-Za-z]+")
_SINGLE = re.compile(r"[^\sA-Za-z]")
_SPACE_RUN = re.compile(r"\s{2,}")


@lru_cache(maxsize=8192)
def text_prior(text: str) -> int:
    """A high-side token estimate of ``text`` for an unknown tokenizer."""
    if not text:
        return 0
    words = sum((len(word) + 3) // 4 for word in _ASCII_WORD.findall(text))
    spaces = sum((len(run) + 2) // 4 for run in _SPACE_RUN.findall(text))
    return words + len(_SINGLE.findall(text)) + spaces


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

    def prompt(self, messages: Sequence[Message], tools: Sequence[Tool] | None) -> int | None:
        """The whole prompt's exact count, or None when only the sum of parts is known."""
        ...

    def observe(
        self,
        messages: Sequence[Message],
        tools: Sequence[Tool] | None,
        reported: int,
        *,
        truncated: bool = False,
    ) -> None:
        """Learn from the backend's count of a prompt it received. ``truncated`` says the
        backend cut the prompt, so the count is only a lower bound."""
        ...

    def learn_answer(self, message: Message, completion_tokens: int) -> None:
        """Learn an answer's cost from the backend's count of the tokens it generated."""
        ...


def _text_raw(message: Message) -> float:
    raw = MESSAGE_OVERHEAD + text_prior(str(message.get("content") or ""))
    calls = message.get("tool_calls")
    if calls:
        raw += text_prior(json.dumps(calls, ensure_ascii=False, default=str))
    return raw


def _image_count(message: Message) -> int:
    return len(message.get("images") or ())


def _raw_tools(tools: Sequence[Tool] | None) -> float:
    if not tools:
        return 0.0
    return TOOLS_OVERHEAD + text_prior(json.dumps(list(tools), ensure_ascii=False, default=str))


class CalibratedEstimator:
    """A prior estimate that learns the backend's counts.

    Three things are learned from every call's ``prompt_eval_count``:

    - the cost of the message the call introduced: the reported total less what is already
      known, remembered by content (exact). When a call introduces several (a user message
      and the memory pages paged in for it), only the first call's split is remembered;
      later ones are estimated until they come alone. A finished answer's cost is learned
      from ``eval_count``. So a conversation's next prompt is known but for its newest user
      turn and its new pages;
    - a scale from the prior to this model's tokens: the highest ratio of remainder to prior
      over the last few calls, as text of different kinds tokenizes differently;
    - the cost of an image, from calls that introduce images (kept apart from the text scale).

    The margin grows to 1.5x the worst relative error seen over the last few calls, so a
    request sized with it does not overflow while the estimate is still settling.
    """

    def __init__(self, *, history: int = 8, remember: int = 50_000) -> None:
        self.scale = 1.0
        self.image_tokens = float(IMAGE_TOKENS)
        self._observations = 0
        self._errors: deque[float] = deque(maxlen=history)
        self._ratios: deque[float] = deque(maxlen=history)
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
        return round(self._estimate_new(message))

    def _estimate_new(self, message: Message) -> float:
        return self.scale * _text_raw(message) + self.image_tokens * _image_count(message)

    def tools(self, tools: Sequence[Tool] | None) -> int:
        if not tools:
            return 0
        known = self._known.get(_tools_key(tools))
        if known is not None:
            return known
        return round(self.scale * _raw_tools(tools))

    def generation_prompt(self) -> int:
        return round(self.scale * GENERATION_PROMPT)

    def prompt(self, messages: Sequence[Message], tools: Sequence[Tool] | None) -> int | None:
        return None

    def estimate(self, messages: Iterable[Message], tools: Sequence[Tool] | None) -> int:
        return sum(self.message(m) for m in messages) + self.tools(tools) + self.generation_prompt()

    def observe(
        self,
        messages: Sequence[Message],
        tools: Sequence[Tool] | None,
        reported: int,
        *,
        truncated: bool = False,
    ) -> None:
        if reported <= 0:
            return
        estimate = self.estimate(messages, tools)
        if self.calibrated or estimate < reported:
            self._errors.append(abs(estimate - reported) / reported)
        known = 0
        new: dict[int, Message] = {}
        for message in messages:
            key = _message_key(message)
            if key in self._known:
                known += self._known[key]
            else:
                new[key] = message
        # Tool schemas new to the counter are learned like a new message: their share of
        # what is not known yet, by their estimate.
        new_tools = bool(tools) and _tools_key(tools) not in self._known
        if tools and not new_tools:
            known += self.tools(tools)
        remainder = reported - known - self.generation_prompt()
        if (not new and not new_tools) or remainder <= 0:
            self._observations += 1
            return
        tools_raw = _raw_tools(tools) if new_tools else 0.0
        text = sum(_text_raw(m) for m in new.values()) + tools_raw
        images = sum(_image_count(m) for m in new.values())
        if truncated:
            # The backend cut the prompt: its count is a floor, never an exact cost.
            if not images:
                self.scale = max(self.scale, remainder / text)
            self._observations += 1
            return
        if images:
            per_image = (remainder - self.scale * text) / images
            if per_image > 0:
                self.image_tokens = per_image
        else:
            # The highest of the last few calls' ratios: text of different kinds (prose,
            # Markdown pages, numbers) tokenizes differently, and the next unknown message
            # may be of the densest kind seen lately.
            self._ratios.append(remainder / text)
            self.scale = max(self._ratios)
        if len(new) + new_tools == 1 or not self._observations:
            # One new item: its cost is exact. On the first call (system prompt, tools, first
            # message) the split by estimates is remembered too: those stay together. Costs
            # split among several new items are not: memory pages come and go apart from the
            # message they arrived with, so a split's error would stop cancelling out and
            # compound (a page once learned at 10 tokens that takes 105).
            shares = {key: self._estimate_new(m) for key, m in new.items()}
            if new_tools:
                shares[_tools_key(tools)] = self.scale * tools_raw
            total = sum(shares.values())
            for key, share in shares.items():
                self._remember_cost(key, max(1, round(remainder * share / total)))
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
    images = message.get("images") or ()
    return hash(
        (
            message.get("role"),
            str(message.get("content") or ""),
            json.dumps(calls, sort_keys=True, default=str) if calls else "",
            tuple(
                hash(image if isinstance(image, str | bytes) else str(image)) for image in images
            ),
        )
    )


def _tools_key(tools: Sequence[Tool] | None) -> int:
    return hash(("tools", json.dumps(list(tools or ()), sort_keys=True, default=str)))


class Calibration:
    """One estimator per model, shared by every process using that model."""

    def __init__(self) -> None:
        self._by_model: dict[str, CalibratedEstimator] = {}

    def for_model(self, model: str) -> CalibratedEstimator:
        if model not in self._by_model:
            self._by_model[model] = CalibratedEstimator()
        return self._by_model[model]
