"""Relay Lambda: Twilio ConversationRelay sessions on the API Gateway WebSocket API.

No FastAPI, no numpy: API Gateway WebSocket events go straight to ``RelayHandler``; DynamoDB,
``@connections``, EventBridge Scheduler and SSM through botocore clients (``callkit.aws_clients``),
the model through callkit's small HTTP/1.1 client. Everything, clients included, is built at
import, once per execution environment (and so inside a SnapStart snapshot); the event loop is kept
across invocations so HTTP keep-alive connections survive. After a SnapStart restore the model
client's and botocore's retry jitter must not repeat across environments: ``random`` is reseeded
by a restore hook (docs/aws.md §9).
"""

from __future__ import annotations

import asyncio
from typing import Any

from aws_lambda_powertools import Logger, Metrics

from callkit import preflight
from callkit.app_loader import build_secrets, build_store, load_interfaces
from callkit.aws_clients import LAMBDA_POLICY, AwsClients
from callkit.relay.deploy import build_relay
from callkit.settings import Settings
from callkit.snapstart import reseed_after_restore
from callkit.telemetry import PowertoolsTelemetry

reseed_after_restore()
logger = Logger()
metrics = Metrics()
settings = Settings.from_env()
aws = AwsClients(LAMBDA_POLICY)
interfaces = load_interfaces(settings.app)
# Checked once per execution environment and logged, not raised: a function that fails its init
# answers nothing at all, while one that runs still gives the caller an apology (callkit.preflight).
for problem in preflight.check(interfaces, settings, component="relay"):
    logger.error("callkit cannot take calls yet", problem=str(problem), setting=problem.name)
relay = build_relay(
    interfaces,
    settings=settings,
    store=build_store(settings, aws),
    telemetry=PowertoolsTelemetry(logger, metrics),
    aws=aws,
    secrets=build_secrets(settings, aws),
)
loop = asyncio.new_event_loop()


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    return loop.run_until_complete(relay.handle(event))
