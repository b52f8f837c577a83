from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from callkit.errors import ConfigurationError
from callkit.secrets import SecretRef, SecretResolver
from callkit.settings import Settings


def test_from_env_reads_every_name() -> None:
    settings = Settings.from_env(
        {
            "CALLKIT_PUBLIC_URL": "https://abc.execute-api.us-east-1.amazonaws.com/prod/",
            "CALLKIT_MEDIA_URL": "wss://media.example.com",
            "CALLKIT_RELAY_URL": "wss://relay.example.com/prod",
            "CALLKIT_TABLE": "calls",
            "CALLKIT_TOKEN_KEY_SECRET": "arn:aws:secretsmanager:us-east-1:1:secret:k",
            "CALLKIT_TOKEN_TTL_SECONDS": "120",
            "CALLKIT_RETENTION_DAYS": "7",
            "TWILIO_AUTH_TOKEN_PARAM": "/callkit/twilio/auth-token",
            "PLIVO_AUTH_TOKEN_PARAM": "/callkit/plivo/auth-token",
            "CALLKIT_APP": "mod:attr",
        }
    )
    assert settings.public_url == "https://abc.execute-api.us-east-1.amazonaws.com/prod"
    assert settings.base_path == "/prod"
    assert (settings.token_ttl_seconds, settings.retention_seconds) == (120, 7 * 86400)
    assert settings.app == "mod:attr"
    assert Settings.from_env({}).base_path == ""


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CALLKIT_PUBLIC_URL", "ftp://x"),
        ("CALLKIT_PUBLIC_URL", "https://x/?q=1"),
        ("CALLKIT_MEDIA_URL", "https://x"),
    ],
)
def test_bad_urls_refused(name: str, value: str) -> None:
    with pytest.raises(ConfigurationError):
        Settings.from_env({name: value})


def test_bad_integer_named() -> None:
    with pytest.raises(ConfigurationError, match="CALLKIT_TOKEN_TTL_SECONDS"):
        Settings.from_env({"CALLKIT_TOKEN_TTL_SECONDS": "soon"})


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield


@pytest.mark.usefixtures("aws")
def test_secrets_are_fetched_once_and_refreshed_after_max_age() -> None:
    ssm = boto3.client("ssm")
    ssm.put_parameter(Name="/callkit/twilio/auth-token", Value="v1", Type="SecureString")
    secrets = boto3.client("secretsmanager")
    arn = secrets.create_secret(Name="callkit/token-key", SecretString="k" * 64)["ARN"]
    now = [0.0]
    resolver = SecretResolver(max_age_seconds=300, clock=lambda: now[0])
    ref = SecretRef("ssm", "/callkit/twilio/auth-token")
    assert resolver.get(ref) == "v1"
    ssm.put_parameter(Name="/callkit/twilio/auth-token", Value="v2", Type="SecureString", Overwrite=True)
    assert resolver.get(ref) == "v1", "cached within max_age"
    now[0] = 301
    assert resolver.get(ref) == "v2", "a rotated token is picked up"
    assert resolver.get(SecretRef("secretsmanager", arn)) == "k" * 64


@pytest.mark.usefixtures("aws")
def test_missing_secret_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="/nope"):
        SecretResolver().get(SecretRef("ssm", "/nope"))


def test_repr_hides_the_stream_token_key() -> None:
    key = "k3y-0123456789abcdef0123456789abcdef"
    settings = Settings(token_key=key, table="calls", public_url="https://voice.example.com")
    text = repr(settings)
    assert key not in text
    assert "token_key='***'" in text
    assert "table='calls'" in text
    assert "token_key=''" in repr(Settings())
    assert key not in str(settings)
    assert key not in f"{settings!r} {[settings]}"


def test_the_speech_detector_is_chosen_once_from_the_environment() -> None:
    from callkit.settings import Settings

    assert Settings.from_env({}).voice_activity == "silero"
    assert Settings.from_env({"CALLKIT_VOICE_ACTIVITY": "energy"}).voice_activity == "energy"
    with pytest.raises(ConfigurationError, match="CALLKIT_VOICE_ACTIVITY"):
        Settings.from_env({"CALLKIT_VOICE_ACTIVITY": "webrtc"})
