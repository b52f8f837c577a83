"""Sending frames to a caller's WebSocket: API Gateway ``@connections`` (docs/aws.md §1.4).

The relay function answers ConversationRelay over ``POST {endpoint}/@connections/{id}``, signed
with SigV4 for ``execute-api``. 410 Gone means the call's socket is closed: ``ConnectionGoneError``.
``AgentRuntime`` substitutes a local stand-in that writes to the real WebSocket it holds.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Protocol
from urllib.parse import quote

from callkit.errors import ConnectionGoneError, ServiceError

if TYPE_CHECKING:
    from callkit.aws._transport import Response, Transport


class Connections(Protocol):
    async def post(self, connection_id: str, data: bytes) -> None:
        """Send one text frame; raises ``ConnectionGoneError`` when the socket no longer exists."""
        ...

    async def close(self, connection_id: str) -> None:
        """Close the socket (the peer sees a normal close); a gone socket is not an error."""
        ...


def _retryable(response: Response) -> bool:
    # 429: the client's buffer is full or a rate limit hit; 5xx: API Gateway's side.
    return response.status == 429 or response.status >= 500


class ApiGatewayConnections:
    """``@connections`` of one WebSocket API stage, e.g. ``https://abc.execute-api.us-east-1.amazonaws.com/prod``.

    Requests run in a worker thread (the transport is ``http.client``) so the event loop keeps
    reading the model's stream while a frame is on its way.
    """

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    @classmethod
    def for_endpoint(cls, endpoint_url: str, *, region: str, timeout: float = 3.0) -> ApiGatewayConnections:
        from callkit.aws._transport import Transport
        from callkit.aws.credentials import DefaultCredentialsProvider

        transport = Transport(
            endpoint_url,
            service="execute-api",
            region=region,
            credentials=DefaultCredentialsProvider(),
            timeout=timeout,
            max_attempts=3,
        )
        return cls(transport)

    async def post(self, connection_id: str, data: bytes) -> None:
        response = await asyncio.to_thread(
            self._transport.request,
            "POST",
            f"/@connections/{quote(connection_id, safe='')}",
            headers={"Content-Type": "application/octet-stream"},
            body=data,
            retryable=_retryable,
        )
        self._check(response, "post")

    async def close(self, connection_id: str) -> None:
        response = await asyncio.to_thread(
            self._transport.request,
            "DELETE",
            f"/@connections/{quote(connection_id, safe='')}",
            headers={},
            body=b"",
            retryable=_retryable,
        )
        if response.status != 410:
            self._check(response, "close")

    @staticmethod
    def _check(response: Response, action: str) -> None:
        if response.status == 410:
            raise ConnectionGoneError("the caller's connection is gone")
        if response.status >= 300:
            raise ServiceError(
                f"@connections {action} failed with HTTP {response.status}", retryable=_retryable(response)
            )
