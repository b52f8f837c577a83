"""What only the in-memory store has: ``len()`` for tests and the demo."""

from __future__ import annotations

from typing import TYPE_CHECKING

from callkit.lifecycle import CallStatus
from callkit.store import CallRecord, MemoryCallStore

if TYPE_CHECKING:
    from collections.abc import Callable

T0 = 1_700_000_000.0


def _record(call_id: str, expires_at: int) -> CallRecord:
    return CallRecord(
        call_id=call_id,
        carrier="plivo",
        pipeline="cascading",
        status=CallStatus.RINGING,
        from_number="+15550100001",
        to_number="+15550100002",
        account_id="MA0001",
        answer="<Response/>",
        created_at=T0,
        updated_at=T0,
        expires_at=expires_at,
    )


def test_len_counts_live_calls(clock: Callable[[], float], advance: Callable[[float], None]) -> None:
    store = MemoryCallStore(now=clock)
    assert len(store) == 0

    store.create_call(_record("CA0001", int(T0) + 10))
    store.create_call(_record("CA0001", int(T0) + 10))
    store.create_call(_record("CA0002", int(T0) + 100))
    assert len(store) == 2

    advance(10)
    assert len(store) == 1
