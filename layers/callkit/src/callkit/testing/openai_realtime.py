"""An OpenAI Realtime (GA) server on loopback (docs/protocols/ai-providers.md §3), for tests and the demo.

``FakeRealtime`` plays the model. It accepts ``/v1/realtime?model=...`` with ``Authorization:
Bearer <key>``; a request with ``OpenAI-Beta`` gets ``error`` ``beta_api_shape_disabled`` and close
4000, as the real service does now (§3.1). It sends ``session.created``, checks the
``session.update`` is GA-shaped (else an ``error``) and answers ``session.updated``::

    async with FakeRealtime(["Hello, how can I help?", ToolCall("book_slot", '{"slot_id":"s-14"}'),
                             "Booked."], heard=["I need an appointment."]) as rt:
        config = OpenAIRealtimeProvider(api_key=TEST_OPENAI_API_KEY, base_url=rt.base_url)
        ...
    rt.connections[0].client_events      # every client event, in order; also truncations, errors_sent

Caller audio (``input_audio_buffer.append``, base64 μ-law) is heard by energy in 20-ms windows
(audio time: 8 bytes = 1 ms, so tests may send faster than real time). At onset:
``speech_started`` — also while a response plays; with ``interrupt_response`` that response ends
``cancelled`` (``turn_detected``). After ``silence_duration_ms`` of silence: ``speech_stopped``,
the input transcription ``completed`` with the next ``heard`` line, and (``create_response``) a
response.

Each response without ``instructions`` says the next ``script`` entry: a ``str`` becomes μ-law tone
audio (65 ms a character, 40-ms deltas, ``delta_delay`` s apart) with transcript deltas; a
``ToolCall`` becomes a ``function_call`` item (``response.function_call_arguments.done``, then
``response.done``), answered after the client's ``function_call_output`` + ``response.create``. A
``response.create`` with ``instructions`` says their double-quoted text (or ``GREETING``) and takes
no script entry. Overlapping ``response.create`` → ``conversation_already_has_active_response``
(recorded in ``conflicts``). ``conversation.item.truncate`` → ``conversation.item.truncated``;
``response.cancel`` → ``response.done`` ``cancelled`` (or ``response_cancel_not_active``).
Faults: ``drop_after_seconds`` aborts the socket (no close frame); ``stall_after_responses=n``
starts no response after the first n (the socket stays open and silent: a stalled session);
``fail_responses={n, ...}``: the n-th response (from 1) ends ``failed`` with a ``server_error`` and
no output, as an overloaded service answers.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qs, urlsplit

import msgspec
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from callkit.testing.cartesia import tone

if TYPE_CHECKING:
    from types import TracebackType

    from websockets.asyncio.server import Server
    from websockets.http11 import Request, Response

__all__ = ["GREETING", "TEST_OPENAI_API_KEY", "FakeRealtime", "RealtimeConnection", "ToolCall", "tone"]

TEST_OPENAI_API_KEY: Final = "sk-test-realtime-0123456789abcdef"
GREETING: Final = "Hello, how can I help you today?"
WINDOW_MS: Final = 20
MS_PER_CHAR: Final = 65
DELTA_MS: Final = 40
#: Mean μ-law magnitude (16-bit scale) above which a window is speech: about -44 dBFS.
SPEECH_THRESHOLD: Final = 200.0
_BETA_SESSION_KEYS: Final = frozenset(
    {
        "modalities",
        "voice",
        "input_audio_format",
        "output_audio_format",
        "turn_detection",
        "input_audio_transcription",
        "temperature",
        "max_response_output_tokens",
    }
)
_PCMU: Final = {"type": "audio/pcmu"}


def _mulaw_magnitude(byte: int) -> int:
    byte = ~byte & 0xFF
    exponent = (byte >> 4) & 0x07
    return ((((byte & 0x0F) << 3) + 0x84) << exponent) - 0x84


_MULAW_MAGNITUDE: Final = [_mulaw_magnitude(b) for b in range(256)]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A script entry: the model calls ``name`` with ``arguments`` (a JSON string)."""

    name: str
    arguments: str = "{}"


ScriptEntry = str | ToolCall


@dataclass(slots=True)
class RealtimeConnection:
    """Everything one accepted socket did, for assertions."""

    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    session_update: dict[str, Any] | None = None
    client_events: list[dict[str, Any]] = field(default_factory=list)
    audio_ms: float = 0.0
    truncations: list[tuple[str, int]] = field(default_factory=list)
    user_texts: list[str] = field(default_factory=list)
    tool_outputs: list[tuple[str, str]] = field(default_factory=list)
    conflicts: int = 0  # response.create while a response was active
    errors_sent: list[str] = field(default_factory=list)  # error codes
    sent: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None

    def event_types(self) -> list[str]:
        return [str(event.get("type")) for event in self.client_events]


@dataclass(slots=True)
class _Active:
    response_id: str
    task: asyncio.Task[None]


class _Call:
    """One socket's state: the listener (VAD) and the responses."""

    def __init__(self, fake: FakeRealtime, ws: ServerConnection, conn: RealtimeConnection) -> None:
        self.fake, self.ws, self.conn = fake, ws, conn
        self.pending = bytearray()
        self.in_speech = False
        self.silence_ms = 0
        self.speech_item = ""
        self.active: _Active | None = None
        self.turn: dict[str, Any] = {}

    async def send(self, event: dict[str, Any]) -> None:
        event.setdefault("event_id", self.fake.new_id("event"))
        self.conn.sent.append(event)
        if event["type"] == "error":
            self.conn.errors_sent.append(str(event["error"]["code"]))
        await self.ws.send(msgspec.json.encode(event).decode())

    async def error(self, code: str, message: str, kind: str = "invalid_request_error") -> None:
        body = {"type": kind, "code": code, "message": message, "param": None, "event_id": None}
        await self.send({"type": "error", "error": body})

    # --- session --------------------------------------------------------------------------------

    async def session_update(self, event: dict[str, Any]) -> None:
        session = event.get("session")
        problem = self._problem(session)
        if problem is not None:
            await self.error(*problem)
            return
        assert isinstance(session, dict)
        self.conn.session_update = event
        self.turn = dict(session["audio"]["input"].get("turn_detection") or {})
        await self.send({"type": "session.updated", "session": {"id": "sess_fake", **session}})

    @staticmethod
    def _problem(session: object) -> tuple[str, str] | None:
        if not isinstance(session, dict):
            return "missing_required_parameter", "session is required"
        beta = sorted(_BETA_SESSION_KEYS & session.keys())
        if beta:
            return "unknown_parameter", f"beta session fields are not GA: {', '.join(beta)}"
        if session.get("type") != "realtime":
            return "missing_required_parameter", "session.type must be 'realtime'"
        audio = session.get("audio")
        if not isinstance(audio, dict):
            return "invalid_value", "session.audio is required by this fake"
        if audio.get("input", {}).get("format") != _PCMU or audio.get("output", {}).get("format") != _PCMU:
            return "invalid_value", "the fake speaks audio/pcmu both ways"
        if session.get("output_modalities", ["audio"]) != ["audio"]:
            return "invalid_value", "output_modalities must be ['audio']"
        return None

    # --- listening ------------------------------------------------------------------------------

    async def append(self, b64: str) -> None:
        self.pending += base64.b64decode(b64)
        window = 8 * WINDOW_MS
        while len(self.pending) >= window:
            frame, self.pending = bytes(self.pending[:window]), self.pending[window:]
            start_ms = int(self.conn.audio_ms)
            self.conn.audio_ms += WINDOW_MS
            level = sum(map(_MULAW_MAGNITUDE.__getitem__, frame)) / len(frame)
            if level >= self.fake.speech_threshold:
                self.silence_ms = 0
                if not self.in_speech:
                    await self._onset(start_ms)
            elif self.in_speech:
                self.silence_ms += WINDOW_MS
                if self.silence_ms >= int(self.turn.get("silence_duration_ms", 500)):
                    await self._end_of_speech(int(self.conn.audio_ms))

    async def _onset(self, start_ms: int) -> None:
        self.in_speech = True
        self.speech_item = self.fake.new_id("item")
        await self.send(
            {
                "type": "input_audio_buffer.speech_started",
                "audio_start_ms": start_ms,
                "item_id": self.speech_item,
            }
        )
        if self.active is not None and self.turn.get("interrupt_response", True):
            await self.cancel("turn_detected")

    async def _end_of_speech(self, end_ms: int) -> None:
        self.in_speech = False
        item = self.speech_item
        await self.send(
            {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": end_ms, "item_id": item}
        )
        await self.send({"type": "input_audio_buffer.committed", "item_id": item, "previous_item_id": None})
        heard = self.fake.next_heard()
        await self.send(
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "item_id": item,
                "content_index": 0,
                "transcript": heard,
            }
        )
        if self.turn.get("create_response", True):
            await self.create(None)

    # --- responses ------------------------------------------------------------------------------

    async def create(self, instructions: str | None) -> None:
        if self.active is not None:
            self.conn.conflicts += 1
            await self.error(
                "conversation_already_has_active_response",
                f"Conversation already has an active response in progress: {self.active.response_id}.",
            )
            return
        if (
            self.fake.stall_after_responses is not None
            and self.fake.responses >= self.fake.stall_after_responses
        ):
            return  # stalled: nothing is ever answered
        self.fake.responses += 1
        if instructions is not None:
            quoted = re.search(r'"([^"]+)"', instructions)
            entry: ScriptEntry = quoted.group(1) if quoted else GREETING
        else:
            entry = self.fake.next_entry()
        response_id = self.fake.new_id("resp")
        self.active = _Active(response_id, asyncio.create_task(self._respond(response_id, entry)))

    async def _respond(self, response_id: str, entry: ScriptEntry) -> None:
        await self.send(
            {
                "type": "response.created",
                "response": {"id": response_id, "status": "in_progress", "output": []},
            }
        )
        if self.fake.responses in self.fake.fail_responses:
            self.active = None
            error = {"type": "server_error", "code": "server_error", "message": "The server had an error."}
            await self.send(
                {
                    "type": "response.done",
                    "response": {
                        "id": response_id,
                        "status": "failed",
                        "status_details": {"type": "failed", "error": error},
                        "output": [],
                    },
                }
            )
            return
        item_id = self.fake.new_id("item")
        if isinstance(entry, ToolCall):
            call_id = self.fake.new_id("call")
            item = {
                "id": item_id,
                "type": "function_call",
                "status": "completed",
                "call_id": call_id,
                "name": entry.name,
                "arguments": entry.arguments,
            }
            await self.send(
                {
                    "type": "response.output_item.added",
                    "response_id": response_id,
                    "output_index": 0,
                    "item": {**item, "arguments": ""},
                }
            )
            await self.send(
                {
                    "type": "response.function_call_arguments.done",
                    "response_id": response_id,
                    "item_id": item_id,
                    "output_index": 0,
                    "call_id": call_id,
                    "name": entry.name,
                    "arguments": entry.arguments,
                }
            )
            output = [item]
        else:
            output = await self._speak(response_id, item_id, entry) if entry else []
        self.active = None
        await self.send(
            {
                "type": "response.done",
                "response": {
                    "id": response_id,
                    "status": "completed",
                    "status_details": None,
                    "output": output,
                },
            }
        )

    async def _speak(self, response_id: str, item_id: str, text: str) -> list[dict[str, Any]]:
        where = {"response_id": response_id, "item_id": item_id, "output_index": 0, "content_index": 0}
        item = {
            "id": item_id,
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_audio", "transcript": text}],
        }
        await self.send(
            {
                "type": "response.output_item.added",
                "response_id": response_id,
                "output_index": 0,
                "item": {**item, "status": "in_progress", "content": []},
            }
        )
        total = MS_PER_CHAR * len(text)
        words = text.split(" ")
        deltas = max(1, -(-total // DELTA_MS))
        for n in range(deltas):
            ms = min(DELTA_MS, total - n * DELTA_MS)
            audio = tone(ms * 8, start=n * DELTA_MS * 8)
            await self.send(
                {
                    "type": "response.output_audio.delta",
                    **where,
                    "delta": base64.b64encode(audio).decode("ascii"),
                }
            )
            if n < len(words):
                piece = words[n] if n == 0 else " " + words[n]
                await self.send({"type": "response.output_audio_transcript.delta", **where, "delta": piece})
            await asyncio.sleep(self.fake.delta_delay)
        for rest in range(deltas, len(words)):
            await self.send(
                {"type": "response.output_audio_transcript.delta", **where, "delta": " " + words[rest]}
            )
        await self.send({"type": "response.output_audio.done", **where})
        await self.send({"type": "response.output_audio_transcript.done", **where, "transcript": text})
        return [item]

    async def cancel(self, reason: str) -> None:
        active, self.active = self.active, None
        if active is None:
            await self.error("response_cancel_not_active", "Cancellation failed: no active response found")
            return
        active.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await active.task
        details = {"type": "cancelled", "reason": reason}
        await self.send(
            {
                "type": "response.done",
                "response": {
                    "id": active.response_id,
                    "status": "cancelled",
                    "status_details": details,
                    "output": [],
                },
            }
        )

    # --- client events --------------------------------------------------------------------------

    async def handle(self, event: dict[str, Any]) -> None:
        match event.get("type"):
            case "session.update":
                await self.session_update(event)
            case "input_audio_buffer.append":
                await self.append(str(event.get("audio", "")))
            case "response.create":
                response = event.get("response") or {}
                await self.create(response.get("instructions"))
            case "response.cancel":
                await self.cancel("client_cancelled")
            case "conversation.item.truncate":
                item_id, end_ms = str(event["item_id"]), int(event["audio_end_ms"])
                self.conn.truncations.append((item_id, end_ms))
                await self.send(
                    {
                        "type": "conversation.item.truncated",
                        "item_id": item_id,
                        "content_index": int(event.get("content_index", 0)),
                        "audio_end_ms": end_ms,
                    }
                )
            case "conversation.item.create":
                await self._item(event.get("item") or {})
            case other:
                await self.error("invalid_value", f"the fake does not handle {other!r}")

    async def _item(self, item: dict[str, Any]) -> None:
        if item.get("type") == "function_call_output":
            self.conn.tool_outputs.append((str(item.get("call_id")), str(item.get("output"))))
        elif item.get("type") == "message":
            texts = [
                str(part.get("text", ""))
                for part in item.get("content", [])
                if part.get("type") == "input_text"
            ]
            self.conn.user_texts.append(" ".join(texts))
        else:
            await self.error("invalid_value", f"item type {item.get('type')!r}")
            return
        await self.send(
            {
                "type": "conversation.item.added",
                "previous_item_id": None,
                "item": {"id": self.fake.new_id("item"), **item},
            }
        )

    async def stop(self) -> None:
        if self.active is not None:
            self.active.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await self.active.task


class FakeRealtime:
    """A loopback OpenAI Realtime GA server; see the module docstring."""

    def __init__(
        self,
        script: Sequence[ScriptEntry] = (),
        *,
        heard: Sequence[str] = (),
        api_key: str = TEST_OPENAI_API_KEY,
        delta_delay: float = 0.0,
        speech_threshold: float = SPEECH_THRESHOLD,
        drop_after_seconds: float | None = None,
        stall_after_responses: int | None = None,
        fail_responses: Collection[int] = (),
    ) -> None:
        self.fail_responses = frozenset(fail_responses)
        self.stall_after_responses = stall_after_responses
        self.responses = 0
        self.script = list(script)
        self.heard = list(heard)
        self.api_key = api_key
        self.delta_delay = delta_delay
        self.speech_threshold = speech_threshold
        self.drop_after_seconds = drop_after_seconds
        self.connections: list[RealtimeConnection] = []
        self.refused: list[tuple[str, HTTPStatus]] = []
        self._entries = 0
        self._heard = 0
        self._ids = itertools.count(1)
        self._server: Server | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/realtime"

    def new_id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids)}"

    def next_entry(self) -> ScriptEntry:
        entry = self.script[self._entries] if self._entries < len(self.script) else ""
        self._entries += 1
        return entry

    def next_heard(self) -> str:
        line = self.heard[self._heard] if self._heard < len(self.heard) else ""
        self._heard += 1
        return line

    async def __aenter__(self) -> FakeRealtime:
        self._server = await serve(
            self._handle, "127.0.0.1", 0, process_request=self._process_request, compression=None
        )
        self.port = next(iter(self._server.sockets)).getsockname()[1]
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        headers = {name.lower(): value for name, value in request.headers.raw_items()}
        url = urlsplit(request.path)
        status, error = HTTPStatus.SWITCHING_PROTOCOLS, ""
        if url.path != "/v1/realtime":
            status, error = HTTPStatus.NOT_FOUND, "Not found."
        elif headers.get("authorization") != f"Bearer {self.api_key}":
            status, error = HTTPStatus.UNAUTHORIZED, "Incorrect API key provided."
        elif not parse_qs(url.query).get("model"):
            status, error = HTTPStatus.BAD_REQUEST, "Missing model."
        if status == HTTPStatus.SWITCHING_PROTOCOLS:
            return None
        self.refused.append((request.path, status))
        return connection.respond(status, f"{error}\n")

    async def _handle(self, ws: ServerConnection) -> None:
        request = ws.request
        assert request is not None
        headers = {name.lower(): value for name, value in request.headers.raw_items()}
        conn = RealtimeConnection(request.path, parse_qs(urlsplit(request.path).query), headers)
        self.connections.append(conn)
        call = _Call(self, ws, conn)
        dropper = None
        try:
            if "openai-beta" in headers:  # §3.1: the beta shape is retired
                await call.error("beta_api_shape_disabled", "The Realtime Beta API is no longer supported.")
                conn.close_code = 4000
                await ws.close(4000, "beta_api_shape_disabled")
                return
            if self.drop_after_seconds is not None:
                dropper = asyncio.create_task(self._drop_later(ws, conn, self.drop_after_seconds))
            await call.send({"type": "session.created", "session": {"id": "sess_fake", "type": "realtime"}})
            async for message in ws:
                event = msgspec.json.decode(message)
                if not isinstance(event, dict):
                    await call.error("invalid_json", "expected a JSON object")
                    continue
                conn.client_events.append(event)
                await call.handle(event)
        except ConnectionClosed:
            pass
        finally:
            await call.stop()
            if dropper is not None:
                dropper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await dropper

    async def _drop_later(self, ws: ServerConnection, conn: RealtimeConnection, delay: float) -> None:
        await asyncio.sleep(delay)
        conn.close_code = 1006
        ws.transport.abort()  # no close frame: the client sees 1006
