"""``callkit.probes`` without a network: what each online check asks, and how answers read."""

from __future__ import annotations

import pytest

from callkit import CallInterface, OpenAIRealtimeProvider
from callkit.examples import support_agent
from callkit.probes import Finding, Probe, judge, mask, plan
from callkit.settings import Settings
from callkit.stt.deepgram import DeepgramSTT
from callkit.tts.cartesia import CartesiaTTS

SID = "AC" + "2" * 32
ENV = {"OPENAI_API_KEY": "sk-test-0123456789abcdef"}


def cascading(provider: str = "twilio") -> CallInterface:
    return CallInterface(
        agent=support_agent,
        provider=provider,
        phone_number="+15550009021",
        pipeline="cascading",
        account_sid=SID,
        auth_id="MATESTAUTHID00000002",
        auth_token="token-0123456789abcdef",
        stt=DeepgramSTT(api_key="dg-key-0123456789abcdef"),
        tts=CartesiaTTS(api_key="ca-key-0123456789abcdef", voice_id="voice-1"),
    )


def probes(planned: list[Probe | Finding]) -> dict[str, Probe]:
    return {f"{p.service} {p.check}": p for p in planned if isinstance(p, Probe)}


def test_the_real_apis_by_default() -> None:
    planned = probes(plan([cascading()], Settings(public_url="https://voice.example.com"), ENV))
    assert {name: p.url for name, p in planned.items()} == {
        "Twilio account": f"https://api.twilio.com/2010-04-01/Accounts/{SID}.json",
        "Twilio number of the twilio cascading interface (/call/incoming)": (
            f"https://api.twilio.com/2010-04-01/Accounts/{SID}/IncomingPhoneNumbers.json?PhoneNumber=%2B15550009021"
        ),
        "OpenAI models": "https://api.openai.com/v1/models",
        "Deepgram projects": "https://api.deepgram.com/v1/projects",
        "Cartesia voice": "https://api.cartesia.ai/voices/voice-1",
    }
    assert planned["Deepgram projects"].headers == {"Authorization": "Token dg-key-0123456789abcdef"}
    assert planned["Cartesia voice"].headers["Cartesia-Version"] == CartesiaTTS().cartesia_version
    assert "0123456789abcdef" not in repr(planned["Twilio account"])


def test_plivo_and_realtime_urls() -> None:
    plivo = CallInterface(
        agent=support_agent,
        provider="plivo",
        phone_number="+15550009022",
        pipeline="realtime",
        auth_id="MATESTAUTHID00000002",
        auth_token="token-0123456789abcdef",
        realtime=OpenAIRealtimeProvider(
            api_key="sk-rt-0123456789abcdef", base_url="ws://127.0.0.1:9/v1/realtime"
        ),
    )
    planned = probes(plan([plivo], Settings(plivo_api_url="http://127.0.0.1:8/"), {}))
    assert {name: p.url for name, p in planned.items()} == {
        "Plivo account": "http://127.0.0.1:8/v1/Account/MATESTAUTHID00000002/",
        "Plivo number of the plivo realtime interface (/call/incoming)": (
            "http://127.0.0.1:8/v1/Account/MATESTAUTHID00000002/Number/15550009022/"
        ),
        "OpenAI models": "http://127.0.0.1:9/v1/models",
    }


def test_one_probe_per_credential_and_skips_for_missing_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEEPGRAM_API_KEY", raising=False)
    second = CallInterface(
        agent=support_agent,
        provider="twilio",
        phone_number="+15550009023",
        pipeline="cascading",
        account_sid=SID,
        auth_token="token-0123456789abcdef",
        webhook_path="/call/second",
        stream_path="/stream/second",
        stt=DeepgramSTT(),
        tts=CartesiaTTS(api_key="ca-key-0123456789abcdef", voice_id="voice-1"),
    )
    planned = plan([cascading(), second], Settings(), {})
    names = [f"{p.service} {p.check}" for p in planned]
    assert names.count("Twilio account") == 1
    assert sum(name.startswith("Twilio number") for name in names) == 2
    skipped = [p for p in planned if isinstance(p, Finding)]
    assert [(f.service, f.status) for f in skipped] == [("OpenAI", "skipped"), ("Deepgram", "skipped")]


def test_answers_read_as_statuses() -> None:
    probe = probes(plan([cascading()], Settings(), ENV))["Deepgram projects"]
    assert isinstance(ok := judge(probe, 200, b"{}"), Finding) and ok.status == "ok"
    refused = judge(probe, 403, b"")
    assert isinstance(refused, Finding) and refused.status == "refused" and refused.failed
    assert "DEEPGRAM_API_KEY" in refused.fix and "0123456789abcdef" not in refused.detail
    odd = judge(probe, 500, b"")
    assert (
        isinstance(odd, Finding)
        and odd.status == "unexpected"
        and odd.detail == "HTTP 500 from api.deepgram.com"
    )


def test_plivo_number_leads_to_its_application() -> None:
    settings = Settings(public_url="https://voice.example.com")
    number = probes(plan([cascading("plivo")], settings, ENV))[
        "Plivo number of the plivo cascading interface (/call/incoming)"
    ]
    application = judge(number, 200, b'{"application": "/v1/Account/MATESTAUTHID00000002/Application/42/"}')
    assert isinstance(application, Probe)
    assert application.url == "https://api.plivo.com/v1/Account/MATESTAUTHID00000002/Application/42/"
    same = judge(
        application,
        200,
        b'{"answer_url": "https://voice.example.com/call/incoming", "answer_method": "POST"}',
    )
    assert isinstance(same, Finding) and same.status == "ok"
    other = judge(application, 200, b'{"answer_url": "https://elsewhere.example.com/answer"}')
    assert isinstance(other, Finding) and other.status == "warning"
    assert judge(number, 200, b"[") == Finding(
        "Plivo", number.check, "unexpected", "HTTP 200, but the answer is not the JSON expected", ""
    )


def test_mask() -> None:
    assert mask("sk-test-0123456789abcdef") == "…cdef"
    assert mask("short") == "***"
