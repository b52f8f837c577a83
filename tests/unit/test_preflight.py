"""Startup checks: each mode with each key missing refuses to start, naming the key; doctor; refusals say why."""

from __future__ import annotations

import asyncio
import io
import logging
import textwrap
from pathlib import Path

import pytest

from callkit import AgentRuntime, CallInterface, OpenAIRealtimeProvider
from callkit.carriers._types import SignedRequest
from callkit.cli import doctor
from callkit.errors import PreflightError
from callkit.examples import support_agent
from callkit.preflight import Component, check, is_local
from callkit.settings import Settings
from callkit.store.memory import MemoryCallStore
from callkit.stt.deepgram import DeepgramSTT
from callkit.switchboard import Switchboard
from callkit.telemetry import FieldsFormatter, StdlibTelemetry
from callkit.testing import SimulatedCarrier
from callkit.tts.cartesia import CartesiaTTS

KEYS = {
    "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
    "TWILIO_AUTH_TOKEN": "twilio-token",
    "PLIVO_AUTH_ID": "MATESTAUTHID00000001",
    "PLIVO_AUTH_TOKEN": "plivo-token",
    "OPENAI_API_KEY": "sk-test",
    "DEEPGRAM_API_KEY": "dg-test",
    "CARTESIA_API_KEY": "ca-test",
}
#: What each mode needs, by the name a missing one is reported under.
NEEDS = {
    ("managed", "twilio"): ["TWILIO_AUTH_TOKEN", "OPENAI_API_KEY"],
    ("cascading", "twilio"): [
        "TWILIO_AUTH_TOKEN",
        "TWILIO_ACCOUNT_SID",
        "OPENAI_API_KEY",
        "DEEPGRAM_API_KEY",
        "CARTESIA_API_KEY",
        "voice_id",
    ],
    ("cascading", "plivo"): [
        "PLIVO_AUTH_TOKEN",
        "PLIVO_AUTH_ID",
        "OPENAI_API_KEY",
        "DEEPGRAM_API_KEY",
        "CARTESIA_API_KEY",
        "voice_id",
    ],
    ("realtime", "twilio"): ["TWILIO_AUTH_TOKEN", "TWILIO_ACCOUNT_SID", "OPENAI_API_KEY"],
    ("realtime", "plivo"): ["PLIVO_AUTH_TOKEN", "PLIVO_AUTH_ID", "OPENAI_API_KEY"],
}
CASES = [(pipeline, provider, key) for (pipeline, provider), keys in NEEDS.items() for key in keys]


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    for name in (
        "OPENAI_BASE_URL",
        "CALLKIT_PUBLIC_URL",
        "CALLKIT_RELAY_URL",
        "CALLKIT_MEDIA_URL",
        "CALLKIT_TABLE",
    ):
        monkeypatch.delenv(name, raising=False)


def interface(pipeline: str, provider: str, *, voice_id: str = "voice-1") -> CallInterface:
    return CallInterface(
        agent=support_agent,
        provider=provider,
        phone_number="+15550009001",
        pipeline=pipeline,
        stt=DeepgramSTT() if pipeline == "cascading" else None,
        tts=CartesiaTTS(voice_id=voice_id) if pipeline == "cascading" else None,
        realtime=OpenAIRealtimeProvider() if pipeline == "realtime" else None,
    )


@pytest.mark.parametrize(("pipeline", "provider"), list(NEEDS))
def test_a_complete_configuration_starts(pipeline: str, provider: str) -> None:
    async def start() -> None:
        async with AgentRuntime(interfaces=[interface(pipeline, provider)], port=0) as runtime:
            assert runtime.preflight() == []

    asyncio.run(start())


@pytest.mark.parametrize(("pipeline", "provider", "missing"), CASES)
def test_the_runtime_refuses_to_start_without(
    pipeline: str, provider: str, missing: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(missing, raising=False)
    call = interface(pipeline, provider, voice_id="" if missing == "voice_id" else "voice-1")

    async def start() -> None:
        async with AgentRuntime(interfaces=[call], port=0):
            pytest.fail("the runtime started")

    with pytest.raises(PreflightError) as refused:
        asyncio.run(start())
    assert [p.name for p in refused.value.problems] == [missing]
    assert missing in str(refused.value) and "Fix:" in str(refused.value)


def test_every_problem_is_listed_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TWILIO_AUTH_TOKEN", "OPENAI_API_KEY", "DEEPGRAM_API_KEY"):
        monkeypatch.delenv(name)
    with pytest.raises(PreflightError) as refused:
        asyncio.run(AgentRuntime(interfaces=[interface("cascading", "twilio")], port=0).start())
    assert [p.name for p in refused.value.problems] == [
        "TWILIO_AUTH_TOKEN",
        "OPENAI_API_KEY",
        "DEEPGRAM_API_KEY",
    ]
    assert str(refused.value).startswith("callkit cannot take calls yet (3 problems):")


def test_a_given_model_or_endpoint_needs_no_openai_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    managed = [interface("managed", "twilio")]
    settings = Settings(public_url="http://127.0.0.1:8000", relay_url="ws://127.0.0.1:8000/relay")
    assert check(managed, settings, default_model=False) == []
    assert check(managed, settings, environ={"OPENAI_BASE_URL": "http://127.0.0.1:11434/v1"}) == []
    assert [p.name for p in check(managed, settings, environ={})] == ["OPENAI_API_KEY"]


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("http://127.0.0.1:8000", True),
        ("http://localhost:8000", True),
        ("ws://[::1]:8000", True),
        ("http://public.test:8000", True),
        ("https://abcd.ngrok.app", False),
        ("http://10.0.0.5", False),
    ],
)
def test_local_hosts(url: str, local: bool) -> None:
    assert is_local(url) is local


def test_public_urls_must_be_secure_outside_loopback() -> None:
    managed = [interface("managed", "twilio")]
    insecure = Settings(public_url="http://voice.example.com", relay_url="ws://voice.example.com/relay")
    assert [p.name for p in check(managed, insecure)] == ["CALLKIT_PUBLIC_URL", "CALLKIT_RELAY_URL"]
    secure = Settings(public_url="https://voice.example.com", relay_url="wss://voice.example.com/relay")
    assert check(managed, secure) == []
    streams = [interface("realtime", "plivo")]
    assert [p.name for p in check(streams, Settings(media_url="ws://media.example.com"))] == [
        "CALLKIT_MEDIA_URL"
    ]


@pytest.mark.parametrize(
    ("component", "settings", "names"),
    [
        ("webhook", Settings(), ["CALLKIT_RELAY_URL"]),
        ("relay", Settings(relay_url="wss://r.example.com/prod", openai_api_key_param="/callkit/openai"), []),
        ("webhook", Settings(relay_url="wss://r.example.com/prod"), []),
    ],
)
def test_deployed_functions_check_their_own_part(
    component: Component, settings: Settings, names: list[str]
) -> None:
    assert [
        p.name for p in check([interface("managed", "twilio")], settings, component=component, environ={})
    ] == names


def test_the_media_server_needs_the_token_key_and_media_url() -> None:
    problems = check([interface("cascading", "plivo")], Settings(), component="media")
    assert [p.name for p in problems] == ["CALLKIT_MEDIA_URL", "CALLKIT_TOKEN_KEY_SECRET"]


def test_the_runtime_says_where_it_listens_and_what_to_paste(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="callkit")

    async def start() -> None:
        async with AgentRuntime(
            interfaces=[interface("managed", "twilio"), interface("realtime", "plivo")],
            port=0,
            public_url="https://abcd.ngrok.app",
        ):
            pass

    asyncio.run(start())
    text = caplog.text
    assert "callkit listening on http://127.0.0.1:" in text
    assert "wss://abcd.ngrok.app/relay" in text and "wss://abcd.ngrok.app/call/stream" in text
    assert '"A call comes in": Webhook https://abcd.ngrok.app/call/incoming' in text
    assert "Answer URL https://abcd.ngrok.app/call/incoming (POST)" in text
    assert "+15550009001" not in text


def _app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, body: str) -> str:
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(__import__("sys").modules, name, raising=False)
    return f"{name}:interfaces"


def test_doctor_lists_problems_and_what_to_paste(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEEPGRAM_API_KEY")
    app = _app(
        tmp_path,
        monkeypatch,
        "doctor_app",
        """
        from callkit import CallInterface
        from callkit.examples import support_agent
        from callkit.stt.deepgram import DeepgramSTT
        from callkit.tts.cartesia import CartesiaTTS

        interfaces = [
            CallInterface(
                agent=support_agent, provider="twilio", phone_number="+15550009002", pipeline="cascading",
                stt=DeepgramSTT(), tts=CartesiaTTS(voice_id=""),
            )
        ]
        """,
    )
    out = io.StringIO()
    assert doctor(app, public_url="https://abcd.ngrok.app", out=out) == 1
    text = out.getvalue()
    assert "1 interface from doctor_app:interfaces, checked as the local runtime" in text
    assert "media URL:  wss://abcd.ngrok.app" in text
    assert "2 problems to fix before the first call:" in text
    assert "1. twilio cascading interface (/call/incoming): no Deepgram (speech to text) API key" in text
    assert "fix: export DEEPGRAM_API_KEY=" in text
    assert "2. twilio cascading interface (/call/incoming): CartesiaTTS has no voice_id" in text
    assert '"A call comes in": Webhook https://abcd.ngrok.app/call/incoming (HTTP POST)' in text


def test_doctor_passes_a_complete_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = _app(
        tmp_path,
        monkeypatch,
        "doctor_complete_app",
        """
        from callkit import CallInterface
        from callkit.examples import support_agent

        interfaces = CallInterface(agent=support_agent, provider="twilio", phone_number="+15550009003")
        """,
    )
    out = io.StringIO()
    assert doctor(app, out=out) == 0, out.getvalue()
    assert "no problems found" in out.getvalue()
    assert doctor("no_such_module:interfaces", out=io.StringIO()) == 2


def test_a_refused_webhook_logs_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TWILIO_AUTH_TOKEN")
    logger = logging.getLogger("callkit.test_preflight")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(FieldsFormatter("%(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.propagate = False
    try:
        switchboard = Switchboard(
            [interface("managed", "twilio")],
            settings=Settings(
                public_url="https://voice.example.com", relay_url="wss://voice.example.com/relay"
            ),
            store=MemoryCallStore(),
            telemetry=StdlibTelemetry(logger),
        )
        carrier = SimulatedCarrier("twilio", base_url="https://voice.example.com")
        request = carrier.incoming_call(to="+15550009001")
        reply = switchboard.handle(
            request.path,
            SignedRequest(
                method=request.method,
                url=request.url,
                headers={k.lower(): v for k, v in request.headers.items()},  # as the HTTP layer gives them
                body=request.body,
            ),
        )
    finally:
        logger.removeHandler(handler)
    assert reply.status == 403
    refused = [line for line in stream.getvalue().splitlines() if "webhook refused" in line]
    assert refused == [
        "WARNING webhook refused path=/call/incoming "
        "reason=InvalidSignatureError: no auth token to check the signature with: set TWILIO_AUTH_TOKEN"
    ]
