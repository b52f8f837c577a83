"""Webhook Lambda: Twilio and Plivo incoming-call and status webhooks behind the HTTP API.

Everything is built once per execution environment, at import (Mangum runs lifespan per
invocation, so nothing expensive goes there: docs/aws.md §3), clients included, so a SnapStart
snapshot holds them and the first request only fetches its secrets. No X-Ray SDK (the heaviest
import and not needed for a 2 ms handler), no pydantic models of our own; botocore's low-level
clients (``callkit.aws_clients``): DynamoDB when a table is configured, SSM and Secrets Manager when
a secret is named.

SnapStart (template.yaml, WebhookWarmup=snapstart, the default) runs this import once per published
version and resumes every new environment from that one snapshot (docs/aws.md §9). What the import
makes is safe to share: the clients hold no secret and no connection to AWS; their credentials are
container credentials, which botocore checks against the wall clock before every request and
fetches again from Lambda's endpoint (with the restored environment's token) once near expiry;
the carrier's auth token and the stream-token key are fetched on first use, after the restore,
never at import. The one state that must differ per environment, ``random``'s generator (retry
jitter), is reseeded by the restore hook registered below.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import correlation_paths
from mangum import Mangum

from callkit import preflight
from callkit.app_loader import build_secrets, build_store, load_interfaces
from callkit.aws_clients import LAMBDA_POLICY, AwsClients
from callkit.http import create_webhook_app
from callkit.settings import Settings
from callkit.snapstart import reseed_after_restore
from callkit.switchboard import Credentials, Switchboard
from callkit.telemetry import PowertoolsTelemetry

reseed_after_restore()
logger = Logger()
metrics = Metrics()
settings = Settings.from_env()
aws = AwsClients(LAMBDA_POLICY)
interfaces = load_interfaces(settings.app)
# Checked once per execution environment and logged, not raised: a function that fails its init
# answers nothing at all, while one that runs still gives the caller an apology (callkit.preflight).
for problem in preflight.check(interfaces, settings, component="webhook"):
    logger.error("callkit cannot take calls yet", problem=str(problem), setting=problem.name)
switchboard = Switchboard(
    interfaces,
    settings=settings,
    store=build_store(settings, aws),
    telemetry=PowertoolsTelemetry(logger, metrics),
    credentials=Credentials(settings, build_secrets(settings, aws)),
)
# One request per invocation: the store's blocking calls need no thread pool here.
app = create_webhook_app(switchboard, offload_blocking=False)
_asgi = Mangum(app, lifespan="off", api_gateway_base_path=settings.base_path or "/")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, object], context: object) -> dict[str, object]:
    return _asgi(event, context)  # type: ignore[arg-type]
