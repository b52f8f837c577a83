from __future__ import annotations

import pytest

from callkit import CallInterface, CartesiaTTS, ConfigurationError, DeepgramSTT, OpenAIRealtimeProvider


def make(**kwargs: object) -> CallInterface:
    base: dict[str, object] = {"phone_number": "+15551234567"}
    return CallInterface(**(base | kwargs))  # type: ignore[arg-type]


def test_defaults_follow_the_seed() -> None:
    call = make()
    assert (call.provider, call.pipeline) == ("twilio", "managed")
    assert (call.voice, call.language) == ("en-US-Standard-A", "en-US")
    assert (call.interruptible, call.interrupt_sensitivity) == ("any", "medium")
    assert (call.stt_provider, call.tts_provider) == ("deepgram", "google")
    assert (call.webhook_path, call.stream_path, call.status_path) == (
        "/call/incoming",
        "/call/stream",
        "/call/incoming/status",
    )
    assert call.max_call_duration_seconds == 3600
    assert call.welcome_message is None


@pytest.mark.parametrize("number", ["5551234567", "+05551234567", "+1 555 123 4567", "", "+1555123456789012"])
def test_phone_number_must_be_e164(number: str) -> None:
    with pytest.raises(ConfigurationError, match=r"E\.164.*\+15551234567"):
        make(phone_number=number)


def test_plivo_has_no_managed_mode() -> None:
    with pytest.raises(ConfigurationError, match=r"Plivo has no managed mode.*cascading.*realtime"):
        make(provider="plivo", pipeline="managed")


def test_cascading_needs_stt_and_tts() -> None:
    with pytest.raises(ConfigurationError, match="needs stt= and tts="):
        make(pipeline="cascading", stt=DeepgramSTT(api_key="k"))
    call = make(pipeline="cascading", stt=DeepgramSTT(api_key="k"), tts=CartesiaTTS(api_key="k"))
    assert call.pipeline == "cascading"


def test_realtime_needs_realtime() -> None:
    with pytest.raises(ConfigurationError, match="needs realtime="):
        make(pipeline="realtime")
    assert make(pipeline="realtime", realtime=OpenAIRealtimeProvider(api_key="k")).pipeline == "realtime"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("provider", "vonage"),
        ("pipeline", "hybrid"),
        ("interruptible", "always"),
        ("interrupt_sensitivity", "extreme"),
        ("stt_provider", "whisper"),
        ("tts_provider", "polly"),
    ],
)
def test_unknown_enum_values_name_the_choices(name: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=f"{name}={value!r}.*"):
        make(**{name: value})


@pytest.mark.parametrize("path", ["call/incoming", "/call/incoming/", "/call?x=1", "/", "/call incoming"])
def test_paths_are_validated(path: str) -> None:
    with pytest.raises(ConfigurationError, match="webhook_path"):
        make(webhook_path=path)


def test_same_webhook_and_stream_path_refused() -> None:
    with pytest.raises(ConfigurationError, match="must differ"):
        make(webhook_path="/x", stream_path="/x")


@pytest.mark.parametrize("seconds", [0, -1, 4 * 3600 + 1, True])
def test_max_call_duration_bounds(seconds: int) -> None:
    with pytest.raises(ConfigurationError, match="max_call_duration_seconds"):
        make(max_call_duration_seconds=seconds)


def test_credentials_fall_back_to_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC123")
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "tw-token")
    monkeypatch.setenv("PLIVO_AUTH_ID", "MA123")
    monkeypatch.setenv("PLIVO_AUTH_TOKEN", "pl-token")
    twilio = make()
    assert (twilio.credentials.account_id, twilio.credentials.auth_token) == ("AC123", "tw-token")
    plivo = make(provider="plivo", pipeline="realtime", realtime=OpenAIRealtimeProvider(api_key="k"))
    assert (plivo.credentials.account_id, plivo.credentials.auth_token) == ("MA123", "pl-token")
    explicit = make(account_sid="ACX", auth_token="explicit")
    assert (explicit.credentials.account_id, explicit.credentials.auth_token) == ("ACX", "explicit")


def test_reprs_never_show_secrets_or_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    call = make(auth_token="super-secret")
    assert "super-secret" not in repr(call) and "super-secret" not in repr(call.credentials)
    assert "5551234567" not in repr(call)
    assert "k-123" not in repr(DeepgramSTT(api_key="k-123"))
    assert "k-123" not in repr(CartesiaTTS(api_key="k-123"))
    assert "k-123" not in repr(OpenAIRealtimeProvider(api_key="k-123"))


def test_provider_configs_validate() -> None:
    with pytest.raises(ConfigurationError, match="interim_results"):
        DeepgramSTT(api_key="k", interim_results=False)
    with pytest.raises(ConfigurationError, match="voice"):
        OpenAIRealtimeProvider(api_key="k", voice="nova")
    with pytest.raises(ConfigurationError, match="speed"):
        CartesiaTTS(api_key="k", speed="warp")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="voice_id"):
        CartesiaTTS(api_key="k").require_voice()


def test_deepgram_url_carries_the_options() -> None:
    url = DeepgramSTT(api_key="k", keyterms=("Acme", "refund"), endpointing=0).url()
    assert url.startswith(
        "wss://api.deepgram.com/v1/listen?model=nova-3&language=en-US&encoding=mulaw&sample_rate=8000"
    )
    assert "endpointing=false" in url and "utterance_end_ms=1000" in url
    assert url.endswith("keyterm=Acme&keyterm=refund")


def test_provider_keys_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPGRAM_API_KEY", "dg")
    monkeypatch.setenv("CARTESIA_API_KEY", "ca")
    monkeypatch.setenv("OPENAI_API_KEY", "oa")
    assert DeepgramSTT().api_key == "dg"
    assert CartesiaTTS().api_key == "ca"
    assert OpenAIRealtimeProvider().api_key == "oa"
