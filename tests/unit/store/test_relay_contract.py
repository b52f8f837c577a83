"""The CallStore contract for managed (ConversationRelay) calls: connections, the turn fence, turns.

Every test runs against MemoryCallStore and DynamoDBCallStore twice over (``conftest.store``): each
relay message is its own Lambda invocation, so the races here are the ones production has.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pytest

from callkit.errors import CallNotFoundError, StoreError, TransitionError
from callkit.lifecycle import TERMINAL, CallStatus
from callkit.store import DEFAULT_RETENTION_SECONDS, CallRecord, CallStore, TurnRecord

if TYPE_CHECKING:
    from collections.abc import Callable

T0 = 1_700_000_000.0
EXPIRES = int(T0) + DEFAULT_RETENTION_SECONDS
TERMINALS = sorted(TERMINAL)
THREADS = 8
#: Each race is run this many times: one round catches a read-then-write store only sometimes.
ROUNDS = 5


def make_record(call_id: str = "CA0001", **changes: Any) -> CallRecord:
    record = CallRecord(
        call_id=call_id,
        carrier="twilio",
        pipeline="managed",
        status=CallStatus.RINGING,
        from_number="+15550100001",
        to_number="+15550100002",
        account_id="AC0001",
        answer="<Response><Connect><ConversationRelay/></Connect></Response>",
        created_at=T0,
        updated_at=T0,
        expires_at=EXPIRES,
    )
    return replace(record, **changes)


def make_turn(call_id: str = "CA0001", turn: int = 1, **changes: Any) -> TurnRecord:
    record = TurnRecord(
        call_id=call_id,
        turn=turn,
        kind="welcome" if turn == 0 else "prompt",
        caller_text="" if turn == 0 else f"question {turn}",
        assistant_text=f"answer {turn}",
        messages=json.dumps([{"role": "assistant", "content": f"answer {turn}"}]),
        tool_calls="[]",
        started_at=T0 + turn,
        expires_at=EXPIRES,
        first_token_ms=180.5,
        total_ms=950.25,
    )
    return replace(record, **changes)


def _race[T](action: Callable[[int], T]) -> list[T | Exception]:
    """Run ``action(i)`` on THREADS threads released together; errors are returned, not raised."""
    barrier = threading.Barrier(THREADS)

    def run(i: int) -> T | Exception:
        barrier.wait(timeout=10)
        try:
            return action(i)
        except (StoreError, TransitionError) as exc:
            return exc

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        return list(pool.map(run, range(THREADS)))


# --- attaching the relay connection --------------------------------------------------------------


def test_attach_binds_the_connection_and_answers_the_call(store: CallStore) -> None:
    store.create_call(make_record())

    attached = store.attach_connection("CA0001", "conn-1=", now=T0 + 2)

    assert attached == make_record(
        status=CallStatus.IN_PROGRESS, connection_id="conn-1=", updated_at=T0 + 2, version=2
    )
    assert store.get_call("CA0001") == attached
    assert store.call_for_connection("conn-1=") == attached


def test_attach_to_an_answered_call_keeps_it_in_progress(store: CallStore) -> None:
    store.create_call(make_record())
    store.transition("CA0001", CallStatus.IN_PROGRESS, now=T0 + 1)

    attached = store.attach_connection("CA0001", "conn-1=", now=T0 + 2)

    assert attached.status is CallStatus.IN_PROGRESS
    assert attached.version == 3
    assert store.get_call("CA0001") == attached


def test_attach_to_an_unknown_call_raises_not_found(store: CallStore) -> None:
    with pytest.raises(CallNotFoundError):
        store.attach_connection("CA-missing", "conn-1=", now=T0)
    assert store.call_for_connection("conn-1=") is None


@pytest.mark.parametrize("pipeline", ["cascading", "realtime"])
def test_attach_to_a_stream_call_is_refused(store: CallStore, pipeline: Any) -> None:
    record = make_record(pipeline=pipeline)
    store.create_call(record)

    with pytest.raises(TransitionError):
        store.attach_connection("CA0001", "conn-1=", now=T0 + 1)

    assert store.get_call("CA0001") == record
    assert store.call_for_connection("conn-1=") is None


@pytest.mark.parametrize("terminal", TERMINALS)
def test_attach_to_an_ended_call_is_refused(store: CallStore, terminal: CallStatus) -> None:
    store.create_call(make_record())
    ended = store.transition("CA0001", terminal, now=T0 + 1).record

    with pytest.raises(TransitionError):
        store.attach_connection("CA0001", "conn-1=", now=T0 + 2)

    assert store.get_call("CA0001") == ended
    assert store.call_for_connection("conn-1=") is None


@pytest.mark.parametrize("second", ["conn-2=", "conn-1="])
def test_second_attach_is_refused(store: CallStore, second: str) -> None:
    store.create_call(make_record())
    first = store.attach_connection("CA0001", "conn-1=", now=T0 + 1)

    with pytest.raises(TransitionError):
        store.attach_connection("CA0001", second, now=T0 + 2)

    assert store.get_call("CA0001") == first
    assert store.call_for_connection("conn-1=") == first
    assert store.call_for_connection("conn-2=") is None


def test_a_bound_connection_is_not_bound_to_a_second_call(store: CallStore) -> None:
    # The CONN write fails, so the META update in the same transaction must not happen either.
    store.create_call(make_record("CA0001"))
    store.create_call(make_record("CA0002"))
    first = store.attach_connection("CA0001", "conn-1=", now=T0 + 1)

    with pytest.raises(TransitionError):
        store.attach_connection("CA0002", "conn-1=", now=T0 + 2)

    assert store.get_call("CA0002") == make_record("CA0002")
    assert store.call_for_connection("conn-1=") == first


def test_call_for_an_unknown_connection_is_none(store: CallStore) -> None:
    store.create_call(make_record())
    assert store.call_for_connection("conn-unknown=") is None


def test_concurrent_attaches_bind_one_connection(store: CallStore) -> None:
    for round_ in range(ROUNDS):
        call_id = f"CA-race-{round_}"
        store.create_call(make_record(call_id))

        def attach(i: int, call_id: str = call_id) -> CallRecord:
            return store.attach_connection(call_id, f"conn-{call_id}-{i}", now=T0 + 1)

        results = _race(attach)

        winners = [r for r in results if isinstance(r, CallRecord)]
        assert len(winners) == 1
        assert all(isinstance(r, (CallRecord, TransitionError)) for r in results)
        winner = winners[0]
        assert store.get_call(call_id) == winner
        assert winner.version == 2
        for i in range(THREADS):
            bound = store.call_for_connection(f"conn-{call_id}-{i}")
            assert bound == (winner if f"conn-{call_id}-{i}" == winner.connection_id else None)


def test_concurrent_attaches_of_one_connection_bind_one_call(store: CallStore) -> None:
    for round_ in range(ROUNDS):
        call_ids = [f"CA-race-{round_}-{i}" for i in range(THREADS)]
        for call_id in call_ids:
            store.create_call(make_record(call_id))

        def attach(i: int, round_: int = round_, call_ids: list[str] = call_ids) -> CallRecord:
            return store.attach_connection(call_ids[i], f"conn-{round_}", now=T0 + 1)

        results = _race(attach)

        winners = [r for r in results if isinstance(r, CallRecord)]
        assert len(winners) == 1
        assert store.call_for_connection(f"conn-{round_}") == winners[0]
        attached = [c for c in call_ids if (r := store.get_call(c)) and r.connection_id is not None]
        assert attached == [winners[0].call_id]


# --- the turn fence ------------------------------------------------------------------------------


def test_turns_are_numbered_from_one(store: CallStore) -> None:
    store.create_call(make_record())
    assert store.current_turn("CA0001") == 0  # the welcome greeting

    numbers = [store.next_turn("CA0001", now=T0 + i) for i in range(1, 4)]

    assert numbers == [1, 2, 3]
    assert store.current_turn("CA0001") == 3
    record = store.get_call("CA0001")
    assert record is not None
    assert record.turn == 3
    assert record.updated_at == T0 + 3
    assert record.version == 1  # the fence is not a status change


def test_turn_fence_is_per_call(store: CallStore) -> None:
    store.create_call(make_record("CA0001"))
    store.create_call(make_record("CA0002"))
    store.next_turn("CA0001", now=T0 + 1)
    store.next_turn("CA0001", now=T0 + 2)

    assert store.next_turn("CA0002", now=T0 + 3) == 1
    assert store.current_turn("CA0001") == 2


def test_next_turn_on_an_unknown_call_raises_not_found(store: CallStore) -> None:
    with pytest.raises(CallNotFoundError):
        store.next_turn("CA-missing", now=T0)
    with pytest.raises(CallNotFoundError):
        store.current_turn("CA-missing")
    assert store.get_call("CA-missing") is None  # and creates nothing


@pytest.mark.parametrize("terminal", TERMINALS)
def test_next_turn_on_an_ended_call_is_refused(store: CallStore, terminal: CallStatus) -> None:
    store.create_call(make_record())
    store.next_turn("CA0001", now=T0 + 1)
    store.transition("CA0001", terminal, now=T0 + 2)

    with pytest.raises(TransitionError):
        store.next_turn("CA0001", now=T0 + 3)

    assert store.current_turn("CA0001") == 1


def test_concurrent_next_turns_get_distinct_numbers(store: CallStore) -> None:
    for round_ in range(ROUNDS):
        call_id = f"CA-race-{round_}"
        store.create_call(make_record(call_id))

        def next_turn(i: int, call_id: str = call_id) -> int:
            return store.next_turn(call_id, now=T0 + 1)

        numbers = _race(next_turn)
        assert sorted(n for n in numbers if isinstance(n, int)) == list(range(1, THREADS + 1))
        assert store.current_turn(call_id) == THREADS


def test_concurrent_prompts_and_interrupts_never_share_a_number(store: CallStore) -> None:
    # next_turn returns the new number, interrupt_turn the old one: the fence moved once for each.
    for round_ in range(ROUNDS):
        call_id = f"CA-race-{round_}"
        store.create_call(make_record(call_id))

        def bump(i: int, call_id: str = call_id) -> int:
            if i % 2:
                return store.next_turn(call_id, now=T0 + 1)
            return store.interrupt_turn(call_id, "heard", now=T0 + 1) + 1

        numbers = _race(bump)
        assert sorted(n for n in numbers if isinstance(n, int)) == list(range(1, THREADS + 1))
        assert store.current_turn(call_id) == THREADS


# --- interrupts ----------------------------------------------------------------------------------


def test_interrupt_fences_off_the_turn_being_spoken(store: CallStore) -> None:
    store.create_call(make_record())
    streaming = store.next_turn("CA0001", now=T0 + 1)

    interrupted = store.interrupt_turn("CA0001", "Sure, your order", now=T0 + 2)

    assert interrupted == streaming
    assert store.current_turn("CA0001") != streaming  # the streaming turn sees it is stale
    assert store.next_turn("CA0001", now=T0 + 3) == streaming + 2


def test_interrupting_the_welcome_is_turn_zero(store: CallStore) -> None:
    store.create_call(make_record())
    store.record_turn(make_turn(turn=0))

    assert store.interrupt_turn("CA0001", "Hello! How", now=T0 + 1) == 0

    assert store.current_turn("CA0001") == 1
    assert store.list_turns("CA0001") == [make_turn(turn=0, heard_text="Hello! How", interrupted=True)]


def test_interrupt_on_an_unknown_call_raises_not_found(store: CallStore) -> None:
    with pytest.raises(CallNotFoundError):
        store.interrupt_turn("CA-missing", "", now=T0)
    assert store.list_turns("CA-missing") == []


def test_interrupt_after_the_call_ended_is_still_recorded(store: CallStore) -> None:
    store.create_call(make_record())
    turn = store.next_turn("CA0001", now=T0 + 1)
    store.transition("CA0001", CallStatus.COMPLETED, now=T0 + 2)

    assert store.interrupt_turn("CA0001", "Your order", now=T0 + 3) == turn
    store.record_turn(make_turn(turn=turn))

    assert store.list_turns("CA0001")[-1].heard_text == "Your order"


@pytest.mark.parametrize("interrupt_first", [True, False], ids=["interrupt-record", "record-interrupt"])
def test_interrupt_and_record_commute(store: CallStore, interrupt_first: bool) -> None:
    store.create_call(make_record())
    turn = store.next_turn("CA0001", now=T0 + 1)
    spoken = make_turn(turn=turn, assistant_text="Sure, your order ships on Monday.")

    if interrupt_first:
        assert store.interrupt_turn("CA0001", "Sure, your order", now=T0 + 2) == turn
        store.record_turn(spoken)
    else:
        store.record_turn(spoken)
        assert store.interrupt_turn("CA0001", "Sure, your order", now=T0 + 2) == turn

    [stored] = store.list_turns("CA0001")
    assert stored == replace(spoken, heard_text="Sure, your order", interrupted=True)


def test_record_turn_never_writes_the_interrupt_fields(store: CallStore) -> None:
    store.create_call(make_record())
    store.record_turn(make_turn(turn=1, heard_text="made up", interrupted=True))
    store.record_turn(make_turn(turn=2))
    store.interrupt_turn("CA0001", "heard", now=T0 + 1)  # the fence is 0: marks turn 0
    store.next_turn("CA0001", now=T0 + 2)
    assert store.interrupt_turn("CA0001", "answer", now=T0 + 3) == 2
    store.record_turn(make_turn(turn=2, heard_text=None, interrupted=False))  # rewritten, late

    assert store.list_turns("CA0001") == [
        make_turn(turn=1),
        make_turn(turn=2, heard_text="answer", interrupted=True),
    ]


def test_recording_a_turn_again_replaces_its_fields(store: CallStore) -> None:
    store.create_call(make_record())
    store.record_turn(make_turn(turn=1, assistant_text="partial", total_ms=None))
    final = make_turn(turn=1, first_token_ms=None, total_ms=1234.5, tool_calls='[{"name": "check"}]')

    store.record_turn(final)

    assert store.list_turns("CA0001") == [final]


def test_a_turn_only_an_interrupt_wrote_is_not_listed(store: CallStore) -> None:
    # Two interrupts in a row: the second fences off a number no prompt ever used.
    store.create_call(make_record())
    store.record_turn(make_turn(turn=0))
    store.interrupt_turn("CA0001", "Hel", now=T0 + 1)
    store.interrupt_turn("CA0001", "", now=T0 + 2)

    assert [t.turn for t in store.list_turns("CA0001")] == [0]


# --- listing turns -------------------------------------------------------------------------------


def test_turn_fields_round_trip(store: CallStore) -> None:
    turns = [
        make_turn(turn=0, first_token_ms=None, total_ms=None),
        make_turn(
            turn=1,
            kind="dtmf",
            caller_text="1 2 #",
            assistant_text='Ünïcødé ✓, "quotes" and\nnewlines',
            messages=json.dumps([{"role": "user", "content": "1 2 #"}, {"role": "tool", "content": "{}"}]),
            tool_calls=json.dumps([{"id": "call_1", "name": "check_order", "arguments": '{"id": 7}'}]),
            started_at=T0 + 0.125,
            first_token_ms=0.0,
            total_ms=1e-3,
        ),
        make_turn(turn=2, caller_text="", assistant_text="", messages="", tool_calls=""),
    ]
    store.create_call(make_record())
    for turn in turns:
        store.record_turn(turn)

    assert store.list_turns("CA0001") == turns


def test_list_turns_is_ascending_and_keeps_the_last(store: CallStore) -> None:
    store.create_call(make_record())
    for number in (3, 0, 11, 2, 1, 10):  # written out of order; 10 and 11 sort after 3 as numbers
        store.record_turn(make_turn(turn=number))

    assert [t.turn for t in store.list_turns("CA0001")] == [0, 1, 2, 3, 10, 11]
    assert [t.turn for t in store.list_turns("CA0001", limit=3)] == [3, 10, 11]
    assert [t.turn for t in store.list_turns("CA0001", limit=1)] == [11]
    assert [t.turn for t in store.list_turns("CA0001", limit=6)] == [0, 1, 2, 3, 10, 11]


def test_list_turns_limit_skips_what_is_not_listed(store: CallStore) -> None:
    # The limit counts listed turns, not items read: the newest items here are interrupt-only.
    store.create_call(make_record())
    for number in range(3):
        store.record_turn(make_turn(turn=number))
        store.next_turn("CA0001", now=T0 + number)
    for _ in range(3):
        store.interrupt_turn("CA0001", "", now=T0 + 10)

    assert [t.turn for t in store.list_turns("CA0001", limit=2)] == [1, 2]


def test_list_turns_never_shows_another_calls_turns(store: CallStore) -> None:
    # CA0001 and CA00010 share a prefix: the key condition must not.
    for call_id in ("CA0001", "CA0002", "CA00010"):
        store.create_call(make_record(call_id))
    for number in range(4):
        for call_id in ("CA0001", "CA0002", "CA00010"):
            store.record_turn(make_turn(call_id, number, assistant_text=f"{call_id} {number}"))

    for call_id in ("CA0001", "CA0002", "CA00010"):
        turns = store.list_turns(call_id)
        assert [(t.call_id, t.turn) for t in turns] == [(call_id, n) for n in range(4)]
        assert all(t.assistant_text.startswith(f"{call_id} ") for t in turns)
    assert store.list_turns("CA0003") == []


def test_list_turns_limit_must_be_positive(store: CallStore) -> None:
    with pytest.raises(ValueError, match="limit"):
        store.list_turns("CA0001", limit=0)


# --- TTL -----------------------------------------------------------------------------------------


def test_expired_call_is_invisible_to_the_relay(store: CallStore, advance: Callable[[float], None]) -> None:
    store.create_call(make_record("CA0001", expires_at=int(T0) + 60))
    store.create_call(make_record("CA0002", expires_at=int(T0) + 60))
    store.attach_connection("CA0001", "conn-1=", now=T0 + 1)
    store.next_turn("CA0001", now=T0 + 2)
    store.record_turn(make_turn(turn=0, expires_at=int(T0) + 60))
    store.record_turn(make_turn(turn=1, expires_at=int(T0) + 60))

    advance(60)  # expires_at <= now: gone, whether or not the TTL sweep has run

    assert store.call_for_connection("conn-1=") is None
    assert store.list_turns("CA0001") == []
    with pytest.raises(CallNotFoundError):
        store.attach_connection("CA0002", "conn-2=", now=T0 + 60)
    with pytest.raises(CallNotFoundError):
        store.next_turn("CA0001", now=T0 + 60)
    with pytest.raises(CallNotFoundError):
        store.current_turn("CA0001")
    with pytest.raises(CallNotFoundError):
        store.interrupt_turn("CA0001", "heard", now=T0 + 60)
    assert store.call_for_connection("conn-2=") is None


def test_a_connection_of_an_expired_call_can_be_bound_again(
    store: CallStore, advance: Callable[[float], None]
) -> None:
    store.create_call(make_record("CA0001", expires_at=int(T0) + 60))
    store.attach_connection("CA0001", "conn-1=", now=T0 + 1)
    advance(60)
    store.create_call(make_record("CA0002", created_at=T0 + 60, updated_at=T0 + 60))

    attached = store.attach_connection("CA0002", "conn-1=", now=T0 + 61)

    assert store.call_for_connection("conn-1=") == attached


def test_a_recreated_call_does_not_inherit_its_old_connection(
    store: CallStore, advance: Callable[[float], None]
) -> None:
    # create_call replaces an expired item: the new call starts with no connection and no turns.
    store.create_call(make_record(expires_at=int(T0) + 60))
    store.attach_connection("CA0001", "conn-1=", now=T0 + 1)
    store.next_turn("CA0001", now=T0 + 2)
    advance(60)
    fresh = make_record(created_at=T0 + 60, updated_at=T0 + 60)
    store.create_call(fresh)

    assert store.call_for_connection("conn-1=") is None
    assert store.current_turn("CA0001") == 0
    assert store.attach_connection("CA0001", "conn-2=", now=T0 + 61).connection_id == "conn-2="


# --- record_heard: the stream pipelines' cut, by turn number ------------------------------------------


@pytest.mark.parametrize("order", ["turn-first", "heard-first"])
def test_record_heard_marks_that_turn_and_commutes_with_record_turn(store: CallStore, order: str) -> None:
    store.create_call(make_record(pipeline="cascading"))
    writes = [lambda: store.record_turn(make_turn(turn=2)), lambda: store.record_heard("CA0001", 2, "answer")]
    for write in writes if order == "turn-first" else reversed(writes):
        write()
    store.record_turn(make_turn(turn=1))
    turns = {t.turn: t for t in store.list_turns("CA0001")}
    assert (turns[2].heard_text, turns[2].interrupted) == ("answer", True)
    assert turns[2].assistant_text == "answer 2"
    assert (turns[1].heard_text, turns[1].interrupted) == (None, False), "another turn is never touched"
    assert store.current_turn("CA0001") == 0, "the fence is left alone"


def test_record_heard_on_a_missing_call_raises(store: CallStore) -> None:
    with pytest.raises(CallNotFoundError):
        store.record_heard("CA-missing", 1, "x")
