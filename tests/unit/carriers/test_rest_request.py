"""``RestRequest``: what a hang-up or transfer request shows when printed or logged."""

from __future__ import annotations

import base64

import pytest

from callkit.carriers.rest import (
    RestRequest,
    hangup_request,
    plivo_transfer_request,
    redirect_request,
)

TOKEN = "auth-token-0123456789abcdef"


@pytest.mark.parametrize(
    "request_",
    [
        hangup_request("twilio", account_id="AC123", auth_token=TOKEN, call_id="CA1"),
        hangup_request("plivo", account_id="MA123", auth_token=TOKEN, call_id="uuid-1"),
        redirect_request(
            account_id="AC123",
            auth_token=TOKEN,
            call_id="CA1",
            twiml="<Response><Dial>+15550100</Dial></Response>",
        ),
        plivo_transfer_request(
            auth_id="MA123", auth_token=TOKEN, call_uuid="uuid-1", aleg_url="https://x.example/t?token=abc"
        ),
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
