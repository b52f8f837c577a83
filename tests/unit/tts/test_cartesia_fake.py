"""``FakeCartesia`` itself, driven by a bare WebSocket client: handshake variants, checks, audio, faults."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from callkit.testing.cartesia import FakeCartesia, tone
from callkit.tts.cartesia import CartesiaTTS
from callkit.tts.cartesia_protocol import cancel_request, generation_request

KEY = "sk_car_test"
CONFIG = CartesiaTTS(api_key=KEY, voice_id="a0e99841-438c-4a64-b679-ae501e7d6091")
VERSION = {"Cartesia-Version": "2026-03-01"}


def run[T](main: Callable[[], Awaitable[T]]) -> T:
    async def wrapper() -> T:
        return await main()

    return asyncio.run(wrapper())


def piece(context_id: str, text: str, *, more: bool = True, **kwargs: Any) -> str:
    return generation_request(CONFIG, context_id, text, continue_=more, **kwargs)


async def until_done(ws: ClientConnection, context_id: str = "c") -> list[dict[str, Any]]:
    """Messages up to and including ``done`` or ``error`` of ``context_id``."""
    messages: list[dict[str, Any]] = []
    async for frame in ws:
        message = json.loads(frame)
        messages.append(message)
        if message.get("context_id") == context_id and message["type"] in ("done", "error"):
            return messages
    raise AssertionError("closed before done")


def audio_of(messages: list[dict[str, Any]]) -> bytes:
    return b"".join(base64.b64decode(m["data"]) for m in messages if m["type"] == "chunk")


@pytest.mark.parametrize(
    ("headers", "query", "auth"),
    [
        ({"Authorization": f"Bearer {KEY}", **VERSION}, "", "bearer"),
        ({"X-API-Key": KEY, **VERSION}, "", "x-api-key"),
        ({}, f"?api_key={KEY}&cartesia_version=2026-03-01", "query"),
    ],
)
def test_every_auth_variant_is_accepted(headers: dict[str, str], query: str, auth: str) -> None:
    async def main() -> None:
        async with FakeCartesia(api_key=KEY) as tts:
            async with connect(tts.base_url + query, additional_headers=headers) as ws:
                await ws.send(piece("c", "Hi. ", more=False))
                assert len(audio_of(await until_done(ws))) == tts.audio_bytes(["Hi. "])
            [connection] = tts.connections
            assert connection.auth == auth
            assert connection.api_key == KEY
            assert connection.version == "2026-03-01"

    run(main)


def test_the_version_query_wins_over_the_header() -> None:
    async def main() -> None:
        async with FakeCartesia() as tts:
            headers = {"Authorization": f"Bearer {KEY}", "Cartesia-Version": "2026-03-01"}
            async with connect(tts.base_url + "?cartesia_version=2025-04-16", additional_headers=headers):
                pass
            assert tts.connections[0].version == "2025-04-16"

    run(main)


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("", VERSION, 401),  # no key
        ("", {"Authorization": "Bearer sk_car_other", **VERSION}, 401),
        ("", {"Authorization": f"Bearer {KEY}"}, 400),  # no version
        ("/../other", {"Authorization": f"Bearer {KEY}", **VERSION}, 404),
    ],
)
def test_refused_handshakes(path: str, headers: dict[str, str], status: int) -> None:
    async def main() -> None:
        async with FakeCartesia(api_key=KEY) as tts:
            url = tts.base_url.replace("/tts/websocket", "/tts/websocket" + path)
            with pytest.raises(InvalidStatus) as caught:
                await connect(url, additional_headers=headers)
            assert caught.value.response.status_code == status
            assert tts.connections == []
            assert [r.status for r in tts.rejected] == [status]

    run(main)


def test_audio_for_each_piece_as_it_arrives_then_done() -> None:
    async def main() -> None:
        async with (
            FakeCartesia() as tts,
            connect(tts.base_url, additional_headers={"X-API-Key": KEY, **VERSION}) as ws,
        ):
            await ws.send(piece("c", "Sure, "))
            first = json.loads(await ws.recv())  # before the context is closed
            assert first["type"] == "chunk"
            assert len(base64.b64decode(first["data"])) == 40 * 8  # 40 ms of μ-law
            await ws.send(piece("c", "", more=False))
            messages = [first, *await until_done(ws)]
            assert messages[-1] == {"type": "done", "done": True, "status_code": 206, "context_id": "c"}
            audio = audio_of(messages)
            assert audio == tone(tts.piece_ms("Sure, ") * 8)
            assert len(audio) >= 100 * 8  # the minimum for a short piece

    run(main)


def test_the_tone_is_quiet_speech_not_silence() -> None:
    audio = tone(8000)
    # μ-law: 0xFF/0x7F are zero; the loudest codes are near 0x00/0x80. A quiet tone sits in between.
    magnitudes = [0x7F - (b & 0x7F) for b in audio]
    assert max(magnitudes) > 0x40  # loud enough for a VAD
    assert max(magnitudes) < 0x70  # and far from clipping
    assert tone(100, start=7990) == audio[7990:] + audio[:90]  # loops without a seam


def test_a_changed_field_within_a_context_is_an_error() -> None:
    async def main() -> None:
        async with (
            FakeCartesia() as tts,
            connect(tts.base_url, additional_headers={"X-API-Key": KEY, **VERSION}) as ws,
        ):
            await ws.send(piece("c", "Hello. "))
            await ws.send(piece("c", "Again. ", sample_rate=16000))
            error = (await until_done(ws))[-1]
            assert error["type"] == "error"
            assert error["status_code"] == 400
            assert "output_format" in error["message"]
            assert tts.connections[0].contexts["c"].error_sent is not None

    run(main)


def test_input_after_the_end_of_a_context_is_an_error() -> None:
    async def main() -> None:
        async with (
            FakeCartesia() as tts,
            connect(tts.base_url, additional_headers={"X-API-Key": KEY, **VERSION}) as ws,
        ):
            await ws.send(piece("c", "Hello. ", more=False))
            await until_done(ws)
            await ws.send(piece("c", "More. "))
            error = json.loads(await ws.recv())
            assert (error["type"], error["status_code"], error["context_id"]) == ("error", 400, "c")

    run(main)


def test_cancel_stops_the_context_without_done() -> None:
    async def main() -> None:
        async with (
            FakeCartesia(chunk_delay=0.01) as tts,
            connect(tts.base_url, additional_headers={"X-API-Key": KEY, **VERSION}) as ws,
        ):
            await ws.send(piece("c", "A long answer that takes a while to say. " * 4, more=False))
            await ws.recv()
            await ws.send(cancel_request("c"))
            await ws.send(piece("d", "Next. ", more=False))
            messages = await until_done(ws, "d")
            context = tts.connections[0].contexts["c"]
            assert context.cancelled
            assert not context.done_sent
            assert not any(m["type"] == "done" and m["context_id"] == "c" for m in messages)

    run(main)


def test_legacy_error_shape_for_old_versions() -> None:
    async def main() -> None:
        async with FakeCartesia(error_on_context=1) as tts:
            headers = {"X-API-Key": KEY, "Cartesia-Version": "2025-04-16"}
            async with connect(tts.base_url, additional_headers=headers) as ws:
                await ws.send(piece("c", "Hello. "))
                error = json.loads(await ws.recv())
                assert error == {
                    "type": "error",
                    "done": True,
                    "status_code": 429,
                    "error": "Too many concurrent requests: You have exceeded your plan's concurrency limit.",
                    "context_id": "c",
                }

    run(main)


def test_drop_after_messages_aborts_once() -> None:
    async def main() -> None:
        async with FakeCartesia(drop_after_messages=2) as tts:
            headers = {"X-API-Key": KEY, **VERSION}
            async with connect(tts.base_url, additional_headers=headers) as ws:
                await ws.send(piece("c", "A long enough answer. ", more=False))
                with pytest.raises(ConnectionClosed) as caught:
                    await until_done(ws)
                assert caught.value.rcvd is None  # no close frame
            async with connect(tts.base_url, additional_headers=headers) as ws:
                await ws.send(piece("c", "Again. ", more=False))
                assert (await until_done(ws))[-1]["type"] == "done"
            assert [c.dropped for c in tts.connections] == [True, False]
            assert tts.connections[0].messages_sent == 2

    run(main)


def test_garbage_gets_an_error_without_context() -> None:
    async def main() -> None:
        async with (
            FakeCartesia() as tts,
            connect(tts.base_url, additional_headers={"X-API-Key": KEY, **VERSION}) as ws,
        ):
            for frame in ("not json", "[1]", '{"transcript": "no context"}'):
                await ws.send(frame)
                error = json.loads(await ws.recv())
                assert (error["type"], error["status_code"]) == ("error", 400)
                assert "context_id" not in error

    run(main)
