"""The call store on DynamoDB, through the low-level client.

One table (docs/aws.md §5), keys ``pk``/``sk``, ``expires_at`` (N, epoch seconds) the TTL attribute:

- ``CALL#{call_id}`` / ``META``: the call; managed calls add ``connection_id`` and ``turn`` (the
  turn fence);
- ``CALL#{call_id}`` / ``TURN#{n:06d}``: one managed turn, so a Query on the call's partition
  lists them in order (turn 0 is the welcome greeting);
- ``CONN#{connection_id}`` / ``CALL``: which call an API Gateway WebSocket connection belongs to.

Races are settled by the table, not by us: creation is a conditional put, every status change is
one conditional update whose condition *is* the lifecycle rule, so concurrent webhook retries and
reordered status callbacks give the same result in any order. Managed mode adds one transaction
(attaching the relay connection), atomic ``ADD`` on the fence, and turn writes that touch
disjoint attributes so that they commute.

The low-level client, not the resource API: the resource layer is slow to import and build on a
Lambda cold start, and typed attribute values are easy to write by hand for one item shape. Only
``botocore.exceptions`` is imported here; the caller builds the client.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast, get_args

from botocore.exceptions import BotoCoreError, ClientError

from callkit.errors import CallNotFoundError, StoreError, TransitionError
from callkit.lifecycle import CallStatus, allowed_sources
from callkit.store._base import (
    CallRecord,
    Carrier,
    CreateResult,
    Pipeline,
    TransitionResult,
    TurnKind,
    TurnRecord,
    fills_details,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

    Item = dict[str, AttributeValueTypeDef]

__all__ = ["TTL_ATTRIBUTE", "DynamoDBCallStore", "create_table", "from_item", "to_item", "turn_from_item"]

#: The TTL attribute (N, epoch seconds) the table's TimeToLiveSpecification names.
TTL_ATTRIBUTE = "expires_at"

_CONDITION_FAILED = "ConditionalCheckFailedException"
_TRANSACTION_CANCELED = "TransactionCanceledException"
_CARRIERS: frozenset[str] = frozenset(get_args(Carrier))
_PIPELINES: frozenset[str] = frozenset(get_args(Pipeline))
_TURN_KINDS: frozenset[str] = frozenset(get_args(TurnKind))
#: How often ``attach_connection`` re-reads and tries again when the call changed under it.
_ATTACH_ATTEMPTS = 5


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

    Managed mode (the contract is on ``CallStore``): ``attach_connection`` reads the call, then
    writes one ``TransactWriteItems`` (conditional Update of META, Put of ``CONN#`` if absent or
    expired); the fence is ``ADD turn :one`` on META (``next_turn``, ``interrupt_turn``) and a
    projected read (``current_turn``); turn items are only ever written by ``UpdateItem``, and
    ``record_turn`` and ``interrupt_turn`` set disjoint attributes, so they commute.

    Errors: a failed condition is an answer (``created=False``/``applied=False``), never an
    exception, except in the managed-mode methods, whose refusals are ``CallNotFoundError`` or
    ``TransitionError``; any other ``ClientError`` or ``BotoCoreError`` becomes ``StoreError``
    with the botocore error as its cause.
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
        if fills_details(current, status, duration_seconds, ended_at):
            return self._fill_details(
                call_id, status, now=now, duration_seconds=duration_seconds, ended_at=ended_at
            )
        return TransitionResult(applied=False, record=current)

    def _fill_details(
        self,
        call_id: str,
        status: CallStatus,
        *,
        now: float,
        duration_seconds: int | None,
        ended_at: float | None,
    ) -> TransitionResult:
        """The call already ended with ``status``: add the duration and end time it lacks, nothing else."""
        values: dict[str, AttributeValueTypeDef] = {":status": {"S": status.value}, ":now": _number(now)}
        updates = ["updated_at = :now"]
        if duration_seconds is not None:
            values[":duration"] = _number(duration_seconds)
            updates.append("duration_seconds = if_not_exists(duration_seconds, :duration)")
        if ended_at is not None:
            values[":ended"] = _number(ended_at)
            updates.append("ended_at = if_not_exists(ended_at, :ended)")
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key=_key(call_id),
                UpdateExpression="SET " + ", ".join(updates),
                ConditionExpression="attribute_exists(pk) AND #status = :status",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except ClientError:
            return self._not_applied(call_id)
        except BotoCoreError as exc:
            raise _store_error("UpdateItem", exc) from exc
        return TransitionResult(applied=True, record=from_item(response["Attributes"]))

    # --- managed mode (see ``CallStore`` for the contract) -------------------------------------------

    def claim_stream(self, call_id: str, stream_id: str, *, now: float) -> CallRecord:
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key=_key(call_id),
                UpdateExpression="SET stream_id = :stream, #status = :in_progress, updated_at = :now, "
                "#version = #version + :one",
                ConditionExpression="attribute_exists(pk) AND expires_at > :ttl_now "
                "AND pipeline IN (:cascading, :realtime) AND #status IN (:ringing, :in_progress) "
                "AND attribute_not_exists(stream_id)",
                ExpressionAttributeNames={"#status": "status", "#version": "version"},
                ExpressionAttributeValues={
                    ":stream": {"S": stream_id},
                    ":in_progress": {"S": CallStatus.IN_PROGRESS.value},
                    ":ringing": {"S": CallStatus.RINGING.value},
                    ":cascading": {"S": "cascading"},
                    ":realtime": {"S": "realtime"},
                    ":now": _number(now),
                    ":one": {"N": "1"},
                    ":ttl_now": _number(self._now()),
                },
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            old = _item_on_condition_failure(exc)
            if old is None and self._read_item(call_id) is None:
                raise CallNotFoundError(f"no call item for {call_id!r}") from exc
            if old is not None and from_item(old).expires_at <= self._now():
                raise CallNotFoundError(f"no call item for {call_id!r}") from exc
            raise TransitionError("the call cannot take this media stream") from exc
        except BotoCoreError as exc:
            raise _store_error("UpdateItem", exc) from exc
        return from_item(response["Attributes"])

    def attach_connection(self, call_id: str, connection_id: str, *, now: float) -> CallRecord:
        # Read, decide, then one transaction whose META condition is "unchanged since the read" (version
        # and fence) on top of the rule itself. The returned record is then exactly what was written
        # (TransactWriteItems has no ReturnValues), and the CONN item gets the call's own expiry.
        # A call that changed but is still attachable (a status callback moved it to in-progress, a
        # concurrent transaction held it) is read again and retried.
        item = self._read_item(call_id)
        for _ in range(_ATTACH_ATTEMPTS):
            current = self._attachable(call_id, item)
            ttl_now = _number(self._now())
            try:
                self._client.transact_write_items(
                    TransactItems=[
                        {
                            "Update": {
                                "TableName": self._table,
                                "Key": _key(call_id),
                                "UpdateExpression": "SET connection_id = :conn, #status = :in_progress, "
                                "updated_at = :now, #version = #version + :one",
                                "ConditionExpression": "attribute_exists(pk) AND expires_at > :ttl_now "
                                "AND pipeline = :managed AND #status IN (:ringing, :in_progress) "
                                "AND attribute_not_exists(connection_id) AND #version = :version "
                                "AND (turn = :turn OR attribute_not_exists(turn))",
                                "ExpressionAttributeNames": {"#status": "status", "#version": "version"},
                                "ExpressionAttributeValues": {
                                    ":conn": {"S": connection_id},
                                    ":in_progress": {"S": CallStatus.IN_PROGRESS.value},
                                    ":ringing": {"S": CallStatus.RINGING.value},
                                    ":managed": {"S": "managed"},
                                    ":now": _number(now),
                                    ":one": {"N": "1"},
                                    ":ttl_now": ttl_now,
                                    ":version": _number(current.version),
                                    ":turn": _number(current.turn),
                                },
                                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                            }
                        },
                        {
                            "Put": {
                                "TableName": self._table,
                                "Item": {
                                    **_connection_key(connection_id),
                                    "call_id": {"S": call_id},
                                    TTL_ATTRIBUTE: _number(current.expires_at),
                                },
                                # A connection id already bound to a live call is never re-bound.
                                "ConditionExpression": "attribute_not_exists(pk) OR expires_at <= :ttl_now",
                                "ExpressionAttributeValues": {":ttl_now": ttl_now},
                            }
                        },
                    ],
                    # botocore fills this in itself; explicit so that any client's retry of an attempt
                    # whose answer was lost is idempotent instead of failing on its own write.
                    ClientRequestToken=str(uuid.uuid4()),
                )
            except ClientError as exc:
                reasons = _cancellation_reasons(exc, actions=2)
                meta, conn = reasons[0].get("Code"), reasons[1].get("Code")
                if meta == "ConditionalCheckFailed":
                    old = reasons[0].get("Item")
                    # No item came back: the call is missing, or the endpoint ignores ALL_OLD. Look.
                    item = old if isinstance(old, Mapping) else self._read_item(call_id)
                elif conn == "ConditionalCheckFailed":
                    raise TransitionError(f"relay connection for call {call_id!r} is already bound") from None
                elif "TransactionConflict" in (meta, conn):
                    # Another transaction held one of the items: nothing was decided, look again.
                    item = self._read_item(call_id)
                else:
                    raise _store_error("TransactWriteItems", exc) from exc
            except BotoCoreError as exc:
                raise _store_error("TransactWriteItems", exc) from exc
            else:
                return replace(
                    current,
                    connection_id=connection_id,
                    status=CallStatus.IN_PROGRESS,
                    updated_at=now,
                    version=current.version + 1,
                )
        raise StoreError(f"call item for {call_id!r} kept changing during attach")

    def _attachable(self, call_id: str, item: Mapping[str, object] | None) -> CallRecord:
        """The call if a relay connection may attach to it; else ``CallNotFoundError``/``TransitionError``."""
        current = None if item is None else from_item(item)
        if current is None or current.expires_at <= self._now():
            raise CallNotFoundError(f"no call item for {call_id!r}")
        if (
            current.pipeline != "managed"
            or current.status not in (CallStatus.RINGING, CallStatus.IN_PROGRESS)
            or current.connection_id is not None
        ):
            raise TransitionError(f"call {call_id!r} does not accept a relay connection")
        return current

    def call_for_connection(self, connection_id: str) -> CallRecord | None:
        try:
            response = self._client.get_item(
                TableName=self._table, Key=_connection_key(connection_id), ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as exc:
            raise _store_error("GetItem", exc) from exc
        item = response.get("Item")
        if item is None:
            return None
        try:
            call_id = _text(item, "call_id")
            expires_at = int(_value(item, TTL_ATTRIBUTE, "N"))
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreError(f"malformed connection item: {type(exc).__name__}: {exc}") from exc
        if expires_at <= self._now():
            return None
        record = self.get_call(call_id)
        # A call id reused after its item expired has no connection, or another one.
        if record is None or record.connection_id != connection_id:
            return None
        return record

    def next_turn(self, call_id: str, *, now: float) -> int:
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key=_key(call_id),
                UpdateExpression="SET updated_at = :now ADD turn :one",
                ConditionExpression="attribute_exists(pk) AND expires_at > :ttl_now "
                "AND #status IN (:ringing, :in_progress)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":now": _number(now),
                    ":one": {"N": "1"},
                    ":ttl_now": _number(self._now()),
                    ":ringing": {"S": CallStatus.RINGING.value},
                    ":in_progress": {"S": CallStatus.IN_PROGRESS.value},
                },
                ReturnValues="UPDATED_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            old = _item_on_condition_failure(exc)
        except BotoCoreError as exc:
            raise _store_error("UpdateItem", exc) from exc
        else:
            return _turn_number(response["Attributes"])
        current = self.get_call(call_id) if old is None else from_item(old)
        if current is None or current.expires_at <= self._now():
            raise CallNotFoundError(f"no call item for {call_id!r}")
        raise TransitionError(f"call {call_id!r} has ended ({current.status})")

    def current_turn(self, call_id: str) -> int:
        try:
            response = self._client.get_item(
                TableName=self._table,
                Key=_key(call_id),
                ConsistentRead=True,
                ProjectionExpression="turn, expires_at",
            )
        except (ClientError, BotoCoreError) as exc:
            raise _store_error("GetItem", exc) from exc
        item = response.get("Item")
        if item is None or _expired(item, self._now()):
            raise CallNotFoundError(f"no call item for {call_id!r}")
        return _turn_number(item)

    def interrupt_turn(self, call_id: str, heard_text: str, *, now: float) -> int:
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key=_key(call_id),
                UpdateExpression="SET updated_at = :now ADD turn :one",
                ConditionExpression="attribute_exists(pk) AND expires_at > :ttl_now",
                ExpressionAttributeValues={
                    ":now": _number(now),
                    ":one": {"N": "1"},
                    ":ttl_now": _number(self._now()),
                },
                # The old fence is the turn being spoken; the old expiry is the turn item's if the
                # interrupt creates it.
                ReturnValues="ALL_OLD",
            )
        except ClientError as exc:
            if _error_code(exc) == _CONDITION_FAILED:
                raise CallNotFoundError(f"no call item for {call_id!r}") from None
            raise _store_error("UpdateItem", exc) from exc
        except BotoCoreError as exc:
            raise _store_error("UpdateItem", exc) from exc
        old = response["Attributes"]
        interrupted = _turn_number(old)
        # Only the interrupt's own attributes are SET; the ones record_turn also writes are
        # if_not_exists, so whichever of the two lands second, both survive.
        self._update(
            _turn_key(call_id, interrupted),
            "SET heard_text = :heard, interrupted = :true, call_id = if_not_exists(call_id, :call_id), "
            "turn = if_not_exists(turn, :turn), expires_at = if_not_exists(expires_at, :expires_at)",
            {
                ":heard": {"S": heard_text},
                ":true": {"BOOL": True},
                ":call_id": {"S": call_id},
                ":turn": _number(interrupted),
                ":expires_at": old[TTL_ATTRIBUTE],
            },
        )
        return interrupted

    def record_heard(self, call_id: str, turn: int, heard_text: str) -> None:
        record = self.get_call(call_id)
        if record is None:
            raise CallNotFoundError(f"no call item for {call_id!r}")
        # As in interrupt_turn: the fields record_turn also writes are if_not_exists.
        self._update(
            _turn_key(call_id, turn),
            "SET heard_text = :heard, interrupted = :true, call_id = if_not_exists(call_id, :call_id), "
            "turn = if_not_exists(turn, :turn), expires_at = if_not_exists(expires_at, :expires_at)",
            {
                ":heard": {"S": heard_text},
                ":true": {"BOOL": True},
                ":call_id": {"S": call_id},
                ":turn": _number(turn),
                ":expires_at": _number(record.expires_at),
            },
        )

    def record_turn(self, turn: TurnRecord) -> None:
        values: dict[str, AttributeValueTypeDef] = {
            ":call_id": {"S": turn.call_id},
            ":turn": _number(turn.turn),
            ":kind": {"S": turn.kind},
            ":caller_text": {"S": turn.caller_text},
            ":assistant_text": {"S": turn.assistant_text},
            ":messages": {"S": turn.messages},
            ":tool_calls": {"S": turn.tool_calls},
            ":started_at": _number(turn.started_at),
            ":expires_at": _number(turn.expires_at),
        }
        removes = []
        for name, latency in (("first_token_ms", turn.first_token_ms), ("total_ms", turn.total_ms)):
            if latency is None:
                removes.append(name)
            else:
                values[f":{name}"] = _number(latency)
        # Never heard_text or interrupted: those are interrupt_turn's (see there).
        sets = ", ".join(f"{name[1:]} = {name}" for name in values)
        expression = f"SET {sets}" + (f" REMOVE {', '.join(removes)}" if removes else "")
        self._update(_turn_key(turn.call_id, turn.turn), expression, values)

    def list_turns(self, call_id: str, *, limit: int = 50) -> list[TurnRecord]:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        # Newest first with a Limit, then reversed: the last turns of a long call without reading
        # the whole partition. Limit counts items before the filter, hence the loop.
        params: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :turns)",
            "FilterExpression": "expires_at > :ttl_now AND attribute_exists(kind)",
            "ExpressionAttributeValues": {
                ":pk": {"S": f"CALL#{call_id}"},
                ":turns": {"S": "TURN#"},
                ":ttl_now": _number(self._now()),
            },
            "ScanIndexForward": False,
            "ConsistentRead": True,
        }
        turns: list[TurnRecord] = []
        while len(turns) < limit:
            try:
                response = self._client.query(**params, Limit=limit - len(turns))
            except (ClientError, BotoCoreError) as exc:
                raise _store_error("Query", exc) from exc
            turns.extend(turn_from_item(item) for item in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                break
            params["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        turns.reverse()
        return turns

    def _update(self, key: Item, expression: str, values: dict[str, AttributeValueTypeDef]) -> None:
        try:
            self._client.update_item(
                TableName=self._table, Key=key, UpdateExpression=expression, ExpressionAttributeValues=values
            )
        except (ClientError, BotoCoreError) as exc:
            raise _store_error("UpdateItem", exc) from exc

    def _not_applied(self, call_id: str) -> TransitionResult:
        current = self.get_call(call_id)
        if current is None:
            raise CallNotFoundError(f"no call item for {call_id!r}")
        return TransitionResult(applied=False, record=current)

    def _read(self, call_id: str) -> CallRecord | None:
        """The stored item, expired or not."""
        item = self._read_item(call_id)
        return None if item is None else from_item(item)

    def _read_item(self, call_id: str) -> Mapping[str, object] | None:
        try:
            response = self._client.get_item(TableName=self._table, Key=_key(call_id), ConsistentRead=True)
        except (ClientError, BotoCoreError) as exc:
            raise _store_error("GetItem", exc) from exc
        return response.get("Item")


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


def _turn_key(call_id: str, turn: int) -> Item:
    return {"pk": {"S": f"CALL#{call_id}"}, "sk": {"S": f"TURN#{turn:06d}"}}


def _connection_key(connection_id: str) -> Item:
    return {"pk": {"S": f"CONN#{connection_id}"}, "sk": {"S": "CALL"}}


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
    if record.connection_id is not None:
        item["connection_id"] = {"S": record.connection_id}
    if record.turn:
        item["turn"] = _number(record.turn)
    if record.stream_id is not None:
        item["stream_id"] = {"S": record.stream_id}
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
            # Both absent on items written before managed mode, and on calls of other pipelines.
            connection_id=None if "connection_id" not in item else _text(item, "connection_id"),
            turn=_turn_number(item),
            stream_id=None if "stream_id" not in item else _text(item, "stream_id"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise StoreError(f"malformed call item: {type(exc).__name__}: {exc}") from exc


def turn_from_item(item: Mapping[str, object]) -> TurnRecord:
    """Parse a stored turn item; ``StoreError`` if it is not one ``record_turn`` wrote."""
    try:
        return TurnRecord(
            call_id=_text(item, "call_id"),
            turn=int(_value(item, "turn", "N")),
            kind=_turn_kind(_text(item, "kind")),
            caller_text=_text(item, "caller_text"),
            assistant_text=_text(item, "assistant_text"),
            messages=_text(item, "messages"),
            tool_calls=_text(item, "tool_calls"),
            started_at=float(_value(item, "started_at", "N")),
            expires_at=int(_value(item, TTL_ATTRIBUTE, "N")),
            first_token_ms=_optional_float(item, "first_token_ms"),
            total_ms=_optional_float(item, "total_ms"),
            heard_text=None if "heard_text" not in item else _text(item, "heard_text"),
            interrupted="interrupted" in item and _boolean(item, "interrupted"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise StoreError(f"malformed turn item: {type(exc).__name__}: {exc}") from exc


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


def _optional_float(item: Mapping[str, object], name: str) -> float | None:
    return None if name not in item else float(_value(item, name, "N"))


def _boolean(item: Mapping[str, object], name: str) -> bool:
    attribute = item[name]
    if not isinstance(attribute, Mapping) or not isinstance(attribute.get("BOOL"), bool):
        raise TypeError(f"attribute {name!r} is not of type BOOL")
    return bool(attribute["BOOL"])


def _turn_number(item: Mapping[str, object]) -> int:
    """The fence (``turn``) of a call item; absent means no turn has been taken yet."""
    return 0 if "turn" not in item else int(_value(item, "turn", "N"))


def _expired(item: Mapping[str, object], now: float) -> bool:
    try:
        return int(_value(item, TTL_ATTRIBUTE, "N")) <= now
    except (KeyError, TypeError, ValueError) as exc:
        raise StoreError(f"malformed call item: {type(exc).__name__}: {exc}") from exc


def _turn_kind(value: str) -> TurnKind:
    if value not in _TURN_KINDS:
        raise ValueError(f"unknown turn kind {value!r}")
    return cast("TurnKind", value)


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


def _cancellation_reasons(exc: ClientError, *, actions: int) -> Sequence[Mapping[str, Any]]:
    """Why a transaction was cancelled: one reason per action, in order (``{"Code": "None"}`` = fine).

    Raises ``StoreError`` for every other error, and for a cancellation without usable reasons.
    """
    if _error_code(exc) != _TRANSACTION_CANCELED:
        raise _store_error(exc.operation_name, exc) from exc
    reasons = cast("Mapping[str, Any]", exc.response).get("CancellationReasons")
    if not isinstance(reasons, list) or len(reasons) != actions:
        raise _store_error(exc.operation_name, exc) from exc
    return [reason if isinstance(reason, Mapping) else {} for reason in reasons]


def _store_error(operation: str, exc: ClientError | BotoCoreError) -> StoreError:
    # Name the operation and error code only: messages can echo request values; the cause is kept.
    detail = _error_code(exc) if isinstance(exc, ClientError) else type(exc).__name__
    return StoreError(f"DynamoDB {operation} failed: {detail}")
