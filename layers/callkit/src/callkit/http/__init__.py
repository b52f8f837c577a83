"""The webhook routes as a FastAPI app, built by a factory from a ``Switchboard``.

The Lambda function wraps it with Mangum; ``AgentRuntime`` serves it with uvicorn. Either way the
work happens in ``Switchboard.handle``; this module only turns ASGI requests into ``SignedRequest``
and ``Reply`` into responses.
"""

from callkit.http.app import create_webhook_app, public_request_url

__all__ = ["create_webhook_app", "public_request_url"]
