"""What invokes the relay function, parsed at the boundary (docs/aws.md §1.2).

API Gateway WebSocket proxy events (``$connect``, ``$default``, ``$disconnect``) and the
EventBridge Scheduler event that ends a call at ``max_call_duration_seconds``.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

from callkit.errors import ProtocolError

#: The scheduler event's marker; its input is ``{"callkit": MAX_DURATION, "call_id": ...}``.
MAX_DURATION = "max-duration"


def relay_url_for(relay_url: str, call_id: str) -> str:
    """The ConversationRelay URL the webhook writes into the TwiML for this call (and Twilio signs).

    The call id rides in the query string: ``$connect`` carries nothing else that names the call.
    """
    return f"{relay_url}?call={quote(call_id, safe='')}"


@dataclass(frozen=True, slots=True)
class SocketEvent:
    """One WebSocket event. ``headers`` has lower-case names (API Gateway keeps the client's case)."""

    route: Literal["$connect", "$default", "$disconnect"]
    connection_id: str
    domain: str
    stage: str
    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    body: str = ""
    disconnect_code: int | None = None


@dataclass(frozen=True, slots=True)
class TimerEvent:
    """The call's maximum duration is reached."""

    call_id: str


RelayInvocation = SocketEvent | TimerEvent


def parse_event(event: Mapping[str, Any]) -> RelayInvocation:
    if event.get("callkit") == MAX_DURATION:
        call_id = event.get("call_id")
        if not isinstance(call_id, str) or not call_id:
            raise ProtocolError("max-duration event without a call_id")
        return TimerEvent(call_id)
    context = event.get("requestContext")
    if not isinstance(context, Mapping):
        raise ProtocolError("not an API Gateway WebSocket event: no requestContext")
    route = context.get("routeKey")
    connection_id = context.get("connectionId")
    if route not in ("$connect", "$default", "$disconnect") or not isinstance(connection_id, str):
        raise ProtocolError(f"unsupported WebSocket route {route!r}")
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    query = {str(k): str(v) for k, v in (event.get("queryStringParameters") or {}).items()}
    body = event.get("body") or ""
    if not isinstance(body, str):
        raise ProtocolError("WebSocket body is not text")
    if event.get("isBase64Encoded"):  # a binary frame: ConversationRelay only sends text
        try:
            body = base64.b64decode(body).decode("utf-8")
        except (ValueError, UnicodeDecodeError) as exc:
            raise ProtocolError("binary WebSocket frame is not UTF-8 text") from exc
    code = context.get("disconnectStatusCode")
    return SocketEvent(
        route=route,
        connection_id=connection_id,
        domain=str(context.get("domainName", "")),
        stage=str(context.get("stage", "")),
        headers=headers,
        query=query,
        body=body,
        disconnect_code=code if isinstance(code, int) else None,
    )
