"""Secrets by reference: SSM SecureString parameters and Secrets Manager secrets.

Deployed functions get the *names* of their secrets in the environment, never the values
(template.yaml). Values are fetched on first use, not at import, so a cold start that needs no
secret (a status callback's 403, a health check) pays nothing, and cached for ``max_age`` seconds
so a rotated auth token is picked up without a redeploy.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast

from callkit.errors import ConfigurationError

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager.client import SecretsManagerClient
    from mypy_boto3_ssm.client import SSMClient

    from callkit.aws_clients import AwsClients

DEFAULT_MAX_AGE_SECONDS = 300.0


@dataclass(frozen=True, slots=True)
class SecretRef:
    """``kind`` is where the secret lives; ``name`` its SSM parameter name or Secrets Manager id/ARN."""

    kind: Literal["ssm", "secretsmanager"]
    name: str


class SecretResolver:
    """Fetches and caches secret values.

    Deployed functions pass the clients in, made at import (``app_loader.build_secrets``); a
    client not passed is made from ``aws`` (a default ``AwsClients``) on first use, for local runs
    and tests.
    """

    def __init__(
        self,
        *,
        ssm: SSMClient | None = None,
        secretsmanager: SecretsManagerClient | None = None,
        aws: AwsClients | None = None,
        max_age_seconds: float = DEFAULT_MAX_AGE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ssm = ssm
        self._secretsmanager = secretsmanager
        self._aws = aws
        self._max_age = max_age_seconds
        self._clock = clock
        self._cache: dict[SecretRef, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def get(self, ref: SecretRef) -> str:
        now = self._clock()
        with self._lock:
            cached = self._cache.get(ref)
            if cached and now - cached[0] < self._max_age:
                return cached[1]
        value = self._fetch(ref)
        with self._lock:
            self._cache[ref] = (now, value)
        return value

    def _fetch(self, ref: SecretRef) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            if ref.kind == "ssm":
                response: Any = self._ssm_client().get_parameter(Name=ref.name, WithDecryption=True)
                value = response["Parameter"]["Value"]
            else:
                response = self._secretsmanager_client().get_secret_value(SecretId=ref.name)
                value = response.get("SecretString") or ""
        except (ClientError, BotoCoreError) as exc:
            raise ConfigurationError(f"cannot read the {ref.kind} secret {ref.name!r}: {exc}") from exc
        if not isinstance(value, str) or not value:
            raise ConfigurationError(f"the {ref.kind} secret {ref.name!r} is empty")
        return value

    def _clients(self) -> AwsClients:
        if self._aws is None:
            from callkit.aws_clients import AwsClients

            self._aws = AwsClients()
        return self._aws

    def _ssm_client(self) -> SSMClient:
        if self._ssm is None:
            self._ssm = cast("SSMClient", self._clients().client("ssm"))
        return self._ssm

    def _secretsmanager_client(self) -> SecretsManagerClient:
        if self._secretsmanager is None:
            self._secretsmanager = cast("SecretsManagerClient", self._clients().client("secretsmanager"))
        return self._secretsmanager
