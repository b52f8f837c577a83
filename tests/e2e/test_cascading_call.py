"""A cascading call end to end on loopback: the simulated carrier streams real μ-law audio to the
local runtime; Deepgram, Cartesia, the model and the carrier's REST API are fakes speaking their
wire protocols."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Literal

import httpx
import pytest

from callkit import AgentRuntime, CallInterface, CartesiaTTS, DeepgramSTT
from callkit.carriers._types import ClearAudio, PlaceMark, PlayAudio
from callkit.examples import support_agent
from callkit.llm.openai_chat import OpenAIChatModel
from callkit.llm.protocol import Message, UserMessage
from callkit.store._base import CallStore
from callkit.testing import SimulatedCarrier
from callkit.testing.carrier_api import FakeCarrierApi
from callkit.testing.cartesia import FakeCartesia
from callkit.testing.deepgram import TEST_DEEPGRAM_API_KEY, FakeDeepgram
from callkit.testing.openai_chat import Reply, ScriptedChatServer, TextReply, support_script
from callkit.testing.stream_client import SimulatedMediaStream, silence, speech

LONG = "We are open from nine until six on weekdays, from ten until four on Saturdays, and closed on Sundays."
NUMBER = {"twilio": "+15550004001", "plivo": "+15550004002"}


def script(messages: Sequence[Message]) -> Reply:
    last = messages[-1]
    if isinstance(last, UserMessage) and "hours" in last.content:
        return TextReply(LONG)
    if isinstance(last, UserMessage) and "keypad" in last.content:
        return "You pressed one, the order line."
    return support_script(messages)


async def until(condition: object, limit: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + limit
    while not condition() and asyncio.get_running_loop().time() < deadline:  # type: ignore[operator]  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    assert condition(), "timed out"  # type: ignore[operator]


@pytest.mark.parametrize("provider", ["twilio", "plivo"])
def test_cascading_call(
    provider: Literal["twilio", "plivo"], dynamodb: CallStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = dynamodb
    account = "AC" + "1" * 32 if provider == "twilio" else "MATESTAUTHID00000001"

    async def call() -> None:
        async with (
            ScriptedChatServer(script) as llm,
            FakeDeepgram(["Where is my order 1001?", "What are your opening hours?", "Thanks."]) as deepgram,
            FakeCartesia() as cartesia,
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
                pipeline="cascading",
                welcome_message="Hello! How can I help?",
                interrupt_sensitivity="high",
                stt=DeepgramSTT(api_key=TEST_DEEPGRAM_API_KEY, base_url=deepgram.base_url),
                tts=CartesiaTTS(api_key="cartesia-key", voice_id="voice-1", base_url=cartesia.base_url),
            )
            model = OpenAIChatModel("gpt-4o-mini", base_url=llm.base_url, api_key="test")
            async with (
                AgentRuntime(interfaces=[interface], port=0, store=store, model=model) as runtime,
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
                    plays = lambda: sum(isinstance(c, PlayAudio) for c in stream.received)  # noqa: E731
                    await until(lambda: plays() > 0)  # the welcome greeting, through Cartesia
                    await stream.say(silence(1500))
                    before = plays()
                    await stream.say(speech(700) + silence(800))  # "Where is my order 1001?"
                    await until(lambda: plays() > before + 5)
                    await until(lambda: stream.queued_ms == 0, 15)
                    # The long answer, and the caller barging in while it plays.
                    await stream.say(speech(700) + silence(800))  # "What are your opening hours?"
                    await until(lambda: stream.queued_ms > 500)
                    await stream.say(speech(400))
                    await until(lambda: stream.clears > 0, 5)
                    await stream.say(silence(600))
                    await stream.press("1")
                    await asyncio.sleep(1.0)
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
                assert len(deepgram.connections) == 1 and len(cartesia.connections) == 1
                marks = [c for c in stream.received if isinstance(c, PlaceMark)]
                assert marks and any(isinstance(c, ClearAudio) for c in stream.received)
                turns = store.list_turns(call_id)
                kinds = [t.kind for t in turns]
                assert kinds[0] == "welcome" and "dtmf" in kinds
                tools = [json.loads(t.tool_calls) for t in turns]
                assert any("check_order" in json.dumps(t) for t in [json.loads(x.messages) for x in turns])
                assert any(t.interrupted and t.heard_text is not None for t in turns), kinds
                assert tools is not None
                record = store.get_call(call_id)
                assert record is not None and record.stream_id == stream.stream_id
        await asyncio.sleep(0)

    asyncio.run(call())
