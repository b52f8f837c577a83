"""The playback ledger: heard text is the reply up to the last played mark, never past a clear."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callkit.errors import TransitionError
from callkit.playback import PlaybackLedger

TEXT = "Hello there, how can I help you today?"


def _sent(ends: list[int], text: str = TEXT) -> PlaybackLedger:
    ledger = PlaybackLedger(1).append(text)
    for i, end in enumerate(ends):
        ledger = ledger.sent(f"m{i}", end, 40.0 * (i + 1), now=10.0)
    return ledger


def test_nothing_heard_before_the_first_mark() -> None:
    ledger = _sent([5, 12, 20])
    assert ledger.heard_text() == ""
    assert ledger.heard_ms() == 0.0
    assert ledger.unheard_text() == TEXT


def test_heard_text_is_up_to_the_last_played_mark() -> None:
    ledger = _sent([5, 12, 20]).played("m0").played("m1")
    assert ledger.heard_text() == TEXT[:12]
    assert ledger.heard_ms() == 80.0
    assert [p.mark for p in ledger.pending] == ["m2"]


def test_a_later_mark_means_the_earlier_pieces_played_too() -> None:
    ledger = _sent([5, 12, 20]).played("m1")
    assert ledger.heard_text() == TEXT[:12]
    assert [p.mark for p in ledger.pending] == ["m2"]


def test_unknown_and_repeated_marks_change_nothing() -> None:
    ledger = _sent([5, 12]).played("m0")
    assert ledger.played("m0") == ledger  # already reported
    assert ledger.played("t0-older-turn") == ledger


def test_marks_echoed_after_a_clear_do_not_count() -> None:
    """Twilio echoes pending marks when ``clear`` discards them (docs/protocols/twilio.md §4)."""
    ledger = _sent([5, 12, 20]).played("m0").clear()
    for mark in ("m1", "m2"):
        ledger = ledger.played(mark)
    assert ledger.heard_text() == TEXT[:5]
    assert ledger.heard_ms() == 40.0


def test_drained_needs_finish_and_every_mark() -> None:
    ledger = _sent([5, len(TEXT)])
    assert not ledger.played("m1").drained  # not finished: more may come
    finished = ledger.finish()
    assert finished.text_complete
    assert not finished.drained
    assert finished.played("m1").drained


def test_overdue_when_marks_do_not_come_back() -> None:
    ledger = PlaybackLedger(1).append(TEXT)
    ledger = ledger.sent("a", 10, 500.0, now=10.0).sent("b", 20, 1000.0, now=10.2).finish()
    assert ledger.expected_end == pytest.approx(11.0)
    assert ledger.overdue_at(grace_s=1.5) == pytest.approx(12.5)
    assert ledger.played("b").overdue_at(grace_s=1.5) is None  # all played
    assert (
        PlaybackLedger(1).append(TEXT).sent("a", 10, 500.0, now=10.0).overdue_at(1.5) is None
    )  # not finished


def test_a_piece_sent_late_plays_no_earlier_than_it_was_sent() -> None:
    ledger = PlaybackLedger(1).append(TEXT).sent("a", 5, 100.0, now=0.0).sent("b", 10, 200.0, now=5.0)
    assert ledger.expected_end == pytest.approx(5.1)


@pytest.mark.parametrize(
    ("ends", "bad"),
    [
        ([5], (len(TEXT) + 1, 80.0)),  # text not known yet
        ([12], (5, 80.0)),  # text goes backwards
        ([5], (10, 10.0)),  # audio goes backwards
    ],
)
def test_impossible_pieces_raise(ends: list[int], bad: tuple[int, float]) -> None:
    with pytest.raises(TransitionError):
        _sent(ends).sent("x", bad[0], bad[1], now=11.0)


def test_a_pending_mark_name_cannot_be_reused() -> None:
    with pytest.raises(TransitionError):
        _sent([5]).sent("m0", 10, 80.0, now=11.0)


def test_no_piece_or_text_after_finish() -> None:
    ledger = _sent([5]).finish()
    with pytest.raises(TransitionError):
        ledger.sent("late", 10, 80.0, now=11.0)
    with pytest.raises(TransitionError):
        ledger.append("more")
    with pytest.raises(TransitionError):
        ledger.finish()


@given(
    cuts=st.lists(st.integers(0, len(TEXT)), min_size=1, max_size=12).map(sorted),
    played=st.integers(0, 12),
    echoed=st.integers(0, 12),
)
def test_heard_is_always_the_prefix_up_to_the_last_played_mark(
    cuts: list[int], played: int, echoed: int
) -> None:
    ledger = _sent(cuts)
    played = min(played, len(cuts))
    for i in range(played):
        ledger = ledger.played(f"m{i}")
    ledger = ledger.clear()
    for i in range(played, min(played + echoed, len(cuts))):
        ledger = ledger.played(f"m{i}")
    expected = cuts[played - 1] if played else 0
    assert ledger.heard_text() == TEXT[:expected]
    assert ledger.heard_text() + ledger.unheard_text() == TEXT
    assert ledger.heard_ms() == 40.0 * played
