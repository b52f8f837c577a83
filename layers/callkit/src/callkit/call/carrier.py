"""The carrier's REST actions on a live stream call: hang up, transfer, speak and hang up.

``CarrierRest`` is what the call core's ending drives (``callkit.call.ending.CarrierActions``). The
requests come from the carrier's own ``rest`` module, the same functions for Twilio and Plivo
(``CarrierFormat``); the API base URLs from ``Settings``. Each action is bounded in time: the
caller is waiting in silence while it runs.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Final

from callkit.carriers import carrier_format
from callkit.carriers.rest import RestRequest, hangup_succeeded
from callkit.errors import CallkitError, ServiceError

if TYPE_CHECKING:
    from callkit.interface import CallInterface
    from callkit.net.http1 import HTTPClient
    from callkit.settings import Settings
    from callkit.switchboard import Credentials

__all__ = ["REST_TIMEOUT_SECONDS", "CarrierRest"]

#: A carrier request that takes longer than this has failed.
REST_TIMEOUT_SECONDS: Final = 8.0


class CarrierRest:
    """One stream call's REST actions, for its interface's carrier."""

    def __init__(
        self,
        client: HTTPClient,
        interface: CallInterface,
        call_id: str,
        credentials: Credentials,
        settings: Settings,
    ) -> None:
        self.client, self.interface, self.call_id = client, interface, call_id
        self.credentials = credentials
        self.format = carrier_format(interface.provider)
        self.base_url = settings.twilio_api_url if interface.provider == "twilio" else settings.plivo_api_url
        # Plivo fetches a transfer's <Dial>, or the apology, from the webhook's transfer route.
        self.transfer_url = f"{settings.public_url}{interface.transfer_path}"

    def _account(self) -> dict[str, str]:
        return {
            "account_id": self.interface.credentials.account_id,
            "auth_token": self.credentials.auth_token(self.interface),
            "call_id": self.call_id,
            "base_url": self.base_url,
        }

    async def hang_up(self) -> None:
        """End the call; a call already over counts as done."""
        await self._send(self.format.hangup_request(**self._account()), "hang-up")

    async def transfer(self, to: str) -> None:
        """Move the call to a ``<Dial>`` of ``to`` (the media stream ends with it)."""
        request = self.format.transfer_request(**self._account(), to=to, transfer_url=self.transfer_url)
        await self._send(request, "transfer")

    async def say_and_hang_up(self, text: str) -> None:
        """The carrier speaks ``text`` and hangs up: our words when our own voice is gone."""
        request = self.format.say_and_hangup_request(
            **self._account(), text=text, language=self.interface.language, transfer_url=self.transfer_url
        )
        await self._send(request, "say and hang up")

    async def _send(self, request: RestRequest, what: str) -> None:
        provider = self.interface.provider
        try:
            async with asyncio.timeout(REST_TIMEOUT_SECONDS):
                async with self.client.stream(
                    request.method, request.url, request.headers, request.body or None
                ) as response:
                    await response.aread()
                    status = response.status
        except (CallkitError, TimeoutError) as exc:
            raise ServiceError(f"{provider} {what} request failed", retryable=True) from exc
        if not hangup_succeeded(status):
            raise ServiceError(f"{provider} {what} answered HTTP {status}", retryable=status >= 500)
