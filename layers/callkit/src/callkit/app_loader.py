"""Compose a deployment from configuration: the user's interfaces module and the call store."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

from callkit.errors import ConfigurationError
from callkit.interface import CallInterface
from callkit.settings import Settings
from callkit.store._base import CallStore

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient as BotoDynamoDBClient


def load_interfaces(spec: str) -> list[CallInterface]:
    """Import ``"module:attribute"``; the attribute is a ``CallInterface`` or a sequence of them."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigurationError(f"CALLKIT_APP={spec!r} must look like 'callkit_app:interfaces'")
    module = importlib.import_module(module_name)
    try:
        value = getattr(module, attribute)
    except AttributeError as exc:
        raise ConfigurationError(
            f"{module_name} has no attribute {attribute!r} (CALLKIT_APP={spec!r})"
        ) from exc
    found = (
        [value] if isinstance(value, CallInterface) else list(value) if isinstance(value, Sequence) else None
    )
    if not found or not all(isinstance(i, CallInterface) for i in found):
        raise ConfigurationError(f"{spec} must be a CallInterface or a non-empty list of them")
    return found


def build_store(settings: Settings) -> CallStore:
    """DynamoDB when a table is configured (``AWS_ENDPOINT_URL`` may point at moto or DynamoDB Local), else memory.

    The client is ``callkit.aws.dynamodb``'s, not boto3's: same calls and errors, without boto3's
    ~300 ms of imports on the cold path.
    """
    if not settings.table:
        from callkit.store.memory import MemoryCallStore

        return MemoryCallStore()
    from callkit.aws.dynamodb import DynamoDBClient
    from callkit.store.dynamodb import DynamoDBCallStore

    # A structural stand-in for boto3's client, which the store's annotations name.
    client = cast("BotoDynamoDBClient", DynamoDBClient())
    return DynamoDBCallStore(settings.table, client)
