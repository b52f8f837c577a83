"""What only the DynamoDB store has: the item layout, the table, error translation, the codec.

The managed-mode contract is in ``test_relay_contract.py``; its DynamoDB-only corners are at the end.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pytest
from botocore.exceptions import ClientError

from callkit.errors import CallNotFoundError, StoreError, TransitionError
from callkit.lifecycle import CallStatus
from callkit.store import DEFAULT_RETENTION_SECONDS, CallRecord, DynamoDBCallStore, TurnRecord, create_table
from callkit.store.dynamodb import from_item, to_item, turn_from_item

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


# --- managed mode: items, codec, transaction edge cases ------------------------------------------


def make_turn(call_id: str = "CA0001", turn: int = 1, **changes: Any) -> TurnRecord:
    record = TurnRecord(
        call_id=call_id,
        turn=turn,
        kind="prompt",
        caller_text="where is my order",
        assistant_text="It ships Monday.",
        messages='[{"role": "assistant", "content": "It ships Monday."}]',
        tool_calls="[]",
        started_at=T0 + 1,
        expires_at=int(T0) + DEFAULT_RETENTION_SECONDS,
    )
    return replace(record, **changes)


def _get(client: DynamoDBClient, pk: str, sk: str) -> dict[str, Any]:
    response = client.get_item(TableName=TABLE, Key={"pk": {"S": pk}, "sk": {"S": sk}}, ConsistentRead=True)
    return dict(response.get("Item", {}))


def test_relay_item_layout(dynamodb_client: DynamoDBClient, dynamodb_store: DynamoDBCallStore) -> None:
    dynamodb_store.create_call(make_record("CA0001"))
    assert "turn" not in _get(dynamodb_client, "CALL#CA0001", "META")  # 0 is left out, like None

    dynamodb_store.attach_connection("CA0001", "conn-1=", now=T0 + 1)
    dynamodb_store.next_turn("CA0001", now=T0 + 2)
    dynamodb_store.record_turn(make_turn(turn=1))
    dynamodb_store.interrupt_turn("CA0001", "It ships", now=T0 + 3)

    meta = _get(dynamodb_client, "CALL#CA0001", "META")
    assert meta["connection_id"] == {"S": "conn-1="}
    assert meta["turn"] == {"N": "2"}
    assert meta["status"] == {"S": "in-progress"}
    assert _get(dynamodb_client, "CONN#conn-1=", "CALL") == {
        "pk": {"S": "CONN#conn-1="},
        "sk": {"S": "CALL"},
        "call_id": {"S": "CA0001"},
        "expires_at": meta["expires_at"],
    }
    turn = _get(dynamodb_client, "CALL#CA0001", "TURN#000001")
    assert turn["heard_text"] == {"S": "It ships"}
    assert turn["interrupted"] == {"BOOL": True}
    assert turn["kind"] == {"S": "prompt"}
    # None latencies are left out, not stored as NULL.
    assert not {"first_token_ms", "total_ms"} & turn.keys()


def test_interrupt_creates_the_turn_item_with_the_calls_expiry(
    dynamodb_client: DynamoDBClient, dynamodb_store: DynamoDBCallStore
) -> None:
    dynamodb_store.create_call(make_record("CA0001", expires_at=int(T0) + 600))

    dynamodb_store.interrupt_turn("CA0001", "Hel", now=T0 + 1)

    assert _get(dynamodb_client, "CALL#CA0001", "TURN#000000") == {
        "pk": {"S": "CALL#CA0001"},
        "sk": {"S": "TURN#000000"},
        "call_id": {"S": "CA0001"},
        "turn": {"N": "0"},
        "heard_text": {"S": "Hel"},
        "interrupted": {"BOOL": True},
        "expires_at": {"N": str(int(T0) + 600)},
    }
    dynamodb_store.record_turn(make_turn(turn=0, kind="welcome", caller_text="", expires_at=int(T0) + 900))
    assert _get(dynamodb_client, "CALL#CA0001", "TURN#000000")["expires_at"] == {"N": str(int(T0) + 900)}


def test_items_written_before_managed_mode_still_read(
    dynamodb_client: DynamoDBClient, dynamodb_store: DynamoDBCallStore
) -> None:
    item = to_item(make_record())
    assert not {"connection_id", "turn"} & item.keys()
    dynamodb_client.put_item(TableName=TABLE, Item=item)

    record = dynamodb_store.get_call("CA0001")
    assert record is not None
    assert (record.connection_id, record.turn) == (None, 0)
    assert dynamodb_store.current_turn("CA0001") == 0
    assert dynamodb_store.next_turn("CA0001", now=T0 + 1) == 1  # ADD on an absent number starts at 0


@pytest.mark.parametrize(
    "record",
    [make_record(connection_id="conn-1=", turn=12, status=CallStatus.IN_PROGRESS), make_record(turn=1)],
)
def test_relay_fields_round_trip(record: CallRecord) -> None:
    assert from_item(to_item(record)) == record


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("kind", {"S": "voicemail"}),
        ("turn", {"S": "1"}),
        ("interrupted", {"S": "true"}),
        ("first_token_ms", {"S": "12"}),
        ("caller_text", {"N": "1"}),
    ],
)
def test_malformed_turn_item_is_a_store_error(name: str, value: object) -> None:
    item: dict[str, object] = {
        "call_id": {"S": "CA0001"},
        "turn": {"N": "1"},
        "kind": {"S": "prompt"},
        "caller_text": {"S": "hi"},
        "assistant_text": {"S": "hello"},
        "messages": {"S": "[]"},
        "tool_calls": {"S": "[]"},
        "started_at": {"N": "1700000000.5"},
        "expires_at": {"N": "1700000600"},
        "first_token_ms": {"N": "12.5"},
        "interrupted": {"BOOL": False},
    }
    assert turn_from_item(item).first_token_ms == 12.5
    item[name] = value
    with pytest.raises(StoreError, match="malformed turn item"):
        turn_from_item(item)


class _Recording:
    """A client that records each request and can change what comes back."""

    def __init__(self, client: DynamoDBClient) -> None:
        self._client = client
        self.requests: list[tuple[str, dict[str, Any]]] = []
        #: Raised, one per call, before the real ``transact_write_items`` runs.
        self.transaction_errors: list[ClientError] = []
        #: Answered, one per call, instead of what ``get_item`` would read.
        self.stale_reads: list[dict[str, Any]] = []
        self.drop_cancellation_items = False

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)

        def call(**kwargs: Any) -> Any:
            self.requests.append((name, kwargs))
            if name == "transact_write_items" and self.transaction_errors:
                raise self.transaction_errors.pop(0)
            if name == "get_item" and self.stale_reads:
                return self.stale_reads.pop(0)
            try:
                return method(**kwargs)
            except ClientError as exc:
                if self.drop_cancellation_items:
                    response: Any = exc.response
                    for reason in response.get("CancellationReasons", []):
                        reason.pop("Item", None)
                raise

        return call


def _conflict() -> ClientError:
    reasons = [
        {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"},
        {"Code": "None"},
    ]
    response: Any = {
        "Error": {"Code": "TransactionCanceledException", "Message": "Transaction cancelled"},
        "CancellationReasons": reasons,
    }
    return ClientError(response, "TransactWriteItems")


def test_attach_is_one_transaction_with_a_request_token(
    dynamodb_client: DynamoDBClient, clock: Callable[[], float]
) -> None:
    recording = _Recording(dynamodb_client)
    store = DynamoDBCallStore(TABLE, recording, now=clock)  # type: ignore[arg-type]
    store.create_call(make_record())
    recording.requests.clear()

    store.attach_connection("CA0001", "conn-1=", now=T0 + 1)

    assert [name for name, _ in recording.requests] == ["get_item", "transact_write_items"]
    transaction = recording.requests[1][1]
    assert [next(iter(action)) for action in transaction["TransactItems"]] == ["Update", "Put"]
    assert len(transaction["ClientRequestToken"]) == 36


def test_attach_retries_a_transaction_conflict(
    dynamodb_client: DynamoDBClient, clock: Callable[[], float]
) -> None:
    recording = _Recording(dynamodb_client)
    store = DynamoDBCallStore(TABLE, recording, now=clock)  # type: ignore[arg-type]
    store.create_call(make_record())
    recording.transaction_errors = [_conflict(), _conflict()]

    attached = store.attach_connection("CA0001", "conn-1=", now=T0 + 1)

    assert attached.connection_id == "conn-1="
    assert store.call_for_connection("conn-1=") == attached
    tokens = {kw["ClientRequestToken"] for name, kw in recording.requests if name == "transact_write_items"}
    assert len(tokens) == 3  # a new attempt, not a replay of the cancelled one


def test_attach_gives_up_on_endless_conflicts(
    dynamodb_client: DynamoDBClient, clock: Callable[[], float]
) -> None:
    recording = _Recording(dynamodb_client)
    store = DynamoDBCallStore(TABLE, recording, now=clock)  # type: ignore[arg-type]
    store.create_call(make_record())
    recording.transaction_errors = [_conflict() for _ in range(10)]

    with pytest.raises(StoreError) as caught:
        store.attach_connection("CA0001", "conn-1=", now=T0 + 1)

    assert type(caught.value) is StoreError
    assert store.get_call("CA0001") == make_record()


@pytest.fixture(params=[False, True], ids=["with-item", "without-item"])
def stale(request: pytest.FixtureRequest, dynamodb_client: DynamoDBClient, clock: Callable[[], float]) -> Any:
    """A store whose first read can be made stale, on an endpoint that does or does not return
    the cancelled item (``ReturnValuesOnConditionCheckFailure`` inside a transaction)."""
    recording = _Recording(dynamodb_client)
    recording.drop_cancellation_items = request.param
    return recording, DynamoDBCallStore(TABLE, recording, now=clock)  # type: ignore[arg-type]


def test_attach_retries_when_the_call_changed_but_is_still_attachable(stale: Any) -> None:
    recording, store = stale
    store.create_call(make_record())
    recording.stale_reads = [{"Item": to_item(make_record())}]  # what the read saw: ringing, v1
    store.transition("CA0001", CallStatus.IN_PROGRESS, now=T0 + 1)  # then a status callback

    attached = store.attach_connection("CA0001", "conn-1=", now=T0 + 2)

    assert attached == make_record(
        status=CallStatus.IN_PROGRESS, connection_id="conn-1=", updated_at=T0 + 2, version=3
    )
    assert store.get_call("CA0001") == attached
    assert [name for name, _ in recording.requests].count("transact_write_items") == 2


def test_attach_refused_after_a_stale_read(stale: Any) -> None:
    recording, store = stale
    store.create_call(make_record())
    first = store.attach_connection("CA0001", "conn-1=", now=T0 + 1)
    recording.stale_reads = [{"Item": to_item(make_record())}]  # read before the first attach
    recording.requests.clear()

    with pytest.raises(TransitionError):
        store.attach_connection("CA0001", "conn-2=", now=T0 + 2)

    # The transaction refused it; without the cancelled item, one more read says why.
    extra_read = ["get_item"] if recording.drop_cancellation_items else []
    assert [name for name, _ in recording.requests] == ["get_item", "transact_write_items", *extra_read]
    assert store.get_call("CA0001") == first
    assert store.call_for_connection("conn-2=") is None


def test_attach_to_a_call_gone_after_a_stale_read(stale: Any) -> None:
    recording, store = stale
    recording.stale_reads = [{"Item": to_item(make_record())}]  # the call was read, then swept

    with pytest.raises(CallNotFoundError):
        store.attach_connection("CA0001", "conn-1=", now=T0 + 2)

    assert store.call_for_connection("conn-1=") is None


def test_current_turn_is_one_projected_read(
    dynamodb_client: DynamoDBClient, clock: Callable[[], float]
) -> None:
    recording = _Recording(dynamodb_client)
    store = DynamoDBCallStore(TABLE, recording, now=clock)  # type: ignore[arg-type]
    store.create_call(make_record())
    store.next_turn("CA0001", now=T0 + 1)
    recording.requests.clear()

    assert store.current_turn("CA0001") == 1

    [(name, request)] = recording.requests
    assert name == "get_item"
    assert request["ConsistentRead"] is True
    assert request["ProjectionExpression"] == "turn, expires_at"


def test_relay_client_errors_become_store_errors(
    dynamodb_client: DynamoDBClient, clock: Callable[[], float]
) -> None:
    store = DynamoDBCallStore("no-such-table", dynamodb_client, now=clock)

    for attempt in (
        lambda: store.attach_connection("CA0001", "conn-1=", now=T0),
        lambda: store.call_for_connection("conn-1="),
        lambda: store.next_turn("CA0001", now=T0),
        lambda: store.current_turn("CA0001"),
        lambda: store.interrupt_turn("CA0001", "", now=T0),
        lambda: store.record_turn(make_turn()),
        lambda: store.list_turns("CA0001"),
    ):
        with pytest.raises(StoreError) as caught:
            attempt()
        assert not isinstance(caught.value, CallNotFoundError)
        assert isinstance(caught.value.__cause__, ClientError)
        assert "ResourceNotFoundException" in str(caught.value)
