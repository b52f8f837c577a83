"""The naive baseline for bench/webhook.py: how a webhook Lambda is usually written.

FastAPI + Mangum + Powertools Logger, Metrics and Tracer + boto3, all imported eagerly at module
level, a DynamoDB ``Table`` resource, form parsing through FastAPI ``Form`` parameters
(python-multipart) and the official twilio ``RequestValidator``. It does the same work per request
as callkit's handler: check the signature, store the call, answer with TwiML.
"""

from __future__ import annotations

import os
from typing import Annotated

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from fastapi import FastAPI, Form, Request, Response
from mangum import Mangum
from twilio.request_validator import RequestValidator

logger = Logger()
metrics = Metrics()
tracer = Tracer()
table = boto3.resource("dynamodb").Table(os.environ.get("CALLKIT_TABLE") or "calls")
validator = RequestValidator(os.environ["TWILIO_AUTH_TOKEN"])
PUBLIC_URL = os.environ["CALLKIT_PUBLIC_URL"]
MEMORY: dict[str, str] = {}  # the baseline's "in-memory store" for the warm measurement

app = FastAPI()


@app.post("/call/incoming")
@tracer.capture_method
async def incoming(
    request: Request,
    CallSid: Annotated[str, Form()],
    To: Annotated[str, Form()],
) -> Response:
    form = await request.form()
    params = {k: str(v) for k, v in form.items()}
    if not validator.validate(
        f"{PUBLIC_URL}{request.url.path}", params, request.headers.get("x-twilio-signature", "")
    ):
        return Response("forbidden", status_code=403)
    logger.append_keys(call_sid=CallSid)
    twiml = (
        '<?xml version="1.0" encoding="UTF-8"?><Response><Connect>'
        f'<Stream url="wss://media.example.com/call/stream"><Parameter name="call" value="{CallSid}"/></Stream>'
        "</Connect></Response>"
    )
    if os.environ.get("CALLKIT_TABLE"):
        table.put_item(Item={"pk": f"CALL#{CallSid}", "sk": "META", "answer": twiml})
    else:
        MEMORY.setdefault(CallSid, twiml)
    logger.info("call answered")
    metrics.add_metric(name="CallsAnswered", unit=MetricUnit.Count, value=1)
    return Response(MEMORY.get(CallSid, twiml), media_type="text/xml")


_asgi = Mangum(app, lifespan="off")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, object], context: object) -> dict[str, object]:
    return _asgi(event, context)  # type: ignore[arg-type]
