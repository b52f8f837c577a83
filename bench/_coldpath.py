"""The cold path a deployed call takes, for bench/webhook.py and bench/relay.py.

A fresh interpreter per sample imports a handler module and serves its first event, with AWS as
the deployed function meets it: secrets by name (the carrier auth token an SSM SecureString, the
stream-token key a Secrets Manager secret), DynamoDB, EventBridge Scheduler and ``@connections``,
all on one moto server on loopback (``AWS_ENDPOINT_URL``), and credentials as Lambda hands them
out:

- ``lambda``: ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``; timed:
  import + first request, what the caller waits for on a cold start;
- ``snapstart``: no key variables, container credentials (``AWS_CONTAINER_CREDENTIALS_FULL_URI``
  on a loopback server, as SnapStart functions get them). Imports and clients are made before the
  "snapshot"; the credentials they saw then expire within botocore's refresh window, so the first
  request after the "restore" fetches fresh ones. Timed: the first request only (Lambda's own
  restore time is not reproducible here and is not in the figure).

Secrets are never read at import by callkit (cached 5 min after the first read), so each sample's
first request pays for its reads.
"""

from __future__ import annotations

import datetime
import http.server
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
REGION = "us-east-1"
TABLE = "calls"
AUTH_TOKEN_PARAM = "/callkit/twilio/auth-token"
OPENAI_KEY_PARAM = "/callkit/openai/api-key"
TOKEN_KEY_SECRET = "callkit/stream-token-key"
CONTAINER_TOKEN = "bench-container-authorization-token"

#: One fresh interpreter: import the handler module, then serve one event; prints the two times.
CHILD = """
import json, os, sys, time
real_stdout, sys.stdout = sys.stdout, open(os.devnull, "w")  # JSON logs and EMF, as to CloudWatch
t0 = time.perf_counter()
import {module} as handler_module
t1 = time.perf_counter()
# SnapStart: the snapshot would be taken here; what follows runs after a restore.
event = json.load(open(os.environ["BENCH_EVENT"]))

class Context:
    function_name, function_version, memory_limit_in_mb = "bench", "$LATEST", 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    aws_request_id = "bench-request"

t2 = time.perf_counter()
response = handler_module.handler(event, Context())
t3 = time.perf_counter()
assert response["statusCode"] == 200, response
real_stdout.write(json.dumps({{"import_ms": (t1 - t0) * 1000, "first_ms": (t3 - t2) * 1000}}))
"""


def aws_env(mode: str, endpoint_url: str, credentials_url: str) -> dict[str, str]:
    """What Lambda's environment holds for AWS, in ``mode`` (``lambda`` or ``snapstart``)."""
    env = {
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    if mode == "lambda":
        env |= {
            "AWS_ACCESS_KEY_ID": "ASIABENCH",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_SESSION_TOKEN": "bench",
        }
    else:
        env |= {
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": credentials_url,
            "AWS_CONTAINER_AUTHORIZATION_TOKEN": CONTAINER_TOKEN,
        }
    return env


class _CredentialsHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.headers.get("Authorization") != CONTAINER_TOKEN:
            self.send_response(403)
            self.end_headers()
            return
        # Valid, but inside botocore's 10-minute mandatory refresh window: the first request after
        # the "restore" fetches new ones, as it would hours after the snapshot.
        expiry = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=5)
        body = json.dumps(
            {
                "AccessKeyId": "ASIABENCH",
                "SecretAccessKey": "bench",
                "Token": "bench",
                "Expiration": expiry.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        return None


@contextmanager
def deployed_aws(scheduler_group: str = "default") -> Iterator[tuple[str, str]]:
    """A moto server seeded as the stack leaves things, and a container-credentials server: their URLs."""
    import logging

    import botocore.session
    from moto.server import ThreadedMotoServer

    from callkit.store import create_table
    from callkit.testing import TEST_TWILIO_AUTH_TOKEN

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    credentials = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _CredentialsHandler)
    threading.Thread(target=credentials.serve_forever, daemon=True).start()
    session = botocore.session.get_session()
    session.set_credentials("bench", "bench")

    def client(service: str) -> Any:
        return session.create_client(service, region_name=REGION, endpoint_url=endpoint)

    create_table(client("dynamodb"), TABLE)
    ssm = client("ssm")
    ssm.put_parameter(Name=AUTH_TOKEN_PARAM, Value=TEST_TWILIO_AUTH_TOKEN, Type="SecureString")
    ssm.put_parameter(Name=OPENAI_KEY_PARAM, Value="sk-bench", Type="SecureString")
    client("secretsmanager").create_secret(Name=TOKEN_KEY_SECRET, SecretString="0123456789abcdef" * 4)
    if scheduler_group != "default":
        client("scheduler").create_schedule_group(Name=scheduler_group)
    try:
        yield endpoint, f"http://127.0.0.1:{credentials.server_address[1]}/v2/credentials"
    finally:
        credentials.shutdown()
        server.stop()


def sample(module: str, event: dict[str, Any], env: dict[str, str]) -> dict[str, float]:
    """One fresh interpreter: import ``module`` and serve ``event``; ``import_ms`` and ``first_ms``."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(event, handle)
    try:
        result = subprocess.run(
            [sys.executable, "-c", CHILD.format(module=module)],
            env={**env, "BENCH_EVENT": handle.name},
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        os.unlink(handle.name)
    if result.returncode != 0:
        raise SystemExit(f"cold-path child ({module}) failed:\n{result.stderr[-3000:]}")
    times: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return times


#: ``{mode: {handler: [{"import_ms": ..., "first_ms": ...}, ...]}}``
Samples = dict[str, dict[str, list[dict[str, float]]]]


def figures(samples: Samples) -> dict[str, dict[str, dict[str, float]]]:
    """Medians per mode and handler: import, first request, and the figure the caller waits for."""
    figures: dict[str, dict[str, dict[str, float]]] = {}
    for mode, by_handler in samples.items():
        figures[mode] = {}
        for name, runs in by_handler.items():
            imports = [r["import_ms"] for r in runs]
            firsts = [r["first_ms"] for r in runs]
            totals = [r["first_ms"] + (r["import_ms"] if mode == "lambda" else 0.0) for r in runs]
            figures[mode][name] = {
                "import_ms": round(statistics.median(imports), 1),
                "first_request_ms": round(statistics.median(firsts), 1),
                "cold_ms": round(statistics.median(totals), 1),
            }
    return figures


def base_env() -> dict[str, str]:
    """The parent's environment without anything AWS or callkit of its own."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "CALLKIT_", "TWILIO_", "PLIVO_", "OPENAI_", "POWERTOOLS_"))
    }
