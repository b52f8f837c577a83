"""A small DynamoDB client: the subset of boto3's low-level client that callkit uses, stdlib only.

``boto3.client("dynamodb")`` costs ~300 ms of imports and ~40 ms to build on a Lambda cold start;
this costs a few milliseconds. It speaks the DynamoDB JSON protocol
(https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Programming.LowLevelAPI.html):
``POST /`` with ``X-Amz-Target: DynamoDB_20120810.<Operation>`` and a JSON body that is exactly
boto3's PascalCase parameters, answered by JSON that is exactly boto3's result. So methods take
boto3's names and keyword arguments and return what boto3 returns, with two differences that
callkit's items never meet: binary values (``B``, ``BS``) travel as base64 text, not ``bytes``,
and timestamps (``CreationDateTime``...) stay epoch seconds, not ``datetime``. Parameters are not
validated here; DynamoDB answers ``ValidationException``.

Errors are boto3's: a service error raises ``botocore.exceptions.ClientError`` whose ``response``
has ``Error`` (``Code`` is the short name, ``ConditionalCheckFailedException``), ``ResponseMetadata``
and the error's own fields next to them, as botocore's parser puts them there: with
``ReturnValuesOnConditionCheckFailure="ALL_OLD"`` the old item is ``response["Item"]``. No
response at all raises a ``BotoCoreError`` (see ``_transport``). Retries: throttling, server
errors and a body whose CRC32 does not match ``x-amz-crc32``.
"""

from __future__ import annotations

import http.client
import json
import time
import zlib
from collections.abc import Callable, Mapping
from typing import Any, Final, cast

from botocore.exceptions import ChecksumError, ClientError, HTTPClientError, WaiterError

from callkit._env import resolve
from callkit.aws._transport import Response, Transport
from callkit.aws.credentials import (
    Credentials,
    CredentialsProvider,
    DefaultCredentialsProvider,
    StaticCredentialsProvider,
)
from callkit.errors import ConfigurationError

__all__ = [
    "DEFAULT_REGION_ENV",
    "ENDPOINT_ENV",
    "GLOBAL_ENDPOINT_ENV",
    "REGION_ENV",
    "DynamoDBClient",
    "TableExistsWaiter",
    "parse_error",
]

REGION_ENV: Final = "AWS_REGION"
DEFAULT_REGION_ENV: Final = "AWS_DEFAULT_REGION"
ENDPOINT_ENV: Final = "AWS_ENDPOINT_URL_DYNAMODB"
GLOBAL_ENDPOINT_ENV: Final = "AWS_ENDPOINT_URL"

_SERVICE = "dynamodb"
_TARGET_PREFIX = "DynamoDB_20120810."
_CONTENT_TYPE = "application/x-amz-json-1.0"
_USER_AGENT = "callkit-dynamodb/1"
#: Error codes worth another attempt (botocore's retry rules for DynamoDB, legacy and standard).
_RETRYABLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionInProgressException",
        # A plain write that met an in-flight transaction on the same item (a status callback
        # during the relay's attach): trying again after the backoff is what AWS advises.
        "TransactionConflictException",
    }
)

#: The errors DynamoDB's API model describes (botocore ``data/dynamodb/2012-08-10/service-2.json``).
#: botocore copies the body fields of these, and only these, next to ``Error``.
_MODELED_ERRORS = frozenset(
    [
        "BackupInUseException",
        "BackupNotFoundException",
        "ConditionalCheckFailedException",
        "ContinuousBackupsUnavailableException",
        "DuplicateItemException",
        "ExportConflictException",
        "ExportNotFoundException",
        "GlobalTableAlreadyExistsException",
        "GlobalTableNotFoundException",
        "IdempotentParameterMismatchException",
        "ImportConflictException",
        "ImportNotFoundException",
        "IndexNotFoundException",
        "InternalServerError",
        "InvalidExportTimeException",
        "InvalidRestoreTimeException",
        "ItemCollectionSizeLimitExceededException",
        "LimitExceededException",
        "PointInTimeRecoveryUnavailableException",
        "PolicyNotFoundException",
        "ProvisionedThroughputExceededException",
        "ReplicaAlreadyExistsException",
        "ReplicaNotFoundException",
        "ReplicatedWriteConflictException",
        "RequestLimitExceeded",
        "ResourceInUseException",
        "ResourceNotFoundException",
        "TableAlreadyExistsException",
        "TableInUseException",
        "TableNotFoundException",
        "ThrottlingException",
        "TransactionCanceledException",
        "TransactionConflictException",
        "TransactionInProgressException",
    ]
)


class DynamoDBClient:
    """A drop-in for ``boto3.client("dynamodb")`` in ``DynamoDBCallStore`` and ``create_table``.

    Region: ``region``, else ``AWS_REGION``, else ``AWS_DEFAULT_REGION``. Endpoint:
    ``endpoint_url``, else ``AWS_ENDPOINT_URL_DYNAMODB``, else ``AWS_ENDPOINT_URL``, else the
    region's public endpoint. Credentials: fixed ones, a provider called per request, or by
    default the environment with botocore's chain as a fallback (``credentials.py``).
    ``timeout`` bounds the connect and each read, per attempt. Thread-safe.
    """

    def __init__(
        self,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        credentials: Credentials | CredentialsProvider | None = None,
        timeout: float = 3.0,
        max_attempts: int = 3,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.region = resolve(region, REGION_ENV) or resolve(None, DEFAULT_REGION_ENV)
        if not self.region:
            raise ConfigurationError(
                f"no AWS region: pass region= or set {REGION_ENV} or {DEFAULT_REGION_ENV}"
            )
        self.endpoint_url = (
            resolve(endpoint_url, ENDPOINT_ENV)
            or resolve(None, GLOBAL_ENDPOINT_ENV)
            or _public_endpoint(self.region)
        )
        if credentials is None:
            provider: CredentialsProvider = DefaultCredentialsProvider()
        elif isinstance(credentials, Credentials):
            provider = StaticCredentialsProvider(credentials)
        else:
            provider = credentials
        self._transport = Transport(
            self.endpoint_url,
            service=_SERVICE,
            region=self.region,
            credentials=provider,
            timeout=timeout,
            max_attempts=max_attempts,
            sleep=sleep,
        )
        self._sleep = sleep

    def put_item(self, **params: Any) -> dict[str, Any]:
        return self._call("PutItem", params)

    def get_item(self, **params: Any) -> dict[str, Any]:
        return self._call("GetItem", params)

    def update_item(self, **params: Any) -> dict[str, Any]:
        return self._call("UpdateItem", params)

    def delete_item(self, **params: Any) -> dict[str, Any]:
        return self._call("DeleteItem", params)

    def transact_write_items(self, **params: Any) -> dict[str, Any]:
        # Unlike boto3, no ClientRequestToken is made up here: pass one to make retries idempotent.
        return self._call("TransactWriteItems", params)

    def query(self, **params: Any) -> dict[str, Any]:
        return self._call("Query", params)

    def scan(self, **params: Any) -> dict[str, Any]:
        return self._call("Scan", params)

    def create_table(self, **params: Any) -> dict[str, Any]:
        return self._call("CreateTable", params)

    def describe_table(self, **params: Any) -> dict[str, Any]:
        return self._call("DescribeTable", params)

    def update_time_to_live(self, **params: Any) -> dict[str, Any]:
        return self._call("UpdateTimeToLive", params)

    def get_waiter(self, waiter_name: str) -> TableExistsWaiter:
        """Only ``"table_exists"``, which ``callkit.store.create_table`` waits on."""
        if waiter_name != "table_exists":
            raise ValueError(f"Waiter does not exist: {waiter_name}")
        return TableExistsWaiter(self, sleep=self._sleep)

    def close(self) -> None:
        """Close the kept-alive connections (tests, shutdown); the client reconnects if used again."""
        self._transport.close()

    def _call(self, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
        body = json.dumps(params, separators=(",", ":")).encode()
        headers = {
            "Content-Type": _CONTENT_TYPE,
            "X-Amz-Target": _TARGET_PREFIX + operation,
            "User-Agent": _USER_AGENT,
        }
        response = self._transport.request("POST", "/", headers=headers, body=body, retryable=_retryable)
        expected = _expected_crc32(response)
        if expected is not None:
            raise ChecksumError(
                checksum_type="crc32", expected_checksum=str(expected), actual_checksum=str(_crc32(response))
            )
        if response.status >= 300:
            raise ClientError(cast("Any", parse_error(response)), operation)
        try:
            result = _json_object(response.body) if response.body else {}
        except ValueError as exc:
            raise HTTPClientError(
                error=f"{operation} answered {response.status} without a JSON object"
            ) from exc
        result["ResponseMetadata"] = _metadata(response)
        return result


class TableExistsWaiter:
    """botocore's ``table_exists`` waiter: poll ``DescribeTable`` until the table is ``ACTIVE``."""

    def __init__(self, client: DynamoDBClient, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self._client = client
        self._sleep = sleep

    def wait(self, *, TableName: str, WaiterConfig: Mapping[str, int] | None = None) -> None:
        config = WaiterConfig or {}
        delay, max_attempts = config.get("Delay", 20), config.get("MaxAttempts", 25)
        for attempt in range(1, max_attempts + 1):
            try:
                table = self._client.describe_table(TableName=TableName)["Table"]
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                    raise WaiterError(
                        name="TableExists", reason=f"An error occurred: {exc}", last_response=exc.response
                    ) from exc
            else:
                if table.get("TableStatus") == "ACTIVE":
                    return
            if attempt < max_attempts:
                self._sleep(delay)
        raise WaiterError(name="TableExists", reason="Max attempts exceeded", last_response={})


def parse_error(response: Response) -> dict[str, Any]:
    """The ``ClientError.response`` botocore's JSON parser builds from an error response.

    ``Code`` is ``__type`` after its last ``#`` (``com.amazonaws.dynamodb.v20120810#X`` → ``X``),
    or the HTTP status when the body has none (an HTML page from a proxy, an empty 5xx). For
    the errors in DynamoDB's model, the body's other fields (``message``, ``Item``,
    ``CancellationReasons``...) sit next to ``Error``; others (``ValidationException``) bring none.
    """
    fields: dict[str, Any] = {}
    if response.status >= 500 and (not response.body.strip() or response.body.lstrip().startswith(b"<html>")):
        code, message = str(response.status), http.client.responses.get(response.status, "")
    else:
        try:
            fields = _json_object(response.body) if response.body else {}
        except ValueError:
            fields = {"message": response.body.decode("utf-8", "replace")}
        code = str(fields.pop("__type", response.status))
        code = code.split(":", 1)[0].rsplit("#", 1)[-1]
        message = str(fields.get("message", fields.get("Message", "")))
    error = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": _metadata(response)}
    if code in _MODELED_ERRORS:
        error = {**fields, **error}
    return error


def _retryable(response: Response) -> bool:
    if _expected_crc32(response) is not None or response.status >= 500:
        return True
    if response.status < 300:
        return False
    return parse_error(response)["Error"]["Code"] in _RETRYABLE_CODES


def _expected_crc32(response: Response) -> int | None:
    """The CRC32 DynamoDB announced for the body, if the body does not match it (else ``None``)."""
    announced = response.headers.get("x-amz-crc32")
    if announced is None or not announced.isdigit() or int(announced) == _crc32(response):
        return None
    return int(announced)


def _crc32(response: Response) -> int:
    return zlib.crc32(response.body) & 0xFFFFFFFF


def _metadata(response: Response) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "HTTPStatusCode": response.status,
        "HTTPHeaders": response.headers,
        "RetryAttempts": response.retries,
    }
    if "x-amzn-requestid" in response.headers:
        metadata["RequestId"] = response.headers["x-amzn-requestid"]
    return metadata


def _json_object(body: bytes) -> dict[str, Any]:
    value = json.loads(body)
    if not isinstance(value, dict):
        raise ValueError("expected a JSON object")
    return value


def _public_endpoint(region: str) -> str:
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://dynamodb.{region}.{suffix}"
