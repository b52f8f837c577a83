"""Realtime calls on the call core: tools that transfer or end the call, and marks that never come."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import parse_qs

import pytest

from callkit.actions import EndCall
from callkit.agent import Agent, tool
from callkit.carriers._types import PlayAudio
from callkit.examples import transfer_call
from callkit.store._base import CallStore
from callkit.testing.openai_realtime import ScriptEntry, ToolCall
from callkit.testing.stream_client import silence, speech
from callkit.testing.world import Call, World, loopback_world


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


@asynccontextmanager
async def realtime_call(
    provider: str, script: list[ScriptEntry], store: CallStore, **stream: bool
) -> AsyncIterator[tuple[World, Call]]:
    async with loopback_world(
        provider=provider,  # type: ignore[arg-type]
        pipeline="realtime",
        store=store,
        agent=agent,
        realtime=script,
        realtime_heard=["I'd like to talk to a person."],
    ) as world:
        yield world, await world.call(**stream)


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
        async with realtime_call(provider, script, dynamodb) as (w, c):
            await until(lambda: c.stream.heard_ms > 0 and c.stream.queued_ms == 0)
            await c.stream.say(speech(700) + silence(900))
            await until(lambda: len(w.api.hangups) == 1, 15)
            assert c.stream.queued_ms == 0, "the closing words played before the transfer"
            if provider == "twilio":
                twiml = parse_qs(w.api.hangups[0].body.decode())["Twiml"][0]
                assert "<Dial" in twiml and "+15557654321" in twiml
            else:
                assert "to=%2B15557654321" in json.loads(w.api.hangups[0].body)["aleg_url"]

            # The turn is kept as the call ends after the transfer (written off the loop, in order).
            def transfer_recorded() -> bool:
                tools = [json.loads(t.tool_calls) for t in dynamodb.list_turns(c.call_id)]
                return any(calls and calls[0]["name"] == "transfer_call" for calls in tools)

            await until(transfer_recorded, 5)
            await asyncio.sleep(0.5)
            assert len(w.api.hangups) == 1, "one carrier request"

    asyncio.run(scenario())


def test_a_realtime_tool_that_ends_the_call_says_goodbye_and_hangs_up(dynamodb: CallStore) -> None:
    script: list[ScriptEntry] = [
        ToolCall("end_call", json.dumps({"reason": "done"})),
        "Thanks for calling, goodbye!",
    ]

    async def scenario() -> None:
        async with realtime_call("twilio", script, dynamodb) as (w, c):
            await until(lambda: c.stream.heard_ms > 0 and c.stream.queued_ms == 0)
            played_before = sum(isinstance(m, PlayAudio) for m in c.stream.received)
            await c.stream.say(speech(700) + silence(900))
            await until(lambda: len(w.api.hangups) == 1, 15)
            assert w.api.hangups[0].body == b"Status=completed"
            assert sum(isinstance(m, PlayAudio) for m in c.stream.received) > played_before, "goodbye spoken"
            assert c.stream.queued_ms == 0, "and played before the hang-up"
            outputs = w.realtime.connections[0].tool_outputs
            assert outputs and "end" in outputs[0][1].lower()

    asyncio.run(scenario())


def test_a_realtime_call_whose_marks_are_lost_still_ends(dynamodb: CallStore) -> None:
    """The carrier never confirms playback: the call waits only until its audio should have played."""
    script: list[ScriptEntry] = [
        ToolCall("end_call", json.dumps({"reason": "done"})),
        "Goodbye!",
    ]

    async def scenario() -> None:
        async with realtime_call("twilio", script, dynamodb, lose_marks=True) as (w, c):
            await until(lambda: c.stream.heard_ms > 0)
            await c.stream.say(speech(700) + silence(900))
            await until(lambda: len(w.api.hangups) == 1, 10)
            assert w.api.hangups[0].body == b"Status=completed"

    asyncio.run(scenario())


def test_a_realtime_session_that_stops_answering_ends_with_the_carriers_apology(dynamodb: CallStore) -> None:
    """The session stays open but never answers the caller: within seconds the carrier speaks."""

    async def scenario() -> None:
        async with loopback_world(
            pipeline="realtime",
            store=dynamodb,
            agent=agent,
            realtime_heard=["Hello?"],
            realtime_faults={"stall_after_responses": 1},  # the greeting, then silence
        ) as w:
            call = await w.call()
            await until(lambda: call.stream.heard_ms > 0 and call.stream.queued_ms == 0)
            await call.stream.say(speech(700) + silence(900))
            stopped = asyncio.get_running_loop().time()
            await until(lambda: len(w.api.hangups) == 1, 15)
            waited = asyncio.get_running_loop().time() - stopped
            assert waited < 8.0, f"{waited:.1f} s of silence"
            twiml = parse_qs(w.api.hangups[0].body.decode())["Twiml"][0]
            assert "<Say" in twiml and "technical trouble" in twiml

    asyncio.run(scenario())


@pytest.mark.parametrize("failing", [{2}, {2, 3}], ids=["once", "keeps-failing"])
def test_a_failed_realtime_response_is_asked_again_then_apologised_for(
    failing: set[int], dynamodb: CallStore
) -> None:
    """response.done ``failed``: asked again once (the caller hears the answer); failing again, the
    carrier speaks the apology and the call ends. Never silence."""
    answer = "Order 1001 shipped on Monday."

    async def scenario() -> None:
        async with loopback_world(
            pipeline="realtime",
            store=dynamodb,
            agent=agent,
            realtime=[answer, answer],  # a failed response still takes its script entry
            realtime_heard=["Where is my order 1001?"],
            realtime_faults={"fail_responses": failing},  # response 1 is the greeting
        ) as w:
            call = await w.call()
            await until(lambda: call.stream.heard_ms > 0 and call.stream.queued_ms == 0)
            heard = call.stream.heard_ms
            await call.stream.say(speech(700) + silence(900))
            if failing == {2}:
                await until(lambda: call.stream.heard_ms > heard + 500, 10)  # the answer, after a retry
                assert w.api.hangups == []
            else:
                await until(lambda: len(w.api.hangups) == 1, 10)
                twiml = parse_qs(w.api.hangups[0].body.decode())["Twiml"][0]
                assert "technical trouble" in twiml
            creates = [
                e for e in w.realtime.connections[0].client_events if e.get("type") == "response.create"
            ]
            assert len(creates) == 2, "the greeting, and one retry of the failed answer"

    asyncio.run(scenario())
