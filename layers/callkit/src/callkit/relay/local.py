"""A local stand-in for the API Gateway WebSocket API, for ``AgentRuntime``.

It accepts ConversationRelay's WebSocket itself and drives the same ``RelayHandler`` with the
events API Gateway would send: ``$connect`` with the upgrade's headers and query (refused → HTTP 403
on the upgrade), one ``$default`` per text frame, run concurrently as separate Lambda invocations
would be (so an ``interrupt`` lands while a turn is still streaming), and ``$disconnect``.
``LocalConnections`` plays ``@connections``: it writes to the socket it holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from typing import TYPE_CHECKING, Any

from callkit.errors import ConnectionGoneError

if TYPE_CHECKING:
    from starlette.websockets import WebSocket

    from callkit.relay.handler import RelayHandler


class LocalConnections:
    """``@connections`` over the sockets this process holds."""

    def __init__(self) -> None:
        self._sockets: dict[str, WebSocket] = {}

    def register(self, connection_id: str, socket: WebSocket) -> None:
        self._sockets[connection_id] = socket

    def forget(self, connection_id: str) -> None:
        self._sockets.pop(connection_id, None)

    async def post(self, connection_id: str, data: bytes) -> None:
        socket = self._sockets.get(connection_id)
        if socket is None:
            raise ConnectionGoneError("the caller's connection is gone")
        try:
            await socket.send_text(data.decode("utf-8"))
        except (RuntimeError, OSError) as exc:  # Starlette raises RuntimeError after a close
            self.forget(connection_id)
            raise ConnectionGoneError("the caller's connection is gone") from exc

    async def close(self, connection_id: str) -> None:
        socket = self._sockets.pop(connection_id, None)
        if socket is not None:
            with contextlib.suppress(RuntimeError, OSError):
                await socket.close()


def _event(route: str, connection_id: str, host: str, **extra: Any) -> dict[str, Any]:
    context = {
        "routeKey": route,
        "eventType": {"$connect": "CONNECT", "$disconnect": "DISCONNECT"}.get(route, "MESSAGE"),
        "connectionId": connection_id,
        "domainName": host,
        "stage": "local",
        "requestTimeEpoch": int(time.time() * 1000),
    }
    context |= extra.pop("context", {})
    return {"requestContext": context, "isBase64Encoded": False, **extra}


async def serve_relay_socket(socket: WebSocket, handler: RelayHandler, connections: LocalConnections) -> None:
    """Run one ConversationRelay connection through ``handler``, as API Gateway would."""
    connection_id = secrets.token_urlsafe(12)
    host = socket.headers.get("host", "localhost")
    connect = _event(
        "$connect",
        connection_id,
        host,
        headers=dict(socket.headers.items()),
        queryStringParameters=dict(socket.query_params.items()) or None,
    )
    if (await handler.handle(connect)).get("statusCode") != 200:
        await socket.close()  # before accept: the client sees HTTP 403 on the upgrade
        return
    await socket.accept()
    connections.register(connection_id, socket)
    tasks: set[asyncio.Task[dict[str, Any]]] = set()
    code = 1000
    try:
        while True:
            message = await socket.receive()
            if message["type"] == "websocket.disconnect":
                code = int(message.get("code") or 1005)
                break
            text = message.get("text")
            if text is None:  # binary frame: API Gateway would base64 it; ConversationRelay sends none
                continue
            task = asyncio.create_task(handler.handle(_event("$default", connection_id, host, body=text)))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    finally:
        connections.forget(connection_id)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await handler.handle(
            _event(
                "$disconnect",
                connection_id,
                host,
                context={"disconnectStatusCode": code, "disconnectReason": ""},
            )
        )
