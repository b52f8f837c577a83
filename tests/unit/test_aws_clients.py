"""The AWS client policy: botocore's standard retries, callkit's timeouts, bounds that fit their callers."""

from __future__ import annotations

import inspect

import pytest
from moto import mock_aws

from callkit.aws_clients import LAMBDA_POLICY, MEDIA_SERVER_POLICY, AwsClients, ClientPolicy
from callkit.store.aio import AsyncStore


def test_media_server_policy_fits_one_async_store_attempt() -> None:
    timeout = inspect.signature(AsyncStore).parameters["timeout"].default
    assert MEDIA_SERVER_POLICY.worst_case_seconds <= timeout


def test_lambda_policy_fits_the_webhook_timeout() -> None:
    assert LAMBDA_POLICY.worst_case_seconds < 10  # WebhookFunction Timeout in template.yaml


def test_worst_case_counts_attempts_and_backoff() -> None:
    assert ClientPolicy(1.0, 2.0, 1).worst_case_seconds == 3.0
    assert ClientPolicy(1.0, 2.0, 3).worst_case_seconds == 3 * 3.0 + 1.0 + 2.0


@pytest.mark.parametrize(("connect", "read", "attempts"), [(0, 1, 1), (1, 0, 1), (1, 1, 0)])
def test_policy_rejects_nonsense(connect: float, read: float, attempts: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        ClientPolicy(connect, read, attempts)


def test_clients_carry_the_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        client = AwsClients(MEDIA_SERVER_POLICY).client("dynamodb")
    config = client.meta.config
    assert (config.connect_timeout, config.read_timeout) == (0.2, 0.3)
    assert config.retries == {"mode": "standard", "total_max_attempts": 2}
    # Endpoints are botocore's: the region's own, FIPS and dual-stack by configuration.
    assert client.meta.endpoint_url == "https://dynamodb.eu-west-1.amazonaws.com"


def test_endpoint_resolution_is_botocores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_USE_FIPS_ENDPOINT", "true")
    with mock_aws():
        fips = AwsClients(region="us-east-1").client("dynamodb")
        china = AwsClients(region="cn-north-1").client("scheduler")
    assert fips.meta.endpoint_url == "https://dynamodb-fips.us-east-1.amazonaws.com"
    assert china.meta.endpoint_url.endswith(".amazonaws.com.cn")
