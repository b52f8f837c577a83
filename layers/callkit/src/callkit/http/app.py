"""FastAPI glue around ``Switchboard`` (see ``callkit.http``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request, Response
from starlette.concurrency import run_in_threadpool

from callkit.carriers._types import MAX_WEBHOOK_BODY_BYTES, SignedRequest
from callkit.errors import ConfigurationError
from callkit.settings import Settings
from callkit.switchboard import Switchboard


def public_request_url(scope: Mapping[str, Any], settings: Settings) -> str:
    """The URL the carrier requested and signed (docs/protocols/twilio.md §2 pitfalls, docs/aws.md §2.2).

    With ``settings.public_url`` it is that base plus the route path and raw query (Mangum has
    already stripped the stage/base path from ``scope["path"]``). Without it, on Lambda, it is
    rebuilt from the API Gateway event: ``https://{domainName}{rawPath}?{rawQueryString}``.
    The ``Host`` header is never used: a client chooses it.
    """
    query = bytes(scope.get("query_string", b"")).decode("latin-1")
    suffix = f"?{query}" if query else ""
    if settings.public_url:
        return f"{settings.public_url}{scope['path']}{suffix}"
    event = scope.get("aws.event")
    if isinstance(event, Mapping) and "rawPath" in event:
        domain = event["requestContext"]["domainName"]
        raw_query = event.get("rawQueryString") or ""
        return f"https://{domain}{event['rawPath']}" + (f"?{raw_query}" if raw_query else "")
    raise ConfigurationError("the public URL is not configured (CALLKIT_PUBLIC_URL)")


def _endpoint(switchboard: Switchboard, path: str, offload: bool) -> Callable[[Request], Awaitable[Response]]:
    async def webhook(request: Request) -> Response:
        body = b""
        async for chunk in request.stream():  # stop reading early instead of buffering a huge body
            body += chunk
            if len(body) > MAX_WEBHOOK_BODY_BYTES:
                return Response("request too large", status_code=413, media_type="text/plain")
        try:
            url = public_request_url(request.scope, switchboard.settings)
        except ConfigurationError:
            switchboard.telemetry.error("public URL not configured")
            return Response("server misconfigured", status_code=500, media_type="text/plain")
        signed = SignedRequest(
            method=request.method, url=url, headers=dict(request.headers.items()), body=body
        )
        if offload:  # the store is synchronous: keep it off a loop that other requests share
            reply = await run_in_threadpool(switchboard.handle, path, signed)
        else:
            reply = switchboard.handle(path, signed)
        return Response(reply.body, status_code=reply.status, media_type=reply.content_type)

    return webhook


def create_webhook_app(switchboard: Switchboard, *, offload_blocking: bool = True) -> FastAPI:
    """An app with GET and POST routes at every webhook and status path of the switchboard.

    ``offload_blocking=False`` runs the (synchronous) switchboard on the event loop itself: right
    on Lambda, where one invocation is one request and a thread hop only adds latency.
    """
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, title="callkit webhook")
    for path in switchboard.paths:
        endpoint = _endpoint(switchboard, path, offload_blocking)
        app.add_api_route(path, endpoint, methods=["GET", "POST"], include_in_schema=False)
    return app
