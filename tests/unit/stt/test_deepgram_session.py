"""``DeepgramSession`` against ``FakeDeepgram`` over loopback (docs/protocols/ai-providers.md §1).

Caller audio is generated here: speech is a 300 Hz tone at -20 dBFS, encoded to μ-law by the
small G.711 encoder below; silence is 0xFF bytes. The fake counts time in audio bytes, so most
tests send faster than real time; the keepalive test is the one that waits on the clock.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from callkit.errors import ConfigurationError, ServiceError
from callkit.stt import DeepgramSTT
from callkit.stt.deepgram_protocol import (
    Interim,
    Metadata,
    SpeechStarted,
    STTEvent,
    Transcript,
    Utterance,
    UtteranceEnd,
    close_stream,
    parse_message,
)
from callkit.stt.deepgram_session import DeepgramSession, SessionPolicy, SessionState
from callkit.testing.deepgram import TEST_DEEPGRAM_API_KEY, FakeDeepgram, Segment

KEY = TEST_DEEPGRAM_API_KEY
FRAME = 160  # 20 ms of 8-kHz μ-law
SCRIPT = ["I need to move my appointment.", "Tomorrow at nine, please."]


def mulaw(sample: int) -> int:
    """G.711 μ-law encode one 16-bit sample."""
    sign = 0x80 if sample < 0 else 0
    magnitude = min(abs(sample), 32635) + 0x84
    exponent = max(0, min(7, magnitude.bit_length() - 8))
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


# 300 Hz at 8 kHz repeats every 80 samples (3 cycles); -20 dBFS peak.
_AMPLITUDE = 32767 * 10 ** (-20 / 20)
_PERIOD = bytes(mulaw(round(_AMPLITUDE * math.sin(2 * math.pi * 300 * n / 8000))) for n in range(80))


def tone(ms: int) -> bytes:
    return _PERIOD * (ms * 8 // 80)


def silence(ms: int) -> bytes:
    return b"\xff" * (ms * 8)


def run(main: Callable[[], Awaitable[None]], timeout: float = 20.0) -> None:
    async def guarded() -> None:
        async with asyncio.timeout(timeout):
            await main()

    asyncio.run(guarded())


async def say(session: DeepgramSession, audio: bytes, *, pace: float = 0.0) -> None:
    """Send ``audio`` in 20-ms frames; ``pace`` seconds apart, or as fast as the loop allows."""
    for n, offset in enumerate(range(0, len(audio), FRAME)):
        await session.send_audio(audio[offset : offset + FRAME])
        if pace:
            await asyncio.sleep(pace)
        elif n % 10 == 9:
            await asyncio.sleep(0)


async def until(events: AsyncIterator[STTEvent], kind: type[Any]) -> list[STTEvent]:
    """Events up to and including the next one of ``kind``."""
    seen: list[STTEvent] = []
    async for event in events:
        seen.append(event)
        if isinstance(event, kind):
            return seen
    raise AssertionError(f"events ended before a {kind.__name__}: {seen}")


async def until_state(session: DeepgramSession, state: SessionState) -> None:
    # The session has no state-change events to wait on; polling its state is what a test can do.
    while session.state != state:  # noqa: ASYNC110
        await asyncio.sleep(0.001)


def utterances(events: list[STTEvent]) -> list[str]:
    return [e.text for e in events if isinstance(e, Utterance)]


def sent_events(messages: list[str]) -> list[object]:
    return [parse_message(m) for m in messages]


def config(dg: FakeDeepgram, **overrides: Any) -> DeepgramSTT:
    return DeepgramSTT(api_key=overrides.pop("api_key", KEY), base_url=dg.base_url, **overrides)


# --- a conversation -----------------------------------------------------------------------------


def test_two_utterance_conversation() -> None:
    audio = silence(200) + tone(800) + silence(1200) + tone(600) + silence(1200)

    async def main() -> None:
        async with FakeDeepgram(SCRIPT) as dg:
            session = config(dg).session()
            await session.start()
            collected: list[STTEvent] = []

            async def collect() -> None:
                collected.extend([event async for event in session.events()])

            collector = asyncio.create_task(collect())
            await say(session, audio)
            await session.close()
            await collector

            assert utterances(collected) == SCRIPT
            assert [e for e in collected if isinstance(e, SpeechStarted)] == [
                SpeechStarted(0.2),
                SpeechStarted(2.2),
            ]
            interims = [e.text for e in collected if isinstance(e, Interim)]
            assert interims == [
                "I",
                "I need",
                "I need to",
                "I need to move",
                "Tomorrow",
                "Tomorrow at",
                "Tomorrow at nine,",
            ]
            first_turn = collected[: collected.index(Utterance(SCRIPT[0])) + 1]
            assert isinstance(first_turn[0], SpeechStarted)
            assert all(isinstance(e, Interim) for e in first_turn[1:-1])

            (conn,) = dg.connections
            assert conn.headers["authorization"] == f"Token {KEY}"
            for name, value in [
                ("encoding", "mulaw"),
                ("sample_rate", "8000"),
                ("channels", "1"),
                ("model", "nova-3"),
                ("interim_results", "true"),
                ("endpointing", "300"),
                ("utterance_end_ms", "1000"),
                ("vad_events", "true"),
            ]:
                assert conn.query[name] == [value], name
            assert bytes(conn.audio) == audio
            assert conn.audio_frames == len(audio) // FRAME
            assert conn.empty_frames == 0
            assert conn.received_text == [close_stream()]
            assert (conn.close_code, conn.close_reason) == (1000, "")

            sent = sent_events(conn.sent)
            finals = [e for e in sent if isinstance(e, Transcript) and e.is_final]
            assert [(f.text, f.start, f.duration, f.speech_final) for f in finals] == [
                (SCRIPT[0], 0.2, 0.8, True),
                (SCRIPT[1], 2.2, 0.6, True),
            ]
            assert [e for e in sent if isinstance(e, UtteranceEnd)] == [UtteranceEnd(1.0), UtteranceEnd(2.8)]
            assert sent[-1] == Metadata(conn.request_id, 4.0, 1)

            assert session.state == "closed"
            assert session.stats.frames_sent == len(audio) // FRAME
            assert session.stats.bytes_sent == len(audio)
            assert session.stats.request_ids == [conn.request_id]
            assert session.stats.keepalives_sent == 0

    run(main)


def test_without_endpointing_utterance_end_closes_the_turn() -> None:
    # Finals come without speech_final: UtteranceEnd closes the first turn; the second has no
    # UtteranceEnd before the stream ends, so close() flushes it.
    audio = tone(600) + silence(1200) + tone(400) + silence(400)

    async def main() -> None:
        async with FakeDeepgram(SCRIPT) as dg:
            session = config(dg, endpointing=0).session()
            await session.start()
            events = session.events()
            await say(session, audio)
            assert utterances(await until(events, Utterance)) == [SCRIPT[0]]
            await session.close()
            assert utterances([e async for e in events]) == [SCRIPT[1]]
            (conn,) = dg.connections
            assert conn.query["endpointing"] == ["false"]
            sent = sent_events(conn.sent)
            finals = [e for e in sent if isinstance(e, Transcript) and e.is_final]
            assert [(f.text, f.speech_final) for f in finals] == [(SCRIPT[0], False), (SCRIPT[1], False)]
            assert [e for e in sent if isinstance(e, UtteranceEnd)] == [UtteranceEnd(0.6)]

    run(main)


def test_finalize_flushes_the_turn() -> None:
    async def main() -> None:
        async with FakeDeepgram(SCRIPT) as dg:
            async with config(dg).session() as session:
                await say(session, tone(600))
                await session.finalize()
                assert utterances(await until(session.events(), Utterance)) == [SCRIPT[0]]
            (conn,) = dg.connections
            assert conn.finalizes == 1
            flushed = [e for e in sent_events(conn.sent) if isinstance(e, Transcript) and e.from_finalize]
            assert [(f.text, f.is_final, f.speech_final) for f in flushed] == [(SCRIPT[0], True, False)]

    run(main)


def test_empty_frames_are_never_sent_and_start_comes_first() -> None:
    async def main() -> None:
        async with FakeDeepgram(SCRIPT) as dg:
            session = config(dg).session()
            with pytest.raises(RuntimeError):
                await session.send_audio(tone(20))
            async with session:
                await session.send_audio(b"")
                await session.send_audio(silence(20))
            (conn,) = dg.connections
            assert (conn.empty_frames, conn.audio_frames) == (0, 1)
            assert session.stats.frames_sent == 1
            await session.send_audio(tone(20))  # after close: dropped, counted
            assert session.stats.dropped_frames == 1

    run(main)


def test_session_needs_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEEPGRAM_API_KEY", raising=False)
    with pytest.raises(ConfigurationError):
        DeepgramSTT().session()


# --- keepalive ----------------------------------------------------------------------------------


def test_keepalive_only_while_no_audio_flows() -> None:
    async def main() -> None:
        # The fake closes after 1.5 s without traffic; keepalives every 1 s must keep it open.
        async with FakeDeepgram(SCRIPT, idle_timeout=1.5) as dg:
            async with config(dg, keepalive_interval=1.0).session() as session:
                await say(session, tone(600) + silence(600), pace=0.02)  # real time, > 1 s
                (conn,) = dg.connections
                assert conn.keepalives == 0
                await asyncio.sleep(2.3)  # a silence gap with no audio at all
                assert conn.keepalives == 2
                await say(session, tone(400) + silence(400))
                assert conn.keepalives == 2
            assert session.stats.keepalives_sent == 2
            assert conn.received_text == [
                '{"type":"KeepAlive"}',
                '{"type":"KeepAlive"}',
                close_stream(),
            ]
            assert len(dg.connections) == 1
            assert (conn.close_code, conn.close_reason) == (1000, "")

    run(main)


def test_fake_closes_an_idle_socket_with_net_0001() -> None:
    async def main() -> None:
        async with FakeDeepgram(SCRIPT, idle_timeout=0.2) as dg:
            url = config(dg).url()
            async with connect(url, additional_headers={"Authorization": f"Token {KEY}"}) as ws:
                with pytest.raises(ConnectionClosed) as info:
                    await ws.recv()
            assert info.value.rcvd is not None
            assert (info.value.rcvd.code, info.value.rcvd.reason) == (1011, "NET-0001")
            assert (dg.connections[0].close_code, dg.connections[0].close_reason) == (1011, "NET-0001")

    run(main)


def test_fake_answers_a_bad_client_message_in_band() -> None:
    async def main() -> None:
        async with FakeDeepgram(SCRIPT) as dg:
            url = config(dg).url()
            async with connect(url, additional_headers={"Authorization": f"Token {KEY}"}) as ws:
                await ws.send('{"type":"Shout"}')
                reply = json.loads(await ws.recv())
                assert (reply["type"], reply["variant"]) == ("Error", "SchemaError")
                await ws.send(close_stream())
                assert json.loads(await ws.recv())["type"] == "Metadata"

    run(main)


# --- drops and reconnects -----------------------------------------------------------------------


@pytest.mark.parametrize("drop_close", [None, (1011, "NET-0001")], ids=["abrupt", "net-0001"])
def test_reconnects_once_and_the_conversation_continues(drop_close: tuple[int, str] | None) -> None:
    async def main() -> None:
        async with FakeDeepgram(
            SCRIPT, drop_after_seconds=0.3, drop_close=drop_close, handshake_delay=0.2
        ) as dg:
            async with config(dg).session() as session:
                events = session.events()
                await say(session, tone(600) + silence(400))
                assert utterances(await until(events, Utterance)) == [SCRIPT[0]]
                await dg.dropped.wait()
                await until_state(session, "reconnecting")
                await say(session, tone(600))  # held while the new socket opens
                assert session.stats.held_frames == 30
                await until_state(session, "open")
                await say(session, silence(1200))
                assert utterances(await until(events, Utterance)) == [SCRIPT[1]]
            first, second = dg.connections
            assert first.dropped
            assert (first.close_code, first.close_reason) == (drop_close or (None, ""))
            assert bytes(second.audio) == tone(600) + silence(1200)  # timestamps restart at 0
            finals = [e for e in sent_events(second.sent) if isinstance(e, Transcript) and e.is_final]
            assert [(f.text, f.start) for f in finals] == [(SCRIPT[1], 0.0)]
            assert session.stats.reconnects == 1
            assert session.stats.dropped_frames == 0
            assert session.stats.request_ids == [first.request_id, second.request_id]

    run(main)


def test_audio_held_while_reconnecting_is_capped_at_one_second() -> None:
    async def main() -> None:
        async with FakeDeepgram(SCRIPT, drop_after_seconds=0.1, handshake_delay=0.2) as dg:
            async with config(dg).session() as session:
                await dg.dropped.wait()
                await until_state(session, "reconnecting")
                held = tone(500) + silence(1000)  # 1.5 s: the oldest 0.5 s goes
                await say(session, held)
                await until_state(session, "open")
            assert session.stats.held_frames == 75
            assert (session.stats.dropped_frames, session.stats.dropped_bytes) == (25, 4000)
            assert bytes(dg.connections[1].audio) == held[-8000:]

    run(main)


def test_a_second_drop_ends_the_stream_with_a_retryable_error() -> None:
    async def main() -> None:
        async with FakeDeepgram(SCRIPT, drop_after_seconds=0.2, drop_count=2) as dg:
            session = config(dg).session()
            await session.start()
            with pytest.raises(ServiceError) as info:
                async for _ in session.events():
                    pass
            assert info.value.retryable
            assert session.state == "failed"
            assert len(dg.connections) == 2
            assert all(c.dropped for c in dg.connections)
            await session.send_audio(tone(20))  # never raises; counted
            assert session.stats.dropped_frames == 1
            await session.close()
            assert [e async for e in session.events()] == []

    run(main)


def test_a_failed_reconnect_ends_the_stream() -> None:
    async def main() -> None:
        async with FakeDeepgram(SCRIPT, drop_after_seconds=0.2) as dg:
            async with config(dg).session() as session:
                dg.reject_auth = True
                with pytest.raises(ServiceError) as info:
                    await until(session.events(), Utterance)
                assert not info.value.retryable
            assert len(dg.connections) == 1
            assert [r.status for r in dg.refused] == [401]

    run(main)


# --- connect failures ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "reject"), [(KEY, True), ("dg-wrong-key", False)], ids=["rejected", "wrong-key"]
)
def test_auth_failure_is_not_retryable(key: str, reject: bool) -> None:
    async def main() -> None:
        async with FakeDeepgram(SCRIPT, reject_auth=reject) as dg:
            session = config(dg, api_key=key).session()
            with pytest.raises(ServiceError, match="401") as info:
                await session.start()
            assert not info.value.retryable
            assert session.state == "failed"
            assert [e async for e in session.events()] == []
            await session.close()
            (refused,) = dg.refused
            assert refused.status == 401
            assert refused.headers["authorization"] == f"Token {key}"
            assert dg.connections == []

    run(main)


def test_connect_timeout_is_retryable() -> None:
    async def main() -> None:
        writers: list[asyncio.StreamWriter] = []

        async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writers.append(writer)  # accept TCP, never answer the upgrade

        server = await asyncio.start_server(mute, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        stt = DeepgramSTT(api_key=KEY, base_url=f"ws://127.0.0.1:{port}/v1/listen")
        session = stt.session(policy=SessionPolicy(connect_timeout=0.2))
        with pytest.raises(ServiceError, match="did not answer") as info:
            await session.start()
        assert info.value.retryable
        for writer in writers:
            writer.close()
            await writer.wait_closed()
        server.close()
        await server.wait_closed()

    run(main)


def test_connection_refused_is_retryable() -> None:
    async def main() -> None:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        session = DeepgramSTT(api_key=KEY, base_url=f"ws://127.0.0.1:{port}/v1/listen").session()
        with pytest.raises(ServiceError) as info:
            await session.start()
        assert info.value.retryable

    run(main)


# --- one socket per call ------------------------------------------------------------------------


def test_two_concurrent_sessions_get_two_sockets() -> None:
    audio_a = tone(400) + silence(1200)
    audio_b = tone(400) + silence(400) + tone(400) + silence(1200)

    def script(segment: Segment) -> str:
        return f"caller {segment.connection} turn {segment.index}"

    async def main() -> None:
        async with FakeDeepgram(script) as dg:
            stt = config(dg)  # one configuration, two calls
            a, b = stt.session(), stt.session()
            await a.start()
            await b.start()

            async def call(session: DeepgramSession, audio: bytes) -> list[STTEvent]:
                await say(session, audio)
                await session.close()
                return [e async for e in session.events()]

            events_a, events_b = await asyncio.gather(call(a, audio_a), call(b, audio_b))
            assert utterances(events_a) == ["caller 0 turn 0"]
            assert utterances(events_b) == ["caller 1 turn 0", "caller 1 turn 1"]
            conn_a, conn_b = dg.connections
            assert bytes(conn_a.audio) == audio_a
            assert bytes(conn_b.audio) == audio_b
            assert conn_a.request_id != conn_b.request_id
            assert a.stats.request_ids == [conn_a.request_id]
            assert b.stats.request_ids == [conn_b.request_id]
            assert conn_a.close_streams == conn_b.close_streams == 1

    run(main)
