"""Realtime calls on the call core: tools that transfer or end the call, and marks that never come."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import parse_qs

import httpx
import pytest

from callkit import AgentRuntime, CallInterface, OpenAIRealtimeProvider
from callkit.actions import EndCall
from callkit.agent import Agent, tool
from callkit.carriers._types import PlayAudio
from callkit.examples import transfer_call
from callkit.store._base import CallStore
from callkit.testing import SimulatedCarrier
from callkit.testing.carrier_api import FakeCarrierApi
from callkit.testing.openai_realtime import TEST_OPENAI_API_KEY, FakeRealtime, ScriptEntry, ToolCall
from callkit.testing.stream_client import SimulatedMediaStream, silence, speech

NUMBER = "+15550006101"
ACCOUNT = {"twilio": "AC" + "7" * 32, "plivo": "MATESTAUTHID00000007"}


@tool
def end_call(reason: str) -> EndCall:
    """End the call once the caller has nothing more to ask.

    Args:
        reason: Why the call ends, in a few words.
    """
    return EndCall(reason=reason)


agent = Agent(model="gpt-realtime", instructions="Help, then end the call.", tools=[transfer_call, end_call])


async def until(condition: object, limit: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + limit
    while not condition() and asyncio.get_running_loop().time() < deadline:  # type: ignore[operator]  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    assert condition()  # type: ignore[operator]


@dataclass
class Call:
    realtime: FakeRealtime
    api: FakeCarrierApi
    runtime: AgentRuntime
    carrier: SimulatedCarrier
    stream: SimulatedMediaStream
    call_id: str


@asynccontextmanager
async def realtime_call(
    provider: str,
    script: list[ScriptEntry],
    store: CallStore,
    monkeypatch: pytest.MonkeyPatch,
    **stream: bool,
) -> AsyncIterator[Call]:
    account = ACCOUNT[provider]
    async with (
        FakeRealtime(script, heard=["I'd like to talk to a person."]) as realtime,
        FakeCarrierApi({account: "carrier-token"}) as api,
    ):
        monkeypatch.setenv("CALLKIT_TWILIO_API_URL", api.base_url)
        monkeypatch.setenv("CALLKIT_PLIVO_API_URL", api.base_url)
        interface = CallInterface(
            agent=agent,
            provider=provider,
            phone_number=NUMBER,
            account_sid=account if provider == "twilio" else "",
            auth_id=account if provider == "plivo" else "",
            auth_token="carrier-token",
            pipeline="realtime",
            welcome_message="Hello!",
            realtime=OpenAIRealtimeProvider(api_key=TEST_OPENAI_API_KEY, base_url=realtime.base_url),
        )
        async with (
            AgentRuntime(interfaces=[interface], port=0, store=store) as runtime,
            httpx.AsyncClient() as http,
        ):
            carrier = SimulatedCarrier(
                provider,  # type: ignore[arg-type]
                base_url=runtime.url,
                auth_token="carrier-token",
                account_id=account,
                client=http,
            )
            request = carrier.incoming_call(to=NUMBER)
            call_id = request.form.get("CallSid", request.form.get("CallUUID"))[0]  # type: ignore[index]
            answer = (await carrier.send(request)).answer
            assert answer is not None
            media = SimulatedMediaStream(
                answer,
                provider=provider,  # type: ignore[arg-type]
                call_id=call_id,
                account_id=account,
                auth_token="carrier-token",
                **stream,
            )
            async with media:
                yield Call(realtime, api, runtime, carrier, media, call_id)


@pytest.mark.parametrize("provider", ["twilio", "plivo"])
def test_a_realtime_tool_that_transfers_moves_the_call(
    provider: str, dynamodb: CallStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CALLKIT_TRANSFER_NUMBER", "+15557654321")
    script: list[ScriptEntry] = [
        ToolCall("transfer_call", json.dumps({"reason": "wants a person"})),
        "Sure, I'm transferring you now.",
    ]

    async def scenario() -> None:
        async with realtime_call(provider, script, dynamodb, monkeypatch) as c:
            await until(lambda: c.stream.heard_ms > 0 and c.stream.queued_ms == 0)
            await c.stream.say(speech(700) + silence(900))
            await until(lambda: len(c.api.hangups) == 1, 15)
            assert c.stream.queued_ms == 0, "the closing words played before the transfer"
            if provider == "twilio":
                twiml = parse_qs(c.api.hangups[0].body.decode())["Twiml"][0]
                assert "<Dial" in twiml and "+15557654321" in twiml
            else:
                assert "to=%2B15557654321" in json.loads(c.api.hangups[0].body)["aleg_url"]
            tools = [json.loads(t.tool_calls) for t in dynamodb.list_turns(c.call_id)]
            assert any(calls and calls[0]["name"] == "transfer_call" for calls in tools)
            await asyncio.sleep(0.5)
            assert len(c.api.hangups) == 1, "one carrier request"

    asyncio.run(scenario())


def test_a_realtime_tool_that_ends_the_call_says_goodbye_and_hangs_up(
    dynamodb: CallStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    script: list[ScriptEntry] = [
        ToolCall("end_call", json.dumps({"reason": "done"})),
        "Thanks for calling, goodbye!",
    ]

    async def scenario() -> None:
        async with realtime_call("twilio", script, dynamodb, monkeypatch) as c:
            await until(lambda: c.stream.heard_ms > 0 and c.stream.queued_ms == 0)
            played_before = sum(isinstance(m, PlayAudio) for m in c.stream.received)
            await c.stream.say(speech(700) + silence(900))
            await until(lambda: len(c.api.hangups) == 1, 15)
            assert c.api.hangups[0].body == b"Status=completed"
            assert sum(isinstance(m, PlayAudio) for m in c.stream.received) > played_before, "goodbye spoken"
            assert c.stream.queued_ms == 0, "and played before the hang-up"
            outputs = c.realtime.connections[0].tool_outputs
            assert outputs and "end" in outputs[0][1].lower()

    asyncio.run(scenario())


def test_a_realtime_call_whose_marks_are_lost_still_ends(
    dynamodb: CallStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The carrier never confirms playback: the call waits only until its audio should have played."""
    script: list[ScriptEntry] = [
        ToolCall("end_call", json.dumps({"reason": "done"})),
        "Goodbye!",
    ]

    async def scenario() -> None:
        async with realtime_call("twilio", script, dynamodb, monkeypatch, lose_marks=True) as c:
            await until(lambda: c.stream.heard_ms > 0)
            await c.stream.say(speech(700) + silence(900))
            await until(lambda: len(c.api.hangups) == 1, 10)
            assert c.api.hangups[0].body == b"Status=completed"

    asyncio.run(scenario())
