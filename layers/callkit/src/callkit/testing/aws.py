"""API Gateway HTTP API (payload format 2.0) events, shaped like the real ones (docs/aws.md §2.1).

Form bodies arrive base64-encoded with ``isBase64Encoded: true`` and header names lower-cased, as
API Gateway delivers them; the functional tests and ``events/*.json`` use these.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import parse_qs, urlsplit

from callkit.testing.carrier import CarrierRequest


def http_api_event(
    request: CarrierRequest,
    *,
    stage: str = "$default",
    request_id: str = "JkL1mN2oPq3=",
    time_epoch_ms: int = 1767261600000,
    source_ip: str = "54.172.60.1",
) -> dict[str, Any]:
    parts = urlsplit(request.url)
    route_path = parts.path
    raw_path = route_path if stage == "$default" else f"/{stage}{route_path}"
    headers = {k.lower(): v for k, v in request.headers.items()}
    headers |= {
        "host": parts.netloc,
        "x-forwarded-proto": "https",
        "x-forwarded-port": "443",
        "x-forwarded-for": source_ip,
        "x-amzn-trace-id": "Root=1-6776a8e0-0123456789abcdef01234567",
        "content-length": str(len(request.body)),
    }
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": f"ANY {route_path}",
        "rawPath": raw_path,
        "rawQueryString": parts.query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": parts.netloc.split(".")[0],
            "domainName": parts.netloc,
            "domainPrefix": parts.netloc.split(".")[0],
            "http": {
                "method": request.method,
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": f"ANY {route_path}",
            "stage": stage,
            "time": "01/Jan/2026:10:00:00 +0000",
            "timeEpoch": time_epoch_ms,
        },
        "isBase64Encoded": bool(request.body),
    }
    if parts.query:
        event["queryStringParameters"] = {k: ",".join(v) for k, v in parse_qs(parts.query).items()}
    if request.body:
        event["body"] = base64.b64encode(request.body).decode()
    return event


class LambdaContext:
    """The attributes Powertools reads from a Lambda context object."""

    function_name = "callkit-WebhookFunction"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:callkit-WebhookFunction"
    aws_request_id = "6f1c2d3e-0000-4000-8000-000000000001"
    log_group_name = "/aws/lambda/callkit-WebhookFunction"
    log_stream_name = "2026/01/01/[$LATEST]0123456789abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000
