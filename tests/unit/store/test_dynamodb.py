"""What only the DynamoDB store has: the item layout, the table, error translation, the codec."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pytest
from botocore.exceptions import ClientError

from callkit.errors import CallNotFoundError, StoreError
from callkit.lifecycle import CallStatus
from callkit.store import DEFAULT_RETENTION_SECONDS, CallRecord, DynamoDBCallStore, create_table
from callkit.store.dynamodb import from_item, to_item

if TYPE_CHECKING:
    from collections.abc import Callable

    from mypy_boto3_dynamodb.client import DynamoDBClient

T0 = 1_700_000_000.0
TABLE = "callkit-test"


def make_record(call_id: str = "CA0001", **changes: Any) -> CallRecord:
    record = CallRecord(
        call_id=call_id,
        carrier="twilio",
        pipeline="managed",
        status=CallStatus.RINGING,
        from_number="+15550100001",
        to_number="+15550100002",
        account_id="AC0001",
        answer="<Response><Say>hi</Say></Response>",
        created_at=T0,
        updated_at=T0,
        expires_at=int(T0) + DEFAULT_RETENTION_SECONDS,
    )
    return replace(record, **changes)


def test_item_layout(dynamodb_client: DynamoDBClient, dynamodb_store: DynamoDBCallStore) -> None:
    dynamodb_store.create_call(make_record("CA0001"))

    item = dynamodb_client.get_item(
        TableName=TABLE, Key={"pk": {"S": "CALL#CA0001"}, "sk": {"S": "META"}}, ConsistentRead=True
    )["Item"]

    assert item["status"] == {"S": "ringing"}
    assert item["expires_at"] == {"N": str(int(T0) + DEFAULT_RETENTION_SECONDS)}
    assert item["version"] == {"N": "1"}
    # None fields are left out, not stored as NULL.
    assert not {"status_sequence", "duration_seconds", "ended_at"} & item.keys()


def test_table_has_keys_billing_and_ttl(dynamodb_client: DynamoDBClient) -> None:
    table = dynamodb_client.describe_table(TableName=TABLE)["Table"]
    ttl = dynamodb_client.describe_time_to_live(TableName=TABLE)["TimeToLiveDescription"]

    assert table["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}


def test_create_table_twice_is_harmless(dynamodb_client: DynamoDBClient) -> None:
    assert create_table(dynamodb_client, TABLE) is False


def test_client_errors_become_store_errors(
    dynamodb_client: DynamoDBClient, clock: Callable[[], float]
) -> None:
    store = DynamoDBCallStore("no-such-table", dynamodb_client, now=clock)

    for attempt in (
        lambda: store.create_call(make_record()),
        lambda: store.get_call("CA0001"),
        lambda: store.transition("CA0001", CallStatus.COMPLETED, now=T0),
    ):
        with pytest.raises(StoreError) as caught:
            attempt()
        assert not isinstance(caught.value, CallNotFoundError)
        assert isinstance(caught.value.__cause__, ClientError)
        assert "ResourceNotFoundException" in str(caught.value)


class _WithoutOldItem:
    """A client like an endpoint that ignores ``ReturnValuesOnConditionCheckFailure``."""

    def __init__(self, client: DynamoDBClient) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)

        def call(**kwargs: Any) -> Any:
            try:
                return method(**kwargs)
            except ClientError as exc:
                exc.response.pop("Item", None)  # type: ignore[typeddict-item]
                raise

        return call


def test_falls_back_to_a_read_without_the_old_item(
    dynamodb_client: DynamoDBClient, clock: Callable[[], float]
) -> None:
    store = DynamoDBCallStore(TABLE, _WithoutOldItem(dynamodb_client), now=clock)  # type: ignore[arg-type]
    first = make_record()
    store.create_call(first)

    duplicate = store.create_call(make_record(answer="<Response>retry</Response>"))
    ended = store.transition("CA0001", CallStatus.COMPLETED, now=T0 + 5)
    late = store.transition("CA0001", CallStatus.IN_PROGRESS, now=T0 + 6)

    assert duplicate.created is False
    assert duplicate.record == first
    assert late.applied is False
    assert late.record == ended.record
    with pytest.raises(CallNotFoundError):
        store.transition("CA-missing", CallStatus.COMPLETED, now=T0)


@pytest.mark.parametrize(
    "record",
    [
        make_record(),
        make_record(
            status=CallStatus.NO_ANSWER,
            status_sequence=0,
            duration_seconds=0,
            ended_at=T0 + 1e-6,
            created_at=0.1,
            updated_at=T0 + 1 / 3,
            version=12,
            answer="",
        ),
    ],
)
def test_item_codec_round_trips(record: CallRecord) -> None:
    assert from_item(to_item(record)) == record


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("status", {"S": "ringing-ish"}),
        ("carrier", {"S": "vonage"}),
        ("pipeline", {"S": "magic"}),
        ("version", {"S": "1"}),
        ("expires_at", {"N": "1.5"}),
        ("created_at", "1700000000"),
    ],
)
def test_malformed_item_is_a_store_error(name: str, value: object) -> None:
    item: dict[str, object] = {**to_item(make_record()), name: value}
    with pytest.raises(StoreError, match="malformed call item"):
        from_item(item)


def test_missing_attribute_is_a_store_error() -> None:
    item = to_item(make_record())
    del item["answer"]
    with pytest.raises(StoreError, match="malformed call item"):
        from_item(item)
