"""The call store interface: what every implementation (DynamoDB, in-memory) must do.

One item per call, plus, for managed (ConversationRelay) calls, one item per turn and one that maps
the relay's WebSocket connection to its call. Writes that can race (a retried webhook, a reordered
status callback, two relay messages handled by two Lambda invocations at once) are conditional or
atomic, so the outcome does not depend on delivery order. Methods are synchronous: boto3 is, and
Lambda handlers are; async callers use a thread.

Managed turns are fenced (docs/architecture.md §2.5): the call's ``turn`` counter is bumped by every prompt
(``next_turn``) and by every interrupt (``interrupt_turn``). A turn streaming its answer checks
``current_turn`` before each text frame and stops once the counter has moved past its number; the
interrupt records what the caller actually heard on that turn's item, and ``record_turn`` never
overwrites it, so the two writes commute and the history keeps only what was heard.
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
    #: The relay WebSocket attached by ``attach_connection`` (managed calls only), else ``None``.
    connection_id: str | None = None
    #: The turn fence: the number of the newest turn; bumped by ``next_turn`` and ``interrupt_turn``.
    turn: int = 0
    #: The carrier's media stream that claimed the call (stream pipelines only), else ``None``.
    stream_id: str | None = None


TurnKind = Literal["welcome", "prompt", "dtmf"]


@dataclass(frozen=True, slots=True)
class TurnRecord:
    """One managed turn, as stored (turn 0 is the welcome greeting).

    ``assistant_text`` is what this turn sent to be spoken; ``heard_text`` and ``interrupted`` are
    written only by ``interrupt_turn`` (what the caller actually heard before barging in), so a
    record passed to ``record_turn`` leaves them out and a record read back carries them.
    ``messages`` and ``tool_calls`` are JSON text the agent layer owns (the chat messages this turn
    added, the tool calls it made): the store keeps them opaque. Times: ``started_at`` is epoch
    seconds, the two latencies are milliseconds from ``started_at``; ``expires_at`` is the TTL.
    """

    call_id: str
    turn: int
    kind: TurnKind
    caller_text: str
    assistant_text: str
    messages: str
    tool_calls: str
    started_at: float
    expires_at: int
    first_token_ms: float | None = None
    total_ms: float | None = None
    heard_text: str | None = None
    interrupted: bool = False


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
        also records ``duration_seconds`` and ``ended_at``. One exception to "same status is a
        no-op": a call already in this terminal status gets the ``duration_seconds`` / ``ended_at``
        it lacks (``fills_details``; nothing else changes, ``applied`` is True): the relay's
        ``$disconnect`` ends a call before the carrier reports how long it lasted. Raises
        ``CallNotFoundError`` when there is no item.
        """
        ...

    # --- managed mode (ConversationRelay) ---------------------------------------------------------
    #
    # Every relay message is its own Lambda invocation, possibly concurrent with others for the
    # same call; each method is one atomic or conditional write (or one read) for that reason.
    # Everywhere, a call past its TTL is treated as missing.

    def attach_connection(self, call_id: str, connection_id: str, *, now: float) -> CallRecord:
        """Bind the relay WebSocket ``connection_id`` to the call, once; return the call as written.

        Applies only when the call exists, its pipeline is ``managed``, its status is ``ringing``
        or ``in-progress`` and no connection is attached yet (nor is ``connection_id`` bound to a
        live call already). Then sets ``connection_id``, moves ``ringing`` to ``in-progress``,
        stamps ``updated_at = now``, bumps ``version`` and maps the connection to the call (for
        ``call_for_connection``, expiring with the call) in one atomic write: of two concurrent
        attaches exactly one wins. Raises ``CallNotFoundError`` when there is no call and
        ``TransitionError`` when it is refused (a second attach included, even of the same id).
        """
        ...

    def claim_stream(self, call_id: str, stream_id: str, *, now: float) -> CallRecord:
        """Let one media stream have the call, once; return the call as written.

        Applies only when the call exists (not expired), its pipeline is ``cascading`` or
        ``realtime``, its status is ``ringing`` or ``in-progress`` and no stream has claimed it:
        sets ``stream_id``, moves ``ringing`` to ``in-progress`` (an ``in-progress`` call stays
        so), stamps ``updated_at = now`` and bumps ``version``. ``in-progress`` is admitted because
        carriers do not order their callbacks against the WebSocket: the ``in-progress`` status
        callback (Plivo: ``answered``) may land before the stream's ``start`` frame. Only an ended
        call (a terminal status) or one a stream has already claimed refuses, so a replayed stream
        token still cannot attach a second stream (docs/architecture.md §2.3). Raises ``CallNotFoundError`` when
        there is no call and ``TransitionError`` when the claim is refused.
        """
        ...

    def call_for_connection(self, connection_id: str) -> CallRecord | None:
        """The call ``connection_id`` is attached to, or ``None`` (unknown, expired, or re-bound)."""
        ...

    def next_turn(self, call_id: str, *, now: float) -> int:
        """Bump the turn fence for a new prompt and return the new turn number (atomic).

        Concurrent callers get distinct numbers. Stamps ``updated_at = now``; ``version`` is
        left alone (it counts status changes). Raises ``CallNotFoundError`` when there is no
        call and ``TransitionError`` when the call has ended (there is nothing to answer).
        """
        ...

    def current_turn(self, call_id: str) -> int:
        """The turn fence, read strongly consistently; ``CallNotFoundError`` when there is no call.

        A streaming turn calls this before every text frame it posts and stops when the answer is
        not its own number any more: keep it one small read.
        """
        ...

    def interrupt_turn(self, call_id: str, heard_text: str, *, now: float) -> int:
        """Fence off the turn being spoken and record what the caller heard of it.

        Atomically bumps the fence and returns the old number (the interrupted turn), then sets
        ``heard_text`` and ``interrupted`` on that turn's item, creating the item if its
        ``record_turn`` has not arrived yet (it then expires with the call). Allowed on an ended
        call too: the interrupt may race the hang-up, and what was heard is still true. Stamps
        ``updated_at = now``. Raises ``CallNotFoundError`` when there is no call.
        """
        ...

    def record_heard(self, call_id: str, turn: int, heard_text: str) -> None:
        """Record what the caller heard of turn ``turn`` (it was cut off), leaving the fence alone.

        The stream pipelines' form of ``interrupt_turn``: one process holds a stream call, so its
        turns need no fence, only the record. Sets ``heard_text`` and ``interrupted`` on that turn's
        item, creating it if its ``record_turn`` has not arrived yet (it then expires with the
        call); like ``interrupt_turn`` it commutes with ``record_turn``. Raises
        ``CallNotFoundError`` when there is no call.
        """
        ...

    def record_turn(self, turn: TurnRecord) -> None:
        """Write every field of ``turn`` except ``heard_text`` and ``interrupted``.

        Those two belong to ``interrupt_turn``; leaving them alone makes the two writes commute, so
        an interrupt that lands before the streaming invocation records its turn is kept. Writing
        the same turn again replaces its fields (``None`` clears a latency). The call is not
        checked: the turn number came from ``next_turn``, which did.
        """
        ...

    def list_turns(self, call_id: str, *, limit: int = 50) -> list[TurnRecord]:
        """The call's last ``limit`` recorded turns, oldest first (strongly consistent).

        Turns past their TTL are left out, and so are items an interrupt created for a turn that
        ``record_turn`` never wrote (a fence bump with nothing said, or a turn whose invocation
        died): there is nothing in them to replay. Never another call's turns.
        """
        ...


def fills_details(
    current: CallRecord, status: CallStatus, duration: int | None, ended_at: float | None
) -> bool:
    """A repeated terminal status that brings details the item lacks (e.g. ``$disconnect`` ended the
    call, then the carrier's ``completed`` callback arrives with the duration)."""
    return (
        status.terminal
        and current.status == status
        and (
            (duration is not None and current.duration_seconds is None)
            or (ended_at is not None and current.ended_at is None)
        )
    )
