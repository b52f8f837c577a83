"""Twilio voice webhooks (docs/protocols/twilio.md §1): the incoming call and the call status callback."""

from __future__ import annotations

import re
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Final

from callkit.carriers._types import Form, IncomingCall, RelayEnded, StatusUpdate
from callkit.errors import ProtocolError
from callkit.lifecycle import CallStatus

__all__ = ["parse_incoming_call", "parse_relay_ended", "parse_status_update"]

# A Twilio SID is two letters naming the resource and 32 hex digits: ``CA…`` a call, ``AC…`` an
# account (Twilio's API definitions give ``^CA[0-9a-fA-F]{32}$``; ``callkit.testing.carrier`` makes
# them the same way). Checked at the boundary, so a signed request whose CallSid holds ``|``, a
# newline or 5,000 characters is refused (400) before anything is minted or written for it.
_CALL_SID: Final = re.compile(r"CA[0-9a-fA-F]{32}")
_ACCOUNT_SID: Final = re.compile(r"AC[0-9a-fA-F]{32}")

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
    missing or empty, CallSid or AccountSid is not a SID of its kind, or CallStatus is not one
    Twilio documents.
    """
    return IncomingCall(
        carrier="twilio",
        call_id=_sid(form, "CallSid", _CALL_SID),
        account_id=_sid(form, "AccountSid", _ACCOUNT_SID),
        from_number=_required(form, "From"),
        to_number=_required(form, "To"),
        direction=_required(form, "Direction"),
        status=_status(form),
        forwarded_from=_optional(form, "ForwardedFrom"),
    )


def parse_relay_ended(form: Form) -> RelayEnded:
    """Read the ``<Connect action>`` request sent when a ConversationRelay session ends.

    Raises ``ProtocolError`` for a missing CallSid or SessionStatus, or a CallSid that is not one.
    """
    return RelayEnded(
        call_id=_sid(form, "CallSid", _CALL_SID),
        session_status=_required(form, "SessionStatus"),
        handoff_data=_optional(form, "HandoffData"),
        error_code=_optional(form, "ErrorCode"),
    )


def parse_status_update(form: Form) -> StatusUpdate:
    """Read a status callback.

    ``ended_at`` comes from ``Timestamp`` (RFC 2822) on terminal updates only; a missing or
    unreadable one gives ``None``, since the callback is still worth applying. ``detail`` is
    ``ErrorMessage`` or else ``SIP <SipResponseCode>`` when Twilio sends either. Raises
    ``ProtocolError`` for a missing CallSid or CallStatus, a CallSid that is not a Call SID, an
    unknown CallStatus, or a SequenceNumber or CallDuration that is not a decimal number.
    """
    status = _status(form)
    sip_code = _optional(form, "SipResponseCode")
    return StatusUpdate(
        carrier="twilio",
        call_id=_sid(form, "CallSid", _CALL_SID),
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


def _sid(form: Form, name: str, pattern: re.Pattern[str]) -> str:
    value = _required(form, name)
    if not pattern.fullmatch(value):
        # The value is not quoted: it is the caller's input, and messages reach the logs.
        raise ProtocolError(f"Twilio {name} is not a {pattern.pattern[:2]} SID")
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
