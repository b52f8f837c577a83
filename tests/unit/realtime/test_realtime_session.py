"""``OpenAIRealtimeSession`` over loopback WebSockets against ``FakeRealtime`` (docs/protocols/ai-providers.md §3)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from callkit.errors import ServiceError
from callkit.realtime.openai import OpenAIRealtimeProvider
from callkit.realtime.openai_protocol import (
    AudioDelta,
    FunctionCall,
    InputTranscript,
    RealtimeEvent,
    ResponseDone,
    SpeechStarted,
    SpeechStopped,
    TranscriptDone,
    Truncated,
    append_audio,
    function_call_output,
    session_update,
    truncate,
)
from callkit.realtime.openai_session import OpenAIRealtimeSession, ResponseGate
from callkit.testing.openai_realtime import TEST_OPENAI_API_KEY, FakeRealtime, ToolCall, tone

SILENCE = b"\xff"


def run[T](main: Callable[[], Awaitable[T]]) -> T:
    async def wrapper() -> T:
        async with asyncio.timeout(10):
            return await main()

    return asyncio.run(wrapper())


def config(rt: FakeRealtime, **kwargs: Any) -> OpenAIRealtimeProvider:
    kwargs.setdefault("api_key", TEST_OPENAI_API_KEY)
    return OpenAIRealtimeProvider(base_url=rt.base_url, voice="marin", **kwargs)


def update(cfg: OpenAIRealtimeProvider) -> dict[str, Any]:
    return session_update(cfg, instructions="Be brief.", interrupt_sensitivity="high")


@asynccontextmanager
async def connected(rt: FakeRealtime) -> AsyncIterator[OpenAIRealtimeSession]:
    cfg = config(rt)
    async with cfg.session() as session:
        await session.connect(update(cfg))
        yield session


async def say(session: OpenAIRealtimeSession, speech_ms: int, silence_ms: int = 0) -> None:
    """Caller audio as a carrier delivers it: 20-ms base64 μ-law payloads, passed through as is."""
    audio = tone(speech_ms * 8) + SILENCE * (silence_ms * 8)
    for start in range(0, len(audio), 160):
        await session.send(append_audio(base64.b64encode(audio[start : start + 160]).decode("ascii")))


async def until[E](
    events: AsyncIterator[RealtimeEvent],
    kind: type[E],
    seen: list[RealtimeEvent],
    gate: ResponseGate | None = None,
) -> E:
    """Read up to the next ``kind``; every event but that one goes through ``gate`` (the caller feeds it)."""
    async for event in events:
        seen.append(event)
        if gate is not None and not isinstance(event, kind):
            await gate.observe(event)
        if isinstance(event, kind):
            return event
    raise AssertionError(f"no {kind.__name__}")


def test_connect_configures_a_ga_session() -> None:
    async def main() -> None:
        async with FakeRealtime() as rt:
            cfg = config(rt)
            async with cfg.session() as session:
                sent = update(cfg)
                await session.connect(sent)
                assert session.session_id == "sess_fake"
            conn = rt.connections[0]
            assert conn.headers["authorization"] == f"Bearer {TEST_OPENAI_API_KEY}"
            assert "openai-beta" not in conn.headers
            assert conn.query["model"] == ["gpt-realtime"]
            assert conn.session_update == sent
            assert conn.errors_sent == []

    run(main)


def test_speech_in_transcript_and_audio_out() -> None:
    async def main() -> None:
        async with FakeRealtime(["Hello there, how can I help?"], heard=["I need an appointment."]) as rt:
            async with connected(rt) as session:
                events = aiter(session.events())
                await say(session, 400, 600)
                seen: list[RealtimeEvent] = []
                done = await until(events, ResponseDone, seen)
                assert done.status == "completed"
                started = [e for e in seen if isinstance(e, SpeechStarted)]
                assert [e.audio_start_ms for e in started] == [0]
                assert any(isinstance(e, SpeechStopped) for e in seen)
                assert [e.transcript for e in seen if isinstance(e, InputTranscript)] == [
                    "I need an appointment."
                ]
                audio = b"".join(base64.b64decode(e.audio_b64) for e in seen if isinstance(e, AudioDelta))
                assert len(audio) == 65 * len("Hello there, how can I help?") * 8
                assert [e.transcript for e in seen if isinstance(e, TranscriptDone)] == [
                    "Hello there, how can I help?"
                ]
                assert session.stats.beta_events == 0
            assert rt.connections[0].audio_ms == 1000

    run(main)


def test_tool_round_sends_a_single_response_create() -> None:
    async def main() -> None:
        script = [ToolCall("book_slot", '{"slot_id":"s-14"}'), "Booked for nine."]
        async with FakeRealtime(script, heard=["Book s-14."]) as rt:
            async with connected(rt) as session:
                gate = ResponseGate(session)
                events = aiter(session.events())
                await say(session, 300, 600)
                seen: list[RealtimeEvent] = []
                call = await until(events, FunctionCall, seen, gate)
                assert gate.active  # the VAD-created response, seen through response.created
                assert (call.name, call.arguments) == ("book_slot", '{"slot_id":"s-14"}')
                await session.send(function_call_output(call.call_id, '{"booked":true}'))
                gate.tool_output()
                await gate.request()  # e.g. a DTMF turn meanwhile: still one create
                assert gate.owed
                done = await until(events, ResponseDone, seen, gate)
                assert done.output == (call,)
                assert await gate.observe(done)  # sends the owed create now
                final = await until(events, ResponseDone, seen, gate)
                assert await gate.observe(final) is False
                assert final.status == "completed"
                assert [e.transcript for e in seen if isinstance(e, TranscriptDone)] == ["Booked for nine."]
            conn = rt.connections[0]
            assert conn.tool_outputs == [(call.call_id, '{"booked":true}')]
            types = [t for t in conn.event_types() if t != "input_audio_buffer.append"]
            assert types == ["session.update", "conversation.item.create", "response.create"]
            assert conn.conflicts == 0
            assert gate.creates == 1

    run(main)


def test_gate_two_tool_outputs_then_one_create() -> None:
    sent: list[str] = []

    class Sink:
        async def send(self, text_event: str) -> None:
            sent.append(text_event)

    async def main() -> None:
        gate = ResponseGate(Sink())
        assert await gate.request("Greet the caller.")
        assert not await gate.request()  # in flight: deferred, not overlapping
        gate.tool_output()
        gate.tool_output()
        assert await gate.observe(ResponseDone("r1", "completed"))
        assert len(sent) == 2  # the greeting, then exactly one create for everything owed
        assert not await gate.observe(ResponseDone("r2", "completed"))
        assert not await gate.flush()
        assert len(sent) == 2

    run(main)


def test_barge_in_while_audio_flows() -> None:
    async def main() -> None:
        long = "This is a long answer that goes on for a good while, so there is time to barge in."
        async with FakeRealtime([long], heard=["Hi."], delta_delay=0.01) as rt:
            async with connected(rt) as session:
                events = aiter(session.events())
                await say(session, 300, 600)
                seen: list[RealtimeEvent] = []
                first = await until(events, AudioDelta, seen)
                await say(session, 200)  # the caller talks over the model
                barge = await until(events, SpeechStarted, seen)
                assert barge.audio_start_ms == 900
                done = await until(events, ResponseDone, seen)
                assert (done.status, done.reason) == ("cancelled", "turn_detected")
                await session.send(truncate(first.item_id, 1234))
                truncated = await until(events, Truncated, seen)
                assert truncated == Truncated(first.item_id, 0, 1234)
                played = sum(len(base64.b64decode(e.audio_b64)) for e in seen if isinstance(e, AudioDelta))
                assert played < 65 * len(long) * 8
            assert rt.connections[0].truncations == [(first.item_id, 1234)]

    run(main)


def test_beta_header_is_refused() -> None:
    async def main() -> None:
        async with FakeRealtime() as rt:
            cfg = config(rt)
            session = OpenAIRealtimeSession(cfg, extra_headers={"OpenAI-Beta": "realtime=v1"})
            with pytest.raises(ServiceError) as caught:
                await session.connect(update(cfg))
            assert caught.value.retryable is False
            await session.close()
            assert rt.connections[0].errors_sent == ["beta_api_shape_disabled"]
            assert rt.connections[0].close_code == 4000

    run(main)


def test_beta_shaped_update_is_refused() -> None:
    async def main() -> None:
        async with FakeRealtime() as rt:
            session = config(rt).session()
            beta = {"type": "session.update", "session": {"modalities": ["audio", "text"], "voice": "alloy"}}
            with pytest.raises(ServiceError):
                await session.connect(beta)
            await session.close()
            assert rt.connections[0].session_update is None
            assert rt.connections[0].errors_sent == ["unknown_parameter"]

    run(main)


def test_wrong_key_is_not_retryable() -> None:
    async def main() -> None:
        async with FakeRealtime() as rt:
            cfg = config(rt, api_key="sk-wrong")
            with pytest.raises(ServiceError) as caught:
                await cfg.session().connect(update(cfg))
            assert caught.value.retryable is False
            assert rt.refused

    run(main)


def test_drop_ends_events_with_a_retryable_error() -> None:
    async def main() -> None:
        async with FakeRealtime(drop_after_seconds=0.1) as rt, connected(rt) as session:
            with pytest.raises(ServiceError) as caught:
                async for _ in session.events():
                    pass
            assert caught.value.retryable is True
            with pytest.raises(ServiceError):
                await session.send(append_audio("AAAA"))

    run(main)


def test_close_ends_events_quietly() -> None:
    async def main() -> None:
        async with FakeRealtime() as rt, connected(rt) as session:
            await session.close()
            assert [e async for e in session.events()] == []

    run(main)
