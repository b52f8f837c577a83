"""A realtime call end to end on loopback: the simulated carrier streams μ-law to the local runtime,
which holds an OpenAI Realtime (GA) session with the FakeRealtime server."""

from __future__ import annotations

import asyncio
import json
from typing import Literal

import httpx
import pytest

from callkit import AgentRuntime, CallInterface, OpenAIRealtimeProvider
from callkit.carriers._types import ClearAudio, PlayAudio
from callkit.examples import support_agent
from callkit.store._base import CallStore
from callkit.testing import SimulatedCarrier
from callkit.testing.carrier_api import FakeCarrierApi
from callkit.testing.openai_realtime import TEST_OPENAI_API_KEY, FakeRealtime, ToolCall
from callkit.testing.stream_client import SimulatedMediaStream, silence, speech

NUMBER = {"twilio": "+15550006001", "plivo": "+15550006002"}
HOURS = (
    "We are open from nine until six on weekdays, from ten until four on Saturdays, and closed on Sundays."
)


async def until(condition: object, limit: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + limit
    while not condition() and asyncio.get_running_loop().time() < deadline:  # type: ignore[operator]  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    assert condition()  # type: ignore[operator]


@pytest.mark.parametrize("provider", ["twilio", "plivo"])
def test_realtime_call(
    provider: Literal["twilio", "plivo"], dynamodb: CallStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = "AC" + "6" * 32 if provider == "twilio" else "MATESTAUTHID00000006"

    async def call() -> None:
        script = [
            ToolCall("check_order", json.dumps({"order_id": "1001"})),
            "Order 1001 shipped on Monday and arrives tomorrow.",
            HOURS,
            "You pressed one.",
        ]
        heard = ["Where is my order 1001?", "What are your opening hours?"]
        async with (
            FakeRealtime(script, heard=heard) as realtime,
            FakeCarrierApi({account: "carrier-token"}) as api,
        ):
            monkeypatch.setenv("CALLKIT_TWILIO_API_URL", api.base_url)
            monkeypatch.setenv("CALLKIT_PLIVO_API_URL", api.base_url)
            interface = CallInterface(
                agent=support_agent,
                provider=provider,
                phone_number=NUMBER[provider],
                account_sid=account if provider == "twilio" else "",
                auth_id=account if provider == "plivo" else "",
                auth_token="carrier-token",
                pipeline="realtime",
                welcome_message="Hello! Thanks for calling Acme Shop.",
                realtime=OpenAIRealtimeProvider(
                    api_key=TEST_OPENAI_API_KEY, voice="marin", base_url=realtime.base_url
                ),
            )
            async with (
                AgentRuntime(interfaces=[interface], port=0, store=dynamodb) as runtime,
                httpx.AsyncClient() as http,
            ):
                carrier = SimulatedCarrier(
                    provider,
                    base_url=runtime.url,
                    auth_token="carrier-token",
                    account_id=account,
                    client=http,
                )
                request = carrier.incoming_call(to=NUMBER[provider])
                call_id = request.form.get("CallSid", request.form.get("CallUUID"))[0]  # type: ignore[index]
                answer = (await carrier.send(request)).answer
                assert answer is not None
                stream = SimulatedMediaStream(
                    answer, provider=provider, call_id=call_id, account_id=account, auth_token="carrier-token"
                )
                async with stream:
                    await until(lambda: stream.heard_ms > 0)  # the greeting, in the model's voice
                    await until(lambda: stream.queued_ms == 0)
                    await stream.say(speech(700) + silence(900))  # asks about the order: a tool round
                    await until(lambda: stream.queued_ms > 0)
                    await until(lambda: stream.queued_ms == 0)
                    await stream.say(speech(700) + silence(900))  # opening hours: a long answer
                    await until(lambda: stream.queued_ms > 1500)
                    await stream.say(speech(500))  # the caller talks over it
                    await until(lambda: stream.clears > 0, 5)
                    await stream.say(silence(900))
                    await stream.press("1")
                    await stream.say(silence(1500))
                # The call keeps its last turns as it ends (written off the loop): wait for its end.
                call_tasks = {
                    "inbound",
                    "ticks",
                    "deadline",
                    "transcripts",
                    "turn",
                    "ending",
                    "bookkeeping",
                    "outbound",
                    "watchdog",
                    "tool",
                }
                await until(lambda: not [t for t in asyncio.all_tasks() if t.get_name() in call_tasks], 10)
                connection = realtime.connections[0]
                update = connection.session_update
                assert update is not None and update["session"]["audio"]["output"]["voice"] == "marin"
                assert update["session"]["audio"]["input"]["format"] == {"type": "audio/pcmu"}
                assert connection.conflicts == 0, "never two response.create in flight"
                assert [name for name, _ in connection.tool_outputs] or connection.tool_outputs
                assert connection.truncations and connection.truncations[0][1] > 0
                assert any("pressed 1" in t for t in connection.user_texts)
                assert any(isinstance(c, ClearAudio) for c in stream.received)
                assert sum(isinstance(c, PlayAudio) for c in stream.received) > 10
                turns = dynamodb.list_turns(call_id)
                assert any("1001" in t.caller_text for t in turns)
                assert any(
                    json.loads(t.tool_calls) and json.loads(t.tool_calls)[0]["name"] == "check_order"
                    for t in turns
                )
                assert any(t.interrupted for t in turns)
                record = dynamodb.get_call(call_id)
                assert record is not None and record.stream_id == stream.stream_id

    asyncio.run(call())


@pytest.mark.parametrize("case", ["max-duration", "session-dropped"])
def test_realtime_call_ends_cleanly(case: str, dynamodb: CallStore, monkeypatch: pytest.MonkeyPatch) -> None:
    account = "AC" + "5" * 32

    async def call() -> None:
        options: dict[str, float] = {"drop_after_seconds": 1.5} if case == "session-dropped" else {}
        async with (
            FakeRealtime(["Hi."], **options) as realtime,  # type: ignore[arg-type]
            FakeCarrierApi({account: "carrier-token"}) as api,
        ):
            monkeypatch.setenv("CALLKIT_TWILIO_API_URL", api.base_url)
            interface = CallInterface(
                agent=support_agent,
                provider="twilio",
                phone_number=NUMBER["twilio"],
                account_sid=account,
                auth_token="carrier-token",
                pipeline="realtime",
                welcome_message="Hello!",
                max_call_duration_seconds=3 if case == "max-duration" else 600,
                realtime=OpenAIRealtimeProvider(api_key=TEST_OPENAI_API_KEY, base_url=realtime.base_url),
            )
            async with (
                AgentRuntime(interfaces=[interface], port=0, store=dynamodb) as runtime,
                httpx.AsyncClient() as http,
            ):
                carrier = SimulatedCarrier(
                    "twilio",
                    base_url=runtime.url,
                    auth_token="carrier-token",
                    account_id=account,
                    client=http,
                )
                request = carrier.incoming_call(to=NUMBER["twilio"])
                call_id = request.form["CallSid"][0]
                answer = (await carrier.send(request)).answer
                assert answer is not None
                stream = SimulatedMediaStream(
                    answer, provider="twilio", call_id=call_id, account_id=account, auth_token="carrier-token"
                )
                async with stream:
                    await until(lambda: [h.call_id for h in api.hangups] == [call_id], 15)  # a silent caller
                body = api.hangups[0].body.decode()
                if case == "max-duration":  # the model said goodbye in its voice, then the REST hang-up
                    assert body == "Status=completed"
                    assert any("time limit" in json.dumps(e) for e in realtime.connections[0].client_events)
                else:  # the model is gone: Twilio speaks the apology itself and hangs up
                    assert body.startswith("Twiml=") and "%3CSay" in body and "%3CHangup" in body

    asyncio.run(call())


def test_plivo_session_dropped_speaks_the_apology_from_the_webhook(
    dynamodb: CallStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from urllib.parse import urlsplit

    account = "MATESTAUTHID00000005"

    async def call() -> None:
        async with (
            FakeRealtime(["Hi."], drop_after_seconds=1.5) as realtime,
            FakeCarrierApi({account: "carrier-token"}) as api,
        ):
            monkeypatch.setenv("CALLKIT_PLIVO_API_URL", api.base_url)
            interface = CallInterface(
                agent=support_agent,
                provider="plivo",
                phone_number=NUMBER["plivo"],
                auth_id=account,
                auth_token="carrier-token",
                pipeline="realtime",
                welcome_message="Hello!",
                realtime=OpenAIRealtimeProvider(api_key=TEST_OPENAI_API_KEY, base_url=realtime.base_url),
            )
            async with (
                AgentRuntime(interfaces=[interface], port=0, store=dynamodb) as runtime,
                httpx.AsyncClient() as http,
            ):
                carrier = SimulatedCarrier(
                    "plivo", base_url=runtime.url, auth_token="carrier-token", account_id=account, client=http
                )
                request = carrier.incoming_call(to=NUMBER["plivo"])
                call_id = request.form["CallUUID"][0]
                answer = (await carrier.send(request)).answer
                assert answer is not None
                stream = SimulatedMediaStream(
                    answer, provider="plivo", call_id=call_id, account_id=account, auth_token="carrier-token"
                )
                async with stream:
                    await until(lambda: [h.call_id for h in api.hangups] == [call_id], 15)
                aleg_url = json.loads(api.hangups[0].body)["aleg_url"]
                assert aleg_url == f"{runtime.url}/call/incoming/transfer"
                fetch = carrier.sign("POST", urlsplit(aleg_url).path, [("CallUUID", call_id)])
                reply = await carrier.send(fetch)
                assert reply.answer is not None and reply.answer.kind == "say-and-hangup"

    asyncio.run(call())
