"""Compose a deployment from configuration: the user's interfaces module, the call store and the secrets."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

from callkit.errors import ConfigurationError
from callkit.interface import CallInterface
from callkit.secrets import SecretResolver
from callkit.settings import Settings
from callkit.store._base import CallStore

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_secretsmanager.client import SecretsManagerClient
    from mypy_boto3_ssm.client import SSMClient

    from callkit.aws_clients import AwsClients


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


def build_store(settings: Settings, aws: AwsClients | None = None) -> CallStore:
    """DynamoDB when a table is configured (``AWS_ENDPOINT_URL`` may point at moto or DynamoDB Local), else memory.

    The DynamoDB client comes from ``aws`` (a default ``AwsClients`` if none), made here, once.
    """
    if not settings.table:
        from callkit.store.memory import MemoryCallStore

        return MemoryCallStore()
    from callkit.aws_clients import AwsClients
    from callkit.store.dynamodb import DynamoDBCallStore

    client = cast("DynamoDBClient", (aws or AwsClients()).client("dynamodb"))
    return DynamoDBCallStore(settings.table, client)


def build_secrets(settings: Settings, aws: AwsClients) -> SecretResolver:
    """A resolver with the SSM and Secrets Manager clients the settings need, made now (not on first use).

    Made at import on Lambda, so a SnapStart snapshot holds them and a cold start's first request
    only fetches the values; a client no setting names is not made at all.
    """
    ssm_names = (
        settings.twilio_auth_token_param,
        settings.plivo_auth_token_param,
        settings.openai_api_key_param,
    )
    ssm = cast("SSMClient", aws.client("ssm")) if any(ssm_names) else None
    secretsmanager = (
        cast("SecretsManagerClient", aws.client("secretsmanager")) if settings.token_key_secret else None
    )
    return SecretResolver(ssm=ssm, secretsmanager=secretsmanager, aws=aws)
