"""A fake Cartesia TTS WebSocket server on loopback, for tests, benchmarks and the demo.

``FakeCartesia`` speaks docs/protocols/ai-providers.md §2 on ``ws://127.0.0.1:<port>/tts/websocket``::

    async with FakeCartesia() as tts:
        config = CartesiaTTS(api_key="sk_car_test", voice_id=VOICE, base_url=tts.base_url)
        ...
    tts.connections[0].contexts[context_id].transcript   # what the client sent, per context

Handshake: the key as ``Authorization: Bearer``, ``X-API-Key`` or ``?api_key=`` (§2.1: clients use
all three), the version as ``Cartesia-Version`` or ``?cartesia_version=`` (the query wins). No key,
or not ``api_key`` when one is set: HTTP 401. No version: HTTP 400.

``GET /voices/{id}`` (plain HTTP on the same port, what ``callkit doctor --online`` asks) checks
the key and version the same way and answers the voice, or 404 for an id not in ``voices`` (when
``voices`` is given; otherwise every id is a voice).

Per context it checks that every input repeats every field but ``transcript`` and ``continue``
(§2.2), and voices each piece as it arrives: ``ms_per_char`` per character (at least
``min_piece_ms``, none for a blank piece; divided by ``generation_config.speed``) of a quiet
wobbling 220 Hz tone that a speech detector takes for a voice, in ``chunk`` messages of
``chunk_ms``. Chunks go out as fast as the socket takes them, like Cartesia (faster than real
time), or ``chunk_delay`` apart, the first after ``first_audio_delay``. ``done`` follows the last
audio once ``continue: false`` arrived.

``cancel`` stops the context at once: no more chunks and **no** ``done`` (§2.2 says cancel stops
generation; §2.3 sends ``done`` when a context *finished*; a client must not wait for one).
``late_chunks_after_cancel`` sends that many chunks after the cancel anyway, as frames already in
flight on a real socket would arrive (§2.3: "a reused socket can still deliver late frames").

Faults: ``error_on_context=n`` answers the n-th context the server sees (counted over all
connections, from 1) with ``error`` (``error``, by default 429 ``concurrency_limited``) in the
shape of the version the client asked for (2026-03-01 and later: ``error_code``/``title``/
``message``; before: ``"error": "Title: message"``). ``errors_from_context=n`` answers the n-th
context and every later one so (a service that stays down); ``stall_from_context=n`` makes the
n-th context and every later one fall silent after its first chunk (no more audio, no ``done``). ``drop_after_messages=n`` aborts the first
connection that has sent n messages, without a close frame, as a network failure does.
"""

from __future__ import annotations

import array
import asyncio
import base64
import functools
import json
import math
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, Literal
from urllib.parse import parse_qsl, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from callkit.testing._plain_http import json_response

__all__ = [
    "CONCURRENCY_LIMITED",
    "FakeCartesia",
    "FakeError",
    "RecordedConnection",
    "RecordedContext",
    "tone",
]

PATH: Final = "/tts/websocket"
VOICES_PATH: Final = "/voices/"
#: The first version whose errors carry ``error_code``/``title``/``message`` (§2.3).
STRUCTURED_ERRORS_SINCE: Final = "2026-03-01"
TONE_HZ: Final = 220
TONE_LEVEL: Final = 0.1  # -20 dBFS: quiet, but well above any VAD's speech threshold
_SAMPLE_WIDTH: Final = {"pcm_mulaw": 1, "pcm_s16le": 2, "pcm_f32le": 4}
_SAMPLE_RATES: Final = frozenset({8000, 16000, 22050, 24000, 44100, 48000})
_REPEATED_EXCEPT: Final = frozenset({"transcript", "continue"})
_REQUIRED: Final = ("model_id", "transcript", "voice", "context_id", "output_format")

AuthVariant = Literal["bearer", "x-api-key", "query"]


@dataclass(frozen=True, slots=True)
class FakeError:
    """An ``error`` message the fake sends for a context."""

    status_code: int
    code: str
    title: str
    message: str


CONCURRENCY_LIMITED: Final = FakeError(
    429,
    "concurrency_limited",
    "Too many concurrent requests",
    "You have exceeded your plan's concurrency limit.",
)


@dataclass
class RecordedContext:
    """One context as the server saw it."""

    context_id: str
    pieces: list[str] = field(default_factory=list)
    ended: bool = False  # continue: false arrived
    cancelled: bool = False
    done_sent: bool = False
    error_sent: FakeError | None = None
    chunks_sent: int = 0
    audio_bytes_sent: int = 0
    #: ``time.perf_counter()`` when the first request of the context arrived (benchmarks).
    first_request_at: float | None = None

    @property
    def transcript(self) -> str:
        """The pieces joined verbatim, as Cartesia joins them."""
        return "".join(self.pieces)


@dataclass
class RecordedConnection:
    """One WebSocket the server accepted (or refused: ``status`` is then not 101)."""

    path: str
    headers: dict[str, str]  # lower-case names
    query: dict[str, str]
    status: int = 101
    auth: AuthVariant | None = None
    api_key: str | None = None
    version: str | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    contexts: dict[str, RecordedContext] = field(default_factory=dict)
    messages_sent: int = 0
    dropped: bool = False
    closed: asyncio.Event = field(default_factory=asyncio.Event)


def _mulaw(sample: int) -> int:
    """G.711 μ-law code of one 16-bit sample (callkit.audio has the fast one; this is test audio)."""
    sign = 0x80 if sample < 0 else 0
    magnitude = min(abs(sample), 32635) + 0x84
    exponent = max(0, min(7, magnitude.bit_length() - 8))
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


@functools.cache
def _tone_second(encoding: str, sample_rate: int) -> bytes:
    """One second of the tone: a whole number of cycles, so it loops without a click."""
    samples = [
        TONE_LEVEL
        * (0.6 + 0.4 * math.sin(2 * math.pi * 3 * n / sample_rate))
        * math.sin(2 * math.pi * TONE_HZ * n / sample_rate)
        for n in range(sample_rate)
    ]
    if encoding == "pcm_f32le":
        return array.array("f", samples).tobytes()  # little-endian on every platform we run on
    pcm = [round(32767 * x) for x in samples]
    if encoding == "pcm_s16le":
        return array.array("h", pcm).tobytes()
    return bytes(_mulaw(x) for x in pcm)


def tone(samples: int, *, start: int = 0, encoding: str = "pcm_mulaw", sample_rate: int = 8000) -> bytes:
    """``samples`` samples of the fake's voice, from sample ``start`` of a context's audio."""
    second = _tone_second(encoding, sample_rate)
    width = _SAMPLE_WIDTH[encoding]
    offset = (start % sample_rate) * width
    need = samples * width
    out = bytearray()
    while len(out) < need:
        piece = second[offset : offset + need - len(out)]
        out += piece
        offset = 0
    return bytes(out)


class FakeCartesia:
    """A loopback Cartesia TTS server; see the module docstring."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        ms_per_char: int = 65,
        min_piece_ms: int = 100,
        chunk_ms: int = 40,
        chunk_delay: float = 0.0,
        first_audio_delay: float = 0.0,
        late_chunks_after_cancel: int = 0,
        error_on_context: int | None = None,
        errors_from_context: int | None = None,
        stall_from_context: int | None = None,
        error: FakeError = CONCURRENCY_LIMITED,
        drop_after_messages: int | None = None,
        voices: Mapping[str, str] | None = None,
    ) -> None:
        self.api_key = api_key
        self.voices = voices
        self.ms_per_char = ms_per_char
        self.min_piece_ms = min_piece_ms
        self.chunk_ms = chunk_ms
        self.chunk_delay = chunk_delay
        self.first_audio_delay = first_audio_delay
        self.late_chunks_after_cancel = late_chunks_after_cancel
        self.error_on_context = error_on_context
        self.errors_from_context = errors_from_context
        self.stall_from_context = stall_from_context
        self.error = error
        self.drop_after_messages = drop_after_messages
        self.connections: list[RecordedConnection] = []
        self.rejected: list[RecordedConnection] = []
        self._pending: dict[ServerConnection, RecordedConnection] = {}
        self._live: set[ServerConnection] = set()
        self._contexts_seen = 0
        self._dropped_one = False
        self._server: Server | None = None

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeCartesia is not running; use `async with FakeCartesia() as tts`")
        port = next(iter(self._server.sockets)).getsockname()[1]
        return f"ws://127.0.0.1:{port}{PATH}"

    def contexts(self) -> dict[str, RecordedContext]:
        """Every context of every connection, by id."""
        return {cid: ctx for conn in self.connections for cid, ctx in conn.contexts.items()}

    def piece_ms(self, piece: str, *, speed: float = 1.0) -> int:
        """How long the fake speaks ``piece``: none if blank, else ``ms_per_char`` a character."""
        if not piece.strip():
            return 0
        return max(self.min_piece_ms, round(self.ms_per_char * len(piece) / speed))

    def audio_bytes(
        self, pieces: list[str], *, encoding: str = "pcm_mulaw", sample_rate: int = 8000, speed: float = 1.0
    ) -> int:
        """How many bytes of audio the fake sends for a context made of ``pieces``."""
        width = _SAMPLE_WIDTH[encoding]
        return sum(self.piece_ms(p, speed=speed) * sample_rate // 1000 * width for p in pieces)

    async def close_connections(self, code: int = 1000) -> None:
        """Close every open socket from the server side, as Cartesia does after ~5 min idle (§2.1)."""
        await asyncio.gather(*(ws.close(code) for ws in list(self._live)))

    async def __aenter__(self) -> FakeCartesia:
        self._server = await serve(self._handle, "127.0.0.1", 0, process_request=self._handshake)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    # --- handshake (§2.1) -------------------------------------------------------------------------

    def _handshake(self, connection: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        query = dict(parse_qsl(url.query))
        record = RecordedConnection(
            path=url.path,
            headers={name.lower(): value for name, value in request.headers.raw_items()},
            query=query,
        )
        record.auth, record.api_key = _credentials(request.headers, query)
        # On WebSockets the query parameter wins over the header (§2.1).
        record.version = query.get("cartesia_version") or request.headers.get("Cartesia-Version")
        if url.path.startswith(VOICES_PATH) and "Upgrade" not in request.headers:
            return self._voice(connection, record, url.path.removeprefix(VOICES_PATH))
        if url.path != PATH:
            return self._refuse(connection, record, 404, "Not Found")
        if record.api_key is None or (self.api_key is not None and record.api_key != self.api_key):
            return self._refuse(connection, record, 401, "Invalid API key")
        if not record.version:
            return self._refuse(connection, record, 400, "Cartesia-Version is required")
        self._pending[connection] = record
        return None

    def _voice(self, connection: ServerConnection, record: RecordedConnection, voice_id: str) -> Response:
        if record.api_key is None or (self.api_key is not None and record.api_key != self.api_key):
            return json_response(connection, 401, {"error": "Invalid API key"})
        if not record.version:
            return json_response(connection, 400, {"error": "Cartesia-Version is required"})
        if self.voices is not None and voice_id not in self.voices:
            return json_response(connection, 404, {"error": "Voice not found"})
        name = self.voices[voice_id] if self.voices is not None else "Fake voice"
        voice = {"id": voice_id, "name": name, "description": "", "is_public": True, "language": "en"}
        return json_response(connection, 200, voice)

    def _refuse(
        self, connection: ServerConnection, record: RecordedConnection, status: int, text: str
    ) -> Response:
        record.status = status
        record.closed.set()
        self.rejected.append(record)
        return connection.respond(status, text + "\n")

    async def _handle(self, ws: ServerConnection) -> None:
        record = self._pending.pop(ws)
        self.connections.append(record)
        self._live.add(ws)
        try:
            await _Connection(self, ws, record).run()
        finally:
            self._live.discard(ws)
            record.closed.set()

    def _next_context_fails(self) -> bool:
        self._contexts_seen += 1
        since = self.errors_from_context
        return self._contexts_seen == self.error_on_context or (
            since is not None and self._contexts_seen >= since
        )

    def _should_drop(self, record: RecordedConnection) -> bool:
        if self._dropped_one or self.drop_after_messages is None:
            return False
        if record.messages_sent < self.drop_after_messages:
            return False
        self._dropped_one = True
        return True


def _credentials(headers: Headers, query: dict[str, str]) -> tuple[AuthVariant | None, str | None]:
    authorization = headers.get("Authorization", "")
    if authorization.startswith("Bearer ") and authorization[7:]:
        return "bearer", authorization[7:]
    if key := headers.get("X-API-Key"):
        return "x-api-key", key
    if key := query.get("api_key"):
        return "query", key
    return None, None


@dataclass
class _Context:
    record: RecordedContext
    fixed: dict[str, Any]  # every field that must repeat unchanged
    speed: float
    encoding: str
    sample_rate: int
    timestamps: bool
    pieces: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    samples_sent: int = 0
    closed: bool = False  # ended, cancelled or failed: takes no more input
    task: asyncio.Task[None] | None = None
    stalls: bool = False  # falls silent after its first chunk (``stall_from_context``)


class _Connection:
    """One accepted socket: reads requests, runs one generator task per context."""

    def __init__(self, fake: FakeCartesia, ws: ServerConnection, record: RecordedConnection) -> None:
        self.fake = fake
        self.ws = ws
        self.record = record
        self.contexts: dict[str, _Context] = {}
        self.gone = False

    async def run(self) -> None:
        try:
            async for frame in self.ws:
                await self._on_frame(frame)
        except ConnectionClosed:
            pass
        finally:
            self.gone = True
            tasks = [c.task for c in self.contexts.values() if c.task is not None]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def send(self, message: dict[str, Any]) -> bool:
        """Send one message; ``False`` once the socket is gone (the caller stops)."""
        if self.gone:
            return False
        try:
            await self.ws.send(json.dumps(message))
        except ConnectionClosed:
            self.gone = True
            return False
        self.record.messages_sent += 1
        if self.fake._should_drop(self.record):
            self.record.dropped = True
            self.gone = True
            self.ws.transport.abort()  # no close frame: what a network failure looks like
            return False
        return True

    async def _error(self, context_id: str | None, error: FakeError) -> None:
        message: dict[str, Any] = {"type": "error", "done": True, "status_code": error.status_code}
        if (self.record.version or "") >= STRUCTURED_ERRORS_SINCE:
            message |= {
                "error_code": error.code,
                "title": error.title,
                "message": error.message,
                "request_id": str(uuid.uuid4()),
            }
        else:
            message["error"] = f"{error.title}: {error.message}"
        if context_id is not None:
            message["context_id"] = context_id
        await self.send(message)

    async def _invalid(self, context_id: str | None, text: str) -> None:
        await self._error(context_id, FakeError(400, "invalid_request", "Invalid request", text))

    async def _on_frame(self, frame: str | bytes) -> None:
        try:
            request = json.loads(frame)
        except ValueError:
            await self._invalid(None, "the message is not JSON")
            return
        if not isinstance(request, dict):
            await self._invalid(None, "the message is not a JSON object")
            return
        self.record.requests.append(request)
        context_id = request.get("context_id")
        if not isinstance(context_id, str) or not context_id:
            await self._invalid(None, "context_id is required")
        elif request.get("cancel") is True:
            await self._cancel(context_id)
        else:
            await self._input(context_id, request)

    async def _cancel(self, context_id: str) -> None:
        context = self.contexts.get(context_id)
        if context is None or context.record.cancelled:
            return
        context.record.cancelled = True
        context.closed = True
        context.pieces.put_nowait(None)  # wake the generator; it sees the flag and stops
        for _ in range(self.fake.late_chunks_after_cancel):
            if not await self._chunk(context, self.fake.chunk_ms * context.sample_rate // 1000):
                break

    async def _input(self, context_id: str, request: dict[str, Any]) -> None:
        missing = [name for name in _REQUIRED if name not in request]
        if missing:
            await self._invalid(context_id, f"missing fields: {', '.join(missing)}")
            return
        fixed = {k: v for k, v in request.items() if k not in _REPEATED_EXCEPT}
        context = self.contexts.get(context_id)
        if context is None:
            context = await self._open(context_id, request, fixed)
            if context is None:
                return
        elif context.closed:
            if not (context.record.cancelled or context.record.error_sent):
                await self._invalid(context_id, "this context has ended")
            return
        elif fixed != context.fixed:
            changed = sorted(
                k for k in fixed.keys() | context.fixed.keys() if fixed.get(k) != context.fixed.get(k)
            )
            context.closed = True
            context.record.error_sent = FakeError(400, "invalid_request", "Invalid request", "")
            context.pieces.put_nowait(None)
            await self._invalid(context_id, f"fields changed within a context: {', '.join(changed)}")
            return
        transcript = request["transcript"]
        if not isinstance(transcript, str):
            await self._invalid(context_id, "transcript must be a string")
            return
        context.record.pieces.append(transcript)
        context.pieces.put_nowait(transcript)
        if request.get("continue") is not True:
            context.record.ended = True
            context.closed = True
            context.pieces.put_nowait(None)

    async def _open(self, context_id: str, request: dict[str, Any], fixed: dict[str, Any]) -> _Context | None:
        record = RecordedContext(context_id, first_request_at=time.perf_counter())
        self.record.contexts[context_id] = record
        output, voice = request["output_format"], request["voice"]
        speed = (request.get("generation_config") or {}).get("speed", 1.0)
        problem = ""
        if not isinstance(voice, dict) or voice.get("mode") != "id" or not voice.get("id"):
            problem = 'voice must be {"mode": "id", "id": ...}'
        elif (
            not isinstance(output, dict)
            or output.get("container") != "raw"
            or output.get("encoding") not in _SAMPLE_WIDTH
            or output.get("sample_rate") not in _SAMPLE_RATES
        ):
            problem = "output_format must be raw pcm_mulaw, pcm_s16le or pcm_f32le at a Cartesia rate"
        elif not isinstance(speed, int | float) or speed <= 0:
            problem = "generation_config.speed must be a positive number"
        error = FakeError(400, "invalid_request", "Invalid request", problem) if problem else None
        if error is None and self.fake._next_context_fails():
            error = self.fake.error
        if error is not None:
            record.error_sent = error
            self.contexts[context_id] = _Context(record, fixed, 1.0, "", 0, timestamps=False, closed=True)
            await self._error(context_id, error)
            return None
        context = _Context(
            record,
            fixed,
            float(speed),
            output["encoding"],
            output["sample_rate"],
            timestamps=request.get("add_timestamps") is True,
        )
        stall = self.fake.stall_from_context
        context.stalls = stall is not None and self.fake._contexts_seen >= stall
        context.task = asyncio.create_task(self._generate(context))
        self.contexts[context_id] = context
        return context

    async def _generate(self, context: _Context) -> None:
        fake = self.fake
        first = True
        while (piece := await context.pieces.get()) is not None:
            if context.record.cancelled:
                return
            samples = fake.piece_ms(piece, speed=context.speed) * context.sample_rate // 1000
            if not samples:
                continue
            if context.timestamps and not await self._timestamps(context, piece, samples):
                return
            step = fake.chunk_ms * context.sample_rate // 1000
            for start in range(0, samples, step):
                delay = fake.first_audio_delay if first else fake.chunk_delay
                first = False
                await asyncio.sleep(delay)  # also yields, so a cancel is read between chunks
                if context.record.cancelled or not await self._chunk(context, min(step, samples - start)):
                    return
                if context.stalls:  # the service falls silent mid-reply
                    await asyncio.Event().wait()
        if context.record.ended and not context.record.cancelled:
            context.record.done_sent = await self.send(
                {"type": "done", "done": True, "status_code": 206, "context_id": context.record.context_id}
            )

    async def _chunk(self, context: _Context, samples: int) -> bool:
        audio = tone(
            samples, start=context.samples_sent, encoding=context.encoding, sample_rate=context.sample_rate
        )
        context.samples_sent += samples
        sent = await self.send(
            {
                "type": "chunk",
                "data": base64.b64encode(audio).decode("ascii"),
                "done": False,
                "status_code": 206,
                "step_time": 1,
                "context_id": context.record.context_id,
            }
        )
        if sent:
            context.record.chunks_sent += 1
            context.record.audio_bytes_sent += len(audio)
        return sent

    async def _timestamps(self, context: _Context, piece: str, samples: int) -> bool:
        words = piece.split()
        begin = context.samples_sent / context.sample_rate
        span = samples / context.sample_rate / max(1, len(words))
        return await self.send(
            {
                "type": "timestamps",
                "done": False,
                "status_code": 206,
                "context_id": context.record.context_id,
                "word_timestamps": {
                    "words": words,
                    "start": [round(begin + i * span, 3) for i in range(len(words))],
                    "end": [round(begin + (i + 1) * span, 3) for i in range(len(words))],
                },
            }
        )
