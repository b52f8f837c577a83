"""Benchmark: the relay Lambda's cold init and its per-prompt overhead.

    uv run python bench/relay.py [--runs 9] [--calls 50] [--prompts 10] [--handwritten DIR]

Cold path as deployed (bench/_coldpath.py): a fresh interpreter per sample imports
``functions/relay/app.py`` and serves the call's ``$connect`` (a cold start lands there: the first
event of a call): the ConversationRelay signature checked with the auth token from SSM, the
connection attached to the call item in DynamoDB, the end-of-call schedule created in EventBridge
Scheduler, all on a moto server; credentials as Lambda gives them, and SnapStart-style (only the
first request after the restore timed). Medians of ``--runs``. ``--handwritten DIR``: the same
for an export of the tree before botocore (see bench/webhook.py).

Per-prompt overhead: ``prompt`` event in → first ``text`` frame handed to ``@connections``, through
``RelayHandler.handle`` with a zero-latency in-process model (it streams its reply at once), so
what is left is callkit's own work: finding the call, taking the turn, reading the history, the
agent loop, chunking, the fence check and encoding. ``--calls`` calls of ``--prompts`` prompts
each (history grows as in a real call). Once with the in-memory store, once with DynamoDB on a
moto server through callkit's own DynamoDB client (loopback HTTP: an upper bound of the store
round trips, not AWS's latency).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _coldpath  # noqa: E402
from _stats import percentile  # noqa: E402

from callkit.agent import Agent  # noqa: E402
from callkit.carriers import twilio  # noqa: E402
from callkit.interface import CallInterface  # noqa: E402
from callkit.lifecycle import CallStatus  # noqa: E402
from callkit.llm.protocol import Finished, Message, TextDelta  # noqa: E402
from callkit.relay.handler import RelayHandler  # noqa: E402
from callkit.settings import Settings  # noqa: E402
from callkit.store._base import CallRecord, CallStore  # noqa: E402
from callkit.switchboard import Credentials  # noqa: E402
from callkit.telemetry import StdlibTelemetry  # noqa: E402

RELAY_URL = "wss://relay456uvw.execute-api.us-east-1.amazonaws.com/prod"
REPLY = "Sure, I can help with that. Your order shipped on Monday and arrives tomorrow. Anything else?"
ENV = {
    "CALLKIT_APP": "callkit_app:interfaces",
    "CALLKIT_PUBLIC_URL": "https://abc123xyz9.execute-api.us-east-1.amazonaws.com",
    "CALLKIT_RELAY_URL": RELAY_URL,
    "CALLKIT_TABLE": "calls",
    "CALLKIT_PHONE_NUMBER": "+15551234567",
    "CALLKIT_PROVIDER": "twilio",
    "CALLKIT_PIPELINE": "managed",
    "CALLKIT_SCHEDULER_ROLE_ARN": "arn:aws:iam::123456789012:role/callkit-scheduler",
    "CALLKIT_RELAY_FUNCTION_ARN": "arn:aws:lambda:us-east-1:123456789012:function:callkit-relay",
    "CALLKIT_SCHEDULER_GROUP": "callkit",
    "TWILIO_AUTH_TOKEN_PARAM": "/callkit/twilio/auth-token",
    "OPENAI_API_KEY_PARAM": "/callkit/openai/api-key",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "POWERTOOLS_SERVICE_NAME": "callkit-relay",
    "POWERTOOLS_METRICS_NAMESPACE": "callkit",
    "PYTHONPATH": str(ROOT / "functions"),
    "PYTHONWARNINGS": "ignore",
}


class InstantModel:
    """A chat model with no latency at all: the reply streams in word pieces immediately."""

    async def stream(self, messages: Sequence[Message], tools: Sequence[Any], **_: Any) -> AsyncIterator[Any]:
        for word in REPLY.split(" "):
            yield TextDelta(word + " ")
        yield Finished("stop", None)


class FirstFrameClock:
    """``@connections`` stand-in that notes when the first frame of each prompt is posted."""

    def __init__(self) -> None:
        self.first: float | None = None

    def reset(self) -> None:
        self.first = None

    async def post(self, connection_id: str, data: bytes) -> None:
        if self.first is None:
            self.first = time.perf_counter()

    async def close(self, connection_id: str) -> None:
        return None


def connect_event(call_id: str, connection_id: str) -> dict[str, Any]:
    """``$connect`` for ``call_id`` on a new connection, signed as Twilio signs the upgrade."""
    from callkit.relay.events import relay_url_for
    from callkit.testing import TEST_TWILIO_AUTH_TOKEN
    from callkit.testing.events import build_relay_events

    event = build_relay_events()["relay-connect.json"]
    url = relay_url_for(RELAY_URL, call_id)
    signature = twilio.signature_headers(TEST_TWILIO_AUTH_TOKEN, "GET", url, None)
    event["headers"] |= signature
    event["multiValueHeaders"] |= {k: [v] for k, v in signature.items()}
    event["headers"]["Host"] = event["requestContext"]["domainName"] = RELAY_URL.split("/")[2]
    event["queryStringParameters"] = {"call": call_id}
    event["multiValueQueryStringParameters"] = {"call": [call_id]}
    event["requestContext"]["connectionId"] = connection_id
    return event


def managed_call(call_id: str) -> CallRecord:
    now = time.time()
    return CallRecord(
        call_id,
        "twilio",
        "managed",
        CallStatus.RINGING,
        "+14155550100",
        "+15551234567",
        "AC1",
        "<Response/>",
        now,
        now,
        int(now) + 3600,
    )


def cold_path(runs: int, handwritten: Path | None) -> _coldpath.Samples:
    """``{mode: {handler: [{"import_ms", "first_ms"}, ...]}}`` for modes ``lambda`` and ``snapstart``."""
    import botocore.session

    from callkit.store import DynamoDBCallStore

    handlers = {"callkit": str(ROOT / "functions")}
    if handwritten is not None:
        handlers["handwritten"] = os.pathsep.join(
            [str(handwritten / "layers" / "callkit" / "src"), str(handwritten / "functions")]
        )
    samples: _coldpath.Samples = {m: {h: [] for h in handlers} for m in ("lambda", "snapstart")}
    with _coldpath.deployed_aws(scheduler_group=ENV["CALLKIT_SCHEDULER_GROUP"]) as (
        endpoint,
        credentials_url,
    ):
        session = botocore.session.get_session()
        session.set_credentials("bench", "bench")
        client = session.create_client("dynamodb", region_name=_coldpath.REGION, endpoint_url=endpoint)
        store = DynamoDBCallStore(_coldpath.TABLE, client)  # type: ignore[arg-type]
        n = 0
        for _ in range(runs):
            for mode, by_handler in samples.items():
                for name, path in handlers.items():
                    n += 1
                    call_id = f"CAc01d{n:028x}"  # apart from the overhead run's ids (moto is per process)
                    store.create_call(managed_call(call_id))
                    env = _coldpath.base_env() | {k: v for k, v in ENV.items() if not k.startswith("AWS_")}
                    env |= _coldpath.aws_env(mode, endpoint, credentials_url) | {"PYTHONPATH": path}
                    event = connect_event(call_id, f"cold{n}=")
                    by_handler[name].append(_coldpath.sample("relay.app", event, env))
    return samples


async def overhead(store: CallStore, calls: int, prompts: int) -> list[float]:
    interface = CallInterface(
        agent=Agent(instructions="Be brief."),
        provider="twilio",
        phone_number="+15551234567",
        auth_token="bench-token",
        pipeline="managed",
        welcome_message="Hello!",
    )
    connections = FirstFrameClock()
    settings = Settings(relay_url=RELAY_URL)
    handler = RelayHandler(
        [interface],
        settings=settings,
        store=store,
        connections=connections,
        model_for=lambda _i: InstantModel(),
        credentials=Credentials(settings),
        telemetry=StdlibTelemetry(),
    )
    samples: list[float] = []
    for n in range(calls):
        call_id, connection_id = f"CA{n:032d}", f"conn{n}="
        now = time.time()
        store.create_call(
            CallRecord(
                call_id,
                "twilio",
                "managed",
                CallStatus.RINGING,
                "+14155550100",
                "+15551234567",
                "AC1",
                "<Response/>",
                now,
                now,
                int(now) + 3600,
            )
        )
        store.attach_connection(call_id, connection_id, now=now)

        def event(body: str) -> dict[str, Any]:
            return {
                "requestContext": {
                    "routeKey": "$default",
                    "connectionId": connection_id,  # noqa: B023
                    "domainName": "relay",
                    "stage": "prod",
                },
                "body": body,
            }

        setup = twilio.RelaySetup("VX1", call_id, "AC1", "+14155550100", "+15551234567")
        await handler.handle(event(twilio.encode_relay_event(setup)))
        for p in range(prompts):
            body = twilio.encode_relay_event(
                twilio.RelayPrompt(f"Question number {p}, where is my order?", "en-US", True)
            )
            connections.reset()
            started = time.perf_counter()
            await handler.handle(event(body))
            assert connections.first is not None
            samples.append((connections.first - started) * 1000)
    return samples


def moto_store() -> tuple[CallStore, Any]:
    from moto.server import ThreadedMotoServer

    from callkit.aws_clients import LAMBDA_POLICY, AwsClients
    from callkit.store import DynamoDBCallStore, create_table

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    client = AwsClients(LAMBDA_POLICY).client("dynamodb", endpoint_url=f"http://{host}:{port}")
    create_table(client, "calls")
    return DynamoDBCallStore("calls", client), server


def main() -> None:
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the moto server's access log
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--prompts", type=int, default=10)
    parser.add_argument("--handwritten", type=Path, default=None, help="tree with callkit's own AWS client")
    args = parser.parse_args()
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        os.environ.setdefault(name, ENV[name])
    cold = cold_path(args.runs, args.handwritten)
    from callkit.store.memory import MemoryCallStore

    memory_ms = asyncio.run(overhead(MemoryCallStore(), args.calls, args.prompts))
    store, server = moto_store()
    try:
        moto_ms = asyncio.run(overhead(store, max(5, args.calls // 5), args.prompts))
    finally:
        server.stop()

    def stats(values: list[float]) -> dict[str, float]:
        return {q: round(percentile(values, p), 2) for q, p in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))}

    cold_figures = _coldpath.figures(cold)
    result = {
        "cold_path_ms": cold_figures,
        "overhead_memory_ms": stats(memory_ms),
        "overhead_moto_dynamodb_ms": stats(moto_ms),
        "prompts": {"memory": len(memory_ms), "moto": len(moto_ms)},
    }
    print(f"relay cold path as deployed ($connect; auth token in SSM, moto), medians of {args.runs} (ms):")
    for mode, by_handler in cold_figures.items():
        what = "import + first request" if mode == "lambda" else "first request after restore"
        print(f"  {mode} ({what}):")
        for name, f in by_handler.items():
            print(
                f"    {name:12s} {f['cold_ms']:8.1f}   (import {f['import_ms']:.1f}, first request {f['first_request_ms']:.1f})"
            )
    print(
        f"prompt in -> first text frame, in-memory store, {len(memory_ms)} prompts: {result['overhead_memory_ms']}  (target p50 <= 15 ms)"
    )
    print(
        f"same through DynamoDB on a moto server, {len(moto_ms)} prompts: {result['overhead_moto_dynamodb_ms']}"
    )
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "relay.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
