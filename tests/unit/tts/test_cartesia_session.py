"""``CartesiaSession`` over real loopback WebSockets against ``FakeCartesia`` (docs/protocols/ai-providers.md §2)."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from callkit.errors import ConfigurationError, ServiceError
from callkit.testing.cartesia import FakeCartesia, FakeError, tone
from callkit.tts.cartesia import CartesiaTTS
from callkit.tts.cartesia_session import CartesiaReply, CartesiaSession, ReplyState

API_KEY = "sk_car_test_0123456789"
VOICE = "a0e99841-438c-4a64-b679-ae501e7d6091"
PIECES = ["Sure, ", "let me check that for you. ", "One moment."]
LONG = "This is a long answer that goes on for a good while, so that there is time to barge in. " * 3


def run[T](main: Callable[[], Awaitable[T]]) -> T:
    async def wrapper() -> T:
        return await main()

    return asyncio.run(wrapper())


def config(tts: FakeCartesia, **kwargs: Any) -> CartesiaTTS:
    kwargs.setdefault("api_key", API_KEY)
    return CartesiaTTS(voice_id=VOICE, base_url=tts.base_url, **kwargs)


@asynccontextmanager
async def session_with(**fake: Any) -> AsyncIterator[tuple[FakeCartesia, CartesiaSession]]:
    async with FakeCartesia(**fake) as tts, config(tts).session() as session:
        yield tts, session


async def speak(reply: CartesiaReply, pieces: list[str]) -> bytes:
    for piece in pieces:
        await reply.send(piece)
    await reply.end()
    return b"".join([audio async for audio in reply.audio()])


async def eventually(condition: Callable[[], bool]) -> None:
    """Let the other tasks run until ``condition`` holds (a reader task reacting to the socket)."""
    async with asyncio.timeout(2):
        while not condition():  # noqa: ASYNC110 - the state changes in another task, not on an event
            await asyncio.sleep(0)


async def first_audio(reply: CartesiaReply) -> bytes:
    async for audio in reply.audio():
        return audio
    raise AssertionError("no audio")


# --- one reply ------------------------------------------------------------------------------------------


def test_one_reply_in_three_pieces() -> None:
    async def main() -> None:
        async with session_with() as (tts, session):
            reply = session.new_reply()
            audio = await speak(reply, PIECES)
            # 8 bytes of μ-law a millisecond; the fake speaks 65 ms a character (at least 100 ms a piece).
            assert len(audio) / 8 == sum(max(100, 65 * len(p)) for p in PIECES)
            assert audio == tone(len(audio))  # every chunk, in arrival order
            assert reply.state is ReplyState.DONE
            assert reply.audio_bytes == len(audio)
            assert reply.first_audio_delay is not None
            assert reply.first_audio_delay >= 0
            [connection] = tts.connections
            context = connection.contexts[reply.context_id]
            assert context.transcript == "".join(PIECES)
            assert context.pieces == [*PIECES, ""]  # then the empty closing input
            assert context.done_sent
            assert [r["continue"] for r in connection.requests] == [True, True, True, False]
            assert connection.auth == "bearer"
            assert connection.api_key == API_KEY
            assert connection.headers["cartesia-version"] == "2026-03-01"
            assert session.stats.dropped == 0

    run(main)


def test_audio_is_read_while_text_is_still_being_sent() -> None:
    async def main() -> None:
        async with session_with() as (tts, session):
            reply = session.new_reply()
            reader = asyncio.create_task(first_audio(reply))
            await reply.send(PIECES[0])
            assert len(await reader) > 0  # speech starts before the reply is complete
            for piece in PIECES[1:]:
                await reply.send(piece)
            await reply.end()
            rest = b"".join([audio async for audio in reply.audio()])
            assert len(await reader) + len(rest) == tts.audio_bytes(PIECES)

    run(main)


def test_replies_reuse_the_socket_with_new_contexts() -> None:
    async def main() -> None:
        async with session_with() as (tts, session):
            replies = [session.new_reply() for _ in range(3)]
            for reply in replies:
                assert len(await speak(reply, ["Hello there. "])) == tts.audio_bytes(["Hello there. "])
            assert len({r.context_id for r in replies}) == 3
            assert len(tts.connections) == 1
            assert session.stats.connects == 1

    run(main)


def test_ending_an_empty_reply_sends_nothing() -> None:
    async def main() -> None:
        async with session_with() as (tts, session):
            reply = session.new_reply()
            await reply.send("")  # an empty piece is not sent either
            await reply.end()
            assert [audio async for audio in reply.audio()] == []
            assert reply.state is ReplyState.DONE
            assert tts.connections[0].requests == []

    run(main)


def test_word_timestamps_when_asked() -> None:
    async def main() -> None:
        async with FakeCartesia() as tts, CartesiaSession(config(tts), add_timestamps=True) as session:
            reply = session.new_reply()
            await speak(reply, PIECES)
            words = [w for stamps in reply.timestamps for w in stamps.words]
            assert words == "".join(PIECES).split()
            assert tts.connections[0].requests[0]["add_timestamps"] is True

    run(main)


def test_sixteen_bit_output() -> None:
    async def main() -> None:
        async with (
            FakeCartesia() as tts,
            CartesiaSession(config(tts), encoding="pcm_s16le", sample_rate=16000) as session,
        ):
            audio = await speak(session.new_reply(), PIECES)
            assert len(audio) == tts.audio_bytes(PIECES, encoding="pcm_s16le", sample_rate=16000)
            assert len(audio) / 32 == sum(max(100, 65 * len(p)) for p in PIECES)

    run(main)


def test_speed_shortens_the_audio() -> None:
    async def main() -> None:
        async with FakeCartesia() as tts, CartesiaSession(config(tts, speed="fast")) as session:
            audio = await speak(session.new_reply(), PIECES)
            assert len(audio) == tts.audio_bytes(PIECES, speed=1.2) < tts.audio_bytes(PIECES)

    run(main)


def test_misuse() -> None:
    async def main() -> None:
        async with session_with() as (_, session):
            reply = session.new_reply()
            await speak(reply, ["Done. "])
            await reply.end()  # idempotent
            with pytest.raises(RuntimeError, match="new_reply"):
                await reply.send("More?")
            assert [audio async for audio in reply.audio()] == []  # iterated before: ends at once
        with pytest.raises(RuntimeError, match="closed"):
            session.new_reply()

    run(main)


# --- barge-in -------------------------------------------------------------------------------------------


def test_cancel_mid_reply_then_the_next_reply_works_on_the_same_socket() -> None:
    async def main() -> None:
        async with session_with(chunk_delay=0.01) as (tts, session):
            reply = session.new_reply()
            await reply.send(LONG)
            await reply.end()
            heard = len(await first_audio(reply))
            await reply.cancel()
            assert reply.state is ReplyState.CANCELLED
            assert [audio async for audio in reply.audio()] == []  # nothing more, no error
            await reply.send("ignored after a cancel")
            await reply.cancel()  # idempotent, never raises

            tts.chunk_delay = 0.0
            after = session.new_reply()
            audio = await speak(after, PIECES)
            assert len(audio) == tts.audio_bytes(PIECES)

            [connection] = tts.connections
            cancelled = connection.contexts[reply.context_id]
            assert cancelled.cancelled
            assert not cancelled.done_sent
            assert heard <= cancelled.audio_bytes_sent < tts.audio_bytes([LONG])
            assert {"context_id": reply.context_id, "cancel": True} in connection.requests
            assert "ignored" not in cancelled.transcript

    run(main)


def test_late_chunks_of_a_cancelled_context_are_dropped() -> None:
    async def main() -> None:
        async with session_with(chunk_delay=0.01, late_chunks_after_cancel=3) as (tts, session):
            reply = session.new_reply()
            await reply.send(LONG)
            await first_audio(reply)
            await reply.cancel()

            tts.chunk_delay = 0.0
            after = session.new_reply()
            audio = await speak(after, PIECES)
            assert audio == tone(len(audio))  # not one byte of the cancelled context
            assert len(audio) == tts.audio_bytes(PIECES)
            assert session.stats.dropped >= 3
            assert reply.audio_bytes < tts.connections[0].contexts[reply.context_id].audio_bytes_sent

    run(main)


def test_cancel_before_anything_was_sent() -> None:
    async def main() -> None:
        async with session_with() as (tts, session):
            reply = session.new_reply()
            await reply.cancel()
            await reply.send("Too late. ")
            assert [audio async for audio in reply.audio()] == []
            assert tts.connections[0].requests == []

    run(main)


# --- failures -------------------------------------------------------------------------------------------


def test_a_429_fails_that_reply_retryably_and_the_socket_stays() -> None:
    async def main() -> None:
        async with session_with(error_on_context=1) as (tts, session):
            reply = session.new_reply()
            await reply.send("Hello. ")
            with pytest.raises(ServiceError, match="429 concurrency_limited") as caught:
                await first_audio(reply)
            assert caught.value.retryable
            assert reply.state is ReplyState.FAILED
            with pytest.raises(ServiceError):
                await reply.send("more")  # the failure again, to the sender

            audio = await speak(session.new_reply(), PIECES)
            assert len(audio) == tts.audio_bytes(PIECES)
            assert len(tts.connections) == 1

    run(main)


def test_the_older_error_shape_for_an_older_version() -> None:
    async def main() -> None:
        bad = FakeError(400, "invalid_voice", "Invalid voice", "No such voice.")
        async with (
            FakeCartesia(error_on_context=1, error=bad) as tts,
            CartesiaSession(config(tts, cartesia_version="2025-04-16")) as session,
        ):
            reply = session.new_reply()
            await reply.send("Hello. ")
            with pytest.raises(ServiceError, match="Cartesia error 400") as caught:
                await first_audio(reply)
            assert not caught.value.retryable
            assert "voice" not in str(caught.value)  # Cartesia's own text is never in the error

    run(main)


def test_a_dropped_socket_fails_the_live_reply_and_the_next_reply_reconnects() -> None:
    async def main() -> None:
        async with session_with(drop_after_messages=3) as (tts, session):
            reply = session.new_reply()
            await reply.send(LONG)
            with pytest.raises(ServiceError, match="lost") as caught:
                await speak(reply, [])
            assert caught.value.retryable
            assert tts.connections[0].dropped
            assert reply.audio_bytes > 0  # what arrived before the drop was delivered
            assert not session.connected

            audio = await speak(session.new_reply(), PIECES)
            assert len(audio) == tts.audio_bytes(PIECES)
            assert len(tts.connections) == 2
            assert session.stats.connects == 2

    run(main)


def test_an_idle_close_by_the_server_reconnects_lazily() -> None:
    async def main() -> None:
        async with session_with() as (tts, session):
            await speak(session.new_reply(), ["One. "])
            # Cartesia closes an idle socket after ~5 minutes (§2.1); here the server just closes it.
            server_side = tts.connections[0]
            await tts.close_connections()
            await server_side.closed.wait()
            await eventually(lambda: not session.connected)
            audio = await speak(session.new_reply(), ["Two. "])
            assert len(audio) == tts.audio_bytes(["Two. "])
            assert len(tts.connections) == 2

    run(main)


def test_a_wrong_key_is_a_non_retryable_service_error() -> None:
    async def main() -> None:
        async with FakeCartesia(api_key="sk_car_right") as tts:
            session = CartesiaSession(config(tts, api_key="sk_car_wrong"))
            with pytest.raises(ServiceError, match="401") as caught:
                await session.connect()
            assert not caught.value.retryable
            # Lazily, through a reply: the sender and the listener both learn.
            reply = session.new_reply()
            with pytest.raises(ServiceError, match="401"):
                await reply.send("Hello. ")
            with pytest.raises(ServiceError, match="401"):
                await first_audio(reply)
            await session.aclose()
            assert [c.status for c in tts.rejected] == [401, 401]
            assert "sk_car_wrong" not in str(caught.value)

    run(main)


def test_nobody_listening_is_a_retryable_service_error() -> None:
    async def main() -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        url = f"ws://127.0.0.1:{port}/tts/websocket"
        session = CartesiaSession(CartesiaTTS(api_key=API_KEY, voice_id=VOICE, base_url=url))
        with pytest.raises(ServiceError, match="cannot connect") as caught:
            await session.connect()
        assert caught.value.retryable
        await session.aclose()

    run(main)


def test_silence_after_end_times_out() -> None:
    async def main() -> None:
        async with (
            FakeCartesia(first_audio_delay=5.0) as tts,
            CartesiaSession(config(tts), response_timeout=0.05) as session,
        ):
            reply = session.new_reply()
            await reply.send("Hello. ")
            await reply.end()
            with pytest.raises(ServiceError, match="sent nothing") as caught:
                await first_audio(reply)
            assert caught.value.retryable
            # ... and Cartesia was told to stop.
            await eventually(lambda: tts.connections[0].contexts[reply.context_id].cancelled)

    run(main)


def test_closing_the_session_fails_a_live_reply() -> None:
    async def main() -> None:
        async with session_with(chunk_delay=0.01) as (_, session):
            reply = session.new_reply()
            await reply.send(LONG)
            await session.aclose()
            with pytest.raises(ServiceError, match="closed") as caught:
                await speak(reply, [])
            assert not caught.value.retryable

    run(main)


def test_unknown_types_are_ignored_and_garbage_closes_the_socket() -> None:
    async def cartesia(ws: ServerConnection) -> None:
        request = json.loads(await ws.recv())
        context_id = request["context_id"]
        await ws.send(json.dumps({"type": "phoneme_timestamps", "context_id": context_id}))
        await ws.send(json.dumps({"type": "chunk", "data": "AAAA", "context_id": "somebody-else"}))
        await ws.send(json.dumps({"type": "chunk", "data": "f39/", "context_id": context_id}))
        await ws.send("<html>502 Bad Gateway</html>")
        await ws.wait_closed()

    async def main() -> None:
        async with serve(cartesia, "127.0.0.1", 0) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            url = f"ws://127.0.0.1:{port}/tts/websocket"
            async with CartesiaSession(CartesiaTTS(api_key=API_KEY, voice_id=VOICE, base_url=url)) as session:
                reply = session.new_reply()
                await reply.send("Hello. ")
                audio = reply.audio()
                assert await anext(audio) == b"\x7f\x7f\x7f"  # the chunk of our context, only
                with pytest.raises(ServiceError, match="cannot parse") as caught:
                    await anext(audio)
                assert caught.value.retryable
                assert (session.stats.ignored, session.stats.dropped, session.stats.messages) == (1, 1, 4)
                assert not session.connected

    run(main)


def test_a_session_needs_a_key_and_a_voice() -> None:
    with pytest.raises(ConfigurationError, match="api_key"):
        CartesiaSession(CartesiaTTS(api_key="", voice_id=VOICE))
    with pytest.raises(ConfigurationError, match="voice_id"):
        CartesiaSession(CartesiaTTS(api_key=API_KEY))


# --- isolation ------------------------------------------------------------------------------------------


def test_two_calls_use_two_sockets_and_never_see_each_other() -> None:
    async def main() -> None:
        async with FakeCartesia(chunk_delay=0.001) as tts:
            texts = [["Your order shipped. "], ["Your appointment is on Tuesday at three. "]]

            async def call(pieces: list[str]) -> tuple[str, bytes]:
                async with CartesiaSession(config(tts)) as session:
                    reply = session.new_reply()
                    return reply.context_id, await speak(reply, pieces)

            results = await asyncio.gather(*(call(t) for t in texts))
            assert len(tts.connections) == 2
            for connection in tts.connections:
                assert len(connection.contexts) == 1
            by_context = tts.contexts()
            for (context_id, audio), pieces in zip(results, texts, strict=True):
                assert len(audio) == tts.audio_bytes(pieces)
                assert by_context[context_id].transcript == "".join(pieces)

    run(main)
