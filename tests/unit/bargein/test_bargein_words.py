"""Backchannel words and the interruptible × sensitivity table."""

from __future__ import annotations

import itertools
from typing import get_args

import pytest

from callkit.bargein import BACKCHANNELS, THRESHOLDS, BargeInPolicy, content_words, is_backchannel
from callkit.interface import Interruptible, Sensitivity

INTERRUPTIBLE: tuple[Interruptible, ...] = get_args(Interruptible)
SENSITIVITY: tuple[Sensitivity, ...] = get_args(Sensitivity)


@pytest.mark.parametrize(
    "text",
    [
        "mhm",
        "Mhm.",
        "Mm-hmm.",
        "mm hmm",
        "MHMM",
        "uh-huh",
        "Uh huh!",
        "okay",
        "OK,",
        "Yeah.",
        "yes",
        "right",
        "Sure!",
        "got it",
        "Got it.",
        "Okay, got it.",
        "yeah yeah",
        "Right, right, sure.",
    ],
)
def test_backchannels(text: str) -> None:
    assert is_backchannel(text)
    assert content_words(text) == []


@pytest.mark.parametrize(
    ("text", "content"),
    [
        ("wait", ["wait"]),
        ("okay so", ["so"]),
        ("Yeah, but no.", ["but", "no"]),
        ("hold on", ["hold", "on"]),
        ("got", ["got"]),
        ("it", ["it"]),
        ("I got it", ["i"]),
        ("don't", ["don't"]),
        ("That\u2019s right", ["that's"]),
        ("no", ["no"]),
    ],
)
def test_words_that_are_not_backchannels(text: str, content: list[str]) -> None:
    assert not is_backchannel(text)
    assert content_words(text) == content


@pytest.mark.parametrize("text", ["", "   ", "...", "?!"])
def test_no_words_is_not_a_backchannel(text: str) -> None:
    assert not is_backchannel(text)
    assert content_words(text) == []


def test_vocabulary_can_be_extended() -> None:
    mine = BACKCHANNELS | {"yep", "i see"}
    assert is_backchannel("Yep, I see.", mine)
    assert not is_backchannel("Yep, I see.")


def test_the_brief_vocabulary_is_all_there() -> None:
    listed = {"mhm", "mm-hmm", "uh-huh", "okay", "ok", "yeah", "yes", "right", "sure", "got it"}
    assert listed <= BACKCHANNELS
    assert all(is_backchannel(word) for word in listed)


@pytest.mark.parametrize(
    ("interruptible", "sensitivity"),
    list(itertools.product(INTERRUPTIBLE, SENSITIVITY)),
)
def test_from_interface(interruptible: Interruptible, sensitivity: Sensitivity) -> None:
    policy = BargeInPolicy.from_interface(interruptible, sensitivity)
    assert policy.speech == (interruptible in ("speech", "any"))
    assert policy.dtmf == (interruptible in ("dtmf", "any"))
    assert (policy.min_speech_ms, policy.min_words) == THRESHOLDS[sensitivity]


def test_thresholds_order() -> None:
    """Higher sensitivity needs less speech and fewer words; high cuts on onset."""
    assert THRESHOLDS == {"high": (120.0, 0), "medium": (250.0, 1), "low": (400.0, 2)}
