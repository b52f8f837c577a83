"""Cascading calls: concurrency (2 and 20 calls), max duration, provider failure, DynamoDB state."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import pytest

from callkit.carriers._types import PlayAudio
from callkit.store._base import CallStore
from callkit.testing.deepgram import TEST_DEEPGRAM_API_KEY, Segment
from callkit.testing.stream_client import SimulatedMediaStream, silence, speech
from callkit.testing.world import World, loopback_world


def per_call(segment: Segment) -> str:
    """Each connection (call) asks about its own order: 1001, 1002, 1003, 1001, ..."""
    return f"Where is my order {1001 + segment.connection % 3}?"


@contextlib.asynccontextmanager
async def world(
    store: CallStore, monkeypatch: pytest.MonkeyPatch, provider: str = "twilio", **options: object
) -> AsyncIterator[World]:
    async with loopback_world(
        provider=provider,  # type: ignore[arg-type]
        store=store,
        heard=options.pop("script", per_call),  # type: ignore[arg-type]
        cartesia=options.pop("cartesia", None),  # type: ignore[arg-type]
        deepgram_key=str(options.pop("deepgram_key", TEST_DEEPGRAM_API_KEY)),
        **options,
    ) as w:
        yield w


async def open_stream(w: World) -> tuple[str, SimulatedMediaStream]:
    call = await w.call()
    return call.call_id, call.stream


async def wait_for(condition: object, limit: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + limit
    while not condition() and asyncio.get_running_loop().time() < deadline:  # type: ignore[operator]  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    assert condition()  # type: ignore[operator]


@pytest.mark.parametrize("calls", [2, 20])
def test_concurrent_calls_never_cross(
    calls: int, dynamodb: CallStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        async with world(dynamodb, monkeypatch) as w:
            opened = [await open_stream(w) for _ in range(calls)]

            async def converse(call_id: str, stream: SimulatedMediaStream) -> None:
                await wait_for(lambda: any(isinstance(c, PlayAudio) for c in stream.received))
                await stream.say(silence(400) + speech(700) + silence(900))
                await wait_for(lambda: any(t.kind == "prompt" for t in w.store.list_turns(call_id)), 30)
                await stream.hang_up()

            await asyncio.gather(*(converse(call_id, stream) for call_id, stream in opened))
            assert len(w.deepgram.connections) == calls, "one STT socket per call"
            assert len(w.cartesia.connections) == calls, "one TTS socket per call"
            for call_id, _ in opened:
                turns = [t for t in w.store.list_turns(call_id) if t.kind == "prompt"]
                assert len(turns) == 1, [
                    (t.kind, t.caller_text, t.assistant_text[:30], t.interrupted)
                    for t in w.store.list_turns(call_id)
                ]
                asked = turns[0].caller_text.split()[-1].rstrip("?")
                messages = json.loads(turns[0].messages)
                assert any(asked in json.dumps(m) for m in messages if m["role"] == "tool"), (asked, messages)
                record = w.store.get_call(call_id)
                assert record is not None and record.stream_id is not None

    asyncio.run(scenario())


def test_max_call_duration_says_goodbye_and_hangs_up(
    dynamodb: CallStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        async with world(dynamodb, monkeypatch, max_call_duration_seconds=3) as w:
            call_id, stream = await open_stream(w)
            await wait_for(lambda: [h.call_id for h in w.api.hangups] == [call_id], 15)  # a silent caller
            assert w.api.hangups[0].body == b"Status=completed"
            texts = [c.transcript for c in w.cartesia.contexts().values()]
            assert any("time limit" in t for t in texts)
            await stream.hang_up()

    asyncio.run(scenario())


@pytest.mark.parametrize("provider", ["twilio", "plivo"])
@pytest.mark.parametrize(
    "cartesia", [{"error_on_context": 2}, {"errors_from_context": 2}], ids=["once", "stays-down"]
)
def test_a_tts_failure_ends_with_one_carrier_apology_and_no_task_left(
    provider: str, cartesia: dict[str, int], dynamodb: CallStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The voice failed: the carrier speaks the apology, once, and ends the call; nothing of it runs on."""
    from urllib.parse import parse_qs

    call_tasks = {"inbound", "ticks", "deadline", "transcripts", "turn", "ending", "bookkeeping"}

    async def scenario() -> None:
        async with world(
            dynamodb, monkeypatch, provider=provider, script=["Where is my order 1001?"], cartesia=cartesia
        ) as w:
            call_id, stream = await open_stream(w)
            await wait_for(lambda: any(isinstance(c, PlayAudio) for c in stream.received))
            await stream.say(silence(300) + speech(700) + silence(900))
            await wait_for(lambda: len(w.api.hangups) >= 1, 15)
            await asyncio.sleep(2.0)  # a storm of apologies or hang-ups would show by now
            assert [h.call_id for h in w.api.hangups] == [call_id], "exactly one carrier request"
            if provider == "twilio":
                twiml = parse_qs(w.api.hangups[0].body.decode())["Twiml"][0]
                assert "<Say" in twiml and "technical trouble" in twiml and "<Hangup" in twiml
            else:  # Plivo fetches the apology (<Speak> + <Hangup/>) from our transfer route
                transfer = json.loads(w.api.hangups[0].body)
                assert transfer["aleg_url"] == f"{w.runtime.url}/call/incoming/transfer"
            contexts = list(w.cartesia.contexts().values())
            assert not any("technical trouble" in c.transcript for c in contexts), (
                "not through the dead voice"
            )
            await stream.hang_up()
            await wait_for(lambda: not [t for t in asyncio.all_tasks() if t.get_name() in call_tasks], 5)

    asyncio.run(scenario())


@pytest.mark.parametrize("provider", ["twilio", "plivo"])
def test_a_tts_that_stalls_mid_reply_is_an_apology_within_seconds(
    provider: str, dynamodb: CallStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cartesia falls silent after the answer's first chunk (and for every reply after): within a
    few seconds the carrier speaks the apology and the call ends, once."""

    async def scenario() -> None:
        async with world(
            dynamodb,
            monkeypatch,
            provider=provider,
            script=["Where is my order 1001?"],
            cartesia={"stall_from_context": 2},
        ) as w:
            call_id, stream = await open_stream(w)
            await wait_for(lambda: any(isinstance(c, PlayAudio) for c in stream.received))
            await stream.say(silence(300) + speech(700))
            asked = asyncio.get_running_loop().time()
            await stream.say(silence(900))
            await wait_for(lambda: len(w.api.hangups) >= 1, 15)
            waited = asyncio.get_running_loop().time() - asked
            assert waited < 7.0, f"{waited:.1f} s of silence before the apology"
            await asyncio.sleep(1.0)
            assert [h.call_id for h in w.api.hangups] == [call_id]
            await stream.hang_up()

    asyncio.run(scenario())


def test_a_refused_stt_key_is_an_apology_in_our_voice_and_one_hang_up(
    dynamodb: CallStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deepgram refuses the key at call start: the TTS still works, so the caller hears the apology
    in the pipeline's voice, then the call is hung up once; never silence, never an exception."""

    async def scenario() -> None:
        async with world(dynamodb, monkeypatch, deepgram_key="not-the-key") as w:
            call_id, stream = await open_stream(w)
            await wait_for(lambda: [h.call_id for h in w.api.hangups] == [call_id], 15)
            assert w.api.hangups[0].body == b"Status=completed"
            texts = [c.transcript for c in w.cartesia.contexts().values()]
            assert any("technical trouble" in t for t in texts), texts
            assert any(isinstance(c, PlayAudio) for c in stream.received)
            await asyncio.sleep(1.0)
            assert len(w.api.hangups) == 1
            await stream.hang_up()

    asyncio.run(scenario())


def test_a_transfer_redirects_the_twilio_call_to_a_dial(
    dynamodb: CallStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CALLKIT_TRANSFER_NUMBER", "+15557654321")

    async def scenario() -> None:
        async with world(dynamodb, monkeypatch, script=["Can I talk to a person please?"]) as w:
            call_id, stream = await open_stream(w)
            await wait_for(lambda: any(isinstance(c, PlayAudio) for c in stream.received))
            await stream.say(silence(300) + speech(700) + silence(900))
            await wait_for(lambda: [h.call_id for h in w.api.hangups] == [call_id], 15)
            body = w.api.hangups[0].body.decode()
            assert body.startswith("Twiml=") and "%3CDial" in body and "%2B15557654321" in body
            await stream.hang_up()

    asyncio.run(scenario())


def test_a_plivo_transfer_points_plivo_at_our_dial(
    dynamodb: CallStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Plivo's transfer API takes a URL: it fetches our webhook's transfer route, which answers <Dial>."""
    from urllib.parse import urlsplit

    monkeypatch.setenv("CALLKIT_TRANSFER_NUMBER", "+15557654321")

    async def scenario() -> None:
        async with world(
            dynamodb, monkeypatch, provider="plivo", script=["Can I talk to a person please?"]
        ) as w:
            call_id, stream = await open_stream(w)
            await wait_for(lambda: any(isinstance(c, PlayAudio) for c in stream.received))
            await stream.say(silence(300) + speech(700) + silence(900))
            await wait_for(lambda: [h.call_id for h in w.api.hangups] == [call_id], 15)
            transfer = json.loads(w.api.hangups[0].body)
            assert transfer["legs"] == "aleg" and transfer["aleg_method"] == "POST"
            assert transfer["aleg_url"].startswith(f"{w.runtime.url}/call/incoming/transfer?to=")
            # Plivo now fetches the new XML from that URL, signed like any of its requests.
            parts = urlsplit(transfer["aleg_url"])
            fetch = w.carrier.sign(
                "POST",
                f"{parts.path}?{parts.query}",
                [("CallUUID", call_id), ("To", w.interface.phone_number.lstrip("+"))],
            )
            reply = await w.carrier.send(fetch)
            assert reply.status == 200 and "<Dial" in reply.body and "15557654321" in reply.body
            assert (await w.carrier.send(fetch.unsigned())).status == 403
            await stream.hang_up()

    asyncio.run(scenario())
