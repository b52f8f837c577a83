"""Plivo Answer URL and Hangup URL form parameters (docs/protocols/plivo.md §1–2)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Final

from callkit.carriers._types import Form, IncomingCall, StatusUpdate
from callkit.errors import ProtocolError
from callkit.lifecycle import CallStatus

NAME: Final = "plivo"

_STATUSES: Final[dict[str, CallStatus]] = {
    "ringing": CallStatus.RINGING,
    "in-progress": CallStatus.IN_PROGRESS,
    "completed": CallStatus.COMPLETED,
    "busy": CallStatus.BUSY,
    "failed": CallStatus.FAILED,
    "timeout": CallStatus.NO_ANSWER,
    "no-answer": CallStatus.NO_ANSWER,
    "cancel": CallStatus.CANCELED,
    "canceled": CallStatus.CANCELED,
}
# Plivo's timestamps (StartTime, AnswerTime, EndTime) are "yyyy-MM-dd HH:mm:ss" in UTC.
_TIME_FORMAT: Final = "%Y-%m-%d %H:%M:%S"
# Bounded so int() never meets a pathological digit string.
_DIGITS: Final = re.compile(r"[0-9]{1,18}")
# Plivo's CallUUID is a UUID in its 8-4-4-4-12 hex form (the events in events/ and
# ``callkit.testing.carrier`` use ``uuid4``). Checked at the boundary, so a signed request whose
# CallUUID holds ``|``, a newline or 5,000 characters is refused (400) before anything is written.
_CALL_UUID: Final = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")


def parse_incoming_call(form: Form) -> IncomingCall:
    """The Answer URL request.

    Raises ``ProtocolError`` without a ``CallUUID`` that is a UUID, without ``From`` or ``To``
    (an answer must know who calls whom: the number picks the interface), or without a known
    ``CallStatus``.
    """
    forwarded_from = _first(form, "ForwardedFrom")
    return IncomingCall(
        carrier=NAME,
        call_id=_call_id(form),
        # The Answer URL carries no account id (docs/protocols/plivo.md §1); the stream's start frame has it.
        account_id="",
        from_number=_e164(_required(form, "From")),
        to_number=_e164(_required(form, "To")),
        direction=_first(form, "Direction") or "",
        status=_status(form).value,
        forwarded_from=_e164(forwarded_from) if forwarded_from else None,
    )


def parse_status_update(form: Form) -> StatusUpdate:
    """The Hangup URL request. Plivo does not number its callbacks, so ``sequence`` is ``None``."""
    duration = _first(form, "Duration")
    return StatusUpdate(
        carrier=NAME,
        call_id=_call_id(form),
        status=_status(form),
        sequence=None,
        duration_seconds=int(duration) if duration and _DIGITS.fullmatch(duration) else None,
        ended_at=_epoch_seconds(_first(form, "EndTime")),
        detail=_first(form, "HangupCause") or None,
    )


def _first(form: Form, name: str) -> str | None:
    values = form.get(name)
    return values[0] if values else None


def _required(form: Form, name: str) -> str:
    value = _first(form, name)
    if not value:
        raise ProtocolError(f"Plivo callback without {name}")
    return value


def _call_id(form: Form) -> str:
    call_id = _required(form, "CallUUID")
    if not _CALL_UUID.fullmatch(call_id):
        # The value is not quoted: it is the caller's input, and messages reach the logs.
        raise ProtocolError("Plivo CallUUID is not a UUID")
    return call_id


def _status(form: Form) -> CallStatus:
    raw = _first(form, "CallStatus")
    status = _STATUSES.get(raw.lower()) if raw is not None else None
    if status is None:
        raise ProtocolError(f"unknown Plivo CallStatus {raw!r}")
    return status


def _e164(number: str) -> str:
    # Plivo sends numbers with country code but without "+" (docs/protocols/plivo.md §1); SIP URIs and
    # "anonymous"-style values are left alone.
    if number.isascii() and number.isdigit():
        return f"+{number}"
    return number


def _epoch_seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return datetime.strptime(value, _TIME_FORMAT).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None
