"""Hanging up a live call through the carrier's REST API (docs/protocols/twilio.md §6, docs/protocols/plivo.md §6), sans-I/O.

``hangup_request`` builds the request; ``callkit.stream.hangup`` sends it. A call that is already
over answers 404 on both APIs: that is success for a hang-up.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import quote, urlencode

TWILIO_API: Final = "https://api.twilio.com"
PLIVO_API: Final = "https://api.plivo.com"


#: Request headers whose values are credentials, never shown.
_SECRET_HEADERS: Final = frozenset({"authorization", "proxy-authorization"})


@dataclass(frozen=True, slots=True, repr=False)
class RestRequest:
    method: Literal["POST", "DELETE"]
    url: str
    headers: dict[str, str]
    body: bytes = b""

    def __repr__(self) -> str:
        # Authorization is the account's auth token (Basic); a body can hold TwiML with the number
        # a call is transferred to, or a callback URL: only its size is shown.
        headers = {k: "***" if k.lower() in _SECRET_HEADERS else v for k, v in self.headers.items()}
        return (
            f"RestRequest({self.method!r}, {self.url!r}, headers={headers!r}, body=<{len(self.body)} bytes>)"
        )


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def hangup_request(
    carrier: Literal["twilio", "plivo"],
    *,
    account_id: str,
    auth_token: str,
    call_id: str,
    base_url: str | None = None,
) -> RestRequest:
    if carrier == "twilio":
        url = f"{base_url or TWILIO_API}/2010-04-01/Accounts/{quote(account_id, safe='')}/Calls/{quote(call_id, safe='')}.json"
        return RestRequest(
            "POST",
            url,
            {
                "Authorization": _basic(account_id, auth_token),
                "Content-Type": "application/x-www-form-urlencoded",
            },
            urlencode({"Status": "completed"}).encode(),
        )
    url = f"{base_url or PLIVO_API}/v1/Account/{quote(account_id, safe='')}/Call/{quote(call_id, safe='')}/"
    return RestRequest("DELETE", url, {"Authorization": _basic(account_id, auth_token)})


def redirect_request(
    *, account_id: str, auth_token: str, call_id: str, twiml: str, base_url: str | None = None
) -> RestRequest:
    """Twilio: replace the live call's instructions with ``twiml`` (e.g. a ``<Dial>`` to transfer)."""
    url = f"{base_url or TWILIO_API}/2010-04-01/Accounts/{quote(account_id, safe='')}/Calls/{quote(call_id, safe='')}.json"
    return RestRequest(
        "POST",
        url,
        {
            "Authorization": _basic(account_id, auth_token),
            "Content-Type": "application/x-www-form-urlencoded",
        },
        urlencode({"Twiml": twiml}).encode(),
    )


def plivo_transfer_request(
    *, auth_id: str, auth_token: str, call_uuid: str, aleg_url: str, base_url: str | None = None
) -> RestRequest:
    """Plivo: make the caller's leg fetch new XML from ``aleg_url`` (docs/protocols/plivo.md §6, transfer)."""
    url = f"{base_url or PLIVO_API}/v1/Account/{quote(auth_id, safe='')}/Call/{quote(call_uuid, safe='')}/"
    body = json.dumps({"legs": "aleg", "aleg_url": aleg_url, "aleg_method": "POST"}).encode()
    return RestRequest(
        "POST", url, {"Authorization": _basic(auth_id, auth_token), "Content-Type": "application/json"}, body
    )


def hangup_succeeded(status: int) -> bool:
    """2xx, or 404 for a call that is already over (treated as done)."""
    return 200 <= status < 300 or status == 404
