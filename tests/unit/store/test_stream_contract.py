"""claim_stream: one media stream per call, on every store implementation."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from test_contract import T0, make_record

from callkit.errors import CallNotFoundError, TransitionError
from callkit.lifecycle import CallStatus
from callkit.store import CallStore


def test_claim_moves_the_call_to_in_progress(store: CallStore) -> None:
    store.create_call(make_record(pipeline="cascading"))
    claimed = store.claim_stream("CA0001", "MZ1", now=T0 + 1)
    assert (claimed.status, claimed.stream_id, claimed.version) == (CallStatus.IN_PROGRESS, "MZ1", 2)
    assert store.get_call("CA0001") == claimed


@pytest.mark.parametrize("pipeline", ["cascading", "realtime"])
def test_a_second_claim_is_refused(store: CallStore, pipeline: str) -> None:
    store.create_call(make_record(pipeline=pipeline))
    store.claim_stream("CA0001", "MZ1", now=T0 + 1)
    with pytest.raises(TransitionError):
        store.claim_stream("CA0001", "MZ2", now=T0 + 2)
    with pytest.raises(TransitionError):
        store.claim_stream("CA0001", "MZ1", now=T0 + 2)


def test_managed_or_ended_calls_cannot_be_claimed(store: CallStore) -> None:
    store.create_call(make_record(call_id="CA-managed", pipeline="managed"))
    store.create_call(make_record(call_id="CA-ended", pipeline="realtime", status=CallStatus.COMPLETED))
    for call_id in ("CA-managed", "CA-ended"):
        with pytest.raises(TransitionError):
            store.claim_stream(call_id, "MZ1", now=T0 + 1)
    with pytest.raises(CallNotFoundError):
        store.claim_stream("CA-missing", "MZ1", now=T0 + 1)


def test_concurrent_claims_have_one_winner(store: CallStore) -> None:
    store.create_call(make_record(pipeline="cascading"))
    barrier = threading.Barrier(8)

    def claim(n: int) -> bool:
        barrier.wait()
        try:
            store.claim_stream("CA0001", f"MZ{n}", now=T0 + 1)
        except TransitionError:
            return False
        return True

    with ThreadPoolExecutor(8) as pool:
        assert sum(pool.map(claim, range(8))) == 1
