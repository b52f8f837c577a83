"""Functional tests drive the deployed handler modules with API Gateway events and moto."""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from callkit.store import create_table
from callkit.testing import TEST_PLIVO_AUTH_TOKEN, TEST_TWILIO_AUTH_TOKEN
from callkit.testing.events import EVENTS_PHONE_NUMBER, EVENTS_PUBLIC_URL

EVENTS = Path(__file__).resolve().parents[2] / "events"
TABLE = "callkit-calls"
TOKEN_KEY = "f" * 64

BASE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "POWERTOOLS_SERVICE_NAME": "callkit-webhook",
    "POWERTOOLS_METRICS_NAMESPACE": "callkit",
    "CALLKIT_APP": "callkit_app:interfaces",
    "CALLKIT_PUBLIC_URL": EVENTS_PUBLIC_URL,
    "CALLKIT_MEDIA_URL": "wss://media.example.com",
    "CALLKIT_RELAY_URL": "wss://relay.example.com/prod",
    "CALLKIT_TABLE": TABLE,
    "CALLKIT_TOKEN_KEY": TOKEN_KEY,
    "CALLKIT_PHONE_NUMBER": EVENTS_PHONE_NUMBER,
    "TWILIO_AUTH_TOKEN": TEST_TWILIO_AUTH_TOKEN,
    "PLIVO_AUTH_TOKEN": TEST_PLIVO_AUTH_TOKEN,
}


def load_event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return event


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """A moto server: the webhook's DynamoDB client speaks HTTP, which the in-process mock cannot see."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in BASE_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    # The server outlives the test: start every test from empty backends (tables, @connections).
    urllib.request.urlopen(
        urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST"), timeout=5
    ).close()
    create_table(boto3.client("dynamodb"), TABLE)


WebhookFactory = Callable[..., ModuleType]


@pytest.fixture
def webhook(aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[WebhookFactory]:
    """Import ``functions/webhook/app.py`` fresh, as a new Lambda execution environment would."""
    loops: list[asyncio.AbstractEventLoop] = []

    def load(**env: str | None) -> ModuleType:
        # Mangum runs on the thread's event loop; give it one we can close after the test.
        loops.append(asyncio.new_event_loop())
        asyncio.set_event_loop(loops[-1])
        for name, value in env.items():
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        for module in ("webhook.app", "webhook", "callkit_app"):
            sys.modules.pop(module, None)
        # Powertools keeps its handler on the process-wide logger across imports, bound to the stdout
        # of the first one; a new execution environment would write to the current stdout.
        for handler in logging.getLogger(BASE_ENV["POWERTOOLS_SERVICE_NAME"]).handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.stream = sys.stdout  # not setStream: it flushes the old, maybe closed, stream
        return importlib.import_module("webhook.app")

    yield load
    asyncio.set_event_loop(None)
    for loop in loops:
        loop.close()


def items() -> list[dict[str, Any]]:
    return boto3.client("dynamodb").scan(TableName=TABLE)["Items"]


class ThreadedChatServer:
    """``ScriptedChatServer`` on its own loop in a thread: the relay module runs its loop synchronously."""

    def __init__(self, script: Any) -> None:
        import threading

        from callkit.testing.openai_chat import ScriptedChatServer

        self.server = ScriptedChatServer(script)
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            self._stop = asyncio.Event()
            async with self.server:
                self._started.set()
                await self._stop.wait()

        self._loop.run_until_complete(main())
        self._loop.close()

    def __enter__(self) -> ThreadedChatServer:
        self._thread.start()
        self._started.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


RelayFactory = Callable[..., ModuleType]


@pytest.fixture
def relay_function(aws: None, monkeypatch: pytest.MonkeyPatch, moto_url: str) -> Iterator[RelayFactory]:
    """Import ``functions/relay/app.py`` fresh per call: each import is one Lambda execution environment."""
    from callkit.testing.events import EVENTS_RELAY_URL

    modules: list[ModuleType] = []
    monkeypatch.setenv("CALLKIT_RELAY_URL", EVENTS_RELAY_URL)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")

    def load(**env: str | None) -> ModuleType:
        for name, value in env.items():
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        for module in ("relay.app", "relay", "callkit_app"):
            sys.modules.pop(module, None)
        for handler in logging.getLogger("callkit-relay").handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.stream = sys.stdout
        module = importlib.import_module("relay.app")
        modules.append(module)
        return module

    yield load
    for module in modules:
        module.loop.run_until_complete(module.relay.aclose())
        module.loop.close()


def posted_frames(connection_id: str) -> list[dict[str, Any]]:
    """What the relay posted to ``@connections/{id}`` on the moto server, split into frames."""
    from urllib.parse import quote

    from moto.apigatewaymanagementapi.models import apigatewaymanagementapi_backends

    # Clients percent-encode the id in the path (connection ids end in '='); moto keys by the raw path.
    backend = apigatewaymanagementapi_backends["123456789012"]["us-east-1"]
    data = backend.connections[quote(connection_id, safe="")].data.decode()
    decoder, frames, index = json.JSONDecoder(), [], 0
    while index < len(data):
        frame, index = decoder.raw_decode(data, index)
        frames.append(frame)
    return frames
