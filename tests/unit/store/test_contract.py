"""The CallStore contract: every test runs against MemoryCallStore and DynamoDBCallStore.

DynamoDBCallStore runs twice (``conftest.store``): on boto3's client with moto's in-process mock,
and on the deployed functions' botocore client (``callkit.aws_clients``) over HTTP to a moto server.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pytest

from callkit.errors import CallNotFoundError, TransitionError
from callkit.lifecycle import TERMINAL, CallStatus
from callkit.store import (
    DEFAULT_RETENTION_SECONDS,
    CallRecord,
    CallStore,
    CreateResult,
    TransitionResult,
)

if TYPE_CHECKING:
    from collections.abc import Callable

T0 = 1_700_000_000.0
TERMINALS = sorted(TERMINAL)


def make_record(call_id: str = "CA0001", **changes: Any) -> CallRecord:
    record = CallRecord(
        call_id=call_id,
        carrier="twilio",
        pipeline="managed",
        status=CallStatus.RINGING,
        from_number="+15550100001",
        to_number="+15550100002",
        account_id="AC0001",
        answer='<?xml version="1.0" encoding="UTF-8"?><Response><Say>hi</Say></Response>',
        created_at=T0,
        updated_at=T0,
        expires_at=int(T0) + DEFAULT_RETENTION_SECONDS,
    )
    return replace(record, **changes)


# --- create and read ----------------------------------------------------------------------------


def test_create_then_get_returns_the_record(store: CallStore) -> None:
    record = make_record()
    result = store.create_call(record)
    assert result.created is True
    assert result.record == record
    assert store.get_call("CA0001") == record


def test_duplicate_create_returns_the_existing_record(store: CallStore) -> None:
    first = make_record(answer="<Response>first</Response>")
    store.create_call(first)

    retry = store.create_call(make_record(answer="<Response>retry</Response>", created_at=T0 + 1))

    assert retry.created is False
    assert retry.record == first
    assert store.get_call("CA0001") == first


def test_get_missing_call_is_none(store: CallStore) -> None:
    assert store.get_call("CA-missing") is None


def test_optional_fields_round_trip(store: CallStore) -> None:
    record = make_record(
        pipeline="realtime",
        carrier="plivo",
        status=CallStatus.IN_PROGRESS,
        status_sequence=4,
        duration_seconds=0,
        ended_at=T0 + 0.125,
        version=7,
        answer="",
        created_at=T0 + 0.1,
    )
    store.create_call(record)
    assert store.get_call("CA0001") == record


def test_calls_are_independent(store: CallStore) -> None:
    store.create_call(make_record("CA0001"))
    store.create_call(make_record("CA0002"))
    store.transition("CA0001", CallStatus.COMPLETED, now=T0 + 5)

    other = store.get_call("CA0002")
    assert other is not None
    assert other.status is CallStatus.RINGING


# --- TTL ----------------------------------------------------------------------------------------


def test_expired_item_is_invisible(store: CallStore, advance: Callable[[float], None]) -> None:
    store.create_call(make_record(expires_at=int(T0) + 60))

    advance(59.5)
    assert store.get_call("CA0001") is not None
    advance(0.5)  # expires_at <= now: gone, whether or not the TTL sweep has run
    assert store.get_call("CA0001") is None
    with pytest.raises(CallNotFoundError):
        store.transition("CA0001", CallStatus.COMPLETED, now=T0 + 60)
    with pytest.raises(CallNotFoundError):
        store.transition("CA0001", CallStatus.RINGING, now=T0 + 60)


def test_create_replaces_an_expired_item(store: CallStore, advance: Callable[[float], None]) -> None:
    store.create_call(make_record(expires_at=int(T0) + 60, answer="<Response>old</Response>"))
    advance(120)

    fresh = make_record(created_at=T0 + 120, updated_at=T0 + 120, answer="<Response>new</Response>")
    result = store.create_call(fresh)

    assert result.created is True
    assert store.get_call("CA0001") == fresh


# --- transitions --------------------------------------------------------------------------------


def test_transitions_follow_the_lifecycle(store: CallStore) -> None:
    record = make_record()
    store.create_call(record)

    answered = store.transition("CA0001", CallStatus.IN_PROGRESS, now=T0 + 2)
    assert answered.applied is True
    assert answered.record == replace(record, status=CallStatus.IN_PROGRESS, updated_at=T0 + 2, version=2)

    ended = store.transition("CA0001", CallStatus.COMPLETED, now=T0 + 30)
    assert ended.applied is True
    assert ended.record.status is CallStatus.COMPLETED
    assert ended.record.version == 3
    assert ended.record.updated_at == T0 + 30
    assert store.get_call("CA0001") == ended.record


@pytest.mark.parametrize("terminal", TERMINALS)
def test_ringing_may_end_directly(store: CallStore, terminal: CallStatus) -> None:
    store.create_call(make_record())
    result = store.transition("CA0001", terminal, now=T0 + 1)
    assert result.applied is True
    assert result.record.status is terminal


@pytest.mark.parametrize("status", [CallStatus.RINGING, CallStatus.IN_PROGRESS])
def test_reentering_the_current_status_is_a_no_op(store: CallStore, status: CallStatus) -> None:
    store.create_call(make_record(status=status, status_sequence=1))

    again = store.transition("CA0001", status, now=T0 + 1)
    # Even a newer sequence changes nothing: it orders changes, and this is not one.
    newer = store.transition("CA0001", status, now=T0 + 2, sequence=5)

    stored = store.get_call("CA0001")
    assert again.applied is False
    assert newer.applied is False
    assert stored == make_record(status=status, status_sequence=1)
    assert newer.record == stored


def test_ringing_cannot_be_reentered_from_in_progress(store: CallStore) -> None:
    store.create_call(make_record())
    store.transition("CA0001", CallStatus.IN_PROGRESS, now=T0 + 1, sequence=2)

    late = store.transition("CA0001", CallStatus.RINGING, now=T0 + 2, sequence=3)

    assert late.applied is False
    assert late.record.status is CallStatus.IN_PROGRESS
    assert late.record.status_sequence == 2
    assert late.record.version == 2


@pytest.mark.parametrize("terminal", TERMINALS)
def test_terminal_status_is_final(store: CallStore, terminal: CallStatus) -> None:
    store.create_call(make_record())
    ended = store.transition("CA0001", terminal, now=T0 + 10, duration_seconds=10, ended_at=T0 + 10)
    assert ended.applied is True

    late = store.transition("CA0001", CallStatus.IN_PROGRESS, now=T0 + 11)
    assert late.applied is False
    assert late.record == ended.record
    for second in TERMINALS:
        result = store.transition("CA0001", second, now=T0 + 12, duration_seconds=99, ended_at=T0 + 12)
        assert result.applied is False
        assert result.record == ended.record
    assert store.get_call("CA0001") == ended.record


def test_terminal_records_duration_and_end_time(store: CallStore) -> None:
    store.create_call(make_record())
    store.transition("CA0001", CallStatus.IN_PROGRESS, now=T0 + 1)

    result = store.transition(
        "CA0001", CallStatus.COMPLETED, now=T0 + 45.5, duration_seconds=44, ended_at=T0 + 45.25
    )

    assert result.record.duration_seconds == 44
    assert result.record.ended_at == T0 + 45.25
    assert store.get_call("CA0001") == result.record


def test_an_ended_call_gets_the_details_it_lacks_once(store: CallStore) -> None:
    """The relay's $disconnect ends the call; the carrier's completed callback brings the duration."""
    store.create_call(make_record())
    store.transition("CA0001", CallStatus.IN_PROGRESS, now=T0 + 1)
    store.transition("CA0001", CallStatus.COMPLETED, now=T0 + 40)

    filled = store.transition(
        "CA0001", CallStatus.COMPLETED, now=T0 + 41, duration_seconds=37, ended_at=T0 + 39, sequence=3
    )
    again = store.transition(
        "CA0001", CallStatus.COMPLETED, now=T0 + 42, duration_seconds=99, ended_at=T0 + 99
    )
    other = store.transition("CA0001", CallStatus.FAILED, now=T0 + 43, duration_seconds=5)

    assert filled.applied is True
    assert (filled.record.duration_seconds, filled.record.ended_at) == (37, T0 + 39)
    assert filled.record.status == CallStatus.COMPLETED
    assert again.applied is False and other.applied is False
    stored = store.get_call("CA0001")
    assert stored is not None and (stored.status, stored.duration_seconds, stored.ended_at) == (
        CallStatus.COMPLETED,
        37,
        T0 + 39,
    )


def test_fields_not_given_are_kept(store: CallStore) -> None:
    store.create_call(make_record(status_sequence=1))
    result = store.transition("CA0001", CallStatus.IN_PROGRESS, now=T0 + 1)
    assert result.applied is True
    assert result.record.status_sequence == 1
    assert result.record.duration_seconds is None
    assert result.record.ended_at is None


def test_out_of_order_sequence_is_ignored(store: CallStore) -> None:
    store.create_call(make_record())

    newer = store.transition("CA0001", CallStatus.IN_PROGRESS, now=T0 + 2, sequence=3)
    # The lifecycle would allow this one; only its older sequence number stops it.
    older = store.transition("CA0001", CallStatus.COMPLETED, now=T0 + 3, sequence=2)

    assert newer.applied is True
    assert newer.record.status_sequence == 3
    assert older.applied is False
    assert older.record == newer.record
    assert store.get_call("CA0001") == newer.record


def test_equal_sequence_is_ignored(store: CallStore) -> None:
    store.create_call(make_record(status_sequence=3))
    result = store.transition("CA0001", CallStatus.COMPLETED, now=T0 + 1, sequence=3)
    assert result.applied is False


def test_sequence_applies_when_none_was_stored(store: CallStore) -> None:
    store.create_call(make_record())
    result = store.transition("CA0001", CallStatus.COMPLETED, now=T0 + 1, sequence=0)
    assert result.applied is True
    assert result.record.status_sequence == 0


def test_no_sequence_skips_the_ordering_check(store: CallStore) -> None:
    store.create_call(make_record(status_sequence=9))
    result = store.transition("CA0001", CallStatus.IN_PROGRESS, now=T0 + 1)
    assert result.applied is True
    assert result.record.status_sequence == 9


@pytest.mark.parametrize("status", list(CallStatus))
def test_transition_on_missing_call_raises(store: CallStore, status: CallStatus) -> None:
    with pytest.raises(CallNotFoundError):
        store.transition("CA-missing", status, now=T0)
    assert store.get_call("CA-missing") is None  # and creates nothing


def test_version_counts_applied_transitions_only(store: CallStore) -> None:
    store.create_call(make_record())
    versions = [
        store.transition("CA0001", CallStatus.IN_PROGRESS, now=T0 + 1).record.version,
        store.transition("CA0001", CallStatus.IN_PROGRESS, now=T0 + 2).record.version,
        store.transition("CA0001", CallStatus.COMPLETED, now=T0 + 3).record.version,
        store.transition("CA0001", CallStatus.FAILED, now=T0 + 4).record.version,
    ]
    assert versions == [2, 2, 3, 3]


# --- stream admission (claim_stream) -------------------------------------------------------------


@pytest.mark.parametrize("pipeline", ["cascading", "realtime"])
def test_a_stream_may_claim_a_call_the_carrier_already_reported_in_progress(
    store: CallStore, pipeline: str
) -> None:
    """Carriers do not order status callbacks against the WebSocket: ``in-progress`` (Plivo
    ``answered``) can be stored before the stream's ``start`` frame arrives."""
    store.create_call(make_record(pipeline=pipeline))
    store.transition("CA0001", CallStatus.IN_PROGRESS, now=T0 + 1, sequence=1)
    claimed = store.claim_stream("CA0001", "MZ1", now=T0 + 2)
    assert (claimed.status, claimed.stream_id, claimed.updated_at) == (CallStatus.IN_PROGRESS, "MZ1", T0 + 2)
    assert claimed.status_sequence == 1  # the carrier's ordering is left as it was
    assert store.get_call("CA0001") == claimed
    with pytest.raises(TransitionError):  # still one stream per call
        store.claim_stream("CA0001", "MZ2", now=T0 + 3)
    assert store.get_call("CA0001") == claimed


def test_a_ringing_call_is_moved_to_in_progress_by_its_claim(store: CallStore) -> None:
    store.create_call(make_record(pipeline="realtime"))
    claimed = store.claim_stream("CA0001", "MZ1", now=T0 + 1)
    assert (claimed.status, claimed.stream_id, claimed.version) == (CallStatus.IN_PROGRESS, "MZ1", 2)


@pytest.mark.parametrize("terminal", TERMINALS)
@pytest.mark.parametrize("via", ["ringing", "in-progress"])
def test_an_ended_call_refuses_a_stream(store: CallStore, terminal: CallStatus, via: str) -> None:
    store.create_call(make_record(pipeline="cascading"))
    if via == "in-progress":
        store.transition("CA0001", CallStatus.IN_PROGRESS, now=T0 + 1)
    ended = store.transition("CA0001", terminal, now=T0 + 2).record
    with pytest.raises(TransitionError):
        store.claim_stream("CA0001", "MZ1", now=T0 + 3)
    assert store.get_call("CA0001") == ended


# --- races --------------------------------------------------------------------------------------

THREADS = 8
#: Each race is run this many times: one round catches a read-then-write store only sometimes.
ROUNDS = 10


def _race[T](action: Callable[[int], T]) -> list[T]:
    """Run ``action(i)`` on THREADS threads released together."""
    barrier = threading.Barrier(THREADS)

    def run(i: int) -> T:
        barrier.wait(timeout=10)
        return action(i)

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        return list(pool.map(run, range(THREADS)))


def test_concurrent_creates_create_once(store: CallStore) -> None:
    for round_ in range(ROUNDS):
        call_id = f"CA-race-{round_}"

        def create(i: int, call_id: str = call_id) -> CreateResult:
            return store.create_call(make_record(call_id, answer=f"<Response>{i}</Response>"))

        results = _race(create)

        winners = [r for r in results if r.created]
        assert len(winners) == 1
        assert all(r.record == winners[0].record for r in results)
        assert store.get_call(call_id) == winners[0].record


def test_concurrent_terminal_updates_apply_once(store: CallStore) -> None:
    statuses = [TERMINALS[i % len(TERMINALS)] for i in range(THREADS)]
    for round_ in range(ROUNDS):
        call_id = f"CA-race-{round_}"
        store.create_call(make_record(call_id))

        def end(i: int, call_id: str = call_id) -> TransitionResult:
            return store.transition(call_id, statuses[i], now=T0 + i, sequence=i + 1)

        results = _race(end)

        applied = [r for r in results if r.applied]
        assert len(applied) == 1  # a terminal status is final, whichever thread got there first
        assert store.get_call(call_id) == applied[0].record
        assert applied[0].record.version == 2
        assert all(r.record == applied[0].record for r in results)
