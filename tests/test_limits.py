"""The page's per-user limits on questions (rag/ui/limits.py), on a clock the test moves."""

from __future__ import annotations

import pytest

from rag.errors import BadInput
from rag.ui.limits import QuestionLimits


@pytest.fixture
def clock():
    return [1000.0]


def test_one_place_in_line_per_user(clock):
    limits = QuestionLimits(per_minute=0, clock=lambda: clock[0])
    limits.admit("alice")
    with pytest.raises(BadInput, match="previous question is still being answered"):
        limits.admit("alice")
    limits.admit("bob")  # others are not held up by alice
    limits.release("alice")
    limits.admit("alice")


def test_a_place_never_given_back_lapses(clock):
    limits = QuestionLimits(per_minute=0, stale_s=900, clock=lambda: clock[0])
    limits.admit("alice")  # the tab was closed before its answer
    clock[0] += 899
    with pytest.raises(BadInput):
        limits.admit("alice")
    clock[0] += 2
    limits.admit("alice")


def test_questions_per_minute(clock):
    limits = QuestionLimits(per_minute=3, clock=lambda: clock[0])
    for _ in range(3):
        limits.admit("alice")
        limits.release("alice")
        clock[0] += 10
    with pytest.raises(BadInput) as err:
        limits.admit("alice")
    assert "3 questions in the last minute" in err.value.one_line()
    assert "ask again in 30 s" in err.value.one_line()
    limits.admit("bob")
    clock[0] += 31  # the first of alice's three is now more than a minute old
    limits.admit("alice")


def test_no_limit_when_per_minute_is_zero(clock):
    limits = QuestionLimits(per_minute=0, clock=lambda: clock[0])
    for _ in range(500):
        limits.admit("alice")
        limits.release("alice")
