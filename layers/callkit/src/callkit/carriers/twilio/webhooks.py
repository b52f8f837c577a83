"""Twilio voice webhooks (docs/protocols/twilio.md §1): the incoming call and the call status callback."""

from __future__ import annotations

from datetime import UTC
from email.utils import parsedate_to_datetime

from callkit.carriers._types import Form, IncomingCall, RelayEnded, StatusUpdate
from callkit.errors import ProtocolError
from callkit.lifecycle import CallStatus

__all__ = ["parse_incoming_call", "parse_relay_ended", "parse_status_update"]

# Twilio's CallStatus values (docs/protocols/twilio.md §1). Queued and initiated calls have not been answered:
# for our lifecycle they are still ringing.
_STATUSES: dict[str, CallStatus] = {
    "queued": CallStatus.RINGING,
    "initiated": CallStatus.RINGING,
    "ringing": CallStatus.RINGING,
    "in-progress": CallStatus.IN_PROGRESS,
    "completed": CallStatus.COMPLETED,
    "busy": CallStatus.BUSY,
    "failed": CallStatus.FAILED,
    "no-answer": CallStatus.NO_ANSWER,
    "canceled": CallStatus.CANCELED,
}


def parse_incoming_call(form: Form) -> IncomingCall:
    """Read the Voice URL webhook. ``status`` is the mapped ``CallStatus`` (normally ringing).

    Raises ``ProtocolError`` when CallSid, AccountSid, From, To, Direction or CallStatus is
    missing or empty, or CallStatus is not one Twilio documents.
    """
    return IncomingCall(
        carrier="twilio",
        call_id=_required(form, "CallSid"),
        account_id=_required(form, "AccountSid"),
        from_number=_required(form, "From"),
        to_number=_required(form, "To"),
        direction=_required(form, "Direction"),
        status=_status(form),
        forwarded_from=_optional(form, "ForwardedFrom"),
    )


def parse_relay_ended(form: Form) -> RelayEnded:
    """Read the ``<Connect action>`` request sent when a ConversationRelay session ends.

    Raises ``ProtocolError`` for a missing CallSid or SessionStatus.
    """
    return RelayEnded(
        call_id=_required(form, "CallSid"),
        session_status=_required(form, "SessionStatus"),
        handoff_data=_optional(form, "HandoffData"),
        error_code=_optional(form, "ErrorCode"),
    )


def parse_status_update(form: Form) -> StatusUpdate:
    """Read a status callback.

    ``ended_at`` comes from ``Timestamp`` (RFC 2822) on terminal updates only; a missing or
    unreadable one gives ``None``, since the callback is still worth applying. ``detail`` is
    ``ErrorMessage`` or else ``SIP <SipResponseCode>`` when Twilio sends either. Raises
    ``ProtocolError`` for a missing CallSid or CallStatus, an unknown CallStatus, or a
    SequenceNumber or CallDuration that is not a decimal number.
    """
    status = _status(form)
    sip_code = _optional(form, "SipResponseCode")
    return StatusUpdate(
        carrier="twilio",
        call_id=_required(form, "CallSid"),
        status=status,
        sequence=_number(form, "SequenceNumber"),
        duration_seconds=_number(form, "CallDuration"),
        ended_at=_timestamp(_optional(form, "Timestamp")) if status.terminal else None,
        detail=_optional(form, "ErrorMessage") or (f"SIP {sip_code}" if sip_code else None),
    )


def _optional(form: Form, name: str) -> str | None:
    values = form.get(name)
    return values[0] if values else None


def _required(form: Form, name: str) -> str:
    value = _optional(form, name)
    if not value:
        raise ProtocolError(f"Twilio webhook without {name}")
    return value


def _status(form: Form) -> CallStatus:
    raw = _required(form, "CallStatus")
    try:
        return _STATUSES[raw]
    except KeyError:
        raise ProtocolError(f"unknown Twilio CallStatus {raw!r}") from None


def _number(form: Form, name: str) -> int | None:
    raw = _optional(form, name)
    if raw is None or raw == "":
        return None
    # isdigit alone admits non-ASCII digits; the length cap keeps int() cheap.
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 20):
        raise ProtocolError(f"Twilio {name} is not a decimal number")
    return int(raw)


def _timestamp(raw: str | None) -> float | None:
    if not raw:
        return None
    try:
        moment = parsedate_to_datetime(raw)
        if moment.tzinfo is None:  # "-0000": UTC, local zone unknown (RFC 2822 §3.3)
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
