"""Exact token counts from a GGUF model's own vocabulary and chat template.

Loads only the vocabulary (``vocab_only``: milliseconds, a few MB) and renders prompts with
the chat template stored in the file, so a prompt is counted exactly as the engine that
renders it the same way will see it. Used by the embedded engine for every count, and for an
Ollama model whose GGUF blob is readable on this machine (as long as Ollama's own counts
keep agreeing).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llmos.drivers.base import Message, Tool

_ANCHOR: Message = {"role": "system", "content": "x"}
"""A neutral first message, so a message's cost is measured the way it sits in a prompt."""
_KEEP = ("role", "content", "tool_calls", "tool_name", "name")


def load_vocab(path: Path) -> Any:
    """A vocabulary-only llama.cpp model (no weights). Raises ImportError without llama_cpp."""
    from llama_cpp import Llama
    from llama_cpp._utils import suppress_stdout_stderr

    # llama.cpp prints context warnings for a vocab-only load even with verbose=False.
    with suppress_stdout_stderr(disable=False):
        return Llama(str(path), vocab_only=True, verbose=False)


def chat_formatter(llm: Any, *, add_generation_prompt: bool) -> Any:
    """The model's own chat template as a llama-cpp formatter, or None when it has none."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = llm.metadata.get("tokenizer.chat_template")
    if not template:
        return None
    model = llm._model
    eos = llm.token_eos()
    bos = llm.token_bos()
    return Jinja2ChatFormatter(
        template=template,
        eos_token=model.token_get_text(eos) if eos != -1 else "",
        bos_token=model.token_get_text(bos) if bos != -1 else "",
        add_generation_prompt=add_generation_prompt,
    )


def template_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Messages as chat templates expect them (content always a string)."""
    out = []
    for message in messages:
        item = {key: message[key] for key in _KEEP if key in message}
        item["content"] = str(message.get("content") or "")
        out.append(item)
    return out


class TemplateCounter:
    """A ``TokenCounter`` that counts with the model's tokenizer and chat template.

    Per-message costs are measured after a neutral system message, which is exact for
    templates that render each message on its own (ChatML, Llama 3, Gemma); the whole
    prompt is always counted exactly by :meth:`prompt`, and the kernel fits requests by that.

    Args:
        vocab: a llama.cpp model loaded with ``vocab_only=True``.
    """

    def __init__(self, vocab: Any) -> None:
        self._vocab = vocab
        self._closed = chat_formatter(vocab, add_generation_prompt=False)
        self._open = chat_formatter(vocab, add_generation_prompt=True)
        self._lock = threading.Lock()  # the tokenizer is shared with worker threads
        self._costs: OrderedDict[str, int] = OrderedDict()
        anchor = self._render([_ANCHOR], None, open_=False)
        self._anchor = self.count_text(anchor)
        self._generation = self.count_text(self._render([_ANCHOR], None, open_=True)) - (
            self._anchor
        )
        self.disagreements = 0
        """Backend counts that differed from ours (an Ollama template rendering otherwise)."""

    @property
    def exact(self) -> bool:
        return True

    @property
    def calibrated(self) -> bool:
        return True

    @property
    def margin(self) -> float:
        return 0.0

    @property
    def trusted(self) -> bool:
        return self.disagreements == 0

    def count_text(self, text: str) -> int:
        with self._lock:
            return len(self._vocab.tokenize(text.encode(), add_bos=False, special=True))

    def tokenize_prompt(self, text: str) -> list[int]:
        with self._lock:
            return list(self._vocab.tokenize(text.encode(), add_bos=False, special=True))

    def render(self, messages: Sequence[Message], tools: Sequence[Tool] | None = None) -> str:
        """The prompt text for ``messages``; a trailing assistant message is left open so the
        model continues it (a prefill)."""
        if messages and messages[-1].get("role") == "assistant":
            head = self._render(messages[:-1], tools, open_=True)
            return head + str(messages[-1].get("content") or "")
        return self._render(messages, tools, open_=True)

    def _render(
        self, messages: Sequence[Message], tools: Sequence[Tool] | None, open_: bool
    ) -> str:
        formatter = self._open if open_ else self._closed
        rendered = template_messages(messages)
        if formatter is None:
            # No template in the file: a plain transcript, which a base model can continue.
            text = "".join(f"{m['role']}: {m['content']}\n" for m in rendered)
            return text + ("assistant: " if open_ else "")
        return str(formatter(messages=rendered, tools=list(tools) if tools else None).prompt)

    # -- TokenCounter ----------------------------------------------------------------------

    def message(self, message: Message) -> int:
        key = json.dumps(template_messages([message]), sort_keys=True, ensure_ascii=False)
        cost = self._costs.get(key)
        if cost is None:
            try:
                rendered = self._render([_ANCHOR, message], None, open_=False)
                cost = self.count_text(rendered) - self._anchor
            except Exception:  # a template that refuses this order (strict alternation)
                cost = self.count_text(str(message.get("content") or "")) + 4
            self._costs[key] = cost
            while len(self._costs) > 20_000:
                self._costs.popitem(last=False)
        return cost

    def tools(self, tools: Sequence[Tool] | None) -> int:
        if not tools:
            return 0
        with_tools = self.count_text(self._render([_ANCHOR], tools, open_=False))
        return max(0, with_tools - self._anchor)

    def generation_prompt(self) -> int:
        return self._generation

    def prompt(self, messages: Sequence[Message], tools: Sequence[Tool] | None) -> int | None:
        """The exact token count of the whole prompt as rendered; None when the template
        cannot render these messages (an empty conversation, a refused order)."""
        if not messages:
            return None
        try:
            return self.count_text(self.render(messages, tools))
        except Exception:  # the template's raise_exception or a Jinja error
            return None

    def observe(
        self,
        messages: Sequence[Message],
        tools: Sequence[Tool] | None,
        reported: int,
        *,
        truncated: bool = False,
    ) -> None:
        counted = self.prompt(messages, tools)
        if not truncated and counted is not None and reported != counted:
            self.disagreements += 1

    def learn_answer(self, message: Message, completion_tokens: int) -> None:
        return None
