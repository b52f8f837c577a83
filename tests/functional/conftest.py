"""Functional tests drive the deployed handler modules with API Gateway events and moto."""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import sys
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
def aws(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in BASE_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    create_table(boto3.client("dynamodb"), TABLE)
    yield
    boto3.client("dynamodb").delete_table(TableName=TABLE)  # the server outlives the test


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
