"""End to end: the local runtime over real HTTP, the simulated carrier, DynamoDB through a moto server."""

from __future__ import annotations

import asyncio
import io
import urllib.request
from collections.abc import Iterator

import boto3
import httpx
import pytest
from moto.server import ThreadedMotoServer

from callkit import AgentRuntime, CallInterface
from callkit.demo import run as run_demo
from callkit.examples import support_agent
from callkit.settings import Settings
from callkit.store import DynamoDBCallStore, create_table
from callkit.stt.deepgram import DeepgramSTT
from callkit.testing import TEST_TWILIO_ACCOUNT_SID, TEST_TWILIO_AUTH_TOKEN, SimulatedCarrier
from callkit.tts.cartesia import CartesiaTTS


def test_demo_runs_every_step() -> None:
    out = io.StringIO()
    assert asyncio.run(run_demo(out)) == 0, out.getvalue()
    text = out.getvalue()
    assert "every step as expected" in text
    assert "FAIL" not in text


@pytest.fixture
def moto_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    # moto's backends are process-wide, shared by every server in it: start from empty ones.
    urllib.request.urlopen(
        urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=5
    ).close()
    for name, value in {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    try:
        yield endpoint
    finally:
        server.stop()


def test_runtime_keeps_calls_in_dynamodb(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    create_table(boto3.client("dynamodb"), "calls")
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")  # the default model; no call here reaches it
    interface = CallInterface(
        provider="twilio",
        phone_number="+15550001002",
        account_sid=TEST_TWILIO_ACCOUNT_SID,
        auth_token=TEST_TWILIO_AUTH_TOKEN,
        pipeline="cascading",
        stt=DeepgramSTT(api_key="k"),
        tts=CartesiaTTS(api_key="k", voice_id="v"),
    )

    async def call() -> tuple[str, int, int]:
        async with (
            AgentRuntime(support_agent, [interface], port=0, settings=Settings(table="calls")) as runtime,
            httpx.AsyncClient() as client,
        ):
            carrier = SimulatedCarrier("twilio", base_url=runtime.url, client=client)
            request = carrier.incoming_call(to="+15550001002", method="GET")  # Voice URL set to GET
            answer = await carrier.send(request)
            retry = await carrier.send(request)
            status = await carrier.send(carrier.status_callback(request.form["CallSid"][0], "completed"))
            assert answer.answer is not None and answer.answer.kind == "stream"
            assert retry.body == answer.body
            return request.form["CallSid"][0], answer.status, status.status

    call_id, answer_status, status_status = asyncio.run(call())
    assert (answer_status, status_status) == (200, 200)
    record = DynamoDBCallStore("calls", boto3.client("dynamodb")).get_call(call_id)
    assert record is not None and record.status == "completed" and record.pipeline == "cascading"
    assert len(boto3.client("dynamodb").scan(TableName="calls")["Items"]) == 1
