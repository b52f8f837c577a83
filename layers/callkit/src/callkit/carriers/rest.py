"""What the carriers' REST requests share (docs/protocols/twilio.md §6, docs/protocols/plivo.md §6).

Each carrier builds its own requests in its ``rest`` module (same functions for Twilio and Plivo);
``callkit.call.carrier`` sends them. A call that is already over answers 404 on both APIs: that
is success for a hang-up.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Final, Literal

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


def basic_authorization(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def hangup_succeeded(status: int) -> bool:
    """2xx, or 404 for a call that is already over (treated as done)."""
    return 200 <= status < 300 or status == 404
