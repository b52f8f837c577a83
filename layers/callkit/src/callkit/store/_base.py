"""The call store interface: what every implementation (DynamoDB, in-memory) must do.

One item per call. Writes that can race (a retried webhook, a reordered status callback) are
conditional, so the outcome does not depend on delivery order. Methods are synchronous: boto3 is,
and Lambda handlers are; async callers use a thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from callkit.lifecycle import CallStatus

Carrier = Literal["twilio", "plivo"]
Pipeline = Literal["managed", "cascading", "realtime"]

#: Call items expire (DynamoDB TTL) this long after their last write unless configured otherwise.
DEFAULT_RETENTION_SECONDS = 30 * 24 * 3600


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One call, as stored.

    ``answer`` is the exact document the webhook returned, so a retried webhook gets the same
    one. ``status_sequence`` is the highest carrier sequence number applied (Twilio
    ``SequenceNumber``), or ``None``. Times are epoch seconds; ``expires_at`` is the TTL attribute.
    """

    call_id: str
    carrier: Carrier
    pipeline: Pipeline
    status: CallStatus
    from_number: str
    to_number: str
    account_id: str
    answer: str
    created_at: float
    updated_at: float
    expires_at: int
    status_sequence: int | None = None
    duration_seconds: int | None = None
    ended_at: float | None = None
    version: int = 1


@dataclass(frozen=True, slots=True)
class CreateResult:
    """``created`` is False when an item for the call already existed; ``record`` is then that item."""

    created: bool
    record: CallRecord


@dataclass(frozen=True, slots=True)
class TransitionResult:
    """``applied`` is False when the update was stale, a duplicate or not allowed; ``record`` is the item now."""

    applied: bool
    record: CallRecord


class CallStore(Protocol):
    def create_call(self, record: CallRecord) -> CreateResult:
        """Create the item unless one exists for ``record.call_id`` (conditional put)."""
        ...

    def get_call(self, call_id: str) -> CallRecord | None:
        """The item, or ``None`` (also for an item past its TTL that DynamoDB has not deleted yet)."""
        ...

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
        """Move the call to ``status`` if the lifecycle allows it and ``sequence`` is newer.

        Applies only when the current status is in ``lifecycle.allowed_sources(status)`` and,
        when both are known, ``sequence`` exceeds the stored ``status_sequence``. A terminal update
        also records ``duration_seconds`` and ``ended_at``. Raises ``CallNotFoundError`` when
        there is no item.
        """
        ...
