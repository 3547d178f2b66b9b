"""Context RAM: fitting requests into the budget, and calibrating the token estimate."""

from __future__ import annotations

import pytest

from llmos.kernel.context import PromptTooLarge, Segment, fit_request, split_turns
from llmos.kernel.tokens import UNCALIBRATED_MARGIN, CalibratedEstimator
from tests.fakes import count_prompt, default_answer

SYSTEM = [{"role": "system", "content": "You are a careful assistant."}]


def conversation(turns: int, words: int = 40) -> list[dict]:
    history: list[dict] = []
    for i in range(turns):
        question = f"Question {i}: " + " ".join(f"topic{i}word{j}" for j in range(words))
        history.append({"role": "user", "content": question})
        history.append({"role": "assistant", "content": default_answer(history, words)})
    return history


def test_everything_fits_when_the_budget_allows():
    history = conversation(3)
    history.append({"role": "user", "content": "and now?"})
    fitted = fit_request(
        budget=8192, reserve=512, counter=CalibratedEstimator(), system=SYSTEM, history=history
    )
    assert fitted.dropped_turns == 0
    assert fitted.messages == [*SYSTEM, *history]
    usage = fitted.usage
    assert usage.segments[Segment.RESERVE] == 512
    assert usage.used == usage.prompt + 512
    assert usage.free == 8192 - usage.used


def test_oldest_turns_are_left_out_but_never_system_or_newest_turn():
    history = conversation(30)
    newest = {"role": "user", "content": "What did we say last?"}
    history.append(newest)
    counter = CalibratedEstimator()
    fitted = fit_request(budget=2048, reserve=256, counter=counter, system=SYSTEM, history=history)
    assert fitted.dropped_turns > 0
    assert fitted.messages[0] == SYSTEM[0]
    assert fitted.messages[-1] == newest
    # What is kept is a contiguous run of the newest turns, each whole.
    kept = fitted.messages[1:]
    assert kept == history[len(history) - len(kept) :]
    assert kept[0]["role"] == "user"
    assert fitted.dropped_messages == len(history) - len(kept)
    # The margin-widened count stays within the budget.
    assert fitted.usage.prompt * (1 + counter.margin) <= 2048 - 256


def test_a_turn_that_can_never_fit_is_refused_with_the_excess():
    huge = {"role": "user", "content": "word " * 5000}
    with pytest.raises(PromptTooLarge) as refused:
        fit_request(
            budget=1024, reserve=256, counter=CalibratedEstimator(), system=SYSTEM, history=[huge]
        )
    error = refused.value
    assert error.over_by > 0
    assert "too large" in str(error) and str(error.over_by) in str(error)
    # Exactly over_by tokens less would have fitted: shrink the limit test the other way.
    fitted = fit_request(
        budget=1024 + error.over_by,
        reserve=256,
        counter=CalibratedEstimator(),
        system=SYSTEM,
        history=[huge],
    )
    assert fitted.dropped_turns == 0


def test_tool_calls_stay_with_their_turn():
    history = [
        {"role": "user", "content": "what time is it"},
        {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "clock"}}]},
        {"role": "tool", "content": "12:00", "tool_name": "clock"},
        {"role": "assistant", "content": "Noon."},
        {"role": "user", "content": "thanks"},
    ]
    turns = split_turns(history)
    assert [len(t) for t in turns] == [4, 1]


def test_estimate_calibrates_to_within_two_percent_of_the_backend():
    counter = CalibratedEstimator()
    history = conversation(6)
    # Before calibration the byte prior is off by much more than 2%.
    sent = [*SYSTEM, *history[:4], {"role": "user", "content": "next question please"}]
    first_estimate = sum(counter.message(m) for m in sent) + counter.generation_prompt()
    truth = count_prompt(sent)
    assert abs(first_estimate - truth) / truth > 0.05
    counter.observe(sent, None, truth)

    # The conversation goes on; each next prompt is estimated within 2%.
    for upto in range(6, len(history) + 1, 2):
        sent = [*SYSTEM, *history[:upto], {"role": "user", "content": f"follow-up {upto}"}]
        estimate = sum(counter.message(m) for m in sent) + counter.generation_prompt()
        truth = count_prompt(sent)
        assert abs(estimate - truth) / truth <= 0.02, (estimate, truth)
        counter.observe(sent, None, truth)


def test_margin_starts_wide_and_narrows_with_good_estimates():
    counter = CalibratedEstimator()
    assert counter.margin == UNCALIBRATED_MARGIN
    history = conversation(8)
    for upto in range(2, len(history) + 1, 2):
        sent = [*SYSTEM, *history[:upto]]
        counter.observe(sent, None, count_prompt(sent))
    assert counter.calibrated
    assert counter.margin < 0.05
