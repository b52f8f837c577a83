"""Twilio incoming-call and status-callback parsing (docs/protocols/twilio.md §1)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from callkit.carriers._types import IncomingCall, StatusUpdate, parse_form
from callkit.carriers.twilio import parse_incoming_call, parse_status_update
from callkit.errors import ProtocolError
from callkit.lifecycle import CallStatus

ACCOUNT = "AC" + "a" * 32
CALL = "CA" + "b" * 32
INCOMING_BODY = (
    f"AccountSid={ACCOUNT}&ApiVersion=2010-04-01&CallSid={CALL}"
    "&CallStatus=ringing&Direction=inbound&From=%2B14155550100&To=%2B14155550199"
)


def status_form(**fields: str) -> dict[str, list[str]]:
    form = {"AccountSid": [ACCOUNT], "CallSid": [CALL], "CallStatus": ["completed"]}
    form.update({name: [value] for name, value in fields.items()})
    return form


def test_incoming_call() -> None:
    call = parse_incoming_call(parse_form(INCOMING_BODY))
    assert call == IncomingCall(
        carrier="twilio",
        call_id=CALL,
        account_id=ACCOUNT,
        from_number="+14155550100",
        to_number="+14155550199",
        direction="inbound",
        status=CallStatus.RINGING,
    )


def test_incoming_call_forwarded_from() -> None:
    call = parse_incoming_call(parse_form(INCOMING_BODY + "&ForwardedFrom=%2B14155550111"))
    assert call.forwarded_from == "+14155550111"


@pytest.mark.parametrize("name", ["CallSid", "AccountSid", "From", "To", "Direction", "CallStatus"])
def test_incoming_call_missing_field(name: str) -> None:
    form = parse_form(INCOMING_BODY)
    del form[name]
    with pytest.raises(ProtocolError, match=name):
        parse_incoming_call(form)
    form[name] = [""]
    with pytest.raises(ProtocolError, match=name):
        parse_incoming_call(form)


@pytest.mark.parametrize(
    ("wire", "status"),
    [
        ("queued", CallStatus.RINGING),
        ("initiated", CallStatus.RINGING),
        ("ringing", CallStatus.RINGING),
        ("in-progress", CallStatus.IN_PROGRESS),
        ("completed", CallStatus.COMPLETED),
        ("busy", CallStatus.BUSY),
        ("failed", CallStatus.FAILED),
        ("no-answer", CallStatus.NO_ANSWER),
        ("canceled", CallStatus.CANCELED),
    ],
)
def test_status_mapping(wire: str, status: CallStatus) -> None:
    assert parse_status_update(status_form(CallStatus=wire)).status is status


@pytest.mark.parametrize("wire", ["answered", "COMPLETED", "cancelled"])
def test_unknown_status(wire: str) -> None:
    with pytest.raises(ProtocolError, match="CallStatus"):
        parse_status_update(status_form(CallStatus=wire))
    with pytest.raises(ProtocolError, match="CallStatus"):
        parse_incoming_call({**parse_form(INCOMING_BODY), "CallStatus": [wire]})


def test_terminal_update() -> None:
    update = parse_status_update(
        status_form(
            SequenceNumber="3",
            CallDuration="42",
            Timestamp="Tue, 24 Nov 2026 06:45:10 +0000",
            CallbackSource="call-progress-events",
        )
    )
    ended = datetime(2026, 11, 24, 6, 45, 10, tzinfo=UTC).timestamp()
    assert update == StatusUpdate(
        carrier="twilio",
        call_id=CALL,
        status=CallStatus.COMPLETED,
        sequence=3,
        duration_seconds=42,
        ended_at=ended,
    )


def test_timestamp_with_offset_and_unknown_zone() -> None:
    moment = datetime(2026, 11, 24, 6, 45, 10, tzinfo=UTC).timestamp()
    assert parse_status_update(status_form(Timestamp="Tue, 24 Nov 2026 07:45:10 +0100")).ended_at == moment
    assert parse_status_update(status_form(Timestamp="Tue, 24 Nov 2026 06:45:10 -0000")).ended_at == moment


@pytest.mark.parametrize(
    "raw", ["", "yesterday", "Tue, 99 Nov 2026 06:45:10 +0000", "2026-11-24T06:45:10Z", "1, 2"]
)
def test_garbage_timestamp_is_none(raw: str) -> None:
    assert parse_status_update(status_form(Timestamp=raw)).ended_at is None


def test_no_timestamp_and_non_terminal_updates_have_no_end() -> None:
    assert parse_status_update(status_form()).ended_at is None
    update = parse_status_update(
        status_form(CallStatus="in-progress", SequenceNumber="1", Timestamp="Tue, 24 Nov 2026 06:45:10 +0000")
    )
    assert (update.status, update.sequence, update.ended_at, update.duration_seconds) == (
        CallStatus.IN_PROGRESS,
        1,
        None,
        None,
    )


@pytest.mark.parametrize("name", ["SequenceNumber", "CallDuration"])
@pytest.mark.parametrize("raw", ["-1", "1.5", "x", "٣", " 3", "9" * 30])
def test_bad_numbers(name: str, raw: str) -> None:
    with pytest.raises(ProtocolError, match=name):
        parse_status_update(status_form(**{name: raw}))


def test_status_update_requires_call_sid_and_status() -> None:
    for name in ("CallSid", "CallStatus"):
        form = status_form()
        del form[name]
        with pytest.raises(ProtocolError, match=name):
            parse_status_update(form)


def test_detail() -> None:
    assert parse_status_update(status_form(CallStatus="failed", SipResponseCode="487")).detail == "SIP 487"
    failed = status_form(CallStatus="failed", SipResponseCode="500", ErrorMessage="carrier said no")
    assert parse_status_update(failed).detail == "carrier said no"
    assert parse_status_update(status_form()).detail is None


@pytest.mark.parametrize("name", ["CallSid", "AccountSid"])
@pytest.mark.parametrize("suffix", ["|", "0", "\n", "g"])
def test_sids_must_have_their_format(name: str, suffix: str) -> None:
    form = parse_form(INCOMING_BODY)
    form[name] = [form[name][0][:-1] + suffix] if suffix != "0" else [form[name][0] + suffix]
    with pytest.raises(ProtocolError, match=name):
        parse_incoming_call(form)
    if name == "CallSid":
        with pytest.raises(ProtocolError, match=name):
            parse_status_update({**status_form(), "CallSid": form[name]})
