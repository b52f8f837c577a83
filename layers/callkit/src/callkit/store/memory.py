"""An in-process call store with the same semantics as the DynamoDB one.

For tests, the local runtime and a single-process deployment. State lives in one dict behind one
lock: FastAPI runs sync endpoints in a thread pool, so two webhook retries can race here exactly as
they race on DynamoDB, and the lock gives the same answer a conditional write does.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from callkit.errors import CallNotFoundError, TransitionError
from callkit.lifecycle import CallStatus, allowed_sources
from callkit.store._base import CallRecord, CreateResult, TransitionResult, TurnRecord, fills_details

if TYPE_CHECKING:
    from collections.abc import Callable


@dataclass(slots=True)
class _TurnSlot:
    """A turn item: what ``record_turn`` wrote and, apart, what ``interrupt_turn`` wrote."""

    expires_at: int
    recorded: TurnRecord | None = None
    heard_text: str | None = None
    interrupted: bool = False


class MemoryCallStore:
    """A ``CallStore`` in dicts.

    Like DynamoDB with TTL, an item whose ``expires_at`` is at or before ``now()`` is treated as
    absent: ``get_call`` returns ``None``, ``transition`` raises ``CallNotFoundError`` and
    ``create_call`` replaces it. ``now`` is the clock for that check only; ``transition`` stamps
    ``updated_at`` with its own ``now`` argument. See ``DynamoDBCallStore`` for the transition rules
    both stores share, and ``CallStore`` for the managed-mode methods.
    """

    def __init__(self, *, now: Callable[[], float] = time.time) -> None:
        self._now = now
        self._records: dict[str, CallRecord] = {}
        # The CONN# items: connection id -> (call id, expires_at).
        self._connections: dict[str, tuple[str, int]] = {}
        # The TURN# items, per call.
        self._turns: dict[str, dict[int, _TurnSlot]] = {}
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
            if fills_details(current, status, duration_seconds, ended_at):
                filled = replace(
                    current,
                    updated_at=now,
                    duration_seconds=current.duration_seconds
                    if current.duration_seconds is not None
                    else duration_seconds,
                    ended_at=current.ended_at if current.ended_at is not None else ended_at,
                )
                self._records[call_id] = filled
                return TransitionResult(applied=True, record=filled)
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

    # --- managed mode -------------------------------------------------------------------------------

    def claim_stream(self, call_id: str, stream_id: str, *, now: float) -> CallRecord:
        with self._lock:
            current = self._live(call_id)
            if current is None:
                raise CallNotFoundError(f"no call item for {call_id!r}")
            if (
                current.pipeline not in ("cascading", "realtime")
                or current.status not in (CallStatus.RINGING, CallStatus.IN_PROGRESS)
                or current.stream_id is not None
            ):
                raise TransitionError("the call cannot take this media stream")
            claimed = replace(
                current,
                stream_id=stream_id,
                status=CallStatus.IN_PROGRESS,
                updated_at=now,
                version=current.version + 1,
            )
            self._records[call_id] = claimed
            return claimed

    def attach_connection(self, call_id: str, connection_id: str, *, now: float) -> CallRecord:
        with self._lock:
            current = self._live(call_id)
            if current is None:
                raise CallNotFoundError(f"no call item for {call_id!r}")
            bound = self._connections.get(connection_id)
            if (
                current.pipeline != "managed"
                or current.status not in (CallStatus.RINGING, CallStatus.IN_PROGRESS)
                or current.connection_id is not None
                or (bound is not None and bound[1] > self._now())
            ):
                raise TransitionError(f"call {call_id!r} does not accept a relay connection")
            updated = replace(
                current,
                connection_id=connection_id,
                status=CallStatus.IN_PROGRESS,
                updated_at=now,
                version=current.version + 1,
            )
            self._records[call_id] = updated
            self._connections[connection_id] = (call_id, current.expires_at)
            return updated

    def call_for_connection(self, connection_id: str) -> CallRecord | None:
        with self._lock:
            bound = self._connections.get(connection_id)
            if bound is None:
                return None
            call_id, expires_at = bound
            if expires_at <= self._now():
                del self._connections[connection_id]
                return None
            record = self._live(call_id)
            if record is None or record.connection_id != connection_id:
                return None
            return record

    def next_turn(self, call_id: str, *, now: float) -> int:
        with self._lock:
            current = self._live(call_id)
            if current is None:
                raise CallNotFoundError(f"no call item for {call_id!r}")
            if current.status.terminal:
                raise TransitionError(f"call {call_id!r} has ended ({current.status})")
            self._records[call_id] = replace(current, turn=current.turn + 1, updated_at=now)
            return current.turn + 1

    def current_turn(self, call_id: str) -> int:
        with self._lock:
            current = self._live(call_id)
            if current is None:
                raise CallNotFoundError(f"no call item for {call_id!r}")
            return current.turn

    def interrupt_turn(self, call_id: str, heard_text: str, *, now: float) -> int:
        with self._lock:
            current = self._live(call_id)
            if current is None:
                raise CallNotFoundError(f"no call item for {call_id!r}")
            self._records[call_id] = replace(current, turn=current.turn + 1, updated_at=now)
            slot = self._turns.setdefault(call_id, {}).setdefault(
                current.turn, _TurnSlot(expires_at=current.expires_at)
            )
            slot.heard_text = heard_text
            slot.interrupted = True
            return current.turn

    def record_heard(self, call_id: str, turn: int, heard_text: str) -> None:
        with self._lock:
            current = self._live(call_id)
            if current is None:
                raise CallNotFoundError(f"no call item for {call_id!r}")
            slot = self._turns.setdefault(call_id, {}).setdefault(
                turn, _TurnSlot(expires_at=current.expires_at)
            )
            slot.heard_text = heard_text
            slot.interrupted = True

    def record_turn(self, turn: TurnRecord) -> None:
        with self._lock:
            slots = self._turns.setdefault(turn.call_id, {})
            slot = slots.setdefault(turn.turn, _TurnSlot(expires_at=turn.expires_at))
            slot.expires_at = turn.expires_at
            slot.recorded = replace(turn, heard_text=None, interrupted=False)

    def list_turns(self, call_id: str, *, limit: int = 50) -> list[TurnRecord]:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        with self._lock:
            self._drop_expired_turns(call_id)
            turns = [
                replace(slot.recorded, heard_text=slot.heard_text, interrupted=slot.interrupted)
                for _, slot in sorted(self._turns.get(call_id, {}).items())
                if slot.recorded is not None
            ]
            return turns[-limit:]

    def _live(self, call_id: str) -> CallRecord | None:
        """The record unless it is missing or past its TTL. Call with the lock held."""
        record = self._records.get(call_id)
        if record is not None and record.expires_at <= self._now():
            # Unlike DynamoDB's best-effort TTL sweep, drop it now: a long-lived local process
            # should not grow without bound.
            del self._records[call_id]
            connection = record.connection_id
            if connection is not None and self._connections.get(connection, ("", 0))[0] == call_id:
                del self._connections[connection]
            self._drop_expired_turns(call_id)
            return None
        return record

    def _drop_expired_turns(self, call_id: str) -> None:
        """Forget the call's turns past their TTL. Call with the lock held."""
        slots = self._turns.get(call_id)
        if slots is None:
            return
        now = self._now()
        for number in [n for n, slot in slots.items() if slot.expires_at <= now]:
            del slots[number]
        if not slots:
            del self._turns[call_id]
