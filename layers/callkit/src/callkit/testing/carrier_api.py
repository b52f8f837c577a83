"""A loopback stand-in for the carriers' REST APIs: records hang-ups and transfers (docs/protocols/twilio.md §6, docs/protocols/plivo.md §6).

Point ``CALLKIT_TWILIO_API_URL`` / ``CALLKIT_PLIVO_API_URL`` at ``base_url``. It checks HTTP Basic
auth against the account id and auth token it was given and answers like the real APIs: Twilio 200
with the Call JSON, Plivo 204; 404 for a call it was told is already over.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import socket
from dataclasses import dataclass
from typing import Any

_TWILIO = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Calls/(?P<call>[^/]+)\.json$")
_PLIVO = re.compile(r"^/v1/Account/(?P<account>[^/]+)/Call/(?P<call>[^/]+)/$")


@dataclass(frozen=True, slots=True)
class Hangup:
    carrier: str
    call_id: str
    method: str
    body: bytes


class FakeCarrierApi:
    def __init__(self, credentials: dict[str, str]) -> None:
        """``credentials``: account id (Twilio Account SID / Plivo Auth ID) → auth token."""
        self.credentials = credentials
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
        raw = b"" if status == 204 else json.dumps(payload).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": raw})
