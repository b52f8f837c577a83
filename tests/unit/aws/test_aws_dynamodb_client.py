"""``DynamoDBClient`` over real sockets: moto's server (side by side with boto3) and loopback fakes.

The fakes speak HTTP/1.1 on 127.0.0.1 and check every request's signature with botocore's
``SigV4Auth`` from what actually arrived, so the headers we sign are the headers we send.
"""

from __future__ import annotations

import datetime
import json
import socket
import subprocess
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

import boto3
import botocore.auth
import botocore.credentials
import pytest
from botocore.awsrequest import AWSRequest
from botocore.exceptions import (
    BotoCoreError,
    ChecksumError,
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
    WaiterError,
)
from moto.server import ThreadedMotoServer

from callkit.aws.credentials import Credentials, DefaultCredentialsProvider
from callkit.aws.dynamodb import DynamoDBClient
from callkit.errors import ConfigurationError, StoreError
from callkit.store import DynamoDBCallStore, create_table

REGION = "us-east-1"
FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing-token",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    "AWS_EC2_METADATA_DISABLED": "true",
}
#: What else sends botocore's chain to a credentials endpoint.
CHAIN_ENV = (
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
)
UNSET_ENV = (
    "AWS_PROFILE",
    "AWS_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_SECURITY_TOKEN",
)


class RecordingSleep:
    """Backoff delays, recorded instead of slept."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture(scope="module")
def fake_env() -> Iterator[None]:
    """Fake credentials and region in the environment, as Lambda provides real ones."""
    with pytest.MonkeyPatch.context() as patch:
        for name in UNSET_ENV:
            patch.delenv(name, raising=False)
        for name, value in FAKE_ENV.items():
            patch.setenv(name, value)
        yield


@pytest.fixture(scope="module")
def moto_url(fake_env: None) -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def client(moto_url: str) -> Iterator[DynamoDBClient]:
    """Region and credentials from the environment, as on Lambda."""
    light = DynamoDBClient(endpoint_url=moto_url)
    yield light
    light.close()


@pytest.fixture
def table(client: DynamoDBClient) -> str:
    name = f"t-{uuid.uuid4().hex[:12]}"
    assert create_table(client, name) is True  # CreateTable, the table_exists waiter, UpdateTimeToLive
    return name


# --- side by side with boto3 on moto's server ---------------------------------------------------


def _normalised(value: Any) -> Any:
    """A response without what differs per request (metadata) or by design (datetime vs epoch)."""
    if isinstance(value, dict):
        return {k: _normalised(v) for k, v in value.items() if k != "ResponseMetadata"}
    if isinstance(value, list):
        return [_normalised(v) for v in value]
    if isinstance(value, datetime.datetime):
        return value.timestamp()
    return value


def _outcome(call: Callable[[], dict[str, Any]]) -> tuple[str, Any, set[str]]:
    try:
        result = call()
    except ClientError as exc:
        metadata = exc.response["ResponseMetadata"]
        return "error", _normalised(exc.response), set(metadata)
    return "ok", _normalised(result), set(result["ResponseMetadata"])


def test_answers_and_errors_match_boto3(client: DynamoDBClient, table: str, moto_url: str) -> None:
    boto = boto3.client("dynamodb", endpoint_url=moto_url, region_name=REGION)
    key = {"pk": {"S": "CALL#1"}, "sk": {"S": "META"}}
    item = {**key, "status": {"S": "ringing"}, "version": {"N": "1"}, "tags": {"SS": ["a", "b"]}}
    client.put_item(TableName=table, Item=item)
    exists = "attribute_not_exists(pk)"
    calls: list[Callable[[Any], dict[str, Any]]] = [
        lambda c: c.describe_table(TableName=table),
        lambda c: c.get_item(TableName=table, Key=key, ConsistentRead=True),
        lambda c: c.get_item(TableName=table, Key={"pk": {"S": "none"}, "sk": {"S": "META"}}),
        lambda c: c.query(
            TableName=table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": "CALL#1"}},
        ),
        lambda c: c.scan(TableName=table),
        lambda c: c.update_item(
            TableName=table,
            Key=key,
            UpdateExpression="SET #s = :s",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":s": {"S": "in-progress"}},
            ReturnValues="ALL_NEW",
        ),
        lambda c: c.put_item(
            TableName=table,
            Item=item,
            ConditionExpression=exists,
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        ),
        lambda c: c.put_item(TableName=table, Item=item, ConditionExpression=exists),
        lambda c: c.update_item(
            TableName=table,
            Key=key,
            UpdateExpression="SET version = version + :one",
            ConditionExpression="version = :zero",
            ExpressionAttributeValues={":one": {"N": "1"}, ":zero": {"N": "0"}},
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        ),
        lambda c: c.delete_item(
            TableName=table, Key={"pk": {"S": "none"}, "sk": {"S": "x"}}, ReturnValues="ALL_OLD"
        ),
        lambda c: c.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": table,
                        "Key": key,
                        "UpdateExpression": "SET #s = :s",
                        "ExpressionAttributeNames": {"#s": "status"},
                        "ExpressionAttributeValues": {":s": {"S": "in-progress"}},
                    }
                },
                {"Put": {"TableName": table, "Item": {"pk": {"S": "CONN#1"}, "sk": {"S": "CALL"}}}},
            ]
        ),
        lambda c: c.transact_write_items(  # TransactionCanceledException with CancellationReasons
            TransactItems=[
                {
                    "Update": {
                        "TableName": table,
                        "Key": key,
                        "UpdateExpression": "SET version = version + :one",
                        "ConditionExpression": "version = :zero",
                        "ExpressionAttributeValues": {":one": {"N": "1"}, ":zero": {"N": "0"}},
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                    }
                },
                {"Put": {"TableName": table, "Item": {"pk": {"S": "CONN#2"}, "sk": {"S": "CALL"}}}},
            ]
        ),
        lambda c: c.get_item(TableName="no-such-table", Key=key),
        lambda c: c.put_item(TableName=table, Item={"pk": {"S": "no sort key"}}),  # ValidationException
    ]
    for call in calls:
        ours, theirs = _outcome(lambda call=call: call(client)), _outcome(lambda call=call: call(boto))
        assert ours == theirs


def test_condition_failure_carries_code_and_old_item(client: DynamoDBClient, table: str) -> None:
    key = {"pk": {"S": "CALL#2"}, "sk": {"S": "META"}}
    client.put_item(TableName=table, Item={**key, "n": {"N": "7"}})

    with pytest.raises(ClientError) as with_item:
        client.put_item(
            TableName=table,
            Item=key,
            ConditionExpression="attribute_not_exists(pk)",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    with pytest.raises(ClientError) as without_item:
        client.put_item(TableName=table, Item=key, ConditionExpression="attribute_not_exists(pk)")

    for caught in (with_item, without_item):
        assert caught.value.operation_name == "PutItem"
        assert caught.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert with_item.value.response["Item"] == {**key, "n": {"N": "7"}}  # type: ignore[typeddict-item]
    assert "Item" not in without_item.value.response


def test_cancelled_transaction_carries_its_reasons(client: DynamoDBClient, table: str) -> None:
    key = {"pk": {"S": "CALL#3"}, "sk": {"S": "META"}}
    client.put_item(TableName=table, Item={**key, "n": {"N": "7"}})
    update = {
        "TableName": table,
        "Key": key,
        "UpdateExpression": "SET n = :n",
        "ConditionExpression": "attribute_not_exists(pk)",
        "ExpressionAttributeValues": {":n": {"N": "8"}},
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }
    put = {"TableName": table, "Item": {"pk": {"S": "CONN#3"}, "sk": {"S": "CALL"}}}

    with pytest.raises(ClientError) as caught:
        client.transact_write_items(
            TransactItems=[{"Update": update}, {"Put": put}], ClientRequestToken="t-1"
        )

    assert caught.value.operation_name == "TransactWriteItems"
    response: Any = caught.value.response
    assert response["Error"]["Code"] == "TransactionCanceledException"
    assert [reason["Code"] for reason in response["CancellationReasons"]] == [
        "ConditionalCheckFailed",
        "None",
    ]
    assert response["CancellationReasons"][0]["Item"] == {**key, "n": {"N": "7"}}
    # All or nothing: the Put beside the failed Update did not happen.
    assert "Item" not in client.get_item(TableName=table, Key=put["Item"], ConsistentRead=True)


def test_waiter_gives_up_on_a_table_that_never_appears(client: DynamoDBClient) -> None:
    sleep = RecordingSleep()
    waiter = DynamoDBClient(endpoint_url=client.endpoint_url, sleep=sleep).get_waiter("table_exists")
    with pytest.raises(WaiterError):
        waiter.wait(TableName="never", WaiterConfig={"Delay": 1, "MaxAttempts": 3})
    assert sleep.delays == [1, 1]


# --- loopback fakes -------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int = 200
    body: dict[str, Any] = field(default_factory=dict)
    raw: bytes | None = None  # sent instead of the JSON body when given
    crc32: Literal["right", "wrong"] | None = None  # an x-amz-crc32 header, as DynamoDB sends


class FakeEndpoint:
    """An HTTP/1.1 endpoint on 127.0.0.1 that answers from a script and checks signatures.

    ``drop_idle`` closes the connection after every response without saying so (no
    ``Connection: close``), as a server does with a kept-alive connection that sat idle too long.
    """

    def __init__(self, replies: list[Reply], *, drop_idle: bool = False) -> None:
        self.replies = list(replies)
        self.targets: list[str] = []
        self.bad_signatures = 0
        self.connections = 0
        self._lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with endpoint._lock:
                    endpoint.connections += 1

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with endpoint._lock:
                    endpoint.targets.append(self.headers["X-Amz-Target"])
                    endpoint.bad_signatures += not _signature_holds(self, body)
                    reply = endpoint.replies.pop(0) if endpoint.replies else Reply()
                data = reply.raw if reply.raw is not None else json.dumps(reply.body).encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/x-amz-json-1.0")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("x-amzn-RequestId", "REQ1")
                if reply.crc32 is not None:
                    crc = zlib.crc32(data) + (reply.crc32 == "wrong")
                    self.send_header("x-amz-crc32", str(crc))
                self.end_headers()
                self.wfile.write(data)
                self.close_connection = drop_idle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.block_on_close = False
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.01,), daemon=True)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeEndpoint:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def _signature_holds(handler: BaseHTTPRequestHandler, body: bytes) -> bool:
    """Recompute the signature from the request as received, like AWS does."""
    authorization = handler.headers["Authorization"]
    signed_names = authorization.split("SignedHeaders=")[1].split(",")[0].split(";")
    request = AWSRequest(
        method=handler.command,
        url=f"http://{handler.headers['Host']}{handler.path}",
        headers={name: handler.headers[name] for name in signed_names},
        data=body,
    )
    request.context["timestamp"] = handler.headers["X-Amz-Date"]
    credentials = botocore.credentials.Credentials(
        FAKE_ENV["AWS_ACCESS_KEY_ID"], FAKE_ENV["AWS_SECRET_ACCESS_KEY"], FAKE_ENV["AWS_SESSION_TOKEN"]
    )
    signer = botocore.auth.SigV4Auth(credentials, "dynamodb", REGION)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    return authorization.endswith(f"Signature={expected}") and "x-amz-security-token" in signed_names


def _throttled(code: str = "ThrottlingException") -> Reply:
    return Reply(400, {"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": "slow down"})


@pytest.fixture
def light(fake_env: None) -> Iterator[Callable[..., DynamoDBClient]]:
    """Clients on fakes, closed after the test."""
    made: list[DynamoDBClient] = []

    def make(url: str, **options: Any) -> DynamoDBClient:
        made.append(DynamoDBClient(endpoint_url=url, **options))
        return made[-1]

    yield make
    for client in made:
        client.close()


def test_throttling_is_retried_with_backoff(light: Callable[..., DynamoDBClient]) -> None:
    sleep = RecordingSleep()
    item = {"pk": {"S": "a"}}
    with FakeEndpoint([_throttled(), _throttled(), Reply(200, {"Item": item})]) as endpoint:
        result = light(endpoint.url, sleep=sleep).get_item(TableName="t", Key=item)

    assert result["Item"] == item
    assert result["ResponseMetadata"]["RetryAttempts"] == 2
    assert endpoint.targets == ["DynamoDB_20120810.GetItem"] * 3
    assert len(sleep.delays) == 2
    assert 0 <= sleep.delays[0] <= 0.05
    assert 0 <= sleep.delays[1] <= 0.1
    assert endpoint.bad_signatures == 0
    assert endpoint.connections == 1  # kept alive across the attempts


@pytest.mark.parametrize(
    "reply",
    [
        _throttled("ProvisionedThroughputExceededException"),
        _throttled("RequestLimitExceeded"),
        _throttled("InternalServerError"),
        Reply(503, raw=b""),
        Reply(502, raw=b"<html><body>Bad Gateway</body></html>"),
    ],
)
def test_retries_stop_at_max_attempts(light: Callable[..., DynamoDBClient], reply: Reply) -> None:
    sleep = RecordingSleep()
    with FakeEndpoint([reply] * 5) as endpoint:
        client = light(endpoint.url, sleep=sleep, max_attempts=2)
        with pytest.raises(ClientError) as caught:
            client.put_item(TableName="t", Item={})

    assert len(endpoint.targets) == 2
    assert caught.value.response["ResponseMetadata"]["RetryAttempts"] == 1
    code = caught.value.response["Error"]["Code"]
    assert code == (str(reply.status) if reply.raw is not None else reply.body["__type"].split("#")[1])


def test_client_errors_are_not_retried(light: Callable[..., DynamoDBClient]) -> None:
    validation = Reply(400, {"__type": "com.amazon.coral.validate#ValidationException", "message": "bad"})
    with FakeEndpoint([validation]) as endpoint, pytest.raises(ClientError) as caught:
        light(endpoint.url, sleep=RecordingSleep()).query(TableName="t")
    assert len(endpoint.targets) == 1
    assert caught.value.response["Error"] == {"Code": "ValidationException", "Message": "bad"}
    assert caught.value.response["ResponseMetadata"]["RequestId"] == "REQ1"


def test_body_that_fails_its_crc32_is_retried(light: Callable[..., DynamoDBClient]) -> None:
    with FakeEndpoint(
        [Reply(200, {"Count": 1}, crc32="wrong"), Reply(200, {"Count": 0}, crc32="right")]
    ) as ep:
        result = light(ep.url, sleep=RecordingSleep()).scan(TableName="t")
    assert result["Count"] == 0
    assert result["ResponseMetadata"]["RetryAttempts"] == 1

    with FakeEndpoint([Reply(200, {"Count": 1}, crc32="wrong")] * 3) as ep, pytest.raises(ChecksumError):
        light(ep.url, sleep=RecordingSleep()).scan(TableName="t")
    assert len(ep.targets) == 3


def test_kept_alive_connection_is_reused(light: Callable[..., DynamoDBClient]) -> None:
    with FakeEndpoint([]) as endpoint:
        client = light(endpoint.url)
        for _ in range(5):
            client.get_item(TableName="t", Key={})
    assert endpoint.connections == 1
    assert len(endpoint.targets) == 5
    assert endpoint.bad_signatures == 0


def test_connection_closed_by_the_server_is_reopened(light: Callable[..., DynamoDBClient]) -> None:
    sleep = RecordingSleep()
    with FakeEndpoint([], drop_idle=True) as endpoint:
        client = light(endpoint.url, sleep=sleep)
        for _ in range(4):
            client.get_item(TableName="t", Key={})
            time.sleep(0.01)  # let the server's close reach us, as an idle timeout would
    assert len(endpoint.targets) == 4  # each request arrived once
    assert endpoint.connections == 4
    assert sleep.delays == []  # a reconnect, not a retry with backoff


def test_each_thread_has_its_own_connection(light: Callable[..., DynamoDBClient]) -> None:
    with FakeEndpoint([]) as endpoint:
        client = light(endpoint.url)
        barrier = threading.Barrier(4)

        def work() -> None:
            barrier.wait(timeout=5)
            for _ in range(3):
                client.get_item(TableName="t", Key={})

        threads = [threading.Thread(target=work) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert endpoint.connections == 4
    assert len(endpoint.targets) == 12
    assert endpoint.bad_signatures == 0


# --- no answer at all -----------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_unreachable_endpoint_fails_fast(light: Callable[..., DynamoDBClient]) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    client = light(url)  # real backoff sleeps: still well under a second

    started = time.monotonic()
    with pytest.raises(EndpointConnectionError) as caught:
        client.get_item(TableName="t", Key={})
    elapsed = time.monotonic() - started

    assert isinstance(caught.value, BotoCoreError)
    assert url in str(caught.value)
    assert elapsed < 1.0


def test_unreachable_endpoint_is_a_store_error(light: Callable[..., DynamoDBClient]) -> None:
    client = light(f"http://127.0.0.1:{_closed_port()}", sleep=RecordingSleep())
    store = DynamoDBCallStore("calls", client)  # type: ignore[arg-type]
    with pytest.raises(StoreError) as caught:
        store.get_call("CA1")
    assert isinstance(caught.value.__cause__, EndpointConnectionError)


def test_silent_server_is_a_read_timeout(light: Callable[..., DynamoDBClient]) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()  # the kernel accepts the connection; nobody ever answers
        port = listener.getsockname()[1]
        client = light(f"http://127.0.0.1:{port}", timeout=0.1, max_attempts=2, sleep=RecordingSleep())
        with pytest.raises(ReadTimeoutError):
            client.get_item(TableName="t", Key={})


def test_connection_dropped_mid_request_is_retried_then_raised(light: Callable[..., DynamoDBClient]) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        accepted: list[int] = []

        def drop() -> None:
            for _ in range(2):
                connection, _ = listener.accept()
                connection.recv(65536)
                connection.close()  # request read, no answer
                accepted.append(1)

        dropper = threading.Thread(target=drop)
        dropper.start()
        client = light(f"http://127.0.0.1:{port}", max_attempts=2, sleep=RecordingSleep())
        with pytest.raises(ConnectionClosedError):
            client.get_item(TableName="t", Key={})
        dropper.join(timeout=5)
    assert len(accepted) == 2


# --- configuration and credentials ----------------------------------------------------------------


def test_region_and_endpoint_come_from_arguments_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*UNSET_ENV, "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigurationError):
        DynamoDBClient()

    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    assert DynamoDBClient().endpoint_url == "https://dynamodb.eu-west-1.amazonaws.com"
    monkeypatch.setenv("AWS_REGION", "eu-central-1")  # Lambda's name wins
    assert DynamoDBClient().region == "eu-central-1"
    assert DynamoDBClient(region="cn-north-1").endpoint_url == "https://dynamodb.cn-north-1.amazonaws.com.cn"

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://localhost:4566")
    assert DynamoDBClient().endpoint_url == "http://localhost:4566"
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://localhost:8000")
    assert DynamoDBClient().endpoint_url == "http://localhost:8000"
    assert DynamoDBClient(endpoint_url="http://127.0.0.1:9").endpoint_url == "http://127.0.0.1:9"

    with pytest.raises(ConfigurationError):
        DynamoDBClient(endpoint_url="dynamodb.local:8000")
    with pytest.raises(ConfigurationError):
        DynamoDBClient(max_attempts=0)


def test_credentials_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    provider = DefaultCredentialsProvider()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKID")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_SECURITY_TOKEN", raising=False)
    assert provider() == Credentials("AKID", "secret", None)

    monkeypatch.setenv("AWS_SESSION_TOKEN", "token")
    assert provider() == Credentials("AKID", "secret", "token")

    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(PartialCredentialsError):
        provider()


def test_credentials_fall_back_to_botocore_chain(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in CHAIN_ENV:  # keep the chain off the network: no container or web-identity role
        monkeypatch.delenv(name, raising=False)
    shared = tmp_path / "credentials"
    shared.write_text("[default]\naws_access_key_id = AKIDFILE\naws_secret_access_key = filesecret\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(shared))

    assert DefaultCredentialsProvider()() == Credentials("AKIDFILE", "filesecret", None)

    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    with pytest.raises(NoCredentialsError):
        DefaultCredentialsProvider()()


@pytest.mark.slow
def test_import_stays_light() -> None:
    """No boto3, no botocore session or client machinery: only ``botocore.exceptions``."""
    code = (
        "import sys, callkit.aws.dynamodb, callkit.app_loader\n"
        "heavy = [m for m in ('boto3', 'botocore.session', 'botocore.client', 'botocore.auth')"
        " if m in sys.modules]\n"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
