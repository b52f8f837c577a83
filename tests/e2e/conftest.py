"""End-to-end fixtures: DynamoDB on a moto server, reached over loopback HTTP by a botocore client."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import pytest
from moto.server import ThreadedMotoServer

from callkit.aws_clients import AwsClients
from callkit.store import DynamoDBCallStore, create_table
from callkit.store._base import CallStore


@pytest.fixture
def dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[CallStore]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    for name, value in {
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    # moto's backends are process-wide, shared by every server in it: start from empty ones.
    urllib.request.urlopen(
        urllib.request.Request(f"http://{host}:{port}/moto-api/reset", method="POST"), timeout=5
    ).close()
    client = AwsClients().client("dynamodb", endpoint_url=f"http://{host}:{port}")
    create_table(client, "calls")
    yield DynamoDBCallStore("calls", client)
    server.stop()
