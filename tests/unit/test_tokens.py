from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callkit.errors import (
    ConfigurationError,
    ExpiredTokenError,
    ForgedTokenError,
    MalformedTokenError,
    TokenError,
    WrongCallTokenError,
)
from callkit.tokens import StreamTokens

KEY = "k" * 32


class Clock:
    def __init__(self, now: float = 1_767_261_600.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_round_trip_and_grant() -> None:
    clock = Clock()
    tokens = StreamTokens(KEY, ttl_seconds=60, clock=clock)
    token = tokens.mint("CA" + "a" * 32, "cascading")
    assert re.fullmatch(r"[0-9a-f]+", token), "tokens must fit Plivo extraHeaders ([A-Za-z0-9])"
    grant = tokens.verify(token, call_id="CA" + "a" * 32, pipeline="cascading")
    assert (grant.call_id, grant.pipeline, grant.expires_at) == (
        "CA" + "a" * 32,
        "cascading",
        int(clock.now) + 60,
    )


def test_expired() -> None:
    clock = Clock()
    tokens = StreamTokens(KEY, ttl_seconds=60, clock=clock)
    token = tokens.mint("c1", "realtime")
    clock.now += 60
    with pytest.raises(ExpiredTokenError):
        tokens.verify(token, call_id="c1", pipeline="realtime")


def test_wrong_call_or_pipeline() -> None:
    tokens = StreamTokens(KEY)
    token = tokens.mint("c1", "realtime")
    with pytest.raises(WrongCallTokenError):
        tokens.verify(token, call_id="c2", pipeline="realtime")
    with pytest.raises(WrongCallTokenError):
        tokens.verify(token, call_id="c1", pipeline="cascading")


def test_forged_with_another_key_or_edited() -> None:
    token = StreamTokens("x" * 32).mint("c1", "realtime")
    with pytest.raises(ForgedTokenError):
        StreamTokens(KEY).verify(token, call_id="c1", pipeline="realtime")
    genuine = StreamTokens(KEY).mint("c1", "realtime")
    edited = genuine[:-1] + ("0" if genuine[-1] != "0" else "1")
    with pytest.raises(ForgedTokenError):
        StreamTokens(KEY).verify(edited, call_id="c1", pipeline="realtime")


@pytest.mark.parametrize("token", ["", "abc", "zz" * 60, "a" * 2000, "0" * 65])
def test_malformed(token: str) -> None:
    with pytest.raises(MalformedTokenError):
        StreamTokens(KEY).verify(token, call_id="c1", pipeline="realtime")


def test_short_keys_refused() -> None:
    with pytest.raises(ConfigurationError, match="at least 32 bytes"):
        StreamTokens("short")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_arbitrary_input_only_raises_token_errors(text: str) -> None:
    with pytest.raises(TokenError):
        StreamTokens(KEY).verify(text, call_id="c1", pipeline="realtime")


@settings(max_examples=100, deadline=None)
@given(
    call_id=st.text(
        st.characters(blacklist_characters="|", blacklist_categories=["Cs"]), min_size=1, max_size=60
    )
)
def test_any_call_id_round_trips(call_id: str) -> None:
    tokens = StreamTokens(KEY)
    assert (
        tokens.verify(tokens.mint(call_id, "managed"), call_id=call_id, pipeline="managed").call_id == call_id
    )


@pytest.mark.parametrize("call_id", ["", "CA|x", "CA" + "c" * 31 + "|", "\ud800", "c" * 1_000])
def test_mint_refuses_what_a_token_cannot_carry_with_a_callkit_error(call_id: str) -> None:
    """A TokenError the switchboard answers, never a ValueError that becomes a 500."""
    with pytest.raises(MalformedTokenError):
        StreamTokens(KEY).mint(call_id, "cascading")
    with pytest.raises(MalformedTokenError):
        StreamTokens(KEY).mint("CA" + "a" * 32, "cascading|x" if call_id else "")
