"""A loopback stand-in for the carriers' REST APIs: records hang-ups and transfers (docs/protocols/twilio.md §6, docs/protocols/plivo.md §6).

Point ``CALLKIT_TWILIO_API_URL`` / ``CALLKIT_PLIVO_API_URL`` at ``base_url``. It checks HTTP Basic
auth against the account id and auth token it was given and answers like the real APIs: Twilio 200
with the Call JSON, Plivo 204; 404 for a call it was told is already over.

For ``callkit doctor --online`` it also answers the read-only GETs, with the same auth check: the
account (Twilio ``/2010-04-01/Accounts/{sid}.json``, Plivo ``/v1/Account/{auth_id}/``), a number
(Twilio ``IncomingPhoneNumbers.json?PhoneNumber=``, an empty list for one it does not have; Plivo
``/Number/{digits}/``, 404 for one it does not have) and the Plivo application a number links to,
whose ``answer_url`` is the URL ``numbers`` gives for it (``None``: a number with no application).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

_TWILIO = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Calls/(?P<call>[^/]+)\.json$")
_PLIVO = re.compile(r"^/v1/Account/(?P<account>[^/]+)/Call/(?P<call>[^/]+)/$")
_READS = (
    ("twilio account", re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)\.json$")),
    ("twilio numbers", re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/IncomingPhoneNumbers\.json$")),
    ("plivo account", re.compile(r"^/v1/Account/(?P<account>[^/]+)/$")),
    ("plivo number", re.compile(r"^/v1/Account/(?P<account>[^/]+)/Number/(?P<item>[0-9]+)/$")),
    ("plivo application", re.compile(r"^/v1/Account/(?P<account>[^/]+)/Application/(?P<item>[0-9]+)/$")),
)
#: Where the fake's Plivo application ids start (the n-th number links to this + n).
_FIRST_APP_ID = 29986316244302815


@dataclass(frozen=True, slots=True)
class Hangup:
    carrier: str
    call_id: str
    method: str
    body: bytes


class FakeCarrierApi:
    def __init__(self, credentials: dict[str, str], numbers: Mapping[str, str | None] | None = None) -> None:
        """``credentials``: account id (Twilio Account SID / Plivo Auth ID) → auth token.

        ``numbers``: the E.164 numbers every account has → the URL their calls go to (Twilio's voice
        URL, the Answer URL of the Plivo application the number links to; ``None``: no application).
        """
        self.credentials = credentials
        self.numbers = dict(numbers or {})
        self.hangups: list[Hangup] = []
        self.gone: set[str] = set()
        self._socket: socket.socket | None = None
        self._server: Any = None
        self._task: asyncio.Task[None] | None = None

    @property
    def base_url(self) -> str:
        assert self._socket is not None
        host, port = self._socket.getsockname()[:2]
        return f"http://{host}:{port}"

    async def __aenter__(self) -> FakeCarrierApi:
        import uvicorn

        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self._server = uvicorn.Server(
            uvicorn.Config(self._app, log_level="warning", lifespan="off", interface="asgi3")
        )
        self._task = asyncio.create_task(self._server.serve(sockets=[self._socket]))
        while not self._server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._socket is not None:
            self._socket.close()

    def _authorized(self, headers: dict[str, str], account: str) -> bool:
        token = self.credentials.get(account)
        expected = "Basic " + base64.b64encode(f"{account}:{token}".encode()).decode()
        return token is not None and headers.get("authorization") == expected

    async def _app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        path, method = scope["path"], scope["method"]
        if method == "GET":
            status, payload = self._read(path, scope["query_string"].decode(), headers)
            await self._json(send, status, payload)
            return
        twilio, plivo = _TWILIO.match(path), _PLIVO.match(path)
        # Twilio: POST (Status=completed, or Twiml= to redirect); Plivo: DELETE (hang up), POST (transfer).
        match = twilio if (twilio and method == "POST") else plivo if method in ("DELETE", "POST") else None
        status, payload = 404, {"code": 20404, "message": "not found"}
        if match is not None:
            account, call_id = match["account"], match["call"]
            if not self._authorized(headers, account):
                status, payload = 401, {"message": "authentication failed"}
            elif call_id in self.gone:
                status, payload = 404, {"code": 20404, "message": "call is over"}
            else:
                self.hangups.append(Hangup("twilio" if twilio else "plivo", call_id, method, body))
                self.gone.add(call_id)
                if twilio:
                    status, payload = 200, {"sid": call_id, "status": "completed"}
                else:  # Plivo answers a hang-up with 204 and a transfer with 202
                    status, payload = (
                        (204, {}) if method == "DELETE" else (202, {"message": "call transferred"})
                    )
        await self._json(send, status, payload)

    @staticmethod
    async def _json(send: Any, status: int, payload: dict[str, Any]) -> None:
        raw = b"" if status == 204 else json.dumps(payload).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": raw})

    def _read(self, path: str, query: str, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """The read-only GETs of ``callkit doctor --online``."""
        found = next(((kind, m) for kind, pattern in _READS if (m := pattern.match(path))), None)
        if found is None:
            return 404, {"code": 20404, "message": "not found"}
        kind, match = found
        account = match["account"]
        if not self._authorized(headers, account):
            return 401, {"code": 20003, "message": "Authenticate", "status": 401}
        numbers = list(self.numbers)
        if kind == "twilio account":
            return 200, {"sid": account, "friendly_name": "callkit fake", "status": "active", "type": "Full"}
        if kind == "twilio numbers":
            wanted = parse_qs(query).get("PhoneNumber", [""])[0]
            listed = [
                {
                    "sid": f"PN{index:032x}",
                    "account_sid": account,
                    "phone_number": number,
                    "voice_url": self.numbers[number],
                    "voice_method": "POST",
                    "voice_application_sid": None,
                }
                for index, number in enumerate(numbers)
                if number == wanted or not wanted
            ]
            return 200, {"incoming_phone_numbers": listed, "page": 0, "page_size": 50}
        if kind == "plivo account":
            return 200, {"auth_id": account, "account_type": "standard", "name": "callkit fake"}
        item = match["item"]
        if kind == "plivo number":
            index = next((i for i, n in enumerate(numbers) if n == f"+{item}"), None)
            if index is None:
                return 404, {"api_id": "fake", "error": "not found"}
            linked = self.numbers[numbers[index]] is not None
            app = f"/v1/Account/{account}/Application/{_FIRST_APP_ID + index}/" if linked else None
            return 200, {"number": item, "application": app, "voice_enabled": True, "number_type": "local"}
        index = int(item) - _FIRST_APP_ID
        if not 0 <= index < len(numbers) or self.numbers[numbers[index]] is None:
            return 404, {"api_id": "fake", "error": "not found"}
        return 200, {
            "app_id": item,
            "app_name": "callkit fake",
            "answer_url": self.numbers[numbers[index]],
            "answer_method": "POST",
        }
