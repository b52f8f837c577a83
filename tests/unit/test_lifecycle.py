"""The call lifecycle, checked over every pair of statuses against an independent statement of it."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callkit.errors import CallkitError, StoreError, TransitionError
from callkit.lifecycle import TERMINAL, CallStatus, allowed_sources, step

STATUSES = list(CallStatus)
PAIRS = list(itertools.product(STATUSES, STATUSES))


def _rank(status: CallStatus) -> int:
    """ringing < in-progress < every terminal status."""
    return 2 if status.terminal else {CallStatus.RINGING: 0, CallStatus.IN_PROGRESS: 1}[status]


def _may_move(current: CallStatus, target: CallStatus) -> bool:
    """The rule in words: never out of a terminal status, never backwards, never sideways."""
    return not current.terminal and _rank(target) > _rank(current)


def test_terminal_statuses() -> None:
    assert {s for s in STATUSES if s.terminal} == TERMINAL
    assert {"completed", "busy", "failed", "no-answer", "canceled"} == TERMINAL


def test_wire_values_match_twilio_call_status() -> None:
    assert [s.value for s in STATUSES] == [
        "ringing",
        "in-progress",
        "completed",
        "busy",
        "failed",
        "no-answer",
        "canceled",
    ]


@pytest.mark.parametrize(("current", "target"), PAIRS, ids=[f"{c.value}->{t.value}" for c, t in PAIRS])
def test_step_every_pair(current: CallStatus, target: CallStatus) -> None:
    if target == current:
        assert step(current, target) is current
    elif _may_move(current, target):
        assert step(current, target) is target
    else:
        with pytest.raises(TransitionError):
            step(current, target)


@pytest.mark.parametrize("target", STATUSES, ids=[s.value for s in STATUSES])
def test_allowed_sources_every_target(target: CallStatus) -> None:
    assert allowed_sources(target) == {s for s in STATUSES if _may_move(s, target)}
    assert target not in allowed_sources(target)


@pytest.mark.parametrize(("current", "target"), PAIRS, ids=[f"{c.value}->{t.value}" for c, t in PAIRS])
def test_step_and_allowed_sources_agree(current: CallStatus, target: CallStatus) -> None:
    """The store's conditional write (``allowed_sources``) and ``step`` are one rule."""
    try:
        after = step(current, target)
    except TransitionError:
        assert current not in allowed_sources(target)
    else:
        assert after == target
        assert (current in allowed_sources(target)) == (after != current)


def test_ringing_has_no_sources_and_terminals_share_theirs() -> None:
    assert allowed_sources(CallStatus.RINGING) == frozenset()
    assert allowed_sources(CallStatus.IN_PROGRESS) == {CallStatus.RINGING}
    for terminal in TERMINAL:
        assert allowed_sources(terminal) == {CallStatus.RINGING, CallStatus.IN_PROGRESS}


def test_transition_error_is_a_callkit_error_not_a_store_failure() -> None:
    with pytest.raises(CallkitError) as raised:
        step(CallStatus.COMPLETED, CallStatus.RINGING)
    assert isinstance(raised.value, TransitionError) and not isinstance(raised.value, StoreError)


def _apply_all(start: CallStatus, events: list[CallStatus]) -> list[CallStatus]:
    """Feed callbacks in any order, skipping the ones the lifecycle refuses, as the store does."""
    seen = [start]
    for event in events:
        try:
            seen.append(step(seen[-1], event))
        except TransitionError:
            seen.append(seen[-1])
    return seen


@given(st.sampled_from(STATUSES), st.lists(st.sampled_from(STATUSES), max_size=20))
def test_any_callback_order_only_moves_forward(start: CallStatus, events: list[CallStatus]) -> None:
    seen = _apply_all(start, events)
    assert all(_rank(a) <= _rank(b) for a, b in itertools.pairwise(seen))
    first_terminal = next((s for s in seen if s.terminal), None)
    if first_terminal is not None:
        # The first terminal status reached is the one the call keeps.
        assert seen[-1] == first_terminal
    # Delivering every callback twice (carrier retries) ends in the same status.
    doubled = [event for event in events for _ in range(2)]
    assert _apply_all(start, doubled)[-1] == seen[-1]
