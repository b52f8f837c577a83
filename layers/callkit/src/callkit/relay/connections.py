"""Sending frames to a caller's WebSocket: API Gateway ``@connections`` (docs/aws.md §1.4).

The relay function answers ConversationRelay with ``PostToConnection`` through botocore's
``apigatewaymanagementapi`` client, whose endpoint is the API's own host and stage. ``GoneException``
(410) means the call's socket is closed: ``ConnectionGoneError``. ``AgentRuntime`` substitutes a
local stand-in that writes to the real WebSocket it holds.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Protocol, cast

from botocore.exceptions import BotoCoreError, ClientError

from callkit.errors import ConnectionGoneError, ServiceError

if TYPE_CHECKING:
    from mypy_boto3_apigatewaymanagementapi.client import ApiGatewayManagementApiClient

    from callkit.aws_clients import AwsClients


class Connections(Protocol):
    async def post(self, connection_id: str, data: bytes) -> None:
        """Send one text frame; raises ``ConnectionGoneError`` when the socket no longer exists."""
        ...

    async def close(self, connection_id: str) -> None:
        """Close the socket (the peer sees a normal close); a gone socket is not an error."""
        ...


def _gone(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "GoneException"


def _service_error(action: str, exc: ClientError | BotoCoreError) -> ServiceError:
    if isinstance(exc, BotoCoreError):  # no answer (timeouts, connection errors) after botocore's retries
        return ServiceError(f"@connections {action} failed: {type(exc).__name__}", retryable=True)
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    code = exc.response.get("Error", {}).get("Code", "")
    # 429 LimitExceededException (the client's buffer is full, a rate limit) and 5xx are worth retrying.
    return ServiceError(
        f"@connections {action} failed: {code or status}", retryable=status == 429 or status >= 500
    )


class ApiGatewayConnections:
    """``@connections`` of one WebSocket API stage, e.g. ``https://abc.execute-api.us-east-1.amazonaws.com/prod``.

    Requests run in a worker thread (botocore is blocking) so the event loop keeps reading the
    model's stream while a frame is on its way.
    """

    def __init__(self, client: ApiGatewayManagementApiClient) -> None:
        self._client = client

    @classmethod
    def for_endpoint(cls, endpoint_url: str, aws: AwsClients) -> ApiGatewayConnections:
        client = aws.client("apigatewaymanagementapi", endpoint_url=endpoint_url)
        return cls(cast("ApiGatewayManagementApiClient", client))

    async def post(self, connection_id: str, data: bytes) -> None:
        try:
            await asyncio.to_thread(self._client.post_to_connection, ConnectionId=connection_id, Data=data)
        except ClientError as exc:
            if _gone(exc):
                raise ConnectionGoneError("the caller's connection is gone") from exc
            raise _service_error("post", exc) from exc
        except BotoCoreError as exc:
            raise _service_error("post", exc) from exc

    async def close(self, connection_id: str) -> None:
        try:
            await asyncio.to_thread(self._client.delete_connection, ConnectionId=connection_id)
        except ClientError as exc:
            if not _gone(exc):
                raise _service_error("close", exc) from exc
        except BotoCoreError as exc:
            raise _service_error("close", exc) from exc
