"""The call store on DynamoDB, through the low-level client.

One table, one item per call (aws.md §5): ``pk = CALL#{call_id}``, ``sk = META``; later item kinds
(``TURN#000001``) share the partition. ``expires_at`` (N, epoch seconds) is the TTL attribute.
Races are settled by the table, not by us: creation is a conditional put, every status change is
one conditional update whose condition *is* the lifecycle rule, so concurrent webhook retries and
reordered status callbacks give the same result in any order.

The low-level client, not the resource API: the resource layer is slow to import and build on a
Lambda cold start, and typed attribute values are easy to write by hand for one item shape. Only
``botocore.exceptions`` is imported here; the caller builds the client.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, cast, get_args

from botocore.exceptions import BotoCoreError, ClientError

from callkit.errors import CallNotFoundError, StoreError
from callkit.lifecycle import CallStatus, allowed_sources
from callkit.store._base import CallRecord, Carrier, CreateResult, Pipeline, TransitionResult

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

    Item = dict[str, AttributeValueTypeDef]

__all__ = ["TTL_ATTRIBUTE", "DynamoDBCallStore", "create_table", "from_item", "to_item"]

#: The TTL attribute (N, epoch seconds) the table's TimeToLiveSpecification names.
TTL_ATTRIBUTE = "expires_at"

_CONDITION_FAILED = "ConditionalCheckFailedException"
_CARRIERS: frozenset[str] = frozenset(get_args(Carrier))
_PIPELINES: frozenset[str] = frozenset(get_args(Pipeline))


class DynamoDBCallStore:
    """A ``CallStore`` on one DynamoDB table (keys ``pk``/``sk``, TTL on ``expires_at``).

    Reads are strongly consistent: a status callback must see the item the webhook just wrote.

    TTL: DynamoDB deletes expired items only eventually (typically within two days), so an item
    whose ``expires_at`` is at or before ``now()`` is treated as absent everywhere: ``get_call``
    returns ``None``, ``transition`` raises ``CallNotFoundError`` and ``create_call`` overwrites
    it. ``now`` is the clock for that check only; ``transition`` stamps ``updated_at`` with its
    own ``now`` argument.

    Transitions apply when the stored status is in ``lifecycle.allowed_sources(status)`` and, if
    both are known, ``sequence`` is greater than the stored ``status_sequence``. Re-entering the
    current status is a pure no-op (``applied=False``, nothing written), even with a newer
    sequence: the sequence orders *changes*, and recording it from a duplicate could only make the
    store reject a later real change whose sequence falls in between (for example the terminal
    one), never protect against anything the lifecycle does not already block. ``sequence=None``
    skips the ordering check and leaves ``status_sequence`` as it is; ``duration_seconds`` and
    ``ended_at`` are written when given and kept otherwise. An applied transition bumps ``version``.

    Errors: a failed condition is an answer (``created=False``/``applied=False``), never an
    exception; any other ``ClientError`` or ``BotoCoreError`` becomes ``StoreError`` with the
    botocore error as its cause.
    """

    def __init__(
        self, table_name: str, client: DynamoDBClient, *, now: Callable[[], float] = time.time
    ) -> None:
        self._table = table_name
        self._client = client
        self._now = now

    def create_call(self, record: CallRecord) -> CreateResult:
        try:
            self._client.put_item(
                TableName=self._table,
                Item=to_item(record),
                # An item past its TTL that DynamoDB has not swept yet counts as absent.
                ConditionExpression="attribute_not_exists(pk) OR expires_at <= :now",
                ExpressionAttributeValues={":now": _number(self._now())},
                # The existing item comes back in the error: no second round trip, no race.
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            old = _item_on_condition_failure(exc)
        except BotoCoreError as exc:
            raise _store_error("PutItem", exc) from exc
        else:
            return CreateResult(created=True, record=record)
        existing = from_item(old) if old is not None else self.get_call(record.call_id)
        if existing is None:
            # Swept or expired between the put and the read: vanishingly rare; the caller (a
            # webhook the carrier retries) may try again.
            raise StoreError(f"call item for {record.call_id!r} changed during create")
        return CreateResult(created=False, record=existing)

    def get_call(self, call_id: str) -> CallRecord | None:
        record = self._read(call_id)
        if record is None or record.expires_at <= self._now():
            return None
        return record

    def transition(
        self,
        call_id: str,
        status: CallStatus,
        *,
        now: float,
        sequence: int | None = None,
        duration_seconds: int | None = None,
        ended_at: float | None = None,
    ) -> TransitionResult:
        sources = sorted(allowed_sources(status))
        if not sources:
            # Nothing may enter this status (``ringing``); ``IN ()`` is not valid syntax anyway.
            return self._not_applied(call_id)

        values: dict[str, AttributeValueTypeDef] = {
            ":status": {"S": status.value},
            ":now": _number(now),
            ":one": {"N": "1"},
            ":ttl_now": _number(self._now()),
        }
        updates = ["#status = :status", "updated_at = :now", "#version = #version + :one"]
        placeholders = []
        for i, source in enumerate(sources):
            values[f":from{i}"] = {"S": source.value}
            placeholders.append(f":from{i}")
        conditions = [
            "attribute_exists(pk)",
            "expires_at > :ttl_now",
            f"#status IN ({', '.join(placeholders)})",
        ]
        if sequence is not None:
            values[":seq"] = _number(sequence)
            updates.append("status_sequence = :seq")
            conditions.append("(attribute_not_exists(status_sequence) OR status_sequence < :seq)")
        if duration_seconds is not None:
            values[":duration"] = _number(duration_seconds)
            updates.append("duration_seconds = :duration")
        if ended_at is not None:
            values[":ended"] = _number(ended_at)
            updates.append("ended_at = :ended")

        try:
            response = self._client.update_item(
                TableName=self._table,
                Key=_key(call_id),
                UpdateExpression="SET " + ", ".join(updates),
                ConditionExpression=" AND ".join(conditions),
                ExpressionAttributeNames={"#status": "status", "#version": "version"},
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            old = _item_on_condition_failure(exc)
        except BotoCoreError as exc:
            raise _store_error("UpdateItem", exc) from exc
        else:
            return TransitionResult(applied=True, record=from_item(response["Attributes"]))
        if old is None:
            # No item (so nothing came back), or an endpoint that ignores ALL_OLD: look.
            return self._not_applied(call_id)
        current = from_item(old)
        if current.expires_at <= self._now():
            raise CallNotFoundError(f"no call item for {call_id!r}")
        return TransitionResult(applied=False, record=current)

    def _not_applied(self, call_id: str) -> TransitionResult:
        current = self.get_call(call_id)
        if current is None:
            raise CallNotFoundError(f"no call item for {call_id!r}")
        return TransitionResult(applied=False, record=current)

    def _read(self, call_id: str) -> CallRecord | None:
        """The stored item, expired or not."""
        try:
            response = self._client.get_item(TableName=self._table, Key=_key(call_id), ConsistentRead=True)
        except (ClientError, BotoCoreError) as exc:
            raise _store_error("GetItem", exc) from exc
        item = response.get("Item")
        return None if item is None else from_item(item)


def create_table(client: DynamoDBClient, table_name: str) -> bool:
    """Create the call table as the SAM template does; ``False`` if it already exists.

    On-demand billing, ``pk``/``sk`` string keys, TTL on ``expires_at``. For tests, the demo and
    local runs against moto or DynamoDB Local; deployed tables come from the template.
    """
    try:
        client.create_table(
            TableName=table_name,
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        # The default waiter polls every 20 s; local endpoints are ready at once, AWS in seconds.
        client.get_waiter("table_exists").wait(
            TableName=table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
        )
        client.update_time_to_live(
            TableName=table_name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
        )
    except ClientError as exc:
        if _error_code(exc) == "ResourceInUseException":
            return False
        raise _store_error(exc.operation_name, exc) from exc
    except BotoCoreError as exc:
        raise _store_error("CreateTable", exc) from exc
    return True


# --- item codec -------------------------------------------------------------------------------


def _key(call_id: str) -> Item:
    return {"pk": {"S": f"CALL#{call_id}"}, "sk": {"S": "META"}}


def _number(value: float) -> AttributeValueTypeDef:
    # repr() round-trips a float exactly (≤ 17 significant digits; DynamoDB keeps 38).
    return {"N": repr(value)}


def to_item(record: CallRecord) -> Item:
    """The DynamoDB item for ``record``; ``None`` fields are left out."""
    item: Item = {
        **_key(record.call_id),
        "call_id": {"S": record.call_id},
        "carrier": {"S": record.carrier},
        "pipeline": {"S": record.pipeline},
        "status": {"S": record.status.value},
        "from_number": {"S": record.from_number},
        "to_number": {"S": record.to_number},
        "account_id": {"S": record.account_id},
        "answer": {"S": record.answer},
        "created_at": _number(record.created_at),
        "updated_at": _number(record.updated_at),
        TTL_ATTRIBUTE: _number(record.expires_at),
        "version": _number(record.version),
    }
    if record.status_sequence is not None:
        item["status_sequence"] = _number(record.status_sequence)
    if record.duration_seconds is not None:
        item["duration_seconds"] = _number(record.duration_seconds)
    if record.ended_at is not None:
        item["ended_at"] = _number(record.ended_at)
    return item


def from_item(item: Mapping[str, object]) -> CallRecord:
    """Parse a stored item; ``StoreError`` if it is not a call item this module wrote."""
    try:
        return CallRecord(
            call_id=_text(item, "call_id"),
            carrier=_carrier(_text(item, "carrier")),
            pipeline=_pipeline(_text(item, "pipeline")),
            status=CallStatus(_text(item, "status")),
            from_number=_text(item, "from_number"),
            to_number=_text(item, "to_number"),
            account_id=_text(item, "account_id"),
            answer=_text(item, "answer"),
            created_at=float(_value(item, "created_at", "N")),
            updated_at=float(_value(item, "updated_at", "N")),
            expires_at=int(_value(item, TTL_ATTRIBUTE, "N")),
            status_sequence=_optional_int(item, "status_sequence"),
            duration_seconds=_optional_int(item, "duration_seconds"),
            ended_at=None if "ended_at" not in item else float(_value(item, "ended_at", "N")),
            version=int(_value(item, "version", "N")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise StoreError(f"malformed call item: {type(exc).__name__}: {exc}") from exc


def _value(item: Mapping[str, object], name: str, kind: str) -> str:
    attribute = item[name]
    if not isinstance(attribute, Mapping):
        raise TypeError(f"attribute {name!r} is not a typed attribute value")
    value = attribute.get(kind)
    if not isinstance(value, str):
        raise TypeError(f"attribute {name!r} is not of type {kind}")
    return value


def _text(item: Mapping[str, object], name: str) -> str:
    return _value(item, name, "S")


def _optional_int(item: Mapping[str, object], name: str) -> int | None:
    return None if name not in item else int(_value(item, name, "N"))


def _carrier(value: str) -> Carrier:
    if value not in _CARRIERS:
        raise ValueError(f"unknown carrier {value!r}")
    return cast("Carrier", value)


def _pipeline(value: str) -> Pipeline:
    if value not in _PIPELINES:
        raise ValueError(f"unknown pipeline {value!r}")
    return cast("Pipeline", value)


# --- errors -----------------------------------------------------------------------------------


def _error_code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def _item_on_condition_failure(exc: ClientError) -> Mapping[str, object] | None:
    """The item returned with a failed condition (``ALL_OLD``), or ``None`` if there was none.

    Raises ``StoreError`` for every other error: only a failed condition is an answer.
    """
    if _error_code(exc) != _CONDITION_FAILED:
        raise _store_error(exc.operation_name, exc) from exc
    # botocore puts the returned item next to "Error"; its stubs do not declare the key.
    item = cast("Mapping[str, Any]", exc.response).get("Item")
    return item if isinstance(item, Mapping) else None


def _store_error(operation: str, exc: ClientError | BotoCoreError) -> StoreError:
    # Name the operation and error code only: messages can echo request values; the cause is kept.
    detail = _error_code(exc) if isinstance(exc, ClientError) else type(exc).__name__
    return StoreError(f"DynamoDB {operation} failed: {detail}")
