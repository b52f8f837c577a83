"""The provider seam: a second STT and a second TTS vendor, each written as protocol + configuration only,
carry a cascading call end to end with no change to the pipeline (``callkit.stream.cascading``).

"Scribe" (speech to text) and "Voicebox" (text to speech) speak a made-up JSON protocol; their loopback
servers are below. Each vendor is a pure message parser, a configuration with ``session()``, and a
``WebSocketSession`` subclass saying what its frames and closes mean: the connect, reconnect, hold
buffer, keep-alive, reader and shutdown are the base's (``callkit.net.websocket_session``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

import httpx
import pytest
from websockets.asyncio.server import ServerConnection, serve

from callkit import AgentRuntime, CallInterface
from callkit.carriers._types import PlayAudio
from callkit.errors import ProtocolError, ServiceError
from callkit.examples import support_agent
from callkit.llm.openai_chat import OpenAIChatModel
from callkit.net.websocket_session import Inbox, SocketPolicy, WebSocketSession
from callkit.store._base import CallStore
from callkit.stt.events import Interim, SpeechStarted, STTEvent, Utterance
from callkit.testing import SimulatedCarrier
from callkit.testing.carrier_api import FakeCarrierApi
from callkit.testing.openai_chat import ScriptedChatServer, support_script
from callkit.testing.stream_client import SimulatedMediaStream, silence, speech

ACCOUNT = "AC" + "7" * 32
NUMBER = "+15550007001"
KEY = "scribe-and-voicebox-key"

# --- Scribe: the vendor (protocol + configuration) ---------------------------------------------------


def parse_scribe(message: str | bytes) -> STTEvent:
    """Scribe's server messages: ``{"kind": "started"|"heard"|"said", ...}``."""
    try:
        data = json.loads(message)
        kind = data["kind"]
        if kind == "started":
            return SpeechStarted(float(data["at"]))
        if kind in ("heard", "said") and data["text"]:
            return Interim(data["text"]) if kind == "heard" else Utterance(data["text"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ProtocolError("not a Scribe message") from exc
    raise ProtocolError(f"unknown Scribe message {kind!r}")


@dataclass(frozen=True, slots=True)
class ScribeSTT:
    base_url: str
    api_key: str = KEY

    def session(self, *, encoding: str = "mulaw", sample_rate: int = 8000) -> ScribeSession:
        return ScribeSession(self, f"{self.base_url}?encoding={encoding}&rate={sample_rate}")


class ScribeSession(WebSocketSession):
    name = "Scribe"

    def __init__(self, config: ScribeSTT, url: str) -> None:
        super().__init__(SocketPolicy(max_reconnects=1, hold_bytes=8000, keepalive_interval=2.0))
        self._url, self._key = url, config.api_key
        self._inbox: Inbox[STTEvent] = Inbox()
        self._bye_sent = False

    async def start(self) -> None:
        try:
            await self._open()
        except BaseException:
            self._inbox.end()
            raise

    async def send_audio(self, audio: bytes) -> None:
        with contextlib.suppress(ServiceError):  # a lost stream surfaces through events()
            await self._send(audio)

    def events(self) -> AsyncIterator[STTEvent]:
        return self._inbox

    async def close(self) -> None:
        self._bye_sent = True
        await self._close(goodbye='{"op":"bye"}')
        self._inbox.end()

    def url(self) -> str:
        return self._url

    def headers(self) -> Mapping[str, str]:
        return {"X-Scribe-Key": self._key}

    def _keep_alive_frame(self) -> str:
        return '{"op":"ping"}'

    def _close_error(self, code: int | None, reason: str) -> ServiceError | None:
        return None if self._bye_sent else ServiceError(f"Scribe dropped: {code}", retryable=True)

    def _on_message(self, message: str | bytes) -> None:
        self._inbox.put(parse_scribe(message))

    def _on_failed(self, error: ServiceError) -> None:
        self._inbox.fail(error)


# --- Voicebox: the vendor (protocol + configuration) -------------------------------------------------


@dataclass(frozen=True, slots=True)
class VoiceboxAudio:
    id: str
    audio: bytes


@dataclass(frozen=True, slots=True)
class VoiceboxDone:
    id: str


def parse_voicebox(message: str | bytes) -> VoiceboxAudio | VoiceboxDone:
    """Voicebox's server messages: ``{"id", "audio": base64}`` or ``{"id", "done": true}``."""
    try:
        data = json.loads(message)
        if data.get("done"):
            return VoiceboxDone(data["id"])
        return VoiceboxAudio(data["id"], base64.b64decode(data["audio"], validate=True))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ProtocolError("not a Voicebox message") from exc


@dataclass(frozen=True, slots=True)
class VoiceboxTTS:
    base_url: str
    api_key: str = KEY

    def session(
        self, *, encoding: Literal["pcm_mulaw"] = "pcm_mulaw", sample_rate: int = 8000
    ) -> VoiceboxSession:
        return VoiceboxSession(f"{self.base_url}?format=mulaw&rate={sample_rate}", self.api_key)


class VoiceboxSession(WebSocketSession):
    name = "Voicebox"

    def __init__(self, url: str, key: str) -> None:
        super().__init__(SocketPolicy(reopen_on_demand=True))
        self._url, self._key = url, key
        self.replies: dict[str, VoiceboxReply] = {}

    async def connect(self) -> None:
        await self._open()

    def new_reply(self) -> VoiceboxReply:
        return VoiceboxReply(self, uuid.uuid4().hex)

    async def aclose(self) -> None:
        self._on_lost(ServiceError("the Voicebox session was closed"))
        await self._close()

    def url(self) -> str:
        return self._url

    def headers(self) -> Mapping[str, str]:
        return {"Authorization": f"Bearer {self._key}"}

    def _on_message(self, message: str | bytes) -> None:
        event = parse_voicebox(message)
        reply = self.replies.get(event.id)
        if reply is not None:
            reply.queue.put_nowait(event.audio if isinstance(event, VoiceboxAudio) else None)

    def _on_lost(self, error: ServiceError) -> None:
        replies, self.replies = self.replies, {}
        for reply in replies.values():
            reply.queue.put_nowait(error)


@dataclass(eq=False)
class VoiceboxReply:
    session: VoiceboxSession
    id: str
    queue: asyncio.Queue[bytes | ServiceError | None] = field(default_factory=asyncio.Queue)
    started: bool = False
    stopped: bool = False

    async def send(self, text: str) -> None:
        if self.stopped or not text:
            return
        if not self.started:
            await self.session._open()
            self.started = True
            self.session.replies[self.id] = self
        await self.session._send(json.dumps({"id": self.id, "text": text}))

    async def end(self) -> None:
        if self.started:
            await self.session._send(json.dumps({"id": self.id, "end": True}))
        else:
            self.queue.put_nowait(None)

    async def cancel(self) -> None:
        if not self.stopped:
            self.stopped = True
            self.queue.put_nowait(None)
            if self.session.replies.pop(self.id, None) is not None:
                with contextlib.suppress(ServiceError):
                    await self.session._send(json.dumps({"id": self.id, "stop": True}))

    async def audio(self) -> AsyncIterator[bytes]:
        while (item := await self.queue.get()) is not None:
            if isinstance(item, ServiceError):
                raise item
            if not self.stopped:
                yield item


# --- their loopback servers --------------------------------------------------------------------------


@dataclass
class Servers:
    script: list[str]
    scribe_url: str = ""
    voicebox_url: str = ""
    scribe_keys: list[str] = field(default_factory=list)
    scribe_byes: int = 0
    spoken: dict[str, str] = field(default_factory=dict)  # Voicebox: reply id -> its text

    async def scribe(self, ws: ServerConnection) -> None:
        self.scribe_keys.append(ws.request.headers.get("X-Scribe-Key", "") if ws.request else "")
        speech_ms = silence_ms = 0
        clock_ms = 0
        turn = 0
        async for message in ws:
            if isinstance(message, str):
                if json.loads(message)["op"] == "bye":
                    self.scribe_byes += 1
                    await ws.close(1000)
                    return
                continue
            loud = sum(b not in (0xFF, 0x7F) for b in message) > len(message) // 2
            clock_ms += len(message) // 8
            if loud:
                if speech_ms == 0:
                    await ws.send(json.dumps({"kind": "started", "at": clock_ms / 1000}))
                speech_ms, silence_ms = speech_ms + len(message) // 8, 0
                if speech_ms >= 200 and turn < len(self.script):
                    await ws.send(json.dumps({"kind": "heard", "text": self.script[turn].split()[0]}))
            elif speech_ms:
                silence_ms += len(message) // 8
                if silence_ms >= 300:
                    if speech_ms >= 200 and turn < len(self.script):
                        await ws.send(json.dumps({"kind": "said", "text": self.script[turn]}))
                        turn += 1
                    speech_ms = silence_ms = 0

    async def voicebox(self, ws: ServerConnection) -> None:
        async for message in ws:
            request = json.loads(message)
            reply_id = request["id"]
            if "text" in request:
                self.spoken[reply_id] = self.spoken.get(reply_id, "") + request["text"]
                audio = b"\x10\x90" * (4 * 8 * 10 * max(1, len(request["text"].split())))  # ~80 ms a word
                for start in range(0, len(audio), 320):
                    chunk = base64.b64encode(audio[start : start + 320]).decode()
                    await ws.send(json.dumps({"id": reply_id, "audio": chunk}))
            elif request.get("end"):
                await ws.send(json.dumps({"id": reply_id, "done": True}))


@contextlib.asynccontextmanager
async def servers(script: list[str]) -> AsyncIterator[Servers]:
    world = Servers(script)
    async with (
        serve(world.scribe, "127.0.0.1", 0) as scribe,
        serve(world.voicebox, "127.0.0.1", 0) as voicebox,
    ):
        world.scribe_url = f"ws://127.0.0.1:{next(iter(scribe.sockets)).getsockname()[1]}/listen"
        world.voicebox_url = f"ws://127.0.0.1:{next(iter(voicebox.sockets)).getsockname()[1]}/speak"
        yield world


async def until(condition: object, limit: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + limit
    while not condition() and asyncio.get_running_loop().time() < deadline:  # type: ignore[operator]  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    assert condition(), "timed out"  # type: ignore[operator]


def test_a_cascading_call_on_a_second_stt_and_tts_vendor(
    dynamodb: CallStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def call() -> None:
        async with (
            ScriptedChatServer(support_script) as llm,
            servers(["Where is my order 1001?"]) as vendors,
            FakeCarrierApi({ACCOUNT: "carrier-token"}) as api,
        ):
            monkeypatch.setenv("CALLKIT_TWILIO_API_URL", api.base_url)
            interface = CallInterface(
                agent=support_agent,
                provider="twilio",
                phone_number=NUMBER,
                account_sid=ACCOUNT,
                auth_token="carrier-token",
                pipeline="cascading",
                welcome_message="Hello! How can I help?",
                stt=ScribeSTT(vendors.scribe_url),
                tts=VoiceboxTTS(vendors.voicebox_url),
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
                    await until(lambda: plays() > 0)  # the welcome, in Voicebox's voice
                    await until(lambda: stream.queued_ms == 0)
                    before = plays()
                    await stream.say(speech(700) + silence(800))  # Scribe: "Where is my order 1001?"
                    await until(lambda: plays() > before + 3)
                    await until(lambda: stream.queued_ms == 0, 15)
                await until(lambda: vendors.scribe_byes == 1)
            spoken = list(vendors.spoken.values())
            assert spoken[0] == "Hello! How can I help?"
            assert len(spoken) >= 2 and "1001" in " ".join(spoken[1:]), spoken
            assert vendors.scribe_keys == [KEY]
            turns = dynamodb.list_turns(call_id)
            assert any("Where is my order 1001?" in t.messages for t in turns), [t.messages for t in turns]

    asyncio.run(call())
