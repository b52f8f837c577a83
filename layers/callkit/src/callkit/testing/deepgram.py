"""A Deepgram live-transcription server on loopback (docs/protocols/ai-providers.md §1), for tests, benchmarks and the demo.

``FakeDeepgram`` accepts ``/v1/listen`` with ``Authorization: Token <key>``, hears speech in the
audio it receives by energy (20-ms frames; about 300 ms of silence ends a segment) and says the
next line of its script for each segment, the way Deepgram would::

    async with FakeDeepgram(["I need to move my appointment.", "Tomorrow at nine."]) as dg:
        stt = DeepgramSTT(api_key=TEST_DEEPGRAM_API_KEY, base_url=dg.base_url)
        ...
    dg.connections[0].query["encoding"]   # ["mulaw"]; also headers, audio, received_text, sent

Per segment: ``SpeechStarted`` at onset (``vad_events``), interim ``Results`` with growing word
prefixes while speech goes on (``interim_results``), a final ``Results`` (``is_final``, and
``speech_final`` unless ``endpointing=false``) once the silence reaches ``endpointing`` ms, and
``UtteranceEnd`` ``utterance_end_ms`` after the last word. All times are audio time counted from
the bytes received (8 bytes = 1 ms of 8-kHz μ-law), so tests may send audio faster than real time.

``KeepAlive`` gets no reply; ``Finalize`` flushes a final with ``from_finalize``; ``CloseStream``
flushes, sends ``Metadata`` and closes 1000; no audio and no text for ``idle_timeout`` s closes
1011 ``NET-0001``. Faults: ``drop_after_seconds`` (abruptly, or with ``drop_close``) on the first
``drop_count`` connections, ``reject_auth`` (HTTP 401 on the upgrade, may be set at any time),
``handshake_delay``.

``GET /v1/projects`` (plain HTTP on the same port, what ``callkit doctor --online`` asks) answers
one project with the same key check (and ``reject_auth``, ``handshake_delay``).

Speech detection is a few lines of pure Python (a μ-law magnitude table), not ``callkit.audio``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, Final
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from callkit.errors import ProtocolError
from callkit.stt.deepgram_protocol import (
    CloseStream,
    DeepgramError,
    DeepgramEvent,
    Finalize,
    KeepAlive,
    Metadata,
    SpeechStarted,
    Transcript,
    UtteranceEnd,
    Word,
    encode_event,
    parse_client_message,
)
from callkit.testing._plain_http import json_response

if TYPE_CHECKING:
    from types import TracebackType

    from websockets.asyncio.server import Server
    from websockets.http11 import Request, Response

__all__ = [
    "TEST_DEEPGRAM_API_KEY",
    "FakeConnection",
    "FakeDeepgram",
    "RefusedHandshake",
    "Script",
    "Segment",
]

TEST_DEEPGRAM_API_KEY: Final = "dg-test-0123456789abcdef0123456789abcdef"
FRAME_MS: Final = 20
#: Mean magnitude (16-bit scale) above which a frame is speech: about -44 dBFS.
SPEECH_THRESHOLD: Final = 200.0
#: Silence that ends a segment when the query says ``endpointing=false``.
SEGMENT_SILENCE_MS: Final = 300


def _mulaw_magnitude(byte: int) -> int:
    """|sample| of one G.711 μ-law byte (0xFF and 0x7F are zero)."""
    byte = ~byte & 0xFF
    exponent = (byte >> 4) & 0x07
    return ((((byte & 0x0F) << 3) + 0x84) << exponent) - 0x84


_MULAW_MAGNITUDE: Final = [_mulaw_magnitude(b) for b in range(256)]


def _mulaw_level(frame: bytes) -> float:
    return sum(map(_MULAW_MAGNITUDE.__getitem__, frame)) / len(frame)


def _linear16_level(frame: bytes) -> float:
    samples = array("h", frame)  # little-endian hosts, as Deepgram's linear16 is
    return sum(map(abs, samples)) / len(samples)


_ENCODINGS: Final = {"mulaw": (1, _mulaw_level), "linear16": (2, _linear16_level)}


@dataclass(frozen=True, slots=True)
class Segment:
    """A speech segment the fake heard: which connection, its number there and on the server."""

    connection: int
    index: int
    number: int
    onset: float


Script = Sequence[str] | Callable[[Segment], str]
"""Lines said in order across all connections (``""`` once exhausted), or a function of the segment."""


@dataclass(slots=True)
class FakeConnection:
    """Everything one accepted socket did, for assertions."""

    index: int
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    request_id: str
    audio: bytearray = field(default_factory=bytearray)
    audio_frames: int = 0
    empty_frames: int = 0
    received_text: list[str] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)
    sent_at: list[float] = field(default_factory=list)  # perf_counter() of each sent message
    keepalives: int = 0
    finalizes: int = 0
    close_streams: int = 0
    segments: int = 0
    close_code: int | None = None  # what the fake closed with; None if the client closed first
    close_reason: str = ""
    dropped: bool = False
    last_activity: float = 0.0
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    closer: asyncio.Task[object] | None = field(default=None, repr=False)  # the task closing the socket

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


@dataclass(frozen=True, slots=True)
class RefusedHandshake:
    path: str
    headers: dict[str, str]
    status: int


class _Listener:
    """The fake's ears, sans-I/O: audio and control messages in, Deepgram events out."""

    def __init__(
        self,
        *,
        encoding: str,
        sample_rate: int,
        endpointing_ms: int | None,
        utterance_end_ms: int | None,
        interim_results: bool,
        vad_events: bool,
        threshold: float,
        interim_every_ms: int,
        next_line: Callable[[float], str],
    ) -> None:
        bytes_per_sample, self._level = _ENCODINGS[encoding]
        self._frame_bytes = sample_rate * FRAME_MS // 1000 * bytes_per_sample
        self._endpointing_ms = endpointing_ms
        self._end_silence_ms = endpointing_ms or SEGMENT_SILENCE_MS
        self._utterance_end_ms = utterance_end_ms
        self._interim_results = interim_results
        self._vad_events = vad_events
        self._threshold = threshold
        self._interim_every_ms = interim_every_ms
        self._next_line = next_line
        self._pending = bytearray()
        self.audio_ms = 0
        self._speaking = False
        self._words: list[str] = []
        self._onset_ms = 0
        self._speech_end_ms = 0
        self._silence_ms = 0
        self._interims = 0
        self._next_interim_ms = 0
        self._last_word_end_ms: int | None = None

    def feed(self, audio: bytes) -> list[DeepgramEvent]:
        self._pending += audio
        events: list[DeepgramEvent] = []
        size = self._frame_bytes
        start = 0
        while len(self._pending) - start >= size:
            self._frame(bytes(self._pending[start : start + size]), events)
            start += size
        del self._pending[:start]
        return events

    def finalize(self) -> list[DeepgramEvent]:
        if self._speaking:
            return [self._final(speech_final=False, from_finalize=True)]
        return [Transcript("", True, False, True, self.audio_ms / 1000, 0.0)]

    def close_stream(self) -> list[DeepgramEvent]:
        return [self._final(speech_final=False, from_finalize=False)] if self._speaking else []

    def _frame(self, frame: bytes, events: list[DeepgramEvent]) -> None:
        frame_start = self.audio_ms
        self.audio_ms += FRAME_MS
        if self._level(frame) >= self._threshold:
            if not self._speaking:
                self._speaking = True
                self._onset_ms = frame_start
                self._words = self._next_line(frame_start / 1000).split()
                self._interims = 0
                self._next_interim_ms = frame_start + self._interim_every_ms
                self._last_word_end_ms = None  # the pending UtteranceEnd waits for this segment
                if self._vad_events:
                    events.append(SpeechStarted(frame_start / 1000))
            self._speech_end_ms = self.audio_ms
            self._silence_ms = 0
            if self._interim_results and self._words and self.audio_ms >= self._next_interim_ms:
                self._interims += 1
                self._next_interim_ms += self._interim_every_ms
                events.append(self._transcript(self._words[: self._interims], self.audio_ms, is_final=False))
            return
        if self._speaking:
            self._silence_ms += FRAME_MS
            if self._silence_ms >= self._end_silence_ms:
                events.append(self._final(speech_final=self._endpointing_ms is not None, from_finalize=False))
        elif (
            self._last_word_end_ms is not None
            and self._utterance_end_ms is not None
            and self.audio_ms - self._last_word_end_ms >= self._utterance_end_ms
        ):
            events.append(UtteranceEnd(self._last_word_end_ms / 1000))
            self._last_word_end_ms = None

    def _final(self, *, speech_final: bool, from_finalize: bool) -> Transcript:
        self._speaking = False
        end_ms = self._speech_end_ms
        if self._words:
            self._last_word_end_ms = end_ms
        return self._transcript(
            self._words, end_ms, is_final=True, speech_final=speech_final, from_finalize=from_finalize
        )

    def _transcript(
        self,
        words: list[str],
        end_ms: int,
        *,
        is_final: bool,
        speech_final: bool = False,
        from_finalize: bool = False,
    ) -> Transcript:
        start = self._onset_ms / 1000
        span = (end_ms - self._onset_ms) / 1000
        step = span / max(len(self._words), 1)
        timed = tuple(
            Word(
                w.strip(".,?!").lower(), round(start + i * step, 3), round(start + (i + 1) * step, 3), 0.99, w
            )
            for i, w in enumerate(words)
        )
        return Transcript(
            " ".join(words),
            is_final,
            speech_final,
            from_finalize,
            start,
            round(span, 3),
            timed,
            0.99 if words else 0.0,
        )


class FakeDeepgram:
    """A scripted Deepgram ``/v1/listen`` on ``127.0.0.1`` (an ephemeral port)."""

    def __init__(
        self,
        script: Script = (),
        *,
        api_key: str = TEST_DEEPGRAM_API_KEY,
        idle_timeout: float = 10.0,
        drop_after_seconds: float | None = None,
        drop_count: int = 1,
        drop_close: tuple[int, str] | None = None,
        reject_auth: bool = False,
        handshake_delay: float = 0.0,
        speech_threshold: float = SPEECH_THRESHOLD,
        interim_every_ms: int = 200,
    ) -> None:
        self.script = script
        self.api_key = api_key
        self.idle_timeout = idle_timeout
        self.drop_after_seconds = drop_after_seconds
        self.drop_close = drop_close
        self.reject_auth = reject_auth
        self.handshake_delay = handshake_delay
        self.speech_threshold = speech_threshold
        self.interim_every_ms = interim_every_ms
        self.connections: list[FakeConnection] = []
        self.refused: list[RefusedHandshake] = []
        self.dropped = asyncio.Event()
        self._drops_left = drop_count if drop_after_seconds is not None else 0
        self._segments = 0
        self._request_ids: dict[uuid.UUID, str] = {}
        self._server: Server | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/listen"

    async def __aenter__(self) -> FakeDeepgram:
        self._server = await serve(
            self._handle,
            "127.0.0.1",
            0,
            process_request=self._process_request,
            process_response=self._process_response,
            compression=None,
        )
        self.port = next(iter(self._server.sockets)).getsockname()[1]
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    # --- handshake ------------------------------------------------------------------------------

    async def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if self.handshake_delay:
            await asyncio.sleep(self.handshake_delay)
        headers = {name.lower(): value for name, value in request.headers.raw_items()}
        url = urlsplit(request.path)
        authorized = not self.reject_auth and headers.get("authorization") == f"Token {self.api_key}"
        if url.path == "/v1/projects" and "upgrade" not in headers:
            if not authorized:
                payload = {"err_code": "INVALID_AUTH", "err_msg": "Invalid credentials."}
                return json_response(connection, HTTPStatus.UNAUTHORIZED, payload)
            project = {"project_id": "00000000-0000-4000-8000-000000000000", "name": "callkit fake"}
            return json_response(connection, HTTPStatus.OK, {"projects": [project]})
        query = parse_qs(url.query)
        status, error = HTTPStatus.SWITCHING_PROTOCOLS, ""
        if url.path != "/v1/listen":
            status, error = HTTPStatus.NOT_FOUND, "Not found."
        elif not authorized:
            status, error = HTTPStatus.UNAUTHORIZED, "Invalid credentials."
        elif (
            query.get("encoding", [""])[0] not in _ENCODINGS
            or not query.get("sample_rate", [""])[0].isdigit()
        ):
            status, error = (
                HTTPStatus.BAD_REQUEST,
                "The fake understands encoding=mulaw|linear16 with a sample_rate.",
            )
        if status == HTTPStatus.SWITCHING_PROTOCOLS:
            return None
        self.refused.append(RefusedHandshake(request.path, headers, status))
        response = connection.respond(status, f"{error}\n")
        response.headers["dg-error"] = error
        response.headers["dg-request-id"] = str(uuid.uuid4())
        return response

    def _process_response(self, connection: ServerConnection, request: Request, response: Response) -> None:
        if response.status_code == HTTPStatus.SWITCHING_PROTOCOLS:
            request_id = str(uuid.uuid4())
            self._request_ids[connection.id] = request_id
            response.headers["dg-request-id"] = request_id

    # --- one socket -----------------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        request = ws.request
        assert request is not None
        query = parse_qs(urlsplit(request.path).query)
        loop = asyncio.get_running_loop()
        conn = FakeConnection(
            index=len(self.connections),
            path=request.path,
            query=query,
            headers={name.lower(): value for name, value in request.headers.raw_items()},
            request_id=self._request_ids.pop(ws.id, ""),
            last_activity=loop.time(),
        )
        self.connections.append(conn)
        endpointing = conn.param("endpointing") or "10"
        utterance_end = conn.param("utterance_end_ms")
        listener = _Listener(
            encoding=conn.param("encoding") or "mulaw",
            sample_rate=int(conn.param("sample_rate") or 8000),
            endpointing_ms=None if endpointing == "false" else int(endpointing),
            utterance_end_ms=int(utterance_end) if utterance_end else None,
            interim_results=conn.param("interim_results") == "true",
            vad_events=conn.param("vad_events") == "true",
            threshold=self.speech_threshold,
            interim_every_ms=self.interim_every_ms,
            next_line=lambda onset: self._line(conn, onset),
        )
        tasks = [asyncio.create_task(self._watch_idle(ws, conn))]
        if self._drops_left > 0 and self.drop_after_seconds is not None:
            self._drops_left -= 1
            tasks.append(asyncio.create_task(self._drop_later(ws, conn, self.drop_after_seconds)))
        try:
            await self._serve(ws, conn, listener)
        except ConnectionClosed:
            pass
        finally:
            for task in tasks:
                if task is not conn.closer:
                    task.cancel()
            await asyncio.wait(tasks)
            conn.ended.set()

    async def _serve(self, ws: ServerConnection, conn: FakeConnection, listener: _Listener) -> None:
        loop = asyncio.get_running_loop()
        async for message in ws:
            conn.last_activity = loop.time()
            if isinstance(message, bytes):
                if not message:
                    # An empty binary frame is the old end-of-stream signal (§1.3): treat as CloseStream.
                    conn.empty_frames += 1
                    await self._close_stream(ws, conn, listener)
                    return
                conn.audio += message
                conn.audio_frames += 1
                await self._send(ws, conn, listener.feed(message))
                continue
            conn.received_text.append(message)
            try:
                command = parse_client_message(message)
            except ProtocolError as exc:
                await self._send(ws, conn, [DeepgramError(str(exc), "SchemaError")])
                continue
            match command:
                case KeepAlive():
                    conn.keepalives += 1
                case Finalize():
                    conn.finalizes += 1
                    await self._send(ws, conn, listener.finalize())
                case CloseStream():
                    conn.close_streams += 1
                    await self._close_stream(ws, conn, listener)
                    return

    async def _close_stream(self, ws: ServerConnection, conn: FakeConnection, listener: _Listener) -> None:
        events = [*listener.close_stream(), Metadata(conn.request_id, listener.audio_ms / 1000, 1)]
        await self._send(ws, conn, events)
        await self._close(ws, conn, 1000, "")

    async def _send(self, ws: ServerConnection, conn: FakeConnection, events: list[DeepgramEvent]) -> None:
        for event in events:
            text = encode_event(event, request_id=conn.request_id)
            conn.sent.append(text)
            conn.sent_at.append(time.perf_counter())
            await ws.send(text)

    async def _close(self, ws: ServerConnection, conn: FakeConnection, code: int, reason: str) -> None:
        conn.closer = asyncio.current_task()
        conn.close_code, conn.close_reason = code, reason
        await ws.close(code, reason)

    async def _watch_idle(self, ws: ServerConnection, conn: FakeConnection) -> None:
        loop = asyncio.get_running_loop()
        while True:
            remaining = conn.last_activity + self.idle_timeout - loop.time()
            if remaining <= 0:
                break
            await asyncio.sleep(remaining)
        # §1.6: no audio and no text for the timeout.
        await self._close(ws, conn, 1011, "NET-0001")

    async def _drop_later(self, ws: ServerConnection, conn: FakeConnection, delay: float) -> None:
        await asyncio.sleep(delay)
        conn.dropped = True
        self.dropped.set()
        if self.drop_close is None:
            ws.transport.abort()  # no close frame: the client sees 1006
        else:
            await self._close(ws, conn, *self.drop_close)

    def _line(self, conn: FakeConnection, onset: float) -> str:
        segment = Segment(conn.index, conn.segments, self._segments, onset)
        conn.segments += 1
        self._segments += 1
        if callable(self.script):
            return self.script(segment)
        return self.script[segment.number] if segment.number < len(self.script) else ""
