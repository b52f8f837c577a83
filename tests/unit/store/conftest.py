"""Fixtures for the call store tests: a virtual clock and the stores.

DynamoDB runs twice: boto3's client on moto's in-process mock, and the client the deployed
functions make (``callkit.aws_clients``: botocore, standard retries, callkit's timeouts) over
loopback HTTP to a moto server.
"""

from __future__ import annotations

import threading
import uuid
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from moto import mock_aws
from moto.server import ThreadedMotoServer

from callkit.aws_clients import AwsClients
from callkit.store import CallStore, DynamoDBCallStore, MemoryCallStore, create_table

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from mypy_boto3_dynamodb.client import DynamoDBClient

T0 = 1_700_000_000.0
TABLE = "callkit-test"


class VirtualClock:
    """Epoch seconds that move only when a test says so."""

    def __init__(self, start: float) -> None:
        self.time = start

    def __call__(self) -> float:
        return self.time


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(T0)


@pytest.fixture
def advance(clock: VirtualClock) -> Callable[[float], None]:
    """Move the stores' clock forward by this many seconds."""

    def _advance(seconds: float) -> None:
        clock.time += seconds

    return _advance


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and region, and nothing from the developer's own AWS setup."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB"):
        monkeypatch.delenv(name, raising=False)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")


@pytest.fixture
def dynamodb_client(aws_env: None) -> Iterator[DynamoDBClient]:
    """A low-level DynamoDB client on moto's in-process backend, with the call table created."""
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        assert create_table(client, TABLE) is True
        yield client


class AtomicRequests:
    """A client whose requests run one at a time, as DynamoDB runs the writes to one item.

    moto checks a condition and then writes in two Python steps, so two threads can both pass the
    check (seen with concurrent UpdateItem). DynamoDB does not allow that, and the store relies on
    it. Serialising whole requests restores the guarantee without hiding a store that does
    read-then-write in two requests: threads still interleave between requests.
    """

    def __init__(self, client: DynamoDBClient) -> None:
        self._client = client
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if not callable(method):
            return method

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return method(*args, **kwargs)

        return call


@pytest.fixture
def dynamodb_store(dynamodb_client: DynamoDBClient, clock: VirtualClock) -> DynamoDBCallStore:
    client: DynamoDBClient = AtomicRequests(dynamodb_client)  # type: ignore[assignment]
    return DynamoDBCallStore(TABLE, client, now=clock)


@pytest.fixture(scope="module")
def moto_server_url() -> Iterator[str]:
    """A moto server on loopback, for clients that speak HTTP themselves."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def served_dynamodb_store(
    aws_env: None, moto_server_url: str, clock: VirtualClock
) -> Iterator[DynamoDBCallStore]:
    """The store on the deployed functions' client, credentials and region from the environment as on Lambda.

    A fresh table per test: the server outlives tests, and the in-process mock's resets also
    empty it.
    """
    botocore_client: DynamoDBClient = AwsClients().client("dynamodb", endpoint_url=moto_server_url)
    table = f"{TABLE}-{uuid.uuid4().hex[:12]}"
    assert create_table(botocore_client, table) is True
    client: DynamoDBClient = AtomicRequests(botocore_client)  # type: ignore[assignment]
    yield DynamoDBCallStore(table, client, now=clock)
    botocore_client.close()


@pytest.fixture(params=["memory", "dynamodb", "dynamodb-served"])
def store(request: pytest.FixtureRequest, clock: VirtualClock) -> CallStore:
    """Each contract test runs once per implementation; ``dynamodb-served`` is over a moto server."""
    if request.param == "memory":
        return MemoryCallStore(now=clock)
    name = "dynamodb_store" if request.param == "dynamodb" else "served_dynamodb_store"
    store: DynamoDBCallStore = request.getfixturevalue(name)
    return store
