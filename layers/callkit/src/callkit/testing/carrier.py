"""A simulated carrier that places calls like Twilio and like Plivo.

It builds the same form bodies the carriers send (docs/protocols/twilio.md §1, docs/protocols/plivo.md §1–2), signs them with the
carrier's own algorithm over the public URL, and sends them over real HTTP (httpx). Requests are
plain values first (``CarrierRequest``), so tests can also replay them as API Gateway events
(``callkit.testing.aws``), tamper with them, or send them twice like a carrier retry.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
import uuid
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlencode, urlsplit

from callkit.carriers import carrier_format
from callkit.testing.answers import ParsedAnswer, parse_answer

if TYPE_CHECKING:
    import httpx

Provider = Literal["twilio", "plivo"]

#: The auth tokens and account ids the fakes, the demo and ``events/`` are signed with.
TEST_TWILIO_ACCOUNT_SID = "AC" + "0" * 31 + "1"
TEST_TWILIO_AUTH_TOKEN = "callkit-test-twilio-auth-token"
TEST_PLIVO_AUTH_ID = "MATESTAUTHID00000001"
TEST_PLIVO_AUTH_TOKEN = "callkit-test-plivo-auth-token"


@dataclass(frozen=True, slots=True)
class CarrierRequest:
    """One HTTP request as the carrier would send it (already signed)."""

    method: Literal["GET", "POST"]
    url: str
    headers: dict[str, str]
    form: dict[str, list[str]]
    body: bytes = b""

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    def tampered(self, name: str, value: str) -> CarrierRequest:
        """The same request with one parameter changed and the signature left as it was (a forgery)."""
        form = {**self.form, name: [value]}
        body = (
            urlencode([(k, v) for k, vs in form.items() for v in vs]).encode()
            if self.method == "POST"
            else b""
        )
        return dataclasses.replace(self, form=form, body=body)

    def unsigned(self) -> CarrierRequest:
        """The same request with every signature header removed."""
        headers = {k: v for k, v in self.headers.items() if "signature" not in k.lower()}
        return dataclasses.replace(self, headers=headers)


@dataclass(frozen=True, slots=True)
class CarrierResponse:
    status: int
    content_type: str
    body: str
    answer: ParsedAnswer | None = field(default=None)


def new_call_id(provider: Provider) -> str:
    return "CA" + secrets.token_hex(16) if provider == "twilio" else str(uuid.uuid4())


class SimulatedCarrier:
    """Places calls and sends status callbacks to ``base_url`` like ``provider`` does."""

    def __init__(
        self,
        provider: Provider,
        *,
        base_url: str,
        auth_token: str | None = None,
        account_id: str | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self.auth_token = auth_token or (
            TEST_TWILIO_AUTH_TOKEN if provider == "twilio" else TEST_PLIVO_AUTH_TOKEN
        )
        self.account_id = account_id or (
            TEST_TWILIO_ACCOUNT_SID if provider == "twilio" else TEST_PLIVO_AUTH_ID
        )
        self._client = client
        self._format = carrier_format(provider)
        self._sequence: dict[str, int] = {}

    # --- building requests ---------------------------------------------------------------------

    def sign(
        self,
        method: Literal["GET", "POST"],
        path: str,
        params: list[tuple[str, str]],
        *,
        nonce: str | None = None,
    ) -> CarrierRequest:
        """Sign ``params`` for ``path`` like the carrier; ``nonce`` fixes Plivo's nonce (reproducible events)."""
        form: dict[str, list[str]] = {}
        for name, value in params:
            form.setdefault(name, []).append(value)
        if method == "POST":
            url, body = f"{self.base_url}{path}", urlencode(params).encode()
            signed_form: dict[str, list[str]] | None = form
            headers = {"Content-Type": "application/x-www-form-urlencoded"}
        else:
            url, body, signed_form, headers = f"{self.base_url}{path}?{urlencode(params)}", b"", None, {}
        if self.provider == "plivo":
            from callkit.carriers import plivo

            headers |= plivo.signature_headers(self.auth_token, method, url, signed_form, body, nonce=nonce)
        else:
            headers |= self._format.signature_headers(self.auth_token, method, url, signed_form, body)
        headers["User-Agent"] = "TwilioProxy/1.1" if self.provider == "twilio" else "PlivoHTTP/1.0"
        return CarrierRequest(method=method, url=url, headers=headers, form=form, body=body)

    def incoming_call(
        self,
        *,
        to: str,
        from_: str = "+14155550100",
        call_id: str | None = None,
        path: str = "/call/incoming",
        method: Literal["GET", "POST"] = "POST",
    ) -> CarrierRequest:
        call_id = call_id or new_call_id(self.provider)
        if self.provider == "twilio":
            params = [
                ("AccountSid", self.account_id),
                ("ApiVersion", "2010-04-01"),
                ("CallSid", call_id),
                ("CallStatus", "ringing"),
                ("Called", to),
                ("Caller", from_),
                ("Direction", "inbound"),
                ("From", from_),
                ("FromCountry", "US"),
                ("To", to),
                ("ToCountry", "US"),
            ]
        else:  # Plivo sends numbers without the '+' (docs/protocols/plivo.md §1)
            params = [
                ("CallUUID", call_id),
                ("CallStatus", "ringing"),
                ("Direction", "inbound"),
                ("Event", "StartApp"),
                ("From", from_.lstrip("+")),
                ("To", to.lstrip("+")),
            ]
        return self.sign(method, path, params)

    def status_callback(
        self,
        call_id: str,
        status: str = "completed",
        *,
        duration_seconds: int = 42,
        path: str = "/call/incoming/status",
        sequence: int | None = None,
    ) -> CarrierRequest:
        if self.provider == "twilio":
            if sequence is None:
                sequence = self._sequence.get(call_id, -1) + 1
            self._sequence[call_id] = max(sequence, self._sequence.get(call_id, -1))
            params = [
                ("AccountSid", self.account_id),
                ("ApiVersion", "2010-04-01"),
                ("CallSid", call_id),
                ("CallStatus", status),
                ("CallbackSource", "call-progress-events"),
                ("Direction", "inbound"),
                ("SequenceNumber", str(sequence)),
                ("Timestamp", formatdate(time.time(), usegmt=True)),
            ]
            if status == "completed":
                params.append(("CallDuration", str(duration_seconds)))
        else:
            end = time.gmtime()
            params = [
                ("CallUUID", call_id),
                ("CallStatus", status),
                ("Direction", "inbound"),
                ("Duration", str(duration_seconds)),
                ("BillDuration", str(duration_seconds)),
                ("EndTime", time.strftime("%Y-%m-%d %H:%M:%S", end)),
                ("Event", "Hangup"),
                ("HangupCause", "NORMAL_CLEARING"),
            ]
        return self.sign("POST", path, params)

    def relay_ended(
        self,
        action_url: str,
        call_id: str,
        *,
        session_id: str,
        session_status: str = "ended",
        handoff_data: str | None = None,
        duration_seconds: int = 42,
    ) -> CarrierRequest:
        """Twilio's ``<Connect action>`` request after a ConversationRelay session (docs/protocols/twilio.md §3)."""
        if not action_url.startswith(self.base_url):
            raise ValueError("the action URL is not on this carrier's base URL")
        params = [
            ("AccountSid", self.account_id),
            ("ApiVersion", "2010-04-01"),
            ("CallSid", call_id),
            ("CallStatus", "in-progress"),
            ("Direction", "inbound"),
            ("SessionDuration", str(duration_seconds)),
            ("SessionId", session_id),
            ("SessionStatus", session_status),
        ]
        if handoff_data is not None:
            params.append(("HandoffData", handoff_data))
        return self.sign("POST", action_url[len(self.base_url) :], params)

    # --- sending -------------------------------------------------------------------------------

    async def send(self, request: CarrierRequest) -> CarrierResponse:
        if self._client is None:
            raise RuntimeError("SimulatedCarrier needs client=httpx.AsyncClient() to send requests")
        response = await self._client.request(
            request.method, request.url, headers=request.headers, content=request.body or None
        )
        content_type = response.headers.get("content-type", "")
        answer = (
            parse_answer(response.text) if response.status_code == 200 and "xml" in content_type else None
        )
        return CarrierResponse(response.status_code, content_type, response.text, answer)

    async def place_call(self, *, to: str, **kwargs: str) -> CarrierResponse:
        return await self.send(self.incoming_call(to=to, **kwargs))  # type: ignore[arg-type]
