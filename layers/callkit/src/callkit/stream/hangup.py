"""The carrier's REST actions on a live stream call: hang up, transfer, speak and hang up.

``CarrierRest`` is what the call core's ending (``callkit.call.ending``) drives; the functions
below it are the requests themselves, the same shape for Twilio and Plivo.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Final
from urllib.parse import urlencode

from callkit.carriers.rest import (
    RestRequest,
    hangup_request,
    hangup_succeeded,
    plivo_transfer_request,
    redirect_request,
)
from callkit.errors import CallkitError, ServiceError

if TYPE_CHECKING:
    from callkit.interface import CallInterface
    from callkit.net.http1 import HTTPClient
    from callkit.switchboard import Credentials
    from callkit.telemetry import Telemetry

#: Override the carriers' API base URLs (a local fake in tests and the demo).
ENV_TWILIO_API_URL: Final = "CALLKIT_TWILIO_API_URL"
ENV_PLIVO_API_URL: Final = "CALLKIT_PLIVO_API_URL"


#: A carrier request that takes longer than this has failed: the caller is waiting in silence.
REST_TIMEOUT_SECONDS: Final = 8.0


class CarrierRest:
    """One stream call's REST actions (``callkit.call.ending.CarrierActions``), each bounded in time."""

    def __init__(
        self,
        client: HTTPClient,
        interface: CallInterface,
        call_id: str,
        credentials: Credentials,
        public_url: str,
    ) -> None:
        self.client, self.interface, self.call_id = client, interface, call_id
        self.credentials, self.public_url = credentials, public_url

    def _token(self) -> str:
        return self.credentials.auth_token(self.interface)

    async def hang_up(self) -> None:
        async with asyncio.timeout(REST_TIMEOUT_SECONDS):
            await hang_up(self.client, self.interface, self.call_id, auth_token=self._token())

    async def transfer(self, to: str) -> None:
        async with asyncio.timeout(REST_TIMEOUT_SECONDS):
            await transfer(
                self.client,
                self.interface,
                self.call_id,
                to,
                auth_token=self._token(),
                public_url=self.public_url,
            )

    async def say_and_hang_up(self, text: str) -> None:
        async with asyncio.timeout(REST_TIMEOUT_SECONDS):
            await apologise_and_hang_up(
                self.client,
                self.interface,
                self.call_id,
                text,
                auth_token=self._token(),
                public_url=self.public_url,
            )


def _base(interface: CallInterface) -> str | None:
    return os.environ.get(ENV_TWILIO_API_URL if interface.provider == "twilio" else ENV_PLIVO_API_URL) or None


async def hang_up(client: HTTPClient, interface: CallInterface, call_id: str, *, auth_token: str) -> None:
    """Hang up ``call_id``; a call already over counts as done. Raises ``ServiceError`` otherwise."""
    request = hangup_request(
        interface.provider,
        account_id=interface.credentials.account_id,
        auth_token=auth_token,
        call_id=call_id,
        base_url=_base(interface),
    )
    await _send(client, interface, request)


async def end_call(
    client: HTTPClient,
    interface: CallInterface,
    call_id: str,
    *,
    credentials: Credentials,
    telemetry: Telemetry,
) -> None:
    """A pipeline's last word: hang up through the REST API; if that fails, log it (the pipeline
    then closes the stream, which ends a ``<Connect><Stream>`` / ``keepCallAlive`` call too)."""
    try:
        await hang_up(client, interface, call_id, auth_token=credentials.auth_token(interface))
    except CallkitError:
        telemetry.error("hang-up failed; closing the stream instead", exc_info=True)


async def transfer(
    client: HTTPClient, interface: CallInterface, call_id: str, to: str, *, auth_token: str, public_url: str
) -> None:
    """Move the live call to a ``<Dial>`` of ``to`` (the stream ends with it).

    Twilio takes the TwiML inline; Plivo fetches the new XML from our webhook's transfer route.
    """
    from callkit.carriers import twilio
    from callkit.carriers._types import DialAnswer

    if interface.provider == "plivo":
        aleg_url = f"{public_url}{interface.transfer_path}?{urlencode({'to': to})}"
        plivo_request = plivo_transfer_request(
            auth_id=interface.credentials.account_id,
            auth_token=auth_token,
            call_uuid=call_id,
            aleg_url=aleg_url,
            base_url=_base(interface),
        )
        await _send(client, interface, plivo_request)
        return
    request = redirect_request(
        account_id=interface.credentials.account_id,
        auth_token=auth_token,
        call_id=call_id,
        twiml=twilio.render_answer(DialAnswer(to)),
        base_url=_base(interface),
    )
    await _send(client, interface, request)


async def _send(client: HTTPClient, interface: CallInterface, request: RestRequest) -> None:
    try:
        async with client.stream(
            request.method, request.url, request.headers, request.body or None
        ) as response:
            await response.aread()
            status = response.status
    except CallkitError as exc:
        raise ServiceError(f"{interface.provider} hang-up request failed", retryable=True) from exc
    if not hangup_succeeded(status):
        raise ServiceError(f"{interface.provider} hang-up answered HTTP {status}", retryable=status >= 500)


async def apologise_and_hang_up(
    client: HTTPClient,
    interface: CallInterface,
    call_id: str,
    apology: str,
    *,
    auth_token: str,
    public_url: str = "",
) -> None:
    """When our own voice is gone, the carrier speaks ``apology`` and hangs up.

    Twilio takes ``<Say>`` + ``<Hangup/>`` inline; Plivo fetches new XML from the webhook's transfer
    route, which answers a request without a number with the apology and a hang-up.
    """
    from callkit.carriers import twilio
    from callkit.carriers._types import ErrorAnswer

    if interface.provider == "plivo":
        if not public_url:
            await hang_up(client, interface, call_id, auth_token=auth_token)
            return
        plivo_request = plivo_transfer_request(
            auth_id=interface.credentials.account_id,
            auth_token=auth_token,
            call_uuid=call_id,
            aleg_url=f"{public_url}{interface.transfer_path}",
            base_url=_base(interface),
        )
        await _send(client, interface, plivo_request)
        return
    request = redirect_request(
        account_id=interface.credentials.account_id,
        auth_token=auth_token,
        call_id=call_id,
        twiml=twilio.render_answer(ErrorAnswer(apology, interface.language)),
        base_url=_base(interface),
    )
    await _send(client, interface, request)
