"""Plivo Answer URL and Hangup URL parameters (docs/protocols/plivo.md §1–2)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callkit.carriers._types import IncomingCall, StatusUpdate, parse_form
from callkit.carriers.plivo import NAME, parse_incoming_call, parse_status_update
from callkit.errors import CallkitError, ProtocolError
from callkit.lifecycle import CallStatus

CALL_UUID = "9f6c1c8e-2b1a-4c3e-9d2e-1f0a7b6c5d4e"
# docs/protocols/plivo.md §1, the example body.
ANSWER_BODY = f"CallUUID={CALL_UUID}&From=14155550100&To=14155550199&Direction=inbound&CallStatus=ringing"


def test_incoming_call_from_the_documented_body() -> None:
    assert parse_incoming_call(parse_form(ANSWER_BODY)) == IncomingCall(
        carrier="plivo",
        call_id=CALL_UUID,
        account_id="",
        from_number="+14155550100",
        to_number="+14155550199",
        direction="inbound",
        status="ringing",
        forwarded_from=None,
    )
    assert NAME == "plivo"


def test_numbers_that_are_not_digits_are_kept() -> None:
    form = parse_form(
        ANSWER_BODY.replace("From=14155550100", "From=sip:alice@phone.plivo.com").replace(
            "To=14155550199", "To=%2B14155550199"
        )
        + "&ForwardedFrom=14155550111"
    )
    call = parse_incoming_call(form)
    assert call.from_number == "sip:alice@phone.plivo.com"
    assert call.to_number == "+14155550199"
    assert call.forwarded_from == "+14155550111"


def test_missing_call_uuid() -> None:
    for body in (ANSWER_BODY.replace(f"CallUUID={CALL_UUID}", ""), ANSWER_BODY.replace(CALL_UUID, "")):
        with pytest.raises(ProtocolError):
            parse_incoming_call(parse_form(body))
        with pytest.raises(ProtocolError):
            parse_status_update(parse_form(body))


@pytest.mark.parametrize(
    ("wire", "status"),
    [
        ("ringing", CallStatus.RINGING),
        ("in-progress", CallStatus.IN_PROGRESS),
        ("completed", CallStatus.COMPLETED),
        ("busy", CallStatus.BUSY),
        ("failed", CallStatus.FAILED),
        ("timeout", CallStatus.NO_ANSWER),
        ("no-answer", CallStatus.NO_ANSWER),
        ("cancel", CallStatus.CANCELED),
        ("canceled", CallStatus.CANCELED),
    ],
)
def test_status_mapping(wire: str, status: CallStatus) -> None:
    form = parse_form(ANSWER_BODY.replace("CallStatus=ringing", f"CallStatus={wire}"))
    assert parse_status_update(form).status is status
    assert parse_incoming_call(form).status == status.value


@pytest.mark.parametrize(
    "body", [ANSWER_BODY.replace("ringing", "queued"), ANSWER_BODY.replace("&CallStatus=ringing", "")]
)
def test_unknown_status(body: str) -> None:
    with pytest.raises(ProtocolError):
        parse_status_update(parse_form(body))
    with pytest.raises(ProtocolError):
        parse_incoming_call(parse_form(body))


def test_hangup_callback() -> None:
    body = (
        f"CallUUID={CALL_UUID}&From=14155550100&To=14155550199&Direction=inbound&CallStatus=completed"
        "&HangupCause=NORMAL_CLEARING&Duration=42&BillDuration=60"
        "&StartTime=2024-06-10+12%3A00%3A00&EndTime=2024-06-10+12%3A00%3A42"
    )
    assert parse_status_update(parse_form(body)) == StatusUpdate(
        carrier="plivo",
        call_id=CALL_UUID,
        status=CallStatus.COMPLETED,
        sequence=None,
        duration_seconds=42,
        ended_at=1718020842.0,
        detail="NORMAL_CLEARING",
    )


@pytest.mark.parametrize(
    "extra",
    [
        "",
        "&Duration=&EndTime=",
        "&Duration=abc&EndTime=yesterday",
        "&Duration=-1&EndTime=2024-13-40+99%3A00%3A00",
    ],
)
def test_hangup_callback_tolerates_absent_or_garbled_times(extra: str) -> None:
    update = parse_status_update(parse_form(f"CallUUID={CALL_UUID}&CallStatus=busy{extra}"))
    assert update.status is CallStatus.BUSY
    assert update.duration_seconds is None
    assert update.ended_at is None
    assert update.detail is None


@given(
    st.dictionaries(
        st.sampled_from(["CallUUID", "CallStatus", "From", "To", "Duration", "EndTime", "HangupCause", "x"]),
        st.lists(st.text(), max_size=2),
    )
)
def test_arbitrary_forms_raise_only_callkit_errors(form: dict[str, list[str]]) -> None:
    for parse in (parse_incoming_call, parse_status_update):
        with contextlib.suppress(CallkitError):
            parse(form)


@pytest.mark.parametrize(
    "call_uuid", ["abc-123", CALL_UUID + "|realtime", CALL_UUID.replace("-", ""), CALL_UUID[:-1] + "g"]
)
def test_call_uuid_must_be_a_uuid(call_uuid: str) -> None:
    body = ANSWER_BODY.replace(CALL_UUID, call_uuid.replace("|", "%7C"))
    with pytest.raises(ProtocolError, match="CallUUID"):
        parse_incoming_call(parse_form(body))
    with pytest.raises(ProtocolError, match="CallUUID"):
        parse_status_update(parse_form(body.replace("ringing", "completed")))


@pytest.mark.parametrize("name", ["From", "To"])
def test_answer_url_needs_from_and_to(name: str) -> None:
    form = parse_form(ANSWER_BODY)
    del form[name]
    with pytest.raises(ProtocolError, match=name):
        parse_incoming_call(form)
    form[name] = [""]
    with pytest.raises(ProtocolError, match=name):
        parse_incoming_call(form)
