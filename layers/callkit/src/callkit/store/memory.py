"""An in-process call store with the same semantics as the DynamoDB one.

For tests, the local runtime and a single-process deployment. State lives in one dict behind one
lock: FastAPI runs sync endpoints in a thread pool, so two webhook retries can race here exactly as
they race on DynamoDB, and the lock gives the same answer a conditional write does.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from callkit.errors import CallNotFoundError
from callkit.lifecycle import CallStatus, allowed_sources
from callkit.store._base import CallRecord, CreateResult, TransitionResult

if TYPE_CHECKING:
    from collections.abc import Callable


class MemoryCallStore:
    """A ``CallStore`` in a dict.

    Like DynamoDB with TTL, an item whose ``expires_at`` is at or before ``now()`` is treated as
    absent: ``get_call`` returns ``None``, ``transition`` raises ``CallNotFoundError`` and
    ``create_call`` replaces it. ``now`` is the clock for that check only; ``transition`` stamps
    ``updated_at`` with its own ``now`` argument. See ``DynamoDBCallStore`` for the transition rules
    both stores share.
    """

    def __init__(self, *, now: Callable[[], float] = time.time) -> None:
        self._now = now
        self._records: dict[str, CallRecord] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """How many calls are stored and not past their TTL (for tests and the demo)."""
        with self._lock:
            now = self._now()
            return sum(1 for record in self._records.values() if record.expires_at > now)

    def create_call(self, record: CallRecord) -> CreateResult:
        with self._lock:
            existing = self._live(record.call_id)
            if existing is not None:
                return CreateResult(created=False, record=existing)
            self._records[record.call_id] = record
            return CreateResult(created=True, record=record)

    def get_call(self, call_id: str) -> CallRecord | None:
        with self._lock:
            return self._live(call_id)

    def transition(
        self,
        call_id: str,
        status: CallStatus,
        *,
        now: float,
        sequence: int | None = None,
        duration_seconds: int | None = None,
        ended_at: float | None = None,
    ) -> TransitionResult:
        with self._lock:
            current = self._live(call_id)
            if current is None:
                raise CallNotFoundError(f"no call item for {call_id!r}")
            if current.status not in allowed_sources(status):
                return TransitionResult(applied=False, record=current)
            if (
                sequence is not None
                and current.status_sequence is not None
                and sequence <= current.status_sequence
            ):
                return TransitionResult(applied=False, record=current)
            updated = replace(
                current,
                status=status,
                updated_at=now,
                version=current.version + 1,
                status_sequence=current.status_sequence if sequence is None else sequence,
                duration_seconds=current.duration_seconds if duration_seconds is None else duration_seconds,
                ended_at=current.ended_at if ended_at is None else ended_at,
            )
            self._records[call_id] = updated
            return TransitionResult(applied=True, record=updated)

    def _live(self, call_id: str) -> CallRecord | None:
        """The record unless it is missing or past its TTL. Call with the lock held."""
        record = self._records.get(call_id)
        if record is not None and record.expires_at <= self._now():
            # Unlike DynamoDB's best-effort TTL sweep, drop it now: a long-lived local process
            # should not grow without bound.
            del self._records[call_id]
            return None
        return record
