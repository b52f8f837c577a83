"""A barge-in before the agent's turn completes: the history keeps the previous reply as it was
and the interrupted one as heard, cut on a word (the call core's ``History``, keyed by turn)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import httpx

from callkit import AgentRuntime, CallInterface, CartesiaTTS, DeepgramSTT
from callkit.carriers._types import PlayAudio
from callkit.examples import support_agent
from callkit.llm.openai_chat import OpenAIChatModel
from callkit.llm.protocol import AssistantMessage, Message, UserMessage
from callkit.store._base import CallStore
from callkit.testing import SimulatedCarrier
from callkit.testing.carrier_api import FakeCarrierApi
from callkit.testing.cartesia import FakeCartesia
from callkit.testing.deepgram import TEST_DEEPGRAM_API_KEY, FakeDeepgram
from callkit.testing.openai_chat import Reply, ScriptedChatServer, TextReply
from callkit.testing.stream_client import SimulatedMediaStream, silence, speech

FIRST = "Order 1001 shipped on Monday and arrives tomorrow."
LONG = "Our opening hours are from nine until six on weekdays, from ten until four on Saturdays, and we are closed."
ACCOUNT = "AC" + "3" * 32
NUMBER = "+15550004101"


def script(messages: Sequence[Message]) -> Reply:
    last = messages[-1]
    assert isinstance(last, UserMessage)
    if "order" in last.content:
        return FIRST
    if "hours" in last.content:
        return TextReply(LONG, delay=0.15)  # still streaming when the caller cuts in
    return "We are closed on Sundays."


async def until(condition: object, limit: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + limit
    while not condition() and asyncio.get_running_loop().time() < deadline:  # type: ignore[operator]  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    assert condition(), "timed out"  # type: ignore[operator]


def assistant_texts(messages: Sequence[Message]) -> list[str]:
    return [m.content for m in messages if isinstance(m, AssistantMessage) and m.content]


def test_a_barge_in_before_the_turn_completes_keeps_the_previous_reply(
    dynamodb: CallStore, monkeypatch: object
) -> None:
    async def call() -> None:
        heard = ["Where is my order 1001?", "What are your opening hours?", "Do you open on Sunday?"]
        async with (
            ScriptedChatServer(script) as llm,
            FakeDeepgram(heard) as deepgram,
            FakeCartesia() as cartesia,
            FakeCarrierApi({ACCOUNT: "carrier-token"}) as api,
        ):
            monkeypatch.setenv("CALLKIT_TWILIO_API_URL", api.base_url)  # type: ignore[attr-defined]
            interface = CallInterface(
                agent=support_agent,
                provider="twilio",
                phone_number=NUMBER,
                account_sid=ACCOUNT,
                auth_token="carrier-token",
                pipeline="cascading",
                interrupt_sensitivity="high",
                stt=DeepgramSTT(api_key=TEST_DEEPGRAM_API_KEY, base_url=deepgram.base_url),
                tts=CartesiaTTS(api_key="cartesia-key", voice_id="voice-1", base_url=cartesia.base_url),
            )
            model = OpenAIChatModel("gpt-4o-mini", base_url=llm.base_url, api_key="test")
            async with (
                AgentRuntime(interfaces=[interface], port=0, store=dynamodb, model=model) as runtime,
                httpx.AsyncClient() as http,
            ):
                carrier = SimulatedCarrier(
                    "twilio",
                    base_url=runtime.url,
                    auth_token="carrier-token",
                    account_id=ACCOUNT,
                    client=http,
                )
                request = carrier.incoming_call(to=NUMBER)
                call_id = request.form["CallSid"][0]
                answer = (await carrier.send(request)).answer
                assert answer is not None
                stream = SimulatedMediaStream(
                    answer, provider="twilio", call_id=call_id, account_id=ACCOUNT, auth_token="carrier-token"
                )
                async with stream:
                    plays = lambda: sum(isinstance(c, PlayAudio) for c in stream.received)  # noqa: E731
                    await stream.say(silence(300) + speech(700) + silence(800))  # the order: answered whole
                    await until(lambda: plays() > 5)
                    await until(lambda: stream.queued_ms == 0, 15)
                    await stream.say(speech(700) + silence(800))  # the hours: a slow, long answer
                    await until(
                        lambda: stream.heard_ms > 0 and stream.queued_ms > 0 and len(llm.requests) == 2
                    )
                    await asyncio.sleep(0.8)  # part of the reply plays; the model is still streaming
                    assert not llm.requests[1].completed, "the turn has not completed"
                    await stream.say(speech(700) + silence(900))  # the caller cuts in with a question
                    await until(lambda: stream.clears > 0, 5)
                    await until(lambda: len(llm.requests) == 3, 10)
                history = llm.requests[2].messages
                said = assistant_texts(history)
                assert said[0] == FIRST, "the previous reply is unchanged"
                assert len(said) == 2, said
                cut = said[1]
                assert cut and LONG.startswith(cut) and len(cut) < len(LONG), cut
                assert LONG[len(cut)] in " ,.", f"ends on a word: {cut!r}"
                turns = {t.turn: t for t in dynamodb.list_turns(call_id)}
                interrupted = [t for t in turns.values() if t.interrupted]
                assert len(interrupted) == 1 and interrupted[0].heard_text == cut
                assert turns[1].heard_text is None and FIRST in turns[1].assistant_text

    asyncio.run(call())
