"""Plain HTTP answers from the WebSocket fakes: ``process_request`` may answer a request itself.

A ``GET`` without ``Upgrade`` reaches ``process_request`` like a handshake does; the response it
returns is sent and the connection closed, so one port serves the REST routes a fake also needs.
"""

from __future__ import annotations

import json
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Response


def json_response(connection: ServerConnection, status: int, payload: dict[str, Any]) -> Response:
    response = connection.respond(status, json.dumps(payload))
    del response.headers["Content-Type"]
    response.headers["Content-Type"] = "application/json"
    return response
