"""``RestRequest``: what a hang-up or transfer request shows when printed or logged."""

from __future__ import annotations

import base64

import pytest

from callkit.carriers import plivo, twilio
from callkit.carriers.rest import RestRequest

TOKEN = "auth-token-0123456789abcdef"
TWILIO = {"account_id": "AC123", "auth_token": TOKEN, "call_id": "CA1"}
PLIVO = {"account_id": "MA123", "auth_token": TOKEN, "call_id": "uuid-1"}
ROUTE = "https://x.example/t?token=abc"


@pytest.mark.parametrize(
    "request_",
    [
        twilio.hangup_request(**TWILIO),
        plivo.hangup_request(**PLIVO),
        twilio.transfer_request(**TWILIO, to="+15550100"),
        plivo.transfer_request(**PLIVO, to="+15550100", transfer_url=ROUTE),
        twilio.say_and_hangup_request(**TWILIO, text="Sorry.", language="en-US"),
        plivo.say_and_hangup_request(**PLIVO, text="Sorry.", language="en-US", transfer_url=ROUTE),
    ],
)
def test_repr_hides_credentials_and_body(request_: RestRequest) -> None:
    text = repr(request_)
    basic = request_.headers["Authorization"]
    assert TOKEN not in text
    assert basic not in text
    assert basic.split(" ", 1)[1] not in text
    assert base64.b64decode(basic.split(" ", 1)[1]).decode().endswith(TOKEN)  # the header itself is intact
    assert "'Authorization': '***'" in text
    assert "+15550100" not in text
    assert "token=abc" not in text
    assert f"body=<{len(request_.body)} bytes>" in text
    assert request_.url in text


def test_both_carriers_build_the_same_actions() -> None:
    """One shape: a hang-up, a transfer and our words spoken by the carrier, for either carrier."""
    assert twilio.hangup_request(**TWILIO).body == b"Status=completed"
    assert plivo.hangup_request(**PLIVO).method == "DELETE"
    assert plivo.hangup_request(**PLIVO).url == "https://api.plivo.com/v1/Account/MA123/Call/uuid-1/"
    dial = twilio.transfer_request(**TWILIO, to="+15550100", base_url="http://127.0.0.1:9")
    assert dial.url == "http://127.0.0.1:9/2010-04-01/Accounts/AC123/Calls/CA1.json"
    assert b"%3CDial" in dial.body and b"%2B15550100" in dial.body
    fetch = plivo.transfer_request(**PLIVO, to="+15550100", transfer_url="https://x.example/t")
    assert b'"aleg_url": "https://x.example/t?to=%2B15550100"' in fetch.body
    say = twilio.say_and_hangup_request(**TWILIO, text="Sorry & goodbye.", language="es-ES")
    assert b"%3CSay" in say.body and b"es-ES" in say.body and b"Sorry+%26amp%3B+goodbye." in say.body
