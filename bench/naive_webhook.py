"""The naive baseline for bench/webhook.py: how a webhook Lambda is usually written.

FastAPI + Mangum + Powertools Logger, Metrics and Tracer + boto3, all imported eagerly at module
level, a DynamoDB ``Table`` resource, form parsing through FastAPI ``Form`` parameters
(python-multipart) and the official twilio ``RequestValidator``. It does the same work per request
as callkit's handler: check the signature, store the call, answer with TwiML.

Secrets as deployed (bench/_coldpath.py): with ``TWILIO_AUTH_TOKEN_PARAM`` the auth token is read
from SSM, and with ``CALLKIT_TOKEN_KEY_SECRET`` the stream-token key from Secrets Manager, through
Powertools Parameters on first use (cached), the usual way; else from ``TWILIO_AUTH_TOKEN``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Annotated

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities import parameters
from fastapi import FastAPI, Form, Request, Response
from mangum import Mangum
from twilio.request_validator import RequestValidator

logger = Logger()
metrics = Metrics()
tracer = Tracer()
table = boto3.resource("dynamodb").Table(os.environ.get("CALLKIT_TABLE") or "calls")
AUTH_TOKEN_PARAM = os.environ.get("TWILIO_AUTH_TOKEN_PARAM", "")
TOKEN_KEY_SECRET = os.environ.get("CALLKIT_TOKEN_KEY_SECRET", "")
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
    auth_token = (
        str(parameters.get_parameter(AUTH_TOKEN_PARAM, decrypt=True))
        if AUTH_TOKEN_PARAM
        else os.environ["TWILIO_AUTH_TOKEN"]
    )
    if not RequestValidator(auth_token).validate(
        f"{PUBLIC_URL}{request.url.path}", params, request.headers.get("x-twilio-signature", "")
    ):
        return Response("forbidden", status_code=403)
    logger.append_keys(call_sid=CallSid)
    key = str(parameters.get_secret(TOKEN_KEY_SECRET)) if TOKEN_KEY_SECRET else "local-key"
    token = hmac.new(key.encode(), CallSid.encode(), hashlib.sha256).hexdigest()
    twiml = (
        '<?xml version="1.0" encoding="UTF-8"?><Response><Connect>'
        f'<Stream url="wss://media.example.com/call/stream"><Parameter name="call" value="{CallSid}"/>'
        f'<Parameter name="token" value="{token}"/></Stream>'
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
